/*
 * json.c: a strict RFC 8259 parser into a small tree (see sluice/json.h).
 *
 * Why a tree and not a streaming parser: admin request bodies are small
 * (the server caps them at 1 MiB) and handlers want to look keys up in any
 * order and refuse unknown ones, which a tree makes one call each.
 *
 * Why an arena: every node and decoded string of a document comes from a
 * short list of blocks, so a handler frees a whole body with one call and no
 * error path can leak half a tree. Recursion depth is bounded by max_depth
 * (checked before descending), node count by max_nodes, so the cost of a
 * hostile body is bounded by the limits, never by its shape.
 *
 * Why strict: the grammar is exactly RFC 8259 (no comments, no trailing
 * commas, no leading zeros, no NaN), strings must be valid UTF-8 with no raw
 * control characters, surrogate escapes must pair, and a key may appear once
 * per object. Every error names the byte offset where the text stopped
 * making sense, so `curl` users see where their body went wrong.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/json.h"
#include "sluice/utf8.h"

#define DEFAULT_DEPTH 32
#define DEFAULT_NODES 4096
#define BLOCK_MIN 4096

struct sl_json_block {
    struct sl_json_block *next;
    size_t used;
    size_t cap;
    _Alignas(16) unsigned char data[];
};

typedef struct parser {
    const char *s;
    size_t len;
    size_t pos;
    sl_json_doc_t *doc;
    uint32_t max_depth;
    uint32_t max_nodes;
    uint32_t nodes;
    bool no_nul;            /* \u0000 refused: the caller reads strings as C strings */
    int rc;                 /* first error: SL_EINVAL, SL_ELIMIT or SL_ENOMEM */
    size_t err_off;
    const char *err_msg;
} parser_t;

/* ---- arena ------------------------------------------------------------------ */

static void *arena_alloc(sl_json_doc_t *doc, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    struct sl_json_block *b = doc->blocks;
    if (b == NULL || b->cap - b->used < size) {
        size_t cap = SL_MAX(size, (size_t)BLOCK_MIN);
        b = malloc(sizeof *b + cap);
        if (b == NULL)
            return NULL;
        b->cap = cap;
        b->used = 0;
        b->next = doc->blocks;
        doc->blocks = b;
    }
    void *p = b->data + b->used;
    b->used += size;
    return p;
}

void sl_json_doc_free(sl_json_doc_t *doc)
{
    struct sl_json_block *b = doc->blocks;
    while (b != NULL) {
        struct sl_json_block *next = b->next;
        free(b);
        b = next;
    }
    doc->blocks = NULL;
    doc->root = NULL;
}

/* ---- helpers ---------------------------------------------------------------- */

static void fail(parser_t *p, int rc, size_t off, const char *msg)
{
    if (p->rc != 0)
        return;
    p->rc = rc;
    p->err_off = off;
    p->err_msg = msg;
}

