/*
 * Tests for gateway/proto/wsframe.c.
 *
 * Every parser case is a stream of bytes and the exact list of events (and
 * the error, if any) it must produce. expect() feeds it three ways: whole,
 * split in two at every byte, and one byte at a time, each piece copied into a
 * heap block of exactly its size so AddressSanitizer catches any overread.
 * All three must give the same events and the same error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "sluice/wsframe.h"

/* ---- building input ------------------------------------------------------------ */

typedef struct {
    uint8_t *b;
    size_t n, cap;
} buf_t;

static void put(buf_t *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->b = realloc(b->b, b->cap);
        assert_non_null(b->b);
    }
    if (n)
        memcpy(b->b + b->n, p, n);
    b->n += n;
}

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};   /* RFC 6455 5.7 */

/*
 * Append a frame, encoded here independently of the writer under test.
 * b0 is the first byte (FIN, RSV, opcode); mask NULL for unmasked.
 */
static void put_frame(buf_t *b, uint8_t b0, const uint8_t *mask, const void *payload, size_t len)
{
    uint8_t h[14];
    size_t n = 0;
    uint8_t mbit = mask ? 0x80 : 0;
    h[n++] = b0;
    if (len < 126) {
        h[n++] = (uint8_t)(mbit | len);
    } else if (len < 65536) {
        h[n++] = mbit | 126;
        h[n++] = (uint8_t)(len >> 8);
        h[n++] = (uint8_t)len;
    } else {
        h[n++] = mbit | 127;
        for (int i = 7; i >= 0; i--)
            h[n++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    if (mask) {
        memcpy(h + n, mask, 4);
        n += 4;
    }
    put(b, h, n);
    size_t at = b->n;
    put(b, payload, len);
    for (size_t i = 0; mask && i < len; i++)
        b->b[at + i] ^= mask[i % 4];
}

/* ---- expected and recorded events ------------------------------------------------ */

typedef struct {
    int type;
    uint8_t opcode;
    uint64_t len;
    uint64_t start;
    bool message_end;
    const char *ctl;     /* FRAME_END of a control frame: the unmasked payload */
    size_t ctl_len;
} xev_t;

#define H(op, len, start) {SL_WS_EV_HEADER, op, len, start, false, NULL, 0}
#define E(op, len, start, mend) {SL_WS_EV_FRAME_END, op, len, start, mend, NULL, 0}
#define EC(op, start, s) {SL_WS_EV_FRAME_END, op, sizeof(s) - 1, start, false, s, sizeof(s) - 1}

enum { MAX_EV = 64 };

typedef struct {
    sl_ws_event_t ev[MAX_EV];
    uint8_t ctl[MAX_EV][125];
    size_t n_ev;
    int error;           /* close code, 0 when none */
} run_t;

/* Feed one piece (copied to an exact heap block); returns false once an error is hit. */
static bool feed(sl_ws_parser_t *p, const uint8_t *data, size_t len, run_t *r)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, data, len);
    size_t off = 0;
    bool more = true;
    /* Keep calling while bytes are left or the last call reported an event:
       a zero-length frame reports its FRAME_END on the call after HEADER. */
    for (;;) {
        sl_ws_event_t ev;
        uint64_t pos0 = p->pos;
        ssize_t got = sl_ws_parse(p, copy + off, len - off, &ev);
        if (got < 0) {
            assert_int_equal(got, SL_EINVAL);
            assert_int_equal(ev.type, SL_WS_EV_NONE);
            assert_int_equal(p->pos, pos0);
            const char *why = NULL;
            r->error = sl_ws_parser_error(p, &why);
            assert_true(r->error != 0);
            assert_non_null(why);
            more = false;
            break;
        }
        assert_true((size_t)got <= len - off);
        assert_int_equal(p->pos, pos0 + (uint64_t)got);
        off += (size_t)got;
        if (ev.type == SL_WS_EV_NONE) {
            assert_int_equal(off, len);   /* NONE only when everything was consumed */
            break;
        }
        assert_true(r->n_ev < MAX_EV);
        r->ev[r->n_ev] = ev;
        if (ev.control_len) {
            memcpy(r->ctl[r->n_ev], ev.control, ev.control_len);
            r->ev[r->n_ev].control = r->ctl[r->n_ev];
        }
        r->n_ev++;
    }
    free(copy);
    return more;
}

static void check_run(const run_t *r, const xev_t *x, size_t nx, int error, const char *how)
{
    if (r->n_ev != nx || r->error != error)
        fail_msg("%s: %zu events and error %d, expected %zu and %d", how, r->n_ev, r->error,
                 nx, error);
    for (size_t i = 0; i < nx; i++) {
        const sl_ws_event_t *e = &r->ev[i];
        if ((int)e->type != x[i].type || e->header.opcode != x[i].opcode ||
            e->header.payload_len != x[i].len || e->frame_start != x[i].start ||
            e->message_end != x[i].message_end)
            fail_msg("%s: event %zu: type %d op %d len %llu start %llu end %d", how, i,
                     (int)e->type, e->header.opcode, (unsigned long long)e->header.payload_len,
                     (unsigned long long)e->frame_start, e->message_end);
        if (x[i].ctl) {
            assert_int_equal(e->control_len, x[i].ctl_len);
            assert_memory_equal(e->control, x[i].ctl, x[i].ctl_len);
        }
    }
}

