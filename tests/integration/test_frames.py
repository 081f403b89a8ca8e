"""Client protocol violations on the WebSocket relay, against the real binary.

One gateway (limits.frame_bytes 64 KiB, message_bytes 128 KiB) in front of the
C backend. Each case opens a raw client WebSocket, sends one violation, and
parses the gateway's close frame from the raw bytes: the exact code, an
unmasked frame, a valid UTF-8 reason, then the TCP close. After each case a
fresh client must still get its echo: one bad client harms nobody else.
"""
import time

import pytest

import harness as H

LIMITS = "limits: {frame_bytes: 64KiB, message_bytes: 128KiB}"
F = H.ws_frame


@pytest.fixture(scope="module")
def gw():
    b = H.Backend("blue")
    port = H.free_port()
    s = H.Sluice(H.config(port, {"blue": [b.addr]}, extra=LIMITS), port=port)
    s.backend = b
    yield s
    alive = s.alive()
    rc = s.stop()
    b.stop()
    assert alive, "sluice died:\n" + s.output()[-3000:]
    assert rc == 0, s.output()[-3000:]


def opened(gw):
    ws = H.WsConn(gw.port)
    assert ws.status == 101, ws.response
    assert ws.read_message() == (1, b"hello blue")
    return ws


def echo_works(gw):
    ws = opened(gw)
    try:
        ws.send(F(1, b"still fine"))
        assert ws.read_message() == (1, b"still fine")
        ws.send(F(2, b"\x00" * 70, fin=False) + F(0, b"\x01" * 3))
        f1, f2 = ws.read_frame(), ws.read_frame()   # the backend echoes frame by frame
        assert (f1.opcode, f1.fin, f1.payload) == (2, False, b"\x00" * 70)
        assert (f2.opcode, f2.fin, f2.payload) == (0, True, b"\x01" * 3)
    finally:
        ws.close()


CASES = [
    ("unmasked client frame", F(1, b"hello", mask=False), 1002),
    ("RSV1 set", F(1, b"hello", rsv=4), 1002),
    ("RSV2 set", F(2, b"hello", rsv=2), 1002),
    ("RSV3 set", F(1, b"hello", rsv=1), 1002),
    ("opcode 3", F(3, b"hello"), 1002),
    ("opcode 11", F(11, b""), 1002),
    ("control frame of 126 bytes", F(9, b"p" * 126), 1002),
    ("fragmented ping", F(9, b"ping", fin=False), 1002),
    ("continuation without a start", F(0, b"orphan"), 1002),
    ("data frame inside a fragmented message", [F(1, b"part", fin=False), F(1, b"new")], 1002),
    ("close code 1005 on the wire", F(8, H.close_payload(1005)), 1002),
    ("close code 999", F(8, H.close_payload(999)), 1002),
    ("close payload of 1 byte", F(8, b"\x03"), 1002),
    ("invalid UTF-8 text", F(1, b"ok \xff\xfe"), 1007),
    ("overlong UTF-8", F(1, b"\xc0\xaf"), 1007),
    ("UTF-16 surrogate in UTF-8", F(1, b"\xed\xa0\x80"), 1007),
    ("text ending mid-character", F(1, b"abc\xe2\x82"), 1007),
    ("fragmented text ending mid-character", [F(1, b"abc\xe2", fin=False), F(0, b"\x82")],
     1007),
    ("invalid UTF-8 in a close reason", F(8, H.close_payload(1000, b"\xff")), 1007),
]


def expect_close(ws, code, timeout=5):
    seen, close = ws.read_until_close(timeout=timeout)
    assert close.close_code == code, (close, seen)
    assert not close.masked
    assert len(close.payload) <= 125
    close.payload[2:].decode("utf-8")   # the reason is valid UTF-8
    assert ws.wait_eof(5), "the gateway kept the connection open after its close"
    return seen


def payload_of(frame_bytes):
    """The unmasked payload of one frame made by ws_frame."""
    c = H.WsConn.__new__(H.WsConn)
    c.buf, c.sock = frame_bytes, None
    return c.read_frame().payload


@pytest.mark.parametrize("name,data,code", CASES, ids=[c[0] for c in CASES])
def test_violation_gets_its_close_code(gw, name, data, code):
    frames = data if isinstance(data, list) else [data]
    ws = opened(gw)
    try:
        ws.send(b"".join(frames))
        seen = expect_close(ws, code)
        # The bad frame never reached the backend (so nothing of it is echoed);
        # only the valid fragments before it may have been.
        allowed = [payload_of(f) for f in frames[:-1]]
        assert all(f.payload in allowed for f in seen), seen
    finally:
        ws.close()
    echo_works(gw)


def test_frame_over_limit_refused_from_its_header(gw):
    ws = opened(gw)
    try:
        # Only the header (with its mask key) of a 64 KiB + 1 frame: no payload follows.
        ws.send(F(2, b"", length=(64 << 10) + 1))
        t0 = time.monotonic()
        expect_close(ws, 1009, timeout=3)
        assert time.monotonic() - t0 < 2
    finally:
        ws.close()
    echo_works(gw)


def test_frame_at_limit_passes(gw):
    ws = opened(gw)
    try:
        data = bytes(range(256)) * 256                 # exactly 64 KiB
        ws.send(F(2, data))
        assert ws.read_message() == (2, data)
    finally:
        ws.close()


def test_message_over_limit_gets_1009(gw):
    ws = opened(gw)
    try:
        part = b"m" * (60 << 10)
        ws.send(F(2, part, fin=False) + F(0, part, fin=False))
        # 120 KiB so far is fine: both fragments are echoed as they came.
        f1, f2 = ws.read_frame(), ws.read_frame()
        assert (f1.opcode, f1.fin, f1.payload) == (2, False, part)
        assert (f2.opcode, f2.fin, f2.payload) == (0, False, part)
        # The header of a third one takes the message past 128 KiB.
        ws.send(F(0, b"", fin=True, length=60 << 10))
        expect_close(ws, 1009, timeout=3)
    finally:
        ws.close()
    echo_works(gw)


def test_message_at_limit_passes(gw):
    ws = opened(gw)
    try:
        part = b"q" * (64 << 10)
        ws.send(F(2, part, fin=False) + F(0, part, fin=True))    # exactly 128 KiB
        assert ws.read_message() == (2, part + part)
    finally:
        ws.close()
