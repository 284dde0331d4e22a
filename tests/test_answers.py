"""Answers a steering committee can act on: the design-alternative twin, the headline and its flags, the
required n refined to the patient, derived targets, and the patient flow known at the data cutoff."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import NO_PRE_TRANSPLANT_RISK

from sim.analysis.datasets import patient_flow
from sim.analysis.endpoints import observe
from sim.cli.parser import main
from sim.model.pathway import simulate_trial
from sim.report.headline import ANTI_CONSERVATIVE, CALENDAR_CAP, CONSERVATIVE, EDGE, LATE, OVERRIDE, headline
from sim.scenario.calibrate import rfs
from sim.scenario.schema import DAYS_PER_MONTH, ScenarioError, load_scenario
from sim.study.design import p_reach_hsct
from sim.study.executors import LocalExecutor
from sim.study.oc import refinement_ns, required_n
from sim.study.runner import Study, arm_models, simulate_chunk
from sim.study.sizing import run_sizing
from sim.study.targets import apply_targets, load_with_targets
from sim.study.truth import true_values

BASE = Path(__file__).resolve().parent.parent / "scenarios" / "base.toml"


@pytest.fixture(scope="module")
def base():
    return load_scenario(BASE)


# --------------------------------------------------------------------------- the design-alternative twin


def test_alternative_twin_has_true_rfs_p1_and_its_km_estimate_agrees(base):
    """Calibration: the p1 twin's true 18-month RFS is p1; simulation: its KM estimate is unbiased (4 MCSE)."""
    scenario = base.with_updates({**NO_PRE_TRANSPLANT_RISK, "post_transplant.ltfu_prob": 0.0})
    models = arm_models(scenario)
    landmark = scenario.analysis.landmark_months * DAYS_PER_MONTH
    assert rfs(models["alt"], landmark) == pytest.approx(scenario.analysis.p1, abs=1e-10)
    assert rfs(models["null"], landmark) == pytest.approx(scenario.analysis.p0, abs=1e-10)
    reps, n = 1500, 60
    rows = pd.DataFrame(simulate_chunk(Study(scenario, (n,), reps, 5, "rfs"), models, 0, reps))
    alt = rows[rows["arm"] == "alt"]["rfs_est"].to_numpy()
    design = rows[rows["arm"] == "design"]["rfs_est"].to_numpy()
    mcse = alt.std(ddof=1) / np.sqrt(reps)
    assert abs(alt.mean() - scenario.analysis.p1) < 4 * mcse, (alt.mean(), mcse)
    # The twin shares every random number: it differs from the scenario only through the hazards.
    assert rows.groupby("arm")["n_transplanted"].apply(tuple).nunique() == 1
    assert not np.array_equal(alt, design)


# --------------------------------------------------------------------------- required n to the patient


def _oc(ns, power, mcse=0.01):
    return pd.DataFrame({"n": ns, "analysis": "rfs", "power": power, "power_mcse": mcse,
                         "power_alt": power, "power_alt_mcse": mcse})


def test_refinement_covers_the_crossing_and_its_monte_carlo_range():
    oc = _oc([20, 40, 60, 80], [0.5, 0.7, 0.85, 0.95])
    extra = refinement_ns(oc, (0.8,))
    # power + 1.96 MCSE < 0.8 at 40 (0.72), power - 1.96 MCSE >= 0.8 from 60 (0.83): n = 41..59.
    assert extra == tuple(range(41, 60))
    assert refinement_ns(_oc([20, 21, 22], [0.5, 0.79, 0.9]), (0.8,)) == ()


