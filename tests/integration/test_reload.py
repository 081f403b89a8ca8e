"""Live changes, each shown by its effect on traffic: reload (SIGHUP, the
API, `sluice ctl reload`), admission limits changed through the API, and the
state file that keeps a finished cutover across a restart.
"""
import asyncio
import json
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import websockets

from harness import (SLUICE, Backend, Sluice, ThreadBackend, config, free_port, recv_until,
                     wait_port, stop_all, wait_until)
from test_deploy import Admin


def gateway(tmp_path, admission, extra_admin=""):
    blue, green = Backend("blue"), Backend("green")
    port, admin = free_port(), free_port()
    text = config(port, {"blue": [blue.addr], "green": [green.addr]}, workers=2,
                  service_extra=admission,
                  extra="admin: { address: 127.0.0.1:%d%s }" % (admin, extra_admin))
    return blue, green, Sluice(text, port), Admin(admin), text


def ctl(admin, *args):
    p = subprocess.run([SLUICE, "ctl", "--admin", "127.0.0.1:%d" % admin, *args],
                       capture_output=True, text=True, timeout=20)
    return p.returncode, p.stdout, p.stderr


async def connect_many(url, n):
    t0 = time.monotonic()
    conns = await asyncio.gather(*[websockets.connect(url, compression=None, open_timeout=30)
                                   for _ in range(n)])
    took = time.monotonic() - t0
    for c in conns:
        await c.close()
    return took


ADMISSION = """admission:
  rate: %s
  burst: 1
  queue: { length: 1000, max_wait: 30s, per_client: 0 }
  slow_start: 0"""


def test_bad_reload_keeps_old_config_and_good_reload_applies_new_limits(tmp_path):
    blue, green, s, admin, text = gateway(tmp_path, ADMISSION % "4/s")
    try:
        async def scenario():
            held = await websockets.connect(s.url, compression=None)
            assert await held.recv() == "hello blue"
            # At 4/s, 8 clients take about 1.75 s.
            assert await connect_many(s.url, 8) >= 1.4
            # A broken file is refused with its error lines; nothing changes.
            with open(s.cfg.name, "w") as f:
                f.write(text.replace("rate: 4/s", "rate: fast"))
            status, body = admin.call("POST", "/api/v1/reload")
            assert status == 400 and body["error"].startswith("reload refused")
            assert any(":" in e and "admission.rate" in e and "bad rate" in e
                       for e in body["errors"]), body
            assert await connect_many(s.url, 8) >= 1.4
            # A good file with a higher rate applies to new connections...
            with open(s.cfg.name, "w") as f:
                f.write(text.replace("rate: 4/s", "rate: 2000/s").replace("burst: 1", "burst: 100"))
            rc, out, err = ctl(admin.port, "reload")
            assert rc == 0 and json.loads(out)["status"] == "reloaded", err
            assert await connect_many(s.url, 8) < 1.0
            # ...and the connection opened before both reloads is still there.
            await held.send("still here")
            assert await asyncio.wait_for(held.recv(), 5) == "still here"
            # SIGHUP does the same as the API.
            with open(s.cfg.name, "w") as f:
                f.write(text)
            s.proc.send_signal(1)
            assert wait_until(lambda: "generation 3" in s.output(), 5)
            assert await connect_many(s.url, 8) >= 1.4
            await held.close()
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        stop_all(s, blue, green)


@pytest.mark.parametrize("key, value", [("defer_accept", "0"), ("delayed_ack", "false")])
def test_listener_change_is_refused_until_a_restart(tmp_path, key, value):
    """Listening sockets are opened once at start: a reload that changes one
    of their options is refused with the reason, and the gateway goes on
    serving under the old settings."""
    blue, green, s, admin, text = gateway(tmp_path, "")
    try:
        listener = '  - address: "127.0.0.1:%d"' % s.port
        assert listener in text
        with open(s.cfg.name, "w") as f:
            f.write(text.replace(listener, listener + "\n    %s: %s" % (key, value)))
        status, body = admin.call("POST", "/api/v1/reload")
        assert status == 400 and body["error"].startswith("reload refused"), body
        assert any(key in e and "restart sluice" in e for e in body["errors"]), body

        async def hello():
            async with websockets.connect(s.url, compression=None) as ws:
                return await asyncio.wait_for(ws.recv(), 5)
        assert asyncio.run(hello()) == "hello blue"
    finally:
        stop_all(s, blue, green)


def test_admission_set_through_the_api_paces_new_clients(tmp_path):
    blue, green, s, admin, _ = gateway(tmp_path, ADMISSION % "1000/s")
    try:
        assert asyncio.run(connect_many(s.url, 8)) < 1.0
        rc, out, err = ctl(admin.port, "admission", "set", "app", "rate=4/s", "burst=1")
        assert rc == 0, err
        assert json.loads(out)["limits"]["rate"] == 4
        assert asyncio.run(connect_many(s.url, 8)) >= 1.4
        rc, out, err = ctl(admin.port, "admission", "get", "app")
        limits = json.loads(out)["limits"]
        assert limits["rate"] == 4 and limits["state"]["admitted"] >= 16
        # Unknown fields and bad values are refused, not ignored.
        assert admin.call("PUT", "/api/v1/services/app/admission", {"rtae": 5})[0] == 400
        assert admin.call("PUT", "/api/v1/services/app/admission", {"rate": "fast"})[0] == 400
    finally:
        stop_all(s, blue, green)


