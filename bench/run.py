#!/usr/bin/python3
"""bench/run.py: sluice against HAProxy and nginx, same machine, same run (issue 8).

Why it is built this way:
- Throughput on a shared 2-core machine swings, so the figures that matter are the
  proxy's CPU time per operation (utime+stime from /proc/PID/stat over the process
  tree) and its RSS per connection; the proxy is pinned to core 0, load generator
  and backends to core 1, and the systems are interleaved, each repetition starting
  one system later (sluice, haproxy, nginx; haproxy, nginx, sluice; ...), with medians
  over repetitions.
- Every process is started here, remembered by PID and stopped by PID (atexit and
  on SIGINT/SIGTERM too); every wait is a loop bounded in count and time; only
  127.0.0.1-127.0.0.9 is used.
- Peer configs are committed templates (bench/peers/*.in) rendered into a private
  temp directory and checked warning-free (haproxy -c, nginx -t, sluice --check)
  before any measurement.

Usage: bench/run.py --quick | --full   (see bench/BENCH.md)
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

PORT = {"sluice": 28080, "haproxy": 28081, "nginx": 28082}
TLS_PORT = {"sluice": 28443, "haproxy": 28444, "nginx": 28445}
ADMIN_PORT = 28990
BLUE, GREEN, DIRECT = 28901, 28902, 28901
SOURCES = "127.0.0.2-127.0.0.9"
# The backend takes 900 handshakes/s from a bucket of 90 (sluice-backend's
# default burst, a tenth of its rate). Every gateway is set below both:
# 800/s, and a burst of rate * 0.1 s = 80 as docs/admission.md advises. (A
# burst at or above the backend's bucket measures the backend's own 503s:
# grants that reach it a few ms late in a bunch find its bucket empty.)
RATE, BURST, CAPACITY = 800, 80, 900
PROXY_CORE, LOAD_CORE = "0", "1"
SYSTEMS = ["sluice", "haproxy", "nginx"]
TICK = os.sysconf("SC_CLK_TCK")

PROCS = []          # every Popen started here, stopped by PID at exit
COMMANDS = {}       # row -> list of command lines (with the temp dir as $DIR)
DIR = None
ARGS = None


def log(*a):
    print("[bench %6.1fs]" % (time.time() - T_START), *a, file=sys.stderr, flush=True)


T_START = time.time()


# ---------------------------------------------------------------- processes

def note_cmd(row, cmd):
    """Remember a command line for RESULTS.md (temp dir shown as $DIR)."""
    line = " ".join(cmd).replace(DIR, "$DIR").replace(REPO + "/", "")
    lst = COMMANDS.setdefault(row, [])
    if line not in lst:
        lst.append(line)


def start(cmd, core, name, row=None):
    """Start cmd pinned to core; stdout/stderr go to $DIR/name.out/.err."""
    full = ["taskset", "-c", core] + cmd
    if row:
        note_cmd(row, full)
    out = open(os.path.join(DIR, name + ".out"), "wb")
    err = open(os.path.join(DIR, name + ".err"), "wb")
    p = subprocess.Popen(full, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    p.bench_name, p.bench_out = name, out.name
    out.close()
    err.close()
    PROCS.append(p)
    return p


def tree(pid):
    """pid and its descendants (from /proc/PID/task/*/children)."""
    pids, todo = [], [pid]
    while todo and len(pids) < 64:
        p = todo.pop()
        pids.append(p)
        try:
            for t in os.listdir("/proc/%d/task" % p):
                with open("/proc/%d/task/%s/children" % (p, t)) as f:
                    todo += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return pids


def stop(p, sig=signal.SIGTERM, wait=10.0):
    """Stop one process by PID (and, for nginx, the workers it leaves)."""
    if p.poll() is not None:
        return p.returncode
    kids = [k for k in tree(p.pid) if k != p.pid]
    try:
        os.kill(p.pid, sig)
        p.wait(timeout=wait)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    for k in kids:
        for _ in range(50):
            if not os.path.exists("/proc/%d" % k) or is_zombie(k):
                break
            time.sleep(0.1)
        else:
            try:
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return p.returncode


def is_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def stop_all(*_):
    for p in reversed(PROCS):
        stop(p, signal.SIGKILL if p.bench_name.startswith("loadgen") else signal.SIGTERM, 5)


def cpu_s(pid):
    """utime+stime in seconds over pid's process tree."""
    total = 0
    for p in tree(pid):
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / TICK


def rss_kb(pid):
    """VmRSS in KiB over pid's process tree."""
    total = 0
    for p in tree(pid):
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def wait_port(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on 127.0.0.1:%d after %.0fs" % (port, timeout))


def http(port, path, body=None, method=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=body,
                                 method=method,
                                 headers={"Content-Type": "application/json"} if body else {})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read().decode())


def stats(port):
    try:
        return http(port, "/stats")
    except OSError:
        return None


def wait_until(pred, timeout, step=0.1):
    """Poll pred() every step s for at most timeout s; True when it held."""
    for _ in range(int(timeout / step) + 1):
        if pred():
            return True
        time.sleep(step)
    return False


def open_on(*ports):
    n = 0
    for port in ports:
        s = stats(port)
        n += s["open"] if s else 0
    return n


def run_quiet(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    return r.returncode, r.stdout.decode(errors="replace")


# ---------------------------------------------------------------- binaries

# The commit the binaries were built from, read when they are built: HEAD at
# the end of a 27-minute run may be a later commit than what was measured.
BUILT_FROM = None


def source_commit():
    head = run_quiet(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])[1].strip()
    dirty = run_quiet(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"])[1]
    return head + (" with uncommitted changes" if dirty.strip() else "")


def build_dir():
    global BUILT_FROM
    b = ARGS.build or os.path.join(REPO, "build-bench")
    BUILT_FROM = source_commit() if ARGS.build is None else \
        "binaries from %s (tree at %s)" % (b, source_commit())
    if ARGS.build is None:
        if not os.path.exists(os.path.join(b, "build.ninja")):
            subprocess.run(["meson", "setup", b, "--buildtype=release"], cwd=REPO, check=True,
                           stdout=subprocess.DEVNULL)
        subprocess.run(["ninja", "-C", b, "-j2", "sluice", "bench/sluice-loadgen",
                        "bench/sluice-backend", "bench/sluice-tlsbench"], check=True,
                       stdout=subprocess.DEVNULL)
    return b


def install_peers():
    """apt-get install haproxy nginx when missing; leave none of their daemons running."""
    if shutil.which("haproxy") and shutil.which("nginx"):
        return
    guard = "/usr/sbin/policy-rc.d"
    made = not os.path.exists(guard)
    if made:   # keep the packages' postinst from starting daemons on :80
        with open(guard, "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(guard, 0o755)
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "haproxy", "nginx"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
    finally:
        if made:
            os.unlink(guard)
    for svc in ("haproxy", "nginx"):
        for cmd in (["systemctl", "stop", svc], ["systemctl", "disable", svc]):
            if shutil.which(cmd[0]):
                subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for pidfile, comm in (("/run/nginx.pid", "nginx"), ("/run/haproxy.pid", "haproxy")):
        try:   # a daemon the install started: stop it by its PID
            pid = int(open(pidfile).read().split()[0])
            if open("/proc/%d/comm" % pid).read().strip() == comm:
                os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError, IndexError):
            pass


# ---------------------------------------------------------------- configs

def render(template, out, profile, tls=False, **kv):
    """Fill {{NAME}}s; keep '#@plain '/'#@protect '/'#@tls ' lines per profile."""
    keep = {"plain": profile == "plain", "protect": profile == "protect", "tls": tls}
    lines = []
    for line in open(os.path.join(HERE, "peers", template)):
        m = re.match(r"#@(\w+) ", line)
        if m:
            if not keep[m.group(1)]:
                continue
            line = line[m.end():]
        lines.append(line)
    text = "".join(lines)
    vals = dict(DIR=DIR, BLUE_PORT=BLUE, GREEN_PORT=GREEN, RATE=RATE, BURST=BURST,
                ADMIN_PORT=ADMIN_PORT, SHUTDOWN_TIMEOUT="5s", UPSTREAM_PORT=BLUE)
    vals.update(kv)
    text = re.sub(r"\{\{(\w+)\}\}", lambda m: str(vals[m.group(1)]), text)
    path = os.path.join(DIR, out)
    with open(path, "w") as f:
        f.write(text)
    return path


CHECKS = {}   # "haproxy plain" -> output of the check


def check(name, cmd, bad):
    rc, out = run_quiet(cmd)
    CHECKS[name] = (rc, out.strip())
    if rc != 0 or re.search(bad, out):
        raise RuntimeError("config check failed or warned: %s\n%s" % (" ".join(cmd), out))


class Proxy:
    """One system under test, started with a profile, stopped by PID."""

    def __init__(self, system, profile, row, tls=False):
        self.system, self.profile, self.row, self.tls = system, profile, row, tls
        self.port, self.tls_port = PORT[system], TLS_PORT[system]
        self.p = None

    def start(self):
        getattr(self, "_start_" + self.system)()
        wait_port(self.port)
        if self.tls:
            wait_port(self.tls_port)
        time.sleep(0.2)
        return self

    def _start_sluice(self):
        cfg = render("sluice.yaml.in", "sluice-%s.yaml" % self.profile, self.profile,
                     self.tls, PORT=self.port, TLS_PORT=self.tls_port)
        check("sluice " + self.profile, [SLUICE, "--check", "-c", cfg], r"(?i)warn")
        self.p = start([SLUICE, "-c", cfg], PROXY_CORE, "sluice", self.row)

    def _start_haproxy(self):
        cfg = render("haproxy.cfg.in", "haproxy-%s.cfg" % self.profile, self.profile,
                     self.tls, PORT=self.port, TLS_PORT=self.tls_port)
        check("haproxy " + self.profile, ["haproxy", "-c", "-f", cfg], r"WARNING|ALERT")
        self.p = start(["haproxy", "-db", "-f", cfg], PROXY_CORE, "haproxy", self.row)

    def _nginx_cfg(self, upstream):
        os.makedirs(os.path.join(DIR, "nginx-tmp"), exist_ok=True)
        return render("nginx.conf.in", "nginx-%s.conf" % self.profile, self.profile, self.tls,
                      PORT=self.port, TLS_PORT=self.tls_port, UPSTREAM_PORT=upstream)

    def _start_nginx(self):
        cfg = self._nginx_cfg(BLUE)
        check("nginx " + self.profile, ["nginx", "-t", "-c", cfg, "-p", DIR], r"\[warn\]|emerg")
        self.p = start(["nginx", "-c", cfg, "-p", DIR], PROXY_CORE, "nginx", self.row)

    def cpu(self):
        return cpu_s(self.p.pid)

    def rss(self):
        return rss_kb(self.p.pid)

    def stop(self):
        if self.p is not None:
            rc = stop(self.p, signal.SIGTERM if self.system != "nginx" else signal.SIGQUIT, 15)
            if self.p.poll() is None or (rc not in (0, None) and self.system == "sluice"):
                log("warning: %s exit status %s" % (self.system, rc))

    def cutover(self):
        """Move clients from blue to green with this system's own tool."""
        if self.system == "sluice":
            body = json.dumps({"to": "green", "ramp": "0s", "drain_rate": "%d/s" % RATE})
            http(ADMIN_PORT, "/api/v1/services/app/deploys", body.encode(), "POST")
        elif self.system == "haproxy":
            for c in ("set server app/green state ready", "set server app/blue state maint",
                      "shutdown sessions server app/blue"):
                haproxy_cmd(c)
        else:
            self._nginx_cfg(GREEN)
            os.kill(self.p.pid, signal.SIGHUP)


def haproxy_cmd(cmd):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(os.path.join(DIR, "haproxy.sock"))
    s.sendall((cmd + "\n").encode())
    out = b""
    for _ in range(100):
        d = s.recv(4096)
        if not d:
            break
        out += d
    s.close()
    return out.decode()


def backend(name, port, row, capacity=0, record=None, msglog=None):
    cmd = [BACKEND, "--listen", "127.0.0.1:%d" % port, "--name", name, "--quiet"]
    if capacity:
        cmd += ["--capacity", str(capacity)]
    if record:
        cmd += ["--record", record]
    if msglog:
        cmd += ["--log-messages", msglog]
    p = start(cmd, LOAD_CORE, "backend-" + name, row)
    wait_port(port)
    return p


def loadgen(row, port, extra, name="loadgen"):
    cmd = [LOADGEN, "--url", "ws://127.0.0.1:%d/" % port, "--json", "--seed", "8"] + extra
    return start(cmd, LOAD_CORE, name, row)


def finish_loadgen(p, sig=signal.SIGINT, timeout=30):
    """Stop (or wait for) a load generator and parse its JSON summary."""
    if sig is not None and p.poll() is None:
        os.kill(p.pid, sig)
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(p, signal.SIGKILL)
    text = open(p.bench_out).read().strip().splitlines()
    for line in reversed(text):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError("no JSON summary from the load generator (%s)" % p.bench_out)



# ---------------------------------------------------------------- rows

def row_connect(system, P):
    """Rows 1 and 2: N upgrades at full speed, then N idle proxied WebSockets."""
    n = P["n_big"]
    b = backend("blue", BLUE, "1-2")
    px = Proxy(system, "plain", "1-2").start()
    try:
        cpu0, rss0 = px.cpu(), px.rss()
        lg = loadgen("1-2", px.port, ["--mode", "connect", "-n", str(n), "--source", SOURCES,
                                      "--duration", "%ds" % P["hold"], "--timeout", "10s"])
        ok = wait_until(lambda: open_on(BLUE) >= n or lg.poll() is not None, P["hold"])
        cpu1 = px.cpu()
        time.sleep(1.0)
        rss1 = px.rss()
        s = finish_loadgen(lg)
        up = s["upgrades"]
        return {"all_connected": ok and up >= n, "upgrades": up,
                "upgrades_per_s": s["upgrades_per_s"], "failures": s["failures"]["total"],
                "cpu_us_per_upgrade": 1e6 * (cpu1 - cpu0) / max(up, 1),
                "rss_bytes_per_conn": 1024.0 * (rss1 - rss0) / max(up, 1),
                "rss_mb_at_n": rss1 / 1024.0, "handshake_p99_us": s["handshake_us"]["p99"]}
    finally:
        px.stop()
        stop(b)


def row_echo(system, P, window, row):
    """Rows 3 and 4: closed-loop echo, 1,000 connections, 64 B, window W."""
    n = 1000
    b = backend("blue", BLUE, row)
    px = Proxy(system, "plain", row).start()
    try:
        lg = loadgen(row, px.port, ["--mode", "echo", "-n", str(n), "--window", str(window),
                                    "--size", "64", "--source", SOURCES,
                                    "--duration", "%ds" % (P["echo"] + 2)])
        wait_until(lambda: open_on(BLUE) >= n or lg.poll() is not None, 10)
        time.sleep(0.5)
        c0, m0, t0 = px.cpu(), stats(BLUE)["messages"], time.time()
        time.sleep(P["echo"])
        c1, m1, t1 = px.cpu(), stats(BLUE)["messages"], time.time()
        s = finish_loadgen(lg, None)
        msgs = max(m1 - m0, 1)
        return {"cpu_us_per_msg": 1e6 * (c1 - c0) / msgs, "msgs_per_s": msgs / (t1 - t0),
                "rtt_p50_us": s["rtt_us"]["p50"], "rtt_p99_us": s["rtt_us"]["p99"],
                "mismatches": s["mismatches"], "failures": s["failures"]["total"],
                "proxy_cpu_share": (c1 - c0) / (t1 - t0)}
    finally:
        px.stop()
        stop(b)


def row_latency(system, P):
    """Row 5: open loop at 5,000 messages/s over 1,000 connections; direct when system is None."""
    n = 1000
    b = backend("blue", BLUE, "5")
    px = Proxy(system, "plain", "5").start() if system else None
    try:
        port = px.port if px else DIRECT
        lg = loadgen("5", port, ["--mode", "echo", "-n", str(n), "--msg-rate", "5000",
                                 "--window", "16", "--size", "64", "--source", SOURCES,
                                 "--duration", "%ds" % P["latency"]])
        s = finish_loadgen(lg, None, P["latency"] + 30)
        return {"rtt_p50_us": s["rtt_us"]["p50"], "rtt_p99_us": s["rtt_us"]["p99"],
                "msgs_per_s": s["messages_per_s"], "skipped_sends": s["skipped_sends"],
                "failures": s["failures"]["total"]}
    finally:
        if px:
            px.stop()
        stop(b)


def per_second(record_files, t0_ms, seconds):
    """Accepts per second since t0 from --record files (unix ms per line)."""
    bins = [0] * seconds
    for path in record_files:
        try:
            for line in open(path):
                i = int((int(line) - t0_ms) // 1000)
                if 0 <= i < seconds:
                    bins[i] += 1
        except (OSError, ValueError):
            pass
    return bins


def timeline(path):
    rows = []
    try:
        for line in open(path):
            f = line.strip().split(",")
            if f and f[0].isdigit():
                rows.append([int(x) for x in f[:6]])
    except (OSError, ValueError):
        pass
    return rows


def failures_after(csv, at_s):
    """Failed attempts in the timeline from the second holding at_s on."""
    return sum(r[4] for r in timeline(csv) if r[0] >= int(at_s))


# Row 6's clients wait up to 30 s for their handshake, as long as sluice's
# max_wait and HAProxy's timeout queue. A queue that admits 9,000 at 800/s
# needs 11.25 s: with the 10 s open timeout of python-websockets, say, the
# last eighth of any queue times out whatever the gateway does (measured:
# RESULTS.md, "Row 6 with 10 s clients"); browsers have no such timeout.
STORM_CLIENT_TIMEOUT = "30s"


def row_storm(system, P):
    """Row 6: N connected, backend killed and restarted 1 s later, clients reconnect at once."""
    n, tag = P["n_big"], "6-%s-%d" % (system, P["rep"])
    rec1, rec2 = [os.path.join(DIR, "%s-rec%d" % (tag, i)) for i in (1, 2)]
    tl = os.path.join(DIR, tag + ".csv")
    b = backend("blue", BLUE, "6", CAPACITY, rec1)
    px = Proxy(system, "protect", "6").start()
    b2 = None
    try:
        t0 = time.time()
        lg = loadgen("6", px.port, ["--mode", "storm", "-n", str(n), "--source", SOURCES,
                                    "--backoff", "none", "--timeout", STORM_CLIENT_TIMEOUT,
                                    "--duration", "%ds" % P["storm_dur"], "--timeline", tl])
        up = wait_until(lambda: open_on(BLUE) >= n, n / RATE * 2 + 10)
        time.sleep(1.0)
        pre = stats(BLUE) or {"rejected": None}
        t_kill = time.time()
        stop(b)
        time.sleep(1.0)
        b2 = backend("blue", BLUE, "6", CAPACITY, rec2)
        t_restart = time.time()
        back = wait_until(lambda: open_on(BLUE) >= n, P["recover_max"])
        t_back = time.time()
        time.sleep(1.0)
        st = stats(BLUE)
        s = finish_loadgen(lg)
        secs = int(time.time() - t0) + 1
        return {"initial_all_connected": up, "recovered": back,
                "backend_peak_1s": st["peak_1s"], "backend_peak_100ms": st["peak_100ms"],
                "backend_rejected": st["rejected"], "backend_rejected_initial": pre["rejected"],
                "client_failures": s["failures"]["total"], "failures_by_kind": s["failures"],
                "failures_after_kill": failures_after(tl, t_kill - t0),
                "http_statuses": s["http_statuses"],
                "recovery_s": (t_back - t_kill) if back else None,
                "recovery_from_restart_s": (t_back - t_restart) if back else None,
                "loadgen_recovery_last_ms": s["recovery_last_ms"],
                "kill_at_s": t_kill - t0,
                "timeline": {"connected": [r[1] for r in timeline(tl)],
                             "accepts": per_second([rec1, rec2], t0 * 1000, secs)}}
    finally:
        px.stop()
        stop(b2) if b2 else None
        stop(b)


def lost_messages(sent_log, msg_logs):
    """Messages of the sent log that no backend logged: (lost, lost_not_dropped, gens)."""
    got = {}
    for path in msg_logs:
        try:
            for line in open(path, errors="replace"):
                gen, _, seq = line.strip().partition(":")
                if seq.isdigit():
                    got.setdefault(gen, set()).add(int(seq))
        except OSError:
            pass
    lost = lost_nd = gens = 0
    for line in open(sent_log):
        f = line.split()
        if len(f) < 3:
            continue
        gens += 1
        have = got.get(f[0], set())
        miss = sum(1 for q in range(1, int(f[1]) + 1) if q not in have)
        lost += miss
        lost_nd += miss if f[2] != "dropped" else 0
    return lost, lost_nd, gens


def row_deploy(system, P):
    """Row 7: N clients sending every interval move from blue to green."""
    n, tag = P["n_big"], "7-%s-%d" % (system, P["rep"])
    f = {k: os.path.join(DIR, "%s-%s" % (tag, k)) for k in
         ("blue.rec", "green.rec", "blue.msgs", "green.msgs", "sent", "csv")}
    bb = backend("blue", BLUE, "7", CAPACITY, f["blue.rec"], f["blue.msgs"])
    bg = backend("green", GREEN, "7", CAPACITY, f["green.rec"], f["green.msgs"])
    px = Proxy(system, "protect", "7").start()
    try:
        t0 = time.time()
        lg = loadgen("7", px.port, ["--mode", "deploy", "-n", str(n), "--source", SOURCES,
                                    "--interval", "1s", "--timeout", "10s",
                                    "--duration", "%ds" % P["deploy_dur"],
                                    "--sent-log", f["sent"], "--timeline", f["csv"]])
        up = wait_until(lambda: open_on(BLUE) >= n, n / RATE * 2 + 10)
        time.sleep(1.0)
        t_cut = time.time()
        px.cutover()
        moved = wait_until(lambda: open_on(GREEN) >= n, P["deploy_max"])
        t_done = time.time()
        time.sleep(1.5)
        green, blue = stats(GREEN), stats(BLUE)
        s = finish_loadgen(lg)
        stop(bb)
        stop(bg)
        lost, lost_nd, gens = lost_messages(f["sent"], [f["blue.msgs"], f["green.msgs"]])
        secs = int(time.time() - t0) + 1
        return {"initial_all_connected": up, "all_on_green": moved,
                "cutover_s": (t_done - t_cut) if moved else None,
                "failed_handshakes": s["failures"]["total"], "failures_by_kind": s["failures"],
                "failures_after_cut": failures_after(f["csv"], t_cut - t0),
                "blue_rejected": blue["rejected"],
                "http_statuses": s["http_statuses"], "close_codes": s["close_codes"],
                "closes_without_frame": s["closes_without_frame"],
                "lost_messages": lost, "lost_not_dropped": lost_nd, "generations": gens,
                "messages_sent": s["messages_sent"],
                "green_peak_1s": green["peak_1s"], "green_rejected": green["rejected"],
                "cut_at_s": t_cut - t0,
                "timeline": {"connected": [r[1] for r in timeline(f["csv"])],
                             "accepts": per_second([f["green.rec"]], t0 * 1000, secs)}}
    finally:
        px.stop()
        stop(bb)
        stop(bg)


def make_cert():
    key, crt = os.path.join(DIR, "ecdsa.key"), os.path.join(DIR, "ecdsa.crt")
    if not os.path.exists(crt):
        subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout",
                        "-out", key], check=True)
        subprocess.run(["openssl", "req", "-new", "-x509", "-key", key, "-out", crt, "-days", "2",
                        "-subj", "/CN=bench.local"], check=True)
        with open(os.path.join(DIR, "ecdsa.pem"), "w") as f:
            f.write(open(crt).read() + open(key).read())


def sluice_tls_status():
    """None when sluice accepts listeners[].tls, else the --check message."""
    make_cert()
    cfg = render("sluice.yaml.in", "sluice-tls-check.yaml", "plain", True,
                 PORT=PORT["sluice"], TLS_PORT=TLS_PORT["sluice"])
    rc, out = run_quiet([SLUICE, "--check", "-c", cfg])
    return None if rc == 0 else (out.strip().splitlines() or ["exit %d" % rc])[0]


def tlsbench(port, args, secs):
    """sluice-tlsbench on core 1: its JSON summary (see bench/tlsbench.c)."""
    cmd = ["taskset", "-c", LOAD_CORE, TLSBENCH, "--connect", "127.0.0.1:%d" % port,
           "--time", str(secs), "--json"] + args
    note_cmd("8", cmd)
    rc, out = run_quiet(cmd)
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError("sluice-tlsbench: no result (exit %d): %s" % (rc, out.strip()[:200]))


def row_tls(system, P):
    """Row 8: handshakes (ECDSA P-256), full and resumed, TLS 1.3 and 1.2, one client."""
    make_cert()
    b = backend("blue", BLUE, "8")
    px = Proxy(system, "plain", "8", tls=True).start()
    try:
        out = {}
        for key, args in (("full13", ["--tls", "1.3"]), ("resumed13", ["--tls", "1.3", "--resume"]),
                          ("full12", ["--tls", "1.2"]), ("resumed12", ["--tls", "1.2", "--resume"])):
            c0 = px.cpu()
            r = tlsbench(px.tls_port, args, P["tls"])
            c1 = px.cpu()
            n = max(r["handshakes"], 1)
            out[key + "_per_s"] = r["per_s"]
            out[key + "_cpu_us"] = 1e6 * (c1 - c0) / n
            out[key + "_failures"] = r["failures"]
            if key.startswith("resumed"):
                out[key + "_reused_pct"] = 100.0 * r["resumed"] / n
                out[key + "_new_ticket_pct"] = 100.0 * r["new_tickets"] / n
        return out
    finally:
        px.stop()
        stop(b)


# ---------------------------------------------------------------- charts

COLORS = {"sluice": "#1f77b4", "haproxy": "#d62728", "nginx": "#2ca02c"}


def svg_panel(x0, y0, w, h, title, series, ylabel):
    """One line-chart panel: series is {name: [value per second]}."""
    n = max([len(v) for v in series.values()] + [2])
    top = max([max(v) for v in series.values() if v] + [1])
    top = float(top) * 1.1
    out = ['<text x="%d" y="%d" font-size="14" font-weight="bold">%s</text>' % (x0, y0 - 8, title),
           '<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>' % (x0, y0, w, h)]
    for i in range(5):
        v = top * i / 4
        y = y0 + h - h * i / 4
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>' % (x0, y, x0 + w, y))
        out.append('<text x="%d" y="%.1f" font-size="10" text-anchor="end">%d</text>'
                   % (x0 - 4, y + 3, v))
    step = max(1, n // 10)
    for i in range(0, n, step):
        x = x0 + w * i / (n - 1)
        out.append('<text x="%.1f" y="%d" font-size="10" text-anchor="middle">%d</text>'
                   % (x, y0 + h + 12, i))
    out.append('<text x="%d" y="%d" font-size="10">%s (per second of the run)</text>'
               % (x0, y0 + h + 26, ylabel))
    for k, (name, vals) in enumerate(series.items()):
        pts = " ".join("%.1f,%.1f" % (x0 + w * i / (n - 1), y0 + h - h * v / top)
                       for i, v in enumerate(vals))
        out.append('<polyline fill="none" stroke-width="1.6" stroke="%s" points="%s"/>'
                   % (COLORS.get(name, "#000"), pts))
        out.append('<text x="%d" y="%d" font-size="11" fill="%s">%s</text>'
                   % (x0 + w - 70, y0 + 14 + 13 * k, COLORS.get(name, "#000"), name))
    return out


def svg_chart(path, title, panels):
    w, h = 760, 250
    body = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
            'font-family="sans-serif">' % (w, 60 + len(panels) * (h + 60)),
            '<rect width="100%" height="100%" fill="white"/>',
            '<text x="20" y="24" font-size="16" font-weight="bold">%s</text>' % title]
    for i, (ptitle, series, ylabel) in enumerate(panels):
        body += svg_panel(60, 70 + i * (h + 60), w - 90, h, ptitle, series, ylabel)
    body.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(body) + "\n")


def write_charts(res, charts_dir):
    made = []
    for row, name, what in (("6", "storm", "backend accepts"), ("7", "deploy", "green accepts")):
        runs = res.get(row, {})
        tl = {s: v[0]["timeline"] for s, v in runs.items() if v and "timeline" in v[0]}
        if not tl:
            continue
        path = os.path.join(charts_dir, name + ".svg")
        svg_chart(path, "%s (first repetition of each system; %s mode)" % (name, ARGS.mode),
                  [("connected clients", {s: t["connected"] for s, t in tl.items()}, "clients"),
                   (what + " per second", {s: t["accepts"] for s, t in tl.items()}, what)])
        made.append(name + ".svg")
    return made


# ---------------------------------------------------------------- report

def med(res, row, system, key):
    vals = [r.get(key) for r in res.get(row, {}).get(system, []) if "error" not in r]
    vals = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return statistics.median(vals) if vals else None


def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    if abs(v) >= 100 or v == int(v):
        return "{:,.0f}{}".format(v, unit)
    return "{:,.2f}{}".format(v, unit)


def ratio(a, b):
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or b == 0:
        return "n/a"
    return "%.2fx" % (a / b)


FIGURES = [
    # row, label, key, unit, better
    ("1-2", "1. proxy CPU per upgrade", "cpu_us_per_upgrade", " us", "lower"),
    ("1-2", "1. upgrades per second", "upgrades_per_s", "/s", "higher"),
    ("1-2", "1. upgrade failures", "failures", "", "lower"),
    ("1-2", "2. RSS per idle proxied WebSocket", "rss_bytes_per_conn", " B", "lower"),
    ("1-2", "2. proxy RSS with all connected", "rss_mb_at_n", " MB", "lower"),
    ("3", "3. proxy CPU per echoed message, window 1", "cpu_us_per_msg", " us", "lower"),
    ("3", "3. messages per second, window 1", "msgs_per_s", "/s", "higher"),
    ("4", "4. proxy CPU per echoed message, window 16", "cpu_us_per_msg", " us", "lower"),
    ("4", "4. messages per second, window 16", "msgs_per_s", "/s", "higher"),
    ("5", "5. added latency p50 at 5,000 msg/s", "added_p50_us", " us", "lower"),
    ("5", "5. added latency p99 at 5,000 msg/s", "added_p99_us", " us", "lower"),
    ("6", "6. backend peak 1 s accepts after restart", "backend_peak_1s", "", "lower"),
    ("6", "6. client failures after the kill (attempts)", "failures_after_kill", "", "lower"),
    ("6", "6. client failures, whole run (attempts)", "client_failures", "", "lower"),
    ("6", "6. time until all are back, from the kill", "recovery_s", " s", "lower"),
    ("6", "6. time until all are back, from the restart (target 1.1 x N / rate)",
     "recovery_from_restart_s", " s", "lower"),
    ("7", "7. failed handshakes after the cutover started", "failures_after_cut", "", "lower"),
    ("7", "7. failed handshakes, whole run", "failed_handshakes", "", "lower"),
    ("7", "7. lost messages (of generations closed with a frame)", "lost_not_dropped", "",
     "lower"),
    ("7", "7. lost messages (all, TCP drops included)", "lost_messages", "", "lower"),
    ("7", "7. green peak 1 s accepts", "green_peak_1s", "", "lower"),
    ("7", "7. time until all are on green", "cutover_s", " s", "lower"),
    ("8", "8. TLS 1.3 full handshakes per second", "full13_per_s", "/s", "higher"),
    ("8", "8. TLS 1.3 resumed handshakes per second", "resumed13_per_s", "/s", "higher"),
    ("8", "8. TLS 1.3 share of resuming connections resumed", "resumed13_reused_pct", "%",
     "higher"),
    ("8", "8. TLS 1.3 share of resuming connections given a new ticket", "resumed13_new_ticket_pct",
     "%", "higher"),
    ("8", "8. proxy CPU per TLS 1.3 full handshake", "full13_cpu_us", " us", "lower"),
    ("8", "8. proxy CPU per TLS 1.3 resumed handshake", "resumed13_cpu_us", " us", "lower"),
    ("8", "8. TLS 1.2 full handshakes per second", "full12_per_s", "/s", "higher"),
    ("8", "8. TLS 1.2 resumed handshakes per second", "resumed12_per_s", "/s", "higher"),
    ("8", "8. TLS 1.2 share of resuming connections resumed", "resumed12_reused_pct", "%",
     "higher"),
    ("8", "8. proxy CPU per TLS 1.2 full handshake", "full12_cpu_us", " us", "lower"),
    ("8", "8. proxy CPU per TLS 1.2 resumed handshake", "resumed12_cpu_us", " us", "lower"),
]


def add_latency(res):
    for s in SYSTEMS:
        for r in res.get("5", {}).get(s, []):
            if "error" in r:
                continue
            for q in ("p50", "p99"):
                d = med(res, "5", "direct", "rtt_%s_us" % q)
                r["added_%s_us" % q] = r["rtt_%s_us" % q] - d if d is not None else None


def cell(res, row, system, key, unit):
    if row == "8" and system == "sluice" and TLS_REFUSED:
        return "not built yet"
    runs = res.get(row, {}).get(system)
    if runs is None:
        return "not run"
    if all("error" in r for r in runs):
        return "error"
    return fmt(med(res, row, system, key), unit)


def figures_table(res):
    out = ["| figure (%s is better) | sluice | haproxy | nginx | sluice/haproxy | sluice/nginx |"
           % "lower/higher", "|---|---:|---:|---:|---:|---:|"]
    for row, label, key, unit, better in FIGURES:
        if row not in res:
            continue
        vals = {s: cell(res, row, s, key, unit) for s in SYSTEMS}
        num = {s: med(res, row, s, key) for s in SYSTEMS}
        if row == "8" and TLS_REFUSED:
            num["sluice"] = None
        out.append("| %s (%s) | %s | %s | %s | %s | %s |" % (
            label, better, vals["sluice"], vals["haproxy"], vals["nginx"],
            ratio(num["sluice"], num["haproxy"]), ratio(num["sluice"], num["nginx"])))
    return out


# The targets, judged twice: on the medians, and on each repetition's
# pair (the systems run interleaved, so repetition i of sluice and of a peer
# ran under the same conditions). A gap smaller than the spread between
# repetitions shows as "mixed" rather than as met or missed.
RELATIVE_TARGETS = [
    # row, key, how, factor, text; how: lower (ratio <= factor), below (ratio < factor),
    # higher (ratio >= factor); the ratio is to the better peer
    ("1-2", "cpu_us_per_upgrade", "lower", 0.75, "proxy CPU per upgrade at most 0.75x"),
    ("1-2", "upgrades_per_s", "higher", 1.0, "upgrades per second at least 1x"),
    ("1-2", "rss_bytes_per_conn", "lower", 0.5, "RSS per idle WebSocket at most 0.5x"),
    ("3", "cpu_us_per_msg", "lower", 1.0, "window 1: CPU per message at most 1x"),
    ("3", "msgs_per_s", "higher", 1.0, "window 1: messages per second at least 1x"),
    ("4", "cpu_us_per_msg", "lower", 0.75, "window 16: CPU per message at most 0.75x"),
    ("5", "added_p50_us", "below", 1.0, "added latency p50 below both"),
    ("5", "added_p99_us", "below", 1.0, "added latency p99 below both"),
    ("8", "full13_per_s", "higher", 1.0, "TLS 1.3 full handshakes per second at least 1x"),
    ("8", "resumed13_per_s", "higher", 1.0, "TLS 1.3 resumed handshakes per second at least 1x"),
    ("8", "full12_per_s", "higher", 1.0, "TLS 1.2 full handshakes per second at least 1x"),
    ("8", "resumed12_per_s", "higher", 1.0, "TLS 1.2 resumed handshakes per second at least 1x"),
]


def absolute_targets():
    """(row, key, bound, text): sluice's own value must be at most bound."""
    limit = RATE + BURST
    back = 1.1 * PARAMS["n_big"] / RATE
    return [
        ("6", "backend_peak_1s", limit, "storm: backend peak 1 s at most rate + burst (%d)" % limit),
        ("6", "client_failures", 0, "storm: no client failure"),
        ("6", "recovery_from_restart_s", back,
         "storm: all back within 1.1 x N / rate (%.2f s) of the restart" % back),
        ("7", "failed_handshakes", 0, "cutover: no failed handshake"),
        ("7", "lost_messages", 0, "cutover: no message lost"),
        ("7", "green_peak_1s", limit, "cutover: green peak 1 s at most rate + burst (%d)" % limit),
    ]


def rep_values(res, row, system, key):
    """The key's value in each repetition of a system (None where it has none)."""
    out = []
    for r in res.get(row, {}).get(system, []):
        v = r.get(key) if "error" not in r else None
        out.append(v if isinstance(v, (int, float)) and not isinstance(v, bool) else None)
    return out


def meets(how, ratio, factor):
    return ratio < factor if how == "below" else \
        ratio <= factor if how == "lower" else ratio >= factor


def verdict(hits):
    """met / missed / mixed from one judgement per repetition and the median's."""
    median_hit, reps = hits[0], hits[1:]
    if median_hit and all(reps):
        return "met"
    if not median_hit and not any(reps):
        return "missed"
    return "mixed: met in %d of %d repetitions" % (sum(reps), len(reps))


def relative_target(res, row, key, how, factor):
    """(sluice's median, the better peer and its median, ratio, range of the
    repetitions' ratios, verdict), or None when a system has no value."""
    peers = [p for p in SYSTEMS if p != "sluice"]
    meds = {s: med(res, row, s, key) for s in SYSTEMS}
    if any(v is None or v == 0 for v in meds.values()):
        return None
    pick = min if how in ("lower", "below") else max
    best = pick(peers, key=lambda p: meds[p])
    ratio = meds["sluice"] / meds[best]
    mine = rep_values(res, row, "sluice", key)
    theirs = [rep_values(res, row, p, key) for p in peers]
    pairs = []
    for i, v in enumerate(mine):
        others = [t[i] for t in theirs if i < len(t) and t[i]]
        if v is not None and len(others) == len(peers):
            pairs.append(v / pick(others))
    hits = [meets(how, ratio, factor)] + [meets(how, q, factor) for q in pairs]
    spread = "%.2fx-%.2fx" % (min(pairs), max(pairs)) if pairs else "n/a"
    return meds["sluice"], best, meds[best], ratio, spread, verdict(hits)


def targets_table(res):
    out = ["| target (ratio to the better peer) | sluice | better peer | ratio | "
           "repetitions' ratios | verdict |", "|---|---:|---:|---:|---:|---|"]
    for row, key, how, factor, text in RELATIVE_TARGETS:
        if row not in res or (row == "8" and TLS_REFUSED):
            continue
        t = relative_target(res, row, key, how, factor)
        if t is None:
            out.append("| %s | n/a | n/a | n/a | n/a | not measured |" % text)
            continue
        mine, best, theirs, ratio, spread, v = t
        out.append("| %s | %s | %s %s | %.2fx | %s | %s |" % (
            text, fmt(mine), best, fmt(theirs), ratio, spread, v))
    for row, key, bound, text in absolute_targets():
        if row not in res:
            continue
        vals = rep_values(res, row, "sluice", key)
        m = med(res, row, "sluice", key)
        if m is None or None in vals:
            out.append("| %s | n/a | | | | not measured |" % text)
            continue
        hits = [m <= bound] + [v <= bound for v in vals]
        out.append("| %s | %s | | | worst %s | %s |" % (
            text, fmt(m), fmt(max(vals)), verdict(hits)))
    return out


def machine():
    model = "?"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    vers = {
        "sluice": run_quiet([SLUICE, "--version"])[1].strip(),
        "haproxy": run_quiet(["haproxy", "-v"])[1].strip().splitlines()[0],
        "nginx": run_quiet(["nginx", "-v"])[1].strip(),
        "openssl": run_quiet(["openssl", "version"])[1].strip(),
        "sluice-loadgen": run_quiet([LOADGEN, "--version"])[1].strip(),
    }
    return ["- nproc: %d; CPU: %s; kernel: %s" % (os.cpu_count(), model, os.uname().release),
            "- versions: " + "; ".join("%s" % v for v in vers.values()),
            "- commit: " + (BUILT_FROM or source_commit())]


NOTES_MARK = "<!-- hand-written notes below this line are kept when run.py rewrites the file -->"


def details(res):
    out = []
    for row, keys in (("1-2", ("all_connected", "upgrades", "handshake_p99_us")),
                      ("3", ("rtt_p50_us", "rtt_p99_us", "mismatches", "proxy_cpu_share")),
                      ("4", ("rtt_p50_us", "rtt_p99_us", "mismatches", "proxy_cpu_share")),
                      ("5", ("rtt_p50_us", "rtt_p99_us", "msgs_per_s", "skipped_sends")),
                      ("6", ("recovered", "backend_peak_100ms", "backend_rejected",
                             "backend_rejected_initial",
                             "failures_by_kind", "http_statuses", "loadgen_recovery_last_ms")),
                      ("7", ("all_on_green", "failures_by_kind", "http_statuses", "close_codes",
                             "closes_without_frame", "generations", "messages_sent",
                             "green_rejected", "blue_rejected")),
                      ("8", ("resumed13_reused_pct", "resumed13_new_ticket_pct",
                             "resumed12_reused_pct", "full13_failures", "resumed13_failures",
                             "full12_failures", "resumed12_failures"))):
        if row not in res:
            continue
        out.append("- row %s:" % row)
        for s, runs in res[row].items():
            for i, r in enumerate(runs):
                turn = " (turn %d)" % r["turn"] if "turn" in r else ""
                if "error" in r:
                    out.append("  - %s rep %d%s: ERROR %s" % (s, i + 1, turn, r["error"]))
                    continue
                kv = ", ".join("%s=%s" % (k, json.dumps(r[k])) for k in keys if k in r)
                out.append("  - %s rep %d%s: %s" % (s, i + 1, turn, kv))
    return out


def reps_text():
    n, short = PARAMS["reps"], PARAMS.get("reps_short", PARAMS["reps"])
    text = "%d repetition%s" % (n, "s" if n > 1 else "")
    if short != n:
        text += " (%d for rows %s)" % (short, ", ".join(SHORT_ROWS))
    return text


def write_results(res, path, charts_made, argv):
    add_latency(res)
    old = open(path).read() if os.path.exists(path) else ""
    kept = old.split(NOTES_MARK, 1)[1] if NOTES_MARK in old else "\n"
    L = ["# Benchmark results: sluice vs HAProxy vs nginx", "",
         "Generated by `%s` in **%s mode** (%s, big runs with %d connections), %s."
         % (" ".join(["bench/run.py"] + argv), ARGS.mode, reps_text(), PARAMS["n_big"],
            time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())),
         "Figures are medians over the repetitions; the proxy ran on core 0 (`taskset -c 0`),",
         "load generator and backends on core 1; one worker thread in every system.",
         "Ratios are sluice / peer: below 1 means sluice uses less (or has less) of it.", "",
         "## Machine", ""] + machine()
    L += ["", "## Targets", "",
          "The issue's targets, judged on the medians and on every repetition's pair "
          "(the systems run interleaved): *mixed* means the repetitions disagree, the "
          "gap is within the run-to-run spread.", ""] + targets_table(res)
    L += ["", "## Figures", ""] + figures_table(res)
    L += ["", "Row 5 subtracts the direct-to-backend round trip measured the same way: "
          "p50 %s us, p99 %s us." % (fmt(med(res, "5", "direct", "rtt_p50_us")),
                                     fmt(med(res, "5", "direct", "rtt_p99_us")))]
    if TLS_REFUSED:
        L.append("Row 8, sluice: not built yet (`sluice --check` refuses `listeners[].tls`: "
                 "`%s`)." % TLS_REFUSED)
    L += ["", "## Charts", ""] + ["- [%s](charts/%s)" % (c, c) for c in charts_made]
    L += ["", "## Per-run details", ""] + details(res)
    L += ["", "## Configurations", "",
          "Rendered from `bench/peers/*.in` (plain: rows 1-5 and 8; protect: rows 6-7 with "
          "admission %d/s burst %d; backend `--capacity %d`). Checks:" % (RATE, BURST, CAPACITY),
          ""]
    for name, (rc, out) in sorted(CHECKS.items()):
        L.append("- `%s`: exit %d, `%s`" % (name, rc, " / ".join(out.splitlines()[-2:])))
    L += ["", "## Commands", ""]
    for row in sorted(COMMANDS):
        L.append("Row %s:" % row)
        L.append("```")
        L += COMMANDS[row]
        L.append("```")
    L += ["", NOTES_MARK]
    with open(path, "w") as f:
        f.write("\n".join(L) + kept)


# ---------------------------------------------------------------- main

MODES = {
    "quick": dict(n_big=2000, reps=1, hold=20, echo=3, latency=4, storm_dur=40,
                  recover_max=15, deploy_dur=40, deploy_max=15, tls=2),
    "full": dict(n_big=9000, reps=3, hold=40, echo=8, latency=15, storm_dur=120,
                 recover_max=45, deploy_dur=120, deploy_max=45, tls=5, reps_short=5),
}
# Rows of a few seconds each whose repetitions spread most (rows 3-4 swung by a
# third between repetitions of the same system): full mode gives them
# reps_short repetitions. Row 5's percentiles moved by a quarter between
# repetitions while 15 s already hold 75,000 round trips, so it runs 15 s
# five times rather than 30 s three times. Rows 6-7 run for minutes and keep reps.
SHORT_ROWS = ("1-2", "3", "4", "5", "8")


def reps_of(row):
    return PARAMS.get("reps_short", PARAMS["reps"]) if row in SHORT_ROWS else PARAMS["reps"]

ROWS = {
    "1-2": row_connect,
    "3": lambda s, P: row_echo(s, P, 1, "3"),
    "4": lambda s, P: row_echo(s, P, 16, "4"),
    "5": row_latency,
    "6": row_storm,
    "7": row_deploy,
    "8": row_tls,
}
PARAMS = {}
TLS_REFUSED = None


def williams(n):
    """Orders of range(n) in a Williams design: over its rows every index takes
    every turn equally often and directly follows every other index equally
    often (n rows when n is even, 2n when it is odd, the second n the first
    reversed). Row r is 0, 1, n-1, 2, n-2, ... plus r (mod n), renamed so
    that row 0 is 0, 1, ..., n-1 (a renaming keeps both balances)."""
    first, lo, hi = [0], 1, n - 1
    while len(first) < n:
        first.append(lo)
        lo += 1
        if len(first) < n:
            first.append(hi)
            hi -= 1
    name = {index: k for k, index in enumerate(first)}
    rows = [[name[(i + r) % n] for i in first] for r in range(n)]
    if n % 2:
        rows += [row[::-1] for row in rows]
    return rows


def order_of(systems, rep):
    """The order of the systems in repetition rep (a Williams design, see williams).

    On this machine the same binary measured twice in a row does better the second
    time (session 16: two sluice instances, six interleaved pairs of TLS 1.2 full
    handshakes, the second lower in CPU per handshake in five); a fixed order would
    hand that to whichever system always runs later, and a plain rotation balances
    the turns but not which system each one follows.
    """
    if not systems:
        return []
    rows = williams(len(systems))
    return [systems[i] for i in rows[rep % len(rows)]]


def run_rows(res):
    global TLS_REFUSED
    for row in ARGS.rows.split(","):
        if row == "8":
            TLS_REFUSED = sluice_tls_status()
        for rep in range(reps_of(row)):
            PARAMS["rep"] = rep
            systems = [s for s in list(SYSTEMS) + (["direct"] if row == "5" else [])
                       if s in ARGS.systems.split(",") + ["direct"]
                       and not (row == "8" and s == "sluice" and TLS_REFUSED)]
            for pos, s in enumerate(order_of(systems, rep)):
                log("row %s rep %d: %s" % (row, rep + 1, s))
                try:
                    r = ROWS[row](None if s == "direct" else s, PARAMS)
                except Exception as e:   # a failed run is reported, the others go on
                    r = {"error": "%s: %s" % (type(e).__name__, str(e).splitlines()[0][:200])}
                    log("  error:", r["error"])
                r["turn"] = pos + 1
                res.setdefault(row, {}).setdefault(s, []).append(r)
                log("  " + json.dumps({k: v for k, v in r.items() if k != "timeline"})[:400])
                time.sleep(0.5)


def main():
    global ARGS, DIR, SLUICE, LOADGEN, BACKEND, TLSBENCH
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--quick", dest="mode", action="store_const", const="quick")
    g.add_argument("--full", dest="mode", action="store_const", const="full")
    ap.add_argument("--build", help="build dir with sluice and bench/ (default: build-bench, "
                    "configured and built here)")
    ap.add_argument("--rows", default=",".join(ROWS), help="e.g. 1-2,3,6")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--reps", type=int, help="repetitions of every row (quick 1; full 3, "
                    "and 5 for rows 1-5 and 8)")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    ARGS = ap.parse_args()
    unknown = [r for r in ARGS.rows.split(",") if r not in ROWS]
    if unknown:
        ap.error("unknown row %s (rows are %s)" % (", ".join(unknown), ", ".join(ROWS)))
    PARAMS.update(MODES[ARGS.mode])
    if ARGS.reps:
        PARAMS["reps"] = ARGS.reps
        PARAMS.pop("reps_short", None)
    DIR = tempfile.mkdtemp(prefix="sluice-bench-")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    import resource
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        install_peers()
        b = build_dir()
        SLUICE = os.path.join(b, "sluice")
        LOADGEN = os.path.join(b, "bench", "sluice-loadgen")
        BACKEND = os.path.join(b, "bench", "sluice-backend")
        TLSBENCH = os.path.join(b, "bench", "sluice-tlsbench")
        log("mode %s, temp dir %s" % (ARGS.mode, DIR))
        res = {}
        run_rows(res)
        with open(os.path.join(DIR, "results.json"), "w") as f:
            json.dump(res, f, indent=1)
        # Beside the report it belongs to (a quick run to /tmp leaves bench/charts alone).
        charts_dir = os.path.join(os.path.dirname(os.path.abspath(ARGS.out)), "charts")
        os.makedirs(charts_dir, exist_ok=True)
        made = write_charts(res, charts_dir)
        write_results(res, ARGS.out, made, sys.argv[1:])
        log("wrote %s (raw data: %s/results.json)" % (ARGS.out, DIR))
    finally:
        stop_all()


SLUICE = LOADGEN = BACKEND = TLSBENCH = None

if __name__ == "__main__":
    main()
