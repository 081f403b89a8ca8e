"""TLS termination and the PROXY protocol against hostile or unusual clients.

What test_tls.py does not already cover: reading paused and resumed with part
of a TLS record taken off the socket (both towards clients and towards TLS
backends), and PROXY headers of every shape a balancer may send in front of
TLS. Certificates are made with the openssl command; clients are Python's
ssl module over memory BIOs, so the test decides every byte that is sent.
"""
import os
import select
import socket
import ssl
import threading
import time

import pytest

import harness as H
from test_tls import make_cert, tls_backend, tls_config, backend_tls_config


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return make_cert(str(tmp_path_factory.mktemp("conf-certs")), "a.test", "ec")


def cpu_seconds(pid):
    """User plus system CPU time of process pid (all its threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class TlsClient:
    """A TLS client over memory BIOs on a blocking socket: the test sends
    exactly the bytes it wants (a PROXY header before the ClientHello)."""

    def __init__(self, port, pre=b"", sndbuf=None):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="a.test")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if sndbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sndbuf)
        self.sock.settimeout(H.T)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(pre)
        for _ in range(20):
            try:
                self.obj.do_handshake()
                return
            except ssl.SSLWantReadError:
                self.sock.sendall(self.out.read())
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("closed during the handshake")
                self.inc.write(data)
        raise AssertionError("handshake did not end")

    def encrypt(self, data):
        self.obj.write(data)
        return self.out.read()

    def send(self, data):
        self.sock.sendall(self.encrypt(data))

    def recv(self, timeout=H.T):
        """Some plaintext, or b"" at the end (close_notify, EOF)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.obj.read(1 << 20)
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                raise TimeoutError("nothing to read")
            data = self.sock.recv(65536)
            if not data:
                return b""
            self.inc.write(data)

    def close(self):
        self.sock.close()


def fill_until_blocked(sock, chunks, limit=400):
    """Send chunks() until the socket has taken nothing for 0.5 s; returns
    (frames sent, bytes of the last one not yet sent). Bounded by `limit`."""
    sock.setblocking(False)
    try:
        for n in range(limit):
            pending = chunks()
            while pending:
                if not select.select([], [sock], [], 0.5)[1]:
                    return n, pending
                try:
                    pending = pending[sock.send(pending):]
                except BlockingIOError:
                    pass
        raise AssertionError("the peer never pushed back after %d frames" % limit)
    finally:
        sock.setblocking(True)
        sock.settimeout(H.T)


def read_echoes(recv, want, timeout=20):
    got = 0
    deadline = time.monotonic() + timeout
    while got < want:
        assert time.monotonic() < deadline, "only %d of %d bytes came back" % (got, want)
        chunk = recv()
        assert chunk, "ended after %d of %d bytes" % (got, want)
        got += len(chunk)
    return got


def test_a_tls_client_paused_with_half_a_record_read_is_read_again(cert):
    """A WebSocket client over TLS sends faster than the backend takes its
    echoes back: sluice pauses reading it, at a moment when the bytes it has
    read end inside a TLS record. When it resumes, that partial record used to
    count as input in hand, so it never read the socket again and re-kicked
    itself on a zero timer: a worker at 100% CPU and a connection stuck for
    good (not even SIGTERM ended it)."""
    backend = H.Backend("blue")
    port = H.free_port()
    sl = H.Sluice(tls_config(port, backend, [cert]), port=port)
    try:
        c = TlsClient(port, sndbuf=65536)
        c.send(H.upgrade_request(host="a.test"))
        head = b""
        while b"hello blue" not in head:
            chunk = c.recv()
            assert chunk, head
            head += chunk
        payload = os.urandom(256 * 1024)
        frame = H.ws_frame(2, payload)
        sent, rest = fill_until_blocked(c.sock, lambda: c.encrypt(frame))
        # Everything is stuck behind the client that does not read: sluice
        # must be idle, not spinning.
        cpu0 = cpu_seconds(sl.pid)
        time.sleep(1.0)
        assert cpu_seconds(sl.pid) - cpu0 < 0.4, "sluice busy while every side is paused"
        writer = threading.Thread(target=c.sock.sendall, args=(rest,), daemon=True)
        writer.start()
        echo_len = len(payload) + 10   # 2 + 8 bytes of unmasked header
        read_echoes(c.recv, (sent + 1) * echo_len)
        writer.join(H.T)
        c.close()
        assert sl.alive()
    finally:
        H.stop_all(sl, backend)


def test_a_tls_backend_paused_with_half_a_record_read_is_read_again(cert):
    """The same towards a TLS backend: a plain client that does not read its
    echoes makes sluice stop reading the backend, with part of a record in
    hand; it must read the backend again once the client reads."""
    backend = tls_backend(cert)
    port = H.free_port()
    sl = H.Sluice(backend_tls_config(port, backend, "tls: true\ntls_ca_file: %s\n"
                                     "tls_sni: a.test" % cert[0]), port=port)
    try:
        ws = H.WsConn(port)
        assert ws.status == 101, ws.response
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        payload = os.urandom(256 * 1024)
        frame = H.ws_frame(2, payload)
        sent, rest = fill_until_blocked(ws.sock, lambda: frame)
        cpu0 = cpu_seconds(sl.pid)
        time.sleep(1.0)
        assert cpu_seconds(sl.pid) - cpu0 < 0.4, "sluice busy while every side is paused"
        writer = threading.Thread(target=ws.sock.sendall, args=(rest,), daemon=True)
        writer.start()
        for _ in range(sent + 1):
            assert ws.read_message() == (2, payload)
        writer.join(H.T)
        ws.sock.close()
        assert sl.alive()
    finally:
        H.stop_all(sl, backend)
