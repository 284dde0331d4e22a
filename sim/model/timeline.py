"""Each patient's pathway up to the transplant slot, computed for all patients at once from their start days.

From enrollment to the request for a transplant slot a patient interacts with nobody: every stage's day
is the previous day plus a delay drawn up front (induction, blinatumomab, the response assessment,
consolidation with its delays, the MRD turnaround, a re-test, the rest of the donor search), and the
risk while waiting in remission is a pair of exponential budgets spent along the waits. So these days
are computed here, vectorised, in exactly the arithmetic the SimPy model used when each step was its
own timeout (day = previous day + delay, in the same order), which keeps every result identical. With
background transplant capacity the slot wait is a drawn delay too, so the whole pathway is known at
enrollment; with the trial's own slots the SimPy model (pathway.py) takes over at the slot request.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.model.draws import CRI, CYCLE_DEATH, CYCLE_OK, EARLY_DEATH, NO_DONOR, REFRACTORY, PatientDraws
from sim.scenario.schema import Scenario
from sim.scenario.waiting import WaitingRates

# Exit codes, in EXIT_REASONS order (pathway.py); new ones are appended so existing codes keep their values.
EXIT_REASONS = (
    "transplanted", "induction_death", "early_death", "refractory", "cri_not_consolidated",
    "consolidation_death", "consolidation_relapse", "mrd_positive", "no_donor", "refusal",
    "relapse_awaiting_hsct", "death_awaiting_hsct",
)
(TRANSPLANTED, INDUCTION_DEATH, BLINA_DEATH, NOT_IN_REMISSION, CRI_OFF, CONSOL_DEATH, CONSOL_RELAPSE,
 MRD_POSITIVE, NO_DONOR_FOUND, REFUSED, WAITING_RELAPSE, WAITING_DEATH) = range(len(EXIT_REASONS))
ON_PATHWAY = -1

# Calendar days of each stage (NaN where a patient never got there).
STAGE_DAYS = (
    "blina_start_day", "response_day", "cycle1_start_day", "cycle1_end_day", "cycle2_start_day",
    "cycle2_end_day", "mrd2_sample_day", "eligible_day", "retest_course_start_day", "retest_sample_day",
    "retest_result_day", "slot_request_day", "admission_day", "hsct_day", "exit_day",
)


@dataclass
class Timelines:
    """Stage days and exits of every patient; those still on the pathway (ON_PATHWAY) wait for a slot."""

    days: dict[str, np.ndarray]
    exit_reason: np.ndarray
    budget: np.ndarray          # (n, 2) relapse and death hazard each patient has left at the slot request
    negative: np.ndarray        # MRD status for the rest of the wait and at HSCT

    @property
    def waiting_for_slot(self) -> np.ndarray:
        """Indices of the patients who request a slot from the trial's own transplant capacity."""
        return np.flatnonzero(self.exit_reason == ON_PATHWAY)


