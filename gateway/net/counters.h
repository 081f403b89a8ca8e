/*
 * counters.h: what the gateway counts, per worker.
 *
 * Each worker increments its own array with relaxed atomics (cheap on x86,
 * and visible to ThreadSanitizer), and the control thread sums the workers'
 * arrays when the admin API or /metrics asks. The table below is the single
 * list: name, Prometheus help text, and whether it is a gauge.
 */
#ifndef SLUICE_NET_COUNTERS_H
#define SLUICE_NET_COUNTERS_H

#include <stdatomic.h>
#include <stdint.h>

#define SL_COUNTERS(X)                                                                     \
    X(CONN_ACCEPTED, "connections_accepted_total", "Client connections accepted", 0)       \
    X(CONN_OPEN, "connections_open", "Client connections open", 1)                         \
    X(CONN_CAP_PAUSES, "accept_pauses_total", "Times accepting paused at the connection cap", 0) \
    X(CONN_EMFILE_PAUSES, "accept_emfile_pauses_total", "Times accepting paused because file descriptors ran out", 0) \
    X(PROXY_HEADER_ERRORS, "proxy_protocol_errors_total", "Connections closed for a bad PROXY protocol header", 0) \
    X(HTTP_REQUESTS, "http_requests_total", "Plain HTTP requests proxied", 0)              \
    X(HTTP_ERRORS_4XX, "http_gateway_4xx_total", "4xx responses the gateway made itself", 0) \
    X(HTTP_ERRORS_5XX, "http_gateway_5xx_total", "5xx responses the gateway made itself", 0) \
    X(HTTP_HEAD_TIMEOUTS, "http_head_timeouts_total", "Clients cut off for a slow request head (408)", 0) \
    X(WS_UPGRADES, "ws_upgrades_total", "WebSocket upgrades completed", 0)                 \
    X(WS_OPEN, "ws_open", "Proxied WebSockets open", 1)                                    \
    X(WS_HANDSHAKE_FAILURES, "ws_handshake_failures_total", "Upgrades the backend refused or botched", 0) \
    X(WS_FRAMES_C2B, "ws_frames_client_to_backend_total", "Frames relayed client to backend", 0) \
    X(WS_FRAMES_B2C, "ws_frames_backend_to_client_total", "Frames relayed backend to client", 0) \
    X(WS_MESSAGES_C2B, "ws_messages_client_to_backend_total", "Messages relayed client to backend", 0) \
    X(WS_MESSAGES_B2C, "ws_messages_backend_to_client_total", "Messages relayed backend to client", 0) \
    X(BYTES_C2B, "bytes_client_to_backend_total", "Bytes relayed client to backend", 0)   \
    X(BYTES_B2C, "bytes_backend_to_client_total", "Bytes relayed backend to client", 0)   \
    X(WS_CLIENT_PROTOCOL_ERRORS, "ws_client_protocol_errors_total", "Clients closed for a protocol violation", 0) \
    X(WS_BACKEND_PROTOCOL_ERRORS, "ws_backend_protocol_errors_total", "Backends closed for a protocol violation", 0) \
    X(WS_BACKEND_LOST, "ws_backend_lost_total", "Backends that died mid-stream (client got 1014)", 0) \
    X(WS_PINGS_SENT, "ws_pings_sent_total", "Liveness pings sent to idle clients", 0)     \
    X(WS_PING_TIMEOUTS, "ws_ping_timeouts_total", "Clients closed for not answering a ping", 0) \
    X(IDLE_TIMEOUTS, "idle_timeouts_total", "Connections closed for idleness", 0)          \
    X(DRAINS_STARTED, "drains_started_total", "Connections told to close (drain)", 0)      \
    X(DRAINS_COMPLETED, "drains_completed_total", "Drained connections whose client answered the close", 0) \
    X(DRAIN_GRACE_EXPIRED, "drain_grace_expired_total", "Drained connections closed at the end of grace", 0) \
    X(DRAIN_UNDELIVERABLE, "drain_undeliverable_frames_total", "Backend frames that arrived after the client's close and could not be delivered", 0) \
    X(BACKEND_CONNECT_FAILURES, "backend_connect_failures_total", "Backend connects that failed or timed out", 0) \
    X(BACKEND_PORT_SHORTAGES, "backend_port_shortages_total", "Backend connects that found no local port left (EADDRNOTAVAIL; not the backend's failure)", 0) \
    X(BACKEND_RESPONSE_TIMEOUTS, "backend_response_timeouts_total", "Backend responses that timed out (504)", 0) \
    X(BACKEND_REUSED, "backend_connections_reused_total", "HTTP requests sent on a kept-alive backend connection", 0) \
    X(ADMISSION_ADMITTED, "admission_sessions_admitted_total", "Sessions admitted by the admission controller", 0) \
    X(ADMISSION_REJECTED_503, "admission_sessions_rejected_503_total", "Clients turned away with 503 and Retry-After", 0) \
    X(ADMISSION_REJECTED_429, "admission_sessions_rejected_429_total", "Clients turned away with 429 (per-address limits)", 0) \
    X(ADMISSION_REJECTED_1013, "admission_sessions_rejected_1013_total", "WebSocket clients turned away with close 1013", 0) \
    X(ADMISSION_REQUEUED, "admission_sessions_requeued_total", "Admitted WebSocket clients sent back to the queue: no backend up, a failed connect, or the backend's 503", 0) \
    X(ADMISSION_REQUEUED_BUSY, "admission_sessions_requeued_backend_503_total", "Of those, clients whose backend had answered 503", 0) \
    X(BACKPRESSURE_PAUSES, "backpressure_pauses_total", "Times a side stopped reading because the other side's queue was high", 0)

enum sl_counter {
#define SL_COUNTER_ENUM(id, name, help, gauge) SL_CTR_##id,
    SL_COUNTERS(SL_COUNTER_ENUM)
#undef SL_COUNTER_ENUM
    SL_CTR__COUNT
};

typedef struct sl_counters {
    _Atomic uint64_t v[SL_CTR__COUNT];
} sl_counters_t;

static inline void sl_count(sl_counters_t *c, enum sl_counter id, uint64_t n)
{
    atomic_fetch_add_explicit(&c->v[id], n, memory_order_relaxed);
}

static inline void sl_gauge_dec(sl_counters_t *c, enum sl_counter id)
{
    atomic_fetch_sub_explicit(&c->v[id], 1, memory_order_relaxed);
}

typedef struct sl_counter_info {
    const char *name;
    const char *help;
    int gauge;
} sl_counter_info_t;

extern const sl_counter_info_t sl_counter_info[SL_CTR__COUNT];

#endif
