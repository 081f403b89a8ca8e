"""sluice-backend: the demo and test backend every gateway test relies on.

Each test starts the real binary (SLUICE_BACKEND_BIN) on a free loopback port
(--listen 127.0.0.1:0, the port read from its start-up line) and talks to it
with websockets 10.4, http.client and raw sockets. Every wait is bounded.
"""
import asyncio
import os
import re
import signal
import socket
import struct
import subprocess
import time

import pytest
import websockets

from simbackend import BIN, Backend, backend  # noqa: F401 (backend is a fixture)

T = 10  # seconds: the bound on every wait


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, T * 3))


def connect(url, **kw):
    return websockets.connect(url, compression=None, max_size=None,
                              open_timeout=T, close_timeout=T, **kw)


# ---- raw socket helpers (for byte-exact frame checks) ------------------------

def raw_ws(b):
    s = socket.create_connection((b.host, b.port), timeout=T)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"Sec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head
    return s


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        assert chunk, "connection closed early"
        out += chunk
    return out


def recv_frame(s):
    """(fin, opcode, payload) of one unmasked server frame."""
    b0, b1 = recv_exact(s, 2)
    assert b1 & 0x80 == 0, "server frames are unmasked"
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", recv_exact(s, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", recv_exact(s, 8))[0]
    return bool(b0 & 0x80), b0 & 0x0F, recv_exact(s, n)


def client_frame(opcode, payload, fin=True, mask=b"\x11\x22\x33\x44", masked=True):
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        hdr = bytes([b0, (0x80 if masked else 0) | n])
    elif n < 65536:
        hdr = bytes([b0, (0x80 if masked else 0) | 126]) + struct.pack("!H", n)
    else:
        hdr = bytes([b0, (0x80 if masked else 0) | 127]) + struct.pack("!Q", n)
    if not masked:
        return hdr + payload
    body = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return hdr + mask + body


# ---- command line ------------------------------------------------------------

def test_help_documents_every_flag():
    out = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=T)
    assert out.returncode == 0
    for flag in ["--listen", "--name", "--capacity", "--burst", "--overload", "--record",
                 "--log-messages", "--close-after-hello", "--send", "--http-delay",
                 "--backlog", "--quiet", "--help", "--version"]:
        assert flag in out.stdout, flag


@pytest.mark.parametrize("args", [["--capacity", "x"], ["--overload", "maybe"],
                                  ["--close-after-hello", "1005"], ["--listen", "nope"],
                                  ["--send", "12Q"], ["--name", "two words"], ["stray"]])
def test_bad_arguments_exit_2(args):
    out = subprocess.run([BIN, "--listen", "127.0.0.1:0", *args], capture_output=True,
                         text=True, timeout=T)
    assert out.returncode == 2, out.stderr
    assert out.stderr


# ---- WebSocket -----------------------------------------------------------------

SIZES = [0, 125, 126, 65535, 65536, 1 << 20]


