"""Many scenarios calibrated at once: the post-HSCT hazards and true RFS of every draw of an assurance study.

calibrate() solves one scenario with nested root finding, adaptive quadrature and, with the GVHD-NRM
link, one ODE solve per trial value: about 0.04 s for the shipped scenarios, 6 minutes of one core for the
10,000 draws of an assurance study. So here a whole batch of scenarios is solved together:

- the forward equations of gvhd_link.py (GVHD states x alive without relapse, with the relapse, NRM and
  GVHD incidences accumulated) are integrated for every draw, every distinct subgroup and every Newton
  perturbation in one solve_ivp call, whose cost hardly grows with the batch;
- Newton's method in log scale solves the four unknowns of every draw (baseline relapse and NRM
  cumulative hazards at the landmark, acute and chronic GVHD onset rates) from a warm start: the
  one-group closed forms, corrected by the log ratio that the reference scenario's exact calibration
  shows between them and its solution. The Jacobian is by forward differences, all in the same call;
- subgroup weights with risk while waiting (waiting.py) use fixed Gauss-Legendre quadrature for the
  donor-search integral, batched, instead of adaptive quadrature.

Accuracy: Newton stops when every draw's four incidences are within TOLERANCE (1e-10) of its targets
under the forward equations, integrated at rtol 1e-12; a test checks models and true RFS against
calibrate() for random draws (hazards to 1e-8 relative, truths to 1e-9). A draw the fast path does not
handle (a target at its maximum, GVHD for everyone, no convergence) is calibrated by calibrate() itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import integrate, special

from sim.scenario.calibrate import PostTransplantModel, calibrate, group_weights, rfs, unsolved_model
from sim.scenario.gvhd_link import AGVHD_WINDOW_DAYS
from sim.scenario.schema import DAYS_PER_MONTH, Scenario, ScenarioError
from sim.scenario.waiting import _donor_medians, _donor_shares, _slot_moments, routes, waiting_rates

TOLERANCE = 1e-10           # largest gap between a draw's incidences and its targets
_RTOL, _ATOL = 1e-10, 1e-13
_STEP = 1e-6                # forward-difference step in log scale
_MAX_NEWTON = 12
_FINAL_GAP = 1e-6           # below this gap the last Newton step is taken without a further evaluation
# Largest unknowns tried: a cumulative hazard of 50 at the landmark, an onset rate of 50 per day (stiff beyond).
_LOG_CAP = np.log(50.0)
_BLOCK_ROWS = 320           # rows per solve: larger arrays make BLAS use threads, which is slower here
_UNKNOWNS = ("relapse_cumhaz", "nrm_cumhaz", "agvhd_rate", "cgvhd_rate")
_V, _CR, _CN, _CA, _CC = slice(0, 9), 9, 10, 11, 12
_WIDTH = 13


@dataclass(frozen=True)
class Calibrated:
    """A draw's solved post-HSCT model and its true RFS at the analysis landmark."""

    model: PostTransplantModel
    true_rfs: float
    exact: bool             # True: calibrate() itself (a fallback or the reference), False: the batched solve


def calibrate_many(scenarios: list[Scenario], reference: tuple[Scenario, PostTransplantModel] | None = None,
                   labels: list[str] | None = None) -> list[Calibrated]:
    """Every scenario's calibrated post-HSCT model and true RFS at its analysis landmark.

    reference: a scenario and its exact calibrate() model, for the warm start (and returned as is for any
    scenario whose calibration inputs equal it). labels: how a ScenarioError names each scenario.
    """
    out: list[Calibrated | None] = [None] * len(scenarios)
    if reference is not None:
        same = calibration_inputs(reference[0])
        matches = [i for i, s in enumerate(scenarios) if calibration_inputs(s) == same]
        if matches:
            truth = rfs(reference[1], _landmark(reference[0]))
            for i in matches:
                out[i] = Calibrated(reference[1], truth, True)
    rest = [i for i, c in enumerate(out) if c is None]
    weights = dict(zip(rest, group_weights_many([scenarios[i] for i in rest]), strict=True))
    skeletons = {i: _linked_skeleton(scenarios[i], weights[i]) for i in rest}
    todo = [i for i in rest if _fast_path_handles(scenarios[i], skeletons[i])]
    if todo:
        shift = _warm_start_shift(reference)
        solved = _newton([skeletons[i] for i in todo], np.array([_targets(scenarios[i]) for i in todo]),
                         np.array([_landmark(scenarios[i]) for i in todo]), shift)
        for i, result in zip(todo, solved, strict=True):
            out[i] = result
    for i, c in enumerate(out):
        if c is None:                 # not handled, or Newton did not converge: the exact calibration
            try:
                model = calibrate(scenarios[i])
            except ScenarioError as exc:
                raise ScenarioError(f"{labels[i]}: {exc}" if labels else str(exc)) from None
            out[i] = Calibrated(model, rfs(model, _landmark(scenarios[i])), True)
    return out  # type: ignore[return-value]


