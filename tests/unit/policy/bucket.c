/*
 * Token bucket, tick by tick with an injected clock: exact refill, no drift
 * over long runs, the sliding-window bound, slow start's ramp, eta, and the
 * edges (rate 0, huge rates, burst 1, a clock that stands still or jumps).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "sluice/bucket.h"

static sl_bucket_t mk(double rate, uint32_t burst, sl_msec_t ss, double floor_, sl_msec_t now)
{
    sl_bucket_t b;
    sl_bucket_params_t p = { .rate = rate, .burst = burst, .slow_start = ss,
                             .slow_start_floor = floor_ };
    assert_int_equal(sl_bucket_init(&b, &p, now), SL_OK);
    return b;
}

static int drain(sl_bucket_t *b, sl_msec_t now)
{
    int n = 0;
    while (sl_bucket_take(b, now))
        n++;
    return n;
}

static void test_params(void **state)
{
    (void)state;
    sl_bucket_t b;
    sl_bucket_params_t bad[] = {
        { .rate = -1, .burst = 1 },
        { .rate = NAN, .burst = 1 },
        { .rate = 2e9, .burst = 1 },
        { .rate = 1, .burst = 0 },
        { .rate = 1, .burst = SL_BUCKET_BURST_MAX + 1 },
        { .rate = 1, .burst = 1, .slow_start_floor = 1.5 },
        { .rate = 1, .burst = 1, .slow_start_floor = -0.1 },
        { .rate = 1, .burst = 1, .slow_start = SL_BUCKET_SLOW_START_MAX + 1 },
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(bad); i++)
        assert_int_equal(sl_bucket_init(&b, &bad[i], 0), SL_EINVAL);
    b = mk(10, 5, 0, 0, 0);
    assert_int_equal(sl_bucket_set(&b, &bad[0], 10), SL_EINVAL);
    assert_true(b.rate == 10.0);
}

/* Golden table: rate 10/s, burst 5, starting full at t=1000. */
static void test_refill_golden(void **state)
{
    (void)state;
    sl_bucket_t b = mk(10, 5, 0, 0, 1000);
    static const struct { sl_msec_t now; int take; double after; } steps[] = {
        { 1000, 5, 0.0 },     /* full: exactly the burst */
        { 1050, 0, 0.5 },     /* half a token after 50 ms */
        { 1099, 0, 0.99 },
        { 1100, 1, 0.0 },
        { 1333, 2, 0.33 },
        { 1999, 5, 0.0 },     /* 0.33 + 6.66 would be 6.99: capped at 5 */
        { 9000, 5, 0.0 },     /* long idle: capped at 5 */
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(steps); i++) {
        assert_int_equal(drain(&b, steps[i].now), steps[i].take);
        assert_true(fabs(sl_bucket_tokens(&b, steps[i].now) - steps[i].after) < 1e-9);
    }
}

/* Refilling every ms or once gives the same micro-tokens; a year of 1/3-ish rate does not drift. */
static void test_no_drift(void **state)
{
    (void)state;
    sl_bucket_t a = mk(1.0 / 3.0, 1000000, 0, 0, 0);
    sl_bucket_t c = a;
    a.tokens = c.tokens = 0;
    for (sl_msec_t t = 1; t <= 3000000; t++)
        sl_bucket_refill(&a, t);
    sl_bucket_refill(&c, 3000000);
    assert_int_equal(a.tokens, c.tokens);
    /* rate_u = 333333 micro-tokens/s exactly: 3000 s give 999999000 micro-tokens. */
    assert_int_equal(a.tokens, 999999000);

    /* Greedy consumer taking as soon as possible over one simulated day at 7/s. */
    sl_bucket_t d = mk(7, 10, 0, 0, 0);
    uint64_t taken = 0;
    for (sl_msec_t t = 0; t <= 86400000; t += 37)
        taken += (uint64_t)drain(&d, t);
    /* 10 initial tokens + 7 per second, minus at most the one not yet taken. */
    assert_true(taken >= 7ull * 86400 + 9 && taken <= 7ull * 86400 + 10);
}

