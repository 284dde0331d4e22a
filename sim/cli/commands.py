"""The commands behind run_sim.py: trial, sweep, compare, sensitivity, describe, report, docs.

Each takes the parsed arguments, validates every input before writing anything, runs, writes its
outputs atomically and prints a summary for people. Heavy modules are imported inside each command
so that `describe` answers in well under a second.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING

import numpy as np

from sim.cli.outputs import default_out, existing_results, manifest_in, note, sample_sizes
from sim.scenario.schema import DAYS_PER_MONTH, InputError, ScenarioError, scenario_files
from sim.study.provenance import (
    code_version,
    iso_time,
    machine,
    manifest_text,
    package_versions,
    write_atomically,
    write_parquet_atomically,
)

if TYPE_CHECKING:
    import pandas as pd


CLUSTER_OPTIONS = ("cluster_jobs", "cores", "memory", "walltime", "queue", "account", "job_name", "log_dir",
                   "worker_timeout")


def _executor(args: argparse.Namespace):
    from sim.study.executors import BATCH_SYSTEMS, ClusterRequest, DaskExecutor, LocalExecutor, jobqueue_executor

    if args.backend == "dask" and not args.scheduler:
        raise InputError("--backend dask needs --scheduler tcp://HOST:PORT")
    if args.scheduler and args.backend != "dask":
        raise InputError("--scheduler is only used with --backend dask")
    given = [name for name in CLUSTER_OPTIONS if getattr(args, name) is not None]
    if args.backend not in BATCH_SYSTEMS and given:
        raise InputError(f"--{given[0].replace('_', '-')} is only used with --backend slurm, pbs or sge")
    if args.backend in BATCH_SYSTEMS:
        request = ClusterRequest(args.backend, **{("jobs" if name == "cluster_jobs" else name): getattr(args, name)
                                                  for name in given})
        return jobqueue_executor(request, args.out / "logs", notify=lambda message: print(message, file=sys.stderr))
    return DaskExecutor(args.scheduler) if args.backend == "dask" else LocalExecutor(_cores(args.jobs))


def _close(executor) -> None:
    if hasattr(executor, "close"):
        executor.close()


def _load(args: argparse.Namespace):
    """The scenario with its --set overrides, derived targets (--set target.NAME=VALUE) reached, and the
    list of targets solved (each says which input moved)."""
    from sim.study.targets import load_with_targets

    return load_with_targets(args.scenario, args.overrides)


def _calibrated(args: argparse.Namespace, solve, scenario):
    """solve(scenario), with a calibration failure reported against the file and overrides that caused it."""
    try:
        return solve(scenario)
    except ScenarioError as exc:
        overrides = "".join(f" --set {item}" for item in args.overrides)
        raise ScenarioError(f"{args.scenario}{' with' + overrides if overrides else ''}: {exc}") from None


def trial(args: argparse.Namespace) -> int:
    import pandas as pd

    from sim.analysis.adam import adsl, adtte, endpoint_table
    from sim.analysis.datasets import event_log, format_flow, patient_flow, patients_table
    from sim.analysis.endpoints import observe
    from sim.model.pathway import simulate_trial
    from sim.report.trial_figures import flow_figure, incidence_figure, survival_figure
    from sim.scenario.calibrate import calibrate

    scenario, solved = _load(args)
    post_model = _calibrated(args, calibrate, scenario)
    args.out = default_out(args, "trial")
    previous = existing_results(args.out, "trial")
    history = simulate_trial(scenario, args.n, args.seed, post_model=post_model, monitor=True)
    patients = patients_table(history)
    obs = observe(history)
    flow = patient_flow(history, obs.cutoff_day)
    results = _with_monitoring(endpoint_table(history), history)
    events = event_log(patients)
    if history.monitoring is not None:
        looks = pd.DataFrame([{"day": day, "patient": pd.NA, "event": f"interim look: {rule}", "detail": decision}
                              for day, rule, decision in history.monitoring.looks], columns=events.columns)
        events = pd.concat([events, looks], ignore_index=True).sort_values("day", kind="mergesort")
    a = scenario.analysis
    manifest = {
        "command": "trial", "scenario_file": str(args.scenario), "overrides": args.overrides,
        "n": args.n, "seed": args.seed, "scenario": scenario.model_dump(), "versions": package_versions(),
        "code_version": code_version(), "machine": machine(), "data_cutoff_day": obs.cutoff_day,
        "days_per_month": DAYS_PER_MONTH, "targets": [s.text() for s in solved],
        "monitoring": _monitoring_record(history),
    }
    write_atomically(args.out, {
        "latent_patients.csv": patients.to_csv(index=False, float_format="%.3f", lineterminator="\n"),
        "latent_events.csv": events.to_csv(index=False, float_format="%.3f", lineterminator="\n"),
        "adsl.csv": adsl(history).to_csv(index=False, lineterminator="\n"),
        "adtte.csv": adtte(history).to_csv(index=False, lineterminator="\n"),
        "flow.csv": flow.to_csv(index=False, lineterminator="\n"),
        "endpoints.csv": results.to_csv(index=False, float_format="%.6g", lineterminator="\n"),
        "manifest.json": manifest_text(manifest),
        "km_rfs_os.png": survival_figure(obs, a.landmark_months, a.p0),
        "cumulative_incidence.png": incidence_figure(obs, a.landmark_months),
        "patient_flow.png": flow_figure(flow),
    })
    months = (patients["enroll_day"].iloc[-1] / DAYS_PER_MONTH) if len(patients) else 0.0
    print(f"Scenario {scenario.name!r}, {args.n} patients, seed {args.seed}; "
          f"accrual took {months:.1f} months\n" + "".join(f"Target: {s.text()}\n" for s in solved))
    print(format_flow(flow))
    if history.monitoring is not None:
        looks = [f"  day {day:.0f} ({day / DAYS_PER_MONTH:.1f} months): {rule}: {what}"
                 for day, rule, what in history.monitoring.looks]
        print("\nInterim monitoring:\n" + "\n".join(looks)
              + ("" if history.monitoring.stop.stopped else "\n  no rule fired"))
    print(f"\nEndpoints at the final analysis (data cutoff on day {obs.cutoff_day:.0f}, "
          f"{obs.cutoff_day / DAYS_PER_MONTH:.1f} months after the first site opened):")
    print(format_endpoints(results))
    print(f"  {primary_test_text(results.iloc[0])}")
    print(f"\nWrote adsl.csv, adtte.csv (analysis datasets at the cutoff), endpoints.csv, latent_patients.csv, "
          f"latent_events.csv, flow.csv, manifest.json and 3 figures to {args.out}/ (columns: docs/datasets.md)")
    if previous and (previous.get("seed"), previous.get("n")) != (args.seed, args.n):
        note(f"replaced the files of the previous trial in {args.out}/ (seed {previous.get('seed')}, "
             f"n {previous.get('n')})")
    return 0


def primary_test_text(p: pd.Series) -> str:
    """The primary test as printed: statistic, p-value and decision, or why there is no statistic."""
    decision = f"H0 S <= {p.null_value:g} {'rejected' if p.reject else 'not rejected'} at alpha {p.alpha:g}"
    reason = f" ({p.test_reason})" if p.test_reason else ""
    if not np.isfinite(p.statistic):
        p_text = f"one-sided p = {p.p_value:.4f}, " if np.isfinite(p.p_value) else ""
        return f"primary test ({p.test}): no test statistic{reason}; {p_text}{decision}"
    return f"primary test ({p.test}): statistic {p.statistic:.3f}, one-sided p = {p.p_value:.4f}, {decision}{reason}"


def _with_monitoring(results: pd.DataFrame, history) -> pd.DataFrame:
    """A trial stopped by an interim rule makes no efficacy claim: its tests say 'not rejected', and why."""
    m = history.monitoring
    if m is None or not m.stop.stopped:
        return results
    why = (f"trial stopped by the {m.stop.rule} rule on day {m.stop.day:.0f} ({m.enrolled} of {m.planned} enrolled): "
           "no efficacy claim")
    tested = results["reject"].notna()
    results = results.copy()
    results.loc[tested, "reject"] = False
    results.loc[tested, "test_reason"] = why
    return results


def _monitoring_record(history) -> dict | None:
    m = history.monitoring
    if m is None:
        return None
    return {"stopped": m.stop.stopped, "rule": m.stop.rule, "stop_day": m.stop.day if m.stop.stopped else None,
            "planned": m.planned, "enrolled": m.enrolled, "pause": list(m.pause) if m.pause else None,
            "looks": [list(look) for look in m.looks]}


def format_endpoints(results: pd.DataFrame) -> str:
    """Endpoint rows as aligned text: estimate with 95% CI, or the count."""
    width = int(results["endpoint"].str.len().max())
    lines = []
    for row in results.itertuples(index=False):
        if row.not_evaluable_reason:
            value = f"not evaluable: {row.not_evaluable_reason}"
        elif row.lower == row.lower:  # has a CI
            value = f"{row.estimate:6.3f}  (95% CI {row.lower:.3f}-{row.upper:.3f}; n = {row.n:.0f})"
        else:
            value = f"{row.estimate:6.1f}  {row.method}"
        lines.append(f"  {row.endpoint:<{width}}  {value}")
    return "\n".join(lines)


def sweep(args: argparse.Namespace) -> int:
    from sim.cli.console import Console
    from sim.study.runner import Study

    console = Console(args.quiet, started=getattr(args, "started", None))
    started = time.time()
    scenario, solved = _load(args)
    ns = sample_sizes(args)
    study = Study(scenario, ns, args.reps, args.seed, args.endpoints)
    args.out = default_out(args, "sweep")
    existing_results(args.out, "sweep", reps=args.reps)
    console.say(f"Sizing study of {scenario.name!r} ({args.scenario}{_with_overrides(args.overrides)}): "
                f"{args.reps} replicates x {len(ns)} sample sizes (n = {_grid_text(ns)}) x 3 arms (the scenario, "
                f"its null twin, its p1 twin), seed {args.seed}, writing to {args.out}/")
    for s in solved:
        console.say(f"  target: {s.text()}")
    if priors_text(args):
        console.say("  note: inputs with distributions run at their means here (run_sim.py describe lists them; "
                    "run_sim.py assurance averages over them)")
    # The workers start now: their imports overlap the client's own imports and calibration.
    executor = _executor(args)
    try:
        return _sweep(args, console, started, scenario, solved, study, executor)
    finally:
        _close(executor)


def _sweep(args: argparse.Namespace, console, started: float, scenario, solved, study, executor) -> int:
    from sim.report.headline import headline
    from sim.report.study_figures import power_figure
    from sim.report.sweep_report import write_sweep_report
    from sim.study.oc import non_monotone_power
    from sim.study.resources import forecast, simulated_use, trial_totals
    from sim.study.runner import arm_models
    from sim.study.sizing import run_sizing
    from sim.study.truth import true_values

    models = _calibrated(args, arm_models, scenario)
    ns = study.ns
    targets = tuple(args.target_power)
    truths: dict[str, dict[str, float]] = {}

    def solve_truths() -> dict[str, dict[str, float]]:  # runs in a thread beside the grid: must not print
        truths.update(true_values(scenario, models, args.seed))
        return truths

    def refine_progress(extra: tuple[int, ...]):
        console.say(f"  refining the required n to the patient: {len(extra)} more sample sizes "
                    f"(n = {_grid_text(extra)}), primary endpoint only")
        return console.progress(args.reps, "refinement replicates")

    results = run_sizing(study, args.out, executor, solve_truths, targets, models, args.chunk_size,
                         progress=console.progress(args.reps), refine_progress=refine_progress, notify=note)
    _close(executor)  # a batch cluster's jobs end here, not after the report
    if results.refined_in_grid:
        extra = tuple(sorted(int(n) for n in results.refined["n"].unique()))
        console.say(f"  refined the required n to the patient: {len(extra)} more sample sizes "
                    f"(n = {_grid_text(extra)}), primary endpoint, from the grid's own trials")
    a = scenario.analysis
    top = headline(a, truths["design"]["rfs"], results.oc_primary, results.sizes, ns, tuple(args.overrides))
    own = results.sizes[results.sizes["at"] == "scenario"].iloc[0]
    example_n = int(own.required_n) if own.required_n == own.required_n else max(ns)
    forecast_reps = min(args.reps, FORECAST_REPS)
    with console.step(f"resource forecast ({forecast_reps} trials of n = {example_n})"):
        usages = simulated_use(scenario, example_n, args.seed, forecast_reps, models["design"])
    finished = time.time()
    manifest = {
        "command": "sweep", "scenario_file": str(args.scenario), "overrides": args.overrides, "n": list(ns),
        "refined_n": sorted(int(n) for n in results.refined["n"].unique()) if len(results.refined) else [],
        "reps": args.reps, "seed": args.seed, "endpoints": args.endpoints, "backend": args.backend,
        "jobs": args.jobs, "chunk_size": args.chunk_size, "scenario": scenario.model_dump(), "truths": truths,
        "target_power": list(targets), "scenario_files": scenario_files(args.scenario), "example_n": example_n,
        "forecast_reps": forecast_reps, "headline": top.text(), "targets": [s.text() for s in solved],
        "versions": package_versions(), "code_version": code_version(), "machine": machine(),
        "started": iso_time(started), "finished": iso_time(finished), "wall_seconds": round(finished - started, 2),
        "note": "results depend only on the scenario, seed, reps, n grid and endpoints; "
                "not on jobs, chunk size or backend",
        # Up to the tables (the HTML report comes after): the time waiting for workers and the client's share.
        "timing": console.timing(),
    }
    with console.step("tables and figures"):
        write_atomically(args.out, {
            "oc.csv": _csv(results.oc),
            "power_all_n.csv": _csv(results.oc_primary),
            "required_n.csv": results.sizes.to_csv(index=False, lineterminator="\n"),
            "flow_expected.csv": _csv(results.flow),
            "power_curve.png": power_figure(results.oc_primary, targets, a, truths["design"]["rfs"], args.reps),
            "resources.csv": _csv(forecast(usages)),
            "resources_totals.csv": _csv(trial_totals(usages)),
            "manifest.json": manifest_text(manifest),
        })
        write_parquet_atomically(results.replicates, args.out / "replicates.parquet")
        if len(results.refined):
            write_parquet_atomically(results.refined, args.out / "replicates_refined.parquet")
    with console.step("HTML report"):
        report = write_sweep_report(args.out, models["design"])
    _maybe_pdf(args, report)
    print(top.text() + "\n")
    print(monitoring_text(scenario, results.oc_primary, example_n))
    shown = set(ns) | {int(n) for n in results.sizes["required_n"].dropna()}
    print(format_power_table(results.oc_primary[results.oc_primary["n"].isin(shown)], results.sizes,
                             non_monotone_power(results.replicates), a.alpha))
    print(f"\nReport: {report}\nTables and data in {args.out}/: oc.csv, power_all_n.csv, required_n.csv, "
          "flow_expected.csv, replicates.parquet, resources.csv, manifest.json")
    console.say(f"Done in {console.elapsed():.1f} s from the start of the command.")
    return 0


def monitoring_text(scenario, oc: pd.DataFrame, n: int) -> str:
    """The interim rules and what they do, for the console ('' when every rule is off)."""
    from sim.report.rules import enabled_rules, monitoring_sentence, monitoring_table, rule_sentences

    rules = enabled_rules(scenario.monitoring)
    if not rules or "p_stop" not in oc:
        return ""
    grid = oc[oc["type1"].notna()]
    at = int(grid["n"].iloc[(grid["n"] - n).abs().argmin()])
    header, rows = monitoring_table(grid, rules)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    table = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    table += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(["Interim monitoring:", *(f"  {s}" for s in rule_sentences(scenario.monitoring, max(oc["n"]))),
                      f"  {monitoring_sentence(grid, at, rules)}", *table, ""])


def _csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, float_format="%.6g", lineterminator="\n")


def _with_overrides(overrides: list[str]) -> str:
    return "".join(f" --set {o}" for o in overrides)


def _grid_text(ns: tuple[int, ...]) -> str:
    """'20-100 by 10' for a regular grid; otherwise runs of consecutive values, e.g. '51-59, 61-69, 75'."""
    ns = tuple(sorted(ns))
    steps = {b - a for a, b in zip(ns[:-1], ns[1:], strict=True)}
    if len(ns) > 2 and len(steps) == 1 and steps != {1}:
        return f"{ns[0]}-{ns[-1]} by {steps.pop()}"
    runs: list[list[int]] = []
    for n in ns:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


FORECAST_REPS = 200  # simulated trials behind the resource forecast (the first replicates of the study)


def format_power_table(oc: pd.DataFrame, sizes: pd.DataFrame, drops: pd.DataFrame, alpha: float) -> str:
    """Power at the scenario's truth and at p1, type I error and precision of the primary endpoint by n."""
    from sim.study.oc import required_n_text

    rows = oc[oc["analysis"] == "rfs"].sort_values("n")
    lines = ["   n  transplanted  evaluable   power (MCSE)   power at p1     type I (MCSE)   CI half-width  "
             "not evaluable  duration (months)"]
    for r in rows.itertuples(index=False):
        type1 = f"{r.type1:6.3f} ({r.type1_mcse:.3f})" if r.type1 == r.type1 else " " * 14 + "-"
        width = f"{r.halfwidth_mean:13.3f}" if r.halfwidth_mean == r.halfwidth_mean else f"{'n/a':>13}"
        lines.append(f"{r.n:4d}  {r.transplanted_mean:12.1f}  {r.evaluable_mean:9.1f}  "
                     f"{r.power:6.3f} ({r.power_mcse:.3f})  {r.power_alt:6.3f} ({r.power_alt_mcse:.3f})  {type1}  "
                     f"{width}  {r.p_not_evaluable:13.3f}  {r.duration_months_mean:17.1f}")
    lines.append(f"(power at the scenario's own true RFS and at the protocol's p1; type I error on the null twin, "
                 f"nominal alpha {alpha:g}; rows with '-': sample sizes added around the required n, every one in "
                 "power_all_n.csv; "
                 "MCSE = Monte Carlo standard error)")
    if rows["halfwidth_mean"].isna().any():
        lines.append("(n/a: fewer than 2 replicates had an estimate at that n, so the CI half-width is not evaluable; "
                     "see 'not evaluable')")
    for s in sizes.itertuples(index=False):
        at = "the scenario's own RFS" if s.at == "scenario" else "p1"
        lines.append(f"power {s.target_power:g} at {at}: {required_n_text(s)}")
    for d in drops.itertuples(index=False):
        flag = " (beyond 2 MCSE)" if d.beyond_2_mcse else " (within Monte Carlo noise)"
        lines.append(f"note: power falls from n = {d.n_from} to n = {d.n_to} by {-d.power_change:.3f}{flag}; "
                     "small-sample discreteness or a cap on the evaluable number, shown as simulated")
    return "\n".join(lines)


