"""Reaching HSCT through the wait, by numerical integration: who is transplanted, in which subgroup, and when.

From the end of consolidation (the MRD sample) to admission for HSCT a patient in remission can relapse
or die, with constant hazards (scenario section [waiting]); the relapse hazard follows the most recent
MRD sample. The wait is the MRD turnaround; under the blinatumomab re-test policy, for MRD-positive
patients, the further course and the re-test's turnaround; then what is left of the donor search
(log-normal from enrollment) and the background wait for a transplant slot (exponential). Integrating
over the consolidation delays, MRD routes and the donor search (quadrature, never simulation) gives
the probability of being transplanted in each subgroup (donor type x MRD status at HSCT) and the
expected time from enrollment to HSCT. With a finite trial-only transplant capacity patients interact
and there is no such closed form; these are then the background-capacity values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special  # integrate: imported where it integrates (see calibrate.py)

from sim.scenario.schema import DAYS_PER_MONTH, Scenario


@dataclass(frozen=True)
class WaitingRates:
    """Hazards per day while waiting in remission: relapse by the latest MRD result, and death."""

    relapse_negative: float
    relapse_positive: float
    death: float

    def total(self, negative: bool) -> float:
        """Rate of leaving the wait (relapse or death) for a patient with this MRD status."""
        return (self.relapse_negative if negative else self.relapse_positive) + self.death

    @property
    def any(self) -> bool:
        """Whether waiting carries any risk."""
        return self.relapse_negative > 0 or self.relapse_positive > 0 or self.death > 0


@dataclass(frozen=True)
class Route:
    """One way from the end of consolidation to the transplant decision (MRD result, or re-test result).

    probability: of taking this route and being alive in remission at the decision, among patients who
    finish consolidation in remission; decision_day: from enrollment; negative: MRD status for the rest
    of the wait and at HSCT.
    """

    probability: float
    decision_day: float
    negative: bool


def waiting_rates(scenario: Scenario) -> WaitingRates:
    """The scenario's waiting risks as hazards per day (p per month -> -ln(1 - p) / month)."""
    w = scenario.waiting

    def rate(p: float) -> float:
        return float(-np.log1p(-p) / DAYS_PER_MONTH)

    return WaitingRates(rate(w.relapse_per_month_mrd_negative), rate(w.relapse_per_month_mrd_positive),
                        rate(w.death_per_month))


def mrd_negative_before_hsct(scenario: Scenario) -> float:
    """P(MRD-negative before HSCT) among remitters, from the two time points' transition probabilities."""
    a = scenario.assay
    p1 = a.p_negative_after_induction
    return p1 * (1.0 - a.p_lose_negativity) + (1.0 - p1) * a.p_convert_to_negative


def consolidation_end_days(scenario: Scenario) -> list[tuple[float, float]]:
    """(day from enrollment, probability) of finishing cycle 2, over the four combinations of cycle delays."""
    c = scenario.consolidation
    start = scenario.response.assessment_day + c.start_gap_days
    lengths = [((cy.length_days, 1.0 - cy.p_delay), (cy.length_days + cy.delay_days, cy.p_delay))
               for cy in (c.cycle1, c.cycle2)]
    return [(start + d1 + d2, p1 * p2) for d1, p1 in lengths[0] for d2, p2 in lengths[1]]


def routes(scenario: Scenario) -> list[Route]:
    """Every route to the transplant decision, with its probability given consolidation completed in remission."""
    s = scenario
    rates = waiting_rates(s)
    q = mrd_negative_before_hsct(s)
    tau = s.assay.turnaround_days
    survive_neg, survive_pos = np.exp(-rates.total(True) * tau), np.exp(-rates.total(False) * tau)
    out = []
    for end, p_end in consolidation_end_days(s):
        out.append(Route(p_end * q * survive_neg, end + tau, True))
        if s.mrd.positive_action == "transplant":
            out.append(Route(p_end * (1.0 - q) * survive_pos, end + tau, False))
        elif s.mrd.positive_action == "blinatumomab_retest":
            m = s.mrd
            course = np.exp(-rates.total(False) * m.retest_course_days)
            retest = m.retest_p_negative * np.exp(-rates.total(True) * m.retest_turnaround_days)
            out.append(Route(p_end * (1.0 - q) * survive_pos * course * retest,
                             end + tau + m.retest_course_days + m.retest_turnaround_days, True))
    return out


def reach_decision(scenario: Scenario) -> float:
    """P(alive in remission at the transplant decision with an MRD result that allows HSCT), among patients
    finishing consolidation in remission (the sum of routes(), without the consolidation delays)."""
    s = scenario
    rates = waiting_rates(s)
    q = mrd_negative_before_hsct(s)
    tau = s.assay.turnaround_days
    negative = q * np.exp(-rates.total(True) * tau)
    positive = (1.0 - q) * np.exp(-rates.total(False) * tau)
    if s.mrd.positive_action == "off_study":
        return float(negative)
    if s.mrd.positive_action == "transplant":
        return float(negative + positive)
    m = s.mrd
    course = np.exp(-rates.total(False) * m.retest_course_days)
    retest = m.retest_p_negative * np.exp(-rates.total(True) * m.retest_turnaround_days)
    return float(negative + positive * course * retest)


