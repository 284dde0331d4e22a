"""The commands behind run_sim.py: trial, sweep, compare, sensitivity, describe, report, docs.

Each takes the parsed arguments, validates every input before writing anything, runs, writes its
outputs atomically and prints a summary for people. Heavy modules are imported inside each command
so that `describe` answers in well under a second.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sim.scenario.schema import DAYS_PER_MONTH, InputError, ScenarioError, load_scenario, scenario_files
from sim.study.oc import required_n_text
from sim.study.provenance import (
    code_version,
    folder_problem,
    iso_time,
    machine,
    package_versions,
    write_atomically,
    write_parquet_atomically,
)

if TYPE_CHECKING:
    import pandas as pd


DEFAULT_SCENARIO = "scenarios/base.toml"
# Limits that keep every accepted command line bounded in memory (time grows linearly up to them).
MAX_N = 10_000          # patients in one trial
MAX_REPS = 100_000      # replicates per sample size
MAX_SIZES = 100         # sample sizes in one grid
MAX_ROWS = 1_000_000    # replicates x sample sizes x scenarios held in memory (about 0.8 kB each)


def _executor(args: argparse.Namespace):
    from sim.study.executors import DaskExecutor, LocalExecutor

    if args.backend == "dask" and not args.scheduler:
        raise InputError("--backend dask needs --scheduler tcp://HOST:PORT")
    if args.scheduler and args.backend != "dask":
        raise InputError("--scheduler is only used with --backend dask")
    return DaskExecutor(args.scheduler) if args.backend == "dask" else LocalExecutor(_cores(args.jobs))


def _close(executor) -> None:
    if hasattr(executor, "close"):
        executor.close()


def _calibrated(args: argparse.Namespace, solve, scenario):
    """solve(scenario), with a calibration failure reported against the file and overrides that caused it."""
    try:
        return solve(scenario)
    except ScenarioError as exc:
        overrides = "".join(f" --set {item}" for item in args.overrides)
        raise ScenarioError(f"{args.scenario}{' with' + overrides if overrides else ''}: {exc}") from None


def _default_out(args: argparse.Namespace, command: str) -> Path:
    """The output folder: --out, or results/<scenario file name>[-command], so that studies of different scenarios
    never meet in one folder (`sweep --scenario scenarios/pessimistic.toml` writes to results/pessimistic)."""
    if args.out is not None:
        return args.out
    if command == "compare":
        names = [_stem(path) for path in (args.scenario or [DEFAULT_SCENARIO])]
        names += [text.partition(":")[0] for text in args.variant]
        return Path("results") / ("compare-" + "-".join(names))[:80]
    suffix = "" if command == "sweep" else f"-{command}"
    return Path("results") / f"{_stem(args.scenario)}{suffix}"


def _stem(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).stem).strip("._") or "scenario"


def _existing_results(out: Path, command: str, reps: int | None = None, same: dict | None = None) -> dict | None:
    """Check that `command` may write into `out`: a new or empty folder, or one holding this command's own results
    of as many replicates or fewer (and, for compare and sensitivity, the same scenarios). Returns the manifest of
    the results there (None if none), or raises InputError saying what is there and how to proceed."""
    problem = folder_problem(out)
    if problem:
        raise InputError(problem)
    if not out.is_dir() or not any(out.iterdir()):
        return None
    manifest = _manifest_in(out)
    if manifest is None:
        entries = sorted(out.iterdir())
        if command == "sweep" and (out / "study.json").exists():
            return None  # an interrupted sweep; the runner checks it is the same study
        if command in ("compare", "sensitivity") and all(p.is_dir() and ((p / "study.json").exists()
                                                                         or not any(p.iterdir())) for p in entries):
            return None  # an interrupted comparison: one study folder per scenario
        shown = ", ".join(p.name for p in entries[:4]) + (", ..." if len(entries) > 4 else "")
        raise InputError(f"{out}: holds files this tool did not write ({shown}); choose a new or empty output "
                         "folder (--out), or move them away")
    if manifest.get("command") != command:
        raise InputError(f"{out}: holds the results of a {manifest.get('command')!s} run; a {command} would mix its "
                         f"files with them: choose another output folder (--out)")
    previous = manifest.get("reps")
    if reps is not None and isinstance(previous, int) and previous > reps:
        report = f"python run_sim.py report {out}" if command == "sweep" else f"{out}/report.html"
        raise InputError(f"{out}: holds the results of {previous} replicates; --reps {reps} would replace them with "
                         f"fewer. To see them: {report}; to add replicates, rerun with --reps {previous} or more; "
                         "for a smaller study, choose another output folder (--out)")
    for key, value in (same or {}).items():
        stored = manifest.get(key)
        if isinstance(stored, dict) and isinstance(value, list):
            stored = list(stored)  # compare: the scenario names, in order
        if stored != value:
            raise InputError(f"{out}: holds a {command} of {_shown_value(stored)} ({key}); this one is of "
                             f"{_shown_value(value)}: choose another output folder (--out), or delete this one")
    return manifest


def _manifest_in(out: Path) -> dict | None:
    """OUT/manifest.json, or None if there is none; InputError if it is not one this tool wrote."""
    path = out / "manifest.json"
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        manifest = None
    if not isinstance(manifest, dict) or "command" not in manifest:
        raise InputError(f"{out}: holds a manifest.json this tool did not write (not readable as one); choose "
                         "another output folder (--out), or delete this one")
    return manifest


def _shown_value(value: object) -> str:
    if isinstance(value, dict):
        value = ", ".join(value)
    elif isinstance(value, list):
        value = ", ".join(map(str, value))
    return " ".join(str(value).split())[:100]


def _note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def _sample_sizes(args: argparse.Namespace, scenarios: int = 1) -> tuple[int, ...]:
    """The n grid of a study command, sorted, each size once; InputError if the study would not fit in memory."""
    ns = tuple(sorted({n for spec in args.n for n in spec}))
    if len(ns) > MAX_SIZES:
        raise InputError(f"--n: {len(ns)} sample sizes; at most {MAX_SIZES} in one study (use a larger STEP)")
    rows = args.reps * len(ns) * scenarios
    if rows > MAX_ROWS:
        of = f" x {scenarios} scenarios" if scenarios > 1 else ""
        raise InputError(f"--reps {args.reps} x {len(ns)} sample sizes{of} = {rows:,} replicate rows; at most "
                         f"{MAX_ROWS:,} in one study (about 1 GB of memory): use fewer replicates or sample sizes")
    return ns


def trial(args: argparse.Namespace) -> int:
    import pandas as pd

    from sim.analysis.datasets import event_log, format_flow, patient_flow, patients_table
    from sim.analysis.endpoints import endpoints, observe
    from sim.model.pathway import simulate_trial
    from sim.report.figures import flow_figure, incidence_figure, survival_figure
    from sim.scenario.calibrate import calibrate

    scenario = load_scenario(args.scenario, args.overrides)
    post_model = _calibrated(args, calibrate, scenario)
    args.out = _default_out(args, "trial")
    previous = _existing_results(args.out, "trial")
    history = simulate_trial(scenario, args.n, args.seed, post_model=post_model)
    patients = patients_table(history)
    flow = patient_flow(history)
    results = pd.DataFrame(endpoints(history))
    obs = observe(history)
    a = scenario.analysis
    manifest = {
        "command": "trial", "scenario_file": str(args.scenario), "overrides": args.overrides,
        "n": args.n, "seed": args.seed, "scenario": scenario.model_dump(), "versions": package_versions(),
        "code_version": code_version(), "machine": machine(),
    }
    write_atomically(args.out, {
        "patients.csv": patients.to_csv(index=False, float_format="%.3f", lineterminator="\n"),
        "events.csv": event_log(patients).to_csv(index=False, float_format="%.3f", lineterminator="\n"),
        "flow.csv": flow.to_csv(index=False, lineterminator="\n"),
        "endpoints.csv": results.to_csv(index=False, float_format="%.4f", lineterminator="\n"),
        "manifest.json": json.dumps(manifest, indent=2, sort_keys=True) + "\n",
        "km_rfs_os.png": survival_figure(obs, a.landmark_months, a.p0),
        "cumulative_incidence.png": incidence_figure(obs, a.landmark_months),
        "patient_flow.png": flow_figure(flow),
    })
    months = (patients["enroll_day"].iloc[-1] / DAYS_PER_MONTH) if len(patients) else 0.0
    print(f"Scenario {scenario.name!r}, {args.n} patients, seed {args.seed}; "
          f"accrual took {months:.1f} months\n")
    print(format_flow(flow))
    print("\nEndpoints at the final analysis:")
    print(format_endpoints(results))
    print(f"  primary test: {_primary_test_text(results.iloc[0])}")
    print(f"\nWrote patients.csv, events.csv, flow.csv, endpoints.csv, manifest.json and 3 figures to {args.out}/")
    if previous and (previous.get("seed"), previous.get("n")) != (args.seed, args.n):
        _note(f"replaced the files of the previous trial in {args.out}/ (seed {previous.get('seed')}, "
              f"n {previous.get('n')})")
    return 0


def _primary_test_text(primary: pd.Series) -> str:
    """The primary test as printed: its statistic and decision, or why it could not be done."""
    test = primary["method"].split("; ", 1)[1]
    if primary["not_evaluable_reason"]:
        name = test.split(":", 1)[0]
        return f"{name}: not evaluable ({primary['not_evaluable_reason']}); counted as H0 not rejected"
    for text, why in (("statistic inf,", "no relapse or death by the landmark, S = 1"),
                      ("statistic -inf,", "everyone relapsed or died by the landmark, S = 0")):
        test = test.replace(text, f"{text[:-1]} ({why}),")
    return test


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
    from sim.analysis.endpoints import SECONDARY
    from sim.report.figures import power_figure
    from sim.report.html import write_report
    from sim.study.oc import non_monotone_power, operating_characteristics, required_n
    from sim.study.resources import forecast, simulated_use, trial_totals
    from sim.study.runner import Study, arm_models, run_study
    from sim.study.truth import true_values

    scenario = load_scenario(args.scenario, args.overrides)
    models = _calibrated(args, arm_models, scenario)
    ns = _sample_sizes(args)
    study = Study(scenario, ns, args.reps, args.seed, args.endpoints)
    args.out = _default_out(args, "sweep")
    _existing_results(args.out, "sweep", reps=args.reps)
    executor = _executor(args)
    started = time.time()
    try:
        with _progress(args.reps, args.quiet) as bar:
            replicates = run_study(study, args.out, executor, args.chunk_size, progress=bar.update, models=models,
                                   notify=_note)
    finally:
        _close(executor)
    truths = true_values(scenario, models, args.seed)
    analyses = ("rfs", "itt") + (tuple(SECONDARY) if args.endpoints == "all" else ())
    oc = operating_characteristics(replicates, truths, analyses)
    targets = tuple(args.target_power)
    sizes = required_n(oc, targets)
    drops = non_monotone_power(replicates)
    example_n = int(sizes["required_n"].iloc[0]) if sizes["required_n"].notna().iloc[0] else max(ns)
    forecast_reps = min(args.reps, FORECAST_REPS)
    usages = simulated_use(scenario, example_n, args.seed, forecast_reps, models["design"])
    finished = time.time()
    manifest = {
        "command": "sweep", "scenario_file": str(args.scenario), "overrides": args.overrides, "n": list(ns),
        "reps": args.reps, "seed": args.seed, "endpoints": args.endpoints, "backend": args.backend,
        "jobs": args.jobs, "chunk_size": args.chunk_size, "scenario": scenario.model_dump(), "truths": truths,
        "scenario_files": scenario_files(args.scenario), "example_n": example_n, "forecast_reps": forecast_reps,
        "versions": package_versions(), "code_version": code_version(), "machine": machine(),
        "started": iso_time(started), "finished": iso_time(finished), "wall_seconds": round(finished - started, 2),
        "note": "results depend only on the scenario, seed, reps, n grid and endpoints; "
                "not on jobs, chunk size or backend",
    }
    a = scenario.analysis
    title = (f"{scenario.name}: H0 S(18 mo) <= {a.p0} vs true {truths['design']['rfs']:.3f}, "
             f"test {a.test}, {args.reps} replicates")
    write_atomically(args.out, {
        "oc.csv": oc.to_csv(index=False, float_format="%.6g", lineterminator="\n"),
        "required_n.csv": sizes.to_csv(index=False, lineterminator="\n"),
        "power_curve.png": power_figure(oc, targets, a.alpha, title),
        "resources.csv": forecast(usages).to_csv(index=False, float_format="%.6g", lineterminator="\n"),
        "resources_totals.csv": trial_totals(usages).to_csv(index=False, float_format="%.6g", lineterminator="\n"),
        "manifest.json": json.dumps(manifest, indent=2, sort_keys=True, default=float) + "\n",
    })
    write_parquet_atomically(replicates, args.out / "replicates.parquet")
    report = write_report(args.out)
    print(format_power_table(oc, sizes, drops, a.alpha))
    print(f"\n{args.reps} replicates x {len(ns)} sample sizes in {finished - started:.1f} s. Report: {report}\n"
          f"Tables and data in {args.out}/: oc.csv, required_n.csv, replicates.parquet, resources.csv, manifest.json")
    return 0


FORECAST_REPS = 200  # simulated trials behind the resource forecast (the first replicates of the study)


COMPARE_FORECAST_REPS = 100  # trials per scenario behind the comparison's resource totals


def compare(args: argparse.Namespace) -> int:
    import pandas as pd

    from sim.analysis.endpoints import SECONDARY
    from sim.report.figures import compare_figure
    from sim.report.html import write_compare_report
    from sim.study.resources import simulated_use, trial_totals
    from sim.study.runner import arm_models
    from sim.study.whatif import named_scenarios, paired_differences, scenario_summaries

    files = args.scenario or [DEFAULT_SCENARIO]
    scenarios = named_scenarios(files, args.variant, args.overrides)
    if len(scenarios) < 2:
        raise InputError("compare needs at least two scenarios: repeat --scenario, or add --variant NAME:KEY=VALUE")
    models = {}
    origins = _compare_origins(args, files, list(scenarios))
    for name, scenario in scenarios.items():
        try:
            models[name] = arm_models(scenario)
        except ScenarioError as exc:
            raise ScenarioError(f"{origins[name]} (scenario {name!r}): {exc}") from None
    ns = _sample_sizes(args, len(scenarios))
    args.out = _default_out(args, "compare")
    _existing_results(args.out, "compare", reps=args.reps, same={"scenarios": list(scenarios)})
    started = time.time()
    replicates = _run_scenarios(args, scenarios, models, ns)
    analyses = ("rfs", "itt") + (tuple(SECONDARY) if args.endpoints == "all" else ())
    targets = tuple(args.target_power)
    oc, sizes = scenario_summaries(scenarios, models, replicates, args.seed, targets, analyses)
    reference = next(iter(scenarios))
    diffs = paired_differences(replicates, reference)
    forecast_reps = min(args.reps, COMPARE_FORECAST_REPS)
    resources = pd.concat([trial_totals(simulated_use(sc, max(ns), args.seed, forecast_reps, models[name]["design"]))
                           .assign(scenario=name) for name, sc in scenarios.items()], ignore_index=True)
    finished = time.time()
    manifest = {
        "command": "compare", "scenario_files": {f: scenario_files(f) for f in files}, "variants": args.variant,
        "overrides": args.overrides, "n": list(ns), "reps": args.reps, "seed": args.seed,
        "endpoints": args.endpoints, "backend": args.backend, "jobs": args.jobs, "chunk_size": args.chunk_size,
        "scenarios": {name: sc.model_dump() for name, sc in scenarios.items()}, "reference": reference,
        "forecast_n": max(ns), "forecast_reps": forecast_reps,
        "versions": package_versions(), "code_version": code_version(), "machine": machine(),
        "started": iso_time(started), "finished": iso_time(finished), "wall_seconds": round(finished - started, 2),
    }
    write_atomically(args.out, {
        "compare_oc.csv": oc.to_csv(index=False, float_format="%.6g", lineterminator="\n"),
        "compare_required_n.csv": sizes.to_csv(index=False, lineterminator="\n"),
        "compare_differences.csv": diffs.to_csv(index=False, float_format="%.6g", lineterminator="\n"),
        "compare_resources.csv": resources.to_csv(index=False, float_format="%.6g", lineterminator="\n"),
        "compare_power.png": compare_figure(oc, targets, f"Power by scenario ({args.reps} replicates each, "
                                                         "common random numbers)"),
        "manifest.json": json.dumps(manifest, indent=2, sort_keys=True, default=float) + "\n",
    })
    report = write_compare_report(args.out)
    print(format_comparison(oc, sizes, diffs))
    print(f"\n{len(scenarios)} scenarios x {args.reps} replicates x {len(ns)} sample sizes in "
          f"{finished - started:.1f} s. Report: {report}")
    return 0


def _compare_origins(args: argparse.Namespace, files: list[str], names: list[str]) -> dict[str, str]:
    """Where each compared scenario comes from, for messages: its file or its --variant, and any --set."""
    from sim.study.whatif import parse_variant

    overrides = "".join(f" --set {item}" for item in args.overrides)
    origins = dict(zip(names, files, strict=False))
    origins |= {parse_variant(text)[0]: f"{files[0]} with --variant {text}" for text in args.variant}
    return {name: origin + (f" with{overrides}" if overrides else "") for name, origin in origins.items()}


def _run_scenarios(args: argparse.Namespace, scenarios: dict, models: dict, ns: tuple[int, ...]
                   ) -> dict[str, pd.DataFrame]:
    from sim.study.whatif import run_scenarios

    executor = _executor(args)
    try:
        with _progress(args.reps * len(scenarios), args.quiet) as bar:
            return run_scenarios(scenarios, models, ns, args.reps, args.seed, args.endpoints, args.out, executor,
                                 args.chunk_size, progress=bar.update, notify=_note)
    finally:
        _close(executor)


def format_comparison(oc: pd.DataFrame, sizes: pd.DataFrame, diffs: pd.DataFrame) -> str:
    """Required n and power by scenario, then paired power differences from the reference."""
    primary = oc[oc["analysis"] == "rfs"]
    ns = sorted(primary["n"].unique())
    lines = ["scenario".ljust(22) + "".join(f"n={n:<13d}" for n in ns) + "  required n"]
    for name, block in primary.groupby("scenario", sort=False):
        block = block.set_index("n")
        need = sizes[sizes["scenario"] == name]
        needed = ", ".join(f"{t:g}: {'>' + str(m) if r != r else f'{r:.0f}'}"
                           for t, r, m in zip(need["target_power"], need["required_n"], need["largest_n"],
                                              strict=True))
        lines.append(name[:21].ljust(22) + "".join(f"{block.loc[n, 'power']:.3f} ({block.loc[n, 'power_mcse']:.3f})  "
                                                   for n in ns) + needed)
    if not diffs.empty:
        lines.append(f"\npower difference from {diffs['reference'].iloc[0]} (paired MCSE; independent runs "
                     "would give the MCSE in brackets):")
        for name, block in diffs.groupby("scenario", sort=False):
            lines.append(name[:21].ljust(22) + "".join(
                f"{r.power_difference:+.3f} {r.mcse_paired:.3f} [{r.mcse_independent:.3f}]  "
                for r in block.itertuples()))
    return "\n".join(lines)


def sensitivity(args: argparse.Namespace) -> int:
    import pandas as pd

    from sim.report.figures import tornado_figure
    from sim.study.runner import arm_models
    from sim.study.whatif import scenario_summaries, sensitivity_values, tornado_table

    base = load_scenario(args.scenario, args.overrides)
    scenarios = {"as given": base}
    models = {"as given": _calibrated(args, arm_models, base)}
    labels = {}
    for spec in args.vary:
        key, values = sensitivity_values(spec)
        for value in values:
            item = f"{key}={value:.6g}"
            try:
                scenario = load_scenario(args.scenario, [*args.overrides, item])
                solved = arm_models(scenario)
            except ScenarioError as exc:
                raise ScenarioError(f"--vary {spec}: at {item}: {exc}") from None
            name = item.replace("/", "_")
            scenarios[name] = scenario
            models[name] = solved
            labels[name] = (key, float(value))
    ns = _sample_sizes(args, len(scenarios))
    args.out = _default_out(args, "sensitivity")
    _existing_results(args.out, "sensitivity", reps=args.reps,
                      same={"scenario_file": str(args.scenario), "overrides": args.overrides, "vary": args.vary})
    started = time.time()
    replicates = _run_scenarios(args, scenarios, models, ns)
    oc, sizes = scenario_summaries(scenarios, models, replicates, args.seed, tuple(args.target_power), ("rfs",))
    at_n = max(ns)
    power = oc[(oc["analysis"] == "rfs") & (oc["n"] == at_n)].set_index("scenario")
    first_target = sizes[sizes["target_power"] == args.target_power[0]].set_index("scenario")
    table = pd.DataFrame([{"key": key, "value": value, "n": at_n, "power": power.loc[name, "power"],
                           "power_mcse": power.loc[name, "power_mcse"],
                           "required_n": first_target.loc[name, "required_n"]}
                          for name, (key, value) in labels.items()])
    tornado = tornado_table(table)
    base_power = float(power.loc["as given", "power"])
    write_atomically(args.out, {
        "sensitivity.csv": table.to_csv(index=False, float_format="%.6g", lineterminator="\n"),
        "tornado.csv": tornado.to_csv(index=False, float_format="%.6g", lineterminator="\n"),
        "tornado.png": tornado_figure(tornado, base_power, at_n, float(first_target.loc["as given", "required_n"]),
                                      ns),
        "manifest.json": json.dumps({
            "command": "sensitivity", "scenario_file": str(args.scenario), "overrides": args.overrides,
            "vary": args.vary, "n": list(ns), "reps": args.reps, "seed": args.seed, "endpoints": args.endpoints,
            "versions": package_versions(), "code_version": code_version(), "machine": machine(),
            "wall_seconds": round(time.time() - started, 2)}, indent=2, sort_keys=True) + "\n",
    })
    print(f"Power at n = {at_n} as given: {base_power:.3f}; one-way ranges, largest swing first:")
    for r in tornado.itertuples():
        print(f"  {r.key:<40} {r.low_value:>8g} -> power {r.power_low:.3f}   {r.high_value:>8g} -> power "
              f"{r.power_high:.3f}   (swing {r.swing:.3f})")
    print(f"(each power has MCSE <= {table['power_mcse'].max():.3f}; {args.reps} replicates, common random "
          f"numbers across values)\nWrote sensitivity.csv, tornado.csv, tornado.png to {args.out}/")
    return 0


def format_power_table(oc: pd.DataFrame, sizes: pd.DataFrame, drops: pd.DataFrame, alpha: float) -> str:
    """Power, type I error and precision of the primary endpoint by n, then the required n."""
    rows = oc[oc["analysis"] == "rfs"].sort_values("n")
    lines = ["   n  transplanted  evaluable   power (MCSE)    type I (MCSE)   coverage  CI half-width  "
             "not evaluable  duration (months)"]
    for r in rows.itertuples(index=False):
        lines.append(f"{r.n:4d}  {r.transplanted_mean:12.1f}  {r.evaluable_mean:9.1f}  "
                     f"{r.power:6.3f} ({r.power_mcse:.3f})  {r.type1:6.3f} ({r.type1_mcse:.3f})  "
                     f"{_shown(r.coverage, 8, '.3f')}  {_shown(r.halfwidth_mean, 13, '.3f')}  "
                     f"{r.p_not_evaluable:13.3f}  {r.duration_months_mean:17.1f}")
    lines.append(f"(type I error on the null twin, nominal alpha {alpha:g}; MCSE = Monte Carlo standard error)")
    if not np.isfinite(rows[["coverage", "halfwidth_mean"]].to_numpy(dtype=float)).all():
        lines.append("(n/a: fewer than 2 replicates had an estimate at that n, so coverage and CI width are not "
                     "evaluable; see 'not evaluable')")
    lines += [f"power {s.target_power:g}: {required_n_text(s)}" for s in sizes.itertuples(index=False)]
    for d in drops.itertuples(index=False):
        flag = " (beyond 2 MCSE)" if d.beyond_2_mcse else " (within Monte Carlo noise)"
        lines.append(f"warning: power falls from n = {d.n_from} to n = {d.n_to} by {-d.power_change:.3f}{flag}; "
                     "small-sample discreteness, shown as simulated")
    return "\n".join(lines)


def _shown(value: float, width: int, fmt: str) -> str:
    """A number right-aligned in `width`, or 'n/a' where it is not finite (the caller says why)."""
    return f"{value:{width}{fmt}}" if np.isfinite(value) else f"{'n/a':>{width}}"


def _cores(jobs: int) -> int:
    return (os.cpu_count() or 1) if jobs == -1 else jobs


class _NoBar:
    def update(self, k: int) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _progress(total: int, quiet: bool):
    if quiet or not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="rep", desc="replicates", dynamic_ncols=True)


def describe(args: argparse.Namespace) -> int:
    """Print what a scenario implies; everything is computed before anything is printed."""
    print(describe_report(args))
    return 0


def describe_report(args: argparse.Namespace) -> str:
    """The text `describe` prints (raises InputError before any of it is shown if the scenario cannot be used)."""
    from sim.scenario.calibrate import true_endpoints
    from sim.study.design import expected_accrual_months, p_reach_hsct, stage_probabilities
    from sim.study.runner import arm_models

    scenario = load_scenario(args.scenario, args.overrides)
    model = _calibrated(args, arm_models, scenario)["design"]
    a = scenario.analysis
    lm = a.landmark_months
    truth = true_endpoints(model, lm * DAYS_PER_MONTH)
    lines = [f"Scenario {scenario.name!r} ({args.scenario}): {scenario.description}\n",
             "True values after HSCT (from the calibrated hazards, not simulated):",
             f"  {lm:g}-month RFS {truth['rfs']:.3f}   OS {truth['os']:.3f}   GRFS {truth['grfs']:.3f}",
             f"  {lm:g}-month relapse incidence {truth['relapse_cif']:.3f}   NRM incidence {truth['nrm_cif']:.3f}",
             f"  acute GVHD II-IV {truth['agvhd_2_4_day100']:.3f} and III-IV {truth['agvhd_3_4_day100']:.3f} by day "
             f"100; chronic GVHD {truth['cgvhd_cif']:.3f} at {lm:g} months",
             f"  H0: S({lm:g} months) <= p0 = {a.p0}; design alternative p1 = {a.p1}\n",
             "Reaching HSCT, stage by stage:"]
    cumulative = 1.0
    for stage, p in stage_probabilities(scenario):
        cumulative *= p
        lines.append(f"  {stage:<54} {p:6.3f}   cumulative {cumulative:6.3f}")
    reach = p_reach_hsct(scenario)
    lines.append(f"  P(an enrolled patient is transplanted) = {reach:.3f}\n")
    acc = scenario.accrual
    full = acc.n_sites * acc.screened_per_site_month * (1 - acc.screen_fail_prob)
    rate = f"{full:.2f}" if full >= 0.01 else f"{full:.2g}"
    lines.append(f"Accrual: {rate} enrolled/month once all {acc.n_sites} sites are open "
                 f"(over {acc.ramp_up_months:g} months); {args.n} enrolled after about "
                 f"{expected_accrual_months(scenario, args.n):.1f} months\n")
    lines.append(f"First-order normal-approximation sample size (test {a.test}, one-sided alpha {a.alpha}):")
    for power in args.target_power:
        for label, s1 in ((f"true RFS {truth['rfs']:.3f}", None), (f"p1 = {a.p1}", a.p1)):
            lines.append(f"  power {power:g} against {label:<16}: "
                         + _approximate_n_text(scenario, model, power, s1, truth["rfs"], reach))
    lines.append("\nReminder: this formula is a first-order guide. Small samples, discreteness and censoring at the "
                 "data cutoff move power by several points; the simulation (python run_sim.py sweep) is the answer.")
    return "\n".join(lines)


def _approximate_n_text(scenario, model, power: float, s1: float | None, true_rfs: float, reach: float) -> str:
    """'N transplanted -> M enrolled', or why the normal approximation gives no number."""
    from sim.study.design import normal_approx_transplanted

    p0 = scenario.analysis.p0
    alternative = true_rfs if s1 is None else s1
    if alternative <= p0:
        return f"not computable: RFS {alternative:.3f} is not above p0 = {p0}, so no sample size gives this power"
    with np.errstate(all="ignore"):
        n_tx = normal_approx_transplanted(scenario, model, power, s1)
    if not np.isfinite(n_tx):
        return "not computable: the variance of the estimate at the landmark is not finite here"
    if reach <= 0:
        return f"{np.ceil(n_tx):4.0f} transplanted -> not computable: nobody reaches HSCT in this scenario"
    enrolled = np.ceil(n_tx / reach)
    return f"{np.ceil(n_tx):4.0f} transplanted -> {enrolled:4.0f} enrolled"


def report(args: argparse.Namespace) -> int:
    from sim.report.html import write_report

    missing = [name for name in ("manifest.json", "oc.csv", "required_n.csv") if not (args.out / name).is_file()]
    if missing:
        raise InputError(f"{args.out}: not a sweep output folder (missing {', '.join(missing)})")
    if _manifest_in(args.out).get("command") != "sweep":
        raise InputError(f"{args.out}: not a sweep output folder (its manifest.json is not a sweep's)")
    try:
        path = write_report(args.out)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # a folder edited or damaged by hand
        raise InputError(f"{args.out}: its files cannot be read as a sweep's results ({type(exc).__name__}: "
                         f"{str(exc)[:200]}); rerun the sweep to rewrite them") from None
    print(f"Wrote {path}")
    return 0


def docs(args: argparse.Namespace) -> int:
    from sim.scenario.reference import scenario_reference

    write_atomically(args.out.parent, {args.out.name: scenario_reference()})
    print(f"Wrote {args.out}")
    return 0
