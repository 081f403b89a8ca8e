/*
 * wsrelay.c: the WebSocket path — the handshake relayed and checked, then
 * frames relayed both ways, zero-copy, with the gateway's own frames (pings,
 * closes) injected at frame boundaries.
 *
 * Each direction has a frame parser that sees every byte but copies none:
 * the bytes of a read block are forwarded as slices of that block. Where the
 * gateway must speak — a ping to an idle client, a close to drain — the block
 * is cut at a frame (or message) boundary the parser reported, the injected
 * frame is written between the two slices, and stream order does the rest.
 *
 * Closing follows RFC 6455's handshake on both hops, because it is the only
 * way to know a peer has read everything before it: the session ends when
 * each side has both sent and received a close frame (or on a timeout), and
 * the backend connection is closed only after its write queue is empty and
 * its close arrived, so no message the gateway accepted is lost to a reset.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "sluice/log.h"
#include "sluice/wshandshake.h"
#include "session.h"


/* How long to wait for the backend's close reply once the client sent its close. */
#define BACKEND_CLOSE_WAIT_MS 2000

static void ws_maybe_done(sl_session_t *s);

/* ---- handshake ---- */

void sl_ws_begin(sl_session_t *s)
{
    sl_ws_request_info_t info;
    const char *why = NULL;
    int status = sl_ws_check_request(&s->req->head, s->head, &info, &why);
    if (status != 0) {
        sl_log_debug("client %s: bad upgrade: %s", s->peer_ip, why ? why : "?");
        /* A 426 names the protocol it requires in Upgrade, and a sender of
           Upgrade lists it in Connection (RFC 9110 15.5.22, 7.8); this
           Connection line stands beside the answer's own "close". */
        sl_session_http_error(s, status,
                              status == 426 ? "Sec-WebSocket-Version: 13\r\n"
                                              "Upgrade: websocket\r\nConnection: upgrade\r\n"
                                            : NULL);
        return;
    }
    if (info.key.len >= sizeof s->ws_key) {
        sl_session_http_error(s, 400, NULL);
        return;
    }
    /* The bytes after an upgrade's head are frames. A body would be read as
       frames by the gateway and as a body by the backend (which would wait
       for it before answering): the two framings must never disagree. */
    if (s->req->head.content_length > 0 || s->req->head.chunked) {
        sl_log_debug("client %s: bad upgrade: a request body", s->peer_ip);
        sl_session_http_error(s, 400, NULL);
        return;
    }
    memcpy(s->ws_key, s->head + info.key.off, info.key.len);
    s->ws_key_len = (uint8_t)info.key.len;
    sl_session_admit_or_go(s);
}

void sl_ws_backend_ready(sl_session_t *s)
{
    const sl_http_head_t *h = &s->req->head;
    size_t cap = h->head_len + 1024;
    char *out = malloc(cap);
    if (out == NULL) {
        sl_session_http_error(s, 502, NULL);
        return;
    }
    sl_http_forward_t fw = {
        .client_ip = s->peer_ip,
        .client_trusted = s->peer_trusted,
        .tls = s->tls,
        .websocket = true,
    };
    ssize_t n = sl_http_write_request(h, s->head, &fw, out, cap);
    if (n < 0 || sl_write_copy(s, false, out, (size_t)n) != 0) {
        free(out);
        sl_session_http_error(s, 502, NULL);
        return;
    }
    free(out);
    s->state = SL_SS_WS_HANDSHAKE;
    s->drain_deadline = 0;
    if (sl_session_resp_begin(s, h->method) != 0)
        sl_session_http_error(s, 502, NULL);
}

void sl_ws_backend_unready(sl_session_t *s)
{
    sl_session_resp_free(s);   /* a requeued session may wait long in the queue */
    s->head_deadline = 0;
    s->state = SL_SS_CONNECTING;
    sl_session_arm_timer(s);
}

/* Hand bytes that arrived with a head to the relay, as if just read. */
static void replay(sl_session_t *s, const char *data, size_t len, bool from_client)
{
    while (len > 0 && s->state == SL_SS_WS_RELAY) {
        sl_block_t *b = sl_block_get(&s->w->bufs);
        if (b == NULL) {
            sl_session_close(s);
            return;
        }
        size_t n = SL_MIN(len, (size_t)SL_BLOCK_SIZE);
        memcpy(b->data, data, n);
        b->len = (uint32_t)n;
        if (from_client)
            sl_ws_on_client_data(s, b, 0);
        else
            sl_ws_on_backend_data(s, b, 0);
        sl_block_unref(&s->w->bufs, b);
        data += n;
        len -= n;
    }
}

