"""Shared harness for the integration tests: start the real binaries on
loopback, wait for them with bounded waits, stop them by PID.

Every process a test needs is started here, from the test, and stopped by
its PID; every wait has a deadline (T seconds unless a test says otherwise).
"""
import asyncio
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

SRC = os.environ.get("SLUICE_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SLUICE_BUILD_ROOT", os.path.join(SRC, "build"))
SLUICE = os.environ.get("SLUICE_BIN", os.path.join(BUILD, "sluice"))
BACKEND = os.environ.get("SLUICE_BACKEND_BIN", os.path.join(BUILD, "bench", "sluice-backend"))
T = 10  # seconds: the default bound on every wait


def sanitized(pid):
    """Is the process built with a sanitizer? ASan's quarantine and shadow
    memory make RSS say little about sluice's own memory, so memory tests
    then check only bounds that still mean something."""
    if os.environ.get("SLUICE_SANITIZED") == "1":
        return True
    with open("/proc/%d/maps" % pid) as f:
        maps = f.read()
    return "libasan" in maps or "libtsan" in maps


_given_ports = set()


def free_port(host="127.0.0.1"):
    """A port that was free a moment ago (the kernel's choice), and not one
    this process was given before: `port, admin = free_port(), free_port()`
    could otherwise name one port twice, and sluice refuses that config."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(100):
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _given_ports:
            _given_ports.add(port)
            return port
    raise AssertionError("no port this process was not given already")


def wait_port(host, port, proc=None, timeout=T):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError("process exited with %s before listening" % proc.returncode)
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise AssertionError("nothing listening on %s:%d after %ss" % (host, port, timeout))


def wait_until(pred, timeout=T, step=0.05):
    """Poll pred until it returns something true (returned) or the timeout (None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return None


# ---- the gateway's /metrics (Prometheus text) ----

_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$")


def scrape(admin_port):
    """The /metrics text of the admin API on admin_port."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin_port, timeout=T) as r:
        return r.read().decode()


def metric_samples(text, name):
    """Every sample of `name`: {((label, value), ...) sorted: float}."""
    out = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m and m.group(1) == name:
            labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(2) or "")))
            out[labels] = float(m.group(3))
    return out


def metric(text, name, **labels):
    """The sample of `name` whose labels are exactly `labels`; an AssertionError
    that lists the family's samples when there is none."""
    found = metric_samples(text, name)
    want = tuple(sorted(labels.items()))
    if want not in found:
        raise AssertionError("no sample %s%s; the family has: %s"
                             % (name, dict(want), sorted(found.items())[:20] or "nothing"))
    return found[want]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def _favour():
    """Run in the child before exec: a higher CPU priority, where allowed.

    Tests that measure pacing at the backend (a rate bound in any 1 s window)
    share two cores between the gateway, the backend and thousands of Python
    clients; when the clients starve the gateway, grants already made reach
    the backend late and in a bunch, and the bound then measures the
    scheduler. Set before exec, so every thread the program starts inherits it.
    Unprivileged runs keep the default priority."""
    try:
        os.nice(-10)
    except OSError:
        pass


class Proc:
    """A child process with its stderr kept in a file, stopped by PID.

    favoured=True runs it at a higher CPU priority than the test's clients
    (see _favour)."""

    def __init__(self, argv, name, favoured=False):
        self.log = tempfile.NamedTemporaryFile(prefix=name + "-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log,
                                     stdin=subprocess.DEVNULL, text=True,
                                     preexec_fn=_favour if favoured else None)
        self.pid = self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=T):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=T)
            raise AssertionError("%s did not exit within %ss" % (self.proc.args[0], timeout))
        finally:
            if self.proc.stdout:
                self.proc.stdout.close()

    def output(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()


def socket_option_in(pid, peer, level, option):
    """getsockopt on the TCP socket of process `pid` whose peer address is
    `peer` ((host, port)), read through a duplicate of its descriptor
    (pidfd_getfd(2), Linux 5.6; the test runs as root or as the owner)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if not os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:"):
                    continue
            except OSError:
                continue   # closed meanwhile
            dup = libc.syscall(438, pidfd, int(fd), 0)   # SYS_pidfd_getfd
            if dup < 0:
                raise OSError(ctypes.get_errno(), "pidfd_getfd")
            s = socket.socket(fileno=dup)
            try:
                if s.type == socket.SOCK_STREAM and s.getpeername()[:2] == peer:
                    return s.getsockopt(level, option)
            except OSError:
                pass   # a listening or unconnected socket
            finally:
                s.close()
    finally:
        os.close(pidfd)
    raise AssertionError("process %d has no socket connected to %s" % (pid, peer))


# struct tcp_info fields the tests read, by their offsets in linux/tcp.h
# (all __u32; the times count back from now, in ms).
TCP_INFO_FIELDS = {"last_data_sent": 44, "last_data_recv": 52, "last_ack_recv": 56,
                   "segs_in": 140, "data_segs_in": 152}


def tcp_info(sock):
    """The TCP_INFO fields of TCP_INFO_FIELDS for a connected socket."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 160)
    return {name: struct.unpack_from("I", info, off)[0] for name, off in TCP_INFO_FIELDS.items()}


def stop_all(main, *others):
    """Stop `main` (the gateway under test) and then every other process,
    whatever happens on the way, and only then require that `main` exited
    cleanly (status 0). Use in a test's `finally:` so a failed exit status
    never leaves a backend running."""
    rc = None
    try:
        rc = main.stop()
    finally:
        for p in others:
            p.stop()
    assert rc == 0, "%s exited with status %s; its log ends:\n%s" % (
        os.path.basename(main.proc.args[0]), rc, main.output()[-3000:])


class Backend(Proc):
    """The C backend simulator (bench/backend.c) on a loopback port."""

    def __init__(self, name="blue", *args, port=None, host="127.0.0.1", favoured=False):
        self.host = host
        self.port = port or free_port(host)
        self.name = name
        hp = "[%s]" % host if ":" in host else host
        self.addr = "%s:%d" % (hp, self.port)
        super().__init__([BACKEND, "--listen", self.addr, "--name", name, *args], "backend-" + name,
                         favoured)
        wait_port(host, self.port, self.proc)


class Sluice(Proc):
    """The real sluice binary on an inline config, listening on self.port."""

    def __init__(self, config, port=None, host="127.0.0.1", wait=True, favoured=False):
        self.host = host
        self.port = port
        self.cfg = tempfile.NamedTemporaryFile("w", prefix="sluice-", suffix=".yaml", delete=False)
        self.cfg.write(config)
        self.cfg.close()
        super().__init__([SLUICE, "-c", self.cfg.name], "sluice", favoured)
        if wait and port:
            wait_port(host, port, self.proc)
        hp = "[%s]" % host if ":" in host else host
        self.url = "ws://%s:%s/" % (hp, port)
        self.base = "http://%s:%s" % (hp, port)


def config(port, pools, listen_host="127.0.0.1", extra="", service_extra="", workers=1,
           listener_extra=""):
    """A config text: one listener, the given pools ({name: [addr, ...]}), one
    service "app" routing everything to the first pool."""
    hp = "[%s]" % listen_host if ":" in listen_host else listen_host
    lines = ["listeners:", '  - address: "%s:%d"' % (hp, port)]
    if listener_extra:
        lines += ["    " + l for l in listener_extra.strip("\n").split("\n")]
    lines += ["workers: %d" % workers, "pools:"]
    for name, addrs in pools.items():
        lines.append("  %s:" % name)
        lines.append("    backends:")
        for a in addrs:
            lines.append('      - address: "%s"' % a)
    names = list(pools)
    lines += ["services:", "  app:", "    routes: [ { host: \"*\", path_prefix: / } ]",
              "    pools: [%s]" % ", ".join(names), "    active: %s" % names[0]]
    if service_extra:
        lines += ["    " + l for l in service_extra.strip("\n").split("\n")]
    if extra:
        lines.append(extra.strip("\n"))
    return "\n".join(lines) + "\n"


def run(coro, timeout=60):
    """Run a coroutine with a bound on its time."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def raw_connect(port, host="127.0.0.1", timeout=T):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_until(sock, marker, limit=1 << 20, timeout=T):
    """Read until `marker` (bytes) has arrived; return everything read."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while marker not in data and len(data) < limit and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def recv_all(sock, timeout=T):
    """Read until the peer closes (or the deadline)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        data += chunk
    return data


def exchange(port, data, timeout=T):
    """Connect, send data, and return all the peer sends until it closes."""
    s = raw_connect(port, timeout=timeout)
    try:
        s.sendall(data)
        return recv_all(s, timeout=timeout)
    finally:
        s.close()


def status_of(response):
    m = re.match(rb"HTTP/1\.[01] (\d{3})", response)
    return int(m.group(1)) if m else None


# ---- added for the proxy core tests: raw WebSocket and helper-server tools ----

import base64
import hashlib
import struct
import sys

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
SERVERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "servers")


def ws_accept(key):
    """The Sec-WebSocket-Accept value RFC 6455 derives from a key."""
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


def switching_protocols(key):
    """A backend's 101 answer head to an upgrade request with this key."""
    return ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % ws_accept(key)).encode()


