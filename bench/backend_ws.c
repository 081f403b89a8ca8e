/*
 * bench/backend_ws.c: the WebSocket echo.
 *
 * Why frame by frame: echoing whole messages would mean holding a 16 MiB
 * message before the first byte goes back. Instead each data frame is echoed
 * as it arrives: its header is rewritten unmasked (same FIN, opcode, length)
 * and its payload is unmasked in place in the read buffer and written from
 * there. The output's frame structure then mirrors the input's exactly, so
 * control frames we answer (pong, close) always fall on an output frame
 * boundary, and --send messages are only injected between messages.
 *
 * The frame parser (sluice/wsframe.h) reports where headers and frames end;
 * payload positions are worked out from its stream offsets, so this file
 * never parses a frame itself.
 */
#include "backend.h"

#include <stdlib.h>
#include <string.h>

#include "sluice/wshandshake.h"

/* --send payload: bytes 0, 1, ..., 255, 0, 1, ... */
static uint8_t send_pattern[BE_SEND_CHUNK];

/* The batch being filled during one read; flushed when full and at the end. */
typedef struct ws_out {
    be_conn_t *c;
    be_wbatch_t *w;
    bool failed;
} ws_out_t;

static be_wbatch_t *out_batch(ws_out_t *o)
{
    if (!o->w && !o->failed && !(o->w = be_wb_new(o->c, 0)))
        o->failed = true;
    return o->w;
}

static void out_flush(ws_out_t *o)
{
    if (o->w && be_wb_send(o->w) < 0)
        o->failed = true;
    o->w = NULL;
}

static void out_copy(ws_out_t *o, const void *p, size_t len)
{
    be_wbatch_t *w = out_batch(o);
    if (w && !be_wb_copy(w, p, len)) {
        out_flush(o);
        if ((w = out_batch(o)) && !be_wb_copy(w, p, len))
            o->failed = true;
    }
}

static void out_rbuf(ws_out_t *o, be_rbuf_t *rb, const uint8_t *p, size_t len)
{
    if (len <= BE_COPY_MAX) {
        out_copy(o, p, len);   /* small echoes do not pin the read buffer */
        return;
    }
    be_wbatch_t *w = out_batch(o);
    if (w && !be_wb_add_rbuf(w, rb, p, len)) {
        out_flush(o);
        if ((w = out_batch(o)) && !be_wb_add_rbuf(w, rb, p, len))
            o->failed = true;
    }
}

static void send_close(ws_out_t *o, uint16_t code, const char *reason)
{
    uint8_t f[SL_WS_MAX_CONTROL_FRAME];
    size_t n = sl_ws_write_close(f, code, reason, NULL);
    out_copy(o, f, n);
}

/* Our close went out: wait (bounded) for the peer's reply. */
static void enter_close_sent(be_conn_t *c)
{
    c->state = BE_WS_CLOSE_SENT;
    c->deadline = uv_now(be_srv.loop) + BE_CLOSE_GRACE_MS;
}

/* The 101 (first offered subprotocol chosen, if any) and the hello frame. */
static void put_101_hello(be_wbatch_t *w, const char *base, const sl_http_head_t *h,
                          const sl_ws_request_info_t *info)
{
    char accept[29];
    sl_ws_accept_key(base + info->key.off, info->key.len, accept);
    char proto[128] = "";
    const sl_http_header_t *ph = sl_http_find(h, base, "Sec-WebSocket-Protocol");
    if (ph) {
        const char *v = base + ph->value.off;
        size_t n = 0;
        while (n < ph->value.len && v[n] != ',' && v[n] != ' ' && n < 100)
            n++;
        snprintf(proto, sizeof(proto), "Sec-WebSocket-Protocol: %.*s\r\n", (int)n, v);
    }
    int n = snprintf((char *)w->arena, w->arena_cap,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%sX-Backend: %s\r\n\r\n",
                     accept, proto, be_srv.opt.name);
    w->arena_len = (size_t)SL_MAX(n, 0);
    w->bufs[w->nbufs++] = uv_buf_init((char *)w->arena, (unsigned)w->arena_len);

    char hello[300];
    int hl = snprintf(hello, sizeof(hello), "hello %s", be_srv.opt.name);
    uint8_t hdr[SL_WS_MAX_HEADER];
    size_t hn = sl_ws_write_header(hdr, true, SL_WS_OP_TEXT, NULL, (uint64_t)hl);
    be_wb_copy(w, hdr, hn);
    be_wb_copy(w, hello, (size_t)hl);
}

