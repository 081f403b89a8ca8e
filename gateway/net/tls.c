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
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "sluice/log.h"
#include "tls.h"

struct sl_tls_conn {
    SSL *ssl;
    sl_tls_set_t *set;               /* a reference: the SNI callback's contexts */
    uv_timer_t timer;                /* the handshake timeout, then kicks */
    sl_block_t *in;                  /* ciphertext OpenSSL has not taken yet (a reference) */
    uint32_t in_off;
    sl_block_t *out;                 /* ciphertext being gathered for the socket */
    int out_err;                     /* the first error queueing ciphertext */
    int eof_status;                  /* the socket ended while plaintext was undelivered */
    bool handshaking;                /* counted in w->tls_handshakes */
    bool shutdown_sent;
    bool failed;                     /* a TLS error: its session must not be resumed */
};

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

/* ---- our BIO: reads from the current block, writes into pool blocks ---- */

static void flush_out(sl_session_t *s)
{
    sl_tls_conn_t *c = s->tlsc;
    sl_block_t *b = c->out;
    if (b == NULL)
        return;
    c->out = NULL;
    int rc = b->len > 0 ? sl__client_write_raw(s, b) : 0;
    if (rc < 0 && c->out_err == 0)
        c->out_err = rc;
    sl_block_unref(&s->w->bufs, b);
}

static int bio_read(BIO *bio, char *buf, int len)
{
    sl_session_t *s = BIO_get_data(bio);
    sl_tls_conn_t *c = s->tlsc;
    BIO_clear_retry_flags(bio);
    if (c->in == NULL || c->in_off >= c->in->len) {
        BIO_set_retry_read(bio);
        return -1;
    }
    uint32_t n = SL_MIN((uint32_t)len, c->in->len - c->in_off);
    memcpy(buf, c->in->data + c->in_off, n);
    c->in_off += n;
    return (int)n;
}

static int bio_write(BIO *bio, const char *buf, int len)
{
    sl_session_t *s = BIO_get_data(bio);
    sl_tls_conn_t *c = s->tlsc;
    BIO_clear_retry_flags(bio);
    size_t done = 0;
    while (done < (size_t)len) {
        if (c->out == NULL && (c->out = sl_block_get(&s->w->bufs)) == NULL) {
            c->out_err = UV_ENOMEM;
            return -1;
        }
        size_t n = SL_MIN((size_t)len - done, (size_t)(SL_BLOCK_SIZE - c->out->len));
        memcpy(c->out->data + c->out->len, buf + done, n);
        c->out->len += (uint32_t)n;
        done += n;
        if (c->out->len == SL_BLOCK_SIZE)
            flush_out(s);
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

static void release_input(sl_tls_conn_t *c, sl_bufpool_t *pool)
{
    if (c->in && c->in_off >= c->in->len) {
        sl_block_unref(pool, c->in);
        c->in = NULL;
        c->in_off = 0;
    }
}

static bool holds_input(const sl_tls_conn_t *c)
{
    return (c->in && c->in_off < c->in->len) || SSL_has_pending(c->ssl);
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
        int err = SSL_ERROR_NONE;
        while (b->len < SL_BLOCK_SIZE) {
            ERR_clear_error();
            int n = SSL_read(c->ssl, b->data + b->len, (int)(SL_BLOCK_SIZE - b->len));
            if (n <= 0) {
                err = SSL_get_error(c->ssl, n);
                break;
            }
            b->len += (uint32_t)n;
        }
        flush_out(s);   /* tickets, key updates, alerts */
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
            sl_session_client_eof(s, err == SSL_ERROR_ZERO_RETURN ? UV_EOF : UV_EPROTO);
        }
        break;
    }
    release_input(c, &s->w->bufs);
}

static void drive(sl_session_t *s)
{
    sl_tls_conn_t *c = s->tlsc;
    if (c->handshaking) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        flush_out(s);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ && c->out_err == 0) {
                release_input(c, &s->w->bufs);
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
    /* io.c reads the socket only when we hold no input: c->in is spent, if set. */
    if (c->in) {
        sl_block_unref(&s->w->bufs, c->in);
        c->in = NULL;
    }
    sl_block_ref(b);
    c->in = b;
    c->in_off = 0;
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
    if (holds_input(c) && !sl__client_wants_data(s)) {
        c->eof_status = status;   /* delivered after what is still undelivered */
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
    return c->out_err;
}

void sl_tls_close_notify(sl_session_t *s)
{
    sl_tls_conn_t *c = s->tlsc;
    if (c->handshaking || c->shutdown_sent)
        return;
    c->shutdown_sent = true;
    ERR_clear_error();
    SSL_shutdown(c->ssl);
    ERR_clear_error();
    flush_out(s);
}

/* ---- life ---- */

int sl_tls_conn_start(sl_session_t *s, size_t index)
{
    pthread_once(&bio_once, bio_method_make);
    sl_tls_conn_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return SL_ENOMEM;
    s->tlsc = c;
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
    BIO_set_data(bio, s);
    SSL_set_bio(c->ssl, bio, bio);
    SSL_set_accept_state(c->ssl);
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
    if (c->in)
        sl_block_unref(&s->w->bufs, c->in);
    if (c->out)
        sl_block_unref(&s->w->bufs, c->out);
    sl_tls_set_unref(c->set);
    free(c);
    s->tlsc = NULL;
}
