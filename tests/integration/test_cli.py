"""The command line: --version, --help, --check, exit codes, signals."""
import os
import signal
import socket
import subprocess
import time

import pytest

from harness import SLUICE, SRC, Backend, Sluice, config, free_port, recv_until, stop_all


def run(*args, timeout=20):
    return subprocess.run([SLUICE, *args], capture_output=True, text=True, timeout=timeout)


def test_version_and_help():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("sluice ")
    r = run("--help")
    assert r.returncode == 0
    for word in ("--check", "--config", "exit codes", "SIGHUP"):
        assert word in r.stdout


def test_usage_errors_exit_2():
    assert run().returncode == 2
    assert "no config file" in run().stderr
    assert run("--bogus").returncode == 2
    assert run("-c", "a.yaml", "extra").returncode == 2


def test_check_shipped_config_prints_summary():
    r = run("--check", "-c", os.path.join(SRC, "config", "sluice.yaml"))
    assert r.returncode == 0, r.stderr
    for word in ("listeners:", "0.0.0.0:8080", "pools:", "blue", "green", "services:",
                 "app", "limits:", "timeouts:"):
        assert word in r.stdout


def test_check_bad_config_reports_every_error_with_position(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("listeners:\n  - address: 0.0.0.0:99999\nworkres: 2\npools: {}\n"
                   "services:\n  app:\n    routes: [ { host: \"*\" } ]\n    pools: [nope]\n")
    r = run("--check", "-c", str(bad))
    assert r.returncode == 2
    lines = [l for l in r.stderr.splitlines() if l.startswith(str(bad))]
    assert len(lines) >= 3, r.stderr
    assert any(":2:" in l and "listeners[0].address" in l for l in lines), lines
    assert any("workres" in l and 'did you mean "workers"' in l for l in lines), lines
    assert any("nope" in l for l in lines), lines


def test_missing_file_exits_2(tmp_path):
    r = run("--check", "-c", str(tmp_path / "nothing.yaml"))
    assert r.returncode == 2 and "cannot read" in r.stderr


def test_port_in_use_exits_1(tmp_path):
    backend = Backend("blue")
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        p = Sluice(config(port, {"blue": [backend.addr]}), port=None, wait=False)
        assert p.proc.wait(timeout=10) == 1
        assert "listener 127.0.0.1:%d" % port in p.output()
    finally:
        holder.close()
        backend.stop()


def test_second_instance_on_the_same_port_exits_1_and_the_first_keeps_every_client():
    """The listeners set SO_REUSEPORT so the workers can share a port; the
    kernel would let a second sluice of the same user join it and take a share
    of the clients. It must refuse to start instead, and the first one must
    still get every connection."""
    blue, green = Backend("blue"), Backend("green")
    port = free_port()
    first = Sluice(config(port, {"blue": [blue.addr]}, workers=2), port)
    second = None
    try:
        second = Sluice(config(port, {"green": [green.addr]}), port=None, wait=False)
        assert second.proc.wait(timeout=10) == 1
        out = second.output()
        assert "listener 127.0.0.1:%d: address already in use" % port in out, out
        for i in range(40):   # spread over source ports: a shared port would hand some to green
            c = socket.create_connection(("127.0.0.1", port), timeout=5,
                                         source_address=("127.0.0.%d" % (2 + i % 8), 0))
            c.sendall(b"GET /%d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % i)
            assert b"hello blue" in recv_until(c, b"hello blue")
            c.close()
    finally:
        if second:
            second.stop()
        stop_all(first, blue, green)


def localhost_is_127_0_0_1():
    """What sluice's resolver (getaddrinfo, first answer) makes of "localhost"."""
    first = socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)[0]
    return first[4][0] == "127.0.0.1"


@pytest.mark.skipif(not localhost_is_127_0_0_1(), reason="localhost resolves to ::1 first here")
def test_two_listeners_naming_one_address_exit_1_with_both_named():
    """"localhost:P" and "127.0.0.1:P" pass the config check (one is a name,
    resolved at start) but are one address: the start names both."""
    backend = Backend("blue")
    port = free_port()
    text = config(port, {"blue": [backend.addr]}).replace(
        "listeners:\n", "listeners:\n  - address: \"localhost:%d\"\n" % port, 1)
    p = Sluice(text, port=None, wait=False)
    try:
        assert p.proc.wait(timeout=10) == 1
        out = p.output()
        assert ("listener 127.0.0.1:%d: the same address as listeners[0] (localhost:%d, at 2:14);"
                " expected an address of its own" % (port, port)) in out, out
    finally:
        p.stop()
        backend.stop()


def test_sigterm_exits_0_and_sighup_validates(tmp_path):
    backend = Backend("blue")
    port = free_port()
    s = Sluice(config(port, {"blue": [backend.addr]}), port)
    try:
        # A broken file on SIGHUP is refused, with its error, and sluice keeps serving.
        with open(s.cfg.name, "a") as f:
            f.write("bogus_key: 1\n")
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while "reload refused" not in s.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "reload refused" in s.output() and "bogus_key" in s.output()
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        assert s.alive()
    finally:
        stop_all(s, backend)


def refused_at_its_key(tmp_path, extra, key, value, msg):
    """A config with `extra` (whose line starts "  " + key) is refused by
    --check and by a start alike: exit 2, one error at value's place."""
    path = tmp_path / "sluice.yaml"
    text = config(free_port(), {"blue": ["127.0.0.1:9"]}, extra=extra)
    path.write_text(text)
    lines = text.split("\n")
    line = next(i for i, l in enumerate(lines) if l.startswith("  " + key)) + 1
    where = "%s:%d:%d: " % (path, line, lines[line - 1].index(value) + 1)
    for argv in (["--check", "-c", str(path)], ["-c", str(path)]):
        r = run(*argv, timeout=10)
        assert r.returncode == 2, (argv, r.stdout, r.stderr)
        assert r.stderr == where + msg + "\nsluice: %s: 1 error\n" % path, (argv, r.stderr)


def test_check_refuses_admin_settings_that_would_stop_the_start(tmp_path):
    """--check once said ok to admin settings that the start then refused
    (exit 2), and to a state file that could never be written (every API
    change then answered as kept, and lost at the next restart). Each is
    an error at its key, exit 2, from --check and from a start alike."""
    missing = tmp_path / "missing"
    a_file = tmp_path / "a-file"
    a_file.write_text("x\n")
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    port = free_port()
    cases = [
        ('address: "0.0.0.0:%d"' % port, '"0.0.0.0',
         "admin.address: 0.0.0.0:%d is not a loopback address: refusing to expose the admin "
         "API without admin.token_file (a bearer token)" % port),
        ("token_file: %s/token" % missing, str(missing),
         "admin.token_file: cannot read %s/token: No such file or directory" % missing),
        ('token_file: ""', '""',
         'admin.token_file: expected a file name (got ""; leave the key out for no token)'),
        ("state_file: %s/state.json" % missing, str(missing),
         "admin.state_file: directory %s: No such file or directory (expected an existing, "
         "writable directory)" % missing),
        ("state_file: %s/state.json" % a_file, str(a_file),
         "admin.state_file: %s is not a directory (expected an existing, writable directory)"
         % a_file),
        ("state_file: %s" % tmp_path, str(tmp_path),
         "admin.state_file: %s is a directory (expected a file name)" % tmp_path),
    ]
    for key, value, msg in cases:
        refused_at_its_key(tmp_path, "admin:\n  %s" % key, key, value, msg)
    # The admin API named by a host name, on a listener's port: the loader compares IP
    # literals only, and the start failed on the listener's bind, blaming another process.
    lport = free_port()
    path = tmp_path / "sluice.yaml"
    text = config(lport, {"blue": ["127.0.0.1:9"]}, extra='admin:\n  address: "localhost:%d"'
                                                           % lport)
    path.write_text(text)
    lines = text.split("\n")
    line = next(i for i, l in enumerate(lines) if "localhost" in l) + 1
    lline = next(i for i, l in enumerate(lines) if "- address" in l) + 1
    for argv in (["--check", "-c", str(path)], ["-c", str(path)]):
        r = run(*argv, timeout=10)
        assert r.returncode == 2, (argv, r.stdout, r.stderr)
        assert r.stderr == "%s:%d:%d: admin.address: localhost:%d is also listeners[0] (at " \
            "%d:%d); expected a port of its own\nsluice: %s: 1 error\n" % (
                path, line, lines[line - 1].index('"localhost') + 1, lport, lline,
                lines[lline - 1].index('"127') + 1, path), (argv, r.stderr)
    # The access log's file: a start failed to open it with exit 1 and no place after
    # --check had said ok (and "" went as a file name).
    for key, value, msg in [
        ("path: %s/access.log" % missing, str(missing),
         "access_log.path: directory %s: No such file or directory (expected an existing, "
         "writable directory)" % missing),
        ("path: %s" % tmp_path, str(tmp_path),
         "access_log.path: %s is a directory (expected a file name)" % tmp_path),
        ('path: ""', '""', 'access_log.path: expected a file name (got ""; leave path out, or '
                           'null, for standard output)'),
    ]:
        refused_at_its_key(tmp_path, "access_log:\n  %s" % key, key, value, msg)
    # The same keys, right, pass: a writable directory, a token off loopback.
    path = tmp_path / "sluice.yaml"
    path.write_text(config(free_port(), {"blue": ["127.0.0.1:9"]},
                           extra='admin:\n  address: "0.0.0.0:%d"\n  token_file: %s\n'
                                 '  state_file: %s/state.json' % (port, token, tmp_path)))
    r = run("--check", "-c", str(path))
    assert r.returncode == 0 and r.stdout.endswith("%s: ok\n" % path), r.stderr
