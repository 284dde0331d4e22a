"""Property-based tests of the whole command line, from inputs drawn by tests/fuzzing.py.

Whole valid scenarios are drawn from the schema's own ranges and Literal choices (extremes included, the
cross-field rules respected by construction) and run in-process through `trial`, a tiny `sweep` and
`describe`: each must finish with every number printed or written finite or explained. One invalid value
must be refused (exit 2) naming the key and where it came from, writing nothing. Hostile output folders
and random command lines must give exit 0 or 2, never a traceback, and nothing written on refusal.

The profile is fixed (derandomized, no deadline, bounded examples) so CI runs the same cases each time in
about a minute; benchmarks/fuzz_cli.py runs the same strategies over a thousand cases.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

import fuzzing
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.cli import parser as cli

ROOT = Path(__file__).resolve().parents[1]
PROFILE = dict(derandomize=True, deadline=None, database=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                      HealthCheck.data_too_large, HealthCheck.filter_too_much])


@pytest.fixture(scope="module", autouse=True)
def small_itt_truth():
    """The ITT truth from 5,000 patients instead of 200,000: these properties are about running, not precision."""
    from sim.study import truth

    real = truth.enrollment_truths
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(truth, "enrollment_truths",
                      lambda scenario, models, seed: real(scenario, models, seed, 5000, 5000))
        yield


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Exit status (argparse's SystemExit included), stdout and stderr of one in-process command."""
    capsys.readouterr()
    with np.errstate(all="ignore"):
        try:
            status = cli.main(argv)
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    return status, out, err


def scenario_file(folder: Path, data: dict) -> Path:
    path = folder / "scenario.toml"
    path.write_text(fuzzing.toml_dumps(data), encoding="utf-8")
    return path


def assert_ran_or_refused_at_a_stated_limit(status: int, stdout: str, stderr: str, out: Path) -> None:
    """A documented-valid scenario runs with explained numbers, or stops at a limit calibration computes."""
    if status == 2 and fuzzing.computed_limit(stderr):
        return
    assert status == 0, stderr
    assert fuzzing.output_problems(out, stdout) == []


@settings(max_examples=20, **PROFILE)
@given(data=fuzzing.valid_scenarios(gvhd_link=False), n=st.integers(1, 20), seed=st.integers(0, 2**32))
def test_any_valid_scenario_runs_a_trial(tmp_path: Path, capsys: pytest.CaptureFixture[str], data: dict, n: int,
                                         seed: int) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    out = folder / "out"
    status, stdout, stderr = run(["trial", "--scenario", str(scenario_file(folder, data)), "--n", str(n), "--seed",
                                  str(seed), "--out", str(out)], capsys)
    assert_ran_or_refused_at_a_stated_limit(status, stdout, stderr, out)


@settings(max_examples=5, **PROFILE)
@given(data=fuzzing.valid_scenarios(gvhd_link=False), ns=st.lists(st.integers(1, 20), min_size=1, max_size=3),
       reps=st.integers(2, 3), endpoints=st.sampled_from(["primary", "all"]))
def test_any_valid_scenario_runs_a_tiny_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str], data: dict,
                                              ns: list[int], reps: int, endpoints: str) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    out = folder / "out"
    status, stdout, stderr = run(["sweep", "--scenario", str(scenario_file(folder, data)), "--n", *map(str, ns),
                                  "--reps", str(reps), "--jobs", "1", "--quiet", "--endpoints", endpoints,
                                  "--out", str(out)], capsys)
    assert_ran_or_refused_at_a_stated_limit(status, stdout, stderr, out)


@settings(max_examples=25, **PROFILE)
@given(data=fuzzing.valid_scenarios(gvhd_link=False), n=st.integers(1, 10000))
def test_any_valid_scenario_is_described(tmp_path: Path, capsys: pytest.CaptureFixture[str], data: dict,
                                         n: int) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    status, stdout, stderr = run(["describe", "--scenario", str(scenario_file(folder, data)), "--n", str(n)], capsys)
    assert_ran_or_refused_at_a_stated_limit(status, stdout, stderr, folder / "none")
    if status == 2:
        assert stdout == "", "describe printed part of its report before refusing"


