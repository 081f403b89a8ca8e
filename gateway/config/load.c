/*
 * gateway/config/load.c: the YAML tree -> sl_config_t, by walking the schema
 * tables.
 *
 * One generic walker serves every mapping: it looks each key up in the
 * mapping's table, checks the node kind, converts the scalar with the type's
 * parser, checks the bounds and stores the value at the key's offset. Every
 * problem becomes one error line with the file, line, column and key path,
 * and the walk goes on, so one run reports everything wrong with a file.
 * Errors are collected with their positions and sorted at the end, so the
 * report reads in file order even though "missing key" is only known when a
 * mapping ends and cross-key rules (validate.c) run last.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum { PATH_MAX_LEN = 512, MSG_LEN = 640, MAX_FILE = 16 << 20 };

typedef struct cfg_err {
    uint32_t line, col;
    size_t seq;
    char *text;
} cfg_err_t;

/* The error list lives beside the context; see sl__cfg_error(). */
typedef struct errlist {
    cfg_err_t *v;
    size_t n, cap;
} errlist_t;

typedef struct loader {
    sl__cfg_ctx_t ctx;   /* first, so a context pointer is a loader pointer */
    errlist_t errs;
} loader_t;

void sl__cfg_error(sl__cfg_ctx_t *c, uint32_t line, uint32_t col, const char *path,
                   const char *fmt, ...)
{
    loader_t *l = (loader_t *)c;
    char msg[MSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->errors++;
    if (l->errs.n == l->errs.cap) {
        size_t cap = l->errs.cap ? l->errs.cap * 2 : 16;
        cfg_err_t *v = realloc(l->errs.v, cap * sizeof *v);
        if (v == NULL)
            return;
        l->errs.v = v;
        l->errs.cap = cap;
    }
    char *text = NULL;
    if (asprintf(&text, "%s:%u:%u: %s%s%s", c->file, line, col, path, *path ? ": " : "", msg) < 0)
        return;
    l->errs.v[l->errs.n] = (cfg_err_t){.line = line, .col = col, .seq = l->errs.n, .text = text};
    l->errs.n++;
}

static void remember(sl__cfg_ctx_t *c, const void *field, const sl__ynode_t *n)
{
    if (c->n_where == c->cap_where) {
        size_t cap = c->cap_where ? c->cap_where * 2 : 64;
        sl__cfg_where_t *w = realloc(c->where, cap * sizeof *w);
        if (w == NULL)
            return;
        c->where = w;
        c->cap_where = cap;
    }
    c->where[c->n_where++] = (sl__cfg_where_t){.field = field, .line = n->line, .col = n->col};
}

sl_cfg_pos_t sl__cfg_where(const sl__cfg_ctx_t *c, const void *field)
{
    for (size_t i = c->n_where; i-- > 0;) {
        if (c->where[i].field == field)
            return (sl_cfg_pos_t){.line = c->where[i].line, .col = c->where[i].col};
    }
    return (sl_cfg_pos_t){0, 0};
}

/* ---- describing nodes and types ------------------------------------------------ */

static void describe(const sl__ynode_t *n, char *buf, size_t len)
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

static void enum_list(const sl__ckey_t *k, bool implemented_only, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (unsigned i = 0; k->names[i] != NULL && o < len; i++) {
        if (implemented_only && (k->ni_values & (1u << i)))
            continue;
        int w = snprintf(buf + o, len - o, "%s%s", o ? ", " : "", k->names[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
}

static const char *expected_kind(const sl__ckey_t *k)
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

static void fmt_bound(const sl__ckey_t *k, double v, char *buf, size_t len)
{
    switch (k->type) {
    case SL__T_DURATION: sl__fmt_duration(buf, len, (sl_msec_t)v); break;
    case SL__T_SIZE: sl__fmt_size(buf, len, (uint64_t)v); break;
    case SL__T_RATE: sl__fmt_rate(buf, len, v); break;
    default: snprintf(buf, len, "%g", v); break;
    }
}

/* ---- scalars ---------------------------------------------------------------- */

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

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "on"};
    static const char *const no[] = {"false", "False", "FALSE", "no", "off"};
    for (size_t i = 0; i < SL_ARRAY_SIZE(yes); i++) {
        if (strcmp(s, yes[i]) == 0 || strcmp(s, no[i]) == 0) {
            *out = strcmp(s, yes[i]) == 0;
            return true;
        }
    }
    return false;
}

/* A plain decimal in [0, 1e12): "0.25", "3". */
static bool parse_number(const char *s, double *out)
{
    double r;
    if (sl_parse_rate(s, &r) == SL_OK)   /* refuse units: "0.5/s" is not a number */
        return false;
    char buf[64];
    if (snprintf(buf, sizeof buf, "%s/s", s) >= (int)sizeof buf)
        return false;
    if (sl_parse_rate(buf, &r) != SL_OK)
        return false;
    *out = r;
    return true;
}

static void free_addr(sl_cfg_addr_t *a)
{
    free(a->text);
    free(a->host);
    a->text = NULL;
    a->host = NULL;
}

/* Range check for numeric types; writes the message on failure. */
static bool in_bounds(const sl__ckey_t *k, double v, const char *got, char *msg, size_t mlen)
{
    if (v >= k->min && v <= k->max)
        return true;
    char lo[32], hi[32];
    fmt_bound(k, k->min, lo, sizeof lo);
    fmt_bound(k, k->max, hi, sizeof hi);
    snprintf(msg, mlen, "out of range (expected %s..%s, got %s)", lo, hi, got);
    return false;
}

/*
 * Convert scalar text for key k and store it in `field`. On failure writes
 * the message (without position and path) into msg and stores nothing.
 */
static bool convert(const sl__ckey_t *k, const char *s, size_t n, void *field, char *msg,
                    size_t mlen)
{
    char got[96];
    sl__quote(got, sizeof got, s, n, 60);
    switch (k->type) {
    case SL__T_BOOL: {
        bool b;
        if (!parse_bool(s, &b)) {
            snprintf(msg, mlen, "bad boolean (expected true or false, got %s)", got);
            return false;
        }
        *(bool *)field = b;
        return true;
    }
    case SL__T_UINT: {
        uint64_t v;
        if ((k->flags & SL__F_AUTO) && strcmp(s, "auto") == 0) {
            store_uint(field, k->width, 0);
            return true;
        }
        if (!parse_uint(s, &v)) {
            snprintf(msg, mlen, "bad number (expected %s, got %s)", expected_kind(k), got);
            return false;
        }
        if (!in_bounds(k, (double)v, s, msg, mlen))
            return false;
        store_uint(field, k->width, v);
        return true;
    }
    case SL__T_DURATION: {
        sl_msec_t v;
        if (sl_parse_duration(s, &v) != SL_OK) {
            snprintf(msg, mlen,
                     "bad duration (expected a number and unit like 250ms, 30s, 5m or 1h, got %s)",
                     got);
            return false;
        }
        if (!in_bounds(k, (double)v, s, msg, mlen))
            return false;
        *(sl_msec_t *)field = v;
        return true;
    }
    case SL__T_SIZE: {
        uint64_t v;
        if (sl_parse_size(s, &v) != SL_OK) {
            snprintf(msg, mlen, "bad size (expected bytes or a unit like 512, 16KiB or 1MiB, got %s)",
                     got);
            return false;
        }
        if (!in_bounds(k, (double)v, s, msg, mlen))
            return false;
        store_uint(field, k->width, v);
        return true;
    }
    case SL__T_RATE:
    case SL__T_NUMBER: {
        double v;
        bool ok = k->type == SL__T_RATE ? sl_parse_rate(s, &v) == SL_OK : parse_number(s, &v);
        if (!ok) {
            snprintf(msg, mlen, k->type == SL__T_RATE
                                    ? "bad rate (expected a number per unit like 500/s, got %s)"
                                    : "bad number (expected a decimal like 0.25, got %s)",
                     got);
            return false;
        }
        if (!in_bounds(k, v, s, msg, mlen))
            return false;
        *(double *)field = v;
        return true;
    }
    case SL__T_STRING: {
        char *copy = strdup(s);
        if (copy == NULL) {
            snprintf(msg, mlen, "out of memory");
            return false;
        }
        free(*(char **)field);
        *(char **)field = copy;
        return true;
    }
    case SL__T_ENUM:
        for (int i = 0; k->names[i] != NULL; i++) {
            if (strcmp(s, k->names[i]) != 0)
                continue;
            if (k->ni_values & (1u << i)) {
                char list[160];
                enum_list(k, true, list, sizeof list);
                snprintf(msg, mlen, "%s is not implemented yet (expected one of %s)", got, list);
                return false;
            }
            *(int *)field = i;
            return true;
        }
        {
            char list[160];
            enum_list(k, true, list, sizeof list);
            snprintf(msg, mlen, "unknown value (expected one of %s, got %s)", list, got);
        }
        return false;
    case SL__T_ADDR:
    case SL__T_CIDR:
        break;
    default:
        snprintf(msg, mlen, "wrong type (expected %s, got %s)", expected_kind(k), got);
        return false;
    }
    if (k->type == SL__T_CIDR) {
        sl_cfg_cidr_t c;
        if (sl_parse_cidr(s, &c) != SL_OK) {
            snprintf(msg, mlen,
                     "bad CIDR (expected an address or prefix like 10.0.0.0/8 or ::1/128, got %s)",
                     got);
            return false;
        }
        *(sl_cfg_cidr_t *)field = c;
        return true;
    }
    sl_cfg_addr_t *a = field;
    char *host = NULL, *text = NULL;
    uint16_t port;
    if (sl_parse_hostport(s, &host, &port) != SL_OK || (text = strdup(s)) == NULL) {
        free(host);
        snprintf(msg, mlen, "bad address (expected IP:port, [IPv6]:port or host:port, got %s)",
                 got);
        return false;
    }
    free_addr(a);
    a->text = text;
    a->host = host;
    a->port = port;
    return true;
}

/* ---- defaults and freeing ------------------------------------------------------- */

void sl__cfg_defaults(sl__cfg_ctx_t *c, const sl__ctable_t *t, void *obj)
{
    char msg[MSG_LEN];
    for (size_t i = 0; i < t->n_keys; i++) {
        const sl__ckey_t *k = &t->keys[i];
        void *field = (char *)obj + k->off;
        if (k->type == SL__T_MAP)
            sl__cfg_defaults(c, k->sub, field);
        else if (k->def != NULL && !convert(k, k->def, strlen(k->def), field, msg, sizeof msg))
            sl__cfg_error(c, 0, 0, k->name, "bad default in the schema: %s", msg);
    }
}

static void free_obj(const sl__ctable_t *t, void *obj)
{
    if (t->name_off != SIZE_MAX)
        free(*(char **)((char *)obj + t->name_off));
    for (size_t i = 0; i < t->n_keys; i++) {
        const sl__ckey_t *k = &t->keys[i];
        void *field = (char *)obj + k->off;
        size_t count = k->count_off ? *(size_t *)((char *)obj + k->count_off) : 0;
        switch (k->type) {
        case SL__T_STRING:
            free(*(char **)field);
            break;
        case SL__T_ADDR:
            free_addr(field);
            break;
        case SL__T_MAP:
            free_obj(k->sub, field);
            break;
        case SL__T_SEQ_MAP:
        case SL__T_NAMED_MAP:
            for (size_t j = 0; j < count; j++)
                free_obj(k->sub, *(char **)field + j * k->width);
            free(*(void **)field);
            break;
        case SL__T_SEQ_STR:
            for (size_t j = 0; j < count; j++)
                free((*(char ***)field)[j]);
            free(*(void **)field);
            break;
        case SL__T_SEQ_CIDR:
            free(*(void **)field);
            break;
        default:
            break;
        }
    }
}

void sl_config_free(sl_config_t *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->n_services; i++)
        free(cfg->services[i].pools);
    free_obj(&sl__root_table, cfg);
    free(cfg->file);
    free(cfg);
}

/* ---- the walk ------------------------------------------------------------------ */

static void walk_map(sl__cfg_ctx_t *c, const sl__ctable_t *t, void *obj, const sl__ynode_t *map,
                     const char *path);

/* Format a key path into a PATH_MAX_LEN buffer; a too-long path is cut. */
__attribute__((format(printf, 2, 3))) static void pathf(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, PATH_MAX_LEN, fmt, ap);
    va_end(ap);
}

