"""Assurance studies: point masses give exactly the sweep's trials; assurance equals the exact binomial power
integrated over a beta prior; draws and results are independent of jobs, chunk size and resume; the
importance ranking finds the input that drives success; the command end to end and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats
from support import NO_PRE_TRANSPLANT_RISK

from sim.cli.parser import main
from sim.scenario.priors import load_uncertain
from sim.scenario.schema import InputError, ScenarioError
from sim.study.assurance import (
    AssuranceStudy,
    assurance_table,
    check_draws,
    draw_values,
    importance_table,
    point_models,
    uncertain_keys,
)
from sim.study.executors import LocalExecutor
from sim.study.runner import Study, arm_models, finished_chunks, run_study, simulate_chunk

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "scenarios" / "base.toml"
PRIMARY = ["rfs_est", "rfs_se", "rfs_lower", "rfs_upper", "rfs_stat", "rfs_p", "rfs_reject", "n_enrolled",
           "n_transplanted", "n_evaluable", "duration_months", "rfs_events"]
# Everyone transplanted, exponential relapse only (no NRM, no GVHD), no loss to follow-up, landmark cutoff and the
# exact binomial test: the number of 18-month survivors among n is Binomial(n, 1 - relapse incidence).
BINOMIAL = [f"{k}={v}" for k, v in NO_PRE_TRANSPLANT_RISK.items()] + [
    "post_transplant.nrm_incidence=0.0", "post_transplant.agvhd_2_4_day100=0.0", "post_transplant.agvhd_3_4_day100=0.0",
    "post_transplant.cgvhd_incidence=0.0", "post_transplant.ltfu_prob=0.0", "analysis.test=binomial",
    "analysis.cutoff=landmark"]


def _study(overrides: list[str], ns: tuple[int, ...], reps: int, seed: int) -> AssuranceStudy:
    point, priors = load_uncertain(BASE, overrides)
    return AssuranceStudy(point, priors, ns, reps, seed)


def test_point_masses_give_exactly_the_sweeps_trials():
    masses = ["post_transplant.relapse_incidence={ normal = [0.17, 0] }",            # after HSCT: calibration
              "accrual.screened_per_site_month={ uniform = [0.222, 0.222] }",          # before: the pathway
              "response.dirichlet={ p_cr = 85, p_cri = 7, p_early_death = 1, rest = 7 }"]   # a Dirichlet, not a mass
    study = _study(masses[:2], (20, 45), 12, seed=3)
    sweep = Study(study.scenario, study.ns, 12, 3, "rfs", ("design",))
    expected = pd.DataFrame(simulate_chunk(sweep, arm_models(study.scenario), 0, 12))[["replicate", "n", *PRIMARY]]
    rows = pd.DataFrame(study.chunk(point_models(study), 0, 12))
    for arm in ("prior", "point"):
        got = rows[rows["arm"] == arm][["replicate", "n", *PRIMARY]].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected)
    assert (rows["true_rfs"] == rows["true_rfs"].iloc[0]).all()
    # With a real distribution the drawn arm differs while the point arm stays the sweep's.
    moving = _study(masses[:2] + masses[2:], (20, 45), 12, seed=3)
    rows = pd.DataFrame(moving.chunk(point_models(moving), 0, 12))
    point = rows[rows["arm"] == "point"][["replicate", "n", *PRIMARY]].reset_index(drop=True)
    pd.testing.assert_frame_equal(point, pd.DataFrame(simulate_chunk(
        Study(moving.scenario, moving.ns, 12, 3, "rfs", ("design",)), arm_models(moving.scenario), 0, 12))[
        ["replicate", "n", *PRIMARY]])
    assert not rows[rows["arm"] == "prior"]["n_transplanted"].equals(rows[rows["arm"] == "point"]["n_transplanted"])


def _binomial_power(n: int, rfs: float, p0: float, alpha: float) -> float:
    """Exact binomial power P(X >= k*), X ~ Binomial(n, rfs), k* the smallest k with P(Bin(n, p0) >= k) <= alpha."""
    k = next(k for k in range(n + 1) if k > 0 and special.bdtrc(k - 1, n, p0) <= alpha)
    return float(special.bdtrc(k - 1, n, rfs))


@pytest.fixture(scope="module")
def binomial_run(tmp_path_factory):
    a, b = 10.0, 30.0                 # relapse incidence ~ Beta(10, 30): mean 0.25, true RFS 0.75 on average
    study = _study([*BINOMIAL, f"post_transplant.relapse_incidence={{ beta = [{a}, {b}] }}"], (40, 80), 2000, 11)
    replicates = run_study(study, tmp_path_factory.mktemp("binomial"), LocalExecutor(2), chunk_size=250,
                           models=point_models(study))
    return study, replicates, (a, b)


def test_assurance_equals_the_binomial_power_integrated_over_the_prior(binomial_run):
    study, replicates, (a, b) = binomial_run
    an = study.scenario.analysis
    table = assurance_table(replicates, an.p0).set_index("n")
    for n in (40, 80):
        exact = integrate.quad(lambda r, n=n: _binomial_power(n, 1 - r, an.p0, an.alpha) * stats.beta.pdf(r, a, b),
                               0, 1, limit=400, points=np.linspace(0.05, 0.95, 19))[0]
        # The same integral in closed form: survivors are beta-binomial(n, b, a).
        k = next(k for k in range(n + 1) if k > 0 and special.bdtrc(k - 1, n, an.p0) <= an.alpha)
        assert exact == pytest.approx(stats.betabinom.sf(k - 1, n, b, a), abs=1e-7)
        row = table.loc[n]
        assert abs(row.assurance - exact) < 4 * row.assurance_mcse, (n, row.assurance, exact)
        point = _binomial_power(n, 1 - a / (a + b), an.p0, an.alpha)
        assert abs(row.power_point - point) < 4 * row.power_point_mcse
        # The test can tell a prior from a point: assurance is far from the power at the mean.
        assert abs(exact - point) > 6 * row.assurance_mcse
        # P(true RFS > p0) under the prior, and every draw's truth is 1 - its relapse incidence.
        assert abs(row.p_effective - stats.beta.cdf(1 - an.p0, a, b)) < 4 * row.p_effective_mcse
    prior = replicates[replicates["arm"] == "prior"]
    np.testing.assert_allclose(prior["true_rfs"], 1 - prior["draw:post_transplant.relapse_incidence"], atol=1e-9)
    assert (prior["n_transplanted"] == prior["n"]).all()


def test_draws_follow_the_prior(binomial_run):
    study, replicates, (a, b) = binomial_run
    prior = replicates[(replicates["arm"] == "prior") & (replicates["n"] == 40)]
    drawn = prior["draw:post_transplant.relapse_incidence"].to_numpy()
    assert stats.kstest(drawn, stats.beta(a, b).cdf).pvalue > 0.001
    np.testing.assert_array_equal(drawn, draw_values(study.priors, study.seed, range(study.reps))[
        "post_transplant.relapse_incidence"])


def test_results_do_not_depend_on_jobs_chunk_size_or_resume(tmp_path):
    study = _study(["post_transplant.relapse_incidence={ beta_mean = 0.17, n = 60 }",
                    "accrual.screened_per_site_month={ gamma_mean = 0.222, cv = 0.3 }",
                    "response.dirichlet={ p_cr = 85, p_cri = 7, p_early_death = 1, rest = 7 }"], (20, 35), 12, 5)
    models = point_models(study)
    one = run_study(study, tmp_path / "a", LocalExecutor(1), chunk_size=12, models=models)
    two = run_study(study, tmp_path / "b", LocalExecutor(2), chunk_size=5, models=models)
    pd.testing.assert_frame_equal(one, two)
    assert len(one) == 12 * 2 * 2                   # replicates x n x arms (drawn, point)

    class Interrupted(Exception):
        pass

    def stop_after_one_chunk(k, seen=[]):  # noqa: B006 - counts calls within this test
        seen.append(k)
        if len(seen) == 2:                  # the first call reports 0 already done
            raise Interrupted

    with pytest.raises(Interrupted):
        run_study(study, tmp_path / "c", LocalExecutor(1), chunk_size=4, progress=stop_after_one_chunk, models=models)
    assert len(finished_chunks(tmp_path / "c")) == 1
    pd.testing.assert_frame_equal(one, run_study(study, tmp_path / "c", LocalExecutor(1), chunk_size=3,
                                                 models=models))
    # More replicates extend the study; the first ones stay the same. Another prior in the same folder is refused.
    more = run_study(AssuranceStudy(study.scenario, study.priors, study.ns, 15, 5), tmp_path / "c", LocalExecutor(1),
                     chunk_size=3, models=models)
    pd.testing.assert_frame_equal(more[more["replicate"] < 12].reset_index(drop=True), one)
    other = _study(["post_transplant.relapse_incidence={ beta_mean = 0.17, n = 30 }"], (20, 35), 12, 5)
    with pytest.raises(InputError, match="different study"):
        run_study(other, tmp_path / "c", LocalExecutor(1), models=point_models(other))


def test_the_input_that_drives_success_ranks_first():
    # Only the relapse incidence is uncertain enough to matter for success; accrual is very uncertain but moves
    # only the duration; induction death is nearly fixed.
    study = _study([*BINOMIAL, "post_transplant.relapse_incidence={ beta = [14, 26] }",
                    "accrual.screened_per_site_month={ gamma_mean = 0.222, cv = 0.5 }",
                    "induction.p_death={ beta_mean = 0.001, n = 100000 }"], (40,), 600, 2)
    rows = pd.DataFrame(study.chunk(point_models(study), 0, 600))
    keys = uncertain_keys(study.priors)
    ranked = importance_table(rows, keys, boot=100, seed=1)
    success = ranked[(ranked["outcome"] == "success") & (ranked["input"] != "true_rfs")].set_index("input")
    duration = ranked[ranked["outcome"] == "duration"].set_index("input")
    assert success.loc["post_transplant.relapse_incidence", "rank"] == 1
    assert success.loc["post_transplant.relapse_incidence", "lower"] > success.drop(
        "post_transplant.relapse_incidence")["upper"].max()
    assert duration.loc["accrual.screened_per_site_month", "rank"] == 1
    # Success hangs on the truth (1 - relapse incidence here) exactly as on the relapse incidence itself.
    truth = ranked[ranked["input"] == "true_rfs"].iloc[0]
    assert truth["index"] == pytest.approx(success.loc["post_transplant.relapse_incidence", "index"], abs=1e-12)


def test_draws_breaking_a_joint_rule_are_refused_before_anything_runs(tmp_path):
    study = _study(["response.p_cr={ beta = [85, 15] }"], (20,), 400, 1)   # p_cr + p_cri 0.07 + early death 0.01
    with pytest.raises(ScenarioError, match=r"replicates draw inputs that break a rule.*response\.p_cr.*Dirichlet"):
        check_draws(study, "base.toml")
    code = main(["assurance", "--scenario", str(BASE), "--set", "response.p_cr={ beta = [85, 15] }", "--n", "20",
                 "--reps", "400", "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 2 and not (tmp_path / "out").exists()


def test_the_command_writes_its_report_and_refuses_bad_input(tmp_path, capsys):
    out = tmp_path / "assurance"
    args = ["assurance", "--scenario", str(ROOT / "scenarios" / "evidence.toml"), "--n", "20", "40", "--reps", "30",
            "--seed", "2", "--jobs", "1", "--chunk-size", "15", "--out", str(out), "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "plausible worlds" in printed and "power at centre" in printed
    for name in ("assurance.csv", "importance.csv", "priors.csv", "replicates.parquet", "manifest.json",
                 "report.html"):
        assert (out / name).is_file(), name
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "plausible worlds" in report and "MAGIC (Blood Adv 2023;7:4479)" in report   # a prior's source
    assert "<script" not in report and 'src="http' not in report and 'href="http' not in report
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == "assurance" and manifest["at_n"] in (20, 40)
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0 and (out / "report.html").is_file()
    # Resuming: the same command reuses every chunk and gives the same table.
    table = (out / "assurance.csv").read_text()
    assert main(args) == 0 and (out / "assurance.csv").read_text() == table
    capsys.readouterr()
    refused = {
        "target": ["--set", "target.crc=0.9"],
        "no distributions": ["--scenario", str(BASE)],
        "at-n": ["--at-n", "30"],
    }
    for why, extra in refused.items():
        assert main([*args[:-3], "--out", str(tmp_path / why), *extra, "--quiet"]) == 2, why
        assert not (tmp_path / why).exists(), why
    error = capsys.readouterr().err
    assert "target.crc" in error and "no input has a distribution" in error and "--at-n 30" in error
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "manifest.json").write_text(json.dumps({"command": "sweep"}))
    assert main([*args[:-3], "--out", str(sweep), "--quiet"]) == 2
