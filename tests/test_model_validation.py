"""Statistical validation of the simulated pathway against the scenario's inputs.

Each check compares a simulated frequency or mean with the value the scenario asked for (or a closed
form derived here from it), with tolerance 4 Monte Carlo standard errors, fixed seeds and 20,000
patients, so that a wrong model fails. Probabilities use the right conditional denominator (e.g. the
response among patients alive after VIP). Every trial is simulated once per module (fixtures).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines import AalenJohansenFitter
from scipy import stats
from support import NO_PRE_TRANSPLANT_RISK as _NO_RISK
from support import NO_WAITING_RISK, UNLINKED_GVHD

from sim.analysis.datasets import patients_table
from sim.model.draws import enrollment
from sim.model.pathway import EXIT_REASONS, simulate_trial
from sim.scenario import calibrate as cal
from sim.scenario.schema import DAYS_PER_MONTH, load_scenario

BASE = Path(__file__).resolve().parent.parent / "scenarios" / "base.toml"
N = 20_000
SEED = 11

NO_PRE_TRANSPLANT_RISK = {**_NO_RISK, "post_transplant.ltfu_prob": 0.0}
SHAPED = {
    "post_transplant.relapse_shape": 0.7, "post_transplant.nrm_shape": 1.5, "mrd.positive_action": "transplant",
    "mrd.mfc.p_negative_after_induction": 0.5, "post_transplant.relapse_hr_mrd_positive": 2.0,
}


def within(observed: float, expected: float, mcse: float, k: float = 4.0) -> None:
    """Assert |observed - expected| <= k MCSE, with a message giving the z-score."""
    assert mcse > 0, "a zero standard error would make the check vacuous"
    z = (observed - expected) / mcse
    assert abs(z) <= k, f"observed {observed:.5f}, expected {expected:.5f}, MCSE {mcse:.5f}, z = {z:.2f}"


def check_proportion(events: int | np.integer, n: int | np.integer, p: float) -> None:
    """Binomial check of events / n against p with MCSE sqrt(p (1 - p) / n)."""
    n = int(n)
    assert n >= 1000, f"denominator {n} too small for a meaningful check"
    within(int(events) / n, p, math.sqrt(p * (1 - p) / n))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def base():
    """base.toml with GVHD not changing NRM: the closed forms checked here are those of the unlinked model."""
    return load_scenario(BASE).with_updates(UNLINKED_GVHD)


@pytest.fixture(scope="module")
def base_trial(base):
    history = simulate_trial(base, N, seed=SEED)
    return history, patients_table(history)


@pytest.fixture(scope="module")
def no_risk(base):
    scenario = base.with_updates(NO_PRE_TRANSPLANT_RISK)
    history = simulate_trial(scenario, N, seed=SEED)
    return scenario, patients_table(history)


@pytest.fixture(scope="module")
def shaped(base):
    scenario = base.with_updates({**NO_PRE_TRANSPLANT_RISK, **SHAPED})
    history = simulate_trial(scenario, N, seed=SEED + 1)
    return scenario, patients_table(history)


def transplanted(p: pd.DataFrame) -> pd.DataFrame:
    return p[p["hsct_day"].notna()]


def since_hsct(p: pd.DataFrame, column: str) -> np.ndarray:
    """Days from HSCT to the event (NaN where it never happened within the horizon)."""
    return (p[column] - p["hsct_day"]).to_numpy(dtype=float)


# --------------------------------------------------------------------------- pre-transplant pathway


def test_every_patient_has_an_exit_reason(base_trial):
    history, p = base_trial
    assert len(p) == N
    assert set(p["exit_reason"]) <= set(EXIT_REASONS)
    assert (history.exit_reason >= 0).all()


def test_induction_death_rate(base, base_trial):
    _, p = base_trial
    check_proportion((p["exit_reason"] == "induction_death").sum(), len(p), base.induction.p_death)
    assert p["blina_start_day"].notna().sum() + p["induction_death_day"].notna().sum() == len(p)


@pytest.mark.parametrize("outcome", ["CR", "CRi", "early_death", "refractory"])
def test_response_among_alive_after_vip(base, base_trial, outcome):
    _, p = base_trial
    alive = p[p["blina_start_day"].notna()]
    r = base.response
    expected = {"CR": r.p_cr, "CRi": r.p_cri, "early_death": r.p_early_death,
                "refractory": 1.0 - r.p_cr - r.p_cri - r.p_early_death}[outcome]
    # the denominator is "response assessed or died during blinatumomab"
    assert len(alive) == p["response_day"].notna().sum() + p["blina_death_day"].notna().sum()
    check_proportion((alive["response"] == outcome).sum(), len(alive), expected)


def test_response_day_is_assessment_day_after_enrollment(base, base_trial):
    _, p = base_trial
    assessed = p[p["response_day"].notna()]
    gap = (assessed["response_day"] - assessed["enroll_day"]).to_numpy()
    # equal up to floating-point rounding of calendar days (~1e-11 days at day 3e5)
    np.testing.assert_allclose(gap, base.response.assessment_day, rtol=0, atol=1e-9)
    np.testing.assert_allclose(assessed["blina_start_day"] - assessed["enroll_day"], base.induction.duration_days,
                               rtol=0, atol=1e-9)


def test_mrd_negative_after_induction_among_remitters(base, base_trial):
    _, p = base_trial
    remitters = p[p["response"].isin(["CR", "CRi"]) & p["response_day"].notna()]
    assert remitters["mrd1_negative"].notna().all()
    assert p.loc[~p.index.isin(remitters.index), "mrd1_negative"].isna().all()
    check_proportion(remitters["mrd1_negative"].sum(), len(remitters), base.mrd.mfc.p_negative_after_induction)


def test_mrd_negative_before_hsct_among_tested(base, base_trial):
    _, p = base_trial
    tested = p[p["mrd2_sample_day"].notna()]
    assert tested["mrd2_negative"].notna().all()
    check_proportion(tested["mrd2_negative"].sum(), len(tested), cal.mrd_negative_before_hsct(base))


@pytest.mark.parametrize("cycle", [1, 2])
@pytest.mark.parametrize("outcome", ["death", "relapse"])
def test_consolidation_risk_per_cycle(base, base_trial, cycle, outcome):
    _, p = base_trial
    started = p[p[f"cycle{cycle}_start_day"].notna()]
    stopped = started[started[f"cycle{cycle}_end_day"].isna()]
    events = (stopped["exit_reason"] == f"consolidation_{outcome}").sum()
    assert len(stopped) == (stopped["exit_reason"].isin(["consolidation_death", "consolidation_relapse"])).sum()
    c = getattr(base.consolidation, f"cycle{cycle}")
    check_proportion(events, len(started), c.p_death if outcome == "death" else c.p_relapse)
    # the event falls inside the planned cycle
    day = stopped[f"consolidation_{outcome}_day"].dropna() - stopped[f"cycle{cycle}_start_day"]
    assert ((day.dropna() >= 0) & (day.dropna() <= c.length_days)).all()


@pytest.mark.parametrize("cycle", [1, 2])
def test_cycle_length_with_delay(base, base_trial, cycle):
    _, p = base_trial
    c = getattr(base.consolidation, f"cycle{cycle}")
    length = (p[f"cycle{cycle}_end_day"] - p[f"cycle{cycle}_start_day"]).dropna().to_numpy()
    assert len(length) > 15_000
    sd = length.std(ddof=1)
    within(length.mean(), c.length_days + c.p_delay * c.delay_days, sd / math.sqrt(len(length)))
    np.testing.assert_allclose(np.unique(length.round(6)), [c.length_days, c.length_days + c.delay_days])


def test_screen_failure_rate(base, base_trial):
    history, p = base_trial
    screened = history.draws.n_screened
    check_proportion(screened - len(p), screened, base.accrual.screen_fail_prob)


@pytest.mark.parametrize("donor", ["none", "haplo", "sibling", "unrelated"])
def test_donor_type_mix(base, base_trial, donor):
    _, p = base_trial
    d = base.donor
    expected = d.p_no_donor if donor == "none" else (1 - d.p_no_donor) * getattr(d, f"p_{donor}")
    check_proportion((p["donor_type"] == donor).sum(), len(p), expected)


def test_refusal_among_eligible_with_donor(base, base_trial):
    """Refusal is decided at the MRD result; after it, the wait for donor and slot can still end in relapse or death."""
    _, p = base_trial
    decided = p["mrd2_result_day"].notna() & ~(p["off_pathway_day"] < p["mrd2_result_day"])
    eligible = p[decided & (p["mrd2_negative"] == True) & (p["donor_type"] != "none")]  # noqa: E712 (nullable boolean)
    assert set(eligible["exit_reason"]) <= {"transplanted", "refusal", "relapse_awaiting_hsct", "death_awaiting_hsct"}
    check_proportion((eligible["exit_reason"] == "refusal").sum(), len(eligible), base.transplant.p_refusal)


def _transplant_probability(s) -> float:
    """P(transplanted | enrolled), stage by stage from the scenario's inputs."""
    r, c1, c2 = s.response, s.consolidation.cycle1, s.consolidation.cycle2
    assay = s.mrd.mfc if s.mrd.assay == "MFC" else s.mrd.ngs
    p1 = assay.p_negative_after_induction
    mrd_ok = 1.0 if s.mrd.positive_action == "transplant" else \
        p1 * (1 - assay.p_lose_negativity) + (1 - p1) * assay.p_convert_to_negative
    remission = r.p_cr + (r.p_cri if s.consolidation.include_cri else 0.0)
    return ((1 - s.induction.p_death) * remission * (1 - c1.p_death - c1.p_relapse) * (1 - c2.p_death - c2.p_relapse)
            * mrd_ok * (1 - s.donor.p_no_donor) * (1 - s.transplant.p_refusal))


