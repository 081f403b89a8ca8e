"""The real binary when it runs out of something: file descriptors, its
connection cap. It must keep serving the clients it can, tell the others
clearly, not blame a backend for its own shortage, and recover when the
pressure goes.

The descriptor tests start sluice with RLIMIT_NOFILE at 64 and fill the rest
with idle clients (half a request head each), counted in /proc/PID/fd, so
the next descriptor the gateway needs is the one a test frees.
"""
import os
import resource
import signal
import socket
import struct
import subprocess
import tempfile
import time

import pytest

import harness as H

NOFILE = 64


class LowFdSluice(H.Proc):
    """sluice with at most NOFILE descriptors (set in the child before exec)."""

    def __init__(self, config, port):
        self.port = port
        self.cfg = tempfile.NamedTemporaryFile("w", prefix="sluice-", suffix=".yaml",
                                                 delete=False)
        self.cfg.write(config)
        self.cfg.close()
        self.log = tempfile.NamedTemporaryFile(prefix="sluice-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([H.SLUICE, "-c", self.cfg.name], stdout=subprocess.PIPE,
                                     stderr=self.log, stdin=subprocess.DEVNULL, text=True,
                                     preexec_fn=self._limit)
        self.pid = self.proc.pid
        H.wait_port("127.0.0.1", port, self.proc)

    @staticmethod
    def _limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def cpu_ticks(self):
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])


def fill_descriptors(gw, limit=NOFILE):
    """Idle clients until the gateway holds every descriptor it may have."""
    held = []
    for _ in range(2 * limit):
        n = gw.fds()
        if n >= limit:
            return held
        s = H.raw_connect(gw.port)
        s.sendall(b"GET / HTTP/1.1\r\n")   # handed over at once despite defer_accept
        held.append(s)
        H.wait_until(lambda: gw.fds() > n, timeout=2, step=0.01)
    assert gw.fds() >= limit, "the gateway holds %d descriptors" % gw.fds()
    return held


def get(port, timeout=H.T):
    s = H.raw_connect(port, timeout=timeout)
    s.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    return s


def test_health_checks_the_gateway_cannot_start_are_no_verdict():
    """Active checks every 100 ms with fall 1: while descriptors are out, a
    check cannot get a socket. That said nothing about the backend, yet it
    counted as a failed check, the backend went down, and the first clients
    after the shortage got 503 until enough checks passed again (rise 5)."""
    backend = H.Backend("blue")
    port = H.free_port()
    cfg = H.config(port, {"blue": [backend.addr]}, extra="log: { level: info }")
    cfg = cfg.replace("    backends:", "    health: { path: /healthz, interval: 100ms, timeout: 1s,"
                                        " fall: 1, rise: 5 }\n    backends:", 1)
    gw = LowFdSluice(cfg, port)
    held = []
    try:
        time.sleep(0.5)   # a few checks pass
        held = fill_descriptors(gw)
        time.sleep(1.0)   # ten checks come due, none can get a socket
        for s in held:
            s.close()
        held = []
        s = get(port)
        r = H.HttpReader(s, timeout=5).read()
        s.close()
        assert r.status == 200, r
        assert "-> down" not in gw.output(), gw.output()[-2000:]
    finally:
        for s in held:
            s.close()
        gw.stop()
        backend.stop()


