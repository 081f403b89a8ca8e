/*
 * Tests for gateway/policy/health.c: scripted scenarios, tick by tick on an
 * injected clock. Each step is an input at a time and the exact outcome
 * expected: the flags or event returned and the combined state after it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/health.h"

typedef enum { TICK, CHK_OK, CHK_FAIL, CHK_TIMEOUT, CHK_SKIPPED, CONN_OK, CONN_FAIL } op_t;

#define NONE (-1)

typedef struct {
    sl_msec_t t;
    op_t op;
    int ret;                 /* tick: flags mask; others: 0 or 1 (event) */
    sl_health_state_t state; /* combined state after the step */
    int why;                 /* sl_health_why_t of the event, or NONE */
} step_t;

static void run(const sl_health_cfg_t *cfg, const step_t *steps, size_t n)
{
    sl_health_t h;
    sl_health_init(&h, cfg, 0);
    for (size_t i = 0; i < n; i++) {
        const step_t *s = &steps[i];
        sl_health_state_t before = sl_health_state(&h);
        sl_health_event_t ev = {(sl_health_state_t)99, (sl_health_state_t)99, (sl_health_why_t)99};
        int ret = 0;
        switch (s->op) {
        case TICK: ret = sl_health_tick(&h, s->t, &ev); break;
        case CHK_OK: ret = sl_health_check_result(&h, s->t, SL_CHECK_OK, &ev); break;
        case CHK_FAIL: ret = sl_health_check_result(&h, s->t, SL_CHECK_FAIL, &ev); break;
        case CHK_TIMEOUT: ret = sl_health_check_result(&h, s->t, SL_CHECK_TIMEOUT, &ev); break;
        case CHK_SKIPPED: ret = sl_health_check_result(&h, s->t, SL_CHECK_SKIPPED, &ev); break;
        case CONN_OK: ret = sl_health_conn_result(&h, s->t, true, &ev); break;
        case CONN_FAIL: ret = sl_health_conn_result(&h, s->t, false, &ev); break;
        }
        if (ret != s->ret || sl_health_state(&h) != s->state)
            fail_msg("step %zu (t=%llu): ret %d want %d, state %s want %s", i,
                     (unsigned long long)s->t, ret, s->ret,
                     sl_health_state_name(sl_health_state(&h)), sl_health_state_name(s->state));
        bool has_event = s->op == TICK ? (ret & SL_HEALTH_EVENT) : ret == 1;
        if (has_event) {
            assert_int_equal(s->why, ev.why);
            assert_int_equal(ev.from, before);
            assert_int_equal(ev.to, s->state);
            assert_int_not_equal(ev.from, ev.to);
        } else {
            assert_int_equal(s->why, NONE);
            assert_int_equal(sl_health_state(&h), before);
        }
        assert_int_equal(sl_health_usable(&h), sl_health_state(&h) == SL_HEALTH_UP);
    }
}

#define RUN_CHECK SL_HEALTH_RUN_CHECK
#define EV SL_HEALTH_EVENT
#define UP SL_HEALTH_UP
#define DOWN SL_HEALTH_DOWN
#define EJ SL_HEALTH_EJECTED

static const sl_health_cfg_t active_cfg = {
    .active = true, .interval = 1000, .rise = 2, .fall = 3,
};

