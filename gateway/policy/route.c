/*
 * route.c: from a request's Host and path to a service.
 *
 * Why a flat table and a scan: a gateway has tens of routes, not thousands,
 * and one pass that scores every route is short, obviously right, and keeps
 * the rule in one place: the most specific host class wins (exact, then the
 * longest "*.suffix", then "*"), then the longest path prefix, then the route
 * written first. A route whose path does not match never wins on its host, so
 * "api.example.com /v1" plus "* /" sends api.example.com/other to the
 * catch-all instead of answering 404.
 *
 * Path prefixes match whole segments: "/api" takes "/api", "/api/x" and
 * "/api?q" but not "/apix"; a prefix ending in "/" takes everything under it.
 * They match the path normalized (percent-encoded unreserved characters
 * decoded, "//" as "/", dot segments resolved): "/%61dmin", "/x/../admin"
 * and "//admin" are "/admin" to the backend, so they must be to the routes,
 * or a route that sets another service, or admission, could be walked
 * around. The target itself goes to the backend as it came.
 * Hosts are compared without case, port, brackets or a trailing dot, so
 * "[::1]:8080" matches a route for "::1" or "[::1]".
 *
 * The router copies what it needs from the config, so it outlives a reload
 * that frees the old config, and is read-only after sl_router_new (workers
 * share it without locks).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sluice/route.h"

enum { HOST_ANY = 1, HOST_SUFFIX = 2, HOST_EXACT = 3 };

typedef struct entry {
    long service;
    long route;
    int kind;
    char *host;          /* exact: the name; suffix: ".example.com"; any: NULL */
    size_t host_len;
    char *prefix;
    size_t prefix_len;
} entry_t;

struct sl_router {
    entry_t *entries;
    size_t n;
};

/* Host without port, brackets or trailing dot, as a slice of the input. */
static void host_core(const char *h, size_t n, const char **out, size_t *out_len)
{
    if (n > 0 && h[0] == '[') {
        const char *close = memchr(h, ']', n);
        size_t end = close ? (size_t)(close - h) : n;
        *out = h + 1;
        *out_len = end - 1;
        return;
    }
    const char *colon = memchr(h, ':', n);
    if (colon != NULL && memchr(colon + 1, ':', n - (size_t)(colon - h) - 1) == NULL)
        n = (size_t)(colon - h);    /* one colon: a port; more: a bare IPv6 literal */
    if (n > 0 && h[n - 1] == '.')
        n--;
    *out = h;
    *out_len = n;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static int add_entry(entry_t *e, long service, long route, const sl_cfg_route_t *r)
{
    const char *host = r->host != NULL && r->host[0] != '\0' ? r->host : "*";
    const char *prefix = r->path_prefix != NULL && r->path_prefix[0] != '\0' ? r->path_prefix : "/";
    e->service = service;
    e->route = route;
    if (strcmp(host, "*") == 0) {
        e->kind = HOST_ANY;
    } else if (host[0] == '*' && host[1] == '.') {
        e->kind = HOST_SUFFIX;
        e->host = dup_n(host + 1, strlen(host + 1));
        e->host_len = strlen(host + 1);
    } else {
        const char *core;
        size_t core_len;
        host_core(host, strlen(host), &core, &core_len);
        e->kind = HOST_EXACT;
        e->host = dup_n(core, core_len);
        e->host_len = core_len;
    }
    e->prefix = dup_n(prefix, strlen(prefix));
    e->prefix_len = strlen(prefix);
    return (e->kind != HOST_ANY && e->host == NULL) || e->prefix == NULL ? SL_ENOMEM : 0;
}

sl_router_t *sl_router_new(const sl_config_t *cfg)
{
    sl_router_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    size_t total = 0;
    for (size_t s = 0; s < cfg->n_services; s++)
        total += cfg->services[s].n_routes;
    r->entries = calloc(total ? total : 1, sizeof *r->entries);
    if (r->entries == NULL) {
        free(r);
        return NULL;
    }
    for (size_t s = 0; s < cfg->n_services; s++) {
        const sl_cfg_service_t *svc = &cfg->services[s];
        for (size_t i = 0; i < svc->n_routes; i++) {
            int rc = add_entry(&r->entries[r->n++], (long)s, (long)i, &svc->routes[i]);
            if (rc < 0) {
                sl_router_free(r);
                return NULL;
            }
        }
    }
    return r;
}

void sl_router_free(sl_router_t *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->entries[i].host);
        free(r->entries[i].prefix);
    }
    free(r->entries);
    free(r);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool unreserved(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

/* RFC 3986 5.2.4 over out[0..n), which starts with "/" and has no "//": in
   place (what is written never passes what was read). */
static size_t remove_dot_segments(char *out, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;   /* out[i] is '/': the segment is out[i + 1 .. j) */
        while (j < n && out[j] != '/')
            j++;
        size_t len = j - i - 1;
        bool dot = len == 1 && out[i + 1] == '.';
        bool dotdot = len == 2 && out[i + 1] == '.' && out[i + 2] == '.';
        if (dotdot)
            while (w > 0 && out[--w] != '/')
                ;   /* back to the start of the last segment written */
        if (dot || dotdot) {
            if (j == n)
                out[w++] = '/';   /* "/a/." and "/a/b/.." end in a directory */
        } else {
            memmove(out + w, out + i, j - i);
            w += j - i;
        }
        i = j;
    }
    if (w == 0)
        out[w++] = '/';
    return w;
}

