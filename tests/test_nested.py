"""Prefix estimators (sim/stats/nested.py) against the scalar estimators applied to each prefix."""

from __future__ import annotations

import numpy as np
import pytest

from sim.stats.estimators import km_landmark, landmark_test
from sim.stats.nested import km_prefixes, landmark_tests

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