static void test_fall_then_rise(void **state)
{
    (void)state;
    const step_t steps[] = {
        {0, TICK, RUN_CHECK, UP, NONE},          /* first check due at once */
        {0, TICK, 0, UP, NONE},                  /* in flight: not twice */
        {10, CHK_FAIL, 0, UP, NONE},
        {500, TICK, 0, UP, NONE},                /* not due before the interval */
        {999, TICK, 0, UP, NONE},
        {1000, TICK, RUN_CHECK, UP, NONE},
        {1010, CHK_TIMEOUT, 0, UP, NONE},        /* a timeout is a failure */
        {2000, TICK, RUN_CHECK, UP, NONE},
        {2010, CHK_FAIL, 1, DOWN, SL_HEALTH_WHY_FALL},   /* third in a row */
        {3000, TICK, RUN_CHECK, DOWN, NONE},
        {3010, CHK_FAIL, 0, DOWN, NONE},
        {4000, TICK, RUN_CHECK, DOWN, NONE},
        {4010, CHK_OK, 0, DOWN, NONE},
        {5000, TICK, RUN_CHECK, DOWN, NONE},
        {5010, CHK_OK, 1, UP, SL_HEALTH_WHY_RISE},       /* second in a row */
        {6000, TICK, RUN_CHECK, UP, NONE},
        {6010, CHK_OK, 0, UP, NONE},
    };
    run(&active_cfg, steps, SL_ARRAY_SIZE(steps));
}

/* A check the gateway could not run (out of descriptors) is no verdict: it
   neither breaks a run nor extends one, and the next check comes at its
   interval as usual. */
static void test_skipped_check_is_no_verdict(void **state)
{
    (void)state;
    const step_t steps[] = {
        {0, TICK, RUN_CHECK, UP, NONE},
        {10, CHK_FAIL, 0, UP, NONE},
        {1000, TICK, RUN_CHECK, UP, NONE},
        {1010, CHK_FAIL, 0, UP, NONE},
        {2000, TICK, RUN_CHECK, UP, NONE},
        {2001, CHK_SKIPPED, 0, UP, NONE},        /* not the third failure */
        {2500, TICK, 0, UP, NONE},               /* nor a reason to retry early */
        {3000, TICK, RUN_CHECK, UP, NONE},
        {3001, CHK_SKIPPED, 0, UP, NONE},
        {4000, TICK, RUN_CHECK, UP, NONE},
        {4010, CHK_FAIL, 1, DOWN, SL_HEALTH_WHY_FALL},   /* the run of 3 failures goes on */
        {5000, TICK, RUN_CHECK, DOWN, NONE},
        {5010, CHK_OK, 0, DOWN, NONE},
        {6000, TICK, RUN_CHECK, DOWN, NONE},
        {6001, CHK_SKIPPED, 0, DOWN, NONE},      /* not the second success either */
        {7000, TICK, RUN_CHECK, DOWN, NONE},
        {7010, CHK_OK, 1, UP, SL_HEALTH_WHY_RISE},
    };
    run(&active_cfg, steps, SL_ARRAY_SIZE(steps));
}

/* A backend added at run time starts DOWN and its first check decides: a
   pass brings it UP at once (no history for `rise` to weigh), a check the
   gateway could not run decides nothing. */
static const sl_health_cfg_t passive_cfg_for_start_down = {
    .passive_failures = 1, .eject_for = 1000,
};

static void test_start_down_first_pass_brings_it_up(void **state)
{
    (void)state;
    sl_health_cfg_t cfg = active_cfg;
    cfg.start_down = true;
    const step_t steps[] = {
        {0, TICK, RUN_CHECK, DOWN, NONE},        /* checked at once, not after an interval */
        {2, CHK_SKIPPED, 0, DOWN, NONE},         /* no verdict: still unproven */
        {1000, TICK, RUN_CHECK, DOWN, NONE},
        {1005, CHK_OK, 1, UP, SL_HEALTH_WHY_RISE},
        {2000, TICK, RUN_CHECK, UP, NONE},
        {2005, CHK_FAIL, 0, UP, NONE},           /* from now on an ordinary UP: `fall` 3 */
        {3000, TICK, RUN_CHECK, UP, NONE},
        {3005, CHK_FAIL, 0, UP, NONE},
        {4000, TICK, RUN_CHECK, UP, NONE},
        {4005, CHK_FAIL, 1, DOWN, SL_HEALTH_WHY_FALL},
        {5000, TICK, RUN_CHECK, DOWN, NONE},
        {5005, CHK_OK, 0, DOWN, NONE},           /* and back up after `rise` 2, not 1 */
        {6000, TICK, RUN_CHECK, DOWN, NONE},
        {6005, CHK_OK, 1, UP, SL_HEALTH_WHY_RISE},
    };
    run(&cfg, steps, SL_ARRAY_SIZE(steps));
}

