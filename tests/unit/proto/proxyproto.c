/*
 * Tests for gateway/proto/proxyproto.c: golden v1 and v2 headers, each fed
 * whole, as every prefix (a valid header: SL_NEED_MORE before its last byte;
 * an invalid one: SL_NEED_MORE, then SL_EINVAL from some byte on and never
 * anything else), and with trailing bytes that must not be consumed. Every
 * feeding copies into an exact-size heap buffer so ASan sees overreads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "sluice/proxyproto.h"

static int parse_copy(const void *in, size_t len, sl_proxy_protocol_t allowed, sl_proxy_header_t *h)
{
    uint8_t *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    memcpy(buf, in, len);
    int rc = sl_proxy_parse(buf, len, allowed, h);
    free(buf);
    return rc;
}

/*
 * Parse every prefix and the whole (plus trailing bytes); returns the whole
 * result and, for an error, the shortest prefix that is already refused.
 */
static int parse_all(const void *in, size_t len, sl_proxy_protocol_t allowed,
                     sl_proxy_header_t *h, size_t *refused_at)
{
    int whole = parse_copy(in, len, allowed, h);
    bool refused = false;
    *refused_at = 0;
    for (size_t k = 0; k < len; k++) {
        sl_proxy_header_t tmp;
        int rc = parse_copy(in, k, allowed, &tmp);
        if (whole > 0) {
            assert_int_equal(rc, SL_NEED_MORE);
        } else if (rc == SL_EINVAL) {
            if (!refused)
                *refused_at = k;
            refused = true;
        } else {
            assert_false(refused);          /* refused stays refused */
            assert_int_equal(rc, SL_NEED_MORE);
        }
    }
    if (whole > 0) {
        /* Bytes after the header (the request, the TLS hello) are not taken. */
        uint8_t more[70000];
        assert_true(len + 5 <= sizeof more);
        memcpy(more, in, len);
        memcpy(more + len, "GET /", 5);
        sl_proxy_header_t h2;
        assert_int_equal(parse_copy(more, len + 5, allowed, &h2), whole);
        assert_memory_equal(&h2, h, sizeof h2);
    } else if (!refused) {
        *refused_at = len;
    }
    return whole;
}

static void assert_addr(const struct sockaddr_storage *ss, const char *ip, unsigned port)
{
    char text[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text);
        assert_int_equal(ntohs(sin->sin_port), port);
    } else {
        assert_int_equal(ss->ss_family, AF_INET6);
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof text);
        assert_int_equal(ntohs(sin6->sin6_port), port);
    }
    assert_string_equal(text, ip);
}

#define V1(s) s, sizeof(s) - 1

static void test_v1_valid(void **state)
{
    sl_proxy_header_t h;
    size_t at;
    assert_int_equal(parse_all(V1("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"),
                               SL_PROXY_PROTOCOL_V1, &h, &at), 45);
    assert_int_equal(h.version, 1);
    assert_false(h.local);
    assert_addr(&h.src, "192.0.2.1", 56324);
    assert_addr(&h.dst, "198.51.100.2", 443);

    assert_int_equal(parse_all(V1("PROXY TCP6 2001:db8::1 ::1 0 65535\r\n"),
                               SL_PROXY_PROTOCOL_ANY, &h, &at), 36);
    assert_addr(&h.src, "2001:db8::1", 0);
    assert_addr(&h.dst, "::1", 65535);

    assert_int_equal(parse_all(V1("PROXY UNKNOWN\r\n"), SL_PROXY_PROTOCOL_V1, &h, &at), 15);
    assert_true(h.local);
    assert_int_equal(h.version, 1);
    assert_int_equal(parse_all(V1("PROXY UNKNOWN ffff::1 ::2 1 2\r\n"), SL_PROXY_PROTOCOL_ANY,
                               &h, &at), 31);
    assert_true(h.local);

    /* The longest possible v1 header is 107 bytes. */
    static const char longest[] =
        "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_int_equal(sizeof longest - 1, 104);
    assert_int_equal(parse_all(V1(longest), SL_PROXY_PROTOCOL_V1, &h, &at), 104);
    char unk[108];
    memset(unk, 'x', sizeof unk);
    memcpy(unk, "PROXY UNKNOWN ", 14);
    memcpy(unk + 105, "\r\n", 2);
    assert_int_equal(parse_all(unk, 107, SL_PROXY_PROTOCOL_V1, &h, &at), 107);
    memcpy(unk + 105, "x\r\n", 3);
    assert_int_equal(parse_all(unk, 108, SL_PROXY_PROTOCOL_V1, &h, &at), SL_EINVAL);
    assert_int_equal(at, 107);       /* refused once 107 bytes hold no CRLF */
}

