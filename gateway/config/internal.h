/*
 * gateway/config/internal.h: what the config loader's files share, and
 * nothing else sees.
 *
 * The loader works in three passes over one context (sl__cfg_ctx_t):
 * yamltree.c turns libyaml events into a small node tree that keeps the
 * 1-based line and column of every node; load.c walks that tree against the
 * schema tables of schema.c, storing values by offset and remembering where
 * each one was written; validate.c then checks the rules that span several
 * keys, using those remembered positions for its messages.
 */
#ifndef SLUICE_CONFIG_INTERNAL_H
#define SLUICE_CONFIG_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/config.h"

/* ---- diagnostics (diag.c) --------------------------------------------------- */

/* Stop collecting after this many lines: a binary file would give thousands. */
#define SL__DIAG_MAX 100

/* Append one formatted line; silently gives up when memory runs out. */
void sl__diag_add(sl_diag_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Write `s` (length n) into buf as a printable, one-line quotation: control
 * bytes become '?', and text beyond `max` bytes is cut with "...".
 */
void sl__quote(char *buf, size_t len, const char *s, size_t n, size_t max);

/* Edit distance (insert, delete, substitute, transpose), capped at 3. */
unsigned sl__edit_distance(const char *a, const char *b);

/* ---- the YAML tree (yamltree.c) ---------------------------------------------- */

typedef enum sl__ykind {
    SL__Y_SCALAR = 1,
    SL__Y_SEQ,
    SL__Y_MAP,
} sl__ykind_t;

typedef struct sl__ynode sl__ynode_t;
struct sl__ynode {
    sl__ykind_t kind;
    uint32_t line, col;          /* 1-based */
    char *str;                   /* scalar text, NUL-terminated */
    size_t len;
    bool plain;                  /* unquoted scalar: may be null */
    bool bad;                    /* an alias, a merge or a bad tag: reported, skipped */
    sl__ynode_t **kids;          /* seq: items; map: key, value, key, value... */
    size_t n;                    /* number of kids */
    size_t cap;
};

struct sl__cfg_ctx;

/*
 * Parse text into a tree. Returns the root (NULL for an empty document) and
 * sets *ok false after reporting a syntax error to the context. Errors that
 * do not stop the parse (aliases, merge keys, tags) are reported to the
 * context too and leave *ok true: their nodes are marked `bad`.
 */
sl__ynode_t *sl__yaml_load(const char *text, size_t len, struct sl__cfg_ctx *ctx, bool *ok);
void sl__ynode_free(sl__ynode_t *n);

/* A plain empty, "~" or "null" scalar. */
bool sl__ynode_is_null(const sl__ynode_t *n);

/* ---- the schema (schema.c) -------------------------------------------------- */

typedef enum sl__ctype {
    SL__T_BOOL = 1,
    SL__T_UINT,       /* width from the field; bounds min..max */
    SL__T_DURATION,   /* sl_msec_t */
    SL__T_SIZE,       /* width from the field */
    SL__T_RATE,       /* double, per second */
    SL__T_STRING,     /* char * */
    SL__T_ENUM,       /* int-sized enum; value = index in `names` */
    SL__T_ADDR,       /* sl_cfg_addr_t */
    SL__T_CIDR,       /* sl_cfg_cidr_t */
    SL__T_MAP,        /* nested mapping: `sub` */
    SL__T_SEQ_MAP,    /* sequence of mappings: array at off, count at count_off */
    SL__T_NAMED_MAP,  /* mapping of name -> mapping; `name` field at sub->name_off */
    SL__T_SEQ_STR,    /* sequence of strings: char ** array, count at count_off */
    SL__T_SEQ_CIDR,   /* sequence of CIDRs: sl_cfg_cidr_t array */
    SL__T_NUMBER,     /* double, a plain decimal like 0.25 */
} sl__ctype_t;

enum {
    SL__F_REQUIRED = 1u << 0,
    SL__F_NOT_IMPLEMENTED = 1u << 1,   /* SL_CFG_NOT_IMPLEMENTED: writing it is an error */
    SL__F_NULLABLE = 1u << 2,          /* null keeps the default */
    SL__F_AUTO = 1u << 3,              /* uint: "auto" stores 0 */
    SL__F_OFF = 1u << 4,               /* map: "off" sets the bool at present_off false */
    SL__F_NONEMPTY = 1u << 5,          /* sequences and maps: at least one item */
    SL__F_PRESENT = 1u << 6,           /* map: the bool at present_off is set when given */
};

#define SL_CFG_NOT_IMPLEMENTED SL__F_NOT_IMPLEMENTED

typedef struct sl__ctable sl__ctable_t;

typedef struct sl__ckey {
    const char *name;
    sl__ctype_t type;
    size_t off;                   /* field offset in the table's struct */
    size_t width;                 /* sizeof the field (uint, size) or array element */
    double min, max;              /* bounds in the stored unit (ms, bytes, /s) */
    const char *def;              /* default, written as in YAML; NULL: zero / none */
    const char *doc;
    unsigned flags;
    const char *const *names;     /* enum value names, NULL-terminated */
    unsigned ni_values;           /* enum: bit i set = names[i] not implemented yet */
    const sl__ctable_t *sub;      /* nested mapping / item mapping */
    size_t count_off;             /* arrays: offset of the size_t count */
    size_t present_off;           /* map: offset of a bool in the parent (SL__F_PRESENT) */
} sl__ckey_t;

struct sl__ctable {
    const char *what;             /* "listener", "pool": for the "expected a X" message */
    size_t size;                  /* sizeof the struct */
    size_t pos_off;               /* sl_cfg_pos_t set to the mapping's position; SIZE_MAX */
    size_t name_off;              /* named maps: char * name; SIZE_MAX */
    const sl__ckey_t *keys;
    size_t n_keys;
};

extern const sl__ctable_t sl__root_table;

/* The key at a dotted path of key names from the top ("services.admission.rate";
   names of pools and services and list indexes are left out), or NULL. */
const sl__ckey_t *sl__key_by_path(const char *path);

/* ---- units (units.c) -------------------------------------------------------- */

/* Format a value in the notation of its type, for bounds and the summary. */
void sl__fmt_duration(char *buf, size_t len, sl_msec_t ms);
void sl__fmt_size(char *buf, size_t len, uint64_t bytes);
void sl__fmt_rate(char *buf, size_t len, double per_sec);

/* An address refused only for its port, digits beyond 65535 ("[::1]:99999"). */
bool sl__port_out_of_range(const char *s);

/* RFC 6455 close codes a gateway may send in a close frame. */
bool sl__close_code_sendable(unsigned code);

/* "*", "*.suffix" or a hostname. */
bool sl__route_host_ok(const char *s);

/* ---- scalars (scalar.c) ------------------------------------------------------- */

/*
 * Convert scalar text (length n) for key k and store it in `field`. On
 * failure writes the message, without position and path, into msg and
 * stores nothing. Strings and addresses replace (and free) what was there.
 */
bool sl__cfg_convert(const sl__ckey_t *k, const char *s, size_t n, void *field, char *msg,
                     size_t mlen);

/* What a key takes, for "expected X" ("a duration like 30s"). */
const char *sl__cfg_expected(const sl__ckey_t *k);

/* A node for "got Y": a quoted scalar, "null", "a mapping" or "a sequence". */
void sl__ydescribe(const sl__ynode_t *n, char *buf, size_t len);

void sl__cfg_free_addr(sl_cfg_addr_t *a);

/* ---- the loading context (load.c, validate.c) ------------------------------------ */

/* Where a stored field came from: looked up by validate.c for its messages. */
typedef struct sl__cfg_where {
    const void *field;
    uint32_t line, col;
} sl__cfg_where_t;

typedef struct sl__cfg_ctx {
    const char *file;
    sl_diag_t *diag;
    size_t errors;
    sl__cfg_where_t *where;
    size_t n_where, cap_where;
    const void **bad;            /* named items whose mapping was an alias or badly tagged */
    size_t n_bad, cap_bad;
} sl__cfg_ctx_t;

/* Report an error at a position, with a key path; counts it. */
void sl__cfg_error(sl__cfg_ctx_t *c, uint32_t line, uint32_t col, const char *path,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* A named item (a pool, a service) whose mapping could not be read (`blue: *b`):
   already reported, so the cross-key rules leave its emptiness alone. */
void sl__cfg_mark_bad(sl__cfg_ctx_t *c, const void *item);
bool sl__cfg_is_bad(const sl__cfg_ctx_t *c, const void *item);

/* Position where `field` was written; {0,0} when it holds its default. */
sl_cfg_pos_t sl__cfg_where(const sl__cfg_ctx_t *c, const void *field);

/* Largest number of keys in one table (the loader keeps a "seen" array). */
#define SL__MAX_KEYS 32

/* Apply the defaults of every key of a table to a zeroed struct. */
void sl__cfg_defaults(sl__cfg_ctx_t *c, const sl__ctable_t *t, void *obj);

/* One socket address however spelled: IP literals compared as bytes ("[::1]"
   and "[0:0::1]"), host names without case; the ports equal. */
bool sl__cfg_same_addr(const sl_cfg_addr_t *a, const sl_cfg_addr_t *b);

/* The cross-key rules; adds errors to the context. */
void sl__cfg_validate(sl__cfg_ctx_t *c, sl_config_t *cfg);

#endif
