/*
 * sluice/config.h: the configuration as a plain struct, and the loader that
 * fills it from YAML text.
 *
 * The loader is driven by one table per mapping (key, type, offset, bounds,
 * default, doc; see gateway/config/schema.c), parses from a string with no
 * I/O so tests feed it text, and reports every error it finds, each as one
 * line "FILE:LINE:COL: key.path: what is wrong (expected X, got Y)".
 *
 * Keys whose behaviour is not built yet are in the table with the
 * SL_CFG_NOT_IMPLEMENTED flag: writing one is an error, never ignored.
 *
 * Ownership: sl_config_parse() returns a config that owns every string and
 * array inside it; sl_config_free() releases all of it. A published config is
 * immutable and shared by reference (see refcount) between threads.
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/common.h"

/* Where a value was written, for errors found after parsing (e.g. at resolve). */
typedef struct sl_cfg_pos {
    uint32_t line;   /* 1-based; 0 when the value is a default */
    uint32_t col;    /* 1-based */
} sl_cfg_pos_t;

/* "IP:port", "[IPv6]:port" or "host:port", split but not resolved. */
typedef struct sl_cfg_addr {
    char *text;      /* as written */
    char *host;      /* without brackets */
    uint16_t port;
    sl_cfg_pos_t pos;
} sl_cfg_addr_t;

/* An address prefix, for trusted proxies. */
typedef struct sl_cfg_cidr {
    int family;              /* AF_INET or AF_INET6 */
    uint8_t addr[16];        /* network byte order; 4 bytes used for IPv4 */
    uint8_t prefix;          /* prefix length in bits */
} sl_cfg_cidr_t;

typedef enum sl_proxy_protocol {
    SL_PROXY_PROTOCOL_OFF = 0,
    SL_PROXY_PROTOCOL_V1,
    SL_PROXY_PROTOCOL_V2,
    SL_PROXY_PROTOCOL_ANY,   /* accept either version */
} sl_proxy_protocol_t;

typedef struct sl_cfg_cert {
    char *cert;      /* PEM chain file */
    char *key;       /* PEM private key file */
    sl_cfg_pos_t pos;
} sl_cfg_cert_t;

typedef struct sl_cfg_listener_tls {
    bool enabled;
    sl_cfg_cert_t *certificates;
    size_t n_certificates;
    char *min_version;           /* "TLSv1.2" (default) or "TLSv1.3" */
    char *ciphers;               /* TLS 1.2 cipher list; default: Mozilla intermediate */
    char *ciphersuites;          /* TLS 1.3 suites */
    char *ticket_key_file;       /* NULL: keys generated and rotated in memory */
    sl_msec_t ticket_rotate;     /* rotation period of in-memory ticket keys */
    uint32_t session_cache;      /* server-side session cache entries */
    sl_msec_t handshake_timeout;
    uint32_t max_handshakes;     /* handshakes in progress per worker */
} sl_cfg_listener_tls_t;

typedef struct sl_cfg_listener {
    sl_cfg_addr_t address;
    uint32_t backlog;                 /* default 4096 */
    sl_msec_t defer_accept;           /* TCP_DEFER_ACCEPT; 0: off; default 1s */
    bool delayed_ack;                 /* TCP_QUICKACK off: the first ACK rides on the answer */
    sl_proxy_protocol_t proxy_protocol;
    sl_cfg_listener_tls_t tls;
    sl_cfg_pos_t pos;
} sl_cfg_listener_t;

typedef struct sl_cfg_admin {
    bool enabled;                /* false when the key is absent or null */
    sl_cfg_addr_t address;       /* default 127.0.0.1:9900 */
    char *token_file;            /* bearer token; required off loopback */
    char *state_file;            /* runtime overrides; NULL: none kept */
    /* Where the file keys were written (absent: where the admin mapping is),
       for the shell's checks of the files themselves (sl_admin_check) and of
       a reload, which the loader cannot do without I/O. */
    sl_cfg_pos_t token_file_pos;
    sl_cfg_pos_t state_file_pos;
    sl_cfg_pos_t pos;            /* the admin mapping */
} sl_cfg_admin_t;

typedef struct sl_cfg_backend {
    sl_cfg_addr_t address;
    uint32_t weight;             /* default 1 */
} sl_cfg_backend_t;

typedef enum sl_balance {
    SL_BALANCE_LEAST_CONN = 0,
    SL_BALANCE_ROUND_ROBIN,
    SL_BALANCE_HASH,
} sl_balance_t;

