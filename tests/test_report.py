"""The HTML report: every section present, self-contained, and loaded in a real headless Chromium
(DevTools protocol on loopback) with no console errors and no network requests; a screenshot is taken."""

import base64
import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from sim.cli.parser import main

SECTIONS = ("Sizing study", "Power and type I error", "Required sample size", "Precision of the primary estimate",
            "Secondary endpoints", "Expected patient flow", "One example trial", "Resource and drug-supply forecast",
            "The scenario as run, and its sources", "How to read this report", "Reproducibility")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_has_every_section_and_is_self_contained(sweep_folder):
    page = (sweep_folder / "report.html").read_text()
    for section in SECTIONS:
        assert section in page, section
    assert page.count('src="data:image/png;base64,') >= 6
    for external in ("http://", "https://", "<script", "<link", "@import", "url("):
        assert external not in page, external
    assert "scenarios/base.toml" in page and "GIMEMA" in page  # the sources, from the scenario file itself
    assert "docs/reading-a-report.md" in page and "shared/" not in page and "DESIGN.md" not in page


def test_report_command_rewrites_report_and_refuses_other_folders(sweep_folder, tmp_path, capsys):
    (sweep_folder / "report.html").unlink()
    assert main(["report", str(sweep_folder)]) == 0
    assert (sweep_folder / "report.html").is_file()
    assert main(["report", str(tmp_path)]) == 2
    assert "not a results folder" in capsys.readouterr().err


def test_resource_forecast_totals_equal_sums_over_patient_histories(sweep_folder):
    from sim.model.pathway import simulate_trial
    from sim.scenario.schema import load_scenario
    from sim.study.resources import MEASURES, monthly_use, patient_resources

    scenario = load_scenario(Path(__file__).resolve().parent.parent / "scenarios" / "base.toml")
    history = simulate_trial(scenario, 80, seed=4)
    use = monthly_use(history)
    per_patient = patient_resources(history)
    assert set(MEASURES) <= set(use.columns)
    assert use["blinatumomab_vials"].sum() == pytest.approx(per_patient["blina_vials"].sum())
    assert use["blinatumomab_bags"].sum() == pytest.approx(per_patient["blina_bags"].sum())
    drug_days = (per_patient["blina_stop"] - per_patient["blina_start"]).sum()
    assert use["blinatumomab_mg"].sum() == pytest.approx(drug_days * scenario.blinatumomab.dose_ug_per_day / 1000)
    for measure, start, end in (("bed_days_vip", "vip_bed_start", "vip_bed_end"),
                                ("bed_days_blinatumomab", "blina_bed_start", "blina_bed_end"),
                                ("bed_days_transplant", "hsct_bed_start", "hsct_bed_end")):
        assert use[measure].sum() == pytest.approx((per_patient[end] - per_patient[start]).sum()), measure
    assert use["transplant_admissions"].sum() == np.count_nonzero(~np.isnan(history.days["hsct_day"]))
    assert use["mrd_assays"].sum() == per_patient[["mrd1_sample_day", "mrd2_sample_day"]].notna().sum().sum()
    # Every transplanted patient holds a slot for slot_days; blinatumomab runs at most its course length.
    assert use["bed_days_transplant"].sum() == pytest.approx(use["transplant_admissions"].sum()
                                                             * scenario.transplant.slot_days)
    assert drug_days <= 80 * scenario.blinatumomab.duration_days


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DevTools:
    """A minimal Chrome DevTools Protocol client over the page's websocket (loopback only)."""

    def __init__(self, url: str) -> None:
        import websocket

        self.ws = websocket.create_connection(url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(method)
            self.events.append(json.loads(self.ws.recv()))


def load_in_chromium(page: Path, profile: Path) -> dict:
    """Open a page in headless Chromium; collect network requests, console errors, title, and a screenshot."""
    port = _free_port()
    browser = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", f"--remote-debugging-port={port}",
         "--remote-debugging-address=127.0.0.1", "--window-size=1200,1600", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2) as response:
                    pages = [t for t in json.load(response) if t["type"] == "page"]
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        tools = DevTools(pages[0]["webSocketDebuggerUrl"])
        for domain in ("Page", "Network", "Runtime", "Log"):
            tools.call(f"{domain}.enable")
        url = page.resolve().as_uri()
        tools.call("Page.navigate", url=url)
        tools.wait_for("Page.loadEventFired")
        time.sleep(0.5)
        tools.call("Runtime.evaluate", expression="1")  # drain events that arrived meanwhile
        requests = [e["params"]["request"]["url"] for e in tools.events
                    if e.get("method") == "Network.requestWillBeSent"]
        errors = [e for e in tools.events if e.get("method") == "Runtime.exceptionThrown"
                  or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
                  or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
        title = tools.call("Runtime.evaluate", expression="document.title")["result"]["value"]
        images = tools.call("Runtime.evaluate",
                            expression="Array.from(document.images).every(i => i.naturalWidth > 0)")
        shot = tools.call("Page.captureScreenshot", format="png")["data"]
    finally:
        browser.terminate()
        browser.wait(timeout=10)
    return {"network": [u for u in requests if not u.startswith(("data:", url))], "errors": errors, "title": title,
            "images_ok": images["result"]["value"], "screenshot": base64.b64decode(shot)}


needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")


@needs_chromium
@pytest.mark.parametrize(("kind", "title"), [("sweep", "Sizing study"), ("compare", "Scenario comparison"),
                                             ("sensitivity", "One-way sensitivity")])
def test_every_report_loads_in_headless_chromium_without_errors_or_network(sweep_folder, whatif_folders, kind,
                                                                           title, tmp_path):
    folder = sweep_folder if kind == "sweep" else whatif_folders[kind]
    result = load_in_chromium(folder / "report.html", tmp_path / "profile")
    (tmp_path / f"{kind}.png").write_bytes(result["screenshot"])
    assert result["network"] == [], f"the report made network requests: {result['network']}"
    assert result["errors"] == [], f"console errors: {result['errors']}"
    assert title in result["title"]
    assert result["images_ok"] is True, "an embedded figure failed to decode"
    assert len(result["screenshot"]) > 10_000


@needs_chromium
@pytest.mark.parametrize("kind", ["sweep", "compare", "sensitivity"])
def test_every_report_prints_to_pdf(sweep_folder, whatif_folders, kind, capsys):
    folder = sweep_folder if kind == "sweep" else whatif_folders[kind]
    assert main(["report", str(folder), "--pdf"]) == 0
    pdf = (folder / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page") >= 2, "expected a multi-page PDF"
    assert "report.pdf" in capsys.readouterr().out


def test_pdf_without_chromium_says_so(sweep_folder, monkeypatch, capsys):
    import sim.report.html as report_html

    monkeypatch.setattr(report_html, "chromium", lambda: None)
    assert main(["report", str(sweep_folder), "--pdf"]) == 0
    assert "no Chromium found" in capsys.readouterr().err


@needs_chromium
def test_browser_check_catches_network_requests_and_console_errors(tmp_path):
    """The check above can fail: a page with an external image and a console error is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><title>bad</title></head><body>'
                   '<img src="http://127.0.0.1:9/missing.png"><script>console.error("boom")</script></body></html>')
    result = load_in_chromium(bad, tmp_path / "profile")
    assert any(url.startswith("http://127.0.0.1:9/") for url in result["network"])
    assert result["errors"]
