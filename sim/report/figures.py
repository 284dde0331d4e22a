"""Figures of one simulated trial: KM of RFS and OS after HSCT, relapse vs NRM incidence, patient flow.

Uses matplotlib (Agg) and lifelines' plotting of numbers at risk; kept out of the modules that the
sizing study's workers import, so they do not pay for these imports.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from lifelines import KaplanMeierFitter  # noqa: E402
from lifelines.plotting import add_at_risk_counts  # noqa: E402

from sim.analysis.endpoints import Observed, competing, time_to_first  # noqa: E402
from sim.scenario.schema import DAYS_PER_MONTH  # noqa: E402
from sim.stats.estimators import cumulative_incidence_curve  # noqa: E402


def survival_figure(obs: Observed, landmark_months: float, p0: float) -> bytes:
    """Kaplan-Meier RFS and OS after HSCT with 95% CIs, numbers at risk, the landmark and p0."""
    fig, ax = plt.subplots(figsize=(8, 5.5))
    if obs.hsct.size == 0:
        return _empty(fig, ax, "No patient transplanted by the data cutoff: no survival after HSCT to show")
    fitters = []
    for label, days, color in (("RFS", (obs.relapse, obs.death), "tab:blue"), ("OS", (obs.death,), "tab:green")):
        time, event = time_to_first(obs, *days)
        kmf = KaplanMeierFitter(label=label).fit(time / DAYS_PER_MONTH, event)
        kmf.plot_survival_function(ax=ax, color=color, ci_show=True, show_censors=True,
                                   censor_styles={"ms": 5, "marker": "|"})
        fitters.append(kmf)
    ax.axvline(landmark_months, color="grey", ls="--", lw=1, label=f"{landmark_months:g}-month landmark")
    ax.axhline(p0, color="tab:red", ls=":", lw=1.2, label=f"p0 = {p0:g} (null RFS)")
    ax.set_xlabel("Months since HSCT")
    ax.set_ylabel("Probability")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.set_title(f"Relapse-free and overall survival after HSCT (n = {obs.hsct.size} transplanted)")
    ax.legend(loc="lower left")
    add_at_risk_counts(*fitters, ax=ax, rows_to_show=["At risk"])
    return _png(fig)


def incidence_figure(obs: Observed, landmark_months: float) -> bytes:
    """Aalen-Johansen cumulative incidence of relapse and of NRM (competing risks)."""
    time, cause = competing(obs, obs.relapse, obs.death)
    fig, ax = plt.subplots(figsize=(8, 4.8))
    if obs.hsct.size == 0:
        return _empty(fig, ax, "No patient transplanted by the data cutoff: no incidence after HSCT to show")
    for k, label, color in ((1, "Relapse", "tab:orange"), (2, "Non-relapse mortality", "tab:purple")):
        u, f = cumulative_incidence_curve(time, cause, k)
        end = float(time.max()) if time.size else 0.0
        x = np.concatenate([[0.0], u, [end]]) / DAYS_PER_MONTH
        y = np.concatenate([[0.0], f, [f[-1] if f.size else 0.0]])
        ax.step(x, y, where="post", color=color, label=label)
    ax.axvline(landmark_months, color="grey", ls="--", lw=1, label=f"{landmark_months:g}-month landmark")
    ax.set_xlabel("Months since HSCT")
    ax.set_ylabel("Cumulative incidence")
    ax.set_ylim(0, max(0.5, ax.get_ylim()[1]))
    ax.set_xlim(left=0)
    ax.set_title(f"Relapse and NRM after HSCT, competing risks (n = {obs.hsct.size})")
    ax.legend(loc="upper left")
    return _png(fig)


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
    return _png(fig)


def _png(fig: plt.Figure) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def power_figure(oc: pd.DataFrame, targets: tuple[float, ...], alpha: float, title: str) -> bytes:
    """Power and type I error against the number enrolled, with +-1.96 MCSE bands and target lines."""
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    styles = {"rfs": ("Primary: 18-month RFS after HSCT", "tab:blue", "-"),
              "itt": ("ITT sensitivity: event-free survival from enrollment", "tab:gray", "--")}
    for analysis, (label, color, ls) in styles.items():
        rows = oc[oc["analysis"] == analysis].sort_values("n")
        if rows.empty:
            continue
        n = rows["n"].to_numpy()
        for measure, marker, text in (("power", "o", "power"), ("type1", "s", "type I error")):
            y, se = rows[measure].to_numpy(), rows[f"{measure}_mcse"].to_numpy()
            ax.plot(n, y, color=color, ls=ls, marker=marker, ms=4, label=f"{label}: {text}")
            ax.fill_between(n, y - 1.96 * se, y + 1.96 * se, color=color, alpha=0.18, lw=0)
    # Labels of the reference lines sit just outside the right edge, clear of the curves.
    edge = ax.get_yaxis_transform()
    for target in targets:
        ax.axhline(target, color="tab:green", ls=":", lw=1)
        ax.text(1.01, target, f"power\n{target:g}", color="tab:green", fontsize=8, va="center", transform=edge)
    ax.axhline(alpha, color="tab:red", ls=":", lw=1)
    ax.text(1.01, alpha, f"alpha\n{alpha:g}", color="tab:red", fontsize=8, va="center", transform=edge)
    primary = oc[oc["analysis"] == "rfs"].sort_values("n")
    if not primary.empty:
        top = ax.secondary_xaxis("top")
        top.set_xticks(primary["n"].to_numpy(),
                       labels=[f"{v:.0f}" for v in primary["transplanted_mean"].to_numpy()])
        top.set_xlabel("Mean number transplanted", fontsize=9)
    ax.set_xlabel("Patients enrolled (n)")
    ax.set_ylabel("Probability of rejecting H0 (bands: +-1.96 Monte Carlo SE)")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=11)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def _empty(fig: plt.Figure, ax: plt.Axes, message: str) -> bytes:
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, wrap=True)
    return _png(fig)


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
    return _png(fig)


RESOURCE_PANELS = (
    ("blinatumomab_vials", "Blinatumomab vials per month"),
    ("bed_days_transplant", "Transplant bed-days per month"),
    ("bed_days_vip", "VIP inpatient bed-days per month"),
    ("bed_days_blinatumomab", "Blinatumomab-start inpatient bed-days per month"),
    ("transplant_admissions", "Transplant admissions per month"),
    ("mrd_assays", "MRD assays per month"),
)


def resources_figure(forecast: pd.DataFrame, n: int, reps: int) -> bytes:
    """Monthly resource use: median with a 10th-90th percentile band across simulated trials."""
    fig, axes = plt.subplots(3, 2, figsize=(10, 9), sharex=True)
    for ax, (measure, title) in zip(axes.ravel(), RESOURCE_PANELS, strict=True):
        rows = forecast[forecast["measure"] == measure]
        month = rows["month"].to_numpy() + 0.5
        ax.fill_between(month, rows["p10"], rows["p90"], color="tab:blue", alpha=0.25, lw=0, label="10th-90th pct")
        ax.plot(month, rows["p50"], color="tab:blue", label="median")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    for ax in axes[-1]:
        ax.set_xlabel("Months since the first site opened")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"Resource forecast: {reps} simulated trials of n = {n} enrolled", fontsize=11)
    return _png(fig)


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
    return _png(fig)


def tornado_figure(tornado: pd.DataFrame, base_power: float, n: int, base_required_n: float = np.nan,
                   grid: tuple[int, ...] = ()) -> bytes:
    """One-way sensitivity: power at n (and, with an n grid, the required n) at the low and high end of
    each parameter's range, largest swing on top."""
    with_n = bool(tornado["required_n_low"].notna().any() or tornado["required_n_high"].notna().any())
    fig, axes = plt.subplots(1, 2 if with_n else 1, figsize=(13 if with_n else 9, 0.6 * len(tornado) + 1.8),
                             squeeze=False)
    rows = tornado.iloc[::-1].reset_index(drop=True)
    panels = [("power_low", "power_high", base_power, f"Power at n = {n} enrolled", (0, 1))]
    if with_n:
        pad = (max(grid) - min(grid)) * 0.05 + 1 if grid else 5
        panels.append(("required_n_low", "required_n_high", base_required_n,
                       "Required n enrolled for the first target power (no bar: beyond the grid)",
                       (min(grid) - pad, max(grid) + pad) if grid else None))
    for k, (ax, (low, high, base, label, limits)) in enumerate(zip(axes[0], panels, strict=True)):
        for i, r in rows.iterrows():
            if not (np.isfinite(r[low]) and np.isfinite(r[high])):
                continue
            lo, hi = sorted((r[low], r[high]))
            if hi > lo:
                ax.barh(i, hi - lo, left=lo, color="#9bb7dd", edgecolor="#34568b")
            else:  # the same value at both ends: a mark, not an invisible bar
                ax.plot([lo], [i], marker="D", color="#34568b")
            rising = r[low] <= r[high]
            ax.text(r[low], i, f" {r['low_value']:g} ", va="center", fontsize=8, ha="right" if rising else "left")
            ax.text(r[high], i, f" {r['high_value']:g} ", va="center", fontsize=8, ha="left" if rising else "right")
        if np.isfinite(base):
            ax.axvline(base, color="black", lw=1, ls="--", label=f"scenario as given: {base:.3g}")
            ax.legend(loc="lower left", fontsize=8)
        ax.set_yticks(range(len(rows)), labels=list(rows["key"]) if k == 0 else [""] * len(rows))
        ax.set_xlabel(f"{label}\n(bar ends: parameter at the low / high value)")
        if limits:
            ax.set_xlim(*limits)
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle("One-way sensitivity, ranked by influence on power", fontsize=11)
    return _png(fig)
