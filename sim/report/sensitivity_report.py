"""The HTML report of a one-way sensitivity study (sensitivity): which assumption moves the answer most.

Reads a sensitivity output folder (manifest.json, sensitivity.csv, tornado.csv, tornado.png) and writes
report.html: the tornado (required n, or power at a single n, and the months to the final analysis,
which accrual drives even when power does not move), a table of every value run with the true RFS and
P(reach HSCT) it implies, the scenario as given, and reproducibility.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from sim.report.headline import percent
from sim.report.html import DOCS_NOTE, img, page, section, table, write_page
from sim.study.provenance import read_manifest


def write_sensitivity_report(out: Path) -> Path:
    """Build OUT/report.html from a sensitivity run."""
    manifest = read_manifest(out)
    table_rows = pd.read_csv(out / "sensitivity.csv")
    tornado = pd.read_csv(out / "tornado.csv")
    base = manifest["base"]
    name = manifest["scenario"]["name"]
    need = "not reached" if base["required_n"] != base["required_n"] else f"{base['required_n']:.0f}"
    first = tornado.iloc[0]
    sections = [
        f"<h1>One-way sensitivity: {html.escape(name)}</h1>"
        f"<div class=\"summary\"><p class=\"headline\">As given, the scenario needs {need} enrolled patients for "
        f"{percent(base['target_power'])} power (true 18-month RFS {percent(base['true_rfs'])}, "
        f"{percent(base['p_reach_hsct'])} of enrolled patients reach HSCT); at n = {base['n']} its power is "
        f"{percent(base['power'])} and the final analysis comes about {base['duration_months_p50']:.0f} months after "
        f"the first enrollment. Of the inputs varied, <b>{html.escape(first['label'])}</b> moves the answer most "
        f"({first['low_value']:g} to {first['high_value']:g}).</p>"
        f"<p class=\"note\">Each input is varied alone, the others as given; {manifest['reps']} simulated trials "
        "per value, all from one seed (common random numbers), so differences between values are sharper than "
        "independent runs would give. Values equal to the scenario as given reuse its results.</p></div>",
        section("Tornado", img((out / "tornado.png").read_bytes(), "Tornado of required n and duration")),
        section("Every value run", _values(table_rows, tornado)),
        section("How to read this report", "<p>Bars run from the result at the low end of an input's range to "
                "the result at the high end; the dashed line is the scenario as given. Whiskers show the Monte "
                f"Carlo range (the simulation's own uncertainty). {DOCS_NOTE}</p>"),
        section("Reproducibility (STRESS-DES 5.1-5.4)", table(["item", "value"], [
            ["code version", str(manifest.get("code_version"))],
            ["software", ", ".join(f"{k} {v}" for k, v in sorted(manifest["versions"].items()))],
            ["machine", ", ".join(f"{k}: {v}" for k, v in manifest.get("machine", {}).items())],
            ["run", f"{manifest['started']} to {manifest['finished']} ({manifest['wall_seconds']} s)"],
            ["how to run", f"run_sim.py sensitivity --scenario {manifest['scenario_file']}"
             + "".join(f" --set {o}" for o in manifest.get("overrides", []))
             + "".join(f" --vary {v}" for v in manifest["vary"])
             + f" --n {' '.join(map(str, manifest['n']))} --reps {manifest['reps']} --seed {manifest['seed']}"],
        ], text=True)),
    ]
    return write_page(out, page(f"One-way sensitivity: {name}", sections))


def _values(rows: pd.DataFrame, tornado: pd.DataFrame) -> str:
    labels = dict(zip(tornado["key"], tornado["label"], strict=True))
    out = []
    for r in rows.itertuples():
        need = "not reached" if r.required_n != r.required_n else f"{r.required_n:.0f}"
        out.append([f"{labels.get(r.key, r.key)} ({r.key})", f"{r.value:g}", percent(r.true_rfs),
                    percent(r.p_reach_hsct), need, f"{r.power:.3f} ({r.power_mcse:.3f})",
                    f"{r.duration_months_p50:.0f}"])
    n = int(rows["n"].iloc[0])
    return table(["input", "value", "true 18-month RFS", "P(reach HSCT)", "enrolled needed",
                  f"power at n = {n} (MCSE)", f"months to final analysis at n = {n} (median)"], out, text=True)
