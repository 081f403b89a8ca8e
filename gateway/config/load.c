/*
 * gateway/config/load.c: the YAML tree -> sl_config_t, by walking the schema
 * tables.
 *
 * One generic walker serves every mapping: it looks each key up in the
 * mapping's table, checks the node kind, and hands scalars to scalar.c,
 * which parses, checks the bounds and stores the value at the key's offset. Every
 * problem becomes one error line with the file, line, column and key path,
 * and the walk goes on, so one run reports everything wrong with a file.
 * Errors are collected with their positions and sorted at the end, so the
 * report reads in file order even though "missing key" is only known when a
 * mapping ends and cross-key rules (validate.c) run last.
 */
#include <ctype.h>
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

void sl__cfg_mark_bad(sl__cfg_ctx_t *c, const void *item)
{
    if (c->n_bad == c->cap_bad) {
        size_t cap = c->cap_bad ? c->cap_bad * 2 : 4;
        const void **b = realloc(c->bad, cap * sizeof *b);
        if (b == NULL)
            return;
        c->bad = b;
        c->cap_bad = cap;
    }
    c->bad[c->n_bad++] = item;
}

bool sl__cfg_is_bad(const sl__cfg_ctx_t *c, const void *item)
{
    for (size_t i = 0; i < c->n_bad; i++)
        if (c->bad[i] == item)
            return true;
    return false;
}

sl_cfg_pos_t sl__cfg_where(const sl__cfg_ctx_t *c, const void *field)
{
    for (size_t i = c->n_where; i-- > 0;) {
        if (c->where[i].field == field)
            return (sl_cfg_pos_t){.line = c->where[i].line, .col = c->where[i].col};
    }
    return (sl_cfg_pos_t){0, 0};
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
        else if (k->def != NULL && !sl__cfg_convert(k, k->def, strlen(k->def), field, msg, sizeof msg))
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
            sl__cfg_free_addr(field);
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
    free(cfg->where);
    free(cfg);
}

sl_cfg_pos_t sl_config_where(const sl_config_t *cfg, const void *field, sl_cfg_pos_t fallback)
{
    for (size_t i = cfg->n_where; i-- > 0;)
        if (cfg->where[i].field == field)
            return (sl_cfg_pos_t){.line = cfg->where[i].line, .col = cfg->where[i].col};
    return fallback;
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
    /* Names from the file (pool names) are stripped of control bytes; an
       empty one is shown as "" rather than as nothing after the dot. */
    sl__quote(q, sizeof q, name, n, 60);
    if (n > 0) {
        q[strlen(q) - 1] = '\0';
        pathf(out, "%s%s%s", path, *path ? "." : "", q + 1);
    } else {
        pathf(out, "%s%s%s", path, *path ? "." : "", q);
    }
}

static void wrong_kind(sl__cfg_ctx_t *c, const sl__ckey_t *k, const sl__ynode_t *v,
                       const char *path)
{
    char got[96];
    sl__ydescribe(v, got, sizeof got);
    sl__cfg_error(c, v->line, v->col, path, "wrong type (expected %s, got %s)", sl__cfg_expected(k),
                  got);
}

