/*
 * Tests for gateway/proto/http.c. Every parse goes through run_all(), which
 * feeds the message whole, split at every byte boundary (head and body
 * separately) and one byte at a time, each from an exact-size heap copy so
 * ASan sees any overread, and asserts that every feeding gives the same
 * result. Then: golden tables of refusals, limits, body extents, and the
 * exact bytes of rewritten heads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/http.h"

typedef struct limits {
    uint32_t max_head, max_headers, max_request_line;
} limits_t;

typedef struct result {
    int rc;                 /* head: length, SL_NEED_MORE or SL_EINVAL */
    int status;             /* error_status */
    const char *reason;
    sl_http_head_t head;
    ssize_t body;           /* bytes of body consumed, or SL_EINVAL */
    bool done;
    bool until_eof;
} result_t;

enum { WHOLE, SPLIT, BYTES };

/* Feed the body after the head: whole, split at k, or a byte at a time. */
static void feed_body(sl_http_parser_t *p, const char *b, size_t n, int mode, size_t k,
                      result_t *r)
{
    size_t at = 0;
    r->body = 0;
    for (;;) {
        size_t chunk = n - at;
        if (mode == SPLIT && at < k)
            chunk = k - at;
        else if (mode == BYTES && chunk > 1)
            chunk = 1;
        ssize_t c = sl_http_parse_body(p, b + at, chunk, &r->done);
        if (c < 0) {
            r->body = c;
            return;
        }
        assert_true((size_t)c <= chunk);
        at += (size_t)c;
        r->body = (ssize_t)at;
        if (r->done || at == n)
            return;
        assert_int_equal((size_t)c, chunk);     /* not done: all of it is body */
    }
}

static void run(sl_http_type_t type, uint8_t method, const limits_t *lim, const char *in,
                size_t len, int mode, size_t k, result_t *r)
{
    char *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    memcpy(buf, in, len);
    sl_http_parser_t *p = calloc(1, sizeof *p);
    assert_non_null(p);
    if (lim != NULL) {
        p->max_head = lim->max_head;
        p->max_headers = lim->max_headers;
        p->max_request_line = lim->max_request_line;
    }
    sl_http_parser_init(p, type, method);
    memset(r, 0, sizeof *r);
    if (mode == WHOLE) {
        r->rc = sl_http_parse_head(p, buf, len);
    } else if (mode == SPLIT) {
        r->rc = sl_http_parse_head(p, buf, k);
        if (r->rc == SL_NEED_MORE)
            r->rc = sl_http_parse_head(p, buf, len);
    } else {
        r->rc = SL_NEED_MORE;
        for (size_t i = 1; i <= len && r->rc == SL_NEED_MORE; i++)
            r->rc = sl_http_parse_head(p, buf, i);
    }
    r->status = p->error_status;
    r->reason = p->error_reason;
    if (r->rc > 0) {
        assert_int_equal(p->head.head_len, r->rc);
        r->head = p->head;
        for (uint32_t i = 0; i < p->head.n_headers; i++) {   /* spans lie inside the head */
            assert_true(p->head.headers[i].name.off + p->head.headers[i].name.len <= (uint32_t)r->rc);
            assert_true(p->head.headers[i].value.off + p->head.headers[i].value.len <= (uint32_t)r->rc);
        }
        size_t bk = mode == SPLIT ? (k > (size_t)r->rc ? k - (size_t)r->rc : 0) : 0;
        feed_body(p, buf + r->rc, len - (size_t)r->rc, mode, bk, r);
        r->until_eof = sl_http_body_until_eof(p);
        r->status = p->error_status;
        r->reason = p->error_reason;
    }
    free(p);
    free(buf);
}

static void same(const result_t *a, const result_t *b, const char *in, int mode, size_t k)
{
    if (a->rc != b->rc || a->status != b->status || a->body != b->body || a->done != b->done ||
        (a->rc > 0 && memcmp(&a->head, &b->head, sizeof a->head) != 0)) {
        print_error("feed mode %d split %zu differs: rc %d/%d status %d/%d body %zd/%zd\n%s\n",
                    mode, k, a->rc, b->rc, a->status, b->status, a->body, b->body, in);
        fail();
    }
}

/* Parse every way; assert they agree; return the whole-feed result. */
static result_t run_all(sl_http_type_t type, uint8_t method, const limits_t *lim,
                        const char *in, size_t len)
{
    result_t whole, other;
    run(type, method, lim, in, len, WHOLE, 0, &whole);
    for (size_t k = 0; k <= len; k++) {
        run(type, method, lim, in, len, SPLIT, k, &other);
        same(&whole, &other, in, SPLIT, k);
    }
    run(type, method, lim, in, len, BYTES, 0, &other);
    same(&whole, &other, in, BYTES, 0);
    return whole;
}

#define REQ(s) run_all(SL_HTTP_REQUEST, 0, NULL, s, sizeof(s) - 1)
#define RESP(m, s) run_all(SL_HTTP_RESPONSE, m, NULL, s, sizeof(s) - 1)

static void assert_span(const char *base, sl_http_span_t s, const char *want)
{
    char got[256];
    snprintf(got, sizeof got, "%.*s", (int)s.len, base + s.off);
    assert_string_equal(got, want);
}

static void test_simple_get(void **state)
{
    static const char in[] = "GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\n"
                             "X-Pad:   a b \t\r\nEmpty:\r\n\r\nLEFTOVER";
    result_t r = REQ(in);
    assert_int_equal(r.rc, sizeof(in) - 1 - 8);
    assert_int_equal(r.head.method, HTTP_GET);
    assert_span(in, r.head.method_text, "GET");
    assert_span(in, r.head.url, "/chat?room=1");
    assert_int_equal(r.head.http_major, 1);
    assert_int_equal(r.head.http_minor, 1);
    assert_int_equal(r.head.n_headers, 3);
    assert_span(in, r.head.headers[0].name, "Host");
    assert_span(in, r.head.headers[0].value, "example.com");
    assert_span(in, r.head.headers[1].value, "a b");
    assert_span(in, r.head.headers[2].name, "Empty");
    assert_int_equal(r.head.headers[2].value.len, 0);
    assert_int_equal(r.head.content_length, -1);
    assert_false(r.head.chunked);
    assert_true(r.head.keep_alive);
    assert_false(r.head.upgrade);
    /* No body: done at once, the pipelined bytes are not consumed. */
    assert_true(r.done);
    assert_int_equal(r.body, 0);
    const sl_http_header_t *h = sl_http_find(&r.head, in, "HOST");
    assert_non_null(h);
    assert_ptr_equal(h, &r.head.headers[0]);
    assert_null(sl_http_find(&r.head, in, "Hos"));
}

static void test_leading_empty_lines_and_versions(void **state)
{
    static const char in[] = "\r\n\r\nGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    result_t r = REQ(in);
    assert_int_equal(r.rc, sizeof(in) - 1);
    assert_int_equal(r.head.http_minor, 0);
    assert_true(r.head.keep_alive);
    r = REQ("GET / HTTP/1.0\r\n\r\n");
    assert_false(r.head.keep_alive);
    r = REQ("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n");
    assert_false(r.head.keep_alive);
}

static void test_websocket_upgrade(void **state)
{
    static const char in[] = "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                             "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: x\r\n\r\n"
                             "\x81\x85\x00\x00\x00\x00hello";
    result_t r = REQ(in);
    assert_int_equal(r.rc, sizeof(in) - 1 - 11);
    assert_true(r.head.upgrade);
    assert_true(r.done);
    assert_int_equal(r.body, 0);       /* the frames are not the request's */
    r = REQ("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n");
    assert_false(r.head.upgrade);      /* Upgrade without Connection: upgrade */
}

static void test_content_length_body(void **state)
{
    static const char in[] = "POST /t HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n";
    result_t r = REQ(in);
    assert_int_equal(r.head.content_length, 5);
    assert_int_equal(r.body, 5);
    assert_true(r.done);
    r = REQ("POST /t HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\nX");
    assert_int_equal(r.body, 0);
    assert_true(r.done);
    r = REQ("POST /t HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello");
    assert_int_equal(r.body, 5);       /* all of it, more to come */
    assert_false(r.done);
}

