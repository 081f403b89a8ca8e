/*
 * sluice/json.h: a small, strict JSON parser (RFC 8259) for admin API
 * request bodies and for `sluice ctl` to pretty-print responses.
 *
 * The whole text is parsed at once into a tree of nodes that live in one
 * arena owned by an sl_json_doc_t, so freeing is one call and no node
 * outlives its document. Depth, node count and input size are bounded by
 * the caller's limits, so a hostile body costs at most what the limits say.
 * Strings are decoded (escapes resolved, \u surrogate pairs joined) into
 * NUL-terminated UTF-8 copies (a \u0000 makes a string hold a NUL: use its
 * length, or set no_nul to refuse it); the input must be valid UTF-8. Duplicate
 * object keys are refused: a body meaning two things is an error, not a
 * guess. No I/O, no clock, no global state.
 */
#ifndef SLUICE_JSON_H
#define SLUICE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/common.h"

typedef enum sl_json_type {
    SL_JSON_NULL = 0,
    SL_JSON_FALSE,
    SL_JSON_TRUE,
    SL_JSON_NUMBER,
    SL_JSON_STRING,
    SL_JSON_ARRAY,
    SL_JSON_OBJECT,
} sl_json_type_t;

typedef struct sl_json sl_json_t;

struct sl_json {
    sl_json_type_t type;
    uint32_t n;              /* arrays: items; objects: members */
    const char *key;         /* set when this node is an object member (decoded) */
    size_t key_len;
    const char *str;         /* strings: decoded, NUL-terminated (may hold \0: use len) */
    size_t len;              /* strings: decoded length in bytes */
    double num;              /* numbers */
    const char *raw;         /* numbers: the literal as written, NUL-terminated */
    sl_json_t *child;        /* arrays and objects: first item or member */
    sl_json_t *next;         /* the next sibling in the parent */
};

/* Bounds on one parse; 0 in a field means the default given in brackets. */
typedef struct sl_json_limits {
    uint32_t max_depth;      /* nesting of arrays and objects [32] */
    uint32_t max_nodes;      /* values, members included [4096] */
    bool no_nul;             /* refuse \u0000 in strings and keys [false: allowed] */
} sl_json_limits_t;

/* Where and why a parse failed. `offset` is a byte offset into the input. */
typedef struct sl_json_error {
    size_t offset;
    const char *msg;         /* static text, e.g. "expected ':' after an object key" */
} sl_json_error_t;

/* A parsed document. Zero-filled is valid (empty); free with sl_json_doc_free. */
typedef struct sl_json_doc {
    sl_json_t *root;
    struct sl_json_block *blocks;   /* private: the arena */
} sl_json_doc_t;

/*
 * Parse `len` bytes of `buf` (need not be NUL-terminated) as one JSON text,
 * whitespace allowed around it. On success returns 0 and doc->root is the
 * value; the document owns every node and string until sl_json_doc_free().
 * On failure returns SL_EINVAL (malformed: err filled), SL_ELIMIT (depth or
 * node limit: err filled) or SL_ENOMEM, and doc is left empty. `lim` and
 * `err` may be NULL. The input is not referenced after the call.
 */
int sl_json_parse(sl_json_doc_t *doc, const char *buf, size_t len,
                  const sl_json_limits_t *lim, sl_json_error_t *err);

/* Release everything the document owns; the document is empty afterwards. */
void sl_json_doc_free(sl_json_doc_t *doc);

/* The member `key` of an object, or NULL (also when obj is not an object). */
const sl_json_t *sl_json_get(const sl_json_t *obj, const char *key);

/* Item `i` of an array, or NULL. O(i). */
const sl_json_t *sl_json_at(const sl_json_t *arr, size_t i);

/* "null", "boolean", "number", "string", "array" or "object". */
const char *sl_json_type_name(sl_json_type_t t);

#endif
