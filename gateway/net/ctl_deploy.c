/*
 * ctl_deploy.c: blue-green cutovers, driven on the control thread.
 *
 * The cutover machine (policy/cutover.c) decides; this file feeds it what
 * the gateway sees every tick — connections still open on the old pool, the
 * new pool's admission rate (slow start included), its health and handshake
 * failures — and carries out its actions: publish the weights new
 * connections are picked by, hand drain credit to the workers (who pick the
 * sessions at random), pause itself when the new pool is in trouble, and
 * finally make the new pool the service's active pool.
 *
 * Drain credit is split over the workers without rounding up, so the pace
 * the machine set is never exceeded; a worker that has no session of the old
 * pool left simply drains fewer, and the machine sees it in the next count.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/log.h"
#include "sluice/wsframe.h"
#include "control.h"
#include "ctl.h"

#define DEPLOY_TICK_MS 20

/*
 * The drain may use this share of the new pool's admission rate. The rest is
 * headroom for the clients that arrive anyway (new users, ordinary
 * reconnects): draining at the full rate would queue them behind the herd,
 * and leaves no slack for the time between a token and the backend's accept.
 */
#define DRAIN_SHARE 0.9

static void publish(sl_ctl_t *ctl, size_t svc)
{
    sl_ctl_service_t *cs = &ctl->services[svc];
    sl_service_rt_t *sr = &ctl->rt->services[svc];
    sl_msec_t now = uv_now(ctl->gw->loop);
    if (cs->deploying) {
        double w = sl_cutover_weight_to(&cs->cut, now);
        atomic_store(&sr->weight_to_ppm, (uint32_t)(w * 1e6));
        atomic_store(&sr->to, (long)cs->cut.to);
        atomic_store(&sr->from, (long)cs->cut.from);
    } else {
        atomic_store(&sr->from, -1L);
        atomic_store(&sr->to, -1L);
    }
    atomic_store(&sr->active, (long)cs->active);
}

/* The queue a new client of `pool` waits in (pool's own, else the service's). */
sl_admission_t *sl_ctl_queue_for(sl_ctl_t *ctl, size_t svc, size_t pool)
{
    return ctl->pools[pool].adm ? ctl->pools[pool].adm : ctl->services[svc].adm;
}

static uint64_t pool_failures(sl_ctl_t *ctl, size_t pool)
{
    uint64_t n = 0;
    const sl_pool_rt_t *p = &ctl->rt->pools[pool];
    for (size_t i = 0; i < p->n_backends; i++)
        n += atomic_load(&p->backends[i].state->handshake_failures);
    return n;
}

static void send_drain(sl_ctl_t *ctl, size_t svc, uint64_t count)
{
    sl_ctl_service_t *cs = &ctl->services[svc];
    sl_ws_count_t *wc = sl_runtime_ws(ctl->rt, (long)svc, (long)cs->cut.from);
    sl_wmsg_t what = {
        .type = SL_WMSG_DRAIN,
        .ws = wc,
        .epoch = sl_ws_drain_epoch(atomic_load(&wc->cutover_drains)),
        .close_code = cs->close_code,
    };
    snprintf(what.reason, sizeof what.reason, "%s", cs->reason);
    sl_control_post_drain(ctl->gw, &what, count, &cs->drain_rotor);
}

