"""Figures of an assurance study: assurance next to power against n, the prior of every uncertain input, and
what the trial's fate hangs on (first-order indices with bootstrap intervals). Every axis has units and
every estimate its uncertainty."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sim.report.plotting import plt, png
from sim.scenario.priors import Priors
from sim.scenario.schema import Analysis


def assurance_figure(table: pd.DataFrame, analysis: Analysis, targets: tuple[float, ...], reps: int,
                     at_n: int) -> bytes:
    """Assurance, power at the point values and P(correct decision) against n enrolled, +-1.96 MCSE bands,
    with P(true RFS > p0) under the prior as the ceiling a perfect trial would reach."""
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    rows = table.sort_values("n")
    n = rows["n"].to_numpy()
    lm = f"{analysis.landmark_months:g}-month RFS"
    point_rfs = float(rows["point_true_rfs"].iloc[0])
    curves = (("assurance", "assurance: P(the trial succeeds), averaged over the uncertain inputs", "tab:blue", "-",
               "o"),
              ("power_point", f"power at the central values (true {lm} {point_rfs:.0%})", "tab:gray", "--", "s"),
              ("p_correct", "P(correct decision): reject exactly when the true RFS beats p0", "tab:green", ":",
               "^"))
    for measure, label, color, ls, marker in curves:
        y, se = rows[measure].to_numpy(), rows[f"{measure}_mcse"].to_numpy()
        ax.plot(n, y, color=color, ls=ls, marker=marker, ms=3.5, label=label)
        ax.fill_between(n, y - 1.96 * se, y + 1.96 * se, color=color, alpha=0.18, lw=0)
    ceiling = float(rows["p_effective"].iloc[0])
    ax.axhline(ceiling, color="tab:purple", lw=1.2, ls="-.",
               label=f"P(true {lm} > p0 = {analysis.p0:.0%}) under the prior: {ceiling:.0%}")
    edge = ax.get_yaxis_transform()
    for target in targets:
        ax.axhline(target, color="tab:green", ls=":", lw=0.8, alpha=0.6)
        ax.text(1.01, target, f"{target:g}", color="tab:green", fontsize=8, va="center", transform=edge)
    ax.axvline(at_n, color="black", lw=0.8, ls=":", label=f"n = {at_n}: the n of the ranking and the summary")
    top = ax.secondary_xaxis("top")
    top.set_xticks(n, labels=[f"{v:.0f}" for v in rows["transplanted_prior_mean"].to_numpy()])
    top.set_xlabel("Mean number transplanted (over the uncertain inputs)", fontsize=9)
    ax.set_xlabel("Patients enrolled (n)")
    ax.set_ylabel("Probability (bands: +-1.96 Monte Carlo SE)")
    ax.set_ylim(0, 1.03)
    ax.set_title(f"Probability of success of the {lm} test ({analysis.test}, one-sided alpha {analysis.alpha:g})\n"
                 f"{reps} simulated trials per n, each with its own draw of the inputs", fontsize=9.5)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    ax.grid(alpha=0.3)
    return png(fig)


def priors_figure(priors: Priors, keys: list[str], labels: dict[str, str], draws: pd.DataFrame | None = None
                  ) -> bytes:
    """One panel per uncertain input: its density (the distribution as written), the histogram of the values
    the study drew, the mean (the central value) and the 90% interval."""
    cols = 3
    rows = max(1, math.ceil(len(keys) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(11, 2.6 * rows), squeeze=False)
    for ax, key in zip(axes.ravel(), keys, strict=False):
        m = priors.marginal(key)
        lo, hi = m.ppf(np.array([0.0005, 0.9995]))
        pad = (hi - lo) * 0.05 or abs(lo) * 0.05 or 0.01
        x = np.linspace(max(lo - pad, m.lo), min(hi + pad, m.hi), 400)
        a, b = m.interval()
        ax.axvspan(a, b, color="#f4e3b5", alpha=0.6, lw=0, label="90% interval", zorder=0)
        if draws is not None and f"draw:{key}" in draws:
            ax.hist(draws[f"draw:{key}"], bins=40, density=True, color="#9bb7dd", alpha=0.7, edgecolor="none",
                    label="values drawn", zorder=1)
        if not m.degenerate:
            ax.plot(x, m.pdf(x), color="#34568b", lw=1.5, label="distribution", zorder=2)
        ax.axvline(m.mean(), color="black", lw=1, ls="--", label=f"mean {m.mean():.3g}")
        ax.set_title(_wrap(labels.get(key, key), 48), fontsize=8.5)
        ax.set_xlabel(f"{key}\n{m.written}", fontsize=7)
        ax.set_yticks([])
        ax.tick_params(axis="x", labelsize=7)
    axes.ravel()[0].legend(fontsize=6.5, loc="upper right", framealpha=0.8)
    for ax in axes.ravel()[len(keys):]:
        ax.axis("off")
    return png(fig)


def importance_figure(importance: pd.DataFrame, at_n: int, labels: dict[str, str], reps: int, top: int = 10
                      ) -> bytes:
    """Ranked first-order indices of success and of trial duration at n = at_n (the `top` largest of each), with
    95% bootstrap intervals."""
    at = importance[(importance["n"] == at_n) & (importance["input"] != "true_rfs") & (importance["rank"] <= top)]
    shown = int(at.groupby("outcome").size().max()) if len(at) else 1
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.5 * max(shown, 4) + 1.8), sharey=False)
    titles = {"success": "success\n(H0 rejected)", "duration": "the months\nto the final analysis"}
    for ax, (outcome, title) in zip(axes, titles.items(), strict=True):
        rows = at[at["outcome"] == outcome].sort_values("rank", ascending=False)
        y = np.arange(len(rows))
        index = rows["index"].clip(lower=0).to_numpy()
        lo = rows["lower"].clip(lower=0).to_numpy()
        hi = rows["upper"].clip(lower=0).to_numpy()
        ax.barh(y, index, color="#9bb7dd", edgecolor="#34568b", height=0.6)
        ax.errorbar(index, y, xerr=[np.maximum(index - lo, 0), np.maximum(hi - index, 0)], fmt="none",
                    color="black", capsize=3, lw=0.8)
        ax.set_yticks(y, labels=[_wrap(labels.get(k, k), 40) for k in rows["input"]], fontsize=7.5)
        ax.set_xlim(0, max(0.05, float(np.nanmax(hi, initial=0)) * 1.1))
        ax.set_title(f"What {title} hangs on", fontsize=10)
        ax.grid(alpha=0.3, axis="x")
        ax.set_xlabel(f"share of the variance explained alone (first-order index)\nat n = {at_n} enrolled, {reps} "
                      "trials; whiskers: 95% bootstrap\nintervals (the simulation's own uncertainty)", fontsize=8)
    return png(fig)


def _wrap(text: str, width: int) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])
