"""The admin API probed as a hostile or careless client would: bodies whose
strings hold what C strings cannot, bearer tokens no client can send, and
`sluice ctl` saying why a request was refused.

Each test starts the real binary on loopback (test_admin's helpers), talks
to it with raw sockets or `sluice ctl`, and stops it by PID.
"""
import json
import select
import socket
import subprocess
import threading
import time

from harness import SLUICE, T, HttpReader, Sluice, config, free_port, stop_all, wait_until
from test_admin import Admin, admin_config, ctl, start

ADMISSION = "admission: { rate: 100/s, burst: 10 }"


def test_a_nul_in_a_body_string_is_refused_not_cut_short():
    """A \\u0000 in a key or a value once reached handlers that read C
    strings: {"burst\\u0000": 55} passed the unknown-field check as "burst"
    and was then never found (200, nothing changed), and "50/s\\u0000junk"
    set the rate to 50/s. Now both are bad JSON, with the escape's offset."""
    s = start(admission=ADMISSION)
    try:
        a = Admin(s.admin_port)
        path = "/api/v1/services/app/admission"
        cases = [(rb'{"burst\u0000": 55}', 7), (rb'{"rate": "50/s\u0000junk"}', 14),
                 (rb'{"to": "green\u0000x"}', 13)]
        for body, off in cases:
            target = path if b'"to"' not in body else "/api/v1/services/app/deploys"
            status, err = a.json("PUT" if target == path else "POST", target, body)
            assert (status, err) == (400, {"error": "bad JSON at byte %d: \\u0000 in a string "
                                                    "(not accepted here)" % off}), body
        status, got = a.json("GET", path)
        assert status == 200 and (got["limits"]["rate"], got["limits"]["burst"]) == (100, 10), got
        assert a.json("GET", "/api/v1/services/app/deploys/current")[0] == 404
        # other escapes still decode: the body is read, and its field refused by name
        status, err = a.json("POST", "/api/v1/reload", rb'{"\u00e9\u0001": 1}')
        assert (status, err) == (400, {"error": 'unknown field "\u00e9\x01"'})
        a.close()
    finally:
        stop_all(s)


def test_a_token_no_header_can_carry_is_refused_at_start_and_by_ctl(tmp_path):
    """A token file "secret \\n" was accepted at start, but a header value
    loses its trailing white space (and the server skips spaces after
    "Bearer"): every request got 401, `sluice ctl` with the same file
    included. Such a token (white space at an end, a control character) is
    refused now, by a start and by ctl, like a token of two lines."""
    why = ("the token begins or ends with white space or holds a control character "
           "(no Authorization header can carry it whole)")
    for i, content in enumerate([b"secret \n", b" secret\n", b"secret\t\r\n", b"sec\x01ret\n",
                                 b"sec\x7fret"]):
        tok = tmp_path / ("tok%d" % i)
        tok.write_bytes(content)
        path, line = admin_config(tmp_path, "admin: { address: 127.0.0.1:%d, token_file: %s }"
                                  % (free_port(), tok))
        p = subprocess.run([SLUICE, "-c", str(path)], capture_output=True, text=True, timeout=T)
        assert p.returncode == 2, (content, p.stderr)
        assert ": admin.token_file: %s: %s\n" % (tok, why) in p.stderr, p.stderr
        rc, out, err = ctl("--token-file", str(tok), "status", admin_port=free_port())
        assert (rc, out, err) == (1, "", "sluice ctl: --token-file: %s: %s\n" % (tok, why))
    # white space inside the token is carried whole, from the file through ctl
    tok = tmp_path / "inner"
    tok.write_bytes(b"sec ret\tx\n")
    s = start(admin_extra=", token_file: %s" % tok)
    try:
        rc, out, err = ctl("--token-file", str(tok), "status", admin_port=s.admin_port)
        assert rc == 0 and json.loads(out)["version"] == "0.1.0", err
        a = Admin(s.admin_port)
        assert a.request("GET", "/api/v1/status", token="sec ret\tx").status == 200
        assert a.request("GET", "/api/v1/status", token="sec ret").status == 401
        a.close()
    finally:
        stop_all(s)


