/*
 * gateway/config/validate.c: the rules that involve more than one key.
 *
 * The table walk (load.c) checks each value alone: its type, unit and
 * bounds. What is left is what only makes sense across keys: names that
 * must refer to something, addresses that must not repeat, pairs that must
 * be ordered. Each message points at the value the user should change, via
 * the positions load.c remembered for every stored field; a value that was
 * never written (a default) is reported at its parent mapping.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sluice/wsframe.h"
#include "internal.h"

/* Where field was written, or `fallback` when it holds its default. */
static sl_cfg_pos_t at(const sl__cfg_ctx_t *c, const void *field, sl_cfg_pos_t fallback)
{
    sl_cfg_pos_t p = sl__cfg_where(c, field);
    if (p.line == 0)
        p = fallback.line ? fallback : (sl_cfg_pos_t){1, 1};
    return p;
}

/* A name from the file, fit for a key path: no control bytes, no quotes. */
static const char *safe(char *buf, size_t len, const char *s)
{
    sl__quote(buf, len, s, strlen(s), 60);
    buf[strlen(buf) - 1] = '\0';
    return buf + 1;
}

/* An IP literal's bytes (16, IPv4 as ::ffff:a.b.c.d); false for a name. */
static bool ip_bytes(const char *host, unsigned char out[16])
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (inet_pton(AF_INET6, host, out) == 1)
        return true;
    memcpy(out, mapped, sizeof mapped);
    return inet_pton(AF_INET, host, out + 12) == 1;
}

/* The same address however it is spelled: "[::1]" and "[0:0::1]" are one
   socket address, and host names do not care about case. Names that
   resolve to the same address are the shell's to find (no I/O here). */
bool sl__cfg_same_addr(const sl_cfg_addr_t *a, const sl_cfg_addr_t *b)
{
    unsigned char x[16], y[16];
    if (a->host == NULL || b->host == NULL || a->port != b->port)
        return false;
    if (ip_bytes(a->host, x) && ip_bytes(b->host, y))
        return memcmp(x, y, sizeof x) == 0;
    return strcasecmp(a->host, b->host) == 0;
}

/* Port 0 and repeats among addrs[0..i-1]; `what` names the kind of address. */
static void check_addr(sl__cfg_ctx_t *c, const sl_cfg_addr_t *a, const sl_cfg_addr_t *prev,
                       size_t stride, size_t i, const char *path, const char *what)
{
    if (a->host == NULL)
        return;   /* missing or bad: already reported */
    sl_cfg_pos_t p = at(c, a, a->pos);
    if (a->port == 0) {
        /* Said as the parser says 99999: the port, not the address, is wrong. */
        sl__cfg_error(c, p.line, p.col, path, "port out of range (expected 1..65535, got 0)");
        return;
    }
    for (size_t j = 0; j < i; j++) {
        const sl_cfg_addr_t *b = (const sl_cfg_addr_t *)((const char *)prev + j * stride);
        if (sl__cfg_same_addr(a, b)) {
            sl_cfg_pos_t f = at(c, b, b->pos);
            sl__cfg_error(c, p.line, p.col, path, "duplicate %s address %s (first at %u:%u)",
                          what, a->text, f.line, f.col);
            return;
        }
    }
}

/* TLS settings that the table cannot judge alone. The files themselves are
   read by the shell (sl_tls_check): this layer does no I/O. */
static void check_listener_tls(sl__cfg_ctx_t *c, const sl_cfg_listener_t *l, size_t i)
{
    char path[160];
    const sl_cfg_listener_tls_t *t = &l->tls;
    if (!t->enabled)
        return;
    if (t->min_version && strcmp(t->min_version, "TLSv1.2") != 0 &&
        strcmp(t->min_version, "TLSv1.3") != 0) {
        sl_cfg_pos_t p = at(c, &t->min_version, l->pos);
        snprintf(path, sizeof path, "listeners[%zu].tls.min_version", i);
        sl__cfg_error(c, p.line, p.col, path, "expected TLSv1.2 or TLSv1.3");
    }
}

