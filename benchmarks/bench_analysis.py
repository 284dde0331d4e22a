"""Speed of the analysis hot path: the primary estimate and test, and the whole endpoint set.

Simulates --trials trials of --n patients of the base scenario once, then times
`primary_analysis` and `endpoints` over them, --repeats times; prints medians in microseconds.
Targets (issue 3): primary under 50 us, every endpoint under 1 ms, for a 60-patient trial.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from sim.analysis.endpoints import endpoints, primary_analysis
from sim.model.pathway import simulate_trial
from sim.scenario.calibrate import calibrate
from sim.scenario.schema import load_scenario

ROOT = Path(__file__).resolve().parent.parent


def microseconds_per_call(function, histories) -> float:
    start = time.perf_counter()
    for history in histories:
        function(history)
    return (time.perf_counter() - start) / len(histories) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    scenario = load_scenario(ROOT / "scenarios" / "base.toml")
    post = calibrate(scenario)
    histories = [simulate_trial(scenario, args.n, seed=1, replicate=r, post_model=post) for r in range(args.trials)]
    for name, function, target in (("primary estimate + test", primary_analysis, 50.0),
                                   ("every endpoint", endpoints, 1000.0)):
        times = [microseconds_per_call(function, histories) for _ in range(args.repeats)]
        print(f"{name:<24} median {statistics.median(times):8.1f} us per {args.n}-patient trial "
              f"(range {min(times):.1f}-{max(times):.1f}; target < {target:g} us)")


if __name__ == "__main__":
    main()
