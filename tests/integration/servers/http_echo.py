#!/usr/bin/python3
"""A header-echo HTTP/1.1 backend for the gateway's integration tests.

Every request is answered with JSON describing what arrived, exactly as it
arrived: method, target, version, the header fields in order (names as sent),
the TCP peer (so a test can see which backend connection carried a request),
the request's index on its connection, and the decoded body length. Keep-alive
is the default; pipelined requests are answered in order.

Special requests:
  X-Echo-Status: N      answer with status N (204 and 304: no body, no length)
  X-Echo-Close: 1       answer with Connection: close and close
  POST /echo-body       the body of the answer is the request body
  GET /big?n=N          the answer's body is N bytes: 0, 1, ..., 255, 0, ...
  HEAD                  the headers a GET would get, no body

--log FILE appends "conn PORT" when a connection is accepted and
"req PORT METHOD TARGET BODYLEN" per request (flushed at once), so a test can
assert a request never reached the backend, not even as a connection.
"""
import argparse
import json
import sys
import threading

from wire import Reader, serve_forever

PATTERN = bytes(range(256)) * 4096


class Conn(Reader):
    def __init__(self, sock, peer, log):
        super().__init__(sock)
        self.peer, self.log = peer, log

    def read_body(self, headers):
        h = {k.lower(): v for k, v in headers}
        if "chunked" in h.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size = int(self.line().split(b";")[0], 16)
                if size == 0:
                    while self.line() != b"":
                        pass
                    return body
                body += self.take(size)
                assert self.take(2) == b"\r\n"
        return self.take(int(h.get("content-length", "0")))


def respond(c, method, target, version, headers, body, seq):
    h = {k.lower(): v for k, v in headers}
    status = int(h.get("x-echo-status", "200"))
    close = h.get("x-echo-close") == "1" or "close" in h.get("connection", "").lower() \
        or version == "HTTP/1.0"
    if target == "/echo-body":
        out = body
    elif target.startswith("/big?n="):
        n = int(target.split("=", 1)[1])
        out = (PATTERN * (n // len(PATTERN) + 1))[:n]
    else:
        out = json.dumps({"method": method, "target": target, "version": version,
                          "headers": headers, "peer": list(c.peer), "seq": seq,
                          "body_bytes": len(body)}).encode()
    lines = ["HTTP/1.1 %d X" % status, "X-Backend: pyecho"]
    no_body = status in (204, 304) or 100 <= status < 200
    if not no_body:
        lines.append("Content-Length: %d" % len(out))
    if close:
        lines.append("Connection: close")
    resp = ("\r\n".join(lines) + "\r\n\r\n").encode()
    if not no_body and method != "HEAD":
        resp += out
    c.sock.sendall(resp)
    return close


def serve(sock, peer, log, lock):
    c = Conn(sock, peer, log)
    seq = 0
    if log:
        with lock, open(log, "a") as f:
            f.write("conn %d\n" % peer[1])
    try:
        while True:
            method, target, version, headers = c.read_head()
            body = c.read_body(headers)
            if log:
                with lock, open(log, "a") as f:
                    f.write("req %d %s %s %d\n" % (peer[1], method, target, len(body)))
            if respond(c, method, target, version, headers, body, seq):
                break
            seq += 1
    except (EOFError, OSError, ValueError, AssertionError):
        pass
    finally:
        sock.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--log")
    a = ap.parse_args()
    lock = threading.Lock()
    serve_forever("http_echo", a.host, a.port, lambda s, peer: serve(s, peer, a.log, lock),
                  backlog=512)


if __name__ == "__main__":
    sys.exit(main())