static void step(sl_ctl_t *ctl, size_t svc, sl_msec_t now)
{
    sl_ctl_service_t *cs = &ctl->services[svc];
    sl_ws_count_t *wc = sl_runtime_ws(ctl->rt, (long)svc, (long)cs->cut.from);
    sl_admission_t *q = sl_ctl_queue_for(ctl, svc, cs->cut.to);
    sl_cutover_input_t in = {
        .from_open = atomic_load(&wc->open),
        .from_draining = atomic_load(&wc->draining),
        .to_rate = q ? DRAIN_SHARE * sl_bucket_current_rate(sl_admission_bucket(q), now)
                     : SL_RATE_UNLIMITED,
        .to_healthy = sl_ctl_pool_takes_connections(ctl, cs->cut.to),
        .to_failures = pool_failures(ctl, cs->cut.to),
    };
    if (in.from_draining > in.from_open)
        in.from_draining = in.from_open;
    sl_cutover_actions_t acts = {0};
    sl_cutover_phase_t phase = sl_cutover_step(&cs->cut, now, &in, &acts);
    /* Paused or over: credit still on its way to the workers is void, so
       the drain stops now, not when the last message is read. */
    bool open = phase == SL_CUTOVER_DRAIN && !cs->cut.paused;
    uint64_t stamped = cs->drain_open && !open ? sl_ws_count_stop_drains(wc)
                                               : atomic_load(&wc->cutover_drains);
    cs->drain_open = open;
    /* Connections really told to close (the machine counts the credit it
       hands out, some of which finds no connection left on a worker). */
    cs->drained = sl_ws_drain_count(stamped) - cs->drained_base;
    const char *name = ctl->rt->cfg->services[svc].name;
    for (size_t i = 0; i < acts.n; i++) {
        const sl_cutover_action_t *a = &acts.a[i];
        switch (a->kind) {
        case SL_CUTOVER_ACT_DRAIN:
            send_drain(ctl, svc, a->count);
            break;
        case SL_CUTOVER_ACT_DRAIN_START:
            sl_log_info("deploy %s: all new connections go to %s; draining %llu on %s", name,
                        ctl->rt->cfg->pools[cs->cut.to].name, (unsigned long long)in.from_open,
                        ctl->rt->cfg->pools[cs->cut.from].name);
            break;
        case SL_CUTOVER_ACT_PAUSED:
            sl_log_warn("deploy %s: paused itself: %s", name, sl_cutover_why_name(a->why));
            break;
        case SL_CUTOVER_ACT_DONE:
            cs->active = cs->cut.to;
            cs->active_overridden = true;
            sl_log_info("deploy %s: done; %s is active", name, ctl->rt->cfg->pools[cs->active].name);
            int saved = sl_state_save(ctl);
            if (saved != 0)
                sl_log_error("deploy %s: the state file %s cannot keep it (%s): %s is active "
                             "until the next restart, then the config's pool again", name,
                             ctl->rt->cfg->admin.state_file, strerror(-saved),
                             ctl->rt->cfg->pools[cs->active].name);
            break;
        }
    }
    bool was = cs->deploying;
    if (phase == SL_CUTOVER_DONE || phase == SL_CUTOVER_ABORTED)
        cs->deploying = false;
    publish(ctl, svc);
    if (was != cs->deploying)
        sl_ctl_update_holds(ctl);
}

/* Hand drain credit for one backend's connections to the workers, split without rounding up. */
static bool step_backend_drain(sl_ctl_t *ctl, sl_backend_drain_t *d, sl_msec_t now)
{
    if (atomic_load(&d->state->active) == 0) {
        d->active = false;
        sl_log_info("backend drain: done (no connections left)");
        return false;
    }
    d->credit = SL_MIN(d->credit + d->rate * (double)(now - d->last) / 1000.0, d->rate + 1);
    d->last = now;
    uint64_t count = (uint64_t)d->credit;
    if (count == 0)
        return true;
    d->credit -= (double)count;
    sl_wmsg_t what = {
        .type = SL_WMSG_DRAIN,
        .backend = d->state,
        .close_code = d->close_code,
    };
    snprintf(what.reason, sizeof what.reason, "%s", d->reason);
    sl_control_post_drain(ctl->gw, &what, count, &d->rotor);
    return true;
}

static void on_deploy_tick(uv_timer_t *t)
{
    sl_ctl_t *ctl = t->data;
    sl_msec_t now = uv_now(ctl->gw->loop);
    bool any = false;
    for (size_t i = 0; i < SL_MAX_BACKEND_DRAINS; i++)
        if (ctl->drains[i].active)
            any = step_backend_drain(ctl, &ctl->drains[i], now) || any;
    for (size_t i = 0; i < ctl->rt->cfg->n_services; i++) {
        if (ctl->services[i].deploying) {
            step(ctl, i, now);
            any = any || ctl->services[i].deploying;
        }
    }
    if (!any)
        uv_timer_stop(t);
}

static long pool_of(sl_ctl_t *ctl, size_t svc, const char *name)
{
    const sl_cfg_service_t *s = &ctl->rt->cfg->services[svc];
    for (size_t i = 0; i < s->n_pools; i++)
        if (strcmp(ctl->rt->cfg->pools[s->pools[i]].name, name) == 0)
            return (long)s->pools[i];
    return -1;
}

