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

from dataclasses import dataclass, field, replace

import numpy as np
import simpy

from sim.model.draws import PatientDraws, draw_patients, draw_trials, enrollment, trial_slice
from sim.model.monitoring import (
    NEVER,
    LandmarkStatus,
    Observations,
    Stop,
    any_enabled,
    futility_look_day,
    landmark_status,
    stage1_day,
    stop,
    success_probability,
    trial_observations,
)
from sim.model.off_pathway import (
    LEFT_IN_REMISSION,
    LEFT_REFRACTORY,
    LEFT_RELAPSED,
    NOT_LEFT_ALIVE,
    off_pathway_history,
)
from sim.model.post_transplant import post_transplant_history
from sim.model.streams import Seeds
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
from sim.scenario.schema import DAYS_PER_MONTH, Scenario
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
    monitoring: MonitoringOutcome | None = None   # with the rules simulated live (simulate_trial(monitor=True))
    # Simulated with other trials (simulate_trials): their shared history, so that an analysis of many trials
    # reads (trial x patient) arrays from it instead of stacking each trial's slice again. Not an argument:
    # dataclasses.replace (another post-HSCT model, say) makes a history whose arrays are no longer the batch's,
    # and it must not inherit the batch.
    batch: Batch | None = field(default=None, init=False, compare=False, repr=False)

    @property
    def n(self) -> int:
        """Number of enrolled patients."""
        return len(self.exit_reason)


@dataclass(frozen=True)
class Batch:
    """Where a trial simulated with others sits: the history of all of them (trial after trial, n patients each,
    this trial's post-HSCT model) and its row."""

    whole: TrialHistory
    row: int
    trials: int


@dataclass(frozen=True)
class MonitoringOutcome:
    """What the interim monitoring did in one trial: the stop (final: a rule may fire after the last
    enrollment, which ends the efficacy claim but not enrollment), how many were enrolled of the n planned,
    a pause of enrollment for Simon's stage 1, and the interim looks for the event log."""

    stop: Stop
    planned: int
    enrolled: int
    pause: tuple[float, float] | None
    looks: tuple[tuple[float, str, str], ...]


def enrollment_starts(enroll_day: np.ndarray) -> np.ndarray:
    """The calendar day SimPy's accrual process reaches for each enrollment (now + (day - now), in order)."""
    starts = np.empty(enroll_day.size)
    now = 0.0
    for i, day in enumerate(enroll_day.tolist()):
        now = now + (day - now)
        starts[i] = now
    return starts