def _landmark(s: Scenario) -> float:
    return s.analysis.landmark_months * DAYS_PER_MONTH


def _targets(s: Scenario) -> tuple[float, float, float, float]:
    pt = s.post_transplant
    return pt.relapse_incidence, pt.nrm_incidence, pt.agvhd_2_4_day100, pt.cgvhd_incidence


def _linked_skeleton(s: Scenario, weights: np.ndarray) -> PostTransplantModel:
    pt = s.post_transplant
    return replace(unsolved_model(s, weights), nrm_hr_agvhd34=pt.nrm_hr_agvhd_3_4,
                   nrm_hr_cgvhd=pt.nrm_hr_cgvhd_systemic)


def calibration_inputs(s: Scenario) -> tuple:
    """Every scenario value calibrate() and the true RFS read: the post-HSCT section, the analysis landmark, and
    what decides the subgroup weights (donor, MRD, transplant, waiting and consolidation sections, the day of the
    response assessment)."""
    return (s.post_transplant, s.analysis.landmark_months, s.donor, s.mrd, s.transplant, s.waiting, s.consolidation,
            s.response.assessment_day)


def _fast_path_handles(s: Scenario, skeleton: PostTransplantModel) -> bool:
    """Whether the batched solve applies: finite hazards (targets below 1, relapse + NRM below 1) and someone
    transplanted. A chronic GVHD incidence above what is reachable leaves Newton unconverged: calibrate()
    then says so."""
    r, m, a, c = _targets(s)
    return r + m < 1 and a < 1 and c < 1 and skeleton.weights.sum() > 0


# --------------------------------------------------------------------------- warm start


def _approximate(skeleton: PostTransplantModel, targets: np.ndarray) -> np.ndarray:
    """Closed-form approximations of the four unknowns (one group, constant hazards, no link), for the warm
    start: relapse and NRM share the total hazard -ln(1 - r - m); each GVHD onset rate solves
    CIF = S(start) x rate / (rate + lam) x (1 - exp(-(rate + lam) x window)), lam the relapse + NRM rate."""
    r, m, a, c = targets
    w = skeleton.weights
    total = -np.log1p(-(r + m))
    rel = r / (r + m) * total / max(float(w @ skeleton.relapse_hr), 1e-12) if r > 0 else 0.0
    nrm = m / (r + m) * total / max(float(w @ skeleton.nrm_hr), 1e-12) if m > 0 else 0.0
    lam = total / skeleton.tau_days
    tau, d0 = skeleton.tau_days, skeleton.cgvhd_onset_days
    agvhd = _onset_rate(a, lam, AGVHD_WINDOW_DAYS, 1.0)
    cgvhd = _onset_rate(c, lam, max(tau - d0, 1.0), float(np.exp(-lam * min(d0, tau))))
    # The link: NRM's hazard ratios apply from the onsets, about half-way through each onset window on average.
    severe = skeleton.agvhd_severe_fraction * a * (tau - AGVHD_WINDOW_DAYS / 2) / tau
    systemic = skeleton.p_cgvhd_systemic * c * max(tau - d0, 0.0) / (2 * tau)
    link = 1 + (skeleton.nrm_hr_agvhd34 - 1) * severe + (skeleton.nrm_hr_cgvhd - 1) * systemic
    return np.array([rel, nrm / link, agvhd, cgvhd])


def _onset_rate(cif: float, lam: float, window: float, at_start: float) -> float:
    """Rate x with at_start x / (x + lam) (1 - exp(-(x + lam) window)) = cif (Newton from no competition)."""
    if cif <= 0:
        return 0.0
    goal = min(cif / at_start, 0.999)
    x = -np.log1p(-goal) / window
    for _ in range(30):
        k = x + lam
        e = np.exp(-k * window)
        value = x / k * (1 - e)
        slope = lam / k ** 2 * (1 - e) + x / k * window * e
        step = (value - goal) / slope
        x = max(x - step, x / 10)
        if abs(step) < 1e-14 * x:
            break
    return float(x)


