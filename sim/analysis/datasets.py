"""Virtual trial data: a TrialHistory as tables people read (patients, event log, patient flow).

`patients_table` gives one row per patient with every stage's calendar day (day 0 = the first site
opens; empty = did not happen), `event_log` the same history as time-ordered events, and
`patient_flow` the CONSORT-style counts with the reason for everyone who left at each step.
`relapse_day` is a relapse after HSCT or after leaving the pathway in remission (a relapse that made
the patient leave has its own column); `death_day` and `ltfu_day` cover everyone followed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.analysis.endpoints import blinatumomab_event_days
from sim.model.draws import CR, CRI, NO_DONOR, RESPONSES
from sim.model.pathway import (
    BLINA_DEATH,
    CONSOL_DEATH,
    CONSOL_RELAPSE,
    CRI_OFF,
    DEATH_EXITS,
    EXIT_REASONS,
    INDUCTION_DEATH,
    MRD_POSITIVE,
    NO_DONOR_FOUND,
    NOT_IN_REMISSION,
    REFUSED,
    TRANSPLANTED,
    WAITING_DEATH,
    WAITING_RELAPSE,
    TrialHistory,
)
from sim.scenario.calibrate import DONOR_TYPES

# Event-log entries: (event name, column of patients_table holding its day); order breaks same-day ties.
EVENT_COLUMNS = (
    ("enrollment", "enroll_day"), ("vip_start", "enroll_day"), ("induction_death", "induction_death_day"),
    ("blinatumomab_start", "blina_start_day"), ("crs_grade3", "crs_grade3_day"),
    ("neurotoxicity_grade3", "neurotox_grade3_day"), ("blinatumomab_inpatient_end", "blina_inpatient_end_day"),
    ("blinatumomab_discontinued", "blina_discontinued_day"), ("early_death", "blina_death_day"),
    ("response_assessment", "response_day"), ("mrd1_sample", "mrd1_sample_day"), ("mrd1_result", "mrd1_result_day"),
    ("cycle1_start", "cycle1_start_day"), ("cycle1_end", "cycle1_end_day"), ("cycle2_start", "cycle2_start_day"),
    ("cycle2_end", "cycle2_end_day"), ("consolidation_death", "consolidation_death_day"),
    ("consolidation_relapse", "consolidation_relapse_day"), ("mrd2_sample", "mrd2_sample_day"),
    ("mrd2_result", "mrd2_result_day"), ("blinatumomab_retest_course_start", "retest_course_start_day"),
    ("mrd_retest_sample", "retest_sample_day"), ("mrd_retest_result", "retest_result_day"),
    ("relapse_awaiting_hsct", "relapse_awaiting_hsct_day"), ("death_awaiting_hsct", "death_awaiting_hsct_day"),
    ("off_pathway", "off_pathway_day"), ("donor_ready", "donor_ready_day"),
    ("slot_request", "slot_request_day"), ("admission", "admission_day"), ("hsct", "hsct_day"),
    ("acute_gvhd", "agvhd_day"), ("chronic_gvhd", "cgvhd_day"), ("relapse", "relapse_day"), ("nrm", "nrm_day"),
    ("death", "death_day"), ("lost_to_follow_up", "ltfu_day"),
)


def patients_table(history: TrialHistory) -> pd.DataFrame:
    """One row per enrolled patient: attributes, doses, every stage's calendar day, outcomes, exit reason."""
    return pd.DataFrame(patient_columns(history))


