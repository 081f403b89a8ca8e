/*
 * ctl_admit.c: admission on the control thread.
 *
 * A worker that has a validated upgrade (or a request on a protected route)
 * asks "may this session go on?" with an SL_CMSG_ADMIT and keeps reading
 * its other connections; the answer comes back as SL_WMSG_ADMIT_RESULT when
 * a token is there, or when the client is turned away. Every question gets
 * exactly one answer, even when the worker cancels (its session went away),
 * so the worker can keep the session's memory until the answer arrives and
 * nothing ever points at freed memory across threads.
 *
 * Queues: each service with admission has one; a pool with its own rate has
 * its own, which the service's clients for that pool wait in instead. The
 * pool is chosen when the client arrives (see pick_pool) and the client waits
 * for that pool's tokens.
 *
 * A timer that fires more than STALL_SLACK_MS late means this thread (or the
 * whole machine) was stalled while clients waited: the late part is forfeited
 * (sl_admission_forfeit) rather than handed out at once, so the backend does
 * not get the stall's refill as a clump on top of the grants that were
 * already on their way. The slack is well above a loop's normal lateness and
 * well below what would show at a backend (at 300/s, 20 ms is 6 handshakes).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "sluice/log.h"
#include "control.h"
#include "ctl.h"

void sl_admission_params_from_config(const sl_cfg_admission_t *a, const sl_cfg_pool_t *pool,
                                     sl_admission_params_t *out)
{
    memset(out, 0, sizeof *out);
    out->bucket.rate = pool && pool->rate > 0 ? pool->rate : a->rate;
    out->bucket.burst = pool && pool->rate > 0 ? pool->burst : a->burst;
    out->bucket.slow_start = pool && pool->rate > 0 ? pool->slow_start : a->slow_start;
    out->bucket.slow_start_floor = a->slow_start_floor;
    out->queue_length = a->queue_length;
    out->max_wait = a->queue_max_wait;
    out->per_client = a->queue_per_client;
    out->per_client_rate = a->per_client_rate;
    out->per_client_burst = a->per_client_burst ? a->per_client_burst : 1;
    out->retry_after_min = a->retry_after_min;
    out->retry_after_max = a->retry_after_max;
}

static uint64_t seed(void)
{
    uint64_t s = 0;
    if (RAND_bytes((unsigned char *)&s, sizeof s) != 1)
        s = uv_hrtime();
    return s;
}

int sl_ctl_admit_setup(sl_ctl_t *ctl)
{
    const sl_config_t *cfg = ctl->rt->cfg;
    sl_msec_t now = uv_now(ctl->gw->loop);
    for (size_t i = 0; i < cfg->n_services; i++) {
        const sl_cfg_service_t *svc = &cfg->services[i];
        if (!svc->admission.enabled)
            continue;
        sl_admission_params_t p;
        sl_admission_params_from_config(&svc->admission, NULL, &p);
        ctl->services[i].adm = sl_admission_new(&p, seed(), now);
        if (ctl->services[i].adm == NULL)
            return SL_ENOMEM;
        for (size_t k = 0; k < svc->n_pools; k++) {
            size_t pi = svc->pools[k];
            const sl_cfg_pool_t *pool = &cfg->pools[pi];
            if (pool->rate <= 0 || ctl->pools[pi].adm)
                continue;
            sl_admission_params_from_config(&svc->admission, pool, &p);
            ctl->pools[pi].adm = sl_admission_new(&p, seed(), now);
            if (ctl->pools[pi].adm == NULL)
                return SL_ENOMEM;
        }
    }
    ctl->waiters_cap = 16384;   /* buckets; chains stay short at 50,000 waiters */
    ctl->waiters = calloc(ctl->waiters_cap, sizeof *ctl->waiters);
    return ctl->waiters ? 0 : SL_ENOMEM;
}

/* ---- waiters by id ---- */

/* A waiter as this file allocates it: what ctl.h declares, and the asking
   session's runtime (alive until the session has its answer), in whose
   terms the pool is answered. */
typedef struct adm_waiter {
    sl_waiter_t w;                   /* first: a waiter's pointer is this one's */
    const sl_runtime_t *rt;
} adm_waiter_t;

