"""Wall time of `python run_sim.py describe` (a fresh process: imports, calibration, null twin, printing).

The README says describe answers "in a second"; this measures it instead of a test asserting it (a busy
machine would fail such a test). Prints the median and range over --repeats runs, and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scenario", default="scenarios/base.toml")
    args = parser.parse_args()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "run_sim.py", "describe", "--scenario", args.scenario], cwd=ROOT,
                       check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    print(f"describe {args.scenario}: median {statistics.median(times):.2f} s (range {min(times):.2f}-"
          f"{max(times):.2f} s over {args.repeats} runs); load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")


if __name__ == "__main__":
    main()