int sl_ctl_deploy_start(sl_ctl_t *ctl, size_t svc, const sl_deploy_params_t *p, char *err,
                        size_t errlen)
{
    sl_ctl_service_t *cs = &ctl->services[svc];
    if (cs->deploying) {
        snprintf(err, errlen, "a deploy of this service is in progress (one at a time)");
        return SL_EEXIST;
    }
    long to = pool_of(ctl, svc, p->to);
    long from = p->from ? pool_of(ctl, svc, p->from) : (long)cs->active;
    if (to < 0 || from < 0) {
        snprintf(err, errlen, "pool \"%s\" is not one of the service's pools",
                 to < 0 ? p->to : p->from);
        return SL_ENOENT;
    }
    if (to == from) {
        snprintf(err, errlen, "from and to are the same pool");
        return SL_EINVAL;
    }
    /* The old pool's weight is where new connections go until the ramp has
       moved them: from a pool that is not the active one, a deploy would
       first send every new connection there (a stale or half-built pool,
       most often a typo or an out-of-date view of which pool is live). */
    if ((size_t)from != cs->active) {
        snprintf(err, errlen, "from: %s is not the service's active pool (%s is)",
                 ctl->rt->cfg->pools[from].name, ctl->rt->cfg->pools[cs->active].name);
        return SL_ESTATE;
    }
    if (!sl_ws_close_code_valid(p->close_code)) {
        snprintf(err, errlen, "close code %u cannot be sent", p->close_code);
        return SL_EINVAL;
    }
    sl_msec_t now = uv_now(ctl->gw->loop);
    sl_cutover_cfg_t cfg = {
        .ramp = p->ramp,
        .drain_rate = p->drain_rate > 0 ? p->drain_rate : SL_RATE_UNLIMITED,
        .drain_window = p->drain_window,
        .pause_after_failures = p->pause_after_failures,
    };
    memset(&cs->cut, 0, sizeof cs->cut);
    if (sl_cutover_start(&cs->cut, &cfg, (size_t)from, (size_t)to, now,
                         pool_failures(ctl, (size_t)to)) != 0) {
        snprintf(err, errlen, "bad deploy parameters");
        return SL_EINVAL;
    }
    cs->deploying = true;
    cs->drained_base =
        sl_ws_drain_count(atomic_load(&sl_runtime_ws(ctl->rt, (long)svc, from)->cutover_drains));
    cs->drained_earlier += cs->drained;
    cs->drained = 0;
    cs->drain_open = false;
    cs->deploy_dropped = false;
    cs->close_code = p->close_code;
    snprintf(cs->reason, sizeof cs->reason, "%s", p->reason);
    /* The target pool ramps its admission rate from the floor. */
    sl_ctl_ramp_pool(ctl, (size_t)to, now);
    sl_log_info("deploy %s: %s -> %s (ramp %llu ms, drain %s)", ctl->rt->cfg->services[svc].name,
                ctl->rt->cfg->pools[from].name, ctl->rt->cfg->pools[to].name,
                (unsigned long long)p->ramp, p->drain_rate > 0 ? "paced" : "by admission rate");
    step(ctl, svc, now);
    sl_ctl_update_holds(ctl);
    if (!uv_is_active((uv_handle_t *)&ctl->deploy_timer))
        uv_timer_start(&ctl->deploy_timer, on_deploy_tick, DEPLOY_TICK_MS, DEPLOY_TICK_MS);
    return 0;
}

static int control(sl_ctl_t *ctl, size_t svc, int (*fn)(sl_cutover_t *, sl_msec_t))
{
    sl_ctl_service_t *cs = &ctl->services[svc];
    if (!cs->deploying)
        return SL_ENOENT;
    int rc = fn(&cs->cut, uv_now(ctl->gw->loop));
    if (rc != 0)
        return SL_ESTATE;
    step(ctl, svc, uv_now(ctl->gw->loop));
    return 0;
}

int sl_ctl_deploy_pause(sl_ctl_t *ctl, size_t svc)
{
    return control(ctl, svc, sl_cutover_pause);
}

int sl_ctl_deploy_resume(sl_ctl_t *ctl, size_t svc)
{
    return control(ctl, svc, sl_cutover_resume);
}

int sl_ctl_deploy_abort(sl_ctl_t *ctl, size_t svc)
{
    sl_ctl_service_t *cs = &ctl->services[svc];
    if (!cs->deploying)
        return SL_ENOENT;
    /* New connections go back to the pool the deploy left, even when a
       reload during the deploy made another active (its YAML edited for the
       deploy's end): an abort is the API's word, which stands over the YAML
       and is kept like a finished deploy's. Set before the step publishes. */
    size_t was = cs->active;
    bool was_overridden = cs->active_overridden;
    if (was != cs->cut.from) {
        cs->active = cs->cut.from;
        cs->active_overridden = true;
    }
    int rc = control(ctl, svc, sl_cutover_abort);
    if (rc != 0) {
        cs->active = was;
        cs->active_overridden = was_overridden;
        return rc;
    }
    const char *name = ctl->rt->cfg->services[svc].name;
    const char *back = ctl->rt->cfg->pools[cs->active].name;
    sl_log_warn("deploy %s: aborted; new connections go back to %s", name, back);
    int saved = was != cs->active ? sl_state_save(ctl) : 0;
    if (saved != 0)
        sl_log_error("deploy %s: the state file %s cannot keep the abort (%s): %s is active "
                     "until the next restart, then the config's pool again", name,
                     ctl->rt->cfg->admin.state_file, strerror(-saved), back);
    return 0;
}

