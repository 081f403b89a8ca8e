"""Listeners: IPv6, the global connection cap (accepting pauses, the open
connections keep being served, accepting resumes), defer_accept, and
delayed_ack (and the backend side's merged handshake ACK)."""
import asyncio
import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import websockets

from harness import (Backend, Sluice, ThreadBackend, config, free_port, raw_connect, recv_until,
                     socket_option_in, status_of, stop_all, switching_protocols, tcp_info,
                     upgrade_request, ws_key_of, WS_KEY)
from test_deploy import Admin


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_listener_and_backend():
    backend = Backend("blue", host="::1")
    port = free_port("::1")
    s = Sluice(config(port, {"blue": [backend.addr]}, listen_host="::1"), port, host="::1")
    try:
        async def hello():
            async with websockets.connect(s.url, compression=None) as ws:
                return await asyncio.wait_for(ws.recv(), 5)
        assert asyncio.run(hello()) == "hello blue"
    finally:
        stop_all(s, backend)


def test_connection_cap_pauses_accepting_and_resumes():
    backend = Backend("blue")
    port, admin = free_port(), free_port()
    # The five held connections are silent: with defer_accept the kernel would
    # not hand them over, and they would not count against the cap.
    s = Sluice(config(port, {"blue": [backend.addr]}, workers=1, listener_extra="defer_accept: 0",
                      extra="limits: { max_connections: 5 }\nadmin: { address: 127.0.0.1:%d }"
                      % admin), port)
    held = []
    try:
        time.sleep(0.2)   # the start-up probe's connection is gone
        for _ in range(5):
            held.append(raw_connect(port))
        time.sleep(0.3)
        # The sixth connects (the kernel's backlog) but is not served while five are open...
        extra = raw_connect(port)
        extra.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        extra.settimeout(0.6)
        with pytest.raises(socket.timeout):
            extra.recv(100)
        # ...and the five are still served.
        held[0].sendall(b"GET /y HTTP/1.1\r\nHost: a\r\n\r\n")
        assert status_of(recv_until(held[0], b"hello blue")) == 200
        # One leaves: the sixth is accepted and answered.
        held.pop(0).close()
        extra.settimeout(5)
        assert status_of(recv_until(extra, b"hello blue")) == 200
        assert Admin(admin).metric("sluice_accept_pauses_total") >= 1
        extra.close()
    finally:
        for h in held:
            h.close()
        stop_all(s, backend)


@pytest.mark.parametrize("defer", ["1s", "0"])
def test_defer_accept_hands_over_a_connection_when_it_speaks(defer):
    """With defer_accept the kernel keeps a connection until its first bytes
    arrive: silent ones cost the gateway nothing until then, one that speaks
    is served at once, and a silent one is handed over when the period ends
    and meets the head timeout. With 0, every connection is accepted at once."""
    backend = Backend("blue")
    port, admin = free_port(), free_port()
    s = Sluice(config(port, {"blue": [backend.addr]}, workers=1,
                      listener_extra="defer_accept: %s" % defer,
                      extra="timeouts: { head: 1s }\nadmin: { address: 127.0.0.1:%d }" % admin),
               port)
    accepted = lambda: Admin(admin).metric("sluice_connections_accepted_total")
    silent, speaker = [], None
    try:
        time.sleep(0.2)   # the start-up probe has come and gone
        before = accepted()
        silent = [raw_connect(port) for _ in range(10)]
        speaker = raw_connect(port)
        time.sleep(0.4)
        assert accepted() - before == (0 if defer != "0" else 11)
        t0 = time.monotonic()
        speaker.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        assert status_of(recv_until(speaker, b"hello blue")) == 200
        assert time.monotonic() - t0 < 0.5
        assert accepted() - before == (1 if defer != "0" else 11)
        speaker.close()
        # The silent ones: handed over when the defer period ends (the kernel
        # then completes the handshake), then closed by the head timeout.
        for c in silent:
            c.settimeout(6)
            assert status_of(recv_until(c, b"\r\n\r\n", timeout=6)) == 408
        took = time.monotonic() - t0
        assert accepted() - before == 11
        assert (1.3 <= took <= 4.5) if defer != "0" else (0.4 <= took <= 1.5), took
    finally:
        for c in silent + [speaker]:
            if c:
                c.close()
        stop_all(s, backend)