static int64_t rand_between(uint64_t *s, int64_t lo, int64_t hi)
{
    sl_rng_t r = { *s };
    uint64_t v = sl_rng_next(&r);
    *s = r.state;
    return lo + (int64_t)(v % (uint64_t)(hi - lo + 1));
}

/* Any 1 s window admits at most rate + burst; the last 60 s converge to the rate. */
static void test_sliding_window(void **state)
{
    (void)state;
    enum { T = 120000, RATE = 250, BURST = 40 };
    sl_bucket_t b = mk(RATE, BURST, 0, 0, 0);
    uint32_t *per_ms = calloc(T, sizeof(*per_ms));
    uint64_t seed = 42;
    for (sl_msec_t t = 0; t < T; t++) {
        /* Bursty arrivals: usually a few, sometimes a herd of hundreds. */
        int64_t n = rand_between(&seed, 0, 3);
        if (rand_between(&seed, 0, 999) == 0)
            n += rand_between(&seed, 100, 2000);
        for (int64_t i = 0; i < n; i++)
            per_ms[t] += sl_bucket_take(&b, t);
    }
    uint64_t win = 0, max_win = 0;
    for (sl_msec_t t = 0; t < T; t++) {
        win += per_ms[t];
        if (t >= 1000)
            win -= per_ms[t - 1000];
        max_win = SL_MAX(max_win, win);
    }
    assert_true(max_win <= RATE + BURST);
    uint64_t last60 = 0;
    for (sl_msec_t t = T - 60000; t < T; t++)
        last60 += per_ms[t];
    assert_true(fabs((double)last60 - RATE * 60.0) <= RATE * 60.0 * 0.01);
    free(per_ms);
}

/* rate(t) = floor + (1-floor) * t/T, and the tokens given per second follow it. */
static void test_slow_start(void **state)
{
    (void)state;
    enum { RATE = 1000, BURST = 50, RAMP = 10000 };
    const double fl = 0.1;
    sl_bucket_t b = mk(RATE, BURST, RAMP, fl, 0);
    sl_bucket_slow_start(&b, 5000);
    /* A full bucket is cut to floor * burst: no burst into a cold pool. */
    assert_true(fabs(sl_bucket_tokens(&b, 5000) - 5.0) < 1e-9);
    for (sl_msec_t t = 0; t <= RAMP + 2000; t += 250) {
        double want = RATE * (t >= RAMP ? 1.0 : fl + (1 - fl) * (double)t / RAMP);
        assert_true(fabs(sl_bucket_current_rate(&b, 5000 + t) - want) <= want * 0.01);
    }
    (void)drain(&b, 5000);
    for (int s = 0; s < 12; s++) {
        int got = 0;
        for (sl_msec_t t = 5000 + s * 1000u + 1; t <= 5000 + (s + 1) * 1000u; t++)
            got += drain(&b, t);
        double mid = (s + 0.5) * 1000.0;
        double want = RATE * (mid >= RAMP ? 1.0 : fl + (1 - fl) * mid / RAMP);
        assert_true(fabs(got - want) <= want * 0.01 + 1);
    }
    assert_false(b.ramping);
    /* No slow start configured: a no-op, the bucket stays full. */
    sl_bucket_t c = mk(100, 10, 0, 0.1, 0);
    sl_bucket_slow_start(&c, 10);
    assert_true(sl_bucket_tokens(&c, 10) == 10.0);
    assert_true(sl_bucket_current_rate(&c, 10) == 100.0);
}

