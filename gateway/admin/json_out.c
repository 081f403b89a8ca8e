/*
 * json_out.c: the append buffer and JSON writer (see json_out.h).
 *
 * Why a writer that tracks nesting rather than printf with hand-placed
 * commas: every response of the admin API is built from loops over pools
 * and backends, and the comma before the first element is the classic bug.
 * Here a depth stack knows whether anything was written at each level, so
 * the separators cannot be wrong. Why sticky oom: the handlers stay linear
 * (no error check after each member), and the server checks once.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/utf8.h"
#include "json_out.h"

/* ---- buffer ------------------------------------------------------------------ */

static bool reserve(sl_buf_t *b, size_t more)
{
    if (b->oom)
        return false;
    if (b->cap - b->len > more)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len <= more) {
        if (cap > SIZE_MAX / 2) {
            b->oom = true;
            return false;
        }
        cap *= 2;
    }
    char *d = realloc(b->data, cap);
    if (d == NULL) {
        b->oom = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

void sl_buf_append(sl_buf_t *b, const void *p, size_t n)
{
    if (!reserve(b, n))
        return;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void sl_buf_puts(sl_buf_t *b, const char *s)
{
    sl_buf_append(b, s, strlen(s));
}

void sl_buf_printf(sl_buf_t *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        sl_buf_append(b, small, (size_t)n);
        return;
    }
    if (!reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sl_buf_free(sl_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->oom = false;
}

/* ---- writer structure --------------------------------------------------------------- */

void sl_jw_init(sl_jw_t *w, sl_buf_t *out, bool pretty)
{
    memset(w, 0, sizeof *w);
    w->out = out;
    w->pretty = pretty;
    w->first[0] = true;
}

static void newline(sl_jw_t *w)
{
    if (!w->pretty)
        return;
    sl_buf_append(w->out, "\n", 1);
    for (int i = 0; i < w->depth; i++)
        sl_buf_append(w->out, "  ", 2);
}

/* Before any value: the comma and line break, unless it follows its key. */
static void before_value(sl_jw_t *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (w->depth > 0) {
        if (!w->first[w->depth])
            sl_buf_append(w->out, ",", 1);
        newline(w);
    }
    w->first[w->depth] = false;
}

static void open_container(sl_jw_t *w, char c)
{
    before_value(w);
    if (w->depth + 1 >= SL_JW_MAX_DEPTH) {
        w->out->oom = true;
        return;
    }
    sl_buf_append(w->out, &c, 1);
    w->depth++;
    w->first[w->depth] = true;
    w->close[w->depth] = c == '{' ? '}' : ']';
}

void sl_jw_obj(sl_jw_t *w)
{
    open_container(w, '{');
}

void sl_jw_arr(sl_jw_t *w)
{
    open_container(w, '[');
}

void sl_jw_end(sl_jw_t *w)
{
    if (w->depth == 0) {
        w->out->oom = true;
        return;
    }
    bool empty = w->first[w->depth];
    char c = w->close[w->depth];
    w->depth--;
    if (!empty)
        newline(w);
    sl_buf_append(w->out, &c, 1);
}

void sl_jw_key(sl_jw_t *w, const char *key)
{
    sl_jw_str(w, key);
    sl_buf_append(w->out, w->pretty ? ": " : ":", w->pretty ? 2 : 1);
    w->after_key = true;
}

/* ---- values ---------------------------------------------------------------------- */

static void escaped(sl_buf_t *b, const char *s, size_t n)
{
    bool valid = sl_utf8_valid((const uint8_t *)s, n);
    sl_buf_append(b, "\"", 1);
    size_t run = 0;   /* bytes copied as they are, pending */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool plain = c >= 0x20 && c != '"' && c != '\\' && (c < 0x80 || valid);
        if (plain) {
            run++;
            continue;
        }
        sl_buf_append(b, s + i - run, run);
        run = 0;
        char esc[8];
        switch (c) {
        case '"': sl_buf_append(b, "\\\"", 2); break;
        case '\\': sl_buf_append(b, "\\\\", 2); break;
        case '\n': sl_buf_append(b, "\\n", 2); break;
        case '\r': sl_buf_append(b, "\\r", 2); break;
        case '\t': sl_buf_append(b, "\\t", 2); break;
        case '\b': sl_buf_append(b, "\\b", 2); break;
        case '\f': sl_buf_append(b, "\\f", 2); break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", c >= 0x80 ? 0xfffdu : (unsigned)c);
            sl_buf_append(b, esc, 6);
            break;
        }
    }
    sl_buf_append(b, s + n - run, run);
    sl_buf_append(b, "\"", 1);
}

void sl_jw_strn(sl_jw_t *w, const char *s, size_t n)
{
    before_value(w);
    escaped(w->out, s, n);
}

void sl_jw_str(sl_jw_t *w, const char *s)
{
    if (s == NULL) {
        sl_jw_null(w);
        return;
    }
    sl_jw_strn(w, s, strlen(s));
}

void sl_jw_uint(sl_jw_t *w, uint64_t v)
{
    before_value(w);
    sl_buf_printf(w->out, "%llu", (unsigned long long)v);
}

void sl_jw_int(sl_jw_t *w, int64_t v)
{
    before_value(w);
    sl_buf_printf(w->out, "%lld", (long long)v);
}

void sl_jw_num(sl_jw_t *w, double v)
{
    if (!isfinite(v)) {
        sl_jw_null(w);
        return;
    }
    before_value(w);
    char text[32];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(text, sizeof text, "%.*g", prec, v);
        if (strtod(text, NULL) == v)
            break;
    }
    sl_buf_puts(w->out, text);
}

void sl_jw_bool(sl_jw_t *w, bool v)
{
    before_value(w);
    sl_buf_puts(w->out, v ? "true" : "false");
}

void sl_jw_null(sl_jw_t *w)
{
    before_value(w);
    sl_buf_puts(w->out, "null");
}

void sl_jw_value(sl_jw_t *w, const sl_json_t *v)
{
    switch (v->type) {
    case SL_JSON_NULL: sl_jw_null(w); break;
    case SL_JSON_FALSE: sl_jw_bool(w, false); break;
    case SL_JSON_TRUE: sl_jw_bool(w, true); break;
    case SL_JSON_NUMBER:
        before_value(w);
        sl_buf_puts(w->out, v->raw);
        break;
    case SL_JSON_STRING: sl_jw_strn(w, v->str, v->len); break;
    case SL_JSON_ARRAY:
    case SL_JSON_OBJECT:
        if (v->type == SL_JSON_OBJECT)
            sl_jw_obj(w);
        else
            sl_jw_arr(w);
        for (const sl_json_t *c = v->child; c != NULL; c = c->next) {
            if (v->type == SL_JSON_OBJECT) {
                before_value(w);
                escaped(w->out, c->key, c->key_len);
                sl_buf_append(w->out, w->pretty ? ": " : ":", w->pretty ? 2 : 1);
                w->after_key = true;
            }
            sl_jw_value(w, c);
        }
        sl_jw_end(w);
        break;
    }
}

void sl_jw_kstr(sl_jw_t *w, const char *key, const char *s)
{
    sl_jw_key(w, key);
    sl_jw_str(w, s);
}

void sl_jw_kuint(sl_jw_t *w, const char *key, uint64_t v)
{
    sl_jw_key(w, key);
    sl_jw_uint(w, v);
}

void sl_jw_knum(sl_jw_t *w, const char *key, double v)
{
    sl_jw_key(w, key);
    sl_jw_num(w, v);
}

void sl_jw_kbool(sl_jw_t *w, const char *key, bool v)
{
    sl_jw_key(w, key);
    sl_jw_bool(w, v);
}
