"""Command line of run_sim.py: the argument parser and its checks; the work is in commands.py.

Commands: sweep (the default), trial, compare, sensitivity, assurance, describe, design, report, explore,
docs. Bad arguments exit with status 2 before anything is written; so does bad input found by a command, with one
message per problem naming the file (or --set override), the key, the value and what is allowed.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from sim.cli import commands
from sim.cli.outputs import DEFAULT_SCENARIO, MAX_N, MAX_REPS, MAX_SIZES
from sim.scenario.schema import InputError


def main(argv: list[str] | None = None, started: float | None = None) -> int:
    """Entry point of run_sim.py; returns the process exit status. No command: the default sweep.

    started: time.monotonic() when the process started (run_sim.py passes it), so that reported times
    include the imports.
    """
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    args = parser.parse_args(argv or ["sweep"])
    args.started = started
    if getattr(args, "chunk_size", 0) is None:
        args.chunk_size = commands.default_chunk_size(args)
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
    compare.set_defaults(command=_lazy("whatif_commands", "compare"))

    sensitivity = sub.add_parser("sensitivity", help="one-way sensitivity of power: a tornado over parameter ranges")
    _scenario_args(sensitivity)
    sensitivity.add_argument("--vary", action="append", required=True, metavar="SECTION.KEY=LO:HI:K",
                             help="a parameter and K values from LO to HI (repeatable)")
    _study_args(sensitivity, n_default=[60], reps=1000, endpoints="primary",
                out="results/<scenario file name>-sensitivity")
    sensitivity.set_defaults(command=_lazy("whatif_commands", "sensitivity"))

    assurance = sub.add_parser("assurance", help="probability of success over uncertain inputs (distributions in "
                                                 "the scenario) and which assumption it hangs on")
    _scenario_args(assurance, default="scenarios/evidence.toml")
    _study_args(assurance, n_default=list(range(20, 101, 10)), reps=2000, endpoints=None,
                out="results/<scenario file name>-assurance")
    assurance.add_argument("--at-n", type=_positive_int, metavar="N", help="sample size of the ranking and the "
                           "headline (default: the smallest grid n whose power at the central values reaches the "
                           "first --target-power)")
    assurance.set_defaults(command=_lazy("assurance_commands", "assurance"))

    describe = sub.add_parser("describe", help="what a scenario implies, without simulating (under a second)")
    _scenario_args(describe)
    describe.add_argument("--n", type=_sample_size, default=60, help="enrollment for the accrual time (default 60)")
    describe.add_argument("--target-power", nargs="+", type=_probability, default=[0.8, 0.9], metavar="P")
    describe.set_defaults(command=commands.describe)

    design = sub.add_parser("design", help="exact design helpers: Simon two-stage designs, Bayesian safety rules")
    designs = design.add_subparsers(required=True, metavar="DESIGN")
    simon = designs.add_parser("simon", help="Simon optimal and minimax two-stage designs (exact enumeration)")
    simon.add_argument("--p0", type=_probability, required=True, help="response rate not worth pursuing (H0)")
    simon.add_argument("--p1", type=_probability, required=True, help="response rate that would be promising (H1)")
    simon.add_argument("--alpha", type=_probability, default=0.05, help="one-sided type I error (default 0.05)")
    simon.add_argument("--power", type=_probability, default=0.8, help="power at p1 (default 0.8)")
    simon.add_argument("--nmax", type=_positive_int, default=100, help="largest total size searched (default 100)")
    simon.add_argument("--out", type=Path, help="also write simon_designs.csv to this folder")
    simon.set_defaults(command=_lazy("design_commands", "simon"), design="simon")
    safety = designs.add_parser("bayes-safety", help="stopping boundary of a Bayesian safety rule and its exact OC")
    safety.add_argument("--prior-a", type=_positive_float, required=True, help="beta prior a (events)")
    safety.add_argument("--prior-b", type=_positive_float, required=True, help="beta prior b (non-events)")
    safety.add_argument("--threshold", type=_probability, required=True, help="event rate that is too high")
    safety.add_argument("--cutoff", type=_probability, required=True,
                        help="stop when P(rate > threshold | data) exceeds this")
    safety.add_argument("--every", type=_positive_int, default=1, metavar="K",
                        help="check every K evaluable patients (default 1)")
    safety.add_argument("--min-evaluable", type=_positive_int, metavar="M",
                        help="first check at M evaluable patients (default: the value of --every)")
    safety.add_argument("--nmax", type=_positive_int, required=True, help="largest number of patients treated")
    safety.add_argument("--true-rate", nargs="+", type=_probability, metavar="P",
                        help="true event rates for the OC (default: 0.5, 1, 1.5 and 2 times the threshold)")
    safety.add_argument("--out", type=Path, help="also write the boundary and OC as CSV to this folder")
    safety.set_defaults(command=_lazy("design_commands", "bayes_safety"), design="bayes-safety")
    table = designs.add_parser("boundary", help="exact OC of a protocol's table: stop if >= D events among first K")
    table.add_argument("--table", nargs="+", type=_stop_rule, required=True, metavar="K:D",
                       help="stop if at least D events among the first K evaluable patients; K increasing")
    table.add_argument("--nmax", type=_positive_int, required=True, help="largest number of patients treated")
    table.add_argument("--true-rate", nargs="+", type=_probability, required=True, metavar="P",
                       help="true event rates for the OC")
    table.add_argument("--out", type=Path, help="also write the OC as CSV to this folder")
    table.set_defaults(command=_lazy("design_commands", "stopping_table"), design="boundary")

    report = sub.add_parser("report", help="(re)write the HTML report of a results folder (sweep, compare, "
                                           "sensitivity, assurance)")
    report.add_argument("out", type=Path, help="a folder written by sweep, compare, sensitivity or assurance")
    report.add_argument("--pdf", action="store_true", help="also print it to report.pdf with headless Chromium")
    report.set_defaults(command=commands.report)

    explore = sub.add_parser("explore", help="the live what-if explorer: a local web page (power and required n "
                                             "while you move the assumptions)")
    explore.add_argument("--scenario", default=DEFAULT_SCENARIO,
                         help=f"scenario loaded first (default {DEFAULT_SCENARIO})")
    explore.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                         "only; another address shares the page on the network, without a password)")
    explore.add_argument("--port", type=_nonneg_int, default=8050, help="port (default 8050; 0 = any free port)")
    explore.add_argument("--n", nargs="+", type=_n_spec, default=[list(range(20, 101, 10))], metavar="N",
                         help="sample sizes shown first (default 20:100:10)")
    explore.add_argument("--reps", type=_positive_int, default=2000,
                         help="simulated trials per question (default 2000)")
    explore.add_argument("--seed", type=_nonneg_int, default=1, help="master random seed (default 1)")
    explore.add_argument("--jobs", type=_jobs, default=-1, help="simulation processes, -1 = all cores (default -1)")
    explore.add_argument("--out", type=Path, default=Path("results/explore"),
                         help="where saved scenarios and reports go (default results/explore)")
    explore.set_defaults(command=commands.explore)

    docs = sub.add_parser("docs", help="regenerate the scenario reference (scenarios/README.md)")
    docs.add_argument("--out", type=Path, default=Path("scenarios/README.md"))
    docs.set_defaults(command=commands.docs)
    return parser


def _lazy(module: str, name: str):
    """A command imported only when it runs, so that `describe` does not pay for pandas and scipy.stats."""
    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(f"sim.cli.{module}"), name)(args)

    return run


def _study_args(parser: argparse.ArgumentParser, n_default: list[int], reps: int, endpoints: str | None, out: str
                ) -> None:
    spec = f"{n_default[0]}:{n_default[-1]}:{n_default[1] - n_default[0]}" if len(n_default) > 1 else str(n_default[0])
    parser.add_argument("--n", nargs="+", type=_n_spec, default=[n_default], metavar="N",
                        help=f"sample sizes: START:STOP:STEP (inclusive) and/or single values (default {spec})")
    parser.add_argument("--reps", type=_replicates, default=reps,
                        help=f"replicates per sample size (default {reps}, from 2 to {MAX_REPS:,})")
    parser.add_argument("--seed", type=_nonneg_int, default=1, help="master random seed (default 1)")
    parser.add_argument("--jobs", type=_jobs, default=-1,
                        help="parallel processes on this machine (--backend loky), -1 = all cores (default -1)")
    parser.add_argument("--chunk-size", type=_positive_int, default=None,
                        help="replicates per chunk (default: on this machine, about 8 chunks per process, from 50 to "
                             "500 replicates; on a cluster, 50)")
    parser.add_argument("--backend", choices=("loky", "dask", "slurm", "pbs", "sge"), default="loky",
                        help="loky: processes on this machine; dask: a running Dask cluster (needs --scheduler); "
                             "slurm, pbs, sge: start workers as batch jobs (dask-jobqueue, see below)")
    parser.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://127.0.0.1:8786")
    _cluster_args(parser)
    if endpoints is not None:
        parser.add_argument("--endpoints", choices=("primary", "all"), default=endpoints,
                            help=f"primary: primary and ITT only (fastest); all: every secondary endpoint too "
                                 f"(default {endpoints})")
    parser.add_argument("--target-power", nargs="+", type=_probability, default=[0.8, 0.9], metavar="P")
    parser.add_argument("--out", type=Path, default=None, help=f"output folder (default {out})")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    parser.add_argument("--pdf", action="store_true", help="also print the report to report.pdf (headless Chromium)")


def _cluster_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "batch cluster (--backend slurm, pbs or sge)",
        "Values not given here come from the dask-jobqueue configuration (~/.config/dask/jobqueue.yaml, "
        "DASK_JOBQUEUE__SLURM__MEMORY=... and the like).")
    group.add_argument("--cluster-jobs", type=_positive_int, metavar="N",
                       help="batch jobs to run workers in (default 1); a job that ends early is resubmitted")
    group.add_argument("--cores", type=_positive_int,
                       help="cores per job (a single-threaded worker per core unless the configuration sets processes)")
    group.add_argument("--memory", type=_memory, help="memory per job, e.g. 16GB")
    group.add_argument("--walltime", metavar="TIME", help="wall time per job, e.g. 02:00:00; workers retire "
                       "shortly before it and the jobs are resubmitted")
    group.add_argument("--queue", help="queue (SLURM partition)")
    group.add_argument("--account", help="account to charge (SGE: project)")
    group.add_argument("--job-name", help="name of the batch jobs (default from the configuration: dask-worker)")
    group.add_argument("--log-dir", type=Path, help="folder for the jobs' output and error files (default OUT/logs)")
    group.add_argument("--worker-timeout", type=_positive_float, metavar="SECONDS",
                       help="give up (exit 2, jobs cancelled) if no worker has started by then (default 300)")


def _memory(text: str) -> str:
    from dask.utils import parse_bytes

    try:
        if parse_bytes(text) < 1:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a memory size such as 4GB or 500MB") from None
    return text


def _scenario_args(parser: argparse.ArgumentParser, default: str = DEFAULT_SCENARIO) -> None:
    parser.add_argument("--scenario", default=default, help=f"scenario TOML file (default {default})")
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


def _stop_rule(text: str) -> tuple[int, int]:
    k, _, d = text.partition(":")
    if not (k.isdigit() and d.isdigit() and 1 <= int(d) <= int(k)):
        raise argparse.ArgumentTypeError(f"{text!r}: expected K:D, integers with 1 <= D <= K")
    return int(k), int(d)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a finite number > 0")
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
