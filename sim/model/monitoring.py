"""Interim monitoring rules evaluated in calendar time, as information arrives.

Information arrives as observations: one per patient and rule, on the calendar day it becomes known
(a death during VIP or blinatumomab on its day, survival of induction on the response assessment day;
CR or CRi, or its absence, on the assessment day, a death before it on its day; non-relapse mortality
by day 100 after HSCT on the day of death, its absence on day 100). A rule fires on the day of the
observation that crosses its boundary; the futility rule on the primary endpoint looks once, on a
calendar day. `stop` gives the first day any rule fires for the trial made of the first n patients,
from that trial's observations alone; the SimPy model calls it as observations arrive, and the sizing
study calls it after the fact for every n (both give the same day: observations only accumulate).

What stopping means: enrollment ends on the day a rule fires; patients already enrolled continue their
pathway and follow-up; the trial's efficacy claim is "not rejected" (its estimates are still reported).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import special

from sim.model.draws import CR, CRI
from sim.model.timeline import BLINA_DEATH, INDUCTION_DEATH, TRANSPLANTED
from sim.scenario.schema import DAYS_PER_MONTH, Analysis, InterimFutility, Monitoring, SafetyRule
from sim.stats.designs import boundary_from_table, posterior_boundary

# Observation kinds (one stream per rule).
INDUCTION, NRM100, RESPONSE = range(3)
RULES = ("induction_death", "nrm_day100", "simon", "futility")
NRM_WINDOW_DAYS = 100.0


@dataclass(frozen=True)
class Observations:
    """Every observation of one trial, sorted by (day, patient): kind, patient index, day, event."""

    kind: np.ndarray
    patient: np.ndarray
    day: np.ndarray
    event: np.ndarray

    @staticmethod
    def of(kind: np.ndarray, patient: np.ndarray, day: np.ndarray, event: np.ndarray) -> Observations:
        ok = np.isfinite(day)
        order = np.lexsort((patient[ok], day[ok]))
        return Observations(kind[ok][order], patient[ok][order], day[ok][order], event[ok][order])


@dataclass(frozen=True)
class LandmarkStatus:
    """What the futility look needs per patient: enrollment, exit from the pathway, HSCT day (NaN: none),
    and in days after HSCT the first relapse or death and the loss to follow-up (inf: none)."""

    enroll_day: np.ndarray
    exit_day: np.ndarray
    transplanted: np.ndarray
    hsct_day: np.ndarray
    fail_time: np.ndarray
    ltfu_time: np.ndarray
    landmark: float


@dataclass(frozen=True)
class Stop:
    """When a trial stops, and why: day inf and rule '' when no rule fires."""

    day: float
    rule: str

    @property
    def stopped(self) -> bool:
        return self.rule != ""


NEVER = Stop(math.inf, "")


def trial_observations(response: np.ndarray, exit_reason: np.ndarray, days: dict[str, np.ndarray],
                       after_hsct: dict[str, np.ndarray]) -> Observations:
    """Every observation of a trial from its stage days and its post-HSCT times (days since HSCT: nrm, death,
    ltfu; inf where none). Patients whose day is unknown (NaN: not there yet, not transplanted) give none."""
    n = exit_reason.size
    patient = np.arange(n)
    died_early = np.isin(exit_reason, (INDUCTION_DEATH, BLINA_DEATH))
    known_day = np.where(died_early, days["exit_day"], days["response_day"])
    responded = ~died_early & np.isin(response, (CR, CRI))
    hsct = np.where(exit_reason == TRANSPLANTED, days["hsct_day"], np.nan)
    nrm, death, ltfu = after_hsct["nrm"], after_hsct["death"], after_hsct["ltfu"]
    nrm_event = (nrm <= NRM_WINDOW_DAYS) & (nrm <= ltfu)
    # Without NRM by day 100 the status is known on day 100, or at an earlier death from relapse; a patient lost
    # to follow-up before either is never evaluable.
    no_nrm_day = np.minimum(death, NRM_WINDOW_DAYS)
    nrm_day = np.where(nrm_event, nrm, np.where(ltfu < no_nrm_day, np.inf, no_nrm_day))
    return Observations.of(
        np.concatenate([np.full(n, INDUCTION), np.full(n, RESPONSE), np.full(n, NRM100)]),
        np.concatenate([patient, patient, patient]),
        np.concatenate([known_day, known_day, hsct + nrm_day]),
        np.concatenate([died_early, responded, nrm_event]))


def landmark_status(enroll_day: np.ndarray, exit_reason: np.ndarray, days: dict[str, np.ndarray],
                    after_hsct: dict[str, np.ndarray], landmark_days: float) -> LandmarkStatus:
    """Each patient's RFS data after HSCT, for the futility look."""
    transplanted = exit_reason == TRANSPLANTED
    hsct = np.where(transplanted, days["hsct_day"], np.nan)
    return LandmarkStatus(enroll_day, days["exit_day"], transplanted, hsct,
                          np.minimum(after_hsct["relapse"], after_hsct["death"]), after_hsct["ltfu"], landmark_days)


