/*
 * bench/backend_conn.c: connection lifecycle, read buffers, batched writes
 * and the plain HTTP responder.
 *
 * Why this shape: the backend must hold 10,000 idle connections cheaply and
 * echo large messages without copying them. So a connection owns no buffer
 * while idle: reads land in 64 KiB buffers from a small free list, the echo
 * writes point into those buffers (a reference count keeps a buffer alive
 * until the last write carrying its bytes completes), and everything one
 * read produces goes out as a single uv_write of several pieces.
 * Backpressure is on two measures: bytes queued (1 MiB high, 256 KiB low) and
 * read buffers pinned by queued writes, so even a peer that trickles one byte
 * per read and never reads cannot make us pin unbounded memory.
 *
 * HTTP state (the head buffer and the parser, a few KiB) exists only while a
 * request is being read or answered, and requests on one connection are
 * answered strictly in order: reading stops while a response is pending, and
 * bytes that arrived behind a request are carried over to the next one.
 */
#include "backend.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/wshandshake.h"

#define HEAD_BUF_MAX (64 * 1024)     /* beyond any head the parser accepts */
#define FREE_RBUFS_MAX 64
#define FREE_WB_MAX 256
#define WB_ARENA_DEFAULT 2048

enum { WB_PLAIN = 0, WB_RESPONSE = 1 };

typedef struct be_http {
    sl_http_parser_t p;
    char *head;
    size_t len, cap;
    uint64_t body_bytes;
    bool has_body;
    bool keep_alive;
    int status;                  /* X-Backend-Status, or 200 */
    char *carry;                 /* bytes after this request */
    size_t carry_len;
} be_http_t;

static be_wbatch_t *free_wb;
static uint32_t n_free_wb;

static void http_feed(be_conn_t *c, const char *data, size_t len);

/* ---- read buffers ---- */

be_rbuf_t *be_rbuf_get(void)
{
    be_rbuf_t *rb = be_srv.free_rbufs;
    if (rb) {
        be_srv.free_rbufs = rb->next;
        be_srv.n_free_rbufs--;
    } else if (!(rb = malloc(sizeof(*rb)))) {
        return NULL;
    }
    rb->next = NULL;
    rb->refs = 1;
    return rb;
}

void be_rbuf_put(be_rbuf_t *rb)
{
    if (--rb->refs > 0)
        return;
    if (be_srv.n_free_rbufs < FREE_RBUFS_MAX && !be_srv.stopping) {
        rb->next = be_srv.free_rbufs;
        be_srv.free_rbufs = rb;
        be_srv.n_free_rbufs++;
    } else {
        free(rb);
    }
}

/* ---- write batches ---- */

be_wbatch_t *be_wb_new(be_conn_t *c, size_t arena_min)
{
    be_wbatch_t *w = NULL;
    if (arena_min <= WB_ARENA_DEFAULT && free_wb) {
        w = free_wb;
        free_wb = w->next_free;
        n_free_wb--;
    } else {
        size_t cap = SL_MAX(arena_min, (size_t)WB_ARENA_DEFAULT);
        if (!(w = malloc(sizeof(*w) + cap)))
            return NULL;
        w->arena_cap = cap;
    }
    w->conn = c;
    w->rb = NULL;
    w->nbufs = 0;
    w->arena_len = 0;
    w->next_free = NULL;
    w->req.data = (void *)(uintptr_t)WB_PLAIN;
    return w;
}

static void wb_free(be_wbatch_t *w)
{
    if (w->arena_cap == WB_ARENA_DEFAULT && n_free_wb < FREE_WB_MAX && !be_srv.stopping) {
        w->next_free = free_wb;
        free_wb = w;
        n_free_wb++;
    } else {
        free(w);
    }
}

/* Release the pooled batches at exit, so leak checkers see a clean heap. */
static void __attribute__((destructor)) wb_pool_free(void)
{
    while (free_wb) {
        be_wbatch_t *w = free_wb;
        free_wb = w->next_free;
        free(w);
    }
}

