"""What-ifs in the committee's terms: a derived quantity set to a target by solving for the inputs it moves.

A committee says "75% MRD-negative before HSCT" or "70% reach transplant", while a scenario is
parametrised by negativity after induction and conversion, or by each stage's risk. `--set
target.NAME=VALUE` (and the explorer's controls) name such a quantity; the input it moves, stated
here, in the reference and in every report, is solved so the quantity equals the value, everything
else as given (in closed form where there is one, by root finding otherwise). A value outside what
that input can reach is refused with the reachable range. Several targets are reached together.
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
MAX_PASSES = 50


@dataclass(frozen=True)
class Target:
    """A derived quantity, in words; the inputs that move (as text); its value; the inputs that reach a goal."""

    words: str
    moves: Callable[[Scenario], str]
    value: Callable[[Scenario], float]
    solve: Callable[[Scenario, float], dict[str, float]]   # goal -> {dotted key: value}; ScenarioError if unreachable


def _unreachable(words: str, goal: float, moves: str, lo: float, hi: float) -> ScenarioError:
    return ScenarioError(f"{words} = {goal:g} cannot be reached by moving {moves} (reachable: {lo:.4g} to {hi:.4g}), "
                         "the rest as given")


def _assay(s: Scenario) -> str:
    return f"mrd.{s.mrd.assay.lower()}"


def _solve_mrd(s: Scenario, goal: float) -> dict[str, float]:
    """MRD-negative before HSCT = p1 (1 - lose) + (1 - p1) convert, linear in p1 = negativity after induction."""
    a = s.assay
    slope = 1.0 - a.p_lose_negativity - a.p_convert_to_negative
    lo, hi = sorted((a.p_convert_to_negative, 1.0 - a.p_lose_negativity))
    key = f"{_assay(s)}.p_negative_after_induction"
    if slope == 0 or not lo - 1e-12 <= goal <= hi + 1e-12:
        raise _unreachable(TARGETS["mrd_negative_before_hsct"].words, goal, key, lo, hi)
    return {key: min(max((goal - a.p_convert_to_negative) / slope, 0.0), 1.0)}


def _solve_crc(s: Scenario, goal: float) -> dict[str, float]:
    r = s.response
    hi = 1.0 - r.p_early_death
    if not 0.0 <= goal <= hi + 1e-12:
        raise _unreachable(TARGETS["crc"].words, goal, "response.p_cr and response.p_cri", 0.0, hi)
    total = r.p_cr + r.p_cri
    share = r.p_cr / total if total > 0 else 1.0
    return {"response.p_cr": goal * share, "response.p_cri": goal * (1.0 - share)}


def _enrolled_per_month(s: Scenario) -> float:
    a = s.accrual
    return a.n_sites * a.screened_per_site_month * (1.0 - a.screen_fail_prob)


def _solve_enrollment(s: Scenario, goal: float) -> dict[str, float]:
    a = s.accrual
    if not goal > 0:
        raise _unreachable(TARGETS["enrolled_per_month"].words, goal, "accrual.screened_per_site_month", 0.0, 1e9)
    return {"accrual.screened_per_site_month": goal / (a.n_sites * (1.0 - a.screen_fail_prob))}


def _solve_reach(s: Scenario, goal: float) -> dict[str, float]:
    """P(reach HSCT) falls with the no-donor probability: root finding over [0, 1]."""
    def reach(x: float) -> float:
        return p_reach_hsct(s.with_updates({"donor.p_no_donor": x}))

    hi, lo = reach(0.0), reach(1.0)
    if not lo - 1e-12 <= goal <= hi + 1e-12:
        raise _unreachable(TARGETS["p_reach_hsct"].words, goal, "donor.p_no_donor", lo, hi)
    if hi - lo < 1e-15:
        return {"donor.p_no_donor": s.donor.p_no_donor}
    goal = min(max(goal, lo), hi)
    return {"donor.p_no_donor": optimize.brentq(lambda x: reach(x) - goal, 0.0, 1.0, xtol=1e-14, rtol=1e-12)}


TARGETS: dict[str, Target] = {
    "mrd_negative_before_hsct": Target(
        "MRD-negative before HSCT, among remitters",
        lambda s: f"{_assay(s)}.p_negative_after_induction (conversion and loss of negativity kept)",
        mrd_negative_before_hsct, _solve_mrd),
    "p_reach_hsct": Target("P(an enrolled patient is transplanted)", lambda s: "donor.p_no_donor", p_reach_hsct,
                           _solve_reach),
    "crc": Target("CRc (CR + CRi) among patients alive after VIP",
                  lambda s: "response.p_cr and response.p_cri, keeping their proportion",
                  lambda s: s.response.p_cr + s.response.p_cri, _solve_crc),
    "enrolled_per_month": Target("patients enrolled per month once every site is open",
                                 lambda s: "accrual.screened_per_site_month (sites and screen failures kept)",
                                 _enrolled_per_month, _solve_enrollment),
}


@dataclass(frozen=True)
class Solved:
    """A target reached: the quantity, its value, and the inputs moved with their old and new values."""

    name: str
    words: str
    target: float
    changes: tuple[tuple[str, float, float], ...]

    def text(self) -> str:
        moved = ", ".join(f"{key} moved from {before:g} to {after:.6g}" for key, before, after in self.changes)
        return f"{self.words} = {self.target:g} (--set {PREFIX}{self.name}): {moved}"


def split_targets(overrides: list[str] | tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(ordinary overrides, target overrides) from --set items."""
    targets = [o for o in overrides if o.strip().startswith(PREFIX)]
    return [o for o in overrides if o not in targets], targets


def reach(scenario: Scenario, name: str, goal: float) -> Scenario:
    """The scenario with one target reached (ScenarioError naming the reachable range if it cannot be)."""
    return scenario.with_updates(TARGETS[name].solve(scenario, goal))


def apply_targets(scenario: Scenario, items: list[str], source: str) -> tuple[Scenario, list[Solved]]:
    """The scenario with every target reached at once, each by moving its own inputs.

    Targets interact (more MRD negativity also raises P(reach HSCT)), so they are solved in turn until
    all hold together (block coordinate root finding; each input moves one quantity monotonically).
    """
    goals = _parse_targets(items)
    if not goals:
        return scenario, []
    before = scenario.model_dump()
    for _ in range(MAX_PASSES):
        for name, goal, item in goals:
            try:
                scenario = reach(scenario, name, goal)
            except ScenarioError as exc:
                raise ScenarioError(f"{source} with --set {item}: {exc}") from None
        if all(abs(TARGETS[name].value(scenario) - goal) < 1e-9 for name, goal, _ in goals):
            break
    else:
        raise ScenarioError(f"{source} with --set {', '.join(items)}: these targets cannot all be reached together")
    after = scenario.model_dump()
    solved = []
    for name, goal, _ in goals:
        keys = TARGETS[name].solve(scenario, goal)
        solved.append(Solved(name, TARGETS[name].words, goal,
                             tuple((key, float(_get(before, key)), float(_get(after, key))) for key in keys)))
    return scenario, solved


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


def _get(data: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        data = data[part]
    return data


def load_with_targets(path: str, overrides: list[str] | tuple[str, ...]) -> tuple[Scenario, list[Solved]]:
    """load_scenario with ordinary --set overrides applied first, then every target reached."""
    from sim.scenario.schema import load_scenario

    ordinary, targets = split_targets(overrides)
    return apply_targets(load_scenario(path, ordinary), targets, str(path))