@pytest.mark.parametrize("updates", [
    {},
    {"consolidation.include_cri": False, "mrd.assay": "NGS", "response.p_cri": 0.2, "response.p_cr": 0.6,
     "donor.p_no_donor": 0.15, "transplant.p_refusal": 0.15, "consolidation.cycle2.p_relapse": 0.1},
    {"mrd.positive_action": "transplant", "induction.p_death": 0.1},
], ids=["base", "no_cri_ngs", "mrd_positive_transplanted"])
def test_transplant_rate_is_product_of_stage_probabilities(base, updates):
    """Without risk while waiting (that is tests/test_waiting.py), P(transplanted) is the product of the stages."""
    scenario = base.with_updates({**NO_WAITING_RISK, **updates})
    p = patients_table(simulate_trial(scenario, N, seed=SEED))
    check_proportion((p["exit_reason"] == "transplanted").sum(), len(p), _transplant_probability(scenario))
    assert (p["hsct_day"].notna() == (p["exit_reason"] == "transplanted")).all()


@pytest.mark.parametrize("column, key, window", [
    ("crs_grade3_day", "p_crs_grade3", 3.0),
    ("neurotox_grade3_day", "p_neurotox_grade3", None),
    ("blina_discontinued_day", "p_discontinuation", None),
])
def test_blinatumomab_toxicity_base(base, base_trial, column, key, window):
    _, p = base_trial
    blina = base.blinatumomab
    started = p[p["blina_start_day"].notna()]
    survivors = started[started["blina_death_day"].isna()]
    p_tox = getattr(blina, key)
    check_proportion(survivors[column].notna().sum(), len(survivors), p_tox)
    offset = (started[column] - started["blina_start_day"]).dropna()
    assert ((offset >= 0) & (offset <= (window or blina.duration_days))).all()