uint8_t *be_wb_reserve(be_wbatch_t *w, size_t len)
{
    if (w->nbufs == BE_WB_BUFS || w->arena_cap - w->arena_len < len)
        return NULL;
    uint8_t *p = w->arena + w->arena_len;
    w->arena_len += len;
    w->bufs[w->nbufs++] = uv_buf_init((char *)p, (unsigned)len);
    return p;
}

bool be_wb_copy(be_wbatch_t *w, const void *p, size_t len)
{
    uint8_t *dst = be_wb_reserve(w, len);
    if (!dst)
        return false;
    memcpy(dst, p, len);
    return true;
}

bool be_wb_add_rbuf(be_wbatch_t *w, be_rbuf_t *rb, const uint8_t *p, size_t len)
{
    if (w->nbufs == BE_WB_BUFS || (w->rb && w->rb != rb))
        return false;
    if (!w->rb) {
        w->rb = rb;
        rb->refs++;
    }
    w->bufs[w->nbufs++] = uv_buf_init((char *)p, (unsigned)len);
    return true;
}

bool be_wb_add_static(be_wbatch_t *w, const void *p, size_t len)
{
    if (w->nbufs == BE_WB_BUFS)
        return false;
    w->bufs[w->nbufs++] = uv_buf_init((char *)p, (unsigned)len);
    return true;
}

static void http_response_done(be_conn_t *c);

static void on_write(uv_write_t *req, int status)
{
    be_wbatch_t *w = sl_container_of(req, be_wbatch_t, req);
    be_conn_t *c = w->conn;
    bool response = (uintptr_t)req->data == WB_RESPONSE;
    c->pending_writes--;
    if (w->rb) {
        c->held_rbufs--;
        be_rbuf_put(w->rb);
    }
    wb_free(w);
    if (c->closed)
        return;
    if (status < 0) {
        be_conn_close(c);
        return;
    }
    if (response)
        http_response_done(c);
    if (c->closed)
        return;
    if (c->close_when_flushed) {
        if (c->pending_writes == 0)
            be_conn_close(c);
        return;
    }
    be_conn_flow(c);
    if (c->state == BE_WS_OPEN)
        be_ws_writable(c);
}

int be_wb_send(be_wbatch_t *w)
{
    be_conn_t *c = w->conn;
    if (w->nbufs == 0 || c->closed) {
        if (w->rb)
            be_rbuf_put(w->rb);
        wb_free(w);
        return 0;
    }
    int err = uv_write(&w->req, (uv_stream_t *)&c->tcp, w->bufs, w->nbufs, on_write);
    if (err < 0) {
        if (w->rb)
            be_rbuf_put(w->rb);
        wb_free(w);
        return err;
    }
    c->pending_writes++;
    if (w->rb)
        c->held_rbufs++;
    return 0;
}

/* ---- connection lifecycle ---- */

static void http_free(be_conn_t *c)
{
    if (!c->http)
        return;
    free(c->http->head);
    free(c->http->carry);
    free(c->http);
    c->http = NULL;
}

be_conn_t *be_conn_new(void)
{
    be_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    if (uv_tcp_init(be_srv.loop, &c->tcp) < 0) {
        free(c);
        return NULL;
    }
    be_link_t *head = &be_srv.conns;
    c->link.next = head->next;
    c->link.prev = head;
    head->next->prev = &c->link;
    head->next = &c->link;
    return c;
}

static void on_conn_closed(uv_handle_t *h)
{
    be_conn_t *c = sl_container_of((uv_tcp_t *)h, be_conn_t, tcp);
    free(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h);
}

