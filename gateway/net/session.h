/*
 * session.h: one client connection and everything it leads to.
 *
 * A session embeds its client stream and its timer (callbacks get the session
 * back with container_of) and borrows a backend connection (sl_upstream_t),
 * which has its own lifetime so that a kept-alive HTTP backend connection can
 * outlive the client that opened it.
 *
 * Life: PROXY header (if the listener says so) -> request head -> route ->
 * either the WebSocket path (handshake relayed, then frames relayed) or the
 * plain HTTP path (request and response streamed, then the next request on
 * the same connection). sl_session_close() is the one way out: idempotent,
 * called from every error path; admission slots, counters and the runtime
 * reference are released in teardown, once.
 */
#ifndef SLUICE_NET_SESSION_H
#define SLUICE_NET_SESSION_H

#include <stdbool.h>
#include <uv.h>

#include "sluice/http.h"
#include "sluice/wsframe.h"
#include "gateway.h"

typedef enum sl_session_state {
    SL_SS_PROXY_HEADER,      /* reading a PROXY protocol header */
    SL_SS_HEAD,              /* reading a request head */
    SL_SS_ADMISSION,         /* waiting for the control thread's admission answer */
    SL_SS_CONNECTING,        /* connecting to a backend */
    SL_SS_WS_HANDSHAKE,      /* upgrade forwarded; waiting for the backend's answer */
    SL_SS_WS_RELAY,          /* frames flow both ways */
    SL_SS_HTTP,              /* a plain request/response exchange is in flight */
    SL_SS_LINGER,            /* our last bytes are out; reading and discarding until EOF */
    SL_SS_CLOSING,
} sl_session_state_t;

/* A backend connection. */
struct sl_upstream {
    uv_tcp_t tcp;
    uv_timer_t timer;
    sl_worker_t *worker;
    sl_session_t *session;           /* the owner while attached; NULL when idle */
    sl_runtime_t *rt;                /* keeps `backend` alive */
    sl_backend_rt_t *backend;
    sl_upstream_t *next_idle;
    sl_msec_t idle_since;
    uint32_t queued_mem;             /* memory its queued writes hold (io.c, backpressure) */
    uint8_t pending_closes;
    bool connected;
    bool unconfirmed;                /* a request went out before the connect was known to succeed */
    bool closing;
    bool reading;
    bool counted_active;             /* holds one of backend->state->active */
    bool acks_delayed;               /* out of quick-ack mode until the request has gone */
    bool lingering;                  /* released; its last bytes still going out (upstream.c) */
    bool write_failed;               /* a write to it failed: never reused */
    bool read_eof;                   /* its end (or an error) was read */
};

/* Why a session's reading is stopped; reading resumes when no reason is left. */
enum {
    SL_PAUSE_BACKPRESSURE = 1,       /* the other side's write queue is high */
    SL_PAUSE_WAITING = 2,            /* the session is not ready for more (e.g. between requests) */
};

struct sl_session {
    sl_worker_t *w;
    sl_runtime_t *rt;                /* the snapshot this session routes by */
    size_t index;                    /* position in w->sessions */
    uv_tcp_t client;
    uv_timer_t timer;
    sl_upstream_t *up;
    sl_session_state_t state;
    uint32_t client_queued_mem;      /* memory the client's queued writes hold (io.c) */
    uint8_t pending_closes;
    uint8_t client_paused;           /* SL_PAUSE_* bits */
    uint8_t backend_paused;
    bool client_reading;
    bool client_eof;
    bool shutdown_pending;           /* LINGER: the answer's last bytes are still going out */
    bool tls;                        /* the client came over TLS */
    bool proxy_before_tls;           /* a PROXY header is due before the ClientHello */
    struct sl_tls_conn *tlsc;        /* the client side's TLS state (tls.c), or NULL */

    /* Who the client is. */
    const sl_cfg_listener_t *listener;
    char peer_ip[46];                /* the TCP peer, or the PROXY protocol source */
    char client_ip[46];              /* the real client (trusted XFF applied) */
    bool peer_trusted;

    /* Head phase: one contiguous buffer the HTTP parser reads. */
    char *head;
    uint32_t head_len;
    uint32_t head_cap;
    sl_http_parser_t *req;
    sl_http_parser_t *resp;          /* backend response (HTTP, or the 101) */
    char *resp_head;
    uint32_t resp_len;
    uint32_t resp_cap;

