"""TLS termination (issue 7), against the real sluice binary and the C backend.

Certificates are made in each test module with the openssl command into
tmp_path: an ECDSA P-256 certificate for a.test (the default), an RSA one for
b.test (SNI), both self-signed, so each doubles as its own CA for the client.
WebSockets go through python3-websockets over Python's ssl; resumption and
old protocol versions are checked with `openssl s_client`, whose own words
("Reused", the negotiated protocol) are what the assertions read.
"""
import asyncio
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest
import websockets

import harness as H
from harness import wait_until

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def make_cert(d, name, kind):
    """Self-signed certificate and key for `name` in directory d."""
    cert, key = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    if kind == "ec":
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    else:
        newkey = ["-newkey", "rsa:2048"]
    subprocess.run([OPENSSL, "req", "-x509", *newkey, "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=" + name,
                    "-addext", "subjectAltName=DNS:" + name],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def tls_config(port, backend, certs, extra_tls="", listener_more=""):
    lines = ([listener_more] if listener_more else []) + ["tls:", "  certificates:"]
    lines += ["    - { cert: %s, key: %s }" % c for c in certs]
    lines += ["  handshake_timeout: 1s", "  max_handshakes: 2"]
    if extra_tls:
        lines += ["  " + l for l in extra_tls.strip("\n").split("\n")]
    return H.config(port, {"blue": [backend.addr]}, listener_extra="\n".join(lines))


def client_ctx(cafile, **kw):
    ctx = ssl.create_default_context(cafile=cafile)
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def peer_cn(port, server_name, cafile):
    """The CN of the certificate the gateway shows for server_name (verified)."""
    ctx = client_ctx(cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=H.T) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name) as s:
            subject = dict(x[0] for x in s.getpeercert()["subject"])
            return subject["commonName"], s.version(), s.selected_alpn_protocol()


def s_client(port, *args, stdin_wait=1.0):
    """Run openssl s_client; stdin stays open stdin_wait seconds (TLS 1.3 tickets come late)."""
    p = subprocess.Popen([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port, *args],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    time.sleep(stdin_wait)
    out, _ = p.communicate(timeout=H.T)
    return out


async def wss_echo(url, ctx, server_hostname="a.test", n=3):
    async with websockets.connect(url, ssl=ctx, server_hostname=server_hostname,
                                  open_timeout=H.T) as ws:
        assert await asyncio.wait_for(ws.recv(), H.T) == "hello blue"
        for i in range(n):
            msg = "tls message %d " % i + "x" * (i * 40000)
            await ws.send(msg)
            assert await asyncio.wait_for(ws.recv(), H.T) == msg


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("certs"))
    return {"dir": d, "a": make_cert(d, "a.test", "ec"), "b": make_cert(d, "b.test", "rsa")}


@pytest.fixture(scope="module")
def gw(certs):
    backend = H.Backend("blue")
    port = H.free_port()
    sl = H.Sluice(tls_config(port, backend, [certs["a"], certs["b"]]), port=port)
    sl.wss = "wss://127.0.0.1:%d/" % port
    yield sl
    assert sl.alive(), sl.output()
    H.stop_all(sl, backend)


def test_wss_echo(gw, certs):
    H.run(wss_echo(gw.wss, client_ctx(certs["a"][0])))


def test_https_request_says_https(gw, certs):
    ctx = client_ctx(certs["a"][0])
    with socket.create_connection(("127.0.0.1", gw.port), timeout=H.T) as raw:
        with ctx.wrap_socket(raw, server_hostname="a.test") as s:
            s.sendall(b"GET /hello HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
            resp = H.recv_all(s)
    assert resp.startswith(b"HTTP/1.1 200"), resp[:200]
    assert b"hello blue" in resp


def test_forwarded_proto_is_https(certs):
    echo = H.PyServer("http_echo.py")
    port = H.free_port()
    sl = H.Sluice(tls_config(port, echo, [certs["a"]]), port=port)
    try:
        ctx = client_ctx(certs["a"][0])
        with socket.create_connection(("127.0.0.1", port), timeout=H.T) as raw:
            with ctx.wrap_socket(raw, server_hostname="a.test") as s:
                s.sendall(b"GET /h HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
                resp = H.recv_all(s)
        head, _, body = resp.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), resp[:300]
        info = json.loads(body)
        got = {k.lower(): v for k, v in info["headers"]}
        assert got["x-forwarded-proto"] == "https", info
        assert "proto=https" in got["forwarded"] and got["x-forwarded-for"] == "127.0.0.1", info
    finally:
        H.stop_all(sl, echo)


def tls_get_after(port, ctx, pre, path):
    """GET path over TLS on a connection that starts with the clear bytes `pre`
    (a PROXY header), sent in the same segment as the ClientHello."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="a.test")
    resp = b""
    with socket.create_connection(("127.0.0.1", port), timeout=H.T) as raw:
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                raw.sendall(pre + out.read())
                pre = b""
                data = raw.recv(65536)
                if not data:
                    return resp   # refused during the handshake
                inc.write(data)
        obj.write(b"GET %s HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n" % path)
        raw.sendall(out.read())
        while True:
            try:
                chunk = obj.read(65536)
                if not chunk:
                    return resp
                resp += chunk
            except ssl.SSLWantReadError:
                data = raw.recv(65536)
                if not data:
                    return resp
                inc.write(data)
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return resp


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_proxy_protocol_before_tls(certs, version):
    """A TCP load balancer in front of a TLS listener sends the PROXY header in
    the clear, then the client's TLS: the source it names reaches the backend,
    whether the header shares a segment with the ClientHello or comes in
    pieces; a bad header closes that connection and nobody else's."""
    from test_http import proxy_v2
    echo = H.PyServer("http_echo.py")
    port = H.free_port()
    sl = H.Sluice(tls_config(port, echo, [certs["a"]], listener_more="proxy_protocol: " + version),
                  port=port)
    if version == "v1":
        pre, bad = b"PROXY TCP4 198.51.100.31 203.0.113.9 35646 443\r\n", b"PROXY TCP4 1.2.3\r\n"
    else:
        pre = proxy_v2("198.51.100.31", "203.0.113.9", 35646, 443)
        bad = proxy_v2("198.51.100.31", "203.0.113.9", 35646, 443, version_cmd=0x31)
    ctx = client_ctx(certs["a"][0])

    def xff(resp):
        head, _, body = resp.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), resp[:300]
        got = {k.lower(): v for k, v in json.loads(body)["headers"]}
        return got["x-forwarded-for"]

    try:
        assert xff(tls_get_after(port, ctx, pre, b"/one-segment")) == "198.51.100.31"
        # The header in two pieces, then the handshake.
        with socket.create_connection(("127.0.0.1", port), timeout=H.T) as raw:
            raw.sendall(pre[:7])
            time.sleep(0.1)
            raw.sendall(pre[7:])
            with ctx.wrap_socket(raw, server_hostname="a.test") as s:
                s.sendall(b"GET /pieces HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
                assert xff(H.recv_all(s)) == "198.51.100.31"
        # No header, or a bad one: closed before any TLS, and the next client is served.
        assert tls_get_after(port, ctx, bad, b"/bad") == b""
        with socket.create_connection(("127.0.0.1", port), timeout=H.T) as raw:
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                with ctx.wrap_socket(raw, server_hostname="a.test"):
                    pass
        assert xff(tls_get_after(port, ctx, pre, b"/after")) == "198.51.100.31"
    finally:
        H.stop_all(sl, echo)


def test_sni_picks_the_certificate(gw, certs):
    cn, version, alpn = peer_cn(gw.port, "a.test", certs["a"][0])
    assert (cn, version, alpn) == ("a.test", "TLSv1.3", None)
    assert peer_cn(gw.port, "b.test", certs["b"][0])[0] == "b.test"
    # An unknown name gets the default (first) certificate.
    ctx = client_ctx(certs["a"][0])
    ctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", gw.port), timeout=H.T) as raw:
        with ctx.wrap_socket(raw, server_hostname="other.test") as s:
            assert dict(x[0] for x in s.getpeercert()["subject"])["commonName"] == "a.test"


def test_alpn_http11(gw, certs):
    ctx = client_ctx(certs["a"][0])
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", gw.port), timeout=H.T) as raw:
        with ctx.wrap_socket(raw, server_hostname="a.test") as s:
            assert s.selected_alpn_protocol() == "http/1.1"


def test_tls12_works_and_uses_intermediate_ciphers(gw, certs):
    ctx = client_ctx(certs["b"][0], maximum_version=ssl.TLSVersion.TLSv1_2)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=H.T) as raw:
        with ctx.wrap_socket(raw, server_hostname="b.test") as s:
            assert s.version() == "TLSv1.2"
            assert s.cipher()[0] in ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
                                     "ECDHE-RSA-CHACHA20-POLY1305")


