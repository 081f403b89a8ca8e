/*
 * gateway/config/units.c: the value notations of the config file and the
 * admin API (durations, sizes, rates, addresses, prefixes).
 *
 * Numbers are parsed by hand rather than with strtod/strtoull: those accept
 * leading spaces, signs, hex, exponents and "inf", none of which belongs in
 * "30s", and they depend on the locale. A value is digits, an optional
 * fraction of up to six digits, and a unit; the result must be a whole
 * number of the stored unit ("1.5s" is 1500 ms, "1.5ms" is refused), so the
 * value the user reads is exactly the value the gateway uses.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

typedef struct dec {
    uint64_t ip;       /* integer part */
    uint64_t frac;     /* fraction digits as an integer */
    uint64_t scale;    /* 10^(number of fraction digits) */
} dec_t;

/*
 * Why a value was refused, so the error can say more than "bad duration".
 * The parsers below return one of these, and sl_why_* turn it into words:
 * one code path decides both whether a value is good and what is wrong
 * with it, so the message can never disagree with the parser.
 */
typedef enum why {
    WHY_NONE = 0,      /* parsed */
    WHY_FORM,          /* nothing to add to the expected form ("fast") */
    WHY_SPACE,         /* "10 s" */
    WHY_NEGATIVE,      /* "-5s" */
    WHY_SIGN,          /* "+5s" */
    WHY_POINT_FIRST,   /* ".5s" */
    WHY_POINT_LAST,    /* "1.s" */
    WHY_TWO_POINTS,    /* "1.5.MiB" */
    WHY_COMMA,         /* "1,5MiB" */
    WHY_EXPONENT,      /* "1e3ms", "1E2/s" */
    WHY_DIGITS,        /* seven digits after the point */
    WHY_TOO_LARGE,
    WHY_NO_UNIT,       /* "30" */
    WHY_UNIT,          /* "5S", "5sec", "16kb" */
    WHY_TWO_NUMBERS,   /* "5m30s" */
    WHY_FINER,         /* "1.5ms": not a whole number of the stored unit */
    WHY_NO_SLASH,      /* "500s" for a rate */
} why_t;

/* Digits with an optional ".digits"; sets *rest to what follows. */
static why_t parse_dec(const char *s, dec_t *d, const char **rest)
{
    d->ip = 0;
    d->frac = 0;
    d->scale = 1;
    if (strpbrk(s, " \t") != NULL)
        return WHY_SPACE;   /* first: " 5s" would otherwise be "not a number" */
    if (*s == '-' || *s == '+')
        return *s == '-' ? WHY_NEGATIVE : WHY_SIGN;
    if (*s == '.' && isdigit((unsigned char)s[1]))
        return WHY_POINT_FIRST;
    if (!isdigit((unsigned char)*s))
        return WHY_FORM;
    for (; isdigit((unsigned char)*s); s++) {
        uint64_t v = (uint64_t)(*s - '0');
        if (d->ip > (UINT64_MAX - v) / 10)
            return WHY_TOO_LARGE;
        d->ip = d->ip * 10 + v;
    }
    if (*s == '.') {
        s++;
        if (!isdigit((unsigned char)*s))
            return WHY_POINT_LAST;
        for (; isdigit((unsigned char)*s); s++) {
            if (d->scale == 1000000)
                return WHY_DIGITS;
            d->frac = d->frac * 10 + (uint64_t)(*s - '0');
            d->scale *= 10;
        }
    }
    /* No unit starts with either: "1.5.MiB", "1,5MiB". */
    if (*s == '.')
        return WHY_TWO_POINTS;
    if (*s == ',')
        return WHY_COMMA;
    /* No unit starts with an "e" and a digit: JSON's and C's exponent, which
       would otherwise read as the unit "e3ms" or a rate with no "/". */
    if (*s == 'e' || *s == 'E') {
        const char *e = s + 1 + (s[1] == '-' || s[1] == '+');
        if (isdigit((unsigned char)*e))
            return WHY_EXPONENT;
    }
    *rest = s;
    return WHY_NONE;
}

/* d * mult as a whole number: WHY_FINER for a fractional result. */
static why_t scale_whole(const dec_t *d, uint64_t mult, uint64_t *out)
{
    /* frac < 10^6 and mult <= 2^40, so frac * mult cannot overflow. */
    uint64_t f = d->frac * mult;
    if (f % d->scale != 0)
        return WHY_FINER;
    f /= d->scale;
    if (d->ip > (UINT64_MAX - f) / mult)
        return WHY_TOO_LARGE;
    *out = d->ip * mult + f;
    return WHY_NONE;
}

