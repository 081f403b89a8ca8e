"""One plain HTTP exchange from end to end, against the real binary: a body
that arrives while its request waits for admission, the timeouts that bound
every stage of an exchange, interim responses, and what the client is told
about the connection's future.

The backend is a thread of the test (harness.ThreadBackend) so each test can
see the exact bytes it received and answer exactly as a misbehaving backend
would; the client is a raw socket.
"""
import socket
import struct
import time
import types

import pytest

import harness as H


def read_request(conn, buf, with_body=True):
    """One request (head and Content-Length body) from conn; returns (head, body, rest)."""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return None, None, buf
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    if not with_body:
        return head, b"", buf
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(buf) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None, None, buf
        buf += chunk
    return head, buf[:length], buf[length:]


class KeptAliveBackend(H.ThreadBackend):
    """Reads requests one after another on each connection and sends what
    answer(head, body) returns for each."""

    def handle(self, conn):
        buf = b""
        try:
            while True:
                head, body, buf = read_request(conn, buf)
                if head is None:
                    return
                conn.sendall(self.answer(head, body))
        except OSError:
            return


class EchoBackend(KeptAliveBackend):
    """Answers every request with 200 and "<request line> | <body>"; keeps
    every request it received, in order."""

    def __init__(self):
        self.requests = []
        super().__init__()

    def answer(self, head, body):
        self.requests.append((head.split(b"\r\n")[0], body))
        out = head.split(b"\r\n")[0] + b" | " + body
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(out), out)


def gateway(backend, service_extra="", extra="", route_admission=False):
    port = H.free_port()
    text = H.config(port, {"blue": [backend.addr]}, service_extra=service_extra, extra=extra)
    if route_admission:
        text = text.replace('path_prefix: / }', 'path_prefix: /, admission: true }')
    return H.Sluice(text, port)


