"""The SimPy pathway: accrual, VIP, blinatumomab, response, consolidation, MRD, donor, transplant slot.

One process per patient walks the protocol in calendar days (day 0 = the first site opens) and
records when each stage happens and why a patient leaves the pathway. The random outcomes come from
`PatientDraws`; what SimPy adds is calendar time and the one place where patients interact, a
finite pool of transplant slots (a FIFO queue). Post-transplant events involve no interaction and
are drawn afterwards, vectorised, by post_transplant.py. `simulate_trial` is the entry point and
returns the latent history of every patient: no censoring happens here (that is the analysis's job).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import simpy

from sim.model.draws import CRI, CYCLE_DEATH, CYCLE_OK, EARLY_DEATH, NO_DONOR, REFRACTORY, PatientDraws, draw_patients
from sim.model.post_transplant import post_transplant_history
from sim.scenario.calibrate import PostTransplantModel, calibrate
from sim.scenario.schema import Scenario

EXIT_REASONS = (
    "transplanted", "induction_death", "early_death", "refractory", "cri_not_consolidated",
    "consolidation_death", "consolidation_relapse", "mrd_positive", "no_donor", "refusal",
)
(TRANSPLANTED, INDUCTION_DEATH, BLINA_DEATH, NOT_IN_REMISSION, CRI_OFF, CONSOL_DEATH, CONSOL_RELAPSE,
 MRD_POSITIVE, NO_DONOR_FOUND, REFUSED) = range(len(EXIT_REASONS))

# Calendar days stamped by the SimPy processes (NaN where a patient never got there).
STAGE_DAYS = (
    "blina_start_day", "response_day", "cycle1_start_day", "cycle1_end_day", "cycle2_start_day",
    "cycle2_end_day", "mrd2_sample_day", "eligible_day", "slot_request_day", "admission_day", "hsct_day",
    "exit_day",
)


@dataclass(frozen=True)
class TrialHistory:
    """Latent history of one virtual trial: the draws, the calendar stamps, post-HSCT events."""

    scenario: Scenario
    draws: PatientDraws
    days: dict[str, np.ndarray]
    exit_reason: np.ndarray
    post: dict[str, np.ndarray]

    @property
    def n(self) -> int:
        """Number of enrolled patients."""
        return len(self.exit_reason)


class PathwayModel:
    """SimPy state of one trial: the environment, the transplant slots and the calendar stamps."""

    def __init__(self, scenario: Scenario, draws: PatientDraws) -> None:
        self.scenario = scenario
        self.draws = draws
        self.env = simpy.Environment()
        finite = scenario.transplant.capacity == "finite"
        self.slots = simpy.Resource(self.env, capacity=scenario.transplant.slots) if finite else None
        n = len(draws.enroll_day)
        self.days = {name: np.full(n, np.nan) for name in STAGE_DAYS}
        self.exit_reason = np.full(n, -1, dtype=np.int64)

    def run(self) -> None:
        """Enroll every patient and run until all have left the pathway or been transplanted."""
        self.env.process(self._accrual())
        self.env.run()

    def _accrual(self):
        env = self.env
        for i, day in enumerate(self.draws.enroll_day):
            yield env.timeout(day - env.now)
            env.process(self._patient(i))

    def _leave(self, i: int, reason: int) -> None:
        self.exit_reason[i] = reason
        self.days["exit_day"][i] = self.env.now

    def _patient(self, i: int):
        env, d, s, days = self.env, self.draws, self.scenario, self.days
        start = env.now
        # VIP induction, days 1-14.
        if d.induction_death[i]:
            yield env.timeout(d.induction_death_offset[i])
            return self._leave(i, INDUCTION_DEATH)
        yield env.timeout(s.induction.duration_days)
        # Blinatumomab, then the response assessment (toxicity days are offsets from its start).
        days["blina_start_day"][i] = env.now
        response = d.response[i]
        if response == EARLY_DEATH:
            yield env.timeout(d.early_death_offset[i])
            return self._leave(i, BLINA_DEATH)
        yield env.timeout(start + s.response.assessment_day - env.now)
        days["response_day"][i] = env.now
        if response == REFRACTORY:
            return self._leave(i, NOT_IN_REMISSION)
        if response == CRI and not s.consolidation.include_cri:
            return self._leave(i, CRI_OFF)
        # Consolidation: cycle 1 VDCP, cycle 2 VP + HD-MTX (MRD after induction is reported, not gating).
        yield env.timeout(s.consolidation.start_gap_days)
        for c in range(2):
            days[f"cycle{c + 1}_start_day"][i] = env.now
            outcome = d.cycle_outcome[c][i]
            if outcome != CYCLE_OK:
                yield env.timeout(d.cycle_event_offset[c][i])
                return self._leave(i, CONSOL_DEATH if outcome == CYCLE_DEATH else CONSOL_RELAPSE)
            yield env.timeout(d.cycle_length[c][i])
            days[f"cycle{c + 1}_end_day"][i] = env.now
        # MRD before HSCT: the result, after the lab's turnaround, decides eligibility.
        days["mrd2_sample_day"][i] = env.now
        yield env.timeout(s.assay.turnaround_days)
        days["eligible_day"][i] = env.now
        if not d.mrd2_negative[i] and s.mrd.positive_action == "off_study":
            return self._leave(i, MRD_POSITIVE)
        if d.donor[i] == NO_DONOR:
            return self._leave(i, NO_DONOR_FOUND)
        if d.refusal[i]:
            return self._leave(i, REFUSED)
        # Donor search started at enrollment; then a transplant slot, conditioning, HSCT day 0.
        donor_ready = start + d.donor_search_days[i]
        if donor_ready > env.now:
            yield env.timeout(donor_ready - env.now)
        days["slot_request_day"][i] = env.now
        conditioning = s.transplant.conditioning_days
        if self.slots is None:
            yield env.timeout(d.slot_wait_days[i])
            days["admission_day"][i] = env.now
            yield env.timeout(conditioning)
            days["hsct_day"][i] = env.now
            return self._leave(i, TRANSPLANTED)
        with self.slots.request() as slot:
            yield slot
            days["admission_day"][i] = env.now
            yield env.timeout(conditioning)
            days["hsct_day"][i] = env.now
            self._leave(i, TRANSPLANTED)
            yield env.timeout(s.transplant.slot_days - conditioning)


def simulate_trial(scenario: Scenario, n: int, seed: int, replicate: int = 0,
                   post_model: PostTransplantModel | None = None) -> TrialHistory:
    """Latent histories of n enrolled patients: pathway in SimPy, then post-HSCT events."""
    draws = draw_patients(scenario, n, seed, replicate)
    model = PathwayModel(scenario, draws)
    model.run()
    post = post_transplant_history(model.days["hsct_day"], hsct_group(draws), draws.post_uniforms,
                                   post_model if post_model is not None else calibrate(scenario))
    return TrialHistory(scenario=scenario, draws=draws, days=model.days, exit_reason=model.exit_reason, post=post)


def hsct_group(draws: PatientDraws) -> np.ndarray:
    """Post-transplant subgroup of each patient: 2 * donor type + MRD-positive before HSCT."""
    return 2 * np.maximum(draws.donor, 0) + (~draws.mrd2_negative).astype(np.int64)
