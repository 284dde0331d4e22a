"""Scenario files: loading, `--set` overrides, validation messages, `extends`, the CLI, the generated reference.

Invalid input must stop with a `ScenarioError` (exit status 2 from the command line) whose message
names where the problem is (the file, or the `--set` override), the dotted key, and the offending
value or what is allowed, and nothing may be written. The property test at the end mutates the base
scenario at random and checks that the command line either runs or refuses with such a message.

Run with `python -m pytest -q tests/test_scenario.py` from the repository root.
"""

from __future__ import annotations

import copy
import math
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from scipy import integrate, optimize
from support import toml_dumps, toml_value

from sim.analysis.datasets import patients_table
from sim.cli import parser as cli
from sim.model.pathway import simulate_trial
from sim.scenario.reference import scenario_reference
from sim.scenario.schema import Scenario, ScenarioError, load_scenario

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "scenarios" / "base.toml"
REFERENCE = ROOT / "scenarios" / "README.md"
BASE_DATA: dict[str, Any] = tomllib.loads(BASE.read_text(encoding="utf-8"))
OUTPUT_FILES = {"latent_patients.csv", "latent_events.csv", "adsl.csv", "adtte.csv", "endpoints.csv", "flow.csv",
                "manifest.json"}  # at least these
DELETE = object()  # marks a key to remove in `mutate`


# --------------------------------------------------------------------------- helpers


