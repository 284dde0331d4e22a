"""A real Dask cluster on this machine (a scheduler and two single-threaded workers on 127.0.0.1):
the sweep on `--backend dask` equals the local run, also when a worker is killed mid-run."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ["sweep", "--n", "20:60:20", "--seed", "4", "--chunk-size", "10", "--endpoints", "all", "--quiet"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_for_workers(address: str, count: int, timeout: float = 60.0) -> None:
    from distributed import Client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with Client(address, timeout="2s") as client:
                if len(client.scheduler_info()["workers"]) >= count:
                    return
        except (OSError, TimeoutError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the Dask cluster at {address} did not get {count} workers in {timeout} s")


@pytest.fixture(scope="module")
def cluster():
    """Scheduler plus two `--nworkers 1 --nthreads 1` workers; stopped afterwards, workers first."""
    address = f"tcp://127.0.0.1:{_free_port()}"
    scheduler = _start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                        "--no-dashboard"])
    workers = []
    try:
        for _ in range(2):
            workers.append(_start(["distributed.cli.dask_worker", address, "--nworkers", "1", "--nthreads", "1",
                                   "--no-nanny", "--no-dashboard"]))
        _wait_for_workers(address, 2)
        yield address, workers
    finally:
        for worker in workers:
            _stop(worker)
        _stop(scheduler)


def _sweep(out: Path, *extra: str, wait: bool = True) -> subprocess.Popen | subprocess.CompletedProcess:
    command = [sys.executable, "run_sim.py", *SWEEP, "--out", str(out), *extra]
    if wait:
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_dask_backend_equals_local_run(cluster, tmp_path):
    address, _ = cluster
    local = _sweep(tmp_path / "local", "--reps", "40", "--jobs", "1")
    assert local.returncode == 0, local.stderr
    remote = _sweep(tmp_path / "dask", "--reps", "40", "--backend", "dask", "--scheduler", address)
    assert remote.returncode == 0, remote.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "local" / "replicates.parquet"),
                                  pd.read_parquet(tmp_path / "dask" / "replicates.parquet"))


def test_killing_a_worker_mid_run_still_gives_identical_results(cluster, tmp_path):
    address, workers = cluster
    run = _sweep(tmp_path / "dask", "--reps", "500", "--backend", "dask", "--scheduler", address, wait=False)
    chunks = tmp_path / "dask" / "chunks"
    deadline = time.monotonic() + 120
    while not list(chunks.glob("*.parquet")) and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.05)
    assert run.poll() is None, "the run finished before a worker could be killed; make it longer"
    os.killpg(workers[0].pid, signal.SIGKILL)
    workers[0].wait()
    stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr
    local = _sweep(tmp_path / "local", "--reps", "500", "--jobs", "2")
    assert local.returncode == 0, local.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "local" / "replicates.parquet"),
                                  pd.read_parquet(tmp_path / "dask" / "replicates.parquet"))


def test_assurance_on_dask_equals_the_local_run(cluster, tmp_path):
    address, _ = cluster
    common = [sys.executable, "run_sim.py", "assurance", "--n", "20", "40", "--reps", "30", "--seed", "6",
              "--chunk-size", "7", "--quiet"]
    local = subprocess.run([*common, "--jobs", "1", "--out", str(tmp_path / "local")], cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
    assert local.returncode == 0, local.stderr
    remote = subprocess.run([*common, "--backend", "dask", "--scheduler", address, "--out", str(tmp_path / "dask")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert remote.returncode == 0, remote.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "local" / "replicates.parquet"),
                                  pd.read_parquet(tmp_path / "dask" / "replicates.parquet"))
