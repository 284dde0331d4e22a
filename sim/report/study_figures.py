"""Figures of a study over many simulated trials: power, precision, expected patient flow, resources,
scenario comparison and tornado. Every axis has units; every estimate shows its Monte Carlo uncertainty.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.analysis.flow import FOLLOW_UP_BOXES, box_label
from sim.report.plotting import plt, png
from sim.scenario.schema import Analysis


def power_figure(oc: pd.DataFrame, targets: tuple[float, ...], analysis: Analysis, true_rfs: float, reps: int
                 ) -> bytes:
    """Power at the scenario's true RFS and at p1, and type I error, against n enrolled, +-1.96 MCSE bands."""
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    rows = oc[oc["analysis"] == "rfs"].sort_values("n")
    lm = f"{analysis.landmark_months:g}-month RFS"
    curves = (("power", f"power if true {lm} = {true_rfs:.0%} (the scenario)", "tab:blue", "-", "o"),
              ("power_alt", f"power if true {lm} = {analysis.p1:.0%} (design alternative p1)", "tab:purple", "--",
               "^"),
              ("type1", f"type I error: true {lm} = {analysis.p0:.0%} (the null)", "tab:red", "-", "s"))
    for measure, label, color, ls, marker in curves:
        if measure not in rows:
            continue
        ok = rows[rows[measure].notna()]
        n, y, se = ok["n"].to_numpy(), ok[measure].to_numpy(), ok[f"{measure}_mcse"].to_numpy()
        ax.plot(n, y, color=color, ls=ls, marker=marker, ms=3.5, label=label)
        ax.fill_between(n, y - 1.96 * se, y + 1.96 * se, color=color, alpha=0.18, lw=0)
    # Labels of the reference lines sit just outside the right edge, clear of the curves.
    edge = ax.get_yaxis_transform()
    for target in targets:
        ax.axhline(target, color="tab:green", ls=":", lw=1)
        ax.text(1.01, target, f"power\n{target:g}", color="tab:green", fontsize=8, va="center", transform=edge)
    ax.axhline(analysis.alpha, color="tab:red", ls=":", lw=1)
    ax.text(1.01, analysis.alpha, f"alpha\n{analysis.alpha:g}", color="tab:red", fontsize=8, va="center",
            transform=edge)
    grid = rows[rows["type1"].notna()] if "type1" in rows else rows
    if not grid.empty:
        top = ax.secondary_xaxis("top")
        top.set_xticks(grid["n"].to_numpy(), labels=[f"{v:.0f}" for v in grid["transplanted_mean"].to_numpy()])
        top.set_xlabel("Mean number transplanted (scenario)", fontsize=9)
    ax.set_xlabel("Patients enrolled (n)")
    ax.set_ylabel("Probability of rejecting H0 (bands: +-1.96 Monte Carlo SE)")
    ax.set_ylim(0, 1)
    ax.set_title(f"Power of the {lm} test ({analysis.test}, one-sided alpha {analysis.alpha:g}); "
                 f"{reps} simulated trials per n", fontsize=10)
    ax.legend(loc="center right", fontsize=8, framealpha=0.9)
    ax.grid(alpha=0.3)
    return png(fig)


def precision_figure(oc: pd.DataFrame) -> bytes:
    """Mean and 90th-percentile 95% CI half-width of the primary estimate against n, +-1.96 MCSE."""
    rows = oc[oc["analysis"] == "rfs"].sort_values("n")
    fig, ax = plt.subplots(figsize=(8, 4.8))
    n = rows["n"].to_numpy()
    for measure, label, color in (("halfwidth_mean", "mean", "tab:blue"), ("halfwidth_p90", "90th percentile",
                                                                           "tab:orange")):
        y, se = rows[measure].to_numpy(), rows[f"{measure}_mcse"].to_numpy()
        ax.errorbar(n, y, yerr=1.96 * se, marker="o", ms=4, capsize=3, color=color, label=f"CI half-width, {label}")
    ax.plot(n, rows["empse"].to_numpy() * 1.96, ls="--", color="grey", label="1.96 x empirical SE")
    ax.set_xlabel("Patients enrolled (n)")
    ax.set_ylabel("Half-width of the 95% CI (probability scale)")
    ax.set_title("Precision of 18-month RFS after HSCT (error bars: +-1.96 Monte Carlo SE)", fontsize=11)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    return png(fig)


RESOURCE_PANELS = (
    ("blinatumomab_vials", "Blinatumomab vials per month", "vials / month"),
    ("bed_days_transplant", "Transplant bed-days per month", "bed-days / month"),
    ("bed_days_vip", "VIP inpatient bed-days per month", "bed-days / month"),
    ("bed_days_blinatumomab", "Blinatumomab-start inpatient bed-days per month", "bed-days / month"),
    ("transplant_admissions", "Transplant admissions per month", "admissions / month"),
    ("mrd_assays", "MRD assays per month", "assays / month"),
)


