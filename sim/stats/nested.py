"""Landmark estimators and tests for every prefix of one sample at once: the nested sample sizes of a trial.

A sizing study analyses the first n patients of one simulated trial for every n of its grid. The
patients analysed at n are a prefix of those analysed at the largest n, and their (time, event) data
at the landmark do not depend on n (the analysis guarantees it), so one sort of the largest sample
serves every n: a (prefix x patient) membership matrix gives each prefix's numbers at risk, and the
Kaplan-Meier products, Greenwood sums and tests follow in a few array operations; km_prefixes_many does
the same for a whole chunk's trials and arms in one batch (padded to one length). The results are
those of estimators.py applied to each prefix (tests/test_nested.py checks it to 1e-12 on random
data with ties); only the order of floating-point additions in the Greenwood sum may differ.
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
    km = km_prefixes_many([np.asarray(time, dtype=float)], [np.asarray(event, dtype=bool)], t,
                          np.asarray(sizes, dtype=np.int64)[None, :], alpha)
    return PrefixKM(*(getattr(km, field.name)[0] for field in fields(PrefixKM)))


def km_prefixes_many(times: list[np.ndarray], events: list[np.ndarray], t: float, sizes: np.ndarray,
                     alpha: float = 0.05) -> PrefixKM:
    """km_prefixes for many samples at once (a chunk's trials and arms): sizes[b] are the prefixes of sample b;
    every field of the result is (sample x prefix). Samples are padded to one length with patients that belong
    to no prefix, so one set of array operations serves them all (the per-call overhead of numpy, not the
    arithmetic, is what a sizing study's small samples cost)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    length = max(1, max(x.size for x in times))
    time = np.zeros((len(times), length))
    event = np.zeros((len(times), length), dtype=bool)
    for b, (x, e) in enumerate(zip(times, events, strict=True)):
        time[b, : x.size] = x
        event[b, : e.size] = e
    order = np.where(event, time, np.nextafter(time, np.inf)).argsort(axis=1, kind="stable")
    t_sorted = np.take_along_axis(time, order, axis=1)
    e_sorted = np.take_along_axis(event, order, axis=1)
    failed = e_sorted & (t_sorted <= t)
    member = order[:, None, :] < sizes[:, :, None]                 # sample x prefix x sorted position
    # At risk at each sorted position: members at or after it (a censoring tied with an event stays at risk).
    at_risk = np.cumsum(member[..., ::-1], axis=2)[..., ::-1].astype(float)
    counted = member & failed[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(counted, 1.0 - 1.0 / at_risk, 1.0)
        terms = np.where(counted, 1.0 / (at_risk * (at_risk - 1.0)), 0.0)
    s = np.multiply.reduce(factor, axis=2)
    last_alone = (counted & (at_risk == 1.0)).any(axis=2)          # the last at risk fails: S = 0
    greenwood = np.where(last_alone, np.inf, terms.sum(axis=2))
    events = counted.sum(axis=2)
    followed = (member & (t_sorted[:, None, :] >= t)).any(axis=2)
    weight = np.where(failed, 1.0, np.minimum(t_sorted, t) / t)
    n_eff = (member * weight[:, None, :]).sum(axis=2)
    exposure = (member * np.minimum(t_sorted, t)[:, None, :]).sum(axis=2)
    censored_before = (member & ~e_sorted[:, None, :] & (t_sorted[:, None, :] < t)).any(axis=2)
    reason = np.where(sizes == 0, NO_PATIENTS, np.where(~followed & (s > 0), NOBODY_FOLLOWED, ""))
    ok = reason == ""
    s = np.where(ok, s, np.nan)
    with np.errstate(invalid="ignore"):
        se = np.where(ok, np.where(s > 0, s * np.sqrt(greenwood), 0.0), np.nan)
    lower, upper = _intervals(s, greenwood, n_eff, alpha)
    events = np.where(sizes == 0, 0, events)
    return PrefixKM(sizes, s, se, lower, upper, events, greenwood, n_eff, exposure, censored_before, reason)


def _intervals(s: np.ndarray, greenwood: np.ndarray, n_eff: np.ndarray, alpha: float) -> tuple[np.ndarray, ...]:
    """log(-log) interval inside (0, 1); Clopper-Pearson for n_eff patients at exactly 0 or 1."""
    z = _z(alpha / 2)
    inside = (s > 0) & (s < 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = z * np.sqrt(greenwood) / np.abs(np.log(s))
        lower = np.where(inside, s ** np.exp(half), np.nan)
        upper = np.where(inside, s ** np.exp(-half), np.nan)
        edge = np.where(n_eff > 0, (alpha / 2.0) ** (1.0 / n_eff), np.nan)
    at_one, at_zero = s == 1.0, s == 0.0
    lower = np.where(at_one, np.where(n_eff > 0, edge, 0.0), np.where(at_zero, 0.0, lower))
    upper = np.where(at_one, 1.0, np.where(at_zero, np.where(n_eff > 0, 1.0 - edge, 1.0), upper))
    return lower, upper


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
