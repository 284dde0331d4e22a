"""Robustness: extreme accepted input runs in bounded time and memory (or the schema refuses it, saying the
limit); output folders that are files, unwritable, foreign, corrupt or on a full disk give exit 2 and never a
half-written folder a rerun trusts; results are never replaced by fewer replicates or a different study; every
number printed or written is finite or has its reason beside it.

Each test here failed on the code before these fixes (checked by reverting them).
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fuzzing import output_problems
from support import UNLINKED_GVHD

from sim.cli import parser as cli
from sim.model.pathway import simulate_trial
from sim.scenario import calibrate as cal
from sim.scenario.schema import DAYS_PER_MONTH, ScenarioError, load_scenario
from sim.study import provenance, runner
from sim.study.resources import MAX_MONTHS, monthly_use, patient_resources

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "scenarios" / "base.toml"
# The quadrature of the unlinked model is what the calibration regressions below are about.
UNLINKED = [f"{key}={value}" for key, value in UNLINKED_GVHD.items()]
SWEEP = ["sweep", "--n", "5", "10", "--reps", "4", "--chunk-size", "2", "--seed", "3", "--jobs", "1", "--quiet",
         "--endpoints", "primary"]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    status = cli.main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _small_itt_truth(patch: pytest.MonkeyPatch) -> None:
    from sim.study import truth

    real = truth.enrollment_truths
    patch.setattr(truth, "enrollment_truths", lambda scenario, models, seed: real(scenario, models, seed, 5000, 5000))


def _no_figures(patch: pytest.MonkeyPatch) -> None:
    from sim.report import study_figures, sweep_report

    def stub_report(out: Path, design=None) -> Path:
        provenance.write_atomically(out, {"report.html": "<html>report</html>"})
        return out / "report.html"

    patch.setattr(study_figures, "power_figure", lambda *args, **kwargs: b"\x89PNG figure")
    patch.setattr(sweep_report, "write_sweep_report", stub_report)


@pytest.fixture
def small_itt_truth(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ITT truth from 5,000 instead of 200,000 patients: these tests are about files, not that number."""
    _small_itt_truth(monkeypatch)


@pytest.fixture
def fast_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sweeps about files and folders: a small ITT truth cohort, and no figures or report to draw."""
    _small_itt_truth(monkeypatch)
    _no_figures(monkeypatch)


@pytest.fixture(scope="module")
def clean_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished sweep (SWEEP), to copy and damage."""
    out = tmp_path_factory.mktemp("clean") / "sweep"
    with pytest.MonkeyPatch.context() as patch:
        _small_itt_truth(patch)
        _no_figures(patch)
        assert cli.main([*SWEEP, "--out", str(out)]) == 0
    return out


def copy_of(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "o"))


# --------------------------------------------------------------------------- bounded work for accepted input


