"""The admin API: probes, Prometheus metrics after real traffic, status JSON,
the bearer token, JSON errors with their statuses, the refusal to expose the
API off loopback without a token, and `sluice ctl`.

Every test starts the real binary with an inline config whose admin listener
is on a loopback port, and talks to it with raw sockets (exact bytes) or
`sluice ctl`.
"""
import json
import re
import socket
import subprocess
import time

import websockets

from harness import (SLUICE, T, Backend, HttpReader, Sluice, WsConn, config, free_port, run,
                     stop_all, wait_port, wait_until)

# Every resource is built; bad requests to the newest ones get clear errors.
BAD_REQUESTS = [
    ("PUT", "/api/v1/pools/blue/backends", b'{"backends": []}', 400),
    ("PUT", "/api/v1/pools/blue/backends", b'{"backends": [{"address": "nohost"}]}', 400),
    ("PUT", "/api/v1/pools/red/backends", b'{"backends": [{"address": "127.0.0.1:1"}]}', 404),
    ("POST", "/api/v1/pools/blue/backends/127.0.0.1:9001/drain", b"", 404),
    ("POST", "/api/v1/pools/blue/backends/127.0.0.1:9/drain", b'{"drain": 1}', 400),
    # bodies that are JSON but not objects (an array once crashed the drain handler)
    ("POST", "/api/v1/pools/blue/backends/127.0.0.1:9/drain", b'[1]', 400),
    ("POST", "/api/v1/pools/blue/backends/127.0.0.1:9/drain", b'"drain"', 400),
    ("PUT", "/api/v1/pools/blue/backends", b'[{"address": "127.0.0.1:1"}]', 400),
    ("PUT", "/api/v1/services/app/admission", b'[1]', 400),
    ("POST", "/api/v1/services/app/deploys", b'[1]', 400),
]


class Admin:
    """A keep-alive HTTP/1.1 connection to the admin listener."""

    def __init__(self, port, token=None):
        self.port, self.token = port, token
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=T)
        self.reader = HttpReader(self.sock)

    def request(self, method, path, body=b"", headers="", token=None):
        token = token if token is not None else self.token
        head = "%s %s HTTP/1.1\r\nHost: admin\r\n" % (method, path)
        if token:
            head += "Authorization: Bearer %s\r\n" % token
        if body or method in ("PUT", "POST"):
            head += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        self.sock.sendall((head + headers + "\r\n").encode() + body)
        return self.reader.read(method)

    def json(self, method, path, body=b"", **kw):
        r = self.request(method, path, body, **kw)
        assert r.header("content-type") == "application/json", r
        assert r.body.endswith(b"\n")
        return r.status, json.loads(r.body)

    def close(self):
        self.sock.close()


def start(tmp_path=None, backends=None, admin_extra="", extra="", wait=True,
          admission="admission: off"):
    port, admin_port = free_port(), free_port()
    admin = "admin: { address: 127.0.0.1:%d%s }" % (admin_port, admin_extra)
    cfg = config(port, {"blue": backends or ["127.0.0.1:9"], "green": ["127.0.0.1:9"]}, workers=1,
                 service_extra=admission, extra=admin + "\n" + extra)
    s = Sluice(cfg, port if wait else None, wait=wait)
    if wait:
        wait_port("127.0.0.1", admin_port, s.proc)
    s.admin_port = admin_port
    return s


def ctl(*args, admin_port=None, env=None):
    argv = [SLUICE, "ctl"]
    if admin_port:
        argv += ["--admin", "127.0.0.1:%d" % admin_port]
    p = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=T, env=env)
    return p.returncode, p.stdout, p.stderr


# ---- probes, routing and errors -------------------------------------------------------------

