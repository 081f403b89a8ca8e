/*
 * fuzz_wsframe.c: libFuzzer target for the RFC 6455 frame parser.
 *
 * The first input byte chooses where the rest is split in two and a few
 * settings; the rest is a byte stream. It is parsed in both roles, with and
 * without UTF-8 validation, under each extensions mode (none, permessage-deflate,
 * unknown), once whole and once split. Beyond "no crash",
 * every call is checked against the contract: consumed <= len, pos is the
 * sum of what calls returned, NONE only once the input is used up, HEADER and
 * FRAME_END at the offsets their header implies, boundary flags that agree
 * with the events, RSV bits only where the mode allows them (with
 * permessage-deflate, RSV1 only on a message's first frame), sticky errors
 * with a close code of 1002, 1007 or 1009.
 * Finally the split run must report exactly what the whole run reported.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/wsframe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)               \
    do {                          \
        if (!(cond))              \
            __builtin_trap();     \
    } while (0)

typedef struct {
    uint64_t hash;      /* of every event's kind and fields, in order */
    uint64_t events;
    int error;
    uint64_t pos;
    const uint8_t *stream;   /* the whole input, from stream offset 0 */
} outcome_t;

static void mix(outcome_t *o, uint64_t v)
{
    o->hash = (o->hash ^ v) * 0x100000001b3ULL;
}

static void check_event(const sl_ws_parser_t *p, const sl_ws_event_t *ev, const uint8_t *stream)
{
    const sl_ws_frame_header_t *h = &ev->header;
    /* What a relay writes for a frame it held back: the header as it came... */
    CHECK(memcmp(sl_ws_header_bytes(p), stream + ev->frame_start, h->header_len) == 0);
    /* ...and a control frame's payload, which masks back to the bytes that came. */
    for (size_t i = 0; i < ev->control_len; i++)
        CHECK((uint8_t)(ev->control[i] ^ (h->masked ? h->mask[i % 4] : 0)) ==
              stream[ev->frame_start + h->header_len + i]);
    CHECK(h->header_len >= 2 && h->header_len <= SL_WS_MAX_HEADER);
    CHECK(h->masked == (p->role == SL_WS_FROM_CLIENT));
    if (p->extensions == SL_WS_EXT_NONE)
        CHECK((h->rsv & ~p->allowed_rsv) == 0);
    if (p->extensions == SL_WS_EXT_DEFLATE) {
        CHECK((h->rsv & 0x3 & ~p->allowed_rsv) == 0);
        CHECK(!(h->rsv & 0x4) || h->opcode == SL_WS_OP_TEXT || h->opcode == SL_WS_OP_BINARY);
    }
    CHECK(!p->max_frame || h->payload_len <= p->max_frame);
    if (ev->type == SL_WS_EV_HEADER) {
        CHECK(p->pos == ev->frame_start + h->header_len);
        CHECK(p->in_frame);
    } else {
        CHECK(p->pos == ev->frame_start + h->header_len + h->payload_len);
        CHECK(sl_ws_at_frame_boundary(p));
        CHECK(!ev->message_end || sl_ws_at_message_boundary(p));
        if (h->opcode & 0x8) {
            CHECK(h->fin && ev->control_len == h->payload_len && ev->control_len <= 125);
            CHECK(!ev->message_end);
        } else {
            CHECK(ev->message_end == h->fin);
        }
    }
}

/* Feed one piece; returns false once the parser has failed. */
static bool feed(sl_ws_parser_t *p, const uint8_t *buf, size_t len, outcome_t *o)
{
    size_t off = 0;
    int idle = 0;
    for (;;) {
        sl_ws_event_t ev;
        uint64_t pos0 = p->pos;
        ssize_t got = sl_ws_parse(p, buf + off, len - off, &ev);
        if (got < 0) {
            CHECK(got == SL_EINVAL && ev.type == SL_WS_EV_NONE && p->pos == pos0);
            const char *why = NULL;
            o->error = sl_ws_parser_error(p, &why);
            CHECK(why != NULL);
            CHECK(o->error == 1002 || o->error == 1007 || o->error == 1009);
            /* Sticky, whatever comes next. */
            CHECK(sl_ws_parse(p, (const uint8_t *)"\x80\x00", 2, &ev) == SL_EINVAL);
            CHECK(sl_ws_parser_error(p, NULL) == o->error);
            return false;
        }
        CHECK((size_t)got <= len - off);
        CHECK(p->pos == pos0 + (uint64_t)got);
        off += (size_t)got;
        o->pos += (uint64_t)got;
        CHECK(p->pos == o->pos);
        /* What a relay holds back fits the frame it writes from the parser. */
        CHECK(sl_ws_unpassable(p) <= SL_WS_MAX_CONTROL_FRAME);
        CHECK(sl_ws_unpassable(p) == 0 || p->in_frame);
        if (ev.type == SL_WS_EV_NONE) {
            CHECK(off == len);
            return true;
        }
        /* A call that consumes nothing may report FRAME_END after HEADER, no more. */
        idle = got ? 0 : idle + 1;
        CHECK(idle <= 1);
        check_event(p, &ev, o->stream);
        o->events++;
        mix(o, (uint64_t)ev.type << 56 ^ (uint64_t)ev.header.opcode << 48 ^ ev.frame_start);
        mix(o, ev.header.payload_len ^ (uint64_t)ev.message_end << 63);
        for (size_t i = 0; i < ev.control_len; i++)
            mix(o, ev.control[i]);
    }
}

static void run(sl_ws_parser_t settings, const uint8_t *buf, size_t len, size_t cut)
{
    outcome_t whole = {.stream = buf}, split = {.stream = buf};
    sl_ws_parser_t p = settings;

    feed(&p, buf, len, &whole);
    p = settings;
    if (feed(&p, buf, cut, &split))
        feed(&p, buf + cut, len - cut, &split);
    CHECK(whole.hash == split.hash && whole.events == split.events);
    CHECK(whole.error == split.error);
    if (!whole.error)
        CHECK(whole.pos == len && split.pos == len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t knob = data[0];
    const uint8_t *buf = data + 1;
    size_t len = size - 1;
    size_t cut = knob % (len + 1);

    for (int role = 0; role < 2; role++) {
        for (int validate = 0; validate < 2; validate++) {
            for (int ext = SL_WS_EXT_NONE; ext <= SL_WS_EXT_UNKNOWN; ext++) {
                sl_ws_parser_t s;
                memset(&s, 0, sizeof s);
                s.role = (sl_ws_role_t)role;
                s.validate_utf8 = validate;
                s.extensions = (sl_ws_extensions_t)ext;
                /* The knob's top bits also pick extension bits and small limits. */
                s.allowed_rsv = (knob & 0x80) ? 0x4 : 0;
                if (knob & 0x40) {
                    s.max_frame = 300;
                    s.max_message = 1000;
                }
                run(s, buf, len, cut);
            }
        }
    }
    return 0;
}