@pytest.mark.parametrize(("item", "allowed"), [
    ("accrual.screen_fail_prob=0.9999999999999999", "<= 0.99"),          # used to allocate exabytes
    ("accrual.screened_per_site_month=1e-06", ">= 0.001"),               # used to build 10^7 forecast months
    ("analysis.landmark_months=0.01", ">= 1.0"),
    ("post_transplant.relapse_shape=1e-05", ">= 0.05"),
    ("blinatumomab.vial_ug=1e-300", ">= 0.01"),                          # vials per bag overflowed to inf
])
def test_values_that_cannot_run_in_bounded_time_are_refused_with_the_range(item: str, allowed: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(BASE, [item])
    assert str(info.value).startswith(f"--set {item}: "), info.value
    assert allowed in str(info.value)


def test_slowest_accepted_accrual_gives_a_bounded_forecast_with_whole_totals() -> None:
    scenario = load_scenario(BASE, ["accrual.screened_per_site_month=0.001", "accrual.n_sites=1",
                                    "accrual.screen_fail_prob=0.99"])
    history = simulate_trial(scenario, 4, seed=1)
    assert history.draws.enroll_day[-1] / DAYS_PER_MONTH > 10 * MAX_MONTHS   # a trial of millennia
    use = monthly_use(history)
    assert len(use) == MAX_MONTHS
    per_patient = patient_resources(history)
    assert use["bed_days_transplant"].sum() == pytest.approx((per_patient["hsct_bed_end"]
                                                              - per_patient["hsct_bed_start"]).sum())
    assert use["mrd_assays"].sum() == per_patient[["mrd1_sample_day", "mrd2_sample_day"]].notna().sum().sum()
    assert use["blinatumomab_bags"].sum() == per_patient["blina_bags"].sum()


def test_null_twin_of_an_early_landmark_with_steep_hazards() -> None:
    # Regression: the factor (about e^36) was beyond the bracket e^+-30 and brentq failed.
    scenario = load_scenario(BASE, ["analysis.landmark_months=1", "post_transplant.relapse_shape=10",
                                    "post_transplant.nrm_shape=10", "post_transplant.incidence_landmark_months=36"])
    models = runner.arm_models(scenario)
    assert cal.rfs(models["null"], DAYS_PER_MONTH) == pytest.approx(scenario.analysis.p0, abs=1e-10)
    assert models["null"].relapse_cumhaz / models["null"].nrm_cumhaz == pytest.approx(
        models["design"].relapse_cumhaz / models["design"].nrm_cumhaz, rel=1e-12)


def test_null_twin_of_a_tiny_hazard_far_from_its_landmark() -> None:
    scenario = load_scenario(BASE, ["analysis.landmark_months=1", "post_transplant.incidence_landmark_months=600",
                                    "post_transplant.horizon_months=600", "post_transplant.relapse_shape=10",
                                    "post_transplant.nrm_shape=10", "post_transplant.relapse_incidence=1e-6",
                                    "post_transplant.nrm_incidence=0", "post_transplant.cgvhd_incidence=0.1"])
    models = runner.arm_models(scenario)
    assert cal.rfs(models["null"], DAYS_PER_MONTH) == pytest.approx(scenario.analysis.p0, abs=1e-10)
    assert models["null"].nrm_cumhaz == 0.0


def test_steep_unequal_shapes_with_hazard_ratios_calibrate() -> None:
    # Regression: the nested solve gave up ("no hazard reproduces") when a trial relapse hazard left no room
    # for the NRM target, instead of treating that hazard as too large.
    scenario = load_scenario(BASE, [
        "post_transplant.relapse_incidence=0.3", "post_transplant.nrm_incidence=0.6",
        "post_transplant.relapse_shape=0.05", "post_transplant.nrm_shape=10",
        "post_transplant.relapse_hr_mrd_positive=100", "post_transplant.incidence_landmark_months=1.5",
        "post_transplant.horizon_months=120", "post_transplant.cgvhd_incidence=0",
        "mrd.positive_action=transplant", "mrd.mfc.p_negative_after_induction=0.12",
        "mrd.mfc.p_lose_negativity=0", "mrd.mfc.p_convert_to_negative=0",
        "donor.p_haplo=1", "donor.p_sibling=0", "donor.p_unrelated=0", *UNLINKED])
    model = cal.calibrate(scenario)
    tau = model.tau_days
    assert cal.relapse_incidence(model, tau) == pytest.approx(0.3, abs=1e-8)
    assert cal.nrm_incidence(model, tau) == pytest.approx(0.6, abs=1e-8)


def test_competing_hazard_a_thousand_times_stronger_calibrates_quickly_and_correctly() -> None:
    # Regression: with NRM ~10^5 times the relapse hazard, exp(-H_nrm) is a narrow peak at the start of the
    # relapse integral that quadrature missed; the solve then wandered for a minute and refused.
    scenario = load_scenario(BASE, [
        "post_transplant.relapse_incidence=1e-5", "post_transplant.nrm_incidence=0.9999895",
        "post_transplant.relapse_shape=0.0500001", "post_transplant.nrm_shape=0.05",
        "post_transplant.nrm_hr_unrelated=0.01", "donor.p_haplo=0.45", "donor.p_sibling=0", "donor.p_unrelated=0.55",
        "post_transplant.cgvhd_incidence=0", "post_transplant.incidence_landmark_months=180",
        "post_transplant.horizon_months=180", *UNLINKED])
    model = cal.calibrate(scenario)
    tau = model.tau_days
    assert cal.relapse_incidence(model, tau) == pytest.approx(1e-5, abs=1e-12)
    assert cal.nrm_incidence(model, tau) == pytest.approx(0.9999895, abs=1e-9)
    # Independent: the shapes are equal to 2e-6, so each subgroup's closed form a / (a + b) (1 - e^-(a+b)) holds.
    total = 0.0
    for g in model.groups:
        a, b = float(model.relapse_H(tau, g)), float(model.nrm_H(tau, g))
        total += model.weights[g] * a / (a + b) * -np.expm1(-(a + b))
    assert total == pytest.approx(1e-5, rel=1e-4)


def test_chronic_gvhd_beyond_its_limit_is_refused_with_the_limit_in_message_and_reference(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(["trial", "--n", "5", "--out", str(tmp_path / "o"), "--set",
                          "post_transplant.cgvhd_incidence=1"], capsys)
    assert status == 2
    limit = cal.cgvhd_maximum(cal.calibrate(load_scenario(BASE, UNLINKED)))
    assert f"post_transplant.cgvhd_incidence = 1.0: at most {limit:.4f} is achievable" in err
    assert "alive without relapse" in err
    assert f"{limit:.4f} with the values of" in (ROOT / "scenarios" / "README.md").read_text(encoding="utf-8")


def test_acute_gvhd_within_1e_12_of_1_calibrates() -> None:
    # Regression: refused with a message about chronic GVHD.
    model = cal.calibrate(load_scenario(BASE, ["post_transplant.agvhd_2_4_day100=0.9999999999999999"]))
    assert cal.agvhd_incidence(model) == pytest.approx(1.0, abs=1e-12)


def test_grid_and_replicate_limits_are_checked_before_any_list_is_built() -> None:
    import argparse

    for text in ("1:100000:1", "20000", "1:1000:1"):
        with pytest.raises(argparse.ArgumentTypeError):
            cli._n_spec(text)
    assert cli._n_spec("20:100:10") == list(range(20, 101, 10))
    with pytest.raises(argparse.ArgumentTypeError, match="at most 100,000"):
        cli._replicates("99999999999")
    with pytest.raises(argparse.ArgumentTypeError, match="at least 2 replicates"):
        cli._replicates("1")  # one replicate has no Monte Carlo standard error (compare printed nan)
    with pytest.raises(argparse.ArgumentTypeError, match="at most 10,000 patients"):
        cli._sample_size("10001")
    with pytest.raises(argparse.ArgumentTypeError, match="4 per core"):
        cli._jobs(str(4 * (os.cpu_count() or 1) + 1))


@pytest.mark.parametrize(("argv", "expected"), [
    (["sweep", "--reps", "20000", "--n", "1:100:1"], "2,000,000 replicate rows; at most 1,000,000"),
    (["compare", "--reps", "100000", "--n", "5", "10", "20", "30", "--variant", "v:donor.p_no_donor=0.2",
      "--variant", "w:donor.p_no_donor=0.3"], "x 4 sample sizes x 3 scenarios = 1,200,000"),
    (["sensitivity", "--vary", "response.p_cr=0:1:1000"], "K = 1000; at most 50 values"),
])
def test_studies_too_large_for_memory_are_refused_before_any_work(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> None:
    status, _, err = run([*argv, "--out", str(tmp_path / "o")], capsys)
    assert status == 2 and expected in err, err
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- describe: all or nothing


def test_describe_prints_nothing_when_it_refuses_late(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from sim.study import design

    def fail(*args, **kwargs):
        raise ScenarioError("planted failure after the truths were computed")

    monkeypatch.setattr(design, "normal_approx_transplanted", fail)
    status, out, err = run(["describe"], capsys)
    assert (status, out) == (2, "")
    assert "planted failure" in err


def test_describe_says_why_there_is_no_sample_size(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(["describe", "--set", "analysis.p0=0.8", "--set", "analysis.p1=0.9"], capsys)
    assert status == 0
    assert "against true RFS 0.730  : not computable: RFS 0.730 is not above p0 = 0.8" in out
    assert output_problems(Path("/nonexistent"), out) == []


# --------------------------------------------------------------------------- numbers with reasons


def test_trial_without_transplants_gives_reasons_not_nan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    status, stdout, _ = run(["trial", "--n", "8", "--out", str(out), "--set", "induction.p_death=1"], capsys)
    assert status == 0
    assert "median follow-up after HSCT" in stdout and "not evaluable: nobody transplanted by the data cutoff" in stdout
    assert "primary test (cloglog): no test statistic (0 transplanted, fewer than analysis.min_transplanted" in stdout
    assert output_problems(out, stdout) == []


def test_median_follow_up_not_reached_has_its_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    status, stdout, _ = run(["trial", "--n", "30", "--seed", "2", "--out", str(out), "--set",
                             "post_transplant.relapse_incidence=0.999", "--set", "post_transplant.nrm_incidence=0",
                             "--set", "post_transplant.cgvhd_incidence=0", "--set", "post_transplant.ltfu_prob=0"],
                            capsys)
    assert status == 0
    table = pd.read_csv(out / "endpoints.csv", keep_default_na=False, na_values=[""]).set_index("endpoint")
    row = table.loc["median follow-up after HSCT"]
    assert np.isnan(row["estimate"]) and row["not_evaluable_reason"].startswith("no transplanted patient was censored")
    assert "primary test (cloglog): no test statistic (no patient event-free at the landmark (S = 0)" in stdout
    assert output_problems(out, stdout) == []


def test_sweep_prints_n_a_with_its_reason_where_no_estimate_exists(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], small_itt_truth: None) -> None:
    out = tmp_path / "o"
    status, stdout, _ = run([*SWEEP, "--out", str(out), "--set", "induction.p_death=1"], capsys)
    assert status == 0
    assert "n/a: fewer than 2 replicates had an estimate" in stdout
    assert "n/a" in (out / "report.html").read_text(encoding="utf-8")
    assert output_problems(out, stdout) == []


# --------------------------------------------------------------------------- output folders


@pytest.mark.parametrize("command", ["trial", "sweep"])
def test_outputs_are_readable_by_others_like_any_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      command: str, small_itt_truth: None) -> None:
    out = tmp_path / "o"
    old = os.umask(0o022)
    try:
        argv = [*SWEEP, "--out", str(out)] if command == "sweep" else ["trial", "--n", "10", "--out", str(out)]
        assert run(argv, capsys)[0] == 0
    finally:
        os.umask(old)
    modes = {str(p.relative_to(out)): p.stat().st_mode & 0o777 for p in out.rglob("*") if p.is_file()}
    assert {Path(name).suffix for name in modes} >= ({".csv", ".json", ".png", ".html", ".parquet"}
                                                     if command == "sweep" else {".csv", ".json", ".png"})
    assert set(modes.values()) == {0o644}, modes


def test_default_output_folder_follows_the_scenario_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch, fast_sweep: None) -> None:
    monkeypatch.chdir(tmp_path)
    pessimistic = str(ROOT / "scenarios" / "pessimistic.toml")
    assert run([*SWEEP, "--scenario", pessimistic], capsys)[0] == 0
    assert run(["trial", "--n", "5", "--scenario", pessimistic], capsys)[0] == 0
    assert run([*SWEEP, "--scenario", str(BASE)], capsys)[0] == 0
    assert {p.name for p in (tmp_path / "results").iterdir()} == {"pessimistic", "pessimistic-trial", "base"}
    assert json.loads((tmp_path / "results" / "pessimistic" / "manifest.json").read_text())["scenario"]["name"] \
        == "pessimistic"


def test_different_study_refusal_says_what_differs(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   clean_sweep: Path) -> None:
    out = copy_of(clean_sweep, tmp_path)
    before = files(out)
    status, _, err = run([*SWEEP, "--out", str(out), "--seed", "4", "--set", "donor.p_no_donor=0.3"], capsys)
    assert status == 2
    assert "different study (seed 3 there, 4 now; scenario donor.p_no_donor = 0.03 there, 0.3 now)" in err, err
    status, _, err = run([*SWEEP[:2], "5", "--out", str(out), *SWEEP[4:]], capsys)
    assert status == 2 and "n grid [5, 10] there, [5] now" in err, err
    assert files(out) == before


def test_more_replicates_in_the_folder_than_asked_are_never_replaced_by_fewer(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_sweep: Path, fast_sweep: None) -> None:
    out = copy_of(clean_sweep, tmp_path)
    before = files(out)
    status, _, err = run([*SWEEP, "--out", str(out), "--reps", "2"], capsys)
    assert status == 2
    assert "holds the results of 4 replicates; --reps 2 would replace them with fewer" in err
    assert f"python run_sim.py report {out}" in err and "--reps 4 or more" in err
    assert files(out) == before
    assert run([*SWEEP, "--out", str(out), "--reps", "6"], capsys)[0] == 0   # extending is fine


@pytest.mark.parametrize("kind", ["is a file", "below a file", "not writable"])
@pytest.mark.parametrize("command", ["trial", "sweep"])
def test_output_path_that_cannot_be_a_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     kind: str, command: str) -> None:
    out = tmp_path / "o"
    if kind == "is a file":
        out.write_text("mine")
        expected = "exists and is a file, not a folder"
    elif kind == "below a file":
        (tmp_path / "f").write_text("mine")
        out = tmp_path / "f" / "o"
        expected = "which is a file, not a folder"
    else:
        if not Path("/sys").is_dir() or os.access("/sys", os.W_OK) and not Path("/sys/kernel").is_dir():
            pytest.skip("needs a read-only /sys")
        out = Path("/sys/blina-hsct-sim-test")
        expected = "cannot write there"
    before = files(tmp_path)
    argv = [*SWEEP, "--out", str(out)] if command == "sweep" else ["trial", "--n", "5", "--out", str(out)]
    status, _, err = run(argv, capsys)
    assert status == 2 and f"error: {out}: " in err and expected in err, err
    assert files(tmp_path) == before


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe garbage", b"[1, 2]", "folder"])
def test_corrupt_study_identity_is_refused_as_a_different_study(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                content: bytes | str) -> None:
    out = tmp_path / "o"
    out.mkdir()
    if content == "folder":
        (out / "study.json").mkdir()
    else:
        (out / "study.json").write_bytes(content)
    before = files(tmp_path)
    status, _, err = run([*SWEEP, "--out", str(out)], capsys)
    assert status == 2 and "holds results of a different study, or files this tool did not write" in err, err
    assert files(tmp_path) == before and not (out / "chunks").exists()


@pytest.mark.parametrize("command", ["trial", "sweep"])
def test_folder_of_foreign_files_is_refused_without_touching_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "oc.csv").write_text("my own table\n")
    (out / "notes.txt").write_text("mine\n")
    argv = [*SWEEP, "--out", str(out)] if command == "sweep" else ["trial", "--n", "5", "--out", str(out)]
    status, _, err = run(argv, capsys)
    assert status == 2 and "holds files this tool did not write (notes.txt, oc.csv)" in err, err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "oc.csv"]


