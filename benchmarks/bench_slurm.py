"""How long `--backend slurm` takes to get going, on a running SLURM (e.g. `.ci/slurm-up`).

Runs a small `run_sim.py sweep --backend slurm` (2 jobs of 1 core, 60 replicates) --repeats times
and reads its stderr as it comes: seconds from the command's start to the submission of the jobs
(imports, scenario, calibration), from submission to the first worker (what the command prints:
scheduler start, sbatch, SLURM scheduling, worker start-up) and to the end; and the same sweep run
locally (--jobs 2) for comparison. Prints medians. No targets: a real cluster's queue dominates.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ["sweep", "--n", "20:60:20", "--seed", "4", "--chunk-size", "2", "--endpoints", "all", "--quiet",
         "--reps", "60"]


def slurm_run() -> dict[str, float]:
    """Seconds to submission, first worker (as printed) and end of one slurm sweep."""
    env = {**os.environ, "DASK_JOBQUEUE__SLURM__INTERFACE": "lo"}
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "run_sim.py", *SWEEP, "--backend", "slurm", "--cluster-jobs", "2", "--cores", "1",
                   "--memory", "1GB", "--walltime", "00:10:00", "--job-name", "bench", "--out", out]
        start = time.perf_counter()
        run = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
        times = {}
        for line in run.stderr:
            if "submitting" in line:
                times["to_submission"] = time.perf_counter() - start
            if match := re.search(r"first worker after ([\d.]+) s", line):
                times["submission_to_first_worker"] = float(match.group(1))
        if run.wait() != 0:
            raise SystemExit("the slurm sweep failed; is SLURM running and SLURM_CONF exported?")
        times["total"] = time.perf_counter() - start
    return times


def local_run() -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "run_sim.py", *SWEEP, "--jobs", "2", "--out", out], cwd=ROOT, check=True,
                       capture_output=True)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs = [slurm_run() for _ in range(args.repeats)]
    local = statistics.median(local_run() for _ in range(args.repeats))
    for key in ("to_submission", "submission_to_first_worker", "total"):
        print(f"slurm {key.replace('_', ' '):<28} median {statistics.median(r[key] for r in runs):6.2f} s  "
              f"({', '.join(f'{r[key]:.2f}' for r in runs)})")
    print(f"local (--jobs 2) total          median {local:6.2f} s")


if __name__ == "__main__":
    main()
