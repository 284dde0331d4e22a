"""Throughput of the pathway model: simulated patients per second on one core, base scenario.

Runs `simulate_trial` for trials of --n patients over --reps replicates, --repeats times, and prints
the median (and range) of patients per second. Calibration is done once, as the sizing study does.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from sim.model.pathway import simulate_trial
from sim.scenario.calibrate import calibrate
from sim.scenario.schema import load_scenario

ROOT = Path(__file__).resolve().parent.parent


def patients_per_second(n: int, reps: int, scenario_path: Path) -> float:
    scenario = load_scenario(scenario_path)
    post = calibrate(scenario)
    start = time.perf_counter()
    for rep in range(reps):
        simulate_trial(scenario, n, seed=1, replicate=rep, post_model=post)
    return n * reps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="patients per trial")
    parser.add_argument("--reps", type=int, default=200, help="trials per timing")
    parser.add_argument("--repeats", type=int, default=5, help="timings (the median is reported)")
    parser.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "base.toml")
    args = parser.parse_args()
    rates = [patients_per_second(args.n, args.reps, args.scenario) for _ in range(args.repeats)]
    print(f"pathway model, {args.scenario.name}, {args.n} patients x {args.reps} trials, {args.repeats} timings:")
    print(f"  median {statistics.median(rates):,.0f} patients/s per core "
          f"(range {min(rates):,.0f}-{max(rates):,.0f}); target >= 20,000")


if __name__ == "__main__":
    main()
