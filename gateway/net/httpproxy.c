/*
 * httpproxy.c: the plain HTTP path — one request/response exchange at a
 * time on a kept-alive client connection, bodies streamed both ways as raw
 * bytes (chunked encoding included), backend connections reused.
 *
 * The request head is rewritten (hop-by-hop headers out, forwarding headers
 * in); bodies are not: the HTTP parser only counts which bytes belong to the
 * message, and those bytes are forwarded as slices of the blocks they were
 * read into. Pipelined requests wait in the head buffer until the exchange in
 * flight is complete, because HTTP/1.1 answers in order.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "sluice/log.h"
#include "session.h"

static void exchange_maybe_done(sl_session_t *s);

/*
 * The response is whole but the exchange cannot go on (the client is still
 * sending a body the backend will not read). A plain close lost the answer:
 * libuv drops writes still queued, and closing a socket with the upload's
 * bytes unread makes the kernel send a reset, which throws away what it had
 * not sent yet (a 2 MiB 413 to a client that reads after its upload: 96 KiB
 * arrived). Finish instead: the answer goes out, then a FIN, and the rest of
 * the upload is read and dropped for the lingering time.
 */
static void finish_early(sl_session_t *s)
{
    s->keep_alive = false;
    sl_session_log(s);
    sl_session_finish(s);
}

/* The status for a request body the parser refused: its own (400, 431). */
static int body_error(const sl_session_t *s)
{
    return s->req->error_status ? s->req->error_status : 400;
}

void sl_http_begin(sl_session_t *s)
{
    /* The body is read when the backend can take it (sl_http_backend_ready). */
    sl_client_pause(s, SL_PAUSE_WAITING);
    s->state = SL_SS_HTTP;
    s->req_done = false;
    s->resp_done = false;
    s->resp_started = false;
    s->up_reused = s->fresh_only = false;
    /* keepalive: 0 means no second request: the response then says so. */
    s->keep_alive = s->req->head.keep_alive && !s->draining && !s->w->stopping &&
                    s->rt->cfg->timeouts.keepalive > 0;
    sl_count(&s->w->counters, SL_CTR_HTTP_REQUESTS, 1);
    /* Rewrite the head now, while its spans index the head buffer; then what
       follows the head (body, pipelined requests) moves to the front. */
    const sl_http_head_t *h = &s->req->head;
    size_t cap = h->head_len + 1024;
    s->fwd = malloc(cap);
    if (s->fwd == NULL) {
        sl_session_http_error(s, 500, NULL);
        return;
    }
    sl_http_forward_t fw = {
        .client_ip = s->peer_ip,
        .client_trusted = s->peer_trusted,
        .tls = s->tls,
        .websocket = false,
    };
    ssize_t n = sl_http_write_request(h, s->head, &fw, s->fwd, cap);
    if (n < 0) {
        sl_session_http_error(s, 400, NULL);
        return;
    }
    s->fwd_len = (uint32_t)n;
    sl_session_head_consume(s, h->head_len);
    /* Judge the body bytes that came with the head before any byte goes to a
       backend: a bad chunk size is refused here, not halfway through. */
    bool done = false;
    ssize_t body = sl_http_parse_body(s->req, s->head, s->head_len, &done);
    if (body < 0) {
        sl_session_http_error(s, body_error(s), NULL);
        return;
    }
    s->body_buffered = (uint32_t)body;
    s->req_done = done;
    sl_session_admit_or_go(s);
}

/* Forward the request body bytes that came with the head (already judged). */
static int forward_buffered_body(sl_session_t *s)
{
    uint32_t n = s->body_buffered;
    s->body_buffered = 0;
    if (n == 0)
        return 0;
    if (sl_write_copy(s, false, s->head, n) != 0)
        return SL_EINVAL;
    s->bytes_c2b += n;
    sl_session_head_consume(s, n);
    return 0;
}