def _cores(jobs: int) -> int:
    return (os.cpu_count() or 1) if jobs == -1 else jobs


def default_chunk_size(args: argparse.Namespace) -> int:
    """Replicates per chunk when --chunk-size is not given. On this machine about 8 chunks per process, from 50 to
    500 replicates: enough chunks to keep every process busy to the end, few enough that writing chunk files and
    passing them between processes stays a small part of the run. On a cluster 50, so that the scheduler can
    spread chunks over many workers and a lost batch job loses little. Results do not depend on it."""
    if getattr(args, "backend", "loky") != "loky":
        return 50
    return int(min(500, max(50, -(-args.reps // (8 * _cores(args.jobs))))))


def describe(args: argparse.Namespace) -> int:
    """Print what a scenario implies; everything is computed before anything is printed."""
    print(describe_report(args))
    return 0


def describe_report(args: argparse.Namespace) -> str:
    """The text `describe` prints (raises InputError before any of it is shown if the scenario cannot be used)."""
    from sim.scenario.calibrate import calibrate, null_twin, true_endpoints
    from sim.scenario.waiting import mean_days_to_hsct
    from sim.study.design import (
        expected_accrual_months,
        normal_approx_transplanted,
        p_reach_hsct,
        stage_probabilities,
    )

    scenario, solved = _load(args)
    model = _calibrated(args, calibrate, scenario)
    a = scenario.analysis
    lm = a.landmark_months
    truth = true_endpoints(model, lm * DAYS_PER_MONTH)
    lines: list[str] = []
    lines.append(f"Scenario {scenario.name!r} ({args.scenario}): {scenario.description}\n")
    lines.append("True values after HSCT (from the calibrated hazards, not simulated):")
    lines.append(f"  {lm:g}-month RFS {truth['rfs']:.3f}   OS {truth['os']:.3f}   GRFS {truth['grfs']:.3f}")
    lines.append(f"  {lm:g}-month relapse incidence {truth['relapse_cif']:.3f}   NRM incidence {truth['nrm_cif']:.3f}")
    lines.append(f"  acute GVHD II-IV {truth['agvhd_2_4_day100']:.3f} and III-IV {truth['agvhd_3_4_day100']:.3f} "
                 f"by day 100; chronic GVHD {truth['cgvhd_cif']:.3f} at {lm:g} months")
    lines.append(f"  H0: S({lm:g} months) <= p0 = {a.p0}; design alternative p1 = {a.p1}\n")
    lines.append("Reaching HSCT, stage by stage:")
    cumulative = 1.0
    for stage, p in stage_probabilities(scenario):
        cumulative *= p
        lines.append(f"  {stage:<54} {p:6.3f}   cumulative {cumulative:6.3f}")
    reach = p_reach_hsct(scenario)
    to_hsct = mean_days_to_hsct(scenario) / DAYS_PER_MONTH
    lines.append(f"  P(an enrolled patient is transplanted) = {reach:.3f}; "
                 + (f"on average {to_hsct:.1f} months from enrollment to HSCT\n"
                    if np.isfinite(to_hsct) and reach > 0 else "no time to HSCT (nobody reaches it)\n"))
    lines.append(derived_text(scenario, solved))
    lines.append(rules_text(scenario, args.n))
    lines += [priors_text(args)] if priors_text(args) else []
    acc = scenario.accrual
    full = acc.n_sites * acc.screened_per_site_month * (1 - acc.screen_fail_prob)
    rate = f"{full:.2f}" if full >= 0.01 else f"{full:.2g}"
    lines.append(f"Accrual: {rate} enrolled/month once all {acc.n_sites} sites are open "
          f"(over {acc.ramp_up_months:g} months); {args.n} enrolled after about "
          f"{expected_accrual_months(scenario, args.n):.1f} months\n")
    lines.append(f"First-order normal-approximation sample size (test {a.test}, one-sided alpha {a.alpha}):")
    alternatives = ((f"true RFS {truth['rfs']:.3f}", None), (f"p1 = {a.p1}", a.p1))
    with np.errstate(all="ignore"):
        null = null_twin(model, a.p0, lm * DAYS_PER_MONTH)
        needed = {label: normal_approx_transplanted(scenario, model, list(args.target_power), s1, null)
                  for label, s1 in alternatives}
    for k, power in enumerate(args.target_power):
        for label, s1 in alternatives:
            lines.append(f"  power {power:g} against {label:<16}: "
                  + _approximate_n_text(needed[label][k], a.p0, truth["rfs"] if s1 is None else s1, reach))
    lines.append("\nReminder: this formula is a first-order guide. Small samples, discreteness and censoring at the "
                 "data cutoff move power by several points; the simulation (python run_sim.py sweep) is the answer.")
    return "\n".join(lines)


def _approximate_n_text(n_tx: float, p0: float, alternative: float, reach: float) -> str:
    """'N transplanted -> M enrolled', or why the normal approximation gives no number."""
    if alternative <= p0:
        return f"not computable: RFS {alternative:.3f} is not above p0 = {p0}, so no sample size gives this power"
    if not np.isfinite(n_tx):
        return "not computable: the variance of the estimate at the landmark is not finite here"
    if reach <= 0:
        return f"{np.ceil(n_tx):4.0f} transplanted -> not computable: nobody reaches HSCT in this scenario"
    return f"{np.ceil(n_tx):4.0f} transplanted -> {np.ceil(n_tx / reach):4.0f} enrolled"


def rules_text(scenario, n: int) -> str:
    """The scenario's interim rules with their boundaries and, for the safety rules, the exact probability of
    stopping a trial of n patients at a few true rates when every outcome is seen before the next patient."""
    from sim.report.rules import enabled_rules, rule_sentences, stopping_probabilities

    if not enabled_rules(scenario.monitoring):
        return "Interim monitoring: no rule is enabled (see [monitoring] in the scenario reference).\n"
    lines = ["Interim monitoring:", *(f"  {s}" for s in rule_sentences(scenario.monitoring, n))]
    for name in ("induction_death", "nrm_day100"):
        rule = getattr(scenario.monitoring, name)
        if rule.enabled:
            rates = np.array([rule.threshold / 2, rule.threshold, 2 * rule.threshold])
            p = stopping_probabilities(rule, n, rates)
            lines.append(f"  {name}: exact P(stop) over {n} evaluable patients if the true rate is "
                         + ", ".join(f"{r:.0%}: {q:.3f}" for r, q in zip(rates, p, strict=True)))
    return "\n".join(lines) + "\n"


def priors_text(args: argparse.Namespace) -> str:
    """The scenario's uncertain inputs, each with its mean (the value used above) and 90% interval; '' when none."""
    from sim.scenario.priors import load_uncertain
    from sim.study.targets import split_targets

    _, priors = load_uncertain(args.scenario, split_targets(args.overrides)[0])
    if not priors:
        return ""
    lines = ["Uncertain inputs (the values above use their means; run_sim.py assurance averages over them):"]
    return "\n".join(lines + [f"  {line}" for line in priors.describe()]) + "\n"


def derived_text(scenario, solved) -> str:
    """The quantities a committee speaks in, each settable with --set target.NAME=VALUE, and any targets reached."""
    from sim.study.targets import PREFIX, TARGETS

    lines = ["In the committee's terms (set any with --set target.NAME=VALUE; the input moved is shown):"]
    for name, target in TARGETS.items():
        lines.append(f"  {target.words:<56} {target.value(scenario):8.4g}   {PREFIX}{name} (moves "
                     f"{target.moves(scenario)})")
    lines += [f"  reached: {s.text()}" for s in solved]
    return "\n".join(lines) + "\n"


REPORT_FILES = {"sweep": ("manifest.json", "oc.csv", "power_all_n.csv", "required_n.csv", "flow_expected.csv"),
                "compare": ("manifest.json", "compare_oc.csv", "compare_required_n.csv", "compare_summary.csv",
                            "compare_differences.csv", "compare_resources.csv", "compare_power.png"),
                "sensitivity": ("manifest.json", "sensitivity.csv", "tornado.csv", "tornado.png"),
                "assurance": ("manifest.json", "assurance.csv", "importance.csv", "priors.csv")}


def report(args: argparse.Namespace) -> int:
    """(Re)write the HTML report of any results folder: sweep, compare, sensitivity or assurance."""
    if not args.out.is_dir():
        raise InputError(f"{args.out}: not a folder; give a results folder of sweep, compare, sensitivity or "
                         "assurance")
    command = (manifest_in(args.out) or {}).get("command")
    if command is None:
        raise InputError(f"{args.out}: not a results folder of sweep, compare, sensitivity or assurance (no "
                         "manifest.json)")
    if command not in REPORT_FILES:
        raise InputError(f"{args.out}: a results folder of {command!r}; reports exist for sweep, compare, "
                         "sensitivity and assurance")
    missing = [name for name in REPORT_FILES[command] if not (args.out / name).is_file()]
    if missing:
        raise InputError(f"{args.out}: incomplete {command} folder (missing {', '.join(missing)}); rerun {command}")
    try:
        path = write_any_report(args.out, command)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:  # a folder edited or damaged by hand
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{args.out}: its files cannot be read as the results of a {command} "
                         f"({type(exc).__name__}: {str(exc)[:200]}); rerun the {command} to rewrite them") from None
    print(f"Wrote {path}")
    _maybe_pdf(args, path)
    return 0


def write_any_report(out, command: str):
    """The report writer for a results folder of `command`."""
    if command == "sweep":
        from sim.report.sweep_report import write_sweep_report

        return write_sweep_report(out)
    if command == "compare":
        from sim.report.compare_report import write_compare_report

        return write_compare_report(out)
    if command == "assurance":
        from sim.report.assurance_report import write_assurance_report

        return write_assurance_report(out)
    from sim.report.sensitivity_report import write_sensitivity_report

    return write_sensitivity_report(out)


def _maybe_pdf(args: argparse.Namespace, report_path) -> None:
    """With --pdf: print the report to PDF with headless Chromium, or say why not."""
    if not getattr(args, "pdf", False):
        return
    from sim.report.html import write_pdf

    pdf = write_pdf(report_path)
    if pdf is None:
        print("--pdf: no Chromium found (install it, e.g. apt-get install chromium); the HTML report prints to PDF "
              "from any browser", file=sys.stderr)
    else:
        print(f"Wrote {pdf}")


def docs(args: argparse.Namespace) -> int:
    from sim.scenario.reference import scenario_reference

    write_atomically(args.out.parent, {args.out.name: scenario_reference()})
    print(f"Wrote {args.out}")
    return 0


def explore(args: argparse.Namespace) -> int:
    """The live what-if explorer, until Ctrl-C; reports are written by this command line's sweep."""
    from pathlib import Path

    from sim.app.inputs import grid_from
    from sim.app.server import serve

    ns = sorted({n for spec in args.n for n in spec})
    step = min((b - a for a, b in zip(ns[:-1], ns[1:], strict=True)), default=1)
    grid = grid_from(ns[0], ns[-1], step, args.reps, args.seed)
    run_sim = Path(__file__).resolve().parents[2] / "run_sim.py"
    sweep_command = [sys.executable, str(run_sim)] if run_sim.is_file() else None
    try:
        return serve(Path(args.scenario), args.host, args.port, args.out, grid, _cores(args.jobs), sweep_command)
    except KeyboardInterrupt:
        return 0
