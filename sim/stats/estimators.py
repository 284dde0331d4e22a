"""Fast estimators and tests at a landmark, pure numpy: the hot path of the sizing study.

Kaplan-Meier with Greenwood variance and a log(-log) CI (at a landmark, or the whole curve for
plotting); one-sided tests of H0: S(t) <= p0 (Wald z on the cloglog, linear or arcsine scale, exact
binomial, one-sample log-rank); Aalen-Johansen cumulative incidence with the Greenwood-type
(Collett / SAS) variance; Clopper-Pearson intervals; median follow-up by reverse Kaplan-Meier.
Conventions follow lifelines so tests can compare to it: an event at exactly t counts by t; a
censoring tied with an event is still at risk for that event.
Results are plain floats; an estimate that cannot be made is NaN with a reason, never an exception.

Small samples at the boundary (an estimate of exactly 0 or 1, where Greenwood's variance is 0) use
one rule throughout: the data are read as a binomial sample of n_eff = sum_i w_i patients, where a
patient with an event by t (or, for a cumulative incidence, any event by t) counts 1 and everyone
else min(follow-up, t) / t (`landmark_information`). Intervals at 0 and 1 are then Clopper-Pearson
for 0 or n_eff successes, (alpha/2)^(1/n_eff), so they never collapse to a point; a Wald test at
S = 1 uses the exact probability of no event by t under H0, p0^n_eff (the exact binomial p-value
p0^n when nobody is censored before t, and the one-sample exponential-null probability of no event
given each patient's follow-up otherwise). At S = 0 no survivor is evidence against H0: p = 1.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import special

TESTS = ("cloglog", "linear", "arcsine", "binomial", "logrank")


@dataclass(frozen=True)
class Estimate:
    """A point estimate with standard error and a two-sided confidence interval."""

    estimate: float
    se: float
    lower: float
    upper: float
    n: int
    events: int
    reason: str = ""

    @property
    def evaluable(self) -> bool:
        """Whether an estimate could be made (otherwise `reason` says why)."""
        return not self.reason


@dataclass(frozen=True)
class TestResult:
    """A one-sided test of H0: S(t) <= p0: statistic, p-value, decision."""

    statistic: float
    p_value: float
    reject: bool
    reason: str = ""


@functools.lru_cache(maxsize=64)
def _z(alpha: float) -> float:
    return float(special.ndtri(1.0 - alpha))


def km_landmark(time: np.ndarray, event: np.ndarray, t: float, alpha: float = 0.05) -> tuple[Estimate, float]:
    """Kaplan-Meier S(t), Greenwood SE, log(-log) CI; also the Greenwood sum sum d/(n(n-d)) (for tests)."""
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=bool)
    n = time.size
    if n == 0:
        return Estimate(np.nan, np.nan, np.nan, np.nan, 0, 0, "no patients"), np.nan
    # One factor per event in time order, events before censorings at tied times, at risk N - position:
    # tied events multiply to (n - d)/n and their Greenwood terms telescope to d/(n(n - d)).
    order = np.where(event, time, np.nextafter(time, np.inf)).argsort()
    position = (event[order] & (time[order] <= t)).nonzero()[0]
    events = position.size
    if events == 0:
        s, greenwood = 1.0, 0.0
    else:
        at_risk = (n - position).astype(float)
        s = float((1.0 - 1.0 / at_risk).prod())
        # The last patient at risk having the event makes S = 0 and the Greenwood sum infinite.
        greenwood = math.inf if at_risk[-1] == 1.0 else float((1.0 / (at_risk * (at_risk - 1.0))).sum())
    if time.max() < t and s > 0:
        return Estimate(np.nan, np.nan, np.nan, np.nan, n, events, "nobody followed to the landmark"), greenwood
    se = s * math.sqrt(greenwood) if s > 0 else 0.0
    if 0.0 < s < 1.0:
        lower, upper = map(float, _loglog_interval(s, greenwood, alpha))
    else:
        lower, upper = _boundary_interval(s, landmark_information(time, event, t), alpha)
    return Estimate(s, se, lower, upper, n, events), greenwood


def landmark_information(time: np.ndarray, failed: np.ndarray, t: float) -> float:
    """Effective number of patients observed to t: 1 for a failure by t, min(follow-up, t) / t otherwise."""
    time = np.asarray(time, dtype=float)
    by_t = np.asarray(failed, dtype=bool) & (time <= t)
    return float(np.where(by_t, 1.0, np.minimum(time, t) / t).sum())


def _boundary_interval(p: float, n_eff: float, alpha: float) -> tuple[float, float]:
    """Clopper-Pearson interval for a proportion estimated as exactly 0 or 1 from n_eff patients."""
    if n_eff <= 0:
        return 0.0, 1.0
    edge = (alpha / 2.0) ** (1.0 / n_eff)
    return (edge, 1.0) if p == 1.0 else (0.0, 1.0 - edge)


def _risk_table(time: np.ndarray, failed: np.ndarray, mark: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Distinct failure times, failures at each, number at risk just before each (and marked failures at each)."""
    times = time[failed]
    if times.size == 0:
        empty = np.empty(0)
        return (empty, empty, empty) if mark is None else (empty, empty, empty, empty)
    if mark is None:
        times.sort()
    else:
        order = times.argsort(kind="stable")
        times = times[order]
    new = np.empty(times.size, dtype=bool)
    new[0] = True
    np.not_equal(times[1:], times[:-1], out=new[1:])
    first = new.nonzero()[0]
    u = times[first]
    d = (times.searchsorted(u, side="right") - first).astype(float)
    at_risk = (time.size - np.sort(time).searchsorted(u, side="left")).astype(float)
    if mark is None:
        return u, d, at_risk
    return u, d, at_risk, np.add.reduceat(mark[failed][order].astype(float), first)


