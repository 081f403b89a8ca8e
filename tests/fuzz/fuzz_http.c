/*
 * fuzz_http.c: libFuzzer target for gateway/proto/http.c.
 *
 * Input: byte 0 picks the message type (bit 0), the request method a
 * response answers (bits 1-2) and the limits (bit 3); byte 1 is the feed
 * step. The rest is the message. Each input is parsed twice, whole and in
 * steps, and the two must agree (the parser's results may not depend on how
 * bytes were split); spans must lie inside the head; the body phase must
 * never claim more bytes than it was given; a parsed head must rewrite, and
 * pass or fail the WebSocket handshake checks (wshandshake.c) with a status
 * and a reason; a 101 is checked against a fixed request that offers
 * subprotocols and extensions, and what passes that check must pass the
 * key-only one with the same verdict on extensions. The health checks'
 * status-line reader gives one verdict for every prefix that has one, and
 * agrees with the parser on what both accept.
 * A parsed request is HTTP/1.0 or 1.1, has a Host if 1.1 and no
 * Transfer-Encoding if 1.0, and the head written for the backend parses back
 * with the host and path the request was routed by: the backend cannot read
 * another.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/http.h"
#include "sluice/wsframe.h"
#include "sluice/wshandshake.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static sl_http_parser_t parsers[2];
static sl_http_parser_t reparser;
static char out[1 << 17];

static bool trusted(const char *ip, void *arg)
{
    return ip[0] == '1' && ip[1] == '0' && ip[2] == '.';
}

static void check_span(sl_http_span_t s, uint32_t head_len)
{
    CHECK(s.off <= head_len && s.len <= head_len - s.off);
}

static int parse_head(sl_http_parser_t *p, const char *buf, size_t len, size_t step)
{
    int rc = SL_NEED_MORE;
    for (size_t n = SL_MIN(step, len); rc == SL_NEED_MORE; n = SL_MIN(n + step, len)) {
        rc = sl_http_parse_head(p, buf, n);
        CHECK(rc == SL_NEED_MORE || rc == SL_EINVAL || (rc > 0 && (size_t)rc <= n));
        if (n == len)
            break;
    }
    return rc;
}

/* The RFC 6455 example key: a fuzzed 101 may carry its accept value. */
static const char client_key[] = "dGhlIHNhbXBsZSBub25jZQ==";

/* The request a fuzzed 101 answers: it offers two subprotocols and three extensions. */
static const char offer[] =
    "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, foo\r\n"
    "Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n\r\n";
static sl_http_parser_t offer_parser;

static const sl_http_head_t *offer_head(void)
{
    static bool parsed;
    if (!parsed) {
        sl_http_parser_init(&offer_parser, SL_HTTP_REQUEST, 0);
        CHECK(sl_http_parse_head(&offer_parser, offer, sizeof offer - 1) ==
              (int)(sizeof offer - 1));
        sl_ws_request_info_t info;
        CHECK(sl_ws_check_request(&offer_parser.head, offer, &info, NULL) == 0);
        parsed = true;
    }
    return &offer_parser.head;
}

static void check_handshake(const sl_http_parser_t *p, const char *buf, uint32_t head_len)
{
    const sl_http_head_t *h = &p->head;
    const char *why = NULL;
    if (p->type == SL_HTTP_REQUEST) {
        if (!sl_ws_is_upgrade(h, buf))
            return;
        sl_ws_request_info_t info;
        int status = sl_ws_check_request(h, buf, &info, &why);
        if (status == 0) {
            check_span(info.key, head_len);
            CHECK(why == NULL && sl_ws_key_valid(buf + info.key.off, info.key.len));
            char accept[29];
            sl_ws_accept_key(buf + info.key.off, info.key.len, accept);
            CHECK(strlen(accept) == 28);
        } else {
            CHECK((status == 400 || status == 426) && why != NULL);
        }
    } else if (h->status == 101) {
        sl_ws_response_info_t info, full;
        int rc = sl_ws_check_response(h, buf, client_key, sizeof client_key - 1, &info, &why);
        CHECK(rc == 0 ? why == NULL : rc == SL_EINVAL && why != NULL);
        int full_rc = sl_ws_check_response_to(h, buf, offer_head(), offer, &full, &why);
        CHECK(full_rc == 0 ? why == NULL : full_rc == SL_EINVAL && why != NULL);
        if (full_rc == 0) {
            /* Stricter, never looser, and the same reading of the extensions. */
            CHECK(rc == 0 && memcmp(&info, &full, sizeof info) == 0);
            CHECK(full.extensions == (full.other_extension     ? SL_WS_EXT_UNKNOWN
                                      : full.permessage_deflate ? SL_WS_EXT_DEFLATE
                                                                : SL_WS_EXT_NONE));
        }
    }
}