/* A first check that fails spends the head start: `rise` passes from then on. */
static void test_start_down_failing_first_needs_rise(void **state)
{
    (void)state;
    sl_health_cfg_t cfg = active_cfg;
    cfg.start_down = true;
    const step_t steps[] = {
        {0, TICK, RUN_CHECK, DOWN, NONE},
        {5, CHK_TIMEOUT, 0, DOWN, NONE},
        {1000, TICK, RUN_CHECK, DOWN, NONE},
        {1005, CHK_OK, 0, DOWN, NONE},
        {2000, TICK, RUN_CHECK, DOWN, NONE},
        {2005, CHK_OK, 1, UP, SL_HEALTH_WHY_RISE},
    };
    run(&cfg, steps, SL_ARRAY_SIZE(steps));
}

/* Without active checks nothing would ever bring it up: start_down is ignored. */
static void test_start_down_without_checks_is_up(void **state)
{
    (void)state;
    sl_health_cfg_t cfg = passive_cfg_for_start_down;
    cfg.start_down = true;
    const step_t steps[] = {
        {0, TICK, 0, UP, NONE},
        {10, CONN_FAIL, 1, EJ, SL_HEALTH_WHY_EJECT},
    };
    run(&cfg, steps, SL_ARRAY_SIZE(steps));
}

static void test_flapping_never_transitions(void **state)
{
    (void)state;
    for (int start_down = 0; start_down <= 1; start_down++) {
        sl_health_cfg_t cfg = active_cfg;
        cfg.start_down = start_down;
        sl_health_state_t st = start_down ? DOWN : UP;
        step_t steps[80];
        size_t n = 0;
        /* FAIL, OK, FAIL, FAIL, OK, FAIL...: runs never reach rise 2 or fall 3
           (a fail first: a first pass would bring a start_down one up). */
        for (int k = 0; k < 40; k++) {
            sl_msec_t t = (sl_msec_t)k * 1000;
            steps[n++] = (step_t){t, TICK, RUN_CHECK, st, NONE};
            steps[n++] = (step_t){t + 1, k % 3 == 1 ? CHK_OK : CHK_FAIL, 0, st, NONE};
        }
        run(&cfg, steps, n);
    }
}

static void test_late_result_and_late_tick(void **state)
{
    (void)state;
    sl_health_t h;
    sl_health_init(&h, &active_cfg, 100);
    assert_int_equal(sl_health_next_due(&h), 100);
    assert_int_equal(sl_health_tick(&h, 100, NULL), RUN_CHECK);
    assert_int_equal(sl_health_next_due(&h), SL_MSEC_NEVER);   /* waiting for the result */
    assert_int_equal(sl_health_tick(&h, 1100, NULL), 0);       /* still in flight */
    assert_int_equal(sl_health_check_result(&h, 1500, SL_CHECK_OK, NULL), 0);
    assert_int_equal(sl_health_next_due(&h), 1100);            /* overdue: run at once */
    assert_int_equal(sl_health_tick(&h, 1500, NULL), RUN_CHECK);
    assert_int_equal(sl_health_check_result(&h, 1510, SL_CHECK_OK, NULL), 0);
    assert_int_equal(sl_health_next_due(&h), 2500);            /* from the late start */
}

static const sl_health_cfg_t passive_cfg = {
    .passive_failures = 3, .eject_for = 5000,
};