def test_a_body_sent_while_the_request_waits_for_admission_goes_as_its_body():
    """The client sends the head, and the body only while the request is
    queued. The body must reach the backend as that request's body; it once
    waited in the head buffer unjudged, the backend waited for a body that
    never came (504), and the body was then parsed as the next request."""
    backend = EchoBackend()
    s = gateway(backend, route_admission=True, service_extra="admission: { rate: 2/s, burst: 1, "
                "slow_start: 0, queue: { length: 10, max_wait: 10s } }")
    try:
        c = H.raw_connect(s.port)
        reader = H.HttpReader(c)
        c.sendall(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")        # takes the one token
        assert reader.read().body == b"GET /first HTTP/1.1 | "
        smuggled = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
        c.sendall(b"POST /queued HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(smuggled))
        time.sleep(0.1)                                               # queued: about 0.5 s
        c.sendall(smuggled)
        r = reader.read()
        assert (r.status, r.body) == (200, b"POST /queued HTTP/1.1 | " + smuggled)
        # Nothing else was made of those bytes, and the connection is still in step.
        c.sendall(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
        assert reader.read().body == b"GET /after HTTP/1.1 | "
        assert [line for line, _ in backend.requests] == [
            b"GET /first HTTP/1.1", b"POST /queued HTTP/1.1", b"GET /after HTTP/1.1"]
        c.close()
    finally:
        H.stop_all(s)
        backend.close()


class StallingBackend(H.ThreadBackend):
    """Misbehaves by path: /stall-body sends a head promising 100 bytes and
    10 of them, then nothing; /continue-then-nothing sends 100 Continue,
    reads the body and never answers. The connection stays open."""

    def handle(self, conn):
        try:
            head, _, _ = read_request(conn, b"", with_body=False)
            if head is None:
                return
            if b" /stall-body " in head:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
            elif b" /continue-then-nothing " in head:
                conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            conn.recv(65536)      # holds the connection until the gateway lets go
        except OSError:
            return


def timed_response(c, timeout=8):
    t0 = time.monotonic()
    r = H.HttpReader(c).read(timeout=timeout)
    return r, time.monotonic() - t0


def test_a_slow_upload_is_not_cut_by_the_backend_response_timeout():
    """backend_response (1 s here) runs from the request's end: a body that
    takes 3 s to arrive, a byte at a time, is answered (it once got 504 at
    1 s, mid-upload)."""
    backend = EchoBackend()
    s = gateway(backend, extra="timeouts: { backend_response: 1s, idle: 2s }")
    try:
        c = H.raw_connect(s.port)
        c.sendall(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n")
        for i in range(10):
            time.sleep(0.3)
            c.sendall(b"%d" % i)
        r, _ = timed_response(c)
        assert (r.status, r.body) == (200, b"POST /up HTTP/1.1 | 0123456789")
        c.close()
    finally:
        H.stop_all(s)
        backend.close()


def test_every_stage_of_an_exchange_is_bounded():
    """A response body that stops, an interim response with nothing after
    it, and an upload the client stops sending: each ends within its timeout
    (the first two once held both connections open forever)."""
    backend = StallingBackend()
    s = gateway(backend, extra="timeouts: { backend_response: 1s, idle: 1s }")
    try:
        # The response head and 10 of 100 bytes, then silence: cut after the idle time.
        c = H.raw_connect(s.port)
        c.sendall(b"GET /stall-body HTTP/1.1\r\nHost: a\r\n\r\n")
        t0 = time.monotonic()
        data = H.recv_all(c, timeout=6)
        took = time.monotonic() - t0
        assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"x" * 10), data
        assert 0.7 <= took <= 3.5, took
        c.close()
        # 100 Continue, then nothing: the final response is still waited for only so long.
        c = H.raw_connect(s.port)
        c.sendall(b"POST /continue-then-nothing HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        reader = H.HttpReader(c, timeout=6)
        assert reader.read().status == 100
        c.sendall(b"ok")
        t0 = time.monotonic()
        assert reader.read().status == 504
        assert 0.7 <= time.monotonic() - t0 <= 3.5
        c.close()
        # A client that stops sending its body gets 408 after the idle time.
        c = H.raw_connect(s.port)
        c.sendall(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n" + b"y" * 10)
        r, took = timed_response(c)
        assert r.status == 408 and 0.7 <= took <= 3.5, (r, took)
        c.close()
    finally:
        H.stop_all(s)
        backend.close()


class ScriptedBackend(KeptAliveBackend):
    """Answers each request with the bytes its path names in ANSWERS, on a
    kept-alive connection."""

    ANSWERS = {
        b"/interim": b"HTTP/1.1 100 Continue\r\n\r\n"
                     b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"/compact": b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H%d:v\r\n" % i for i in range(250))
                     + b"Content-Length: 2\r\n\r\nok",
        b"/switch": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n"
                    b"Connection: Upgrade\r\n\r\n",
        b"/plain": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    }

    def answer(self, head, body):
        return self.ANSWERS[head.split(b" ")[1]]


def test_what_the_client_is_told():
    """Four answers the gateway must shape for its client: a 1xx never goes
    to an HTTP/1.0 client; a response with many compact header lines fits
    its rewrite; a 101 to a request that asked for no switch is a 502; and
    with keepalive 0 the response says Connection: close before the close."""
    backend = ScriptedBackend()
    s = gateway(backend)
    try:
        c = H.raw_connect(s.port)
        c.sendall(b"GET /interim HTTP/1.0\r\nHost: a\r\n\r\n")
        data = H.recv_all(c)
        assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"ok"), data
        assert b"100 Continue" not in data
        c.close()
        c = H.raw_connect(s.port)
        reader = H.HttpReader(c)
        c.sendall(b"GET /interim HTTP/1.1\r\nHost: a\r\n\r\n")   # a 1.1 client gets it
        assert [reader.read().status, reader.read().status] == [100, 200]
        c.sendall(b"GET /compact HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        r = reader.read()
        assert r.status == 200 and r.header("x-h249") == "v" and r.body == b"ok", r
        assert r.header("connection") == "close"
        c.close()
        c = H.raw_connect(s.port)
        c.sendall(b"GET /switch HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
        assert H.HttpReader(c).read().status == 502
        c.close()
    finally:
        H.stop_all(s)
    s = gateway(backend, extra="timeouts: { keepalive: 0 }")
    try:
        c = H.raw_connect(s.port)
        c.sendall(b"GET /plain HTTP/1.1\r\nHost: a\r\n\r\n")
        data = H.recv_all(c)
        assert data.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nConnection: close\r\n" in data, data
        c.close()
    finally:
        H.stop_all(s)
        backend.close()


def test_reloads_never_let_a_kept_alive_connection_skip_admission():
    """Requests on a connection opened before two reloads once went through
    without a token (asked under a config two generations old, they were let
    through); they now wait their turn like everyone's."""
    backend = EchoBackend()
    s = gateway(backend, route_admission=True, service_extra="admission: { rate: 2/s, burst: 1, "
                "slow_start: 0, queue: { length: 100, max_wait: 10s } }")
    try:
        c = H.raw_connect(s.port)
        reader = H.HttpReader(c)

        def five():
            t0 = time.monotonic()
            for i in range(5):
                c.sendall(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i)
                assert reader.read().status == 200
            return time.monotonic() - t0
        assert five() >= 1.5                  # a token each: the burst, then 2/s
        for generation in (2, 3):
            s.proc.send_signal(1)
            assert H.wait_until(lambda: "generation %d" % generation in s.output(), 5)
        assert five() >= 1.5
        c.close()
    finally:
        H.stop_all(s)
        backend.close()


class SlowAnswerBackend(H.ThreadBackend):
    """Answers each request after `delay` seconds, unless its connection
    ends first; records when that end was seen (self.ended_at)."""

    def __init__(self, delay):
        self.delay, self.ended_at = delay, None
        super().__init__()

    def handle(self, conn):
        H.recv_until(conn, b"\r\n\r\n")
        conn.settimeout(self.delay)
        try:
            if conn.recv(1) == b"":
                self.ended_at = time.monotonic()
                return
        except socket.timeout:
            pass
        except OSError:
            self.ended_at = time.monotonic()
            return
        try:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except OSError:
            pass


def test_a_client_that_resets_while_its_answer_is_awaited_lets_the_backend_go():
    """A long poll or a slow answer: the client gives up with a reset. The
    gateway stopped reading a client once its request was sent, so it saw
    the reset only when it wrote the answer, and the backend worked on for
    nobody until then (or the idle timeout). It reads on now, and lets the
    backend connection go at once; a half-close (FIN) still gets the
    answer (test_tls's half-close test)."""
    backend = SlowAnswerBackend(delay=4)
    port = H.free_port()
    gw = H.Sluice(H.config(port, {"blue": [backend.addr]}), port)
    try:
        c = H.raw_connect(port)
        c.sendall(b"GET /poll HTTP/1.1\r\nHost: a\r\n\r\n")
        time.sleep(0.3)   # the request is at the backend
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        reset_at = time.monotonic()
        c.close()
        assert H.wait_until(lambda: backend.ended_at, timeout=3), \
            "the backend connection outlived its client by 3 s"
        assert backend.ended_at - reset_at < 1.0
        assert gw.alive()
    finally:
        H.stop_all(gw)
        backend.close()


class ClosesUnderTheSecondRequest(H.ThreadBackend):
    """Answers a connection's first request (kept alive), and closes it
    under the second without a word, as a backend whose keep-alive timeout
    ran out just as the gateway reused the connection. Every request line
    it read is in self.seen."""

    def __init__(self):
        self.seen = []
        super().__init__()

    def handle(self, conn):
        buf = b""
        for i in range(2):
            head, body, buf = read_request(conn, buf)
            if head is None:
                return
            self.seen.append(head.split(b"\r\n")[0])
            if i == 1:
                break
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
        conn.close()


@pytest.mark.parametrize("method, sent_again", [("GET", True), ("DELETE", True),
                                                ("POST", False)])
def test_a_stale_kept_alive_connection_costs_a_safe_request_nothing(method, sent_again):
    """The backend closes a kept-alive connection just as the gateway sends
    the next request on it. A request safe to send twice (an idempotent
    method, no body) goes again on a new connection and the client gets its
    answer; before, it got a 502. A POST is not sent twice: 502."""
    backend = ClosesUnderTheSecondRequest()
    gw = gateway(backend)
    try:
        c = H.raw_connect(gw.port)
        c.sendall(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n")
        r = H.HttpReader(c).read()
        assert (r.status, r.body) == (200, b"first")
        # The same worker sends the next request on the kept-alive connection.
        c.sendall(b"%s /two HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n" % method.encode()
                  if method == "POST" else b"%s /two HTTP/1.1\r\nHost: a\r\n\r\n" % method.encode())
        r = H.HttpReader(c).read()
        line = b"%s /two HTTP/1.1" % method.encode()
        if sent_again:
            assert (r.status, r.body) == (200, b"first"), r
            assert backend.seen == [b"GET /one HTTP/1.1", line, line], backend.seen
        else:
            assert r.status == 502, r
            assert backend.seen == [b"GET /one HTTP/1.1", line], backend.seen
        c.close()
    finally:
        H.stop_all(gw)
        backend.close()


def test_a_client_that_half_closes_while_a_stale_request_goes_again_gets_the_answer():
    """The client sends its request and half-closes while the gateway sends
    that request again on a new connection (the kept-alive one was closed
    under it). A FIN after a whole request is a half-close and the answer
    still goes out; read during the retry, with no response begun, it was
    taken for a client gone and the connection closed with no answer. The
    backend is served by hand, its listen queue full, so the retry's connect
    waits for a SYN sent again (about 1 s) and the FIN surely comes first."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(0)
    gw = gateway(types.SimpleNamespace(addr="127.0.0.1:%d" % ls.getsockname()[1]))
    filler = None
    try:
        c = H.raw_connect(gw.port)
        c.sendall(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n")
        kept, _ = ls.accept()
        assert read_request(kept, b"")[0].startswith(b"GET /one ")
        kept.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none")
        reader = H.HttpReader(c)
        assert reader.read().body == b"one"
        filler = socket.create_connection(ls.getsockname())   # the listen queue is full now
        time.sleep(0.1)
        c.sendall(b"GET /two HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_request(kept, b"")[0].startswith(b"GET /two ")
        kept.close()                          # closed under the request: it goes again
        time.sleep(0.3)
        c.shutdown(socket.SHUT_WR)            # the client is done sending
        time.sleep(0.6)
        ls.accept()[0].close()                # the filler; the retry's SYN comes again
        ls.settimeout(5)
        again, _ = ls.accept()
        assert read_request(again, b"")[0].startswith(b"GET /two ")
        again.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo")
        r = reader.read()
        assert (r.status, r.body, r.header("connection")) == (200, b"two", "close"), r
        c.settimeout(5)
        assert c.recv(1) == b""
        again.close()
        c.close()
    finally:
        if filler:
            filler.close()
        H.stop_all(gw)
        ls.close()
