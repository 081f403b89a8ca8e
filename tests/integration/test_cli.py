"""The command line: --version, --help, --check, exit codes, signals."""
import os
import signal
import socket
import subprocess
import time

from harness import SLUICE, SRC, Backend, Sluice, config, free_port, stop_all


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