static void enter_relay(sl_session_t *s, const sl_ws_response_info_t *info, uint32_t resp_head_len)
{
    const sl_config_t *cfg = s->rt->cfg;
    /* The head as the client gets it is the backend's (any size up to
       limits.head_bytes) with at most ": " and "\r\n" more per line, and
       what the gateway writes itself (status text, Connection: Upgrade).
       Sized so, not to a fixed buffer: a 101 with 8 KiB of cookies is
       a good answer, not a 502. */
    size_t cap = resp_head_len + 2 * (size_t)s->resp->head.n_headers + 256;
    char *out = malloc(cap);
    ssize_t n = out ? sl_http_write_response(&s->resp->head, s->resp_head, true, out, cap) : -1;
    if (n < 0) {
        sl_log_warn("backend %s: the 101 could not be written for the client",
                    s->up->backend->name);
        free(out);
        sl_session_http_error(s, 502, NULL);
        return;
    }
    /* Held: the backend's early frames, replayed below, go in the same write. */
    sl_client_hold(s, out, (size_t)n);
    s->resp_started = true;

    memset(&s->c2b, 0, sizeof s->c2b);
    memset(&s->b2c, 0, sizeof s->b2c);
    s->c2b.role = SL_WS_FROM_CLIENT;
    s->b2c.role = SL_WS_FROM_SERVER;
    s->c2b.extensions = s->b2c.extensions = info->extensions;
    bool utf8 = cfg->limits.validate_utf8;   /* the parsers skip what an extension transforms */
    s->c2b.validate_utf8 = s->b2c.validate_utf8 = utf8;
    s->c2b.max_frame = s->b2c.max_frame = cfg->limits.frame_bytes;
    s->c2b.max_message = s->b2c.max_message = cfg->limits.message_bytes;

    s->state = SL_SS_WS_RELAY;
    s->log_status = 101;
    s->counted_ws = true;
    atomic_fetch_add(&sl_runtime_ws(s->rt, s->service, s->pool)->open, 1);
    atomic_fetch_add(&s->w->drainable, 1);
    sl_count(&s->w->counters, SL_CTR_WS_UPGRADES, 1);
    sl_count(&s->w->counters, SL_CTR_WS_OPEN, 1);
    atomic_fetch_add(&s->up->backend->state->handshakes, 1);
    s->head_deadline = 0;
    s->last_rx = s->last_client_rx = sl_now(s);
    /* Routed before a reload this worker has seen since: move now, or this
       connection would pin the old runtime until the next reload. */
    sl_migration_t *mg = s->rt != s->w->rt ? sl_worker_migration(s->w) : NULL;
    if (mg)
        sl_migration_move(mg, s);

    /* Early bytes: frames the backend sent right behind its 101, and anything
       the client sent behind its request. Then the parsers' buffers go. */
    uint32_t client_extra = s->head_len - s->req->head.head_len;
    uint32_t backend_extra = s->resp_len - resp_head_len;
    char *head = s->head, *resp_head = s->resp_head;
    uint32_t client_off = s->req->head.head_len;
    s->head = NULL;
    s->resp_head = NULL;
    s->resp_cap = 0;
    sl_session_head_free(s);
    free(s->resp);
    s->resp = NULL;
    replay(s, resp_head + resp_head_len, backend_extra, false);
    int rc = sl_client_release(s);   /* alone, if nothing came behind it */
    free(out);                       /* held until released (copied if not all written) */
    replay(s, head + client_off, client_extra, true);
    free(head);
    free(resp_head);
    if (rc != 0) {
        sl_session_close(s);
        return;
    }
    if (s->state != SL_SS_WS_RELAY)
        return;
    sl_client_resume(s, SL_PAUSE_WAITING);
    sl_session_arm_timer(s);
}

static void handshake_failed(sl_session_t *s)
{
    sl_count(&s->w->counters, SL_CTR_WS_HANDSHAKE_FAILURES, 1);
    if (s->up)
        atomic_fetch_add(&s->up->backend->state->handshake_failures, 1);
}

/* The head after any interim (1xx) responses: a 103 Early Hints or an
   unasked-for 100 Continue before the 101 is no answer to an upgrade and no
   failure either; it is dropped, and the 101 behind it judged as usual. */
static int skip_interim(sl_session_t *s, int rc)
{
    while (rc > 0 && s->resp->head.status >= 100 && s->resp->head.status < 200 &&
           s->resp->head.status != 101)
        rc = sl_session_resp_next(s, (uint32_t)rc);
    return rc;
}