static bool same_bytes(const char *a, sl_http_span_t as, const char *b, sl_http_span_t bs)
{
    return as.len == bs.len && memcmp(a + as.off, b + bs.off, as.len) == 0;
}

/* The request line of an accepted head is exactly method SP target SP
   HTTP/1.x CRLF (RFC 9112 3), after any empty lines, and the parser's spans
   are its parts: whatever else llhttp tolerates is refused, so the gateway's
   own scan and llhttp never read one line two ways ("CONNECT  HTTP/1.1" did). */
static void check_request_line(const sl_http_head_t *h, const char *buf, uint32_t head_len)
{
    uint32_t at = 0;
    while (at + 1 < head_len && buf[at] == '\r' && buf[at + 1] == '\n')
        at += 2;
    const char *line = buf + at;
    const char *cr = memchr(line, '\r', head_len - at);
    CHECK(cr != NULL);
    size_t len = (size_t)(cr - line);
    const char *sp1 = memchr(line, ' ', len);
    CHECK(sp1 != NULL);
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', (size_t)(cr - target));
    CHECK(sp2 != NULL && sp2 > target);
    const char *version = sp2 + 1;
    CHECK(cr - version == 8 && memcmp(version, "HTTP/1.", 7) == 0 &&
          (version[7] == '0' || version[7] == '1'));
    CHECK(h->method_text.off == at && h->method_text.len == (uint32_t)(sp1 - line));
    CHECK(h->url.off == (uint32_t)(target - buf) && h->url.len == (uint32_t)(sp2 - target));
}

/* A parsed request, and the head written for the backend (in `out`, n bytes). */
static void check_request(const sl_http_head_t *h, const char *buf, uint32_t head_len, size_t n)
{
    check_span(h->host, head_len);
    check_span(h->path, head_len);
    CHECK(h->http_major == 1 && h->http_minor <= 1 && h->path.len > 0);
    check_request_line(h, buf, head_len);
    CHECK(h->http_minor == 0 || sl_http_find(h, buf, "host") != NULL);
    CHECK(h->http_minor == 1 || sl_http_find(h, buf, "transfer-encoding") == NULL);
    memset(&reparser, 0, sizeof reparser);
    reparser.max_head = sizeof out;
    reparser.max_headers = SL_HTTP_MAX_HEADERS;
    reparser.max_request_line = sizeof out;
    sl_http_parser_init(&reparser, SL_HTTP_REQUEST, 0);
    CHECK(sl_http_parse_head(&reparser, out, n) == (int)n);
    const sl_http_head_t *r = &reparser.head;
    CHECK(!r->absolute_form && r->http_minor == h->http_minor && r->method == h->method);
    CHECK(same_bytes(out, r->host, buf, h->host));
    if (h->absolute_form && h->method == HTTP_OPTIONS &&
        h->host.off + h->host.len == h->url.off + h->url.len) {
        CHECK(r->asterisk_form);   /* "OPTIONS http://host" goes on as "OPTIONS *" */
    } else if (h->absolute_form) {   /* origin-form: the path, then the query if the path was empty */
        sl_http_span_t lead = {r->url.off, h->path.len};
        CHECK(r->url.len >= h->path.len && same_bytes(out, lead, buf, h->path));
    } else {
        CHECK(same_bytes(out, r->url, buf, h->url) && same_bytes(out, r->path, buf, h->path));
    }
}

