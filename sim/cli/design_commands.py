"""The `design` commands of run_sim.py: Simon two-stage designs and Bayesian safety boundaries, in words.

Both are exact (no simulation) and answer in about a second: they print the designs and their
operating characteristics for people, and with --out write them as CSV (atomically, with a manifest).
The statistics are in sim/stats/designs.py.
"""

from __future__ import annotations

import argparse
import json
import math
import textwrap

import numpy as np
import pandas as pd

from sim.scenario.schema import InputError
from sim.stats.designs import (
    SIMON_NMAX_LIMIT,
    Boundary,
    BoundaryOC,
    SimonDesign,
    boundary_from_table,
    boundary_oc,
    posterior_boundary,
    posterior_prob_above,
    simon_designs,
)
from sim.study.provenance import code_version, package_versions, write_atomically

BAYES_NMAX_LIMIT = 1000


def simon(args: argparse.Namespace) -> int:
    """Print (and with --out write) the optimal and minimax Simon designs for the given p0, p1, alpha, power."""
    if args.p1 <= args.p0:
        raise InputError(f"--p1 {args.p1}: must be larger than --p0 {args.p0} (p1 is the response rate that "
                         f"makes the treatment promising, p0 the rate that does not)")
    if not 2 <= args.nmax <= SIMON_NMAX_LIMIT:
        raise InputError(f"--nmax {args.nmax}: must be between 2 and {SIMON_NMAX_LIMIT}")
    try:
        designs = simon_designs(args.p0, args.p1, args.alpha, args.power, args.nmax)
    except ValueError as exc:
        limit = f" (up to {SIMON_NMAX_LIMIT})" if args.nmax < SIMON_NMAX_LIMIT else ""
        raise InputError(f"--nmax {args.nmax}: {exc}{limit}") from None
    print(f"Simon two-stage designs: response rate p0 = {args.p0:g} is not worth pursuing, p1 = {args.p1:g} is "
          f"promising.\nEvery design with at most {args.nmax} patients was searched for one-sided alpha <= "
          f"{args.alpha:g} and power >= {args.power:g}, both exact.\n")
    for design in designs:
        print(format_simon(design) + "\n")
    if designs[0].n > args.nmax - 10:
        print(f"Note: the optimal design's {designs[0].n} patients are close to --nmax {args.nmax}; a larger "
              f"--nmax may find a smaller expected size.\n")
    if args.out:
        table = pd.DataFrame([{
            "design": d.kind, "r1": d.r1, "n1": d.n1, "r": d.r, "n": d.n, "p0": d.p0, "p1": d.p1,
            "en_p0": d.en0, "pet_p0": d.pet0, "alpha": d.alpha, "en_p1": d.en1, "pet_p1": d.pet1, "power": d.power,
        } for d in designs])
        write_atomically(args.out, {"simon_designs.csv": _csv(table), "manifest.json": _manifest(args)})
        print(f"Wrote simon_designs.csv and manifest.json to {args.out}/")
    return 0


def format_simon(d: SimonDesign) -> str:
    """One design in plain words, with its exact characteristics under p0 and p1."""
    title = ("Optimal design (smallest expected number enrolled when the true rate is p0)" if d.kind == "optimal"
             else "Minimax design (smallest maximum number enrolled, then smallest expected number)")
    sentences = [
        f"Stop after {d.n1} patients if {_at_most(d.r1)} respond; otherwise enroll {d.n - d.n1} more "
        f"({d.n} in total) and call the treatment promising if more than {d.r} of the {d.n} respond (at least "
        f"{d.r + 1}).",
        f"If the true response rate is p0 = {d.p0:g}: the trial stops after {d.n1} patients with probability "
        f"{d.pet0:.3f} (PET), enrolls {d.en0:.1f} patients on average (EN), and wrongly calls the treatment "
        f"promising with probability {d.alpha:.4f} (exact alpha).",
        f"If the true response rate is p1 = {d.p1:g}: it stops after {d.n1} patients with probability "
        f"{d.pet1:.3f}, enrolls {d.en1:.1f} on average, and calls the treatment promising with probability "
        f"{d.power:.4f} (exact power).",
    ]
    lines = [textwrap.fill(text, width=110, initial_indent="  ", subsequent_indent="    ") for text in sentences]
    return "\n".join([f"{title}: r1/n1 = {d.r1}/{d.n1}, r/n = {d.r}/{d.n}", *lines])


