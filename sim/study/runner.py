"""Replicates of whole virtual trials, in chunks, on joblib (loky) or a Dask cluster, resumable.

A replicate is addressed by (seed, replicate index) alone, so results do not depend on chunking,
worker count or backend. Each replicate simulates the pathway once at the largest n of the grid and
analyses its first n patients for every n (exact, because without a finite trial-only transplant
capacity no patient's history depends on a later patient; with one, each n is simulated on its own,
still from the same streams). Three arms share the pathway and every uniform and differ only in
their post-HSCT hazards: the scenario as given ("design"), its null twin ("null", hazards scaled so
the true RFS at the landmark is p0: type I error) and its design-alternative twin ("alt", true RFS =
p1: power at the protocol's alternative). Each finished chunk is written atomically as Parquet to
OUT/chunks/; a rerun resumes from them, after checking that OUT/study.json describes the same study
(otherwise it refuses, saying what differs) and recomputing any chunk file that is unreadable or
incomplete. Workers import only numpy/scipy/simpy/pydantic code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from sim.analysis.endpoints import itt_analysis, observe, primary_analysis, secondary_estimates
from sim.analysis.flow import flow_counts
from sim.analysis.monitored import NO_RULES, monitored_columns, stop_columns
from sim.analysis.nested import many_replicate_columns, trial_rows
from sim.model.draws import DRAW_STREAMS
from sim.model.monitoring import any_enabled
from sim.model.pathway import TrialHistory, hsct_group, simulate_trial, simulate_trials, times_after_hsct
from sim.model.post_transplant import post_transplant_history
from sim.model.streams import replicate_seeds
from sim.scenario.calibrate import PostTransplantModel, calibrate, null_twin
from sim.scenario.schema import DAYS_PER_MONTH, InputError, Scenario
from sim.study.provenance import ensure_folder, parquet_bytes, write_atomically

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

ARMS = ("design", "null", "alt")
DENSE_ARMS = ("design", "alt")   # the arms whose power a refinement of the required n needs
ENDPOINT_SETS = ("rfs", "primary", "all")   # each includes the ones before it
ChunkResult = tuple[int, int, dict[str, bytes]]   # (start, stop, Parquet file of each part: encoded_chunk)


class Executor(Protocol):
    """Runs chunks of replicates somewhere and yields (start, stop, encoded_chunk(columns)) as each finishes."""

    def run(self, study: Study, models: dict[str, PostTransplantModel], todo: list[tuple[int, int]]
            ) -> Iterator[ChunkResult]: ...


@dataclass(frozen=True)
class Study:
    """What a sizing study simulates: a scenario over a grid of sample sizes."""

    scenario: Scenario
    ns: tuple[int, ...]
    reps: int
    seed: int
    endpoints: str = "all"          # "rfs" (primary only), "primary" (+ ITT) or "all" (+ every secondary endpoint)
    arms: tuple[str, ...] = ARMS
    # Further n analysed from the same nested pathways for the primary endpoint alone, in DENSE_ARMS: the n a
    # refinement of the required n may ask for, at the cost of their analysis only (sizing.py).
    dense: tuple[int, ...] = ()

    def identity(self) -> dict[str, object]:
        """What must match for existing chunks to be reused (not reps: a study can be extended)."""
        identity = {"scenario": self.scenario.model_dump(), "ns": list(self.ns), "seed": self.seed,
                    "endpoints": self.endpoints, "arms": list(self.arms)}
        return identity | ({"dense": list(self.dense)} if self.dense else {})

    def chunk(self, models: dict[str, PostTransplantModel], start: int, stop: int) -> dict[str, np.ndarray]:
        """The rows of replicates start..stop-1 (what executors run; other studies, e.g. assurance, have their own)."""
        return simulate_chunk(self, models, start, stop)


def arm_models(scenario: Scenario) -> dict[str, PostTransplantModel]:
    """Post-HSCT hazards of each arm: the scenario as given, its null twin (true RFS at the landmark
    = p0) and its design-alternative twin (true RFS = p1), the twins scaling relapse and NRM together."""
    design = calibrate(scenario)
    a = scenario.analysis
    landmark = a.landmark_months * DAYS_PER_MONTH
    return {"design": design, "null": null_twin(design, a.p0, landmark), "alt": null_twin(design, a.p1, landmark)}


# --------------------------------------------------------------------------- one chunk (runs on workers)


DENSE_PREFIX = "dense."   # simulate_chunk's columns of the dense n (another table, with its own length)
DENSE_FOLDER = "dense"    # where a study keeps the chunks of its dense n, beside "chunks"
ANALYSIS_BATCH = 50  # replicates whose trials are analysed together: the batch's arrays stay small in a large chunk


def simulate_chunk(study: Study, models: dict[str, PostTransplantModel], start: int, stop: int
                   ) -> dict[str, np.ndarray]:
    """Rows (replicate, n, arm) for replicates start..stop-1, as columns of plain numpy arrays; the rows of the
    study's dense n (if any) follow as columns named DENSE_PREFIX + name, a table of their own (write_chunk)."""
    blocks: list[dict[str, np.ndarray]] = []
    dense: list[dict[str, np.ndarray]] = []
    for first in range(start, stop, ANALYSIS_BATCH):
        grid_blocks, dense_blocks = _batch_blocks(study, models, first, min(stop, first + ANALYSIS_BATCH))
        blocks += grid_blocks
        dense += dense_blocks
    columns = _canonical(stacked(blocks))
    if dense:
        columns |= {DENSE_PREFIX + key: value for key, value in _canonical(stacked(dense)).items()}
    return columns