    /* Routing and the backend. */
    long service;
    long route;
    long pool;
    uint8_t tries;                   /* connect attempts so far */
    uint8_t requeues;                /* times sent back to admission (session.c requeue) */
    bool port_short;                 /* a try found no local port toward its backend */
    bool up_reused;                  /* s->up came from the kept-alive list */
    bool fresh_only;                 /* connect anew: a reused connection was stale */
    uint16_t tried[12];              /* backends already tried (connect_retries <= 10) */
    uint64_t hash_key;               /* FNV-1a of the sticky key (hash balancing) */
    long hash_pool;                  /* the pool whose hash_by made hash_key; -1: none */
    uint64_t admit_id;
    bool admit_pending;              /* an answer is on its way: keep the memory */
    sl_msec_t admit_waited;          /* ms waited for admission (while pending: when it asked) */

    /* HTTP exchange. */
    char *fwd;                       /* the rewritten request head, until sent */
    uint32_t fwd_len;
    uint32_t body_buffered;          /* body bytes at the front of the head buffer, judged */
    bool req_done;                   /* the whole request body reached the backend */
    bool resp_done;
    bool keep_alive;                 /* the client connection stays open after this exchange */
    bool resp_started;               /* response bytes reached the client: no error page now */

    /* WebSocket. */
    char ws_key[32];
    uint8_t ws_key_len;
    sl_ws_parser_t c2b;              /* frames from the client */
    sl_ws_parser_t b2c;              /* frames from the backend */
    sl_msec_t last_client_rx;
    sl_msec_t last_rx;               /* either side */
    sl_msec_t ping_sent_at;          /* 0: no ping outstanding */
    sl_msec_t client_alive_at;       /* when the client last showed it is there without
                                        sending: backpressure on its reads ended, or a write
                                        queued for it went out (the ping clock counts from it) */
    sl_msec_t drain_deadline;        /* 0: not draining */
    sl_msec_t head_deadline;
    sl_msec_t linger_deadline;
    bool awaiting_next;              /* kept alive, between requests */
    uint16_t drain_code;
    const char *drain_reason;        /* interned by the worker (sl_worker_intern) */
    bool drain_pending;              /* close the client at the next message boundary */
    bool ping_pending;               /* ping the client at the next frame boundary */
    bool fail_pending;               /* the client broke the protocol mid a backend frame: its
                                        close (c2b's sticky error) goes at that frame's end */
    bool close_to_client;            /* we or the backend sent the client a close frame */
    bool close_from_client;          /* the client sent a close frame */
    bool close_from_backend;
    bool close_to_backend;
    bool draining;
    bool drain_close_sent;           /* the drain's own close went to the client */
    bool counted_ws;
    uint64_t bytes_c2b;
    uint64_t bytes_b2c;
    /* The access log's view of the exchange. */
    uint16_t log_status;             /* HTTP status the client got (101: upgraded) */
    uint16_t log_close;              /* the first close code the client sent or got */
    bool logged;
    uint8_t log_method;              /* llhttp method of the request */
    char *log_target;                /* the request target, kept only when logging */
    int16_t log_backend;             /* index in the pool of s->rt; -1: none */
    uint32_t client_acked_seen;      /* the client's acknowledged bytes (low 32 bits) when
                                        last asked (sl_session_client_reading); here, in the
                                        hole before the next 8-byte field */
    sl_msec_t exchange_started;
    sl_msec_t started;
};

/* Accept hook: a listener has a new, open client socket. */
/* A connection accept4() gave us, with the peer address it reported. */
void sl_session_accept(sl_worker_t *w, const sl_cfg_listener_t *l, uv_os_sock_t fd,
                       const struct sockaddr *peer);

/* The one way out. Idempotent. */
void sl_session_close(sl_session_t *s);

/* Answer the client with a gateway-made response, then close (or keep going if keep_alive). */
void sl_session_http_error(sl_session_t *s, int status, const char *extra_headers);

/* Send what is queued, half-close, then close once the client is done (lingering close,
   so a client still sending does not get a reset that destroys our answer). */
void sl_session_finish(sl_session_t *s);
/* Drop the first n bytes of the head buffer; free the head buffer and parser. */
void sl_session_head_consume(sl_session_t *s, uint32_t n);
void sl_session_head_free(sl_session_t *s);
/* Grow *buf (capacity *cap) to hold need bytes, at most max: 0, SL_EFULL or SL_ENOMEM. */
int sl_fit(char **buf, uint32_t *cap, uint32_t need, uint32_t max);
/* The most a head (or response head) buffer may hold: head_bytes plus one read block. */
uint32_t sl_head_max(const sl_session_t *s);
/* The request is at the backend: wait for its response head (parser, response
   timeout, backend reading). 0 or SL_ENOMEM. */
