"""Backends and workers: health checks, passive ejection, retries, spread
over worker loops — with the real binary and real backends.
"""
import asyncio
import json
import socket
import time
import urllib.request

import websockets

from harness import (Backend, Sluice, ThreadBackend, config, free_port, metric, metric_samples,
                     recv_until, scrape, stop_all, wait_until)
from test_deploy import Admin

HEALTH = """    health: { path: /healthz, interval: 200ms, timeout: 500ms, rise: 2, fall: 2,
              passive_failures: 1, passive_eject: 2s }"""


def pool_config(port, admin, backends, balance="least_conn"):
    cfg = config(port, {"app": [b.addr for b in backends]}, workers=2,
                 service_extra="admission: off",
                 extra="admin: { address: 127.0.0.1:%d }" % admin)
    # Health settings go inside the pool.
    return cfg.replace("  app:\n    backends:", "  app:\n    balance: %s\n%s\n    backends:"
                       % (balance, HEALTH), 1)


def backend_up(admin, addr):
    """The gateway's sluice_pool_backend_up gauge for a backend of pool "app"
    (None if absent)."""
    return metric_samples(scrape(admin), "sluice_pool_backend_up").get(
        (("backend", addr), ("pool", "app")))


async def hello(url):
    async with websockets.connect(url, compression=None, open_timeout=10) as ws:
        return await asyncio.wait_for(ws.recv(), 10)


async def hellos(url, n):
    return await asyncio.gather(*[hello(url) for _ in range(n)])


def test_killed_backend_is_ejected_and_comes_back(tmp_path):
    a, b = Backend("alpha"), Backend("beta")
    port, admin = free_port(), free_port()
    sluice = Sluice(pool_config(port, admin, [a, b]), port)
    try:
        names = asyncio.run(asyncio.wait_for(hellos(sluice.url, 20), 30))
        assert {"hello alpha", "hello beta"} == set(names)

        # Clients connected to alpha when it dies get 1014; others are untouched.
        async def hold_and_kill():
            conns = [await websockets.connect(sluice.url, compression=None) for _ in range(10)]
            greet = [await asyncio.wait_for(c.recv(), 5) for c in conns]
            a.stop()
            codes = []
            for c, g in zip(conns, greet):
                if g == "hello alpha":
                    try:
                        await asyncio.wait_for(c.recv(), 5)
                    except websockets.ConnectionClosed as e:
                        codes.append(e.code)
                else:
                    await c.send("still here")
                    assert await asyncio.wait_for(c.recv(), 5) == "still here"
                await c.close()
            return greet, codes
        greet, codes = asyncio.run(asyncio.wait_for(hold_and_kill(), 30))
        assert codes == [1014] * greet.count("hello alpha")

        # New clients right after the kill: no failure, all on beta (retries,
        # then the health checks take alpha out).
        names = asyncio.run(asyncio.wait_for(hellos(sluice.url, 30), 30))
        assert set(names) == {"hello beta"}
        assert wait_until(lambda: backend_up(admin, a.addr) == 0)

        # Alpha comes back on the same port; after `rise` checks it takes traffic again.
        a2 = Backend("alpha", port=a.port)
        try:
            assert wait_until(lambda: backend_up(admin, a.addr) == 1)
            names = asyncio.run(asyncio.wait_for(hellos(sluice.url, 20), 30))
            assert "hello alpha" in names
        finally:
            a2.stop()
    finally:
        stop_all(sluice, b, a)


class HealthAnswers(ThreadBackend):
    """Answers every request with `answer`, which the test changes."""

    def __init__(self, answer):
        self.answer = answer
        super().__init__()

    def handle(self, conn):
        with conn:
            if b"\r\n\r\n" in recv_until(conn, b"\r\n\r\n"):
                conn.sendall(self.answer)


