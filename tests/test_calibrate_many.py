"""The batched calibration of an assurance study's draws against calibrate(), scenario by scenario: hazards,
GVHD rates and the true RFS, with and without the GVHD-NRM link, several subgroups, Weibull shapes, risk
while waiting; the subgroup weights against waiting.py's adaptive quadrature."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import NO_WAITING_RISK, UNLINKED_GVHD

from sim.scenario.calibrate import calibrate, group_weights, rfs
from sim.scenario.calibrate_many import calibrate_many, group_weights_many
from sim.scenario.schema import DAYS_PER_MONTH, ScenarioError, load_scenario

BASE = Path(__file__).resolve().parents[1] / "scenarios" / "base.toml"
UNKNOWNS = ("relapse_cumhaz", "nrm_cumhaz", "agvhd_rate", "cgvhd_rate")


def _draws(base, count: int, seed: int, linked: bool) -> list:
    """Scenarios around `base` with the four calibration targets, the link and waiting risk drawn at random."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        out.append(base.with_updates({
            "post_transplant.relapse_incidence": float(rng.uniform(0.05, 0.35)),
            "post_transplant.nrm_incidence": float(rng.uniform(0.03, 0.25)),
            "post_transplant.agvhd_2_4_day100": float(rng.uniform(0.12, 0.45)),
            "post_transplant.cgvhd_incidence": float(rng.uniform(0.1, 0.4)),
            "post_transplant.nrm_hr_agvhd_3_4": float(rng.uniform(1.5, 5.0)) if linked else 1.0,
            "waiting.relapse_per_month_mrd_negative": float(rng.uniform(0.0, 0.03)) if linked else 0.0,
        }))
    return out


CASES = {
    "linked, one subgroup": {},
    "linked, donor hazard ratios and MRD-positive transplanted, Weibull shapes": {
        "post_transplant.nrm_hr_haplo": 1.4, "post_transplant.nrm_hr_unrelated": 1.8,
        "mrd.positive_action": "transplant", "post_transplant.relapse_hr_mrd_positive": 2.5,
        "post_transplant.relapse_shape": 0.7, "post_transplant.nrm_shape": 1.3},
    "unlinked, no waiting risk": {**UNLINKED_GVHD, **NO_WAITING_RISK},
}


@pytest.mark.parametrize("case", CASES)
def test_batched_calibration_matches_calibrate_scenario_by_scenario(case):
    reference = load_scenario(BASE).with_updates(CASES[case])
    scenarios = _draws(reference, 4, seed=len(case), linked=reference.post_transplant.nrm_hr_cgvhd_systemic != 1)
    solved = calibrate_many(scenarios, (reference, calibrate(reference)))
    for scenario, fast in zip(scenarios, solved, strict=True):
        exact = calibrate(scenario)
        assert not fast.exact                     # the batched path, not the fallback
        for name in UNKNOWNS:
            assert getattr(fast.model, name) == pytest.approx(getattr(exact, name), rel=1e-8), name
        np.testing.assert_allclose(fast.model.weights, exact.weights, atol=1e-12)
        assert (fast.model.nrm_hr_agvhd34, fast.model.nrm_hr_cgvhd) == (exact.nrm_hr_agvhd34, exact.nrm_hr_cgvhd)
        landmark = scenario.analysis.landmark_months * DAYS_PER_MONTH
        assert fast.true_rfs == pytest.approx(rfs(exact, landmark), abs=1e-9)


def test_a_draw_equal_to_the_reference_gets_the_reference_model_itself():
    base = load_scenario(BASE)
    model = calibrate(base)
    other = base.with_updates({"accrual.screened_per_site_month": 0.3})   # calibration inputs unchanged
    solved = calibrate_many([base, other], (base, model))
    assert solved[0].model is model and solved[1].model is model
    assert solved[0].true_rfs == rfs(model, base.analysis.landmark_months * DAYS_PER_MONTH)


def test_zero_targets_stay_zero_and_an_unreachable_one_is_reported_by_calibrate():
    base = load_scenario(BASE)
    no_nrm = base.with_updates({"post_transplant.nrm_incidence": 0.0, "post_transplant.relapse_incidence": 0.2})
    fast = calibrate_many([no_nrm], (base, calibrate(base)))[0]
    exact = calibrate(no_nrm)
    assert fast.model.nrm_cumhaz == 0.0 and not fast.exact
    assert fast.model.relapse_cumhaz == pytest.approx(exact.relapse_cumhaz, rel=1e-8)
    assert fast.true_rfs == pytest.approx(0.8, abs=1e-9)
    impossible = base.with_updates({"post_transplant.cgvhd_incidence": 0.98})
    with pytest.raises(ScenarioError, match="cgvhd_incidence"):
        calibrate_many([impossible], (base, calibrate(base)))


@pytest.mark.parametrize("policy", ["off_study", "transplant", "blinatumomab_retest"])
def test_batched_subgroup_weights_match_the_adaptive_quadrature(policy):
    base = load_scenario(BASE, [f"mrd.positive_action={policy}"])
    rng = np.random.default_rng(7)
    scenarios = [base.with_updates({
        "waiting.relapse_per_month_mrd_negative": float(rng.uniform(0, 0.05)),
        "waiting.relapse_per_month_mrd_positive": float(rng.uniform(0, 0.3)),
        "donor.search_sigma": float(rng.choice([0.0, 0.2, 0.8])),
        "donor.search_median_days_unrelated": float(rng.uniform(20, 200)),
        "transplant.background_wait_mean_days": float(rng.uniform(0, 60)),
    }) for _ in range(6)] + [base.with_updates(NO_WAITING_RISK)]
    for fast, scenario in zip(group_weights_many(scenarios), scenarios, strict=True):
        np.testing.assert_allclose(fast, group_weights(scenario), atol=1e-12, rtol=0)