def mutate(data: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A deep copy with dotted keys set (or removed when the value is DELETE)."""
    data = copy.deepcopy(data)
    for key, value in changes.items():
        *sections, leaf = key.split(".")
        node = data
        for section in sections:
            node = node.setdefault(section, {})
        if value is DELETE:
            del node[leaf]
        else:
            node[leaf] = value
    return data


def write_scenario(folder: Path, data: dict[str, Any], name: str = "scenario.toml") -> Path:
    path = folder / name
    path.write_text(toml_dumps(data), encoding="utf-8")
    return path


def scenario_error(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> str:
    """The message of the ScenarioError that loading must raise."""
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, overrides)
    return str(info.value)


def set_args(changes: dict[str, Any]) -> list[str]:
    """`--set key=value` items for the changes (values written as TOML)."""
    return [f"{key}={toml_value(value)}" for key, value in changes.items()]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of one `sim.cli.parser.main` call."""
    capsys.readouterr()
    status = cli.main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def leaf_paths(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[str]:
    paths = []
    for key, value in data.items():
        if isinstance(value, dict):
            paths += leaf_paths(value, (*prefix, key))
        else:
            paths.append(".".join((*prefix, key)))
    return paths


def section_paths(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[str]:
    paths = []
    for key, value in data.items():
        if isinstance(value, dict):
            paths.append(".".join((*prefix, key)))
            paths += section_paths(value, (*prefix, key))
    return paths


def lookup(data: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        data = data[part]
    return data


def assert_nothing_written(out: Path) -> None:
    assert not out.exists() or not any(out.iterdir()), f"files written despite the error: {list(out.iterdir())}"


# --------------------------------------------------------------------------- loading and overrides


def test_base_scenario_loads_with_every_value_of_the_file() -> None:
    scenario = load_scenario(BASE)
    assert isinstance(scenario, Scenario)
    assert scenario.model_dump() == BASE_DATA
    assert scenario.name == "base"
    assert scenario.consolidation.cycle2.regimen == "VP + HD-MTX"
    assert scenario.assay == scenario.mrd.mfc


@pytest.mark.parametrize(("item", "key", "expected"), [
    ("donor.p_no_donor=0.3", "donor.p_no_donor", 0.3),
    ("post_transplant.relapse_incidence=2e-1", "post_transplant.relapse_incidence", 0.2),
    ("accrual.n_sites=4", "accrual.n_sites", 4),
    ("induction.vincristine_doses=3", "induction.vincristine_doses", 3),
    ("induction.p_death=1", "induction.p_death", 1.0),
    ("consolidation.include_cri=false", "consolidation.include_cri", False),
    ("mrd.assay=NGS", "mrd.assay", "NGS"),
    ('transplant.capacity="finite"', "transplant.capacity", "finite"),
    ('consolidation.cycle1.regimen="VDCP = mod"', "consolidation.cycle1.regimen", "VDCP = mod"),
    ("name=my scenario", "name", "my scenario"),
    (" analysis.alpha = 0.025 ", "analysis.alpha", 0.025),
], ids=lambda v: v if isinstance(v, str) else None)
def test_set_override_changes_exactly_one_value_with_its_type(item: str, key: str, expected: Any) -> None:
    scenario = load_scenario(BASE, [item])
    dumped = scenario.model_dump()
    value = lookup(dumped, key)
    assert value == expected
    assert type(value) is type(expected)
    assert dumped == mutate(BASE_DATA, {key: expected}), "an override changed more than its own key"


def test_bare_ngs_override_switches_the_deciding_assay() -> None:
    scenario = load_scenario(BASE, ["mrd.assay=NGS"])
    assert scenario.assay == scenario.mrd.ngs
    assert scenario.assay.sensitivity == BASE_DATA["mrd"]["ngs"]["sensitivity"]


def test_later_overrides_win_and_several_keys_combine() -> None:
    scenario = load_scenario(BASE, ["donor.p_no_donor=0.2", "donor.p_no_donor=0.4", "accrual.n_sites=3"])
    assert scenario.donor.p_no_donor == 0.4
    assert scenario.accrual.n_sites == 3


def test_override_without_equals_sign_is_refused_naming_it() -> None:
    message = scenario_error(BASE, ["donor.p_no_donor"])
    assert "--set donor.p_no_donor" in message
    assert "section.key=value" in message


def test_override_below_a_value_is_refused_naming_the_key() -> None:
    message = scenario_error(BASE, ["induction.p_death.x=1"])
    assert "induction.p_death.x" in message
    assert "'p_death' is a value, not a section" in message


# --------------------------------------------------------------------------- invalid input

# (id, changes to base.toml, fragments the message must contain besides where the problem is)
INVALID = [
    ("unknown-top-level", {"nmae": "x"}, ["nmae", "unknown key", "allowed keys here: name, description"]),
    ("unknown-in-section", {"induction.p_deth": 0.1}, ["induction.p_deth", "unknown key", "p_death"]),
    ("unknown-in-cycle1", {"consolidation.cycle1.lenght_days": 28.0},
     ["consolidation.cycle1.lenght_days", "unknown key", "length_days"]),
    ("string-for-number", {"induction.p_death": "high"},
     ["induction.p_death = 'high'", "valid number", "number >= 0.0 and <= 1.0"]),
    ("bool-for-number", {"accrual.screened_per_site_month": True},
     ["accrual.screened_per_site_month = True", "valid number", "number >= 0.001"]),
    ("bool-for-integer", {"accrual.n_sites": True}, ["accrual.n_sites = True", "integer >= 1 and <= 500"]),
    ("float-for-integer", {"transplant.slots": 2.5}, ["transplant.slots = 2.5", "integer >= 1 and <= 1000"]),
    ("number-for-string", {"consolidation.cycle1.regimen": 3},
     ["consolidation.cycle1.regimen = 3", "valid string"]),
    ("not-an-allowed-word", {"mrd.assay": "PCR"}, ["mrd.assay = 'PCR'", "one of MFC, NGS"]),
    ("probability-below-0", {"donor.p_no_donor": -0.01}, ["donor.p_no_donor = -0.01", ">= 0.0 and <= 1.0"]),
    ("probability-above-1", {"blinatumomab.p_crs_grade3": 1.01},
     ["blinatumomab.p_crs_grade3 = 1.01", ">= 0.0 and <= 1.0"]),
    ("nested-probability-above-1", {"consolidation.cycle2.p_delay": 2.0},
     ["consolidation.cycle2.p_delay = 2.0", "<= 1.0"]),
    ("nan", {"induction.p_death": math.nan}, ["induction.p_death = nan", "finite"]),
    ("inf", {"transplant.slot_days": math.inf}, ["transplant.slot_days = inf", "finite"]),
    ("zero-duration", {"induction.duration_days": 0}, ["induction.duration_days = 0", "number >= 0.01"]),
    ("negative-duration", {"consolidation.cycle1.length_days": -1},
     ["consolidation.cycle1.length_days = -1", "number >= 0.01"]),
    ("section-replaced-by-value", {"induction": 5}, ["induction = 5", "a table"]),
    ("response-sum-above-1", {"response.p_cr": 0.95},
     ["response.p_cr + response.p_cri + response.p_early_death = 1.03", "<= 1"]),
    ("donor-mix-not-1", {"donor.p_haplo": 0.5},
     ["donor.p_haplo + donor.p_sibling + donor.p_unrelated = 0.9", "must equal 1"]),
    ("incidences-sum-to-1", {"post_transplant.relapse_incidence": 0.6, "post_transplant.nrm_incidence": 0.4},
     ["post_transplant.relapse_incidence + post_transplant.nrm_incidence = 1", "no hazards reproduce a sum >= 1"]),
    ("incidences-above-1", {"post_transplant.relapse_incidence": 0.9, "post_transplant.nrm_incidence": 0.2},
     ["post_transplant.relapse_incidence + post_transplant.nrm_incidence = 1.1", "sum >= 1"]),
    ("agvhd-3-4-above-2-4", {"post_transplant.agvhd_3_4_day100": 0.3},
     ["post_transplant.agvhd_3_4_day100 = 0.3", "must not exceed", "post_transplant.agvhd_2_4_day100 = 0.25"]),
    ("age-range-empty", {"patients.age_min": 70.0}, ["patients.age_min = 70.0", "below patients.age_max = 60.0"]),
    ("assessment-before-treatment-ends", {"response.assessment_day": 20.0},
     ["response.assessment_day = 20.0", "induction.duration_days + blinatumomab.duration_days = 28.0"]),
    ("conditioning-outlasts-slot", {"transplant.conditioning_days": 40.0},
     ["transplant.conditioning_days = 40.0", "transplant.slot_days = 35.0"]),
]
# Cases caught by a model validator (several keys together) rather than by one field's type or range.
CROSS_FIELD = {"response-sum-above-1", "donor-mix-not-1", "incidences-sum-to-1", "incidences-above-1",
               "agvhd-3-4-above-2-4", "age-range-empty", "assessment-before-treatment-ends",
               "conditioning-outlasts-slot"}
SINGLE_FIELD = [case for case in INVALID if case[0] not in CROSS_FIELD]
MISSING = [
    ("missing-leaf", "induction.p_death", ["induction.p_death: missing", "number >= 0.0 and <= 1.0"]),
    ("missing-nested-leaf", "consolidation.cycle1.regimen", ["consolidation.cycle1.regimen: missing", "text"]),
    ("missing-top-level-value", "name", ["name: missing"]),
    ("missing-section", "donor", ["donor: missing", "a table"]),
]


@pytest.mark.parametrize(("changes", "fragments"), [case[1:] for case in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_value_in_file_is_refused_naming_file_key_and_value(
        tmp_path: Path, changes: dict[str, Any], fragments: list[str]) -> None:
    path = write_scenario(tmp_path, mutate(BASE_DATA, changes))
    message = scenario_error(path)
    assert message.startswith(f"{path}: "), message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(("changes", "fragments"), [case[1:] for case in SINGLE_FIELD],
                         ids=[c[0] for c in SINGLE_FIELD])
def test_invalid_value_in_set_override_is_refused_naming_the_override(
        changes: dict[str, Any], fragments: list[str]) -> None:
    (item,) = set_args(changes)
    message = scenario_error(BASE, [item])
    assert message.startswith(f"--set {item}: "), message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(("changes", "fragments"), [case[1:] for case in INVALID if case[0] in CROSS_FIELD],
                         ids=sorted(CROSS_FIELD, key=[c[0] for c in INVALID].index))
def test_cross_field_error_from_set_override_names_the_keys_and_values(
        changes: dict[str, Any], fragments: list[str]) -> None:
    message = scenario_error(BASE, set_args(changes))
    for fragment in fragments:
        assert fragment in message


def test_cross_field_error_caused_by_set_override_names_the_override() -> None:
    message = scenario_error(BASE, ["response.p_cr=0.95"])
    assert "--set response.p_cr=0.95" in message, message


def test_unknown_section_from_set_override_names_the_override() -> None:
    message = scenario_error(BASE, ["foo.bar=1"])
    assert "--set foo.bar=1" in message, message


def test_cycle_outcomes_summing_above_1_name_the_dotted_keys() -> None:
    message = scenario_error(BASE, ["consolidation.cycle2.p_relapse=1"])
    assert "consolidation.cycle2.p_death" in message and "consolidation.cycle2.p_relapse" in message, message


def test_cycle_outcomes_summing_above_1_are_refused_naming_the_cycle() -> None:
    message = scenario_error(BASE, ["consolidation.cycle2.p_relapse=1"])
    assert "consolidation.cycle2" in message and "1.01" in message and "must sum to <= 1" in message


def test_landmark_before_cgvhd_onset_names_the_landmark_key_and_values() -> None:
    message = scenario_error(BASE, ["post_transplant.incidence_landmark_months=2"])
    assert "post_transplant.incidence_landmark_months" in message, message
    assert "90" in message, message


def test_unknown_section_from_set_override_is_refused_naming_the_whole_key() -> None:
    message = scenario_error(BASE, ["foo.bar=1"])
    assert message.startswith("--set foo.bar=1: foo.bar: unknown section 'foo'"), message


@pytest.mark.parametrize(("item", "suggestion"), [
    ("response.p_ccr=0.9", "did you mean p_cr?"),
    ("analysis.landmark=18", "did you mean landmark_months?"),
    ("analysis.p_cr=0.9", "did you mean response.p_cr?"),           # a real key in the wrong section
    ("donor.haplo=1", "did you mean p_haplo?"),
])
def test_unknown_key_suggests_the_closest_allowed_key(item: str, suggestion: str) -> None:
    message = scenario_error(BASE, [item])
    assert message.startswith(f"--set {item}: {item.split('=')[0]}: unknown key"), message
    assert suggestion in message, message


def test_typo_in_file_suggests_the_closest_key(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, mutate(BASE_DATA, {"response.p_cr": DELETE, "response.p_ccr": 0.8}))
    message = scenario_error(path)
    assert f"{path}: response.p_ccr: unknown key 'p_ccr' (did you mean p_cr?)" in message, message


def test_duplicate_key_is_refused_naming_the_key_and_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "twice.toml"
    path.write_text('extends = "base.toml"\n\n[donor]\np_no_donor = 0.1\np_haplo = 0.5\np_no_donor = 0.2\n',
                    encoding="utf-8")
    message = scenario_error(path)
    assert message == (f"{path}: not valid TOML: donor.p_no_donor is given twice (line 4 and line 6); each key may "
                       "appear only once in a table: keep one of them"), message


def test_duplicate_table_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "twice.toml"
    path.write_text('[donor]\np_no_donor = 0.1\n\n[donor]\np_haplo = 0.5\n', encoding="utf-8")
    assert "[donor] is given twice (line 1 and line 4)" in scenario_error(path)


def test_file_not_in_utf8_is_refused_with_line_and_column_without_codec_jargon(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "base"\ndescription = "Patients \u00e2g\u00e9s"\n'.encode("latin-1"))
    message = scenario_error(path)
    assert message.startswith(f"{path}: not a text file in UTF-8: the character at line 2, column 25"), message
    assert "codec" not in message and "0x" not in message and "position" not in message


def test_utf8_file_with_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.read_bytes())
    assert load_scenario(path).model_dump() == BASE_DATA


@pytest.mark.parametrize("text", ["", "# nothing yet\n", 'name = "mine"\n[donor]\np_no_donor = 0.2\n'])
def test_file_missing_most_sections_suggests_extends(tmp_path: Path, text: str) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(text, encoding="utf-8")
    message = scenario_error(path)
    assert "a scenario usually starts with extends = " in message, message


def test_extends_hint_names_base_toml_beside_the_library(tmp_path: Path) -> None:
    path = BASE.parent / f"zz-empty-{tmp_path.name}.toml"
    try:
        path.write_text("", encoding="utf-8")
        assert "extends = 'base.toml'" in scenario_error(path)
    finally:
        path.unlink()


def test_one_missing_section_gives_no_extends_hint(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, mutate(BASE_DATA, {"donor": DELETE}))
    assert "extends" not in scenario_error(path)


@pytest.mark.parametrize("where", ["scenario", "extends"])
def test_symbolic_link_loop_is_refused_naming_the_file(tmp_path: Path, where: str) -> None:
    (tmp_path / "a.toml").symlink_to("b.toml")
    (tmp_path / "b.toml").symlink_to("a.toml")
    path = tmp_path / "a.toml"
    if where == "extends":
        path = tmp_path / "child.toml"
        path.write_text('extends = "a.toml"\n', encoding="utf-8")
    message = scenario_error(path)
    assert "a.toml: a symbolic link that leads back to itself (a link loop)" in message, message
    assert message.startswith(str(path)), message


def test_folder_or_unreadable_scenario_is_refused_naming_it(tmp_path: Path) -> None:
    assert scenario_error(tmp_path) == f"{tmp_path}: is a folder, not a scenario file"


@pytest.mark.parametrize(("key", "fragments"), [case[1:] for case in MISSING], ids=[c[0] for c in MISSING])
def test_missing_key_is_refused_naming_file_key_and_allowed_range(
        tmp_path: Path, key: str, fragments: list[str]) -> None:
    path = write_scenario(tmp_path, mutate(BASE_DATA, {key: DELETE}))
    message = scenario_error(path)
    assert message.startswith(f"{path}: "), message
    for fragment in fragments:
        assert fragment in message


def test_missing_section_message_does_not_print_none(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, mutate(BASE_DATA, {"donor": DELETE}))
    assert "(None)" not in scenario_error(path)


def test_empty_section_reports_every_missing_key(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, mutate(BASE_DATA, {"donor": {}}))
    message = scenario_error(path)
    for key in BASE_DATA["donor"]:
        assert f"{path}: donor.{key}: missing" in message


def test_invalid_toml_is_refused_naming_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(BASE.read_text(encoding="utf-8").replace("p_death = 0.02", "p_death = = 0.02"), encoding="utf-8")
    message = scenario_error(path)
    assert message.startswith(f"{path}: not valid TOML"), message
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "= = 0.02" in text)
    assert f"line {line}" in message


def test_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    message = scenario_error(path)
    assert str(path) in message
    assert "no such scenario file" in message


@pytest.mark.parametrize("items", [
    ["induction.p_death=1"],
    ["induction.p_death=0"],
    ["response.p_cr=1", "response.p_cri=0", "response.p_early_death=0"],
    ["response.p_cr=0", "response.p_cri=0", "response.p_early_death=1"],
    ["donor.p_no_donor=1"],
    ["donor.p_no_donor=0"],
    ["donor.p_haplo=1", "donor.p_sibling=0", "donor.p_unrelated=0"],
    ["consolidation.cycle1.p_death=1", "consolidation.cycle1.p_relapse=0"],
    ["mrd.mfc.p_negative_after_induction=1", "mrd.mfc.p_lose_negativity=1"],
    ["transplant.p_refusal=1"],
    ["post_transplant.relapse_incidence=0", "post_transplant.nrm_incidence=1e-6"],
    ["post_transplant.relapse_incidence=1e-6", "post_transplant.nrm_incidence=0"],
    ["post_transplant.agvhd_2_4_day100=1", "post_transplant.agvhd_3_4_day100=1"],
    ["post_transplant.agvhd_2_4_day100=0", "post_transplant.agvhd_3_4_day100=0"],
    ["accrual.ramp_up_months=0", "consolidation.start_gap_days=0", "mrd.mfc.turnaround_days=0"],
], ids=lambda items: "+".join(items))
def test_boundary_values_0_and_1_are_accepted_where_the_schema_allows(items: list[str]) -> None:
    scenario = load_scenario(BASE, items)
    for item in items:
        key, value = item.split("=")
        assert lookup(scenario.model_dump(), key) == float(value)


@pytest.mark.parametrize("command", ["trial", "sweep", "describe"])
def test_no_post_transplant_risk_at_all_is_refused_by_every_command(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    # Regression: trial ran this scenario while sweep and describe refused it (no null twin to scale).
    out = tmp_path / "out"
    argv = [command, "--set", "post_transplant.relapse_incidence=0", "--set", "post_transplant.nrm_incidence=0"]
    argv += {"trial": ["--n", "5", "--out", str(out)], "describe": [],
             "sweep": ["--n", "5", "--reps", "2", "--jobs", "1", "--quiet", "--out", str(out)]}[command]
    status, stdout, stderr = run_cli(argv, capsys)
    assert status == 2 and stdout == ""
    assert "post_transplant.relapse_incidence + post_transplant.nrm_incidence = 0; must be at least 1e-06" in stderr
    assert "--set post_transplant" in stderr and "null twin" in stderr
    assert_nothing_written(out)


def test_degenerate_scenario_simulates_the_certain_outcome() -> None:
    scenario = load_scenario(BASE, ["induction.p_death=1"])
    table = patients_table(simulate_trial(scenario, 20, seed=3))
    assert (table["exit_reason"] == "induction_death").all()


# --------------------------------------------------------------------------- extends


@pytest.fixture
def base_copy(tmp_path: Path) -> Path:
    """base.toml copied into an empty folder, for child scenarios to extend."""
    return Path(shutil.copy(BASE, tmp_path / "base.toml"))


def test_extends_takes_base_values_plus_the_change(tmp_path: Path, base_copy: Path) -> None:
    child = tmp_path / "child.toml"
    child.write_text('extends = "base.toml"\nname = "child"\n\n[donor]\np_no_donor = 0.3\n', encoding="utf-8")
    scenario = load_scenario(child)
    assert scenario.model_dump() == mutate(BASE_DATA, {"name": "child", "donor.p_no_donor": 0.3})


def test_extends_merges_nested_sections_keeping_siblings(tmp_path: Path, base_copy: Path) -> None:
    child = tmp_path / "child.toml"
    child.write_text('extends = "base.toml"\n\n[consolidation.cycle1]\nlength_days = 35.0\n\n'
                     '[mrd.ngs]\nturnaround_days = 7.0\n', encoding="utf-8")
    dumped = load_scenario(child).model_dump()
    assert dumped == mutate(BASE_DATA, {"consolidation.cycle1.length_days": 35.0, "mrd.ngs.turnaround_days": 7.0})
    assert dumped["consolidation"]["cycle1"]["regimen"] == "VDCP"
    assert dumped["consolidation"]["cycle2"] == BASE_DATA["consolidation"]["cycle2"]


def test_extends_chain_of_three_files_and_overrides_on_top(tmp_path: Path, base_copy: Path) -> None:
    (tmp_path / "middle.toml").write_text('extends = "base.toml"\n[accrual]\nn_sites = 4\n', encoding="utf-8")
    child = tmp_path / "child.toml"
    child.write_text('extends = "middle.toml"\n[accrual]\nramp_up_months = 2.0\n', encoding="utf-8")
    scenario = load_scenario(child, ["accrual.screen_fail_prob=0.2"])
    assert scenario.model_dump() == mutate(BASE_DATA, {
        "accrual.n_sites": 4, "accrual.ramp_up_months": 2.0, "accrual.screen_fail_prob": 0.2})


def test_extends_child_error_names_the_child_file(tmp_path: Path, base_copy: Path) -> None:
    child = tmp_path / "child.toml"
    child.write_text('extends = "base.toml"\n[donor]\np_no_donor = 1.5\n', encoding="utf-8")
    message = scenario_error(child)
    assert message.startswith(f"{child}: donor.p_no_donor = 1.5"), message


def test_extends_cycle_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('extends = "b.toml"\nname = "a"\n', encoding="utf-8")
    (tmp_path / "b.toml").write_text('extends = "a.toml"\nname = "b"\n', encoding="utf-8")
    message = scenario_error(tmp_path / "a.toml")
    assert "cycle" in message
    assert "a.toml" in message and "b.toml" in message


def test_extends_itself_is_a_cycle(tmp_path: Path) -> None:
    (tmp_path / "self.toml").write_text('extends = "self.toml"\n', encoding="utf-8")
    assert "cycle" in scenario_error(tmp_path / "self.toml")


def test_extends_missing_parent_is_refused_naming_it(tmp_path: Path) -> None:
    child = tmp_path / "child.toml"
    child.write_text('extends = "gone.toml"\nname = "child"\n', encoding="utf-8")
    message = scenario_error(child)
    assert "gone.toml" in message
    assert "no such scenario file" in message
    assert str(child) in message


def test_extends_must_be_a_string(tmp_path: Path) -> None:
    child = tmp_path / "child.toml"
    child.write_text("extends = 3\n", encoding="utf-8")
    message = scenario_error(child)
    assert f"{child}: extends = 3" in message


# --------------------------------------------------------------------------- command line


CLI_INVALID = [(case[0], set_args(case[1]), next(iter(case[1]))) for case in INVALID]


@pytest.mark.parametrize(("items", "key"), [case[1:] for case in CLI_INVALID], ids=[c[0] for c in CLI_INVALID])
def test_cli_invalid_override_exits_2_naming_the_key_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], items: list[str], key: str) -> None:
    out = tmp_path / "out"
    argv = ["trial", "--n", "5", "--seed", "1", "--out", str(out)]
    for item in items:
        argv += ["--set", item]
    status, stdout, stderr = run_cli(argv, capsys)
    assert status == 2
    assert stderr.startswith("error: ")
    assert key in stderr
    assert stdout == ""
    assert_nothing_written(out)


@pytest.mark.parametrize(("key", "fragments"), [case[1:] for case in MISSING], ids=[c[0] for c in MISSING])
def test_cli_invalid_file_exits_2_naming_file_and_key_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, fragments: list[str]) -> None:
    path = write_scenario(tmp_path, mutate(BASE_DATA, {key: DELETE}))
    out = tmp_path / "out"
    status, _, stderr = run_cli(["trial", "--scenario", str(path), "--n", "5", "--out", str(out)], capsys)
    assert status == 2
    assert stderr.startswith(f"error: {path}: ")
    for fragment in fragments:
        assert fragment in stderr
    assert_nothing_written(out)


@pytest.mark.parametrize("kind", ["invalid-toml", "missing-file", "extends-cycle", "missing-parent", "link-loop",
                                  "not-utf8", "duplicate-key"])
def test_cli_unreadable_scenario_exits_2_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    path = tmp_path / "scenario.toml"
    expected = {"invalid-toml": "not valid TOML", "missing-file": "no such scenario file",
                "extends-cycle": "cycle", "missing-parent": "parent.toml", "link-loop": "link loop",
                "not-utf8": "not a text file in UTF-8", "duplicate-key": "name is given twice"}[kind]
    if kind == "link-loop":
        path.symlink_to(path.name)
    elif kind == "not-utf8":
        path.write_bytes(b'name = "\xff"\n')
    elif kind == "duplicate-key":
        path.write_text('name = "a"\nname = "b"\n', encoding="utf-8")
    elif kind == "invalid-toml":
        path.write_text("[donor\np_no_donor = 0.1\n", encoding="utf-8")
    elif kind == "extends-cycle":
        path.write_text('extends = "scenario.toml"\n', encoding="utf-8")
    elif kind == "missing-parent":
        path.write_text('extends = "parent.toml"\n', encoding="utf-8")
    out = tmp_path / "out"
    status, _, stderr = run_cli(["trial", "--scenario", str(path), "--out", str(out)], capsys)
    assert status == 2
    assert stderr.startswith("error: ")
    assert expected in stderr
    assert_nothing_written(out)


def test_cli_incidence_no_hazard_can_produce_exits_2_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    status, _, stderr = run_cli(["trial", "--n", "5", "--out", str(out),
                                 "--set", "post_transplant.cgvhd_incidence=1"], capsys)
    assert status == 2
    assert stderr.startswith("error: ")
    assert "post_transplant.cgvhd_incidence = 1.0: at most" in stderr
    assert_nothing_written(out)


def test_cli_calibration_error_names_the_override_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    status, _, stderr = run_cli(["trial", "--n", "5", "--out", str(out),
                                 "--set", "post_transplant.nrm_hr_haplo=1e300"], capsys)
    assert status == 2
    assert_nothing_written(out)
    assert "post_transplant.nrm_hr_haplo" in stderr, stderr


def test_cli_degenerate_scenario_without_transplants_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    status, _, _ = run_cli(["trial", "--n", "5", "--out", str(out), "--set", "induction.p_death=1"], capsys)
    assert status == 0
    assert (out / "latent_patients.csv").is_file()


def test_cli_overflowing_search_sigma_is_refused_or_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status, _, stderr = run_cli(["trial", "--n", "5", "--seed", "1", "--out", str(out),
                                     "--set", "donor.search_sigma=1000"], capsys)
    assert status == 0 or (status == 2 and "donor.search_sigma" in stderr)


def weibull_hazards_for(shape: float, relapse: float, nrm: float) -> tuple[float, float]:
    """Relapse (Weibull, this shape) and constant NRM cumulative hazards at the landmark that give these incidences.

    An independent check for one subgroup (base.toml: all subgroups alike): with x = H_relapse(t),
    CIF_relapse = integral over [0, A_r] of exp(-x - A_n (x / A_r)^(1/shape)) dx, with no singularity at t = 0.
    """
    def incidences(log_a: np.ndarray) -> np.ndarray:
        a_r, a_n = np.exp(log_a)
        cif_r = integrate.quad(lambda x: math.exp(-x - a_n * (x / a_r) ** (1 / shape)), 0, a_r,
                               epsabs=1e-14, epsrel=1e-12, limit=500)[0]
        return np.array([cif_r, -math.expm1(-a_r - a_n) - cif_r])

    solution = optimize.fsolve(lambda x: incidences(x) - [relapse, nrm], np.log([relapse, nrm]), xtol=1e-13)
    np.testing.assert_allclose(incidences(solution), [relapse, nrm], atol=1e-10)
    return tuple(np.exp(solution))


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
def test_cli_small_weibull_shape_with_reachable_incidences_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a_relapse, a_nrm = weibull_hazards_for(0.05, 0.17, 0.10)
    assert 0 < a_relapse < 1 and 0 < a_nrm < 1
    status, _, stderr = run_cli(["trial", "--n", "5", "--out", str(tmp_path / "out"),
                                 "--set", "post_transplant.relapse_shape=0.05"], capsys)
    assert status == 0, stderr


def test_cli_very_late_landmark_is_refused_or_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status, _, _ = run_cli(["trial", "--n", "5", "--out", str(out),
                                "--set", "post_transplant.incidence_landmark_months=1e7",
                                "--set", "post_transplant.horizon_months=1e7"], capsys)
    assert status in (0, 2)


def test_cli_error_leaves_an_existing_output_folder_untouched(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old", encoding="utf-8")
    status, _, _ = run_cli(["trial", "--n", "5", "--out", str(out), "--set", "donor.p_haplo=2"], capsys)
    assert status == 2
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize("args", [["--n", "0"], ["--n", "-5"], ["--n", "2.5"], ["--seed", "x"], ["--seed", "-1"]],
                         ids=" ".join)
def test_cli_bad_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        cli.main(["trial", "--out", str(out), *args])
    assert info.value.code == 2
    assert args[0] in capsys.readouterr().err
    assert not out.exists()


def test_cli_subprocess_invalid_input_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "run_sim.py", "trial", "--n", "5", "--out", str(out),
         "--set", "consolidation.cycle1.length_days=-1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: --set consolidation.cycle1.length_days=-1: "
                                    "consolidation.cycle1.length_days = -1")
    assert_nothing_written(out)


def test_cli_subprocess_bad_argument_exits_2(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "run_sim.py", "trial", "--n", "0", "--out", str(tmp_path / "out")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert "--n" in result.stderr


def _trial(out: Path, seed: int, capsys: pytest.CaptureFixture[str]) -> dict[str, bytes]:
    status, stdout, stderr = run_cli(["trial", "--n", "30", "--seed", str(seed), "--out", str(out)], capsys)
    assert (status, stderr) == (0, "")
    assert "transplanted" in stdout
    names = {p.name for p in out.iterdir()}
    assert OUTPUT_FILES <= names, f"missing outputs: {OUTPUT_FILES - names}"
    assert not [name for name in names if name.startswith(".")], f"left-over temporary files: {names}"
    return {name: (out / name).read_bytes() for name in names}


def test_cli_valid_run_writes_outputs_reproducibly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = _trial(tmp_path / "a", 11, capsys)
    again = _trial(tmp_path / "b", 11, capsys)
    other = _trial(tmp_path / "c", 12, capsys)
    assert first.keys() == again.keys()
    for name in first:
        assert first[name] == again[name], f"{name} differs between two runs with the same seed"
    assert first["latent_patients.csv"] != other["latent_patients.csv"]
    assert first["latent_patients.csv"].count(b"\n") == 31


def test_cli_subprocess_valid_run_matches_in_process_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    in_process = _trial(tmp_path / "a", 5, capsys)
    out = tmp_path / "b"
    result = subprocess.run([sys.executable, "run_sim.py", "trial", "--n", "30", "--seed", "5", "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    for name in ("latent_patients.csv", "latent_events.csv", "adsl.csv", "adtte.csv", "endpoints.csv", "flow.csv"):
        assert (out / name).read_bytes() == in_process[name]


# --------------------------------------------------------------------------- property: random mutations

SCHEMA_WORDS = ["MFC", "NGS", "off_study", "transplant", "background", "finite", "cloglog", "linear", "arcsine",
                "binomial", "logrank", "landmark", "calendar", ""]
scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=0, max_value=3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0.0, max_value=1.0),
    st.sampled_from([0.0, 1.0, -1.0, 1e-300, 1e300, 1.7976931348623157e308, -math.inf, math.inf, math.nan]),
    st.booleans(),
    st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12),
    st.sampled_from(SCHEMA_WORDS),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True), scalars, max_size=3),
)
LEAVES = leaf_paths(BASE_DATA)
SECTIONS = section_paths(BASE_DATA)
new_names = st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True)


