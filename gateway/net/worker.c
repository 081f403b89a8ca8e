/*
 * worker.c: one event loop in one thread, owning its connections.
 *
 * The control thread speaks to a worker only through its inbox (a mutex-
 * guarded list) and the uv_async_t that wakes the loop; the worker never
 * touches another worker's state. Sessions sit in an array so a drain can
 * pick them in random order in O(1) — a deploy must not always close the
 * oldest connections first.
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/balance.h"
#include "sluice/log.h"
#include "session.h"
#include "tls.h"

int sl_worker_add_session(sl_worker_t *w, sl_session_t *s)
{
    if (w->n_sessions == w->cap_sessions) {
        size_t cap = w->cap_sessions ? w->cap_sessions * 2 : 256;
        sl_session_t **a = realloc(w->sessions, cap * sizeof *a);
        if (a == NULL)
            return SL_ENOMEM;
        w->sessions = a;
        w->cap_sessions = cap;
    }
    s->index = w->n_sessions;
    w->sessions[w->n_sessions++] = s;
    atomic_store_explicit(&w->open_sessions, w->n_sessions, memory_order_relaxed);
    return 0;
}

void sl_worker_remove_session(sl_worker_t *w, sl_session_t *s)
{
    if (s->index == (size_t)-1)
        return;
    sl_session_t *last = w->sessions[--w->n_sessions];
    w->sessions[s->index] = last;
    last->index = s->index;
    s->index = (size_t)-1;
    atomic_store_explicit(&w->open_sessions, w->n_sessions, memory_order_relaxed);
}

#define MAX_REASONS 64

const char *sl_worker_intern(sl_worker_t *w, const char *reason)
{
    for (size_t i = 0; i < w->n_reasons; i++)
        if (strcmp(w->reasons[i], reason) == 0)
            return w->reasons[i];
    if (w->n_reasons == MAX_REASONS)
        return "";   /* a pathological number of distinct reasons: send none */
    if (w->reasons == NULL && (w->reasons = calloc(MAX_REASONS, sizeof *w->reasons)) == NULL)
        return "";
    char *copy = strdup(reason);
    if (copy == NULL)
        return "";
    w->reasons[w->n_reasons++] = copy;
    return copy;
}

void sl_worker_post(sl_worker_t *w, sl_wmsg_t *msg)
{
    msg->next = NULL;
    uv_mutex_lock(&w->inbox_lock);
    if (w->inbox_tail)
        w->inbox_tail->next = msg;
    else
        w->inbox_head = msg;
    w->inbox_tail = msg;
    uv_mutex_unlock(&w->inbox_lock);
    uv_async_send(&w->wake);
}

/* Drain up to `count` WebSockets counted in `ws` (any when NULL), on
   `backend` (any when NULL), chosen at random. */
static void drain_some(sl_worker_t *w, sl_ws_count_t *ws, uint64_t epoch,
                       const sl_backend_shared_t *backend, uint32_t count, uint16_t code,
                       const char *reason)
{
    size_t n = w->n_sessions;
    if (n == 0)
        return;
    size_t start = (size_t)sl_rng_below(&w->rng, n);
    for (size_t k = 0; k < n && count > 0; k++) {
        sl_session_t *s = w->sessions[(start + k) % n];
        if (s->draining || s->state != SL_SS_WS_RELAY)
            continue;
        if (ws && sl_runtime_ws(s->rt, s->service, s->pool) != ws)
            continue;
        if (backend && (s->up == NULL || s->up->backend->state != backend))
            continue;
        if (ws && !sl_ws_count_take_drain(ws, epoch))
            return;   /* the cutover paused or ended since this credit was posted */
        sl_session_drain(s, code, reason);
        count--;
    }
}

/* Shutdown: close idle and plain HTTP connections now; WebSockets are drained, paced. */
static void stop_accepting(sl_worker_t *w)
{
    w->stopping = true;
    sl_listeners_close(w);
    sl_upstream_close_idle(w);
    for (size_t i = 0; i < w->n_sessions;) {
        sl_session_t *s = w->sessions[i];
        if (s->state == SL_SS_WS_RELAY) {
            i++;
            continue;
        }
        size_t before = w->n_sessions;
        s->keep_alive = false;
        /* Between requests: closed, but an answer still queued for a slow
           reader goes out first, then the FIN (the shutdown's timeout bounds
           it): it was cut short. */
        if (s->state == SL_SS_HEAD || s->state == SL_SS_PROXY_HEADER) {
            if (sl_queued(s, true) > 0)
                sl_session_finish(s);
            else
                sl_session_close(s);
        }
        if (w->n_sessions == before)
            i++;
    }
}

