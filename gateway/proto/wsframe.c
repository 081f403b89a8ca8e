/*
 * wsframe.c: RFC 6455 frames, parsed incrementally and written.
 *
 * Why the parser looks the way it does:
 *
 * - The relay forwards the bytes it read, unchanged, and asks this parser only
 *   where frames and messages end and whether the peer broke a rule. So the
 *   parser never copies or unmasks data payload in place (the buffer is const
 *   and goes on the wire as it is). Skipping binary payload, or text that is
 *   not validated, is one subtraction per call, whatever the size.
 *
 * - Text is validated with the incremental UTF-8 state machine; masked text
 *   is unmasked chunk by chunk into a small stack buffer first. The mask phase
 *   is the payload offset modulo 4, so any split of the input unmasks right.
 *
 * - Every rule that the header alone can decide is decided from the first two
 *   bytes or from the complete header, in a fixed order, before any payload
 *   byte is consumed. The same input therefore gives the same events and the
 *   same error however it is split, and an oversized frame costs nothing: it
 *   is refused from its length field.
 *
 * - State is plain fields, valid when zero-filled: `hgot` counts header bytes
 *   held in `hbuf`; cur.header_len is non-zero once the header is complete,
 *   which is what "now in payload" means. pos only ever grows by the count a
 *   call returns, so the caller's offset arithmetic always agrees with ours.
 */
#include "sluice/wsframe.h"

#include <string.h>

#define UNMASK_CHUNK 256

static bool is_control(uint8_t opcode)
{
    return (opcode & 0x8) != 0;
}

static bool is_known_opcode(uint8_t opcode)
{
    return opcode <= SL_WS_OP_BINARY || (opcode >= SL_WS_OP_CLOSE && opcode <= SL_WS_OP_PONG);
}

/* Record a sticky error; always returns SL_EINVAL for the caller to pass up. */
static int fail(sl_ws_parser_t *p, int code, const char *reason)
{
    p->error = code;
    p->error_reason = reason;
    return SL_EINVAL;
}

/* Header bytes needed, given what we hold: 2 until the length byte is known. */
static uint8_t header_need(const sl_ws_parser_t *p)
{
    if (p->hgot < 2)
        return 2;
    uint8_t len7 = p->hbuf[1] & 0x7f;
    uint8_t need = 2;
    if (len7 == 126)
        need += 2;
    else if (len7 == 127)
        need += 8;
    if (p->hbuf[1] & 0x80)
        need += 4;
    return need;
}

/*
 * RSV bits are errors unless a negotiated extension defines them (RFC 6455
 * 5.2). permessage-deflate defines RSV1 as "this message is compressed", so
 * it belongs on a message's first frame only: on a continuation or a control
 * frame it is an error (RFC 7692 6). An extension we do not know may use any
 * bit on any frame as far as we can tell: those pass, as they always have.
 */
static int check_rsv(sl_ws_parser_t *p, uint8_t rsv, uint8_t opcode)
{
    if (p->extensions == SL_WS_EXT_UNKNOWN)
        return 0;
    if (p->extensions == SL_WS_EXT_DEFLATE && (rsv & 0x4)) {
        if (opcode == SL_WS_OP_CONT)
            return fail(p, SL_WS_CLOSE_PROTOCOL, "RSV1 on a continuation frame");
        if (is_control(opcode))
            return fail(p, SL_WS_CLOSE_PROTOCOL, "RSV1 on a control frame");
        rsv &= 0x3;   /* RSV1 on a first frame: the message is compressed */
    }
    if (rsv & ~p->allowed_rsv)
        return fail(p, SL_WS_CLOSE_PROTOCOL, "reserved bits set");
    return 0;
}