int sl_session_resp_begin(sl_session_t *s, uint8_t request_method);
/* Add backend bytes to the response head buffer and parse it: the head length,
   SL_NEED_MORE, or a negative error (too long, or malformed: answer 502). */
int sl_session_resp_feed(sl_session_t *s, const sl_block_t *b, size_t off);
/* Free the response parser and head buffer (the response is done, or the
   session goes back to wait for another backend). */
/* The response head just parsed (head_len bytes) is done with: what follows
   it is parsed as the next head (after an interim 1xx). Returns as
   sl_http_parse_head, SL_NEED_MORE when nothing followed. */
int sl_session_resp_next(sl_session_t *s, uint32_t head_len);
void sl_session_resp_free(sl_session_t *s);
/* Parse the head buffer (after bytes were added, or for a pipelined request). */
void sl_session_parse_head(sl_session_t *s);

/* Ask the control thread for admission (when the route or service wants it), or go on. */
void sl_session_admit_or_go(sl_session_t *s);
/* The control thread's answer. */
void sl_session_admit_result(sl_session_t *s, const sl_wmsg_t *m);
/* Go on after admission: connect to a backend. */
void sl_session_go(sl_session_t *s);

/* Write the access log line for this exchange or connection (once). */
void sl_session_log(sl_session_t *s);

/* migrate.c: move relaying WebSockets (and HTTP responses under way) to
   runtime `to` when their service, pool and backend are all there (false,
   nothing changed, otherwise). A
   migration maps names once per old runtime it meets; it must end before
   `to` stops being the worker's runtime (sl_worker_migration keeps one). */
typedef struct sl_migration sl_migration_t;
/* Lives long enough to be worth moving: a relaying WebSocket, or an HTTP
   response already on its way (a stream, a long poll). */
bool sl_session_lasting(const sl_session_t *s);
sl_migration_t *sl_migration_begin(sl_runtime_t *to);   /* NULL: out of memory */
bool sl_migration_move(sl_migration_t *mg, sl_session_t *s);
void sl_migration_end(sl_migration_t *mg);

/* Begin a drain: close the client at a message boundary with code and reason. */
void sl_session_drain(sl_session_t *s, uint16_t code, const char *reason);

/* Timer upkeep: re-arm the session's one timer for its nearest deadline. */
void sl_session_arm_timer(sl_session_t *s);

/* Called once the request head is complete and routed. */
void sl_session_dispatch(sl_session_t *s);

/* --- the parts, one file each --- */

/* upstream.c: get a connection to a backend of s->pool (kept-alive or new). */
void sl_upstream_connect(sl_session_t *s);
/* Give the connection back: to the idle pool when reusable, else close it. */
void sl_upstream_release(sl_session_t *s, bool reusable);
/* The WebSocket close handshake is over: let the backend close the TCP
   connection first (it then holds TIME_WAIT, not one of our ports toward
   it), closing ours when its end arrives, or after a bound. */
void sl_upstream_release_after_close(sl_session_t *s);
/* Close every idle kept-alive connection (shutdown), or those to one backend (its drain). */
void sl_upstream_close_idle(sl_worker_t *w);
void sl_upstream_close_idle_to(sl_worker_t *w, const sl_backend_shared_t *backend);

/* Called by upstream.c when the backend connection is ready (or failed for good). */
void sl_session_backend_ready(sl_session_t *s);
/* No backend could be reached (502, or 503: none of the pool is up). An
   admitted WebSocket client goes back to the admission queue while it is
   within max_wait; others get the status. */
void sl_session_backend_failed(sl_session_t *s, int status);
/* The backend answered an admitted upgrade 503: back in line (true), or the
   caller forwards the answer (false). See session.c, requeue. */
bool sl_session_requeue_backend_busy(sl_session_t *s);

/* wsrelay.c */
void sl_ws_begin(sl_session_t *s);                    /* send the upgrade to the backend */
void sl_ws_on_client_data(sl_session_t *s, sl_block_t *b, size_t off);
void sl_ws_on_backend_data(sl_session_t *s, sl_block_t *b, size_t off);
void sl_ws_on_client_eof(sl_session_t *s);
void sl_ws_on_backend_eof(sl_session_t *s);
void sl_ws_on_timer(sl_session_t *s, sl_msec_t now);
void sl_ws_farewell(sl_session_t *s, uint16_t code);   /* a close frame before a cut */
/* The relay's next deadline (what sl_ws_on_timer would act on), or SL_MSEC_NEVER. */
sl_msec_t sl_ws_next_deadline(const sl_session_t *s);

