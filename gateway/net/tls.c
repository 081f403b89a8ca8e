/*
 * tls.c: one client connection's TLS, between the socket and the session.
 *
 * OpenSSL talks to a small BIO of ours instead of a socket. Its read side
 * hands OpenSSL the ciphertext block that libuv just read, in place (the
 * block is kept by reference only while the session is paused with bytes
 * of it unread); its write side encrypts straight into pool blocks that
 * io.c writes to the socket with uv_write. No memory BIO that grows and
 * stays grown, and with SSL_MODE_RELEASE_BUFFERS an idle TLS connection
 * holds no buffer at all: the SSL object, a timer, and this struct.
 *
 * Plaintext comes out of SSL_read into a pool block that is handed to
 * sl_session_client_read() exactly like a plain read, so the WebSocket and
 * HTTP paths do not know TLS exists. The session pauses reading when it is
 * not ready for more; then we stop calling SSL_read too, and since bytes
 * already taken off the socket would never wake libuv again, resuming
 * schedules a zero-time timer ("kick") that delivers them from a fresh
 * callback, never from inside the session code that resumed.
 *
 * The handshake is the dangerous part of a reconnect storm. Each one is
 * counted against the worker's max_handshakes (listener.c pauses accepting
 * at the cap) and bounded by handshake_timeout; a bad ClientHello fails the
 * handshake and closes the connection, which keeps nothing afterwards.
 * Admission, which comes after the request head, therefore only ever sees
 * clients that finished their handshake.
 *
 * The second half of the file is the same machinery facing a backend (pools
 * with `tls: true`), OpenSSL in the client role: both halves share the BIO,
 * which works on a small tls_io_t. A backend connection's handshake ends in
 * a callback to upstream.c, which only then tells the session the backend is
 * ready; its plaintext goes to sl_session_backend_read(); an idle kept-alive
 * one still reads TLS 1.3 tickets without being thrown away for them.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "sluice/log.h"
#include "tls.h"

/* What our BIO reads from and writes to; one per TLS connection, either side. */
typedef struct tls_io {
    sl_block_t *in;                  /* ciphertext OpenSSL has not taken yet (a reference) */
    uint32_t in_off;
    sl_block_t *out;                 /* ciphertext being gathered for the socket */
    int out_err;                     /* the first error queueing ciphertext */
    sl_bufpool_t *bufs;              /* the worker's pool */
    int (*send)(void *owner, sl_block_t *b);   /* queue a ciphertext block (takes a ref) */
    void *owner;                     /* the session, or the upstream */
} tls_io_t;

struct sl_tls_conn {
    tls_io_t io;
    SSL *ssl;
    sl_tls_set_t *set;               /* a reference: the SNI callback's contexts */
    uv_timer_t timer;                /* the handshake timeout, then kicks */
    int eof_status;                  /* the socket ended while plaintext was undelivered */
    bool handshaking;                /* counted in w->tls_handshakes */
    bool shutdown_sent;
    bool failed;                     /* a TLS error: its session must not be resumed */
    unsigned answers;                /* records written in answer since the client's last data */
};

/*
 * Some records make OpenSSL write one back at once, whether or not the client
 * reads: a TLS 1.3 KeyUpdate that asks for ours, a TLS 1.2 ClientHello after
 * the handshake (renegotiation: refused with a warning alert, and the
 * connection goes on). The client's write queue only ever pauses the backend,
 * so a client that sends those and never reads would grow it by what it
 * sends, for as long as it sends. A real client does either now and then,
 * between data: more than this many answers in a row, with no application
 * data from the client among them, is treated as a TLS error.
 */
#define MAX_ANSWERS 32

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

/* ---- our BIO: reads from the current block, writes into pool blocks ---- */

static void flush_io(tls_io_t *io)
{
    sl_block_t *b = io->out;
    if (b == NULL)
        return;
    io->out = NULL;
    int rc = b->len > 0 ? io->send(io->owner, b) : 0;
    if (rc < 0 && io->out_err == 0)
        io->out_err = rc;
    sl_block_unref(io->bufs, b);
}

static void flush_out(sl_session_t *s)
{
    flush_io(&s->tlsc->io);
}