def encoded_chunk(columns: dict[str, np.ndarray]) -> dict[str, bytes]:
    """A chunk's columns as the bytes of its Parquet files: "chunks" (the grid's rows) and, if the chunk has dense
    n, DENSE_FOLDER. Encoded where the chunk was computed: a worker then hands back about 3 MB of compressed columns
    per 500 replicates, not the 38 MB of arrays (text columns are fixed-width there) that the client had to convert."""
    import pyarrow as pa

    dense = {key.removeprefix(DENSE_PREFIX): value for key, value in columns.items() if key.startswith(DENSE_PREFIX)}
    grid = {key: value for key, value in columns.items() if not key.startswith(DENSE_PREFIX)}
    return {"chunks": parquet_bytes(pa.table(grid))} | ({DENSE_FOLDER: parquet_bytes(pa.table(dense))} if dense else {})


def _canonical(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The rows in one canonical order: replicate, arm, n."""
    order = np.lexsort((columns["n"], columns["arm"], columns["replicate"]))
    if (order == np.arange(order.size)).all():
        return columns
    return {key: value[order] for key, value in columns.items()}


def stacked(blocks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Blocks of rows as one set of columns; a column a block lacks (a twin's flow, say) is NaN there."""
    keys = list(dict.fromkeys(key for block in blocks for key in block))
    return {key: np.concatenate([block[key] if key in block else np.full(block["n"].size, np.nan)
                                 for block in blocks]) for key in keys}


def _batch_blocks(study: Study, models: dict[str, PostTransplantModel], start: int, stop: int
                  ) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    """The rows of replicates start..stop-1, a block per (replicate, arm) or, each n on its own, per n too; and
    the blocks of the dense n (per replicate and dense arm)."""
    blocks: list[dict[str, np.ndarray]] = []
    unmonitored: list[tuple[int, tuple[int, ...], str, tuple[TrialHistory, str, bool]]] = []
    monitored = any_enabled(study.scenario.monitoring)
    for r, ns, arm_histories in _trials(study, models, start, stop):
        history = arm_histories["design"]
        for arm in study.arms:
            arm_history = arm_histories[arm]
            # The twins exist for type I error and power at p1: their secondary endpoints and the
            # patient flow (the same pathway as the design arm) are not needed (NaN); nor is the flow
            # in a study of the primary endpoint alone (the refinement of the required n).
            design = arm == "design"
            endpoints = study.endpoints if design else min(study.endpoints, "primary", key=ENDPOINT_SETS.index)
            flow = design and study.endpoints != "rfs"
            if not monitored:
                unmonitored.append((r, ns, arm, (arm_history, endpoints, flow)))
                continue
            if live_monitoring(study.scenario):
                columns = live_columns(study, models[arm], r, ns[0], arm_history, endpoints, flow)
            else:
                columns = monitored_columns(arm_history, ns, endpoints, flow,
                                            times_after_hsct(history.draws, models[arm]))
            blocks.append(_block([(r, arm)], ns, {key: value[None] for key, value in columns.items()}))
    for ns in dict.fromkeys(ns for _, ns, _, _ in unmonitored):   # one batch per n grid (one, or each n alone)
        same = sorted((item for item in unmonitored if item[1] == ns), key=lambda item: (item[0], item[2]))
        blocks.append(_block([(r, arm) for r, _, arm, _ in same], ns,
                             analysed_columns([trial for *_, trial in same], ns)))
    if not study.dense:
        return blocks, []
    if monitored or len({ns for _, ns, _, _ in unmonitored}) != 1:
        raise ValueError("dense n need nested pathways without interim rules (one pathway per replicate)")
    same = sorted(((r, arm, history) for r, _, arm, (history, _, _) in unmonitored if arm in DENSE_ARMS),
                  key=lambda item: (item[0], item[1]))
    analysed = analysed_columns([(history, "rfs", False) for *_, history in same], study.dense)
    return blocks, [_block([(r, arm) for r, arm, _ in same], study.dense, analysed)]


def _block(trials: list[tuple[int, str]], ns: tuple[int, ...], columns: dict[str, np.ndarray]
           ) -> dict[str, np.ndarray]:
    """Rows (replicate, n, arm) of the (trial x n) columns of the trials (replicate, arm)."""
    size = len(ns)
    return ({"replicate": np.repeat(np.array([r for r, _ in trials], dtype=np.int64), size),
             "n": np.tile(np.asarray(ns), len(trials)), "arm": np.repeat(np.array([arm for _, arm in trials]), size)}
            | {key: value.reshape(-1) for key, value in columns.items()})


def live_monitoring(scenario: Scenario) -> bool:
    """Whether monitoring must be simulated live, each n on its own: a pause of enrollment moves later
    patients, and with the trial's own slots a patient who would have enrolled after a stop could still
    have delayed an earlier one in the queue. Rules that only stop enrollment are otherwise applied after
    the fact to one trial of the largest n (analysis/monitored.py)."""
    m = scenario.monitoring
    paused = m.simon.enabled and m.simon.pause_enrollment
    return any_enabled(m) and (scenario.transplant.capacity == "finite" or paused)


def live_columns(study: Study, model: PostTransplantModel, r: int, n: int, unmonitored: TrialHistory,
                 endpoints: str, flow: bool) -> dict[str, np.ndarray]:
    """The row of an n-patient trial simulated with its rules live (this arm's hazards), with the
    `_no_rules` columns from the same trial without them."""
    live = simulate_trial(study.scenario, n, study.seed, r, post_model=model, monitor=True)
    out = live.monitoring
    row = replicate_row(live, live.n, endpoints, flow)
    if out.stop.stopped:
        row |= {key: False for key in ("rfs_reject", "itt_reject") if key in row}
    columns = {key: np.asarray([value]) for key, value in row.items()}
    columns |= stop_columns(np.array([out.stop.stopped]), np.array([out.stop.rule]), np.array([out.stop.day]),
                            float(live.draws.enroll_day[0]))
    plain = replicate_row(unmonitored, n, "rfs")
    return columns | {f"{key}_no_rules": np.asarray([plain[key]]) for key in NO_RULES}


def _trials(study: Study, models: dict[str, PostTransplantModel], start: int, stop: int
            ) -> Iterator[tuple[int, tuple[int, ...], dict[str, TrialHistory]]]:
    """(replicate, its n, the trial of each arm) for replicates start..stop-1: one trial of the largest n per
    replicate where the pathways are nested (simulated together, pathway.simulate_trials), else one per n.
    Every arm shares the design's pathway and differs after HSCT."""
    seeds = replicate_seeds(study.seed, range(start, stop), DRAW_STREAMS)
    arms = ("design", *(arm for arm in study.arms if arm != "design"))
    if study.scenario.transplant.capacity == "finite" or live_monitoring(study.scenario):
        for s in seeds:
            for n in study.ns:
                history = simulate_trial(study.scenario, n, study.seed, s.replicate, post_model=models["design"],
                                         seeds=s)
                yield s.replicate, (n,), {arm: history if arm == "design" else _with_post(history, models[arm])
                                          for arm in arms}
        return
    together = simulate_trials(study.scenario, max(study.ns), seeds, [models[arm] for arm in arms])
    for s, histories in zip(seeds, together, strict=True):
        yield s.replicate, study.ns, dict(zip(arms, histories, strict=True))


def design_trials(scenario: Scenario, n: int, seed: int, reps: int, design: PostTransplantModel
                  ) -> list[TrialHistory]:
    """The design arm's n-patient trials of replicates 0..reps-1, simulated as a study simulates them (together
    where the pathways are nested): each is simulate_trial(scenario, n, seed, r, post_model=design)."""
    study = Study(scenario, (n,), reps, seed, "rfs", arms=("design",))
    return [histories["design"] for _, _, histories in _trials(study, {"design": design}, 0, reps)]


def _pathways(study: Study, design: PostTransplantModel, r: int) -> Iterator[tuple[tuple[int, ...], TrialHistory]]:
    """The design arm's trials of replicate r, as _trials gives them."""
    for _, ns, histories in _trials(replace(study, arms=("design",)), {"design": design}, r, r + 1):
        yield ns, histories["design"]


def _with_post(history: TrialHistory, model: PostTransplantModel) -> TrialHistory:
    post = post_transplant_history(history.days["hsct_day"], hsct_group(history.draws), history.draws.post_uniforms,
                                   model)
    return replace(history, post=post)


def analysed_columns(trials: list[tuple[TrialHistory, str, bool]], ns: tuple[int, ...]) -> dict[str, np.ndarray]:
    """replicate_row for each n of each (history, endpoints, flow), as (trial x n) columns (nested.trial_rows): all
    n of all the trials at once (analysis/nested.py) when the pathways are nested (several n)."""
    if len(ns) > 1:
        return many_replicate_columns(trials, ns)
    rows = [replicate_row(history, ns[0], endpoints, flow) for history, endpoints, flow in trials]
    return trial_rows([{key: np.asarray([value]) for key, value in row.items()} for row in rows])


def replicate_row(history: TrialHistory, n: int, endpoints: str, flow: bool = False) -> dict[str, object]:
    """Estimates, CIs, test decisions and counts of one analysed trial of the first n patients
    (flow=True: also the patient flow known at the data cutoff, for the expected CONSORT diagram)."""
    obs = observe(history, n)
    primary = primary_analysis(history, obs=obs)
    enrolled = int(np.count_nonzero(history.draws.enroll_day[:n] <= obs.cutoff_day))
    row: dict[str, object] = {
        "n_enrolled": enrolled, "n_transplanted": primary.n_transplanted, "n_evaluable": primary.n_evaluable,
        "duration_months": primary.duration_months, "rfs_events": primary.estimate.events,
    }
    tested = [("rfs", primary.estimate, primary.test)]
    if endpoints != "rfs":
        tested.append(("itt", *itt_analysis(history, obs=obs)))
    for prefix, est, test in tested:
        row.update({f"{prefix}_est": est.estimate, f"{prefix}_se": est.se, f"{prefix}_lower": est.lower,
                    f"{prefix}_upper": est.upper, f"{prefix}_stat": test.statistic, f"{prefix}_p": test.p_value,
                    f"{prefix}_reject": test.reject, f"{prefix}_reason": est.reason or test.reason})
    if flow:
        row |= flow_counts(obs)
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


def chunk_path(out: Path, start: int, stop: int, part: str = "chunks") -> Path:
    """Where the chunk of replicates start..stop-1 lives (part DENSE_FOLDER: the rows of its dense n)."""
    return out / part / f"reps-{start:08d}-{stop:08d}.parquet"


def finished_chunks(out: Path) -> set[tuple[int, int]]:
    """(start, stop) of every chunk file in OUT/chunks/ (by name; `usable_chunks` checks their content)."""
    found = set()
    for path in (out / "chunks").glob("reps-*-*.parquet"):
        parts = path.stem.split("-")
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit() and int(parts[1]) < int(parts[2]):
            found.add((int(parts[1]), int(parts[2])))
    return found


def usable_chunks(out: Path, study: Study) -> tuple[set[tuple[int, int]], list[Path]]:
    """Chunk files whose content is complete (readable Parquet holding every replicate of its range, each with the
    same number of rows, one per n and arm of the study; likewise the rows of its dense n, if the study has
    any), not overlapping; and the paths of the others, which are to be recomputed."""
    good: set[tuple[int, int]] = set()
    bad: list[Path] = []
    last_stop = -1
    dense = getattr(study, "dense", ())
    for start, stop in sorted(finished_chunks(out)):
        paths = [chunk_path(out, start, stop)] + ([chunk_path(out, start, stop, DENSE_FOLDER)] if dense else [])
        complete = _readable_and_complete(paths[0], start, stop, len(study.ns)) and \
            (not dense or _readable_and_complete(paths[1], start, stop, len(dense)))
        if not complete:
            bad += [path for path in paths if path.exists()]
        elif start >= last_stop:  # a chunk overlapping an earlier one (a foreign copy) is not used
            good.add((start, stop))
            last_stop = stop
    return good, bad


def _readable_and_complete(path: Path, start: int, stop: int, sizes: int) -> bool:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=["replicate", "n", "arm", "rfs_reject"])
        return _complete_chunk(table.column("replicate").to_numpy(), table.column("n").to_numpy(),
                               table.column("arm").to_pylist(), start, stop, sizes)
    except (OSError, ValueError, KeyError):  # pyarrow's ArrowInvalid is a ValueError: not Parquet, truncated
        return False


