"""The drain primitive, seen through a graceful shutdown: SIGTERM closes
every WebSocket with 1001 at the configured pace, and every message a client
sent before it received the close frame reaches the backend.
"""
import asyncio
import time

import websockets

from harness import Backend, Sluice, config, free_port

CLIENTS, RATE = 120, 60   # the drain takes about 2 s: the pace binds


async def chatty_client(i, url, sent, closes, ready):
    ws = await websockets.connect(url, compression=None,
                                  local_addr=("127.0.0.%d" % (2 + i % 8), 0))
    assert await asyncio.wait_for(ws.recv(), 10) == "hello blue"
    ready.append(i)
    seq = 0

    async def sender():
        nonlocal seq
        while True:
            try:
                await ws.send("c%d:%d" % (i, seq))
            except websockets.ConnectionClosed:
                return
            sent.append("c%d:%d" % (i, seq))
            seq += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(sender())
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 30)   # echoes
    except websockets.ConnectionClosed as e:
        closes.append((time.monotonic(), e.code, e.reason))
    await task


def test_shutdown_drains_paced_and_loses_nothing(tmp_path):
    log = tmp_path / "messages.txt"
    backend = Backend("blue", "--log-messages", str(log))
    port = free_port()
    sluice = Sluice(config(port, {"blue": [backend.addr]}, workers=2,
                           service_extra="admission: off\ndrain: { grace: 5s }",
                           extra="shutdown: { drain_rate: %d/s, timeout: 20s }" % RATE), port)
    sent, closes, ready = [], [], []
    try:
        async def run():
            tasks = [asyncio.create_task(chatty_client(i, sluice.url, sent, closes, ready))
                     for i in range(CLIENTS)]
            # Every client upgraded (a slow build takes longer than a second
            # for 120), then a second of traffic before the signal.
            deadline = time.monotonic() + 30
            while len(ready) < CLIENTS and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert len(ready) == CLIENTS, "only %d clients upgraded" % len(ready)
            await asyncio.sleep(1.0)
            t0 = time.monotonic()
            sluice.proc.send_signal(15)
            await asyncio.gather(*tasks)
            return t0
        t0 = asyncio.run(asyncio.wait_for(run(), 60))
        assert sluice.proc.wait(timeout=20) == 0
    finally:
        sluice.stop()
        backend.stop()
    assert len(closes) == CLIENTS
    assert {c[1] for c in closes} == {1001}
    span = max(c[0] for c in closes) - t0
    assert span >= (CLIENTS / RATE) * 0.7, "drain took %.2fs: not paced" % span
    received = set(log.read_text().split())
    missing = [m for m in sent if m not in received]
    assert missing == [], "%d messages lost, e.g. %s" % (len(missing), missing[:5])
    assert len(sent) > CLIENTS * 50
    assert "all connections closed" in sluice.output()
