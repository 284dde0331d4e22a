"""The self-contained HTML report of a sizing study (sweep), for a steering committee.

Reads a sweep's output folder (manifest.json, oc.csv, power_all_n.csv, required_n.csv,
flow_expected.csv, resources*.csv), simulates the example trial again from the recorded seed, and
writes report.html. It opens with the plain-language headline and its flags (the same text the
console printed), then: required n at the scenario's truth and at p1, power and type I error, the
expected patient flow, precision, secondary endpoints, example curves, resources, the scenario as
run (overrides marked) with its sources, how to read the report, and reproducibility.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from sim.analysis.endpoints import SECONDARY, observe
from sim.model.pathway import simulate_trial
from sim.report.headline import Headline, headline, percent, title
from sim.report.html import DOCS_NOTE, img, page, section, shown, table, with_note, write_page
from sim.report.rules import enabled_rules, monitoring_sentence, monitoring_table, rule_sentences
from sim.report.study_figures import expected_flow_figure, power_figure, precision_figure, resources_figure
from sim.report.trial_figures import incidence_figure, survival_figure
from sim.scenario.calibrate import PostTransplantModel
from sim.scenario.schema import Scenario
from sim.study.oc import required_n_text
from sim.study.provenance import read_manifest

OC_COLUMNS = (("n", "n enrolled", "{:.0f}"), ("transplanted_mean", "transplanted (mean)", "{:.1f}"),
              ("evaluable_mean", "evaluable (mean)", "{:.1f}"), ("power", "power (scenario)", "{:.3f}"),
              ("power_mcse", "MCSE", "{:.3f}"), ("power_alt", "power at p1", "{:.3f}"),
              ("power_alt_mcse", "MCSE", "{:.3f}"), ("type1", "type I error", "{:.3f}"),
              ("type1_mcse", "MCSE", "{:.3f}"), ("bias", "bias", "{:+.4f}"), ("coverage", "95% CI coverage", "{:.3f}"),
              ("halfwidth_mean", "CI half-width", "{:.3f}"), ("p_not_evaluable", "not evaluable", "{:.3f}"),
              ("duration_months_p50", "months to final analysis (median)", "{:.1f}"))


def sweep_headline(out: Path) -> tuple[Headline, dict]:
    """The headline rebuilt from a sweep folder's files (the numbers of power_all_n.csv and required_n.csv)."""
    manifest = read_manifest(out)
    scenario = Scenario.model_validate(manifest["scenario"])
    power = pd.read_csv(out / "power_all_n.csv")
    sizes = pd.read_csv(out / "required_n.csv")
    top = headline(scenario.analysis, manifest["truths"]["design"]["rfs"], power, sizes, tuple(manifest["n"]),
                   tuple(manifest.get("overrides", ())))
    return top, manifest


def write_sweep_report(out: Path, design: PostTransplantModel | None = None) -> Path:
    """Build OUT/report.html from a sweep's outputs; returns its path (design: the scenario's calibrated
    post-HSCT model, if the caller has it, for the example trial; otherwise it is calibrated again)."""
    top, manifest = sweep_headline(out)
    oc = pd.read_csv(out / "oc.csv")
    power = pd.read_csv(out / "power_all_n.csv")
    sizes = pd.read_csv(out / "required_n.csv")
    flow = pd.read_csv(out / "flow_expected.csv")
    scenario = Scenario.model_validate(manifest["scenario"])
    a = scenario.analysis
    true_rfs = manifest["truths"]["design"]["rfs"]
    example_n = int(manifest["example_n"])
    flow_n = _secondary_n(oc, example_n)
    history = simulate_trial(scenario, example_n, manifest["seed"], replicate=0, post_model=design)
    obs = observe(history)
    targets = tuple(manifest.get("target_power", sorted(sizes["target_power"].unique())))
    reps = manifest["reps"]
    name = title(scenario.name, tuple(manifest.get("overrides", ())))
    sections = [
        _summary(name, scenario, top, reps),
        section("Required sample size", _required_table(sizes, power, a.p1, true_rfs)),
        section("Power and type I error",
                img(_power_png(out, power, targets, a, true_rfs, reps), "Power and type I error against n")
                + _oc_table(power[power["n"].isin(set(manifest["n"]) | set(sizes["required_n"].dropna()))])),
        section(f"Expected patient flow at n = {flow_n}",
                img(expected_flow_figure(flow, flow_n, reps), "Expected CONSORT diagram")
                + f"<p class=\"note\">Counts at the data cutoff of the final analysis, over the {reps} simulated "
                  "trials: mean, and in brackets the range in which 8 of 10 trials fall (10th-90th percentile). "
                  "Every reason for leaving the pathway appears once (reasons that happened in no simulated "
                  "trial are left out). Shown at the simulated n closest to the required n.</p>"),
        *_monitoring_section(scenario, power, sizes, example_n),
        section("Precision of the primary estimate",
                img(precision_figure(oc), "Confidence-interval half-width against n")),
        section(f"Secondary endpoints at n = {_secondary_n(oc, example_n)}",
                _secondary_table(oc, example_n, a, manifest["truths"]["design"])),
        section(f"One example trial of n = {example_n}: survival and incidence after HSCT",
                "<p class=\"note\">One simulated trial (replicate 0), to show what the data look like; it is not an "
                "average.</p>"
                + img(survival_figure(obs, a.landmark_months, a.p0), "Kaplan-Meier RFS and OS")
                + img(incidence_figure(obs, a.landmark_months), "Cumulative incidence of relapse and NRM")),
        section("Resource and drug-supply forecast", _resources(out, manifest)),
        section("The scenario as run, and its sources", _assumptions(manifest)),
        section("How to read this report", _how_to_read(reps)),
        section("Reproducibility (STRESS-DES 5.1-5.4)", _reproducibility(manifest)),
    ]
    return write_page(out, page(name, sections))