/* httpproxy.c */
void sl_http_begin(sl_session_t *s);
void sl_http_on_client_data(sl_session_t *s, sl_block_t *b, size_t off);
void sl_http_on_backend_data(sl_session_t *s, sl_block_t *b, size_t off);
void sl_http_on_client_eof(sl_session_t *s, int status);
void sl_http_on_backend_eof(sl_session_t *s, int status);   /* UV_EOF, or an error */

/* Internal hand-offs between the files of this layer. */
void sl_session_client_read(sl_session_t *s, sl_block_t *b);
/*
 * A TLS listener with PROXY protocol: the header comes in the clear before
 * the ClientHello. Takes b's bytes until the header is whole and hands back
 * in b what follows it, for TLS. Returns 1 when b now holds TLS bytes (maybe
 * none), 0 while the header is incomplete, -1 when the session was closed
 * (a bad header).
 */
int sl_session_proxy_before_tls(sl_session_t *s, sl_block_t *b);
void sl_session_client_eof(sl_session_t *s, int status);
void sl_session_backend_read(sl_session_t *s, sl_block_t *b);
void sl_session_backend_eof(sl_session_t *s, int status);
void sl_session_write_done(sl_session_t *s, bool to_client);
/* Between requests: the keepalive timeout once the last answer has all gone, else idle. */
sl_msec_t sl_session_keepalive_deadline(sl_session_t *s);
/* At a silence deadline: the client took some of what waits for it since last asked. */
bool sl_session_client_reading(sl_session_t *s);
void sl_ws_backend_ready(sl_session_t *s);
/* Undo sl_ws_backend_ready: the connect it went out on failed; back to CONNECTING. */
void sl_ws_backend_unready(sl_session_t *s);
void sl_ws_write_done(sl_session_t *s, bool to_client);
void sl_http_backend_ready(sl_session_t *s);
void sl_http_forward_response(sl_session_t *s, uint32_t head_len);
void sl_upstream_watch_idle(sl_upstream_t *up);
/* The connection now belongs to runtime rt, as its backend b (which shares
   up->backend's state): it holds rt instead, and its TLS session cache key
   follows (migrate.c, and a kept-alive connection taken after a reload). */
void sl_upstream_follow(sl_upstream_t *up, sl_runtime_t *rt, sl_backend_rt_t *b);
/* A released connection's read callback: its bytes are dropped; EOF ends it. */
void sl__upstream_linger_read(sl_upstream_t *up, ssize_t nread);
void sl_upstream_drop_idle(sl_upstream_t *up);

/* listener.c: the worker ran short of descriptors (or kernel memory) where it
   says: log it (once for a shortage), free what idles, pause accepting. */
void sl_listeners_short(sl_worker_t *w, const char *what, int err);
/* Close up to max kept-alive clients idle between requests, the longest idle
   first (the cap or the descriptors are reached and others wait). How many. */
size_t sl_session_reclaim_idle(sl_worker_t *w, size_t max);

/* io.c: writes and reads shared by both paths. */
typedef struct sl_wreq {
    uv_write_t req;
    struct sl_wreq *next_free;
    sl_session_t *s;
    sl_upstream_t *up;
    sl_block_t *block;               /* a read block being forwarded, or NULL */
    char *owned;                     /* a malloc'd buffer to free, or NULL */
    uint32_t mem;                    /* what it holds, counted in its side's queued_mem */
    bool to_client;
    uint8_t small[SL_WS_MAX_CONTROL_FRAME];   /* gateway-made frames live here */
} sl_wreq_t;

/* Forward a slice of a read block (takes a reference to it). */
int sl_write_block(sl_session_t *s, bool to_client, sl_block_t *b, size_t off, size_t len);
/* Hold bytes for the client (the 101) until the next write to it, or release
   them alone; the caller's buffer must live until sl_client_release. */
void sl_client_hold(sl_session_t *s, const char *data, size_t len);
int sl_client_release(sl_session_t *s);
/* Write bytes the gateway made (copied into the request for small, else duplicated). */
int sl_write_copy(sl_session_t *s, bool to_client, const void *data, size_t len);
/* Start or stop reading one side for a reason. */
void sl_client_pause(sl_session_t *s, uint8_t why);
void sl_client_resume(sl_session_t *s, uint8_t why);
void sl_backend_pause(sl_session_t *s, uint8_t why);
void sl_backend_resume(sl_session_t *s, uint8_t why);
/* Read a just-accepted client's socket before waiting for epoll (io.c). */
void sl_client_read_now(sl_session_t *s);
/* Start reading the backend (after connect). */
void sl_backend_start_reading(sl_session_t *s);
/* Bytes queued on a side and not yet written. */
size_t sl_queued(sl_session_t *s, bool to_client);
sl_msec_t sl_now(sl_session_t *s);

#endif
