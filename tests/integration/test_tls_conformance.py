"""TLS termination against hostile or unusual clients.

What test_tls.py does not already cover: reading paused and resumed with part
of a TLS record taken off the socket (both towards clients and towards TLS
backends), TLS 1.3 KeyUpdate messages sent the way a real client does and as
a flood, a flood of TLS 1.2 renegotiation attempts, and SNI names written
absolute (with a trailing dot). Certificates are made with the openssl command; clients are
Python's ssl module over memory BIOs, so the test decides every byte that is
sent. For KeyUpdates and renegotiation, which Python's ssl cannot send, the
test does the record layer itself (TLS 1.3: RFC 8446, 5.2 and 7; TLS 1.2 with
AES-GCM: RFC 5246, 6.3, and RFC 5288) from the secrets Python logs, using the
cryptography package.
"""
import hashlib
import hmac
import os
import select
import socket
import ssl
import struct
import tempfile
import threading
import time

import pytest

import harness as H
from test_tls import make_cert, tls_backend, tls_config, backend_tls_config, peer_cn


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

    def __init__(self, port, pre=b"", sndbuf=None, ctx=None):
        self.first = b""   # the first bytes the server sent (its ServerHello)
        if ctx is None:
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
                self.first = self.first or data
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


# ---- TLS 1.3 KeyUpdate ----

def expand_label(secret, label, length, algorithm):
    """HKDF-Expand-Label (RFC 8446, 7.1) with an empty context."""
    from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
    full = b"tls13 " + label
    info = struct.pack("!HB", length, len(full)) + full + b"\x00"
    return HKDFExpand(algorithm, length, info).derive(secret)


class Tls13Keys:
    """One direction's traffic keys: protect or open records, update keys."""

    def __init__(self, secret, suite):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
        self.hash = hashes.SHA384() if suite.endswith("SHA384") else hashes.SHA256()
        self.aead_class = ChaCha20Poly1305 if "CHACHA20" in suite else AESGCM
        self.key_len = 16 if "AES_128" in suite else 32
        self.set(secret)

    def set(self, secret):
        self.secret, self.seq = secret, 0
        self.aead = self.aead_class(expand_label(secret, b"key", self.key_len, self.hash))
        self.iv = expand_label(secret, b"iv", 12, self.hash)

    def update(self):
        self.set(expand_label(self.secret, b"traffic upd", self.hash.digest_size, self.hash))

    def nonce(self):
        n = bytes(a ^ b for a, b in zip(self.iv, struct.pack("!4xQ", self.seq)))
        self.seq += 1
        return n

    def seal(self, inner, content_type):
        aad = b"\x17\x03\x03" + struct.pack("!H", len(inner) + 1 + 16)
        return aad + self.aead.encrypt(self.nonce(), inner + bytes([content_type]), aad)

    def open(self, header, body):
        inner = self.aead.decrypt(self.nonce(), body, header).rstrip(b"\x00")
        return inner[-1], inner[:-1]


def keylogged_client(port, ciphers=None, **ctx_settings):
    """A TlsClient (no certificate check) whose handshake secrets Python
    wrote to a key log: (client, key log lines)."""
    fd, keylog = tempfile.mkstemp(prefix="keylog-")
    os.close(fd)
    try:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        for k, v in ctx_settings.items():
            setattr(ctx, k, v)
        if ciphers:
            ctx.set_ciphers(ciphers)
        ctx.keylog_filename = keylog
        tls = TlsClient(port, ctx=ctx)
        with open(keylog) as f:
            return tls, f.readlines()
    finally:
        os.unlink(keylog)