def test_restart_after_a_finished_cutover_still_routes_to_green(tmp_path):
    state = tmp_path / "state.json"
    blue, green, s, admin, text = gateway(tmp_path, "admission: off",
                                          extra_admin=", state_file: %s" % state)
    try:
        async def hello(url):
            async with websockets.connect(url, compression=None) as ws:
                return await asyncio.wait_for(ws.recv(), 5)
        assert asyncio.run(hello(s.url)) == "hello blue"
        rc, out, err = ctl(admin.port, "deploy", "start", "app", "--from", "blue", "--to", "green",
                           "--ramp", "0s")
        assert rc == 0, err
        assert wait_until(lambda: admin.call("GET", "/api/v1/services/app/deploys/current")[1]
                          ["phase"] == "done", 10)
        assert asyncio.run(hello(s.url)) == "hello green"
        assert json.loads(state.read_text())["services"]["app"]["active"] == "green"
        # A reload keeps the finished deploy readable (it once answered 404 after any reload).
        s.proc.send_signal(1)
        assert wait_until(lambda: "generation 2" in s.output(), 5)
        status, body = admin.call("GET", "/api/v1/services/app/deploys/current")
        assert status == 200 and body["phase"] == "done" and body["to"] == "green", body
        stop_all(s)
        # The YAML still says blue; the state file wins.
        s = Sluice(text, s.port)
        wait_port("127.0.0.1", admin.port, s.proc)
        assert asyncio.run(hello(s.url)) == "hello green"
        st = admin.call("GET", "/api/v1/status")[1]
        assert st["services"][0]["active"] == "green"
        assert st["services"][0]["overridden"] == ["active"]
    finally:
        stop_all(s, blue, green)


def test_backends_replaced_and_one_drained_through_the_api(tmp_path):
    state = tmp_path / "state.json"
    b2 = Backend("blue2")
    # a reason of 123 bytes ending in a 2-byte character: sent whole (a 63-byte buffer once cut
    # it mid-character, and the client failed the close as bad UTF-8)
    reason = "x" * 121 + "\u00e9"
    blue, green, s, admin, text = gateway(tmp_path, "admission: off\ndrain: { rate: 20/s, grace: 5s,"
                                          " reason: %s }" % reason,
                                          extra_admin=", state_file: %s" % state)
    try:
        async def scenario():
            held = await websockets.connect(s.url, compression=None)
            assert await held.recv() == "hello blue"
            # Pool blue becomes [blue, blue2]: the held connection stays, new ones spread.
            status, body = admin.call("PUT", "/api/v1/pools/blue/backends", {"backends": [
                {"address": blue.addr}, {"address": b2.addr, "weight": 1}]})
            assert status == 200 and [b["address"] for b in body["backends"]] == [blue.addr, b2.addr]
            conns = [await websockets.connect(s.url, compression=None) for _ in range(20)]
            names = [await asyncio.wait_for(c.recv(), 5) for c in conns]
            assert {"hello blue", "hello blue2"} == set(names)
            await held.send("still here")
            assert await asyncio.wait_for(held.recv(), 5) == "still here"
            # A bad list is refused and nothing changes.
            status, body = admin.call("PUT", "/api/v1/pools/blue/backends",
                                      {"backends": [{"address": "nohost.invalid:1"}]})
            assert status == 400 and any("cannot resolve" in e for e in body["errors"]), body
            # Drain blue2: its clients get 1012 at the drain pace; new ones avoid it.
            t0 = time.monotonic()
            status, body = admin.call("POST", "/api/v1/pools/blue/backends/%s/drain" % b2.addr)
            assert status == 202 and body["draining"] is True
            on_b2 = [c for c, n in zip(conns, names) if n == "hello blue2"]
            codes = []
            for c in on_b2:
                try:
                    await asyncio.wait_for(c.recv(), 10)
                except websockets.ConnectionClosed as e:
                    codes.append((e.rcvd.code, e.rcvd.reason))
            took = time.monotonic() - t0
            assert codes == [(1012, reason)] * len(on_b2)
            assert took >= (len(on_b2) - 1) / 20 * 0.7, took
            for c, n in zip(conns, names):
                if n == "hello blue":
                    await c.send("ok")
                    assert await asyncio.wait_for(c.recv(), 5) == "ok"
            fresh = [await websockets.connect(s.url, compression=None) for _ in range(6)]
            assert {await asyncio.wait_for(c.recv(), 5) for c in fresh} == {"hello blue"}
            # Undo: blue2 takes new connections again.
            status, body = admin.call("POST", "/api/v1/pools/blue/backends/%s/drain" % b2.addr,
                                      {"drain": False})
            assert status == 200 and body["draining"] is False
            more = [await websockets.connect(s.url, compression=None) for _ in range(10)]
            assert "hello blue2" in {await asyncio.wait_for(c.recv(), 5) for c in more}
            for c in conns + fresh + more + [held]:
                await c.close()
        asyncio.run(asyncio.wait_for(scenario(), 60))
        # The backends set through the API are kept across a restart.
        assert [b["address"] for b in json.loads(state.read_text())["pools"]["blue"]["backends"]] \
            == [blue.addr, b2.addr]
        stop_all(s)
        s = Sluice(text, s.port)
        wait_port("127.0.0.1", admin.port, s.proc)
        pool = admin.call("GET", "/api/v1/pools/blue")[1]
        assert [b["address"] for b in pool["backends"]] == [blue.addr, b2.addr]
    finally:
        stop_all(s, blue, green, b2)


