/*
 * runtime.c: turning a parsed config into what workers need.
 *
 * Resolution happens here, not in the config loader, because the loader is
 * core code that does no I/O (tests feed it text), while resolving a host
 * name is a network operation. Doing it once per load or reload, on the
 * control thread, keeps DNS off the hot path: the compose file can name its
 * services, and a reload picks up new addresses.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

int sl_resolve(const char *host, uint16_t port, struct sockaddr_storage *ss,
               socklen_t *len, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, errlen, "cannot resolve \"%s\": %s", host,
                 rc ? gai_strerror(rc) : "no address");
        return SL_ENOENT;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* The state of the same backend (pool name and address text) in prev, if any. */
static sl_backend_shared_t *carried_state(const sl_runtime_t *prev, const char *pool,
                                         const char *addr)
{
    if (prev == NULL)
        return NULL;
    for (size_t p = 0; p < prev->cfg->n_pools; p++) {
        if (strcmp(prev->cfg->pools[p].name, pool) != 0)
            continue;
        const sl_pool_rt_t *pr = &prev->pools[p];
        for (size_t b = 0; b < pr->n_backends; b++)
            if (strcmp(pr->backends[b].cfg->address.text, addr) == 0)
                return pr->backends[b].state;
    }
    return NULL;
}

/* The counts of the same service and pool (by names) in prev, if any. */
static sl_ws_count_t *carried_ws(const sl_runtime_t *prev, const char *service, const char *pool)
{
    if (prev == NULL)
        return NULL;
    const sl_cfg_service_t *s = sl_config_service(prev->cfg, service);
    long p = sl_config_pool_index(prev->cfg, pool);
    if (s == NULL || p < 0)
        return NULL;
    return sl_runtime_ws(prev, (long)(s - prev->cfg->services), p);
}

static int build_ws(sl_runtime_t *rt, const sl_config_t *cfg, const sl_runtime_t *prev)
{
    rt->ws = calloc(cfg->n_services * cfg->n_pools + 1, sizeof *rt->ws);
    if (rt->ws == NULL)
        return SL_ENOMEM;
    for (size_t i = 0; i < cfg->n_services; i++) {
        for (size_t p = 0; p < cfg->n_pools; p++) {
            sl_ws_count_t **slot = &rt->ws[i * cfg->n_pools + p];
            *slot = carried_ws(prev, cfg->services[i].name, cfg->pools[p].name);
            if (*slot == NULL)
                *slot = calloc(1, sizeof **slot);
            if (*slot == NULL)
                return SL_ENOMEM;
            atomic_fetch_add(&(*slot)->refs, 1);
        }
    }
    return 0;
}

static void free_ws(sl_ws_count_t **ws, size_t n)
{
    for (size_t i = 0; ws && i < n; i++)
        if (ws[i] && atomic_fetch_sub(&ws[i]->refs, 1) == 1)
            free(ws[i]);
    free(ws);
}

static void free_pools(sl_pool_rt_t *pools, size_t n)
{
    for (size_t p = 0; p < n; p++) {
        for (size_t b = 0; b < pools[p].n_backends; b++) {
            sl_backend_shared_t *st = pools[p].backends[b].state;
            if (st && atomic_fetch_sub(&st->refs, 1) == 1)
                free(st);
        }
        free(pools[p].backends);
    }
    free(pools);
}

/* Runtimes alive now, for the metric: a count that only grows with reloads
   would mean connections pin old configs (migrate.c keeps it at 2 or so). */
static _Atomic long live_runtimes;

long sl_runtimes_held(void)
{
    return atomic_load(&live_runtimes);
}

sl_runtime_t *sl_runtime_new(sl_config_t *cfg, const sl_runtime_t *prev, sl_diag_t *diag)
{
    sl_runtime_t *rt = calloc(1, sizeof *rt);
    sl_pool_rt_t *pools = calloc(cfg->n_pools ? cfg->n_pools : 1, sizeof *pools);
    if (rt == NULL || pools == NULL)
        goto fail;
    bool ok = true;
    for (size_t p = 0; p < cfg->n_pools; p++) {
        const sl_cfg_pool_t *pc = &cfg->pools[p];
        sl_pool_rt_t *pr = &pools[p];
        pr->cfg = pc;
        pr->backends = calloc(pc->n_backends ? pc->n_backends : 1, sizeof *pr->backends);
        if (pr->backends == NULL)
            goto fail;
        pr->n_backends = pc->n_backends;
        for (size_t b = 0; b < pc->n_backends; b++) {
            sl_backend_rt_t *br = &pr->backends[b];
            const sl_cfg_addr_t *a = &pc->backends[b].address;
            br->cfg = &pc->backends[b];
            br->name = a->text;
            char err[256];
            if (sl_resolve(a->host, a->port, &br->addr, &br->addrlen, err, sizeof err) != 0) {
                char line[512];
                if (a->pos.line == 0)   /* set through the API (or the state file): no place */
                    snprintf(line, sizeof line, "pools.%s.backends[%zu].address: %s (set through "
                             "the API%s%s)", pc->name, b, err,
                             cfg->admin.state_file ? "; kept in " : "",
                             cfg->admin.state_file ? cfg->admin.state_file : "");
                else
                    snprintf(line, sizeof line, "%s:%u:%u: pools.%s.backends[%zu].address: %s",
                             cfg->file ? cfg->file : "config", a->pos.line, a->pos.col, pc->name,
                             b, err);
                sl_diag_add(diag, line);
                ok = false;
            }
            br->state = carried_state(prev, pc->name, a->text);
            if (br->state) {
                atomic_fetch_add(&br->state->refs, 1);
            } else {
                br->state = calloc(1, sizeof *br->state);
                if (br->state == NULL)
                    goto fail;
                atomic_store(&br->state->refs, 1);
                atomic_store(&br->state->up, 1);
            }
        }
    }
    if (!ok)
        goto fail;
    rt->services = calloc(cfg->n_services ? cfg->n_services : 1, sizeof *rt->services);
    if (rt->services == NULL || build_ws(rt, cfg, prev) != 0)
        goto fail;
    for (size_t i = 0; i < cfg->n_services; i++) {
        atomic_store(&rt->services[i].active, (long)cfg->services[i].active);
        atomic_store(&rt->services[i].from, -1L);
        atomic_store(&rt->services[i].to, -1L);
    }
    rt->router = sl_router_new(cfg);
    if (rt->router == NULL)
        goto fail;
    rt->pools = pools;
    rt->cfg = cfg;
    rt->generation = prev ? prev->generation + 1 : 1;
    atomic_store(&rt->refs, 1);
    atomic_fetch_add(&live_runtimes, 1);
    return rt;

fail:
    if (pools)
        free_pools(pools, cfg->n_pools);
    if (rt) {
        free(rt->services);
        free_ws(rt->ws, cfg->n_services * cfg->n_pools);
    }
    free(rt);
    return NULL;
}

void sl_runtime_unref(sl_runtime_t *rt)
{
    if (atomic_fetch_sub_explicit(&rt->refs, 1, memory_order_acq_rel) != 1)
        return;
    sl_router_free(rt->router);
    free_pools(rt->pools, rt->cfg->n_pools);
    free(rt->services);
    free_ws(rt->ws, rt->cfg->n_services * rt->cfg->n_pools);
    sl_config_free(rt->cfg);
    free(rt);
    atomic_fetch_sub(&live_runtimes, 1);
}
