"""The full sizing study against its targets: wall time and peak memory, and the naive baseline.

Runs `run_sim.py sweep` for 9 sample sizes (20-100) x 10,000 replicates (each replicate: the
scenario and its null twin) with `--endpoints primary` and with every endpoint, on --jobs processes,
--repeats times each, into temporary folders; prints the median wall time and the peak resident
memory (this process and its workers). Then times the straightforward approach (each (n, replicate)
its own SimPy trial, lifelines' KaplanMeierFitter for the estimate) on a sample and extrapolates.
Targets (issue 4): primary < 60 s, all < 120 s on 2 cores, peak memory < 1 GB.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed_sweep(endpoints: str, reps: int, jobs: int) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB, largest single process) of one sweep run in a subprocess."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "run_sim.py", "sweep", "--n", "20:100:10", "--reps", str(reps), "--seed", "1",
                   "--jobs", str(jobs), "--endpoints", endpoints, "--out", out, "--quiet"]
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, peak_mb


def naive_seconds_per_trial(samples: int = 60) -> float:
    """Seconds for one (n, replicate) done the straightforward way, averaged over the n grid."""
    from lifelines import KaplanMeierFitter

    from sim.analysis.endpoints import observe, time_to_first
    from sim.model.pathway import simulate_trial
    from sim.scenario.schema import load_scenario

    scenario = load_scenario(ROOT / "scenarios" / "base.toml")
    start = time.perf_counter()
    for i in range(samples):
        n = 20 + 10 * (i % 9)
        history = simulate_trial(scenario, n, seed=1, replicate=i)  # calibrates inside, as a naive script would
        obs = observe(history)
        t, e = time_to_first(obs, obs.relapse, obs.death)
        KaplanMeierFitter().fit(t, e).survival_function_at_times(scenario.analysis.landmark_months * 30.4375)
    return (time.perf_counter() - start) / samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs = {}
    for endpoints in ("primary", "all"):
        walls = []
        for _ in range(args.repeats):
            wall, peak = timed_sweep(endpoints, args.reps, args.jobs)
            walls.append(wall)
        runs[endpoints] = statistics.median(walls)
        print(f"sweep --endpoints {endpoints:<7} 9 n x {args.reps} reps x 2 arms, jobs {args.jobs}: "
              f"median {runs[endpoints]:.1f} s (runs: {', '.join(f'{w:.1f}' for w in walls)}); "
              f"peak RSS of a process {peak:.0f} MB")
    per_trial = naive_seconds_per_trial()
    naive_total = per_trial * 9 * args.reps * 2
    print(f"naive (one SimPy trial + lifelines KM per n, replicate and arm): {per_trial * 1e3:.1f} ms per trial "
          f"-> {naive_total / 60:.1f} min on one core for the same study; "
          f"ratio to --endpoints primary on {args.jobs} cores: {naive_total / runs['primary']:.0f}x")


if __name__ == "__main__":
    main()