/* The rules the first two bytes decide, in a fixed order. */
static int check_base(sl_ws_parser_t *p)
{
    uint8_t b0 = p->hbuf[0], b1 = p->hbuf[1];
    bool fin = b0 & 0x80, masked = b1 & 0x80;
    uint8_t rsv = (b0 >> 4) & 0x7, opcode = b0 & 0xf, len7 = b1 & 0x7f;

    if (check_rsv(p, rsv, opcode) < 0)
        return SL_EINVAL;
    if (!is_known_opcode(opcode))
        return fail(p, SL_WS_CLOSE_PROTOCOL, "unknown opcode");
    if (is_control(opcode)) {
        if (!fin)
            return fail(p, SL_WS_CLOSE_PROTOCOL, "fragmented control frame");
        if (len7 > 125)
            return fail(p, SL_WS_CLOSE_PROTOCOL, "control frame payload over 125 bytes");
        if (opcode == SL_WS_OP_CLOSE && len7 == 1)
            return fail(p, SL_WS_CLOSE_PROTOCOL, "close payload of one byte");
    }
    if (p->role == SL_WS_FROM_CLIENT && !masked)
        return fail(p, SL_WS_CLOSE_PROTOCOL, "client frame not masked");
    if (p->role == SL_WS_FROM_SERVER && masked)
        return fail(p, SL_WS_CLOSE_PROTOCOL, "server frame masked");
    if (opcode == SL_WS_OP_CONT && !p->in_message)
        return fail(p, SL_WS_CLOSE_PROTOCOL, "continuation without a message");
    if ((opcode == SL_WS_OP_TEXT || opcode == SL_WS_OP_BINARY) && p->in_message)
        return fail(p, SL_WS_CLOSE_PROTOCOL, "new message inside a fragmented one");
    return 0;
}

/* Decode the complete header into p->cur and check the length rules. */
static int finish_header(sl_ws_parser_t *p)
{
    const uint8_t *h = p->hbuf;
    sl_ws_frame_header_t *c = &p->cur;
    uint8_t len7 = h[1] & 0x7f, at = 2;
    uint64_t len = len7;

    if (len7 == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        at = 4;
        if (len < 126)
            return fail(p, SL_WS_CLOSE_PROTOCOL, "length not minimally encoded");
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        at = 10;
        if (len >> 63)
            return fail(p, SL_WS_CLOSE_PROTOCOL, "64-bit length with the top bit set");
        if (len <= 0xffff)
            return fail(p, SL_WS_CLOSE_PROTOCOL, "length not minimally encoded");
    }
    if (p->max_frame && len > p->max_frame)
        return fail(p, SL_WS_CLOSE_TOO_BIG, "frame too big");
    if (!is_control(h[0] & 0xf) && p->max_message) {
        uint64_t so_far = h[0] & 0xf ? 0 : p->message_len;   /* a new message starts at 0 */
        if (len > p->max_message || so_far > p->max_message - len)
            return fail(p, SL_WS_CLOSE_TOO_BIG, "message too big");
    }

    c->fin = h[0] & 0x80;
    c->rsv = (h[0] >> 4) & 0x7;
    c->opcode = h[0] & 0xf;
    c->masked = h[1] & 0x80;
    memset(c->mask, 0, sizeof c->mask);
    if (c->masked)
        memcpy(c->mask, h + at, 4);
    c->payload_len = len;
    c->header_len = p->hgot;
    p->remaining = len;
    return 0;
}

/* Message bookkeeping once a header has passed every check. */
static void begin_frame(sl_ws_parser_t *p)
{
    const sl_ws_frame_header_t *c = &p->cur;

    if (is_control(c->opcode)) {
        p->ctl_len = 0;
        return;
    }
    if (c->opcode != SL_WS_OP_CONT) {
        p->message_opcode = c->opcode;
        p->message_is_text = c->opcode == SL_WS_OP_TEXT;
        /* An extension that transforms the payload (RSV bits on the first frame,
           RSV1 for a compressed message) leaves no text to check; nor may we check
           under an extension we do not know, which may transform it unmarked. */
        p->message_validate = p->message_is_text && p->validate_utf8 && c->rsv == 0 &&
                              p->extensions != SL_WS_EXT_UNKNOWN;
        p->message_len = 0;
        p->utf8_state = SL_UTF8_ACCEPT;
    }
    p->message_len += c->payload_len;
    if (!c->fin)
        p->in_message = true;
}

