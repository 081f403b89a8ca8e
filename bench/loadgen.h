/*
 * bench/loadgen.h: the internals that the sluice-loadgen files share.
 *
 * sluice-loadgen opens many WebSocket client connections against the gateway
 * (or a backend directly) and measures what a reconnect herd sees. It must
 * never be the bottleneck, so each thread runs its own libuv loop over a
 * fixed slice of connection slots, every slot is allocated once at start,
 * and nothing is allocated per message: frames are written into a
 * per-connection double buffer that is reused, and echoes are checked
 * against a pattern recomputed from (connection id, sequence number) instead
 * of a stored copy. Threads share nothing but the read-only options and a
 * few atomics (the global connected gauge for storm recovery times); each
 * keeps its own counters and histograms, merged by the main thread at exit.
 *
 * Files: loadgen.c (threads, ramp, stop, the main loop), loadgen_opts.c
 * (command line), loadgen_conn.c
 * (slot lifecycle: bind, connect, handshake, close, reconnect, writes),
 * loadgen_ws.c (frames and the per-mode behaviour), loadgen_stats.c
 * (histograms, counters, the connected gauge), loadgen_report.c (JSON or
 * text summary, timeline CSV, sent log). Shared names start `lg_`.
 */
#ifndef SLUICE_BENCH_LOADGEN_H
#define SLUICE_BENCH_LOADGEN_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include <uv.h>

#include "sluice/common.h"
#include "sluice/http.h"
#include "sluice/wsframe.h"

#define LG_HEAD_MAX 8192             /* largest handshake response head */
#define LG_READ_BUF (64 * 1024)      /* the per-thread read buffer */
#define LG_CLOSE_GRACE_MS 2000       /* wait for the peer's close reply / TCP close */
#define LG_STOP_CAP_MS 5000          /* after --duration: everything is down by then */
#define LG_TICK_MS 100               /* gauges into the timeline, storm checks */
#define LG_NAME_MAX 48               /* backend name kept from the hello */
#define LG_MAX_NAMES 16              /* distinct backend names counted */
#define LG_MAX_CODES 16              /* distinct close codes counted */
#define LG_MAX_SOURCES 65536

/* Histogram: values in microseconds, exact below 32, then 32 log-linear
   sub-buckets per power of two (relative error under 3.2%), up to 2^36 us. */
#define LG_HIST_SUB_BITS 5
#define LG_HIST_SUB (1u << LG_HIST_SUB_BITS)
#define LG_HIST_BUCKETS (LG_HIST_SUB + (36 - LG_HIST_SUB_BITS) * LG_HIST_SUB)

typedef struct lg_hist {
    uint64_t count;
    uint64_t max;
    uint32_t counts[LG_HIST_BUCKETS];   /* saturating */
} lg_hist_t;

void lg_hist_add(lg_hist_t *h, uint64_t us);
void lg_hist_merge(lg_hist_t *dst, const lg_hist_t *src);
/* The value at quantile q (0..1): the middle of its bucket; 0 when empty. */
uint64_t lg_hist_quantile(const lg_hist_t *h, double q);

typedef enum lg_mode {
    LG_MODE_CONNECT = 0,
    LG_MODE_ECHO,
    LG_MODE_STORM,
    LG_MODE_DEPLOY,
} lg_mode_t;

/* The command line, as parsed; read-only once the threads run. */
typedef struct lg_options {
    lg_mode_t mode;
    char host[256];                 /* as in the URL, for the Host header */
    char path[1024];
    struct sockaddr_storage dst;
    struct sockaddr_storage *sources;
    uint32_t n_sources;
    uint32_t conns;
    double rate;                    /* opens per second; 0: as fast as allowed */
    uint32_t max_pending;           /* handshakes in flight during the ramp (no --rate) */
    uint32_t threads;
    uint64_t duration_ms;
    uint64_t timeout_ms;            /* connect + handshake */
    uint32_t window;
    uint32_t size;
    double msg_rate;                /* echo: messages per second in total; 0: closed loop */
    bool backoff_exp;
    uint64_t backoff_base_ms;
    uint64_t backoff_max_ms;
    uint64_t retry_delay_ms;        /* --backoff none: wait after a failed attempt */
    uint64_t interval_ms;           /* deploy: one message per connection per interval */
    const char *sent_log;
    const char *timeline;
    bool json;
    uint64_t seed;
} lg_options_t;