def test_a_wake_up_accepts_what_waits_and_makes_no_accept_that_fails():
    """A listener's wake-up took connections until accept4 failed with
    EAGAIN: when clients come one at a time, as they mostly do, that was a
    second accept4 per connection, and on Linux a failed one allocates and
    frees a socket, a file and an inode (3.3 us here, against 0.2 us for
    asking the queue's length, which the listener now does once per
    wake-up). strace, attached to every thread of the running gateway,
    counts the calls: one accept4 per connection, none failing, over twenty
    clients that come one after another; and a burst of twelve at once is
    served whole."""
    backend = Backend("blue")
    port = free_port()
    s = Sluice(config(port, {"blue": [backend.addr]}, workers=1), port)
    trace, log = None, tempfile.NamedTemporaryFile(prefix="strace-", suffix=".txt", delete=False)
    try:
        time.sleep(0.2)   # the start-up probe has come and gone
        tids = os.listdir("/proc/%d/task" % s.pid)
        trace = subprocess.Popen(["strace", "-qq", "-e", "trace=accept4", "-o", log.name] +
                                 [a for t in tids for a in ("-p", t)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)   # attached
        for i in range(20):
            c = raw_connect(port)
            c.sendall(b"GET /one-%d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % i)
            assert status_of(recv_until(c, b"hello blue")) == 200
            c.close()
            time.sleep(0.02)
        burst = [raw_connect(port) for _ in range(12)]
        for i, c in enumerate(burst):
            c.sendall(b"GET /burst-%d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % i)
        for c in burst:
            assert status_of(recv_until(c, b"hello blue")) == 200
            c.close()
        time.sleep(0.2)
        trace.send_signal(signal.SIGINT)
        trace.wait(timeout=10)
        trace = None
        calls = [l for l in open(log.name) if "accept4(" in l]
        failed = [l for l in calls if "EAGAIN" in l]
        assert (len(calls) - len(failed), failed) == (32, []), calls
    finally:
        if trace is not None:
            trace.kill()
            trace.wait()
        os.unlink(log.name)
        stop_all(s, backend)


def segments_without_data(sock):
    """Segments this socket has received that carried no payload (the
    handshake's SYN or SYN-ACK, bare ACKs)."""
    info = tcp_info(sock)
    return info["segs_in"] - info["data_segs_in"]


def answer_delay_ms(sock):
    """How long after this socket last sent data it last received some, in
    ms (both times count back from now)."""
    info = tcp_info(sock)
    return info["last_data_sent"] - info["last_data_recv"]


def ack_delay_ms(sock):
    """How long after this socket last sent data its peer's ACK came, in ms
    (both times count back from now, so the reader's own timing does not
    matter)."""
    info = tcp_info(sock)
    return info["last_data_sent"] - info["last_ack_recv"]


class AckCountingBackend(ThreadBackend):
    """A backend in a thread (WebSocket upgrades and plain GETs). For each
    connection it keeps the socket and notes how many segments without data
    it had received once the request was in: 1 (the SYN) when the request
    carried the handshake's last ACK, 2 when that ACK came alone."""

    def __init__(self):
        self.served = []   # (kind, segments without data, socket)
        super().__init__(backlog=16, per_connection_thread=False)

    def handle(self, c):
        head = recv_until(c, b"\r\n\r\n")
        if not head:
            return
        bare = segments_without_data(c)
        key = ws_key_of(head)
        if key:
            c.sendall(switching_protocols(key))
        else:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        self.served.append(("upgrade" if key else "get", bare, c))


@pytest.mark.parametrize("delayed", [True, False])
def test_delayed_ack_lets_the_answer_carry_the_first_ack(delayed):
    """With delayed_ack (the default) the kernel does not acknowledge a
    client's request on its own: the ACK rides on the 101, so the client
    receives no bare ACK; with delayed_ack: false it receives one. Towards
    the backend, an upgrade's request carries the handshake's last ACK, and
    the backend's answer is then acknowledged at once, as on any fresh
    connection (a socket left delaying its ACKs would hold a backend that
    writes its 101 and first message apart, with Nagle on, for 40 ms)."""
    backend = AckCountingBackend()
    port = free_port()
    s = Sluice(config(port, {"blue": [backend.addr]}, workers=1,
                      listener_extra="delayed_ack: %s" % str(delayed).lower()), port)
    clients = []
    try:
        time.sleep(0.2)   # the start-up probe has come and gone
        # The kernel holds a delayed ACK for 40 ms at least; an answer slower
        # than that (a loaded machine) lets it go out alone, so up to twenty
        # tries for one answered well within it, timed by the client's kernel.
        for attempt in range(20):
            c = raw_connect(port)
            clients.append(c)
            c.sendall(upgrade_request(key=WS_KEY))
            assert status_of(recv_until(c, b"\r\n\r\n")) == 101
            if answer_delay_ms(c) < 30:
                break
        else:
            pytest.fail("no answer within 30 ms in twenty tries; cannot observe the ACK")
        # SYN-ACK only, or SYN-ACK and the bare ACK of the request.
        assert segments_without_data(c) == (1 if delayed else 2)
        plain = raw_connect(port)
        clients.append(plain)
        plain.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        assert recv_until(plain, b"ok").endswith(b"\r\n\r\nok")
        time.sleep(0.1)   # longer than any delayed ACK
        kinds = [k for k, _, _ in backend.served]
        assert kinds == ["upgrade"] * (len(clients) - 1) + ["get"], kinds
        assert all(bare == 1 for k, bare, _ in backend.served if k == "upgrade"), backend.served
        delays = [ack_delay_ms(conn) for _, _, conn in backend.served]
        assert all(d < 20 for d in delays), delays
    finally:
        for c in clients:
            c.close()
        stop_all(s)
        backend.close()


def test_client_and_backend_sockets_have_nodelay():
    """sluice forwards each message as it comes: both of a WebSocket's
    sockets have Nagle's algorithm off (the client's inherited from the
    listening socket, the backend's set when it is made)."""
    backend = AckCountingBackend()
    port = free_port()
    s = Sluice(config(port, {"blue": [backend.addr]}, workers=1), port)
    c = None
    try:
        c = raw_connect(port)
        c.sendall(upgrade_request(key=WS_KEY))
        assert status_of(recv_until(c, b"\r\n\r\n")) == 101
        host, bport = backend.addr.split(":")
        for peer in (c.getsockname(), (host, int(bport))):
            assert socket_option_in(s.pid, peer, socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1, peer
    finally:
        if c:
            c.close()
        stop_all(s)
        backend.close()