/* An IP literal's family and whether it is that family's wildcard; 0 for a name. */
static int ip_family(const char *host, bool *any)
{
    unsigned char b[16];
    static const unsigned char zero[16];
    if (inet_pton(AF_INET, host, b) == 1) {
        *any = memcmp(b, zero, 4) == 0;
        return AF_INET;
    }
    if (inet_pton(AF_INET6, host, b) == 1) {
        *any = memcmp(b, zero, 16) == 0;
        return AF_INET6;
    }
    return 0;
}

/* A wildcard and an address of its family on one port: the start refused it
   (the wildcard holds the port for all of them) after --check said ok. IPv6
   listeners are IPv6-only, so [::] beside an IPv4 address is fine. */
static void check_wildcard_overlap(sl__cfg_ctx_t *c, const sl_config_t *cfg, size_t i,
                                   const char *path)
{
    const sl_cfg_addr_t *a = &cfg->listeners[i].address;
    bool a_any, b_any;
    int fa = a->host ? ip_family(a->host, &a_any) : 0;
    for (size_t j = 0; fa && j < i; j++) {
        const sl_cfg_addr_t *b = &cfg->listeners[j].address;
        if (b->host == NULL || b->port != a->port || ip_family(b->host, &b_any) != fa ||
            !(a_any || b_any) || sl__cfg_same_addr(a, b))
            continue;
        sl_cfg_pos_t p = at(c, a, a->pos), f = at(c, b, b->pos);
        sl__cfg_error(c, p.line, p.col, path,
                      "%s overlaps listeners[%zu] %s (at %u:%u): a wildcard address takes its "
                      "port for every address of its family; expected one listener, or "
                      "another port", a->text, j, b->text, f.line, f.col);
        return;
    }
}

static void check_listeners(sl__cfg_ctx_t *c, sl_config_t *cfg)
{
    char path[160];
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        sl_cfg_listener_t *l = &cfg->listeners[i];
        snprintf(path, sizeof path, "listeners[%zu].address", i);
        l->address.pos = at(c, &l->address, l->pos);
        check_addr(c, &l->address, &cfg->listeners[0].address, sizeof *l, i, path, "listener");
        check_wildcard_overlap(c, cfg, i, path);
        check_listener_tls(c, l, i);
    }
}

/* Backend TLS keys that the table cannot judge alone; the CA file itself is
   read by the shell (sl_tls_check). A TLS key on a plain pool would be
   silently ignored, so it is refused. */
static void check_pool_tls(sl__cfg_ctx_t *c, const sl_cfg_pool_t *p)
{
    static const char *const names[] = {"tls_verify", "tls_ca_file", "tls_sni"};
    const void *fields[] = {&p->tls_verify, &p->tls_ca_file, &p->tls_sni};
    char path[600], nb[96];
    for (size_t k = 0; !p->tls && k < SL_ARRAY_SIZE(fields); k++) {
        sl_cfg_pos_t pos = sl__cfg_where(c, fields[k]);
        if (pos.line == 0)
            continue;
        snprintf(path, sizeof path, "pools.%s.%s", safe(nb, sizeof nb, p->name), names[k]);
        sl__cfg_error(c, pos.line, pos.col, path, "only used with tls: true (this pool is plain)");
    }
    /* SNI carries a name without its trailing dot (RFC 6066 3): sent with
       it, the name was also verified with it, and every handshake failed. */
    size_t sni = p->tls_sni ? strlen(p->tls_sni) : 0;
    if (p->tls_sni && (sni == 0 || sni > 253 || p->tls_sni[sni - 1] == '.' ||
                       strpbrk(p->tls_sni, " \t/:@") != NULL)) {
        sl_cfg_pos_t pos = at(c, &p->tls_sni, p->pos);
        snprintf(path, sizeof path, "pools.%s.tls_sni", safe(nb, sizeof nb, p->name));
        sl__cfg_error(c, pos.line, pos.col, path,
                      "expected a host name (at most 253 bytes, no trailing dot)");
    }
    if (p->tls_ca_file && p->tls_ca_file[0] == '\0') {
        sl_cfg_pos_t pos = at(c, &p->tls_ca_file, p->pos);
        snprintf(path, sizeof path, "pools.%s.tls_ca_file", safe(nb, sizeof nb, p->name));
        sl__cfg_error(c, pos.line, pos.col, path, "expected a file name, or null for the system's");
    }
}

