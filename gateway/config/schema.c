/*
 * gateway/config/schema.c: every key of the config file, one table per
 * mapping.
 *
 * A key is one line: name, type, where it is stored, its bounds, its default
 * (written as it would be in YAML, and parsed by the same code as the file,
 * so a default can never disagree with the notation) and a one-line doc.
 * Keys of features that are not built yet carry SL_CFG_NOT_IMPLEMENTED: the
 * loader refuses them instead of silently ignoring them, and when a feature
 * lands its keys are switched on here, in one place. The defaults stated in
 * include/sluice/config.h are the ones in these tables.
 */
#include <float.h>
#include <string.h>
#include <stdint.h>

#include "internal.h"

#define NI SL_CFG_NOT_IMPLEMENTED
#define FIELD_SIZE(T, f) sizeof(((T *)0)->f)
#define ELEM_SIZE(T, f) sizeof(*((T *)0)->f)

/* A scalar key stored in field `f` of struct T. */
#define KEY(T, f, nm, ty, ...) \
    {.name = nm, .type = ty, .off = offsetof(T, f), .width = FIELD_SIZE(T, f), __VA_ARGS__}
/* An array key: pointer field `f`, count field `cnt`. */
#define ARR(T, f, cnt, nm, ty, ...)                                                \
    {.name = nm, .type = ty, .off = offsetof(T, f), .width = ELEM_SIZE(T, f),      \
     .count_off = offsetof(T, cnt), __VA_ARGS__}
/* The walker keeps a "seen" array of SL__MAX_KEYS: a bigger table does not compile. */
#define TABLE(T, w, posf, namef, k)                                                \
    {.what = w, .size = sizeof(T), .pos_off = posf, .name_off = namef, .keys = k, \
     .n_keys = SL_ARRAY_SIZE(k) + 0 * sizeof(char[SL_ARRAY_SIZE(k) <= SL__MAX_KEYS ? 1 : -1])}
#define NOPOS SIZE_MAX

#define SEC 1000.0
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define KIB 1024.0
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)

static const char *const proxy_protocol_names[] = {"off", "v1", "v2", "any", NULL};
static const char *const balance_names[] = {"least_conn", "round_robin", "hash", NULL};
static const char *const hash_by_names[] = {"client_address", "header", "cookie", NULL};
static const char *const reject_names[] = {"http", "ws-1013", NULL};
static const char *const level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const format_names[] = {"text", "json", NULL};

/* ---- listeners ---------------------------------------------------------------- */

static const sl__ckey_t cert_keys[] = {
    KEY(sl_cfg_cert_t, cert, "cert", SL__T_STRING, .flags = SL__F_REQUIRED,
        .doc = "PEM certificate chain file"),
    KEY(sl_cfg_cert_t, key, "key", SL__T_STRING, .flags = SL__F_REQUIRED,
        .doc = "PEM private key file"),
};
static const sl__ctable_t cert_table =
    TABLE(sl_cfg_cert_t, "certificate", offsetof(sl_cfg_cert_t, pos), NOPOS, cert_keys);

#define T sl_cfg_listener_tls_t
static const sl__ckey_t tls_keys[] = {
    ARR(T, certificates, n_certificates, "certificates", SL__T_SEQ_MAP, .sub = &cert_table,
        .flags = SL__F_REQUIRED | SL__F_NONEMPTY, .doc = "certificate and key pairs (SNI picks)"),
    KEY(T, min_version, "min_version", SL__T_STRING, .def = "TLSv1.2",
        .doc = "lowest TLS version accepted: TLSv1.2 or TLSv1.3"),
    KEY(T, ciphers, "ciphers", SL__T_STRING, .flags = SL__F_NULLABLE,
        .doc = "TLS 1.2 cipher list; null: Mozilla intermediate"),
    KEY(T, ciphersuites, "ciphersuites", SL__T_STRING, .flags = SL__F_NULLABLE,
        .doc = "TLS 1.3 cipher suites; null: OpenSSL's default"),
    KEY(T, ticket_key_file, "ticket_key_file", SL__T_STRING, .flags = SL__F_NULLABLE,
        .doc = "session ticket keys; null: generated and rotated in memory"),
    KEY(T, ticket_rotate, "ticket_rotate", SL__T_DURATION, .def = "12h", .min = MIN,
        .max = 7 * 24 * HOUR, .doc = "rotation period of in-memory ticket keys"),
    KEY(T, session_cache, "session_cache", SL__T_UINT, .def = "20480", .min = 0, .max = 10000000,
        .doc = "server-side session cache entries; 0: off"),
    KEY(T, handshake_timeout, "handshake_timeout", SL__T_DURATION, .def = "10s", .min = 100,
        .max = 5 * MIN, .doc = "time allowed for a TLS handshake"),
    KEY(T, max_handshakes, "max_handshakes", SL__T_UINT, .def = "1000", .min = 1, .max = 1000000,
        .doc = "TLS handshakes in progress per worker"),
};
#undef T
static const sl__ctable_t tls_table = TABLE(sl_cfg_listener_tls_t, "TLS", NOPOS, NOPOS, tls_keys);

