"""The analysis datasets of `trial` (sim/analysis/adam.py): adsl.csv and adtte.csv against endpoints.csv.

A statistician who takes adtte.csv elsewhere must get the numbers of endpoints.csv: here lifelines
(Kaplan-Meier at the landmark, Aalen-Johansen for the incidences) and scipy (Clopper-Pearson) recompute
every estimate, CI, count and the primary and ITT tests from the written CSV files, to the printed
precision. The datasets must hold exactly the patients enrolled by the data cutoff and nothing dated
after it; each censoring code must say truthfully what ended the record. Four trials: the base
scenario (landmark cutoff), a calendar cutoff that leaves patients out, heavy loss to follow-up with
a short simulated horizon (every censoring code occurs), and the MRD re-test policy with a high risk
while waiting for HSCT (re-tests and waiting exits occur). In all four, patients who leave the
pathway alive are followed (base: off_pathway.followed = true), so OS and EFS from enrollment are
evaluable and recomputed too; a fifth trial does not follow them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines import AalenJohansenFitter, KaplanMeierFitter
from scipy import stats

from sim.cli.parser import main

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
DAYS_PER_MONTH = 365.25 / 12
LANDMARK = 18 * DAYS_PER_MONTH
AGVHD_DAYS = 100.0
TRIALS = {
    "landmark": ["--n", "60", "--seed", "7"],
    "calendar": ["--n", "120", "--seed", "3", "--set", "analysis.cutoff=calendar"],
    "lossy": ["--n", "80", "--seed", "5", "--set", "post_transplant.ltfu_prob=0.3",
              "--set", "post_transplant.horizon_months=30"],
    "retest": ["--n", "80", "--seed", "11", "--scenario", str(SCENARIOS / "mrd_retest.toml"),
               "--set", "mrd.mfc.p_negative_after_induction=0.5", "--set", "waiting.relapse_per_month_mrd_positive=0.3",
               "--set", "waiting.death_per_month=0.03"],
}
KM_PARAMS = {"rfs": "RFS", "os": "OS", "grfs": "GRFS", "itt": "EFSITT", "os_enroll": "OSENR", "efs_enroll": "EFSENR"}
AJ_PARAMS = {"relapse": ("REL", LANDMARK), "nrm": ("NRM", LANDMARK), "agvhd24": ("AGVHD", AGVHD_DAYS),
             "agvhd34": ("AGVHD34", AGVHD_DAYS), "cgvhd": ("CGVHD", LANDMARK)}


@pytest.fixture(scope="module", params=list(TRIALS))
def trial(request, tmp_path_factory) -> dict[str, pd.DataFrame]:
    out = tmp_path_factory.mktemp(request.param)
    assert main(["trial", *TRIALS[request.param], "--out", str(out)]) == 0
    read = {"keep_default_na": False, "na_values": [""]}
    return {"name": request.param,
            "adsl": pd.read_csv(out / "adsl.csv", **read), "adtte": pd.read_csv(out / "adtte.csv", **read),
            "endpoints": pd.read_csv(out / "endpoints.csv", **read).set_index("key"),
            "latent": pd.read_csv(out / "latent_patients.csv"), "events": pd.read_csv(out / "latent_events.csv")}


def _printed(value: float, printed: float) -> bool:
    """value equals a number printed with 6 significant digits (%.6g), to the printed precision."""
    if math.isnan(printed) or math.isnan(value):
        return math.isnan(printed) and math.isnan(value)
    if printed == 0:
        return abs(value) < 5e-7
    return abs(value - printed) <= 0.5 * 10 ** (math.floor(math.log10(abs(printed))) - 5) + 1e-12


def _param(adtte: pd.DataFrame, paramcd: str) -> pd.DataFrame:
    rows = adtte[adtte["PARAMCD"] == paramcd]
    assert not rows.empty, paramcd
    return rows


def _at(frame: pd.DataFrame | pd.Series, t: float) -> pd.Series:
    """The row of a lifelines step function in force at time t."""
    return frame[frame.index <= t].iloc[-1]


def _check(row: pd.Series, **expected: float) -> None:
    for column, value in expected.items():
        assert _printed(value, float(row[column])), (row.name, column, value, row[column])


def test_kaplan_meier_and_tests_from_adtte_match_endpoints_csv(trial):
    ep, adtte, adsl = trial["endpoints"], trial["adtte"], trial["adsl"]
    for key, paramcd in KM_PARAMS.items():
        rows = _param(adtte, paramcd)
        time, event = rows["AVAL"].to_numpy(), rows["CNSR"].to_numpy() == 0
        kmf = KaplanMeierFitter().fit(time, event)
        s = float(kmf.survival_function_at_times(LANDMARK).iloc[0])
        ci = _at(kmf.confidence_interval_, LANDMARK)
        _check(ep.loc[key], estimate=s, lower=float(ci.iloc[0]), upper=float(ci.iloc[1]))
        assert ep.loc[key, "n"] == len(rows) and ep.loc[key, "events"] == np.sum(event & (time <= LANDMARK)), key
        assert ep.loc[key, "source"] == f"adtte PARAMCD={paramcd}"
        # The same curve read in months (AVALM) gives the same answer.
        by_month = KaplanMeierFitter().fit(rows["AVALM"], event).survival_function_at_times(18.0).iloc[0]
        assert by_month == pytest.approx(s, abs=1e-12)
        if key in ("rfs", "itt"):
            # Cloglog Wald z with the Greenwood sum from lifelines' event table; p = P(N(0,1) >= z).
            table = kmf.event_table[kmf.event_table.index <= LANDMARK]
            greenwood = float((table["observed"] / (table["at_risk"] * (table["at_risk"] - table["observed"]))).sum())
            p0 = float(ep.loc[key, "null_value"])
            z = (math.log(-math.log(p0)) - math.log(-math.log(s))) / (math.sqrt(greenwood) / abs(math.log(s)))
            assert ep.loc[key, "test"] == "cloglog"
            _check(ep.loc[key], statistic=z, p_value=float(stats.norm.sf(z)), se=s * math.sqrt(greenwood))
            assert bool(ep.loc[key, "reject"]) == (stats.norm.sf(z) <= ep.loc[key, "alpha"])
    assert len(_param(adtte, "EFSITT")) == len(adsl)
    assert sorted(_param(adtte, "RFS")["SUBJID"]) == sorted(adsl.loc[adsl["HSCTFL"] == "Y", "SUBJID"])


def test_cumulative_incidences_from_adtte_match_endpoints_csv(trial):
    ep, adtte = trial["endpoints"], trial["adtte"]
    for key, (paramcd, t) in AJ_PARAMS.items():
        rows = _param(adtte, paramcd)
        cause = np.select([rows["CNSR"] == 0, rows["CNSR"] == 4], [1, 2], 0)
        time = rows["AVAL"].to_numpy()
        assert np.unique(time[cause > 0]).size == np.count_nonzero(cause > 0)   # lifelines jitters ties
        ajf = AalenJohansenFitter(calculate_variance=True).fit(time, cause, event_of_interest=1)
        f = float(_at(ajf.cumulative_density_, t).iloc[0])
        _check(ep.loc[key], estimate=f, se=math.sqrt(float(_at(ajf.variance_, t))))
        if 0 < f < 1:
            ci = sorted(_at(ajf.confidence_interval_, t).astype(float))
            _check(ep.loc[key], lower=ci[0], upper=ci[1])
        assert ep.loc[key, "n"] == len(rows) and ep.loc[key, "events"] == np.sum((cause == 1) & (time <= t)), key
    # Relapse and NRM are the two causes of the RFS event: they add up to 1 - RFS.
    total = ep.loc["relapse", "estimate"] + ep.loc["nrm", "estimate"] + ep.loc["rfs", "estimate"]
    assert total == pytest.approx(1.0, abs=2e-6)


def test_rates_and_counts_from_adsl_match_endpoints_csv(trial):
    ep, adsl, adtte = trial["endpoints"], trial["adsl"], trial["adtte"]
    blina = adsl["BLNFL"] == "Y"
    rates = {
        "crc": adsl.loc[adsl["RSPEVFL"] == "Y", "CRCFL"] == "Y",
        "mrd1": adsl["MRD1RES"].dropna() == "negative",
        "mrd2": adsl["MRD2RES"].dropna() == "negative",
        "induction_death": adsl["INDDTHFL"] == "Y",
        "crs3": adsl.loc[blina, "CRS3FL"] == "Y",
        "neurotox3": adsl.loc[blina, "NTX3FL"] == "Y",
        "blina_discontinued": adsl.loc[blina, "BLNDCFL"] == "Y",
        "hsct": adsl["HSCTFL"] == "Y",
    }
    for key, flags in rates.items():
        k, n = int(flags.sum()), len(flags)
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        _check(ep.loc[key], estimate=k / n, lower=ci.low, upper=ci.high)
        assert (ep.loc[key, "events"], ep.loc[key, "n"]) == (k, n), key
    counts = {
        "enrolled": len(adsl),
        "transplanted_by_the_cutoff": int((adsl["HSCTFL"] == "Y").sum()),
        "evaluable_at_18_months": int((adsl["EVALFL"] == "Y").sum()),
        "trial_duration": (adsl["CUTOFFDT"].iloc[0] - adsl["ENRLDT"].min()) / DAYS_PER_MONTH,
    }
    rfs = _param(adtte, "RFS")
    reverse = KaplanMeierFitter().fit(rfs["AVAL"], rfs["CNSR"] > 0)
    counts["median_follow_up_after_hsct"] = reverse.median_survival_time_ / DAYS_PER_MONTH
    for key, value in counts.items():
        _check(ep.loc[key], estimate=value)


def test_adsl_holds_exactly_the_patients_enrolled_by_the_cutoff(trial):
    adsl, latent = trial["adsl"], trial["latent"]
    cutoff = adsl["CUTOFFDT"].iloc[0]
    assert (adsl["CUTOFFDT"] == cutoff).all() and (trial["adtte"]["CUTOFFDT"] == cutoff).all()
    enrolled = latent.loc[latent["enroll_day"] <= cutoff, "patient"]
    assert adsl["SUBJID"].tolist() == enrolled.tolist()
    assert adsl["USUBJID"].is_unique and set(trial["adtte"]["USUBJID"]) <= set(adsl["USUBJID"])
    if trial["name"] == "calendar":       # the rule bites: patients enrolled after the final analysis are left out
        assert len(adsl) < len(latent)
    else:
        assert len(adsl) == len(latent)


def test_no_event_or_date_after_the_cutoff(trial):
    adsl, adtte = trial["adsl"], trial["adtte"]
    cutoff = adsl["CUTOFFDT"].iloc[0]
    dates = [c for c in adsl.columns if c.endswith("DT")]
    assert len(dates) >= 14
    for column in dates:
        assert (adsl[column].dropna() <= cutoff).all(), column
    assert (adtte["ADT"] <= cutoff).all() and (adtte["STARTDT"] <= adtte["ADT"]).all() and (adtte["AVAL"] >= 0).all()
    assert np.allclose(adtte["ADT"], adtte["STARTDT"] + adtte["AVAL"], rtol=0, atol=2e-6)
    assert np.allclose(adtte["AVALM"], adtte["AVAL"] / DAYS_PER_MONTH, rtol=0, atol=1e-6)
    # The latent histories do hold events after the cutoff, so the restriction has something to remove.
    assert (trial["events"]["day"] > cutoff + 1e-3).any()


def test_censoring_codes_say_what_ended_each_record(trial):
    adtte, latent = trial["adtte"], trial["latent"].set_index("patient")
    horizon = (30 if trial["name"] == "lossy" else 120) * DAYS_PER_MONTH
    cutoff = adtte["CUTOFFDT"].iloc[0]
    by = {code: adtte[adtte["CNSR"] == code] for code in range(5)}
    assert set(adtte["CNSR"]) <= set(by)
    assert (by[1]["ADT"] == cutoff).all() and (by[1]["CNSDTDSC"] == "data cutoff").all()
    lost = latent.loc[by[2]["SUBJID"], "ltfu_day"].to_numpy()
    assert np.allclose(by[2]["ADT"], lost, atol=1e-3) and (by[2]["CNSDTDSC"] == "lost to follow-up").all()
    # The simulated horizon runs from HSCT, or from the day a patient left the pathway alive (OSENR, EFSENR).
    followed_from = latent["hsct_day"].fillna(latent["off_pathway_day"])
    since = by[3]["ADT"].to_numpy() - followed_from.loc[by[3]["SUBJID"]].to_numpy()
    assert np.allclose(since, horizon, atol=1e-3) and (by[3]["CNSDTDSC"] == "end of simulated follow-up").all()
    assert set(by[4]["PARAMCD"]) <= {"REL", "NRM", "AGVHD", "AGVHD34", "CGVHD"}
    assert by[4]["CNSDTDSC"].str.startswith("competing event: ").all()
    assert (by[0]["CNSDTDSC"].isna()).all() and by[0]["EVNTDESC"].notna().all()
    # Every RFS event is a relapse or a death on the latent day it happened.
    rfs = by[0][by[0]["PARAMCD"] == "RFS"]
    column = np.where(rfs["EVNTDESC"] == "relapse", "relapse_day", "death_day")
    latent_day = [latent.loc[s, c] for s, c in zip(rfs["SUBJID"], column, strict=True)]
    assert np.allclose(rfs["ADT"], latent_day, atol=1e-3)
    if trial["name"] == "lossy":           # every code occurs in this trial
        assert all(not by[code].empty for code in range(5)), {c: len(b) for c, b in by.items()}


def test_os_and_efs_from_enrollment_follow_every_enrolled_patient(trial):
    """OSENR and EFSENR: one row per adsl patient from enrollment; events and censoring as the latent history says."""
    adsl, adtte, latent = trial["adsl"].set_index("SUBJID"), trial["adtte"], trial["latent"].set_index("patient")
    left_alive = (adsl["EOTSTT"] == "DISCONTINUED") & ~adsl["DCTREAS"].fillna("").str.startswith("death")
    assert left_alive.sum() >= 3           # the endpoints are about these patients too
    for paramcd in ("OSENR", "EFSENR"):
        rows = _param(adtte, paramcd).set_index("SUBJID")
        assert rows.index.tolist() == adsl.index.tolist()
        assert np.allclose(rows["STARTDT"], adsl["ENRLDT"], rtol=0, atol=1e-6)
    # OS: the events are the deaths adsl knows of, on their day; everyone else is known alive until ADT.
    os_rows = _param(adtte, "OSENR").set_index("SUBJID")
    dead = adsl["DTHFL"] == "Y"
    assert ((os_rows["CNSR"] == 0) == dead).all()
    assert np.allclose(os_rows.loc[dead, "ADT"], adsl.loc[dead, "DTHDT"], rtol=0, atol=2e-6)
    assert np.allclose(os_rows["ADT"], adsl["LSTALVDT"], rtol=0, atol=2e-6)
    assert (os_rows.loc[dead, "EVNTDESC"].str.split().str[0] == "death").all()
    assert (dead & left_alive).any(), "no death after leaving the pathway alive: the follow-up is not exercised"
    assert (os_rows.loc[dead & left_alive, "EVNTDESC"] == "death after leaving the pathway").all()
    # EFS: the first of induction failure (refractory, on the assessment day), relapse and death, from adsl.
    efs = _param(adtte, "EFSENR").set_index("SUBJID")
    failure = adsl["RSPDT"].where(adsl["RESP"] == "refractory")
    first = pd.concat([failure, adsl["RELDT"], adsl["DTHDT"]], axis=1).min(axis=1)
    event = efs["CNSR"] == 0
    assert (event == first.notna()).all()
    assert np.allclose(efs.loc[event, "ADT"], first[event], rtol=0, atol=2e-6)
    kind = efs.loc[event, "EVNTDESC"].str.split().str[0]
    expected = np.select([first[event] == failure[event], first[event] == adsl.loc[event, "RELDT"]],
                         ["induction", "relapse"], "death")
    assert (kind.to_numpy() == expected).all()
    # Latent days behind the descriptions: a relapse after leaving the pathway is the latent relapse_day.
    after_leaving = efs.loc[event & (efs["EVNTDESC"] == "relapse after leaving the pathway")]
    assert np.allclose(after_leaving["ADT"], latent.loc[after_leaving.index, "relapse_day"], atol=1e-3)
    assert (efs.loc[~event, "CNSR"].isin([1, 2, 3])).all() and (os_rows.loc[os_rows["CNSR"] > 0, "CNSR"] <= 3).all()


def test_adsl_holds_the_new_exit_reasons_and_the_retest(trial):
    adsl, latent = trial["adsl"], trial["latent"].set_index("patient")
    cutoff = adsl["CUTOFFDT"].iloc[0]
    retest = adsl["MRDRTRES"].notna()
    if trial["name"] != "retest":
        assert not retest.any() and adsl["RTCSDT"].isna().all()
        return
    # Re-tested patients: MRD-positive before HSCT, a further course, then a result that decides HSCT.
    assert retest.sum() >= 3 and set(adsl.loc[retest, "MRDRTRES"]) == {"negative", "positive"}
    assert (adsl.loc[retest, "MRD2RES"] == "positive").all()
    assert (adsl.loc[retest, "RTCSDT"] < adsl.loc[retest, "MRDRTDT"]).all()
    negative_then = retest & (adsl["MRDRTRES"] == "negative")
    assert (adsl.loc[negative_then & (adsl["HSCTFL"] == "Y")].shape[0] > 0)
    assert (adsl.loc[retest & (adsl["MRDRTRES"] == "positive"), "HSCTFL"] == "N").all()
    truth = latent.loc[adsl.loc[retest, "SUBJID"], "retest_negative"].astype(bool).to_numpy()
    assert ((adsl.loc[retest, "MRDRTRES"] == "negative").to_numpy() == truth).all()
    # Waiting-risk exits: a relapse (RELDT) or death (DTHDT) on the day the patient left.
    for reason, column in (("relapse while awaiting HSCT", "RELDT"), ("death while awaiting HSCT", "DTHDT")):
        rows = adsl[adsl["DCTREAS"] == reason]
        assert len(rows) >= 1, reason
        assert np.allclose(rows[column], rows["EOTDT"], rtol=0, atol=1e-6) and (rows["EOTDT"] <= cutoff).all()


def test_leavers_not_followed_give_no_survival_from_enrollment(tmp_path):
    """off_pathway.followed = false: no OSENR or EFSENR rows, the endpoints not evaluable, no death after leaving."""
    out = ["--out", str(tmp_path)]
    assert main(["trial", "--n", "60", "--seed", "7", "--set", "off_pathway.followed=false", *out]) == 0
    adsl, adtte = pd.read_csv(tmp_path / "adsl.csv"), pd.read_csv(tmp_path / "adtte.csv")
    ep = pd.read_csv(tmp_path / "endpoints.csv").set_index("key")
    assert not adtte["PARAMCD"].isin(["OSENR", "EFSENR"]).any()
    for key in ("os_enroll", "efs_enroll"):
        assert math.isnan(ep.loc[key, "estimate"]) and "off_pathway.followed" in ep.loc[key, "not_evaluable_reason"]
    left_alive = (adsl["EOTSTT"] == "DISCONTINUED") & ~adsl["DCTREAS"].fillna("").str.startswith("death")
    assert left_alive.sum() >= 3
    assert (adsl.loc[left_alive, "DTHFL"] == "N").all()
    assert np.allclose(adsl.loc[left_alive, "LSTALVDT"], adsl.loc[left_alive, "EOTDT"], rtol=0, atol=1e-6)
    in_remission = left_alive & ~adsl["DCTREAS"].fillna("").str.startswith("relapse") & (adsl["RESP"] != "refractory")
    assert in_remission.any() and (adsl.loc[in_remission, "RELFL"] == "N").all()
