"""What the helper servers here share: buffered reading of an HTTP/1.1
connection (and the WebSocket frames after an upgrade), the handshake's
accept value, and the listen-and-serve loop."""
import base64
import hashlib
import socket
import struct
import threading

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_accept(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def serve_forever(name, host, port, handle, backlog=64):
    """Listen on host:port, say so (harness.PyServer waits for the line), and
    serve each connection with handle(sock, peer) in a thread of its own."""
    ls = socket.create_server((host, port), backlog=backlog)
    print("%s listening on %s:%d" % (name, host, port), flush=True)
    while True:
        s, peer = ls.accept()
        threading.Thread(target=handle, args=(s, peer), daemon=True).start()


class Reader:
    """Bytes from sock, read as the caller needs them: lines, counts, a head."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def take(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_head(self):
        """(method, target, version, [(name, value), ...]) of the next request."""
        while b"\r\n\r\n" not in self.buf:
            self.fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        return method, target, version, headers

    def frame(self):
        """The next WebSocket frame: (its first byte, its payload unmasked)."""
        b0, b1 = self.take(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.take(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.take(8))[0]
        key = self.take(4) if b1 & 0x80 else b"\0\0\0\0"
        data = bytearray(self.take(n))
        for i in range(n):
            data[i] ^= key[i % 4]
        return b0, bytes(data)