static void force_close(sl_worker_t *w)
{
    while (w->n_sessions > 0) {
        sl_session_t *s = w->sessions[w->n_sessions - 1];
        sl_ws_farewell(s, s->rt->cfg->shutdown.close_code);
        sl_session_close(s);
    }
    sl_upstream_close_idle(w);
}

/* This worker's balancers for the pools of its runtime (round-robin state is per owner). */
static void balancers_free(sl_worker_t *w, const sl_runtime_t *rt)
{
    if (w->balancers == NULL)
        return;
    for (size_t p = 0; p < rt->cfg->n_pools; p++)
        sl_balancer_free(w->balancers[p]);
    free(w->balancers);
    w->balancers = NULL;
}

static int balancers_build(sl_worker_t *w)
{
    const sl_runtime_t *rt = w->rt;
    w->balancers = calloc(rt->cfg->n_pools ? rt->cfg->n_pools : 1, sizeof *w->balancers);
    if (w->balancers == NULL)
        return SL_ENOMEM;
    for (size_t p = 0; p < rt->cfg->n_pools; p++) {
        const sl_pool_rt_t *pool = &rt->pools[p];
        sl_balancer_backend_t *bb = calloc(pool->n_backends ? pool->n_backends : 1, sizeof *bb);
        if (bb == NULL)
            return SL_ENOMEM;
        for (size_t i = 0; i < pool->n_backends; i++) {
            bb[i].id = pool->backends[i].name;
            bb[i].weight = pool->backends[i].cfg->weight;
        }
        w->balancers[p] = sl_balancer_new(pool->cfg->balance, bb, pool->n_backends);
        free(bb);
        if (w->balancers[p] == NULL)
            return SL_ENOMEM;
    }
    return 0;
}

/*
 * A reconnect storm puts thousands of request heads and HTTP parsers in
 * flight at once; they are freed when the upgrades complete, but the
 * allocator keeps the pages, and the operator sees the peak as the idle
 * footprint. After a burst (several MiB of such buffers freed), hand the
 * free pages back. At most once per check, and only after real churn.
 */
#define TRIM_CHECK_MS 1000
#define TRIM_AFTER_BYTES (1u << 20)

/* Under a sanitizer, malloc is the sanitizer's: glibc's malloc_trim would
   set up an arena of glibc's own in this thread, and glibc then aborts at
   the thread's exit ("malloc assertion failure in
   __malloc_arena_thread_freeres"), seen under ASan once a test churned
   enough connections to trim. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifdef SANITIZED
#define trim_heap() ((void)0)
#else
#define trim_heap() ((void)malloc_trim(0))
#endif

static void on_trim(uv_timer_t *t)
{
    sl_worker_t *w = t->data;
    if (w->transient_freed < TRIM_AFTER_BYTES)
        return;
    w->transient_freed = 0;
    trim_heap();
}

sl_migration_t *sl_worker_migration(sl_worker_t *w)
{
    if (w->migration == NULL)
        w->migration = sl_migration_begin(w->rt);
    return w->migration;
}

/* A reload: WebSockets and streaming HTTP responses move to the new
   runtime where they can (migrate.c). */
static void migrate_sessions(sl_worker_t *w)
{
    size_t moved = 0, kept = 0;
    uint64_t t0 = uv_hrtime();
    sl_migration_t *mg = sl_worker_migration(w);
    for (size_t i = 0; mg && i < w->n_sessions; i++) {
        sl_session_t *s = w->sessions[i];
        if (!sl_session_lasting(s) || s->rt == w->rt)
            continue;
        if (sl_migration_move(mg, s))
            moved++;
        else
            kept++;
    }
    if (moved || kept)
        sl_log_debug("worker %d: %zu connections moved to config generation %llu in %.2f ms, "
                     "%zu kept their own (service, pool or backend gone)", w->id, moved,
                     (unsigned long long)w->rt->generation, (double)(uv_hrtime() - t0) / 1e6,
                     kept);
}

