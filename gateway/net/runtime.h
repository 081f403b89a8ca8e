/*
 * runtime.h: one published configuration, ready for the workers.
 *
 * A runtime is the config plus what the shell derives from it once: the
 * router, resolved backend addresses, and the per-backend state the workers
 * share (open connections, health). It is immutable after publication except
 * for those atomics, and reference counted: a session holds a reference for
 * its whole life, so a reload never pulls a pool out from under a connection.
 *
 * Backend state is carried from the old runtime into the new one at reload
 * for backends that stay (same pool, same address), so counts survive.
 */
#ifndef SLUICE_NET_RUNTIME_H
#define SLUICE_NET_RUNTIME_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "sluice/config.h"
#include "sluice/route.h"

/* Backends per pool the shell supports (the balancer's pick uses stack arrays). */
#define SL_MAX_POOL_BACKENDS 256

/* State shared by all runtimes that contain the same backend. */
typedef struct sl_backend_shared {
    _Atomic long refs;
    _Atomic uint32_t active;             /* connections open to it, all workers */
    _Atomic int up;                      /* 1 when it may take new connections */
    _Atomic uint32_t consecutive_failures;
    _Atomic uint64_t connects;
    _Atomic uint64_t connect_failures;
    _Atomic uint64_t handshakes;
    _Atomic uint64_t handshake_failures; /* connect failures, refused or botched upgrades */
    _Atomic int admin_drain;             /* drained through the API: no new connections */
} sl_backend_shared_t;

typedef struct sl_backend_rt {
    const sl_cfg_backend_t *cfg;
    const char *name;                    /* "host:port", for logs and the API: cfg's text */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    sl_backend_shared_t *state;
} sl_backend_rt_t;

typedef struct sl_pool_rt {
    const sl_cfg_pool_t *cfg;
    sl_backend_rt_t *backends;
    size_t n_backends;
    _Atomic uint64_t rr;                 /* round-robin cursor and tie breaker */
} sl_pool_rt_t;

/*
 * Where a service's new connections go, as the control thread publishes it:
 * the active pool, or during a cutover the two pools and the share of the
 * new one (in millionths). Workers read it when admission is off (with
 * admission on, the control thread picks the pool itself).
 */
typedef struct sl_service_rt {
    _Atomic long active;
    _Atomic long from;                   /* -1: no cutover */
    _Atomic long to;
    _Atomic uint32_t weight_to_ppm;
} sl_service_rt_t;

/*
 * WebSockets per service and pool, all workers: what a cutover waits to see
 * reach 0. Shared by every runtime in which the service still uses the pool
 * (matched by names, like a backend's state): a session counts itself in its
 * own runtime's, and a cutover after a reload must see it.
 */
typedef struct sl_ws_count {
    _Atomic uint32_t open;
    _Atomic uint32_t draining;           /* told to close, not closed yet */
    /* Connections a cutover told to close, stamped: the bits from
       SL_WS_EPOCH_SHIFT up are the drain epoch, which the control thread
       bumps when a cutover pauses or ends. Credit posted before that finds
       the epoch changed and closes nothing (sl_ws_count_take_drain), so an
       abort stops the drain at once and the count stays exact. */
    _Atomic uint64_t cutover_drains;
    _Atomic long refs;                   /* runtimes sharing it */
} sl_ws_count_t;

typedef struct sl_runtime {
    _Atomic long refs;
    sl_config_t *cfg;                    /* owned */
    sl_router_t *router;                 /* owned */
    sl_pool_rt_t *pools;                 /* parallel to cfg->pools */
    sl_service_rt_t *services;           /* parallel to cfg->services */
    sl_ws_count_t **ws;                  /* [service * n_pools + pool] */
    uint64_t generation;
} sl_runtime_t;

static inline sl_ws_count_t *sl_runtime_ws(const sl_runtime_t *rt, long service, long pool)
{
    return rt->ws[(size_t)service * rt->cfg->n_pools + (size_t)pool];
}

#define SL_WS_EPOCH_SHIFT 40

static inline uint64_t sl_ws_drain_epoch(uint64_t stamped)
{
    return stamped >> SL_WS_EPOCH_SHIFT;
}

static inline uint64_t sl_ws_drain_count(uint64_t stamped)
{
    return stamped & ((UINT64_C(1) << SL_WS_EPOCH_SHIFT) - 1);
}

/* Count one cutover drain under `epoch`: false when the epoch has moved on
   (the cutover paused or ended since the credit was posted). */
static inline bool sl_ws_count_take_drain(sl_ws_count_t *c, uint64_t epoch)
{
    uint64_t w = atomic_load(&c->cutover_drains);
    do {
        if (sl_ws_drain_epoch(w) != epoch)
            return false;
    } while (!atomic_compare_exchange_weak(&c->cutover_drains, &w, w + 1));
    return true;
}

/* Void every cutover drain credit posted so far; returns the new stamp. */
static inline uint64_t sl_ws_count_stop_drains(sl_ws_count_t *c)
{
    return atomic_fetch_add(&c->cutover_drains, UINT64_C(1) << SL_WS_EPOCH_SHIFT) +
           (UINT64_C(1) << SL_WS_EPOCH_SHIFT);
}

/*
 * Build a runtime from a parsed config, resolving every backend address
 * (blocking getaddrinfo: call it from the control thread, at start and
 * reload). `prev` (may be NULL) lends backend state to backends that stay.
 * On failure returns NULL and writes one line per problem into diag, in the
 * same FILE:LINE:COL form as the loader. Takes ownership of cfg on success.
 */
sl_runtime_t *sl_runtime_new(sl_config_t *cfg, const sl_runtime_t *prev, sl_diag_t *diag);

static inline sl_runtime_t *sl_runtime_ref(sl_runtime_t *rt)
{
    atomic_fetch_add_explicit(&rt->refs, 1, memory_order_relaxed);
    return rt;
}

void sl_runtime_unref(sl_runtime_t *rt);

/* Runtimes in memory: the current one, the first (the listeners point into
   its config), and older ones that connections or requests still hold. */
long sl_runtimes_held(void);

/* Resolve "host:port" into a socket address (numeric or via DNS). */
int sl_resolve(const char *host, uint16_t port, struct sockaddr_storage *ss,
               socklen_t *len, char *err, size_t errlen);

#endif
