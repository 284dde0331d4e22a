"""The HTML report of a scenario comparison (compare): required n, power and resources side by side.

Reads a compare output folder (manifest.json, compare_*.csv, compare_power.png) and writes
report.html: required n by scenario, power by scenario with paired differences from the reference
(common random numbers), secondary endpoints, resource totals, and what differs between scenarios.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sim.analysis.endpoints import SECONDARY
from sim.report.html import img, page, section, table, write_page


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
        sec_table = table(["endpoint (mean estimate)", *pivot.columns],
                           [[SECONDARY[k][0].format(lm="18-month", assay="").replace(" ()", ""),
                             *(f"{v:.3f}" for v in pivot.loc[k])] for k in pivot.index])
    changed = _changed_keys(manifest["scenarios"], reference)
    resources = pd.read_csv(out / "compare_resources.csv")
    res_pivot = resources.pivot(index="measure", columns="scenario", values="mean")
    res_pivot = res_pivot[list(dict.fromkeys(resources["scenario"]))].loc[list(dict.fromkeys(resources["measure"]))]
    res_table = table(["whole trial (mean)", *res_pivot.columns],
                       [[m.replace("_", " "), *(f"{v:.1f}" for v in res_pivot.loc[m])] for m in res_pivot.index])
    sections = [
        f"<h1>Scenario comparison</h1><div class=\"summary\"><p>{len(manifest['scenarios'])} scenarios, "
        f"{manifest['reps']} simulated trials each at n = {', '.join(map(str, manifest['n']))}, all from seed "
        f"{manifest['seed']} (common random numbers: differences are estimated from paired trials).</p></div>",
        section("Required sample size by scenario",
                 table(["scenario", *(f"n for power {t:g} (MCSE interval)" for t in targets),
                         "true 18-month RFS"], need_rows)),
        section("Power by scenario", img(power_png, "Power against n by scenario") + table(
            ["scenario", "n", "power (MCSE)", "type I error", "transplanted (mean)", "evaluable (mean)",
             "duration (months)"], power_rows)),
        section(f"Power differences from {reference}", table(
            ["scenario", "n", "difference", "MCSE (paired, common random numbers)", "MCSE if run independently"],
            diff_rows)),
        section(f"Secondary endpoints at n = {oc['n'].max()}", sec_table),
        section(f"Resource and drug-supply totals at n = {manifest['forecast_n']} "
                 f"({manifest['forecast_reps']} trials per scenario)", res_table),
        section("What differs from the reference", table(["scenario", "changed keys"], changed, text=True)),
        section("Reproducibility (STRESS-DES 5.1-5.4)", table(["item", "value"], [
            ["code version", str(manifest.get("code_version"))],
            ["software", ", ".join(f"{k} {v}" for k, v in sorted(manifest["versions"].items()))],
            ["machine", ", ".join(f"{k}: {v}" for k, v in manifest.get("machine", {}).items())],
            ["run", f"{manifest['started']} to {manifest['finished']} ({manifest['wall_seconds']} s)"],
            ["variants", "; ".join(manifest.get("variants", [])) or "-"],
        ], text=True)),
    ]
    return write_page(out, page("Scenario comparison", sections))


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
