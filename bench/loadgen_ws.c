/*
 * bench/loadgen_ws.c: frames after the 101, and what each mode does with them.
 *
 * Frames are read with the core's parser (sluice/wsframe.h); payload bytes
 * are located from its stream offsets, as the backend does, so nothing here
 * parses a frame by hand. Echo payloads are a pattern computed from the
 * connection id and the message's sequence number: the sender fills it, the
 * receiver recomputes it byte by byte as the echo streams in, so every echo
 * is checked exactly without keeping a copy of what was sent. Echoes come
 * back in order on a connection, so the n-th echo is the n-th message and
 * its send time is in a ring of `window` entries.
 *
 * The first text message of a connection is the backend's `hello NAME`: it
 * is never checked as an echo, and NAME is counted (deploy mode writes it in
 * the sent log, so a test sees which pool each generation landed on).
 */
#include "loadgen.h"

#include <stdlib.h>
#include <string.h>

static inline uint8_t pattern_byte(uint64_t i, uint32_t id, uint64_t seq)
{
    return (uint8_t)(i ^ (i >> 8) ^ (seq * 0x3B) ^ (id * 7u));
}

void lg_pattern_fill(uint8_t *p, size_t n, uint32_t id, uint64_t seq)
{
    for (size_t i = 0; i < n; i++)
        p[i] = pattern_byte(i, id, seq);
}

static bool pattern_check(const uint8_t *p, size_t n, uint64_t off, uint32_t id, uint64_t seq)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != pattern_byte(off + i, id, seq))
            return false;
    }
    return true;
}

/* A masked data frame with the payload given (text, deploy) or the echo pattern. */
static uint8_t *put_frame(lg_conn_t *c, uint8_t opcode, size_t len)
{
    uint8_t hdr[SL_WS_MAX_HEADER];
    size_t hn = sl_ws_write_header(hdr, true, opcode, c->mask, len);
    uint8_t *p = lg_out_reserve(c, hn + len);
    if (!p)
        return NULL;
    memcpy(p, hdr, hn);
    return p + hn;
}

void lg_ws_send_echo(lg_conn_t *c)
{
    lg_worker_t *w = c->w;
    if (c->state != LG_OPEN || c->outstanding >= lg_opt.window)
        return;
    uint8_t *p = put_frame(c, SL_WS_OP_BINARY, lg_opt.size);
    if (!p) {
        lg_conn_drop(c);
        return;
    }
    lg_pattern_fill(p, lg_opt.size, c->id, c->send_seq);
    sl_ws_mask(p, lg_opt.size, c->mask, 0);
    uint64_t now = lg_now_ns();
    c->sent_ns[c->send_seq % lg_opt.window] = now;
    c->send_seq++;
    c->outstanding++;
    w->st.msgs_sent++;
    w->st.bytes_sent += lg_opt.size;
    if (!w->st.first_send_ns)
        w->st.first_send_ns = now;
}

void lg_ws_deploy_send(lg_conn_t *c)
{
    lg_worker_t *w = c->w;
    if (c->state != LG_OPEN)
        return;
    char text[64];
    int n = snprintf(text, sizeof(text), "%u.%u:%llu", c->id, c->gen,
                     (unsigned long long)(c->last_seq + 1));
    uint8_t *p = put_frame(c, SL_WS_OP_TEXT, (size_t)n);
    if (!p) {
        lg_conn_drop(c);
        return;
    }
    memcpy(p, text, (size_t)n);
    sl_ws_mask(p, (size_t)n, c->mask, 0);
    c->last_seq++;
    w->st.msgs_sent++;
    w->st.bytes_sent += (uint64_t)n;
    lg_tl_t *t = lg_tl_at(w, lg_now_ns());
    if (t)
        t->messages++;
}

static void on_interval(uv_timer_t *t)
{
    lg_conn_t *c = sl_container_of(t, lg_conn_t, timer);
    if (c->state != LG_OPEN || c->w->stopping)
        return;
    lg_ws_deploy_send(c);
    lg_out_flush(c);
}

