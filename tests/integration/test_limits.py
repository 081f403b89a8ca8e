"""Request head limits, the head timeout, request smuggling and routing misses,
against the real binary.

Backends are servers/http_echo.py with --log: it writes a line for every
connection it accepts and every request it reads, so "the backend never saw a
byte" is checked as "no connection was ever opened to it". Each limit is
checked at its edge: the largest accepted request passes, one more is refused.
"""
import os
import tempfile
import threading
import time

import pytest

import harness as H

LIMITS = ("limits: {head_bytes: 4KiB, headers: 20, request_line: 1KiB}\n"
          "timeouts: {head: 1s}")


class Gw:
    def __init__(self, extra=LIMITS, routes_host=None):
        fd, self.log = tempfile.mkstemp(prefix="http-echo-", suffix=".log")
        os.close(fd)
        self.backend = H.PyServer("http_echo.py", "--log", self.log)
        self.port = H.free_port()
        cfg = H.config(self.port, {"blue": [self.backend.addr]}, extra=extra)
        if routes_host:
            cfg = cfg.replace('host: "*"', 'host: "%s"' % routes_host)
        self.sluice = H.Sluice(cfg, port=self.port)

    def backend_log(self):
        time.sleep(0.2)
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return f.read().splitlines()

    def exchange(self, data, timeout=5):
        """Send data, read one response; return its raw bytes and, when the
        gateway closes after it, whatever else came (nothing, we expect)."""
        s = H.raw_connect(self.port)
        try:
            s.sendall(data)
            r = H.HttpReader(s, timeout).read()
            close = (r.header("connection") or "").lower() == "close"
            return r.raw + (H.recv_all(s, timeout=timeout) if close else b"")
        finally:
            s.close()

    def stop(self):
        alive = self.sluice.alive()
        rc = self.sluice.stop()
        self.backend.stop()
        assert alive, "sluice died:\n" + self.sluice.output()[-3000:]
        assert rc == 0, self.sluice.output()[-3000:]


@pytest.fixture(scope="module")
def gw():
    g = Gw()
    yield g
    g.stop()


def get(target="/", headers=(), host="test.local"):
    lines = ["GET %s HTTP/1.1" % target, "Host: %s" % host] + list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# ---- size limits, at their edges ----

def test_head_at_limit_passes_and_over_limit_gets_431(gw):
    base = len(get(headers=["X-Pad: "]))
    ok = get(headers=["X-Pad: " + "a" * (4096 - base)])
    assert len(ok) == 4096
    resp = gw.exchange(ok)
    assert H.status_of(resp) == 200, resp[:200]
    over = get(headers=["X-Pad: " + "a" * (4097 - base)])
    assert len(over) == 4097
    resp = gw.exchange(over)
    assert H.status_of(resp) == 431, resp[:200]
    assert b"X-Backend" not in resp


def test_header_count_at_limit_passes_and_one_more_gets_431(gw):
    ok = get(headers=["X-H%d: v" % i for i in range(19)])          # 20 with Host
    resp = gw.exchange(ok)
    assert H.status_of(resp) == 200, resp[:200]
    over = get(headers=["X-H%d: v" % i for i in range(20)])        # 21 with Host
    resp = gw.exchange(over)
    assert H.status_of(resp) == 431, resp[:200]
    assert b"X-Backend" not in resp


def test_long_url_gets_414(gw):
    # The request line is "GET <target> HTTP/1.1": 14 bytes besides the target.
    ok = get("/" + "u" * (1024 - 14 - 1))
    resp = gw.exchange(ok)
    assert H.status_of(resp) == 200, resp[:200]
    resp = gw.exchange(get("/" + "u" * 2000))
    assert H.status_of(resp) == 414, resp[:200]
    assert b"X-Backend" not in resp


def test_slowloris_gets_408_and_is_closed(gw):
    s = H.raw_connect(gw.port)
    t0 = time.monotonic()
    stop = threading.Event()

    def drip():
        data = get(headers=["X-Slow: " + "s" * 100])
        for i in range(len(data) - 4):
            if stop.wait(0.1):
                return
            try:
                s.send(data[i:i + 1])
            except OSError:
                return

    t = threading.Thread(target=drip, daemon=True)
    t.start()
    try:
        resp = H.recv_all(s, timeout=4)
        took = time.monotonic() - t0
    finally:
        stop.set()
        t.join(2)
        s.close()
    assert H.status_of(resp) == 408, resp
    assert 0.9 <= took <= 1.6, took   # head timeout 1 s, and ~1.5 s at most


# ---- smuggling: refused before the backend sees anything ----

SMUGGLING = [
    ("Content-Length with Transfer-Encoding",
     b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("duplicate Content-Length",
     b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nContent-Length: 5\r\n\r\nhello!"),
    ("bad chunk size",
     b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"zz\r\nhello\r\n0\r\n\r\n"),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n"),
    ("NUL in a header", b"GET / HTTP/1.1\r\nHost: a\r\nX-Nul: a\x00b\r\n\r\n"),
    ("bare CR in a header", b"GET / HTTP/1.1\r\nHost: a\r\nX-Cr: a\rb\r\n\r\n"),
    ("space before the colon", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello"),
    ("signed Content-Length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello"),
    ("Transfer-Encoding not ending in chunked",
     b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n"
     b"5\r\nhello\r\n0\r\n\r\n"),
]


@pytest.fixture(scope="module")
def clean_gw():
    """A gateway whose backend must never hear from anyone in these tests."""
    g = Gw()
    yield g
    g.stop()


@pytest.mark.parametrize("name,data", SMUGGLING, ids=[c[0] for c in SMUGGLING])
def test_smuggling_attempt_gets_400_and_never_reaches_backend(clean_gw, name, data):
    before = len(clean_gw.backend_log())
    resp = clean_gw.exchange(data)
    assert H.status_of(resp) == 400, resp
    assert resp.count(b"HTTP/1.1 ") == 1, resp        # one answer, then the connection ends
    assert b"connection: close" in resp.lower()
    seen = clean_gw.backend_log()[before:]
    assert seen == [], "the backend saw: %r" % seen


def test_bad_chunk_size_after_the_head_never_completes_a_request(clean_gw):
    """A body is streamed, so a bad chunk that arrives after the head was
    forwarded cannot be refused before the backend saw the head; but the bad
    bytes must not follow, the backend connection must end without a complete
    request, and the client gets 400."""
    before = len(clean_gw.backend_log())
    s = H.raw_connect(clean_gw.port)
    try:
        s.sendall(b"POST /late HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        time.sleep(0.3)
        s.sendall(b"5\r\nhello\r\nzz\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n0\r\n\r\n")
        resp = H.recv_all(s, timeout=5)
    finally:
        s.close()
    assert H.status_of(resp) == 400, resp
    seen = clean_gw.backend_log()[before:]
    assert not any(l.startswith("req ") for l in seen), seen


def test_clean_gateway_backend_log_does_record(clean_gw):
    """The check above would be empty if the log never recorded anything."""
    resp = clean_gw.exchange(get())
    assert H.status_of(resp) == 200
    lines = clean_gw.backend_log()
    assert lines and lines[0].startswith("conn ") and any(l.startswith("req ") for l in lines)


# ---- routing ----

def test_no_route_gets_404():
    g = Gw(routes_host="only.example")
    try:
        resp = g.exchange(get(host="other.example"))
        assert H.status_of(resp) == 404, resp
        assert g.backend_log() == []
        resp = g.exchange(get(host="only.example"))
        assert H.status_of(resp) == 200, resp
        assert b"X-Backend: pyecho" in resp
    finally:
        g.stop()