def test_limits_set_through_the_api_stand_over_the_yaml_at_reload_and_restart(tmp_path):
    """Admission limits the API set (a service's, and a pool's own) are the
    operator's word: a reload keeps them in force, the state file keeps them
    across a restart, and they are checked against the YAML's bounds."""
    state = tmp_path / "state.json"
    blue, green = Backend("blue"), Backend("green")
    port, admin_port = free_port(), free_port()
    text = config(port, {"blue": [blue.addr], "green": [green.addr]}, workers=2,
                  service_extra=ADMISSION % "1000/s",
                  extra="admin: { address: 127.0.0.1:%d, state_file: %s }" % (admin_port, state))
    # blue gets a queue of its own; a second service may use blue only
    text = text.replace("  green:\n", "    rate: 1000/s\n    burst: 100\n  green:\n", 1)
    text = text.replace("admin:", "  other:\n    routes: [ { host: other, path_prefix: / } ]\n"
                        "    pools: [blue]\n    admission: { rate: 100/s }\nadmin:", 1)
    s = Sluice(text, port)
    admin = Admin(admin_port)
    wait_port("127.0.0.1", admin_port, s.proc)
    adm = "/api/v1/services/app/admission"

    def limits(pool=None):
        body = admin.call("GET", adm)[1]
        if pool is None:
            return body["limits"]
        return body["pools"][pool]
    try:
        assert asyncio.run(connect_many(s.url, 8)) < 1.0
        assert admin.call("PUT", adm, {"rate": "5/s", "burst": 2})[0] == 200
        # app's clients for blue wait in blue's own queue: this one paces them
        assert admin.call("PUT", adm, {"pool": "blue", "rate": "4/s", "burst": 1})[0] == 200
        # another service may not change a pool it does not use
        status, body = admin.call("PUT", "/api/v1/services/other/admission",
                                  {"pool": "green", "rate": "1/s"})
        assert (status, body) == (404, {"error": 'service "other" has no pool "green"'})
        # values a config file could not hold are refused, each with its bounds
        for change, words in [({"retry_after_min": 0}, "retry_after_min: out of range (expected 1s..1h"),
                              ({"max_wait": 100000000000}, "max_wait: out of range"),
                              ({"rate": 0}, "rate: out of range (expected 0.001/s.."),
                              ({"per_client": 1000000}, "per_client: out of range"),
                              ({"pool": "blue", "rate": 0}, "rate: a pool's own rate must be above 0/s")]:
            status, body = admin.call("PUT", adm, change)
            assert status == 400 and body["error"].startswith(words), (change, body)
        assert (limits()["rate"], limits()["burst"]) == (5, 2)
        # A reload (the YAML says 1000/s for both) keeps what the API set, in force.
        s.proc.send_signal(1)
        assert wait_until(lambda: "generation 2" in s.output(), 5)
        assert (limits()["rate"], limits()["burst"]) == (5, 2)
        assert (limits("blue")["rate"], limits("blue")["burst"]) == (4, 1)
        assert asyncio.run(connect_many(s.url, 8)) >= 1.4
        st = admin.call("GET", "/api/v1/status")[1]
        assert st["services"][0]["overridden"] == ["admission"]
        assert [p["overridden"] for p in st["pools"]] == [["admission"], []]
        saved = json.loads(state.read_text())
        assert saved["services"]["app"]["admission"]["rate"] == 5
        assert saved["pools"]["blue"]["admission"]["rate"] == 4
        # A restart reads them back from the state file.
        stop_all(s)
        s = Sluice(text, port)
        wait_port("127.0.0.1", admin_port, s.proc)
        assert (limits()["rate"], limits()["burst"]) == (5, 2)
        assert (limits("blue")["rate"], limits("blue")["burst"]) == (4, 1)
        # A state file edited by hand into values no config could hold is not applied.
        stop_all(s)
        saved["services"]["app"]["admission"].update(burst=5000000000, max_wait_ms=-1)
        saved["pools"]["blue"]["admission"]["retry_after_min_ms"] = 0
        saved["pools"]["green"] = {"backends": [{"address": green.addr, "weight": -1}]}
        state.write_text(json.dumps(saved))
        s = Sluice(text, port)
        wait_port("127.0.0.1", admin_port, s.proc)
        assert (limits()["rate"], limits()["burst"]) == (1000, 1)
        assert (limits("blue")["rate"], limits("blue")["burst"]) == (1000, 100)
        out = s.output()
        assert "service app: admission not applied: burst: expected a whole number" in out, out
        assert "pool blue: admission not applied: retry_after_min: out of range" in out, out
        assert "pool green: weight: expected a whole number from 0 to 1000" in out, out
        assert admin.call("GET", "/api/v1/status")[1]["services"][0]["overridden"] == []
    finally:
        stop_all(s, blue, green)


