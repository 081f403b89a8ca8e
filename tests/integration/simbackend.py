"""The backend simulator started on an ephemeral port (--listen 127.0.0.1:0),
its port read from its start-up line: for the tests of the bench programs
themselves (test_backend, test_loadgen). Gateway tests use harness.Backend.
"""
import http.client
import json
import os
import re
import signal
import subprocess
import time

import pytest

BIN = os.environ.get("SLUICE_BACKEND_BIN", "build/bench/sluice-backend")
T = 15  # seconds: the bound on every wait


class Backend:
    def __init__(self, *args, name="blue", listen="127.0.0.1:0"):
        self.proc = subprocess.Popen(
            [BIN, "--listen", listen, "--name", name, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self._readline()
        m = re.search(r"listening on (\[[^\]]+\]|[\d.]+):(\d+)", line)
        assert m, "no start-up line: %r" % line
        self.host = m.group(1).strip("[]")
        self.port = int(m.group(2))
        hp = "[%s]" % self.host if ":" in self.host else self.host
        self.url = "ws://%s:%d/" % (hp, self.port)

    def _readline(self):
        deadline = time.monotonic() + T
        os.set_blocking(self.proc.stdout.fileno(), False)
        buf = ""
        while time.monotonic() < deadline and "\n" not in buf:
            chunk = self.proc.stdout.readline()
            if chunk:
                buf += chunk
            elif self.proc.poll() is not None:
                break
            else:
                time.sleep(0.01)
        return buf

    def http(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=T)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            conn.close()

    def stats(self):
        status, _, body = self.http("GET", "/stats")
        assert status == 200
        return json.loads(body)

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=T)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=T)
            raise AssertionError("backend did not exit within %ds" % T)
        finally:
            self.err = self.proc.stderr.read() if not self.proc.stderr.closed else ""
            self.proc.stdout.close()
            self.proc.stderr.close()
        return rc


@pytest.fixture
def backend():
    started = []

    def start(*args, **kw):
        b = Backend(*args, **kw)
        started.append(b)
        return b

    yield start
    for b in started:
        rc = b.stop()
        assert rc == 0, "backend exit status %r: %s" % (rc, b.err)
