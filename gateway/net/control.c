/*
 * control.c: the control thread — the main thread's loop. It owns the
 * current runtime, the signals, and shutdown; as admission, health and the
 * admin API land, they live here too, single-threaded, so the policy code
 * needs no locks.
 *
 * Shutdown is a paced drain: on SIGTERM the control thread tells every
 * worker to stop accepting (listeners closed, idle and plain HTTP
 * connections closed as their exchanges end), then hands out drain credit at
 * shutdown.drain_rate, split over the workers, until every session is gone or
 * shutdown.timeout passes and the rest are closed.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/log.h"
#include "control.h"
#include "ctl.h"
#include "../admin/admin.h"

#define SHUTDOWN_TICK_MS 20

sl_runtime_t *sl_gateway_runtime(sl_gateway_t *gw)
{
    uv_mutex_lock(&gw->rt_lock);
    sl_runtime_t *rt = sl_runtime_ref(gw->rt);
    uv_mutex_unlock(&gw->rt_lock);
    return rt;
}

static void post_all(sl_gateway_t *gw, sl_wmsg_type_t type)
{
    for (size_t i = 0; i < gw->n_workers; i++) {
        sl_wmsg_t *m = calloc(1, sizeof *m);
        if (m == NULL)
            continue;
        m->type = type;
        sl_worker_post(&gw->workers[i], m);
    }
}

static size_t open_sessions(sl_gateway_t *gw)
{
    size_t n = 0;
    for (size_t i = 0; i < gw->n_workers; i++)
        n += atomic_load_explicit(&gw->workers[i].open_sessions, memory_order_relaxed);
    return n;
}

void sl_control_post(sl_gateway_t *gw, sl_cmsg_t *msg)
{
    msg->next = NULL;
    uv_mutex_lock(&gw->inbox_lock);
    if (gw->inbox_tail)
        gw->inbox_tail->next = msg;
    else
        gw->inbox_head = msg;
    gw->inbox_tail = msg;
    uv_mutex_unlock(&gw->inbox_lock);
    uv_async_send(&gw->wake);
}

/* One worker's clients wait at the connection cap (or for descriptors) and
   it has nothing idle of its own to close: the cap and the descriptors are
   the process's, so what idles on the others gives way. Through here, not
   worker to worker: this thread knows when a worker stops taking messages. */
static void ask_room(sl_gateway_t *gw, const sl_cmsg_t *ask)
{
    for (size_t i = 0; i < gw->n_workers; i++) {
        if ((int)i == ask->worker)
            continue;
        sl_wmsg_t *m = calloc(1, sizeof *m);
        if (m == NULL)
            return;   /* the asking worker asks again at its next retry */
        m->type = SL_WMSG_MAKE_ROOM;
        m->fds = ask->fds;
        sl_worker_post(&gw->workers[i], m);
    }
}

void sl_control_admit_answer(sl_gateway_t *gw, int worker, sl_session_t *s, long pool,
                             const sl_admission_event_t *ev)
{
    sl_wmsg_t *m = calloc(1, sizeof *m);
    if (m == NULL)
        abort();   /* an answer must arrive: the session waits for it */
    m->type = SL_WMSG_ADMIT_RESULT;
    m->session = s;
    m->pool = pool;
    m->admit_status = ev ? (int)ev->status : SL_ADM_REJECTED;
    m->http_status = ev ? ev->http_status : 503;
    m->retry_after_ms = ev ? ev->retry_after_ms : 0;
    m->waited_ms = ev ? ev->waited_ms : 0;
    sl_worker_post(&gw->workers[worker], m);
}

/* An admission asked for with no control state left to ask (the last turn
   of a shutdown): turned away, with the service's shortest Retry-After (a
   0 told a browser's 1013 to come back at once, to a gateway going away). */
static void admit_refused(sl_gateway_t *gw, const sl_cmsg_t *m)
{
    sl_admission_event_t ev = {
        .status = SL_ADM_REJECTED,
        .http_status = 503,
        .retry_after_ms = SL_MAX(m->rt->cfg->services[m->service].admission.retry_after_min,
                                 (sl_msec_t)1000),
    };
    sl_control_admit_answer(gw, m->worker, m->session, -1, &ev);
}

