/*
 * Tests for gateway/policy/route.c. The config is filled by hand (no YAML):
 * a golden table of (Host, path) -> (service, route) or no match.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/route.h"

#define ROUTE(h, p) {.host = (char *)(h), .path_prefix = (char *)(p)}

/* service 0 "api" */
static sl_cfg_route_t api_routes[] = {
    ROUTE("api.example.com", "/"),          /* 0 */
    ROUTE("api.example.com", "/v2"),        /* 1 */
    ROUTE("api.example.com", "/v2/admin/"), /* 2 */
    ROUTE("[::1]", "/"),                    /* 3 */
    ROUTE("API.Example.com", "/v2"),        /* 4: same as 1, written later: never wins */
};
/* service 1 "wild" */
static sl_cfg_route_t wild_routes[] = {
    ROUTE("*.example.com", "/"),            /* 0 */
    ROUTE("*.eu.example.com", "/"),         /* 1 */
    ROUTE("10.0.0.1", "/ws"),               /* 2 */
};
/* service 2 "fallback" */
static sl_cfg_route_t any_routes[] = {
    ROUTE("*", "/"),                        /* 0 */
    ROUTE("*", "/static"),                  /* 1 */
    ROUTE(NULL, "/legacy"),                 /* 2: no host means "*" */
};

static sl_cfg_service_t services[] = {
    {.name = (char *)"api", .routes = api_routes, .n_routes = SL_ARRAY_SIZE(api_routes)},
    {.name = (char *)"wild", .routes = wild_routes, .n_routes = SL_ARRAY_SIZE(wild_routes)},
    {.name = (char *)"fallback", .routes = any_routes, .n_routes = SL_ARRAY_SIZE(any_routes)},
};

static const sl_config_t cfg = {.services = services, .n_services = SL_ARRAY_SIZE(services)};

typedef struct golden {
    const char *host;
    const char *path;
    int rc;
    long service, route;
} golden_t;

static const golden_t table[] = {
    {"api.example.com", "/", 0, 0, 0},
    {"api.example.com", "/x", 0, 0, 0},
    {"api.example.com", "/v2", 0, 0, 1},
    {"api.example.com", "/v2/users?id=3", 0, 0, 1},
    {"api.example.com", "/v2?q=1", 0, 0, 1},
    {"api.example.com", "/v20", 0, 0, 0},           /* prefixes match whole segments */
    {"api.example.com", "/v2/admin/x", 0, 0, 2},    /* longest prefix */
    {"api.example.com", "/v2/admin", 0, 0, 1},      /* "/v2/admin/" needs the slash */
    {"API.EXAMPLE.COM", "/v2", 0, 0, 1},            /* case-insensitive host */
    {"api.example.com:8443", "/v2", 0, 0, 1},       /* port ignored */
    {"api.example.com.", "/", 0, 0, 0},             /* trailing dot */
    {"www.example.com", "/", 0, 1, 0},              /* wildcard */
    {"a.b.example.com", "/x", 0, 1, 0},
    {"x.eu.example.com", "/", 0, 1, 1},             /* longer suffix wins */
    {"X.EU.Example.Com:80", "/", 0, 1, 1},
    {"example.com", "/", 0, 2, 0},                  /* "*.example.com" needs a label */
    {"other.org", "/", 0, 2, 0},                    /* catch-all */
    {"other.org", "/static/app.js", 0, 2, 1},
    {"other.org", "/legacy", 0, 2, 2},
    {"", "/", 0, 2, 0},                             /* no Host (HTTP/1.0) */
    {"[::1]:8080", "/chat", 0, 0, 3},               /* IPv6 literal with port */
    {"[::1]", "/", 0, 0, 3},
    {"::1", "/", 0, 0, 3},                          /* bare IPv6 literal */
    {"[::2]:8080", "/", 0, 2, 0},
    {"10.0.0.1:9000", "/ws", 0, 1, 2},
    {"10.0.0.1", "/wss", 0, 2, 0},                  /* path falls through to "*" */
    /* Other spellings of a path reach its route (they fell through to "/"). */
    {"api.example.com", "/%76%32/admin/x", 0, 0, 2},  /* %76%32 is "v2" */
    {"api.example.com", "/x/../v2/admin/y", 0, 0, 2},
    {"api.example.com", "//v2//admin//y", 0, 0, 2},
    {"api.example.com", "/v2/./admin/y?q", 0, 0, 2},
    {"api.example.com", "/v2/%2E%2E/v2/admin/", 0, 0, 2},
    {"api.example.com", "/v2/admin/..", 0, 0, 1},   /* "/v2/" */
    {"api.example.com", "/v2%2Fadmin/x", 0, 0, 0},  /* "/" encoded stays data: "/v2%2Fadmin" */
    {"api.example.com", "/v2/admin%2Fx", 0, 0, 1},
    {"10.0.0.1", "/%77s", 0, 1, 2},
};

