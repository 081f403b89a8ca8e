/*
 * io.c: moving bytes for a session — reads into pool blocks, writes of
 * blocks or gateway-made bytes, and backpressure between the two sides.
 *
 * Backpressure, not buffering: after queueing a write to one side we look at
 * that side's queue; above the high-water mark we stop reading the other
 * side, and a write completion that brings the queue under the low-water
 * mark starts it again. The marks count memory, not bytes: a queued write
 * holds its request and the whole 32 KiB read block its slice is in, so a
 * peer whose reads are small (a chatty backend, a client writing a few bytes
 * at a time) would otherwise make the high-water mark of bytes hold a
 * hundred times as much. Memory per connection is therefore bounded by the
 * high-water mark plus one read block per direction, whatever the peers do.
 *
 * Writes go to the socket at once when it takes them (write_now); only the
 * rest is queued, with a request recycled through a per-worker free list, so
 * the relay path allocates nothing per message and normally holds no block
 * past the read that filled it.
 *
 * A TLS client (s->tlsc) is the same session with tls.c in between: reads
 * hand it ciphertext and it hands the session plaintext blocks; writes to the
 * client are encrypted there and come back here as ciphertext blocks. The
 * write queue, and so backpressure, counts ciphertext.
 *
 * A TLS backend (SL_UP_TLS(up), pools with `tls: true`) is the same again on
 * the other side: backend reads go to tls.c, which runs the handshake, then
 * hands the session plaintext blocks; backend writes are encrypted there and
 * come back as ciphertext blocks (sl__backend_write_raw), which may also be
 * written while the connection is idle in the keep-alive pool.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "session.h"
#include "tls.h"

sl_msec_t sl_now(sl_session_t *s)
{
    return uv_now(&s->w->loop);
}

static uv_stream_t *stream_of(sl_session_t *s, bool to_client)
{
    return to_client ? (uv_stream_t *)&s->client : (uv_stream_t *)&s->up->tcp;
}

/* The memory a side's queued writes hold (see the top of the file); the
   backend's is its connection's, which has writes only while connected.
   32 bits: reading stops once it passes write_high_water (64 MiB at most),
   and what is queued after that is a write or two. */
static uint32_t *queued_mem(sl_session_t *s, bool to_client)
{
    return to_client ? &s->client_queued_mem : &s->up->queued_mem;
}

size_t sl_queued(sl_session_t *s, bool to_client)
{
    if (!to_client && (s->up == NULL || !s->up->connected))
        return 0;
    return uv_stream_get_write_queue_size(stream_of(s, to_client));
}

#define MAX_FREE_WREQS 256

static sl_wreq_t *wreq_get(sl_worker_t *w)
{
    sl_wreq_t *r = w->free_wreqs;
    if (r) {
        w->free_wreqs = r->next_free;
        w->n_free_wreqs--;
    } else {
        r = malloc(sizeof *r);
        if (r == NULL)
            return NULL;
    }
    r->next_free = NULL;
    r->s = NULL;
    r->up = NULL;
    r->block = NULL;
    r->owned = NULL;
    r->mem = 0;
    return r;
}

static void wreq_put(sl_worker_t *w, sl_wreq_t *r)
{
    if (r->block)
        sl_block_unref(&w->bufs, r->block);
    free(r->owned);
    r->block = NULL;
    r->owned = NULL;
    /* Keep enough for a busy loop; a burst's surplus goes back to malloc. */
    if (w->n_free_wreqs >= MAX_FREE_WREQS) {
        free(r);
        return;
    }
    r->next_free = w->free_wreqs;
    w->free_wreqs = r;
    w->n_free_wreqs++;
}