static void join(char *out, const char *path, const char *name, size_t n)
{
    char q[96];
    /* Names from the file (pool names) are stripped of control bytes. */
    sl__quote(q, sizeof q, name, n, 60);
    q[strlen(q) - 1] = '\0';
    pathf(out, "%s%s%s", path, *path ? "." : "", q + 1);
}

static void wrong_kind(sl__cfg_ctx_t *c, const sl__ckey_t *k, const sl__ynode_t *v,
                       const char *path)
{
    char got[96];
    describe(v, got, sizeof got);
    sl__cfg_error(c, v->line, v->col, path, "wrong type (expected %s, got %s)", expected_kind(k),
                  got);
}

/* Allocate an array of n items for a sequence key; false (reported) when empty. */
static void *alloc_items(sl__cfg_ctx_t *c, const sl__ckey_t *k, void *obj, const sl__ynode_t *v,
                         size_t n, const char *path)
{
    if (n == 0) {
        if (k->flags & SL__F_NONEMPTY)
            sl__cfg_error(c, v->line, v->col, path, "must not be empty (expected %s)",
                          expected_kind(k));
        return NULL;
    }
    void *items = calloc(n, k->width);
    if (items == NULL) {
        sl__cfg_error(c, v->line, v->col, path, "out of memory");
        return NULL;
    }
    *(void **)((char *)obj + k->off) = items;
    return items;
}

