/*
 * gateway/config/yamltree.c: libyaml events -> a small node tree with
 * positions.
 *
 * Why our own tree rather than libyaml's document API: the document loader
 * resolves aliases into shared nodes, which lets a ten-line file expand into
 * millions of nodes ("billion laughs") or even form a cycle (`&a [*a]`). A
 * configuration has no use for aliases, so the tree refuses them, and it
 * bounds nesting depth so the walkers that recurse over it can never run the
 * stack out. Every node keeps libyaml's start mark, made 1-based.
 *
 * A syntax error stops the parse (libyaml cannot go on after one); an alias,
 * a merge key or a tag the config has no meaning for does not: it is
 * reported, its node is marked `bad` for the walker to pass over, and the
 * rest of the file is still read, so one run reports every such error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "internal.h"

enum { MAX_DEPTH = 32 };

void sl__ynode_free(sl__ynode_t *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->n; i++)
        sl__ynode_free(n->kids[i]);
    free(n->kids);
    free(n->str);
    free(n);
}

bool sl__ynode_is_null(const sl__ynode_t *n)
{
    if (n == NULL)
        return true;
    if (n->kind != SL__Y_SCALAR || !n->plain)
        return false;
    return n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
           strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0;
}

static sl__ynode_t *node_new(sl__ykind_t kind, const yaml_mark_t *m)
{
    sl__ynode_t *n = calloc(1, sizeof *n);
    if (n == NULL)
        return NULL;
    n->kind = kind;
    n->line = (uint32_t)m->line + 1;
    n->col = (uint32_t)m->column + 1;
    return n;
}

static bool add_kid(sl__ynode_t *parent, sl__ynode_t *kid)
{
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 4;
        sl__ynode_t **k = realloc(parent->kids, cap * sizeof *k);
        if (k == NULL)
            return false;
        parent->kids = k;
        parent->cap = cap;
    }
    parent->kids[parent->n++] = kid;
    return true;
}

typedef struct builder {
    sl__cfg_ctx_t *ctx;
    const char *text;
    size_t len;
    sl__ynode_t *root;
    sl__ynode_t *stack[MAX_DEPTH];
    size_t depth;
    int documents;
    bool merge_value;            /* the next node is the value of a `<<` key */
    size_t quiet;                /* inside a merge value (depth > 0): nothing more to report */
} builder_t;

static void fail_at(builder_t *b, const yaml_mark_t *m, const char *msg)
{
    sl__cfg_error(b->ctx, (uint32_t)m->line + 1, (uint32_t)m->column + 1, "", "%s", msg);
}

/* The length of the line break at s (CR LF, CR, LF, NEL, LS, PS), or 0:
   libyaml counts all of them as breaks, so positions must too. */
static size_t line_break(const unsigned char *s, size_t n)
{
    if (n >= 2 && s[0] == '\r' && s[1] == '\n')
        return 2;
    if (s[0] == '\r' || s[0] == '\n')
        return 1;
    if (n >= 2 && s[0] == 0xC2 && s[1] == 0x85)
        return 2;
    if (n >= 3 && s[0] == 0xE2 && s[1] == 0x80 && (s[2] == 0xA8 || s[2] == 0xA9))
        return 3;
    return 0;
}

/*
 * Byte offset -> 1-based line and column, counted the way libyaml's marks
 * count: characters (UTF-8 continuation bytes do not add to the column),
 * every kind of line break, and no column for a byte order mark.
 */
