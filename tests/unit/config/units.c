/*
 * tests/unit/config/units.c: golden tables for the value notations
 * (gateway/config/units.c): each input with its exact value, or refused.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "sluice/config.h"

#define BAD UINT64_MAX   /* expected: refused with SL_EINVAL */

static const struct {
    const char *in;
    uint64_t ms;
} durations[] = {
    {"0", 0}, {"0s", 0}, {"0ms", 0}, {"250ms", 250}, {"30s", 30000}, {"5m", 300000},
    {"1h", 3600000}, {"1.5s", 1500}, {"0.25s", 250}, {"1.5m", 90000}, {"2.5h", 9000000},
    {"0.001s", 1}, {"300s", 300000}, {"18446744073709551s", 18446744073709551000ull}, {"18446744073709552s", BAD} /* overflow in ms */,
    {"99999999999999999999ms", BAD} /* overflow in digits */, {"1.5ms", BAD} /* not whole */,
    {"0.0001s", BAD}, {"1.0000001h", BAD} /* more than six fraction digits */,
    {"30", BAD} /* a unit is required */, {"", BAD}, {"s", BAD}, {"-5s", BAD}, {"+5s", BAD},
    {"5 s", BAD}, {" 5s", BAD}, {"5s ", BAD}, {"5S", BAD}, {"5sec", BAD}, {"5d", BAD},
    {"1.s", BAD}, {".5s", BAD}, {"1e3ms", BAD}, {"0x10s", BAD}, {"5m5s", BAD},
};

static void duration_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < SL_ARRAY_SIZE(durations); i++) {
        sl_msec_t v = 12345;
        int rc = sl_parse_duration(durations[i].in, &v);
        if (durations[i].ms == BAD) {
            if (rc != SL_EINVAL || v != 12345)
                fail_msg("duration \"%s\" should be refused", durations[i].in);
        } else if (rc != SL_OK || v != durations[i].ms) {
            fail_msg("duration \"%s\": rc %d value %llu, expected %llu", durations[i].in, rc,
                     (unsigned long long)v, (unsigned long long)durations[i].ms);
        }
    }
    assert_int_equal(sl_parse_duration(NULL, NULL), SL_EINVAL);
}

static const struct {
    const char *in;
    bool ok;
    uint64_t bytes;
} sizes[] = {
    {"0", true, 0}, {"512", true, 512}, {"512B", true, 512}, {"16KiB", true, 16384}, {"1MiB", true, 1048576},
    {"2GiB", true, 2147483648ull}, {"1TiB", true, 1099511627776ull}, {"10KB", true, 10000}, {"1MB", true, 1000000},
    {"3GB", true, 3000000000ull}, {"2TB", true, 2000000000000ull}, {"1.5KiB", true, 1536}, {"0.5MiB", true, 524288},
    {"18446744073709551615", true, UINT64_MAX}, {"18446744073709551616", false, 0} /* overflow */,
    {"16777216TiB", false, 0} /* 2^64: overflow after the unit */, {"1.3B", false, 0} /* not whole */,
    {"", false, 0}, {"KiB", false, 0}, {"16kib", false, 0}, {"16kb", false, 0}, {"16 KiB", false, 0}, {"-1", false, 0},
    {"16K", false, 0}, {"1.5.MiB", false, 0}, {"1,5MiB", false, 0}, {"16KiBs", false, 0},
};

static void size_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < SL_ARRAY_SIZE(sizes); i++) {
        uint64_t v = 777;
        int rc = sl_parse_size(sizes[i].in, &v);
        if (!sizes[i].ok) {
            if (rc != SL_EINVAL || v != 777)
                fail_msg("size \"%s\" should be refused", sizes[i].in);
        } else if (rc != SL_OK || v != sizes[i].bytes) {
            fail_msg("size \"%s\": rc %d value %llu", sizes[i].in, rc, (unsigned long long)v);
        }
    }
}

static const struct {
    const char *in;
    double per_sec;   /* < 0: refused */
} rates[] = {
    {"500/s", 500}, {"2000/s", 2000}, {"0.5/s", 0.5}, {"30/m", 0.5}, {"30/min", 0.5},
    {"3600/h", 1}, {"7/sec", 7}, {"0/s", 0}, {"1.25/s", 1.25}, {"120/min", 2},
    {"500", -1} /* the unit is required */, {"fast", -1}, {"", -1}, {"/s", -1}, {"500/", -1},
    {"500/d", -1}, {"500 /s", -1}, {"500/ s", -1}, {"-1/s", -1}, {"1e3/s", -1},
    {"5000000000000/s", -1} /* beyond 10^12 */, {"500/s/s", -1}, {"0.1234567/s", -1},
};