def test_a_backend_drain_goes_on_through_a_reload(tmp_path):
    """The drain's pace lives on the control thread, which a reload replaces:
    the drain must carry over, or the backend's remaining clients stay on a
    backend that takes no new ones."""
    blue, green, s, admin, text = gateway(tmp_path, "admission: off\ndrain: { rate: 4/s, grace: 5s }")
    try:
        async def scenario():
            conns = [await websockets.connect(s.url, compression=None) for _ in range(8)]
            assert {await asyncio.wait_for(c.recv(), 5) for c in conns} == {"hello blue"}
            t0 = time.monotonic()
            status, _ = admin.call("POST", "/api/v1/pools/blue/backends/%s/drain" % blue.addr)
            assert status == 202
            await asyncio.sleep(0.6)
            s.proc.send_signal(1)
            assert wait_until(lambda: "generation 2" in s.output(), 5)

            async def closed(c):
                try:
                    await asyncio.wait_for(c.recv(), 8)
                except websockets.ConnectionClosed as e:
                    return e.rcvd.code if e.rcvd else None
            codes = await asyncio.gather(*[closed(c) for c in conns])
            assert codes == [1012] * 8, codes
            took = time.monotonic() - t0
            assert 1.2 <= took <= 6, took      # 8 at 4/s, the first at once: about 1.75 s
        asyncio.run(asyncio.wait_for(scenario(), 30))
    finally:
        stop_all(s, blue, green)


def test_admin_token_and_state_file_changes_are_refused_until_a_restart(tmp_path):
    """The bearer token is read once, at start: a reload that added a token
    file once answered "reloaded" and left the API open to anyone. Such a
    change (and one of the state file, read at start too) is refused, naming
    the key where it is written, and the running config stays."""
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    blue, green, s, admin, text = gateway(tmp_path, "")
    admin_line = "admin: { address: 127.0.0.1:%d }" % admin.port
    assert admin_line in text
    line_no = text.split("\n").index(admin_line) + 1
    try:
        for extra, key, why in [
                (", token_file: %s" % token, "token_file",
                 "the admin listener cannot change on reload (its bearer token is read at start)"),
                (", state_file: %s" % (tmp_path / "state.json"), "state_file",
                 "the state file cannot change on reload (it is read at start)")]:
            changed = admin_line.replace(" }", extra + " }")
            with open(s.cfg.name, "w") as f:
                f.write(text.replace(admin_line, changed))
            status, body = admin.call("POST", "/api/v1/reload")
            assert status == 400 and body["error"].startswith("reload refused"), body
            col = changed.index(key + ": ") + len(key) + 3     # at the value, as every error
            assert body["errors"] == ["%s:%d:%d: admin.%s: %s; restart sluice"
                                      % (s.cfg.name, line_no, col, key, why)], body
            # Nothing changed: the API answers without a token, as it did, at generation 1.
            status, st = admin.call("GET", "/api/v1/status")
            assert status == 200 and st["config_generation"] == 1
    finally:
        stop_all(s, blue, green)


def test_removing_the_admin_token_on_reload_is_refused(tmp_path):
    """The other way round: a reload must not claim to have opened an API
    that keeps asking for the token, nor to have switched tokens."""
    token, other = tmp_path / "token", tmp_path / "other"
    token.write_text("s3cret\n")
    other.write_text("other\n")
    blue, green, s, _, text = gateway(tmp_path, "", extra_admin=", token_file: %s" % token)
    admin = Admin(int(re.search(r"127\.0\.0\.1:(\d+), token_file", text).group(1)))

    def reload(tok):
        req = urllib.request.Request(admin.base + "/api/v1/reload", data=b"", method="POST",
                                     headers={"Authorization": "Bearer " + tok})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())
    try:
        for new in ("", ", token_file: %s" % other):
            with open(s.cfg.name, "w") as f:
                f.write(text.replace(", token_file: %s" % token, new))
            status, body = reload("s3cret")
            assert status == 400, body
            assert len(body["errors"]) == 1 and body["errors"][0].endswith(
                ": admin.token_file: the admin listener cannot change on reload (its bearer "
                "token is read at start); restart sluice"), body
            # The old token is still the one asked for.
            assert reload("other")[0] == 401
        # The unchanged file reloads.
        with open(s.cfg.name, "w") as f:
            f.write(text)
        assert reload("s3cret") == (200, {"status": "reloaded", "config_generation": 2})
    finally:
        stop_all(s, blue, green)


