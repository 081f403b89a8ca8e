/*
 * json_out.h: an append buffer and a JSON writer on top of it, for the admin
 * API's responses, the Prometheus text, and `sluice ctl`'s pretty-printing.
 *
 * Errors are sticky instead of returned: a failed allocation sets buf->oom,
 * every later append is a no-op, and the caller checks once at the end (the
 * admin server answers 500 then). The writer places commas, colons and
 * (when pretty) newlines and indentation itself, so handlers only say what
 * goes where: sl_jw_obj(w); sl_jw_kstr(w, "status", "ok"); sl_jw_end(w);
 * No I/O: tests include this module directly.
 */
#ifndef SLUICE_ADMIN_JSON_OUT_H
#define SLUICE_ADMIN_JSON_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/json.h"

/* A growable byte buffer. Zero-filled is empty and valid; free with sl_buf_free. */
typedef struct sl_buf {
    char *data;          /* owned; NUL-terminated after any append (when not oom) */
    size_t len;
    size_t cap;
    bool oom;            /* an allocation failed: contents are incomplete */
} sl_buf_t;

void sl_buf_append(sl_buf_t *b, const void *p, size_t n);
void sl_buf_puts(sl_buf_t *b, const char *s);
void sl_buf_printf(sl_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Release the memory; the buffer is empty (and usable) afterwards. */
void sl_buf_free(sl_buf_t *b);

#define SL_JW_MAX_DEPTH 64

typedef struct sl_jw {
    sl_buf_t *out;       /* borrowed */
    bool pretty;         /* newlines and two-space indentation */
    bool after_key;      /* the next value follows "key": */
    int depth;
    bool first[SL_JW_MAX_DEPTH];   /* nothing written yet at this depth */
    char close[SL_JW_MAX_DEPTH];   /* the bracket that closes this depth */
} sl_jw_t;

/* Start writing one JSON value into `out` (appended to what is there). */
void sl_jw_init(sl_jw_t *w, sl_buf_t *out, bool pretty);

/* Open an object or array; sl_jw_end closes the innermost one. Deeper than
 * SL_JW_MAX_DEPTH marks the buffer oom (a bug, not an input condition). */
void sl_jw_obj(sl_jw_t *w);
void sl_jw_arr(sl_jw_t *w);
void sl_jw_end(sl_jw_t *w);

/* A member key; the next call writes its value. */
void sl_jw_key(sl_jw_t *w, const char *key);

/* Values. Strings are escaped (quotes, backslash, control characters); in
 * a string that is not valid UTF-8, every non-ASCII byte becomes U+FFFD. Non-finite numbers
 * are written as null. sl_jw_num writes the shortest text that reads back
 * as the same double. */
void sl_jw_str(sl_jw_t *w, const char *s);
void sl_jw_strn(sl_jw_t *w, const char *s, size_t n);
void sl_jw_uint(sl_jw_t *w, uint64_t v);
void sl_jw_int(sl_jw_t *w, int64_t v);
void sl_jw_num(sl_jw_t *w, double v);
void sl_jw_bool(sl_jw_t *w, bool v);
void sl_jw_null(sl_jw_t *w);

/* A parsed value, written again (numbers as their original literal). */
void sl_jw_value(sl_jw_t *w, const sl_json_t *v);

/* Key and value in one call, the common case in handlers. */
void sl_jw_kstr(sl_jw_t *w, const char *key, const char *s);
void sl_jw_kuint(sl_jw_t *w, const char *key, uint64_t v);
void sl_jw_knum(sl_jw_t *w, const char *key, double v);
void sl_jw_kbool(sl_jw_t *w, const char *key, bool v);

#endif
