"""The self-contained HTML report of a sizing study: one file that opens offline.

Reads a sweep's output folder (manifest.json, oc.csv, required_n.csv, resources*.csv), simulates
the example trial again from the recorded seed, and writes report.html with every figure embedded
as a base64 PNG, no scripts, no external fonts or styles. Sections: summary, assumptions and their
sources, patient flow, power and type I error, precision, required n, secondary endpoints, example
survival and incidence curves, resource forecast, reproducibility (STRESS-DES 5.1-5.4).
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from sim.analysis.datasets import patient_flow
from sim.analysis.endpoints import SECONDARY, observe
from sim.model.pathway import simulate_trial
from sim.report.figures import (
    flow_figure,
    incidence_figure,
    power_figure,
    precision_figure,
    resources_figure,
    survival_figure,
)
from sim.scenario.schema import Scenario
from sim.study.oc import required_n_text
from sim.study.provenance import write_atomically

STYLE = """
body { font-family: Helvetica, Arial, sans-serif; max-width: 1050px; margin: 2em auto; color: #222; line-height: 1.45;
       padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #34568b; padding-bottom: 0.2em;
margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #eef3fb; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; } pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto;
font-size: 0.8em; } .summary { background: #f4f8ec; border: 1px solid #9bb86b; padding: 0.8em 1.2em; }
.note { color: #555; font-size: 0.9em; } table.text td, table.text th { text-align: left; }
"""

OC_COLUMNS = (("n", "n enrolled", "{:.0f}"), ("transplanted_mean", "transplanted (mean)", "{:.1f}"),
              ("evaluable_mean", "evaluable (mean)", "{:.1f}"), ("power", "power", "{:.3f}"),
              ("power_mcse", "MCSE", "{:.3f}"), ("type1", "type I error", "{:.3f}"), ("type1_mcse", "MCSE", "{:.3f}"),
              ("bias", "bias", "{:+.4f}"), ("coverage", "95% CI coverage", "{:.3f}"),
              ("halfwidth_mean", "CI half-width", "{:.3f}"), ("p_not_evaluable", "not evaluable", "{:.3f}"),
              ("duration_months_mean", "duration (months)", "{:.1f}"))


def write_report(out: Path) -> Path:
    """Build OUT/report.html from a sweep's outputs; returns its path."""
    manifest = json.loads((out / "manifest.json").read_text())
    oc = pd.read_csv(out / "oc.csv")
    sizes = pd.read_csv(out / "required_n.csv")
    forecast = pd.read_csv(out / "resources.csv") if (out / "resources.csv").exists() else None
    totals = pd.read_csv(out / "resources_totals.csv") if (out / "resources_totals.csv").exists() else None
    scenario = Scenario.model_validate(manifest["scenario"])
    example_n = int(manifest.get("example_n", max(manifest["n"])))
    history = simulate_trial(scenario, example_n, manifest["seed"], replicate=0)
    obs = observe(history)
    a = scenario.analysis
    targets = tuple(sizes["target_power"])
    title = (f"{scenario.name}: H0 S({a.landmark_months:g} mo) <= {a.p0} vs true "
             f"{manifest['truths']['design']['rfs']:.3f}, test {a.test}, {manifest['reps']} replicates")
    sections = [
        _summary(scenario, manifest, sizes),
        _section("Power and type I error",
                 _img(power_figure(oc, targets, a.alpha, title), "Power and type I error against n")
                 + _oc_table(oc)),
        _section("Required sample size", _required_table(sizes)),
        _section("Precision of the primary estimate",
                 _img(precision_figure(oc), "Confidence-interval half-width against n")),
        _section(f"Secondary endpoints at n = {example_n}", _secondary_table(oc, example_n, a.landmark_months)),
        _section(f"Patient flow (one simulated trial of n = {example_n})",
                 _img(flow_figure(patient_flow(history)), "CONSORT-style patient flow of an example trial")),
        _section(f"Example trial (n = {example_n}): survival and incidence after HSCT",
                 _img(survival_figure(obs, a.landmark_months, a.p0), "Kaplan-Meier RFS and OS")
                 + _img(incidence_figure(obs, a.landmark_months), "Cumulative incidence of relapse and NRM")),
        _section("Resource and drug-supply forecast", _resources(forecast, totals, manifest)),
        _section("Assumptions and their sources", _assumptions(manifest)),
        _section("Reproducibility (STRESS-DES 5.1-5.4)", _reproducibility(manifest)),
    ]
    page = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sizing study: "
            f"{html.escape(scenario.name)}</title><style>{STYLE}</style></head><body>"
            + "".join(sections) + "</body></html>")
    write_atomically(out, {"report.html": page})
    return out / "report.html"


def _section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>{body}"


def _img(png: bytes, alt: str) -> str:
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"></p>'


def _table(header: list[str], rows: list[list[str]], text: bool = False) -> str:
    """An HTML table; text=True left-aligns every column (prose rather than numbers)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    opening = '<table class="text">' if text else "<table>"
    return f"{opening}<tr>{head}</tr>{body}</table>"


def _summary(scenario: Scenario, manifest: dict, sizes: pd.DataFrame) -> str:
    a = scenario.analysis
    truth = manifest["truths"]["design"]
    lines = [f"<h1>Sizing study: {html.escape(scenario.name)}</h1>",
             f"<p>{html.escape(scenario.description)}</p><div class=\"summary\">",
             f"<p>Primary endpoint: {a.landmark_months:g}-month relapse-free survival after allo-HSCT, "
             f"H0: S &le; {a.p0} tested one-sided at alpha {a.alpha} ({html.escape(a.test)} test). "
             f"True value in this scenario: <b>{truth['rfs']:.3f}</b>.</p><ul>"]
    lines += [f"<li>Power {s.target_power:g}: {html.escape(required_n_text(s))}.</li>"
              for s in sizes.itertuples(index=False)]
    lines.append(f"</ul><p class=\"note\">{manifest['reps']} simulated trials per sample size; every estimate "
                 "comes with its Monte Carlo standard error (MCSE).</p></div>")
    return "".join(lines)


def _assumptions(manifest: dict) -> str:
    parts = ["<p>The scenario files as run (each clinical number cites its source in a comment; [est] marks "
             "judgement). A file that <code>extends</code> another changes only what differs.</p>"]
    for path, text in manifest.get("scenario_files", {}).items():
        parts.append(f"<details open><summary><b>{html.escape(path)}</b></summary><pre>{html.escape(text)}</pre>"
                     "</details>")
    if manifest.get("overrides"):
        parts.append("<p>Command-line overrides: " + ", ".join(f"<code>--set {html.escape(o)}</code>"
                                                              for o in manifest["overrides"]) + "</p>")
    return "".join(parts)


NOT_EVALUABLE_NOTE = ('<p class="note">n/a: fewer than 2 replicates had an estimate, so the measure is not '
                      "evaluable (see &ldquo;not evaluable&rdquo;).</p>")


def _shown(fmt: str, value: float) -> str:
    """A number in the given format, or 'n/a' where it is not finite (NOT_EVALUABLE_NOTE says why)."""
    return fmt.format(value) if pd.notna(value) and abs(float(value)) != float("inf") else "n/a"


def _with_note(table: str) -> str:
    return table + (NOT_EVALUABLE_NOTE if "<td>n/a</td>" in table else "")


def _oc_table(oc: pd.DataFrame) -> str:
    rows = oc[oc["analysis"] == "rfs"].sort_values("n")
    return _with_note(_table([label for _, label, _ in OC_COLUMNS],
                             [[_shown(fmt, getattr(r, col)) for col, _, fmt in OC_COLUMNS]
                              for r in rows.itertuples()]))


def _required_table(sizes: pd.DataFrame) -> str:
    def show(x: float) -> str:
        return "-" if x != x else f"{x:.0f}"

    return _table(["target power", "required n", "low (power + 1.96 MCSE)", "high (power - 1.96 MCSE)"],
                  [[f"{s.target_power:g}", show(s.required_n), show(s.required_n_low), show(s.required_n_high)]
                   for s in sizes.itertuples()])


def _secondary_table(oc: pd.DataFrame, n: int, landmark_months: float) -> str:
    rows = oc[(oc["n"] == n) & oc["analysis"].isin(["itt", *SECONDARY])]
    if rows.empty:
        return "<p>Secondary endpoints were not computed (sweep run with <code>--endpoints primary</code>).</p>"
    labels = {"itt": ("event-free survival from enrollment (ITT)", ""), **SECONDARY}
    out = []
    for r in rows.itertuples():
        label = labels[r.analysis][0].format(lm=f"{landmark_months:g}-month", assay="").replace(" ()", "")
        out.append([label, _shown("{:.3f}", r.true), _shown("{:.3f}", r.mean), _shown("{:+.4f}", r.bias),
                    _shown("{:.3f}", r.empse), _shown("{:.3f}", r.coverage), f"{r.p_not_evaluable:.3f}"])
    return _with_note(_table(["endpoint", "true", "mean estimate", "bias", "empirical SE", "95% CI coverage",
                              "not evaluable"], out))


def _resources(forecast: pd.DataFrame | None, totals: pd.DataFrame | None, manifest: dict) -> str:
    if forecast is None or totals is None:
        return "<p>No resource forecast in this folder.</p>"
    n, reps = manifest.get("example_n"), manifest.get("forecast_reps")
    body = _img(resources_figure(forecast, n, reps), "Monthly resource use with 10th-90th percentile bands")
    body += _table(["whole trial", "mean", "10th pct", "median", "90th pct", "per enrolled patient (mean)"],
                   [[r.measure.replace("_", " "), f"{r.mean:.1f}", f"{r.p10:.1f}", f"{r.p50:.1f}", f"{r.p90:.1f}",
                     f"{r.mean / n:.2f}"] for r in totals.itertuples()])
    return body


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
        ["seed / replicates", f"{manifest['seed']} / {manifest['reps']} per sample size (each with its null twin)"],
        ["run", f"{manifest['started']} to {manifest['finished']} ({manifest['wall_seconds']} s, backend "
                f"{manifest['backend']}, jobs {manifest['jobs']}); results do not depend on jobs, chunking or "
                "backend"],
    ]
    return _table(["item", "value"], rows, text=True)


def write_compare_report(out: Path) -> Path:
    """Build OUT/report.html from a compare run: required n, power by scenario, paired differences."""
    manifest = json.loads((out / "manifest.json").read_text())
    oc = pd.read_csv(out / "compare_oc.csv")
    sizes = pd.read_csv(out / "compare_required_n.csv")
    diffs = pd.read_csv(out / "compare_differences.csv")
    targets = tuple(sorted(sizes["target_power"].unique()))
    reference = manifest["reference"]
    power_png = (out / "compare_power.png").read_bytes()
    primary = oc[oc["analysis"] == "rfs"]
    need_rows = []
    for name, block in sizes.groupby("scenario", sort=False):
        cells = [name]
        for r in block.itertuples():
            high = "beyond" if r.required_n_high != r.required_n_high else f"{r.required_n_high:.0f}"
            cells.append(f"> {r.largest_n}" if r.required_n != r.required_n
                         else f"{r.required_n:.0f} ({r.required_n_low:.0f}-{high})")
        truth = primary[primary["scenario"] == name]["true"].iloc[0]
        need_rows.append([*cells, f"{truth:.3f}"])
    power_rows = [[r.scenario, f"{r.n:.0f}", f"{r.power:.3f} ({r.power_mcse:.3f})", f"{r.type1:.3f}",
                   f"{r.transplanted_mean:.1f}", f"{r.evaluable_mean:.1f}", f"{r.duration_months_mean:.1f}"]
                  for r in primary.itertuples()]
    diff_rows = [[r.scenario, f"{r.n:.0f}", f"{r.power_difference:+.3f}", f"{r.mcse_paired:.4f}",
                  f"{r.mcse_independent:.4f}"] for r in diffs.itertuples()]
    secondary = oc[oc["analysis"].isin(list(SECONDARY)) & (oc["n"] == oc["n"].max())]
    sec_table = "<p>Secondary endpoints were not computed (<code>--endpoints primary</code>).</p>"
    if not secondary.empty:
        pivot = secondary.pivot(index="analysis", columns="scenario", values="mean")
        pivot = pivot.loc[[k for k in SECONDARY if k in pivot.index], list(dict.fromkeys(secondary["scenario"]))]
        sec_table = _table(["endpoint (mean estimate)", *pivot.columns],
                           [[SECONDARY[k][0].format(lm="18-month", assay="").replace(" ()", ""),
                             *(f"{v:.3f}" for v in pivot.loc[k])] for k in pivot.index])
    changed = _changed_keys(manifest["scenarios"], reference)
    resources = pd.read_csv(out / "compare_resources.csv")
    res_pivot = resources.pivot(index="measure", columns="scenario", values="mean")
    res_pivot = res_pivot[list(dict.fromkeys(resources["scenario"]))].loc[list(dict.fromkeys(resources["measure"]))]
    res_table = _table(["whole trial (mean)", *res_pivot.columns],
                       [[m.replace("_", " "), *(f"{v:.1f}" for v in res_pivot.loc[m])] for m in res_pivot.index])
    sections = [
        f"<h1>Scenario comparison</h1><div class=\"summary\"><p>{len(manifest['scenarios'])} scenarios, "
        f"{manifest['reps']} simulated trials each at n = {', '.join(map(str, manifest['n']))}, all from seed "
        f"{manifest['seed']} (common random numbers: differences are estimated from paired trials).</p></div>",
        _section("Required sample size by scenario",
                 _table(["scenario", *(f"n for power {t:g} (MCSE interval)" for t in targets),
                         "true 18-month RFS"], need_rows)),
        _section("Power by scenario", _img(power_png, "Power against n by scenario") + _table(
            ["scenario", "n", "power (MCSE)", "type I error", "transplanted (mean)", "evaluable (mean)",
             "duration (months)"], power_rows)),
        _section(f"Power differences from {reference}", _table(
            ["scenario", "n", "difference", "MCSE (paired, common random numbers)", "MCSE if run independently"],
            diff_rows)),
        _section(f"Secondary endpoints at n = {oc['n'].max()}", sec_table),
        _section(f"Resource and drug-supply totals at n = {manifest['forecast_n']} "
                 f"({manifest['forecast_reps']} trials per scenario)", res_table),
        _section("What differs from the reference", _table(["scenario", "changed keys"], changed, text=True)),
        _section("Reproducibility (STRESS-DES 5.1-5.4)", _table(["item", "value"], [
            ["code version", str(manifest.get("code_version"))],
            ["software", ", ".join(f"{k} {v}" for k, v in sorted(manifest["versions"].items()))],
            ["machine", ", ".join(f"{k}: {v}" for k, v in manifest.get("machine", {}).items())],
            ["run", f"{manifest['started']} to {manifest['finished']} ({manifest['wall_seconds']} s)"],
            ["variants", "; ".join(manifest.get("variants", [])) or "-"],
        ], text=True)),
    ]
    page = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Scenario comparison</title>"
            f"<style>{STYLE}</style></head><body>" + "".join(sections) + "</body></html>")
    write_atomically(out, {"report.html": page})
    return out / "report.html"


def _changed_keys(scenarios: dict[str, dict], reference: str) -> list[list[str]]:
    def flat(d: dict, prefix: str = "") -> dict[str, object]:
        out: dict[str, object] = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out |= flat(v, f"{prefix}{k}.")
            else:
                out[f"{prefix}{k}"] = v
        return out

    base = flat(scenarios[reference])
    rows = []
    for name, data in scenarios.items():
        if name == reference:
            continue
        diff = {k: v for k, v in flat(data).items() if base.get(k) != v and k not in ("name", "description")}
        rows.append([name, "; ".join(f"{k} = {v}" for k, v in diff.items()) or "(none)"])
    return rows