def test_ctl_says_why_a_reload_or_a_backend_list_was_refused():
    """`sluice ctl reload` of a bad file printed only "reload refused; the
    running config is unchanged": the FILE:LINE:COL reasons the server sent
    in "errors" were dropped. They follow the error line now, one a line."""
    s = start()
    try:
        with open(s.cfg.name, "a") as f:
            f.write("bogus_key: 1\nworkers: 0\n")
        lines = open(s.cfg.name).read().count("\n")
        rc, out, err = ctl("reload", admin_port=s.admin_port)
        assert (rc, out) == (1, ""), err
        assert err.splitlines()[0] == ("sluice ctl: HTTP 400 Bad Request: reload refused; the "
                                       "running config is unchanged")
        reasons = err.splitlines()[1:]
        assert len(reasons) >= 2, err
        assert reasons[0].startswith('%s:%d:1: bogus_key: unknown key "bogus_key"'
                                     % (s.cfg.name, lines - 1)), err
        assert any(r.startswith("%s:%d:" % (s.cfg.name, lines)) for r in reasons[1:]), err
        # the reasons are the server's, in its order
        a = Admin(s.admin_port)
        status, body = a.json("POST", "/api/v1/reload")
        assert status == 400 and body["errors"] == reasons
        a.close()
    finally:
        stop_all(s)


def test_an_absolute_form_target_is_routed_by_its_path(tmp_path):
    """RFC 9112 3.2.2: a server must accept "GET http://host/path". The
    admin server looked the whole target up as a path: 404 for every one,
    and the token check never reached a handler."""
    tok = tmp_path / "token"
    tok.write_text("t0k\n")
    s = start(admin_extra=", token_file: %s" % tok)
    try:
        a = Admin(s.admin_port)
        base = "http://127.0.0.1:%d" % s.admin_port
        assert a.json("GET", base + "/healthz") == (200, {"status": "ok"})
        assert a.json("GET", "HTTPS://admin/readyz") == (200, {"status": "ready"})
        # the token and the route table apply to it as to any other target
        assert a.request("GET", base + "/api/v1/pools/blue").status == 401
        status, pool = a.json("GET", base + "/api/v1/pools/blue?x=1", token="t0k")
        assert status == 200 and pool["name"] == "blue", pool
        assert a.json("GET", base + "/nope", token="t0k") == (404, {"error": "unknown resource"})
        assert a.json("GET", base, token="t0k") == (404, {"error": "unknown resource"})
        r = a.request("DELETE", base + "/healthz")
        assert (r.status, r.header("allow")) == (405, "GET, HEAD")
        a.close()
    finally:
        stop_all(s)


def test_a_query_string_on_an_action_is_refused_not_ignored():
    """No resource takes a query string, and bodies refuse unknown fields so
    that a typo is not a silent no-op; "POST /api/v1/reload?dry_run=1"
    still reloaded for real and "PUT .../admission?burst=5" answered 200
    having changed nothing. A GET ignores one (cache-busters)."""
    s = start(admission=ADMISSION)
    try:
        a = Admin(s.admin_port)
        refused = {"error": "a query string is not taken here: send the fields in the JSON body"}
        assert a.json("POST", "/api/v1/reload?dry_run=1") == (400, refused)
        assert a.json("GET", "/api/v1/status?x")[1]["config_generation"] == 1
        assert a.json("PUT", "/api/v1/services/app/admission?burst=5", b'{"rate": 20}') == \
            (400, refused)
        status, got = a.json("GET", "/api/v1/services/app/admission?fresh=1")
        assert status == 200 and (got["limits"]["rate"], got["limits"]["burst"]) == (100, 10)
        assert a.json("POST", "/api/v1/services/app/deploys?to=green", b'{"to": "green"}') == \
            (400, refused)
        assert a.json("GET", "/api/v1/services/app/deploys/current")[0] == 404
        r = a.request("HEAD", "/healthz?probe=1")
        assert (r.status, r.body) == (200, b"")
        # an empty query is no query; the routes still decide 404 and 405 first
        assert a.json("POST", "/api/v1/reload?") == (200, {"status": "reloaded",
                                                           "config_generation": 2})
        assert a.json("POST", "/nope?x=1")[0] == 404
        assert a.request("POST", "/healthz?x=1").status == 405
        a.close()
    finally:
        stop_all(s)


