"""With every clinical-realism mechanism switched off, outputs equal the model's before they existed, bit for bit.

tests/golden/ holds the trial CSVs and sweep replicate rows written by the code before waiting risk,
the GVHD-NRM link, follow-up after leaving the pathway and the blinatumomab re-test (see its README).
Every column and row those files hold must be reproduced exactly; new columns and rows may be added
(new rows of the patient flow must then count 0).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.analysis.datasets import patient_flow
from sim.cli import commands
from sim.cli.parser import main
from sim.model.pathway import simulate_trial
from sim.scenario.schema import Scenario, load_scenario
from sim.study.runner import Study, arm_models, simulate_chunk

GOLDEN = Path(__file__).resolve().parent / "golden"
BASE = Path(__file__).resolve().parent.parent / "scenarios" / "base.toml"
VARIANTS = ("base", "finite_transplant")

# Every new mechanism switched off: no risk while waiting, GVHD does not change NRM, nobody followed off the pathway.
SWITCHED_OFF = {
    "waiting": {"relapse_per_month_mrd_negative": 0.0, "relapse_per_month_mrd_positive": 0.0, "death_per_month": 0.0},
    "off_pathway": {"followed": False, "refractory_median_months": 6.0, "post_relapse_median_months": 8.0,
                    "relapse_per_year_mrd_negative": 0.1, "relapse_per_year_mrd_positive": 0.5,
                    "death_in_remission_per_year": 0.03},
    "post_transplant": {"nrm_hr_agvhd_3_4": 1.0, "nrm_hr_cgvhd_systemic": 1.0},
    "mrd": {"retest_course_days": 28.0, "retest_p_negative": 0.6, "retest_turnaround_days": 3.0},
}


def golden_scenario(variant: str, **changes: dict) -> Scenario:
    """The scenario the golden files were made with, plus the new keys switched off (and any changes); sections
    added later that change no result when off (monitoring) come from base.toml."""
    data = json.loads((GOLDEN / f"{variant}_scenario.json").read_text())
    for section, values in {**SWITCHED_OFF, **changes}.items():
        data[section] = {**data.get(section, {}), **values}
    data.setdefault("monitoring", load_scenario(BASE).monitoring.model_dump())
    return Scenario.model_validate(data)


def run_trial(scenario: Scenario, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands, "_load", lambda args: (scenario, []))
    assert main(["trial", "--scenario", str(BASE), "--n", "60", "--seed", "7", "--out", str(out)]) == 0


def read(path: Path) -> pd.DataFrame:
    """A CSV as the exact text of each cell."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def assert_trial_outputs_contain_golden(variant: str, out: Path, scenario: Scenario) -> None:
    folder = GOLDEN / f"{variant}_trial"
    for name in ("patients.csv", "events.csv"):               # since renamed latent_*.csv
        old, new = read(folder / name), read(out / f"latent_{name}")
        assert len(new) == len(old), f"{name}: {len(new)} rows, golden {len(old)}"
        missing = set(old.columns) - set(new.columns)
        assert not missing, f"{name}: columns gone: {missing}"
        pd.testing.assert_frame_equal(new[list(old.columns)], old, obj=f"{variant} {name}")
    # flow.csv now counts what is known at the data cutoff; the golden file holds the latent flow.
    old = read(folder / "flow.csv")
    new = patient_flow(simulate_trial(scenario, 60, 7)).astype(str)
    kept = new[new["step"].isin(old["step"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, old, obj=f"{variant} flow.csv")
    assert (new.loc[~new["step"].isin(old["step"]), "count"] == "0").all(), "new flow steps must count 0"
    # endpoints.csv is now written to 6 significant digits with typed test columns: compare the numbers at the
    # golden file's 4 decimals.
    old, new = pd.read_csv(folder / "endpoints.csv"), pd.read_csv(out / "endpoints.csv")
    kept = new[new["endpoint"].isin(old["endpoint"])].set_index("endpoint").loc[old["endpoint"]]
    for column in ("estimate", "se", "lower", "upper", "n", "events"):
        a, b = kept[column].to_numpy(float).round(4), old[column].to_numpy(float)
        assert ((a == b) | (np.isnan(a) & np.isnan(b))).all(), f"{variant} endpoints.csv {column}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_trial_outputs_equal_the_golden_files_with_new_mechanisms_off(variant, tmp_path, monkeypatch, capsys):
    run_trial(golden_scenario(variant), tmp_path / "trial", monkeypatch)
    assert_trial_outputs_contain_golden(variant, tmp_path / "trial", golden_scenario(variant))


@pytest.mark.parametrize("variant", VARIANTS)
def test_sweep_replicate_rows_equal_the_golden_rows_with_new_mechanisms_off(variant):
    old = pd.read_parquet(GOLDEN / f"{variant}_replicates.parquet")
    scenario = golden_scenario(variant)
    ns = tuple(sorted(old["n"].unique()))
    reps = int(old["replicate"].max()) + 1
    new = pd.DataFrame(simulate_chunk(Study(scenario, ns, reps, 5, "all"), arm_models(scenario), 0, reps))
    missing = set(old.columns) - set(new.columns)
    assert not missing, f"columns gone: {missing}"
    new = new[new["arm"].isin(old["arm"].unique())].reset_index(drop=True)   # the p1 twin's rows came later
    # Floats to 1e-12: the fast path adds a Greenwood sum in another order (tests/test_backtest.py).
    pd.testing.assert_frame_equal(new[list(old.columns)], old, check_exact=False, rtol=1e-12, atol=1e-15,
                                  obj=f"{variant} replicates")


def test_the_golden_check_catches_a_changed_output(tmp_path, monkeypatch, capsys):
    """One changed number (MRD turnaround one day longer) must fail the comparison."""
    data = json.loads((GOLDEN / "base_scenario.json").read_text())
    changed = golden_scenario("base", mrd={**data["mrd"], **SWITCHED_OFF["mrd"],
                                           "mfc": {**data["mrd"]["mfc"], "turnaround_days": 4.0}})
    run_trial(changed, tmp_path / "trial", monkeypatch)
    with pytest.raises(AssertionError):
        assert_trial_outputs_contain_golden("base", tmp_path / "trial", changed)
