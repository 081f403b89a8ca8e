"""Listeners: IPv6, the global connection cap (accepting pauses, the open
connections keep being served, accepting resumes), and defer_accept."""
import asyncio
import socket
import time

import pytest
import websockets

from harness import (Backend, Sluice, config, free_port, raw_connect, recv_until, status_of,
                     stop_all)
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