def test_a_deploy_with_both_drain_rate_and_drain_window_is_refused():
    """A drain window sets the drain's rate itself, so a drain_rate sent
    beside one was accepted (201) and silently not the pace in force."""
    s = start(admission=ADMISSION)
    try:
        a = Admin(s.admin_port)
        path = "/api/v1/services/app/deploys"
        status, err = a.json("POST", path, b'{"to": "green", "drain_rate": "5/s", '
                                           b'"drain_window": "10s"}')
        assert (status, err) == (400, {"error": "drain_rate and drain_window: give one or the "
                                                "other (a window sets the rate)"})
        assert a.json("GET", path + "/current")[0] == 404       # nothing started
        assert a.json("GET", "/api/v1/status")[1]["services"][0]["active"] == "blue"
        # either one alone is taken
        status, d = a.json("POST", path, b'{"to": "green", "ramp": "1h", "drain_window": "10s"}')
        assert status == 201 and d["phase"] == "ramp", d
        assert a.json("POST", path + "/current/abort")[0] == 200
        status, d = a.json("POST", path, b'{"to": "green", "ramp": "1h", "drain_rate": "5/s"}')
        assert status == 201 and d["phase"] == "ramp", d
        a.close()
    finally:
        stop_all(s)


def test_a_pool_with_a_long_name_can_be_named_in_a_deploy_and_an_admission_change():
    """The config takes pool names of any length, and GET shows them; the
    API copied a deploy's "to" and an admission change's "pool" into 64-byte
    buffers and answered a 70-byte name "to: ... is required" (400). And a
    name of the wrong type is refused naming what was sent."""
    long = "green-" + "x" * 64
    port, admin_port = free_port(), free_port()
    cfg = config(port, {"blue": ["127.0.0.1:9"], long: ["127.0.0.1:9"]}, workers=1,
                 service_extra=ADMISSION,
                 extra="admin: { address: 127.0.0.1:%d }" % admin_port)
    cfg = cfg.replace("  %s:\n    backends:" % long, "  %s:\n    rate: 50/s\n    backends:" % long)
    s = Sluice(cfg, port)
    try:
        a = Admin(admin_port)
        status, body = a.json("PUT", "/api/v1/services/app/admission",
                              json.dumps({"pool": long, "rate": 10}).encode())
        assert (status, body["pools"][long]["rate"]) == (200, 10), body
        path = "/api/v1/services/app/deploys"
        status, body = a.json("POST", path, json.dumps({"to": long, "ramp": "1h"}).encode())
        assert (status, body["to"]) == (201, long), body
        assert a.json("POST", path + "/current/abort")[0] == 200
        assert a.json("POST", path, b'{"to": 5}') == \
            (400, {"error": "to: expected a pool name (got 5)"})
        assert a.json("POST", path, b'{"to": "blue", "from": []}') == \
            (400, {"error": "from: expected a pool name (got [])"})
        assert a.json("PUT", "/api/v1/services/app/admission", b'{"pool": 1, "rate": 5}') == \
            (400, {"error": "pool: expected a pool name (got 1)"})
        # Bounds that do not fit together say what they were.
        assert a.json("PUT", "/api/v1/services/app/admission",
                      b'{"retry_after_min": "20s", "retry_after_max": "10s"}') == \
            (400, {"error": "retry_after_min (20000 ms) is above retry_after_max (10000 ms)"})
        a.close()
    finally:
        stop_all(s)


def test_ctl_sends_a_pool_name_that_looks_like_a_number_as_a_name():
    """`sluice ctl admission set app pool=2024 ...` sent the pool as the
    number 2024, which the server refuses (a pool name is a string)."""
    port, admin_port = free_port(), free_port()
    cfg = config(port, {"blue": ["127.0.0.1:9"], "2024": ["127.0.0.1:9"]}, workers=1,
                 service_extra=ADMISSION,
                 extra="admin: { address: 127.0.0.1:%d }" % admin_port)
    cfg = cfg.replace('  2024:\n    backends:', '  "2024":\n    rate: 50/s\n    backends:')
    s = Sluice(cfg, port)
    try:
        rc, out, err = ctl("admission", "set", "app", "pool=2024", "rate=7",
                           admin_port=admin_port)
        assert rc == 0, err
        assert json.loads(out)["pools"]["2024"]["rate"] == 7
    finally:
        stop_all(s)


