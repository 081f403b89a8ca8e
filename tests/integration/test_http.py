"""The plain HTTP path of the proxy core, against the real binary.

Two backends: the C backend simulator (X-Body-Bytes, HEAD, 100-continue,
--http-delay) and servers/http_echo.py, which answers with JSON describing
the request exactly as it arrived (headers in order, the TCP peer that carried
it, its index on that connection), so header rewriting and backend connection
reuse are checked from the backend's side. Clients are raw sockets with
harness.HttpReader, so keep-alive, pipelining and framing are under our control.
"""
import json
import os
import socket
import struct
import tempfile
import time
import urllib.request

import pytest

import harness as H


class Gw:
    def __init__(self, backend, extra="", listener_extra="", addr=None, service_extra="",
                 edit=lambda text: text):
        self.backend = backend
        self.port = H.free_port()
        addr = addr or backend.addr
        self.sluice = H.Sluice(edit(H.config(self.port, {"blue": [addr]}, extra=extra,
                                             listener_extra=listener_extra,
                                             service_extra=service_extra)), port=self.port)

    def conn(self, source=None):
        s = socket.socket()
        if source:
            s.bind((source, 0))
        s.settimeout(H.T)
        s.connect(("127.0.0.1", self.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s, H.HttpReader(s)

    def one(self, data, method="GET", source=None):
        s, r = self.conn(source)
        try:
            s.sendall(data)
            return r.read(method)
        finally:
            s.close()

    def stop(self):
        alive = self.sluice.alive()
        rc = self.sluice.stop()
        if self.backend is not None:
            self.backend.stop()
        assert alive, "sluice died:\n" + self.sluice.output()[-3000:]
        assert rc == 0, self.sluice.output()[-3000:]


@pytest.fixture(scope="module")
def cgw():
    g = Gw(H.Backend("blue"))
    yield g
    g.stop()


@pytest.fixture(scope="module")
def egw():
    g = Gw(H.PyServer("http_echo.py"))
    yield g
    g.stop()


def req(method="GET", target="/", headers=(), body=b"", host="test.local"):
    lines = ["%s %s HTTP/1.1" % (method, target), "Host: %s" % host] + list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def echoed(r):
    assert r.status == 200, r
    return json.loads(r.body)


def hdrs(info, name):
    return [v for k, v in info["headers"] if k.lower() == name.lower()]


def chunked(body, size):
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += b"%x\r\n%s\r\n" % (len(part), part)
    return out + b"0\r\n\r\n"


# ---- requests and bodies ----

def test_get_reaches_backend(cgw):
    r = cgw.one(req(target="/some/path?q=1&r=2"))
    assert r.status == 200
    assert r.body == b"hello blue GET /some/path?q=1&r=2"
    assert r.header("X-Backend") == "blue"


def test_post_with_content_length(cgw):
    body = os.urandom(1000)
    r = cgw.one(req("POST", "/up", ["Content-Length: 1000"], body))
    assert r.status == 200 and r.header("X-Body-Bytes") == "1000"
    assert r.body == b"hello blue POST /up"


def test_post_chunked(cgw):
    body = chunked(b"hello world, in pieces" * 50, 7)
    r = cgw.one(req("POST", "/up", ["Transfer-Encoding: chunked"], body))
    assert r.status == 200
    assert r.header("X-Body-Bytes") == str(len(body))   # the framing as sent, untouched


def test_post_chunked_decoded_by_backend_is_exact(egw):
    data = os.urandom(100000)
    s, rd = egw.conn()
    try:
        s.sendall(req("POST", "/echo-body", ["Transfer-Encoding: chunked"],
                      chunked(data, 4093)))
        r = rd.read()
        assert r.status == 200 and r.body == data
    finally:
        s.close()


def test_8mib_body_both_ways(egw, cgw):
    data = os.urandom(8 << 20)
    r = egw.one(req("POST", "/echo-body", ["Content-Length: %d" % len(data)], data))
    assert r.status == 200
    assert len(r.body) == len(data) and r.body == data
    r = egw.one(req(target="/big?n=%d" % (8 << 20)))
    assert r.status == 200
    assert r.body == (bytes(range(256)) * 32768)
    r = cgw.one(req("POST", "/up", ["Transfer-Encoding: chunked"], chunked(data, 1 << 20)))
    assert r.status == 200
    assert r.header("X-Body-Bytes") == str(len(chunked(data, 1 << 20)))


# ---- connections ----

def test_keep_alive_several_requests_on_one_connection(cgw):
    s, rd = cgw.conn()
    try:
        for i in range(5):
            s.sendall(req(target="/n%d" % i))
            r = rd.read()
            assert r.status == 200 and r.body == b"hello blue GET /n%d" % i
            assert (r.header("Connection") or "").lower() != "close"
        s.sendall(req("POST", "/last", ["Content-Length: 3"], b"abc"))
        r = rd.read()
        assert r.header("X-Body-Bytes") == "3"
    finally:
        s.close()


def test_backend_connection_reused(egw):
    s, rd = egw.conn()
    try:
        s.sendall(req(target="/one"))
        a = echoed(rd.read())
        s.sendall(req(target="/two"))
        b = echoed(rd.read())
    finally:
        s.close()
    assert a["peer"] == b["peer"], (a["peer"], b["peer"])
    assert b["seq"] == a["seq"] + 1
    # And by the next client connection too: a kept-alive backend connection
    # outlives the client that opened it.
    time.sleep(0.1)
    c = echoed(egw.one(req(target="/three")))
    assert c["peer"] == a["peer"] and c["seq"] == a["seq"] + 2


def test_pipelined_requests_answered_in_order(egw):
    s, rd = egw.conn()
    try:
        s.sendall(req(target="/a") + req("POST", "/b", ["Content-Length: 4"], b"body")
                  + req(target="/c") + req("HEAD", "/d") + req(target="/e"))
        got = [rd.read(m) for m in ("GET", "POST", "GET", "HEAD", "GET")]
        assert [r.status for r in got] == [200] * 5
        targets = [json.loads(r.body)["target"] for i, r in enumerate(got) if i != 3]
        assert targets == ["/a", "/b", "/c", "/e"]
        assert json.loads(got[1].body)["body_bytes"] == 4
        assert got[3].body == b""
    finally:
        s.close()


# ---- header rewriting ----

def test_hop_by_hop_dropped_and_forwarding_headers_added(egw):
    info = echoed(egw.one(req(target="/h", headers=[
        "Connection: keep-alive, X-Private-Hop",
        "Keep-Alive: timeout=5",
        "TE: trailers",
        "Trailer: X-Checksum",
        "Proxy-Connection: keep-alive",
        "X-Private-Hop: secret",
        "Upgrade: h2c",
        "X-End-To-End: kept",
    ])))
    names = [k.lower() for k, _ in info["headers"]]
    for gone in ("keep-alive", "te", "proxy-connection", "x-private-hop", "upgrade"):
        assert gone not in names, (gone, info["headers"])
    # Trailer is end-to-end (RFC 9110 6.6.2): the body's trailer section goes on as it came.
    assert hdrs(info, "Trailer") == ["X-Checksum"]
    # Connection may be set by the gateway for its own hop, but carries nothing of the client's.
    for v in hdrs(info, "Connection"):
        assert "x-private-hop" not in v.lower() and "upgrade" not in v.lower(), v
    assert hdrs(info, "X-End-To-End") == ["kept"]
    assert hdrs(info, "Host") == ["test.local"]
    assert hdrs(info, "X-Forwarded-For") == ["127.0.0.1"]
    assert hdrs(info, "X-Forwarded-Proto") == ["http"]
    fwd = hdrs(info, "Forwarded")
    assert len(fwd) == 1 and "for=127.0.0.1" in fwd[0] and "proto=http" in fwd[0], fwd


@pytest.fixture(scope="module")
def tgw():
    g = Gw(H.PyServer("http_echo.py"), extra="trusted_proxies: [127.0.0.2/32]")
    yield g
    g.stop()


def test_trusted_proxy_xff_is_appended_to(tgw):
    info = echoed(tgw.one(req(headers=["X-Forwarded-For: 203.0.113.7"]), source="127.0.0.2"))
    assert hdrs(info, "X-Forwarded-For") == ["203.0.113.7, 127.0.0.2"]


def test_untrusted_client_xff_is_replaced(tgw):
    info = echoed(tgw.one(req(headers=["X-Forwarded-For: 203.0.113.7",
                                       "X-Forwarded-Proto: https"]), source="127.0.0.3"))
    assert hdrs(info, "X-Forwarded-For") == ["127.0.0.3"]
    assert hdrs(info, "X-Forwarded-Proto") == ["http"]
    fwd = hdrs(info, "Forwarded")
    assert len(fwd) == 1 and "203.0.113.7" not in fwd[0], fwd


def test_a_trusted_proxys_x_forwarded_proto_reaches_the_backend(tgw):
    """A load balancer that terminated TLS says https; the backend builds
    its links from that. It was replaced with the scheme of the balancer's
    hop to sluice (http), and a backend that redirects plain requests to
    https sent such clients round for ever."""
    info = echoed(tgw.one(req(headers=["X-Forwarded-For: 203.0.113.7",
                                       "X-Forwarded-Proto: https"]), source="127.0.0.2"))
    assert hdrs(info, "X-Forwarded-Proto") == ["https"]
    fwd = hdrs(info, "Forwarded")
    assert len(fwd) == 1 and fwd[0].endswith("for=127.0.0.2;proto=http"), fwd


# ---- PROXY protocol listeners ----

def proxy_v2(src, dst, sport, dport, version_cmd=0x21):
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    addrs = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return sig + bytes([version_cmd, 0x11]) + struct.pack("!H", len(addrs)) + addrs


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_proxy_protocol_source_reaches_backend(version):
    g = Gw(H.PyServer("http_echo.py"), listener_extra="proxy_protocol: %s" % version)
    try:
        if version == "v1":
            pre = b"PROXY TCP4 198.51.100.22 203.0.113.9 35646 80\r\n"
            src = "198.51.100.22"
        else:
            pre = proxy_v2("198.51.100.23", "203.0.113.9", 35647, 80)
            src = "198.51.100.23"
        info = echoed(g.one(pre + req(target="/pp")))
        assert info["target"] == "/pp"
        assert hdrs(info, "X-Forwarded-For") == [src]
        # A bad PROXY header: the connection is closed, no answer, nothing forwarded.
        bad = b"PROXY TCP4 999.1.1.1 203.0.113.9 1 80\r\n" if version == "v1" \
            else proxy_v2("198.51.100.23", "203.0.113.9", 1, 80, version_cmd=0x31)
        for data in (bad + req(), req()):
            s = H.raw_connect(g.port)
            try:
                s.sendall(data)
                assert H.recv_all(s, timeout=3) == b""
            finally:
                s.close()
    finally:
        g.stop()


# ---- errors ----

@pytest.mark.parametrize("how", ["drained", "weight 0"])
def test_a_pool_whose_backends_take_no_connections_is_down_503(how):
    """A pool whose only backend is drained through the API, or has weight
    0, has no backend to pick: it is down (503 with Retry-After, as for a
    backend down by its checks), not a backend that answered badly (502,
    which it was: the test read only the health verdict). Admission is off
    here: with it on, upgrades wait in the queue while the pool is down."""
    admin = H.free_port()
    backend = H.Backend("blue")

    def weight0(text):
        line = '      - address: "%s"\n' % backend.addr
        assert line in text
        return text.replace(line, line + "        weight: 0\n")

    g = Gw(backend, extra="admin: { address: 127.0.0.1:%d }" % admin,
           service_extra="admission: off", edit=weight0 if how == "weight 0" else lambda t: t)
    try:
        if how == "drained":
            url = "http://127.0.0.1:%d/api/v1/pools/blue/backends/%s/drain" % (admin, backend.addr)
            with urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"),
                                        timeout=5) as r:
                assert r.status == 202
        r = g.one(req())
        assert r.status == 503 and r.header("retry-after"), r.raw
        s = H.raw_connect(g.port)
        s.sendall(H.upgrade_request())
        head = H.recv_all(s, timeout=5)
        assert H.status_of(head) == 503 and b"Retry-After: " in head, head
        s.close()
    finally:
        g.stop()


def test_backend_down_gives_502():
    g = Gw(None, addr="127.0.0.1:%d" % H.free_port())    # nothing listens there
    try:
        t0 = time.monotonic()
        r = g.one(req())
        assert r.status == 502, r
        assert time.monotonic() - t0 < 3
        s = H.raw_connect(g.port)     # and a WebSocket upgrade too
        s.sendall(H.upgrade_request())
        assert H.status_of(H.recv_all(s, timeout=5)) == 502
        s.close()
    finally:
        g.stop()


def test_slow_backend_gives_504():
    g = Gw(H.Backend("blue", "--http-delay", "3000"), extra="timeouts: {backend_response: 1s}")
    try:
        t0 = time.monotonic()
        r = g.one(req())
        took = time.monotonic() - t0
        assert r.status == 504, r
        assert 0.9 <= took <= 2.0, took
    finally:
        g.stop()


# ---- bodiless responses and 100-continue ----

def test_head_response_has_no_body(cgw):
    s, rd = cgw.conn()
    try:
        s.sendall(req("GET", "/x"))
        get = rd.read()
        s.sendall(req("HEAD", "/x"))
        head = rd.read("HEAD")
        assert head.status == 200
        assert get.header("Content-Length") == str(len(b"hello blue GET /x"))
        # The length a GET would have had (the backend names the method in its body).
        assert head.header("Content-Length") == str(len(b"hello blue HEAD /x"))
        assert head.body == b""
        # Nothing but the next response follows: the connection is in sync.
        s.sendall(req("GET", "/after"))
        r = rd.read()
        assert r.body == b"hello blue GET /after"
        assert rd.buf == b""
    finally:
        s.close()


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_status_keeps_connection_in_sync(egw, status):
    s, rd = egw.conn()
    try:
        s.sendall(req(headers=["X-Echo-Status: %d" % status]))
        r = rd.read()
        assert r.status == status
        assert r.body == b""
        s.sendall(req(target="/next"))
        r = rd.read()
        assert echoed(r)["target"] == "/next"
        assert rd.buf == b""
    finally:
        s.close()


def test_100_continue(cgw):
    s, rd = cgw.conn()
    try:
        s.sendall(req("POST", "/c", ["Content-Length: 5", "Expect: 100-continue"]))
        interim = rd.read(timeout=5)
        assert interim.status == 100
        s.sendall(b"hello")
        r = rd.read()
        assert r.status == 200 and r.header("X-Body-Bytes") == "5"
        assert r.body == b"hello blue POST /c"
    finally:
        s.close()


# ---- what a request must be, and what it is routed by (RFC 9112 2.3, 3.2, 6.1) ----
#
# Two services: green.test goes to the green echo backend, any other host to
# blue. Both log every connection they accept, so "nothing reached a backend"
# is "neither log grew".

class RoutedGw:
    def __init__(self):
        self.logs, self.backends = {}, {}
        for name in ("blue", "green"):
            fd, self.logs[name] = tempfile.mkstemp(prefix="http-echo-%s-" % name, suffix=".log")
            os.close(fd)
            self.backends[name] = H.PyServer("http_echo.py", "--log", self.logs[name])
        self.port = H.free_port()
        lines = ["listeners:", '  - address: "127.0.0.1:%d"' % self.port, "workers: 1", "pools:"]
        for name in ("blue", "green"):
            lines += ["  %s:" % name, "    backends:",
                      '      - address: "%s"' % self.backends[name].addr]
        lines += ["services:",
                  "  app:", '    routes: [ { host: "*", path_prefix: / } ]',
                  "    pools: [blue]", "    active: blue",
                  "  greensvc:", '    routes: [ { host: "green.test", path_prefix: / },',
                  '              { host: "*", path_prefix: /admin } ]',
                  "    pools: [green]", "    active: green"]
        self.sluice = H.Sluice("\n".join(lines) + "\n", port=self.port)
        self.mark()

    def log_lines(self, name):
        with open(self.logs[name]) as f:
            return f.read().splitlines()

    def mark(self):
        self.marks = {name: len(self.log_lines(name)) for name in self.logs}

    def seen(self):
        """The log lines of each backend since the last mark()."""
        time.sleep(0.2)
        return {name: self.log_lines(name)[self.marks[name]:] for name in self.logs}

    def stop(self):
        alive = self.sluice.alive()
        H.stop_all(self.sluice, *self.backends.values())
        assert alive, "sluice died:\n" + self.sluice.output()[-3000:]


@pytest.fixture(scope="module")
def rgw():
    g = RoutedGw()
    yield g
    g.stop()


def refused(g, data, status):
    """Send `data` on a new connection; assert that the one answer is the
    gateway's own `status`, that the gateway closed the connection after it,
    and that neither backend saw anything, not even a connection."""
    g.mark()
    s = H.raw_connect(g.port)
    try:
        s.sendall(data)
        r = H.HttpReader(s, 5).read()
        s.settimeout(5)
        try:
            rest = s.recv(1 << 16)
        except ConnectionResetError:
            rest = b""
        assert rest == b"", "after the answer: %r" % rest[:200]       # closed, nothing more
    finally:
        s.close()
    phrase = {400: b"Bad Request", 505: b"HTTP Version Not Supported"}[status]
    assert r.raw.startswith(b"HTTP/1.1 %d %s\r\n" % (status, phrase)), r.raw
    assert r.header("Connection") == "close", r
    assert r.body == b"%d %s\n" % (status, phrase), r
    assert g.seen() == {"blue": [], "green": []}


def routed(g, data):
    """Send `data`; return the backend that answered and the request as it saw it."""
    g.mark()
    s = H.raw_connect(g.port)
    try:
        s.sendall(data)
        info = echoed(H.HttpReader(s, 5).read())
    finally:
        s.close()
    seen = g.seen()
    hit = [name for name in seen if any(l.startswith("req ") for l in seen[name])]
    assert len(hit) == 1, seen
    return hit[0], info


def test_http10_request_with_transfer_encoding_is_refused_and_closed(rgw):
    """RFC 9112 6.1: faulty framing, and the connection closes after the
    answer. Forwarded, an HTTP/1.0 backend would ignore Transfer-Encoding and
    read the chunk below as a request of its own."""
    refused(rgw, b"POST /te10 HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n"
                 b"20\r\nGET /smuggled HTTP/1.0\r\nX: y\r\n\r\n\r\n0\r\n\r\n", 400)


BAD_HOSTS = [
    ("no Host in HTTP/1.1", b"GET /nohost HTTP/1.1\r\n\r\n"),
    ("Host with a space", b"GET /hs HTTP/1.1\r\nHost: a b\r\n\r\n"),
    ("Host with userinfo", b"GET /hat HTTP/1.1\r\nHost: evil@green.test\r\n\r\n"),
    ("Host with a path", b"GET /hsl HTTP/1.1\r\nHost: green.test/x\r\n\r\n"),
    ("empty Host", b"GET /emptyhost HTTP/1.1\r\nHost:\r\n\r\n"),
    ("Host with a bad port", b"GET / HTTP/1.1\r\nHost: green.test:http\r\n\r\n"),
    ("Host with a port beyond 65535", b"GET / HTTP/1.1\r\nHost: green.test:65616\r\n\r\n"),
    ("Host with a bare IPv6 address", b"GET / HTTP/1.1\r\nHost: ::1\r\n\r\n"),
    ("two Hosts", b"GET / HTTP/1.1\r\nHost: green.test\r\nHost: other.test\r\n\r\n"),
    ("bad Host in HTTP/1.0", b"GET / HTTP/1.0\r\nHost: a b\r\n\r\n"),
    ("no Host, absolute-form", b"GET http://green.test/nh HTTP/1.1\r\n\r\n"),
    ("bad Host, absolute-form", b"GET http://green.test/ HTTP/1.1\r\nHost: a b\r\n\r\n"),
    ("userinfo in the target", b"GET http://evil@green.test/ HTTP/1.1\r\nHost: green.test\r\n\r\n"),
    ("empty authority in the target", b"GET http:///x HTTP/1.1\r\nHost: green.test\r\n\r\n"),
    ("a scheme other than http(s)", b"GET ftp://green.test/x HTTP/1.1\r\nHost: green.test\r\n\r\n"),
    ("WebSocket upgrade without Host", H.upgrade_request().replace(b"Host: test.local\r\n", b"")),
    ("WebSocket upgrade with a bad Host", H.upgrade_request(host="a b")),
]


@pytest.mark.parametrize("name,data", BAD_HOSTS, ids=[c[0] for c in BAD_HOSTS])
def test_missing_or_invalid_host_gets_400_and_never_reaches_a_backend(rgw, name, data):
    """RFC 9112 3.2: 400 for an HTTP/1.1 request without Host and for any
    request with more than one or an invalid one (uri-host [":" port]), also
    when an absolute-form target makes Host unused and for upgrades."""
    refused(rgw, data, 400)


def test_valid_hosts_are_routed(rgw):
    for host, want in [("green.test", "green"), ("GREEN.TEST:8080", "green"), ("green.test:", "green"),
                       ("[::1]:8080", "blue"), ("127.0.0.1", "blue"), ("a%41b.test", "blue")]:
        hit, info = routed(rgw, req(target="/h", host=host))
        assert (hit, hdrs(info, "Host")) == (want, [host]), host
    hit, info = routed(rgw, b"GET /old HTTP/1.0\r\n\r\n")       # HTTP/1.0 needs no Host
    assert (hit, info["target"], hdrs(info, "Host")) == ("blue", "/old", [])


@pytest.mark.parametrize("target", ["/admin/x", "/%61dmin/x", "/x/../admin/x", "//admin/x",
                                    "/./admin/x?q=/..", "/%2e%2E/admin"])
def test_other_spellings_of_a_path_reach_its_route(rgw, target):
    """A route for "* /admin" beside the catch-all "* /": "/%61dmin",
    "/x/../admin" and "//admin" are "/admin" to a backend (RFC 3986 2.3 and
    5.2.4), and went to the catch-all, walking around the route (and any
    admission or backends it sets). Routes match the path normalized; the
    backend gets the target as it came."""
    hit, info = routed(rgw, req(target=target))
    assert (hit, info["target"]) == ("green", target)


@pytest.mark.parametrize("target", [b"/a%zz", b"/admin%", b"/%5%61dmin", b"/x%4?q"])
def test_a_stray_percent_in_the_path_is_a_400(rgw, target):
    """RFC 3986 2.1: "%" starts "%" HEXDIG HEXDIG. Routes match the path
    decoded, and a stray "%" is read one way by the gateway and another by
    a lenient backend ("%5%61dmin" decodes to "%5admin", then "Zdmin"):
    such a path is refused, as nginx refuses it. A query's "%" is the
    application's ("?q=100%" passes)."""
    refused(rgw, b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % target, 400)
    hit, info = routed(rgw, req(target="/q?q=100%"))
    assert (hit, info["target"]) == ("blue", "/q?q=100%")


def test_an_encoded_slash_is_data_not_a_segment(rgw):
    """"%2F" is not "/" (a reserved character, RFC 3986 2.2): "/admin%2Fx"
    is the segment "admin%2Fx", under no "/admin" route."""
    hit, _ = routed(rgw, req(target="/x/..%2Fadmin"))
    assert hit == "blue"


VERSIONS = [
    ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: green.test\r\n\r\n", 505),
    ("HTTP/3.0", b"GET / HTTP/3.0\r\nHost: green.test\r\n\r\n", 505),
    ("HTTP/0.9 spelled out", b"GET / HTTP/0.9\r\nHost: green.test\r\n\r\n", 505),
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    ("HTTP/0.9 request line", b"GET /\r\n\r\n", 400),
    ("HTTP/1.2", b"GET / HTTP/1.2\r\nHost: green.test\r\n\r\n", 400),
    ("RTSP/1.0", b"GET / RTSP/1.0\r\nHost: green.test\r\n\r\n", 400),
    ("lowercase http", b"GET / http/1.1\r\nHost: green.test\r\n\r\n", 400),
]


@pytest.mark.parametrize("name,data,status", VERSIONS, ids=[c[0] for c in VERSIONS])
def test_versions_other_than_1_0_and_1_1_are_refused(rgw, name, data, status):
    """RFC 9110 15.6.6: 505 for a major version other than 1 (sent as
    "HTTP/" DIGIT "." DIGIT); 400 for anything else that is not HTTP/1.0 or
    HTTP/1.1, HTTP/0.9's request line without a version included."""
    refused(rgw, data, status)


def test_absolute_form_is_forwarded_in_origin_form_with_its_authority_as_host(rgw):
    """RFC 9112 3.2.1-3.2.2: the backend gets the path and query, and the
    target's authority as the only Host."""
    hit, info = routed(rgw, b"GET http://green.test/abs?x=1 HTTP/1.1\r\nHost: green.test\r\n"
                            b"X-Order: kept\r\n\r\n")
    assert hit == "green"
    assert info["target"] == "/abs?x=1"
    assert [k for k, _ in info["headers"]][:2] == ["Host", "X-Order"]
    assert hdrs(info, "Host") == ["green.test"]


@pytest.mark.parametrize("target,host,want,path", [
    ("http://green.test/abs", "other.test", "green", "/abs"),
    ("http://other.test/abs2", "green.test", "blue", "/abs2"),
    ("HTTP://GREEN.TEST:80/x?y", "other.test", "green", "/x?y"),
], ids=["authority green, Host other", "authority other, Host green", "scheme and host in capitals"])
def test_absolute_form_routes_by_its_authority_not_host(rgw, target, host, want, path):
    """RFC 9112 3.2.2: a server MUST ignore Host and use the target's authority."""
    hit, info = routed(rgw, b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target.encode(), host.encode()))
    assert (hit, info["target"], hdrs(info, "Host")) == (want, path, [target.split("/")[2]])