/* ---- reading ---- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    sl_worker_t *w = h->loop->data;
    sl_block_t *b = sl_block_get(&w->bufs);
    if (b == NULL) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    buf->base = b->data;
    buf->len = SL_BLOCK_SIZE;
}


static void client_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    sl_session_t *s = sl_container_of((uv_tcp_t *)st, sl_session_t, client);
    sl_block_t *b = buf->base ? sl_block_of(buf->base) : NULL;
    if (s->tlsc && nread != 0) {
        if (nread > 0) {
            b->len = (uint32_t)nread;
            s->last_rx = s->last_client_rx = sl_now(s);
            if ((!s->proxy_before_tls || sl_session_proxy_before_tls(s, b) > 0) && b->len > 0)
                sl_tls_on_read(s, b);
        }
        if (b)
            sl_block_unref(&s->w->bufs, b);
        if (nread < 0)
            sl_tls_on_eof(s, (int)nread);
        return;
    }
    if (nread > 0) {
        b->len = (uint32_t)nread;
        s->last_rx = s->last_client_rx = sl_now(s);
        sl_session_client_read(s, b);
    } else if (nread < 0) {
        if (b)
            sl_block_unref(&s->w->bufs, b);
        b = NULL;
        sl_session_client_eof(s, (int)nread);
    }
    if (b)
        sl_block_unref(&s->w->bufs, b);
}

static void backend_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    sl_upstream_t *up = sl_container_of((uv_tcp_t *)st, sl_upstream_t, tcp);
    sl_session_t *s = up->session;
    sl_block_t *b = buf->base ? sl_block_of(buf->base) : NULL;
    if (up->lingering) {   /* released: what comes, TLS records or not, is dropped unread */
        if (b)
            sl_block_unref(&up->worker->bufs, b);
        sl__upstream_linger_read(up, nread);
        return;
    }
    if (SL_UP_TLS(up) && nread != 0) {
        /* tls.c decides: handshake, plaintext for the session, or an idle
           connection's tickets (fine) and anything else (not reusable). */
        if (nread > 0) {
            b->len = (uint32_t)nread;
            sl_tls_up_on_read(up, b);
        }
        if (b)
            sl_block_unref(&up->worker->bufs, b);
        if (nread < 0)
            sl_tls_up_on_eof(up, (int)nread);
        return;
    }
    if (s == NULL) {
        if (b)
            sl_block_unref(&up->worker->bufs, b);
        if (nread != 0)
            sl_upstream_drop_idle(up);   /* an idle kept-alive one spoke or closed: not reusable */
        return;
    }
    if (up->unconfirmed) {
        if (nread < 0) {
            if (b)
                sl_block_unref(&up->worker->bufs, b);
            sl__upstream_unconfirmed_failed(up, (int)nread);   /* the connect failed */
            return;
        }
        if (nread > 0)
            sl__upstream_confirm(up);
    }
    if (nread > 0) {
        b->len = (uint32_t)nread;
        s->last_rx = sl_now(s);
        sl_session_backend_read(s, b);
    } else if (nread < 0) {
        if (b)
            sl_block_unref(&s->w->bufs, b);
        b = NULL;
        sl_session_backend_eof(s, (int)nread);
    }
    if (b)
        sl_block_unref(&up->worker->bufs, b);
}

/*
 * Read a new client's socket at once, before its first epoll round: with
 * defer_accept (the default) the kernel hands over a connection only once
 * its first bytes (request head, ClientHello or PROXY header) are there, and
 * without it they have usually arrived by the time the worker accepts under
 * load. Reading them now saves a loop iteration of latency per connection.
 * If nothing is there yet, the read costs one EAGAIN and reading goes on
 * through libuv as usual.
 */
void sl_client_read_now(sl_session_t *s)
{
    uv_os_fd_t fd;
    if (!sl__client_wants_data(s) || uv_fileno((uv_handle_t *)&s->client, &fd) != 0)
        return;
    sl_block_t *b = sl_block_get(&s->w->bufs);
    if (b == NULL)
        return;
    ssize_t n;
    do
        n = recv(fd, b->data, SL_BLOCK_SIZE, MSG_DONTWAIT);   /* recv: see write_now */
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        sl_block_unref(&s->w->bufs, b);
        return;
    }
    uv_buf_t buf = uv_buf_init(b->data, SL_BLOCK_SIZE);
    client_read_cb((uv_stream_t *)&s->client, n > 0 ? n : n == 0 ? UV_EOF : -errno, &buf);
}

bool sl__client_wants_data(const sl_session_t *s)
{
    return s->client_paused == 0 && s->state != SL_SS_CLOSING && !s->client_eof;
}

static void update_client_reading(sl_session_t *s)
{
    bool want = sl__client_wants_data(s);
    /* TLS bytes already off the socket go first (tls.c kicks); the socket waits. */
    if (want && s->tlsc && sl_tls_holds_input(s)) {
        sl_tls_kick(s);
        want = false;
    }
    if (want && !s->client_reading) {
        if (uv_read_start((uv_stream_t *)&s->client, alloc_cb, client_read_cb) == 0)
            s->client_reading = true;
    } else if (!want && s->client_reading) {
        uv_read_stop((uv_stream_t *)&s->client);
        s->client_reading = false;
    }
}