/* The check's request target goes into its request line as written: an
   origin-form path of visible ASCII, of a length the probe's buffer takes
   (a path without "/" or with a space got the backend's 400, a long one was
   cut before the head's end and timed out: the pool went down either way). */
#define HEALTH_PATH_MAX 256

static void check_health_path(sl__cfg_ctx_t *c, const sl_cfg_pool_t *p)
{
    const char *hp = p->health.path;
    if (hp == NULL)
        return;
    size_t len = strlen(hp);
    bool ok = hp[0] == '/' && len <= HEALTH_PATH_MAX;
    for (size_t i = 0; ok && i < len; i++)
        ok = hp[i] > 0x20 && hp[i] < 0x7f;
    if (ok)
        return;
    char path[600], nb[96], q[96];
    sl_cfg_pos_t pos = at(c, &p->health.path, p->pos);
    snprintf(path, sizeof path, "pools.%s.health.path", safe(nb, sizeof nb, p->name));
    sl__quote(q, sizeof q, hp, len, 60);
    sl__cfg_error(c, pos.line, pos.col, path,
                  "expected a path starting with \"/\", of visible ASCII (no spaces: "
                  "percent-encode them), at most %d bytes (got %s)", HEALTH_PATH_MAX, q);
}

static void check_pools(sl__cfg_ctx_t *c, sl_config_t *cfg)
{
    char path[600], nb[96];
    for (size_t i = 0; i < cfg->n_pools; i++) {
        sl_cfg_pool_t *p = &cfg->pools[i];
        /* The admission metrics label a service's own queue queue="service"
           and a pool's own queue with the pool's name: a pool of that name
           made two series of one, and a scrape that refuses the page. */
        if (p->name && strcmp(p->name, "service") == 0) {
            sl_cfg_pos_t pos = at(c, NULL, p->pos);
            sl__cfg_error(c, pos.line, pos.col, "pools.service",
                          "the pool name \"service\" is reserved (the admission metrics "
                          "label a service's own queue queue=\"service\"); expected another name");
        }
        if (p->n_backends == 0 && !sl__cfg_is_bad(c, p)) {
            sl_cfg_pos_t pos = at(c, NULL, p->pos);
            snprintf(path, sizeof path, "pools.%s", safe(nb, sizeof nb, p->name));
            sl__cfg_error(c, pos.line, pos.col, path,
                          "pool has no backends (expected at least one in backends)");
        }
        if (p->n_backends > 256) {
            sl_cfg_pos_t pos = at(c, NULL, p->pos);
            snprintf(path, sizeof path, "pools.%s.backends", safe(nb, sizeof nb, p->name));
            sl__cfg_error(c, pos.line, pos.col, path, "too many backends (expected at most 256)");
        }
        if (p->balance == SL_BALANCE_HASH && p->hash_by != SL_HASH_BY_CLIENT_ADDRESS &&
            (p->hash_key == NULL || p->hash_key[0] == '\0')) {
            sl_cfg_pos_t pos = at(c, &p->hash_by, p->pos);
            snprintf(path, sizeof path, "pools.%s.hash_key", safe(nb, sizeof nb, p->name));
            sl__cfg_error(c, pos.line, pos.col, path,
                          "hash_by header or cookie needs the header or cookie name in hash_key");
        }
        /* hash_by and hash_key with any other balance, or a key that
           client_address does not read, would be silently ignored. */
        if (p->balance != SL_BALANCE_HASH && p->hash_by != SL_HASH_BY_CLIENT_ADDRESS) {
            sl_cfg_pos_t pos = at(c, &p->hash_by, p->pos);
            snprintf(path, sizeof path, "pools.%s.hash_by", safe(nb, sizeof nb, p->name));
            sl__cfg_error(c, pos.line, pos.col, path, "only used with balance: hash");
        }
        if (p->hash_key != NULL &&
            (p->balance != SL_BALANCE_HASH || p->hash_by == SL_HASH_BY_CLIENT_ADDRESS)) {
            sl_cfg_pos_t pos = at(c, &p->hash_key, p->pos);
            snprintf(path, sizeof path, "pools.%s.hash_key", safe(nb, sizeof nb, p->name));
            sl__cfg_error(c, pos.line, pos.col, path,
                          "only used with balance: hash and hash_by header or cookie");
        }
        check_health_path(c, p);
        check_pool_tls(c, p);
        for (size_t j = 0; j < p->n_backends; j++) {
            sl_cfg_backend_t *b = &p->backends[j];
            snprintf(path, sizeof path, "pools.%s.backends[%zu].address", safe(nb, sizeof nb, p->name), j);
            b->address.pos = at(c, &b->address, p->pos);
            check_addr(c, &b->address, &p->backends[0].address, sizeof *b, j, path, "backend");
        }
    }
}

