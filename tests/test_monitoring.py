"""Interim monitoring simulated in calendar time: the rules against their exact operating characteristics,
information that arrives late, enrollment paused for Simon's stage 1, and the sizing study's shortcut
(rules applied after the fact to one trial of the largest n) against the live simulation of each n."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sim.cli.parser import main
from sim.model.monitoring import landmark_status, poisson_binomial_sf, stop, trial_observations
from sim.model.pathway import simulate_trial, times_after_hsct
from sim.report.rules import stopping_probabilities
from sim.scenario.calibrate import calibrate
from sim.scenario.schema import DAYS_PER_MONTH, load_scenario
from sim.stats.designs import two_stage_oc
from sim.study.runner import Study, arm_models, replicate_row, simulate_chunk

BASE = Path(__file__).resolve().parent.parent / "scenarios" / "base.toml"
# Induction outcomes known within hours of enrollment (immediate information).
AT_ONCE = {"induction.duration_days": 0.1, "blinatumomab.duration_days": 0.1, "response.assessment_day": 0.2,
           "blinatumomab.inpatient_days": 0.0}


@pytest.fixture(scope="module")
def base():
    return load_scenario(BASE)


def stops(scenario, n: int, reps: int, seed: int = 3):
    """The stop of each replicate's n-patient trial, by the rules applied after the fact (the sweep's path)."""
    post = calibrate(scenario)
    out = []
    for r in range(reps):
        h = simulate_trial(scenario, n, seed, r, post_model=post)
        after = times_after_hsct(h.draws, post)
        obs = trial_observations(h.draws.response, h.exit_reason, h.days, after)
        status = landmark_status(h.draws.enroll_day, h.exit_reason, h.days, after,
                                 scenario.analysis.landmark_months * DAYS_PER_MONTH)
        out.append((stop(obs, status, n, scenario.monitoring, scenario.analysis), h))
    return out


def within_4_mcse(simulated: float, exact: float, reps: int) -> bool:
    return abs(simulated - exact) <= 4 * np.sqrt(exact * (1 - exact) / reps)


# --------------------------------------------------------------------------- Simon stage 1 and the final count


@pytest.mark.parametrize(("p", "exact_key"), [(0.75, "alpha"), (0.90, "power")])
def test_simon_design_stops_and_succeeds_as_often_as_its_exact_characteristics(base, p, exact_key):
    """No deaths before the assessment, CRc probability p: the first n1 evaluable are n1 independent patients,
    so the simulated early termination equals the binomial PET, and P(not stopped and more than r of n respond)
    equals the design's exact alpha (p = p0) or power (p = p1), within 4 MCSE."""
    r1, n1, r, n = 10, 13, 40, 48
    scenario = base.with_updates({"induction.p_death": 0.0, "response.p_early_death": 0.0, "response.p_cr": p,
                                  "response.p_cri": 0.0, "monitoring.simon.enabled": True,
                                  "monitoring.simon.n1": n1, "monitoring.simon.r1": r1})
    reps = 2500
    results = stops(scenario, n, reps)
    stopped = np.array([s.rule == "simon" for s, _ in results])
    responders = np.array([np.count_nonzero(np.isin(h.draws.response, (0, 1))) for _, h in results])
    success = ~stopped & (responders > r)
    exact = two_stage_oc(r1, n1, r, n, p)
    assert within_4_mcse(stopped.mean(), float(exact.pet[0]), reps), (stopped.mean(), exact.pet)
    assert within_4_mcse(success.mean(), float(exact.p_reject[0]), reps), (success.mean(), exact.p_reject, exact_key)


# --------------------------------------------------------------------------- Bayesian safety rule


def test_safety_rule_stops_as_often_as_its_exact_boundary_says(base):
    """Death during induction above the threshold, every outcome observed at once (a death and a survival are
    known within hours of enrollment): P(the rule stops a 30-patient trial) = the exact boundary recursion,
    within 4 MCSE. (With the real timing deaths are known before survivals and the rule fires more often:
    see the next tests.)"""
    rate = 0.15
    scenario = base.with_updates({"induction.p_death": rate, "response.p_early_death": 0.0,
                                  "monitoring.induction_death.enabled": True, **AT_ONCE})
    reps, n = 2500, 30
    simulated = np.mean([s.rule == "induction_death" for s, _ in stops(scenario, n, reps)])
    exact = float(stopping_probabilities(scenario.monitoring.induction_death, n, np.array([rate]))[0])
    assert 0.1 < exact < 0.9
    assert within_4_mcse(simulated, exact, reps), (simulated, exact)