def _loglog_interval(s: float | np.ndarray, greenwood: float | np.ndarray, alpha: float
                     ) -> tuple[float | np.ndarray, float | np.ndarray]:
    """CI for a survival probability 0 < s < 1 on the log(-log) scale (elementwise for arrays)."""
    half = _z(alpha / 2) * np.sqrt(greenwood) / np.abs(np.log(s))
    return s ** np.exp(half), s ** np.exp(-half)


def wald_test(s: float, greenwood: float, p0: float, alpha: float, scale: str, n_eff: float = np.nan
              ) -> TestResult:
    """One-sided Wald z test of H0: S <= p0 on the cloglog, linear or arcsine scale.

    At S = 1 the variance is 0 and the Wald statistic undefined; the test is then the exact
    probability of no event by the landmark under H0, p0^n_eff (module docstring), reported as the
    z value with that one-sided p. n_eff is required there (landmark_test supplies it).
    """
    if not np.isfinite(s):
        return TestResult(np.nan, np.nan, False, "estimate not evaluable")
    if s == 1.0:
        if not n_eff > 0:
            return TestResult(np.nan, np.nan, False, "S = 1 with no follow-up information")
        log_p = n_eff * math.log(p0)
        p = math.exp(log_p)
        return TestResult(float(-special.ndtri_exp(log_p)), p, p <= alpha)
    if s == 0.0:
        return TestResult(np.nan, 1.0, False, "no patient event-free at the landmark (S = 0): H0 not rejected")
    var_s = s * s * greenwood
    if scale == "cloglog":
        z = (np.log(-np.log(p0)) - np.log(-np.log(s))) / (np.sqrt(greenwood) / abs(np.log(s)))
    elif scale == "linear":
        z = (s - p0) / np.sqrt(var_s)
    elif scale == "arcsine":
        z = (np.arcsin(np.sqrt(s)) - np.arcsin(np.sqrt(p0))) / np.sqrt(var_s / (4.0 * s * (1.0 - s)))
    else:
        raise ValueError(f"unknown Wald scale {scale!r}")
    p = float(special.ndtr(-z))
    return TestResult(float(z), p, p <= alpha)


