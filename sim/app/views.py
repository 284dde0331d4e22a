"""What the explorer page shows, as HTML fragments built from an engine Snapshot (no web library here).

The headline and its flags are the sweep's (sim/report/headline.py) and the figures the report's, so
the page says what the report will say. Every number says at which truth, which n and how sure:
replicates so far, seed, Monte Carlo standard errors and ranges.
"""

from __future__ import annotations

import html

import numpy as np

from sim.app.engine import FIRST_ESTIMATE, Snapshot
from sim.report.headline import headline, percent
from sim.report.html import img
from sim.report.study_figures import expected_flow_figure, power_figure
from sim.study.oc import required_n_text


def status(snap: Snapshot | None, newest: Snapshot | None, stale: bool) -> str:
    """How many simulated trials the numbers shown rest on (data-* attributes say the same for scripts),
    whether more are coming, the seed and the largest MCSE of a power; and the progress of a newer question."""
    if snap is None:
        text = "Simulating the first trials..."
        if newest is not None:
            text = (f"Simulating: {newest.reps:,} of {min(newest.request.reps, FIRST_ESTIMATE):,} trials for the "
                    "first estimate...")
        return f'<div id="progress" data-reps="0" data-done="0" data-generation="0">{text}</div>'
    req = snap.request
    mcse = float(snap.oc["power_mcse"].max()) if len(snap.oc) else float("nan")
    state = f"done in {snap.seconds:.1f} s" if snap.done else f"refining, {snap.seconds:.0f} s so far"
    text = (f"<b>{snap.reps:,}</b> of {req.reps:,} simulated trials per sample size ({state}); seed {req.seed}, "
            f"replicates 1-{snap.reps:,}. Monte Carlo standard error of each power at most {mcse:.3f}.")
    if newest is not None and newest.generation != snap.generation:
        text = (f"<b>Computing the answer to your change</b>: {newest.reps:,} of "
                f"{min(newest.request.reps, FIRST_ESTIMATE):,} trials for the first estimate. The numbers below are "
                f"still those of the previous values ({snap.reps:,} trials).")
    if snap.error:
        text += f' <span class="error">{html.escape(snap.error)}</span>'
    if stale:
        text += (' <span class="error">These results are for the last valid values: fix the value marked in red '
                 "to see its answer.</span>")
    return (f'<div id="progress" data-reps="{snap.reps}" data-done="{int(snap.done)}" '
            f'data-generation="{snap.generation}" data-seconds="{snap.seconds:.3f}" data-stale="{int(stale)}">'
            f"{text}</div>")


def headline_html(snap: Snapshot | None) -> str:
    """The sweep's plain-language headline and flags for the current numbers."""
    if snap is None or snap.reps < 2 or snap.sizes.empty:
        return "<p>The first estimate appears after a few hundred simulated trials.</p>"
    req = snap.request
    top = headline(req.scenario.analysis, snap.true_rfs, snap.oc, snap.sizes, req.ns)
    flags = "".join(f'<p class="{"warning" if f.prominent else "note"}">{"WARNING" if f.prominent else "Note"}: '
                    f"{html.escape(f.text)}</p>" for f in top.flags)
    return f'<p class="headline">{html.escape(" ".join(top.sentences))}</p>{flags}'


def required_html(snap: Snapshot | None) -> str:
    """Required n for each target power at the scenario's own RFS and at p1, with the Monte Carlo range."""
    if snap is None or snap.sizes.empty:
        return ""
    a = snap.request.scenario.analysis
    rows = []
    for s in snap.sizes.itertuples(index=False):
        truth = (f"the scenario's own {percent(snap.true_rfs)}" if s.at == "scenario"
                 else f"the protocol's p1 = {percent(a.p1)}")
        rows.append(f'<tr><td>{s.target_power:.0%}</td><td>{truth}</td>'
                    f'<td class="required" data-target="{s.target_power}" data-at="{s.at}">'
                    f"{html.escape(required_n_text(s))}</td></tr>")
    return ("<table><tr><th>target power</th><th>if the true RFS is</th><th>patients to enroll</th></tr>"
            + "".join(rows) + "</table><p class=\"note\">On the simulated grid; the Monte Carlo range is where the "
            "answer lies given the simulation's own uncertainty (power +- 1.96 MCSE). The report refines it to the "
            "patient.</p>")


