"""The plain HTTP proxy path read as RFC 9110/9112 read it, against the real
binary: what a backend is told and may keep, what the client is told, found
by probing sluice with raw sockets on both sides.

The backend is a thread of the test (harness.ThreadBackend) that answers by
the request's path and records every byte each connection received, so a
test sees exactly what went over the wire and on which backend connection.
"""
import threading

import socket
import time

import pytest

import harness as H


BIG = 8 << 20     # more than the sockets' buffers hold: part of it waits in the gateway


def read_head(conn, buf):
    """One request head (without its body) from conn; returns (head, rest) or (None, buf)."""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return None, buf
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head, rest


def header_value(head, want):
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == want:
            return value.strip()
    return None


def read_more(conn, buf):
    """buf and the next bytes from conn; EOFError (carrying buf) at the end."""
    chunk = conn.recv(65536)
    if not chunk:
        raise EOFError(buf)
    return buf + chunk


def line_end(conn, buf, pos):
    """(index of the CRLF ending the line at pos, buf read on as needed)."""
    while buf.find(b"\r\n", pos) < 0:
        buf = read_more(conn, buf)
    return buf.find(b"\r\n", pos), buf


def chunked_length(conn, buf):
    """How many bytes of buf a chunked body takes, trailer section included,
    reading on from conn as needed: (length, buf)."""
    pos = 0
    while True:
        eol, buf = line_end(conn, buf, pos)
        size = int(buf[pos:eol].split(b";")[0], 16)
        pos = eol + 2
        if size == 0:
            break
        while len(buf) < pos + size + 2:
            buf = read_more(conn, buf)
        pos += size + 2
    while True:     # the trailer section, to its empty line
        eol, buf = line_end(conn, buf, pos)
        empty, pos = eol == pos, eol + 2
        if empty:
            return pos, buf


def body_extent(conn, head, buf):
    """(length, buf): the request body's bytes at the front of buf, read on as needed."""
    if (header_value(head, b"transfer-encoding") or b"").lower().endswith(b"chunked"):
        return chunked_length(conn, buf)
    n = int(header_value(head, b"content-length") or 0)
    while len(buf) < n:
        buf = read_more(conn, buf)
    return n, buf