void be_conn_close(be_conn_t *c)
{
    if (c->closed)
        return;
    c->closed = true;
    c->link.prev->next = c->link.next;
    c->link.next->prev = c->link.prev;
    if (c->is_ws) {
        be_srv.stats.open--;
        c->is_ws = false;
    }
    if (c->delay) {
        uv_close((uv_handle_t *)c->delay, on_timer_closed);
        c->delay = NULL;
    }
    http_free(c);
    be_ws_free(c);
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static bool wants_read(const be_conn_t *c)
{
    if (c->closed || c->read_paused)
        return false;
    return c->state == BE_HTTP_HEAD || c->state == BE_HTTP_BODY ||
           c->state == BE_WS_OPEN || c->state == BE_WS_CLOSE_SENT;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    be_rbuf_t *rb = be_rbuf_get();
    *buf = rb ? uv_buf_init((char *)rb->data, BE_RBUF_SIZE) : uv_buf_init(NULL, 0);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    be_conn_t *c = sl_container_of((uv_tcp_t *)s, be_conn_t, tcp);
    be_rbuf_t *rb = buf->base ? sl_container_of((uint8_t *)buf->base, be_rbuf_t, data) : NULL;
    if (nread < 0) {
        be_conn_close(c);
    } else if (nread > 0) {
        switch (c->state) {
        case BE_HTTP_HEAD:
        case BE_HTTP_BODY:
            http_feed(c, (const char *)rb->data, (size_t)nread);
            break;
        case BE_WS_OPEN:
        case BE_WS_CLOSE_SENT:
            be_ws_read(c, rb, 0, (size_t)nread);
            break;
        default:
            break;   /* not reading in these states */
        }
    }
    if (rb)
        be_rbuf_put(rb);
}

/* Start or stop reading to match the state and the backpressure. */
static void update_reading(be_conn_t *c)
{
    bool want = wants_read(c);
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = true;
    } else if (!want && c->reading && !c->closed) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

void be_conn_flow(be_conn_t *c)
{
    if (c->closed)
        return;
    size_t q = c->tcp.write_queue_size;
    if (!c->read_paused && (q > BE_HIGH_WATER || c->held_rbufs > BE_MAX_HELD_RBUFS))
        c->read_paused = true;
    else if (c->read_paused && q <= BE_LOW_WATER && c->held_rbufs <= BE_MAX_HELD_RBUFS / 2)
        c->read_paused = false;
    update_reading(c);
}

void be_conn_close_after_flush(be_conn_t *c)
{
    if (c->closed)
        return;
    c->state = BE_CLOSING;
    c->close_when_flushed = true;
    c->deadline = uv_now(be_srv.loop) + BE_CLOSE_GRACE_MS;
    update_reading(c);
    if (c->pending_writes == 0)
        be_conn_close(c);
}

int be_conn_start(be_conn_t *c)
{
    uv_tcp_nodelay(&c->tcp, 1);
    c->state = BE_HTTP_HEAD;
    update_reading(c);
    return c->reading ? 0 : UV_EINVAL;
}

/* ---- HTTP ---- */

static bool span_is(const char *base, sl_http_span_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(base + s.off, lit, n) == 0;
}

/* A complete response: status line, headers, body; queued as one write. */
static void http_write(be_conn_t *c, int status, const char *ctype, const char *body,
                       size_t body_len, const char *extra, bool keep_alive, bool send_body)
{
    be_wbatch_t *w = be_wb_new(c, 512 + body_len + (extra ? strlen(extra) : 0));
    if (!w) {
        be_conn_close(c);
        return;
    }
    int n = snprintf((char *)w->arena, w->arena_cap,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "X-Backend: %s\r\n%s%s\r\n",
                     status, sl_http_status_text(status), ctype, body_len, be_srv.opt.name,
                     extra ? extra : "", keep_alive ? "" : "Connection: close\r\n");
    size_t len = (size_t)SL_MAX(n, 0);
    if (len < w->arena_cap && send_body) {
        size_t b = SL_MIN(body_len, w->arena_cap - len);
        memcpy(w->arena + len, body, b);
        len += b;
    }
    w->arena_len = len;
    w->bufs[0] = uv_buf_init((char *)w->arena, (unsigned)len);
    w->nbufs = 1;
    w->req.data = (void *)(uintptr_t)WB_RESPONSE;
    c->state = BE_HTTP_RESPOND;
    update_reading(c);
    if (be_wb_send(w) < 0)
        be_conn_close(c);
}

/* An error or refusal before any request is answered: simple body, close. */
static void http_refuse(be_conn_t *c, int status, const char *extra)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "%d %s\n", status, sl_http_status_text(status));
    http_free(c);
    http_write(c, status, "text/plain", body, (size_t)n, extra, false, true);
}

