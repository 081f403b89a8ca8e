/*
 * gateway/config/scalar.c: one scalar of the YAML file -> one typed field.
 *
 * Each type has a converter that parses with the notation of units.c,
 * checks the bounds the schema table declares, and stores by the field's
 * width. A converter that refuses a value writes the whole message ("what
 * is wrong (expected X, got Y)") and stores nothing, so a bad value leaves
 * the default in place and the walk can go on to report the next error.
 * Defaults go through the same converters, so they obey the same rules.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void sl__ydescribe(const sl__ynode_t *n, char *buf, size_t len)
{
    if (sl__ynode_is_null(n))
        snprintf(buf, len, "null");
    else if (n->kind == SL__Y_MAP)
        snprintf(buf, len, "a mapping");
    else if (n->kind == SL__Y_SEQ)
        snprintf(buf, len, "a sequence");
    else
        sl__quote(buf, len, n->str, n->len, 60);
}

const char *sl__cfg_expected(const sl__ckey_t *k)
{
    switch (k->type) {
    case SL__T_BOOL: return "true or false";
    case SL__T_UINT: return k->flags & SL__F_AUTO ? "auto or an integer" : "an integer";
    case SL__T_DURATION: return "a duration like 30s";
    case SL__T_SIZE: return "a size like 16KiB";
    case SL__T_RATE: return "a rate like 500/s";
    case SL__T_NUMBER: return "a number";
    case SL__T_STRING: return "a string";
    case SL__T_ENUM: return "a name";
    case SL__T_ADDR: return "an address like 127.0.0.1:8080";
    case SL__T_CIDR: return "a CIDR";
    case SL__T_MAP: return k->flags & SL__F_OFF ? "off or a mapping" : "a mapping";
    case SL__T_SEQ_MAP: return "a sequence of mappings";
    case SL__T_NAMED_MAP: return "a mapping of names to mappings";
    case SL__T_SEQ_STR: return "a sequence of names";
    case SL__T_SEQ_CIDR: return "a sequence of CIDRs";
    }
    return "something else";
}

void sl__cfg_free_addr(sl_cfg_addr_t *a)
{
    free(a->text);
    free(a->host);
    a->text = NULL;
    a->host = NULL;
}

/* ---- numbers ---------------------------------------------------------------- */

static void store_uint(void *field, size_t width, uint64_t v)
{
    switch (width) {
    case 1: *(uint8_t *)field = (uint8_t)v; break;
    case 2: *(uint16_t *)field = (uint16_t)v; break;
    case 4: *(uint32_t *)field = (uint32_t)v; break;
    default: *(uint64_t *)field = v; break;
    }
}

static bool parse_uint(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return true;
}

static void fmt_bound(const sl__ckey_t *k, double v, char *buf, size_t len)
{
    switch (k->type) {
    case SL__T_DURATION: sl__fmt_duration(buf, len, (sl_msec_t)v); break;
    case SL__T_SIZE: sl__fmt_size(buf, len, (uint64_t)v); break;
    case SL__T_RATE: sl__fmt_rate(buf, len, v); break;
    default: snprintf(buf, len, "%.15g", v); break;   /* 10000000, not %g's 1e+07 */
    }
}

static bool in_bounds(const sl__ckey_t *k, double v, const char *s, char *msg, size_t mlen)
{
    if (v >= k->min && v <= k->max)
        return true;
    char lo[32], hi[32];
    fmt_bound(k, k->min, lo, sizeof lo);
    fmt_bound(k, k->max, hi, sizeof hi);
    snprintf(msg, mlen, "out of range (expected %s..%s, got %s)", lo, hi, s);
    return false;
}

bool sl_config_check_bound(const char *path, double v, char *msg, size_t mlen)
{
    const sl__ckey_t *k = sl__key_by_path(path);
    if (k == NULL || k->min >= k->max) {
        snprintf(msg, mlen, "%s: not a bounded key", path);
        return false;
    }
    char got[32];
    fmt_bound(k, v, got, sizeof got);
    return in_bounds(k, v, got, msg, mlen);
}

/* uint, duration, size, rate and number: parse, bound, store. A refused
   duration, size or rate says why before the form it expects ("bad
   duration: finer than a millisecond (expected ...)"), when it can say
   more than the form does. */
static bool convert_number(const sl__ckey_t *k, const char *s, const char *got, void *field,
                           char *msg, size_t mlen)
{
    uint64_t u = 0;
    double d = 0;
    bool ok;
    const char *what, *hint;
    char why[160] = "";
    switch (k->type) {
    case SL__T_UINT:
        if ((k->flags & SL__F_AUTO) && strcmp(s, "auto") == 0) {
            store_uint(field, k->width, 0);
            return true;
        }
        ok = parse_uint(s, &u);
        d = (double)u;
        what = "bad number";
        hint = k->flags & SL__F_AUTO ? "auto or an integer" : "an integer";
        break;
    case SL__T_DURATION:
        if (!(ok = sl_parse_duration(s, &u) == SL_OK))
            sl_why_duration(s, why, sizeof why);
        d = (double)u;
        what = "bad duration";
        hint = "a number and unit like 250ms, 30s, 5m or 1h";
        break;
    case SL__T_SIZE:
        if (!(ok = sl_parse_size(s, &u) == SL_OK))
            sl_why_size(s, why, sizeof why);
        d = (double)u;
        what = "bad size";
        hint = "bytes or a unit like 512, 16KiB or 1MiB";
        break;
    case SL__T_RATE:
        if (!(ok = sl_parse_rate(s, &d) == SL_OK))
            sl_why_rate(s, why, sizeof why);
        what = "bad rate";
        hint = "a number per unit like 500/s";
        break;
    default:
        ok = sl_parse_number(s, &d) == SL_OK;
        what = "bad number";
        hint = "a decimal like 0.25";
        break;
    }
    if (!ok) {
        snprintf(msg, mlen, "%s%s%s (expected %s, got %s)", what, why[0] ? ": " : "", why, hint,
                 got);
        return false;
    }
    if (!in_bounds(k, d, s, msg, mlen))
        return false;
    if (k->type == SL__T_RATE || k->type == SL__T_NUMBER)
        *(double *)field = d;
    else
        store_uint(field, k->width, u);
    return true;
}

