/*
 * Tests for gateway/policy/cutover.c, tick by tick on an injected clock:
 * ramp weights (golden, ramp 0 included), the pacing bound checked over
 * every window of a run with irregular steps (drain rate above and below
 * the new pool's rate, and a slow-start ramp of that rate), pause and
 * resume, abort mid-ramp and mid-drain, completion, self-pause on an
 * unhealthy pool and on handshake failures, progress and ETA.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/cutover.h"

#define BLUE 0
#define GREEN 1

static const sl_cutover_input_t healthy_in = {
    .from_open = 1000, .to_rate = SL_RATE_UNLIMITED, .to_healthy = true,
};

static void start(sl_cutover_t *c, sl_msec_t ramp, double drain_rate, sl_msec_t now)
{
    memset(c, 0, sizeof(*c));
    sl_cutover_cfg_t cfg = {.ramp = ramp, .drain_rate = drain_rate};
    assert_int_equal(sl_cutover_start(c, &cfg, BLUE, GREEN, now, 0), 0);
}

/* Sum of DRAIN counts in the actions; checks no unexpected kinds appear. */
static uint64_t drains(const sl_cutover_actions_t *a)
{
    uint64_t k = 0;
    for (size_t i = 0; i < a->n; i++)
        if (a->a[i].kind == SL_CUTOVER_ACT_DRAIN)
            k += a->a[i].count;
    return k;
}

static bool has(const sl_cutover_actions_t *a, sl_cutover_action_kind_t kind)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->a[i].kind == kind)
            return true;
    return false;
}

static void test_ramp_weights_golden(void **state)
{
    (void)state;
    sl_cutover_t c;
    sl_cutover_actions_t a;
    start(&c, 10000, 100, 1000);
    static const struct { sl_msec_t t; double w; sl_cutover_phase_t ph; } golden[] = {
        {1000, 0.0, SL_CUTOVER_RAMP},
        {1001, 0.0001, SL_CUTOVER_RAMP},
        {3500, 0.25, SL_CUTOVER_RAMP},
        {6000, 0.5, SL_CUTOVER_RAMP},
        {10999, 0.9999, SL_CUTOVER_RAMP},
        {11000, 1.0, SL_CUTOVER_DRAIN},
        {15000, 1.0, SL_CUTOVER_DRAIN},
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(golden); i++) {
        /* The pure reading between steps agrees with the stepped state. */
        assert_true(fabs(sl_cutover_weight_to(&c, golden[i].t) - golden[i].w) < 1e-12);
        assert_int_equal(sl_cutover_step(&c, golden[i].t, &healthy_in, &a), golden[i].ph);
        assert_true(fabs(sl_cutover_weight_to(&c, golden[i].t) - golden[i].w) < 1e-12);
        sl_cutover_progress_t p;
        sl_cutover_progress(&c, golden[i].t, &p);
        assert_true(fabs(p.weight_from - (1.0 - golden[i].w)) < 1e-12);
        assert_int_equal(has(&a, SL_CUTOVER_ACT_DRAIN_START), golden[i].t == 11000);
    }
    assert_true(fabs(sl_cutover_weight_to(&c, 2000) - 1.0) < 1e-12);   /* past: still 1 */
}

static void test_ramp_zero_is_at_once(void **state)
{
    (void)state;
    sl_cutover_t c;
    sl_cutover_actions_t a;
    start(&c, 0, 100, 500);
    assert_true(sl_cutover_weight_to(&c, 500) == 1.0);
    assert_int_equal(sl_cutover_step(&c, 500, &healthy_in, &a), SL_CUTOVER_DRAIN);
    assert_int_equal(a.n, 2);
    assert_int_equal(a.a[0].kind, SL_CUTOVER_ACT_DRAIN_START);
    assert_int_equal(a.a[1].kind, SL_CUTOVER_ACT_DRAIN);
    assert_int_equal(a.a[1].count, 1);   /* the first drain goes at once */
    sl_rng_t rng = {42};
    for (int i = 0; i < 100; i++)
        assert_int_equal(sl_cutover_pick_pool(&c, 500, &rng), GREEN);
}

