/*
 * bench/backend.h: the internals that the sluice-backend files share.
 *
 * sluice-backend is the demo and test backend: a WebSocket echo server and a
 * small HTTP responder on libuv, with a capacity model (handshakes per second)
 * and exact records of when it accepted each handshake. It is split by
 * concern: backend.c (command line, listeners, signals, the tick),
 * backend_conn.c (connection lifecycle, buffers, writes), backend_http.c
 * (the HTTP responder and the upgrade decision),
 * backend_ws.c (the WebSocket echo) and backend_stats.c (capacity, records,
 * peak windows, files). Names shared between the files start with `be_`.
 */
#ifndef SLUICE_BENCH_BACKEND_H
#define SLUICE_BENCH_BACKEND_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <uv.h>

#include "appender.h"

#include "sluice/common.h"
#include "sluice/http.h"
#include "sluice/wsframe.h"
#include "sluice/wshandshake.h"

#define BE_MAX_LISTEN 8
#define BE_RBUF_SIZE (64 * 1024)          /* one read buffer */
#define BE_HIGH_WATER (1024 * 1024)       /* stop reading above this write queue */
#define BE_LOW_WATER (256 * 1024)         /* resume reading below this */
#define BE_MAX_HELD_RBUFS 32              /* read buffers one connection may pin */
#define BE_SEND_CHUNK (64 * 1024)         /* --send: payload bytes per message */
#define BE_SEND_INFLIGHT 16               /* --send: writes queued at once */
#define BE_COPY_MAX 256                   /* echo payloads this small are copied */
#define BE_CLOSE_GRACE_MS 5000            /* wait for the peer's close reply */
#define BE_TICK_MS 100                    /* file write period and close deadlines */
#define BE_LOG_LINE_MAX (64 * 1024)       /* --log-messages: longest line kept */

typedef enum be_overload {
    BE_OVERLOAD_REJECT = 0,               /* answer 503 */
    BE_OVERLOAD_EXIT = 1,                 /* exit(3) */
} be_overload_t;

/* The command line, as parsed. */
typedef struct be_options {
    const char *listen[BE_MAX_LISTEN];
    int n_listen;
    const char *name;
    double capacity;                      /* handshakes per second; 0: unlimited */
    double burst;                         /* tokens; 0: capacity / 10 (at least 1) */
    be_overload_t overload;
    const char *record_path;
    const char *log_messages_path;
    int close_after_hello;                /* close code; 0: off */
    uint64_t send_bytes;                  /* --send; 0: off */
    uint64_t http_delay_ms;
    int backlog;
    bool quiet;
} be_options_t;

/* A handshake token bucket: `rate` tokens a second, at most `burst` held. */
typedef struct be_bucket {
    double rate;
    double burst;
    double tokens;
    uint64_t last_us;
} be_bucket_t;

/*
 * Accepted handshake times. Monotonic and wall-clock milliseconds, in accept
 * order. The arrays are compacted when full (keeping at least the last second,
 * which the peak windows need), so memory stays bounded on long runs.
 */
typedef struct be_record {
    uint64_t *mono_ms;
    uint64_t *wall_ms;
    size_t n;
    size_t cap;
    size_t max_keep;
    size_t head_100ms;                    /* first index inside the 100 ms window */
    size_t head_1s;                       /* first index inside the 1 s window */
    uint64_t peak_100ms;
    uint64_t peak_1s;
} be_record_t;

typedef struct be_stats {
    uint64_t handshakes;
    uint64_t rejected;
    uint64_t open;
    uint64_t messages;
    uint64_t http_requests;
    uint64_t bad_requests;
} be_stats_t;

/* A pooled read buffer; writes that carry its bytes hold references. */
typedef struct be_rbuf {
    struct be_rbuf *next;                 /* free list */
    uint32_t refs;
    uint8_t data[BE_RBUF_SIZE];
} be_rbuf_t;

typedef enum be_conn_state {
    BE_HTTP_HEAD = 0,                     /* reading a request head */
    BE_HTTP_BODY,                         /* counting a request body */
    BE_HTTP_RESPOND,                      /* a response is pending or being written */
    BE_WS_OPEN,                           /* echoing */
    BE_WS_CLOSE_SENT,                     /* our close went out; wait for the reply */
    BE_CLOSING,                           /* flush the writes, then close TCP */
} be_conn_state_t;

typedef struct be_conn be_conn_t;

/* An intrusive doubly-linked list node. */
typedef struct be_link {
    struct be_link *prev, *next;
} be_link_t;

struct be_conn {
    uv_tcp_t tcp;                         /* data unused: container_of */
    be_link_t link;                       /* in server.conns */
    be_conn_state_t state;
    bool closed;                          /* uv_close called */
    bool reading;
    bool read_paused;                     /* stopped for backpressure */
    bool is_ws;                           /* counted in stats.open */
    bool close_when_flushed;
    uint32_t pending_writes;
    uint32_t held_rbufs;                  /* read buffers pinned by pending writes */
    sl_msec_t deadline;                   /* closing: give up at this time */

    /* HTTP, only while a request is read: freed between requests. */
    struct be_http *http;
    uv_timer_t *delay;                    /* --http-delay, allocated on demand */

    /* WebSocket. */
    sl_ws_parser_t wp;
    bool fwd;                             /* the current frame is a data frame */
    uint8_t mask[4];
    uint64_t pl_start, pl_end;            /* stream offsets of its payload */
    bool log_text;                        /* the open message is text, logged */
    uint8_t *log_buf;                     /* its bytes so far, on demand */
    size_t log_len;
    size_t log_cap;
    uint64_t send_left;                   /* --send bytes still to queue */
};