def _power_png(out: Path, power: pd.DataFrame, targets: tuple[float, ...], a, true_rfs: float, reps: int) -> bytes:
    """The sweep's own power_curve.png (written with the tables it shows), or the figure drawn from them."""
    path = out / "power_curve.png"
    return path.read_bytes() if path.exists() else power_figure(power, targets, a, true_rfs, reps)


def _summary(name: str, scenario: Scenario, top: Headline, reps: int) -> str:
    a = scenario.analysis
    warnings = "".join(f"<div class=\"{'warning' if f.prominent else 'flag'}\"><b>"
                       f"{'Warning' if f.prominent else 'Note'}:</b> {html.escape(f.text)}</div>" for f in top.flags)
    return (f"<h1>{html.escape(name)}</h1><p>{html.escape(scenario.description)}</p>{warnings}"
            f"<div class=\"summary\"><p class=\"headline\">{html.escape(' '.join(top.sentences))}</p>"
            f"<p class=\"note\">Primary endpoint: {a.landmark_months:g}-month relapse-free survival (RFS) after "
            f"allo-HSCT, H0: RFS &le; {percent(a.p0)}, tested one-sided at alpha {a.alpha:g} ({html.escape(a.test)} "
            f"test). {reps} simulated trials per sample size; a Monte Carlo range is where the answer lies given "
            f"the simulation's own uncertainty (95%).</p></div>")


def _required_table(sizes: pd.DataFrame, power: pd.DataFrame, p1: float, true_rfs: float) -> str:
    by_n = power[power["analysis"] == "rfs"].drop_duplicates("n").set_index("n")
    rows = []
    for s in sizes.itertuples(index=False):
        at = f"scenario's own RFS {percent(true_rfs)}" if s.at == "scenario" else f"protocol's p1 = {percent(p1)}"
        found = s.required_n == s.required_n
        r = by_n.loc[int(s.required_n)] if found else None
        rows.append([f"{s.target_power:g}", at, required_n_text(s),
                     f"{r.transplanted_mean:.0f}" if found else "-",
                     f"{r.duration_months_p50:.0f} ({r.duration_months_p10:.0f}-{r.duration_months_p90:.0f})"
                     if found else "-"])
    refined = power["type1"].isna().any() if "type1" in power else False
    note = ("Sample sizes between grid points were simulated one by one around each answer (same trials, nested), "
            "so the answer is to the patient." if refined else
            "The answers fall on simulated sample sizes without refinement between grid points (none was needed, "
            "or the answer lies at the edge of the grid).")
    return (table(["target power", "if the true 18-month RFS is", "enrolled needed", "transplanted (mean)",
                   "months to final analysis, median (10th-90th pct)"], rows, text=True)
            + f"<p class=\"note\">{note}</p>")


