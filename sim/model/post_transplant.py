"""Latent events after HSCT, vectorised: relapse and NRM, death after relapse, GVHD, loss to follow-up.

Post-transplant events involve no shared resource, so they are drawn after the SimPy run from each
patient's own uniforms. Relapse and NRM are independent latent Weibull times (the first one happens),
which is exactly the competing-risks model with the cause-specific hazards solved in calibrate.py;
scaling both hazards (the null twin) moves every patient's times monotonically, so a scenario and
its null twin share random numbers. Days are calendar days; NaN means no such event within the
horizon after HSCT (or not transplanted). GVHD is recorded only when it precedes relapse and death.

When grade III-IV acute GVHD or chronic GVHD needing systemic therapy raises the NRM hazard from its
onset, the GVHD onsets are latent times (which may precede NRM) and the NRM time inverts the
piecewise cumulative hazard with the same unit exponential, so common random numbers still hold;
with both hazard ratios 1 the unlinked code path runs unchanged.
"""

from __future__ import annotations

import numpy as np

from sim.scenario.calibrate import AGVHD_WINDOW_DAYS, PostTransplantModel

POST_EVENTS = ("relapse_day", "nrm_day", "death_day", "agvhd_day", "agvhd_grade34", "cgvhd_day",
               "cgvhd_systemic", "ltfu_day")


def post_transplant_history(hsct_day: np.ndarray, group: np.ndarray, u: np.ndarray,
                            model: PostTransplantModel) -> dict[str, np.ndarray]:
    """Calendar days of post-HSCT events for every patient (NaN where none or not transplanted)."""
    e = -np.log1p(-u)                                   # unit exponentials, one column per quantity
    t_relapse = _weibull_time(e[:, 0], model.relapse_hr[group] * model.relapse_cumhaz, model.relapse_shape,
                              model.tau_days)
    t_agvhd = _rate_time(e[:, 3], model.agvhd_rate)
    t_cgvhd = model.cgvhd_onset_days + _rate_time(e[:, 5], model.cgvhd_rate)
    nrm_scale = model.nrm_hr[group] * model.nrm_cumhaz
    if model.gvhd_linked:
        severe = np.where((t_agvhd <= AGVHD_WINDOW_DAYS) & (u[:, 4] < model.agvhd_severe_fraction), t_agvhd, np.inf)
        systemic = np.where(u[:, 6] < model.p_cgvhd_systemic, t_cgvhd, np.inf)
        t_nrm = _linked_nrm_time(e[:, 1], nrm_scale, model, severe, systemic)
    else:
        t_nrm = _weibull_time(e[:, 1], nrm_scale, model.nrm_shape, model.tau_days)
    first = np.minimum(t_relapse, t_nrm)
    horizon = model.horizon_days
    relapsed = (t_relapse <= t_nrm) & (t_relapse <= horizon)
    nrm = (t_nrm < t_relapse) & (t_nrm <= horizon)
    t_after = _rate_time(e[:, 2], model.post_relapse_death_rate)
    t_death = np.where(relapsed, t_relapse + t_after, np.where(nrm, t_nrm, np.inf))
    has_agvhd = (t_agvhd <= AGVHD_WINDOW_DAYS) & (t_agvhd < first)
    has_cgvhd = (t_cgvhd < first) & (t_cgvhd <= horizon)
    t_ltfu = _rate_time(e[:, 7], model.ltfu_rate)

    def calendar(t: np.ndarray, happened: np.ndarray) -> np.ndarray:
        return np.where(happened & (t <= horizon), hsct_day + t, np.nan)

    return {
        "relapse_day": calendar(t_relapse, relapsed),
        "nrm_day": calendar(t_nrm, nrm),
        "death_day": calendar(t_death, relapsed | nrm),
        "agvhd_day": calendar(t_agvhd, has_agvhd),
        "agvhd_grade34": has_agvhd & (u[:, 4] < model.agvhd_severe_fraction) & ~np.isnan(hsct_day),
        "cgvhd_day": calendar(t_cgvhd, has_cgvhd),
        "cgvhd_systemic": has_cgvhd & (u[:, 6] < model.p_cgvhd_systemic) & ~np.isnan(hsct_day),
        "ltfu_day": calendar(t_ltfu, np.ones_like(has_cgvhd)),
    }


def _linked_nrm_time(e: np.ndarray, scale: np.ndarray, model: PostTransplantModel, severe: np.ndarray,
                     systemic: np.ndarray) -> np.ndarray:
    """NRM time whose hazard is multiplied by the GVHD hazard ratios from the (latent) onsets onwards.

    On the baseline scale h = H0(t) = scale (t / tau)^shape the cumulative hazard is piecewise linear: slope
    1 before the first onset, that GVHD's hazard ratio until the second, the product after it. Invert it
    at the unit exponential e, then map h back to t.
    """
    tau, shape = model.tau_days, model.nrm_shape
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        h_acute = np.where(np.isfinite(severe), scale * (severe / tau) ** shape, np.inf)
        h_chronic = np.where(np.isfinite(systemic), scale * (systemic / tau) ** shape, np.inf)
        first, second = np.minimum(h_acute, h_chronic), np.maximum(h_acute, h_chronic)
        slope = np.where(h_acute <= h_chronic, model.nrm_hr_agvhd34, model.nrm_hr_cgvhd)
        at_second = first + slope * (second - first)
        h = np.where(e <= first, e,
                     np.where(e <= at_second, first + (e - first) / slope,
                              second + (e - at_second) / (model.nrm_hr_agvhd34 * model.nrm_hr_cgvhd)))
        return np.where(scale > 0, tau * (h / scale) ** (1.0 / shape), np.inf)


def _weibull_time(e: np.ndarray, cumhaz_at_tau: np.ndarray, shape: float, tau: float) -> np.ndarray:
    """Solve cumhaz_at_tau * (t / tau)^shape = e for t (inf where the hazard is 0, or beyond any float)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):   # a time past 1e308 days is never
        return np.where(cumhaz_at_tau > 0, tau * (e / cumhaz_at_tau) ** (1.0 / shape), np.inf)


def _rate_time(e: np.ndarray, rate: float) -> np.ndarray:
    """Exponential time with the given rate (inf for rate 0, 0 for an infinite rate)."""
    if rate == 0:
        return np.full_like(e, np.inf)
    return e / rate
