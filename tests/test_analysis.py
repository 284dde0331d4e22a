"""Analysis of simulated trials (sim/analysis/endpoints.py): data cutoff, invariance, coverage, size, edge cases.

Analysing the first n patients of a long trial must equal analysing an n-patient trial with the same
seed; the cutoff must follow the protocol rule ("landmark" or "calendar"). In a scenario where every
patient is transplanted, the Kaplan-Meier estimate of 18-month RFS must be unbiased for the truth that
calibrate.py solves, its 95% CI must cover at about 95%, and the exact binomial test under the null
twin must reject at the exact binomial size. Degenerate trials give not-evaluable results with reasons.
Run with `-s` to see the measured bias, coverage and rejection rates.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from support import NO_PRE_TRANSPLANT_RISK

from sim.analysis.endpoints import cutoff_day, endpoints, itt_data, observe, primary_analysis, time_to_first
from sim.model.draws import CR, CRI
from sim.model.pathway import EXIT_REASONS, simulate_trial
from sim.scenario.calibrate import calibrate, null_twin, rfs
from sim.scenario.schema import load_scenario

BASE = Path(__file__).resolve().parent.parent / "scenarios" / "base.toml"
DAYS_PER_MONTH = 365.25 / 12
LANDMARK = 18 * DAYS_PER_MONTH
SEED = 17
R = 2000                      # trials in the coverage and size studies
N_PER_TRIAL = 100             # transplanted patients per trial there

ALL_TRANSPLANTED = {**NO_PRE_TRANSPLANT_RISK, "post_transplant.relapse_shape": 1.0, "post_transplant.nrm_shape": 1.0}
ENDPOINT_KEYS = {"key", "endpoint", "estimate", "se", "lower", "upper", "n", "events", "test", "null_value", "alpha",
                 "statistic", "p_value", "reject", "test_reason", "method", "not_evaluable_reason"}


@pytest.fixture(scope="module")
def base():
    return load_scenario(BASE)


@pytest.fixture(scope="module", params=["landmark", "calendar"])
def long_trial(request, base):
    """A 120-patient trial of the base scenario under each cutoff rule."""
    s = base if request.param == "landmark" else base.with_updates({"analysis.cutoff": "calendar"})
    return s, simulate_trial(s, 120, SEED)


def _same(a: object, b: object) -> bool:
    """Exact equality of (nested) analysis results, NaN equal to NaN."""
    if dataclasses.is_dataclass(a):
        return type(a) is type(b) and _same(dataclasses.asdict(a), dataclasses.asdict(b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return isinstance(b, list | tuple) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float | np.floating) and np.isnan(a):
        return isinstance(b, float | np.floating) and bool(np.isnan(b))
    return bool(a == b)


# --------------------------------------------------------------------------- cutoff


@pytest.mark.parametrize("n", [20, 45, 80])
def test_first_n_of_long_trial_equals_n_patient_trial(long_trial, n):
    s, h120 = long_trial
    h_n = simulate_trial(s, n, SEED)
    prefix, alone = primary_analysis(h120, n), primary_analysis(h_n)
    assert _same(prefix, alone), (prefix, alone)
    assert _same(endpoints(h120, n), endpoints(h_n))
    assert prefix.estimate.evaluable
    enrolled_by_cutoff = int(np.count_nonzero(h120.draws.enroll_day[:n] <= prefix.cutoff_day))
    assert next(r for r in endpoints(h120, n) if r["endpoint"] == "enrolled")["estimate"] == enrolled_by_cutoff
    if s.analysis.cutoff == "landmark":   # the prefix is not simply the analysis of all 120 patients
        assert prefix.cutoff_day < primary_analysis(h120).cutoff_day


def _is_transplanted(h, i: int) -> bool:
    return EXIT_REASONS[h.exit_reason[i]] == "transplanted"


@pytest.mark.parametrize("n", [20, 45, 80, 120])
def test_landmark_cutoff_rule(base, n):
    h = simulate_trial(base, 120, SEED)
    cutoff = cutoff_day(h, n)
    ends = [h.days["hsct_day"][i] + LANDMARK if _is_transplanted(h, i) else h.days["exit_day"][i] for i in range(n)]
    # The cutoff may carry a rounding margin (microseconds) so that cutoff - hsct_day >= landmark holds exactly.
    assert 0.0 <= cutoff - max(ends) <= 1e-5
    obs = observe(h, n)
    assert obs.cutoff_day == cutoff
    transplanted = [i for i in range(n) if _is_transplanted(h, i)]
    assert list(obs.hsct) == transplanted                 # everyone transplanted is in the analysis
    lost_early = 0
    for j, i in enumerate(transplanted):
        hsct = h.days["hsct_day"][i]
        first_event = np.nanmin([h.post["relapse_day"][i], h.post["death_day"][i], np.inf]) - hsct
        ltfu = np.nan_to_num(h.post["ltfu_day"][i] - hsct, nan=np.inf)
        if ltfu < LANDMARK and ltfu < first_event:
            lost_early += 1
        elif first_event > LANDMARK:                      # event-free and not lost: followed to the landmark
            assert obs.follow_end[j] >= LANDMARK, i
    assert primary_analysis(h, n).n_evaluable == len(transplanted) - lost_early


@pytest.mark.parametrize("n", [20, 80, 120])
def test_calendar_cutoff_rule(base, n):
    s = base.with_updates({"analysis.cutoff": "calendar"})
    h = simulate_trial(s, 120, SEED)
    cutoff = cutoff_day(h, n)
    assert cutoff == pytest.approx(h.draws.enroll_day[0] + s.analysis.calendar_cutoff_months * 365.25 / 12, abs=1e-9)
    obs = observe(h, n)
    hsct = h.days["hsct_day"][:n]
    assert np.all(hsct[obs.hsct] <= cutoff)
    assert np.count_nonzero(hsct <= cutoff) == obs.hsct.size
    assert np.all(hsct[obs.hsct] + obs.follow_end <= cutoff + 1e-9)
    time, event = time_to_first(obs.follow_end, obs.relapse, obs.death)
    assert np.all(hsct[obs.hsct] + time <= cutoff + 1e-9)
    # ITT: only patients enrolled by the cutoff, followed from enrollment to the cutoff at most.
    itt_time, itt_event = itt_data(h, n)
    enrolled = h.draws.enroll_day[:n] <= cutoff
    assert itt_time.size == np.count_nonzero(enrolled)
    assert np.all(itt_time >= 0)
    assert np.all(h.draws.enroll_day[:n][enrolled] + itt_time <= cutoff + 1e-9)
    left = np.array([not _is_transplanted(h, i) for i in range(n)])[enrolled]
    assert np.array_equal(itt_event[left], h.days["exit_day"][:n][enrolled][left] <= cutoff)
    if n == 120:  # the rule bites: some patients are transplanted, or even enrolled, after the cutoff
        assert np.count_nonzero(hsct > cutoff) > 0 and np.count_nonzero(~enrolled) > 0
        rows = {r["endpoint"]: r for r in endpoints(h, n)}
        assert rows["enrolled"]["estimate"] == np.count_nonzero(enrolled)
        assert rows["18-month event-free survival from enrollment (ITT)"]["n"] == np.count_nonzero(enrolled)



# --------------------------------------------------------------------------- coverage, bias, size


def _trials(s, post_model) -> list:
    return [simulate_trial(s, N_PER_TRIAL, SEED, replicate=r, post_model=post_model) for r in range(R)]


def test_km_rfs_unbiased_and_ci_covers(base):
    s = base.with_updates(ALL_TRANSPLANTED)
    model = calibrate(s)
    truth = rfs(model, 18 * 365.25 / 12)
    results = [primary_analysis(h) for h in _trials(s, model)]
    assert all(r.n_transplanted == N_PER_TRIAL for r in results)
    est = np.array([r.estimate.estimate for r in results])
    covered = np.array([r.estimate.lower <= truth <= r.estimate.upper for r in results])
    mcse = est.std(ddof=1) / np.sqrt(R)
    bias, coverage = est.mean() - truth, covered.mean()
    message = (f"18-month RFS truth {truth:.4f}, mean KM {est.mean():.4f}, bias {bias:+.4f} (MCSE {mcse:.4f}), "
               f"95% CI coverage {coverage:.4f} (MCSE {np.sqrt(coverage * (1 - coverage) / R):.4f}), R = {R}")
    print("\n" + message)
    assert abs(bias) <= 4 * mcse, message
    assert 0.93 <= coverage <= 0.97, message


@pytest.fixture(scope="module")
def null_trials(base):
    """R trials of 100 transplanted patients under the null twin (true RFS = p0), no loss to follow-up."""
    s = base.with_updates({**ALL_TRANSPLANTED, "post_transplant.ltfu_prob": 0.0, "analysis.test": "binomial"})
    a = s.analysis
    twin = null_twin(calibrate(s), a.p0, LANDMARK)
    assert rfs(twin, LANDMARK) == pytest.approx(a.p0, abs=1e-10)
    histories = _trials(s, twin)
    return s, histories, [primary_analysis(h) for h in histories]


def test_binomial_test_size_under_null_twin(null_trials):
    s, histories, results = null_trials
    a = s.analysis
    assert all(r.n_transplanted == N_PER_TRIAL for r in results)
    k_crit = next(k for k in range(N_PER_TRIAL + 2) if stats.binom.sf(k - 1, N_PER_TRIAL, a.p0) <= a.alpha)
    size = float(stats.binom.sf(k_crit - 1, N_PER_TRIAL, a.p0))
    rate = float(np.mean([r.test.reject for r in results]))
    mcse = np.sqrt(size * (1 - size) / R)
    # The same trials analysed with the default cloglog Wald test (reported, not asserted).
    cloglog = s.with_updates({"analysis.test": "cloglog"})
    wald_rate = float(np.mean([primary_analysis(dataclasses.replace(h, scenario=cloglog)).test.reject
                               for h in histories]))
    not_run = sum(bool(r.test.reason) for r in results)
    message = (f"exact binomial: rejection rate {rate:.4f}, exact size {size:.4f} (K >= {k_crit} of "
               f"{N_PER_TRIAL}), MCSE {mcse:.4f}, test not evaluable in {not_run}/{R} trials; "
               f"cloglog Wald on the same trials: {wald_rate:.4f}")
    print("\n" + message)
    assert abs(rate - size) <= 4 * mcse, message


def test_landmark_cutoff_follows_every_event_free_patient_to_the_landmark(null_trials):
    """No loss to follow-up: every transplanted patient has a known landmark status, in every trial.

    Regression: cutoff - hsct_day = (hsct_day + landmark) - hsct_day can round to landmark - 2e-13, which
    censored the last-transplanted patient just before the landmark (binomial test not run in ~13% of trials).
    """
    s, histories, results = null_trials
    short = 0
    for h in histories:
        obs = observe(h)
        time, event = time_to_first(obs.follow_end, obs.relapse, obs.death)
        short += bool(np.any(~event & (time < LANDMARK)))
    not_run = sum(bool(r.test.reason) for r in results)
    not_evaluable = sum(r.n_evaluable < N_PER_TRIAL for r in results)
    assert (short, not_run, not_evaluable) == (0, 0, 0), (
        f"{short}/{R} trials with an event-free patient followed < {LANDMARK} days; binomial test not run in "
        f"{not_run}; n_evaluable short in {not_evaluable}")


# --------------------------------------------------------------------------- not evaluable


def test_no_donor_for_anyone_is_not_evaluable(base):
    s = base.with_updates({"donor.p_no_donor": 1.0})
    h = simulate_trial(s, 40, SEED)
    result = primary_analysis(h)
    assert result.n_transplanted == 0
    assert np.isnan(result.estimate.estimate) and result.estimate.reason
    assert not result.test.reject and result.test.reason
    rows = endpoints(h)
    assert rows[0]["not_evaluable_reason"] and np.isnan(rows[0]["estimate"])
    itt = rows[1]
    assert itt["estimate"] == 0.0          # nobody can be event-free: failure to reach HSCT is an event


def test_min_transplanted_threshold(base):
    h = simulate_trial(base, 30, SEED)
    m = primary_analysis(h).n_transplanted
    assert 5 <= m < 30
    at = primary_analysis(dataclasses.replace(h, scenario=base.with_updates({"analysis.min_transplanted": m})))
    assert at.estimate.evaluable and _same(at, primary_analysis(h))
    above = primary_analysis(dataclasses.replace(h, scenario=base.with_updates({"analysis.min_transplanted": m + 1})))
    assert np.isnan(above.estimate.estimate) and not above.test.reject
    assert "analysis.min_transplanted" in above.estimate.reason and "analysis.min_transplanted" in above.test.reason
    assert above.n_transplanted == m


def test_fewer_than_min_transplanted_counts_events_by_the_landmark(base):
    """Regression: the not-evaluable primary row counted every RFS event over follow-up, not those by 18 months."""
    h = simulate_trial(base, 60, SEED)
    evaluable = primary_analysis(h)
    assert evaluable.estimate.events < int(np.count_nonzero(time_to_first(observe(h).follow_end, observe(h).relapse,
                                                                          observe(h).death)[1]))
    too_few = primary_analysis(dataclasses.replace(h, scenario=base.with_updates({"analysis.min_transplanted": 1000})))
    assert np.isnan(too_few.estimate.estimate) and too_few.estimate.events == evaluable.estimate.events


def test_post_transplant_secondaries_need_min_transplanted(base):
    """Regression: secondary endpoints were estimated from one or two transplanted patients."""
    s = base.with_updates({"analysis.min_transplanted": 10})
    h = simulate_trial(s, 9, SEED)
    assert 0 < primary_analysis(h).n_transplanted < 10
    rows = {r["endpoint"]: r for r in endpoints(h)}
    post = [r for name, r in rows.items() if ("after HSCT" in name or "GVHD" in name) and np.isfinite(r["n"])]
    assert len(post) == 8
    for r in post:
        assert np.isnan(r["estimate"]) and "analysis.min_transplanted" in r["not_evaluable_reason"], r
    assert np.isfinite(rows[next(k for k in rows if k.startswith("CRc"))]["estimate"])


def test_a_test_never_rejects_when_its_estimate_is_not_evaluable(base):
    """Regression: with the one-sample log-rank test and a calendar cutoff before anyone reached 18 months
    after HSCT, the primary estimate was 'not evaluable' and the test still rejected H0 (42 of 199 trials).
    """
    s = base.with_updates({"analysis.test": "logrank", "analysis.cutoff": "calendar",
                           "analysis.calendar_cutoff_months": 18.0})
    not_evaluable = 0
    model = calibrate(s)
    for seed in range(40):
        h = simulate_trial(s, 80, seed, post_model=model)
        result = primary_analysis(h)
        if not result.estimate.evaluable:
            not_evaluable += 1
            assert not result.test.reject and result.test.reason, seed
        else:   # nobody can be 18 months past HSCT: evaluable only when the longest follow-up ends in an event
            assert result.estimate.estimate == 0.0, seed
    assert not_evaluable >= 35


# --------------------------------------------------------------------------- endpoints


@pytest.fixture(scope="module")
def risky_trial(base):
    """Many deaths before the response assessment (induction and blinatumomab), landmark cutoff."""
    s = base.with_updates({"induction.p_death": 0.2, "response.p_cr": 0.8, "response.p_early_death": 0.1})
    return simulate_trial(s, 80, SEED)


def test_endpoint_rows(risky_trial):
    h = risky_trial
    rows = endpoints(h)
    names = [r["endpoint"] for r in rows]
    assert len(names) == len(set(names)) == 24
    assert len({r["key"] for r in rows}) == 24
    assert all(set(r) == ENDPOINT_KEYS for r in rows)
    by_name = dict(zip(names, rows, strict=True))
    primary = primary_analysis(h)
    assert _same(rows[0]["estimate"], primary.estimate.estimate) and rows[0]["n"] == primary.n_transplanted
    assert by_name["enrolled"]["estimate"] == 80
    assert by_name["transplanted by the cutoff"]["estimate"] == primary.n_transplanted
    assert (rows[0]["statistic"], rows[0]["p_value"], rows[0]["reject"]) == (
        primary.test.statistic, primary.test.p_value, primary.test.reject)
    rates = [r for r in rows if np.isfinite(r["se"])]
    assert len(rates) == 19
    for r in rates:
        assert 0.0 <= r["lower"] <= r["estimate"] <= r["upper"] <= 1.0, r
        assert not r["not_evaluable_reason"], r


def test_crc_denominator_includes_deaths_before_assessment(risky_trial):
    h = risky_trial
    row = next(r for r in endpoints(h) if r["endpoint"].startswith("CRc"))
    assessed = ~np.isnan(h.days["response_day"])
    died_before = np.isin([EXIT_REASONS[x] for x in h.exit_reason], ["induction_death", "early_death"])
    assert died_before.sum() >= 10 and not np.any(assessed & died_before)
    # Landmark cutoff: every patient's response status is known, deaths before assessment count as failures.
    assert row["n"] == h.n == assessed.sum() + died_before.sum()
    assert row["events"] == np.count_nonzero(assessed & np.isin(h.draws.response, (CR, CRI)))
    assert row["estimate"] == pytest.approx(row["events"] / row["n"], abs=1e-15)
