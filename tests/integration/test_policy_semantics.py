"""Admission and blue-green cutover semantics against docs/admission.md,
docs/deploys.md and docs/admin-api.md, with the real binary, the C backend
simulator and raw clients on loopback: the edge cases an operator meets in
a reconnect storm or a deploy.
"""
import json
import socket
import urllib.error
import urllib.request

from harness import Backend, Sluice, config, free_port, recv_until, stop_all, upgrade_request, \
    wait_until


class Admin:
    def __init__(self, port):
        self.port = port

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), data=data,
                                     method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def deploy(self):
        return self.call("GET", "/api/v1/services/app/deploys/current")[1]


def gateway(pools, service_extra, pool_extra=None):
    """sluice with the given pools ({name: [addr]}), admin API on;
    pool_extra ({name: "key: value"}) goes into those pools' mappings."""
    port, ap = free_port(), free_port()
    cfg = config(port, pools, service_extra=service_extra,
                 extra="admin: { address: 127.0.0.1:%d }" % ap)
    for name, line in (pool_extra or {}).items():
        cfg = cfg.replace("  %s:\n    backends:" % name, "  %s:\n    %s\n    backends:" % (name, line))
    return Sluice(cfg, port), Admin(ap)


def upgrade(port, source="127.0.0.1", timeout=10):
    """A raw upgrade: (socket, response head and whatever came with it)."""
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", port))
    sock.sendall(upgrade_request())
    return sock, recv_until(sock, b"\r\n\r\n", timeout=timeout)


def test_ramp_zero_deploy_to_a_dead_pool_keeps_new_clients_on_the_old_one():
    """A deploy with ramp 0s to a pool with no backend up pauses itself
    (new_pool_unhealthy) at its first step. Paused, the weights freeze where
    they stand, and nothing had moved yet: new clients must keep reaching
    blue. (They were all sent to the dead green pool and got 503.)"""
    blue = Backend("blue")
    dead = "127.0.0.1:%d" % free_port()
    s, admin = gateway({"blue": [blue.addr], "green": [dead]}, """admission:
  rate: 50/s
  burst: 10
  slow_start: 0
  queue: { length: 100, max_wait: 3s, per_client: 0 }
drain: { grace: 1s }""", {"green": "health: { interval: 100ms, timeout: 50ms, fall: 1, rise: 1 }"})
    socks = []
    try:
        assert wait_until(lambda: admin.call("GET", "/api/v1/pools/green")[1]["backends_up"] == 0)
        status, body = admin.call("POST", "/api/v1/services/app/deploys",
                                  {"to": "green", "ramp": "0s"})
        assert status == 201, body
        assert (body["phase"], body["paused"], body["paused_why"]) == \
            ("ramp", True, "new_pool_unhealthy"), body
        assert body["weights"] == {"blue": 1, "green": 0}, body
        for i in range(5):
            sock, head = upgrade(s.port)
            socks.append(sock)
            assert head.startswith(b"HTTP/1.1 101"), head
            if b"hello" not in head:
                head += recv_until(sock, b"hello", timeout=5)
            assert b"hello blue" in head, head
        assert admin.deploy()["weights"] == {"blue": 1, "green": 0}
    finally:
        for sock in socks:
            sock.close()
        stop_all(s, blue)


def test_a_client_that_leaves_the_queue_does_not_spend_its_address_rate():
    """per_client_rate counts admissions. A client that queues and then
    disconnects was never admitted: the next client of its address must
    queue and get in, not be answered 429 client_rate (its address's token
    went with the one that left)."""
    blue = Backend("blue")
    s, admin = gateway({"blue": [blue.addr]}, """admission:
  rate: 1/s
  burst: 1
  slow_start: 0
  queue: { length: 10, max_wait: 10s, per_client: 0 }
  per_client: { rate: 6/m, burst: 1 }
drain: { grace: 1s }""")
    adm = "/api/v1/services/app/admission"
    socks = []
    try:
        first, head = upgrade(s.port, "127.0.0.3")          # takes the one global token
        socks.append(first)
        assert head.startswith(b"HTTP/1.1 101"), head
        gone = socket.create_connection(("127.0.0.1", s.port), timeout=10,
                                        source_address=("127.0.0.2", 0))
        gone.sendall(upgrade_request())
        assert wait_until(lambda: admin.call("GET", adm)[1]["limits"]["state"]["queue_depth"] == 1)
        gone.close()                                         # gives up in line
        assert wait_until(lambda: admin.call("GET", adm)[1]["limits"]["state"]["queue_depth"] == 0)
        sock, head = upgrade(s.port, "127.0.0.2")
        socks.append(sock)
        assert head.startswith(b"HTTP/1.1 101"), head
        state = admin.call("GET", adm)[1]["limits"]["state"]
        assert state["rejected"]["client_rate"] == 0, state
        assert state["admitted"] == 2, state
    finally:
        for sock in socks:
            sock.close()
        stop_all(s, blue)


