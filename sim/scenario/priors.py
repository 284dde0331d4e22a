"""Uncertain inputs: distributions on a scenario's numbers, read from the file or --set, checked against each
key's allowed range, replaced by their means for the point scenario.

Any number outside [analysis] and [monitoring] (design choices) may be given a distribution instead:

    key = { beta = [a, b] }               Beta(a, b)
    key = { beta_mean = m, n = N }        Beta(m N, (1 - m) N): what a study of N patients would say
    key = { gamma_mean = m, cv = c }      Gamma with mean m and coefficient of variation c
    key = { lognormal = [median, sdlog] } e.g. a hazard ratio from its confidence interval
    key = { uniform = [lo, hi] }
    key = { normal = [mean, sd] }         truncated to the key's allowed range

and exclusive probabilities a joint Dirichlet, by counts, on their section (`rest`: the remainder, e.g.
refractory; without it the keys sum to 1, as the donor mix must):

    [response]
    dirichlet = { p_cr = 78, p_cri = 6, p_early_death = 1, rest = 15 }

`split_priors` runs inside `load_scenario` before validation: it takes every distribution out of the
merged TOML dict into a `Priors` object and puts its mean in its place, so the point scenario validates
(and simulates) exactly as a scenario written with those numbers. A distribution that puts more than
OUTSIDE_TOLERANCE of its probability outside the key's allowed range (the schema field's ge/gt/le/lt) is
refused, naming the key; draws are inverse-CDF transforms truncated to that range, so every draw stays
in it by construction (a normal is truncated by definition). Rules that tie several keys together (CR +
CRi + early death <= 1, relapse + NRM < 1, ...) are checked on every draw by the study before anything
runs (sim/study/assurance.py). This module does no random drawing: it maps uniforms to values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special

from sim.scenario.schema import Scenario, ScenarioError, _field_at, _origin, field_range

# A distribution may leave at most this much probability outside the allowed range (truncated away).
OUTSIDE_TOLERANCE = 1e-6   # e.g. a gamma on screening rates leaves ~4e-9 below the 0.001 floor
DIRICHLET = "dirichlet"
REST = "rest"
NONE = "none"               # section.dirichlet = "none" removes a Dirichlet a parent file gave
DESIGN_SECTIONS = ("analysis", "monitoring")
FAMILIES = ("beta", "beta_mean", "gamma_mean", "lognormal", "uniform", "normal")
_COMPANION = {"beta_mean": "n", "gamma_mean": "cv"}


@dataclass(frozen=True)
class Marginal:
    """One input's distribution: family (beta, gamma, lognormal, uniform, normal) with canonical parameters,
    truncated to [lo, hi], the key's allowed range (open ends kept open by `open_lo` / `open_hi`)."""

    key: str
    family: str
    params: tuple[float, ...]    # beta (a, b); gamma (shape, scale); lognormal (median, sdlog); uniform (lo, hi);
    lo: float                    # normal (mean, sd)
    hi: float
    open_lo: bool = False
    open_hi: bool = False
    written: str = ""            # as the scenario wrote it, for messages and reports

    @property
    def degenerate(self) -> bool:
        """A point mass (sd 0, uniform of width 0): every draw is the same number."""
        f, p = self.family, self.params
        return (f in ("normal", "lognormal") and p[1] == 0) or (f == "uniform" and p[0] == p[1])

    def cdf(self, x: np.ndarray | float) -> np.ndarray:
        """Untruncated distribution function."""
        x = np.asarray(x, dtype=float)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            return self._cdf(x)

    def _cdf(self, x: np.ndarray) -> np.ndarray:
        f, p = self.family, self.params
        if f == "beta":
            return special.betainc(p[0], p[1], np.clip(x, 0.0, 1.0))
        if f == "gamma":
            return special.gammainc(p[0], np.maximum(x, 0.0) / p[1])
        if f == "lognormal":
            return special.ndtr(np.log(np.maximum(x, 0.0) / p[0]) / p[1]) if p[1] > 0 else (x >= p[0]) * 1.0
        if f == "uniform":
            return np.clip((x - p[0]) / (p[1] - p[0]), 0.0, 1.0) if p[1] > p[0] else (x >= p[0]) * 1.0
        return special.ndtr((x - p[0]) / p[1]) if p[1] > 0 else (x >= p[0]) * 1.0

    def _ppf(self, u: np.ndarray) -> np.ndarray:
        f, p = self.family, self.params
        if f == "beta":
            return special.betaincinv(p[0], p[1], u)
        if f == "gamma":
            return p[1] * special.gammaincinv(p[0], u)
        if f == "lognormal":
            return p[0] * np.exp(p[1] * special.ndtri(u))
        if f == "uniform":
            return p[0] + u * (p[1] - p[0])
        return p[0] + p[1] * special.ndtri(u)

    def ppf(self, u: np.ndarray | float) -> np.ndarray:
        """Quantile of the distribution truncated to [lo, hi], strictly inside an open end."""
        u = np.asarray(u, dtype=float)
        if self.degenerate:
            return np.full(u.shape, self.params[0])
        below, above = float(self.cdf(self.lo)), float(self.cdf(self.hi))
        p = below + u * (above - below)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            x = self._ppf(p)
        # scipy's inverse functions can fail (NaN) within about 1e-300 of 0 or 1: the quantile is then the range end.
        x = np.where(np.isnan(x), np.where(p < 0.5, self.lo, self.hi), x)
        lo = np.nextafter(self.lo, np.inf) if self.open_lo else self.lo
        hi = np.nextafter(self.hi, -np.inf) if self.open_hi else self.hi
        return np.clip(x, lo, hi)

    def mean(self) -> float:
        """The value the point scenario uses: the mean (of the truncated normal; the others lose at most
        OUTSIDE_TOLERANCE of their probability to truncation, which moves their mean by less)."""
        f, p = self.family, self.params
        if f == "beta":
            return p[0] / (p[0] + p[1])
        if f == "gamma":
            return p[0] * p[1]
        if f == "lognormal":
            return p[0] * math.exp(p[1] ** 2 / 2)
        if f == "uniform":
            return (p[0] + p[1]) / 2
        if p[1] == 0:
            return p[0]
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):   # an sd near 0 puts the ends at inf
            a, b = np.float64(self.lo - p[0]) / p[1], np.float64(self.hi - p[0]) / p[1]
            mass = special.ndtr(b) - special.ndtr(a)
            shift = p[1] * (_phi(a) - _phi(b)) / mass
        return float(np.clip(p[0] + (shift if np.isfinite(shift) else 0.0), self.lo, self.hi))

    def pdf(self, x: np.ndarray) -> np.ndarray:
        """Density of the truncated distribution (0 outside [lo, hi]), for figures."""
        x = np.asarray(x, dtype=float)
        f, p = self.family, self.params
        with np.errstate(divide="ignore", invalid="ignore"):
            if f == "beta":
                d = np.exp((p[0] - 1) * np.log(x) + (p[1] - 1) * np.log1p(-x) - special.betaln(p[0], p[1]))
            elif f == "gamma":
                d = np.exp((p[0] - 1) * np.log(x) - x / p[1] - special.gammaln(p[0]) - p[0] * np.log(p[1]))
            elif f == "lognormal":
                d = _phi(np.log(x / p[0]) / p[1]) / (x * p[1])
            elif f == "uniform":
                d = np.where((x >= p[0]) & (x <= p[1]), 1.0 / (p[1] - p[0]), 0.0)
            else:
                d = _phi((x - p[0]) / p[1]) / p[1]
        mass = float(self.cdf(self.hi) - self.cdf(self.lo)) if f != "uniform" else 1.0
        return np.where((x >= self.lo) & (x <= self.hi) & np.isfinite(d), d / mass, 0.0)

    def interval(self, level: float = 0.9) -> tuple[float, float]:
        """Central interval holding `level` of the probability."""
        lo, hi = self.ppf(np.array([(1 - level) / 2, (1 + level) / 2]))
        return float(lo), float(hi)

    def outside(self) -> float:
        """Probability the untruncated distribution puts outside [lo, hi] (0 for the truncated normal)."""
        if self.family == "normal" or self.degenerate:
            return 0.0
        return float(self.cdf(self.lo) + 1.0 - self.cdf(self.hi))


