/*
 * reload.c: a new config without dropping a connection (SIGHUP, or
 * POST /api/v1/reload).
 *
 * The new file is parsed, its backends resolved and its certificates read
 * first; anything wrong and the old config keeps running, with every error
 * reported (certificates are put in force last of all). Then a new runtime is
 * published to the workers — new connections use it, existing ones keep the
 * runtime they started with (it is reference counted) — and a new policy
 * state is built, carrying over what must not be lost: each backend's health
 * (matched by pool name and address), each admission queue with its waiting
 * clients in order (matched by service or pool name; the new limits apply to
 * them, like a live change, unless the API set their limits), deploys (in
 * progress, or the last one's outcome), backends being drained through the
 * API, and what the API changed (a cutover's new active pool, admission
 * limits), which stands over the YAML. What the API set for a queue, pool or
 * service the new config does not have is kept (state.c) and is in force
 * again when a later reload brings it back. The log's level and format
 * apply at once.
 *
 * Listeners, the worker count, the access log and the admin listener (its
 * address, token file and state file) are fixed at start: changing them asks
 * for a restart, and the reload is refused saying so.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/log.h"
#include "../admin/admin.h"
#include "control.h"
#include "ctl.h"
#include "tls.h"

static void diag_line(sl_diag_t *d, const char *file, const char *what)
{
    char line[512];
    snprintf(line, sizeof line, "%s: %s", file, what);
    sl_diag_add(d, line);
}

static bool same_str(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* A refused change at its place in the new file: what it was, what it is now. */
static void fixed_refusal(sl_diag_t *d, const sl_config_t *b, sl_cfg_pos_t pos, const char *key,
                          const char *was, const char *now)
{
    char line[768];
    snprintf(line, sizeof line, "%s:%u:%u: %s: cannot change on reload (expected %s as at "
             "start, got %s); restart sluice", b->file, pos.line ? pos.line : 1,
             pos.col ? pos.col : 1, key, was, now);
    sl_diag_add(d, line);
}

static const char *on_off(bool v)
{
    return v ? "on" : "off";
}

static const char *proxy_name(sl_proxy_protocol_t p)
{
    static const char *const names[] = {"off", "v1", "v2", "any"};
    return (size_t)p < SL_ARRAY_SIZE(names) ? names[p] : "?";
}

/* A refused change to one admin key, at the key (or the admin mapping) in the new file. */
static void admin_refusal(sl_diag_t *d, const sl_config_t *b, sl_cfg_pos_t pos, const char *key,
                          const char *why)
{
    char line[1024];
    snprintf(line, sizeof line, "%s:%u:%u: admin.%s: %s; restart sluice", b->file, pos.line,
             pos.col, key, why);
    sl_diag_add(d, line);
}

/*
 * The admin listener is set up once, at start: its address, its bearer
 * token (token_file is read then, and only its digest is kept) and its
 * state file (read then; every later API change is written there). A reload
 * that changed token_file would answer "reloaded" and leave the API exactly
 * as open as before, and one that changed state_file would write this run's
 * state into a file whose own content was never applied: both are refused.
 */