@pytest.mark.parametrize("kind", ["http", "websocket"])
def test_backend_socket_shortage_is_503_not_the_backends_fault(kind):
    """Descriptors run out between a client's accept and its backend socket.
    The client gets 503 with a Retry-After at once; the backend is not
    counted failed (with passive_failures: 1 a count would eject it, and
    every client would get 503 for passive_eject after the shortage); the
    shortage is logged once, not at every 100 ms retry; the paused listener
    does not spin; and once descriptors are back, requests pass."""
    backend = H.Backend("blue")
    port, admin = H.free_port(), H.free_port()
    cfg = H.config(port, {"blue": [backend.addr]}, extra="admin: { address: 127.0.0.1:%d }" % admin)
    cfg = cfg.replace("    backends:", "    health: { passive_failures: 1, interval: 1h }\n"
                                        "    backends:", 1)
    gw = LowFdSluice(cfg, port)
    held, waiting = [], []
    try:
        held = fill_descriptors(gw)
        # The shortage lasts a while, a client waiting in the backlog: accept
        # keeps meeting EMFILE, retried every 100 ms. (A wake-up takes no more
        # than the queue holds, so nobody waiting means no accept to fail.)
        first = H.raw_connect(port, timeout=5)
        # An upgrade connects its own way (upstream.c connect_now).
        first.sendall(H.upgrade_request() if kind == "websocket"
                      else b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        c0 = gw.cpu_ticks()
        time.sleep(1.5)
        busy = gw.cpu_ticks() - c0
        assert busy < 0.5 * os.sysconf("SC_CLK_TCK"), "%d ticks paused" % busy
        # Two clients wait in the backlog; one descriptor frees up: the first
        # is accepted and its backend socket is the one that fails.
        waiting = [first, get(port, timeout=5)]
        time.sleep(0.2)
        held.pop(0).close()
        r = H.HttpReader(waiting[0], timeout=5).read()
        assert r.status == 503, r
        assert r.header("retry-after") == "1", r
        # Descriptors back: the one still waiting and a new one pass.
        for s in held:
            s.close()
        held = []
        assert H.HttpReader(waiting[1], timeout=5).read().status == 200
        time.sleep(1.2)   # a quiet second ends the shortage, in the log at the next accept
        s = get(port)
        assert H.HttpReader(s).read().status == 200
        s.close()
        m = H.scrape(admin)
        assert H.metric(m, "sluice_pool_backend_up", pool="blue", backend=backend.addr) == 1
        assert H.metric(m, "sluice_pool_backend_connect_failures_total", pool="blue",
                        backend=backend.addr) == 0
        assert H.metric(m, "sluice_accept_emfile_pauses_total") >= 5
        log = gw.output()
        assert "connect failed" not in log, log[-2000:]
        shortage = [line for line in log.splitlines() if "too many open files" in line]
        assert 1 <= len(shortage) <= 2, "\n".join(shortage[:20])
        over = [line for line in log.splitlines() if "descriptors available again" in line]
        assert len(over) == 1 and " ms short" in over[0], over
        assert int(over[0].split(" after ")[1].split()[0]) < 60000, over
    finally:
        for s in held + waiting:
            s.close()
        H.stop_all(gw, backend)


def capped_gateway(backend, max_connections, workers=1):
    """sluice at a connection cap, kept-alive clients idle for up to 30 s."""
    port = H.free_port()
    return H.Sluice(H.config(port, {"blue": [backend.addr]}, workers=workers,
                             extra="limits: { max_connections: %d }\n"
                                   "timeouts: { keepalive: 30s }" % max_connections), port)


def test_idle_keepalive_clients_give_way_at_the_connection_cap():
    """At max_connections, kept-alive clients idle between requests are
    closed, the longest idle first, for a client waiting with a request:
    before, it waited in the backlog for the keepalive timeout (60 s by
    default, 30 s here)."""
    backend = H.Backend("blue")
    gw = capped_gateway(backend, 3)
    port = gw.port
    idle = []
    try:
        time.sleep(0.2)   # the start-up probe's connection is gone
        for _ in range(3):
            s = get(port)
            assert H.HttpReader(s).read().status == 200
            idle.append(s)
            time.sleep(0.05)
        late = get(port, timeout=5)
        t0 = time.monotonic()
        assert H.HttpReader(late).read().status == 200
        assert time.monotonic() - t0 < 3
        late.close()
        # The longest idle gave way; it sees the gateway's close (EOF).
        assert H.recv_all(idle[0], timeout=2) == b""
    finally:
        for s in idle:
            s.close()
        H.stop_all(gw, backend)


def test_idle_keepalive_clients_of_another_worker_give_way_at_the_cap():
    """The cap is the process's, but the kernel hands a waiting client to
    one worker's listener (SO_REUSEPORT), and that worker had only its own
    idle clients to close: a client that landed on the other worker waited
    for the keepalive timeout. One place, two workers; the idle client and
    the late one come from fresh source ports each round, so about half the
    rounds put them on different workers (1 in 256 that eight rounds never
    do, and the old code passes)."""
    backend = H.Backend("blue")
    gw = capped_gateway(backend, 1, workers=2)
    port = gw.port
    open_ = []
    try:
        time.sleep(0.2)   # the start-up probe's connection is gone
        for round_ in range(8):
            idle = get(port)
            open_.append(idle)
            assert H.HttpReader(idle).read().status == 200
            late = get(port, timeout=5)
            open_.append(late)
            t0 = time.monotonic()
            assert H.HttpReader(late, timeout=5).read().status == 200, round_
            assert time.monotonic() - t0 < 3, round_
            assert H.recv_all(idle, timeout=2) == b"", round_   # it gave way
            for s in (idle, late):
                s.close()
    finally:
        for s in open_:
            s.close()
        H.stop_all(gw, backend)


class EarlyAnswerBackend(H.ThreadBackend):
    """Answers an upload before its end with a big 413 and Connection: close,
    then shuts its side and drains what comes for a while, as a careful
    server does."""

    BODY = 2 << 20

    def handle(self, c):
        if b"\r\n\r\n" not in H.recv_until(c, b"\r\n\r\n"):
            return
        c.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: %d\r\n"
                  b"Connection: close\r\n\r\n" % self.BODY + b"z" * self.BODY)
        c.shutdown(socket.SHUT_WR)
        c.settimeout(0.5)
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            try:
                if not c.recv(65536):
                    break
            except socket.timeout:
                pass
            except OSError:
                break
        c.close()


