"""The explorer's inputs in a committee's terms: controls with clinical units, each scenario value's source,
and the translation of what is on the page into `--set` overrides validated by the scenario schema.

Every state of the page is (scenario file, list of `section.key=value` overrides): the scenario is
`load_scenario(file, overrides)`, so a bad value gives exactly the message of the command line, and
the command line reproduces the page with the same `--set` items (or the saved file). Controls that
are derived quantities say which input moves: CRc moves response.p_cr and p_cri in their loaded
proportion; MRD negativity before HSCT moves the deciding assay's p_negative_after_induction
(conversion and loss kept); enrolment per month moves accrual.screened_per_site_month (sites and
screen failures kept).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.scenario.calibrate import mrd_negative_before_hsct
from sim.scenario.schema import InputError, Scenario, ScenarioError, load_scenario, parse_override
from sim.scenario.sources import key_sources, line_comments, split_comment  # noqa: F401 - the explorer's API
from sim.study.targets import TARGETS


@dataclass(frozen=True)
class Control:
    """A slider in clinical units over one or more scenario keys."""

    name: str
    label: str
    unit: str
    lo: float
    hi: float
    step: float
    keys: Callable[[Scenario], tuple[str, ...]]         # the scenario keys it moves
    value: Callable[[Scenario], float]                  # the scenario's value in display units
    overrides: Callable[[Scenario, float], list[str]]   # display value -> override items
    moves: str = ""                                     # which input moves, for derived quantities

    def shown(self, scenario: Scenario) -> float:
        """The scenario's value on the slider's grid."""
        return on_step(self.value(scenario), self.step)


def on_step(value: float, step: float) -> float:
    """A value rounded to a slider's step (decimal places of the step), so 91.99999 reads 92."""
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return round(round(value / step) * step, decimals + 2)


def _num(x: float) -> str:
    return f"{x:.6g}"


def _percent_of(key: str) -> dict[str, Any]:
    def get(s: Scenario) -> float:
        section, leaf = key.rsplit(".", 1)
        node: Any = s
        for part in section.split("."):
            node = getattr(node, part)
        return 100.0 * getattr(node, leaf)
    return {"keys": lambda s: (key,), "value": get, "overrides": lambda s, v: [f"{key}={_num(v / 100)}"]}


def _target_overrides(name: str):
    """--set items that put a derived quantity (study/targets.py) at a control's value in percent or per month."""
    scale = 1.0 if name == "enrolled_per_month" else 100.0

    def overrides(s: Scenario, v: float) -> list[str]:
        return [f"{key}={_num(round(value, 6))}" for key, value in TARGETS[name].solve(s, v / scale).items()]

    return overrides


def _assay_key(s: Scenario) -> str:
    return f"mrd.{s.mrd.assay.lower()}"