def test_trial_into_a_sweep_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              clean_sweep: Path) -> None:
    out = copy_of(clean_sweep, tmp_path)
    before = files(out)
    status, _, err = run(["trial", "--n", "5", "--out", str(out)], capsys)
    assert status == 2 and "holds the results of a sweep run; a trial would mix its files" in err
    assert files(out) == before


def test_comparison_of_other_scenarios_is_refused_and_a_new_trial_says_it_replaced_the_old(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], fast_sweep: None) -> None:
    out = tmp_path / "c"
    compare = ["compare", "--variant", "v:donor.p_no_donor=0.3", "--n", "5", "--reps", "2", "--jobs", "1",
               "--endpoints", "primary", "--out", str(out)]
    assert run(compare, capsys)[0] == 0
    before = files(out)
    status, _, err = run([*compare, "--variant", "w:donor.p_no_donor=0.2"], capsys)
    assert status == 2 and "holds a compare of base, v (scenarios); this one is of base, v, w" in err, err
    assert files(out) == before
    trial = tmp_path / "t"
    assert run(["trial", "--n", "5", "--out", str(trial)], capsys)[2] == ""
    assert run(["trial", "--n", "6", "--out", str(trial)], capsys)[2] == \
        f"note: replaced the files of the previous trial in {trial}/ (seed 7, n 5)\n"


def test_compare_refusal_names_the_variant_it_comes_from(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(["compare", "--variant", "v:post_transplant.cgvhd_incidence=1", "--n", "5", "--reps", "2",
                          "--out", str(tmp_path / "o")], capsys)
    assert status == 2
    assert err.startswith("error: scenarios/base.toml with --variant v:post_transplant.cgvhd_incidence=1 (scenario "
                          "'v'): post_transplant.cgvhd_incidence = 1.0: at most"), err
    assert not (tmp_path / "o").exists()


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_during_a_trial_exits_2_and_leaves_no_partial_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provenance, "_write", _disk_full)
    out = tmp_path / "o"
    status, _, err = run(["trial", "--n", "5", "--out", str(out)], capsys)
    assert status == 2 and f"error: {out}: cannot write there (No space left on device)" in err, err
    assert "Traceback" not in err
    assert list(out.iterdir()) == []


def test_full_disk_during_a_sweep_and_a_rerun_give_the_results_of_a_clean_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, clean_sweep: Path,
        fast_sweep: None) -> None:
    real = provenance._write
    calls = []

    def fills_up(handle, data: bytes) -> None:  # every chunk file (encoded by a worker) is written here
        if data.startswith(b"PAR1"):
            calls.append(handle.name)
            if len(calls) == 2:  # the second chunk file: the disk is full
                handle.write(data[:12])
                raise OSError(errno.ENOSPC, "No space left on device")
        real(handle, data)

    out = tmp_path / "o"
    with monkeypatch.context() as patch:
        patch.setattr(provenance, "_write", fills_up)
        status, _, err = run([*SWEEP, "--out", str(out)], capsys)
    assert status == 2 and "No space left on device" in err and "Traceback" not in err
    assert not [p for p in out.rglob("*") if p.name.startswith(".")], "temporary files left behind"
    assert run([*SWEEP, "--out", str(out)], capsys)[0] == 0
    assert files(out) == files(clean_sweep) | {"manifest.json": (out / "manifest.json").read_bytes()}


