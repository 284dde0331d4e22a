"""The what-if commands: compare (several scenarios side by side) and sensitivity (one-way tornado).

Both run a full sizing study per scenario (grid and refinement, common random numbers: one seed for
all), write their tables and figures atomically, then their HTML report; the console speaks as the
sweep's does. A sensitivity value equal to the scenario as given is not simulated again.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from sim.cli.commands import (
    _calibrated,
    _close,
    _csv,
    _executor,
    _grid_text,
    _maybe_pdf,
    _with_overrides,
)
from sim.cli.console import Console
from sim.cli.outputs import DEFAULT_SCENARIO, default_out, existing_results, note, sample_sizes
from sim.scenario.schema import InputError, ScenarioError, key_label, scenario_files
from sim.study.oc import required_n_text
from sim.study.provenance import code_version, iso_time, machine, manifest_text, package_versions, write_atomically
from sim.study.targets import load_with_targets

COMPARE_FORECAST_REPS = 100  # trials per scenario behind the comparison's resource totals


def _solve_all(scenarios: dict, origins: dict[str, str]) -> dict:
    from sim.study.runner import arm_models

    models = {}
    for name, scenario in scenarios.items():
        try:
            models[name] = arm_models(scenario)
        except ScenarioError as exc:
            raise ScenarioError(f"{origins[name]} (scenario {name!r}): {exc}") from None
    return models


def _compare_origins(args: argparse.Namespace, files: list[str], names: list[str]) -> dict[str, str]:
    """Where each compared scenario comes from, for messages: its file or its --variant, and any --set."""
    from sim.study.whatif import parse_variant

    overrides = "".join(f" --set {item}" for item in args.overrides)
    origins = dict(zip(names, files, strict=False))
    origins |= {parse_variant(text)[0]: f"{files[0]} with --variant {text}" for text in args.variant}
    return {name: origin + (f" with{overrides}" if overrides else "") for name, origin in origins.items()}


def _run(args: argparse.Namespace, console: Console, scenarios: dict, models: dict, ns: tuple[int, ...],
         itt_truth: bool = True) -> dict:
    from sim.study.whatif import run_scenarios

    def progress(label: str):
        console.say(f"  {label}")
        return console.progress(args.reps)

    executor = _executor(args)
    try:
        return run_scenarios(scenarios, models, ns, args.reps, args.seed, args.endpoints, args.out, executor,
                             args.chunk_size, tuple(args.target_power), progress=progress, itt_truth=itt_truth,
                             notify=note)
    finally:
        _close(executor)


def compare(args: argparse.Namespace) -> int:
    from sim.report.compare_report import write_compare_report
    from sim.report.study_figures import compare_figure
    from sim.study.design import p_reach_hsct
    from sim.study.resources import simulated_use, trial_totals
    from sim.study.whatif import combined, named_scenarios, own_required_n, paired_differences

    console = Console(args.quiet, started=getattr(args, "started", None))
    started = time.time()
    files = args.scenario or [DEFAULT_SCENARIO]
    scenarios = named_scenarios(files, args.variant, args.overrides)
    if len(scenarios) < 2:
        raise InputError("compare needs at least two scenarios: repeat --scenario, or add --variant NAME:KEY=VALUE")
    models = _solve_all(scenarios, _compare_origins(args, files, list(scenarios)))
    ns = sample_sizes(args, len(scenarios))
    args.out = default_out(args, "compare")
    existing_results(args.out, "compare", reps=args.reps, same={"scenarios": list(scenarios)})
    console.say(f"Comparing {len(scenarios)} scenarios ({', '.join(scenarios)}): {args.reps} replicates x "
                f"{len(ns)} sample sizes (n = {_grid_text(ns)}) each, seed {args.seed} for all (common random "
                f"numbers), writing to {args.out}/")
    runs = _run(args, console, scenarios, models, ns)
    oc, primary, sizes = combined(runs)
    reference = next(iter(scenarios))
    diffs = paired_differences({name: r.results.replicates for name, r in runs.items()}, reference)
    forecast_reps = min(args.reps, COMPARE_FORECAST_REPS)
    totals, summary = [], []
    for name, run in runs.items():
        need = own_required_n(run)
        at_n = need if need is not None else max(ns)
        with console.step(f"{name}: resource totals at n = {at_n}"):
            usage = simulated_use(run.scenario, at_n, args.seed, forecast_reps, models[name]["design"])
        totals.append(trial_totals(usage).assign(scenario=name, n=at_n))
        row = primary[(primary["scenario"] == name) & (primary["n"] == at_n)].iloc[0]
        summary.append({"scenario": name, "n": at_n, "required_n_reached": need is not None,
                        "true_rfs": run.truths["design"]["rfs"], "p_reach_hsct": p_reach_hsct(run.scenario),
                        "transplanted_mean": row.transplanted_mean, "duration_months_p50": row.duration_months_p50,
                        "duration_months_p10": row.duration_months_p10,
                        "duration_months_p90": row.duration_months_p90})
    finished = time.time()
    manifest = {
        "command": "compare", "scenario_files": {f: scenario_files(f) for f in files}, "variants": args.variant,
        "overrides": args.overrides, "n": list(ns), "reps": args.reps, "seed": args.seed,
        "endpoints": args.endpoints, "backend": args.backend, "jobs": args.jobs, "chunk_size": args.chunk_size,
        "target_power": list(args.target_power),
        "scenarios": {name: sc.model_dump() for name, sc in scenarios.items()}, "reference": reference,
        "truths": {name: r.truths for name, r in runs.items()}, "forecast_reps": forecast_reps,
        "versions": package_versions(), "code_version": code_version(), "machine": machine(),
        "started": iso_time(started), "finished": iso_time(finished), "wall_seconds": round(finished - started, 2),
    }
    with console.step("tables and figures"):
        write_atomically(args.out, {
            "compare_oc.csv": _csv(oc),
            "compare_power_all_n.csv": _csv(primary),
            "compare_required_n.csv": sizes.to_csv(index=False, lineterminator="\n"),
            "compare_differences.csv": _csv(diffs),
            "compare_summary.csv": _csv(pd.DataFrame(summary)),
            "compare_resources.csv": _csv(pd.concat(totals, ignore_index=True)),
            "compare_power.png": compare_figure(primary, tuple(args.target_power),
                                                f"Power by scenario: {args.reps} simulated trials per n each, "
                                                "common random numbers"),
            "manifest.json": manifest_text(manifest),
        })
    with console.step("HTML report"):
        report = write_compare_report(args.out)
    _maybe_pdf(args, report)
    print(format_comparison(oc, sizes, diffs))
    print(f"\nReport: {report}")
    console.say(f"Done in {console.elapsed():.1f} s from the start of the command.")
    return 0


def format_comparison(oc: pd.DataFrame, sizes: pd.DataFrame, diffs: pd.DataFrame) -> str:
    """Required n and power by scenario, then paired power differences from the reference."""
    primary = oc[oc["analysis"] == "rfs"]
    ns = sorted(primary["n"].unique())
    lines = ["power at the scenario's own RFS (MCSE)", "scenario".ljust(22) + "".join(f"n={n:<13d}" for n in ns)]
    for name, block in primary.groupby("scenario", sort=False):
        block = block.set_index("n")
        lines.append(name[:21].ljust(22) + "".join(f"{block.loc[n, 'power']:.3f} ({block.loc[n, 'power_mcse']:.3f})  "
                                                   for n in ns))
    lines.append("\nrequired n:")
    for s in sizes.itertuples(index=False):
        at = "its own RFS" if s.at == "scenario" else "p1"
        lines.append(f"  {s.scenario[:21]:<22}power {s.target_power:g} at {at}: {required_n_text(s)}")
    if not diffs.empty:
        lines.append(f"\npower difference from {diffs['reference'].iloc[0]} (paired MCSE; independent runs "
                     "would give the MCSE in brackets):")
        for name, block in diffs.groupby("scenario", sort=False):
            lines.append(name[:21].ljust(22) + "".join(
                f"{r.power_difference:+.3f} {r.mcse_paired:.3f} [{r.mcse_independent:.3f}]  "
                for r in block.itertuples()))
    return "\n".join(lines)


def sensitivity(args: argparse.Namespace) -> int:
    from sim.report.sensitivity_report import write_sensitivity_report
    from sim.report.study_figures import tornado_figure
    from sim.study.design import p_reach_hsct
    from sim.study.runner import arm_models
    from sim.study.whatif import reference_n, sensitivity_table, sensitivity_values, tornado_table

    console = Console(args.quiet, started=getattr(args, "started", None))
    started = time.time()
    base, _ = load_with_targets(args.scenario, args.overrides)
    scenarios = {"as given": base}
    models = {"as given": _calibrated(args, arm_models, base)}
    labels, aliases = {}, {}
    base_values = base.model_dump()
    for spec in args.vary:
        key, values = sensitivity_values(spec)
        for value in values:
            item = f"{key}={value:.6g}"
            try:
                scenario, _ = load_with_targets(args.scenario, [*args.overrides, item])
            except ScenarioError as exc:
                raise ScenarioError(f"--vary {spec}: at {item}: {exc}") from None
            name = item.replace("/", "_")
            labels[name] = (key, float(value))
            if scenario.model_dump() == base_values:   # the scenario as given: reuse it
                aliases[name] = "as given"
                continue
            try:
                models[name] = arm_models(scenario)
            except ScenarioError as exc:
                raise ScenarioError(f"--vary {spec}: at {item}: {exc}") from None
            scenarios[name] = scenario
    ns = sample_sizes(args, len(scenarios))
    args.out = default_out(args, "sensitivity")
    existing_results(args.out, "sensitivity", reps=args.reps,
                     same={"scenario_file": str(args.scenario), "overrides": args.overrides, "vary": args.vary})
    console.say(f"One-way sensitivity of {base.name!r} ({args.scenario}{_with_overrides(args.overrides)}): "
                f"{len(scenarios)} scenarios ({len(aliases)} values equal to the scenario as given are not "
                f"simulated again), {args.reps} replicates x n = {_grid_text(ns)}, seed {args.seed}, writing to "
                f"{args.out}/")
    runs = _run(args, console, scenarios, models, ns, itt_truth=False)
    runs |= {name: runs[alias] for name, alias in aliases.items()}
    table = sensitivity_table(runs, labels, "as given", p_reach_hsct)
    tornado = tornado_table(table)
    at_n = reference_n(runs, "as given")
    base_run = runs["as given"]
    base_oc = base_run.results.oc
    base_row = base_oc[(base_oc["analysis"] == "rfs") & (base_oc["n"] == at_n)].iloc[0]
    base_sizes = base_run.results.sizes
    base_need = base_sizes[base_sizes["at"] == "scenario"].sort_values("target_power").iloc[0]
    base_summary = {"n": at_n, "power": base_row.power, "power_mcse": base_row.power_mcse,
                    "duration_months_p50": base_row.duration_months_p50, "required_n": base_need.required_n,
                    "required_n_low": base_need.required_n_low, "required_n_high": base_need.required_n_high,
                    "target_power": base_need.target_power, "true_rfs": base_run.truths["design"]["rfs"],
                    "p_reach_hsct": p_reach_hsct(base)}
    labels_text = {key: key_label(key) for key in tornado["key"]}
    finished = time.time()
    with console.step("tables, figure and report"):
        write_atomically(args.out, {
            "sensitivity.csv": _csv(table),
            "tornado.csv": _csv(tornado.assign(label=tornado["key"].map(labels_text))),
            "tornado.png": tornado_figure(tornado, base_summary, labels_text, ns, args.reps),
            "manifest.json": manifest_text({
                "command": "sensitivity", "scenario_file": str(args.scenario), "overrides": args.overrides,
                "vary": args.vary, "n": list(ns), "reps": args.reps, "seed": args.seed, "endpoints": args.endpoints,
                "target_power": list(args.target_power), "scenario": base.model_dump(), "base": base_summary,
                "scenario_files": scenario_files(args.scenario), "versions": package_versions(),
                "code_version": code_version(), "machine": machine(), "started": iso_time(started),
                "finished": iso_time(finished), "wall_seconds": round(finished - started, 2)}),
        })
        report = write_sensitivity_report(args.out)
    _maybe_pdf(args, report)
    print(format_tornado(tornado, base_summary, labels_text))
    print(f"\nReport: {report}\nTables in {args.out}/: sensitivity.csv, tornado.csv, tornado.png, manifest.json")
    console.say(f"Done in {console.elapsed():.1f} s from the start of the command.")
    return 0


def format_tornado(tornado: pd.DataFrame, base: dict, labels: dict[str, str]) -> str:
    """The tornado as text: each parameter's range and what it does to required n, power and duration."""
    lines = [f"As given: power {base['power']:.3f} (MCSE {base['power_mcse']:.3f}) at n = {base['n']}, required n "
             f"for power {base['target_power']:g}: {_n_text(base['required_n'])}, median "
             f"{base['duration_months_p50']:.0f} months to the final analysis. Largest influence first:"]
    for r in tornado.itertuples():
        lines.append(f"  {labels[r.key]} ({r.key}): {r.low_value:g} -> n {_n_text(r.required_n_low)}, power "
                     f"{r.power_low:.3f}, {r.duration_months_p50_low:.0f} months;  {r.high_value:g} -> n "
                     f"{_n_text(r.required_n_high)}, power {r.power_high:.3f}, {r.duration_months_p50_high:.0f} "
                     "months")
    return "\n".join(lines)


def _n_text(n: float) -> str:
    return "not reached" if n != n else f"{n:.0f}"