def ws_key_of(head):
    """The Sec-WebSocket-Key of a raw request head (bytes), as a str; None if absent."""
    keys = [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")]
    return keys[0].decode() if keys else None


def frames_until_close(sock, buf=b"", timeout=8):
    """Frames read from sock (buf: bytes already read past the head) until
    a close: (opcode, payload) for a close, (opcode, length) for the rest,
    and the repr of the error that ended the reading, if one did."""
    reader = WsConn.__new__(WsConn)
    reader.sock, reader.buf, frames = sock, buf, []
    try:
        while True:
            f = reader.read_frame(timeout=timeout)
            frames.append((f.opcode, f.payload if f.opcode == 8 else len(f.payload)))
            if f.opcode == 8:
                return frames
    except (OSError, EOFError) as e:
        frames.append(repr(e))
        return frames


def message_then_end_reaches(port, backend, ending="hang-up"):
    """The busy-backend tests' client: a WebSocket through the gateway at
    port, whose backend writes without pause and is slow to read; once the
    backend's stream is backed up in the gateway, a whole 400 kB message,
    then a bad frame ("protocol error") or a half-close without a close
    frame ("hang-up"). The backend (its .frames, .ended) must get the
    message whole and then a close 1001."""
    c = WsConn(port)
    try:
        assert c.status == 101, c.response
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        time.sleep(1.0)                      # the backend's stream is backed up in the gateway
        c.send(ws_frame(2, b"M" * 400000))
        if ending == "protocol error":
            c.send(ws_frame(1, b"\xff"))      # invalid UTF-8: the gateway aborts
        else:
            c.sock.shutdown(socket.SHUT_WR)  # no close frame
        assert backend.ended.wait(15)
        assert backend.frames[0] == (2, 400000), backend.frames[:3]
        assert backend.frames[-1][0] == 8 and backend.frames[-1][1][:2] == b"\x03\xe9", \
            backend.frames[-3:]                                         # 1001
    finally:
        c.close()


def gateway_before(b, extra=""):
    """A module fixture's body: a gateway (config `extra`) in front of
    backend b, checked alive and cleanly stopped at the end, b stopped too."""
    port = free_port()
    s = Sluice(config(port, {"blue": [b.addr]}, extra=extra), port=port)
    s.backend = b
    yield s
    alive = s.alive()
    try:
        rc = s.stop()
    finally:
        b.close() if isinstance(b, ThreadBackend) else b.stop()
    assert alive, "sluice died:\n" + s.output()[-3000:]
    assert rc == 0, s.output()[-3000:]


def upgrade_request(path="/", host="test.local", key=WS_KEY, version="13", extra="",
                    method="GET", proto="HTTP/1.1"):
    """The bytes of a WebSocket upgrade request (extra: header lines with CRLF)."""
    lines = ["%s %s %s" % (method, path, proto), "Host: %s" % host, "Upgrade: websocket",
             "Connection: Upgrade"]
    if key is not None:
        lines.append("Sec-WebSocket-Key: %s" % key)
    if version is not None:
        lines.append("Sec-WebSocket-Version: %s" % version)
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def ws_frame(opcode, payload=b"", fin=True, mask=True, rsv=0, mask_key=b"\x11\x22\x33\x44",
             length=None):
    """One frame's bytes. `length` overrides the header's payload length (to
    send a header alone); rsv is the 3 reserved bits as a number 0..7."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 0xF)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    body = bytes(c ^ mask_key[i & 3] for i, c in enumerate(payload)) if len(payload) < 4096 \
        else _mask_fast(payload, mask_key)
    return head + mask_key + body


def _mask_fast(payload, key):
    # XOR as big integers over the whole length: exact and fast for 16 MiB.
    rep = (key * (len(payload) // 4 + 1))[:len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(rep, "big")).to_bytes(len(payload), "big")


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


class Frame:
    def __init__(self, fin, rsv, opcode, masked, payload):
        self.fin, self.rsv, self.opcode, self.masked, self.payload = fin, rsv, opcode, masked, payload

    @property
    def close_code(self):
        assert self.opcode == 8, "not a close frame: opcode %d" % self.opcode
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    def __repr__(self):
        return "Frame(fin=%s, op=%d, masked=%s, len=%d, %r)" % (
            self.fin, self.opcode, self.masked, len(self.payload), self.payload[:40])


class WsConn:
    """A raw client WebSocket over a plain socket: the handshake, then frames
    read and parsed from the raw bytes (nothing is interpreted for us)."""

    def __init__(self, port, host="127.0.0.1", request=None, local_addr=None, timeout=T,
                 early=b"", early_after=0.0):
        """early: bytes sent early_after seconds after the request, before
        the response is read (frames a client sends before the 101)."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if local_addr:   # an address, or (address, port)
            self.sock.bind(local_addr if isinstance(local_addr, tuple) else (local_addr, 0))
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(request or upgrade_request())
        if early:
            time.sleep(early_after)
            self.sock.sendall(early)
        data = recv_until(self.sock, b"\r\n\r\n", timeout=timeout)
        end = data.find(b"\r\n\r\n")
        assert end >= 0, "no response head: %r" % data[:300]
        self.response = data[:end + 4]
        self.buf = data[end + 4:]
        self.status = status_of(self.response)

    def send(self, data):
        self.sock.sendall(data)

    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("frame not complete in time")
            self.sock.settimeout(left)
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("connection closed with %d bytes pending" % len(self.buf))
            self.buf += chunk

    def read_frame(self, timeout=T):
        """The next frame; EOFError when the peer closes first."""
        deadline = time.monotonic() + timeout
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        n, pos = b1 & 0x7F, 2
        if n == 126:
            self._need(4, deadline)
            n, pos = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10, deadline)
            n, pos = struct.unpack("!Q", self.buf[2:10])[0], 10
        masked = bool(b1 & 0x80)
        key = b""
        if masked:
            self._need(pos + 4, deadline)
            key, pos = self.buf[pos:pos + 4], pos + 4
        self._need(pos + n, deadline)
        payload = self.buf[pos:pos + n]
        self.buf = self.buf[pos + n:]
        if masked:
            payload = _mask_fast(payload, key)
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, masked, payload)

    def read_until_close(self, timeout=T):
        """Frames until a close frame; returns (frames before, the close frame)."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            f = self.read_frame(max(0.01, deadline - time.monotonic()))
            if f.opcode == 8:
                return seen, f
            seen.append(f)

    def read_message(self, timeout=T):
        """A whole data message (control frames are collected in self.control)."""
        deadline = time.monotonic() + timeout
        parts, op = [], None
        self.control = getattr(self, "control", [])
        while True:
            f = self.read_frame(max(0.01, deadline - time.monotonic()))
            if f.opcode >= 8:
                self.control.append(f)
                if f.opcode == 8:
                    raise AssertionError("close %r while reading a message" % f)
                continue
            if op is None:
                op = f.opcode
            parts.append(f.payload)
            if f.fin:
                return op, b"".join(parts)

    def wait_eof(self, timeout=T):
        """Read (and discard) until the peer closes; True when it did in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not chunk:
                return True
        return False

    def close(self):
        self.sock.close()