def binomial_test(time: np.ndarray, event: np.ndarray, t: float, p0: float, alpha: float) -> TestResult:
    """Exact binomial test on the landmark status; valid only if nobody is censored before t."""
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=bool)
    if time.size == 0:
        return TestResult(np.nan, np.nan, False, "no patients")
    if np.any(~event & (time < t)):
        return TestResult(np.nan, np.nan, False, "censored before the landmark: exact binomial not valid")
    k = int(np.count_nonzero(~(event & (time <= t))))
    p = 1.0 if k == 0 else float(special.bdtrc(k - 1, time.size, p0))  # P(Binomial(n, p0) >= k)
    return TestResult(float(k), p, p <= alpha)


def logrank_one_sample(time: np.ndarray, event: np.ndarray, t: float, p0: float, alpha: float) -> TestResult:
    """One-sample log-rank test against the exponential null S0(u) = p0^(u/t), follow-up truncated at t.

    Z = (E - O) / sqrt(E), E = sum of null cumulative hazards over follow-up, O = observed events;
    large Z means fewer events than the null predicts (evidence for S(t) > p0).
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=bool)
    expected = float(-np.log(p0) / t * np.minimum(time, t).sum())
    if expected <= 0:
        return TestResult(np.nan, np.nan, False, "no follow-up")
    observed = int(np.count_nonzero(event & (time <= t)))
    z = (expected - observed) / np.sqrt(expected)
    p = float(special.ndtr(-z))
    return TestResult(float(z), p, p <= alpha)


def landmark_test(time: np.ndarray, event: np.ndarray, t: float, p0: float, alpha: float, method: str,
                  km: tuple[Estimate, float] | None = None) -> TestResult:
    """The test of H0: S(t) <= p0 chosen by name (one of TESTS)."""
    if method == "binomial":
        return binomial_test(time, event, t, p0, alpha)
    if method == "logrank":
        return logrank_one_sample(time, event, t, p0, alpha)
    estimate, greenwood = km if km is not None else km_landmark(time, event, t, alpha)
    n_eff = landmark_information(time, event, t) if estimate.estimate == 1.0 else np.nan
    return wald_test(estimate.estimate, greenwood, p0, alpha, method, n_eff)


def aalen_johansen(time: np.ndarray, cause: np.ndarray, k: int, t: float, alpha: float = 0.05) -> Estimate:
    """Cumulative incidence of cause k at t (other causes > 0 competing, 0 = censored), Collett variance."""
    time = np.asarray(time, dtype=float)
    cause = np.asarray(cause)
    n = time.size
    if n == 0:
        return Estimate(np.nan, np.nan, np.nan, np.nan, 0, 0, "no patients")
    failed = (cause > 0) & (time <= t)
    events_k = int(np.count_nonzero(failed & (cause == k)))
    u, d, at_risk, dk = _risk_table(time, failed, cause == k)
    surv = np.cumprod(1.0 - d / at_risk)
    if time.max() < t and (surv.size == 0 or surv[-1] > 0):
        return Estimate(np.nan, np.nan, np.nan, np.nan, n, events_k, "nobody followed to the landmark")
    if u.size == 0:
        return Estimate(0.0, 0.0, *_boundary_interval(0.0, landmark_information(time, cause > 0, t), alpha), n, 0)
    lag = np.concatenate([[1.0], surv[:-1]])
    f_steps = np.cumsum(lag * dk / at_risk)
    f = float(f_steps[-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        first = np.sum(np.where(d < at_risk, d / (at_risk * (at_risk - d)), 0.0) * (f - f_steps) ** 2)
    second = np.sum(lag ** 2 * dk * (at_risk - dk) / at_risk ** 3)
    third = np.sum((f - f_steps) * lag * dk / at_risk ** 2)
    var = float(max(first + second - 2.0 * third, 0.0))
    if 0.0 < f < 1.0:
        lower, upper = _cif_interval(f, var, alpha)
    else:
        lower, upper = _boundary_interval(1.0 if f >= 1.0 else 0.0, landmark_information(time, cause > 0, t), alpha)
    return Estimate(f, float(np.sqrt(var)), lower, upper, n, events_k)


def _cif_interval(f: float, var: float, alpha: float) -> tuple[float, float]:
    """CI for a cumulative incidence 0 < f < 1 on the log(-log) scale, as lifelines does."""
    se = np.sqrt(var) / (f * abs(np.log(f)))
    z = _z(alpha / 2)
    a = float(np.exp(-np.exp(np.log(-np.log(f)) + z * se)))
    b = float(np.exp(-np.exp(np.log(-np.log(f)) - z * se)))
    return min(a, b), max(a, b)


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> Estimate:
    """Proportion k/n with its exact (Clopper-Pearson) two-sided interval."""
    if n == 0:
        return Estimate(np.nan, np.nan, np.nan, np.nan, 0, 0, "empty denominator")
    p = k / n
    lower = 0.0 if k == 0 else float(special.betaincinv(k, n - k + 1, alpha / 2))
    upper = 1.0 if k == n else float(special.betaincinv(k + 1, n - k, 1 - alpha / 2))
    return Estimate(p, float(np.sqrt(p * (1 - p) / n)), lower, upper, n, k)


def reverse_km_median(time: np.ndarray, event: np.ndarray) -> float:
    """Median follow-up: the median of the Kaplan-Meier curve with censoring as the event."""
    time = np.asarray(time, dtype=float)
    censored = ~np.asarray(event, dtype=bool)
    if not censored.any():
        return float("nan")
    u, d, at_risk = _risk_table(time, censored)
    surv = np.cumprod(1.0 - d / at_risk)
    below = np.flatnonzero(surv <= 0.5)
    return float(u[below[0]]) if below.size else float("nan")


def cumulative_incidence_curve(time: np.ndarray, cause: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Aalen-Johansen cumulative incidence of cause k at each distinct failure time (for plotting)."""
    time = np.asarray(time, dtype=float)
    cause = np.asarray(cause)
    u, d, at_risk, dk = _risk_table(time, cause > 0, cause == k)
    lag = np.concatenate([[1.0], np.cumprod(1.0 - d / at_risk)[:-1]])
    return u, np.cumsum(lag * dk / at_risk)


