"""Where chunks of replicates run: this process, joblib's loky process pool, or a Dask cluster.

Every executor yields (start, stop, columns) for each chunk as it finishes; the runner writes the
chunk and moves on, so the order of completion never matters (a replicate depends only on the seed
and its index).
"""

from __future__ import annotations

from collections.abc import Iterator

from sim.scenario.calibrate import PostTransplantModel
from sim.scenario.schema import InputError
from sim.study.runner import ChunkResult, Study, simulate_chunk


def _chunk_task(study: Study, models: dict[str, PostTransplantModel], start: int, stop: int) -> ChunkResult:
    return start, stop, simulate_chunk(study, models, start, stop)


class LocalExecutor:
    """Chunks in this process (jobs = 1) or on joblib's loky process pool, yielded as they finish."""

    def __init__(self, jobs: int = 1) -> None:
        self.jobs = jobs

    def run(self, study: Study, models: dict[str, PostTransplantModel], todo: list[tuple[int, int]]
            ) -> Iterator[ChunkResult]:
        if self.jobs == 1:
            for start, stop in todo:
                yield _chunk_task(study, models, start, stop)
            return
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=self.jobs, backend="loky", return_as="generator_unordered")
        yield from parallel(delayed(_chunk_task)(study, models, start, stop) for start, stop in todo)


class DaskExecutor:
    """Chunks on a Dask distributed cluster as futures (Client.submit), consumed as they finish.

    Futures rather than joblib's Dask backend: they fail fast when a worker cannot import the task,
    use workers that join late, and retry a chunk whose worker died.
    """

    def __init__(self, scheduler: str, timeout: str = "10s") -> None:
        from distributed import Client

        try:
            self.client = Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise InputError(f"--scheduler {scheduler}: cannot connect to the Dask scheduler ({exc})") from None

    def run(self, study: Study, models: dict[str, PostTransplantModel], todo: list[tuple[int, int]]
            ) -> Iterator[ChunkResult]:
        from distributed import as_completed

        study_f, models_f = self.client.scatter([study, models], broadcast=True)
        futures = [self.client.submit(_chunk_task, study_f, models_f, start, stop, pure=False, retries=3)
                   for start, stop in todo]
        for future in as_completed(futures):
            result = future.result()
            future.release()
            yield result

    def close(self) -> None:
        """Disconnect from the scheduler (the cluster keeps running)."""
        self.client.close()