@pytest.fixture(scope="module")
def toxic(base):
    """Frequent toxicity and early death, so that hiding events after an early death is measurable."""
    scenario = base.with_updates({"response.p_early_death": 0.5, "response.p_cr": 0.4, "response.p_cri": 0.05,
                                  "blinatumomab.p_crs_grade3": 0.3, "blinatumomab.p_neurotox_grade3": 0.3,
                                  "blinatumomab.p_discontinuation": 0.3})
    return scenario, patients_table(simulate_trial(scenario, N, seed=SEED + 2))


@pytest.mark.parametrize("column, key, window", [
    ("crs_grade3_day", "p_crs_grade3", 3.0),
    ("neurotox_grade3_day", "p_neurotox_grade3", None),
    ("blina_discontinued_day", "p_discontinuation", None),
])
def test_blinatumomab_toxicity_hidden_after_early_death(toxic, column, key, window):
    scenario, p = toxic
    blina = scenario.blinatumomab
    started = p[p["blina_start_day"].notna()]
    p_tox = getattr(blina, key)
    window = min(window or blina.duration_days, blina.duration_days)
    # onset ~ U(0, window), early death ~ U(0, D): P(death before onset) = (window / 2) / D
    p_hidden = scenario.response.p_early_death * (window / 2) / blina.duration_days
    check_proportion(started[column].notna().sum(), len(started), p_tox * (1 - p_hidden))
    survivors = started[started["blina_death_day"].isna()]
    check_proportion(survivors[column].notna().sum(), len(survivors), p_tox)
    assert not (started[column] > started["blina_death_day"]).any()