typedef enum sl_hash_by {
    SL_HASH_BY_CLIENT_ADDRESS = 0,
    SL_HASH_BY_HEADER,
    SL_HASH_BY_COOKIE,
} sl_hash_by_t;

typedef struct sl_cfg_health {
    bool enabled;                /* active checks; off when `health` is absent */
    char *path;                  /* default "/healthz" */
    sl_msec_t interval;          /* default 2s */
    sl_msec_t timeout;           /* default 1s */
    uint32_t rise;               /* default 2 */
    uint32_t fall;               /* default 3 */
    uint32_t passive_failures;   /* consecutive connect failures that eject; 0: off */
    sl_msec_t passive_eject;     /* how long a passively ejected backend stays out */
} sl_cfg_health_t;

typedef struct sl_cfg_pool {
    char *name;
    sl_balance_t balance;
    sl_hash_by_t hash_by;
    char *hash_key;              /* header or cookie name for SL_HASH_BY_HEADER/COOKIE */
    sl_cfg_backend_t *backends;
    size_t n_backends;
    sl_cfg_health_t health;
    uint32_t connect_retries;    /* further backends tried after a failure; default 2 */
    /* Per-pool admission (each pool has its own capacity); rate 0: none. */
    double rate;                 /* tokens per second */
    uint32_t burst;
    sl_msec_t slow_start;        /* ramp after becoming healthy or a cutover target */
    /* TLS to backends. */
    bool tls;
    bool tls_verify;
    char *tls_ca_file;
    char *tls_sni;
    sl_cfg_pos_t pos;
} sl_cfg_pool_t;

typedef enum sl_reject_with {
    SL_REJECT_HTTP = 0,          /* 503 / 429 with Retry-After */
    SL_REJECT_WS_1013,           /* complete the upgrade, close 1013 "retry-after=N" */
} sl_reject_with_t;

typedef struct sl_cfg_admission {
    bool enabled;                /* `admission: off` sets false */
    double rate;                 /* tokens per second */
    uint32_t burst;
    uint32_t queue_length;
    sl_msec_t queue_max_wait;
    uint32_t queue_per_client;   /* queued entries per client address; 0: no cap */
    double per_client_rate;      /* admissions per second per address; 0: off */
    uint32_t per_client_burst;
    sl_msec_t retry_after_min;
    sl_msec_t retry_after_max;
    sl_reject_with_t reject_with;
    sl_msec_t slow_start;
    double slow_start_floor;     /* fraction of the rate a ramp starts at */
    bool requeue_backend_503;    /* a backend's 503 to an admitted upgrade: back in line once */
} sl_cfg_admission_t;

typedef struct sl_cfg_route {
    char *host;                  /* "*" matches every host; "*.example.com" a suffix */
    char *path_prefix;           /* default "/" */
    bool admission;              /* plain HTTP requests on this route take a token */
    sl_cfg_pos_t pos;
} sl_cfg_route_t;

typedef struct sl_cfg_drain {
    double rate;                 /* connections closed per second */
    uint16_t close_code;         /* default 1012 */
    char *reason;                /* default "service restart" */
    sl_msec_t grace;             /* wait for the client's close reply; default 10s */
} sl_cfg_drain_t;

typedef struct sl_cfg_service {
    char *name;
    sl_cfg_route_t *routes;
    size_t n_routes;
    size_t *pools;               /* indexes into sl_config_t.pools */
    size_t n_pools;
    size_t active;               /* index into sl_config_t.pools */
    sl_cfg_admission_t admission;
    sl_cfg_drain_t drain;
    sl_cfg_pos_t pos;
    /* The names as written (n_pools of them, and the active one; default: the
     * first listed): pools[] and active are resolved from these at load. */
    char **pool_names;
    char *active_name;
} sl_cfg_service_t;

typedef struct sl_cfg_limits {
    uint64_t head_bytes;         /* request head; 431 beyond; default 16KiB */
    uint32_t headers;            /* header count; 431 beyond; default 100 */
    uint32_t request_line;       /* 414 beyond; default 8KiB */
    uint64_t frame_bytes;        /* WebSocket frame payload; 1009 beyond; default 16MiB */
    uint64_t message_bytes;      /* WebSocket message; 1009 beyond; default 64MiB */
    uint32_t max_connections;    /* client connections, all workers; default 10000 */
    bool validate_utf8;          /* text messages, when no extension; default true */
    uint64_t write_high_water;   /* stop reading the other side above; default 256KiB */
    uint64_t write_low_water;    /* resume below; default 64KiB */
} sl_cfg_limits_t;