@pytest.mark.parametrize(("rate", "low", "high"), [(0.40, 0.97, 1.0), (0.005, 0.0, 0.01)])
def test_safety_rule_stops_nearly_always_far_above_and_almost_never_far_below(base, rate, low, high):
    scenario = base.with_updates({"induction.p_death": rate, "response.p_early_death": 0.0,
                                  "monitoring.induction_death.enabled": True})
    share = np.mean([s.rule == "induction_death" for s, _ in stops(scenario, 60, 400)])
    assert low <= share <= high, share


def test_safety_rule_fires_more_often_when_survival_is_known_later_than_death(base):
    """Real timing: a death is known on its day, survival of induction only at the assessment (day 29), so
    early in the trial deaths are over-represented among the outcomes known and the rule stops more often
    than its exact characteristics (which assume immediate outcomes) say."""
    rate = 0.15
    scenario = base.with_updates({"induction.p_death": rate, "response.p_early_death": 0.0,
                                  "monitoring.induction_death.enabled": True, "accrual.screened_per_site_month": 1.0})
    reps, n = 1500, 30
    simulated = np.mean([s.rule == "induction_death" for s, _ in stops(scenario, n, reps)])
    exact = float(stopping_probabilities(scenario.monitoring.induction_death, n, np.array([rate]))[0])
    assert simulated > exact + 4 * np.sqrt(exact * (1 - exact) / reps), (simulated, exact)


def test_late_information_stops_later_with_more_patients_enrolled(base):
    """Simon's stage 1 with responses known at the assessment (day 29) vs almost at once: with information late
    the rule fires later and more patients have been enrolled by then (the overrun), on paired replicates."""
    futile = {"response.p_cr": 0.6, "monitoring.simon.enabled": True, "accrual.screened_per_site_month": 1.0}
    late, at_once = base.with_updates(futile), base.with_updates({**futile, **AT_ONCE})
    n, reps = 60, 300

    def enrolled_and_day(scenario):
        return np.array([(np.count_nonzero(h.draws.enroll_day < s.day), s.day) for s, h in stops(scenario, n, reps)])

    slow, fast = enrolled_and_day(late), enrolled_and_day(at_once)
    both = np.isfinite(slow[:, 1]) & np.isfinite(fast[:, 1])
    assert both.mean() > 0.5
    extra = slow[both, 0] - fast[both, 0]
    assert extra.mean() > 4 * extra.std(ddof=1) / np.sqrt(both.sum()), extra.mean()
    assert (slow[both, 1] - fast[both, 1]).mean() > 14                       # days


# --------------------------------------------------------------------------- the live model and the shortcut


@pytest.mark.parametrize("rules", [
    {"monitoring.induction_death.enabled": True, "induction.p_death": 0.12},
    {"monitoring.simon.enabled": True, "response.p_cr": 0.75},
    {"monitoring.nrm_day100.enabled": True, "post_transplant.nrm_incidence": 0.3,
     "monitoring.nrm_day100.threshold": 0.1},
    {"monitoring.futility.enabled": True, "post_transplant.relapse_incidence": 0.3},
])
def test_rules_applied_after_the_fact_equal_the_live_simulation_of_each_n(base, rules):
    """Rules that only stop enrollment leave every enrolled patient's history unchanged, so the sweep's
    shortcut (one trial of the largest n, rules applied per n) equals simulating each n with the rules live."""
    scenario = base.with_updates(rules)
    models = arm_models(scenario)
    ns = (12, 25, 40)
    reps = 12
    fast = pd.DataFrame(simulate_chunk(Study(scenario, ns, reps, 8, "primary"), models, 0, reps))
    fired = 0
    for r in range(reps):
        for n in ns:
            live = simulate_trial(scenario, n, 8, r, post_model=models["design"], monitor=True)
            row = fast[(fast["replicate"] == r) & (fast["n"] == n) & (fast["arm"] == "design")].iloc[0]
            alone = replicate_row(live, live.n, "primary")
            assert live.monitoring.stop.stopped == row["stopped"] and live.monitoring.stop.rule == row["stop_rule"]
            assert alone["n_enrolled"] == row["n_enrolled"] == live.monitoring.enrolled, (r, n)
            assert alone["rfs_est"] == pytest.approx(row["rfs_est"], rel=1e-12, nan_ok=True)
            assert (alone["rfs_reject"] and not live.monitoring.stop.stopped) == row["rfs_reject"]
            fired += int(row["stopped"])
    assert fired > 0