@pytest.mark.parametrize("flag", ["-tls1_3", "-tls1_2"])
def test_session_resumes_with_a_ticket(gw, certs, tmp_path, flag):
    sess = str(tmp_path / "sess.pem")
    first = s_client(gw.port, flag, "-servername", "a.test", "-sess_out", sess)
    assert "New, TLSv1." in first, first
    second = s_client(gw.port, flag, "-servername", "a.test", "-sess_in", sess)
    assert "Reused, TLSv1." in second, second


@pytest.mark.parametrize("flag", ["-tls1_2", "-tls1_3"])
@pytest.mark.parametrize("ticket", [True, False], ids=["ticket", "session cache"])
def test_a_session_resumes_only_under_the_name_it_was_made_for(gw, certs, tmp_path, flag,
                                                               ticket):
    """RFC 6066 3: a server MUST NOT resume a session whose server_name
    differs. A TLS 1.2 session made for a.test was resumed when offered for
    b.test, with a.test's certificate: the certificate was picked after the
    session lookup, and every certificate shared one session id context."""
    if flag == "-tls1_3" and not ticket:
        pytest.skip("TLS 1.3 resumes by tickets only")
    sess = str(tmp_path / "sess.pem")
    extra = [] if ticket else ["-no_ticket"]
    first = s_client(gw.port, flag, "-servername", "a.test", "-sess_out", sess, *extra)
    assert "New, TLSv1." in first and "CN = a.test" in first, first
    other = s_client(gw.port, flag, "-servername", "b.test", "-sess_in", sess, *extra)
    assert "New, TLSv1." in other and "CN = b.test" in other, other
    again = s_client(gw.port, flag, "-servername", "a.test", "-sess_in", sess, *extra)
    assert "Reused, TLSv1." in again, again


def resume(port, ctx, session, n=0):
    """One HTTPS request, offering `session`: (resumed?, the session to offer next)."""
    with socket.create_connection(("127.0.0.1", port), timeout=H.T) as raw:
        with ctx.wrap_socket(raw, server_hostname="a.test", session=session) as s:
            s.sendall(b"GET /k%d HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n" % n)
            assert H.recv_all(s).startswith(b"HTTP/1.1 200")
            return s.session_reused, s.session


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
def test_every_reconnect_resumes_with_the_newest_ticket(gw, certs, version):
    # A client that offers the newest session it holds (Python's ssl: the
    # ticket of its last connection) must resume on every reconnect. TLS 1.3
    # clients use a ticket once, so the gateway must send a new one after
    # each resumption too; without it every other reconnect was a full
    # handshake for clients that never reuse a ticket (browsers).
    ctx = client_ctx(certs["a"][0], minimum_version=version, maximum_version=version)
    session, reused, ids = None, [], set()
    for i in range(6):
        was_reused, session = resume(gw.port, ctx, session, i)
        reused.append(was_reused)
        assert session is not None and session.has_ticket
        ids.add(session.id)   # TLS 1.3: OpenSSL's client names a session by its ticket
    assert reused == [False] + [True] * 5, reused
    if version == ssl.TLSVersion.TLSv1_3:
        assert len(ids) == 6, "a new ticket on each connection, got %d" % len(ids)


TLSBENCH = os.path.join(H.BUILD, "bench", "sluice-tlsbench")