class PathwayModel:
    """SimPy state of one trial: the environment, the accrual (with any interim monitoring), the trial's
    transplant slots, and the timelines."""

    def __init__(self, scenario: Scenario, draws: PatientDraws, monitor: LiveMonitor | None = None) -> None:
        self.scenario = scenario
        self.draws = draws
        self.env = simpy.Environment()
        self.finite = scenario.transplant.capacity == "finite"
        self.slots = simpy.Resource(self.env, capacity=scenario.transplant.slots) if self.finite else None
        self.rates = waiting_rates(scenario)
        self.start = enrollment_starts(draws.enroll_day)
        self.lines: Timelines = timelines(scenario, draws, self.start, self.rates, self.finite)
        self.queued = set(self.lines.waiting_for_slot.tolist())
        self.monitor = monitor
        self.enrolled = draws.enroll_day.size

    @property
    def days(self) -> dict[str, np.ndarray]:
        return self.lines.days

    @property
    def exit_reason(self) -> np.ndarray:
        return self.lines.exit_reason

    def run(self) -> None:
        """Enroll every patient and run until all have left the pathway or been transplanted.

        Calendar time needs SimPy only where patients interact with one another or with the trial: a transplant
        slot shared with other patients, an interim look. Without either (background capacity, no live rules)
        the timelines are the whole history and no event is scheduled.
        """
        if self.monitor is None and not self.queued:
            return
        self.env.process(self._accrual())
        self.env.run()

    def _accrual(self):
        if self.monitor is not None:
            yield from self._monitored_accrual()
            return
        env = self.env
        for i, day in enumerate(self.draws.enroll_day):
            yield env.timeout(day - env.now)
            if i in self.queued:
                env.process(self._transplant_slot(i))

    def _monitored_accrual(self):
        """Enroll at each arrival unless a rule has fired by then (from what the enrolled patients have shown);
        pause after Simon's stage 1 if the scenario says so, and enroll the arrivals after the pause."""
        env, m = self.env, self.monitor
        j = 0
        for i in range(self.draws.enroll_day.size):
            while m.arrival(j) <= m.resume_day:          # sites stay open, but nobody is enrolled in a pause
                j += 1
            day = m.arrival(j)
            stop = m.stop_before(self, i)
            if stop.day <= day:
                yield env.timeout(stop.day - env.now)
                self.enrolled = i
                return
            yield env.timeout(day - env.now)
            if self.start[i] != env.now:                  # enrollment moved by a pause: recompute the timelines
                self._restart_from(i, m, j)
            j += 1
            if i in self.queued:
                env.process(self._transplant_slot(i))
            if m.pauses_after(i):
                m.resume_day = m.stage1_day(self, i + 1)

    def _restart_from(self, i: int, m: LiveMonitor, j: int) -> None:
        """Patients i.. enroll at the arrivals from j on: their start days and timelines follow."""
        starts = self.start.copy()
        now = float(self.env.now)
        starts[i] = now
        for k in range(i + 1, starts.size):
            day = m.arrival(j + k - i)
            now = now + (day - now)
            starts[k] = now
        self.start = starts
        old = self.lines
        self.lines = timelines(self.scenario, self.draws, starts, self.rates, self.finite)
        for name, values in self.lines.days.items():      # patients before i keep what already happened to them
            values[:i] = old.days[name][:i]
        self.lines.exit_reason[:i] = old.exit_reason[:i]
        self.lines.budget[:i] = old.budget[:i]
        self.queued = set(self.lines.waiting_for_slot.tolist())

    def _leave(self, i: int, reason: int, day: float | None = None) -> None:
        self.lines.exit_reason[i] = reason
        self.days["exit_day"][i] = self.env.now if day is None else day

    def _transplant_slot(self, i: int):
        """From the slot request (the day timeline.py computed) to HSCT, through the trial's FIFO slot queue."""
        env = self.env
        yield env.timeout(self.days["slot_request_day"][i] - env.now)
        conditioning = self.scenario.transplant.conditioning_days
        with self.slots.request() as slot:
            if (yield from self._queue_at_risk(i, slot)):
                return   # leaving the `with` block withdraws the request from the queue
            self.days["admission_day"][i] = env.now     # self.days: a pause may have replaced the timelines
            # Nothing can happen to the patient during conditioning, so HSCT needs no event of its own: the
            # slot is held for slot_days from admission, and that is the one timeout.
            self.days["hsct_day"][i] = env.now + conditioning
            self._leave(i, TRANSPLANTED, env.now + conditioning)
            yield env.timeout(self.scenario.transplant.slot_days)

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
                   post_model: PostTransplantModel | None = None, monitor: bool = False,
                   seeds: Seeds | None = None) -> TrialHistory:
    """Latent histories of n enrolled patients: pathway in SimPy, then post-HSCT events.

    monitor=True simulates the scenario's interim monitoring rules live: enrollment stops when a rule fires
    (the history then holds the patients enrolled) and pauses for Simon's stage 1 if asked. Without it
    (the sizing study's nested path) every patient is enrolled and the rules are applied afterwards, which
    gives the same stop for rules that only stop enrollment (sim/model/monitoring.py). seeds: the replicate's
    streams hashed ahead (draws.draw_patients).
    """
    draws = draw_patients(scenario, n, seed, replicate, seeds)
    post_model = post_model if post_model is not None else calibrate(scenario)
    live = None
    if monitor and any_enabled(scenario.monitoring):
        live = LiveMonitor(scenario, draws, seed, replicate, times_after_hsct(draws, post_model))
    model = PathwayModel(scenario, draws, live)
    model.run()
    if live is not None:
        model.draws = replace(draws, enroll_day=model.start)
        draws = take_first(model.draws, model.enrolled)
        model.lines = _first_lines(model.lines, model.enrolled)
    if np.any(model.exit_reason < 0):   # a process left waiting forever (e.g. a slot never released)
        raise RuntimeError(f"{np.count_nonzero(model.exit_reason < 0)} patients never left the pathway")
    post = post_transplant_history(model.days["hsct_day"], hsct_group(draws), draws.post_uniforms, post_model)
    why = model.exit_reason
    off = off_pathway_history(scenario, draws, off_pathway_state(why), latest_mrd_negative(why, draws),
                              model.days["exit_day"], post_model.ltfu_rate, post_model.horizon_days)
    outcome = live.outcome(model, n) if live is not None else None
    return TrialHistory(scenario=scenario, draws=draws, days=model.days, exit_reason=model.exit_reason, post=post,
                        off=off, monitoring=outcome)


