"""Resource and drug-supply forecast from simulated trials, by calendar month.

Per patient: blinatumomab infused (ug; bags of `bag_days`, each using whole vials; the course after
VIP and, under the re-test policy, the further course of MRD-positive patients), inpatient bed-days
(VIP, the start of blinatumomab, the transplant stay), transplant admissions and occupied transplant
beds, MRD assays run (after induction, before HSCT, re-test). Intervals are split exactly over
calendar months (month k covers days [k, k+1) x 365.25/12 since the first site opened), so monthly
totals add up to the patients' totals. Across replicates the forecast reports the mean and
10th/50th/90th percentiles per month.
A forecast covers at most MAX_MONTHS calendar months; the last of them then holds all later use
(only a trial lasting over 100 years, from implausibly slow accrual or waits, gets there), so the
work and the table stay bounded whatever the scenario.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.analysis.datasets import patient_columns
from sim.model.pathway import TrialHistory
from sim.scenario.calibrate import PostTransplantModel
from sim.scenario.schema import DAYS_PER_MONTH, Scenario
from sim.study.runner import design_trials

MAX_MONTHS = 1200  # 100 years: the longest monthly forecast; later use is added to the last month

MEASURES = ("blinatumomab_vials", "blinatumomab_bags", "blinatumomab_mg", "bed_days_vip", "bed_days_blinatumomab",
            "bed_days_transplant", "transplant_admissions", "transplant_beds_occupied", "mrd_assays")


def patient_resources(history: TrialHistory, n: int | None = None) -> pd.DataFrame:
    """Per patient: the intervals and counts each resource comes from (calendar days)."""
    return pd.DataFrame(_resource_columns(history, n))


def _resource_columns(history: TrialHistory, n: int | None) -> dict[str, np.ndarray]:
    s = history.scenario
    p = {key: value[:n] for key, value in patient_columns(history).items()}
    blina = s.blinatumomab
    start = p["blina_start_day"]
    stop = np.fmin.reduce([start + blina.duration_days, p["blina_discontinued_day"], p["blina_death_day"]])
    days_on_drug = np.nan_to_num(stop - start)
    bags = np.ceil(days_on_drug / blina.bag_days - 1e-9)
    vip_end = np.fmin(p["enroll_day"] + s.induction.inpatient_days, p["induction_death_day"])
    blina_bed_end = np.fmin(start + blina.inpatient_days, p["blina_death_day"])
    admission = p["admission_day"]
    # The further course (re-test policy) ends early if the patient relapses or dies during it.
    retest_start = p["retest_course_start_day"]
    left_during = np.where(np.isin(p["exit_reason"], ["relapse_awaiting_hsct", "death_awaiting_hsct"]),
                           p["off_pathway_day"], np.nan)
    retest_stop = np.fmin(retest_start + s.mrd.retest_course_days, left_during)
    retest_bags = np.ceil(np.nan_to_num(retest_stop - retest_start) / blina.bag_days - 1e-9)
    vials_per_bag = np.ceil(blina.dose_ug_per_day * blina.bag_days / blina.vial_ug - 1e-9)
    return {
        "patient": p["patient"],
        "vip_bed_start": p["enroll_day"], "vip_bed_end": vip_end,
        "blina_start": start, "blina_stop": stop, "blina_bags": bags,
        "blina_vials": bags * vials_per_bag,
        "blina_bed_start": start, "blina_bed_end": blina_bed_end,
        "hsct_bed_start": admission, "hsct_bed_end": admission + s.transplant.slot_days,
        "mrd1_sample_day": p["mrd1_sample_day"], "mrd2_sample_day": p["mrd2_sample_day"],
        "retest_start": retest_start, "retest_stop": retest_stop, "retest_bags": retest_bags,
        "retest_vials": retest_bags * vials_per_bag, "retest_sample_day": p["retest_sample_day"],
    }


def monthly_use(history: TrialHistory, n: int | None = None) -> pd.DataFrame:
    """One row per calendar month of one trial: every resource in MEASURES."""
    return pd.DataFrame(_monthly_columns(history, n))


def _monthly_columns(history: TrialHistory, n: int | None = None) -> dict[str, np.ndarray]:
    r = _resource_columns(history, n)
    s = history.scenario
    ends = np.concatenate([r[c] for c in ("vip_bed_end", "blina_stop", "hsct_bed_end", "mrd2_sample_day",
                                          "retest_stop", "retest_sample_day")])
    last = np.nanmax(ends) if np.isfinite(ends).any() else np.nan
    months = min(int(np.ceil(last / DAYS_PER_MONTH)) + 1, MAX_MONTHS) if np.isfinite(last) else 1
    edges = np.arange(months + 1) * DAYS_PER_MONTH
    if months == MAX_MONTHS:
        edges[-1] = np.inf  # the last month collects all later use, so totals stay whole
    course_start = np.concatenate([r["blina_start"], r["retest_start"]])
    course_stop = np.concatenate([r["blina_stop"], r["retest_stop"]])
    course_bags = np.nan_to_num(np.concatenate([r["blina_bags"], r["retest_bags"]])).astype(int)
    drug_days = _overlap(course_start, course_stop, edges)
    # Bags start every bag_days from the start of the infusion; vials are counted when a bag is made up.
    bag_starts = np.repeat(np.nan_to_num(course_start), course_bags) + \
        _within_group_index(course_bags) * s.blinatumomab.bag_days
    vials_per_bag = np.ceil(s.blinatumomab.dose_ug_per_day * s.blinatumomab.bag_days / s.blinatumomab.vial_ug - 1e-9)
    bags = _count(bag_starts, edges)
    return {
        "month": np.arange(months),
        "blinatumomab_vials": bags * vials_per_bag,
        "blinatumomab_bags": bags,
        "blinatumomab_mg": drug_days * s.blinatumomab.dose_ug_per_day / 1000.0,
        "bed_days_vip": _overlap(r["vip_bed_start"], r["vip_bed_end"], edges),
        "bed_days_blinatumomab": _overlap(r["blina_bed_start"], r["blina_bed_end"], edges),
        "bed_days_transplant": _overlap(r["hsct_bed_start"], r["hsct_bed_end"], edges),
        "transplant_admissions": _count(r["hsct_bed_start"], edges),
        "transplant_beds_occupied": _overlap(r["hsct_bed_start"], r["hsct_bed_end"], edges) / DAYS_PER_MONTH,
        "mrd_assays": _count(np.concatenate([r["mrd1_sample_day"], r["mrd2_sample_day"], r["retest_sample_day"]]),
                             edges),
    }


def simulated_use(scenario: Scenario, n: int, seed: int, reps: int, post_model: PostTransplantModel
                  ) -> dict[str, np.ndarray]:
    """Monthly use of the study's first `reps` trials of n patients (the same trials the study simulated):
    for each measure of MEASURES, a (trial x month) array, zero after a trial's last month."""
    trials = [_monthly_columns(history) for history in design_trials(scenario, n, seed, reps, post_model)]
    months = max(trial["month"].size for trial in trials)
    use = {measure: np.zeros((reps, months)) for measure in MEASURES}
    for i, trial in enumerate(trials):
        for measure in MEASURES:
            use[measure][i, : trial["month"].size] = trial[measure]
    return use