def patient_columns(history: TrialHistory) -> dict[str, np.ndarray]:
    """The columns of patients_table as arrays (what code that reads many trials uses: no table to build)."""
    s, d, days, post, off = history.scenario, history.draws, history.days, history.post, history.off
    why = history.exit_reason
    ind = s.induction
    enroll = d.enroll_day
    blina = days["blina_start_day"]
    toxicity = blinatumomab_event_days(history)
    remission = ~np.isnan(days["response_day"]) & np.isin(d.response, (CR, CRI))
    mrd2_tested = ~np.isnan(days["mrd2_sample_day"])
    retested = ~np.isnan(days["retest_sample_day"])
    transplanted = why == TRANSPLANTED
    pre_death = np.isin(why, DEATH_EXITS)
    has_donor = d.donor != NO_DONOR
    return {
        "patient": np.arange(1, history.n + 1),
        "site": d.site + 1,
        "enroll_day": enroll,
        "age": d.age,
        "bsa_m2": d.bsa,
        "vincristine_mg": np.minimum(ind.vincristine_mg_m2 * d.bsa, ind.vincristine_cap_mg),
        "idarubicin_mg": ind.idarubicin_mg_m2 * d.bsa,
        "prednisone_mg_day": np.minimum(ind.prednisone_mg_m2_day * d.bsa, ind.prednisone_cap_mg_day),
        "induction_death_day": _where(why == INDUCTION_DEATH, days["exit_day"]),
        "blina_start_day": blina,
        "blina_inpatient_end_day": toxicity["inpatient_end"],
        "crs_grade3_day": toxicity["crs_grade3"],
        "neurotox_grade3_day": toxicity["neurotox_grade3"],
        "blina_discontinued_day": toxicity["discontinued"],
        "blina_death_day": _where(why == BLINA_DEATH, days["exit_day"]),
        "response": np.where(np.isnan(days["response_day"]) & (why != BLINA_DEATH), "",
                             np.asarray(RESPONSES)[d.response]),
        "response_day": days["response_day"],
        "mrd_assay": s.mrd.assay,
        "mrd1_sample_day": _where(remission, days["response_day"]),
        "mrd1_result_day": _where(remission, days["response_day"] + s.assay.turnaround_days),
        "mrd1_negative": _flag(remission, d.mrd1_negative),
        "cycle1_start_day": days["cycle1_start_day"],
        "cycle1_end_day": days["cycle1_end_day"],
        "cycle2_start_day": days["cycle2_start_day"],
        "cycle2_end_day": days["cycle2_end_day"],
        "consolidation_death_day": _where(why == CONSOL_DEATH, days["exit_day"]),
        "consolidation_relapse_day": _where(why == CONSOL_RELAPSE, days["exit_day"]),
        "mrd2_sample_day": days["mrd2_sample_day"],
        # The lab reports a result even for a patient who relapsed or died while it was pending.
        "mrd2_result_day": days["mrd2_sample_day"] + s.assay.turnaround_days,
        "mrd2_negative": _flag(mrd2_tested, d.mrd2_negative),
        "retest_course_start_day": days["retest_course_start_day"],
        "retest_sample_day": days["retest_sample_day"],
        "retest_result_day": days["retest_sample_day"] + s.mrd.retest_turnaround_days,
        "retest_negative": _flag(retested, d.mrd_retest_negative),
        "donor_type": np.where(has_donor, np.asarray(DONOR_TYPES)[np.maximum(d.donor, 0)], "none"),
        "donor_ready_day": _where(has_donor, enroll + d.donor_search_days),
        "slot_request_day": days["slot_request_day"],
        "relapse_awaiting_hsct_day": _where(why == WAITING_RELAPSE, days["exit_day"]),
        "death_awaiting_hsct_day": _where(why == WAITING_DEATH, days["exit_day"]),
        "admission_day": days["admission_day"],
        "hsct_day": days["hsct_day"],
        "relapse_day": np.where(transplanted, post["relapse_day"], off["relapse_day"]),
        "nrm_day": post["nrm_day"],
        "death_day": np.where(pre_death, days["exit_day"], np.where(transplanted, post["death_day"], off["death_day"])),
        "agvhd_day": post["agvhd_day"],
        "agvhd_grade": np.where(np.isnan(post["agvhd_day"]), "", np.where(post["agvhd_grade34"], "III-IV", "II")),
        "cgvhd_day": post["cgvhd_day"],
        "cgvhd_systemic": _flag(~np.isnan(post["cgvhd_day"]), post["cgvhd_systemic"]),
        "ltfu_day": np.where(transplanted, post["ltfu_day"], off["ltfu_day"]),
        "exit_reason": np.asarray(EXIT_REASONS)[why],
        "off_pathway_day": _where(~transplanted, days["exit_day"]),
    }


def event_log(patients: pd.DataFrame) -> pd.DataFrame:
    """Time-ordered events (day, patient, event, detail) from a patients table."""
    frames = []
    for order, (event, column) in enumerate(EVENT_COLUMNS):
        rows = patients[patients[column].notna()]
        frames.append(pd.DataFrame({
            "day": rows[column].to_numpy(dtype=float),
            "patient": rows["patient"].to_numpy(),
            "event": event,
            "detail": _detail(event, rows),
            "_order": order,
        }))
    log = pd.concat(frames, ignore_index=True)
    log = log.sort_values(["day", "patient", "_order"], kind="mergesort").drop(columns="_order")
    return log.reset_index(drop=True)


