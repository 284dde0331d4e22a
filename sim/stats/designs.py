"""Exact single-arm monitoring designs: Simon two-stage designs and Bayesian stopping boundaries.

Simon two-stage (Simon, Controlled Clinical Trials 1989;10:1-10): enroll n1 patients, stop for
futility if at most r1 respond; otherwise enroll n - n1 more and call the treatment promising (reject
H0: p <= p0) if more than r respond among all n. Optimal and minimax designs come from exact
enumeration of every (r1, n1, r, n) with n <= nmax; alpha and power are exact inequalities with no
tolerance above the target (alpha <= target, power >= target), as in Simon 1989 and clinfun ph2simon.

Bayesian continuous monitoring of an event rate such as toxicity (Thall, Simon & Estey, Stat Med
1995;14:357-379): beta(a, b) prior; after k evaluable patients with d events, stop when
P(rate > threshold | d, k) > cutoff. The rule is a table "stop if at least d_k events among the first
k evaluable", either derived from the prior or given by the user; its operating characteristics when
outcomes are observed immediately come from an exact forward recursion over (k, d) with absorption at
the boundary. Everything here is pure numpy/scipy and deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

SIMON_NMAX_LIMIT = 300  # the enumeration grows like nmax^4: about 0.4 s for nmax 100, 16 s for 300


@dataclass(frozen=True)
class TwoStageOC:
    """Exact operating characteristics of a two-stage design at true response rate(s) `p`."""

    p: np.ndarray
    pet: np.ndarray  # probability of early termination after stage 1
    en: np.ndarray  # expected number enrolled
    p_reject: np.ndarray  # probability of calling the treatment promising (rejecting H0)


@dataclass(frozen=True)
class SimonDesign:
    """A two-stage design r1/n1, r/n and its exact characteristics under p0 and p1."""

    kind: str  # "optimal" or "minimax"
    r1: int
    n1: int
    r: int
    n: int
    p0: float
    p1: float
    en0: float  # expected number enrolled if p = p0
    pet0: float  # probability of stopping after stage 1 if p = p0
    alpha: float  # exact P(reject H0 | p0)
    power: float  # exact P(reject H0 | p1)
    en1: float
    pet1: float


def two_stage_oc(r1: int, n1: int, r: int, n: int, p: float | Iterable[float]) -> TwoStageOC:
    """Exact PET, expected size and P(reject) of the design 'stop if <= r1 of n1; reject if > r of n'."""
    from scipy import stats  # imported here: loading scipy.stats costs 0.3 s, which `describe` need not pay

    _check_two_stage(r1, n1, r, n)
    p = np.atleast_1d(np.asarray(p, dtype=float))
    n2 = n - n1
    x1 = np.arange(r1 + 1, n1 + 1)
    pet = stats.binom.cdf(r1, n1, p)
    # Continue with x1 > r1 responses; reject if stage 2 brings more than r - x1.
    p_reject = (stats.binom.pmf(x1[:, None], n1, p) * stats.binom.sf(r - x1[:, None], n2, p)).sum(axis=0)
    return TwoStageOC(p=p, pet=pet, en=n1 + (1.0 - pet) * n2, p_reject=p_reject)


def simon_designs(p0: float, p1: float, alpha: float, power: float, nmax: int = 100) -> tuple[SimonDesign, SimonDesign]:
    """The optimal (min EN under p0) and minimax (min n, then min EN) Simon designs with n <= nmax.

    Raises ValueError when no design with n <= nmax meets both error rates (increase nmax).
    """
    if not 0.0 < p0 < p1 < 1.0:
        raise ValueError(f"need 0 < p0 < p1 < 1, got p0 = {p0}, p1 = {p1}")
    if not (0.0 < alpha < 1.0 and 0.0 < power < 1.0):
        raise ValueError(f"alpha and power must lie strictly between 0 and 1, got {alpha}, {power}")
    if not 2 <= nmax <= SIMON_NMAX_LIMIT:
        raise ValueError(f"nmax must be between 2 and {SIMON_NMAX_LIMIT}, got {nmax}")
    best = _best_design_per_n(p0, p1, alpha, power, nmax)
    if not best:
        raise ValueError(f"no two-stage design with at most {nmax} patients has alpha <= {alpha} and "
                         f"power >= {power} for p0 = {p0}, p1 = {p1}; increase nmax")
    optimal = min(best.values(), key=lambda d: (d[0], d[4]))  # min EN, then the smaller n
    minimax = best[min(best)]
    return _design("optimal", optimal, p0, p1), _design("minimax", minimax, p0, p1)


def _best_design_per_n(p0: float, p1: float, alpha: float, power: float, nmax: int) -> dict[int, tuple]:
    """For every n with a feasible design: (EN(p0), r1, n1, r, n) of its smallest-EN design.

    For each split (n1, n2), P(reject) for every (r1, r) at once is a reverse cumulative sum over the
    stage-1 count x1 of pmf1(x1) * P(X2 > r - x1). Ties: smallest EN, then smallest n1, then smallest
    r1; among the r that meet both error rates the largest (the smallest alpha), as clinfun does.
    """
    from scipy import stats  # imported here: loading scipy.stats costs 0.3 s, which `describe` need not pay

    ps = np.array([p0, p1])
    k = np.arange(-nmax, nmax + 1)
    sizes = np.arange(nmax + 1)
    # sf[i, m, k + nmax] = P(Bin(m, p_i) > k), equal to 1 for k < 0 and 0 for k >= m.
    sf = stats.binom.sf(k[None, None, :], sizes[None, :, None], ps[:, None, None])
    pmf = stats.binom.pmf(sizes[None, None, :], sizes[None, :, None], ps[:, None, None])
    cdf = stats.binom.cdf(sizes[None, :], sizes[:, None], p0)  # cdf[n1, r1] under p0
    best: dict[int, tuple] = {}
    for n1 in range(1, nmax):
        x1 = np.arange(n1 + 1)
        r1 = np.arange(n1)  # r1 = n1 would always stop
        pet = cdf[n1, :n1]
        for n2 in range(1, nmax - n1 + 1):
            n = n1 + n2
            r = np.arange(n)  # r = n would never reject
            terms = pmf[:, n1, : n1 + 1, None] * sf[:, n2, r[None, :] - x1[:, None] + nmax]
            tail = np.cumsum(terms[:, ::-1], axis=1)[:, ::-1]  # tail[:, j, r] = sum over x1 >= j
            reject = tail[:, 1 : n1 + 1, :]  # rows r1 = 0..n1-1: sum over x1 > r1
            ok = (reject[0] <= alpha) & (reject[1] >= power) & (r[None, :] > r1[:, None])
            rows = np.flatnonzero(ok.any(axis=1))
            if rows.size == 0:
                continue
            en = n1 + (1.0 - pet[rows]) * n2
            j = rows[np.argmin(en)]
            candidate = (float(n1 + (1.0 - pet[j]) * n2), int(j), n1, int(np.flatnonzero(ok[j])[-1]), n)
            if n not in best or candidate[:3] < best[n][:3]:
                best[n] = candidate
    return best


def _design(kind: str, best: tuple, p0: float, p1: float) -> SimonDesign:
    _, r1, n1, r, n = best
    oc = two_stage_oc(r1, n1, r, n, [p0, p1])
    return SimonDesign(kind=kind, r1=r1, n1=n1, r=r, n=n, p0=p0, p1=p1, en0=float(oc.en[0]),
                       pet0=float(oc.pet[0]), alpha=float(oc.p_reject[0]), power=float(oc.p_reject[1]),
                       en1=float(oc.en[1]), pet1=float(oc.pet[1]))


def _check_two_stage(r1: int, n1: int, r: int, n: int) -> None:
    if not (1 <= n1 < n and 0 <= r1 < n1 and r1 <= r < n):
        raise ValueError(f"need 1 <= n1 < n, 0 <= r1 < n1 and r1 <= r < n; got r1/n1 = {r1}/{n1}, r/n = {r}/{n}")


@dataclass(frozen=True)
class Boundary:
    """A stopping rule: at each look (k evaluable patients), stop if at least stop_at events.

    `stop_at[i]` is None when no number of events among looks[i] patients stops the trial.
    """

    nmax: int
    looks: tuple[int, ...]
    stop_at: tuple[int | None, ...]

    def thresholds(self) -> np.ndarray:
        """stop_at as an array over k = 1..nmax: nmax + 1 (unreachable) where there is no look or no stop."""
        out = np.full(self.nmax, self.nmax + 1, dtype=int)
        for k, d in zip(self.looks, self.stop_at, strict=True):
            if d is not None:
                out[k - 1] = d
        return out


@dataclass(frozen=True)
class BoundaryOC:
    """Exact operating characteristics of a boundary at true event rate(s), outcomes seen immediately.

    Arrays over (rate, k = 1..nmax): p_stop_at[i, k-1] = P(the trial stops at patient k).
    """

    rates: np.ndarray
    p_stop_at: np.ndarray
    p_stop_by: np.ndarray  # cumulative: P(stopped at or before patient k)
    p_stop: np.ndarray  # P(the trial ever stops), per rate
    expected_treated: np.ndarray  # expected number of patients treated (nmax if never stopped), per rate


def posterior_prob_above(a: float, b: float, threshold: float, events, evaluable) -> np.ndarray:
    """P(rate > threshold | events among evaluable) under a beta(a, b) prior (conjugate beta posterior)."""
    events = np.asarray(events, dtype=float)
    evaluable = np.asarray(evaluable, dtype=float)
    return special.betaincc(a + events, b + evaluable - events, threshold)


def posterior_boundary(a: float, b: float, threshold: float, cutoff: float, nmax: int, every: int = 1,
                       min_evaluable: int = 1) -> Boundary:
    """The table implied by 'stop when P(rate > threshold | data) > cutoff', checked at k = min_evaluable,
    min_evaluable + every, ... <= nmax: the smallest number of events that stops at each k."""
    if not (a > 0 and b > 0):
        raise ValueError(f"beta prior parameters must be > 0, got a = {a}, b = {b}")
    if not (0.0 < threshold < 1.0 and 0.0 < cutoff < 1.0):
        raise ValueError(f"threshold and cutoff must lie strictly between 0 and 1, got {threshold}, {cutoff}")
    if not (nmax >= 1 and every >= 1 and 1 <= min_evaluable <= nmax):
        raise ValueError(f"need nmax >= 1, every >= 1 and 1 <= min_evaluable <= nmax; got {nmax}, {every}, "
                         f"{min_evaluable}")
    looks = tuple(range(min_evaluable, nmax + 1, every))
    stop_at = []
    for k in looks:
        # P(rate > threshold) increases with d at fixed k, so the first d that stops is the boundary.
        stops = np.flatnonzero(posterior_prob_above(a, b, threshold, np.arange(k + 1), k) > cutoff)
        stop_at.append(int(stops[0]) if stops.size else None)
    return Boundary(nmax=nmax, looks=looks, stop_at=tuple(stop_at))


def boundary_from_table(table: Sequence[tuple[int, int]], nmax: int) -> Boundary:
    """A user's table [(k, d_k), ...]: stop if at least d_k events among the first k evaluable patients."""
    looks = [int(k) for k, _ in table]
    if not looks:
        raise ValueError("the boundary table is empty")
    if any(later <= earlier for earlier, later in zip(looks, looks[1:], strict=False)):
        raise ValueError(f"patient numbers k in the boundary table must increase strictly, got {looks}")
    for k, d in table:
        if not 1 <= k <= nmax:
            raise ValueError(f"boundary table: k = {k} must lie between 1 and nmax = {nmax}")
        if not 1 <= d <= k:
            raise ValueError(f"boundary table: at k = {k}, d = {d} must lie between 1 and k")
    return Boundary(nmax=nmax, looks=tuple(looks), stop_at=tuple(int(d) for _, d in table))