/*
 * timeouts.backend_response is how long the backend may think: it runs from
 * the moment the request is complete (an upload of any length is bounded by
 * the idle timeout instead, as it progresses) until the response head, and
 * again after each interim (1xx) response.
 */
static void await_response(sl_session_t *s)
{
    bool waiting = s->req_done && s->resp && s->resp->phase == SL_HTTP_PHASE_HEAD;
    s->head_deadline = waiting ? sl_now(s) + s->rt->cfg->timeouts.backend_response : 0;
    sl_session_arm_timer(s);
}

/* Body bytes that arrived while the request waited (for admission, for a
   backend connection) sit in the head buffer behind those judged with the
   head: judge them too, so they go as body and not as the next request. */
static int judge_early_body(sl_session_t *s)
{
    if (s->req_done || s->head_len <= s->body_buffered)
        return 0;
    bool done = false;
    ssize_t more = sl_http_parse_body(s->req, s->head + s->body_buffered,
                                      s->head_len - s->body_buffered, &done);
    if (more < 0)
        return SL_EINVAL;
    s->body_buffered += (uint32_t)more;
    s->req_done = done;
    return 0;
}

/* A request that may be sent again (RFC 9110 9.2.2, RFC 9112 9.3.1): an
   idempotent method, no body, all of it written at once from s->fwd. */
static bool replayable(const sl_session_t *s)
{
    const sl_http_head_t *h = &s->req->head;
    bool idempotent = h->method == HTTP_GET || h->method == HTTP_HEAD ||
                      h->method == HTTP_OPTIONS || h->method == HTTP_TRACE ||
                      h->method == HTTP_PUT || h->method == HTTP_DELETE;
    return idempotent && s->req_done && s->body_buffered == 0 && h->content_length <= 0 &&
           !h->chunked;
}

/*
 * A kept-alive backend connection can be closed by the backend just as we
 * reuse it (its own keep-alive timeout ran out: Node's is 5 s): the request
 * meets an end or a reset before any byte of an answer. Idle connections are
 * watched, but the close can cross the request on the wire. The request then
 * goes once more, on a new connection, when it is safe to send twice; before,
 * the client got a 502 for the backend's ordinary housekeeping.
 */
static bool stale_retry(sl_session_t *s)
{
    if (s->fwd == NULL || s->fresh_only || s->resp_started)
        return false;
    sl_log_debug("client %s: kept-alive backend connection closed under the request; "
                 "sending it again on a new one", s->peer_ip);
    sl_upstream_release(s, false);
    sl_session_resp_free(s);
    s->fresh_only = true;
    /* Not read until the request is on its way again, as before the first
       try (sl_http_begin): a half-close read meanwhile, with no response
       begun, was taken for a client gone, and its answer was lost. */
    sl_client_pause(s, SL_PAUSE_WAITING);
    sl_upstream_connect(s);
    return true;
}

void sl_http_backend_ready(sl_session_t *s)
{
    const sl_http_head_t *h = &s->req->head;
    if (judge_early_body(s) != 0) {
        sl_session_http_error(s, body_error(s), NULL);
        return;
    }
    int rc = sl_write_copy(s, false, s->fwd, s->fwd_len);
    /* Kept for one more try while no answer has come, if sent on a
       kept-alive connection and safe to send twice (see stale_retry). */
    if (!(s->up_reused && !s->fresh_only && replayable(s))) {
        free(s->fwd);
        s->fwd = NULL;
    }
    if (rc != 0) {
        sl_session_http_error(s, 502, NULL);
        return;
    }
    if (forward_buffered_body(s) != 0) {
        sl_session_http_error(s, 502, NULL);
        return;
    }
    if (sl_session_resp_begin(s, h->method) != 0) {
        sl_session_http_error(s, 502, NULL);
        return;
    }
    await_response(s);
    /* Read on: the rest of the body, or, once the request is all sent and
       nothing of a next one waits, the client's end (sl_http_on_client_eof). */
    if (!s->req_done || s->head_len == 0)
        sl_client_resume(s, SL_PAUSE_WAITING);
}

