"""From latent histories to what the statistician reports: data cutoff, observed data, every endpoint.

The final analysis happens when every enrolled patient has left the pathway or been followed for
the landmark after HSCT (`cutoff = "landmark"`), or at a fixed time after the first enrollment
(`"calendar"`). Administrative censoring at the cutoff and loss to follow-up are applied here, to
the first n enrolled patients only, so analysing the first n patients of a longer trial is the
analysis of an n-patient trial. `primary_analysis` is the fast path the sizing study calls;
`endpoints` adds every secondary endpoint. Times are days since HSCT (or enrollment for ITT).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from sim.calibrate import AGVHD_WINDOW_DAYS
from sim.estimators import (
    Estimate,
    TestResult,
    aalen_johansen,
    clopper_pearson,
    km_landmark,
    landmark_test,
    reverse_km_median,
)
from sim.model import BLINA_DEATH, INDUCTION_DEATH, TRANSPLANTED, TrialHistory
from sim.patient_draws import CR, CRI
from sim.scenario import DAYS_PER_MONTH

INF = np.inf


@dataclass(frozen=True)
class Observed:
    """Observed data of the first n patients at the data cutoff, for the patients transplanted by then.

    Event times are days since HSCT (inf: none, even latent); each is computed on first use, so the
    primary analysis pays only for relapse and death. Follow-up ends at the cutoff, at loss to
    follow-up or at the simulated horizon, whichever comes first.
    """

    history: TrialHistory
    n: int
    cutoff_day: float
    hsct: np.ndarray          # indices (into the first n) of patients transplanted by the cutoff

    @cached_property
    def hsct_day(self) -> np.ndarray:
        """Calendar day of HSCT of each transplanted patient."""
        return self.history.days["hsct_day"][self.hsct]

    @cached_property
    def follow_end(self) -> np.ndarray:
        """End of follow-up, days since HSCT."""
        horizon = self.history.scenario.post_transplant.horizon_months * DAYS_PER_MONTH
        return np.minimum(np.minimum(self.cutoff_day - self.hsct_day, self._since("ltfu_day")), horizon)

    @cached_property
    def relapse(self) -> np.ndarray:
        return self._since("relapse_day")

    @cached_property
    def death(self) -> np.ndarray:
        return self._since("death_day")

    @cached_property
    def agvhd(self) -> np.ndarray:
        return self._since("agvhd_day")

    @cached_property
    def agvhd34(self) -> np.ndarray:
        return self.history.post["agvhd_grade34"][self.hsct]

    @cached_property
    def cgvhd(self) -> np.ndarray:
        return self._since("cgvhd_day")

    @cached_property
    def cgvhd_systemic(self) -> np.ndarray:
        return self.history.post["cgvhd_systemic"][self.hsct]

    @property
    def first_enroll_day(self) -> float:
        return float(self.history.draws.enroll_day[0])

    def _since(self, name: str) -> np.ndarray:
        days = self.history.post[name][self.hsct] - self.hsct_day
        days[np.isnan(days)] = INF
        return days


@dataclass(frozen=True)
class PrimaryResult:
    """The primary endpoint and its test, plus the counts a sizing study needs."""

    estimate: Estimate
    test: TestResult
    n_transplanted: int
    n_evaluable: int
    cutoff_day: float
    duration_months: float


def cutoff_day(history: TrialHistory, n: int) -> float:
    """Calendar day of the final analysis, from the first n patients alone."""
    s = history.scenario
    enroll = history.draws.enroll_day[:n]
    if s.analysis.cutoff == "calendar":
        return float(enroll[0] + s.analysis.calendar_cutoff_months * DAYS_PER_MONTH)
    exit_day = history.days["exit_day"][:n]
    hsct = history.days["hsct_day"][:n]
    landmark = s.analysis.landmark_months * DAYS_PER_MONTH
    ends = np.where(history.exit_reason[:n] == TRANSPLANTED, hsct + landmark, exit_day)
    return float(np.max(ends))


def observe(history: TrialHistory, n: int | None = None) -> Observed:
    """Cut the latent histories of the first n patients at the data cutoff."""
    n = history.n if n is None else n
    cutoff = cutoff_day(history, n)
    return Observed(history, n, cutoff, np.flatnonzero(history.days["hsct_day"][:n] <= cutoff))


def time_to_first(obs: Observed, *event_days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(time, event) for the first of several events, censored at the end of follow-up."""
    first = np.minimum.reduce(event_days) if len(event_days) > 1 else event_days[0]
    event = first <= obs.follow_end
    return np.where(event, first, obs.follow_end), event