static long their_pool(const sl_ctl_t *ctl, const sl_runtime_t *theirs, long pool);

/*
 * The pool an admitted waiter goes to. A waiter of a pool's own queue waited
 * for that pool's tokens: the pool chosen on arrival. A waiter of the
 * service's queue goes where the service's new connections go now, when its
 * turn comes: one that arrived before a cutover started (or while its ramp
 * still favoured the old pool) is not sent to the pool being drained, only
 * to be closed with 1012 and come back again. A pick that would need another
 * queue's tokens (a pool with a rate of its own) keeps the arrival's choice.
 */
static long admitted_pool(sl_ctl_t *ctl, const adm_waiter_t *x)
{
    for (size_t i = 0; i < ctl->rt->cfg->n_services; i++) {
        if (ctl->services[i].adm != x->w.queue)
            continue;
        size_t p = sl_ctl_pick_pool(ctl, i);
        if (sl_ctl_queue_for(ctl, i, p) != x->w.queue)
            return x->w.pool;
        long theirs = their_pool(ctl, x->rt, (long)p);
        return theirs >= 0 ? theirs : x->w.pool;
    }
    return x->w.pool;
}

static size_t slot_of(const sl_ctl_t *ctl, uint64_t id)
{
    return (size_t)((id * 0x9e3779b97f4a7c15ULL) >> 20) & (ctl->waiters_cap - 1);
}

static void waiter_put(sl_ctl_t *ctl, sl_waiter_t *w)
{
    size_t i = slot_of(ctl, w->id);
    w->next_in_bucket = ctl->waiters[i];
    ctl->waiters[i] = w;
    ctl->n_waiters++;
}

static sl_waiter_t *waiter_take(sl_ctl_t *ctl, uint64_t id)
{
    for (sl_waiter_t **p = &ctl->waiters[slot_of(ctl, id)]; *p; p = &(*p)->next_in_bucket) {
        if ((*p)->id == id) {
            sl_waiter_t *w = *p;
            *p = w->next_in_bucket;
            ctl->n_waiters--;
            return w;
        }
    }
    return NULL;
}

/* Any waiter, taken out of the table and its queue; NULL when none is left.
   *bucket (0 at first) keeps the place between calls. */
static sl_waiter_t *waiter_take_any(sl_ctl_t *ctl, size_t *bucket)
{
    for (; ctl->waiters && *bucket < ctl->waiters_cap; (*bucket)++) {
        sl_waiter_t *w = ctl->waiters[*bucket];
        if (w == NULL)
            continue;
        ctl->waiters[*bucket] = w->next_in_bucket;
        ctl->n_waiters--;
        sl_admission_cancel(w->queue, w->handle);
        return w;
    }
    return NULL;
}

/* ---- answers ---- */

static void answer(sl_ctl_t *ctl, int worker, sl_session_t *s, long pool,
                   const sl_admission_event_t *ev)
{
    sl_control_admit_answer(ctl->gw, worker, s, pool, ev);
}

static void arm(sl_ctl_t *ctl);

/* A turned-away answer with a Retry-After at `frac` (0..1) of q's bounds. */
static void turn_away(sl_ctl_t *ctl, int worker, sl_session_t *session, long pool,
                      const sl_admission_t *q, double frac)
{
    sl_admission_params_t p;
    sl_admission_get_params(q, &p);
    sl_admission_event_t ev = {
        .status = SL_ADM_REJECTED,
        .http_status = 503,
        .retry_after_ms = p.retry_after_min +
                          (sl_msec_t)(frac * (double)(p.retry_after_max - p.retry_after_min)),
    };
    answer(ctl, worker, session, pool, &ev);
}

static void drain_events(sl_ctl_t *ctl, sl_admission_t *q, sl_msec_t now)
{
    sl_admission_event_t evs[64];
    size_t n;
    while ((n = sl_admission_tick(q, now, evs, SL_ARRAY_SIZE(evs))) > 0) {
        for (size_t i = 0; i < n; i++) {
            sl_waiter_t *w = evs[i].user_data;
            waiter_take(ctl, w->id);
            answer(ctl, w->worker, w->session,
                   evs[i].status == SL_ADM_ADMITTED ? admitted_pool(ctl, (adm_waiter_t *)w)
                                                    : w->pool, &evs[i]);
            free(w);
        }
    }
}

