"""Operations at scale: reloads, shutdowns and restarts with many clients
connected, as an operator does them during an incident.

The gateway, the C backend and sluice-loadgen run on loopback; the load is
1,000 WebSockets exchanging messages (loadgen echo mode, open loop, a
per-second timeline), a size two shared cores carry in a few seconds even
under a debug build. The numbers at 5,000 connections (release build) are
in bench/RESULTS.md. Every process is stopped by PID; every wait is bounded.
"""
import json
import os
import ssl
import socket
import time
import urllib.error
import urllib.request

from harness import T, Backend, Sluice, config, free_port, stop_all, wait_port
from test_tls import make_cert


def gateway(backend_addrs, admin_extra="", extra="", listener_extra="", workers=2):
    """sluice in front of pool blue, with the admin API; .admin_port, .text."""
    port, admin_port = free_port(), free_port()
    text = config(port, {"blue": backend_addrs}, workers=workers, service_extra="admission: off",
                  listener_extra=listener_extra,
                  extra="admin: { address: 127.0.0.1:%d%s }\n%s" % (admin_port, admin_extra,
                                                                      extra))
    s = Sluice(text, port)
    wait_port("127.0.0.1", admin_port, s.proc)
    s.admin_port, s.text = admin_port, text
    return s


def call(admin_port, method, path, body=None, timeout=T):
    """(status, JSON body, milliseconds the answer took)."""
    data = json.dumps(body).encode() if body is not None else b""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (admin_port, path), data=data,
                                 method=method)
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    return status, json.loads(raw or b"null"), (time.monotonic() - t0) * 1000


# ---- a refused reload changes nothing ------------------------------------------------------

def served_certificate(port):
    """The certificate (DER) the gateway's TLS listener shows for a.test."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=T) as raw:
        with ctx.wrap_socket(raw, server_hostname="a.test") as tls:
            return tls.getpeercert(binary_form=True)


def der(pem_path):
    with open(pem_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def test_a_reload_refused_for_a_backend_it_cannot_resolve_keeps_the_old_certificate(tmp_path):
    """A reload read the new certificates and put them in force before it
    resolved the backends: one then refused for a name that does not
    resolve answered "the running config is unchanged" while the listener
    already showed the new certificate (and the pools' new TLS settings
    were in force). A file with both wrong gave the certificate's reason
    alone."""
    cert, key = make_cert(str(tmp_path), "a.test", "ec")
    old = der(cert)
    b = Backend("blue")
    s = gateway([b.addr], listener_extra="tls:\n  certificates:\n    - { cert: %s, key: %s }"
                % (cert, key))
    try:
        assert served_certificate(s.port) == old
        os.rename(cert, cert + ".old")
        make_cert(str(tmp_path), "a.test", "ec")   # a new key and certificate, same files
        new = der(cert)
        assert new != old
        bad = s.text.replace(b.addr, "no.such.host.invalid:9")
        line = next(i for i, x in enumerate(bad.split("\n")) if "no.such.host" in x) + 1
        unresolved = ('%s:%d:18: pools.blue.backends[0].address: cannot resolve '
                      '"no.such.host.invalid": ' % (s.cfg.name, line))
        missing = str(tmp_path / "missing.pem")
        with open(s.cfg.name, "w") as f:
            f.write(bad.replace("cert: " + cert, "cert: " + missing))
        status, body, _ = call(s.admin_port, "POST", "/api/v1/reload")
        assert status == 400 and len(body["errors"]) == 2, body
        assert body["errors"][0].startswith(unresolved), body
        assert "cannot read certificate file %s" % missing in body["errors"][1], body
        with open(s.cfg.name, "w") as f:
            f.write(bad)
        status, body, _ = call(s.admin_port, "POST", "/api/v1/reload")
        assert status == 400 and len(body["errors"]) == 1, body
        assert body["errors"][0].startswith(unresolved), body
        assert served_certificate(s.port) == old, "a refused reload swapped the certificate"
        # The same certificate files with a backend that resolves: now it is swapped.
        with open(s.cfg.name, "w") as f:
            f.write(s.text)
        assert call(s.admin_port, "POST", "/api/v1/reload")[:2] == \
            (200, {"status": "reloaded", "config_generation": 2})
        assert served_certificate(s.port) == new
    finally:
        stop_all(s, b)