def tlsbench(port, *args):
    """bench/tlsbench.c (the bench's TLS client) against port: its JSON summary."""
    p = subprocess.run([TLSBENCH, "--connect",
                        "127.0.0.1:%d" % port, "--json", "--sni", "a.test", *args],
                       capture_output=True, text=True, timeout=H.T)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.mark.parametrize("version", ["1.3", "1.2"])
def test_bench_tls_client_counts_full_and_resumed_handshakes(gw, version):
    full = tlsbench(gw.port, "--tls", version, "--time", "0.3")
    assert full["handshakes"] >= 10 and full["resumed"] == 0 and full["failures"] == 0, full
    # A ticket is waited for up to 5 s (the wait ends when it comes): a slow
    # build must not turn a late ticket into a full handshake.
    res = tlsbench(gw.port, "--tls", version, "--resume", "--time", "0.3", "--ticket-wait", "5000")
    assert res["handshakes"] >= 10 and res["failures"] == 0, res
    assert res["resumed"] == res["handshakes"] - 1, res     # all but the first
    if version == "1.3":
        assert res["new_tickets"] == res["handshakes"], res
    bad = subprocess.run([TLSBENCH, "--tls", "1.1",
                          "--connect", "127.0.0.1:%d" % gw.port], capture_output=True, text=True,
                         timeout=H.T)
    assert bad.returncode == 2 and "--tls wants 1.3 or 1.2" in bad.stderr


def reload_and_wait(sl, generation):
    sl.proc.send_signal(signal.SIGHUP)
    line = "(generation %d)" % generation
    assert wait_until(lambda: line in sl.output(), H.T, 0.05), "no reload: " + sl.output()[-2000:]


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_ticket_keys_from_a_file_rotate_and_survive_a_restart(certs, tmp_path, version):
    # docs/tls.md: the first key of ticket_key_file encrypts, all decrypt, a ticket
    # under an older key is renewed, and instances sharing the file resume each
    # other's tickets. Rotation as the docs say: new key first, old after, reload.
    k1, k2 = os.urandom(80), os.urandom(80)
    keyfile = tmp_path / "ticket.key"
    keyfile.write_bytes(k1)
    ctx = client_ctx(certs["a"][0], minimum_version=version, maximum_version=version)
    backend = H.Backend("blue")
    port = H.free_port()
    text = tls_config(port, backend, [certs["a"]], extra_tls="ticket_key_file: %s" % keyfile)
    sl = H.Sluice(text, port=port)
    try:
        reused, under_k1 = resume(port, ctx, None)
        assert not reused
        keyfile.write_bytes(k2 + k1)
        reload_and_wait(sl, 2)
        reused, renewed = resume(port, ctx, under_k1, 1)
        assert reused                      # k1 still decrypts ...
        keyfile.write_bytes(k2)
        reload_and_wait(sl, 3)
        assert resume(port, ctx, renewed, 2)[0]        # ... and its ticket came back under k2
        assert not resume(port, ctx, under_k1, 3)[0]   # k1 is gone
        # Another instance on the same file resumes this one's tickets.
        reused, last = resume(port, ctx, renewed, 4)
        H.stop_all(sl)
        sl = H.Sluice(text, port=port)
        assert resume(port, ctx, last, 5)[0]
        # Back to keys made in memory: tickets under the file's key still resume
        # (as a rotated-out key's do); the reload dropped the file's keys at once.
        reused, last = resume(port, ctx, last, 6)
        with open(sl.cfg.name, "w") as f:
            f.write(tls_config(port, backend, [certs["a"]]))
        reload_and_wait(sl, 2)
        assert resume(port, ctx, last, 7)[0]
    finally:
        H.stop_all(sl, backend)


def test_session_resumes_from_the_cache(gw):
    # No ticket: the session id, looked up in the server's session cache.
    out = s_client(gw.port, "-tls1_2", "-no_ticket", "-reconnect", stdin_wait=0.5)
    lines = [l for l in out.splitlines() if l.startswith(("New,", "Reused,"))]
    assert len(lines) == 6 and lines[0].startswith("New,"), out
    assert all(l.startswith("Reused,") for l in lines[1:]), out


@pytest.mark.parametrize("flag", ["-tls1", "-tls1_1"])
def test_old_protocols_refused(gw, flag):
    out = s_client(gw.port, flag, "-cipher", "DEFAULT@SECLEVEL=0", stdin_wait=0.2)
    assert "alert protocol version" in out, out
    assert "Cipher is (NONE)" in out, out


# A record header and the start of a ClientHello that announces more than follows.
HALF_CLIENT_HELLO = bytes.fromhex("16030100c8010000c40303") + b"\0" * 20


def test_garbage_and_stalls_are_cut_off(gw, certs):
    t0 = time.monotonic()
    # Plain HTTP on the TLS port: not a TLS record, closed at once.
    with socket.create_connection(("127.0.0.1", gw.port), timeout=H.T) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        H.recv_all(s)
    assert time.monotonic() - t0 < 0.9
    # A stalled handshake (nothing: handed over when defer_accept's 1 s ends)
    # and a half ClientHello: cut at handshake_timeout (1s).
    stalled = socket.create_connection(("127.0.0.1", gw.port), timeout=H.T)
    half = socket.create_connection(("127.0.0.1", gw.port), timeout=H.T)
    half.sendall(HALF_CLIENT_HELLO)
    t1 = time.monotonic()
    for s in (stalled, half):
        assert H.recv_all(s) == b""
        s.close()
    waited = time.monotonic() - t1
    assert 0.8 < waited < 3.0, waited
    # And the next client is served.
    H.run(wss_echo(gw.wss, client_ctx(certs["a"][0]), n=1))
    assert gw.alive()