def test_health_checks_judge_the_status_line(tmp_path):
    """A 2xx or 3xx status line passes a check; anything else fails it,
    including a status of four digits, a 101 and an answer that is not
    HTTP. Each answer moves the backend across, so each one is judged."""
    good = Backend("good")
    probe = HealthAnswers(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
    port, admin = free_port(), free_port()
    sluice = Sluice(pool_config(port, admin, [good, probe]), port)
    try:
        steps = [
            (None, 0),   # the 503 it started with
            (b"HTTP/1.1 204 No Content\r\n\r\n", 1),
            (b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", 0),
            (b"HTTP/1.0 301 Moved Permanently\r\nLocation: /x\r\n\r\n", 1),
            (b"SSH-2.0-OpenSSH_9.2\r\n", 0),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 1),
            (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", 0),
        ]
        for answer, want in steps:
            if answer is not None:
                probe.answer = answer
            assert wait_until(lambda: backend_up(admin, probe.addr) == want, 10), \
                (probe.answer, backend_up(admin, probe.addr))
        assert backend_up(admin, good.addr) == 1
    finally:
        stop_all(sluice, good)
        probe.close()


def test_a_backend_down_by_its_checks_is_up_once_a_reload_turns_them_off(tmp_path):
    """A reload carries a backend's health verdict over. A verdict of the
    active checks that the new config no longer runs was carried too: a
    backend they had marked down stayed down for good, with nothing left
    to bring it up (a pool without active checks counts its backends up)."""
    good = Backend("good")
    probe = HealthAnswers(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
    port, admin = free_port(), free_port()
    sluice = Sluice(pool_config(port, admin, [good, probe]), port)
    try:
        assert wait_until(lambda: backend_up(admin, probe.addr) == 0, 10)
        # The same pool and backends without a health section, and no more checks.
        with open(sluice.cfg.name, "w") as f:
            f.write(config(port, {"app": [good.addr, probe.addr]}, workers=2,
                           service_extra="admission: off",
                           extra="admin: { address: 127.0.0.1:%d }" % admin))
        assert Admin(admin).call("POST", "/api/v1/reload")[0] == 200
        assert wait_until(lambda: backend_up(admin, probe.addr) == 1, 5), \
            backend_up(admin, probe.addr)
        assert backend_up(admin, good.addr) == 1
        assert "backend %s (pool app): up (its pool's active checks are off now)" % probe.addr \
            in sluice.output()
    finally:
        stop_all(sluice, good)
        probe.close()


def test_connections_spread_over_both_workers(tmp_path):
    backend = Backend("blue")
    port, admin = free_port(), free_port()
    sluice = Sluice(pool_config(port, admin, [backend]), port)
    try:
        async def hold():
            conns = []
            for i in range(200):
                # Different source addresses and ports: SO_REUSEPORT spreads by hash.
                conns.append(await websockets.connect(
                    sluice.url, compression=None, local_addr=("127.0.0.%d" % (2 + i % 8), 0)))
            for c in conns:
                assert await asyncio.wait_for(c.recv(), 5) == "hello blue"
            per_worker = metric_samples(scrape(admin), "sluice_worker_connections_open")
            for c in conns:
                await c.close()
            return per_worker
        per_worker = asyncio.run(asyncio.wait_for(hold(), 60))
        assert len(per_worker) == 2
        assert sum(per_worker.values()) == 200
        assert min(per_worker.values()) >= 40, per_worker
    finally:
        stop_all(sluice, backend)


def test_round_robin_and_sticky_hash(tmp_path):
    a, b, c = Backend("a"), Backend("b"), Backend("c")
    try:
        port, admin = free_port(), free_port()
        cfg = pool_config(port, admin, [a, b, c], balance="round_robin").replace(
            "workers: 2", "workers: 1")
        sluice = Sluice(cfg, port)
        try:
            names = asyncio.run(asyncio.wait_for(hellos(sluice.url, 30), 30))
            assert sorted(names.count(n) for n in {"hello a", "hello b", "hello c"}) == [10, 10, 10]
        finally:
            stop_all(sluice)

        port2 = free_port()
        cfg = pool_config(port2, free_port(), [a, b, c], balance="hash").replace(
            "    backends:", "    hash_by: header\n    hash_key: X-User\n    backends:", 1)
        sluice = Sluice(cfg, port2)
        try:
            async def sticky():
                seen = {}
                for user in ["u%d" % i for i in range(30)]:
                    for _ in range(3):
                        async with websockets.connect(sluice.url, compression=None,
                                                      extra_headers={"X-User": user}) as ws:
                            seen.setdefault(user, set()).add(await asyncio.wait_for(ws.recv(), 5))
                return seen
            seen = asyncio.run(asyncio.wait_for(sticky(), 60))
            assert all(len(v) == 1 for v in seen.values()), seen
            assert len({next(iter(v)) for v in seen.values()}) == 3
        finally:
            stop_all(sluice)
    finally:
        for backend in (a, b, c):
            backend.stop()


def admission_gateway(a):
    """A gateway in front of backend a with health checks and admission
    (200/s, burst 20, a 20 s queue): (sluice, admin port)."""
    port, admin = free_port(), free_port()
    cfg = config(port, {"app": [a.addr]}, workers=2,
                 service_extra="""admission:
  rate: 200/s
  burst: 20
  queue: { length: 1000, max_wait: 20s, per_client: 0 }
  slow_start: 0""", extra="admin: { address: 127.0.0.1:%d }" % admin)
    cfg = cfg.replace("  app:\n    backends:", "  app:\n%s\n    backends:" % HEALTH.replace(
        "passive_eject: 2s", "passive_eject: 1s"), 1)
    return Sluice(cfg, port), admin


def through_a_restart(s, a, restarted, n=30):
    """n clients start now, with backend a down: none may be done 1.5 s later
    (waiting, not failed); then a restarts on its port (appended to
    restarted, for the caller to stop) and every client gets its hello."""
    async def scenario():
        tasks = [asyncio.create_task(hello(s.url)) for _ in range(n)]
        await asyncio.sleep(1.5)
        done = [t.exception() or t.result() for t in tasks if t.done()]
        assert done == [], done[:5]
        restarted.append(Backend("alpha", port=a.port))
        return await asyncio.wait_for(asyncio.gather(*tasks), 20)
    assert asyncio.run(asyncio.wait_for(scenario(), 40)) == ["hello alpha"] * n


def test_queue_holds_while_the_pool_is_down(tmp_path):
    """A restarting backend: clients arriving while it is down wait in the
    admission queue and get in when it is back, instead of getting an error."""
    a = Backend("alpha")
    s, admin = admission_gateway(a)
    restarted = []
    try:
        assert asyncio.run(asyncio.wait_for(hellos(s.url, 5), 20)) == ["hello alpha"] * 5
        a.stop()
        assert wait_until(lambda: backend_up(admin, a.addr) == 0)
        through_a_restart(s, a, restarted)
        assert "holding the queue" in s.output()
    finally:
        stop_all(s)
        for b in restarted + [a]:
            b.stop()


def test_clients_admitted_as_the_backend_dies_wait_instead_of_failing(tmp_path):
    """Clients that arrive the moment the backend dies get tokens before any
    health check or passive ejection has marked the pool down: their connects
    are refused. They go back in line (the queue then holds while the pool is
    down) and get in when the backend is back, instead of a 502 or 503."""
    a = Backend("alpha")
    s, admin = admission_gateway(a)
    restarted = []
    try:
        assert asyncio.run(asyncio.wait_for(hellos(s.url, 5), 20)) == ["hello alpha"] * 5
        a.stop()
        # At once: the burst's 20 tokens are there, the pool still counts as up.
        through_a_restart(s, a, restarted)
        assert metric(scrape(admin), "sluice_admission_sessions_requeued_total") >= 1
    finally:
        stop_all(s)
        for b in restarted + [a]:
            b.stop()


def black_hole():
    """A listener whose accept queue is full: a connect to it is never answered
    (the kernel drops the SYNs), like a backend host that went silent."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    filler = socket.create_connection(hole.getsockname(), timeout=5)   # fills the queue
    return hole, filler, "127.0.0.1:%d" % hole.getsockname()[1]


def test_connect_timeout_moves_an_upgrade_to_the_next_backend():
    """The upgrade's request goes out right after connect(); a connect that never
    completes still times out after timeouts.connect, counts as a connect failure,
    and the upgrade is retried on the next backend (or answered 502 when none is left)."""
    hole, filler, hole_addr = black_hole()
    beta = Backend("beta")
    port, admin = free_port(), free_port()
    sluice = Sluice(config(port, {"app": [hole_addr, beta.addr]},
                           extra="admin: { address: 127.0.0.1:%d }\n"
                                 "timeouts: { connect: 300ms }" % admin), port)
    alone = None
    try:
        t0 = time.monotonic()
        assert asyncio.run(asyncio.wait_for(hello(sluice.url), 10)) == "hello beta"
        assert time.monotonic() - t0 >= 0.3   # least_conn tried the silent one first
        fails = metric_samples(scrape(admin), "sluice_pool_backend_connect_failures_total")
        assert fails[(("backend", hole_addr), ("pool", "app"))] == 1, fails
        # Only the silent backend: 502 once its connect has timed out.
        port2 = free_port()
        alone = Sluice(config(port2, {"app": [hole_addr]},
                              extra="timeouts: { connect: 300ms }"), port2)
        s = socket.create_connection(("127.0.0.1", port2), timeout=10)
        t0 = time.monotonic()
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n")
        answer = s.recv(4096)
        s.close()
        assert answer.startswith(b"HTTP/1.1 502"), answer[:100]
        assert 0.3 <= time.monotonic() - t0 < 5
    finally:
        if alone:
            stop_all(alone)
        stop_all(sluice, beta)
        filler.close()
        hole.close()


def ramp_gateway(backends, pool_rate):
    """Health-checked pool "app" of `backends`; slow start 10 s from 0.1 on the
    pool's own queue (pool_rate) or, without one, on the service's (100/s)."""
    port, admin = free_port(), free_port()
    cfg = config(port, {"app": [b.addr for b in backends]}, workers=1,
                 service_extra="""admission:
  rate: 100/s
  burst: 50
  slow_start: 10s
  slow_start_floor: 0.1""", extra="admin: { address: 127.0.0.1:%d }" % admin)
    own = "    rate: %s\n    burst: 50\n    slow_start: 10s\n" % pool_rate if pool_rate else ""
    cfg = cfg.replace("  app:\n    backends:", "  app:\n%s%s\n    backends:" % (own, HEALTH), 1)
    return Sluice(cfg, port), admin


def current_rates(admin):
    body = json.loads(urllib.request.urlopen(
        "http://127.0.0.1:%d/api/v1/services/app/admission" % admin, timeout=10).read())
    return (body["limits"]["state"]["current_rate"],
            {p: v["state"]["current_rate"] for p, v in body["pools"].items()})


def restart(b, restarted, admin):
    b.stop()
    assert wait_until(lambda: backend_up(admin, b.addr) == 0)
    restarted.append(Backend(b.name, port=b.port))
    assert wait_until(lambda: backend_up(admin, b.addr) == 1)


def test_slow_start_ramps_a_pool_coming_back_not_one_that_kept_serving(tmp_path):
    """One backend of two coming back must not cut the pool's rate (it once
    dropped to the floor); the whole pool coming back ramps from the floor."""
    a, b = Backend("alpha"), Backend("beta")
    s, admin = ramp_gateway([a, b], "100/s")
    restarted = []
    try:
        restart(b, restarted, admin)                    # alpha served all along
        assert current_rates(admin) == (100, {"app": 100})
        a.stop()
        restarted[0].stop()
        restart(Backend("alpha", port=a.port), restarted, admin)   # the pool was down
        service, pools = current_rates(admin)
        assert service == 100 and 10 <= pools["app"] < 40, (service, pools)
    finally:
        stop_all(s)
        for x in restarted + [a, b]:
            x.stop()


def test_slow_start_ramps_a_pool_whose_other_backends_are_drained(tmp_path):
    """alpha is drained through the API, beta comes back: the pool took no
    connections before (alpha is up but takes none), so it is a pool coming
    back and ramps. Counting alpha as up, the pool took beta at full rate."""
    a, b = Backend("alpha"), Backend("beta")
    s, admin = ramp_gateway([a, b], "100/s")
    restarted = []
    try:
        url = "http://127.0.0.1:%d/api/v1/pools/app/backends/%s/drain" % (admin, a.addr)
        with urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"),
                                    timeout=10) as r:
            assert r.status == 202
        restart(b, restarted, admin)
        service, pools = current_rates(admin)
        assert service == 100 and 10 <= pools["app"] < 40, (service, pools)
    finally:
        stop_all(s)
        for x in restarted + [a, b]:
            x.stop()


def test_slow_start_of_the_service_queue_ramps_when_its_pool_comes_back(tmp_path):
    """services.*.admission.slow_start was accepted and never applied: a pool
    without a queue of its own coming back left the service at full rate."""
    a = Backend("alpha")
    s, admin = ramp_gateway([a], None)
    restarted = []
    try:
        assert current_rates(admin) == (100, {})
        restart(a, restarted, admin)
        service, _ = current_rates(admin)
        assert 10 <= service < 40, service
    finally:
        stop_all(s)
        for x in restarted + [a]:
            x.stop()



# ---- backends added at run time --------------------------------------------------------------

# Checks far apart (2 s) with rise 3 and fall 2: a backend up within a second
# of being added was checked at once and brought up by its first pass (not
# by a run of `rise`), and a dead one that never took a client owes it to
# starting down (`fall` would have taken two failed checks, 2 s at least).
SLOW_HEALTH = "    health: { path: /healthz, interval: 2s, timeout: 500ms, rise: 3, fall: 2 }"


def slow_health_config(port, admin, pools):
    """Pools ({name: [addr]}) each with SLOW_HEALTH; service "app" on the first."""
    cfg = config(port, pools, workers=2, service_extra="admission: off",
                 extra="admin: { address: 127.0.0.1:%d }" % admin)
    for name in pools:
        cfg = cfg.replace("  %s:\n    backends:" % name,
                          "  %s:\n%s\n    backends:" % (name, SLOW_HEALTH), 1)
    return cfg


def backends_of(admin, pool="app"):
    """{address: backend object} of GET /api/v1/pools/{pool}."""
    return {b["address"]: b for b in admin.call("GET", "/api/v1/pools/" + pool)[1]["backends"]}


def dead_address():
    return "127.0.0.1:%d" % free_port()   # nothing listens there


def added_backends_behave(s, admin, t0, old, dead, live):
    """Just after backends were added at t0: each of `dead` (addresses) shows
    down and is never tried; `live` (a Backend) is up within a second (its
    first check, at once) and takes clients with `old` (Backends)."""
    b = backends_of(admin)
    for d in dead:
        assert b[d]["up"] is False, b[d]
    assert wait_until(lambda: backends_of(admin)[live.addr]["up"], 3)
    took = time.monotonic() - t0
    assert took < 1.0, "the added backend was up %.2f s after it was added" % took
    names = asyncio.run(asyncio.wait_for(hellos(s.url, 30), 30))
    assert set(names) == {"hello " + x.name for x in old + [live]}, names
    b = backends_of(admin)
    for d in dead:
        assert (b[d]["up"], b[d]["connects"], b[d]["connect_failures"]) == (False, 0, 0), b[d]
    assert metric(scrape(admin.port), "sluice_pool_backend_up", pool="app", backend=dead[0]) == 0
    return b


def test_a_backend_added_at_run_time_is_down_until_its_first_check_passes(tmp_path):
    """A backend added by a reload or PUT .../backends to a pool with active
    checks once counted as up until `fall` checks failed: clients were sent
    to a dead one (connect failures, 502s) for seconds. It starts down now,
    is checked at once and is up after its first passing check; a backend
    that was there before keeps its verdict."""
    alpha, beta, gamma = Backend("alpha"), Backend("beta"), Backend("gamma")
    dead1, dead2 = dead_address(), dead_address()
    port, ap = free_port(), free_port()
    s = Sluice(slow_health_config(port, ap, {"app": [alpha.addr]}), port)
    admin = Admin(ap)
    try:
        assert backends_of(admin)[alpha.addr]["up"] is True   # at start: up, as before
        # A reload adds a dead backend and a live one.
        with open(s.cfg.name, "w") as f:
            f.write(slow_health_config(port, ap, {"app": [alpha.addr, dead1, beta.addr]}))
        t0 = time.monotonic()
        assert admin.call("POST", "/api/v1/reload")[0] == 200
        added_backends_behave(s, admin, t0, [alpha], [dead1], beta)
        # The API adds another of each; those that stay keep their verdicts
        # (beta up at once, dead1 still down and still never tried).
        t0 = time.monotonic()
        status, body = admin.call("PUT", "/api/v1/pools/app/backends", {"backends": [
            {"address": a} for a in (alpha.addr, beta.addr, dead1, dead2, gamma.addr)]})
        assert status == 200, body
        b = backends_of(admin)
        assert b[beta.addr]["up"] is True and b[alpha.addr]["up"] is True, b
        added_backends_behave(s, admin, t0, [alpha, beta], [dead2, dead1], gamma)
        log = s.output()
        for d in (dead1, dead2):
            assert "backend %s (pool app): added; down until its first health check passes" % d \
                in log
            assert "backend %s (pool app): up -> down" % d not in log   # never counted up
    finally:
        stop_all(s, alpha, beta, gamma)


def test_a_backend_added_without_active_checks_takes_clients_at_once(tmp_path):
    """Nothing would ever bring it up if it started down: it is up when added."""
    alpha, beta = Backend("alpha"), Backend("beta")
    port, ap = free_port(), free_port()
    s = Sluice(config(port, {"app": [alpha.addr]}, service_extra="admission: off",
                      extra="admin: { address: 127.0.0.1:%d }" % ap), port)
    admin = Admin(ap)
    try:
        status, body = admin.call("PUT", "/api/v1/pools/app/backends", {"backends": [
            {"address": alpha.addr}, {"address": beta.addr}]})
        assert status == 200, body
        assert backends_of(admin)[beta.addr]["up"] is True
        names = asyncio.run(asyncio.wait_for(hellos(s.url, 20), 30))
        assert set(names) == {"hello alpha", "hello beta"}, names
    finally:
        stop_all(s, alpha, beta)


def test_a_deploy_onto_backends_just_added_and_dead_pauses_itself(tmp_path):
    """A pool whose backends were all replaced through the API by dead ones
    counted as healthy, so a deploy onto it went ahead and sent clients
    there; now it pauses itself (new_pool_unhealthy) and new clients stay."""
    alpha, green = Backend("alpha"), Backend("green")
    port, ap = free_port(), free_port()
    s = Sluice(slow_health_config(port, ap, {"app": [alpha.addr], "green": [green.addr]}), port)
    admin = Admin(ap)
    try:
        dead = dead_address()
        status, body = admin.call("PUT", "/api/v1/pools/green/backends",
                                  {"backends": [{"address": dead}]})
        assert status == 200, body
        pool = admin.call("GET", "/api/v1/pools/green")[1]
        assert pool["backends_up"] == 0, pool
        status, body = admin.call("POST", "/api/v1/services/app/deploys",
                                  {"to": "green", "ramp": "0s"})
        assert status == 201, body
        assert (body["paused"], body["paused_why"]) == (True, "new_pool_unhealthy"), body
        names = asyncio.run(asyncio.wait_for(hellos(s.url, 10), 30))
        assert set(names) == {"hello alpha"}, names
    finally:
        stop_all(s, alpha, green)
