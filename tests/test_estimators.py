"""The fast numpy estimators of sim/stats/estimators.py against independent implementations.

Kaplan-Meier (estimate, Greenwood SE, log(-log) CI) against lifelines and statsmodels; Aalen-Johansen
against statsmodels (ties, also across causes) and lifelines (untied data: lifelines jitters ties);
Clopper-Pearson, the exact binomial test and the reverse Kaplan-Meier median against scipy, statsmodels
and lifelines; the one-sample log-rank test against a direct computation and its size under H0.
Random datasets come from seeded generators, with ties (times rounded to 1 or 0.5), censorings tied
with events, events and censorings at exactly the landmark, and heavy censoring. Edge cases must give
results with a reason, never exceptions. Finally, without censoring before the landmark every test's
decision must depend on the number K of landmark survivors alone, and reject on an upper set of K.
"""

from __future__ import annotations

import numpy as np
import pytest
from lifelines import AalenJohansenFitter, KaplanMeierFitter
from scipy import stats
from statsmodels.duration.survfunc import CumIncidenceRight, SurvfuncRight
from statsmodels.stats.proportion import proportion_confint

from sim.stats.estimators import (
    aalen_johansen,
    binomial_test,
    clopper_pearson,
    km_curve,
    km_landmark,
    landmark_test,
    logrank_one_sample,
    reverse_km_median,
    wald_test,
)

T = 12.0            # landmark used by the random datasets
TOL = 1e-8
N_DATASETS = 200
WALD = ("cloglog", "linear", "arcsine")


# --------------------------------------------------------------------------- random datasets