def test_handshake_cap_pauses_accepting(gw, certs):
    # max_handshakes is 2: two stalled handshakes (half a ClientHello each: a
    # silent connection is not even handed over, defer_accept) hold the
    # worker's TLS listener; a third client waits in the backlog until they
    # time out.
    # The third client is served once their handshake timeout (1 s, started
    # when sluice read their bytes, after t0) has cut them off.
    t0 = time.monotonic()
    stalled = [socket.create_connection(("127.0.0.1", gw.port), timeout=H.T) for _ in range(2)]
    for s in stalled:
        s.sendall(HALF_CLIENT_HELLO)
    time.sleep(0.2)
    peer_cn(gw.port, "a.test", certs["a"][0])
    waited = time.monotonic() - t0
    for s in stalled:
        s.close()
    assert 0.95 < waited < 3.2, waited


def test_handshake_storm_all_served(gw, certs):
    # 150 clients at once against max_handshakes 2: all are served, in turn.
    ctx = client_ctx(certs["a"][0])

    async def one():
        async with websockets.connect(gw.wss, ssl=ctx, server_hostname="a.test",
                                      open_timeout=30) as ws:
            return await asyncio.wait_for(ws.recv(), 30)

    async def storm():
        return await asyncio.gather(*[one() for _ in range(150)])
    assert H.run(storm(), timeout=60) == ["hello blue"] * 150
    assert gw.alive()


def test_plain_listener_beside_tls(certs):
    backend = H.Backend("blue")
    port, tport = H.free_port(), H.free_port()
    text = H.config(port, {"blue": [backend.addr]})
    text = text.replace("workers:", "  - address: 127.0.0.1:%d\n    tls: { certificates: "
                        "[ { cert: %s, key: %s } ] }\nworkers:" % ((tport,) + certs["a"]), 1)
    sl = H.Sluice(text, port=port)
    try:
        H.wait_port("127.0.0.1", tport)

        async def both():
            async with websockets.connect(sl.url) as ws:
                assert await asyncio.wait_for(ws.recv(), H.T) == "hello blue"
            await wss_echo("wss://127.0.0.1:%d/" % tport, client_ctx(certs["a"][0]), n=1)
        H.run(both())
    finally:
        H.stop_all(sl, backend)


def test_check_names_a_bad_key(certs, tmp_path):
    cfg = tmp_path / "bad.yaml"
    backend_addr = "127.0.0.1:9"
    cfg.write_text(H.config(H.free_port(), {"blue": [backend_addr]}, listener_extra=(
        "tls:\n  certificates:\n"
        "    - { cert: %s, key: %s }\n"
        "    - { cert: %s, key: %s }\n") % (certs["a"][0], certs["b"][1],
                                           str(tmp_path / "missing.pem"), certs["b"][1])))
    r = subprocess.run([H.SLUICE, "--check", "-c", str(cfg)], capture_output=True, text=True,
                       timeout=H.T)
    assert r.returncode == 2, r
    err = r.stdout + r.stderr
    # Each at its own key's value (they were all placed at the listener's first line).
    lines = cfg.read_text().split("\n")

    def at(text):
        n = next(i for i, x in enumerate(lines) if text in x)
        return "%s:%d:%d: " % (cfg, n + 1, lines[n].index(text) + 1)
    assert at(certs["b"][1]) + "listeners[0].tls.certificates[0].key: key %s does not match " \
        "certificate %s" % (certs["b"][1], certs["a"][0]) in err, err
    assert at(str(tmp_path / "missing.pem")) + "listeners[0].tls.certificates[1].cert: cannot " \
        "read certificate file %s" % (tmp_path / "missing.pem") in err, err


def test_check_refuses_a_tls13_only_listener_without_suites(certs, tmp_path):
    """OpenSSL takes an empty TLS 1.3 suite list; with TLS 1.2 refused by
    min_version, --check said ok and every handshake failed."""
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(H.config(H.free_port(), {"blue": ["127.0.0.1:9"]}, listener_extra=(
        "tls:\n  certificates:\n    - { cert: %s, key: %s }\n  min_version: TLSv1.3\n"
        "  ciphersuites: \"\"\n") % certs["a"]))
    r = subprocess.run([H.SLUICE, "--check", "-c", str(cfg)], capture_output=True, text=True,
                       timeout=H.T)
    assert r.returncode == 2, r
    lines = cfg.read_text().split("\n")
    n = next(i for i, x in enumerate(lines) if "ciphersuites" in x)
    assert "%s:%d:%d: listeners[0].tls.ciphersuites: no suite, and min_version TLSv1.3 leaves " \
        "nothing else" % (cfg, n + 1, lines[n].index('""') + 1) in r.stdout + r.stderr, r


def test_reload_swaps_the_certificate_keeping_connections(certs, tmp_path):
    d = str(tmp_path)
    cert, key = make_cert(d, "a.test", "ec")
    backend = H.Backend("blue")
    port = H.free_port()
    sl = H.Sluice(tls_config(port, backend, [(cert, key)]), port=port)
    try:
        first = open(cert, "rb").read()
        ctx1 = client_ctx(cert)

        async def scenario():
            async with websockets.connect("wss://127.0.0.1:%d/" % port, ssl=ctx1,
                                          server_hostname="a.test") as ws:
                assert await asyncio.wait_for(ws.recv(), H.T) == "hello blue"
                # A new certificate and key in the same files, then SIGHUP.
                os.rename(cert, cert + ".old")
                make_cert(d, "a.test", "ec")
                assert open(cert, "rb").read() != first
                sl.proc.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + H.T
                while True:
                    try:
                        peer_cn(port, "a.test", cert)   # verifies against the NEW cert only
                        break
                    except ssl.SSLError:
                        assert time.monotonic() < deadline, "certificate not swapped: " + \
                            sl.output()
                        await asyncio.sleep(0.1)
                # The connection made before the reload still works.
                await ws.send("still here")
                assert await asyncio.wait_for(ws.recv(), H.T) == "still here"
        H.run(scenario())
        assert sl.alive()
    finally:
        H.stop_all(sl, backend)


# ---- TLS to backends (pools with tls: true) ----

def make_cert_san(d, name, san):
    """Self-signed ECDSA certificate with the given subjectAltName (e.g. "IP:127.0.0.1")."""
    cert, key = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=" + name, "-addext", "subjectAltName=" + san],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def tls_backend(cert_key):
    return H.PyServer("tls_echo.py", "--cert", cert_key[0], "--key", cert_key[1])


