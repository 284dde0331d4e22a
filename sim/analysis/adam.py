"""Analysis datasets in CDISC ADaM style: what the trial would hold at its final analysis.

`adsl` gives one row per patient enrolled by the data cutoff (site, age, BSA, treatment, key dates,
response, MRD results and re-test, donor, HSCT, why the patient left the pathway, relapse and death
known by the cutoff (also after leaving the pathway, when leavers are followed), safety and
population flags); `adtte` one row per patient and time-to-event parameter (RFS, OS and GRFS after
HSCT, event-free survival from enrollment (ITT), OS and EFS from enrollment, and the competing-risk
parameters behind the incidences); `endpoint_table` the endpoints of endpoints.py as a typed table.
Only what is known at the data cutoff appears: dates after it are blank. Censoring is the analysis's
own (Observed, time_to_first, competing, itt_data, from_enrollment, follow_up_end_days from
endpoints.py), never recomputed here, so the estimates of endpoints.csv follow from adtte.csv with any
survival package. Dates are study days: days since day 0, the day the
first site opens, with fractions (the simulation runs in continuous time). A month is 365.25/12 days.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.analysis.datasets import patients_table
from sim.analysis.endpoints import (
    ENDPOINT_COLUMNS,
    INF,
    Observed,
    competing,
    death_days,
    efs_event_days,
    endpoints,
    follow_up_end_days,
    from_enrollment,
    itt_data,
    observe,
    time_to_first,
)
from sim.model.draws import CR, CRI
from sim.model.pathway import (
    BLINA_DEATH,
    CONSOL_RELAPSE,
    DEATH_EXITS,
    EXIT_REASONS,
    INDUCTION_DEATH,
    NO_DONOR_FOUND,
    NOT_IN_REMISSION,
    TRANSPLANTED,
    WAITING_RELAPSE,
    TrialHistory,
)
from sim.scenario.schema import DAYS_PER_MONTH

STUDYID = "BLINA-HSCT-SIM"
TREATMENT = "VIP + blinatumomab"
DECIMALS = 6            # days are written to 1e-6 day (0.09 s): enough to keep every tie and order of the analysis

# CNSR: 0 = the parameter's event; 1 or more = censored, and why.
EVENT, CUTOFF, LOST, HORIZON, COMPETING = 0, 1, 2, 3, 4
CENSORING = {CUTOFF: "data cutoff", LOST: "lost to follow-up", HORIZON: "end of simulated follow-up"}

# Why a patient left the pathway before HSCT, in words (EXIT_REASONS order).
EXIT_TEXT = dict(zip(EXIT_REASONS, (
    "transplanted", "death during VIP induction", "death during blinatumomab", "refractory (no CR/CRi)",
    "CRi, not consolidated", "death during consolidation", "relapse during consolidation",
    "MRD-positive before HSCT", "no donor found", "declined HSCT", "relapse while awaiting HSCT",
    "death while awaiting HSCT"), strict=True))

# PARAMCD -> (PARAMN, PARAM). Survival parameters: KM; incidence parameters: Aalen-Johansen with CNSR = 4 competing.
PARAMETERS = {
    "RFS": (1, "Relapse-free survival after HSCT (days)"),
    "OS": (2, "Overall survival after HSCT (days)"),
    "GRFS": (3, "GVHD-free relapse-free survival after HSCT (days)"),
    "EFSITT": (4, "Event-free survival from enrollment, ITT: not reaching HSCT is an event (days)"),
    "REL": (5, "Time to relapse after HSCT, death without relapse competing (days)"),
    "NRM": (6, "Time to non-relapse death after HSCT, relapse competing (days)"),
    "AGVHD": (7, "Time to acute GVHD grade II-IV after HSCT, relapse and death competing (days)"),
    "AGVHD34": (8, "Time to acute GVHD grade III-IV after HSCT, relapse and death competing (days)"),
    "CGVHD": (9, "Time to chronic GVHD after HSCT, relapse and death competing (days)"),
    "OSENR": (10, "Overall survival from enrollment, every enrolled patient followed (days)"),
    "EFSENR": (11, "Event-free survival from enrollment: induction failure, relapse or death (days)"),
}

# Where each estimate of endpoints.csv comes from in the datasets.
SOURCES = {
    "rfs": "adtte PARAMCD=RFS", "itt": "adtte PARAMCD=EFSITT", "os": "adtte PARAMCD=OS",
    "grfs": "adtte PARAMCD=GRFS", "relapse": "adtte PARAMCD=REL", "nrm": "adtte PARAMCD=NRM",
    "agvhd24": "adtte PARAMCD=AGVHD", "agvhd34": "adtte PARAMCD=AGVHD34", "cgvhd": "adtte PARAMCD=CGVHD",
    "crc": "adsl CRCFL where RSPEVFL=Y", "mrd1": "adsl MRD1RES", "mrd2": "adsl MRD2RES",
    "induction_death": "adsl INDDTHFL", "crs3": "adsl CRS3FL where BLNFL=Y", "neurotox3": "adsl NTX3FL where BLNFL=Y",
    "blina_discontinued": "adsl BLNDCFL where BLNFL=Y", "hsct": "adsl HSCTFL",
    "os_enroll": "adtte PARAMCD=OSENR", "efs_enroll": "adtte PARAMCD=EFSENR",
}


def adsl(history: TrialHistory, n: int | None = None) -> pd.DataFrame:
    """Subject-level dataset: one row per patient among the first n enrolled by the data cutoff."""
    obs = observe(history, n)
    cutoff = obs.cutoff_day
    p = patients_table(history).iloc[:obs.n]
    keep = p["enroll_day"].to_numpy() <= cutoff
    why = history.exit_reason[:obs.n]

    def known(column: str) -> np.ndarray:
        days = p[column].to_numpy(dtype=float)
        return np.where(days <= cutoff, days, np.nan)

    assessed = ~np.isnan(known("response_day"))
    died_early = np.isin(why, (INDUCTION_DEATH, BLINA_DEATH)) & (known("off_pathway_day") <= cutoff)
    evaluable_response = assessed | died_early
    on_blina = ~np.isnan(known("blina_start_day"))
    hsct_day = known("hsct_day")
    transplanted = ~np.isnan(hsct_day)
    off_day = known("off_pathway_day")
    mrd1_day, mrd2_day = known("mrd1_result_day"), known("mrd2_result_day")
    # A donor found after the patient left the pathway plays no part (for the transplanted, it precedes HSCT).
    left_day = history.days["exit_day"][:obs.n]
    donor_day = np.where(known("donor_ready_day") <= left_day, known("donor_ready_day"), np.nan)
    response = history.draws.response[:obs.n]
    follow_up_end = follow_up_end_days(history, obs)
    death_day = _known_by(death_days(history)[:obs.n], follow_up_end)
    table = {
        **_subjects(p),
        "AGE": np.floor(p["age"].to_numpy()).astype(np.int64),
        "AGEU": "YEARS",
        "BSA": p["bsa_m2"].round(2).to_numpy(),
        "TRT01P": TREATMENT,
        "TRT01A": TREATMENT,
        "MRDASSAY": p["mrd_assay"].to_numpy(),
        "ITTFL": "Y",
        "SAFFL": "Y",
        "BLNFL": _yn(on_blina),
        "RSPEVFL": _yn(evaluable_response),
        "HSCTFL": _yn(transplanted),
        "EVALFL": _yn(_evaluable(history, obs)),
        "CUTOFFDT": cutoff,
        "ENRLDT": p["enroll_day"].to_numpy(),
        "TRTSDT": p["enroll_day"].to_numpy(),
        "BLNSDT": known("blina_start_day"),
        "RSPDT": known("response_day"),
        "RESP": np.where(assessed, p["response"].to_numpy(), np.where(died_early, "death before assessment", "")),
        "CRCFL": np.where(evaluable_response, _yn(assessed & np.isin(response, (CR, CRI))), ""),
        "MRD1DT": mrd1_day,
        "MRD1RES": _result(mrd1_day, p["mrd1_negative"]),
        "MRD2DT": mrd2_day,
        "MRD2RES": _result(mrd2_day, p["mrd2_negative"]),
        "RTCSDT": known("retest_course_start_day"),
        "MRDRTDT": known("retest_result_day"),
        "MRDRTRES": _result(known("retest_result_day"), p["retest_negative"]),
        "DONOR": np.where(~np.isnan(donor_day), p["donor_type"].to_numpy(),
                          np.where((why == NO_DONOR_FOUND) & (off_day <= cutoff), "none found", "")),
        "DONRDT": donor_day,
        "HSCTDT": hsct_day,
        "INDDTHFL": _yn((why == INDUCTION_DEATH) & (off_day <= cutoff)),
        "CRS3FL": _flag_if(on_blina, known("crs_grade3_day")),
        "CRS3DT": known("crs_grade3_day"),
        "NTX3FL": _flag_if(on_blina, known("neurotox_grade3_day")),
        "NTX3DT": known("neurotox_grade3_day"),
        "BLNDCFL": _flag_if(on_blina, known("blina_discontinued_day")),
        "BLNDCDT": known("blina_discontinued_day"),
        "EOTSTT": np.where(transplanted, "COMPLETED", np.where(~np.isnan(off_day), "DISCONTINUED", "ONGOING")),
        "EOTDT": np.where(transplanted, hsct_day, off_day),
        "DCTREAS": np.where(~np.isnan(off_day), [EXIT_TEXT[r] for r in p["exit_reason"]], ""),
        "RELFL": _yn(~np.isnan(relapse_day := _known_by(_relapse_days(history)[:obs.n], follow_up_end))),
        "RELDT": relapse_day,
        "DTHFL": _yn(~np.isnan(death_day)),
        "DTHDT": death_day,
        "LSTALVDT": _last_known_alive(history, off_day, death_day, follow_up_end),
    }
    frame = pd.DataFrame(table)[keep].reset_index(drop=True)
    return _rounded(frame)


def adtte(history: TrialHistory, n: int | None = None) -> pd.DataFrame:
    """Time-to-event dataset: one row per patient and parameter (PARAMETERS), censoring as the analysis does it."""
    obs = observe(history, n)
    subjects = pd.DataFrame(_subjects(patients_table(history).iloc[:obs.n]))
    relapse_or_death = np.minimum(obs.relapse, obs.death)
    agvhd34 = np.where(obs.agvhd34, obs.agvhd, INF)
    cgvhd_systemic = np.where(obs.cgvhd_systemic, obs.cgvhd, INF)
    rfs_events = ((obs.relapse, "relapse"), (obs.death, "death without relapse"))
    agvhd_grade = np.where(obs.agvhd34, "acute GVHD grade III-IV", "acute GVHD grade II")
    blocks = [
        _survival(obs, "RFS", rfs_events),
        _survival(obs, "OS", ((obs.death, "death"),)),
        _survival(obs, "GRFS", (*rfs_events, (agvhd34, "acute GVHD grade III-IV"),
                                (cgvhd_systemic, "chronic GVHD needing systemic therapy"))),
        _itt(history, obs),
        _incidence(obs, "REL", obs.relapse, "relapse", obs.death, cause=1),
        _incidence(obs, "NRM", obs.relapse, "death without relapse", obs.death, cause=2),
        _incidence(obs, "AGVHD", obs.agvhd, agvhd_grade, relapse_or_death, cause=1),
        _incidence(obs, "AGVHD34", agvhd34, "acute GVHD grade III-IV", relapse_or_death, cause=1),
        _incidence(obs, "CGVHD", obs.cgvhd, "chronic GVHD", relapse_or_death, cause=1),
        *_from_enrollment(history, obs),
    ]
    frame = pd.concat(blocks, ignore_index=True)
    frame = subjects.iloc[frame.pop("patient")].reset_index(drop=True).join(frame)
    frame.insert(frame.columns.get_loc("STARTDT"), "CUTOFFDT", obs.cutoff_day)
    frame.loc[frame["CNSR"] == CUTOFF, "ADT"] = obs.cutoff_day
    frame = frame.sort_values(["SUBJID", "PARAMN"], kind="mergesort").reset_index(drop=True)
    return _rounded(frame)


def endpoint_table(history: TrialHistory, n: int | None = None) -> pd.DataFrame:
    """endpoints() as a typed table: counts as integers, the test decision as a boolean, the dataset source."""
    frame = pd.DataFrame(endpoints(history, n), columns=list(ENDPOINT_COLUMNS))
    frame["n"] = frame["n"].astype("Int64")
    frame["events"] = frame["events"].astype("Int64")
    frame["reject"] = frame["reject"].astype("boolean")
    frame.insert(frame.columns.get_loc("method") + 1, "source", frame["key"].map(SOURCES).fillna(""))
    return frame


# --------------------------------------------------------------------------- ADTTE blocks


def _survival(obs: Observed, paramcd: str, events: tuple[tuple[np.ndarray, str], ...]) -> pd.DataFrame:
    """A parameter after HSCT whose event is the first of `events` (day arrays since HSCT, with their names)."""
    days = [d for d, _ in events]
    time, event = time_to_first(obs.follow_end, *days)
    first = np.argmin(np.stack(days), axis=0) if obs.hsct.size else np.empty(0, dtype=np.int64)
    names = np.asarray([name for _, name in events], dtype=object)[first]
    cnsr = np.where(event, EVENT, obs.follow_end_cause)
    return _block(paramcd, obs.hsct, obs.hsct_day, time, cnsr, np.where(event, names, ""))


def _incidence(obs: Observed, paramcd: str, event_days: np.ndarray, event_name: str | np.ndarray,
               competing_days: np.ndarray, cause: int) -> pd.DataFrame:
    """A competing-risk parameter: CNSR 0 = cause `cause` of competing(), 4 = the other cause first.

    For REL and NRM, competing(relapse, death) is called once and NRM is its cause 2, exactly as the
    analysis estimates it; the others are cause 1 with relapse or death competing.
    """
    time, causes = competing(obs.follow_end, event_days, competing_days)
    other = 3 - cause
    cnsr = np.select([causes == cause, causes == other], [EVENT, COMPETING], obs.follow_end_cause)
    first_competing = np.where(obs.relapse <= obs.death, "relapse", "death without relapse")
    if paramcd == "NRM":
        first_competing = np.full(obs.hsct.size, "relapse")
    evntdesc = np.where(cnsr == EVENT, event_name, "")
    block = _block(paramcd, obs.hsct, obs.hsct_day, time, cnsr, evntdesc)
    block.loc[cnsr == COMPETING, "CNSDTDSC"] = "competing event: " + first_competing[cnsr == COMPETING]
    return block


def _itt(history: TrialHistory, obs: Observed) -> pd.DataFrame:
    """EFSITT: from enrollment; leaving the pathway before HSCT is an event, then RFS after HSCT."""
    n, cutoff = obs.n, obs.cutoff_day
    time, event = itt_data(history, obs=obs)
    enroll = history.draws.enroll_day[:n]
    patients = np.flatnonzero(enroll <= cutoff)
    why = history.exit_reason[:n]
    names = np.array(["did not reach HSCT: " + EXIT_TEXT[EXIT_REASONS[r]] for r in why], dtype=object)
    cnsr = np.full(n, CUTOFF)
    rfs_time, rfs_event = time_to_first(obs.follow_end, obs.relapse, obs.death)
    names[obs.hsct] = np.where(obs.relapse <= obs.death, "relapse", "death without relapse")
    cnsr[obs.hsct] = np.where(rfs_event, EVENT, obs.follow_end_cause)
    cnsr, names = cnsr[patients], names[patients]
    cnsr[event] = EVENT
    return _block("EFSITT", patients, enroll[patients], time, cnsr, np.where(event, names, ""))


def _from_enrollment(history: TrialHistory, obs: Observed) -> list[pd.DataFrame]:
    """OSENR and EFSENR: every patient enrolled by the cutoff, from enrollment, censored by from_enrollment.

    None when patients who leave the pathway alive are not followed (the analysis does not estimate them).
    """
    if not history.scenario.off_pathway.followed:
        return []
    enroll = history.draws.enroll_day[:obs.n]
    patients = np.flatnonzero(enroll <= obs.cutoff_day)
    censored = _follow_up_end_cause(history, obs)[patients]
    blocks = []
    for paramcd, event_days, names in (("OSENR", death_days(history), _death_names(history)),
                                       ("EFSENR", efs_event_days(history), _efs_event_names(history))):
        time, event = from_enrollment(history, obs, event_days)
        blocks.append(_block(paramcd, patients, enroll[patients], time, np.where(event, EVENT, censored),
                             np.where(event, names[patients], "")))
    return blocks


def _follow_up_end_cause(history: TrialHistory, obs: Observed) -> np.ndarray:
    """What ends each of the first n patients' follow_up_end_days: 1 = data cutoff, 2 = lost to follow-up,
    3 = end of simulated follow-up (after HSCT or after leaving the pathway); ties go to the cutoff, then loss."""
    end = follow_up_end_days(history, obs)
    lost = end == history.off["ltfu_day"][:obs.n]
    cause = np.where(end == obs.cutoff_day, CUTOFF, np.where(lost, LOST, HORIZON))
    cause[obs.hsct] = obs.follow_end_cause
    return cause


def _death_names(history: TrialHistory) -> np.ndarray:
    """Where each patient's latent death happens: on the pathway (by its exit reason), after HSCT or after leaving."""
    why = history.exit_reason
    on_pathway = np.array([EXIT_TEXT[EXIT_REASONS[r]] for r in why], dtype=object)
    return np.where(np.isin(why, DEATH_EXITS), on_pathway,
                    np.where(why == TRANSPLANTED, "death after HSCT", "death after leaving the pathway"))