static void skip_ws(parser_t *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static sl_json_t *new_node(parser_t *p, sl_json_type_t type)
{
    if (p->nodes >= p->max_nodes) {
        fail(p, SL_ELIMIT, p->pos, "too many values");
        return NULL;
    }
    sl_json_t *n = arena_alloc(p->doc, sizeof *n);
    if (n == NULL) {
        fail(p, SL_ENOMEM, p->pos, "out of memory");
        return NULL;
    }
    memset(n, 0, sizeof *n);
    n->type = type;
    p->nodes++;
    return n;
}

static int hex4(const char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- strings ---------------------------------------------------------------- */

/* One escape at p->pos (just after the backslash); appends to out. */
static bool parse_escape(parser_t *p, char *out, size_t *o)
{
    size_t at = p->pos - 1;
    if (p->pos >= p->len) {
        fail(p, SL_EINVAL, p->pos, "unterminated string");
        return false;
    }
    char c = p->s[p->pos++];
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *k = strchr(from, c);
    if (c != '\0' && k != NULL) {
        out[(*o)++] = to[k - from];
        return true;
    }
    if (c != 'u') {
        fail(p, SL_EINVAL, at, "invalid escape in string");
        return false;
    }
    int cp = p->len - p->pos >= 4 ? hex4(p->s + p->pos) : -1;
    if (cp < 0) {
        fail(p, SL_EINVAL, at, "invalid \\u escape (expected 4 hex digits)");
        return false;
    }
    p->pos += 4;
    uint32_t u = (uint32_t)cp;
    if (u >= 0xDC00 && u <= 0xDFFF) {
        fail(p, SL_EINVAL, at, "unpaired low surrogate in \\u escape");
        return false;
    }
    if (u >= 0xD800 && u <= 0xDBFF) {
        int lo = p->len - p->pos >= 6 && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u'
                     ? hex4(p->s + p->pos + 2) : -1;
        if (lo < 0xDC00 || lo > 0xDFFF) {
            fail(p, SL_EINVAL, at, "unpaired high surrogate in \\u escape");
            return false;
        }
        p->pos += 6;
        u = 0x10000 + ((u - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
    }
    /* A caller that reads strings as C strings would see "50/s\u0000junk" as
       "50/s" and a key "burst\u0000" as "burst": refused where it is written. */
    if (u == 0 && p->no_nul) {
        fail(p, SL_EINVAL, at, "\\u0000 in a string (not accepted here)");
        return false;
    }
    *o += put_utf8(out + *o, u);
    return true;
}

/*
 * A string starting at the opening quote at p->pos. Decodes into the arena
 * (the decoded text is never longer than the raw text: each escape of n
 * bytes yields at most n bytes of UTF-8).
 */
static bool parse_string(parser_t *p, const char **str, size_t *len)
{
    size_t start = ++p->pos;
    size_t end = start;
    while (end < p->len && p->s[end] != '"')
        end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->len) {
        fail(p, SL_EINVAL, start - 1, "unterminated string");
        return false;
    }
    char *out = arena_alloc(p->doc, end - start + 1);
    if (out == NULL) {
        fail(p, SL_ENOMEM, start, "out of memory");
        return false;
    }
    size_t o = 0;
    uint32_t utf8 = SL_UTF8_ACCEPT;
    while (p->pos < end) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c < 0x20) {
            fail(p, SL_EINVAL, p->pos, "control character in string (escape it)");
            return false;
        }
        if (c >= 0x80) {
            utf8 = sl_utf8_feed(utf8, &c, 1);
            if (utf8 == SL_UTF8_REJECT) {
                fail(p, SL_EINVAL, p->pos, "invalid UTF-8 in string");
                return false;
            }
            out[o++] = (char)c;
            p->pos++;
            continue;
        }
        if (utf8 != SL_UTF8_ACCEPT) {
            fail(p, SL_EINVAL, p->pos, "invalid UTF-8 in string");
            return false;
        }
        p->pos++;
        if (c != '\\')
            out[o++] = (char)c;
        else if (!parse_escape(p, out, &o))
            return false;
    }
    if (utf8 != SL_UTF8_ACCEPT) {
        fail(p, SL_EINVAL, p->pos, "invalid UTF-8 in string");
        return false;
    }
    out[o] = '\0';
    p->pos = end + 1;
    *str = out;
    *len = o;
    return true;
}

/* ---- numbers and literals ---------------------------------------------------- */

static size_t digits(parser_t *p)
{
    size_t n = 0;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
        p->pos++;
        n++;
    }
    return n;
}

static bool parse_number(parser_t *p, sl_json_t *n)
{
    size_t start = p->pos;
    if (p->s[p->pos] == '-')
        p->pos++;
    size_t int_at = p->pos;
    size_t nd = digits(p);
    if (nd == 0) {
        fail(p, SL_EINVAL, int_at, "invalid number (expected a digit)");
        return false;
    }
    if (nd > 1 && p->s[int_at] == '0') {
        fail(p, SL_EINVAL, int_at, "invalid number (leading zero)");
        return false;
    }
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        if (digits(p) == 0) {
            fail(p, SL_EINVAL, p->pos, "invalid number (expected a digit after '.')");
            return false;
        }
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
            p->pos++;
        if (digits(p) == 0) {
            fail(p, SL_EINVAL, p->pos, "invalid number (expected a digit in the exponent)");
            return false;
        }
    }
    size_t len = p->pos - start;
    char *raw = arena_alloc(p->doc, len + 1);
    if (raw == NULL) {
        fail(p, SL_ENOMEM, start, "out of memory");
        return false;
    }
    memcpy(raw, p->s + start, len);
    raw[len] = '\0';
    n->raw = raw;
    n->num = strtod(raw, NULL);
    if (!isfinite(n->num)) {
        fail(p, SL_EINVAL, start, "number out of range");
        return false;
    }
    return true;
}

static bool parse_literal(parser_t *p, sl_json_t *n)
{
    static const struct { const char *word; sl_json_type_t type; } lits[] = {
        {"true", SL_JSON_TRUE}, {"false", SL_JSON_FALSE}, {"null", SL_JSON_NULL},
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(lits); i++) {
        size_t wl = strlen(lits[i].word);
        if (p->len - p->pos >= wl && memcmp(p->s + p->pos, lits[i].word, wl) == 0) {
            n->type = lits[i].type;
            p->pos += wl;
            return true;
        }
    }
    fail(p, SL_EINVAL, p->pos, "expected a value");
    return false;
}

/* ---- containers ---------------------------------------------------------------- */

static sl_json_t *parse_value(parser_t *p, uint32_t depth);

static bool duplicate_key(const sl_json_t *obj, const sl_json_t *m)
{
    for (const sl_json_t *k = obj->child; k != NULL && k != m; k = k->next)
        if (k->key_len == m->key_len && memcmp(k->key, m->key, m->key_len) == 0)
            return true;
    return false;
}

