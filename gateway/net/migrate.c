/*
 * migrate.c: moving a WebSocket to the current runtime.
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
 * runtime per such connection at most, never one per reload.
 *
 * After the move the current config's timeouts (idle, ping), drain grace
 * and write limits apply to it; its frame and message limits stay those it
 * opened with (they are in its parsers).
 */
#include <string.h>

#include "session.h"
#include "tls.h"

/* The backend of `to`'s pool p that shares `state`, or NULL. */
static sl_backend_rt_t *same_backend(sl_runtime_t *to, long p, const sl_backend_shared_t *state)
{
    sl_pool_rt_t *pool = &to->pools[p];
    for (size_t i = 0; i < pool->n_backends; i++)
        if (pool->backends[i].state == state)
            return &pool->backends[i];
    return NULL;
}

bool sl_session_migrate(sl_session_t *s, sl_runtime_t *to)
{
    sl_runtime_t *from = s->rt;
    sl_upstream_t *up = s->up;
    if (from == to || s->state != SL_SS_WS_RELAY || up == NULL || up->rt != from ||
        up->session != s || s->service < 0 || s->pool < 0)
        return false;
    const sl_cfg_service_t *svc = sl_config_service(to->cfg, from->cfg->services[s->service].name);
    long pool = sl_config_pool_index(to->cfg, from->cfg->pools[s->pool].name);
    if (svc == NULL || pool < 0)
        return false;
    long service = (long)(svc - to->cfg->services);
    if (sl_runtime_ws(to, service, pool) != sl_runtime_ws(from, s->service, s->pool))
        return false;
    sl_backend_rt_t *b = same_backend(to, pool, up->backend->state);
    if (b == NULL)
        return false;

    /* Everything that points into `from` now points into `to`. */
    up->backend = b;
    up->rt = sl_runtime_ref(to);
    sl_runtime_unref(from);
    sl_tls_up_renamed(up);
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