static void test_pick_pool_follows_weight(void **state)
{
    (void)state;
    sl_cutover_t c;
    sl_cutover_actions_t a;
    start(&c, 8000, 100, 0);
    sl_rng_t rng = {7};
    assert_int_equal(sl_cutover_pick_pool(&c, 0, &rng), BLUE);
    assert_int_equal(sl_cutover_step(&c, 2000, &healthy_in, &a), SL_CUTOVER_RAMP);
    int green = 0;
    for (int i = 0; i < 20000; i++)
        green += sl_cutover_pick_pool(&c, 2000, &rng) == GREEN;
    assert_true(green > 4700 && green < 5300);   /* weight 0.25 of 20000 */
}

/* A drain run with irregular steps; rate_at(t) is the new pool's rate. */
typedef double (*rate_fn)(sl_msec_t t);

typedef struct {
    size_t n;
    sl_msec_t t[4096];
    uint64_t k[4096];
    double allowed[4096];    /* cumulative paced amount up to step i */
} run_t;

static void drain_run(run_t *r, double drain_rate, rate_fn rate_at, sl_msec_t until)
{
    sl_cutover_t c;
    sl_cutover_actions_t a;
    start(&c, 0, drain_rate, 0);
    sl_rng_t rng = {1234};
    sl_cutover_input_t in = {.from_open = 1000000, .to_healthy = true};
    sl_msec_t t = 0;
    r->n = 0;
    double cum = 0;
    while (t <= until && r->n < 4096) {
        double prev_rate = in.to_rate;
        in.to_rate = rate_at(t);
        if (r->n > 0) {
            double lo = SL_MIN(prev_rate, in.to_rate);
            cum += SL_MIN(lo, drain_rate) * (double)(t - r->t[r->n - 1]) / 1000.0;
        }
        sl_cutover_step(&c, t, &in, &a);
        r->t[r->n] = t;
        r->k[r->n] = drains(&a);
        r->allowed[r->n] = cum;
        in.from_open -= r->k[r->n];   /* drained connections close at once */
        r->n++;
        t += 1 + sl_rng_below(&rng, 120);
    }
    assert_int_equal(c.phase, SL_CUTOVER_DRAIN);
}

/* Over every window (t_i, t_j]: emitted <= paced amount + 1; and the run keeps pace. */
static void check_windows(const run_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        uint64_t emitted = 0;
        for (size_t j = i + 1; j < r->n; j++) {
            emitted += r->k[j];
            double bound = r->allowed[j] - r->allowed[i] + 1.0 + 1e-9;
            if ((double)emitted > bound)
                fail_msg("window (%llu, %llu]: %llu drains > %.3f",
                         (unsigned long long)r->t[i], (unsigned long long)r->t[j],
                         (unsigned long long)emitted, bound);
        }
    }
    /* From the start: one token at once, then exactly the paced amount. */
    uint64_t total = 0;
    for (size_t i = 0; i < r->n; i++)
        total += r->k[i];
    double paced = r->allowed[r->n - 1];
    assert_true((double)total > paced - 1e-9 && (double)total <= paced + 1.0 + 1e-9);
}

static double rate_40(sl_msec_t t) { (void)t; return 40.0; }
static double rate_200(sl_msec_t t) { (void)t; return 200.0; }

static void test_pace_follows_pool_rate_when_drain_rate_above(void **state)
{
    (void)state;
    static run_t r;
    drain_run(&r, 100.0, rate_40, 30000);
    check_windows(&r);
    /* ~40/s over 30 s */
    uint64_t total = 0;
    for (size_t i = 0; i < r.n; i++)
        total += r.k[i];
    assert_true(total >= 1190 && total <= 1210);

    sl_cutover_t c;
    sl_cutover_actions_t a;
    start(&c, 0, 100.0, 0);
    sl_cutover_input_t in = {.from_open = 500, .to_rate = 40.0, .to_healthy = true};
    sl_cutover_step(&c, 0, &in, &a);
    sl_cutover_progress_t p;
    sl_cutover_progress(&c, 0, &p);
    assert_true(p.pace == 40.0);
    assert_int_equal(p.pace_limit, SL_CUTOVER_LIMIT_POOL_RATE);
    assert_string_equal(sl_cutover_limit_name(p.pace_limit), "new_pool_admission_rate");
}

