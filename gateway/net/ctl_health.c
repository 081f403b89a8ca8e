/*
 * ctl_health.c: active health checks and passive ejection, on the control
 * thread.
 *
 * The health machine (policy/health.c) decides; this file runs its checks —
 * an HTTP GET to the pool's health path, judged by the status line — and
 * publishes the verdict to the workers through the backend's atomic `up`
 * flag. A pool with tls: true is checked over TLS with its own client
 * context (CA, SNI, name verified), so a backend whose certificate fails
 * verification is down for new connections exactly as it would fail them.
 * Passive results come from the workers as SL_CMSG_CONN_RESULT
 * messages. A backend that comes back UP starts its pool's slow start, so a
 * recovered backend is not handed the whole waiting herd at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "sluice/http.h"
#include "sluice/log.h"
#include "ctl.h"
#include "tls.h"

typedef struct sl_probe {
    sl_ctl_backend_t *b;             /* NULL once abandoned (the ctl is closing) */
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_timer_t timer;
    char req[512];
    size_t req_len;
    char resp[64];
    size_t resp_len;
    /* A TLS pool's check speaks through OpenSSL over memory BIOs: `in` holds
       what the backend sent, `out` what goes to it. */
    sl_tls_pool_t *pool;
    SSL *ssl;
    BIO *in, *out;
    bool req_sent;
    char rbuf[4096];                 /* socket reads land here (TLS) */
    int pending;
    bool done;
} sl_probe_t;

typedef struct probe_write {
    uv_write_t req;
    sl_probe_t *p;
    char data[];
} probe_write_t;

static void apply_event(sl_ctl_backend_t *b, const sl_health_event_t *ev)
{
    bool usable = sl_health_usable(&b->health);
    atomic_store(&b->rt->state->up, usable ? 1 : 0);
    sl_log_info("backend %s (pool %s): %s -> %s (%s)", b->rt->name,
                b->ctl->rt->cfg->pools[b->pool].name, sl_health_state_name(ev->from),
                sl_health_state_name(ev->to), sl_health_why_name(ev->why));
    /* Slow start is for a pool coming back, not for one backend of a pool
       that was serving all along (that would cut the pool to the floor):
       b has just turned usable, so the pool has just come back when b is
       the only backend taking connections (others up but drained through
       the API, or weighted 0, took none: counted, they kept the ramp off). */
    if (usable && sl_ctl_backend_takes_connections(b->ctl, b->pool, b->index) &&
        sl_ctl_backends_taking(b->ctl, b->pool) == 1)
        sl_ctl_ramp_pool(b->ctl, b->pool, uv_now(b->ctl->gw->loop));
    sl_ctl_update_holds(b->ctl);
}

static void schedule(sl_ctl_backend_t *b);

