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
    yield from H.gateway_before(H.Backend("blue"), LIMITS)


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


# ---- negotiation: subprotocols, extensions and the RSV rules they bring ----
#
# A helper backend (servers/ws_ext.py) answers each upgrade with the
# Sec-WebSocket-Protocol / -Extensions the request's X-Answer-* headers name,
# whatever the client offered, sends the frames X-Send holds, and echoes
# frames exactly as they came (RSV bits included); it logs what it received,
# so a test sees the close code the gateway sent it.
#
# These tests need the relay (gateway/net/wsrelay.c) to use the proto layer's
# new API; until that change is applied they fail:
#   - test_unoffered_negotiation_gets_502 needs on_handshake_response to call
#     sl_ws_check_response_to (the 101 checked against the request's offers);
#   - test_deflate_rsv1_misplaced_by_client, test_deflate_rsv1_misplaced_by_backend
#     and the "uncompressed" cases in them need enter_relay to set the parsers'
#     `extensions` from the response info and keep UTF-8 validation on.
# The others pass with or without it.

PMD = "permessage-deflate"
HELLO_DEFLATED = b"\xf2\x48\xcd\xc9\xc9\x07\x00"   # "Hello" (RFC 7692 7.2.3.1); not UTF-8


@pytest.fixture(scope="module")
def ext_gw():
    yield from H.gateway_before(H.PyServer("ws_ext.py"), LIMITS)


_tags = iter(range(1, 1 << 30))


def ext_request(offer_protocols=None, offer_extensions=None, answer_protocol=None,
                answer_extensions=None, send=b""):
    """An upgrade request with the client's offers and the helper's orders; returns
    (request bytes, tag naming the connection in the helper's log)."""
    tag = "t%d" % next(_tags)
    extra = "X-Tag: %s\r\n" % tag
    if offer_protocols is not None:
        extra += "Sec-WebSocket-Protocol: %s\r\n" % offer_protocols
    if offer_extensions is not None:
        extra += "Sec-WebSocket-Extensions: %s\r\n" % offer_extensions
    if answer_protocol is not None:
        extra += "X-Answer-Protocol: %s\r\n" % answer_protocol
    if answer_extensions is not None:
        extra += "X-Answer-Extensions: %s\r\n" % answer_extensions
    if send:
        extra += "X-Send: %s\r\n" % send.hex()
    return H.upgrade_request(extra=extra), tag


def backend_log(gw, tag):
    """The helper's log lines for one connection, without the tag."""
    return [l.split(" ", 1)[1] for l in gw.backend.output().splitlines()
            if l.startswith(tag + " ")]


def backend_closed_with(gw, tag, code):
    """Wait for the helper to log the close the gateway sent it; its lines then."""
    want = "close %s" % code
    lines = H.wait_until(lambda: [l for l in backend_log(gw, tag) if l.startswith("close ")])
    assert lines == [want], backend_log(gw, tag)
    return backend_log(gw, tag)


def got(fin, rsv, op, payload):
    return "got fin=%d rsv=%d op=%d payload=%s" % (fin, rsv, op, payload.hex())


def ext_opened(gw, **kw):
    req, tag = ext_request(**kw)
    ws = H.WsConn(gw.port, request=req)
    assert ws.status == 101, ws.response
    return ws, tag


def ext_echo_works(gw):
    """A fresh connection with permessage-deflate still opens and echoes."""
    ws, tag = ext_opened(gw, offer_extensions=PMD, answer_extensions=PMD)
    try:
        ws.send(F(1, HELLO_DEFLATED, rsv=4))
        f = ws.read_frame()
        assert (f.fin, f.rsv, f.opcode, f.payload) == (True, 4, 1, HELLO_DEFLATED)
    finally:
        ws.close()


UNOFFERED = [
    ("a subprotocol when none was offered", dict(answer_protocol="evil")),
    ("a subprotocol not among those offered",
     dict(offer_protocols="chat.v1, chat.v2", answer_protocol="evil")),
    ("an offered subprotocol in another case",
     dict(offer_protocols="chat.v1, chat.v2", answer_protocol="Chat.v1")),
    ("the offered list back instead of one",
     dict(offer_protocols="chat.v1, chat.v2", answer_protocol="chat.v1, chat.v2")),
    ("permessage-deflate when no extension was offered", dict(answer_extensions=PMD)),
    ("an extension not offered beside one that was",
     dict(offer_extensions=PMD, answer_extensions=PMD + ", x-evil")),
]