/* A pool whose name is a near miss: two edits at most, and fewer than half
   the name ("gren" -> "green"; "zz" is not a near miss of "p"). */
static void pool_suggestion(const sl_config_t *cfg, const char *name, char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t i = 0; i < cfg->n_pools; i++) {
        unsigned d = sl__edit_distance(name, cfg->pools[i].name);
        if (d <= 2 && d <= strlen(name) / 2) {
            char q[96];
            sl__quote(q, sizeof q, cfg->pools[i].name, strlen(cfg->pools[i].name), 60);
            snprintf(buf, len, " (did you mean %s?)", q);
            return;
        }
    }
}

static void resolve_pools(sl__cfg_ctx_t *c, const sl_config_t *cfg, sl_cfg_service_t *s)
{
    char path[600], hint[128], q[96], nb[96];
    s->pools = calloc(s->n_pools ? s->n_pools : 1, sizeof *s->pools);
    if (s->pools == NULL)
        return;
    for (size_t i = 0; i < s->n_pools; i++) {
        const char *name = s->pool_names[i];
        if (name == NULL)
            continue;
        sl_cfg_pos_t p = at(c, &s->pool_names[i], s->pos);
        long idx = sl_config_pool_index(cfg, name);
        snprintf(path, sizeof path, "services.%s.pools[%zu]", safe(nb, sizeof nb, s->name), i);
        sl__quote(q, sizeof q, name, strlen(name), 60);
        if (idx < 0) {
            pool_suggestion(cfg, name, hint, sizeof hint);
            sl__cfg_error(c, p.line, p.col, path, "unknown pool %s%s", q, hint);
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            if (s->pool_names[j] != NULL && strcmp(s->pool_names[j], name) == 0) {
                sl_cfg_pos_t f = at(c, &s->pool_names[j], s->pos);
                sl__cfg_error(c, p.line, p.col, path, "pool %s is listed twice (first at %u:%u)",
                              q, f.line, f.col);
                break;
            }
        }
        s->pools[i] = (size_t)idx;
    }
}

static void resolve_active(sl__cfg_ctx_t *c, sl_cfg_service_t *s)
{
    char path[600], list[256] = "", q[96], nb[96];
    size_t o = 0;
    if (s->active_name == NULL) {
        if (s->n_pools > 0 && s->pool_names[0] != NULL) {
            s->active = s->pools[0];
            s->active_name = strdup(s->pool_names[0]);
        }
        return;
    }
    if (s->n_pools == 0)
        return;   /* `pools` missing or empty: already reported */
    for (size_t i = 0; i < s->n_pools; i++) {
        if (s->pool_names[i] != NULL && strcmp(s->pool_names[i], s->active_name) == 0) {
            s->active = s->pools[i];
            return;
        }
        if (s->pool_names[i] != NULL && o < sizeof list)
            o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", o ? ", " : "",
                                  safe(nb, sizeof nb, s->pool_names[i]));
    }
    sl_cfg_pos_t p = at(c, &s->active_name, s->pos);
    snprintf(path, sizeof path, "services.%s.active", safe(nb, sizeof nb, s->name));
    sl__quote(q, sizeof q, s->active_name, strlen(s->active_name), 60);
    sl__cfg_error(c, p.line, p.col, path, "%s is not one of this service's pools (expected one of %s)",
                  q, list);
}