#define T sl_cfg_listener_t
static const sl__ckey_t listener_keys[] = {
    KEY(T, address, "address", SL__T_ADDR, .flags = SL__F_REQUIRED,
        .doc = "IP:port, [IPv6]:port or host:port to listen on"),
    KEY(T, backlog, "backlog", SL__T_UINT, .def = "4096", .min = 1, .max = 65535,
        .doc = "listen(2) backlog"),
    KEY(T, defer_accept, "defer_accept", SL__T_DURATION, .def = "1s", .min = 0, .max = MIN,
        .doc = "wake for a connection only when its first bytes arrive, waiting up to "
               "this long; 0: off"),
    KEY(T, delayed_ack, "delayed_ack", SL__T_BOOL, .def = "true",
        .doc = "let sluice's answer carry the ACK of a client's first bytes (TCP_QUICKACK "
               "off); false if clients that write a request in pieces with Nagle on stall"),
    KEY(T, proxy_protocol, "proxy_protocol", SL__T_ENUM, .names = proxy_protocol_names,
        .def = "off", .doc = "expect a PROXY protocol header: off, v1, v2 or any"),
    KEY(T, tls, "tls", SL__T_MAP, .sub = &tls_table, .flags = SL__F_PRESENT,
        .present_off = offsetof(T, tls.enabled), .doc = "terminate TLS on this listener"),
};
#undef T
static const sl__ctable_t listener_table =
    TABLE(sl_cfg_listener_t, "listener", offsetof(sl_cfg_listener_t, pos), NOPOS, listener_keys);

/* ---- admin -------------------------------------------------------------------- */

#define T sl_cfg_admin_t
static const sl__ckey_t admin_keys[] = {
    KEY(T, address, "address", SL__T_ADDR, .def = "127.0.0.1:9900",
        .doc = "where the admin API listens"),
    KEY(T, token_file, "token_file", SL__T_STRING, .flags = SL__F_NULLABLE,
        .doc = "file holding the bearer token; required off loopback"),
    KEY(T, state_file, "state_file", SL__T_STRING, .flags = SL__F_NULLABLE,
        .doc = "where runtime changes are kept; null: not kept"),
};
#undef T
static const sl__ctable_t admin_table =
    TABLE(sl_cfg_admin_t, "admin", offsetof(sl_cfg_admin_t, pos), NOPOS, admin_keys);

/* ---- pools -------------------------------------------------------------------- */

#define T sl_cfg_backend_t
static const sl__ckey_t backend_keys[] = {
    KEY(T, address, "address", SL__T_ADDR, .flags = SL__F_REQUIRED,
        .doc = "IP:port, [IPv6]:port or host:port of the backend"),
    KEY(T, weight, "weight", SL__T_UINT, .def = "1", .min = 0, .max = 1000,
        .doc = "share of the pool's traffic; 0: takes none"),
};
#undef T
static const sl__ctable_t backend_table =
    TABLE(sl_cfg_backend_t, "backend", NOPOS, NOPOS, backend_keys);

#define T sl_cfg_health_t
static const sl__ckey_t health_keys[] = {
    KEY(T, path, "path", SL__T_STRING, .def = "/healthz",
        .doc = "HTTP path checked; a 2xx or 3xx status passes"),
    KEY(T, interval, "interval", SL__T_DURATION, .def = "2s", .min = 100, .max = HOUR,
        .doc = "time between checks"),
    KEY(T, timeout, "timeout", SL__T_DURATION, .def = "1s", .min = 10, .max = MIN,
        .doc = "a check slower than this fails"),
    KEY(T, rise, "rise", SL__T_UINT, .def = "2", .min = 1, .max = 100,
        .doc = "passed checks that bring a backend in"),
    KEY(T, fall, "fall", SL__T_UINT, .def = "3", .min = 1, .max = 100,
        .doc = "failed checks that take a backend out"),
    KEY(T, passive_failures, "passive_failures", SL__T_UINT, .def = "0", .min = 0, .max = 1000,
        .doc = "consecutive connect failures that eject a backend; 0: off"),
    KEY(T, passive_eject, "passive_eject", SL__T_DURATION, .def = "30s", .min = SEC, .max = HOUR,
        .doc = "how long a passively ejected backend stays out"),
};
#undef T
static const sl__ctable_t health_table =
    TABLE(sl_cfg_health_t, "health check", NOPOS, NOPOS, health_keys);

