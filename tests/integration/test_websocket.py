"""The WebSocket path of the proxy core, against the real sluice binary.

Each test starts (or shares, per module) a real gateway and real backends on
loopback: the C backend simulator, or a helper from servers/ when the test
needs a backend that negotiates or misbehaves. Clients are websockets 10.4,
or raw sockets (harness.WsConn) for what a library would not send; server
frames are parsed from the raw bytes, so close codes are checked exactly.
"""
import asyncio
import http.client
import json
import os
import signal
import socket
import struct
import threading
import time

import pytest
import websockets

import harness as H


def backend_stats(b):
    conn = http.client.HTTPConnection(b.host, b.port, timeout=H.T)
    try:
        conn.request("GET", "/stats")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


class Gateway:
    """A gateway in front of one backend; stopped (and checked alive) at the end."""

    def __init__(self, backend, extra="", service_extra=""):
        self.backend = backend
        self.port = H.free_port()
        self.sluice = H.Sluice(H.config(self.port, {"blue": [backend.addr]}, extra=extra,
                                        service_extra=service_extra), port=self.port)
        self.url = self.sluice.url

    def stop(self):
        alive = self.sluice.alive()
        try:
            rc = self.sluice.stop()
        finally:
            self.backend.stop()   # even when sluice did not stop in time
        assert alive, "sluice died during the test:\n" + self.sluice.output()[-3000:]
        assert rc == 0, "sluice exited %s:\n%s" % (rc, self.sluice.output()[-3000:])


@pytest.fixture(scope="module")
def gw():
    g = Gateway(H.Backend("blue"))
    yield g
    g.stop()


def connect(url, **kw):
    return websockets.connect(url, compression=kw.pop("compression", None), max_size=None,
                              open_timeout=H.T, close_timeout=H.T, **kw)


# ---- hello and echo ----

def test_hello_arrives_first(gw):
    async def go():
        async with connect(gw.url) as ws:
            assert await asyncio.wait_for(ws.recv(), H.T) == "hello blue"
    H.run(go())