static void for_each_queue(sl_ctl_t *ctl, void (*fn)(sl_ctl_t *, sl_admission_t *, sl_msec_t),
                           sl_msec_t now)
{
    for (size_t i = 0; i < ctl->rt->cfg->n_services; i++)
        if (ctl->services[i].adm)
            fn(ctl, ctl->services[i].adm, now);
    for (size_t i = 0; i < ctl->rt->cfg->n_pools; i++)
        if (ctl->pools[i].adm)
            fn(ctl, ctl->pools[i].adm, now);
}

#define STALL_SLACK_MS 20

static void forfeit_stall(sl_ctl_t *ctl, sl_admission_t *q, sl_msec_t now)
{
    sl_msec_t ms = sl_admission_forfeit(q, ctl->adm_due + STALL_SLACK_MS, now);
    if (ms > 0)
        sl_log_debug("admission: timer %llu ms late; %llu ms of refill forfeited",
                     (unsigned long long)(now - ctl->adm_due), (unsigned long long)ms);
}

static void on_adm_timer(uv_timer_t *t)
{
    sl_ctl_t *ctl = t->data;
    sl_msec_t now = uv_now(ctl->gw->loop);
    if (now > ctl->adm_due + STALL_SLACK_MS)
        for_each_queue(ctl, forfeit_stall, now);
    for_each_queue(ctl, drain_events, now);
    arm(ctl);
}

static void arm(sl_ctl_t *ctl)
{
    if (ctl->closing)
        return;
    sl_msec_t now = uv_now(ctl->gw->loop);
    sl_msec_t next = SL_MSEC_NEVER;
    for (size_t i = 0; i < ctl->rt->cfg->n_services; i++)
        if (ctl->services[i].adm)
            next = SL_MIN(next, sl_admission_next_wakeup(ctl->services[i].adm, now));
    for (size_t i = 0; i < ctl->rt->cfg->n_pools; i++)
        if (ctl->pools[i].adm)
            next = SL_MIN(next, sl_admission_next_wakeup(ctl->pools[i].adm, now));
    if (next == SL_MSEC_NEVER) {
        uv_timer_stop(&ctl->adm_timer);
        return;
    }
    ctl->adm_due = SL_MAX(next, now);
    uv_timer_start(&ctl->adm_timer, on_adm_timer, ctl->adm_due - now, 0);
}

static long pick_pool(sl_ctl_t *ctl, long service)
{
    return (long)sl_ctl_pick_pool(ctl, (size_t)service);
}

static void admit_in(sl_ctl_t *ctl, const sl_cmsg_t *m, long pool, long answer_pool);

/* An index of `name` among `cfg`'s pools, or -1. */
static long pool_named(const sl_config_t *cfg, const char *name)
{
    return sl_config_pool_index(cfg, name);
}

/* Today's pool index in the terms of the asking session's runtime (-1: it
   has no pool of that name; the session keeps the pool it routed to). */
static long their_pool(const sl_ctl_t *ctl, const sl_runtime_t *theirs, long pool)
{
    if (theirs == ctl->rt || pool < 0)
        return pool;
    return pool_named(theirs->cfg, ctl->rt->cfg->pools[pool].name);
}