static void on_handshake_response(sl_session_t *s, sl_block_t *b, size_t off)
{
    int rc = skip_interim(s, sl_session_resp_feed(s, b, off));
    if (rc == SL_NEED_MORE)
        return;
    if (rc < 0) {
        handshake_failed(s);
        sl_session_http_error(s, 502, NULL);
        return;
    }
    if (s->resp->head.status != 101) {
        /* Refusals (401, 403, 503...) reach the client as they are; an
           admitted client whose backend is busy waits its turn again. */
        handshake_failed(s);
        if (s->resp->head.status == 503 && sl_session_requeue_backend_busy(s))
            return;
        sl_http_forward_response(s, (uint32_t)rc);
        return;
    }
    sl_ws_response_info_t info;
    const char *why = NULL;
    if (sl_ws_check_response_to(&s->resp->head, s->resp_head, &s->req->head, s->head, &info,
                                &why) != 0) {
        sl_log_warn("backend %s: bad upgrade response: %s", s->up->backend->name,
                    why ? why : "?");
        handshake_failed(s);
        sl_session_http_error(s, 502, NULL);
        return;
    }
    enter_relay(s, &info, (uint32_t)rc);
}

/* ---- frames the gateway writes ---- */

/* The close code in a close frame's payload, or 1005 (none given). */
static uint16_t close_code_of(const sl_ws_event_t *ev)
{
    return ev->control_len >= 2 ? (uint16_t)(ev->control[0] << 8 | ev->control[1]) : 1005;
}

static void send_close_to_client(sl_session_t *s, uint16_t code, const char *reason)
{
    if (!s->log_close)
        s->log_close = code;
    uint8_t frame[SL_WS_MAX_CONTROL_FRAME];
    size_t n = sl_ws_write_close(frame, code, reason, NULL);
    sl_write_copy(s, true, frame, n);
    s->close_to_client = true;
}

/* The drain's close, at a message boundary; the client's close after it is its answer. */
static void send_drain_close(sl_session_t *s)
{
    s->drain_pending = false;
    s->drain_close_sent = true;
    send_close_to_client(s, s->drain_code, s->drain_reason);
}

/*
 * Where the peer of p's stream stands (the side p's frames go to). A frame
 * that may not pass yet (sl_ws_unpassable: a header not whole, a control
 * frame not ended) is held back whole, so while one is open the peer has
 * nothing of it and sits between frames all the same: a close or a ping
 * may go to it, and a frame refused later never reaches it in part.
 */
static bool peer_between_frames(const sl_ws_parser_t *p)
{
    return sl_ws_at_frame_boundary(p) || sl_ws_unpassable(p) > 0;
}

static bool peer_between_messages(const sl_ws_parser_t *p)
{
    return !p->in_message && peer_between_frames(p);
}

/*
 * The last word before a cut (the shutdown's timeout, a second signal): a
 * WebSocket about to be closed without its close handshake still gets a
 * close frame when its stream to the client is at a frame boundary, so the
 * client sees the shutdown's code (1001) instead of 1006, an abnormal
 * closure many client libraries report as an error. Best effort: what the
 * socket takes at once goes out, and the connection closes right after.
 */
void sl_ws_farewell(sl_session_t *s, uint16_t code)
{
    if (s->state != SL_SS_WS_RELAY || s->close_to_client || !peer_between_frames(&s->b2c))
        return;
    send_close_to_client(s, code, "gateway shutting down");
}

static void send_close_to_backend(sl_session_t *s, uint16_t code, const char *reason)
{
    if (s->up == NULL || !s->up->connected)
        return;
    uint8_t mask[4];
    uint64_t r = sl_rng_next(&s->w->rng);
    memcpy(mask, &r, 4);
    uint8_t frame[SL_WS_MAX_CONTROL_FRAME];
    size_t n = sl_ws_write_close(frame, code, reason, mask);
    sl_write_copy(s, false, frame, n);
    s->close_to_backend = true;
}

static void send_ping(sl_session_t *s)
{
    uint8_t frame[SL_WS_MAX_CONTROL_FRAME];
    size_t n = sl_ws_write_control(frame, SL_WS_OP_PING, (const uint8_t *)"sluice", 6, NULL);
    sl_write_copy(s, true, frame, n);
    s->ping_pending = false;
    s->ping_sent_at = sl_now(s);
    sl_count(&s->w->counters, SL_CTR_WS_PINGS_SENT, 1);
    sl_session_arm_timer(s);   /* the pong's deadline (a pending ping goes out from a read) */
}

