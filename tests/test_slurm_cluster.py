"""Batch clusters from the command line (--backend slurm/pbs/sge through dask-jobqueue).

First the settings (which value wins, wall time and worker lifetime, errors), everywhere; then a real
one-node SLURM (started by `.ci/slurm-up`, as CI does): the sweep in two batch jobs equals the local
run, jobs that die are resubmitted and their chunks recomputed, Ctrl-C and every failure to start
cancel the jobs. Without a running SLURM those tests skip and say how to start one; with
BLINA_REQUIRE_SLURM set (CI) they fail instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dask
import pandas as pd
import pytest

from sim.cli.parser import main
from sim.scenario.schema import InputError
from sim.study.executors import ClusterRequest, cluster_kwargs, import_dask_jobqueue, walltime_seconds, worker_lifetime

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ["sweep", "--n", "20:60:20", "--seed", "4", "--chunk-size", "2", "--endpoints", "all", "--quiet",
         "--reps", "60"]
# What a user would keep in ~/.config/dask/jobqueue.yaml; the tests point DASK_CONFIG at a copy.
JOBQUEUE_YAML = """\
jobqueue:
  slurm:
    interface: lo        # scheduler and workers on one machine: loopback
    cores: 1
    memory: 2GB          # the command line's --memory 1GB overrides this
    walltime: "00:10:00"
