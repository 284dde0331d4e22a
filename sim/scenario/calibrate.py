"""Clinical landmarks -> hazards, and the true endpoint values a scenario implies.

Users give cumulative incidences at a landmark ("18-month relapse 17%, NRM 10%"); the model needs
cause-specific hazards. Relapse and NRM have Weibull cause-specific hazards,
H_c,g(t) = hr_c,g * A_c * (t / tau)^k_c, for subgroups g of the transplanted population (donor type
x MRD status at HSCT) with known weights; `calibrate` solves the reference cumulative hazards
(A_relapse, A_nrm) so that the population's Aalen-Johansen incidences at tau equal the targets.
With one group and equal shapes this is the closed form CIF_a = a/(a+b) (1 - exp(-(a+b))).
Acute GVHD II-IV has a constant hazard over days 0-100 and chronic GVHD a constant hazard from its
earliest onset, both solved with relapse and death competing. When grade III-IV acute GVHD or chronic
GVHD needing systemic therapy raises the NRM hazard from its onset (hazard ratios other than 1), the
baseline hazards and GVHD rates are solved jointly (Newton-type root finding on the curves of
gvhd_link.py's forward equations) so that the same four targets still hold. Everything here is
deterministic numerics (root finding, quadrature, ODE integration), never simulation: these are the
truths for bias and coverage.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np

# scipy's solvers are imported where they solve: worker processes import this module only to unpickle the
# calibrated models, and their start-up is on the critical path of every study.
from sim.scenario.gvhd_link import AGVHD_WINDOW_DAYS, linked_curves
from sim.scenario.schema import DAYS_PER_MONTH, Scenario, ScenarioError
from sim.scenario.waiting import mrd_negative_before_hsct, transplanted_shares, waiting_rates

DONOR_TYPES = ("haplo", "sibling", "unrelated")
_SHAPE_KEYS = ("post_transplant.relapse_hr_mrd_positive, post_transplant.nrm_hr_haplo, "
               "post_transplant.nrm_hr_unrelated, post_transplant.relapse_shape, post_transplant.nrm_shape")


@dataclass(frozen=True)
class PostTransplantModel:
    """Hazards after HSCT for subgroups g = 2 * donor_index + mrd_positive (donor order: DONOR_TYPES)."""

    tau_days: float
    weights: np.ndarray
    relapse_hr: np.ndarray
    nrm_hr: np.ndarray
    relapse_cumhaz: float
    nrm_cumhaz: float
    relapse_shape: float
    nrm_shape: float
    agvhd_rate: float
    agvhd_severe_fraction: float
    cgvhd_rate: float
    cgvhd_onset_days: float
    p_cgvhd_systemic: float
    post_relapse_death_rate: float
    ltfu_rate: float
    horizon_days: float
    nrm_hr_agvhd34: float = 1.0     # NRM hazard ratio from the onset of grade III-IV acute GVHD
    nrm_hr_cgvhd: float = 1.0       # NRM hazard ratio from the onset of chronic GVHD needing systemic therapy

    @property
    def gvhd_linked(self) -> bool:
        """Whether GVHD changes NRM (then every curve comes from gvhd_link.py's forward equations)."""
        return self.nrm_hr_agvhd34 != 1.0 or self.nrm_hr_cgvhd != 1.0

    def relapse_H(self, t: np.ndarray | float, group: int | np.ndarray) -> np.ndarray:
        """Cumulative relapse hazard at t days after HSCT."""
        return self.relapse_hr[group] * self.relapse_cumhaz * (np.asarray(t) / self.tau_days) ** self.relapse_shape

    def nrm_H(self, t: np.ndarray | float, group: int | np.ndarray) -> np.ndarray:
        """Cumulative NRM hazard at t days after HSCT."""
        return self.nrm_hr[group] * self.nrm_cumhaz * (np.asarray(t) / self.tau_days) ** self.nrm_shape

    def rfs_group(self, t: np.ndarray | float, group: int) -> np.ndarray:
        """Relapse-free survival of subgroup g at t days."""
        return np.exp(-self.relapse_H(t, group) - self.nrm_H(t, group))

    @property
    def groups(self) -> np.ndarray:
        """Indices of the subgroups with positive weight."""
        return np.flatnonzero(self.weights > 0)


def calibrate(scenario: Scenario) -> PostTransplantModel:
    """Solve the post-HSCT hazards that reproduce the scenario's landmark incidences."""
    pt = scenario.post_transplant
    model = unsolved_model(scenario)
    a_rel, a_nrm = _solve_competing(model, pt.relapse_incidence, pt.nrm_incidence)
    model = replace(model, relapse_cumhaz=a_rel, nrm_cumhaz=a_nrm)
    model = replace(model, agvhd_rate=_solve_agvhd(model, pt.agvhd_2_4_day100))
    model = replace(model, cgvhd_rate=_solve_cgvhd(model, pt.cgvhd_incidence))
    if pt.nrm_hr_agvhd_3_4 == 1.0 and pt.nrm_hr_cgvhd_systemic == 1.0:
        return model
    # GVHD raises NRM: start from the unlinked solution and solve the four hazards jointly.
    linked = replace(model, nrm_hr_agvhd34=pt.nrm_hr_agvhd_3_4, nrm_hr_cgvhd=pt.nrm_hr_cgvhd_systemic)
    return _solve_linked(linked, (pt.relapse_incidence, pt.nrm_incidence, pt.agvhd_2_4_day100, pt.cgvhd_incidence))


def unsolved_model(scenario: Scenario, weights: np.ndarray | None = None) -> PostTransplantModel:
    """The scenario's post-HSCT model before solving: subgroup weights (group_weights unless given), hazard
    ratios, shapes and the rates set directly; the four calibrated quantities 0 and the GVHD link off."""
    pt = scenario.post_transplant
    tau = pt.incidence_landmark_months * DAYS_PER_MONTH
    return PostTransplantModel(
        tau_days=tau,
        weights=group_weights(scenario) if weights is None else weights,
        relapse_hr=np.tile([1.0, pt.relapse_hr_mrd_positive], 3),
        nrm_hr=np.repeat([pt.nrm_hr_haplo, 1.0, pt.nrm_hr_unrelated], 2),
        relapse_cumhaz=0.0,
        nrm_cumhaz=0.0,
        relapse_shape=pt.relapse_shape,
        nrm_shape=pt.nrm_shape,
        agvhd_rate=0.0,
        agvhd_severe_fraction=pt.agvhd_3_4_day100 / pt.agvhd_2_4_day100 if pt.agvhd_2_4_day100 > 0 else 0.0,
        cgvhd_rate=0.0,
        cgvhd_onset_days=pt.cgvhd_onset_min_days,
        p_cgvhd_systemic=pt.p_cgvhd_systemic,
        post_relapse_death_rate=np.log(2.0) / (pt.post_relapse_median_months * DAYS_PER_MONTH),
        ltfu_rate=-np.log1p(-pt.ltfu_prob) / tau,
        horizon_days=pt.horizon_months * DAYS_PER_MONTH,
    )


_LINKED_UNKNOWNS = ("relapse_cumhaz", "nrm_cumhaz", "agvhd_rate", "cgvhd_rate")
_LINKED_KEYS = ("post_transplant.relapse_incidence", "post_transplant.nrm_incidence",
                "post_transplant.agvhd_2_4_day100", "post_transplant.cgvhd_incidence")


def _linked_targets(model: PostTransplantModel) -> np.ndarray:
    """Relapse and NRM incidence at tau, acute GVHD II-IV by day 100 and chronic GVHD at tau, with the link."""
    curves = linked_curves(model, np.array([AGVHD_WINDOW_DAYS, model.tau_days]))
    return np.array([curves["relapse"][1], curves["nrm"][1], curves["agvhd"][0], curves["cgvhd"][1]])


def _solve_linked(model: PostTransplantModel, targets: tuple[float, ...]) -> PostTransplantModel:
    """Baseline relapse and NRM hazards and GVHD onset rates reproducing the targets with the GVHD-NRM link.

    Hazards whose target is 0 (or whose unlinked solution is infinite: everyone at onset) stay fixed; the
    others are solved in log scale by Powell's hybrid method from the unlinked solution, which moves
    them little (the link redistributes NRM towards patients with GVHD).
    """
    from scipy import optimize

    start = np.array([getattr(model, name) for name in _LINKED_UNKNOWNS])
    free = [i for i, x in enumerate(start) if 0 < x < np.inf]

    def with_values(log_x: np.ndarray) -> PostTransplantModel:
        return replace(model, **{_LINKED_UNKNOWNS[i]: float(np.exp(v)) for i, v in zip(free, log_x, strict=True)})

    def residual(log_x: np.ndarray) -> np.ndarray:
        return (_linked_targets(with_values(log_x)) - np.asarray(targets))[free]

    fitted = model
    try:
        if free:
            # The base scenario converges in about 40 evaluations; the cap bounds the time an unreachable
            # combination takes to be refused.
            solution = optimize.root(residual, np.log(start[free]), method="hybr",
                                     options={"xtol": 1e-13, "maxfev": 400})
            fitted = with_values(solution.x)
        gap = np.abs(_linked_targets(fitted) - np.asarray(targets))
    except RuntimeError:      # the search met hazards so extreme that the forward equations cannot be solved
        gap = np.full(len(targets), np.inf)
    if not np.all(np.isfinite(gap)) or gap.max() > 1e-8:
        keys = ", ".join(f"{k} = {t}" for k, t, g in zip(_LINKED_KEYS, targets, gap, strict=True) if not g <= 1e-8)
        raise ScenarioError(
            f"{keys}: no hazards reproduce these incidences with GVHD raising NRM "
            f"(post_transplant.nrm_hr_agvhd_3_4 = {model.nrm_hr_agvhd34}, post_transplant.nrm_hr_cgvhd_systemic = "
            f"{model.nrm_hr_cgvhd}) and these hazard ratios and shapes ({_SHAPE_KEYS}); lower the GVHD hazard "
            "ratios or incidences, or change the shapes")
    return fitted


def group_weights(scenario: Scenario) -> np.ndarray:
    """Share of each subgroup among transplanted patients.

    Without waiting risk, donor type is independent of MRD status and only MRD-positive patients sent to
    transplant anyway are MRD-positive at HSCT (a re-test sends only negatives). With it, a longer donor
    search or a higher relapse hazard (MRD-positive) loses more patients before HSCT, so the shares come
    from the waiting-time integrals of waiting.py.
    """
    if waiting_rates(scenario).any:
        shares = transplanted_shares(scenario)
        if shares.sum() > 0:
            return (shares / shares.sum()).ravel()
    d = scenario.donor
    donor = np.array([d.p_haplo, d.p_sibling, d.p_unrelated])
    mrd_pos = 1.0 - mrd_negative_before_hsct(scenario) if scenario.mrd.positive_action == "transplant" else 0.0
    if mrd_pos >= 1.0:  # nobody is MRD-negative: all transplanted are MRD-positive
        mrd_pos = 1.0
    return np.outer(donor, [1.0 - mrd_pos, mrd_pos]).ravel()


# --------------------------------------------------------------------------- incidences


def relapse_incidence(model: PostTransplantModel, t: float) -> float:
    """Population cumulative incidence of relapse at t days (NRM competing)."""
    if model.gvhd_linked:
        return float(linked_curves(model, t)["relapse"][0])
    return _population_cif(model, t, cause="relapse")


def nrm_incidence(model: PostTransplantModel, t: float) -> float:
    """Population cumulative incidence of non-relapse mortality at t days (relapse competing)."""
    if model.gvhd_linked:
        return float(linked_curves(model, t)["nrm"][0])
    return _population_cif(model, t, cause="nrm")


def _population_cif(model: PostTransplantModel, t: float, cause: str) -> float:
    total = 0.0
    for g in model.groups:
        a = float(model.relapse_H(t, g))
        b = float(model.nrm_H(t, g))
        if model.relapse_shape == model.nrm_shape:
            share = (a if cause == "relapse" else b) / (a + b) if a + b > 0 else 0.0
            total += model.weights[g] * share * -np.expm1(-(a + b))
        else:
            total += model.weights[g] * _cause_integral(model, g, t, cause, lambda s: 1.0)
    return float(total)


def _cause_integral(model: PostTransplantModel, g: int, t: float, cause: str, weight) -> float:
    """Integral over [0, t] of weight(s) h_c(s) S(s) ds for cause c of subgroup g.

    Taken over y = 1 - exp(-H_c(s)), where it becomes the integral of weight(s) exp(-H_other(s)) dy:
    bounded and smooth for any Weibull shape and hazard size (in s the integrand has a spike at 0
    when the shape is below 1 or the hazard is large, which quadrature misses). When the other cause
    is so much stronger that exp(-H_other) falls to 1/e within a thousandth of the range of y, the
    range is split at decades of that point, so quadrature sees the narrow peak at 0.
    """
    own, other = (model.relapse_H, model.nrm_H) if cause == "relapse" else (model.nrm_H, model.relapse_H)
    shape = model.relapse_shape if cause == "relapse" else model.nrm_shape
    other_shape = model.nrm_shape if cause == "relapse" else model.relapse_shape
    scale = float(own(model.tau_days, g))
    if scale == 0:
        return 0.0
    tau = model.tau_days

    def integrand(y: float) -> float:
        s = tau * (-np.log1p(-y) / scale) ** (1.0 / shape)
        return float(weight(s) * np.exp(-other(s, g)))

    top = -np.expm1(-float(own(t, g)))
    other_scale = float(other(tau, g))
    if other_scale > 0:
        # H_other(s(y)) = 1 where -log(1 - y) = scale * other_scale^(-shape / other_shape).
        with np.errstate(over="ignore", under="ignore"):
            peak = -np.expm1(-np.exp(np.log(scale) - shape / other_shape * np.log(other_scale)))
        if 0 < peak < 1e-3 * top:
            cuts = [peak * 1e-3]
            while cuts[-1] * 10.0 < top:
                cuts.append(cuts[-1] * 10.0)
            return float(sum(_integrate(integrand, lo, hi) for lo, hi in zip([0.0, *cuts], [*cuts, top],
                                                                                  strict=True)))
    return _integrate(integrand, 0.0, top)


def _integrate(f, lo: float, hi: float) -> float:
    from scipy import integrate

    if hi <= lo:
        return 0.0
    # quad warns when it cannot reach 1e-11 on extreme hazards; what matters is checked where it matters
    # (calibrated incidences against their targets, to 1e-8), so the warning would only alarm users.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        value, _ = integrate.quad(f, lo, hi, limit=200, epsabs=1e-13, epsrel=1e-11)
    return float(value)


def _solve_competing(model: PostTransplantModel, r: float, m: float) -> tuple[float, float]:
    """Reference cumulative hazards (relapse, NRM) at tau whose population incidences are (r, m).

    Nested monotone root finding: for a given relapse hazard, the NRM incidence increases with the
    NRM hazard (inner solve); with the inner solution, the relapse incidence increases with the
    relapse hazard (outer solve). Robust at the bounds (r or m = 0) and near r + m = 1.
    """
    tau = model.tau_days
    reached = [0.0]  # the largest relapse incidence reproduced together with NRM = m (for the message)

    def nrm_for(a_rel: float) -> float:
        if m == 0:
            return 0.0
        return _increasing_root(lambda b: nrm_incidence(replace(model, relapse_cumhaz=a_rel, nrm_cumhaz=b), tau), m,
                                "nrm_incidence")

    def relapse_at(a: float) -> float:
        try:
            b = nrm_for(a)
        except ScenarioError:
            # Beside this much relapse hazard no NRM hazard reaches m: a is too large (treated as overshooting r).
            return 1.0
        value = relapse_incidence(replace(model, relapse_cumhaz=a, nrm_cumhaz=b), tau)
        reached[0] = max(reached[0], value)
        return value

    if r == 0:
        a_rel = 0.0
    else:
        nrm_for(0.0)  # NRM = m must be reachable without relapse, else no relapse hazard helps
        a_rel = _increasing_root(relapse_at, r, "relapse_incidence",
                                 limit=f" together with post_transplant.nrm_incidence = {m}")
    try:
        a_nrm = nrm_for(a_rel)
    except ScenarioError:
        a_nrm = np.inf
    fitted = replace(model, relapse_cumhaz=a_rel, nrm_cumhaz=a_nrm)
    gap = max(abs(relapse_incidence(fitted, tau) - r), abs(nrm_incidence(fitted, tau) - m))
    if not np.isfinite(gap) or gap > 1e-8:
        raise ScenarioError(
            f"post_transplant.relapse_incidence = {r} and post_transplant.nrm_incidence = {m}: no hazards "
            f"reproduce both with these hazard ratios and shapes ({_SHAPE_KEYS}); together with this NRM incidence "
            f"the relapse incidence can be at most about {reached[0]:.6g} (hazards this steep need numbers beyond "
            "floating point)")
    return a_rel, a_nrm


def _increasing_root(f, target: float, key: str, hi: float = 1.0, max_doublings: int = 200, limit: str = "") -> float:
    """x >= 0 with f(x) = target for f increasing from f(0); ScenarioError naming `key` and the largest value of
    f reached (within floating point) if none is found."""
    from scipy import optimize

    best = -np.inf
    for _ in range(max_doublings):
        value = f(hi)
        if not np.isfinite(value):
            break
        if value >= target:
            return float(optimize.brentq(lambda x: f(x) - target, 0.0, hi, xtol=1e-15, rtol=1e-15, maxiter=500))
        best = max(best, value)
        hi *= 2.0
    reached = f"at most {best:.6g} can be reproduced" if np.isfinite(best) else "no value can be reproduced"
    raise ScenarioError(f"post_transplant.{key} = {target}: {reached}{limit} with these hazard ratios and shapes "
                        f"({_SHAPE_KEYS}); larger values would need hazards beyond floating point")


CGVHD_LIMIT = ("at most the share of transplanted patients alive without relapse on "
               "post_transplant.cgvhd_onset_min_days, which relapse_incidence, nrm_incidence and the shapes and "
               "hazard ratios set")


def _solve_rate(cif_at_rate, target: float, maximum: float, key: str) -> float:
    if target == 0:
        return 0.0
    if target > maximum - 1e-12:
        if target <= maximum + 1e-12:
            return float("inf")  # the supremum itself (within 1e-12): onset at the earliest day for everyone
        raise ScenarioError(
            f"post_transplant.{key} = {target}: at most {maximum:.4f} is achievable: chronic GVHD is recorded "
            "only before relapse and death, so its incidence is " + CGVHD_LIMIT + "; lower it, or "
            "post_transplant.cgvhd_onset_min_days, post_transplant.relapse_incidence or post_transplant.nrm_incidence")
    # Up to 1100 doublings: a target near its supremum may need a rate near the largest float.
    return _increasing_root(cif_at_rate, target, key, hi=1e-3, max_doublings=1100)


def _agvhd_cif(model: PostTransplantModel, rate: float, t: float = AGVHD_WINDOW_DAYS) -> float:
    return _onset_cif(model, rate, 0.0, min(t, AGVHD_WINDOW_DAYS))


def _cgvhd_cif(model: PostTransplantModel, rate: float, t: float) -> float:
    return _onset_cif(model, rate, model.cgvhd_onset_days, t)


def _onset_cif(model: PostTransplantModel, rate: float, start: float, t: float) -> float:
    """Incidence by t of an onset with constant hazard from `start`, relapse and NRM competing.

    Integrates over u = 1 - exp(-rate (s - start)) rather than s, so the integrand stays smooth for
    any rate (a large rate would otherwise be a spike at `start` that quadrature misses).
    """
    if t <= start or rate == 0:
        return 0.0
    top = -np.expm1(-rate * (t - start))
    return float(sum(model.weights[g] * _integrate(
        lambda u, g=g: model.rfs_group(start - np.log1p(-u) / rate, g), 0.0, top) for g in model.groups))


def _solve_agvhd(model: PostTransplantModel, target: float) -> float:
    return _solve_rate(lambda x: _agvhd_cif(model, x), target, 1.0, "agvhd_2_4_day100")


def cgvhd_maximum(model: PostTransplantModel) -> float:
    """The largest chronic GVHD incidence any rate reaches: P(alive without relapse at the earliest onset)."""
    d0 = model.cgvhd_onset_days
    return float(sum(model.weights[g] * model.rfs_group(d0, g) for g in model.groups))


def _solve_cgvhd(model: PostTransplantModel, target: float) -> float:
    return _solve_rate(lambda x: _cgvhd_cif(model, x, model.tau_days), target, cgvhd_maximum(model),
                       "cgvhd_incidence")


# --------------------------------------------------------------------------- truths


def rfs(model: PostTransplantModel, t: float) -> float:
    """True relapse-free survival of the transplanted population at t days after HSCT."""
    if model.gvhd_linked:
        return float(linked_curves(model, t)["rfs"][0])
    return float(sum(model.weights[g] * model.rfs_group(t, g) for g in model.groups))


def rfs_curve(model: PostTransplantModel, times: np.ndarray) -> np.ndarray:
    """True relapse-free survival at each of many days after HSCT (one ODE solve when GVHD is linked to NRM)."""
    times = np.asarray(times, dtype=float)
    if model.gvhd_linked:
        return linked_curves(model, times)["rfs"]
    return np.array([rfs(model, t) for t in times])


def os(model: PostTransplantModel, t: float) -> float:
    """True overall survival at t days: alive without relapse, or relapsed and still alive."""
    if model.gvhd_linked:
        return float(linked_curves(model, t)["os"][0])
    mu = model.post_relapse_death_rate
    total = 0.0
    for g in model.groups:
        after_relapse = _cause_integral(model, g, t, "relapse", lambda s: np.exp(-mu * (t - s)))
        total += model.weights[g] * (model.rfs_group(t, g) + after_relapse)
    return float(total)


def grfs(model: PostTransplantModel, t: float) -> float:
    """True GVHD-free relapse-free survival at t days (acute III-IV, systemic chronic, relapse, death)."""
    if model.gvhd_linked:
        return float(linked_curves(model, t)["grfs"][0])

    def no_gvhd_event(g: int) -> float:
        # GVHD hazards are independent of relapse/NRM given the subgroup, so the survivor functions multiply.
        acute = 1.0 - model.agvhd_severe_fraction * -np.expm1(-model.agvhd_rate * min(t, AGVHD_WINDOW_DAYS)) \
            if np.isfinite(model.agvhd_rate) else 1.0 - model.agvhd_severe_fraction
        chronic = 1.0 - model.p_cgvhd_systemic * -np.expm1(-model.cgvhd_rate * max(t - model.cgvhd_onset_days, 0.0)) \
            if np.isfinite(model.cgvhd_rate) else 1.0 - model.p_cgvhd_systemic * (t >= model.cgvhd_onset_days)
        return float(acute * chronic)

    return float(sum(model.weights[g] * model.rfs_group(t, g) * no_gvhd_event(g) for g in model.groups))


def agvhd_incidence(model: PostTransplantModel, severe: bool = False) -> float:
    """True cumulative incidence of acute GVHD II-IV (or III-IV) by day 100, relapse and death competing."""
    if model.gvhd_linked:
        return float(linked_curves(model, AGVHD_WINDOW_DAYS)["agvhd34" if severe else "agvhd"][0])
    if not np.isfinite(model.agvhd_rate):
        base = 1.0
    else:
        base = _agvhd_cif(model, model.agvhd_rate)
    return base * (model.agvhd_severe_fraction if severe else 1.0)


def cgvhd_incidence(model: PostTransplantModel, t: float) -> float:
    """True cumulative incidence of chronic GVHD at t days, relapse and death competing."""
    if model.gvhd_linked:
        return float(linked_curves(model, t)["cgvhd"][0])
    if not np.isfinite(model.cgvhd_rate):
        return float(sum(model.weights[g] * model.rfs_group(model.cgvhd_onset_days, g) for g in model.groups))
    return _cgvhd_cif(model, model.cgvhd_rate, t)


def true_endpoints(model: PostTransplantModel, landmark_days: float) -> dict[str, float]:
    """Every post-HSCT quantity a scenario implies at the analysis landmark (the estimands' truths)."""
    if model.gvhd_linked:
        c = linked_curves(model, np.array([AGVHD_WINDOW_DAYS, landmark_days]))
        return {"rfs": c["rfs"][1], "os": c["os"][1], "grfs": c["grfs"][1], "relapse_cif": c["relapse"][1],
                "nrm_cif": c["nrm"][1], "agvhd_2_4_day100": c["agvhd"][0], "agvhd_3_4_day100": c["agvhd34"][0],
                "cgvhd_cif": c["cgvhd"][1]}
    return {
        "rfs": rfs(model, landmark_days),
        "os": os(model, landmark_days),
        "grfs": grfs(model, landmark_days),
        "relapse_cif": relapse_incidence(model, landmark_days),
        "nrm_cif": nrm_incidence(model, landmark_days),
        "agvhd_2_4_day100": agvhd_incidence(model),
        "agvhd_3_4_day100": agvhd_incidence(model, severe=True),
        "cgvhd_cif": cgvhd_incidence(model, landmark_days),
    }


def null_twin(model: PostTransplantModel, p0: float, landmark_days: float) -> PostTransplantModel:
    """Relapse and NRM hazards scaled by one factor so the true RFS at the landmark equals p0."""
    from scipy import optimize

    if rfs(model, landmark_days) == p0:
        return model

    def gap(log_c: float) -> float:
        c = np.exp(log_c)
        return rfs(replace(model, relapse_cumhaz=model.relapse_cumhaz * c, nrm_cumhaz=model.nrm_cumhaz * c),
                   landmark_days) - p0

    if model.relapse_cumhaz + model.nrm_cumhaz == 0:
        raise ScenarioError("post_transplant: relapse and NRM incidences are both 0, so no scaling of their "
                            "hazards gives a null twin with RFS = analysis.p0")
    if model.gvhd_linked:
        # Each RFS is an ODE solve: start the secant method from the unlinked model's scaling, which is close.
        unlinked = null_twin(replace(model, nrm_hr_agvhd34=1.0, nrm_hr_cgvhd=1.0), p0, landmark_days)
        total = model.relapse_cumhaz + model.nrm_cumhaz
        guess = float(np.log((unlinked.relapse_cumhaz + unlinked.nrm_cumhaz) / total))
        log_c = optimize.newton(gap, guess, x1=guess + 1e-3, tol=1e-13, maxiter=50, disp=False)
        if np.isfinite(log_c) and abs(gap(log_c)) < 1e-10:   # the forward equations are accurate to ~1e-11
            c = float(np.exp(log_c))
            return replace(model, relapse_cumhaz=model.relapse_cumhaz * c, nrm_cumhaz=model.nrm_cumhaz * c)
        # Otherwise bracket from c = 1 outwards (a scaling of e^30 would make the equations needlessly stiff).
        step = 1.0 if gap(0.0) > 0 else -1.0
        while gap(step) * gap(0.0) > 0 and abs(step) < 30.0:
            step *= 2.0
        lo, hi = sorted((0.0, step))
        if gap(lo) * gap(hi) > 0:
            raise ScenarioError(f"post_transplant: no scaling of the relapse and NRM hazards within e^+-32 gives "
                                f"a twin with RFS = {p0:g} at the landmark while GVHD raises NRM; move "
                                "analysis.landmark_months closer to post_transplant.incidence_landmark_months")
        log_c = optimize.brentq(gap, lo, hi, xtol=1e-14)
        c = float(np.exp(log_c))
        return replace(model, relapse_cumhaz=model.relapse_cumhaz * c, nrm_cumhaz=model.nrm_cumhaz * c)
    if gap(-30.0) * gap(30.0) < 0:  # the usual case: a factor between e^-30 and e^30
        log_c = optimize.brentq(gap, -30.0, 30.0, xtol=1e-14)
        c = float(np.exp(log_c))
        return replace(model, relapse_cumhaz=model.relapse_cumhaz * c, nrm_cumhaz=model.nrm_cumhaz * c)
    return _null_twin_far(model, p0, landmark_days)


def _null_twin_far(model: PostTransplantModel, p0: float, landmark_days: float) -> PostTransplantModel:
    """The null twin when the factor is beyond e^+-30 (a landmark far from the incidences' landmark, or tiny
    hazards), solved on the log scale: RFS(c) = sum_g w_g exp(-exp(log c + h_g)), h_g = log H_g(landmark)."""
    from scipy import optimize

    g = model.groups
    log_t = np.log(landmark_days / model.tau_days)
    with np.errstate(divide="ignore"):
        log_relapse = np.log(model.relapse_hr[g]) + np.log(model.relapse_cumhaz) + model.relapse_shape * log_t
        log_nrm = np.log(model.nrm_hr[g]) + np.log(model.nrm_cumhaz) + model.nrm_shape * log_t
    h = np.logaddexp(log_relapse, log_nrm)
    weights = model.weights[g]

    def gap(log_c: float) -> float:
        return float(np.sum(weights * np.exp(-np.exp(log_c + h)))) - p0

    # Below lo every subgroup's hazard at the landmark is < e^-40 (RFS rounds to 1 > p0); above hi it is > 800.
    lo, hi = -float(h.max()) - 40.0, -float(h.min()) + np.log(800.0)
    log_c = optimize.brentq(gap, lo, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps, maxiter=500)
    with np.errstate(divide="ignore"):
        scaled = [float(np.exp(np.log(a) + log_c)) if a > 0 else 0.0
                  for a in (model.relapse_cumhaz, model.nrm_cumhaz)]
    return replace(model, relapse_cumhaz=scaled[0], nrm_cumhaz=scaled[1])