void sl_ctl_admit(sl_ctl_t *ctl, const sl_cmsg_t *m)
{
    const sl_config_t *cfg = ctl->rt->cfg;
    const sl_runtime_t *theirs = m->rt ? m->rt : ctl->rt;
    /* A session from before one reload or several (a kept-alive connection,
       a requeued upgrade): its service by name in today's config. Its
       runtime stays alive until it has its answer, so its names can be read. */
    long svc = -1;
    if (m->service >= 0 && (size_t)m->service < theirs->cfg->n_services) {
        const sl_cfg_service_t *now =
            theirs == ctl->rt ? &cfg->services[m->service]
                              : sl_config_service(cfg, theirs->cfg->services[m->service].name);
        svc = now ? (long)(now - cfg->services) : -1;
    }
    if (svc < 0 || ctl->services[svc].adm == NULL) {
        /* Admission is off for it now (or its service is gone): let it through. */
        sl_admission_event_t ok = {.status = SL_ADM_ADMITTED};
        answer(ctl, m->worker, m->session, svc >= 0 ? their_pool(ctl, theirs, pick_pool(ctl, svc))
                                                    : -1, &ok);
        return;
    }
    if (ctl->turning_away) {
        turn_away(ctl, m->worker, m->session, -1, ctl->services[svc].adm,
                  (double)sl_rng_below(&ctl->rng, 1000) / 1000.0);
        return;
    }
    sl_cmsg_t t = *m;
    t.service = svc;
    long pool = pick_pool(ctl, svc);
    admit_in(ctl, &t, pool, their_pool(ctl, theirs, pool));
}

/* Queue m for `pool` (today's index); answer with `answer_pool` (the session's terms). */
static void admit_in(sl_ctl_t *ctl, const sl_cmsg_t *m, long pool, long answer_pool)
{
    sl_admission_t *q = sl_ctl_queue_for(ctl, (size_t)m->service, (size_t)pool);
    adm_waiter_t *x = calloc(1, sizeof *x);
    if (x == NULL) {
        answer(ctl, m->worker, m->session, answer_pool, NULL);
        return;
    }
    x->rt = m->rt ? m->rt : ctl->rt;
    sl_waiter_t *w = &x->w;
    w->id = m->id;
    w->worker = m->worker;
    w->session = m->session;
    w->queue = q;
    w->pool = answer_pool;
    sl_client_key_t key;
    memset(&key, 0, sizeof key);
    key.family = (uint8_t)m->family;
    memcpy(key.addr, m->addr, sizeof key.addr);
    sl_admission_event_t ev;
    sl_msec_t now = uv_now(ctl->gw->loop);
    if (sl_admission_arrive(q, now, &key, w, &ev) < 0) {
        free(w);
        answer(ctl, m->worker, m->session, answer_pool, NULL);
        return;
    }
    if (ev.status == SL_ADM_QUEUED) {
        w->handle = ev.handle;
        waiter_put(ctl, w);
        arm(ctl);
        return;
    }
    answer(ctl, m->worker, m->session, answer_pool, &ev);
    free(w);
}

void sl_ctl_admit_cancel(sl_ctl_t *ctl, const sl_cmsg_t *m)
{
    sl_waiter_t *w = waiter_take(ctl, m->id);
    if (w == NULL)
        return;   /* already answered: the answer is on its way */
    sl_admission_cancel(w->queue, w->handle);
    answer(ctl, w->worker, w->session, w->pool, NULL);
    free(w);
    arm(ctl);
}

/*
 * A client still waiting when the gateway shuts down would otherwise be
 * admitted only to be closed at once (its backend handshake wasted), or cut
 * off without an answer at the shutdown's timeout. It is told to come back
 * now, spread out, to this gateway's successor or another instance.
 */
void sl_ctl_admit_turn_away(sl_ctl_t *ctl)
{
    ctl->turning_away = true;
    size_t n = ctl->n_waiters, i = 0, bucket = 0;
    for (sl_waiter_t *w; (w = waiter_take_any(ctl, &bucket)) != NULL; free(w))
        turn_away(ctl, w->worker, w->session, w->pool, w->queue,
                  n > 1 ? (double)i++ / (double)(n - 1) : 0.0);
    arm(ctl);
}

void sl_ctl_admit_close(sl_ctl_t *ctl)
{
    /* Everyone still waiting is answered (turned away) before the queues go. */
    size_t bucket = 0;
    for (sl_waiter_t *w; (w = waiter_take_any(ctl, &bucket)) != NULL; free(w)) {
        sl_admission_event_t go = {.status = SL_ADM_ADMITTED};
        answer(ctl, w->worker, w->session, w->pool, ctl->admit_on_close ? &go : NULL);
    }
    for (size_t i = 0; i < ctl->rt->cfg->n_services; i++) {
        sl_admission_free(ctl->services[i].adm);
        ctl->services[i].adm = NULL;
    }
    for (size_t i = 0; i < ctl->rt->cfg->n_pools; i++) {
        sl_admission_free(ctl->pools[i].adm);
        ctl->pools[i].adm = NULL;
    }
    free(ctl->waiters);
    ctl->waiters = NULL;
}