static void walk_close(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_wake(uv_async_t *a)
{
    sl_worker_t *w = a->data;
    uv_mutex_lock(&w->inbox_lock);
    sl_wmsg_t *m = w->inbox_head;
    w->inbox_head = w->inbox_tail = NULL;
    uv_mutex_unlock(&w->inbox_lock);
    while (m) {
        sl_wmsg_t *next = m->next;
        switch (m->type) {
        case SL_WMSG_RUNTIME: {
            sl_runtime_t *rt = sl_gateway_runtime(w->gw);
            balancers_free(w, w->rt);
            sl_migration_end(w->migration);   /* its maps lead into the runtime going */
            w->migration = NULL;
            sl_runtime_unref(w->rt);
            w->rt = rt;
            if (balancers_build(w) != 0)
                sl_log_error("worker %d: out of memory building balancers", w->id);
            migrate_sessions(w);
            /* A listener paused at max_handshakes takes the new cap at
               once, not at the next handshake's end (a stalled one's:
               handshake_timeout later). */
            sl_listeners_tls_resume(w);
            break;
        }
        case SL_WMSG_DRAIN:
            if (m->backend)
                sl_upstream_close_idle_to(w, m->backend);
            drain_some(w, m->ws, m->epoch, m->backend, m->count, m->close_code, m->reason);
            break;
        case SL_WMSG_STOP_ACCEPT:
            stop_accepting(w);
            break;
        case SL_WMSG_FORCE_CLOSE:
            force_close(w);
            break;
        case SL_WMSG_ADMIT_RESULT:
            sl_session_admit_result(m->session, m);
            break;
        case SL_WMSG_MAKE_ROOM:
            if (!w->stopping)
                sl_listeners_free_idle(w, m->fds);
            break;
        case SL_WMSG_EXIT:
            /* No answer will come any more: stop holding memory for one. */
            w->control_gone = true;
            for (size_t i = 0; i < w->n_sessions; i++) {
                sl_session_t *s = w->sessions[i];
                if (s->admit_pending) {
                    s->admit_pending = false;
                    s->pending_closes--;
                }
            }
            force_close(w);
            sl_listeners_close(w);
            uv_close((uv_handle_t *)&w->accept_timer, NULL);
            uv_close((uv_handle_t *)&w->trim_timer, NULL);
            uv_close((uv_handle_t *)&w->wake, NULL);
            break;
        }
        free(m);
        m = next;
    }
}

static void worker_main(void *arg)
{
    sl_worker_t *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* Anything left (should be nothing) is closed so the loop can close. */
    uv_walk(&w->loop, walk_close, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&w->loop) != 0)
        sl_log_warn("worker %d: loop closed with handles open", w->id);
}

int sl_worker_start(sl_worker_t *w)
{
    int rc = uv_loop_init(&w->loop);
    if (rc != 0)
        return rc;
    w->loop.data = w;
    uv_mutex_init(&w->inbox_lock);
    uv_async_init(&w->loop, &w->wake, on_wake);
    w->wake.data = w;
    uv_timer_init(&w->loop, &w->accept_timer);
    w->accept_timer.data = w;
    uv_timer_init(&w->loop, &w->trim_timer);
    w->trim_timer.data = w;
    uv_timer_start(&w->trim_timer, on_trim, TRIM_CHECK_MS, TRIM_CHECK_MS);
    uv_unref((uv_handle_t *)&w->trim_timer);
    sl_slab_init(&w->session_slab, sizeof(sl_session_t));
    sl_slab_init(&w->upstream_slab, sizeof(sl_upstream_t));
    sl_bufpool_init(&w->bufs, 16);   /* 512 KiB of free blocks at most: enough to ride a burst */
    w->rng.state = 0x5eed0000u + (uint64_t)w->id * 7919u + (uint64_t)uv_hrtime();
    w->rt = sl_gateway_runtime(w->gw);
    if (balancers_build(w) != 0)
        return UV_ENOMEM;
    if ((rc = sl_listeners_start(w)) != 0)
        return rc;
    return uv_thread_create(&w->thread, worker_main, w);
}

void sl_worker_destroy(sl_worker_t *w)
{
    sl_bufpool_destroy(&w->bufs);
    sl_slab_destroy(&w->session_slab);
    sl_slab_destroy(&w->upstream_slab);
    while (w->free_wreqs) {
        struct sl_wreq *r = w->free_wreqs;
        w->free_wreqs = r->next_free;
        free(r);
    }
    free(w->sessions);
    w->sessions = NULL;
    free(w->listeners);
    w->listeners = NULL;
    for (size_t i = 0; i < w->n_reasons; i++)
        free(w->reasons[i]);
    free(w->reasons);
    w->reasons = NULL;
    sl_migration_end(w->migration);
    w->migration = NULL;
    if (w->rt) {
        balancers_free(w, w->rt);
        sl_runtime_unref(w->rt);
    }
    w->rt = NULL;
    uv_mutex_destroy(&w->inbox_lock);
}