def _efs_event_names(history: TrialHistory) -> np.ndarray:
    """Which event efs_event_days dates for each patient: induction failure, a relapse or a death, and where."""
    why, post, off = history.exit_reason, history.post, history.off
    at_exit = np.array([EXIT_TEXT[EXIT_REASONS[r]] for r in why], dtype=object)
    after_hsct = np.where(_relapse_first(post), "relapse after HSCT", "death without relapse after HSCT")
    after_leaving = np.where(_relapse_first(off), "relapse after leaving the pathway",
                             "death without relapse after leaving the pathway")
    return np.select([why == NOT_IN_REMISSION, np.isin(why, (*DEATH_EXITS, CONSOL_RELAPSE, WAITING_RELAPSE)),
                      why == TRANSPLANTED],
                     ["induction failure (refractory)", at_exit, after_hsct], after_leaving).astype(object)


def _relapse_first(events: dict[str, np.ndarray]) -> np.ndarray:
    """A relapse that comes no later than death (NaN: neither within the horizon)."""
    death = np.where(np.isnan(events["death_day"]), INF, events["death_day"])
    return events["relapse_day"] <= death


def _block(paramcd: str, patients: np.ndarray, start: np.ndarray, time: np.ndarray, cnsr: np.ndarray,
           evntdesc: np.ndarray) -> pd.DataFrame:
    """ADTTE rows of one parameter (`patients`: indices among the first n)."""
    paramn, param = PARAMETERS[paramcd]
    cnsr = np.asarray(cnsr, dtype=np.int64)
    return pd.DataFrame({
        "patient": patients,
        "PARAMN": paramn,
        "PARAMCD": paramcd,
        "PARAM": param,
        "STARTDT": start,
        "ADT": start + time,
        "AVAL": time,
        "AVALU": "DAYS",
        "AVALM": time / DAYS_PER_MONTH,
        "CNSR": cnsr,
        "EVNTDESC": evntdesc,
        "CNSDTDSC": [CENSORING.get(c, "") for c in cnsr],
    })