def _detail(event: str, rows: pd.DataFrame) -> pd.Series | str:
    if event == "response_assessment":
        return rows["response"]
    if event in ("mrd1_result", "mrd2_result", "mrd_retest_result"):
        negative = rows["retest_negative" if event == "mrd_retest_result" else event[:4] + "_negative"]
        return np.where(negative.to_numpy(dtype=bool, na_value=False), "negative", "positive")
    if event == "off_pathway":
        return rows["exit_reason"]
    if event in ("donor_ready", "hsct"):
        return rows["donor_type"]
    if event == "acute_gvhd":
        return rows["agvhd_grade"]
    if event == "chronic_gvhd":
        return np.where(rows["cgvhd_systemic"].to_numpy(dtype=bool, na_value=False), "systemic therapy",
                        "no systemic therapy")
    if event == "enrollment":
        return "site " + rows["site"].astype(str)
    return ""


def patient_flow(history: TrialHistory, cutoff_day: float = np.inf) -> pd.DataFrame:
    """CONSORT-style counts known at the data cutoff: each step, and under it the reason and count for
    everyone who left. Only patients enrolled by the cutoff count, and only what happened by then; the
    default (no cutoff) describes the latent histories in full."""
    d, days, why = history.draws, history.days, history.exit_reason
    enrolled = d.enroll_day <= cutoff_day

    def by_cutoff(day: np.ndarray) -> np.ndarray:
        return enrolled & (day <= cutoff_day)          # NaN (never happened) compares False

    exited = by_cutoff(days["exit_day"])
    assessed = by_cutoff(days["response_day"])
    tested = by_cutoff(days["mrd2_sample_day"] + history.scenario.assay.turnaround_days)
    retested = by_cutoff(days["retest_sample_day"])

    def count(mask: np.ndarray) -> int:
        return int(np.count_nonzero(mask))

    def left(reason: int) -> int:
        return count(exited & (why == reason))

    everyone = bool(enrolled.all())
    rows = [
        ("screened" if everyone else "screened (to enroll all n, some after the cutoff)", d.n_screened, 0),
        ("screen failure", d.n_screened - history.n, 1),
        ("enrolled" if everyone else "enrolled by the data cutoff", count(enrolled), 0),
        ("died during VIP induction", left(INDUCTION_DEATH), 1),
        ("died during blinatumomab", left(BLINA_DEATH), 1),
        ("response assessed", count(assessed), 0),
        ("CR", count(assessed & (d.response == CR)), 1),
        ("CRi", count(assessed & (d.response == CRI)), 1),
        ("refractory (off pathway)", left(NOT_IN_REMISSION), 1),
        ("CRi, not consolidated (off pathway)", left(CRI_OFF), 1),
        ("consolidated", count(by_cutoff(days["cycle1_start_day"])), 0),
        ("died during consolidation", left(CONSOL_DEATH), 1),
        ("relapsed during consolidation", left(CONSOL_RELAPSE), 1),
        ("MRD tested before HSCT", count(tested), 0),
        ("MRD-negative", count(tested & d.mrd2_negative), 1),
        ("MRD-positive", count(tested & ~d.mrd2_negative), 1),
        *([("re-tested after a further blinatumomab course", count(retested), 1),
           ("negative at the re-test", count(retested & d.mrd_retest_negative), 2)]
          if history.scenario.mrd.positive_action == "blinatumomab_retest" else []),
        ("MRD-positive (off pathway)", left(MRD_POSITIVE), 1),
        ("no donor (off pathway)", left(NO_DONOR_FOUND), 1),
        ("declined HSCT (off pathway)", left(REFUSED), 1),
        ("relapsed while awaiting HSCT", left(WAITING_RELAPSE), 1),
        ("died while awaiting HSCT", left(WAITING_DEATH), 1),
        ("transplanted", left(TRANSPLANTED), 0),
    ]
    if np.isfinite(cutoff_day):
        rows.append(("still on the pathway at the data cutoff", count(enrolled & ~exited), 0))
    return pd.DataFrame(rows, columns=["step", "count", "level"])


def format_flow(flow: pd.DataFrame) -> str:
    """The patient flow as indented text for the terminal."""
    width = max(len(step) + 2 * level for step, level in zip(flow["step"], flow["level"], strict=False))
    return "\n".join(f"{'  ' * level}{step:<{width - 2 * level}}  {count:>6d}"
                     for step, count, level in flow.itertuples(index=False))


def _where(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.where(mask, values, np.nan)


def _flag(known: np.ndarray, value: np.ndarray) -> pd.arrays.BooleanArray:
    """True/False where known, missing elsewhere (an empty cell in CSV)."""
    return pd.arrays.BooleanArray(np.asarray(value, dtype=bool), ~np.asarray(known, dtype=bool))