static void update_backend_reading(sl_session_t *s)
{
    sl_upstream_t *up = s->up;
    if (up == NULL || !up->connected || up->closing)
        return;
    bool want = s->backend_paused == 0 && s->state != SL_SS_CLOSING;
    /* TLS bytes already off the socket go first (tls.c kicks); the socket waits. */
    if (want && SL_UP_TLS(up) && sl_tls_up_holds_input(up)) {
        sl_tls_up_kick(up);
        want = false;
    }
    if (want && !up->reading) {
        if (uv_read_start((uv_stream_t *)&up->tcp, alloc_cb, backend_read_cb) == 0)
            up->reading = true;
    } else if (!want && up->reading) {
        uv_read_stop((uv_stream_t *)&up->tcp);
        up->reading = false;
    }
}

void sl_client_pause(sl_session_t *s, uint8_t why)
{
    s->client_paused |= why;
    update_client_reading(s);
}

void sl_client_resume(sl_session_t *s, uint8_t why)
{
    bool backpressure_ends = (why & s->client_paused & SL_PAUSE_BACKPRESSURE) != 0;
    s->client_paused &= (uint8_t)~why;
    update_client_reading(s);
    if (backpressure_ends && s->state == SL_SS_WS_RELAY) {
        /* The ping clock, stopped while the client could not be heard, runs again. */
        s->client_alive_at = sl_now(s);
        sl_session_arm_timer(s);
    }
}

void sl_backend_pause(sl_session_t *s, uint8_t why)
{
    s->backend_paused |= why;
    update_backend_reading(s);
}

void sl_backend_resume(sl_session_t *s, uint8_t why)
{
    s->backend_paused &= (uint8_t)~why;
    update_backend_reading(s);
}

void sl_backend_start_reading(sl_session_t *s)
{
    /* A kept-alive connection read while idle goes on being read: the same
       callback serves both (backend_read_cb looks at up->session). */
    update_backend_reading(s);
}

void sl__upstream_read_start(sl_upstream_t *up)
{
    if (!up->reading &&
        uv_read_start((uv_stream_t *)&up->tcp, alloc_cb, backend_read_cb) == 0)
        up->reading = true;
}

/* Idle connections in the keep-alive pool are read so a close is noticed
   (most are read already: reading is not stopped when a session lets go). */
void sl_upstream_watch_idle(sl_upstream_t *up)
{
    sl__upstream_read_start(up);
}

/* ---- writing ---- */

static void write_cb(uv_write_t *req, int status)
{
    sl_wreq_t *r = sl_container_of(req, sl_wreq_t, req);
    sl_worker_t *w = req->handle->loop->data;
    sl_upstream_t *up = r->up;
    sl_session_t *s = r->to_client ? r->s : (up ? up->session : NULL);
    bool to_client = r->to_client;
    if (to_client)
        r->s->client_queued_mem -= r->mem;
    else if (up)
        up->queued_mem -= r->mem;
    wreq_put(w, r);
    if (s == NULL || s->state == SL_SS_CLOSING || status == UV_ECANCELED)
        return;
    if (!to_client && up->unconfirmed) {
        if (status < 0) {
            sl__upstream_unconfirmed_failed(up, status);   /* the connect failed */
            return;
        }
        sl__upstream_confirm(up);
    }
    if (status < 0 && !to_client && SL_UP_TLS(up) && sl_tls_up_handshaking(up)) {
        sl_tls_up_on_eof(up, status);   /* a failed handshake: a connect failure */
        return;
    }
    if (status < 0 && to_client) {
        sl_session_close(s);   /* a client that cannot take writes is gone */
        return;
    }
    /* Queued bytes went out: the peer is reading. Idle means no bytes either
       way, and a slow reader of a long answer (the other side paused for
       backpressure, so nothing is read) was cut as idle while it read. */
    if (status >= 0) {
        s->last_rx = sl_now(s);
        if (to_client)
            s->client_alive_at = s->last_rx;
    }
    /* A backend that cannot take writes (it reset, or closed and its FIN
       came back as EPIPE) is not let go here: what it sent before, an early
       answer say, is still in the socket ahead of its end, and the read side
       reports both (backend_read_cb, then sl_session_backend_eof). Closing
       the socket here hid that end when this callback ran first, and the
       session waited out its idle timeout with nothing to wake it. */
    if (status < 0)
        up->write_failed = true;
    const sl_config_t *cfg = s->rt->cfg;
    if ((to_client ? s->client_queued_mem : up->queued_mem) <= cfg->limits.write_low_water) {
        if (to_client && (s->backend_paused & SL_PAUSE_BACKPRESSURE))
            sl_backend_resume(s, SL_PAUSE_BACKPRESSURE);
        else if (!to_client && (s->client_paused & SL_PAUSE_BACKPRESSURE))
            sl_client_resume(s, SL_PAUSE_BACKPRESSURE);
    }
    sl_session_write_done(s, to_client);
}

