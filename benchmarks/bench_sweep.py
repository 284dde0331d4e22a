"""The full sizing study against the scale targets: wall time, the client's share, peak memory, the naive baseline.

Runs `run_sim.py sweep` (9 sample sizes 20-100 x 3 arms: the scenario, its null twin and its p1 twin, plus the
refinement of the required n to the patient, from the grid's own trials) as a whole command in a subprocess,
--repeats times each:
  - with `--endpoints primary` at --reps replicates (default 10,000): median wall seconds start to finish, peak
    resident memory of the largest process, and the manifest's timing (seconds waiting for the workers'
    chunks, the client's seconds and share);
  - with every endpoint (`--endpoints all`) at the same replicates;
  - with `--endpoints primary` at 200 and 2,000 replicates too, so that the cost per replicate and the fixed
    cost (what does not grow with replicates) can be read off;
  - `describe` as a command.
Then times the straightforward approach (each (n, replicate, arm) its own SimPy trial, analysed with lifelines'
KaplanMeierFitter) on a sample, extrapolates it to the issue's study (9 n x 2 arms x --reps), and prints the ratio
to the primary sweep's median wall time in this same run.
The per-replicate speed-up compares the naive cost of one replicate (its 9 n x 2 arms) with the sweep's cost per
replicate (the slope between 2,000 and --reps replicates, which leaves out the fixed cost), on the same machine.
Targets (issue 12): primary <= 8 s, all <= 20 s wall on 2 cores; client share <= 5%; peak memory < 1 GB;
describe < 1 s; per-replicate speed-up over the naive approach >= 200.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Runs a command and prints the peak RSS (kB) of the largest process in its tree (itself or a reaped descendant).
PEAK = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def timed_command(arguments: list[str]) -> tuple[float, float]:
    """Wall seconds (start to finish, imports included) and peak RSS in MB of `run_sim.py ARGUMENTS`."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, sys.executable, "run_sim.py", *arguments], cwd=ROOT,
                          check=True, capture_output=True, text=True)
    return time.perf_counter() - start, int(done.stdout.split()[-1]) / 1024


def timed_sweep(endpoints: str, reps: int, jobs: int) -> dict[str, float]:
    """One sweep: wall seconds, peak MB and the manifest's timing (client and worker-wait seconds)."""
    with tempfile.TemporaryDirectory() as out:
        wall, peak = timed_command(["sweep", "--n", "20:100:10", "--reps", str(reps), "--seed", "1", "--jobs",
                                    str(jobs), "--endpoints", endpoints, "--out", out, "--quiet"])
        timing = json.loads((Path(out) / "manifest.json").read_text())["timing"]
    return {"wall": wall, "peak": peak} | timing


def repeated(endpoints: str, reps: int, jobs: int, repeats: int) -> dict[str, float]:
    """Medians over `repeats` runs of every measure of timed_sweep."""
    runs = [timed_sweep(endpoints, reps, jobs) for _ in range(repeats)]
    out = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    out["walls"] = [run["wall"] for run in runs]
    return out


def naive_seconds_per_trial(samples: int = 300) -> float:
    """Seconds for one (n, replicate, arm) done the straightforward way, averaged over the n grid."""
    from lifelines import KaplanMeierFitter

    from sim.analysis.endpoints import observe, time_to_first
    from sim.model.pathway import simulate_trial
    from sim.scenario.calibrate import calibrate
    from sim.scenario.schema import load_scenario

    scenario = load_scenario(ROOT / "scenarios" / "base.toml")
    model = calibrate(scenario)  # once: a fair baseline does not pay the calibration per trial
    start = time.perf_counter()
    for i in range(samples):
        n = 20 + 10 * (i % 9)
        history = simulate_trial(scenario, n, seed=1, replicate=i, post_model=model)
        obs = observe(history)
        t, e = time_to_first(obs.follow_end, obs.relapse, obs.death)
        KaplanMeierFitter().fit(t, e).survival_function_at_times(scenario.analysis.landmark_months * 30.4375)
    return (time.perf_counter() - start) / samples


def line(label: str, run: dict[str, float]) -> str:
    return (f"{label}: median wall {run['wall']:.1f} s (runs {', '.join(f'{w:.1f}' for w in run['walls'])}); "
            f"to the tables {run['command_seconds']:.1f} s = {run['worker_wait_seconds']:.1f} s waiting for workers "
            f"+ {run['client_seconds']:.1f} s client (share {run['client_share']:.1%}; before the first chunk "
            f"{run['client_before_chunks_seconds']:.1f} s, after the last {run['client_after_chunks_seconds']:.1f} s); "
            f"peak RSS {run['peak']:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; load average at the start {os.getloadavg()[0]:.2f}")
    describe = [timed_command(["describe"])[0] for _ in range(args.repeats)]
    print(f"describe: median {statistics.median(describe):.2f} s (runs {', '.join(f'{w:.2f}' for w in describe)})")
    small = {reps: repeated("primary", reps, args.jobs, args.repeats) for reps in (200, 2000)}
    primary = repeated("primary", args.reps, args.jobs, args.repeats)
    for reps, run in small.items():
        print(line(f"sweep --endpoints primary, {reps} reps", run))
    print(line(f"sweep --endpoints primary, {args.reps} reps", primary))
    slope = (primary["wall"] - small[2000]["wall"]) / (args.reps - 2000)
    print(f"  cost per replicate {slope * 1e3:.2f} ms of wall time on {args.jobs} processes; fixed cost "
          f"{primary['wall'] - slope * args.reps:.1f} s")
    full = repeated("all", args.reps, args.jobs, args.repeats)
    print(line(f"sweep --endpoints all, {args.reps} reps", full))
    per_trial = naive_seconds_per_trial()
    naive_total = per_trial * 9 * args.reps * 2
    print(f"naive (one SimPy trial + lifelines KM per n, replicate and arm): {per_trial * 1e3:.1f} ms per trial "
          f"-> {naive_total / 60:.1f} min on one core for 9 n x {args.reps} reps x 2 arms; "
          f"ratio to the primary sweep (3 arms and refinement, whole command, {args.jobs} processes): "
          f"{naive_total / primary['wall']:.0f}x")
    naive_replicate = per_trial * 9 * 2
    print(f"  per replicate: naive {naive_replicate * 1e3:.0f} ms (9 n x 2 arms, one core) vs the sweep's cost per "
          f"replicate {slope * 1e3:.2f} ms (9 n x 3 arms + the refinement's n, {args.jobs} processes): "
          f"{naive_replicate / slope:.0f}x; per process {naive_replicate / (slope * args.jobs):.0f}x")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