/* ---- slow start ---- */

void sl_ctl_ramp_pool(sl_ctl_t *ctl, size_t pool, sl_msec_t now)
{
    /* Its clients wait in its own queue when it has one... */
    if (ctl->pools[pool].adm) {
        sl_bucket_slow_start(sl_admission_bucket(ctl->pools[pool].adm), now);
        return;
    }
    /* ...else in the queue of each service that sends them there now. */
    for (size_t i = 0; i < ctl->rt->cfg->n_services; i++) {
        sl_ctl_service_t *cs = &ctl->services[i];
        if (cs->adm && (cs->active == pool || (cs->deploying && cs->cut.to == pool)))
            sl_bucket_slow_start(sl_admission_bucket(cs->adm), now);
    }
}

/* ---- live tuning (the admin API) ---- */

long sl_ctl_pool_service(const sl_ctl_t *ctl, size_t pool)
{
    const sl_config_t *cfg = ctl->rt->cfg;
    for (size_t i = 0; i < cfg->n_services; i++)
        if (ctl->services[i].adm && sl_config_service_uses(&cfg->services[i], pool))
            return (long)i;
    return -1;
}

/* The service's queue (pool < 0), or the queue of one of the service's
   pools; none for a service whose admission is off: its clients wait in
   no queue, not even the own queue of a pool it shares with another. */
static sl_admission_t *queue_of(sl_ctl_t *ctl, size_t svc, long pool)
{
    if (svc >= ctl->rt->cfg->n_services || ctl->services[svc].adm == NULL)
        return NULL;
    if (pool < 0)
        return ctl->services[svc].adm;
    return sl_config_service_uses(&ctl->rt->cfg->services[svc], (size_t)pool)
               ? ctl->pools[pool].adm : NULL;
}

/*
 * A live change may not set what the YAML could not: each limit is checked
 * against its key's bounds in the config schema (a pool's own queue against
 * the pool's keys where it has them). The names are the admin API's.
 */
typedef enum { LIM_RATE, LIM_U32, LIM_MSEC } lim_type_t;

static const struct limit {
    const char *name, *service_key, *pool_key;
    size_t off;
    lim_type_t type;
} limits[] = {
    {"rate", "services.admission.rate", "pools.rate",
     offsetof(sl_admission_params_t, bucket.rate), LIM_RATE},
    {"burst", "services.admission.burst", "pools.burst",
     offsetof(sl_admission_params_t, bucket.burst), LIM_U32},
    {"slow_start", "services.admission.slow_start", "pools.slow_start",
     offsetof(sl_admission_params_t, bucket.slow_start), LIM_MSEC},
    {"queue_length", "services.admission.queue.length", NULL,
     offsetof(sl_admission_params_t, queue_length), LIM_U32},
    {"max_wait", "services.admission.queue.max_wait", NULL,
     offsetof(sl_admission_params_t, max_wait), LIM_MSEC},
    {"per_client", "services.admission.queue.per_client", NULL,
     offsetof(sl_admission_params_t, per_client), LIM_U32},
    {"per_client_rate", "services.admission.per_client.rate", NULL,
     offsetof(sl_admission_params_t, per_client_rate), LIM_RATE},
    {"retry_after_min", "services.admission.retry_after.min", NULL,
     offsetof(sl_admission_params_t, retry_after_min), LIM_MSEC},
    {"retry_after_max", "services.admission.retry_after.max", NULL,
     offsetof(sl_admission_params_t, retry_after_max), LIM_MSEC},
};

static double limit_value(const sl_admission_params_t *p, const struct limit *l)
{
    const char *f = (const char *)p + l->off;
    switch (l->type) {
    case LIM_RATE: return *(const double *)(const void *)f;
    case LIM_U32: return *(const uint32_t *)(const void *)f;
    default: return (double)*(const sl_msec_t *)(const void *)f;
    }
}