class Tls13Client:
    """A TLS 1.3 connection whose handshake Python does; after it, the test
    writes and reads records itself, so it may send KeyUpdates."""

    def __init__(self, port):
        self.tls, lines = keylogged_client(port, minimum_version=ssl.TLSVersion.TLSv1_3)
        suite = self.tls.obj.cipher()[0]
        secrets = dict(line.split()[::2] for line in lines if line.count(" ") == 2)
        self.sock = self.tls.sock
        self.sock.sendall(self.tls.out.read())   # the client's Finished, if still here
        self.send_keys = Tls13Keys(bytes.fromhex(secrets["CLIENT_TRAFFIC_SECRET_0"]), suite)
        self.recv_keys = Tls13Keys(bytes.fromhex(secrets["SERVER_TRAFFIC_SECRET_0"]), suite)
        self.buf = b""

    def key_update(self, n=1):
        """n KeyUpdates that ask for the server's too, in one write."""
        out = []
        for _ in range(n):
            out.append(self.send_keys.seal(b"\x18\x00\x00\x01\x01", 22))
            self.send_keys.update()
        self.sock.sendall(b"".join(out))

    def send(self, data):
        self.sock.sendall(self.send_keys.seal(data, 23))

    def key_update_with_empty_data(self, n):
        """n KeyUpdates, each followed by an application data record of no bytes."""
        out = []
        for _ in range(n):
            out.append(self.send_keys.seal(b"\x18\x00\x00\x01\x01", 22))
            self.send_keys.update()
            out.append(self.send_keys.seal(b"", 23))
        self.sock.sendall(b"".join(out))

    def read_until(self, marker, timeout=H.T):
        """Application data up to marker; counts the server's KeyUpdates.
        Returns (data, key updates seen), or (data, None) at the end."""
        data, updates = b"", 0
        deadline = time.monotonic() + timeout
        while marker not in data:
            while len(self.buf) >= 5 and len(self.buf) >= 5 + struct.unpack("!H", self.buf[3:5])[0]:
                n = 5 + struct.unpack("!H", self.buf[3:5])[0]
                header, body, self.buf = self.buf[:5], self.buf[5:n], self.buf[n:]
                assert header[0] == 23, header
                kind, inner = self.recv_keys.open(header, body)
                if kind == 23:
                    data += inner
                elif kind == 22 and inner[0] == 24:
                    updates += 1
                    self.recv_keys.update()
                elif kind == 21:
                    return data, None   # an alert: close_notify, or an error
            if marker in data:
                break
            left = deadline - time.monotonic()
            assert left > 0, "no %r in %r" % (marker, data[-200:])
            if not select.select([self.sock], [], [], left)[0]:
                continue
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return data, None
            self.buf += chunk
        return data, updates