static int bio_read(BIO *bio, char *buf, int len)
{
    tls_io_t *io = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (io->in == NULL || io->in_off >= io->in->len) {
        BIO_set_retry_read(bio);
        return -1;
    }
    uint32_t n = SL_MIN((uint32_t)len, io->in->len - io->in_off);
    memcpy(buf, io->in->data + io->in_off, n);
    io->in_off += n;
    return (int)n;
}

static int bio_write(BIO *bio, const char *buf, int len)
{
    tls_io_t *io = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    size_t done = 0;
    while (done < (size_t)len) {
        if (io->out == NULL && (io->out = sl_block_get(io->bufs)) == NULL) {
            io->out_err = UV_ENOMEM;
            return -1;
        }
        size_t n = SL_MIN((size_t)len - done, (size_t)(SL_BLOCK_SIZE - io->out->len));
        memcpy(io->out->data + io->out->len, buf + done, n);
        io->out->len += (uint32_t)n;
        done += n;
        if (io->out->len == SL_BLOCK_SIZE)
            flush_io(io);
    }
    return len;
}

static long bio_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *bio)
{
    BIO_set_init(bio, 1);
    return 1;
}

static void bio_method_make(void)
{
    bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sluice-session");
    if (bio_method == NULL)
        return;
    BIO_meth_set_read(bio_method, bio_read);
    BIO_meth_set_write(bio_method, bio_write);
    BIO_meth_set_ctrl(bio_method, bio_ctrl);
    BIO_meth_set_create(bio_method, bio_create);
}

/* ---- input ---- */

static void release_input(tls_io_t *io)
{
    if (io->in && io->in_off >= io->in->len) {
        sl_block_unref(io->bufs, io->in);
        io->in = NULL;
        io->in_off = 0;
    }
}

/* Take a fresh ciphertext block (a reference); what was held before is spent. */
static void take_input(tls_io_t *io, sl_block_t *b)
{
    if (io->in)
        sl_block_unref(io->bufs, io->in);
    sl_block_ref(b);
    io->in = b;
    io->in_off = 0;
}

static void io_clear(tls_io_t *io)
{
    if (io->in)
        sl_block_unref(io->bufs, io->in);
    if (io->out)
        sl_block_unref(io->bufs, io->out);
    io->in = io->out = NULL;
}

/*
 * Bytes that SSL_read can turn into something without reading the socket:
 * ciphertext of ours OpenSSL has not taken, or plaintext it decrypted and
 * has not handed out (SSL_pending). Not SSL_has_pending: that is also true
 * for the start of a record whose rest is still on the wire, and a kick
 * for that finds nothing to do, keeps the socket unread and kicks again, a
 * busy loop for as long as the connection lives.
 */
static bool io_holds(const tls_io_t *io, const SSL *ssl)
{
    return (io->in && io->in_off < io->in->len) || SSL_pending(ssl) > 0;
}

static bool holds_input(const sl_tls_conn_t *c)
{
    return io_holds(&c->io, c->ssl);
}

static void handshake_done(sl_session_t *s)
{
    sl_tls_conn_t *c = s->tlsc;
    c->handshaking = false;
    s->w->tls_handshakes--;
    sl_listeners_tls_resume(s->w);
    uv_timer_stop(&c->timer);
    sl_log_debug("client %s: %s %s%s", s->peer_ip, SSL_get_version(c->ssl),
                 SSL_get_cipher_name(c->ssl), SSL_session_reused(c->ssl) ? " (resumed)" : "");
    /* The request head's clock starts now: the handshake had its own. */
    s->head_deadline = sl_now(s) + s->rt->cfg->timeouts.head;
    sl_session_arm_timer(s);
}

/* OpenSSL's message callback on a client connection, after the handshake:
   counts the handshake and alert messages we write. read_plain sets the
   count back to 0 when the client's data comes. */
static void client_msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                          SSL *ssl, void *arg)
{
    sl_tls_conn_t *c = arg;
    if (len > 0 && write_p && !c->handshaking &&
        (content_type == SSL3_RT_HANDSHAKE || content_type == SSL3_RT_ALERT))
        c->answers++;
}