/* Read header bytes. Returns 1 when the header completed, 0 when input ran out, or an error. */
static int take_header(sl_ws_parser_t *p, const uint8_t *buf, size_t len, size_t *used)
{
    for (;;) {
        uint8_t need = header_need(p);
        if (p->hgot == need)
            break;
        if (*used == len)
            return 0;
        if (p->hgot == 0) {
            p->frame_start = p->pos + *used;
            p->in_frame = true;
        }
        size_t n = SL_MIN((size_t)(need - p->hgot), len - *used);
        memcpy(p->hbuf + p->hgot, buf + *used, n);
        p->hgot = (uint8_t)(p->hgot + n);
        *used += n;
        if (p->hgot == 2) {
            int rc = check_base(p);
            if (rc < 0)
                return rc;
        }
    }
    int rc = finish_header(p);
    if (rc < 0)
        return rc;
    begin_frame(p);
    return 1;
}

/* Validate `n` bytes of text payload, unmasking into a stack buffer when masked. */
static int check_text(sl_ws_parser_t *p, const uint8_t *data, size_t n)
{
    const sl_ws_frame_header_t *c = &p->cur;
    uint32_t st = p->utf8_state;

    if (!c->masked) {
        st = sl_utf8_feed(st, data, n);
    } else {
        uint64_t off = c->payload_len - p->remaining;
        uint8_t tmp[UNMASK_CHUNK];
        for (size_t done = 0; done < n && st != SL_UTF8_REJECT;) {
            size_t k = SL_MIN(n - done, sizeof tmp);
            memcpy(tmp, data + done, k);
            sl_ws_mask(tmp, k, c->mask, off + done);
            st = sl_utf8_feed(st, tmp, k);
            done += k;
        }
    }
    p->utf8_state = st;
    if (st == SL_UTF8_REJECT)
        return fail(p, SL_WS_CLOSE_BAD_DATA, "invalid UTF-8 in a text message");
    return 0;
}

/* Check a complete close payload: no code, or a valid code and a UTF-8 reason. */
static int check_close(sl_ws_parser_t *p)
{
    if (p->ctl_len == 0)
        return 0;
    uint16_t code = (uint16_t)(p->ctl[0] << 8 | p->ctl[1]);
    if (!sl_ws_close_code_valid(code))
        return fail(p, SL_WS_CLOSE_PROTOCOL, "invalid close code");
    if (!sl_utf8_valid(p->ctl + 2, p->ctl_len - 2u))
        return fail(p, SL_WS_CLOSE_BAD_DATA, "close reason not UTF-8");
    return 0;
}

/* The frame's payload is all in: final checks, then the FRAME_END event. */
static int end_frame(sl_ws_parser_t *p, sl_ws_event_t *ev)
{
    const sl_ws_frame_header_t *c = &p->cur;
    bool control = is_control(c->opcode);

    if (control && c->opcode == SL_WS_OP_CLOSE && check_close(p) < 0)
        return SL_EINVAL;
    if (!control && c->fin) {
        if (p->message_validate && p->utf8_state != SL_UTF8_ACCEPT)
            return fail(p, SL_WS_CLOSE_BAD_DATA, "text message ends inside a UTF-8 character");
        ev->message_end = true;
        p->in_message = false;
    }
    ev->type = SL_WS_EV_FRAME_END;
    ev->header = *c;
    ev->frame_start = p->frame_start;
    if (control) {
        ev->control = p->ctl;
        ev->control_len = p->ctl_len;
    }
    p->in_frame = false;
    p->hgot = 0;
    p->cur.header_len = 0;
    return 0;
}

/* Consume payload bytes of the current frame; reports FRAME_END when it completes. */
static int take_payload(sl_ws_parser_t *p, const uint8_t *buf, size_t len, size_t *used,
                        sl_ws_event_t *ev)
{
    uint64_t n = SL_MIN(p->remaining, (uint64_t)(len - *used));
    const uint8_t *data = buf + *used;

    if (n && is_control(p->cur.opcode)) {
        memcpy(p->ctl + p->ctl_len, data, (size_t)n);
        if (p->cur.masked)
            sl_ws_mask(p->ctl + p->ctl_len, (size_t)n, p->cur.mask, p->ctl_len);
        p->ctl_len = (uint8_t)(p->ctl_len + n);
    } else if (n && p->message_validate) {
        if (check_text(p, data, (size_t)n) < 0)
            return SL_EINVAL;
    }
    p->remaining -= n;
    *used += (size_t)n;
    if (p->remaining == 0)
        return end_frame(p, ev);
    return 0;
}