static void probe_closed(uv_handle_t *h)
{
    sl_probe_t *p = h->data;
    if (--p->pending > 0)
        return;
    SSL_free(p->ssl);   /* and its BIOs */
    sl_tls_pool_unref(p->pool);
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

/* Judge the status line once its code is in: 2xx and 3xx pass. True when
   the check is finished. */
static bool probe_judge(sl_probe_t *p)
{
    int status = sl_http_status_code(p->resp, p->resp_len);
    if (status == SL_NEED_MORE)
        return false;
    probe_finish(p, status >= 200 && status < 400 ? SL_CHECK_OK : SL_CHECK_FAIL);
    return true;
}

static void probe_written(uv_write_t *w, int status)
{
    probe_write_t *pw = w->data;
    sl_probe_t *p = pw->p;
    free(pw);
    if (status < 0)
        probe_finish(p, SL_CHECK_FAIL);
}

static int probe_send(sl_probe_t *p, const void *data, size_t len)
{
    probe_write_t *pw = malloc(sizeof *pw + len);
    if (pw == NULL)
        return SL_ENOMEM;
    memcpy(pw->data, data, len);
    pw->p = p;
    pw->req.data = pw;
    uv_buf_t buf = uv_buf_init(pw->data, (unsigned)len);
    int rc = uv_write(&pw->req, (uv_stream_t *)&p->tcp, &buf, 1, probe_written);
    if (rc != 0)
        free(pw);
    return rc;
}

/* An SSL call returned n: true when it only waits for more input. */
static bool tls_wants(sl_probe_t *p, int n, const char *what)
{
    int err = SSL_get_error(p->ssl, n);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
        return true;
    char buf[200];
    const char *why = err == SSL_ERROR_SSL ? sl_tls_error_text(buf, sizeof buf) : "closed";
    ERR_clear_error();
    if (p->b)
        sl_log_debug("backend %s: TLS health check: %s: %s", p->b->rt->name, what, why);
    return false;
}

/* Move the TLS check on: handshake and request, then the response; send what OpenSSL wrote. */
static void tls_step(sl_probe_t *p)
{
    if (!p->req_sent) {
        int n = SSL_write(p->ssl, p->req, (int)p->req_len);
        if (n > 0)
            p->req_sent = true;
        else if (!tls_wants(p, n, "handshake")) {
            probe_finish(p, SL_CHECK_FAIL);
            return;
        }
    }
    while (p->req_sent) {
        int n = SSL_read(p->ssl, p->resp + p->resp_len, (int)(sizeof p->resp - p->resp_len));
        if (n > 0) {
            p->resp_len += (size_t)n;
            if (probe_judge(p))
                return;
            continue;
        }
        if (!tls_wants(p, n, "response")) {
            probe_finish(p, SL_CHECK_FAIL);
            return;
        }
        break;
    }
    char *data;
    long len = BIO_get_mem_data(p->out, &data);
    if (len > 0) {
        if (probe_send(p, data, (size_t)len) != 0) {
            probe_finish(p, SL_CHECK_FAIL);
            return;
        }
        (void)BIO_reset(p->out);
    }
}

static void probe_alloc(uv_handle_t *h, size_t s, uv_buf_t *buf)
{
    sl_probe_t *p = h->data;
    if (p->ssl) {
        buf->base = p->rbuf;
        buf->len = sizeof p->rbuf;
    } else {
        buf->base = p->resp + p->resp_len;
        buf->len = sizeof p->resp - p->resp_len;
    }
}

static void probe_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    sl_probe_t *p = st->data;
    if (n < 0) {
        probe_finish(p, SL_CHECK_FAIL);
        return;
    }
    if (p->ssl) {
        if (n > 0 && BIO_write(p->in, buf->base, (int)n) != (int)n) {
            probe_finish(p, SL_CHECK_FAIL);
            return;
        }
        tls_step(p);
        return;
    }
    p->resp_len += (size_t)n;
    (void)probe_judge(p);
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
    if (uv_read_start((uv_stream_t *)&p->tcp, probe_alloc, probe_read) != 0) {
        probe_finish(p, SL_CHECK_FAIL);
        return;
    }
    if (p->ssl)
        tls_step(p);   /* the ClientHello */
    else if (probe_send(p, p->req, p->req_len) != 0)
        probe_finish(p, SL_CHECK_FAIL);
}

/* The SSL of a TLS pool's check, reading from and writing to memory. */
static int probe_tls(sl_probe_t *p, const sl_cfg_pool_t *pc)
{
    p->pool = sl_tls_pool_get(pc->name);
    if (p->pool == NULL)
        return SL_ENOENT;
    const sl_backend_rt_t *rt = p->b->rt;
    p->ssl = sl_tls_pool_new_ssl(p->pool, pc, rt->cfg ? rt->cfg->address.host : NULL);
    p->in = BIO_new(BIO_s_mem());
    p->out = BIO_new(BIO_s_mem());
    if (p->ssl == NULL || p->in == NULL || p->out == NULL) {
        BIO_free(p->in);
        BIO_free(p->out);
        p->in = p->out = NULL;
        return SL_ENOMEM;
    }
    SSL_set_bio(p->ssl, p->in, p->out);
    return 0;
}