def test_probes_routing_and_json_errors():
    s = start()
    try:
        a = Admin(s.admin_port)
        assert a.json("GET", "/healthz") == (200, {"status": "ok"})
        assert a.json("GET", "/readyz") == (200, {"status": "ready"})
        assert a.json("GET", "/nope") == (404, {"error": "unknown resource"})
        assert a.json("GET", "/healthz/") == (404, {"error": "unknown resource"})
        assert a.json("GET", "/api/v1/pools/red") == (404, {"error": 'no pool "red"'})
        r = a.request("DELETE", "/healthz")
        assert r.status == 405 and r.header("allow") == "GET, HEAD"
        assert json.loads(r.body) == {"error": "method not allowed"}
        r = a.request("GET", "/api/v1/services/app/admission/x")
        assert r.status == 404
        r = a.request("POST", "/api/v1/services/app/admission")
        assert r.status == 405 and r.header("allow") == "GET, HEAD, PUT"
        r = a.request("HEAD", "/api/v1/reload")
        assert (r.status, r.header("allow"), r.body) == (405, "POST", b"")
        for method, path, body, status in BAD_REQUESTS:
            got, err = a.json(method, path, body)
            assert got == status and "error" in err, (path, got, err)
        # a name that does not resolve: refused naming the entry (once "sluice.yaml:0:0: ...")
        status, body = a.json("PUT", "/api/v1/pools/blue/backends",
                              b'{"backends": [{"address": "127.0.0.1:10"}, '
                              b'{"address": "no.such.host.invalid:80"}]}')
        assert status == 400 and body["error"] == "backends refused; nothing changed", body
        assert len(body["errors"]) == 1 and body["errors"][0].startswith(
            'pools.blue.backends[1]: cannot resolve "no.such.host.invalid": '), body
        assert [b["address"] for b in a.json("GET", "/api/v1/pools/blue")[1]["backends"]] == \
            ["127.0.0.1:9"]
        status, err = a.json("POST", "/api/v1/reload", b'{"a": 1,}')
        assert status == 400
        assert err == {"error": "bad JSON at byte 8: expected a string key in the object"}
        # all of the above on one keep-alive connection; now two pipelined in one write
        a.sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /readyz HTTP/1.1\r\nHost: a\r\n\r\n")
        assert json.loads(a.reader.read().body) == {"status": "ok"}
        assert json.loads(a.reader.read().body) == {"status": "ready"}
        a.close()
    finally:
        stop_all(s)


def test_head_is_answered_like_get_without_a_body():
    """RFC 9110 9.3.2: HEAD wherever GET is (load balancers probe with it),
    the same status and headers, Content-Length included, and no body: the
    next answer on the connection starts right after the head."""
    s = start()
    try:
        a = Admin(s.admin_port)
        for path in ("/healthz", "/readyz", "/api/v1/pools/blue", "/api/v1/pools/red", "/nope"):
            get = a.request("GET", path)
            head = a.request("HEAD", path)
            assert (head.status, head.body) == (get.status, b""), path
            assert head.header("content-type") == get.header("content-type"), path
            assert head.header("content-length") == str(len(get.body)), path
        a.sock.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /readyz HTTP/1.1\r\nHost: a\r\n\r\n")
        assert a.reader.read("HEAD").status == 200
        assert json.loads(a.reader.read().body) == {"status": "ready"}
        a.close()
    finally:
        stop_all(s)


def test_body_limits_and_bad_requests():
    s = start()
    try:
        a = Admin(s.admin_port)
        # 413 from the head alone: the 2 MiB body is never sent
        a.sock.sendall(b"PUT /api/v1/pools/blue/backends HTTP/1.1\r\nHost: a\r\n"
                       b"Content-Length: 2097152\r\n\r\n" + b"x" * 65536)
        r = a.reader.read("PUT")
        assert r.status == 413 and r.header("connection") == "close"
        assert json.loads(r.body) == {"error": "request body too large (limit 1 MiB)"}
        a.close()
        # exactly 1 MiB is accepted (and parsed: an object with a string of that size,
        # whose field reload then refuses: it takes none)
        a = Admin(s.admin_port)
        big = b'{"pad": "' + b"y" * ((1 << 20) - 11) + b'"}'
        assert a.json("POST", "/api/v1/reload", big) == (400, {"error": 'unknown field "pad"'})
        a.close()
        a = Admin(s.admin_port)
        a.sock.sendall(b"POST /api/v1/reload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        r = a.reader.read("POST")
        assert r.status == 411 and "Content-Length" in json.loads(r.body)["error"]
        a.close()
        a = Admin(s.admin_port)
        a.sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n")
        r = a.reader.read()
        assert r.status == 400 and "error" in json.loads(r.body)
        a.close()
        # a request trickled in byte by byte, body included, is read whole
        a = Admin(s.admin_port)
        req = (b"POST /api/v1/reload HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\n{\"a\": 1,}")
        for i in range(len(req)):
            a.sock.sendall(req[i:i + 1])
            time.sleep(0.001)
        r = a.reader.read("POST")
        assert r.status == 400 and json.loads(r.body)["error"].startswith("bad JSON at byte 8")
        a.close()
        # Connection: close is honoured
        a = Admin(s.admin_port)
        r = a.request("GET", "/healthz", headers="Connection: close\r\n")
        assert r.status == 200 and r.header("connection") == "close"
        a.sock.settimeout(T)
        assert a.sock.recv(100) == b""
        a.close()
    finally:
        stop_all(s)


# ---- metrics and status after real traffic ----------------------------------------------------

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? '
                    r'(-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$')