def _phi(z: np.ndarray | float) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.exp(-0.5 * np.asarray(z) ** 2) / math.sqrt(2 * math.pi)


@dataclass(frozen=True)
class Dirichlet:
    """Exclusive probabilities drawn together: Dirichlet(counts..., rest) over `keys` and the remainder."""

    section: str
    keys: tuple[str, ...]        # dotted keys
    counts: tuple[float, ...]
    rest: float = 0.0            # count of the remainder (0: the keys sum to 1)
    written: str = ""

    @property
    def total(self) -> float:
        return sum(self.counts) + self.rest

    def marginal(self, key: str) -> Marginal:
        """The Beta marginal of one component (for means, intervals and densities)."""
        c = self.counts[self.keys.index(key)]
        if c == self.total:   # a single component and no rest: always 1
            return Marginal(key, "uniform", (1.0, 1.0), 0.0, 1.0, written=self.written)
        return Marginal(key, "beta", (c, self.total - c), 0.0, 1.0, written=self.written)

    @property
    def stream_name(self) -> str:
        """The name of the stream its uniforms come from (one stream per Dirichlet)."""
        return f"{self.section}.{DIRICHLET}"

    @property
    def variates(self) -> int:
        """Uniforms per draw: one per key, and one for the remainder when it has a count."""
        return len(self.keys) + (self.rest > 0)

    def values(self, u: np.ndarray) -> dict[str, np.ndarray]:
        """Components from uniforms u (draws x variates): independent Gamma(count, 1) variates by inverse CDF
        (a uniform of exactly 0 nudged inside, probability 2^-53), normalised."""
        counts = np.array([*self.counts, *([self.rest] if self.rest > 0 else [])])
        gammas = special.gammaincinv(counts[None, :], np.maximum(np.atleast_2d(u), np.finfo(float).tiny))
        shares = gammas / gammas.sum(axis=1, keepdims=True)
        return {key: shares[:, k] for k, key in enumerate(self.keys)}