def test_the_service_queue_bounds_set_live_reach_a_pool_with_its_own_rate():
    """A pool with its own rate waits its clients in its own queue, with the
    pool's rate and burst and the service's queue bounds. A live change of
    the service's bounds (an operator shortening max_wait and the queue in a
    storm) must reach that queue too; it changed only the service's queue,
    which the pool's clients never wait in."""
    blue = Backend("blue")
    s, admin = gateway({"blue": [blue.addr]}, """admission:
  rate: 100/s
  burst: 10
  slow_start: 0
  queue: { length: 100, max_wait: 30s, per_client: 0 }
drain: { grace: 1s }""", {"blue": "rate: 12/m   # one token per 5 s\n    burst: 1"})
    adm = "/api/v1/services/app/admission"
    socks = []
    try:
        status, body = admin.call("PUT", adm, {"max_wait": "1s", "queue_length": 1})
        assert status == 200, body
        pool = body["pools"]["blue"]
        assert (pool["max_wait_ms"], pool["queue_length"], pool["rate"]) == (1000, 1, 0.2), pool
        first, head = upgrade(s.port)                        # the pool's one token
        socks.append(first)
        assert head.startswith(b"HTTP/1.1 101"), head
        waiting = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        socks.append(waiting)
        waiting.sendall(upgrade_request())
        assert wait_until(lambda: admin.call("GET", adm)[1]["pools"]["blue"]["state"]
                          ["queue_depth"] == 1)
        full, head = upgrade(s.port, timeout=4)              # the queue of 1 is full
        socks.append(full)
        assert head.startswith(b"HTTP/1.1 503"), head
        head = recv_until(waiting, b"\r\n\r\n", timeout=4)   # expires after 1 s, not 30
        assert head.startswith(b"HTTP/1.1 503") and b"Retry-After: " in head, head
        rejected = admin.call("GET", adm)[1]["pools"]["blue"]["state"]["rejected"]
        assert (rejected["queue_full"], rejected["wait_expired"]) == (1, 1), rejected
        # What the API set stands over the YAML across a reload, for the pool's queue too.
        assert admin.call("POST", "/api/v1/reload")[0] == 200
        pool = admin.call("GET", adm)[1]["pools"]["blue"]
        assert (pool["max_wait_ms"], pool["queue_length"]) == (1000, 1), pool
    finally:
        for sock in socks:
            sock.close()
        stop_all(s, blue)


def test_a_pools_limits_set_through_the_api_pace_again_when_a_reload_gives_its_queue_back():
    """docs/admission.md: limits the API set for a pool's own queue outlive
    the queue. A reload that takes the pool's own rate away puts them out of
    force (its clients wait in the service's queue, at the service's rate);
    one that gives the rate back puts them in force again, not the YAML's
    rate. Before, that queue came back with the YAML's 1000/s. No state
    file here: a reload keeps them without one."""
    blue = Backend("blue")
    own = "rate: 1000/s\n    burst: 100"
    s, admin = gateway({"blue": [blue.addr]}, """admission:
  rate: 100/s
  burst: 10
  slow_start: 0
  queue: { length: 100, max_wait: 30s, per_client: 0 }""", {"blue": own})
    with open(s.cfg.name) as f:
        text = f.read()
    adm = "/api/v1/services/app/admission"
    socks = []

    def reload(cfg):
        with open(s.cfg.name, "w") as f:
            f.write(cfg)
        status, body = admin.call("POST", "/api/v1/reload")
        assert status == 200, body

    def second_waits(queue):
        """One client takes the queue's one token; the next waits in `queue`."""
        first, head = upgrade(s.port)
        socks.append(first)
        assert head.startswith(b"HTTP/1.1 101"), head
        waiting = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        socks.append(waiting)
        waiting.sendall(upgrade_request())
        assert wait_until(lambda: queue(admin.call("GET", adm)[1])["state"]["queue_depth"] == 1)
    try:
        status, body = admin.call("PUT", adm, {"pool": "blue", "rate": "12/m", "burst": 1})
        assert status == 200 and body["pools"]["blue"]["rate"] == 0.2, body
        second_waits(lambda b: b["pools"]["blue"])
        # No rate of its own: blue's clients pass at the service's 100/s.
        reload(text.replace(own + "\n    ", ""))
        assert admin.call("GET", adm)[1]["pools"] == {}
        for _ in range(3):
            sock, head = upgrade(s.port, timeout=4)
            socks.append(sock)
            assert head.startswith(b"HTTP/1.1 101"), head
        # The rate is back in the YAML: the API's 12/m with it, pacing again.
        reload(text)
        pool = admin.call("GET", adm)[1]["pools"]["blue"]
        assert (pool["rate"], pool["burst"]) == (0.2, 1), pool
        second_waits(lambda b: b["pools"]["blue"])
    finally:
        for sock in socks:
            sock.close()
        stop_all(s, blue)


