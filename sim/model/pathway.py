"""The SimPy pathway: accrual, VIP, blinatumomab, response, consolidation, MRD, donor, transplant slot.

One process per patient walks the protocol in calendar days (day 0 = the first site opens) and
records when each stage happens and why a patient leaves the pathway. The random outcomes come from
`PatientDraws`; what SimPy adds is calendar time and the one place where patients interact, a
finite pool of transplant slots (a FIFO queue). From the end of consolidation to admission a patient
in remission waits at risk of relapse and death (constant hazards, the relapse hazard by the latest
MRD sample): each patient carries two unit-exponential budgets of cumulative hazard, spent as the
waits go by, and leaves the pathway (and any slot queue) when one runs out. Post-transplant events
and the follow-up of patients who leave alive involve no interaction and are drawn afterwards,
vectorised, by post_transplant.py and off_pathway.py. `simulate_trial` is the entry point and
returns the latent history of every patient: no censoring happens here (that is the analysis's job).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import simpy

from sim.model.draws import CRI, CYCLE_DEATH, CYCLE_OK, EARLY_DEATH, NO_DONOR, REFRACTORY, PatientDraws, draw_patients
from sim.model.off_pathway import (
    LEFT_IN_REMISSION,
    LEFT_REFRACTORY,
    LEFT_RELAPSED,
    NOT_LEFT_ALIVE,
    off_pathway_history,
)
from sim.model.post_transplant import post_transplant_history
from sim.scenario.calibrate import PostTransplantModel, calibrate
from sim.scenario.schema import Scenario
from sim.scenario.waiting import waiting_rates

# New reasons are appended at the end so that existing codes keep their values.
EXIT_REASONS = (
    "transplanted", "induction_death", "early_death", "refractory", "cri_not_consolidated",
    "consolidation_death", "consolidation_relapse", "mrd_positive", "no_donor", "refusal",
    "relapse_awaiting_hsct", "death_awaiting_hsct",
)
(TRANSPLANTED, INDUCTION_DEATH, BLINA_DEATH, NOT_IN_REMISSION, CRI_OFF, CONSOL_DEATH, CONSOL_RELAPSE,
 MRD_POSITIVE, NO_DONOR_FOUND, REFUSED, WAITING_RELAPSE, WAITING_DEATH) = range(len(EXIT_REASONS))
# Reasons for leaving the pathway that are deaths (on the exit day).
DEATH_EXITS = (INDUCTION_DEATH, BLINA_DEATH, CONSOL_DEATH, WAITING_DEATH)

# Calendar days stamped by the SimPy processes (NaN where a patient never got there).
STAGE_DAYS = (
    "blina_start_day", "response_day", "cycle1_start_day", "cycle1_end_day", "cycle2_start_day",
    "cycle2_end_day", "mrd2_sample_day", "eligible_day", "retest_course_start_day", "retest_sample_day",
    "retest_result_day", "slot_request_day", "admission_day", "hsct_day", "exit_day",
)


@dataclass(frozen=True)
class TrialHistory:
    """Latent history of one virtual trial: the draws, the calendar stamps, post-HSCT events."""

    scenario: Scenario
    draws: PatientDraws
    days: dict[str, np.ndarray]
    exit_reason: np.ndarray
    post: dict[str, np.ndarray]
    off: dict[str, np.ndarray]      # after leaving the pathway alive: relapse, death, loss to follow-up

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
        self.rates = waiting_rates(scenario)
        self.budget = draws.waiting_budget.copy()   # cumulative relapse and death hazard each patient has left

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
        # MRD before HSCT: the result, after the lab's turnaround, decides eligibility. From the sample on, the
        # patient waits in remission at risk of relapse and death.
        days["mrd2_sample_day"][i] = env.now
        negative = bool(d.mrd2_negative[i])
        if (yield from self._wait_at_risk(i, s.assay.turnaround_days, negative)):
            return
        days["eligible_day"][i] = env.now
        if not negative and s.mrd.positive_action == "off_study":
            return self._leave(i, MRD_POSITIVE)
        if not negative and s.mrd.positive_action == "blinatumomab_retest":
            # A further blinatumomab course, then a re-test: negative proceeds, positive leaves the pathway.
            days["retest_course_start_day"][i] = env.now
            if (yield from self._wait_at_risk(i, s.mrd.retest_course_days, negative)):
                return
            days["retest_sample_day"][i] = env.now
            negative = bool(d.mrd_retest_negative[i])
            if (yield from self._wait_at_risk(i, s.mrd.retest_turnaround_days, negative)):
                return
            days["retest_result_day"][i] = env.now
            if not negative:
                return self._leave(i, MRD_POSITIVE)
        if d.donor[i] == NO_DONOR:
            return self._leave(i, NO_DONOR_FOUND)
        if d.refusal[i]:
            return self._leave(i, REFUSED)
        # Donor search started at enrollment; then a transplant slot, conditioning, HSCT day 0.
        donor_ready = start + d.donor_search_days[i]
        if donor_ready > env.now:
            if (yield from self._wait_at_risk(i, donor_ready - env.now, negative)):
                return
        days["slot_request_day"][i] = env.now
        conditioning = s.transplant.conditioning_days
        if self.slots is None:
            if (yield from self._wait_at_risk(i, d.slot_wait_days[i], negative)):
                return
            days["admission_day"][i] = env.now
            yield env.timeout(conditioning)
            days["hsct_day"][i] = env.now
            return self._leave(i, TRANSPLANTED)
        with self.slots.request() as slot:
            if (yield from self._queue_at_risk(i, slot, negative)):
                return   # leaving the `with` block withdraws the request from the queue
            days["admission_day"][i] = env.now
            yield env.timeout(conditioning)
            days["hsct_day"][i] = env.now
            self._leave(i, TRANSPLANTED)
            yield env.timeout(s.transplant.slot_days - conditioning)

    def _time_to_waiting_event(self, i: int, negative: bool) -> tuple[float, int]:
        """Days until patient i's relapse or death budget runs out at the current hazards, and which one."""
        relapse = self.rates.relapse_negative if negative else self.rates.relapse_positive
        t_relapse = self.budget[i, 0] / relapse if relapse > 0 else np.inf
        t_death = self.budget[i, 1] / self.rates.death if self.rates.death > 0 else np.inf
        return (t_relapse, WAITING_RELAPSE) if t_relapse <= t_death else (t_death, WAITING_DEATH)

    def _spend(self, i: int, negative: bool, days: float) -> None:
        relapse = self.rates.relapse_negative if negative else self.rates.relapse_positive
        self.budget[i, 0] -= relapse * days
        self.budget[i, 1] -= self.rates.death * days

    def _wait_at_risk(self, i: int, delay: float, negative: bool):
        """Wait `delay` days in remission; True if the patient relapsed or died meanwhile (and left the pathway)."""
        if not self.rates.any:
            yield self.env.timeout(delay)
            return False
        t, reason = self._time_to_waiting_event(i, negative)
        if t < delay:
            yield self.env.timeout(t)
            self._leave(i, reason)
            return True
        self._spend(i, negative, delay)
        yield self.env.timeout(delay)
        return False

    def _queue_at_risk(self, i: int, slot, negative: bool):
        """Wait in the slot queue in remission; True if the patient relapsed or died before a slot was granted."""
        if not self.rates.any:
            yield slot
            return False
        t, reason = self._time_to_waiting_event(i, negative)
        if not np.isfinite(t):
            yield slot
            return False
        queued = self.env.now
        yield slot | self.env.timeout(t)
        if slot.triggered:
            self._spend(i, negative, self.env.now - queued)
            return False
        self._leave(i, reason)
        return True


