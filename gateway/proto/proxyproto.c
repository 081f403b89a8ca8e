/*
 * proxyproto.c: the PROXY protocol header (HAProxy's spec, v1 text and v2
 * binary) that an L4 load balancer prepends, so per-client limits key on the
 * real client rather than on the balancer.
 *
 * Why strict: the header decides which client a connection is charged to, so
 * anything the spec does not allow is refused (addresses must be valid for
 * their family, ports decimal 0-65535 without sign or leading zero, single
 * spaces). Why decide early: a listener that expects the header must not wait
 * for bytes that can never make one, so SL_EINVAL comes as soon as the bytes
 * so far cannot be a prefix of a valid header; SL_NEED_MORE only while they
 * still can (v1 is bounded at 107 bytes, v2 by its length field).
 */
#include <arpa/inet.h>
#include <string.h>

#include "sluice/proxyproto.h"

#define V1_MAX 107

static const uint8_t v2_sig[12] = {
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
};

/* Does `buf` match the start of `want` as far as both go? */
static bool prefix_ok(const uint8_t *buf, size_t len, const void *want, size_t wlen)
{
    return memcmp(buf, want, SL_MIN(len, wlen)) == 0;
}

/* ---- v1 -------------------------------------------------------------------- */

/* Cut the next field ending in `sep` from [*s, end); false if there is none. */
static bool field(const char **s, const char *end, char sep, char *out, size_t cap)
{
    const char *e = memchr(*s, sep, (size_t)(end - *s));
    if (e == NULL || e == *s || (size_t)(e - *s) >= cap)
        return false;
    memcpy(out, *s, (size_t)(e - *s));
    out[e - *s] = '\0';
    *s = e + 1;
    return true;
}

static bool parse_port(const char *s, uint16_t *port)
{
    size_t n = strlen(s);
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

static bool set_addr(struct sockaddr_storage *ss, int family, const char *text, uint16_t port)
{
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        return inet_pton(AF_INET, text, &sin->sin_addr) == 1;
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    return inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1;
}

/* "TCP4 a b p q" or "TCP6 ..." between "PROXY " and CRLF. */
static int parse_v1_line(const char *s, const char *end, sl_proxy_header_t *out)
{
    char proto[8], src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN], sp[8], dp[8];
    if (end - s >= 7 && memcmp(s, "UNKNOWN", 7) == 0 && (end - s == 7 || s[7] == ' ')) {
        out->local = true;      /* the rest of the line is to be ignored */
        return 0;
    }
    if (!field(&s, end, ' ', proto, sizeof proto))
        return SL_EINVAL;
    int family = strcmp(proto, "TCP4") == 0 ? AF_INET : strcmp(proto, "TCP6") == 0 ? AF_INET6 : 0;
    if (family == 0)
        return SL_EINVAL;
    uint16_t sport, dport;
    if (!field(&s, end, ' ', src, sizeof src) || !field(&s, end, ' ', dst, sizeof dst) ||
        !field(&s, end, ' ', sp, sizeof sp))
        return SL_EINVAL;
    if (end - s <= 0 || (size_t)(end - s) >= sizeof dp)
        return SL_EINVAL;
    memcpy(dp, s, (size_t)(end - s));
    dp[end - s] = '\0';
    if (!parse_port(sp, &sport) || !parse_port(dp, &dport))
        return SL_EINVAL;
    if (!set_addr(&out->src, family, src, sport) || !set_addr(&out->dst, family, dst, dport))
        return SL_EINVAL;
    return 0;
}

static int parse_v1(const uint8_t *buf, size_t len, sl_proxy_header_t *out)
{
    static const char sig[] = "PROXY ";
    if (!prefix_ok(buf, len, sig, 6))
        return SL_EINVAL;
    size_t n = SL_MIN(len, (size_t)V1_MAX);
    for (size_t i = 6; i < n; i++) {
        if (buf[i] == '\r') {
            if (i + 1 >= V1_MAX)
                return SL_EINVAL;       /* no room left for the LF */
            if (i + 1 == len)
                return SL_NEED_MORE;
            if (buf[i + 1] != '\n')
                return SL_EINVAL;
            out->version = 1;
            int rc = parse_v1_line((const char *)buf + 6, (const char *)buf + i, out);
            return rc < 0 ? rc : (int)(i + 2);
        }
        if (buf[i] < 0x20 || buf[i] > 0x7e)   /* printable US-ASCII only */
            return SL_EINVAL;
    }
    return len >= V1_MAX ? SL_EINVAL : SL_NEED_MORE;
}