# --------------------------------------------------------------------------- helpers


def _subjects(p: pd.DataFrame) -> dict[str, object]:
    """Identifiers shared by ADSL and ADTTE (SUBJID = `patient` of latent_patients.csv)."""
    return {
        "STUDYID": STUDYID,
        "USUBJID": [f"{STUDYID}-{site:02d}-{patient:04d}" for site, patient in zip(p["site"], p["patient"],
                                                                                   strict=True)],
        "SUBJID": p["patient"].to_numpy(),
        "SITEID": p["site"].to_numpy(),
    }


def _evaluable(history: TrialHistory, obs: Observed) -> np.ndarray:
    """Transplanted by the cutoff with an RFS event by the landmark or followed past it (primary's n_evaluable)."""
    landmark = history.scenario.analysis.landmark_months * DAYS_PER_MONTH
    time, event = time_to_first(obs.follow_end, obs.relapse, obs.death)
    flag = np.zeros(obs.n, dtype=bool)
    flag[obs.hsct] = (event & (time <= landmark)) | (time >= landmark)
    return flag


def _known_by(day: np.ndarray, follow_up_end: np.ndarray) -> np.ndarray:
    """Latent calendar days seen by the end of each patient's follow-up (follow_up_end_days), NaN otherwise."""
    return np.where(day <= follow_up_end, day, np.nan)