typedef struct sl_cfg_timeouts {
    sl_msec_t connect;           /* backend connect; default 3s */
    sl_msec_t head;              /* client request head; 408 beyond; default 10s */
    sl_msec_t backend_response;  /* backend response head; 504 beyond; default 30s */
    sl_msec_t idle;              /* no bytes either way; default 300s */
    sl_msec_t keepalive;         /* idle HTTP keep-alive connection; default 60s */
    sl_msec_t ping_interval;     /* ping idle WebSocket clients; 0: off; default 30s */
    sl_msec_t ping_timeout;      /* wait for the pong; default 10s */
} sl_cfg_timeouts_t;

typedef struct sl_cfg_shutdown {
    sl_msec_t timeout;           /* give up draining after; default 30s */
    double drain_rate;           /* connections closed per second; default 1000 */
    uint16_t close_code;         /* default 1001 */
} sl_cfg_shutdown_t;

typedef enum sl_log_level {
    SL_LOG_ERROR = 0,
    SL_LOG_WARN,
    SL_LOG_INFO,
    SL_LOG_DEBUG,
} sl_log_level_t;

typedef enum sl_log_format {
    SL_LOG_TEXT = 0,
    SL_LOG_JSON,
} sl_log_format_t;

typedef struct sl_cfg_log {
    sl_log_level_t level;
    sl_log_format_t format;
} sl_cfg_log_t;

typedef struct sl_cfg_access_log {
    bool enabled;
    char *path;                  /* NULL: standard output */
    sl_log_format_t format;
    sl_cfg_pos_t pos;            /* the key (absent: 1:1), for a reload's refusal */
} sl_cfg_access_log_t;

typedef struct sl_config {
    char *file;                  /* name used in error messages */
    sl_cfg_listener_t *listeners;
    size_t n_listeners;
    sl_cfg_admin_t admin;
    uint32_t workers;            /* 0: one per core ("auto") */
    sl_cfg_pos_t workers_pos;    /* where it was written (absent: 1:1), for a reload's refusal */
    sl_cfg_cidr_t *trusted_proxies;
    size_t n_trusted_proxies;
    sl_cfg_pool_t *pools;
    size_t n_pools;
    sl_cfg_service_t *services;
    size_t n_services;
    sl_cfg_limits_t limits;
    sl_cfg_timeouts_t timeouts;
    sl_cfg_shutdown_t shutdown;
    sl_cfg_log_t log;
    sl_cfg_access_log_t access_log;
    /* Where each key was written, as the loader recorded it: see sl_config_where. */
    struct sl__cfg_where *where;
    size_t n_where;
} sl_config_t;

/*
 * Where `field` (a pointer into cfg) was written in the file, or `fallback`
 * when it holds its default. For the shell's checks of what the loader
 * cannot judge without I/O (certificate files, cipher lists, a reload's
 * refusals), so their errors name the key's own line and column. Not for
 * the fields of a pool's backends, which the admin API can replace.
 */
sl_cfg_pos_t sl_config_where(const sl_config_t *cfg, const void *field, sl_cfg_pos_t fallback);

/*
 * Diagnostics: every error found, in file order. Each line is complete
 * ("FILE:LINE:COL: key.path: message"); the caller prints them.
 */
typedef struct sl_diag {
    char **lines;
    size_t n;
    size_t cap;
} sl_diag_t;

/* Free every line and reset `d` to empty (reusable). NULL is fine. */
void sl_diag_free(sl_diag_t *d);

/* Add one complete line (copied) — for the shell's own checks at load and reload. */
void sl_diag_add(sl_diag_t *d, const char *line);

/*
 * Parse YAML text into a config. `file` names the source in errors.
 * Returns 0 and sets *out on success; returns SL_EINVAL with every error in
 * `diag` (and *out NULL) when anything is wrong (SL_ENOMEM if memory runs
 * out). `text` need not be NUL-terminated. Lines are appended to `diag`
 * (start it zeroed; at most ~100 are kept). On success the caller owns *out
 * (sl_config_free). Does no I/O.
 */
int sl_config_parse(const char *text, size_t len, const char *file,
                    sl_config_t **out, sl_diag_t *diag);

/*
 * Read a file and parse it (the module's only I/O); `path` names the file in
 * errors. A read failure is one line "PATH: cannot read: <strerror>" in
 * `diag`, with SL_EINVAL and *out NULL.
 */
int sl_config_load(const char *path, sl_config_t **out, sl_diag_t *diag);

