/*
 * Tests for gateway/proto/wshandshake.c: golden tables of request and
 * response heads (built by hand as spans into literal text, the way http.c
 * leaves them: names as written, values trimmed) and the status or error each
 * must produce, with its reason; responses are checked against the request
 * they answer (what it offered); the RFC 6455 accept-key example; the key
 * format.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/wsframe.h"
#include "sluice/wshandshake.h"

#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* Fill h from "Name: value\n" lines of `text`; spans point into text. */
static void build(sl_http_head_t *h, const char *text)
{
    uint32_t at = 0, len = (uint32_t)strlen(text);
    h->n_headers = 0;
    while (at < len) {
        uint32_t eol = at, colon = at;
        while (eol < len && text[eol] != '\n')
            eol++;
        while (colon < eol && text[colon] != ':')
            colon++;
        assert_true(colon < eol);
        uint32_t v = colon + 1, ve = eol;
        while (v < ve && text[v] == ' ')
            v++;
        while (ve > v && text[ve - 1] == ' ')
            ve--;
        sl_http_header_t *hd = &h->headers[h->n_headers++];
        hd->name = (sl_http_span_t){at, colon - at};
        hd->value = (sl_http_span_t){v, ve - v};
        at = eol + 1;
    }
}

#define GOOD_REQUEST                                                    \
    "Host: server.example.com\n"                                        \
    "Upgrade: websocket\n"                                              \
    "Connection: Upgrade\n"                                             \
    "Sec-WebSocket-Key: " RFC_KEY "\n"                                  \
    "Origin: http://example.com\n"                                      \
    "Sec-WebSocket-Protocol: chat, superchat\n"                         \
    "Sec-WebSocket-Version: 13\n"

static const struct {
    const char *name;
    uint8_t method, major, minor;
    const char *headers;
    int status;
} requests[] = {
    {"RFC 6455 1.3 example", HTTP_GET, 1, 1, GOOD_REQUEST, 0},
    {"HTTP/2.0 is later than 1.1", HTTP_GET, 2, 0, GOOD_REQUEST, 0},
    {"tokens are case-insensitive and may be in lists", HTTP_GET, 1, 1,
     "host: a\nUPGRADE: foo/2, WebSocket\nconnection: keep-alive, UPGRADE\n"
     "sec-websocket-key: " RFC_KEY "\nsec-websocket-version: 13\n", 0},
    {"Connection split over two lines", HTTP_GET, 1, 1,
     "Host: a\nUpgrade: websocket\nConnection: keep-alive\nConnection: upgrade\n"
     "Sec-WebSocket-Key: " RFC_KEY "\nSec-WebSocket-Version: 13\n", 0},
    {"POST", HTTP_POST, 1, 1, GOOD_REQUEST, 400},
    {"HTTP/1.0", HTTP_GET, 1, 0, GOOD_REQUEST, 400},
    {"HTTP/0.9", HTTP_GET, 0, 9, GOOD_REQUEST, 400},
    {"no Host", HTTP_GET, 1, 1,
     "Upgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: " RFC_KEY
     "\nSec-WebSocket-Version: 13\n", 400},
    {"two Host lines", HTTP_GET, 1, 1, "Host: b\n" GOOD_REQUEST, 400},
    {"Upgrade names another protocol", HTTP_GET, 1, 1,
     "Host: a\nUpgrade: h2c\nConnection: Upgrade\nSec-WebSocket-Key: " RFC_KEY
     "\nSec-WebSocket-Version: 13\n", 400},
    {"websocket only as a substring", HTTP_GET, 1, 1,
     "Host: a\nUpgrade: websockets\nConnection: Upgrade\nSec-WebSocket-Key: " RFC_KEY
     "\nSec-WebSocket-Version: 13\n", 400},
    {"Connection without upgrade", HTTP_GET, 1, 1,
     "Host: a\nUpgrade: websocket\nConnection: keep-alive\nSec-WebSocket-Key: " RFC_KEY
     "\nSec-WebSocket-Version: 13\n", 400},
    {"no Connection", HTTP_GET, 1, 1,
     "Host: a\nUpgrade: websocket\nSec-WebSocket-Key: " RFC_KEY "\nSec-WebSocket-Version: 13\n",
     400},
    {"no key", HTTP_GET, 1, 1,
     "Host: a\nUpgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Version: 13\n", 400},
    {"key of 15 bytes", HTTP_GET, 1, 1,
     "Host: a\nUpgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\n"
     "Sec-WebSocket-Version: 13\n", 400},
    {"two keys", HTTP_GET, 1, 1, "Sec-WebSocket-Key: " RFC_KEY "\n" GOOD_REQUEST, 400},
    {"no version", HTTP_GET, 1, 1,
     "Host: a\nUpgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: " RFC_KEY "\n", 426},
    {"version 8", HTTP_GET, 1, 1,
     "Host: a\nUpgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: " RFC_KEY
     "\nSec-WebSocket-Version: 8\n", 426},
    {"version list", HTTP_GET, 1, 1,
     "Host: a\nUpgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: " RFC_KEY
     "\nSec-WebSocket-Version: 13, 8\n", 426},
    {"version 130", HTTP_GET, 1, 1,
     "Host: a\nUpgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: " RFC_KEY
     "\nSec-WebSocket-Version: 130\n", 426},
};

