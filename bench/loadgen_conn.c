/*
 * bench/loadgen_conn.c: one connection slot's life, again and again.
 *
 * A slot owns its handles for the whole run; an attempt is socket, bind to
 * the next source address (IP_BIND_ADDRESS_NO_PORT, so the kernel picks the
 * port at connect time per destination and 28k ports per source are not the
 * limit), connect, send the upgrade request, read the head. The head is kept
 * in a small per-attempt buffer and reparsed whole on every read with the
 * thread's one HTTP parser, so no slot carries an llhttp state. After the
 * 101 the frames go to loadgen_ws.c.
 *
 * Every way an attempt or a connection ends goes through lg_conn_drop(),
 * which is idempotent and only calls uv_close(); the decision what to do next
 * (reconnect after a delay, or nothing) is made in the close callback, when
 * every request of the handle has called back and the slot is quiet. Even an
 * immediate reconnect goes through a 0 ms timer, so nothing recurses.
 *
 * Output uses two buffers per slot: frames are appended to `out` while
 * `wbuf` is being written, and they swap when the write completes. Most
 * writes finish in uv_try_write() and need neither. The buffers grow to the
 * largest burst a slot ever queued and are then reused: no malloc per
 * message.
 */
#include "loadgen.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "sluice/wshandshake.h"

static void on_closed(uv_handle_t *h);

uint64_t lg_now_ns(void)
{
    return uv_hrtime();
}

void lg_conn_init(lg_worker_t *w, lg_conn_t *c, uint32_t id)
{
    memset(c, 0, sizeof(*c));
    c->w = w;
    c->id = id;
    c->name = -1;
    c->state = LG_IDLE;
    uv_timer_init(&w->loop, &c->timer);
}

static void set_done(lg_conn_t *c)
{
    uv_timer_stop(&c->timer);
    c->state = LG_DONE;
    c->w->live--;
    lg_worker_slot_done(c->w);
}

/* A ramp attempt finished one way or the other: the ramp may start more. */
static void ramp_settled(lg_conn_t *c)
{
    if (c->ramp) {
        c->ramp = false;
        c->w->pending--;
    }
}

typedef enum fail_kind { F_CONNECT, F_STATUS, F_TIMEOUT, F_CLOSED, F_PROTOCOL } fail_kind_t;

static void fail(lg_conn_t *c, fail_kind_t kind)
{
    lg_worker_t *w = c->w;
    if (w->stopping)
        return;   /* attempts we cut short at the end are not failures */
    switch (kind) {
    case F_CONNECT: w->st.fail_connect++; break;
    case F_STATUS: w->st.fail_status++; break;
    case F_TIMEOUT: w->st.fail_timeout++; break;
    case F_CLOSED: w->st.fail_closed++; break;
    case F_PROTOCOL: w->st.fail_protocol++; break;
    }
    lg_tl_t *t = lg_tl_at(w, lg_now_ns());
    if (t)
        t->failures++;
    c->attempt++;
    ramp_settled(c);
}