static bool same_admin(const sl_config_t *a, const sl_config_t *b, sl_diag_t *d)
{
    if (a->admin.enabled != b->admin.enabled ||
        (a->admin.enabled && strcmp(a->admin.address.text, b->admin.address.text) != 0)) {
        char was[300], now[300];
        snprintf(was, sizeof was, a->admin.enabled ? "\"%s\"" : "%s",
                 a->admin.enabled ? a->admin.address.text : "no admin listener");
        snprintf(now, sizeof now, b->admin.enabled ? "\"%s\"" : "%s",
                 b->admin.enabled ? b->admin.address.text : "none");
        fixed_refusal(d, b, b->admin.enabled ? b->admin.address.pos : (sl_cfg_pos_t){0},
                      "admin.address", was, now);
        return false;
    }
    bool same = true;
    if (!same_str(a->admin.token_file, b->admin.token_file)) {
        admin_refusal(d, b, b->admin.token_file_pos, "token_file",
                      "the admin listener cannot change on reload (its bearer token is read "
                      "at start)");
        same = false;
    }
    /* The same file with another token in it (a rotation, say) is the same
       trap: "reloaded", and the old token, perhaps the leaked one, still
       opens the API. */
    char why[400], msg[512];
    int tok = same && b->admin.token_file != NULL
                  ? sl_admin_token_changed(b->admin.token_file, why, sizeof why) : 0;
    if (tok != 0) {
        if (tok > 0)
            snprintf(msg, sizeof msg, "the token in the file changed, and the token in force "
                     "is the one read at start (it cannot change on reload)");
        else
            snprintf(msg, sizeof msg, "%s (the token in force, read at start, is unchanged)",
                     why);
        admin_refusal(d, b, b->admin.token_file_pos, "token_file", msg);
        same = false;
    }
    if (!same_str(a->admin.state_file, b->admin.state_file)) {
        admin_refusal(d, b, b->admin.state_file_pos, "state_file",
                      "the state file cannot change on reload (it is read at start)");
        same = false;
    }
    return same;
}

/* One listener against the one at the same place at start: the first field that differs. */
static bool same_listener(const sl_cfg_listener_t *x, const sl_cfg_listener_t *y, size_t i,
                          const sl_config_t *b, sl_diag_t *d)
{
    char key[64], was[300], now[300];
    const char *what = NULL;
    sl_cfg_pos_t pos = y->pos;
    if (strcmp(x->address.text, y->address.text) != 0) {
        what = "address";
        pos = y->address.pos;
        snprintf(was, sizeof was, "\"%s\"", x->address.text);
        snprintf(now, sizeof now, "\"%s\"", y->address.text);
    } else if (x->proxy_protocol != y->proxy_protocol) {
        what = "proxy_protocol";
        pos = sl_config_where(b, &y->proxy_protocol, pos);
        snprintf(was, sizeof was, "%s", proxy_name(x->proxy_protocol));
        snprintf(now, sizeof now, "%s", proxy_name(y->proxy_protocol));
    } else if (x->backlog != y->backlog) {
        what = "backlog";
        pos = sl_config_where(b, &y->backlog, pos);
        snprintf(was, sizeof was, "%u", x->backlog);
        snprintf(now, sizeof now, "%u", y->backlog);
    } else if (x->defer_accept != y->defer_accept) {
        what = "defer_accept";
        pos = sl_config_where(b, &y->defer_accept, pos);
        snprintf(was, sizeof was, "%llu ms", (unsigned long long)x->defer_accept);
        snprintf(now, sizeof now, "%llu ms", (unsigned long long)y->defer_accept);
    } else if (x->delayed_ack != y->delayed_ack) {
        what = "delayed_ack";
        pos = sl_config_where(b, &y->delayed_ack, pos);
        snprintf(was, sizeof was, "%s", on_off(x->delayed_ack));
        snprintf(now, sizeof now, "%s", on_off(y->delayed_ack));
    } else if (x->tls.enabled != y->tls.enabled) {
        what = "tls";
        pos = sl_config_where(b, &y->tls.enabled, pos);   /* a mapping: where its presence was noted */
        snprintf(was, sizeof was, "tls %s", on_off(x->tls.enabled));
        snprintf(now, sizeof now, "tls %s", on_off(y->tls.enabled));
    }
    if (what == NULL)
        return true;
    snprintf(key, sizeof key, "listeners[%zu].%s", i, what);
    fixed_refusal(d, b, pos, key, was, now);
    return false;
}

static size_t workers_of(const sl_config_t *c)
{
    size_t n = c->workers ? c->workers : (size_t)uv_available_parallelism();
    return SL_MIN(SL_MAX(n, (size_t)1), (size_t)SL_MAX_WORKERS);   /* as main.c starts them */
}

/*
 * What cannot change without a restart: each refusal names the key in the
 * new file and what it was at start (a bare "listeners and workers cannot
 * change" left the operator to diff the files).
 */