def backend_tls_config(port, backend, pool_tls):
    text = H.config(port, {"blue": [backend.addr]})
    keys = "".join("    %s\n" % l for l in pool_tls.strip("\n").split("\n"))
    return text.replace("  blue:\n", "  blue:\n" + keys, 1)


def http_get(port, path="/", extra=""):
    """One request on a fresh plain connection: (status, body)."""
    with H.raw_connect(port) as s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s\r\n" %
                   (path, extra)).encode())
        r = H.HttpReader(s).read()
    return r.status, r.body


def test_a_reload_that_turns_verification_on_is_not_bypassed_by_a_kept_alive_connection(
        tmp_path):
    """A TLS backend connection kept alive under tls_verify: false carried
    new exchanges after a reload turned verification on (with a CA the
    backend's certificate does not chain to), for as long as it stayed busy.
    Made under another TLS context than the pool's now, it is closed, and
    the exchange gets a new connection, verified: refused here (502)."""
    impostor = make_cert(str(tmp_path), "impostor", "ec")
    trusted = make_cert(str(tmp_path), "backend.test", "ec")
    backend = tls_backend(impostor)
    port = H.free_port()
    text_off = backend_tls_config(port, backend, "tls: true\ntls_verify: false\n"
                                                 "tls_sni: backend.test")
    sl = H.Sluice(text_off, port=port)
    try:
        assert http_get(port, "/before")[0] == 200
        with open(sl.cfg.name, "w") as f:
            f.write(backend_tls_config(port, backend, "tls: true\ntls_verify: true\n"
                                       "tls_ca_file: %s\ntls_sni: backend.test" % trusted[0]))
        sl.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "generation 2" in sl.output(), 5), sl.output()
        assert [http_get(port, "/after%d" % i)[0] for i in range(3)] == [502] * 3
    finally:
        H.stop_all(sl, backend)


def test_backend_tls_health_checks(tmp_path):
    """A TLS pool's health checks speak TLS through the pool's own context: the
    backend whose certificate verifies is up, the one whose certificate does
    not is down and gets nothing; the good one is marked down when it dies."""
    good_ck = make_cert(str(tmp_path), "backend.test", "ec")
    evil_ck = make_cert(str(tmp_path), "evil.test", "ec")
    good, evil = tls_backend(good_ck), tls_backend(evil_ck)
    port, admin = H.free_port(), H.free_port()
    text = H.config(port, {"blue": [good.addr, evil.addr]},
                    extra="admin: { address: 127.0.0.1:%d }" % admin)
    keys = ("tls: true\ntls_ca_file: %s\ntls_sni: backend.test\n"
            "health: { path: /healthz, interval: 200ms, timeout: 1s, rise: 1, fall: 1 }"
            % good_ck[0])
    text = text.replace("  blue:\n", "  blue:\n" + "".join("    %s\n" % l
                                                          for l in keys.split("\n")), 1)
    sl = H.Sluice(text, port=port)

    def up():
        return {dict(k)["backend"]: v
                for k, v in H.metric_samples(H.scrape(admin), "sluice_pool_backend_up").items()}
    try:
        assert wait_until(lambda: up() == {good.addr: 1.0, evil.addr: 0.0}), up()
        for i in range(10):
            status, body = http_get(port, "/n%d" % i)
            assert status == 200, (status, body[:200])
        good.stop()
        assert wait_until(lambda: up()[good.addr] == 0.0), up()
        status, _ = http_get(port, "/after")
        assert status == 503
    finally:
        H.stop_all(sl, good, evil)


@pytest.fixture(scope="module")
def tls_up(tmp_path_factory):
    """A TLS backend for backend.test, and sluice verifying it with that certificate as CA."""
    d = str(tmp_path_factory.mktemp("backend-certs"))
    ck = make_cert(d, "backend.test", "ec")
    backend = tls_backend(ck)
    port = H.free_port()
    sl = H.Sluice(backend_tls_config(port, backend, "tls: true\ntls_ca_file: %s\n"
                                     "tls_sni: backend.test" % ck[0]), port=port)
    sl.cert = ck
    yield sl
    assert sl.alive(), sl.output()
    H.stop_all(sl, backend)


def test_backend_tls_websocket_echo(tls_up):
    async def scenario():
        async with websockets.connect(tls_up.url, open_timeout=H.T, max_size=None) as ws:
            for i in range(4):
                msg = "to a TLS backend %d " % i + "y" * (i * 70000)
                await ws.send(msg)
                assert await asyncio.wait_for(ws.recv(), H.T) == msg
            await ws.send(b"\x00\x01" * 50000)
            assert await asyncio.wait_for(ws.recv(), H.T) == b"\x00\x01" * 50000
    H.run(scenario())


def test_backend_tls_slow_client_gets_every_byte(tls_up):
    # The client does not read for a while: sluice stops reading the TLS
    # backend with decrypted bytes held back, then must deliver them in order.
    import threading
    ws = H.WsConn(tls_up.port)
    assert ws.status == 101, ws.response
    msgs = [bytes([i]) * (700000 + i * 1000) for i in range(6)]
    sender = threading.Thread(target=lambda: [ws.send(H.ws_frame(2, m)) for m in msgs])
    sender.start()
    time.sleep(1.0)
    for m in msgs:
        assert ws.read_message() == (2, m)
    sender.join(H.T)
    ws.close()


def test_backend_tls_http_keeps_the_tls_connection(tls_up):
    with H.raw_connect(tls_up.port) as s:
        rd = H.HttpReader(s)
        seen = []
        for _ in range(3):
            s.sendall(b"GET /k HTTP/1.1\r\nHost: t\r\n\r\n")
            r = rd.read()
            assert r.status == 200, r
            seen.append(json.loads(r.body))
    assert [x["index"] for x in seen] == [0, 1, 2], seen   # one backend connection
    assert len({x["peer_port"] for x in seen}) == 1, seen
    assert seen[0]["sni"] == "backend.test"
    assert seen[0]["alpn"] == "http/1.1"
    assert seen[0]["version"] in ("TLSv1.2", "TLSv1.3")


