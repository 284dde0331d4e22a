"""What-if studies: common random numbers across scenarios (measured), sensitivity directions, the
compare and sensitivity commands end to end."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.cli.parser import main
from sim.scenario.schema import InputError, load_scenario
from sim.study.runner import Study, arm_models, simulate_chunk
from sim.study.whatif import paired_differences, parse_variant, sensitivity_values

BASE = Path(__file__).resolve().parent.parent / "scenarios" / "base.toml"


def _design_rejections(scenario, seed, reps=400, n=50):
    rows = pd.DataFrame(simulate_chunk(Study(scenario, (n,), reps, seed, "primary"), arm_models(scenario), 0, reps))
    return rows


def test_common_random_numbers_shrink_the_mcse_of_a_power_difference():
    base = load_scenario(BASE)
    close = base.with_updates({"post_transplant.relapse_incidence": 0.14})
    a = _design_rejections(base, seed=7)
    b_same = _design_rejections(close, seed=7)
    b_other = _design_rejections(close, seed=8)
    crn = paired_differences({"base": a, "close": b_same}, "base").iloc[0]
    independent = paired_differences({"base": a, "close": b_other}, "base").iloc[0]
    # Measured, not assumed: the paired MCSE with common random numbers against the same statistic
    # computed from independently seeded runs.
    assert crn["mcse_paired"] < 0.7 * independent["mcse_paired"], (crn["mcse_paired"], independent["mcse_paired"])
    assert independent["mcse_paired"] == pytest.approx(independent["mcse_independent"], rel=0.25)
    # Both estimate the same difference.
    gap = crn["power_difference"] - independent["power_difference"]
    assert abs(gap) < 4 * np.hypot(crn["mcse_paired"], independent["mcse_paired"])


@pytest.mark.parametrize(("key", "low", "high", "direction"), [
    ("response.p_cr", 0.6, 0.9, +1),
    ("post_transplant.relapse_incidence", 0.25, 0.10, +1),   # better post-HSCT RFS -> more power
    ("post_transplant.nrm_incidence", 0.05, 0.20, -1),
])
def test_power_moves_in_the_clinically_expected_direction(key, low, high, direction):
    base = load_scenario(BASE)
    lo = _design_rejections(base.with_updates({key: low}), seed=3, reps=300, n=60)
    hi = _design_rejections(base.with_updates({key: high}), seed=3, reps=300, n=60)
    diff = paired_differences({"low": lo, "high": hi}, "low").iloc[0]
    assert direction * diff["power_difference"] > 3 * diff["mcse_paired"], diff.to_dict()


def test_compare_command_writes_tables_figure_and_report(tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", "--scenario", str(BASE), "--scenario", str(BASE.parent / "ngs_mrd.toml"),
                 "--variant", "few_donors:donor.p_no_donor=0.3", "--n", "30", "50", "--reps", "40", "--jobs", "1",
                 "--endpoints", "primary", "--quiet", "--out", str(out)])
    assert code == 0
    for name in ("compare_oc.csv", "compare_required_n.csv", "compare_differences.csv", "compare_resources.csv",
                 "compare_summary.csv", "compare_power_all_n.csv", "compare_power.png", "report.html",
                 "manifest.json"):
        assert (out / name).is_file(), name
    diffs = pd.read_csv(out / "compare_differences.csv")
    assert set(diffs["scenario"]) == {"ngs_mrd", "few_donors"} and set(diffs["n"]) == {30, 50}
    page = (out / "report.html").read_text()
    assert "few_donors" in page and "No suitable donor of any type: 0.03 -&gt; 0.3" in page
    assert "power difference from base" in capsys.readouterr().out


def test_compare_resources_are_totalled_at_each_scenarios_own_required_n(tmp_path):
    """Each scenario is judged at its own required n (first target power at its own RFS), not at the largest n."""
    out = tmp_path / "cmp"
    assert main(["compare", "--scenario", str(BASE), "--variant", "few_donors:donor.p_no_donor=0.4",
                 "--n", "20:100:40", "--reps", "60", "--jobs", "1", "--endpoints", "primary", "--target-power", "0.5",
                 "--quiet", "--out", str(out)]) == 0
    sizes = pd.read_csv(out / "compare_required_n.csv")
    own = sizes[sizes["at"] == "scenario"].set_index("scenario")["required_n"]
    resources = pd.read_csv(out / "compare_resources.csv").groupby("scenario")["n"].first()
    summary = pd.read_csv(out / "compare_summary.csv").set_index("scenario")["n"]
    assert own["base"] < own["few_donors"] < 100          # two different answers inside the grid
    for name in ("base", "few_donors"):
        assert resources[name] == summary[name] == own[name], name


@pytest.mark.parametrize("args", [
    ["--scenario", str(BASE)],                                     # only one scenario
    ["--variant", "bad"],                                          # no KEY=VALUE
    ["--variant", "x:donor.p_no_donor=2"],                         # invalid value
    ["--variant", "x:donor.nonsense=1"],                           # unknown key
])
def test_compare_bad_input_exits_2_without_writing(tmp_path, args, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", *args, "--n", "20", "--reps", "2", "--quiet", "--out", str(out)]) == 2
    assert "error:" in capsys.readouterr().err
    assert not out.exists()


def test_sensitivity_command_ranks_parameters_by_swing(tmp_path, capsys):
    out = tmp_path / "sens"
    code = main(["sensitivity", "--vary", "response.p_cr=0.7:0.9:2",
                 "--vary", "post_transplant.nrm_incidence=0.05:0.2:3", "--n", "60", "--reps", "150",
                 "--jobs", "1", "--quiet", "--out", str(out)])
    assert code == 0
    tornado = pd.read_csv(out / "tornado.csv")
    assert list(tornado["key"]) == ["post_transplant.nrm_incidence", "response.p_cr"]
    assert tornado["power_swing"].is_monotonic_decreasing
    assert list(tornado["label"]) == ["Cumulative incidence of non-relapse mortality at the landmark",
                                      "Complete remission"]
    for name in ("tornado.png", "report.html"):
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "sensitivity.csv")
    assert len(table) == 5
    assert (table.sort_values("value").query("key == 'post_transplant.nrm_incidence'")["true_rfs"].diff().dropna()
            < 0).all()       # more NRM, lower implied RFS


def test_sensitivity_reuses_values_equal_to_the_scenario_as_given(tmp_path):
    out = tmp_path / "sens"
    assert main(["sensitivity", "--vary", "response.p_cr=0.75:0.85:3", "--n", "40", "--reps", "20", "--jobs", "1",
                 "--quiet", "--out", str(out)]) == 0
    assert not (out / "response.p_cr=0.85").exists() and (out / "response.p_cr=0.75").is_dir()
    table = pd.read_csv(out / "sensitivity.csv").set_index("value")
    base = json.loads((out / "manifest.json").read_text())["base"]
    assert table.loc[0.85, "power"] == base["power"]


def test_variant_and_range_syntax_errors_are_clear():
    assert parse_variant("a:x.y=1,z.w=2") == ("a", ["x.y=1", "z.w=2"])
    key, values = sensitivity_values("response.p_cr=0.7:0.9:3")
    assert key == "response.p_cr" and np.allclose(values, [0.7, 0.8, 0.9])
    for bad in ("response.p_cr=0.7:0.9", "response.p_cr=a:b:3", "p_cr=0.1:0.2:3", "response.p_cr=0.1:0.2:1"):
        with pytest.raises(InputError, match="--vary"):
            sensitivity_values(bad)
    with pytest.raises(InputError, match="--variant"):
        parse_variant("nocolon")