@pytest.mark.parametrize("name,kw", UNOFFERED, ids=[u[0] for u in UNOFFERED])
def test_unoffered_negotiation_gets_502(ext_gw, name, kw):
    """RFC 6455 4.1 steps 5 and 6: the client must fail a 101 that accepts a
    subprotocol or an extension it did not offer; the gateway answers 502
    instead, as for a wrong Sec-WebSocket-Accept. [needs wsrelay.c:
    sl_ws_check_response_to]"""
    req, tag = ext_request(**kw)
    resp = H.exchange(ext_gw.port, req, timeout=5)
    assert H.status_of(resp) == 502, resp
    assert b"Sec-WebSocket" not in resp, resp


OFFERED = [
    ("the second subprotocol offered",
     dict(offer_protocols="chat.v1, chat.v2", answer_protocol="chat.v2"),
     b"\r\nSec-WebSocket-Protocol: chat.v2\r\n"),
    ("permessage-deflate with parameters, offered",
     dict(offer_extensions=PMD + "; client_max_window_bits",
          answer_extensions=PMD + "; server_no_context_takeover"),
     b"\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"),
    ("two extensions offered over two lines, both accepted",
     dict(offer_extensions=PMD + "\r\nSec-WebSocket-Extensions: x-foo",
          answer_extensions="x-foo, " + PMD),
     b"\r\nSec-WebSocket-Extensions: x-foo, permessage-deflate\r\n"),
]


@pytest.mark.parametrize("name,kw,line", OFFERED, ids=[o[0] for o in OFFERED])
def test_offered_negotiation_passes(ext_gw, name, kw, line):
    req, tag = ext_request(**kw)
    ws = H.WsConn(ext_gw.port, request=req)
    try:
        assert ws.status == 101, ws.response
        assert line in ws.response, ws.response
        ws.send(F(2, b"\x00\x01"))
        assert ws.read_message() == (2, b"\x00\x01")
    finally:
        ws.close()


def test_deflate_compressed_and_plain_messages_pass(ext_gw):
    """With permessage-deflate: RSV1 on a message's first frame (compressed, so not
    checked as text), a compressed message in fragments with a ping between them,
    and a plain text message all pass, both ways, exactly as sent."""
    ws, tag = ext_opened(ext_gw, offer_extensions=PMD, answer_extensions=PMD)
    try:
        ws.send(F(1, HELLO_DEFLATED, rsv=4))
        ws.send(F(1, HELLO_DEFLATED[:2], rsv=4, fin=False) + F(9, b"p")
                + F(0, HELLO_DEFLATED[2:]))
        ws.send(F(2, b"\xff\xfe", rsv=4))
        ws.send(F(1, "caf\u00e9".encode()))
        want = [(True, 4, 1, HELLO_DEFLATED), (False, 4, 1, HELLO_DEFLATED[:2]),
                (True, 0, 9, b"p"), (True, 0, 0, HELLO_DEFLATED[2:]), (True, 4, 2, b"\xff\xfe"),
                (True, 0, 1, "caf\u00e9".encode())]
        seen = [ws.read_frame() for _ in want]
        assert [(f.fin, f.rsv, f.opcode, f.payload) for f in seen] == want
        assert not any(f.masked for f in seen)
        ws.send(F(8, H.close_payload(1000)))
        _, close = ws.read_until_close()
        assert close.close_code == 1000
    finally:
        ws.close()
    assert backend_closed_with(ext_gw, tag, 1000)[:6] == [got(*w) for w in want]


# (what the client sends, what the backend gets before the gateway's 1001, close code)
CLIENT_DEFLATE_VIOLATIONS = [
    ("RSV1 on a ping", [F(9, b"ping", rsv=4)], 1002),
    ("RSV1 on a pong", [F(10, b"pong", rsv=4)], 1002),
    ("RSV1 on a close", [F(8, H.close_payload(1000), rsv=4)], 1002),
    ("RSV1 on a continuation", [F(2, b"a", fin=False), F(0, b"b", rsv=4)], 1002),
    ("RSV1 on both fragments", [F(1, HELLO_DEFLATED[:2], rsv=4, fin=False),
                                F(0, HELLO_DEFLATED[2:], rsv=4)], 1002),
    ("RSV2 on a text frame", [F(1, b"hello", rsv=2)], 1002),
    ("uncompressed text, not UTF-8", [F(1, b"\xc0\xaf")], 1007),
    ("uncompressed fragmented text ending mid-character",
     [F(1, b"abc\xe2", fin=False), F(0, b"\x82")], 1007),
]