def test_backend_tls_session_resumes(tls_up):
    # The backend closes each connection, so every request needs a new one;
    # from the second on, sluice offers the backend's last session.
    seen = []
    for _ in range(3):
        status, body = http_get(tls_up.port, "/r", "X-Echo-Close: 1\r\n")
        assert status == 200, body
        seen.append(json.loads(body))
        time.sleep(0.1)
    assert len({x["peer_port"] for x in seen}) == 3, seen
    assert seen[-1]["reused"] is True, seen


def test_a_websocket_to_a_tls_backend_moves_through_reloads(tmp_path):
    """The TLS state of a backend connection points at its backend's name
    (the session cache's key) in its config: when the WebSocket moves to a
    new config at a reload and the old one is freed, it must follow."""
    ck = make_cert(str(tmp_path), "backend.test", "ec")
    backend = tls_backend(ck)
    port, admin = H.free_port(), H.free_port()
    text = backend_tls_config(port, backend, "tls: true\ntls_ca_file: %s\ntls_sni: backend.test"
                              % ck[0]) + "admin: { address: 127.0.0.1:%d }\n" % admin
    sl = H.Sluice(text, port=port)

    def reload(gen):
        with open(sl.cfg.name, "w") as f:
            f.write(text + "# generation %d\n" % gen)
        sl.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "applied (generation %d)" % gen in sl.output(), 5)

    def held():
        return H.metric(H.scrape(admin), "sluice_config_generations_held")
    try:
        reload(2)

        async def scenario():
            async with websockets.connect(sl.url, open_timeout=H.T, max_size=None) as ws:
                await ws.send("before")
                assert await asyncio.wait_for(ws.recv(), H.T) == "before"
                reload(3)   # the WebSocket leaves generation 2, which is freed
                assert wait_until(lambda: held() == 2, 5), held()
                for i in range(3):
                    msg = "after %d " % i + "z" * (i * 50000)
                    await ws.send(msg)
                    assert await asyncio.wait_for(ws.recv(), H.T) == msg
        H.run(scenario())
        status, body = http_get(port, "/r", "X-Echo-Close: 1\r\n")
        assert status == 200, body
        assert sl.alive(), sl.output()
    finally:
        H.stop_all(sl, backend)