def resources_figure(forecast: pd.DataFrame, n: int, reps: int) -> bytes:
    """Monthly resource use: median with a 10th-90th percentile band across simulated trials."""
    fig, axes = plt.subplots(3, 2, figsize=(10, 9), sharex=True)
    for ax, (measure, title, unit) in zip(axes.ravel(), RESOURCE_PANELS, strict=True):
        rows = forecast[forecast["measure"] == measure]
        month = rows["month"].to_numpy() + 0.5
        ax.fill_between(month, rows["p10"], rows["p90"], color="tab:blue", alpha=0.25, lw=0, label="10th-90th pct")
        ax.plot(month, rows["p50"], color="tab:blue", label="median")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit, fontsize=9)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    for ax in axes[-1]:
        ax.set_xlabel("Months since the first site opened")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"Resource forecast: {reps} simulated trials of n = {n} enrolled", fontsize=11)
    return png(fig)


def compare_figure(oc: pd.DataFrame, targets: tuple[float, ...], title: str) -> bytes:
    """Power of the primary test against n, one line per scenario, with +-1.96 MCSE bands."""
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    for i, (name, block) in enumerate(oc[oc["analysis"] == "rfs"].groupby("scenario", sort=False)):
        block = block.sort_values("n")
        n, y, se = block["n"].to_numpy(), block["power"].to_numpy(), block["power_mcse"].to_numpy()
        color = plt.cm.tab10(i % 10)
        ax.plot(n, y, marker="o", ms=4, color=color, label=name)
        ax.fill_between(n, y - 1.96 * se, y + 1.96 * se, color=color, alpha=0.15, lw=0)
    edge = ax.get_yaxis_transform()
    for target in targets:
        ax.axhline(target, color="tab:green", ls=":", lw=1)
        ax.text(1.01, target, f"power\n{target:g}", color="tab:green", fontsize=8, va="center", transform=edge)
    ax.set_xlabel("Patients enrolled (n)")
    ax.set_ylabel("Power of the primary test (bands: +-1.96 Monte Carlo SE)")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return png(fig)


def tornado_figure(tornado: pd.DataFrame, base: dict, labels: dict[str, str], grid: tuple[int, ...], reps: int
                   ) -> bytes:
    """One-way sensitivity, largest influence on top: the required n (with an n grid) or the power (one n),
    and the median months to the final analysis. Bar ends are the parameter's low and high value, annotated
    with the implied true RFS and P(reach HSCT); error bars are the Monte Carlo ranges (+-1.96 MCSE)."""
    with_n = bool(tornado[["required_n_low", "required_n_high"]].notna().any().any())
    rows = tornado.iloc[::-1].reset_index(drop=True)
    fig, axes = plt.subplots(1, 2, figsize=(13.5, 0.75 * len(rows) + 2.2), squeeze=False,
                             gridspec_kw={"width_ratios": [1.6, 1]})
    first, second = axes[0]
    if with_n:
        top = max(grid) + 1
        _tornado_panel(first, rows, "required_n", base["required_n"], errors=("required_n_low", "required_n_high"),
                       cap=top, fmt="{:.0f}")
        first.set_xlabel(f"Enrolled patients needed for {base['target_power']:g} power at the scenario's own RFS\n"
                         f"(whiskers: Monte Carlo range; a bar end at {top} means 'more than {max(grid)}')")
    else:
        _tornado_panel(first, rows, "power", base["power"], mcse="power_mcse", fmt="{:.2f}")
        first.set_xlabel(f"Power at n = {base['n']} enrolled (whiskers: +-1.96 Monte Carlo SE)")
    first.set_yticks(range(len(rows)), labels=[f"{_wrap(labels[k])}\n({k})" for k in rows["key"]], fontsize=8)
    _tornado_panel(second, rows, "duration_months_p50", base["duration_months_p50"], fmt="{:.0f}")
    second.set_yticks(range(len(rows)), labels=[""] * len(rows))
    second.set_xlabel(f"Median months from first enrollment\nto the final analysis, at n = {base['n']}")
    fig.suptitle(f"One-way sensitivity ({reps} simulated trials per value; bar ends: the low and the high value "
                 "of each input, with the true 18-month RFS and P(reach HSCT) it implies)", fontsize=10)
    return png(fig)


def _wrap(text: str, width: int = 34) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])


