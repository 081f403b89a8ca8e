/*
 * tests/unit/config/errors.c: every file in tests/config/bad/ must fail with
 * exactly the lines of its .expected file; every file in tests/config/good/
 * must load. The golden files are the specification of the messages users
 * read, so a change to a message shows up here as a diff.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/config.h"

#define BAD_DIR "tests/config/bad"
#define GOOD_DIR "tests/config/good"

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The lines of a file, without their newlines; NULL-terminated. */
static char **read_lines(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char **lines = calloc(256, sizeof *lines);
    char buf[2048];
    *n = 0;
    while (fgets(buf, sizeof buf, f) != NULL && *n < 255) {
        buf[strcspn(buf, "\n")] = '\0';
        lines[(*n)++] = strdup(buf);
    }
    fclose(f);
    return lines;
}

static void check_bad(const char *yaml)
{
    char expected_path[512];
    snprintf(expected_path, sizeof expected_path, "%.*s.expected", (int)(strlen(yaml) - 5), yaml);
    size_t n_expected;
    char **expected = read_lines(expected_path, &n_expected);
    sl_config_t *cfg = (sl_config_t *)1;
    sl_diag_t d = {0};
    int rc = sl_config_load(yaml, &cfg, &d);
    bool same = rc == SL_EINVAL && cfg == NULL && d.n == n_expected && n_expected > 0;
    for (size_t i = 0; same && i < d.n; i++)
        same = strcmp(d.lines[i], expected[i]) == 0;
    if (!same) {
        print_error("%s: rc %d, got %zu lines, expected %zu:\n", yaml, rc, d.n, n_expected);
        for (size_t i = 0; i < d.n; i++)
            print_error("  got:      %s\n", d.lines[i]);
        for (size_t i = 0; i < n_expected; i++)
            print_error("  expected: %s\n", expected[i]);
    }
    for (size_t i = 0; i < n_expected; i++)
        free(expected[i]);
    free(expected);
    sl_diag_free(&d);
    assert_true(same);
}

static size_t for_each_yaml(const char *dir, void (*fn)(const char *))
{
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, by_name);
    size_t count = 0;
    assert_true(n > 0);
    for (int i = 0; i < n; i++) {
        if (ends_with(ents[i]->d_name, ".yaml")) {
            char path[512];
            snprintf(path, sizeof path, "%s/%s", dir, ents[i]->d_name);
            fn(path);
            count++;
        }
        free(ents[i]);
    }
    free(ents);
    return count;
}

static void golden_bad_configs(void **state)
{
    (void)state;
    /* At least 30 distinct broken files, each with its exact report. */
    assert_true(for_each_yaml(BAD_DIR, check_bad) >= 30);
}

static void check_good(const char *yaml)
{
    sl_config_t *cfg = NULL;
    sl_diag_t d = {0};
    int rc = sl_config_load(yaml, &cfg, &d);
    for (size_t i = 0; i < d.n; i++)
        print_error("%s\n", d.lines[i]);
    assert_int_equal(rc, SL_OK);
    assert_int_equal(d.n, 0);
    assert_non_null(cfg);
    sl_config_free(cfg);
}

static void good_configs_load(void **state)
{
    (void)state;
    assert_true(for_each_yaml(GOOD_DIR, check_good) >= 2);
    check_good("config/sluice.yaml");
}

static void unreadable_file(void **state)
{
    (void)state;
    sl_config_t *cfg = (sl_config_t *)1;
    sl_diag_t d = {0};
    assert_int_equal(sl_config_load("tests/config/no-such-file.yaml", &cfg, &d), SL_EINVAL);
    assert_null(cfg);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.lines[0],
                        "tests/config/no-such-file.yaml: cannot read: No such file or directory");
    sl_diag_free(&d);
    assert_int_equal(sl_config_load("tests/config", &cfg, &d), SL_EINVAL);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.lines[0], "tests/config: cannot read: Is a directory");
    sl_diag_free(&d);
}

static void parse_errors_from_text(void **state)
{
    (void)state;
    /* The same report from sl_config_parse, with the file name it is given,
     * and a report never spans lines even when values hold control bytes. */
    static const char text[] = "listeners: [ { address: \"a\\nb:80\" } ]\n"
                               "pools: { p: { backends: [ { address: 10.0.0.1:1 } ] } }\n"
                               "services: { s: { routes: [ {} ], pools: [ p ] } }\n"
                               "workers: \"x\\ty\"\n";
    sl_config_t *cfg = (sl_config_t *)1;
    sl_diag_t d = {0};
    assert_int_equal(sl_config_parse(text, strlen(text), "inline.yaml", &cfg, &d), SL_EINVAL);
    assert_null(cfg);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.lines[0], "inline.yaml:1:25: listeners[0].address: bad address "
                                    "(expected IP:port, [IPv6]:port or host:port, got \"a?b:80\")");
    assert_string_equal(d.lines[1], "inline.yaml:4:10: workers: bad number "
                                    "(expected auto or an integer, got \"x?y\")");
    sl_diag_free(&d);
}

static void error_count_is_bounded(void **state)
{
    (void)state;
    /* A file of a thousand unknown keys reports a bounded number of lines. */
    size_t cap = 1000 * 16, o = 0;
    char *text = malloc(cap);
    for (int i = 0; i < 1000; i++)
        o += (size_t)snprintf(text + o, cap - o, "k%d: 1\n", i);
    sl_config_t *cfg;
    sl_diag_t d = {0};
    assert_int_equal(sl_config_parse(text, o, "big.yaml", &cfg, &d), SL_EINVAL);
    assert_true(d.n > 50 && d.n <= 101);
    assert_string_equal(d.lines[d.n - 1], "too many errors; stopped reporting");
    sl_diag_free(&d);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(golden_bad_configs),
        cmocka_unit_test(good_configs_load),
        cmocka_unit_test(unreadable_file),
        cmocka_unit_test(parse_errors_from_text),
        cmocka_unit_test(error_count_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