/*
 * Decrypt into b until it is full (SSL_ERROR_NONE) or OpenSSL says why not.
 * Data from the client ends a run of answers (MAX_ANSWERS): each SSL_read
 * that returns bytes, not each application data record, for an empty one
 * carries none (a KeyUpdate flood with an empty record after each went on
 * for ever when records reset the count).
 */
static int read_plain(SSL *ssl, sl_block_t *b, unsigned *answers)
{
    while (b->len < SL_BLOCK_SIZE) {
        ERR_clear_error();
        int n = SSL_read(ssl, b->data + b->len, (int)(SL_BLOCK_SIZE - b->len));
        if (n <= 0)
            return SSL_get_error(ssl, n);
        b->len += (uint32_t)n;
        if (answers)
            *answers = 0;
    }
    return SSL_ERROR_NONE;
}

/* Decrypt into pool blocks and hand them to the session while it wants data. */
static void pump(sl_session_t *s)
{
    sl_tls_conn_t *c = s->tlsc;
    while (s->state != SL_SS_CLOSING && sl__client_wants_data(s)) {
        sl_block_t *b = sl_block_get(&s->w->bufs);
        if (b == NULL) {
            sl_session_close(s);
            return;
        }
        int err = read_plain(c->ssl, b, &c->answers);
        if (c->answers > MAX_ANSWERS) {
            /* Answers not yet flushed from c->io.out go with the connection. */
            sl_log_debug("client %s: TLS: %u answers to the client without data from it, "
                         "closing", s->peer_ip, c->answers);
            sl_block_unref(&s->w->bufs, b);
            c->failed = true;
            sl_session_close(s);
            return;
        }
        /* What OpenSSL wrote while reading (tickets, key updates, alerts)
           stays in c->io.out: anything the session writes to the client
           goes after it through the same block and flushes both. */
        if (b->len > 0)
            sl_session_client_read(s, b);
        sl_block_unref(&s->w->bufs, b);
        if (err == SSL_ERROR_NONE)
            continue;   /* the block filled up: there may be more */
        if (err == SSL_ERROR_WANT_READ)
            break;
        if (err != SSL_ERROR_ZERO_RETURN)
            c->failed = true;
        if (s->state != SL_SS_CLOSING && !s->client_eof) {
            if (err != SSL_ERROR_ZERO_RETURN)
                sl_log_debug("client %s: TLS error: %s", s->peer_ip,
                             ERR_reason_error_string(ERR_peek_last_error()));
            int status = err == SSL_ERROR_ZERO_RETURN ? UV_EOF : UV_EPROTO;
            /* A close_notify read in the same turn as the request before it:
               the session stopped reading after the request (as it would on
               plain TCP, where it sees the FIN only when it reads again), so
               the end waits for then, like undelivered plaintext does. */
            if (status == UV_EOF && !sl__client_wants_data(s))
                c->eof_status = status;
            else
                sl_session_client_eof(s, status);
        }
        break;
    }
    /* Out in one write: the handshake's last output (drive leaves it to
       us) and what reading wrote. When the client's close_notify came with
       its Finished, our answer (sl_tls_close_notify) has already taken the
       ticket out with it, in one segment: a second write would often meet
       the client's reset. */
    if (s->state != SL_SS_CLOSING)
        flush_out(s);
    release_input(&c->io);
}

static void drive(sl_session_t *s)
{
    sl_tls_conn_t *c = s->tlsc;
    if (c->handshaking) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            flush_out(s);   /* our flight, or an alert; a finished handshake's goes in pump */
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ && c->io.out_err == 0) {
                release_input(&c->io);
                return;
            }
            sl_log_debug("client %s: TLS handshake failed: %s", s->peer_ip,
                         ERR_reason_error_string(ERR_peek_last_error()));
            ERR_clear_error();
            sl_session_close(s);
            return;
        }
        handshake_done(s);
    }
    pump(s);
}

void sl_tls_on_read(sl_session_t *s, sl_block_t *b)
{
    sl_tls_conn_t *c = s->tlsc;
    if (s->state == SL_SS_CLOSING)
        return;
    /* io.c reads the socket only when we hold no input: c->io.in is spent, if set. */
    take_input(&c->io, b);
    drive(s);
}

