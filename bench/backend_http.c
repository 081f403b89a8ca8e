/*
 * bench/backend_http.c: the plain HTTP responder and the upgrade decision.
 *
 * Why this shape: HTTP state (the head buffer and the core's parser, a few
 * KiB) exists only while a request is being read or answered, so an idle
 * keep-alive connection holds none. Requests on one connection are answered
 * strictly in order: reading stops while a response is pending (or delayed by
 * --http-delay), and bytes that arrived behind a request are carried over to
 * the next one. Bodies are counted, never stored. The head is parsed by the
 * core (sluice/http.h) and an upgrade checked by sluice/wshandshake.h; the
 * capacity model decides between 101 and 503 here.
 */
#include "backend.h"

#include <stdlib.h>
#include <string.h>

#define HEAD_BUF_MAX (64 * 1024)     /* beyond any head the parser accepts */

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

void be_http_free(be_conn_t *c)
{
    if (!c->http)
        return;
    free(c->http->head);
    free(c->http->carry);
    free(c->http);
    c->http = NULL;
}

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
    w->req.data = (void *)(uintptr_t)BE_WB_RESPONSE;
    c->state = BE_HTTP_RESPOND;
    be_conn_update_reading(c);
    if (be_wb_send(w) < 0)
        be_conn_close(c);
}

/* An error or refusal before any request is answered: simple body, close. */
static void http_refuse(be_conn_t *c, int status, const char *extra)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "%d %s\n", status, sl_http_status_text(status));
    be_http_free(c);
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
    be_conn_update_reading(c);
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

void be_http_response_done(be_conn_t *c)
{
    if (c->state != BE_HTTP_RESPOND || !c->http || !c->http->keep_alive) {
        be_conn_close(c);
        return;
    }
    char *carry = c->http->carry;
    size_t carry_len = c->http->carry_len;
    c->http->carry = NULL;
    be_http_free(c);
    c->state = BE_HTTP_HEAD;
    if (carry)
        be_http_feed(c, carry, carry_len);
    free(carry);
    be_conn_update_reading(c);
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
        be_http_free(c);
        be_ws_read(c, rb, 0, rest);
        be_rbuf_put(rb);
    }
    be_http_free(c);
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
void be_http_feed(be_conn_t *c, const char *data, size_t len)
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