static void walk_seq(sl__cfg_ctx_t *c, const sl__ckey_t *k, void *obj, const sl__ynode_t *v,
                     const char *path)
{
    char *items = alloc_items(c, k, obj, v, v->n, path);
    size_t *count = (size_t *)((char *)obj + k->count_off);
    char msg[MSG_LEN], ipath[PATH_MAX_LEN];
    if (items == NULL)
        return;
    for (size_t i = 0; i < v->n; i++) {
        const sl__ynode_t *item = v->kids[i];
        void *slot = items + i * k->width;
        pathf(ipath, "%s[%zu]", path, i);
        *count = i + 1;
        if (k->type == SL__T_SEQ_MAP) {
            sl__cfg_defaults(c, k->sub, slot);
            if (item->kind != SL__Y_MAP) {
                char got[96];
                describe(item, got, sizeof got);
                sl__cfg_error(c, item->line, item->col, ipath, "wrong type (expected a %s mapping, got %s)",
                              k->sub->what, got);
            } else {
                walk_map(c, k->sub, slot, item, ipath);
            }
            continue;
        }
        /* Sequences of scalars: names or CIDRs. */
        sl__ckey_t one = {.name = k->name, .type = k->type == SL__T_SEQ_STR ? SL__T_STRING : SL__T_CIDR,
                          .width = k->width};
        if (item->kind != SL__Y_SCALAR || sl__ynode_is_null(item)) {
            wrong_kind(c, &one, item, ipath);
            continue;
        }
        if (!convert(&one, item->str, item->len, slot, msg, sizeof msg))
            sl__cfg_error(c, item->line, item->col, ipath, "%s", msg);
        else
            remember(c, slot, item);
    }
}