static void check_head(const sl_http_parser_t *p, const char *buf, uint32_t head_len)
{
    const sl_http_head_t *h = &p->head;
    CHECK(h->head_len == head_len && h->n_headers <= SL_HTTP_MAX_HEADERS);
    check_span(h->url, head_len);
    check_span(h->method_text, head_len);
    check_span(h->reason, head_len);
    for (uint32_t i = 0; i < h->n_headers; i++) {
        check_span(h->headers[i].name, head_len);
        check_span(h->headers[i].value, head_len);
    }
    sl_http_forward_t fw = {.client_ip = "2001:db8::1", .client_trusted = true, .websocket = h->upgrade};
    ssize_t n = p->type == SL_HTTP_REQUEST ? sl_http_write_request(h, buf, &fw, out, sizeof out)
                                           : sl_http_write_response(h, buf, false, out, sizeof out);
    CHECK(n > 0 && (size_t)n <= sizeof out);
    if (p->type == SL_HTTP_REQUEST)
        check_request(h, buf, head_len, (size_t)n);
    char ip[46];
    if (sl_http_real_client(h, buf, trusted, NULL, ip) == 0)
        CHECK(memchr(ip, '\0', sizeof ip) != NULL);
    check_handshake(p, buf, head_len);
}

/* Returns bytes of body, or SL_EINVAL; *done as the parser says. */
static ssize_t parse_body(sl_http_parser_t *p, const char *buf, size_t len, size_t step, bool *done)
{
    size_t at = 0;
    *done = false;
    do {
        size_t chunk = SL_MIN(step, len - at);
        ssize_t c = sl_http_parse_body(p, buf + at, chunk, done);
        if (c < 0)
            return c;
        CHECK((size_t)c <= chunk);
        CHECK(*done || (size_t)c == chunk);
        at += (size_t)c;
    } while (!*done && at < len);
    return (ssize_t)at;
}

static void check_status_code(const char *buf, size_t len, const sl_http_parser_t *p, int rc)
{
    int whole = sl_http_status_code(buf, len);
    CHECK(whole == SL_NEED_MORE || whole == SL_EINVAL || (whole >= 100 && whole <= 599));
    for (size_t n = 0; n <= SL_MIN(len, 16); n++) {
        int r = sl_http_status_code(buf, n);
        CHECK(r == SL_NEED_MORE || r == whole);
    }
    if (rc > 0 && whole > 0)
        CHECK(p->head.status == whole);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static const uint8_t methods[] = {HTTP_GET, HTTP_HEAD, HTTP_POST, HTTP_CONNECT};
    sl_http_type_t type = data[0] & 1 ? SL_HTTP_RESPONSE : SL_HTTP_REQUEST;
    uint8_t method = methods[(data[0] >> 1) & 3];
    size_t step = data[1] ? data[1] : 1;
    const char *buf = (const char *)data + 2;
    size_t len = size - 2;

    int rc[2];
    ssize_t body[2];
    bool done[2];
    for (int i = 0; i < 2; i++) {
        sl_http_parser_t *p = &parsers[i];
        memset(p, 0, sizeof *p);
        if (data[0] & 8) {
            p->max_head = 200;
            p->max_headers = 4;
            p->max_request_line = 20;
        }
        sl_http_parser_init(p, type, method);
        rc[i] = parse_head(p, buf, len, i == 0 ? len ? len : 1 : step);
        body[i] = 0;
        done[i] = false;
        if (rc[i] > 0) {
            check_head(p, buf, (uint32_t)rc[i]);
            body[i] = parse_body(p, buf + rc[i], len - (size_t)rc[i], i == 0 ? len + 1 : step, &done[i]);
        } else if (rc[i] == SL_EINVAL) {
            CHECK(p->error_status >= 400 && p->error_reason != NULL);
        }
    }
    if (type == SL_HTTP_RESPONSE)
        check_status_code(buf, len, &parsers[0], rc[0]);
    CHECK(rc[0] == rc[1] && body[0] == body[1] && done[0] == done[1]);
    CHECK(parsers[0].error_status == parsers[1].error_status);
    if (rc[0] > 0)
        CHECK(memcmp(&parsers[0].head, &parsers[1].head, sizeof parsers[0].head) == 0);
    return 0;
}
