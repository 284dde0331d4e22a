"""What a scenario implies without simulating: probability of reaching HSCT stage by stage, expected
accrual time, and the first-order normal-approximation sample size of the landmark test.

The sample size uses the asymptotic variance of the Kaplan-Meier estimate at the landmark,
n Var(S(t)) ~ S(t)^2 * integral_0^t dLambda / pi, where pi(s) = S(s) G(s) is the probability of still
being at risk (G: no loss to follow-up), and the delta method for the test's scale. It ignores
small-sample discreteness and administrative censoring, which is why the simulation, not this
formula, answers the sizing question.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from sim.model.draws import _inverse_cumulative_intensity
from sim.scenario.calibrate import PostTransplantModel, null_twin, rfs, rfs_curve
from sim.scenario.schema import DAYS_PER_MONTH, Scenario
from sim.scenario.waiting import alive_at_admission, alive_at_mrd_result, reach_decision


def stage_probabilities(scenario: Scenario) -> list[tuple[str, float]]:
    """(stage, probability of getting through it given the previous ones), in pathway order.

    From the end of consolidation the stages are those of waiting.py: alive in remission at the MRD result,
    the MRD policy's route to the transplant decision, donor, consent, alive in remission at admission.
    """
    s = scenario
    c1, c2 = s.consolidation.cycle1, s.consolidation.cycle2
    at_result = alive_at_mrd_result(s)
    decided = reach_decision(s) / at_result if at_result > 0 else 0.0
    mrd_stage = {
        "off_study": f"MRD-negative before HSCT ({s.mrd.assay})",
        "transplant": "MRD-positive patients transplanted too",
        "blinatumomab_retest": f"MRD-negative ({s.mrd.assay}), or at the blinatumomab re-test",
    }[s.mrd.positive_action]
    return [
        ("survive VIP induction", 1.0 - s.induction.p_death),
        ("remission that is consolidated (CR" + (" or CRi)" if s.consolidation.include_cri else ")"),
         s.response.p_cr + (s.response.p_cri if s.consolidation.include_cri else 0.0)),
        (f"complete cycle 1 ({c1.regimen}) alive without relapse", 1.0 - c1.p_death - c1.p_relapse),
        (f"complete cycle 2 ({c2.regimen}) alive without relapse", 1.0 - c2.p_death - c2.p_relapse),
        (f"alive in remission at the MRD result ({s.assay.turnaround_days:g} days)", at_result),
        (mrd_stage, decided),
        ("donor available", 1.0 - s.donor.p_no_donor),
        ("accept HSCT", 1.0 - s.transplant.p_refusal),
        ("alive in remission at admission (donor, slot)", alive_at_admission(s)),
    ]


def p_reach_hsct(scenario: Scenario) -> float:
    """Probability that an enrolled patient is transplanted."""
    return float(np.prod([p for _, p in stage_probabilities(scenario)]))


def expected_accrual_months(scenario: Scenario, n: int) -> float:
    """Calendar months from the first site opening until the expected cumulative enrollment reaches n."""
    a = scenario.accrual
    rate = a.screened_per_site_month / DAYS_PER_MONTH
    opens = a.ramp_up_months * DAYS_PER_MONTH * np.arange(a.n_sites) / a.n_sites
    screened = np.array([n / (1.0 - a.screen_fail_prob)])
    return float(_inverse_cumulative_intensity(screened, opens, rate)[0] / DAYS_PER_MONTH)


def km_variance_factor(model: PostTransplantModel, t: float, grid: int = 4000) -> float:
    """n Var(KM S(t)) ~ S(t)^2 integral_0^t dLambda / (S G) = S(t)^2 integral d(1/S) / G."""
    s_grid = np.linspace(0.0, t, grid + 1)
    inv_s = 1.0 / rfs_curve(model, s_grid)
    mid = (s_grid[:-1] + s_grid[1:]) / 2
    g = np.exp(-model.ltfu_rate * mid)
    return float(rfs(model, t) ** 2 * np.sum(np.diff(inv_s) / g))


def _scale(test: str) -> tuple[callable, callable]:
    """The test's transform g and its derivative (binomial: linear; log-rank: approximated by cloglog)."""
    if test in ("cloglog", "logrank"):
        return (lambda s: np.log(-np.log(s))), (lambda s: 1.0 / (s * np.log(s)))
    if test == "arcsine":
        return (lambda s: np.arcsin(np.sqrt(s))), (lambda s: 1.0 / (2.0 * np.sqrt(s * (1.0 - s))))
    return (lambda s: s), (lambda s: 1.0)


def _test_variances(scenario: Scenario, model: PostTransplantModel, s1: float | None,
                    null: PostTransplantModel | None = None) -> tuple[float, float, float, float]:
    """(g(alt) - g(p0), n Var g under H0, n Var g under the alternative, alternative S) for the test's scale
    (null: the model's null twin, if already solved)."""
    a = scenario.analysis
    t = a.landmark_months * DAYS_PER_MONTH
    null = null_twin(model, a.p0, t) if null is None else null
    if s1 is not None and s1 != rfs(model, t):
        model = null_twin(model, s1, t)  # the same shape of risk, scaled to the alternative (the same null twin)
    alt = rfs(model, t)
    g, dg = _scale(a.test)
    v0 = km_variance_factor(null, t) * dg(a.p0) ** 2
    v1 = km_variance_factor(model, t) * dg(alt) ** 2
    return float(abs(g(alt) - g(a.p0))), v0, v1, alt


def normal_approx_transplanted(scenario: Scenario, model: PostTransplantModel, power: float | list[float],
                               s1: float | None = None, null: PostTransplantModel | None = None
                               ) -> float | list[float]:
    """Transplanted patients for `power` (or each of several) at one-sided alpha, H0 S = p0 vs the model's true S
    (or s1). Several powers share one variance calculation (with GVHD linked to NRM, each is several ODE solves);
    so can several alternatives, given the model's null twin (null)."""
    delta, v0, v1, _ = _test_variances(scenario, model, s1, null)
    z_a = special.ndtri(1 - scenario.analysis.alpha)
    needed = [float((z_a * np.sqrt(v0) + special.ndtri(p) * np.sqrt(v1)) ** 2 / delta ** 2)
              for p in np.atleast_1d(power)]
    return needed if isinstance(power, list) else needed[0]


def asymptotic_power(scenario: Scenario, model: PostTransplantModel, n_transplanted: float) -> float:
    """First-order power of the landmark test with n transplanted patients (no administrative censoring)."""
    delta, v0, v1, _ = _test_variances(scenario, model, None)
    z_a = special.ndtri(1 - scenario.analysis.alpha)
    return float(special.ndtr((delta * np.sqrt(n_transplanted) - z_a * np.sqrt(v0)) / np.sqrt(v1)))
