"""Post-HSCT curves when GVHD raises non-relapse mortality: forward equations of a multi-state model.

With the link, a patient's NRM hazard is h_nrm(t) * HR_a^[grade III-IV acute GVHD before t] *
HR_c^[chronic GVHD needing systemic therapy before t]. GVHD onsets are independent of relapse and NRM
given the subgroup, so (acute GVHD {none, II, III-IV} x chronic GVHD {none, without, with systemic
therapy}) among patients alive without relapse is a non-homogeneous Markov chain that patients leave
by relapse or NRM. Its Kolmogorov forward equations, integrated numerically, give every incidence and
survival curve the calibration and the truths need (no simulation). Time is integrated in
s = t^(1/q), q = max(1, 1 / smallest Weibull shape), where every hazard is bounded at s = 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# scipy.integrate and scipy.linalg are imported where they are used (as in calibrate.py: worker processes never do).
AGVHD_WINDOW_DAYS = 100.0
CURVES = ("rfs", "os", "grfs", "relapse", "nrm", "agvhd", "agvhd34", "cgvhd")
# Per-group state: 9 GVHD states alive without relapse, relapsed alive, and 5 accumulated incidences.
_V, _R, _CR, _CN, _CA, _CA3, _CC = slice(0, 9), 9, 10, 11, 12, 13, 14
_WIDTH = 15
_RTOL, _ATOL = 1e-11, 1e-14
_STIFF = 200.0   # rate x length of a piece above which the forward equations are solved as stiff


def linked_curves(model: Any, times: np.ndarray | float) -> dict[str, np.ndarray]:
    """Population curves (subgroups weighted) at the given days after HSCT, keyed as in CURVES.

    rfs: alive without relapse; os: alive; grfs: alive without relapse, grade III-IV acute GVHD or
    systemic chronic GVHD; relapse, nrm: cumulative incidences; agvhd (II-IV), agvhd34 (III-IV): onset
    by min(t, day 100) before relapse and death; cgvhd: onset of chronic GVHD before relapse and death.
    """
    times = np.atleast_1d(np.asarray(times, dtype=float))
    groups = model.groups
    per_group = _group_states(model, groups, times)          # (len(times), G, _WIDTH)
    w = model.weights[groups]
    v = per_group[:, :, _V].reshape(len(times), len(groups), 3, 3)
    alive = v.sum(axis=(2, 3))
    return {
        "rfs": alive @ w,
        "os": (alive + per_group[:, :, _R]) @ w,
        "grfs": v[:, :, :2, :2].sum(axis=(2, 3)) @ w,
        "relapse": per_group[:, :, _CR] @ w,
        "nrm": per_group[:, :, _CN] @ w,
        "agvhd": per_group[:, :, _CA] @ w,
        "agvhd34": per_group[:, :, _CA3] @ w,
        "cgvhd": per_group[:, :, _CC] @ w,
    }


def _group_states(model: Any, groups: np.ndarray, times: np.ndarray) -> np.ndarray:
    """State of each subgroup at each requested time, integrated piecewise between rate changes."""
    from scipy import integrate, linalg

    k_r, k_n, tau = model.relapse_shape, model.nrm_shape, model.tau_days
    q = max(1.0, 1.0 / min(k_r, k_n))
    rel = model.relapse_hr[groups] * model.relapse_cumhaz * k_r * q / tau ** k_r     # h_r dt/ds = rel s^(q k_r - 1)
    nrm = model.nrm_hr[groups] * model.nrm_cumhaz * k_n * q / tau ** k_n
    hr = np.array([[1.0, 1.0, model.nrm_hr_cgvhd]] * 2 + [[model.nrm_hr_agvhd34] * 2
                                                          + [model.nrm_hr_agvhd34 * model.nrm_hr_cgvhd]])
    f, p, mu = model.agvhd_severe_fraction, model.p_cgvhd_systemic, model.post_relapse_death_rate
    a_rate, c_rate, d0 = model.agvhd_rate, model.cgvhd_rate, model.cgvhd_onset_days
    # Exponents in s are >= 0 by the choice of q; rounding can leave -1e-16, which 0 ** x would refuse.
    e_r, e_n = max(0.0, q * k_r - 1.0), max(0.0, q * k_n - 1.0)
    n_groups = len(groups)
    # The equations are linear: dy/ds = (s^e_r R + s^e_n N + dt/ds O) y, with O (GVHD onsets) set per piece.
    # As three matrix products the right-hand side costs a fifth of writing out each transition.
    parts = np.empty((3, n_groups * _WIDTH, n_groups * _WIDTH))
    parts[0], parts[1] = linalg.block_diag(*_relapse_blocks(rel)), linalg.block_diag(*_nrm_blocks(nrm, hr))

    def rhs(s: float, y: np.ndarray) -> np.ndarray:
        return np.array([s ** e_r, s ** e_n, q * s ** (q - 1.0)]) @ (parts @ y)

    state = np.zeros((n_groups, _WIDTH))
    state[:, 0] = 1.0
    if not np.isfinite(a_rate):                      # everyone has acute GVHD at HSCT
        state = _onset_jump(state, acute=True, fraction=f)
    result = np.empty((len(times), n_groups, _WIDTH))
    edges = sorted({0.0, float(times.max()), *(b for b in (AGVHD_WINDOW_DAYS, d0) if 0 < b < times.max())})
    for lo, hi in zip(edges, [*edges[1:], np.inf], strict=True):
        if not np.isfinite(c_rate) and lo == d0:     # everyone alive without relapse gets chronic GVHD at its onset
            state = _onset_jump(state, acute=False, fraction=p)
        result[times == lo] = state
        if not np.isfinite(hi):
            break
        inside = (times > lo) & (times <= hi)
        # Rates are constant in t on each piece; the piece runs in s = t^(1/q) with dense output at the times.
        acute = a_rate if np.isfinite(a_rate) and lo < AGVHD_WINDOW_DAYS else 0.0
        chronic = c_rate if np.isfinite(c_rate) and lo >= d0 else 0.0
        parts[2] = linalg.block_diag(*[_onset_block(acute, f, chronic, p, mu)] * n_groups)
        s_eval = times[inside] ** (1.0 / q)
        s_start, s_end = lo ** (1.0 / q), hi ** (1.0 / q)
        if not s_end > s_start:          # a piece too short to integrate in s (tiny or huge shape): nothing moves
            result[inside] = state
            continue
        # An explicit method needs steps shorter than 1 / the fastest rate: when that rate times the piece's
        # length is large (extreme incidences or shapes), the equations are stiff and take the implicit Radau.
        fastest = (np.max(rel * s_end ** e_r + nrm * hr.max() * s_end ** e_n)
                   + (acute + chronic) * q * s_end ** (q - 1.0))
        method = "Radau" if fastest * (s_end - s_start) > _STIFF else "DOP853"
        sol = integrate.solve_ivp(rhs, (s_start, s_end), state.ravel(), method=method,
                                  t_eval=np.unique(np.append(s_eval, s_end)), rtol=_RTOL, atol=_ATOL)
        if not sol.success:
            raise RuntimeError(f"GVHD-NRM forward equations failed: {sol.message}")
        at = np.searchsorted(sol.t, s_eval)
        result[inside] = sol.y[:, at].T.reshape(-1, n_groups, _WIDTH)
        state = sol.y[:, -1].reshape(n_groups, _WIDTH)
    return result


def _relapse_blocks(rel: np.ndarray) -> np.ndarray:
    """Each group's block of the relapse part of the forward equations' matrix, per unit of s^e_r: the GVHD states
    lose rel to relapse, which enters the relapsed-alive state and the relapse incidence."""
    blocks = np.zeros((len(rel), _WIDTH, _WIDTH))
    states = np.arange(9)
    blocks[:, states, states] = -rel[:, None]
    blocks[:, _R, _V] = blocks[:, _CR, _V] = rel[:, None]
    return blocks


def _nrm_blocks(nrm: np.ndarray, hr: np.ndarray) -> np.ndarray:
    """Each group's block of the NRM part, per unit of s^e_n: each GVHD state dies at nrm times its hazard ratio
    into the NRM incidence."""
    rates = nrm[:, None] * hr.ravel()[None, :]
    blocks = np.zeros((len(nrm), _WIDTH, _WIDTH))
    states = np.arange(9)
    blocks[:, states, states] = -rates
    blocks[:, _CN, _V] = rates
    return blocks


def _onset_block(acute: float, severe: float, chronic: float, systemic: float, mu: float) -> np.ndarray:
    """A group's block of the onset part (the same for every group), per unit of dt/ds: acute GVHD (a fraction
    `severe` grade III-IV) and chronic GVHD (a fraction `systemic` needing systemic therapy) at constant rates from
    the states without them, with their incidences; death after relapse at rate mu."""
    block = np.zeros((_WIDTH, _WIDTH))
    for j in range(3):                      # acute onset: acute grade 0 -> II or III-IV, chronic state kept
        block[j, j] -= acute
        block[3 + j, j] += acute * (1.0 - severe)
        block[6 + j, j] += acute * severe
        block[_CA, j], block[_CA3, j] = acute, acute * severe
    for i in range(3):                      # chronic onset: chronic none -> without or with systemic therapy
        block[3 * i, 3 * i] -= chronic
        block[3 * i + 1, 3 * i] += chronic * (1.0 - systemic)
        block[3 * i + 2, 3 * i] += chronic * systemic
        block[_CC, 3 * i] = chronic
    block[_R, _R] = -mu
    return block


def _onset_jump(state: np.ndarray, acute: bool, fraction: float) -> np.ndarray:
    """Move everyone without that GVHD into it at once (an infinite onset hazard), `fraction` to the severe grade."""
    state = state.copy()
    n = state.shape[0]
    v = state[:, _V].reshape(n, 3, 3)
    if acute:
        moved = v[:, 0, :].copy()
        v[:, 1, :] += (1.0 - fraction) * moved
        v[:, 2, :] += fraction * moved
        v[:, 0, :] = 0.0
        state[:, _CA] += moved.sum(axis=1)
        state[:, _CA3] += fraction * moved.sum(axis=1)
    else:
        moved = v[:, :, 0].copy()
        v[:, :, 1] += (1.0 - fraction) * moved
        v[:, :, 2] += fraction * moved
        v[:, :, 0] = 0.0
        state[:, _CC] += moved.sum(axis=1)
    state[:, _V] = v.reshape(n, 9)
    return state
