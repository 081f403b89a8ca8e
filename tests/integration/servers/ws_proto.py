#!/usr/bin/python3
"""A websockets 10.4 backend that negotiates: it chooses the subprotocol
"chat.v2" when the client offers it (else the first offered), negotiates
permessage-deflate when the client offers it (--deflate), and echoes every
message. Its first message is "proto=<chosen or none> ext=<extension names>",
so a test sees what the backend agreed to."""
import argparse
import asyncio

import websockets


def select(client_offered, server_supported):
    if "chat.v2" in client_offered:
        return "chat.v2"
    return client_offered[0] if client_offered else None


async def handler(ws, path=None):
    exts = ",".join(e.name for e in ws.extensions) or "none"
    await ws.send("proto=%s ext=%s" % (ws.subprotocol or "none", exts))
    async for msg in ws:
        await ws.send(msg)


async def main(a):
    async with websockets.serve(handler, a.host, a.port, subprotocols=["chat.v1", "chat.v2"],
                                select_subprotocol=select, max_size=None,
                                compression="deflate" if a.deflate else None):
        print("ws_proto listening on %s:%d" % (a.host, a.port), flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--deflate", action="store_true")
    asyncio.run(main(ap.parse_args()))
