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
    const char *file;
    sl_diag_t *diag;
    sl__ynode_t *root;
    sl__ynode_t *stack[MAX_DEPTH];
    size_t depth;
    int documents;
} builder_t;

static void fail_at(builder_t *b, const yaml_mark_t *m, const char *msg)
{
    sl__diag_add(b->diag, "%s:%zu:%zu: %s", b->file, m->line + 1, m->column + 1, msg);
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
    return attach(b, n, m);
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
        fail_at(b, m, "syntax error: aliases (*name) are not supported");
        return false;
    case YAML_SCALAR_EVENT:
        return scalar(b, ev);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        sl__ynode_t *n = node_new(ev->type == YAML_MAPPING_START_EVENT ? SL__Y_MAP : SL__Y_SEQ, m);
        if (n == NULL) {
            fail_at(b, m, "out of memory");
            return false;
        }
        return attach(b, n, m);
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (b->depth > 0)
            b->depth--;
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
 * (it read 1:1 whatever the byte); libyaml gives the byte offset instead. The
 * line and column are counted here the way marks count them (characters,
 * so UTF-8 continuation bytes do not add to the column).
 */
static void reader_error(const yaml_parser_t *p, const char *text, size_t len, const char *file,
                         sl_diag_t *diag)
{
    size_t off = SL_MIN(p->problem_offset, len), line = 1, col = 1;
    for (size_t i = 0; i < off; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\n') {
            line++;
            col = 1;
        } else if ((c & 0xC0) != 0x80) {
            col++;
        }
    }
    char value[32] = "";
    if (p->problem_value >= 0)
        snprintf(value, sizeof value, " (0x%02X)", (unsigned)p->problem_value);
    sl__diag_add(diag, "%s:%zu:%zu: syntax error: %s%s (expected UTF-8 text)", file, line, col,
                 p->problem ? p->problem : "unreadable input", value);
}

sl__ynode_t *sl__yaml_load(const char *text, size_t len, const char *file, sl_diag_t *diag,
                           bool *ok)
{
    yaml_parser_t parser;
    builder_t b = {.file = file, .diag = diag};
    *ok = false;
    if (!yaml_parser_initialize(&parser)) {
        sl__diag_add(diag, "%s: out of memory", file);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    bool done = false, good = true;
    while (good && !done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            if (parser.error == YAML_READER_ERROR) {
                reader_error(&parser, text, len, file, diag);
                good = false;
                break;
            }
            const char *ctx = parser.context;
            sl__diag_add(diag, "%s:%zu:%zu: syntax error: %s%s%s", file,
                         parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                         parser.problem ? parser.problem : "malformed YAML", ctx ? " " : "",
                         ctx ? ctx : "");
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
