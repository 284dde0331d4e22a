"""The explorer's engine: progressive estimates equal the sweep's at equal replicate counts, changes cancel
the work in progress, the paired difference is the what-if module's, and a session's memory is bounded."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.app.engine import Explorer, Request, Results
from sim.scenario.schema import load_scenario
from sim.study.executors import LocalExecutor
from sim.study.runner import Study, arm_models
from sim.study.sizing import run_sizing
from sim.study.truth import true_values
from sim.study.whatif import paired_differences, run_scenarios

NS = (20, 40, 60)
SEED = 11
BASE = load_scenario("scenarios/base.toml")
LOWER_CRC = BASE.with_updates({"response.p_cr": 0.6, "response.p_cri": 0.05})
COMPARED = ["n", "reps", "power", "power_mcse", "power_alt", "type1", "type1_mcse", "transplanted_mean",
            "evaluable_mean", "duration_months_p50", "duration_months_p90", "mean", "coverage"]


@pytest.fixture
def explorer():
    pool = ThreadPoolExecutor(2)
    explorer = Explorer(pool, workers=2, first_estimate=30, chunk_seconds=0.05)
    yield explorer
    explorer.close()
    pool.shutdown(cancel_futures=True)


class HeldPool(ThreadPoolExecutor):
    """Holds every chunk of replicates from `first` on until release(): a replicate takes about a millisecond,
    so without the hold a small study can finish before anyone looks at its first estimate."""

    def __init__(self, first: int) -> None:
        super().__init__(8)               # threads to spare: held chunks must not block anything else
        self.first = first
        self.gate = threading.Event()

    def submit(self, fn, /, *args, **kwargs):
        held = getattr(fn, "__name__", "") == "chunk_columns" and args[2] >= self.first     # args: study, models, start
        if not held:
            return super().submit(fn, *args, **kwargs)
        return super().submit(lambda: (self.gate.wait(timeout=120), fn(*args, **kwargs))[1])

    def release(self) -> None:
        self.gate.set()


def sweep_oc(scenario, reps: int, out: Path) -> pd.DataFrame:
    """The sweep pipeline's grid OC of the primary endpoint at this many replicates."""
    models = arm_models(scenario)
    study = Study(scenario, NS, reps, SEED, "primary")
    results = run_sizing(study, out, LocalExecutor(1), lambda: true_values(scenario, models, SEED, itt=False),
                         (0.8, 0.9), models)
    return results.oc[results.oc["analysis"] == "rfs"].reset_index(drop=True)


def test_progressive_estimates_equal_the_sweep_at_equal_replicate_counts(tmp_path):
    pool = HeldPool(first=30)
    explorer = Explorer(pool, workers=2, first_estimate=30, chunk_seconds=0.05)
    try:
        explorer.request(Request(BASE, BASE, NS, SEED, 90))
        first = explorer.wait(30)
        assert first.reps == 30, "the first estimate comes before the whole study"
        pool.release()
        final = explorer.wait(90)
    finally:
        pool.release()
        explorer.close()
        pool.shutdown(cancel_futures=True)
    for snap in (first, final):
        expected = sweep_oc(BASE, snap.reps, tmp_path / f"sweep{snap.reps}")
        pd.testing.assert_frame_equal(snap.oc[COMPARED].reset_index(drop=True), expected[COMPARED],
                                      check_exact=True, check_dtype=False)
    assert final.done and final.difference is None


def test_a_change_cancels_the_work_in_progress_and_answers_the_new_question(explorer, tmp_path):
    explorer.request(Request(BASE, BASE, NS, SEED, 50_000))    # far more than can finish meanwhile
    explorer.wait(10)
    generation = explorer.request(Request(LOWER_CRC, BASE, NS, SEED, 60))
    stale = [f for f, (g, *_) in explorer._in_flight.items() if g != generation]  # noqa: SLF001
    assert all(f.running() or f.done() for f in stale), "chunks of the old question still queued"
    snap = explorer.wait(60)
    assert snap.generation == generation and snap.request.scenario == LOWER_CRC
    # the first request's remaining replicates were never simulated
    assert explorer._results[Request(BASE, BASE, NS, SEED, 60).key()].prefix() < 50_000  # noqa: SLF001
    expected = sweep_oc(LOWER_CRC, 60, tmp_path / "lower")
    assert np.array_equal(snap.oc["power"].to_numpy(), expected["power"].to_numpy())
    # fewer remissions, fewer transplanted, lower power at the largest n
    base = sweep_oc(BASE, 60, tmp_path / "base")
    assert snap.oc["transplanted_mean"].iloc[-1] < base["transplanted_mean"].iloc[-1]


def test_paired_difference_is_that_of_the_what_if_module(explorer, tmp_path):
    explorer.request(Request(LOWER_CRC, BASE, NS, SEED, 60))
    deadline = time.monotonic() + 300
    while (snap := explorer.snapshot()) is None or snap.difference_reps < 60:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    scenarios = {"loaded": BASE, "current": LOWER_CRC}
    models = {name: arm_models(s) for name, s in scenarios.items()}
    runs = run_scenarios(scenarios, models, NS, 60, SEED, "primary", tmp_path, LocalExecutor(1), 20, (0.8,),
                         itt_truth=False)
    expected = paired_differences({name: run.results.replicates for name, run in runs.items()}, "loaded")
    pd.testing.assert_frame_equal(snap.difference.reset_index(drop=True), expected, check_exact=True)
    assert (snap.difference["mcse_paired"] < snap.difference["mcse_independent"]).all()


def test_returning_to_a_scenario_reuses_its_replicates_and_memory_stays_bounded(explorer):
    explorer.request(Request(BASE, BASE, NS, SEED, 40))
    explorer.wait(40)
    for k in range(12):
        changed = BASE.with_updates({"donor.p_no_donor": 0.05 + 0.01 * k})
        explorer.request(Request(changed, BASE, NS, SEED, 5))
    explorer.wait(5)
    assert len(explorer._results) <= explorer.keep  # noqa: SLF001
    assert Request(BASE, BASE, NS, SEED, 40).key() in explorer._results  # noqa: SLF001 - the reference is kept
    explorer.request(Request(BASE, BASE, NS, SEED, 40))
    assert explorer.snapshot().reps == 40, "the loaded scenario's replicates are answered from memory"


def test_results_track_their_finished_prefix_and_next_range():
    results = Results()
    assert results.next_range(100, 25) == (0, 25)
    results.pending.add((0, 25))
    results.chunks[50] = (75, {})
    assert results.next_range(100, 25) == (25, 50)
    assert results.prefix() == 0
    results.chunks[0] = (25, {})
    results.pending.clear()
    assert results.prefix() == 25
    assert results.next_range(100, 40) == (25, 50)
    results.chunks[25] = (50, {})
    assert results.prefix() == 75 and results.next_range(100, 40) == (75, 100)
    assert results.next_range(75, 40) is None