static bool same_fixed_parts(const sl_config_t *a, const sl_config_t *b, sl_diag_t *d)
{
    bool same = true;
    char was[64], now[64];
    if (a->n_listeners != b->n_listeners) {
        snprintf(was, sizeof was, "%zu listeners", a->n_listeners);
        snprintf(now, sizeof now, "%zu", b->n_listeners);
        fixed_refusal(d, b, b->n_listeners ? b->listeners[0].pos : (sl_cfg_pos_t){0},
                      "listeners", was, now);
        same = false;
    }
    for (size_t i = 0; i < a->n_listeners && i < b->n_listeners; i++)
        same = same_listener(&a->listeners[i], &b->listeners[i], i, b, d) && same;
    /* By the threads they make: "auto" and its count are the same workers. */
    if (workers_of(a) != workers_of(b)) {
        snprintf(was, sizeof was, a->workers ? "%u" : "auto", a->workers);
        snprintf(now, sizeof now, b->workers ? "%u" : "auto", b->workers);
        fixed_refusal(d, b, b->workers_pos, "workers", was, now);
        same = false;
    }
    const sl_cfg_access_log_t *x = &a->access_log, *y = &b->access_log;
    bool log_same = x->enabled == y->enabled && x->format == y->format &&
                    (x->path == NULL) == (y->path == NULL) &&
                    (x->path == NULL || strcmp(x->path, y->path) == 0);
    if (!log_same) {
        char lw[300], ln[300];
        snprintf(lw, sizeof lw, "%s%s", x->enabled ? "path " : "off",
                 x->enabled ? (x->path ? x->path : "stdout") : "");
        snprintf(ln, sizeof ln, "%s%s", y->enabled ? "path " : "off",
                 y->enabled ? (y->path ? y->path : "stdout") : "");
        if (strcmp(lw, ln) == 0) {   /* the same file: the format changed */
            snprintf(lw, sizeof lw, "format %s", x->format == SL_LOG_JSON ? "json" : "text");
            snprintf(ln, sizeof ln, "format %s", y->format == SL_LOG_JSON ? "json" : "text");
        }
        fixed_refusal(d, b, y->pos, "access_log", lw, ln);
    }
    bool admin_same = same_admin(a, b, d);
    return same && admin_same && log_same;
}

static long find_backend(const sl_ctl_t *ctl, size_t *pool_out, const char *pool,
                         const char *addr)
{
    long p = sl_config_pool_index(ctl->rt->cfg, pool);
    if (p < 0)
        return -1;
    const sl_pool_rt_t *pr = &ctl->rt->pools[p];
    for (size_t i = 0; i < pr->n_backends; i++) {
        if (strcmp(pr->backends[i].cfg->address.text, addr) == 0) {
            *pool_out = (size_t)p;
            return (long)i;
        }
    }
    return -1;
}

/* Index of pool `name` among the service's pools in ctl's config, or -1. */
static long service_pool(const sl_ctl_t *ctl, size_t svc, const char *name)
{
    const sl_cfg_service_t *s = &ctl->rt->cfg->services[svc];
    for (size_t k = 0; k < s->n_pools; k++)
        if (strcmp(ctl->rt->cfg->pools[s->pools[k]].name, name) == 0)
            return (long)s->pools[k];
    return -1;
}

/*
 * An admission queue moves to the new config with its waiting clients. Its
 * limits become the new YAML's, unless the API set them: those stand over
 * the YAML at a reload as they do at a start (from the state file). Limits
 * that cannot be set again here are tried once more, and reported, by
 * sl_state_apply.
 */
static void take_queue(sl_ctl_t *ctl, long svc, long pool, sl_ctl_t *old, sl_admission_t **slot,
                       sl_admission_t **old_slot, bool overridden, bool *overridden_now)
{
    if (*slot == NULL || *old_slot == NULL)
        return;
    sl_admission_params_t keep;
    sl_admission_get_params(*old_slot, &keep);
    sl_ctl_admit_take_queue(ctl, slot, old, old_slot);
    if (!overridden)
        return;
    char err[200];
    if (sl_ctl_admission_set(ctl, (size_t)svc, pool, &keep, err, sizeof err) == 0)
        *overridden_now = true;
}

