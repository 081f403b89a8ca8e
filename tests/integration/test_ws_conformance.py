"""RFC 6455 conformance of the WebSocket relay where the other tests do not
look: the close handshake when one side never answers (and a drain meeting
it), the backend's 101 checked as a client must check it (RFC 6455 4.1, RFC
7692) and relayed whatever its size within the head limit, and the 426 for a
version other than 13.

One gateway per module (ping off, ping_timeout 1 s, idle 20 s) in front of a
scripted backend served by a thread of the test: each upgrade request tells
it, in X-* headers, what its 101 says and which frames follow it; it records
every byte it reads after the 101, so a test sees the close the gateway sent
it. Clients are raw sockets (harness.WsConn) and, where a library's verdict
matters, websockets 10.4.
"""
import asyncio
import binascii
import signal
import socket
import threading
import time
import urllib.request

import pytest
import websockets

import harness as H

F = H.ws_frame
# idle is far above every bound a test waits for: a wait that only the idle
# timeout ends must fail the test, not pass it late.
TIMEOUTS = "timeouts: {idle: 20s, ping_interval: 0s, ping_timeout: 1s}"


def parse_frames(data):
    """The frames in `data` (bytes a peer sent), as harness.Frame; a torn
    last frame is left out."""
    r = H.WsConn.__new__(H.WsConn)
    r.sock, r.buf = None, data
    frames = []
    while True:
        try:
            frames.append(r.read_frame(timeout=0))
        except (socket.timeout, EOFError, AttributeError):
            return frames


class ScriptedBackend(H.ThreadBackend):
    """Answers each upgrade as its request's headers say:

      X-Tag: T           names the connection (self.got[T], self.ended[T])
      X-Resp: HEX        the whole response head instead of a good 101; "{accept}"
                         in it becomes the right Sec-WebSocket-Accept
      X-Resp-Extra: HEX  header lines added to the good 101
      X-Resp-Pad: N      and an "X-Pad:" line of N bytes of value
      X-Send: HEX        bytes written right after the head
      X-Dribble: S       X-Send written one byte at a time, S seconds apart
      X-Hang-Up: S       shut the socket down S seconds after X-Send

    Then it reads (never answering) until the peer closes or 15 s pass; what
    it read is in self.got[T], and self.ended[T] is set when it stops."""

    def __init__(self):
        self.got, self.ended = {}, {}
        super().__init__()

    def handle(self, conn):
        head = H.recv_until(conn, b"\r\n\r\n")
        lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
        h = {}
        for line in lines:
            name, _, value = line.partition(":")
            h[name.strip().lower()] = value.strip()
        tag = h.get("x-tag", "-")
        self.got[tag], self.ended[tag] = b"", threading.Event()
        try:
            accept = H.ws_accept(h.get("sec-websocket-key", ""))
            if "x-resp" in h:
                resp = binascii.unhexlify(h["x-resp"]).replace(b"{accept}", accept.encode())
            else:
                resp = H.switching_protocols(h["sec-websocket-key"])
                resp = resp[:-2] + binascii.unhexlify(h.get("x-resp-extra", ""))
                if "x-resp-pad" in h:
                    resp += b"X-Pad: %s\r\n" % (b"p" * int(h["x-resp-pad"]))
                resp += b"\r\n"
            send = binascii.unhexlify(h.get("x-send", ""))
            if "x-dribble" in h:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.sendall(resp)
                for i in range(len(send)):
                    time.sleep(float(h["x-dribble"]))
                    conn.sendall(send[i:i + 1])
            else:
                conn.sendall(resp + send)
            if "x-hang-up" in h:
                time.sleep(float(h["x-hang-up"]))
                conn.shutdown(socket.SHUT_RDWR)
                return
            conn.settimeout(15)
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                self.got[tag] += chunk
        except OSError:
            pass
        finally:
            self.ended[tag].set()


@pytest.fixture(scope="module")
def gw():
    yield from H.gateway_before(ScriptedBackend(), TIMEOUTS)


_tags = iter(range(1, 1 << 30))