/* Free a config and everything in it. NULL is fine. */
void sl_config_free(sl_config_t *cfg);

/* Look-ups by name; NULL / -1 when absent. Results point into cfg. */
const sl_cfg_pool_t *sl_config_pool(const sl_config_t *cfg, const char *name);
long sl_config_pool_index(const sl_config_t *cfg, const char *name);
const sl_cfg_service_t *sl_config_service(const sl_config_t *cfg, const char *name);
/* Whether the service may send to the pool (index into cfg->pools). */
bool sl_config_service_uses(const sl_cfg_service_t *s, size_t pool);

/*
 * Checks a value against the bounds the YAML schema gives a key, named by its
 * path of key names ("services.admission.retry_after.min", "pools.burst"), in
 * the key's unit (per second, ms, bytes, a count). For values that arrive
 * another way (the admin API, the state file): they may not hold what a
 * config file could not. Returns true when within; otherwise false with
 * "out of range (expected 1s..1h, got 0s)" in msg.
 */
bool sl_config_check_bound(const char *path, double v, char *msg, size_t mlen);

/*
 * Unit parsers, shared with the admin API (which takes the same notations).
 * Each returns 0 or SL_EINVAL and never writes *out on error.
 *   durations: "250ms", "30s", "5m", "1h", "0"       -> milliseconds
 *   sizes:     "512", "16KiB", "1MiB", "2GiB", "10KB" -> bytes
 *   rates:     "500/s", "30/m", "2000/min", "0.5/s"   -> per second
 *   numbers:   "3", "0.25" (a rate's number: at most six digits after the
 *              point, none of "1.", ".5", "1e2", "+3")
 */
int sl_parse_duration(const char *s, sl_msec_t *out);
int sl_parse_size(const char *s, uint64_t *out);
int sl_parse_rate(const char *s, double *out);
int sl_parse_number(const char *s, double *out);

/*
 * Why text the notation refuses is not a duration, a size or a rate, in a
 * few words for the error message (the config's and the admin API's):
 * "finer than a millisecond", "unknown unit \"S\" (units: ms, s, m, h)",
 * "a space inside the value". Empty when there is nothing to add to the
 * expected form ("fast": no number).
 */
void sl_why_duration(const char *s, char *buf, size_t len);
void sl_why_size(const char *s, char *buf, size_t len);
void sl_why_rate(const char *s, char *buf, size_t len);

/*
 * Split "IP:port", "[IPv6]:port" or "host:port" (not resolved; port 0 is
 * accepted here and refused by the config rules). Fills host (malloc'd, the
 * caller frees it) and port. SL_ENOMEM when the copy cannot be made.
 */
int sl_parse_hostport(const char *s, char **host, uint16_t *port);

/* Parse "10.0.0.0/8", "::1/128" or a bare address (a full-length prefix).
 * A prefix with host bits set ("10.0.0.1/8") is refused as a likely typo. */
int sl_parse_cidr(const char *s, sl_cfg_cidr_t *out);

/*
 * Whether `addr` (network byte order; 4 bytes for AF_INET, 16 for AF_INET6)
 * is inside the prefix. An IPv4-mapped IPv6 address (::ffff:a.b.c.d, as a
 * dual-stack socket reports IPv4 peers) matches IPv4 prefixes. A family
 * other than the prefix's never matches.
 */
bool sl_cidr_contains(const sl_cfg_cidr_t *c, int family, const uint8_t *addr);

/* A backend given at run time (the admin API): "host:port" and a weight. */
typedef struct sl_cfg_backend_spec {
    const char *address;
    uint32_t weight;
} sl_cfg_backend_spec_t;

/*
 * Replace a pool's backends (PUT /api/v1/pools/{pool}/backends, applied over
 * the YAML at start and reload). Checks each address and weight and refuses
 * duplicates; on error leaves the pool as it was and explains in err.
 * Returns 0, SL_EINVAL or SL_ENOMEM. No I/O: names are resolved by the shell.
 */
int sl_config_set_backends(sl_config_t *cfg, size_t pool, const sl_cfg_backend_spec_t *b,
                           size_t n, char *err, size_t errlen);

/*
 * Print a one-screen summary (listeners, pools, routes, limits) for --check.
 * Always NUL-terminates buf (when len > 0). Returns the length of the whole
 * text (as snprintf does): when that is len or more, the text was cut and
 * its last line says so.
 */
size_t sl_config_summary(const sl_config_t *cfg, char *buf, size_t len);

#endif