class _Walk:
    """The vectorised walk: `now` per patient, a mask of those still on the pathway, and the stamps."""

    def __init__(self, start: np.ndarray, budget: np.ndarray, rates: WaitingRates) -> None:
        n = start.size
        self.now = start.astype(float).copy()
        self.on = np.ones(n, dtype=bool)
        self.days = {name: np.full(n, np.nan) for name in STAGE_DAYS}
        self.why = np.full(n, ON_PATHWAY, dtype=np.int64)
        self.budget = budget.astype(float).copy()
        self.rates = rates

    def stamp(self, name: str, mask: np.ndarray | None = None) -> None:
        mask = self.on if mask is None else mask
        self.days[name][mask] = self.now[mask]

    def advance(self, delay: np.ndarray | float, mask: np.ndarray | None = None) -> None:
        mask = self.on if mask is None else mask
        self.now = np.where(mask, self.now + delay, self.now)

    def leave(self, mask: np.ndarray, reason: int | np.ndarray, when: np.ndarray | None = None) -> None:
        day = self.now if when is None else when
        self.why = np.where(mask, reason, self.why)
        self.days["exit_day"] = np.where(mask, day, self.days["exit_day"])
        self.on &= ~mask

    def wait_at_risk(self, delay: np.ndarray | float, negative: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Wait `delay` days in remission; those whose relapse or death budget runs out meanwhile leave."""
        mask = self.on if mask is None else mask
        delay = np.broadcast_to(np.asarray(delay, dtype=float), self.now.shape)
        if not self.rates.any:
            self.advance(delay, mask)
            return
        relapse = np.where(negative, self.rates.relapse_negative, self.rates.relapse_positive)
        with np.errstate(divide="ignore", over="ignore"):   # a tiny rate's time overflows to inf: never
            t_relapse = np.where(relapse > 0, self.budget[:, 0] / relapse, np.inf)
            t_death = self.budget[:, 1] / self.rates.death if self.rates.death > 0 else np.full(delay.shape, np.inf)
        first_relapse = t_relapse <= t_death
        t = np.where(first_relapse, t_relapse, t_death)
        out = mask & (t < delay)
        self.leave(out, np.where(first_relapse, WAITING_RELAPSE, WAITING_DEATH), self.now + t)
        stay = mask & ~out
        self.budget[:, 0] = np.where(stay, self.budget[:, 0] - relapse * delay, self.budget[:, 0])
        self.budget[:, 1] = np.where(stay, self.budget[:, 1] - self.rates.death * delay, self.budget[:, 1])
        self.advance(delay, stay)


def timelines(scenario: Scenario, draws: PatientDraws, start: np.ndarray, rates: WaitingRates,
              finite_capacity: bool) -> Timelines:
    """Every patient's stage days from its start day (enrollment) up to the slot request, or (background
    capacity) up to HSCT."""
    s, d = scenario, draws
    walk = _Walk(start, d.waiting_budget, rates)
    # VIP induction, days 1-14.
    walk.leave(walk.on & d.induction_death, INDUCTION_DEATH, walk.now + d.induction_death_offset)
    walk.advance(s.induction.duration_days)
    # Blinatumomab, then the response assessment (on the protocol's day from the start of VIP).
    walk.stamp("blina_start_day")
    walk.leave(walk.on & (d.response == EARLY_DEATH), BLINA_DEATH, walk.now + d.early_death_offset)
    walk.advance(start + s.response.assessment_day - walk.now)
    walk.stamp("response_day")
    walk.leave(walk.on & (d.response == REFRACTORY), NOT_IN_REMISSION)
    if not s.consolidation.include_cri:
        walk.leave(walk.on & (d.response == CRI), CRI_OFF)
    # Consolidation: cycle 1 VDCP, cycle 2 VP + HD-MTX.
    walk.advance(s.consolidation.start_gap_days)
    for c in range(2):
        walk.stamp(f"cycle{c + 1}_start_day")
        outcome = d.cycle_outcome[c]
        event = walk.on & (outcome != CYCLE_OK)
        walk.leave(event, np.where(outcome == CYCLE_DEATH, CONSOL_DEATH, CONSOL_RELAPSE),
                   walk.now + d.cycle_event_offset[c])
        walk.advance(d.cycle_length[c])
        walk.stamp(f"cycle{c + 1}_end_day")
    # MRD before HSCT: from the sample on, the patient waits in remission at risk of relapse and death.
    walk.stamp("mrd2_sample_day")
    negative = d.mrd2_negative.copy()
    walk.wait_at_risk(s.assay.turnaround_days, negative)
    walk.stamp("eligible_day")
    positive = walk.on & ~negative
    if s.mrd.positive_action == "off_study":
        walk.leave(positive, MRD_POSITIVE)
    elif s.mrd.positive_action == "blinatumomab_retest":
        # A further blinatumomab course, then a re-test: negative proceeds, positive leaves the pathway.
        walk.stamp("retest_course_start_day", positive)
        walk.wait_at_risk(s.mrd.retest_course_days, negative, positive)
        positive &= walk.on
        walk.stamp("retest_sample_day", positive)
        negative = np.where(positive, d.mrd_retest_negative, negative)
        walk.wait_at_risk(s.mrd.retest_turnaround_days, negative, positive)
        positive &= walk.on
        walk.stamp("retest_result_day", positive)
        walk.leave(positive & ~negative, MRD_POSITIVE)
    walk.leave(walk.on & (d.donor == NO_DONOR), NO_DONOR_FOUND)
    walk.leave(walk.on & d.refusal, REFUSED)
    # The donor search started at enrollment; wait for whatever is left of it.
    donor_ready = start + d.donor_search_days
    searching = walk.on & (donor_ready > walk.now)
    walk.wait_at_risk(donor_ready - walk.now, negative, searching)
    walk.stamp("slot_request_day")
    if not finite_capacity:
        # A slot in units shared with non-trial patients: a drawn wait, at risk; then conditioning, HSCT day 0.
        walk.wait_at_risk(d.slot_wait_days, negative)
        walk.stamp("admission_day")
        walk.advance(s.transplant.conditioning_days)
        walk.stamp("hsct_day")
        walk.leave(walk.on.copy(), TRANSPLANTED)
    return Timelines(walk.days, walk.why, walk.budget, negative)
