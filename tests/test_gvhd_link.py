"""GVHD that kills: grade III-IV acute and systemic chronic GVHD multiply the NRM hazard from their onset.

Checks, each against something computed independently: the forward equations against the closed
forms without the link and against closed forms written here with it; the piecewise NRM inversion
against direct integration of the hazard; simulated uncensored histories against the user's targets
(Aalen-Johansen, lifelines) and against every calibrated truth; the NRM hazard ratio after GVHD onset
against a time-varying Cox model (lifelines CoxTimeVaryingFitter). Tolerance 4 Monte Carlo SE.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines import AalenJohansenFitter, CoxTimeVaryingFitter
from support import NO_PRE_TRANSPLANT_RISK

from sim.analysis.datasets import patients_table
from sim.model.pathway import simulate_trial
from sim.model.post_transplant import _linked_nrm_time, _weibull_time, post_transplant_history
from sim.scenario import calibrate as cal
from sim.scenario.gvhd_link import linked_curves
from sim.scenario.schema import DAYS_PER_MONTH, load_scenario

BASE = Path(__file__).resolve().parent.parent / "scenarios" / "base.toml"
N = 20_000
LINK = {"post_transplant.nrm_hr_agvhd_3_4": 3.0, "post_transplant.nrm_hr_cgvhd_systemic": 2.0}
UNCENSORED = {**NO_PRE_TRANSPLANT_RISK, "post_transplant.ltfu_prob": 0.0, "post_transplant.agvhd_3_4_day100": 0.15,
              "post_transplant.nrm_incidence": 0.15}


def within(observed: float, expected: float, mcse: float, k: float = 4.0) -> None:
    assert mcse > 0
    z = (observed - expected) / mcse
    assert abs(z) <= k, f"observed {observed:.5f}, expected {expected:.5f}, MCSE {mcse:.5f}, z = {z:.2f}"


@pytest.fixture(scope="module")
def base():
    return load_scenario(BASE).with_updates({"post_transplant.nrm_hr_agvhd_3_4": 1.0,
                                             "post_transplant.nrm_hr_cgvhd_systemic": 1.0})


@pytest.fixture(scope="module")
def linked(base):
    """Every patient transplanted, no censoring, GVHD raising NRM (acute III-IV x3, systemic chronic x2)."""
    scenario = base.with_updates({**UNCENSORED, **LINK, "post_transplant.nrm_shape": 0.8})
    model = cal.calibrate(scenario)
    return scenario, model, patients_table(simulate_trial(scenario, N, seed=41, post_model=model))


def since_hsct(p: pd.DataFrame, column: str) -> np.ndarray:
    return (p[column] - p["hsct_day"]).to_numpy(dtype=float)


# --------------------------------------------------------------------------- numerics


@pytest.mark.parametrize("updates", [
    {}, {"post_transplant.relapse_shape": 0.7, "post_transplant.nrm_shape": 1.5, "mrd.positive_action": "transplant",
         "post_transplant.nrm_hr_haplo": 1.7},
    {"post_transplant.relapse_shape": 0.3, "post_transplant.nrm_shape": 2.5, "post_transplant.cgvhd_onset_min_days": 0},
])
@pytest.mark.parametrize("times", [[547.875], [30.0, 547.875], [0.0, 95.0, 100.0, 300.0, 1000.0]])
def test_forward_equations_equal_the_closed_forms_without_the_link(base, updates, times):
    model = cal.calibrate(base.with_updates(updates))
    curves = linked_curves(model, np.array(times))
    expected = {"rfs": cal.rfs, "os": cal.os, "grfs": cal.grfs, "relapse": cal.relapse_incidence,
                "nrm": cal.nrm_incidence, "cgvhd": cal.cgvhd_incidence}
    for key, truth in expected.items():
        np.testing.assert_allclose(curves[key], [truth(model, t) for t in times], atol=1e-9, err_msg=key)
    day100 = linked_curves(model, 100.0)
    assert day100["agvhd"][0] == pytest.approx(cal.agvhd_incidence(model), abs=1e-9)
    assert day100["agvhd34"][0] == pytest.approx(cal.agvhd_incidence(model, severe=True), abs=1e-9)


def _one_group(base, **fields) -> cal.PostTransplantModel:
    model = cal.calibrate(base)
    weights = np.zeros(6)
    weights[2] = 1.0
    return replace(model, weights=weights, relapse_cumhaz=0.0, nrm_shape=1.0, **fields)


@pytest.mark.parametrize("t", [30.0, 100.0, 400.0])
def test_forward_equations_with_acute_link_equal_a_closed_form(base, t):
    """No relapse, constant NRM hazard b, severe acute GVHD onset density f a e^(-a x) on [0, 100], HR after it:
    S(t) = e^(-bt) [1 - f (1 - e^(-a m)) + f a e^(-(HR-1) b t) (1 - e^(-k m)) / k],
    m = min(t, 100), k = a - (HR-1) b."""
    b, a, f, hr = 0.0004, 0.004, 0.4, 3.0
    model = _one_group(base, nrm_cumhaz=b * base.post_transplant.incidence_landmark_months * DAYS_PER_MONTH,
                       agvhd_rate=a, agvhd_severe_fraction=f, cgvhd_rate=0.0, nrm_hr_agvhd34=hr, nrm_hr_cgvhd=1.0)
    m, k = min(t, 100.0), a - (hr - 1.0) * b
    expected = math.exp(-b * t) * (1 - f * (1 - math.exp(-a * m)) + f * a * math.exp(-(hr - 1) * b * t)
                                   * (1 - math.exp(-k * m)) / k)
    assert linked_curves(model, t)["rfs"][0] == pytest.approx(expected, abs=1e-10)
    assert linked_curves(model, t)["nrm"][0] == pytest.approx(1 - expected, abs=1e-10)


@pytest.mark.parametrize("t", [60.0, 200.0, 700.0])
def test_forward_equations_with_chronic_link_equal_a_closed_form(base, t):
    """Systemic chronic GVHD from d0 with density p c e^(-c (y - d0)), HR after it; no acute GVHD, no relapse."""
    b, c, p, hr, d0 = 0.0003, 0.002, 0.6, 2.0, 90.0
    model = _one_group(base, nrm_cumhaz=b * base.post_transplant.incidence_landmark_months * DAYS_PER_MONTH,
                       agvhd_rate=0.0, cgvhd_rate=c, cgvhd_onset_days=d0, p_cgvhd_systemic=p, nrm_hr_agvhd34=1.0,
                       nrm_hr_cgvhd=hr)
    m = max(t - d0, 0.0)
    k = c - (hr - 1.0) * b
    expected = math.exp(-b * t) * (1 - p * (1 - math.exp(-c * m)) + p * c * math.exp(-(hr - 1) * b * (t - d0))
                                   * (1 - math.exp(-k * m)) / k)
    assert linked_curves(model, t)["rfs"][0] == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("updates", [LINK, {**LINK, "post_transplant.relapse_shape": 0.6,
                                            "post_transplant.nrm_shape": 1.4, "mrd.positive_action": "transplant",
                                            "post_transplant.nrm_hr_unrelated": 2.0}])
def test_calibration_with_the_link_keeps_every_target(base, updates):
    scenario = base.with_updates(updates)
    model = cal.calibrate(scenario)
    pt = scenario.post_transplant
    assert model.gvhd_linked
    np.testing.assert_allclose(cal._linked_targets(model), [pt.relapse_incidence, pt.nrm_incidence,
                                                            pt.agvhd_2_4_day100, pt.cgvhd_incidence], atol=1e-9)
    unlinked = cal.calibrate(scenario.with_updates({"post_transplant.nrm_hr_agvhd_3_4": 1.0,
                                                    "post_transplant.nrm_hr_cgvhd_systemic": 1.0}))
    assert model.nrm_cumhaz < unlinked.nrm_cumhaz, "GVHD carries part of the NRM, so the baseline hazard is lower"
    tau = model.tau_days
    assert cal.rfs(model, tau) == pytest.approx(1 - pt.relapse_incidence - pt.nrm_incidence, abs=1e-9)


def test_null_twin_with_the_link_has_rfs_p0(base):
    scenario = base.with_updates(LINK)
    model = cal.calibrate(scenario)
    landmark = scenario.analysis.landmark_months * DAYS_PER_MONTH
    twin = cal.null_twin(model, scenario.analysis.p0, landmark)
    assert cal.rfs(twin, landmark) == pytest.approx(scenario.analysis.p0, abs=1e-10)


def test_linked_nrm_inversion_solves_the_cumulative_hazard():
    """H(t) = integral of h0 * HR_a^[s > x] * HR_c^[s > y] equals the unit exponential at the returned time."""
    rng = np.random.default_rng(5)
    n, tau, shape, hra, hrc = 2000, 547.875, 0.8, 3.0, 2.0
    model = type("M", (), {"tau_days": tau, "nrm_shape": shape, "nrm_hr_agvhd34": hra, "nrm_hr_cgvhd": hrc})
    e = rng.exponential(size=n)
    scale = np.full(n, 0.2)
    x = np.where(rng.random(n) < 0.5, rng.uniform(0, 100, n), np.inf)
    y = np.where(rng.random(n) < 0.5, rng.uniform(90, 900, n), np.inf)
    t = _linked_nrm_time(e, scale, model, x, y)

    def h0(s):
        return scale * (np.minimum(s, 1e12) / tau) ** shape

    cum = h0(t) + (hra - 1) * np.clip(h0(t) - h0(x), 0, None) + (hrc - 1) * np.clip(h0(t) - h0(y), 0, None) + \
        (hra - 1) * (hrc - 1) * np.clip(h0(t) - h0(np.maximum(x, y)), 0, None)
    np.testing.assert_allclose(cum, e, rtol=1e-10)
    # Without onsets, or with hazard ratios 1, it is the Weibull inversion.
    np.testing.assert_allclose(_linked_nrm_time(e, scale, model, np.full(n, np.inf), np.full(n, np.inf)),
                               _weibull_time(e, scale, shape, tau), rtol=1e-12)


def test_null_twin_shares_random_numbers_with_the_link(linked):
    """Scaling both hazards up (null twin) brings every NRM and relapse time forward: common random numbers."""
    scenario, model, _ = linked
    history = simulate_trial(scenario, 2000, seed=42, post_model=model)
    twin = cal.null_twin(model, 0.4, scenario.analysis.landmark_months * DAYS_PER_MONTH)
    group = np.zeros(2000, dtype=int) + 2
    design = post_transplant_history(history.days["hsct_day"], group, history.draws.post_uniforms, model)
    null = post_transplant_history(history.days["hsct_day"], group, history.draws.post_uniforms, twin)
    for key in ("relapse_day", "nrm_day"):
        both = ~np.isnan(design[key]) & ~np.isnan(null[key])
        assert np.all(null[key][both] <= design[key][both] + 1e-9), key


# --------------------------------------------------------------------------- simulation


def test_uncensored_incidences_match_the_targets_with_hazard_ratio_3(linked):
    scenario, _, p = linked
    pt = scenario.post_transplant
    tau = pt.incidence_landmark_months * DAYS_PER_MONTH
    rel, nrm = since_hsct(p, "relapse_day"), since_hsct(p, "nrm_day")
    event = np.where(~np.isnan(rel), 1, np.where(~np.isnan(nrm), 2, 0))
    time = np.where(event == 1, rel, np.where(event == 2, nrm, pt.horizon_months * DAYS_PER_MONTH))
    for cause, target in ((1, pt.relapse_incidence), (2, pt.nrm_incidence)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            aj = AalenJohansenFitter(calculate_variance=False, seed=0).fit(time, event, event_of_interest=cause)
        cif = aj.cumulative_density_
        within(float(cif[cif.index <= tau].iloc[-1, 0]), target, math.sqrt(target * (1 - target) / N))


def test_every_truth_matches_uncensored_histories_with_the_link(linked):
    scenario, model, p = linked
    landmark = scenario.analysis.landmark_months * DAYS_PER_MONTH
    truth = cal.true_endpoints(model, landmark)
    rel, nrm, death = since_hsct(p, "relapse_day"), since_hsct(p, "nrm_day"), since_hsct(p, "death_day")
    agvhd, cgvhd = since_hsct(p, "agvhd_day"), since_hsct(p, "cgvhd_day")
    severe = (p["agvhd_grade"] == "III-IV").to_numpy()
    systemic = p["cgvhd_systemic"].fillna(False).to_numpy(dtype=bool)
    first = np.fmin(np.nan_to_num(rel, nan=np.inf), np.nan_to_num(nrm, nan=np.inf))
    gvhd_event = np.fmin(np.where(severe, agvhd, np.inf), np.where(systemic, cgvhd, np.inf))
    observed = {
        "rfs": np.mean(first > landmark), "os": np.mean(~(death <= landmark)),
        "grfs": np.mean(np.fmin(first, np.nan_to_num(gvhd_event, nan=np.inf)) > landmark),
        "relapse_cif": np.mean(rel <= landmark), "nrm_cif": np.mean(nrm <= landmark),
        "agvhd_2_4_day100": np.mean(agvhd <= 100.0), "agvhd_3_4_day100": np.mean((agvhd <= 100.0) & severe),
        "cgvhd_cif": np.mean(cgvhd <= landmark),
    }
    for key, expected in truth.items():
        within(observed[key], expected, math.sqrt(expected * (1 - expected) / N))
    # Ignoring the link would move GRFS here by more than 5 Monte Carlo SE: the check has power.
    unlinked = cal.true_endpoints(cal.calibrate(scenario.with_updates({"post_transplant.nrm_hr_agvhd_3_4": 1.0,
                                                                       "post_transplant.nrm_hr_cgvhd_systemic": 1.0})),
                                  landmark)
    assert abs(unlinked["grfs"] - truth["grfs"]) > 5 * math.sqrt(truth["grfs"] * (1 - truth["grfs"]) / N)


def test_nrm_hazard_after_gvhd_onset_is_raised_by_the_configured_ratios(linked):
    """Cause-specific Cox model for NRM with grade III-IV acute and systemic chronic GVHD as time-varying
    covariates (relapse censors): each estimated hazard ratio within 4 SE of the configured one.
    The first 5,000 patients (lifelines' fitter is slow): SE of each log hazard ratio about 0.05."""
    scenario, _, p = linked
    p = p.iloc[:5000]
    horizon = scenario.post_transplant.horizon_months * DAYS_PER_MONTH
    rel, nrm = since_hsct(p, "relapse_day"), since_hsct(p, "nrm_day")
    end = np.fmin(np.fmin(np.nan_to_num(rel, nan=np.inf), np.nan_to_num(nrm, nan=np.inf)), horizon)
    died = ~np.isnan(nrm)
    acute = np.where((p["agvhd_grade"] == "III-IV").to_numpy(), since_hsct(p, "agvhd_day"), np.inf)
    chronic = np.where(p["cgvhd_systemic"].fillna(False).to_numpy(dtype=bool), since_hsct(p, "cgvhd_day"), np.inf)
    rows = []
    for i in range(len(p)):
        cuts = sorted({0.0, end[i], *(c for c in (acute[i], chronic[i]) if c < end[i])})
        for start, stop in zip(cuts[:-1], cuts[1:], strict=True):
            rows.append((i, start, stop, float(acute[i] <= start), float(chronic[i] <= start),
                         bool(died[i] and stop == end[i])))
    long = pd.DataFrame(rows, columns=["id", "start", "stop", "agvhd34", "cgvhd_systemic", "nrm"])
    assert long["nrm"].sum() == died.sum()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cox = CoxTimeVaryingFitter().fit(long, id_col="id", event_col="nrm", start_col="start", stop_col="stop")
    pt = scenario.post_transplant
    for covariate, hr in (("agvhd34", pt.nrm_hr_agvhd_3_4), ("cgvhd_systemic", pt.nrm_hr_cgvhd_systemic)):
        within(cox.params_[covariate], math.log(hr), cox.standard_errors_[covariate])
        assert cox.params_[covariate] - 4 * cox.standard_errors_[covariate] > 0, "power to see the link"