def request(resp=None, resp_extra="", send=b"", hang_up=None, offer="", dribble=None):
    """An upgrade request steering the scripted backend; (bytes, tag)."""
    tag = "c%d" % next(_tags)
    extra = "X-Tag: %s\r\n" % tag + offer
    if resp is not None:
        extra += "X-Resp: %s\r\n" % resp.encode().hex()
    if resp_extra:
        extra += "X-Resp-Extra: %s\r\n" % resp_extra.encode().hex()
    if send:
        extra += "X-Send: %s\r\n" % send.hex()
    if hang_up is not None:
        extra += "X-Hang-Up: %s\r\n" % hang_up
    if dribble is not None:
        extra += "X-Dribble: %s\r\n" % dribble
    return H.upgrade_request(extra=extra), tag


def backend_frames(gw, tag, timeout=5):
    """The frames the backend read on connection `tag`, once it has ended."""
    assert gw.backend.ended[tag].wait(timeout), "the backend's connection is still open"
    return parse_frames(gw.backend.got[tag])


# ---- the close handshake when one side never answers ----

def test_a_backend_that_never_answers_the_clients_close_is_given_up_on(gw):
    """The client's close goes to the backend, which stays connected and
    silent. The gateway once waited for its reply without a bound of its own
    (the ping timer, or here the 20 s idle timeout, ended it; with pings on,
    the client that had closed was pinged and then closed as "ping timeout").
    Now the wait for the backend's close reply is bounded (2 s), the client
    gets a close, and both connections end."""
    req, tag = request()
    ws = H.WsConn(gw.port, request=req)
    try:
        assert ws.status == 101, ws.response
        ws.send(F(8, H.close_payload(1000, b"bye")))
        t0 = time.monotonic()
        seen, close = ws.read_until_close(timeout=5)
        assert seen == []
        assert close.close_code == 1001, close
        assert ws.wait_eof(3)
        assert time.monotonic() - t0 < 4
    finally:
        ws.close()
    frames = backend_frames(gw, tag)
    assert [(f.opcode, f.payload) for f in frames] == [(8, H.close_payload(1000, b"bye"))]


@pytest.mark.parametrize("hang_up", [None, 0.2], ids=["backend stays", "backend hangs up"])
def test_a_client_that_never_answers_the_backends_close_is_given_up_on(gw, hang_up):
    """The backend sends a close (and stays, or hangs up 0.2 s later); the
    client never answers. With pings stopped by the close, only the idle
    timeout (300 s by default) once ended such a session. Now the client has
    ping_timeout (1 s here) to answer, as for a ping; then the gateway
    closes it, and a backend still there gets a close as its reply."""
    req, tag = request(send=F(8, H.close_payload(1000, b"done"), mask=False), hang_up=hang_up)
    ws = H.WsConn(gw.port, request=req)
    try:
        assert ws.status == 101, ws.response
        t0 = time.monotonic()
        seen, close = ws.read_until_close(timeout=5)
        assert (seen, close.close_code, close.payload[2:]) == ([], 1000, b"done")
        assert ws.wait_eof(5), "the gateway kept the silent client"
        assert 0.7 < time.monotonic() - t0 < 3
    finally:
        ws.close()
    frames = backend_frames(gw, tag)
    if hang_up is None:
        assert [f.opcode for f in frames] == [8] and frames[0].close_code == 1001, frames


def test_a_client_that_answers_the_backends_close_ends_cleanly(gw):
    """The bound above does not cut a close handshake that completes: the
    client's reply reaches the backend, as it came."""
    req, tag = request(send=F(8, H.close_payload(4000, b"done"), mask=False))
    ws = H.WsConn(gw.port, request=req)
    try:
        _, close = ws.read_until_close(timeout=5)
        assert close.close_code == 4000
        ws.send(F(8, H.close_payload(4000)))
        assert ws.wait_eof(5)
    finally:
        ws.close()
    assert [(f.opcode, f.payload) for f in backend_frames(gw, tag)] == \
        [(8, H.close_payload(4000))]


# ---- the backend's 101, checked as the client must check it ----

PMD = "permessage-deflate"
SWITCH = "HTTP/1.1 101 Switching Protocols\r\n"
ACCEPT = "Sec-WebSocket-Accept: {accept}\r\n"

# (name, the backend's head or the lines added to a good 101)
BAD_101 = [
    ("Upgrade names websocket and h2c",
     dict(resp=SWITCH + "Upgrade: websocket, h2c\r\nConnection: Upgrade\r\n" + ACCEPT + "\r\n")),
    ("a second Upgrade line names h2c",
     dict(resp=SWITCH + "Upgrade: websocket\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n" + ACCEPT
          + "\r\n")),
    ("permessage-deflate twice in one line",
     dict(resp_extra="Sec-WebSocket-Extensions: %s, %s\r\n" % (PMD, PMD))),
    ("permessage-deflate on two lines",
     dict(resp_extra="Sec-WebSocket-Extensions: %s\r\nSec-WebSocket-Extensions: %s\r\n"
          % (PMD, PMD))),
]


