"""Risk while waiting for HSCT and the MRD-positive policies, checked against the numerical calculation.

From the end of consolidation to admission, patients in remission relapse or die with constant hazards
(relapse by the latest MRD result). The simulated probability of reaching HSCT, the time to HSCT and
the transplanted population's composition (donor type x MRD status at HSCT) are compared with
waiting.py's integrals over the consolidation delays, MRD routes, log-normal donor search and
exponential slot wait: tolerance 4 Monte Carlo SE, 20,000 patients, fixed seeds.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sim.analysis.datasets import patient_flow, patients_table
from sim.model.pathway import EXIT_REASONS, TRANSPLANTED, WAITING_DEATH, WAITING_RELAPSE, hsct_group, simulate_trial
from sim.scenario import waiting
from sim.scenario.calibrate import calibrate, group_weights
from sim.scenario.schema import DAYS_PER_MONTH, ScenarioError, load_scenario
from sim.study.design import p_reach_hsct, stage_probabilities

BASE = Path(__file__).resolve().parent.parent / "scenarios" / "base.toml"
N = 20_000
RISKY = {
    "waiting.relapse_per_month_mrd_negative": 0.05, "waiting.relapse_per_month_mrd_positive": 0.30,
    "waiting.death_per_month": 0.02, "donor.search_sigma": 0.8, "mrd.mfc.p_convert_to_negative": 0.2,
    "transplant.background_wait_mean_days": 21.0,
}
POLICIES = ("off_study", "transplant", "blinatumomab_retest")


def within(observed: float, expected: float, mcse: float, k: float = 4.0) -> None:
    assert mcse > 0
    z = (observed - expected) / mcse
    assert abs(z) <= k, f"observed {observed:.5f}, expected {expected:.5f}, MCSE {mcse:.5f}, z = {z:.2f}"


@pytest.fixture(scope="module")
def base():
    return load_scenario(BASE).with_updates({"waiting.relapse_per_month_mrd_negative": 0.0,
                                             "waiting.relapse_per_month_mrd_positive": 0.0,
                                             "waiting.death_per_month": 0.0})


@pytest.fixture(scope="module", params=POLICIES)
def risky(request, base):
    scenario = base.with_updates({**RISKY, "mrd.positive_action": request.param})
    return scenario, simulate_trial(scenario, N, seed=31)


def test_exit_reason_codes_keep_their_values():
    old = ("transplanted", "induction_death", "early_death", "refractory", "cri_not_consolidated",
           "consolidation_death", "consolidation_relapse", "mrd_positive", "no_donor", "refusal")
    assert EXIT_REASONS[:len(old)] == old
    assert EXIT_REASONS[WAITING_RELAPSE] == "relapse_awaiting_hsct"
    assert EXIT_REASONS[WAITING_DEATH] == "death_awaiting_hsct"


def test_reach_hsct_matches_the_numerical_calculation(risky):
    scenario, history = risky
    expected = p_reach_hsct(scenario)
    observed = np.mean(history.exit_reason == TRANSPLANTED)
    within(observed, expected, math.sqrt(expected * (1 - expected) / N))
    # The waiting risk must matter at this precision, or the check could not catch its omission.
    without = p_reach_hsct(scenario.with_updates({"waiting.relapse_per_month_mrd_negative": 0.0,
                                                  "waiting.relapse_per_month_mrd_positive": 0.0,
                                                  "waiting.death_per_month": 0.0}))
    assert (without - expected) / math.sqrt(expected * (1 - expected) / N) > 10


def test_time_to_hsct_matches_the_numerical_calculation(risky):
    scenario, history = risky
    done = history.exit_reason == TRANSPLANTED
    days = (history.days["hsct_day"] - history.draws.enroll_day)[done]
    within(days.mean(), waiting.mean_days_to_hsct(scenario), days.std(ddof=1) / math.sqrt(days.size))


def test_transplanted_subgroups_match_the_calibration_weights(risky):
    """Donor type x MRD status at HSCT among the transplanted: the weights the calibration uses."""
    scenario, history = risky
    done = history.exit_reason == TRANSPLANTED
    counts = np.bincount(hsct_group(history.draws)[done], minlength=6)
    expected = group_weights(scenario)
    k = done.sum()
    for g in range(6):
        if expected[g] == 0:
            assert counts[g] == 0, g
        else:
            within(counts[g] / k, expected[g], math.sqrt(expected[g] * (1 - expected[g]) / k))
    if scenario.mrd.positive_action != "transplant":
        assert np.all(expected[1::2] == 0), "only the 'transplant' policy transplants MRD-positive patients"


def test_waiting_exits_split_by_the_hazards(base):
    """All MRD-negative: among patients leaving while waiting, relapse vs death in the ratio of their hazards."""
    scenario = base.with_updates({**RISKY, "mrd.mfc.p_negative_after_induction": 1.0, "mrd.mfc.p_lose_negativity": 0.0,
                                  "transplant.background_wait_mean_days": 90.0})
    history = simulate_trial(scenario, N, seed=32)
    relapses = np.count_nonzero(history.exit_reason == WAITING_RELAPSE)
    deaths = np.count_nonzero(history.exit_reason == WAITING_DEATH)
    rates = waiting.waiting_rates(scenario)
    share = rates.relapse_negative / (rates.relapse_negative + rates.death)
    n = relapses + deaths
    assert n > 1000
    within(relapses / n, share, math.sqrt(share * (1 - share) / n))


def test_longer_donor_search_lowers_reach_hsct_monotonically(base):
    """Numerically strictly decreasing; simulated with common random numbers, the transplanted sets are nested."""
    scenario = base.with_updates(RISKY)
    factors = (0.5, 1.0, 2.0, 4.0)
    keys = ("donor.search_median_days_haplo", "donor.search_median_days_sibling", "donor.search_median_days_unrelated")
    variants = [scenario.with_updates({k: getattr(scenario.donor, k.split(".")[1]) * f for k in keys})
                for f in factors]
    reach = [p_reach_hsct(v) for v in variants]
    assert all(a > b for a, b in zip(reach, reach[1:], strict=False)), reach
    done = [simulate_trial(v, 5000, seed=33).exit_reason == TRANSPLANTED for v in variants]
    for shorter, longer in zip(done, done[1:], strict=False):
        assert not np.any(longer & ~shorter), "transplanted after a longer search, so also after a shorter one"
        assert longer.sum() < shorter.sum()


def test_relapse_or_death_while_queued_leaves_the_slot_queue(base):
    """One trial-only slot held 60 days, high waiting risk: queued patients who relapse or die leave the queue,
    the slot is never held by two, admission is first come first served, and no slot waits for a departed patient."""
    scenario = base.with_updates({**RISKY, "transplant.capacity": "finite", "transplant.slots": 1,
                                  "transplant.slot_days": 60.0, "accrual.screened_per_site_month": 1.0})
    history = simulate_trial(scenario, 300, seed=34)
    assert np.all(history.exit_reason >= 0), "every patient leaves the pathway (nobody stuck in the queue)"
    p = patients_table(history)
    queued = p["slot_request_day"].notna()
    left = queued & p["admission_day"].isna()
    assert left.sum() >= 20, "the check needs patients who leave the queue"
    assert p.loc[left, "exit_reason"].isin(["relapse_awaiting_hsct", "death_awaiting_hsct"]).all()
    assert (p.loc[left, "off_pathway_day"] >= p.loc[left, "slot_request_day"]).all()
    admitted = p[p["admission_day"].notna()].sort_values("slot_request_day")
    assert admitted["admission_day"].is_monotonic_increasing, "first come, first served"
    start = admitted["admission_day"].to_numpy()
    release = start + scenario.transplant.slot_days
    assert np.all(start[1:] >= release[:-1] - 1e-9), "one slot: the next admission after the previous release"
    # Each admission happens on request or the moment the slot is released: departed patients never block it.
    waited = start[1:] > admitted["slot_request_day"].to_numpy()[1:] + 1e-9
    np.testing.assert_allclose(start[1:][waited], release[:-1][waited], atol=1e-9)
    # While a patient queued, the slot was in use all the time (a withdrawn request never holds it).
    for request, gone in p.loc[left, ["slot_request_day", "off_pathway_day"]].itertuples(index=False):
        busy = np.clip(np.minimum(release, gone) - np.maximum(start, request), 0.0, None).sum()
        assert busy == pytest.approx(gone - request, abs=1e-6), (request, gone, busy)


def test_retest_policy_tests_again_after_the_course(base):
    scenario = base.with_updates({**RISKY, "mrd.positive_action": "blinatumomab_retest",
                                  "mrd.mfc.p_negative_after_induction": 0.5})
    history = simulate_trial(scenario, N, seed=35)
    p = patients_table(history)
    retested = p[p["retest_sample_day"].notna()]
    m = scenario.mrd
    start, sample = retested["retest_course_start_day"], retested["retest_sample_day"]
    np.testing.assert_allclose(sample, start + m.retest_course_days)
    np.testing.assert_allclose(retested["retest_result_day"], sample + m.retest_turnaround_days)
    assert (retested["mrd2_negative"] == False).all()  # noqa: E712 (nullable boolean)
    q = m.retest_p_negative
    within(retested["retest_negative"].mean(), q, math.sqrt(q * (1 - q) / len(retested)))
    # Nobody is MRD-positive at HSCT; a positive re-test leaves the pathway.
    done = history.exit_reason == TRANSPLANTED
    assert not np.any(hsct_group(history.draws)[done] % 2)
    positive_after = retested["retest_negative"] == False  # noqa: E712
    reached = positive_after & retested["retest_result_day"].notna() & retested["off_pathway_day"].ge(
        retested["retest_result_day"] - 1e-9)
    assert (retested.loc[reached, "exit_reason"] == "mrd_positive").all()
    flow = patient_flow(history).set_index("step")["count"]
    assert flow["re-tested after a further blinatumomab course"] == len(retested)


def test_stage_probabilities_multiply_to_reach_hsct_and_are_1_without_risk(base):
    for policy in POLICIES:
        with_risk = base.with_updates({**RISKY, "mrd.positive_action": policy})
        shares = waiting.transplanted_shares(with_risk).sum()
        c = with_risk.consolidation
        before = (1 - with_risk.induction.p_death) * (with_risk.response.p_cr + with_risk.response.p_cri) * \
            (1 - c.cycle1.p_death - c.cycle1.p_relapse) * (1 - c.cycle2.p_death - c.cycle2.p_relapse)
        assert p_reach_hsct(with_risk) == pytest.approx(before * shares, rel=1e-10)
        stages = dict(stage_probabilities(base.with_updates({"mrd.positive_action": policy})))
        waits = [p for name, p in stages.items() if name.startswith("alive in remission")]
        assert waits == [1.0, 1.0]


def test_waiting_hazard_is_minus_log_of_one_minus_p_per_month(base):
    scenario = base.with_updates({"waiting.relapse_per_month_mrd_negative": 0.1})
    assert waiting.waiting_rates(scenario).relapse_negative * DAYS_PER_MONTH == pytest.approx(-math.log(0.9))


def test_calibration_uses_the_policy_weights(base):
    """Transplanting MRD-positive patients puts them in the calibrated population, with the waiting losses."""
    scenario = base.with_updates({**RISKY, "mrd.positive_action": "transplant"})
    model = calibrate(scenario)
    np.testing.assert_allclose(model.weights, group_weights(scenario))
    positive = model.weights[1::2].sum()
    q = waiting.mrd_negative_before_hsct(scenario)
    assert 0 < positive < 1 - q, "MRD-positive patients relapse more while waiting, so fewer reach HSCT"


@pytest.mark.parametrize("item, fragment", [
    ("mrd.positive_action=retest", "one of off_study, transplant, blinatumomab_retest"),
    ("waiting.relapse_per_month_mrd_negative=1.0", "waiting.relapse_per_month_mrd_negative"),
    ("mrd.retest_course_days=0", "mrd.retest_course_days"),
    ("mrd.retest_p_negative=1.5", "mrd.retest_p_negative"),
    ("off_pathway.refractory_median_months=-1", "off_pathway.refractory_median_months"),
    ("post_transplant.nrm_hr_agvhd_3_4=0", "post_transplant.nrm_hr_agvhd_3_4"),
    ("waiting.relapse_per_month=0.1", "unknown key"),
])
def test_new_keys_are_validated(item, fragment):
    with pytest.raises(ScenarioError) as err:
        load_scenario(BASE, [item])
    assert fragment in str(err.value) and f"--set {item}" in str(err.value)