# --------------------------------------------------------------------------- accrual


def test_accrual_without_ramp_is_homogeneous_poisson(base):
    scenario = base.with_updates({"accrual.ramp_up_months": 0.0})
    a = scenario.accrual
    p = patients_table(simulate_trial(scenario, N, seed=SEED))
    days = p["enroll_day"].to_numpy()
    assert np.all(np.diff(days) >= 0)
    gaps = np.diff(np.concatenate([[0.0], days]))
    rate = a.n_sites * a.screened_per_site_month * (1 - a.screen_fail_prob) / (365.25 / 12)
    assert stats.kstest(gaps, "expon", args=(0.0, 1.0 / rate)).pvalue > 0.001
    within(gaps.mean(), 1.0 / rate, gaps.std(ddof=1) / math.sqrt(len(gaps)))
    # sites are equally likely
    counts = np.bincount(p["site"] - 1, minlength=a.n_sites)
    assert stats.chisquare(counts).pvalue > 0.001


def test_accrual_rate_precise(base):
    """200,000 enrollments (the vectorised accrual alone): the mean gap has an MCSE of 0.2% of its value."""
    a = base.with_updates({"accrual.ramp_up_months": 0.0}).accrual
    days, _, _ = enrollment(a, 200_000, SEED, 0)
    gaps = np.diff(np.concatenate([[0.0], days]))
    rate = a.n_sites * a.screened_per_site_month * (1 - a.screen_fail_prob) / (365.25 / 12)
    within(gaps.mean(), 1.0 / rate, gaps.std(ddof=1) / math.sqrt(len(gaps)))


def _expected_enrolled(a, t_months: float) -> float:
    """Integrated enrollment intensity over [0, t]: site k opens at ramp * k / K."""
    opens = a.ramp_up_months * np.arange(a.n_sites) / a.n_sites
    return a.screened_per_site_month * (1 - a.screen_fail_prob) * float(np.sum(np.maximum(t_months - opens, 0.0)))


def test_ramp_up_first_month_below_steady_state(base):
    a = base.accrual
    replicates = 3000
    first_month = np.array([np.sum(enrollment(a, 30, SEED, rep)[0] <= DAYS_PER_MONTH) for rep in range(replicates)])
    steady = a.n_sites * a.screened_per_site_month * (1 - a.screen_fail_prob)
    expected = _expected_enrolled(a, 1.0)
    mcse = math.sqrt(expected / replicates)  # Poisson count
    within(first_month.mean(), expected, mcse)
    assert first_month.mean() + 4 * mcse < steady