/* Allocate an array of n items for a sequence key; false (reported) when empty. */
static void *alloc_items(sl__cfg_ctx_t *c, const sl__ckey_t *k, void *obj, const sl__ynode_t *v,
                         size_t n, const char *path)
{
    if (n == 0) {
        if (k->flags & SL__F_NONEMPTY)
            sl__cfg_error(c, v->line, v->col, path, "must not be empty (expected %s)",
                          sl__cfg_expected(k));
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
            if (item->bad)
                continue;   /* an alias or a bad tag: reported where it was read */
            if (item->kind != SL__Y_MAP) {
                char got[96];
                sl__ydescribe(item, got, sizeof got);
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
        if (item->bad)
            continue;
        if (item->kind != SL__Y_SCALAR || sl__ynode_is_null(item)) {
            wrong_kind(c, &one, item, ipath);
            continue;
        }
        if (!sl__cfg_convert(&one, item->str, item->len, slot, msg, sizeof msg))
            sl__cfg_error(c, item->line, item->col, ipath, "%s", msg);
        else
            remember(c, slot, item);
    }
}

/* The first key of a mapping spelled as its i-th key is (i even). */
static const sl__ynode_t *first_name(const sl__ynode_t *map, size_t i)
{
    const sl__ynode_t *name = map->kids[i];
    for (size_t j = 0; j < i; j += 2) {
        const sl__ynode_t *k = map->kids[j];
        if (!k->bad && k->kind == SL__Y_SCALAR && strcmp(k->str, name->str) == 0)
            return k;
    }
    return name;
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
        if (name->bad)
            continue;
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
            const sl__ynode_t *first = first_name(v, i);
            sl__cfg_error(c, name->line, name->col, npath, "duplicate %s name (first at %u:%u)",
                          k->sub->what, first->line, first->col);
            continue;
        }
        void *slot = items + *count * k->width;
        char *copy = strdup(name->str);
        if (copy == NULL)
            continue;
        sl__cfg_defaults(c, k->sub, slot);
        *(char **)((char *)slot + k->sub->name_off) = copy;
        (*count)++;
        if (k->sub->pos_off != SIZE_MAX)
            *(sl_cfg_pos_t *)((char *)slot + k->sub->pos_off) =
                (sl_cfg_pos_t){.line = name->line, .col = name->col};
        if (val->bad) {
            sl__cfg_mark_bad(c, slot);   /* `blue: *defaults`: the name still resolves */
            continue;
        }
        if (sl__ynode_is_null(val)) {
            /* `green:` with nothing under it reads as an empty mapping. */
            sl__ynode_t empty = {.kind = SL__Y_MAP, .line = name->line, .col = name->col};
            walk_map(c, k->sub, slot, &empty, npath);
            continue;
        }
        if (val->kind != SL__Y_MAP) {
            char got[96];
            sl__ydescribe(val, got, sizeof got);
            sl__cfg_error(c, val->line, val->col, npath, "wrong type (expected a %s mapping, got %s)",
                          k->sub->what, got);
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
    if (v->bad)
        return;   /* an alias or a bad tag: reported where it was read */
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
        if (k->flags & SL__F_PRESENT) {
            *(bool *)((char *)obj + k->present_off) = true;
            remember(c, (char *)obj + k->present_off, key);   /* where the mapping's key is */
        }
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
    if (!sl__cfg_convert(k, v->str, v->len, field, msg, sizeof msg)) {
        sl__cfg_error(c, v->line, v->col, path, "%s", msg);
        return;
    }
    remember(c, field, v);
}

/* The table's key nearest to `name` (edit distance under 3, case ignored), or NULL. */
static const char *near_miss(const sl__ctable_t *t, const char *name, size_t n)
{
    char lower[48];
    const char *best = NULL;
    unsigned best_d = 3;
    if (n >= sizeof lower)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    for (size_t i = 0; i < t->n_keys; i++) {
        unsigned d = sl__edit_distance(lower, t->keys[i].name);
        if (d < best_d) {
            best_d = d;
            best = t->keys[i].name;
        }
    }
    return best;
}

/*
 * "did you mean" for a key a level too high (`rate` straight under a
 * service): the mappings of this table that have a key of that name,
 * as "admission.rate" or "drain.rate".
 */
static void one_level_down(const sl__ctable_t *t, const char *name, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < t->n_keys && o < len; i++) {
        const sl__ckey_t *k = &t->keys[i];
        if (k->type != SL__T_MAP)
            continue;
        for (size_t j = 0; j < k->sub->n_keys; j++) {
            if (strcmp(k->sub->keys[j].name, name) != 0)
                continue;
            int w = snprintf(buf + o, len - o, "%s\"%s.%s\"", o ? " or " : "", k->name, name);
            if (w > 0)
                o += (size_t)w;
        }
    }
}

static void unknown_key(sl__cfg_ctx_t *c, const sl__ctable_t *t, const sl__ynode_t *key,
                        const char *path)
{
    char q[96], deeper[160];
    const char *best = near_miss(t, key->str, key->len);
    sl__quote(q, sizeof q, key->str, key->len, 60);
    if (best == NULL)
        one_level_down(t, key->str, deeper, sizeof deeper);
    if (best != NULL)
        sl__cfg_error(c, key->line, key->col, path, "unknown key %s (did you mean \"%s\"?)", q, best);
    else if (deeper[0] != '\0')
        sl__cfg_error(c, key->line, key->col, path, "unknown key %s here (did you mean %s?)", q,
                      deeper);
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
        if (key->bad)
            continue;   /* `<<`, `*a` or a bad tag: reported where it was read */
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
            sl__cfg_error(c, key->line, key->col, kpath, "duplicate key (first at %u:%u)",
                          seen[ki]->line, seen[ki]->col);
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
    free(l->ctx.bad);
}