void sl_http_on_client_data(sl_session_t *s, sl_block_t *b, size_t off)
{
    if (s->req_done || s->up == NULL || !s->up->connected) {
        /* Pipelined bytes while an exchange is in flight: keep them for later. */
        if (sl_fit(&s->head, &s->head_cap, s->head_len + (b->len - (uint32_t)off),
                   sl_head_max(s)) != 0) {
            sl_session_http_error(s, 400, NULL);
            return;
        }
        memcpy(s->head + s->head_len, b->data + off, b->len - off);
        s->head_len += b->len - (uint32_t)off;
        sl_client_pause(s, SL_PAUSE_WAITING);
        return;
    }
    bool done = false;
    ssize_t n = sl_http_parse_body(s->req, b->data + off, b->len - off, &done);
    if (n < 0) {
        sl_session_http_error(s, body_error(s), NULL);
        return;
    }
    if (n > 0) {
        sl_write_block(s, false, b, off, (size_t)n);
        s->bytes_c2b += (uint64_t)n;
    }
    if (done) {
        s->req_done = true;
        size_t rest = b->len - off - (size_t)n;
        if (rest > 0) {
            if (sl_fit(&s->head, &s->head_cap, s->head_len + (uint32_t)rest, sl_head_max(s)) != 0) {
                sl_session_http_error(s, 400, NULL);
                return;
            }
            memcpy(s->head + s->head_len, b->data + off + n, rest);
            s->head_len += (uint32_t)rest;
            sl_client_pause(s, SL_PAUSE_WAITING);   /* a next request waits its turn */
        }
        await_response(s);
        exchange_maybe_done(s);
    }
}

/* The n bytes of a read (from block b, or from resp_head when b is NULL)
   that the parser took as response body go to the client; `done`: the
   response ended in them. */
static void send_body(sl_session_t *s, sl_block_t *b, size_t off, size_t len, ssize_t n,
                      bool done)
{
    if (n > 0) {
        if (b == NULL)
            sl_write_copy(s, true, s->resp_head, (size_t)n);
        else
            sl_write_block(s, true, b, off, (size_t)n);
        s->bytes_b2c += (uint64_t)n;
    }
    if (done) {
        /* Bytes after the response's end, read with it: the backend frames
           its answers otherwise than we do (a body to a HEAD, a 204 or a 304,
           more than its Content-Length), so nothing it sends next on this
           connection can be trusted to start the next response. They are
           dropped, and the connection with them (backend_reusable). */
        if ((size_t)n < len)
            s->resp->head.keep_alive = false;
        /* A whole answer before the whole request: the backend read its head
           and answered (a 413, a 401), and may never read the body the
           client sends on, or read it as a request of its own, whose answer
           then waits on the connection for whoever is given it next. So it
           is not reused (nginx does the same). */
        if (!s->req_done)
            s->resp->head.keep_alive = false;
        s->resp_done = true;
        exchange_maybe_done(s);
    }
}

static void forward_body(sl_session_t *s, sl_block_t *b, size_t off, size_t len)
{
    bool done = false;
    ssize_t n = sl_http_parse_body(s->resp, b->data + off, len, &done);
    if (n < 0) {
        /* Malformed after its head went (a chunk-size line beyond its
           bound): the client is cut off, and a chunked body without its
           last chunk tells it the answer is not whole. */
        sl_session_close(s);
        return;
    }
    send_body(s, b, off, len, n, done);
}

/*
 * An HTTP/1.0 client keeps its connection only when the response says so
 * (RFC 9112 9.3 and C.2.2: keep-alive is negotiated in HTTP/1.0, not the
 * default). The backend's own Connection header is hop-by-hop and gone, so
 * the gateway says it: without it, such a client waited for a close that
 * came only with the keepalive timeout, or closed and reconnected.
 */
