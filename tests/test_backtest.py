"""Back-test (pydesrap style): the sizing study's replicate rows equal stored outputs of earlier code.

tests/backtest/*.parquet are replicate rows analysed the slow way, every n on its own
(tests/backtest/make_backtest.py, run after the clinical-realism model landed). Any change to the model
or the analysis that moves a single result fails here; a deliberate change of results regenerates the
files and says why in its commit.
Floats agree to 1e-12 (only the order of additions in a Greenwood sum may differ); everything else
(decisions, counts, reasons, row order, columns and their types) exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from backtest.make_backtest import CASES, NS, REPS, SEED

from sim.scenario.schema import load_scenario
from sim.study.runner import Study, arm_models, simulate_chunk

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("case", list(CASES))
def test_replicate_rows_equal_the_stored_outputs_of_earlier_code(case):
    path, updates, endpoints = CASES[case]
    scenario = load_scenario(ROOT / path).with_updates(updates)
    stored = pd.read_parquet(ROOT / "tests" / "backtest" / f"{case}.parquet")
    now = pd.DataFrame(simulate_chunk(Study(scenario, NS, REPS, SEED, endpoints), arm_models(scenario), 0, REPS))
    assert list(now.columns) == list(stored.columns)
    for column in stored.columns:
        a, b = now[column].to_numpy(), stored[column].to_numpy()
        assert a.dtype.kind == b.dtype.kind or {a.dtype.kind, b.dtype.kind} <= {"U", "O"}, (column, a.dtype, b.dtype)
        if b.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15, equal_nan=True, err_msg=column)
        else:
            assert (a == b).all(), column
