/*
 * gateway/config/summary.c: the text `sluice --check` prints.
 *
 * One screen that lets an operator confirm the gateway understood the file
 * the way they meant it: where it listens, which backends each pool has,
 * where each route goes, and the limits in force, in the file's notation.
 * The verdict is not part of it: `sluice --check` prints "FILE: ok" after
 * the summary, the one line scripts look for (a first "config FILE: OK"
 * said the same thing twice).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

typedef struct out {
    char *buf;
    size_t len, o;
    size_t need;                  /* the whole text's length, cut or not */
} out_t;

__attribute__((format(printf, 2, 3))) static void put(out_t *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(w->o < w->len ? w->buf + w->o : NULL, w->o < w->len ? w->len - w->o : 0,
                      fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    w->need += (size_t)n;
    if (w->o < w->len)
        w->o = SL_MIN(w->o + (size_t)n, w->len - 1);
}

/*
 * A summary too long for the buffer says so in its last line: cut silently,
 * it read as if the pools listed were all the pools, and --check's "ok"
 * followed on the same line as half a pool's name.
 */
static void mark_cut(out_t *w)
{
    char note[64];
    int n = snprintf(note, sizeof note, "\n... (cut: the summary is %zu bytes)\n", w->need);
    if (w->need < w->len || n <= 0 || (size_t)n >= w->len)
        return;
    memcpy(w->buf + w->len - 1 - (size_t)n, note, (size_t)n + 1);
}

static const char *const proxy_names[] = {"off", "v1", "v2", "any"};
static const char *const balance_names[] = {"least_conn", "round_robin", "hash"};
static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const format_names[] = {"text", "json"};

static void listeners(out_t *w, const sl_config_t *cfg)
{
    put(w, "listeners:\n");
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const sl_cfg_listener_t *l = &cfg->listeners[i];
        char defer[32];
        sl__fmt_duration(defer, sizeof defer, l->defer_accept);
        put(w, "  %s  backlog %u  defer_accept %s  delayed_ack %s  proxy_protocol %s%s\n",
            l->address.text, l->backlog, l->defer_accept ? defer : "off",
            l->delayed_ack ? "on" : "off", proxy_names[l->proxy_protocol % 4],
            l->tls.enabled ? "  tls" : "");
    }
    if (cfg->workers == 0)
        put(w, "workers: auto (one per core)\n");
    else
        put(w, "workers: %u\n", cfg->workers);
    put(w, "trusted_proxies: %zu prefix%s\n", cfg->n_trusted_proxies,
        cfg->n_trusted_proxies == 1 ? "" : "es");
}

static void pools(out_t *w, const sl_config_t *cfg)
{
    put(w, "pools:\n");
    for (size_t i = 0; i < cfg->n_pools; i++) {
        const sl_cfg_pool_t *p = &cfg->pools[i];
        put(w, "  %s  balance %s  connect_retries %u\n", p->name, balance_names[p->balance % 3],
            p->connect_retries);
        for (size_t j = 0; j < p->n_backends; j++)
            put(w, "    %s  weight %u\n", p->backends[j].address.text, p->backends[j].weight);
    }
}

static void services(out_t *w, const sl_config_t *cfg)
{
    put(w, "services:\n");
    for (size_t i = 0; i < cfg->n_services; i++) {
        const sl_cfg_service_t *s = &cfg->services[i];
        put(w, "  %s  active %s  pools", s->name, cfg->pools[s->active].name);
        for (size_t j = 0; j < s->n_pools; j++)
            put(w, "%s%s", j ? ", " : " ", cfg->pools[s->pools[j]].name);
        if (s->admission.enabled) {
            char r[32];
            sl__fmt_rate(r, sizeof r, s->admission.rate);
            put(w, "  admission %s burst %u\n", r, s->admission.burst);
        } else {
            put(w, "  admission off\n");
        }
        for (size_t j = 0; j < s->n_routes; j++)
            put(w, "    route host %s  path_prefix %s\n", s->routes[j].host,
                s->routes[j].path_prefix);
    }
}

static void limits(out_t *w, const sl_config_t *cfg)
{
    const sl_cfg_limits_t *l = &cfg->limits;
    const sl_cfg_timeouts_t *t = &cfg->timeouts;
    char a[32], b[32], c[32], d[32], e[32], f[32], g[32];
    sl__fmt_size(a, sizeof a, l->head_bytes);
    sl__fmt_size(b, sizeof b, l->request_line);
    sl__fmt_size(c, sizeof c, l->frame_bytes);
    sl__fmt_size(d, sizeof d, l->message_bytes);
    put(w, "limits: head_bytes %s  headers %u  request_line %s  frame_bytes %s  message_bytes %s\n",
        a, l->headers, b, c, d);
    sl__fmt_size(a, sizeof a, l->write_high_water);
    sl__fmt_size(b, sizeof b, l->write_low_water);
    put(w, "        max_connections %u  validate_utf8 %s  write_water %s/%s\n", l->max_connections,
        l->validate_utf8 ? "true" : "false", a, b);
    sl__fmt_duration(a, sizeof a, t->connect);
    sl__fmt_duration(b, sizeof b, t->head);
    sl__fmt_duration(c, sizeof c, t->backend_response);
    sl__fmt_duration(d, sizeof d, t->idle);
    sl__fmt_duration(e, sizeof e, t->keepalive);
    sl__fmt_duration(f, sizeof f, t->ping_interval);
    sl__fmt_duration(g, sizeof g, t->ping_timeout);
    put(w, "timeouts: connect %s  head %s  backend_response %s  idle %s  keepalive %s\n", a, b, c,
        d, e);
    put(w, "          ping_interval %s  ping_timeout %s\n", f, g);
    sl__fmt_duration(a, sizeof a, cfg->shutdown.timeout);
    sl__fmt_rate(b, sizeof b, cfg->shutdown.drain_rate);
    put(w, "shutdown: timeout %s  drain_rate %s  close_code %u\n", a, b, cfg->shutdown.close_code);
    put(w, "log: level %s  format %s\n", level_names[cfg->log.level % 4],
        format_names[cfg->log.format % 2]);
}

size_t sl_config_summary(const sl_config_t *cfg, char *buf, size_t len)
{
    out_t w = {.buf = buf, .len = len};
    if (len > 0)
        buf[0] = '\0';
    if (cfg == NULL)
        return 0;
    listeners(&w, cfg);
    pools(&w, cfg);
    services(&w, cfg);
    limits(&w, cfg);
    mark_cut(&w);
    return w.need;
}