def test_a_rule_that_cannot_fire_changes_no_result(base):
    """With every rule off the study is the one before monitoring existed (tests/test_backtest.py); a rule on
    but unreachable adds its columns and changes nothing else."""
    never = base.with_updates({"monitoring.induction_death.enabled": True, "monitoring.induction_death.threshold": 0.99,
                               "monitoring.induction_death.cutoff": 0.999})
    study = Study(base, (20, 40), 15, 2, "primary")
    off = pd.DataFrame(simulate_chunk(study, arm_models(base), 0, 15))
    on = pd.DataFrame(simulate_chunk(Study(never, (20, 40), 15, 2, "primary"), arm_models(never), 0, 15))
    assert not on["stopped"].any()
    pd.testing.assert_frame_equal(on[list(off.columns)], off)
    assert (on["rfs_reject_no_rules"] == off["rfs_reject"]).all()


def test_a_paused_enrollment_really_pauses_and_the_looks_are_logged(tmp_path, capsys):
    out = tmp_path / "trial"
    assert main(["trial", "--n", "40", "--seed", "4", "--set", "monitoring.simon.enabled=true",
                 "--set", "monitoring.simon.pause_enrollment=true", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    start, end = manifest["monitoring"]["pause"]
    assert end > start
    enroll = pd.read_csv(out / "latent_patients.csv")["enroll_day"].to_numpy()
    assert not np.any((enroll > start + 1e-3) & (enroll <= end)), "a patient was enrolled during the pause"
    assert np.count_nonzero(enroll <= start + 1e-3) == 13 and len(enroll) == 40
    events = pd.read_csv(out / "latent_events.csv")
    looks = events[events["event"] == "interim look: simon"]
    assert list(looks["detail"]) == ["enrollment paused until stage 1 is evaluated", "stage 1 evaluated: continue"]
    assert "Interim monitoring" in capsys.readouterr().out


def test_pausing_enrolls_later_patients_later_than_without_a_pause(base):
    paused = base.with_updates({"monitoring.simon.enabled": True, "monitoring.simon.pause_enrollment": True,
                                "monitoring.simon.r1": 0})
    post = calibrate(paused)
    shifted = 0
    for r in range(8):
        with_pause = simulate_trial(paused, 30, 6, r, post_model=post, monitor=True)
        without = simulate_trial(paused, 30, 6, r, post_model=post)
        a, b = with_pause.draws.enroll_day, without.draws.enroll_day
        assert np.array_equal(a[:13], b[:13]) and np.all(a[13:] >= b[13:])
        shifted += int(np.all(a[13:] > b[13:]))     # unless the pause ended before the next arrival
        # the same patients (draws follow the patient, not the arrival): same responses, same donors
        assert np.array_equal(with_pause.draws.response, without.draws.response)
    assert shifted >= 4


# --------------------------------------------------------------------------- the futility look's arithmetic


def test_poisson_binomial_tail_equals_direct_convolution_and_the_binomial():
    rng = np.random.default_rng(5)
    for _ in range(20):
        probs = rng.random(int(rng.integers(1, 80)))
        k = int(rng.integers(0, probs.size + 2))
        pmf = np.array([1.0])
        for p in probs:
            pmf = np.convolve(pmf, [1 - p, p])
        assert poisson_binomial_sf(k, probs)[0] == pytest.approx(pmf[k:].sum(), abs=1e-12)
    assert poisson_binomial_sf(7, np.full(20, 0.3))[0] == pytest.approx(stats.binom.sf(6, 20, 0.3), abs=1e-13)


def test_futility_stops_more_when_rfs_is_at_the_null(base):
    scenario = base.with_updates({"monitoring.futility.enabled": True})
    models = arm_models(scenario)
    rows = pd.DataFrame(simulate_chunk(Study(scenario, (60,), 150, 9, "primary"), models, 0, 150))
    p_stop = rows.groupby("arm")["stopped"].mean()
    diff = rows.pivot(index="replicate", columns="arm", values="stopped").astype(float)
    paired = diff["null"] - diff["design"]
    assert p_stop["null"] > p_stop["design"] and paired.mean() > 3 * paired.std(ddof=1) / np.sqrt(len(paired))