/* The items of an array or members of an object, after the opening bracket. */
static bool parse_items(parser_t *p, sl_json_t *c, uint32_t depth)
{
    bool obj = c->type == SL_JSON_OBJECT;
    char close = obj ? '}' : ']';
    sl_json_t **tail = &c->child;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return true;
    }
    for (;;) {
        skip_ws(p);
        const char *key = NULL;
        size_t key_len = 0, key_at = p->pos;
        if (obj) {
            if (p->pos >= p->len || p->s[p->pos] != '"') {
                fail(p, SL_EINVAL, p->pos, "expected a string key in the object");
                return false;
            }
            if (!parse_string(p, &key, &key_len))
                return false;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') {
                fail(p, SL_EINVAL, p->pos, "expected ':' after an object key");
                return false;
            }
            p->pos++;
        }
        sl_json_t *v = parse_value(p, depth + 1);
        if (v == NULL)
            return false;
        v->key = key;
        v->key_len = key_len;
        *tail = v;
        tail = &v->next;
        c->n++;
        if (obj && duplicate_key(c, v)) {
            fail(p, SL_EINVAL, key_at, "duplicate key in object");
            return false;
        }
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
            return true;
        }
        fail(p, SL_EINVAL, p->pos, obj ? "expected ',' or '}' in the object"
                                       : "expected ',' or ']' in the array");
        return false;
    }
}

static sl_json_t *parse_value(parser_t *p, uint32_t depth)
{
    skip_ws(p);
    if (p->pos >= p->len) {
        fail(p, SL_EINVAL, p->pos, "expected a value");
        return NULL;
    }
    char c = p->s[p->pos];
    sl_json_type_t type = c == '{' ? SL_JSON_OBJECT
                        : c == '[' ? SL_JSON_ARRAY
                        : c == '"' ? SL_JSON_STRING
                        : c == '-' || (c >= '0' && c <= '9') ? SL_JSON_NUMBER : SL_JSON_NULL;
    if ((type == SL_JSON_OBJECT || type == SL_JSON_ARRAY) && depth >= p->max_depth) {
        fail(p, SL_ELIMIT, p->pos, "nested too deeply");
        return NULL;
    }
    sl_json_t *n = new_node(p, type);
    if (n == NULL)
        return NULL;
    bool ok;
    switch (type) {
    case SL_JSON_OBJECT:
    case SL_JSON_ARRAY:
        p->pos++;
        ok = parse_items(p, n, depth);
        break;
    case SL_JSON_STRING:
        ok = parse_string(p, &n->str, &n->len);
        break;
    case SL_JSON_NUMBER:
        ok = parse_number(p, n);
        break;
    default:
        ok = parse_literal(p, n);
        break;
    }
    return ok ? n : NULL;
}

int sl_json_parse(sl_json_doc_t *doc, const char *buf, size_t len,
                  const sl_json_limits_t *lim, sl_json_error_t *err)
{
    parser_t p = {.s = buf, .len = len, .doc = doc};
    p.max_depth = lim && lim->max_depth ? lim->max_depth : DEFAULT_DEPTH;
    p.max_nodes = lim && lim->max_nodes ? lim->max_nodes : DEFAULT_NODES;
    p.no_nul = lim && lim->no_nul;
    doc->root = NULL;
    doc->blocks = NULL;
    sl_json_t *root = parse_value(&p, 0);
    if (root != NULL) {
        skip_ws(&p);
        if (p.pos < p.len)
            fail(&p, SL_EINVAL, p.pos, "unexpected data after the JSON value");
    }
    if (p.rc != 0) {
        sl_json_doc_free(doc);
        if (err != NULL) {
            err->offset = p.err_off;
            err->msg = p.err_msg;
        }
        return p.rc;
    }
    doc->root = root;
    return 0;
}

/* ---- look-ups ------------------------------------------------------------------ */

const sl_json_t *sl_json_get(const sl_json_t *obj, const char *key)
{
    if (obj == NULL || obj->type != SL_JSON_OBJECT)
        return NULL;
    size_t kl = strlen(key);
    for (const sl_json_t *m = obj->child; m != NULL; m = m->next)
        if (m->key_len == kl && memcmp(m->key, key, kl) == 0)
            return m;
    return NULL;
}

const sl_json_t *sl_json_at(const sl_json_t *arr, size_t i)
{
    if (arr == NULL || arr->type != SL_JSON_ARRAY)
        return NULL;
    const sl_json_t *v = arr->child;
    while (v != NULL && i-- > 0)
        v = v->next;
    return v;
}

const char *sl_json_type_name(sl_json_type_t t)
{
    switch (t) {
    case SL_JSON_NULL: return "null";
    case SL_JSON_FALSE:
    case SL_JSON_TRUE: return "boolean";
    case SL_JSON_NUMBER: return "number";
    case SL_JSON_STRING: return "string";
    case SL_JSON_ARRAY: return "array";
    case SL_JSON_OBJECT: return "object";
    }
    return "?";
}
