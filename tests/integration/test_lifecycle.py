"""Process lifecycle and the control plane under concurrency: the admin
listener when many clients call at once, signals during reloads and
deploys, the state file when it is damaged, and config errors.

Every test starts the real binary on loopback and stops it by PID; every
wait is bounded.
"""
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import websockets

from harness import (SLUICE, T, Backend, HttpReader, Proc, Sluice, WsConn, config, free_port,
                     metric, metric_samples, scrape, stop_all, wait_port, wait_until)

MAX_ADMIN_CONNS = 64   # server.c's MAX_CONNS


def start(extra="", admin_extra="", service_extra="admission: off", pools=None):
    port, admin_port = free_port(), free_port()
    text = config(port, pools or {"blue": ["127.0.0.1:9"]}, workers=1,
                  service_extra=service_extra,
                  extra="admin: { address: 127.0.0.1:%d%s }\n%s" % (admin_port, admin_extra,
                                                                      extra))
    s = Sluice(text, port)
    wait_port("127.0.0.1", admin_port, s.proc)
    s.admin_port = admin_port
    s.text = text
    return s


def call(admin_port, method, path, body=None, timeout=T):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (admin_port, path), data=data,
                                 method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def keepalive_get(admin_port, path="/healthz"):
    """A connection that has been answered once and is kept alive."""
    sock = socket.create_connection(("127.0.0.1", admin_port), timeout=T)
    sock.sendall(("GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % path).encode())
    assert HttpReader(sock).read().status == 200
    return sock


# ---- the admin listener at its connection cap ----------------------------------------------

def test_admin_calls_beyond_the_connection_cap_wait_instead_of_being_reset():
    s = start()
    held = []
    try:
        # Every slot taken by a client that sent half a request: a new call
        # waits for a slot (it was accepted and closed at once: a reset).
        for _ in range(MAX_ADMIN_CONNS):
            c = socket.create_connection(("127.0.0.1", s.admin_port), timeout=T)
            c.sendall(b"GET /healthz HTTP/1.1\r\n")
            held.append(c)
        got = []
        t = threading.Thread(target=lambda: got.append(call(s.admin_port, "GET", "/healthz")))
        t.start()
        time.sleep(0.5)
        assert got == [], got   # still waiting, not failed
        held.pop().close()
        t.join(T)
        assert got == [(200, {"status": "ok"})]
        # Slots held by kept-alive connections idle between requests are given up.
        for c in held:
            c.close()
        held = [keepalive_get(s.admin_port) for _ in range(MAX_ADMIN_CONNS)]
        for _ in range(5):
            assert call(s.admin_port, "GET", "/api/v1/status", timeout=5)[0] == 200
    finally:
        for c in held:
            c.close()
        stop_all(s)


def test_many_threads_reloading_and_changing_limits_at_once_all_get_answers():
    s = start(service_extra="admission: { rate: 100/s, burst: 10, queue: { length: 10 } }")
    statuses, lock = [], threading.Lock()

    def worker(i):
        for k in range(4):
            try:
                if k % 2:
                    st = call(s.admin_port, "POST", "/api/v1/reload")[0]
                else:
                    st = call(s.admin_port, "PUT", "/api/v1/services/app/admission",
                              {"rate": "%d/s" % (10 + i)})[0]
            except OSError as e:
                st = repr(e)
            with lock:
                statuses.append(st)
    try:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert statuses == [200] * 400 or sorted(set(map(str, statuses))) == ["200"], \
            [x for x in statuses if x != 200][:5]
        assert len(statuses) == 400
    finally:
        stop_all(s)


# ---- the state file ------------------------------------------------------------------------

ADMISSION = "admission: { rate: 100/s, burst: 10, queue: { length: 10 } }"


def rate_now(admin_port):
    status, body = call(admin_port, "GET", "/api/v1/services/app/admission")
    assert status == 200, body
    return body["limits"]["rate"]


def test_a_damaged_or_foreign_state_file_is_refused_and_kept_aside(tmp_path):
    state = tmp_path / "state.json"
    cases = [
        (b'{"version": 1, "services": {"app": {"admission": {"rate": 5', "not valid JSON"),
        (b'[{"version": 1}]', "expected a JSON object at the top"),
        # a newer format is not read as ours (it was: its rate applied)
        (b'{"version": 2, "services": {"app": {"admission": {"rate": 5}}}}',
         'expected "version": 1'),
        (b'{"services": {"app": {"admission": {"rate": 5}}}}', 'expected "version": 1'),
        (b'{"version": 1, "pad": "' + b"x" * (1 << 20) + b'"}', "larger than"),
        # a hand-edited shape: read member by member, it crashed the start
        (b'{"version": 1, "pools": [{"backends": [{"address": "127.0.0.1:9"}]}]}',
         'expected "pools" to be an object of pools by name'),
        (b'{"version": 1, "services": ["app"]}',
         'expected "services" to be an object of services by name'),
    ]
    for content, why in cases:
        state.write_bytes(content)
        s = start(admin_extra=", state_file: %s" % state, service_extra=ADMISSION)
        try:
            assert rate_now(s.admin_port) == 100
            # What was there is kept for the operator; the next change writes a good file.
            assert (tmp_path / "state.json.bad").read_bytes() == content
            assert call(s.admin_port, "PUT", "/api/v1/services/app/admission",
                        {"rate": "7/s"})[0] == 200
            assert json.loads(state.read_text())["services"]["app"]["admission"]["rate"] == 7
        finally:
            stop_all(s)
        line = [x for x in s.output().splitlines() if "state file" in x and "error" in x]
        assert len(line) == 1 and why in line[0] and "kept as %s.bad" % state in line[0], \
            (why, line)
        # ...and the file written is read back at the next start.
        s = start(admin_extra=", state_file: %s" % state, service_extra=ADMISSION)
        try:
            assert rate_now(s.admin_port) == 7
        finally:
            stop_all(s)
        state.unlink()


def test_a_request_dribbled_in_gets_408_instead_of_holding_a_slot_for_ever():
    s = start()
    try:
        c = socket.create_connection(("127.0.0.1", s.admin_port), timeout=T)
        t0 = time.monotonic()
        request = b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"x" * 100
        got = b""
        c.settimeout(0.5)
        # One byte every 0.5 s: each read used to push the 60 s idle timer back.
        for b in request:
            try:
                c.sendall(bytes([b]))
            except OSError:
                break   # answered and closed: the request took too long
            try:
                got += c.recv(4096)
            except socket.timeout:
                pass
            if got or time.monotonic() - t0 > 20:
                break
            time.sleep(0.5)
        took = time.monotonic() - t0
        assert got.startswith(b"HTTP/1.1 408 "), (got, took)
        assert 9 < took < 15, took
        c.close()
        # A client idle between requests is not hurried.
        k = keepalive_get(s.admin_port)
        time.sleep(1)
        k.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        assert HttpReader(k).read().status == 200
        k.close()
    finally:
        stop_all(s)


def test_actions_without_parameters_refuse_a_body_with_fields():
    s = start(pools={"blue": ["127.0.0.1:9"], "green": ["127.0.0.1:9"]})
    try:
        for path in ["/api/v1/reload", "/api/v1/services/app/deploys/current/pause",
                     "/api/v1/services/app/deploys/current/resume",
                     "/api/v1/services/app/deploys/current/abort"]:
            # A parameter the action does not take was ignored, with a 200 for a reload.
            assert call(s.admin_port, "POST", path, {"file": "/etc/other.yaml"}) == \
                (400, {"error": 'unknown field "file"'}), path
            assert call(s.admin_port, "POST", path, [1])[0] == 400, path
        assert call(s.admin_port, "POST", "/api/v1/reload", {}) == \
            (200, {"status": "reloaded", "config_generation": 2})
        assert call(s.admin_port, "POST", "/api/v1/reload")[0] == 200
        assert call(s.admin_port, "POST", "/api/v1/services/app/deploys/current/pause", {})[0] \
            == 409
    finally:
        stop_all(s)


# ---- signals -----------------------------------------------------------------------------

def test_a_second_sigterm_closes_at_once_and_says_so():
    blue = Backend("blue")
    s = start(pools={"blue": [blue.addr]}, extra="shutdown: { drain_rate: 1/s, timeout: 60s }")
    try:
        conns = [WsConn(s.port) for _ in range(4)]
        time.sleep(0.3)
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        # A SIGHUP while shutting down is refused, not applied.
        s.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(timeout=T) == 0
        assert time.monotonic() - t0 < 3
        for c in conns:
            c.close()
    finally:
        stop_all(s, blue)
    log = s.output()
    assert "reload refused: %s: not reloading while shutting down" % s.cfg.name in log, log
    assert "second signal: closing" in log and "connections now" in log, log
    assert "shutdown: timeout" not in log, log


def test_a_state_file_that_stops_the_start_is_named(tmp_path):
    state = tmp_path / "state.json"
    port, admin_port = free_port(), free_port()
    text = config(port, {"blue": ["127.0.0.1:9"]}, workers=1,
                  extra="admin: { address: 127.0.0.1:%d, state_file: %s }" % (admin_port, state))
    cfg = tmp_path / "sluice.yaml"
    cfg.write_text(text)
    for backends, why in [([{"address": "bad address"}], 'bad address "bad address"'),
                          ([], "at least one backend"),
                          ([{"address": "no.such.host.invalid:80"}], "cannot resolve")]:
        state.write_text(json.dumps({"version": 1, "pools": {"blue": {"backends": backends}}}))
        for argv in (["--check", "-c", str(cfg)], ["-c", str(cfg)]):
            p = subprocess.run([SLUICE, *argv], capture_output=True, text=True, timeout=T)
            errors = [x for x in p.stderr.splitlines() if " info " not in x]
            assert p.returncode == 2, p.stderr
            # Which file holds the list, and the count line every config error ends with.
            assert len(errors) == 2 and why in errors[0] and str(state) in errors[0], errors
            assert errors[1] == "sluice: %s: 1 error" % cfg, errors


def test_a_state_file_of_many_pools_of_256_backends_is_read_back_at_the_next_start(tmp_path):
    """What the API takes, the next start reads: six pools of 256 backends
    (the most a pool takes) make a file of about 4,600 values, which the
    reader refused (its node limit was the one for request bodies) and set
    aside, dropping every change."""
    state = tmp_path / "state.json"
    pools = {"p%d" % i: ["127.0.0.1:%d" % (20000 + i)] for i in range(6)}
    def started():
        return start(admin_extra=", state_file: %s" % state, pools=pools)
    s = started()
    try:
        for i, name in enumerate(pools):
            backends = [{"address": "127.0.0.1:%d" % (21000 + 300 * i + k)} for k in range(256)]
            assert call(s.admin_port, "PUT", "/api/v1/pools/%s/backends" % name,
                        {"backends": backends})[0] == 200
    finally:
        stop_all(s)
    s = started()
    try:
        for i, name in enumerate(pools):
            status, body = call(s.admin_port, "GET", "/api/v1/pools/%s" % name)
            assert status == 200
            got = [b["address"] for b in body["backends"]]
            assert got == ["127.0.0.1:%d" % (21000 + 300 * i + k) for k in range(256)], name
        # sluice ctl pretty-prints an answer this size too (it printed the raw body).
        p = subprocess.run([SLUICE, "ctl", "--admin", "127.0.0.1:%d" % s.admin_port, "pools"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        lines = p.stdout.splitlines()
        assert len(lines) > 6 * 256 and lines[0] == "{", lines[:3]
        assert sum(len(b["backends"]) for b in json.loads(p.stdout)["pools"]) == 6 * 256
    finally:
        stop_all(s)
    assert not (tmp_path / "state.json.bad").exists(), s.output()


def test_state_for_a_service_the_config_lost_survives_the_next_save(tmp_path):
    state = tmp_path / "state.json"
    gone = {"active": "green", "admission": {"rate": 5}}
    state.write_text(json.dumps({"version": 1, "services": {
        "gone": gone, "app": {"active": "nopool"}}}))
    s = start(admin_extra=", state_file: %s" % state, service_extra=ADMISSION)
    try:
        # A change through the API rewrites the file...
        assert call(s.admin_port, "PUT", "/api/v1/services/app/admission",
                    {"rate": "7/s"})[0] == 200
        services = json.loads(state.read_text())["services"]
        # ...keeping what it could not apply (it was dropped), beside the new state.
        assert services["gone"] == gone, services
        assert services["app"]["admission"]["rate"] == 7 and "active" not in services["app"]
    finally:
        stop_all(s)
    assert 'no service "gone" in the config now; its entry is kept' in s.output()


def test_pool_limits_the_start_could_not_apply_survive_the_next_save(tmp_path):
    """A pool's own admission limits set through the API, for a pool the
    config no longer has or that has no queue of its own now (no rate of
    its own in the YAML), are kept in the file as they were, as a service's
    are: before, the next save dropped them, and the pool's limits were gone
    when it came back. A pool's backends set through the API stay beside
    them."""
    state = tmp_path / "state.json"
    gone = {"admission": {"rate": 5, "burst": 2},
            "backends": [{"address": "127.0.0.1:9", "weight": 1}]}
    blue = {"admission": {"rate": 6}}
    state.write_text(json.dumps({"version": 1, "pools": {"gone": gone, "blue": blue}}))
    s = start(admin_extra=", state_file: %s" % state, service_extra=ADMISSION)
    try:
        assert call(s.admin_port, "PUT", "/api/v1/services/app/admission",
                    {"rate": "7/s"})[0] == 200
        saved = json.loads(state.read_text())
        assert saved["pools"] == {"gone": gone, "blue": blue}, saved
        assert saved["services"]["app"]["admission"]["rate"] == 7, saved
    finally:
        stop_all(s)
    log = s.output()
    assert 'no pool "gone" in the config now; its admission limits are kept' in log, log
    assert "pool blue: no admission queue of its own now; its limits are not applied " \
        "(kept in the file)" in log, log


# ---- sluice ctl --------------------------------------------------------------------------

def test_ctl_says_what_went_wrong():

    def ctl(*args, timeout=30):
        p = subprocess.run([SLUICE, "ctl", *args], capture_output=True, text=True,
                           timeout=timeout)
        return p.returncode, p.stderr.splitlines()[0] if p.stderr else ""

    # A listener that accepts and never answers: the 10 s socket timeout was
    # reported as "Resource temporarily unavailable".
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    try:
        addr = "127.0.0.1:%d" % silent.getsockname()[1]
        assert ctl("--admin", addr, "status") == \
            (1, "sluice ctl: %s: no answer within 10 s" % addr)
    finally:
        silent.close()
    assert ctl("--admin") == (2, "sluice ctl: --admin: expected a value after it")
    assert ctl("--admin", "127.0.0.1:1", "admission", "set") == \
        (2, "sluice ctl: bad command: admission set")


# ---- reloads under traffic ------------------------------------------------------------------

def test_a_reload_that_removes_a_deploys_pool_stops_its_drain():
    blue, green = Backend("blue"), Backend("green")
    s = start(pools={"blue": [blue.addr], "green": [green.addr]})
    try:
        async def scenario():
            held = [await websockets.connect(s.url, compression=None) for _ in range(30)]
            status, body = call(s.admin_port, "POST", "/api/v1/services/app/deploys",
                                {"to": "green", "drain_rate": "20/s"})
            assert status == 201, body
            await asyncio.sleep(0.5)
            with open(s.cfg.name, "w") as f:
                f.write(config(s.port, {"blue": [blue.addr]}, workers=1,
                               service_extra="admission: off",
                               extra="admin: { address: 127.0.0.1:%d }" % s.admin_port))
            status, body = call(s.admin_port, "POST", "/api/v1/reload")
            assert status == 200, body
            # Its status cannot name a pool that is gone, but it says why.
            status, body = call(s.admin_port, "GET", "/api/v1/services/app/deploys/current")
            assert status == 404 and "reload that removed one of its pools" in body["error"], \
                body
            # A connection told to close just before the reload may still be
            # finishing its close handshake: count what was drained, not
            # what is open at this instant.
            drained = metric(scrape(s.admin_port), "sluice_drains_started_total")
            await asyncio.sleep(1)
            # Nothing more is drained once the deploy is over (at 20/s, a
            # drain still running would have told some 20 more by now)...
            assert metric(scrape(s.admin_port), "sluice_drains_started_total") == drained
            assert 0 < drained < 30
            # ...and every connection it did not drain is still open.
            assert wait_until(lambda: metric(scrape(s.admin_port), "sluice_websockets_open",
                                             service="app", pool="blue") == 30 - drained, 5), \
                metric(scrape(s.admin_port), "sluice_websockets_open", service="app", pool="blue")
            for h in held:
                await h.close()
        asyncio.run(asyncio.wait_for(scenario(), 30))
        assert wait_until(lambda: metric(scrape(s.admin_port), "sluice_websockets_open",
                                         service="app", pool="blue") == 0)
    finally:
        stop_all(s, blue, green)
    assert "reload: deploy of app stopped: its pools are gone" in s.output()


def test_reloads_in_a_loop_under_traffic_a_deploy_and_a_full_queue_leave_nothing_behind():
    blue, green = Backend("blue"), Backend("green")
    s = start(pools={"blue": [blue.addr], "green": [green.addr]},
              service_extra="admission: { rate: 40/s, burst: 5, "
                            "queue: { length: 20, max_wait: 2s, per_client: 0 } }")
    stop = time.monotonic() + 4
    reloads = {"sig": 0, "api": 0}

    def reloader(kind):
        while time.monotonic() < stop:
            if kind == "sig":
                os.kill(s.pid, signal.SIGHUP)
            else:
                assert call(s.admin_port, "POST", "/api/v1/reload")[0] == 200
            reloads[kind] += 1
            time.sleep(0.02)

    def deployer():
        k = 0
        while time.monotonic() < stop:
            call(s.admin_port, "POST", "/api/v1/services/app/deploys",
                 {"to": "green" if k % 2 == 0 else "blue", "drain_rate": "50/s"})
            time.sleep(0.3)
            if k % 2:
                call(s.admin_port, "POST", "/api/v1/services/app/deploys/current/abort")
            k += 1

    def http():
        while time.monotonic() < stop:
            try:
                urllib.request.urlopen(s.base + "/", timeout=5).read()
            except OSError:
                pass   # 503/429 from the full queue

    async def ws_client():
        while time.monotonic() < stop:
            try:
                c = await websockets.connect(s.url, compression=None, open_timeout=5)
                await c.send("x")
                await asyncio.wait_for(c.recv(), 5)
                await c.close()
            except (OSError, asyncio.TimeoutError, websockets.WebSocketException):
                pass

    async def clients():
        held = [await websockets.connect(s.url, compression=None) for _ in range(3)]
        await asyncio.gather(*[ws_client() for _ in range(20)])
        for h in held:
            await h.close()

    try:
        threads = [threading.Thread(target=f, args=a) for f, a in
                   [(reloader, ("sig",)), (reloader, ("api",)), (deployer, ()), (http, ())]]
        for t in threads:
            t.start()
        asyncio.run(asyncio.wait_for(clients(), 60))
        for t in threads:
            t.join(30)
        assert reloads["sig"] > 20 and reloads["api"] > 20, reloads

        def settled():
            m = scrape(s.admin_port)
            counts = list(metric_samples(m, "sluice_websockets_open").values())
            counts += list(metric_samples(m, "sluice_connections_open").values())
            return counts and all(v == 0 for v in counts)
        assert wait_until(settled, timeout=20), scrape(s.admin_port)
        assert s.alive()
    finally:
        stop_all(s, blue, green)


# ---- config errors -------------------------------------------------------------------------

def test_a_reload_from_a_worker_count_to_auto_making_as_many_is_applied():
    """workers: auto makes one per core: the same threads as the number of
    cores written out, so a reload between the two changes nothing and is
    applied (it was refused as a change of workers)."""
    cores = min(len(os.sched_getaffinity(0)), 256)
    s = start(extra="")
    try:
        text = s.text.replace("workers: 1", "workers: %d" % cores)
        s.stop()
        s = Sluice(text, s.port)
        s.admin_port = int(re.search(r"admin: \{ address: 127.0.0.1:(\d+)", text).group(1))
        wait_port("127.0.0.1", s.admin_port, s.proc)
        with open(s.cfg.name, "w") as f:
            f.write(text.replace("workers: %d" % cores, "workers: auto"))
        status, body = call(s.admin_port, "POST", "/api/v1/reload")
        assert status == 200, body
    finally:
        stop_all(s)


def test_a_reload_refused_for_a_fixed_part_names_its_place_and_both_values(tmp_path):
    s = start()
    try:
        listener = '  - address: "127.0.0.1:%d"' % s.port
        # (old, new, the message, the line's start and the text the column points at)
        cases = [
            ("workers: 1", "workers: 3", "workers: cannot change on reload (expected 1 as at "
                                         "start, got 3); restart sluice", "workers: 3", "3"),
            (listener, listener + "\n    backlog: 77",
             "listeners[0].backlog: cannot change on reload (expected 4096 as at start, got "
             "77); restart sluice", "    backlog", "77"),
            (listener, listener + "\n    proxy_protocol: v2",
             "listeners[0].proxy_protocol: cannot change on reload (expected off as at start, "
             "got v2); restart sluice", "    proxy_protocol", "v2"),
            ("workers: 1", "workers: 1\naccess_log: { path: %s/a.log }" % tmp_path,
             "access_log: cannot change on reload (expected off as at start, got path "
             "%s/a.log); restart sluice" % tmp_path, "access_log", str(tmp_path)),
        ]
        for old, new, message, where, at in cases:
            text = s.text.replace(old, new)
            with open(s.cfg.name, "w") as f:
                f.write(text)
            status, body = call(s.admin_port, "POST", "/api/v1/reload")
            assert status == 400, body
            # FILE:LINE:COL in the new file, at the key's value, and both values (it was
            # "FILE: listeners and workers cannot change on reload (...)", with no place
            # and no values; then a listener's keys were placed at its first line).
            lines = text.split("\n")
            line = next(i for i, x in enumerate(lines) if x.startswith(where)) + 1
            col = lines[line - 1].index(at) + 1
            assert body["errors"] == ["%s:%d:%d: %s" % (s.cfg.name, line, col, message)], body
        # The gateway still runs the config it started with.
        with open(s.cfg.name, "w") as f:
            f.write(s.text)
        assert call(s.admin_port, "POST", "/api/v1/reload")[0] == 200
    finally:
        stop_all(s)


def test_a_sighup_during_start_is_held_and_reloads_instead_of_killing():
    port = free_port()
    # Many pools make loading and resolving take a while: the window a
    # supervisor's early reload falls into (SIGHUP's default action killed it).
    pools = {"p%d" % i: ["localhost:%d" % (20000 + i)] for i in range(300)}
    text = config(port, pools, workers=1)
    cfg = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    cfg.write(text)
    cfg.close()
    s = Proc([SLUICE, "-c", cfg.name], "sluice")

    def hup_held():
        try:
            with open("/proc/%d/status" % s.pid) as f:
                blocked = [x for x in f if x.startswith("SigBlk:")][0]
            return int(blocked.split()[1], 16) & 1   # bit 0: SIGHUP
        except (OSError, IndexError):
            return 0
    try:
        # As soon as main holds it, before the handler exists: sent there, it
        # must wait for the handler and reload (it killed the process).
        deadline = time.monotonic() + 5
        while not hup_held() and time.monotonic() < deadline and s.alive():
            time.sleep(0.0005)
        assert hup_held(), "SIGHUP is not held while sluice starts"
        s.proc.send_signal(signal.SIGHUP)
        wait_port("127.0.0.1", port, s.proc)
        assert wait_until(lambda: "reload: %s applied (generation 2)" % cfg.name in s.output())
        assert not hup_held()
    finally:
        rc = s.stop()
        os.unlink(cfg.name)
    assert rc == 0, s.output()[-2000:]