@settings(max_examples=40, **PROFILE)
@given(data=fuzzing.valid_scenarios(gvhd_link=False), change=fuzzing.invalid_changes(), by_set=st.booleans())
def test_one_invalid_value_is_refused_naming_key_and_origin(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            data: dict, change: tuple, by_set: bool) -> None:
    key, value, kind = change
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    argv = ["trial", "--n", "3", "--out", str(folder / "out")]
    if by_set and kind != "missing":
        item = f"{key}={fuzzing.toml_value(value)}"
        argv += ["--scenario", str(scenario_file(folder, data)), "--set", item]
        origin = f"--set {item}"
    else:
        if kind == "missing":
            node = fuzzing.get_dotted(data, key.rsplit(".", 1)[0]) if "." in key else data
            node.pop(key.rsplit(".", 1)[-1])
        else:
            fuzzing.set_dotted(data, key, value)
        argv += ["--scenario", str(scenario_file(folder, data))]
        origin = str(folder / "scenario.toml")
    before = fuzzing.tree(folder)
    status, stdout, stderr = run(argv, capsys)
    assert (status, stdout) == (2, ""), stderr
    assert stderr.startswith("error: ") and origin in stderr and key.split(".")[0] in stderr, stderr
    assert fuzzing.tree(folder) == before


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished small sweep (the HOSTILE_SWEEP command) to copy into hostile folders."""
    out = tmp_path_factory.mktemp("prepared") / "sweep"
    assert cli.main([*HOSTILE_SWEEP, "--out", str(out)]) == 0
    return out


HOSTILE_SWEEP = ["sweep", "--n", "5", "--reps", "4", "--chunk-size", "2", "--seed", "1", "--jobs", "1", "--quiet",
                 "--endpoints", "primary"]


@settings(max_examples=12, **PROFILE)
@given(kind=st.sampled_from(fuzzing.HOSTILE), command=st.sampled_from(["sweep", "trial"]))
def test_hostile_output_folder_exits_0_or_2_and_never_writes_on_refusal(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], prepared: Path, kind: str, command: str) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    out = fuzzing.make_hostile(kind, folder, prepared)
    argv = ["trial", "--n", "5", "--out", str(out)] if command == "trial" else [*HOSTILE_SWEEP, "--out", str(out)]
    if kind == "different study":
        argv += ["--seed", "2"]                     # the prepared sweep used seed 1 (the last --seed counts)
    if kind == "more replicates" and command == "sweep":
        argv += ["--reps", "2"]
    before = fuzzing.tree(folder)
    status, stdout, stderr = run(argv, capsys)
    assert status in (0, 2) and "Traceback" not in stderr, stderr
    if status == 2:
        assert stderr.splitlines()[-1].startswith(f"error: {out}"), stderr   # after any progress lines
        assert fuzzing.tree(folder) == before, "files written on refusal"
    else:
        assert fuzzing.output_problems(out, stdout) == []
        if command == "sweep":  # a damaged chunk was recomputed, never loaded
            assert (out / "replicates.parquet").read_bytes() == (prepared / "replicates.parquet").read_bytes()


@settings(max_examples=20, **PROFILE)
@given(argv=fuzzing.command_lines())
def test_any_command_line_exits_0_or_2_and_never_writes_on_refusal(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    shutil.copytree(ROOT / "scenarios", work / "scenarios")
    argv = [a.replace("OUT", str(work / "out")) for a in argv]
    before = fuzzing.tree(work)
    with contextlib.chdir(work):
        status, stdout, stderr = run(argv, capsys)
    assert status in (0, 2), stderr
    if status == 2:
        assert stderr.strip(), "a refusal without a message"
        assert fuzzing.tree(work) == before, "files written on refusal"
    else:
        outs = [Path(a) for a in argv if a.startswith(str(work / "out"))] + [work / "results"]
        for out in outs:
            assert fuzzing.output_problems(out if out.is_dir() else out.parent, stdout if out == outs[0] else "") \
                == []
