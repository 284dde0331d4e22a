"""What-if studies: several scenarios over one n grid with common random numbers, and one-way sensitivity.

Every scenario is run with the same seed, so replicate r of each scenario uses the same random
numbers wherever the scenarios agree; a difference in power is then estimated from paired
replicates, and its MCSE, sd(reject_B - reject_A) / sqrt(R), is smaller than that of independent
runs (which `paired_differences` reports alongside, as sqrt(MCSE_A^2 + MCSE_B^2)).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from sim.scenario.calibrate import PostTransplantModel
from sim.scenario.schema import InputError, Scenario, load_scenario
from sim.study.oc import operating_characteristics, required_n
from sim.study.runner import Executor, Study, run_study
from sim.study.truth import true_values

SUMMARY_COLUMNS = ("power", "power_mcse", "type1", "type1_mcse", "true", "mean", "bias", "coverage",
                   "halfwidth_mean", "p_not_evaluable", "transplanted_mean", "evaluable_mean", "duration_months_mean")


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
        scenario = load_scenario(path, overrides)
        if scenario.name in scenarios:
            raise InputError(f"{path}: a scenario named {scenario.name!r} is already in this comparison")
        scenarios[scenario.name] = scenario
    for text in variants:
        name, items = parse_variant(text)
        if name in scenarios:
            raise InputError(f"--variant {text}: the name {name!r} is already in this comparison")
        scenarios[name] = load_scenario(files[0], [*overrides, *items]).model_copy(update={"name": name})
    return scenarios


def run_scenarios(scenarios: dict[str, Scenario], models: dict[str, dict[str, PostTransplantModel]],
                  ns: tuple[int, ...], reps: int, seed: int, endpoints: str, out: Path,
                  executor: Executor, chunk_size: int,
                  progress: Callable[[int], None] | None = None,
                  notify: Callable[[str], None] | None = None) -> dict[str, pd.DataFrame]:
    """Each scenario's replicate rows (OUT/<name>/, resumable), all from the same seed."""
    return {name: run_study(Study(scenario, ns, reps, seed, endpoints), out / name, executor, chunk_size, progress,
                            models[name], notify)
            for name, scenario in scenarios.items()}


def scenario_summaries(scenarios: dict[str, Scenario], models: dict[str, dict[str, PostTransplantModel]],
                       replicates: dict[str, pd.DataFrame], seed: int, targets: tuple[float, ...],
                       analyses: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Operating characteristics (all analyses) and required n, one block per scenario."""
    ocs, sizes = [], []
    for name, scenario in scenarios.items():
        truths = true_values(scenario, models[name], seed, itt="itt" in analyses)
        oc = operating_characteristics(replicates[name], truths, analyses)
        ocs.append(oc.assign(scenario=name))
        sizes.append(required_n(oc, targets).assign(scenario=name))
    return pd.concat(ocs, ignore_index=True), pd.concat(sizes, ignore_index=True)


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


def tornado_table(sensitivity: pd.DataFrame) -> pd.DataFrame:
    """Per parameter: power at the low and high end of its range, ranked by the size of the swing."""
    rows = []
    for key, block in sensitivity.groupby("key", sort=False):
        block = block.sort_values("value")
        low, high = block.iloc[0], block.iloc[-1]
        rows.append({"key": key, "low_value": low["value"], "high_value": high["value"],
                     "power_low": low["power"], "power_high": high["power"],
                     "swing": abs(high["power"] - low["power"]),
                     "required_n_low": low.get("required_n", np.nan),
                     "required_n_high": high.get("required_n", np.nan)})
    return pd.DataFrame(rows).sort_values("swing", ascending=False).reset_index(drop=True)
