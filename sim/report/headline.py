"""The plain-language headline of a sizing study, generated from its results, and the flags beside it.

One paragraph a steering committee can act on (at which true RFS, how many enrolled for the target
power with its Monte Carlo range, how many transplanted, when the final analysis comes), the same
answer at the protocol's design alternative p1, and flags in words for what should change a reader's
mind: an answer at the edge of the simulated grid (with the grid to run instead), power capped by a
calendar cutoff, a type I error away from alpha, and values overridden on the command line. The
console and every report print the same text; the numbers are those of oc.csv and required_n.csv.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim.scenario.schema import Analysis
from sim.study.oc import Z95

# Flags; "prominent" ones are shown as warnings before everything else.
EDGE, CALENDAR_CAP, ANTI_CONSERVATIVE, CONSERVATIVE, OVERRIDE, LATE = (
    "grid_edge", "calendar_cap", "anti_conservative", "conservative", "override", "late_final_analysis")
PROMINENT = (ANTI_CONSERVATIVE, CALENDAR_CAP)


@dataclass(frozen=True)
class Flag:
    """Something a reader must know to use the headline, in words."""

    kind: str
    text: str

    @property
    def prominent(self) -> bool:
        return self.kind in PROMINENT


@dataclass(frozen=True)
class Headline:
    """The headline's sentences and its flags."""

    sentences: tuple[str, ...]
    flags: tuple[Flag, ...]

    def text(self) -> str:
        """Sentences, then each flag on its own line (for the console)."""
        lines = [" ".join(self.sentences)]
        lines += [f"{'WARNING' if f.prominent else 'Note'}: {f.text}" for f in self.flags]
        return "\n".join(lines)


def percent(p: float) -> str:
    return f"{100 * p:.0f}%"


def headline(analysis: Analysis, true_rfs: float, oc: pd.DataFrame, sizes: pd.DataFrame, grid: tuple[int, ...],
             overrides: tuple[str, ...] = ()) -> Headline:
    """Sentences and flags for a sizing study.

    oc: rows of the primary analysis ('rfs'), grid and refined sample sizes; sizes: required_n rows
    (columns target_power, at, required_n, required_n_low, required_n_high).
    """
    rows = oc[oc["analysis"] == "rfs"].drop_duplicates("n").set_index("n").sort_index()
    lm = f"{analysis.landmark_months:g}-month"
    sentences = []
    for i, target in enumerate(sorted(sizes["target_power"].unique())):
        own = sizes[(sizes["target_power"] == target) & (sizes["at"] == "scenario")].iloc[0]
        if i == 0:
            sentences.append(_main_sentence(analysis, true_rfs, own, rows, lm))
        else:
            sentences.append(f"For {percent(target)} power: {_need(own, rows)} at {percent(true_rfs)}.")
        alt = sizes[(sizes["target_power"] == target) & (sizes["at"] == "p1")]
        if not alt.empty:
            sentences.append(f"At the protocol's design alternative p1 = {percent(analysis.p1)}, {percent(target)} "
                             f"power needs {_need(alt.iloc[0], rows, power_column='power_alt')}.")
    flags = [*_edge_flags(sizes, grid), *_calendar_flags(analysis, rows, sizes, grid),
             *_late_flags(analysis, rows, sizes),
             *_type1_flags(analysis, rows, grid), *_override_flags(overrides)]
    return Headline(tuple(sentences), tuple(sorted(flags, key=lambda f: not f.prominent)))


def _main_sentence(analysis: Analysis, true_rfs: float, own: pd.Series, rows: pd.DataFrame, lm: str) -> str:
    start = (f"If {lm} RFS after HSCT is {percent(true_rfs)} (null {percent(analysis.p0)}, one-sided alpha "
             f"{analysis.alpha:g}), ")
    if own.required_n != own.required_n:
        n = int(rows.index.max())
        r = rows.loc[n]
        return (start + f"{percent(own.target_power)} power is not reached by n = {n} enrolled, the largest "
                f"simulated: power there is {percent(r.power)} (Monte Carlo range {_range(r.power, r.power_mcse)}); "
                + _context(r, n))
    n = int(own.required_n)
    r = rows.loc[n]
    return (start + f"enrolling {n} patients gives {percent(own.target_power)} power (Monte Carlo range "
            f"{_n_range(own)} patients); " + _context(r, n))


def _context(r: pd.Series, n: int) -> str:
    return (f"about {r.transplanted_mean:.0f} of the {n} are transplanted; the final analysis comes about "
            f"{r.duration_months_p50:.0f} months after the first patient is enrolled (10th-90th percentile "
            f"{r.duration_months_p10:.0f}-{r.duration_months_p90:.0f}).")


def _need(row: pd.Series, rows: pd.DataFrame, power_column: str = "power") -> str:
    if row.required_n != row.required_n:
        n = int(rows.index.max())
        return (f"more than {n} enrolled (power at n = {n}: {percent(rows.loc[n, power_column])}, the largest "
                "simulated)")
    return f"n = {row.required_n:.0f} enrolled (Monte Carlo range {_n_range(row)})"


def _n_range(row: pd.Series) -> str:
    if row.required_n_high != row.required_n_high:
        return f"{row.required_n_low:.0f} to more than {row.largest_n:.0f}"
    return f"{row.required_n_low:.0f}-{row.required_n_high:.0f}"


def _range(p: float, mcse: float) -> str:
    return f"{percent(max(p - Z95 * mcse, 0.0))}-{percent(min(p + Z95 * mcse, 1.0))}"


