"""What-if studies: several scenarios over one n grid with common random numbers, and one-way sensitivity.

Every scenario is run with the same seed, so replicate r of each scenario uses the same random
numbers wherever the scenarios agree; a difference in power is then estimated from paired
replicates, and its MCSE, sd(reject_B - reject_A) / sqrt(R), is smaller than that of independent
runs (which `paired_differences` reports alongside, as sqrt(MCSE_A^2 + MCSE_B^2)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sim.scenario.calibrate import PostTransplantModel
from sim.scenario.schema import InputError, Scenario
from sim.study.runner import Executor, Study
from sim.study.sizing import SizingResults, run_sizing
from sim.study.targets import load_with_targets
from sim.study.truth import true_values


def parse_variant(text: str) -> tuple[str, list[str]]:
    """'NAME:KEY=VALUE[,KEY=VALUE]' -> (NAME, ['KEY=VALUE', ...])."""
    name, sep, rest = text.partition(":")
    if not sep or not name or not rest or "=" not in rest:
        raise InputError(f"--variant {text}: expected NAME:SECTION.KEY=VALUE[,SECTION.KEY=VALUE...]")
    if not name.replace("_", "").replace("-", "").isalnum():
        raise InputError(f"--variant {text}: the name may hold letters, digits, '-' and '_' only")
    return name, [item for item in rest.split(",") if item]


def named_scenarios(files: list[str], variants: list[str], overrides: list[str]) -> dict[str, Scenario]:
    """Scenario files (named by their `name`) and variants of the first file, validated, in order."""
    scenarios: dict[str, Scenario] = {}
    for path in files:
        scenario, _ = load_with_targets(path, overrides)
        if scenario.name in scenarios:
            raise InputError(f"{path}: a scenario named {scenario.name!r} is already in this comparison")
        scenarios[scenario.name] = scenario
    for text in variants:
        name, items = parse_variant(text)
        if name in scenarios:
            raise InputError(f"--variant {text}: the name {name!r} is already in this comparison")
        scenarios[name] = load_with_targets(files[0], [*overrides, *items])[0].model_copy(update={"name": name})
    return scenarios


@dataclass(frozen=True)
class ScenarioRun:
    """One scenario of a what-if study: its sizing results and truths."""

    scenario: Scenario
    results: SizingResults
    truths: dict[str, dict[str, float]]


def run_scenarios(scenarios: dict[str, Scenario], models: dict[str, dict[str, PostTransplantModel]],
                  ns: tuple[int, ...], reps: int, seed: int, endpoints: str, out: Path, executor: Executor,
                  chunk_size: int, targets: tuple[float, ...],
                  progress: Callable[[str], Callable[[int], None] | None] | None = None,
                  itt_truth: bool = True, notify: Callable[[str], None] | None = None) -> dict[str, ScenarioRun]:
    """Each scenario's sizing study (grid and refinement) in OUT/<name>/, resumable, all from the same seed.

    progress(label) returns the progress callback for that scenario's run (or None); itt_truth=False skips
    the simulated ITT truth (NaN), which only the ITT row's bias and coverage use.
    """
    runs = {}
    for name, scenario in scenarios.items():
        truths: dict[str, dict[str, float]] = {}

        def solve(scenario=scenario, model=models[name], truths=truths) -> dict[str, dict[str, float]]:
            truths.update(true_values(scenario, model, seed, itt=itt_truth and endpoints != "rfs"))
            return truths

        def refine(extra: tuple[int, ...], name=name):
            return progress(f"{name}: refinement") if progress is not None else None

        results = run_sizing(Study(scenario, ns, reps, seed, endpoints), out / name, executor, solve, targets,
                             models[name], chunk_size, progress=progress(name) if progress is not None else None,
                             refine_progress=refine, notify=notify)
        runs[name] = ScenarioRun(scenario, results, truths)
    return runs


def combined(runs: dict[str, ScenarioRun]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Grid OC (all analyses), primary OC at every simulated n, and required n, each with a scenario column."""
    oc = pd.concat([r.results.oc.assign(scenario=name) for name, r in runs.items()], ignore_index=True)
    primary = pd.concat([r.results.oc_primary.assign(scenario=name) for name, r in runs.items()], ignore_index=True)
    sizes = pd.concat([r.results.sizes.assign(scenario=name) for name, r in runs.items()], ignore_index=True)
    return oc, primary, sizes


def own_required_n(run: ScenarioRun) -> int | None:
    """The scenario's required n for the first target power at its own truth (None if not reached)."""
    sizes = run.results.sizes
    own = sizes[sizes["at"] == "scenario"].sort_values("target_power").iloc[0]
    return int(own.required_n) if own.required_n == own.required_n else None


