/*
 * metrics.c: GET /metrics, in the Prometheus text exposition format 0.0.4.
 *
 * Why generated from the counter table: counters.h is the single list of
 * what the gateway counts, with names and help texts, so a counter added
 * there appears here with no second edit. Every family gets its HELP and
 * TYPE lines once, then its samples; per-backend families carry the labels
 * pool and backend. Every label of every family (here and in api_policy.c)
 * is written by sl__admin_label, which escapes values as the format requires
 * (\\, \", \n): service and pool names may hold any character, and one bare
 * quote or newline would make Prometheus drop the whole scrape. The
 * per-backend families are named sluice_pool_backend_* so they never collide
 * with the gateway-wide sluice_backend_* counters of the table.
 */
#include <stdatomic.h>

#include "admin.h"

#define PREFIX "sluice_"

static void family(sl_buf_t *b, const char *name, const char *type, const char *help)
{
    sl_buf_printf(b, "# HELP " PREFIX "%s %s\n# TYPE " PREFIX "%s %s\n", name, help, name, type);
}

void sl__admin_label(sl_buf_t *b, const char *key, const char *value)
{
    sl_buf_puts(b, key);
    sl_buf_puts(b, "=\"");
    for (const char *v = value; *v; v++) {
        if (*v == '\\' || *v == '"')
            sl_buf_printf(b, "\\%c", *v);
        else if (*v == '\n')
            sl_buf_puts(b, "\\n");
        else
            sl_buf_append(b, v, 1);
    }
    sl_buf_puts(b, "\"");
}

typedef enum {
    B_ACTIVE, B_UP, B_DRAINING, B_CONNECTS, B_FAILURES, B_HANDSHAKES, B_HS_FAILURES, B__COUNT
} bfield_t;

/*
 * `up` is the health verdict alone and a drain through the API is its own
 * gauge, as Prometheus practice has it (one meaning per series): an alert
 * on `up == 0` must not fire for a planned drain, and a backend both down
 * and drained shows both. "May take new connections" is
 * `up == 1 unless draining == 1`. `up` once claimed that meaning in its
 * HELP and stayed 1 while the backend was drained.
 */

static const struct {
    const char *name;
    const char *type;
    const char *help;
} bfields[B__COUNT] = {
    [B_ACTIVE] = {"pool_backend_active_connections", "gauge",
                  "Connections open to the backend, all workers"},
    [B_UP] = {"pool_backend_up", "gauge",
              "1 when the backend is healthy (active checks, passive ejection); a drained "
              "one stays 1, see sluice_pool_backend_draining"},
    [B_DRAINING] = {"pool_backend_draining", "gauge",
                    "1 while the backend is drained through the admin API: no new connections, "
                    "its WebSockets closed at the drain pace"},
    [B_CONNECTS] = {"pool_backend_connects_total", "counter", "Connects made to the backend"},
    [B_FAILURES] = {"pool_backend_connect_failures_total", "counter",
                    "Connects to the backend that failed or timed out"},
    [B_HANDSHAKES] = {"pool_backend_handshakes_total", "counter",
                      "WebSocket handshakes the backend completed"},
    [B_HS_FAILURES] = {"pool_backend_handshake_failures_total", "counter",
                       "Connect failures and refused or botched upgrades at the backend"},
};

static uint64_t bvalue(const sl_backend_shared_t *st, bfield_t f)
{
    switch (f) {
    case B_ACTIVE: return atomic_load_explicit(&st->active, memory_order_relaxed);
    case B_UP: return atomic_load_explicit(&st->up, memory_order_relaxed) != 0;
    case B_DRAINING: return atomic_load_explicit(&st->admin_drain, memory_order_relaxed) != 0;
    case B_CONNECTS: return atomic_load_explicit(&st->connects, memory_order_relaxed);
    case B_FAILURES: return atomic_load_explicit(&st->connect_failures, memory_order_relaxed);
    case B_HANDSHAKES: return atomic_load_explicit(&st->handshakes, memory_order_relaxed);
    case B_HS_FAILURES:
        return atomic_load_explicit(&st->handshake_failures, memory_order_relaxed);
    case B__COUNT: break;
    }
    return 0;
}

static void backend_families(sl_buf_t *b, const sl_runtime_t *rt)
{
    for (int f = 0; f < B__COUNT; f++) {
        family(b, bfields[f].name, bfields[f].type, bfields[f].help);
        for (size_t p = 0; p < rt->cfg->n_pools; p++) {
            const sl_pool_rt_t *pool = &rt->pools[p];
            for (size_t i = 0; i < pool->n_backends; i++) {
                sl_buf_puts(b, PREFIX);
                sl_buf_puts(b, bfields[f].name);
                sl_buf_puts(b, "{");
                sl__admin_label(b, "pool", pool->cfg->name);
                sl_buf_puts(b, ",");
                sl__admin_label(b, "backend", pool->backends[i].name);
                sl_buf_printf(b, "} %llu\n",
                              (unsigned long long)bvalue(pool->backends[i].state, (bfield_t)f));
            }
        }
    }
}

void sl__admin_metrics(sl_admin_req_t *req, sl_admin_resp_t *resp)
{
    sl_gateway_t *gw = req->gw;
    sl_buf_t *b = &resp->body;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";

    uint64_t ctr[SL_CTR__COUNT];
    sl__admin_sum_counters(gw, ctr);
    for (size_t i = 0; i < SL_CTR__COUNT; i++) {
        const sl_counter_info_t *ci = &sl_counter_info[i];
        family(b, ci->name, ci->gauge ? "gauge" : "counter", ci->help);
        sl_buf_printf(b, PREFIX "%s %llu\n", ci->name, (unsigned long long)ctr[i]);
    }

    sl_runtime_t *rt = sl_gateway_runtime(gw);
    backend_families(b, rt);
    family(b, "config_generation", "gauge", "Generation of the configuration in use");
    sl_buf_printf(b, PREFIX "config_generation %llu\n", (unsigned long long)rt->generation);
    sl_runtime_unref(rt);
    family(b, "config_generations_held", "gauge",
           "Configurations in memory: the one in use, the first (its listeners), and older "
           "ones connections still hold");
    sl_buf_printf(b, PREFIX "config_generations_held %ld\n", sl_runtimes_held());

    family(b, "uptime_seconds", "gauge", "Seconds since the gateway started");
    sl_buf_printf(b, PREFIX "uptime_seconds %.3f\n", (double)(req->now - gw->started) / 1000.0);
    family(b, "workers", "gauge", "Worker threads");
    sl_buf_printf(b, PREFIX "workers %zu\n", gw->n_workers);
    family(b, "draining", "gauge", "1 while the gateway shuts down (drains)");
    sl_buf_printf(b, PREFIX "draining %d\n", atomic_load(&gw->draining) ? 1 : 0);
    sl__admin_policy_metrics(gw, b);
    family(b, "build_info", "gauge", "Always 1; the version is a label");
    sl_buf_puts(b, PREFIX "build_info{");
    sl__admin_label(b, "version", SLUICE_VERSION);
    sl_buf_puts(b, "} 1\n");
}