class PyServer(Proc):
    """A helper server from tests/integration/servers/, on a free port."""

    def __init__(self, script, *args, port=None, host="127.0.0.1"):
        self.host = host
        self.port = port or free_port(host)
        self.addr = "%s:%d" % (host, self.port)
        super().__init__([sys.executable, os.path.join(SERVERS, script), "--port",
                          str(self.port), *args], "py-" + script)
        # Wait for its "listening" line rather than probing the port, so that
        # a server which logs connections sees only the test's own.
        import select
        deadline = time.monotonic() + T
        line = ""
        while "listening" not in line:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise AssertionError("%s did not start: %s" % (script, self.output()))
            if select.select([self.proc.stdout], [], [], left)[0]:
                line = self.proc.stdout.readline()


class ThreadBackend:
    """A backend served by threads of the test process, for tests that must
    see or steer each connection on the backend side. A subclass defines
    handle(conn); each accepted connection is served in its own thread
    (per_connection_thread) or one after another in the accept thread.
    close() closes the listener and every accepted connection."""

    def __init__(self, backlog=64, per_connection_thread=True):
        self.per_connection_thread = per_connection_thread
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:   # closed by close()
                return
            self.conns.append(c)
            if self.per_connection_thread:
                threading.Thread(target=self.handle, args=(c,), daemon=True).start()
            else:
                self.handle(c)

    def handle(self, conn):
        raise NotImplementedError

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()

    stop = close   # stops like the other backends (stop_all, Gateway.stop)