static void test_passive_eject_and_return(void **state)
{
    (void)state;
    const step_t steps[] = {
        {0, TICK, 0, UP, NONE},                  /* no active checks: nothing to run */
        {10, CONN_FAIL, 0, UP, NONE},
        {20, CONN_FAIL, 0, UP, NONE},
        {30, CONN_OK, 0, UP, NONE},              /* a success resets the count */
        {40, CONN_FAIL, 0, UP, NONE},
        {50, CONN_FAIL, 0, UP, NONE},
        {60, CONN_FAIL, 1, EJ, SL_HEALTH_WHY_EJECT},
        {70, CONN_FAIL, 0, EJ, NONE},            /* stragglers while out: ignored */
        {80, CONN_OK, 0, EJ, NONE},              /* and successes do not end it early */
        {5059, TICK, 0, EJ, NONE},
        {5060, TICK, EV, UP, SL_HEALTH_WHY_EJECT_END},
        {5070, CONN_FAIL, 0, UP, NONE},          /* the count starts over */
        {5080, CONN_FAIL, 0, UP, NONE},
        {5090, CONN_FAIL, 1, EJ, SL_HEALTH_WHY_EJECT},
        {20000, TICK, EV, UP, SL_HEALTH_WHY_EJECT_END},   /* a late tick ends it too */
    };
    run(&passive_cfg, steps, SL_ARRAY_SIZE(steps));

    sl_health_t h;
    sl_health_init(&h, &passive_cfg, 0);
    assert_int_equal(sl_health_next_due(&h), SL_MSEC_NEVER);
    for (int k = 0; k < 3; k++)
        sl_health_conn_result(&h, 1000, false, NULL);
    assert_int_equal(sl_health_next_due(&h), 6000);
}

static void test_active_down_during_ejection(void **state)
{
    (void)state;
    sl_health_cfg_t cfg = active_cfg;
    cfg.passive_failures = 2;
    cfg.eject_for = 10000;
    cfg.fall = 2;
    const step_t steps[] = {
        {0, TICK, RUN_CHECK, UP, NONE},
        {1, CHK_OK, 0, UP, NONE},
        {100, CONN_FAIL, 0, UP, NONE},
        {200, CONN_FAIL, 1, EJ, SL_HEALTH_WHY_EJECT},
        {1000, TICK, RUN_CHECK, EJ, NONE},       /* checks go on while ejected */
        {1001, CHK_FAIL, 0, EJ, NONE},
        {2000, TICK, RUN_CHECK, EJ, NONE},
        {2001, CHK_FAIL, 1, DOWN, SL_HEALTH_WHY_FALL},   /* DOWN beats EJECTED */
        {3000, TICK, RUN_CHECK, DOWN, NONE},
        {3001, CHK_OK, 0, DOWN, NONE},
        {10200, TICK, RUN_CHECK, DOWN, NONE},    /* ejection ends silently: still DOWN */
        {10201, CHK_OK, 1, UP, SL_HEALTH_WHY_RISE},
    };
    run(&cfg, steps, SL_ARRAY_SIZE(steps));
}

static void test_rise_during_ejection_waits_for_its_end(void **state)
{
    (void)state;
    sl_health_cfg_t cfg = active_cfg;
    cfg.start_down = true;
    cfg.passive_failures = 1;
    cfg.eject_for = 4000;
    const step_t steps[] = {
        {0, TICK, RUN_CHECK, DOWN, NONE},
        {1, CHK_FAIL, 0, DOWN, NONE},            /* now DOWN like any other: `rise` 2 */
        {500, CONN_FAIL, 0, DOWN, NONE},         /* ejected while DOWN: no visible change */
        {1000, TICK, RUN_CHECK, DOWN, NONE},
        {1001, CHK_OK, 0, DOWN, NONE},
        {2000, TICK, RUN_CHECK, DOWN, NONE},
        {2001, CHK_OK, 1, EJ, SL_HEALTH_WHY_RISE},       /* checks pass, ejection still on */
        {3000, TICK, RUN_CHECK, EJ, NONE},
        {3001, CHK_OK, 0, EJ, NONE},
        {4500, TICK, EV | RUN_CHECK, UP, SL_HEALTH_WHY_EJECT_END},   /* and the next check */
    };
    run(&cfg, steps, SL_ARRAY_SIZE(steps));
}

