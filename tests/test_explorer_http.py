"""Hostile and malformed requests to every endpoint of the explorer get an answer below 500 and never a
traceback: random methods, paths, JSON bodies (huge numbers, deep nesting, wrong types) on the page,
the static files, the kept-results folder and the session endpoints, and random input messages on the
page's websocket (the controls' ids with wrong types and out-of-range values). The server keeps serving.
"""

from __future__ import annotations

import http.client
import json
import random
import time
from urllib.parse import urlparse

import pytest
from browser import start_explorer

SEED = 20261125
INPUT_IDS = ("crc_1", "mrd_1", "no_donor_1", "refusal_1", "relapse_1", "nrm_1", "accrual_1", "ramp_1", "p0_1",
             "p1_1", "alpha_1", "test_1", "other_1", "n_min", "n_max", "n_step", "reps", "seed", "scenario",
             "save_name", "crc_7", "unknown")
TRACES = ("Traceback", 'File "/', "site-packages")


def hostile_value(rng: random.Random, depth: int = 0):
    """A JSON value a careless or hostile client might send."""
    choices = [lambda: rng.choice([0, -1, 1, 2**63, -(2**63), 10**400, 1e308, -1e308, 0.5, 93.7]),
               lambda: rng.choice(["", "abc", "../../etc/passwd", "0x10", "1e999", "None", "<script>x</script>",
                                   "post_transplant.relapse_incidence=1.5", "a" * 100_000, "\u0000", "NaN"]),
               lambda: rng.choice([None, True, False]),
               lambda: [hostile_value(rng, depth + 1) for _ in range(rng.randint(0, 3))] if depth < 4 else [],
               lambda: {str(rng.random()): hostile_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
               if depth < 4 else {}]
    return rng.choice(choices)()


def nested(depth: int):
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    out = tmp_path_factory.mktemp("explore")
    (out / "kept.txt").write_text("kept\n")
    process, url = start_explorer(out, "--n", "20", "40", "--reps", "20", "--jobs", "1")
    yield urlparse(url), out
    process.terminate()
    process.wait(timeout=30)


def request(base, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    connection = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def open_session(base):
    """A page session over the websocket: (socket, session id)."""
    import websocket

    ws = websocket.create_connection(f"ws://{base.hostname}:{base.port}/websocket/", timeout=30)
    ws.send(json.dumps({"method": "init", "data": {".clientdata_url_search": "", "n_min": 20, "n_max": 40,
                                                    "n_step": 20, "reps": 20, "seed": 1}}))
    while True:
        message = json.loads(ws.recv())
        if "config" in message:
            return ws, message["config"]["sessionId"]


def test_random_http_requests_never_get_a_server_error(server):
    base, _ = server
    rng = random.Random(SEED)
    ws, session = open_session(base)
    paths = ["/", "/websocket/", "/kept/kept.txt", "/kept/../pyproject.toml", "/kept/%2e%2e/%2e%2e/etc/passwd",
             "/lib/shiny-1.8.0/shiny.min.js", "/lib/../../../etc/passwd", f"/session/{session}/upload/x",
             f"/session/{session}/download/report", f"/session/{session}/dataobj/x?w=&nonce=1",
             f"/session/{session}/../../x", "/session/nope/upload/x", "/session/" + "a" * 5000 + "/x/y",
             "/%ff%fe", "/?" + "q=" * 2000, "/api", "/explore", "//etc/passwd"]
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]
    seen = set()
    for _ in range(250):
        method, path = rng.choice(methods), rng.choice(paths)
        body = None
        if method in ("POST", "PUT", "PATCH"):
            kind = rng.random()
            body = (json.dumps(nested(400)).encode() if kind < 0.1 else b"\xff\xfe{not json" if kind < 0.2
                    else json.dumps(hostile_value(rng)).encode())
        status, payload = request(base, method, path, body, {"Content-Type": "application/json"})
        seen.add(status)
        assert status < 500, f"{method} {path} -> {status}: {payload[:300]!r}"
        assert not any(t.encode() in payload for t in TRACES), f"{method} {path} shows a traceback"
    assert request(base, "GET", "/kept/kept.txt")[0] == 200, "the kept folder is served"
    assert request(base, "GET", "/kept/../pyproject.toml")[0] == 404, "nothing outside it is"
    assert {200, 404} <= seen
    ws.close()


def test_random_websocket_input_messages_never_break_the_server(server):
    base, out = server
    rng = random.Random(SEED + 1)
    received = []
    for _ in range(4):
        ws, _ = open_session(base)
        for _ in range(40):
            kind = rng.random()
            if kind < 0.05:
                message = "{not json"
            elif kind < 0.1:
                message = json.dumps({"method": rng.choice(["update", "nope", None, 3]), "data": hostile_value(rng)})
            else:
                message = json.dumps({"method": "update", "data": {
                    rng.choice(INPUT_IDS): hostile_value(rng) for _ in range(rng.randint(1, 4))}})
            try:
                ws.send(message)
                ws.settimeout(0.05)
                while True:
                    received.append(ws.recv())
            except Exception:  # noqa: BLE001 - a timeout (nothing more to read) or the server closing a bad session
                pass
        ws.close()
        status, _ = request(base, "GET", "/")
        assert status == 200, "the server still serves the page"
    time.sleep(0.5)
    assert received, "the sessions answered"
    assert not any(any(t in str(m) for t in TRACES) for m in received), "a traceback reached the page"
    assert sorted(p.name for p in out.iterdir()) == ["kept.txt", "server.log"], "hostile names saved nothing"
    # Shiny closes a session that breaks its protocol (not JSON, an unknown method) and logs it on the console,
    # cancelling that session's pending reactive tasks (CancelledError inside Shiny); any other error, and any
    # error in this package's code, is a defect.
    log = (out / "server.log").read_text()
    for block in log.split("Traceback (most recent call last):")[1:]:
        closed = "ProtocolError" in block or ("CancelledError" in block and "site-packages/shiny/" in block)
        assert closed and "/sim/" not in block, f"the server met an unexpected error:\n{block}"