def test_a_deploy_refuses_a_drain_rate_the_yaml_could_not_hold():
    """drain_rate 0 was taken as "no cap of its own": with no admission rate
    on the new pool, the first step closed every connection of the old pool
    at once (20 of 20 here), the reconnect storm a cutover exists to avoid.
    The YAML's drain.rate is 0.001/s..10000000/s; the API now holds to it,
    as it does for the admission limits, and starts nothing."""
    blue, green = Backend("blue"), Backend("green")
    s, admin = gateway({"blue": [blue.addr], "green": [green.addr]},
                       "admission: off\ndrain: { grace: 1s, rate: 5/s }")
    socks = []
    try:
        for _ in range(20):
            sock, head = upgrade(s.port)
            socks.append(sock)
            assert head.startswith(b"HTTP/1.1 101"), head
        for bad in (0, "0/s", "20000000/s"):
            status, body = admin.call("POST", "/api/v1/services/app/deploys",
                                      {"to": "green", "drain_rate": bad})
            assert status == 400 and body["error"].startswith("drain_rate: out of range"), \
                (bad, status, body)
            assert admin.call("GET", "/api/v1/services/app/deploys/current")[0] == 404
        status, body = admin.call("POST", "/api/v1/services/app/deploys",
                                  {"to": "green", "drain_rate": "10/s"})
        assert status == 201 and body["pace"] == 10, body
    finally:
        for sock in socks:
            sock.close()
        stop_all(s, blue, green)


def test_a_client_queued_before_a_cutover_is_admitted_to_the_new_pool():
    """A client waiting in the service's queue when a cutover starts (ramp
    0s: every new connection to green) was answered with the pool picked on
    its arrival, blue, and so landed on the pool being drained, to be
    closed with 1012 and reconnect once more. It goes where new connections
    go when its turn comes."""
    blue, green = Backend("blue"), Backend("green")
    s, admin = gateway({"blue": [blue.addr], "green": [green.addr]}, """admission:
  rate: 20/m   # a token every 3 s
  burst: 1
  slow_start: 0
  queue: { length: 10, max_wait: 20s, per_client: 0 }
drain: { grace: 1s, rate: 100/s }""")
    adm = "/api/v1/services/app/admission"
    socks = []
    try:
        first, head = upgrade(s.port)                        # the one token, to blue
        socks.append(first)
        if b"hello" not in head:
            head += recv_until(first, b"hello", timeout=5)
        assert head.startswith(b"HTTP/1.1 101") and b"hello blue" in head, head
        waiting = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        socks.append(waiting)
        waiting.sendall(upgrade_request())
        assert wait_until(lambda: admin.call("GET", adm)[1]["limits"]["state"]["queue_depth"] == 1)
        status, body = admin.call("POST", "/api/v1/services/app/deploys",
                                  {"to": "green", "ramp": "0s"})
        assert status == 201 and body["phase"] == "drain", body
        head = recv_until(waiting, b"hello", timeout=10)    # its turn: the next token
        assert head.startswith(b"HTTP/1.1 101") and b"hello green" in head, head
    finally:
        for sock in socks:
            sock.close()
        stop_all(s, blue, green)


def test_a_deploy_from_a_pool_that_is_not_active_is_refused():
    """`from` is the pool new connections leave. A deploy "from green to
    blue" while blue is active started with green's weight at 1: every new
    connection went to green, a pool the service was not using. It is
    refused (409, saying which pool is active) and nothing changes; from the
    active pool, the default, it starts."""
    blue, green = Backend("blue"), Backend("green")
    s, admin = gateway({"blue": [blue.addr], "green": [green.addr]}, "admission: off")
    deploys = "/api/v1/services/app/deploys"
    try:
        status, body = admin.call("POST", deploys, {"from": "green", "to": "blue", "ramp": "60s"})
        assert status == 409 and "blue is" in body["error"], (status, body)
        assert admin.call("GET", deploys + "/current")[0] == 404
        sock, head = upgrade(s.port)
        if b"hello" not in head:
            head += recv_until(sock, b"hello", timeout=5)
        sock.close()
        assert head.startswith(b"HTTP/1.1 101") and b"hello blue" in head, head
        # from the active pool: a cutover to green, done at once (nothing open),
        # after which green is the pool a deploy starts from.
        status, body = admin.call("POST", deploys, {"from": "blue", "to": "green", "ramp": "0s"})
        assert status == 201, body
        assert wait_until(lambda: admin.deploy()["phase"] == "done")
        assert admin.call("POST", deploys, {"from": "blue", "to": "green"})[0] == 409
        status, body = admin.call("POST", deploys, {"from": "green", "to": "blue", "ramp": "60s"})
        assert status == 201 and body["weights"] == {"green": 1, "blue": 0}, body
    finally:
        stop_all(s, blue, green)


