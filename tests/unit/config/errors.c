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
           "t.yaml:1:25: listeners[0].address: port out of range (expected 1..65535, got 0)",
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
           "(first at 2:14)",
           "t.yaml:5:14: listeners[3].address: duplicate listener address localhost:8081 "
           "(first at 4:14)",
           "t.yaml:6:19: admin.address: [0::0]:8081 is also listeners[2] (at 4:14); "
           "expected a port of its own",
           "t.yaml:7:63: pools.p.backends[1].address: duplicate backend address "
           "[::ffff:10.0.0.1]:1 (first at 7:38)");
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

/*
 * A reference to another place gives its line and column, as the error's own
 * place does, so an editor can jump there; on one line ("first at line 1")
 * it did not say which of the values. The first of two equal routes had no
 * place at all, nor the first of two pools of one name. On the old code:
 * "(first at line 1)", "(line 1)", no place for the route or the pool.
 */
static void references_give_line_and_column(void **state)
{
    (void)state;
    EXPECT("listeners: [ { address: 127.0.0.1:8080 }, { address: 127.0.0.1:8080 } ]\n"
           "admin: { address: 127.0.0.1:8080 }\n"
           "pools: { p: { backends: [ { address: 10.0.0.1:1 }, { address: 10.0.0.1:1 } ] },\n"
           "         p: { backends: [ { address: 10.0.0.1:2 } ] } }\n"
           "log: { level: info, level: warn }\n"
           "services: { s: { routes: [ { host: a.example }, { host: b.example } ], pools: [ p, p ] },\n"
           "            t: { routes: [ { host: b.example } ], pools: [ p ] } }\n",
           "t.yaml:1:54: listeners[1].address: duplicate listener address 127.0.0.1:8080 "
           "(first at 1:25)",
           "t.yaml:2:19: admin.address: 127.0.0.1:8080 is also listeners[0] (at 1:25); "
           "expected a port of its own",
           "t.yaml:3:63: pools.p.backends[1].address: duplicate backend address 10.0.0.1:1 "
           "(first at 3:38)",
           "t.yaml:4:10: pools.p: duplicate pool name (first at 3:10)",
           "t.yaml:5:21: log.level: duplicate key (first at 5:8)",
           "t.yaml:6:84: services.s.pools[1]: pool \"p\" is listed twice (first at 6:81)",
           "t.yaml:7:28: services.t.routes[0]: duplicate route (same host and path_prefix as "
           "services.s.routes[1] at 6:49)");
}

/*
 * A tab in the indentation was libyaml's "found character that cannot start
 * any token" (or "a tab character that violates indentation"): the error now
 * names the tab, at its line and column, indentation or not.
 */
static void tabs_are_named(void **state)
{
    (void)state;
    EXPECT("log:\n\tlevel: info\n",
           "t.yaml:2:1: syntax error: tab in indentation (YAML indents with spaces)");
    EXPECT("log:\n  \tlevel: info\n",
           "t.yaml:2:3: syntax error: tab in indentation (YAML indents with spaces)");
    EXPECT("workers: 2\n\tlog: {}\n",
           "t.yaml:2:1: syntax error: tab in indentation (YAML indents with spaces)");
    EXPECT("log:\r\n  level: >\r\n    info\r\n\tx\r\n",
           "t.yaml:4:1: syntax error: tab in indentation (YAML indents with spaces)");
    EXPECT("listeners:\n  -\taddress: 127.0.0.1:80\n",
           "t.yaml:2:4: syntax error: tab where YAML needs a space");
}

/*
 * Durations, sizes and rates say why they were refused, before the form they
 * expect; on the old code each was "bad duration (expected ...)" and no more.
 * A value with no number in it ("fast") has nothing to add to the form.
 */