def test_refined_required_n_lies_inside_the_grid_interval_and_is_reproducible(tmp_path):
    args = ["sweep", "--n", "20:80:30", "--reps", "120", "--seed", "4", "--jobs", "1", "--endpoints", "primary",
            "--target-power", "0.6", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--jobs", "2", "--chunk-size", "7", "--out", str(tmp_path / "b")]) == 0
    a, b = (pd.read_csv(tmp_path / d / "required_n.csv") for d in "ab")
    pd.testing.assert_frame_equal(a, b)
    grid = required_n(pd.read_csv(tmp_path / "a" / "oc.csv"), (0.6,))
    refined = a[a["at"] == "scenario"].iloc[0]
    g = grid.iloc[0]
    assert refined.required_n not in (20, 50, 80), "the answer should fall between grid points"
    assert g.required_n - 30 < refined.required_n <= g.required_n
    assert g.required_n_low - 30 < refined.required_n_low <= refined.required_n <= refined.required_n_high
    power = pd.read_csv(tmp_path / "a" / "power_all_n.csv").set_index("n")
    assert power.loc[int(refined.required_n), "power"] >= 0.6 > power.loc[int(refined.required_n) - 1, "power"]


def test_refinement_from_the_grids_own_trials_equals_simulating_the_refined_n(tmp_path, base):
    """The dense path (every n between grid points analysed with the grid's trials) gives exactly the rows that
    simulating the refined n after the grid gives, and the refinement's operating characteristics with them."""
    study = Study(base, (20, 50, 80), 40, 9, "primary")
    models = arm_models(base)
    truths = true_values(base, models, 9, itt=False)
    results = run_sizing(study, tmp_path / "o", LocalExecutor(1), lambda: truths, (0.5, 0.7), models, chunk_size=15)
    assert results.refined_in_grid and (tmp_path / "o" / "dense").is_dir() and not (tmp_path / "o" / "refine").exists()
    extra = tuple(sorted(int(n) for n in results.refined["n"].unique()))
    assert extra and set(extra) < set(range(21, 80))
    simulated = pd.DataFrame(simulate_chunk(Study(base, extra, 40, 9, "rfs", ("design", "alt")), models, 0, 40))
    dense = results.refined.astype({c: object for c in results.refined.select_dtypes("category")})
    pd.testing.assert_frame_equal(dense, simulated.astype({c: object for c in simulated.select_dtypes("O")}),
                                  check_dtype=False)
    assert (dense.dtypes.map(lambda d: d.kind) == simulated.dtypes.map(lambda d: d.kind)).all()
    # Resuming reads the same rows back from OUT/dense/; a chunk whose dense rows are lost is computed again.
    next(iter((tmp_path / "o" / "dense").glob("reps-*.parquet"))).unlink()
    told = []
    again = run_sizing(study, tmp_path / "o", LocalExecutor(1), lambda: truths, (0.5, 0.7), models, notify=told.append)
    assert len(told) == 1 and "computed again" in told[0]
    pd.testing.assert_frame_equal(again.oc_primary, results.oc_primary)
    pd.testing.assert_frame_equal(again.refined, results.refined)


# --------------------------------------------------------------------------- the headline and its flags


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("answers") / "sweep"
    assert main(["sweep", "--n", "20:100:40", "--reps", "150", "--seed", "3", "--jobs", "1", "--endpoints",
                 "primary", "--quiet", "--set", "response.p_cr=0.86", "--out", str(out)]) == 0
    return out


def test_manifest_splits_the_command_time_into_worker_wait_and_client_work(sweep_folder):
    timing = json.loads((sweep_folder / "manifest.json").read_text())["timing"]
    assert timing["worker_wait_seconds"] > 0 and timing["client_seconds"] > 0
    assert timing["worker_wait_seconds"] + timing["client_seconds"] == pytest.approx(timing["command_seconds"],
                                                                                     abs=0.02)
    assert timing["client_share"] == pytest.approx(timing["client_seconds"] / timing["command_seconds"], abs=0.02)
    before, after = timing["client_before_chunks_seconds"], timing["client_after_chunks_seconds"]
    assert 0 < before and 0 < after and before + after <= timing["client_seconds"] + 0.02


def test_headline_numbers_are_the_numbers_in_the_tables(sweep_folder):
    page = html.unescape((sweep_folder / "report.html").read_text())
    sizes = pd.read_csv(sweep_folder / "required_n.csv")
    power = pd.read_csv(sweep_folder / "power_all_n.csv").set_index("n")
    manifest = json.loads((sweep_folder / "manifest.json").read_text())
    sentence = re.search(r'<p class="headline">(.*?)</p>', page).group(1)
    assert sentence in manifest["headline"]
    own = sizes[(sizes["at"] == "scenario") & (sizes["target_power"] == 0.8)].iloc[0]
    n = int(own.required_n)
    expected = (f"enrolling {n} patients gives 80% power (Monte Carlo range {own.required_n_low:.0f}-"
                f"{own.required_n_high:.0f} patients); about {power.loc[n, 'transplanted_mean']:.0f} of the {n} are "
                f"transplanted; the final analysis comes about {power.loc[n, 'duration_months_p50']:.0f} months")
    assert expected in sentence
    assert f"RFS after HSCT is {manifest['truths']['design']['rfs']:.0%}" in sentence
    alt = sizes[(sizes["at"] == "p1") & (sizes["target_power"] == 0.8)].iloc[0]
    assert f"p1 = 75%, 80% power needs n = {alt.required_n:.0f} enrolled" in sentence
    assert "Sizing study: base, with --set response.p_cr=0.86" in page
    assert "p_cr = 0.86  # --set" in page          # the listing shows the value actually run


def _rows(ns, power, type1=0.04, evaluable=None, duration=30.0):
    evaluable = ns if evaluable is None else evaluable
    return pd.DataFrame({"n": ns, "analysis": "rfs", "power": power, "power_mcse": 0.005, "power_alt": power,
                         "power_alt_mcse": 0.005, "type1": type1, "type1_mcse": 0.002, "transplanted_mean": ns,
                         "evaluable_mean": evaluable, "duration_months_p10": duration,
                         "duration_months_p50": duration, "duration_months_p90": duration})


def _kinds(base, rows, overrides=(), **analysis):
    a = base.analysis.model_copy(update=analysis)
    sizes = pd.concat([required_n(rows, (0.8,), at="scenario"), required_n(rows, (0.8,), at="p1")])
    return {f.kind for f in headline(a, 0.73, rows, sizes, tuple(rows["n"]), overrides).flags}


def test_each_flag_appears_exactly_when_its_condition_holds(base):
    ns = [20, 40, 60, 80, 100]
    inside = _rows(ns, [0.3, 0.6, 0.82, 0.9, 0.95])
    assert _kinds(base, inside) == set()
    assert _kinds(base, _rows(ns, [0.3, 0.5, 0.6, 0.7, 0.79])) == {EDGE}                 # beyond the grid
    assert _kinds(base, _rows(ns, [0.85, 0.9, 0.93, 0.95, 0.97])) == {EDGE}              # at the smallest n
    assert _kinds(base, inside, overrides=("response.p_cr=0.8",)) == {OVERRIDE}
    flat = _rows(ns, [0.4, 0.55, 0.58, 0.58, 0.585], evaluable=[14, 24, 26, 26, 26])
    assert _kinds(base, flat, cutoff="calendar") == {EDGE, CALENDAR_CAP}
    assert CALENDAR_CAP not in _kinds(base, flat)                                         # landmark cutoff: no cap
    rising = _rows(ns, [0.3, 0.5, 0.6, 0.7, 0.79])
    assert CALENDAR_CAP not in _kinds(base, rising, cutoff="calendar")                    # still growing
    assert _kinds(base, _rows(ns, [0.3, 0.6, 0.82, 0.9, 0.95], type1=[0.05, 0.075, 0.06, 0.055, 0.05])) == \
        {ANTI_CONSERVATIVE}
    assert _kinds(base, _rows(ns, [0.3, 0.6, 0.82, 0.9, 0.95], type1=0.015)) == {CONSERVATIVE}
    late = _rows(ns, [0.3, 0.6, 0.82, 0.9, 0.95], duration=58.0)
    assert _kinds(base, late) == {LATE}
    assert LATE not in _kinds(base, _rows(ns, [0.3, 0.6, 0.82, 0.9, 0.95], duration=35.0))


def test_registry_calendar_cutoff_is_flagged_as_capping_power(tmp_path):
    """With the final analysis 36 months after the first enrollment, power hardly grows with n."""
    out = tmp_path / "cal"
    assert main(["sweep", "--n", "40:120:40", "--reps", "150", "--seed", "2", "--jobs", "1", "--endpoints", "primary",
                 "--quiet", "--set", "analysis.cutoff=calendar", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert "capped by the calendar cutoff" in manifest["headline"]
    assert "capped by the calendar cutoff" in (out / "report.html").read_text()


# --------------------------------------------------------------------------- derived targets


def test_targets_are_reached_by_moving_the_named_input(base):
    scenario, solved = apply_targets(base, ["target.p_reach_hsct=0.6", "target.mrd_negative_before_hsct=0.95"],
                                     "base")
    assert p_reach_hsct(scenario) == pytest.approx(0.6, abs=1e-9)   # both hold together, whatever the order
    a = scenario.assay
    negative = a.p_negative_after_induction * (1 - a.p_lose_negativity) + \
        (1 - a.p_negative_after_induction) * a.p_convert_to_negative
    assert negative == pytest.approx(0.95, abs=1e-9)
    assert [[c[0] for c in s.changes] for s in solved] == [["donor.p_no_donor"],
                                                           ["mrd.mfc.p_negative_after_induction"]]
    assert scenario.response == base.response and scenario.accrual == base.accrual
    scenario, _ = apply_targets(base, ["target.crc=0.8"], "base")
    assert scenario.response.p_cr + scenario.response.p_cri == pytest.approx(0.8)
    assert scenario.response.p_cr / scenario.response.p_cri == pytest.approx(0.85 / 0.07)
    scenario, _ = apply_targets(base, ["target.enrolled_per_month=1.0"], "base")
    acc = scenario.accrual
    assert acc.n_sites * acc.screened_per_site_month * (1 - acc.screen_fail_prob) == pytest.approx(1.0)


@pytest.mark.parametrize(("item", "message"), [
    ("target.p_reach_hsct=0.95", r"reachable: 0 to 0\.7"),
    ("target.mrd_negative_before_hsct=0.3", r"reachable: 0\.5 to 0\.97"),
    ("target.nonsense=1", "unknown target"),
    ("target.crc=high", "expected a number"),
])
def test_unreachable_or_unknown_targets_are_refused_with_the_reachable_range(base, item, message):
    with pytest.raises(ScenarioError, match=message):
        load_with_targets(BASE, [item])


def test_target_on_the_command_line_reaches_the_manifest(tmp_path, capsys):
    out = tmp_path / "t"
    assert main(["trial", "--n", "30", "--set", "target.crc=0.8", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert "response.p_cr moved from 0.85 to 0.739" in manifest["targets"][0]
    assert manifest["scenario"]["response"]["p_cr"] + manifest["scenario"]["response"]["p_cri"] == pytest.approx(0.8)


# --------------------------------------------------------------------------- the flow known at the cutoff


def test_trial_flow_counts_only_what_is_known_at_the_calendar_cutoff(base):
    scenario = base.with_updates({"analysis.cutoff": "calendar", "analysis.calendar_cutoff_months": 30.0})
    history = simulate_trial(scenario, 80, 3)
    obs = observe(history)
    flow = patient_flow(history, obs.cutoff_day).set_index("step")["count"]
    enrolled = int(np.count_nonzero(history.draws.enroll_day <= obs.cutoff_day))
    assert 0 < enrolled < 80
    assert flow["enrolled by the data cutoff"] == enrolled
    assert flow["transplanted"] == obs.hsct.size
    exits = flow.drop(["screened (to enroll all n, some after the cutoff)", "screen failure",
                       "enrolled by the data cutoff", "response assessed", "CR", "CRi", "consolidated",
                       "MRD tested before HSCT", "MRD-negative", "MRD-positive"])
    assert exits.sum() == enrolled          # every enrolled patient in exactly one box
    assert flow["still on the pathway at the data cutoff"] > 0
