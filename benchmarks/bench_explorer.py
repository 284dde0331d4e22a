"""Explorer engine speed: time to the first estimate (300 replicates) and to 2,000 replicates after a change.

Runs the engine as the web page does (a warm pool of worker processes, the loaded scenario already
simulated as the reference), then changes one value (CRc down) and times the new question:

    python benchmarks/bench_explorer.py [--workers 2] [--reps 2000] [--n 20:100:10]
"""

from __future__ import annotations

import argparse
import time

from sim.app.engine import Explorer, Request, process_pool
from sim.scenario.schema import load_scenario


def timed(explorer: Explorer, request: Request, first: int) -> tuple[float, float, float]:
    """Seconds to the first estimate, to all replicates, and to summarise them (one snapshot)."""
    started = time.perf_counter()
    explorer.request(request)
    explorer.wait(first, poll=0.01)
    t_first = time.perf_counter() - started
    explorer.wait(request.reps, poll=0.01)
    t_all = time.perf_counter() - started
    explorer._last = None                       # noqa: SLF001 - force one more summary to time it
    began = time.perf_counter()
    explorer.snapshot()
    return t_first, t_all, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--n", default="20:100:10")
    args = parser.parse_args()
    start, stop, step = (int(x) for x in args.n.split(":"))
    ns = tuple(range(start, stop + 1, step))
    base = load_scenario("scenarios/base.toml")
    began = time.perf_counter()
    pool = process_pool(args.workers)
    print(f"pool of {args.workers} workers started and warm in {time.perf_counter() - began:.2f} s")
    explorer = Explorer(pool, workers=args.workers)
    try:
        for label, scenario in (("scenario as loaded (no reference needed)", base),
                                ("after a change (CRc 92% -> 80%), reference cached",
                                 base.with_updates({"response.p_cr": 0.7391, "response.p_cri": 0.0609})),
                                ("after a second change (relapse 17% -> 25%)",
                                 base.with_updates({"post_transplant.relapse_incidence": 0.25}))):
            t_first, t_all, t_sum = timed(explorer, Request(scenario, base, ns, 1, args.reps), 300)
            print(f"{label}: first estimate (300 replicates x {len(ns)} n x 3 arms) {t_first:.2f} s; "
                  f"{args.reps} replicates {t_all:.2f} s; one summary of {args.reps} replicates {t_sum:.3f} s")
    finally:
        explorer.close()
        pool.shutdown(cancel_futures=True)


if __name__ == "__main__":
    main()