def test_log_level_and_format_apply_at_reload(tmp_path):
    """log.level and log.format were accepted by a reload and never applied:
    info lines went on after a switch to level error. They apply at once;
    the reload's own line is already written the new way."""
    blue, green, s, admin, text = gateway(tmp_path, "")
    try:
        def lines_after(mark):
            return s.output()[mark:].splitlines()
        with open(s.cfg.name, "w") as f:
            f.write(text + "log: { level: error, format: json }\n")
        # (lines written while the reload is checked, before it applies, are the old way)
        assert admin.call("POST", "/api/v1/reload") == (200, {"status": "reloaded",
                                                             "config_generation": 2})
        mark = len(s.output())
        assert admin.call("POST", "/api/v1/reload")[0] == 200
        # A refused reload logs an error: JSON now. Nothing at info level came out.
        with open(s.cfg.name, "a") as f:
            f.write("bogus_key: 1\n")
        s.proc.send_signal(1)
        assert wait_until(lambda: "bogus_key" in s.output()[mark:], 5)
        out = lines_after(mark)
        assert out and all(json.loads(l)["level"] == "error" for l in out), out
        assert json.loads(out[0])["msg"].startswith("reload refused: "), out
        # Back to info and text: the reload says so in text.
        with open(s.cfg.name, "w") as f:
            f.write(text + "log: { level: info, format: text }\n")
        mark = len(s.output())
        assert admin.call("POST", "/api/v1/reload")[0] == 200
        out = lines_after(mark)
        assert len(out) == 1 and re.match(r"\S+Z info  reload: .* applied \(generation 4\)$",
                                          out[0]), out
    finally:
        stop_all(s, blue, green)


# ---- API-set limits whose queue a reload takes away, and brings back ----------------------

def layered(port, admin_port, state, blue_rate=True, blue=True, app=True, app_admission=True):
    """Pools blue (with a queue of its own at blue_rate) and green; service
    app on both (with admission at app_admission), service other on green,
    whose PUTs make the state file be written again without touching app or
    blue. Nothing needs a backend: the limits are read through the API."""
    lines = ["listeners:", '  - address: "127.0.0.1:%d"' % port, "workers: 1", "pools:"]
    if blue:
        lines += ["  blue:", '    backends: [ { address: "127.0.0.1:9" } ]']
        if blue_rate:
            lines += ["    rate: 1000/s", "    burst: 100"]
    lines += ["  green:", '    backends: [ { address: "127.0.0.1:9" } ]', "services:"]
    if app:
        lines += ["  app:", '    routes: [ { host: "*", path_prefix: / } ]',
                  "    pools: [%s]" % ("blue, green" if blue else "green"),
                  "    active: %s" % ("blue" if blue else "green"),
                  "    admission: %s" % ("{ rate: 1000/s, burst: 10 }" if app_admission else "off")]
    lines += ["  other:", "    routes: [ { host: other, path_prefix: / } ]", "    pools: [green]",
              "    admission: { rate: 100/s }",
              "admin: { address: 127.0.0.1:%d, state_file: %s }" % (admin_port, state)]
    return "\n".join(lines) + "\n"


class Layered:
    """A gateway on layered() configs: reload into another one, restart on the current one."""

    def __init__(self, tmp_path, **shape):
        self.state = tmp_path / "state.json"
        self.port, self.admin = free_port(), Admin(free_port())
        self.text = layered(self.port, self.admin.port, self.state, **shape)
        self.s = Sluice(self.text, self.port)
        wait_port("127.0.0.1", self.admin.port, self.s.proc)

    def reload(self, **shape):
        self.text = layered(self.port, self.admin.port, self.state, **shape)
        with open(self.s.cfg.name, "w") as f:
            f.write(self.text)
        assert self.admin.call("POST", "/api/v1/reload")[0] == 200

    def restart(self, meanwhile=None):
        stop_all(self.s)
        if meanwhile:
            meanwhile()
        self.s = Sluice(self.text, self.port)
        wait_port("127.0.0.1", self.admin.port, self.s.proc)

    def limits(self, pool=None):
        """(rate, burst) in force for app (or its pool's own queue); None: no such queue."""
        status, body = self.admin.call("GET", "/api/v1/services/app/admission")
        if status != 200 or not body["enabled"]:
            return None
        lim = body["limits"] if pool is None else body["pools"].get(pool)
        return None if lim is None else (lim["rate"], lim["burst"])

    def overridden(self, kind, name):
        st = self.admin.call("GET", "/api/v1/status")[1]
        found = [x["overridden"] for x in st[kind] if x["name"] == name]
        return found[0] if found else None

    def save(self):
        """Any change through the API writes the whole state file again."""
        status, body = self.admin.call("PUT", "/api/v1/services/other/admission",
                                       {"rate": "50/s"})
        assert status == 200, body
        return json.loads(self.state.read_text())