def _complete_chunk(replicate: np.ndarray, n: np.ndarray, arm: list, start: int, stop: int, sizes: int) -> bool:
    """Whether a chunk's rows are every replicate start..stop-1, each with one row per n and arm."""
    if replicate.size == 0 or replicate.min() != start or replicate.max() != stop - 1:
        return False
    rows = np.bincount(replicate - start, minlength=stop - start)
    arms = len(set(arm))
    return bool((rows == sizes * arms).all()) and len(np.unique(n)) == sizes


def write_chunk(out: Path, start: int, stop: int, parts: dict[str, bytes]) -> None:
    """Write one chunk's files (encoded_chunk) atomically, its dense rows first (a chunk counts as finished when
    both exist)."""
    for part in sorted(parts, key=lambda name: name == "chunks"):
        path = chunk_path(out, start, stop, part)
        write_atomically(path.parent, {path.name: parts[part]})


def read_chunk(source: Path | pa.BufferReader) -> pa.Table:
    """A chunk file's rows, its text columns (arm, reasons) read as dictionaries: they hold a few distinct values
    over many rows, and decoding them into strings (to make categories of them again) was most of a large study's
    load time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = pq.ParquetFile(source)
    text = [field.name for field in file.schema_arrow if pa.types.is_string(field.type)]
    if text:
        file = pq.ParquetFile(source, read_dictionary=text)
    return file.read()


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
    for key, label in (("seed", "seed"), ("ns", "n grid"), ("endpoints", "endpoints"),
                       ("dense", "n between grid points")):
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


def load_replicates(out: Path, reps: int, chunks: set[tuple[int, int]] | None = None,
                    in_memory: dict[tuple[int, int], bytes] | None = None, part: str = "chunks",
                    ns: tuple[int, ...] | None = None) -> pd.DataFrame:
    """Every replicate row < reps from OUT/chunks/ (or from in_memory, the files this run just wrote), in
    (replicate, arm, n) order; part DENSE_FOLDER: the rows of the dense n; ns: only the rows of these n.

    Chunks never overlap and their rows are already in that order, so reading them in order needs no
    sort; filtering happens only if the folder holds more replicates than asked for. The rows become a
    DataFrame as to_pandas(strings_to_categorical=True) would make it, a column at a time: each is copied out
    of Arrow (its many chunks made contiguous) and its Arrow memory handed back before the next, so that a
    large study peaks at about its frame, not twice it.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    chunks = finished_chunks(out) if chunks is None else chunks
    in_memory = in_memory or {}

    def rows(table: pa.Table) -> pa.Table:  # each chunk's rows of these n before they are put together
        return table if ns is None else table.filter(pc.is_in(table["n"], value_set=pa.array(ns, table["n"].type)))

    tables = [rows(read_chunk(pa.BufferReader(in_memory[chunk]) if chunk in in_memory else
                              chunk_path(out, *chunk, part)))
              for chunk in sorted(chunks) if chunk[0] < reps]
    table = pa.concat_tables(tables, promote_options="default")  # a column missing from a chunk reads as null
    del tables
    if len(table) and pc.max(table["replicate"]).as_py() >= reps:
        table = table.filter(pc.less(table["replicate"], reps))
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        columns[name] = (pc.dictionary_encode(column) if pa.types.is_string(column.type) else column).to_pandas()
        table = table.drop_columns([name])
        del column
        pa.default_memory_pool().release_unused()
    return pd.DataFrame(columns, copy=False)