static void test_chunked_body(void **state)
{
    static const char in[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\n"
                             "X-Trailer: t\r\n\r\nNEXT";
    result_t r = REQ(in);
    assert_true(r.head.chunked);
    assert_int_equal(r.head.content_length, -1);
    assert_true(r.done);
    assert_int_equal(r.body, sizeof(in) - 1 - (size_t)r.rc - 4);
    r = REQ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n");
    assert_true(r.head.chunked);
    assert_int_equal(r.body, 5);
    r = REQ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_true(r.head.chunked);
}

static void test_bad_chunks(void **state)
{
    static const char *const bodies[] = {
        "zz\r\n", "-1\r\n", "5\r\nhelloXX", "5\r\nhelloX\n0\r\n\r\n", "5\r\nhello\rX",
        "5\r\nhello\n\r0\r\n\r\n", "ffffffffffffffffff\r\n", "\r\n", "5\nhello\r\n", " 5\r\nhello\r\n",
        /* The trailer section gets the head's raw checks (llhttp 8.1 took these). */
        "0\r\n\n", "0\r\nX: a\r\n\n", "0\r\nX: a\n\r\n", "5\r\nhello\r\n0\r\nX: a\r\n b\r\n\r\n",
        "0\r\nX: a\r\n\tb\r\n\r\n", "0\r\n X: a\r\n\r\n", "0\r\nX : a\r\n\r\n", "0\r\nX\t: a\r\n\r\n",
        "0\r\nX: a\rb\r\n\r\n", "0\r\nX: a\r\n\rX", "0\r\n: a\r\n\r\n", "0\r\nX(: a\r\n\r\n",
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(bodies); i++) {
        char in[256];
        int n = snprintf(in, sizeof in, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n%s",
                         bodies[i]);
        result_t r = run_all(SL_HTTP_REQUEST, 0, NULL, in, (size_t)n);
        if (r.body != SL_EINVAL)
            print_error("body accepted: %s\n", bodies[i]);
        assert_int_equal(r.body, SL_EINVAL);
        assert_int_equal(r.status, 400);
    }
    /* A backend's chunked response the same way: 502. */
    result_t r = RESP(HTTP_GET, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                "0\r\nX: a\r\n b\r\n\r\n");
    assert_int_equal(r.body, SL_EINVAL);
    assert_int_equal(r.status, 502);
}

static void test_trailers(void **state)
{
    /* Well-formed trailer sections end where they end, however split, and
       what follows them is not part of the message. */
    static const char in[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "3\r\nabc\r\n0;last\r\nX-Sum: 1 2\r\nB-2:\tx\ty\r\nEmpty:\r\n\r\n"
                             "GET / HTTP/1.1\r\n";
    result_t r = REQ(in);
    assert_true(r.done);
    assert_int_equal(r.body, sizeof(in) - 1 - (size_t)r.rc - 16);
    r = RESP(HTTP_GET, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: v\r\n\r\nX");
    assert_true(r.done);
    assert_int_equal(r.body, 11);

    /* The head's limits bound the trailer section too (head 56 bytes). */
#define TE_HEAD "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    static const limits_t lim = {.max_head = 64, .max_headers = 3};
    static const char three[] = TE_HEAD "0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    r = run_all(SL_HTTP_REQUEST, 0, &lim, three, sizeof three - 1);
    assert_true(r.done);
    static const char four[] = TE_HEAD "0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    r = run_all(SL_HTTP_REQUEST, 0, &lim, four, sizeof four - 1);
    assert_int_equal(r.body, SL_EINVAL);
    assert_int_equal(r.status, 431);
    static const char at_max[] = TE_HEAD "0\r\nA: 012345678901234567890123456789012345678901234567890123456\r\n\r\n";
    r = run_all(SL_HTTP_REQUEST, 0, &lim, at_max, sizeof at_max - 1);   /* 64 bytes of trailers */
    assert_true(r.done);
    static const char over[] = TE_HEAD "0\r\nA: 0123456789012345678901234567890123456789012345678901234567\r\n\r\n";
    r = run_all(SL_HTTP_REQUEST, 0, &lim, over, sizeof over - 1);
    assert_int_equal(r.body, SL_EINVAL);
    assert_int_equal(r.status, 431);
#undef TE_HEAD
}

/* A chunked request or response with this body (n bytes, NULs allowed), parsed every
   way under these limits (NULL: the defaults). */
static result_t chunked_with(sl_http_type_t type, const limits_t *lim, const char *body, size_t n)
{
    static const char req[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    static const char resp[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    const char *head = type == SL_HTTP_REQUEST ? req : resp;
    size_t h = strlen(head);
    char *in = malloc(h + n);
    assert_non_null(in);
    memcpy(in, head, h);
    memcpy(in + h, body, n);
    result_t r = run_all(type, HTTP_GET, lim, in, h + n);
    free(in);
    return r;
}

static result_t chunked(sl_http_type_t type, const char *body, size_t n)
{
    return chunked_with(type, NULL, body, n);
}

#define CHUNKED(s) chunked(SL_HTTP_REQUEST, s, sizeof(s) - 1)

/* RFC 9112 7.1.1 chunk extensions: what passes, whole, however split. */
static void test_chunk_extensions(void **state)
{
    static const struct {
        const char *body;
        size_t len;
    } good[] = {
#define G(s) {s, sizeof(s) - 1}
        G("5;a\r\nhello\r\n0\r\n\r\n"),
        G("5;a=b\r\nhello\r\n0\r\n\r\n"),
        G("5;a=\"\"\r\nhello\r\n0\r\n\r\n"),
        G("5;a=\"x y\t!#[]~\x80\xff\"\r\nhello\r\n0\r\n\r\n"),
        G("5;a;d=\"e\";f;b=c\r\nhello\r\n0;last=1\r\n\r\n"),
        G("5;!#$%&'*+-.^_`|~09AZaz=!#$%&'*+-.^_`|~\r\nhello\r\n0\r\n\r\n"),
        G("A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n"),
        G("000000000000000000000000005\r\nhello\r\n000\r\n\r\n"),
#undef G
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(good); i++) {
        result_t r = chunked(SL_HTTP_REQUEST, good[i].body, good[i].len);
        if (!r.done)
            print_error("refused: %s: %s\n", good[i].body, r.reason ? r.reason : "?");
        assert_true(r.done);
        assert_int_equal(r.body, (ssize_t)good[i].len);
    }
    /* The largest size that fits in 64 bits is a size (whose data is to come). */
    result_t r = CHUNKED("ffffffffffffffff\r\nxyz");
    assert_false(r.done);
    assert_int_equal(r.body, 21);
}

/* What llhttp 8.1 takes and a backend may read otherwise; what llhttp refuses itself. */
static void test_bad_chunk_extensions(void **state)
{
#define CR_LINE "bare CR in chunk-size line"
#define EXT "invalid chunk extension"
    static const struct {
        const char *body;
        size_t len;
        const char *reason;     /* NULL where the words are llhttp's */
    } bad[] = {
#define B(s, why) {s, sizeof(s) - 1, why}
        /* llhttp takes any byte after the line's CR for its LF. */
        B("5\rXhello\r\n0\r\n\r\n", CR_LINE),
        B("5\r\0hello\r\n0\r\n\r\n", CR_LINE),
        B("5;a\rXhello\r\n0\r\n\r\n", CR_LINE),
        B("5;a=\"b\"\r\rhello\r\n0\r\n\r\n", CR_LINE),
        B("0\rX\r\n", CR_LINE),
        B("0;a=b\r\r\r\n", CR_LINE),
        /* llhttp takes these too: RFC 9112 7.1.1 does not. */
        B("5;=v\r\nhello\r\n0\r\n\r\n", EXT),
        B("5;a=\r\nhello\r\n0\r\n\r\n", EXT),
        B("5;a=;b\r\nhello\r\n0\r\n\r\n", EXT),
        B("5;a=b\"c\"\r\nhello\r\n0\r\n\r\n", EXT),
        B("5;a=\"x\x7fy\"\r\nhello\r\n0\r\n\r\n", EXT),
        B("5;a=\"x\0y\"\r\nhello\r\n0\r\n\r\n", EXT),
        /* And these llhttp refuses as well. */
        B("5;a=b;c\r\nhello\r\n0\r\n\r\n", NULL),   /* valid, but llhttp 8.1 wants no
                                                     extension after a token value */
        B("5;a=\"x\\\"y\"\r\nhello\r\n0\r\n\r\n", EXT),      /* a quoted-pair */
        B("5;a=\"x\r\nhello\r\n0\r\n\r\n", EXT),
        B("5;a=\"x\"y\r\nhello\r\n0\r\n\r\n", EXT),
        B("5 ;a\r\nhello\r\n0\r\n\r\n", EXT),
        B("5\t\r\nhello\r\n0\r\n\r\n", EXT),
        B("5; a\r\nhello\r\n0\r\n\r\n", EXT),
        B("5;a =b\r\nhello\r\n0\r\n\r\n", EXT),
        B("5;a= b\r\nhello\r\n0\r\n\r\n", EXT),
        B("5;\r\nhello\r\n0\r\n\r\n", EXT),
        B("5;a;\r\nhello\r\n0\r\n\r\n", EXT),
        B("5;a\0\r\nhello\r\n0\r\n\r\n", EXT),
        B("5;a\nhello\r\n0\r\n\r\n", EXT),
        B("5;a,b\r\nhello\r\n0\r\n\r\n", EXT),
        B("5;a=b=c\r\nhello\r\n0\r\n\r\n", EXT),
        B("g\r\n", "invalid chunk size"),
        B(";a\r\nhello\r\n0\r\n\r\n", "invalid chunk size"),
        B("ffffffffffffffff0\r\n", "chunk size overflow"),
        B("5\r\nhello\r\r0\r\n\r\n", "chunk data not followed by CRLF"),
#undef B
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(bad); i++) {
        for (int type = SL_HTTP_REQUEST; type <= SL_HTTP_RESPONSE; type++) {
            result_t r = chunked((sl_http_type_t)type, bad[i].body, bad[i].len);
            if (r.body != SL_EINVAL)
                print_error("accepted: %s\n", bad[i].body);
            assert_int_equal(r.body, SL_EINVAL);
            assert_int_equal(r.status, type == SL_HTTP_REQUEST ? 400 : 502);
            if (bad[i].reason != NULL)
                assert_string_equal(r.reason, bad[i].reason);
        }
    }
#undef CR_LINE
#undef EXT
}

/*
 * Eight chunk-size lines, the last chunk's included, each with extensions of
 * `ext` bytes from the first ";" on, and `extra` more on the last: 8 * ext +
 * extra bytes of extensions in the body. Lines take turns between a token
 * value (";a=bbb...") and a name then a quoted value (";c;q=\"bbb...\""), so
 * every state of an extension is counted.
 */
static char *ext_body(size_t ext, size_t extra, size_t *n)
{
    char *b = malloc(8 * (ext + 16) + extra);
    assert_non_null(b);
    size_t at = 0;
    for (int i = 0; i < 8; i++) {
        size_t e = ext + (i == 7 ? extra : 0);
        b[at++] = i == 7 ? '0' : '1';
        if (i % 2 == 0) {
            memcpy(b + at, ";a=", 3);
            memset(b + at + 3, 'b', e - 3);
        } else {
            memcpy(b + at, ";c;q=\"", 6);
            memset(b + at + 6, 'b', e - 7);
            b[at + e - 1] = '"';
        }
        at += e;
        const char *after = i == 7 ? "\r\n\r\n" : "\r\nX\r\n";
        memcpy(b + at, after, strlen(after));
        at += strlen(after);
    }
    *n = at;
    return b;
}

/*
 * A body's chunk extensions together are bounded by max_head: one-byte
 * chunks each under the line bound could otherwise carry thousands of bytes
 * of framing per byte of data. Counted from each ";" to its line's CR, the
 * last chunk's too, with the same verdict however the body is split; sizes,
 * data and lines without extensions do not count.
 */
static void test_chunk_extensions_bounded_per_body(void **state)
{
    const limits_t lim = {.max_head = 1024};
    (void)state;
    for (int type = SL_HTTP_REQUEST; type <= SL_HTTP_RESPONSE; type++) {
        for (size_t extra = 0; extra <= 1; extra++) {
            size_t n;
            char *body = ext_body(128, extra, &n);   /* 1,024 bytes of extensions, or 1,025 */
            result_t r = chunked_with((sl_http_type_t)type, &lim, body, n);
            if (extra == 0) {
                assert_true(r.done);
                assert_int_equal(r.body, (ssize_t)n);
            } else {
                assert_int_equal(r.body, SL_EINVAL);
                assert_int_equal(r.status, type == SL_HTTP_REQUEST ? 400 : 502);
                assert_string_equal(r.reason, "chunk extensions too large");
            }
            free(body);
        }
    }
    /* Framing without extensions is not counted: 400 one-byte chunks pass. */
    char body[400 * 6 + 5];
    size_t at = 0;
    for (int i = 0; i < 400; i++, at += 6)
        memcpy(body + at, "1\r\nX\r\n", 6);
    memcpy(body + at, "0\r\n\r\n", 5);
    at += 5;
    result_t r = chunked_with(SL_HTTP_REQUEST, &lim, body, at);
    assert_true(r.done);
    assert_int_equal(r.body, (ssize_t)at);
}

/* A chunk-size line of `line` bytes (CRLF included): "5;eee...\r\n", or the last chunk's. */
static char *size_line(bool last, size_t line, bool crlf, size_t *n)
{
    static const char data[] = "hello\r\n0\r\n\r\n";
    const char *after = last ? "\r\n" : data;
    size_t tail = crlf ? 2 + strlen(after) : 0;
    char *b = malloc(line + tail);
    assert_non_null(b);
    b[0] = last ? '0' : '5';
    b[1] = ';';
    memset(b + 2, 'e', line - 4);
    memcpy(b + line - 2, "\r\n", 2);
    if (crlf)
        memcpy(b + line, after, strlen(after));
    *n = crlf ? line + strlen(after) : line - 2;
    return b;
}

/*
 * SL_HTTP_MAX_CHUNK_LINE bounds the whole line, size and CRLF included,
 * counted byte by byte: the same verdict at the same byte whether the line
 * comes whole, split anywhere or a byte at a time (run_all), for a request
 * (400) and a response (502), for a data chunk and the last chunk, and for a
 * line that never ends.
 */
static void test_chunk_line_limit(void **state)
{
    for (int type = SL_HTTP_REQUEST; type <= SL_HTTP_RESPONSE; type++) {
        for (int last = 0; last <= 1; last++) {
            size_t n;
            char *b = size_line(last, SL_HTTP_MAX_CHUNK_LINE, true, &n);
            result_t r = chunked((sl_http_type_t)type, b, n);
            assert_true(r.done);
            assert_int_equal(r.body, (ssize_t)n);
            free(b);

            b = size_line(last, SL_HTTP_MAX_CHUNK_LINE + 1, true, &n);
            r = chunked((sl_http_type_t)type, b, n);
            assert_int_equal(r.body, SL_EINVAL);
            assert_int_equal(r.status, type == SL_HTTP_REQUEST ? 400 : 502);
            assert_string_equal(r.reason, "chunk-size line too long");
            free(b);

            /* SL_HTTP_MAX_CHUNK_LINE + 1 bytes, no end in sight. */
            b = size_line(last, SL_HTTP_MAX_CHUNK_LINE + 3, false, &n);
            r = chunked((sl_http_type_t)type, b, n);
            assert_int_equal(r.body, SL_EINVAL);
            assert_string_equal(r.reason, "chunk-size line too long");
            free(b);
        }
    }
    /* The bound is per line: two lines at it pass. */
    size_t n;
    char *one = size_line(false, SL_HTTP_MAX_CHUNK_LINE, false, &n);
    char *two = malloc(2 * (n + 2 + 7) + 5);
    assert_non_null(two);
    size_t at = 0;
    for (int i = 0; i < 2; i++) {
        memcpy(two + at, one, n);
        memcpy(two + at + n, "\r\nhello\r\n", 9);
        at += n + 9;
    }
    memcpy(two + at, "0\r\n\r\n", 5);
    result_t r = chunked(SL_HTTP_REQUEST, two, at + 5);
    assert_true(r.done);
    assert_int_equal(r.body, (ssize_t)(at + 5));
    free(one);
    free(two);
}

typedef struct refusal {
    const char *name;
    const char *in;
    size_t len;
    int status;
    const char *reason;     /* ours, exactly; NULL where the words are llhttp's */
} refusal_t;

#define BAD(n, st, s) {n, s, sizeof(s) - 1, st, NULL}
#define BADR(n, st, why, s) {n, s, sizeof(s) - 1, st, why}

#define V_MAJOR "HTTP major version other than 1"
#define V_MINOR "HTTP/1 minor version other than 0 or 1"
#define V_BAD "malformed HTTP version"
#define TE10 "Transfer-Encoding in an HTTP/1.0 request"
#define NO_HOST "no Host in an HTTP/1.1 request"
#define BAD_HOST "invalid Host"
#define SCHEME "absolute-form target with a scheme other than http or https"
#define BAD_AUTH "invalid authority in the request target"
#define FRAGMENT "fragment in the request target"
#define ASTERISK "asterisk-form target other than OPTIONS *"
#define NO_TARGET "no request target (two spaces after the method)"

static const refusal_t refusals[] = {
    BAD("CL with TE", 400, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
    BAD("TE with CL", 400, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
    BAD("duplicate CL equal", 400, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n"),
    BAD("duplicate CL differ", 400, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
    BAD("CL list", 400, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n"),
    BAD("CL letters", 400, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n"),
    BAD("CL negative", 400, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"),
    BAD("CL plus", 400, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n"),
    BAD("CL empty", 400, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"),
    BAD("CL huge", 400, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n"),
    BADR("TE gzip", 400, "final transfer coding is not chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"),
    BAD("TE chunked then gzip", 400, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
    BAD("TE chunked twice", 400, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
    BADR("TE identity", 400, "final transfer coding is not chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n"),
    BADR("obs-fold SP", 400, "obs-fold (header line starting with whitespace)", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\n\r\n"),
    BADR("obs-fold HT", 400, "obs-fold (header line starting with whitespace)", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n\tb\r\n\r\n"),
    BADR("first header folded", 400, "obs-fold (header line starting with whitespace)", "GET / HTTP/1.1\r\n Host: a\r\n\r\n"),
    BADR("NUL in value", 400, "NUL in head", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\0b\r\n\r\n"),
    BADR("NUL in URL", 400, "NUL in head", "GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"),
    BADR("NUL in name", 400, "NUL in head", "GET / HTTP/1.1\r\nHost: a\r\nX\0A: a\r\n\r\n"),
    BADR("bare CR in value", 400, "bare CR in head", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n"),
    BADR("bare CR in request line", 400, "bare CR in head", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n"),
    BADR("bare CR ending a line", 400, "bare CR in head", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\r\n\r\n"),
    BADR("bare LF", 400, "bare LF in head", "GET / HTTP/1.1\nHost: a\r\n\r\n"),
    BADR("bare LF end", 400, "bare LF in head", "GET / HTTP/1.1\r\nHost: a\r\n\n"),
    BADR("space before colon", 400, "whitespace in header name or before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
    BADR("tab before colon", 400, "whitespace in header name or before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"),
    BADR("space in name", 400, "whitespace in header name or before colon", "GET / HTTP/1.1\r\nHost: a\r\nX A: a\r\n\r\n"),
    BAD("@ in name", 400, "GET / HTTP/1.1\r\nHost: a\r\nHo@st: a\r\n\r\n"),
    BAD("paren in name", 400, "GET / HTTP/1.1\r\nHost: a\r\nX(y): a\r\n\r\n"),
    BAD("high byte in name", 400, "GET / HTTP/1.1\r\nHost: a\r\nX\xC3\xA9: a\r\n\r\n"),
    BADR("empty name", 400, "empty header name", "GET / HTTP/1.1\r\nHost: a\r\n: a\r\n\r\n"),
    BAD("no colon", 400, "GET / HTTP/1.1\r\nHost\r\n\r\n"),
    BADR("duplicate Host", 400, "duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    BAD("bad method", 400, "G(T / HTTP/1.1\r\nHost: a\r\n\r\n"),
    BADR("bad version", 400, "malformed HTTP version", "GET / HTTP/1.x\r\n\r\n"),
    /* Two spaces after the method: llhttp skips them and reads on to a target,
       so "CONNECT  HTTP/1.1" (authority-form) once passed as HTTP/0.9. */
    BADR("missing target", 400, NO_TARGET, "GET  HTTP/1.1\r\nHost: a\r\n\r\n"),
    BADR("CONNECT without a target", 400, NO_TARGET, "CONNECT  HTTP/1.1\r\nHost: 1.143\r\n\r\n"),
    BADR("two spaces before the target", 400, NO_TARGET, "GET  / HTTP/1.1\r\nHost: a\r\n\r\n"),
    /* The version, judged whole before llhttp sees it (every split gives the same). */
    BADR("HTTP/2.0", 505, V_MAJOR, "GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
    BADR("HTTP/3.0 (llhttp's own 400)", 505, V_MAJOR, "GET / HTTP/3.0\r\nHost: a\r\n\r\n"),
    BADR("HTTP/2.1", 505, V_MAJOR, "GET / HTTP/2.1\r\nHost: a\r\n\r\n"),
    BADR("HTTP/0.9 spelled out", 505, V_MAJOR, "GET / HTTP/0.9\r\nHost: a\r\n\r\n"),
    BADR("HTTP/9.9", 505, V_MAJOR, "GET / HTTP/9.9\r\nHost: a\r\n\r\n"),
    BADR("HTTP/2 preface", 505, V_MAJOR, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    BADR("HTTP/0.9 request line", 400, "request line without an HTTP version", "GET /\r\n\r\n"),
    BADR("HTTP/1.2", 400, V_MINOR, "GET / HTTP/1.2\r\nHost: a\r\n\r\n"),
    BADR("HTTP/1.9", 400, V_MINOR, "GET / HTTP/1.9\r\nHost: a\r\n\r\n"),
    BADR("lowercase http", 400, V_BAD, "GET / http/1.1\r\nHost: a\r\n\r\n"),
    BADR("RTSP/1.0 (llhttp parses it)", 400, V_BAD, "GET / RTSP/1.0\r\nHost: a\r\n\r\n"),
    BADR("two-digit major", 400, V_BAD, "GET / HTTP/11.1\r\nHost: a\r\n\r\n"),
    BADR("two-digit minor", 400, V_BAD, "GET / HTTP/1.10\r\nHost: a\r\n\r\n"),
    BADR("no minor", 400, V_BAD, "GET / HTTP/2\r\nHost: a\r\n\r\n"),
    BADR("HTTP/2.0 and more", 400, V_BAD, "GET / HTTP/2.0x\r\nHost: a\r\n\r\n"),
    BADR("space after the version", 400, V_BAD, "GET / HTTP/1.1 \r\nHost: a\r\n\r\n"),
    BADR("empty version", 400, V_BAD, "GET / \r\nHost: a\r\n\r\n"),
    BADR("space in the target", 400, V_BAD, "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"),
    /* RFC 9112 3.2: no form of request-target has a fragment. */
    BADR("fragment", 400, FRAGMENT, "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n"),
    BADR("fragment alone", 400, FRAGMENT, "GET /# HTTP/1.1\r\nHost: a\r\n\r\n"),
    BADR("fragment after a query", 400, FRAGMENT, "GET /a?q=1#b HTTP/1.1\r\nHost: a\r\n\r\n"),
    BADR("fragment in absolute-form", 400, FRAGMENT, "GET http://a/x#y HTTP/1.1\r\nHost: a\r\n\r\n"),
    /* RFC 9112 3.2.4: the asterisk-form is "*" alone, for OPTIONS alone. */
    BADR("GET *", 400, ASTERISK, "GET * HTTP/1.1\r\nHost: a\r\n\r\n"),
    BADR("POST *", 400, ASTERISK, "POST * HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"),
    BADR("CONNECT *", 400, ASTERISK, "CONNECT * HTTP/1.1\r\nHost: a:443\r\n\r\n"),
    BADR("OPTIONS *x", 400, ASTERISK, "OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n"),
    BADR("OPTIONS */a", 400, ASTERISK, "OPTIONS */a HTTP/1.1\r\nHost: a\r\n\r\n"),
    BADR("OPTIONS **", 400, ASTERISK, "OPTIONS ** HTTP/1.0\r\n\r\n"),
    /* RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing. */
    BADR("TE in HTTP/1.0", 400, TE10,
         "POST / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"),
    BADR("TE in HTTP/1.0 without Host", 400, TE10, "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
    BADR("TE list in HTTP/1.0", 400, TE10, "POST / HTTP/1.0\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
    /* RFC 9112 3.2: Host. */
    BADR("no Host in HTTP/1.1", 400, NO_HOST, "GET / HTTP/1.1\r\n\r\n"),
    BADR("no Host in an upgrade", 400, NO_HOST,
         "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"),
    BADR("no Host with an absolute-form target", 400, NO_HOST, "GET http://a/ HTTP/1.1\r\n\r\n"),
    BADR("Host with a space", 400, BAD_HOST, "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
    BADR("Host with userinfo", 400, BAD_HOST, "GET / HTTP/1.1\r\nHost: evil@green.test\r\n\r\n"),
    BADR("Host with a path", 400, BAD_HOST, "GET / HTTP/1.1\r\nHost: green.test/x\r\n\r\n"),
    BADR("Host with a query", 400, BAD_HOST, "GET / HTTP/1.1\r\nHost: green.test?x\r\n\r\n"),
    BADR("empty Host", 400, BAD_HOST, "GET / HTTP/1.1\r\nHost:\r\n\r\n"),
    BADR("blank Host", 400, BAD_HOST, "GET / HTTP/1.1\r\nHost:   \r\n\r\n"),
    BADR("Host of a port alone", 400, BAD_HOST, "GET / HTTP/1.1\r\nHost: :80\r\n\r\n"),
    BADR("Host port not digits", 400, BAD_HOST, "GET / HTTP/1.1\r\nHost: green.test:http\r\n\r\n"),
    BADR("Host port 65536", 400, BAD_HOST, "GET / HTTP/1.1\r\nHost: green.test:65536\r\n\r\n"),
    BADR("Host port signed", 400, BAD_HOST, "GET / HTTP/1.1\r\nHost: green.test:+80\r\n\r\n"),
    BADR("Host with two ports", 400, BAD_HOST, "GET / HTTP/1.1\r\nHost: green.test:80:81\r\n\r\n"),
    BADR("Host bare IPv6", 400, BAD_HOST, "GET / HTTP/1.1\r\nHost: ::1\r\n\r\n"),
    BADR("Host IPv6 unclosed", 400, BAD_HOST, "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"),
    BADR("Host IPv6 not hex", 400, BAD_HOST, "GET / HTTP/1.1\r\nHost: [::g]\r\n\r\n"),
    BADR("Host IPv6 with a zone", 400, BAD_HOST, "GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n"),
    BADR("Host after the bracket", 400, BAD_HOST, "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n"),
    BADR("Host empty brackets", 400, BAD_HOST, "GET / HTTP/1.1\r\nHost: []\r\n\r\n"),
    BADR("Host IPvFuture without text", 400, BAD_HOST, "GET / HTTP/1.1\r\nHost: [v1.]\r\n\r\n"),
    BADR("Host short escape", 400, BAD_HOST, "GET / HTTP/1.1\r\nHost: a%2\r\n\r\n"),
    BADR("Host bad escape", 400, BAD_HOST, "GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n"),
    BADR("Host not ASCII", 400, BAD_HOST, "GET / HTTP/1.1\r\nHost: gr\xC3\xA9" "en.test\r\n\r\n"),
    BADR("Host invalid in HTTP/1.0", 400, BAD_HOST, "GET / HTTP/1.0\r\nHost: a b\r\n\r\n"),
    BADR("Host invalid, unused by absolute-form", 400, BAD_HOST,
         "GET http://a/ HTTP/1.1\r\nHost: a b\r\n\r\n"),
    BADR("duplicate Host in HTTP/1.0", 400, "duplicate Host", "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n"),
    /* RFC 9112 3.2.2 and RFC 9110 4.2: an absolute-form target. */
    BADR("ftp target", 400, SCHEME, "GET ftp://a/x HTTP/1.1\r\nHost: a\r\n\r\n"),
    BADR("ws target", 400, SCHEME, "GET ws://a/x HTTP/1.1\r\nHost: a\r\n\r\n"),
    BADR("httpx target", 400, SCHEME, "GET httpx://a/x HTTP/1.1\r\nHost: a\r\n\r\n"),
    BADR("userinfo in the target", 400, BAD_AUTH, "GET http://evil@a/x HTTP/1.1\r\nHost: a\r\n\r\n"),
    BADR("empty authority", 400, BAD_AUTH, "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n"),
    BADR("authority of a port alone", 400, BAD_AUTH, "GET http://:80/x HTTP/1.1\r\nHost: a\r\n\r\n"),
#define BAD_PCT "bad percent-encoding in the path (expected %XX, two hex digits)"
    BADR("stray % in the path", 400, BAD_PCT, "GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n"),
    BADR("% at the path's end", 400, BAD_PCT, "GET /a% HTTP/1.1\r\nHost: a\r\n\r\n"),
    BADR("% and one digit before the query", 400, BAD_PCT, "GET /%4?x HTTP/1.1\r\nHost: a\r\n\r\n"),
    BADR("a stray % making an escape of a decoded one", 400, BAD_PCT,
         "GET /%5%61 HTTP/1.1\r\nHost: a\r\n\r\n"),
    BADR("stray % in an absolute-form path", 400, BAD_PCT,
         "GET http://h/%x HTTP/1.1\r\nHost: h\r\n\r\n"),
    BADR("authority port not digits", 400, BAD_AUTH, "GET http://a:b/ HTTP/1.1\r\nHost: a\r\n\r\n"),
    BADR("authority port 70000", 400, BAD_AUTH, "GET https://a:70000 HTTP/1.1\r\nHost: a\r\n\r\n"),
    BAD("response garbage", 502, "HTTP/1.1 2x0 OK\r\n\r\n"),
    BAD("response not HTTP", 502, "SSH-2.0-OpenSSH\r\n\r\n"),
#define BAD_STATUS "status code not three digits from 100 to 599"
    BADR("response status 099", 502, BAD_STATUS, "HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nok"),
    BADR("response status 99", 502, BAD_STATUS, "HTTP/1.1 99 Odd\r\n\r\n"),
    BADR("response status 2", 502, BAD_STATUS, "HTTP/1.1 2 OK\r\n\r\n"),
    BADR("response status 0200", 502, BAD_STATUS, "HTTP/1.1 0200 OK\r\n\r\n"),
    BADR("response status 600", 502, BAD_STATUS, "HTTP/1.1 600 Odd\r\n\r\n"),
    BADR("response status 000", 502, BAD_STATUS, "HTTP/1.1 000\r\n\r\n"),
    BAD("response duplicate CL", 502, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
    BAD("response CL and TE", 502, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
    BADR("response obs-fold", 502, "obs-fold (header line starting with whitespace)", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"),
};

static void test_refusals(void **state)
{
    for (size_t i = 0; i < SL_ARRAY_SIZE(refusals); i++) {
        const refusal_t *c = &refusals[i];
        sl_http_type_t t = c->status == 502 ? SL_HTTP_RESPONSE : SL_HTTP_REQUEST;
        result_t r = run_all(t, HTTP_GET, NULL, c->in, c->len);
        if (r.rc != SL_EINVAL || r.status != c->status)
            print_error("case '%s': rc %d status %d\n", c->name, r.rc, r.status);
        assert_int_equal(r.rc, SL_EINVAL);
        assert_int_equal(r.status, c->status);
        assert_non_null(r.reason);
        if (c->reason != NULL && strcmp(r.reason, c->reason) != 0)
            print_error("case '%s': reason '%s'\n", c->name, r.reason);
        if (c->reason != NULL)
            assert_string_equal(r.reason, c->reason);
    }
}

static void test_percent_in_the_query_and_escapes_in_the_path_pass(void **state)
{
    (void)state;
    result_t r = REQ("GET /%41%2f/x?q=100%&r=%zz HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_true(r.rc > 0);
    assert_int_equal(r.status, 0);
}

static void test_versions_accepted(void **state)
{
    result_t r = REQ("GET / HTTP/1.0\r\n\r\n");   /* HTTP/1.0 needs no Host */
    assert_int_equal(r.rc, 18);
    assert_int_equal(r.head.http_major, 1);
    assert_int_equal(r.head.http_minor, 0);
    assert_int_equal(r.head.host.len, 0);
    r = REQ("POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc");
    assert_int_equal(r.body, 3);
    r = REQ("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_int_equal(r.head.http_minor, 1);
}

/* Host values that are uri-host [":" port]; the host to route by is the value, trimmed. */
static void test_host_values(void **state)
{
    static const char *const good[] = {
        "green.test", "GREEN.TEST", "green.test.", "green.test:80", "green.test:",
        "green.test:0", "green.test:65535", "green.test:00080", "127.0.0.1:8080",
        "999.1.1.1", "[::1]", "[::1]:8080", "[2001:db8::ffff:1.2.3.4]:1", "[v1.x:y]",
        "[V1F.a]", "a%41b", "a!$&'()*+,;=b", "xn--bcher-kva.example", "_srv-1.example~",
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(good); i++) {
        char in[256];
        int n = snprintf(in, sizeof in, "GET /p HTTP/1.1\r\nHost: \t%s \r\n\r\n", good[i]);
        result_t r = run_all(SL_HTTP_REQUEST, 0, NULL, in, (size_t)n);
        if (r.rc != n)
            print_error("Host '%s' refused: %s\n", good[i], r.reason ? r.reason : "?");
        assert_int_equal(r.rc, n);
        assert_span(in, r.head.host, good[i]);
        assert_span(in, r.head.path, "/p");
        assert_false(r.head.absolute_form);
    }
}

/* What a request routes by: the target's authority and path in absolute-form. */
static void test_route_by(void **state)
{
    static const struct {
        const char *in, *host, *path;
        bool absolute;
    } t[] = {
        {"GET http://green.test/abs?x=1 HTTP/1.1\r\nHost: other.test\r\n\r\n",
         "green.test", "/abs?x=1", true},
        {"GET http://green.test HTTP/1.1\r\nHost: green.test\r\n\r\n", "green.test", "/", true},
        {"GET http://green.test?q=1 HTTP/1.1\r\nHost: x\r\n\r\n", "green.test", "/", true},
        {"GET HTTPS://Green.Test:8443/x HTTP/1.1\r\nHost: x\r\n\r\n", "Green.Test:8443", "/x", true},
        {"GET http://[::1]:80/ws HTTP/1.0\r\n\r\n", "[::1]:80", "/ws", true},
        {"GET http://a:/ HTTP/1.1\r\nHost: a\r\n\r\n", "a:", "/", true},
        {"GET /a?b HTTP/1.1\r\nHost: h:1\r\n\r\n", "h:1", "/a?b", false},
        {"GET //a HTTP/1.1\r\nHost: h\r\n\r\n", "h", "//a", false},
        {"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", "h", "/", false},   /* as "/" */
        {"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", "h:443", "h:443", false},
        {"GET /x HTTP/1.0\r\n\r\n", "", "/x", false},
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(t); i++) {
        result_t r = run_all(SL_HTTP_REQUEST, 0, NULL, t[i].in, strlen(t[i].in));
        if (r.rc <= 0)
            print_error("refused: %s: %s\n", t[i].in, r.reason ? r.reason : "?");
        assert_int_equal(r.rc, (int)strlen(t[i].in));
        assert_span(t[i].in, r.head.host, t[i].host);
        assert_span(t[i].in, r.head.path, t[i].path);
        assert_int_equal(r.head.absolute_form, t[i].absolute);
    }
}

/* OPTIONS * is routed as "/" and goes on as "*" (RFC 9112 3.2.4). */
static void test_asterisk_form(void **state)
{
    static const char in[] = "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n";
    result_t r = REQ(in);
    assert_int_equal(r.rc, sizeof in - 1);
    assert_true(r.head.asterisk_form);
    assert_false(r.head.absolute_form);
    assert_span(in, r.head.url, "*");
    assert_span(in, r.head.path, "/");
    r = REQ("OPTIONS * HTTP/1.0\r\n\r\n");
    assert_true(r.head.asterisk_form);
    r = REQ("OPTIONS / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_false(r.head.asterisk_form);
    r = REQ("OPTIONS http://h HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_false(r.head.asterisk_form);
    assert_true(r.head.absolute_form);
    /* CONNECT parses (the shell refuses it, unrouted), its target as sent. */
    static const char connect[] = "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n";
    r = REQ(connect);
    assert_int_equal(r.rc, sizeof connect - 1);
    assert_int_equal(r.head.method, HTTP_CONNECT);
    assert_false(r.head.asterisk_form || r.head.absolute_form);
}

static void test_error_is_sticky(void **state)
{
    static const char bad[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n";
    sl_http_parser_t *p = calloc(1, sizeof *p);
    assert_non_null(p);
    sl_http_parser_init(p, SL_HTTP_REQUEST, 0);
    assert_int_equal(sl_http_parse_head(p, bad, sizeof bad - 1), SL_EINVAL);
    assert_int_equal(sl_http_parse_head(p, bad, sizeof bad - 1), SL_EINVAL);
    bool done;
    assert_int_equal(sl_http_parse_body(p, "x", 1, &done), SL_EINVAL);
    /* Re-initialising keeps the limits and starts clean. */
    p->max_head = 100;
    sl_http_parser_init(p, SL_HTTP_REQUEST, 0);
    assert_int_equal(p->max_head, 100);
    assert_int_equal(p->max_headers, 100);
    assert_int_equal(p->error_status, 0);
    assert_int_equal(sl_http_parse_head(p, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27), 27);
    free(p);
}

/* A head of `n` headers: "Host: a", then "X-Hnnn: v". */
static size_t many_headers(char *buf, size_t cap, unsigned n)
{
    size_t len = (size_t)snprintf(buf, cap, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (unsigned i = 1; i < n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "X-H%03u: v\r\n", i);
    len += (size_t)snprintf(buf + len, cap - len, "\r\n");
    return len;
}

static void test_header_count_limit(void **state)
{
    static char buf[8192];
    limits_t lim = {0, 10, 0};
    size_t n = many_headers(buf, sizeof buf, 10);
    result_t r = run_all(SL_HTTP_REQUEST, 0, &lim, buf, n);
    assert_int_equal(r.rc, (int)n);
    assert_int_equal(r.head.n_headers, 10);
    n = many_headers(buf, sizeof buf, 11);
    r = run_all(SL_HTTP_REQUEST, 0, &lim, buf, n);
    assert_int_equal(r.rc, SL_EINVAL);
    assert_int_equal(r.status, 431);
    /* The default is 100; the ceiling SL_HTTP_MAX_HEADERS holds whatever is asked. */
    n = many_headers(buf, sizeof buf, 101);
    r = run_all(SL_HTTP_REQUEST, 0, NULL, buf, n);
    assert_int_equal(r.status, 431);
    lim.max_headers = 100000;
    static char big[16384];
    n = many_headers(big, sizeof big, SL_HTTP_MAX_HEADERS + 1);
    run(SL_HTTP_REQUEST, 0, &lim, big, n, WHOLE, 0, &r);
    assert_int_equal(r.status, 431);
}

static void test_head_size_limit(void **state)
{
    limits_t lim = {64, 0, 0};
    /* HTTP/1.0, which needs no Host: one header is enough to reach the limit. */
    static const char fits[] = "GET / HTTP/1.0\r\nX-A: 012345678901234567890123456789012345678\r\n\r\n";
    assert_int_equal(sizeof fits - 1, 64);
    result_t r = run_all(SL_HTTP_REQUEST, 0, &lim, fits, sizeof fits - 1);
    assert_int_equal(r.rc, 64);
    static const char over[] = "GET / HTTP/1.0\r\nX-A: 0123456789012345678901234567890123456789\r\n\r\n";
    r = run_all(SL_HTTP_REQUEST, 0, &lim, over, sizeof over - 1);
    assert_int_equal(r.rc, SL_EINVAL);
    assert_int_equal(r.status, 431);

    /* An endless header value is refused the moment byte max_head + 1 arrives. */
    char endless[200];
    memset(endless, 'a', sizeof endless);
    memcpy(endless, "GET / HTTP/1.1\r\nX-A: ", 21);
    sl_http_parser_t *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->max_head = 64;
    sl_http_parser_init(p, SL_HTTP_REQUEST, 0);
    for (size_t i = 1; i <= 64; i++)
        assert_int_equal(sl_http_parse_head(p, endless, i), SL_NEED_MORE);
    assert_int_equal(sl_http_parse_head(p, endless, 65), SL_EINVAL);
    assert_int_equal(p->error_status, 431);
    free(p);
}

static void test_request_target_limit(void **state)
{
    limits_t lim = {0, 0, 16};
    /* HTTP/1.0, which needs no Host: the request line alone is the head. */
    result_t r = run_all(SL_HTTP_REQUEST, 0, &lim, "GET /234567890123456 HTTP/1.0\r\n\r\n", 33);
    assert_int_equal(r.rc, 33);
    assert_int_equal(r.head.url.len, 16);
    r = run_all(SL_HTTP_REQUEST, 0, &lim, "GET /2345678901234567 HTTP/1.0\r\n\r\n", 34);
    assert_int_equal(r.rc, SL_EINVAL);
    assert_int_equal(r.status, 414);

    /* Slowloris: an endless target is refused as soon as it crosses the limit. */
    char url[4096];
    memset(url, 'a', sizeof url);
    memcpy(url, "GET /", 5);
    sl_http_parser_t *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->max_request_line = 100;                      /* head limit: the 16KiB default */
    sl_http_parser_init(p, SL_HTTP_REQUEST, 0);
    size_t i;
    int rc = SL_NEED_MORE;
    for (i = 1; i <= sizeof url && rc == SL_NEED_MORE; i++)
        rc = sl_http_parse_head(p, url, i);
    assert_int_equal(rc, SL_EINVAL);
    assert_int_equal(p->error_status, 414);
    assert_int_equal(i - 1, 4 + 101);               /* the 101st byte of the target */
    free(p);
}

static void test_responses(void **state)
{
    result_t r = RESP(HTTP_GET, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1");
    assert_int_equal(r.head.status, 200);
    assert_int_equal(r.body, 2);
    assert_true(r.done);
    assert_true(r.head.keep_alive);
    assert_false(r.until_eof);

    r = RESP(HTTP_HEAD, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nNEXT");
    assert_int_equal(r.body, 0);       /* a response to HEAD has no body */
    assert_true(r.done);
    r = RESP(HTTP_GET, "HTTP/1.1 204 No Content\r\n\r\nX");
    assert_int_equal(r.body, 0);
    assert_true(r.done);
    r = RESP(HTTP_GET, "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\nX");
    assert_int_equal(r.body, 0);
    assert_true(r.done);

    static const char eof[] = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this";
    r = RESP(HTTP_GET, eof);
    assert_true(r.until_eof);
    assert_false(r.done);
    assert_false(r.head.keep_alive);
    assert_int_equal(r.body, 11);
    r = RESP(HTTP_GET, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz");
    assert_true(r.until_eof);          /* a response's non-chunked coding: until close */

    static const char sw[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi";
    r = RESP(HTTP_GET, sw);
    assert_int_equal(r.head.status, 101);
    assert_true(r.head.upgrade);
    assert_span(sw, r.head.reason, "Switching Protocols");
    assert_int_equal(r.rc, sizeof(sw) - 1 - 4);
    assert_int_equal(r.body, 0);

    r = RESP(HTTP_POST, "HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n");
    assert_int_equal(r.body, 12);
    assert_true(r.done);

    /* Status codes at the edges of 100..599, with a reason or none. */
    r = RESP(HTTP_GET, "HTTP/1.1 599 Edge\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(r.head.status, 599);
    assert_true(r.done);
    r = RESP(HTTP_GET, "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(r.head.status, 200);
    r = RESP(HTTP_GET, "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(r.head.status, 200);
    r = RESP(HTTP_GET, "HTTP/1.1 100 Continue\r\n\r\n");
    assert_int_equal(r.head.status, 100);
}

/* ---- rewriting ------------------------------------------------------------ */

static sl_http_parser_t parser;

static const sl_http_head_t *parse_req(const char *in)
{
    sl_http_parser_init(&parser, SL_HTTP_REQUEST, 0);
    int rc = sl_http_parse_head(&parser, in, strlen(in));
    assert_true(rc > 0);
    return &parser.head;
}

static void expect_request(const char *in, const sl_http_forward_t *fw, const char *want)
{
    const sl_http_head_t *h = parse_req(in);
    char out[2048];
    ssize_t n = sl_http_write_request(h, in, fw, out, sizeof out);
    assert_true(n > 0);
    out[n] = '\0';
    assert_string_equal(out, want);
    /* Every smaller buffer is refused whole, never written past. */
    for (size_t cap = 0; cap < (size_t)n; cap++) {
        char *small = malloc(cap ? cap : 1);
        assert_non_null(small);
        assert_int_equal(sl_http_write_request(h, in, fw, small, cap), SL_EFULL);
        free(small);
    }
}

static void test_write_request_plain(void **state)
{
    sl_http_forward_t fw = {.client_ip = "203.0.113.7"};
    expect_request("POST /api?x=1 HTTP/1.1\r\nHost: a.example\r\nConnection: keep-alive, X-Secret\r\n"
                   "Keep-Alive: timeout=5\r\nX-Secret: s\r\nProxy-Connection: x\r\nTE: trailers\r\n"
                   "Trailer: X-T\r\nUpgrade: h2c\r\nTransfer-Encoding: chunked\r\n"
                   "X-Forwarded-For: 10.9.9.9\r\nX-Forwarded-Proto: https\r\nForwarded: for=1.1.1.1\r\n"
                   "Accept: */*\r\n\r\n",
                   &fw,
                   "POST /api?x=1 HTTP/1.1\r\nHost: a.example\r\nTrailer: X-T\r\n"
                   "Transfer-Encoding: chunked\r\n"
                   "Accept: */*\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: http\r\n"
                   "Forwarded: for=203.0.113.7;proto=http\r\n\r\n");
}

static void test_write_request_trusted(void **state)
{
    sl_http_forward_t fw = {.client_ip = "10.0.0.2", .client_trusted = true, .tls = true};
    expect_request("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 198.51.100.1, 10.0.0.9\r\n"
                   "X-Forwarded-For: 10.0.0.8\r\nForwarded: for=198.51.100.1\r\n\r\n",
                   &fw,
                   "GET / HTTP/1.1\r\nHost: h\r\n"
                   "X-Forwarded-For: 198.51.100.1, 10.0.0.9, 10.0.0.8, 10.0.0.2\r\n"
                   "X-Forwarded-Proto: https\r\n"
                   "Forwarded: for=198.51.100.1, for=10.0.0.2;proto=https\r\n\r\n");
    /* A trusted proxy's X-Forwarded-Proto is the client's scheme (its first
       element, when http or https); from anyone else, or anything else, ours. */
    fw.tls = false;
    expect_request("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: HTTPS, http\r\n\r\n", &fw,
                   "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.2\r\n"
                   "X-Forwarded-Proto: https\r\nForwarded: for=10.0.0.2;proto=http\r\n\r\n");
    expect_request("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: gopher\r\n\r\n", &fw,
                   "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.2\r\n"
                   "X-Forwarded-Proto: http\r\nForwarded: for=10.0.0.2;proto=http\r\n\r\n");
    fw.client_trusted = false;
    expect_request("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: https\r\n\r\n", &fw,
                   "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.2\r\n"
                   "X-Forwarded-Proto: http\r\nForwarded: for=10.0.0.2;proto=http\r\n\r\n");
}

static void test_write_request_websocket_ipv6(void **state)
{
    sl_http_forward_t fw = {.client_ip = "2001:db8::1", .websocket = true, .tls = true};
    expect_request("GET /ws HTTP/1.1\r\nHost: [::1]:8080\r\nUpgrade: WebSocket\r\n"
                   "Connection: Upgrade, keep-alive\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n",
                   &fw,
                   "GET /ws HTTP/1.1\r\nHost: [::1]:8080\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "X-Forwarded-For: 2001:db8::1\r\nX-Forwarded-Proto: https\r\n"
                   "Forwarded: for=\"[2001:db8::1]\";proto=https\r\n\r\n");
}

static void test_write_request_keeps_framing(void **state)
{
    /* "Connection: Content-Length" must not strip the framing headers. */
    sl_http_forward_t fw = {.client_ip = "192.0.2.1"};
    expect_request("POST / HTTP/1.0\r\nHost: h\r\nContent-Length: 3\r\n"
                   "Connection: Content-Length, Host, Transfer-Encoding\r\n\r\n",
                   &fw,
                   "POST / HTTP/1.0\r\nHost: h\r\nContent-Length: 3\r\n"
                   "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\n"
                   "Forwarded: for=192.0.2.1;proto=http\r\n\r\n");
}

static void test_write_request_absolute_form(void **state)
{
    /* Origin-form and the target's authority as the only Host, first (RFC 9112 3.2.1, 3.2.2). */
    sl_http_forward_t fw = {.client_ip = "192.0.2.1"};
    expect_request("GET http://green.test/abs?x=1 HTTP/1.1\r\nAccept: */*\r\nHost: other.test\r\n"
                   "X-A: 1\r\n\r\n",
                   &fw,
                   "GET /abs?x=1 HTTP/1.1\r\nHost: green.test\r\nAccept: */*\r\nX-A: 1\r\n"
                   "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\n"
                   "Forwarded: for=192.0.2.1;proto=http\r\n\r\n");
    expect_request("GET http://green.test?q HTTP/1.1\r\nHost: green.test\r\n\r\n", &fw,
                   "GET /?q HTTP/1.1\r\nHost: green.test\r\n"
                   "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\n"
                   "Forwarded: for=192.0.2.1;proto=http\r\n\r\n");
    expect_request("HEAD https://[::1]:8443 HTTP/1.0\r\n\r\n", &fw,
                   "HEAD / HTTP/1.0\r\nHost: [::1]:8443\r\n"
                   "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\n"
                   "Forwarded: for=192.0.2.1;proto=http\r\n\r\n");
    /* "OPTIONS http://host" (empty path, no query) asks about the server:
       it goes on as "OPTIONS *" (RFC 9112 3.2.4); with a path or a query
       it is a question about that resource. */
    expect_request("OPTIONS http://green.test:8001 HTTP/1.1\r\nHost: green.test:8001\r\n\r\n", &fw,
                   "OPTIONS * HTTP/1.1\r\nHost: green.test:8001\r\n"
                   "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\n"
                   "Forwarded: for=192.0.2.1;proto=http\r\n\r\n");
    expect_request("OPTIONS http://green.test/ HTTP/1.1\r\nHost: green.test\r\n\r\n", &fw,
                   "OPTIONS / HTTP/1.1\r\nHost: green.test\r\n"
                   "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\n"
                   "Forwarded: for=192.0.2.1;proto=http\r\n\r\n");
    expect_request("OPTIONS http://green.test?q HTTP/1.1\r\nHost: green.test\r\n\r\n", &fw,
                   "OPTIONS /?q HTTP/1.1\r\nHost: green.test\r\n"
                   "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\n"
                   "Forwarded: for=192.0.2.1;proto=http\r\n\r\n");
    /* A WebSocket upgrade in absolute-form goes the same way. */
    sl_http_forward_t ws = {.client_ip = "192.0.2.1", .websocket = true};
    expect_request("GET http://green.test/chat HTTP/1.1\r\nHost: other.test\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n",
                   &ws,
                   "GET /chat HTTP/1.1\r\nHost: green.test\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\n"
                   "Forwarded: for=192.0.2.1;proto=http\r\n\r\n");
}

static const sl_http_head_t *parse_resp(const char *in, uint8_t method)
{
    sl_http_parser_init(&parser, SL_HTTP_RESPONSE, method);
    int rc = sl_http_parse_head(&parser, in, strlen(in));
    assert_true(rc > 0);
    return &parser.head;
}

static void expect_response(const char *in, bool keep_alive, const char *want)
{
    const sl_http_head_t *h = parse_resp(in, HTTP_GET);
    char out[2048];
    ssize_t n = sl_http_write_response(h, in, keep_alive, out, sizeof out);
    assert_true(n > 0);
    out[n] = '\0';
    assert_string_equal(out, want);
    assert_int_equal(sl_http_write_response(h, in, keep_alive, out, (size_t)n - 1), SL_EFULL);
}

static void test_write_response(void **state)
{
    static const char in[] = "HTTP/1.0 200 Fine\r\nContent-Length: 2\r\nConnection: keep-alive, X-Hop\r\n"
                             "Keep-Alive: timeout=5\r\nX-Hop: 1\r\nSet-Cookie: a=b\r\n\r\n";
    expect_response(in, true,
                    "HTTP/1.1 200 Fine\r\nContent-Length: 2\r\nSet-Cookie: a=b\r\n\r\n");
    expect_response(in, false,
                    "HTTP/1.1 200 Fine\r\nContent-Length: 2\r\nSet-Cookie: a=b\r\n"
                    "Connection: close\r\n\r\n");
    expect_response("HTTP/1.1 404 \r\nTransfer-Encoding: chunked\r\n\r\n", true,
                    "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n");
    expect_response("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Connection: upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                    false,
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                    "Connection: Upgrade\r\n\r\n");
    /* A 1xx carries no body framing onward (RFC 9110 8.6, RFC 9112 6.1). */
    expect_response("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Content-Length: 5\r\nConnection: upgrade\r\n"
                    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                    false,
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                    "Connection: Upgrade\r\n\r\n");
    expect_response("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n"
                    "Content-Length: 0\r\n\r\n", true,
                    "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n");
}

static void test_write_request_asterisk_form(void **state)
{
    sl_http_forward_t fw = {.client_ip = "192.0.2.1"};
    expect_request("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", &fw,
                   "OPTIONS * HTTP/1.1\r\nHost: h\r\n"
                   "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\n"
                   "Forwarded: for=192.0.2.1;proto=http\r\n\r\n");
}

/* Trailer is end-to-end (RFC 9110 6.6.2), unless Connection names it. */
static void test_write_trailer_field(void **state)
{
    sl_http_forward_t fw = {.client_ip = "203.0.113.7"};
    expect_request("POST / HTTP/1.1\r\nHost: h\r\nTrailer: X-Sum, X-Sig\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n",
                   &fw,
                   "POST / HTTP/1.1\r\nHost: h\r\nTrailer: X-Sum, X-Sig\r\n"
                   "Transfer-Encoding: chunked\r\nX-Forwarded-For: 203.0.113.7\r\n"
                   "X-Forwarded-Proto: http\r\nForwarded: for=203.0.113.7;proto=http\r\n\r\n");
    expect_request("POST / HTTP/1.1\r\nHost: h\r\nConnection: trailer\r\nTrailer: X-Sum\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n",
                   &fw,
                   "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                   "X-Forwarded-For: 203.0.113.7\r\n"
                   "X-Forwarded-Proto: http\r\nForwarded: for=203.0.113.7;proto=http\r\n\r\n");
    expect_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n",
                    true, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n");
}

static void test_write_request_drops_long_connection_names(void **state)
{
    /* RFC 9110 7.6.1: every header Connection names goes, whatever its length
       (one of 128 bytes or more was once kept), in requests and responses. */
    char name[301];
    memset(name, 'x', sizeof name - 1);
    name[0] = 'X';
    name[sizeof name - 1] = '\0';
    char in[1024], resp[1024];
    snprintf(in, sizeof in, "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, %s\r\n"
             "%s: secret\r\nX-Kept: 1\r\n\r\n", name, name);
    sl_http_forward_t fw = {.client_ip = "192.0.2.1"};
    expect_request(in, &fw,
                   "GET / HTTP/1.1\r\nHost: h\r\nX-Kept: 1\r\n"
                   "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\n"
                   "Forwarded: for=192.0.2.1;proto=http\r\n\r\n");
    snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nConnection: %s\r\n%s: secret\r\n"
             "Content-Length: 0\r\n\r\n", name, name);
    expect_response(resp, true, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    /* A name that only starts like a listed one stays. */
    snprintf(in, sizeof in, "GET / HTTP/1.1\r\nHost: h\r\nConnection: %s\r\n%sy: kept\r\n\r\n",
             name, name);
    const sl_http_head_t *h = parse_req(in);
    char out[2048];
    ssize_t n = sl_http_write_request(h, in, &fw, out, sizeof out);
    assert_true(n > 0);
    out[n] = '\0';
    assert_non_null(strstr(out, "y: kept\r\n"));
}

static void test_write_simple(void **state)
{
    char out[512];
    ssize_t n = sl_http_write_simple(out, sizeof out, 503, "Retry-After: 7\r\n", true);
    static const char want[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 24\r\nRetry-After: 7\r\nConnection: close\r\n\r\n"
                               "503 Service Unavailable\n";
    assert_int_equal(n, sizeof want - 1);
    assert_memory_equal(out, want, sizeof want - 1);
    n = sl_http_write_simple(out, sizeof out, 404, NULL, false);
    static const char want404[] = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                                  "Content-Length: 14\r\n\r\n404 Not Found\n";
    assert_int_equal(n, sizeof want404 - 1);
    assert_memory_equal(out, want404, sizeof want404 - 1);
    for (size_t cap = 0; cap < sizeof want404 - 1; cap++)
        assert_int_equal(sl_http_write_simple(out, cap, 404, NULL, false), SL_EFULL);
    n = sl_http_write_simple(out, sizeof out, 505, NULL, true);
    static const char want505[] = "HTTP/1.1 505 HTTP Version Not Supported\r\n"
                                  "Content-Type: text/plain\r\nContent-Length: 31\r\n"
                                  "Connection: close\r\n\r\n505 HTTP Version Not Supported\n";
    assert_int_equal(n, sizeof want505 - 1);
    assert_memory_equal(out, want505, sizeof want505 - 1);
    n = sl_http_write_simple(out, sizeof out, 411, NULL, true);
    static const char want411[] = "HTTP/1.1 411 Length Required\r\n"
                                  "Content-Type: text/plain\r\nContent-Length: 20\r\n"
                                  "Connection: close\r\n\r\n411 Length Required\n";
    assert_int_equal(n, sizeof want411 - 1);
    assert_memory_equal(out, want411, sizeof want411 - 1);
}

static void test_status_text(void **state)
{
    /* Every status sluice, its admin API and the backend simulator send, with
       RFC 9110's phrase; then the rest of RFC 9110 15 and RFC 6585. */
    static const struct { int status; const char *text; } t[] = {
        {101, "Switching Protocols"}, {200, "OK"}, {201, "Created"},
        {400, "Bad Request"}, {401, "Unauthorized"}, {404, "Not Found"},
        {405, "Method Not Allowed"}, {408, "Request Timeout"}, {409, "Conflict"},
        {411, "Length Required"}, {413, "Content Too Large"}, {414, "URI Too Long"},
        {426, "Upgrade Required"}, {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"}, {500, "Internal Server Error"},
        {501, "Not Implemented"}, {502, "Bad Gateway"}, {503, "Service Unavailable"},
        {504, "Gateway Timeout"}, {505, "HTTP Version Not Supported"},
        {100, "Continue"}, {202, "Accepted"}, {203, "Non-Authoritative Information"},
        {204, "No Content"}, {205, "Reset Content"}, {206, "Partial Content"},
        {300, "Multiple Choices"}, {301, "Moved Permanently"}, {302, "Found"},
        {303, "See Other"}, {304, "Not Modified"}, {305, "Use Proxy"},
        {307, "Temporary Redirect"}, {308, "Permanent Redirect"}, {402, "Payment Required"},
        {403, "Forbidden"}, {406, "Not Acceptable"}, {407, "Proxy Authentication Required"},
        {410, "Gone"}, {412, "Precondition Failed"}, {415, "Unsupported Media Type"},
        {416, "Range Not Satisfiable"}, {417, "Expectation Failed"},
        {421, "Misdirected Request"}, {422, "Unprocessable Content"},
        {428, "Precondition Required"},
        {299, "Unknown"}, {306, "Unknown"}, {418, "Unknown"}, {599, "Unknown"},
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(t); i++)
        assert_string_equal(sl_http_status_text(t[i].status), t[i].text);
}

static void test_status_code(void **state)
{
    static const struct { const char *line; int want; } t[] = {
        {"HTTP/1.1 200 OK\r\n", 200},
        {"HTTP/1.0 503 Service Unavailable\r\n", 503},
        {"HTTP/1.1 204\r\n", 204},               /* no reason phrase */
        {"HTTP/1.1 301\n", 301},                  /* bare LF */
        {"HTTP/1.1 599 x", 599},
        {"HTTP/1.1 100 Continue", 100},
        {"HTTP/1.1 2000 OK\r\n", SL_EINVAL},      /* four digits */
        {"HTTP/1.1 20 OK\r\n", SL_EINVAL},        /* two digits */
        {"HTTP/1.1 099 x", SL_EINVAL},
        {"HTTP/1.1 600 x", SL_EINVAL},
        {"HTTP/1.1 -20 x", SL_EINVAL},
        {"HTTP/1.1  200 x", SL_EINVAL},            /* two spaces */
        {"HTTP/2.0 200 OK", SL_EINVAL},
        {"HTTP/1.2 200 OK", SL_EINVAL},
        {"http/1.1 200 OK", SL_EINVAL},            /* HTTP-name is case-sensitive */
        {"SSH-2.0-OpenSSH\r\n", SL_EINVAL},
        {"", SL_NEED_MORE},
        {"HTT", SL_NEED_MORE},
        {"HTTP/1.1 20", SL_NEED_MORE},
        {"HTTP/1.1 200", SL_NEED_MORE},            /* 2000 is still possible */
        {"HTTX", SL_EINVAL},                       /* refused at its first wrong byte */
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(t); i++)
        assert_int_equal(sl_http_status_code(t[i].line, strlen(t[i].line)), t[i].want);
    /* Only the first bytes are read: a NUL or a long tail after them does not matter. */
    assert_int_equal(sl_http_status_code("HTTP/1.1 200 \0\0", 15), 200);
}

static void test_has_token(void **state)
{
    static const char v[] = "keep-alive ,  Upgrade,,x-y";
    assert_true(sl_http_has_token(v, sizeof v - 1, "upgrade"));
    assert_true(sl_http_has_token(v, sizeof v - 1, "KEEP-ALIVE"));
    assert_true(sl_http_has_token(v, sizeof v - 1, "x-y"));
    assert_false(sl_http_has_token(v, sizeof v - 1, "x"));
    assert_false(sl_http_has_token(v, sizeof v - 1, "upgrad"));
    assert_false(sl_http_has_token("", 0, "close"));
}

/* ---- the real client behind trusted proxies -------------------------------- */

static bool trusted_10(const char *ip, void *arg)
{
    (*(int *)arg)++;
    return strncmp(ip, "10.", 3) == 0 || strcmp(ip, "::1") == 0;
}

static void test_real_client(void **state)
{
    static const struct { const char *xff; int rc; const char *want; } t[] = {
        {"198.51.100.1", 0, "198.51.100.1"},
        {"198.51.100.1, 10.0.0.1", 0, "198.51.100.1"},
        {"6.6.6.6, 198.51.100.1, 10.0.0.1 , 10.0.0.2", 0, "198.51.100.1"},
        {" 2001:DB8:0::1 ,::1", 0, "2001:db8::1"},
        {"10.0.0.3, 10.0.0.1", 0, "10.0.0.3"},         /* all trusted: the leftmost */
        {"not-an-ip", SL_ENOENT, NULL},
        {"198.51.100.1, garbage, 10.0.0.1", SL_ENOENT, NULL},  /* cannot see past garbage */
        {"198.51.100.1, 10.0.0.1, garbage", SL_ENOENT, NULL},
        {"198.51.100.1:443", SL_ENOENT, NULL},
        {"", SL_ENOENT, NULL},
        {"1.2.3.4, , 10.0.0.1", 0, "1.2.3.4"},
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(t); i++) {
        char in[256];
        snprintf(in, sizeof in, "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: %s\r\n\r\n", t[i].xff);
        const sl_http_head_t *h = parse_req(in);
        char out[46] = "";
        int calls = 0;
        int rc = sl_http_real_client(h, in, trusted_10, &calls, out);
        if (rc != t[i].rc)
            print_error("xff '%s': rc %d\n", t[i].xff, rc);
        assert_int_equal(rc, t[i].rc);
        if (rc == 0)
            assert_string_equal(out, t[i].want);
    }
    /* Several lines: read right to left across them. */
    static const char two[] = "GET / HTTP/1.1\r\nX-Forwarded-For: 192.0.2.5\r\nHost: h\r\n"
                              "X-Forwarded-For: 10.1.1.1\r\n\r\n";
    const sl_http_head_t *h = parse_req(two);
    char out[46];
    int calls = 0;
    assert_int_equal(sl_http_real_client(h, two, trusted_10, &calls, out), 0);
    assert_string_equal(out, "192.0.2.5");
    assert_int_equal(calls, 2);
    h = parse_req("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_int_equal(sl_http_real_client(h, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", trusted_10, &calls, out),
                     SL_ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_leading_empty_lines_and_versions),
        cmocka_unit_test(test_websocket_upgrade),
        cmocka_unit_test(test_content_length_body),
        cmocka_unit_test(test_chunked_body),
        cmocka_unit_test(test_bad_chunks),
        cmocka_unit_test(test_trailers),
        cmocka_unit_test(test_chunk_extensions),
        cmocka_unit_test(test_bad_chunk_extensions),
        cmocka_unit_test(test_chunk_line_limit),
        cmocka_unit_test(test_chunk_extensions_bounded_per_body),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_percent_in_the_query_and_escapes_in_the_path_pass),
        cmocka_unit_test(test_versions_accepted),
        cmocka_unit_test(test_host_values),
        cmocka_unit_test(test_route_by),
        cmocka_unit_test(test_asterisk_form),
        cmocka_unit_test(test_error_is_sticky),
        cmocka_unit_test(test_header_count_limit),
        cmocka_unit_test(test_head_size_limit),
        cmocka_unit_test(test_request_target_limit),
        cmocka_unit_test(test_responses),
        cmocka_unit_test(test_write_request_plain),
        cmocka_unit_test(test_write_trailer_field),
        cmocka_unit_test(test_write_request_asterisk_form),
        cmocka_unit_test(test_write_request_trusted),
        cmocka_unit_test(test_write_request_websocket_ipv6),
        cmocka_unit_test(test_write_request_keeps_framing),
        cmocka_unit_test(test_write_request_absolute_form),
        cmocka_unit_test(test_write_response),
        cmocka_unit_test(test_write_request_drops_long_connection_names),
        cmocka_unit_test(test_write_simple),
        cmocka_unit_test(test_status_text),
        cmocka_unit_test(test_status_code),
        cmocka_unit_test(test_has_token),
        cmocka_unit_test(test_real_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
