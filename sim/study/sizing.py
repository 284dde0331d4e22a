"""A sizing study from start to answer: the grid, its refinement to the patient, operating characteristics.

The grid study simulates every n of the grid under the scenario and its two twins (null: type I
error; alternative p1: power at the protocol's design value). Where a target power is crossed
between grid points, every integer n in between is simulated too (primary endpoint, scenario and p1
arms only): with the nested common-random-number design an extra n costs only its analysis, and the
answer becomes "n = 73 (Monte Carlo range 70-76)" rather than "80 (70-80)". The refined replicates
are exactly those the grid study would have produced at those n (same seed, same streams).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sim.analysis.endpoints import SECONDARY
from sim.scenario.calibrate import PostTransplantModel
from sim.study.oc import expected_flow, operating_characteristics, refinement_ns, required_n_both
from sim.study.runner import Executor, Study, run_study

REFINE_ARMS = ("design", "alt")
REFINE_FOLDER = "refine"


@dataclass(frozen=True)
class SizingResults:
    """Everything a sizing study reports, before figures and files."""

    replicates: pd.DataFrame        # grid: one row per (replicate, arm, n)
    refined: pd.DataFrame           # refinement: same columns for the primary endpoint (may be empty)
    oc: pd.DataFrame                # grid: one row per (n, analysis)
    oc_primary: pd.DataFrame        # primary endpoint at every simulated n, grid and refined, sorted by n
    sizes: pd.DataFrame             # required n at the scenario's truth and at p1, per target power
    flow: pd.DataFrame              # expected CONSORT counts per n and box


def analyses_for(endpoints: str) -> tuple[str, ...]:
    """The analyses a study with this endpoint set reports."""
    return ("rfs", "itt") + (tuple(SECONDARY) if endpoints == "all" else ())


def run_sizing(study: Study, out: Path, executor: Executor, truths: Callable[[], dict[str, dict[str, float]]],
               targets: tuple[float, ...], models: dict[str, PostTransplantModel], chunk_size: int = 50,
               progress: Callable[[int], None] | None = None,
               refine_progress: Callable[[tuple[int, ...]], Callable[[int], None] | None] | None = None,
               notify: Callable[[str], None] | None = None) -> SizingResults:
    """Run (or resume) the grid and its refinement in OUT/ and OUT/refine/; summarise both.

    truths() is called once, in a thread while the grid's chunks run (the ITT truth cohort takes about a second of
    client time that would otherwise follow the grid), so it must not print.
    refine_progress(ns) returns the progress callback for the refinement of those n (or None); notify is told
    about chunk files found damaged and recomputed.
    """
    with ThreadPoolExecutor(max_workers=1) as background:
        pending = background.submit(truths)
        replicates = run_study(study, out, executor, chunk_size, progress=progress, models=models, notify=notify)
        true = pending.result()
    oc = operating_characteristics(replicates, true, analyses_for(study.endpoints))
    extra = refinement_ns(oc, targets)
    refined = pd.DataFrame()
    oc_primary = oc[oc["analysis"] == "rfs"]
    if extra:
        refinement = Study(study.scenario, extra, study.reps, study.seed, "rfs", REFINE_ARMS)
        callback = refine_progress(extra) if refine_progress is not None else None
        refined = run_study(refinement, out / REFINE_FOLDER, executor, chunk_size, progress=callback, models=models,
                            notify=notify)
        oc_refined = operating_characteristics(refined, true, ("rfs",))
        oc_primary = pd.concat([oc_primary, oc_refined], ignore_index=True)
    oc_primary = oc_primary.sort_values("n").reset_index(drop=True)
    return SizingResults(replicates, refined, oc, oc_primary, required_n_both(oc_primary, targets),
                         expected_flow(replicates))
