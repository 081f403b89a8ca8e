/*
 * Tests for gateway/proto/pathmatch.c: literal and {param} segments, percent
 * decoding (and the escapes that must not match), the parameter and scratch
 * limits, and paths that differ only at the edges (trailing slash, empty
 * segment, prefix).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/pathmatch.h"

#define POOL "/api/v1/pools/{pool}/backends/{backend}"

typedef struct {
    const char *params[4];
    size_t n;
    char scratch[64];
} got_t;

static bool m(const char *pattern, const char *path, got_t *g)
{
    memset(g, 0x5a, sizeof *g);
    return sl_path_match(pattern, path, g->params, 4, &g->n, g->scratch, sizeof g->scratch);
}

static void test_literals(void **state)
{
    (void)state;
    got_t g;
    assert_true(m("/api/v1/status", "/api/v1/status", &g));
    assert_int_equal(g.n, 0);
    assert_true(m("/", "/", &g));
    assert_false(m("/api/v1/status", "/api/v1/statu", &g));
    assert_false(m("/api/v1/status", "/api/v1/status/", &g));
    assert_false(m("/api/v1/status", "/api/v1/statusx", &g));
    assert_false(m("/api/v1/status", "/api/v1", &g));
    assert_false(m("/api/v1/status", "/api//v1/status", &g));
    assert_false(m("/api/v1/status", "api/v1/status", &g));
    assert_false(m("/api/v1/status", "", &g));
    /* Literal segments are compared as sent: no decoding outside {params}. */
    assert_false(m("/api/v1/status", "/api/v1/st%61tus", &g));
}

static void test_params(void **state)
{
    (void)state;
    got_t g;
    assert_true(m(POOL, "/api/v1/pools/blue/backends/b-1", &g));
    assert_int_equal(g.n, 2);
    assert_string_equal(g.params[0], "blue");
    assert_string_equal(g.params[1], "b-1");
    /* One segment each: never empty, never spanning a slash. */
    assert_false(m(POOL, "/api/v1/pools//backends/b-1", &g));
    assert_false(m(POOL, "/api/v1/pools/blue/backends/", &g));
    assert_false(m(POOL, "/api/v1/pools/blue/green/backends/b-1", &g));
    assert_false(m(POOL, "/api/v1/pools/blue/backends/b-1/x", &g));
    /* "{}" is a literal segment, not a parameter. */
    assert_true(m("/a/{}", "/a/{}", &g));
    assert_false(m("/a/{}", "/a/x", &g));
}

static void test_percent_decoding(void **state)
{
    (void)state;
    got_t g;
    assert_true(m(POOL, "/api/v1/pools/a%2Fb/backends/%41%62c", &g));
    assert_string_equal(g.params[0], "a/b");
    assert_string_equal(g.params[1], "Abc");
    assert_true(m("/x/{v}", "/x/%7e%7E", &g));
    assert_string_equal(g.params[0], "~~");
    /* Bad escapes: short at the end, non-hex, and the encoded NUL. */
    assert_false(m("/x/{v}", "/x/a%4", &g));
    assert_false(m("/x/{v}", "/x/a%", &g));
    assert_false(m("/x/{v}", "/x/%4/", &g));
    assert_false(m("/x/{v}", "/x/%zz", &g));
    assert_false(m("/x/{v}", "/x/%g1", &g));
    assert_false(m("/x/{v}", "/x/a%00b", &g));
    /* A "%" run shorter than the segment is no escape reaching the next one. */
    assert_false(m("/x/{v}/y", "/x/%4/y", &g));
}

static void test_limits(void **state)
{
    (void)state;
    const char *params[2];
    size_t n;
    char scratch[8];
    /* Two parameters fit; a third does not. */
    assert_true(sl_path_match("/{a}/{b}", "/x/y", params, 2, &n, scratch, sizeof scratch));
    assert_int_equal(n, 2);
    assert_false(sl_path_match("/{a}/{b}/{c}", "/x/y/z", params, 2, &n, scratch, sizeof scratch));
    /* Scratch holds each raw segment plus its NUL: 7 + 1 fits, 8 + 1 does not. */
    assert_true(sl_path_match("/{a}", "/abcdefg", params, 2, &n, scratch, sizeof scratch));
    assert_string_equal(params[0], "abcdefg");
    assert_false(sl_path_match("/{a}", "/abcdefgh", params, 2, &n, scratch, sizeof scratch));
    /* Decoded parameters are packed: "%41%42" takes 3 bytes, not 7. */
    assert_true(sl_path_match("/{a}/{b}", "/%41%42/cd", params, 2, &n, scratch, sizeof scratch));
    assert_string_equal(params[0], "AB");
    assert_string_equal(params[1], "cd");
    assert_ptr_equal(params[1], scratch + 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literals),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_percent_decoding),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
