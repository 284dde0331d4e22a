"""Throughput of the pathway model and SimPy events per patient, base scenario, one core.

Runs `simulate_trial` for trials of --n patients over --reps replicates, --repeats times, and prints
the median (and range) of patients per second, with background transplant capacity (the base case) and
with the trial's own slots (a FIFO queue). SimPy events per patient are counted by wrapping
simpy.Environment.step. Calibration is done once, as the sizing study does.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import simpy

from sim.model.pathway import simulate_trial
from sim.scenario.calibrate import calibrate
from sim.scenario.schema import load_scenario

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {"background capacity": {}, "finite capacity (2 slots)": {"transplant.capacity": "finite",
                                                                      "transplant.slots": 2}}


def patients_per_second(scenario, post, n: int, reps: int) -> float:
    start = time.perf_counter()
    for rep in range(reps):
        simulate_trial(scenario, n, seed=1, replicate=rep, post_model=post)
    return n * reps / (time.perf_counter() - start)


def events_per_patient(scenario, post, n: int, reps: int = 20) -> float:
    """SimPy events processed per simulated patient."""
    steps = 0
    original = simpy.Environment.step

    def counted(self):
        nonlocal steps
        steps += 1
        return original(self)

    simpy.Environment.step = counted
    try:
        for rep in range(reps):
            simulate_trial(scenario, n, seed=1, replicate=rep, post_model=post)
    finally:
        simpy.Environment.step = original
    return steps / (n * reps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="patients per trial")
    parser.add_argument("--reps", type=int, default=200, help="trials per timing")
    parser.add_argument("--repeats", type=int, default=5, help="timings (the median is reported)")
    parser.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "base.toml")
    args = parser.parse_args()
    print(f"pathway model, {args.scenario.name}, {args.n} patients x {args.reps} trials, {args.repeats} timings:")
    for label, updates in VARIANTS.items():
        scenario = load_scenario(args.scenario).with_updates(updates)
        post = calibrate(scenario)
        rates = [patients_per_second(scenario, post, args.n, args.reps) for _ in range(args.repeats)]
        print(f"  {label}: median {statistics.median(rates):,.0f} patients/s per core "
              f"(range {min(rates):,.0f}-{max(rates):,.0f}); "
              f"{events_per_patient(scenario, post, args.n):.2f} SimPy events per patient")


if __name__ == "__main__":
    main()
