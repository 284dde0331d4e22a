"""Scenario files: the schema of a trial's assumptions, loading, `extends`, `--set` overrides, validation.

A scenario is a TOML file whose sections follow the pathway (analysis, accrual, patients, induction,
blinatumomab, response, consolidation, mrd, donor, transplant, waiting, post_transplant, off_pathway). Every clinical
number lives in a scenario file with its source; this module only knows names, units and allowed
ranges. `load_scenario` returns a validated, immutable `Scenario` or raises `ScenarioError` whose
message names the file (or the `--set` override), the key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import errno
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DAYS_PER_MONTH = 365.25 / 12
MIN_POST_TRANSPLANT_RISK = 1e-6  # smallest relapse + NRM incidence: the null twin scales these hazards


class InputError(ValueError):
    """Input the program cannot use (a file, an option, an output folder); the message says where and why."""


class ScenarioError(InputError):
    """A scenario file or override that cannot be used; the message says where and why."""


# The rules that involve several keys, as the reference states them (each is checked by a validator below).
JOINT_RULES = (
    "`analysis.p1` > `analysis.p0`",
    "`analysis.test = \"binomial\"` needs `post_transplant.ltfu_prob = 0` and `analysis.cutoff = \"landmark\"`",
    "`patients.age_min` < `patients.age_max`; `patients.bsa_min` < `patients.bsa_max`",
    "`response.p_cr + response.p_cri + response.p_early_death` <= 1",
    "`consolidation.cycleK.p_death + consolidation.cycleK.p_relapse` <= 1 for each cycle",
    "`donor.p_haplo + donor.p_sibling + donor.p_unrelated` = 1",
    "`response.assessment_day` >= `induction.duration_days + blinatumomab.duration_days`",
    "`transplant.conditioning_days` < `transplant.slot_days`",
    f"{MIN_POST_TRANSPLANT_RISK:g} <= `post_transplant.relapse_incidence + post_transplant.nrm_incidence` < 1 "
    "(the null twin, on which type I error is estimated, scales these two hazards: they cannot both be 0)",
    "`post_transplant.agvhd_3_4_day100` <= `post_transplant.agvhd_2_4_day100`",
    "`post_transplant.horizon_months` >= `post_transplant.incidence_landmark_months`",
    "`post_transplant.cgvhd_onset_min_days` falls before `post_transplant.incidence_landmark_months` when "
    "`post_transplant.cgvhd_incidence` > 0",
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


def _prob(doc: str) -> Any:
    return Field(ge=0.0, le=1.0, description=doc, json_schema_extra={"unit": "probability"})


# Bounds by unit: far beyond any clinical value, they keep every accepted scenario computable in bounded
# time and memory (a duration of 1e-300 days or a vial of 1e-300 ug would make numbers overflow).
_MINIMUM = {"days": 0.01, "months": 0.01, "years": 0.01, "m2": 0.01, "mg": 0.01, "mg/day": 0.01, "ug/day": 0.01,
            "ug": 0.01,
            "patients / site-month": 0.001, "-": 0.01}
_MAXIMUM = {"days": 3650.0, "months": 600.0, "years": 120.0, "m2": 5.0, "mg": 1000.0, "mg/m2": 1000.0,
            "mg/day": 1000.0, "mg/m2/day": 1000.0, "ug/day": 1000.0, "ug": 1000.0, "patients / site-month": 1000.0,
            "log(days)": 3.0, "-": 100.0}


def _positive(doc: str, unit: str) -> Any:
    return Field(ge=_MINIMUM[unit], le=_MAXIMUM[unit], description=doc, json_schema_extra={"unit": unit})


def _nonneg(doc: str, unit: str) -> Any:
    return Field(ge=0.0, le=_MAXIMUM[unit], description=doc, json_schema_extra={"unit": unit})


def _text(doc: str) -> Any:
    return Field(description=doc, json_schema_extra={"unit": "-"})


def _per(doc: str, period: str) -> Any:
    """A constant hazard given as the probability of the event within one period (without competing events)."""
    return Field(ge=0.0, lt=1.0, description=doc, json_schema_extra={"unit": f"probability per {period}"})


class Analysis(_Section):
    """Design and analysis of the primary endpoint (18-month RFS after HSCT)."""

    landmark_months: float = Field(ge=1.0, le=600.0, description="Landmark of the primary endpoint (RFS after HSCT)",
                                   json_schema_extra={"unit": "months"})
    p0: float = Field(gt=0.0, lt=1.0, description="Null RFS at the landmark; H0: S(landmark) <= p0",
                      json_schema_extra={"unit": "probability"})
    p1: float = Field(gt=0.0, lt=1.0, description="RFS at the landmark the trial is designed to detect",
                      json_schema_extra={"unit": "probability"})
    itt_p0: float = Field(gt=0.0, lt=1.0, description="Null event-free survival at the landmark from enrollment "
                          "for the ITT sensitivity test", json_schema_extra={"unit": "probability"})
    alpha: float = Field(gt=0.0, lt=0.5, description="One-sided significance level",
                         json_schema_extra={"unit": "probability"})
    test: Literal["cloglog", "linear", "arcsine", "binomial", "logrank"] = _text(
        "Test of H0: KM Wald z on the cloglog, linear or arcsine scale, exact binomial, "
        "or one-sample log-rank")
    cutoff: Literal["landmark", "calendar"] = _text(
        "Final analysis when the last transplanted patient reaches the landmark ('landmark') "
        "or at a fixed time after the first enrollment ('calendar')")
    calendar_cutoff_months: float = _positive(
        "Time from first enrollment to the final analysis when cutoff = 'calendar'", "months")
    min_transplanted: int = Field(ge=1, le=10000, description="Fewest transplanted patients for which the primary "
                                  "endpoint is analysed (fewer: not evaluable, H0 not rejected)",
                                  json_schema_extra={"unit": "patients"})

    @model_validator(mode="after")
    def _p1_above_p0(self) -> Analysis:
        if self.p1 <= self.p0:
            raise ValueError(f"analysis.p1 = {self.p1} must be above analysis.p0 = {self.p0}")
        return self


class Accrual(_Section):
    """Multicenter accrual: sites open evenly over a ramp-up window, Poisson screening per open site."""

    n_sites: int = Field(ge=1, le=500, description="Number of recruiting sites",
                         json_schema_extra={"unit": "sites"})
    screened_per_site_month: float = _positive(
        "Poisson rate of patients screened at one open site", "patients / site-month")
    ramp_up_months: float = _nonneg(
        "Sites open at evenly spaced times over this window (site k of K opens at k/K of it)", "months")
    screen_fail_prob: float = Field(ge=0.0, le=0.99, description="Probability a screened patient is not enrolled "
                                    "(at most 0.99: 100 screened per enrolled patient)",
                                    json_schema_extra={"unit": "probability"})


class Patients(_Section):
    """Patient attributes drawn at enrollment (truncated normal distributions)."""

    age_min: float = Field(ge=0.0, le=120.0, description="Lowest eligible age", json_schema_extra={"unit": "years"})
    age_max: float = Field(ge=0.0, le=120.0, description="Highest eligible age", json_schema_extra={"unit": "years"})
    age_mean: float = _positive("Mean of the (untruncated) age distribution", "years")
    age_sd: float = _positive("SD of the (untruncated) age distribution", "years")
    bsa_mean: float = _positive("Mean body-surface area", "m2")
    bsa_sd: float = _positive("SD of body-surface area", "m2")
    bsa_min: float = _positive("Lowest body-surface area", "m2")
    bsa_max: float = _positive("Highest body-surface area", "m2")

    @model_validator(mode="after")
    def _ranges(self) -> Patients:
        if self.age_min >= self.age_max:
            raise ValueError(f"patients.age_min = {self.age_min} must be below patients.age_max = {self.age_max}")
        if self.bsa_min >= self.bsa_max:
            raise ValueError(f"patients.bsa_min = {self.bsa_min} must be below patients.bsa_max = {self.bsa_max}")
        return self


class Induction(_Section):
    """VIP induction, days 1-14: doses from BSA with caps; induction death."""

    duration_days: float = _positive("Length of VIP induction", "days")
    vincristine_mg_m2: float = _nonneg("Vincristine dose per administration", "mg/m2")
    vincristine_cap_mg: float = _positive("Cap on one vincristine administration", "mg")
    vincristine_doses: int = Field(ge=0, le=14, description="Vincristine administrations (days 1 and 8)",
                                   json_schema_extra={"unit": "doses"})
    idarubicin_mg_m2: float = _nonneg("Idarubicin dose per administration", "mg/m2")
    idarubicin_doses: int = Field(ge=0, le=14, description="Idarubicin administrations (days 1 and 8)",
                                  json_schema_extra={"unit": "doses"})
    prednisone_mg_m2_day: float = _nonneg("Prednisone daily dose", "mg/m2/day")
    prednisone_cap_mg_day: float = _positive("Cap on the prednisone daily dose", "mg/day")
    p_death: float = _prob("Death during VIP (day of death uniform over the induction)")
    inpatient_days: float = _nonneg("Hospital days from the start of VIP (for bed forecasts)", "days")


class Blinatumomab(_Section):
    """Two weeks of continuous-infusion blinatumomab after VIP."""

    duration_days: float = _positive("Length of the blinatumomab course", "days")
    dose_ug_per_day: float = _positive("Daily dose (for drug-supply forecasts)", "ug/day")
    vial_ug: float = _positive("Content of one vial (for drug-supply forecasts)", "ug")
    bag_days: float = Field(ge=1.0, le=7.0, description="Days one infusion bag runs; each bag uses whole vials",
                            json_schema_extra={"unit": "days"})
    inpatient_days: float = _nonneg("Hospital days at the start of the infusion", "days")
    p_crs_grade3: float = _prob("Cytokine release syndrome grade >= 3 (onset uniform over the first 3 days)")
    p_neurotox_grade3: float = _prob("Neurotoxicity grade >= 3 (onset uniform over the course)")
    p_discontinuation: float = _prob(
        "Permanent discontinuation (day uniform over the course); the patient still has the response assessment")


class Response(_Section):
    """Response assessment after induction, among patients alive after VIP; refractory is the remainder."""

    assessment_day: float = _positive("Day of the response assessment, counted from the start of VIP", "days")
    p_cr: float = _prob("Complete remission")
    p_cri: float = _prob("Complete remission with incomplete haematological recovery")
    p_early_death: float = _prob("Death during blinatumomab, before the assessment")

    @model_validator(mode="after")
    def _exclusive(self) -> Response:
        total = self.p_cr + self.p_cri + self.p_early_death
        if total > 1.0 + 1e-12:
            raise ValueError(
                f"response.p_cr + response.p_cri + response.p_early_death = {total:.4g}; "
                "these exclusive outcomes must sum to <= 1 (refractory is the remainder)")
        return self


class Cycle(_Section):
    """One consolidation cycle: length, death, relapse and delay."""

    regimen: str = _text("Regimen name (for reports)")
    length_days: float = _positive("Planned length of the cycle", "days")
    p_death: float = _prob("Death during the cycle (day uniform over the cycle)")
    p_relapse: float = _prob("Haematological relapse during the cycle (day uniform over the cycle)")
    p_delay: float = _prob("The cycle is prolonged (e.g. count recovery, infection)")
    delay_days: float = _nonneg("Length of a delay when it happens", "days")



class Consolidation(_Section):
    """Two consolidation cycles for patients in remission."""

    include_cri: bool = _text("Whether CRi patients consolidate (otherwise they leave the pathway)")
    start_gap_days: float = _nonneg("From the response assessment to the start of cycle 1", "days")
    cycle1: Cycle
    cycle2: Cycle

    @model_validator(mode="after")
    def _exclusive(self) -> Consolidation:
        for name in ("cycle1", "cycle2"):
            cycle = getattr(self, name)
            if cycle.p_death + cycle.p_relapse > 1.0 + 1e-12:
                raise ValueError(
                    f"consolidation.{name}.p_death + consolidation.{name}.p_relapse = "
                    f"{cycle.p_death + cycle.p_relapse:.4g}; these exclusive outcomes must sum to <= 1")
        return self


class Assay(_Section):
    """MRD by one assay: negativity and its change between the two time points, lab turnaround."""

    sensitivity: float = Field(gt=0.0, lt=1.0, description="Detection threshold (for reports)",
                               json_schema_extra={"unit": "fraction of cells"})
    p_negative_after_induction: float = _prob("MRD-negative at the response assessment, among remitters")
    p_convert_to_negative: float = _prob("MRD-positive after induction, negative before HSCT")
    p_lose_negativity: float = _prob("MRD-negative after induction, positive before HSCT")
    turnaround_days: float = _nonneg("From sample to result", "days")


class Mrd(_Section):
    """MRD testing after induction and after consolidation (before HSCT)."""

    assay: Literal["MFC", "NGS"] = _text("Assay that decides transplant eligibility")
    positive_action: Literal["off_study", "transplant", "blinatumomab_retest"] = _text(
        "What happens to patients MRD-positive before HSCT: leave the pathway ('off_study'), transplant anyway "
        "with post_transplant.relapse_hr_mrd_positive ('transplant'), or a further blinatumomab course and a "
        "re-test: negative proceeds to HSCT, positive leaves the pathway ('blinatumomab_retest')")
    retest_course_days: float = _positive(
        "Length of the further blinatumomab course when positive_action = 'blinatumomab_retest'", "days")
    retest_p_negative: float = _prob(
        "MRD-negative at the re-test after that course, among MRD-positive patients who complete it")
    retest_turnaround_days: float = _nonneg("From the re-test sample (end of the course) to its result", "days")
    mfc: Assay
    ngs: Assay


class Donor(_Section):
    """Donor availability and type, drawn at enrollment; search starts at enrollment."""

    p_no_donor: float = _prob("No suitable donor of any type")
    p_haplo: float = _prob("Haploidentical donor, among patients with a donor")
    p_sibling: float = _prob("Matched sibling donor, among patients with a donor")
    p_unrelated: float = _prob("Matched unrelated donor, among patients with a donor")
    search_median_days_haplo: float = _positive("Median donor search time, haploidentical", "days")
    search_median_days_sibling: float = _positive("Median donor search time, matched sibling", "days")
    search_median_days_unrelated: float = _positive("Median donor search time, matched unrelated", "days")
    search_sigma: float = _nonneg("Log-scale SD of the (log-normal) search times", "log(days)")

    @model_validator(mode="after")
    def _mix(self) -> Donor:
        total = self.p_haplo + self.p_sibling + self.p_unrelated
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"donor.p_haplo + donor.p_sibling + donor.p_unrelated = {total:.4g}; must equal 1")
        return self


class Transplant(_Section):
    """From eligibility to HSCT day 0: refusal, a transplant slot, conditioning."""

    p_refusal: float = _prob("Eligible patient declines HSCT")
    capacity: Literal["background", "finite"] = _text(
        "'background': wait for a slot drawn independently per patient (units shared with non-trial patients); "
        "'finite': the trial's own slots, a FIFO queue")
    background_wait_mean_days: float = _nonneg("Mean (exponential) wait for a slot when capacity = 'background'",
                                               "days")
    slots: int = Field(ge=1, le=1000, description="Transplant slots when capacity = 'finite'",
                       json_schema_extra={"unit": "slots"})
    slot_days: float = _positive("Days a patient holds a slot (admission to discharge)", "days")
    conditioning_days: float = _nonneg("From admission to HSCT day 0", "days")


class Waiting(_Section):
    """Risk while waiting for HSCT in remission: from the end of consolidation (the MRD sample) to admission.

    Constant hazards, each given as the probability of the event within one month of waiting if nothing
    else happened (hazard = -ln(1 - p) per month). The relapse hazard follows the most recent MRD sample
    (before HSCT, or the re-test's once it is taken). All 0 = waiting carries no risk.
    """

    relapse_per_month_mrd_negative: float = _per("Relapse while waiting, MRD-negative at the latest sample", "month")
    relapse_per_month_mrd_positive: float = _per("Relapse while waiting, MRD-positive at the latest sample", "month")
    death_per_month: float = _per("Death in remission while waiting", "month")


class PostTransplant(_Section):
    """After HSCT: relapse and NRM (competing), GVHD, death after relapse, loss to follow-up.

    Incidences describe the transplanted population as a whole; hazard ratios move risk between
    subgroups without changing those population totals (scenario/calibrate.py solves for the hazards).
    """

    incidence_landmark_months: float = Field(ge=1.0, le=600.0, description="Time at which the incidences below are "
                                             "given", json_schema_extra={"unit": "months"})
    relapse_incidence: float = _prob("Cumulative incidence of relapse at the landmark (NRM competing)")
    nrm_incidence: float = _prob("Cumulative incidence of non-relapse mortality at the landmark")
    relapse_shape: float = Field(ge=0.05, le=10.0, description="Weibull shape of the relapse hazard (1 = constant)",
                                 json_schema_extra={"unit": "-"})
    nrm_shape: float = Field(ge=0.05, le=10.0, description="Weibull shape of the NRM hazard (1 = constant)",
                             json_schema_extra={"unit": "-"})
    relapse_hr_mrd_positive: float = _positive("Relapse hazard ratio, MRD-positive vs negative at HSCT", "-")
    nrm_hr_haplo: float = _positive("NRM hazard ratio, haploidentical vs matched sibling donor", "-")
    nrm_hr_unrelated: float = _positive("NRM hazard ratio, matched unrelated vs matched sibling donor", "-")
    nrm_hr_agvhd_3_4: float = _positive(
        "NRM hazard ratio from the onset of grade III-IV acute GVHD (1 = GVHD does not change NRM)", "-")
    nrm_hr_cgvhd_systemic: float = _positive(
        "NRM hazard ratio from the onset of chronic GVHD needing systemic therapy (1 = no change; both multiply)",
        "-")
    agvhd_2_4_day100: float = _prob("Cumulative incidence of acute GVHD grade II-IV by day 100")
    agvhd_3_4_day100: float = _prob("Cumulative incidence of acute GVHD grade III-IV by day 100")
    cgvhd_incidence: float = _prob("Cumulative incidence of chronic GVHD at the landmark")
    cgvhd_onset_min_days: float = _nonneg("Earliest onset of chronic GVHD after HSCT", "days")
    p_cgvhd_systemic: float = _prob("Chronic GVHD that needs systemic therapy (a GRFS event)")
    post_relapse_median_months: float = _positive("Median survival after relapse (exponential)", "months")
    ltfu_prob: float = Field(ge=0.0, lt=1.0, description="Loss to follow-up within the landmark after HSCT",
                             json_schema_extra={"unit": "probability"})
    horizon_months: float = _positive("Latent histories are simulated this long after HSCT", "months")

    @model_validator(mode="after")
    def _achievable(self) -> PostTransplant:
        total = self.relapse_incidence + self.nrm_incidence
        if total >= 1.0:
            raise ValueError(
                f"post_transplant.relapse_incidence + post_transplant.nrm_incidence = {total:.4g}; "
                "no hazards reproduce a sum >= 1 (RFS at the landmark must stay above 0)")
        if total < MIN_POST_TRANSPLANT_RISK:
            raise ValueError(
                f"post_transplant.relapse_incidence + post_transplant.nrm_incidence = {total:.4g}; must be at least "
                f"{MIN_POST_TRANSPLANT_RISK:g}: type I error is estimated on the null twin, whose RFS is brought to "
                "analysis.p0 by scaling these two hazards, so they cannot both be (practically) 0")
        if self.agvhd_3_4_day100 > self.agvhd_2_4_day100:
            raise ValueError(
                f"post_transplant.agvhd_3_4_day100 = {self.agvhd_3_4_day100} must not exceed "
                f"post_transplant.agvhd_2_4_day100 = {self.agvhd_2_4_day100}")
        if self.horizon_months < self.incidence_landmark_months:
            raise ValueError(
                f"post_transplant.horizon_months = {self.horizon_months:g} must be >= "
                f"post_transplant.incidence_landmark_months = {self.incidence_landmark_months:g}")
        landmark_days = self.incidence_landmark_months * DAYS_PER_MONTH
        if self.cgvhd_onset_min_days >= landmark_days and self.cgvhd_incidence > 0:
            raise ValueError(
                f"post_transplant.cgvhd_onset_min_days = {self.cgvhd_onset_min_days:g} days must fall before "
                f"post_transplant.incidence_landmark_months = {self.incidence_landmark_months:g} months "
                f"({landmark_days:.0f} days) when post_transplant.cgvhd_incidence > 0")
        return self


class SafetyRule(_Section):
    """A Bayesian safety rule (Thall, Simon & Estey 1995): stop enrollment when P(rate > threshold | data)
    > cutoff, checked every `every` evaluable patients from `min_evaluable`; or a boundary table."""

    enabled: bool = _text("Whether the rule is applied")
    prior_a: float = Field(gt=0.0, le=1000.0, description="Beta prior a (prior events)",
                           json_schema_extra={"unit": "patients"})
    prior_b: float = Field(gt=0.0, le=1000.0, description="Beta prior b (prior non-events)",
                           json_schema_extra={"unit": "patients"})
    threshold: float = Field(gt=0.0, lt=1.0, description="Event rate that is too high",
                             json_schema_extra={"unit": "probability"})
    cutoff: float = Field(gt=0.0, lt=1.0, description="Stop when the posterior probability of a rate above the "
                          "threshold exceeds this", json_schema_extra={"unit": "probability"})
    every: int = Field(ge=1, le=1000, description="Check after every k-th evaluable patient",
                       json_schema_extra={"unit": "patients"})
    min_evaluable: int = Field(ge=1, le=1000, description="First check at this many evaluable patients",
                               json_schema_extra={"unit": "patients"})
    boundary: list[list[int]] = Field(description="Optional table [[k, d], ...]: stop if at least d events among "
                                      "the first k evaluable (replaces the posterior rule when given)",
                                      json_schema_extra={"unit": "patients"})

    @model_validator(mode="after")
    def _table(self) -> SafetyRule:
        previous = 0
        for pair in self.boundary:
            if len(pair) != 2 or not 1 <= pair[1] <= pair[0] or pair[0] <= previous:
                raise ValueError(f"boundary = {self.boundary}: expected [[k, d], ...] with k increasing and "
                                 "1 <= d <= k")
            previous = pair[0]
        return self


class SimonFutility(_Section):
    """Futility on induction response (CRc), Simon two-stage style: stop if at most r1 of the first n1
    evaluable patients reach CR or CRi."""

    enabled: bool = _text("Whether the rule is applied")
    n1: int = Field(ge=1, le=1000, description="Stage-1 size: evaluable patients whose response decides",
                    json_schema_extra={"unit": "patients"})
    r1: int = Field(ge=0, le=1000, description="Stop if at most r1 of the first n1 respond (CR or CRi)",
                    json_schema_extra={"unit": "patients"})
    pause_enrollment: bool = _text("Pause enrollment after the n1-th patient until stage 1 is evaluated "
                                   "(sites stay open; patients arriving meanwhile are not enrolled)")

    @model_validator(mode="after")
    def _r1_below_n1(self) -> SimonFutility:
        if self.r1 >= self.n1:
            raise ValueError(f"monitoring.simon.r1 = {self.r1} must be below monitoring.simon.n1 = {self.n1}")
        return self


class InterimFutility(_Section):
    """Futility on the primary endpoint at one interim look: stop enrollment when the chance that the
    final test rejects H0 (conditional power or Bayesian predictive probability) is below a threshold."""

    enabled: bool = _text("Whether the rule is applied")
    method: Literal["conditional_power", "predictive_probability"] = _text(
        "Conditional power under `assumption`, or the predictive probability under a beta posterior")
    assumption: Literal["trend", "h1"] = _text("For conditional power: future patients at the current "
                                               "estimate ('trend') or at p1 ('h1')")
    at_month: float = _positive("The interim look, months after the first enrollment", "months")
    threshold: float = Field(gt=0.0, lt=1.0, description="Stop if the probability of final success is below this",
                             json_schema_extra={"unit": "probability"})
    prior_a: float = Field(gt=0.0, le=1000.0, description="Beta prior a of 18-month RFS (predictive probability)",
                           json_schema_extra={"unit": "patients"})
    prior_b: float = Field(gt=0.0, le=1000.0, description="Beta prior b of 18-month RFS (predictive probability)",
                           json_schema_extra={"unit": "patients"})


class Monitoring(_Section):
    """Interim monitoring in calendar time; every rule is off unless enabled."""

    induction_death: SafetyRule
    nrm_day100: SafetyRule
    simon: SimonFutility
    futility: InterimFutility
class OffPathway(_Section):
    """Patients who leave the pathway alive, followed for relapse and death (OS and EFS from enrollment).

    Exponential times from the day they leave: death after induction failure (refractory) or after a
    relapse; patients leaving in remission (CRi not consolidated, MRD-positive off study, no donor,
    refusal) relapse or die in remission with constant hazards, then die after relapse. Loss to
    follow-up: the hazard of post_transplant.ltfu_prob, from the day they leave.
    """

    followed: bool = _text("Whether patients who leave the pathway alive are followed (false: OS and EFS from "
                           "enrollment are not evaluable)")
    refractory_median_months: float = _positive("Median survival after induction failure (refractory)", "months")
    post_relapse_median_months: float = _positive(
        "Median survival after a relapse before HSCT or after leaving the pathway in remission", "months")
    relapse_per_year_mrd_negative: float = _per(
        "Relapse after leaving the pathway in remission, MRD-negative at the latest test", "year")
    relapse_per_year_mrd_positive: float = _per(
        "Relapse after leaving the pathway in remission, MRD-positive at the latest test", "year")
    death_in_remission_per_year: float = _per("Death in remission after leaving the pathway", "year")


class Scenario(_Section):
    """A complete, validated description of the trial's assumptions."""

    name: str = _text("Short name (used in reports)")
    description: str = _text("What question the scenario answers")
    analysis: Analysis
    accrual: Accrual
    patients: Patients
    induction: Induction
    blinatumomab: Blinatumomab
    response: Response
    consolidation: Consolidation
    mrd: Mrd
    donor: Donor
    transplant: Transplant
    waiting: Waiting
    post_transplant: PostTransplant
    off_pathway: OffPathway
    monitoring: Monitoring

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        treatment = self.induction.duration_days + self.blinatumomab.duration_days
        if self.response.assessment_day < treatment:
            raise ValueError(
                f"response.assessment_day = {self.response.assessment_day} falls before the end of VIP + "
                f"blinatumomab (induction.duration_days + blinatumomab.duration_days = {treatment})")
        if self.transplant.conditioning_days >= self.transplant.slot_days:
            raise ValueError(
                f"transplant.conditioning_days = {self.transplant.conditioning_days} must be shorter than "
                f"transplant.slot_days = {self.transplant.slot_days} (the slot is held from admission)")
        if self.analysis.test == "binomial" and (self.post_transplant.ltfu_prob > 0
                                                 or self.analysis.cutoff == "calendar"):
            raise ValueError(
                "analysis.test = 'binomial' needs every transplanted patient's landmark status: it requires "
                "post_transplant.ltfu_prob = 0 and analysis.cutoff = 'landmark' (got ltfu_prob = "
                f"{self.post_transplant.ltfu_prob}, cutoff = {self.analysis.cutoff!r}); use a Kaplan-Meier test")
        return self

    @property
    def assay(self) -> Assay:
        """Parameters of the assay that decides transplant eligibility."""
        return self.mrd.mfc if self.mrd.assay == "MFC" else self.mrd.ngs

    def with_updates(self, updates: dict[str, Any]) -> Scenario:
        """A validated copy with dotted keys replaced, e.g. {"post_transplant.relapse_incidence": 0.2}."""
        data = self.model_dump()
        for key, value in updates.items():
            _set_dotted(data, key, value)
        return _validate(data, {}, "<updated scenario>")


# --------------------------------------------------------------------------- loading


def load_scenario(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Scenario:
    """Read a scenario file (following `extends`), apply `section.key=value` overrides, validate.

    A distribution given instead of a number (sim/scenario/priors.py) is replaced by its mean.
    """
    from sim.scenario.priors import split_priors  # priors.py reads this module's schema

    data, origins = scenario_data(path, overrides)
    point, _ = split_priors(data, origins, str(path))
    return _validate(point, origins, str(path))


def scenario_data(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> tuple[dict[str, Any],
                                                                                           dict[str, str]]:
    """The merged TOML dict of a scenario file and its `extends` chain with the overrides applied, and the
    override behind each key it sets (for messages); not validated."""
    path = Path(path)
    data = _read_with_extends(path, ())
    data.pop("extends", None)
    origins: dict[str, str] = {}
    for item in overrides:
        key, value = parse_override(item)
        _set_dotted(data, key, value)
        origins[key] = f"--set {item}"
    return data, origins


def scenario_files(path: str | Path) -> dict[str, str]:
    """The text of a scenario file and of every file it extends, child first (for reports)."""
    texts: dict[str, str] = {}
    path = Path(path)
    while path.is_file() and str(path) not in texts:
        text = _read_text(path, ())
        texts[str(path)] = text
        parent = tomllib.loads(text).get("extends")
        if not isinstance(parent, str):
            break
        path = path.parent / parent
    return texts


def scenario_toml(data: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> str:
    """A scenario (model_dump) as TOML text, each key set by an override marked with a '# --set' comment."""
    import tomli_w

    overridden = {parse_override(item)[0] for item in overrides}
    lines, section = [], ""
    for line in tomli_w.dumps(data).splitlines():
        if line.startswith("["):
            section = line.strip("[]") + "."
        elif " = " in line and f"{section if section != '.' else ''}{line.split(' = ')[0]}" in overridden:
            line += "  # --set"
        lines.append(line)
    return "\n".join(lines) + "\n"


def parse_override(item: str) -> tuple[str, Any]:
    """Split 'section.key=value'; the value is read as TOML (number, bool, string, array) or as a bare string."""
    if "=" not in item:
        raise ScenarioError(f"--set {item}: expected section.key=value")
    key, raw = (part.strip() for part in item.split("=", 1))
    if not key or any(not part for part in key.split(".")):
        raise ScenarioError(f"--set {item}: expected section.key=value")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def _read_with_extends(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    resolved = _resolved(path, chain)
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in (*chain, resolved))
        raise ScenarioError(f"{path}: extends: cycle {cycle}")
    text = _read_text(path, chain)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {_toml_problem(text, exc)}") from None
    parent = data.get("extends")
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ScenarioError(f"{path}: extends = {parent!r}: must be a file name (string)")
    base = _read_with_extends(path.parent / parent, (*chain, resolved))
    base.pop("extends", None)
    return _deep_merge(base, data)


def _where(path: Path, chain: tuple[Path, ...]) -> str:
    """The file and, for a parent, the `extends` line that named it."""
    return f"{chain[-1]}: extends = {path.name!r}: {path}" if chain else str(path)


def _resolved(path: Path, chain: tuple[Path, ...]) -> Path:
    """The real path of a scenario file, or ScenarioError for a missing file, a link loop or a folder."""
    try:
        resolved = path.resolve(strict=True)
    except FileNotFoundError:
        raise ScenarioError(f"{_where(path, chain)}: no such scenario file") from None
    except (RuntimeError, OSError) as exc:  # a symbolic-link loop: RuntimeError up to Python 3.12, OSError after
        if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP:
            raise ScenarioError(f"{_where(path, chain)}: a symbolic link that leads back to itself (a link loop), "
                                "not a scenario file; point the link at a .toml file") from None
        raise ScenarioError(f"{_where(path, chain)}: cannot be opened ({exc.strerror or exc})") from None
    if resolved.is_dir():
        raise ScenarioError(f"{_where(path, chain)}: is a folder, not a scenario file")
    return resolved


def _read_text(path: Path, chain: tuple[Path, ...]) -> str:
    """The file as text (UTF-8, with or without a byte-order mark), or ScenarioError saying why not."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ScenarioError(f"{_where(path, chain)}: cannot be read ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ScenarioError(
            f"{_where(path, chain)}: not a text file in UTF-8: the character at line {line}, column {column} "
            "cannot be read (saved in another encoding, or not a scenario file?); save it as UTF-8 text") from None


def _toml_problem(text: str, exc: tomllib.TOMLDecodeError) -> str:
    """tomllib's message, with the key named when the problem is a key given twice."""
    message = str(exc)
    if message.startswith(("Cannot overwrite", "Cannot declare", "Cannot mutate")):
        twice = _repeated_key(text)
        if twice is not None:
            key, first, second = twice
            return (f"{key} is given twice (line {first} and line {second}); "
                    "each key may appear only once in a table: keep one of them")
    return message


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_ASSIGN = re.compile(r"^\s*([A-Za-z0-9_\-\.\"' ]+?)\s*=")


def _repeated_key(text: str) -> tuple[str, int, int] | None:
    """(dotted key or table, first line, repeated line) of the first key or table defined twice, if found."""
    seen: dict[str, int] = {}
    table = ""
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _dotted(header.group(1))
            if line.lstrip().startswith("[["):  # an array of tables may repeat
                continue
            key = f"[{table}]"
        else:
            assign = _ASSIGN.match(line)
            if not assign:
                continue
            key = ".".join(part for part in (table, _dotted(assign.group(1))) if part)
        if key in seen:
            return key, seen[key], number
        seen[key] = number
    return None


def _dotted(key: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in key.split("."))


def _deep_merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    *sections, leaf = key.split(".")
    node = data
    for section in sections:
        child = node.setdefault(section, {})
        if not isinstance(child, dict):
            raise ScenarioError(f"--set {key}: '{section}' is a value, not a section")
        node = child
    node[leaf] = value


def _validate(data: dict[str, Any], origins: dict[str, str], source: str) -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        lines = [_describe(err, data, origins, source) for err in errors]
        missing = [err for err in errors if err["type"] == "missing" and len(err["loc"]) == 1]
        if len(missing) >= 3:
            lines.append(f"{source}: {len(missing)} of the {len(Scenario.model_fields)} top-level entries are "
                         f"missing; a scenario usually starts with extends = {_base_for(source)!r} and then gives "
                         "only the values that differ")
        raise ScenarioError("\n".join(lines)) from None


def _base_for(source: str) -> str:
    """How a scenario file at `source` would name the library's base.toml in `extends`."""
    base = Path(__file__).resolve().parents[2] / "scenarios" / "base.toml"
    if not base.is_file():
        return "base.toml"
    try:
        relative = Path(os.path.relpath(base, Path(source).resolve().parent))
    except ValueError:  # another drive (Windows)
        return str(base)
    return relative.as_posix() if relative.parts.count("..") <= 2 else str(base)


def _describe(err: Any, data: dict[str, Any], origins: dict[str, str], source: str) -> str:
    key = ".".join(str(part) for part in err["loc"]) or "(top level)"
    where = _origin(key, origins, source)
    kind = err["type"]
    if kind == "missing":
        return f"{where}: {key}: missing; {_allowed(err['loc'])}"
    if kind == "extra_forbidden":
        return _unknown_key(err["loc"], origins, source)
    if kind == "value_error":
        return f"{where}: {key}: {err['msg'].removeprefix('Value error, ')}"
    return f"{where}: {key} = {err.get('input')!r}: {err['msg']}; {_allowed(err['loc'])}"


def _unknown_key(loc: tuple[Any, ...], origins: dict[str, str], source: str) -> str:
    """An unknown key, named in full (an override's whole dotted key), with the closest allowed key."""
    key = ".".join(str(part) for part in loc)
    # `--set unknown.key=1` fails at `unknown`: name the override's whole key, and the override.
    full = next((k for k in origins if k == key or k.startswith(key + ".")), key)
    where = origins.get(full) or _origin(key, origins, source)
    allowed = list(getattr(_model_at(loc[:-1]), "model_fields", {}))
    leaf = str(loc[-1])
    what = "unknown section" if full != key else "unknown key"
    return f"{where}: {full}: {what} {leaf!r}{_suggestion(leaf, loc[:-1], allowed)}; allowed keys here: " + \
        (", ".join(allowed) or "(none)")


def _suggestion(leaf: str, parent: tuple[Any, ...], allowed: list[str]) -> str:
    """' (did you mean p_cr?)' for a near miss, or the section where a misplaced key belongs; else ''."""
    close = difflib.get_close_matches(leaf, allowed, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]}?)"
    elsewhere = [dotted for dotted, _ in leaf_fields() if dotted.rsplit(".", 1)[-1] == leaf]
    if elsewhere:
        return f" (it belongs elsewhere: did you mean {' or '.join(elsewhere)}?)"
    close = difflib.get_close_matches(leaf, [dotted.rsplit(".", 1)[-1] for dotted, _ in leaf_fields()], n=1,
                                      cutoff=0.75)
    if close:
        return f" (did you mean {' or '.join(d for d, _ in leaf_fields() if d.endswith('.' + close[0]))}?)"
    return " (typo?)"


def _origin(key: str, origins: dict[str, str], source: str) -> str:
    """Where an error at `key` comes from: its own --set override, else the file (with any overrides in the section)."""
    if key in origins:
        return origins[key]
    section = key.split(".")[0]
    related = [text for k, text in origins.items() if k.split(".")[0] == section]
    return f"{source} with {', '.join(related)}" if related else source


def _field_at(loc: tuple[Any, ...]) -> Any:
    model: Any = Scenario
    field = None
    for part in loc:
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return None
        field = fields[part]
        model = field.annotation
    return field


def _model_at(loc: tuple[Any, ...]) -> Any:
    model: Any = Scenario
    for part in loc:
        model = getattr(model, "model_fields", {}).get(part)
        model = getattr(model, "annotation", None)
    return model


def leaf_fields(model: type[BaseModel] | None = None, prefix: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """(dotted key, pydantic field) of every value in the schema, in file order."""
    leaves = []
    for name, field in (model or Scenario).model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            leaves += leaf_fields(annotation, (*prefix, name))
        else:
            leaves.append((".".join((*prefix, name)), field))
    return leaves


def _allowed(loc: tuple[Any, ...]) -> str:
    field = _field_at(loc)
    if field is None:
        return "see scenarios/README.md"
    described = f" ({field.description})" if field.description else ""
    return f"allowed: {field_range(field)}{described}"


def key_label(key: str) -> str:
    """A dotted key in clinical words, from the schema's description, e.g. 'Complete remission'."""
    field = _field_at(tuple(key.split(".")))
    if field is None or not field.description:
        return key
    return field.description.split(" (")[0].split(";")[0]


def field_range(field: Any) -> str:
    """The allowed values of a schema field in words, e.g. '0 <= x <= 1' or 'one of MFC, NGS'."""
    annotation = field.annotation
    if getattr(annotation, "__origin__", None) is Literal:
        return "one of " + ", ".join(str(a) for a in annotation.__args__)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"a table: {(annotation.__doc__ or '').strip().splitlines()[0]}"
    kind = {float: "number", int: "integer", bool: "true or false", str: "text"}.get(annotation, str(annotation))
    bounds = []
    for meta in field.metadata:
        for attr, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(meta, attr, None) is not None:
                bounds.append(f"{op} {getattr(meta, attr)}")
    return f"{kind} {' and '.join(bounds)}".strip()
