"""Exact designs (sim/stats/designs.py) and the `design` command: published Simon designs, independent
brute-force enumerations, binomial sums, scipy's beta distribution and Monte Carlo within 4 MCSE."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from sim.cli.parser import main
from sim.stats.designs import (
    boundary_from_table,
    boundary_oc,
    posterior_boundary,
    posterior_prob_above,
    simon_designs,
    two_stage_oc,
)

# Simon (1989), Table 1 and 2: alpha 0.05, power 0.80, p1 = p0 + 0.2, optimal designs (r1, n1, r, n).
PUBLISHED_OPTIMAL = {
    0.1: (1, 10, 5, 29), 0.2: (3, 13, 12, 43), 0.3: (5, 15, 18, 46), 0.4: (7, 16, 23, 46),
    0.5: (8, 15, 26, 43), 0.6: (7, 11, 30, 43), 0.7: (4, 6, 22, 27),
}

# The minimax designs of the same table.
PUBLISHED_MINIMAX = {
    0.1: (1, 15, 5, 25), 0.2: (4, 18, 10, 33), 0.3: (6, 19, 16, 39), 0.4: (17, 34, 20, 39),
    0.5: (12, 23, 23, 37), 0.6: (8, 13, 25, 35), 0.7: (19, 23, 21, 26),
}


def design_tuple(d) -> tuple[int, int, int, int]:
    return d.r1, d.n1, d.r, d.n


@pytest.mark.parametrize("p0", sorted(PUBLISHED_OPTIMAL))
def test_simon_optimal_and_minimax_designs_equal_the_published_ones(p0: float) -> None:
    optimal, minimax = simon_designs(p0, round(p0 + 0.2, 2), 0.05, 0.80)
    assert design_tuple(optimal) == PUBLISHED_OPTIMAL[p0]
    assert design_tuple(minimax) == PUBLISHED_MINIMAX[p0]
    for design in (optimal, minimax):
        assert design.alpha <= 0.05 and design.power >= 0.80


def test_simon_designs_for_p0_005_p1_025_with_en_and_pet() -> None:
    optimal, minimax = simon_designs(0.05, 0.25, 0.05, 0.80)
    assert design_tuple(optimal) == (0, 9, 2, 17)
    assert (round(optimal.en0, 1), round(optimal.pet0, 2)) == (12.0, 0.63)
    assert design_tuple(minimax) == (0, 12, 2, 16)
    assert (round(minimax.en0, 1), round(minimax.pet0, 2)) == (13.8, 0.54)


def test_simon_designs_for_alpha_010_power_090() -> None:
    optimal, minimax = simon_designs(0.2, 0.4, 0.10, 0.90)
    assert design_tuple(optimal) == (3, 17, 10, 37)
    assert design_tuple(minimax) == (3, 19, 10, 36)


def exact_reject(r1: int, n1: int, r: int, n: int, p: float) -> float:
    """P(x1 > r1 and x1 + x2 > r) by summing over every (x1, x2), from math.comb."""
    n2 = n - n1
    return sum(math.comb(n1, x1) * p**x1 * (1 - p) ** (n1 - x1) * math.comb(n2, x2) * p**x2 * (1 - p) ** (n2 - x2)
               for x1 in range(r1 + 1, n1 + 1) for x2 in range(n2 + 1) if x1 + x2 > r)


def exact_pet(r1: int, n1: int, p: float) -> float:
    return sum(math.comb(n1, x) * p**x * (1 - p) ** (n1 - x) for x in range(r1 + 1))


def brute_force_simon(p0: float, p1: float, alpha: float, power: float, nmax: int):
    """Every (r1, n1, r, n) with 0 <= r1 < n1 < n <= nmax and r1 < r < n, checked one by one."""
    feasible = []
    for n in range(2, nmax + 1):
        for n1 in range(1, n):
            for r1 in range(n1):
                pet0 = exact_pet(r1, n1, p0)
                for r in range(r1 + 1, n):
                    if exact_reject(r1, n1, r, n, p0) <= alpha and exact_reject(r1, n1, r, n, p1) >= power:
                        feasible.append((n1 + (1 - pet0) * (n - n1), n, n1, r1, -r))
    optimal = min(feasible)  # min EN; ties: smaller n, n1, r1, then the larger r
    minimax = min(feasible, key=lambda f: (f[1], f[0], f[2], f[3], f[4]))
    return [(f[3], f[2], -f[4], f[1]) for f in (optimal, minimax)]


@pytest.mark.parametrize("case", [(0.05, 0.25, 0.05, 0.80, 18), (0.5, 0.8, 0.10, 0.80, 16), (0.3, 0.6, 0.05, 0.8, 22)])
def test_simon_enumeration_equals_a_brute_force_search(case) -> None:
    *rates, nmax = case
    assert [design_tuple(d) for d in simon_designs(*rates, nmax=nmax)] == brute_force_simon(*rates, nmax)


def test_no_feasible_simon_design_is_an_error_naming_nmax() -> None:
    with pytest.raises(ValueError, match="increase nmax"):
        simon_designs(0.2, 0.4, 0.05, 0.80, nmax=20)


@pytest.mark.parametrize("design", [(1, 10, 5, 29), (8, 15, 26, 43), (0, 12, 2, 16), (4, 6, 22, 27)])
def test_two_stage_oc_equals_direct_binomial_summation(design) -> None:
    r1, n1, r, n = design
    ps = [0.05, 0.2, 0.35, 0.5, 0.7, 0.9]
    oc = two_stage_oc(r1, n1, r, n, ps)
    for i, p in enumerate(ps):
        assert oc.p_reject[i] == pytest.approx(exact_reject(r1, n1, r, n, p), abs=1e-12)
        assert oc.pet[i] == pytest.approx(exact_pet(r1, n1, p), abs=1e-12)
        assert oc.en[i] == pytest.approx(n1 + (1 - exact_pet(r1, n1, p)) * (n - n1), abs=1e-10)


def test_two_stage_oc_equals_monte_carlo_within_4_mcse() -> None:
    r1, n1, r, n = 8, 15, 26, 43
    rng = np.random.default_rng(np.random.SeedSequence(20260110))
    reps = 200_000
    for p in (0.5, 0.7):
        oc = two_stage_oc(r1, n1, r, n, p)
        x1 = rng.binomial(n1, p, reps)
        x2 = rng.binomial(n - n1, p, reps)
        stop = x1 <= r1
        reject = ~stop & (x1 + x2 > r)
        size = np.where(stop, n1, n)
        for simulated, exact in ((stop, oc.pet[0]), (reject, oc.p_reject[0])):
            assert abs(simulated.mean() - exact) < 4 * math.sqrt(exact * (1 - exact) / reps)
        assert abs(size.mean() - oc.en[0]) < 4 * size.std() / math.sqrt(reps)


# --- Bayesian safety boundaries -------------------------------------------------------------------

PRIORS = [(0.5, 4.5, 0.10, 0.90, 40, 1, 3), (1.0, 1.0, 0.20, 0.80, 30, 1, 1), (2.0, 8.0, 0.30, 0.95, 50, 5, 5)]


@pytest.mark.parametrize("prior", PRIORS)
def test_boundary_is_the_smallest_event_count_whose_posterior_exceeds_the_cutoff(prior) -> None:
    a, b, theta, cutoff, nmax, every, first = prior
    boundary = posterior_boundary(a, b, theta, cutoff, nmax, every, first)
    assert boundary.looks == tuple(range(first, nmax + 1, every))
    for k, d in zip(boundary.looks, boundary.stop_at, strict=True):
        if d is None:
            assert stats.beta.sf(theta, a + k, b) <= cutoff
            continue
        assert stats.beta.sf(theta, a + d, b + k - d) > cutoff
        if d > 0:
            assert stats.beta.sf(theta, a + d - 1, b + k - d + 1) <= cutoff
        # The same rule written as ToxCrit does: the (1 - cutoff) posterior quantile above the threshold.
        assert stats.beta.ppf(1 - cutoff, a + d, b + k - d) > theta


def test_posterior_probability_equals_numerical_integration_of_the_beta_density() -> None:
    a, b, theta = 0.5, 4.5, 0.1
    for d, k in [(0, 5), (3, 5), (4, 20), (12, 40)]:
        density = lambda x, d=d, k=k: x ** (a + d - 1) * (1 - x) ** (b + k - d - 1)  # noqa: E731
        integral = integrate.quad(density, theta, 1)[0] / integrate.quad(density, 0, 1)[0]
        assert posterior_prob_above(a, b, theta, d, k) == pytest.approx(integral, rel=1e-7)


def brute_force_boundary_oc(limits: dict[int, int], nmax: int, p: float) -> tuple[np.ndarray, float]:
    """P(stop at patient k) and E(treated), by listing every sequence of nmax outcomes and applying the rule."""
    stop_at = np.zeros(nmax)
    expected = 0.0
    for outcomes in itertools.product((0, 1), repeat=nmax):
        prob = p ** sum(outcomes) * (1 - p) ** (nmax - sum(outcomes))
        events, treated = 0, nmax
        for k, event in enumerate(outcomes, start=1):
            events += event
            if k in limits and events >= limits[k]:
                stop_at[k - 1] += prob
                treated = k
                break
        expected += prob * treated
    return stop_at, expected


@pytest.mark.parametrize("p", [0.05, 0.2, 0.45])
def test_boundary_oc_equals_brute_force_enumeration_of_every_outcome_sequence(p: float) -> None:
    nmax = 12
    boundary = posterior_boundary(1.0, 4.0, 0.2, 0.85, nmax, every=2, min_evaluable=2)
    limits = {k: d for k, d in zip(boundary.looks, boundary.stop_at, strict=True) if d is not None}
    assert limits, "the test needs a reachable boundary"
    stop_at, expected = brute_force_boundary_oc(limits, nmax, p)
    oc = boundary_oc(boundary, p)
    np.testing.assert_allclose(oc.p_stop_at[0], stop_at, atol=1e-13)
    assert oc.p_stop[0] == pytest.approx(stop_at.sum(), abs=1e-13)
    assert oc.expected_treated[0] == pytest.approx(expected, abs=1e-11)


def test_user_table_oc_equals_brute_force_enumeration() -> None:
    table = [(3, 2), (6, 3), (9, 4), (11, 4)]
    oc = boundary_oc(boundary_from_table(table, nmax=11), [0.1, 0.3])
    for i, p in enumerate([0.1, 0.3]):
        stop_at, expected = brute_force_boundary_oc(dict(table), 11, p)
        np.testing.assert_allclose(oc.p_stop_at[i], stop_at, atol=1e-13)
        assert oc.expected_treated[i] == pytest.approx(expected, abs=1e-11)


def simulated_stops(limits: np.ndarray, nmax: int, p: float, reps: int, rng: np.random.Generator) -> np.ndarray:
    """Patient number at which each simulated trial stops (0 = never), outcomes seen immediately."""
    events = np.cumsum(rng.random((reps, nmax)) < p, axis=1)
    crossed = events >= limits[None, :]
    return np.where(crossed.any(axis=1), crossed.argmax(axis=1) + 1, 0)


@pytest.mark.parametrize("p", [0.10, 0.25, 0.40])
def test_boundary_oc_equals_numpy_simulation_within_4_mcse(p: float) -> None:
    nmax, reps = 60, 100_000
    boundary = posterior_boundary(0.5, 4.5, 0.2, 0.9, nmax, every=3, min_evaluable=6)
    oc = boundary_oc(boundary, p)
    stop = simulated_stops(boundary.thresholds(), nmax, p, reps, np.random.default_rng(np.random.SeedSequence(77)))
    for k in (15, 30, nmax):
        exact = oc.p_stop_by[0, k - 1]
        simulated = np.mean((stop > 0) & (stop <= k))
        assert abs(simulated - exact) < 4 * math.sqrt(exact * (1 - exact) / reps) + 1e-12
    treated = np.where(stop > 0, stop, nmax)
    assert abs(treated.mean() - oc.expected_treated[0]) < 4 * treated.std() / math.sqrt(reps)


def test_posterior_boundary_and_its_table_give_the_same_oc() -> None:
    boundary = posterior_boundary(1.0, 9.0, 0.15, 0.8, 40, every=5, min_evaluable=5)
    table = [(k, d) for k, d in zip(boundary.looks, boundary.stop_at, strict=True) if d is not None]
    rates = [0.05, 0.15, 0.3]
    np.testing.assert_array_equal(boundary_oc(boundary, rates).p_stop_at,
                                  boundary_oc(boundary_from_table(table, 40), rates).p_stop_at)


def test_stopping_is_rare_far_below_the_threshold_and_nearly_certain_far_above() -> None:
    oc = boundary_oc(posterior_boundary(0.5, 4.5, 0.1, 0.9, 60, min_evaluable=5), [0.02, 0.4])
    assert oc.p_stop[0] < 0.01 and oc.p_stop[1] > 0.99
    assert oc.expected_treated[0] > 59 and oc.expected_treated[1] < 15


@pytest.mark.parametrize("table, message", [
    ([], "empty"), ([(5, 2), (5, 3)], "increase strictly"), ([(5, 6)], "between 1 and k"),
    ([(5, 0)], "between 1 and k"), ([(50, 3)], "between 1 and nmax"),
])
def test_a_bad_user_table_is_refused_with_the_reason(table, message) -> None:
    with pytest.raises(ValueError, match=message):
        boundary_from_table(table, nmax=40)


# --- command line ---------------------------------------------------------------------------------

def test_design_simon_prints_both_designs_in_words_and_writes_csv(tmp_path, capsys) -> None:
    assert main(["design", "simon", "--p0", "0.05", "--p1", "0.25", "--out", str(tmp_path)]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the text is wrapped for the terminal
    assert "r1/n1 = 0/9, r/n = 2/17" in out and "r1/n1 = 0/12, r/n = 2/16" in out
    assert "Stop after 9 patients if none respond" in out
    assert "probability 0.630 (PET), enrolls 12.0 patients on average (EN)" in out
    table = pd.read_csv(tmp_path / "simon_designs.csv")
    assert table["design"].tolist() == ["optimal", "minimax"]
    assert table[["r1", "n1", "r", "n"]].values.tolist() == [[0, 9, 2, 17], [0, 12, 2, 16]]
    assert (table["alpha"] <= 0.05).all() and (table["power"] >= 0.8).all()


def test_design_bayes_safety_prints_the_boundary_and_writes_its_oc(tmp_path, capsys) -> None:
    argv = ["design", "bayes-safety", "--prior-a", "0.5", "--prior-b", "4.5", "--threshold", "0.1", "--cutoff",
            "0.9", "--nmax", "30", "--min-evaluable", "5", "--true-rate", "0.05", "0.3", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    boundary = posterior_boundary(0.5, 4.5, 0.1, 0.9, 30, min_evaluable=5)
    assert f"stop if at least {boundary.stop_at[0]} events" in out
    written = pd.read_csv(tmp_path / "boundary.csv")
    assert written["k"].tolist() == list(boundary.looks)
    assert written["stop_if_at_least"].tolist() == list(boundary.stop_at)
    summary = pd.read_csv(tmp_path / "oc_summary.csv")
    exact = boundary_oc(boundary, [0.05, 0.3])
    np.testing.assert_allclose(summary["p_stop"], exact.p_stop, rtol=1e-5)
    long = pd.read_csv(tmp_path / "oc_by_patient.csv")
    assert len(long) == 2 * 30
    np.testing.assert_allclose(long["p_stop_by_k"], exact.p_stop_by.ravel(), rtol=1e-5, atol=1e-12)
    posterior = posterior_prob_above(0.5, 4.5, 0.1, written["stop_if_at_least"], written["k"])
    np.testing.assert_allclose(written["posterior_at_boundary"], posterior, rtol=1e-5)
    assert (written["posterior_at_boundary"] > 0.9).all() and (written["posterior_one_fewer"] <= 0.9).all()


def test_design_boundary_gives_the_exact_oc_of_a_user_table(tmp_path, capsys) -> None:
    argv = ["design", "boundary", "--table", "3:2", "6:3", "9:4", "11:4", "--nmax", "11", "--true-rate", "0.3",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    assert "k = 9, 11" in capsys.readouterr().out
    stop_at, expected = brute_force_boundary_oc({3: 2, 6: 3, 9: 4, 11: 4}, 11, 0.3)
    summary = pd.read_csv(tmp_path / "oc_summary.csv")
    assert summary["p_stop"].iloc[0] == pytest.approx(stop_at.sum(), rel=1e-5)
    assert summary["expected_treated"].iloc[0] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("argv, words", [
    (["simon", "--p0", "1.5", "--p1", "0.7"], ["--p0", "1.5", "between 0 and 1"]),
    (["simon", "--p0", "0.5", "--p1", "0.4"], ["--p1", "0.4", "larger than --p0"]),
    (["simon", "--p0", "0.2", "--p1", "0.4", "--nmax", "5000"], ["--nmax", "5000", "between 2 and 300"]),
    (["simon", "--p0", "0.2", "--p1", "0.4", "--nmax", "20"], ["--nmax", "20", "increase nmax"]),
    (["bayes-safety", "--prior-a", "0", "--prior-b", "1", "--threshold", "0.1", "--cutoff", "0.9", "--nmax", "20"],
     ["--prior-a", "'0'", "> 0"]),
    (["bayes-safety", "--prior-a", "1", "--prior-b", "1", "--threshold", "0.1", "--cutoff", "0.9", "--nmax", "20",
      "--min-evaluable", "30"], ["--min-evaluable", "30", "at most --nmax 20"]),
    (["bayes-safety", "--prior-a", "1", "--prior-b", "1", "--threshold", "0.1", "--cutoff", "1.2", "--nmax", "20"],
     ["--cutoff", "1.2", "between 0 and 1"]),
    (["boundary", "--table", "10:4", "5:2", "--nmax", "20", "--true-rate", "0.1"], ["--table", "10:4 5:2", "increase"]),
    (["boundary", "--table", "10:11", "--nmax", "20", "--true-rate", "0.1"], ["--table", "10:11", "1 <= D <= K"]),
    (["boundary", "--table", "30:3", "--nmax", "20", "--true-rate", "0.1"], ["--table", "30:3", "nmax = 20"]),
])
def test_bad_design_input_exits_2_naming_option_value_and_range(tmp_path, capsys, argv, words) -> None:
    out = tmp_path / "out"
    try:
        status = main(["design", *argv, "--out", str(out)])
    except SystemExit as exc:  # argparse's own checks
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err
    assert all(word in err for word in words), err
    assert not out.exists()
