"""Numerical validation of sim/scenario/calibrate.py against closed forms and computations written here.

Every expected value is computed in this file from the scenario's inputs or from the calibrated
hazards themselves (closed forms, an independent change-of-variables quadrature, or a numpy Monte
Carlo with tolerance 4 MCSE), never by calling the function under test a second time.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, optimize
from support import NO_WAITING_RISK, UNLINKED_GVHD

from sim.scenario import calibrate as cal
from sim.scenario.schema import DAYS_PER_MONTH, ScenarioError, load_scenario

BASE = Path(__file__).resolve().parent.parent / "scenarios" / "base.toml"

# One subgroup: every transplanted patient has a haploidentical donor and is MRD-negative.
ONE_GROUP = {"donor.p_haplo": 1.0, "donor.p_sibling": 0.0, "donor.p_unrelated": 0.0}
# Unequal shapes and hazard ratios on both causes (subgroups differ in relapse and in NRM risk).
HETERO = {
    "post_transplant.relapse_shape": 0.6, "post_transplant.nrm_shape": 1.8,
    "mrd.positive_action": "transplant", "post_transplant.relapse_hr_mrd_positive": 3.0,
    "post_transplant.nrm_hr_haplo": 1.5,
}
HETERO_FULL = {**HETERO, "post_transplant.nrm_hr_unrelated": 2.0}
N_MC = 400_000


@pytest.fixture(scope="module")
def base():
    """base.toml with GVHD not changing NRM and no risk while waiting: the closed forms checked here are those of
    the unlinked model with independent donor type and MRD status (the rest: test_gvhd_link.py, test_waiting.py)."""
    return load_scenario(BASE).with_updates({**UNLINKED_GVHD, **NO_WAITING_RISK})


@pytest.fixture(scope="module")
def hetero_model(base):
    return cal.calibrate(base.with_updates(HETERO_FULL))


def _without_post_transplant_risk(scenario, updates=None):
    """The scenario (with updates) and no relapse or NRM at all: refused by the schema (a sizing study needs a
    hazard to scale for its null twin) but a closed-form check of the calibration, so built without validation."""
    scenario = scenario.with_updates(updates or {})
    post = scenario.post_transplant.model_copy(update={"relapse_incidence": 0.0, "nrm_incidence": 0.0})
    return scenario.model_copy(update={"post_transplant": post})


def _tau(scenario) -> float:
    return scenario.post_transplant.incidence_landmark_months * DAYS_PER_MONTH


# --------------------------------------------------------------------------- independent computations


def _group_H(model, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative relapse and NRM hazards of every subgroup at t, written from the Weibull definition."""
    ratio = t / model.tau_days
    h_rel = model.relapse_hr * model.relapse_cumhaz * ratio ** model.relapse_shape
    h_nrm = model.nrm_hr * model.nrm_cumhaz * ratio ** model.nrm_shape
    return h_rel, h_nrm


def _independent_cifs(model, t: float) -> tuple[float, float, float]:
    """(relapse CIF, NRM CIF, RFS) at t by the substitution u = H_relapse(s), which makes the integrand smooth.

    CIF_relapse,g(t) = int_0^{a} exp(-u - b (u / a)^(k_n / k_r)) du with a = H_r,g(t), b = H_n,g(t);
    CIF_nrm = 1 - RFS - CIF_relapse; RFS = sum_g w_g exp(-a - b).
    """
    a_all, b_all = _group_H(model, t)
    power = model.nrm_shape / model.relapse_shape
    cif_r = rfs = 0.0
    for g, w in enumerate(model.weights):
        if w == 0:
            continue
        a, b = float(a_all[g]), float(b_all[g])
        rfs += w * math.exp(-a - b)
        if a > 0:
            value, _ = integrate.quad(lambda u, a=a, b=b: math.exp(-u - b * (u / a) ** power), 0.0, a,
                                      epsabs=1e-14, epsrel=1e-13, limit=200)
            cif_r += w * value
    return cif_r, 1.0 - rfs - cif_r, rfs