size_t sl_route_path_normalize(const char *path, size_t n, char *out)
{
    size_t end = 0;
    while (end < n && path[end] != '?' && path[end] != '#')
        end++;
    if (end == 0 || path[0] != '/') {
        memcpy(out, path, end);
        return end;
    }
    /* A "%" that starts no escape ("%5%61") could make one of a decoded
       character ("%5a"): then nothing is decoded, so a second pass changes
       nothing. (The parser refuses such paths in requests: 400.) */
    bool decode = true;
    for (size_t i = 0; i < end && decode; i++)
        decode = path[i] != '%' ||
                 (i + 2 < end && hex_value(path[i + 1]) >= 0 && hex_value(path[i + 2]) >= 0);
    size_t o = 0;
    for (size_t i = 0; i < end; i++) {
        char c = path[i];
        int hi, lo;
        if (decode && c == '%' && (hi = hex_value(path[i + 1])) >= 0 &&
            (lo = hex_value(path[i + 2])) >= 0 && unreserved(hi * 16 + lo)) {
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '/' && o > 0 && out[o - 1] == '/')
            continue;
        out[o++] = c;
    }
    return remove_dot_segments(out, o);
}

/* Only such paths need the copy: "%", "//" or a segment starting with ".". */
static bool needs_normalizing(const char *p, size_t n)
{
    for (size_t i = 0; i < n && p[i] != '?' && p[i] != '#'; i++)
        if (p[i] == '%' || (p[i] == '/' && i + 1 < n && (p[i + 1] == '/' || p[i + 1] == '.')))
            return true;
    return false;
}

static bool host_matches(const entry_t *e, const char *h, size_t n)
{
    switch (e->kind) {
    case HOST_EXACT:
        return n == e->host_len && strncasecmp(h, e->host, n) == 0;
    case HOST_SUFFIX:
        return n > e->host_len && strncasecmp(h + n - e->host_len, e->host, e->host_len) == 0;
    default:
        return true;
    }
}

static bool path_matches(const entry_t *e, const char *path, size_t n)
{
    size_t pl = e->prefix_len;
    if (n < pl || memcmp(path, e->prefix, pl) != 0)
        return false;
    if (n == pl || e->prefix[pl - 1] == '/')
        return true;
    return path[pl] == '/' || path[pl] == '?' || path[pl] == '#';
}

/* Is a strictly more specific than b? (Equal: the earlier route stays.) */
static bool better(const entry_t *a, const entry_t *b)
{
    if (a->kind != b->kind)
        return a->kind > b->kind;
    if (a->kind == HOST_SUFFIX && a->host_len != b->host_len)
        return a->host_len > b->host_len;
    return a->prefix_len > b->prefix_len;
}

int sl_router_match(const sl_router_t *r, const char *host, size_t host_len,
                    const char *path, size_t path_len, sl_route_match_t *m)
{
    const char *h;
    size_t hn;
    host_core(host != NULL ? host : "", host != NULL ? host_len : 0, &h, &hn);
    char local[512], *norm = NULL;
    if (path != NULL && needs_normalizing(path, path_len)) {
        norm = path_len <= sizeof local ? local : malloc(path_len);
        if (norm == NULL)
            return SL_ENOMEM;
        path_len = sl_route_path_normalize(path, path_len, norm);
        path = norm;
    }
    const entry_t *best = NULL;
    for (size_t i = 0; i < r->n; i++) {
        const entry_t *e = &r->entries[i];
        if (!host_matches(e, h, hn) || !path_matches(e, path, path_len))
            continue;
        if (best == NULL || better(e, best))
            best = e;
    }
    if (norm != local)
        free(norm);
    if (best == NULL)
        return SL_ENOENT;
    m->service = best->service;
    m->route = best->route;
    return 0;
}