#define T sl_cfg_pool_t
static const sl__ckey_t pool_keys[] = {
    KEY(T, balance, "balance", SL__T_ENUM, .names = balance_names,
        .def = "least_conn", .doc = "least_conn, round_robin or hash"),
    KEY(T, hash_by, "hash_by", SL__T_ENUM, .names = hash_by_names,
        .def = "client_address", .doc = "what balance: hash hashes"),
    KEY(T, hash_key, "hash_key", SL__T_STRING, .flags = SL__F_NULLABLE,
        .doc = "header or cookie name for hash_by: header / cookie"),
    ARR(T, backends, n_backends, "backends", SL__T_SEQ_MAP, .sub = &backend_table,
        .doc = "the pool's backends"),
    KEY(T, health, "health", SL__T_MAP, .sub = &health_table, .flags = SL__F_PRESENT,
        .present_off = offsetof(T, health.enabled), .doc = "active health checks"),
    KEY(T, connect_retries, "connect_retries", SL__T_UINT, .def = "2", .min = 0, .max = 10,
        .doc = "further backends tried after a connect failure"),
    KEY(T, rate, "rate", SL__T_RATE, .def = "0/s", .min = 0, .max = 1e7,
        .doc = "admissions per second into this pool; 0: no limit"),
    KEY(T, burst, "burst", SL__T_UINT, .def = "100", .min = 1, .max = 10000000,
        .doc = "admissions allowed at once above the rate"),
    KEY(T, slow_start, "slow_start", SL__T_DURATION, .def = "0", .min = 0,
        .max = HOUR, .doc = "rate ramp after the pool becomes healthy or a cutover target"),
    KEY(T, tls, "tls", SL__T_BOOL, .def = "false", .doc = "connect to the backends with TLS"),
    KEY(T, tls_verify, "tls_verify", SL__T_BOOL, .def = "true",
        .doc = "verify the backend certificate"),
    KEY(T, tls_ca_file, "tls_ca_file", SL__T_STRING, .flags = SL__F_NULLABLE,
        .doc = "CA bundle; null: the system's"),
    KEY(T, tls_sni, "tls_sni", SL__T_STRING, .flags = SL__F_NULLABLE,
        .doc = "server name sent; null: the backend host"),
};
#undef T
static const sl__ctable_t pool_table = TABLE(sl_cfg_pool_t, "pool", offsetof(sl_cfg_pool_t, pos),
                                             offsetof(sl_cfg_pool_t, name), pool_keys);

/* ---- services ----------------------------------------------------------------- */

#define T sl_cfg_route_t
static const sl__ckey_t route_keys[] = {
    KEY(T, host, "host", SL__T_STRING, .def = "*",
        .doc = "\"*\", \"*.example.com\" or a host name"),
    KEY(T, path_prefix, "path_prefix", SL__T_STRING, .def = "/",
        .doc = "request paths starting with this"),
    KEY(T, admission, "admission", SL__T_BOOL, .def = "false",
        .doc = "plain HTTP requests on this route take an admission token"),
};
#undef T
static const sl__ctable_t route_table =
    TABLE(sl_cfg_route_t, "route", offsetof(sl_cfg_route_t, pos), NOPOS, route_keys);

/* The admission sub-mappings (queue, per_client, retry_after) store into the
 * same flat struct, so their keys have offsets in sl_cfg_admission_t. */