/*
 * Stop relaying: tell each side why (when its stream is at a frame boundary,
 * so the frame is valid), then close once the backend has its bytes.
 */
static void ws_abort_at(sl_session_t *s, uint16_t client_code, const char *client_reason,
                        bool client_at_boundary, uint16_t backend_code,
                        const char *backend_reason, bool backend_at_boundary)
{
    if (client_code && !s->close_to_client && client_at_boundary)
        send_close_to_client(s, client_code, client_reason);
    if (backend_code && !s->close_to_backend && backend_at_boundary)
        send_close_to_backend(s, backend_code, backend_reason);
    s->close_to_client = s->close_from_client = true;
    s->close_to_backend = s->close_from_backend = true;
    sl_client_pause(s, SL_PAUSE_WAITING);
    sl_backend_pause(s, SL_PAUSE_WAITING);
    ws_maybe_done(s);
}

/* Abort when both streams are as the parsers see them. */
static void ws_abort(sl_session_t *s, uint16_t client_code, const char *client_reason,
                     uint16_t backend_code, const char *backend_reason)
{
    ws_abort_at(s, client_code, client_reason, peer_between_frames(&s->b2c), backend_code,
                backend_reason, peer_between_frames(&s->c2b));
}

/* Bring the session's deadline to `ms` from now at the latest. */
static void close_wait(sl_session_t *s, sl_msec_t ms)
{
    sl_msec_t limit = sl_now(s) + ms;
    if (s->drain_deadline == 0 || s->drain_deadline > limit) {
        s->drain_deadline = limit;
        sl_session_arm_timer(s);
    }
}

/* The session ends when both close handshakes are complete and the backend has every byte. */
static void ws_maybe_done(sl_session_t *s)
{
    if (s->state != SL_SS_WS_RELAY)
        return;
    bool client_done = s->close_to_client && s->close_from_client;
    bool backend_done = s->close_to_backend && s->close_from_backend;
    /* A close relayed from one side is waited on for the other's reply, but
       not forever: pings stop once a close is under way, so nothing else
       but the idle timeout would end the wait. The client's close waits for
       the backend's reply (the client waits for it too); the backend's close
       gives the client ping_timeout, as a ping would. A drain's close keeps
       its grace. */
    if (s->close_from_client && s->close_to_backend && !s->close_from_backend)
        close_wait(s, BACKEND_CLOSE_WAIT_MS);
    if (s->close_from_backend && s->close_to_client && !s->close_from_client && !s->draining)
        close_wait(s, s->rt->cfg->timeouts.ping_timeout);
    if (!(client_done && backend_done))
        return;
    if (sl_queued(s, false) > 0) {
        /* sl_ws_write_done calls again; a backend that stopped reading is
           given up on at the deadline (the session holds both sockets). */
        close_wait(s, BACKEND_CLOSE_WAIT_MS);
        return;
    }
    sl_upstream_release_after_close(s);
    sl_session_finish(s);
}

void sl_ws_write_done(sl_session_t *s, bool to_client)
{
    if (!to_client)
        ws_maybe_done(s);
}

/* ---- relay ---- */

/* Forward len bytes of b from off, counted for the metrics and the access log. */
static int forward(sl_session_t *s, bool to_client, sl_block_t *b, size_t off, size_t len)
{
    if (len == 0)
        return 0;
    if (to_client)
        s->bytes_b2c += len;
    else
        s->bytes_c2b += len;
    sl_count(&s->w->counters, to_client ? SL_CTR_BYTES_B2C : SL_CTR_BYTES_C2B, len);
    return sl_write_block(s, to_client, b, off, len);
}

/* The frame earlier reads held back may pass now (a data frame's header is
   whole, or a control frame ended at ev): it is written whole from what the
   parser kept, which includes its bytes in this read up to the event. */
static bool may_pass(const sl_ws_event_t *ev)
{
    bool control = (ev->header.opcode & 0x8) != 0;
    return ev->type == (control ? SL_WS_EV_FRAME_END : SL_WS_EV_HEADER);
}

static int forward_held(sl_session_t *s, bool to_client, const sl_ws_parser_t *p,
                        const sl_ws_event_t *ev)
{
    uint8_t frame[SL_WS_MAX_CONTROL_FRAME];
    size_t n = ev->header.header_len;
    memcpy(frame, sl_ws_header_bytes(p), n);
    if (ev->type == SL_WS_EV_FRAME_END && ev->control_len > 0) {
        memcpy(frame + n, ev->control, ev->control_len);   /* the parser unmasked it */
        if (ev->header.masked)
            sl_ws_mask(frame + n, ev->control_len, ev->header.mask, 0);
        n += ev->control_len;
    }
    if (to_client)
        s->bytes_b2c += n;
    else
        s->bytes_c2b += n;
    sl_count(&s->w->counters, to_client ? SL_CTR_BYTES_B2C : SL_CTR_BYTES_C2B, n);
    return sl_write_copy(s, to_client, frame, n);
}