static void test_check_request_table(void **state)
{
    (void)state;
    static sl_http_head_t h;
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        memset(&h, 0, sizeof h);
        h.method = requests[i].method;
        h.http_major = requests[i].major;
        h.http_minor = requests[i].minor;
        build(&h, requests[i].headers);
        sl_ws_request_info_t info;
        const char *why = "unset";
        int got = sl_ws_check_request(&h, requests[i].headers, &info, &why);
        if (got != requests[i].status)
            fail_msg("%s: status %d (%s), expected %d", requests[i].name, got,
                     why ? why : "-", requests[i].status);
        if (got == 0) {
            assert_null(why);
            assert_int_equal(info.key.len, 24);
            assert_memory_equal(requests[i].headers + info.key.off, RFC_KEY, 24);
            assert_false(info.has_extensions);
        } else {
            assert_non_null(why);
        }
    }
}

static void test_request_extensions_offered(void **state)
{
    (void)state;
    static sl_http_head_t h;
    static const char text[] = GOOD_REQUEST
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\n";
    h.method = HTTP_GET;
    h.http_major = h.http_minor = 1;
    build(&h, text);
    sl_ws_request_info_t info;
    assert_int_equal(sl_ws_check_request(&h, text, &info, NULL), 0);
    assert_true(info.has_extensions);
}

static void test_is_upgrade(void **state)
{
    (void)state;
    static sl_http_head_t h;
    static const struct {
        const char *headers;
        bool upgrade;
    } rows[] = {
        {GOOD_REQUEST, true},
        {"Host: a\nUpgrade: WebSocket\n", true},   /* any method, no Connection: still an attempt */
        {"Host: a\nUpgrade: h2c, websocket\n", true},
        {"Host: a\nUpgrade: h2c\n", false},
        {"Host: a\nConnection: upgrade\n", false},
        {"", false},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        memset(&h, 0, sizeof h);
        h.method = HTTP_POST;
        build(&h, rows[i].headers);
        assert_int_equal(sl_ws_is_upgrade(&h, rows[i].headers), rows[i].upgrade);
    }
}

#define GOOD_RESPONSE                                                   \
    "Upgrade: websocket\n"                                              \
    "Connection: Upgrade\n"                                             \
    "Sec-WebSocket-Accept: " RFC_ACCEPT "\n"

/* The request the response rows answer, unless a row gives its own (its header lines). */
#define OFFERS                                                          \
    GOOD_REQUEST                                                        \
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-webkit-deflate-frame\n" \
    "Sec-WebSocket-Extensions: foo\n"
#define BARE_REQUEST                                                    \
    "Host: a\nUpgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: " RFC_KEY "\n"   \
    "Sec-WebSocket-Version: 13\n"

#define NOT_OFFERED_EXT "Sec-WebSocket-Extensions names an extension the client did not offer"
#define NOT_OFFERED_PROTO "Sec-WebSocket-Protocol names a subprotocol the client did not offer"

/* What an accepted 101 negotiated: nothing, permessage-deflate alone, only unknown
   extensions, or permessage-deflate beside an unknown one. */
enum { NONE, DEFL, UNKN, BOTH };

