"""Distributions on scenario inputs: syntax, means and intervals against scipy.stats, ranges, refusals, and
random distributions fed through the schema (hypothesis): every draw stays in its key's allowed range."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from sim.scenario.priors import Marginal, load_uncertain
from sim.scenario.schema import Scenario, ScenarioError, _field_at, load_scenario

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "scenarios" / "base.toml"
# Uniforms at the extremes a generator can return, and in between.
EDGE_UNIFORMS = np.array([0.0, 1e-300, 1e-12, 0.05, 0.5, 0.95, 1 - 1e-12, np.nextafter(1.0, 0.0)])


def uncertain(*items: str):
    return load_uncertain(BASE, list(items))


@pytest.mark.parametrize("written, frozen", [
    ("{ beta = [17, 83] }", stats.beta(17, 83)),
    ("{ beta_mean = 0.17, n = 60 }", stats.beta(0.17 * 60, 0.83 * 60)),
    ("{ gamma_mean = 0.05, cv = 0.3 }", stats.gamma(1 / 0.09, scale=0.05 * 0.09)),
    ("{ lognormal = [0.1, 0.3] }", stats.lognorm(0.3, scale=0.1)),
    ("{ uniform = [0.1, 0.3] }", stats.uniform(0.1, 0.2)),
    ("{ normal = [0.1, 0.2] }", stats.truncnorm(-0.5, 4.5, loc=0.1, scale=0.2)),   # truncated to [0, 1]
])
def test_means_intervals_and_densities_agree_with_scipy_stats(written, frozen):
    _, priors = uncertain(f"post_transplant.nrm_incidence={written}")
    m = priors.marginal("post_transplant.nrm_incidence")
    assert m.mean() == pytest.approx(frozen.mean(), rel=1e-9)
    assert m.interval() == pytest.approx(frozen.ppf([0.05, 0.95]), rel=1e-8)
    u = np.linspace(0.01, 0.99, 23)
    np.testing.assert_allclose(m.ppf(u), frozen.ppf(u), rtol=1e-8)
    x = np.linspace(0.01, 0.6, 17)
    np.testing.assert_allclose(m.pdf(x), frozen.pdf(x), rtol=1e-8, atol=1e-12)


def test_the_point_scenario_uses_the_means_and_validates_like_a_number():
    point, priors = uncertain("post_transplant.relapse_incidence={ beta = [20, 80] }",
                              "response.dirichlet={ p_cr = 80, p_cri = 5, p_early_death = 1, rest = 14 }")
    assert point.post_transplant.relapse_incidence == 0.2
    assert (point.response.p_cr, point.response.p_cri, point.response.p_early_death) == (0.8, 0.05, 0.01)
    assert point == load_scenario(BASE, ["post_transplant.relapse_incidence=0.2", "response.p_cr=0.8",
                                         "response.p_cri=0.05", "response.p_early_death=0.01"])
    assert set(priors.keys) == {"post_transplant.relapse_incidence", "response.p_cr", "response.p_cri",
                                "response.p_early_death"}
    # load_scenario (every other command) gives the same point scenario.
    assert load_scenario(BASE, ["post_transplant.relapse_incidence={ beta = [20, 80] }",
                                "response.dirichlet={ p_cr = 80, p_cri = 5, p_early_death = 1, rest = 14 }"]) == point


def test_dirichlet_draws_sum_to_at_most_one_with_beta_marginals():
    _, priors = uncertain("response.dirichlet={ p_cr = 78, p_cri = 6, p_early_death = 1, rest = 15 }",
                          "donor.dirichlet={ p_haplo = 6, p_sibling = 3, p_unrelated = 1 }")
    rng = np.random.default_rng(3)
    u = {name: rng.random((20_000, count)) for name, count in priors.streams().items()}
    values = priors.values(u)
    response = values["response.p_cr"] + values["response.p_cri"] + values["response.p_early_death"]
    assert response.max() <= 1.0 and response.min() > 0.5
    donor = values["donor.p_haplo"] + values["donor.p_sibling"] + values["donor.p_unrelated"]
    np.testing.assert_allclose(donor, 1.0, atol=1e-12)
    # Each component's marginal is Beta(count, total - count): Kolmogorov-Smirnov against it.
    assert stats.kstest(values["response.p_cri"], stats.beta(6, 94).cdf).pvalue > 0.001
    assert stats.kstest(values["donor.p_sibling"], stats.beta(3, 7).cdf).pvalue > 0.001


@pytest.mark.parametrize("item, words", [
    ("analysis.p0={ beta = [55, 45] }", "design choices"),
    ("monitoring.simon.n1={ uniform = [10, 15] }", "design choices"),
    ("accrual.n_sites={ uniform = [5, 15] }", "continuous scale"),
    ("mrd.assay={ beta = [1, 1] }", "continuous scale"),
    ("post_transplant.relapse_incidence={ beta = [0, 1] }", "a > 0 and b > 0"),
    ("post_transplant.relapse_incidence={ uniform = [0.1, 1.5] }", "leaves the allowed range"),
    ("post_transplant.relapse_incidence={ gamma_mean = 0.5, cv = 1 }", "outside the allowed range"),
    ("post_transplant.relapse_incidence={ normal = [1.5, 0.1] }", "outside the allowed range"),
    ("post_transplant.relapse_incidence={ beta = [1, 1], n = 3 }", "expected one of"),
    ("post_transplant.relapse_incidence={ beta_mean = 1.2, n = 30 }", "strictly between 0 and 1"),
    ("post_transplant.relapse_incidence={ weibull = [1, 2] }", "expected one of"),
    ("response.dirichlet={ p_cr = 78, bogus = 3 }", "not a key of [response]"),
    ("response.dirichlet={ p_cr = 78, assessment_day = 3 }", "not a probability"),
    ("response.dirichlet={ p_cr = 0, rest = 3 }", "count > 0"),
    ("response.dirichlet=0.5", "table of counts"),
])
def test_a_distribution_that_cannot_be_used_is_refused_naming_the_key(item, words):
    key = item.split("=")[0]
    with pytest.raises(ScenarioError, match=r"--set .*" + key.replace(".", r"\.")) as info:
        uncertain(item)
    assert words in str(info.value)


def test_a_key_drawn_by_a_dirichlet_takes_no_other_distribution_or_override():
    with pytest.raises(ScenarioError, match="also drawn by response.dirichlet"):
        uncertain("response.dirichlet={ p_cr = 78, p_cri = 6, rest = 16 }", "response.p_cr={ beta = [1, 1] }")
    with pytest.raises(ScenarioError, match="set that Dirichlet's counts instead"):
        uncertain("response.dirichlet={ p_cr = 78, p_cri = 6, rest = 16 }", "response.p_cr=0.5")
    # A file's Dirichlet (and a key's distribution) can be removed from the command line.
    evidence = ROOT / "scenarios" / "evidence.toml"
    point, priors = load_uncertain(evidence, ["response.dirichlet=none", "response.p_cr=0.8",
                                              "post_transplant.relapse_incidence=0.2"])
    assert point.response.p_cr == 0.8 and point.response.p_cri == load_scenario(BASE).response.p_cri
    assert not {"response.p_cr", "post_transplant.relapse_incidence"} & set(priors.keys)
    assert "post_transplant.nrm_incidence" in priors.keys


def test_point_masses_draw_exactly_their_value():
    _, priors = uncertain("post_transplant.relapse_incidence={ normal = [0.17, 0] }",
                          "post_transplant.nrm_incidence={ uniform = [0.1, 0.1] }",
                          "post_transplant.nrm_hr_haplo={ lognormal = [1.3, 0] }")
    values = priors.values({name: EDGE_UNIFORMS for name in priors.streams()})
    assert (values["post_transplant.relapse_incidence"] == 0.17).all()
    assert (values["post_transplant.nrm_incidence"] == 0.1).all()
    assert (values["post_transplant.nrm_hr_haplo"] == 1.3).all()
    assert priors.means() == {"post_transplant.relapse_incidence": 0.17, "post_transplant.nrm_incidence": 0.1,
                              "post_transplant.nrm_hr_haplo": 1.3}


# --------------------------------------------------------------------------- random distributions (hypothesis)


def _float_keys() -> list[str]:
    keys = []

    def walk(model, path):
        for name, field in model.model_fields.items():
            sub = field.annotation
            if isinstance(sub, type) and hasattr(sub, "model_fields"):
                walk(sub, (*path, name))
            elif sub is float and path and path[0] not in ("analysis", "monitoring"):
                keys.append(".".join((*path, name)))

    walk(Scenario, ())
    return keys


FLOAT_KEYS = _float_keys()
positive = st.floats(1e-3, 1e3)


@st.composite
def distributions(draw):
    family = draw(st.sampled_from(("beta", "beta_mean", "gamma_mean", "lognormal", "uniform", "normal")))
    if family == "beta":
        return f"{{ beta = [{draw(positive)!r}, {draw(positive)!r}] }}"
    if family == "beta_mean":
        return f"{{ beta_mean = {draw(st.floats(1e-4, 1 - 1e-4))!r}, n = {draw(positive)!r} }}"
    if family == "gamma_mean":
        return f"{{ gamma_mean = {draw(positive)!r}, cv = {draw(st.floats(1e-3, 3))!r} }}"
    if family == "lognormal":
        return f"{{ lognormal = [{draw(positive)!r}, {draw(st.floats(0, 3))!r}] }}"
    a, b = sorted((draw(st.floats(-10, 1e3)), draw(st.floats(-10, 1e3))))
    if family == "uniform":
        return f"{{ uniform = [{a!r}, {b!r}] }}"
    return f"{{ normal = [{draw(st.floats(-1, 1e3))!r}, {draw(st.floats(0, 100))!r}] }}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(FLOAT_KEYS), written=distributions(),
       u=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=20))
def test_random_distributions_are_refused_or_every_draw_stays_in_range(key, written, u):
    try:
        point, priors = uncertain(f"{key}={written}")
    except ScenarioError as exc:
        assert key in str(exc)   # refused, naming the key (its own range, or a rule that ties it to others)
        return
    m = priors.marginal(key)
    field = _field_at(tuple(key.split(".")))
    assert isinstance(m, Marginal) and field is not None
    draws = m.ppf(np.concatenate([EDGE_UNIFORMS, u]))
    assert np.isfinite(draws).all()
    for meta in field.metadata:
        for attr, ok in (("ge", lambda x, b: x >= b), ("gt", lambda x, b: x > b), ("le", lambda x, b: x <= b),
                         ("lt", lambda x, b: x < b)):
            bound = getattr(meta, attr, None)
            if bound is not None:
                assert ok(draws, bound).all(), (attr, bound, draws)
    # The point scenario holds the mean (it validated, so it is inside the range too).
    node = point.model_dump()
    for part in key.split("."):
        node = node[part]
    assert node == m.mean()