void sl_tls_on_eof(sl_session_t *s, int status)
{
    sl_tls_conn_t *c = s->tlsc;
    if (s->state == SL_SS_CLOSING)
        return;
    if (c->handshaking) {
        sl_session_close(s);   /* a half ClientHello costs nothing more */
        return;
    }
    if (!sl__client_wants_data(s)) {
        /* Delivered after what is still undelivered, when the session reads
           again (on plain TCP it would see the end only then, too). */
        if (c->eof_status == 0)
            c->eof_status = status;
        return;
    }
    pump(s);
    if (s->state != SL_SS_CLOSING && !s->client_eof)
        sl_session_client_eof(s, status);
}

bool sl_tls_holds_input(const sl_session_t *s)
{
    return holds_input(s->tlsc) || s->tlsc->eof_status != 0;
}

static void on_timer(uv_timer_t *t)
{
    sl_tls_conn_t *c = sl_container_of(t, sl_tls_conn_t, timer);
    sl_session_t *s = t->data;
    if (s->state == SL_SS_CLOSING)
        return;
    if (c->handshaking) {
        sl_log_debug("client %s: TLS handshake timed out", s->peer_ip);
        sl_session_close(s);
        return;
    }
    /* A kick: reading resumed with plaintext or ciphertext already in hand. */
    pump(s);
    if (c->eof_status && !holds_input(c) && s->state != SL_SS_CLOSING && !s->client_eof) {
        int st = c->eof_status;
        c->eof_status = 0;
        sl_session_client_eof(s, st);
        return;
    }
    sl_client_resume(s, 0);   /* socket reading again, if still wanted */
}

void sl_tls_kick(sl_session_t *s)
{
    sl_tls_conn_t *c = s->tlsc;
    if (!c->handshaking && s->state != SL_SS_CLOSING && sl_tls_holds_input(s))
        uv_timer_start(&c->timer, on_timer, 0, 0);
}

/* ---- output ---- */

int sl_tls_write(sl_session_t *s, const void *data, size_t len)
{
    sl_tls_conn_t *c = s->tlsc;
    if (c->handshaking || c->shutdown_sent || len > INT32_MAX)
        return UV_ENOTCONN;
    ERR_clear_error();
    int r = SSL_write(c->ssl, data, (int)len);
    flush_out(s);
    if (r <= 0) {
        ERR_clear_error();
        return UV_EPROTO;
    }
    return c->io.out_err;
}

/* Our close_notify, written out at once (callers see it is the first, and
   not after a fatal error: OpenSSL's SSL_shutdown must not follow one). */
static void send_close_notify(SSL *ssl, tls_io_t *io)
{
    ERR_clear_error();
    SSL_shutdown(ssl);
    ERR_clear_error();
    flush_io(io);
}

void sl_tls_close_notify(sl_session_t *s)
{
    sl_tls_conn_t *c = s->tlsc;
    /* A client's close_notify, though, is answered with ours. */
    if (c->handshaking || c->shutdown_sent || c->failed)
        return;
    c->shutdown_sent = true;
    send_close_notify(c->ssl, &c->io);
}

/* ---- life ---- */

static int client_send(void *owner, sl_block_t *b)
{
    return sl__client_write_raw(owner, b);
}

int sl_tls_conn_start(sl_session_t *s, size_t index)
{
    pthread_once(&bio_once, bio_method_make);
    sl_tls_conn_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return SL_ENOMEM;
    s->tlsc = c;
    c->io.bufs = &s->w->bufs;
    c->io.send = client_send;
    c->io.owner = s;
    uv_timer_init(&s->w->loop, &c->timer);
    c->timer.data = s;
    s->pending_closes++;
    c->set = sl_tls_set_get(index);
    if (c->set == NULL || bio_method == NULL)
        return SL_ENOENT;
    c->ssl = SSL_new(sl_tls_set_ctx(c->set));
    BIO *bio = c->ssl ? BIO_new(bio_method) : NULL;
    if (bio == NULL)
        return SL_ENOMEM;
    BIO_set_data(bio, &c->io);
    SSL_set_bio(c->ssl, bio, bio);
    SSL_set_accept_state(c->ssl);
    SSL_set_msg_callback(c->ssl, client_msg_cb);
    SSL_set_msg_callback_arg(c->ssl, c);
    c->handshaking = true;
    s->w->tls_handshakes++;
    uv_timer_start(&c->timer, on_timer, sl_tls_set_handshake_timeout(c->set), 0);
    return 0;
}

