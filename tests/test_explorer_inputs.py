"""The explorer's inputs and what it keeps: controls map to scenario keys as they say, bad values give the
command line's messages, sources are the TOML comments, a saved scenario extends the loaded file with only
the changed keys and loads as the explored scenario, the report is the sweep's, and Ctrl-C stops cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from browser import start_explorer

from sim.app.inputs import BY_NAME, grid_from, key_sources, line_comments, resolve
from sim.app.keep import check_name, save_scenario, start_report
from sim.scenario.calibrate import mrd_negative_before_hsct
from sim.scenario.schema import InputError, ScenarioError, load_scenario

ROOT = Path(__file__).resolve().parents[1]
BASE_FILE = ROOT / "scenarios/base.toml"
SLOW_FILE = ROOT / "scenarios/slow_accrual.toml"
BASE = load_scenario(BASE_FILE)


def test_untouched_controls_change_nothing():
    values = {c.name: c.shown(BASE) for c in BY_NAME.values()}
    resolved = resolve(BASE_FILE, BASE, values, BASE.analysis.test, "")
    assert resolved.overrides == () and resolved.errors == {} and resolved.scenario == BASE


def test_derived_controls_reach_their_targets_by_moving_the_named_key():
    resolved = resolve(BASE_FILE, BASE, {"crc": 80, "mrd": 75, "accrual": 1.0}, None, "")
    s = resolved.scenario
    assert s.response.p_cr + s.response.p_cri == pytest.approx(0.80, abs=1e-6)
    assert s.response.p_cr / s.response.p_cri == pytest.approx(0.85 / 0.07, rel=1e-4), "the CR:CRi split is kept"
    assert mrd_negative_before_hsct(s) == pytest.approx(0.75, abs=1e-6)
    assert s.mrd.mfc.p_convert_to_negative == BASE.mrd.mfc.p_convert_to_negative
    a = s.accrual
    assert a.n_sites * a.screened_per_site_month * (1 - a.screen_fail_prob) == pytest.approx(1.0, abs=1e-5)
    assert {k.split("=")[0] for k in resolved.overrides} == {
        "response.p_cr", "response.p_cri", "mrd.mfc.p_negative_after_induction", "accrual.screened_per_site_month"}


def test_bad_values_give_the_command_line_message_beside_the_control():
    resolved = resolve(BASE_FILE, BASE, {"p1": 50}, None, "")
    with pytest.raises(ScenarioError) as cli:
        load_scenario(BASE_FILE, ["analysis.p1=0.5"])
    assert resolved.scenario is None and resolved.errors["p1"] == str(cli.value) == resolved.errors["p0"]
    assert "crc" not in resolved.errors
    unreachable = resolve(BASE_FILE, BASE, {"mrd": 30}, None, "")
    assert "by moving mrd.mfc.p_negative_after_induction (reachable: 0.5 to 0.97)" in unreachable.errors["mrd"]
    for value in ("abc", None, [], 1e308, float("nan"), -3):
        assert "expected a number" in resolve(BASE_FILE, BASE, {"crc": value}, None, "").errors["crc"]
    assert "expected section.key=value" in resolve(BASE_FILE, BASE, {}, None, "nonsense").errors["other"]
    assert "one of" in resolve(BASE_FILE, BASE, {}, ["x"], "").errors["test"]
    with pytest.raises(InputError, match="at most 30"):
        grid_from(1, 1000, 1, 100, 1)
    with pytest.raises(InputError, match="expected an integer"):
        grid_from(20, 100, 10, "1e999", 1)


def test_sources_are_the_comments_of_the_file_that_sets_the_value():
    sources = key_sources(SLOW_FILE)
    assert sources["accrual.ramp_up_months"] == ("slow_accrual.toml", "upper end of the 3-9 month ramp-up [est]")
    assert sources["response.p_cr"][0] == "base.toml" and "Lu 2024" in sources["response.p_cr"][1]
    text = 'regimen = "VP + #HD-MTX"  # protocol\n[a.b]  # section note\nk = 1\n'
    assert line_comments(text) == {"regimen": "protocol", "a.b.k": ""}


def test_saved_scenario_extends_the_loaded_file_with_only_the_changed_keys(tmp_path):
    resolved = resolve(SLOW_FILE, load_scenario(SLOW_FILE), {"crc": 80, "relapse": 25}, "linear",
                       "post_transplant.nrm_hr_haplo=1.3")
    grid = grid_from(20, 60, 20, 40, 5)
    saved = save_scenario(SLOW_FILE, tmp_path / "kept", resolved.scenario, resolved.overrides, "slower-worse",
                          resolved.labels, grid)
    text = saved.read_text()
    assert "extends = " in text and "slow_accrual.toml" in text and "Saved from the what-if explorer on" in text
    assert "[accrual]" not in text and "[donor]" not in text
    assert "p_cr = 0.73913  # explorer: Complete remission" in text
    assert load_scenario(saved).model_copy(update={"name": resolved.scenario.name,
                                                   "description": resolved.scenario.description}) \
        == resolved.scenario
    with pytest.raises(InputError, match="exists already"):
        save_scenario(SLOW_FILE, tmp_path / "kept", resolved.scenario, resolved.overrides, "slower-worse", {}, grid)
    for bad in ("../x", "", "a/b", "x" * 61, None, ".hidden"):
        with pytest.raises(InputError):
            check_name(bad)


def test_report_is_the_sweep_report_of_the_saved_file(tmp_path):
    resolved = resolve(BASE_FILE, BASE, {"no_donor": 10}, None, "")
    grid = grid_from(20, 40, 20, 20, 4)
    saved = save_scenario(BASE_FILE, tmp_path, resolved.scenario, resolved.overrides, "few-donors", {}, grid)
    job = start_report([sys.executable, str(ROOT / "run_sim.py")], saved, grid, tmp_path / "report")
    job.process.wait(timeout=300)
    assert job.state() == "done", job.last_lines(20)
    page = (tmp_path / "report" / "report.html").read_text()
    assert "Sizing study: few-donors" in page and "donor.p_no_donor" in page


def test_ctrl_c_stops_the_server_and_its_workers(tmp_path):
    process, url = start_explorer(tmp_path, "--n", "20", "40", "--reps", "20", "--jobs", "2")
    workers = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    assert len(workers) >= 2
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    log = (tmp_path / "server.log").read_text()
    assert "Explorer stopped." in log and "Traceback" not in log
    deadline = time.monotonic() + 10
    while (left := [w for w in workers if alive(w)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes left behind: {[Path(f'/proc/{w}/cmdline').read_bytes() for w in left]}"


def alive(pid: str) -> bool:
    """A process that still exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_explore_refuses_a_bad_scenario_or_a_busy_port(tmp_path):
    bad = subprocess.run([sys.executable, "run_sim.py", "explore", "--scenario", "nope.toml", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "nope.toml: no such scenario file" in bad.stderr
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = subprocess.run([sys.executable, "run_sim.py", "explore", "--port", str(port), "--out", str(tmp_path)],
                               cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert taken.returncode == 2 and f"--port {port}: cannot listen there" in taken.stderr