"""


# Settings: no SLURM needed.

@pytest.mark.parametrize(("text", "backend", "seconds"), [
    ("02:00:00", "slurm", 7200), ("1-00:00:00", "slurm", 86400), ("1-02", "slurm", 93600),
    ("1-02:30", "slurm", 95400), ("90:00", "slurm", 5400), ("90", "slurm", 5400), ("90", "pbs", 90),
    ("3600", "sge", 3600), ("00:30:00", "pbs", 1800),
])
def test_walltime_is_read_as_the_batch_system_reads_it(text, backend, seconds):
    assert walltime_seconds(text, backend) == seconds


@pytest.mark.parametrize("text", ["", "2h", "1:2:3:4", "-5", "00:00:30"])
def test_a_walltime_that_is_not_one_is_refused(text):
    with pytest.raises(ValueError):
        walltime_seconds(text, "slurm")


@pytest.mark.parametrize("walltime", [120, 600, 1800, 7200, 86400])
def test_workers_retire_before_the_walltime_even_the_latest(walltime):
    lifetime, stagger = worker_lifetime(walltime)
    assert 0 < stagger < lifetime
    assert lifetime + stagger < walltime          # the latest worker still retires before the kill
    assert walltime - lifetime <= 600             # and not more than 10 minutes early
    if walltime >= 600:
        assert walltime - (lifetime + stagger) >= 45


def test_command_line_values_win_and_the_configuration_fills_the_rest(tmp_path):
    import_dask_jobqueue("--backend slurm")  # registers dask-jobqueue's defaults
    config = {"jobqueue.slurm.cores": 8, "jobqueue.slurm.memory": "32GB", "jobqueue.slurm.walltime": "02:00:00",
              "jobqueue.slurm.queue": "long", "jobqueue.slurm.processes": None,
              "jobqueue.slurm.worker-extra-args": ["--resources", "X=1"], "jobqueue.slurm.log-directory": None}
    with dask.config.set(config):
        mine = cluster_kwargs(ClusterRequest("slurm", cores=4, walltime="01:00:00"), tmp_path / "logs")
        theirs = cluster_kwargs(ClusterRequest("slurm", log_dir=tmp_path / "mine"), tmp_path / "logs")
    assert (mine["cores"], mine["processes"], mine["memory"], mine["walltime"]) == (4, 4, "32GB", "01:00:00")
    assert "queue" not in mine  # left to dask-jobqueue, which reads "long" from the configuration itself
    assert mine["worker_extra_args"] == ["--resources", "X=1", "--lifetime", "3240s", "--lifetime-stagger", "90s"]
    assert mine["log_directory"] == str(tmp_path / "logs")
    assert (theirs["cores"], theirs["processes"], theirs["walltime"]) == (8, 8, "02:00:00")
    assert theirs["log_directory"] == str(tmp_path / "mine")
    with dask.config.set({key.replace("slurm", "sge"): value for key, value in config.items()}
                         | {"jobqueue.sge.processes": 2, "jobqueue.sge.worker-extra-args": ["--lifetime", "50m"],
                            "jobqueue.sge.log-directory": str(tmp_path / "theirs")}):
        kept = cluster_kwargs(ClusterRequest("sge", account="proj"), tmp_path / "logs")
    assert kept["processes"] == 2 and kept["worker_extra_args"] == ["--lifetime", "50m"]
    assert kept["log_directory"] == str(tmp_path / "theirs") and kept["project"] == "proj"


def test_missing_memory_or_a_bad_walltime_names_the_option_and_the_configuration_key(tmp_path):
    import_dask_jobqueue("--backend slurm")
    with dask.config.set({"jobqueue.pbs.memory": None, "jobqueue.pbs.cores": 4}):
        with pytest.raises(InputError, match=r"--memory .*jobqueue\.pbs .*DASK_JOBQUEUE__PBS__MEMORY"):
            cluster_kwargs(ClusterRequest("pbs"), tmp_path)
    with dask.config.set({"jobqueue.slurm.walltime": "2 hours"}):
        with pytest.raises(InputError, match=r"^walltime under jobqueue\.slurm .*'2 hours'"):
            cluster_kwargs(ClusterRequest("slurm", cores=1, memory="1GB"), tmp_path)


def test_cluster_options_without_a_cluster_backend_exit_2(tmp_path, capsys):
    assert main(["sweep", "--reps", "2", "--n", "20", "--walltime", "01:00:00", "--out", str(tmp_path / "x")]) == 2
    assert "--walltime is only used with --backend slurm, pbs or sge" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_cluster_backend_without_dask_jobqueue_exits_2_saying_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # import dask_jobqueue now raises ImportError
    assert main(["sweep", "--reps", "2", "--n", "20", "--backend", "slurm", "--out", str(tmp_path / "x")]) == 2
    assert 'needs dask-jobqueue, which is not installed: pip install -e ".[cluster]"' in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_importing_dask_jobqueue_leaves_ctrl_c_to_us():
    """dask-jobqueue 0.9.0 makes SIGINT a silent sys.exit() on import; Ctrl-C must stay KeyboardInterrupt."""
    # Python's own Ctrl-C handler first: a test process started in the background inherits SIGINT ignored.
    check = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
             "from sim.study.executors import import_dask_jobqueue; import_dask_jobqueue('x'); "
             "assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, signal.getsignal(signal.SIGINT)")
    result = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# A real SLURM.

def _slurm_missing() -> str | None:
    """Why no SLURM can run jobs here, or None."""
    if not (shutil.which("sinfo") and shutil.which("sbatch")):
        return "SLURM's client commands (sinfo, sbatch) are not installed"
    try:
        info = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 30 s"
    if info.returncode != 0:
        return f"no SLURM controller answers (sinfo: {info.stderr.strip()})"
    if not any(state.startswith(("idle", "mix", "alloc")) for state in info.stdout.split()):
        return f"no SLURM node is up (sinfo: {info.stdout.strip() or 'no nodes'})"
    return None


@pytest.fixture(scope="module")
def slurm() -> None:
    missing = _slurm_missing()
    if missing and os.environ.get("BLINA_REQUIRE_SLURM"):
        pytest.fail(f"BLINA_REQUIRE_SLURM is set but {missing}")
    if missing:
        pytest.skip(f"{missing}: start a one-node SLURM with `sudo .ci/slurm-up` and export the SLURM_CONF it prints")


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """The environment of a user whose jobqueue.yaml is JOBQUEUE_YAML; a job that ends is replaced after 1 s."""
    config = tmp_path / "dask-config"
    config.mkdir()
    (config / "jobqueue.yaml").write_text(JOBQUEUE_YAML)
    return {**os.environ, "DASK_CONFIG": str(config), "DASK_DISTRIBUTED__DEPLOY__LOST_WORKER_TIMEOUT": "1s"}


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> Path:
    """The same sweep on this machine: what every cluster run must equal."""
    out = tmp_path_factory.mktemp("local")
    run = subprocess.run([sys.executable, "run_sim.py", *SWEEP, "--jobs", "2", "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return out


def _slurm_command(out: Path, name: str, *extra: str) -> list[str]:
    return [sys.executable, "run_sim.py", *SWEEP, "--backend", "slurm", "--cluster-jobs", "2", "--memory", "1GB",
            "--job-name", name, "--worker-timeout", "120", "--out", str(out), *extra]


def _jobs(name: str) -> list[str]:
    """Ids of the jobs called `name` still in the queue (pending, running or completing)."""
    listed = subprocess.run(["squeue", "-h", "-n", name, "-o", "%i"], capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    return listed.stdout.split()


def _wait_until_gone(name: str, timeout: float = 60.0) -> list[str]:
    """Jobs called `name` left after waiting for cancelled ones to finish completing (empty = all gone)."""
    deadline = time.monotonic() + timeout
    while (left := _jobs(name)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def _assert_equal_results(local: Path, remote: Path) -> None:
    assert (remote / "oc.csv").read_bytes() == (local / "oc.csv").read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(local / "replicates.parquet"),
                                  pd.read_parquet(remote / "replicates.parquet"))


def _job_ids_with_logs(logs: Path, name: str) -> set[str]:
    """Jobs that ran: SLURM opens a job's output file when the job starts."""
    return {path.stem.rsplit("-", 1)[1] for path in logs.glob(f"{name}-*.err")}