/*
 * The client broke the protocol while a backend frame is half relayed to it:
 * a close frame now would land inside that frame. RFC 6455 7.1.7 wants the
 * client told why, so the backend's frame is finished first (reading it on,
 * within the close-wait bound) and the close follows at its end. Nothing
 * more of the client's is read; the backend is told to close if its stream
 * is at a frame boundary.
 */
static void fail_after_backend_frame(sl_session_t *s, bool backend_at_boundary)
{
    if (backend_at_boundary && !s->close_to_backend)
        send_close_to_backend(s, SL_WS_CLOSE_GOING_AWAY, "client protocol error");
    s->close_from_client = s->close_to_backend = true;
    s->fail_pending = true;
    s->drain_pending = s->ping_pending = false;
    sl_client_pause(s, SL_PAUSE_WAITING);
    close_wait(s, BACKEND_CLOSE_WAIT_MS);
    sl_session_arm_timer(s);   /* no ping is due now either */
}

/* The backend frame a client's failure waited for ended at pos: relay it, then the close. */
static void fail_now(sl_session_t *s, sl_block_t *b, size_t fwd, size_t pos, bool was_close)
{
    const char *reason = NULL;
    uint16_t code = (uint16_t)sl_ws_parser_error(&s->c2b, &reason);
    forward(s, true, b, fwd, pos - fwd);
    s->fail_pending = false;
    if (was_close)
        s->close_to_client = true;   /* the backend's own close went out instead */
    ws_abort_at(s, code, reason, true, 0, NULL, false);
}

void sl_ws_on_client_data(sl_session_t *s, sl_block_t *b, size_t off)
{
    if (s->state != SL_SS_WS_RELAY)
        return;   /* reading is paused then; nothing arrives */
    sl_worker_t *w = s->w;
    const uint8_t *data = (const uint8_t *)b->data;
    size_t end = b->len, pos = off, fwd = off;
    bool dropping = s->close_from_client;   /* nothing may follow a close frame */
    if (dropping)
        return;
    /* What earlier blocks held back of the open frame (none of it went on). */
    uint64_t held = sl_ws_unpassable(&s->c2b);
    /* The last frame boundary in this block; -1 while a frame from an earlier
       block is still open and its first bytes were forwarded already. */
    long bnd = peer_between_frames(&s->c2b) ? (long)off : -1;
    /* Parse until the parser has nothing to report: a zero-length frame's
       FRAME_END comes from a call that consumes nothing. */
    for (;;) {
        sl_ws_event_t ev;
        ssize_t n = sl_ws_parse(&s->c2b, data + pos, end - pos, &ev);
        if (n < 0) {
            const char *reason = NULL;
            int code = sl_ws_parser_error(&s->c2b, &reason);
            sl_count(&w->counters, SL_CTR_WS_CLIENT_PROTOCOL_ERRORS, 1);
            sl_log_debug("client %s: protocol error %d: %s", s->client_ip, code,
                         reason ? reason : "?");
            /* The whole frames before the bad one reach the backend, then a
               close; the bad frame's bytes never do. */
            if (bnd > (long)fwd)
                forward(s, false, b, fwd, (size_t)bnd - fwd);
            if (!s->close_to_client && !peer_between_frames(&s->b2c)) {
                fail_after_backend_frame(s, bnd >= 0);
                return;
            }
            ws_abort_at(s, (uint16_t)code, reason, peer_between_frames(&s->b2c),
                        SL_WS_CLOSE_GOING_AWAY, "client protocol error", bnd >= 0);
            return;
        }
        pos += (size_t)n;
        if (ev.type == SL_WS_EV_NONE)
            break;
        if (held > 0 && may_pass(&ev)) {
            /* It opens the block: nothing comes before it. */
            held = 0;
            fwd = pos;
            bnd = -1;   /* a data frame's header went on: the backend is inside it */
            if (forward_held(s, false, &s->c2b, &ev) != 0) {
                ws_abort(s, SL_WS_CLOSE_BAD_GATEWAY, "backend lost", 0, NULL);
                return;
            }
        }
        if (ev.type == SL_WS_EV_FRAME_END) {
            bnd = (long)pos;
            sl_count(&w->counters, SL_CTR_WS_FRAMES_C2B, 1);
            if (ev.message_end)
                sl_count(&w->counters, SL_CTR_WS_MESSAGES_C2B, 1);
            if (ev.header.opcode == SL_WS_OP_CLOSE) {
                if (!s->log_close)
                    s->log_close = close_code_of(&ev);
                s->close_from_client = true;
                s->close_to_backend = true;   /* forwarded below, as the client sent it */
                /* An answer to the drain's close; not a close of the
                   client's own while the drain waited for a boundary. */
                if (s->drain_close_sent)
                    sl_count(&w->counters, SL_CTR_DRAINS_COMPLETED, 1);
                break;
            }
        }
    }
    /* An open frame that may not pass yet stays back: the parser keeps it. */
    size_t upto = pos - (size_t)(sl_ws_unpassable(&s->c2b) - held);
    if (upto > fwd) {
        if (forward(s, false, b, fwd, upto - fwd) != 0) {
            ws_abort(s, SL_WS_CLOSE_BAD_GATEWAY, "backend lost", 0, NULL);
            return;
        }
    }
    if (s->ping_sent_at && s->last_client_rx >= s->ping_sent_at)
        s->ping_sent_at = 0;
    /* Reading goes on after the client's close: what follows it is dropped
       above, and its hang-up is what a clean close ends with (stopping and
       restarting the socket here cost three epoll_ctl calls per session). */
    if (s->close_from_client)
        ws_maybe_done(s);
}

