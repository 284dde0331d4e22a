"""The project documents itself: docs/ and the README cite nothing outside the repository, every link
resolves, and every file and column that `trial`, `sweep`, `compare` and `sensitivity` write is
documented in docs/datasets.md (the study folders come from the session fixtures of conftest.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from sim.analysis.adam import PARAMETERS, adsl, adtte, endpoint_table
from sim.analysis.datasets import event_log, patients_table
from sim.model.pathway import simulate_trial
from sim.scenario.schema import load_scenario

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = ("model.md", "statistics.md", "reading-a-report.md", "datasets.md", "protocol.md")
# What a reader outside this machine cannot open: the design notes and registry text kept beside the project.
OUTSIDE = ("shared/", "DESIGN.md", "protocol.txt", "/work/")


def test_every_documentation_page_exists_and_the_readme_links_it():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in PAGES:
        assert (ROOT / "docs" / page).is_file(), page
        assert f"(docs/{page})" in readme, page


@pytest.mark.parametrize("path", [ROOT / "README.md", *DOCS, *sorted((ROOT / "scenarios").glob("*.toml")),
                                  ROOT / "sim" / "report" / "html.py"], ids=lambda p: p.name)
def test_nothing_points_outside_the_repository(path):
    # Scenario files are printed in every report, so they count as report text.
    text = path.read_text(encoding="utf-8")
    assert not [word for word in OUTSIDE if word in text]


@pytest.mark.parametrize("path", [ROOT / "README.md", *DOCS], ids=lambda p: p.name)
def test_every_relative_link_resolves(path):
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8"))
    local = [link for link in links if not link.startswith(("http://", "https://", "mailto:"))]
    missing = [link for link in local if not (path.parent / link).exists()]
    assert not missing


def test_every_column_of_the_trial_files_is_documented():
    datasets = (ROOT / "docs" / "datasets.md").read_text(encoding="utf-8")
    history = simulate_trial(load_scenario(ROOT / "scenarios" / "base.toml"), 30, 1)
    patients = patients_table(history)
    frames = {"adsl": adsl(history), "adtte": adtte(history), "endpoints": endpoint_table(history),
              "latent_patients": patients, "latent_events": event_log(patients)}
    undocumented = {name: [c for c in frame.columns if f"`{c}`" not in datasets] for name, frame in frames.items()}
    assert not any(undocumented.values()), undocumented
    assert all(f"`{code}`" in datasets for code in PARAMETERS)


def _documented(column: str, text: str) -> bool:
    """Named in backquotes, or a Monte Carlo SE or percentile of a documented measure (`x_mcse`, `x_*`)."""
    if f"`{column}`" in text:
        return True
    if column.endswith("_mcse") and "`..._mcse`" in text:
        return True
    stem = re.fullmatch(r"(.+)_(mean|p10|p50|p90)", column)
    return bool(stem) and f"`{stem.group(1)}_*`" in text


def test_every_file_and_column_of_the_study_folders_is_documented(sweep_folder, whatif_folders):
    datasets = (ROOT / "docs" / "datasets.md").read_text(encoding="utf-8")
    folders = {"sweep": sweep_folder, **whatif_folders}
    undocumented = {}
    for name, folder in folders.items():
        files = sorted(p for p in folder.iterdir() if p.is_file())
        assert len(files) >= 5, name
        missing = [p.name for p in files if f"`{p.name}`" not in datasets]
        for csv in (p for p in files if p.suffix == ".csv"):
            missing += [f"{csv.name}:{c}" for c in pd.read_csv(csv, nrows=1).columns if not _documented(c, datasets)]
        # Folders for resuming: chunks/ and refine/ of a sweep, one per scenario or value in compare and sensitivity.
        if name == "sweep":
            missing += [f"{p.name}/" for p in folder.iterdir() if p.is_dir() and f"`{p.name}/`" not in datasets]
        undocumented[name] = missing
    assert not any(undocumented.values()), undocumented
    boxes = pd.read_csv(sweep_folder / "flow_expected.csv")["box"].unique()
    assert not [box for box in boxes if f"`{box}`" not in datasets]


def test_month_length_and_time_origins_are_stated():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    datasets = (ROOT / "docs" / "datasets.md").read_text(encoding="utf-8")
    for text in (readme, datasets):
        assert "365.25 / 12" in text and "first site opens" in text
        assert "HSCT day" in text and "enrollment day" in text