static void rate_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < SL_ARRAY_SIZE(rates); i++) {
        double v = -42;
        int rc = sl_parse_rate(rates[i].in, &v);
        if (rates[i].per_sec < 0) {
            if (rc != SL_EINVAL || v != -42)
                fail_msg("rate \"%s\" should be refused", rates[i].in);
        } else if (rc != SL_OK || v != rates[i].per_sec) {
            fail_msg("rate \"%s\": rc %d value %g", rates[i].in, rc, v);
        }
    }
}

static const struct {
    const char *in, *host;   /* host NULL: refused */
    uint16_t port;
} hostports[] = {
    {"0.0.0.0:8080", "0.0.0.0", 8080}, {"127.0.0.1:9001", "127.0.0.1", 9001},
    {"[::1]:8443", "::1", 8443}, {"[::]:80", "::", 80}, {"[fe80::1%eth0]:80", NULL, 0},
    {"localhost:8080", "localhost", 8080}, {"app-green.internal:9002", "app-green.internal", 9002},
    {"a:65535", "a", 65535}, {"a:0", "a", 0} /* refused later by the config rules */,
    {"a:65536", NULL, 0}, {"a:123456", NULL, 0}, {"a:", NULL, 0}, {":80", NULL, 0},
    {"0.0.0.0", NULL, 0}, {"::1:8080", NULL, 0} /* IPv6 needs brackets */, {"[::1]8080", NULL, 0},
    {"[::1]", NULL, 0}, {"[nonsense]:80", NULL, 0}, {"300.1.1.1:80", NULL, 0},
    {"1.2.3:80", NULL, 0}, {"a b:80", NULL, 0}, {"-a:80", NULL, 0}, {"a..b:80", NULL, 0},
    {"a:+80", NULL, 0}, {"a:80 ", NULL, 0}, {"", NULL, 0},
};

static void hostport_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < SL_ARRAY_SIZE(hostports); i++) {
        char *host = NULL;
        uint16_t port = 1;
        int rc = sl_parse_hostport(hostports[i].in, &host, &port);
        if (hostports[i].host == NULL) {
            if (rc != SL_EINVAL || host != NULL || port != 1)
                fail_msg("address \"%s\" should be refused", hostports[i].in);
        } else if (rc != SL_OK || strcmp(host, hostports[i].host) != 0 ||
                   port != hostports[i].port) {
            fail_msg("address \"%s\": rc %d host %s port %u", hostports[i].in, rc,
                     host ? host : "(null)", port);
        }
        free(host);
    }
}

static const struct {
    const char *in;
    int family;       /* 0: refused */
    const char *addr;
    unsigned prefix;
} cidrs[] = {
    {"10.0.0.0/8", AF_INET, "10.0.0.0", 8}, {"192.168.1.7", AF_INET, "192.168.1.7", 32},
    {"0.0.0.0/0", AF_INET, "0.0.0.0", 0}, {"::1/128", AF_INET6, "::1", 128},
    {"::1", AF_INET6, "::1", 128}, {"fd00::/8", AF_INET6, "fd00::", 8},
    {"172.16.0.0/12", AF_INET, "172.16.0.0", 12},
    {"10.0.0.1/8", 0, NULL, 0} /* host bits set */, {"10.0.0.0/33", 0, NULL, 0},
    {"::/129", 0, NULL, 0}, {"10.0.0.0/", 0, NULL, 0}, {"10.0.0.0/-1", 0, NULL, 0},
    {"10.0.0.0/08x", 0, NULL, 0}, {"10.0.0/8", 0, NULL, 0}, {"nonsense", 0, NULL, 0},
    {"", 0, NULL, 0}, {" 10.0.0.0/8", 0, NULL, 0}, {"10.0.0.0/8 ", 0, NULL, 0},
};

static void cidr_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < SL_ARRAY_SIZE(cidrs); i++) {
        sl_cfg_cidr_t c = {.prefix = 99};
        int rc = sl_parse_cidr(cidrs[i].in, &c);
        if (cidrs[i].family == 0) {
            if (rc != SL_EINVAL || c.prefix != 99)
                fail_msg("CIDR \"%s\" should be refused", cidrs[i].in);
            continue;
        }
        uint8_t want[16] = {0};
        assert_int_equal(inet_pton(cidrs[i].family, cidrs[i].addr, want), 1);
        if (rc != SL_OK || c.family != cidrs[i].family || c.prefix != cidrs[i].prefix ||
            memcmp(c.addr, want, 16) != 0)
            fail_msg("CIDR \"%s\": rc %d family %d prefix %u", cidrs[i].in, rc, c.family, c.prefix);
    }
}