def oc_table(snap: Snapshot | None) -> str:
    """Per n: transplanted, evaluable, power at the scenario and at p1, type I error, duration, difference."""
    if snap is None or snap.oc.empty:
        return ""
    diff = {}
    if snap.difference is not None and len(snap.difference):
        diff = snap.difference.set_index("n")
    head = ["n enrolled", "transplanted (mean)", "evaluable (mean)", "power (MCSE)", "power at p1 (MCSE)",
            "type I error (MCSE)", "months to final analysis, median (10th-90th pct)"]
    if snap.difference is not None:
        head.append(f"power minus as loaded (paired MCSE, {snap.difference_reps:,} trials)")
    rows = []
    for r in snap.oc.sort_values("n").itertuples(index=False):
        cells = [f"{r.n}", f"{r.transplanted_mean:.1f}", f"{r.evaluable_mean:.1f}",
                 f'<span id="power-n-{r.n}" data-power="{r.power!r}">{r.power:.3f}</span> ({r.power_mcse:.3f})',
                 f"{r.power_alt:.3f} ({r.power_alt_mcse:.3f})", f"{r.type1:.3f} ({r.type1_mcse:.3f})",
                 f"{r.duration_months_p50:.0f} ({r.duration_months_p10:.0f}-{r.duration_months_p90:.0f})"]
        if snap.difference is not None:
            if r.n in getattr(diff, "index", ()):
                d = diff.loc[r.n]
                cells.append(f"{d.power_difference:+.3f} ({d.mcse_paired:.3f})")
            else:
                cells.append("(waiting for the loaded scenario's trials)")
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (f'<table id="oc">{"".join(f"<th>{html.escape(h)}</th>" for h in head)}{"".join(rows)}</table>'
            '<p class="note">Power: the chance that the trial shows RFS above the null if the true RFS is the '
            "scenario's (or p1); type I error: the chance of a false claim when the true RFS equals p0. The "
            "difference from the scenario as loaded compares the same simulated trials (common random numbers), "
            "so its paired MCSE is smaller than either power's.</p>")


def power_plot(snap: Snapshot | None) -> str:
    """The report's power figure (bands +-1.96 MCSE) for the current replicates."""
    if snap is None or snap.oc.empty:
        return ""
    a = snap.request.scenario.analysis
    return img(power_figure(snap.oc, snap.request.targets, a, snap.true_rfs, snap.reps),
               "Power and type I error against n")


def funnel_n(snap: Snapshot) -> int:
    """The grid n closest to the required n for the first target at the scenario's RFS (else the largest)."""
    own = snap.sizes[snap.sizes["at"] == "scenario"].sort_values("target_power")
    grid = np.asarray(snap.request.ns)
    wanted = own["required_n"].iloc[0] if len(own) else np.nan
    return int(grid.max() if wanted != wanted else grid[np.abs(grid - wanted).argmin()])


def funnel_plot(snap: Snapshot | None) -> str:
    """The expected CONSORT diagram at the n closest to the required n."""
    if snap is None or snap.flow.empty:
        return ""
    n = funnel_n(snap)
    return img(expected_flow_figure(snap.flow, n, snap.reps), f"Expected patient flow at n = {n}")


def changes_html(overrides: tuple[str, ...], labels: dict[str, str], scenario_file: str, grid_text: str,
                 reps: int, seed: int) -> str:
    """What differs from the loaded file, in words and as the command line that runs it."""
    if not overrides:
        return f"<p>The scenario as loaded from <code>{html.escape(scenario_file)}</code>, nothing changed.</p>"
    from sim.scenario.schema import parse_override

    items = "".join(f"<li><code>{html.escape(o)}</code> {html.escape(labels.get(parse_override(o)[0], ''))}</li>"
                    for o in overrides)
    command = (f"python run_sim.py sweep --scenario {scenario_file} --n {grid_text} --reps {reps} --seed {seed} "
               "--endpoints primary" + "".join(f" --set {o}" for o in overrides))
    return (f"<p>Changed from <code>{html.escape(scenario_file)}</code>:</p><ul>{items}</ul>"
            f'<p class="note">The same on the command line: <code id="command">{html.escape(command)}</code></p>')