def test_an_admission_put_that_changes_nothing_does_not_pin_the_yaml():
    """PUT .../admission {} answered 200 and marked the limits overridden:
    from then on a reload kept them over the YAML, so an edit of the file's
    burst was silently not applied. A body with no limit is refused now."""
    s = start(admission=ADMISSION)
    try:
        a = Admin(s.admin_port)
        path = "/api/v1/services/app/admission"
        for body in (b"{}", b'{"pool": "blue"}'):
            status, err = a.json("PUT", path, body)
            assert status == 400 and err["error"].startswith("no limit to change"), (body, err)
        assert a.json("GET", "/api/v1/status")[1]["services"][0]["overridden"] == []
        with open(s.cfg.name) as f:
            text = f.read()
        with open(s.cfg.name, "w") as f:
            f.write(text.replace("burst: 10", "burst: 20"))
        assert a.json("POST", "/api/v1/reload")[0] == 200
        assert a.json("GET", path)[1]["limits"]["burst"] == 20
        # a real change still stands over the YAML, as documented
        status, got = a.json("PUT", path, b'{"burst": 7}')
        assert status == 200 and got["limits"]["burst"] == 7, got
        assert a.json("GET", "/api/v1/status")[1]["services"][0]["overridden"] == ["admission"]
        a.close()
    finally:
        stop_all(s)