void sl_tls_conn_close(sl_session_t *s, void (*cb)(uv_handle_t *))
{
    sl_tls_conn_t *c = s->tlsc;
    if (c->handshaking) {
        c->handshaking = false;
        s->w->tls_handshakes--;
        sl_listeners_tls_resume(s->w);
    }
    uv_timer_stop(&c->timer);
    c->timer.data = s;
    uv_close((uv_handle_t *)&c->timer, cb);
}

void sl_tls_conn_free(sl_session_t *s)
{
    sl_tls_conn_t *c = s->tlsc;
    /* OpenSSL drops a session from the cache when its connection was not shut
       down with close_notify both ways. Clients (and we, on our own closes)
       often just close: keep the session unless TLS itself failed. */
    if (c->ssl && !c->handshaking && !c->failed)
        SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(c->ssl);   /* frees our BIO too */
    io_clear(&c->io);
    sl_tls_set_unref(c->set);
    free(c);
    s->tlsc = NULL;
}

/* ==== the backend side: one upstream connection, OpenSSL as the client ==== */

struct sl_tls_up {
    tls_io_t io;
    SSL *ssl;
    sl_tls_pool_t *pool;             /* a reference: the context and its session cache */
    void (*done)(sl_upstream_t *up, int status);
    int eof_status;                  /* the socket ended while plaintext was undelivered */
    bool handshaking;
    bool failed;
    bool eof_delivered;
    bool shutdown_sent;
};

static int up_send(void *owner, sl_block_t *b)
{
    return sl__backend_write_raw(owner, b);
}

/* The session that takes plaintext now, or NULL (idle, paused, closing). */
static sl_session_t *up_reader(sl_upstream_t *up)
{
    sl_session_t *s = up->session;
    if (s == NULL || up->closing || s->up != up || s->state == SL_SS_CLOSING ||
        s->backend_paused != 0)
        return NULL;
    return s;
}

static bool up_holds(const sl_tls_up_t *t)
{
    return io_holds(&t->io, t->ssl);   /* see holds_input */
}

static void up_fail(sl_upstream_t *up, sl_tls_up_t *t, int status)
{
    char why[256];
    long v = SSL_get_verify_result(t->ssl);
    unsigned long e = ERR_peek_last_error();
    if (v != X509_V_OK)
        snprintf(why, sizeof why, "certificate refused: %s", X509_verify_cert_error_string(v));
    else if (e != 0)
        ERR_error_string_n(e, why, sizeof why);
    else
        snprintf(why, sizeof why, "%s", uv_strerror(status));
    ERR_clear_error();
    sl_log_warn("backend %s: TLS handshake failed: %s", up->backend->name, why);
    t->failed = true;
    t->handshaking = false;
    sl_tls_pool_forget(t->pool, up->backend->name);
    t->done(up, status < 0 ? status : UV_EPROTO);
}

/* One step of the handshake; 1 done, 0 wants more, -1 failed (not yet reported). */
static int up_step(sl_tls_up_t *t)
{
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    flush_io(&t->io);
    if (r == 1 && t->io.out_err == 0)
        return 1;
    if (r != 1 && SSL_get_error(t->ssl, r) == SSL_ERROR_WANT_READ && t->io.out_err == 0)
        return 0;
    return -1;
}

static void up_handshake(sl_upstream_t *up, sl_tls_up_t *t)
{
    int r = up_step(t);
    release_input(&t->io);
    if (r < 0) {
        up_fail(up, t, t->io.out_err ? t->io.out_err : UV_EPROTO);
        return;
    }
    if (r == 0)
        return;
    t->handshaking = false;
    sl_log_debug("backend %s: %s %s%s", up->backend->name, SSL_get_version(t->ssl),
                 SSL_get_cipher_name(t->ssl), SSL_session_reused(t->ssl) ? " (resumed)" : "");
    t->done(up, 0);   /* the session starts reading: held bytes come by a kick */
}