def test_a_pool_whose_backends_are_all_drained_holds_its_queue():
    """A backend drained through the API takes no new connections. When it
    was the pool's last, the queue went on admitting into a pool the workers
    could pick nothing from, and each admitted client got a 502 at once;
    a cutover onto such a pool did not pause either. Now the queue holds
    (clients wait, as while no backend is up) until the drain is taken
    back, and a cutover onto a drained pool pauses (new_pool_unhealthy)."""
    blue, green = Backend("blue"), Backend("green")
    s, admin = gateway({"blue": [blue.addr], "green": [green.addr]}, """admission:
  rate: 50/s
  burst: 10
  slow_start: 0
  queue: { length: 100, max_wait: 10s, per_client: 0 }""")
    waiting = socket.socket()
    try:
        drain = "/api/v1/pools/%s/backends/%s/drain"
        assert admin.call("POST", drain % ("blue", blue.addr))[0] == 202
        waiting.settimeout(10)
        waiting.connect(("127.0.0.1", s.port))
        waiting.sendall(upgrade_request())
        # Held: no answer while the drain lasts.
        waiting.settimeout(1.0)
        try:
            early = waiting.recv(4096)
        except socket.timeout:
            early = b""
        assert early == b"", early
        assert admin.call("POST", drain % ("blue", blue.addr), {"drain": False})[0] == 200
        # The waiting client goes through once blue takes connections again.
        head = recv_until(waiting, b"\r\n\r\n", timeout=5)
        assert head.startswith(b"HTTP/1.1 101"), head
        # A cutover onto a pool whose backends are all drained pauses at once.
        assert admin.call("POST", drain % ("green", green.addr))[0] == 202
        status, body = admin.call("POST", "/api/v1/services/app/deploys",
                                  {"to": "green", "ramp": "0s"})
        assert status == 201, body
        assert (body["paused"], body["paused_why"]) == (True, "new_pool_unhealthy"), body
        assert body["weights"] == {"blue": 1, "green": 0}, body
    finally:
        waiting.close()
        stop_all(s, blue, green)


def test_a_pool_queue_shared_by_two_services_is_changed_and_counted_only_where_clients_wait():
    """Services a (admission on) and b (admission off) share a pool with a
    rate of its own. b's clients wait in no queue, so its admission is 409
    with `pool` too: it was 200 and changed the queue a's clients wait in.
    And /metrics lists the pool's queue once, under a: under b as well, a
    sum over the family counted it twice."""
    port, ap = free_port(), free_port()
    s = Sluice("""listeners:
  - address: "127.0.0.1:%d"
workers: 1
pools:
  own:
    backends: [ { address: "127.0.0.1:9" } ]
  shared:
    rate: 50/s
    burst: 10
    backends: [ { address: "127.0.0.1:9" } ]
services:
  a:
    routes: [ { host: "a", path_prefix: / } ]
    pools: [shared]
    active: shared
    admission: { rate: 100/s, burst: 10, slow_start: 0 }
  b:
    routes: [ { host: "*", path_prefix: / } ]
    pools: [own, shared]
    active: own
    admission: { enabled: false }
admin: { address: 127.0.0.1:%d }
""" % (port, ap), port)
    admin = Admin(ap)
    try:
        assert admin.call("GET", "/api/v1/services/b/admission") == \
            (200, {"service": "b", "enabled": False})
        assert admin.call("PUT", "/api/v1/services/b/admission", {"pool": "shared", "rate": 7}) \
            == (409, {"error": "admission is off for this service"})
        status, body = admin.call("GET", "/api/v1/services/a/admission")
        assert status == 200 and body["pools"]["shared"]["rate"] == 50, body
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % ap, timeout=10) as r:
            rates = sorted(line for line in r.read().decode().splitlines()
                           if line.startswith("sluice_admission_rate{"))
        assert rates == ['sluice_admission_rate{service="a",queue="service"} 100.000',
                         'sluice_admission_rate{service="a",queue="shared"} 50.000'], rates
    finally:
        stop_all(s)
