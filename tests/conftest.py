"""Results folders shared by the report and documentation tests: one small sweep, compare and sensitivity run
each per session (the report tests look at their HTML, the documentation tests at their files and columns);
and the hypothesis profile of the whole suite (derandomized)."""

import pytest
from hypothesis import settings

from sim.cli.parser import main

# The same generated cases on every run (CI included): a failure is then reproducible, never a flake; new
# cases are explored by benchmarks/fuzz_cli.py. A test's own @settings still sets its number of examples.
settings.register_profile("repeatable", derandomize=True, database=None)
settings.load_profile("repeatable")


@pytest.fixture(scope="session")
def sweep_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "sweep"
    assert main(["sweep", "--n", "20:40:10", "--reps", "30", "--seed", "2", "--jobs", "1", "--quiet",
                 "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def whatif_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("whatif")
    assert main(["compare", "--variant", "few_donors:donor.p_no_donor=0.3", "--n", "30", "60", "--reps", "20",
                 "--seed", "2", "--jobs", "1", "--endpoints", "primary", "--quiet", "--out", str(root / "cmp")]) == 0
    assert main(["sensitivity", "--vary", "response.p_cr=0.8:0.9:2", "--n", "30", "60", "--reps", "20", "--seed", "2",
                 "--jobs", "1", "--quiet", "--out", str(root / "sens")]) == 0
    return {"compare": root / "cmp", "sensitivity": root / "sens"}
