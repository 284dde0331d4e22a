"""Keeping what was found in the explorer: a scenario file that extends the loaded one with only the
changed keys, and the sweep's own report of it, written by the command line itself.

The saved file is the loaded file plus the page's `--set` overrides, so `load_scenario(saved)` is the
explored scenario (name and description aside), and `run_sim.py sweep --scenario SAVED --seed S
--reps K --n GRID` reproduces the page's numbers at K replicates exactly. The report is that very
command run as a separate process: the same pipeline, the same report.html, and the explorer's
memory untouched by it.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from sim.app.inputs import Grid
from sim.scenario.schema import InputError, Scenario, load_scenario, parse_override
from sim.study.provenance import write_atomically

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,59}$")


def check_name(name: object) -> str:
    """A scenario name usable as a file name, or InputError."""
    if not isinstance(name, str) or not NAME.match(name.strip()):
        raise InputError(f"name {name!r}: 1-60 letters, digits, '-' or '_', starting with a letter or digit")
    return name.strip()


def saved_text(loaded_path: Path, target: Path, overrides: tuple[str, ...], name: str, description: str,
               labels: dict[str, str], grid: Grid, when: str) -> str:
    """The TOML text of a scenario that extends the loaded file and sets only the overridden keys."""
    extends = Path(os.path.relpath(loaded_path.resolve(), target.parent.resolve())).as_posix()
    command = (f"python run_sim.py sweep --scenario {target.as_posix()} --n {grid.n_text()} --reps {grid.reps} "
               f"--seed {grid.seed} --endpoints primary")
    lines = [f"# Saved from the what-if explorer on {when}: {loaded_path.name} with the values changed below.",
             f"# Reproduce the explorer's numbers: {command}",
             "# (the same seed and replicates give the same power, bit for bit).",
             f"extends = {_toml_value(extends)}",
             f"name = {_toml_value(name)}",
             f"description = {_toml_value(description)}"]
    sections: dict[str, list[str]] = {}
    for item in overrides:
        key, value = parse_override(item)
        section, leaf = key.rsplit(".", 1) if "." in key else ("", key)
        why = labels.get(key, f"set by name in the explorer: {item}")
        sections.setdefault(section, []).append(f"{leaf} = {_toml_value(value)}  # explorer: {why}")
    for section, entries in sections.items():
        lines += ["", f"[{section}]", *entries]
    return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


def save_scenario(loaded_path: Path, folder: Path, explored: Scenario, overrides: tuple[str, ...], name: str,
                  labels: dict[str, str], grid: Grid) -> Path:
    """Write FOLDER/NAME.toml (never over an existing file) and check that it loads as the explored scenario."""
    name = check_name(name)
    target = folder / f"{name}.toml"
    if target.exists():
        raise InputError(f"{target}: exists already; choose another name")
    when = time.strftime("%Y-%m-%d %H:%M")
    description = f"{explored.description} (explored: {len(overrides)} value(s) changed on {when})"
    text = saved_text(loaded_path, target, overrides, name, description, labels, grid, when)
    write_atomically(folder, {target.name: text})
    again = load_scenario(target)
    if again.model_copy(update={"name": explored.name, "description": explored.description}) != explored:
        target.unlink()
        raise InputError(f"{target}: the saved file does not load as the explored scenario; nothing kept")
    return target


@dataclass
class ReportJob:
    """A sweep of a saved scenario running as its own process, writing OUT/report.html."""

    process: subprocess.Popen
    out: Path
    log: Path
    started: float

    def state(self) -> str:
        """'running', 'done' or 'failed'."""
        code = self.process.poll()
        return "running" if code is None else "done" if code == 0 and (self.out / "report.html").exists() \
            else "failed"

    def last_lines(self, k: int = 3) -> str:
        """The end of the command's output (what failed, or how far it is)."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-k:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def sweep_arguments(saved: Path, grid: Grid, out: Path) -> list[str]:
    """The sweep command's arguments for the report of a saved scenario (all endpoints, like the default)."""
    return ["sweep", "--scenario", str(saved), "--n", *map(str, grid.ns), "--reps", str(grid.reps),
            "--seed", str(grid.seed), "--out", str(out), "--quiet"]


def start_report(sweep_command: list[str], saved: Path, grid: Grid, out: Path) -> ReportJob:
    """Run the sweep of a saved scenario in the background (sweep_command: how to call run_sim.py)."""
    # The log sits beside the sweep's folder: the sweep refuses a folder holding files it did not write.
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.parent / f"{out.name}-report.log"
    with open(log, "wb") as handle:
        process = subprocess.Popen([*sweep_command, *sweep_arguments(saved, grid, out)], stdout=handle,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return ReportJob(process, out, log, time.time())