def forecast(use: dict[str, np.ndarray]) -> pd.DataFrame:
    """Mean and 10th/50th/90th percentiles per month and measure across replicate trials (simulated_use)."""
    rows = []
    for measure in MEASURES:
        stack = use[measure]
        p10, p50, p90 = np.percentile(stack, [10, 50, 90], axis=0)
        rows.append(pd.DataFrame({"measure": measure, "month": np.arange(stack.shape[1]), "mean": stack.mean(axis=0),
                                  "p10": p10, "p50": p50, "p90": p90}))
    return pd.concat(rows, ignore_index=True)


def trial_totals(use: dict[str, np.ndarray]) -> pd.DataFrame:
    """Whole-trial totals per measure across replicates (mean, 10th/50th/90th percentiles)."""
    measures = [m for m in MEASURES if m != "transplant_beds_occupied"]
    totals = np.stack([use[m].sum(axis=1) for m in measures])        # measure x trial
    p10, p50, p90 = np.percentile(totals, [10, 50, 90], axis=1)
    return pd.DataFrame({"measure": measures, "mean": totals.mean(axis=1), "p10": p10, "p50": p50, "p90": p90})


def _overlap(start: np.ndarray, end: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Days of each interval [start, end) falling in each month [edges[k], edges[k+1]), summed over intervals."""
    a = np.asarray(start, dtype=float)[:, None]
    b = np.asarray(end, dtype=float)[:, None]
    ok = np.isfinite(a) & np.isfinite(b)
    inside = np.clip(np.minimum(b, edges[None, 1:]) - np.maximum(a, edges[None, :-1]), 0.0, None)
    return np.where(ok, inside, 0.0).sum(axis=0)


def _count(days: np.ndarray, edges: np.ndarray) -> np.ndarray:
    days = np.asarray(days, dtype=float)
    return np.histogram(days[np.isfinite(days)], bins=edges)[0].astype(float)


def _within_group_index(sizes: np.ndarray) -> np.ndarray:
    """0, 1, ..., size-1 for each group, concatenated."""
    total = int(sizes.sum())
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.arange(total) - starts