static int check_limits(const sl_admission_params_t *p, bool pool, char *err, size_t errlen)
{
    for (size_t i = 0; i < SL_ARRAY_SIZE(limits); i++) {
        const struct limit *l = &limits[i];
        double v = limit_value(p, l);
        char msg[128];
        if (!sl_config_check_bound(pool && l->pool_key ? l->pool_key : l->service_key, v, msg,
                                   sizeof msg)) {
            snprintf(err, errlen, "%s: %s", l->name, msg);
            return SL_EINVAL;
        }
        /* 0 in the YAML means "no queue of its own", which a live queue cannot become. */
        if (pool && l->off == offsetof(sl_admission_params_t, bucket.rate) && v <= 0) {
            snprintf(err, errlen, "rate: a pool's own rate must be above 0/s (0 in the "
                                  "YAML means no queue of its own: change it there and reload)");
            return SL_EINVAL;
        }
    }
    if (p->retry_after_min > p->retry_after_max) {
        snprintf(err, errlen, "retry_after_min (%llu ms) is above retry_after_max (%llu ms)",
                 (unsigned long long)p->retry_after_min, (unsigned long long)p->retry_after_max);
        return SL_EINVAL;
    }
    return 0;
}

/*
 * A pool's own queue has the pool's rate, burst and slow start and the
 * service's queue bounds (docs/admission.md). When the service's bounds
 * change live, the queues of its pools follow: each bound a pool queue held
 * at the service's old value takes the new one; a bound set for the pool
 * itself (a different value) stays. The same rule carries a change from the
 * state file at a start, and across a reload.
 */
static void follow_service(sl_ctl_t *ctl, size_t svc, const sl_admission_params_t *was,
                           const sl_admission_params_t *now)
{
    const sl_cfg_service_t *s = &ctl->rt->cfg->services[svc];
    for (size_t k = 0; k < s->n_pools; k++) {
        size_t pi = s->pools[k];
        sl_admission_t *pq = ctl->pools[pi].adm;
        if (pq == NULL || sl_ctl_pool_service(ctl, pi) != (long)svc)
            continue;   /* no queue of its own, or it follows another service */
        sl_admission_params_t pp;
        sl_admission_get_params(pq, &pp);
#define FOLLOW(f) do { if (pp.f == was->f) pp.f = now->f; } while (0)
        FOLLOW(queue_length);
        FOLLOW(max_wait);
        FOLLOW(per_client);
        FOLLOW(per_client_rate);
        FOLLOW(per_client_burst);
        FOLLOW(retry_after_min);
        FOLLOW(retry_after_max);
        FOLLOW(bucket.slow_start_floor);
#undef FOLLOW
        if (sl_admission_set_params(pq, &pp, uv_now(ctl->gw->loop)) != 0)
            sl_log_warn("admission %s pool %s: keeps its queue bounds: the service's new ones "
                        "do not fit with those set for the pool", s->name,
                        ctl->rt->cfg->pools[pi].name);
    }
}

int sl_ctl_admission_get(sl_ctl_t *ctl, size_t svc, long pool, sl_admission_params_t *p,
                         sl_admission_stats_t *st)
{
    sl_admission_t *q = queue_of(ctl, svc, pool);
    if (q == NULL)
        return SL_ENOENT;
    sl_admission_get_params(q, p);
    sl_admission_stats(q, uv_now(ctl->gw->loop), st);
    return 0;
}

int sl_ctl_admission_set(sl_ctl_t *ctl, size_t svc, long pool, const sl_admission_params_t *p,
                         char *err, size_t errlen)
{
    sl_admission_t *q = queue_of(ctl, svc, pool);
    if (q == NULL) {
        snprintf(err, errlen, pool < 0 || ctl->services[svc].adm == NULL
                                  ? "admission is off for this service"
                                  : "this pool has no admission rate of its own");
        return SL_ENOENT;
    }
    if (check_limits(p, pool >= 0, err, errlen) != 0)
        return SL_EINVAL;
    if (sl_admission_params_check(p) != 0) {
        snprintf(err, errlen, "invalid limits (rate, burst, queue bounds or retry_after)");
        return SL_EINVAL;
    }
    sl_admission_params_t was;
    sl_admission_get_params(q, &was);
    /* Queued clients keep their places and their order. */
    if (sl_admission_set_params(q, p, uv_now(ctl->gw->loop)) != 0) {
        snprintf(err, errlen, "invalid limits");
        return SL_EINVAL;
    }
    if (pool < 0)
        follow_service(ctl, svc, &was, p);
    sl_log_info("admission %s%s%s: rate %.3g/s burst %u queue %u max_wait %llu ms",
                ctl->rt->cfg->services[svc].name, pool >= 0 ? " pool " : "",
                pool >= 0 ? ctl->rt->cfg->pools[pool].name : "", p->bucket.rate,
                p->bucket.burst, p->queue_length, (unsigned long long)p->max_wait);
    arm(ctl);
    return 0;
}