static void test_without_checks_always_up(void **state)
{
    (void)state;
    sl_health_cfg_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    sl_health_t h;
    sl_health_init(&h, &cfg, 0);
    assert_true(sl_health_usable(&h));
    assert_int_equal(sl_health_next_due(&h), SL_MSEC_NEVER);
    for (sl_msec_t t = 0; t < 10000; t += 1000) {
        assert_int_equal(sl_health_tick(&h, t, NULL), 0);
        assert_int_equal(sl_health_check_result(&h, t, SL_CHECK_FAIL, NULL), 0);
        assert_int_equal(sl_health_conn_result(&h, t, false, NULL), 0);
    }
    assert_true(sl_health_usable(&h));
}

/* A reload that turns the active checks off drops their verdict: DOWN by
   them, nothing would ever bring the backend up again. An ejection runs its
   course; settings that keep the checks keep the verdict. */
static void test_reconfigure_without_checks_drops_their_verdict(void **state)
{
    (void)state;
    sl_health_cfg_t passive = {.passive_failures = 1, .eject_for = 1000};
    sl_health_t h;
    sl_health_init(&h, &active_cfg, 0);
    for (sl_msec_t t = 0; t < 3000; t += 1000) {
        assert_int_equal(sl_health_tick(&h, t, NULL), SL_HEALTH_RUN_CHECK);
        sl_health_check_result(&h, t + 5, SL_CHECK_FAIL, NULL);
    }
    assert_int_equal(sl_health_state(&h), DOWN);
    sl_health_t same = h;
    assert_false(sl_health_reconfigure(&same, &active_cfg));   /* still checked: still DOWN */
    assert_int_equal(sl_health_state(&same), DOWN);
    assert_true(sl_health_reconfigure(&h, &passive));
    assert_int_equal(sl_health_state(&h), UP);
    assert_int_equal(sl_health_conn_result(&h, 4000, false, NULL), 1);
    assert_int_equal(sl_health_state(&h), EJ);
    /* Ejected, then reconfigured without checks again: still ejected until its end. */
    assert_false(sl_health_reconfigure(&h, &passive));
    assert_int_equal(sl_health_state(&h), EJ);
    assert_int_equal(sl_health_tick(&h, 5000, NULL), SL_HEALTH_EVENT);
    assert_int_equal(sl_health_state(&h), UP);
    /* A backend added DOWN (start_down) and reconfigured before its first check. */
    sl_health_cfg_t down = active_cfg;
    down.start_down = true;
    sl_health_init(&h, &down, 0);
    assert_int_equal(sl_health_state(&h), DOWN);
    assert_true(sl_health_reconfigure(&h, &passive));
    assert_int_equal(sl_health_state(&h), UP);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(sl_health_state_name(SL_HEALTH_UP), "up");
    assert_string_equal(sl_health_state_name(SL_HEALTH_DOWN), "down");
    assert_string_equal(sl_health_state_name(SL_HEALTH_EJECTED), "ejected");
    assert_string_equal(sl_health_why_name(SL_HEALTH_WHY_RISE), "rise");
    assert_string_equal(sl_health_why_name(SL_HEALTH_WHY_FALL), "fall");
    assert_string_equal(sl_health_why_name(SL_HEALTH_WHY_EJECT), "eject");
    assert_string_equal(sl_health_why_name(SL_HEALTH_WHY_EJECT_END), "eject_end");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fall_then_rise),
        cmocka_unit_test(test_skipped_check_is_no_verdict),
        cmocka_unit_test(test_start_down_first_pass_brings_it_up),
        cmocka_unit_test(test_start_down_failing_first_needs_rise),
        cmocka_unit_test(test_start_down_without_checks_is_up),
        cmocka_unit_test(test_flapping_never_transitions),
        cmocka_unit_test(test_late_result_and_late_tick),
        cmocka_unit_test(test_passive_eject_and_return),
        cmocka_unit_test(test_active_down_during_ejection),
        cmocka_unit_test(test_rise_during_ejection_waits_for_its_end),
        cmocka_unit_test(test_without_checks_always_up),
        cmocka_unit_test(test_reconfigure_without_checks_drops_their_verdict),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