def test_real_write_failure_in_a_subprocess_exits_2(tmp_path: Path) -> None:
    def small_files() -> None:  # every file above 20 kB fails to grow (EFBIG), as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    out = tmp_path / "o"
    result = subprocess.run([sys.executable, "run_sim.py", "trial", "--n", "30", "--out", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, preexec_fn=small_files, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {out}: cannot write there (File too large)"), result.stderr
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("damage", ["truncated", "not parquet", "other columns", "fewer rows"])
def test_damaged_chunk_is_recomputed_not_loaded(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               damage: str, clean_sweep: Path, fast_sweep: None) -> None:
    out = copy_of(clean_sweep, tmp_path)
    chunk = sorted((out / "chunks").glob("*.parquet"))[1]
    if damage == "truncated":
        chunk.write_bytes(chunk.read_bytes()[:-200])
    elif damage == "not parquet":
        chunk.write_text("not parquet")
    elif damage == "other columns":
        pd.DataFrame({"replicate": [2], "x": [1.0]}).to_parquet(chunk)
    else:
        pd.read_parquet(chunk).iloc[:-1].to_parquet(chunk)
    status, _, err = run([*SWEEP, "--out", str(out)], capsys)
    assert status == 0, err
    assert f"note: {chunk}: unreadable or incomplete chunk file; its replicates are computed again" in err
    assert files(out) == files(clean_sweep) | {"manifest.json": (out / "manifest.json").read_bytes()}


def test_report_of_a_damaged_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           clean_sweep: Path) -> None:
    out = copy_of(clean_sweep, tmp_path)
    (out / "oc.csv").write_text("n,analysis\n")
    status, _, err = run(["report", str(out)], capsys)
    assert status == 2 and "cannot be read as the results of a sweep" in err
    (out / "manifest.json").write_text("{")
    status, _, err = run(["report", str(out)], capsys)
    assert status == 2 and "manifest.json this tool did not write" in err


def test_study_differences_names_keys_seed_grid_and_endpoints() -> None:
    scenario = load_scenario(BASE)
    a = runner.Study(scenario, (20, 30), 10, 1, "all").identity()
    b = runner.Study(scenario.with_updates({"response.p_cr": 0.7, "analysis.p0": 0.5}), (20,), 10, 2,
                     "primary").identity()
    text = runner.study_differences(json.loads(json.dumps(a)), b)
    assert text == ("seed 1 there, 2 now; n grid [20, 30] there, [20] now; endpoints all there, primary now; "
                    "scenario analysis.p0 = 0.55 there, 0.5 now; scenario response.p_cr = 0.85 there, 0.7 now")


def test_a_large_frame_written_in_slices_reads_back_as_written_whole(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Slices of 7 rows: categories (one unused, one missing value), NaN, flags, text and integers cross slices.
    monkeypatch.setattr(provenance, "FRAME_SLICE_ROWS", 7)
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({
        "replicate": np.arange(30), "est": np.where(rng.random(30) < 0.2, np.nan, rng.random(30)),
        "reject": rng.random(30) < 0.5, "arm": pd.Categorical(rng.choice(["design", "null", None], 30),
                                                              categories=["design", "null", "alt"]),
        "reason": rng.choice(["", "too few"], 30)})
    provenance.write_parquet_atomically(frame, tmp_path / "sliced.parquet")
    frame.to_parquet(tmp_path / "whole.parquet", index=False)
    import pyarrow.parquet as pq

    assert pq.read_metadata(tmp_path / "sliced.parquet").num_row_groups == 5   # it was written in slices
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "sliced.parquet"),
                                  pd.read_parquet(tmp_path / "whole.parquet"))
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "sliced.parquet"), frame)