static void walk_named(sl__cfg_ctx_t *c, const sl__ckey_t *k, void *obj, const sl__ynode_t *v,
                       const char *path)
{
    char *items = alloc_items(c, k, obj, v, v->n / 2, path);
    size_t *count = (size_t *)((char *)obj + k->count_off);
    char npath[PATH_MAX_LEN];
    if (items == NULL)
        return;
    for (size_t i = 0; i + 1 < v->n; i += 2) {
        const sl__ynode_t *name = v->kids[i], *val = v->kids[i + 1];
        if (name->kind != SL__Y_SCALAR || name->len == 0) {
            sl__cfg_error(c, name->line, name->col, path, "a %s name must be a non-empty string",
                          k->sub->what);
            continue;
        }
        join(npath, path, name->str, name->len);
        bool dup = false;
        for (size_t j = 0; j < *count && !dup; j++) {
            const char *other = *(char **)(items + j * k->width + k->sub->name_off);
            dup = strcmp(other, name->str) == 0;
        }
        if (dup) {
            sl__cfg_error(c, name->line, name->col, npath, "duplicate %s name", k->sub->what);
            continue;
        }
        void *slot = items + *count * k->width;
        char *copy = strdup(name->str);
        if (copy == NULL)
            continue;
        sl__cfg_defaults(c, k->sub, slot);
        *(char **)((char *)slot + k->sub->name_off) = copy;
        (*count)++;
        if (sl__ynode_is_null(val)) {
            /* `green:` with nothing under it reads as an empty mapping. */
            sl__ynode_t empty = {.kind = SL__Y_MAP, .line = name->line, .col = name->col};
            walk_map(c, k->sub, slot, &empty, npath);
            continue;
        }
        if (val->kind != SL__Y_MAP) {
            char got[96];
            describe(val, got, sizeof got);
            sl__cfg_error(c, val->line, val->col, npath, "wrong type (expected a %s mapping, got %s)",
                          k->sub->what, got);
            if (k->sub->pos_off != SIZE_MAX)
                *(sl_cfg_pos_t *)((char *)slot + k->sub->pos_off) =
                    (sl_cfg_pos_t){.line = name->line, .col = name->col};
            continue;
        }
        walk_map(c, k->sub, slot, val, npath);
    }
}