def test_slurm_sweep_in_two_jobs_equals_the_local_run_and_leaves_no_job(slurm, local, env, tmp_path):
    name = f"blina-{uuid.uuid4().hex[:8]}"
    run = subprocess.run(_slurm_command(tmp_path / "slurm", name), cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "slurm: submitting 2 job(s) of 1 core(s), 1GB, wall time 00:10:00" in run.stderr  # yaml + override
    assert "slurm: first worker after" in run.stderr
    _assert_equal_results(local, tmp_path / "slurm")
    ran = _job_ids_with_logs(tmp_path / "slurm" / "logs", name)
    assert ran, "no job wrote a log to OUT/logs"
    assert any("Registered to:" in path.read_text() for path in (tmp_path / "slurm" / "logs").glob("*.err"))
    assert _wait_until_gone(name) == []


def test_jobs_that_die_are_resubmitted_and_their_chunks_recomputed(slurm, local, env, tmp_path):
    """Every job cancelled after the first chunk: the sweep can only finish on resubmitted jobs."""
    name = f"blina-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "slurm"
    run = subprocess.Popen(_slurm_command(out, name), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list((out / "chunks").glob("*.parquet")) and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.02)
    first = _jobs(name)
    subprocess.run(["scancel", "-n", name], check=True, timeout=30)
    assert run.poll() is None, "the sweep finished before its jobs could be cancelled; make it longer"
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr
    _assert_equal_results(local, out)
    assert _job_ids_with_logs(out / "logs", name) - set(first), "no job was resubmitted"
    assert _wait_until_gone(name) == []


def test_ctrl_c_cancels_the_jobs_and_the_rerun_resumes_to_identical_results(slurm, local, env, tmp_path):
    name = f"blina-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "slurm"
    run = subprocess.Popen(_slurm_command(out, name), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True,  # Ctrl-C reaches it even from a background test run
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list((out / "chunks").glob("*.parquet")) and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.02)
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 130, stderr
    assert "rerun the same command to resume" in stderr
    assert _wait_until_gone(name) == []
    kept = len(list((out / "chunks").glob("*.parquet")))
    assert 0 < kept < 30
    rerun = subprocess.run(_slurm_command(out, name), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    _assert_equal_results(local, out)
    assert _wait_until_gone(name) == []


@pytest.mark.parametrize(("extra", "yaml", "message"), [
    (["--memory", "100000GB"], "", "the batch system refused the job: sbatch: error: Memory specification"),
    (["--worker-timeout", "2"], "    job-extra-directives: ['--begin=now+1hour']\n",
     "no worker started within 2 s (--worker-timeout)"),
])
def test_jobs_that_cannot_start_exit_2_and_leave_no_job_or_folder(slurm, env, tmp_path, extra, yaml, message):
    (Path(env["DASK_CONFIG"]) / "jobqueue.yaml").write_text(JOBQUEUE_YAML + yaml)
    name = f"blina-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "never"
    run = subprocess.run(_slurm_command(out, name, *extra), cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 2, run.stderr
    assert message in run.stderr
    assert _wait_until_gone(name) == []
    assert not out.exists()