/* The socket to write to now, or false when bytes are queued (they go
   first), a connect is under way (plain HTTP's uv_tcp_connect) or the side
   is shut down: as uv_try_write() refuses. */
static bool direct_fd(uv_stream_t *st, uv_os_fd_t *fd)
{
    return uv_stream_get_write_queue_size(st) == 0 && st->connect_req == NULL &&
           uv_is_writable(st) && uv_fileno((const uv_handle_t *)st, fd) == 0;
}

/*
 * Write now what the socket takes; queue a request only for the rest.
 *
 * uv_write() of bytes the socket takes at once still completes through the
 * loop: the callback runs an iteration later and libuv re-arms the stream's
 * epoll registration on the way (one epoll_ctl per write, measured: 591,562
 * epoll_ctl calls for 587,776 writes in the echo benchmark), and the read
 * block stays referenced until then, so a busy iteration holds one 32 KiB
 * block per message. uv_try_write() refuses while anything is queued, so
 * byte order is kept; a socket error falls through to uv_write(), which meets
 * it again and reports it to write_cb as before.
 *
 * The same test as uv_try_write(), then send() rather than its write():
 * a socket's write() goes through the file layer first (vfs_write's own
 * time was 2.2% of the proxy's samples at window 1, beside 1.5% for the
 * file position lock, fdget_pos, that read and write take), which the
 * socket calls skip, as nginx's writes do. CPU per echoed message at
 * window 1 fell by about 5% (bench/RESULTS.md, session 15).
 *
 * Returns how many of len bytes were written now.
 */
static size_t write_now(uv_stream_t *st, const char *data, size_t len)
{
    uv_os_fd_t fd;
    if (!direct_fd(st, &fd))
        return 0;
    ssize_t n;
    do
        n = send(fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n > 0 ? (size_t)n : 0;
}

/* write_now of two pieces in one system call. */
static size_t write2_now(uv_stream_t *st, const char *a, size_t alen, const char *b, size_t blen)
{
    uv_os_fd_t fd;
    if (!direct_fd(st, &fd))
        return 0;
    struct iovec iov[2] = { { .iov_base = (void *)a, .iov_len = alen },
                            { .iov_base = (void *)b, .iov_len = blen } };
    struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };
    ssize_t n;
    do
        n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n > 0 ? (size_t)n : 0;
}

static int submit(sl_session_t *s, bool to_client, sl_wreq_t *r, uv_buf_t buf)
{
    r->to_client = to_client;
    r->s = s;
    r->up = to_client ? NULL : s->up;
    int rc = uv_write(&r->req, stream_of(s, to_client), &buf, 1, write_cb);
    if (rc < 0) {
        wreq_put(s->w, r);
        return rc;
    }
    /* Counted as memory held: the request, and the whole block a slice pins. */
    r->mem = (uint32_t)(sizeof *r + (r->block ? SL_BLOCK_SIZE : r->owned ? buf.len : 0));
    *queued_mem(s, to_client) += r->mem;
    if (*queued_mem(s, to_client) > s->rt->cfg->limits.write_high_water) {
        sl_count(&s->w->counters, SL_CTR_BACKPRESSURE_PAUSES, 1);
        if (to_client)
            sl_backend_pause(s, SL_PAUSE_BACKPRESSURE);
        else
            sl_client_pause(s, SL_PAUSE_BACKPRESSURE);
    }
    return 0;
}

/* Queue bytes the gateway made: small ones in the request, others duplicated. */
static int queue_copy(sl_session_t *s, bool to_client, const char *data, size_t len)
{
    sl_wreq_t *r = wreq_get(s->w);
    if (r == NULL)
        return UV_ENOMEM;
    char *base;
    if (len <= sizeof r->small) {
        base = (char *)r->small;
    } else {
        r->owned = malloc(len);
        if (r->owned == NULL) {
            wreq_put(s->w, r);
            return UV_ENOMEM;
        }
        base = r->owned;
    }
    memcpy(base, data, len);
    return submit(s, to_client, r, uv_buf_init(base, (unsigned)len));
}

/* Queue a slice of a read block (taking a reference to it). */
static int queue_block(sl_session_t *s, bool to_client, sl_block_t *b, size_t off, size_t len)
{
    sl_wreq_t *r = wreq_get(s->w);
    if (r == NULL)
        return UV_ENOMEM;
    sl_block_ref(b);
    r->block = b;
    return submit(s, to_client, r, uv_buf_init(b->data + off, (unsigned)len));
}