/* Run `in` whole, split at every byte (sampled for big inputs), and byte by byte. */
static void expect(const sl_ws_parser_t *settings, const buf_t *in, const xev_t *x, size_t nx,
                   int error)
{
    run_t r;
    sl_ws_parser_t p;

    memset(&r, 0, sizeof r);
    p = *settings;
    if (feed(&p, in->b, in->n, &r))
        assert_int_equal(p.pos, in->n);
    check_run(&r, x, nx, error, "whole");
    if (error) {   /* sticky: even a valid frame is refused now */
        sl_ws_event_t ev;
        assert_int_equal(sl_ws_parse(&p, (const uint8_t *)"\x82\x00", 2, &ev), SL_EINVAL);
        assert_int_equal(sl_ws_parser_error(&p, NULL), error);
    }

    for (size_t cut = 0; cut <= in->n; cut++) {
        if (in->n > 4096 && cut > 64 && cut + 64 < in->n && cut % 4093)
            continue;
        memset(&r, 0, sizeof r);
        p = *settings;
        if (feed(&p, in->b, cut, &r))
            feed(&p, in->b + cut, in->n - cut, &r);
        check_run(&r, x, nx, error, "split");
    }

    memset(&r, 0, sizeof r);
    p = *settings;
    bool ok = true;
    for (size_t i = 0; ok && i < in->n; i++)
        ok = feed(&p, in->b + i, 1, &r);
    check_run(&r, x, nx, error, "bytewise");
}

#define EXPECT(s, in, error, ...)                                          \
    do {                                                                   \
        static const xev_t x_[] = {__VA_ARGS__};                           \
        expect((s), (in), x_, sizeof x_ / sizeof x_[0], (error));          \
    } while (0)
#define EXPECT_NO_EVENTS(s, in, error) expect((s), (in), NULL, 0, (error))
/* EXPECT for events whose offsets are computed (not constant expressions). */
#define EXPECT_AT(s, in, error, ...)                                       \
    do {                                                                   \
        const xev_t x_[] = {__VA_ARGS__};                                  \
        expect((s), (in), x_, sizeof x_ / sizeof x_[0], (error));          \
    } while (0)

static sl_ws_parser_t server(void)
{
    return (sl_ws_parser_t){.role = SL_WS_FROM_SERVER, .validate_utf8 = true};
}

static sl_ws_parser_t client(void)
{
    return (sl_ws_parser_t){.role = SL_WS_FROM_CLIENT, .validate_utf8 = true};
}

static void reset(buf_t *b)
{
    b->n = 0;
}

/* ---- valid streams ---------------------------------------------------------------- */