@pytest.mark.parametrize("name,frames,code", CLIENT_DEFLATE_VIOLATIONS,
                         ids=[c[0] for c in CLIENT_DEFLATE_VIOLATIONS])
def test_deflate_rsv1_misplaced_by_client(ext_gw, name, frames, code):
    """RFC 7692 6: RSV1 only on the first frame of a data message, never on a
    control or continuation frame (1002); RFC 6455 8.1: a message sent without
    compression is text and must be UTF-8 (1007). The whole frames before the
    bad one reach the backend, then the gateway's 1001. [needs wsrelay.c:
    enter_relay]"""
    ws, tag = ext_opened(ext_gw, offer_extensions=PMD, answer_extensions=PMD)
    try:
        ws.send(b"".join(frames))
        seen = expect_close(ws, code)
        allowed = [payload_of(f) for f in frames[:-1]]
        assert all(f.payload in allowed for f in seen), seen
    finally:
        ws.close()
    lines = backend_closed_with(ext_gw, tag, 1001)
    assert lines[:-2] == [got(0, f[0] >> 4 & 7, f[0] & 0xF, payload_of(f))
                          for f in frames[:-1]], lines
    ext_echo_works(ext_gw)


BACKEND_DEFLATE_VIOLATIONS = [
    ("RSV1 on a ping", [F(9, b"ping", rsv=4, mask=False)], 1002),
    ("RSV1 on a close", [F(8, H.close_payload(1000), rsv=4, mask=False)], 1002),
    ("RSV1 on a continuation", [F(2, b"a", fin=False, mask=False),
                                F(0, b"b", rsv=4, mask=False)], 1002),
    ("uncompressed text, not UTF-8", [F(1, b"\xff\xfe\xfd", mask=False)], 1007),
]


@pytest.mark.parametrize("name,frames,code", BACKEND_DEFLATE_VIOLATIONS,
                         ids=[c[0] for c in BACKEND_DEFLATE_VIOLATIONS])
def test_deflate_rsv1_misplaced_by_backend(ext_gw, name, frames, code):
    """The same rules for the backend's frames: the client gets 1014 after the
    whole frames before the bad one, the backend gets the rule's code.
    [needs wsrelay.c: enter_relay]"""
    ws, tag = ext_opened(ext_gw, offer_extensions=PMD, answer_extensions=PMD,
                         send=b"".join(frames))
    try:
        seen, close = ws.read_until_close()
        assert [(f.fin, f.rsv, f.opcode, f.payload) for f in seen] == \
            [(bool(f[0] & 0x80), f[0] >> 4 & 7, f[0] & 0xF, payload_of(f)) for f in frames[:-1]]
        assert close.close_code == 1014, close
        ws.send(F(8, close.payload[:2]))
        assert ws.wait_eof(5)
    finally:
        ws.close()
    backend_closed_with(ext_gw, tag, code)
    ext_echo_works(ext_gw)


def test_unknown_extension_stays_lenient(ext_gw):
    """An extension the gateway does not know may use every RSV bit and change
    what text looks like: its frames pass as they are, not checked as text
    (the client offered it; the backend accepted it)."""
    ws, tag = ext_opened(ext_gw, offer_extensions="x-foo", answer_extensions="x-foo")
    try:
        sent = [(True, 2, 1, b"\xc0\xaf"), (False, 7, 2, b"a"), (True, 1, 9, b"p"),
                (True, 4, 0, b"b"), (True, 0, 1, b"\xff")]
        ws.send(b"".join(F(op, p, fin=fin, rsv=rsv) for fin, rsv, op, p in sent))
        seen = [ws.read_frame() for _ in sent]
        assert [(f.fin, f.rsv, f.opcode, f.payload) for f in seen] == sent
    finally:
        ws.close()