static void test_golden(void **state)
{
    sl_router_t *r = sl_router_new(&cfg);
    assert_non_null(r);
    for (size_t i = 0; i < SL_ARRAY_SIZE(table); i++) {
        const golden_t *g = &table[i];
        sl_route_match_t m = {-1, -1};
        int rc = sl_router_match(r, g->host, strlen(g->host), g->path, strlen(g->path), &m);
        if (rc != g->rc || m.service != g->service || m.route != g->route)
            print_error("%s %s: rc %d service %ld route %ld\n", g->host, g->path, rc, m.service,
                        m.route);
        assert_int_equal(rc, g->rc);
        assert_int_equal(m.service, g->service);
        assert_int_equal(m.route, g->route);
    }
    sl_router_free(r);
}

static void test_path_normalize(void **state)
{
    static const struct { const char *in, *out; } cases[] = {
        {"/", "/"}, {"/a/b", "/a/b"}, {"/a/b?x=/../y", "/a/b"}, {"/a#f", "/a"},
        {"/%61dmin", "/admin"}, {"/%41%7a%2D%2e%5F%7E", "/Az-._~"},
        {"/a%2Fb", "/a%2Fb"}, {"/a%20b", "/a%20b"}, {"/%zz", "/%zz"}, {"/%4", "/%4"},
        {"/%", "/%"}, {"//a///b//", "/a/b/"}, {"/.", "/"}, {"/..", "/"}, {"/../a", "/a"},
        {"/a/.", "/a/"}, {"/a/..", "/"}, {"/a/b/../c", "/a/c"}, {"/a/./b/./", "/a/b/"},
        {"/a/b/../../../c", "/c"}, {"/a/..b", "/a/..b"}, {"/a/.b/", "/a/.b/"},
        {"/a/%2e%2E/b", "/b"}, {"/a/.%2e", "/"}, {"*", "*"}, {"", ""},
        {"example.com:443", "example.com:443"},
    };
    char out[64];
    for (size_t i = 0; i < SL_ARRAY_SIZE(cases); i++) {
        size_t n = sl_route_path_normalize(cases[i].in, strlen(cases[i].in), out);
        if (n != strlen(cases[i].out) || memcmp(out, cases[i].out, n) != 0)
            print_error("%s -> %.*s, want %s\n", cases[i].in, (int)n, out, cases[i].out);
        assert_int_equal(n, strlen(cases[i].out));
        assert_memory_equal(out, cases[i].out, n);
    }
}

static void test_no_match(void **state)
{
    /* Without a catch-all, unknown hosts and paths are SL_ENOENT (404). */
    sl_cfg_service_t only[] = {
        {.routes = api_routes, .n_routes = 3},
        {.routes = wild_routes + 2, .n_routes = 1},
    };
    sl_config_t c = {.services = only, .n_services = 2};
    sl_router_t *r = sl_router_new(&c);
    assert_non_null(r);
    static const struct { const char *host, *path; } miss[] = {
        {"other.org", "/"}, {"", "/"}, {"api.example.com.evil", "/"},
        {"evilapi.example.com", "/"}, {"10.0.0.1", "/"}, {"10.0.0.1", "/wsx"},
        {"api.example.com", ""}, {"api.example.com", "*"},
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(miss); i++) {
        sl_route_match_t m = {-1, -1};
        assert_int_equal(sl_router_match(r, miss[i].host, strlen(miss[i].host), miss[i].path,
                                         strlen(miss[i].path), &m), SL_ENOENT);
        assert_int_equal(m.service, -1);
    }
    sl_route_match_t m;
    assert_int_equal(sl_router_match(r, "api.example.com", 15, "/", 1, &m), 0);
    /* Host and path are spans, not strings: bytes past the length are not read. */
    assert_int_equal(sl_router_match(r, "api.example.comXX", 15, "/v2X", 3, &m), 0);
    assert_int_equal(m.route, 1);
    assert_int_equal(sl_router_match(r, NULL, 0, "/", 1, &m), SL_ENOENT);
    sl_router_free(r);
}

static void test_empty_config(void **state)
{
    sl_config_t c = {0};
    sl_router_t *r = sl_router_new(&c);
    assert_non_null(r);
    sl_route_match_t m;
    assert_int_equal(sl_router_match(r, "a", 1, "/", 1, &m), SL_ENOENT);
    sl_router_free(r);
    sl_router_free(NULL);
}

static void test_router_outlives_config(void **state)
{
    char host[] = "svc.example.com";
    char prefix[] = "/p";
    sl_cfg_route_t routes[] = {{.host = host, .path_prefix = prefix}};
    sl_cfg_service_t svc[] = {{.routes = routes, .n_routes = 1}};
    sl_config_t c = {.services = svc, .n_services = 1};
    sl_router_t *r = sl_router_new(&c);
    assert_non_null(r);
    memset(host, 'x', sizeof host - 1);   /* the config changes (or is freed) */
    memset(prefix, 'x', sizeof prefix - 1);
    sl_route_match_t m;
    assert_int_equal(sl_router_match(r, "svc.example.com", 15, "/p/1", 4, &m), 0);
    sl_router_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_path_normalize),
        cmocka_unit_test(test_no_match),
        cmocka_unit_test(test_empty_config),
        cmocka_unit_test(test_router_outlives_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