class BusyTlsBackend(H.ThreadBackend):
    """A TLS backend that accepts an upgrade, then writes to its client
    without pause and reads nothing for 2.5 s (its receive buffer small),
    then reads every frame it was sent until a close; what it read is in
    self.frames. One thread per connection: the flood is non-blocking
    writes from the same thread (an SSL object is not for two threads)."""

    def __init__(self, cert_key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(*cert_key)
        self.frames, self.ended = [], threading.Event()
        super().__init__()

    def handle(self, conn):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        conn = self.ctx.wrap_socket(conn, server_side=True)
        head = H.recv_until(conn, b"\r\n\r\n")
        conn.sendall(H.switching_protocols(H.ws_key_of(head)))
        conn.setblocking(False)
        frame, off = H.ws_frame(2, b"x" * 65536, mask=False), 0
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            try:
                off = (off + conn.send(frame[off:])) % len(frame)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                time.sleep(0.005)
            except OSError as e:   # the gateway's reset
                self.frames.append(repr(e))
                break
        conn.settimeout(8)
        self.frames += H.frames_until_close(conn, head.split(b"\r\n\r\n", 1)[1])
        self.ended.set()


def test_what_the_client_sent_before_a_hang_up_reaches_a_busy_tls_backend(tmp_path):
    """test_websocket's busy-backend test over a TLS backend: the client
    sends a whole 400 kB message and hangs up while the backend is busy
    writing and slow to read. The backend must get the message and the
    close 1001: the gateway closed a released TLS backend connection at
    once, with the backend's bytes unread, and the reset that close sends
    threw away what was still waiting to go. Now it lingers as a plain one
    does, after its close_notify."""
    ck = make_cert(str(tmp_path), "backend.test", "ec")
    backend = BusyTlsBackend(ck)
    port = H.free_port()
    sl = H.Sluice(backend_tls_config(
        port, backend, "tls: true\ntls_ca_file: %s\ntls_sni: backend.test" % ck[0]).replace(
        "workers: 1", "workers: 1\nlimits: {write_high_water: 64KiB, write_low_water: 16KiB}"),
        port)
    try:
        H.message_then_end_reaches(port, backend, "hang-up")
        assert sl.alive()
    finally:
        H.stop_all(sl)
        backend.close()


class EndWatchingTlsBackend(H.ThreadBackend):
    """A TLS backend that answers a request with the start of a long body,
    then reads to see how the gateway ends the connection: "close_notify"
    (a clean TLS end) or the error a bare TCP end raises."""

    def __init__(self, cert_key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(*cert_key)
        self.ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF   # Python sets it: a bare end reads b""
        self.ends, self.client_gone = [], threading.Event()
        super().__init__()

    def handle(self, conn):
        conn = self.ctx.wrap_socket(conn, server_side=True, suppress_ragged_eofs=False)
        H.recv_until(conn, b"\r\n\r\n")
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"b" * 1000)
        # More of the body once the client is gone: the gateway learns it
        # is when it writes this (it does not read a client between the
        # request and the end of its answer).
        self.client_gone.wait(5)
        conn.sendall(b"b" * 1000)
        conn.settimeout(5)
        try:
            self.ends.append("close_notify" if conn.recv(100) == b"" else "data")
        except (OSError, ssl.SSLError) as e:
            self.ends.append(repr(e))


def test_a_tls_backend_connection_let_go_ends_with_close_notify(tmp_path):
    """The client hangs up mid-response, so the backend connection cannot be
    reused: the gateway ends it with a close_notify (RFC 8446 6.1), where it
    once closed the TCP connection bare, which the backend reads as a
    truncation attack ("EOF occurred in violation of protocol")."""
    ck = make_cert(str(tmp_path), "backend.test", "ec")
    backend = EndWatchingTlsBackend(ck)
    port = H.free_port()
    sl = H.Sluice(backend_tls_config(
        port, backend, "tls: true\ntls_ca_file: %s\ntls_sni: backend.test" % ck[0]), port)
    try:
        c = H.raw_connect(port)
        c.sendall(b"GET /long HTTP/1.1\r\nHost: t\r\n\r\n")
        assert b"200 OK" in H.recv_until(c, b"\r\n\r\n")
        # A reset: a FIN alone would read as a half-close, answered in full.
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        time.sleep(0.2)
        backend.client_gone.set()
        assert wait_until(lambda: backend.ends, 8), "the backend saw no end"
        assert backend.ends == ["close_notify"], backend.ends
    finally:
        H.stop_all(sl)
        backend.close()


def test_backend_tls_unknown_ca_refused_unless_not_verified(tmp_path):
    d = str(tmp_path)
    trusted = make_cert(d, "backend.test", "ec")
    impostor = make_cert(d, "impostor", "ec")   # signed by nobody sluice trusts
    backend = tls_backend(impostor)
    port = H.free_port()
    sl = H.Sluice(backend_tls_config(port, backend, "tls: true\ntls_ca_file: %s\n"
                                     "tls_sni: backend.test" % trusted[0]), port=port)
    try:
        status, _ = http_get(port)
        assert status == 502
        async def upgrade():
            async with websockets.connect(sl.url, open_timeout=H.T):
                pass
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            H.run(upgrade())
        assert e.value.status_code == 502
        assert "certificate refused" in sl.output(), sl.output()
    finally:
        H.stop_all(sl)
    port = H.free_port()
    sl = H.Sluice(backend_tls_config(port, backend, "tls: true\ntls_verify: false\n"
                                     "tls_sni: backend.test"), port=port)
    try:
        status, body = http_get(port)
        assert status == 200, body
        assert json.loads(body)["sni"] == "backend.test"
        assert "NOT verified" in sl.output(), sl.output()
    finally:
        H.stop_all(sl, backend)


def test_backend_tls_name_must_match(tmp_path):
    # The CA is right but the certificate is for another name than tls_sni.
    ck = make_cert(str(tmp_path), "backend.test", "ec")
    backend = tls_backend(ck)
    port = H.free_port()
    sl = H.Sluice(backend_tls_config(port, backend, "tls: true\ntls_ca_file: %s\n"
                                     "tls_sni: other.test" % ck[0]), port=port)
    try:
        assert http_get(port)[0] == 502
        assert "certificate refused" in sl.output(), sl.output()
    finally:
        H.stop_all(sl, backend)


def test_backend_tls_by_address_verifies_the_ip_and_sends_no_sni(tmp_path):
    ck = make_cert_san(str(tmp_path), "ip-backend", "IP:127.0.0.1")
    backend = tls_backend(ck)
    port = H.free_port()
    sl = H.Sluice(backend_tls_config(port, backend, "tls: true\ntls_ca_file: %s" % ck[0]),
                  port=port)
    try:
        status, body = http_get(port)
        assert status == 200, body
        assert json.loads(body)["sni"] is None   # RFC 6066: no SNI for an address
    finally:
        H.stop_all(sl, backend)


def test_check_names_a_missing_ca_file(tmp_path):
    cfg = tmp_path / "bad.yaml"
    missing = str(tmp_path / "no-such-ca.pem")
    cfg.write_text(backend_tls_config(H.free_port(), type("B", (), {"addr": "127.0.0.1:9"}),
                                      "tls: true\ntls_ca_file: %s" % missing))
    r = subprocess.run([H.SLUICE, "--check", "-c", str(cfg)], capture_output=True, text=True,
                       timeout=H.T)
    assert r.returncode == 2, r
    err = r.stdout + r.stderr
    lines = cfg.read_text().split("\n")
    n = next(i for i, x in enumerate(lines) if "tls_ca_file" in x)
    assert "%s:%d:%d: pools.blue.tls_ca_file: cannot read CA file %s" % (
        cfg, n + 1, lines[n].index(missing) + 1, missing) in err, err


class BigAnswer(H.ThreadBackend):
    """Answers every request with 200 and SIZE bytes, kept alive."""

    SIZE = 4 << 20

    def handle(self, conn):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                buf = buf.split(b"\r\n\r\n", 1)[1]
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % self.SIZE)
                conn.sendall(b"z" * self.SIZE)
        except OSError:
            return


def body_length(resp):
    head, _, body = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n"), head[:200]
    return len(body)


def slow_read(recv):
    """Everything recv() yields until the end, 64 KiB every 5 ms (a slow reader)."""
    data = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        chunk = recv()
        if not chunk:
            return data
        data += chunk
        time.sleep(0.005)
    raise AssertionError("no end after %d bytes" % len(data))


def handshake_over_bios(raw, ctx):
    """A TLS client over memory BIOs on the connected socket `raw`, its
    handshake done as far as the client can tell: (obj, inc, out), so the
    test decides what goes in each write (its Finished still waits in `out`)."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="a.test")
    while True:
        try:
            obj.do_handshake()
            return obj, inc, out
        except ssl.SSLWantReadError:
            raw.sendall(out.read())
            inc.write(raw.recv(65536))


def queue_close_notify(obj):
    """Our close_notify into `out`, without waiting for the peer's."""
    try:
        obj.unwrap()
    except ssl.SSLWantReadError:
        pass


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_a_client_that_half_closes_after_its_request_gets_the_whole_answer(certs, transport):
    """A client may end its side after its request (a FIN, or a TLS
    close_notify in the same write as the request) and still read. The
    answer once lost its last queued bytes (the session closed at once,
    cancelling its writes), and over TLS the request got no answer at all."""
    backend = BigAnswer()
    port = H.free_port()
    text = (tls_config(port, backend, [certs["a"]]) if transport == "tls"
            else H.config(port, {"blue": [backend.addr]}))
    sl = H.Sluice(text, port=port)
    request = b"GET /big HTTP/1.1\r\nHost: a.test\r\n\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=H.T) as raw:
            if transport == "tcp":
                raw.sendall(request)
                raw.shutdown(socket.SHUT_WR)
                resp = slow_read(lambda: raw.recv(65536))
            else:
                obj, inc, out = handshake_over_bios(raw, client_ctx(certs["a"][0]))
                obj.write(request)
                queue_close_notify(obj)
                raw.sendall(out.read())          # the request and the close_notify, one write

                def recv():
                    while True:
                        try:
                            return obj.read(65536)
                        except ssl.SSLWantReadError:
                            data = raw.recv(65536)
                            if not data:
                                return b""
                            inc.write(data)
                        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                            return b""
                resp = slow_read(recv)
        assert body_length(resp) == BigAnswer.SIZE
        assert sl.alive()
    finally:
        H.stop_all(sl, backend)