def test_a_pools_limits_set_through_the_api_come_back_with_its_own_queue(tmp_path):
    """A pool's own limits set through the API, then a reload where the pool
    has no rate of its own (no queue to hold them): they stay in the state
    file through the next save, and are in force again when a reload (or a
    start) gives the pool its queue back. Before, a reload dropped them: the
    next save wrote the file without them, and the queue came back with the
    YAML's limits."""
    g = Layered(tmp_path)
    try:
        assert g.admin.call("PUT", "/api/v1/services/app/admission",
                            {"pool": "blue", "rate": "4/s", "burst": 1})[0] == 200
        assert g.limits("blue") == (4, 1) and g.overridden("pools", "blue") == ["admission"]
        kept = json.loads(g.state.read_text())["pools"]["blue"]
        assert (kept["admission"]["rate"], kept["admission"]["burst"]) == (4, 1), kept
        # No queue of its own: nothing of it in force, nothing listed as overridden...
        g.reload(blue_rate=False)
        assert g.limits() == (1000, 10) and g.limits("blue") is None
        assert g.overridden("pools", "blue") == []
        # ...but the file keeps the pool's limits as the API set them, through a save.
        assert g.save()["pools"] == {"blue": kept}
        assert "reload: pool blue: no admission queue of its own now; the limits set through " \
            "the API are kept until it has one again" in g.s.output()
        # The queue is back: so are the limits.
        g.reload()
        assert g.limits("blue") == (4, 1) and g.overridden("pools", "blue") == ["admission"]
        assert "reload: pool blue: the admission limits set through the API are in force " \
            "again" in g.s.output()
        assert g.save()["pools"] == {"blue": kept}
        # The same with a restart between: the start keeps what it cannot apply...
        g.reload(blue_rate=False)
        g.restart()
        assert "pool blue: no admission queue of its own now; its limits are not applied " \
            "(kept in the file)" in g.s.output()
        assert g.limits("blue") is None and g.overridden("pools", "blue") == []
        assert g.save()["pools"] == {"blue": kept}
        # ...and a reload applies it.
        g.reload()
        assert g.limits("blue") == (4, 1) and g.overridden("pools", "blue") == ["admission"]
        g.restart()
        assert g.limits("blue") == (4, 1) and g.overridden("pools", "blue") == ["admission"]
        # The API's next word replaces them.
        assert g.admin.call("PUT", "/api/v1/services/app/admission",
                            {"pool": "blue", "rate": "6/s"})[0] == 200
        g.reload(blue_rate=False)
        g.reload()
        assert g.limits("blue") == (6, 1)
        assert g.save()["pools"]["blue"]["admission"]["rate"] == 6
    finally:
        stop_all(g.s)


def test_a_pools_limits_set_through_the_api_come_back_with_the_pool(tmp_path):
    """The same for a pool a reload takes out of the config and a later one
    (or a start) brings back."""
    g = Layered(tmp_path)
    try:
        assert g.admin.call("PUT", "/api/v1/services/app/admission",
                            {"pool": "blue", "rate": "4/s", "burst": 1})[0] == 200
        kept = json.loads(g.state.read_text())["pools"]["blue"]
        g.reload(blue=False)
        assert g.limits("blue") is None and g.overridden("pools", "blue") is None
        assert g.save()["pools"] == {"blue": kept}
        g.reload()
        assert g.limits("blue") == (4, 1) and g.overridden("pools", "blue") == ["admission"]
        # Across a restart without the pool.
        g.reload(blue=False)
        g.restart()
        assert 'no pool "blue" in the config now; its admission limits are kept' in g.s.output()
        assert g.save()["pools"] == {"blue": kept}
        g.reload()
        assert g.limits("blue") == (4, 1) and g.overridden("pools", "blue") == ["admission"]
        assert g.save()["pools"] == {"blue": kept}
    finally:
        stop_all(g.s)


def test_a_services_state_set_through_the_api_comes_back_with_its_admission_and_itself(tmp_path):
    """A service's limits set through the API, through a reload that turns its
    admission off and one that takes the service out of the config: kept in
    the file, in force again when its admission (or the service) is back. A
    finished cutover's active pool (here from the state file at start) comes
    back with the service too."""
    g = Layered(tmp_path)
    try:
        assert g.admin.call("PUT", "/api/v1/services/app/admission",
                            {"rate": "5/s", "burst": 2})[0] == 200
        assert g.limits() == (5, 2) and g.overridden("services", "app") == ["admission"]
        kept = json.loads(g.state.read_text())["services"]["app"]
        assert (kept["admission"]["rate"], kept["admission"]["burst"]) == (5, 2), kept
        # Admission off: nothing of it in force, the file keeps it through a save.
        g.reload(app_admission=False)
        assert g.limits() is None and g.overridden("services", "app") == []
        assert g.save()["services"]["app"] == kept
        g.reload()
        assert g.limits() == (5, 2) and g.overridden("services", "app") == ["admission"]
        # Across a restart with admission off.
        g.reload(app_admission=False)
        g.restart()
        assert g.save()["services"]["app"] == kept
        g.reload()
        assert g.limits() == (5, 2) and g.overridden("services", "app") == ["admission"]
        # The service leaves and comes back, with a finished cutover to green
        # (written as a state file left by an earlier run).
        saved = json.loads(g.state.read_text())
        saved["services"]["app"]["active"] = "green"
        kept = saved["services"]["app"]
        g.restart(meanwhile=lambda: g.state.write_text(json.dumps(saved)))
        assert g.overridden("services", "app") == ["active", "admission"]
        g.reload(app=False)
        assert g.overridden("services", "app") is None
        assert g.save()["services"]["app"] == kept
        g.reload()
        assert g.limits() == (5, 2) and g.overridden("services", "app") == ["active", "admission"]
        st = g.admin.call("GET", "/api/v1/status")[1]
        assert [x["active"] for x in st["services"] if x["name"] == "app"] == ["green"]
        assert g.save()["services"]["app"] == kept
        # Across a restart without the service.
        g.reload(app=False)
        g.restart()
        assert g.save()["services"]["app"] == kept
        g.reload()
        assert g.limits() == (5, 2) and g.overridden("services", "app") == ["active", "admission"]
    finally:
        stop_all(g.s)