async def websockets_verdict(port, tag_headers):
    """What websockets 10.4, offering permessage-deflate, makes of the answer."""
    try:
        async with websockets.connect("ws://127.0.0.1:%d/" % port, extra_headers=tag_headers,
                                      compression="deflate", open_timeout=5, close_timeout=2):
            return "open"
    except websockets.exceptions.InvalidStatusCode as e:
        return e.status_code
    except websockets.exceptions.InvalidHandshake as e:
        return type(e).__name__


@pytest.mark.parametrize("name,kw", BAD_101, ids=[b[0] for b in BAD_101])
def test_a_101_the_client_must_fail_gets_502(gw, name, kw):
    """RFC 6455 4.1 step 2: a 101 whose Upgrade is more than "websocket";
    RFC 7692 5: permessage-deflate accepted twice (two users of RSV1). Both
    once went to the client as they were, switched, and websockets then failed
    the connection itself (InvalidUpgrade, NegotiationError); the gateway
    answers 502 instead, as for a wrong Sec-WebSocket-Accept."""
    offer = "Sec-WebSocket-Extensions: %s\r\n" % PMD
    req, tag = request(offer=offer, **kw)
    resp = H.exchange(gw.port, req, timeout=5)
    assert H.status_of(resp) == 502, resp
    assert b"Sec-WebSocket" not in resp, resp
    # The same answer, judged by a third-party client through the gateway.
    req, tag = request(**kw)
    headers = [l.split(": ", 1) for l in req.decode().split("\r\n") if l.startswith("X-")]
    assert H.run(websockets_verdict(gw.port, headers), timeout=10) == 502


def test_a_101_with_websocket_alone_and_one_deflate_still_opens(gw):
    """The checks above refuse no good answer: Upgrade in another case with
    empty list elements, permessage-deflate once with parameters, through to
    websockets, which then exchanges a compressed message with the backend's
    frame."""
    resp = (SWITCH + "Upgrade: , WebSocket\r\nConnection: keep-alive, Upgrade\r\n" + ACCEPT
            + "Sec-WebSocket-Extensions: %s; server_no_context_takeover\r\n\r\n" % PMD)
    req, tag = request(resp=resp, send=F(1, b"\xf2\x48\xcd\xc9\xc9\x07\x00", rsv=4, mask=False))
    headers = [l.split(": ", 1) for l in req.decode().split("\r\n") if l.startswith("X-")]

    async def client():
        async with websockets.connect("ws://127.0.0.1:%d/" % gw.port, extra_headers=headers,
                                      compression="deflate", open_timeout=5,
                                      close_timeout=1) as ws:
            return await asyncio.wait_for(ws.recv(), 5)
    assert H.run(client(), timeout=15) == "Hello"


def test_a_drain_does_not_stretch_a_close_already_under_way():
    """A session waiting for the backend's reply to the client's close (2 s
    at most) is drained by a SIGTERM: the drain once set its deadline to
    the drain's grace (10 s by default) over the shorter one, so the
    gateway took the whole grace to stop. It keeps the earlier one now."""
    b = ScriptedBackend()
    port = H.free_port()
    s = H.Sluice(H.config(port, {"blue": [b.addr]}, extra=TIMEOUTS), port=port)
    try:
        req, tag = request()
        ws = H.WsConn(port, request=req)
        assert ws.status == 101, ws.response
        ws.send(F(8, H.close_payload(1000)))
        assert H.wait_until(lambda: b.got.get(tag), timeout=5), "the close did not reach the backend"
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        seen, close = ws.read_until_close(timeout=5)
        assert seen == [] and close.close_code == 1001, (seen, close)
        assert ws.wait_eof(5)
        ws.close()
        assert s.stop(timeout=6) == 0, s.output()[-3000:]
        assert time.monotonic() - t0 < 3.5
    finally:
        try:
            s.stop()
        finally:
            b.close()