static void test_pace_follows_drain_rate_when_below(void **state)
{
    (void)state;
    static run_t r;
    drain_run(&r, 30.0, rate_200, 30000);
    check_windows(&r);
    uint64_t total = 0;
    for (size_t i = 0; i < r.n; i++)
        total += r.k[i];
    assert_true(total >= 890 && total <= 910);

    sl_cutover_t c;
    sl_cutover_actions_t a;
    start(&c, 0, 30.0, 0);
    sl_cutover_input_t in = {.from_open = 500, .to_rate = 200.0, .to_healthy = true};
    sl_cutover_step(&c, 0, &in, &a);
    sl_cutover_progress_t p;
    sl_cutover_progress(&c, 0, &p);
    assert_true(p.pace == 30.0);
    assert_int_equal(p.pace_limit, SL_CUTOVER_LIMIT_DRAIN_RATE);
    assert_string_equal(sl_cutover_limit_name(p.pace_limit), "drain_rate");
}

/* Slow start: the pool admits 10/s rising to 100/s over 10 s, then flat. */
static double slow_start(sl_msec_t t)
{
    return t >= 10000 ? 100.0 : 10.0 + 90.0 * (double)t / 10000.0;
}

static void test_pace_follows_slow_start_ramp(void **state)
{
    (void)state;
    static run_t r;
    drain_run(&r, 60.0, slow_start, 20000);
    check_windows(&r);
    /* The first second (pool at 10..19/s): 1 + ~14.5 drains; from 10 s on the
     * pool is at 100/s and the drain rate (60/s) rules: ~600 in 10 s. */
    uint64_t first = 0, later = 0;
    for (size_t i = 0; i < r.n; i++) {
        if (r.t[i] <= 1000)
            first += r.k[i];
        if (r.t[i] > 10000)
            later += r.k[i];
    }
    assert_true(first >= 10 && first <= 17);
    assert_true(later >= 590 && later <= 610);
}

static void test_unlimited_drains_all_at_once(void **state)
{
    (void)state;
    sl_cutover_t c;
    sl_cutover_actions_t a;
    start(&c, 0, SL_RATE_UNLIMITED, 0);
    sl_cutover_input_t in = {.from_open = 700, .from_draining = 200,
                             .to_rate = SL_RATE_UNLIMITED, .to_healthy = true};
    sl_cutover_step(&c, 0, &in, &a);
    assert_int_equal(drains(&a), 500);   /* all but those already draining */
    sl_cutover_progress_t p;
    sl_cutover_progress(&c, 0, &p);
    assert_int_equal(p.pace_limit, SL_CUTOVER_LIMIT_NONE);
    in.from_draining = 700;
    sl_cutover_step(&c, 10, &in, &a);
    assert_int_equal(a.n, 0);
    in.from_open = in.from_draining = 0;
    assert_int_equal(sl_cutover_step(&c, 20, &in, &a), SL_CUTOVER_DONE);
}

static void test_draining_connections_are_not_drained_twice(void **state)
{
    (void)state;
    sl_cutover_t c;
    sl_cutover_actions_t a;
    start(&c, 0, 100.0, 0);
    sl_cutover_input_t in = {.from_open = 10, .to_rate = SL_RATE_UNLIMITED, .to_healthy = true};
    sl_cutover_step(&c, 0, &in, &a);
    assert_int_equal(drains(&a), 1);
    in.from_draining = 1;
    /* 1 s at 100/s would allow 100: only the 9 not yet draining are asked. */
    sl_cutover_step(&c, 1000, &in, &a);
    assert_int_equal(drains(&a), 9);
    in.from_draining = 10;
    /* Credit not used for want of candidates is not banked beyond one. */
    sl_cutover_step(&c, 11000, &in, &a);
    assert_int_equal(drains(&a), 0);
    in.from_open = 30;   /* late arrivals admitted before the weight moved */
    sl_cutover_step(&c, 11010, &in, &a);
    assert_int_equal(drains(&a), 2);   /* 1 banked + 1 for 10 ms */
}