# ---- WebSockets across reloads: they move to the new config --------------------------------

def held_configs(admin):
    return admin.metric("sluice_config_generations_held")


def reload_with(s, admin, text):
    """Write the config file anew and reload it: the admin API's answer."""
    with open(s.cfg.name, "w") as f:
        f.write(text)
    return admin.call("POST", "/api/v1/reload")


def test_websockets_move_to_each_new_config_and_obey_its_timeouts(tmp_path):
    """A WebSocket used to hold the config it opened under for its whole life,
    so every reload it lived through stayed in memory. Now it moves to the new
    config: after five reloads only two are held (the one in use and the first,
    which the listeners point into), the connections still relay both ways, and
    the new config's idle timeout applies to them."""
    blue, green, s, admin, text = gateway(tmp_path, "")
    try:
        async def scenario():
            conns = [await websockets.connect(s.url, compression=None) for _ in range(20)]
            for c in conns:
                assert await c.recv() == "hello blue"
            assert held_configs(admin) == 1
            for gen in range(2, 7):
                # a new file each time, same meaning
                assert reload_with(s, admin, text + "# generation %d\n" % gen) == (
                    200, {"status": "reloaded", "config_generation": gen})
                # The workers move their WebSockets when the new runtime reaches them.
                assert wait_until(lambda: held_configs(admin) == 2, 5), held_configs(admin)
            for i, c in enumerate(conns):
                await c.send("after five reloads %d" % i)
                assert await asyncio.wait_for(c.recv(), 5) == "after five reloads %d" % i
            # The default idle timeout is minutes; the new config's is 1 s, and
            # the moved connections are idle from now on.
            assert reload_with(s, admin, text + "timeouts: { idle: 1s }\n")[0] == 200
            t0 = time.monotonic()
            for c in conns:
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(c.recv(), 10)
                assert c.close_code == 1001 and c.close_reason == "idle timeout"
            assert time.monotonic() - t0 < 4
        asyncio.run(scenario())
        assert wait_until(lambda: admin.metric("sluice_ws_open") == 0, 5)
    finally:
        stop_all(s, blue, green)


def test_a_websocket_whose_backend_left_keeps_its_config_until_it_closes(tmp_path):
    """A WebSocket whose backend the new config no longer has cannot move:
    it keeps its own config, still relays, and lets it go when it closes.
    One that can move does, and is counted where cutovers look."""
    blue, green, s, admin, text = gateway(tmp_path, "")
    blue2 = Backend("blue2")
    try:
        async def scenario():
            assert reload_with(s, admin, text + "# generation 2\n")[0] == 200
            stay = [await websockets.connect(s.url, compression=None) for _ in range(3)]
            for c in stay:
                assert await c.recv() == "hello blue"
            assert wait_until(lambda: held_configs(admin) == 2, 5)   # the first, and 2
            # Generation 3: blue's pool has blue2 beside blue, so they move;
            # generation 4: blue is gone, so they stay on 3.
            both = text.replace('- address: "%s"' % blue.addr,
                                '- address: "%s"\n      - address: "%s"' % (blue.addr, blue2.addr))
            assert reload_with(s, admin, both)[0] == 200
            assert wait_until(lambda: held_configs(admin) == 2, 5), held_configs(admin)
            assert reload_with(s, admin, text.replace(blue.addr, blue2.addr))[0] == 200
            time.sleep(0.3)
            assert held_configs(admin) == 3   # the first, 3 (held by the three), 4
            for i, c in enumerate(stay):
                await c.send("still here %d" % i)
                assert await asyncio.wait_for(c.recv(), 5) == "still here %d" % i
            fresh = await websockets.connect(s.url, compression=None)
            assert await fresh.recv() == "hello blue2"
            assert admin.metric("sluice_ws_open") == 4
            for c in stay:
                await c.close()
            assert wait_until(lambda: held_configs(admin) == 2, 5), held_configs(admin)
            await fresh.send("x")
            assert await asyncio.wait_for(fresh.recv(), 5) == "x"
            await fresh.close()
        asyncio.run(scenario())
    finally:
        stop_all(s, blue, green, blue2)


