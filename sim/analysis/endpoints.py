"""From latent histories to what the statistician reports: data cutoff, observed data, every endpoint.

The final analysis happens when every enrolled patient has left the pathway or been followed for
the landmark after HSCT (`cutoff = "landmark"`), or at a fixed time after the first enrollment
(`"calendar"`). Administrative censoring at the cutoff and loss to follow-up are applied here, to
the first n enrolled patients only, so analysing the first n patients of a longer trial is the
analysis of an n-patient trial. `primary_analysis` is the fast path the sizing study calls;
`endpoints` adds every secondary endpoint. Times are days since HSCT (or enrollment for ITT, and for
OS and EFS from enrollment, which follow every enrolled patient, also after leaving the pathway).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from sim.model.draws import CR, CRI
from sim.model.pathway import (
    BLINA_DEATH,
    CONSOL_RELAPSE,
    DEATH_EXITS,
    INDUCTION_DEATH,
    NOT_IN_REMISSION,
    TRANSPLANTED,
    WAITING_RELAPSE,
    TrialHistory,
)
from sim.scenario.calibrate import AGVHD_WINDOW_DAYS
from sim.scenario.schema import DAYS_PER_MONTH
from sim.stats.estimators import (
    Estimate,
    TestResult,
    aalen_johansen,
    clopper_pearson,
    km_landmark,
    landmark_test,
    reverse_km_median,
)

INF = np.inf
CUTOFF_MARGIN_DAYS = 1e-6


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
        return np.minimum(np.minimum(self.cutoff_day - self.hsct_day, self.ltfu), horizon)

    @cached_property
    def ltfu(self) -> np.ndarray:
        """Latent loss to follow-up, days since HSCT."""
        return self._since("ltfu_day")

    @cached_property
    def follow_end_cause(self) -> np.ndarray:
        """What ends each patient's follow-up: 1 = data cutoff, 2 = lost to follow-up, 3 = end of simulated horizon.

        follow_end is exactly one of the three ends (a minimum); ties go to the cutoff, then loss to follow-up.
        """
        end = self.follow_end
        return np.where(end == self.cutoff_day - self.hsct_day, 1, np.where(end == self._since("ltfu_day"), 2, 3))

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
    # A microsecond-scale margin so that (cutoff - hsct) >= landmark survives floating-point rounding.
    return float(np.max(ends)) + CUTOFF_MARGIN_DAYS


def observe(history: TrialHistory, n: int | None = None) -> Observed:
    """Cut the latent histories of the first n patients at the data cutoff."""
    n = history.n if n is None else n
    cutoff = cutoff_day(history, n)
    return Observed(history, n, cutoff, np.flatnonzero(history.days["hsct_day"][:n] <= cutoff))


def time_to_first(follow_end: np.ndarray, *event_days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(time, event) for the first of several events, censored at the end of follow-up (Observed.follow_end)."""
    first = np.minimum.reduce(event_days) if len(event_days) > 1 else event_days[0]
    event = first <= follow_end
    return np.where(event, first, follow_end), event


