"""The HTML report of a scenario comparison (compare): each scenario's answer side by side.

Reads a compare output folder (manifest.json, compare_*.csv, compare_power.png) and writes
report.html. It opens with one table a committee can read across: what differs from the reference
in clinical words, the true 18-month RFS and P(reach HSCT) each scenario implies, its required n at
its own RFS and at p1 (to the patient, with Monte Carlo ranges), and at that n the number transplanted,
the months to the final analysis and the drug and bed use. Then power by scenario with paired
differences (common random numbers), secondary endpoints and reproducibility.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from sim.analysis.endpoints import SECONDARY
from sim.report.headline import percent
from sim.report.html import DOCS_NOTE, img, page, section, table, write_page
from sim.scenario.schema import key_label
from sim.study.oc import required_n_text
from sim.study.provenance import read_manifest

RESOURCE_COLUMNS = (("blinatumomab_vials", "blinatumomab vials"), ("bed_days_transplant", "transplant bed-days"),
                    ("bed_days_vip", "VIP bed-days"), ("transplant_admissions", "transplant admissions"),
                    ("mrd_assays", "MRD assays"))


def write_compare_report(out: Path) -> Path:
    """Build OUT/report.html from a compare run."""
    manifest = read_manifest(out)
    oc = pd.read_csv(out / "compare_oc.csv")
    sizes = pd.read_csv(out / "compare_required_n.csv")
    diffs = pd.read_csv(out / "compare_differences.csv")
    summary = pd.read_csv(out / "compare_summary.csv").set_index("scenario")
    resources = pd.read_csv(out / "compare_resources.csv")
    reference = manifest["reference"]
    names = list(summary.index)          # the order of the command line, the reference first
    changes = changed_in_words(manifest["scenarios"], reference)
    sections = [
        f"<h1>Scenario comparison: {html.escape(', '.join(names))}</h1>"
        f"<div class=\"summary\"><p>{len(names)} scenarios, {manifest['reps']} simulated trials each at every n, all "
        f"from seed {manifest['seed']}: replicate r of every scenario uses the same random numbers wherever the "
        "scenarios agree, so differences between scenarios are estimated from paired trials. Each scenario is "
        "judged at its own required n (the first target power at its own true RFS).</p></div>",
        section("Side by side", _side_by_side(names, reference, changes, sizes, summary, resources)),
        section("Power by scenario", img((out / "compare_power.png").read_bytes(), "Power against n by scenario")
                + _power_table(oc)),
        section(f"Power differences from {reference}", _differences(diffs)),
        section(f"Secondary endpoints at n = {oc['n'].max()}", _secondary(oc)),
        section("How to read this report", f"<p>{DOCS_NOTE}</p>"),
        section("Reproducibility (STRESS-DES 5.1-5.4)", table(["item", "value"], [
            ["code version", str(manifest.get("code_version"))],
            ["software", ", ".join(f"{k} {v}" for k, v in sorted(manifest["versions"].items()))],
            ["machine", ", ".join(f"{k}: {v}" for k, v in manifest.get("machine", {}).items())],
            ["run", f"{manifest['started']} to {manifest['finished']} ({manifest['wall_seconds']} s)"],
            ["how to run", "run_sim.py compare " + " ".join(f"--scenario {f}" for f in manifest["scenario_files"])
             + "".join(f" --variant {v}" for v in manifest.get("variants", []))
             + "".join(f" --set {o}" for o in manifest.get("overrides", []))
             + f" --n {' '.join(map(str, manifest['n']))} --reps {manifest['reps']} --seed {manifest['seed']}"],
        ], text=True)),
    ]
    return write_page(out, page("Scenario comparison", sections))


def _side_by_side(names: list[str], reference: str, changes: dict[str, str], sizes: pd.DataFrame,
                  summary: pd.DataFrame, resources: pd.DataFrame) -> str:
    header = ["", *names]
    rows = [["what differs from " + reference, *(changes.get(n, "(the reference)") for n in names)],
            ["true 18-month RFS after HSCT", *(percent(summary.loc[n, "true_rfs"]) for n in names)],
            ["P(an enrolled patient reaches HSCT)", *(percent(summary.loc[n, "p_reach_hsct"]) for n in names)]]
    for target in sorted(sizes["target_power"].unique()):
        for at, words in (("scenario", "its own RFS"), ("p1", "the protocol's p1")):
            block = sizes[(sizes["target_power"] == target) & (sizes["at"] == at)].set_index("scenario")
            if not block.empty:
                rows.append([f"enrolled for {percent(target)} power at {words}",
                             *(required_n_text(block.loc[n]) for n in names)])
    rows.append(["judged at n (the first row above)", *(f"{summary.loc[n, 'n']:.0f}"
                                                         + ("" if summary.loc[n, "required_n_reached"]
                                                            else " (not reached: largest n)") for n in names)])
    rows.append(["transplanted at that n (mean)", *(f"{summary.loc[n, 'transplanted_mean']:.0f}" for n in names)])
    rows.append(["months to the final analysis, median (10th-90th pct)",
                 *(f"{summary.loc[n, 'duration_months_p50']:.0f} ({summary.loc[n, 'duration_months_p10']:.0f}-"
                   f"{summary.loc[n, 'duration_months_p90']:.0f})" for n in names)])
    means = resources.pivot(index="measure", columns="scenario", values="mean")
    for measure, words in RESOURCE_COLUMNS:
        if measure in means.index:
            rows.append([f"{words}, whole trial (mean)", *(f"{means.loc[measure, n]:.0f}" for n in names)])
    return table(header, rows, text=True) + (
        "<p class=\"note\">Resources are totals over the whole trial at each scenario's own n, from its first "
        "simulated trials; Monte Carlo range: where the required n lies given the simulation's own uncertainty.</p>")


def _power_table(oc: pd.DataFrame) -> str:
    primary = oc[oc["analysis"] == "rfs"]          # the grid (compare_power_all_n.csv has every n)
    rows = [[r.scenario, f"{r.n:.0f}", f"{r.power:.3f} ({r.power_mcse:.3f})", f"{r.power_alt:.3f}",
             f"{r.type1:.3f}", f"{r.transplanted_mean:.1f}", f"{r.duration_months_p50:.0f}"]
            for r in primary.itertuples()]
    return table(["scenario", "n", "power at its own RFS (MCSE)", "power at p1", "type I error",
                  "transplanted (mean)", "months to final analysis (median)"], rows)


def _differences(diffs: pd.DataFrame) -> str:
    rows = [[r.scenario, f"{r.n:.0f}", f"{r.power_difference:+.3f}", f"{r.mcse_paired:.4f}",
             f"{r.mcse_independent:.4f}"] for r in diffs.itertuples()]
    return table(["scenario", "n", "difference in power", "MCSE (paired, common random numbers)",
                  "MCSE if run independently"], rows)


def _secondary(oc: pd.DataFrame) -> str:
    secondary = oc[oc["analysis"].isin(list(SECONDARY)) & (oc["n"] == oc["n"].max())]
    if secondary.empty:
        return "<p>Secondary endpoints were not computed (<code>--endpoints primary</code>).</p>"
    pivot = secondary.pivot(index="analysis", columns="scenario", values="mean")
    pivot = pivot.loc[[k for k in SECONDARY if k in pivot.index], list(dict.fromkeys(secondary["scenario"]))]
    return table(["endpoint (mean estimate)", *pivot.columns],
                 [[SECONDARY[k][0].format(lm="18-month", assay="").replace(" ()", ""),
                   *(f"{v:.3f}" for v in pivot.loc[k])] for k in pivot.index])


def changed_in_words(scenarios: dict[str, dict], reference: str) -> dict[str, str]:
    """Per scenario: what differs from the reference, e.g. 'Complete remission: 0.85 -> 0.8'."""
    def flat(d: dict, prefix: str = "") -> dict[str, object]:
        out: dict[str, object] = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out |= flat(v, f"{prefix}{k}.")
            else:
                out[f"{prefix}{k}"] = v
        return out

    base = flat(scenarios[reference])
    words = {}
    for name, data in scenarios.items():
        if name == reference:
            continue
        diff = {k: v for k, v in flat(data).items() if base.get(k) != v and k not in ("name", "description")}
        words[name] = "; ".join(f"{key_label(k)}: {base.get(k)} -> {v}" for k, v in diff.items()) or "(nothing)"
    return words