def _at_most(r: int) -> str:
    return "none" if r == 0 else f"{r} or fewer"


def bayes_safety(args: argparse.Namespace) -> int:
    """Print (and with --out write) the boundary of a Bayesian safety rule and its exact operating characteristics."""
    if args.nmax > BAYES_NMAX_LIMIT:
        raise InputError(f"--nmax {args.nmax}: must be between 1 and {BAYES_NMAX_LIMIT}")
    if args.min_evaluable is None:
        args.min_evaluable = args.every
    if args.min_evaluable > args.nmax:
        raise InputError(f"--min-evaluable {args.min_evaluable}: must be at most --nmax {args.nmax}")
    rates = args.true_rate or default_true_rates(args.threshold)
    rule = posterior_boundary(args.prior_a, args.prior_b, args.threshold, args.cutoff, args.nmax,
                              args.every, args.min_evaluable)
    a, b = args.prior_a, args.prior_b
    print(f"Bayesian safety monitoring (Thall, Simon & Estey 1995) of an event rate, e.g. induction death.\n"
          f"Prior beta({a:g}, {b:g}): prior mean rate {a / (a + b):.3f}, worth {a + b:g} patients of data. "
          f"Stop when P(rate > {args.threshold:g} | data) > {args.cutoff:g},\nchecked {_schedule(args)}.\n")
    posterior = posterior_table(rule, a, b, args.threshold)
    _print_and_write(args, rule, boundary_oc(rule, rates), {"boundary.csv": _csv(posterior)})
    return 0


def stopping_table(args: argparse.Namespace) -> int:
    """Print (and with --out write) the exact operating characteristics of a user's stopping table."""
    if args.nmax > BAYES_NMAX_LIMIT:
        raise InputError(f"--nmax {args.nmax}: must be between 1 and {BAYES_NMAX_LIMIT}")
    try:
        rule = boundary_from_table(args.table, args.nmax)
    except ValueError as exc:
        raise InputError(f"--table {' '.join(f'{k}:{d}' for k, d in args.table)}: {exc}") from None
    print("Stopping table given by the user: stop as soon as at least d of the first k evaluable patients have the "
          "event.\n")
    table = pd.DataFrame({"k": rule.looks, "stop_if_at_least": rule.stop_at})
    _print_and_write(args, rule, boundary_oc(rule, args.true_rate), {"boundary.csv": _csv(table)})
    return 0


def _print_and_write(args: argparse.Namespace, rule: Boundary, oc: BoundaryOC, files: dict[str, str]) -> None:
    """The boundary and its exact OC for people; with --out, the given files plus the OC tables and manifest."""
    print("Stopping boundary (stop if at least d events among the first k evaluable patients):")
    print(format_boundary(rule))
    print(f"\nExact operating characteristics if each outcome is known before the next patient is treated "
          f"(at most {args.nmax} patients;\noutcomes that take time to observe make the trial stop later than this):")
    print(format_boundary_oc(oc, rule.looks))
    if args.out:
        files = {**files, "oc_by_patient.csv": _csv(oc_table(oc)), "oc_summary.csv": _csv(pd.DataFrame({
            "true_rate": oc.rates, "p_stop": oc.p_stop, "expected_treated": oc.expected_treated})),
            "manifest.json": _manifest(args)}
        write_atomically(args.out, files)
        print(f"\nWrote {', '.join(files)} to {args.out}/")


def default_true_rates(threshold: float) -> list[float]:
    """Half, once, 1.5 and twice the threshold (those below 1): a safe, a borderline and two toxic truths."""
    return [round(threshold * f, 4) for f in (0.5, 1.0, 1.5, 2.0) if threshold * f < 1.0]


def _schedule(args: argparse.Namespace) -> str:
    each = "after each evaluable patient" if args.every == 1 else f"after every {args.every} evaluable patients"
    return f"{each} from the {_ordinal(args.min_evaluable)} up to {args.nmax}"