def competing(follow_end: np.ndarray, event_day: np.ndarray, competing_days: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """(time, cause) with cause 1 = the event, 2 = a competing event first, 0 = censored at the end of follow-up."""
    time = np.minimum(np.minimum(event_day, competing_days), follow_end)
    cause = np.where(event_day <= np.minimum(competing_days, follow_end), 1,
                     np.where(competing_days <= follow_end, 2, 0))
    return time, cause


def primary_analysis(history: TrialHistory, n: int | None = None, obs: Observed | None = None) -> PrimaryResult:
    """Kaplan-Meier RFS at the landmark after HSCT and the scenario's test of H0: S <= p0."""
    a = history.scenario.analysis
    obs = observe(history, n) if obs is None else obs
    landmark = a.landmark_months * DAYS_PER_MONTH
    time, event = time_to_first(obs.follow_end, obs.relapse, obs.death)
    n_evaluable = int(np.count_nonzero((event & (time <= landmark)) | (time >= landmark)))
    duration = (obs.cutoff_day - obs.first_enroll_day) / DAYS_PER_MONTH
    reason = _too_few_transplanted(obs)
    if reason:
        events = int(np.count_nonzero(event & (time <= landmark)))
        empty = Estimate(np.nan, np.nan, np.nan, np.nan, int(obs.hsct.size), events, reason)
        return PrimaryResult(empty, TestResult(np.nan, np.nan, False, reason), int(obs.hsct.size), n_evaluable,
                             obs.cutoff_day, duration)
    km = km_landmark(time, event, landmark)
    test = tested_if_evaluable(km, lambda: landmark_test(time, event, landmark, a.p0, a.alpha, a.test, km=km))
    return PrimaryResult(km[0], test, int(obs.hsct.size), n_evaluable, obs.cutoff_day, duration)


def _too_few_transplanted(obs: Observed) -> str:
    """Why post-HSCT endpoints are not analysed (fewer than analysis.min_transplanted), or ''."""
    minimum = obs.history.scenario.analysis.min_transplanted
    if obs.hsct.size < minimum:
        return f"{obs.hsct.size} transplanted, fewer than analysis.min_transplanted = {minimum}"
    return ""


def tested_if_evaluable(km: tuple[Estimate, float], run_test) -> TestResult:
    """The test's result, or 'not rejected' when the landmark estimate itself is not evaluable.

    A trial whose endpoint cannot be estimated makes no efficacy claim, whatever a test that does not
    need the estimate (the one-sample log-rank) would say.
    """
    if not km[0].evaluable:
        return TestResult(np.nan, np.nan, False, km[0].reason)
    return run_test()


def itt_data(history: TrialHistory, n: int | None = None, obs: Observed | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """(time since enrollment, event): failure to reach HSCT is an event on the day it happens.

    Only patients enrolled by the data cutoff are analysed (all of them under the landmark rule).
    """
    obs = observe(history, n) if obs is None else obs
    n = obs.n
    enroll = history.draws.enroll_day[:n]
    exit_day = history.days["exit_day"][:n]
    left = (history.exit_reason[:n] != TRANSPLANTED) & (exit_day <= obs.cutoff_day)
    time = np.minimum(obs.cutoff_day, np.where(np.isnan(exit_day), INF, exit_day)) - enroll
    event = left.copy()
    hsct_time, hsct_event = time_to_first(obs.follow_end, obs.relapse, obs.death)
    time[obs.hsct] = obs.hsct_day - enroll[obs.hsct] + hsct_time
    event[obs.hsct] = hsct_event
    enrolled = enroll <= obs.cutoff_day
    return time[enrolled], event[enrolled]


def itt_analysis(history: TrialHistory, n: int | None = None, obs: Observed | None = None
                 ) -> tuple[Estimate, TestResult]:
    """ITT sensitivity analysis: event-free survival at the landmark from enrollment, tested against itt_p0."""
    a = history.scenario.analysis
    time, event = itt_data(history, n, obs)
    landmark = a.landmark_months * DAYS_PER_MONTH
    km = km_landmark(time, event, landmark)
    return km[0], tested_if_evaluable(km, lambda: landmark_test(time, event, landmark, a.itt_p0, a.alpha, a.test,
                                                                km=km))


# Secondary endpoints: key -> (label, method). "{lm}" is the landmark, e.g. "18-month".
SECONDARY = {
    "crc": ("CRc (CR + CRi) rate",
            "Clopper-Pearson 95% CI; denominator: enrolled with known response (incl. deaths before assessment)"),
    "mrd1": ("MRD-negative rate after induction ({assay})",
             "Clopper-Pearson 95% CI; denominator: CR/CRi patients with a result"),
    "mrd2": ("MRD-negative rate before HSCT ({assay})",
             "Clopper-Pearson 95% CI; denominator: patients tested after consolidation"),
    "os_enroll": ("{lm} OS from enrollment (all enrolled)",
                  "Kaplan-Meier, log(-log) 95% CI; every enrolled patient followed, also after leaving the pathway"),
    "efs_enroll": ("{lm} EFS from enrollment (all enrolled)",
                   "Kaplan-Meier, log(-log) 95% CI; events: induction failure (on the day of the response "
                   "assessment), relapse at any time, death from any cause"),
    "os": ("{lm} OS after HSCT", "Kaplan-Meier, log(-log) 95% CI"),
    "relapse": ("{lm} relapse incidence after HSCT", "Aalen-Johansen, NRM competing"),
    "nrm": ("{lm} NRM incidence after HSCT", "Aalen-Johansen, relapse competing"),
    "agvhd24": ("acute GVHD II-IV by day 100", "Aalen-Johansen, relapse and death competing"),
    "agvhd34": ("acute GVHD III-IV by day 100", "Aalen-Johansen, relapse and death competing"),
    "cgvhd": ("{lm} chronic GVHD incidence", "Aalen-Johansen, relapse and death competing"),
    "grfs": ("{lm} GRFS after HSCT",
             "Kaplan-Meier; events: aGVHD III-IV, chronic GVHD needing systemic therapy, relapse, death"),
}
# Secondary endpoints from enrollment: analysed whatever the number transplanted.
FROM_ENROLLMENT = ("os_enroll", "efs_enroll")


def secondary_estimates(history: TrialHistory, n: int | None = None, obs: Observed | None = None
                        ) -> dict[str, Estimate]:
    """Every secondary endpoint of the first n patients, keyed as in SECONDARY."""
    obs = observe(history, n) if obs is None else obs
    landmark = history.scenario.analysis.landmark_months * DAYS_PER_MONTH
    out = _response_estimates(history, obs) | _enrollment_estimates(history, obs)
    too_few = _too_few_transplanted(obs)
    if too_few:
        return out | {key: Estimate(np.nan, np.nan, np.nan, np.nan, int(obs.hsct.size), 0, too_few)
                      for key in SECONDARY if key not in out}
    os_time, os_event = time_to_first(obs.follow_end, obs.death)
    out["os"] = km_landmark(os_time, os_event, landmark)[0]
    t, cause = competing(obs.follow_end, obs.relapse, obs.death)
    out["relapse"] = aalen_johansen(t, cause, 1, landmark)
    out["nrm"] = aalen_johansen(t, cause, 2, landmark)
    relapse_or_death = np.minimum(obs.relapse, obs.death)
    t, cause = competing(obs.follow_end, obs.agvhd, relapse_or_death)
    out["agvhd24"] = aalen_johansen(t, cause, 1, AGVHD_WINDOW_DAYS)
    t, cause = competing(obs.follow_end, np.where(obs.agvhd34, obs.agvhd, INF), relapse_or_death)
    out["agvhd34"] = aalen_johansen(t, cause, 1, AGVHD_WINDOW_DAYS)
    t, cause = competing(obs.follow_end, obs.cgvhd, relapse_or_death)
    out["cgvhd"] = aalen_johansen(t, cause, 1, landmark)
    grfs_time, grfs_event = time_to_first(obs.follow_end, obs.relapse, obs.death, np.where(obs.agvhd34, obs.agvhd, INF),
                                          np.where(obs.cgvhd_systemic, obs.cgvhd, INF))
    out["grfs"] = km_landmark(grfs_time, grfs_event, landmark)[0]
    return out


def _response_estimates(history: TrialHistory, obs: Observed) -> dict[str, Estimate]:
    d, days, n, cutoff = history.draws, history.days, obs.n, obs.cutoff_day
    # Known response status by the cutoff: assessed, or died before the assessment.
    died_before = np.isin(history.exit_reason[:n], (INDUCTION_DEATH, BLINA_DEATH)) & (days["exit_day"][:n] <= cutoff)
    assessed = days["response_day"][:n] <= cutoff
    crc = assessed & np.isin(d.response[:n], (CR, CRI))
    mrd1 = crc & (days["response_day"][:n] + history.scenario.assay.turnaround_days <= cutoff)
    # The result before HSCT is reported after the turnaround, also for a patient who relapsed or died meanwhile.
    mrd2 = days["mrd2_sample_day"][:n] + history.scenario.assay.turnaround_days <= cutoff
    return {
        "crc": clopper_pearson(int(crc.sum()), int((assessed | died_before).sum())),
        "mrd1": clopper_pearson(int((mrd1 & d.mrd1_negative[:n]).sum()), int(mrd1.sum())),
        "mrd2": clopper_pearson(int((mrd2 & d.mrd2_negative[:n]).sum()), int(mrd2.sum())),
    }


# Safety and transplant rates: key -> (label, method); all Clopper-Pearson among those at risk by the cutoff.
SAFETY = {
    "induction_death": ("death during VIP induction",
                        "Clopper-Pearson 95% CI; denominator: enrolled by the cutoff (VIP starts on enrollment)"),
    "crs3": ("CRS grade >= 3 during blinatumomab",
             "Clopper-Pearson 95% CI; denominator: started blinatumomab by the cutoff"),
    "neurotox3": ("neurotoxicity grade >= 3 during blinatumomab",
                  "Clopper-Pearson 95% CI; denominator: started blinatumomab by the cutoff"),
    "blina_discontinued": ("blinatumomab permanently discontinued",
                           "Clopper-Pearson 95% CI; denominator: started blinatumomab by the cutoff"),
    "hsct": ("HSCT rate (transplanted among enrolled)",
             "Clopper-Pearson 95% CI; transplanted by the cutoff among enrolled by the cutoff"),
}

# Columns of an endpoint row and their empty values; n and events are counts, reject a decision.
ENDPOINT_COLUMNS = {
    "key": "", "endpoint": "", "estimate": np.nan, "se": np.nan, "lower": np.nan, "upper": np.nan, "n": np.nan,
    "events": np.nan, "test": "", "null_value": np.nan, "alpha": np.nan, "statistic": np.nan, "p_value": np.nan,
    "reject": None, "test_reason": "", "method": "", "not_evaluable_reason": "",
}


def blinatumomab_event_days(history: TrialHistory) -> dict[str, np.ndarray]:
    """Calendar days of the end of inpatient blinatumomab, grade >= 3 CRS, grade >= 3 neurotoxicity and
    permanent discontinuation (keys inpatient_end, crs_grade3, neurotox_grade3, discontinued; NaN: none).

    An event during the infusion happens only if it comes before a death during the infusion.
    """
    d, blina = history.draws, history.days["blina_start_day"]
    alive_until = np.where(history.exit_reason == BLINA_DEATH, d.early_death_offset, np.inf)

    def during_blina(offset: np.ndarray) -> np.ndarray:
        return np.where(offset <= alive_until, blina + offset, np.nan)

    return {
        "inpatient_end": during_blina(np.full(history.n, history.scenario.blinatumomab.inpatient_days)),
        "crs_grade3": during_blina(d.crs_offset),
        "neurotox_grade3": during_blina(d.neurotox_offset),
        "discontinued": during_blina(d.discontinuation_offset),
    }


def safety_estimates(history: TrialHistory, obs: Observed) -> dict[str, Estimate]:
    """Induction death, grade >= 3 CRS and neurotoxicity, blinatumomab discontinuation and the HSCT rate.

    Each counts what is known by the data cutoff among the patients who started the treatment by then.
    """
    n, cutoff = obs.n, obs.cutoff_day
    enrolled = history.draws.enroll_day[:n] <= cutoff
    on_blina = history.days["blina_start_day"][:n] <= cutoff
    tox = {key: days[:n] <= cutoff for key, days in blinatumomab_event_days(history).items()}
    died = (history.exit_reason[:n] == INDUCTION_DEATH) & (history.days["exit_day"][:n] <= cutoff)
    return {
        "induction_death": clopper_pearson(int(died.sum()), int(enrolled.sum())),
        "crs3": clopper_pearson(int(tox["crs_grade3"].sum()), int(on_blina.sum())),
        "neurotox3": clopper_pearson(int(tox["neurotox_grade3"].sum()), int(on_blina.sum())),
        "blina_discontinued": clopper_pearson(int(tox["discontinued"].sum()), int(on_blina.sum())),
        "hsct": clopper_pearson(int(obs.hsct.size), int(enrolled.sum())),
    }
def death_days(history: TrialHistory) -> np.ndarray:
    """Calendar day of every patient's death, latent (NaN: none within the horizon, or not followed)."""
    why, days, post, off = history.exit_reason, history.days, history.post, history.off
    return np.where(np.isin(why, DEATH_EXITS), days["exit_day"],
                    np.where(why == TRANSPLANTED, post["death_day"], off["death_day"]))


def efs_event_days(history: TrialHistory) -> np.ndarray:
    """Calendar day of every patient's first EFS event, latent: induction failure, relapse or death."""
    why, days, post, off = history.exit_reason, history.days, history.post, history.off
    at_exit = np.isin(why, (*DEATH_EXITS, NOT_IN_REMISSION, CONSOL_RELAPSE, WAITING_RELAPSE))
    return np.where(at_exit, days["exit_day"],
                    np.where(why == TRANSPLANTED, np.fmin(post["relapse_day"], post["death_day"]),
                             np.fmin(off["relapse_day"], off["death_day"])))


def follow_up_end_days(history: TrialHistory, obs: Observed) -> np.ndarray:
    """Calendar day each of the first n patients' follow-up ends (at the cutoff at the latest).

    Transplanted by the cutoff: as after HSCT (cutoff, loss to follow-up, horizon); left the pathway alive
    by the cutoff: the cutoff, loss to follow-up from the day they left, or the horizon after it; everyone
    else (died on the pathway, or still on it): the cutoff.
    """
    n, cutoff = obs.n, obs.cutoff_day
    why, exit_day, off = history.exit_reason[:n], history.days["exit_day"][:n], history.off
    horizon = history.scenario.post_transplant.horizon_months * DAYS_PER_MONTH
    end = np.full(n, cutoff)
    left_alive = (why != TRANSPLANTED) & ~np.isin(why, DEATH_EXITS) & (exit_day <= cutoff)
    ltfu = np.where(np.isnan(off["ltfu_day"][:n]), INF, off["ltfu_day"][:n])
    end[left_alive] = np.minimum(np.minimum(cutoff, ltfu), exit_day + horizon)[left_alive]
    end[obs.hsct] = obs.hsct_day + obs.follow_end
    return end


def from_enrollment(history: TrialHistory, obs: Observed, event_day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(time since enrollment, event) of patients enrolled by the cutoff for latent calendar event days."""
    n = obs.n
    enroll = history.draws.enroll_day[:n]
    end = follow_up_end_days(history, obs)
    day = np.where(np.isnan(event_day[:n]), INF, event_day[:n])
    event = day <= end
    time = np.where(event, day, end) - enroll
    enrolled = enroll <= obs.cutoff_day
    return time[enrolled], event[enrolled]


def _enrollment_estimates(history: TrialHistory, obs: Observed) -> dict[str, Estimate]:
    """OS and EFS at the landmark from enrollment (not evaluable when leavers are not followed)."""
    if not history.scenario.off_pathway.followed:
        reason = "off_pathway.followed = false: patients who leave the pathway alive are not followed"
        return {key: Estimate(np.nan, np.nan, np.nan, np.nan, obs.n, 0, reason) for key in FROM_ENROLLMENT}
    landmark = history.scenario.analysis.landmark_months * DAYS_PER_MONTH
    return {"os_enroll": km_landmark(*from_enrollment(history, obs, death_days(history)), landmark)[0],
            "efs_enroll": km_landmark(*from_enrollment(history, obs, efs_event_days(history)), landmark)[0]}


def endpoints(history: TrialHistory, n: int | None = None) -> list[dict[str, object]]:
    """Every protocol endpoint of the first n patients: one row each, with every column of ENDPOINT_COLUMNS."""
    a = history.scenario.analysis
    obs = observe(history, n)
    lm = f"{a.landmark_months:g}-month"
    primary = primary_analysis(history, obs=obs)
    itt, itt_test = itt_analysis(history, obs=obs)
    rows = [
        _row("rfs", f"{lm} RFS after HSCT (primary)", primary.estimate,
             "Kaplan-Meier, Greenwood SE, log(-log) 95% CI; " + _test_text(a.test, a.p0, a.alpha))
        | _test_columns(primary.test, a.test, a.p0, a.alpha),
        _row("itt", f"{lm} event-free survival from enrollment (ITT)", itt,
             "Kaplan-Meier; failure to reach HSCT is an event on its day; " + _test_text(a.test, a.itt_p0, a.alpha))
        | _test_columns(itt_test, a.test, a.itt_p0, a.alpha),
    ]
    for key, est in secondary_estimates(history, obs=obs).items():
        label, method = SECONDARY[key]
        rows.append(_row(key, label.format(lm=lm, assay=history.scenario.mrd.assay), est, method))
    for key, est in safety_estimates(history, obs).items():
        label, method = SAFETY[key]
        rows.append(_row(key, label, est, method))
    rows += _count_rows(primary, obs, a.landmark_months * DAYS_PER_MONTH)
    return [ENDPOINT_COLUMNS | {"key": _slug(row["endpoint"])} | row for row in rows]


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


def _test_text(method: str, p0: float, alpha: float) -> str:
    return f"one-sided test ({method}) of H0: S <= {p0:g} at alpha {alpha:g}"


def _test_columns(test: TestResult, method: str, p0: float, alpha: float) -> dict[str, object]:
    return {"test": method, "null_value": p0, "alpha": alpha, "statistic": test.statistic, "p_value": test.p_value,
            "reject": bool(test.reject), "test_reason": test.reason}


def _count_rows(primary: PrimaryResult, obs: Observed, landmark: float) -> list[dict[str, object]]:
    time, event = time_to_first(obs.follow_end, obs.relapse, obs.death)
    follow_up = reverse_km_median(time, event) / DAYS_PER_MONTH
    counts = [
        ("enrolled", int(np.count_nonzero(obs.history.draws.enroll_day[:obs.n] <= obs.cutoff_day)),
         "patients enrolled by the data cutoff", ""),
        ("transplanted by the cutoff", primary.n_transplanted, "patients", ""),
        (f"evaluable at {landmark / DAYS_PER_MONTH:g} months", primary.n_evaluable,
         "transplanted with an event by the landmark or followed past it", ""),
        ("median follow-up after HSCT", follow_up, "months, reverse Kaplan-Meier",
         "" if np.isfinite(follow_up) else _follow_up_reason(event)),
        ("trial duration", primary.duration_months, "months from first enrollment to the data cutoff", ""),
    ]
    return [{"endpoint": name, "estimate": value, "se": np.nan, "lower": np.nan, "upper": np.nan, "n": np.nan,
             "events": np.nan, "method": method, "not_evaluable_reason": reason}
            for name, value, method, reason in counts]


def _follow_up_reason(event: np.ndarray) -> str:
    """Why the reverse Kaplan-Meier median follow-up does not exist."""
    if event.size == 0:
        return "nobody transplanted by the data cutoff"
    if event.all():
        return "no transplanted patient was censored (every one had relapse or death), so follow-up has no median"
    return ("median not reached: the reverse Kaplan-Meier curve stays above 0.5 because most follow-up ended "
            "in relapse or death")


def _row(key: str, name: str, est: Estimate, method: str) -> dict[str, object]:
    return {"key": key, "endpoint": name, "estimate": est.estimate, "se": est.se, "lower": est.lower,
            "upper": est.upper, "n": est.n, "events": est.events, "method": method,
            "not_evaluable_reason": est.reason}
