#!/usr/bin/python3
"""A raw-socket WebSocket backend that negotiates whatever it is told to, for
tests of subprotocol and extension checks and of the RSV rules they bring.

Each connection is steered by headers of its upgrade request (the gateway
forwards them):

  X-Answer-Protocol: P      the 101 carries "Sec-WebSocket-Protocol: P", whatever was offered
  X-Answer-Extensions: E    the 101 carries "Sec-WebSocket-Extensions: E", whatever was offered
  X-Send: HEX               bytes (hex) written right after the 101, in a write of their own
  X-Tag: T                  names the connection in the log below

After the 101 it echoes every frame exactly as it came (FIN, RSV bits, opcode,
payload; unmasked, as a server must), control frames included, until a close
frame, which it answers with the same status code. It compresses nothing and
decompresses nothing: an RSV1 frame goes back as it came.

It writes one line to stderr per frame it receives, "T got fin=F rsv=R op=O
payload=HEX", and "T close CODE" (or "T close none") for a close, so a test can
see what the gateway let through and which close code it sent.
"""
import argparse
import binascii
import struct
import sys

from wire import Reader, serve_forever, ws_accept



def log(line):
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class Conn(Reader):
    def head(self):
        """The request's headers, by lower-case name."""
        _, _, _, headers = self.read_head()
        return {name.lower(): value for name, value in headers}


def unmasked(b0, payload):
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", b0, n) + payload
    if n < 65536:
        return struct.pack("!BBH", b0, 126, n) + payload
    return struct.pack("!BBQ", b0, 127, n) + payload


def serve(sock):
    c = Conn(sock)
    try:
        h = c.head()
        tag = h.get("x-tag", "-")
        head = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                % ws_accept(h["sec-websocket-key"]))
        if "x-answer-protocol" in h:
            head += "Sec-WebSocket-Protocol: %s\r\n" % h["x-answer-protocol"]
        if "x-answer-extensions" in h:
            head += "Sec-WebSocket-Extensions: %s\r\n" % h["x-answer-extensions"]
        sock.sendall((head + "\r\n").encode())
        if h.get("x-send"):
            sock.sendall(binascii.unhexlify(h["x-send"]))
        while True:
            b0, payload = c.frame()
            op = b0 & 0xF
            log("%s got fin=%d rsv=%d op=%d payload=%s" % (tag, b0 >> 7, (b0 >> 4) & 7, op,
                                                           payload.hex()))
            if op == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                log("%s close %s" % (tag, code if code is not None else "none"))
                sock.sendall(unmasked(0x88, payload[:2]))
                while sock.recv(65536):
                    pass
                return
            sock.sendall(unmasked(b0, payload))
    except (OSError, EOFError, KeyError):
        pass
    finally:
        sock.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    a = ap.parse_args()
    serve_forever("ws_ext", a.host, a.port, lambda s, _peer: serve(s))


if __name__ == "__main__":
    main()