def _ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def format_boundary(boundary: Boundary) -> str:
    """The boundary as lines, one per run of looks with the same threshold."""
    lines = []
    for looks, d in _runs(boundary):
        rule = "cannot stop (even if every patient has the event)" if d is None else f"stop if at least {d} events"
        lines.append(f"  k = {_looks_text(looks):<22} {rule}")
    return "\n".join(lines)


def _runs(boundary: Boundary) -> list[tuple[list[int], int | None]]:
    runs: list[tuple[list[int], int | None]] = []
    for k, d in zip(boundary.looks, boundary.stop_at, strict=True):
        if runs and runs[-1][1] == d:
            runs[-1][0].append(k)
        else:
            runs.append(([k], d))
    return runs


def _looks_text(looks: list[int]) -> str:
    if len(looks) == 1:
        return str(looks[0])
    step = looks[1] - looks[0]
    if step == 1:
        return f"{looks[0]}-{looks[-1]}"
    return ", ".join(map(str, looks)) if len(looks) <= 3 else f"{looks[0]}-{looks[-1]} (every {step})"


def format_boundary_oc(oc: BoundaryOC, looks: tuple[int, ...]) -> str:
    """P(stopped by patient k) at four points, P(ever stopped) and the expected number treated, per true rate."""
    nmax = oc.p_stop_at.shape[1]
    points = sorted({_next_look(looks, math.ceil(nmax * q)) for q in (0.25, 0.5, 0.75)} - {nmax})
    header = "  true rate  " + "".join(f"P(stop by {k:>3})  " for k in points) + \
        f"P(stop by {nmax:>3}, ever)  expected number treated"
    rows = [header]
    for i, rate in enumerate(oc.rates):
        cells = "".join(f"{oc.p_stop_by[i, k - 1]:14.3f}  " for k in points)
        rows.append(f"  {rate:9.3f}  {cells}{oc.p_stop[i]:22.3f}  {oc.expected_treated[i]:23.1f}")
    return "\n".join(rows)


def _next_look(looks: tuple[int, ...], k: int) -> int:
    """The first look at or after patient k (P(stopped by k) only changes at looks), or k if none is left."""
    return next((look for look in looks if look >= k), k)


def posterior_table(boundary: Boundary, a: float, b: float, threshold: float) -> pd.DataFrame:
    """One row per look: the stopping count and the posterior probability at it and at one event fewer."""
    d = np.array([np.nan if x is None else x for x in boundary.stop_at])
    k = np.array(boundary.looks)
    reachable = ~np.isnan(d)
    at = np.full(k.size, np.nan)
    below = np.full(k.size, np.nan)
    at[reachable] = posterior_prob_above(a, b, threshold, d[reachable], k[reachable])
    fewer = reachable & (d >= 1)
    below[fewer] = posterior_prob_above(a, b, threshold, d[fewer] - 1, k[fewer])
    return pd.DataFrame({"k": k, "stop_if_at_least": pd.array([x for x in boundary.stop_at], dtype="Int64"),
                         "posterior_at_boundary": at, "posterior_one_fewer": below})


def oc_table(oc: BoundaryOC) -> pd.DataFrame:
    """Long table: true rate, patient number k, P(stop at k), P(stopped by k)."""
    nmax = oc.p_stop_at.shape[1]
    return pd.DataFrame({"true_rate": np.repeat(oc.rates, nmax), "k": np.tile(np.arange(1, nmax + 1), oc.rates.size),
                         "p_stop_at_k": oc.p_stop_at.ravel(), "p_stop_by_k": oc.p_stop_by.ravel()})


def _csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, float_format="%.6g", lineterminator="\n")


def _manifest(args: argparse.Namespace) -> str:
    inputs = {key: (str(value) if key == "out" else value) for key, value in vars(args).items() if key != "command"}
    return json.dumps({"command": f"design {args.design}", "inputs": inputs, "versions": package_versions(),
                       "code_version": code_version()}, indent=2, sort_keys=True) + "\n"
