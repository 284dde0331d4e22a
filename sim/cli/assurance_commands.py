"""The assurance command: probability of success over uncertain inputs, and what it hangs on.

Reads a scenario whose inputs carry distributions (scenarios/evidence.toml by default), checks every
replicate's draw before anything runs, runs the study in resumable chunks under OUT/assurance/ (the same
executors as the sweep), then writes its tables, figures, manifest and report atomically and prints a
summary in words. The console speaks as the sweep's does.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from sim.cli.commands import _calibrated, _close, _csv, _executor, _grid_text, _maybe_pdf, _with_overrides
from sim.cli.console import Console
from sim.cli.outputs import default_out, existing_results, note, sample_sizes
from sim.model.monitoring import any_enabled
from sim.scenario.schema import InputError, key_label, scenario_files
from sim.study.provenance import (
    code_version,
    iso_time,
    machine,
    manifest_text,
    package_versions,
    write_atomically,
    write_parquet_atomically,
)

DEFAULT_SCENARIO = "scenarios/evidence.toml"
STUDY_FOLDER = "assurance"        # OUT/assurance/: the study's chunks and identity (resumable)
BOOTSTRAP = 200                   # resamples behind each importance interval


def assurance(args: argparse.Namespace) -> int:
    from sim.report.assurance_report import write_assurance_report
    from sim.scenario.priors import load_uncertain
    from sim.study.assurance import (
        AssuranceStudy,
        assurance_table,
        check_draws,
        importance_table,
        point_models,
        uncertain_keys,
    )
    from sim.study.runner import run_study

    console = Console(args.quiet)
    started = time.time()
    targets_given = [o for o in args.overrides if o.split("=", 1)[0].strip().startswith("target.")]
    if targets_given:
        raise InputError(f"--set {targets_given[0]}: assurance does not take derived targets; give the inputs "
                         "themselves (or their distributions) with --set")
    args.out = default_out(args, "assurance")
    existing_results(args.out, "assurance", reps=args.reps)
    point, priors = load_uncertain(args.scenario, args.overrides)
    if not priors:
        raise InputError(f"{args.scenario}{_with_overrides(args.overrides)}: no input has a distribution, so assurance "
                         "equals power (run_sim.py sweep); give uncertain inputs distributions, e.g. "
                         "--set 'post_transplant.relapse_incidence={ beta_mean = 0.17, n = 60 }' (scenarios/README.md, "
                         "'Uncertain inputs'; scenarios/evidence.toml)")
    if any_enabled(point.monitoring):
        raise InputError(f"{args.scenario}{_with_overrides(args.overrides)}: interim monitoring rules are enabled; "
                         "assurance is computed for the design without them (run_sim.py sweep gives the design's "
                         "characteristics with its rules): set monitoring.<rule>.enabled=false")
    ns = sample_sizes(args)
    if args.at_n is not None and args.at_n not in ns:
        raise InputError(f"--at-n {args.at_n}: not in the n grid ({_grid_text(ns)})")
    study = AssuranceStudy(point, priors, ns, args.reps, args.seed)
    source = f"{args.scenario}{_with_overrides(args.overrides)}"
    with console.step(f"checking every replicate's draw ({args.reps})"):
        check_draws(study, source)
    models = _calibrated(args, lambda _: point_models(study), point)
    keys = uncertain_keys(priors)
    console.say(f"Assurance of {point.name!r} ({source}): {len(priors.keys)} inputs with distributions "
                f"({len(keys)} uncertain), {args.reps} replicates x {len(ns)} sample sizes (n = {_grid_text(ns)}), "
                f"each with its own draw of the inputs and the same trial at the central values, seed {args.seed}, "
                f"writing to {args.out}/")
    executor = _executor(args)
    try:
        replicates = run_study(study, args.out / STUDY_FOLDER, executor, args.chunk_size,
                               progress=console.progress(args.reps), models=models, notify=note)
    finally:
        _close(executor)
    a = point.analysis
    table = assurance_table(replicates, a.p0)
    at_n = args.at_n if args.at_n is not None else reference_n(table, tuple(args.target_power))
    with console.step(f"importance of each input ({BOOTSTRAP} bootstrap resamples per n)"):
        importance = importance_table(replicates, keys, boot=BOOTSTRAP, seed=args.seed)
    priors_rows = priors_table(priors, keys, args.scenario, args.overrides)
    labels = {key: input_label(key) for key in priors.keys}
    summary = summary_text(table, importance, at_n, a, labels, args.reps)
    finished = time.time()
    manifest = {
        "command": "assurance", "scenario_file": str(args.scenario), "overrides": args.overrides, "n": list(ns),
        "reps": args.reps, "seed": args.seed, "at_n": at_n, "target_power": list(args.target_power),
        "backend": args.backend, "jobs": args.jobs, "chunk_size": args.chunk_size, "scenario": point.model_dump(),
        "priors": priors.spec(), "uncertain": keys, "bootstrap": BOOTSTRAP, "summary": summary,
        "scenario_files": scenario_files(args.scenario), "versions": package_versions(),
        "code_version": code_version(), "machine": machine(), "started": iso_time(started),
        "finished": iso_time(finished), "wall_seconds": round(finished - started, 2),
        "note": "results depend only on the scenario and its distributions, seed, reps and n grid; not on jobs, "
                "chunk size or backend",
    }
    with console.step("tables and figures"):
        write_atomically(args.out, {
            "assurance.csv": _csv(table),
            "importance.csv": _csv(importance.assign(label=importance["input"].map(
                lambda k: labels.get(k, "true 18-month RFS (a consequence of the inputs)")))),
            "priors.csv": _csv(priors_rows),
            "manifest.json": manifest_text(manifest),
        })
        write_parquet_atomically(replicates, args.out / "replicates.parquet")
    with console.step("HTML report"):
        report = write_assurance_report(args.out)
    _maybe_pdf(args, report)
    print(summary + "\n")
    print(format_assurance(table, a.alpha))
    print(f"\nReport: {report}\nTables and data in {args.out}/: assurance.csv, importance.csv, priors.csv, "
          "replicates.parquet, manifest.json")
    console.say(f"Done in {console.elapsed():.1f} s from the start of the command.")
    return 0


def reference_n(table: pd.DataFrame, targets: tuple[float, ...]) -> int:
    """The n a sizing at the central values would choose: the smallest grid n whose power there reaches the
    first target (the largest n if none does)."""
    rows = table.sort_values("n")
    reached = rows[rows["power_point"] >= targets[0]]
    return int(reached["n"].iloc[0] if len(reached) else rows["n"].iloc[-1])


# Inputs whose schema description reads as a definition rather than a name.
LABELS = {"accrual.screened_per_site_month": "Accrual: patients screened per open site per month",
          "accrual.ramp_up_months": "Ramp-up: months until every site is open",
          "accrual.screen_fail_prob": "Screen failure"}


def input_label(key: str) -> str:
    """An input in clinical words, with the section that tells apart keys of the same name."""
    if key in LABELS:
        return LABELS[key]
    parts = key.split(".")
    label = key_label(key)
    if len(parts) > 2:
        middle = parts[1].upper() if parts[1] in ("mfc", "ngs") else parts[1].replace("cycle", "consolidation cycle ")
        label = f"{label} ({middle})"
    return label


def priors_table(priors, keys: list[str], path: str, overrides: list[str]) -> pd.DataFrame:
    """One row per input with a distribution: as written, mean, 90% interval, and its source (the comment on
    its line, or the Dirichlet's line, or the --set that gave it)."""
    from sim.scenario.sources import key_sources

    sources = key_sources(path)
    given = {item.split("=", 1)[0].strip(): item for item in overrides}
    rows = []
    for key in priors.keys:
        m = priors.marginal(key)
        lo, hi = m.interval()
        group = next((g for g in priors.groups if key in g.keys), None)
        line = f"{group.section}.dirichlet" if group else key
        if line in given:
            source = f"--set {given[line]}"
        else:
            file, comment = sources.get(line, ("", ""))
            source = f"{file}: {comment}" if comment else file
        rows.append({"input": key, "label": input_label(key), "written": m.written,
                     "joint": "Dirichlet" if group else "", "mean": m.mean(), "p05": lo, "p95": hi,
                     "uncertain": key in keys, "source": source})
    return pd.DataFrame(rows)


def summary_text(table: pd.DataFrame, importance: pd.DataFrame, at_n: int, analysis, labels: dict[str, str],
                 reps: int) -> str:
    """The answer in words a clinician reads, with the numbers at n = at_n and their Monte Carlo ranges."""
    r = table.set_index("n").loc[at_n]
    lm = f"{analysis.landmark_months:g}-month RFS after HSCT"

    def pct(p: float) -> str:
        return f"{100 * p:.0f}%"

    def span(p: float, se: float) -> str:
        return f"{100 * max(p - 1.96 * se, 0):.0f}-{100 * min(p + 1.96 * se, 1):.0f}%"

    text = [f"Averaged over what is known about its inputs, a trial enrolling n = {at_n} succeeds (shows {lm} "
            f"above {pct(analysis.p0)}) in about {pct(r.assurance)} of plausible worlds (Monte Carlo range "
            f"{span(r.assurance, r.assurance_mcse)}); at the central values its power is {pct(r.power_point)} "
            f"(difference {100 * r.difference:+.0f} points, paired MCSE {100 * r.difference_mcse:.1f})."]
    text.append(f"The treatment truly beats {pct(analysis.p0)} in {pct(r.p_effective)} of those worlds, and the "
                f"trial reaches the correct conclusion in {pct(r.p_correct)}; when the treatment does beat "
                f"{pct(analysis.p0)} the trial detects it {pct(r.p_reject_if_effective)} of the time.")
    for outcome, words in (("success", "success"), ("duration", "the time to the final analysis")):
        at = importance[(importance["n"] == at_n) & (importance["outcome"] == outcome)
                        & (importance["input"] != "true_rfs")].sort_values("rank")
        if at.empty:
            continue
        first = at.iloc[0]
        second = at.iloc[1] if len(at) > 1 else None
        sentence = (f"Most of the uncertainty in {words} comes from {_lower(labels[first.input])} (it alone explains "
                    f"{pct(max(first['index'], 0))}, 95% interval {pct(max(first.lower, 0))}-"
                    f"{pct(max(first.upper, 0))})")
        if second is not None and second["index"] > 0.02:
            sentence += f", then {_lower(labels[second.input])} ({pct(second['index'])})"
        text.append(sentence + ".")
    text.append(f"The final analysis comes a median {r.duration_months_prior_p50:.0f} months after the first "
                f"enrollment (8 of 10 plausible trials: {r.duration_months_prior_p10:.0f}-"
                f"{r.duration_months_prior_p90:.0f}), with about {r.transplanted_prior_mean:.0f} of the {at_n} "
                f"transplanted. ({reps} simulated trials per n, each with its own draw of the inputs.)")
    return " ".join(text)


def _lower(label: str) -> str:
    """A label inside a sentence: first letter in lower case unless it starts an acronym (NRM, MRD, HSCT)."""
    return label if label[:2].isupper() else label[:1].lower() + label[1:]


def format_assurance(table: pd.DataFrame, alpha: float) -> str:
    """Assurance next to power at the central values, by n, with the decision measures and duration."""
    lines = ["   n  transplanted  assurance (MCSE)  power at centre  difference (paired)  P(correct)    "
             "P(reject | effective)  months to final analysis, median (10th-90th)"]
    for r in table.itertuples(index=False):
        lines.append(f"{r.n:4d}  {r.transplanted_prior_mean:12.1f}  {r.assurance:6.3f} ({r.assurance_mcse:.3f})  "
                     f"{r.power_point:6.3f} ({r.power_point_mcse:.3f})  {r.difference:+6.3f} ({r.difference_mcse:.3f})"
                     f"      {r.p_correct:6.3f} ({r.p_correct_mcse:.3f})  {r.p_reject_if_effective:6.3f} "
                     f"({r.p_reject_if_effective_mcse:.3f})        {r.duration_months_prior_p50:5.1f} "
                     f"({r.duration_months_prior_p10:.1f}-{r.duration_months_prior_p90:.1f})")
    r = table.iloc[0]
    lines.append(f"(assurance: P(reject H0) over the inputs' distributions; power at the central values from the same "
                 f"replicates; P(true RFS > p0) under the prior {r.p_effective:.3f} (MCSE {r.p_effective_mcse:.3f}); "
                 f"one-sided alpha {alpha:g}; MCSE = Monte Carlo standard error)")
    return "\n".join(lines)