def _monte_carlo(model, t: float, seed: int = 20240607, n: int = N_MC) -> dict[str, float]:
    """Post-HSCT endpoints at t from latent times drawn here with numpy's Weibull and exponential samplers."""
    rng = np.random.default_rng(seed)
    group = rng.choice(len(model.weights), size=n, p=model.weights / model.weights.sum())

    def weibull(cumhaz_at_tau: np.ndarray, shape: float) -> np.ndarray:
        # H(t) = c (t / tau)^k  <=>  T = tau * c^(-1/k) * W with P(W > w) = exp(-w^k).
        with np.errstate(divide="ignore"):
            scale = np.where(cumhaz_at_tau > 0, model.tau_days * cumhaz_at_tau ** (-1.0 / shape), np.inf)
        return scale * rng.weibull(shape, size=n)

    t_rel = weibull(model.relapse_hr[group] * model.relapse_cumhaz, model.relapse_shape)
    t_nrm = weibull(model.nrm_hr[group] * model.nrm_cumhaz, model.nrm_shape)
    first = np.minimum(t_rel, t_nrm)
    death = np.where(t_rel <= t_nrm, t_rel + rng.exponential(1.0 / model.post_relapse_death_rate, n), t_nrm)
    t_agvhd = rng.exponential(1.0 / model.agvhd_rate, n)
    agvhd = (t_agvhd <= cal.AGVHD_WINDOW_DAYS) & (t_agvhd < first)
    severe = rng.random(n) < model.agvhd_severe_fraction
    t_cgvhd = model.cgvhd_onset_days + rng.exponential(1.0 / model.cgvhd_rate, n)
    cgvhd = t_cgvhd < first
    systemic = rng.random(n) < model.p_cgvhd_systemic
    gvhd_event = np.minimum(np.where(agvhd & severe, t_agvhd, np.inf), np.where(cgvhd & systemic, t_cgvhd, np.inf))
    return {
        "rfs": float(np.mean(first > t)),
        "os": float(np.mean(death > t)),
        "grfs": float(np.mean(np.minimum(first, gvhd_event) > t)),
        "relapse_cif": float(np.mean((t_rel <= t) & (t_rel <= t_nrm))),
        "nrm_cif": float(np.mean((t_nrm <= t) & (t_nrm < t_rel))),
        "agvhd_2_4_day100": float(np.mean(agvhd)),
        "agvhd_3_4_day100": float(np.mean(agvhd & severe)),
        "cgvhd_cif": float(np.mean(cgvhd & (t_cgvhd <= t))),
    }


def _mcse(p: float, n: int = N_MC) -> float:
    return math.sqrt(max(p * (1.0 - p), 1e-12) / n)


# --------------------------------------------------------------------------- one subgroup, equal shapes


GRID = [(0.17, 0.10), (0.0, 0.10), (0.17, 0.0), (0.0, 0.0), (0.5, 0.48), (0.9, 0.08), (0.01, 0.97), (0.3, 0.3)]


@pytest.mark.parametrize("shape", [1.0, 1.7])
@pytest.mark.parametrize(("r", "m"), GRID)
def test_one_group_equal_shapes_closed_form(base, r, m, shape):
    updates = {**ONE_GROUP, "post_transplant.relapse_shape": shape, "post_transplant.nrm_shape": shape}
    if r + m == 0:
        scenario = _without_post_transplant_risk(base, updates)
    else:
        scenario = base.with_updates({**updates, "post_transplant.relapse_incidence": r,
                                      "post_transplant.nrm_incidence": m})
    model = cal.calibrate(scenario)
    tau = _tau(scenario)
    assert model.tau_days == pytest.approx(tau, abs=1e-12)
    np.testing.assert_allclose(model.weights, [1, 0, 0, 0, 0, 0])
    a_total = -math.log(1.0 - r - m)
    a_rel = a_total * r / (r + m) if r + m > 0 else 0.0
    a_nrm = a_total * m / (r + m) if r + m > 0 else 0.0
    assert model.relapse_cumhaz == pytest.approx(a_rel, abs=1e-9, rel=1e-9)
    assert model.nrm_cumhaz == pytest.approx(a_nrm, abs=1e-9, rel=1e-9)
    assert cal.relapse_incidence(model, tau) == pytest.approx(r, abs=1e-9)
    assert cal.nrm_incidence(model, tau) == pytest.approx(m, abs=1e-9)
    assert cal.rfs(model, tau) == pytest.approx(1.0 - r - m, abs=1e-9)
    # Away from the landmark the closed form CIF_a(t) = a/(a+b) (1 - exp(-(a+b))) with a, b at t.
    for months in (3.0, 12.0, 30.0):
        t = months * DAYS_PER_MONTH
        a, b = a_rel * (t / tau) ** shape, a_nrm * (t / tau) ** shape
        expected_r = a / (a + b) * -math.expm1(-(a + b)) if a + b > 0 else 0.0
        expected_m = b / (a + b) * -math.expm1(-(a + b)) if a + b > 0 else 0.0
        assert cal.relapse_incidence(model, t) == pytest.approx(expected_r, abs=1e-9)
        assert cal.nrm_incidence(model, t) == pytest.approx(expected_m, abs=1e-9)
        assert cal.rfs(model, t) == pytest.approx(math.exp(-a - b), abs=1e-9)


