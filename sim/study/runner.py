"""Replicates of whole virtual trials, in chunks, on joblib (loky) or a Dask cluster, resumable.

A replicate is addressed by (seed, replicate index) alone, so results do not depend on chunking,
worker count or backend. Each replicate simulates the pathway once at the largest n of the grid and
analyses its first n patients for every n (exact, because without a finite trial-only transplant
capacity no patient's history depends on a later patient; with one, each n is simulated on its own,
still from the same streams). The scenario and its null twin share the pathway and every uniform;
only the post-HSCT hazards differ. Each finished chunk is written atomically as Parquet to
OUT/chunks/; a rerun resumes from them, after checking that OUT/study.json describes the same study
(otherwise it refuses, saying what differs) and recomputing any chunk file that is unreadable or
incomplete. Workers import only numpy/scipy/simpy/pydantic code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from sim.analysis.endpoints import SECONDARY, itt_analysis, observe, primary_analysis, secondary_estimates
from sim.model.pathway import TrialHistory, hsct_group, simulate_trial
from sim.model.post_transplant import post_transplant_history
from sim.scenario.calibrate import PostTransplantModel, calibrate, null_twin
from sim.scenario.schema import DAYS_PER_MONTH, InputError, Scenario
from sim.study.provenance import ensure_folder, write_atomically, write_parquet_atomically

ARMS = ("design", "null")
ChunkResult = tuple[int, int, dict[str, np.ndarray]]


class Executor(Protocol):
    """Runs chunks of replicates somewhere and yields (start, stop, columns) as each finishes."""

    def run(self, study: Study, models: dict[str, PostTransplantModel], todo: list[tuple[int, int]]
            ) -> Iterator[ChunkResult]: ...


@dataclass(frozen=True)
class Study:
    """What a sizing study simulates: a scenario over a grid of sample sizes."""

    scenario: Scenario
    ns: tuple[int, ...]
    reps: int
    seed: int
    endpoints: str = "all"          # "primary" (primary + ITT) or "all" (with every secondary endpoint)

    def identity(self) -> dict[str, object]:
        """What must match for existing chunks to be reused (not reps: a study can be extended)."""
        return {"scenario": self.scenario.model_dump(), "ns": list(self.ns), "seed": self.seed,
                "endpoints": self.endpoints}


def arm_models(scenario: Scenario) -> dict[str, PostTransplantModel]:
    """Post-HSCT hazards of the scenario as given and of its null twin (true RFS at the landmark = p0)."""
    design = calibrate(scenario)
    landmark = scenario.analysis.landmark_months * DAYS_PER_MONTH
    return {"design": design, "null": null_twin(design, scenario.analysis.p0, landmark)}


# --------------------------------------------------------------------------- one chunk (runs on workers)


def simulate_chunk(study: Study, models: dict[str, PostTransplantModel], start: int, stop: int
                   ) -> dict[str, np.ndarray]:
    """Rows (replicate, n, arm) for replicates start..stop-1, as columns of plain numpy arrays."""
    rows: list[dict[str, object]] = []
    for r in range(start, stop):
        for ns, history in _pathways(study, models["design"], r):
            for arm in ARMS:
                arm_history = history if arm == "design" else _with_post(history, models[arm])
                # The null twin exists for type I error: its secondary endpoints are not needed (NaN).
                endpoints = study.endpoints if arm == "design" else "primary"
                rows += [{"replicate": r, "n": n, "arm": arm} | replicate_row(arm_history, n, endpoints) for n in ns]
    rows.sort(key=lambda row: (row["replicate"], row["arm"], row["n"]))  # one canonical order of rows
    keys = list(dict.fromkeys(key for row in rows for key in row))
    return {key: np.asarray([row.get(key, np.nan) for row in rows]) for key in keys}


def _pathways(study: Study, design: PostTransplantModel, r: int) -> Iterator[tuple[tuple[int, ...], TrialHistory]]:
    if study.scenario.transplant.capacity == "finite":
        for n in study.ns:
            yield (n,), simulate_trial(study.scenario, n, study.seed, r, post_model=design)
    else:
        yield study.ns, simulate_trial(study.scenario, max(study.ns), study.seed, r, post_model=design)


def _with_post(history: TrialHistory, model: PostTransplantModel) -> TrialHistory:
    post = post_transplant_history(history.days["hsct_day"], hsct_group(history.draws), history.draws.post_uniforms,
                                   model)
    return replace(history, post=post)


def replicate_row(history: TrialHistory, n: int, endpoints: str) -> dict[str, object]:
    """Estimates, CIs, test decisions and counts of one analysed trial of the first n patients."""
    obs = observe(history, n)
    primary = primary_analysis(history, obs=obs)
    itt, itt_test = itt_analysis(history, obs=obs)
    enrolled = int(np.count_nonzero(history.draws.enroll_day[:n] <= obs.cutoff_day))
    row: dict[str, object] = {
        "n_enrolled": enrolled, "n_transplanted": primary.n_transplanted, "n_evaluable": primary.n_evaluable,
        "duration_months": primary.duration_months, "rfs_events": primary.estimate.events,
    }
    for prefix, est, test in (("rfs", primary.estimate, primary.test), ("itt", itt, itt_test)):
        row.update({f"{prefix}_est": est.estimate, f"{prefix}_se": est.se, f"{prefix}_lower": est.lower,
                    f"{prefix}_upper": est.upper, f"{prefix}_stat": test.statistic, f"{prefix}_p": test.p_value,
                    f"{prefix}_reject": test.reject, f"{prefix}_reason": est.reason or test.reason})
    if endpoints == "all":
        for key, est in secondary_estimates(history, obs=obs).items():
            row.update({f"{key}_est": est.estimate, f"{key}_lower": est.lower, f"{key}_upper": est.upper})
    return row


# --------------------------------------------------------------------------- chunks on disk


def chunk_ranges(reps: int, chunk_size: int, done: set[tuple[int, int]] = frozenset()) -> list[tuple[int, int]]:
    """Replicate ranges still to run: [0, reps) in chunks, skipping replicates already on disk."""
    covered = np.zeros(reps, dtype=bool)
    for start, stop in done:
        covered[start:min(stop, reps)] = True
    ranges = []
    r = 0
    while r < reps:
        if covered[r]:
            r += 1
            continue
        stop = r
        while stop < reps and not covered[stop] and stop - r < chunk_size:
            stop += 1
        ranges.append((r, stop))
        r = stop
    return ranges


def chunk_path(out: Path, start: int, stop: int) -> Path:
    """Where the chunk of replicates start..stop-1 lives."""
    return out / "chunks" / f"reps-{start:08d}-{stop:08d}.parquet"


def finished_chunks(out: Path) -> set[tuple[int, int]]:
    """(start, stop) of every chunk file in OUT/chunks/ (by name; `usable_chunks` checks their content)."""
    found = set()
    for path in (out / "chunks").glob("reps-*-*.parquet"):
        parts = path.stem.split("-")
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit() and int(parts[1]) < int(parts[2]):
            found.add((int(parts[1]), int(parts[2])))
    return found


def usable_chunks(out: Path, study: Study) -> tuple[set[tuple[int, int]], list[Path]]:
    """Chunk files whose content is complete (a readable Parquet footer, one row per replicate, n and arm, the
    study's columns), not overlapping; and the paths of the others, which are to be recomputed."""
    import pyarrow.parquet as pq

    required = {"replicate", "n", "arm", "rfs_reject", "itt_reject"} | (
        {f"{key}_est" for key in SECONDARY} if study.endpoints == "all" else set())
    good: set[tuple[int, int]] = set()
    bad: list[Path] = []
    last_stop = -1
    for start, stop in sorted(finished_chunks(out)):
        path = chunk_path(out, start, stop)
        try:
            meta = pq.ParquetFile(path).metadata
            complete = (meta.num_rows == (stop - start) * len(study.ns) * len(ARMS)
                        and required <= set(meta.schema.names))
        except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError: not Parquet, truncated
            complete = False
        if not complete:
            bad.append(path)
        elif start >= last_stop:  # a chunk overlapping an earlier one (a foreign copy) is not used
            good.add((start, stop))
            last_stop = stop
    return good, bad


def write_chunk(out: Path, start: int, stop: int, columns: dict[str, np.ndarray]) -> None:
    """Write one chunk atomically: a temporary file in the same folder, then rename."""
    write_parquet_atomically(pd.DataFrame(columns), chunk_path(out, start, stop))


def prepare_output(out: Path, study: Study) -> None:
    """Create OUT/ for this study, or check that an existing one holds the same study (else InputError)."""
    ensure_folder(out)
    identity_file = out / "study.json"
    identity = study.identity()
    if identity_file.exists() or identity_file.is_symlink():
        stored = _stored_identity(out)
        if stored != json.loads(json.dumps(identity)):
            raise InputError(
                f"{out}: holds results of a different study ({study_differences(stored, identity)}); use another "
                "--out folder, or delete this one to start again")
    elif (out / "chunks").exists() and any((out / "chunks").iterdir()):
        raise InputError(f"{out}: holds chunk files but no study.json saying which study they belong to; use "
                         "another --out folder, or delete this one to start again")
    else:
        write_atomically(out, {"study.json": json.dumps(identity, sort_keys=True, indent=1)})
    if (out / "chunks").exists() and not (out / "chunks").is_dir():
        raise InputError(f"{out}: holds a file named 'chunks' where the tool keeps its chunk folder; use another "
                         "--out folder, or delete this one to start again")
    ensure_folder(out / "chunks")


def _stored_identity(out: Path) -> dict:
    """The identity in OUT/study.json, or InputError when it is not a study identity this tool wrote."""
    try:
        stored = json.loads((out / "study.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        what = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else \
            "not readable JSON" if isinstance(exc, ValueError) else exc.strerror or str(exc)
        raise InputError(f"{out}: holds results of a different study, or files this tool did not write "
                         f"(study.json: {what}); use another --out folder, or delete this one to start again") from None
    if not isinstance(stored, dict) or "scenario" not in stored:
        raise InputError(f"{out}: holds results of a different study, or files this tool did not write "
                         "(study.json is not a study identity); use another --out folder, or delete this one to "
                         "start again")
    return stored


def study_differences(stored: dict, identity: dict, most: int = 4) -> str:
    """What differs between two study identities, in words: scenario keys, seed, n grid, endpoints."""
    differences = []
    for key, label in (("seed", "seed"), ("ns", "n grid"), ("endpoints", "endpoints")):
        if stored.get(key) != identity.get(key):
            differences.append(f"{label} {_shown(stored.get(key))} there, {_shown(identity.get(key))} now")
    old, new = _flat(stored.get("scenario", {})), _flat(identity["scenario"])
    changed = [key for key in dict.fromkeys([*old, *new]) if old.get(key, "missing") != new.get(key, "missing")]
    differences += [f"scenario {key} = {_shown(old.get(key, 'missing'))} there, {_shown(new.get(key, 'missing'))} "
                    "now" for key in changed[:most]]
    if len(changed) > most:
        differences.append(f"and {len(changed) - most} more scenario keys")
    return "; ".join(differences) or "identity files differ"


def _flat(data: object, prefix: str = "") -> dict[str, object]:
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, object] = {}
    for key, value in data.items():
        out |= _flat(value, f"{prefix}.{key}" if prefix else str(key))
    return out


def _shown(value: object) -> str:
    return " ".join(str(value).split())[:60]


def load_replicates(out: Path, reps: int, chunks: set[tuple[int, int]] | None = None) -> pd.DataFrame:
    """Every replicate row < reps from OUT/chunks/, in (replicate, arm, n) order.

    Chunks never overlap and their rows are already in that order, so reading them in order needs no
    sort; filtering happens only if the folder holds more replicates than asked for. Arrow tables are
    converted once (text columns become categories), which keeps a large study's peak memory low.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    chunks = finished_chunks(out) if chunks is None else chunks
    table = pa.concat_tables([pq.read_table(chunk_path(out, start, stop))
                              for start, stop in sorted(chunks) if start < reps])
    if pc.max(table["replicate"]).as_py() >= reps:
        table = table.filter(pc.less(table["replicate"], reps))
    return table.to_pandas(strings_to_categorical=True)


def run_study(study: Study, out: Path, executor: Executor, chunk_size: int = 50,
              progress: Callable[[int], None] | None = None,
              models: dict[str, PostTransplantModel] | None = None,
              notify: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Run (or resume) every missing chunk, then return all replicate rows (models: arm_models, if already solved;
    notify: told about chunk files that were unreadable or incomplete and are recomputed)."""
    prepare_output(out, study)
    models = arm_models(study.scenario) if models is None else models
    done, bad = usable_chunks(out, study)
    for path in bad:
        if notify is not None:
            notify(f"{path}: unreadable or incomplete chunk file; its replicates are computed again")
        path.unlink()
    todo = chunk_ranges(study.reps, chunk_size, done)
    if progress is not None:
        progress(study.reps - sum(stop - start for start, stop in todo))
    for start, stop, columns in executor.run(study, models, todo):
        write_chunk(out, start, stop, columns)
        done.add((start, stop))
        if progress is not None:
            progress(stop - start)
    return load_replicates(out, study.reps, done)