def simulate_trials(scenario: Scenario, n: int, seeds: list[Seeds], post_models: list[PostTransplantModel]
                    ) -> list[list[TrialHistory]]:
    """simulate_trial(scenario, n, s.seed, s.replicate, post_model=model) for every s in seeds and model in
    post_models ([trial][model]), where no patient interacts with another or with the trial (background
    transplant capacity, no live rules): the pathway is then the timelines alone (PathwayModel.run schedules
    nothing), and every step is per patient, so the trials are simulated as one row of len(seeds) * n
    patients and cut into trials afterwards. The models share the pathway and differ after HSCT."""
    if scenario.transplant.capacity == "finite":
        raise ValueError("trials with the trial's own transplant slots interact: simulate them one by one")
    draws, screened = draw_trials(scenario, n, seeds)
    start = np.concatenate([enrollment_starts(draws.enroll_day[b * n:(b + 1) * n]) for b in range(len(seeds))])
    lines = timelines(scenario, draws, start, waiting_rates(scenario), False)
    why = lines.exit_reason
    if np.any(why < 0):
        raise RuntimeError(f"{np.count_nonzero(why < 0)} patients never left the pathway")
    first = post_models[0]
    off = off_pathway_history(scenario, draws, off_pathway_state(why), latest_mrd_negative(why, draws),
                              lines.days["exit_day"], first.ltfu_rate, first.horizon_days)
    group = hsct_group(draws)
    posts = [post_transplant_history(lines.days["hsct_day"], group, draws.post_uniforms, model)
             for model in post_models]
    wholes = [TrialHistory(scenario=scenario, draws=draws, days=lines.days, exit_reason=why, post=post, off=off)
              for post in posts]
    out = []
    for b, count in enumerate(screened):
        lo, hi = b * n, (b + 1) * n
        trial, days, left, trial_off = trial_slice(draws, lo, hi, count), _cut(lines.days, lo, hi), why[lo:hi], \
            _cut(off, lo, hi)
        out.append([_in_batch(TrialHistory(scenario=scenario, draws=trial, days=days, exit_reason=left,
                                           post=_cut(post, lo, hi), off=trial_off), Batch(whole, b, len(screened)))
                    for post, whole in zip(posts, wholes, strict=True)])
    return out


def _in_batch(history: TrialHistory, batch: Batch) -> TrialHistory:
    object.__setattr__(history, "batch", batch)   # frozen, and not an __init__ argument (TrialHistory.batch)
    return history


def _cut(columns: dict[str, np.ndarray], lo: int, hi: int) -> dict[str, np.ndarray]:
    return {key: value[lo:hi] for key, value in columns.items()}


def times_after_hsct(draws: PatientDraws, post_model: PostTransplantModel) -> dict[str, np.ndarray]:
    """Each patient's relapse, NRM, death and loss to follow-up in days after a transplant (inf: none), as if
    transplanted: what the monitoring of day-100 NRM and the futility look read once HSCT has happened."""
    post = post_transplant_history(np.zeros(draws.enroll_day.size), hsct_group(draws), draws.post_uniforms,
                                   post_model)
    return {key: np.nan_to_num(post[f"{key}_day"], nan=np.inf) for key in ("relapse", "nrm", "death", "ltfu")}