extern lg_options_t lg_opt;

/* Shared across threads: the connected gauge and storm recovery episodes. */
typedef struct lg_shared {
    _Atomic uint64_t connected;
    _Atomic uint64_t drop_ns;        /* when the gauge first fell below N; 0: full */
    _Atomic uint64_t full_ns;        /* first time all N were connected; 0: never */
    _Atomic uint64_t episodes;       /* recoveries back to N after a drop */
    _Atomic uint64_t recovery_last_us;
    _Atomic uint64_t recovery_max_us;
    _Atomic uint64_t peak;
    uint64_t t0_ns;                  /* run start (uv_hrtime) */
} lg_shared_t;

extern lg_shared_t lg_shared;

/* One second of the timeline (one per thread; the main thread sums them). */
typedef struct lg_tl {
    uint64_t connected;
    uint64_t upgrades;
    uint64_t closes;
    uint64_t failures;
    uint64_t messages;
    lg_hist_t lat;                   /* echo: round trips; other modes: handshakes */
} lg_tl_t;

typedef struct lg_count {
    char name[LG_NAME_MAX];
    uint16_t code;
    uint64_t n;
} lg_count_t;

/* One thread's counters. */
typedef struct lg_stats {
    uint64_t attempts, upgrades, reconnects, closes;
    uint64_t fail_connect, fail_status, fail_timeout, fail_closed, fail_protocol;
    uint64_t msgs_sent, msgs_recv, bytes_sent, bytes_recv, mismatches, other_msgs;
    uint64_t skipped;                /* open loop: a send due while the window was full */
    uint64_t pings;
    uint64_t closes_no_frame;        /* connections that ended without a close frame */
    uint64_t status[600];            /* non-101 HTTP statuses by code */
    lg_count_t codes[LG_MAX_CODES];  /* close codes received from the peer */
    uint32_t n_codes;
    lg_count_t names[LG_MAX_NAMES];  /* backend names from the hellos (per generation) */
    uint32_t n_names;
    uint64_t first_attempt_ns, last_upgrade_ns;
    uint64_t first_send_ns, last_recv_ns;
    lg_hist_t handshake, rtt;
} lg_stats_t;

/* Deploy mode: one line of the sent log per generation. */
typedef struct lg_gen_rec {
    uint32_t id;
    uint32_t gen;
    uint64_t last_seq;
    int32_t how;                     /* close code received; 0: dropped; -1: we closed */
    int32_t name;                    /* index in stats.names; -1: no hello */
} lg_gen_rec_t;

typedef enum lg_state {
    LG_IDLE = 0,                     /* not started, or waiting to reconnect */
    LG_CONNECTING,
    LG_HANDSHAKE,
    LG_OPEN,
    LG_CLOSING,                      /* a close frame went out: waiting for TCP to end */
    LG_DOWN,                         /* the TCP handle is closing */
    LG_DONE,                         /* will not connect again */
} lg_state_t;

struct lg_worker;

