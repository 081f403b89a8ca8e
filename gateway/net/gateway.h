/*
 * gateway.h: the process — one control thread and N workers.
 *
 * The control thread (the main thread's loop) owns policy state: the current
 * runtime, signals, shutdown, and (as they land) admission, health and the
 * admin API. Workers each run a uv loop in their own thread with their own
 * SO_REUSEPORT listening sockets and own their connections outright.
 *
 * The two talk through mutex-guarded message queues woken by uv_async_t
 * (Debian's libuv is not built for ThreadSanitizer, so we rely on a mutex it
 * can see rather than on libuv's internal atomics). Read-mostly state — the
 * runtime — is published as an immutable, reference-counted snapshot swapped
 * under a mutex; a session keeps the snapshot it started with.
 */
#ifndef SLUICE_NET_GATEWAY_H
#define SLUICE_NET_GATEWAY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <uv.h>

#include "sluice/common.h"
#include "sluice/wsframe.h"
#include "bufpool.h"
#include "counters.h"
#include "runtime.h"
#include "slab.h"

/* The gateway itself is short (descriptors, socket buffers, memory): a
   socket could not be made, so no peer was asked anything and none is to
   blame (not a backend's failure, not a health check's verdict). */
static inline bool sl_out_of_resources(int uv_status)
{
    return uv_status == UV_EMFILE || uv_status == UV_ENFILE || uv_status == UV_ENOBUFS ||
           uv_status == UV_ENOMEM;
}

typedef struct sl_gateway sl_gateway_t;
typedef struct sl_worker sl_worker_t;
typedef struct sl_session sl_session_t;
typedef struct sl_upstream sl_upstream_t;

/* The most worker threads (the config's bound; "auto" on a bigger machine is cut to it). */
#define SL_MAX_WORKERS 256

/* Messages from the control thread to a worker. */
typedef enum sl_wmsg_type {
    SL_WMSG_RUNTIME,        /* a new runtime was published: pick it up for new sessions */
    SL_WMSG_DRAIN,          /* drain up to `count` WebSockets (of `ws`, on `backend`, or any) */
    SL_WMSG_STOP_ACCEPT,    /* close the listeners (shutdown begins) */
    SL_WMSG_FORCE_CLOSE,    /* close everything now (shutdown timeout) */
    SL_WMSG_EXIT,           /* stop the loop once every handle is closed */
    SL_WMSG_ADMIT_RESULT,   /* the answer to an SL_CMSG_ADMIT */
    SL_WMSG_MAKE_ROOM,      /* another worker's clients wait: close what idles here */
} sl_wmsg_type_t;

typedef struct sl_wmsg {
    struct sl_wmsg *next;
    sl_wmsg_type_t type;
    /* SL_WMSG_DRAIN: only sessions counted in this service and pool's count
       (shared by name across runtimes, so sessions of any config match);
       NULL: any. Such a drain is a cutover's: it spends only while the
       count's drain epoch is still `epoch`. */
    struct sl_ws_count *ws;
    uint64_t epoch;
    const sl_backend_shared_t *backend;   /* SL_WMSG_DRAIN: only sessions on it; NULL: any */
    long pool;              /* SL_WMSG_ADMIT_RESULT */
    uint32_t count;
    uint16_t close_code;
    char reason[SL_WS_MAX_CLOSE_REASON + 1];   /* whole: a cut one may end mid-character */
    bool fds;               /* SL_WMSG_MAKE_ROOM: descriptors ran out (not the cap) */
    /* SL_WMSG_ADMIT_RESULT */
    sl_session_t *session;
    int admit_status;       /* sl_adm_status_t: ADMITTED or REJECTED (cancelled: REJECTED) */
    int http_status;        /* 503 or 429 when rejected */
    sl_msec_t retry_after_ms;
    sl_msec_t waited_ms;
} sl_wmsg_t;

/* Messages from a worker to the control thread. */
typedef enum sl_cmsg_type {
    SL_CMSG_CONN_RESULT,    /* a real connect to a backend succeeded or failed (passive health) */
    SL_CMSG_ADMIT,          /* may this session go to a backend? answer: SL_WMSG_ADMIT_RESULT */
    SL_CMSG_CANCEL,         /* the session asking (id) is gone; an answer still comes */
    SL_CMSG_MAKE_ROOM,      /* clients wait and this worker has nothing idle to close:
                               ask the others (SL_WMSG_MAKE_ROOM) */
} sl_cmsg_type_t;

typedef struct sl_cmsg {
    struct sl_cmsg *next;
    sl_cmsg_type_t type;
    int worker;
    uint64_t generation;    /* of the runtime the indexes below refer to */
    const struct sl_runtime *rt;   /* ADMIT: that runtime (the asking session holds it
                                      until the answer has come) */
    long service;
    long pool;
    long backend;
    bool ok;
    bool fds;               /* MAKE_ROOM: descriptors ran out (not the cap) */
    uint64_t id;            /* admission request id, unique per process */
    sl_session_t *session;  /* opaque to the control thread: returned in the answer */
    int family;             /* the client's address, for per-client limits */
    uint8_t addr[16];
} sl_cmsg_t;

/* One listening socket of a worker: we poll the fd ourselves so accepting can pause. */
typedef struct sl_listener {
    sl_worker_t *worker;
    const sl_cfg_listener_t *cfg;
    uv_os_sock_t fd;
    uv_poll_t poll;
    bool polling;
    bool closed;
    bool tls_paused;                    /* the worker's TLS handshake cap is reached */
} sl_listener_t;