def parse_prometheus(text):
    """Check the 0.0.4 text format strictly; return {(name, labels): value}."""
    assert text.endswith("\n")
    families, samples, current = {}, {}, None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert name not in families, "family %s twice" % name
            families[name] = None
            current = name
        elif line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            assert name == current and typ in ("counter", "gauge", "histogram"), line
            families[name] = typ
        else:
            m = SAMPLE.match(line)
            assert m, "bad sample line %r" % line
            base = m.group(1)
            if families.get(current) == "histogram":
                for suffix in ("_bucket", "_sum", "_count"):
                    if base == current + suffix:
                        base = current
            assert base == current, "sample %s outside its family" % line
            assert m.group(1).startswith("sluice_")
            key = (m.group(1), m.group(2) or "")
            assert key not in samples
            samples[key] = float(m.group(4))
    assert all(families.values())
    return samples


def test_metrics_and_status_after_a_websocket_session():
    backend = Backend("blue")
    s = start(backends=[backend.addr])
    try:
        async def session():
            async with websockets.connect(s.url, compression=None) as ws:
                assert await ws.recv() == "hello blue"
                await ws.send("ping me")
                assert await ws.recv() == "ping me"
        run(session())
        a = Admin(s.admin_port)
        # The backend's connection count drops once sluice has closed its side.
        assert wait_until(lambda: a.json("GET", "/api/v1/status")[1]["pools"][0]["backends"][0]
                          ["active"] == 0), "the backend connection stayed open"
        r = a.request("GET", "/metrics")
        assert r.status == 200
        assert r.header("content-type") == "text/plain; version=0.0.4; charset=utf-8"
        m = parse_prometheus(r.body.decode())
        assert m[("sluice_ws_upgrades_total", "")] == 1
        assert m[("sluice_connections_accepted_total", "")] >= 1
        # Frames relayed count close frames both ways: text and close to the
        # backend; hello, echo and the backend's close reply to the client.
        assert m[("sluice_ws_frames_client_to_backend_total", "")] == 2
        assert m[("sluice_ws_messages_client_to_backend_total", "")] == 1
        assert m[("sluice_ws_frames_backend_to_client_total", "")] == 3
        assert m[("sluice_ws_messages_backend_to_client_total", "")] == 2
        assert m[("sluice_workers", "")] == 1
        assert m[("sluice_uptime_seconds", "")] > 0
        labels = '{pool="blue",backend="%s"}' % backend.addr
        assert m[("sluice_pool_backend_connects_total", labels)] == 1
        assert m[("sluice_pool_backend_handshakes_total", labels)] == 1
        assert m[("sluice_pool_backend_up", labels)] == 1
        assert m[("sluice_pool_backend_active_connections", labels)] == 0
        assert m[("sluice_pool_backend_connect_failures_total", labels)] == 0

        status, st = a.json("GET", "/api/v1/status")
        assert status == 200
        assert st["version"] == "0.1.0" and st["workers"] == 1 and st["draining"] is False
        assert st["uptime_seconds"] > 0
        assert set(st["connections"]) == {"clients", "sessions", "websockets"}
        assert st["services"] == [{"name": "app", "pools": ["blue", "green"], "active": "blue",
                                   "admission": False, "overridden": []}]
        pool = st["pools"][0]
        assert pool["name"] == "blue" and pool["balance"] == "least_conn"
        b = pool["backends"][0]
        assert b["address"] == backend.addr and b["up"] is True and b["active"] == 0
        assert b["connects"] == 1 and b["handshakes"] == 1 and b["connect_failures"] == 0
        assert st["counters"]["ws_upgrades_total"] == 1
        status, pools = a.json("GET", "/api/v1/pools")
        assert status == 200 and pools["pools"][0]["backends"][0]["address"] == backend.addr
        assert a.json("GET", "/api/v1/pools/blue")[1]["name"] == "blue"
        a.close()
    finally:
        stop_all(s, backend)