def _edge_flags(sizes: pd.DataFrame, grid: tuple[int, ...]) -> list[Flag]:
    """One flag for answers beyond the largest simulated n, one for answers reaching down to the smallest."""
    lo, hi = min(grid), max(grid)
    step = int(np.median(np.diff(sorted(grid)))) if len(grid) > 1 else max(lo // 2, 1)
    beyond, below = [], []
    for row in sizes.itertuples(index=False):
        what = f"{percent(row.target_power)} power at {'the scenario' if row.at == 'scenario' else 'p1'}"
        if row.required_n != row.required_n or row.required_n_high != row.required_n_high:
            beyond.append(what)
        elif row.required_n_low <= lo:
            below.append(what)
    flags = []
    if beyond:
        flags.append(Flag(EDGE, f"the answer for {_and(beyond)} lies beyond the largest simulated n = {hi}; run a "
                                f"wider grid, e.g. --n {lo}:{2 * hi}:{step}."))
    if below:
        flags.append(Flag(EDGE, f"the answer for {_and(below)} reaches down to the smallest simulated n = {lo}; "
                                f"the true answer may be smaller: run e.g. --n {max(1, lo // 2)}:{hi}:{step}."))
    return flags


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _calendar_flags(analysis: Analysis, rows: pd.DataFrame, sizes: pd.DataFrame, grid: tuple[int, ...]
                    ) -> list[Flag]:
    """Power that stops growing with n under a fixed calendar cutoff: enrolling more does not help."""
    if analysis.cutoff != "calendar" or len(grid) < 3:
        return []
    on_grid = rows.loc[[n for n in grid if n in rows.index]]
    top, middle = on_grid.iloc[-1], on_grid.iloc[len(on_grid) // 2]
    gain = top.power - middle.power
    noise = Z95 * np.hypot(top.power_mcse, middle.power_mcse)
    if top.power >= min(sizes["target_power"]) or gain > max(0.03, 2 * noise):
        return []
    return [Flag(CALENDAR_CAP, (
        f"power is capped by the calendar cutoff: the final analysis is {analysis.calendar_cutoff_months:g} "
        f"months after the first enrollment, so patients transplanted later cannot reach "
        f"{analysis.landmark_months:g} months of follow-up, and power stays near {percent(top.power)} "
        f"whatever n is ({percent(middle.power)} at n = {middle.name}, {percent(top.power)} at n = {top.name}; "
        f"about {top.evaluable_mean:.0f} evaluable patients at n = {top.name}). Enrolling more patients does "
        "not help; a later final analysis or faster accrual does."))]


def _late_flags(analysis: Analysis, rows: pd.DataFrame, sizes: pd.DataFrame) -> list[Flag]:
    """A final analysis (landmark rule) later than the planned calendar duration of the trial."""
    own = sizes[sizes["at"] == "scenario"].sort_values("target_power").iloc[0]
    if analysis.cutoff != "landmark" or own.required_n != own.required_n:
        return []
    r = rows.loc[int(own.required_n)]
    if r.duration_months_p50 <= analysis.calendar_cutoff_months:
        return []
    return [Flag(LATE, (
        f"at n = {own.required_n:.0f} the final analysis (when the last transplanted patient reaches "
        f"{analysis.landmark_months:g} months) comes about {r.duration_months_p50:.0f} months after the first "
        f"enrollment, later than the planned {analysis.calendar_cutoff_months:g} months "
        "(analysis.calendar_cutoff_months); with the analysis fixed at that time, power is lower: run with "
        "--set analysis.cutoff=calendar to see by how much."))]


def _type1_flags(analysis: Analysis, rows: pd.DataFrame, grid: tuple[int, ...]) -> list[Flag]:
    on_grid = rows.loc[[n for n in grid if n in rows.index and np.isfinite(rows.loc[n, "type1"])]]
    if on_grid.empty:
        return []
    low = on_grid["type1"] - Z95 * on_grid["type1_mcse"]
    if (low > analysis.alpha).any():
        worst = on_grid["type1"].idxmax()
        return [Flag(ANTI_CONSERVATIVE, (
            f"the {analysis.test} test is anti-conservative here: when the true RFS equals the null "
            f"{percent(analysis.p0)}, it rejects in {on_grid.loc[worst, 'type1']:.3f} of trials at n = {worst} "
            f"(nominal alpha {analysis.alpha:g}); its power overstates what a test of size alpha gives."))]
    high = on_grid["type1"] + Z95 * on_grid["type1_mcse"]
    if (high < analysis.alpha).all() and (on_grid["type1"] < analysis.alpha / 2).all():
        few = "transplanted_mean" in on_grid and (on_grid["transplanted_mean"] < analysis.min_transplanted).all()
        why = (f"mostly because fewer than analysis.min_transplanted = {analysis.min_transplanted} patients are "
               "transplanted, so most trials make no test at all" if few else "so it pays some power for "
               "discreteness")
        return [Flag(CONSERVATIVE, (
            f"the {analysis.test} test is conservative at these sizes: its type I error is at most "
            f"{on_grid['type1'].max():.3f} against the nominal {analysis.alpha:g}, {why}."))]
    return []


def _override_flags(overrides: tuple[str, ...]) -> list[Flag]:
    if not overrides:
        return []
    return [Flag(OVERRIDE, "values overridden on the command line: " + ", ".join(f"--set {o}" for o in overrides)
                 + " (the scenario listing shows the values actually run).")]


def title(scenario_name: str, overrides: tuple[str, ...]) -> str:
    """'Sizing study: base' or 'Sizing study: base, with --set a=b'."""
    extra = f", with {', '.join(f'--set {o}' for o in overrides)}" if overrides else ""
    return f"Sizing study: {scenario_name}{extra}"