static void position_of(const char *text, size_t len, size_t off, size_t *line, size_t *col)
{
    const unsigned char *t = (const unsigned char *)text;
    size_t i = len >= 3 && memcmp(t, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    *line = 1;
    *col = 1;
    while (i < off && i < len) {
        size_t br = line_break(t + i, len - i);
        if (br > 0 && i + br <= off) {
            (*line)++;
            *col = 1;
            i += br;
            continue;
        }
        if ((t[i] & 0xC0) != 0x80)
            (*col)++;
        i++;
    }
}

/* Attach a new node where the tree is being built; false on failure. */
static bool attach(builder_t *b, sl__ynode_t *n, const yaml_mark_t *m)
{
    if (b->depth == 0) {
        b->root = n;
    } else if (!add_kid(b->stack[b->depth - 1], n)) {
        sl__ynode_free(n);
        fail_at(b, m, "out of memory");
        return false;
    }
    if (n->kind != SL__Y_SCALAR) {
        if (b->depth == MAX_DEPTH) {
            fail_at(b, m, "syntax error: nested too deeply");
            return false;
        }
        b->stack[b->depth++] = n;
    }
    return true;
}

/* True when the node about to be attached is a mapping's key. */
static bool at_key(const builder_t *b)
{
    const sl__ynode_t *p = b->depth ? b->stack[b->depth - 1] : NULL;
    return p != NULL && p->kind == SL__Y_MAP && p->n % 2 == 0;
}

/*
 * `<<: *defaults` (YAML 1.1 merge keys) would copy keys in from elsewhere;
 * the config does not, so the key is refused once, and its value (an alias
 * or a mapping) is passed over without a second error of its own.
 */
static bool merge_key(builder_t *b, sl__ynode_t *n)
{
    if (b->quiet || !at_key(b) || !n->plain || strcmp(n->str, "<<") != 0)
        return false;
    sl__cfg_error(b->ctx, n->line, n->col, "",
                  "merge keys (<<) are not supported (expected the keys written out)");
    n->bad = true;
    b->merge_value = true;
    return true;
}

/*
 * Tags: the config gives none a meaning of its own. YAML's core ones are
 * taken at their word (`!!str 5` is the string "5", `!!str ~` is not null);
 * any other tag would be silently dropped, so it is refused, as is a core
 * tag on the wrong kind of node (`!!map 5`).
 */
static void check_tag(builder_t *b, const yaml_char_t *tag, sl__ynode_t *n)
{
    static const char core[] = "tag:yaml.org,2002:";
    static const char *const scalars[] = {"str", "int", "float", "bool", "null"};
    const char *t = (const char *)tag, *name = NULL;
    char shown[96], q[112];
    if (t == NULL || b->merge_value || b->quiet)
        return;
    if (strcmp(t, "!") == 0) {   /* the non-specific tag: a quoted-like string */
        n->plain = false;
        return;
    }
    if (strncmp(t, core, sizeof core - 1) == 0)
        name = t + sizeof core - 1;
    snprintf(shown, sizeof shown, "%s%s", name ? "!!" : "", name ? name : t);
    sl__quote(q, sizeof q, shown, strlen(shown), 60);
    bool known = false, fits = false;
    for (size_t i = 0; name != NULL && i < SL_ARRAY_SIZE(scalars); i++) {
        if (strcmp(name, scalars[i]) == 0) {
            known = true;
            fits = n->kind == SL__Y_SCALAR;
        }
    }
    if (name != NULL && (strcmp(name, "map") == 0 || strcmp(name, "seq") == 0)) {
        known = true;
        fits = n->kind == (strcmp(name, "map") == 0 ? SL__Y_MAP : SL__Y_SEQ);
    }
    if (!known) {
        sl__cfg_error(b->ctx, n->line, n->col, "", "unknown tag %s (expected no tag, or one of "
                      "YAML's own: !!str, !!int, !!float, !!bool, !!null, !!map, !!seq)", q);
        n->bad = true;
        return;
    }
    if (!fits) {
        sl__cfg_error(b->ctx, n->line, n->col, "", "tag %s on a %s (expected no tag)", q,
                      n->kind == SL__Y_MAP ? "mapping" : n->kind == SL__Y_SEQ ? "sequence"
                                                                              : "scalar");
        n->bad = true;
        return;
    }
    if (strcmp(name, "str") == 0)
        n->plain = false;
    if (strcmp(name, "null") == 0) {
        n->plain = true;
        if (!sl__ynode_is_null(n)) {
            sl__cfg_error(b->ctx, n->line, n->col, "",
                          "tag \"!!null\" on a value (expected nothing, ~ or null after it)");
            n->bad = true;
        }
    }
}

/* A node is attached: a merge key's value, whatever it is, goes with the key. */
static bool attach_checked(builder_t *b, sl__ynode_t *n, const yaml_mark_t *m,
                           const yaml_char_t *tag)
{
    bool merged = b->merge_value && !at_key(b);
    check_tag(b, tag, n);
    if (!merged)
        return attach(b, n, m);
    n->bad = true;
    b->merge_value = false;
    if (!attach(b, n, m))
        return false;
    if (n->kind != SL__Y_SCALAR && b->quiet == 0)
        b->quiet = b->depth;   /* `<<: [*a, *b]`: the key's error says it all */
    return true;
}

static bool scalar(builder_t *b, const yaml_event_t *ev)
{
    const yaml_mark_t *m = &ev->start_mark;
    size_t len = ev->data.scalar.length;
    if (memchr(ev->data.scalar.value, '\0', len) != NULL) {
        fail_at(b, m, "syntax error: a NUL character in a value");
        return false;
    }
    sl__ynode_t *n = node_new(SL__Y_SCALAR, m);
    char *s = malloc(len + 1);
    if (n == NULL || s == NULL) {
        free(n);
        free(s);
        fail_at(b, m, "out of memory");
        return false;
    }
    memcpy(s, ev->data.scalar.value, len);
    s[len] = '\0';
    n->str = s;
    n->len = len;
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    if (merge_key(b, n))
        return attach(b, n, m);
    return attach_checked(b, n, m, ev->data.scalar.tag);
}

/* `*name`: refused, and stands in the tree as a bad empty scalar. */
static bool alias(builder_t *b, const yaml_event_t *ev)
{
    const yaml_mark_t *m = &ev->start_mark;
    sl__ynode_t *n = node_new(SL__Y_SCALAR, m);
    char *s = calloc(1, 1);
    if (n == NULL || s == NULL) {
        free(n);
        free(s);
        fail_at(b, m, "out of memory");
        return false;
    }
    n->str = s;
    n->bad = true;
    if ((!b->merge_value || at_key(b)) && b->quiet == 0)
        fail_at(b, m, "syntax error: aliases (*name) are not supported");
    return attach_checked(b, n, m, NULL);
}

/* Handle one event; false stops the parse (an error has been reported). */
static bool step(builder_t *b, const yaml_event_t *ev, bool *done)
{
    const yaml_mark_t *m = &ev->start_mark;
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->documents > 1) {
            fail_at(b, m, "syntax error: only one YAML document is allowed");
            return false;
        }
        return true;
    case YAML_ALIAS_EVENT:
        return alias(b, ev);
    case YAML_SCALAR_EVENT:
        return scalar(b, ev);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        bool map = ev->type == YAML_MAPPING_START_EVENT;
        sl__ynode_t *n = node_new(map ? SL__Y_MAP : SL__Y_SEQ, m);
        if (n == NULL) {
            fail_at(b, m, "out of memory");
            return false;
        }
        return attach_checked(b, n, m, map ? ev->data.mapping_start.tag
                                           : ev->data.sequence_start.tag);
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (b->depth > 0)
            b->depth--;
        if (b->depth < b->quiet)
            b->quiet = 0;
        return true;
    case YAML_STREAM_END_EVENT:
        *done = true;
        return true;
    default:
        return true;
    }
}