def _relapse_days(history: TrialHistory) -> np.ndarray:
    """Latent calendar day of each patient's first relapse: during consolidation or while awaiting HSCT (the day
    the patient left), after HSCT, or after leaving the pathway in remission (NaN: none, or not followed)."""
    why, post, off = history.exit_reason, history.post, history.off
    return np.where(np.isin(why, (CONSOL_RELAPSE, WAITING_RELAPSE)), history.days["exit_day"],
                    np.where(why == TRANSPLANTED, post["relapse_day"], off["relapse_day"]))


def _last_known_alive(history: TrialHistory, off_day: np.ndarray, death_day: np.ndarray,
                      follow_up_end: np.ndarray) -> np.ndarray:
    """Death day for those who died, else the end of follow-up; the day of leaving for leavers not followed."""
    why = history.exit_reason[:len(off_day)]
    left_alive = ~np.isnan(off_day) & ~np.isin(why, DEATH_EXITS)
    end = np.where(left_alive & ~history.scenario.off_pathway.followed, off_day, follow_up_end)
    return np.where(np.isnan(death_day), end, death_day)


def _yn(flag: np.ndarray) -> np.ndarray:
    return np.where(flag, "Y", "N")


def _flag_if(at_risk: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Y/N among patients at risk, blank for the others."""
    return np.where(at_risk, _yn(~np.isnan(day)), "")


def _result(day: np.ndarray, negative: pd.Series) -> np.ndarray:
    negative = negative.to_numpy(dtype=bool, na_value=False)
    return np.where(np.isnan(day), "", np.where(negative, "negative", "positive"))


def _rounded(frame: pd.DataFrame) -> pd.DataFrame:
    """Days and months to DECIMALS places, so that the CSV holds exactly the numbers analysed."""
    columns = [c for c in frame.columns if c.endswith("DT") or c in ("AVAL", "AVALM")]
    frame[columns] = frame[columns].round(DECIMALS)
    return frame