struct sl_worker {
    sl_gateway_t *gw;
    int id;
    uv_thread_t thread;
    uv_loop_t loop;

    uv_async_t wake;                    /* control -> worker */
    uv_mutex_t inbox_lock;
    sl_wmsg_t *inbox_head, *inbox_tail;

    sl_listener_t *listeners;
    size_t n_listeners;
    uv_timer_t accept_timer;            /* resumes accepting after a pause */
    bool accept_paused;
    uint32_t tls_handshakes;            /* TLS handshakes in progress (tls.c) */
    bool stopping;                      /* no new connections; draining */

    sl_runtime_t *rt;                   /* this worker's reference to the current runtime */
    sl_bufpool_t bufs;
    sl_slab_t session_slab;             /* long-lived objects apart from the heap's churn */
    sl_slab_t upstream_slab;
    struct sl_wreq *free_wreqs;         /* recycled write requests */
    /* A 101 held for one call so the backend's first frames share its write (io.c). */
    struct sl_session *held_for;
    const char *held;
    size_t held_len;
    size_t n_free_wreqs;
    char **reasons;                     /* close reasons in use, interned: sessions point here */
    size_t n_reasons;
    sl_rng_t rng;

    /* Sessions: an array for O(1) random choice when draining. */
    sl_session_t **sessions;
    size_t n_sessions;
    size_t cap_sessions;
    _Atomic size_t open_sessions;       /* read by the control thread */
    _Atomic uint32_t drainable;         /* WebSockets not told to close: how the shutdown's
                                           drain credit is shared (sl_control_post_drain) */

    sl_upstream_t *idle_upstreams;      /* kept-alive HTTP backend connections */
    size_t n_idle_upstreams;

    sl_counters_t counters;
    struct sl_balancer **balancers;     /* per pool of rt; this worker's own (not thread-safe) */
    struct sl_migration *migration;     /* old runtimes' names mapped into rt (migrate.c), or NULL */
    uint64_t next_admit_id;
    bool control_gone;                  /* the control thread stopped answering (exit) */
    uv_timer_t trim_timer;              /* gives memory of finished handshakes back */
    size_t transient_freed;             /* head buffers freed since the last trim */
};

struct sl_gateway {
    uv_loop_t *loop;                    /* the control loop (main thread) */
    char *config_path;
    uv_mutex_t rt_lock;
    sl_runtime_t *rt;                   /* current; guarded by rt_lock */
    sl_runtime_t *boot_rt;              /* the first: listeners point into its config */
    sl_worker_t *workers;
    size_t n_workers;
    uv_os_sock_t *listen_fds;           /* n_workers x n_listeners, created up front */
    size_t n_listen_fds;
    _Atomic uint32_t clients;           /* client connections open, all workers */
    _Atomic int draining;               /* shutdown began: /readyz fails */
    sl_msec_t started;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t shutdown_timer;          /* paces the shutdown drain, enforces its timeout */
    sl_msec_t shutdown_deadline;
    double shutdown_credit;             /* drain tokens not yet spent */
    size_t shutdown_rotor;
    sl_msec_t shutdown_last;
    bool force_sent;
    int exit_code;
    uv_async_t wake;                    /* worker -> control */
    uv_mutex_t inbox_lock;
    sl_cmsg_t *inbox_head, *inbox_tail;
    struct sl_ctl *ctl;                 /* policy state; control thread only */
};

/* Queue a message for the control thread (takes ownership) and wake it. */
void sl_control_post(sl_gateway_t *gw, sl_cmsg_t *msg);

/* The current runtime, with a reference the caller must drop. */
sl_runtime_t *sl_gateway_runtime(sl_gateway_t *gw);

/* Queue a message for a worker (takes ownership of msg) and wake it. */
void sl_worker_post(sl_worker_t *w, sl_wmsg_t *msg);

/* Start the worker's thread: listeners, loop. */
int sl_worker_start(sl_worker_t *w);
/* Free what the worker kept, after its thread has ended. */
void sl_worker_destroy(sl_worker_t *w);

/* A close reason kept by the worker for its lifetime (a handful exist: one per
   drain source); sessions point at it instead of carrying a copy. */
const char *sl_worker_intern(sl_worker_t *w, const char *reason);

/* The worker's name maps for moving WebSockets into its runtime (migrate.c),
   made when first needed and dropped when the runtime changes; NULL when
   out of memory. */
struct sl_migration *sl_worker_migration(sl_worker_t *w);

/* Register and unregister a session in the worker's array. */
int sl_worker_add_session(sl_worker_t *w, sl_session_t *s);
void sl_worker_remove_session(sl_worker_t *w, sl_session_t *s);

/* Create the listening sockets for every worker (SO_REUSEPORT), before threads start. */
int sl_listeners_open(sl_gateway_t *gw, const sl_config_t *cfg, char *err, size_t errlen);

/* Start polling a worker's listeners; pause and resume accepting. */
int sl_listeners_start(sl_worker_t *w);
void sl_listeners_pause(sl_worker_t *w, sl_msec_t retry_after);
/* Close what idles on this worker so that waiting clients get in (fds:
   descriptors ran out, so idle backend connections go too); how many
   clients were closed. */
size_t sl_listeners_free_idle(sl_worker_t *w, bool fds);
void sl_listeners_close(sl_worker_t *w);

#endif
