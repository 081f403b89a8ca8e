#!/usr/bin/python3
"""A raw-socket WebSocket backend that misbehaves on purpose, one way per run:

  --mode bad-accept   answers 101 with a wrong Sec-WebSocket-Accept
  --mode masked       a correct handshake, then a masked text frame (servers must not mask)
  --mode opcode3      a correct handshake, then a frame with reserved opcode 3
  --mode rsv          a correct handshake, then a text frame with RSV1 set (nothing negotiated)
  --mode slow-101     waits --pause seconds before its 101, then after the hello answers the
                      client's first (small, masked) frame with a text frame "got <payload>"
  --mode split-frame  a correct handshake, the hello, then the first half of a 2,000-byte
                      binary frame of b"s"; the second half only once the gateway sends
                      something (its close), then a close 1000 of its own
  --mode flood-reset  a correct handshake, the hello, then 64 KiB binary frames until the
                      gateway stops taking them for half a second; then a reset (SO_LINGER 0)
  --mode stall-read   a correct handshake, the hello, then no reading for --pause seconds;
                      then it reads (and drops) what comes until the peer closes
  --pause S           wait S seconds between the hello and the bad frame (default: none,
                      so both may arrive in the gateway's first read, behind the 101)

Any mode: a request with X-Backend-Status: N is refused with status N, a
Content-Length body "N refused by pyraw" and X-Backend: pyraw.

Each connection gets "hello" as a valid text frame first (except bad-accept),
then the bad frame; the server then reads until the peer closes.
"""
import argparse
import socket
import struct
import time

from wire import serve_forever, ws_accept

def serve(sock, mode, pause):
    try:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return
            data += chunk
        key, status = "", None
        for line in data.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-key":
                key = value.strip()
            if name.strip().lower() == "x-backend-status":
                status = int(value)
        if status is not None:
            body = b"%d refused by pyraw\n" % status
            sock.sendall(b"HTTP/1.1 %d Refused\r\nX-Backend: pyraw\r\nContent-Length: %d\r\n"
                         b"Set-Cookie: a=b\r\n\r\n%s" % (status, len(body), body))
            while sock.recv(65536):
                pass
            return
        acc = ws_accept(key)
        if mode == "slow-101" and pause:
            time.sleep(pause)
            pause = 0
        if mode == "bad-accept":
            acc = ws_accept("AAAAAAAAAAAAAAAAAAAAAA==")
        sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % acc).encode())
        if mode != "bad-accept":
            sock.sendall(b"\x81\x05hello")
        if pause:
            time.sleep(pause)
        if mode == "masked":
            key = b"\x01\x02\x03\x04"
            sock.sendall(b"\x81\x83" + key + bytes(c ^ key[i % 4] for i, c in enumerate(b"bad")))
        elif mode == "opcode3":
            sock.sendall(b"\x83\x03bad")
        elif mode == "rsv":
            sock.sendall(b"\xc1\x03bad")
        elif mode == "flood-reset":
            frame = b"\x82\x7f" + (65536).to_bytes(8, "big") + b"f" * 65536
            sock.settimeout(0.5)
            try:
                for _ in range(2000):   # 128 MiB at most; the buffers fill long before
                    sock.sendall(frame)
            except socket.timeout:
                pass
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        elif mode == "split-frame":
            frame = b"\x82\x7e" + (2000).to_bytes(2, "big") + b"s" * 2000
            sock.sendall(frame[:1004])
            if not sock.recv(65536):
                return
            sock.sendall(frame[1004:] + b"\x88\x02\x03\xe8")
        elif mode == "slow-101":
            got = data.split(b"\r\n\r\n", 1)[1]
            while len(got) < 2 or len(got) < 6 + (got[1] & 0x7F):
                chunk = sock.recv(65536)
                if not chunk:
                    return
                got += chunk
            n, key = got[1] & 0x7F, got[2:6]
            payload = b"got " + bytes(c ^ key[i % 4] for i, c in enumerate(got[6:6 + n]))
            sock.sendall(bytes([0x81, len(payload)]) + payload)
        while sock.recv(65536):
            pass
    except OSError:
        pass
    finally:
        sock.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--mode", required=True,
                    choices=["bad-accept", "masked", "opcode3", "rsv", "slow-101",
                             "split-frame", "flood-reset", "stall-read"])
    ap.add_argument("--pause", type=float, default=0.0,
                    help="seconds between the hello and the bad frame (slow-101: before the 101)")
    a = ap.parse_args()
    serve_forever("ws_raw", a.host, a.port, lambda s, _peer: serve(s, a.mode, a.pause))


if __name__ == "__main__":
    main()
