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

/* sl_config_parse on text must fail with exactly these lines. */
static void expect_lines(const char *text, size_t len, const char *const *want, size_t n)
{
    sl_config_t *cfg = (sl_config_t *)1;
    sl_diag_t d = {0};
    int rc = sl_config_parse(text, len, "t.yaml", &cfg, &d);
    bool same = rc == SL_EINVAL && cfg == NULL && d.n == n;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(d.lines[i], want[i]) == 0;
    if (!same) {
        for (size_t i = 0; i < d.n; i++)
            print_error("  got:      %s\n", d.lines[i]);
        for (size_t i = 0; i < n; i++)
            print_error("  expected: %s\n", want[i]);
    }
    sl_diag_free(&d);
    assert_true(same);
}

#define EXPECT(text, ...)                                                          \
    do {                                                                           \
        static const char *const want_[] = {__VA_ARGS__};                          \
        expect_lines(text, sizeof text - 1, want_, SL_ARRAY_SIZE(want_));          \
    } while (0)

/*
 * A bad byte is reported where an editor shows it: a byte order mark takes no
 * column, a lone CR ends a line as libyaml counts lines, and a multi-byte
 * sequence cut short (a Latin-1 "é" in "café") is reported at the byte that
 * began it. On the old code: 1:12, 1:16 and the byte after the é.
 */
static void bad_bytes_at_their_line_and_column(void **state)
{
    (void)state;
    EXPECT("\xEF\xBB\xBFworkers: a\xFF" "b\n",
           "t.yaml:1:11: syntax error: invalid leading UTF-8 octet (0xFF) (expected UTF-8 text)");
    EXPECT("log: {}\rworkers: a\xFF" "b\r",
           "t.yaml:2:11: syntax error: invalid leading UTF-8 octet (0xFF) (expected UTF-8 text)");
    EXPECT("log: {}\r\nworkers: a\xFF" "b\r\n",
           "t.yaml:2:11: syntax error: invalid leading UTF-8 octet (0xFF) (expected UTF-8 text)");
    EXPECT("services:\n  caf\xE9:\n",
           "t.yaml:2:6: syntax error: invalid UTF-8 sequence starting with this byte (0xE9) "
           "(expected UTF-8 text)");
    EXPECT("workers: \xC3\n",
           "t.yaml:1:10: syntax error: invalid UTF-8 sequence starting with this byte (0xC3) "
           "(expected UTF-8 text)");
    /* Errors found by the walk count lines the same way (CR LF, BOM). */
    EXPECT("\xEF\xBB\xBFlisteners: [ { address: 127.0.0.1:0 } ]\r\n"
           "pools: { p: { backends: [ { address: 10.0.0.1:1 } ] } }\r\n"
           "services: { s: { routes: [ {x: 1} ], pools: [ zz ] } }\r\n",
           "t.yaml:1:25: listeners[0].address: port 0 is not allowed (expected a port 1..65535)",
           "t.yaml:3:29: services.s.routes[0].x: unknown key \"x\"",
           "t.yaml:3:47: services.s.pools[0]: unknown pool \"zz\"");
}

/*
 * Aliases, merge keys and tags do not stop the parse: each is reported once,
 * at its own place, and the errors after it still are (on the old code an
 * alias hid every other error, and `!custom` and `!!map 5` passed unseen).
 */
static void aliases_merges_and_tags_each_reported(void **state)
{
    (void)state;
    EXPECT("base: &b { weight: 2 }\n"
           "listeners:\n"
           "  - !listener { address: 127.0.0.1:8080 }\n"
           "  - address: !!str 127.0.0.1:8081\n"
           "    backlog: !!map 5\n"
           "    delayed_ack: !!null x\n"
           "pools:\n"
           "  blue: *b\n"
           "  green:\n"
           "    <<: *b\n"
           "    backends: !!seq\n"
           "      - { address: 127.0.0.1:9001, <<: { weight: 3 } }\n"
           "services:\n"
           "  app: { routes: [ {} ], pools: [ blue, green, red ], active: !!str ~ }\n",
           "t.yaml:1:1: base: unknown key \"base\"",
           "t.yaml:3:5: unknown tag \"!listener\" (expected no tag, or one of YAML's own: "
           "!!str, !!int, !!float, !!bool, !!null, !!map, !!seq)",
           "t.yaml:5:14: tag \"!!map\" on a scalar (expected no tag)",
           "t.yaml:6:18: tag \"!!null\" on a value (expected nothing, ~ or null after it)",
           "t.yaml:8:9: syntax error: aliases (*name) are not supported",
           "t.yaml:10:5: merge keys (<<) are not supported (expected the keys written out)",
           "t.yaml:12:36: merge keys (<<) are not supported (expected the keys written out)",
           "t.yaml:14:48: services.app.pools[2]: unknown pool \"red\"",
           "t.yaml:14:63: services.app.active: \"~\" is not one of this service's pools "
           "(expected one of blue, green, red)");
}

