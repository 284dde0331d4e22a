"""Functional tests of the SimPy pathway: determinism, prefix invariance, common random numbers,
degenerate scenarios and the FIFO transplant-slot queue."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import NO_PRE_TRANSPLANT_RISK

from sim.analysis.datasets import event_log, patient_flow, patients_table
from sim.model.pathway import EXIT_REASONS, simulate_trial
from sim.scenario.schema import load_scenario

BASE = Path(__file__).resolve().parent.parent / "scenarios" / "base.toml"



@pytest.fixture(scope="module")
def base():
    return load_scenario(BASE)


def test_same_seed_gives_identical_tables(base):
    a = patients_table(simulate_trial(base, 80, seed=3))
    b = patients_table(simulate_trial(base, 80, seed=3))
    pd.testing.assert_frame_equal(a, b)
    c = patients_table(simulate_trial(base, 80, seed=4))
    assert not a["enroll_day"].equals(c["enroll_day"])


def test_replicates_differ_and_are_addressable(base):
    r5 = patients_table(simulate_trial(base, 40, seed=3, replicate=5))
    r6 = patients_table(simulate_trial(base, 40, seed=3, replicate=6))
    assert not r5["enroll_day"].equals(r6["enroll_day"])
    pd.testing.assert_frame_equal(r5, patients_table(simulate_trial(base, 40, seed=3, replicate=5)))


def test_history_of_first_patients_unchanged_by_later_enrollment(base):
    small = patients_table(simulate_trial(base, 30, seed=21))
    large = patients_table(simulate_trial(base, 120, seed=21)).iloc[:30]
    pd.testing.assert_frame_equal(small, large)


def test_scenarios_share_random_numbers_where_they_agree(base):
    """Changing only NRM leaves every pre-transplant stamp identical (common random numbers)."""
    other = base.with_updates({"post_transplant.nrm_incidence": 0.2})
    a = patients_table(simulate_trial(base, 200, seed=8))
    b = patients_table(simulate_trial(other, 200, seed=8))
    pre = ["enroll_day", "age", "bsa_m2", "response", "mrd2_negative", "donor_type", "hsct_day", "exit_reason"]
    pd.testing.assert_frame_equal(a[pre], b[pre])
    # Higher NRM hazards make each patient's latent NRM time earlier, never later.
    both = a["nrm_day"].notna() & b["nrm_day"].notna()
    assert both.sum() > 5
    assert (b.loc[both, "nrm_day"] <= a.loc[both, "nrm_day"] + 1e-9).all()


def test_everyone_reaches_hsct_when_pre_transplant_risks_are_zero(base):
    scenario = base.with_updates(NO_PRE_TRANSPLANT_RISK)
    patients = patients_table(simulate_trial(scenario, 500, seed=2))
    assert (patients["exit_reason"] == "transplanted").all()
    assert patients["hsct_day"].notna().all()
    # HSCT follows the schedule: never before the pre-HSCT MRD result plus conditioning.
    assert (patients["hsct_day"] >= patients["mrd2_result_day"] + scenario.transplant.conditioning_days - 1e-9).all()


def test_nobody_reaches_hsct_without_donors(base):
    scenario = base.with_updates({"donor.p_no_donor": 1.0})
    history = simulate_trial(scenario, 300, seed=2)
    patients = patients_table(history)
    assert patients["hsct_day"].isna().all()
    assert patients["nrm_day"].isna().all() and patients["agvhd_day"].isna().all()
    # A relapse is one after leaving the pathway in remission (followed), never before leaving.
    relapsed = patients["relapse_day"].notna()
    assert (patients.loc[relapsed, "relapse_day"] >= patients.loc[relapsed, "off_pathway_day"]).all()
    flow = patient_flow(history).set_index("step")["count"]
    assert flow["transplanted"] == 0
    assert flow["no donor (off pathway)"] == flow["MRD-negative"]


def test_everyone_dies_in_induction_when_induction_death_is_certain(base):
    patients = patients_table(simulate_trial(base.with_updates({"induction.p_death": 1.0}), 100, seed=2))
    assert (patients["exit_reason"] == "induction_death").all()
    offset = patients["induction_death_day"] - patients["enroll_day"]
    assert ((offset >= 0) & (offset <= base.induction.duration_days)).all()
    assert patients["blina_start_day"].isna().all()


def test_one_transplant_slot_is_a_fifo_queue(base):
    scenario = base.with_updates({**NO_PRE_TRANSPLANT_RISK, "transplant.capacity": "finite", "transplant.slots": 1,
                                  "transplant.slot_days": 60.0, "accrual.screened_per_site_month": 1.0})
    patients = patients_table(simulate_trial(scenario, 60, seed=5))
    admitted = patients.sort_values("admission_day")
    # One slot: admissions at least slot_days apart, so nobody overlaps.
    assert (np.diff(admitted["admission_day"]) >= scenario.transplant.slot_days - 1e-9).all()
    # FIFO: admitted in the order of their request for a slot.
    assert admitted["slot_request_day"].is_monotonic_increasing
    wait = patients["admission_day"] - patients["slot_request_day"]
    assert wait.max() > 100  # accrual far outpaces one slot: queueing delays appear
    assert (wait >= -1e-9).all()


def test_finite_capacity_with_ample_slots_never_queues(base):
    scenario = base.with_updates({"transplant.capacity": "finite", "transplant.slots": 1000})
    patients = patients_table(simulate_trial(scenario, 200, seed=5))
    done = patients["admission_day"].notna()
    np.testing.assert_allclose(patients.loc[done, "admission_day"], patients.loc[done, "slot_request_day"])


def test_event_log_is_time_ordered_and_matches_patient_table(base):
    patients = patients_table(simulate_trial(base, 60, seed=7))
    log = event_log(patients)
    assert log["day"].is_monotonic_increasing
    assert (log["event"] == "enrollment").sum() == 60
    assert (log["event"] == "hsct").sum() == patients["hsct_day"].notna().sum()
    off = log[log["event"] == "off_pathway"]
    assert set(off["detail"]) <= set(EXIT_REASONS) - {"transplanted"}
    assert len(off) == (patients["exit_reason"] != "transplanted").sum()


def test_every_patient_leaves_with_one_reason_and_flow_adds_up(base):
    history = simulate_trial(base, 400, seed=9)
    flow = patient_flow(history).set_index("step")["count"]
    patients = patients_table(history)
    assert patients["exit_reason"].isin(EXIT_REASONS).all()
    assert flow["enrolled"] == 400
    assert flow["screened"] - flow["screen failure"] == flow["enrolled"]
    assert flow["enrolled"] - flow["died during VIP induction"] - flow["died during blinatumomab"] == \
        flow["response assessed"]
    assert flow["response assessed"] == flow["CR"] + flow["CRi"] + flow["refractory (off pathway)"]
    assert flow["consolidated"] - flow["died during consolidation"] - flow["relapsed during consolidation"] == \
        flow["MRD tested before HSCT"]
    assert flow["MRD tested before HSCT"] - flow["MRD-positive (off pathway)"] - flow["no donor (off pathway)"] - \
        flow["declined HSCT (off pathway)"] - flow["relapsed while awaiting HSCT"] - flow["died while awaiting HSCT"] \
        == flow["transplanted"]


def test_post_transplant_events_follow_hsct_and_death_follows_relapse(base):
    patients = patients_table(simulate_trial(base, 2000, seed=13))
    for column in ("relapse_day", "nrm_day", "death_day", "agvhd_day", "cgvhd_day", "ltfu_day"):
        rows = patients[column].notna() & patients["hsct_day"].notna()
        assert (patients.loc[rows, column] >= patients.loc[rows, "hsct_day"]).all(), column
    assert not (patients["relapse_day"].notna() & patients["nrm_day"].notna()).any()
    relapsed = patients["relapse_day"].notna() & patients["death_day"].notna()
    assert (patients.loc[relapsed, "death_day"] >= patients.loc[relapsed, "relapse_day"]).all()
    agvhd = patients["agvhd_day"].notna()
    assert ((patients.loc[agvhd, "agvhd_day"] - patients.loc[agvhd, "hsct_day"]) <= 100).all()


def test_simpy_schedules_events_only_where_patients_share_transplant_slots(base, monkeypatch):
    import simpy

    steps = []
    step = simpy.Environment.step
    monkeypatch.setattr(simpy.Environment, "step", lambda env: (steps.append(env.now), step(env))[1])
    simulate_trial(base, 60, seed=3)
    assert steps == []                                    # background capacity: the timelines are the history
    finite = base.with_updates({"transplant.capacity": "finite", "transplant.slots": 1})
    history = simulate_trial(finite, 60, seed=3)
    transplanted = np.count_nonzero(history.exit_reason == EXIT_REASONS.index("transplanted"))
    # One enrollment per patient; per patient reaching a slot request: the process, the request, the grant,
    # and one timeout for the slot (HSCT needs none: nothing can happen during conditioning).
    assert transplanted > 10 and 60 + 4 * transplanted <= len(steps) <= 60 + 8 * 60
    admission = history.days["admission_day"]
    hsct = history.days["hsct_day"]
    done = ~np.isnan(hsct)
    assert np.allclose(hsct[done] - admission[done], finite.transplant.conditioning_days)


@pytest.mark.parametrize("path", ["base.toml", "mrd_retest.toml", "pessimistic.toml", "high_nrm.toml"])
def test_trials_simulated_together_equal_each_trial_simulated_alone(path):
    from sim.model.draws import DRAW_STREAMS
    from sim.model.pathway import simulate_trials
    from sim.model.streams import replicate_seeds
    from sim.study.runner import arm_models

    scenario = load_scenario(BASE.parent / path)
    models = arm_models(scenario)
    arms = ("design", "null", "alt")
    seeds = replicate_seeds(7, range(40, 70), DRAW_STREAMS)
    together = simulate_trials(scenario, 50, seeds, [models[arm] for arm in arms])
    assert len(together) == 30
    for s, histories in zip(seeds, together, strict=True):
        for arm, history in zip(arms, histories, strict=True):
            alone = simulate_trial(scenario, 50, 7, s.replicate, post_model=models[arm])
            assert history.draws.n_screened == alone.draws.n_screened
            for part in ("days", "post", "off"):
                a, b = getattr(history, part), getattr(alone, part)
                assert list(a) == list(b)
                for key in b:
                    assert np.array_equal(a[key], b[key], equal_nan=True), (path, arm, part, key)
            assert np.array_equal(history.exit_reason, alone.exit_reason)
            for field in alone.draws.__dataclass_fields__:
                a, b = np.asarray(getattr(history.draws, field)), np.asarray(getattr(alone.draws, field))
                assert np.array_equal(a, b, equal_nan=True), (path, field)