def run_study(study: Study, out: Path, executor: Executor, chunk_size: int = 50,
              progress: Callable[[int], None] | None = None,
              models: dict[str, PostTransplantModel] | None = None,
              notify: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Run (or resume) every missing chunk, then return all replicate rows (models: arm_models, if already solved;
    notify: told about chunk files that were unreadable or incomplete and are recomputed)."""
    done, fresh = run_chunks(study, out, executor, chunk_size, progress, models, notify)
    return load_replicates(out, study.reps, done, fresh)


def run_chunks(study: Study, out: Path, executor: Executor, chunk_size: int = 50,
               progress: Callable[[int], None] | None = None,
               models: dict[str, PostTransplantModel] | None = None,
               notify: Callable[[str], None] | None = None
               ) -> tuple[set[tuple[int, int]], dict[tuple[int, int], bytes]]:
    """Run (or resume) every missing chunk: the chunks now on disk, and the grid file of those computed in this
    run (compressed bytes, so that they need not be read back)."""
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
    fresh: dict[tuple[int, int], bytes] = {}
    for start, stop, parts in executor.run(study, models, todo):
        write_chunk(out, start, stop, parts)
        fresh[(start, stop)] = parts["chunks"]
        done.add((start, stop))
        if progress is not None:
            progress(stop - start)
    return done, fresh
