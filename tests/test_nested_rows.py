"""The sizing study's fast path (analysis/nested.py) gives, for every n, the row of analysing n patients alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sim.analysis.nested import replicate_columns
from sim.model.pathway import simulate_trial
from sim.scenario.schema import load_scenario
from sim.study.runner import arm_models, replicate_row

BASE = Path(__file__).resolve().parent.parent / "scenarios" / "base.toml"
NS = (3, 5, 8, 10, 20, 27, 40, 55, 60)

VARIANTS = {
    "base": {},
    "calendar": {"analysis.cutoff": "calendar", "analysis.calendar_cutoff_months": 30.0},
    "calendar early": {"analysis.cutoff": "calendar", "analysis.calendar_cutoff_months": 14.0},
    "lossy": {"post_transplant.ltfu_prob": 0.3, "post_transplant.horizon_months": 20.0},
    "many required": {"analysis.min_transplanted": 25},
    "linear": {"analysis.test": "linear"},
    "arcsine": {"analysis.test": "arcsine"},
    "logrank calendar": {"analysis.test": "logrank", "analysis.cutoff": "calendar",
                         "analysis.calendar_cutoff_months": 20.0},
    "binomial": {"analysis.test": "binomial", "post_transplant.ltfu_prob": 0.0},
    "deadly": {"post_transplant.nrm_incidence": 0.6, "post_transplant.relapse_incidence": 0.35},
    "short landmark": {"analysis.landmark_months": 2.0},
    "leavers not followed": {"off_pathway.followed": False},
}


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if np.isnan(a) or np.isnan(b):
            return bool(np.isnan(a) and np.isnan(b))
        return a == b or abs(a - b) <= 1e-12 * max(1.0, abs(a), abs(b))
    return a == b


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_nested_rows_equal_the_rows_of_each_n_analysed_alone(variant):
    scenario = load_scenario(BASE).with_updates(VARIANTS[variant])
    models = arm_models(scenario)
    checked = 0
    for seed in range(6):
        history = simulate_trial(scenario, max(NS), seed, post_model=models["design"])
        for endpoints, flow in (("primary", True), ("rfs", False), ("all", True)):
            fast = replicate_columns(history, NS, endpoints, flow)
            for j, n in enumerate(NS):
                alone = replicate_row(history, n, endpoints, flow)
                assert list(fast) == list(alone), (variant, n)
                for key, value in alone.items():
                    got = fast[key][j].item() if hasattr(fast[key][j], "item") else fast[key][j]
                    assert _same(got, value), (variant, seed, endpoints, n, key, got, value)
                checked += 1
    assert checked == 6 * 3 * len(NS)


def test_trials_simulated_together_are_read_from_their_shared_arrays_as_from_their_own_slices():
    from dataclasses import replace

    from sim.analysis.nested import many_replicate_columns
    from sim.model.pathway import simulate_trials
    from sim.model.streams import Seeds

    scenario = load_scenario(BASE)
    models = arm_models(scenario)
    together = simulate_trials(scenario, 60, [Seeds(4, r) for r in range(12)], [models["design"], models["null"]])
    # Trials of two arms, interleaved and out of order, with the per-trial options of a sizing study's chunk.
    trials = [(arms[k], "all" if k == 0 else "primary", k == 0) for arms in reversed(together) for k in (1, 0)]
    assert all(history.batch is not None for history, _, _ in trials)
    shared = many_replicate_columns(trials, NS)
    alone = many_replicate_columns([(replace(h), e, f) for h, e, f in trials], NS)   # a copy has no batch
    assert shared.keys() == alone.keys()
    for key in shared:
        np.testing.assert_array_equal(shared[key], alone[key], err_msg=key)


def test_a_trial_given_other_post_transplant_hazards_is_analysed_with_them_not_its_batchs():
    from dataclasses import replace

    from sim.analysis.nested import many_replicate_columns
    from sim.model.pathway import simulate_trials
    from sim.model.streams import Seeds

    scenario = load_scenario(BASE)
    models = arm_models(scenario)
    together = simulate_trials(scenario, 60, [Seeds(4, r) for r in range(12)], [models["design"], models["null"]])
    # The design arm's pathway given the null twin's post-HSCT history (as assurance and the truths do).
    moved = [(replace(design, post=null.post), "primary", False) for design, null in together]
    null = [(null, "primary", False) for _, null in together]
    assert all(history.batch is None for history, _, _ in moved)
    for key, value in many_replicate_columns(moved, NS).items():
        np.testing.assert_array_equal(value, many_replicate_columns(null, NS)[key], err_msg=key)