/*
 * A reader error (bad UTF-8, a control character) leaves problem_mark unset
 * (it read 1:1 whatever the byte); libyaml gives the byte offset instead. A
 * sequence cut short by a byte that cannot continue it is reported at the
 * byte that began it, which is the one to fix (a Latin-1 "é" in "café"),
 * not at the innocent byte after it.
 */
static void reader_error(builder_t *b, const yaml_parser_t *p)
{
    const unsigned char *t = (const unsigned char *)b->text;
    size_t off = SL_MIN(p->problem_offset, b->len), line, col;
    int value = p->problem_value;
    const char *problem = p->problem ? p->problem : "unreadable input";
    if (p->problem && strcmp(p->problem, "invalid trailing UTF-8 octet") == 0) {
        while (off > 0 && (t[off - 1] & 0xC0) == 0x80)
            off--;
        if (off > 0)
            off--;
        value = t[off];
        problem = "invalid UTF-8 sequence starting with this byte";
    }
    position_of(b->text, b->len, off, &line, &col);
    char v[32] = "";
    if (value >= 0)
        snprintf(v, sizeof v, " (0x%02X)", (unsigned)value);
    sl__cfg_error(b->ctx, (uint32_t)line, (uint32_t)col, "", "syntax error: %s%s (expected UTF-8 text)",
                  problem, v);
}