static void test_v1_invalid(void **state)
{
    static const struct { const char *in; size_t refused_at; } t[] = {
        {"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\n", 0},
        {"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\rX", 0},
        {"PROXY TCP4 192.0.2.1 198.51.100.2 +5632 443\r\n", 0},
        {"PROXY TCP4 192.0.2.1 198.51.100.2 65536 443\r\n", 0},
        {"PROXY TCP4 192.0.2.1 198.51.100.2 056324 443\r\n", 0},
        {"PROXY TCP4 192.0.2.1 198.51.100.2 -1 443\r\n", 0},
        {"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443 \r\n", 0},
        {"PROXY TCP4 192.0.2.1  198.51.100.2 56324 443\r\n", 0},
        {"PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n", 0},
        {"PROXY TCP4 ::1 ::1 1 2\r\n", 0},
        {"PROXY TCP6 192.0.2.1 198.51.100.2 1 2\r\n", 0},
        {"PROXY TCP4 192.0.2.256 198.51.100.2 1 2\r\n", 0},
        {"PROXY TCP4 192.0.2 198.51.100.2 1 2\r\n", 0},
        {"PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n", 0},
        {"PROXY tcp4 192.0.2.1 198.51.100.2 1 2\r\n", 0},
        {"PROXY UNKNOWNX\r\n", 0},
        {"PROXY \r\n", 0},
        {"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\t\r\n", 0},
        {"PROXYTCP4 192.0.2.1 198.51.100.2 1 2\r\n", 6},
        {"PROXX", 5},
        {"GET / HTTP/1.1\r\n", 1},
        {"proxy TCP4", 1},
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(t); i++) {
        sl_proxy_header_t h;
        size_t at;
        int rc = parse_all(t[i].in, strlen(t[i].in), SL_PROXY_PROTOCOL_ANY, &h, &at);
        if (rc != SL_EINVAL)
            print_error("accepted: %s\n", t[i].in);
        assert_int_equal(rc, SL_EINVAL);
        if (t[i].refused_at != 0)
            assert_int_equal(at, t[i].refused_at);
        assert_int_equal(h.version, 0);
    }
    /* Version not allowed by the listener. */
    sl_proxy_header_t h;
    assert_int_equal(sl_proxy_parse((const uint8_t *)"PROXY UNKNOWN\r\n", 15, SL_PROXY_PROTOCOL_V2, &h),
                     SL_EINVAL);
    assert_int_equal(sl_proxy_parse((const uint8_t *)"P", 1, SL_PROXY_PROTOCOL_V2, &h), SL_EINVAL);
    assert_int_equal(sl_proxy_parse((const uint8_t *)"", 0, SL_PROXY_PROTOCOL_V1, &h), SL_NEED_MORE);
}

static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A v2 header: signature, ver/cmd, family, then `body` of `n` bytes. */
static size_t v2(uint8_t *out, uint8_t vercmd, uint8_t fam, const uint8_t *body, size_t n)
{
    memcpy(out, sig, 12);
    out[12] = vercmd;
    out[13] = fam;
    out[14] = (uint8_t)(n >> 8);
    out[15] = (uint8_t)n;
    if (n > 0)
        memcpy(out + 16, body, n);
    return 16 + n;
}