static void check_routes(sl__cfg_ctx_t *c, const sl_config_t *cfg, size_t si)
{
    const sl_cfg_service_t *s = &cfg->services[si];
    char path[600], q[96], nb[96], ob[96];
    const char *sn = safe(nb, sizeof nb, s->name);
    for (size_t i = 0; i < s->n_routes; i++) {
        const sl_cfg_route_t *r = &s->routes[i];
        if (r->host == NULL || r->path_prefix == NULL)
            continue;
        sl_cfg_pos_t hp = at(c, &r->host, r->pos), pp = at(c, &r->path_prefix, r->pos);
        snprintf(path, sizeof path, "services.%s.routes[%zu].host", sn, i);
        sl__quote(q, sizeof q, r->host, strlen(r->host), 60);
        if (!sl__route_host_ok(r->host))
            sl__cfg_error(c, hp.line, hp.col, path,
                          "bad host (expected \"*\", \"*.example.com\" or a host name, got %s)", q);
        snprintf(path, sizeof path, "services.%s.routes[%zu].path_prefix", sn, i);
        sl__quote(q, sizeof q, r->path_prefix, strlen(r->path_prefix), 60);
        if (r->path_prefix[0] != '/')
            sl__cfg_error(c, pp.line, pp.col, path, "bad path prefix (expected a path starting "
                          "with \"/\", got %s)", q);
        /* The same host and prefix earlier, in this service or another one. */
        for (size_t sj = 0; sj <= si; sj++) {
            const sl_cfg_service_t *o = &cfg->services[sj];
            size_t end = sj == si ? i : o->n_routes;
            for (size_t j = 0; j < end; j++) {
                const sl_cfg_route_t *x = &o->routes[j];
                /* Hosts as the router matches them: without case (RFC 9110 4.2.3). */
                if (x->host == NULL || x->path_prefix == NULL ||
                    strcasecmp(x->host, r->host) != 0 ||
                    strcmp(x->path_prefix, r->path_prefix) != 0)
                    continue;
                snprintf(path, sizeof path, "services.%s.routes[%zu]", sn, i);
                sl__cfg_error(c, r->pos.line, r->pos.col, path,
                              "duplicate route (same host and path_prefix as "
                              "services.%s.routes[%zu] at %u:%u)", safe(ob, sizeof ob, o->name),
                              j, x->pos.line, x->pos.col);
                sj = si + 1;
                break;
            }
        }
    }
}

static void check_services(sl__cfg_ctx_t *c, sl_config_t *cfg)
{
    char path[600], nb[96];
    for (size_t i = 0; i < cfg->n_services; i++) {
        sl_cfg_service_t *s = &cfg->services[i];
        const char *sn = safe(nb, sizeof nb, s->name);
        resolve_pools(c, cfg, s);
        resolve_active(c, s);
        check_routes(c, cfg, i);
        const sl_cfg_admission_t *a = &s->admission;
        if (a->retry_after_min > a->retry_after_max) {
            sl_cfg_pos_t p = at(c, &a->retry_after_min, s->pos);
            snprintf(path, sizeof path, "services.%s.admission.retry_after.min", sn);
            sl__cfg_error(c, p.line, p.col, path, "must not exceed retry_after.max");
        }
        sl_cfg_pos_t cp = at(c, &s->drain.close_code, s->pos);
        snprintf(path, sizeof path, "services.%s.drain.close_code", sn);
        if (!sl__close_code_sendable(s->drain.close_code))
            sl__cfg_error(c, cp.line, cp.col, path, "close code %u cannot be sent (expected "
                          "1000-1003, 1007-1014 or 3000-4999)", s->drain.close_code);
        if (s->drain.reason != NULL && strlen(s->drain.reason) > SL_WS_MAX_CLOSE_REASON) {
            sl_cfg_pos_t rp = at(c, &s->drain.reason, s->pos);
            snprintf(path, sizeof path, "services.%s.drain.reason", sn);
            sl__cfg_error(c, rp.line, rp.col, path, "too long (expected at most 123 bytes)");
        }
    }
}

