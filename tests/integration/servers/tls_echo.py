#!/usr/bin/python3
"""A TLS backend for the gateway's backend-TLS tests: HTTP/1.1 and WebSocket echo.

Speaks only TLS (Python's ssl module, certificate and key from --cert/--key).
A plain HTTP request is answered with JSON telling what the TLS layer saw:
the server name the client sent (SNI, null if none), the ALPN protocol,
whether the session was resumed, the TLS version, the TCP peer port (so a
test can tell connections apart), the request's index on its connection and
the target. Keep-alive is the default; "X-Echo-Close: 1" closes after the
answer. A WebSocket upgrade is answered with 101 and every text or binary
message is sent back; a close is answered with a close.
"""
import argparse
import json
import ssl
import struct
import sys

from wire import Reader, serve_forever, ws_accept



class Conn(Reader):
    def __init__(self, sock, peer):
        super().__init__(sock)
        self.peer = peer

    def head(self):
        method, target, _, pairs = self.read_head()
        return method, target, {name.lower(): value for name, value in pairs}

    def tls_facts(self, target, index):
        return {
            "sni": getattr(self.sock, "sni_seen", None),
            "alpn": self.sock.selected_alpn_protocol(),
            "reused": self.sock.session_reused,
            "version": self.sock.version(),
            "peer_port": self.peer[1],
            "index": index,
            "target": target,
        }

    def http(self, method, target, headers, index):
        n = int(headers.get("content-length", "0"))
        if n:
            self.take(n)
        body = json.dumps(self.tls_facts(target, index)).encode()
        close = headers.get("x-echo-close") == "1"
        self.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n%s\r\n" %
                          (len(body), b"Connection: close\r\n" if close else b"") + body)
        return not close

    def send_frame(self, opcode, data):
        n = len(data)
        if n < 126:
            hdr = bytes([0x80 | opcode, n])
        elif n < 65536:
            hdr = bytes([0x80 | opcode, 126]) + struct.pack("!H", n)
        else:
            hdr = bytes([0x80 | opcode, 127]) + struct.pack("!Q", n)
        self.sock.sendall(hdr + data)

    def websocket(self, headers):
        accept = ws_accept(headers["sec-websocket-key"]).encode()
        self.sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        while True:
            b0, data = self.frame()
            opcode = b0 & 0x0F
            if opcode == 8:
                self.send_frame(8, data[:2])
                return
            if opcode == 9:
                self.send_frame(10, data)
            elif opcode in (1, 2):
                self.send_frame(opcode, data)

    def serve(self):
        index = 0
        while True:
            method, target, headers = self.head()
            if headers.get("upgrade", "").lower() == "websocket":
                self.websocket(headers)
                return
            if not self.http(method, target, headers, index):
                return
            index += 1


def handle(ctx, raw, peer):
    try:
        sock = ctx.wrap_socket(raw, server_side=True)
    except (OSError, ssl.SSLError):
        raw.close()
        return
    try:
        Conn(sock, peer).serve()
    except (EOFError, OSError, ValueError, KeyError):
        pass
    finally:
        sock.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    args = ap.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(["http/1.1"])

    def on_sni(sock, name, _ctx):
        sock.sni_seen = name

    ctx.sni_callback = on_sni
    serve_forever("tls_echo", "127.0.0.1", args.port, lambda raw, peer: handle(ctx, raw, peer),
                  backlog=128)


if __name__ == "__main__":
    sys.exit(main())