def boundary_oc(boundary: Boundary, rates: float | Iterable[float]) -> BoundaryOC:
    """Exact stopping probabilities and expected number treated, by forward recursion over (k, d).

    f[d] is P(d events among the first k patients and not stopped yet); each new patient moves mass
    from d to d + 1 with the true rate, and at a look the mass at d >= d_k is absorbed (stopped).
    """
    rates = np.atleast_1d(np.asarray(rates, dtype=float))
    if np.any((rates < 0.0) | (rates > 1.0)):
        raise ValueError(f"true rates must lie between 0 and 1, got {rates.tolist()}")
    nmax = boundary.nmax
    limits = boundary.thresholds()
    f = np.zeros((rates.size, nmax + 1))
    f[:, 0] = 1.0
    p_stop_at = np.zeros((rates.size, nmax))
    for k in range(1, nmax + 1):
        moved = f * (1.0 - rates[:, None])
        moved[:, 1:] += f[:, :-1] * rates[:, None]
        f = moved
        if limits[k - 1] <= k:
            p_stop_at[:, k - 1] = f[:, limits[k - 1] :].sum(axis=1)
            f[:, limits[k - 1] :] = 0.0
    p_stop_by = np.cumsum(p_stop_at, axis=1)
    p_stop = p_stop_by[:, -1]
    expected = p_stop_at @ np.arange(1, nmax + 1) + nmax * (1.0 - p_stop)
    return BoundaryOC(rates=rates, p_stop_at=p_stop_at, p_stop_by=p_stop_by, p_stop=p_stop,
                      expected_treated=expected)