static void test_drain_window(void **state)
{
    (void)state;
    sl_cutover_t c;
    memset(&c, 0, sizeof(c));
    sl_cutover_actions_t a;
    sl_cutover_cfg_t cfg = {.ramp = 1000, .drain_window = 10000};
    assert_int_equal(sl_cutover_start(&c, &cfg, BLUE, GREEN, 0, 0), 0);
    sl_cutover_input_t in = {.from_open = 500, .to_rate = SL_RATE_UNLIMITED, .to_healthy = true};
    sl_cutover_step(&c, 0, &in, &a);
    sl_cutover_progress_t p;
    sl_cutover_progress(&c, 0, &p);
    assert_true(p.pace == 50.0);           /* estimate: 500 over 10 s */
    assert_int_equal(p.eta, 1000 + 10000);
    sl_cutover_step(&c, 1000, &in, &a);   /* drain starts: rate fixed at 50/s */
    in.from_open = 499;
    sl_cutover_step(&c, 2000, &in, &a);
    assert_int_equal(drains(&a), 50);
    in.from_open = 100;                    /* clients leaving do not slow the drain */
    sl_cutover_progress(&c, 2000, &p);
    sl_cutover_step(&c, 3000, &in, &a);
    assert_int_equal(drains(&a), 50);
    assert_int_equal(p.pace_limit, SL_CUTOVER_LIMIT_DRAIN_RATE);
}

static void test_pause_and_resume_mid_ramp(void **state)
{
    (void)state;
    sl_cutover_t c;
    sl_cutover_actions_t a;
    start(&c, 10000, 100, 0);
    sl_cutover_step(&c, 0, &healthy_in, &a);
    sl_cutover_step(&c, 5000, &healthy_in, &a);
    assert_int_equal(sl_cutover_pause(&c, 6000), 0);
    assert_int_equal(sl_cutover_pause(&c, 6000), SL_ESTATE);
    for (sl_msec_t t = 6000; t <= 60000; t += 1000) {
        assert_int_equal(sl_cutover_step(&c, t, &healthy_in, &a), SL_CUTOVER_RAMP);
        assert_int_equal(a.n, 0);
        assert_true(fabs(sl_cutover_weight_to(&c, t) - 0.6) < 1e-12);   /* frozen */
    }
    sl_cutover_progress_t p;
    sl_cutover_progress(&c, 60000, &p);
    assert_true(p.paused);
    assert_int_equal(p.why_paused, SL_CUTOVER_WHY_OPERATOR);
    assert_string_equal(sl_cutover_why_name(p.why_paused), "operator");
    assert_int_equal(p.ramp_left, 4000);
    assert_int_equal(sl_cutover_resume(&c, 60000), 0);
    assert_int_equal(sl_cutover_resume(&c, 60000), SL_ESTATE);
    assert_true(fabs(sl_cutover_weight_to(&c, 62000) - 0.8) < 1e-12);
    assert_int_equal(sl_cutover_step(&c, 63999, &healthy_in, &a), SL_CUTOVER_RAMP);
    assert_int_equal(sl_cutover_step(&c, 64000, &healthy_in, &a), SL_CUTOVER_DRAIN);
}