static void up_deliver_eof(sl_upstream_t *up, sl_tls_up_t *t, sl_session_t *s, int status)
{
    t->eof_delivered = true;
    uv_read_stop((uv_stream_t *)&up->tcp);
    sl_session_backend_eof(s, status);
}

/* Decrypt into pool blocks and hand them to the session while it wants data. */
static void up_pump(sl_upstream_t *up, sl_tls_up_t *t)
{
    sl_session_t *s;
    while ((s = up_reader(up)) != NULL && !t->eof_delivered) {
        sl_block_t *b = sl_block_get(t->io.bufs);
        if (b == NULL) {
            sl_session_close(s);
            return;
        }
        int err = read_plain(t->ssl, b, NULL);
        flush_io(&t->io);
        if (b->len > 0) {
            s->last_rx = sl_now(s);
            sl_session_backend_read(s, b);
        }
        sl_block_unref(t->io.bufs, b);
        if (err == SSL_ERROR_NONE)
            continue;
        if (err == SSL_ERROR_WANT_READ)
            break;
        if (err != SSL_ERROR_ZERO_RETURN) {
            t->failed = true;
            sl_log_debug("backend %s: TLS error: %s", up->backend->name,
                         ERR_reason_error_string(ERR_peek_last_error()));
        }
        ERR_clear_error();
        if (up->session == s && !up->closing && s->state != SL_SS_CLOSING)
            up_deliver_eof(up, t, s, err == SSL_ERROR_ZERO_RETURN ? UV_EOF : UV_EPROTO);
        break;
    }
    release_input(&t->io);
}

/* An idle kept-alive connection: tickets are fine, anything else ends it. */
static void up_idle_read(sl_upstream_t *up, sl_tls_up_t *t)
{
    char one[1];
    ERR_clear_error();
    int n = SSL_read(t->ssl, one, 1);
    int err = n > 0 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, n);
    ERR_clear_error();
    flush_io(&t->io);
    release_input(&t->io);
    if (err != SSL_ERROR_WANT_READ)
        sl_upstream_drop_idle(up);
}

void sl_tls_up_on_read(sl_upstream_t *up, sl_block_t *b)
{
    sl_tls_up_t *t = SL_UP_TLS(up);
    if (up->closing || t->failed)
        return;
    take_input(&t->io, b);
    if (t->handshaking)
        up_handshake(up, t);
    else if (up->session == NULL)
        up_idle_read(up, t);
    else
        up_pump(up, t);
}

void sl_tls_up_on_eof(sl_upstream_t *up, int status)
{
    sl_tls_up_t *t = SL_UP_TLS(up);
    if (up->closing)
        return;
    if (t->handshaking) {
        up_fail(up, t, status);
        return;
    }
    sl_session_t *s = up->session;
    if (s == NULL) {
        sl_upstream_drop_idle(up);
        return;
    }
    if (up_holds(t) && up_reader(up) == NULL) {
        t->eof_status = status;   /* delivered after what is still undelivered */
        return;
    }
    up_pump(up, t);
    if (up->closing || t->eof_delivered)
        return;
    if (up->session == NULL)
        sl_upstream_drop_idle(up);
    else if (up->session == s && s->state != SL_SS_CLOSING)
        up_deliver_eof(up, t, s, status);
}

bool sl_tls_up_handshaking(const sl_upstream_t *up)
{
    return SL_UP_TLS(up)->handshaking;
}

bool sl_tls_up_holds_input(const sl_upstream_t *up)
{
    const sl_tls_up_t *t = SL_UP_TLS(up);
    return !t->handshaking && !t->eof_delivered && (up_holds(t) || t->eof_status != 0);
}

static void up_on_kick(uv_timer_t *h)
{
    sl_upstream_t *up = h->data;
    sl_tls_up_t *t = SL_UP_TLS(up);
    if (up->closing || t == NULL || up->session == NULL)
        return;
    sl_session_t *s = up->session;
    up_pump(up, t);
    if (up->closing || up->session != s || s->state == SL_SS_CLOSING)
        return;
    if (t->eof_status && !up_holds(t) && !t->eof_delivered) {
        up_deliver_eof(up, t, s, t->eof_status);
        return;
    }
    sl_backend_resume(s, 0);   /* the socket again, if still wanted */
}