typedef struct unit {
    const char *name;
    uint64_t mult;
} unit_t;

/* The unit's multiplier; an unknown unit with a digit in it is a second
   number ("5m30s"), which says more than "unknown unit \"m30s\"". */
static why_t find_unit(const unit_t *u, size_t n, const char *s, uint64_t *mult)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(u[i].name, s) == 0) {
            *mult = u[i].mult;
            return WHY_NONE;
        }
    }
    return strpbrk(s, "0123456789") != NULL ? WHY_TWO_NUMBERS : WHY_UNIT;
}

static const unit_t duration_units[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
};

static const unit_t size_units[] = {
    {"", 1}, {"B", 1},
    {"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30}, {"TiB", 1ull << 40},
    {"KB", 1000ull}, {"MB", 1000000ull}, {"GB", 1000000000ull}, {"TB", 1000000000000ull},
};

static const unit_t rate_units[] = {
    {"s", 1}, {"sec", 1}, {"m", 60}, {"min", 60}, {"h", 3600},
};

/* *rest is set to the unit's text (for the message) whatever the outcome. */
static why_t duration(const char *s, sl_msec_t *out, const char **rest)
{
    dec_t d;
    uint64_t mult, v;
    *rest = "";
    why_t w = parse_dec(s, &d, rest);
    if (w != WHY_NONE)
        return w;
    if (**rest == '\0') {
        /* Only zero may go without a unit: "30" could mean anything. */
        if (d.ip != 0 || d.frac != 0)
            return WHY_NO_UNIT;
        *out = 0;
        return WHY_NONE;
    }
    if ((w = find_unit(duration_units, SL_ARRAY_SIZE(duration_units), *rest, &mult)) != WHY_NONE ||
        (w = scale_whole(&d, mult, &v)) != WHY_NONE)
        return w;
    if (v == SL_MSEC_NEVER)
        return WHY_TOO_LARGE;
    *out = v;
    return WHY_NONE;
}

static why_t size(const char *s, uint64_t *out, const char **rest)
{
    dec_t d;
    uint64_t mult = 1, v = 0;
    *rest = "";
    why_t w = parse_dec(s, &d, rest);
    if (w == WHY_NONE)
        w = find_unit(size_units, SL_ARRAY_SIZE(size_units), *rest, &mult);
    if (w == WHY_NONE)
        w = scale_whole(&d, mult, &v);
    if (w == WHY_NONE)
        *out = v;
    return w;
}

/* *rest is set past the "/" when there is one. */
static why_t rate(const char *s, double *out, const char **rest)
{
    dec_t d;
    uint64_t secs;
    *rest = "";
    why_t w = parse_dec(s, &d, rest);
    if (w != WHY_NONE)
        return w;
    if (**rest == '\0')
        return WHY_NO_UNIT;
    if (**rest != '/')
        return isalpha((unsigned char)**rest) ? WHY_NO_SLASH : WHY_FORM;
    (*rest)++;
    if ((w = find_unit(rate_units, SL_ARRAY_SIZE(rate_units), *rest, &secs)) != WHY_NONE)
        return w;
    if (d.ip > 1000000000000ull) /* 10^12 per unit: far beyond any real rate */
        return WHY_TOO_LARGE;
    *out = ((double)d.ip + (double)d.frac / (double)d.scale) / (double)secs;
    return WHY_NONE;
}

int sl_parse_duration(const char *s, sl_msec_t *out)
{
    const char *rest;
    return s != NULL && duration(s, out, &rest) == WHY_NONE ? SL_OK : SL_EINVAL;
}

int sl_parse_size(const char *s, uint64_t *out)
{
    const char *rest;
    return s != NULL && size(s, out, &rest) == WHY_NONE ? SL_OK : SL_EINVAL;
}

int sl_parse_rate(const char *s, double *out)
{
    const char *rest;
    return s != NULL && rate(s, out, &rest) == WHY_NONE ? SL_OK : SL_EINVAL;
}

int sl_parse_number(const char *s, double *out)
{
    char buf[64];   /* the number as a rate per second: one grammar for both */
    if (s == NULL || strchr(s, '/') != NULL || snprintf(buf, sizeof buf, "%s/s", s) >= (int)sizeof buf)
        return SL_EINVAL;
    return sl_parse_rate(buf, out);
}

/* The words for a refusal; `finer` and `units` are the notation's own. */
static void why_words(why_t w, const char *rest, const char *finer, const char *units,
                      char *buf, size_t len)
{
    char q[48];
    switch (w) {
    case WHY_SPACE: snprintf(buf, len, "a space inside the value"); break;
    case WHY_NEGATIVE: snprintf(buf, len, "negative"); break;
    case WHY_SIGN: snprintf(buf, len, "a sign before the number"); break;
    case WHY_POINT_FIRST: snprintf(buf, len, "no digit before the point"); break;
    case WHY_POINT_LAST: snprintf(buf, len, "no digit after the point"); break;
    case WHY_TWO_POINTS: snprintf(buf, len, "more than one point"); break;
    case WHY_COMMA: snprintf(buf, len, "a comma in the number (the decimal mark is a point)"); break;
    case WHY_EXPONENT: snprintf(buf, len, "an exponent (write the number out: 1e3 is 1000)"); break;
    case WHY_DIGITS: snprintf(buf, len, "more than six digits after the point"); break;
    case WHY_TOO_LARGE: snprintf(buf, len, "too large"); break;
    case WHY_NO_UNIT: snprintf(buf, len, "no unit"); break;
    case WHY_TWO_NUMBERS: snprintf(buf, len, "one number and one unit only"); break;
    case WHY_FINER: snprintf(buf, len, "%s", finer); break;
    case WHY_NO_SLASH: snprintf(buf, len, "no \"/\" before the unit"); break;
    case WHY_UNIT:
        sl__quote(q, sizeof q, rest, strlen(rest), 20);
        snprintf(buf, len, "unknown unit %s (units: %s)", q, units);
        break;
    default: buf[0] = '\0'; break;
    }
}

void sl_why_duration(const char *s, char *buf, size_t len)
{
    sl_msec_t v;
    const char *rest;
    why_t w = duration(s, &v, &rest);
    why_words(w, rest, "finer than a millisecond", "ms, s, m, h", buf, len);
}

void sl_why_size(const char *s, char *buf, size_t len)
{
    uint64_t v;
    const char *rest;
    why_t w = size(s, &v, &rest);
    why_words(w, rest, "not a whole number of bytes",
              "B, KiB, MiB, GiB, TiB, KB, MB, GB, TB", buf, len);
}

void sl_why_rate(const char *s, char *buf, size_t len)
{
    double v;
    const char *rest;
    why_t w = rate(s, &v, &rest);
    why_words(w, rest, "", "s, sec, m, min, h", buf, len);
}

/* A DNS name or an IPv4 literal (letters, digits, '-', '.', '_'). */
static bool hostname_ok(const char *h, size_t n)
{
    if (n == 0 || n > 253)
        return false;
    bool dotted_digits = true;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)h[i];
        if (!isalnum(ch) && ch != '-' && ch != '.' && ch != '_')
            return false;
        if (!isdigit(ch) && ch != '.')
            dotted_digits = false;
    }
    if (h[0] == '.' || h[0] == '-' || h[n - 1] == '-' || strstr(h, "..") != NULL)
        return false;
    if (dotted_digits) {
        /* Looks like an IPv4 address: then it must be one. */
        unsigned char a[4];
        return inet_pton(AF_INET, h, a) == 1;
    }
    return true;
}

