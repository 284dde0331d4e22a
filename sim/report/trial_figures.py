"""Figures of one simulated trial: KM of RFS and OS after HSCT, relapse vs NRM incidence, patient flow.

Curves stop where fewer than MIN_AT_RISK patients remain at risk (or at MAX_MONTHS), as published
survival curves do, so a reader is not misled by the unstable tail. Plain matplotlib on the project's
own estimators (the Kaplan-Meier curve with its log(-log) interval is estimators.km_curve, checked
against lifelines in the tests); kept out of the modules the sizing study's workers import.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.analysis.endpoints import Observed, competing, time_to_first
from sim.report.plotting import empty, plt, png
from sim.scenario.schema import DAYS_PER_MONTH
from sim.stats.estimators import cumulative_incidence_curve, km_curve

MIN_AT_RISK = 10
MAX_MONTHS = 30.0


def plot_end_months(time_days: np.ndarray, landmark_months: float) -> float:
    """Where to stop the curves: the last time at least MIN_AT_RISK are at risk, capped at MAX_MONTHS."""
    months = np.sort(np.asarray(time_days, dtype=float)) / DAYS_PER_MONTH
    if months.size < MIN_AT_RISK:
        return float(min(months.max(initial=0.0), MAX_MONTHS))
    # At risk just after u: patients whose time exceeds u. The MIN_AT_RISK-th largest time is the last u
    # with at least MIN_AT_RISK still at risk just before it.
    return float(min(months[-MIN_AT_RISK], MAX_MONTHS))


def _cut_note(end: float) -> str:
    return f"curves stop at {end:.0f} months, where fewer than {MIN_AT_RISK} remain at risk (or at {MAX_MONTHS:g})"


def survival_figure(obs: Observed, landmark_months: float, p0: float) -> bytes:
    """Kaplan-Meier RFS and OS after HSCT with 95% CIs and numbers at risk, cut where few remain at risk."""
    if obs.hsct.size == 0:
        fig, ax = plt.subplots(figsize=(8, 5.5))
        return empty(fig, ax, "No patient transplanted by the data cutoff: no survival after HSCT to show")
    fig, (ax, table) = plt.subplots(2, 1, figsize=(8, 6.1), height_ratios=(5.4, 0.7))
    end = plot_end_months(obs.follow_end, landmark_months)
    rows = []
    for label, days, color in (("RFS", (obs.relapse, obs.death), "tab:blue"), ("OS", (obs.death,), "tab:green")):
        time, event = time_to_first(obs.follow_end, *days)
        months = time / DAYS_PER_MONTH
        _plot_km(ax, months, event, end, label, color)
        rows.append((label, color, np.sort(months)))
    if landmark_months <= end:
        ax.axvline(landmark_months, color="grey", ls="--", lw=1, label=f"{landmark_months:g}-month landmark")
    ax.axhline(p0, color="tab:red", ls=":", lw=1.2, label=f"p0 = {p0:g} (null RFS)")
    ax.set_xlabel(f"Months since HSCT ({_cut_note(end)})")
    ax.set_ylabel("Probability (shaded: 95% CI)")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, end * 1.02 if end > 0 else 1.0)
    ax.set_title(f"Relapse-free and overall survival after HSCT (n = {obs.hsct.size} transplanted)")
    ax.legend(loc="lower left")
    _at_risk_table(table, ax, [x for x in ax.get_xticks() if 0 <= x <= end], rows)
    return png(fig)


def _plot_km(ax: plt.Axes, months: np.ndarray, event: np.ndarray, end: float, label: str, color: str) -> None:
    """Step curve from (0, 1) to `end`, shaded 95% CI band and "|" at the censored times, as lifelines drew them."""
    times, s, lower, upper = km_curve(months, event)
    keep = times <= end
    x = np.concatenate([[0.0], times[keep], [end]])

    def steps(y: np.ndarray) -> np.ndarray:
        shown = np.concatenate([[1.0], y[keep]])
        return np.append(shown, shown[-1])

    ax.fill_between(x, steps(lower), steps(upper), step="post", color=color, alpha=0.25, linewidth=1.0)
    ax.step(x, steps(s), where="post", color=color, label=label)
    censored = np.unique(months[~event & (months <= end)])
    ax.plot(censored, s[times.searchsorted(censored)], ls="none", marker="|", ms=5, mew=1, color=color)


def _at_risk_table(table: plt.Axes, ax: plt.Axes, ticks: list[float], rows: list[tuple[str, str, np.ndarray]]
                   ) -> None:
    """Numbers at risk (time >= tick: still followed and event-free just before it) under the x ticks of ax."""
    table.set_xlim(ax.get_xlim())
    table.set_ylim(0, len(rows) + 1)
    table.axis("off")
    left = {"xycoords": ("axes fraction", "data"), "xytext": (-16, 0), "textcoords": "offset points",
            "ha": "right", "va": "center"}
    table.annotate("At risk", (0, len(rows) + 0.5), **left)
    for i, (label, color, sorted_months) in enumerate(rows):
        y = len(rows) - i - 0.5
        table.annotate(label, (0, y), color=color, **left)
        for tick in ticks:
            count = sorted_months.size - sorted_months.searchsorted(tick, side="left")
            table.text(tick, y, str(count), ha="center", va="center", clip_on=False)


def incidence_figure(obs: Observed, landmark_months: float) -> bytes:
    """Aalen-Johansen cumulative incidence of relapse and of NRM (competing risks), cut as the KM curves."""
    time, cause = competing(obs.follow_end, obs.relapse, obs.death)
    fig, ax = plt.subplots(figsize=(8, 4.8))
    if obs.hsct.size == 0:
        return empty(fig, ax, "No patient transplanted by the data cutoff: no incidence after HSCT to show")
    end = plot_end_months(obs.follow_end, landmark_months)
    for k, label, color in ((1, "Relapse", "tab:orange"), (2, "Non-relapse mortality", "tab:purple")):
        u, f = cumulative_incidence_curve(time, cause, k)
        keep = u / DAYS_PER_MONTH <= end
        x = np.concatenate([[0.0], u[keep] / DAYS_PER_MONTH, [end]])
        y = np.concatenate([[0.0], f[keep], [f[keep][-1] if keep.any() else 0.0]])
        ax.step(x, y, where="post", color=color, label=label)
    if landmark_months <= end:
        ax.axvline(landmark_months, color="grey", ls="--", lw=1, label=f"{landmark_months:g}-month landmark")
    ax.set_xlabel(f"Months since HSCT ({_cut_note(end)})")
    ax.set_ylabel("Cumulative incidence (probability)")
    ax.set_ylim(0, max(0.5, ax.get_ylim()[1]))
    ax.set_xlim(0, end * 1.02 if end > 0 else 1.0)
    ax.set_title(f"Relapse and NRM after HSCT, competing risks (n = {obs.hsct.size})")
    ax.legend(loc="upper left")
    return png(fig)


def flow_figure(flow: pd.DataFrame) -> bytes:
    """CONSORT-style diagram: main steps down the left, who left and why to the right."""
    steps = [(row.step, int(row.count), []) for row in flow.itertuples() if row.level == 0]
    groups: list[list[tuple[str, int]]] = []
    for row in flow.itertuples():
        if row.level == 0:
            groups.append([])
        else:
            groups[-1].append((row.step, int(row.count)))
    height = 1.25 * len(steps) + 0.5
    fig, ax = plt.subplots(figsize=(9, height))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, height)
    ax.axis("off")
    box = {"boxstyle": "round,pad=0.4", "fc": "#eef3fb", "ec": "#34568b"}
    side = {"boxstyle": "round,pad=0.35", "fc": "#fbf1ea", "ec": "#b5651d"}
    for i, ((step, count, _), notes) in enumerate(zip(steps, groups, strict=True)):
        y = height - 0.8 - 1.25 * i
        ax.text(2.2, y, f"{step[0].upper()}{step[1:]}\nn = {count}", ha="center", va="center", fontsize=10, bbox=box)
        if i < len(steps) - 1:
            ax.annotate("", xy=(2.2, y - 0.85), xytext=(2.2, y - 0.4),
                        arrowprops={"arrowstyle": "->", "color": "#34568b"})
        shown = [f"{label}: {n}" for label, n in notes if n > 0 or "off pathway" in label]
        if shown:
            ax.text(5.0, y - 0.2, "\n".join(shown), ha="left", va="center", fontsize=8.5, bbox=side)
            ax.annotate("", xy=(4.85, y - 0.2), xytext=(3.6, y - 0.2),
                        arrowprops={"arrowstyle": "->", "color": "#b5651d"})
    ax.set_title("Patient flow", fontsize=12)
    return png(fig)