/* One connection slot: handles live here for the whole run and are reused. */
typedef struct lg_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;                /* timeouts, reconnect delay, deploy interval */
    uv_connect_t creq;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    struct lg_worker *w;
    uint32_t id;
    uint32_t gen;                    /* attempts made on this slot, minus one */
    lg_state_t state;
    bool upgraded;                   /* this attempt reached 101 */
    bool writing;                    /* wreq in flight */
    bool close_rcvd, close_sent;
    bool close_local;                /* we sent the first close frame */
    bool in_data;                    /* inside a data frame's payload */
    bool msg_bad;                    /* the echo being received differs */
    bool first_msg_done;
    bool ramp;                       /* started by the ramp, not yet settled */
    uint8_t msg_op;                  /* opcode of the message being received */
    uint8_t mask[4];
    uint16_t close_code;
    uint32_t attempt;                /* failures since the last upgrade (backoff) */
    uint64_t retry_after_ms;         /* from a 503/429 Retry-After or a 1013 reason */
    uint64_t t_start_ns;
    char key[25];
    char *head;                      /* handshake response, until the 101 */
    uint32_t head_len;
    sl_ws_parser_t wp;
    uint64_t pl_start, pl_end;       /* stream offsets of the data frame's payload */
    uint64_t msg_off;                /* payload bytes of the current message so far */
    uint8_t *out, *wbuf;             /* filling / being written (swapped) */
    size_t out_len, out_cap, wbuf_cap;
    uint64_t send_seq, recv_seq;     /* echo: messages sent / echoes received */
    uint32_t outstanding;
    uint64_t *sent_ns;               /* echo: send times, a ring of `window` */
    uint64_t last_seq;               /* deploy: last seq queued in this generation */
    int32_t name;                    /* backend name index from the hello; -1 none */
    char hello[LG_NAME_MAX + 6];
    uint32_t hello_len;
} lg_conn_t;

typedef struct lg_worker {
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t stop_async;           /* unreferenced; closed by main after the join */
    uv_timer_t pace;                 /* 1 ms: ramp and open-loop sends */
    uv_timer_t tick;
    uv_timer_t stop_timer;           /* --duration, then the hard cap */
    uint32_t idx;
    lg_conn_t *conns;
    uint32_t n;
    uint32_t started;                /* slots started by the ramp */
    uint32_t pending;                /* ramp attempts not yet upgraded or failed */
    uint32_t live;                   /* slots not DONE */
    uint32_t connected;
    uint64_t src_next;
    uint64_t pace_start_ns;
    uint64_t msg_due;                /* open loop: sends made so far */
    uint64_t msg_start_ns;
    uint32_t rr;                     /* open loop: next slot */
    bool stopping, finished, forced;
    sl_rng_t rng;
    lg_stats_t st;
    lg_tl_t *tl;
    size_t n_tl;
    lg_gen_rec_t *gens;
    size_t n_gens, cap_gens;
    sl_http_parser_t hp;             /* reused: each handshake is reparsed whole */
    uint8_t rbuf[LG_READ_BUF];
} lg_worker_t;

/* loadgen_opts.c: fills lg_opt. Returns -1 to run, or the exit status
   (0 after --help/--version, 2 on a usage error, message printed). */
int lg_parse_args(int argc, char **argv);
void lg_free_options(void);

/* loadgen_conn.c */
void lg_conn_init(lg_worker_t *w, lg_conn_t *c, uint32_t id);
void lg_conn_start(lg_conn_t *c);
void lg_conn_drop(lg_conn_t *c);
void lg_conn_stop(lg_conn_t *c);
void lg_conn_close_handles(lg_conn_t *c);
uint8_t *lg_out_reserve(lg_conn_t *c, size_t n);
void lg_out_flush(lg_conn_t *c);
void lg_send_close(lg_conn_t *c, uint16_t code);
void lg_worker_slot_done(lg_worker_t *w);
uint64_t lg_now_ns(void);

/* loadgen_ws.c */
void lg_ws_opened(lg_conn_t *c);
void lg_ws_read(lg_conn_t *c, const uint8_t *buf, size_t len);
void lg_ws_send_echo(lg_conn_t *c);
void lg_ws_deploy_send(lg_conn_t *c);
void lg_ws_ended(lg_conn_t *c, int how);
void lg_pattern_fill(uint8_t *p, size_t n, uint32_t id, uint64_t seq);

/* loadgen_stats.c */
lg_tl_t *lg_tl_at(lg_worker_t *w, uint64_t now_ns);
void lg_count_code(lg_stats_t *st, uint16_t code);
int32_t lg_count_name(lg_stats_t *st, const char *name, size_t len);
void lg_gauge(lg_worker_t *w, int delta, uint64_t now_ns);
int lg_add_gen(lg_worker_t *w, const lg_conn_t *c, int32_t how);
void lg_report(lg_worker_t *ws, uint32_t nw, uint64_t end_ns);

#endif