/* The port after the colon: digits, 0..65535. *range is set for digits
   beyond that ("99999"), where "out of range" says more than "bad address". */
static bool parse_port(const char *p, uint16_t *port, bool *range)
{
    unsigned long v = 0;
    size_t n = 0;
    for (; isdigit((unsigned char)p[n]); n++)
        v = SL_MIN(v * 10 + (unsigned long)(p[n] - '0'), 1000000ul);
    if (n == 0 || p[n] != '\0')
        return false;
    if (n > 5 || v > 65535) {
        *range = v > 65535;
        return false;
    }
    *port = (uint16_t)v;
    return true;
}

static int hostport(const char *s, char **host, uint16_t *port, bool *range)
{
    char buf[256];
    const char *colon;
    uint16_t p;
    if (s == NULL || strlen(s) >= sizeof buf)
        return SL_EINVAL;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        unsigned char a6[16];
        if (close == NULL || close[1] != ':')
            return SL_EINVAL;
        size_t n = (size_t)(close - s - 1);
        memcpy(buf, s + 1, n);
        buf[n] = '\0';
        if (inet_pton(AF_INET6, buf, a6) != 1)
            return SL_EINVAL;
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return SL_EINVAL;
        size_t n = (size_t)(colon - s);
        memcpy(buf, s, n);
        buf[n] = '\0';
        if (!hostname_ok(buf, n))
            return SL_EINVAL;   /* also refuses a bare IPv6 address: brackets needed */
    }
    if (!parse_port(colon + 1, &p, range))
        return SL_EINVAL;
    char *h = strdup(buf);
    if (h == NULL)
        return SL_ENOMEM;
    *host = h;
    *port = p;
    return SL_OK;
}

