"""Speed of the exact design helpers: Simon enumeration for the published cases, Bayesian boundary OC.

Times `simon_designs` (nmax 100, the default) for each of the nine published settings of Simon (1989)
used in tests/test_designs.py, then at a larger nmax, and the boundary and its exact OC at four true
rates for a Bayesian safety rule; prints the median of --repeats runs in seconds.
"""

from __future__ import annotations

import argparse
import statistics
import time

from sim.stats.designs import boundary_oc, posterior_boundary, simon_designs

PUBLISHED = [(p0, round(p0 + 0.2, 2), 0.05, 0.80) for p0 in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)] + [
    (0.05, 0.25, 0.05, 0.80), (0.2, 0.4, 0.10, 0.90)]


def seconds(function, repeats: int) -> tuple[float, float, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large-nmax", type=int, default=200)
    args = parser.parse_args()
    total = 0.0
    for p0, p1, alpha, power in PUBLISHED:
        median, low, high = seconds(lambda p0=p0, p1=p1, a=alpha, w=power: simon_designs(p0, p1, a, w), args.repeats)
        total += median
        optimal, minimax = simon_designs(p0, p1, alpha, power)
        print(f"Simon p0 {p0:.2f} p1 {p1:.2f} alpha {alpha:.2f} power {power:.2f}, nmax 100: {median:5.2f} s "
              f"(range {low:.2f}-{high:.2f})  optimal {optimal.r1}/{optimal.n1}, {optimal.r}/{optimal.n}  "
              f"minimax {minimax.r1}/{minimax.n1}, {minimax.r}/{minimax.n}")
    print(f"all {len(PUBLISHED)} published settings: {total:.2f} s")
    median, _, _ = seconds(lambda: simon_designs(0.2, 0.4, 0.05, 0.80, nmax=args.large_nmax), 1)
    print(f"Simon p0 0.20 p1 0.40, nmax {args.large_nmax}: {median:.2f} s")
    for nmax in (60, 1000):
        def bayes(nmax=nmax):
            return boundary_oc(posterior_boundary(0.5, 4.5, 0.1, 0.9, nmax, min_evaluable=5), [0.05, 0.1, 0.15, 0.2])
        median, low, high = seconds(bayes, args.repeats)
        print(f"Bayesian boundary + exact OC at 4 rates, nmax {nmax}: {median * 1000:.1f} ms "
              f"(range {low * 1000:.1f}-{high * 1000:.1f})")


if __name__ == "__main__":
    main()
