"""A sizing study from start to answer: the grid, its refinement to the patient, operating characteristics.

The grid study simulates every n of the grid under the scenario and its two twins (null: type I
error; alternative p1: power at the protocol's design value). Where a target power is crossed
between grid points, every integer n in between is analysed too (primary endpoint, scenario and p1
arms only), and the answer becomes "n = 73 (Monte Carlo range 70-76)" rather than "80 (70-80)". With
the nested common-random-number design an extra n costs only its analysis: the grid's own trials are
analysed at every n between grid points as they are simulated (OUT/dense/), and the refinement reads
the n it needs from them. Where pathways are not nested (a trial-only transplant capacity, interim
rules) the refined n are simulated after the grid (OUT/refine/). Either way the refined replicates
are exactly those the grid study would have produced at those n (same seed, same streams).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from sim.analysis.endpoints import SECONDARY
from sim.model.monitoring import any_enabled
from sim.scenario.calibrate import PostTransplantModel
from sim.study.oc import expected_flow, operating_characteristics, refinement_ns, required_n_both
from sim.study.runner import (
    DENSE_ARMS,
    DENSE_FOLDER,
    Executor,
    Study,
    load_replicates,
    run_chunks,
    run_study,
)

REFINE_ARMS = DENSE_ARMS
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
    refined_in_grid: bool = False   # the refined n came from the grid's own trials (no further simulation)


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
    Where the pathways are nested, the grid's own trials are analysed at every n a refinement could ask for too
    (dense_ns; OUT/dense/), so the refinement needs no more simulation; otherwise the refined n are simulated after
    the grid, and refine_progress(ns) returns the progress callback for them (or None). notify is told about chunk
    files found damaged and recomputed.
    """
    study = replace(study, dense=dense_ns(study))
    with ThreadPoolExecutor(max_workers=1) as background:
        pending = background.submit(truths)
        done, fresh = run_chunks(study, out, executor, chunk_size, progress, models, notify)
        replicates = load_replicates(out, study.reps, done, fresh)
        del fresh
        true = pending.result()
    oc = operating_characteristics(replicates, true, analyses_for(study.endpoints))
    extra = refinement_ns(oc, targets)
    refined = pd.DataFrame()
    oc_primary = oc[oc["analysis"] == "rfs"]
    if extra and set(extra) <= set(study.dense):
        refined = load_replicates(out, study.reps, done, part=DENSE_FOLDER, ns=extra)
    elif extra:
        refinement = Study(study.scenario, extra, study.reps, study.seed, "rfs", REFINE_ARMS)
        callback = refine_progress(extra) if refine_progress is not None else None
        refined = run_study(refinement, out / REFINE_FOLDER, executor, chunk_size, progress=callback, models=models,
                            notify=notify)
    if len(refined):
        oc_refined = operating_characteristics(refined, true, ("rfs",))
        oc_primary = pd.concat([oc_primary, oc_refined], ignore_index=True)
    oc_primary = oc_primary.sort_values("n").reset_index(drop=True)
    return SizingResults(replicates, refined, oc, oc_primary, required_n_both(oc_primary, targets),
                         expected_flow(replicates), refined_in_grid=bool(len(refined)) and bool(study.dense))


MAX_DENSE_ROWS = 2_000_000  # replicates x dense n x arms: beyond it the refinement is simulated after the grid


def dense_ns(study: Study) -> tuple[int, ...]:
    """Every n strictly between the grid's smallest and largest not in it (what refinement_ns may ask for), when
    the grid's pathways are nested (no trial-only transplant capacity, no interim rules) and these rows stay within
    MAX_DENSE_ROWS; otherwise none."""
    s = study.scenario
    if s.transplant.capacity == "finite" or any_enabled(s.monitoring) or len(study.ns) < 2:
        return ()
    grid = set(study.ns)
    between = tuple(n for n in range(min(grid) + 1, max(grid)) if n not in grid)
    return between if study.reps * len(between) * len(DENSE_ARMS) <= MAX_DENSE_ROWS else ()