void sl_tls_up_kick(sl_upstream_t *up)
{
    if (!up->closing && sl_tls_up_holds_input(up))
        uv_timer_start(&up->timer, up_on_kick, 0, 0);
}

void sl_tls_up_close_notify(sl_upstream_t *up)
{
    sl_tls_up_t *t = SL_UP_TLS(up);
    if (t == NULL || t->handshaking || t->failed || t->shutdown_sent)
        return;
    t->shutdown_sent = true;
    send_close_notify(t->ssl, &t->io);
}

int sl_tls_up_write(sl_upstream_t *up, const void *data, size_t len)
{
    sl_tls_up_t *t = SL_UP_TLS(up);
    if (t->handshaking || t->failed || len > INT32_MAX)
        return UV_ENOTCONN;
    ERR_clear_error();
    int r = SSL_write(t->ssl, data, (int)len);
    flush_io(&t->io);
    if (r <= 0) {
        ERR_clear_error();
        return UV_EPROTO;
    }
    return t->io.out_err;
}

int sl_tls_up_start(sl_upstream_t *up, const sl_cfg_pool_t *pc,
                    void (*done)(sl_upstream_t *up, int status))
{
    pthread_once(&bio_once, bio_method_make);
    sl_tls_up_t *t = calloc(1, sizeof *t);
    if (t == NULL)
        return SL_ENOMEM;
    up->tcp.data = t;
    t->done = done;
    t->io.bufs = &up->worker->bufs;
    t->io.send = up_send;
    t->io.owner = up;
    t->pool = sl_tls_pool_get(pc->name);
    if (t->pool == NULL || bio_method == NULL)
        return SL_ENOENT;   /* the pool lost TLS in a reload since this session routed */
    t->ssl = sl_tls_pool_new_ssl(t->pool, pc,
                                 up->backend->cfg ? up->backend->cfg->address.host : NULL);
    BIO *bio = t->ssl ? BIO_new(bio_method) : NULL;
    if (bio == NULL)
        return SL_ENOMEM;
    BIO_set_data(bio, &t->io);
    SSL_set_bio(t->ssl, bio, bio);
    SSL_set_app_data(t->ssl, up->backend->name);   /* the session cache's key */
    SSL_SESSION *sess = sl_tls_pool_session(t->pool, up->backend->name);
    if (sess) {
        SSL_set_session(t->ssl, sess);
        SSL_SESSION_free(sess);
    }
    t->handshaking = true;
    if (up_step(t) != 0) {   /* the ClientHello; an answer cannot be here yet */
        ERR_clear_error();
        return UV_EPROTO;
    }
    return 0;
}

bool sl_tls_up_current(const sl_upstream_t *up, const char *pool)
{
    const sl_tls_up_t *t = SL_UP_TLS(up);
    if (t == NULL)
        return true;
    sl_tls_pool_t *now = sl_tls_pool_get(pool);   /* rebuilt by every reload */
    bool same = now != NULL && now == t->pool;
    sl_tls_pool_unref(now);
    return same;
}

void sl_tls_up_renamed(sl_upstream_t *up)
{
    sl_tls_up_t *t = SL_UP_TLS(up);
    if (t && t->ssl)
        SSL_set_app_data(t->ssl, up->backend->name);   /* a later ticket is cached under it */
}

void sl_tls_up_free(sl_upstream_t *up)
{
    sl_tls_up_t *t = SL_UP_TLS(up);
    if (t == NULL)
        return;
    /* Without this, SSL_free marks the session (the one the cache holds)
       not resumable, as a connection not shut down both ways may be bad. */
    if (t->ssl && !t->handshaking && !t->failed)
        SSL_set_shutdown(t->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(t->ssl);   /* frees our BIO too */
    io_clear(&t->io);
    sl_tls_pool_unref(t->pool);
    free(t);
    up->tcp.data = NULL;
}