def any_enabled(monitoring: Monitoring) -> bool:
    return any(getattr(monitoring, rule).enabled for rule in RULES)


def stop(obs: Observations, status: LandmarkStatus, n: int, monitoring: Monitoring, analysis: Analysis) -> Stop:
    """The first day a rule fires in the trial of the first n patients (NEVER if none does)."""
    candidates = []
    mine = obs.patient < n
    for kind, name in ((INDUCTION, "induction_death"), (NRM100, "nrm_day100")):
        rule = getattr(monitoring, name)
        if rule.enabled:
            candidates.append((_safety_day(obs, mine & (obs.kind == kind), rule, n), name))
    if monitoring.simon.enabled:
        candidates.append((_simon_day(obs, mine & (obs.kind == RESPONSE), monitoring.simon.n1, monitoring.simon.r1),
                           "simon"))
    if monitoring.futility.enabled:
        candidates.append((_futility_day(status, n, monitoring.futility, analysis), "futility"))
    day, rule = min(candidates, default=(math.inf, ""))
    return Stop(day, rule) if math.isfinite(day) else NEVER


def _safety_day(obs: Observations, mask: np.ndarray, rule: SafetyRule, n: int) -> float:
    """Day of the observation at which the events among the first k evaluable reach the boundary."""
    if not mask.any():
        return math.inf
    limits = safety_limits(rule, n)
    events = obs.event[mask]
    k = np.arange(1, events.size + 1)
    d = np.cumsum(events)
    fired = np.flatnonzero(d >= limits[np.minimum(k, n) - 1])
    return float(obs.day[mask][fired[0]]) if fired.size else math.inf


def safety_limits(rule: SafetyRule, nmax: int) -> np.ndarray:
    """Events that stop the trial at k = 1..nmax evaluable patients (nmax + 1 where nothing stops).

    The boundary at k does not depend on nmax, so one table, for the next power of two, serves every n.
    """
    size = 1 << max(nmax - 1, 63).bit_length()
    limits = _limits(rule.prior_a, rule.prior_b, rule.threshold, rule.cutoff, rule.every, rule.min_evaluable,
                     tuple(tuple(pair) for pair in rule.boundary), size)[:nmax]
    return np.where(limits > size, nmax + 1, limits)


@lru_cache(maxsize=256)
def _limits(a: float, b: float, threshold: float, cutoff: float, every: int, first: int,
            table: tuple[tuple[int, int], ...], nmax: int) -> np.ndarray:
    if table:
        inside = [(k, d) for k, d in table if k <= nmax]
        return boundary_from_table(inside, nmax).thresholds() if inside else np.full(nmax, nmax + 1)
    if first > nmax:
        return np.full(nmax, nmax + 1)
    return posterior_boundary(a, b, threshold, cutoff, nmax, every, first).thresholds()


def _simon_day(obs: Observations, mask: np.ndarray, n1: int, r1: int) -> float:
    """Day stage 1 is complete (the n1-th evaluable response), if at most r1 of those n1 responded."""
    events = obs.event[mask]
    if events.size < n1 or events[:n1].sum() > r1:
        return math.inf
    return float(obs.day[mask][n1 - 1])


def stage1_day(obs: Observations, n: int, n1: int) -> float:
    """Day the n1-th evaluable response of the first n patients is known (inf before)."""
    mask = (obs.patient < n) & (obs.kind == RESPONSE)
    days = obs.day[mask]
    return float(days[n1 - 1]) if days.size >= n1 else math.inf


def futility_look_day(status: LandmarkStatus, rule: InterimFutility) -> float:
    return float(status.enroll_day[0] + rule.at_month * DAYS_PER_MONTH)


def _futility_day(status: LandmarkStatus, n: int, rule: InterimFutility, analysis: Analysis) -> float:
    day = futility_look_day(status, rule)
    return day if success_probability(status, n, day, rule, analysis) < rule.threshold else math.inf