int sl_parse_hostport(const char *s, char **host, uint16_t *port)
{
    bool range = false;
    return hostport(s, host, port, &range);
}

bool sl__port_out_of_range(const char *s)
{
    char *host = NULL;
    uint16_t port;
    bool range = false;
    if (hostport(s, &host, &port, &range) == SL_OK)
        free(host);
    return range;
}

int sl_parse_cidr(const char *s, sl_cfg_cidr_t *out)
{
    char buf[64];
    sl_cfg_cidr_t c = {0};
    if (s == NULL || strlen(s) >= sizeof buf)
        return SL_EINVAL;
    strcpy(buf, s);
    char *slash = strchr(buf, '/');
    if (slash != NULL)
        *slash = '\0';
    if (inet_pton(AF_INET, buf, c.addr) == 1)
        c.family = AF_INET;
    else if (inet_pton(AF_INET6, buf, c.addr) == 1)
        c.family = AF_INET6;
    else
        return SL_EINVAL;
    unsigned max = c.family == AF_INET ? 32 : 128, bits = max;
    if (slash != NULL) {
        const char *p = slash + 1;
        size_t n = 0;
        bits = 0;
        for (; isdigit((unsigned char)p[n]) && n < 3; n++)
            bits = bits * 10 + (unsigned)(p[n] - '0');
        if (n == 0 || p[n] != '\0' || bits > max)
            return SL_EINVAL;
    }
    c.prefix = (uint8_t)bits;
    /* Host bits set ("10.0.0.1/8") is almost always a typo for something else. */
    for (unsigned i = bits; i < max; i++) {
        if (c.addr[i / 8] & (0x80u >> (i % 8)))
            return SL_EINVAL;
    }
    *out = c;
    return SL_OK;
}

bool sl_cidr_contains(const sl_cfg_cidr_t *c, int family, const uint8_t *addr)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (c == NULL || addr == NULL)
        return false;
    if (c->family == AF_INET && family == AF_INET6 && memcmp(addr, mapped, 12) == 0) {
        family = AF_INET;   /* a dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d */
        addr += 12;
    }
    if (family != c->family)
        return false;
    unsigned full = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(addr, c->addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (addr[full] & mask) == (c->addr[full] & mask);
}

void sl__fmt_duration(char *buf, size_t len, sl_msec_t ms)
{
    if (ms == 0)
        snprintf(buf, len, "0");
    else if (ms % 3600000 == 0)
        snprintf(buf, len, "%lluh", (unsigned long long)(ms / 3600000));
    else if (ms % 60000 == 0)
        snprintf(buf, len, "%llum", (unsigned long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(buf, len, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(buf, len, "%llums", (unsigned long long)ms);
}

void sl__fmt_size(char *buf, size_t len, uint64_t b)
{
    if (b != 0 && b % (1ull << 30) == 0)
        snprintf(buf, len, "%lluGiB", (unsigned long long)(b >> 30));
    else if (b != 0 && b % (1ull << 20) == 0)
        snprintf(buf, len, "%lluMiB", (unsigned long long)(b >> 20));
    else if (b != 0 && b % (1ull << 10) == 0)
        snprintf(buf, len, "%lluKiB", (unsigned long long)(b >> 10));
    else
        snprintf(buf, len, "%llu", (unsigned long long)b);
}

void sl__fmt_rate(char *buf, size_t len, double r)
{
    double m = r * 60;
    if (r == (double)(uint64_t)r)
        snprintf(buf, len, "%llu/s", (unsigned long long)r);
    else if (m == (double)(uint64_t)m)
        snprintf(buf, len, "%llu/m", (unsigned long long)m);
    else
        snprintf(buf, len, "%g/s", r);
}

bool sl__close_code_sendable(unsigned code)
{
    /* RFC 6455 7.4: 1004-1006 and 1015 are reserved, never put on the wire. */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

bool sl__route_host_ok(const char *s)
{
    if (strcmp(s, "*") == 0)
        return true;
    if (strncmp(s, "*.", 2) == 0)
        s += 2;
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i <= n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '.' || ch == '\0') {
            if (label == 0 || label > 63 || s[i - 1] == '-')
                return false;
            label = 0;
        } else if (isalnum(ch) || (ch == '-' && label > 0)) {
            label++;
        } else {
            return false;
        }
    }
    return true;
}