void lg_conn_drop(lg_conn_t *c)
{
    if (c->state == LG_IDLE || c->state == LG_DOWN || c->state == LG_DONE)
        return;
    lg_worker_t *w = c->w;
    uv_timer_stop(&c->timer);
    if (c->upgraded) {
        uint64_t now = lg_now_ns();
        lg_gauge(w, -1, now);
        if (!c->close_rcvd)
            w->st.closes_no_frame++;
        if (!w->stopping) {
            w->st.closes++;
            lg_tl_t *t = lg_tl_at(w, now);
            if (t)
                t->closes++;
        }
        lg_ws_ended(c, c->close_local ? -1 : (c->close_rcvd ? c->close_code : 0));
    }
    c->state = LG_DOWN;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

/* ---- reconnect policy ------------------------------------------------------ */

static uint64_t reconnect_delay(lg_conn_t *c)
{
    lg_worker_t *w = c->w;
    uint64_t d = 0;
    if (lg_opt.backoff_exp) {
        uint32_t k = SL_MIN(c->attempt, 40u);
        uint64_t cap = lg_opt.backoff_base_ms << SL_MIN(k, 30u);
        if (cap > lg_opt.backoff_max_ms || cap < lg_opt.backoff_base_ms)
            cap = lg_opt.backoff_max_ms;
        /* Equal jitter: half fixed, half random, so a herd spreads out
           but nobody comes back sooner than half the step. */
        d = cap / 2 + sl_rng_below(&w->rng, cap / 2 + 1);
    } else if (c->attempt > 0) {
        d = lg_opt.retry_delay_ms;
    }
    if (c->retry_after_ms > d)
        d = c->retry_after_ms + sl_rng_below(&w->rng, c->retry_after_ms / 10 + 1);
    return d;
}

static void on_reconnect_timer(uv_timer_t *t)
{
    lg_conn_t *c = sl_container_of(t, lg_conn_t, timer);
    if (c->state == LG_IDLE)
        lg_conn_start(c);
}

static void on_closed(uv_handle_t *h)
{
    lg_conn_t *c = sl_container_of((uv_tcp_t *)h, lg_conn_t, tcp);
    lg_worker_t *w = c->w;
    free(c->head);
    c->head = NULL;
    c->head_len = 0;
    c->out_len = 0;
    c->writing = false;
    bool again = lg_opt.mode == LG_MODE_STORM || lg_opt.mode == LG_MODE_DEPLOY;
    if (w->stopping || !again) {
        set_done(c);
        return;
    }
    c->state = LG_IDLE;
    uv_timer_start(&c->timer, on_reconnect_timer, reconnect_delay(c), 0);
}

/* ---- output -------------------------------------------------------------- */

uint8_t *lg_out_reserve(lg_conn_t *c, size_t n)
{
    if (c->out_len + n > c->out_cap) {
        size_t cap = SL_MAX(c->out_cap * 2, (size_t)1024);
        while (cap < c->out_len + n)
            cap *= 2;
        uint8_t *b = realloc(c->out, cap);
        if (!b)
            return NULL;
        c->out = b;
        c->out_cap = cap;
    }
    uint8_t *p = c->out + c->out_len;
    c->out_len += n;
    return p;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
}

/* Our close frame is on the wire: half-close and wait for the peer to end TCP. */
static void after_flush(lg_conn_t *c)
{
    if (c->close_sent && !c->writing && c->out_len == 0 && c->state == LG_CLOSING &&
        !uv_is_closing((uv_handle_t *)&c->tcp) && uv_is_writable((uv_stream_t *)&c->tcp))
        uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown);
}

static void on_write(uv_write_t *req, int status)
{
    lg_conn_t *c = sl_container_of(req, lg_conn_t, wreq);
    c->writing = false;
    if (status < 0) {
        lg_conn_drop(c);
        return;
    }
    if (c->out_len > 0)
        lg_out_flush(c);
    else
        after_flush(c);
}

void lg_out_flush(lg_conn_t *c)
{
    if (c->writing || c->out_len == 0)
        return;
    if (c->state != LG_HANDSHAKE && c->state != LG_OPEN && c->state != LG_CLOSING) {
        c->out_len = 0;
        return;
    }
    uv_buf_t b = uv_buf_init((char *)c->out, (unsigned)c->out_len);
    int r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (r == (int)c->out_len) {
        c->out_len = 0;
        after_flush(c);
        return;
    }
    if (r < 0 && r != UV_EAGAIN) {
        lg_conn_drop(c);
        return;
    }
    size_t off = r > 0 ? (size_t)r : 0;
    uint8_t *tb = c->wbuf;
    size_t tcap = c->wbuf_cap;
    c->wbuf = c->out;
    c->wbuf_cap = c->out_cap;
    b = uv_buf_init((char *)c->wbuf + off, (unsigned)(c->out_len - off));
    c->out = tb;
    c->out_cap = tcap;
    c->out_len = 0;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0) {
        lg_conn_drop(c);
        return;
    }
    c->writing = true;
}

static void on_grace(uv_timer_t *t)
{
    lg_conn_drop(sl_container_of(t, lg_conn_t, timer));
}

void lg_send_close(lg_conn_t *c, uint16_t code)
{
    if (c->close_sent || c->state != LG_OPEN)
        return;
    uint8_t *p = lg_out_reserve(c, SL_WS_MAX_CONTROL_FRAME);
    if (!p) {
        lg_conn_drop(c);
        return;
    }
    size_t n = sl_ws_write_close(p, code, NULL, c->mask);
    c->out_len -= SL_WS_MAX_CONTROL_FRAME - n;
    c->close_sent = true;
    c->close_local = !c->close_rcvd;
    c->state = LG_CLOSING;
    uv_timer_stop(&c->timer);
    uv_timer_start(&c->timer, on_grace, LG_CLOSE_GRACE_MS, 0);
    lg_out_flush(c);
}

/* ---- the attempt ------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    lg_conn_t *c = sl_container_of((uv_tcp_t *)h, lg_conn_t, tcp);
    /* One buffer per thread: every read is processed before the next one. */
    *buf = uv_buf_init((char *)c->w->rbuf, LG_READ_BUF);
}