class ScriptedBackend(H.ThreadBackend):
    """Answers each request by its path (ANSWERS; "/" + anything else gets a
    plain 200 "ok") on a kept-alive connection. An HTTP/1.0 request that did
    not ask for keep-alive gets an HTTP/1.1 answer without Connection: close
    and then the connection closes, as Python's http.server and others do
    (RFC 9112 9.3: the request decides). Paths in EARLY are answered as soon
    as their head is read, before the body; paths in INTERIM get their 1xx
    then. An answer given as a list is sent in parts, each after the first
    once the test sets `gate`. Every request head is kept, with the index of
    the backend connection it came on, and every body (Content-Length or
    chunked, raw) with its path: as far as it came when the connection ended
    before its end."""

    OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
    ANSWERS = {
        b"/overlong": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n"
                      b"Content-Length: 4\r\n\r\nevil",
        b"/head-with-body": b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody",
        b"/early-eof": b"HTTP/1.1 200 OK\r\n\r\nthe body ends with the connection",
        b"/early-big": b"HTTP/1.1 413 Content Too Large\r\nContent-Length: %d\r\n\r\n" % BIG
                       + b"z" * BIG,
        b"/trailer-resp": CHUNKED + b"Trailer: X-Sum\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 7\r\n\r\n",
        b"/ext-resp-at-once": CHUNKED + b"\r\n2;" + b"e" * 8192 + b"\r\nok\r\n0\r\n\r\n",
        b"/ext-resp-later": [CHUNKED + b"\r\n2\r\nok\r\n",
                             b"2;" + b"e" * 8192 + b"\r\nok\r\n0\r\n\r\n"],
        b"/chunked": CHUNKED + b"\r\n3\r\nabc\r\n0\r\n\r\n",
        b"/status-099": b"HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nok",
        b"/status-2": b"HTTP/1.1 2 OK\r\nContent-Length: 2\r\n\r\nok",
        b"/status-0200": b"HTTP/1.1 0200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"/status-600": b"HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nok",
    }
    EARLY = {b"/early-big", b"/early", b"/early-eof"}
    CLOSE = {b"/early-eof"}             # the connection closes after the answer
    INTERIM = {b"/continue": b"HTTP/1.1 100 Continue\r\n\r\n",
               b"/hints": b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"}

    def __init__(self):
        self.requests = []          # (connection index, request head)
        self.bodies = []            # (path, raw body)
        self.gate = threading.Event()
        self.lock = threading.Lock()
        super().__init__()

    def send(self, conn, answer):
        parts = answer if isinstance(answer, list) else [answer]
        conn.sendall(parts[0])
        for part in parts[1:]:
            if not self.gate.wait(5):
                return
            conn.sendall(part)

    def handle(self, conn):
        with self.lock:
            index = len(self.conns) - 1
        buf = b""
        try:
            while True:
                head, buf = read_head(conn, buf)
                if head is None:
                    return
                with self.lock:
                    self.requests.append((index, head))
                line = head.split(b"\r\n")[0]
                path = line.split(b" ")[1].split(b"?")[0]
                answer = self.ANSWERS.get(path, self.OK)
                if path in self.EARLY:        # answered before the body is read
                    self.send(conn, answer)
                    if path in self.CLOSE:
                        conn.close()
                        return
                if path in self.INTERIM:      # 1xx first, the answer after the body
                    conn.sendall(self.INTERIM[path])
                try:
                    n, buf = body_extent(conn, head, buf)
                except EOFError as e:
                    with self.lock:
                        self.bodies.append((path, e.args[0]))
                    return
                except ValueError:      # a chunk size it cannot read: kept, and it hangs up
                    with self.lock:
                        self.bodies.append((path, buf))
                    return
                with self.lock:
                    self.bodies.append((path, buf[:n]))
                buf = buf[n:]
                if path not in self.EARLY:
                    self.send(conn, answer)
                lower = head.lower()
                if line.endswith(b"HTTP/1.0") and b"keep-alive" not in lower:
                    conn.close()
                    return
        except OSError:
            return


@pytest.fixture(scope="module")
def gw():
    backend = ScriptedBackend()
    port = H.free_port()
    g = H.Sluice(H.config(port, {"blue": [backend.addr]},
                          extra="timeouts: { backend_response: 3s, idle: 3s }"), port)
    g.backend = backend
    yield g
    alive = g.alive()
    H.stop_all(g)
    backend.close()
    assert alive, "sluice died:\n" + g.output()[-3000:]


def connect(g):
    c = H.raw_connect(g.port, timeout=5)
    return c, H.HttpReader(c, timeout=5)


def get(g, target):
    """A GET of target on a new connection: the answer's status and Connection."""
    c, reader = connect(g)
    try:
        c.sendall(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % target)
        r = reader.read()
        return r.status, r.header("connection")
    finally:
        c.close()


# ---- HTTP/1.0 clients ----

def test_a_backend_connection_is_not_reused_after_an_http10_request(gw):
    """An HTTP/1.0 request goes to the backend without keep-alive (the
    client's Connection header is hop-by-hop), so the backend closes after
    its answer, even when that answer is an HTTP/1.1 response that does not
    say so. The gateway kept the connection for the next request anyway: a
    pipelined second request was written to the closing connection and got
    502."""
    c, reader = connect(gw)
    try:
        req = b"GET /one HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        c.sendall(req + req.replace(b"/one", b"/two"))
        first, second = reader.read(), reader.read()
        assert (first.status, first.body) == (200, b"ok"), first
        assert (second.status, second.body) == (200, b"ok"), second
    finally:
        c.close()
    heads = [h for _, h in gw.backend.requests if h.split(b" ")[1] in (b"/one", b"/two")]
    assert [h.split(b"\r\n")[0] for h in heads] == [b"GET /one HTTP/1.0", b"GET /two HTTP/1.0"]


def test_an_http10_client_kept_alive_is_told_so(gw):
    """RFC 9112 9.3 and C.2.2: HTTP/1.0 keep-alive is negotiated, so a
    kept-alive HTTP/1.0 client must read "Connection: keep-alive" in the
    response. The backend's Connection header is hop-by-hop and dropped, and
    the gateway said nothing: the client was kept, without knowing it (one
    that waits for the close waited for the keepalive timeout). One that did
    not ask is told close, and closed."""
    c, reader = connect(gw)
    try:
        for path in (b"/ka1", b"/ka2"):
            c.sendall(b"GET %s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % path)
            r = reader.read()
            assert (r.status, r.body) == (200, b"ok"), r
            assert r.header("connection") == "keep-alive", r.raw
    finally:
        c.close()
    c, reader = connect(gw)
    try:
        c.sendall(b"GET /close10 HTTP/1.0\r\n\r\n")
        r = reader.read()
        assert (r.status, r.header("connection")) == (200, "close"), r.raw
        assert H.recv_all(c, timeout=3) == b""
    finally:
        c.close()


def test_a_chunked_answer_to_an_http10_request_is_a_502(gw):
    """The request goes on as HTTP/1.0, and chunked may not answer it (RFC
    9112 6.1): an HTTP/1.0 client cannot read that framing. It was passed
    on, with "Connection: keep-alive" for a client that asked, and the
    client waited for a close that did not come. The same answer to an
    HTTP/1.1 request passes."""
    for version, want in ((b"1.0", (502, "close")), (b"1.1", (200, None))):
        c, reader = connect(gw)
        try:
            c.sendall(b"GET /chunked HTTP/%s\r\nHost: a\r\nConnection: keep-alive\r\n\r\n"
                      % version)
            r = reader.read()
            assert (r.status, r.header("connection")) == want, r.raw
            if r.status == 200:
                assert r.body == b"abc"
        finally:
            c.close()


# ---- backend connections ----

def backend_conn_of(g, path):
    """The index of the backend connection the last request for path came on."""
    return [i for i, h in g.backend.requests if h.split(b" ")[1] == path][-1]


@pytest.mark.parametrize("method,path", [("GET", b"/overlong"), ("HEAD", b"/head-with-body")])
def test_a_backend_that_sends_more_than_its_response_is_not_reused(gw, method, path):
    """Bytes that follow a complete response in the same read (more than the
    Content-Length said; a body to a HEAD) mean the backend frames its
    answers otherwise than the gateway does, so what it sends next on that
    connection may not start the next response. They were dropped and the
    connection was kept for the next request; now it is let go."""
    c, reader = connect(gw)
    try:
        c.sendall(b"%s %s HTTP/1.1\r\nHost: a\r\n\r\n" % (method.encode(), path))
        r = reader.read(method)
        assert r.status == 200 and r.body == (b"ok" if method == "GET" else b""), r
        c.sendall(b"GET /after-extra HTTP/1.1\r\nHost: a\r\n\r\n")
        r = reader.read()
        assert (r.status, r.body) == (200, b"ok"), r
    finally:
        c.close()
    assert backend_conn_of(gw, b"/after-extra") != backend_conn_of(gw, path)


# ---- early answers ----

def test_a_client_that_stops_its_upload_still_gets_the_whole_early_answer(gw):
    """The backend answers before the body (413 here, 8 MiB long); the
    client stops its upload and shuts down its sending side, and reads the
    answer. The gateway closed the connection at the client's FIN, dropping
    the part of the answer still queued for the client (about half of it)."""
    c, _ = connect(gw)
    try:
        c.sendall(b"POST /early-big HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n"
                  + b"u" * 10)
        data = H.recv_until(c, b"\r\n\r\n", timeout=5)    # the answer has begun
        c.shutdown(socket.SHUT_WR)
        data += H.recv_all(c, timeout=5)
    finally:
        c.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), head
    assert len(body) == BIG and body == b"z" * BIG, len(body)



def test_a_backend_that_answered_before_the_body_is_not_reused(gw):
    """The backend answers once it has the head (a 413, a 401 does); the
    client sends its body after that, and the gateway forwards it. Whether
    that backend reads the body, drops it, or reads it as a request of its
    own (answering it later, to whoever gets the connection next) is not
    known, so the connection is not kept: it was, and the next client's
    request went on it."""
    c, reader = connect(gw)
    try:
        c.sendall(b"POST /early HTTP/1.1\r\nHost: a\r\nContent-Length: 35\r\n\r\n")
        r = reader.read()
        assert (r.status, r.body) == (200, b"ok"), r
        c.sendall(b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")   # the 35 bytes of body
        c.sendall(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
        r = reader.read()
        assert (r.status, r.body) == (200, b"ok"), r
    finally:
        c.close()
    assert backend_conn_of(gw, b"/next") != backend_conn_of(gw, b"/early")



def test_an_early_answer_that_ends_with_the_connection_ends_at_once(gw):
    """A backend answers before the body with a response whose end is its
    close (no Content-Length, no chunking), and closes. The client can only
    learn the answer is whole from the gateway's close; the gateway waited
    for the rest of the upload instead, and closed at the idle timeout (3 s
    here, 60 s by default)."""
    c, _ = connect(gw)
    try:
        c.sendall(b"POST /early-eof HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n" + b"u" * 10)
        t0 = time.monotonic()
        data = H.recv_all(c, timeout=6)
        took = time.monotonic() - t0
    finally:
        c.close()
    assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data
    assert data.endswith(b"\r\n\r\nthe body ends with the connection"), data
    assert took < 2, took


# ---- chunked trailers ----

@pytest.mark.parametrize("trailers", [
    b"X-T: a\r\n\n",            # the section ended by a bare LF
    b"\n",                      # an empty section ended by a bare LF
    b"X-T: a\r\n b\r\n\r\n",    # obs-fold
    b"X-T : a\r\n\r\n",         # whitespace before the colon
], ids=["bare LF ending the section", "bare LF alone", "obs-fold", "space before colon"])
def test_a_trailer_section_a_backend_could_read_otherwise_is_refused(gw, trailers):
    """The head's raw checks hold for a chunked body's trailer section too:
    llhttp 8.1 took these, and the gateway forwarded the request, with what
    followed the section it saw end read as the next request, where a
    stricter backend may see the section go on."""
    c, reader = connect(gw)
    try:
        c.sendall(b"POST /trailers HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"3\r\nabc\r\n0\r\n" + trailers + b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
        r = reader.read()
        assert r.status == 400 and r.header("connection") == "close", r
        assert H.recv_all(c, timeout=3) == b""
    finally:
        c.close()
    paths = [h.split(b" ")[1] for _, h in gw.backend.requests]
    assert b"/trailers" not in paths and b"/smuggled" not in paths, paths



def test_a_trailer_section_is_held_to_the_heads_limits(gw):
    """Trailer fields are fields: limits.headers (100 by default) bounds
    them as it bounds the head's. They went to the backend unbounded (a
    request of 5,000 trailer fields was forwarded)."""
    c, reader = connect(gw)
    try:
        c.sendall(b"POST /many-trailers HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"0\r\n" + b"".join(b"T%d: v\r\n" % i for i in range(5000)) + b"\r\n")
        r = reader.read()
        assert (r.status, r.header("connection")) == (431, "close"), r
    finally:
        c.close()
    assert b"/many-trailers" not in [h.split(b" ")[1] for _, h in gw.backend.requests]


# ---- interim responses ----

@pytest.mark.parametrize("path,status", [(b"/continue", 100), (b"/hints", 103)])
def test_connection_close_goes_on_the_final_response_only(gw, path, status):
    """A client that will not be kept alive is told Connection: close on the
    final response. It was also put on the interim ones (RFC 9112 9.6: the
    close follows the response that says so, and a 1xx is not it)."""
    c, reader = connect(gw)
    try:
        c.sendall(b"POST %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 4\r\n"
                  b"Expect: 100-continue\r\n\r\n" % path)
        interim = reader.read()
        assert interim.status == status and interim.header("connection") is None, interim.raw
        c.sendall(b"body")
        final = reader.read()
        assert (final.status, final.body, final.header("connection")) == (200, b"ok", "close"), final
    finally:
        c.close()


# ---- the gateway's own answers on a kept-alive connection ----

@pytest.fixture(scope="module")
def ogw():
    """A gateway that routes only /ok (anything else is its own 404)."""
    backend = ScriptedBackend()
    port = H.free_port()
    text = H.config(port, {"blue": [backend.addr]}, extra="timeouts: { head: 1s }")
    text = text.replace('path_prefix: / }', 'path_prefix: /ok }')
    g = H.Sluice(text, port)
    yield g
    alive = g.alive()
    H.stop_all(g)
    backend.close()
    assert alive, "sluice died:\n" + g.output()[-3000:]


LATER = [
    ("unrouted", b"GET /elsewhere HTTP/1.1\r\nHost: a\r\n\r\n", 404),
    ("malformed", b"GARBAGE\r\n\r\n", 400),
    ("HTTP/2.0", b"GET /ok HTTP/2.0\r\nHost: a\r\n\r\n", 505),
]


@pytest.mark.parametrize("pipelined,second,status",
                         [(p, d, st) for p in (True, False) for _, d, st in LATER]
                         + [(False, b"GET /ok HTTP/1.1\r\n", 408)],     # a head that never ends
                         ids=["pipelined " + n for n, _, _ in LATER] + ["later " + n for n, _, _ in LATER]
                         + ["later slow head"])
def test_a_later_request_on_a_kept_alive_connection_gets_the_gateways_answer(ogw, second, status,
                                                                           pipelined):
    """After a first exchange, the gateway's own answer to the next request
    on the connection (404, 400, 505, 408 here; 502 and 503 the same way)
    was never sent: the exchange's "response started" mark stayed set, so
    the connection was closed without a word, which a client reads as a
    stale kept-alive connection (and retries)."""
    c, reader = connect(ogw)
    try:
        first = b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n"
        c.sendall(first + second if pipelined else first)
        r = reader.read()
        assert (r.status, r.body) == (200, b"ok"), r
        if not pipelined:
            c.sendall(second)
        r = reader.read()
        assert (r.status, r.header("connection")) == (status, "close"), r
    finally:
        c.close()


# ---- pipelining ----

def test_a_pipelined_head_cut_by_a_read_boundary_is_read_to_its_end(gw):
    """The next request's head begins in the read that ends this exchange's
    request and ends in a later one (a TCP segment or the 32 KiB read block
    cut it). The gateway parsed the part it had and left the client paused:
    the rest was never read, and the client got 408 at the keepalive timeout."""
    c, reader = connect(gw)
    try:
        c.sendall(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHo")
        assert reader.read().status == 200
        time.sleep(0.2)
        c.sendall(b"st: a\r\n\r\n")
        r = reader.read(timeout=3)
        assert (r.status, r.body) == (200, b"ok"), r
        # Forty 1000-byte requests at once: the 32 KiB read block cuts one of them.
        reqs = [b"GET /batch%02d HTTP/1.1\r\nHost: a\r\nX-Pad: " % i for i in range(40)]
        c.sendall(b"".join(r + b"p" * (1000 - len(r) - 4) + b"\r\n\r\n" for r in reqs))
        got = [reader.read(timeout=3).status for _ in reqs]
        assert got == [200] * 40, got
    finally:
        c.close()
    paths = [h.split(b" ")[1] for _, h in gw.backend.requests]
    assert [p for p in paths if p.startswith(b"/batch")] == [b"/batch%02d" % i for i in range(40)]


# ---- the request target ----

@pytest.mark.parametrize("target", [b"/static/x.png#/../../admin", b"/a?q=1#f",
                                    b"http://a/img#x"], ids=["path", "after a query", "absolute-form"])
def test_a_fragment_in_the_request_target_is_refused(gw, target):
    """RFC 9112 3.2: no form of request-target has a fragment, and a client
    never sends one. llhttp took it into the URL: the gateway routed by one
    reading of the target and the backend, dropping the fragment, served
    another (HAProxy's CVE-2023-45539)."""
    assert get(gw, target) == (400, "close")
    assert not [h for _, h in gw.backend.requests if b"#" in h.split(b"\r\n")[0]]


# ---- chunk extensions ----

CHUNKED_POST = b"POST %s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
LINE_MAX = 4096     # a chunk-size line, extensions and CRLF included


def bodies_of(g, path):
    return [b for p, b in g.backend.bodies if p == path]


def forwarded_as_sent(g, path, body):
    """A chunked POST of this body is answered 200 and reaches the backend byte for byte."""
    c, reader = connect(g)
    try:
        c.sendall(CHUNKED_POST % path + body)
        r = reader.read()
        assert (r.status, r.body) == (200, b"ok"), r
    finally:
        c.close()
    assert bodies_of(g, path) == [body]


def refused_on_the_way(g, path, pieces, pause=0.0):
    """A chunked POST whose body goes in these pieces (a pause after each)
    is refused with 400 and the connection closed, perhaps while it was
    still being sent."""
    c, reader = connect(g)
    try:
        c.sendall(CHUNKED_POST % path)
        try:
            for piece in pieces:
                c.sendall(piece)
                time.sleep(pause)
        except OSError:
            pass    # refused and closed while the body was still going
        r = reader.read()
        assert (r.status, r.header("connection")) == (400, "close"), r
        assert H.recv_all(c, timeout=3) == b""
    finally:
        c.close()


@pytest.mark.parametrize("pieces", [1, 16], ids=["one write", "in pieces"])
def test_a_chunk_size_line_longer_than_4_KiB_is_refused(gw, pieces):
    """A chunk-size line ("5;" and extensions) of 64 KiB: the gateway
    streamed it to the backend, whatever its length (a backend's or another
    parser's line buffer may choke, and smuggling research plays on long
    extensions). The line is bounded at 4 KiB, counted byte by byte, so it
    is refused the same when it comes in one write or in pieces: 400, the
    connection closed, and the backend gets no more of the line than the
    bound."""
    path = b"/ext-long-%d" % pieces
    line = b"5;" + b"e" * (64 << 10)
    step = -(-len(line) // pieces)
    refused_on_the_way(gw, path, [line[i:i + step] for i in range(0, len(line), step)] +
                       [b"\r\nhello\r\n0\r\n\r\n"], pause=0.02 if pieces > 1 else 0.0)
    got = bodies_of(gw, path)
    assert all(len(b) <= LINE_MAX for b in got), [len(b) for b in got]


def test_a_chunk_size_line_of_4_KiB_is_forwarded_as_it_came(gw):
    """The bound is not tighter than it says: a line of exactly 4 KiB passes,
    and the backend gets the body byte for byte."""
    line = b"5;" + b"e" * (LINE_MAX - 4) + b"\r\n"
    forwarded_as_sent(gw, b"/ext-at-max", line + b"hello\r\n0;last=\"q v\"\r\n\r\n")


EXT_MAX = 16 << 10  # a body's chunk extensions together: limits.head_bytes (default)


def ext_chunks(total):
    """One-byte chunks whose extensions, each within the line bound, add up to `total` bytes."""
    out, left = [], total
    while left > 0:
        e = min(left, LINE_MAX - 8)         # ";a=" and the value: e bytes of extension
        out.append(b"1;a=" + b"v" * (e - 3) + b"\r\nX\r\n")
        left -= e
    return b"".join(out) + b"0\r\n\r\n"


def test_a_body_whose_chunk_extensions_pass_16_KiB_is_refused(gw):
    """Each line under 4 KiB, but one-byte chunks with a 4 KiB extension
    each made a backend read four thousand bytes of framing for every byte
    of data, for as long as the client liked. A body's extensions together
    are bounded like a head (limits.head_bytes): at 16 KiB the body passes
    byte for byte; a byte more is a 400, the connection closed, and the
    backend got no more than the bound of extensions."""
    forwarded_as_sent(gw, b"/ext-total-at-max", ext_chunks(EXT_MAX))
    path = b"/ext-total-over"
    refused_on_the_way(gw, path, [ext_chunks(EXT_MAX + 1) + ext_chunks(64 << 10)])
    got = bodies_of(gw, path)
    assert all(len(b) <= EXT_MAX + 64 for b in got), [len(b) for b in got]


@pytest.mark.parametrize("body", [
    b"5\rXhello\r\n0\r\n\r\n",
    b"5\r\x00hello\r\n0\r\n\r\n",
    b"0\rX\r\n",
    b"5;a\rXhello\r\n0\r\n\r\n",
    b"5;=v\r\nhello\r\n0\r\n\r\n",
    b"5;a=\r\nhello\r\n0\r\n\r\n",
    b"5;a=b\"c\"\r\nhello\r\n0\r\n\r\n",
    b"5;a=\"x\x7fy\"\r\nhello\r\n0\r\n\r\n",
], ids=["bare CR ending the size line", "CR NUL", "bare CR ending the last chunk's line",
        "bare CR after an extension", "extension without a name", "extension with an empty value",
        "token and quoted-string run together", "DEL in a quoted value"])
def test_a_chunk_size_line_outside_rfc_9112_is_refused(gw, body):
    """RFC 9112 7.1.1: chunk-size [ ";" token [ "=" token / quoted-string ] ]
    CRLF. llhttp 8.1 (default mode) takes any byte after the line's CR as
    its LF, names and values that are empty, a token running into a quote,
    and DEL in a quoted value; the gateway forwarded them, and a backend
    may find the line (and the chunk data, and the next request) elsewhere."""
    path = b"/ext-bad"
    before = len(bodies_of(gw, path))
    c, reader = connect(gw)
    try:
        c.sendall(CHUNKED_POST % path + body)
        r = reader.read()
        assert (r.status, r.header("connection")) == (400, "close"), r
    finally:
        c.close()
    assert len(bodies_of(gw, path)) == before, bodies_of(gw, path)[before:]


@pytest.mark.parametrize("path", [b"/status-099", b"/status-2", b"/status-0200", b"/status-600"])
def test_a_backend_status_code_not_three_digits_from_100_to_599_is_a_502(gw, path):
    """RFC 9112 4: status-code = 3DIGIT; RFC 9110 15: 100 to 599. llhttp
    takes "099", "2" and "0200": a 99 went to the client as an interim
    answer, without its Content-Length, and the client read its body as the
    start of the next response on the connection."""
    assert get(gw, path) == (502, "close")


def test_a_backend_chunk_size_line_beyond_4_KiB_is_a_502(gw):
    """The same bound on a backend's response: read with the head, nothing
    has gone to the client yet, and the client gets a 502 instead of the
    line (the gateway sent the head, then streamed the 8 KiB line on)."""
    assert get(gw, b"/ext-resp-at-once") == (502, "close")


def test_a_backend_chunk_size_line_beyond_4_KiB_cuts_the_response(gw):
    """Once the response has begun, the client connection is cut before the
    long line: the client sees a chunked body without its last chunk, which
    it knows is incomplete. The gateway forwarded the line and the rest."""
    gw.backend.gate.clear()
    c, _ = connect(gw)
    try:
        c.sendall(b"GET /ext-resp-later HTTP/1.1\r\nHost: a\r\n\r\n")
        data = H.recv_until(c, b"\r\n2\r\nok\r\n", timeout=5)
        assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"2\r\nok\r\n"), data
        gw.backend.gate.set()
        data += H.recv_all(c, timeout=5)
    finally:
        gw.backend.gate.clear()
        c.close()
    assert b"e" * 100 not in data and not data.endswith(b"0\r\n\r\n"), data[-200:]


# ---- Trailer is end-to-end ----

def test_the_trailer_field_of_a_request_reaches_the_backend(gw):
    """RFC 9110 6.6.2: Trailer is end-to-end (not among the hop-by-hop
    fields of 7.6.1), and the gateway forwards the chunked body with its
    trailer section as it came; it dropped the field that announces it."""
    body = b"2\r\nok\r\n0\r\nX-Sum: 7\r\n\r\n"
    c, reader = connect(gw)
    try:
        c.sendall(b"POST /trailer-req HTTP/1.1\r\nHost: a\r\nTrailer: X-Sum\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n" + body)
        r = reader.read()
        assert (r.status, r.body) == (200, b"ok"), r
    finally:
        c.close()
    heads = [h for _, h in gw.backend.requests if h.startswith(b"POST /trailer-req ")]
    assert len(heads) == 1 and header_value(heads[0], b"trailer") == b"X-Sum", heads
    assert bodies_of(gw, b"/trailer-req") == [body]


def test_the_trailer_field_of_a_response_reaches_the_client(gw):
    """The other way too: a backend's Trailer field reaches the client with
    the trailer section it announces."""
    c, _ = connect(gw)
    try:
        c.sendall(b"GET /trailer-resp HTTP/1.1\r\nHost: a\r\n\r\n")
        data = H.recv_until(c, b"\r\n0\r\nX-Sum: 7\r\n\r\n", timeout=5)
    finally:
        c.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and header_value(head, b"trailer") == b"X-Sum", head
    assert body == b"2\r\nok\r\n0\r\nX-Sum: 7\r\n\r\n", body


# ---- request-target forms ----

def test_connect_is_refused_without_touching_a_backend(gw):
    """RFC 9110 9.3.6: CONNECT asks for a tunnel, which a gateway in front of
    its own services does not make. It got 404 (no route for the path
    "a.test:443"); it gets 405 with an Allow field (RFC 9110 15.5.6), empty:
    no method applies to an authority-form target here (10.2.1). nginx
    answers CONNECT 405 too."""
    c, reader = connect(gw)
    try:
        c.sendall(b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n")
        r = reader.read()
        assert (r.status, r.header("allow"), r.header("connection")) == (405, "", "close"), r.raw
        assert H.recv_all(c, timeout=3) == b""
    finally:
        c.close()
    assert not [h for _, h in gw.backend.requests if h.startswith(b"CONNECT ")]


@pytest.mark.parametrize("line", [b"CONNECT  HTTP/1.1", b"GET  / HTTP/1.1"],
                         ids=["CONNECT without a target", "two spaces before the target"])
def test_a_request_line_with_two_spaces_after_the_method_is_a_400(gw, line):
    """RFC 9112 3: one SP between method and target. llhttp skips more and
    reads on, and "CONNECT  HTTP/1.1" passed as an HTTP/0.9 CONNECT whose
    target was "HTTP/1.1" (a 405, logged with that target); found by
    fuzz-http. It is a bad request line."""
    c, reader = connect(gw)
    try:
        c.sendall(line + b"\r\nHost: a\r\n\r\n")
        r = reader.read()
        assert (r.status, r.header("connection")) == (400, "close"), r
        assert H.recv_all(c, timeout=3) == b""
    finally:
        c.close()


@pytest.mark.parametrize("sent,forwarded", [
    (b"OPTIONS * HTTP/1.1\r\nHost: a\r\n", b"OPTIONS * HTTP/1.1"),
    (b"GET http://a/abs?x=1 HTTP/1.1\r\nHost: other\r\n", b"GET /abs?x=1 HTTP/1.1"),
    (b"OPTIONS http://a HTTP/1.1\r\nHost: a\r\n", b"OPTIONS * HTTP/1.1"),
], ids=["OPTIONS *", "GET in absolute-form", "OPTIONS in absolute-form, empty path"])
def test_a_request_target_reaches_the_backend_in_the_form_it_takes(gw, sent, forwarded):
    """OPTIONS * (RFC 9112 3.2.4) asks about the server as a whole: it goes
    to the service its Host routes to as "/" would, with its "*" (it got
    404: no route matched the path "*"). Absolute-form goes in origin-form,
    with its authority as Host (3.2.1, 3.2.2), except "OPTIONS http://a",
    which the last proxy MUST send as "OPTIONS *" (3.2.4)."""
    probe = b"X-Probe: %d" % time.monotonic_ns()
    c, reader = connect(gw)
    try:
        c.sendall(sent + probe + b"\r\n\r\n")
        r = reader.read()
        assert (r.status, r.body) == (200, b"ok"), r
    finally:
        c.close()
    heads = [h for _, h in gw.backend.requests if probe in h]
    assert [h.split(b"\r\n")[0] for h in heads] == [forwarded], heads
    assert header_value(heads[0], b"host") == b"a", heads


def test_options_asterisk_goes_where_the_root_goes(ogw):
    """With no route for "/" on its host, OPTIONS * has no service to ask: 404."""
    c, reader = connect(ogw)
    try:
        c.sendall(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")
        assert reader.read().status == 404
    finally:
        c.close()


@pytest.mark.parametrize("line", [b"GET * HTTP/1.1", b"POST * HTTP/1.1", b"OPTIONS *x HTTP/1.1",
                                  b"OPTIONS */a HTTP/1.1"],
                         ids=["GET *", "POST *", "OPTIONS *x", "OPTIONS */a"])
def test_any_other_asterisk_form_is_refused(gw, line):
    """RFC 9112 3.2.4: the asterisk-form is "*" alone, and only for OPTIONS.
    Anything else starting with "*" was taken as a path (404 here, a
    request for the backend when a route for it exists)."""
    c, reader = connect(gw)
    try:
        c.sendall(line + b"\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
        r = reader.read()
        assert (r.status, r.header("connection")) == (400, "close"), r
    finally:
        c.close()
    assert not [h for _, h in gw.backend.requests if h.split(b" ")[1].startswith(b"*")
                and not h.startswith(b"OPTIONS * ")]