void lg_ws_opened(lg_conn_t *c)
{
    if (lg_opt.mode == LG_MODE_ECHO && lg_opt.msg_rate <= 0) {
        for (uint32_t i = 0; i < lg_opt.window && c->state == LG_OPEN; i++)
            lg_ws_send_echo(c);
    } else if (lg_opt.mode == LG_MODE_DEPLOY) {
        lg_ws_deploy_send(c);
        uv_timer_start(&c->timer, on_interval, lg_opt.interval_ms, lg_opt.interval_ms);
    }
    lg_out_flush(c);
}

void lg_ws_ended(lg_conn_t *c, int how)
{
    if (lg_opt.mode == LG_MODE_DEPLOY && lg_add_gen(c->w, c, how) < 0)
        fprintf(stderr, "sluice-loadgen: out of memory for the sent log\n");
}

/* ---- receiving ------------------------------------------------------------- */

static void on_header(lg_conn_t *c, const sl_ws_event_t *ev)
{
    const sl_ws_frame_header_t *fh = &ev->header;
    if (fh->opcode >= SL_WS_OP_CLOSE)
        return;
    c->in_data = true;
    c->pl_start = ev->frame_start + fh->header_len;
    c->pl_end = c->pl_start + fh->payload_len;
    if (fh->opcode != SL_WS_OP_CONT) {
        c->msg_op = fh->opcode;
        c->msg_off = 0;
        c->msg_bad = false;
    }
}

/* Payload bytes in [pos0, pos0 + r) of the stream that belong to the data frame. */
static void on_payload(lg_conn_t *c, const uint8_t *p0, uint64_t pos0, size_t r)
{
    uint64_t a = SL_MAX(pos0, c->pl_start);
    uint64_t b = SL_MIN(pos0 + r, c->pl_end);
    if (b <= a)
        return;
    const uint8_t *p = p0 + (a - pos0);
    size_t n = (size_t)(b - a);
    if (c->msg_op == SL_WS_OP_TEXT && !c->first_msg_done) {
        size_t room = sizeof(c->hello) - c->hello_len;
        size_t k = SL_MIN(n, room);
        memcpy(c->hello + c->hello_len, p, k);
        c->hello_len += (uint32_t)k;
    } else if (lg_opt.mode == LG_MODE_ECHO && c->msg_op == SL_WS_OP_BINARY && !c->msg_bad) {
        if (c->recv_seq >= c->send_seq || c->msg_off + n > lg_opt.size ||
            !pattern_check(p, n, c->msg_off, c->id, c->recv_seq))
            c->msg_bad = true;
    }
    c->msg_off += n;
}

static void hello_done(lg_conn_t *c)
{
    lg_worker_t *w = c->w;
    if (c->hello_len > 6 && memcmp(c->hello, "hello ", 6) == 0)
        c->name = lg_count_name(&w->st, c->hello + 6, SL_MIN(c->hello_len - 6, LG_NAME_MAX - 1u));
}

static void echo_done(lg_conn_t *c)
{
    lg_worker_t *w = c->w;
    if (c->recv_seq >= c->send_seq) {
        w->st.mismatches++;   /* an echo of nothing we sent */
        return;
    }
    if (c->msg_bad || c->msg_off != lg_opt.size)
        w->st.mismatches++;
    uint64_t now = lg_now_ns();
    uint64_t us = (now - c->sent_ns[c->recv_seq % lg_opt.window]) / 1000;
    lg_hist_add(&w->st.rtt, us);
    lg_tl_t *t = lg_tl_at(w, now);
    if (t) {
        t->messages++;
        lg_hist_add(&t->lat, us);
    }
    c->recv_seq++;
    c->outstanding--;
    w->st.msgs_recv++;
    w->st.last_recv_ns = now;
    if (lg_opt.msg_rate <= 0 && !w->stopping)
        lg_ws_send_echo(c);
}

