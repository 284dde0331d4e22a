"""Prefix estimators (sim/stats/nested.py) against the scalar estimators applied to each prefix."""

from __future__ import annotations

import numpy as np
import pytest

from sim.stats.estimators import aalen_johansen, clopper_pearson, km_landmark, landmark_test
from sim.stats.nested import cif_masked, clopper_pearson_many, km_masked, km_prefixes, landmark_tests

T = 12.0
METHODS = ("cloglog", "linear", "arcsine", "binomial", "logrank")


def _datasets(seed: int, count: int = 300):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        n = int(rng.integers(1, 70))
        latent = rng.exponential(T * rng.uniform(0.3, 4.0), n)
        censor = rng.uniform(0.0, T * rng.choice([0.6, 1.5, 5.0]), n) if rng.random() < 0.7 else np.full(n, np.inf)
        step = rng.choice([0.5, 1.0, 0.0])
        time = np.minimum(latent, censor)
        if step:
            time = np.maximum(np.round(time / step) * step, step)  # ties, events and censorings at exactly T
        event = latent <= censor
        sizes = np.unique(rng.integers(0, n + 1, int(rng.integers(1, 8))))
        yield time, event, sizes


def _close(a: float, b: float) -> bool:
    if np.isnan(a) or np.isnan(b):
        return bool(np.isnan(a) and np.isnan(b))
    return a == b or abs(a - b) <= 1e-12 * max(1.0, abs(a), abs(b))


@pytest.mark.parametrize("seed", [1, 2])
def test_prefix_kaplan_meier_equals_the_scalar_estimator_on_each_prefix(seed):
    compared = 0
    for time, event, sizes in _datasets(seed):
        km = km_prefixes(time, event, T, sizes)
        for j, c in enumerate(sizes):
            est, greenwood = km_landmark(time[:c], event[:c], T)
            for field in ("estimate", "se", "lower", "upper"):
                assert _close(getattr(km, field)[j], getattr(est, field)), (field, c, getattr(km, field)[j], est)
            assert km.events[j] == est.events and km.reason[j] == est.reason, (c, km.reason[j], est.reason)
            if est.evaluable:
                assert _close(km.greenwood[j], greenwood)
            compared += 1
    assert compared > 900


@pytest.mark.parametrize("method", METHODS)
def test_prefix_tests_equal_the_scalar_tests_on_each_prefix(method):
    decisions = 0
    for p0, alpha in ((0.55, 0.05), (0.3, 0.025)):
        for time, event, sizes in _datasets(7, 150):
            km = km_prefixes(time, event, T, sizes)
            tests = landmark_tests(km, T, p0, alpha, method)
            for j, c in enumerate(sizes):
                prefix = time[:c], event[:c]
                scalar = landmark_test(*prefix, T, p0, alpha, method, km=km_landmark(*prefix, T))
                if km.reason[j] and method not in ("binomial", "logrank"):
                    continue              # the analysis never tests an estimate that is not evaluable
                assert tests.reject[j] == scalar.reject, (method, c, tests.statistic[j], scalar)
                assert _close(tests.statistic[j], scalar.statistic) and _close(tests.p_value[j], scalar.p_value), \
                    (method, c, tests.statistic[j], tests.p_value[j], scalar)
                assert tests.reason[j] == scalar.reason, (method, tests.reason[j], scalar.reason)
                decisions += int(scalar.reject)
    assert decisions > 20


def _rows(seed: int, count: int, causes: int):
    """Random samples as (row x patient) arrays with a membership mask: ties, censorings at exactly T, empty rows,
    rows nobody is followed to T in, and (causes > 1) competing causes."""
    rng = np.random.default_rng(seed)
    width = 40
    time = np.zeros((count, width))
    cause = np.zeros((count, width), dtype=np.int64)
    member = np.zeros((count, width), dtype=bool)
    for row in range(count):
        n = int(rng.integers(0, width + 1))
        latent = rng.exponential(T * rng.uniform(0.3, 4.0), width)
        censor = rng.uniform(0.0, T * rng.choice([0.6, 1.5, 5.0]), width) if rng.random() < 0.7 else np.full(width, 1e9)
        step = rng.choice([0.5, 1.0, 0.0])
        time[row] = np.minimum(latent, censor)
        if step:
            time[row] = np.maximum(np.round(time[row] / step) * step, step)
        cause[row] = np.where(latent <= censor, rng.integers(1, causes + 1, width), 0)
        member[row] = rng.permutation(width) < n          # members anywhere in the row, not a prefix
    time[~member & (rng.random(member.shape) < 0.5)] = np.nan   # a non-member's data may be missing
    return time, cause, member


def test_masked_kaplan_meier_equals_the_scalar_estimator_on_each_row():
    time, cause, member = _rows(3, 400, 1)
    km = km_masked(time, cause > 0, member, T)
    reasons = set()
    for row in range(time.shape[0]):
        est, _ = km_landmark(time[row][member[row]], cause[row][member[row]] > 0, T)
        for field in ("estimate", "se", "lower", "upper"):
            assert _close(getattr(km, field)[row], getattr(est, field)), (row, field, getattr(km, field)[row], est)
        assert (km.n[row], km.events[row], km.reason[row]) == (est.n, est.events, est.reason), (row, est)
        reasons.add(est.reason)
    assert reasons == {"", "no patients", "nobody followed to the landmark"}


@pytest.mark.parametrize("k", [1, 2])
def test_masked_cumulative_incidence_equals_the_scalar_aalen_johansen_on_each_row(k):
    time, cause, member = _rows(4, 400, 2)
    cif = cif_masked(time, cause, member, k, T)
    reasons, boundaries = set(), 0
    for row in range(time.shape[0]):
        est = aalen_johansen(time[row][member[row]], cause[row][member[row]], k, T)
        for field in ("estimate", "se", "lower", "upper"):
            assert _close(getattr(cif, field)[row], getattr(est, field)), (row, field, getattr(cif, field)[row], est)
        assert (cif.n[row], cif.events[row], cif.reason[row]) == (est.n, est.events, est.reason), (row, est)
        reasons.add(est.reason)
        boundaries += est.estimate in (0.0, 1.0)
    assert reasons == {"", "no patients", "nobody followed to the landmark"} and boundaries > 5


def test_clopper_pearson_for_many_counts_equals_the_scalar_interval():
    n = np.array([0, 1, 1, 2, 5, 5, 5, 17, 60, 60, 60])
    k = np.array([0, 0, 1, 1, 0, 3, 5, 9, 0, 31, 60])
    many = clopper_pearson_many(k, n)
    for j in range(n.size):
        est = clopper_pearson(int(k[j]), int(n[j]))
        for field in ("estimate", "se", "lower", "upper"):
            assert _close(getattr(many, field)[j], getattr(est, field)), (j, field)
        assert (many.n[j], many.events[j], many.reason[j]) == (est.n, est.events, est.reason)