# --------------------------------------------------------------------------- unequal shapes, hazard ratios


@pytest.mark.parametrize(("r", "m"), [(0.17, 0.10), (0.3, 0.3), (0.9, 0.08), (0.01, 0.97), (0.45, 0.5)])
@pytest.mark.parametrize("updates", [HETERO, HETERO_FULL], ids=["hetero", "hetero_full"])
def test_unequal_shapes_and_hazard_ratios_hit_targets(base, updates, r, m):
    scenario = base.with_updates({**updates, "post_transplant.relapse_incidence": r,
                                  "post_transplant.nrm_incidence": m})
    model = cal.calibrate(scenario)
    tau = _tau(scenario)
    # Subgroup structure from the inputs: donor mix x MRD status (MRD-positive share from the assay).
    mfc = scenario.mrd.mfc
    mrd_neg = mfc.p_negative_after_induction * (1 - mfc.p_lose_negativity) \
        + (1 - mfc.p_negative_after_induction) * mfc.p_convert_to_negative
    d = scenario.donor
    expected_w = np.outer([d.p_haplo, d.p_sibling, d.p_unrelated], [mrd_neg, 1 - mrd_neg]).ravel()
    np.testing.assert_allclose(model.weights, expected_w, atol=1e-15)
    pt = scenario.post_transplant
    np.testing.assert_allclose(model.relapse_hr, [1, pt.relapse_hr_mrd_positive] * 3)
    np.testing.assert_allclose(model.nrm_hr, np.repeat([pt.nrm_hr_haplo, 1.0, pt.nrm_hr_unrelated], 2))
    assert cal.relapse_incidence(model, tau) == pytest.approx(r, abs=1e-8)
    assert cal.nrm_incidence(model, tau) == pytest.approx(m, abs=1e-8)
    cif_r, cif_n, rfs = _independent_cifs(model, tau)
    assert cif_r == pytest.approx(r, abs=1e-8)
    assert cif_n == pytest.approx(m, abs=1e-8)
    assert cal.rfs(model, tau) == pytest.approx(rfs, abs=1e-12)


@pytest.mark.parametrize("months", [1.0, 6.0, 12.0, 24.0, 60.0])
def test_cif_curve_matches_independent_quadrature(hetero_model, months):
    t = months * DAYS_PER_MONTH
    cif_r, cif_n, rfs = _independent_cifs(hetero_model, t)
    assert cal.relapse_incidence(hetero_model, t) == pytest.approx(cif_r, abs=1e-8)
    assert cal.nrm_incidence(hetero_model, t) == pytest.approx(cif_n, abs=1e-8)
    assert cal.rfs(hetero_model, t) == pytest.approx(rfs, abs=1e-12)