def plausible(base: Any) -> st.SearchStrategy[Any]:
    """Values of the same type as a base value, often valid, so that the property also runs the model."""
    if isinstance(base, bool):
        return st.booleans()
    if isinstance(base, int):
        return st.integers(min_value=0, max_value=2 * base + 2)
    if isinstance(base, float):
        return st.one_of(st.floats(min_value=0.5 * base, max_value=1.5 * base), st.floats(min_value=0.0, max_value=1.0),
                         st.sampled_from([0.0, 1.0]))
    return st.sampled_from(SCHEMA_WORDS)


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
    """(kind, mutated scenario, the dotted key the error message must name)."""
    kind = draw(st.sampled_from(["set", "set", "set", "delete", "unknown", "empty", "scalar"]))
    if kind == "set":
        key = draw(st.sampled_from(LEAVES))
        near = plausible(lookup(BASE_DATA, key))
        value = draw(st.one_of(near, near, values))
        return kind, mutate(BASE_DATA, {key: value}), key
    if kind == "delete":
        key = draw(st.sampled_from(LEAVES + SECTIONS))
        return kind, mutate(BASE_DATA, {key: DELETE}), key
    if kind == "unknown":
        where = draw(st.sampled_from(["", *SECTIONS]))
        known = lookup(BASE_DATA, where) if where else BASE_DATA
        name = draw(new_names.filter(lambda n: n not in known and n != "extends"))
        key = f"{where}.{name}" if where else name
        return kind, mutate(BASE_DATA, {key: draw(values)}), key
    key = draw(st.sampled_from(SECTIONS))
    replacement = {} if kind == "empty" else draw(scalars)
    return kind, mutate(BASE_DATA, {key: replacement}), key


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=mutations())
def test_any_mutation_of_base_runs_or_exits_2_naming_the_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], mutation: tuple[str, dict[str, Any], str]) -> None:
    kind, data, key = mutation
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    path = write_scenario(folder, data)
    out = folder / "out"
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status, _, stderr = run_cli(
            ["trial", "--scenario", str(path), "--n", "5", "--seed", "1", "--out", str(out)], capsys)
    event(f"{kind}: exit {status}")
    if status == 0:
        assert (out / "latent_patients.csv").is_file()
        return
    assert status == 2
    assert stderr.startswith("error: ")
    assert key in stderr, f"the message does not name {key!r}: {stderr}"
    assert_nothing_written(out)