@dataclass(frozen=True)
class Priors:
    """Every uncertain input of a scenario: independent marginals and Dirichlet groups."""

    marginals: tuple[Marginal, ...] = ()
    groups: tuple[Dirichlet, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.marginals or self.groups)

    @property
    def keys(self) -> tuple[str, ...]:
        """Every dotted key with a distribution, in the order the scenario lists them."""
        return tuple(m.key for m in self.marginals) + tuple(k for g in self.groups for k in g.keys)

    def marginal(self, key: str) -> Marginal:
        """The (marginal) distribution of one key."""
        for m in self.marginals:
            if m.key == key:
                return m
        for g in self.groups:
            if key in g.keys:
                return g.marginal(key)
        raise KeyError(key)

    def means(self) -> dict[str, float]:
        """The point value of every uncertain key (its mean)."""
        return {key: self.marginal(key).mean() for key in self.keys}

    def streams(self) -> dict[str, int]:
        """Stream name -> uniforms per draw: one stream per distribution (a marginal's key, a Dirichlet's
        section.dirichlet), so adding or removing one leaves the others' draws unchanged."""
        return {m.key: 1 for m in self.marginals} | {g.stream_name: g.variates for g in self.groups}

    def values(self, uniforms: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Draws of every uncertain key from uniforms keyed like streams() (draws, or draws x variates)."""
        out = {m.key: m.ppf(np.asarray(uniforms[m.key]).reshape(-1)) for m in self.marginals}
        for g in self.groups:
            out |= g.values(np.asarray(uniforms[g.stream_name]).reshape(-1, g.variates))
        return out

    def spec(self) -> list[dict[str, Any]]:
        """A plain description (for study identities and manifests)."""
        return ([{"key": m.key, "family": m.family, "params": list(m.params), "range": [m.lo, m.hi],
                  "open": [m.open_lo, m.open_hi]} for m in self.marginals]
                + [{"dirichlet": g.section, "keys": list(g.keys), "counts": list(g.counts), "rest": g.rest}
                   for g in self.groups])

    def describe(self) -> list[str]:
        """One line per uncertain key: as written, mean and 90% interval."""
        lines = []
        for key in self.keys:
            m = self.marginal(key)
            lo, hi = m.interval()
            lines.append(f"{key} = {m.written}: mean {m.mean():.4g}, 90% interval {lo:.4g} to {hi:.4g}")
        return lines


# --------------------------------------------------------------------------- reading distributions


def split_priors(data: dict[str, Any], origins: dict[str, str], source: str) -> tuple[dict[str, Any], Priors]:
    """The merged scenario dict with every distribution replaced by its mean, and the distributions.

    ScenarioError (naming the file or --set override, the key and what is allowed) for a malformed
    distribution, one on a key that cannot take one, or one whose probability leaves the allowed range.
    """
    data = _copy(data)
    marginals: list[Marginal] = []
    groups: list[Dirichlet] = []
    _walk(data, Scenario, (), origins, source, marginals, groups)
    priors = Priors(tuple(marginals), tuple(groups))
    for key, value in priors.means().items():
        node = data
        *sections, leaf = key.split(".")
        for part in sections:
            node = node[part]
        node[leaf] = value
    return data, priors


def _copy(data: Any) -> Any:
    return {k: _copy(v) for k, v in data.items()} if isinstance(data, dict) else data


def _walk(node: dict[str, Any], model: Any, path: tuple[str, ...], origins: dict[str, str], source: str,
          marginals: list[Marginal], groups: list[Dirichlet]) -> None:
    fields = getattr(model, "model_fields", {})
    group_keys: set[str] = set()
    if node.get(DIRICHLET) == NONE and DIRICHLET not in fields:   # --set section.dirichlet=none: drawn no more
        node.pop(DIRICHLET)
    if DIRICHLET in node and DIRICHLET not in fields:
        group = _dirichlet(node.pop(DIRICHLET), path, origins, source)
        groups.append(group)
        group_keys = {key.split(".")[-1] for key in group.keys}
    for name, value in list(node.items()):
        key = ".".join((*path, name))
        field = fields.get(name)
        sub = getattr(field, "annotation", None)
        if isinstance(value, dict) and isinstance(sub, type) and hasattr(sub, "model_fields"):
            _walk(value, sub, (*path, name), origins, source, marginals, groups)
        elif name in group_keys:
            if isinstance(value, dict):
                raise ScenarioError(f"{_origin(key, origins, source)}: {key} has a distribution and is also drawn by "
                                    f"{'.'.join((*path, DIRICHLET))}; give it one or the other")
            if key in origins:
                raise ScenarioError(f"{origins[key]}: {key} is drawn by {'.'.join((*path, DIRICHLET))}; set that "
                                    "Dirichlet's counts instead")
        elif isinstance(value, dict) and field is not None:
            marginals.append(_marginal(key, value, origins, source))


def _where(key: str, origins: dict[str, str], source: str) -> str:
    return _origin(key, origins, source)


def _numeric_field(key: str, origins: dict[str, str], source: str, written: str) -> Any:
    """The schema field of a key that may take a distribution (a float outside the design sections)."""
    where = _where(key, origins, source)
    field = _field_at(tuple(key.split(".")))
    if field is None:
        raise ScenarioError(f"{where}: {key}: unknown key (typo?); see scenarios/README.md")
    if key.split(".")[0] in DESIGN_SECTIONS:
        raise ScenarioError(f"{where}: {key} = {written}: [{key.split('.')[0]}] holds design choices, which take a "
                            "number, not a distribution")
    if field.annotation is not float:
        raise ScenarioError(f"{where}: {key} = {written}: only numbers measured on a continuous scale take a "
                            f"distribution; allowed: {field_range(field)}")
    return field


def _bounds(field: Any) -> tuple[float, float, bool, bool]:
    lo, hi, open_lo, open_hi = -math.inf, math.inf, False, False
    for meta in field.metadata:
        if getattr(meta, "ge", None) is not None:
            lo = float(meta.ge)
        if getattr(meta, "gt", None) is not None:
            lo, open_lo = float(meta.gt), True
        if getattr(meta, "le", None) is not None:
            hi = float(meta.le)
        if getattr(meta, "lt", None) is not None:
            hi, open_hi = float(meta.lt), True
    return lo, hi, open_lo, open_hi


def _written(value: dict[str, Any]) -> str:
    def show(v: Any) -> str:
        if isinstance(v, list):
            return "[" + ", ".join(show(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {show(x)}" for k, x in v.items()) + " }"
        return repr(v) if isinstance(v, str) else f"{v:g}" if isinstance(v, float) else str(v)

    return show(value)


def _numbers(value: Any, count: int) -> tuple[float, ...] | None:
    """`count` finite numbers from a TOML number (count 1) or array, or None."""
    items = value if isinstance(value, list) else [value]
    if len(items) != count or any(isinstance(x, bool) or not isinstance(x, int | float) for x in items):
        return None
    numbers = tuple(float(x) for x in items)
    return numbers if all(math.isfinite(x) for x in numbers) else None


def _marginal(key: str, value: dict[str, Any], origins: dict[str, str], source: str) -> Marginal:
    written = _written(value)
    field = _numeric_field(key, origins, source, written)
    lo, hi, open_lo, open_hi = _bounds(field)
    where = f"{_where(key, origins, source)}: {key} = {written}"
    family, params = _family(value, where)
    marginal = Marginal(key, family, params, lo, hi, open_lo, open_hi, written)
    allowed = f"allowed: {field_range(field)}"
    if family == "normal" and not lo <= params[0] <= hi:
        raise ScenarioError(f"{where}: the mean {params[0]:g} lies outside the allowed range ({allowed})")
    if family == "uniform" and not (lo <= params[0] and params[1] <= hi):
        raise ScenarioError(f"{where}: the interval leaves the allowed range ({allowed})")
    outside = marginal.outside()
    if outside > OUTSIDE_TOLERANCE:
        raise ScenarioError(f"{where}: puts {outside:.2g} of its probability outside the allowed range ({allowed}); "
                            "choose a distribution that stays inside it (a normal is truncated to it)")
    if marginal.degenerate and not (lo <= params[0] <= hi) or (marginal.degenerate and (
            (open_lo and params[0] == lo) or (open_hi and params[0] == hi))):
        raise ScenarioError(f"{where}: the value {params[0]:g} is outside the allowed range ({allowed})")
    return marginal


def _family(value: dict[str, Any], where: str) -> tuple[str, tuple[float, ...]]:
    """(family, canonical parameters) of a distribution table; ScenarioError saying what is expected."""
    named = [k for k in value if k in FAMILIES]
    expected = ("expected one of { beta = [a, b] }, { beta_mean = m, n = N }, { gamma_mean = m, cv = c }, "
                "{ lognormal = [median, sdlog] }, { uniform = [lo, hi] }, { normal = [mean, sd] }")
    if len(named) != 1:
        raise ScenarioError(f"{where}: {expected}")
    name = named[0]
    companion = _COMPANION.get(name)
    extra = set(value) - {name, *([companion] if companion else [])}
    if extra or (companion and companion not in value):
        raise ScenarioError(f"{where}: {expected}")
    if name in ("beta", "lognormal", "uniform", "normal"):
        pair = _numbers(value[name], 2)
        ok = pair is not None and {
            "beta": lambda p: p[0] > 0 and p[1] > 0,
            "lognormal": lambda p: p[0] > 0 and p[1] >= 0,
            "uniform": lambda p: p[0] <= p[1],
            "normal": lambda p: p[1] >= 0,
        }[name](pair)
        if not ok:
            rule = {"beta": "a > 0 and b > 0", "lognormal": "median > 0 and sdlog >= 0", "uniform": "lo <= hi",
                    "normal": "sd >= 0"}[name]
            raise ScenarioError(f"{where}: {name} takes two numbers with {rule}")
        return name, pair
    centre, spread = _numbers(value[name], 1), _numbers(value[companion], 1)
    if name == "beta_mean":
        if centre is None or spread is None or not (0 < centre[0] < 1 and spread[0] > 0):
            raise ScenarioError(f"{where}: beta_mean takes a mean strictly between 0 and 1 and n > 0 (the number of "
                                "patients behind it)")
        return "beta", (centre[0] * spread[0], (1 - centre[0]) * spread[0])
    if centre is None or spread is None or not (centre[0] > 0 and spread[0] > 0):
        raise ScenarioError(f"{where}: gamma_mean takes a mean > 0 and a coefficient of variation cv > 0")
    return "gamma", (1 / spread[0] ** 2, centre[0] * spread[0] ** 2)


def _dirichlet(value: Any, path: tuple[str, ...], origins: dict[str, str], source: str) -> Dirichlet:
    section = ".".join(path)
    key = f"{section}.{DIRICHLET}" if section else DIRICHLET
    where = _where(key, origins, source)
    written = _written(value) if isinstance(value, dict) else repr(value)
    usage = (f"{key} = {written}: expected a table of counts, e.g. {{ p_cr = 78, p_cri = 6, p_early_death = 1, "
             f"rest = 15 }} (rest: the remainder; without it the keys sum to 1)")
    if not path or not isinstance(value, dict) or not value:
        raise ScenarioError(f"{where}: {usage}")
    keys, counts, rest = [], [], 0.0
    for name, count in value.items():
        number = _numbers(count, 1)
        if number is None or not number[0] > 0:
            raise ScenarioError(f"{where}: {usage}; {name} = {count!r} must be a count > 0")
        if name == REST:
            rest = number[0]
            continue
        full = f"{section}.{name}"
        if _field_at(tuple(full.split("."))) is None:
            raise ScenarioError(f"{where}: {key} = {written}: {name} is not a key of [{section}]")
        field = _numeric_field(full, origins, source, written)
        if _bounds(field)[:2] != (0.0, 1.0):
            raise ScenarioError(f"{where}: {key} = {written}: {full} is not a probability (allowed: "
                                f"{field_range(field)}); a Dirichlet draws probabilities")
        keys.append(full)
        counts.append(number[0])
    if not keys:
        raise ScenarioError(f"{where}: {usage}")
    return Dirichlet(section, tuple(keys), tuple(counts), rest, written)


# --------------------------------------------------------------------------- the point scenario and its priors


def load_uncertain(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> tuple[Scenario, Priors]:
    """The point scenario (every distribution at its mean, validated) and the distributions."""
    from sim.scenario.schema import _validate, scenario_data

    data, origins = scenario_data(path, overrides)
    point, priors = split_priors(data, origins, str(path))
    return _validate(point, origins, str(path)), priors


def drawn_data(point: dict[str, Any], values: dict[str, float]) -> dict[str, Any]:
    """A copy of a scenario dict (model_dump) with dotted keys set to drawn values."""
    data = _copy(point)
    for key, value in values.items():
        node = data
        *sections, leaf = key.split(".")
        for part in sections:
            node = node[part]
        node[leaf] = float(value)
    return data


REFERENCE = """
## Uncertain inputs (distributions)

Any number outside `[analysis]` and `[monitoring]` (design choices) can be given a distribution instead of
a value, in the file or with `--set` (quote it for the shell), for `run_sim.py assurance`: the probability
that the trial succeeds, averaged over what is known about its inputs. Every other command runs the
scenario at the distributions' means (`describe` prints each mean and 90% interval).

| written | distribution | mean |
|---|---|---|
| `{ beta = [a, b] }` | Beta(a, b) | a / (a + b) |
| `{ beta_mean = m, n = N }` | Beta(m N, (1 - m) N): what a study of N patients with rate m would say | m |
| `{ gamma_mean = m, cv = c }` | Gamma with mean m and coefficient of variation c (shape 1/c^2) | m |
| `{ lognormal = [median, sdlog] }` | log-normal, e.g. a hazard ratio with 95% CI (L, U): sdlog = ln(U / L) / 3.92 |\
  median exp(sdlog^2 / 2) |
| `{ uniform = [lo, hi] }` | uniform | (lo + hi) / 2 |
| `{ normal = [mean, sd] }` | normal truncated to the key's allowed range | mean of the truncated normal |

e.g. `post_transplant.relapse_incidence = { beta = [17, 83] }`, or
`--set 'accrual.screened_per_site_month={ gamma_mean = 0.222, cv = 0.3 }'`.

Exclusive probabilities that must sum to at most 1 are drawn together by a Dirichlet distribution given by
counts on their section, `rest` being the remainder (refractory, for example); without `rest` the keys sum
to exactly 1 (the donor mix):

```toml
[response]
dirichlet = { p_cr = 78, p_cri = 6, p_early_death = 1, rest = 15 }   # 78 of 100 in CR, ...
[donor]
dirichlet = { p_haplo = 60, p_sibling = 30, p_unrelated = 10 }
```

Each component's marginal is Beta(count, total - count). A key drawn by a Dirichlet takes no distribution
of its own, and `--set` changes the Dirichlet's counts, not one of its keys; `--set response.dirichlet=none`
removes a Dirichlet that a scenario file gives (its keys then take their numbers, e.g. those of base.toml). A
key's own distribution is removed by setting a number, e.g. `--set post_transplant.relapse_incidence=0.17`.

Rules:

- A distribution that puts more than 1e-6 of its probability outside the key's allowed range is refused
  (exit 2, naming the key); draws are truncated to the range, so every draw stays in it.
- Rules that tie keys together (CR + CRi + early death <= 1, relapse + NRM incidence < 1, acute GVHD III-IV
  <= II-IV, ...) are checked on every replicate's draw before anything runs; a draw that breaks one stops
  the study with the replicate, the values drawn and the rule (exit 2): use a Dirichlet for exclusive
  probabilities, or narrower distributions. Draws are never silently rejected, so the prior is exactly
  the one written.
- A point mass (`{ normal = [m, 0] }`, `{ uniform = [m, m] }`) is allowed and gives exactly the results of
  the number m.
"""
