"""Command line of run_sim.py: the argument parser and its checks; the work is in commands.py.

Commands: sweep (the default), trial, compare, sensitivity, describe, report, docs. Bad arguments
exit with status 2 before anything is written; so does bad input found by a command, with one
message per problem naming the file (or --set override), the key, the value and what is allowed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sim.cli import commands
from sim.cli.commands import DEFAULT_SCENARIO, MAX_N, MAX_REPS, MAX_SIZES
from sim.scenario.schema import InputError


def main(argv: list[str] | None = None) -> int:
    """Entry point of run_sim.py; returns the process exit status. No command: the default sweep."""
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    args = parser.parse_args(argv or ["sweep"])
    try:
        return args.command(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished chunks are kept; rerun the same command to resume", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_sim.py",
        description="Simulate the phase II trial of VIP + blinatumomab and allo-HSCT in Ph- B-ALL: size it "
                    "(sweep, the default), compare scenarios, explore sensitivity, report.")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    trial = sub.add_parser("trial", help="simulate one virtual trial and write its patient histories")
    _scenario_args(trial)
    trial.add_argument("--n", type=_sample_size, default=60, help=f"patients to enroll (default 60, at most {MAX_N})")
    trial.add_argument("--seed", type=_nonneg_int, default=7, help="master random seed (default 7)")
    trial.add_argument("--out", type=Path, default=None,
                       help="output folder (default results/<scenario file name>-trial)")
    trial.set_defaults(command=commands.trial)

    sweep = sub.add_parser("sweep", help="sizing study: power and precision over sample sizes (the default)")
    _scenario_args(sweep)
    _study_args(sweep, n_default=list(range(20, 101, 10)), reps=2000, endpoints="all",
                out="results/<scenario file name>")
    sweep.set_defaults(command=commands.sweep)

    compare = sub.add_parser("compare", help="several scenarios or variants over n, with common random numbers")
    compare.add_argument("--scenario", action="append", default=[], help="scenario file (repeatable; the first is "
                         f"the reference; default {DEFAULT_SCENARIO})")
    compare.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                         help="a variant of the first scenario (repeatable)")
    compare.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                         help="override applied to every scenario (repeatable)")
    _study_args(compare, n_default=list(range(20, 101, 20)), reps=1000, endpoints="all",
                out="results/compare-<scenario and variant names>")
    compare.set_defaults(command=commands.compare)

    sensitivity = sub.add_parser("sensitivity", help="one-way sensitivity of power: a tornado over parameter ranges")
    _scenario_args(sensitivity)
    sensitivity.add_argument("--vary", action="append", required=True, metavar="SECTION.KEY=LO:HI:K",
                             help="a parameter and K values from LO to HI (repeatable)")
    _study_args(sensitivity, n_default=[60], reps=1000, endpoints="primary",
                out="results/<scenario file name>-sensitivity")
    sensitivity.set_defaults(command=commands.sensitivity)

    describe = sub.add_parser("describe", help="what a scenario implies, without simulating (under a second)")
    _scenario_args(describe)
    describe.add_argument("--n", type=_sample_size, default=60, help="enrollment for the accrual time (default 60)")
    describe.add_argument("--target-power", nargs="+", type=_probability, default=[0.8, 0.9], metavar="P")
    describe.set_defaults(command=commands.describe)

    report = sub.add_parser("report", help="(re)write the HTML report of a sweep's output folder")
    report.add_argument("out", type=Path, help="a folder written by sweep")
    report.set_defaults(command=commands.report)

    docs = sub.add_parser("docs", help="regenerate the scenario reference (scenarios/README.md)")
    docs.add_argument("--out", type=Path, default=Path("scenarios/README.md"))
    docs.set_defaults(command=commands.docs)
    return parser


def _study_args(parser: argparse.ArgumentParser, n_default: list[int], reps: int, endpoints: str, out: str) -> None:
    spec = f"{n_default[0]}:{n_default[-1]}:{n_default[1] - n_default[0]}" if len(n_default) > 1 else str(n_default[0])
    parser.add_argument("--n", nargs="+", type=_n_spec, default=[n_default], metavar="N",
                        help=f"sample sizes: START:STOP:STEP (inclusive) and/or single values (default {spec})")
    parser.add_argument("--reps", type=_replicates, default=reps,
                        help=f"replicates per sample size (default {reps}, from 2 to {MAX_REPS:,})")
    parser.add_argument("--seed", type=_nonneg_int, default=1, help="master random seed (default 1)")
    parser.add_argument("--jobs", type=_jobs, default=-1, help="parallel processes, -1 = all cores (default -1)")
    parser.add_argument("--chunk-size", type=_positive_int, default=50, help="replicates per chunk (default 50)")
    parser.add_argument("--backend", choices=("loky", "dask"), default="loky",
                        help="loky: processes on this machine; dask: a Dask cluster (needs --scheduler)")
    parser.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://127.0.0.1:8786")
    parser.add_argument("--endpoints", choices=("primary", "all"), default=endpoints,
                        help=f"primary: primary and ITT only (fastest); all: every secondary endpoint too "
                             f"(default {endpoints})")
    parser.add_argument("--target-power", nargs="+", type=_probability, default=[0.8, 0.9], metavar="P")
    parser.add_argument("--out", type=Path, default=None, help=f"output folder (default {out})")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _scenario_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", default=DEFAULT_SCENARIO, help=f"scenario TOML file (default {DEFAULT_SCENARIO})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one scenario value (repeatable), e.g. --set donor.p_no_donor=0.3")


def _n_spec(text: str) -> list[int]:
    try:
        if ":" in text:
            start, stop, step = (int(part) for part in text.split(":"))
            if step < 1 or stop < start:
                raise ValueError
            values = range(start, stop + 1, step)
        else:
            values = range(int(text), int(text) + 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected START:STOP:STEP or an integer") from None
    if values[0] < 1 or values[-1] > MAX_N:
        raise argparse.ArgumentTypeError(f"{text!r}: sample sizes must be from 1 to {MAX_N:,}")
    if len(values) > MAX_SIZES:
        raise argparse.ArgumentTypeError(f"{text!r}: {len(values):,} sample sizes; at most {MAX_SIZES} in one "
                                         "grid (use a larger STEP)")
    return list(values)


def _jobs(text: str) -> int:
    value = int(text) if text.lstrip("-").isdigit() and len(text) < 10 else 0
    most = 4 * (os.cpu_count() or 1)
    if value == 0 or value < -1 or value > most:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of processes from 1 to {most} (4 per core "
                                         "of this machine) or -1 (all cores)")
    return value


def _sample_size(text: str) -> int:
    value = _positive_int(text)
    if value > MAX_N:
        raise argparse.ArgumentTypeError(f"{text!r}: at most {MAX_N:,} patients")
    return value


def _replicates(text: str) -> int:
    value = _positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: at least 2 replicates (a Monte Carlo standard error needs two)")
    if value > MAX_REPS:
        raise argparse.ArgumentTypeError(f"{text!r}: at most {MAX_REPS:,} replicates per sample size")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a probability strictly between 0 and 1")
    return value


def _positive_int(text: str) -> int:
    value = _nonneg_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be an integer >= 1")
    return value


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: must be an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be an integer >= 0")
    return value