static void test_pause_mid_drain_accumulates_nothing(void **state)
{
    (void)state;
    sl_cutover_t c;
    sl_cutover_actions_t a;
    start(&c, 0, 10.0, 0);
    sl_cutover_input_t in = healthy_in;
    sl_cutover_step(&c, 0, &in, &a);
    assert_int_equal(drains(&a), 1);
    sl_cutover_step(&c, 550, &in, &a);
    assert_int_equal(drains(&a), 5);        /* 5.5 tokens: 0.5 carried */
    assert_int_equal(sl_cutover_pause(&c, 550), 0);
    for (sl_msec_t t = 600; t <= 100000; t += 100) {
        sl_cutover_step(&c, t, &in, &a);
        assert_int_equal(a.n, 0);
    }
    assert_int_equal(sl_cutover_resume(&c, 100000), 0);
    sl_cutover_step(&c, 100100, &in, &a);   /* 0.5 + 1.0: one, not 995 */
    assert_int_equal(drains(&a), 1);
    sl_cutover_step(&c, 100150, &in, &a);   /* 0.5 + 0.5 */
    assert_int_equal(drains(&a), 1);
    sl_cutover_progress_t p;
    sl_cutover_progress(&c, 100150, &p);
    assert_int_equal(p.drained, 8);
}

static void test_abort_mid_ramp(void **state)
{
    (void)state;
    sl_cutover_t c;
    sl_cutover_actions_t a;
    start(&c, 10000, 100, 0);
    sl_cutover_step(&c, 4000, &healthy_in, &a);
    assert_int_equal(sl_cutover_abort(&c, 4000), 0);
    assert_int_equal(sl_cutover_abort(&c, 4000), SL_ESTATE);
    assert_true(sl_cutover_weight_to(&c, 4000) == 0.0);
    sl_rng_t rng = {3};
    for (int i = 0; i < 100; i++)
        assert_int_equal(sl_cutover_pick_pool(&c, 20000, &rng), BLUE);
    assert_int_equal(sl_cutover_step(&c, 20000, &healthy_in, &a), SL_CUTOVER_ABORTED);
    assert_int_equal(a.n, 0);
    sl_cutover_progress_t p;
    sl_cutover_progress(&c, 20000, &p);
    assert_true(p.weight_from == 1.0 && p.weight_to == 0.0);
    assert_int_equal(p.eta, 0);
    assert_string_equal(sl_cutover_phase_name(p.phase), "aborted");
    /* A new cutover may start after an abort. */
    sl_cutover_cfg_t cfg = {.ramp = 0, .drain_rate = 1};
    assert_int_equal(sl_cutover_start(&c, &cfg, BLUE, GREEN, 21000, 0), 0);
}

static void test_abort_mid_drain_and_while_paused(void **state)
{
    (void)state;
    sl_cutover_t c;
    sl_cutover_actions_t a;
    start(&c, 0, 100, 0);
    sl_cutover_step(&c, 0, &healthy_in, &a);
    sl_cutover_step(&c, 1000, &healthy_in, &a);
    assert_int_equal(drains(&a), 100);
    assert_int_equal(sl_cutover_pause(&c, 1000), 0);
    assert_int_equal(sl_cutover_abort(&c, 1500), 0);
    assert_int_equal(sl_cutover_resume(&c, 1500), SL_ESTATE);
    for (sl_msec_t t = 2000; t < 10000; t += 500) {
        assert_int_equal(sl_cutover_step(&c, t, &healthy_in, &a), SL_CUTOVER_ABORTED);
        assert_int_equal(a.n, 0);
    }
    assert_true(sl_cutover_weight_to(&c, 10000) == 0.0);
    sl_cutover_progress_t p;
    sl_cutover_progress(&c, 10000, &p);
    assert_false(p.paused);
    assert_int_equal(p.drained, 101);
}