static ssize_t add_keep_alive(char *out, ssize_t n, size_t cap)
{
    static const char line[] = "Connection: keep-alive\r\n\r\n";
    if (n < 2 || (size_t)n - 2 + sizeof line - 1 > cap)
        return SL_EFULL;
    memcpy(out + n - 2, line, sizeof line - 1);   /* over the head's final CRLF */
    return n - 2 + (ssize_t)sizeof line - 1;
}

static bool client_is_http10(const sl_session_t *s)
{
    return s->req != NULL && s->req->head.http_major == 1 && s->req->head.http_minor == 0;
}

/* The response head is complete in resp_head[0..head_len): send it and its first body bytes. */
void sl_http_forward_response(sl_session_t *s, uint32_t head_len)
{
    sl_http_head_t *h = &s->resp->head;
    bool interim = h->status >= 100 && h->status < 200 && h->status != 101;
    if (h->status == 101 && s->state == SL_SS_HTTP) {
        /* A protocol switch nobody asked for: the gateway stripped any
           Upgrade from this request (RFC 9110 15.2.2). */
        sl_session_http_error(s, 502, NULL);
        return;
    }
    if (!interim && h->chunked && client_is_http10(s)) {
        /* The request went on as HTTP/1.0, which chunked may not answer (RFC
           9112 6.1): such a client cannot read it, and it was passed on
           (with Connection: keep-alive, for a client that asked). */
        sl_session_http_error(s, 502, NULL);
        return;
    }
    if (!interim) {
        if (!h->keep_alive || sl_http_body_until_eof(s->resp) || s->state != SL_SS_HTTP)
            s->keep_alive = false;
    }
    /* An HTTP/1.0 client cannot take a 1xx (RFC 9110 15.2): it is dropped. */
    bool to_client = !interim || !s->req ||
                     (s->req->head.http_major == 1 && s->req->head.http_minor >= 1);
    /* The body bytes read with the head are judged before the head goes:
       what is malformed there is a 502, not an answer cut short. */
    bool body_done = false;
    ssize_t body = 0;
    if (!interim) {
        body = sl_http_parse_body(s->resp, s->resp_head + head_len, s->resp_len - head_len,
                                  &body_done);
        if (body < 0) {
            sl_session_http_error(s, 502, NULL);
            return;
        }
    }
    /* The rewrite adds at most ": " for a compact header line, and its own lines. */
    size_t cap = head_len + h->n_headers + 256;
    char *out = to_client ? malloc(cap) : NULL;
    if (to_client && out == NULL) {
        sl_session_close(s);
        return;
    }
    /* Connection: close goes on the final response only: a 1xx is not the
       response after which the connection closes (RFC 9112 9.6), and a
       client reading it on a 100 Continue may give up sending its body. */
    bool keep = interim || s->keep_alive;
    ssize_t n = to_client ? sl_http_write_response(h, s->resp_head, keep, out, cap) : 0;
    if (n > 0 && !interim && s->keep_alive && client_is_http10(s))
        n = add_keep_alive(out, n, cap);
    if (n < 0) {
        free(out);
        sl_session_http_error(s, 502, NULL);
        return;
    }
    if (to_client)
        sl_write_copy(s, true, out, (size_t)n);
    free(out);
    if (!interim) {
        s->resp_started = true;
        s->log_status = h->status;
    }
    if (interim) {
        /* 100 Continue and friends: the real response follows, in its time. */
        int rc = sl_session_resp_next(s, head_len);
        await_response(s);
        if (rc > 0)
            sl_http_forward_response(s, (uint32_t)rc);
        else if (rc != SL_NEED_MORE)
            sl_session_http_error(s, 502, NULL);
        return;
    }
    /* The rest of what was read follows the head. */
    uint32_t extra = s->resp_len - head_len;
    memmove(s->resp_head, s->resp_head + head_len, extra);
    s->resp_len = 0;
    s->head_deadline = 0;
    sl_session_arm_timer(s);   /* from here the idle timeout bounds the exchange */
    if (s->state != SL_SS_HTTP) {
        /* A refused upgrade: its body, then close. */
        s->state = SL_SS_HTTP;
        s->req_done = true;
        s->keep_alive = false;
    }
    send_body(s, NULL, 0, extra, body, body_done);
}

