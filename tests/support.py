"""Shared test inputs: the degenerate scenario where every enrolled patient reaches HSCT."""

# Every pre-transplant risk 0 (also while waiting for HSCT) and every patient MRD-negative with a willing donor:
# all are transplanted.
NO_PRE_TRANSPLANT_RISK = {
    "induction.p_death": 0.0, "response.p_cr": 1.0, "response.p_cri": 0.0, "response.p_early_death": 0.0,
    "consolidation.cycle1.p_death": 0.0, "consolidation.cycle1.p_relapse": 0.0,
    "consolidation.cycle2.p_death": 0.0, "consolidation.cycle2.p_relapse": 0.0,
    "mrd.mfc.p_negative_after_induction": 1.0, "mrd.mfc.p_lose_negativity": 0.0,
    "donor.p_no_donor": 0.0, "transplant.p_refusal": 0.0,
    "waiting.relapse_per_month_mrd_negative": 0.0, "waiting.relapse_per_month_mrd_positive": 0.0,
    "waiting.death_per_month": 0.0,
}

# GVHD does not change NRM: the unlinked post-transplant model, whose closed forms many tests check (the link has
# its own tests in test_gvhd_link.py).
UNLINKED_GVHD = {"post_transplant.nrm_hr_agvhd_3_4": 1.0, "post_transplant.nrm_hr_cgvhd_systemic": 1.0}

# Waiting for HSCT carries no risk: donor type and MRD status of the transplanted are then independent.
NO_WAITING_RISK = {"waiting.relapse_per_month_mrd_negative": 0.0, "waiting.relapse_per_month_mrd_positive": 0.0,
                   "waiting.death_per_month": 0.0}