/* Line and column (1-based, counted as position_of counts) -> byte offset,
   or len when the file has no such place. */
static size_t offset_of(const char *text, size_t len, size_t line, size_t col)
{
    const unsigned char *t = (const unsigned char *)text;
    size_t i = len >= 3 && memcmp(t, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0, l = 1, c = 1;
    while (i < len && (l < line || c < col)) {
        size_t br = line_break(t + i, len - i);
        if (br > 0) {
            if (l == line)
                return len;   /* the line is shorter than col */
            l++;
            c = 1;
            i += br;
            continue;
        }
        i++;
        while (i < len && (t[i] & 0xC0) == 0x80)
            i++;
        c++;
    }
    return l == line && c == col ? i : len;
}

/*
 * libyaml's words for a tab where YAML wants spaces ("found character that
 * cannot start any token", "found a tab character that violates
 * indentation") do not say what to do. When its mark is on a tab, say it:
 * in the indentation (only blanks before it on its line), or elsewhere
 * ("-\tname"). NULL when the error is about something else.
 */
static const char *tab_problem(const builder_t *b, const yaml_parser_t *p)
{
    size_t line = p->problem_mark.line + 1, off = offset_of(b->text, b->len, line,
                                                           p->problem_mark.column + 1);
    if (off >= b->len || b->text[off] != '\t' || p->problem == NULL ||
        (strstr(p->problem, "tab") == NULL && strstr(p->problem, "cannot start any token") == NULL))
        return NULL;
    for (size_t i = offset_of(b->text, b->len, line, 1); i < off; i++) {
        if (b->text[i] != ' ' && b->text[i] != '\t')
            return "tab where YAML needs a space";
    }
    return "tab in indentation (YAML indents with spaces)";
}

static void syntax_error(builder_t *b, const yaml_parser_t *p)
{
    const char *ctx = p->context, *tab = tab_problem(b, p);
    if (tab != NULL) {
        sl__cfg_error(b->ctx, (uint32_t)p->problem_mark.line + 1,
                      (uint32_t)p->problem_mark.column + 1, "", "syntax error: %s", tab);
        return;
    }
    sl__cfg_error(b->ctx, (uint32_t)p->problem_mark.line + 1, (uint32_t)p->problem_mark.column + 1,
                  "", "syntax error: %s%s%s", p->problem ? p->problem : "malformed YAML",
                  ctx ? " " : "", ctx ? ctx : "");
}

sl__ynode_t *sl__yaml_load(const char *text, size_t len, sl__cfg_ctx_t *ctx, bool *ok)
{
    yaml_parser_t parser;
    builder_t b = {.ctx = ctx, .text = text, .len = len};
    *ok = false;
    if (!yaml_parser_initialize(&parser)) {
        sl__cfg_error(ctx, 1, 1, "", "out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    bool done = false, good = true;
    while (good && !done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            if (parser.error == YAML_READER_ERROR)
                reader_error(&b, &parser);
            else
                syntax_error(&b, &parser);
            good = false;
            break;
        }
        good = step(&b, &ev, &done);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    if (!good) {
        sl__ynode_free(b.root);
        return NULL;
    }
    *ok = true;
    return b.root;
}