def test_absolute_form_with_an_empty_path_is_the_root(rgw):
    """RFC 9112 3.2.1 (and 3.3): an empty path is "/"."""
    hit, info = routed(rgw, b"GET http://green.test HTTP/1.1\r\nHost: green.test\r\n\r\n")
    assert (hit, info["target"], hdrs(info, "Host")) == ("green", "/", ["green.test"])
    hit, info = routed(rgw, b"GET http://green.test?q=1 HTTP/1.1\r\nHost: green.test\r\n\r\n")
    assert (hit, info["target"]) == ("green", "/?q=1")


def test_admin_411_has_its_reason_phrase():
    """sl_http_status_text names every status sluice sends; the admin API's
    411 for a chunked body went out as "411 Unknown"."""
    port, admin_port = H.free_port(), H.free_port()
    g = H.Sluice(H.config(port, {"blue": ["127.0.0.1:9"]},
                          extra="admin: { address: 127.0.0.1:%d }" % admin_port), port=port)
    try:
        H.wait_port("127.0.0.1", admin_port, g.proc)
        s = H.raw_connect(admin_port)
        try:
            s.sendall(b"POST /api/v1/reload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"0\r\n\r\n")
            r = H.HttpReader(s, 5).read("POST")
        finally:
            s.close()
        assert r.raw.startswith(b"HTTP/1.1 411 Length Required\r\n"), r.raw
    finally:
        H.stop_all(g)