static void test_rfc_examples(void **state)
{
    (void)state;
    buf_t in = {0};
    sl_ws_parser_t s = server(), c = client();

    /* 5.7: a single-frame unmasked text message, then the same masked from a client. */
    put(&in, "\x81\x05Hello", 7);
    EXPECT(&s, &in, 0, H(1, 5, 0), E(1, 5, 0, true));
    reset(&in);
    put(&in, "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
    EXPECT(&c, &in, 0, H(1, 5, 0), E(1, 5, 0, true));

    /* A fragmented unmasked text message, then an unmasked ping and a masked pong. */
    reset(&in);
    put(&in, "\x01\x03Hel\x80\x02lo", 9);
    EXPECT(&s, &in, 0, H(1, 3, 0), E(1, 3, 0, false), H(0, 2, 5), E(0, 2, 5, true));
    reset(&in);
    put(&in, "\x89\x05Hello", 7);
    EXPECT(&s, &in, 0, H(9, 5, 0), EC(9, 0, "Hello"));
    reset(&in);
    put(&in, "\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
    EXPECT(&c, &in, 0, H(10, 5, 0), EC(10, 0, "Hello"));
    free(in.b);
}

static void test_length_encodings(void **state)
{
    (void)state;
    buf_t in = {0};
    sl_ws_parser_t s = server(), c = client();
    static uint8_t big[65536 + 10];

    memset(big, 'x', sizeof big);
    put_frame(&in, 0x82, NULL, big, 125);
    put_frame(&in, 0x82, NULL, big, 126);
    put_frame(&in, 0x82, NULL, big, 65535);
    EXPECT(&s, &in, 0, H(2, 125, 0), E(2, 125, 0, true), H(2, 126, 127),
           E(2, 126, 127, true), H(2, 65535, 127 + 130), E(2, 65535, 127 + 130, true));

    /* 65536 needs the 64-bit form; masked text of that size is validated across every split. */
    reset(&in);
    put_frame(&in, 0x81, MASK, big, 65536);
    EXPECT(&c, &in, 0, H(1, 65536, 0), E(1, 65536, 0, true));

    /* A header alone, announcing 2^32 bytes: HEADER, then the parser waits. */
    reset(&in);
    put(&in, "\x82\x7f\x00\x00\x00\x01\x00\x00\x00\x00", 10);
    EXPECT(&s, &in, 0, H(2, 4294967296ULL, 0));
    free(in.b);
}

static void test_zero_length_frames(void **state)
{
    (void)state;
    buf_t in = {0};
    sl_ws_parser_t c = client();

    put_frame(&in, 0x81, MASK, "", 0);   /* empty text */
    put_frame(&in, 0x89, MASK, "", 0);   /* empty ping */
    put_frame(&in, 0x02, MASK, "", 0);   /* empty first fragment */
    put_frame(&in, 0x80, MASK, "", 0);   /* empty last fragment */
    put_frame(&in, 0x88, MASK, "", 0);   /* close without status */
    EXPECT(&c, &in, 0, H(1, 0, 0), E(1, 0, 0, true), H(9, 0, 6), EC(9, 6, ""), H(2, 0, 12),
           E(2, 0, 12, false), H(0, 0, 18), E(0, 0, 18, true), H(8, 0, 24), EC(8, 24, ""));
    free(in.b);
}

static void test_control_inside_fragmented_message(void **state)
{
    (void)state;
    buf_t in = {0};
    sl_ws_parser_t c = client();

    put_frame(&in, 0x01, MASK, "caf\xC3", 4);     /* a character split across fragments */
    put_frame(&in, 0x89, MASK, "pi", 2);
    put_frame(&in, 0x00, MASK, "\xA9 ", 2);
    put_frame(&in, 0x8A, MASK, "po", 2);
    put_frame(&in, 0x80, MASK, "!", 1);
    put_frame(&in, 0x88, MASK, "\x03\xe8" "bye", 5);
    EXPECT(&c, &in, 0, H(1, 4, 0), E(1, 4, 0, false), H(9, 2, 10), EC(9, 10, "pi"),
           H(0, 2, 18), E(0, 2, 18, false), H(10, 2, 26), EC(10, 26, "po"), H(0, 1, 34),
           E(0, 1, 34, true), H(8, 5, 41), EC(8, 41, "\x03\xe8" "bye"));
    free(in.b);
}

static void test_rsv_allowed_by_extension(void **state)
{
    (void)state;
    buf_t in = {0};
    sl_ws_parser_t s = server();
    s.allowed_rsv = 0x4;

    /* Compressed text (RSV1) is not plain UTF-8: it is not validated. */
    put_frame(&in, 0xC1, NULL, "\xF2\xFF\x00", 3);
    EXPECT(&s, &in, 0, H(1, 3, 0), E(1, 3, 0, true));
    reset(&in);
    put_frame(&in, 0xA2, NULL, "x", 1);   /* RSV2 was not negotiated */
    EXPECT_NO_EVENTS(&s, &in, 1002);
    s.allowed_rsv = 0x7;
    EXPECT(&s, &in, 0, H(2, 1, 0), E(2, 1, 0, true));
    free(in.b);
}

/* The reason a parser gives for the error `in` ends in, fed whole. */
static const char *reason_of(const sl_ws_parser_t *settings, const buf_t *in)
{
    static sl_ws_parser_t p;
    sl_ws_event_t ev;
    size_t off = 0;
    ssize_t got = 0;
    const char *why = NULL;

    p = *settings;
    while (off < in->n && (got = sl_ws_parse(&p, in->b + off, in->n - off, &ev)) >= 0)
        off += (size_t)got;
    assert_int_equal(got, SL_EINVAL);
    assert_true(sl_ws_parser_error(&p, &why) != 0);
    return why;
}

/*
 * permessage-deflate (RFC 7692): RSV1 on a message's first frame says the
 * message is compressed, so it is not checked as text; RSV1 anywhere else
 * fails the connection (section 6); a message without it is plain text and is
 * checked (RFC 6455 8.1). Both roles.
 */
static void test_permessage_deflate(void **state)
{
    (void)state;
    buf_t in = {0};

    for (int role = 0; role < 2; role++) {
        sl_ws_parser_t p = role ? server() : client();
        const uint8_t *m = role ? NULL : MASK;
        uint8_t hl = role ? 2 : 6;   /* header bytes of a short frame */
        p.extensions = SL_WS_EXT_DEFLATE;

        /* "Hello" deflated (RFC 7692 7.2.3.1), then other bytes that are not UTF-8 either:
           compressed, neither is read as text. Binary may be compressed too. */
        reset(&in);
        put_frame(&in, 0xC1, m, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7);
        put_frame(&in, 0xC1, m, "\xff\xfe\xfd", 3);
        put_frame(&in, 0xC2, m, "\xff", 1);
        EXPECT_AT(&p, &in, 0, H(1, 7, 0), E(1, 7, 0, true), H(1, 3, hl + 7),
               E(1, 3, hl + 7, true), H(2, 1, 2 * hl + 10), E(2, 1, 2 * hl + 10, true));

        /* A compressed message in fragments: RSV1 on the first only; a ping between them. */
        reset(&in);
        put_frame(&in, 0x41, m, "\xf2\x48", 2);
        put_frame(&in, 0x89, m, "p", 1);
        put_frame(&in, 0x80, m, "\xcd\xc9\xc9\x07\x00", 5);
        EXPECT_AT(&p, &in, 0, H(1, 2, 0), E(1, 2, 0, false), H(9, 1, hl + 2), EC(9, hl + 2, "p"),
               H(0, 5, 2 * hl + 3), E(0, 5, 2 * hl + 3, true));

        /* RSV1 on a continuation frame, with or without FIN. */
        reset(&in);
        put_frame(&in, 0x41, m, "a", 1);
        put_frame(&in, 0xC0, m, "b", 1);
        EXPECT(&p, &in, 1002, H(1, 1, 0), E(1, 1, 0, false));
        assert_string_equal(reason_of(&p, &in), "RSV1 on a continuation frame");
        reset(&in);
        put_frame(&in, 0x02, m, "a", 1);
        put_frame(&in, 0x40, m, "b", 1);
        EXPECT(&p, &in, 1002, H(2, 1, 0), E(2, 1, 0, false));
        assert_string_equal(reason_of(&p, &in), "RSV1 on a continuation frame");

        /* RSV1 on each control opcode, alone and inside a compressed message. */
        static const uint8_t ops[] = {0x8, 0x9, 0xA};
        for (size_t i = 0; i < sizeof ops; i++) {
            reset(&in);
            put_frame(&in, (uint8_t)(0xC0 | ops[i]), m, "", 0);
            EXPECT_NO_EVENTS(&p, &in, 1002);
            assert_string_equal(reason_of(&p, &in), "RSV1 on a control frame");
            reset(&in);
            put_frame(&in, 0x41, m, "a", 1);
            put_frame(&in, (uint8_t)(0xC0 | ops[i]), m, "", 0);
            EXPECT(&p, &in, 1002, H(1, 1, 0), E(1, 1, 0, false));
        }

        /* RSV2 and RSV3 are still not negotiated. */
        static const uint8_t rsv[] = {0x2, 0x1, 0x6, 0x7};
        for (size_t i = 0; i < sizeof rsv; i++) {
            reset(&in);
            put_frame(&in, (uint8_t)(0x81 | rsv[i] << 4), m, "a", 1);
            EXPECT_NO_EVENTS(&p, &in, 1002);
            assert_string_equal(reason_of(&p, &in), "reserved bits set");
        }

        /* An uncompressed text message is text: checked whole, across fragments, and after a
           compressed one (each message decides for itself). */
        reset(&in);
        put_frame(&in, 0x81, m, "\xc0\xaf", 2);
        EXPECT(&p, &in, 1007, H(1, 2, 0));
        reset(&in);
        put_frame(&in, 0xC1, m, "\xff", 1);
        put_frame(&in, 0x81, m, "caf\xC3\xA9", 5);
        put_frame(&in, 0x01, m, "ab\xE2", 3);
        put_frame(&in, 0x80, m, "\x82", 1);
        EXPECT_AT(&p, &in, 1007, H(1, 1, 0), E(1, 1, 0, true), H(1, 5, hl + 1),
               E(1, 5, hl + 1, true), H(1, 3, 2 * hl + 6), E(1, 3, 2 * hl + 6, false),
               H(0, 1, 3 * hl + 9));
        assert_string_equal(reason_of(&p, &in), "text message ends inside a UTF-8 character");
        /* ... unless validation is off. */
        p.validate_utf8 = false;
        reset(&in);
        put_frame(&in, 0x81, m, "\xc0\xaf", 2);
        EXPECT(&p, &in, 0, H(1, 2, 0), E(1, 2, 0, true));
        p.validate_utf8 = true;

        /* A close frame's reason is checked as ever: no extension applies to control frames. */
        reset(&in);
        put_frame(&in, 0x88, m, "\x03\xe8\xC3\x28", 4);
        EXPECT(&p, &in, 1007, H(8, 4, 0));

        /* What allowed_rsv says of RSV1 does not change RFC 7692's rule. */
        p.allowed_rsv = 0x4;
        reset(&in);
        put_frame(&in, 0xC9, m, "", 0);
        EXPECT_NO_EVENTS(&p, &in, 1002);
        assert_string_equal(reason_of(&p, &in), "RSV1 on a control frame");
    }
    free(in.b);
}

/*
 * An extension we do not know: every RSV bit passes on every frame, and no
 * text is checked, even with validate_utf8 on and no RSV bit set (it may
 * transform the payload unmarked). Close frames are still checked.
 */
static void test_unknown_extension_is_lenient(void **state)
{
    (void)state;
    buf_t in = {0};
    sl_ws_parser_t p = client();
    p.extensions = SL_WS_EXT_UNKNOWN;

    put_frame(&in, 0xF1, MASK, "\xff", 1);    /* RSV1-3 on text */
    put_frame(&in, 0x22, MASK, "a", 1);       /* RSV2 on a first fragment */
    put_frame(&in, 0xD9, MASK, "p", 1);       /* RSV1 and RSV3 on a ping */
    put_frame(&in, 0x90, MASK, "b", 1);       /* RSV3 on a continuation */
    put_frame(&in, 0x81, MASK, "\xc0\xaf", 2);   /* not UTF-8, no RSV bit */
    EXPECT(&p, &in, 0, H(1, 1, 0), E(1, 1, 0, true), H(2, 1, 7), E(2, 1, 7, false),
           H(9, 1, 14), EC(9, 14, "p"), H(0, 1, 21), E(0, 1, 21, true), H(1, 2, 28),
           E(1, 2, 28, true));
    reset(&in);
    put_frame(&in, 0x88, MASK, "\x03\xe8\xC3\x28", 4);
    EXPECT(&p, &in, 1007, H(8, 4, 0));
    free(in.b);
}

/* ---- each rule ---------------------------------------------------------------------- */

static void test_masking_by_role(void **state)
{
    (void)state;
    buf_t in = {0};
    sl_ws_parser_t s = server(), c = client();

    put_frame(&in, 0x82, NULL, "ab", 2);
    EXPECT_NO_EVENTS(&c, &in, 1002);   /* client frame not masked */
    reset(&in);
    put_frame(&in, 0x82, MASK, "ab", 2);
    EXPECT_NO_EVENTS(&s, &in, 1002);   /* server frame masked */
    /* The rule holds for later frames too, after valid ones. */
    reset(&in);
    put_frame(&in, 0x82, MASK, "ab", 2);
    put_frame(&in, 0x89, NULL, "", 0);
    EXPECT(&c, &in, 1002, H(2, 2, 0), E(2, 2, 0, true));
    free(in.b);
}

static void test_reserved_bits(void **state)
{
    (void)state;
    buf_t in = {0};
    sl_ws_parser_t s = server();
    for (uint8_t rsv = 1; rsv <= 7; rsv++) {
        reset(&in);
        put_frame(&in, (uint8_t)(0x82 | rsv << 4), NULL, "ab", 2);
        EXPECT_NO_EVENTS(&s, &in, 1002);
    }
    free(in.b);
}

static void test_unknown_opcodes(void **state)
{
    (void)state;
    buf_t in = {0};
    sl_ws_parser_t s = server();
    static const uint8_t bad[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
    for (size_t i = 0; i < sizeof bad; i++) {
        reset(&in);
        put_frame(&in, (uint8_t)(0x80 | bad[i]), NULL, "", 0);
        EXPECT_NO_EVENTS(&s, &in, 1002);
    }
    free(in.b);
}

static void test_control_frame_rules(void **state)
{
    (void)state;
    buf_t in = {0};
    sl_ws_parser_t s = server();
    static uint8_t payload[126];
    memset(payload, 'p', sizeof payload);

    put_frame(&in, 0x89, NULL, payload, 125);   /* 125 is the most a control frame may hold */
    EXPECT(&s, &in, 0, H(9, 125, 0), E(9, 125, 0, false));
    static const uint8_t ops[] = {0x8, 0x9, 0xA};
    for (size_t i = 0; i < sizeof ops; i++) {
        reset(&in);
        put_frame(&in, (uint8_t)(0x80 | ops[i]), NULL, payload, 126);
        EXPECT_NO_EVENTS(&s, &in, 1002);   /* over 125 */
        reset(&in);
        put_frame(&in, ops[i], NULL, "", 0);
        EXPECT_NO_EVENTS(&s, &in, 1002);   /* FIN clear */
    }
    free(in.b);
}

static void test_fragmentation_rules(void **state)
{
    (void)state;
    buf_t in = {0};
    sl_ws_parser_t s = server();

    put_frame(&in, 0x80, NULL, "x", 1);
    EXPECT_NO_EVENTS(&s, &in, 1002);   /* continuation, nothing open */
    reset(&in);
    put_frame(&in, 0x82, NULL, "a", 1);
    put_frame(&in, 0x00, NULL, "x", 1);
    EXPECT(&s, &in, 1002, H(2, 1, 0), E(2, 1, 0, true));   /* the message had ended */
    reset(&in);
    put_frame(&in, 0x01, NULL, "a", 1);
    put_frame(&in, 0x81, NULL, "b", 1);
    EXPECT(&s, &in, 1002, H(1, 1, 0), E(1, 1, 0, false));  /* new text inside a message */
    reset(&in);
    put_frame(&in, 0x02, NULL, "a", 1);
    put_frame(&in, 0x89, NULL, "", 0);
    put_frame(&in, 0x02, NULL, "b", 1);
    EXPECT(&s, &in, 1002, H(2, 1, 0), E(2, 1, 0, false), H(9, 0, 3), EC(9, 3, ""));
    free(in.b);
}

static void test_length_rules(void **state)
{
    (void)state;
    buf_t in = {0};
    sl_ws_parser_t s = server();

    put(&in, "\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x01", 10);
    EXPECT_NO_EVENTS(&s, &in, 1002);   /* 64-bit length, top bit set */
    reset(&in);
    put(&in, "\x82\x7e\x00\x7d", 4);
    EXPECT_NO_EVENTS(&s, &in, 1002);   /* 125 in the 16-bit form */
    reset(&in);
    put(&in, "\x82\x7e\x00\x00", 4);
    EXPECT_NO_EVENTS(&s, &in, 1002);   /* 0 in the 16-bit form */
    reset(&in);
    put(&in, "\x82\x7f\x00\x00\x00\x00\x00\x00\xff\xff", 10);
    EXPECT_NO_EVENTS(&s, &in, 1002);   /* 65535 in the 64-bit form */
    reset(&in);
    put(&in, "\x82\x7f\x00\x00\x00\x00\x00\x00\x00\x7d", 10);
    EXPECT_NO_EVENTS(&s, &in, 1002);   /* 125 in the 64-bit form */
    reset(&in);
    put(&in, "\x82\x7e\x00\x7e", 4);   /* 126 in the 16-bit form is right */
    EXPECT(&s, &in, 0, H(2, 126, 0));
    free(in.b);
}

static void test_size_limits(void **state)
{
    (void)state;
    buf_t in = {0};
    sl_ws_parser_t s = server();
    s.max_frame = 1 << 20;
    s.max_message = 10;

    /* Refused from the header alone: no payload byte is there or needed. */
    put(&in, "\x82\x7f\x00\x00\x01\x00\x00\x00\x00\x00", 10);
    EXPECT_NO_EVENTS(&s, &in, 1009);
    s.max_message = 0;
    EXPECT_NO_EVENTS(&s, &in, 1009);
    reset(&in);
    put(&in, "\x82\x7f\x00\x00\x00\x00\x00\x10\x00\x00", 10);   /* exactly max_frame */
    EXPECT(&s, &in, 0, H(2, 1 << 20, 0));
    reset(&in);
    put(&in, "\x82\x7f\x00\x00\x00\x00\x00\x10\x00\x01", 10);   /* one over */
    EXPECT_NO_EVENTS(&s, &in, 1009);

    /* max_message counts fragments; control frames in between do not count. */
    s.max_message = 10;
    reset(&in);
    put_frame(&in, 0x02, NULL, "12345", 5);
    put_frame(&in, 0x89, NULL, "ping", 4);
    put_frame(&in, 0x80, NULL, "67890", 5);
    put_frame(&in, 0x82, NULL, "1234567890", 10);   /* a new message starts from 0 */
    put_frame(&in, 0x02, NULL, "123456", 6);
    put_frame(&in, 0x80, NULL, "78901", 5);         /* 11 > 10 */
    EXPECT(&s, &in, 1009, H(2, 5, 0), E(2, 5, 0, false), H(9, 4, 7), EC(9, 7, "ping"),
           H(0, 5, 13), E(0, 5, 13, true), H(2, 10, 20), E(2, 10, 20, true), H(2, 6, 32),
           E(2, 6, 32, false));
    free(in.b);
}

static void test_text_validation(void **state)
{
    (void)state;
    buf_t in = {0};
    sl_ws_parser_t c = client(), s = server();

    put_frame(&in, 0x81, MASK, "ok \xFF", 4);
    EXPECT(&c, &in, 1007, H(1, 4, 0));   /* masked invalid text */
    reset(&in);
    put_frame(&in, 0x81, NULL, "\xED\xA0\x80", 3);
    EXPECT(&s, &in, 1007, H(1, 3, 0));   /* a surrogate */
    reset(&in);
    put_frame(&in, 0x01, NULL, "ab", 2);
    put_frame(&in, 0x80, NULL, "c\xE2\x82", 3);
    EXPECT(&s, &in, 1007, H(1, 2, 0), E(1, 2, 0, false), H(0, 3, 4));   /* ends mid-character */
    reset(&in);
    put_frame(&in, 0x81, MASK, "\xF0\x9F\x98", 3);
    EXPECT(&c, &in, 1007, H(1, 3, 0));   /* single frame ending mid-character */

    /* Binary is never validated; with validate_utf8 off neither is text. */
    reset(&in);
    put_frame(&in, 0x82, NULL, "\xFF\xFE", 2);
    EXPECT(&s, &in, 0, H(2, 2, 0), E(2, 2, 0, true));
    reset(&in);
    put_frame(&in, 0x81, NULL, "\xFF\xE2", 2);
    s.validate_utf8 = false;
    EXPECT(&s, &in, 0, H(1, 2, 0), E(1, 2, 0, true));
    free(in.b);
}

static void test_close_frames(void **state)
{
    (void)state;
    buf_t in = {0};
    sl_ws_parser_t c = client();

    put_frame(&in, 0x88, MASK, "\x03", 1);
    EXPECT_NO_EVENTS(&c, &in, 1002);   /* payload of one byte */
    reset(&in);
    put_frame(&in, 0x88, MASK, "\x03\xe8\xC3\x28", 4);
    EXPECT(&c, &in, 1007, H(8, 4, 0));   /* reason not UTF-8 */
    reset(&in);
    put_frame(&in, 0x88, MASK, "\x03\xe8\xC3", 3);
    EXPECT(&c, &in, 1007, H(8, 3, 0));   /* reason ends mid-character */

    static const struct {
        uint16_t code;
        bool valid;
    } codes[] = {
        {0, false}, {999, false}, {1000, true}, {1001, true}, {1002, true}, {1003, true},
        {1004, false}, {1005, false}, {1006, false}, {1007, true}, {1011, true}, {1014, true},
        {1015, false}, {1016, false}, {2999, false}, {3000, true}, {4999, true},
        {5000, false}, {65535, false},
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        uint8_t pl[4] = {(uint8_t)(codes[i].code >> 8), (uint8_t)codes[i].code, 'o', 'k'};
        reset(&in);
        put_frame(&in, 0x88, MASK, pl, 4);
        if (codes[i].valid) {
            static char want[4];
            memcpy(want, pl, 4);
            expect(&c, &in,
                   (const xev_t[]){H(8, 4, 0), {SL_WS_EV_FRAME_END, 8, 4, 0, false, want, 4}},
                   2, 0);
        } else {
            EXPECT(&c, &in, 1002, H(8, 4, 0));
        }
    }
    free(in.b);
}

static void test_close_code_valid_ranges(void **state)
{
    (void)state;
    for (uint32_t code = 0; code <= 0xffff; code++) {
        bool want = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                    (code >= 3000 && code <= 4999);
        assert_int_equal(sl_ws_close_code_valid((uint16_t)code), want);
    }
}

/* ---- state the relay reads ------------------------------------------------------------ */

/*
 * Byte by byte through: text fragment (0..6), ping (7..12), continuation with
 * FIN (13..16), binary (17..19). After each byte: is the parser between frames,
 * between messages?
 */
static void test_boundaries_at_every_byte(void **state)
{
    (void)state;
    buf_t in = {0};
    sl_ws_parser_t p = server();

    put_frame(&in, 0x01, NULL, "hello", 5);   /* bytes 0..6 */
    put_frame(&in, 0x89, NULL, "ping", 4);    /* 7..12 */
    put_frame(&in, 0x80, NULL, "!!", 2);      /* 13..16 */
    put_frame(&in, 0x82, NULL, "b", 1);       /* 17..19 */
    static const uint32_t frame_end[] = {6, 12, 16, 19};   /* last byte of each frame */
    assert_int_equal(in.n, 20);
    assert_true(sl_ws_at_message_boundary(&p));

    for (size_t i = 0; i < in.n; i++) {
        sl_ws_event_t ev;
        ssize_t got;
        size_t off = 0;
        do {
            got = sl_ws_parse(&p, in.b + i + off, 1 - off, &ev);
            assert_true(got >= 0);
            off += (size_t)got;
        } while (ev.type != SL_WS_EV_NONE && ev.type != SL_WS_EV_FRAME_END);
        bool at_end = false;
        for (size_t k = 0; k < SL_ARRAY_SIZE(frame_end); k++)
            at_end |= frame_end[k] == i;
        bool message_open = i < 16;   /* the text message is open until byte 16 ends it */
        assert_int_equal(p.pos, i + 1);
        assert_int_equal(sl_ws_at_frame_boundary(&p), at_end);
        assert_int_equal(sl_ws_at_message_boundary(&p), at_end && !message_open);
    }
    free(in.b);
}

/*
 * What a relay must hold back, byte by byte: every byte of a frame while its
 * header is incomplete, every byte of a control frame until it ends, nothing
 * of a data frame once its header is whole. And the header bytes the parser
 * keeps are the frame's own, mask key included, until the next frame begins.
 */
static void test_unpassable_bytes_at_every_byte(void **state)
{
    (void)state;
    buf_t in = {0};
    sl_ws_parser_t p = client();
    uint8_t big[300];
    memset(big, 'x', sizeof big);
    put_frame(&in, 0x82, MASK, big, sizeof big);          /* 0..307: header 8 bytes */
    put_frame(&in, 0x88, MASK, "\x03\xe8" "bye", 5);         /* 308..318: header 6 */
    put_frame(&in, 0x89, MASK, NULL, 0);                  /* 319..324: header only */
    assert_int_equal(in.n, 325);

    for (size_t i = 0; i < in.n; i++) {
        sl_ws_event_t ev;
        assert_int_equal(sl_ws_parse(&p, in.b + i, 1, &ev), 1);
        size_t held;
        if (i < 8)
            held = i + 1 < 8 ? i + 1 : 0;        /* the data frame's header, then none */
        else if (i < 308)
            held = 0;                            /* its payload passes as it comes */
        else if (i < 319)
            held = i == 318 ? 0 : i - 308 + 1;   /* the close frame, until it ends */
        else
            held = i - 319 + 1;                  /* the ping: its header is all of it */
        if (ev.type == SL_WS_EV_HEADER && i == 7)
            assert_memory_equal(sl_ws_header_bytes(&p), in.b, 8);
        if (ev.type == SL_WS_EV_FRAME_END && i == 318) {
            assert_memory_equal(sl_ws_header_bytes(&p), in.b + 308, 6);
            assert_memory_equal(ev.control, "\x03\xe8" "bye", 5);
        }
        if (i == 324) {
            /* A zero-length control frame ends in a call of its own. */
            assert_int_equal(ev.type, SL_WS_EV_HEADER);
            assert_int_equal(sl_ws_unpassable(&p), 6);
            assert_int_equal(sl_ws_parse(&p, in.b + in.n, 0, &ev), 0);
            assert_int_equal(ev.type, SL_WS_EV_FRAME_END);
            held = 0;
        }
        assert_int_equal(sl_ws_unpassable(&p), held);
    }
    assert_true(sl_ws_at_frame_boundary(&p));
    free(in.b);
}

/* Payload that is not validated must not be read at all: put it on an unreadable page. */
static void test_payload_is_never_read_when_not_validated(void **state)
{
    (void)state;
    long page = sysconf(_SC_PAGESIZE);
    uint8_t *guard = mmap(NULL, (size_t)page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(guard != MAP_FAILED);

    for (int role = 0; role < 2; role++) {
        sl_ws_parser_t p = role ? server() : client();
        buf_t in = {0};
        sl_ws_event_t ev;
        p.validate_utf8 = role == 0;   /* on for the client: binary is still not read */
        put(&in, role ? "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"
                      : "\x82\xff\x00\x00\x00\x00\x00\x01\x00\x00\x01\x02\x03\x04",
            role ? 10 : 14);
        if (role)
            in.b[0] = 0x81;   /* unvalidated text from the server */
        assert_int_equal(sl_ws_parse(&p, in.b, in.n, &ev), (ssize_t)in.n);
        assert_int_equal(ev.type, SL_WS_EV_HEADER);
        uint64_t left = 65536;
        while (left > (uint64_t)page) {
            assert_int_equal(sl_ws_parse(&p, guard, (size_t)page, &ev), page);
            assert_int_equal(ev.type, SL_WS_EV_NONE);
            left -= (uint64_t)page;
        }
        assert_int_equal(sl_ws_parse(&p, guard, (size_t)page, &ev), (ssize_t)left);
        assert_int_equal(ev.type, SL_WS_EV_FRAME_END);
        assert_true(ev.message_end);
        assert_int_equal(p.pos, in.n + 65536);
        free(in.b);
    }
    munmap(guard, (size_t)page);
}

static void test_zeroed_parser_and_empty_calls(void **state)
{
    (void)state;
    sl_ws_parser_t p;
    sl_ws_event_t ev;
    memset(&p, 0, sizeof p);   /* client role, nothing allowed, no limits */
    assert_int_equal(sl_ws_parse(&p, NULL, 0, &ev), 0);
    assert_int_equal(ev.type, SL_WS_EV_NONE);
    assert_int_equal(sl_ws_parser_error(&p, NULL), 0);
    const char *why = "x";
    assert_int_equal(sl_ws_parser_error(&p, &why), 0);
    assert_null(why);
    assert_int_equal(sl_ws_parse(&p, (const uint8_t *)"\x82", 1, &ev), 1);
    assert_int_equal(ev.type, SL_WS_EV_NONE);
    assert_true(p.in_frame);
    assert_int_equal(sl_ws_parse(&p, NULL, 0, &ev), 0);
    assert_int_equal(sl_ws_parse(&p, (const uint8_t *)"\x00", 1, &ev), SL_EINVAL);
    assert_int_equal(sl_ws_parser_error(&p, &why), 1002);
    assert_string_equal(why, "client frame not masked");
}

/* ---- writers ------------------------------------------------------------------------------ */

static void test_write_header_golden(void **state)
{
    (void)state;
    static const struct {
        uint64_t len;
        size_t n;
        const char *bytes;
    } rows[] = {
        {0, 2, "\x82\x00"},
        {125, 2, "\x82\x7d"},
        {126, 4, "\x82\x7e\x00\x7e"},
        {65535, 4, "\x82\x7e\xff\xff"},
        {65536, 10, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"},
        {4294967296ULL, 10, "\x82\x7f\x00\x00\x00\x01\x00\x00\x00\x00"},
    };
    uint8_t out[SL_WS_MAX_HEADER];
    for (size_t i = 0; i < SL_ARRAY_SIZE(rows); i++) {
        assert_int_equal(sl_ws_write_header(out, true, SL_WS_OP_BINARY, NULL, rows[i].len),
                         rows[i].n);
        assert_memory_equal(out, rows[i].bytes, rows[i].n);
        /* Masked: the mask bit, then the key after the length. */
        assert_int_equal(sl_ws_write_header(out, true, SL_WS_OP_BINARY, MASK, rows[i].len),
                         rows[i].n + 4);
        assert_int_equal(out[1], (uint8_t)rows[i].bytes[1] | 0x80);
        assert_memory_equal(out + 2, rows[i].bytes + 2, rows[i].n - 2);
        assert_memory_equal(out + rows[i].n, MASK, 4);
    }
    assert_int_equal(sl_ws_write_header(out, false, SL_WS_OP_TEXT, NULL, 3), 2);
    assert_memory_equal(out, "\x01\x03", 2);
    assert_int_equal(sl_ws_write_header(out, true, SL_WS_OP_CONT, NULL, 3), 2);
    assert_memory_equal(out, "\x80\x03", 2);
}

static void test_write_close(void **state)
{
    (void)state;
    uint8_t out[SL_WS_MAX_CONTROL_FRAME];
    char reason[200];

    assert_int_equal(sl_ws_write_close(out, 1012, "restart", NULL), 11);
    assert_memory_equal(out, "\x88\x09\x03\xf4restart", 11);
    assert_int_equal(sl_ws_write_close(out, 1000, NULL, NULL), 4);
    assert_memory_equal(out, "\x88\x02\x03\xe8", 4);
    assert_int_equal(sl_ws_write_close(out, 0, "ignored", NULL), 2);
    assert_memory_equal(out, "\x88\x00", 2);

    /* 200 ASCII bytes: 123 fit. */
    memset(reason, 'r', sizeof reason - 1);
    reason[sizeof reason - 1] = '\0';
    assert_int_equal(sl_ws_write_close(out, 1001, reason, NULL), 2 + 125);
    assert_int_equal(out[1], 125);
    /* 122 ASCII then a two-byte character: it would end at 124, so it is dropped. */
    memset(reason, 'r', 122);
    memcpy(reason + 122, "\xC3\xA9zz", 5);
    assert_int_equal(sl_ws_write_close(out, 1001, reason, NULL), 2 + 2 + 122);
    /* 121 ASCII then é fits exactly at 123. */
    memset(reason, 'r', 121);
    memcpy(reason + 121, "\xC3\xA9zz", 5);
    assert_int_equal(sl_ws_write_close(out, 1001, reason, NULL), 2 + 2 + 123);
    assert_memory_equal(out + 2 + 2 + 121, "\xC3\xA9", 2);
    /* 120 ASCII then a four-byte character crossing 123. */
    memset(reason, 'r', 120);
    memcpy(reason + 120, "\xF0\x9F\x98\x80", 5);
    assert_int_equal(sl_ws_write_close(out, 1001, reason, NULL), 2 + 2 + 120);
}

static void test_write_control(void **state)
{
    (void)state;
    uint8_t out[SL_WS_MAX_CONTROL_FRAME];
    uint8_t big[126] = {0};

    assert_int_equal(sl_ws_write_control(out, SL_WS_OP_PING, (const uint8_t *)"Hello", 5, MASK),
                     11);
    assert_memory_equal(out, "\x89\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
    assert_int_equal(sl_ws_write_control(out, SL_WS_OP_PONG, NULL, 0, NULL), 2);
    assert_memory_equal(out, "\x8a\x00", 2);
    assert_int_equal(sl_ws_write_control(out, SL_WS_OP_PING, big, 125, NULL), 127);
    assert_int_equal(sl_ws_write_control(out, SL_WS_OP_PING, big, 126, NULL), 0);
    assert_int_equal(sl_ws_write_control(out, SL_WS_OP_BINARY, big, 1, NULL), 0);
}

static void test_mask_phases(void **state)
{
    (void)state;
    uint8_t data[64], want[64];
    for (size_t len = 0; len <= sizeof data; len++) {
        for (uint64_t off = 0; off < 8; off++) {
            for (size_t i = 0; i < len; i++)
                data[i] = want[i] = (uint8_t)(i * 7 + 1);
            for (size_t i = 0; i < len; i++)
                want[i] ^= MASK[(off + i) % 4];
            sl_ws_mask(data, len, MASK, off);
            if (len)
                assert_memory_equal(data, want, len);
        }
    }
    /* Masking in two pieces at any split equals masking at once. */
    uint8_t a[37], b[37];
    for (size_t cut = 0; cut <= sizeof a; cut++) {
        for (size_t i = 0; i < sizeof a; i++)
            a[i] = b[i] = (uint8_t)i;
        sl_ws_mask(a, sizeof a, MASK, 0);
        sl_ws_mask(b, cut, MASK, 0);
        sl_ws_mask(b + cut, sizeof b - cut, MASK, cut);
        assert_memory_equal(a, b, sizeof a);
    }
}

/* Write frames with the writers, then parse them back, in both roles. */
static void test_round_trip(void **state)
{
    (void)state;
    for (int role = 0; role < 2; role++) {
        const uint8_t *mask = role == SL_WS_FROM_CLIENT ? MASK : NULL;
        buf_t in = {0};
        uint8_t out[SL_WS_MAX_CONTROL_FRAME];
        static uint8_t text[70000];
        for (size_t i = 0; i < sizeof text; i++)
            text[i] = (uint8_t)('a' + i % 26);

        static const uint64_t sizes[] = {0, 125, 126, 65535, 65536};
        for (size_t i = 0; i < SL_ARRAY_SIZE(sizes); i++) {
            put(&in, out, sl_ws_write_header(out, true, SL_WS_OP_TEXT, mask, sizes[i]));
            size_t at = in.n;
            put(&in, text, sizes[i]);
            if (mask)
                sl_ws_mask(in.b + at, sizes[i], mask, 0);
        }
        put(&in, out, sl_ws_write_control(out, SL_WS_OP_PING, (const uint8_t *)"hb", 2, mask));
        put(&in, out, sl_ws_write_close(out, 1012, "Service Restart", mask));

        sl_ws_parser_t p = {.role = (sl_ws_role_t)role, .validate_utf8 = true};
        size_t off = 0, n_end = 0;
        sl_ws_event_t ev;
        for (;;) {
            ssize_t got = sl_ws_parse(&p, in.b + off, in.n - off, &ev);
            assert_true(got >= 0);
            off += (size_t)got;
            if (ev.type == SL_WS_EV_FRAME_END) {
                if (n_end < SL_ARRAY_SIZE(sizes)) {
                    assert_int_equal(ev.header.payload_len, sizes[n_end]);
                    assert_true(ev.message_end);
                } else if (n_end == SL_ARRAY_SIZE(sizes)) {
                    assert_int_equal(ev.control_len, 2);
                    assert_memory_equal(ev.control, "hb", 2);
                } else {
                    assert_int_equal(ev.control_len, 2 + 15);
                    assert_memory_equal(ev.control, "\x03\xf4Service Restart", 17);
                }
                n_end++;
            }
            if (ev.type == SL_WS_EV_NONE)
                break;
        }
        assert_int_equal(n_end, SL_ARRAY_SIZE(sizes) + 2);
        assert_int_equal(p.pos, in.n);
        free(in.b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_examples),
        cmocka_unit_test(test_length_encodings),
        cmocka_unit_test(test_zero_length_frames),
        cmocka_unit_test(test_control_inside_fragmented_message),
        cmocka_unit_test(test_rsv_allowed_by_extension),
        cmocka_unit_test(test_permessage_deflate),
        cmocka_unit_test(test_unknown_extension_is_lenient),
        cmocka_unit_test(test_masking_by_role),
        cmocka_unit_test(test_reserved_bits),
        cmocka_unit_test(test_unknown_opcodes),
        cmocka_unit_test(test_control_frame_rules),
        cmocka_unit_test(test_fragmentation_rules),
        cmocka_unit_test(test_length_rules),
        cmocka_unit_test(test_size_limits),
        cmocka_unit_test(test_text_validation),
        cmocka_unit_test(test_close_frames),
        cmocka_unit_test(test_close_code_valid_ranges),
        cmocka_unit_test(test_boundaries_at_every_byte),
        cmocka_unit_test(test_unpassable_bytes_at_every_byte),
        cmocka_unit_test(test_payload_is_never_read_when_not_validated),
        cmocka_unit_test(test_zeroed_parser_and_empty_calls),
        cmocka_unit_test(test_write_header_golden),
        cmocka_unit_test(test_write_close),
        cmocka_unit_test(test_write_control),
        cmocka_unit_test(test_mask_phases),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