@pytest.mark.parametrize("updates", [
    {"post_transplant.relapse_incidence": 0.0, "post_transplant.nrm_incidence": 0.1,
     "post_transplant.nrm_hr_haplo": 1.5},
    {"post_transplant.relapse_incidence": 0.17, "post_transplant.nrm_incidence": 0.0,
     "mrd.positive_action": "transplant", "post_transplant.relapse_hr_mrd_positive": 2.0},
], ids=["relapse0_nrm_hr_haplo1.5", "nrm0_mrd_positive_hr2"])
def test_zero_incidence_with_hazard_ratios_calibrates(base, updates):
    scenario = base.with_updates(updates)
    tau = _tau(scenario)
    model = cal.calibrate(scenario)
    r, m = scenario.post_transplant.relapse_incidence, scenario.post_transplant.nrm_incidence
    cif_r, cif_n, _ = _independent_cifs(model, tau)
    assert cif_r == pytest.approx(r, abs=1e-8)
    assert cif_n == pytest.approx(m, abs=1e-8)


def test_target_near_one_with_unequal_shapes_is_achievable(base):
    """Relapse 0.08 + NRM 0.90 with HETERO_FULL: an independent nested root search finds the hazards."""
    model = cal.calibrate(base.with_updates(HETERO_FULL))
    a_rel, a_nrm = _independent_solve(model, 0.08, 0.90)
    cif_r, cif_n, _ = _independent_cifs(replace(model, relapse_cumhaz=a_rel, nrm_cumhaz=a_nrm), model.tau_days)
    assert (cif_r, cif_n) == pytest.approx((0.08, 0.90), abs=1e-10)


def test_calibrate_finds_achievable_target_near_one(base):
    scenario = base.with_updates({**HETERO_FULL, "post_transplant.relapse_incidence": 0.08,
                                  "post_transplant.nrm_incidence": 0.90})
    model = cal.calibrate(scenario)
    cif_r, cif_n, _ = _independent_cifs(model, model.tau_days)
    assert (cif_r, cif_n) == pytest.approx((0.08, 0.90), abs=1e-8)


def _independent_solve(model, r: float, m: float) -> tuple[float, float]:
    """A_relapse, A_nrm with the independent CIFs at tau equal to (r, m): nested one-dimensional root finding."""
    tau = model.tau_days

    def a_rel_for(a_nrm: float) -> float:
        return optimize.brentq(lambda a: _independent_cifs(replace(model, relapse_cumhaz=a, nrm_cumhaz=a_nrm),
                                                           tau)[0] - r, 0.0, 50.0, xtol=1e-15)

    a_nrm = optimize.brentq(lambda b: _independent_cifs(replace(model, relapse_cumhaz=a_rel_for(b), nrm_cumhaz=b),
                                                        tau)[1] - m, 1e-6, 100.0, xtol=1e-14)
    return a_rel_for(a_nrm), a_nrm


# --------------------------------------------------------------------------- endpoints vs Monte Carlo


@pytest.mark.parametrize("months", [6.0, 18.0, 30.0])
@pytest.mark.parametrize("updates", [{}, HETERO_FULL], ids=["base", "hetero_full"])
def test_endpoints_match_independent_monte_carlo(base, updates, months):
    scenario = base.with_updates(updates)
    model = cal.calibrate(scenario)
    t = months * DAYS_PER_MONTH
    mc = _monte_carlo(model, t)
    truth = cal.true_endpoints(model, t)
    assert set(truth) == set(mc)
    for key, value in truth.items():
        assert abs(mc[key] - value) <= 4 * _mcse(value), (key, mc[key], value)


def test_calibrated_gvhd_reproduces_scenario_inputs(base):
    for updates in ({}, HETERO_FULL):
        scenario = base.with_updates(updates)
        pt = scenario.post_transplant
        model = cal.calibrate(scenario)
        assert cal.agvhd_incidence(model) == pytest.approx(pt.agvhd_2_4_day100, abs=1e-9)
        assert cal.agvhd_incidence(model, severe=True) == pytest.approx(pt.agvhd_3_4_day100, abs=1e-9)
        assert cal.cgvhd_incidence(model, _tau(scenario)) == pytest.approx(pt.cgvhd_incidence, abs=1e-9)
        assert model.agvhd_severe_fraction == pytest.approx(pt.agvhd_3_4_day100 / pt.agvhd_2_4_day100)
        assert model.post_relapse_death_rate == pytest.approx(
            math.log(2) / (pt.post_relapse_median_months * DAYS_PER_MONTH), rel=1e-12)
        assert -math.expm1(-model.ltfu_rate * _tau(scenario)) == pytest.approx(pt.ltfu_prob, abs=1e-12)
        assert model.horizon_days == pytest.approx(pt.horizon_months * DAYS_PER_MONTH)


