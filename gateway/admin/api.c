/*
 * api.c: the admin API's resources, and the route table that names them.
 *
 * Why one table: what the API offers is readable in one place, and adding a
 * resource is one line here plus its handler (see admin.h). The resources
 * that drive policy (admission, deploys, reload, backends) are in
 * api_policy.c. A resource whose machinery is not built yet is routed to a
 * handler answering 501 "not implemented yet", never to a 200 that changed
 * nothing (none is left today).
 *
 * Every handler reads the current runtime through sl_gateway_runtime() and
 * drops its reference before returning; counters are summed over workers
 * with relaxed loads, so a response is a consistent-enough snapshot, never
 * a lock on the data path.
 */
#include <stdatomic.h>
#include <string.h>

#include "../net/ctl.h"
#include "admin.h"

static const char *balance_name(sl_balance_t b)
{
    switch (b) {
    case SL_BALANCE_LEAST_CONN: return "least_conn";
    case SL_BALANCE_ROUND_ROBIN: return "round_robin";
    case SL_BALANCE_HASH: return "hash";
    }
    return "?";
}

void sl__admin_sum_counters(sl_gateway_t *gw, uint64_t out[SL_CTR__COUNT])
{
    memset(out, 0, SL_CTR__COUNT * sizeof *out);
    for (size_t w = 0; w < gw->n_workers; w++)
        for (size_t i = 0; i < SL_CTR__COUNT; i++)
            out[i] += atomic_load_explicit(&gw->workers[w].counters.v[i], memory_order_relaxed);
}

static size_t open_sessions(sl_gateway_t *gw)
{
    size_t n = 0;
    for (size_t i = 0; i < gw->n_workers; i++)
        n += atomic_load_explicit(&gw->workers[i].open_sessions, memory_order_relaxed);
    return n;
}

/* ---- probes ----------------------------------------------------------------------- */

static void get_healthz(sl_admin_req_t *req, sl_admin_resp_t *resp)
{
    (void)req;
    sl_jw_obj(&resp->jw);
    sl_jw_kstr(&resp->jw, "status", "ok");
    sl_jw_end(&resp->jw);
}

static void get_readyz(sl_admin_req_t *req, sl_admin_resp_t *resp)
{
    bool draining = atomic_load(&req->gw->draining) != 0;
    resp->status = draining ? 503 : 200;
    sl_jw_obj(&resp->jw);
    sl_jw_kstr(&resp->jw, "status", draining ? "draining" : "ready");
    sl_jw_end(&resp->jw);
}

/* ---- pools and status ------------------------------------------------------------------ */

static void write_backend(sl_jw_t *w, const sl_backend_rt_t *b)
{
    const sl_backend_shared_t *st = b->state;
    sl_jw_obj(w);
    sl_jw_kstr(w, "address", b->name);
    sl_jw_kuint(w, "weight", b->cfg->weight);
    sl_jw_kbool(w, "up", atomic_load_explicit(&st->up, memory_order_relaxed) != 0);
    /* Apart from `up`, which stays the health verdict: drained through the
       API, it takes no new connections; `active` is what is left on it. */
    sl_jw_kbool(w, "draining", atomic_load_explicit(&st->admin_drain, memory_order_relaxed) != 0);
    sl_jw_kuint(w, "active", atomic_load_explicit(&st->active, memory_order_relaxed));
    sl_jw_kuint(w, "connects", atomic_load_explicit(&st->connects, memory_order_relaxed));
    sl_jw_kuint(w, "connect_failures",
                atomic_load_explicit(&st->connect_failures, memory_order_relaxed));
    sl_jw_kuint(w, "consecutive_failures",
                atomic_load_explicit(&st->consecutive_failures, memory_order_relaxed));
    sl_jw_kuint(w, "handshakes", atomic_load_explicit(&st->handshakes, memory_order_relaxed));
    sl_jw_kuint(w, "handshake_failures",
                atomic_load_explicit(&st->handshake_failures, memory_order_relaxed));
    sl_jw_end(w);
}