def _rounded(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """Round to a grid of 1 or 0.5 (so there are ties), keeping times > 0."""
    step = float(rng.choice([0.5, 1.0]))
    return np.maximum(np.round(x / step) * step, step)


def survival_dataset(rng: np.random.Generator, followed: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(time, event) with ties; some with events or censorings exactly at T, some heavily censored.

    followed=True guarantees someone is followed to >= T; followed=False guarantees nobody is.
    """
    n = int(rng.integers(5, 81))
    latent = rng.exponential(T * rng.uniform(0.4, 3.0), n)
    heavy = rng.random() < 0.3
    censor = rng.uniform(0.0, T * (0.8 if heavy else 3.0), n)
    time = _rounded(rng, np.minimum(latent, censor))
    event = latent <= censor
    for value in (True, False):           # events at exactly T, censorings at exactly T
        if rng.random() < 0.4:
            idx = rng.choice(n, size=int(rng.integers(1, 4)), replace=False)
            time[idx], event[idx] = T, value
    if followed and time.max() < T:
        time[rng.integers(n)] = T + float(rng.integers(0, 6))
    if not followed:
        time = np.minimum(time, T - 0.5)
        event[np.argmax(time)] = False    # the last patient is censored, so S(last time) > 0
    return time, event


def competing_dataset(rng: np.random.Generator, tied: bool) -> tuple[np.ndarray, np.ndarray]:
    """(time, cause) with causes 0 (censored), 1, 2 and someone followed past T.

    tied=True: times rounded, ties within and across causes and with censorings, some events at T.
    tied=False: continuous times (no ties at all), one event put at exactly T in some datasets.
    """
    n = int(rng.integers(5, 81))
    t1 = rng.exponential(T * rng.uniform(0.8, 4.0), n)
    t2 = rng.exponential(T * rng.uniform(0.8, 4.0), n)
    censor = rng.uniform(0.0, T * rng.choice([0.8, 3.0]), n)
    time = np.minimum(np.minimum(t1, t2), censor)
    cause = np.where(time == censor, 0, np.where(t1 <= t2, 1, 2))
    if tied:
        time = _rounded(rng, time)
        if rng.random() < 0.4:
            idx = rng.choice(n, size=int(rng.integers(1, 4)), replace=False)
            time[idx], cause[idx] = T, rng.integers(1, 3, idx.size)
    elif rng.random() < 0.4 and not np.any(time == T):
        i = int(rng.integers(n))
        time[i], cause[i] = T, int(rng.integers(1, 3))
    if time.max() <= T:
        time[rng.integers(n)] = T + 1.0 + float(rng.random()) * (not tied)
    return time, cause


@pytest.fixture(scope="module")
def km_datasets() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(20240601)
    return [survival_dataset(rng) for _ in range(N_DATASETS)]


def _at(times: np.ndarray, values: np.ndarray, t: float, before: float) -> float:
    """Value of a right-continuous step function at t (`before` if t precedes the first step)."""
    i = int(np.searchsorted(times, t, side="right")) - 1
    return float(values[i]) if i >= 0 else before


def test_random_datasets_cover_the_hard_cases(km_datasets):
    """The generator produces the situations the comparisons below must get right."""
    event_at_t = sum(np.any(e & (t == T)) for t, e in km_datasets)
    censored_at_t = sum(np.any(~e & (t == T)) for t, e in km_datasets)
    heavy = sum(np.mean(~e & (t < T)) > 0.5 for t, e in km_datasets)
    tied_censoring = sum(bool(np.intersect1d(t[e], t[~e]).size) for t, e in km_datasets)
    sizes = [t.size for t, _ in km_datasets]
    assert min(event_at_t, censored_at_t, heavy, tied_censoring) >= 30, (event_at_t, censored_at_t, heavy,
                                                                        tied_censoring)
    assert min(sizes) <= 10 and max(sizes) >= 70
    assert all(t.max() >= T for t, _ in km_datasets)


# --------------------------------------------------------------------------- Kaplan-Meier


def test_km_estimate_matches_lifelines_and_statsmodels(km_datasets):
    for i, (time, event) in enumerate(km_datasets):
        est, _ = km_landmark(time, event, T)
        assert est.evaluable, (i, est.reason)
        kmf = KaplanMeierFitter().fit(time, event)
        sf = SurvfuncRight(time, event.astype(float))
        expected = _at(sf.surv_times, sf.surv_prob, T, 1.0)
        assert est.estimate == pytest.approx(float(kmf.survival_function_at_times(T).iloc[0]), abs=TOL), i
        assert est.estimate == pytest.approx(float(kmf.predict(T)), abs=TOL), i
        assert est.estimate == pytest.approx(expected, abs=TOL), i
        assert est.n == time.size and est.events == int(np.sum(event & (time <= T))), i


def test_km_greenwood_se_matches_statsmodels_and_lifelines(km_datasets):
    compared = 0
    for i, (time, event) in enumerate(km_datasets):
        est, greenwood = km_landmark(time, event, T)
        if est.estimate == 0.0:      # Greenwood is undefined at S = 0 (statsmodels gives nan)
            continue
        compared += 1
        sf = SurvfuncRight(time, event.astype(float))
        assert est.se == pytest.approx(_at(sf.surv_times, sf.surv_prob_se, T, 0.0), abs=TOL), i
        kmf = KaplanMeierFitter().fit(time, event)
        cum_sq = kmf._cumulative_sq_
        lifelines_var = est.estimate ** 2 * float(cum_sq[cum_sq.index <= T].iloc[-1])
        assert est.se ** 2 == pytest.approx(lifelines_var, abs=TOL), i
        assert greenwood == pytest.approx(float(cum_sq[cum_sq.index <= T].iloc[-1]), rel=TOL, abs=TOL), i
    assert compared >= 0.9 * len(km_datasets)


@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_km_loglog_ci_matches_lifelines(km_datasets, alpha):
    for i, (time, event) in enumerate(km_datasets):
        est, _ = km_landmark(time, event, T, alpha=alpha)
        if est.estimate in (0.0, 1.0):   # the small-sample boundary rule, tested below
            continue
        ci = KaplanMeierFitter(alpha=alpha).fit(time, event).confidence_interval_
        row = ci[ci.index <= T].iloc[-1]
        assert (est.lower, est.upper) == pytest.approx((float(row.iloc[0]), float(row.iloc[1])), abs=TOL), i
        assert est.lower <= est.estimate <= est.upper


def km_curve_samples() -> list[tuple[np.ndarray, np.ndarray]]:
    """Samples for the whole-curve comparison: ties, heavy censoring, no events, a curve reaching 0."""
    rng = np.random.default_rng(424242)
    samples = [survival_dataset(rng) for _ in range(20)]            # ties on a 0.5 or 1 grid, events at T
    for _ in range(10):                                              # integer times: many ties, also event/censoring
        n = int(rng.integers(5, 120))
        samples.append((np.ceil(rng.exponential(10.0, n)), rng.random(n) < 0.6))
    for _ in range(5):                                               # heavy censoring: about 85% censored
        n = int(rng.integers(20, 80))
        samples.append((np.round(rng.exponential(15.0, n), 1), rng.random(n) < 0.15))
    samples.append((np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0]), np.zeros(6, dtype=bool)))    # no events
    # Reaches 0: the last patients (two tied at 7) both have the event; a censoring tied with an event at 2.
    samples.append((np.array([2.0, 2.0, 3.0, 5.0, 5.0, 6.0, 7.0, 7.0]),
                    np.array([True, False, True, True, False, True, True, True])))
    return samples


@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_km_curve_matches_lifelines_survival_and_ci_at_every_time(alpha):
    reached_zero = tied_censoring = no_events = 0
    for i, (time, event) in enumerate(km_curve_samples()):
        times, s, lower, upper = km_curve(time, event, alpha=alpha)
        kmf = KaplanMeierFitter(alpha=alpha).fit(time, event)
        sf = kmf.survival_function_.iloc[:, 0]
        ci = kmf.confidence_interval_
        np.testing.assert_array_equal(times, np.unique(time), err_msg=str(i))
        # lifelines' rows: time 0 (S = 1 unless an event is at 0) and every distinct observed time.
        np.testing.assert_array_equal(sf.index.to_numpy(), np.union1d([0.0], times), err_msg=str(i))
        for ours, theirs in ((s, sf), (lower, ci.iloc[:, 0]), (upper, ci.iloc[:, 1])):
            np.testing.assert_allclose(ours, theirs.loc[times].to_numpy(), rtol=0, atol=1e-10, err_msg=str(i))
        assert np.all((lower <= s) & (s <= upper)), i
        reached_zero += s[-1] == 0.0
        no_events += not event.any()
        tied_censoring += bool(np.intersect1d(time[event], time[~event]).size)
    assert reached_zero >= 1 and no_events >= 1 and tied_censoring >= 10, (reached_zero, no_events, tied_censoring)


def test_wald_statistics_match_delta_method_formulas(km_datasets):
    """z on each scale from statsmodels' S and Greenwood SE, by the delta method; p = P(N(0,1) >= z)."""
    rng = np.random.default_rng(99)
    compared = 0
    for i, (time, event) in enumerate(km_datasets):
        sf = SurvfuncRight(time, event.astype(float))
        s, se = _at(sf.surv_times, sf.surv_prob, T, 1.0), _at(sf.surv_times, sf.surv_prob_se, T, 0.0)
        if not 0.0 < s < 1.0:
            continue
        compared += 1
        p0, alpha = float(rng.uniform(0.2, 0.8)), float(rng.choice([0.025, 0.05, 0.1]))
        expected = {
            "linear": (s - p0) / se,
            "arcsine": (np.arcsin(np.sqrt(s)) - np.arcsin(np.sqrt(p0))) / (se / (2 * np.sqrt(s * (1 - s)))),
            "cloglog": (np.log(-np.log(p0)) - np.log(-np.log(s))) / (se / (s * abs(np.log(s)))),
        }
        km = km_landmark(time, event, T)
        for scale, z in expected.items():
            result = landmark_test(time, event, T, p0, alpha, scale, km=km)
            assert result.statistic == pytest.approx(z, rel=1e-8, abs=TOL), (i, scale)
            assert result.p_value == pytest.approx(stats.norm.sf(z), abs=TOL), (i, scale)
            assert result.reject == (stats.norm.sf(z) <= alpha) and not result.reason, (i, scale)
            assert landmark_test(time, event, T, p0, alpha, scale).statistic == result.statistic
    assert compared >= 0.8 * len(km_datasets)


def test_km_nobody_followed_to_landmark_is_not_evaluable():
    rng = np.random.default_rng(7)
    for _ in range(50):
        time, event = survival_dataset(rng, followed=False)
        est, _ = km_landmark(time, event, T)
        assert np.isnan(est.estimate) and est.reason == "nobody followed to the landmark"
        assert not est.evaluable
        for method in WALD:
            result = landmark_test(time, event, T, 0.55, 0.05, method)
            assert not result.reject and result.reason


# --------------------------------------------------------------------------- Aalen-Johansen


def test_aalen_johansen_matches_statsmodels_with_ties():
    rng = np.random.default_rng(31)
    cross_cause_ties = 0
    for i in range(N_DATASETS):
        time, cause = competing_dataset(rng, tied=True)
        cross_cause_ties += bool(np.intersect1d(time[cause == 1], time[cause == 2]).size)
        ref = CumIncidenceRight(time, cause)
        for k in (1, 2):
            est = aalen_johansen(time, cause, k, T)
            assert est.evaluable, (i, est.reason)
            if k > len(ref.cinc):                 # statsmodels only knows causes up to max(cause)
                assert est.estimate == 0.0
                continue
            assert est.estimate == pytest.approx(_at(ref.times, ref.cinc[k - 1], T, 0.0), abs=TOL), (i, k)
            # statsmodels uses the same (Collett / delta-method) variance, tie-aware.
            assert est.se == pytest.approx(_at(ref.times, ref.cinc_se[k - 1], T, 0.0), abs=TOL), (i, k)
            assert est.events == int(np.sum((cause == k) & (time <= T)))
    assert cross_cause_ties >= 30


@pytest.fixture(scope="module")
def untied_competing() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(57)
    data = [competing_dataset(rng, tied=False) for _ in range(N_DATASETS)]
    assert all(np.unique(t).size == t.size for t, _ in data)
    assert sum(np.any((t == T) & (c > 0)) for t, c in data) >= 30
    return data


def test_aalen_johansen_matches_lifelines_without_ties(untied_competing):
    for i, (time, cause) in enumerate(untied_competing):
        for k in (1, 2):
            est = aalen_johansen(time, cause, k, T)
            if not np.any(cause == k):
                assert (est.estimate, est.se) == (0.0, 0.0)
                continue
            ajf = AalenJohansenFitter(calculate_variance=True).fit(time, cause, event_of_interest=k)
            keep = ajf.cumulative_density_.index <= T
            assert est.estimate == pytest.approx(float(ajf.cumulative_density_[keep].iloc[-1, 0]), abs=TOL), (i, k)
            assert est.se ** 2 == pytest.approx(float(ajf.variance_[keep].iloc[-1]), abs=TOL), (i, k)
            if 0.0 < est.estimate < 1.0:
                row = ajf.confidence_interval_[keep].iloc[-1]
                expected = sorted((float(row.iloc[0]), float(row.iloc[1])))
                assert (est.lower, est.upper) == pytest.approx(expected, abs=TOL), (i, k)
                assert est.lower <= est.estimate <= est.upper


def test_aalen_johansen_causes_and_survival_add_up(untied_competing):
    """F1(t) + F2(t) + S(t) = 1, where S is the all-cause Kaplan-Meier."""
    for time, cause in untied_competing:
        f1 = aalen_johansen(time, cause, 1, T).estimate
        f2 = aalen_johansen(time, cause, 2, T).estimate
        s = km_landmark(time, cause > 0, T)[0].estimate
        assert f1 + f2 + s == pytest.approx(1.0, abs=1e-12)


def test_aalen_johansen_without_events_is_zero():
    time = np.array([1.0, 3.0, 5.0, 12.0, 20.0])
    est = aalen_johansen(time, np.zeros(5, dtype=int), 1, T)
    assert (est.estimate, est.se, est.lower, est.events) == (0.0, 0.0, 0.0, 0)
    # Boundary rule: Clopper-Pearson upper limit for 0 events in n_eff = 1/12 + 3/12 + 5/12 + 1 + 1 patients.
    assert est.upper == pytest.approx(1.0 - stats.beta.ppf(0.025, 1.0 / 12 + 3.0 / 12 + 5.0 / 12 + 2.0, 1.0), abs=TOL)
    assert est.evaluable
    # Only competing events: the incidence of cause 1 is still 0.
    est = aalen_johansen(time, np.array([2, 0, 2, 0, 0]), 1, T)
    assert est.estimate == 0.0 and est.evaluable


def test_aalen_johansen_defined_when_all_cause_survival_reaches_zero():
    """Nobody followed to t, but all-cause survival reached 0 before t: the incidences are known (as for KM)."""
    time, cause = np.array([1.0, 2.0, 3.0]), np.array([0, 1, 2])
    assert km_landmark(time, cause > 0, 5.0)[0].estimate == 0.0
    ref = CumIncidenceRight(time, cause)
    for k in (1, 2):
        est = aalen_johansen(time, cause, k, 5.0)
        assert est.evaluable, est.reason
        assert est.estimate == pytest.approx(_at(ref.times, ref.cinc[k - 1], 5.0, 0.0), abs=TOL)
    # Survival not yet 0 at the last time: still not evaluable.
    est = aalen_johansen(np.array([1.0, 2.0, 3.0]), np.array([0, 1, 0]), 1, 5.0)
    assert np.isnan(est.estimate) and est.reason == "nobody followed to the landmark"


# --------------------------------------------------------------------------- binomial


@pytest.mark.parametrize("n", [1, 2, 5, 17, 40, 100, 333])
@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_clopper_pearson_matches_scipy_and_statsmodels(n, alpha):
    for k in range(n + 1):
        est = clopper_pearson(k, n, alpha)
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=1 - alpha, method="exact")
        low, high = proportion_confint(k, n, alpha=alpha, method="beta")
        assert (est.lower, est.upper) == pytest.approx((ci.low, ci.high), abs=TOL), k
        assert (est.lower, est.upper) == pytest.approx((low, high), abs=TOL), k
        assert est.estimate == k / n and (est.n, est.events) == (n, k)
        assert est.se == pytest.approx(np.sqrt(k / n * (1 - k / n) / n), abs=1e-15)


def test_binomial_test_matches_scipy():
    rng = np.random.default_rng(11)
    for i in range(N_DATASETS):
        n = int(rng.integers(5, 81))
        time = _rounded(rng, rng.exponential(T * rng.uniform(0.5, 3.0), n))
        event = np.ones(n, dtype=bool)
        late = time >= T                      # censoring only at or after the landmark (some at exactly T)
        event[late] = rng.random(int(late.sum())) < 0.5
        if rng.random() < 0.4:
            time[rng.integers(n)] = T         # an event or a censoring at exactly T
        p0, alpha = float(rng.uniform(0.2, 0.8)), float(rng.choice([0.025, 0.05, 0.1]))
        survivors = int(np.sum((time > T) | ((time == T) & ~event)))
        result = binomial_test(time, event, T, p0, alpha)
        expected = stats.binomtest(survivors, n, p0, alternative="greater").pvalue
        assert result.statistic == survivors, i
        assert result.p_value == pytest.approx(expected, abs=TOL), i
        assert result.reject == (expected <= alpha) and not result.reason, i


def test_binomial_test_refuses_censoring_before_landmark():
    result = binomial_test(np.array([3.0, 5.0, 15.0]), np.array([True, False, False]), T, 0.5, 0.05)
    assert not result.reject and result.reason and np.isnan(result.p_value)


# --------------------------------------------------------------------------- reverse Kaplan-Meier


def test_reverse_km_median_matches_lifelines():
    """Median of the censoring distribution: first time the reverse KM is <= 0.5.

    lifelines computes the curve as exp(sum(log)), so a curve exactly at 0.5 can come out 0.5 + 1e-16 and
    its median_survival_time_ moves to the next step; there we read lifelines' curve with a 1e-12 slack.
    """
    rng = np.random.default_rng(5)
    reached = exactly_half = 0
    for i in range(N_DATASETS):
        time, event = survival_dataset(rng)
        median = reverse_km_median(time, event)
        kmf = KaplanMeierFitter().fit(time, 1 - event.astype(int))
        curve = kmf.survival_function_.iloc[:, 0]
        below = curve.index[curve.to_numpy() <= 0.5 + 1e-12]
        if below.size == 0:
            assert np.isinf(kmf.median_survival_time_) and np.isnan(median), i
            continue
        reached += 1
        assert median == float(below[0]), i
        if abs(float(curve[below[0]]) - 0.5) < 1e-12:
            exactly_half += 1
        else:
            assert median == pytest.approx(float(kmf.median_survival_time_), abs=TOL), i
    assert reached >= 100 and exactly_half >= 1
    assert np.isnan(reverse_km_median(np.array([1.0, 2.0]), np.array([True, True])))


# --------------------------------------------------------------------------- one-sample log-rank


def test_logrank_matches_direct_computation():
    rng = np.random.default_rng(13)
    for i in range(N_DATASETS):
        time, event = survival_dataset(rng)
        p0, alpha = float(rng.uniform(0.2, 0.8)), 0.05
        expected_events = sum(-np.log(p0) / T * min(x, T) for x in time)
        observed = sum(1 for x, e in zip(time, event, strict=True) if e and x <= T)
        z = (expected_events - observed) / np.sqrt(expected_events)
        result = logrank_one_sample(time, event, T, p0, alpha)
        assert result.statistic == pytest.approx(z, abs=TOL), i
        assert result.p_value == pytest.approx(stats.norm.sf(z), abs=TOL), i
        assert result.reject == (stats.norm.sf(z) <= alpha), i


def test_logrank_size_under_exponential_null():
    rng = np.random.default_rng(2024)
    p0, alpha, n, reps = 0.55, 0.05, 200, 2000
    rate = -np.log(p0) / T
    rejections = 0
    for _ in range(reps):
        latent = rng.exponential(1 / rate, n)
        censor = rng.uniform(0.5 * T, 3.0 * T, n)     # administrative censoring, some before T
        rejections += logrank_one_sample(np.minimum(latent, censor), latent <= censor, T, p0, alpha).reject
    rate_hat = rejections / reps
    mcse = np.sqrt(alpha * (1 - alpha) / reps)
    assert abs(rate_hat - alpha) <= 4 * mcse, f"log-rank size {rate_hat:.4f}, alpha {alpha}, MCSE {mcse:.4f}"


# --------------------------------------------------------------------------- edge cases


def test_empty_data_gives_results_not_exceptions():
    empty, none = np.array([]), np.array([], dtype=bool)
    est, _ = km_landmark(empty, none, T)
    assert np.isnan(est.estimate) and est.reason and est.n == 0
    assert all(a.size == 0 for a in km_curve(empty, none))
    est = aalen_johansen(empty, np.array([], dtype=int), 1, T)
    assert np.isnan(est.estimate) and est.reason
    est = clopper_pearson(0, 0)
    assert np.isnan(est.estimate) and est.reason
    assert np.isnan(reverse_km_median(empty, none))
    for method in (*WALD, "binomial", "logrank"):
        result = landmark_test(empty, none, T, 0.55, 0.05, method)
        assert not result.reject and result.reason, method


def test_everyone_censored_before_landmark():
    time, event = np.array([2.0, 4.0, 4.0, 7.0, 11.5]), np.zeros(5, dtype=bool)
    est, _ = km_landmark(time, event, T)
    assert np.isnan(est.estimate) and est.reason == "nobody followed to the landmark"
    for method in (*WALD, "binomial"):
        result = landmark_test(time, event, T, 0.55, 0.05, method)
        assert not result.reject and result.reason, method


def test_survival_zero_at_landmark():
    """Everyone has an event before t: S = 0, the Clopper-Pearson interval for 0 of 5, and no Wald rejection.

    The Wald statistic has zero variance there: a result, never an exception; p = 1 with a reason.
    """
    time, event = np.array([1.0, 2.0, 2.0, 5.0, 11.0]), np.ones(5, dtype=bool)
    est, greenwood = km_landmark(time, event, T)
    assert (est.estimate, est.se, est.lower) == (0.0, 0.0, 0.0) and est.evaluable
    assert est.upper == pytest.approx(proportion_confint(0, 5, alpha=0.05, method="beta")[1], abs=TOL)
    for scale in WALD:
        result = landmark_test(time, event, T, 0.55, 0.05, scale)
        assert not result.reject and result.p_value == 1.0 and result.reason, (scale, result)
    assert not binomial_test(time, event, T, 0.55, 0.05).reject


def test_survival_one_at_landmark_without_censoring_is_the_exact_binomial():
    """No events by t, everyone followed to t: interval and test are exact binomial for K = n.

    Regression: S = 1 used to give the zero-width interval 1.0 (1.0-1.0) and z = +infinity, p = 0,
    rejected, even with 5 patients, where the exact p-value is 0.55^5 = 0.0503.
    """
    for n, p0 in ((5, 0.55), (6, 0.55), (1, 0.3), (40, 0.7)):
        time, event = np.linspace(T, 3 * T, n), np.zeros(n, dtype=bool)
        est, _ = km_landmark(time, event, T)
        assert (est.estimate, est.se, est.events) == (1.0, 0.0, 0)
        assert (est.lower, est.upper) == pytest.approx(proportion_confint(n, n, alpha=0.05, method="beta"), abs=TOL)
        exact = stats.binomtest(n, n, p0, alternative="greater").pvalue
        for scale in WALD:
            result = landmark_test(time, event, T, p0, 0.05, scale)
            assert result.p_value == pytest.approx(exact, rel=1e-12), (n, scale)
            assert result.reject == (exact <= 0.05) and np.isfinite(result.statistic), (n, scale, result)
            assert result.statistic == pytest.approx(stats.norm.isf(exact), rel=1e-9)


def test_survival_one_at_landmark_with_censoring_uses_follow_up_as_information():
    """Censored before t and no event: the exponential-null probability of no event given the follow-up."""
    time, event = np.array([3.0, 6.0, 12.0, 13.0, 15.0, 20.0, 30.0]), np.array([0, 0, 0, 1, 0, 1, 0], dtype=bool)
    n_eff = 3.0 / 12 + 6.0 / 12 + 5
    est, _ = km_landmark(time, event, T)
    assert est.estimate == 1.0
    assert est.lower == pytest.approx(stats.beta.ppf(0.025, n_eff, 1.0), abs=TOL) and est.upper == 1.0
    expected_events = -np.log(0.55) * n_eff       # the one-sample log-rank's E at p0
    result = landmark_test(time, event, T, 0.55, 0.05, "cloglog")
    assert result.p_value == pytest.approx(stats.poisson.pmf(0, expected_events), rel=1e-12)
    assert result.reject


def test_boundary_rule_keeps_wald_decisions_monotone_in_survivors():
    """Without censoring, K = n rejects whenever K = n - 1 does, for every n up to 200 and every scale."""
    for p0, alpha in ((0.55, 0.05), (0.3, 0.025), (0.8, 0.1)):
        for n in range(2, 201):
            for scale in WALD:
                below = wald_test((n - 1) / n, 1.0 / (n * (n - 1)), p0, alpha, scale)
                at_n = wald_test(1.0, 0.0, p0, alpha, scale, n_eff=float(n))
                assert at_n.reject or not below.reject, (p0, n, scale)


def test_wald_unknown_scale_raises():
    with pytest.raises(ValueError, match="unknown Wald scale"):
        wald_test(0.7, 0.01, 0.55, 0.05, "logit")


# --------------------------------------------------------------------------- decisions from K alone


def landmark_status_dataset(n: int, k: int, layout: int) -> tuple[np.ndarray, np.ndarray]:
    """n - k events before T and k patients followed past T (two layouts with the same K)."""
    if layout == 0:
        dead = np.linspace(1.0, T - 1.0, n - k)
        alive_time = np.full(k, T + 6.0)
        alive_event = np.zeros(k, dtype=bool)
    else:
        dead = np.full(n - k, 3.0)                      # all tied
        alive_time = T + 1.0 + np.arange(k) % 4         # some relapse after T, some censored at T
        alive_event = np.arange(k) % 2 == 0
        alive_time[::3] = T
        alive_event[::3] = False
    return np.concatenate([dead, alive_time]), np.concatenate([np.ones(n - k, dtype=bool), alive_event])


def _decisions(n: int, p0: float, alpha: float, ks: range) -> dict[str, list[bool]]:
    out: dict[str, list[bool]] = {m: [] for m in (*WALD, "binomial")}
    for k in ks:
        per_layout = []
        for layout in (0, 1):
            time, event = landmark_status_dataset(n, k, layout)
            est, greenwood = km_landmark(time, event, T)
            assert est.estimate == pytest.approx(k / n, abs=1e-12)
            per_layout.append({m: landmark_test(time, event, T, p0, alpha, m) for m in out})
        for m in out:
            a, b = per_layout[0][m], per_layout[1][m]
            assert a.reject == b.reject and (a.statistic == pytest.approx(b.statistic, abs=1e-9, nan_ok=True)), \
                (m, k)
            out[m].append(a.reject)
    return out


def _assert_upper_set(rejects: list[bool], ks: range, what: str) -> int:
    """rejects[K] == (K >= k_crit) for some k_crit (n + 1 when nothing rejects); returns k_crit."""
    k_crit = next((k for k, r in zip(ks, rejects, strict=True) if r), ks[-1] + 1)
    rejected = [k for k, r in zip(ks, rejects, strict=True) if r]
    assert rejects == [k >= k_crit for k in ks], f"{what}: rejected at K = {rejected}"
    return k_crit


DESIGNS = [(n, p0, alpha) for n in (20, 37, 60) for p0, alpha in ((0.55, 0.05), (0.3, 0.025))]


@pytest.mark.parametrize(("n", "p0", "alpha"), DESIGNS)
def test_decisions_depend_on_k_alone_and_reject_an_upper_set(n, p0, alpha):
    """No censoring before t, K in 0..n: estimate K/n, upper-set rejection, exact binomial, cloglog = CI bound."""
    ks = range(n + 1)
    decisions = _decisions(n, p0, alpha, ks)
    for method in WALD:
        k_crit = _assert_upper_set(decisions[method], ks, method)
        assert 0 < k_crit < n, f"{method}: critical count {k_crit} of {n}"
    exact = [bool(stats.binom.sf(k - 1, n, p0) <= alpha) for k in ks]
    assert decisions["binomial"] == exact
    _assert_upper_set(decisions["binomial"], ks, "binomial")
    for k in ks:   # reject on the cloglog scale <=> p0 below the lower limit of the 1 - 2 alpha log(-log) CI
        time, event = landmark_status_dataset(n, k, 0)
        lower = km_landmark(time, event, T, alpha=2 * alpha)[0].lower
        assert decisions["cloglog"][k] == (p0 < lower), k