def test_rfs_closed_form(hetero_model):
    for months in (3.0, 18.0, 40.0):
        t = months * DAYS_PER_MONTH
        h_rel, h_nrm = _group_H(hetero_model, t)
        expected = float(np.sum(hetero_model.weights * np.exp(-h_rel - h_nrm)))
        assert cal.rfs(hetero_model, t) == pytest.approx(expected, abs=1e-13)


def test_no_relapse_os_equals_rfs(base):
    scenario = base.with_updates({"post_transplant.relapse_incidence": 0.0, "post_transplant.nrm_incidence": 0.2,
                                  "post_transplant.nrm_shape": 1.4})
    model = cal.calibrate(scenario)
    for months in (6.0, 18.0, 36.0):
        t = months * DAYS_PER_MONTH
        assert cal.os(model, t) == pytest.approx(cal.rfs(model, t), abs=1e-12)
        # one group, no relapse: RFS = exp(-A_nrm (t / tau)^k) with A_nrm = -log(1 - 0.2)
        assert cal.rfs(model, t) == pytest.approx(0.8 ** ((t / model.tau_days) ** 1.4), abs=1e-9)


@pytest.mark.parametrize("updates", [{}, HETERO_FULL], ids=["base", "hetero_full"])
def test_os_limits_of_post_relapse_survival(base, updates):
    tau = _tau(base)
    # The schema bounds the median to (0, 600] months; the limits are set on the calibrated model directly.
    model = cal.calibrate(base.with_updates(updates))
    fast = dataclasses.replace(model, post_relapse_death_rate=1e9)
    slow = dataclasses.replace(model, post_relapse_death_rate=0.0)
    # death immediately after relapse: OS = RFS; no death after relapse: OS = RFS + CIF_relapse = 1 - CIF_nrm
    assert cal.os(fast, tau) == pytest.approx(cal.rfs(fast, tau), abs=1e-6)
    cif_r, cif_n, rfs = _independent_cifs(slow, tau)
    assert cal.os(slow, tau) == pytest.approx(1.0 - cif_n, abs=1e-6)
    assert cal.os(slow, tau) == pytest.approx(rfs + cif_r, abs=1e-6)


def test_exponential_post_relapse_os_closed_form(base):
    """One group, constant hazards: OS(t) = e^{-(a+b)t} + a (e^{-mu t} - e^{-(a+b) t}) / (a + b - mu)."""
    scenario = base.with_updates(ONE_GROUP)
    model = cal.calibrate(scenario)
    a = model.relapse_cumhaz / model.tau_days
    b = model.nrm_cumhaz / model.tau_days
    mu = model.post_relapse_death_rate
    for months in (6.0, 18.0, 48.0):
        t = months * DAYS_PER_MONTH
        expected = math.exp(-(a + b) * t) + a * (math.exp(-mu * t) - math.exp(-(a + b) * t)) / (a + b - mu)
        assert cal.os(model, t) == pytest.approx(expected, abs=1e-9)


def test_gvhd_closed_forms_without_competing_risks(base):
    scenario = _without_post_transplant_risk(base)
    pt = scenario.post_transplant
    model = cal.calibrate(scenario)
    tau = _tau(scenario)
    assert model.agvhd_rate == pytest.approx(-math.log1p(-pt.agvhd_2_4_day100) / 100.0, rel=1e-9)
    assert model.cgvhd_rate == pytest.approx(-math.log1p(-pt.cgvhd_incidence) / (tau - pt.cgvhd_onset_min_days),
                                             rel=1e-9)
    expected_grfs = (1 - pt.agvhd_3_4_day100) * (1 - pt.p_cgvhd_systemic * pt.cgvhd_incidence)
    assert cal.grfs(model, tau) == pytest.approx(expected_grfs, abs=1e-9)
    assert cal.os(model, tau) == pytest.approx(1.0, abs=1e-15)
    # chronic GVHD before its earliest onset is impossible
    assert cal.cgvhd_incidence(model, pt.cgvhd_onset_min_days) == 0.0


# --------------------------------------------------------------------------- null twin


