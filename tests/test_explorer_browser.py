"""The explorer in a real headless Chromium: it loads offline without console errors, a slider moved with the
mouse changes the answer the right way, a bad value shows the command line's message and runs nothing,
"save as scenario" writes a file the sweep reproduces exactly, and a long session's memory stays flat.

One explorer (small grid, 300 trials, to keep the browser tests at about a minute) and one browser serve
the tests of this module, in order. Set EXPLORER_SCREENSHOTS=folder to keep the screenshots.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from browser import CHROMIUM, Browser, rss_kib, start_explorer

from sim.scenario.schema import ScenarioError, load_scenario

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")
REPS, SEED, NS = 300, 3, ("20", "40", "60")
ROOT = Path(__file__).resolve().parents[1]
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    out = tmp_path_factory.mktemp("explore")
    process, url = start_explorer(out, "--n", *NS, "--reps", str(REPS), "--seed", str(SEED), "--jobs", "2")
    browser = Browser(tmp_path_factory.mktemp("profile"))
    started = time.perf_counter()
    browser.open(url)
    browser.wait_js("+document.querySelector('#progress')?.dataset.done === 1", timeout=120)
    TIMINGS["page load to all trials"] = time.perf_counter() - started
    yield {"process": process, "url": url, "browser": browser, "out": out}
    browser.close()
    process.terminate()
    process.wait(timeout=30)
    print("\nexplorer timings in the browser (s):", json.dumps({k: round(v, 2) for k, v in TIMINGS.items()}))


def shown_power(browser: Browser) -> dict[int, float]:
    """The power shown at each n, at full precision (the cells' data-power attribute)."""
    return {int(n): float(p) for n, p in browser.js(
        "Array.from(document.querySelectorAll('[id^=power-n-]')).map(e => [e.id.slice(8), e.dataset.power])")}


def progress(browser: Browser) -> dict:
    return browser.js("({...document.querySelector('#progress').dataset})")


def screenshot(browser: Browser, tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("EXPLORER_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    data = browser.screenshot(folder / name)
    assert len(data) > 20_000
    return folder / name


def test_page_loads_offline_with_no_console_errors(app, tmp_path):
    browser, url = app["browser"], app["url"]
    outside = [u for u in browser.requests() if not u.startswith((url, "data:"))]
    assert outside == [], f"requests outside the local server: {outside}"
    assert browser.errors() == []
    assert "If 18-month RFS after HSCT is" in browser.js("document.querySelector('.headline').innerText")
    assert browser.js("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    assert "Lu 2024" in browser.js("document.querySelector('#source-crc').innerText"), "the value's source is shown"
    screenshot(browser, tmp_path, "explorer-loaded.png")


def test_moving_crc_down_lowers_the_power_at_the_largest_n(app, tmp_path):
    browser = app["browser"]
    before = shown_power(browser)
    generation = int(progress(browser)["generation"])
    started = time.perf_counter()
    browser.drag("#ctl_crc .irs-handle", -70)
    crc = browser.js("+document.getElementById('crc_1').value")
    assert crc < 85, f"the drag moved CRc to {crc}"
    browser.wait_js(f"+document.querySelector('#progress').dataset.generation > {generation}", timeout=60)
    TIMINGS["change to first estimate"] = time.perf_counter() - started
    browser.wait_js("+document.querySelector('#progress').dataset.done === 1", timeout=120)
    TIMINGS["change to all trials"] = time.perf_counter() - started
    after = shown_power(browser)
    assert after[60] < before[60], f"power at n = 60: {before[60]} with CRc 92%, {after[60]} with CRc {crc}%"
    assert "response.p_cr=" in browser.js("document.querySelector('#changes').innerText")
    difference = browser.js("document.querySelector('#oc').innerText")
    assert "power minus as loaded" in difference
    screenshot(browser, tmp_path, "explorer-lower-crc.png")


def test_an_invalid_value_shows_the_command_line_message_and_runs_nothing(app):
    browser = app["browser"]
    generation = progress(browser)["generation"]
    item = "post_transplant.relapse_incidence=1.5"
    browser.click('[data-value="Any other value, by its name"] .accordion-button')
    browser.wait_js("document.querySelector('#other_1')", timeout=30)
    browser.type_text("#other_1", item)
    message = browser.wait_js("document.querySelector('#error-other')?.innerText", timeout=30)
    with pytest.raises(ScenarioError) as expected:
        load_scenario(ROOT / "scenarios/base.toml", [item])
    assert message.strip() == str(expected.value)
    time.sleep(1.0)
    assert progress(browser)["generation"] == generation, "a bad value started a computation"
    assert progress(browser)["stale"] == "1"
    browser.type_text("#other_1", "")
    browser.wait_js("!document.querySelector('#error-other')", timeout=30)


def test_saved_scenario_reproduces_the_shown_power_with_the_sweep(app, tmp_path):
    browser, out = app["browser"], app["out"]
    browser.wait_js("+document.querySelector('#progress').dataset.done === 1", timeout=120)
    shown, reps = shown_power(browser), int(progress(browser)["reps"])
    text = browser.js("document.querySelector('#power-n-60').innerText")
    browser.type_text("#save_name", "lower-crc")
    browser.click("#save")
    saved = Path(browser.wait_js("document.querySelector('#saved-path')?.innerText", timeout=30))
    assert saved == out / "lower-crc.toml" and saved.is_file()
    body = saved.read_text()
    assert 'extends = "' in body and "Saved from the what-if explorer on" in body
    assert "[response]" in body and "[donor]" not in body, "only the changed keys are saved"
    sweep = tmp_path / "sweep"
    subprocess.run([sys.executable, "run_sim.py", "sweep", "--scenario", str(saved), "--n", *NS, "--reps", str(reps),
                    "--seed", str(SEED), "--endpoints", "primary", "--jobs", "2", "--quiet", "--out", str(sweep)],
                   cwd=ROOT, check=True, capture_output=True)
    oc = pd.read_csv(sweep / "oc.csv")
    power = oc[oc["analysis"] == "rfs"].set_index("n")["power"]
    for n, p in shown.items():
        assert power[n] == pytest.approx(p, abs=5e-7), f"n = {n}: the sweep gives {power[n]}, the page {p}"
    assert text == f"{power[60]:.3f}"


def test_two_tabs_do_not_interfere(app, tmp_path_factory):
    first = app["browser"]
    mine = progress(first)
    changed = shown_power(first)
    second = Browser(tmp_path_factory.mktemp("second"))
    try:
        second.open(app["url"])
        second.wait_js("+document.querySelector('#progress')?.dataset.done === 1", timeout=120)
        assert "nothing changed" in second.js("document.querySelector('#changes').innerText")
        assert shown_power(second)[60] > changed[60], "the second tab shows the scenario as loaded, not the first's"
        second.js("Shiny.setInputValue('relapse_1', 30)")
        second.wait_js("document.querySelector('#changes').innerText.includes('relapse_incidence=0.3')", timeout=30)
        time.sleep(1.0)
        assert progress(first) == mine and shown_power(first) == changed, "the first tab moved with the second"
        assert "relapse_incidence" not in first.js("document.querySelector('#changes').innerText")
    finally:
        second.close()


def test_memory_stays_flat_over_200_changes(app):
    browser, pid = app["browser"], app["process"].pid
    values = [5 + (k * 7) % 40 for k in range(200)]
    rss = []
    for k, value in enumerate(values):
        browser.js(f"Shiny.setInputValue('relapse_1', {value})")
        time.sleep(0.03)
        if k in (49, 199):
            browser.wait_js("+document.querySelector('#progress').dataset.reps > 0", timeout=60)
            rss.append(rss_kib(pid))
    growth = (rss[1] - rss[0]) / 1024
    TIMINGS["RSS MiB after 50 changes"] = rss[0] / 1024
    TIMINGS["RSS MiB after 200 changes"] = rss[1] / 1024
    assert growth < 40, f"the server grew by {growth:.0f} MiB from the 50th to the 200th change"
    assert browser.errors() == []