#define T sl_cfg_admission_t
static const sl__ckey_t queue_keys[] = {
    KEY(T, queue_length, "length", SL__T_UINT, .def = "50000", .min = 0,
        .max = 10000000, .doc = "clients waiting at most; 0: no queue"),
    KEY(T, queue_max_wait, "max_wait", SL__T_DURATION, .def = "30s", .min = 0,
        .max = 10 * MIN, .doc = "longest wait before a 503"),
    KEY(T, queue_per_client, "per_client", SL__T_UINT, .def = "16", .min = 0,
        .max = 100000, .doc = "entries per client address; 0: no cap"),
};
static const sl__ckey_t per_client_keys[] = {
    KEY(T, per_client_rate, "rate", SL__T_RATE, .def = "0/s", .min = 0, .max = 1e6,
        .doc = "admissions per second per client address; 0: off"),
    KEY(T, per_client_burst, "burst", SL__T_UINT, .def = "10", .min = 1,
        .max = 100000, .doc = "admissions at once per client address"),
};
static const sl__ckey_t retry_keys[] = {
    KEY(T, retry_after_min, "min", SL__T_DURATION, .def = "1s", .min = SEC,
        .max = HOUR, .doc = "shortest Retry-After given"),
    KEY(T, retry_after_max, "max", SL__T_DURATION, .def = "30s", .min = SEC,
        .max = HOUR, .doc = "longest Retry-After given"),
};
static const sl__ctable_t queue_table = TABLE(T, "queue", NOPOS, NOPOS, queue_keys);
static const sl__ctable_t per_client_table = TABLE(T, "per_client", NOPOS, NOPOS, per_client_keys);
static const sl__ctable_t retry_table = TABLE(T, "retry_after", NOPOS, NOPOS, retry_keys);
static const sl__ckey_t admission_keys[] = {
    KEY(T, enabled, "enabled", SL__T_BOOL, .def = "true",
        .doc = "admission control for this service"),
    KEY(T, rate, "rate", SL__T_RATE, .def = "2000/s", .min = 0.001, .max = 1e7,
        .doc = "new WebSocket connections admitted per second"),
    KEY(T, burst, "burst", SL__T_UINT, .def = "200", .min = 1, .max = 10000000,
        .doc = "admissions allowed at once above the rate"),
    {.name = "queue", .type = SL__T_MAP, .sub = &queue_table,
     .doc = "the FIFO of clients waiting for a token"},
    {.name = "per_client", .type = SL__T_MAP, .sub = &per_client_table,
     .doc = "limits per client address"},
    {.name = "retry_after", .type = SL__T_MAP, .sub = &retry_table,
     .doc = "bounds of the Retry-After given to rejected clients"},
    KEY(T, reject_with, "reject_with", SL__T_ENUM, .names = reject_names,
        .def = "http", .doc = "http (503 + Retry-After) or ws-1013"),
    KEY(T, slow_start, "slow_start", SL__T_DURATION, .def = "10s", .min = 0,
        .max = HOUR, .doc = "rate ramp after a restart or cutover"),
    KEY(T, slow_start_floor, "slow_start_floor", SL__T_NUMBER, .def = "0.1",
        .min = 0, .max = 1, .doc = "fraction of the rate a ramp starts at"),
    KEY(T, requeue_backend_503, "requeue_backend_503", SL__T_BOOL, .def = "true",
        .doc = "a backend's 503 to an admitted upgrade sends the client back in line once "
               "instead of to the client; false for backends whose 503 means go away"),
};
#undef T
static const sl__ctable_t admission_table =
    TABLE(sl_cfg_admission_t, "admission", NOPOS, NOPOS, admission_keys);

#define T sl_cfg_drain_t
static const sl__ckey_t drain_keys[] = {
    KEY(T, rate, "rate", SL__T_RATE, .def = "500/s", .min = 0.001, .max = 1e7,
        .doc = "connections closed per second while draining"),
    KEY(T, close_code, "close_code", SL__T_UINT, .def = "1012", .min = 1000, .max = 4999,
        .doc = "WebSocket close code sent"),
    KEY(T, reason, "reason", SL__T_STRING, .def = "service restart",
        .doc = "close reason sent (at most 123 bytes)"),
    KEY(T, grace, "grace", SL__T_DURATION, .def = "10s", .min = 0, .max = 10 * MIN,
        .doc = "wait for the client's close reply"),
};
#undef T
static const sl__ctable_t drain_table = TABLE(sl_cfg_drain_t, "drain", NOPOS, NOPOS, drain_keys);