def test_a_websocket_queued_across_a_reload_moves_once_it_is_through(tmp_path):
    """A client waiting in the admission queue during a reload started under
    the old config; once its handshake is through it moves to the new one
    (it would otherwise hold the old config until the next reload)."""
    blue, green, s, admin, text = gateway(tmp_path, ADMISSION % "1/s")
    try:
        async def scenario():
            assert reload_with(s, admin, text + "# generation 2\n")[0] == 200
            first = await websockets.connect(s.url, compression=None)   # the burst's token
            assert await first.recv() == "hello blue"
            queued = asyncio.ensure_future(websockets.connect(s.url, compression=None,
                                                              open_timeout=10))
            for _ in range(40):   # the event loop must run for the client to connect
                if admin.metric("sluice_admission_queue_depth", service="app",
                                queue="service") == 1:
                    break
                await asyncio.sleep(0.05)
            assert admin.metric("sluice_admission_queue_depth", service="app",
                                queue="service") == 1
            assert reload_with(s, admin, text + "# generation 3\n")[0] == 200
            second = await queued
            assert await second.recv() == "hello blue"
            # The first moved at the reload, the second when it was through:
            # generation 2 is gone (1 stays: the listeners point into it).
            assert wait_until(lambda: held_configs(admin) == 2, 5), held_configs(admin)
            for c in (first, second):
                await c.send("x")
                assert await asyncio.wait_for(c.recv(), 5) == "x"
                await c.close()
        asyncio.run(scenario())
    finally:
        stop_all(s, blue, green)


def test_a_kept_alive_backend_connection_follows_the_config_of_its_requests(tmp_path):
    """A kept-alive backend connection reused after a reload stayed in the
    config it was opened under: a connection kept busy held it for good, and
    the access log could not name its backend. It follows each new exchange."""
    blue = Backend("blue")
    port, admin_port = free_port(), free_port()
    log = tmp_path / "access.log"
    text = config(port, {"blue": [blue.addr]}, workers=1,
                  extra="admin: { address: 127.0.0.1:%d }\naccess_log: { path: %s, format: json }"
                  % (admin_port, log))
    s = Sluice(text, port)
    admin = Admin(admin_port)
    try:
        for gen in range(2, 6):
            assert reload_with(s, admin, text + "# generation %d\n" % gen)[0] == 200
            with urllib.request.urlopen(s.base + "/g%d" % gen, timeout=10) as r:
                assert r.status == 200 and b"hello blue" in r.read()
            assert wait_until(lambda: held_configs(admin) == 2, 5), (gen, held_configs(admin))
        assert admin.metric("sluice_backend_connections_reused_total") == 3   # one connection throughout
        lines = wait_until(lambda: [json.loads(l) for l in log.read_text().splitlines()]
                           if log.exists() and len(log.read_text().splitlines()) == 4 else None, 5)
        assert lines and [l["target"] for l in lines] == ["/g2", "/g3", "/g4", "/g5"], lines
        assert all(l["backend"] == blue.addr for l in lines), lines
    finally:
        stop_all(s, blue)


class StreamingBackend(ThreadBackend):
    """Answers every request with a chunked stream: a chunk every 0.1 s for
    3 s (server-sent events, say), then its end."""

    def handle(self, conn):
        recv_until(conn, b"\r\n\r\n")
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        for i in range(30):
            event = b"data: %02d\n\n" % i
            conn.sendall(b"%x\r\n%s\r\n" % (len(event), event))
            time.sleep(0.1)
        conn.sendall(b"0\r\n\r\n")


def test_a_streaming_http_response_moves_to_the_new_config_and_goes_on(tmp_path):
    """An HTTP response under way (an event stream) is as long-lived as a
    WebSocket: it moves to each new config and streams on to its end."""
    stream = StreamingBackend()
    port, admin_port = free_port(), free_port()
    text = config(port, {"blue": [stream.addr]}, workers=1,
                  extra="admin: { address: 127.0.0.1:%d }" % admin_port)
    s = Sluice(text, port)
    admin = Admin(admin_port)
    try:
        assert reload_with(s, admin, text + "# generation 2\n")[0] == 200
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.sendall(b"GET /events HTTP/1.1\r\nHost: a\r\n\r\n")
        got = recv_until(c, b"data: 02")
        for gen in (3, 4):
            assert reload_with(s, admin, text + "# generation %d\n" % gen)[0] == 200
            # Generation 2 (and then 3) is let go while the stream goes on.
            assert wait_until(lambda: held_configs(admin) == 2, 2), (gen, held_configs(admin))
        got += recv_until(c, b"0\r\n\r\n")
        assert b"200 OK" in got and all(b"data: %02d" % i in got for i in range(30)), got
        c.close()
    finally:
        stop_all(s, stream)
