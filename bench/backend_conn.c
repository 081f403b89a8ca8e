/*
 * bench/backend_conn.c: connection lifecycle, read buffers and batched
 * writes.
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
 */
#include "backend.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FREE_RBUFS_MAX 64
#define FREE_WB_MAX 256
#define WB_ARENA_DEFAULT 2048

static be_wbatch_t *free_wb;
static uint32_t n_free_wb;

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
    w->req.data = (void *)(uintptr_t)BE_WB_PLAIN;
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

static void on_write(uv_write_t *req, int status)
{
    be_wbatch_t *w = sl_container_of(req, be_wbatch_t, req);
    be_conn_t *c = w->conn;
    bool response = (uintptr_t)req->data == BE_WB_RESPONSE;
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
        be_http_response_done(c);
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
    be_http_free(c);
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
            be_http_feed(c, (const char *)rb->data, (size_t)nread);
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
void be_conn_update_reading(be_conn_t *c)
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
    be_conn_update_reading(c);
}

void be_conn_close_after_flush(be_conn_t *c)
{
    if (c->closed)
        return;
    c->state = BE_CLOSING;
    c->close_when_flushed = true;
    c->deadline = uv_now(be_srv.loop) + BE_CLOSE_GRACE_MS;
    be_conn_update_reading(c);
    if (c->pending_writes == 0)
        be_conn_close(c);
}

int be_conn_start(be_conn_t *c)
{
    uv_tcp_nodelay(&c->tcp, 1);
    c->state = BE_HTTP_HEAD;
    be_conn_update_reading(c);
    return c->reading ? 0 : UV_EINVAL;
}