ssize_t sl_ws_parse(sl_ws_parser_t *p, const uint8_t *buf, size_t len, sl_ws_event_t *ev)
{
    size_t used = 0;
    int rc;

    memset(ev, 0, sizeof *ev);
    if (p->error)
        return SL_EINVAL;
    if (p->cur.header_len == 0) {
        rc = take_header(p, buf, len, &used);
        if (rc < 0)
            return SL_EINVAL;
        if (rc == 1) {
            ev->type = SL_WS_EV_HEADER;
            ev->header = p->cur;
            ev->frame_start = p->frame_start;
        }
    } else {
        rc = take_payload(p, buf, len, &used, ev);
        if (rc < 0)
            return SL_EINVAL;
    }
    p->pos += used;
    return (ssize_t)used;
}

int sl_ws_parser_error(const sl_ws_parser_t *p, const char **reason)
{
    if (reason)
        *reason = p->error ? p->error_reason : NULL;
    return p->error;
}

bool sl_ws_close_code_valid(uint16_t code)
{
    if (code >= 3000 && code <= 4999)
        return true;   /* registered (3xxx) and private (4xxx) */
    if (code < 1000 || code > 1014)
        return false;
    /* 1004 reserved; 1005, 1006 and 1015 must never be sent on the wire. */
    return code != 1004 && code != 1005 && code != 1006;
}

void sl_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset)
{
    /* Eight mask bytes in the phase of data[0]; then data[i] pairs with m[i % 8]. */
    uint8_t m[8];
    for (size_t i = 0; i < sizeof m; i++)
        m[i] = mask[(offset + i) & 3];
    uint64_t m8;
    memcpy(&m8, m, sizeof m8);

    size_t i = 0;
    for (; len - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, data + i, sizeof w);
        w ^= m8;
        memcpy(data + i, &w, sizeof w);
    }
    for (; i < len; i++)
        data[i] ^= m[i & 7];
}

size_t sl_ws_write_header(uint8_t out[SL_WS_MAX_HEADER], bool fin, uint8_t opcode,
                          const uint8_t *mask, uint64_t payload_len)
{
    uint8_t mbit = mask ? 0x80 : 0;
    size_t n = 0;

    out[n++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0xf));
    if (payload_len <= 125) {
        out[n++] = (uint8_t)(mbit | payload_len);
    } else if (payload_len <= 0xffff) {
        out[n++] = mbit | 126;
        out[n++] = (uint8_t)(payload_len >> 8);
        out[n++] = (uint8_t)payload_len;
    } else {
        out[n++] = mbit | 127;
        for (int shift = 56; shift >= 0; shift -= 8)
            out[n++] = (uint8_t)(payload_len >> shift);
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

size_t sl_ws_write_control(uint8_t out[SL_WS_MAX_CONTROL_FRAME], uint8_t opcode,
                           const uint8_t *payload, size_t len, const uint8_t *mask)
{
    if (len > 125 || !is_control(opcode))
        return 0;
    size_t n = sl_ws_write_header(out, true, opcode, mask, len);
    if (len) {
        memcpy(out + n, payload, len);
        if (mask)
            sl_ws_mask(out + n, len, mask, 0);
    }
    return n + len;
}

/* Bytes of `s` that fit in `max` without splitting a UTF-8 character. */
static size_t utf8_prefix(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && ((uint8_t)s[n] & 0xC0) == 0x80)
        n--;   /* s[n] continues a character begun before it: cut earlier */
    return n;
}

size_t sl_ws_write_close(uint8_t out[SL_WS_MAX_CONTROL_FRAME], uint16_t code,
                         const char *reason, const uint8_t *mask)
{
    uint8_t payload[125];
    size_t len = 0;

    if (code != 0) {
        payload[0] = (uint8_t)(code >> 8);
        payload[1] = (uint8_t)code;
        len = 2;
        if (reason) {
            size_t r = utf8_prefix(reason, strlen(reason), sizeof payload - 2);
            memcpy(payload + 2, reason, r);
            len += r;
        }
    }
    return sl_ws_write_control(out, SL_WS_OP_CLOSE, payload, len, mask);
}