def test_hello_then_echo_text_and_binary(backend):
    b = backend()

    async def go():
        async with connect(b.url) as ws:
            assert await ws.recv() == "hello blue"
            for n in SIZES:
                text = ("x%d-" % n * (n // 3 + 1))[:n]
                await ws.send(text)
                assert await ws.recv() == text
                data = bytes((i * 7 + n) & 0xFF for i in range(n))
                await ws.send(data)
                got = await ws.recv()
                assert isinstance(got, bytes) and got == data
    run(go())
    assert b.stats()["messages"] == 2 * len(SIZES)


def test_echo_16mib_message_streamed(backend):
    b = backend()
    data = os.urandom(1 << 20) * 16

    async def go():
        async with connect(b.url) as ws:
            await ws.recv()
            await ws.send(data)
            assert await ws.recv() == data
    run(go())


def test_fragmented_message_echoed(backend):
    b = backend()

    async def go():
        async with connect(b.url) as ws:
            await ws.recv()
            await ws.send(["frag", "mented ", "é"])
            assert await ws.recv() == "fragmented é"
            await ws.send([b"\x00\x01", b"", b"\x02"])
            assert await ws.recv() == b"\x00\x01\x02"
    run(go())


def test_frames_echoed_byte_exact_with_ping_between_fragments(backend):
    b = backend()
    s = raw_ws(b)
    try:
        assert recv_frame(s) == (True, 1, b"hello blue")
        s.sendall(client_frame(1, b"ab", fin=False) + client_frame(9, b"pp")
                  + client_frame(0, b"cd", fin=False, mask=b"\xff\x00\xff\x00")
                  + client_frame(0, b"", fin=True) + client_frame(2, bytes(range(200))))
        assert recv_frame(s) == (False, 1, b"ab")
        assert recv_frame(s) == (True, 10, b"pp")
        assert recv_frame(s) == (False, 0, b"cd")
        assert recv_frame(s) == (True, 0, b"")
        assert recv_frame(s) == (True, 2, bytes(range(200)))
        # Bytes dribbled one at a time still come back whole.
        for byte in client_frame(2, b"slow", mask=b"\x01\x02\x03\x04"):
            s.sendall(bytes([byte]))
        got = b""
        while len(got) < 4:
            fin, op, p = recv_frame(s)
            assert op in (2, 0)
            got += p
        assert got == b"slow"
    finally:
        s.close()


def test_first_subprotocol_chosen(backend):
    b = backend()

    async def go():
        async with connect(b.url, subprotocols=["chat.v2", "chat.v1"]) as ws:
            assert ws.subprotocol == "chat.v2"
            assert ws.response_headers["X-Backend"] == "blue"
            assert await ws.recv() == "hello blue"
    run(go())


def test_ping_answered_with_pong(backend):
    b = backend()

    async def go():
        async with connect(b.url) as ws:
            await ws.recv()
            waiter = await ws.ping(b"are you there")
            await asyncio.wait_for(waiter, T)
    run(go())


def test_close_code_echoed(backend):
    b = backend()

    async def go():
        async with connect(b.url) as ws:
            await ws.recv()
            await ws.close(code=4001, reason="bye")
            assert ws.close_code == 4001
    run(go())


def test_unmasked_client_frame_is_closed_1002(backend):
    b = backend()
    s = raw_ws(b)
    try:
        recv_frame(s)
        s.sendall(client_frame(1, b"hi", masked=False))
        fin, op, payload = recv_frame(s)
        assert op == 8 and struct.unpack("!H", payload[:2])[0] == 1002
        assert s.recv(1) == b""   # then TCP closes
    finally:
        s.close()


def test_close_after_hello(backend):
    b = backend("--close-after-hello", "4321")

    async def go():
        async with connect(b.url) as ws:
            assert await ws.recv() == "hello blue"
            with pytest.raises(websockets.ConnectionClosed) as e:
                await ws.recv()
            assert e.value.rcvd.code == 4321
    run(go())


def test_send_bytes_with_backpressure(backend):
    total = 3 * 65536 + 100
    b = backend("--send", str(total))

    async def go():
        async with connect(b.url) as ws:
            assert await ws.recv() == "hello blue"
            got = b""
            while len(got) < total:
                m = await ws.recv()
                assert isinstance(m, bytes) and len(m) <= 65536
                got += m
            assert got == bytes(i & 0xFF for i in range(65536)) * 3 + bytes(range(100))
            await ws.send("still echoing")
            assert await ws.recv() == "still echoing"
    run(go())


def test_send_to_slow_reader_stays_bounded(backend):
    b = backend("--send", "1G")
    s = raw_ws(b)
    try:
        time.sleep(1.0)   # never read: the backend must stop at ~1 MiB queued
        rss = rss_kib(b.proc.pid)
        assert rss < 64 * 1024, "RSS %d KiB" % rss
    finally:
        s.close()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_client_that_never_reads_is_not_buffered(backend):
    b = backend()
    s = raw_ws(b)
    s.setblocking(False)
    frames = client_frame(2, b"\xab" * 65536) * 16
    sent = 0
    deadline = time.monotonic() + 2.0
    try:
        while time.monotonic() < deadline and sent < (256 << 20):
            off = sent % len(frames)   # partial sends resume mid-frame
            try:
                sent += s.send(frames[off:])
            except BlockingIOError:
                time.sleep(0.01)
        # The backend stopped reading once its queue to us passed 1 MiB.
        assert sent < (256 << 20)
        assert rss_kib(b.proc.pid) < 64 * 1024
    finally:
        s.close()


def test_bad_version_gets_426(backend):
    b = backend()
    s = socket.create_connection((b.host, b.port), timeout=T)
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 8\r\n\r\n")
        resp = s.recv(4096)
        assert resp.startswith(b"HTTP/1.1 426 ")
        assert b"Sec-WebSocket-Version: 13\r\n" in resp
    finally:
        s.close()


def test_ipv6_listener(backend):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("no ::1")
    b = backend(listen="[::1]:0")

    async def go():
        async with connect(b.url) as ws:
            assert await ws.recv() == "hello blue"
    run(go())


# ---- HTTP ------------------------------------------------------------------------

def test_healthz_and_hello(backend):
    b = backend()
    assert b.http("GET", "/healthz")[0::2] == (200, b"ok")
    status, headers, body = b.http("GET", "/some/path?q=1")
    assert status == 200 and body == b"hello blue GET /some/path?q=1"
    assert headers["X-Backend"] == "blue"
    assert "X-Body-Bytes" not in headers


def test_body_length_content_length_and_chunked(backend):
    b = backend()
    status, headers, body = b.http("POST", "/token", body=b"z" * 3000)
    assert status == 200 and body == b"hello blue POST /token"
    assert headers["X-Body-Bytes"] == "3000"
    status, headers, body = b.http("POST", "/empty", body=b"")
    assert status == 200 and headers["X-Body-Bytes"] == "0"
    # Chunked: the count is of the body bytes as sent (chunk framing included).
    s = socket.create_connection((b.host, b.port), timeout=T)
    try:
        chunked = b"5\r\nhello\r\n0\r\n\r\n"
        s.sendall(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
        resp = read_response(s)
        assert b"X-Body-Bytes: %d\r\n" % len(chunked) in resp
    finally:
        s.close()


def read_response(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        assert chunk
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    n = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    while len(rest) < n:
        rest += s.recv(4096)
    return head + b"\r\n\r\n" + rest


def test_keep_alive_and_pipelining(backend):
    b = backend()
    s = socket.create_connection((b.host, b.port), timeout=T)
    try:
        s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = b""
        deadline = time.monotonic() + T
        while buf.count(b"hello blue") < 2 and time.monotonic() < deadline:
            buf += s.recv(4096)
        assert buf.index(b"hello blue GET /a") < buf.index(b"hello blue GET /b")
        s.sendall(b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        resp = read_response(s)
        assert b"Connection: close" in resp and resp.endswith(b"hello blue GET /c")
        assert s.recv(1) == b""
    finally:
        s.close()


def test_status_override_and_delay(backend):
    b = backend("--http-delay", "300")
    t0 = time.monotonic()
    status, _, _ = b.http("GET", "/x", headers={"X-Backend-Status": "500"})
    assert status == 500
    assert time.monotonic() - t0 >= 0.29


# ---- stats, capacity, records ------------------------------------------------------

def test_stats_counts_and_peaks(backend):
    b = backend()

    async def go():
        conns = await asyncio.gather(*[connect(b.url) for _ in range(50)])
        for ws in conns:
            assert await ws.recv() == "hello blue"
        await conns[0].send("one")
        await conns[0].recv()
        st = b.stats()
        assert st["open"] == 50
        await asyncio.gather(*[ws.close() for ws in conns])
        return st
    st = run(go())
    assert st["name"] == "blue"
    assert st["handshakes"] == 50 and st["rejected"] == 0 and st["messages"] == 1
    assert 50 >= st["peak_1s"] >= 50
    assert 1 <= st["peak_100ms"] <= 50
    deadline = time.monotonic() + T
    while b.stats()["open"] != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b.stats()["open"] == 0


def window_peak(stamps, w):
    return max(sum(1 for u in stamps if t - w < u <= t) for t in stamps)


def test_peak_windows_are_exact(backend, tmp_path):
    path = tmp_path / "hs.txt"
    b = backend("--record", str(path))

    async def hello():
        async with connect(b.url) as ws:
            await ws.recv()

    async def go():
        # 5 handshakes at once, a pause of 300 ms, 5 more: peak_100ms is 5, peak_1s 10.
        for _ in range(2):
            await asyncio.gather(*[hello() for _ in range(5)])
            await asyncio.sleep(0.3)
    run(go())
    st = b.stats()
    time.sleep(0.3)
    stamps = [int(x) for x in path.read_text().split()]
    assert st["handshakes"] == len(stamps) == 10
    # The peaks use the monotonic clock, the file the wall clock: both in whole
    # milliseconds, so a window edge may fall one way in one and not the other.
    for key, w in (("peak_100ms", 100), ("peak_1s", 1000)):
        assert abs(st[key] - window_peak(stamps, w)) <= 1, (key, st, stamps)
    assert st["peak_100ms"] < 10
    if stamps[-1] - stamps[0] < 990:
        assert st["peak_1s"] == 10


def test_capacity_rejects_excess_with_503(backend):
    b = backend("--capacity", "20", "--burst", "5")

    async def one():
        try:
            async with connect(b.url) as ws:
                await ws.recv()
                return "ok"
        except websockets.InvalidStatusCode as e:
            assert e.status_code == 503
            return "503"
    async def storm(n):
        return await asyncio.gather(*[one() for _ in range(n)])
    t0 = time.monotonic()
    results = run(storm(30))
    took = time.monotonic() - t0
    ok = results.count("ok")
    # 5 from the burst plus at most 20/s for the time the storm takes.
    assert 5 <= ok <= 5 + int(20 * took) + 1, (results, took)
    assert results.count("503") == 30 - ok
    st = b.stats()
    assert st["handshakes"] == ok and st["rejected"] == 30 - ok
    time.sleep(0.5)   # the bucket refills: 10 tokens, capped at the burst of 5
    results = run(storm(5))
    assert results == ["ok"] * 5


def test_overload_exit_falls_over_with_status_3(backend):
    b = Backend("--capacity", "1", "--burst", "1", "--overload", "exit")

    async def go():
        async with connect(b.url) as ws:
            await ws.recv()
        with pytest.raises((websockets.InvalidHandshake, OSError, EOFError)):
            async with connect(b.url) as ws:
                await ws.recv()
    try:
        run(go())
        assert b.proc.wait(timeout=T) == 3
    finally:
        b.stop(signal.SIGKILL)


def test_record_file_lines(backend, tmp_path):
    path = tmp_path / "hs.txt"
    b = backend("--record", str(path))
    before = int(time.time() * 1000)

    async def go():
        for _ in range(7):
            async with connect(b.url) as ws:
                await ws.recv()
    run(go())
    after = int(time.time() * 1000)
    time.sleep(0.3)   # flushed at most every 100 ms
    lines = path.read_text().splitlines()
    assert len(lines) == 7
    stamps = [int(x) for x in lines]
    assert stamps == sorted(stamps)
    assert before - 5 <= stamps[0] and stamps[-1] <= after + 5


def test_log_messages_lines(backend, tmp_path):
    path = tmp_path / "msgs.txt"
    b = backend("--log-messages", str(path))

    async def go():
        async with connect(b.url) as a, connect(b.url) as c:
            await a.recv()
            await c.recv()
            for i in range(20):
                await a.send("a:%d" % i)
                await c.send("c:%d" % i)
                await c.send(b"binary is not logged")
            await a.send(["frag", "mented"])
            for _ in range(21):
                await a.recv()
            for _ in range(40):
                await c.recv()
    run(go())
    time.sleep(0.3)
    lines = path.read_text().splitlines()
    assert sorted(lines) == sorted(["a:%d" % i for i in range(20)] +
                                   ["c:%d" % i for i in range(20)] + ["fragmented"])
    assert [x for x in lines if x.startswith("a:")] == ["a:%d" % i for i in range(20)]


def test_sigterm_closes_connections_flushes_and_exits_0(tmp_path):
    path = tmp_path / "msgs.txt"
    b = Backend("--log-messages", str(path))

    async def go():
        ws = await connect(b.url)
        await ws.recv()
        await ws.send("last:1")
        await ws.recv()
        assert b.stop() == 0
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), T)
    run(go())
    assert path.read_text() == "last:1\n"


# ---- protocol edges (raw frames) ---------------------------------------------------

def close_code(payload):
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None


@pytest.mark.parametrize("frame,expect", [
    (client_frame(9, b"p" * 126), 1002),                  # control frame over 125 bytes
    (client_frame(8, struct.pack("!H", 1005)), 1002),     # code not allowed on the wire
    (client_frame(8, struct.pack("!H", 3999) + b"r"), 3999),
    (client_frame(8, b""), None),                         # empty close, empty answer
])
def test_close_answers(backend, frame, expect):
    b = backend()
    s = raw_ws(b)
    try:
        recv_frame(s)
        s.sendall(frame)
        fin, op, payload = recv_frame(s)
        assert op == 8 and close_code(payload) == expect
        if expect is None:
            assert payload == b""
        assert s.recv(1) == b""
    finally:
        s.close()


def test_text_echoed_byte_exact_even_when_not_utf8(backend):
    # A streaming echo cannot refuse a frame it already began to send back:
    # the bytes return as they came and the client judges them.
    b = backend()
    s = raw_ws(b)
    try:
        recv_frame(s)
        s.sendall(client_frame(1, b"\xff\xfe"))
        assert recv_frame(s) == (True, 1, b"\xff\xfe")
    finally:
        s.close()


def test_close_after_hello_gives_up_on_silent_client(backend):
    b = backend("--close-after-hello", "1012")
    s = raw_ws(b)
    try:
        assert recv_frame(s) == (True, 1, b"hello blue")
        fin, op, payload = recv_frame(s)
        assert op == 8 and close_code(payload) == 1012
        t0 = time.monotonic()
        assert s.recv(1) == b""   # closed after the 5 s grace, without our reply
        assert 4.0 <= time.monotonic() - t0 <= 7.0
    finally:
        s.close()


def test_malformed_http_gets_400_and_close(backend):
    b = backend()
    s = socket.create_connection((b.host, b.port), timeout=T)
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        resp = read_response(s)
        assert resp.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in resp
        assert s.recv(1) == b""
    finally:
        s.close()
    assert b.stats()["bad_requests"] == 1


# ---- scale ---------------------------------------------------------------------------

def test_ten_thousand_connections_small_memory(backend):
    import resource
    n = 10000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < n + 200:
        pytest.skip("RLIMIT_NOFILE hard limit %d is too low" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    b = backend()
    req = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")

    async def one(sem):
        async with sem:
            r, w = await asyncio.open_connection(b.host, b.port)
            w.write(req)
            await r.readuntil(b"\r\n\r\n")
            assert await r.readexactly(12) == b"\x81\x0ahello blue"
            return r, w

    async def go():
        rss0 = rss_kib(b.proc.pid)
        sem = asyncio.Semaphore(500)
        conns = await asyncio.gather(*[one(sem) for _ in range(n)])
        rss1 = rss_kib(b.proc.pid)
        assert b.stats()["open"] == n
        for r, w in conns[::100]:
            w.write(client_frame(1, b"still here"))
        for r, w in conns[::100]:
            assert await r.readexactly(12) == b"\x81\x0astill here"
        for r, w in conns:
            w.close()
        return rss1 - rss0
    try:
        grown = run(go())
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    with open("/proc/%d/maps" % b.proc.pid) as f:
        maps = f.read()
        sanitized = "libasan" in maps or "libtsan" in maps   # shadow memory multiplies the cost
    if not sanitized:
        assert grown * 1024 / n < 3000, "%.0f bytes per idle connection" % (grown * 1024 / n)
    deadline = time.monotonic() + T
    while b.stats()["open"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b.stats()["open"] == 0