static void check_limits(sl__cfg_ctx_t *c, const sl_config_t *cfg)
{
    const sl_cfg_limits_t *l = &cfg->limits;
    if (l->write_low_water >= l->write_high_water) {
        char lo[32], hi[32];
        sl_cfg_pos_t p = at(c, &l->write_low_water, at(c, &l->write_high_water, (sl_cfg_pos_t){0}));
        sl__fmt_size(lo, sizeof lo, l->write_low_water);
        sl__fmt_size(hi, sizeof hi, l->write_high_water);
        sl__cfg_error(c, p.line, p.col, "limits.write_low_water",
                      "must be less than write_high_water (expected less than %s, got %s)", hi, lo);
    }
    if (l->frame_bytes > l->message_bytes) {
        sl_cfg_pos_t p = at(c, &l->frame_bytes, at(c, &l->message_bytes, (sl_cfg_pos_t){0}));
        sl__cfg_error(c, p.line, p.col, "limits.frame_bytes", "must not exceed message_bytes");
    }
    if (!sl__close_code_sendable(cfg->shutdown.close_code)) {
        sl_cfg_pos_t p = at(c, &cfg->shutdown.close_code, (sl_cfg_pos_t){0});
        sl__cfg_error(c, p.line, p.col, "shutdown.close_code", "close code %u cannot be sent "
                      "(expected 1000-1003, 1007-1014 or 3000-4999)", cfg->shutdown.close_code);
    }
}

/*
 * admin: remember where its keys were written, for the shell's checks of the
 * address and the files (sl_admin_check: they need I/O), and refuse an empty
 * file name here, where no I/O is needed to see it is wrong.
 */
static void check_admin(sl__cfg_ctx_t *c, sl_config_t *cfg)
{
    sl_cfg_admin_t *a = &cfg->admin;
    if (!a->enabled)
        return;
    a->address.pos = at(c, &a->address, a->pos);
    a->token_file_pos = at(c, &a->token_file, a->pos);
    a->state_file_pos = at(c, &a->state_file, a->pos);
    if (a->token_file != NULL && a->token_file[0] == '\0')
        sl__cfg_error(c, a->token_file_pos.line, a->token_file_pos.col, "admin.token_file",
                      "expected a file name (got \"\"; leave the key out for no token)");
    if (a->state_file != NULL && a->state_file[0] == '\0')
        sl__cfg_error(c, a->state_file_pos.line, a->state_file_pos.col, "admin.state_file",
                      "expected a file name (got \"\"; leave the key out to keep no state)");
}

static bool wildcard_host(const char *host)
{
    static const unsigned char any6[16], any4[16] = {[10] = 0xff, [11] = 0xff};
    unsigned char b[16];
    return host[0] == '\0' || (ip_bytes(host, b) && (memcmp(b, any6, 16) == 0 ||
                                                      memcmp(b, any4, 16) == 0));
}

/* The admin API on a listener's port: sluice failed at start with "Address
   already in use" after --check had said OK. Same port with the same host,
   or a wildcard on either side (the listeners share their port between
   workers, the admin socket does not). */
static void check_admin_clash(sl__cfg_ctx_t *c, const sl_config_t *cfg)
{
    const sl_cfg_addr_t *a = &cfg->admin.address;
    if (!cfg->admin.enabled || a->host == NULL)
        return;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const sl_cfg_addr_t *l = &cfg->listeners[i].address;
        if (l->host == NULL || l->port != a->port)
            continue;
        if (sl__cfg_same_addr(a, l) || wildcard_host(a->host) || wildcard_host(l->host)) {
            sl_cfg_pos_t p = at(c, a, a->pos), lp = at(c, l, l->pos);
            sl__cfg_error(c, p.line, p.col, "admin.address",
                          "%s is also listeners[%zu] (at %u:%u); expected a port of its own",
                          a->text, i, lp.line, lp.col);
            return;
        }
    }
}

void sl__cfg_validate(sl__cfg_ctx_t *c, sl_config_t *cfg)
{
    /* Kept for a reload that refuses a change to them (reload.c: no tree then). */
    cfg->workers_pos = at(c, &cfg->workers, (sl_cfg_pos_t){0});
    sl_cfg_access_log_t *al = &cfg->access_log;   /* a mapping: where one of its keys is */
    al->pos = at(c, &al->path, at(c, &al->format, at(c, &al->enabled, (sl_cfg_pos_t){0})));
    if (al->enabled && al->path != NULL && al->path[0] == '\0')
        sl__cfg_error(c, al->pos.line, al->pos.col, "access_log.path",
                      "expected a file name (got \"\"; leave path out, or null, for standard "
                      "output)");
    check_admin(c, cfg);
    check_listeners(c, cfg);
    check_admin_clash(c, cfg);
    check_pools(c, cfg);
    check_services(c, cfg);
    check_limits(c, cfg);
}