/* Near misses: case is ignored, a key a level too high names the mappings
   that have it, and a short name is nobody's near miss. */
static void suggestions(void **state)
{
    (void)state;
    EXPECT("listeners: [ { address: 127.0.0.1:8080 } ]\n"
           "limits: { HEAD_BYTES: 1 }\n"
           "pools: { p: { backends: [ { address: 10.0.0.1:1 } ] }, green: { backends: "
           "[ { address: 10.0.0.1:2 } ] } }\n"
           "services: { s: { routes: [ {} ], pools: [ zz, gren ], rate: 5/s, retry_after: 1s } }\n",
           "t.yaml:2:11: limits.HEAD_BYTES: unknown key \"HEAD_BYTES\" (did you mean \"head_bytes\"?)",
           "t.yaml:4:43: services.s.pools[0]: unknown pool \"zz\"",
           "t.yaml:4:47: services.s.pools[1]: unknown pool \"gren\" (did you mean \"green\"?)",
           "t.yaml:4:55: services.s.rate: unknown key \"rate\" here (did you mean "
           "\"admission.rate\" or \"drain.rate\"?)",
           "t.yaml:4:66: services.s.retry_after: unknown key \"retry_after\" here (did you mean "
           "\"admission.retry_after\"?)");
}

/* An address spelled two ways is still one: listeners that would share a
   socket address, a backend listed twice, the admin API on a listener's port
   (each passed the old code, which compared the text). */
static void one_address_two_spellings(void **state)
{
    (void)state;
    EXPECT("listeners:\n"
           "  - address: \"[::1]:8080\"\n"
           "  - address: \"[0:0::1]:8080\"\n"
           "  - address: LOCALHOST:8081\n"
           "  - address: localhost:8081\n"
           "admin: { address: \"[0::0]:8081\" }\n"
           "pools: { p: { backends: [ { address: 10.0.0.1:1 }, { address: \"[::ffff:10.0.0.1]:1\" } ] } }\n"
           "services: { s: { routes: [ {} ], pools: [ p ] } }\n",
           "t.yaml:3:14: listeners[1].address: duplicate listener address [0:0::1]:8080 "
           "(first at line 2)",
           "t.yaml:5:14: listeners[3].address: duplicate listener address localhost:8081 "
           "(first at line 4)",
           "t.yaml:6:19: admin.address: [0::0]:8081 is also listeners[2] (line 4); "
           "expected a port of its own",
           "t.yaml:7:63: pools.p.backends[1].address: duplicate backend address "
           "[::ffff:10.0.0.1]:1 (first at line 7)");
}

/* ":8080" is how other servers spell every interface: the answer says how
   sluice does; an empty key is shown as "" in its path, not as a bare dot. */
static void every_interface_and_empty_keys(void **state)
{
    (void)state;
    EXPECT("listeners: [ { address: \":8080\", \"\": 1 }, { address: \"*:8081\" } ]\n"
           "pools: { p: { backends: [ { address: 10.0.0.1:1 } ] } }\n"
           "services: { s: { routes: [ {} ], pools: [ p ] } }\n",
           "t.yaml:1:25: listeners[0].address: bad address (expected IP:port, [IPv6]:port or "
           "host:port, got \":8080\"; every interface is 0.0.0.0:8080, or \"[::]:8080\" for IPv6)",
           "t.yaml:1:34: listeners[0].\"\": unknown key \"\"",
           "t.yaml:1:54: listeners[1].address: bad address (expected IP:port, [IPv6]:port or "
           "host:port, got \"*:8081\"; every interface is 0.0.0.0:8081, or \"[::]:8081\" for IPv6)");
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
        cmocka_unit_test(bad_bytes_at_their_line_and_column),
        cmocka_unit_test(aliases_merges_and_tags_each_reported),
        cmocka_unit_test(suggestions),
        cmocka_unit_test(one_address_two_spellings),
        cmocka_unit_test(every_interface_and_empty_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