void sl_ctl_admit_take_queue(sl_ctl_t *to, sl_admission_t **to_slot, sl_ctl_t *from,
                             sl_admission_t **from_slot)
{
    /* The new config's limits, applied to the old queue: queued clients keep
       their places and their order, as with a live change. */
    sl_admission_params_t p;
    sl_admission_get_params(*to_slot, &p);
    sl_admission_t *q = *from_slot;
    *from_slot = NULL;
    sl_admission_free(*to_slot);
    *to_slot = q;
    sl_admission_set_params(q, &p, uv_now(to->gw->loop));
    for (size_t i = 0; i < from->waiters_cap; i++) {
        for (sl_waiter_t **pw = &from->waiters[i]; *pw;) {
            sl_waiter_t *w = *pw;
            if (w->queue != q) {
                pw = &w->next_in_bucket;
                continue;
            }
            *pw = w->next_in_bucket;
            from->n_waiters--;
            waiter_put(to, w);
        }
    }
    arm(to);
}

/* ---- holding queues while the pool behind them is down ---- */

/* Up, not drained through the API, with a weight: what the workers pick
   from, so a pool of drained (or weightless) backends is as good as down to
   a client waiting for it, or to a cutover moving onto it. */
bool sl_ctl_backend_takes_connections(const sl_ctl_t *ctl, size_t pool, size_t i)
{
    const sl_ctl_backend_t *b = &ctl->pools[pool].backends[i];
    return sl_health_usable(&b->health) &&
           !atomic_load_explicit(&b->rt->state->admin_drain, memory_order_relaxed) &&
           b->rt->cfg->weight > 0;
}

size_t sl_ctl_backends_taking(const sl_ctl_t *ctl, size_t pool)
{
    size_t n = 0;
    for (size_t i = 0; i < ctl->pools[pool].n_backends; i++)
        n += sl_ctl_backend_takes_connections(ctl, pool, i);
    return n;
}

bool sl_ctl_pool_takes_connections(const sl_ctl_t *ctl, size_t pool)
{
    return sl_ctl_backends_taking(ctl, pool) > 0;
}

static void set_hold(sl_ctl_t *ctl, sl_admission_t *q, bool hold, const char *what)
{
    if (q == NULL || sl_admission_held(q) == hold)
        return;
    sl_admission_hold(q, hold);
    if (hold)
        sl_log_warn("admission %s: holding the queue: no backend is up and taking connections",
                    what);
    else
        sl_log_info("admission %s: a backend takes connections again: admitting", what);
}

void sl_ctl_update_holds(sl_ctl_t *ctl)
{
    if (ctl->closing)
        return;
    const sl_config_t *cfg = ctl->rt->cfg;
    for (size_t p = 0; p < cfg->n_pools; p++)
        set_hold(ctl, ctl->pools[p].adm, !sl_ctl_pool_takes_connections(ctl, p),
                 cfg->pools[p].name);
    for (size_t i = 0; i < cfg->n_services; i++) {
        const sl_ctl_service_t *cs = &ctl->services[i];
        bool usable = cs->deploying ? sl_ctl_pool_takes_connections(ctl, cs->cut.from) ||
                                          sl_ctl_pool_takes_connections(ctl, cs->cut.to)
                                    : sl_ctl_pool_takes_connections(ctl, cs->active);
        set_hold(ctl, cs->adm, !usable, cfg->services[i].name);
    }
    arm(ctl);
}