class Response:
    """One HTTP response read from raw bytes: status, headers (list of
    (name, value) as sent), body (de-chunked), raw (every byte of it)."""

    def __init__(self, status, headers, body, raw):
        self.status, self.headers, self.body, self.raw = status, headers, body, raw

    def header(self, name):
        vals = [v for k, v in self.headers if k.lower() == name.lower()]
        return vals[0] if vals else None

    def __repr__(self):
        return "Response(%s, %r, %r)" % (self.status, self.headers, self.body[:200])


class HttpReader:
    """Reads HTTP/1.1 responses one by one from a socket (keep-alive and
    pipelining aware: bytes after a response stay for the next)."""

    def __init__(self, sock, timeout=T):
        self.sock, self.buf, self.timeout = sock, b"", timeout

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("response not complete in time: %r" % self.buf[:300])
        self.sock.settimeout(left)
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("connection closed; pending %r" % self.buf[:300])
        self.buf += chunk

    def _take_line(self, deadline):
        while b"\r\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read(self, method="GET", timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        start = self.buf
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = [tuple(x.strip() for x in l.split(":", 1)) for l in lines[1:]]
        r = Response(status, headers, b"", b"")
        te = (r.header("transfer-encoding") or "").lower()
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in te:
            body = b""
            while True:
                size = int(self._take_line(deadline).split(b";")[0], 16)
                if size == 0:
                    while self._take_line(deadline) != b"":
                        pass
                    break
                body += self._take(size, deadline)
                assert self._take(2, deadline) == b"\r\n"
        elif r.header("content-length") is not None:
            body = self._take(int(r.header("content-length")), deadline)
        else:
            while True:
                try:
                    self._fill(deadline)
                except EOFError:
                    break
            body, self.buf = self.buf, b""
        r.body = body
        r.raw = start[:len(start) - len(self.buf)] if self.buf else start
        return r