def alive_at_mrd_result(scenario: Scenario) -> float:
    """P(alive in remission when the MRD result before HSCT comes back), among patients finishing consolidation."""
    rates = waiting_rates(scenario)
    q, tau = mrd_negative_before_hsct(scenario), scenario.assay.turnaround_days
    if not rates.any:
        return 1.0
    return float(q * np.exp(-rates.total(True) * tau) + (1.0 - q) * np.exp(-rates.total(False) * tau))


def donor_wait_moments(median: float, sigma: float, decision_day: float, rate: float) -> tuple[float, float]:
    """E[exp(-rate X)] and E[X exp(-rate X)] for X = max(0, D - decision_day), D log-normal (median, sigma).

    D is the donor search time from enrollment; X is what is left of it at the decision.
    """
    from scipy import integrate

    if sigma == 0:
        x = max(median - decision_day, 0.0)
        return float(np.exp(-rate * x)), float(x * np.exp(-rate * x))
    z0 = np.log(decision_day / median) / sigma if decision_day > 0 else -np.inf
    done = float(special.ndtr(z0))                       # donor ready by the decision: X = 0

    def excess(z: float) -> float:
        return median * np.exp(sigma * z) - decision_day

    def density(z: float) -> float:
        return float(np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi))

    # Beyond z = sigma + 12 the normal density times any excess is below 1e-30 of the integral.
    top = max(z0, 0.0) + sigma + 12.0
    survive, _ = integrate.quad(lambda z: density(z) * np.exp(-rate * excess(z)), z0, top, limit=200,
                                epsabs=1e-13, epsrel=1e-11)
    moment, _ = integrate.quad(lambda z: density(z) * excess(z) * np.exp(-rate * excess(z)), z0, top, limit=200,
                               epsabs=1e-12, epsrel=1e-11)
    return done + float(survive), float(moment)


def _donor_medians(scenario: Scenario) -> tuple[float, float, float]:
    d = scenario.donor
    return d.search_median_days_haplo, d.search_median_days_sibling, d.search_median_days_unrelated


def _donor_shares(scenario: Scenario) -> np.ndarray:
    d = scenario.donor
    return np.array([d.p_haplo, d.p_sibling, d.p_unrelated])


def _slot_moments(scenario: Scenario, rate: float) -> tuple[float, float]:
    """E[exp(-rate S)] and E[S exp(-rate S)] for the exponential background slot wait S."""
    w = scenario.transplant.background_wait_mean_days
    return 1.0 / (1.0 + rate * w), w / (1.0 + rate * w) ** 2


def transplanted_shares(scenario: Scenario) -> np.ndarray:
    """P(transplanted in subgroup (donor, MRD status at HSCT)) among patients finishing consolidation in remission.

    Shape (3, 2): donors in calibrate.DONOR_TYPES order, columns MRD-negative, MRD-positive at HSCT.
    """
    s = scenario
    rates = waiting_rates(s)
    proceed = (1.0 - s.donor.p_no_donor) * (1.0 - s.transplant.p_refusal)
    shares = np.zeros((3, 2))
    for route in routes(s):
        rate = rates.total(route.negative)
        slot, _ = _slot_moments(s, rate)
        for k, (median, p_k) in enumerate(zip(_donor_medians(s), _donor_shares(s), strict=True)):
            survive, _ = donor_wait_moments(median, s.donor.search_sigma, route.decision_day, rate)
            shares[k, 0 if route.negative else 1] += route.probability * proceed * p_k * survive * slot
    return shares


def alive_at_admission(scenario: Scenario) -> float:
    """P(alive in remission at admission | past the transplant decision with a donor and consent)."""
    s = scenario
    if not waiting_rates(s).any:
        return 1.0
    decided = reach_decision(s) * (1.0 - s.donor.p_no_donor) * (1.0 - s.transplant.p_refusal)
    return float(transplanted_shares(s).sum() / decided) if decided > 0 else 1.0


def mean_days_to_hsct(scenario: Scenario) -> float:
    """Expected days from enrollment to HSCT among transplanted patients (background slot capacity)."""
    s = scenario
    rates = waiting_rates(s)
    weight = total = 0.0
    for route in routes(s):
        rate = rates.total(route.negative)
        slot, slot_moment = _slot_moments(s, rate)
        for median, p_k in zip(_donor_medians(s), _donor_shares(s), strict=True):
            survive, moment = donor_wait_moments(median, s.donor.search_sigma, route.decision_day, rate)
            w = route.probability * p_k
            weight += w * survive * slot
            total += w * ((route.decision_day + s.transplant.conditioning_days) * survive * slot
                          + moment * slot + survive * slot_moment)
    return float(total / weight) if weight > 0 else float("nan")