void sl_ctl_carry_over(sl_ctl_t *ctl, sl_ctl_t *old)
{
    const sl_config_t *cfg = ctl->rt->cfg, *ocfg = old->rt->cfg;
    /* Health: a backend that stays keeps its verdict and its rhythm; not the
       verdict of active checks its pool does not run any more (kept, a DOWN
       one stood for good: nothing was left to bring the backend up). */
    for (size_t p = 0; p < cfg->n_pools; p++) {
        for (size_t i = 0; i < ctl->pools[p].n_backends; i++) {
            sl_ctl_backend_t *b = &ctl->pools[p].backends[i];
            size_t op;
            long oi = find_backend(old, &op, cfg->pools[p].name, b->rt->cfg->address.text);
            if (oi < 0)
                continue;
            sl_health_cfg_t keep = b->health.cfg;
            b->health = old->pools[op].backends[oi].health;
            b->health.check_in_flight = false;
            if (sl_health_reconfigure(&b->health, &keep))
                sl_log_info("backend %s (pool %s): %s (its pool's active checks are off now)",
                            b->rt->name, cfg->pools[p].name,
                            sl_health_state_name(sl_health_state(&b->health)));
            atomic_store(&b->rt->state->up, sl_health_usable(&b->health) ? 1 : 0);
        }
    }
    /* Admission queues, with their waiting clients, by name. */
    for (size_t i = 0; i < cfg->n_services; i++) {
        const sl_cfg_service_t *s = &cfg->services[i];
        const sl_cfg_service_t *os = sl_config_service(ocfg, s->name);
        if (os == NULL)
            continue;
        size_t oi = (size_t)(os - ocfg->services);
        sl_ctl_service_t *ocs = &old->services[oi];
        take_queue(ctl, (long)i, -1, old, &ctl->services[i].adm, &ocs->adm,
                   ocs->admission_overridden, &ctl->services[i].admission_overridden);
        /* The API's word stands over the YAML: a finished cutover's pool stays active. */
        long active = service_pool(ctl, i, ocfg->pools[ocs->active].name);
        if (ocs->active_overridden && active >= 0) {
            ctl->services[i].active = (size_t)active;
            ctl->services[i].active_overridden = true;
        }
        /* A deploy in progress goes on; a finished or aborted one stays readable. */
        ctl->services[i].deploy_dropped = ocs->deploy_dropped;
        ctl->services[i].drained_earlier = ocs->drained_earlier;
        if (ocs->cut.phase != SL_CUTOVER_IDLE) {
            long from = service_pool(ctl, i, ocfg->pools[ocs->cut.from].name);
            long to = service_pool(ctl, i, ocfg->pools[ocs->cut.to].name);
            if (from < 0 || to < 0) {
                if (ocs->deploying)
                    sl_log_warn("reload: deploy of %s stopped: its pools are gone", s->name);
                /* As a pause or abort does: credit still on its way to the
                   workers must not close connections of a deploy now over
                   (the old pool's count outlives this config). */
                if (ocs->drain_open) {
                    sl_ws_count_stop_drains(sl_runtime_ws(old->rt, (long)oi, (long)ocs->cut.from));
                    ocs->drain_open = false;
                }
                ctl->services[i].deploy_dropped = true;   /* its status names pools gone */
                continue;
            }
            sl_ctl_service_t *cs = &ctl->services[i];
            cs->cut = ocs->cut;
            cs->cut.from = (size_t)from;
            cs->cut.to = (size_t)to;
            cs->deploying = ocs->deploying;
            cs->close_code = ocs->close_code;
            cs->drained_base = ocs->drained_base;   /* the counts are shared across configs */
            cs->drained = ocs->drained;
            cs->drain_open = ocs->drain_open;
            memcpy(cs->reason, ocs->reason, sizeof cs->reason);
        }
    }
    /* Backends drained through the API go on draining (the mark lives in
       their shared state, which survives; the pace is the new config's). */
    for (size_t p = 0; p < cfg->n_pools; p++)
        for (size_t i = 0; i < ctl->pools[p].n_backends; i++)
            if (atomic_load(&ctl->pools[p].backends[i].rt->state->admin_drain) &&
                sl_ctl_backend_drain(ctl, p, i, true) != 0)
                sl_log_warn("reload: backend %s: too many drains to go on with this one",
                            ctl->pools[p].backends[i].rt->name);
    for (size_t p = 0; p < cfg->n_pools; p++) {
        long op = sl_config_pool_index(ocfg, cfg->pools[p].name);
        long svc = sl_ctl_pool_service(ctl, p);
        if (op >= 0 && svc >= 0)
            take_queue(ctl, svc, (long)p, old, &ctl->pools[p].adm, &old->pools[op].adm,
                       old->pools[op].admission_overridden, &ctl->pools[p].admission_overridden);
    }
    /* What the API set that no queue carried (one this config gives back, or
       whose limits did not fit) from the words kept in state.c; publishes. */
    sl_state_apply(ctl);
    sl_ctl_update_holds(ctl);
}