def take_first(draws: PatientDraws, m: int) -> PatientDraws:
    """The draws of the first m patients."""
    return trial_slice(draws, 0, m, draws.n_screened)


def _first_lines(lines: Timelines, m: int) -> Timelines:
    return Timelines({k: v[:m] for k, v in lines.days.items()}, lines.exit_reason[:m], lines.budget[:m],
                     lines.negative[:m])


class LiveMonitor:
    """The scenario's interim rules as the accrual process consults them (sim/model/monitoring.py's rules)."""

    def __init__(self, scenario: Scenario, draws: PatientDraws, seed: int, replicate: int,
                 after_hsct: dict[str, np.ndarray]) -> None:
        self.scenario = scenario
        self.draws = draws
        self.seed, self.replicate = seed, replicate
        self.after_hsct = after_hsct
        self.arrivals = draws.enroll_day
        self.resume_day = -np.inf
        self.paused: tuple[float, float] | None = None
        self.landmark = scenario.analysis.landmark_months * DAYS_PER_MONTH

    def arrival(self, j: int) -> float:
        """Day of the j-th enrolment-eligible arrival (more are drawn when a pause has skipped some)."""
        while j >= self.arrivals.size:
            more, _, _ = enrollment(self.scenario.accrual, 2 * self.arrivals.size + 16, self.seed, self.replicate)
            self.arrivals = more
        return float(self.arrivals[j])

    def observed(self, model: PathwayModel, k: int) -> tuple[Observations, LandmarkStatus]:
        """What the first k patients show (days not known yet are NaN and give nothing)."""
        days = {name: values[:k] for name, values in model.days.items()}
        after = {key: value[:k] for key, value in self.after_hsct.items()}
        obs = trial_observations(self.draws.response[:k], model.exit_reason[:k], days, after)
        status = landmark_status(model.start[:k], model.exit_reason[:k], days, after, self.landmark)
        return obs, status

    def stop_before(self, model: PathwayModel, k: int) -> Stop:
        """The first day a rule fires from the first k patients' observations (inf if none)."""
        if k == 0:
            return NEVER
        obs, status = self.observed(model, k)
        return stop(obs, status, self.draws.enroll_day.size, self.scenario.monitoring, self.scenario.analysis)

    def pauses_after(self, i: int) -> bool:
        simon = self.scenario.monitoring.simon
        return simon.enabled and simon.pause_enrollment and i + 1 == simon.n1

    def stage1_day(self, model: PathwayModel, k: int) -> float:
        obs, _ = self.observed(model, k)
        day = stage1_day(obs, k, self.scenario.monitoring.simon.n1)
        self.paused = (float(model.env.now), day)
        return day

    def outcome(self, model: PathwayModel, planned: int) -> MonitoringOutcome:
        final = self.stop_before(model, model.enrolled)
        looks = []
        if self.paused is not None:
            looks.append((self.paused[0], "simon", "enrollment paused until stage 1 is evaluated"))
            looks.append((self.paused[1], "simon", "stage 1 evaluated: " + ("stop" if final.rule == "simon"
                                                                             else "continue")))
        if self.scenario.monitoring.futility.enabled and model.enrolled:
            obs, status = self.observed(model, model.enrolled)
            look = futility_look_day(status, self.scenario.monitoring.futility)
            chance = success_probability(status, planned, look, self.scenario.monitoring.futility,
                                         self.scenario.analysis)
            looks.append((look, "futility", f"probability of final success {chance:.3f}: "
                                            + ("stop" if final.rule == "futility" else "continue")))
        if final.stopped:
            looks.append((final.day, final.rule, "rule fired: enrollment stops"
                          + (" (every patient already enrolled)" if model.enrolled == planned else "")))
        return MonitoringOutcome(final, planned, model.enrolled, self.paused, tuple(sorted(looks)))


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