/* The request (head and body) is complete: answer it. */
static void http_answer(be_conn_t *c)
{
    be_http_t *h = c->http;
    const sl_http_head_t *hd = &h->p.head;
    const char *base = h->head;
    sl_http_span_t path = hd->url;
    const char *q = memchr(base + path.off, '?', path.len);
    if (q)
        path.len = (uint32_t)(q - (base + path.off));
    bool send_body = hd->method != HTTP_HEAD;
    char extra[64] = "";
    if (h->has_body)
        snprintf(extra, sizeof(extra), "X-Body-Bytes: %llu\r\n",
                 (unsigned long long)h->body_bytes);
    be_srv.stats.http_requests++;
    if (span_is(base, path, "/healthz")) {
        http_write(c, h->status, "text/plain", "ok", 2, extra, h->keep_alive, send_body);
    } else if (span_is(base, path, "/stats")) {
        char json[1024];
        size_t n = be_stats_json(&be_srv, json, sizeof(json));
        http_write(c, h->status, "application/json", json, n, extra, h->keep_alive, send_body);
    } else {
        size_t cap = strlen(be_srv.opt.name) + hd->method_text.len + hd->url.len + 16;
        char *body = malloc(cap);
        if (!body) {
            be_conn_close(c);
            return;
        }
        int n = snprintf(body, cap, "hello %s %.*s %.*s", be_srv.opt.name,
                         (int)hd->method_text.len, base + hd->method_text.off,
                         (int)hd->url.len, base + hd->url.off);
        http_write(c, h->status, "text/plain", body, (size_t)SL_MAX(n, 0), extra,
                   h->keep_alive, send_body);
        free(body);
    }
}

static void on_delay(uv_timer_t *t)
{
    be_conn_t *c = t->data;
    if (!c->closed && c->http)
        http_answer(c);
}

/* Answer now or after --http-delay. */
static void http_complete(be_conn_t *c)
{
    c->state = BE_HTTP_RESPOND;
    update_reading(c);
    if (be_srv.opt.http_delay_ms == 0) {
        http_answer(c);
        return;
    }
    if (!c->delay) {
        c->delay = malloc(sizeof(*c->delay));
        if (!c->delay) {
            be_conn_close(c);
            return;
        }
        uv_timer_init(be_srv.loop, c->delay);
        c->delay->data = c;
    }
    uv_timer_start(c->delay, on_delay, be_srv.opt.http_delay_ms, 0);
}

static void http_response_done(be_conn_t *c)
{
    if (c->state != BE_HTTP_RESPOND || !c->http || !c->http->keep_alive) {
        be_conn_close(c);
        return;
    }
    char *carry = c->http->carry;
    size_t carry_len = c->http->carry_len;
    c->http->carry = NULL;
    http_free(c);
    c->state = BE_HTTP_HEAD;
    if (carry)
        http_feed(c, carry, carry_len);
    free(carry);
    update_reading(c);
}

/* Keep the bytes behind a complete request for the next one. */
static bool http_carry(be_conn_t *c, const char *data, size_t len)
{
    if (len == 0)
        return true;
    if (!(c->http->carry = malloc(len)))
        return false;
    memcpy(c->http->carry, data, len);
    c->http->carry_len = len;
    return true;
}

/* Body bytes of the current request; answers when it is complete. */
static void http_body(be_conn_t *c, const char *data, size_t len)
{
    bool done = false;
    ssize_t n = sl_http_parse_body(&c->http->p, data, len, &done);
    if (n < 0) {
        http_refuse(c, 400, NULL);
        return;
    }
    c->http->body_bytes += (uint64_t)n;
    if (!done) {
        c->state = BE_HTTP_BODY;
        return;
    }
    if (!http_carry(c, data + n, len - (size_t)n)) {
        be_conn_close(c);
        return;
    }
    http_complete(c);
}

