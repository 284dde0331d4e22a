"""Write the back-test files: replicate rows of the sizing study analysed the slow way, each n on its own.

Run from the project folder: python tests/backtest/make_backtest.py. The rows come from
runner.simulate_chunk with the fast path (analysis/nested.py) replaced by runner.replicate_row for every
n, so tests/test_backtest.py compares the fast path and any later change against them. Regenerate only for
a deliberate change of results, and say why in the commit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sim.analysis.nested import trial_rows
from sim.scenario.schema import load_scenario
from sim.study import runner

ROOT = Path(__file__).resolve().parents[2]
NS = (20, 35, 50, 65, 80)
REPS = 30
SEED = 11
CASES = {
    "base_all": ("scenarios/base.toml", {}, "all"),
    "calendar_primary": ("scenarios/base.toml", {"analysis.cutoff": "calendar",
                                                 "analysis.calendar_cutoff_months": 40.0}, "primary"),
    "finite_primary": ("scenarios/base.toml", {"transplant.capacity": "finite", "transplant.slots": 2}, "primary"),
    "pessimistic_all": ("scenarios/pessimistic.toml", {"analysis.test": "logrank"}, "all"),
    "retest_primary": ("scenarios/mrd_retest.toml", {}, "primary"),
}


def per_n_columns(trials, ns):
    """Every n of every trial analysed on its own (the slow path)."""
    out = []
    for history, endpoints, flow in trials:
        rows = [runner.replicate_row(history, n, endpoints, flow) for n in ns]
        out.append({key: np.asarray([row[key] for row in rows]) for key in rows[0]})
    return trial_rows(out)


def main() -> None:
    runner.analysed_columns = per_n_columns
    for name, (path, updates, endpoints) in CASES.items():
        scenario = load_scenario(ROOT / path).with_updates(updates)
        rows = runner.simulate_chunk(runner.Study(scenario, NS, REPS, SEED, endpoints), runner.arm_models(scenario),
                                     0, REPS)
        pd.DataFrame(rows).to_parquet(Path(__file__).parent / f"{name}.parquet", index=False)
        print(name, len(rows["n"]))


if __name__ == "__main__":
    main()