def test_early_answer_to_an_upload_reaches_the_client_whole(tmp_path):
    """The backend answers an upload early (a 2 MiB 413) and closes; the
    client reads only after sending for a while. The whole answer must reach
    it: before, the gateway closed the client at the backend's EOF, with the
    upload unread (a reset) and the answer still queued, and the client got
    about 100 KiB of it and ECONNRESET. The exchange is in the access log."""
    backend = EarlyAnswerBackend()
    port = H.free_port()
    log = str(tmp_path / "access.log")
    gw = H.Sluice(H.config(port, {"blue": [backend.addr]},
                           extra="access_log: { path: %s }" % log), port)
    try:
        c = H.raw_connect(port)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.sendall(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 100000000\r\n\r\n")
        c.settimeout(0.2)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                c.send(b"x" * 65536)
            except socket.timeout:
                pass
            except OSError:
                break   # the gateway's lingering read ended: it is done with us
            time.sleep(0.005)
        r = H.HttpReader(c, timeout=10).read()
        assert r.status == 413
        assert len(r.body) == EarlyAnswerBackend.BODY
        c.close()
        assert H.wait_until(lambda: os.path.exists(log) and " 413 " in open(log).read(), 5), \
            open(log).read() if os.path.exists(log) else "no access log"
    finally:
        H.stop_all(gw, backend)


def test_an_upload_queued_for_admission_is_served_whole():
    """A POST with a 200 KB body waits in an HTTP route's admission queue.
    The gateway reads on while it waits (to see a client that gives up), so
    a block of body arrives on top of the one that came with the head: it
    must wait with it, and the request be served whole once admitted.
    Before, that block did not fit the head buffer and the client was
    closed without an answer."""
    backend = H.Backend("blue")
    port = H.free_port()
    text = H.config(port, {"blue": [backend.addr]},
                    service_extra="admission: { rate: 2/s, burst: 1, slow_start: 0, "
                                  "queue: { length: 10, max_wait: 10s } }")
    text = text.replace("path_prefix: / }", "path_prefix: /, admission: true }")
    gw = H.Sluice(text, port)
    try:
        c = H.raw_connect(port)
        reader = H.HttpReader(c)
        c.sendall(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")   # takes the one token
        assert reader.read().status == 200
        body = b"x" * 200000
        c.sendall(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        r = reader.read(timeout=8)
        assert (r.status, r.header("x-body-bytes")) == (200, "200000"), r
        c.close()
    finally:
        H.stop_all(gw, backend)


def test_a_big_first_message_right_behind_the_upgrade_is_relayed():
    """A client sends a 100 KB message right behind its upgrade request,
    before the 101. Frames sent early wait with the head; the second read
    block of them did not fit (the head buffer held a head plus one block)
    and the client was reset. It must be relayed (the backend echoes it)."""
    backend = H.Backend("blue")
    port = H.free_port()
    gw = H.Sluice(H.config(port, {"blue": [backend.addr]}), port)
    ws = None
    try:
        ws = H.WsConn(port, request=H.upgrade_request() + H.ws_frame(2, b"q" * 100000))
        assert ws.status == 101
        assert ws.read_message(timeout=5) == (1, b"hello blue")
        assert ws.read_message(timeout=5) == (2, b"q" * 100000)
        ws.send(H.ws_frame(8, H.close_payload(1000)))
        _, close = ws.read_until_close(timeout=5)
        assert close.close_code == 1000
    finally:
        if ws:
            ws.close()
        H.stop_all(gw, backend)


class ResetMidBodyBackend(H.ThreadBackend):
    """Answers with a body that ends with the connection (no length, not
    chunked), sends part of it, then resets the connection."""

    def handle(self, c):
        if b"\r\n\r\n" not in H.recv_until(c, b"\r\n\r\n"):
            return
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"y" * 50000)
        time.sleep(0.3)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()


def test_a_reset_mid_body_is_not_passed_off_as_the_end():
    """A backend resets mid-way through a body that ends with the
    connection. The client must learn that the body was cut short: the
    gateway resets it too. Before, it closed in order, and for such a body
    an orderly close says the body is complete."""
    backend = ResetMidBodyBackend()
    port = H.free_port()
    gw = H.Sluice(H.config(port, {"blue": [backend.addr]}), port)
    try:
        c = H.raw_connect(port, timeout=5)
        c.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        data, end = b"", None
        while end is None:
            try:
                d = c.recv(65536)
            except ConnectionResetError:
                end = "reset"
                break
            if not d:
                end = "orderly close"
            data += d
        assert H.status_of(data) == 200, data[:200]
        assert end == "reset", "%s after %d bytes" % (end, len(data))
        c.close()
    finally:
        H.stop_all(gw, backend)


class BigAnswerBackend(H.ThreadBackend):
    """Answers every GET on a kept-alive connection with BODY bytes."""

    BODY = 4 << 20

    def handle(self, c):
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                try:
                    d = c.recv(65536)
                except OSError:
                    return
                if not d:
                    return
                buf += d
            buf = buf.split(b"\r\n\r\n", 1)[1]
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % self.BODY +
                      b"b" * self.BODY)


def test_a_slow_reader_gets_the_whole_answer_before_the_keepalive_clock_starts():
    """The gateway has the whole 4 MiB answer from the backend (its write
    queue may hold that much here), most of it still queued for a client that
    reads nothing for 2.5 s: longer than the 1 s keepalive timeout. The
    keepalive clock started when the backend's answer ended, and its timeout
    closed the connection with the tail still queued: the client got part of
    the body, then the end. Now the clock starts when the answer has all gone:
    the client gets every byte, the connection takes another request, and it
    is closed only after 1 s of real idleness."""
    backend = BigAnswerBackend()
    port = H.free_port()
    gw = H.Sluice(H.config(port, {"blue": [backend.addr]},
                           extra="timeouts: { keepalive: 1s }\n"
                                 "limits: { write_high_water: 16MiB, write_low_water: 1MiB }"),
                  port)
    try:
        c = H.raw_connect(port, timeout=10)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        time.sleep(2.5)
        reader = H.HttpReader(c, timeout=10)
        r = reader.read()
        assert (r.status, len(r.body)) == (200, BigAnswerBackend.BODY)
        c.sendall(b"GET /again HTTP/1.1\r\nHost: a\r\n\r\n")
        r = reader.read()
        assert (r.status, len(r.body)) == (200, BigAnswerBackend.BODY)
        t0 = time.monotonic()
        c.settimeout(5)
        assert c.recv(1) == b"", "the idle kept-alive connection was not closed"
        assert 0.7 < time.monotonic() - t0 < 3
        c.close()
    finally:
        H.stop_all(gw, backend)


class EndlessBody(H.ThreadBackend):
    """Answers with a 256 MiB body, written as fast as it is taken."""

    def handle(self, conn):
        H.recv_until(conn, b"\r\n\r\n")
        try:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (256 << 20))
            chunk = b"b" * 65536
            for _ in range(4096):
                conn.sendall(chunk)
        except OSError:
            pass


