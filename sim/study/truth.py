"""The true value of every estimand a scenario implies: the reference for bias and coverage.

Post-HSCT endpoints come from calibrate.py (numerical integration of the solved hazards). Response
and MRD rates are closed-form functions of the scenario's probabilities. The ITT event-free
survival from enrollment depends on the whole pre-transplant timeline (donor search, delays, slot
waits), so it is the one truth taken from simulation: a large uncensored cohort, reported with its
Monte Carlo standard error.
"""

from __future__ import annotations

import numpy as np

from sim.model.pathway import TRANSPLANTED, hsct_group, simulate_trial
from sim.model.post_transplant import post_transplant_history
from sim.scenario.calibrate import PostTransplantModel, mrd_negative_before_hsct, true_endpoints
from sim.scenario.schema import DAYS_PER_MONTH, Scenario

ITT_TRUTH_PATIENTS = 200_000
ITT_TRUTH_REPLICATE = 2**31 - 1  # a replicate index no study uses


def true_values(scenario: Scenario, models: dict[str, PostTransplantModel], seed: int, itt: bool = True
                ) -> dict[str, dict[str, float]]:
    """True value of the primary, ITT and secondary estimands (keys as in analysis.SECONDARY), per arm.

    itt=False skips the (simulated) ITT truth, which is then NaN.
    """
    itt = itt_truth(scenario, tuple(models.values()), seed) if itt else [(np.nan, np.nan)] * len(models)
    return {arm: _arm_truth(scenario, model, *itt[i]) for i, (arm, model) in enumerate(models.items())}


def _arm_truth(scenario: Scenario, model: PostTransplantModel, itt: float, itt_mcse: float) -> dict[str, float]:
    landmark = scenario.analysis.landmark_months * DAYS_PER_MONTH
    post = true_endpoints(model, landmark)
    return {
        "rfs": post["rfs"],
        "itt": itt,
        "itt_mcse": itt_mcse,
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


def itt_truth(scenario: Scenario, models: tuple[PostTransplantModel, ...], seed: int,
              patients: int = ITT_TRUTH_PATIENTS, batch: int = 50_000) -> list[tuple[float, float]]:
    """P(no failure to reach HSCT, relapse or death by the landmark from enrollment) and its MCSE, per model.

    One simulated pathway serves every post-transplant model (common random numbers); the cohort is
    simulated in batches (replicate indices counting down from ITT_TRUTH_REPLICATE) to bound memory.
    With a finite trial-only transplant capacity the answer depends on accrual and n; the
    background-capacity pathway is used, the quantity a designer would quote.
    """
    if scenario.transplant.capacity == "finite":
        scenario = scenario.with_updates({"transplant.capacity": "background"})
    landmark = scenario.analysis.landmark_months * DAYS_PER_MONTH
    failures = np.zeros(len(models))
    for k, start in enumerate(range(0, patients, batch)):
        size = min(batch, patients - start)
        history = simulate_trial(scenario, size, seed, replicate=ITT_TRUTH_REPLICATE - k, post_model=models[0])
        enroll = history.draws.enroll_day
        failed_pre = (history.exit_reason != TRANSPLANTED) & (history.days["exit_day"] - enroll <= landmark)
        for i, model in enumerate(models):
            post = post_transplant_history(history.days["hsct_day"], hsct_group(history.draws),
                                           history.draws.post_uniforms, model)
            failed_post = np.fmin(post["relapse_day"], post["death_day"]) - enroll <= landmark
            failures[i] += np.count_nonzero(failed_pre | failed_post)
    p = 1.0 - failures / patients
    return [(float(q), float(np.sqrt(q * (1.0 - q) / patients))) for q in p]