static const struct {
    const char *name;
    uint16_t status;
    const char *request;     /* NULL: OFFERS */
    const char *headers;
    const char *why;         /* NULL: accepted */
    uint8_t ext;             /* NONE, DEFL, UNKN or BOTH, when accepted */
} responses[] = {
    {"RFC 6455 1.3 example", 101, NULL, GOOD_RESPONSE "Sec-WebSocket-Protocol: chat\n", NULL,
     NONE},
    {"the second subprotocol offered", 101, NULL,
     GOOD_RESPONSE "Sec-WebSocket-Protocol: superchat\n", NULL, NONE},
    {"no subprotocol though some were offered", 101, NULL, GOOD_RESPONSE, NULL, NONE},
    {"tokens in any case", 101, NULL,
     "upgrade: WebSocket\nconnection: UPGRADE\nsec-websocket-accept: " RFC_ACCEPT "\n", NULL,
     NONE},
    {"permessage-deflate", 101, NULL,
     GOOD_RESPONSE "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\n",
     NULL, DEFL},
    {"permessage-deflate in capitals, no params", 101, NULL,
     GOOD_RESPONSE "Sec-WebSocket-Extensions: PerMessage-Deflate\n", NULL, DEFL},
    {"permessage-deflate after empty elements", 101, NULL,
     GOOD_RESPONSE "Sec-WebSocket-Extensions: , ,permessage-deflate ;client_max_window_bits=10\n",
     NULL, DEFL},
    {"an unknown extension may use every RSV bit", 101, NULL,
     GOOD_RESPONSE "Sec-WebSocket-Extensions: x-webkit-deflate-frame\n", NULL, UNKN},
    {"permessage-deflate and another", 101, NULL,
     GOOD_RESPONSE "Sec-WebSocket-Extensions: permessage-deflate, foo; bar=1\n", NULL, BOTH},
    {"extensions over two lines", 101, NULL,
     GOOD_RESPONSE "Sec-WebSocket-Extensions: permessage-deflate\n"
                   "Sec-WebSocket-Extensions: foo\n", NULL, BOTH},
    {"empty extensions header", 101, NULL, GOOD_RESPONSE "Sec-WebSocket-Extensions: \n", NULL,
     NONE},
    {"offers over several lines, with spaces and empty elements", 101,
     BARE_REQUEST "Sec-WebSocket-Protocol: a\nSec-WebSocket-Protocol:  ,v2 ,\n"
                  "Sec-WebSocket-Extensions: foo\nSec-WebSocket-Extensions: ,permessage-deflate\n",
     GOOD_RESPONSE "Sec-WebSocket-Protocol: v2\nSec-WebSocket-Extensions: permessage-deflate\n",
     NULL, DEFL},

    /* RFC 6455 4.1 step 6: a subprotocol the client did not offer. */
    {"a subprotocol not offered", 101, NULL, GOOD_RESPONSE "Sec-WebSocket-Protocol: evil\n",
     NOT_OFFERED_PROTO, 0},
    {"a subprotocol when none was offered", 101, BARE_REQUEST,
     GOOD_RESPONSE "Sec-WebSocket-Protocol: chat\n", NOT_OFFERED_PROTO, 0},
    {"a subprotocol in another case", 101, NULL, GOOD_RESPONSE "Sec-WebSocket-Protocol: Chat\n",
     NOT_OFFERED_PROTO, 0},
    {"a prefix of an offered subprotocol", 101, NULL,
     GOOD_RESPONSE "Sec-WebSocket-Protocol: cha\n", NOT_OFFERED_PROTO, 0},
    {"the offered list back", 101, NULL,
     GOOD_RESPONSE "Sec-WebSocket-Protocol: chat, superchat\n", NOT_OFFERED_PROTO, 0},
    {"an empty subprotocol", 101, BARE_REQUEST "Sec-WebSocket-Protocol: chat,,\n",
     GOOD_RESPONSE "Sec-WebSocket-Protocol: \n", NOT_OFFERED_PROTO, 0},
    {"two subprotocol lines", 101, NULL,
     GOOD_RESPONSE "Sec-WebSocket-Protocol: chat\nSec-WebSocket-Protocol: chat\n",
     "Sec-WebSocket-Protocol more than once", 0},

    /* RFC 6455 4.1 step 5: an extension the client did not offer. */
    {"permessage-deflate when no extension was offered", 101, BARE_REQUEST,
     GOOD_RESPONSE "Sec-WebSocket-Extensions: permessage-deflate\n", NOT_OFFERED_EXT, 0},
    {"an extension not offered", 101, NULL,
     GOOD_RESPONSE "Sec-WebSocket-Extensions: x-evil\n", NOT_OFFERED_EXT, 0},
    {"one offered extension and one not", 101, NULL,
     GOOD_RESPONSE "Sec-WebSocket-Extensions: permessage-deflate, x-evil; a=1\n",
     NOT_OFFERED_EXT, 0},
    {"the second line names one not offered", 101, NULL,
     GOOD_RESPONSE "Sec-WebSocket-Extensions: permessage-deflate\n"
                   "Sec-WebSocket-Extensions: x-evil\n", NOT_OFFERED_EXT, 0},
    {"a prefix of an offered extension", 101, NULL,
     GOOD_RESPONSE "Sec-WebSocket-Extensions: permessage\n", NOT_OFFERED_EXT, 0},
    {"an offered name with more after it", 101, NULL,
     GOOD_RESPONSE "Sec-WebSocket-Extensions: permessage-deflate-x\n", NOT_OFFERED_EXT, 0},
    {"an offer's parameter is not an extension", 101, NULL,
     GOOD_RESPONSE "Sec-WebSocket-Extensions: client_max_window_bits\n", NOT_OFFERED_EXT, 0},

    {"200 instead of 101", 200, NULL, GOOD_RESPONSE, "status is not 101", 0},
    {"401", 401, NULL, "WWW-Authenticate: Bearer\n", "status is not 101", 0},
    {"no Upgrade", 101, NULL, "Connection: Upgrade\nSec-WebSocket-Accept: " RFC_ACCEPT "\n",
     "Upgrade does not name websocket", 0},
    /* RFC 6455 4.1 step 2: the 101's Upgrade is "websocket", not a list that holds it. */
    {"Upgrade names websocket and another", 101, NULL,
     "Upgrade: websocket, h2c\nConnection: Upgrade\nSec-WebSocket-Accept: " RFC_ACCEPT "\n",
     "Upgrade names another protocol beside websocket", 0},
    {"Upgrade names another before websocket", 101, NULL,
     "Upgrade: foo/2, WebSocket\nConnection: Upgrade\nSec-WebSocket-Accept: " RFC_ACCEPT "\n",
     "Upgrade names another protocol beside websocket", 0},
    {"a second Upgrade line names another", 101, NULL,
     GOOD_RESPONSE "Upgrade: h2c\n", "Upgrade names another protocol beside websocket", 0},
    {"Upgrade websocket twice", 101, NULL,
     "Upgrade: websocket, websocket\nConnection: Upgrade\nSec-WebSocket-Accept: " RFC_ACCEPT
     "\n", "Upgrade names another protocol beside websocket", 0},
    {"Upgrade with empty elements around websocket", 101, NULL,
     "Upgrade: , websocket ,\nConnection: Upgrade\nSec-WebSocket-Accept: " RFC_ACCEPT "\n",
     NULL, NONE},
    /* RFC 7692 5: permessage-deflate twice would be two users of RSV1. */
    {"permessage-deflate twice", 101, NULL,
     GOOD_RESPONSE "Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate\n",
     "Sec-WebSocket-Extensions names permessage-deflate twice", 0},
    {"permessage-deflate on two lines", 101, NULL,
     GOOD_RESPONSE "Sec-WebSocket-Extensions: permessage-deflate\n"
                   "Sec-WebSocket-Extensions: PerMessage-Deflate; server_no_context_takeover\n",
     "Sec-WebSocket-Extensions names permessage-deflate twice", 0},
    {"no Connection upgrade", 101, NULL,
     "Upgrade: websocket\nConnection: keep-alive\nSec-WebSocket-Accept: " RFC_ACCEPT "\n",
     "Connection does not name upgrade", 0},
    {"no accept", 101, NULL, "Upgrade: websocket\nConnection: Upgrade\n",
     "wrong or missing Sec-WebSocket-Accept", 0},
    {"wrong accept", 101, NULL,
     "Upgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOp=\n",
     "wrong or missing Sec-WebSocket-Accept", 0},
    {"accept with changed case", 101, NULL,
     "Upgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Accept: S3PPLMBiTxaQ9kYGzzhZRbK+xOo=\n",
     "wrong or missing Sec-WebSocket-Accept", 0},
    {"accept of the bare key", 101, NULL,
     "Upgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Accept: " RFC_KEY "\n",
     "wrong or missing Sec-WebSocket-Accept", 0},
    {"two accept lines", 101, NULL, GOOD_RESPONSE "Sec-WebSocket-Accept: " RFC_ACCEPT "\n",
     "wrong or missing Sec-WebSocket-Accept", 0},
    {"a wrong accept is named before an unoffered subprotocol", 101, BARE_REQUEST,
     "Upgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Accept: " RFC_KEY "\n"
     "Sec-WebSocket-Protocol: chat\n", "wrong or missing Sec-WebSocket-Accept", 0},
};