int sl_ctl_deploy_status(sl_ctl_t *ctl, size_t svc, sl_deploy_status_t *out)
{
    sl_ctl_service_t *cs = &ctl->services[svc];
    memset(out, 0, sizeof *out);
    if (cs->cut.phase == SL_CUTOVER_IDLE)
        return SL_ENOENT;
    sl_cutover_progress(&cs->cut, uv_now(ctl->gw->loop), &out->progress);
    out->progress.drained = cs->drained;
    out->drained_total = cs->drained_earlier + cs->drained;
    out->from = ctl->rt->cfg->pools[cs->cut.from].name;
    out->to = ctl->rt->cfg->pools[cs->cut.to].name;
    out->active = ctl->rt->cfg->pools[cs->active].name;
    out->in_progress = cs->deploying;
    out->close_code = cs->close_code;
    out->reason = cs->reason;
    return 0;
}

int sl_ctl_backend_drain(sl_ctl_t *ctl, size_t pool, size_t backend, bool drain)
{
    if (pool >= ctl->rt->cfg->n_pools || backend >= ctl->rt->pools[pool].n_backends)
        return SL_ENOENT;
    sl_backend_shared_t *st = ctl->rt->pools[pool].backends[backend].state;
    const char *name = ctl->rt->pools[pool].backends[backend].name;
    sl_backend_drain_t *slot = NULL;
    for (size_t i = 0; i < SL_MAX_BACKEND_DRAINS; i++) {
        if (ctl->drains[i].active && ctl->drains[i].state == st)
            slot = &ctl->drains[i];
        else if (!ctl->drains[i].active && slot == NULL)
            slot = &ctl->drains[i];
    }
    if (!drain) {
        atomic_store(&st->admin_drain, 0);
        if (slot && slot->active && slot->state == st)
            slot->active = false;
        sl_log_info("backend %s: taking new connections again", name);
        sl_ctl_update_holds(ctl);   /* a queue held for want of a backend may go on */
        return 0;
    }
    if (slot == NULL)
        return SL_EFULL;
    atomic_store(&st->admin_drain, 1);
    sl_ctl_update_holds(ctl);       /* the pool's last one: its queue holds */
    if (slot->active && slot->state == st)
        return 0;
    /* Pace and close code: the drain settings of the first service using the pool. */
    const sl_config_t *cfg = ctl->rt->cfg;
    const sl_cfg_drain_t *dc = &cfg->services[0].drain;
    for (size_t s = 0; s < cfg->n_services; s++) {
        if (sl_config_service_uses(&cfg->services[s], pool)) {
            dc = &cfg->services[s].drain;
            break;
        }
    }
    *slot = (sl_backend_drain_t){
        .state = st,
        .pool = pool,
        .rate = dc->rate,
        .credit = 1,
        .last = uv_now(ctl->gw->loop),
        .close_code = dc->close_code,
        .reason = dc->reason ? dc->reason : "",
        .active = true,
    };
    sl_log_info("backend %s: draining at %.0f/s (close %u)", name, dc->rate, dc->close_code);
    if (!uv_is_active((uv_handle_t *)&ctl->deploy_timer))
        uv_timer_start(&ctl->deploy_timer, on_deploy_tick, DEPLOY_TICK_MS, DEPLOY_TICK_MS);
    return 0;
}

size_t sl_ctl_pick_pool(sl_ctl_t *ctl, size_t svc)
{
    sl_ctl_service_t *cs = &ctl->services[svc];
    if (!cs->deploying)
        return cs->active;
    return sl_cutover_pick_pool(&cs->cut, uv_now(ctl->gw->loop), &ctl->rng);
}

void sl_ctl_publish_all(sl_ctl_t *ctl)
{
    for (size_t i = 0; i < ctl->rt->cfg->n_services; i++)
        publish(ctl, i);
    bool any = false;
    for (size_t i = 0; i < ctl->rt->cfg->n_services; i++)
        any = any || ctl->services[i].deploying;
    if (any && !uv_is_active((uv_handle_t *)&ctl->deploy_timer))
        uv_timer_start(&ctl->deploy_timer, on_deploy_tick, DEPLOY_TICK_MS, DEPLOY_TICK_MS);
}

void sl_ctl_deploy_setup(sl_ctl_t *ctl)
{
    uv_timer_init(ctl->gw->loop, &ctl->deploy_timer);
    ctl->deploy_timer.data = ctl;
    for (size_t i = 0; i < ctl->rt->cfg->n_services; i++) {
        ctl->services[i].active = ctl->rt->cfg->services[i].active;
        publish(ctl, i);
    }
}