def success_probability(status: LandmarkStatus, n: int, day: float, rule: InterimFutility,
                        analysis: Analysis) -> float:
    """Chance, at `day`, that the final analysis of the first n patients rejects H0 (1.0 before any data).

    The model (README: interim futility): the final test is read as the exact binomial test on the
    landmark status of N transplanted patients, N = n x the share of patients who have left the pathway
    by `day` that were transplanted. Within the landmark window RFS is taken as exponential, S(u) =
    S^(u / landmark); at the look, K patients are known survivors, F known failures, and each patient at
    risk with follow-up u survives to the landmark with probability S^(1 - u / landmark), each patient
    still to come with probability S. S is the exponential estimate from the look's data (conditional
    power, 'trend'), p1 ('h1'), or integrated over the posterior from a beta(prior_a, prior_b) prior on S
    and the exponential likelihood of the look's data (predictive probability; Lee & Liu 2008).
    """
    mine = np.arange(status.enroll_day.size) < n
    left = mine & (status.exit_day <= day)
    seen = mine & status.transplanted & (status.hsct_day <= day)
    if not seen.any() or not left.any():
        return 1.0
    lm = status.landmark
    follow = np.minimum(np.minimum(day - status.hsct_day[seen], status.ltfu_time[seen]), lm)
    failed = status.fail_time[seen] <= follow
    survived = ~failed & (follow >= lm)
    at_risk = ~failed & ~survived & (status.ltfu_time[seen] > follow)       # lost patients drop out
    known_alive, known_fail = int(survived.sum()), int(failed.sum())
    total = max(int(round(n * np.count_nonzero(left & status.transplanted) / np.count_nonzero(left))),
                known_alive + known_fail + int(at_risk.sum()))
    needed = critical_survivors(total, analysis.p0, analysis.alpha) - known_alive
    future = total - known_alive - known_fail - int(at_risk.sum())
    if needed <= 0:
        return 1.0
    if needed > future + int(at_risk.sum()):
        return 0.0
    remaining = 1.0 - follow[at_risk] / lm                                  # share of the window still to go

    def success(s: np.ndarray) -> np.ndarray:
        """P(final success) for each value of S (an array)."""
        s = np.atleast_1d(s)[:, None]
        probs = np.concatenate([s ** remaining[None, :], np.repeat(s, future, axis=1)], axis=1)
        return poisson_binomial_sf(needed, probs)

    exposure = float(np.minimum(np.where(failed, status.fail_time[seen], follow), lm).sum())
    if rule.method == "conditional_power":
        s = analysis.p1 if rule.assumption == "h1" else (math.exp(-lm * known_fail / exposure) if exposure > 0
                                                         else 1.0)
        return float(success(np.array([s]))[0])
    # Predictive probability: Gauss-Legendre quadrature over S of the posterior (beta prior x exponential likelihood).
    nodes, weights = np.polynomial.legendre.leggauss(QUADRATURE_NODES)
    grid = 0.5 * (nodes + 1.0) * (1.0 - 2e-9) + 1e-9
    hazard = -np.log(grid) / lm
    log_post = ((rule.prior_a - 1) * np.log(grid) + (rule.prior_b - 1) * np.log1p(-grid)
                + known_fail * np.log(hazard) - hazard * exposure)
    weight = weights * np.exp(log_post - log_post.max())
    return float(np.dot(weight, success(grid)) / weight.sum())


QUADRATURE_NODES = 48


def poisson_binomial_sf(k: int, probs: np.ndarray) -> np.ndarray:
    """P(at least k successes) among independent trials, for each row of success probabilities (rows x trials);
    exact, through the characteristic function at the roots of unity (one FFT per row)."""
    probs = np.atleast_2d(probs)
    m = probs.shape[1]
    if k <= 0:
        return np.ones(probs.shape[0])
    if k > m:
        return np.zeros(probs.shape[0])
    z = np.exp(2j * np.pi * np.arange(m + 1) / (m + 1))
    char = np.prod(1.0 - probs[:, None, :] + probs[:, None, :] * z[None, :, None], axis=2)
    pmf = np.clip(np.fft.fft(char, axis=1).real / (m + 1), 0.0, None)
    return np.minimum(pmf[:, k:].sum(axis=1), 1.0)


@lru_cache(maxsize=4096)
def critical_survivors(total: int, p0: float, alpha: float) -> int:
    """Smallest K with P(Binomial(total, p0) >= K) <= alpha (total + 1 if none)."""
    k = np.arange(total + 1)
    tail = special.bdtrc(k - 1, total, p0)
    tail[0] = 1.0
    hits = np.flatnonzero(tail <= alpha)
    return int(hits[0]) if hits.size else total + 1