static void write_pool(sl_jw_t *w, const sl_runtime_t *rt, const sl_gateway_t *gw, size_t i)
{
    const sl_pool_rt_t *p = &rt->pools[i];
    uint64_t active = 0;
    size_t up = 0, draining = 0;
    for (size_t b = 0; b < p->n_backends; b++) {
        active += atomic_load_explicit(&p->backends[b].state->active, memory_order_relaxed);
        up += atomic_load_explicit(&p->backends[b].state->up, memory_order_relaxed) != 0;
        draining += atomic_load_explicit(&p->backends[b].state->admin_drain,
                                         memory_order_relaxed) != 0;
    }
    sl_jw_obj(w);
    sl_jw_kstr(w, "name", p->cfg->name);
    sl_jw_kstr(w, "balance", balance_name(p->cfg->balance));
    sl_jw_kuint(w, "active", active);
    sl_jw_kuint(w, "backends_up", up);
    sl_jw_kuint(w, "backends_draining", draining);
    sl_jw_key(w, "backends");
    sl_jw_arr(w);
    for (size_t b = 0; b < p->n_backends; b++)
        write_backend(w, &p->backends[b]);
    sl_jw_end(w);
    /* Values the API set, kept in the state file, standing over the YAML. */
    sl_jw_key(w, "overridden");
    sl_jw_arr(w);
    const sl_ctl_t *ctl = gw->ctl;
    if (sl_state_pool_overridden(p->cfg->name))
        sl_jw_str(w, "backends");
    if (ctl && ctl->rt == rt && ctl->pools[i].admission_overridden)
        sl_jw_str(w, "admission");
    sl_jw_end(w);
    sl_jw_end(w);
}

static void write_pools(sl_jw_t *w, const sl_runtime_t *rt, const sl_gateway_t *gw)
{
    sl_jw_arr(w);
    for (size_t i = 0; i < rt->cfg->n_pools; i++)
        write_pool(w, rt, gw, i);
    sl_jw_end(w);
}

static void write_services(sl_jw_t *w, const sl_runtime_t *rt, const sl_gateway_t *gw)
{
    const sl_config_t *cfg = rt->cfg;
    sl_jw_arr(w);
    for (size_t i = 0; i < cfg->n_services; i++) {
        const sl_cfg_service_t *s = &cfg->services[i];
        sl_jw_obj(w);
        sl_jw_kstr(w, "name", s->name);
        sl_jw_key(w, "pools");
        sl_jw_arr(w);
        for (size_t k = 0; k < s->n_pools; k++)
            sl_jw_str(w, cfg->pools[s->pools[k]].name);
        sl_jw_end(w);
        long active = atomic_load_explicit(&rt->services[i].active, memory_order_relaxed);
        if (active < 0 || (size_t)active >= cfg->n_pools)
            active = (long)s->active;
        sl_jw_kstr(w, "active", cfg->pools[active].name);
        sl_jw_kbool(w, "admission", s->admission.enabled);
        /* Values the API set, kept in the state file, standing over the YAML. */
        sl_jw_key(w, "overridden");
        sl_jw_arr(w);
        const sl_ctl_t *ctl = gw->ctl;
        if (ctl && ctl->rt == rt && ctl->services[i].active_overridden)
            sl_jw_str(w, "active");
        if (ctl && ctl->rt == rt && ctl->services[i].admission_overridden)
            sl_jw_str(w, "admission");
        sl_jw_end(w);
        sl_jw_end(w);
    }
    sl_jw_end(w);
}