CONTROLS: tuple[Control, ...] = (
    Control("crc", "Complete remission after induction (CR + CRi)", "% of patients alive after VIP", 0, 100, 1,
            keys=lambda s: ("response.p_cr", "response.p_cri"),
            value=lambda s: 100 * TARGETS["crc"].value(s), overrides=_target_overrides("crc"),
            moves="moves " + TARGETS["crc"].moves(None)),
    Control("mrd", "MRD-negative before HSCT", "% of patients in remission", 0, 100, 1,
            keys=lambda s: (f"{_assay_key(s)}.p_negative_after_induction",),
            value=lambda s: 100 * mrd_negative_before_hsct(s), overrides=_target_overrides("mrd_negative_before_hsct"),
            moves="moves the deciding assay's p_negative_after_induction (conversion and loss of negativity kept)"),
    Control("no_donor", "No suitable donor", "% of patients", 0, 100, 1, **_percent_of("donor.p_no_donor")),
    Control("refusal", "Eligible patient declines HSCT", "% of eligible patients", 0, 100, 1,
            **_percent_of("transplant.p_refusal")),
    Control("relapse", "Relapse after HSCT by the landmark", "% cumulative incidence", 0, 99, 1,
            **_percent_of("post_transplant.relapse_incidence")),
    Control("nrm", "Non-relapse mortality after HSCT by the landmark", "% cumulative incidence", 0, 99, 1,
            **_percent_of("post_transplant.nrm_incidence")),
    Control("accrual", "Enrolment once all sites are open", "patients per month", 0.1, 10, 0.1,
            keys=lambda s: ("accrual.screened_per_site_month",), value=TARGETS["enrolled_per_month"].value,
            overrides=_target_overrides("enrolled_per_month"),
            moves="moves " + TARGETS["enrolled_per_month"].moves(None)),
    Control("ramp", "Sites open over the first", "months", 0, 24, 1, keys=lambda s: ("accrual.ramp_up_months",),
            value=lambda s: s.accrual.ramp_up_months, overrides=lambda s, v: [f"accrual.ramp_up_months={_num(v)}"]),
    Control("p0", "Null RFS after HSCT at the landmark (p0)", "%", 1, 99, 1, **_percent_of("analysis.p0")),
    Control("p1", "Design alternative (p1)", "%", 1, 99, 1, **_percent_of("analysis.p1")),
    Control("alpha", "One-sided significance level (alpha)", "probability", 0.005, 0.2, 0.005,
            keys=lambda s: ("analysis.alpha",), value=lambda s: s.analysis.alpha,
            overrides=lambda s, v: [f"analysis.alpha={_num(v)}"]),
)
BY_NAME = {c.name: c for c in CONTROLS}
TESTS = ("cloglog", "linear", "arcsine", "binomial", "logrank")
MAX_GRID = 30               # sample sizes per question (each costs an analysis of every replicate)
MAX_N = 1000
MAX_REPS = 20_000
MAX_OTHER = 40              # free-form override lines


@dataclass(frozen=True)
class Grid:
    """What is simulated besides the scenario: the n grid, replicates and seed."""

    ns: tuple[int, ...]
    reps: int
    seed: int

    def n_text(self) -> str:
        """The grid as run_sim.py --n values."""
        return " ".join(str(n) for n in self.ns)


def grid_from(n_min: Any, n_max: Any, n_step: Any, reps: Any, seed: Any) -> Grid:
    """The n grid (inclusive), replicates and seed, or InputError saying what is allowed."""
    lo, hi, step = (_integer(v, name, 1, MAX_N) for v, name in ((n_min, "smallest n"), (n_max, "largest n"),
                                                                 (n_step, "n step")))
    if hi < lo:
        raise InputError(f"largest n = {hi}: must be at least the smallest n = {lo}")
    ns = tuple(range(lo, hi + 1, step))
    if ns[-1] != hi:
        ns = (*ns, hi)
    if len(ns) > MAX_GRID:
        raise InputError(f"n from {lo} to {hi} by {step} gives {len(ns)} sample sizes; at most {MAX_GRID} "
                         "(use a larger step)")
    return Grid(ns, _integer(reps, "replicates", 10, MAX_REPS), _integer(seed, "seed", 0, 2**31 - 1))


def _integer(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InputError(f"{name} = {value!r}: expected an integer from {lo} to {hi}")
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"{name} = {value!r}: expected an integer from {lo} to {hi}") from None
    if not math.isfinite(number) or number != int(number) or not lo <= number <= hi:
        raise InputError(f"{name} = {value!r}: expected an integer from {lo} to {hi}")
    return int(number)


def number(value: Any, control: Control) -> float:
    """A slider's value as a finite number within its range, or InputError."""
    try:
        x = float(value) if not isinstance(value, bool) and isinstance(value, int | float | str) else math.nan
    except ValueError:
        x = math.nan
    if not math.isfinite(x) or not control.lo <= x <= control.hi:
        raise InputError(f"{control.label} = {value!r}: expected a number from {control.lo:g} to "
                         f"{control.hi:g} ({control.unit})")
    return x