static void message_done(lg_conn_t *c)
{
    bool first = !c->first_msg_done;
    c->first_msg_done = true;
    if (c->msg_op == SL_WS_OP_TEXT && first) {
        hello_done(c);
        return;
    }
    if (lg_opt.mode == LG_MODE_ECHO && c->msg_op == SL_WS_OP_BINARY)
        echo_done(c);
    else
        c->w->st.other_msgs++;
}

/* "retry-after=N" anywhere in a 1013's reason: seconds to wait. */
static uint64_t reason_retry_after(const uint8_t *p, size_t n)
{
    static const char key[] = "retry-after=";
    size_t k = sizeof(key) - 1;
    for (size_t i = 0; i + k < n; i++) {
        if (memcmp(p + i, key, k) != 0)
            continue;
        uint64_t v = 0;
        for (size_t j = i + k; j < n && p[j] >= '0' && p[j] <= '9' && v < 100000; j++)
            v = v * 10 + (uint64_t)(p[j] - '0');
        return v * 1000;
    }
    return 0;
}

static void on_close_frame(lg_conn_t *c, const sl_ws_event_t *ev)
{
    uint16_t code = 1005;   /* no status received */
    if (ev->control_len >= 2)
        code = (uint16_t)(ev->control[0] << 8 | ev->control[1]);
    c->close_rcvd = true;
    c->close_code = code;
    lg_count_code(&c->w->st, code);
    if (code == SL_WS_CLOSE_TRY_AGAIN && ev->control_len > 2)
        c->retry_after_ms = reason_retry_after(ev->control + 2, ev->control_len - 2);
    /* Echo the code (an empty close with an empty one); then wait for TCP to end. */
    if (c->state == LG_OPEN)
        lg_send_close(c, code == 1005 || !sl_ws_close_code_valid(code) ? 0 : code);
}

static void on_frame_end(lg_conn_t *c, const sl_ws_event_t *ev)
{
    switch (ev->header.opcode) {
    case SL_WS_OP_PING:
        c->w->st.pings++;
        if (c->state == LG_OPEN) {
            uint8_t *p = lg_out_reserve(c, SL_WS_MAX_CONTROL_FRAME);
            if (!p) {
                lg_conn_drop(c);
                return;
            }
            size_t n = sl_ws_write_control(p, SL_WS_OP_PONG, ev->control, ev->control_len,
                                           c->mask);
            c->out_len -= SL_WS_MAX_CONTROL_FRAME - n;
        }
        return;
    case SL_WS_OP_PONG:
        return;
    case SL_WS_OP_CLOSE:
        on_close_frame(c, ev);
        return;
    default:
        break;
    }
    c->in_data = false;
    if (ev->message_end)
        message_done(c);
}

void lg_ws_read(lg_conn_t *c, const uint8_t *buf, size_t len)
{
    size_t done = 0;
    while ((c->state == LG_OPEN || c->state == LG_CLOSING) && !c->close_rcvd) {
        uint64_t pos0 = c->wp.pos;
        sl_ws_event_t ev;
        ssize_t r = sl_ws_parse(&c->wp, buf + done, len - done, &ev);
        if (r < 0) {
            /* The server broke the protocol: say so if we can, then end. */
            const char *why = NULL;
            int code = sl_ws_parser_error(&c->wp, &why);
            if (c->state == LG_OPEN)
                lg_send_close(c, (uint16_t)(code ? code : SL_WS_CLOSE_PROTOCOL));
            else
                lg_conn_drop(c);
            break;
        }
        if (c->in_data && r > 0)
            on_payload(c, buf + done, pos0, (size_t)r);
        done += (size_t)r;
        if (ev.type == SL_WS_EV_HEADER)
            on_header(c, &ev);
        else if (ev.type == SL_WS_EV_FRAME_END)
            on_frame_end(c, &ev);
        /* After a HEADER at the end of the input, parse once more with no
           bytes: a zero-length frame's FRAME_END comes from that call. */
        if (ev.type == SL_WS_EV_NONE || (done == len && ev.type != SL_WS_EV_HEADER))
            break;
    }
    lg_out_flush(c);
}