def simulate_trial(scenario: Scenario, n: int, seed: int, replicate: int = 0,
                   post_model: PostTransplantModel | None = None) -> TrialHistory:
    """Latent histories of n enrolled patients: pathway in SimPy, then post-HSCT events."""
    draws = draw_patients(scenario, n, seed, replicate)
    model = PathwayModel(scenario, draws)
    model.run()
    if np.any(model.exit_reason < 0):   # a process left waiting forever (e.g. a slot never released)
        raise RuntimeError(f"{np.count_nonzero(model.exit_reason < 0)} patients never left the pathway")
    post_model = post_model if post_model is not None else calibrate(scenario)
    post = post_transplant_history(model.days["hsct_day"], hsct_group(draws), draws.post_uniforms, post_model)
    why = model.exit_reason
    off = off_pathway_history(scenario, draws, off_pathway_state(why), latest_mrd_negative(why, draws),
                              model.days["exit_day"], post_model.ltfu_rate, post_model.horizon_days)
    return TrialHistory(scenario=scenario, draws=draws, days=model.days, exit_reason=model.exit_reason, post=post,
                        off=off)


def off_pathway_state(exit_reason: np.ndarray) -> np.ndarray:
    """How each patient left the pathway alive (off_pathway.py states): refractory, relapsed, in remission, or not."""
    return np.select([exit_reason == NOT_IN_REMISSION, np.isin(exit_reason, (CONSOL_RELAPSE, WAITING_RELAPSE)),
                      np.isin(exit_reason, (CRI_OFF, MRD_POSITIVE, NO_DONOR_FOUND, REFUSED))],
                     [LEFT_REFRACTORY, LEFT_RELAPSED, LEFT_IN_REMISSION], NOT_LEFT_ALIVE)


def latest_mrd_negative(exit_reason: np.ndarray, draws: PatientDraws) -> np.ndarray:
    """MRD-negative at the latest result before leaving: after induction (CRi not consolidated), else before HSCT
    or at the re-test."""
    return np.where(exit_reason == CRI_OFF, draws.mrd1_negative, draws.mrd2_negative | draws.mrd_retest_negative)


def hsct_group(draws: PatientDraws) -> np.ndarray:
    """Post-transplant subgroup of each patient: 2 * donor type + MRD-positive at HSCT.

    MRD-positive before HSCT and not negative at a re-test (re-test draws are False unless that policy is used).
    """
    mrd_positive = ~draws.mrd2_negative & ~draws.mrd_retest_negative
    return 2 * np.maximum(draws.donor, 0) + mrd_positive.astype(np.int64)
