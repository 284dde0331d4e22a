"""Command line: `trial` simulates one virtual trial; `docs` regenerates the scenario reference.

Every input is validated before anything is written; bad input exits with status 2 and one message
per problem naming the file (or --set override), the key, the value and what is allowed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from sim import __version__
from sim.scenario import ScenarioError, load_scenario

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_SCENARIO = "scenarios/base.toml"


def main(argv: list[str] | None = None) -> int:
    """Entry point of run_sim.py; returns the process exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.command(args)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run_sim.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    trial = sub.add_parser("trial", help="simulate one virtual trial and write its patient histories")
    _scenario_args(trial)
    trial.add_argument("--n", type=_positive_int, default=60, help="patients to enroll (default 60)")
    trial.add_argument("--seed", type=_nonneg_int, default=7, help="master random seed (default 7)")
    trial.add_argument("--out", type=Path, default=Path("results/demo"), help="output folder (default results/demo)")
    trial.set_defaults(command=_trial)

    docs = sub.add_parser("docs", help="regenerate the scenario reference (scenarios/README.md)")
    docs.add_argument("--out", type=Path, default=Path("scenarios/README.md"))
    docs.set_defaults(command=_docs)
    return parser


def _scenario_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", default=DEFAULT_SCENARIO, help=f"scenario TOML file (default {DEFAULT_SCENARIO})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one scenario value (repeatable), e.g. --set donor.p_no_donor=0.3")


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


def _trial(args: argparse.Namespace) -> int:
    import pandas as pd

    from sim.analysis import endpoints, observe
    from sim.calibrate import calibrate
    from sim.figures import flow_figure, incidence_figure, survival_figure
    from sim.model import simulate_trial
    from sim.trial_data import event_log, format_flow, patient_flow, patients_table

    scenario = load_scenario(args.scenario, args.overrides)
    history = simulate_trial(scenario, args.n, args.seed, post_model=calibrate(scenario))
    patients = patients_table(history)
    flow = patient_flow(history)
    results = pd.DataFrame(endpoints(history))
    obs = observe(history)
    a = scenario.analysis
    manifest = {
        "command": "trial", "scenario_file": str(args.scenario), "overrides": args.overrides,
        "n": args.n, "seed": args.seed, "scenario": scenario.model_dump(), "versions": package_versions(),
    }
    write_atomically(args.out, {
        "patients.csv": patients.to_csv(index=False, float_format="%.3f", lineterminator="\n"),
        "events.csv": event_log(patients).to_csv(index=False, float_format="%.3f", lineterminator="\n"),
        "flow.csv": flow.to_csv(index=False, lineterminator="\n"),
        "endpoints.csv": results.to_csv(index=False, float_format="%.4f", lineterminator="\n"),
        "manifest.json": json.dumps(manifest, indent=2, sort_keys=True) + "\n",
        "km_rfs_os.png": survival_figure(obs, a.landmark_months, a.p0),
        "cumulative_incidence.png": incidence_figure(obs, a.landmark_months),
        "patient_flow.png": flow_figure(flow),
    })
    months = (patients["enroll_day"].iloc[-1] / (365.25 / 12)) if len(patients) else 0.0
    print(f"Scenario {scenario.name!r}, {args.n} patients, seed {args.seed}; "
          f"accrual took {months:.1f} months\n")
    print(format_flow(flow))
    print("\nEndpoints at the final analysis:")
    print(format_endpoints(results))
    print(f"  primary test: {results['method'].iloc[0].split('; ', 1)[1]}")
    print(f"\nWrote patients.csv, events.csv, flow.csv, endpoints.csv, manifest.json and 3 figures to {args.out}/")
    return 0


def format_endpoints(results: pd.DataFrame) -> str:
    """Endpoint rows as aligned text: estimate with 95% CI, or the count."""
    width = int(results["endpoint"].str.len().max())
    lines = []
    for row in results.itertuples(index=False):
        if row.not_evaluable_reason:
            value = f"not evaluable: {row.not_evaluable_reason}"
        elif row.lower == row.lower:  # has a CI
            value = f"{row.estimate:6.3f}  (95% CI {row.lower:.3f}-{row.upper:.3f}; n = {row.n:.0f})"
        else:
            value = f"{row.estimate:6.1f}  {row.method}"
        lines.append(f"  {row.endpoint:<{width}}  {value}")
    return "\n".join(lines)


def _docs(args: argparse.Namespace) -> int:
    from sim.scenario_doc import scenario_reference

    write_atomically(args.out.parent, {args.out.name: scenario_reference()})
    print(f"Wrote {args.out}")
    return 0


def write_atomically(folder: Path, files: dict[str, str | bytes]) -> None:
    """Write every file to a temporary name in `folder`, then rename each into place."""
    folder.mkdir(parents=True, exist_ok=True)
    staged = []
    try:
        for name, text in files.items():
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                handle.write(text.encode("utf-8") if isinstance(text, str) else text)
            staged.append((tmp, folder / name))
        for tmp, final in staged:
            os.replace(tmp, final)
    finally:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.remove(tmp)


def package_versions() -> dict[str, str]:
    """Versions of Python, this package and the libraries that change numbers."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version(), "sim": __version__}
    for name in ("numpy", "scipy", "simpy", "pandas", "pydantic"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions
