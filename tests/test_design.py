"""The scenario library, and `describe`: closed-form design quantities checked against simulation."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import NO_PRE_TRANSPLANT_RISK

from sim.cli.parser import main
from sim.model.pathway import simulate_trial
from sim.scenario.calibrate import calibrate, rfs
from sim.scenario.schema import DAYS_PER_MONTH, load_scenario
from sim.study.design import asymptotic_power, expected_accrual_months, normal_approx_transplanted, p_reach_hsct
from sim.study.runner import Study, arm_models, simulate_chunk

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
LIBRARY = ("base", "optimistic", "pessimistic", "slow_accrual", "donor_shortage", "ngs_mrd", "high_nrm",
           "conservative", "mrd_retest")


@pytest.fixture(scope="module")
def base():
    return load_scenario(SCENARIOS / "base.toml")


@pytest.mark.parametrize("name", LIBRARY)
def test_library_scenario_loads_calibrates_and_says_what_it_answers(name):
    path = SCENARIOS / f"{name}.toml"
    text = path.read_text()
    assert text.startswith("#") and "Question" in text.split("\n\n")[0], "header must say what it answers"
    scenario = load_scenario(path)
    assert scenario.name == name
    calibrate(scenario)
    if name != "base":
        assert 'extends = "base.toml"' in text
        # Every changed number carries a comment (its source or [est]).
        for line in text.splitlines():
            if "=" in line and not line.startswith(("#", "extends", "name", "description", "[")):
                assert "#" in line, f"{name}: no source for {line!r}"


def test_library_scenarios_order_as_their_names_say(base):
    landmark = base.analysis.landmark_months * DAYS_PER_MONTH
    truth = {n: rfs(calibrate(load_scenario(SCENARIOS / f"{n}.toml")), landmark) for n in LIBRARY}
    assert truth["optimistic"] > truth["base"] > truth["pessimistic"]
    assert truth["high_nrm"] < truth["base"]
    reach = {n: p_reach_hsct(load_scenario(SCENARIOS / f"{n}.toml")) for n in LIBRARY}
    assert reach["donor_shortage"] < reach["base"] and reach["ngs_mrd"] < reach["base"] < reach["mrd_retest"]
    assert expected_accrual_months(load_scenario(SCENARIOS / "slow_accrual.toml"), 60) > \
        1.8 * expected_accrual_months(base, 60)


@pytest.mark.parametrize("updates", [{}, {"mrd.assay": "NGS", "consolidation.include_cri": False},
                                     {"mrd.positive_action": "transplant", "donor.p_no_donor": 0.2}])
def test_probability_of_reaching_hsct_matches_simulation(base, updates):
    scenario = base.with_updates(updates)
    n = 20_000
    history = simulate_trial(scenario, n, seed=3)
    observed = np.mean(~np.isnan(history.days["hsct_day"]))
    expected = p_reach_hsct(scenario)
    assert abs(observed - expected) < 4 * np.sqrt(expected * (1 - expected) / n), (observed, expected)


def test_expected_accrual_time_matches_simulated_enrollment(base):
    scenario = base.with_updates({"accrual.ramp_up_months": 0.0})
    model = calibrate(scenario)
    finish = [simulate_trial(scenario, 40, seed=5, replicate=r, post_model=model).draws.enroll_day[-1]
              / DAYS_PER_MONTH for r in range(300)]
    # Without ramp-up, the 40th enrollment is Gamma(40, rate): mean exactly 40 / rate.
    assert expected_accrual_months(scenario, 40) == pytest.approx(40 / 2.0, rel=0.002)
    assert abs(np.mean(finish) - expected_accrual_months(scenario, 40)) < 4 * np.std(finish) / np.sqrt(300)


def test_asymptotic_power_of_landmark_test_agrees_with_simulation(base):
    """DESIGN.md section 5: with no pre-transplant risk and exponential post-HSCT risk (with censoring by loss
    to follow-up), simulated power at a large n agrees with the first-order power of the KM landmark test."""
    scenario = base.with_updates({
        **NO_PRE_TRANSPLANT_RISK, "post_transplant.ltfu_prob": 0.15,
        "post_transplant.relapse_incidence": 0.20, "post_transplant.nrm_incidence": 0.13,
    })
    n, reps = 120, 1500
    rows = pd.DataFrame(simulate_chunk(Study(scenario, (n,), reps, 2, "primary"), arm_models(scenario), 0, reps))
    simulated = rows.query("arm == 'design'")["rfs_reject"].mean()
    predicted = asymptotic_power(scenario, calibrate(scenario), n)
    mcse = np.sqrt(simulated * (1 - simulated) / reps)
    assert 0.3 < predicted < 0.9, "the check needs a power away from 0 and 1"
    assert abs(simulated - predicted) < 4 * mcse + 0.02, (simulated, predicted, mcse)


def test_normal_approximation_inverts_asymptotic_power(base):
    model = calibrate(base)
    n_tx = normal_approx_transplanted(base, model, 0.8)
    assert asymptotic_power(base, model, n_tx) == pytest.approx(0.8, abs=1e-9)


def test_describe_prints_truths_stages_and_sample_size(capsys):
    # How long it takes is measured by benchmarks/bench_describe.py, never asserted here (a busy CI machine).
    assert main(["describe", "--scenario", str(SCENARIOS / "base.toml")]) == 0
    out = capsys.readouterr().out
    for text in ("18-month RFS 0.730", "P(an enrolled patient is transplanted) = 0.693", "enrolled after about",
                 "normal-approximation", "the simulation"):
        assert text in out, text