static void durations_sizes_and_rates_say_why(void **state)
{
    (void)state;
#define D "(expected a number and unit like 250ms, 30s, 5m or 1h, got "
#define S "(expected bytes or a unit like 512, 16KiB or 1MiB, got "
#define R "(expected a number per unit like 500/s, got "
    EXPECT("timeouts:\n"
           "  connect: 1.5ms\n"
           "  head: 5S\n"
           "  idle: \"10 s\"\n"
           "  keepalive: 5sec\n"
           "  ping_interval: 30\n"
           "  ping_timeout: 1m30s\n"
           "  backend_response: .5s\n"
           "shutdown: { timeout: +5s, drain_rate: 500 }\n"
           "limits: { head_bytes: 16kb, frame_bytes: 1.3B, message_bytes: \"1,5MiB\",\n"
           "          write_high_water: 1.0000001MiB }\n"
           "services: { s: { admission: { rate: 5/sek, burst: 5 }, drain: { rate: 5s } } }\n"
           "log: { level: fast }\n"
           "workers: 1\n"
           "listeners: [ { address: 127.0.0.1:8080 } ]\n"
           "pools: { p: { backends: [ { address: 10.0.0.1:1 } ] } }\n",
           "t.yaml:2:12: timeouts.connect: bad duration: finer than a millisecond " D "\"1.5ms\")",
           "t.yaml:3:9: timeouts.head: bad duration: unknown unit \"S\" (units: ms, s, m, h) "
           D "\"5S\")",
           "t.yaml:4:9: timeouts.idle: bad duration: a space inside the value " D "\"10 s\")",
           "t.yaml:5:14: timeouts.keepalive: bad duration: unknown unit \"sec\" "
           "(units: ms, s, m, h) " D "\"5sec\")",
           "t.yaml:6:18: timeouts.ping_interval: bad duration: no unit " D "\"30\")",
           "t.yaml:7:17: timeouts.ping_timeout: bad duration: one number and one unit only "
           D "\"1m30s\")",
           "t.yaml:8:21: timeouts.backend_response: bad duration: no digit before the point "
           D "\".5s\")",
           "t.yaml:9:22: shutdown.timeout: bad duration: a sign before the number " D "\"+5s\")",
           "t.yaml:9:39: shutdown.drain_rate: bad rate: no unit " R "\"500\")",
           "t.yaml:10:23: limits.head_bytes: bad size: unknown unit \"kb\" "
           "(units: B, KiB, MiB, GiB, TiB, KB, MB, GB, TB) " S "\"16kb\")",
           "t.yaml:10:42: limits.frame_bytes: bad size: not a whole number of bytes " S "\"1.3B\")",
           "t.yaml:10:63: limits.message_bytes: bad size: a comma in the number "
           "(the decimal mark is a point) " S "\"1,5MiB\")",
           "t.yaml:11:29: limits.write_high_water: bad size: more than six digits after the "
           "point " S "\"1.0000001MiB\")",
           "t.yaml:12:16: services.s: missing required key \"routes\"",
           "t.yaml:12:16: services.s: missing required key \"pools\"",
           "t.yaml:12:37: services.s.admission.rate: bad rate: unknown unit \"sek\" "
           "(units: s, sec, m, min, h) " R "\"5/sek\")",
           "t.yaml:12:71: services.s.drain.rate: bad rate: no \"/\" before the unit " R "\"5s\")",
           "t.yaml:13:15: log.level: unknown value (expected one of error, warn, info, debug, "
           "got \"fast\")");
    EXPECT("timeouts: { idle: forever }\nshutdown: { drain_rate: fast }\n"
           "listeners: [ { address: 127.0.0.1:8080 } ]\n"
           "pools: { p: { backends: [ { address: 10.0.0.1:1 } ] } }\n"
           "services: { s: { routes: [ {} ], pools: [ p ] } }\n",
           "t.yaml:1:19: timeouts.idle: bad duration " D "\"forever\")",
           "t.yaml:2:25: shutdown.drain_rate: bad rate " R "\"fast\")");
    EXPECT("timeouts: { idle: 1e3ms }\nshutdown: { drain_rate: 1E2/s }\n"
           "limits: { head_bytes: 1e+4, frame_bytes: 2e }\n"
           "listeners: [ { address: 127.0.0.1:8080 } ]\n"
           "pools: { p: { backends: [ { address: 10.0.0.1:1 } ] } }\n"
           "services: { s: { routes: [ {} ], pools: [ p ] } }\n",
           "t.yaml:1:19: timeouts.idle: bad duration: an exponent (write the number out: 1e3 is "
           "1000) " D "\"1e3ms\")",
           "t.yaml:2:25: shutdown.drain_rate: bad rate: an exponent (write the number out: 1e3 is "
           "1000) " R "\"1E2/s\")",
           "t.yaml:3:23: limits.head_bytes: bad size: an exponent (write the number out: 1e3 is "
           "1000) " S "\"1e+4\")",
           "t.yaml:3:42: limits.frame_bytes: bad size: unknown unit \"e\" "
           "(units: B, KiB, MiB, GiB, TiB, KB, MB, GB, TB) " S "\"2e\")");
#undef D
#undef S
#undef R
}

/*
 * A port above 65535 was "bad address (expected IP:port, ...)" though the
 * form was right; it and port 0 are now "port out of range", as backlog's
 * 100000 is. ":99999" gets no "every interface is 0.0.0.0:99999" hint.
 */
static void ports_out_of_range(void **state)
{
    (void)state;
    EXPECT("listeners:\n"
           "  - address: \"[::1]:99999\"\n"
           "  - address: example.com:123456\n"
           "  - address: 127.0.0.1:0\n"
           "  - address: \":99999\"\n"
           "  - address: 127.0.0.1:65536\n"
           "pools: { p: { backends: [ { address: 10.0.0.1:0 }, { address: 10.0.0.1:1x } ] } }\n"
           "services: { s: { routes: [ {} ], pools: [ p ] } }\n",
           "t.yaml:2:14: listeners[0].address: port out of range (expected 1..65535, got 99999)",
           "t.yaml:3:14: listeners[1].address: port out of range (expected 1..65535, got 123456)",
           "t.yaml:4:14: listeners[2].address: port out of range (expected 1..65535, got 0)",
           "t.yaml:5:14: listeners[3].address: bad address (expected IP:port, [IPv6]:port or "
           "host:port, got \":99999\")",
           "t.yaml:6:14: listeners[4].address: port out of range (expected 1..65535, got 65536)",
           "t.yaml:7:38: pools.p.backends[0].address: port out of range (expected 1..65535, "
           "got 0)",
           "t.yaml:7:63: pools.p.backends[1].address: bad address (expected IP:port, "
           "[IPv6]:port or host:port, got \"10.0.0.1:1x\")");
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
        cmocka_unit_test(references_give_line_and_column),
        cmocka_unit_test(tabs_are_named),
        cmocka_unit_test(durations_sizes_and_rates_say_why),
        cmocka_unit_test(ports_out_of_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
