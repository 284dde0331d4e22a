"""What each virtual patient would meet at each stage, drawn up front, one random stream per quantity.

The SimPy model (pathway.py) walks patients through the pathway in calendar time and consults these
draws at each decision point. Drawing them here, vectorised and in enrollment order, is what makes a
patient's history independent of later patients and gives common random numbers across scenarios:
every outcome is an inverse-CDF transform of its own uniform, so changing a probability moves only
the patients whose uniform falls between the old and the new threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy import special

from sim.model.streams import Seeds, rows_of_uniforms
from sim.scenario.schema import DAYS_PER_MONTH, Accrual, Cycle, Scenario

# Response codes (index into RESPONSES).
RESPONSES = ("CR", "CRi", "refractory", "early_death")
CR, CRI, REFRACTORY, EARLY_DEATH = range(4)
# Consolidation cycle outcomes.
CYCLE_OK, CYCLE_DEATH, CYCLE_RELAPSE = range(3)
# Donor codes: -1 = no donor, otherwise index into calibrate.DONOR_TYPES.
NO_DONOR = -1
N_POST_UNIFORMS = 8
N_OFF_PATHWAY_UNIFORMS = 4
# The streams of per-patient uniforms, with the number of uniforms each patient takes from each.
UNIFORM_STREAMS = {
    "induction_death": 2, "blinatumomab_toxicity": 6, "consolidation_cycle1": 3, "consolidation_cycle2": 3,
    "mrd": 2, "donor": 2, "age": 1, "bsa": 1, "response": 1, "early_death_day": 1, "refusal": 1, "slot_wait": 1,
    "post_transplant": N_POST_UNIFORMS, "mrd_retest": 1, "waiting_risk": 2, "off_pathway": N_OFF_PATHWAY_UNIFORMS,
}
# Every stream draw_patients reads (a test checks the list is complete).
DRAW_STREAMS = ("accrual_gaps", "screen_fail", "site", *UNIFORM_STREAMS)


@dataclass(frozen=True)
class PatientDraws:
    """Latent per-patient outcomes and durations (arrays of length n, in enrollment order)."""

    enroll_day: np.ndarray
    site: np.ndarray
    n_screened: int
    age: np.ndarray
    bsa: np.ndarray
    induction_death: np.ndarray
    induction_death_offset: np.ndarray
    crs_offset: np.ndarray           # days into blinatumomab; NaN = no grade >= 3 CRS
    neurotox_offset: np.ndarray
    discontinuation_offset: np.ndarray
    response: np.ndarray
    early_death_offset: np.ndarray
    cycle_outcome: tuple[np.ndarray, np.ndarray]
    cycle_event_offset: tuple[np.ndarray, np.ndarray]
    cycle_length: tuple[np.ndarray, np.ndarray]
    mrd1_negative: np.ndarray
    mrd2_negative: np.ndarray
    donor: np.ndarray
    donor_search_days: np.ndarray
    refusal: np.ndarray
    slot_wait_days: np.ndarray
    post_uniforms: np.ndarray        # (n, N_POST_UNIFORMS), consumed by post_transplant.py
    mrd_retest_negative: np.ndarray  # negative at the re-test after a further blinatumomab course (that policy only)
    waiting_budget: np.ndarray       # (n, 2) unit exponentials: cumulative relapse and death hazard a wait may use
    off_pathway_uniforms: np.ndarray  # (n, N_OFF_PATHWAY_UNIFORMS), consumed by off_pathway.py


def draw_patients(scenario: Scenario, n: int, seed: int, replicate: int, seeds: Seeds | None = None
                  ) -> PatientDraws:
    """Every pre-transplant random quantity of an n-patient trial (seeds: its streams hashed ahead, as
    streams.replicate_seeds gives them for DRAW_STREAMS; the draws are the same without)."""
    seeds = seeds if seeds is not None else Seeds(seed, replicate)
    enroll_day, site, n_screened = enrollment(scenario.accrual, n, seed, replicate, seeds)
    return _patient_draws(scenario, _uniforms(seeds, n), enroll_day, site, n_screened)


def draw_trials(scenario: Scenario, n: int, seeds: list[Seeds]) -> tuple[PatientDraws, list[int]]:
    """draw_patients of several n-patient trials as one row of len(seeds) * n patients, trial after trial
    (every transform is per patient, so each trial's slice is its draws), and each trial's number screened."""
    enrolled = [enrollment(scenario.accrual, n, s.seed, s.replicate, s) for s in seeds]
    per_trial = [_uniforms(s, n) for s in seeds]
    uniforms = {name: np.concatenate([u[name] for u in per_trial]) for name in UNIFORM_STREAMS}
    draws = _patient_draws(scenario, uniforms, np.concatenate([e[0] for e in enrolled]),
                           np.concatenate([e[1] for e in enrolled]), 0)
    return draws, [e[2] for e in enrolled]


def _uniforms(seeds: Seeds, n: int) -> dict[str, np.ndarray]:
    return {name: rows_of_uniforms(seeds.stream(name), n, k) for name, k in UNIFORM_STREAMS.items()}


def _patient_draws(s: Scenario, u: dict[str, np.ndarray], enroll_day: np.ndarray, site: np.ndarray,
                   n_screened: int) -> PatientDraws:
    """The draws from each patient's uniforms (UNIFORM_STREAMS), transform by transform."""
    ind = s.induction
    blina = s.blinatumomab
    death_u = u["induction_death"]
    tox = u["blinatumomab_toxicity"]
    cycles = [_cycle(u[f"consolidation_cycle{c}"], cycle)
              for c, cycle in enumerate((s.consolidation.cycle1, s.consolidation.cycle2), start=1)]
    mrd = u["mrd"]
    donor_u = u["donor"]
    return PatientDraws(
        enroll_day=enroll_day,
        site=site,
        n_screened=n_screened,
        age=truncated_normal(u["age"], s.patients.age_mean, s.patients.age_sd, s.patients.age_min,
                             s.patients.age_max),
        bsa=truncated_normal(u["bsa"], s.patients.bsa_mean, s.patients.bsa_sd, s.patients.bsa_min,
                             s.patients.bsa_max),
        induction_death=death_u[:, 0] < ind.p_death,
        induction_death_offset=death_u[:, 1] * ind.duration_days,
        crs_offset=_event_offset(tox[:, 0], blina.p_crs_grade3, tox[:, 1], min(3.0, blina.duration_days)),
        neurotox_offset=_event_offset(tox[:, 2], blina.p_neurotox_grade3, tox[:, 3], blina.duration_days),
        discontinuation_offset=_event_offset(tox[:, 4], blina.p_discontinuation, tox[:, 5], blina.duration_days),
        response=categorical(u["response"], (s.response.p_cr, s.response.p_cri, s.response.p_early_death),
                             codes=(CR, CRI, EARLY_DEATH), otherwise=REFRACTORY),
        early_death_offset=u["early_death_day"] * blina.duration_days,
        cycle_outcome=(cycles[0][0], cycles[1][0]),
        cycle_event_offset=(cycles[0][1], cycles[1][1]),
        cycle_length=(cycles[0][2], cycles[1][2]),
        mrd1_negative=mrd[:, 0] < s.assay.p_negative_after_induction,
        mrd2_negative=np.where(mrd[:, 0] < s.assay.p_negative_after_induction,
                               mrd[:, 1] >= s.assay.p_lose_negativity,
                               mrd[:, 1] < s.assay.p_convert_to_negative),
        donor=donor_type(donor_u[:, 0], s),
        donor_search_days=_search_days(donor_u, s),
        refusal=u["refusal"] < s.transplant.p_refusal,
        slot_wait_days=-s.transplant.background_wait_mean_days * np.log1p(-u["slot_wait"]),
        post_uniforms=u["post_transplant"],
        mrd_retest_negative=(u["mrd_retest"] < s.mrd.retest_p_negative)
        & (s.mrd.positive_action == "blinatumomab_retest"),
        waiting_budget=-np.log1p(-u["waiting_risk"]),
        off_pathway_uniforms=u["off_pathway"],
    )


_PER_PATIENT = tuple(f.name for f in fields(PatientDraws) if f.name != "n_screened")   # trial_slice cuts these


def trial_slice(draws: PatientDraws, lo: int, hi: int, n_screened: int) -> PatientDraws:
    """Patients lo..hi-1 of draws (draw_trials' row of trials) as one trial's draws."""
    def cut(value):
        return tuple(v[lo:hi] for v in value) if isinstance(value, tuple) else value[lo:hi]

    return PatientDraws(**{name: cut(getattr(draws, name)) for name in _PER_PATIENT}, n_screened=n_screened)


def enrollment(accrual: Accrual, n: int, seed: int, replicate: int, seeds: Seeds | None = None
               ) -> tuple[np.ndarray, np.ndarray, int]:
    """Enrollment days, sites and the number screened for the first n enrolled patients.

    Sites k = 0..K-1 open at ramp * k / K; each open site screens a Poisson stream of patients. The
    screened arrivals are the inverse of the piecewise-linear cumulative intensity applied to unit
    exponential partial sums; each screened patient fails screening with its own uniform.
    """
    rate = accrual.screened_per_site_month / DAYS_PER_MONTH
    opens = accrual.ramp_up_months * DAYS_PER_MONTH * np.arange(accrual.n_sites) / accrual.n_sites
    seeds = seeds if seeds is not None else Seeds(seed, replicate)
    gaps_rng = seeds.stream("accrual_gaps")
    fail_rng = seeds.stream("screen_fail")
    batch = int(np.ceil(n / (1.0 - accrual.screen_fail_prob) * 1.3)) + 16
    cum_exp = np.empty(0)
    passed = np.empty(0, dtype=bool)
    while passed.sum() < n:
        more = -np.log1p(-gaps_rng.random(batch))
        start = cum_exp[-1] if cum_exp.size else 0.0
        cum_exp = np.concatenate([cum_exp, start + np.cumsum(more)])
        passed = np.concatenate([passed, fail_rng.random(batch) >= accrual.screen_fail_prob])
    enrolled = np.flatnonzero(passed)[:n]
    days = _inverse_cumulative_intensity(cum_exp[enrolled], opens, rate)
    open_sites = np.searchsorted(opens, days, side="right")
    site = np.minimum((rows_of_uniforms(seeds.stream("site"), n) * open_sites).astype(np.int64), open_sites - 1)
    n_screened = int(enrolled[-1]) + 1 if n else 0
    return days, site, n_screened


def _inverse_cumulative_intensity(target: np.ndarray, opens: np.ndarray, rate: float) -> np.ndarray:
    knots = np.unique(opens)
    open_at = np.searchsorted(opens, knots, side="right")            # sites open on [knot_j, knot_j+1)
    cum_at = np.concatenate([[0.0], np.cumsum(rate * open_at[:-1] * np.diff(knots))])
    seg = np.searchsorted(cum_at, target, side="right") - 1
    return knots[seg] + (target - cum_at[seg]) / (rate * open_at[seg])


def truncated_normal(u: np.ndarray, mean: float, sd: float, lo: float, hi: float) -> np.ndarray:
    """Inverse-CDF draws from Normal(mean, sd) truncated to [lo, hi]."""
    a, b = special.ndtr((lo - mean) / sd), special.ndtr((hi - mean) / sd)
    return np.clip(mean + sd * special.ndtri(a + u * (b - a)), lo, hi)


def categorical(u: np.ndarray, probs: tuple[float, ...], codes: tuple[int, ...], otherwise: int) -> np.ndarray:
    """Code of the outcome whose probability interval holds u; `otherwise` beyond their sum."""
    edges = np.cumsum(probs)
    idx = np.searchsorted(edges, u, side="right")
    return np.append(np.asarray(codes), otherwise)[idx]


def donor_type(u: np.ndarray, scenario: Scenario) -> np.ndarray:
    """NO_DONOR or the index of the donor type (haplo, sibling, unrelated)."""
    d = scenario.donor
    return categorical(u, (d.p_no_donor, (1 - d.p_no_donor) * d.p_haplo, (1 - d.p_no_donor) * d.p_sibling),
                       codes=(NO_DONOR, 0, 1), otherwise=2)


def _search_days(donor_u: np.ndarray, scenario: Scenario) -> np.ndarray:
    d = scenario.donor
    medians = np.array([d.search_median_days_haplo, d.search_median_days_sibling, d.search_median_days_unrelated])
    kind = np.maximum(donor_type(donor_u[:, 0], scenario), 0)
    z = special.ndtri(np.clip(donor_u[:, 1], 1e-300, None))
    return medians[kind] * np.exp(d.search_sigma * z)


def _cycle(cu: np.ndarray, cycle: Cycle) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outcome code, day of death or relapse into the cycle, and the cycle's length with any delay."""
    outcome = categorical(cu[:, 0], (cycle.p_death, cycle.p_relapse), codes=(CYCLE_DEATH, CYCLE_RELAPSE),
                          otherwise=CYCLE_OK)
    return outcome, cu[:, 1] * cycle.length_days, cycle.length_days + (cu[:, 2] < cycle.p_delay) * cycle.delay_days


def _event_offset(u_event: np.ndarray, p: float, u_day: np.ndarray, window: float) -> np.ndarray:
    return np.where(u_event < p, u_day * window, np.nan)
