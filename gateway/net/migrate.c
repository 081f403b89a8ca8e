/*
 * migrate.c: moving a WebSocket (or a streaming HTTP response) to the
 * current runtime.
 *
 * A session holds the runtime it started with, so a reload never pulls a
 * pool out from under it. A kept-alive HTTP client moves to the current one
 * at its next request; a WebSocket has no next request, and would pin every
 * generation it spans, config text and all, for as long as it lives (days,
 * for a mobile client), while an operator reloads every few minutes. So at
 * a reload, and when a handshake finishes under an old runtime, the worker
 * moves each WebSocket to the current runtime when everything it stands on
 * is still there: its service and pool (by name) with the same shared
 * WebSocket count, so cutovers and drains see it where they did, and its
 * backend with the same shared state (a backend that stays in its pool at a
 * reload keeps its state, runtime.c). A WebSocket whose service, pool or
 * backend is gone keeps its old runtime until it closes: that is one old
 * runtime per such connection at most, never one per reload. An HTTP
 * response already streaming to its client (server-sent events, a long
 * poll) moves the same way; a kept-alive HTTP client moves anyway at its
 * next request (httpproxy.c), and a kept-alive backend connection with the
 * exchange it is next taken for (upstream.c).
 *
 * After the move the current config's timeouts (idle, ping), drain grace
 * and write limits apply to it; its frame and message limits stay those it
 * opened with (they are in its parsers).
 *
 * Names are mapped once per old runtime, not once per connection: 9,000
 * WebSockets over a config of 300 pools would otherwise cost millions of
 * string comparisons while the worker's relaying waits, and so would a
 * storm's queued handshakes finishing one by one after a reload. The worker
 * keeps the maps until its runtime changes (sl_worker_migration). A map is
 * found by the old runtime's address, which is safe: no session holds a
 * runtime newer than the worker's, so any runtime a session holds while the
 * maps live was alive when each map was made, beside the one it maps, and an
 * address cannot name two runtimes alive at once.
 */
#include <stdlib.h>
#include <string.h>

#include "session.h"

/* Where one old runtime's services and pools are in `to` (-1: gone). */
typedef struct name_map {
    const sl_runtime_t *from;
    long *service;
    long *pool;
} name_map_t;

struct sl_migration {
    sl_runtime_t *to;
    name_map_t maps[4];   /* the runtimes a walk meets: the last one, and a few kept */
    unsigned next;        /* the slot to reuse when all are taken */
};

static void map_free(name_map_t *m)
{
    free(m->service);
    free(m->pool);
    memset(m, 0, sizeof *m);
}

static bool map_build(name_map_t *m, const sl_runtime_t *from, const sl_runtime_t *to)
{
    const sl_config_t *f = from->cfg;
    m->from = from;
    m->service = malloc((f->n_services ? f->n_services : 1) * sizeof *m->service);
    m->pool = malloc((f->n_pools ? f->n_pools : 1) * sizeof *m->pool);
    if (m->service == NULL || m->pool == NULL) {
        map_free(m);
        return false;
    }
    for (size_t i = 0; i < f->n_services; i++) {
        const sl_cfg_service_t *s = sl_config_service(to->cfg, f->services[i].name);
        m->service[i] = s ? (long)(s - to->cfg->services) : -1;
    }
    for (size_t p = 0; p < f->n_pools; p++)
        m->pool[p] = sl_config_pool_index(to->cfg, f->pools[p].name);
    return true;
}

static const name_map_t *map_of(sl_migration_t *mg, const sl_runtime_t *from)
{
    for (size_t i = 0; i < SL_ARRAY_SIZE(mg->maps); i++)
        if (mg->maps[i].from == from)
            return &mg->maps[i];
    name_map_t *m = &mg->maps[mg->next++ % SL_ARRAY_SIZE(mg->maps)];
    map_free(m);
    return map_build(m, from, mg->to) ? m : NULL;
}

sl_migration_t *sl_migration_begin(sl_runtime_t *to)
{
    sl_migration_t *mg = calloc(1, sizeof *mg);
    if (mg)
        mg->to = to;
    return mg;
}

void sl_migration_end(sl_migration_t *mg)
{
    if (mg == NULL)
        return;
    for (size_t i = 0; i < SL_ARRAY_SIZE(mg->maps); i++)
        map_free(&mg->maps[i]);
    free(mg);
}

/* An HTTP response on its way is past every retry that reads the old pool's
   indices; a request still being routed, admitted or connected is not. */
bool sl_session_lasting(const sl_session_t *s)
{
    return s->state == SL_SS_WS_RELAY || (s->state == SL_SS_HTTP && s->resp_started);
}

/* The backend of `to`'s pool p that shares `state`, or NULL. */
static sl_backend_rt_t *same_backend(sl_runtime_t *to, long p, const sl_backend_shared_t *state)
{
    sl_pool_rt_t *pool = &to->pools[p];
    for (size_t i = 0; i < pool->n_backends; i++)
        if (pool->backends[i].state == state)
            return &pool->backends[i];
    return NULL;
}

bool sl_migration_move(sl_migration_t *mg, sl_session_t *s)
{
    sl_runtime_t *from = s->rt, *to = mg->to;
    sl_upstream_t *up = s->up;
    if (from == to || !sl_session_lasting(s) || up == NULL || up->rt != from ||
        up->session != s || s->service < 0 || s->pool < 0)
        return false;
    const name_map_t *m = map_of(mg, from);
    if (m == NULL)
        return false;   /* out of memory: it stays where it is, which is safe */
    long service = m->service[s->service], pool = m->pool[s->pool];
    if (service < 0 || pool < 0 ||
        sl_runtime_ws(to, service, pool) != sl_runtime_ws(from, s->service, s->pool))
        return false;
    sl_backend_rt_t *b = same_backend(to, pool, up->backend->state);
    if (b == NULL)
        return false;

    /* Everything that points into `from` now points into `to`. */
    sl_upstream_follow(up, to, b);
    if (s->log_backend >= 0)
        s->log_backend = (int16_t)(b - to->pools[pool].backends);
    s->service = service;
    s->pool = pool;
    s->route = -1;       /* routes are matched at the head only; none is looked at now */
    s->hash_pool = -1;   /* likewise the sticky key, made for the connect */
    s->rt = sl_runtime_ref(to);
    sl_runtime_unref(from);
    /* The new config's timeouts may move its deadlines. */
    sl_session_arm_timer(s);
    return true;
}