def _tornado_panel(ax, rows: pd.DataFrame, measure: str, base: float, fmt: str, mcse: str | None = None,
                   errors: tuple[str, str] | None = None, cap: float | None = None) -> None:
    """Bars from the low-value to the high-value result of one measure, annotated at both ends."""
    for i, r in rows.iterrows():
        ends = []
        for side in ("low", "high"):
            value = r[f"{measure}_{side}"]
            if value != value and cap is not None:
                value = cap
            ends.append(value)
        if not all(np.isfinite(ends)):
            continue
        lo, hi = sorted(ends)
        if hi > lo:
            ax.barh(i, hi - lo, left=lo, height=0.5, color="#9bb7dd", edgecolor="#34568b")
        else:
            ax.plot([lo], [i], marker="D", color="#34568b")
        for side, value, dy in (("low", ends[0], -0.3), ("high", ends[1], 0.3)):
            y = i + dy / 3          # each end's whisker on its own line, next to its label
            if mcse:
                ax.errorbar(value, y, xerr=1.96 * r[f"{mcse}_{side}"], color="black", capsize=3, lw=0.8)
            if errors:
                lo_e, hi_e = r[f"{errors[0]}_{side}"], r[f"{errors[1]}_{side}"]
                hi_e = cap if hi_e != hi_e and cap is not None else hi_e
                if np.isfinite(lo_e) and np.isfinite(hi_e):
                    ax.errorbar(value, y, xerr=[[max(value - lo_e, 0)], [max(hi_e - value, 0)]], color="black",
                                capsize=3, lw=0.8)
            note = (f"{r[side + '_value']:g}: {fmt.format(value)} (RFS {r['true_rfs_' + side]:.0%}, HSCT "
                    f"{r['p_reach_hsct_' + side]:.0%})")
            ax.text(value, i + dy, note, va="center", ha="center", fontsize=7)
    if np.isfinite(base):
        ax.axvline(base, color="black", lw=1, ls="--", label=f"scenario as given: {fmt.format(base)}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    lo, hi = ax.get_xlim()
    pad = (hi - lo) * 0.18       # room for the labels at the bar ends
    ax.set_xlim(lo - pad, hi + pad)
    ax.grid(alpha=0.3, axis="x")


def expected_flow_figure(flow: pd.DataFrame, n: int, reps: int) -> bytes:
    """The expected CONSORT diagram at n enrolled: each box's mean count (10th-90th percentile) over the
    simulated trials; every exit reason that happened in any trial once, then the transplanted and how
    they stand at the data cutoff."""
    at = flow[flow["n"] == n].set_index("box")
    exits = [b for b in at.index if b not in ("enrolled", "transplanted", "on_pathway", *FOLLOW_UP_BOXES)]
    exits = [b for b in [*exits, "on_pathway"] if at.loc[b, "p90"] > 0 or at.loc[b, "mean"] > 0]
    follow = [b for b in FOLLOW_UP_BOXES if at.loc[b, "p90"] > 0 or at.loc[b, "mean"] > 0]

    def text(box: str) -> str:
        r = at.loc[box]
        return f"{box_label(box)}: {r['mean']:.1f} ({r['p10']:.0f}-{r['p90']:.0f})"

    side_height = 0.32 * (len(exits) + 1)
    height = max(4.2, side_height + 2.6)
    fig, ax = plt.subplots(figsize=(9.5, height))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, height)
    ax.axis("off")
    main = {"boxstyle": "round,pad=0.45", "fc": "#eef3fb", "ec": "#34568b"}
    side = {"boxstyle": "round,pad=0.4", "fc": "#fbf1ea", "ec": "#b5651d"}
    arrow = {"arrowstyle": "->", "color": "#34568b"}
    top, middle, bottom = height - 0.55, 1.75, 0.45
    ax.text(2.4, top, text("enrolled").replace(": ", "\n"), ha="center", va="center", fontsize=10, bbox=main)
    ax.text(2.4, middle, text("transplanted").replace(": ", "\n"), ha="center", va="center", fontsize=10, bbox=main)
    ax.annotate("", xy=(2.4, middle + 0.5), xytext=(2.4, top - 0.45), arrowprops=arrow)
    level = (top + middle) / 2
    ax.text(5.0, level, "Left the pathway before HSCT:\n" + "\n".join(text(b) for b in exits), ha="left",
            va="center", fontsize=8.5, bbox=side)
    ax.annotate("", xy=(4.9, level), xytext=(2.45, level), arrowprops={"arrowstyle": "->", "color": "#b5651d"})
    if follow:   # nobody transplanted: no follow-up box, and no arrow to it
        ax.text(5.0, bottom, "\n".join(text(b) for b in follow), ha="left", va="center", fontsize=8.5, bbox=side)
        ax.annotate("", xy=(4.9, bottom), xytext=(2.45, middle - 0.45), arrowprops={"arrowstyle": "->",
                                                                                   "color": "#b5651d"})
    ax.set_title(f"Expected patient flow at n = {n} enrolled: mean (10th-90th percentile) over {reps} simulated "
                 "trials", fontsize=10.5)
    return png(fig)