/* ---- v2 -------------------------------------------------------------------- */

static void set_v4(struct sockaddr_storage *ss, const uint8_t *addr, const uint8_t *port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    sin->sin_family = AF_INET;
    memcpy(&sin->sin_addr, addr, 4);
    memcpy(&sin->sin_port, port, 2);    /* both in network order */
}

static void set_v6(struct sockaddr_storage *ss, const uint8_t *addr, const uint8_t *port)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    memcpy(&sin6->sin6_addr, addr, 16);
    memcpy(&sin6->sin6_port, port, 2);
}

static int parse_v2(const uint8_t *buf, size_t len, sl_proxy_header_t *out)
{
    if (!prefix_ok(buf, len, v2_sig, sizeof v2_sig))
        return SL_EINVAL;
    if (len > 12 && (buf[12] >> 4) != 2)
        return SL_EINVAL;               /* version */
    if (len > 12 && (buf[12] & 0x0f) > 1)
        return SL_EINVAL;               /* command: LOCAL or PROXY */
    if (len < 16)
        return SL_NEED_MORE;
    bool local = (buf[12] & 0x0f) == 0;
    uint8_t fam = buf[13];
    size_t body = (size_t)buf[14] << 8 | buf[15];
    if (!local && fam == 0x11 && body < 12)
        return SL_EINVAL;
    if (!local && fam == 0x21 && body < 36)
        return SL_EINVAL;
    /* The valid combinations are UNSPEC, and TCP or UDP over IPv4 or IPv6,
       and stream or datagram UNIX sockets; anything else is refused. */
    bool valid = fam == 0x00 || fam == 0x11 || fam == 0x12 || fam == 0x21 || fam == 0x22 ||
                 fam == 0x31 || fam == 0x32;
    if (!local && !valid)
        return SL_EINVAL;
    if (len < 16 + body)
        return SL_NEED_MORE;
    out->version = 2;
    /* LOCAL (health checks from the balancer itself) and PROXY over UNSPEC
     * carry no client: keep the peer address. So do the valid combinations
     * a TCP listener has no use for (UDP, UNIX sockets: a balancer whose own
     * client came over a unix socket sends 0x31): the spec lets a receiver
     * leave them out only if it falls back to UNSPEC for them, and refused,
     * such a balancer's clients were all cut off. TLVs after the addresses
     * are skipped: nothing in them changes who the client is. */
    out->local = local || (fam != 0x11 && fam != 0x21);
    if (!out->local && fam == 0x11) {
        set_v4(&out->src, buf + 16, buf + 24);
        set_v4(&out->dst, buf + 20, buf + 26);
    } else if (!out->local) {
        set_v6(&out->src, buf + 16, buf + 48);
        set_v6(&out->dst, buf + 32, buf + 50);
    }
    return (int)(16 + body);
}

int sl_proxy_parse(const uint8_t *buf, size_t len, sl_proxy_protocol_t allowed,
                   sl_proxy_header_t *out)
{
    memset(out, 0, sizeof *out);
    if (len == 0)
        return allowed == SL_PROXY_PROTOCOL_OFF ? SL_EINVAL : SL_NEED_MORE;
    bool v1 = allowed == SL_PROXY_PROTOCOL_V1 || allowed == SL_PROXY_PROTOCOL_ANY;
    bool v2 = allowed == SL_PROXY_PROTOCOL_V2 || allowed == SL_PROXY_PROTOCOL_ANY;
    int rc = SL_EINVAL;
    if (v1 && buf[0] == 'P')
        rc = parse_v1(buf, len, out);
    else if (v2 && buf[0] == v2_sig[0])
        rc = parse_v2(buf, len, out);
    if (rc <= 0)
        memset(out, 0, sizeof *out);
    return rc;
}
