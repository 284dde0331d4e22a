"""The sizing-study runner: reproducibility across jobs, chunking and resume; nested sample sizes;
type I error against the exact calculation; the sweep command end to end."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from support import NO_PRE_TRANSPLANT_RISK

from sim.cli.parser import main
from sim.scenario.schema import InputError, load_scenario
from sim.stats.estimators import wald_test
from sim.study.executors import LocalExecutor
from sim.study.oc import operating_characteristics, required_n
from sim.study.runner import Study, arm_models, chunk_ranges, finished_chunks, run_study, simulate_chunk

BASE = Path(__file__).resolve().parent.parent / "scenarios" / "base.toml"

EVERYONE_TRANSPLANTED = {**NO_PRE_TRANSPLANT_RISK, "post_transplant.ltfu_prob": 0.0}


@pytest.fixture(scope="module")
def base():
    return load_scenario(BASE)


def test_results_identical_for_any_jobs_and_chunk_size(base, tmp_path):
    study = Study(base, (20, 35), reps=24, seed=5, endpoints="all")
    one = run_study(study, tmp_path / "a", LocalExecutor(1), chunk_size=24)
    two = run_study(study, tmp_path / "b", LocalExecutor(2), chunk_size=5)
    three = run_study(study, tmp_path / "c", LocalExecutor(1), chunk_size=7)
    pd.testing.assert_frame_equal(one, two)
    pd.testing.assert_frame_equal(one, three)
    assert len(one) == 24 * 2 * 3          # replicates x n x arms (scenario, null twin, p1 twin)


def test_interrupted_run_resumes_to_identical_results(base, tmp_path):
    study = Study(base, (20, 40), reps=30, seed=9, endpoints="primary")
    full = run_study(study, tmp_path / "full", LocalExecutor(1), chunk_size=10)

    class Interrupted(Exception):
        pass

    def stop_after_two_chunks(k, seen=[]):  # noqa: B006 - counts calls within this test
        seen.append(k)
        if len(seen) == 3:  # the first call reports 0 already done
            raise Interrupted

    with pytest.raises(Interrupted):
        run_study(study, tmp_path / "resume", LocalExecutor(1), chunk_size=10, progress=stop_after_two_chunks)
    assert len(finished_chunks(tmp_path / "resume")) == 2
    resumed = run_study(study, tmp_path / "resume", LocalExecutor(1), chunk_size=10)
    pd.testing.assert_frame_equal(full, resumed)
    # A leftover temporary file from a killed write is ignored.
    (tmp_path / "resume" / "chunks" / ".reps-00000000-00000010.parquet.123.tmp").write_bytes(b"partial")
    pd.testing.assert_frame_equal(full, run_study(study, tmp_path / "resume", LocalExecutor(1), chunk_size=10))


def test_chunk_ranges_skip_done_replicates_and_never_overlap():
    assert chunk_ranges(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_ranges(10, 4, {(0, 4), (8, 10)}) == [(4, 8)]
    assert chunk_ranges(10, 3, {(2, 5)}) == [(0, 2), (5, 8), (8, 10)]


def test_different_study_in_same_folder_is_refused(base, tmp_path):
    run_study(Study(base, (20,), reps=4, seed=1, endpoints="primary"), tmp_path, LocalExecutor(1))
    with pytest.raises(InputError, match="different study"):
        run_study(Study(base, (20,), reps=4, seed=2, endpoints="primary"), tmp_path, LocalExecutor(1))
    other = base.with_updates({"donor.p_no_donor": 0.5})
    with pytest.raises(InputError, match="different study"):
        run_study(Study(other, (20,), reps=4, seed=1, endpoints="primary"), tmp_path, LocalExecutor(1))


def test_nested_sample_sizes_equal_separate_runs_and_agree_in_distribution(base):
    models = arm_models(base)
    nested = pd.DataFrame(simulate_chunk(Study(base, (25, 60), 40, 3, "primary"), models, 0, 40))
    alone = pd.DataFrame(simulate_chunk(Study(base, (25,), 40, 3, "primary"), models, 0, 40))
    pd.testing.assert_frame_equal(nested[nested["n"] == 25].reset_index(drop=True), alone)
    # Against independent trials (another seed): same power within 4 MCSE of the difference.
    reps = 600
    a = pd.DataFrame(simulate_chunk(Study(base, (25, 60), reps, 11, "primary"), models, 0, reps))
    b = pd.DataFrame(simulate_chunk(Study(base, (25,), reps, 12, "primary"), models, 0, reps))
    pa = a.query("n == 25 and arm == 'design'")["rfs_reject"].mean()
    pb = b.query("arm == 'design'")["rfs_reject"].mean()
    mcse = np.sqrt(pa * (1 - pa) / reps + pb * (1 - pb) / reps)
    assert abs(pa - pb) < 4 * mcse, (pa, pb, mcse)


def test_finite_capacity_simulates_each_sample_size_on_its_own(base):
    finite = base.with_updates({"transplant.capacity": "finite", "transplant.slots": 1})
    rows = pd.DataFrame(simulate_chunk(Study(finite, (15, 40), 3, 2, "primary"), arm_models(finite), 0, 3))
    alone = pd.DataFrame(simulate_chunk(Study(finite, (15,), 3, 2, "primary"), arm_models(finite), 0, 3))
    pd.testing.assert_frame_equal(rows[rows["n"] == 15].reset_index(drop=True), alone)


def _cloglog_critical_count(n: int, p0: float, alpha: float) -> int:
    """Smallest K (landmark survivors of n, no censoring) for which the cloglog Wald test rejects."""
    for k in range(n + 1):
        s = k / n
        greenwood = (n - k) / (n * k) if k else np.inf  # sum d/(n(n-d)) telescopes to (n-K)/(nK)
        if wald_test(s, greenwood, p0, alpha, "cloglog", n_eff=float(n)).reject:
            return k
    return n + 1


@pytest.mark.parametrize("n", [5, 40])
def test_type1_error_of_default_test_matches_exact_calculation(base, n):
    """Everyone transplanted, exponential risk, no loss to follow-up, landmark cutoff: the KM estimate
    is K/n, so the cloglog test's size is exactly P(Binomial(n, p0) >= its critical K).

    At n = 5 the small-sample rule matters: S = 1 is tested exactly (p = 0.55^5 = 0.0503, not rejected),
    so the size is 0; the old rule (z = +infinity at S = 1) rejected there and had size 0.0503 > alpha.
    """
    scenario = base.with_updates(EVERYONE_TRANSPLANTED)
    reps, a = 3000, scenario.analysis
    rows = pd.DataFrame(simulate_chunk(Study(scenario, (n,), reps, 4, "primary"), arm_models(scenario), 0, reps))
    null = rows[rows["arm"] == "null"]
    assert (null["n_transplanted"] == n).all()
    k = _cloglog_critical_count(n, a.p0, a.alpha)
    exact = float(stats.binom.sf(k - 1, n, a.p0))
    observed = null["rfs_reject"].mean()
    mcse = np.sqrt(exact * (1 - exact) / reps)
    assert abs(observed - exact) <= 4 * mcse, f"type I error {observed:.4f} vs exact {exact:.4f} (MCSE {mcse:.4f})"


def test_power_increases_with_effect_size(base):
    models_small = arm_models(base.with_updates({"post_transplant.relapse_incidence": 0.22}))
    models_large = arm_models(base.with_updates({"post_transplant.relapse_incidence": 0.12}))
    study = Study(base, (40,), 300, 6, "primary")
    small = pd.DataFrame(simulate_chunk(study, models_small, 0, 300)).query("arm == 'design'")
    large = pd.DataFrame(simulate_chunk(study, models_large, 0, 300)).query("arm == 'design'")
    diff = large["rfs_reject"].to_numpy(float) - small["rfs_reject"].to_numpy(float)
    assert diff.mean() > 4 * diff.std(ddof=1) / np.sqrt(diff.size)
    assert (diff >= 0).mean() > 0.95  # common random numbers: a better RFS rarely turns a rejection round


def test_operating_characteristics_against_direct_computation(base):
    models = arm_models(base)
    rows = pd.DataFrame(simulate_chunk(Study(base, (30, 50), 200, 8, "primary"), models, 0, 200))
    truths = {"design": {"rfs": 0.73, "itt": 0.5}, "null": {"rfs": 0.55, "itt": 0.4}}
    oc = operating_characteristics(rows, truths, ("rfs", "itt"))
    d = rows.query("n == 50 and arm == 'design'")
    r = oc.query("n == 50 and analysis == 'rfs'").iloc[0]
    assert r["power"] == pytest.approx(d["rfs_reject"].mean())
    assert r["power_mcse"] == pytest.approx(np.sqrt(r["power"] * (1 - r["power"]) / 200))
    assert r["bias"] == pytest.approx(d["rfs_est"].mean() - 0.73)
    assert r["empse"] == pytest.approx(d["rfs_est"].std(ddof=1))
    assert r["rmse"] == pytest.approx(np.sqrt(((d["rfs_est"] - 0.73) ** 2).mean()))
    covered = ((d["rfs_lower"] <= 0.73) & (d["rfs_upper"] >= 0.73)).mean()
    assert r["coverage"] == pytest.approx(covered)
    assert r["type1"] == pytest.approx(rows.query("n == 50 and arm == 'null'")["rfs_reject"].mean())
    assert r["power_alt"] == pytest.approx(rows.query("n == 50 and arm == 'alt'")["rfs_reject"].mean())
    assert r["transplanted_p50"] == np.median(d["n_transplanted"])
    assert r["duration_months_p90"] == pytest.approx(np.quantile(d["duration_months"], 0.9))
    sizes = required_n(oc, (0.01, 0.999))
    assert sizes["required_n"].iloc[0] == 30 and np.isnan(sizes["required_n"].iloc[1])
    shuffled = rows.sample(frac=1.0, random_state=1).assign(arm=lambda f: f["arm"].astype("category"))
    pd.testing.assert_frame_equal(operating_characteristics(shuffled, truths, ("rfs", "itt")), oc, check_exact=True)


def test_sweep_command_writes_every_output(tmp_path, capsys):
    out = tmp_path / "sweep"
    code = main(["sweep", "--n", "20:30:10", "--reps", "12", "--seed", "3", "--jobs", "1", "--chunk-size", "5",
                 "--out", str(out), "--quiet", "--endpoints", "all"])
    assert code == 0
    for name in ("oc.csv", "required_n.csv", "replicates.parquet", "power_curve.png", "manifest.json", "study.json"):
        assert (out / name).is_file(), name
    oc = pd.read_csv(out / "oc.csv")
    assert set(oc["n"]) == {20, 30}
    assert {"rfs", "itt", "os", "grfs", "crc", "os_enroll", "efs_enroll"} <= set(oc["analysis"])
    enrollment = oc[oc["analysis"].isin(["os_enroll", "efs_enroll"])]
    assert enrollment["true"].between(0.3, 1.0).all() and enrollment["mean"].notna().all()
    assert {"power_mcse", "type1_mcse", "bias_mcse", "coverage_mcse", "halfwidth_p90_mcse"} <= set(oc.columns)
    replicates = pd.read_parquet(out / "replicates.parquet")
    assert len(replicates) == 12 * 2 * 3
    assert "power" in capsys.readouterr().out


@pytest.mark.parametrize("args", [
    ["--n", "0"], ["--reps", "-5"], ["--reps", "0"], ["--backend", "spark"], ["--n", "30:20:10"],
    ["--jobs", "0"], ["--target-power", "1.5"],
])
def test_bad_sweep_arguments_exit_2_without_writing(tmp_path, args):
    out = tmp_path / "bad"
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "--out", str(out), "--quiet", *args])
    assert exc.value.code == 2
    assert not out.exists()


def test_unreachable_scheduler_exits_2_without_writing(tmp_path, capsys):
    out = tmp_path / "bad"
    code = main(["sweep", "--n", "20", "--reps", "2", "--out", str(out), "--quiet", "--backend", "dask",
                 "--scheduler", "tcp://127.0.0.1:9"])
    assert code == 2
    assert "cannot connect" in capsys.readouterr().err
    assert not out.exists()
    assert main(["sweep", "--n", "20", "--reps", "2", "--out", str(out), "--backend", "dask"]) == 2
    assert not out.exists()


def test_landmark_cutoff_gives_full_follow_up_in_sweep_rows(base):
    scenario = base.with_updates({"post_transplant.ltfu_prob": 0.0})
    rows = pd.DataFrame(simulate_chunk(Study(scenario, (30,), 20, 1, "primary"), arm_models(scenario), 0, 20))
    # No loss to follow-up and a landmark cutoff: every transplanted patient is evaluable at 18 months.
    assert (rows["n_evaluable"] == rows["n_transplanted"]).all()
    assert (rows["duration_months"] > scenario.analysis.landmark_months).all()


@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_keeps_finished_chunks_and_rerun_resumes_to_identical_results(tmp_path, jobs):
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "run_sim.py", "sweep", "--n", "20:60:20", "--reps", "300", "--chunk-size", "10",
               "--jobs", str(jobs), "--endpoints", "primary", "--quiet"]
    out = tmp_path / "interrupted"
    # Ctrl-C reaches the run even when this test process was started in the background (which ignores SIGINT,
    # and a child inherits that): the child starts with the default disposition, so Python installs its handler.
    run = subprocess.Popen([*command, "--out", str(out)], cwd=root, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list((out / "chunks").glob("*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=60)
    if run.returncode == 0:
        pytest.skip("the run finished before it could be interrupted")
    assert run.returncode == 130 and "rerun the same command to resume" in stderr
    assert "Traceback" not in stderr, stderr  # the worker pool shut down cleanly
    kept = len(list((out / "chunks").glob("*.parquet")))
    assert 0 < kept < 30
    assert subprocess.run([*command, "--out", str(out)], cwd=root, capture_output=True).returncode == 0
    assert subprocess.run([*command, "--out", str(tmp_path / "whole")], cwd=root, capture_output=True).returncode == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out / "replicates.parquet"),
                                  pd.read_parquet(tmp_path / "whole" / "replicates.parquet"))