def test_metrics_label_values_are_escaped():
    """Service and pool names may hold any character; in /metrics a bare
    backslash, quote or newline in a label value once broke the exposition
    (Prometheus drops the whole scrape). Every family that carries a name
    (admission, WebSockets, deploys, backends) escapes it (format 0.0.4)."""
    service, pool = 'a\\p"p\nx', 'bl"ue'
    port, admin_port = free_port(), free_port()
    text = config(port, {"blue": ["127.0.0.1:9"], "green": ["127.0.0.1:9"]}, workers=1,
                  service_extra="admission: { rate: 100/s, burst: 10, slow_start: 0 }",
                  extra="admin: { address: 127.0.0.1:%d }" % admin_port)
    text = text.replace("  app:\n", '  "a\\\\p\\"p\\nx":\n').replace("  blue:\n", '  "bl\\"ue":\n')
    text = text.replace("pools: [blue, green]", 'pools: ["bl\\"ue", green]')
    text = text.replace("active: blue", 'active: "bl\\"ue"\n    drain: { rate: 1/s }')
    s = Sluice(text, port)
    wait_port("127.0.0.1", admin_port, s.proc)
    try:
        a = Admin(admin_port)
        status, st = a.json("GET", "/api/v1/status")
        assert [x["name"] for x in st["services"]] == [service]
        # a deploy, so that its families are written too
        assert a.json("POST", "/api/v1/services/a%5Cp%22p%0Ax/deploys",
                      b'{"to": "green", "ramp": "60s"}')[0] == 201
        r = a.request("GET", "/metrics")
        assert r.status == 200
        m = parse_prometheus(r.body.decode())
        svc = r'service="a\\p\"p\nx"'
        assert m[("sluice_admission_rate", '{%s,queue="service"}' % svc)] == 100
        assert ("sluice_admission_rejected_total", '{%s,queue="service",reason="queue_full"}'
                % svc) in m
        assert ("sluice_admission_wait_seconds_bucket", '{%s,queue="service",le="+Inf"}' % svc) in m
        assert m[("sluice_websockets_open", r'{%s,pool="bl\"ue"}' % svc)] == 0
        assert m[("sluice_deploy_in_progress", "{%s}" % svc)] == 1
        assert ("sluice_pool_backend_up", r'{pool="bl\"ue",backend="127.0.0.1:9"}') in m
        assert m[("sluice_build_info", '{version="0.1.0"}')] == 1
        # and the values read back as the names
        labels = re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', r.body.decode())
        unescape = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}
        values = {re.sub(r"\\.", lambda e: unescape[e.group(0)], v) for k, v in labels
                  if k in ("service", "pool")}
        assert {service, pool, "green"} <= values
        a.close()
    finally:
        stop_all(s)