static int by_id(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/*
 * The ids of the admissions cancelled in this batch, sorted (NULL: none, or
 * no memory, which only costs a token). A client that asked and left within
 * one turn has its ADMIT here before its CANCEL: admitted at once, it spent
 * a token the backend never saw a client for, and in a storm of clients
 * giving up that is capacity thrown away.
 */
static uint64_t *cancelled_ids(const sl_cmsg_t *m, size_t *n)
{
    *n = 0;
    for (const sl_cmsg_t *c = m; c; c = c->next)
        *n += c->type == SL_CMSG_CANCEL;
    uint64_t *ids = *n ? malloc(*n * sizeof *ids) : NULL;
    if (ids == NULL) {
        *n = 0;
        return NULL;
    }
    size_t k = 0;
    for (const sl_cmsg_t *c = m; c; c = c->next)
        if (c->type == SL_CMSG_CANCEL)
            ids[k++] = c->id;
    qsort(ids, k, sizeof *ids, by_id);
    return ids;
}

static void on_wake(uv_async_t *a)
{
    sl_gateway_t *gw = a->data;
    uv_mutex_lock(&gw->inbox_lock);
    sl_cmsg_t *m = gw->inbox_head;
    gw->inbox_head = gw->inbox_tail = NULL;
    uv_mutex_unlock(&gw->inbox_lock);
    size_t n_cancelled;
    uint64_t *cancelled = cancelled_ids(m, &n_cancelled);
    while (m) {
        sl_cmsg_t *next = m->next;
        switch (m->type) {
        case SL_CMSG_CONN_RESULT:
            if (gw->ctl)
                sl_ctl_health_conn_result(gw->ctl, m);
            break;
        case SL_CMSG_ADMIT:
            if (gw->ctl && !(n_cancelled &&
                             bsearch(&m->id, cancelled, n_cancelled, sizeof *cancelled, by_id)))
                sl_ctl_admit(gw->ctl, m);
            else
                admit_refused(gw, m);   /* gone already, or nothing left to ask */
            break;
        case SL_CMSG_CANCEL:
            if (gw->ctl)
                sl_ctl_admit_cancel(gw->ctl, m);
            break;
        case SL_CMSG_MAKE_ROOM:
            ask_room(gw, m);
            break;
        }
        free(m);
        m = next;
    }
    free(cancelled);
}

void sl_control_discard_inbox(sl_gateway_t *gw)
{
    /* A worker may still post (a connect result, a requeued admission) between
       finish()'s last read of the inbox and its own SL_WMSG_EXIT. */
    sl_cmsg_t *m = gw->inbox_head;
    gw->inbox_head = gw->inbox_tail = NULL;
    while (m) {
        sl_cmsg_t *next = m->next;
        free(m);
        m = next;
    }
}

static void finish(sl_gateway_t *gw)
{
    sl_admin_stop(gw);
    uv_timer_stop(&gw->shutdown_timer);
    if (gw->ctl) {
        sl_ctl_close(gw->ctl);
        gw->ctl = NULL;
    }
    /* Answer what workers asked on the way out, then stop listening to them. */
    on_wake(&gw->wake);
    uv_close((uv_handle_t *)&gw->wake, NULL);
    post_all(gw, SL_WMSG_EXIT);
    uv_close((uv_handle_t *)&gw->shutdown_timer, NULL);
    uv_close((uv_handle_t *)&gw->sig_term, NULL);
    uv_close((uv_handle_t *)&gw->sig_int, NULL);
    uv_close((uv_handle_t *)&gw->sig_hup, NULL);
}

static void on_shutdown_tick(uv_timer_t *t)
{
    sl_gateway_t *gw = t->data;
    sl_msec_t now = uv_now(gw->loop);
    size_t left = open_sessions(gw);
    if (left == 0) {
        sl_log_info("shutdown: all connections closed");
        finish(gw);
        return;
    }
    if (now >= gw->shutdown_deadline) {
        if (!gw->force_sent) {
            sl_log_warn("shutdown: timeout with %zu connections open; closing them", left);
            post_all(gw, SL_WMSG_FORCE_CLOSE);
            gw->force_sent = true;
            gw->shutdown_deadline = now + 1000;
            return;
        }
        finish(gw);
        return;
    }
    /* Hand out drain credit at the configured pace, split over the workers. */
    const sl_cfg_shutdown_t *sd = &gw->rt->cfg->shutdown;
    gw->shutdown_credit += sd->drain_rate * (double)(now - gw->shutdown_last) / 1000.0;
    gw->shutdown_last = now;
    uint32_t whole = (uint32_t)gw->shutdown_credit;
    if (whole == 0)
        return;
    gw->shutdown_credit -= whole;
    sl_wmsg_t what = {
        .type = SL_WMSG_DRAIN,
        .close_code = sd->close_code,
    };
    snprintf(what.reason, sizeof what.reason, "gateway shutting down");
    sl_control_post_drain(gw, &what, whole, &gw->shutdown_rotor);
}

/*
 * A drain of any WebSocket (the shutdown's) is shared by what each worker
 * has left to drain: split evenly, a worker with none threw its share away,
 * and once the connections left were on some workers only the drain ran
 * at a fraction of its rate (2 workers: half). A cutover's or a backend's
 * drain is split evenly (the workers keep no count of what they hold of a
 * pool or a backend): it can only be slower than its pace, never faster.
 */
static void drain_shares(sl_gateway_t *gw, const sl_wmsg_t *what, uint64_t count, size_t rotor,
                         uint64_t *share)
{
    size_t nw = gw->n_workers;
    uint64_t held[SL_MAX_WORKERS], total = 0;
    for (size_t k = 0; k < nw; k++) {
        held[k] = what->ws == NULL && what->backend == NULL
                      ? atomic_load(&gw->workers[k].drainable) : 1;
        total += held[k];
    }
    if (total == 0) {
        for (size_t k = 0; k < nw; k++)
            held[k] = 1;
        total = nw;
    }
    uint64_t given = 0;
    for (size_t k = 0; k < nw; k++) {
        share[k] = count * held[k] / total;
        given += share[k];
    }
    /* The odd credit goes to each worker in turn (that has any to drain),
       so none is starved at low rates. */
    for (size_t k = 0; given < count; k = (k + 1) % nw) {
        size_t i = (rotor + k) % nw;
        if (held[i] > 0) {
            share[i]++;
            given++;
        }
    }
}

void sl_control_post_drain(sl_gateway_t *gw, const sl_wmsg_t *what, uint64_t count,
                           size_t *rotor)
{
    size_t nw = gw->n_workers;
    uint64_t shares[SL_MAX_WORKERS];
    drain_shares(gw, what, count, *rotor, shares);
    for (size_t k = 0; k < nw; k++) {
        uint64_t share = shares[k];
        if (share == 0)
            continue;
        sl_wmsg_t *m = malloc(sizeof *m);
        if (m == NULL)
            continue;
        *m = *what;
        m->count = (uint32_t)share;
        sl_worker_post(&gw->workers[k], m);
    }
    *rotor = (*rotor + 1) % nw;
}

void sl_control_shutdown(sl_gateway_t *gw)
{
    if (atomic_exchange(&gw->draining, 1))
        return;
    const sl_cfg_shutdown_t *sd = &gw->rt->cfg->shutdown;
    sl_log_info("shutdown: draining %zu connections at %.0f/s (timeout %llu ms)",
                open_sessions(gw), sd->drain_rate, (unsigned long long)sd->timeout);
    post_all(gw, SL_WMSG_STOP_ACCEPT);
    if (gw->ctl)
        sl_ctl_admit_turn_away(gw->ctl);
    sl_msec_t now = uv_now(gw->loop);
    gw->shutdown_deadline = now + sd->timeout;
    gw->shutdown_last = now;
    gw->shutdown_credit = 1;
    uv_timer_start(&gw->shutdown_timer, on_shutdown_tick, SHUTDOWN_TICK_MS, SHUTDOWN_TICK_MS);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    sl_gateway_t *gw = sig->data;
    if (signum == SIGHUP) {
        sl_diag_t diag = {0};
        if (sl_control_reload(gw, &diag) != 0)
            for (size_t i = 0; i < diag.n; i++)
                sl_log_error("reload refused: %s", diag.lines[i]);
        sl_diag_free(&diag);
        return;
    }
    if (atomic_load(&gw->draining)) {
        /* Said as what it is: this used to pass for the timeout ("shutdown:
           timeout with N connections open") a tick later. */
        if (!gw->force_sent) {
            sl_log_warn("second signal: closing %zu connections now", open_sessions(gw));
            post_all(gw, SL_WMSG_FORCE_CLOSE);
            gw->force_sent = true;
            gw->shutdown_deadline = uv_now(gw->loop) + 1000;
        } else {
            sl_log_warn("another signal: exiting now");
            gw->shutdown_deadline = 0;
        }
        return;
    }
    sl_control_shutdown(gw);
}

void sl_control_hold_sighup(bool hold)
{
    sigset_t hup;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    pthread_sigmask(hold ? SIG_BLOCK : SIG_UNBLOCK, &hup, NULL);
}

int sl_control_start(sl_gateway_t *gw)
{
    uv_mutex_init(&gw->inbox_lock);
    uv_async_init(gw->loop, &gw->wake, on_wake);
    gw->wake.data = gw;
    gw->ctl = sl_ctl_new(gw, gw->rt);
    if (gw->ctl == NULL)
        return SL_ENOMEM;
    sl_state_apply(gw->ctl);
    uv_timer_init(gw->loop, &gw->shutdown_timer);
    gw->shutdown_timer.data = gw;
    uv_signal_t *sigs[] = {&gw->sig_term, &gw->sig_int, &gw->sig_hup};
    int nums[] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(gw->loop, sigs[i]);
        sigs[i]->data = gw;
        uv_signal_start(sigs[i], on_signal, nums[i]);
    }
    /* A SIGHUP held since main began is delivered now, to the handler: the
       loop reloads once it runs. */
    sl_control_hold_sighup(false);
    gw->started = uv_now(gw->loop);
    return 0;
}