def read_steadily(sock, rate, seconds):
    """Read about `rate` bytes a second for `seconds`: the bytes read, and
    whether the connection ended."""
    got, t0 = 0, time.monotonic()
    sock.settimeout(0.1)
    while time.monotonic() - t0 < seconds:
        try:
            d = sock.recv(rate // 10)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return got, True
        if not d:
            return got, True
        got += len(d)
        time.sleep(0.1)
    return got, False


def test_a_client_reading_a_long_answer_slowly_is_not_idle():
    """idle is "no bytes either way". A client reading a long body at
    48 KiB/s: the backend is not read while its queue drains (backpressure),
    and the kernel wakes a writer only when a third of the socket buffer is
    free, so nothing moved as sluice counted it, and the exchange was cut
    at the idle timeout (1 s here) while the client read."""
    backend = EndlessBody()
    port, admin = H.free_port(), H.free_port()
    gw = H.Sluice(H.config(port, {"blue": [backend.addr]},
                           extra="timeouts: { idle: 1s }\nadmin: { address: 127.0.0.1:%d }"
                                 % admin), port)
    try:
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.connect(("127.0.0.1", port))
        c.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        got, ended = read_steadily(c, 48 * 1024, 4)
        assert not ended and got > 100000, got
        assert H.metric(H.scrape(admin), "sluice_idle_timeouts_total") == 0
        c.close()
    finally:
        H.stop_all(gw, backend)


def test_sigterm_lets_a_slow_reader_take_the_rest_of_its_answer():
    """An exchange has ended but its answer is still queued for a slow
    reader when SIGTERM comes: the connection was closed with the rest of
    the answer queued (the client got a third of an 8 MiB body, then the
    end). It goes out first, then the FIN."""
    backend = BigAnswerBackend()
    port = H.free_port()
    gw = H.Sluice(H.config(port, {"blue": [backend.addr]},
                           extra="limits: { write_high_water: 16MiB, write_low_water: 1MiB }"),
                  port)
    try:
        c = H.raw_connect(port, timeout=10)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        time.sleep(1.0)   # the answer is all read from the backend, most of it queued
        gw.proc.send_signal(signal.SIGTERM)
        r = H.HttpReader(c, timeout=20).read()
        assert (r.status, len(r.body)) == (200, BigAnswerBackend.BODY)
        assert gw.proc.wait(timeout=20) == 0
        c.close()
    finally:
        H.stop_all(gw, backend)


# ---- local ports: a network namespace of the test's own ----

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


class OwnNetns:
    """The test thread (and every process it starts) in a new network
    namespace with loopback up, so the test can narrow the local port range
    (a per-namespace sysctl) without touching the machine's. Back in the
    original namespace on exit; the new one goes with its last process."""

    def __enter__(self):
        import ctypes
        import fcntl
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        if self.libc.unshare(CLONE_NEWNET) != 0:
            os.close(self.orig)
            pytest.skip("unshare(CLONE_NEWNET): %s" % os.strerror(ctypes.get_errno()))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            req = struct.pack("16sH14x", b"lo", 0)
            flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
            fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
        return self

    def port_range(self, low, high):
        with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as f:
            f.write("%d %d\n" % (low, high))

    def __exit__(self, *exc):
        self.libc.setns(self.orig, CLONE_NEWNET)
        os.close(self.orig)


def test_no_local_port_to_a_backend_is_503_not_the_backends_fault():
    """connect(2) to a backend fails with EADDRNOTAVAIL once every local port
    toward it is taken. That is the gateway's shortage, not the backend's:
    the next backend of the pool (another destination, ports of its own) is
    tried, and when none has a port left the client gets 503 with a
    Retry-After; no backend is counted failed or ejected (passive_failures:
    1 would eject it at the first count), and the log says why, once."""
    if os.geteuid() != 0:
        pytest.skip("a network namespace of its own needs root")
    with OwnNetns() as ns:
        blue1, blue2 = H.Backend("blue1"), H.Backend("blue2")
        port, admin = H.free_port(), H.free_port()
        cfg = H.config(port, {"blue": [blue1.addr, blue2.addr]},
                       extra="admin: { address: 127.0.0.1:%d }" % admin)
        cfg = cfg.replace("    backends:", "    health: { passive_failures: 1, interval: 1h }\n"
                                            "    backends:", 1)
        gw = H.Sluice(cfg, port)
        held = []
        try:
            # Two local ports, never used before here (the default range
            # ends at 60999): two connections toward each backend, at most.
            ns.port_range(61000, 61001)
            # Clients bind ports below the range: a port bound by bind(2) is
            # one connect(2) will not share, and the gateway would be short
            # of it.
            for i in range(4):
                c = H.WsConn(port, local_addr=("127.0.0.2", 5000 + i), timeout=5)
                assert c.status == 101, c.response
                held.append(c)
            extra = H.WsConn(port, local_addr=("127.0.0.2", 5004), timeout=5)
            held.append(extra)
            assert extra.status == 503, extra.response
            assert b"\r\nRetry-After: 1\r\n" in extra.response, extra.response
            s = socket.create_connection(("127.0.0.1", port), timeout=5,
                                         source_address=("127.0.0.2", 5005))
            held.append(s)
            s.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
            r = H.HttpReader(s, timeout=5).read()
            assert r.status == 503 and r.header("retry-after") == "1", r
            # The four held WebSockets relay as before.
            for c in held[:4]:
                assert c.read_message()[1].startswith(b"hello blue")
                c.send(H.ws_frame(0x1, b"still here"))
                assert c.read_message() == (1, b"still here")
            m = H.scrape(admin)
            for b in (blue1, blue2):
                assert H.metric(m, "sluice_pool_backend_up", pool="blue", backend=b.addr) == 1
                assert H.metric(m, "sluice_pool_backend_connect_failures_total", pool="blue",
                                backend=b.addr) == 0
            # Each of the two clients turned away tried both backends.
            assert H.metric(m, "sluice_backend_port_shortages_total") == 4
            assert H.metric(m, "sluice_backend_connect_failures_total") == 0
            log = gw.output()
            assert "connect failed" not in log, log[-2000:]
            said = [line for line in log.splitlines() if "no local port left" in line]
            assert len(said) == 1, log[-2000:]
        finally:
            for c in held:
                c.close()
            H.stop_all(gw, blue1, blue2)