@pytest.mark.parametrize("pad", [7000, 12000, 16000])
def test_a_101_up_to_the_head_limit_reaches_the_client(gw, pad):
    """limits.head_bytes (16 KiB by default) bounds the backend's answer, but
    the 101 was rewritten for the client into an 8 KiB stack buffer: a 101
    with a bigger head (cookies, say) passed every check and then got the
    client a 502, with nothing logged. It goes through whole now."""
    req, tag = request(send=F(1, b"after a big head", mask=False))
    req = req.replace(b"\r\n\r\n", b"\r\nX-Resp-Pad: %d\r\n\r\n" % pad)
    ws = H.WsConn(gw.port, request=req)
    try:
        assert ws.status == 101, ws.response[:300]
        assert b"\r\nX-Pad: " + b"p" * pad + b"\r\n" in ws.response
        assert ws.read_message() == (1, b"after a big head")
    finally:
        ws.close()


def test_a_101_over_the_head_limit_gets_502(gw):
    """The bound itself still holds: a 101 head over limits.head_bytes is
    refused, not relayed."""
    req, tag = request()
    req = req.replace(b"\r\n\r\n", b"\r\nX-Resp-Pad: %d\r\n\r\n" % (17 << 10))
    resp = H.exchange(gw.port, req, timeout=5)
    assert H.status_of(resp) == 502, resp[:300]


# ---- the client's handshake ----

@pytest.mark.parametrize("version", ["8", "14", None, "13, 8"])
def test_a_version_other_than_13_gets_426_naming_websocket(gw, version):
    """RFC 6455 4.2.2: 426 with Sec-WebSocket-Version: 13. RFC 9110 15.5.22:
    a 426 MUST name the protocol it requires in Upgrade, and (7.8) whoever
    sends Upgrade lists "upgrade" in Connection; the 426 had neither."""
    tag = "v%d" % next(_tags)
    req = H.upgrade_request(version=version, extra="X-Tag: %s\r\n" % tag)
    resp = H.exchange(gw.port, req, timeout=5)
    assert H.status_of(resp) == 426, resp
    lines = resp.partition(b"\r\n\r\n")[0].decode().split("\r\n")[1:]
    fields = [(n.strip().lower(), v.strip()) for n, _, v in (l.partition(":") for l in lines)]
    assert ("sec-websocket-version", "13") in fields, fields
    assert [v for n, v in fields if n == "upgrade"] == ["websocket"], fields
    connection = ",".join(v for n, v in fields if n == "connection")
    assert "upgrade" in [t.strip().lower() for t in connection.split(",")], fields
    assert tag not in gw.backend.got   # refused before any backend was asked


# ---- frames that arrive a byte at a time ----

def dribble(ws, data, gap=0.01):
    """Send data one byte per segment, gap seconds apart: one read each."""
    ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(len(data)):
        ws.send(data[i:i + 1])
        time.sleep(gap)


BEFORE = F(1, b"before")
CLIENT_SPLIT = [
    ("a length over the frame limit", F(2, length=1 << 40), 1009),
    ("a 64-bit length with the top bit set",
     b"\x82\xff\x80\x00\x00\x00\x00\x00\x00\x01\x11\x22\x33\x44", 1002),
    ("a close code no one may send", F(8, H.close_payload(1005, b"")), 1002),
    ("a close reason that is not UTF-8", F(8, H.close_payload(1000, b"\xff")), 1007),
]


@pytest.mark.parametrize("name,bad,code", CLIENT_SPLIT, ids=[c[0] for c in CLIENT_SPLIT])
def test_a_bad_client_frame_that_comes_a_byte_at_a_time_never_reaches_the_backend(
        gw, name, bad, code):
    """The frames before a bad one reach the backend, then a close 1001;
    nothing of the bad frame does, however it is split. Sent whole it was
    so; sent a byte at a time, each read's header bytes (or a close frame's
    first bytes, checked only at its end) went on before the rest showed the
    frame bad, and the backend, left inside a frame, got no close at all."""
    req, tag = request()
    ws = H.WsConn(gw.port, request=req)
    try:
        assert ws.status == 101, ws.response
        ws.send(BEFORE)
        time.sleep(0.05)
        dribble(ws, bad)
        seen, close = ws.read_until_close(timeout=5)
        assert (seen, close.close_code) == ([], code), (seen, close)
    finally:
        ws.close()
    assert gw.backend.ended[tag].wait(5)
    got = gw.backend.got[tag]
    assert got.startswith(BEFORE), got
    rest = parse_frames(got[len(BEFORE):])
    assert [(f.opcode, f.close_code) for f in rest] == [(8, 1001)], rest
    assert len(got) == len(BEFORE) + 6 + len(rest[0].payload), got   # and no stray byte