static void http_upgrade(be_conn_t *c, int head_len)
{
    be_http_t *h = c->http;
    sl_ws_request_info_t info;
    const char *why = NULL;
    int st = sl_ws_check_request(&h->p.head, h->head, &info, &why);
    if (st != 0) {
        be_srv.stats.bad_requests++;
        http_refuse(c, st, st == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL);
        return;
    }
    if (!be_bucket_take(&be_srv.bucket, uv_hrtime() / 1000u)) {
        be_srv.stats.rejected++;
        if (be_srv.opt.overload == BE_OVERLOAD_EXIT) {
            fprintf(stderr, "sluice-backend %s: over capacity, falling over (exit 3)\n",
                    be_srv.opt.name);
            be_files_flush(&be_srv);
            exit(3);
        }
        http_refuse(c, 503, "Retry-After: 1\r\n");
        return;
    }
    be_ws_accept(c, h->head, &h->p.head, &info);
    size_t rest = h->len - (size_t)head_len;
    if (rest > 0 && !c->closed) {
        be_rbuf_t *rb = be_rbuf_get();
        if (!rb) {
            be_conn_close(c);
            return;
        }
        memcpy(rb->data, h->head + head_len, rest);
        http_free(c);
        be_ws_read(c, rb, 0, rest);
        be_rbuf_put(rb);
    }
    http_free(c);
}

/* A request head is complete at head_len: route it. */
static void http_head_done(be_conn_t *c, int head_len)
{
    be_http_t *h = c->http;
    const sl_http_head_t *hd = &h->p.head;
    if (sl_ws_is_upgrade(hd, h->head)) {
        http_upgrade(c, head_len);
        return;
    }
    h->keep_alive = hd->keep_alive;
    h->has_body = hd->chunked || hd->content_length >= 0;
    h->status = 200;
    const sl_http_header_t *st = sl_http_find(hd, h->head, "X-Backend-Status");
    if (st) {
        int v = atoi(h->head + st->value.off);
        if (v >= 200 && v <= 599)
            h->status = v;
    }
    const sl_http_header_t *ex = sl_http_find(hd, h->head, "Expect");
    if (ex && h->has_body &&
        sl_http_has_token(h->head + ex->value.off, ex->value.len, "100-continue")) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        be_wbatch_t *w = be_wb_new(c, sizeof(cont));
        if (!w || !be_wb_add_static(w, cont, sizeof(cont) - 1) || be_wb_send(w) < 0) {
            be_conn_close(c);
            return;
        }
    }
    http_body(c, h->head + head_len, h->len - (size_t)head_len);
}

/* Bytes for the request being read (head or body). */
static void http_feed(be_conn_t *c, const char *data, size_t len)
{
    if (c->state == BE_HTTP_BODY) {
        http_body(c, data, len);
        return;
    }
    if (!c->http) {
        if (!(c->http = calloc(1, sizeof(*c->http)))) {
            be_conn_close(c);
            return;
        }
        sl_http_parser_init(&c->http->p, SL_HTTP_REQUEST, 0);
    }
    be_http_t *h = c->http;
    if (h->len + len > HEAD_BUF_MAX) {
        http_refuse(c, 431, NULL);
        return;
    }
    if (h->len + len > h->cap) {
        size_t cap = SL_MAX(h->cap * 2, SL_MAX(h->len + len, (size_t)1024));
        char *p = realloc(h->head, cap);
        if (!p) {
            be_conn_close(c);
            return;
        }
        h->head = p;
        h->cap = cap;
    }
    memcpy(h->head + h->len, data, len);
    h->len += len;
    int r = sl_http_parse_head(&h->p, h->head, h->len);
    if (r == SL_NEED_MORE)
        return;
    if (r < 0) {
        be_srv.stats.bad_requests++;
        http_refuse(c, h->p.error_status ? h->p.error_status : 400, NULL);
        return;
    }
    http_head_done(c, r);
}
