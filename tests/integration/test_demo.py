"""The README's run command works as written: scripts/demo.sh builds, starts
blue and green and sluice on config/sluice.yaml, and a WebSocket client gets
"hello blue" through it. (It uses the demo's fixed ports 8080, 9001, 9002.)
"""
import asyncio
import os
import signal
import subprocess
import urllib.request

import websockets

from harness import BUILD, SRC, wait_port


def test_demo_script_serves_websockets_and_http():
    env = dict(os.environ, BUILD_DIR=BUILD, DEMO_SECONDS="20")
    proc = subprocess.Popen([os.path.join(SRC, "scripts", "demo.sh")], cwd=SRC, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        wait_port("127.0.0.1", 8080, proc, timeout=120)
        wait_port("127.0.0.1", 9001, proc, timeout=10)

        async def hello():
            async with websockets.connect("ws://127.0.0.1:8080/", compression=None) as ws:
                first = await asyncio.wait_for(ws.recv(), 10)
                await ws.send("are you there")
                return first, await asyncio.wait_for(ws.recv(), 10)
        assert asyncio.run(hello()) == ("hello blue", "are you there")
        with urllib.request.urlopen("http://127.0.0.1:8080/page", timeout=10) as r:
            assert r.status == 200 and r.read().startswith(b"hello blue GET /page")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        out = proc.stdout.read()
        proc.stdout.close()
    assert "sluice stopped" in out, out[-2000:]
    # It advertises what this config serves: ws:// on 8080, and no wss:// (the TLS
    # listener in config/sluice.yaml is a commented example).
    assert "sluice is running on ws://127.0.0.1:8080/" in out, out[-2000:]
    assert "wss://localhost:8443" not in out, out[-2000:]
