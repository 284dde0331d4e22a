"""Fuzz the command line with generated cases and count what must never happen.

    python benchmarks/fuzz_cli.py                      # about 1,100 distinct cases, seed 20251125, 2 at a time
    python benchmarks/fuzz_cli.py --scale 0.1 --jobs 1 # a quick look
    python benchmarks/fuzz_cli.py --gvhd-link --scale 0.1  # GVHD-NRM hazard ratios drawn too (slow to calibrate)

Cases (drawn by the hypothesis strategies in tests/fuzzing.py from a fixed seed, so a run is repeatable):
whole valid scenarios drawn from the schema's own ranges, extremes included, run through `trial`,
a tiny `sweep` and `describe`; one invalid value in a valid scenario (in the file or as `--set`);
hostile output folders; random command lines. Each case runs `sim.cli.parser.main` in a forked child
with a memory limit and a time limit, in its own folder. Counted: tracebacks, runs over the time or
memory limit, unexplained NaN (a number printed or written that is not finite and has no reason
beside it), refusals of documented-valid input, files written on refusal, invalid input accepted,
refusals that do not name the key. The target is zero for every count. Failures are listed in
OUT/failures.json (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import fuzzing  # noqa: E402
from hypothesis import Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import sim.report.html  # noqa: E402, F401 - imported once here, not in every forked case
import sim.study.resources  # noqa: E402, F401
import sim.study.truth  # noqa: E402, F401
import sim.study.whatif  # noqa: E402, F401
from sim.cli.parser import main  # noqa: E402

SEED = 20251125
COUNTS = {"valid-trial": 400, "valid-sweep": 120, "valid-describe": 150, "invalid-value": 250,
          "hostile-folder": 100, "command-line": 250}
TIME_LIMIT = {"valid-sweep": 180.0, "command-line": 180.0, "hostile-folder": 180.0}
MEMORY_LIMIT = 4 * 2**30
DISK_FULL = {"disk full at 1 kB": 1_000, "disk full at 30 kB": 30_000, "disk full at 300 kB": 300_000}


@dataclass
class Case:
    kind: str
    argv: list[str]
    expect: str                     # "ok", "refuse" or "either"
    key: str = ""                   # what a refusal must name
    setup: dict = field(default_factory=dict)


@dataclass
class Outcome:
    status: int
    stdout: str
    stderr: str
    seconds: float
    killed: str = ""


# --------------------------------------------------------------------------- drawing cases


def draw(strategy: st.SearchStrategy, count: int, salt: int) -> list:
    """`count` examples of a strategy, the same for the same seed."""
    examples: list = []

    @seed(SEED + salt)
    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate], derandomize=False)
    @given(strategy)
    def collect(example) -> None:
        examples.append(example)

    collect()
    return examples[:count]


def cases(scale: float, gvhd_link: bool = False) -> list[Case]:
    n = {kind: max(1, round(count * scale)) for kind, count in COUNTS.items()}
    out: list[Case] = []
    valid = fuzzing.valid_scenarios(gvhd_link=gvhd_link)
    small = st.tuples(valid, st.integers(1, 20), st.integers(0, 2**32))
    for data, size, s in draw(small, n["valid-trial"], 1):
        out.append(Case("valid-trial", ["trial", "--scenario", "scenario.toml", "--n", str(size), "--seed", str(s),
                                        "--out", "out"], "ok", setup={"scenario": data}))
    sweeps = st.tuples(valid, st.lists(st.integers(1, 20), min_size=1, max_size=3),
                       st.integers(2, 3), st.integers(0, 1000), st.sampled_from(["primary", "all"]))
    for data, sizes, reps, s, endpoints in draw(sweeps, n["valid-sweep"], 2):
        out.append(Case("valid-sweep", ["sweep", "--scenario", "scenario.toml", "--n", *map(str, sizes), "--reps",
                                        str(reps), "--seed", str(s), "--jobs", "1", "--quiet", "--endpoints", endpoints,
                                        "--out", "out"], "ok", setup={"scenario": data}))
    for data, size in draw(st.tuples(valid, st.integers(1, 10000)), n["valid-describe"], 3):
        out.append(Case("valid-describe", ["describe", "--scenario", "scenario.toml", "--n", str(size)], "ok",
                        setup={"scenario": data}))
    invalid = st.tuples(valid, fuzzing.invalid_changes(), st.booleans(),
                        st.sampled_from(["trial", "sweep", "describe"]))
    for data, (key, value, kind), by_set, command in draw(invalid, n["invalid-value"], 4):
        argv = [command, "--scenario", "scenario.toml"]
        argv += {"trial": ["--n", "5", "--out", "out"], "describe": [],
                 "sweep": ["--n", "5", "--reps", "2", "--jobs", "1", "--quiet", "--out", "out"]}[command]
        setup = {"scenario": data, "change": [key, value, kind]}
        if by_set and kind != "missing":
            argv += ["--set", f"{key}={fuzzing.toml_value(value)}"]
            setup["change"] = None
        out.append(Case("invalid-value", argv, "refuse", key=key, setup=setup))
    hostile = st.tuples(st.sampled_from(fuzzing.HOSTILE + tuple(DISK_FULL)), st.sampled_from(["sweep", "trial"]))
    for kind, command in draw(hostile, n["hostile-folder"], 5):
        argv = ([command, "--n", "5", "--seed", "1", "--out", "OUT"] if command == "trial" else
                [command, "--n", "5", "--reps", "2" if kind == "more replicates" else "4", "--chunk-size", "2",
                 "--seed", "2" if kind == "different study" else "1", "--jobs", "1", "--quiet", "--endpoints",
                 "primary", "--out", "OUT"])
        out.append(Case("hostile-folder", argv, "either", setup={"hostile": kind}))
    for argv in draw(fuzzing.command_lines(), n["command-line"], 6):
        out.append(Case("command-line", argv, "either"))
    return _distinct(out)


def _distinct(cases: list[Case]) -> list[Case]:
    """Each case once (hypothesis may draw the same example twice)."""
    seen: set[str] = set()
    kept = []
    for case in cases:
        key = json.dumps([case.kind, case.argv, case.setup], sort_keys=True, default=repr)
        if key not in seen:
            seen.add(key)
            kept.append(case)
    return kept


# --------------------------------------------------------------------------- running one case


def prepare(case: Case, folder: Path, prepared: Path) -> list[str]:
    """Make the case's working folder; returns argv with OUT replaced by its output path."""
    work = folder / "work"
    work.mkdir(parents=True)
    shutil.copytree(ROOT / "scenarios", work / "scenarios")
    argv = list(case.argv)
    data = case.setup.get("scenario")
    if data is not None:
        data = json.loads(json.dumps(data))
        change = case.setup.get("change")
        if change:
            key, value, kind = change
            *sections, leaf = key.split(".")
            node = data
            for section in sections:
                node = node.setdefault(section, {})
            if kind == "missing":
                node.pop(leaf, None)
            else:
                node[leaf] = value
        (work / "scenario.toml").write_text(fuzzing.toml_dumps(data), encoding="utf-8")
    if "hostile" in case.setup:
        kind = case.setup["hostile"]
        out = fuzzing.make_hostile("empty folder" if kind in DISK_FULL else kind, work, prepared)
        argv = [str(out) if a == "OUT" else a for a in argv]
    return [a.replace("OUT", str(work / "out")) for a in argv]