/* skip(from, to): the refill up to from is kept, [from, to) earns nothing. */
static void test_skip(void **state)
{
    (void)state;
    sl_bucket_t b = mk(300, 50, 0, 0, 0);
    assert_int_equal(drain(&b, 0), 50);
    /* 10 ms earn 3 tokens; the 60 ms after them earn none. */
    assert_int_equal(sl_bucket_skip(&b, 10, 70), 60);
    assert_true(fabs(sl_bucket_tokens(&b, 70) - 3.0) < 1e-9);
    assert_int_equal(drain(&b, 70), 3);
    /* The refill goes on from 70 at the full rate: 30 in the next 100 ms. */
    int got = 0;
    for (sl_msec_t t = 71; t <= 170; t++)
        got += drain(&b, t);
    assert_int_equal(got, 30);
    /* A span already refilled past, or an empty one: nothing skipped. */
    assert_int_equal(sl_bucket_skip(&b, 150, 170), 0);
    assert_int_equal(sl_bucket_skip(&b, 180, 180), 0);   /* refills to 180: 3 tokens */
    assert_true(fabs(sl_bucket_tokens(&b, 180) - 3.0) < 1e-9);
    /* from before the last refill: skips from the last refill on. */
    assert_int_equal(sl_bucket_skip(&b, 100, 200), 20);
    assert_true(fabs(sl_bucket_tokens(&b, 200) - 3.0) < 1e-9);
    /* A skip across the end of a ramp ends it. */
    sl_bucket_t r = mk(1000, 10, 1000, 0.5, 0);
    sl_bucket_slow_start(&r, 0);
    (void)drain(&r, 500);
    assert_int_equal(sl_bucket_skip(&r, 500, 1500), 1000);
    assert_false(r.ramping);
    assert_int_equal(drain(&r, 1501), 1);
}

/* eta(n): at eta the n tokens are there, one ms earlier they are not. */
static void check_eta(sl_bucket_t b, sl_msec_t now, uint64_t n)
{
    sl_msec_t t = sl_bucket_eta(&b, now, n);
    assert_true(t != SL_MSEC_NEVER && t >= now);
    sl_bucket_t at = b, before = b;
    sl_bucket_refill(&at, t);
    assert_true(at.tokens >= (int64_t)n * SL_BUCKET_UNIT || at.tokens == at.cap);
    if (t > now) {
        sl_bucket_refill(&before, t - 1);
        assert_true(before.tokens < (int64_t)n * SL_BUCKET_UNIT);
    }
}

static void test_eta(void **state)
{
    (void)state;
    sl_bucket_t b = mk(10, 100, 0, 0, 0);
    assert_int_equal(drain(&b, 0), 100);
    assert_int_equal(sl_bucket_eta(&b, 0, 1), 100);
    assert_int_equal(sl_bucket_eta(&b, 0, 5), 500);
    assert_int_equal(sl_bucket_eta(&b, 30, 1), 100);
    /* Beyond the burst: a queue taking tokens as they come still drains. */
    assert_int_equal(sl_bucket_eta(&b, 0, 1000), 100000);
    for (uint64_t n = 1; n <= 100; n += 7)
        check_eta(b, 0, n);
    /* During a ramp, with floor 0 (the rate starts at 0). */
    sl_bucket_t r = mk(200, 100, 5000, 0, 0);
    sl_bucket_slow_start(&r, 0);
    for (uint64_t n = 1; n <= 100; n += 3)
        check_eta(r, 0, n);
    for (sl_msec_t now = 0; now < 6000; now += 997)
        check_eta(r, now, 3);
    /* Tokens already there: now. */
    sl_bucket_t f = mk(10, 5, 0, 0, 50);
    assert_int_equal(sl_bucket_eta(&f, 70, 5), 70);
}

static void test_rate_zero(void **state)
{
    (void)state;
    sl_bucket_t b = mk(0, 3, 0, 0, 0);
    assert_int_equal(drain(&b, 0), 3);
    assert_int_equal(drain(&b, 1000000000), 0);
    assert_true(sl_bucket_eta(&b, 5, 1) == SL_MSEC_NEVER);
    assert_true(sl_bucket_current_rate(&b, 5) == 0.0);
    sl_bucket_t c = mk(0, 3, 0, 0, 0);
    assert_int_equal(sl_bucket_eta(&c, 0, 3), 0);
    assert_true(sl_bucket_eta(&c, 0, 4) == SL_MSEC_NEVER);
}

