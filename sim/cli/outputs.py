"""Output folders of the commands: the default per scenario, what a command may write into, the size limits.

A command writes only into a new or empty folder, or one holding its own earlier results of the same
study (which it resumes or extends); anything else is refused with exit 2 before any work, saying what
is there and how to proceed. Results are never replaced by fewer replicates.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from sim.scenario.schema import InputError
from sim.study.provenance import folder_problem

DEFAULT_SCENARIO = "scenarios/base.toml"
# Limits that keep every accepted command line bounded in memory (time grows linearly up to them).
MAX_N = 10_000          # patients in one trial
MAX_REPS = 100_000      # replicates per sample size
MAX_SIZES = 100         # sample sizes in one grid
MAX_ROWS = 1_000_000    # replicates x sample sizes x scenarios held in memory (about 0.8 kB each)


def default_out(args: argparse.Namespace, command: str) -> Path:
    """The output folder: --out, or results/<scenario file name>[-command], so that studies of different scenarios
    never meet in one folder (`sweep --scenario scenarios/pessimistic.toml` writes to results/pessimistic)."""
    if args.out is not None:
        return args.out
    if command == "compare":
        names = [_stem(path) for path in (args.scenario or [DEFAULT_SCENARIO])]
        names += [text.partition(":")[0] for text in args.variant]
        return Path("results") / ("compare-" + "-".join(names))[:80]
    suffix = "" if command == "sweep" else f"-{command}"
    return Path("results") / f"{_stem(args.scenario)}{suffix}"


def _stem(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).stem).strip("._") or "scenario"


def existing_results(out: Path, command: str, reps: int | None = None, same: dict | None = None) -> dict | None:
    """Check that `command` may write into `out`: a new or empty folder, or one holding this command's own results
    of as many replicates or fewer (and, where given, the same values of the `same` manifest keys). Returns the
    manifest of the results there (None if none), or raises InputError saying what is there and how to proceed."""
    problem = folder_problem(out)
    if problem:
        raise InputError(problem)
    existing = next(folder for folder in (out, *out.parents) if folder.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{out}: cannot write there (permission denied in {existing}); choose another output "
                         "folder (--out)")
    # logs/: the batch jobs' output files, written before anything else (a run that found no worker leaves them).
    entries = sorted(p for p in out.iterdir() if p.name != "logs") if out.is_dir() else []
    if not entries:
        return None
    manifest = manifest_in(out)
    if manifest is None:
        if (out / "study.json").exists() or (command == "assurance" and (out / "assurance").is_dir()):
            return None  # an interrupted study; the runner checks it is the same one
        if command in ("compare", "sensitivity") and all(p.is_dir() and ((p / "study.json").exists()
                                                                         or not any(p.iterdir())) for p in entries):
            return None  # an interrupted comparison: one study folder per scenario
        shown = ", ".join(p.name for p in entries[:4]) + (", ..." if len(entries) > 4 else "")
        raise InputError(f"{out}: holds files this tool did not write ({shown}); choose a new or empty output "
                         "folder (--out), or move them away")
    if manifest.get("command") != command:
        raise InputError(f"{out}: holds the results of a {manifest.get('command')!s} run; a {command} would mix its "
                         f"files with them: choose another output folder (--out)")
    previous = manifest.get("reps")
    if reps is not None and isinstance(previous, int) and previous > reps:
        raise InputError(f"{out}: holds the results of {previous} replicates; --reps {reps} would replace them with "
                         f"fewer. To see them: python run_sim.py report {out}; to add replicates, rerun with --reps "
                         f"{previous} or more; for a smaller study, choose another output folder (--out)")
    for key, value in (same or {}).items():
        stored = manifest.get(key)
        if isinstance(stored, dict) and isinstance(value, list):
            stored = list(stored)  # compare: the scenario names, in order
        if stored != value:
            raise InputError(f"{out}: holds a {command} of {_shown_value(stored)} ({key}); this one is of "
                             f"{_shown_value(value)}: choose another output folder (--out), or delete this one")
    return manifest


def manifest_in(out: Path) -> dict | None:
    """OUT/manifest.json, or None if there is none; InputError if it is not one this tool wrote."""
    path = out / "manifest.json"
    if not path.exists() and not path.is_symlink():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        manifest = None
    if not isinstance(manifest, dict) or "command" not in manifest:
        raise InputError(f"{out}: holds a manifest.json this tool did not write (not readable as one); choose "
                         "another output folder (--out), or delete this one")
    return manifest


def _shown_value(value: object) -> str:
    if isinstance(value, dict):
        value = ", ".join(value)
    elif isinstance(value, list):
        value = ", ".join(map(str, value))
    return " ".join(str(value).split())[:100]


def note(message: str) -> None:
    """A remark for the user that is not the command's answer (stderr)."""
    print(f"note: {message}", file=sys.stderr)


def sample_sizes(args: argparse.Namespace, scenarios: int = 1) -> tuple[int, ...]:
    """The n grid of a study command, sorted, each size once; InputError if the study would not fit in memory."""
    ns = tuple(sorted({n for spec in args.n for n in spec}))
    if len(ns) > MAX_SIZES:
        raise InputError(f"--n: {len(ns)} sample sizes; at most {MAX_SIZES} in one study (use a larger STEP)")
    rows = args.reps * len(ns) * scenarios
    if rows > MAX_ROWS:
        of = f" x {scenarios} scenarios" if scenarios > 1 else ""
        raise InputError(f"--reps {args.reps} x {len(ns)} sample sizes{of} = {rows:,} replicate rows; at most "
                         f"{MAX_ROWS:,} in one study (about 1 GB of memory): use fewer replicates or sample sizes")
    return ns