/* ---- the 101 and what follows it, in one write ---- */

/*
 * A backend that speaks first (a hello, a snapshot) sends its first frames
 * right behind its 101, in the same read. Written separately, the client
 * gets two segments and two wake-ups per upgrade; HAProxy and nginx pass
 * both in one. So the 101 is held (sl_client_hold) while the backend's early
 * bytes are replayed through the relay, and the first write to the client
 * carries both (writev). Holding lasts within one call (enter_relay), so
 * the worker keeps one held prefix, not each session.
 */
void sl_client_hold(sl_session_t *s, const char *data, size_t len)
{
    sl_worker_t *w = s->w;
    w->held_for = s;
    w->held = data;
    w->held_len = len;
}

int sl_client_release(sl_session_t *s)
{
    sl_worker_t *w = s->w;
    if (w->held_for != s)
        return 0;
    w->held_for = NULL;
    if (s->state == SL_SS_CLOSING)
        return 0;
    return sl_write_copy(s, true, w->held, w->held_len);
}

/*
 * write_now for a session's side: the held 101 goes first, in the same
 * writev. Returns how many of len bytes were written; what the socket did not
 * take of the held bytes is queued (*rc says if that failed).
 */
static size_t session_write_now(sl_session_t *s, bool to_client, const char *data, size_t len,
                                int *rc)
{
    sl_worker_t *w = s->w;
    *rc = 0;
    if (!to_client || w->held_for != s)
        return write_now(stream_of(s, to_client), data, len);
    w->held_for = NULL;
    size_t done = write2_now(stream_of(s, true), w->held, w->held_len, data, len);
    if (done >= w->held_len)
        return done - w->held_len;
    *rc = queue_copy(s, true, w->held + done, w->held_len - done);
    return 0;
}

/*
 * What every session write does before anything is queued: nothing for
 * nothing; TLS encrypts (and queues its ciphertext itself); else the socket
 * takes what it takes now. *done says how much of len is dealt with; the
 * caller queues the rest, its own way (a block reference or a copy).
 */
static int write_start(sl_session_t *s, bool to_client, const char *data, size_t len,
                       size_t *done)
{
    *done = len;
    if (len == 0)
        return 0;
    if (!to_client && (s->up == NULL || !s->up->connected))
        return UV_ENOTCONN;
    if (to_client && s->tlsc) {
        int rc = sl_client_release(s);
        return rc ? rc : sl_tls_write(s, data, len);
    }
    if (!to_client && SL_UP_TLS(s->up))
        return sl_tls_up_write(s->up, data, len);
    int rc;
    *done = session_write_now(s, to_client, data, len, &rc);
    return rc;
}

int sl_write_block(sl_session_t *s, bool to_client, sl_block_t *b, size_t off, size_t len)
{
    size_t done;
    int rc = write_start(s, to_client, b->data + off, len, &done);
    if (rc != 0 || done == len)
        return rc;
    return queue_block(s, to_client, b, off + done, len - done);
}

int sl__client_write_raw(sl_session_t *s, sl_block_t *b)
{
    size_t done = write_now((uv_stream_t *)&s->client, b->data, b->len);
    return done == b->len ? 0 : queue_block(s, true, b, done, b->len - done);
}

int sl__backend_write_raw(sl_upstream_t *up, sl_block_t *b)
{
    size_t done = write_now((uv_stream_t *)&up->tcp, b->data, b->len);
    if (done == b->len)
        return 0;
    if (up->session && up->session->up == up)
        return queue_block(up->session, false, b, done, b->len - done);
    /* Idle (tickets, alerts): no session to pause, no backpressure. */
    sl_wreq_t *r = wreq_get(up->worker);
    if (r == NULL)
        return UV_ENOMEM;
    sl_block_ref(b);
    r->block = b;
    uv_buf_t buf = uv_buf_init(b->data + done, (unsigned)(b->len - done));
    r->to_client = false;
    r->up = up;
    int rc = uv_write(&r->req, (uv_stream_t *)&up->tcp, &buf, 1, write_cb);
    if (rc < 0)
        wreq_put(up->worker, r);
    return rc;
}

int sl_write_copy(sl_session_t *s, bool to_client, const void *data, size_t len)
{
    size_t done;
    int rc = write_start(s, to_client, data, len, &done);
    if (rc != 0 || done == len)
        return rc;
    return queue_copy(s, to_client, (const char *)data + done, len - done);
}