static bool contains(const char *cidr, int family, const char *addr)
{
    sl_cfg_cidr_t c;
    uint8_t a[16] = {0};
    assert_int_equal(sl_parse_cidr(cidr, &c), SL_OK);
    assert_int_equal(inet_pton(family, addr, a), 1);
    return sl_cidr_contains(&c, family, a);
}

static void cidr_contains(void **state)
{
    (void)state;
    assert_true(contains("10.0.0.0/8", AF_INET, "10.255.1.2"));
    assert_false(contains("10.0.0.0/8", AF_INET, "11.0.0.0"));
    assert_true(contains("172.16.0.0/12", AF_INET, "172.31.255.255"));
    assert_false(contains("172.16.0.0/12", AF_INET, "172.32.0.0"));
    assert_true(contains("0.0.0.0/0", AF_INET, "8.8.8.8"));
    assert_true(contains("192.168.1.7", AF_INET, "192.168.1.7"));
    assert_false(contains("192.168.1.7", AF_INET, "192.168.1.6"));
    assert_true(contains("::1/128", AF_INET6, "::1"));
    assert_false(contains("::1/128", AF_INET6, "::2"));
    assert_true(contains("fd00::/8", AF_INET6, "fdff::1"));
    assert_false(contains("fd00::/8", AF_INET6, "fe00::1"));
    /* A dual-stack socket reports IPv4 peers as mapped IPv6 addresses. */
    assert_true(contains("10.0.0.0/8", AF_INET6, "::ffff:10.1.2.3"));
    assert_false(contains("10.0.0.0/8", AF_INET6, "::ffff:11.1.2.3"));
    /* Families never match across otherwise. */
    assert_false(contains("::/0", AF_INET, "10.0.0.1"));
    assert_false(contains("0.0.0.0/0", AF_INET6, "::1"));
    assert_false(sl_cidr_contains(NULL, AF_INET, (const uint8_t *)"\0\0\0\0"));
}

/* The schema's bounds, for values that come through the API or the state file. */
static void schema_bounds(void **state)
{
    (void)state;
    char msg[128];
    assert_true(sl_config_check_bound("services.admission.rate", 300, msg, sizeof msg));
    assert_true(sl_config_check_bound("services.admission.rate", 0.001, msg, sizeof msg));
    assert_false(sl_config_check_bound("services.admission.rate", 0, msg, sizeof msg));
    assert_string_equal(msg, "out of range (expected 0.001/s..10000000/s, got 0/s)");
    assert_true(sl_config_check_bound("services.admission.retry_after.min", 1000, msg, sizeof msg));
    assert_false(sl_config_check_bound("services.admission.retry_after.min", 999, msg, sizeof msg));
    assert_string_equal(msg, "out of range (expected 1s..1h, got 999ms)");
    assert_false(sl_config_check_bound("services.admission.queue.max_wait", 600001, msg,
                                       sizeof msg));
    assert_true(sl_config_check_bound("pools.rate", 0, msg, sizeof msg));   /* 0: no own queue */
    assert_false(sl_config_check_bound("limits.head_bytes", 512, msg, sizeof msg));
    assert_string_equal(msg, "out of range (expected 1KiB..1MiB, got 512)");
    /* A count's bounds in the config's own notation, never %g's 1e+07. */
    assert_false(sl_config_check_bound("services.admission.burst", 10000001, msg, sizeof msg));
    assert_string_equal(msg, "out of range (expected 1..10000000, got 10000001)");
    /* Not a key, or a key with no bounds (a string, a mapping). */
    assert_false(sl_config_check_bound("services.admission.rtae", 1, msg, sizeof msg));
    assert_false(sl_config_check_bound("services.drain.reason", 1, msg, sizeof msg));
    assert_false(sl_config_check_bound("services.admission", 1, msg, sizeof msg));
    assert_false(sl_config_check_bound("", 1, msg, sizeof msg));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(duration_table), cmocka_unit_test(size_table),
        cmocka_unit_test(rate_table),     cmocka_unit_test(hostport_table),
        cmocka_unit_test(cidr_table),     cmocka_unit_test(cidr_contains),
        cmocka_unit_test(schema_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