static void test_v2_valid(void **state)
{
    uint8_t buf[600];
    sl_proxy_header_t h;
    size_t at;
    static const uint8_t inet[] = {192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb};
    size_t n = v2(buf, 0x21, 0x11, inet, sizeof inet);
    assert_int_equal(parse_all(buf, n, SL_PROXY_PROTOCOL_V2, &h, &at), 28);
    assert_int_equal(h.version, 2);
    assert_false(h.local);
    assert_addr(&h.src, "192.0.2.1", 56324);
    assert_addr(&h.dst, "198.51.100.2", 443);

    /* TLVs after the addresses are skipped. */
    uint8_t with_tlv[12 + 7];
    memcpy(with_tlv, inet, 12);
    memcpy(with_tlv + 12, "\x02\x00\x04host", 7);
    n = v2(buf, 0x21, 0x11, with_tlv, sizeof with_tlv);
    assert_int_equal(parse_all(buf, n, SL_PROXY_PROTOCOL_ANY, &h, &at), 35);
    assert_addr(&h.src, "192.0.2.1", 56324);

    uint8_t inet6[36] = {0};
    inet6[0] = 0x20; inet6[1] = 0x01; inet6[2] = 0x0d; inet6[3] = 0xb8; inet6[15] = 1;
    inet6[31] = 1;
    inet6[32] = 0x30; inet6[33] = 0x39; inet6[34] = 0x00; inet6[35] = 0x50;
    n = v2(buf, 0x21, 0x21, inet6, sizeof inet6);
    assert_int_equal(parse_all(buf, n, SL_PROXY_PROTOCOL_V2, &h, &at), 52);
    assert_addr(&h.src, "2001:db8::1", 12345);
    assert_addr(&h.dst, "::1", 80);

    /* LOCAL: the balancer's own health check; addresses are ignored. */
    n = v2(buf, 0x20, 0x00, NULL, 0);
    assert_int_equal(parse_all(buf, n, SL_PROXY_PROTOCOL_V2, &h, &at), 16);
    assert_true(h.local);
    n = v2(buf, 0x20, 0x11, inet, sizeof inet);
    assert_int_equal(parse_all(buf, n, SL_PROXY_PROTOCOL_V2, &h, &at), 28);
    assert_true(h.local);
    /* PROXY over UNSPEC: no client to take, keep the peer. */
    n = v2(buf, 0x21, 0x00, NULL, 0);
    assert_int_equal(parse_all(buf, n, SL_PROXY_PROTOCOL_V2, &h, &at), 16);
    assert_true(h.local);
    /* The valid combinations a TCP listener has no use for fall back to
       UNSPEC, as the spec asks of a receiver that leaves them out: UDP over
       IPv4 and IPv6, and UNIX sockets (a balancer whose client came over
       one sends 0x31). They were refused. */
    static const uint8_t unix_addrs[216] = {'/', 't', 'm', 'p'};
    struct { uint8_t fam; const uint8_t *body; size_t n; } fallback[] = {
        {0x12, inet, sizeof inet}, {0x22, inet6, sizeof inet6},
        {0x31, unix_addrs, sizeof unix_addrs}, {0x32, unix_addrs, sizeof unix_addrs},
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(fallback); i++) {
        n = v2(buf, 0x21, fallback[i].fam, fallback[i].body, fallback[i].n);
        assert_int_equal(parse_all(buf, n, SL_PROXY_PROTOCOL_V2, &h, &at), (int)n);
        assert_true(h.local);
    }
    /* A long header (the length field is big-endian). */
    static uint8_t big[300];
    memcpy(big, inet, 12);
    n = v2(buf, 0x21, 0x11, big, sizeof big);
    assert_int_equal(parse_all(buf, n, SL_PROXY_PROTOCOL_V2, &h, &at), 316);
}

static void test_v2_invalid(void **state)
{
    uint8_t buf[128];
    sl_proxy_header_t h;
    size_t at;
    static const uint8_t inet[12] = {192, 0, 2, 1, 198, 51, 100, 2, 0, 1, 0, 2};
    struct { uint8_t vercmd, fam; size_t n; size_t refused_at; } t[] = {
        {0x11, 0x11, 12, 13},   /* version 1 */
        {0x31, 0x11, 12, 13},   /* version 3 */
        {0x22, 0x11, 12, 13},   /* command 2 */
        {0x21, 0x11, 11, 16},   /* INET needs 12 bytes */
        {0x21, 0x21, 12, 16},   /* INET6 needs 36 */
        {0x21, 0x41, 12, 16},   /* unknown family */
        {0x21, 0x13, 12, 16},   /* unknown transport */
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(t); i++) {
        size_t n = v2(buf, t[i].vercmd, t[i].fam, inet, t[i].n);
        assert_int_equal(parse_all(buf, n, SL_PROXY_PROTOCOL_ANY, &h, &at), SL_EINVAL);
        assert_int_equal(at, t[i].refused_at);
    }
    /* A wrong byte anywhere in the signature is refused at that byte. */
    for (size_t i = 0; i < 12; i++) {
        size_t n = v2(buf, 0x21, 0x11, inet, sizeof inet);
        buf[i] ^= 0x40;
        assert_int_equal(parse_all(buf, n, SL_PROXY_PROTOCOL_ANY, &h, &at), SL_EINVAL);
        assert_int_equal(at, i == 0 ? 1 : i + 1);
    }
    size_t n = v2(buf, 0x21, 0x11, inet, sizeof inet);
    assert_int_equal(sl_proxy_parse(buf, n, SL_PROXY_PROTOCOL_V1, &h), SL_EINVAL);
    assert_int_equal(sl_proxy_parse(buf, n, SL_PROXY_PROTOCOL_OFF, &h), SL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_valid),
        cmocka_unit_test(test_v1_invalid),
        cmocka_unit_test(test_v2_valid),
        cmocka_unit_test(test_v2_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
