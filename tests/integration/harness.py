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
import time

SRC = os.environ.get("SLUICE_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SLUICE_BUILD_ROOT", os.path.join(SRC, "build"))
SLUICE = os.environ.get("SLUICE_BIN", os.path.join(BUILD, "sluice"))
BACKEND = os.environ.get("SLUICE_BACKEND_BIN", os.path.join(BUILD, "bench", "sluice-backend"))
T = 10  # seconds: the default bound on every wait


def free_port(host="127.0.0.1"):
    """A port that was free a moment ago (the kernel's choice)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


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


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


class Proc:
    """A child process with its stderr kept in a file, stopped by PID."""

    def __init__(self, argv, name):
        self.log = tempfile.NamedTemporaryFile(prefix=name + "-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log,
                                     stdin=subprocess.DEVNULL, text=True)
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


class Backend(Proc):
    """The C backend simulator (bench/backend.c) on a loopback port."""

    def __init__(self, name="blue", *args, port=None, host="127.0.0.1"):
        self.host = host
        self.port = port or free_port(host)
        self.name = name
        hp = "[%s]" % host if ":" in host else host
        self.addr = "%s:%d" % (hp, self.port)
        super().__init__([BACKEND, "--listen", self.addr, "--name", name, *args], "backend-" + name)
        wait_port(host, self.port, self.proc)


class Sluice(Proc):
    """The real sluice binary on an inline config, listening on self.port."""

    def __init__(self, config, port=None, host="127.0.0.1", wait=True):
        self.host = host
        self.port = port
        self.cfg = tempfile.NamedTemporaryFile("w", prefix="sluice-", suffix=".yaml", delete=False)
        self.cfg.write(config)
        self.cfg.close()
        super().__init__([SLUICE, "-c", self.cfg.name], "sluice")
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
    lines = ["listeners:", "  - address: %s:%d" % (hp, port)]
    if listener_extra:
        lines += ["    " + l for l in listener_extra.strip("\n").split("\n")]
    lines += ["workers: %d" % workers, "pools:"]
    for name, addrs in pools.items():
        lines.append("  %s:" % name)
        lines.append("    backends:")
        for a in addrs:
            lines.append("      - address: %s" % a)
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


def status_of(response):
    m = re.match(rb"HTTP/1\.[01] (\d{3})", response)
    return int(m.group(1)) if m else None
