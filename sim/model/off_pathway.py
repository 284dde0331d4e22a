"""Follow-up of patients who leave the pathway alive: relapse, death and loss to follow-up, vectorised.

Like post-transplant events these involve no interaction, so they are drawn after the SimPy run from
each patient's own uniforms (stream "off_pathway"), as exponential times from the day the patient
left: death after induction failure (refractory) or after a relapse (in consolidation or while
waiting for HSCT); for patients leaving in remission, relapse (hazard by their latest MRD result)
competing with death in remission, then death after relapse. Loss to follow-up has the post-HSCT
hazard, from the day they leave. Days are calendar days; NaN means none within the horizon after
leaving, or not applicable (transplanted, died on the pathway, still on it, or not followed).
"""

from __future__ import annotations

import numpy as np

from sim.model.draws import PatientDraws
from sim.scenario.schema import DAYS_PER_MONTH, Scenario

OFF_EVENTS = ("relapse_day", "death_day", "ltfu_day")
# State in which a patient leaves the pathway alive.
NOT_LEFT_ALIVE, LEFT_REFRACTORY, LEFT_RELAPSED, LEFT_IN_REMISSION = range(4)


def off_pathway_history(scenario: Scenario, draws: PatientDraws, state: np.ndarray, mrd_negative: np.ndarray,
                        exit_day: np.ndarray, ltfu_rate: float, horizon_days: float) -> dict[str, np.ndarray]:
    """Calendar days of relapse (after leaving in remission), death and loss to follow-up after leaving alive.

    state: NOT_LEFT_ALIVE, LEFT_REFRACTORY, LEFT_RELAPSED or LEFT_IN_REMISSION per patient; mrd_negative: latest MRD
    result of those leaving in remission.
    """
    o = scenario.off_pathway
    if not o.followed:
        return {name: np.full(len(state), np.nan) for name in OFF_EVENTS}
    e = -np.log1p(-draws.off_pathway_uniforms)   # unit exponentials: relapse, death in remission, death, ltfu
    after_refractory = _rate_time(e[:, 2], np.log(2.0) / (o.refractory_median_months * DAYS_PER_MONTH))
    after_relapse = _rate_time(e[:, 2], np.log(2.0) / (o.post_relapse_median_months * DAYS_PER_MONTH))
    relapse_rate = np.where(mrd_negative, _yearly(o.relapse_per_year_mrd_negative),
                            _yearly(o.relapse_per_year_mrd_positive))
    t_relapse = _rate_time(e[:, 0], relapse_rate)
    t_death_in_remission = _rate_time(e[:, 1], _yearly(o.death_in_remission_per_year))
    remission = state == LEFT_IN_REMISSION
    relapses = remission & (t_relapse < t_death_in_remission)
    t_death = np.select([state == LEFT_REFRACTORY, state == LEFT_RELAPSED, relapses, remission],
                        [after_refractory, after_relapse, t_relapse + after_relapse, t_death_in_remission], np.inf)
    alive = state != NOT_LEFT_ALIVE

    def calendar(t: np.ndarray, happened: np.ndarray) -> np.ndarray:
        return np.where(happened & (t <= horizon_days), exit_day + t, np.nan)

    return {
        "relapse_day": calendar(t_relapse, relapses),
        "death_day": calendar(t_death, alive),
        "ltfu_day": calendar(_rate_time(e[:, 3], np.full(len(state), ltfu_rate)), alive),
    }


def _yearly(p: float) -> float:
    """Hazard per day of an event with probability p within a year."""
    return float(-np.log1p(-p) / (12.0 * DAYS_PER_MONTH))


def _rate_time(e: np.ndarray, rate: np.ndarray | float) -> np.ndarray:
    """Exponential times e / rate (inf where the rate is 0)."""
    rate = np.broadcast_to(np.asarray(rate, dtype=float), e.shape)
    with np.errstate(divide="ignore"):
        return np.where(rate > 0, e / np.where(rate > 0, rate, 1.0), np.inf)