def _warm_start_shift(reference: tuple[Scenario, PostTransplantModel] | None) -> np.ndarray:
    """log(solution) - log(closed form) of the reference: the link's and the subgroups' correction."""
    if reference is None:
        return np.zeros(4)
    scenario, model = reference
    approx = _approximate(model, np.array(_targets(scenario)))
    solved = np.array([getattr(model, name) for name in _UNKNOWNS])
    ok = (approx > 0) & (solved > 0) & np.isfinite(solved)
    return np.where(ok, np.log(np.where(ok, solved, 1.0)) - np.log(np.where(ok, approx, 1.0)), 0.0)


# --------------------------------------------------------------------------- Newton's method, batched


def _newton(skeletons: list[PostTransplantModel], targets: np.ndarray, landmarks: np.ndarray, shift: np.ndarray
            ) -> list[Calibrated | None]:
    """Solve every skeleton's four unknowns (in blocks of draws, each block one solve_ivp per Newton step);
    None where Newton did not converge."""
    per_block = max(1, _BLOCK_ROWS // (5 * max(len(_distinct_groups(sk)[2]) for sk in skeletons)))
    results: list[Calibrated | None] = []
    for lo in range(0, len(skeletons), per_block):
        block = slice(lo, lo + per_block)
        results += _newton_block(skeletons[block], targets[block], landmarks[block], shift)
    return results


def _newton_block(skeletons: list[PostTransplantModel], targets: np.ndarray, landmarks: np.ndarray,
                  shift: np.ndarray) -> list[Calibrated | None]:
    """Newton's method for a block of draws, all rows of a step (each draw at x and at x + step in each
    unknown, for the forward-difference Jacobian) in one evaluation of the forward equations.

    Once a draw's largest gap is below FINAL_GAP the last Newton step is taken without evaluating again:
    the gaps after it are of the order of the square of the gap before it, and the true RFS is moved
    along the same step by its forward-difference gradient (error of the order of the step squared).
    """
    n = len(skeletons)
    free = targets > 0
    start = np.array([_approximate(sk, t) for sk, t in zip(skeletons, targets, strict=True)])
    x = np.where(free, np.log(np.where(free, start, 1.0)) + shift, -np.inf)
    results: list[Calibrated | None] = [None] * n
    active = np.arange(n)
    for _ in range(_MAX_NEWTON):
        if active.size == 0:
            break
        points = np.vstack([x[active]] + [x[active] + _STEP * np.eye(4)[j] for j in range(4)])
        rows = np.tile(active, 5)
        values, truths = _evaluate([skeletons[i] for i in rows], points, landmarks[rows])
        k = active.size
        gaps = np.where(free[active], values[:k] - targets[active], 0.0)
        jac = np.stack([(values[(j + 1) * k:(j + 2) * k] - values[:k]) / _STEP for j in range(4)], axis=2)
        slope = np.stack([(truths[(j + 1) * k:(j + 2) * k] - truths[:k]) / _STEP for j in range(4)], axis=1)
        still = []
        for row, i in enumerate(active):
            size = np.max(np.abs(gaps[row]))
            if not np.isfinite(size):
                continue                   # left to calibrate()
            mask = free[i]
            step = np.zeros(4)
            if size >= TOLERANCE:
                try:
                    step[mask] = np.linalg.solve(jac[row][np.ix_(mask, mask)], -gaps[row][mask])
                except np.linalg.LinAlgError:
                    continue
            if size < _FINAL_GAP:
                x[i] += step
                truth = truths[row] + float(slope[row][mask] @ step[mask])
                results[i] = Calibrated(_solved(skeletons[i], x[i]), truth, False)
                continue
            x[i, mask] += np.clip(step[mask], -2.0, 2.0)      # damped: at most a factor e^2 per step
            if np.all(x[i] <= _LOG_CAP):   # beyond: a target near what is reachable, left to calibrate()
                still.append(i)
        active = np.array(still, dtype=int)
    return results


def _solved(skeleton: PostTransplantModel, x: np.ndarray) -> PostTransplantModel:
    return replace(skeleton, **{name: float(np.exp(v)) for name, v in zip(_UNKNOWNS, x, strict=True)})


def _evaluate(skeletons: list[PostTransplantModel], x: np.ndarray, landmarks: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """(relapse and NRM incidence at tau, acute GVHD II-IV by day 100, chronic GVHD at tau) and RFS at the
    landmark, for each skeleton with unknowns exp(x), subgroups weighted."""
    values = np.empty((len(skeletons), 4))
    truths = np.empty(len(skeletons))
    # Rows that share their breakpoints and time transform are integrated together.
    keys = [(sk.tau_days, sk.cgvhd_onset_days, float(lm), max(1.0, 1.0 / min(sk.relapse_shape, sk.nrm_shape)))
            for sk, lm in zip(skeletons, landmarks, strict=True)]
    for key in dict.fromkeys(keys):
        rows = [i for i, k in enumerate(keys) if k == key]
        v, t = _forward([skeletons[i] for i in rows], np.exp(x[rows]), *key)
        values[rows], truths[rows] = v, t
    return values, truths


def _distinct_groups(sk: PostTransplantModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Subgroups merged where their hazard ratios are equal: (relapse hr, NRM hr, weight) per distinct group."""
    groups = sk.groups
    pairs = {}
    for g in groups:
        key = (float(sk.relapse_hr[g]), float(sk.nrm_hr[g]))
        pairs[key] = pairs.get(key, 0.0) + float(sk.weights[g])
    hr = np.array(list(pairs))
    return hr[:, 0], hr[:, 1], np.array(list(pairs.values()))


def _forward(skeletons: list[PostTransplantModel], unknowns: np.ndarray, tau: float, d0: float, landmark: float,
             q: float) -> tuple[np.ndarray, np.ndarray]:
    """The forward equations of gvhd_link.py for many models at once (rows = model x distinct subgroup)."""
    owner, rel_hr, nrm_hr, weight = [], [], [], []
    for i, sk in enumerate(skeletons):
        r_hr, n_hr, w = _distinct_groups(sk)
        owner += [i] * len(w)
        rel_hr += list(r_hr)
        nrm_hr += list(n_hr)
        weight += list(w)
    owner = np.array(owner)
    sk_rows = [skeletons[i] for i in owner]
    k_r = np.array([sk.relapse_shape for sk in sk_rows])
    k_n = np.array([sk.nrm_shape for sk in sk_rows])
    rel = np.array(rel_hr) * unknowns[owner, 0] * k_r * q / tau ** k_r
    nrm = np.array(nrm_hr) * unknowns[owner, 1] * k_n * q / tau ** k_n
    alpha, gamma = unknowns[owner, 2], unknowns[owner, 3]
    f = np.array([sk.agvhd_severe_fraction for sk in sk_rows])
    p = np.array([sk.p_cgvhd_systemic for sk in sk_rows])
    ha = np.array([sk.nrm_hr_agvhd34 for sk in sk_rows])
    hc = np.array([sk.nrm_hr_cgvhd for sk in sk_rows])
    one = np.ones_like(ha)
    hr = np.stack([np.stack([one, one, hc], 1), np.stack([one, one, hc], 1), np.stack([ha, ha, ha * hc], 1)], 1)
    rows = len(owner)
    onsets = {"acute": 0.0, "chronic": 0.0}

    def rhs(s: float, y: np.ndarray) -> np.ndarray:
        dt = q * s ** (q - 1.0)
        a = onsets["acute"] * alpha * dt
        c = onsets["chronic"] * gamma * dt
        y = y.reshape(rows, _WIDTH)
        v = y[:, _V].reshape(rows, 3, 3)
        h_r = rel * s ** (q * k_r - 1.0)
        h_n = (nrm * s ** (q * k_n - 1.0))[:, None, None] * hr
        dv = -(h_r[:, None, None] + h_n) * v
        top = v[:, 0, :]
        dv[:, 0, :] -= a[:, None] * top
        dv[:, 1, :] += (a * (1.0 - f))[:, None] * top
        dv[:, 2, :] += (a * f)[:, None] * top
        left = v[:, :, 0]
        dv[:, :, 0] -= c[:, None] * left
        dv[:, :, 1] += (c * (1.0 - p))[:, None] * left
        dv[:, :, 2] += (c * p)[:, None] * left
        out = np.empty_like(y)
        out[:, _V] = dv.reshape(rows, 9)
        out[:, _CR] = h_r * v.sum(axis=(1, 2))
        out[:, _CN] = (h_n * v).sum(axis=(1, 2))
        out[:, _CA] = a * top.sum(axis=1)
        out[:, _CC] = c * left.sum(axis=1)
        return out.ravel()

    wanted = sorted({AGVHD_WINDOW_DAYS, tau, landmark})
    end = max(wanted)
    edges = sorted({0.0, end, *(b for b in (AGVHD_WINDOW_DAYS, d0) if 0 < b < end)})
    state = np.zeros((rows, _WIDTH))
    state[:, 0] = 1.0
    at: dict[float, np.ndarray] = {}
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        onsets["acute"] = 1.0 if lo < AGVHD_WINDOW_DAYS else 0.0
        onsets["chronic"] = 1.0 if lo >= d0 else 0.0
        inside = [t for t in wanted if lo < t <= hi]
        s_eval = np.unique(np.append(np.array(inside) ** (1.0 / q), hi ** (1.0 / q)))
        sol = integrate.solve_ivp(rhs, (lo ** (1.0 / q), hi ** (1.0 / q)), state.ravel(), method="DOP853",
                                  t_eval=s_eval, rtol=_RTOL, atol=_ATOL)
        if not sol.success:
            raise RuntimeError(f"GVHD-NRM forward equations failed: {sol.message}")
        for t in inside:
            at[t] = sol.y[:, np.searchsorted(sol.t, t ** (1.0 / q))].reshape(rows, _WIDTH)
        state = sol.y[:, -1].reshape(rows, _WIDTH)
    w = np.array(weight)
    n_models = len(skeletons)

    def total(column: np.ndarray) -> np.ndarray:
        return np.bincount(owner, weights=w * column, minlength=n_models)

    values = np.stack([total(at[tau][:, _CR]), total(at[tau][:, _CN]), total(at[AGVHD_WINDOW_DAYS][:, _CA]),
                       total(at[tau][:, _CC])], axis=1)
    return values, total(at[landmark][:, _V].sum(axis=1))


# --------------------------------------------------------------------------- subgroup weights, batched


_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(160)


def group_weights_many(scenarios: list[Scenario]) -> list[np.ndarray]:
    """calibrate.group_weights for each scenario; with risk while waiting, the donor-search integrals of
    waiting.py by fixed 160-point Gauss-Legendre quadrature, all at once (a test checks them against the
    adaptive quadrature to 1e-12)."""
    out: list[np.ndarray | None] = [None] * len(scenarios)
    pieces = []            # (scenario index, donor index, mrd column, route probability x proceed x p_k x slot)
    integrals = []         # (median, sigma, decision_day, rate)
    for i, s in enumerate(scenarios):
        if not waiting_rates(s).any:
            out[i] = group_weights(s)
            continue
        rates = waiting_rates(s)
        proceed = (1.0 - s.donor.p_no_donor) * (1.0 - s.transplant.p_refusal)
        for route in routes(s):
            rate = rates.total(route.negative)
            slot, _ = _slot_moments(s, rate)
            for k, (median, p_k) in enumerate(zip(_donor_medians(s), _donor_shares(s), strict=True)):
                pieces.append((i, k, 0 if route.negative else 1, route.probability * proceed * p_k * slot))
                integrals.append((median, s.donor.search_sigma, route.decision_day, rate))
    if integrals:
        survive = _donor_wait_survival(np.array(integrals))
        shares: dict[int, np.ndarray] = {}
        for (i, k, col, factor), value in zip(pieces, survive, strict=True):
            shares.setdefault(i, np.zeros((3, 2)))[k, col] += factor * value
        for i, table in shares.items():
            if table.sum() > 0:
                out[i] = (table / table.sum()).ravel()
            else:
                out[i] = group_weights(scenarios[i])
    return out  # type: ignore[return-value]


def _donor_wait_survival(rows: np.ndarray) -> np.ndarray:
    """waiting.donor_wait_moments(...)[0] for rows (median, sigma, decision_day, rate), vectorised."""
    median, sigma, decision, rate = rows.T
    out = np.empty(len(rows))
    point = sigma == 0
    out[point] = np.exp(-rate[point] * np.maximum(median[point] - decision[point], 0.0))
    spread = ~point
    if spread.any():
        m, s, d, r = median[spread], sigma[spread], decision[spread], rate[spread]
        with np.errstate(divide="ignore"):
            z0 = np.where(d > 0, np.log(d / m) / s, -np.inf)
        done = special.ndtr(z0)
        # The same interval as waiting.py; from -inf, start where the normal density is below 1e-30 of its mode.
        lo = np.maximum(z0, -12.0 - s)
        top = np.maximum(z0, 0.0) + s + 12.0
        half = (top - lo) / 2
        z = (lo + top)[:, None] / 2 + half[:, None] * _NODES[None, :]
        excess = m[:, None] * np.exp(s[:, None] * z) - d[:, None]
        integrand = np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi) * np.exp(-r[:, None] * excess)
        out[spread] = done + half * (integrand @ _GL_WEIGHTS)
    return out