void be_ws_accept(be_conn_t *c, const char *base, const sl_http_head_t *h,
                  const sl_ws_request_info_t *info)
{
    be_wbatch_t *w = be_wb_new(c, 1024);
    if (!w) {
        be_conn_close(c);
        return;
    }
    put_101_hello(w, base, h, info);

    memset(&c->wp, 0, sizeof(c->wp));
    c->wp.role = SL_WS_FROM_CLIENT;
    /* Text is not validated: a frame is echoed as it streams in, so its
       header is out before its last byte is seen, and a 1007 could not be
       sent without breaking our own output. The echo is byte-exact and the
       client (or the gateway in front) judges the UTF-8. */
    c->wp.validate_utf8 = false;
    c->state = BE_WS_OPEN;
    c->is_ws = true;
    be_srv.stats.open++;
    be_handshake_accepted(&be_srv);

    if (be_srv.opt.close_after_hello) {
        uint8_t f[SL_WS_MAX_CONTROL_FRAME];
        size_t fn = sl_ws_write_close(f, (uint16_t)be_srv.opt.close_after_hello, NULL, NULL);
        be_wb_copy(w, f, fn);
        enter_close_sent(c);
    }
    if (be_wb_send(w) < 0) {
        be_conn_close(c);
        return;
    }
    c->send_left = be_srv.opt.send_bytes;
    be_ws_writable(c);
}

void be_ws_writable(be_conn_t *c)
{
    if (c->closed || c->state != BE_WS_OPEN || c->send_left == 0)
        return;
    if (c->fwd || c->wp.in_message)
        return;   /* an echoed message is open: inject only between messages */
    if (!send_pattern[1]) {
        for (size_t i = 0; i < sizeof(send_pattern); i++)
            send_pattern[i] = (uint8_t)i;
    }
    /* Bounded twice: bytes the kernel has not taken, and writes in flight
       (a fast reader takes everything at once; the pump then continues from
       the write callbacks instead of queueing the whole --send in one go). */
    while (c->send_left > 0 && c->tcp.write_queue_size < BE_HIGH_WATER &&
           c->pending_writes < BE_SEND_INFLIGHT) {
        size_t n = (size_t)SL_MIN(c->send_left, (uint64_t)BE_SEND_CHUNK);
        be_wbatch_t *w = be_wb_new(c, 0);
        if (!w) {
            be_conn_close(c);
            return;
        }
        uint8_t hdr[SL_WS_MAX_HEADER];
        size_t hn = sl_ws_write_header(hdr, true, SL_WS_OP_BINARY, NULL, n);
        be_wb_copy(w, hdr, hn);
        be_wb_add_static(w, send_pattern, n);
        if (be_wb_send(w) < 0) {
            be_conn_close(c);
            return;
        }
        c->send_left -= n;
    }
}

void be_ws_free(be_conn_t *c)
{
    free(c->log_buf);
    c->log_buf = NULL;
    c->log_len = 0;
    c->log_cap = 0;
}

/* Keep text payload for --log-messages (bounded line length). */
static void log_append(be_conn_t *c, const uint8_t *p, size_t len)
{
    len = SL_MIN(len, BE_LOG_LINE_MAX - c->log_len);
    if (len == 0)
        return;
    if (c->log_len + len > c->log_cap) {
        size_t cap = SL_MAX(c->log_cap * 2, (size_t)256);
        while (cap < c->log_len + len)
            cap *= 2;
        uint8_t *b = realloc(c->log_buf, cap);
        if (!b) {
            c->log_text = false;
            return;
        }
        c->log_buf = b;
        c->log_cap = cap;
    }
    memcpy(c->log_buf + c->log_len, p, len);
    c->log_len += len;
}

static void on_header(be_conn_t *c, const sl_ws_event_t *ev, ws_out_t *o)
{
    const sl_ws_frame_header_t *fh = &ev->header;
    if (fh->opcode >= SL_WS_OP_CLOSE) {
        c->fwd = false;
        return;
    }
    c->fwd = true;
    memcpy(c->mask, fh->mask, 4);
    c->pl_start = ev->frame_start + fh->header_len;
    c->pl_end = c->pl_start + fh->payload_len;
    if (fh->opcode == SL_WS_OP_TEXT)
        c->log_text = be_srv.log_file != NULL;
    else if (fh->opcode == SL_WS_OP_BINARY)
        c->log_text = false;
    if (c->state == BE_WS_OPEN) {
        uint8_t hdr[SL_WS_MAX_HEADER];
        size_t n = sl_ws_write_header(hdr, fh->fin, fh->opcode, NULL, fh->payload_len);
        out_copy(o, hdr, n);
    }
}

