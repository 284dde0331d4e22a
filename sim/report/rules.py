"""The scenario's interim monitoring rules in words, with the boundaries they imply, and their results.

Used by `describe`, the console and the reports: each enabled rule as a sentence a clinician reads
("stop enrolling if at least 3 of the first 10 patients die during induction, ..."), the Bayesian rules'
boundary tables with their exact operating characteristics when outcomes are seen immediately, and
the simulated cost and benefit of the rules at one n.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.model.monitoring import safety_limits
from sim.scenario.schema import Monitoring, SafetyRule

if TYPE_CHECKING:  # `describe` uses these rules without paying for pandas
    import pandas as pd

RULE_WORDS = {"induction_death": "death during VIP or blinatumomab", "nrm_day100": "non-relapse death by day 100 "
              "after HSCT", "simon": "too few remissions after induction (Simon stage 1)",
              "futility": "little chance of success at the interim look"}


def enabled_rules(monitoring: Monitoring) -> list[str]:
    return [name for name in RULE_WORDS if getattr(monitoring, name).enabled]


def boundary_pairs(rule: SafetyRule, nmax: int) -> list[tuple[int, int]]:
    """(k, d): stop if at least d events among the first k evaluable, at each k where d changes."""
    limits = safety_limits(rule, nmax)
    pairs, previous = [], None
    for k, d in enumerate(limits, start=1):
        if d <= k and d != previous:
            pairs.append((k, int(d)))
            previous = d
    return pairs


def rule_sentences(monitoring: Monitoring, nmax: int) -> list[str]:
    """One sentence per enabled rule, with its boundary where it has one."""
    out = []
    for name in ("induction_death", "nrm_day100"):
        rule = getattr(monitoring, name)
        if not rule.enabled:
            continue
        how = (f"the table given ({rule.boundary})" if rule.boundary else
               f"P(rate > {rule.threshold:.0%} | data) > {rule.cutoff:g} under a beta({rule.prior_a:g}, "
               f"{rule.prior_b:g}) prior, checked every {rule.every} evaluable patient(s) from the "
               f"{rule.min_evaluable}-th")
        pairs = boundary_pairs(rule, nmax)
        table = ", ".join(f"{d} among {k}" for k, d in pairs[:8]) + (", ..." if len(pairs) > 8 else "")
        out.append(f"Safety, {RULE_WORDS[name]}: stop enrolling when {how}; that is, when at least d events occur "
                   f"among the first k evaluable patients: {table or 'never, for these numbers of patients'}.")
    if monitoring.simon.enabled:
        s = monitoring.simon
        out.append(f"Futility on remission (Simon stage 1): stop enrolling if {s.r1} or fewer of the first {s.n1} "
                   "evaluable patients reach CR or CRi (a death before the assessment counts as no remission); "
                   + ("enrollment pauses until stage 1 is evaluated." if s.pause_enrollment
                      else "enrollment continues while stage 1 is evaluated."))
    if monitoring.futility.enabled:
        f = monitoring.futility
        method = ("conditional power under the current trend" if f.method == "conditional_power"
                  and f.assumption == "trend" else "conditional power at p1" if f.method == "conditional_power"
                  else f"the predictive probability (beta({f.prior_a:g}, {f.prior_b:g}) prior)")
        out.append(f"Futility on the primary endpoint: one look {f.at_month:g} months after the first enrollment; "
                   f"stop enrolling if {method} that the final test rejects H0 is below {f.threshold:.0%}.")
    return out


def monitoring_table(oc: pd.DataFrame, rules: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (one per n) of the rules' operating characteristics, each with its MCSE."""
    rows = oc[oc["analysis"] == "rfs"].sort_values("n")
    header = ["n planned", "P(stop early) (MCSE)", *(f"stopped for {RULE_WORDS[r]}" for r in rules),
              "months to the stop, median (10th-90th pct)", "enrolled (mean)", "power with rules (MCSE)",
              "power without", "type I error with rules", "without", "P(stop) if RFS = p0"]
    body = []
    for r in rows.itertuples():
        months = "-" if r.stop_month_p50 != r.stop_month_p50 else \
            f"{r.stop_month_p50:.0f} ({r.stop_month_p10:.0f}-{r.stop_month_p90:.0f})"
        body.append([f"{r.n:.0f}", f"{r.p_stop:.3f} ({r.p_stop_mcse:.3f})",
                     *(f"{getattr(r, f'p_stop_{rule}'):.3f}" for rule in rules), months, f"{r.enrolled_mean:.1f}",
                     f"{r.power:.3f} ({r.power_mcse:.3f})", f"{r.power_no_rules:.3f}", f"{r.type1:.3f}",
                     f"{r.type1_no_rules:.3f}", f"{r.p_stop_null:.3f}"])
    return header, body


def monitoring_sentence(oc: pd.DataFrame, n: int, rules: list[str]) -> str:
    """At n: how often the rules stop the trial, mostly why, and what they cost in power."""
    rows = oc[(oc["analysis"] == "rfs") & (oc["n"] == n)]
    if rows.empty or "p_stop" not in rows:
        return ""
    r = rows.iloc[0]
    main = max(rules, key=lambda rule: r[f"p_stop_{rule}"]) if rules else ""
    why = f", most often for {RULE_WORDS[main]}" if main and r[f"p_stop_{main}"] > 0 else ""
    return (f"With the interim rules, a trial of {n} planned patients stops early in {r.p_stop:.0%} of simulated "
            f"trials{why}; its power is {r.power:.0%} against {r.power_no_rules:.0%} without the rules, and when "
            f"RFS is only p0 it stops in {r.p_stop_null:.0%}.")


def stopping_probabilities(rule: SafetyRule, nmax: int, rates: np.ndarray) -> np.ndarray:
    """Exact P(the rule ever stops a trial of nmax evaluable patients) at each true rate, outcomes seen at once."""
    from sim.stats.designs import Boundary, boundary_oc

    limits = safety_limits(rule, nmax)
    looks = tuple(k for k in range(1, nmax + 1) if limits[k - 1] <= k)
    return boundary_oc(Boundary(nmax, looks, tuple(int(limits[k - 1]) for k in looks)), rates).p_stop