def test_toml_writer_round_trips_the_base_scenario_and_odd_values() -> None:
    odd = {"s": 'a"b\\c\n\x7f\u00e9\U0001f600', "f": [1e300, -0.0, 1e-5, math.inf], "d": {"x y": {}}, "e": {}}
    assert tomllib.loads(toml_dumps(BASE_DATA)) == BASE_DATA
    assert tomllib.loads(toml_dumps(odd)) == odd
    assert math.isnan(tomllib.loads(toml_dumps({"v": math.nan}))["v"])


# --------------------------------------------------------------------------- the scenario reference


def test_scenario_reference_is_current() -> None:
    assert scenario_reference() == REFERENCE.read_text(encoding="utf-8"), (
        "scenarios/README.md is out of date: run `python run_sim.py docs`")


def _schema_leaves(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(section title, key) of every leaf field of the schema."""
    leaves = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            leaves += _schema_leaves(annotation, (*prefix, name))
        else:
            leaves.append((".".join(prefix) or "top level", name))
    return leaves


def test_scenario_reference_documents_every_leaf_key_in_its_section() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## \[([^\]]+)\]\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S))
    leaves = _schema_leaves(Scenario)
    assert {title for title, _ in leaves} <= set(sections)
    for title, key in leaves:
        assert f"\n| `{key}` |" in sections[title], f"[{title}] {key} is not documented"
    assert len(leaves) == len(LEAVES), "the schema and base.toml have different keys"


# --------------------------------------------------------------------------- dose caps


def _doses(overrides: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """BSA and the vincristine, prednisone and idarubicin doses of a 500-patient trial."""
    table = patients_table(simulate_trial(load_scenario(BASE, overrides), 500, seed=2))
    return tuple(table[name].to_numpy() for name in ("bsa_m2", "vincristine_mg", "prednisone_mg_day",
                                                     "idarubicin_mg"))


def test_doses_of_large_patients_are_capped_except_idarubicin() -> None:
    bsa, vincristine, prednisone, idarubicin = _doses(
        ["patients.bsa_mean=2.6", "patients.bsa_max=3.0", "patients.bsa_min=2.2"])
    assert bsa.min() >= 2.2 and bsa.max() <= 3.0 and np.ptp(bsa) > 0.5
    # 1.4 mg/m2 x 2.2 m2 = 3.08 mg > 2 mg and 60 mg/m2 x 2.2 m2 = 132 mg > 100 mg: every dose is at its cap.
    assert (vincristine <= 2.0).all() and (prednisone <= 100.0).all()
    np.testing.assert_array_equal(vincristine, np.minimum(1.4 * bsa, 2.0))
    np.testing.assert_array_equal(vincristine, 2.0)
    np.testing.assert_array_equal(prednisone, 100.0)
    np.testing.assert_allclose(idarubicin, 8 * bsa, rtol=1e-12)
    assert idarubicin.max() > 8 * 2.9, "idarubicin must not be capped"


def test_doses_follow_bsa_below_their_caps() -> None:
    bsa, vincristine, prednisone, idarubicin = _doses([])
    for dose, per_m2, cap in ((vincristine, 1.4, 2.0), (prednisone, 60.0, 100.0)):
        below_cap = per_m2 * bsa < cap
        assert below_cap.any() and not below_cap.all(), "base BSA range should straddle the cap"
        assert (dose <= cap).all()
        np.testing.assert_allclose(dose[below_cap], per_m2 * bsa[below_cap], rtol=1e-12)
        np.testing.assert_array_equal(dose[~below_cap], cap)
    np.testing.assert_allclose(idarubicin, 8 * bsa, rtol=1e-12)