static void on_close_frame(be_conn_t *c, const sl_ws_event_t *ev, ws_out_t *o)
{
    if (c->state == BE_WS_OPEN) {
        /* Peer-initiated: echo its code (no code: an empty close). */
        if (ev->control_len == 0) {
            uint8_t f[2] = { 0x80 | SL_WS_OP_CLOSE, 0 };
            out_copy(o, f, sizeof(f));
        } else {
            uint16_t code = (uint16_t)(ev->control[0] << 8 | ev->control[1]);
            if (ev->control_len < 2 || !sl_ws_close_code_valid(code))
                code = SL_WS_CLOSE_PROTOCOL;
            send_close(o, code, NULL);
        }
    }
    out_flush(o);
    be_conn_close_after_flush(c);
}

static void on_frame_end(be_conn_t *c, const sl_ws_event_t *ev, ws_out_t *o)
{
    switch (ev->header.opcode) {
    case SL_WS_OP_PING:
        if (c->state == BE_WS_OPEN) {
            uint8_t f[SL_WS_MAX_CONTROL_FRAME];
            size_t n = sl_ws_write_control(f, SL_WS_OP_PONG, ev->control, ev->control_len, NULL);
            out_copy(o, f, n);
        }
        return;
    case SL_WS_OP_PONG:
        return;
    case SL_WS_OP_CLOSE:
        on_close_frame(c, ev, o);
        return;
    default:
        break;
    }
    c->fwd = false;
    if (!ev->message_end)
        return;
    be_srv.stats.messages++;
    if (c->log_text) {
        be_log_message(&be_srv, c->log_buf ? c->log_buf : (const uint8_t *)"", c->log_len);
        be_ws_free(c);
        c->log_text = false;
    }
}

/* Unmask the data payload in [pos0, pos0 + r) of the stream, echo and log it. */
static void on_payload(be_conn_t *c, be_rbuf_t *rb, uint8_t *p0, uint64_t pos0, size_t r,
                       ws_out_t *o)
{
    uint64_t a = SL_MAX(pos0, c->pl_start);
    uint64_t b = SL_MIN(pos0 + r, c->pl_end);
    if (b <= a)
        return;
    uint8_t *p = p0 + (a - pos0);
    size_t n = (size_t)(b - a);
    sl_ws_mask(p, n, c->mask, a - c->pl_start);
    if (c->state == BE_WS_OPEN)
        out_rbuf(o, rb, p, n);
    if (c->log_text)
        log_append(c, p, n);
}

/* The peer broke the protocol: close with the parser's code, or, when one of
   our echo frames is half written, just close TCP (a close frame now would
   land inside that frame's payload). */
static void protocol_error(be_conn_t *c, ws_out_t *o)
{
    const char *reason = NULL;
    int code = sl_ws_parser_error(&c->wp, &reason);
    if (c->state == BE_WS_OPEN && c->fwd) {
        out_flush(o);
        be_conn_close(c);
        return;
    }
    if (c->state == BE_WS_OPEN)
        send_close(o, (uint16_t)(code ? code : SL_WS_CLOSE_PROTOCOL), reason);
    out_flush(o);
    be_conn_close_after_flush(c);
}

void be_ws_read(be_conn_t *c, be_rbuf_t *rb, size_t off, size_t len)
{
    ws_out_t o = { .c = c };
    uint8_t *data = rb->data + off;
    size_t done = 0;
    /* After a HEADER at the end of the input, call once more with no bytes:
       a zero-length frame's FRAME_END is reported by that call. */
    while (!c->closed && (c->state == BE_WS_OPEN || c->state == BE_WS_CLOSE_SENT)) {
        uint64_t pos0 = c->wp.pos;
        sl_ws_event_t ev;
        ssize_t r = sl_ws_parse(&c->wp, data + done, len - done, &ev);
        if (r < 0) {
            protocol_error(c, &o);
            break;
        }
        if (c->fwd && r > 0)
            on_payload(c, rb, data + done, pos0, (size_t)r, &o);
        done += (size_t)r;
        if (ev.type == SL_WS_EV_HEADER)
            on_header(c, &ev, &o);
        else if (ev.type == SL_WS_EV_FRAME_END)
            on_frame_end(c, &ev, &o);
        if (ev.type == SL_WS_EV_NONE || (done == len && ev.type != SL_WS_EV_HEADER))
            break;
    }
    out_flush(&o);
    if (o.failed) {
        be_conn_close(c);
        return;
    }
    be_conn_flow(c);
    be_ws_writable(c);
}