void sl_ws_on_backend_data(sl_session_t *s, sl_block_t *b, size_t off)
{
    if (s->state == SL_SS_WS_HANDSHAKE) {
        on_handshake_response(s, b, off);
        return;
    }
    if (s->state != SL_SS_WS_RELAY)
        return;
    sl_worker_t *w = s->w;
    const uint8_t *data = (const uint8_t *)b->data;
    size_t end = b->len, pos = off, fwd = off;
    /* After the client was sent a close, backend frames cannot be delivered. */
    bool dropping = s->close_to_client;
    uint64_t held = sl_ws_unpassable(&s->b2c);   /* as on the client's side */
    long bnd = peer_between_frames(&s->b2c) ? (long)off : -1;
    for (;;) {
        sl_ws_event_t ev;
        ssize_t n = sl_ws_parse(&s->b2c, data + pos, end - pos, &ev);
        if (n < 0) {
            const char *reason = NULL;
            int code = sl_ws_parser_error(&s->b2c, &reason);
            sl_count(&w->counters, SL_CTR_WS_BACKEND_PROTOCOL_ERRORS, 1);
            sl_log_warn("backend %s: protocol error %d: %s",
                        s->up ? s->up->backend->name : "?", code, reason ? reason : "?");
            /* Forward the whole frames before the bad one, then 1014. */
            if (!dropping && bnd > (long)fwd)
                forward(s, true, b, fwd, (size_t)bnd - fwd);
            ws_abort_at(s, SL_WS_CLOSE_BAD_GATEWAY, "backend protocol error",
                        !dropping && bnd >= 0, (uint16_t)code, reason,
                        peer_between_frames(&s->c2b));
            return;
        }
        pos += (size_t)n;
        if (ev.type == SL_WS_EV_NONE)
            break;
        if (ev.type == SL_WS_EV_HEADER && dropping)
            sl_count(&w->counters, SL_CTR_DRAIN_UNDELIVERABLE, 1);
        if (held > 0 && may_pass(&ev)) {
            held = 0;
            fwd = pos;
            bnd = -1;
            if (!dropping)
                forward_held(s, true, &s->b2c, &ev);
        }
        if (ev.type != SL_WS_EV_FRAME_END)
            continue;
        bnd = (long)pos;
        if (!dropping) {
            /* Every frame the client is given, its close too, as the other way. */
            sl_count(&w->counters, SL_CTR_WS_FRAMES_B2C, 1);
            if (ev.message_end)
                sl_count(&w->counters, SL_CTR_WS_MESSAGES_B2C, 1);
        }
        if (s->fail_pending) {
            fail_now(s, b, fwd, pos, ev.header.opcode == SL_WS_OP_CLOSE);
            return;
        }
        if (ev.header.opcode == SL_WS_OP_CLOSE) {
            if (!dropping && !s->log_close)
                s->log_close = close_code_of(&ev);
            s->close_from_backend = true;
            if (dropping) {
                /* Its close reply was counted as undeliverable; it is expected. */
                continue;
            }
            s->close_to_client = true;    /* forwarded below, as the backend sent it */
            dropping = true;
            if (pos > fwd) {
                forward(s, true, b, fwd, pos - fwd);
            }
            fwd = pos;
            continue;
        }
        if (dropping)
            continue;
        /* A boundary: the place to inject what waits for one. */
        bool at_message = sl_ws_at_message_boundary(&s->b2c);
        if ((s->drain_pending && at_message) || s->ping_pending) {
            forward(s, true, b, fwd, pos - fwd);
            fwd = pos;
            if (s->drain_pending && at_message) {
                send_drain_close(s);
                dropping = true;
            } else {
                send_ping(s);
            }
        }
    }
    size_t upto = pos - (size_t)(sl_ws_unpassable(&s->b2c) - held);
    if (!dropping && upto > fwd)
        forward(s, true, b, fwd, upto - fwd);
    /* A block that ends at a boundary serves a waiting drain or ping at once. */
    if (s->drain_pending && peer_between_messages(&s->b2c) && !s->close_to_client)
        send_drain_close(s);
    if (s->ping_pending && peer_between_frames(&s->b2c) && !s->close_to_client)
        send_ping(s);
    ws_maybe_done(s);
}