def text_of(n):
    """A text of exactly n UTF-8 bytes, with 2-byte characters in it."""
    return "\u00e9" * (n // 2) + "a" * (n % 2)


SIZES = [0, 125, 126, 65535, 65536]


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_echo_is_byte_exact_at_length_edges(gw, kind):
    async def go():
        async with connect(gw.url) as ws:
            assert await asyncio.wait_for(ws.recv(), H.T) == "hello blue"
            for n in SIZES:
                msg = text_of(n) if kind == "text" else os.urandom(n)
                await ws.send(msg)
                back = await asyncio.wait_for(ws.recv(), H.T)
                assert type(back) is type(msg), "size %d: type changed" % n
                assert back == msg, "size %d: echo differs" % n
                if kind == "text":
                    assert len(back.encode()) == n
    H.run(go())


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_echo_16mib(gw, kind):
    n = 16 << 20
    msg = text_of(n) if kind == "text" else os.urandom(n)

    async def go():
        async with connect(gw.url) as ws:
            await asyncio.wait_for(ws.recv(), H.T)
            await ws.send(msg)
            back = await asyncio.wait_for(ws.recv(), 30)
            assert type(back) is type(msg)
            assert len(back) == len(msg) and back == msg
    H.run(go(), timeout=45)


def test_fragments_with_interleaved_pings(gw):
    ws = H.WsConn(gw.port)
    try:
        assert ws.status == 101, ws.response
        op, hello = ws.read_message()
        assert (op, hello) == (1, b"hello blue")
        ws.send(H.ws_frame(1, b"Hello, ", fin=False))
        ws.send(H.ws_frame(9, b"p1"))
        ws.send(H.ws_frame(0, "w\u00f6r".encode(), fin=False))
        ws.send(H.ws_frame(9, b"p2"))
        ws.send(H.ws_frame(0, b"ld", fin=True))
        frames = [ws.read_frame() for _ in range(5)]
        assert not any(f.masked for f in frames), frames
        pongs = [f.payload for f in frames if f.opcode == 10]
        assert pongs == [b"p1", b"p2"], frames
        data = [f for f in frames if f.opcode in (0, 1)]
        assert [f.opcode for f in data] == [1, 0, 0]
        assert [f.fin for f in data] == [False, False, True]
        assert b"".join(f.payload for f in data) == "Hello, w\u00f6rld".encode()
        # The connection still works, and a clean close is answered in kind.
        ws.send(H.ws_frame(2, b"\x00\x01\x02"))
        assert ws.read_message() == (2, b"\x00\x01\x02")
        ws.send(H.ws_frame(8, H.close_payload(1000, b"bye")))
        _, close = ws.read_until_close()
        assert close.close_code == 1000
        assert ws.wait_eof(5)
    finally:
        ws.close()


# ---- negotiation passed through ----

def test_subprotocol_chosen_by_backend_reaches_client():
    g = Gateway(H.PyServer("ws_proto.py"))
    try:
        async def go():
            async with connect(g.url, subprotocols=["chat.v1", "chat.v2"]) as ws:
                assert ws.subprotocol == "chat.v2"
                assert await asyncio.wait_for(ws.recv(), H.T) == "proto=chat.v2 ext=none"
                await ws.send("ping me")
                assert await asyncio.wait_for(ws.recv(), H.T) == "ping me"
        H.run(go())
        # And the raw bytes: the 101 carries the backend's choice.
        req = H.upgrade_request(extra="Sec-WebSocket-Protocol: chat.v1\r\n")
        raw = H.WsConn(g.port, request=req)
        try:
            assert raw.status == 101
            head = raw.response.decode()
            assert "\r\nSec-WebSocket-Protocol: chat.v1\r\n" in head, head
            assert "\r\nSec-WebSocket-Accept: %s\r\n" % H.ws_accept(H.WS_KEY) in head, head
        finally:
            raw.close()
    finally:
        g.stop()


def test_permessage_deflate_negotiated_and_compressed_frames_pass():
    g = Gateway(H.PyServer("ws_proto.py", "--deflate"))
    try:
        async def go():
            async with connect(g.url, compression="deflate") as ws:
                assert [e.name for e in ws.extensions] == ["permessage-deflate"]
                assert await asyncio.wait_for(ws.recv(), H.T) == \
                    "proto=none ext=permessage-deflate"
                text = "compress me " * 10000
                await ws.send(text)
                assert await asyncio.wait_for(ws.recv(), H.T) == text
                blob = bytes(range(256)) * 400
                await ws.send(blob)
                assert await asyncio.wait_for(ws.recv(), H.T) == blob
        H.run(go())
    finally:
        g.stop()


# ---- the backend's answer ----

@pytest.fixture(scope="module")
def refusing():
    """A gateway in front of a backend that refuses upgrades with X-Backend-Status."""
    g = Gateway(H.PyServer("ws_raw.py", "--mode", "masked"))
    yield g
    g.stop()


@pytest.mark.parametrize("status", [401, 403, 500])
def test_non_101_answer_reaches_client_as_is(refusing, status):
    req = H.upgrade_request(extra="X-Backend-Status: %d\r\n" % status)
    resp = H.exchange(refusing.port, req, timeout=5)
    assert H.status_of(resp) == status, resp
    head, _, body = resp.partition(b"\r\n\r\n")
    assert b"\r\nX-Backend: pyraw\r\n" in head, head   # the backend's answer, not ours
    assert b"\r\nSet-Cookie: a=b\r\n" in head, head
    assert b"Upgrade:" not in head
    assert body == b"%d refused by pyraw\n" % status, body


def test_backend_101_with_wrong_accept_gives_502():
    g = Gateway(H.PyServer("ws_raw.py", "--mode", "bad-accept"))
    try:
        resp = H.exchange(g.port, H.upgrade_request(), timeout=5)
        assert H.status_of(resp) == 502, resp
        assert b"Sec-WebSocket-Accept" not in resp
    finally:
        g.stop()


@pytest.mark.parametrize("when", ["with-the-request", "while-the-backend-answers"])
def test_frames_sent_before_the_101_reach_the_backend_after_it(when):
    """A client may send frames right behind its upgrade request. They wait
    in the gateway while the backend takes 0.4 s to answer, and reach it after
    its 101, in order, as the client sent them."""
    g = Gateway(H.PyServer("ws_raw.py", "--mode", "slow-101", "--pause", "0.4"))
    try:
        frame = H.ws_frame(1, b"early bird")
        if when == "with-the-request":
            c = H.WsConn(g.port, request=H.upgrade_request() + frame)
        else:
            c = H.WsConn(g.port, early=frame, early_after=0.1)
        assert c.status == 101, c.response
        assert c.read_message() == (1, b"hello")
        assert c.read_message() == (1, b"got early bird")
        c.close()
    finally:
        g.stop()


def test_client_that_hangs_up_after_its_close_still_closes_the_backend_cleanly(gw):
    """A client sends its close frame and shuts its sending side at once. The
    close reaches the backend; the backend's reply still reaches the client,
    whose receiving side is open; then the gateway ends the connection."""
    c = H.WsConn(gw.port)
    assert c.read_message() == (1, b"hello blue")
    before = backend_stats(gw.backend)
    c.send(H.ws_frame(8, H.close_payload(1000, b"bye")))
    c.sock.shutdown(socket.SHUT_WR)
    seen, close = c.read_until_close()
    assert seen == [] and close.close_code == 1000, (seen, close)
    assert c.wait_eof(), "the gateway kept the connection open"
    c.close()
    # The reply was the backend's (the gateway says 1000 only by relaying
    # it); and the backend's connection is gone too.
    deadline = time.monotonic() + H.T
    while backend_stats(gw.backend)["open"] != before["open"] - 1:
        assert time.monotonic() < deadline, backend_stats(gw.backend)
        time.sleep(0.05)


def test_backend_close_code_reaches_client():
    g = Gateway(H.Backend("blue", "--close-after-hello", "4001"))
    try:
        ws = H.WsConn(g.port)
        assert ws.status == 101
        seen, close = ws.read_until_close()
        assert [f.payload for f in seen] == [b"hello blue"]
        assert close.close_code == 4001 and not close.masked
        ws.send(H.ws_frame(8, H.close_payload(4001)))
        assert ws.wait_eof(5)
        ws.close()

        async def go():   # the same through the library
            async with connect(g.url) as c:
                assert await asyncio.wait_for(c.recv(), H.T) == "hello blue"
                with pytest.raises(websockets.ConnectionClosed) as e:
                    await asyncio.wait_for(c.recv(), H.T)
                assert e.value.rcvd.code == 4001
        H.run(go())
    finally:
        g.stop()


@pytest.mark.parametrize("mode,pause", [("masked", "0.3"), ("opcode3", "0.3"), ("rsv", "0.3"),
                                        ("masked", "0")])
def test_invalid_backend_frame_gives_client_1014(mode, pause):
    """pause 0: the hello and the bad frame come right behind the 101, likely in
    one read; the hello is a whole valid frame and must still be delivered."""
    g = Gateway(H.PyServer("ws_raw.py", "--mode", mode, "--pause", pause))
    try:
        ws = H.WsConn(g.port)
        try:
            assert ws.status == 101, ws.response
            seen, close = ws.read_until_close()
            assert [f.payload for f in seen] == [b"hello"]   # the good frame before it arrives
            assert close.close_code == 1014, close
            assert b"bad" not in close.payload
            assert ws.wait_eof(5)
        finally:
            ws.close()
    finally:
        g.stop()


@pytest.mark.parametrize("bad,code", [(H.ws_frame(1, b"bad", mask=False), 1002),
                                      (H.ws_frame(1, b"\xff"), 1007)])
def test_client_error_mid_backend_frame_gets_its_close_after_that_frame(bad, code):
    """The client breaks the protocol while half of a backend frame has been
    relayed to it: a close now would land inside that frame, so the gateway
    finishes relaying it (the backend sends the rest once told to close),
    then sends the client its close code, then ends the connection. That
    frame counts as relayed, like every other (it went uncounted)."""
    admin = H.free_port()
    g = Gateway(H.PyServer("ws_raw.py", "--mode", "split-frame"),
                extra="admin: { address: 127.0.0.1:%d }" % admin)
    try:
        ws = H.WsConn(g.port)
        try:
            assert ws.status == 101, ws.response
            assert ws.read_message() == (1, b"hello")
            # The first half of the frame is through the gateway.
            deadline = time.monotonic() + H.T
            while len(ws.buf) < 1004:
                assert time.monotonic() < deadline, len(ws.buf)
                chunk = ws.sock.recv(65536)
                assert chunk, "the gateway hung up"
                ws.buf += chunk
            ws.send(bad)
            seen, close = ws.read_until_close()
            assert [(f.opcode, f.payload) for f in seen] == [(2, b"s" * 2000)], seen
            assert close.close_code == code, close
            assert ws.wait_eof(5)
        finally:
            ws.close()
        m = H.scrape(admin)
        # The hello and the split frame.
        assert H.metric(m, "sluice_ws_frames_backend_to_client_total") == 2
        assert H.metric(m, "sluice_ws_messages_backend_to_client_total") == 2
    finally:
        g.stop()


def test_backend_reset_while_its_reading_is_paused_still_ends_the_session():
    """The client does not read, so the gateway stops reading the backend
    (backpressure); the backend then resets. The client's next frame fails
    to reach the backend. The gateway used to let the backend socket go at
    that failed write, and with it the reset its paused read side had not
    reported: once the client read again the session waited out its idle
    timeout. Now the read side reports the end, and the client gets the
    backend's frames and then the close, at once."""
    g = Gateway(H.PyServer("ws_raw.py", "--mode", "flood-reset"), extra="timeouts: { idle: 60s }")
    try:
        ws = H.WsConn(g.port)
        try:
            assert ws.status == 101, ws.response
            time.sleep(2)   # the flood fills every buffer; the backend resets
            ws.send(H.ws_frame(2, b"x" * 1000))
            time.sleep(0.5)
            t0 = time.monotonic()
            ws.sock.settimeout(10)
            got = len(ws.buf)
            while True:
                chunk = ws.sock.recv(1 << 20)
                if not chunk:
                    break
                got += len(chunk)
            took = time.monotonic() - t0
            assert got > 1 << 20, got   # the flood that was in the buffers arrived
            assert took < 5, took
        finally:
            ws.close()
    finally:
        g.stop()


def test_a_client_unheard_because_the_backend_stalls_is_not_closed_as_gone():
    """The backend stops reading for 4 s; the client's bytes back up until the
    gateway stops reading the client too (backpressure). Its pong could not
    be heard then, so the ping clock must stop: before, the gateway closed
    this live client with 1001 "ping timeout" after ping_interval +
    ping_timeout (2 s here)."""
    g = Gateway(H.PyServer("ws_raw.py", "--mode", "stall-read", "--pause", "4"),
                extra="timeouts: { ping_interval: 1s, ping_timeout: 1s }")
    try:
        ws = H.WsConn(g.port)
        try:
            assert ws.read_message() == (1, b"hello")
            t0 = time.monotonic()
            # Fill every buffer between the client and the stalled backend.
            out = H.ws_frame(2, b"z" * 65536) * 256
            ws.sock.setblocking(False)
            blocked_since = None
            while out and time.monotonic() - t0 < 3:
                try:
                    out = out[ws.sock.send(out):]
                    blocked_since = None
                except BlockingIOError:
                    blocked_since = blocked_since or time.monotonic()
                    if time.monotonic() - blocked_since > 0.3:
                        break
                    time.sleep(0.01)
            assert out, "16 MiB went through a backend that does not read"
            # Until just after the backend reads again, nothing but pings may come.
            frames = []
            while time.monotonic() - t0 < 4.3:
                try:
                    chunk = ws.sock.recv(65536)
                except BlockingIOError:
                    time.sleep(0.02)
                    continue
                assert chunk, "the gateway hung up on a live client"
                ws.buf += chunk
                while len(ws.buf) >= 2 and len(ws.buf) >= 2 + (ws.buf[1] & 0x7F):
                    f = ws.read_frame()
                    frames.append((f.opcode, f.payload[:2]))
            assert all(op == 9 for op, _ in frames), frames
        finally:
            ws.close()
    finally:
        g.stop()


def test_backend_killed_mid_stream_gives_client_1014():
    g = Gateway(H.Backend("blue"))
    try:
        ws = H.WsConn(g.port)
        assert ws.read_message() == (1, b"hello blue")
        for i in range(3):
            ws.send(H.ws_frame(1, b"msg %d" % i))
            assert ws.read_message() == (1, b"msg %d" % i)
        g.backend.proc.send_signal(signal.SIGKILL)
        g.backend.proc.wait(H.T)
        t0 = time.monotonic()
        _, close = ws.read_until_close(timeout=5)
        assert close.close_code == 1014
        assert time.monotonic() - t0 < 2
        ws.close()
    finally:
        g.stop()


def test_backend_killed_mid_frame_ends_the_client_connection():
    """Killed while a 64 KiB frame is half relayed, no close frame can be put
    in the stream; the client must still see the connection end, promptly,
    and every frame it did get whole must be the backend's bytes."""
    g = Gateway(H.Backend("blue", "--send", "64M"))
    try:
        ws = H.WsConn(g.port)
        try:
            assert ws.read_message() == (1, b"hello blue")
            got = 0
            while got < (1 << 20):
                f = ws.read_frame()
                assert f.opcode == 2 and f.payload == bytes(range(256)) * 256
                got += len(f.payload)
            g.backend.proc.send_signal(signal.SIGKILL)
            g.backend.proc.wait(H.T)
            t0 = time.monotonic()
            ended = None
            while ended is None and time.monotonic() - t0 < 5:
                try:
                    f = ws.read_frame(timeout=5)
                except EOFError:
                    ended = "eof"
                    break
                if f.opcode == 8:
                    ended = f.close_code
                else:
                    assert f.opcode == 2 and f.payload == bytes(range(256)) * 256
            assert ended in ("eof", 1014), ended
            assert time.monotonic() - t0 < 3
            if ended == 1014:
                assert ws.wait_eof(5)
        finally:
            ws.close()
    finally:
        g.stop()


# ---- upgrade validation by the gateway ----

@pytest.mark.parametrize("name,req,status", [
    ("missing key", H.upgrade_request(key=None), 400),
    ("version 8", H.upgrade_request(version="8"), 426),
    ("HTTP/1.0", H.upgrade_request(proto="HTTP/1.0"), 400),
    ("POST", H.upgrade_request(method="POST", extra="Content-Length: 0\r\n"), 400),
    # a body: the backend would wait for it, the gateway would relay it as frames
    ("a body", H.upgrade_request(extra="Content-Length: 27\r\n") + b"x" * 27, 400),
    ("a chunked body", H.upgrade_request(extra="Transfer-Encoding: chunked\r\n") + b"0\r\n\r\n", 400),
])
def test_bad_upgrade_refused_by_gateway(gw, name, req, status):
    before = backend_stats(gw.backend)
    resp = H.exchange(gw.port, req, timeout=5)
    assert H.status_of(resp) == status, resp
    head = resp.partition(b"\r\n\r\n")[0]
    if status == 426:
        assert b"\r\nSec-WebSocket-Version: 13\r\n" in head + b"\r\n", head
    assert b"X-Backend" not in head    # the gateway answered, not the backend
    after = backend_stats(gw.backend)
    assert after["handshakes"] == before["handshakes"]
    assert after["bad_requests"] == before["bad_requests"]


# ---- many at once ----

def test_1000_concurrent_websockets_echo(gw):
    n = 1000
    sources = ["127.0.0.%d" % (2 + i % 8) for i in range(n)]

    async def one(i, conns):
        ws = await connect(gw.url, local_addr=(sources[i], 0))
        conns.append(ws)
        assert await asyncio.wait_for(ws.recv(), 30) == "hello blue"
        return ws

    async def go():
        conns = []
        try:
            for start in range(0, n, 100):
                await asyncio.gather(*(one(i, conns) for i in range(start, min(n, start + 100))))
            assert len(conns) == n
            assert backend_stats(gw.backend)["open"] >= n
            peers = {ws.local_address[0] for ws in conns}
            assert peers == set(sources)
            await asyncio.gather(*(ws.send("client %d says hi" % i) for i, ws in enumerate(conns)))
            backs = await asyncio.gather(*(asyncio.wait_for(ws.recv(), 30) for ws in conns))
            assert backs == ["client %d says hi" % i for i in range(n)]
            blobs = [os.urandom(200 + i) for i in range(n)]
            await asyncio.gather(*(ws.send(b) for ws, b in zip(conns, blobs)))
            backs = await asyncio.gather(*(asyncio.wait_for(ws.recv(), 30) for ws in conns))
            assert backs == blobs
        finally:
            await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    H.run(go(), timeout=90)


# ---- liveness and idle ----

def test_ping_timeout_closes_silent_client_but_not_a_live_one():
    g = Gateway(H.Backend("blue"), extra="timeouts: {ping_interval: 1s, ping_timeout: 1s}")
    try:
        def silent():
            ws = H.WsConn(g.port)
            t0 = time.monotonic()
            try:
                assert ws.read_message() == (1, b"hello blue")
                seen, close = ws.read_until_close(timeout=6)
                took = time.monotonic() - t0
                return seen, close, took, ws.wait_eof(5)
            finally:
                ws.close()

        async def go():
            async with connect(g.url, ping_interval=None) as live:
                assert await asyncio.wait_for(live.recv(), H.T) == "hello blue"
                seen, close, took, eof = await asyncio.get_running_loop().run_in_executor(
                    None, silent)
                assert [f.opcode for f in seen] == [9], seen     # one ping, unanswered
                assert seen[0].payload and not seen[0].masked
                assert close.close_code == 1001
                assert 1.7 <= took <= 3.5, took
                assert eof
                # The library answered its pings all along: still open, still echoing.
                await asyncio.sleep(0.5)
                assert live.open
                await live.send("still here")
                assert await asyncio.wait_for(live.recv(), H.T) == "still here"
        H.run(go())
    finally:
        g.stop()


def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_quiet_client_that_does_not_read_never_wedges_the_worker():
    """A client that stops reading while the backend streams leaves the
    backend's frame unfinished, so its ping must wait for the frame's end.
    That wait once re-armed the session's timer at an instant already past:
    the one worker spun at 100% CPU and served nobody again. Now the worker
    stays idle, serves new clients, and the idle timeout ends the session."""
    g = Gateway(H.Backend("blue", "--send", "1G"),
                extra="timeouts: {ping_interval: 1s, ping_timeout: 1s, idle: 4s}\n"
                      "limits: {write_high_water: 64KiB, write_low_water: 16KiB}")
    try:
        pid = g.sluice.proc.pid
        quiet = H.WsConn(g.port)
        assert quiet.status == 101
        quiet.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        time.sleep(2.5)             # the ping is due; the backend's 64 KiB frame is stuck
        cpu0 = cpu_seconds(pid)
        time.sleep(1.0)
        assert cpu_seconds(pid) - cpu0 < 0.3
        other = H.WsConn(g.port, timeout=3)
        assert other.status == 101 and other.read_message(timeout=3) == (1, b"hello blue")
        other.close()
        time.sleep(0.3)
        # The idle timeout (no byte either way for 4 s) ends the quiet session: its two
        # sockets go (counted from here: the process may have opened others on the way).
        fds = len(os.listdir("/proc/%d/fd" % pid))
        assert H.wait_until(lambda: len(os.listdir("/proc/%d/fd" % pid)) <= fds - 2, 10)
        quiet.close()
    finally:
        g.stop()


class EarlyHintsBackend(H.ThreadBackend):
    """Answers an upgrade with a 103 Early Hints first, then its 101 (in the
    same write or 0.2 s later; with a wrong accept key when asked), then
    echoes one frame."""

    def __init__(self, apart, wrong_key=False):
        self.apart, self.wrong_key = apart, wrong_key
        super().__init__()

    def handle(self, conn):
        head = H.recv_until(conn, b"\r\n\r\n")
        key = H.ws_key_of(head)
        hints = b"HTTP/1.1 103 Early Hints\r\nLink: </app.js>; rel=preload\r\n\r\n"
        ok = H.switching_protocols("x" + key[1:] if self.wrong_key else key)
        if self.apart:
            conn.sendall(hints)
            time.sleep(0.2)
            conn.sendall(ok)
        else:
            conn.sendall(hints + ok)
        reader = H.WsConn.__new__(H.WsConn)
        reader.sock, reader.buf = conn, b""
        try:
            f = reader.read_frame(timeout=5)
            conn.sendall(H.ws_frame(f.opcode, f.payload, mask=False))
            conn.recv(100)
        except (OSError, EOFError):
            pass


@pytest.mark.parametrize("apart", [False, True])
def test_an_interim_response_before_the_101_is_skipped(apart):
    """A 103 before the 101 once made the gateway take the 103 as the
    answer: the 101 went out unchecked (a wrong accept key passed), the
    relay never started, and a handshake failure was counted."""
    g = Gateway(EarlyHintsBackend(apart))
    try:
        c = H.WsConn(g.port)
        assert c.status == 101, c.response
        c.send(H.ws_frame(1, b"after the hints"))
        assert c.read_message() == (1, b"after the hints")
        c.close()
    finally:
        g.stop()
    g = Gateway(EarlyHintsBackend(apart, wrong_key=True))
    try:
        c = H.WsConn(g.port)
        assert c.status == 502
        c.close()
    finally:
        g.stop()


class BusyBackend(H.ThreadBackend):
    """Accepts an upgrade, then streams to its client without pause and does
    not read for 2.5 s (its receive buffer small), then reads every frame it
    was sent until a close; what it read is in self.frames."""

    def __init__(self):
        self.frames, self.ended = [], threading.Event()
        super().__init__()

    def handle(self, conn):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        head = H.recv_until(conn, b"\r\n\r\n")
        conn.sendall(H.switching_protocols(H.ws_key_of(head)))

        def flood():
            try:
                for _ in range(200):
                    conn.sendall(H.ws_frame(2, b"x" * 65536, mask=False))
            except OSError:
                pass
        threading.Thread(target=flood, daemon=True).start()
        time.sleep(2.5)
        self.frames += H.frames_until_close(conn, head.split(b"\r\n\r\n", 1)[1])
        self.ended.set()


@pytest.mark.parametrize("ending", ["protocol error", "hang-up"])
def test_what_the_client_sent_before_an_abort_reaches_a_busy_backend(ending):
    """A client sends a whole 400 kB message, then a bad frame (or hangs up)
    while the backend is busy writing and slow to read. The backend must get
    the message and then the close: the gateway once closed the backend
    socket with the backend's bytes unread, and the reset that close sends
    threw away the 400 kB and the close still waiting to go."""
    backend = BusyBackend()
    port = H.free_port()
    s = H.Sluice(H.config(port, {"blue": [backend.addr]},
                          extra="limits: {write_high_water: 64KiB, write_low_water: 16KiB}"), port)
    try:
        H.message_then_end_reaches(port, backend, ending)
        assert s.alive()
    finally:
        H.stop_all(s)
        backend.close()


def time_wait_toward(port):
    """Sockets in TIME_WAIT whose remote port is `port` (IPv4, /proc/net/tcp)."""
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return sum(1 for r in rows if r[3] == "06" and int(r[2].split(":")[1], 16) == port)


def test_the_backend_closes_first_after_a_close_handshake():
    """RFC 6455 7.1.1: the server closes the TCP connection first and holds
    TIME_WAIT. To the backend the gateway is the client: it closed at once
    when the backend's close frame came, and when the backend's FIN was not
    read yet (about one connection in five here) the gateway held the
    TIME_WAIT, a local port toward that backend taken for a minute. Fifty
    closes must leave no TIME_WAIT on the gateway's side (on the old code,
    all fifty clean would happen once in some 30,000 runs)."""
    g = Gateway(H.Backend("blue"))
    try:
        before = time_wait_toward(g.backend.port)   # the harness's own probe may be one

        async def closes():
            for _ in range(50):
                async with connect(g.url) as ws:
                    assert await ws.recv() == "hello blue"
        H.run(closes())
        # The backend's end is read within a moment of its close frame.
        time.sleep(0.3)
        assert time_wait_toward(g.backend.port) - before == 0
    finally:
        g.stop()


def test_idle_timeout_closes_idle_connection():
    g = Gateway(H.Backend("blue"), extra="timeouts: {idle: 1s}")
    try:
        ws = H.WsConn(g.port)
        assert ws.read_message() == (1, b"hello blue")
        t0 = time.monotonic()
        # Traffic keeps it open past the idle time (ticks well inside it, so
        # a stalled round trip on a slow build does not cross it)...
        for i in range(16):
            time.sleep(0.1)
            ws.send(H.ws_frame(1, b"tick %d" % i))
            assert ws.read_message() == (1, b"tick %d" % i)
        assert time.monotonic() - t0 > 1.5
        # ...silence closes it.
        t1 = time.monotonic()
        _, close = ws.read_until_close(timeout=5)
        took = time.monotonic() - t1
        assert close.close_code == 1001
        assert 0.7 <= took <= 2.5, took
        assert ws.wait_eof(5)
        ws.close()
    finally:
        g.stop()


def test_a_client_reading_a_backlog_slowly_keeps_its_ping_time():
    """The backend floods; the client reads 400 KB/s, answering each ping as
    soon as it reaches it. A ping queued behind the backlog reaches the
    client seconds later (about 8 s here), and the pong's wait counted from the queueing: the
    client was closed as gone (ping timeout) while it read. The wait now
    counts from the last bytes the client took."""
    backend = H.Backend("blue", "--send", "64M")
    admin = H.free_port()
    g = Gateway(backend, extra="timeouts: { ping_interval: 1s, ping_timeout: 2s, idle: 60s }\n"
                               "admin: { address: 127.0.0.1:%d }" % admin)
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", g.port))
        sock.sendall(H.upgrade_request())
        head, buf = H.recv_until(sock, b"\r\n\r\n").split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head
        pongs, ended, t0 = 0, False, time.monotonic()
        sock.settimeout(0.1)
        while time.monotonic() - t0 < 12 and not ended:
            n = 0
            try:
                while n < 40000 and not ended:   # 400 KB/s, a tenth at a time
                    d = sock.recv(40000 - n)
                    ended = d == b""
                    buf += d
                    n += len(d)
            except socket.timeout:
                pass
            except ConnectionResetError:
                ended = True
            while len(buf) >= 10:   # whole frames, server frames unmasked
                n, at = buf[1] & 0x7F, 2
                if n == 126:
                    n, at = struct.unpack("!H", buf[2:4])[0], 4
                elif n == 127:
                    n, at = struct.unpack("!Q", buf[2:10])[0], 10
                if len(buf) < at + n:
                    break
                if buf[0] & 0x0F == 9:
                    sock.sendall(H.ws_frame(10, buf[at:at + n]))
                    pongs += 1
                assert buf[0] & 0x0F != 8, "closed: %r" % buf[at:at + n]
                buf = buf[at + n:]
            time.sleep(0.1)
        assert not ended and pongs >= 1, (ended, pongs)
        assert H.metric(H.scrape(admin), "sluice_ws_ping_timeouts_total") == 0
    finally:
        sock.close()
        g.stop()
