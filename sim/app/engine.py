"""Progressive sizing estimates for the explorer, independent of the web library.

A request names a scenario, an n grid, a seed, a target number of replicates, and the scenario as
loaded (the reference of the paired difference). Chunks of replicates run in a small process pool;
after each finished chunk the summary is recomputed on demand. Replicate r of (scenario, n grid,
seed) is the very trial the sweep simulates (sim/study/runner.simulate_chunk, the primary endpoint
only), and only the contiguous prefix 0..K-1 of finished replicates is summarised, with the sweep's
own functions: the numbers shown at K replicates are exactly those of `run_sim.py sweep --reps K`
with the same seed and n grid. A new request cancels the queued chunks of the previous one (a
generation counter discards the results of chunks already running, unless they belong to a scenario
still kept). The results of the last few scenarios of a session are kept, so returning to one is
instant and the loaded scenario, the reference of every difference, is simulated once.

Chunk sizes adapt to the measured time per replicate (about a quarter of a second per chunk), so a
faster simulation core gives earlier first estimates without any change here.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
from collections import OrderedDict
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sim.scenario.calibrate import PostTransplantModel
from sim.scenario.schema import InputError, Scenario
from sim.study.oc import expected_flow, operating_characteristics, required_n_both
from sim.study.runner import Study, arm_models, simulate_chunk
from sim.study.truth import true_values
from sim.study.whatif import paired_differences

# Columns a summary needs (the sweep's chunks hold more: test statistics, reasons, secondary endpoints).
KEPT = ("replicate", "n", "arm", "n_enrolled", "n_transplanted", "n_evaluable", "duration_months", "rfs_est",
        "rfs_lower", "rfs_upper", "rfs_reject")
ENDPOINTS = "rfs"               # the primary endpoint only: the fastest replicate of the sweep
CHUNK_SECONDS = 0.25            # aim for chunks of about this long: short enough to cancel, long enough to be cheap
FIRST_ESTIMATE = 300            # replicates of the first estimate, simulated before the reference catches up


def chunk_columns(study: Study, models: dict[str, PostTransplantModel], start: int, stop: int
                  ) -> tuple[dict[str, np.ndarray], float]:
    """The kept columns of replicates start..stop-1 (runs in a worker) and the seconds it took."""
    began = time.perf_counter()
    columns = simulate_chunk(study, models, start, stop)
    kept = {k: v for k, v in columns.items() if k in KEPT or k.startswith("flow_")}
    return kept, time.perf_counter() - began


def _ignore_interrupt() -> None:
    # Ctrl-C reaches the whole process group: only the server handles it and shuts the pool down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _ready() -> bool:
    return True


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of fresh (spawned) worker processes that ignore Ctrl-C, started and warmed up."""
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_ignore_interrupt)
    for future in [pool.submit(_ready) for _ in range(workers)]:
        future.result()
    return pool


@dataclass(frozen=True)
class Key:
    """What the replicates of a computation depend on."""

    scenario: str                   # the scenario's JSON
    ns: tuple[int, ...]
    seed: int


@dataclass
class Results:
    """Finished chunks of one Key: start -> (stop, columns), and the ranges queued or running."""

    chunks: dict[int, tuple[int, dict[str, np.ndarray]]] = field(default_factory=dict)
    pending: set[tuple[int, int]] = field(default_factory=set)

    def prefix(self) -> int:
        """Number of replicates 0..K-1 all finished."""
        r = 0
        while r in self.chunks:
            r = self.chunks[r][0]
        return r

    def next_range(self, target: int, size: int) -> tuple[int, int] | None:
        """The first replicates below target neither finished nor pending, at most size of them."""
        taken = sorted([(s, stop) for s, (stop, _) in self.chunks.items()] + list(self.pending))
        r = 0
        for start, stop in taken:
            if start > r:
                break
            r = max(r, stop)
        if r >= target:
            return None
        following = [s for s, _ in taken if s > r]
        return r, min(r + size, target, *following)

    def frame(self, k: int) -> pd.DataFrame:
        """Rows of replicates 0..k-1 (k at most the prefix), in the runner's canonical order."""
        parts, r = [], 0
        while r < k:
            stop, columns = self.chunks[r]
            parts.append(columns)
            r = stop
        if not parts:
            return pd.DataFrame(columns=list(KEPT))
        names = parts[0].keys()
        frame = pd.DataFrame({name: np.concatenate([p[name] for p in parts]) for name in names})
        return frame if r == k else frame[frame["replicate"] < k].reset_index(drop=True)