/* Retry-After in seconds (an HTTP date is not honoured: none of ours send one). */
static uint64_t retry_after_ms(const sl_http_head_t *h, const char *base)
{
    const sl_http_header_t *ra = sl_http_find(h, base, "Retry-After");
    if (!ra || ra->value.len == 0 || ra->value.len > 9)
        return 0;
    uint64_t v = 0;
    for (uint32_t i = 0; i < ra->value.len; i++) {
        char ch = base[ra->value.off + i];
        if (ch < '0' || ch > '9')
            return 0;
        v = v * 10 + (uint64_t)(ch - '0');
    }
    return v * 1000;
}

static void upgraded(lg_conn_t *c)
{
    lg_worker_t *w = c->w;
    uint64_t now = lg_now_ns();
    uint64_t us = (now - c->t_start_ns) / 1000;
    uv_timer_stop(&c->timer);
    c->upgraded = true;
    c->attempt = 0;
    c->retry_after_ms = 0;
    c->state = LG_OPEN;
    w->st.upgrades++;
    w->st.last_upgrade_ns = now;
    lg_hist_add(&w->st.handshake, us);
    lg_tl_t *t = lg_tl_at(w, now);
    if (t) {
        t->upgrades++;
        if (lg_opt.mode != LG_MODE_ECHO)
            lg_hist_add(&t->lat, us);
    }
    lg_gauge(w, +1, now);
    ramp_settled(c);
    memset(&c->wp, 0, sizeof(c->wp));
    c->wp.role = SL_WS_FROM_SERVER;
    lg_ws_opened(c);
}

static void handshake_read(lg_conn_t *c, const uint8_t *buf, size_t n)
{
    lg_worker_t *w = c->w;
    if (c->head_len + n > LG_HEAD_MAX) {
        fail(c, F_PROTOCOL);
        lg_conn_drop(c);
        return;
    }
    memcpy(c->head + c->head_len, buf, n);
    c->head_len += (uint32_t)n;
    sl_http_parser_init(&w->hp, SL_HTTP_RESPONSE, HTTP_GET);
    int r = sl_http_parse_head(&w->hp, c->head, c->head_len);
    if (r == SL_NEED_MORE)
        return;
    if (r < 0) {
        fail(c, F_PROTOCOL);
        lg_conn_drop(c);
        return;
    }
    const sl_http_head_t *h = &w->hp.head;
    if (h->status != 101) {
        if (h->status < SL_ARRAY_SIZE(w->st.status))
            w->st.status[h->status]++;
        if (h->status == 503 || h->status == 429)
            c->retry_after_ms = retry_after_ms(h, c->head);
        fail(c, F_STATUS);
        lg_conn_drop(c);
        return;
    }
    sl_ws_response_info_t info;
    const char *why = NULL;
    if (sl_ws_check_response(h, c->head, c->key, 24, &info, &why) < 0 ||
        info.extension_negotiated) {
        fail(c, F_PROTOCOL);
        lg_conn_drop(c);
        return;
    }
    upgraded(c);
    /* Frames that came with the head (the hello, maybe a close). */
    if (c->state == LG_OPEN && c->head_len > (uint32_t)r)
        lg_ws_read(c, (const uint8_t *)c->head + r, c->head_len - (uint32_t)r);
    free(c->head);
    c->head = NULL;
    c->head_len = 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    lg_conn_t *c = sl_container_of((uv_tcp_t *)s, lg_conn_t, tcp);
    if (nread == 0)
        return;
    if (nread < 0) {
        if (c->state == LG_HANDSHAKE)
            fail(c, F_CLOSED);
        lg_conn_drop(c);
        return;
    }
    c->w->st.bytes_recv += (uint64_t)nread;
    if (c->state == LG_HANDSHAKE)
        handshake_read(c, (const uint8_t *)buf->base, (size_t)nread);
    else if (c->state == LG_OPEN || c->state == LG_CLOSING)
        lg_ws_read(c, (const uint8_t *)buf->base, (size_t)nread);
}

static int write_request(lg_conn_t *c)
{
    uint8_t raw[16];
    for (int i = 0; i < 16; i += 8) {
        uint64_t v = sl_rng_next(&c->w->rng);
        memcpy(raw + i, &v, 8);
    }
    EVP_EncodeBlock((unsigned char *)c->key, raw, 16);
    char req[1600];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\nUser-Agent: sluice-loadgen\r\n\r\n",
                     lg_opt.path, lg_opt.host, c->key);
    if (n <= 0 || (size_t)n >= sizeof(req))
        return SL_EINVAL;
    uint8_t *p = lg_out_reserve(c, (size_t)n);
    if (!p)
        return SL_ENOMEM;
    memcpy(p, req, (size_t)n);
    return 0;
}