#define T sl_cfg_service_t
static const sl__ckey_t service_keys[] = {
    ARR(T, routes, n_routes, "routes", SL__T_SEQ_MAP, .sub = &route_table,
        .flags = SL__F_REQUIRED | SL__F_NONEMPTY, .doc = "requests this service takes"),
    ARR(T, pool_names, n_pools, "pools", SL__T_SEQ_STR, .flags = SL__F_REQUIRED | SL__F_NONEMPTY,
        .doc = "pools the service may send to, by name"),
    KEY(T, active_name, "active", SL__T_STRING, .doc = "pool new connections go to; default: the first"),
    KEY(T, admission, "admission", SL__T_MAP, .sub = &admission_table,
        .flags = SL__F_OFF | SL__F_PRESENT, .present_off = offsetof(T, admission.enabled),
        .doc = "admission control; `admission: off` turns it off"),
    KEY(T, drain, "drain", SL__T_MAP, .sub = &drain_table,
        .doc = "how connections are closed when a pool is drained"),
};
#undef T
static const sl__ctable_t service_table =
    TABLE(sl_cfg_service_t, "service", offsetof(sl_cfg_service_t, pos),
          offsetof(sl_cfg_service_t, name), service_keys);

/* ---- limits, timeouts, shutdown, logs ------------------------------------------- */

#define T sl_cfg_limits_t
static const sl__ckey_t limits_keys[] = {
    KEY(T, head_bytes, "head_bytes", SL__T_SIZE, .def = "16KiB", .min = KIB, .max = MIB,
        .doc = "largest request head; 431 beyond"),
    KEY(T, headers, "headers", SL__T_UINT, .def = "100", .min = 1, .max = 256,
        .doc = "most header fields; 431 beyond"),
    KEY(T, request_line, "request_line", SL__T_SIZE, .def = "8KiB", .min = 256, .max = 64 * KIB,
        .doc = "longest request line; 414 beyond"),
    KEY(T, frame_bytes, "frame_bytes", SL__T_SIZE, .def = "16MiB", .min = KIB, .max = GIB,
        .doc = "largest WebSocket frame payload; close 1009 beyond"),
    KEY(T, message_bytes, "message_bytes", SL__T_SIZE, .def = "64MiB", .min = KIB, .max = 4 * GIB,
        .doc = "largest WebSocket message; close 1009 beyond"),
    KEY(T, max_connections, "max_connections", SL__T_UINT, .def = "10000", .min = 1,
        .max = 10000000, .doc = "client connections over all workers"),
    KEY(T, validate_utf8, "validate_utf8", SL__T_BOOL, .def = "true",
        .doc = "check that text messages are UTF-8"),
    KEY(T, write_high_water, "write_high_water", SL__T_SIZE, .def = "256KiB", .min = 4 * KIB,
        .max = 64 * MIB, .doc = "stop reading the other side above this much queued"),
    KEY(T, write_low_water, "write_low_water", SL__T_SIZE, .def = "64KiB", .min = 0,
        .max = 64 * MIB, .doc = "resume reading below this (less than write_high_water)"),
};
#undef T
static const sl__ctable_t limits_table = TABLE(sl_cfg_limits_t, "limits", NOPOS, NOPOS, limits_keys);

#define T sl_cfg_timeouts_t
static const sl__ckey_t timeouts_keys[] = {
    KEY(T, connect, "connect", SL__T_DURATION, .def = "3s", .min = 10, .max = 5 * MIN,
        .doc = "backend connect"),
    KEY(T, head, "head", SL__T_DURATION, .def = "10s", .min = 100, .max = 10 * MIN,
        .doc = "client request head; 408 beyond"),
    KEY(T, backend_response, "backend_response", SL__T_DURATION, .def = "30s", .min = 100,
        .max = HOUR, .doc = "backend response head; 504 beyond"),
    KEY(T, idle, "idle", SL__T_DURATION, .def = "300s", .min = SEC, .max = 24 * HOUR,
        .doc = "no bytes either way"),
    KEY(T, keepalive, "keepalive", SL__T_DURATION, .def = "60s", .min = 0, .max = HOUR,
        .doc = "idle HTTP keep-alive connection; 0: no keep-alive"),
    KEY(T, ping_interval, "ping_interval", SL__T_DURATION, .def = "30s", .min = 0, .max = HOUR,
        .doc = "ping idle WebSocket clients; 0: off"),
    KEY(T, ping_timeout, "ping_timeout", SL__T_DURATION, .def = "10s", .min = 100, .max = 10 * MIN,
        .doc = "wait for the pong"),
};
#undef T
static const sl__ctable_t timeouts_table =
    TABLE(sl_cfg_timeouts_t, "timeouts", NOPOS, NOPOS, timeouts_keys);