int sl_config_parse(const char *text, size_t len, const char *file, sl_config_t **out,
                    sl_diag_t *diag)
{
    bool ok;
    *out = NULL;
    if (file == NULL)
        file = "config";
    loader_t l = {.ctx = {.file = file, .diag = diag}};
    sl__ynode_t *root = sl__yaml_load(text, len, &l.ctx, &ok);
    if (!ok) {
        flush_errors(&l, diag);
        return SL_EINVAL;
    }
    sl_config_t *cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL || (cfg->file = strdup(file)) == NULL) {
        free(cfg);
        sl__ynode_free(root);
        flush_errors(&l, diag);
        sl__diag_add(diag, "%s: out of memory", file);
        return SL_ENOMEM;
    }
    sl__cfg_defaults(&l.ctx, &sl__root_table, cfg);
    if (root != NULL && root->bad) {
        /* `*a` or `!tag {...}` at the top: reported; nothing to walk. */
    } else if (root != NULL && root->kind == SL__Y_MAP) {
        walk_map(&l.ctx, &sl__root_table, cfg, root, "");
    } else if (root != NULL && !sl__ynode_is_null(root)) {
        char got[96];
        sl__ydescribe(root, got, sizeof got);
        sl__cfg_error(&l.ctx, root->line, root->col, "",
                      "expected a mapping of settings at the top level, got %s", got);
    } else {
        sl__ynode_t empty = {.kind = SL__Y_MAP, .line = 1, .col = 1};
        walk_map(&l.ctx, &sl__root_table, cfg, &empty, "");
    }
    sl__ynode_free(root);
    sl__cfg_validate(&l.ctx, cfg);
    size_t errors = l.ctx.errors;
    cfg->where = l.ctx.where;   /* the config keeps the record (sl_config_where) */
    cfg->n_where = l.ctx.n_where;
    l.ctx.where = NULL;
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

bool sl_config_service_uses(const sl_cfg_service_t *s, size_t pool)
{
    for (size_t k = 0; k < s->n_pools; k++)
        if (s->pools[k] == pool)
            return true;
    return false;
}

/* ---- run-time changes ------------------------------------------------------------ */

int sl_config_set_backends(sl_config_t *cfg, size_t pool, const sl_cfg_backend_spec_t *b,
                           size_t n, char *err, size_t errlen)
{
    if (pool >= cfg->n_pools || n == 0 || n > 256) {
        snprintf(err, errlen, n == 0 ? "a pool needs at least one backend"
                                     : "expected 1..256 backends");
        return SL_EINVAL;
    }
    sl_cfg_backend_t *nb = calloc(n, sizeof *nb);
    if (nb == NULL)
        return SL_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char *host = NULL;
        uint16_t port = 0;
        if (sl_parse_hostport(b[i].address, &host, &port) != 0 || port == 0 || b[i].weight > 1000) {
            snprintf(err, errlen, "backends[%zu]: bad address \"%s\" (expected IP:port, "
                     "[IPv6]:port or host:port, weight 0..1000)", i, b[i].address);
            for (size_t j = 0; j < i; j++)
                sl__cfg_free_addr(&nb[j].address);
            free(host);
            free(nb);
            return SL_EINVAL;
        }
        sl_cfg_addr_t addr = {.host = host, .port = port};   /* "[::1]" is "[0:0::1]" */
        for (size_t j = 0; j < i; j++) {
            if (sl__cfg_same_addr(&nb[j].address, &addr)) {
                snprintf(err, errlen, "backends[%zu]: duplicate address \"%s\"", i, b[i].address);
                for (size_t k = 0; k < i; k++)
                    sl__cfg_free_addr(&nb[k].address);
                free(host);
                free(nb);
                return SL_EINVAL;
            }
        }
        nb[i].address.text = strdup(b[i].address);
        nb[i].address.host = host;
        nb[i].address.port = port;
        nb[i].weight = b[i].weight;
        if (nb[i].address.text == NULL) {
            for (size_t j = 0; j <= i; j++)
                sl__cfg_free_addr(&nb[j].address);
            free(nb);
            return SL_ENOMEM;
        }
    }
    sl_cfg_pool_t *p = &cfg->pools[pool];
    for (size_t j = 0; j < p->n_backends; j++)
        sl__cfg_free_addr(&p->backends[j].address);
    free(p->backends);
    p->backends = nb;
    p->n_backends = n;
    return 0;
}
