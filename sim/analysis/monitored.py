"""A trial analysed with its interim monitoring rules: who was enrolled before a rule stopped it, and its claim.

A rule that fires stops enrollment on its day: the trial of n planned patients then holds the first m
enrolled before that day, followed to the final analysis as any trial is, and makes no efficacy claim
(H0 not rejected; its estimates are still reported). Rules that only stop enrollment leave every
enrolled patient's history unchanged, so the sizing study simulates each replicate once with everyone
enrolled and applies the rules afterwards for every n (model/monitoring.py: the stop found from the
first n patients' observations is the day the live model stops). The same rows also carry the design
without rules (`_no_rules` columns), from the same replicates, for comparison.
"""

from __future__ import annotations

import numpy as np

from sim.analysis.nested import replicate_columns
from sim.model.monitoring import landmark_status, stop, trial_observations
from sim.model.pathway import TrialHistory
from sim.scenario.schema import DAYS_PER_MONTH

NO_RULES = ("rfs_reject", "n_enrolled", "n_transplanted", "duration_months")


def stop_columns(stopped: np.ndarray, rule: np.ndarray, day: np.ndarray, first_enroll: float) -> dict[str, np.ndarray]:
    """Whether each trial stopped, by which rule, and when (months from the first enrollment)."""
    return {"stopped": stopped, "stop_rule": rule,
            "stop_month": np.where(stopped, (day - first_enroll) / DAYS_PER_MONTH, np.nan)}


def monitored_columns(history: TrialHistory, ns: tuple[int, ...], endpoints: str, flow: bool,
                      after_hsct: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """runner.replicate_row for each planned n with the scenario's rules applied, plus the `_no_rules` columns.

    after_hsct: the arm's post-HSCT times in days after a transplant (pathway.times_after_hsct), which the
    day-100 NRM rule and the futility look read.
    """
    s = history.scenario
    enroll = history.draws.enroll_day
    landmark = s.analysis.landmark_months * DAYS_PER_MONTH
    obs = trial_observations(history.draws.response, history.exit_reason, history.days, after_hsct)
    status = landmark_status(enroll, history.exit_reason, history.days, after_hsct, landmark)
    stops = [stop(obs, status, n, s.monitoring, s.analysis) for n in ns]
    enrolled = np.array([int(np.count_nonzero(enroll[:n] < st.day)) for n, st in zip(ns, stops, strict=True)])
    columns = replicate_columns(history, tuple(int(m) for m in enrolled), endpoints, flow)
    stopped = np.array([st.stopped for st in stops])
    for key in ("rfs_reject", "itt_reject"):
        if key in columns:
            columns[key] = columns[key] & ~stopped
    columns |= stop_columns(stopped, np.array([st.rule for st in stops]), np.array([st.day for st in stops]),
                            float(enroll[0]))
    unmonitored = replicate_columns(history, ns, "rfs", False)
    return columns | {f"{key}_no_rules": unmonitored[key] for key in NO_RULES}
