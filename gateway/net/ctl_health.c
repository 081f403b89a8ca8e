/*
 * ctl_health.c: active health checks and passive ejection, on the control
 * thread.
 *
 * The health machine (policy/health.c) decides; this file runs its checks —
 * an HTTP GET to the pool's health path, judged by the status line — and
 * publishes the verdict to the workers through the backend's atomic `up`
 * flag. Passive results come from the workers as SL_CMSG_CONN_RESULT
 * messages. A backend that comes back UP starts its pool's slow start, so a
 * recovered backend is not handed the whole waiting herd at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/log.h"
#include "ctl.h"

typedef struct sl_probe {
    sl_ctl_backend_t *b;             /* NULL once abandoned (the ctl is closing) */
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    uv_timer_t timer;
    char req[512];
    char resp[64];
    size_t resp_len;
    int pending;
    bool done;
} sl_probe_t;

static void apply_event(sl_ctl_backend_t *b, const sl_health_event_t *ev)
{
    bool usable = sl_health_usable(&b->health);
    atomic_store(&b->rt->state->up, usable ? 1 : 0);
    sl_log_info("backend %s (pool %s): %s -> %s (%s)", b->rt->name,
                b->ctl->rt->cfg->pools[b->pool].name, sl_health_state_name(ev->from),
                sl_health_state_name(ev->to), sl_health_why_name(ev->why));
    sl_admission_t *q = b->ctl->pools[b->pool].adm;
    if (usable && q)
        sl_bucket_slow_start(sl_admission_bucket(q), uv_now(b->ctl->gw->loop));
    sl_ctl_update_holds(b->ctl);
}

static void schedule(sl_ctl_backend_t *b);

static void probe_closed(uv_handle_t *h)
{
    sl_probe_t *p = h->data;
    if (--p->pending == 0)
        free(p);
}

static void probe_finish(sl_probe_t *p, sl_health_result_t r)
{
    if (p->done)
        return;
    p->done = true;
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, probe_closed);
    uv_close((uv_handle_t *)&p->tcp, probe_closed);
    sl_ctl_backend_t *b = p->b;
    if (b == NULL)
        return;
    b->probe = NULL;
    sl_health_event_t ev;
    if (sl_health_check_result(&b->health, uv_now(b->ctl->gw->loop), r, &ev))
        apply_event(b, &ev);
    schedule(b);
}

static void probe_timeout(uv_timer_t *t)
{
    probe_finish(t->data, SL_CHECK_TIMEOUT);
}

static void probe_alloc(uv_handle_t *h, size_t s, uv_buf_t *buf)
{
    sl_probe_t *p = h->data;
    buf->base = p->resp + p->resp_len;
    buf->len = sizeof p->resp - 1 - p->resp_len;
}

static void probe_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    sl_probe_t *p = st->data;
    if (n < 0) {
        probe_finish(p, SL_CHECK_FAIL);
        return;
    }
    p->resp_len += (size_t)n;
    p->resp[p->resp_len] = '\0';
    /* "HTTP/1.1 200" is all we need to judge. */
    if (p->resp_len >= 12 || memchr(p->resp, '\n', p->resp_len)) {
        int status = 0;
        bool ok = sscanf(p->resp, "HTTP/1.%*1[01] %3d", &status) == 1 && status >= 200 &&
                  status < 400;
        probe_finish(p, ok ? SL_CHECK_OK : SL_CHECK_FAIL);
    }
}

static void probe_written(uv_write_t *w, int status)
{
    sl_probe_t *p = w->data;
    if (status < 0)
        probe_finish(p, SL_CHECK_FAIL);
}

static void probe_connected(uv_connect_t *c, int status)
{
    sl_probe_t *p = c->data;
    if (p->done)
        return;
    if (status < 0) {
        probe_finish(p, SL_CHECK_FAIL);
        return;
    }
    uv_buf_t buf = uv_buf_init(p->req, (unsigned)strlen(p->req));
    p->write.data = p;
    if (uv_write(&p->write, (uv_stream_t *)&p->tcp, &buf, 1, probe_written) != 0 ||
        uv_read_start((uv_stream_t *)&p->tcp, probe_alloc, probe_read) != 0)
        probe_finish(p, SL_CHECK_FAIL);
}