#define T sl_cfg_shutdown_t
static const sl__ckey_t shutdown_keys[] = {
    KEY(T, timeout, "timeout", SL__T_DURATION, .def = "30s", .min = 0, .max = HOUR,
        .doc = "give up draining after"),
    KEY(T, drain_rate, "drain_rate", SL__T_RATE, .def = "1000/s", .min = 0.001, .max = 1e7,
        .doc = "connections closed per second"),
    KEY(T, close_code, "close_code", SL__T_UINT, .def = "1001", .min = 1000, .max = 4999,
        .doc = "WebSocket close code sent"),
};
#undef T
static const sl__ctable_t shutdown_table =
    TABLE(sl_cfg_shutdown_t, "shutdown", NOPOS, NOPOS, shutdown_keys);

#define T sl_cfg_log_t
static const sl__ckey_t log_keys[] = {
    KEY(T, level, "level", SL__T_ENUM, .names = level_names, .def = "info",
        .doc = "error, warn, info or debug"),
    KEY(T, format, "format", SL__T_ENUM, .names = format_names, .def = "text",
        .doc = "text or json"),
};
#undef T
static const sl__ctable_t log_table = TABLE(sl_cfg_log_t, "log", NOPOS, NOPOS, log_keys);

#define T sl_cfg_access_log_t
static const sl__ckey_t access_log_keys[] = {
    KEY(T, path, "path", SL__T_STRING, .flags = SL__F_NULLABLE, .doc = "file; null: stdout"),
    KEY(T, format, "format", SL__T_ENUM, .names = format_names, .def = "text",
        .doc = "text or json"),
};
#undef T
static const sl__ctable_t access_log_table =
    TABLE(sl_cfg_access_log_t, "access_log", NOPOS, NOPOS, access_log_keys);

/* ---- the top level ------------------------------------------------------------ */

#define T sl_config_t
static const sl__ckey_t root_keys[] = {
    ARR(T, listeners, n_listeners, "listeners", SL__T_SEQ_MAP, .sub = &listener_table,
        .flags = SL__F_REQUIRED | SL__F_NONEMPTY, .doc = "where clients connect"),
    KEY(T, admin, "admin", SL__T_MAP, .sub = &admin_table,
        .flags = SL__F_NULLABLE | SL__F_PRESENT, .present_off = offsetof(T, admin.enabled),
        .doc = "the admin API; null or absent: off"),
    KEY(T, workers, "workers", SL__T_UINT, .flags = SL__F_AUTO, .def = "auto", .min = 1,
        .max = 256, .doc = "worker threads; auto: one per core"),
    ARR(T, trusted_proxies, n_trusted_proxies, "trusted_proxies", SL__T_SEQ_CIDR,
        .doc = "peers whose X-Forwarded-For and Forwarded are kept and believed (a PROXY "
               "header is believed from any peer of a listener that expects one)"),
    ARR(T, pools, n_pools, "pools", SL__T_NAMED_MAP, .sub = &pool_table,
        .flags = SL__F_REQUIRED | SL__F_NONEMPTY, .doc = "backend pools by name"),
    ARR(T, services, n_services, "services", SL__T_NAMED_MAP, .sub = &service_table,
        .flags = SL__F_REQUIRED | SL__F_NONEMPTY, .doc = "services by name"),
    KEY(T, limits, "limits", SL__T_MAP, .sub = &limits_table, .doc = "size limits"),
    KEY(T, timeouts, "timeouts", SL__T_MAP, .sub = &timeouts_table, .doc = "timeouts"),
    KEY(T, shutdown, "shutdown", SL__T_MAP, .sub = &shutdown_table, .doc = "graceful stop"),
    KEY(T, log, "log", SL__T_MAP, .sub = &log_table, .doc = "the process log"),
    KEY(T, access_log, "access_log", SL__T_MAP, .sub = &access_log_table,
        .flags = SL__F_NULLABLE | SL__F_PRESENT,
        .present_off = offsetof(T, access_log.enabled), .doc = "one line per request"),
};
#undef T
const sl__ctable_t sl__root_table = TABLE(sl_config_t, "config", NOPOS, NOPOS, root_keys);

const sl__ckey_t *sl__key_by_path(const char *path)
{
    const sl__ctable_t *t = &sl__root_table;
    const sl__ckey_t *k = NULL;
    while (t != NULL && *path) {
        size_t n = strcspn(path, ".");
        k = NULL;
        for (size_t i = 0; i < t->n_keys && k == NULL; i++)
            if (strlen(t->keys[i].name) == n && memcmp(t->keys[i].name, path, n) == 0)
                k = &t->keys[i];
        if (k == NULL)
            return NULL;
        path += n;
        if (*path == '.') {
            path++;
            t = k->sub;
            if (t == NULL)
                return NULL;
        }
    }
    return k;
}
