"""Cheap WebSocket clients for the storm tests: raw asyncio streams that send
the upgrade and read the answer. python3-websockets does the same work with
more CPU per handshake; thousands of clients in one test need the cheap path
to arrive within a second. The normal paths use python3-websockets.
"""
import asyncio
import base64
import os
import re
import struct
import time


def upgrade_request(host, port, path="/"):
    key = base64.b64encode(os.urandom(16)).decode()
    return ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (path, host, port, key)).encode()


def parse_head(head):
    status = int(head[9:12])
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        if b":" in line:
            k, v = line.split(b":", 1)
            headers[k.strip().lower().decode()] = v.strip().decode()
    return status, headers


async def read_frame(reader):
    """One unmasked server frame: (opcode, payload)."""
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    return b0 & 0x0F, await reader.readexactly(n)


def masked_frame(opcode, payload):
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Outcome:
    """What happened to one client over its attempts."""

    def __init__(self):
        self.connected = False
        self.hello = None
        self.rejections = []      # (status or close code, retry-after seconds)
        self.failure = None
        self.writer = None


async def connect_once(port, source, path="/", timeout=60):
    """Returns (kind, value, reader, writer): kind is 'ws' (value: hello text),
    'http' (value: (status, headers)), 'close' (value: (code, reason))."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), timeout)
    writer.write(upgrade_request("127.0.0.1", port, path))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    status, headers = parse_head(head)
    if status != 101:
        writer.close()
        return "http", (status, headers), None, None
    opcode, payload = await asyncio.wait_for(read_frame(reader), timeout)
    if opcode == 8:
        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        writer.write(masked_frame(8, payload[:2]))
        writer.close()
        return "close", (code, payload[2:].decode(errors="replace")), None, None
    return "ws", payload.decode(errors="replace"), reader, writer


async def storm_client(i, port, honour, deadline, start_delay, path="/"):
    """Connect; when turned away, come back after the delay given (when honour)."""
    out = Outcome()
    await asyncio.sleep(start_delay)
    source = "127.0.0.%d" % (2 + i % 8)
    while time.monotonic() < deadline:
        try:
            kind, value, reader, writer = await connect_once(port, source, path,
                                                             max(1, deadline - time.monotonic()))
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            out.failure = repr(e)
            return out
        if kind == "ws":
            out.connected, out.hello, out.writer = True, value, writer
            out.reader = reader
            return out
        if kind == "http":
            status, headers = value
            if status not in (429, 503) or "retry-after" not in headers:
                out.failure = "status %d" % status
                return out
            delay = float(headers["retry-after"])
            out.rejections.append((status, delay))
        else:
            code, reason = value
            m = re.match(r"retry-after=([0-9.]+)$", reason)
            if code != 1013 or not m:
                out.failure = "close %d %r" % (code, reason)
                return out
            delay = float(m.group(1))
            out.rejections.append((code, delay))
        if not honour:
            return out
        await asyncio.sleep(delay)
    out.failure = out.failure or "deadline"
    return out


def peak_window(times_ms, window_ms):
    """(most events in any window of window_ms, the window's first time); sliding, exact."""
    times_ms = sorted(times_ms)
    best, start, lo = 0, None, 0
    for hi, t in enumerate(times_ms):
        while t - times_ms[lo] >= window_ms:
            lo += 1
        if hi - lo + 1 > best:
            best, start = hi - lo + 1, times_ms[lo]
    return best, start


def peak_in_window(times_ms, window_ms):
    """The most events in any window of window_ms (sliding, exact)."""
    return peak_window(times_ms, window_ms)[0]


def peak_report(times_ms, window_ms):
    """Where the peak window sits, in 100 ms slots from 200 ms before it: for a failure message."""
    peak, start = peak_window(times_ms, window_ms)
    if start is None:
        return "no events"
    first = min(times_ms)
    slots = [sum(1 for t in times_ms if start + k * 100 <= t < start + (k + 1) * 100)
             for k in range(-2, window_ms // 100 + 2)]
    return ("%d in %d ms from +%d ms after the first of %d; per 100 ms from 200 ms before: %s"
            % (peak, window_ms, start - first, len(times_ms), slots))