/* What the response info must say for an accepted 101 with these extensions. */
static void check_info(const char *name, const sl_ws_response_info_t *info, uint8_t ext)
{
    bool pmd = ext == DEFL || ext == BOTH, other = ext == UNKN || ext == BOTH;
    /* An unknown extension makes the parsers lenient, permessage-deflate beside it or not. */
    sl_ws_extensions_t mode = other ? SL_WS_EXT_UNKNOWN : pmd ? SL_WS_EXT_DEFLATE : SL_WS_EXT_NONE;
    uint8_t rsv = other ? 0x7 : pmd ? 0x4 : 0;
    if (info->extensions != mode || info->extension_negotiated != (ext != NONE) ||
        info->allowed_rsv != rsv || info->other_extension != other ||
        info->permessage_deflate != pmd)
        fail_msg("%s: extensions %d negotiated %d rsv %#x deflate %d other %d", name,
                 info->extensions, info->extension_negotiated, info->allowed_rsv,
                 info->permessage_deflate, info->other_extension);
}

static void test_check_response_table(void **state)
{
    (void)state;
    static sl_http_head_t h, req;
    for (size_t i = 0; i < sizeof responses / sizeof responses[0]; i++) {
        const char *rtext = responses[i].request ? responses[i].request : OFFERS;
        memset(&req, 0, sizeof req);
        req.method = HTTP_GET;
        req.http_major = req.http_minor = 1;
        build(&req, rtext);
        sl_ws_request_info_t rinfo;
        assert_int_equal(sl_ws_check_request(&req, rtext, &rinfo, NULL), 0);

        memset(&h, 0, sizeof h);
        h.status = responses[i].status;
        h.http_major = h.http_minor = 1;
        build(&h, responses[i].headers);
        sl_ws_response_info_t info;
        memset(&info, 0xAA, sizeof info);
        const char *why = "unset";
        int got = sl_ws_check_response_to(&h, responses[i].headers, &req, rtext, &info, &why);
        int want = responses[i].why ? SL_EINVAL : 0;
        if (got != want || (why == NULL) != (responses[i].why == NULL) ||
            (why && strcmp(why, responses[i].why) != 0))
            fail_msg("%s: %d (%s), expected %d (%s)", responses[i].name, got, why ? why : "-",
                     want, responses[i].why ? responses[i].why : "-");
        if (got == 0) {
            check_info(responses[i].name, &info, responses[i].ext);
        } else {
            static const sl_ws_response_info_t zero;
            assert_memory_equal(&info, &zero, sizeof info);   /* nothing half-filled */
        }
    }
}