def _oc_table(power: pd.DataFrame) -> str:
    rows = power[power["analysis"] == "rfs"].sort_values("n")

    def cell(r, column: str, fmt: str) -> str:
        value = getattr(r, column)
        refined = r.type1 != r.type1      # a sample size added around a required n: no null twin, no secondaries
        return "-" if value != value and refined else shown(fmt, value)

    return (with_note(table([label for _, label, _ in OC_COLUMNS],
                            [[cell(r, col, fmt) for col, _, fmt in OC_COLUMNS] for r in rows.itertuples()]))
            + "<p class=\"note\">The simulated grid and each required n. '-': a sample size added around a "
              "required n (the scenario and p1 only); every simulated n is in power_all_n.csv. MCSE: Monte Carlo "
              "standard error.</p>")


def _monitoring_section(scenario: Scenario, power: pd.DataFrame, sizes: pd.DataFrame, example_n: int) -> list[str]:
    """The interim rules in words and their simulated operating characteristics (none when all are off)."""
    rules = enabled_rules(scenario.monitoring)
    if not rules or "p_stop" not in power:
        return []
    grid = power[power["type1"].notna()]
    header, rows = monitoring_table(grid, rules)
    sentences = "".join(f"<li>{html.escape(text)}</li>" for text in rule_sentences(scenario.monitoring,
                                                                                     int(grid["n"].max())))
    at = _secondary_n(grid, example_n)
    return [section("Interim monitoring", f"<ul>{sentences}</ul><p>{html.escape(monitoring_sentence(grid, at, rules))}"
                    "</p>" + table(header, rows) + "<p class=\"note\">Each rule is evaluated in calendar time as "
                    "information arrives: a death on its day, a remission or its absence at the response assessment, "
                    "non-relapse death by day 100 on day 100 after HSCT. When a rule fires, enrollment stops that day; "
                    "patients already enrolled are followed to the final analysis, the trial makes no efficacy claim "
                    "(H0 not rejected) and its estimates are still reported. Power and type I error without the rules "
                    "come from the same simulated trials.</p>")]


def _secondary_n(oc: pd.DataFrame, n: int) -> int:
    """The grid n closest to n (secondary endpoints are estimated on the grid only)."""
    grid = oc["n"].unique()
    return int(grid[abs(grid - n).argmin()])


def _secondary_table(oc: pd.DataFrame, n: int, analysis, truths: dict[str, float]) -> str:
    at = _secondary_n(oc, n)
    rows = oc[(oc["n"] == at) & oc["analysis"].isin(["itt", *SECONDARY])]
    if rows.empty:
        return "<p>Secondary endpoints were not computed (sweep run with <code>--endpoints primary</code>).</p>"
    labels = {"itt": ("event-free survival from enrollment (ITT)", ""), **SECONDARY}
    lm = f"{analysis.landmark_months:g}-month"
    out = []
    for r in rows.itertuples():
        label = labels[r.analysis][0].format(lm=lm, assay="").replace(" ()", "")
        mcse = truths.get(f"{r.analysis}_mcse")
        true = shown("{:.3f}", r.true) + (f" (simulated, MCSE {mcse:.3f})" if mcse is not None and mcse == mcse
                                           else "")
        out.append([label, true, *(shown(fmt, value) for fmt, value in (("{:.3f}", r.mean), ("{:+.4f}", r.bias),
                                                                         ("{:.3f}", r.empse), ("{:.3f}", r.coverage))),
                    f"{r.p_not_evaluable:.3f}"])
    note = ("<p class=\"note\">True values are calculated from the scenario's hazards, except those marked "
            "simulated: endpoints from enrollment depend on the whole pathway and come from one uncensored cohort "
            "of simulated patients. OS and EFS from enrollment follow every enrolled patient, also after leaving "
            "the pathway; EFS events are induction failure, relapse and death.</p>")
    return with_note(table(["endpoint", "true", "mean estimate", "bias", "empirical SE", "95% CI coverage",
                            "not evaluable"], out)) + note