def paired_differences(replicates: dict[str, pd.DataFrame], reference: str, column: str = "rfs_reject"
                       ) -> pd.DataFrame:
    """Per scenario and n: difference in power from the reference, its paired MCSE and the independent-run MCSE."""
    def by_replicate(frame: pd.DataFrame) -> pd.DataFrame:
        design = frame[frame["arm"] == "design"]
        return design.pivot(index="replicate", columns="n", values=column).astype(float)

    base = by_replicate(replicates[reference])
    rows = []
    for name, frame in replicates.items():
        if name == reference:
            continue
        other = by_replicate(frame)
        for n in base.columns:
            a, b = base[n].to_numpy(), other[n].to_numpy()
            diff = b - a
            r = diff.size
            rows.append({"scenario": name, "reference": reference, "n": int(n), "power_difference": diff.mean(),
                         "mcse_paired": diff.std(ddof=1) / np.sqrt(r),
                         "mcse_independent": np.sqrt(a.var(ddof=1) / r + b.var(ddof=1) / r)})
    return pd.DataFrame(rows)


MAX_VALUES = 50  # values of one --vary range (each is a scenario to calibrate and simulate)


def sensitivity_values(spec: str) -> tuple[str, np.ndarray]:
    """'SECTION.KEY=LO:HI:K' -> (key, K values from LO to HI)."""
    key, sep, rng = spec.partition("=")
    parts = rng.split(":")
    try:
        lo, hi, k = float(parts[0]), float(parts[1]), int(parts[2])
        if len(parts) != 3 or k < 2 or not sep or "." not in key:
            raise ValueError
    except (ValueError, IndexError):
        raise InputError(f"--vary {spec}: expected SECTION.KEY=LO:HI:K with K >= 2") from None
    if k > MAX_VALUES:
        raise InputError(f"--vary {spec}: K = {k}; at most {MAX_VALUES} values per parameter")
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise InputError(f"--vary {spec}: LO and HI must be finite numbers")
    return key, np.linspace(lo, hi, k)


def reference_n(runs: dict[str, ScenarioRun], base: str) -> int:
    """The n at which a sensitivity study compares power and duration: the grid n closest to the base's
    required n (the largest n when it is not reached; the only n with a single-n grid)."""
    grid = np.array(sorted(runs[base].results.oc["n"].unique()))
    own = own_required_n(runs[base])
    target = grid[-1] if own is None else own
    return int(grid[np.abs(grid - target).argmin()])


def sensitivity_table(runs: dict[str, ScenarioRun], labels: dict[str, tuple[str, float]], base: str,
                      reach: Callable[[Scenario], float]) -> pd.DataFrame:
    """One row per (key, value): power and median duration at the reference n, required n with its
    Monte Carlo range (first target, at the scenario's own truth), the implied true RFS and P(reach HSCT)."""
    at_n = reference_n(runs, base)
    rows = []
    for name, (key, value) in labels.items():
        run = runs[name]
        oc = run.results.oc
        r = oc[(oc["analysis"] == "rfs") & (oc["n"] == at_n)].iloc[0]
        sizes = run.results.sizes
        own = sizes[sizes["at"] == "scenario"].sort_values("target_power").iloc[0]
        rows.append({"key": key, "value": value, "scenario": name, "n": at_n, "power": r.power,
                     "power_mcse": r.power_mcse, "duration_months_p50": r.duration_months_p50,
                     "duration_months_p10": r.duration_months_p10, "duration_months_p90": r.duration_months_p90,
                     "target_power": own.target_power, "required_n": own.required_n,
                     "required_n_low": own.required_n_low, "required_n_high": own.required_n_high,
                     "largest_n": own.largest_n, "true_rfs": run.truths["design"]["rfs"],
                     "p_reach_hsct": reach(run.scenario)})
    return pd.DataFrame(rows)


def tornado_table(sensitivity: pd.DataFrame) -> pd.DataFrame:
    """Per parameter, the low and high end of its range: every measure of sensitivity_table, ranked by the
    swing in required n when any value reaches the target (a value that does not counts as largest n + 1),
    otherwise by the swing in power."""
    rows = []
    for key, block in sensitivity.groupby("key", sort=False):
        block = block.sort_values("value")
        low, high = block.iloc[0], block.iloc[-1]
        row = {"key": key, "low_value": low["value"], "high_value": high["value"]}
        for measure in ("power", "power_mcse", "duration_months_p50", "required_n", "required_n_low",
                        "required_n_high", "true_rfs", "p_reach_hsct"):
            row[f"{measure}_low"], row[f"{measure}_high"] = low[measure], high[measure]
        needed = block["required_n"].fillna(block["largest_n"] + 1)
        row["n_swing"] = float(needed.max() - needed.min()) if block["required_n"].notna().any() else np.nan
        row["power_swing"] = float(abs(high["power"] - low["power"]))
        rows.append(row)
    table = pd.DataFrame(rows)
    by = "n_swing" if table["n_swing"].notna().any() else "power_swing"
    return table.sort_values([by, "power_swing"], ascending=False, na_position="last").reset_index(drop=True)