int sl_control_reload(sl_gateway_t *gw, sl_diag_t *diag)
{
    sl_config_t *cfg = NULL;
    if (gw->ctl == NULL || atomic_load(&gw->draining)) {
        diag_line(diag, gw->config_path, "not reloading while shutting down");
        return SL_ESTATE;
    }
    if (sl_config_load(gw->config_path, &cfg, diag) != 0)
        return SL_EINVAL;
    if (sl_state_apply_overrides(cfg, diag) != 0) {
        sl_config_free(cfg);
        return SL_EINVAL;
    }
    /* Every reason in one answer: a key that needs a restart, a backend
       that does not resolve, a certificate (read here, not used). */
    bool fixed_same = same_fixed_parts(gw->rt->cfg, cfg, diag);
    sl_runtime_t *rt = sl_runtime_new(cfg, gw->rt, diag);
    if (!fixed_same || rt == NULL) {
        sl_tls_check(cfg, diag);
        if (rt)
            sl_runtime_unref(rt);   /* and cfg with it */
        else
            sl_config_free(cfg);
        return SL_EINVAL;
    }
    /* New certificates too, all or nothing: the last check, because loading
       them puts them in force. Before the backends were resolved, a reload
       refused for a name that did not resolve left the new certificates
       (and the pools' TLS settings) in force under the old config. */
    if (sl_tls_reload(rt->cfg, diag) != 0) {
        sl_runtime_unref(rt);
        return SL_EINVAL;
    }
    sl_ctl_t *ctl = sl_ctl_new(gw, rt);
    if (ctl == NULL) {
        sl_runtime_unref(rt);
        diag_line(diag, gw->config_path, "out of memory");
        return SL_ENOMEM;
    }
    sl_ctl_t *old = gw->ctl;
    sl_ctl_carry_over(ctl, old);
    old->admit_on_close = true;   /* waiters whose queue is gone now: let them through */
    gw->ctl = ctl;
    sl_ctl_close(old);

    uv_mutex_lock(&gw->rt_lock);
    sl_runtime_t *prev = gw->rt;
    gw->rt = rt;
    uv_mutex_unlock(&gw->rt_lock);
    for (size_t i = 0; i < gw->n_workers; i++) {
        sl_wmsg_t *m = calloc(1, sizeof *m);
        if (m) {
            m->type = SL_WMSG_RUNTIME;
            sl_worker_post(&gw->workers[i], m);
        }
    }
    /* The log's level and format are atomics read by every thread: they
       apply at once, and this line is already written the new way. */
    sl_log_setup(rt->cfg->log.level, rt->cfg->log.format);
    sl_log_info("reload: %s applied (generation %llu)", gw->config_path,
                (unsigned long long)rt->generation);
    sl_runtime_unref(prev);
    return 0;
}