def _resources(out: Path, manifest: dict) -> str:
    if not (out / "resources.csv").exists() or not (out / "resources_totals.csv").exists():
        return "<p>No resource forecast in this folder.</p>"
    forecast = pd.read_csv(out / "resources.csv")
    totals = pd.read_csv(out / "resources_totals.csv")
    n, reps = manifest["example_n"], manifest["forecast_reps"]
    body = img(resources_figure(forecast, n, reps), "Monthly resource use with 10th-90th percentile bands")
    body += table(["whole trial", "mean", "10th pct", "median", "90th pct", "per enrolled patient (mean)"],
                  [[r.measure.replace("_", " "), f"{r.mean:.1f}", f"{r.p10:.1f}", f"{r.p50:.1f}", f"{r.p90:.1f}",
                    f"{r.mean / n:.2f}"] for r in totals.itertuples()])
    return body + f"<p class=\"note\">At n = {n} enrolled (the required n for the first target power at the " \
                  f"scenario's own RFS), over the study's first {reps} simulated trials.</p>"


def _assumptions(manifest: dict) -> str:
    from sim.scenario.schema import scenario_toml
    from sim.study.targets import PREFIX, TARGETS

    overrides = manifest.get("overrides", [])
    scenario = Scenario.model_validate(manifest["scenario"])
    derived = table(["in the committee's terms", "value as run", "set it with", "input it moves"],
                    [[target.words, f"{target.value(scenario):.4g}", f"--set {PREFIX}{name}=VALUE",
                      target.moves(scenario)] for name, target in TARGETS.items()], text=True)
    reached = "".join(f"<li>{html.escape(text)}</li>" for text in manifest.get("targets", []))
    parts = [derived + (f"<p>Targets reached for this run:</p><ul>{reached}</ul>" if reached else ""),
             "<p>The values actually run" + (" (command-line overrides marked <code># --set</code>)" if overrides
                                            else "") + ":</p>",
             f"<pre>{html.escape(scenario_toml(_in_schema_order(manifest['scenario']), overrides))}</pre>",
             "<p>The scenario files, with the source of each clinical number in a comment ([est] marks judgement). "
             "A file that <code>extends</code> another changes only what differs.</p>"]
    for path, text in manifest.get("scenario_files", {}).items():
        parts.append(f"<details><summary><b>{html.escape(path)}</b></summary><pre>{html.escape(text)}</pre>"
                     "</details>")
    return "".join(parts)


def _in_schema_order(data: dict) -> dict:
    """The scenario's values in the order of the schema (pathway order), not the manifest's sorted keys."""
    return Scenario.model_validate(data).model_dump()


def _how_to_read(reps: int) -> str:
    items = [
        ("Power", "the chance that the trial shows RFS above the null, if the true RFS is the stated value. It is "
                  f"estimated from {reps} simulated trials per sample size."),
        ("Type I error", "the chance of a false positive claim: the trial 'succeeds' although the true RFS equals "
                         "the null. It should be at most alpha."),
        ("Monte Carlo range", "simulation is itself a sample: the range shows where the answer lies given that "
                              "uncertainty (95%). More simulated trials make it narrower; it says nothing about "
                              "whether the scenario's assumptions are right."),
        ("MCSE", "Monte Carlo standard error, the simulation's own uncertainty about a number."),
        ("10th-90th percentile", "the range in which 8 of 10 simulated trials fall: how much one real trial may "
                                 "vary."),
    ]
    return ("<ul>" + "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in items) + "</ul>"
            f"<p class=\"note\">{DOCS_NOTE}</p>")


def _reproducibility(manifest: dict) -> str:
    rows = [
        ["5.1 model and code version", f"blina-hsct-sim {manifest['versions'].get('sim')}, "
                                       f"commit {manifest.get('code_version')}"],
        ["5.2 software", ", ".join(f"{k} {v}" for k, v in sorted(manifest["versions"].items()))],
        ["5.3 computing environment", ", ".join(f"{k}: {v}" for k, v in manifest.get("machine", {}).items())],
        ["5.4 how to run", f"run_sim.py sweep --scenario {manifest['scenario_file']} --n "
                           f"{' '.join(map(str, manifest['n']))} --reps {manifest['reps']} --seed {manifest['seed']} "
                           f"--endpoints {manifest['endpoints']}"
                           + "".join(f" --set {o}" for o in manifest.get("overrides", []))],
        ["seed / replicates", f"{manifest['seed']} / {manifest['reps']} per sample size (each with its null and p1 "
                              "twins)"],
        ["run", f"{manifest['started']} to {manifest['finished']} ({manifest['wall_seconds']} s, backend "
                f"{manifest['backend']}, jobs {manifest['jobs']}); results do not depend on jobs, chunking or "
                "backend"],
    ]
    return table(["item", "value"], rows, text=True)
