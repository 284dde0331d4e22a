"""The true value of every estimand a scenario implies: the reference for bias and coverage.

Post-HSCT endpoints come from calibrate.py (numerical integration of the solved hazards). Response
and MRD rates are closed-form functions of the scenario's probabilities. Endpoints from enrollment
(the ITT event-free survival, OS and EFS of every enrolled patient) depend on the whole pre-transplant
timeline (donor search, delays, slot waits, risk while waiting, follow-up after leaving the pathway),
so they are the truths taken from simulation: one large uncensored cohort, each with its Monte Carlo
standard error.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from sim.analysis.endpoints import death_days, efs_event_days
from sim.model.pathway import TRANSPLANTED, hsct_group, simulate_trial
from sim.model.post_transplant import post_transplant_history
from sim.scenario.calibrate import PostTransplantModel, mrd_negative_before_hsct, true_endpoints
from sim.scenario.schema import DAYS_PER_MONTH, Scenario

ITT_TRUTH_PATIENTS = 200_000
ITT_TRUTH_REPLICATE = 2**31 - 1  # a replicate index no study uses


def true_values(scenario: Scenario, models: dict[str, PostTransplantModel], seed: int, itt: bool = True
                ) -> dict[str, dict[str, float]]:
    """True value of the primary, ITT and secondary estimands (keys as in analysis.SECONDARY), per arm.

    itt=False skips the (simulated) truths from enrollment (ITT, OS and EFS from enrollment), which are then NaN.
    """
    simulated = enrollment_truths(scenario, tuple(models.values()), seed) if itt else \
        [dict.fromkeys(ENROLLMENT_KEYS, np.nan)] * len(models)
    return {arm: _arm_truth(scenario, model) | simulated[i] for i, (arm, model) in enumerate(models.items())}


def _arm_truth(scenario: Scenario, model: PostTransplantModel) -> dict[str, float]:
    landmark = scenario.analysis.landmark_months * DAYS_PER_MONTH
    post = true_endpoints(model, landmark)
    return {
        "rfs": post["rfs"],
        "crc": (1.0 - scenario.induction.p_death) * (scenario.response.p_cr + scenario.response.p_cri),
        "mrd1": scenario.assay.p_negative_after_induction,
        "mrd2": mrd_negative_before_hsct(scenario),
        "os": post["os"],
        "relapse": post["relapse_cif"],
        "nrm": post["nrm_cif"],
        "agvhd24": post["agvhd_2_4_day100"],
        "agvhd34": post["agvhd_3_4_day100"],
        "cgvhd": post["cgvhd_cif"],
        "grfs": post["grfs"],
    }


# Simulated truths: event-free of any failure to reach HSCT (ITT), alive (OS) and event-free (EFS) at the landmark
# from enrollment, each with its MCSE.
ENROLLMENT_KEYS = ("itt", "itt_mcse", "os_enroll", "os_enroll_mcse", "efs_enroll", "efs_enroll_mcse")


def enrollment_truths(scenario: Scenario, models: tuple[PostTransplantModel, ...], seed: int,
                      patients: int = ITT_TRUTH_PATIENTS, batch: int = 50_000) -> list[dict[str, float]]:
    """P(no event by the landmark from enrollment) for ITT, OS and EFS, with MCSEs, per post-transplant model.

    One simulated pathway serves every post-transplant model (common random numbers); the cohort is
    simulated in batches (replicate indices counting down from ITT_TRUTH_REPLICATE) to bound memory.
    With a finite trial-only transplant capacity the answer depends on accrual and n; the
    background-capacity pathway is used, the quantity a designer would quote. OS and EFS are NaN when
    patients who leave the pathway alive are not followed.
    """
    if scenario.transplant.capacity == "finite":
        scenario = scenario.with_updates({"transplant.capacity": "background"})
    landmark = scenario.analysis.landmark_months * DAYS_PER_MONTH
    failures = np.zeros((len(models), 3))
    for k, start in enumerate(range(0, patients, batch)):
        size = min(batch, patients - start)
        history = simulate_trial(scenario, size, seed, replicate=ITT_TRUTH_REPLICATE - k, post_model=models[0])
        enroll = history.draws.enroll_day
        failed_pre = (history.exit_reason != TRANSPLANTED) & (history.days["exit_day"] - enroll <= landmark)
        for i, model in enumerate(models):
            post = post_transplant_history(history.days["hsct_day"], hsct_group(history.draws),
                                           history.draws.post_uniforms, model)
            failed_post = np.fmin(post["relapse_day"], post["death_day"]) - enroll <= landmark
            arm = replace(history, post=post)
            failures[i] += [np.count_nonzero(failed_pre | failed_post),
                            np.count_nonzero(death_days(arm) - enroll <= landmark),
                            np.count_nonzero(efs_event_days(arm) - enroll <= landmark)]
    p = 1.0 - failures / patients
    mcse = np.sqrt(p * (1.0 - p) / patients)
    if not scenario.off_pathway.followed:
        p[:, 1:] = mcse[:, 1:] = np.nan
    return [dict(zip(ENROLLMENT_KEYS, (p[i, 0], mcse[i, 0], p[i, 1], mcse[i, 1], p[i, 2], mcse[i, 2]), strict=True))
            for i in range(len(models))]