static void probe_start(sl_ctl_backend_t *b)
{
    uv_loop_t *loop = b->ctl->gw->loop;
    const sl_cfg_pool_t *pc = &b->ctl->rt->cfg->pools[b->pool];
    sl_probe_t *p = calloc(1, sizeof *p);
    if (p == NULL) {
        sl_health_event_t ev;
        if (sl_health_check_result(&b->health, uv_now(loop), SL_CHECK_SKIPPED, &ev))
            apply_event(b, &ev);
        schedule(b);
        return;
    }
    p->b = b;
    b->probe = p;
    int n = snprintf(p->req, sizeof p->req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-health\r\n"
                     "Connection: close\r\n\r\n",
                     pc->health.path, b->rt->name);
    p->req_len = n > 0 && (size_t)n < sizeof p->req ? (size_t)n : sizeof p->req - 1;
    uv_tcp_init(loop, &p->tcp);
    uv_timer_init(loop, &p->timer);
    p->tcp.data = p->timer.data = p->connect.data = p;
    p->pending = 2;
    uv_timer_start(&p->timer, probe_timeout, pc->health.timeout, 0);
    /* A check the gateway cannot even start (no descriptor, no memory)
       says nothing about the backend: marking it down for that turned a
       moment's shortage into 503s for everyone after it was over. */
    if (pc->tls && probe_tls(p, pc) != 0) {
        probe_finish(p, SL_CHECK_SKIPPED);
        return;
    }
    int rc = uv_tcp_connect(&p->connect, &p->tcp, (struct sockaddr *)&b->rt->addr,
                            probe_connected);
    if (rc != 0) {
        /* EADDRNOTAVAIL: no local port left toward this backend (upstream.c). */
        bool ours = sl_out_of_resources(rc) || rc == UV_EADDRNOTAVAIL;
        if (ours)
            sl_log_debug("health check of %s skipped: %s", b->rt->name, uv_strerror(rc));
        probe_finish(p, ours ? SL_CHECK_SKIPPED : SL_CHECK_FAIL);
    }
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

/* The policy state ctl replaces at a reload, or NULL at start: sl_ctl_new
   runs before the reload puts its result in gw->ctl. */
static const sl_ctl_t *replaced(const sl_ctl_t *ctl)
{
    return ctl->gw->ctl != ctl ? ctl->gw->ctl : NULL;
}

/* b's pool (by name) had b's address under old: its health carries over. */
static bool was_there(const sl_ctl_t *old, const sl_ctl_backend_t *b)
{
    long p = sl_config_pool_index(old->rt->cfg, b->ctl->rt->cfg->pools[b->pool].name);
    for (size_t i = 0; p >= 0 && i < old->pools[p].n_backends; i++)
        if (strcmp(old->pools[p].backends[i].rt->cfg->address.text, b->rt->cfg->address.text) == 0)
            return true;
    return false;
}

/*
 * A backend added at run time (PUT .../backends, a reload) starts DOWN when
 * its pool has active checks, and the first check, due at once, decides:
 * counted up before it, a dead one took clients (502s, passive ejections)
 * for `fall` intervals, and a deploy onto it did not pause. At start every
 * backend starts UP as before (a restart must not hold every pool until it
 * is re-proved). A backend that stays keeps its verdict: sl_ctl_carry_over
 * copies it, so its shared `up`, which the old runtime's workers read
 * meanwhile, is left as it is here.
 */
void sl_ctl_health_start(sl_ctl_t *ctl)
{
    sl_msec_t now = uv_now(ctl->gw->loop);
    const sl_ctl_t *old = replaced(ctl);
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
            bool stays = old != NULL && was_there(old, b);
            cfg.start_down = old != NULL && !stays;
            sl_health_init(&b->health, &cfg, now);
            if (!stays)
                atomic_store(&b->rt->state->up, sl_health_usable(&b->health) ? 1 : 0);
            if (!sl_health_usable(&b->health))
                sl_log_info("backend %s (pool %s): added; down until its first health check "
                            "passes", b->rt->name, ctl->rt->cfg->pools[p].name);
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