/* Store the value node `v` of key k (written at `key`) into obj. */
static void set_value(sl__cfg_ctx_t *c, const sl__ckey_t *k, void *obj, const sl__ynode_t *key,
                      const sl__ynode_t *v, const char *path)
{
    void *field = (char *)obj + k->off;
    char msg[MSG_LEN];
    if ((k->flags & SL__F_NULLABLE) && sl__ynode_is_null(v))
        return;
    if (k->flags & SL__F_NOT_IMPLEMENTED) {
        sl__cfg_error(c, key->line, key->col, path, "not implemented yet");
        return;
    }
    if ((k->flags & SL__F_OFF) && v->kind == SL__Y_SCALAR &&
        (strcmp(v->str, "off") == 0 || strcmp(v->str, "false") == 0)) {
        *(bool *)((char *)obj + k->present_off) = false;
        remember(c, (char *)obj + k->present_off, v);
        return;
    }
    switch (k->type) {
    case SL__T_MAP:
        if (v->kind != SL__Y_MAP) {
            wrong_kind(c, k, v, path);
            return;
        }
        if (k->flags & SL__F_PRESENT)
            *(bool *)((char *)obj + k->present_off) = true;
        walk_map(c, k->sub, field, v, path);
        return;
    case SL__T_SEQ_MAP:
    case SL__T_SEQ_STR:
    case SL__T_SEQ_CIDR:
        if (v->kind != SL__Y_SEQ)
            wrong_kind(c, k, v, path);
        else
            walk_seq(c, k, obj, v, path);
        return;
    case SL__T_NAMED_MAP:
        if (v->kind != SL__Y_MAP)
            wrong_kind(c, k, v, path);
        else
            walk_named(c, k, obj, v, path);
        return;
    default:
        break;
    }
    if (v->kind != SL__Y_SCALAR || sl__ynode_is_null(v)) {
        wrong_kind(c, k, v, path);
        return;
    }
    if (!convert(k, v->str, v->len, field, msg, sizeof msg)) {
        sl__cfg_error(c, v->line, v->col, path, "%s", msg);
        return;
    }
    remember(c, field, v);
}

static void unknown_key(sl__cfg_ctx_t *c, const sl__ctable_t *t, const sl__ynode_t *key,
                        const char *path)
{
    char q[96];
    const char *best = NULL;
    unsigned best_d = 3;
    for (size_t i = 0; i < t->n_keys; i++) {
        unsigned d = sl__edit_distance(key->str, t->keys[i].name);
        if (d < best_d) {
            best_d = d;
            best = t->keys[i].name;
        }
    }
    sl__quote(q, sizeof q, key->str, key->len, 60);
    if (best != NULL)
        sl__cfg_error(c, key->line, key->col, path, "unknown key %s (did you mean \"%s\"?)", q, best);
    else
        sl__cfg_error(c, key->line, key->col, path, "unknown key %s", q);
}

static void walk_map(sl__cfg_ctx_t *c, const sl__ctable_t *t, void *obj, const sl__ynode_t *map,
                     const char *path)
{
    const sl__ynode_t *seen[SL__MAX_KEYS] = {0};
    char kpath[PATH_MAX_LEN];
    if (t->pos_off != SIZE_MAX)
        *(sl_cfg_pos_t *)((char *)obj + t->pos_off) = (sl_cfg_pos_t){map->line, map->col};
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const sl__ynode_t *key = map->kids[i], *v = map->kids[i + 1];
        if (key->kind != SL__Y_SCALAR) {
            sl__cfg_error(c, key->line, key->col, path, "keys must be plain names, not %s",
                          key->kind == SL__Y_MAP ? "mappings" : "sequences");
            continue;
        }
        size_t ki = 0;
        while (ki < t->n_keys && strcmp(t->keys[ki].name, key->str) != 0)
            ki++;
        join(kpath, path, key->str, key->len);
        if (ki == t->n_keys) {
            unknown_key(c, t, key, kpath);
            continue;
        }
        if (seen[ki] != NULL) {
            sl__cfg_error(c, key->line, key->col, kpath, "duplicate key (first at line %u)",
                          seen[ki]->line);
            continue;
        }
        seen[ki] = key;
        set_value(c, &t->keys[ki], obj, key, v, kpath);
    }
    for (size_t ki = 0; ki < t->n_keys; ki++) {
        if ((t->keys[ki].flags & SL__F_REQUIRED) && seen[ki] == NULL)
            sl__cfg_error(c, map->line, map->col, path, "missing required key \"%s\"",
                          t->keys[ki].name);
    }
}

