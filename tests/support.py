"""Shared test inputs: the degenerate scenario where every enrolled patient reaches HSCT."""

# Every pre-transplant risk 0 and every patient MRD-negative with a willing donor: all are transplanted.
NO_PRE_TRANSPLANT_RISK = {
    "induction.p_death": 0.0, "response.p_cr": 1.0, "response.p_cri": 0.0, "response.p_early_death": 0.0,
    "consolidation.cycle1.p_death": 0.0, "consolidation.cycle1.p_relapse": 0.0,
    "consolidation.cycle2.p_death": 0.0, "consolidation.cycle2.p_relapse": 0.0,
    "mrd.mfc.p_negative_after_induction": 1.0, "mrd.mfc.p_lose_negativity": 0.0,
    "donor.p_no_donor": 0.0, "transplant.p_refusal": 0.0,
}