def test_an_http10_keep_alive_request_is_told_it_is_kept_alive():
    """HTTP/1.0 with "Connection: keep-alive" was kept open but answered
    without "Connection: keep-alive", which such a client reads as "closed
    after the answer" (RFC 9112 C.2.2): it left, and the connection held one
    of the 64 slots until the idle timer."""
    s = start()
    try:
        a = Admin(s.admin_port)
        a.sock.sendall(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = a.reader.read()
        assert (r.status, r.header("connection")) == (200, "keep-alive"), r
        a.sock.sendall(b"GET /readyz HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
        r = a.reader.read()
        assert (r.status, r.header("connection"), r.body) == \
            (200, "keep-alive", b'{"status":"ready"}\n')
        a.sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        r = a.reader.read()
        assert (r.status, r.header("connection")) == (200, "close"), r
        assert a.sock.recv(10) == b""
        a.close()
        a = Admin(s.admin_port)          # HTTP/1.1 kept alive says nothing, as before
        r = a.request("GET", "/healthz")
        assert (r.status, r.header("connection")) == (200, None), r
        a.close()
    finally:
        stop_all(s)


def test_a_reload_after_the_token_file_changed_is_refused(tmp_path):
    """The token is read at start. Rotating it in the same file and
    reloading answered "reloaded", while the old token (perhaps the leaked
    one) still opened the API and the new one got 401. Such a reload is
    refused now, at the key, as a change of the file's name is."""
    tok = tmp_path / "token"
    tok.write_text("old-token\n")
    s = start(admin_extra=", token_file: %s" % tok)
    try:
        text = open(s.cfg.name).read()
        line = text[:text.index("token_file: ")].count("\n") + 1
        col = text.split("\n")[line - 1].index("token_file: ") + len("token_file: ") + 1
        where = "%s:%d:%d: admin.token_file: " % (s.cfg.name, line, col)
        a = Admin(s.admin_port, token="old-token")
        tok.write_text("new-token\n")
        status, body = a.json("POST", "/api/v1/reload")
        assert status == 400 and body["errors"] == [
            where + "the token in the file changed, and the token in force is the one read at "
            "start (it cannot change on reload); restart sluice"], body
        assert a.request("GET", "/api/v1/status", token="new-token").status == 401
        tok.unlink()
        status, body = a.json("POST", "/api/v1/reload")
        assert status == 400 and body["errors"] == [
            where + "cannot read %s: No such file or directory (the token in force, read at "
            "start, is unchanged); restart sluice" % tok], body
        # the token of the start back in its file: the reload goes through
        tok.write_text("old-token\r\n")
        assert a.json("POST", "/api/v1/reload") == (200, {"status": "reloaded",
                                                          "config_generation": 2})
        a.close()
    finally:
        stop_all(s)


def test_connections_that_never_send_a_byte_cannot_shut_the_api_out():
    """64 connections that send nothing held every slot, no token needed,
    for the 60 s idle timeout: /healthz went unanswered and a load balancer
    took the gateway out. A connection silent for 1 s since its accept now
    gives its slot up to a waiting one, the oldest first; one with a request
    under way is chosen only when no silent one is (it has 2 s: see the
    trickling test below), so here it is spared."""
    s = start()
    socks = []
    try:
        busy = socket.create_connection(("127.0.0.1", s.admin_port), timeout=T)
        busy.sendall(b"GET /readyz HTTP/1.1\r\n")          # the oldest, mid-request
        socks = [socket.create_connection(("127.0.0.1", s.admin_port), timeout=T)
                 for _ in range(63)]
        time.sleep(0.2)
        t0 = time.monotonic()
        a = Admin(s.admin_port)
        assert a.json("GET", "/healthz") == (200, {"status": "ok"})
        assert time.monotonic() - t0 < 4
        a.close()
        busy.sendall(b"Host: a\r\n\r\n")
        r = HttpReader(busy).read()
        assert (r.status, r.body) == (200, b'{"status":"ready"}\n')
        busy.close()
    finally:
        for x in socks:
            x.close()
        stop_all(s)


def test_ctl_fails_on_an_answer_cut_short():
    """An answer shorter than its Content-Length (the server died mid-way, a
    reset) was printed as it was, with exit 0: a script took half a status
    for the whole. It is exit 1 now, saying so, and nothing on stdout."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(T)
    port = srv.getsockname()[1]

    def serve():
        c, _ = srv.accept()
        c.settimeout(T)
        c.recv(4096)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"status\":")
        c.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        rc, out, err = ctl("status", admin_port=port)
        assert (rc, out, err) == (1, "", "sluice ctl: 127.0.0.1:%d: the answer was cut short "
                                         "(10 of 100 bytes)\n" % port)
    finally:
        t.join(T)
        srv.close()


class Trickling:
    """n connections from 127.0.0.2..9, each sending one byte of a request
    head every 2 s (it never ends), and coming back at once when closed, as
    an attacker would; `shed` lists the sources of those closed."""
    HEAD = b"GET /api/v1/status HTTP/1.1\r\nHost: a\r\n"

    def __init__(self, port, n=64):
        self.port, self.n = port, n
        self.conns, self.shed = [], []
        self.stop_, self.ready = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(T)

    def _dial(self, src):
        c = socket.create_connection(("127.0.0.1", self.port), timeout=T, source_address=(src, 0))
        c.sendall(self.HEAD[:1])
        return {"sock": c, "src": src, "sent": 1, "at": time.monotonic()}

    def _next_byte(self, x):
        try:
            x["sock"].sendall(self.HEAD[x["sent"]:x["sent"] + 1])
        except OSError:
            return False
        x["sent"], x["at"] = x["sent"] + 1, time.monotonic()
        return True

    def _run(self):
        deadline = time.monotonic() + 30
        for i in range(self.n):
            self.conns.append(self._dial("127.0.0.%d" % (2 + i % 8)))
        self.ready.set()
        while not self.stop_.wait(0.1) and time.monotonic() < deadline:
            gone, _, _ = select.select([x["sock"] for x in self.conns], [], [], 0)
            for k, x in enumerate(self.conns):
                alive = x["sock"] not in gone
                if alive and time.monotonic() - x["at"] >= 2:
                    alive = self._next_byte(x)
                if not alive:                         # shed (or a 408): come back at once
                    x["sock"].close()
                    self.shed.append(x["src"])
                    self.conns[k] = self._dial(x["src"])

    def stop(self):
        self.stop_.set()
        self.thread.join(T)
        for x in self.conns:
            x["sock"].close()


def test_clients_trickling_requests_cannot_shut_the_operator_out():
    """64 connections each sending a byte of a request head every 2 s held
    every slot, no token needed, until the 10 s request deadline, and again
    after each reconnect: the operator's `sluice ctl status` waited in the
    backlog for most of those 10 s. When a client waits for a slot, a
    request still incomplete 2 s after its first byte now gives its slot up,
    the oldest first. The tricklers come from 127.0.0.2..9 (8 each, so no
    per-address cap could be what lets the operator in)."""
    s = start()
    tr = None
    try:
        tr = Trickling(s.admin_port)
        time.sleep(0.5)                       # every slot taken, every request under way
        t0 = time.monotonic()
        rc, out, err = ctl("status", admin_port=s.admin_port)
        took = time.monotonic() - t0
        assert rc == 0 and json.loads(out)["version"] == "0.1.0", (rc, err)
        assert took < 3, took
        # the slot was a trickler's (its thread sees the close within 0.1 s)
        assert wait_until(lambda: tr.shed, timeout=2), "no trickling connection gave its slot up"
    finally:
        if tr is not None:
            tr.stop()
        stop_all(s)


def test_a_slow_body_behind_the_right_token_keeps_its_slot(tmp_path):
    """With a token configured, a request whose head carried it is the
    operator's: its body may take its time (a big backend list on a slow
    link) and it is not shed for a waiting client, though it is the oldest
    request under way; the tricklers around it are."""
    tok = tmp_path / "token"
    tok.write_text("s3cret\n")
    s = start(admin_extra=", token_file: %s" % tok)
    tr = None
    try:
        slow = socket.create_connection(("127.0.0.1", s.admin_port), timeout=T)
        slow.sendall(b"POST /api/v1/reload HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer s3cret"
                     b"\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{")
        time.sleep(0.1)
        tr = Trickling(s.admin_port, 63)
        time.sleep(0.5)
        t0 = time.monotonic()
        rc, out, err = ctl("--token-file", str(tok), "status", admin_port=s.admin_port)
        assert rc == 0 and json.loads(out)["version"] == "0.1.0", (rc, err)
        assert time.monotonic() - t0 < 3
        slow.sendall(b"}")
        r = HttpReader(slow).read("POST")
        assert (r.status, json.loads(r.body)["status"]) == (200, "reloaded"), r
        slow.close()
    finally:
        if tr is not None:
            tr.stop()
        stop_all(s)


def test_the_token_is_judged_per_request_on_a_kept_alive_connection(tmp_path):
    """A request's token is looked at once, when its head is whole, and the
    answer is that request's only: pipelined behind one that carried the
    right token, a request without it, or with a wrong one, is refused; one
    whose body arrives in pieces is judged by its own head."""
    tok = tmp_path / "token"
    tok.write_text("s3cret\n")
    s = start(admin_extra=", token_file: %s" % tok,
              admission="admission: { rate: 100/s, burst: 10 }")
    try:
        c = socket.create_connection(("127.0.0.1", s.admin_port), timeout=T)
        good = b"GET /api/v1/status HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer s3cret\r\n\r\n"
        none = b"GET /api/v1/status HTTP/1.1\r\nHost: a\r\n\r\n"
        wrong = b"GET /api/v1/status HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer s3cre\r\n\r\n"
        c.sendall(good + none + good + wrong + good)
        rd = HttpReader(c)
        assert [rd.read("GET").status for _ in range(5)] == [200, 401, 200, 401, 200]
        # a body in pieces: the token (or its absence) of the head it follows
        a = Admin(s.admin_port)

        def burst():
            status, body = a.json("GET", "/api/v1/services/app/admission", token="s3cret")
            assert status == 200, body
            return body["limits"]["burst"]
        for auth, value, want, now in ((b"Authorization: Bearer s3cret\r\n", 7, 200, 7),
                                       (b"", 8, 401, 7),
                                       (b"Authorization: Bearer s3cret\r\n", 9, 200, 9)):
            c.sendall(b"PUT /api/v1/services/app/admission HTTP/1.1\r\nHost: a\r\n" + auth +
                      b"Content-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"bu")
            time.sleep(0.05)
            c.sendall(b"rst\": %d}" % value)
            r = rd.read("PUT")
            assert r.status == want, (auth, r)
            assert burst() == now
        c.close()
        a.close()
    finally:
        stop_all(s)


def test_ctl_exit_status_by_class(tmp_path):
    """docs/admin-api.md: 0 the server answered 2xx; 1 it answered anything
    else or could not be asked; 2 a usage error. An --admin that is not
    HOST:PORT ("nohost", port 0, a bare IPv6 address) was exit 1, as if the
    gateway were down; it is a usage error now, said before anything is
    sent, and so is an empty --admin (a script's unset variable) that once
    fell back to the default address: another gateway, perhaps."""
    s = start()
    try:
        # 0: answered 2xx
        assert ctl("status", admin_port=s.admin_port)[0] == 0
        # 1: answered, not 2xx (its error on stderr, nothing on stdout)
        rc, out, err = ctl("admission", "get", "nope", admin_port=s.admin_port)
        assert (rc, out, err) == (1, "", 'sluice ctl: HTTP 404 Not Found: no service "nope"\n')
        # 2: usage, the admin address included, whatever comes after it
        for addr in ("nohost", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:99999", "::1:9900",
                     "127.0.0.1:99x"):
            rc, out, err = ctl("--admin", addr, "status")
            assert (rc, out) == (2, ""), (addr, rc, err)
            assert err == ("sluice ctl: --admin \"%s\": expected HOST:PORT (a port from 1 to "
                           "65535; brackets around an IPv6 address)\n" % addr), err
        env = {"SLUICE_ADMIN": "nohost", "PATH": "/usr/bin:/bin"}
        rc, out, err = ctl("status", env=env)
        assert (rc, out) == (2, "") and err.startswith('sluice ctl: $SLUICE_ADMIN "nohost": '), err
        for opt in ("--admin", "--token-file"):
            rc, out, err = ctl(opt, "", "status")
            assert (rc, out, err) == (2, "", 'sluice ctl: %s: expected a value, got ""\n' % opt)
        # 1: could not be asked: a name that does not resolve, nobody listening, no token file
        rc, out, err = ctl("--admin", "no.such.host.invalid:9900", "status")
        assert (rc, out) == (1, "") and err.startswith("sluice ctl: no.such.host.invalid:9900: "), err
        rc, out, err = ctl("--admin", "127.0.0.1:%d" % free_port(), "status")
        assert (rc, out) == (1, "") and "cannot connect" in err, err
        rc, out, err = ctl("--token-file", str(tmp_path / "none"), "status", admin_port=s.admin_port)
        assert (rc, out) == (1, "") and err.startswith("sluice ctl: --token-file: "), err
    finally:
        stop_all(s)


def test_numbers_are_read_as_the_config_reads_them_or_refused_naming_the_field():
    """`sluice ctl` typed a value with strtod: "1." and ".5" went as numbers
    (the config refuses both forms), and a duration in milliseconds was cut
    to whole ones by the API: max_wait 1.5 became 1, 0.5 and slow_start 0.4
    became 0 ("no slow start"), a deploy's ramp 0.5 "at once", without a
    word. ctl now sends a number only for what the config reads as a plain
    decimal, and the API refuses a fraction of a millisecond as the config
    refuses "1.5ms"; every refusal names the field, what it takes and what
    was sent, and for text in the config's notation what is wrong with it,
    as the config says it. A JSON exponent is JSON's own notation for the
    same number: 1e3 is 1000 (in a duration's or a rate's text it is not)."""
    s = start(admission=ADMISSION)
    try:
        a = Admin(s.admin_port)

        def limits():
            return a.json("GET", "/api/v1/services/app/admission")[1]["limits"]
        before = limits()
        want_ms = "a duration like 30s or a whole number of milliseconds"
        want_rate = "a rate like 300/s or a number per second"
        for body, msg in (
                (b'{"max_wait": 1.5}', "max_wait: expected %s (got 1.5)" % want_ms),
                (b'{"max_wait": 0.5}', "max_wait: expected %s (got 0.5)" % want_ms),
                (b'{"slow_start": 0.4}', "slow_start: expected %s (got 0.4)" % want_ms),
                (b'{"retry_after_max": 1000.5}',
                 "retry_after_max: expected %s (got 1000.5)" % want_ms),
                # text in the config's notation: what is wrong with it, in the config's words
                (b'{"max_wait": "0.5ms"}',
                 'max_wait: expected %s (got "0.5ms": finer than a millisecond)' % want_ms),
                (b'{"max_wait": "30us"}', 'max_wait: expected %s (got "30us": unknown unit "us" '
                 '(units: ms, s, m, h))' % want_ms),
                (b'{"retry_after_min": "2 s"}',
                 'retry_after_min: expected %s (got "2 s": a space inside the value)' % want_ms),
                (b'{"rate": "1e2/s"}', 'rate: expected %s (got "1e2/s": an exponent (write the '
                 'number out: 1e3 is 1000))' % want_rate),
                (b'{"per_client_rate": "5s"}',
                 'per_client_rate: expected %s (got "5s": no "/" before the unit)' % want_rate),
                (b'{"rate": "fast"}', 'rate: expected %s (got "fast")' % want_rate),
                (b'{"burst": 2.5}', "burst: expected a whole number (got 2.5)"),
                (b'{"burst": "1e2"}', 'burst: expected a whole number (got "1e2")')):
            assert a.json("PUT", "/api/v1/services/app/admission", body) == (400, {"error": msg})
        assert limits() == before                       # nothing changed
        status, body = a.json("POST", "/api/v1/services/app/deploys",
                              b'{"to": "green", "ramp": 0.5}')
        assert (status, body) == (400, {"error": "ramp: expected %s (got 0.5)" % want_ms})
        status, body = a.json("POST", "/api/v1/services/app/deploys",
                              b'{"to": "green", "drain_window": 0.4}')
        assert (status, body) == (400, {"error": "drain_window: expected %s (got 0.4)" % want_ms})
        assert a.json("GET", "/api/v1/services/app/deploys/current")[0] == 404
        # JSON numbers, exponents included, that are whole where whole is due
        status, body = a.json("PUT", "/api/v1/services/app/admission",
                              b'{"max_wait": 1e3, "burst": 1E2, "rate": 2.5e1}')
        assert status == 200, body
        assert (body["limits"]["max_wait_ms"], body["limits"]["burst"],
                body["limits"]["rate"]) == (1000, 100, 25)
        a.close()
        # sluice ctl: a number only where the config reads a plain decimal
        for v in ("1e2", "1E2", "0x10", "1.", ".5", "+3", " 3", "-3"):
            rc, out, err = ctl("admission", "set", "app", "burst=" + v, admin_port=s.admin_port)
            assert (rc, out, err) == (1, "", 'sluice ctl: HTTP 400 Bad Request: burst: expected '
                                             'a whole number (got "%s")\n' % v), (v, err)
        for key, v, got, want in (("max_wait", ".5", '".5": no digit before the point', want_ms),
                                  ("max_wait", "1.5", "1.5", want_ms),
                                  ("max_wait", "1.", '"1.": no digit after the point', want_ms),
                                  ("rate", ".5", '".5": no digit before the point', want_rate),
                                  ("rate", "1e2", '"1e2": an exponent (write the number out: '
                                   '1e3 is 1000)', want_rate)):
            rc, out, err = ctl("admission", "set", "app", "%s=%s" % (key, v),
                               admin_port=s.admin_port)
            assert (rc, out, err) == (1, "", "sluice ctl: HTTP 400 Bad Request: %s: expected %s "
                                             "(got %s)\n" % (key, want, got)), (key, v, err)
        rc, out, err = ctl("admission", "set", "app", "burst=007", "max_wait=1.5s", "rate=0.5",
                           "retry_after_max=2500", admin_port=s.admin_port)
        assert rc == 0, err
        lim = json.loads(out)["limits"]
        assert (lim["burst"], lim["max_wait_ms"], lim["rate"], lim["retry_after_max_ms"]) == \
            (7, 1500, 0.5, 2500)
    finally:
        stop_all(s)