def test_key_updates_between_data_are_answered(cert):
    """A client updating its keys between requests, asking for the server's
    too each time: every update is answered and the connection goes on."""
    backend = H.Backend("blue")
    port = H.free_port()
    sl = H.Sluice(tls_config(port, backend, [cert]), port=port)
    try:
        c = Tls13Client(port)
        for i in range(20):
            c.key_update(8)
            c.send(b"GET /k%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % i)
            data, updates = c.read_until(b"hello blue GET /k%d" % i)
            assert updates == 8, (i, updates)
        c.sock.close()
        assert sl.alive()
    finally:
        H.stop_all(sl, backend)


@pytest.mark.parametrize("empty_records", [False, True], ids=["bare", "with empty records"])
def test_a_flood_of_key_updates_is_cut_off(cert, empty_records):
    """A client that sends KeyUpdates without end and never reads made
    sluice queue an answer to each: its memory grew by what the client sent
    (measured: 2.8 MiB per 100,000, without bound). More than 32 answers in a
    row with no application data from the client now end the connection. An
    application data record of no bytes after each KeyUpdate is no data:
    it reset the count, and the flood went on for ever."""
    backend = H.Backend("blue")
    port = H.free_port()
    sl = H.Sluice(tls_config(port, backend, [cert]), port=port)
    try:
        c = Tls13Client(port)
        c.send(H.upgrade_request(host="a.test"))
        assert c.read_until(b"hello blue")[1] == 0
        try:
            for _ in range(50):
                if empty_records:
                    c.key_update_with_empty_data(100)
                else:
                    c.key_update(100)
                time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            pass   # cut off while still sending
        _, updates = c.read_until(b"never sent", timeout=5)
        assert updates is None, "the connection is still open"
        c.sock.close()
        # Everybody else is served as before.
        c = Tls13Client(port)
        c.key_update(1)
        c.send(b"GET /after HTTP/1.1\r\nHost: a.test\r\n\r\n")
        assert c.read_until(b"hello blue GET /after")[1] == 1
        c.sock.close()
        assert sl.alive()
    finally:
        H.stop_all(sl, backend)


def tls12_prf(secret, label, seed, n):
    """The TLS 1.2 PRF with SHA-256 (RFC 5246, 5)."""
    out, a = b"", label + seed
    while len(out) < n:
        a = hmac.new(secret, a, hashlib.sha256).digest()
        out += hmac.new(secret, a + label + seed, hashlib.sha256).digest()
    return out[:n]


class Tls12Client:
    """A TLS 1.2 AES-128-GCM connection whose handshake Python does; after it
    the test seals its own records (only the client's direction)."""

    def __init__(self, port):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        self.tls, lines = keylogged_client(port, maximum_version=ssl.TLSVersion.TLSv1_2,
                                           ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
        line = [l.split() for l in lines if l.startswith("CLIENT_RANDOM ")][0]
        self.sock = self.tls.sock
        self.sock.sendall(self.tls.out.read())
        client_random, master = bytes.fromhex(line[1]), bytes.fromhex(line[2])
        server_random = self.tls.first[11:43]   # record header 5, message header 4, version 2
        keys = tls12_prf(master, b"key expansion", server_random + client_random, 40)
        self.aead, self.salt = AESGCM(keys[:16]), keys[32:36]
        self.seq = 1   # 0 was the client's Finished

    def seal(self, data, content_type):
        explicit = struct.pack("!Q", self.seq)
        self.seq += 1
        aad = explicit + struct.pack("!BHH", content_type, 0x0303, len(data))
        body = explicit + self.aead.encrypt(self.salt + explicit, data, aad)
        return struct.pack("!BHH", content_type, 0x0303, len(body)) + body


def read_to_end(sock, timeout):
    """Bytes until the peer ends the connection; None if it has not by then."""
    data, deadline = b"", time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            return None
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def test_a_flood_of_tls12_renegotiations_is_cut_off(cert):
    """TLS 1.2: a ClientHello after the handshake is refused with a warning
    alert and the connection goes on; sent without end by a client that
    never reads, each one made sluice queue an alert (1,000 of them: 1,000
    alerts, and the connection still up). A few are answered, a flood ends
    the connection."""
    backend = H.Backend("blue")
    port = H.free_port()
    sl = H.Sluice(tls_config(port, backend, [cert]), port=port)
    hello = b"\x01\x00\x00\x00"   # a handshake header saying ClientHello
    request = b"GET /r HTTP/1.1\r\nHost: a.test\r\n\r\n"
    try:
        c = Tls12Client(port)
        c.sock.sendall(b"".join(c.seal(hello, 22) for _ in range(10)) + c.seal(request, 23))
        assert H.recv_until(c.sock, b"\x17\x03\x03")   # the answer to the request
        c.sock.sendall(b"".join(c.seal(hello, 22) for _ in range(1000)))
        assert read_to_end(c.sock, 5) is not None, "the connection is still open"
        c.sock.close()
        assert sl.alive()
    finally:
        H.stop_all(sl, backend)


def test_an_sni_name_with_a_trailing_dot_picks_its_certificate(tmp_path):
    """"b.test." is b.test written absolute (some clients send the dot their
    user typed): it got the default certificate, a.test's."""
    d = str(tmp_path)
    a, b = make_cert(d, "a.test", "ec"), make_cert(d, "b.test", "ec")
    backend = H.Backend("blue")
    port = H.free_port()
    sl = H.Sluice(tls_config(port, backend, [a, b]), port=port)
    try:
        ctx = ssl.create_default_context(cafile=b[0])
        ctx.check_hostname = False   # Python would compare "b.test." with the name
        with socket.create_connection(("127.0.0.1", port), timeout=H.T) as raw:
            with ctx.wrap_socket(raw, server_hostname="B.Test.") as s:
                assert dict(x[0] for x in s.getpeercert()["subject"])["commonName"] == "b.test"
        assert peer_cn(port, "b.test", b[0])[0] == "b.test"
        assert peer_cn(port, "a.test", a[0])[0] == "a.test"
    finally:
        H.stop_all(sl, backend)


def test_a_kept_alive_client_s_close_notify_is_answered_with_ours(cert):
    """RFC 8446 6.1: each side sends close_notify before it closes its write
    side. A kept-alive client between requests that sent its close_notify
    got a bare TCP close back (the WebSocket and half-close paths answered;
    this one closed at once)."""
    backend = H.Backend("blue")
    port = H.free_port()
    sl = H.Sluice(tls_config(port, backend, [cert]), port=port)
    c = None
    try:
        c = TlsClient(port)
        c.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got:
            got += c.recv()
        assert got.startswith(b"HTTP/1.1 200"), got[:100]
        head, body = got.split(b"\r\n\r\n", 1)
        length = int([l.split(b":", 1)[1] for l in head.split(b"\r\n")
                      if l.lower().startswith(b"content-length:")][0])
        while len(body) < length:   # the whole answer: the connection idles now
            body += c.recv()
        try:
            c.obj.unwrap()   # our close_notify, into the out BIO
        except ssl.SSLWantReadError:
            pass
        c.sock.sendall(c.out.read())
        end = None
        deadline = time.monotonic() + 5
        while end is None and time.monotonic() < deadline:
            try:
                c.obj.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                end = "close_notify"
                break
            except ssl.SSLError as e:
                end = repr(e)
                break
            if not select.select([c.sock], [], [], 0.5)[0]:
                continue
            data = c.sock.recv(65536)
            if not data:
                end = "bare TCP close"
                break
            c.inc.write(data)
        assert end == "close_notify", end
    finally:
        if c:
            c.close()
        H.stop_all(sl, backend)