def km_curve(time: np.ndarray, event: np.ndarray, alpha: float = 0.05
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The whole Kaplan-Meier curve with its log(-log) interval, for plotting.

    Returns (times, survival, lower, upper): the sorted distinct observed times (events and censorings)
    and at each the right-continuous S(t) (events at t counted; censorings tied with them still at risk
    for them) with the two-sided 1 - alpha log(-log) ("exponential Greenwood") interval, as lifelines'
    KaplanMeierFitter.survival_function_ and confidence_interval_ (which add a row at time 0). Where
    S(t) is 1 (no event yet) or 0 the interval collapses to that point, as in lifelines.
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=bool)
    u, d, at_risk = _risk_table(time, event)
    with np.errstate(divide="ignore", invalid="ignore"):     # S = 0 at the last failure: Greenwood infinite
        survival = np.concatenate([[1.0], np.cumprod(1.0 - d / at_risk)])
        greenwood = np.concatenate([[0.0], np.cumsum(d / (at_risk * (at_risk - d)))])
        times = np.unique(time)
        step = u.searchsorted(times, side="right")            # failures at or before each time (0: none yet)
        s, g = survival[step], greenwood[step]
        lower, upper = _loglog_interval(s, g, alpha)
    inside = (s > 0.0) & (s < 1.0)
    return times, s, np.where(inside, lower, s), np.where(inside, upper, s)