/* ---- words -------------------------------------------------------------------- */

static bool convert_bool(const char *s, const char *got, void *field, char *msg, size_t mlen)
{
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "on"};
    static const char *const no[] = {"false", "False", "FALSE", "no", "off"};
    for (size_t i = 0; i < SL_ARRAY_SIZE(yes); i++) {
        if (strcmp(s, yes[i]) == 0 || strcmp(s, no[i]) == 0) {
            *(bool *)field = strcmp(s, yes[i]) == 0;
            return true;
        }
    }
    snprintf(msg, mlen, "bad boolean (expected true or false, got %s)", got);
    return false;
}

static void enum_list(const sl__ckey_t *k, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (unsigned i = 0; k->names[i] != NULL && o < len; i++) {
        if (k->ni_values & (1u << i))
            continue;   /* not offered while not implemented */
        int w = snprintf(buf + o, len - o, "%s%s", o ? ", " : "", k->names[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
}

static bool convert_enum(const sl__ckey_t *k, const char *s, const char *got, void *field,
                         char *msg, size_t mlen)
{
    char list[160];
    enum_list(k, list, sizeof list);
    for (int i = 0; k->names[i] != NULL; i++) {
        if (strcmp(s, k->names[i]) != 0)
            continue;
        if (k->ni_values & (1u << i)) {
            snprintf(msg, mlen, "%s is not implemented yet (expected one of %s)", got, list);
            return false;
        }
        *(int *)field = i;
        return true;
    }
    snprintf(msg, mlen, "unknown value (expected one of %s, got %s)", list, got);
    return false;
}

static bool convert_string(const char *s, void *field, char *msg, size_t mlen)
{
    char *copy = strdup(s);
    if (copy == NULL) {
        snprintf(msg, mlen, "out of memory");
        return false;
    }
    free(*(char **)field);   /* the default, if any */
    *(char **)field = copy;
    return true;
}

/* ---- addresses ------------------------------------------------------------------ */

static bool convert_addr(const char *s, const char *got, void *field, char *msg, size_t mlen)
{
    sl_cfg_addr_t *a = field;
    char *host = NULL, *text = NULL;
    uint16_t port;
    if (sl_parse_hostport(s, &host, &port) != SL_OK || (text = strdup(s)) == NULL) {
        /* ":8080" and "*:8080" are how other servers say "every interface". */
        const char *port_text = s[0] == ':' ? s + 1 : strncmp(s, "*:", 2) == 0 ? s + 2 : NULL;
        free(host);
        const char *digits = strrchr(s, ':') ? strrchr(s, ':') + 1 : s;
        if (sl__port_out_of_range(s))
            snprintf(msg, mlen, "port out of range (expected 1..65535, got %.12s%s)", digits,
                     strlen(digits) > 12 ? "..." : "");
        else if (port_text != NULL && strlen(port_text) <= 5 &&
                 strspn(port_text, "0123456789") == strlen(port_text) && atoi(port_text) >= 1 &&
                 atoi(port_text) <= 65535)
            snprintf(msg, mlen, "bad address (expected IP:port, [IPv6]:port or host:port, got "
                     "%s; every interface is 0.0.0.0:%s, or \"[::]:%s\" for IPv6)", got,
                     port_text, port_text);
        else
            snprintf(msg, mlen, "bad address (expected IP:port, [IPv6]:port or host:port, got %s)",
                     got);
        return false;
    }
    sl__cfg_free_addr(a);
    a->text = text;
    a->host = host;
    a->port = port;
    return true;
}

static bool convert_cidr(const char *s, const char *got, void *field, char *msg, size_t mlen)
{
    sl_cfg_cidr_t c;
    if (sl_parse_cidr(s, &c) != SL_OK) {
        snprintf(msg, mlen,
                 "bad CIDR (expected an address or prefix like 10.0.0.0/8 or ::1/128, got %s)", got);
        return false;
    }
    *(sl_cfg_cidr_t *)field = c;
    return true;
}

bool sl__cfg_convert(const sl__ckey_t *k, const char *s, size_t n, void *field, char *msg,
                     size_t mlen)
{
    char got[96];
    sl__quote(got, sizeof got, s, n, 60);
    switch (k->type) {
    case SL__T_BOOL:
        return convert_bool(s, got, field, msg, mlen);
    case SL__T_UINT:
    case SL__T_DURATION:
    case SL__T_SIZE:
    case SL__T_RATE:
    case SL__T_NUMBER:
        return convert_number(k, s, got, field, msg, mlen);
    case SL__T_STRING:
        return convert_string(s, field, msg, mlen);
    case SL__T_ENUM:
        return convert_enum(k, s, got, field, msg, mlen);
    case SL__T_ADDR:
        return convert_addr(s, got, field, msg, mlen);
    case SL__T_CIDR:
        return convert_cidr(s, got, field, msg, mlen);
    default:
        snprintf(msg, mlen, "wrong type (expected %s, got %s)", sl__cfg_expected(k), got);
        return false;
    }
}
