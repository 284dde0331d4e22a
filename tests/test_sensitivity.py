"""First-order variance-based indices from one sample: the Ishigami function's known indices, and a binary
outcome (success) whose index has a closed form; a null input near 0; bootstrap intervals cover."""

from __future__ import annotations

import numpy as np
import pytest

from sim.stats.sensitivity import bin_count, bin_index, first_order_index, first_order_indices


def test_ishigami_first_order_indices_match_their_closed_forms():
    # Ishigami & Homma (1990): Y = sin x1 + a sin^2 x2 + b x3^4 sin x1, x ~ U(-pi, pi)^3.
    a, b = 7.0, 0.1
    rng = np.random.default_rng(11)
    x = rng.uniform(-np.pi, np.pi, size=(20_000, 3))
    y = np.sin(x[:, 0]) + a * np.sin(x[:, 1]) ** 2 + b * x[:, 2] ** 4 * np.sin(x[:, 0])
    var = a ** 2 / 8 + b * np.pi ** 4 / 5 + b ** 2 * np.pi ** 8 / 18 + 0.5
    exact = {"x1": (b * np.pi ** 4 / 5 + b ** 2 * np.pi ** 8 / 50 + 0.5) / var, "x2": a ** 2 / 8 / var, "x3": 0.0}
    found = first_order_indices({f"x{k + 1}": x[:, k] for k in range(3)}, y, boot=100, seed=1)
    for name, (estimate, lo, hi) in found.items():
        se = (hi - lo) / 3.92
        assert abs(estimate - exact[name]) < 4 * se + 0.01, (name, estimate, exact[name])   # 0.01: binning loss
        assert lo <= exact[name] + 0.01 and exact[name] - 0.01 <= hi


def test_a_binary_outcome_index_matches_the_closed_form():
    # Y = 1[X + Z > 0], X ~ N(0, s^2), Z ~ N(0, 1): E[Y | X] = Phi(X), Var(Phi(X)) = arcsin(s^2 / (1 + s^2)) / (2 pi),
    # Var(Y) = 1/4 (Owen 1980, integral of the bivariate normal).
    s = 1.3
    exact = 4 * np.arcsin(s ** 2 / (1 + s ** 2)) / (2 * np.pi)
    rng = np.random.default_rng(5)
    x = rng.normal(0, s, 10_000)
    y = (x + rng.normal(size=x.size) > 0).astype(float)
    noise = rng.uniform(size=x.size)                  # an input that does not matter
    found = first_order_indices({"x": x, "noise": noise}, y, boot=200, seed=2)
    estimate, lo, hi = found["x"]
    assert abs(estimate - exact) < 4 * (hi - lo) / 3.92
    assert abs(found["noise"][0]) < 4 * (found["noise"][2] - found["noise"][1]) / 3.92
    assert found["x"][0] > 10 * abs(found["noise"][0])


def test_equal_count_bins_and_the_anova_correction():
    x = np.array([5.0, 1.0, 3.0, 3.0, 2.0, 4.0])
    assert list(bin_index(x, 3)) == [2, 0, 1, 1, 0, 2]
    assert bin_count(10_000) == 50 and bin_count(100) == 5
    # With y constant within bins and no noise, the index is 1 up to the (B - 1) MS_within correction (0 here).
    y = np.repeat([0.0, 1.0, 2.0], 4)
    assert first_order_index(y, np.repeat([0, 1, 2], 4), 3) == pytest.approx(1.0)
    assert np.isnan(first_order_index(np.ones(6), np.repeat([0, 1], 3), 2))


def test_an_input_that_does_not_matter_averages_zero():
    # Without the (B - 1) MS_within correction a pure-noise input would average (B - 1) / N = 0.0045 here.
    rng = np.random.default_rng(9)
    y = rng.normal(size=2_000)
    bins = bin_count(y.size)
    estimates = np.array([first_order_index(y, bin_index(rng.uniform(size=y.size), bins), bins)
                          for _ in range(300)])
    assert abs(estimates.mean()) < 4 * estimates.std(ddof=1) / np.sqrt(estimates.size)