void sl_http_on_backend_data(sl_session_t *s, sl_block_t *b, size_t off)
{
    if (s->resp == NULL)
        return;
    if (s->fwd) {   /* an answer is coming: the request is not sent again */
        free(s->fwd);
        s->fwd = NULL;
    }
    if (s->resp->phase == SL_HTTP_PHASE_HEAD) {
        int rc = sl_session_resp_feed(s, b, off);
        if (rc == SL_NEED_MORE)
            return;
        if (rc < 0) {
            sl_session_http_error(s, 502, NULL);
            return;
        }
        sl_http_forward_response(s, (uint32_t)rc);
        return;
    }
    if (s->resp_done) {
        /* A backend that talks after its response is broken: let it go, and
           the client with it, once its whole answer has gone (finish_early). */
        finish_early(s);
        return;
    }
    forward_body(s, b, off, b->len - off);
}

/*
 * The client is read while its answer is awaited (until a next request's
 * bytes arrive), so that its end is seen: a reset says it is gone, and
 * the exchange ends there, with the backend connection let go, instead of
 * going on (a long poll, a slow answer) for nobody until the answer's end
 * or the idle timeout. A FIN is a half-close: the answer still goes out.
 */
void sl_http_on_client_eof(sl_session_t *s, int status)
{
    if (status != UV_EOF) {
        sl_log_debug("client %s: gone mid-exchange: %s", s->peer_ip, uv_strerror(status));
        sl_session_close(s);
        return;
    }
    if (!s->req_done && s->resp_started) {
        /* Half-closed in the middle of its upload, with the (early) answer
           on its way: the client stopped sending, not reading. The answer
           goes out whole (exchange_maybe_done), the backend is let go. A
           close here dropped what was still queued for the client. */
        s->keep_alive = false;
        if (s->resp_done)
            finish_early(s);
        return;
    }
    if (!s->req_done || s->resp == NULL) {
        sl_session_close(s);
        return;
    }
    /* Half-closed after a complete request: answer, then close. */
    s->keep_alive = false;
}

/*
 * The response was cut short where the client cannot tell from its framing:
 * a body that ends with the connection. An orderly close (a FIN) would tell
 * the client it has the whole body; a reset tells it the truth.
 */
