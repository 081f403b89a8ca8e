"""sluice-loadgen against sluice-backend directly (no gateway).

Each test starts the real binaries (SLUICE_BACKEND_BIN, SLUICE_LOADGEN_BIN) on
loopback, runs one mode for a second or two and checks the JSON summary
against what the backend saw (/stats, --log-messages). Every wait is bounded.
"""
import asyncio
import json
import os
import subprocess
import threading
import time

import pytest
import websockets

from simbackend import backend  # noqa: F401 (a fixture)

LOADGEN = os.environ.get("SLUICE_LOADGEN_BIN", "build/bench/sluice-loadgen")
T = 15  # seconds: the bound on every wait


def loadgen_start(url, *args):
    return subprocess.Popen([LOADGEN, "--url", url, "--json", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def loadgen_wait(p):
    out, err = p.communicate(timeout=T * 2)
    assert p.returncode == 0, "loadgen exit %r: %s" % (p.returncode, err)
    return json.loads(out)


def loadgen(url, *args):
    return loadgen_wait(loadgen_start(url, *args))


def wait_for(pred, what):
    deadline = time.monotonic() + T
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


# ---- command line -------------------------------------------------------------

def test_help_documents_every_flag():
    p = subprocess.run([LOADGEN, "--help"], capture_output=True, text=True, timeout=T)
    assert p.returncode == 0
    for flag in ("--url", "--connections", "--mode", "--rate", "--max-pending", "--threads",
                 "--source", "--duration", "--timeout", "--window", "--size", "--msg-rate",
                 "--backoff", "--retry-delay", "--interval", "--sent-log", "--timeline",
                 "--json", "--seed", "--help", "--version"):
        assert flag in p.stdout, flag


@pytest.mark.parametrize("args", [
    [],                                              # no --url
    ["--url", "http://127.0.0.1:1/"],                # not ws://
    ["--url", "ws://127.0.0.1:1/", "--mode", "x"],
    ["--url", "ws://127.0.0.1:1/", "--backoff", "exp:5s:1s"],
    ["--url", "ws://127.0.0.1:1/", "--source", "127.0.0.9-127.0.0.2"],
    ["--url", "ws://127.0.0.1:1/", "--duration", "3 parsecs"],
    ["--url", "ws://127.0.0.1:1/", "--bogus"],
])
def test_usage_errors_exit_2(args):
    p = subprocess.run([LOADGEN, *args], capture_output=True, text=True, timeout=T)
    assert p.returncode == 2, p.stderr
    assert p.stdout == ""


# ---- connect ------------------------------------------------------------------

def test_connect_200_from_several_sources(backend, tmp_path):
    b = backend()
    tl = tmp_path / "timeline.csv"
    r = loadgen(b.url, "-n", "200", "--source", "127.0.0.2-127.0.0.9",
                "--duration", "1.5s", "--timeline", str(tl))
    assert r["mode"] == "connect"
    assert r["attempts"] == 200 and r["upgrades"] == 200
    assert r["failures"]["total"] == 0
    assert r["handshake_us"]["count"] == 200 and r["handshake_us"]["p99"] > 0
    assert r["upgrades_per_s"] > 0
    assert r["connected_peak"] == 200 and r["all_connected_ms"] >= 0
    assert r["backends"] == {"blue": 200}
    assert r["close_codes"] == {"1000": 200}    # the backend's replies to our closes
    st = b.stats()
    assert st["handshakes"] == 200 and st["open"] == 0
    rows = tl.read_text().splitlines()
    assert rows[0] == "second,connected,upgrades,closes,failures,messages,p99_us"
    first = rows[1].split(",")
    assert first[0] == "1" and first[1] == "200" and first[2] == "200"
    assert sum(int(x.split(",")[2]) for x in rows[1:]) == 200


def test_connect_at_a_rate(backend):
    b = backend()
    r = loadgen(b.url, "-n", "40", "--rate", "40", "--threads", "2", "--duration", "1.5s")
    assert r["upgrades"] == 40
    # The 40th open is due at 975 ms: the ramp neither bursts nor lags.
    assert 900 <= r["all_connected_ms"] <= 1300, r["all_connected_ms"]
    assert 30 <= r["upgrades_per_s"] <= 50
    assert b.stats()["peak_100ms"] <= 8


def test_connect_failures_by_kind(backend):
    # A source address that is not ours: bind fails, every attempt is a connect failure.
    r = loadgen("ws://127.0.0.1:9/", "-n", "5", "--source", "192.0.2.1", "--duration", "0.3s")
    assert r["failures"]["connect"] == 5 and r["upgrades"] == 0
    # A backend over capacity answers 503: counted by status.
    b = backend("--capacity", "1", "--burst", "2")
    r = loadgen(b.url, "-n", "6", "--duration", "0.5s")
    assert r["upgrades"] == 2
    assert r["failures"]["http_status"] == 4 and r["http_statuses"] == {"503": 4}


# ---- echo ---------------------------------------------------------------------

def test_echo_50_window_4(backend):
    b = backend()
    r = loadgen(b.url, "--mode", "echo", "-n", "50", "--window", "4", "--size", "300",
                "--duration", "2s")
    assert r["upgrades"] == 50
    assert r["messages_received"] > 0
    assert r["mismatches"] == 0
    assert r["messages_sent"] - r["messages_received"] <= 50 * 4
    assert r["rtt_us"]["count"] == r["messages_received"]
    assert r["rtt_us"]["p50"] <= r["rtt_us"]["p99"] <= r["rtt_us"]["p999"] <= r["rtt_us"]["max"]
    assert r["other_messages"] == 0     # the hellos are skipped, not counted as echoes
    assert b.stats()["messages"] >= r["messages_received"]


def test_echo_open_loop_rate(backend):
    b = backend()
    r = loadgen(b.url, "--mode", "echo", "-n", "10", "--window", "4", "--msg-rate", "500",
                "--duration", "1.5s", "--threads", "2")
    assert r["mismatches"] == 0
    # ~500/s for the part of 1.5 s after the ramp.
    assert 400 <= r["messages_sent"] <= 800, r["messages_sent"]


class CorruptingEcho:
    """A websockets server that echoes, flipping one byte of every other message."""

    def __init__(self):
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(T)

    async def _handler(self, ws, path=None):
        await ws.send("hello evil")
        n = 0
        async for msg in ws:
            n += 1
            if isinstance(msg, bytes) and n % 2 == 0 and msg:
                msg = bytes([msg[0] ^ 1]) + msg[1:]
            await ws.send(msg)

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def main():
            self.stop_fut = self.loop.create_future()
            async with websockets.serve(self._handler, "127.0.0.1", 0,
                                        compression=None) as srv:
                self.port = srv.sockets[0].getsockname()[1]
                self.ready.set()
                await self.stop_fut
        self.loop.run_until_complete(main())

    def stop(self):
        self.loop.call_soon_threadsafe(self.stop_fut.set_result, None)
        self.thread.join(T)


def test_echo_mismatch_is_detected():
    srv = CorruptingEcho()
    try:
        r = loadgen("ws://127.0.0.1:%d/" % srv.port, "--mode", "echo", "-n", "2",
                    "--size", "32", "--duration", "1s")
    finally:
        srv.stop()
    assert r["messages_received"] > 2
    assert r["mismatches"] > 0
    assert r["backends"] == {"evil": 2}


# ---- storm --------------------------------------------------------------------

def test_storm_backend_killed_and_restarted(backend, tmp_path):
    b = backend(name="blue")
    tl = tmp_path / "timeline.csv"
    p = loadgen_start(b.url, "--mode", "storm", "-n", "100", "--duration", "4s",
                      "--timeline", str(tl))
    wait_for(lambda: b.stats()["open"] == 100, "100 connections")
    assert b.stop() == 0     # SIGTERM: TCP closes, no close frame
    time.sleep(0.3)
    b2 = backend(name="green", listen="127.0.0.1:%d" % b.port)
    r = loadgen_wait(p)
    assert r["upgrades"] >= 200
    assert r["reconnects"] >= 100
    assert r["closes"] == 100 and r["closes_without_frame"] >= 100
    assert r["failures"]["connect"] > 0          # refused while the port was closed
    assert r["recoveries"] >= 1 and not r["unrecovered"]
    assert r["recovery_max_ms"] >= 300
    assert r["backends"] == {"blue": 100, "green": 100}
    assert b2.stats()["handshakes"] == 100
    # The timeline shows the dip and the way back to 100.
    rows = [x.split(",") for x in tl.read_text().splitlines()[1:]]
    assert sum(int(x[3]) for x in rows) == 100
    assert any(int(x[1]) == 100 for x in rows[2:4])


def test_storm_honours_retry_after(backend):
    # 4 handshakes/s, 2 at once: 2 of 6 get in, the rest get 503 Retry-After: 1
    # and wait a second (plus up to 10% jitter) before each new try, instead of
    # the 10 ms --retry-delay, so the herd takes more than a second and few tries.
    b = backend("--capacity", "4", "--burst", "2")
    r = loadgen(b.url, "--mode", "storm", "-n", "6", "--duration", "3.5s")
    assert r["http_statuses"].get("503", 0) >= 4
    assert r["upgrades"] == 6
    assert r["all_connected_ms"] >= 1000
    assert r["attempts"] <= 15, r["attempts"]
    assert b.stats()["rejected"] == r["http_statuses"]["503"]


# ---- deploy -------------------------------------------------------------------

def parse_sent_log(path):
    gens = []
    for line in path.read_text().splitlines():
        gen, last, how, name = line.split(" ")
        gens.append((gen, int(last), how, name))
    return gens


def check_logged(gens, log_path):
    logged = set(log_path.read_text().splitlines())
    for gen, last, how, _ in gens:
        if how == "dropped":
            continue
        for seq in range(1, last + 1):
            assert "%s:%d" % (gen, seq) in logged, (gen, seq, how)


def test_deploy_close_frames_seqs_logged(backend, tmp_path):
    log = tmp_path / "messages.log"
    sent = tmp_path / "sent.log"
    b = backend("--close-after-hello", "1012", "--log-messages", str(log))
    r = loadgen(b.url, "--mode", "deploy", "-n", "20", "--interval", "20ms",
                "--backoff", "exp:20ms:40ms", "--duration", "1.5s", "--sent-log", str(sent))
    assert r["failures"]["total"] == 0
    assert r["close_codes"].get("1012", 0) >= 20
    assert b.stop() == 0    # flushes the message log
    gens = parse_sent_log(sent)
    assert len(gens) == r["upgrades"] and len(gens) > 20
    closed = [g for g in gens if g[2] == "1012"]
    assert len(closed) >= 20
    assert all(g[3] == "blue" for g in gens)
    # Every generation sent its first message on the 101, before it saw the close.
    assert all(g[1] >= 1 for g in closed)
    check_logged(gens, log)
    assert len({g[0].split(".")[0] for g in gens}) == 20


def test_deploy_long_streams_logged(backend, tmp_path):
    log = tmp_path / "messages.log"
    sent = tmp_path / "sent.log"
    b = backend("--log-messages", str(log), name="green")
    r = loadgen(b.url, "--mode", "deploy", "-n", "10", "--interval", "20ms",
                "--duration", "1s", "--sent-log", str(sent))
    assert b.stop() == 0
    gens = parse_sent_log(sent)
    assert len(gens) == 10 and r["reconnects"] == 0
    assert all(g[2] == "local" and g[3] == "green" for g in gens)
    assert all(g[1] >= 20 for g in gens), gens
    assert sum(g[1] for g in gens) == r["messages_sent"]
    check_logged(gens, log)