static void on_connect(uv_connect_t *req, int status)
{
    lg_conn_t *c = sl_container_of(req, lg_conn_t, creq);
    if (status == UV_ECANCELED || c->state != LG_CONNECTING)
        return;
    if (status < 0) {
        fail(c, F_CONNECT);
        lg_conn_drop(c);
        return;
    }
    c->state = LG_HANDSHAKE;
    c->head = malloc(LG_HEAD_MAX);
    if (!c->head || write_request(c) < 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
        fail(c, F_CONNECT);
        lg_conn_drop(c);
        return;
    }
    lg_out_flush(c);
}

static void on_timeout(uv_timer_t *t)
{
    lg_conn_t *c = sl_container_of(t, lg_conn_t, timer);
    fail(c, F_TIMEOUT);
    lg_conn_drop(c);
}

/* socket(), bind to the next source, adopt into libuv. Returns 0 or a
   negative errno; *inited tells whether the handle needs uv_close(). */
static int open_socket(lg_conn_t *c, bool *inited)
{
    lg_worker_t *w = c->w;
    const struct sockaddr *dst = (const struct sockaddr *)&lg_opt.dst;
    *inited = false;
    int fd = socket(dst->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (lg_opt.n_sources > 0) {
        uint64_t k = w->src_next++ * lg_opt.threads + w->idx;
        const struct sockaddr_storage *src = &lg_opt.sources[k % lg_opt.n_sources];
        int one = 1;
#ifdef IP_BIND_ADDRESS_NO_PORT
        if (src->ss_family == AF_INET)
            setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
        socklen_t len = src->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                   : sizeof(struct sockaddr_in);
        if (bind(fd, (const struct sockaddr *)src, len) < 0) {
            int e = -errno;
            close(fd);
            return e;
        }
    }
    int r = uv_tcp_init(&w->loop, &c->tcp);
    if (r < 0) {
        close(fd);
        return r;
    }
    *inited = true;
    r = uv_tcp_open(&c->tcp, fd);
    if (r < 0) {
        close(fd);
        return r;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    return 0;
}

static void reset_attempt(lg_conn_t *c)
{
    c->upgraded = false;
    c->writing = false;
    c->close_rcvd = false;
    c->close_sent = false;
    c->close_local = false;
    c->in_data = false;
    c->msg_bad = false;
    c->first_msg_done = false;
    c->close_code = 0;
    c->out_len = 0;
    c->send_seq = 0;
    c->recv_seq = 0;
    c->outstanding = 0;
    c->last_seq = 0;
    c->msg_off = 0;
    c->name = -1;
    c->hello_len = 0;
    uint64_t m = sl_rng_next(&c->w->rng);
    memcpy(c->mask, &m, 4);
}

void lg_conn_start(lg_conn_t *c)
{
    lg_worker_t *w = c->w;
    if (w->stopping) {
        set_done(c);
        return;
    }
    uint64_t now = lg_now_ns();
    if (c->state != LG_IDLE)
        return;
    if (c->t_start_ns != 0) {
        c->gen++;
        w->st.reconnects++;
    }
    w->st.attempts++;
    if (!w->st.first_attempt_ns)
        w->st.first_attempt_ns = now;
    c->t_start_ns = now;
    reset_attempt(c);
    bool inited;
    int r = open_socket(c, &inited);
    c->state = LG_CONNECTING;
    if (r == 0)
        r = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&lg_opt.dst, on_connect);
    if (r < 0) {
        fail(c, F_CONNECT);
        if (inited) {
            lg_conn_drop(c);   /* the close callback decides what comes next */
        } else if (lg_opt.mode == LG_MODE_STORM || lg_opt.mode == LG_MODE_DEPLOY) {
            c->state = LG_IDLE;   /* no descriptor (EMFILE?): never spin on it */
            uv_timer_start(&c->timer, on_reconnect_timer,
                           SL_MAX(reconnect_delay(c), (uint64_t)10), 0);
        } else {
            set_done(c);
        }
        return;
    }
    uv_timer_start(&c->timer, on_timeout, lg_opt.timeout_ms, 0);
}

void lg_conn_stop(lg_conn_t *c)
{
    switch (c->state) {
    case LG_IDLE:
        set_done(c);
        break;
    case LG_CONNECTING:
    case LG_HANDSHAKE:
        lg_conn_drop(c);
        break;
    case LG_OPEN:
        lg_send_close(c, SL_WS_CLOSE_NORMAL);
        break;
    default:
        break;
    }
}

void lg_conn_close_handles(lg_conn_t *c)
{
    free(c->out);
    free(c->wbuf);
    free(c->sent_ns);
    c->out = c->wbuf = NULL;
    c->sent_ns = NULL;
    uv_close((uv_handle_t *)&c->timer, NULL);
}