void sl_ws_on_client_eof(sl_session_t *s)
{
    if (s->state != SL_SS_WS_RELAY) {
        sl_session_close(s);
        return;
    }
    if (s->close_from_client) {
        /* A clean close: the client hung up after its close frame, which went
           to the backend; the backend's reply is still passed on if the
           client's side takes it, then the session ends. */
        ws_maybe_done(s);
        if (s->state == SL_SS_WS_RELAY && !s->close_from_backend) {
            close_wait(s, BACKEND_CLOSE_WAIT_MS);
            sl_session_arm_timer(s);
        }
        return;
    }
    /* The client vanished: tell the backend it went away. */
    ws_abort(s, 0, NULL, SL_WS_CLOSE_GOING_AWAY, "client gone");
}

void sl_ws_on_backend_eof(sl_session_t *s)
{
    if (s->state == SL_SS_WS_HANDSHAKE) {
        handshake_failed(s);
        sl_session_http_error(s, 502, NULL);
        return;
    }
    if (s->state != SL_SS_WS_RELAY)
        return;
    if (s->close_from_backend) {
        s->close_to_backend = true;
        ws_maybe_done(s);
        return;
    }
    if (s->close_to_client && !s->close_from_client) {
        /* Draining: the client's close reply may still come; it has nowhere to
           go now, but the client deserves the close handshake. */
        s->close_from_backend = s->close_to_backend = true;
        ws_maybe_done(s);
        return;
    }
    sl_count(&s->w->counters, SL_CTR_WS_BACKEND_LOST, 1);
    sl_upstream_release(s, false);
    ws_abort(s, SL_WS_CLOSE_BAD_GATEWAY, "backend went away", 0, NULL);
}

/* ---- drain and timers ---- */

void sl_session_drain(sl_session_t *s, uint16_t code, const char *reason)
{
    if (s->draining)
        return;
    s->draining = true;
    sl_count(&s->w->counters, SL_CTR_DRAINS_STARTED, 1);
    if (s->counted_ws) {
        sl_ws_count_t *c = sl_runtime_ws(s->rt, s->service, s->pool);
        atomic_fetch_add(&c->draining, 1);
        atomic_fetch_sub(&s->w->drainable, 1);
    }
    if (s->state != SL_SS_WS_RELAY) {
        /* Plain HTTP: finish the exchange in flight, then close. */
        s->keep_alive = false;
        if (s->state == SL_SS_HEAD && s->awaiting_next)
            sl_session_close(s);
        return;
    }
    s->drain_code = code;
    s->drain_reason = sl_worker_intern(s->w, reason ? reason : "");
    /* A close already under way keeps its own bound when that is sooner:
       the grace is the most a drain waits, not the least. */
    close_wait(s, s->rt->cfg->services[s->service].drain.grace);
    if (s->close_to_client)
        return;
    if (peer_between_messages(&s->b2c))
        send_drain_close(s);
    else
        s->drain_pending = true;
    sl_session_arm_timer(s);
}

/*
 * Does the ping clock run? Not without ping_interval, nor once a close was
 * sent to the client or came from it (the close wait bounds the session
 * then, and what the client sends after its close is not read). And it
 * stops while the client's reads are paused for backpressure (the backend
 * is not taking its bytes): its pong, or anything else of it, cannot be
 * heard then, and a live client must not be closed as gone. Both deadlines
 * count from the end of such a pause at the earliest. One test for
 * sl_ws_next_deadline and sl_ws_on_timer, which must agree.
 */