@dataclass(frozen=True)
class Request:
    """One question: the scenario as changed, the scenario as loaded, the n grid, seed and replicates."""

    scenario: Scenario
    reference: Scenario
    ns: tuple[int, ...]
    seed: int
    reps: int
    targets: tuple[float, ...] = (0.8, 0.9)

    def key(self) -> Key:
        return Key(self.scenario.model_dump_json(), self.ns, self.seed)

    def reference_key(self) -> Key:
        return Key(self.reference.model_dump_json(), self.ns, self.seed)


@dataclass(frozen=True, eq=False)
class Snapshot:
    """What the page shows: the summary of replicates 0..reps-1 of the current request."""

    generation: int
    request: Request
    reps: int                       # replicates summarised (0..reps-1)
    done: bool
    seconds: float                  # since the request
    true_rfs: float
    oc: pd.DataFrame                # operating_characteristics rows of the primary endpoint
    sizes: pd.DataFrame             # required_n_both
    flow: pd.DataFrame              # expected_flow
    difference: pd.DataFrame | None  # paired_differences from the scenario as loaded (None: it is the loaded one)
    difference_reps: int
    error: str | None = None


class Explorer:
    """One browser session's computations: requests, chunks in a shared pool, summaries on demand."""

    def __init__(self, pool: Executor, workers: int = 2, keep: int = 4, first_estimate: int = FIRST_ESTIMATE,
                 chunk_seconds: float = CHUNK_SECONDS) -> None:
        self.pool = pool
        self.in_flight_limit = 2 * workers          # enough to keep every worker busy between callbacks
        self.keep = keep
        self.first_estimate = first_estimate
        self.chunk_seconds = chunk_seconds
        self._lock = threading.RLock()
        self._generation = 0
        self._request: Request | None = None
        self._started = 0.0
        self._results: OrderedDict[Key, Results] = OrderedDict()
        self._models: OrderedDict[str, dict[str, PostTransplantModel]] = OrderedDict()
        self._in_flight: dict[Future, tuple[int, Key, int, int]] = {}
        self._seconds_per_rep = 0.012               # refined from every finished chunk
        self._error: str | None = None
        self._last: Snapshot | None = None
        self._closed = False

    # ------------------------------------------------------------------ requests

    def models(self, scenario: Scenario) -> dict[str, PostTransplantModel]:
        """arm_models of a scenario, solved once per session (raises ScenarioError when unsolvable)."""
        key = scenario.model_dump_json()
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        models = arm_models(scenario)
        with self._lock:
            self._models[key] = models
            while len(self._models) > 2 * self.keep:
                self._models.popitem(last=False)
        return models

    def request(self, request: Request) -> int:
        """Start answering a request (cancelling the previous one); returns its generation."""
        if request.reps < 1 or not request.ns or min(request.ns) < 1:
            raise InputError("replicates and every n must be at least 1")
        self.models(request.scenario)
        self.models(request.reference)
        with self._lock:
            self._generation += 1
            self._request = request
            self._started = time.perf_counter()
            self._error = None
            for future, (_, key, start, stop) in list(self._in_flight.items()):
                if future.cancel():
                    self._in_flight.pop(future, None)
                    if key in self._results:
                        self._results[key].pending.discard((start, stop))
            for key in (request.reference_key(), request.key()):
                self._results.setdefault(key, Results())
                self._results.move_to_end(key)
            while len(self._results) > self.keep:
                self._results.popitem(last=False)
            self._fill()
            return self._generation

    def close(self) -> None:
        """Cancel queued chunks and forget every result (the pool belongs to the caller)."""
        with self._lock:
            self._closed = True
            for future in list(self._in_flight):
                future.cancel()
            self._in_flight.clear()
            self._results.clear()
            self._models.clear()
            self._last = None

    # ------------------------------------------------------------------ scheduling

    def _chunk_size(self) -> int:
        size = int(self.chunk_seconds / max(self._seconds_per_rep, 1e-5))
        return int(np.clip(size, 5, 250))

    def _next_job(self) -> tuple[Key, Study, int, int] | None:
        req = self._request
        if req is None:
            return None
        current, reference = self._results[req.key()], self._results[req.reference_key()]
        size = self._chunk_size()
        # The current scenario first up to the first estimate; then the reference keeps pace with it.
        first = min(self.first_estimate, req.reps)
        order = [(req.key(), req.scenario, current, first)]
        if req.reference_key() != req.key():
            ahead = reference.prefix() + len(reference.pending) * size >= current.prefix()
            pair = [(req.key(), req.scenario, current, req.reps),
                    (req.reference_key(), req.reference, reference, req.reps)]
            order += pair if ahead else pair[::-1]
        else:
            order.append((req.key(), req.scenario, current, req.reps))
        for key, scenario, results, target in order:
            span = results.next_range(target, size)
            if span is not None:
                return key, Study(scenario, req.ns, req.reps, req.seed, ENDPOINTS), *span
        return None

    def _fill(self) -> None:
        while not self._closed and sum(1 for g, *_ in self._in_flight.values() if g == self._generation) \
                < self.in_flight_limit:
            job = self._next_job()
            if job is None:
                return
            key, study, start, stop = job
            self._results[key].pending.add((start, stop))
            try:
                future = self.pool.submit(chunk_columns, study, self.models(study.scenario), start, stop)
            except RuntimeError as exc:            # the pool is shutting down
                self._results[key].pending.discard((start, stop))
                self._error = f"the computation stopped: {exc}"
                return
            self._in_flight[future] = (self._generation, key, start, stop)
            future.add_done_callback(self._finished)

    def _finished(self, future: Future) -> None:
        with self._lock:
            info = self._in_flight.pop(future, None)
            if info is None or future.cancelled():
                return
            generation, key, start, stop = info
            results = self._results.get(key)
            if results is not None:
                results.pending.discard((start, stop))
            try:
                columns, seconds = future.result()
            except Exception as exc:  # noqa: BLE001 - a worker that died: say so on the page, keep serving
                if generation == self._generation:
                    self._error = f"the computation failed ({type(exc).__name__}: {exc}); change a value to retry"
                return
            if results is not None:
                results.chunks[start] = (stop, columns)
            self._seconds_per_rep = 0.7 * self._seconds_per_rep + 0.3 * seconds / max(stop - start, 1)
            if generation == self._generation:
                self._fill()

    # ------------------------------------------------------------------ summaries

    def snapshot(self) -> Snapshot | None:
        """The summary of the current request's finished prefix (the same object while nothing new finished)."""
        with self._lock:
            req = self._request
            if req is None or self._closed:
                return None
            generation = self._generation
            current, reference = self._results[req.key()], self._results[req.reference_key()]
            k = min(current.prefix(), req.reps)
            kd = min(k, reference.prefix())
            done = k >= req.reps
            last = self._last
            if (last is not None and last.generation == generation and last.reps == k
                    and last.difference_reps == kd and last.error == self._error):
                return last
            frame = current.frame(k)
            paired = None if req.key() == req.reference_key() or kd < 2 else \
                {"loaded": reference.frame(kd), "current": current.frame(kd)}
            seconds = time.perf_counter() - self._started
            error = self._error
        snap = summarise(req, frame, paired, kd, self.models(req.scenario), generation, done, seconds, error)
        with self._lock:
            if generation == self._generation:
                self._last = snap
        return snap

    def wait(self, reps: int, timeout: float = 600.0, poll: float = 0.05) -> Snapshot:
        """Block until the current request has at least `reps` replicates summarised (for scripts and tests)."""
        deadline = time.monotonic() + timeout
        while True:
            snap = self.snapshot()
            if snap is not None and (snap.reps >= reps or snap.error):
                return snap
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {reps} replicates after {timeout} s")
            time.sleep(poll)


def summarise(req: Request, frame: pd.DataFrame, paired: dict[str, pd.DataFrame] | None, paired_reps: int,
              models: dict[str, PostTransplantModel], generation: int, done: bool, seconds: float,
              error: str | None) -> Snapshot:
    """The sweep's operating characteristics, required n and expected flow of these replicates."""
    truths = true_values(req.scenario, models, req.seed, itt=False)
    k = int(frame["replicate"].max()) + 1 if len(frame) else 0
    if k:
        oc = operating_characteristics(frame, truths, ("rfs",))
        sizes = required_n_both(oc, req.targets)
        flow = expected_flow(frame)
    else:
        oc = sizes = flow = pd.DataFrame()
    difference = None
    if paired is not None:
        difference = paired_differences(paired, "loaded")
    elif req.key() != req.reference_key():
        difference = pd.DataFrame()
    return Snapshot(generation, req, k, done, seconds, truths["design"]["rfs"], oc, sizes, flow, difference,
                    paired_reps, error)