def other_items(text: Any) -> list[str]:
    """Free-form 'section.key=value' lines (blank lines and '#' comments ignored), checked for form."""
    if not isinstance(text, str):
        raise InputError("other values: expected lines of section.key=value")
    items = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if len(items) > MAX_OTHER:
        raise InputError(f"other values: {len(items)} lines; at most {MAX_OTHER}")
    for item in items:
        key, _ = parse_override(item)
        if key in ("name", "description", "extends"):
            raise ScenarioError(f"--set {item}: {key} is set when saving, not here")
    return items


@dataclass(frozen=True)
class Resolved:
    """The page's state as a validated scenario, or the messages that stop it (by control name)."""

    overrides: tuple[str, ...]
    scenario: Scenario | None
    errors: dict[str, str]          # control name (or "other", "study", "test") -> message
    labels: dict[str, str]          # override key -> words for the saved file's comments


def resolve(path: Path, loaded: Scenario, values: dict[str, Any], test: Any, other: Any) -> Resolved:
    """Overrides from the controls that moved off the loaded values (and the free-form lines), validated.

    Free-form lines apply first; controls, then, start from that scenario (derived controls solve for
    their key given the rest). A control shows an error when its value is malformed, when its derived
    key cannot reach it, or when the schema's message names one of its keys.
    """
    errors: dict[str, str] = {}
    labels: dict[str, str] = {}
    try:
        items = other_items(other)
        base = load_scenario(path, items)
    except InputError as exc:
        return Resolved(tuple(), None, {"other": str(exc)}, labels)
    for control in CONTROLS:
        if control.name not in values:
            continue
        try:
            x = number(values[control.name], control)
        except InputError as exc:
            errors[control.name] = str(exc)
            continue
        if on_step(x, control.step) == control.shown(loaded):
            continue
        try:
            new = control.overrides(base, x)
        except InputError as exc:
            errors[control.name] = str(exc)
            continue
        items += new
        for item in new:
            labels[parse_override(item)[0]] = (f"{control.label}: {x:g} {control.unit} "
                                               f"(loaded {control.shown(loaded):g})")
    if test is not None and test != loaded.analysis.test:
        if test not in TESTS:
            errors["test"] = f"test = {test!r}: one of {', '.join(TESTS)}"
        else:
            items.append(f"analysis.test={test}")
            labels["analysis.test"] = f"test of H0: {test} (loaded {loaded.analysis.test})"
    if errors:
        return Resolved(tuple(items), None, errors, labels)
    try:
        scenario = load_scenario(path, items)
    except InputError as exc:
        return Resolved(tuple(items), None, _placed(str(exc), loaded, items), labels)
    return Resolved(tuple(items), scenario, {}, labels)


def _placed(message: str, scenario: Scenario, items: list[str]) -> dict[str, str]:
    """Each message line beside every control whose key it names (else under 'other'); the overrides
    the message names as its origin ('with --set ...') do not count."""
    placed: dict[str, list[str]] = {}
    for line in message.splitlines():
        said = line
        for item in items:
            said = said.replace(f"--set {item}", "")
        names = [c.name for c in CONTROLS if any(k in said for k in c.keys(scenario))]
        if "analysis.test" in said:
            names.append("test")
        for name in names or ["other"]:
            placed.setdefault(name, []).append(line)
    return {name: "\n".join(lines) for name, lines in placed.items()}


# --------------------------------------------------------------------------- sources (the TOML comments)


def control_source(control: Control, scenario: Scenario, sources: dict[str, tuple[str, str]]) -> str:
    """'base.toml: <comment>' for the control's keys (the first with a comment), or '' when none."""
    for key in control.keys(scenario):
        file, comment = sources.get(key, ("", ""))
        if comment:
            return f"{file}: {comment}"
    return ""
