"""Where chunks of replicates run: this process, a loky process pool, or a Dask cluster (one
already running, or one started here as batch jobs on SLURM, PBS or SGE through dask-jobqueue).

Every executor yields (start, stop, the chunk's Parquet files) for each chunk as it finishes (the
files are encoded where the chunk ran); the runner writes them and moves on, so the order of
completion never matters (a replicate depends only on the seed and its index)."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sim.scenario.calibrate import PostTransplantModel
from sim.scenario.schema import InputError
from sim.study.runner import ChunkResult, Study, encoded_chunk


def _chunk_task(study: Study, models: dict[str, PostTransplantModel], start: int, stop: int) -> ChunkResult:
    return start, stop, encoded_chunk(study.chunk(models, start, stop))


def _ready() -> bool:
    """A worker's first task: unpickling it imports this module, hence the simulation code."""
    return True


# Thread pools of the libraries a worker uses (Arrow's, which encodes the chunk files, reads OMP_NUM_THREADS).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def _thread_limits(jobs: int) -> dict[str, str]:
    """Each worker's share of the cores for its libraries' threads (as joblib sets it): `jobs` workers that each
    started a thread per core would fight over the cores. A value the user set is kept."""
    share = str(max(1, (os.cpu_count() or 1) // jobs))
    return {name: os.environ.get(name, share) for name in THREAD_VARIABLES}


class LocalExecutor:
    """Chunks in this process (jobs = 1) or on a pool of `jobs` loky worker processes, yielded as they finish.

    The pool is started when the executor is made: the workers import the simulation code (about half a
    second each) while the client still calibrates, rather than after it. The pool is loky's reusable one (as
    joblib's), so consecutive runs in one process share their workers.
    """

    def __init__(self, jobs: int = 1) -> None:
        self.jobs = jobs
        if jobs > 1:
            pool = self._pool()
            for _ in range(jobs):
                pool.submit(_ready)

    def _pool(self):
        from joblib.externals.loky import get_reusable_executor

        return get_reusable_executor(max_workers=self.jobs, env=_thread_limits(self.jobs))

    def run(self, study: Study, models: dict[str, PostTransplantModel], todo: list[tuple[int, int]]
            ) -> Iterator[ChunkResult]:
        if self.jobs == 1:
            for start, stop in todo:
                yield _chunk_task(study, models, start, stop)
            return
        from concurrent.futures import FIRST_COMPLETED, wait

        pool = self._pool()

        waiting = iter(todo)
        running: set = set()
        try:
            while True:
                # Two chunks per worker in flight (as joblib): the pool stays busy while the client writes, and
                # a Ctrl-C finds few chunks queued (loky's shutdown trips over many).
                for start, stop in itertools.islice(waiting, 2 * self.jobs - len(running)):
                    running.add(pool.submit(_chunk_task, study, models, start, stop))
                if not running:
                    return
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield future.result()
        except BaseException:  # Ctrl-C, a failed chunk, or a consumer that stopped early: no chunk runs on
            # (the pool fails its pending futures itself; cancelling them first breaks its shutdown)
            pool.shutdown(wait=True, kill_workers=True)
            raise


class DaskExecutor:
    """Chunks on a Dask distributed cluster as futures (Client.submit), consumed as they finish.

    Futures rather than joblib's Dask backend: they fail fast when a worker cannot import the task,
    use workers that join late, and retry a chunk whose worker died. The study and models (a few KB)
    travel with every task instead of being scattered once: scattered data is lost with the last
    worker holding it (every batch job at its wall time, say), a task's arguments stay with the
    scheduler, so a chunk can always be rerun on a worker that joins later.
    """

    def __init__(self, scheduler: str, timeout: str = "10s", cluster=None) -> None:
        """Connect to the scheduler at `scheduler`; `cluster`, if given, is one this executor owns and closes."""
        from distributed import Client

        self.cluster = cluster
        try:
            self.client = Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise InputError(f"--scheduler {scheduler}: cannot connect to the Dask scheduler ({exc})") from None

    def run(self, study: Study, models: dict[str, PostTransplantModel], todo: list[tuple[int, int]]
            ) -> Iterator[ChunkResult]:
        from distributed import as_completed

        futures = [self.client.submit(_chunk_task, study, models, start, stop, pure=False, retries=3)
                   for start, stop in todo]
        for future in as_completed(futures):
            result = future.result()
            future.release()
            yield result

    def close(self) -> None:
        """Disconnect from the scheduler; a cluster this executor started is shut down (its jobs cancelled).
        Closing again does nothing."""
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None


# dask-jobqueue's cluster class and the command that submits its jobs, by --backend.
BATCH_SYSTEMS = {"slurm": ("SLURMCluster", "sbatch"), "pbs": ("PBSCluster", "qsub"), "sge": ("SGECluster", "qsub")}


@dataclass(frozen=True)
class ClusterRequest:
    """A batch cluster as the command line asks for it; None leaves the value to the user's dask-jobqueue
    configuration (~/.config/dask/jobqueue.yaml, DASK_JOBQUEUE__<BACKEND>__<KEY> environment variables)."""

    backend: str
    jobs: int = 1
    cores: int | None = None
    memory: str | None = None
    walltime: str | None = None
    queue: str | None = None
    account: str | None = None
    job_name: str | None = None
    log_dir: Path | None = None
    worker_timeout: float = 300.0


def walltime_seconds(text: str, backend: str) -> int:
    """Seconds in a batch wall time: [D-]HH:MM:SS, MM:SS, D-HH[:MM], or a bare number (SLURM minutes;
    PBS and SGE seconds), as the batch systems read them."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not match:
        raise ValueError(f"{text!r}: expected a wall time such as 02:00:00, 1-00:00:00 or 90:00")
    days, first, second, third = (int(part) if part else None for part in match.groups())
    if days is not None:  # D-HH, D-HH:MM, D-HH:MM:SS
        hours, minutes, seconds = first, second or 0, third or 0
    elif third is not None:
        hours, minutes, seconds = first, second, third
    elif second is not None:
        hours, minutes, seconds = 0, first, second
    else:
        hours, minutes, seconds = 0, *((first, 0) if backend == "slurm" else (0, first))
    total = ((days or 0) * 24 + hours) * 3600 + minutes * 60 + seconds
    if total < 60:
        raise ValueError(f"{text!r}: a wall time below one minute leaves workers no time to start")
    return total


def worker_lifetime(walltime: int) -> tuple[int, int]:
    """(lifetime, stagger) in seconds for dask-worker --lifetime / --lifetime-stagger under a wall time.

    Workers retire a margin of 10% of the wall time (1 to 10 minutes, at most half of it) before the
    batch system would kill them, handing their chunks back; the stagger (a quarter of the margin)
    keeps them from retiring all at once, and even the latest retires before the kill.
    """
    margin = min(max(walltime // 10, 60), 600, walltime // 2)
    return walltime - margin, margin // 4


def jobqueue_executor(request: ClusterRequest, default_log_dir: Path,
                      notify: Callable[[str], None] = lambda message: None) -> DaskExecutor:
    """A DaskExecutor owning a dask-jobqueue cluster of request.jobs batch jobs, with a worker connected.

    The jobs are submitted at once (adapt() alone would not ask for them: chunks finish in well under
    a second) and kept at that number, so a job that ends (killed, or its workers retired at the wall
    time) is resubmitted; the futures recompute its chunks. If anything fails before the executor is
    returned (Ctrl-C too), the cluster is closed, its jobs cancelled and log folders no job wrote to
    removed.
    """
    flag = f"--backend {request.backend}"
    class_name, submit = BATCH_SYSTEMS[request.backend]
    cluster_class = getattr(import_dask_jobqueue(flag), class_name)
    if shutil.which(submit) is None:
        raise InputError(f"{flag}: {submit} not found on PATH; run from a login node of the cluster "
                         "(or use --backend loky on this machine)")
    kwargs = cluster_kwargs(request, default_log_dir)
    log_dir = Path(kwargs["log_directory"])
    created = [folder for folder in (log_dir, *log_dir.parents) if not folder.exists()]
    notify(f"{request.backend}: submitting {request.jobs} job(s) of {kwargs['cores']} core(s), {kwargs['memory']}, "
           f"wall time {kwargs['walltime']}; job logs in {log_dir}/")
    started = time.monotonic()
    try:
        executor = _connected_cluster(cluster_class, kwargs, request)
    except BaseException:
        for folder in created:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    notify(f"{request.backend}: first worker after {time.monotonic() - started:.1f} s; dashboard "
           f"{executor.cluster.dashboard_link}")
    return executor


def import_dask_jobqueue(flag: str):
    """dask_jobqueue, imported without letting it take over Ctrl-C: version 0.9.0 replaces the SIGINT
    handler on import with sys.exit() (dask/dask-jobqueue#696), which would turn Ctrl-C into a silent
    exit 0 instead of KeyboardInterrupt (exit 130, finished chunks kept, cluster closed)."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        import dask_jobqueue
    except ImportError:
        raise InputError(f'{flag} needs dask-jobqueue, which is not installed: pip install -e ".[cluster]"') from None
    finally:
        if handler is not None:
            signal.signal(signal.SIGINT, handler)
    return dask_jobqueue


def cluster_kwargs(request: ClusterRequest, default_log_dir: Path) -> dict:
    """Keyword arguments of the dask-jobqueue cluster: each value from the command line, else from the
    user's dask-jobqueue configuration, else ours (one single-threaded worker process per core, since
    a chunk holds the GIL; logs in default_log_dir), and --lifetime under the wall time unless the
    configuration's worker-extra-args set one. Needs dask_jobqueue imported (its defaults)."""
    import dask

    def setting(name: str, given):
        return given if given is not None else dask.config.get(f"jobqueue.{request.backend}.{name}", None)

    flag = f"--backend {request.backend}"
    where = f"under jobqueue.{request.backend} in ~/.config/dask/jobqueue.yaml"
    kwargs = {"cores": setting("cores", request.cores), "memory": setting("memory", request.memory)}
    for name, value in kwargs.items():
        if value is None:
            raise InputError(f"{flag} needs the {name} of each job: --{name} on the command line, {name}: {where}, "
                             f"or DASK_JOBQUEUE__{request.backend.upper()}__{name.upper()}")
    kwargs["processes"] = setting("processes", None) or kwargs["cores"]
    walltime = setting("walltime", request.walltime)
    if not walltime:
        raise InputError(f"{flag} needs a wall time per job: --walltime HH:MM:SS, or walltime: {where}")
    try:
        lifetime, stagger = worker_lifetime(walltime_seconds(str(walltime), request.backend))
    except ValueError as exc:
        raise InputError(f"{'--walltime' if request.walltime else f'walltime {where}'}: {exc}") from None
    kwargs["walltime"] = walltime
    extra = list(setting("worker-extra-args", None) or [])
    if not any(str(arg).startswith("--lifetime") for arg in extra):
        extra += ["--lifetime", f"{lifetime}s", "--lifetime-stagger", f"{stagger}s"]
    kwargs["worker_extra_args"] = extra
    log_dir = request.log_dir or setting("log-directory", None) or default_log_dir
    kwargs["log_directory"] = str(Path(log_dir).expanduser().resolve())
    optional = {"queue": request.queue, "job_name": request.job_name,
                "project" if request.backend == "sge" else "account": request.account}
    kwargs.update({name: value for name, value in optional.items() if value is not None})
    return kwargs


def _connected_cluster(cluster_class: type, kwargs: dict, request: ClusterRequest) -> DaskExecutor:
    """The cluster started, its jobs submitted, a client connected and a worker joined; on any failure
    the cluster is closed (its jobs cancelled) before the exception goes on."""
    try:
        cluster = cluster_class(job_cls=_recording_refusals(cluster_class.job_cls), **kwargs)
    except ValueError as exc:  # e.g. a bad value in the configuration; dask-jobqueue's message names the keyword
        raise InputError(f"--backend {request.backend}: dask-jobqueue rejects the cluster settings: {exc}") from None
    try:
        cluster.scale(jobs=request.jobs)
        cluster.adapt(minimum_jobs=request.jobs, maximum_jobs=request.jobs)
        executor = DaskExecutor(cluster.scheduler_address, cluster=cluster)
    except BaseException:
        cluster.close()
        raise
    try:
        _wait_for_first_worker(executor, request, kwargs["log_directory"])
    except BaseException:
        executor.close()
        raise
    return executor


def _recording_refusals(job_class: type) -> type:
    """dask-jobqueue's job class, but a submission the batch system refuses is recorded on the job
    (submit_error) for _wait_for_first_worker to report, instead of raising inside the cluster's event
    loop, where it would only be logged and would leave the cluster unable to close."""
    from distributed.core import Status

    class Job(job_class):
        submit_error: str | None = None

        async def start(self) -> None:
            try:
                await super().start()
            except RuntimeError as exc:  # the submit command's exit status and output
                self.submit_error = "; ".join(line for line in str(exc).split("stderr:", 1)[-1].splitlines() if line)
                self.status = Status.running  # never submitted (no job id): closing it cancels nothing

    return Job


def _wait_for_first_worker(executor: DaskExecutor, request: ClusterRequest, log_dir: str) -> None:
    """Return once a worker has joined (the others join while chunks run); exit 2 if the batch system
    refuses the jobs or no worker has started within the timeout."""
    flag = f"--backend {request.backend}"
    deadline = time.monotonic() + request.worker_timeout
    while True:
        refused = [job.submit_error for job in executor.cluster.workers.values() if job.submit_error]
        if refused:
            raise InputError(f"{flag}: the batch system refused the job: {refused[0]} (check --queue, --account, "
                             "--cores, --memory, --walltime and the dask-jobqueue configuration)")
        try:
            executor.client.wait_for_workers(1, timeout=max(0.1, min(1.0, deadline - time.monotonic())))
            return
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise InputError(f"{flag}: no worker started within {request.worker_timeout:g} s (--worker-timeout); "
                                 f"the jobs may still be queued or may have failed (see the job logs in {log_dir}/); "
                                 "the jobs are cancelled") from None