static void test_completion(void **state)
{
    (void)state;
    sl_cutover_t c;
    sl_cutover_actions_t a;
    start(&c, 1000, 1000, 0);
    sl_cutover_input_t in = {.from_open = 3, .to_rate = SL_RATE_UNLIMITED, .to_healthy = true};
    sl_cutover_step(&c, 0, &in, &a);
    sl_cutover_step(&c, 1000, &in, &a);
    assert_int_equal(drains(&a), 1);
    in.from_open = 2;
    in.from_draining = 0;
    sl_cutover_step(&c, 1010, &in, &a);
    assert_int_equal(drains(&a), 2);
    in.from_draining = 2;
    assert_int_equal(sl_cutover_step(&c, 1020, &in, &a), SL_CUTOVER_DRAIN);
    assert_int_equal(a.n, 0);
    in.from_open = in.from_draining = 0;
    assert_int_equal(sl_cutover_step(&c, 1030, &in, &a), SL_CUTOVER_DONE);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.a[0].kind, SL_CUTOVER_ACT_DONE);
    assert_int_equal(sl_cutover_step(&c, 1040, &in, &a), SL_CUTOVER_DONE);
    assert_int_equal(a.n, 0);   /* DONE is said once */
    assert_int_equal(sl_cutover_pause(&c, 1040), SL_ESTATE);
    assert_int_equal(sl_cutover_abort(&c, 1040), SL_ESTATE);
    sl_cutover_progress_t p;
    sl_cutover_progress(&c, 1040, &p);
    assert_true(p.weight_to == 1.0 && p.weight_from == 0.0);
    assert_int_equal(p.drained, 3);
    assert_int_equal(p.remaining, 0);
    assert_int_equal(p.eta, 0);
}

static void test_self_pause_unhealthy(void **state)
{
    (void)state;
    sl_cutover_t c;
    sl_cutover_actions_t a;
    start(&c, 10000, 100, 0);
    sl_cutover_input_t in = healthy_in;
    sl_cutover_step(&c, 2000, &in, &a);
    in.to_healthy = false;
    sl_cutover_step(&c, 3000, &in, &a);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.a[0].kind, SL_CUTOVER_ACT_PAUSED);
    assert_int_equal(a.a[0].why, SL_CUTOVER_WHY_UNHEALTHY);
    assert_true(fabs(sl_cutover_weight_to(&c, 9000) - 0.3) < 1e-12);
    in.to_healthy = true;   /* healthy again: no auto-resume */
    for (sl_msec_t t = 4000; t < 30000; t += 1000) {
        sl_cutover_step(&c, t, &in, &a);
        assert_int_equal(a.n, 0);
    }
    sl_cutover_progress_t p;
    sl_cutover_progress(&c, 30000, &p);
    assert_true(p.paused);
    assert_string_equal(sl_cutover_why_name(p.why_paused), "new_pool_unhealthy");
    /* Resumed while still unhealthy: pauses again at the next step. */
    assert_int_equal(sl_cutover_resume(&c, 30000), 0);
    in.to_healthy = false;
    sl_cutover_step(&c, 30500, &in, &a);
    assert_true(has(&a, SL_CUTOVER_ACT_PAUSED));
    assert_true(fabs(sl_cutover_weight_to(&c, 40000) - 0.35) < 1e-12);
}

/* A ramp-0 cutover to a pool that is unhealthy from the start pauses itself
   at its first step: the weights freeze where they stand, with nothing
   moved, not with every new connection sent to the pool that cannot take it. */
static void test_self_pause_unhealthy_at_start_with_ramp_zero(void **state)
{
    (void)state;
    sl_cutover_t c;
    sl_cutover_actions_t a;
    start(&c, 0, 100, 0);
    sl_cutover_input_t in = healthy_in;
    in.to_healthy = false;
    assert_int_equal(sl_cutover_step(&c, 0, &in, &a), SL_CUTOVER_RAMP);
    assert_true(has(&a, SL_CUTOVER_ACT_PAUSED));
    assert_int_equal(drains(&a), 0);
    assert_true(sl_cutover_weight_to(&c, 5000) == 0.0);
    sl_rng_t rng = {7};
    for (int i = 0; i < 100; i++)
        assert_int_equal(sl_cutover_pick_pool(&c, 5000, &rng), BLUE);
    sl_cutover_progress_t p;
    sl_cutover_progress(&c, 5000, &p);
    assert_true(p.paused && p.weight_from == 1.0 && p.weight_to == 0.0);
    /* Resumed once the pool is healthy: everything moves at once. */
    assert_int_equal(sl_cutover_resume(&c, 6000), 0);
    assert_true(sl_cutover_weight_to(&c, 6000) == 1.0);
    in.to_healthy = true;
    assert_int_equal(sl_cutover_step(&c, 6000, &in, &a), SL_CUTOVER_DRAIN);
    assert_true(has(&a, SL_CUTOVER_ACT_DRAIN_START));
    assert_int_equal(drains(&a), 1);
    for (int i = 0; i < 100; i++)
        assert_int_equal(sl_cutover_pick_pool(&c, 6000, &rng), GREEN);
}