static void test_check_response_without_key_in_request(void **state)
{
    (void)state;
    static sl_http_head_t h, req;
    static const char rtext[] = "Host: a\nUpgrade: websocket\n";
    build(&req, rtext);
    h.status = 101;
    build(&h, GOOD_RESPONSE);
    sl_ws_response_info_t info;
    const char *why = NULL;
    assert_int_equal(sl_ws_check_response_to(&h, GOOD_RESPONSE, &req, rtext, &info, &why),
                     SL_EINVAL);
    assert_string_equal(why, "the request has no Sec-WebSocket-Key");
    assert_int_equal(sl_ws_check_response_to(&h, GOOD_RESPONSE, &req, rtext, &info, NULL),
                     SL_EINVAL);
}

/*
 * The key-only check (until the relay moves to sl_ws_check_response_to): the
 * same rules for status, Upgrade, Connection and accept, the same extension
 * info; what was offered is unknown, so subprotocols and extensions pass.
 */
static void test_check_response_key_only(void **state)
{
    (void)state;
    static sl_http_head_t h;
    static const struct {
        const char *headers;
        const char *why;
        uint8_t ext;
    } rows[] = {
        {GOOD_RESPONSE "Sec-WebSocket-Protocol: evil\n", NULL, NONE},
        {GOOD_RESPONSE "Sec-WebSocket-Protocol: a\nSec-WebSocket-Protocol: b\n", NULL, NONE},
        {GOOD_RESPONSE "Sec-WebSocket-Extensions: permessage-deflate\n", NULL, DEFL},
        {GOOD_RESPONSE "Sec-WebSocket-Extensions: permessage-deflate, x-evil\n", NULL, BOTH},
        {"Upgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Accept: " RFC_KEY "\n",
         "wrong or missing Sec-WebSocket-Accept", 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        memset(&h, 0, sizeof h);
        h.status = 101;
        build(&h, rows[i].headers);
        sl_ws_response_info_t info;
        const char *why = "unset";
        int got = sl_ws_check_response(&h, rows[i].headers, RFC_KEY, strlen(RFC_KEY), &info,
                                       &why);
        if (rows[i].why) {
            assert_int_equal(got, SL_EINVAL);
            assert_string_equal(why, rows[i].why);
        } else {
            if (got != 0)
                fail_msg("row %zu: %s", i, why ? why : "-");
            assert_null(why);
            check_info(rows[i].headers, &info, rows[i].ext);
        }
    }
}

static void test_accept_key(void **state)
{
    (void)state;
    char out[29];
    memset(out, 'x', sizeof out);
    sl_ws_accept_key(RFC_KEY, strlen(RFC_KEY), out);
    assert_string_equal(out, RFC_ACCEPT);

    /* Only the key's bytes count, not what follows them. */
    sl_ws_accept_key(RFC_KEY "trailing", strlen(RFC_KEY), out);
    assert_string_equal(out, RFC_ACCEPT);

    /* Keys at and past the length hashed on the stack (values from Python's hashlib). */
    char long_key[300];
    memset(long_key, 'k', sizeof long_key);
    sl_ws_accept_key(long_key, 128, out);
    assert_string_equal(out, "LcijRWdSv8weHsk1E7Dug2wMBbg=");
    sl_ws_accept_key(long_key, 129, out);
    assert_string_equal(out, "GwNZsIvApWzhz529DTMMTypVTu4=");
    sl_ws_accept_key(long_key, 300, out);
    assert_string_equal(out, "0epks0nN8rNytIigCrEHZPQGWfI=");
}

static void test_key_valid(void **state)
{
    (void)state;
    static const struct {
        const char *key;
        bool valid;
    } rows[] = {
        {RFC_KEY, true},
        {"AAAAAAAAAAAAAAAAAAAAAA==", true},
        {"+/+/+/+/+/+/+/+/+/+/+w==", true},
        {"dGhlIHNhbXBsZSBub25jZQ=", false},     /* 23 */
        {"dGhlIHNhbXBsZSBub25jZQ===", false},   /* 25 */
        {"dGhlIHNhbXBsZSBub25jZQAA", false},    /* no padding: 18 bytes */
        {"dGhlIHNhbXBsZSBub25jZ===", false},    /* 15 bytes */
        {"dGhlIHNhbXBsZSBub25j-Q==", false},    /* base64url, not base64 */
        {"dGhlIHNhbXBsZSBub25j Q==", false},
        {"dGhlIHNhbXBsZSBub25jZQ=A", false},
        {"", false},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (sl_ws_key_valid(rows[i].key, strlen(rows[i].key)) != rows[i].valid)
            fail_msg("key \"%s\": expected %d", rows[i].key, rows[i].valid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_request_table),
        cmocka_unit_test(test_request_extensions_offered),
        cmocka_unit_test(test_is_upgrade),
        cmocka_unit_test(test_check_response_table),
        cmocka_unit_test(test_check_response_without_key_in_request),
        cmocka_unit_test(test_check_response_key_only),
        cmocka_unit_test(test_accept_key),
        cmocka_unit_test(test_key_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