typedef struct be_server {
    uv_loop_t *loop;
    be_options_t opt;
    uv_tcp_t listeners[BE_MAX_LISTEN];
    int n_listeners;
    uv_signal_t sig_term, sig_int;
    uv_timer_t tick;
    be_link_t conns;
    bool stopping;

    be_rbuf_t *free_rbufs;
    uint32_t n_free_rbufs;

    be_bucket_t bucket;
    be_record_t record;
    be_stats_t stats;
    be_appender_t *record_file;   /* --record */
    be_appender_t *log_file;      /* --log-messages */
} be_server_t;

extern be_server_t be_srv;

/* ---- backend_stats.c ---- */

/* Start the bucket full. */
void be_bucket_init(be_bucket_t *b, double rate, double burst, uint64_t now_us);
/* Take one token at `now_us`: true when there was one (always for rate 0). */
bool be_bucket_take(be_bucket_t *b, uint64_t now_us);

/* Keep at most max_keep entries (compacting older ones away). */
void be_record_init(be_record_t *r, size_t max_keep);
void be_record_free(be_record_t *r);
/* Record one accepted handshake; updates the exact peaks. 0 or SL_ENOMEM. */
int be_record_add(be_record_t *r, uint64_t mono_ms, uint64_t wall_ms);

/* Open --record and --log-messages files; 0 or -errno. */
int be_files_open(be_server_t *s);
/* Writes out what the appenders hold now (before exit(3), say). */
void be_files_flush(be_server_t *s);
void be_files_close(be_server_t *s);
/* Append a text message line to --log-messages (no-op without it). */
void be_log_message(be_server_t *s, const uint8_t *data, size_t len);

/* Note an accepted handshake now: memory record, --record file, stats. */
void be_handshake_accepted(be_server_t *s);

/* The /stats JSON body into out; returns its length (truncated to cap). */
size_t be_stats_json(const be_server_t *s, char *out, size_t cap);

/* ---- backend_conn.c ---- */

/* A write of up to BE_WB_BUFS pieces: arena bytes, read-buffer slices, statics. */
#define BE_WB_BUFS 64
typedef struct be_wbatch {
    uv_write_t req;
    be_conn_t *conn;
    be_rbuf_t *rb;                        /* referenced read buffer, or NULL */
    uint32_t nbufs;
    size_t arena_len;
    size_t arena_cap;
    struct be_wbatch *next_free;
    uv_buf_t bufs[BE_WB_BUFS];
    uint8_t arena[];
} be_wbatch_t;

be_conn_t *be_conn_new(void);
/* Close TCP now (idempotent); the conn is freed in the close callback. */
void be_conn_close(be_conn_t *c);
/* Close once every queued write has completed. */
void be_conn_close_after_flush(be_conn_t *c);
/* Start reading a freshly accepted connection. 0 or a libuv error. */
int be_conn_start(be_conn_t *c);

/* A batch for this conn with at least arena_min arena bytes; NULL on ENOMEM. */
be_wbatch_t *be_wb_new(be_conn_t *c, size_t arena_min);
/* Copy bytes into the arena as one piece; false when it does not fit. */
bool be_wb_copy(be_wbatch_t *w, const void *p, size_t len);
/* Reserve arena bytes for a piece the caller fills; NULL when full. */
uint8_t *be_wb_reserve(be_wbatch_t *w, size_t len);
/* Add a slice of a read buffer (the batch takes a reference once). */
bool be_wb_add_rbuf(be_wbatch_t *w, be_rbuf_t *rb, const uint8_t *p, size_t len);
/* Add bytes that outlive the write (static data). */
bool be_wb_add_static(be_wbatch_t *w, const void *p, size_t len);
/* Queue the batch (or free it when empty). Returns 0 or a libuv error; frees on error. */
int be_wb_send(be_wbatch_t *w);

be_rbuf_t *be_rbuf_get(void);
void be_rbuf_put(be_rbuf_t *rb);

/* Pause or resume reading for backpressure after queueing writes. */
void be_conn_flow(be_conn_t *c);
/* Start or stop reading to match the state and the backpressure. */
void be_conn_update_reading(be_conn_t *c);

/* Marks in a batch's req.data: a response completes the HTTP request. */
enum { BE_WB_PLAIN = 0, BE_WB_RESPONSE = 1 };

/* ---- backend_http.c ---- */

/* Bytes for the request being read (head or body); answers when complete. */
void be_http_feed(be_conn_t *c, const char *data, size_t len);
/* A response was written: keep alive (next request) or close. */
void be_http_response_done(be_conn_t *c);
/* Free the request state (idempotent). */
void be_http_free(be_conn_t *c);

/* ---- backend_ws.c ---- */

/* The request was a valid upgrade: answer 101 + hello and start echoing. */
void be_ws_accept(be_conn_t *c, const char *base, const sl_http_head_t *h,
                  const sl_ws_request_info_t *info);
/* Frames arrived in `rb` (len bytes at off). */
void be_ws_read(be_conn_t *c, be_rbuf_t *rb, size_t off, size_t len);
/* Writes drained below the low-water mark: continue --send. */
void be_ws_writable(be_conn_t *c);
/* Free the per-connection WebSocket state (log buffer). */
void be_ws_free(be_conn_t *c);

#endif