/* ---- entry points --------------------------------------------------------------- */

static int cmp_err(const void *a, const void *b)
{
    const cfg_err_t *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void flush_errors(loader_t *l, sl_diag_t *diag)
{
    if (l->errs.n > 1)
        qsort(l->errs.v, l->errs.n, sizeof *l->errs.v, cmp_err);
    for (size_t i = 0; i < l->errs.n; i++) {
        sl__diag_add(diag, "%s", l->errs.v[i].text);
        free(l->errs.v[i].text);
    }
    free(l->errs.v);
    free(l->ctx.where);
}

int sl_config_parse(const char *text, size_t len, const char *file, sl_config_t **out,
                    sl_diag_t *diag)
{
    bool ok;
    *out = NULL;
    if (file == NULL)
        file = "config";
    sl__ynode_t *root = sl__yaml_load(text, len, file, diag, &ok);
    if (!ok)
        return SL_EINVAL;
    loader_t l = {.ctx = {.file = file, .diag = diag}};
    sl_config_t *cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL || (cfg->file = strdup(file)) == NULL) {
        free(cfg);
        sl__ynode_free(root);
        sl__diag_add(diag, "%s: out of memory", file);
        return SL_ENOMEM;
    }
    sl__cfg_defaults(&l.ctx, &sl__root_table, cfg);
    if (root != NULL && root->kind == SL__Y_MAP) {
        walk_map(&l.ctx, &sl__root_table, cfg, root, "");
    } else if (root != NULL && !sl__ynode_is_null(root)) {
        char got[96];
        describe(root, got, sizeof got);
        sl__cfg_error(&l.ctx, root->line, root->col, "",
                      "expected a mapping of settings at the top level, got %s", got);
    } else {
        sl__ynode_t empty = {.kind = SL__Y_MAP, .line = 1, .col = 1};
        walk_map(&l.ctx, &sl__root_table, cfg, &empty, "");
    }
    sl__ynode_free(root);
    sl__cfg_validate(&l.ctx, cfg);
    size_t errors = l.ctx.errors;
    flush_errors(&l, diag);
    if (errors > 0) {
        sl_config_free(cfg);
        return SL_EINVAL;
    }
    *out = cfg;
    return SL_OK;
}

int sl_config_load(const char *path, sl_config_t **out, sl_diag_t *diag)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        sl__diag_add(diag, "%s: cannot read: %s", path, strerror(errno));
        return SL_EINVAL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    int err = 0;
    while (buf != NULL) {
        if (n == cap) {
            char *b = cap >= MAX_FILE ? NULL : realloc(buf, cap * 2);
            if (b == NULL) {
                err = EFBIG;
                break;
            }
            buf = b;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            if (ferror(f))
                err = errno ? errno : EIO;
            break;
        }
    }
    fclose(f);
    if (buf == NULL || err != 0) {
        free(buf);
        sl__diag_add(diag, "%s: cannot read: %s", path, strerror(buf == NULL ? ENOMEM : err));
        return SL_EINVAL;
    }
    int rc = sl_config_parse(buf, n, path, out, diag);
    free(buf);
    return rc;
}

const sl_cfg_pool_t *sl_config_pool(const sl_config_t *cfg, const char *name)
{
    long i = sl_config_pool_index(cfg, name);
    return i < 0 ? NULL : &cfg->pools[i];
}

long sl_config_pool_index(const sl_config_t *cfg, const char *name)
{
    if (cfg == NULL || name == NULL)
        return -1;
    for (size_t i = 0; i < cfg->n_pools; i++) {
        if (strcmp(cfg->pools[i].name, name) == 0)
            return (long)i;
    }
    return -1;
}

const sl_cfg_service_t *sl_config_service(const sl_config_t *cfg, const char *name)
{
    if (cfg == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < cfg->n_services; i++) {
        if (strcmp(cfg->services[i].name, name) == 0)
            return &cfg->services[i];
    }
    return NULL;
}
