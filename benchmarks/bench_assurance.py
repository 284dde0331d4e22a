"""Assurance against the fixed-input sweep: wall time of the whole command, and the parts of a replicate.

Runs, alternately so that both see the same machine load, `run_sim.py sweep --endpoints primary` on
scenarios/base.toml and `run_sim.py assurance` on scenarios/evidence.toml (whose central values are base's),
9 sample sizes (20-100) x --reps replicates on --jobs processes, --repeats times each, into temporary
folders; prints each run, the medians and their ratio (target: at most 1.5). Then, in this process, the
cost per replicate of the parts of one assurance chunk (drawing, calibration of the draws, simulation)
next to a sweep chunk's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRID = ["--n", "20:100:10", "--seed", "1", "--quiet"]


def timed(command: list[str]) -> float:
    """Wall seconds of one run_sim.py command in a subprocess, writing to a temporary folder."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "run_sim.py", *command, "--out", out], cwd=ROOT, check=True,
                       capture_output=True)
        return time.perf_counter() - start


def chunk_parts(reps: int = 200) -> None:
    """Milliseconds per replicate of an assurance chunk's parts and of a sweep chunk (one process)."""
    import numpy as np

    from sim.scenario.calibrate_many import calibrate_many
    from sim.scenario.priors import load_uncertain
    from sim.study.assurance import AssuranceStudy, draw_values, drawn_scenario, point_models
    from sim.study.runner import Study, arm_models, simulate_chunk

    point, priors = load_uncertain(ROOT / "scenarios" / "evidence.toml")
    ns = tuple(range(20, 101, 10))
    study = AssuranceStudy(point, priors, ns, reps, 1)
    models = point_models(study)
    parts = {}
    start = time.perf_counter()
    values = draw_values(priors, 1, range(reps))
    dump = point.model_dump()
    scenarios = [drawn_scenario(dump, values, k, "") for k in range(reps)]
    parts["draw and validate"] = time.perf_counter() - start
    start = time.perf_counter()
    for lo in range(0, reps, 50):
        calibrate_many(scenarios[lo:lo + 50], (point, models["point"]))
    parts["calibrate (chunks of 50)"] = time.perf_counter() - start
    start = time.perf_counter()
    for lo in range(0, reps, 50):
        study.chunk(models, lo, min(lo + 50, reps))
    parts["assurance chunk (2 trials)"] = time.perf_counter() - start
    sweep, arms = Study(point, ns, reps, 1, "primary"), arm_models(point)
    start = time.perf_counter()
    for lo in range(0, reps, 50):
        simulate_chunk(sweep, arms, lo, min(lo + 50, reps))
    parts["sweep chunk (one trial, 3 arms)"] = time.perf_counter() - start
    for name, seconds in parts.items():
        print(f"  {name:<32} {1e3 * seconds / reps:6.2f} ms per replicate")
    print(f"  (load average {np.round(os.getloadavg(), 1).tolist()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parts-only", action="store_true", help="only the parts of a replicate")
    args = parser.parse_args()
    if args.parts_only:
        chunk_parts()
        chunk_parts()
        return
    common = [*GRID, "--reps", str(args.reps), "--jobs", str(args.jobs)]
    runs: dict[str, list[float]] = {"sweep": [], "assurance": []}
    for _ in range(args.repeats):
        for name, command in (("sweep", ["sweep", "--endpoints", "primary", *common]),
                              ("assurance", ["assurance", *common])):
            load = os.getloadavg()[0]
            runs[name].append(timed(command))
            print(f"{name:<9} {runs[name][-1]:6.1f} s (load average before: {load:.1f})", flush=True)
    sweep, assurance = statistics.median(runs["sweep"]), statistics.median(runs["assurance"])
    print(f"9 n x {args.reps} replicates, jobs {args.jobs}: sweep --endpoints primary median {sweep:.1f} s, "
          f"assurance median {assurance:.1f} s, ratio {assurance / sweep:.2f} (target <= 1.5)")
    print("Parts of a replicate (this process, one core), twice:")
    chunk_parts()
    chunk_parts()


if __name__ == "__main__":
    main()
