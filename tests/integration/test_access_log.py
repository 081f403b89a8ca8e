"""The access log: one line per WebSocket connection or HTTP request, text or
JSON, with client, route, pool, backend, status or close code, queue wait,
bytes each way and duration."""
import asyncio
import json
import socket
import time
import urllib.request

import pytest
import websockets

import harness as H
from harness import Backend, HttpReader, Sluice, config, free_port, stop_all


def json_logging_gateway(tmp_path):
    """A backend, and sluice in front of it writing a JSON access log."""
    log = tmp_path / "access.log"
    backend = Backend("blue")
    port = free_port()
    s = Sluice(config(port, {"blue": [backend.addr]},
                      extra="access_log: { path: %s, format: json }" % log), port)
    return log, backend, s


def test_json_access_log_lines(tmp_path):
    log, backend, s = json_logging_gateway(tmp_path)
    try:
        with urllib.request.urlopen(s.base + "/page?x=1", timeout=10) as r:
            assert r.status == 200
            body = r.read()

        async def ws():
            async with websockets.connect(s.url + "chat", compression=None) as c:
                assert await c.recv() == "hello blue"
                await c.send("x" * 100)
                assert await c.recv() == "x" * 100
        asyncio.run(ws())
        try:
            urllib.request.urlopen(s.base.replace("127.0.0.1", "127.0.0.1") + "/a", data=b"",
                                   timeout=10)
        except Exception:
            pass
        deadline = time.monotonic() + 5
        lines = []
        while time.monotonic() < deadline and len(lines) < 3:
            lines = [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []
            time.sleep(0.05)
        http = [l for l in lines if l["kind"] == "http" and l["target"] == "/page?x=1"][0]
        assert http["method"] == "GET" and http["status"] == 200
        assert http["service"] == "app" and http["pool"] == "blue" and http["backend"] == backend.addr
        assert http["client"] == "127.0.0.1" and http["bytes_out"] == len(body)
        ws_line = [l for l in lines if l["kind"] == "ws"][0]
        assert ws_line["status"] == 101 and ws_line["close_code"] == 1000
        assert ws_line["target"] == "/chat" and ws_line["backend"] == backend.addr
        # every byte relayed, close frames included (in: a masked 100-byte text frame
        # and a masked close 1000; out: "hello blue", the echo, the backend's close)
        assert (ws_line["bytes_in"], ws_line["bytes_out"]) == (106 + 8, 12 + 102 + 4)
        assert ws_line["duration_ms"] >= 0 and ws_line["queue_ms"] >= 0
    finally:
        stop_all(s, backend)


def test_text_access_log_and_gateway_errors(tmp_path):
    log = tmp_path / "access.log"
    port = free_port()
    s = Sluice(config(port, {"blue": ["127.0.0.1:9"]}, service_extra="admission: off",
                      extra="access_log: { path: %s }" % log), port)
    try:
        try:
            urllib.request.urlopen(s.base + "/down", timeout=10)
        except urllib.error.HTTPError as e:
            assert e.code == 502
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (log.exists() and log.read_text()):
            time.sleep(0.05)
        fields = log.read_text().split("\n")[0].split(" ")
        # time kind client service pool backend method target status close queue in out ms
        assert fields[1:4] == ["http", "127.0.0.1", "app"] and fields[4] == "blue"
        assert fields[6:9] == ["GET", "/down", "502"], fields
    finally:
        stop_all(s)


def test_a_request_that_cannot_be_parsed_is_logged_without_a_method(tmp_path):
    """The 400 for a head the parser refused has no method to log: none ("-" in text), not
    the parser's method 0 (DELETE), which would send an operator hunting for
    deletes nobody made."""
    log, backend, s = json_logging_gateway(tmp_path)
    try:
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as c:
            c.sendall(b"\x01\x02 nonsense\r\n\r\n")
            assert c.recv(4096).startswith(b"HTTP/1.1 400")
        deadline = time.monotonic() + 5
        lines = []
        while time.monotonic() < deadline and not lines:
            lines = [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []
            time.sleep(0.05)
        assert len(lines) == 1 and lines[0]["status"] == 400, lines
        assert lines[0]["method"] == "" and lines[0]["target"] == "", lines[0]
    finally:
        stop_all(s, backend)


def test_the_next_request_on_a_kept_alive_connection_is_not_logged_as_the_last(tmp_path):
    """The method, target and clock of a kept-alive connection's last
    request were left in place for the next: a head the parser then refused
    was logged as that request again ("GET /first", with the keep-alive
    pause in its duration), and a refused CONNECT timed from the last
    request's start. Each request is logged as itself."""
    log, backend, s = json_logging_gateway(tmp_path)
    try:
        for second, status in ((b"\x01\x02 nonsense\r\n\r\n", 400),
                               (b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
                                405)):
            with socket.create_connection(("127.0.0.1", s.port), timeout=5) as c:
                c.sendall(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
                assert HttpReader(c).read().status == 200
                time.sleep(0.8)
                c.sendall(second)
                assert c.recv(4096).startswith(b"HTTP/1.1 %d" % status)
        deadline = time.monotonic() + 5
        lines = []
        while time.monotonic() < deadline and len(lines) < 4:
            lines = [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []
            time.sleep(0.05)
        assert [(l["method"], l["target"], l["status"]) for l in lines] == [
            ("GET", "/first", 200), ("", "", 400),
            ("GET", "/first", 200), ("CONNECT", "a.example:443", 405)], lines
        for l in (lines[1], lines[3]):
            assert l["duration_ms"] < 500, l   # the refused request's own, not the pause before it
    finally:
        stop_all(s, backend)


def logged_lines(log, n, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = log.read_bytes().splitlines() if log.exists() else []
        if len(lines) >= n:
            return lines
        time.sleep(0.05)
    raise AssertionError("%d lines logged, %d expected" % (len(lines), n))


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_a_long_target_is_cut_in_its_line_and_the_gateway_goes_on(tmp_path, fmt):
    """A target of 4 KiB (the request line may hold 8): the line builder
    added snprintf's would-be lengths, ran past its 2 KiB buffer, and wrote
    beyond it (a crash, on the gateway's own 404 as on a proxied 200). The
    target is cut ("..."), the fields after it are there."""
    backend = Backend("blue")
    port = free_port()
    log = tmp_path / "access.log"
    s = Sluice(config(port, {"blue": [backend.addr]},
                      extra="access_log: { path: %s, format: %s }" % (log, fmt)), port)
    try:
        target = "/" + "t" * 4096
        for path in (target, "/after"):
            c = socket.create_connection(("127.0.0.1", port), timeout=10)
            c.sendall(("GET %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % path).encode())
            assert HttpReader(c).read().status == 200
            c.close()
        long_line, after = logged_lines(log, 2)
        assert len(long_line) < 4096
        if fmt == "json":
            entry = json.loads(long_line)
            assert entry["target"].startswith("/ttt") and entry["target"].endswith("...")
            assert entry["status"] == 200 and entry["duration_ms"] >= 0
            assert json.loads(after)["target"] == "/after"
        else:
            fields = long_line.decode().split(" ")
            assert fields[7].startswith("/ttt") and fields[7].endswith("...") and fields[8] == "200"
            assert after.decode().split(" ")[7] == "/after"
        assert s.alive()
    finally:
        stop_all(s, backend)


def test_a_json_line_is_utf_8_whatever_bytes_the_target_held(tmp_path):
    """RFC 8259 8.1: JSON text is UTF-8. A target with bytes that are not
    (Latin-1 "é", 0xff) went into the line raw, and a log shipper refused
    it; they are written %XX now, and UTF-8 passes as it is."""
    log, backend, s = json_logging_gateway(tmp_path)
    try:
        for path in (b"/caf\xe9\xff", "/café".encode()):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
            c.sendall(b"GET %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % path)
            HttpReader(c).read()
            c.close()
        first, second = [json.loads(l.decode("utf-8")) for l in logged_lines(log, 2)]
        assert first["target"] == "/caf%E9%FF" and second["target"] == "/café"
    finally:
        stop_all(s, backend)


def test_a_client_that_gives_up_in_the_admission_queue_is_logged_499(tmp_path):
    """An upgrade waiting in the queue whose client hangs up got no line at
    all (the session ended with no status). It is logged 499, with its wait."""
    backend = Backend("blue")
    port = free_port()
    log = tmp_path / "access.log"
    s = Sluice(config(port, {"blue": [backend.addr]}, service_extra="""admission:
  rate: 1/m
  burst: 1
  slow_start: 0
  queue: { length: 10, max_wait: 30s, per_client: 0 }""",
                      extra="access_log: { path: %s, format: json }" % log), port)
    try:
        first = socket.create_connection(("127.0.0.1", port), timeout=10)
        first.sendall(H.upgrade_request(path="/first"))
        assert H.recv_until(first, b"\r\n\r\n").startswith(b"HTTP/1.1 101")
        waiting = socket.create_connection(("127.0.0.1", port), timeout=10)
        waiting.sendall(H.upgrade_request(path="/gave-up"))
        time.sleep(0.5)
        waiting.close()
        entry = json.loads(logged_lines(log, 1)[0])
        assert (entry["kind"], entry["target"], entry["status"]) == ("ws", "/gave-up", 499), entry
        assert 300 <= entry["queue_ms"] < 5000, entry
    finally:
        first.close()
        stop_all(s, backend)