static void probe_start(sl_ctl_backend_t *b)
{
    uv_loop_t *loop = b->ctl->gw->loop;
    const sl_cfg_pool_t *pc = &b->ctl->rt->cfg->pools[b->pool];
    sl_probe_t *p = calloc(1, sizeof *p);
    if (p == NULL) {
        sl_health_event_t ev;
        if (sl_health_check_result(&b->health, uv_now(loop), SL_CHECK_FAIL, &ev))
            apply_event(b, &ev);
        return;
    }
    p->b = b;
    b->probe = p;
    snprintf(p->req, sizeof p->req,
             "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-health\r\n"
             "Connection: close\r\n\r\n",
             pc->health.path, b->rt->name);
    uv_tcp_init(loop, &p->tcp);
    uv_timer_init(loop, &p->timer);
    p->tcp.data = p->timer.data = p->connect.data = p;
    p->pending = 2;
    uv_timer_start(&p->timer, probe_timeout, pc->health.timeout, 0);
    if (uv_tcp_connect(&p->connect, &p->tcp, (struct sockaddr *)&b->rt->addr,
                       probe_connected) != 0)
        probe_finish(p, SL_CHECK_FAIL);
}

static void on_tick(uv_timer_t *t)
{
    sl_ctl_backend_t *b = t->data;
    sl_health_event_t ev;
    int r = sl_health_tick(&b->health, uv_now(b->ctl->gw->loop), &ev);
    if (r & SL_HEALTH_EVENT)
        apply_event(b, &ev);
    if (r & SL_HEALTH_RUN_CHECK)
        probe_start(b);
    else
        schedule(b);
}

static void schedule(sl_ctl_backend_t *b)
{
    if (b->ctl->closing)
        return;
    sl_msec_t due = sl_health_next_due(&b->health);
    if (due == SL_MSEC_NEVER) {
        uv_timer_stop(&b->timer);
        return;
    }
    sl_msec_t now = uv_now(b->ctl->gw->loop);
    uv_timer_start(&b->timer, on_tick, due > now ? due - now : 0, 0);
}

void sl_ctl_health_start(sl_ctl_t *ctl)
{
    sl_msec_t now = uv_now(ctl->gw->loop);
    for (size_t p = 0; p < ctl->rt->cfg->n_pools; p++) {
        const sl_cfg_health_t *hc = &ctl->rt->cfg->pools[p].health;
        sl_health_cfg_t cfg = {
            .active = hc->enabled,
            .interval = hc->interval,
            .rise = hc->rise,
            .fall = hc->fall,
            .passive_failures = hc->passive_failures,
            .eject_for = hc->passive_eject,
        };
        for (size_t i = 0; i < ctl->pools[p].n_backends; i++) {
            sl_ctl_backend_t *b = &ctl->pools[p].backends[i];
            sl_health_init(&b->health, &cfg, now);
            atomic_store(&b->rt->state->up, sl_health_usable(&b->health) ? 1 : 0);
            schedule(b);
        }
    }
}

void sl_ctl_health_conn_result(sl_ctl_t *ctl, const sl_cmsg_t *m)
{
    if (m->generation != ctl->rt->generation || m->pool < 0 ||
        (size_t)m->pool >= ctl->rt->cfg->n_pools ||
        (size_t)m->backend >= ctl->pools[m->pool].n_backends)
        return;
    sl_ctl_backend_t *b = &ctl->pools[m->pool].backends[m->backend];
    sl_health_event_t ev;
    if (sl_health_conn_result(&b->health, uv_now(ctl->gw->loop), m->ok, &ev))
        apply_event(b, &ev);
    schedule(b);
}

static void ctl_handle_closed(uv_handle_t *h)
{
    sl_ctl_t *ctl = h->data;
    if (--ctl->pending_closes == 0)
        sl_ctl_free(ctl);
}

void sl_ctl_health_close(sl_ctl_t *ctl)
{
    for (size_t p = 0; p < ctl->rt->cfg->n_pools; p++) {
        for (size_t i = 0; i < ctl->pools[p].n_backends; i++) {
            sl_ctl_backend_t *b = &ctl->pools[p].backends[i];
            if (b->probe) {
                b->probe->b = NULL;
                probe_finish(b->probe, SL_CHECK_FAIL);
                b->probe = NULL;
            }
            b->timer.data = ctl;
            ctl->pending_closes++;
            uv_close((uv_handle_t *)&b->timer, ctl_handle_closed);
        }
    }
}