def competing(obs: Observed, event_day: np.ndarray, competing_days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(time, cause) with cause 1 = the event, 2 = a competing event first, 0 = censored."""
    time = np.minimum(np.minimum(event_day, competing_days), obs.follow_end)
    cause = np.where(event_day <= np.minimum(competing_days, obs.follow_end), 1,
                     np.where(competing_days <= obs.follow_end, 2, 0))
    return time, cause


def primary_analysis(history: TrialHistory, n: int | None = None) -> PrimaryResult:
    """Kaplan-Meier RFS at the landmark after HSCT and the scenario's test of H0: S <= p0."""
    a = history.scenario.analysis
    obs = observe(history, n)
    landmark = a.landmark_months * DAYS_PER_MONTH
    time, event = time_to_first(obs, obs.relapse, obs.death)
    n_evaluable = int(np.count_nonzero((event & (time <= landmark)) | (time >= landmark)))
    duration = (obs.cutoff_day - obs.first_enroll_day) / DAYS_PER_MONTH
    if obs.hsct.size < a.min_transplanted:
        reason = f"{obs.hsct.size} transplanted, fewer than analysis.min_transplanted = {a.min_transplanted}"
        empty = Estimate(np.nan, np.nan, np.nan, np.nan, int(obs.hsct.size), int(event.sum()), reason)
        return PrimaryResult(empty, TestResult(np.nan, np.nan, False, reason), int(obs.hsct.size), n_evaluable,
                             obs.cutoff_day, duration)
    km = km_landmark(time, event, landmark)
    test = landmark_test(time, event, landmark, a.p0, a.alpha, a.test, km=km)
    return PrimaryResult(km[0], test, int(obs.hsct.size), n_evaluable, obs.cutoff_day, duration)


def itt_data(history: TrialHistory, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(time since enrollment, event): failure to reach HSCT is an event on the day it happens."""
    n = history.n if n is None else n
    obs = observe(history, n)
    enroll = history.draws.enroll_day[:n]
    exit_day = history.days["exit_day"][:n]
    left = (history.exit_reason[:n] != TRANSPLANTED) & (exit_day <= obs.cutoff_day)
    time = np.minimum(obs.cutoff_day, np.where(np.isnan(exit_day), INF, exit_day)) - enroll
    event = left.copy()
    hsct_time, hsct_event = time_to_first(obs, obs.relapse, obs.death)
    offset = history.days["hsct_day"][:n][obs.hsct] - enroll[obs.hsct]
    time[obs.hsct] = offset + hsct_time
    event[obs.hsct] = hsct_event
    return time, event


def endpoints(history: TrialHistory, n: int | None = None) -> list[dict[str, object]]:
    """Every protocol endpoint of the first n patients: one row each (estimate, CI, denominator, method)."""
    n = history.n if n is None else n
    s = history.scenario
    a = s.analysis
    obs = observe(history, n)
    landmark = a.landmark_months * DAYS_PER_MONTH
    lm = f"{a.landmark_months:g}-month"
    primary = primary_analysis(history, n)
    rows = [_row(f"{lm} RFS after HSCT (primary)", primary.estimate,
                 f"Kaplan-Meier, Greenwood SE, log(-log) 95% CI; test {a.test}: statistic "
                 f"{primary.test.statistic:.3f}, one-sided p = {primary.test.p_value:.4f}, "
                 f"H0 S <= {a.p0} {'rejected' if primary.test.reject else 'not rejected'} at alpha {a.alpha}"
                 + (f" ({primary.test.reason})" if primary.test.reason else ""))]

    itt_time, itt_event = itt_data(history, n)
    itt, _ = km_landmark(itt_time, itt_event, landmark)
    rows.append(_row(f"{lm} event-free survival from enrollment (ITT)", itt,
                     "Kaplan-Meier; failure to reach HSCT is an event on its day"))

    rows += _response_rows(history, n, obs)
    os_time, os_event = time_to_first(obs, obs.death)
    rows.append(_row(f"{lm} OS after HSCT", km_landmark(os_time, os_event, landmark)[0], "Kaplan-Meier"))
    t, cause = competing(obs, obs.relapse, obs.death)
    rows.append(_row(f"{lm} relapse incidence after HSCT", aalen_johansen(t, cause, 1, landmark),
                     "Aalen-Johansen, NRM competing"))
    rows.append(_row(f"{lm} NRM incidence after HSCT", aalen_johansen(t, cause, 2, landmark),
                     "Aalen-Johansen, relapse competing"))
    relapse_or_death = np.minimum(obs.relapse, obs.death)
    t, cause = competing(obs, obs.agvhd, relapse_or_death)
    rows.append(_row("acute GVHD II-IV by day 100", aalen_johansen(t, cause, 1, AGVHD_WINDOW_DAYS),
                     "Aalen-Johansen, relapse and death competing"))
    t, cause = competing(obs, np.where(obs.agvhd34, obs.agvhd, INF), relapse_or_death)
    rows.append(_row("acute GVHD III-IV by day 100", aalen_johansen(t, cause, 1, AGVHD_WINDOW_DAYS),
                     "Aalen-Johansen, relapse and death competing"))
    t, cause = competing(obs, obs.cgvhd, relapse_or_death)
    rows.append(_row(f"{lm} chronic GVHD incidence", aalen_johansen(t, cause, 1, landmark),
                     "Aalen-Johansen, relapse and death competing"))
    grfs_time, grfs_event = time_to_first(obs, obs.relapse, obs.death, np.where(obs.agvhd34, obs.agvhd, INF),
                                          np.where(obs.cgvhd_systemic, obs.cgvhd, INF))
    rows.append(_row(f"{lm} GRFS after HSCT", km_landmark(grfs_time, grfs_event, landmark)[0],
                     "Kaplan-Meier; events: aGVHD III-IV, chronic GVHD needing systemic therapy, relapse, death"))
    rows += _count_rows(primary, obs, landmark)
    return rows


def _response_rows(history: TrialHistory, n: int, obs: Observed) -> list[dict[str, object]]:
    d, days = history.draws, history.days
    assay = history.scenario.mrd.assay
    cutoff = obs.cutoff_day
    # Known response status by the cutoff: assessed, or died before the assessment.
    died_before = np.isin(history.exit_reason[:n], (INDUCTION_DEATH, BLINA_DEATH)) & (days["exit_day"][:n] <= cutoff)
    assessed = days["response_day"][:n] <= cutoff
    known = assessed | died_before
    crc = assessed & np.isin(d.response[:n], (CR, CRI))
    turnaround = history.scenario.assay.turnaround_days
    mrd1 = crc & (days["response_day"][:n] + turnaround <= cutoff)
    mrd2 = days["eligible_day"][:n] <= cutoff
    return [
        _row("CRc (CR + CRi) rate", clopper_pearson(int(crc.sum()), int(known.sum())),
             "Clopper-Pearson 95% CI; denominator: enrolled with known response (incl. deaths before assessment)"),
        _row(f"MRD-negative rate after induction ({assay})",
             clopper_pearson(int((mrd1 & d.mrd1_negative[:n]).sum()), int(mrd1.sum())),
             "Clopper-Pearson 95% CI; denominator: CR/CRi patients with a result"),
        _row(f"MRD-negative rate before HSCT ({assay})",
             clopper_pearson(int((mrd2 & d.mrd2_negative[:n]).sum()), int(mrd2.sum())),
             "Clopper-Pearson 95% CI; denominator: patients tested after consolidation"),
    ]


def _count_rows(primary: PrimaryResult, obs: Observed, landmark: float) -> list[dict[str, object]]:
    time, event = time_to_first(obs, obs.relapse, obs.death)
    follow_up = reverse_km_median(time, event) / DAYS_PER_MONTH
    counts = [
        ("enrolled", obs.n, "patients"),
        ("transplanted by the cutoff", primary.n_transplanted, "patients"),
        (f"evaluable at {landmark / DAYS_PER_MONTH:g} months", primary.n_evaluable,
         "transplanted with an event by the landmark or followed past it"),
        ("median follow-up after HSCT", follow_up, "months, reverse Kaplan-Meier"),
        ("trial duration", primary.duration_months, "months from first enrollment to the data cutoff"),
    ]
    return [{"endpoint": name, "estimate": value, "se": np.nan, "lower": np.nan, "upper": np.nan, "n": np.nan,
             "events": np.nan, "method": method, "not_evaluable_reason": ""} for name, value, method in counts]


def _row(name: str, est: Estimate, method: str) -> dict[str, object]:
    return {"endpoint": name, "estimate": est.estimate, "se": est.se, "lower": est.lower, "upper": est.upper,
            "n": est.n, "events": est.events, "method": method, "not_evaluable_reason": est.reason}