static void get_status(sl_admin_req_t *req, sl_admin_resp_t *resp)
{
    sl_gateway_t *gw = req->gw;
    sl_runtime_t *rt = sl_gateway_runtime(gw);
    uint64_t ctr[SL_CTR__COUNT];
    sl__admin_sum_counters(gw, ctr);
    sl_jw_t *w = &resp->jw;
    sl_jw_obj(w);
    sl_jw_kstr(w, "version", SLUICE_VERSION);
    sl_jw_knum(w, "uptime_seconds", (double)(req->now - gw->started) / 1000.0);
    sl_jw_kuint(w, "workers", gw->n_workers);
    sl_jw_kbool(w, "draining", atomic_load(&gw->draining) != 0);
    sl_jw_kuint(w, "config_generation", rt->generation);
    sl_jw_key(w, "connections");
    sl_jw_obj(w);
    sl_jw_kuint(w, "clients", atomic_load_explicit(&gw->clients, memory_order_relaxed));
    sl_jw_kuint(w, "sessions", open_sessions(gw));
    sl_jw_kuint(w, "websockets", ctr[SL_CTR_WS_OPEN]);
    sl_jw_end(w);
    sl_jw_key(w, "services");
    write_services(w, rt, gw);
    sl_jw_key(w, "pools");
    write_pools(w, rt, gw);
    sl_jw_key(w, "counters");
    sl_jw_obj(w);
    for (size_t i = 0; i < SL_CTR__COUNT; i++)
        sl_jw_kuint(w, sl_counter_info[i].name, ctr[i]);
    sl_jw_end(w);
    sl_jw_end(w);
    sl_runtime_unref(rt);
}

static void get_pools(sl_admin_req_t *req, sl_admin_resp_t *resp)
{
    sl_runtime_t *rt = sl_gateway_runtime(req->gw);
    sl_jw_obj(&resp->jw);
    sl_jw_key(&resp->jw, "pools");
    write_pools(&resp->jw, rt, req->gw);
    sl_jw_end(&resp->jw);
    sl_runtime_unref(rt);
}

static void get_pool(sl_admin_req_t *req, sl_admin_resp_t *resp)
{
    sl_runtime_t *rt = sl_gateway_runtime(req->gw);
    long i = sl_config_pool_index(rt->cfg, req->params[0]);
    if (i < 0)
        sl_admin_error(resp, 404, "no pool \"%s\"", req->params[0]);
    else
        write_pool(&resp->jw, rt, req->gw, (size_t)i);
    sl_runtime_unref(rt);
}

/* The API. Match order matters only for identical patterns; see admin.h. */
const sl_admin_route_t sl_admin_routes[] = {
    {"GET", "/healthz", get_healthz, SL_ADMIN_PUBLIC},
    {"GET", "/readyz", get_readyz, SL_ADMIN_PUBLIC},
    {"GET", "/metrics", sl__admin_metrics, 0},
    {"GET", "/api/v1/status", get_status, 0},
    {"GET", "/api/v1/pools", get_pools, 0},
    {"GET", "/api/v1/pools/{pool}", get_pool, 0},
    {"PUT", "/api/v1/pools/{pool}/backends", sl__admin_put_backends, 0},
    {"POST", "/api/v1/pools/{pool}/backends/{addr}/drain", sl__admin_post_backend_drain, 0},
    {"GET", "/api/v1/services/{service}/admission", sl__admin_get_admission, 0},
    {"PUT", "/api/v1/services/{service}/admission", sl__admin_put_admission, 0},
    {"POST", "/api/v1/services/{service}/deploys", sl__admin_post_deploy, 0},
    {"GET", "/api/v1/services/{service}/deploys/current", sl__admin_get_deploy, 0},
    {"POST", "/api/v1/services/{service}/deploys/current/pause", sl__admin_post_pause, 0},
    {"POST", "/api/v1/services/{service}/deploys/current/resume", sl__admin_post_resume, 0},
    {"POST", "/api/v1/services/{service}/deploys/current/abort", sl__admin_post_abort, 0},
    {"POST", "/api/v1/reload", sl__admin_post_reload, 0},
};
const size_t sl_admin_n_routes = SL_ARRAY_SIZE(sl_admin_routes);