def test_a_kept_alive_backend_connection_is_not_counted_active_while_idle():
    """A backend connection kept for reuse between HTTP exchanges carries no
    load: counted active, least_conn sent fewer exchanges to the backend
    that kept more idle ones, and status said a connection was active on a
    backend nobody was using."""
    backend = Backend("blue")
    s = start(backends=[backend.addr])
    try:
        a = Admin(s.admin_port)

        def backend_status():
            return a.json("GET", "/api/v1/status")[1]["pools"][0]["backends"][0]

        for path in ("/one", "/two"):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
            c.sendall(b"GET %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % path.encode())
            assert HttpReader(c).read().status == 200
            c.close()
            assert wait_until(lambda: backend_status()["active"] == 0), backend_status()
        b = backend_status()
        assert (b["connects"], b["active"]) == (1, 0), b   # one connection, idle, kept
        m = parse_prometheus(a.request("GET", "/metrics").body.decode())
        assert m[("sluice_backend_connections_reused_total", "")] == 1
        a.close()
    finally:
        stop_all(s, backend)


def test_a_drained_backend_shows_as_draining_in_status_pools_and_metrics():
    """POST .../drain left no trace an operator could see: `up` stays true
    (it is the health verdict), status and pools had no `draining`, and
    /metrics only had sluice_pool_backend_up, whose HELP said "1 when the
    backend may take new connections" while it stayed 1. Now the backend
    says `draining`, its pool counts them, a gauge of its own shows it, and
    `up`'s HELP no longer claims what it does not measure."""
    s = start(backends=["127.0.0.1:9", "127.0.0.1:10"])
    try:
        a = Admin(s.admin_port)
        drain = "/api/v1/pools/blue/backends/127.0.0.1:10/drain"

        def shown(draining):
            pool = a.json("GET", "/api/v1/pools/blue")[1]
            st = a.json("GET", "/api/v1/status")[1]
            assert st["pools"][0] == pool, (st["pools"][0], pool)
            assert [(b["address"], b["up"], b["draining"]) for b in pool["backends"]] == \
                [("127.0.0.1:9", True, False), ("127.0.0.1:10", True, draining)], pool
            assert (pool["backends_up"], pool["backends_draining"]) == (2, int(draining)), pool
            assert [b["draining"] for b in st["pools"][1]["backends"]] == [False]   # green
            text = a.request("GET", "/metrics").body.decode()
            m = parse_prometheus(text)
            for addr, want in (("127.0.0.1:9", 0), ("127.0.0.1:10", int(draining))):
                labels = '{pool="blue",backend="%s"}' % addr
                assert m[("sluice_pool_backend_draining", labels)] == want, addr
                assert m[("sluice_pool_backend_up", labels)] == 1, addr
            help_up = next(l for l in text.splitlines()
                           if l.startswith("# HELP sluice_pool_backend_up "))
            assert "may take new connections" not in help_up, help_up

        shown(False)
        status, body = a.json("POST", drain)
        assert status == 202 and body["draining"] is True, body
        shown(True)
        status, body = a.json("POST", drain, b'{"drain": false}')
        assert status == 200 and body["draining"] is False, body
        shown(False)
        a.close()
    finally:
        stop_all(s)


def test_readyz_fails_while_draining():
    backend = Backend("blue")
    s = start(backends=[backend.addr], extra="shutdown: { timeout: 20s }")
    try:
        ws = WsConn(s.port)
        assert ws.status == 101
        a = Admin(s.admin_port)
        assert a.json("GET", "/readyz")[0] == 200
        s.proc.send_signal(15)
        frames, close = ws.read_until_close()     # 1001, and we do not answer yet
        assert close.close_code == 1001
        assert a.json("GET", "/readyz") == (503, {"status": "draining"})
        assert a.json("GET", "/healthz") == (200, {"status": "ok"})
        st = a.json("GET", "/api/v1/status")[1]
        assert st["draining"] is True
        m = parse_prometheus(a.request("GET", "/metrics").body.decode())
        assert m[("sluice_draining", "")] == 1
        ws.close()
        assert s.proc.wait(timeout=T) == 0        # the admin listener does not hold the exit
        a.close()
    finally:
        s.stop()
        backend.stop()


# ---- the bearer token ----------------------------------------------------------------------------

def test_bearer_token(tmp_path):
    tok = tmp_path / "token"
    tok.write_text("s3cret-token\n")
    s = start(admin_extra=", token_file: %s" % tok)
    try:
        a = Admin(s.admin_port)
        r = a.request("GET", "/api/v1/status")
        assert r.status == 401 and r.header("www-authenticate") == 'Bearer realm="sluice"'
        assert json.loads(r.body) == {"error": "missing or wrong bearer token"}
        for wrong in ("s3cret", "s3cret-token2", "S3CRET-TOKEN", "s3cret-token\n"[:-1] + "x"):
            assert a.request("GET", "/api/v1/status", token=wrong).status == 401, wrong
        assert a.request("GET", "/metrics", headers="Authorization: Basic czNjcmV0\r\n").status == 401
        # unknown paths and wrong methods do not tell an anonymous client anything
        assert a.request("GET", "/nope").status == 401
        assert a.request("DELETE", "/api/v1/status").status == 401
        assert a.json("GET", "/api/v1/status", token="s3cret-token")[0] == 200
        assert a.request("GET", "/metrics", token="s3cret-token").status == 200
        assert a.json("GET", "/nope", token="s3cret-token")[0] == 404
        # a path longer than any route's once got 404 before the token was checked
        long = "/api/v1/pools/" + "a" * 2100
        assert a.request("GET", long).status == 401
        assert a.json("GET", long, token="s3cret-token") == (404, {"error": "unknown resource"})
        # HEAD asks for the token where GET does, and not on the probes
        r = a.request("HEAD", "/api/v1/status")
        assert (r.status, r.header("www-authenticate"), r.body) == (401, 'Bearer realm="sluice"', b"")
        assert a.request("HEAD", "/api/v1/status", token="s3cret-token").status == 200
        assert a.request("HEAD", "/healthz").status == 200
        # probes stay open for load balancers
        assert a.json("GET", "/healthz") == (200, {"status": "ok"})
        assert a.json("GET", "/readyz")[0] == 200
        a.close()
        rc, out, err = ctl("--token-file", str(tok), "status", admin_port=s.admin_port)
        assert rc == 0 and json.loads(out)["version"] == "0.1.0"
        rc, out, err = ctl("status", admin_port=s.admin_port)
        assert rc == 1 and "401" in err and "bearer token" in err
    finally:
        stop_all(s)


def admin_config(tmp_path, admin):
    """A config file whose last line is the admin mapping given; its path and that line's number."""
    text = config(free_port(), {"blue": ["127.0.0.1:9"]}, extra=admin)
    path = tmp_path / "sluice.yaml"
    path.write_text(text)
    return path, text.count("\n")


def test_refuses_to_start_exposed_without_token(tmp_path):
    """A start refuses what --check refuses (test_cli has --check), with the
    same line: exit 2 and the key's position, before anything listens."""
    admin_port = free_port()
    empty = tmp_path / "empty"
    empty.write_text("\n")
    exposed = "0.0.0.0:%d" % admin_port
    for admin, value, msg in [
            ("admin: { address: %s }" % exposed, exposed,
             "admin.address: %s is not a loopback address: refusing to expose the admin API "
             "without admin.token_file (a bearer token)" % exposed),
            ("admin: { address: %s, token_file: %s }" % (exposed, tmp_path / "missing"),
             str(tmp_path / "missing"),
             "admin.token_file: cannot read %s: No such file or directory" % (tmp_path / "missing")),
            ("admin: { address: %s, token_file: %s }" % (exposed, empty), str(empty),
             "admin.token_file: %s: the file is empty (expected a token of 1 to 4096 bytes)" % empty)]:
        path, line = admin_config(tmp_path, admin)
        col = admin.index(value) + 1          # errors point at the value
        p = subprocess.run([SLUICE, "-c", str(path)], capture_output=True, text=True, timeout=T)
        assert p.returncode == 2, p.stderr
        assert "%s:%d:%d: %s\n" % (path, line, col, msg) in p.stderr, p.stderr


def test_tokens_of_up_to_4096_bytes_work_from_server_to_ctl(tmp_path):
    """1 to 4096 bytes and any line ends after them: the server once refused a
    4096-byte token written with a newline, and `sluice ctl` sent only its
    first 4095 bytes (401). Longer is refused by both, saying so."""
    token = "A" * 4095 + "z"
    tok = tmp_path / "token"
    tok.write_text(token + "\r\n\n")
    s = start(admin_extra=", token_file: %s" % tok)
    try:
        a = Admin(s.admin_port)
        assert a.request("GET", "/api/v1/status", token=token).status == 200
        assert a.request("GET", "/api/v1/status", token=token[:-1]).status == 401
        a.close()
        rc, out, err = ctl("--token-file", str(tok), "status", admin_port=s.admin_port)
        assert rc == 0 and json.loads(out)["version"] == "0.1.0", err
        long = tmp_path / "long"
        long.write_text(token + "x\n")
        rc, out, err = ctl("--token-file", str(long), "status", admin_port=s.admin_port)
        assert (rc, out) == (1, "")
        assert err == ("sluice ctl: --token-file: %s: the token is longer than 4096 bytes "
                       "(expected 1 to 4096 bytes and a final line end)\n" % long)
    finally:
        stop_all(s)
    path, line = admin_config(tmp_path, "admin: { address: 127.0.0.1:%d, token_file: %s }"
                              % (free_port(), long))
    p = subprocess.run([SLUICE, "-c", str(path)], capture_output=True, text=True, timeout=T)
    assert p.returncode == 2
    assert ": admin.token_file: %s: the token is longer than 4096 bytes" % long in p.stderr


def test_a_change_the_state_file_cannot_keep_is_answered_500(tmp_path):
    """The state file's directory is checked at start, but it can go away
    later (or the disk fill up). A change the API made and could not keep
    once answered 200 and was gone after a restart; now it stays live and the
    answer says it was not saved, and why."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    state = state_dir / "state.json"
    s = start(admin_extra=", state_file: %s" % state,
              admission="admission: { rate: 100/s, burst: 10 }")
    try:
        a = Admin(s.admin_port)
        status, body = a.json("PUT", "/api/v1/services/app/admission", b'{"rate": 50}')
        assert status == 200 and body["limits"]["rate"] == 50
        assert json.loads(state.read_text())["services"]["app"]["admission"]["rate"] == 50
        state.unlink()
        state_dir.rmdir()
        lost = ("applied, but not saved to the state file %s: No such file or directory (the "
                "change is lost at the next restart)" % state)
        assert a.json("PUT", "/api/v1/services/app/admission", b'{"rate": 20}') == \
            (500, {"error": lost})
        status, body = a.json("GET", "/api/v1/services/app/admission")
        assert status == 200 and body["limits"]["rate"] == 20           # live all the same
        assert a.json("PUT", "/api/v1/pools/green/backends",
                      b'{"backends": [{"address": "127.0.0.1:10"}]}') == (500, {"error": lost})
        status, pool = a.json("GET", "/api/v1/pools/green")
        assert [b["address"] for b in pool["backends"]] == ["127.0.0.1:10"]
        a.close()
    finally:
        stop_all(s)


# ---- sluice ctl ----------------------------------------------------------------------------------

def test_ctl():
    s = start()
    try:
        rc, out, err = ctl("status", admin_port=s.admin_port)
        assert rc == 0, err
        st = json.loads(out)
        assert st["version"] == "0.1.0" and st["pools"][0]["name"] == "blue"
        assert out.startswith('{\n  "version": "0.1.0",\n')    # pretty-printed
        rc, out, err = ctl("pools", admin_port=s.admin_port)
        assert rc == 0 and json.loads(out)["pools"][0]["backends"][0]["address"] == "127.0.0.1:9"
        rc, out, err = ctl("metrics", admin_port=s.admin_port)
        assert rc == 0 and "# TYPE sluice_ws_upgrades_total counter" in out
        rc, out, err = ctl("deploy", "start", "app", "--from", "blue", "--to", "green",
                           "--ramp", "30s", admin_port=s.admin_port)
        assert rc == 0, err
        d = json.loads(out)
        assert (d["from"], d["to"], d["phase"], d["in_progress"]) == ("blue", "green", "ramp", True)
        rc, out, err = ctl("deploy", "start", "app", "--from", "blue", "--to", "green",
                           admin_port=s.admin_port)
        assert rc == 1 and "409" in err
        rc, out, err = ctl("deploy", "pause", "app", admin_port=s.admin_port)
        assert rc == 0 and json.loads(out)["paused"] is True
        rc, out, err = ctl("deploy", "resume", "app", admin_port=s.admin_port)
        assert rc == 0 and json.loads(out)["paused"] is False
        rc, out, err = ctl("deploy", "status", "app", admin_port=s.admin_port)
        assert rc == 0 and 0 < json.loads(out)["weights"]["green"] < 1
        rc, out, err = ctl("deploy", "abort", "app", admin_port=s.admin_port)
        assert rc == 0 and json.loads(out)["phase"] == "aborted"
        assert ctl("deploy", "pause", "app", admin_port=s.admin_port)[0] == 1
        # admission is off in this config: setting it is refused, not ignored
        rc, out, err = ctl("admission", "set", "app", "rate=300/s", "burst=50",
                           admin_port=s.admin_port)
        assert rc == 1 and "409" in err and "admission is off" in err
        # the environment names the admin address too
        env = {"SLUICE_ADMIN": "127.0.0.1:%d" % s.admin_port, "PATH": "/usr/bin:/bin"}
        assert ctl("status", env=env)[0] == 0
        # usage errors: 2
        for bad in (["frobnicate"], [], ["deploy", "start", "app", "--from", "blue"],
                    ["admission", "set", "app", "rate"], ["status", "extra"]):
            assert ctl(*bad, admin_port=s.admin_port)[0] == 2, bad
        assert ctl("--bogus", "status")[0] == 2
    finally:
        stop_all(s)
    rc, out, err = ctl("status", admin_port=s.admin_port)      # nobody listening
    assert rc == 1 and "cannot connect" in err