static void test_self_pause_on_handshake_failures(void **state)
{
    (void)state;
    sl_cutover_t c;
    memset(&c, 0, sizeof(c));
    sl_cutover_actions_t a;
    sl_cutover_cfg_t cfg = {.ramp = 0, .drain_rate = 10, .pause_after_failures = 10};
    assert_int_equal(sl_cutover_start(&c, &cfg, BLUE, GREEN, 0, 100), 0);
    sl_cutover_input_t in = healthy_in;
    in.to_failures = 105;   /* 100 happened before the start: not counted */
    sl_cutover_step(&c, 0, &in, &a);
    assert_false(has(&a, SL_CUTOVER_ACT_PAUSED));
    in.to_failures = 109;
    sl_cutover_step(&c, 100, &in, &a);
    assert_false(has(&a, SL_CUTOVER_ACT_PAUSED));
    in.to_failures = 110;
    sl_cutover_step(&c, 200, &in, &a);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.a[0].kind, SL_CUTOVER_ACT_PAUSED);
    assert_int_equal(a.a[0].why, SL_CUTOVER_WHY_HANDSHAKE_FAILURES);
    assert_string_equal(sl_cutover_why_name(c.why_paused), "new_pool_handshake_failures");
    /* Resume forgives the failures so far; ten more pause again. */
    assert_int_equal(sl_cutover_resume(&c, 5000), 0);
    in.to_failures = 119;
    sl_cutover_step(&c, 5100, &in, &a);
    assert_false(has(&a, SL_CUTOVER_ACT_PAUSED));
    assert_int_equal(drains(&a), 2);   /* the token of (100, 200] + 100 ms at 10/s */
    in.to_failures = 120;
    sl_cutover_step(&c, 5200, &in, &a);
    assert_true(has(&a, SL_CUTOVER_ACT_PAUSED));
    assert_int_equal(drains(&a), 0);
}

static void test_eta_decreases(void **state)
{
    (void)state;
    sl_cutover_t c;
    sl_cutover_actions_t a;
    start(&c, 10000, 100, 0);
    sl_cutover_input_t in = {.from_open = 1000, .to_rate = SL_RATE_UNLIMITED, .to_healthy = true};
    sl_cutover_progress_t p;
    sl_cutover_step(&c, 0, &in, &a);
    sl_cutover_progress(&c, 0, &p);
    assert_int_equal(p.eta, 20000);           /* 10 s ramp + 1000 at 100/s */
    assert_int_equal(p.ramp_left, 10000);
    sl_cutover_step(&c, 5000, &in, &a);
    sl_cutover_progress(&c, 5000, &p);
    assert_int_equal(p.eta, 15000);
    sl_msec_t last_eta = p.eta;
    for (sl_msec_t t = 5100; in.from_open > 0; t += 100) {
        sl_cutover_step(&c, t, &in, &a);
        in.from_open -= drains(&a);
        sl_cutover_progress(&c, t, &p);
        assert_true(p.eta <= last_eta);
        if (t == 15000)
            assert_int_equal(p.eta, 5090);   /* 509 reported before this step's 10: at 100/s */
        last_eta = p.eta;
        assert_true(t < 30000);
    }
    sl_cutover_step(&c, 25000, &in, &a);
    sl_cutover_progress(&c, 25000, &p);
    assert_int_equal(p.phase, SL_CUTOVER_DONE);
    assert_int_equal(p.eta, 0);

    /* A new pool admitting nothing: no ETA. */
    start(&c, 0, 100, 0);
    in = (sl_cutover_input_t){.from_open = 10, .to_rate = 0.0, .to_healthy = true};
    sl_cutover_step(&c, 0, &in, &a);
    sl_cutover_step(&c, 1000, &in, &a);
    assert_int_equal(drains(&a), 0);
    sl_cutover_progress(&c, 1000, &p);
    assert_int_equal(p.eta, SL_MSEC_NEVER);
    in.to_rate = 1e-30;   /* vanishing: still no ETA, and no overflow */
    sl_cutover_step(&c, 2000, &in, &a);
    sl_cutover_progress(&c, 2000, &p);
    assert_int_equal(p.eta, SL_MSEC_NEVER);
}