static void test_huge_rate_and_clock_jump(void **state)
{
    (void)state;
    sl_bucket_t b = mk(SL_BUCKET_RATE_MAX, SL_BUCKET_BURST_MAX, 0, 0, 0);
    b.tokens = 0;
    /* 1 ms at 1e9/s is 1e6 tokens. */
    assert_true(sl_bucket_tokens(&b, 1) == 1e6);
    /* Hours later: capped at the burst, no overflow (UBSan watches). */
    const sl_msec_t hours = 10ull * 3600 * 1000;
    assert_true(sl_bucket_tokens(&b, hours) == (double)SL_BUCKET_BURST_MAX);
    assert_int_equal(sl_bucket_eta(&b, hours, 1), hours);
    /* Ramp at the maximum rate over the maximum length, then a jump past it. */
    sl_bucket_t r = mk(SL_BUCKET_RATE_MAX, 7, SL_BUCKET_SLOW_START_MAX, 0.0, 0);
    sl_bucket_slow_start(&r, 0);
    assert_true(sl_bucket_tokens(&r, 1) <= 7.0);
    assert_true(sl_bucket_tokens(&r, SL_BUCKET_SLOW_START_MAX / 2) == 7.0);
    assert_true(sl_bucket_tokens(&r, 1ull << 62) == 7.0);
    assert_true(sl_bucket_current_rate(&r, 1ull << 62) == SL_BUCKET_RATE_MAX);
    /* A slow rate and a clock near the end of time. */
    sl_bucket_t s = mk(0.001, 2, 0, 0, 0);
    assert_int_equal(drain(&s, 0), 2);
    assert_int_equal(sl_bucket_eta(&s, 0, 1), 1000000);
    assert_int_equal(drain(&s, UINT64_MAX - 1), 2);
}

static void test_burst_one_and_still_clock(void **state)
{
    (void)state;
    sl_bucket_t b = mk(1000, 1, 0, 0, 100);
    assert_true(sl_bucket_take(&b, 100));
    /* A clock that does not advance gives nothing, however often asked. */
    for (int i = 0; i < 1000; i++)
        assert_false(sl_bucket_take(&b, 100));
    /* A clock that goes back is "no time passed". */
    assert_false(sl_bucket_take(&b, 50));
    assert_true(sl_bucket_take(&b, 101));
    assert_false(sl_bucket_take(&b, 101));
    /* Burst 1 never holds more than one token. */
    assert_true(sl_bucket_tokens(&b, 100000) == 1.0);
    assert_int_equal(drain(&b, 100000), 1);
}

/* Live tuning: the past is refilled at the old rate, the burst clamps, the ramp continues. */
static void test_live_set(void **state)
{
    (void)state;
    sl_bucket_t b = mk(10, 100, 0, 0, 0);
    assert_int_equal(drain(&b, 0), 100);
    sl_bucket_params_t p = { .rate = 100, .burst = 100 };
    assert_int_equal(sl_bucket_set(&b, &p, 1000), SL_OK);   /* 10 tokens at 10/s */
    assert_true(sl_bucket_tokens(&b, 1000) == 10.0);
    assert_true(sl_bucket_tokens(&b, 1100) == 20.0);        /* then 100/s */
    p.burst = 4;
    assert_int_equal(sl_bucket_set(&b, &p, 1100), SL_OK);
    assert_true(sl_bucket_tokens(&b, 1100) == 4.0);
    /* A running ramp follows the new length. */
    p = (sl_bucket_params_t){ .rate = 100, .burst = 4, .slow_start = 10000,
                              .slow_start_floor = 0.5 };
    assert_int_equal(sl_bucket_set(&b, &p, 2000), SL_OK);
    sl_bucket_slow_start(&b, 2000);
    assert_true(fabs(sl_bucket_current_rate(&b, 7000) - 75.0) < 1e-9);
    p.slow_start = 5000;
    assert_int_equal(sl_bucket_set(&b, &p, 7000), SL_OK);
    assert_true(sl_bucket_current_rate(&b, 7000) == 100.0);
    assert_false(b.ramping);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_refill_golden),
        cmocka_unit_test(test_no_drift),
        cmocka_unit_test(test_sliding_window),
        cmocka_unit_test(test_slow_start),
        cmocka_unit_test(test_skip),
        cmocka_unit_test(test_eta),
        cmocka_unit_test(test_rate_zero),
        cmocka_unit_test(test_huge_rate_and_clock_jump),
        cmocka_unit_test(test_burst_one_and_still_clock),
        cmocka_unit_test(test_live_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
