"""What-ifs in the committee's terms: a derived quantity set to a target by solving for one input.

A committee says "75% MRD-negative before HSCT" or "70% reach transplant", while a scenario is
parametrised by negativity after induction and conversion, or by each stage's risk. `--set
target.NAME=VALUE` names such a quantity; the one input it moves (stated here, in the reference and
in every report) is solved by root finding so the quantity equals the value, everything else as
given. A value outside what that input can reach is refused with the reachable range.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scipy import optimize

from sim.scenario.calibrate import mrd_negative_before_hsct
from sim.scenario.schema import Scenario, ScenarioError, parse_override
from sim.study.design import p_reach_hsct

PREFIX = "target."


@dataclass(frozen=True)
class Target:
    """A derived quantity, in words, and the input solved to reach it."""

    words: str
    moves: Callable[[Scenario], str]          # the dotted key of the input that moves
    value: Callable[[Scenario], float]


def _crc(s: Scenario) -> float:
    return s.response.p_cr + s.response.p_cri


def _enrolled_per_month(s: Scenario) -> float:
    a = s.accrual
    return a.n_sites * a.screened_per_site_month * (1.0 - a.screen_fail_prob)


TARGETS: dict[str, Target] = {
    "mrd_negative_before_hsct": Target(
        "MRD-negative before HSCT, among remitters", lambda s: f"mrd.{s.mrd.assay.lower()}.p_convert_to_negative",
        mrd_negative_before_hsct),
    "p_reach_hsct": Target("P(an enrolled patient is transplanted)", lambda s: "donor.p_no_donor", p_reach_hsct),
    "crc": Target("CRc (CR + CRi) among patients alive after VIP", lambda s: "response.p_cr", _crc),
    "enrolled_per_month": Target("patients enrolled per month once every site is open",
                                 lambda s: "accrual.screened_per_site_month", _enrolled_per_month),
}


@dataclass(frozen=True)
class Solved:
    """A target reached: the quantity, its value, the input moved and its old and new values."""

    name: str
    words: str
    target: float
    key: str
    before: float
    after: float

    def text(self) -> str:
        return (f"{self.words} = {self.target:g} (--set {PREFIX}{self.name}): {self.key} moved from {self.before:g} "
                f"to {self.after:.6g}")


def split_targets(overrides: list[str] | tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(ordinary overrides, target overrides) from --set items."""
    targets = [o for o in overrides if o.strip().startswith(PREFIX)]
    return [o for o in overrides if o not in targets], targets


def apply_targets(scenario: Scenario, items: list[str], source: str) -> tuple[Scenario, list[Solved]]:
    """The scenario with every target reached at once, each by moving its own input.

    Targets interact (more MRD negativity also raises P(reach HSCT)), so they are solved in turn until
    all hold together (block coordinate root finding; each input moves one quantity monotonically).
    """
    goals = _parse_targets(items)
    if not goals:
        return scenario, []
    keys = {name: TARGETS[name].moves(scenario) for name, _, _ in goals}
    if len(set(keys.values())) < len(keys):
        raise ScenarioError(f"--set {', '.join(items)}: two targets move the same input; give one of them")
    before = {name: float(_get(scenario.model_dump(), key)) for name, key in keys.items()}
    for _ in range(MAX_PASSES):
        for name, goal, item in goals:
            scenario = _reach(scenario, name, goal, item, source)
        if all(abs(TARGETS[name].value(scenario) - goal) < 1e-9 for name, goal, _ in goals):
            break
    else:
        raise ScenarioError(f"{source} with --set {', '.join(items)}: these targets cannot all be reached together")
    data = scenario.model_dump()
    return scenario, [Solved(name, TARGETS[name].words, goal, keys[name], before[name], float(_get(data, keys[name])))
                      for name, goal, _ in goals]


MAX_PASSES = 50


def _parse_targets(items: list[str]) -> list[tuple[str, float, str]]:
    goals = []
    for item in items:
        key, value = parse_override(item)
        name = key.removeprefix(PREFIX)
        if name not in TARGETS:
            raise ScenarioError(f"--set {item}: unknown target {key!r}; targets: "
                                + ", ".join(f"{PREFIX}{n} ({t.words})" for n, t in TARGETS.items()))
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScenarioError(f"--set {item}: {key} = {value!r}: expected a number")
        goals.append((name, float(value), item))
    return goals


def _reach(scenario: Scenario, name: str, goal: float, item: str, source: str) -> Scenario:
    """The scenario with the target's input solved so its quantity equals goal (the rest as given)."""
    target = TARGETS[name]
    key = target.moves(scenario)
    lo, hi = _bounds(scenario, key)

    def moved(x: float) -> Scenario:
        return scenario.with_updates({key: float(x)})

    def reachable(x: float) -> float | None:
        try:
            return target.value(moved(x))
        except ScenarioError:
            return None

    ends = [(x, v) for x, v in ((x, reachable(x)) for x in (lo, hi)) if v is not None]
    values = sorted(v for _, v in ends)
    if len(ends) < 2 or not values[0] - 1e-12 <= goal <= values[1] + 1e-12:
        span = f"{values[0]:.4g} to {values[1]:.4g}" if len(values) == 2 else "nothing valid"
        raise ScenarioError(f"{source} with --set {item}: {target.words} = {goal:g} cannot be reached by moving {key} "
                            f"within its allowed range [{lo:g}, {hi:g}] (reachable: {span}), the rest as given")
    (x0, v0), (x1, v1) = ends
    if abs(v1 - v0) < 1e-15:
        return moved(x0)
    goal = min(max(goal, values[0]), values[1])
    return moved(optimize.brentq(lambda x: target.value(moved(x)) - goal, x0, x1, xtol=1e-14, rtol=1e-12,
                                 maxiter=200))


def _get(data: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        data = data[part]
    return data


def _bounds(scenario: Scenario, key: str) -> tuple[float, float]:
    """The input's allowed interval from the schema, capped where other values make the rest invalid."""
    from sim.scenario.schema import _field_at

    field = _field_at(tuple(key.split(".")))
    lo, hi = 0.0, 1.0
    for meta in field.metadata:
        lo = getattr(meta, "ge", None) if getattr(meta, "ge", None) is not None else lo
        lo = getattr(meta, "gt", None) * (1 + 1e-9) + 1e-12 if getattr(meta, "gt", None) is not None else lo
        hi = getattr(meta, "le", None) if getattr(meta, "le", None) is not None else hi
        hi = getattr(meta, "lt", None) * (1 - 1e-9) if getattr(meta, "lt", None) is not None else hi
    if key == "response.p_cr":        # CR + CRi + early death must stay <= 1
        hi = min(hi, 1.0 - scenario.response.p_cri - scenario.response.p_early_death)
    return float(lo), float(hi)


def load_with_targets(path: str, overrides: list[str] | tuple[str, ...]) -> tuple[Scenario, list[Solved]]:
    """load_scenario with ordinary --set overrides applied first, then each target reached in turn."""
    from sim.scenario.schema import load_scenario

    ordinary, targets = split_targets(overrides)
    return apply_targets(load_scenario(path, ordinary), targets, str(path))