static bool ping_clock_runs(const sl_session_t *s, const sl_cfg_timeouts_t *t)
{
    return t->ping_interval && !s->close_to_client && !s->close_from_client &&
           (s->client_paused & SL_PAUSE_BACKPRESSURE) == 0;
}

static sl_msec_t ping_due(const sl_session_t *s, const sl_cfg_timeouts_t *t)
{
    return SL_MAX(s->last_client_rx, s->client_alive_at) + t->ping_interval;
}

/* A ping queued behind a backlog reaches the client only after it: while
   the client takes what was queued (a write to it completes) it is alive,
   and the pong's wait counts from the last such write (it closed a client
   that answered the ping as soon as it reached it). */
static sl_msec_t pong_due(const sl_session_t *s, const sl_cfg_timeouts_t *t)
{
    return SL_MAX(s->ping_sent_at, s->client_alive_at) + t->ping_timeout;
}

/*
 * Must agree with sl_ws_on_timer: a deadline returned here that the handler
 * does not clear would have the timer fire again and again. Once both close
 * handshakes are settled only the close-wait bound is left (ws_maybe_done
 * sets it); no ping is due while the ping clock does not run
 * (ping_clock_runs), nor while one waits for the backend's frame to end (it
 * goes out from the read that ends it).
 */
sl_msec_t sl_ws_next_deadline(const sl_session_t *s)
{
    const sl_cfg_timeouts_t *t = &s->rt->cfg->timeouts;
    sl_msec_t next = s->drain_deadline ? s->drain_deadline : SL_MSEC_NEVER;
    if (s->close_to_client && s->close_from_client && s->close_to_backend &&
        s->close_from_backend)
        return next;
    if (t->idle)
        next = SL_MIN(next, s->last_rx + t->idle);
    if (ping_clock_runs(s, t) && !s->ping_pending)
        next = SL_MIN(next, s->ping_sent_at ? pong_due(s, t) : ping_due(s, t));
    return next;
}

static bool client_reading_once(sl_session_t *s, int *cache)
{
    if (*cache < 0)
        *cache = sl_session_client_reading(s);
    return *cache > 0;
}

void sl_ws_on_timer(sl_session_t *s, sl_msec_t now)
{
    const sl_cfg_timeouts_t *t = &s->rt->cfg->timeouts;
    if (s->drain_deadline && now >= s->drain_deadline) {
        s->drain_deadline = 0;
        if (s->draining && !s->close_from_client)
            sl_count(&s->w->counters, SL_CTR_DRAIN_GRACE_EXPIRED, 1);
        ws_abort(s, s->drain_code ? s->drain_code : SL_WS_CLOSE_GOING_AWAY,
                 s->draining ? "grace ended" : "close timeout", SL_WS_CLOSE_GOING_AWAY,
                 "gateway closing");
        if (s->state == SL_SS_WS_RELAY) {
            /* The backend did not answer in time either: give up on it. */
            sl_upstream_release(s, false);
            sl_session_finish(s);
        }
        return;
    }
    int reading = -1;   /* asked once a turn: each asking compares with the last */
    if (t->idle && now >= s->last_rx + t->idle && client_reading_once(s, &reading)) {
        s->last_rx = now;   /* a slow reader of a backlog: it moves */
    } else if (t->idle && now >= s->last_rx + t->idle) {
        sl_count(&s->w->counters, SL_CTR_IDLE_TIMEOUTS, 1);
        ws_abort(s, SL_WS_CLOSE_GOING_AWAY, "idle timeout", SL_WS_CLOSE_GOING_AWAY,
                 "idle timeout");
        return;
    }
    if (ping_clock_runs(s, t)) {
        if (s->ping_sent_at && now >= pong_due(s, t) && client_reading_once(s, &reading)) {
            s->client_alive_at = now;   /* the ping is still behind what it reads */
        } else if (s->ping_sent_at && now >= pong_due(s, t)) {
            sl_count(&s->w->counters, SL_CTR_WS_PING_TIMEOUTS, 1);
            ws_abort(s, SL_WS_CLOSE_GOING_AWAY, "ping timeout", SL_WS_CLOSE_GOING_AWAY,
                     "client gone");
            return;
        }
        if (!s->ping_sent_at && now >= ping_due(s, t)) {
            if (peer_between_frames(&s->b2c))
                send_ping(s);
            else
                s->ping_pending = true;
        }
    }
    sl_session_arm_timer(s);
}
