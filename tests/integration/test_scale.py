"""Memory and scale with the real binary: a slow reader cannot make sluice
buffer, idle WebSockets are cheap, and 1,000 concurrent clients echo.
"""
import json
import os
import socket
import subprocess
import time

from harness import (BUILD, Backend, Sluice, config, free_port, raw_connect, recv_until, rss_kib,
                     sanitized, stop_all)
from wsclient import upgrade_request

LOADGEN = os.environ.get("SLUICE_LOADGEN_BIN", os.path.join(BUILD, "bench", "sluice-loadgen"))


def gateway(backend, extra=""):
    port = free_port()
    return Sluice(config(port, {"blue": [backend.addr]}, workers=1,
                         service_extra="admission: off",
                         extra="limits: { max_connections: 20000 }\n" + extra), port)


def test_slow_reader_does_not_make_sluice_buffer():
    total = 1 << 30
    backend = Backend("blue", "--send", "1G")
    s = gateway(backend)
    try:
        c = raw_connect(s.port)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.sendall(upgrade_request("127.0.0.1", s.port))
        head = recv_until(c, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head[:100]
        base = rss_kib(s.pid)
        # Read nothing for a while: the backend keeps trying to send.
        peak = base
        for _ in range(30):
            time.sleep(0.1)
            peak = max(peak, rss_kib(s.pid))
        # Then read everything, watching sluice's memory all along.
        got = len(head) - head.index(b"\r\n\r\n") - 4
        c.settimeout(30)
        deadline = time.monotonic() + 120
        n = 0
        while got < total and time.monotonic() < deadline:
            chunk = c.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
            n += 1
            if n % 64 == 0:
                peak = max(peak, rss_kib(s.pid))
        c.close()
        # 1 GiB of payload in 64 KiB frames, plus their headers (4 bytes each) and the hello.
        assert got >= total, got
        limit = 64 * 1024 if not sanitized(s.pid) else 512 * 1024
        assert peak < limit, "sluice RSS peaked at %d KiB" % peak
    finally:
        stop_all(s, backend)


def test_idle_websockets_are_cheap():
    n = 5000
    backend = Backend("blue")
    s = gateway(backend, extra="timeouts: { ping_interval: 0, idle: 600s }")
    try:
        before = rss_kib(s.pid)
        proc = subprocess.Popen([LOADGEN, "--url", s.url, "--mode", "connect", "-n", str(n),
                                 "--source", "127.0.0.2-127.0.0.9", "--duration", "30s",
                                 "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            deadline = time.monotonic() + 60
            open_now = 0
            while time.monotonic() < deadline:
                st = backend_stats(backend)
                open_now = st["open"]
                if open_now >= n:
                    break
                time.sleep(0.2)
            assert open_now >= n, open_now
            time.sleep(1.0)
            after = rss_kib(s.pid)
            per_conn = (after - before) * 1024 / n
            if not sanitized(s.pid):
                assert per_conn < 2500, "%.0f bytes per idle WebSocket" % per_conn
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        summary = json.loads(out)
        assert summary["upgrades"] >= n and summary["failures"]["total"] == 0, summary
    finally:
        stop_all(s, backend)


def backend_stats(backend):
    import urllib.request
    with urllib.request.urlopen("http://%s/stats" % backend.addr, timeout=10) as r:
        return json.loads(r.read())


def test_thousand_concurrent_clients_echo_through_two_workers():
    backend = Backend("blue")
    port = free_port()
    s = Sluice(config(port, {"blue": [backend.addr]}, workers=2, service_extra="admission: off"),
               port)
    try:
        out = subprocess.run([LOADGEN, "--url", s.url, "--mode", "echo", "-n", "1000",
                              "--window", "4", "--size", "200", "--source", "127.0.0.2-127.0.0.9",
                              "--duration", "6s", "--json"],
                             capture_output=True, text=True, timeout=60).stdout
        summary = json.loads(out)
        assert summary["upgrades"] == 1000 and summary["failures"]["total"] == 0, summary
        assert summary["mismatches"] == 0 and summary["messages_received"] > 10000, summary
    finally:
        stop_all(s, backend)