def test_a_close_notify_that_comes_with_the_finished_is_answered_in_the_tickets_write(gw, certs):
    """A TLS 1.3 client that sends its close_notify with its Finished (a probe,
    a handshake benchmark) gets its session ticket and our close_notify in one
    segment: two data segments in all, with the server's flight. They were
    three, and a client that had already closed its socket answered the
    ticket with a reset, so the gateway's second write failed."""
    ctx = client_ctx(certs["a"][0])
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    with socket.create_connection(("127.0.0.1", gw.port), timeout=H.T) as raw:
        obj, inc, out = handshake_over_bios(raw, ctx)   # the Finished waits in `out`
        assert H.tcp_info(raw)["data_segs_in"] == 1   # the server's flight
        queue_close_notify(obj)
        raw.sendall(out.read())          # the Finished and the close_notify, one write
        ended = False
        while not ended:
            data = raw.recv(65536)
            assert data, "the connection ended without the gateway's close_notify"
            inc.write(data)
            try:
                obj.unwrap()
                ended = True             # the gateway's close_notify has come
            except ssl.SSLWantReadError:
                pass
        assert obj.session is not None and obj.session.has_ticket
        assert H.tcp_info(raw)["data_segs_in"] == 2, H.tcp_info(raw)
    assert gw.alive()


def test_ecdsa_and_rsa_pair_up_whatever_the_order_of_their_names(tmp_path):
    """Two certificates for the same names, listed in another order (CAs keep
    none between issuances), are served side by side: an RSA-only client
    gets the RSA one. They once paired only in the same order, and the RSA
    one was never chosen (handshake failure for RSA-only clients)."""
    d = str(tmp_path)
    made = {}
    for kind, san, newkey in (("ec", "DNS:x.test,DNS:y.test",
                               ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
                              ("rsa", "DNS:y.test,DNS:x.test", ["-newkey", "rsa:2048"])):
        cert, key = os.path.join(d, kind + ".pem"), os.path.join(d, kind + ".key")
        subprocess.run([OPENSSL, "req", "-x509", *newkey, "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=%s-xy" % kind, "-addext",
                        "subjectAltName=" + san], check=True, capture_output=True, timeout=60)
        made[kind] = (cert, key)
    backend = H.Backend("blue")
    port = H.free_port()
    sl = H.Sluice(tls_config(port, backend, [made["ec"], made["rsa"]]), port=port)
    try:
        for name in ("x.test", "y.test"):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
            with socket.create_connection(("127.0.0.1", port), timeout=H.T) as raw:
                with ctx.wrap_socket(raw, server_hostname=name) as s:
                    der = s.getpeercert(binary_form=True)
            text = subprocess.run([OPENSSL, "x509", "-inform", "DER", "-noout", "-subject"],
                                  input=der, capture_output=True, timeout=10).stdout
            assert b"rsa-xy" in text, (name, text)
    finally:
        H.stop_all(sl, backend)


def test_a_reload_changes_the_handshake_cap(certs):
    """max_handshakes was read from the config the listener started with: a
    reload that raised it answered "applied" and the old cap stayed."""
    backend = H.Backend("blue")
    port = H.free_port()
    text = tls_config(port, backend, [certs["a"]])
    sl = H.Sluice(text, port=port)
    stalled = []
    try:
        assert "max_handshakes: 2" in text
        with open(sl.cfg.name, "w") as f:
            f.write(text.replace("max_handshakes: 2", "max_handshakes: 8"))
        sl.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "generation 2" in sl.output(), 5)
        stalled = [socket.create_connection(("127.0.0.1", port), timeout=H.T) for _ in range(2)]
        for s in stalled:
            s.sendall(HALF_CLIENT_HELLO)
        time.sleep(0.2)
        t0 = time.monotonic()
        peer_cn(port, "a.test", certs["a"][0])       # not held back behind the two
        assert time.monotonic() - t0 < 0.5
    finally:
        for s in stalled:
            s.close()
        H.stop_all(sl, backend)


def test_a_reload_that_raises_the_cap_wakes_a_listener_paused_at_it(certs):
    """Two stalled handshakes hold the listener paused at max_handshakes 2;
    a reload raises the cap. The listener woke only when a handshake ended
    (a stalled one's after handshake_timeout, 8 s here): a new client waited
    that long although the cap in force let it in."""
    backend = H.Backend("blue")
    port = H.free_port()
    text = tls_config(port, backend, [certs["a"]]).replace("handshake_timeout: 1s",
                                                            "handshake_timeout: 8s")
    assert "max_handshakes: 2" in text and "handshake_timeout: 8s" in text
    sl = H.Sluice(text, port=port)
    stalled = []
    try:
        stalled = [socket.create_connection(("127.0.0.1", port), timeout=H.T) for _ in range(3)]
        for s in stalled:
            s.sendall(HALF_CLIENT_HELLO)
        time.sleep(0.3)   # two in progress; the third made the worker pause the listener
        with open(sl.cfg.name, "w") as f:
            f.write(text.replace("max_handshakes: 2", "max_handshakes: 100"))
        sl.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "generation 2" in sl.output(), 5)
        t0 = time.monotonic()
        peer_cn(port, "a.test", certs["a"][0])
        assert time.monotonic() - t0 < 2
    finally:
        for s in stalled:
            s.close()
        H.stop_all(sl, backend)
