"""Everyone followed: patients who leave the pathway alive, and OS and EFS from enrollment.

The follow-up hazards are checked against the scenario's medians and yearly probabilities; the
Kaplan-Meier OS and EFS at the landmark from enrollment (with censoring at a calendar cutoff and
loss to follow-up) against their simulated truths; and, where every patient is transplanted after a
fixed time, OS from enrollment against OS after HSCT shifted by that time (and its calculated truth).
Tolerance 4 Monte Carlo SE.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from support import NO_PRE_TRANSPLANT_RISK

from sim.analysis.endpoints import (
    death_days,
    efs_event_days,
    from_enrollment,
    observe,
    secondary_estimates,
    time_to_first,
)
from sim.model.pathway import (
    CONSOL_RELAPSE,
    DEATH_EXITS,
    NO_DONOR_FOUND,
    NOT_IN_REMISSION,
    TRANSPLANTED,
    simulate_trial,
)
from sim.scenario.calibrate import calibrate, os
from sim.scenario.schema import DAYS_PER_MONTH, load_scenario
from sim.stats.estimators import km_landmark
from sim.study.truth import enrollment_truths

BASE = Path(__file__).resolve().parent.parent / "scenarios" / "base.toml"
N = 20_000
YEAR = 12 * DAYS_PER_MONTH


def within(observed: float, expected: float, mcse: float, k: float = 4.0) -> None:
    assert mcse > 0
    z = (observed - expected) / mcse
    assert abs(z) <= k, f"observed {observed:.5f}, expected {expected:.5f}, MCSE {mcse:.5f}, z = {z:.2f}"


def check_proportion(events: int, n: int, p: float) -> None:
    assert n >= 500, f"denominator {n} too small for a meaningful check"
    within(events / n, p, math.sqrt(p * (1 - p) / n))


@pytest.fixture(scope="module")
def base():
    return load_scenario(BASE)


@pytest.fixture(scope="module")
def leavers(base):
    """Many patients leave alive: refractory, relapse in consolidation, no donor (all MRD-negative)."""
    scenario = base.with_updates({"response.p_cr": 0.5, "response.p_cri": 0.0, "consolidation.cycle1.p_relapse": 0.2,
                                  "donor.p_no_donor": 0.5, "mrd.mfc.p_negative_after_induction": 1.0,
                                  "mrd.mfc.p_lose_negativity": 0.0, "post_transplant.ltfu_prob": 0.3})
    return scenario, simulate_trial(scenario, N, seed=51)


def test_survival_after_induction_failure_and_relapse_has_the_configured_medians(leavers):
    scenario, h = leavers
    o = scenario.off_pathway
    after = h.off["death_day"] - h.days["exit_day"]
    for reason, median in ((NOT_IN_REMISSION, o.refractory_median_months),
                           (CONSOL_RELAPSE, o.post_relapse_median_months)):
        left = h.exit_reason == reason
        check_proportion(np.count_nonzero(after[left] <= median * DAYS_PER_MONTH), left.sum(), 0.5)
        assert np.all(np.isnan(h.off["relapse_day"][left])), "a relapse that made them leave is not counted again"


def test_patients_leaving_in_remission_relapse_or_die_with_the_configured_hazards(leavers):
    scenario, h = leavers
    o = scenario.off_pathway
    left = h.exit_reason == NO_DONOR_FOUND
    rho, delta = -math.log(1 - o.relapse_per_year_mrd_negative), -math.log(1 - o.death_in_remission_per_year)
    leave = -math.expm1(-(rho + delta))             # within one year, competing
    relapse = h.off["relapse_day"][left] - h.days["exit_day"][left]
    check_proportion(np.count_nonzero(relapse <= YEAR), left.sum(), rho / (rho + delta) * leave)
    death_first = np.isnan(relapse) & (h.off["death_day"][left] - h.days["exit_day"][left] <= YEAR)
    check_proportion(np.count_nonzero(death_first), left.sum(), delta / (rho + delta) * leave)
    died_after = ~np.isnan(relapse) & ~np.isnan(h.off["death_day"][left])   # death within the horizon
    assert np.all(h.off["death_day"][left][died_after] > h.off["relapse_day"][left][died_after])


def test_loss_to_follow_up_after_leaving_has_the_post_hsct_hazard(leavers):
    scenario, h = leavers
    alive = (h.exit_reason != TRANSPLANTED) & ~np.isin(h.exit_reason, DEATH_EXITS)
    lost = h.off["ltfu_day"][alive] - h.days["exit_day"][alive] <= scenario.post_transplant.incidence_landmark_months \
        * DAYS_PER_MONTH
    check_proportion(np.count_nonzero(lost), alive.sum(), scenario.post_transplant.ltfu_prob)
    assert np.all(np.isnan(h.off["ltfu_day"][~alive]))


def test_efs_events_fall_on_failure_relapse_or_death(leavers):
    _, h = leavers
    efs = efs_event_days(h)
    at_exit = np.isin(h.exit_reason, (NOT_IN_REMISSION, CONSOL_RELAPSE, *DEATH_EXITS))
    np.testing.assert_array_equal(efs[at_exit], h.days["exit_day"][at_exit])
    refractory = h.exit_reason == NOT_IN_REMISSION
    np.testing.assert_array_equal(efs[refractory], h.days["response_day"][refractory])
    remission = h.exit_reason == NO_DONOR_FOUND
    np.testing.assert_array_equal(efs[remission], np.fmin(h.off["relapse_day"], h.off["death_day"])[remission])
    both = ~np.isnan(death_days(h)) & ~np.isnan(efs)
    assert np.all(efs[both] <= death_days(h)[both])


@pytest.fixture(scope="module")
def big_trial(base):
    """One large trial with censoring: accrual over about 15 months, calendar cutoff at 30, 10% loss to follow-up."""
    scenario = base.with_updates({"accrual.n_sites": 100, "accrual.screened_per_site_month": 5.9,
                                  "accrual.ramp_up_months": 0.0, "analysis.cutoff": "calendar",
                                  "analysis.calendar_cutoff_months": 30.0, "post_transplant.ltfu_prob": 0.1,
                                  "waiting.relapse_per_month_mrd_negative": 0.03, "waiting.death_per_month": 0.01})
    model = calibrate(scenario)
    truth = enrollment_truths(scenario, (model,), seed=5, patients=100_000)[0]
    return scenario, simulate_trial(scenario, 8000, seed=52, post_model=model), truth


@pytest.mark.parametrize("key", ["os_enroll", "efs_enroll"])
def test_km_from_enrollment_agrees_with_the_simulated_truth(big_trial, key):
    scenario, history, truth = big_trial
    obs = observe(history)
    landmark = scenario.analysis.landmark_months * DAYS_PER_MONTH
    time, event = from_enrollment(history, obs, death_days(history) if key == "os_enroll" else efs_event_days(history))
    enroll = history.draws.enroll_day[history.draws.enroll_day <= obs.cutoff_day]
    assert np.all(enroll + time <= obs.cutoff_day + 1e-9), "nothing after the data cutoff is seen"
    censored_early = np.count_nonzero(~event & (time < landmark))
    assert censored_early > 1000, "the check needs censoring before the landmark"
    estimate = secondary_estimates(history, obs=obs)[key]
    assert estimate.estimate == km_landmark(time, event, landmark)[0].estimate
    within(estimate.estimate, truth[key], math.hypot(estimate.se, truth[f"{key}_mcse"]))
    # Treating patients who leave alive as censored at that day (not followed) would be caught at this precision.
    leave = (history.exit_reason != TRANSPLANTED) & ~np.isin(history.exit_reason, DEATH_EXITS)
    naive_time = np.where(leave[:len(time)], np.minimum(time, history.days["exit_day"][:len(time)]
                                                         - history.draws.enroll_day[:len(time)]), time)
    naive = km_landmark(naive_time, event & ~leave[:len(time)], landmark)[0]
    assert abs(naive.estimate - truth[key]) > 4 * math.hypot(naive.se, truth[f"{key}_mcse"])


def test_not_followed_makes_enrollment_endpoints_not_evaluable(base):
    scenario = base.with_updates({"off_pathway.followed": False})
    history = simulate_trial(scenario, 60, seed=53)
    estimates = secondary_estimates(history)
    for key in ("os_enroll", "efs_enroll"):
        assert np.isnan(estimates[key].estimate) and "off_pathway.followed" in estimates[key].reason
    assert np.all(np.isnan(history.off["death_day"]))
    truth = enrollment_truths(scenario, (calibrate(scenario),), seed=5, patients=2000, batch=1000)[0]
    assert np.isnan(truth["os_enroll"]) and np.isfinite(truth["itt"])


@pytest.fixture(scope="module")
def everyone_transplanted(base):
    """Every patient transplanted exactly T0 days after enrollment: no delays, donor ready, no slot wait."""
    scenario = base.with_updates({
        **NO_PRE_TRANSPLANT_RISK, "consolidation.cycle1.p_delay": 0.0, "consolidation.cycle2.p_delay": 0.0,
        "donor.search_median_days_haplo": 1.0, "donor.search_median_days_sibling": 1.0,
        "donor.search_median_days_unrelated": 1.0, "donor.search_sigma": 0.0,
        "transplant.background_wait_mean_days": 0.0,
        "waiting.relapse_per_month_mrd_negative": 0.0, "waiting.relapse_per_month_mrd_positive": 0.0,
        "waiting.death_per_month": 0.0, "post_transplant.ltfu_prob": 0.1, "analysis.cutoff": "calendar",
        "analysis.calendar_cutoff_months": 40.0})
    c, a = scenario.consolidation, scenario.assay
    t0 = (scenario.response.assessment_day + c.start_gap_days + c.cycle1.length_days + c.cycle2.length_days
          + a.turnaround_days + scenario.transplant.conditioning_days)
    return scenario, t0


def test_everyone_transplanted_os_from_enrollment_is_os_after_hsct_shifted(everyone_transplanted):
    scenario, t0 = everyone_transplanted
    history = simulate_trial(scenario, 3000, seed=54)
    np.testing.assert_allclose(history.days["hsct_day"] - history.draws.enroll_day, t0, atol=1e-9)
    obs = observe(history)
    enrolled = history.draws.enroll_day <= obs.cutoff_day
    assert np.array_equal(np.flatnonzero(enrolled & (history.days["hsct_day"] <= obs.cutoff_day)), obs.hsct)
    time, event = from_enrollment(history, obs, death_days(history))
    after_time, after_event = time_to_first(obs.follow_end, obs.death)
    transplanted = np.isin(np.flatnonzero(enrolled), obs.hsct)
    np.testing.assert_allclose(time[transplanted], after_time + t0, atol=1e-9)
    np.testing.assert_array_equal(event[transplanted], after_event)
    landmark = scenario.analysis.landmark_months * DAYS_PER_MONTH
    # Patients enrolled by the cutoff but not yet transplanted are censored before the shifted origin: KM equal.
    from_enroll = km_landmark(time, event, landmark)[0]
    after_hsct = km_landmark(after_time, after_event, landmark - t0)[0]
    assert from_enroll.estimate == pytest.approx(after_hsct.estimate, abs=1e-12)
    assert from_enroll.se == pytest.approx(after_hsct.se, abs=1e-12)


def test_everyone_transplanted_os_truth_is_the_calculated_os_after_hsct_shifted(everyone_transplanted):
    scenario, t0 = everyone_transplanted
    model = calibrate(scenario)
    truth = enrollment_truths(scenario, (model,), seed=6, patients=60_000, batch=30_000)[0]
    landmark = scenario.analysis.landmark_months * DAYS_PER_MONTH
    within(truth["os_enroll"], os(model, landmark - t0), truth["os_enroll_mcse"])
    # Without the shift the truth would differ by far more than its Monte Carlo error.
    assert abs(os(model, landmark) - truth["os_enroll"]) > 8 * truth["os_enroll_mcse"]