static void test_errors_and_idle(void **state)
{
    (void)state;
    sl_cutover_t c;
    memset(&c, 0, sizeof(c));
    sl_cutover_actions_t a;
    assert_int_equal(sl_cutover_step(&c, 100, &healthy_in, &a), SL_CUTOVER_IDLE);
    assert_int_equal(a.n, 0);
    assert_int_equal(sl_cutover_pause(&c, 0), SL_ESTATE);
    assert_int_equal(sl_cutover_resume(&c, 0), SL_ESTATE);
    assert_int_equal(sl_cutover_abort(&c, 0), SL_ESTATE);
    assert_true(sl_cutover_weight_to(&c, 0) == 0.0);
    sl_cutover_cfg_t cfg = {.ramp = 100, .drain_rate = 0};
    assert_int_equal(sl_cutover_start(&c, &cfg, BLUE, GREEN, 0, 0), SL_EINVAL);
    cfg.drain_rate = 5;
    assert_int_equal(sl_cutover_start(&c, &cfg, BLUE, BLUE, 0, 0), SL_EINVAL);
    assert_int_equal(sl_cutover_start(&c, &cfg, BLUE, GREEN, 0, 0), 0);
    assert_int_equal(sl_cutover_start(&c, &cfg, BLUE, GREEN, 0, 0), SL_ESTATE);
    /* Time going backwards counts as none. */
    sl_cutover_step(&c, 50, &healthy_in, &a);
    sl_cutover_step(&c, 10, &healthy_in, &a);
    assert_true(fabs(sl_cutover_weight_to(&c, 50) - 0.5) < 1e-12);
    assert_string_equal(sl_cutover_phase_name(SL_CUTOVER_IDLE), "idle");
    assert_string_equal(sl_cutover_phase_name(SL_CUTOVER_RAMP), "ramp");
    assert_string_equal(sl_cutover_phase_name(SL_CUTOVER_DRAIN), "drain");
    assert_string_equal(sl_cutover_phase_name(SL_CUTOVER_DONE), "done");
    assert_string_equal(sl_cutover_why_name(SL_CUTOVER_WHY_NONE), "");
    assert_string_equal(sl_cutover_limit_name(SL_CUTOVER_LIMIT_NONE), "none");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ramp_weights_golden),
        cmocka_unit_test(test_ramp_zero_is_at_once),
        cmocka_unit_test(test_pick_pool_follows_weight),
        cmocka_unit_test(test_pace_follows_pool_rate_when_drain_rate_above),
        cmocka_unit_test(test_pace_follows_drain_rate_when_below),
        cmocka_unit_test(test_pace_follows_slow_start_ramp),
        cmocka_unit_test(test_unlimited_drains_all_at_once),
        cmocka_unit_test(test_draining_connections_are_not_drained_twice),
        cmocka_unit_test(test_drain_window),
        cmocka_unit_test(test_pause_and_resume_mid_ramp),
        cmocka_unit_test(test_pause_mid_drain_accumulates_nothing),
        cmocka_unit_test(test_abort_mid_ramp),
        cmocka_unit_test(test_abort_mid_drain_and_while_paused),
        cmocka_unit_test(test_completion),
        cmocka_unit_test(test_self_pause_unhealthy),
        cmocka_unit_test(test_self_pause_unhealthy_at_start_with_ramp_zero),
        cmocka_unit_test(test_self_pause_on_handshake_failures),
        cmocka_unit_test(test_eta_decreases),
        cmocka_unit_test(test_errors_and_idle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
