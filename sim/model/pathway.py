"""The SimPy pathway: accrual in calendar time, and the trial's own transplant slots when it has them.

Day 0 is the day the first site opens. What happens to a patient between enrollment and the request for
a transplant slot depends on nobody else, so timeline.py computes it for all patients at once from their
enrollment days (stage by stage, in the arithmetic a chain of timeouts would use). SimPy holds what is
shared in calendar time: the accrual process enrolls each patient at their arrival (one event per
patient), and with a finite trial-only transplant capacity (transplant.capacity = "finite") each patient
who reaches the slot request joins a FIFO queue for the trial's slots (a simpy.Resource), at risk of
relapse and death while queued (leaving the queue if that happens), then holds the slot through
conditioning and the transplant stay. With background capacity the slot wait is a drawn delay and no
patient needs an event after enrollment. Post-transplant events and the follow-up of patients who leave
alive are drawn afterwards, vectorised, by post_transplant.py and off_pathway.py. `simulate_trial` is the
entry point and returns the latent history of every patient: no censoring happens here (that is the
analysis's job).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import simpy

from sim.model.draws import PatientDraws, draw_patients
from sim.model.off_pathway import (
    LEFT_IN_REMISSION,
    LEFT_REFRACTORY,
    LEFT_RELAPSED,
    NOT_LEFT_ALIVE,
    off_pathway_history,
)
from sim.model.post_transplant import post_transplant_history
from sim.model.timeline import (  # noqa: F401 (the exit codes are the pathway's vocabulary, imported from here)
    BLINA_DEATH,
    CONSOL_DEATH,
    CONSOL_RELAPSE,
    CRI_OFF,
    EXIT_REASONS,
    INDUCTION_DEATH,
    MRD_POSITIVE,
    NO_DONOR_FOUND,
    NOT_IN_REMISSION,
    ON_PATHWAY,
    REFUSED,
    STAGE_DAYS,
    TRANSPLANTED,
    WAITING_DEATH,
    WAITING_RELAPSE,
    Timelines,
    timelines,
)
from sim.scenario.calibrate import PostTransplantModel, calibrate
from sim.scenario.schema import Scenario
from sim.scenario.waiting import waiting_rates

# Reasons for leaving the pathway that are deaths (on the exit day).
DEATH_EXITS = (INDUCTION_DEATH, BLINA_DEATH, CONSOL_DEATH, WAITING_DEATH)


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


def enrollment_starts(enroll_day: np.ndarray) -> np.ndarray:
    """The calendar day SimPy's accrual process reaches for each enrollment (now + (day - now), in order)."""
    starts = np.empty(enroll_day.size)
    now = 0.0
    for i, day in enumerate(enroll_day.tolist()):
        now = now + (day - now)
        starts[i] = now
    return starts


class PathwayModel:
    """SimPy state of one trial: the environment, the accrual, the trial's transplant slots, the timelines."""

    def __init__(self, scenario: Scenario, draws: PatientDraws) -> None:
        self.scenario = scenario
        self.draws = draws
        self.env = simpy.Environment()
        self.finite = scenario.transplant.capacity == "finite"
        self.slots = simpy.Resource(self.env, capacity=scenario.transplant.slots) if self.finite else None
        self.rates = waiting_rates(scenario)
        self.start = enrollment_starts(draws.enroll_day)
        self.lines: Timelines = timelines(scenario, draws, self.start, self.rates, self.finite)
        self.queued = set(self.lines.waiting_for_slot.tolist())

    @property
    def days(self) -> dict[str, np.ndarray]:
        return self.lines.days

    @property
    def exit_reason(self) -> np.ndarray:
        return self.lines.exit_reason

    def run(self) -> None:
        """Enroll every patient and run until all have left the pathway or been transplanted."""
        self.env.process(self._accrual())
        self.env.run()

    def _accrual(self):
        env = self.env
        for i, day in enumerate(self.draws.enroll_day):
            yield env.timeout(day - env.now)
            if i in self.queued:
                env.process(self._transplant_slot(i))

    def _leave(self, i: int, reason: int) -> None:
        self.lines.exit_reason[i] = reason
        self.days["exit_day"][i] = self.env.now

    def _transplant_slot(self, i: int):
        """From the slot request (the day timeline.py computed) to HSCT, through the trial's FIFO slot queue."""
        env, days = self.env, self.days
        yield env.timeout(days["slot_request_day"][i] - env.now)
        conditioning = self.scenario.transplant.conditioning_days
        with self.slots.request() as slot:
            if (yield from self._queue_at_risk(i, slot)):
                return   # leaving the `with` block withdraws the request from the queue
            days["admission_day"][i] = env.now
            yield env.timeout(conditioning)
            days["hsct_day"][i] = env.now
            self._leave(i, TRANSPLANTED)
            yield env.timeout(self.scenario.transplant.slot_days - conditioning)

    def _queue_at_risk(self, i: int, slot):
        """Wait in the slot queue in remission; True if the patient relapsed or died before a slot was granted."""
        if not self.rates.any:
            yield slot
            return False
        negative = bool(self.lines.negative[i])
        relapse = self.rates.relapse_negative if negative else self.rates.relapse_positive
        budget = self.lines.budget[i]
        t_relapse = budget[0] / relapse if relapse > 0 else np.inf
        t_death = budget[1] / self.rates.death if self.rates.death > 0 else np.inf
        t, reason = (t_relapse, WAITING_RELAPSE) if t_relapse <= t_death else (t_death, WAITING_DEATH)
        if not np.isfinite(t):
            yield slot
            return False
        queued = self.env.now
        yield slot | self.env.timeout(t)
        if slot.triggered:
            budget[0] -= relapse * (self.env.now - queued)
            budget[1] -= self.rates.death * (self.env.now - queued)
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