def run(argv: list[str], cwd: Path, limit: float, file_size: int = 0) -> Outcome:
    """main(argv) in a forked child with a memory and time limit; its exit status and output."""
    stdout, stderr = cwd.parent / "stdout.txt", cwd.parent / "stderr.txt"
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child
        status = 70
        try:
            os.setpgrp()
            os.chdir(cwd)
            resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
            for fd, path in ((1, stdout), (2, stderr)):
                handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(handle, fd)
            if file_size:
                _limit_file_size(file_size)
            try:
                status = main(argv)
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 2
            except BaseException:
                traceback.print_exc()
                status = 70
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
    killed = ""
    while True:
        done, wait_status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - started > limit:
            killed = f"over {limit:.0f} s"
            os.killpg(pid, signal.SIGKILL)
            _, wait_status = os.waitpid(pid, 0)
            break
        time.sleep(0.02)
    if os.WIFSIGNALED(wait_status) and not killed:
        killed = f"signal {os.WTERMSIG(wait_status)}"
    status = os.WEXITSTATUS(wait_status) if os.WIFEXITED(wait_status) else -1
    return Outcome(status, stdout.read_text(errors="replace"), stderr.read_text(errors="replace"),
                   time.monotonic() - started, killed)


def _limit_file_size(size: int) -> None:
    """Every write that would make a file larger than `size` bytes fails (EFBIG), as on a full disk."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


# --------------------------------------------------------------------------- judging


def judge(case: Case, outcome: Outcome, before: dict, after: dict, out: Path) -> list[str]:
    """The counts this case adds to (empty: the case behaved)."""
    found = []
    if outcome.killed:
        found.append("over time or memory limit" if "over" in outcome.killed or outcome.killed == "signal 9"
                     else "killed")
    elif "Traceback" in outcome.stderr or outcome.status not in (0, 2):
        found.append("memory error" if "MemoryError" in outcome.stderr else "traceback")
    if found:
        return found
    if outcome.status == 0:
        if case.expect == "refuse":
            found.append("invalid input accepted")
        problems = fuzzing.output_problems(out, outcome.stdout) if out.is_dir() or outcome.stdout else []
        if problems:
            found.append("unexplained NaN")
    else:
        if case.expect == "ok":
            found.append("refused at a computed, documented limit" if fuzzing.computed_limit(outcome.stderr)
                         else "documented-valid input refused")
        if after != before and case.setup.get("hostile") not in DISK_FULL:  # a full disk: judged by its rerun
            found.append("files written on refusal")
        message = outcome.stderr
        if case.kind == "invalid-value" and case.key.split(".")[0] not in message:
            found.append("refusal does not name the key")
        if not message.strip():
            found.append("refusal without a message")
    return found


def rerun_problems(argv: list[str], work: Path, out: Path, failed: Outcome) -> list[str]:
    """After a run on a full disk: no temporary files left, and a rerun gives the results of a clean run."""
    found = []
    if out.is_dir() and any(p.name.startswith(".") and p.name.endswith(".tmp") for p in out.rglob("*")):
        found.append("temporary files left after a failed write")
    if failed.status == 0:
        return found
    again = run(argv, work, 180.0)
    clean_out = work / "clean"
    clean = run([str(clean_out) if a == str(out) else a for a in argv], work, 180.0)
    if (again.status, clean.status) != (0, 0):
        return [*found, "rerun after a full disk failed"]
    for name in ("replicates.parquet", "oc.csv", "patients.csv", "endpoints.csv"):
        if (clean_out / name).is_file() and (clean_out / name).read_bytes() != (out / name).read_bytes():
            found.append(f"rerun after a full disk differs from a clean run ({name})")
    return found


def main_fuzz() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the default case counts")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="folder for failures.json (default: temporary)")
    parser.add_argument("--only", default="", help="run only this kind of case")
    parser.add_argument("--gvhd-link", action="store_true",
                        help="draw the GVHD-NRM hazard ratios too (extreme draws can then take minutes to calibrate)")
    args = parser.parse_args()
    todo = [c for c in cases(args.scale, args.gvhd_link) if not args.only or c.kind == args.only]
    base = Path(tempfile.mkdtemp(prefix="fuzz-cli-"))
    prepared = base / "prepared"
    (base / "prep").mkdir()
    shutil.copytree(ROOT / "scenarios", base / "prep" / "scenarios")
    run(["sweep", "--n", "5", "--reps", "4", "--chunk-size", "2", "--seed", "1", "--jobs", "1", "--quiet",
         "--endpoints", "primary", "--out", str(prepared)], base / "prep", 300)
    counts: Counter = Counter()
    seconds: dict[str, list[float]] = {}
    slowest: list[tuple[float, str, list[str]]] = []
    failures = []
    started = time.monotonic()
    queue = list(enumerate(todo))
    print(f"{len(todo)} cases, seed {SEED}, {args.jobs} at a time; working in {base}", flush=True)
    from concurrent.futures import ThreadPoolExecutor

    def one(item: tuple[int, Case]) -> tuple[int, Case, list[str], Outcome]:
        i, case = item
        folder = base / f"case-{i:05d}"
        argv = prepare(case, folder, prepared)
        out_arg = next((argv[k + 1] for k, a in enumerate(argv[:-1]) if a == "--out"), None)
        out = Path(out_arg) if out_arg else folder / "work" / "none"
        if not out.is_absolute():
            out = folder / "work" / out
        watched = folder / "work"
        before = fuzzing.tree(watched)
        full = DISK_FULL.get(case.setup.get("hostile", ""), 0)
        outcome = run(argv, watched, TIME_LIMIT.get(case.kind, 90.0), file_size=full)
        after = fuzzing.tree(watched)
        found = judge(case, outcome, before, after, out)
        if full and not found:
            found = rerun_problems(argv, watched, out, outcome)
        if not found:
            shutil.rmtree(folder, ignore_errors=True)
        return i, case, found, outcome

    with ThreadPoolExecutor(args.jobs) as pool:
        for done, (i, case, found, outcome) in enumerate(pool.map(one, queue), start=1):
            counts[case.kind] += 1
            seconds.setdefault(case.kind, []).append(outcome.seconds)
            slowest = sorted([*slowest, (outcome.seconds, case.kind, case.argv)], reverse=True)[:5]
            for problem in found:
                counts[problem] += 1
                failures.append({"case": i, "kind": case.kind, "problem": problem, "argv": case.argv,
                                 "setup": {k: v for k, v in case.setup.items() if k != "scenario"},
                                 "status": outcome.status, "stderr": outcome.stderr[-3000:],
                                 "stdout": outcome.stdout[-2000:], "seconds": round(outcome.seconds, 1),
                                 "folder": str(base / f"case-{i:05d}")})
            if done % 50 == 0:
                print(f"  {done}/{len(todo)} cases, {time.monotonic() - started:.0f} s, problems so far: "
                      f"{sum(v for k, v in counts.items() if k not in COUNTS)}", flush=True)
    report_dir = args.out or base
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "failures.json").write_text(json.dumps(failures, indent=1, default=str))
    print(f"  {'refused at a computed, documented limit':<34} {counts['refused at a computed, documented limit']}"
          " (not a defect: the value is beyond the limit the message computes)")
    problems = ("traceback", "memory error", "over time or memory limit", "killed", "unexplained NaN",
                "documented-valid input refused", "files written on refusal", "invalid input accepted",
                "refusal does not name the key", "refusal without a message")
    print(f"\n{len(todo)} cases (seed {SEED}) in {time.monotonic() - started:.0f} s: "
          + ", ".join(f"{k} {counts[k]}" for k in COUNTS))
    for problem in problems:
        print(f"  {problem:<34} {counts[problem]}")
    print("seconds per case (mean / max): " + ", ".join(
        f"{kind} {sum(v) / len(v):.1f} / {max(v):.0f}" for kind, v in seconds.items()))
    for took, kind, argv in slowest:
        print(f"  slow: {took:.0f} s {kind}: {' '.join(argv)}")
    print(f"failures: {report_dir / 'failures.json'}")
    return 1 if any(counts[p] for p in problems) else 0


if __name__ == "__main__":
    sys.exit(main_fuzz())