@pytest.mark.parametrize("updates", [{}, HETERO_FULL], ids=["base", "hetero_full"])
@pytest.mark.parametrize("months", [18.0, 12.0, 24.0])
def test_null_twin(base, updates, months):
    scenario = base.with_updates(updates)
    model = cal.calibrate(scenario)
    landmark = months * DAYS_PER_MONTH
    p0 = scenario.analysis.p0
    twin = cal.null_twin(model, p0, landmark)
    h_rel, h_nrm = _group_H(twin, landmark)
    assert float(np.sum(twin.weights * np.exp(-h_rel - h_nrm))) == pytest.approx(p0, abs=1e-10)
    assert cal.rfs(twin, landmark) == pytest.approx(p0, abs=1e-10)
    assert twin.relapse_cumhaz / twin.nrm_cumhaz == pytest.approx(model.relapse_cumhaz / model.nrm_cumhaz, rel=1e-12)
    assert twin.relapse_cumhaz > model.relapse_cumhaz  # p0 < the scenario's RFS: more hazard
    for field in ("agvhd_rate", "agvhd_severe_fraction", "cgvhd_rate", "cgvhd_onset_days", "p_cgvhd_systemic",
                  "post_relapse_death_rate", "ltfu_rate", "relapse_shape", "nrm_shape", "tau_days", "horizon_days"):
        assert getattr(twin, field) == getattr(model, field), field
    for field in ("weights", "relapse_hr", "nrm_hr"):
        np.testing.assert_array_equal(getattr(twin, field), getattr(model, field))


def test_null_twin_without_hazard_raises(base):
    model = cal.calibrate(_without_post_transplant_risk(base))
    with pytest.raises(ScenarioError, match="null twin"):
        cal.null_twin(model, 0.55, model.tau_days)


# --------------------------------------------------------------------------- unachievable GVHD


def test_unachievable_chronic_gvhd_raises(base):
    scenario = base.with_updates({"post_transplant.cgvhd_incidence": 0.99, "post_transplant.nrm_incidence": 0.5,
                                  "post_transplant.relapse_incidence": 0.45})
    with pytest.raises(ScenarioError, match=r"post_transplant\.cgvhd_incidence = 0\.99"):
        cal.calibrate(scenario)


@pytest.mark.parametrize("key", ["agvhd", "cgvhd"])
def test_gvhd_target_just_below_maximum_calibrates(base, key):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if key == "agvhd":
            model = cal.calibrate(base.with_updates({"post_transplant.agvhd_2_4_day100": 0.999999}))
            assert cal.agvhd_incidence(model) == pytest.approx(0.999999, abs=1e-9)
        else:
            ref = cal.calibrate(base)
            top = float(np.sum(ref.weights * np.exp(-np.add(*_group_H(ref, ref.cgvhd_onset_days)))))
            target = top - 1e-7
            model = cal.calibrate(base.with_updates({"post_transplant.cgvhd_incidence": target}))
            assert cal.cgvhd_incidence(model, model.tau_days) == pytest.approx(target, abs=1e-9)


# --------------------------------------------------------------------------- MRD before HSCT


@pytest.mark.parametrize(("assay", "p1", "lose", "convert"), [
    ("MFC", 0.88, 0.03, 0.50), ("MFC", 0.0, 0.2, 0.3), ("MFC", 1.0, 0.1, 0.9), ("NGS", 0.65, 0.05, 0.40),
    ("NGS", 0.3, 0.0, 1.0),
])
def test_mrd_negative_before_hsct(base, assay, p1, lose, convert):
    key = assay.lower()
    scenario = base.with_updates({"mrd.assay": assay, f"mrd.{key}.p_negative_after_induction": p1,
                                  f"mrd.{key}.p_lose_negativity": lose, f"mrd.{key}.p_convert_to_negative": convert,
                                  "mrd.positive_action": "transplant"})
    expected = p1 * (1 - lose) + (1 - p1) * convert
    assert cal.mrd_negative_before_hsct(scenario) == pytest.approx(expected, abs=1e-15)
    weights = cal.group_weights(scenario).reshape(3, 2)
    np.testing.assert_allclose(weights.sum(axis=0), [expected, 1 - expected], atol=1e-15)
