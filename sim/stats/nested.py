"""Landmark estimators and tests for many samples at once: the nested sample sizes of a trial, a chunk's rows.

A sizing study analyses the first n patients of one simulated trial for every n of its grid. The
patients analysed at n are a prefix of those analysed at the largest n, and their (time, event) data
at the landmark do not depend on n (the analysis guarantees it), so one sort of the largest sample
serves every n: a (prefix x patient) membership matrix gives each prefix's numbers at risk, and the
Kaplan-Meier products, Greenwood sums and tests follow in a few array operations; km_prefix_members does
the same for a whole chunk's trials and arms in one batch, each trial a row with a sample mask. Samples that are not
prefixes of one another are rows of a (row x patient) array with a membership mask: km_masked,
cif_masked (Aalen-Johansen) and clopper_pearson_many estimate every row at once. The results are
those of estimators.py applied to each sample (tests/test_nested.py checks it to 1e-12 on random
data with ties); only the order of floating-point additions in the variance sums may differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
from scipy import special

from sim.stats.estimators import _z

NOBODY_FOLLOWED = "nobody followed to the landmark"
NO_PATIENTS = "no patients"


@dataclass(frozen=True)
class PrefixKM:
    """Kaplan-Meier at t for prefixes of sizes `n` of one sample (arrays, one entry per prefix)."""

    n: np.ndarray
    estimate: np.ndarray
    se: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    events: np.ndarray
    greenwood: np.ndarray
    n_eff: np.ndarray             # landmark information: 1 per failure by t, min(time, t) / t otherwise
    exposure: np.ndarray          # sum of min(time, t), days (the one-sample log-rank's expected-count base)
    censored_before: np.ndarray   # anyone censored before t (the exact binomial test is then not valid)
    reason: np.ndarray            # '' where evaluable, else why not


def km_prefixes(time: np.ndarray, event: np.ndarray, t: float, sizes: np.ndarray, alpha: float = 0.05) -> PrefixKM:
    """Kaplan-Meier S(t), Greenwood SE and the interval of estimators.km_landmark, for time[:c], c in sizes."""
    time = np.asarray(time, dtype=float)[None, :]
    km = km_prefix_members(time, np.asarray(event, dtype=bool)[None, :], np.ones(time.shape, dtype=bool),
                           np.asarray(sizes, dtype=np.int64), t, alpha)
    return PrefixKM(*(getattr(km, field.name)[0] for field in fields(PrefixKM)))


def km_prefix_members(time: np.ndarray, event: np.ndarray, in_sample: np.ndarray, sizes: np.ndarray, t: float,
                      alpha: float = 0.05) -> PrefixKM:
    """Kaplan-Meier at t of the sample's members among each row's first n patients, for every n in sizes: time,
    event and in_sample are (row x patient), every field of the result is (row x n). Each row is sorted once and
    serves every n (the nested sample sizes of a trial; the rows are a chunk's trials and arms)."""
    time, event = np.where(in_sample, time, np.inf), in_sample & event   # a non-member's data (even NaN) never counts
    order = _event_order(time, event)
    sorted_in = np.take_along_axis(in_sample, order, axis=1)
    member = sorted_in[:, None, :] & (order[:, None, :] < np.asarray(sizes)[None, :, None])   # row x n x position
    return _km_sorted(np.take_along_axis(time, order, axis=1), np.take_along_axis(event, order, axis=1), member,
                      t, alpha)


def km_masked(time: np.ndarray, event: np.ndarray, member: np.ndarray, t: float, alpha: float = 0.05) -> PrefixKM:
    """estimators.km_landmark of each row's members: time, event and member are (row x patient), every field of
    the result is (row,). For samples that are not prefixes of one another (each row its own data)."""
    time, event = np.where(member, time, np.inf), member & event     # a non-member's data (even NaN) never counts
    order = _event_order(time, event)
    km = _km_sorted(*(np.take_along_axis(x, order, axis=1) for x in (time, event)),
                    np.take_along_axis(member, order, axis=1)[:, None, :], t, alpha)
    return PrefixKM(*(getattr(km, field.name)[:, 0] for field in fields(PrefixKM)))


def _event_order(time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """Each row's patients in time order, events before censorings at tied times."""
    return np.where(event, time, np.nextafter(time, np.inf)).argsort(axis=1, kind="stable")


def _km_sorted(t_sorted: np.ndarray, e_sorted: np.ndarray, member: np.ndarray, t: float, alpha: float) -> PrefixKM:
    """Kaplan-Meier of the members (sample x set x position) of samples sorted by _event_order."""
    sizes = member.sum(axis=2)
    # Only positions up to the last time <= t can fail or be censored before t; everyone after them is at risk
    # throughout and contributes exactly 1 (t / t) to n_eff and t to the exposure, so the arrays stop there.
    reach = int(np.max((t_sorted <= t) * np.arange(1, t_sorted.shape[1] + 1), initial=0))
    t_sorted, e_sorted, member = t_sorted[:, :reach], e_sorted[:, :reach], member[..., :reach]
    beyond = sizes - member.sum(axis=2)
    failed = e_sorted & (t_sorted <= t)
    # At risk at each sorted position: members at or after it (a censoring tied with an event stays at risk).
    at_risk = (sizes[..., None] - (np.cumsum(member, axis=2) - member)).astype(float)
    counted = member & failed[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(counted, 1.0 - 1.0 / at_risk, 1.0)
        terms = np.where(counted, 1.0 / (at_risk * (at_risk - 1.0)), 0.0)
    s = np.multiply.reduce(factor, axis=2)
    last_alone = (counted & (at_risk == 1.0)).any(axis=2)          # the last at risk fails: S = 0
    greenwood = np.where(last_alone, np.inf, terms.sum(axis=2))
    events = counted.sum(axis=2)
    followed = (member & (t_sorted[:, None, :] >= t)).any(axis=2) | (beyond > 0)
    n_eff = (member * _landmark_weight(t_sorted, failed, t)[:, None, :]).sum(axis=2) + beyond
    exposure = (member * np.minimum(t_sorted, t)[:, None, :]).sum(axis=2) + beyond * t
    censored_before = (member & ~e_sorted[:, None, :] & (t_sorted[:, None, :] < t)).any(axis=2)
    reason = np.where(sizes == 0, NO_PATIENTS, np.where(~followed & (s > 0), NOBODY_FOLLOWED, ""))
    ok = reason == ""
    s = np.where(ok, s, np.nan)
    with np.errstate(invalid="ignore"):
        se = np.where(ok, np.where(s > 0, s * np.sqrt(greenwood), 0.0), np.nan)
    lower, upper = _intervals(s, greenwood, n_eff, alpha)
    events = np.where(sizes == 0, 0, events)
    return PrefixKM(sizes, s, se, lower, upper, events, greenwood, n_eff, exposure, censored_before, reason)


def _landmark_weight(time: np.ndarray, failed: np.ndarray, t: float) -> np.ndarray:
    """Each patient's landmark information (estimators.landmark_information): 1 for a failure by t, else
    min(time, t) / t."""
    return np.where(failed, 1.0, np.minimum(time, t) / t)


def _intervals(s: np.ndarray, greenwood: np.ndarray, n_eff: np.ndarray, alpha: float) -> tuple[np.ndarray, ...]:
    """log(-log) interval inside (0, 1); Clopper-Pearson for n_eff patients at exactly 0 or 1."""
    z = _z(alpha / 2)
    inside = (s > 0) & (s < 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = z * np.sqrt(greenwood) / np.abs(np.log(s))
        lower = np.where(inside, s ** np.exp(half), np.nan)
        upper = np.where(inside, s ** np.exp(-half), np.nan)
    return _at_boundaries(s, lower, upper, n_eff, alpha)


def _at_boundaries(p: np.ndarray, lower: np.ndarray, upper: np.ndarray, n_eff: np.ndarray, alpha: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The interval, with estimators._boundary_interval (Clopper-Pearson for n_eff patients) where p is 0 or 1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        edge = np.where(n_eff > 0, (alpha / 2.0) ** (1.0 / n_eff), np.nan)
    at_one, at_zero = p == 1.0, p == 0.0
    lower = np.where(at_one, np.where(n_eff > 0, edge, 0.0), np.where(at_zero, 0.0, lower))
    upper = np.where(at_one, 1.0, np.where(at_zero, np.where(n_eff > 0, 1.0 - edge, 1.0), upper))
    return lower, upper


@dataclass(frozen=True)
class Estimates:
    """estimators.Estimate for many samples (arrays, one entry per sample)."""

    estimate: np.ndarray
    se: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    n: np.ndarray
    events: np.ndarray
    reason: np.ndarray


def cif_masked(time: np.ndarray, cause: np.ndarray, member: np.ndarray, k: int, t: float, alpha: float = 0.05
               ) -> Estimates:
    """estimators.aalen_johansen of each row's members: time, cause and member are (row x patient).

    Failures tied in time are one step of the estimator, as in estimators._risk_table: each row is sorted
    once, and a group of tied times contributes its step at its last position (factor 1 elsewhere, so the
    running products and sums are those of the scalar estimator, term for term).
    """
    time = np.where(member, time, np.inf)                          # non-members sort last and are never at risk
    order = time.argsort(axis=1, kind="stable")
    time, cause, member = (np.take_along_axis(x, order, axis=1) for x in (time, cause, member))
    failed = member & (cause > 0) & (time <= t)
    mine = failed & (cause == k)
    position = np.arange(time.shape[1])
    new = np.ones(time.shape, dtype=bool)
    np.not_equal(time[:, 1:], time[:, :-1], out=new[:, 1:])
    first = np.maximum.accumulate(np.where(new, position, 0), axis=1)   # each position's group starts here
    last = np.ones(time.shape, dtype=bool)
    last[:, :-1] = new[:, 1:]
    at_risk = np.take_along_axis(np.cumsum(member[:, ::-1], axis=1)[:, ::-1], first, axis=1).astype(float)
    d, dk = (_group_counts(x, first) for x in (failed, mine))
    step = last & (d > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(step, 1.0 - d / at_risk, 1.0)
        surv = np.cumprod(factor, axis=1)
        lag = np.concatenate([np.ones((time.shape[0], 1)), surv[:, :-1]], axis=1)
        f_steps = np.cumsum(np.where(step, lag * dk / at_risk, 0.0), axis=1)
        f = f_steps[:, -1]
        ahead = f[:, None] - f_steps
        first_term = np.where(step & (d < at_risk), d / (at_risk * (at_risk - d)), 0.0) * ahead ** 2
        second = np.where(step, lag ** 2 * dk * (at_risk - dk) / at_risk ** 3, 0.0)
        third = np.where(step, ahead * lag * dk / at_risk ** 2, 0.0)
    var = np.maximum(first_term.sum(axis=1) + second.sum(axis=1) - 2.0 * third.sum(axis=1), 0.0)
    n = member.sum(axis=1)
    any_step = step.any(axis=1)
    followed = (member & (time >= t)).any(axis=1)
    reason = np.where(n == 0, NO_PATIENTS,
                      np.where(~followed & (~any_step | (surv[:, -1] > 0)), NOBODY_FOLLOWED, ""))
    ok = reason == ""
    f = np.where(ok, np.where(any_step, f, 0.0), np.nan)
    n_eff = (member * _landmark_weight(time, member & (cause > 0) & (time <= t), t)).sum(axis=1)
    lower, upper = _cif_intervals(f, var, alpha)
    lower, upper = _at_boundaries(np.where(f >= 1.0, 1.0, f), lower, upper, n_eff, alpha)
    se = np.where(ok, np.where(any_step, np.sqrt(var), 0.0), np.nan)
    return Estimates(f, se, lower, upper, n, mine.sum(axis=1), reason)


def _group_counts(flags: np.ndarray, first: np.ndarray) -> np.ndarray:
    """At each position, how many flags its group of tied times holds up to it (the group's total at its last)."""
    running = np.cumsum(flags, axis=1)
    return (running - np.take_along_axis(running - flags, first, axis=1)).astype(float)


def _cif_intervals(f: np.ndarray, var: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """estimators._cif_interval where 0 < f < 1 (NaN elsewhere)."""
    z = _z(alpha / 2)
    inside = (f > 0) & (f < 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(var) / (f * np.abs(np.log(f)))
        a = np.exp(-np.exp(np.log(-np.log(f)) + z * se))
        b = np.exp(-np.exp(np.log(-np.log(f)) - z * se))
    return np.where(inside, np.minimum(a, b), np.nan), np.where(inside, np.maximum(a, b), np.nan)


def clopper_pearson_many(k: np.ndarray, n: np.ndarray, alpha: float = 0.05) -> Estimates:
    """estimators.clopper_pearson for many (k, n): the proportion with its exact two-sided interval."""
    k, n = np.asarray(k, dtype=np.int64), np.asarray(n, dtype=np.int64)
    empty = n == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        lower = np.where(k == 0, 0.0, special.betaincinv(np.maximum(k, 1), n - k + 1, alpha / 2))
        upper = np.where(k == n, 1.0, special.betaincinv(k + 1, np.maximum(n - k, 1), 1 - alpha / 2))
        se = np.sqrt(p * (1 - p) / n)
    nan = np.full(k.shape, np.nan)
    return Estimates(np.where(empty, nan, p), np.where(empty, nan, se), np.where(empty, nan, lower),
                     np.where(empty, nan, upper), n, np.where(empty, 0, k),
                     np.where(empty, "empty denominator", ""))


@dataclass(frozen=True)
class PrefixTest:
    """One-sided tests of H0: S(t) <= p0 for every prefix (arrays)."""

    statistic: np.ndarray
    p_value: np.ndarray
    reject: np.ndarray
    reason: np.ndarray


def landmark_tests(km: PrefixKM, t: float, p0: float, alpha: float, method: str) -> PrefixTest:
    """estimators.landmark_test for every prefix, given its Kaplan-Meier summary (only evaluable prefixes
    are tested: the analysis never tests an estimate that is not evaluable)."""
    if method == "binomial":
        return _binomial(km, p0, alpha)
    if method == "logrank":
        return _logrank(km, p0, alpha, t)
    return _wald(km, p0, alpha, method)


def _wald(km: PrefixKM, p0: float, alpha: float, scale: str) -> PrefixTest:
    s, g = km.estimate, km.greenwood
    inside = (s > 0) & (s < 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if scale == "cloglog":
            z = (math.log(-math.log(p0)) - np.log(-np.log(s))) / (np.sqrt(g) / np.abs(np.log(s)))
        elif scale == "linear":
            z = (s - p0) / np.sqrt(s * s * g)
        elif scale == "arcsine":
            z = (np.arcsin(np.sqrt(s)) - math.asin(math.sqrt(p0))) / np.sqrt(s * s * g / (4.0 * s * (1.0 - s)))
        else:
            raise ValueError(f"unknown Wald scale {scale!r}")
        log_p1 = km.n_eff * math.log(p0)                            # S = 1: exact, p0^n_eff
        z_one = -special.ndtri_exp(log_p1)
    p_inside = special.ndtr(-z)
    statistic = np.where(inside, z, np.where(s == 1.0, np.where(km.n_eff > 0, z_one, np.nan), np.nan))
    p_value = np.where(inside, p_inside, np.where(s == 1.0, np.where(km.n_eff > 0, np.exp(log_p1), np.nan),
                                                  np.where(s == 0.0, 1.0, np.nan)))
    reason = np.where(np.isnan(s), "estimate not evaluable",
                      np.where(s == 0.0, "no patient event-free at the landmark (S = 0): H0 not rejected",
                               np.where((s == 1.0) & ~(km.n_eff > 0), "S = 1 with no follow-up information", "")))
    reject = (reason == "") & (p_value <= alpha)
    return PrefixTest(statistic, p_value, reject, reason)


def _binomial(km: PrefixKM, p0: float, alpha: float) -> PrefixTest:
    k = np.round(km.n - km.events).astype(np.int64)                 # landmark survivors (no censoring before t)
    p = np.where(k == 0, 1.0, special.bdtrc(np.maximum(k - 1, 0), km.n, p0))
    reason = np.where(km.n == 0, NO_PATIENTS,
                      np.where(km.censored_before, "censored before the landmark: exact binomial not valid", ""))
    ok = reason == ""
    return PrefixTest(np.where(ok, k.astype(float), np.nan), np.where(ok, p, np.nan), ok & (p <= alpha), reason)


def _logrank(km: PrefixKM, p0: float, alpha: float, t: float) -> PrefixTest:
    expected = -math.log(p0) / t * km.exposure
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (expected - km.events) / np.sqrt(expected)
    ok = expected > 0
    p = special.ndtr(-z)
    return PrefixTest(np.where(ok, z, np.nan), np.where(ok, p, np.nan), ok & (p <= alpha),
                      np.where(ok, "", "no follow-up"))