def test_ramp_up_counts_follow_integrated_intensity(base):
    """Many sites opening over 6 months: enrollments per month match the piecewise-linear intensity."""
    scenario = base.with_updates({"accrual.n_sites": 500, "accrual.screened_per_site_month": 1.0})
    a = scenario.accrual
    days = enrollment(a, N, SEED, 0)[0] / DAYS_PER_MONTH
    edges = np.arange(0.0, 10.0)
    observed = np.histogram(days, bins=edges)[0]
    expected = np.diff([_expected_enrolled(a, t) for t in edges])
    for obs, exp in zip(observed, expected, strict=True):
        within(obs, exp, math.sqrt(exp))
    assert stats.chisquare(observed, expected * observed.sum() / expected.sum()).pvalue > 0.001


# --------------------------------------------------------------------------- post-transplant calibration


def _aalen_johansen_cifs(p: pd.DataFrame, horizon: float, t: float) -> tuple[float, float]:
    rel, nrm = since_hsct(p, "relapse_day"), since_hsct(p, "nrm_day")
    assert not np.any(~np.isnan(rel) & ~np.isnan(nrm)), "relapse and NRM are competing: at most one happens"
    event = np.where(~np.isnan(rel), 1, np.where(~np.isnan(nrm), 2, 0))
    time = np.where(event == 1, rel, np.where(event == 2, nrm, horizon))
    out = []
    for cause in (1, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            aj = AalenJohansenFitter(calculate_variance=False, seed=0)
            aj.fit(time, event, event_of_interest=cause)
        cif = aj.cumulative_density_
        out.append(float(cif[cif.index <= t].iloc[-1, 0]))
    # no censoring before the horizon, so the Aalen-Johansen estimate is the empirical proportion
    assert out[0] == pytest.approx(np.mean((event == 1) & (time <= t)), abs=2e-4)
    return out[0], out[1]


@pytest.mark.parametrize("which", ["no_risk", "shaped"])
def test_post_transplant_cifs_match_landmark_incidences(request, which):
    scenario, p = request.getfixturevalue(which)
    tp = transplanted(p)
    n = len(tp)
    assert n == N
    pt = scenario.post_transplant
    tau = pt.incidence_landmark_months * DAYS_PER_MONTH
    relapse, nrm = _aalen_johansen_cifs(tp, pt.horizon_months * DAYS_PER_MONTH, tau)
    r, m = pt.relapse_incidence, pt.nrm_incidence
    within(relapse, r, math.sqrt(r * (1 - r) / n))
    within(nrm, m, math.sqrt(m * (1 - m) / n))


def _group_cif(model, group: int, t: float, cause: str) -> float:
    """Subgroup CIF at t by midpoint-rule integration of h_cause(s) S(s) on a fine grid (written here)."""
    edges = np.linspace(0.0, t, 200_001)
    s = 0.5 * (edges[1:] + edges[:-1])
    h_r = model.relapse_hr[group] * model.relapse_cumhaz * (s / model.tau_days) ** model.relapse_shape
    h_n = model.nrm_hr[group] * model.nrm_cumhaz * (s / model.tau_days) ** model.nrm_shape
    k, c = (model.relapse_shape, model.relapse_hr[group] * model.relapse_cumhaz) if cause == "relapse" else \
        (model.nrm_shape, model.nrm_hr[group] * model.nrm_cumhaz)
    hazard = c * k / model.tau_days * (s / model.tau_days) ** (k - 1)
    return float(np.sum(hazard * np.exp(-h_r - h_n)) * (t / (len(edges) - 1)))


@pytest.mark.parametrize("mrd_positive", [False, True])
def test_post_transplant_subgroup_relapse_follows_hazard_ratio(shaped, mrd_positive):
    """Within MRD strata the relapse CIF at the landmark equals that subgroup's model CIF (HR applied)."""
    scenario, p = shaped
    model = cal.calibrate(scenario)
    tp = transplanted(p)
    stratum = tp[tp["mrd2_negative"] == (not mrd_positive)]
    tau = model.tau_days
    n_positive = int((tp["mrd2_negative"] == False).sum())  # noqa: E712 (nullable boolean)
    check_proportion(n_positive, len(tp), 1 - cal.mrd_negative_before_hsct(scenario))
    # no donor-type NRM hazard ratio in this scenario, so any donor's subgroup (here sibling) is the stratum's
    expected = _group_cif(model, 2 * 1 + int(mrd_positive), tau, "relapse")
    observed = np.mean(since_hsct(stratum, "relapse_day") <= tau)
    within(observed, expected, math.sqrt(expected * (1 - expected) / len(stratum)))


@pytest.fixture(scope="module")
def donor_hr(base):
    scenario = base.with_updates({**NO_PRE_TRANSPLANT_RISK, "post_transplant.nrm_hr_haplo": 1.5,
                                  "post_transplant.nrm_hr_unrelated": 2.5, "post_transplant.nrm_shape": 1.3,
                                  "donor.p_haplo": 0.4, "donor.p_sibling": 0.3, "donor.p_unrelated": 0.3})
    return scenario, patients_table(simulate_trial(scenario, N, seed=SEED + 3))


@pytest.mark.parametrize("donor, group", [("haplo", 0), ("sibling", 2), ("unrelated", 4)])
def test_post_transplant_nrm_by_donor_follows_hazard_ratio(donor_hr, donor, group):
    scenario, p = donor_hr
    tp = transplanted(p)
    model = cal.calibrate(scenario)
    tau = model.tau_days
    stratum = tp[tp["donor_type"] == donor]
    expected = _group_cif(model, group, tau, "nrm")
    observed = np.mean(since_hsct(stratum, "nrm_day") <= tau)
    within(observed, expected, math.sqrt(expected * (1 - expected) / len(stratum)))


@pytest.mark.parametrize("shape", [1.0, 2.0, 0.6])
def test_relapse_time_distribution_without_nrm(base, shape):
    r = 0.3
    scenario = base.with_updates({**NO_PRE_TRANSPLANT_RISK, "post_transplant.nrm_incidence": 0.0,
                                  "post_transplant.relapse_incidence": r, "post_transplant.relapse_shape": shape})
    tp = transplanted(patients_table(simulate_trial(scenario, N, seed=SEED + 4)))
    pt = scenario.post_transplant
    tau, horizon = pt.incidence_landmark_months * DAYS_PER_MONTH, pt.horizon_months * DAYS_PER_MONTH
    assert tp["nrm_day"].isna().all()
    a = -math.log(1 - r)

    def cdf(t):
        return -np.expm1(-a * (np.asarray(t) / tau) ** shape)

    t = since_hsct(tp, "relapse_day")
    seen = t[~np.isnan(t)]
    assert seen.max() <= horizon
    # relapse within the horizon ~ Binomial(n, F(horizon)); given that, T has CDF F(t) / F(horizon)
    check_proportion(len(seen), len(tp), float(cdf(horizon)))
    assert stats.kstest(seen, lambda x: cdf(x) / cdf(horizon)).pvalue > 0.001
    check_proportion(np.sum(seen <= tau), len(tp), r)


@pytest.mark.parametrize("which", ["no_risk", "shaped"])
def test_post_transplant_endpoints_match_true_endpoints(request, which):
    scenario, p = request.getfixturevalue(which)
    tp = transplanted(p)
    n = len(tp)
    landmark = scenario.analysis.landmark_months * DAYS_PER_MONTH
    truth = cal.true_endpoints(cal.calibrate(scenario), landmark)
    rel, nrm, death = since_hsct(tp, "relapse_day"), since_hsct(tp, "nrm_day"), since_hsct(tp, "death_day")
    agvhd, cgvhd = since_hsct(tp, "agvhd_day"), since_hsct(tp, "cgvhd_day")
    severe = (tp["agvhd_grade"] == "III-IV").to_numpy()
    systemic = tp["cgvhd_systemic"].fillna(False).to_numpy(dtype=bool)
    first = np.fmin(np.nan_to_num(rel, nan=np.inf), np.nan_to_num(nrm, nan=np.inf))
    gvhd_event = np.fmin(np.where(severe, agvhd, np.inf), np.where(systemic, cgvhd, np.inf))
    assert np.nanmax(agvhd) <= 100.0
    observed = {
        "rfs": np.mean(first > landmark),
        "os": np.mean(~(death <= landmark)),
        "grfs": np.mean(np.fmin(first, np.nan_to_num(gvhd_event, nan=np.inf)) > landmark),
        "relapse_cif": np.mean(rel <= landmark),
        "nrm_cif": np.mean(nrm <= landmark),
        "agvhd_2_4_day100": np.mean(agvhd <= 100.0),
        "agvhd_3_4_day100": np.mean((agvhd <= 100.0) & severe),
        "cgvhd_cif": np.mean(cgvhd <= landmark),
    }
    failures = []
    for key, expected in truth.items():
        z = (observed[key] - expected) / math.sqrt(expected * (1 - expected) / n)
        if abs(z) > 4:
            failures.append(f"{key}: observed {observed[key]:.4f}, truth {expected:.4f}, z = {z:.2f}")
    assert not failures, failures


def test_gvhd_recorded_only_before_relapse_and_death(no_risk):
    _, p = no_risk
    tp = transplanted(p)
    end = np.fmin(np.nan_to_num(since_hsct(tp, "relapse_day"), nan=np.inf),
                  np.nan_to_num(since_hsct(tp, "nrm_day"), nan=np.inf))
    for column in ("agvhd_day", "cgvhd_day"):
        t = since_hsct(tp, column)
        assert not np.any(t[~np.isnan(t)] >= end[~np.isnan(t)])
    cg = since_hsct(tp, "cgvhd_day")
    assert np.nanmin(cg) >= no_risk[0].post_transplant.cgvhd_onset_min_days


@pytest.mark.parametrize("which", ["no_risk", "shaped"])
def test_gvhd_grade_and_systemic_therapy_are_independent_marks(request, which):
    """Severity of acute GVHD and systemic therapy of chronic GVHD: fixed fractions, independent of each other."""
    scenario, p = request.getfixturevalue(which)
    tp = transplanted(p)
    pt = scenario.post_transplant
    acute = tp[tp["agvhd_day"].notna()]
    check_proportion((acute["agvhd_grade"] == "III-IV").sum(), len(acute), pt.agvhd_3_4_day100 / pt.agvhd_2_4_day100)
    chronic = tp[tp["cgvhd_day"].notna()]
    check_proportion(chronic["cgvhd_systemic"].sum(), len(chronic), pt.p_cgvhd_systemic)
    for grade in ("III-IV", "II", ""):
        sub = chronic[chronic["agvhd_grade"] == grade]
        q = pt.p_cgvhd_systemic
        within(sub["cgvhd_systemic"].mean(), q, math.sqrt(q * (1 - q) / len(sub)))


@pytest.mark.parametrize("ltfu_prob", [None, 0.3])
def test_loss_to_follow_up_within_landmark(base, base_trial, ltfu_prob):
    if ltfu_prob is None:
        scenario, (_, p) = base, base_trial
    else:
        scenario = base.with_updates({**NO_PRE_TRANSPLANT_RISK, "post_transplant.ltfu_prob": ltfu_prob})
        p = patients_table(simulate_trial(scenario, N, seed=SEED + 5))
    tp = transplanted(p)
    pt = scenario.post_transplant
    # Patients not transplanted are lost to follow-up only after leaving the pathway alive (they are followed).
    off = p[p["hsct_day"].isna() & p["ltfu_day"].notna()]
    assert (off["ltfu_day"] >= off["off_pathway_day"]).all() and off["induction_death_day"].isna().all()
    lost = since_hsct(tp, "ltfu_day") <= pt.incidence_landmark_months * DAYS_PER_MONTH
    check_proportion(lost.sum(), len(tp), pt.ltfu_prob)