BACKEND_SPLIT = [
    ("a reserved opcode", F(3, b"x", mask=False)),
    ("a 64-bit length with the top bit set", b"\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x01"),
    ("a close code no one may send", F(8, H.close_payload(1006, b""), mask=False)),
]


@pytest.mark.parametrize("name,bad", BACKEND_SPLIT, ids=[c[0] for c in BACKEND_SPLIT])
def test_a_bad_backend_frame_that_comes_a_byte_at_a_time_gets_the_client_1014(gw, name, bad):
    """The other way: the client gets the frames before the bad one, then
    1014, and no byte of the bad frame (it got a stray header byte and then
    the connection's end, no close frame)."""
    req, tag = request(send=F(1, b"before", mask=False) + bad, dribble=0.01)
    ws = H.WsConn(gw.port, request=req)
    try:
        assert ws.status == 101, ws.response
        seen, close = ws.read_until_close(timeout=5)
        assert [(f.opcode, f.payload) for f in seen] == [(1, b"before")], seen
        assert close.close_code == 1014, close
        assert ws.wait_eof(5)
    finally:
        ws.close()


def test_good_frames_that_come_a_byte_at_a_time_pass_unchanged_both_ways(gw):
    """What the gateway holds back until it may pass (a header not yet
    whole, a control frame not yet ended) goes on as it came: every byte,
    the client's mask included, in order."""
    from_backend = (F(2, b"y" * 200, fin=False, mask=False) + F(9, b"ping", mask=False) +
                    F(0, b"z" * 50, mask=False))
    req, tag = request(send=from_backend, dribble=0.002)
    ws = H.WsConn(gw.port, request=req)
    try:
        assert ws.status == 101, ws.response
        got = [ws.read_frame(timeout=5) for _ in range(3)]
        assert [(f.opcode, f.fin, f.payload) for f in got] == \
            [(2, False, b"y" * 200), (9, True, b"ping"), (0, True, b"z" * 50)], got
        from_client = (F(1, b"x" * 300, mask_key=b"\x01\x02\x03\x04") + F(9, b"ping!") +
                       F(10, b"") + F(8, H.close_payload(1000, b"bye"), mask_key=b"\xa0\xb0\xc0\xd0"))
        dribble(ws, from_client, gap=0.002)
        assert H.wait_until(lambda: gw.backend.got[tag] == from_client, 5), gw.backend.got[tag]
    finally:
        ws.close()


def test_drains_completed_counts_answers_to_the_drains_close_only():
    """sluice_drains_completed_total counts drained clients that answered
    the drain's close. A client mid-message from the backend waits for the
    message's end before its close; one that closed on its own meanwhile
    was counted too, though the drain's close never went."""
    b = ScriptedBackend()
    port, admin = H.free_port(), H.free_port()
    s = H.Sluice(H.config(port, {"blue": [b.addr]},
                          extra=TIMEOUTS + "\nadmin: { address: 127.0.0.1:%d }" % admin), port=port)
    try:
        answers, _ = request()
        mid, _ = request(send=F(1, b"half", fin=False, mask=False))
        a = H.WsConn(port, request=answers)
        m = H.WsConn(port, request=mid)
        assert a.status == m.status == 101
        assert m.read_frame(timeout=5).payload == b"half"   # its stream is mid-message now
        url = "http://127.0.0.1:%d/api/v1/pools/blue/backends/%s/drain" % (admin, b.addr)
        with urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"),
                                    timeout=5) as r:
            assert r.status == 202
        seen, close = a.read_until_close(timeout=5)
        assert (seen, close.close_code) == ([], 1012), (seen, close)
        a.send(F(8, H.close_payload(1012)))                 # the answer
        m.send(F(8, H.close_payload(1000, b"mine")))        # its own, before the drain's
        assert H.wait_until(lambda: H.metric(H.scrape(admin), "sluice_drains_started_total") == 2)
        assert H.wait_until(
            lambda: H.metric(H.scrape(admin), "sluice_drains_completed_total") == 1, 5)
        time.sleep(0.3)
        assert H.metric(H.scrape(admin), "sluice_drains_completed_total") == 1
        a.close()
        m.close()
    finally:
        try:
            s.stop()
        finally:
            b.close()