static void abort_client(sl_session_t *s)
{
    uv_os_fd_t fd;
    struct linger reset = { .l_onoff = 1, .l_linger = 0 };
    if (uv_fileno((uv_handle_t *)&s->client, &fd) == 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    sl_session_close(s);
}

void sl_http_on_backend_eof(sl_session_t *s, int status)
{
    if (s->resp_done) {
        /* A whole answer, and the backend closed before the request's end
           (a 413 to an upload, Connection: close): normal. */
        finish_early(s);
        return;
    }
    if (s->resp && s->resp->phase == SL_HTTP_PHASE_BODY && sl_http_body_until_eof(s->resp)) {
        if (status != UV_EOF) {
            /* A reset, not the end: the body ends with the connection, so
               finishing here passed a part off as the whole response. */
            abort_client(s);
            return;
        }
        s->resp_done = true;
        s->keep_alive = false;
        if (!s->req_done) {
            /* An early answer that ends with the connection: the client
               knows it is whole only by our close, so that comes now, not
               after the idle timeout its unfinished upload would wait for. */
            finish_early(s);
            return;
        }
        sl_upstream_release(s, false);
        exchange_maybe_done(s);
        return;
    }
    if (stale_retry(s))
        return;
    if (!s->resp_started) {
        sl_session_http_error(s, 502, NULL);
        return;
    }
    sl_session_close(s);   /* cut off mid-body: the client must see it was truncated */
}

/*
 * May the backend connection serve another request? Its response must leave
 * it open, and so must the request: an HTTP/1.0 request goes out without the
 * client's Connection header (hop-by-hop), so without keep-alive, and a
 * backend then closes after its answer even when that answer is an HTTP/1.1
 * response that does not say so (RFC 9112 9.3). Reused, the connection was
 * gone under the next request: a 502 for it.
 */
static bool backend_reusable(const sl_session_t *s)
{
    if (s->resp == NULL || !s->resp->head.keep_alive || sl_http_body_until_eof(s->resp))
        return false;
    return s->req != NULL && s->req->head.http_major == 1 && s->req->head.http_minor >= 1;
}

static void exchange_maybe_done(sl_session_t *s)
{
    if (s->resp_done && !s->req_done && s->client_eof && s->state == SL_SS_HTTP) {
        finish_early(s);   /* the rest of an upload the client gave up on never comes */
        return;
    }
    if (!s->req_done || !s->resp_done || s->state != SL_SS_HTTP)
        return;
    bool reusable = backend_reusable(s);
    sl_session_log(s);
    /* The next request is logged as itself: a head the parser refuses has
       no method or target (not this one's), and its clock starts with it,
       not with this exchange (sl_session_client_read restarts it at the
       next head's first byte). */
    s->logged = false;
    s->log_status = 0;
    s->bytes_c2b = s->bytes_b2c = 0;
    free(s->log_target);
    s->log_target = NULL;
    s->exchange_started = sl_now(s);
    sl_upstream_release(s, reusable);
    /* Backpressure from the backend connection just let go (an early answer
       while the body still queued toward it) ends with it; the client stays
       paused for the exchange's end (SL_PAUSE_WAITING) until resumed below. */
    sl_client_resume(s, SL_PAUSE_BACKPRESSURE);
    sl_session_resp_free(s);
    if (!s->keep_alive || s->client_eof) {
        sl_session_finish(s);
        return;
    }
    /* Ready for the next request on this connection, under the config in
       force now: a reload's routes and limits reach kept-alive clients too. */
    if (s->rt != s->w->rt) {
        sl_runtime_t *old = s->rt;
        s->rt = sl_runtime_ref(s->w->rt);
        sl_runtime_unref(old);
    }
    s->state = SL_SS_HEAD;
    s->awaiting_next = true;
    /* Nothing of the next exchange has reached the client: the gateway may
       answer it itself (400, 404, 408, 502, 503...). Left set, every such
       answer on a kept-alive connection became a close without a word, and
       a client takes that for a stale connection and retries at once. */
    s->resp_started = false;
    s->service = -1;
    s->pool = -1;
    if (s->head_len == 0) {
        sl_session_head_free(s);   /* an idle kept-alive connection holds no buffer */
    } else {
        memset(s->req, 0, sizeof *s->req);
        s->req->max_head = (uint32_t)s->rt->cfg->limits.head_bytes;
        s->req->max_headers = s->rt->cfg->limits.headers;
        s->req->max_request_line = s->rt->cfg->limits.request_line;
        sl_http_parser_init(s->req, SL_HTTP_REQUEST, 0);
    }
    /* Bytes already here are the next head, or its start: the head timeout
       runs for it, not the keepalive one. */
    s->awaiting_next = s->head_len == 0;
    s->head_deadline = s->awaiting_next ? sl_session_keepalive_deadline(s)
                                        : sl_now(s) + s->rt->cfg->timeouts.head;
    sl_session_arm_timer(s);
    if (s->head_len > 0) {
        sl_session_parse_head(s);
        if (s->state != SL_SS_HEAD)
            return;     /* dispatched, or answered */
    }
    /* Read the next head, or the rest of one that came with the last read
       (a pipelined head cut by a segment or block boundary): the client was
       left paused then, and the rest never read until the timer's 408. */
    sl_client_resume(s, SL_PAUSE_WAITING);
}
