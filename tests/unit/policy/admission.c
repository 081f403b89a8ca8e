/*
 * Admission queue, tick by tick with a simulated clock: golden sequences of
 * arrivals and events, a long seeded overload run (sliding-window bound,
 * convergence, FIFO, per-address caps), expiry and cancel freeing places,
 * Retry-After bounds and spread, slow start, live tuning, clock edges and a
 * 50,000-waiter queue.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "sluice/admission.h"

#define ID(ev) ((uintptr_t)(ev).user_data)
#define UD(id) ((void *)(uintptr_t)(id))

static sl_admission_params_t params(double rate, uint32_t burst, uint32_t qlen, sl_msec_t max_wait)
{
    return (sl_admission_params_t){
        .bucket = { .rate = rate, .burst = burst },
        .queue_length = qlen, .max_wait = max_wait,
        .retry_after_min = 1000, .retry_after_max = 30000,
    };
}

static sl_client_key_t key4(uint32_t ip)
{
    sl_client_key_t k = { .family = 2 };
    memcpy(k.addr, &ip, sizeof(ip));
    return k;
}

static sl_client_key_t key6(uint64_t hi, uint64_t lo)
{
    sl_client_key_t k = { .family = 10 };
    memcpy(k.addr, &hi, 8);
    memcpy(k.addr + 8, &lo, 8);
    return k;
}

static sl_admission_t *mkq(const sl_admission_params_t *p, sl_msec_t now)
{
    sl_admission_t *q = sl_admission_new(p, 1234, now);
    assert_non_null(q);
    return q;
}

static int arrive(sl_admission_t *q, sl_msec_t now, uint32_t ip, uintptr_t id,
                  sl_admission_event_t *ev)
{
    sl_client_key_t k = key4(ip);
    sl_admission_event_t tmp;
    int rc = sl_admission_arrive(q, now, &k, UD(id), ev ? ev : &tmp);
    assert_true(rc >= 0);
    return rc;
}

static void assert_retry(const sl_admission_event_t *ev, const sl_admission_params_t *p)
{
    assert_int_equal(ev->status, SL_ADM_REJECTED);
    assert_true(ev->retry_after_ms >= p->retry_after_min);
    assert_true(ev->retry_after_ms <= p->retry_after_max);
}

static void test_params_check(void **state)
{
    (void)state;
    sl_admission_params_t p = params(10, 1, 10, 1000);
    assert_int_equal(sl_admission_params_check(&p), SL_OK);
    sl_admission_params_t bad[6];
    for (size_t i = 0; i < SL_ARRAY_SIZE(bad); i++)
        bad[i] = p;
    bad[0].bucket.burst = 0;
    bad[1].queue_length = SL_ADMISSION_QUEUE_MAX + 1;
    bad[2].per_client_rate = -1;
    bad[3].per_client_rate = 5;   /* per_client_burst 0 */
    bad[4].retry_after_min = 5000, bad[4].retry_after_max = 4000;
    bad[5].per_client_rate = NAN;
    for (size_t i = 0; i < SL_ARRAY_SIZE(bad); i++) {
        assert_int_equal(sl_admission_params_check(&bad[i]), SL_EINVAL);
        assert_null(sl_admission_new(&bad[i], 1, 0));
    }
    sl_admission_t *q = mkq(&p, 0);
    assert_int_equal(sl_admission_set_params(q, &bad[0], 5), SL_EINVAL);
    sl_admission_params_t got;
    sl_admission_get_params(q, &got);
    assert_int_equal(got.bucket.burst, 1);
    sl_admission_free(q);
    sl_admission_free(NULL);
}

/* Golden: rate 10/s, burst 2, queue 5; one event per token time, never early. */
static void test_golden(void **state)
{
    (void)state;
    sl_admission_params_t p = params(10, 2, 5, 30000);
    sl_admission_t *q = mkq(&p, 0);
    sl_admission_event_t ev, evs[8];
    assert_int_equal(arrive(q, 0, 1, 1, &ev), SL_ADM_ADMITTED);
    assert_int_equal(ev.waited_ms, 0);
    assert_true(ev.user_data == UD(1));
    assert_int_equal(arrive(q, 0, 1, 2, NULL), SL_ADM_ADMITTED);
    assert_int_equal(arrive(q, 0, 2, 3, &ev), SL_ADM_QUEUED);
    assert_true(ev.handle != 0);
    assert_int_equal(arrive(q, 0, 3, 4, NULL), SL_ADM_QUEUED);
    assert_int_equal(sl_admission_depth(q), 2);
    assert_int_equal(sl_admission_next_wakeup(q, 0), 100);
    assert_int_equal(sl_admission_tick(q, 99, evs, 8), 0);
    assert_int_equal(sl_admission_tick(q, 100, evs, 8), 1);
    assert_int_equal(evs[0].status, SL_ADM_ADMITTED);
    assert_int_equal(ID(evs[0]), 3);
    assert_int_equal(evs[0].waited_ms, 100);
    assert_int_equal(sl_admission_next_wakeup(q, 100), 200);
    assert_int_equal(sl_admission_tick(q, 250, evs, 8), 1);   /* a late timer */
    assert_int_equal(ID(evs[0]), 4);
    assert_int_equal(evs[0].waited_ms, 250);
    assert_true(sl_admission_next_wakeup(q, 250) == SL_MSEC_NEVER);
    /* 0.6 tokens at 260: the newcomer waits, for 40 ms. */
    assert_int_equal(arrive(q, 260, 4, 5, NULL), SL_ADM_QUEUED);
    assert_int_equal(sl_admission_next_wakeup(q, 260), 300);
    /* Nobody passes a waiter: at 300 the token goes to the head, not to a newcomer. */
    assert_int_equal(arrive(q, 300, 5, 6, NULL), SL_ADM_QUEUED);
    assert_int_equal(sl_admission_tick(q, 300, evs, 8), 1);
    assert_int_equal(ID(evs[0]), 5);
    sl_admission_free(q);
}

typedef struct sim {
    uint32_t *admit_per_ms;
    uint8_t *queued;             /* per arrival id: 1 while queued */
    uint32_t *addr_of;           /* per arrival id */
    uint32_t *addr_queued;       /* per address */
    sl_admission_handle_t *handle;
    uintptr_t last_admitted;
    uint64_t admitted, expired, cancelled, cap429, full503;
} sim_t;

static void sim_event(sim_t *s, const sl_admission_params_t *p, const sl_admission_event_t *e,
                      sl_msec_t now)
{
    uintptr_t id = ID(*e);
    assert_true(s->queued[id]);
    s->queued[id] = 0;
    s->addr_queued[s->addr_of[id]]--;
    if (e->status == SL_ADM_ADMITTED) {
        assert_true(id > s->last_admitted);    /* FIFO */
        s->last_admitted = id;
        assert_true(e->waited_ms <= p->max_wait);
        s->admit_per_ms[now]++;
        s->admitted++;
    } else {
        assert_int_equal(e->reason, SL_ADM_WAIT_EXPIRED);
        assert_int_equal(e->http_status, 503);
        assert_true(e->waited_ms >= p->max_wait);
        assert_retry(e, p);
        s->expired++;
    }
}

/*
 * The Done-when: 120 simulated seconds of seeded, bursty overload with
 * cancels; the shell's timer fires exactly at next_wakeup.
 */
static void test_long_run(void **state)
{
    (void)state;
    enum { T = 120000, RATE = 200, BURST = 50, ADDRS = 300, MAXID = 400000 };
    sl_admission_params_t p = params(RATE, BURST, 2000, 4000);
    p.per_client = 8;
    sl_admission_t *q = mkq(&p, 0);
    sim_t s = { .admit_per_ms = calloc(T, 4), .queued = calloc(MAXID, 1),
                .addr_of = calloc(MAXID, 4), .addr_queued = calloc(ADDRS, 4),
                .handle = calloc(MAXID, 8) };
    sl_rng_t rng = { 7 };
    sl_admission_event_t evs[64];
    uintptr_t next_id = 1;
    sl_msec_t wake = SL_MSEC_NEVER;
    for (sl_msec_t t = 0; t < T; t++) {
        if (wake <= t) {
            size_t n, total = 0;
            while ((n = sl_admission_tick(q, t, evs, SL_ARRAY_SIZE(evs))) > 0) {
                for (size_t i = 0; i < n; i++)
                    sim_event(&s, &p, &evs[i], t);
                total += n;
            }
            assert_true(total > 0 || wake < t);  /* a wakeup is never spurious */
        }
        uint64_t n = sl_rng_below(&rng, 2);
        if (sl_rng_below(&rng, 2000) == 0)
            n += 500 + sl_rng_below(&rng, 3000);         /* a reconnect herd */
        for (uint64_t i = 0; i < n && next_id < MAXID; i++) {
            uintptr_t id = next_id++;
            uint32_t a = (uint32_t)sl_rng_below(&rng, ADDRS);
            sl_client_key_t k = key4(a);
            sl_admission_event_t ev;
            int rc = sl_admission_arrive(q, t, &k, UD(id), &ev);
            s.addr_of[id] = a;
            if (rc == SL_ADM_ADMITTED) {
                assert_true(id > s.last_admitted);
                s.last_admitted = id;
                s.admit_per_ms[t]++;
                s.admitted++;
            } else if (rc == SL_ADM_QUEUED) {
                s.queued[id] = 1;
                s.handle[id] = ev.handle;
                assert_true(++s.addr_queued[a] <= p.per_client);
            } else {
                assert_int_equal(rc, SL_ADM_REJECTED);
                assert_retry(&ev, &p);
                if (ev.reason == SL_ADM_CLIENT_CAP) {
                    assert_int_equal(ev.http_status, 429);
                    assert_int_equal(s.addr_queued[a], p.per_client);
                    s.cap429++;
                } else {
                    assert_int_equal(ev.reason, SL_ADM_QUEUE_FULL);
                    assert_int_equal(ev.http_status, 503);
                    s.full503++;
                }
            }
        }
        /* Some queued clients hang up. */
        for (int c = 0; c < 2; c++) {
            uintptr_t id = 1 + sl_rng_below(&rng, next_id - 1);
            int rc = sl_admission_cancel(q, s.handle[id] ? s.handle[id] : 1);
            if (s.queued[id]) {
                assert_int_equal(rc, SL_OK);
                s.queued[id] = 0;
                s.addr_queued[s.addr_of[id]]--;
                s.cancelled++;
            } else {
                assert_int_equal(rc, SL_ENOENT);
            }
        }
        wake = sl_admission_next_wakeup(q, t);
        assert_true(wake >= t);
    }
    uint64_t win = 0, max_win = 0, last60 = 0;
    for (sl_msec_t t = 0; t < T; t++) {
        win += s.admit_per_ms[t];
        if (t >= 1000)
            win -= s.admit_per_ms[t - 1000];
        max_win = SL_MAX(max_win, win);
        if (t >= T - 60000)
            last60 += s.admit_per_ms[t];
    }
    assert_true(max_win <= RATE + BURST);
    assert_true(fabs((double)last60 - RATE * 60.0) <= RATE * 60.0 * 0.01);
    print_message("long run: %llu admitted, %llu expired, %llu cancelled, %llu 429, %llu 503, "
                  "max 1 s window %llu, last 60 s %llu\n",
                  (unsigned long long)s.admitted, (unsigned long long)s.expired,
                  (unsigned long long)s.cancelled, (unsigned long long)s.cap429,
                  (unsigned long long)s.full503, (unsigned long long)max_win,
                  (unsigned long long)last60);
    assert_true(s.expired > 0 && s.cancelled > 0 && s.cap429 > 0 && s.full503 > 0);

    sl_admission_stats_t st;
    sl_admission_stats(q, T, &st);
    assert_int_equal(st.admitted, s.admitted);
    assert_int_equal(st.cancelled, s.cancelled);
    assert_int_equal(st.rejected[SL_ADM_WAIT_EXPIRED], s.expired);
    assert_int_equal(st.rejected[SL_ADM_CLIENT_CAP], s.cap429);
    assert_int_equal(st.rejected[SL_ADM_QUEUE_FULL], s.full503);
    assert_int_equal(st.depth_peak, 2000);
    assert_int_equal(st.wait_le[SL_ADMISSION_WAIT_BUCKETS - 1], s.admitted);
    assert_int_equal(st.arrived, next_id - 1);
    free(s.admit_per_ms), free(s.queued), free(s.addr_of), free(s.addr_queued), free(s.handle);
    sl_admission_free(q);
}

/* Per-address cap: 429 with Retry-After; room again once the address's oldest leaves. */
static void test_per_client_cap(void **state)
{
    (void)state;
    sl_admission_params_t p = params(1, 1, 100, 60000);
    p.per_client = 3;
    sl_admission_t *q = mkq(&p, 0);
    sl_admission_event_t ev, evs[4];
    assert_int_equal(arrive(q, 0, 7, 1, NULL), SL_ADM_ADMITTED);
    for (uintptr_t id = 2; id <= 4; id++)
        assert_int_equal(arrive(q, 0, 7, id, NULL), SL_ADM_QUEUED);
    for (uintptr_t id = 5; id <= 10; id++) {
        assert_int_equal(arrive(q, 0, 7, id, &ev), SL_ADM_REJECTED);
        assert_int_equal(ev.reason, SL_ADM_CLIENT_CAP);
        assert_int_equal(ev.http_status, 429);
        assert_retry(&ev, &p);
        /* Its oldest waiter is first in line: room in about 1 s (+ up to a fifth). */
        assert_true(ev.retry_after_ms <= 1200);
    }
    assert_int_equal(arrive(q, 0, 8, 11, NULL), SL_ADM_QUEUED);   /* another address */
    assert_int_equal(sl_admission_tick(q, 1000, evs, 4), 1);
    assert_int_equal(ID(evs[0]), 2);
    assert_int_equal(arrive(q, 1000, 7, 12, NULL), SL_ADM_QUEUED);
    assert_int_equal(arrive(q, 1000, 7, 13, &ev), SL_ADM_REJECTED);
    assert_int_equal(ev.reason, SL_ADM_CLIENT_CAP);
    /* The address's oldest (id 3) is 1st of 4 in line: the estimate follows it. */
    sl_admission_stats_t st;
    sl_admission_stats(q, 1000, &st);
    assert_int_equal(st.rejected[SL_ADM_CLIENT_CAP], 7);
    assert_int_equal(st.clients, 2);
    sl_admission_free(q);
}

/* Per-address rate: 429 when the address's own bucket is empty; entries are reclaimed. */
static void test_per_client_rate(void **state)
{
    (void)state;
    sl_admission_params_t p = params(100000, 100000, 100, 60000);
    p.per_client_rate = 2;
    p.per_client_burst = 2;
    p.retry_after_min = 100;
    sl_admission_t *q = mkq(&p, 0);
    sl_admission_event_t ev;
    assert_int_equal(arrive(q, 0, 1, 1, NULL), SL_ADM_ADMITTED);
    assert_int_equal(arrive(q, 0, 1, 2, NULL), SL_ADM_ADMITTED);
    assert_int_equal(arrive(q, 0, 1, 3, &ev), SL_ADM_REJECTED);
    assert_int_equal(ev.reason, SL_ADM_CLIENT_RATE);
    assert_int_equal(ev.http_status, 429);
    assert_true(ev.retry_after_ms >= 500 && ev.retry_after_ms <= 600);  /* 1 token at 2/s */
    assert_int_equal(arrive(q, 0, 2, 4, NULL), SL_ADM_ADMITTED);
    assert_int_equal(arrive(q, 499, 1, 5, NULL), SL_ADM_REJECTED);
    assert_int_equal(arrive(q, 500, 1, 6, NULL), SL_ADM_ADMITTED);
    /* 10,000 addresses once each, then later traffic: the idle ones are swept. */
    for (uint32_t a = 100; a < 10100; a++)
        assert_int_equal(arrive(q, 1000, a, 7, NULL), SL_ADM_ADMITTED);
    sl_admission_stats_t st;
    sl_admission_stats(q, 1000, &st);
    assert_true(st.clients >= 10000);
    for (uint32_t a = 20000; a < 20100; a++)
        assert_int_equal(arrive(q, 5000, a, 8, NULL), SL_ADM_ADMITTED);
    for (uint32_t a = 20100; a < 40100; a++)   /* enough new ones to force a sweep */
        assert_int_equal(arrive(q, 5000 + a, a, 9, NULL), SL_ADM_ADMITTED);
    sl_admission_stats(q, 50000, &st);
    assert_true(st.clients < 20000);
    assert_int_equal(st.rejected[SL_ADM_CLIENT_RATE], 2);
    sl_admission_free(q);
}

/* per_client_rate counts admissions: a waiter that gives up in line
   (cancel) or is turned away at the end of it (expired) gives its address's
   token back, so the address's next client is not answered 429 client_rate
   for an admission that never happened. */
static void test_per_client_rate_refunds_unadmitted_waiters(void **state)
{
    (void)state;
    sl_admission_params_t p = params(1, 1, 100, 500);
    p.per_client_rate = 1;
    p.per_client_burst = 1;
    sl_admission_t *q = mkq(&p, 0);
    sl_admission_event_t ev, evs[4];
    assert_int_equal(arrive(q, 0, 9, 1, NULL), SL_ADM_ADMITTED);   /* the global burst */
    assert_int_equal(arrive(q, 0, 1, 2, &ev), SL_ADM_QUEUED);
    assert_int_equal(sl_admission_cancel(q, ev.handle), SL_OK);
    assert_int_equal(arrive(q, 100, 1, 3, &ev), SL_ADM_QUEUED);    /* not 429 */
    assert_int_equal(sl_admission_tick(q, 1000, evs, 4), 1);
    assert_int_equal(ID(evs[0]), 3);
    assert_int_equal(evs[0].status, SL_ADM_ADMITTED);
    /* Admitted: that one's token stays spent. */
    assert_int_equal(arrive(q, 1000, 1, 4, &ev), SL_ADM_REJECTED);
    assert_int_equal(ev.reason, SL_ADM_CLIENT_RATE);
    /* Expired in line: its token comes back. */
    assert_int_equal(arrive(q, 1000, 2, 5, NULL), SL_ADM_QUEUED);
    assert_int_equal(sl_admission_tick(q, 1500, evs, 4), 1);
    assert_int_equal(ID(evs[0]), 5);
    assert_int_equal(evs[0].reason, SL_ADM_WAIT_EXPIRED);
    assert_int_equal(arrive(q, 1500, 2, 6, NULL), SL_ADM_QUEUED);   /* not 429 */
    sl_admission_stats_t st;
    sl_admission_stats(q, 1500, &st);
    assert_int_equal(st.rejected[SL_ADM_CLIENT_RATE], 1);
    assert_int_equal(st.rejected[SL_ADM_WAIT_EXPIRED], 1);
    sl_admission_free(q);
}

/* A waiter past max_wait is rejected as expired, and its place is free again. */
static void test_expiry(void **state)
{
    (void)state;
    sl_admission_params_t p = params(0, 1, 3, 1000);
    sl_admission_t *q = mkq(&p, 0);
    sl_admission_event_t ev, evs[4];
    assert_int_equal(arrive(q, 0, 1, 1, NULL), SL_ADM_ADMITTED);
    assert_int_equal(arrive(q, 0, 1, 2, NULL), SL_ADM_QUEUED);
    assert_int_equal(arrive(q, 100, 1, 3, NULL), SL_ADM_QUEUED);
    assert_int_equal(arrive(q, 200, 1, 4, NULL), SL_ADM_QUEUED);
    assert_int_equal(arrive(q, 300, 1, 5, &ev), SL_ADM_REJECTED);
    assert_int_equal(ev.reason, SL_ADM_QUEUE_FULL);
    assert_int_equal(ev.http_status, 503);
    /* Rate 0: there will never be room, so the longest wait, jittered below max. */
    assert_true(ev.retry_after_ms >= 24000 && ev.retry_after_ms <= 30000);
    assert_int_equal(sl_admission_next_wakeup(q, 300), 1000);
    assert_int_equal(sl_admission_tick(q, 999, evs, 4), 0);
    assert_int_equal(sl_admission_tick(q, 1000, evs, 4), 1);
    assert_int_equal(evs[0].status, SL_ADM_REJECTED);
    assert_int_equal(evs[0].reason, SL_ADM_WAIT_EXPIRED);
    assert_int_equal(evs[0].http_status, 503);
    assert_int_equal(evs[0].waited_ms, 1000);
    assert_int_equal(ID(evs[0]), 2);
    assert_retry(&evs[0], &p);
    assert_int_equal(sl_admission_cancel(q, evs[0].handle), SL_ENOENT);
    assert_int_equal(arrive(q, 1000, 1, 6, NULL), SL_ADM_QUEUED);   /* its place */
    assert_int_equal(sl_admission_next_wakeup(q, 1000), 1100);
    assert_int_equal(sl_admission_tick(q, 5000, evs, 2), 2);        /* max respected */
    assert_int_equal(ID(evs[0]), 3);
    assert_int_equal(ID(evs[1]), 4);
    assert_int_equal(sl_admission_tick(q, 5000, evs, 4), 1);
    assert_int_equal(ID(evs[0]), 6);
    assert_true(sl_admission_next_wakeup(q, 5000) == SL_MSEC_NEVER);
    sl_admission_free(q);
}

/* A held queue admits nobody — arrivals queue even with tokens there — but still
   expires waiters; released, it admits in FIFO order at the rate, burst first. */
static void test_hold(void **state)
{
    (void)state;
    sl_admission_params_t p = params(10, 2, 100, 5000);   /* a token every 100 ms */
    sl_admission_t *q = mkq(&p, 0);
    sl_admission_event_t evs[8];
    sl_admission_hold(q, true);
    assert_true(sl_admission_held(q));
    assert_int_equal(arrive(q, 0, 1, 1, NULL), SL_ADM_QUEUED);    /* a token, but held */
    assert_int_equal(arrive(q, 100, 2, 2, NULL), SL_ADM_QUEUED);
    assert_int_equal(arrive(q, 2000, 3, 3, NULL), SL_ADM_QUEUED);
    /* While held, the only wake-up is the head's expiry. */
    assert_int_equal(sl_admission_next_wakeup(q, 2000), 5000);
    assert_int_equal(sl_admission_tick(q, 4999, evs, 8), 0);
    assert_int_equal(sl_admission_tick(q, 5000, evs, 8), 1);
    assert_int_equal(evs[0].status, SL_ADM_REJECTED);
    assert_int_equal(evs[0].reason, SL_ADM_WAIT_EXPIRED);
    assert_int_equal(ID(evs[0]), 1);
    assert_int_equal(sl_admission_next_wakeup(q, 5000), 5100);
    /* Released: the burst (2 tokens) goes at once, in order; then the rate. */
    sl_admission_hold(q, false);
    assert_int_equal(sl_admission_tick(q, 5050, evs, 8), 2);
    assert_int_equal(evs[0].status, SL_ADM_ADMITTED);
    assert_int_equal(ID(evs[0]), 2);
    assert_int_equal(ID(evs[1]), 3);
    assert_int_equal(arrive(q, 5050, 4, 4, NULL), SL_ADM_QUEUED);  /* the bucket is empty */
    assert_int_equal(sl_admission_tick(q, 5149, evs, 8), 0);
    assert_int_equal(sl_admission_tick(q, 5150, evs, 8), 1);
    assert_int_equal(ID(evs[0]), 4);
    sl_admission_free(q);
}

static size_t admitted_in(sl_admission_t *q, sl_msec_t now)
{
    sl_admission_event_t evs[64];
    size_t n, total = 0;
    while ((n = sl_admission_tick(q, now, evs, SL_ARRAY_SIZE(evs))) > 0)
        for (size_t i = 0; i < n; i++)
            total += evs[i].status == SL_ADM_ADMITTED;
    return total;
}

/*
 * A stall while clients wait: the timer due at 4 ms fires at 70. Without
 * forfeit the tick admits the 21 tokens of the whole 70 ms at once; with it,
 * only the 7 earned before due + 20 ms slack, and the rate goes on from 70.
 */
static void test_stall_forfeit(void **state)
{
    (void)state;
    sl_admission_params_t p = params(300, 50, 1000, 60000);
    for (int forfeit = 0; forfeit <= 1; forfeit++) {
        sl_admission_t *q = mkq(&p, 0);
        for (uint32_t i = 0; i < 150; i++)
            (void)arrive(q, 0, i + 1, i, NULL);
        sl_admission_stats_t st;
        sl_admission_stats(q, 0, &st);
        assert_int_equal(st.admitted_immediately, 50);
        sl_msec_t due = sl_admission_next_wakeup(q, 0);
        assert_int_equal(due, 4);   /* 300/s: the first token after 3.3 ms */
        if (forfeit)
            assert_int_equal(sl_admission_forfeit(q, due + 20, 70), 70 - 24);
        assert_int_equal(admitted_in(q, 70), forfeit ? 7 : 21);
        /* After the stall the rate is the rate: 30 per 100 ms. */
        size_t got = 0;
        for (sl_msec_t t = 71; t <= 170; t++)
            got += admitted_in(q, t);
        assert_true(got >= 29 && got <= 31);
        sl_admission_stats(q, 170, &st);
        assert_int_equal(st.forfeited_ms, forfeit ? 46 : 0);
        sl_admission_free(q);
    }
    /* Nobody waiting, or a held queue: nothing to forfeit, the bucket banks as usual. */
    sl_admission_t *q = mkq(&p, 0);
    for (uint32_t i = 0; i < 50; i++)
        assert_int_equal(arrive(q, 0, i + 1, i, NULL), SL_ADM_ADMITTED);
    assert_int_equal(sl_admission_forfeit(q, 10, 70), 0);
    for (uint32_t i = 0; i < 21; i++)
        assert_int_equal(arrive(q, 70, 100 + i, 100 + i, NULL), SL_ADM_ADMITTED);
    assert_int_equal(arrive(q, 70, 200, 200, NULL), SL_ADM_QUEUED);
    sl_admission_hold(q, true);
    assert_int_equal(sl_admission_forfeit(q, 80, 200), 0);
    assert_int_equal(sl_admission_forfeit(q, 200, 200), 0);
    sl_admission_free(q);
}

/* Cancel is O(1), frees the place, the slot is reused, and stale handles are refused. */
static void test_cancel(void **state)
{
    (void)state;
    sl_admission_params_t p = params(0, 1, 3, 60000);
    sl_admission_t *q = mkq(&p, 0);
    sl_admission_event_t ev, evs[8];
    sl_admission_handle_t h[8] = { 0 };
    assert_int_equal(arrive(q, 0, 1, 1, NULL), SL_ADM_ADMITTED);
    for (uintptr_t id = 2; id <= 4; id++) {
        assert_int_equal(arrive(q, 0, (uint32_t)id, id, &ev), SL_ADM_QUEUED);
        h[id] = ev.handle;
    }
    assert_int_equal(arrive(q, 0, 5, 5, NULL), SL_ADM_REJECTED);
    assert_int_equal(sl_admission_cancel(q, h[3]), SL_OK);
    assert_int_equal(sl_admission_cancel(q, h[3]), SL_ENOENT);
    assert_int_equal(sl_admission_depth(q), 2);
    assert_int_equal(arrive(q, 0, 6, 6, &ev), SL_ADM_QUEUED);
    assert_true((uint32_t)ev.handle == (uint32_t)h[3]);   /* same slot ... */
    assert_true(ev.handle != h[3]);                        /* ... new generation */
    assert_int_equal(sl_admission_cancel(q, h[3]), SL_ENOENT);
    assert_int_equal(sl_admission_cancel(q, 0), SL_ENOENT);
    assert_int_equal(sl_admission_cancel(q, 0xffffffffffffull), SL_ENOENT);
    sl_admission_params_t fast = params(1000, 10, 3, 60000);
    assert_int_equal(sl_admission_set_params(q, &fast, 0), SL_OK);
    assert_int_equal(sl_admission_tick(q, 10, evs, 8), 3);
    assert_int_equal(ID(evs[0]), 2);
    assert_int_equal(ID(evs[1]), 4);
    assert_int_equal(ID(evs[2]), 6);
    sl_admission_stats_t st;
    sl_admission_stats(q, 10, &st);
    assert_int_equal(st.cancelled, 1);
    assert_int_equal(st.clients, 0);    /* counts at 0: entries freed */
    sl_admission_free(q);
}

static double block_mean(const sl_msec_t *v, int from, int n)
{
    double s = 0;
    for (int i = from; i < from + n; i++)
        s += (double)v[i];
    return s / n;
}

static int distinct(sl_msec_t *v, int n)
{
    sl_msec_t *c = malloc(sizeof(*c) * (size_t)n);
    memcpy(c, v, sizeof(*c) * (size_t)n);
    int d = 0;
    for (int i = 0; i < n; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = c[j] == c[i];
        d += !seen;
    }
    free(c);
    return d;
}

/* 1,000 rejections at one instant: within bounds, spread, increasing with position. */
static void test_retry_after_spread(void **state)
{
    (void)state;
    sl_admission_params_t p = params(100, 1, 100, 60000);
    sl_admission_t *q = mkq(&p, 0);
    sl_admission_event_t ev;
    sl_msec_t r[1000];
    for (uintptr_t id = 0; id < 101; id++)
        assert_true(arrive(q, 0, (uint32_t)id, id, NULL) != SL_ADM_REJECTED);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(arrive(q, 0, (uint32_t)(1000 + i), 0, &ev), SL_ADM_REJECTED);
        assert_int_equal(ev.reason, SL_ADM_QUEUE_FULL);
        assert_retry(&ev, &p);
        r[i] = ev.retry_after_ms;
    }
    /* The first would be 101st in line at 100/s: about 1.01 s. */
    assert_true(r[0] >= 1010 && r[0] <= 1010 + 1010 / 5);
    assert_true(distinct(r, 1000) >= 50);
    for (int b = 1; b < 10; b++)
        assert_true(block_mean(r, b * 100, 100) > block_mean(r, (b - 1) * 100, 100) + 500);
    sl_admission_free(q);

    /* A huge rate puts everyone at the minimum: the jitter alone still spreads them. */
    p = params(1e6, 1, 10, 60000);
    q = mkq(&p, 0);
    for (uintptr_t id = 0; id < 11; id++)
        (void)arrive(q, 0, 1, id, NULL);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(arrive(q, 0, 1, 0, &ev), SL_ADM_REJECTED);
        assert_true(ev.retry_after_ms >= 1000 && ev.retry_after_ms <= 1200);
        r[i] = ev.retry_after_ms;
    }
    assert_true(distinct(r, 1000) >= 50);
    sl_admission_free(q);
}

/* A rate changed live re-spreads the promised slots: the next rejected
   clients are told times at the new rate, after the clients already told. */
static void test_retry_after_follows_a_live_rate_change(void **state)
{
    (void)state;
    sl_admission_params_t p = params(10, 1, 0, 60000);
    sl_admission_t *q = mkq(&p, 0);
    sl_admission_event_t ev;
    assert_int_equal(arrive(q, 0, 1, 1, NULL), SL_ADM_ADMITTED);   /* the one token */
    for (int i = 0; i < 100; i++)   /* 100 slots at 10/s: 10 s of promises */
        assert_int_equal(arrive(q, 0, (uint32_t)(10 + i), 0, &ev), SL_ADM_REJECTED);
    assert_true(ev.retry_after_ms >= 10000 && ev.retry_after_ms <= 10100 + 10100 / 5);
    /* Raised a hundredfold: the 100 told clients take 0.1 s of the new rate. */
    p.bucket.rate = 1000;
    assert_int_equal(sl_admission_set_params(q, &p, 0), SL_OK);
    assert_int_equal(arrive(q, 0, 500, 0, &ev), SL_ADM_REJECTED);
    assert_int_equal(ev.retry_after_ms >= 1000 && ev.retry_after_ms <= 1200, true);   /* min */
    p.retry_after_min = 100;
    assert_int_equal(sl_admission_set_params(q, &p, 0), SL_OK);
    assert_int_equal(arrive(q, 0, 501, 0, &ev), SL_ADM_REJECTED);
    assert_true(ev.retry_after_ms >= 100 && ev.retry_after_ms <= 103 + 103 / 5);
    /* Lowered to 1/s: the promises so far (about 0.1 s at 1000/s) stretch to 100 s,
       beyond retry_after_max (30 s): the next is told the most. Before, the chain
       went on from 0.1 s, 1 s apart, under the clients already told to come then. */
    p.bucket.rate = 1;
    assert_int_equal(sl_admission_set_params(q, &p, 0), SL_OK);
    assert_int_equal(arrive(q, 0, 502, 0, &ev), SL_ADM_REJECTED);
    assert_true(ev.retry_after_ms >= 30000 - 30000 / 5 && ev.retry_after_ms <= 30000);
    sl_admission_free(q);
}

/* Slow start through the queue: admissions per second follow the ramp. */
static void test_slow_start(void **state)
{
    (void)state;
    enum { RATE = 1000, RAMP = 10000 };
    const double fl = 0.2;
    sl_admission_params_t p = params(RATE, 10, 20000, 600000);
    p.bucket.slow_start = RAMP;
    p.bucket.slow_start_floor = fl;
    sl_admission_t *q = mkq(&p, 0);
    sl_bucket_slow_start(sl_admission_bucket(q), 0);   /* the pool just turned healthy */
    uintptr_t last = 0;
    for (uintptr_t id = 1; id <= 20000; id++) {
        int rc = arrive(q, 0, 1, id, NULL);
        assert_true(rc != SL_ADM_REJECTED);
        last += rc == SL_ADM_ADMITTED;
    }
    assert_int_equal(last, 2);   /* a warming pool gets floor * burst at once, not the burst */
    sl_admission_event_t evs[64];
    for (int s = 0; s < 12; s++) {
        sl_msec_t t0 = (sl_msec_t)s * 1000;
        double mid = t0 + 500.0;
        double want = RATE * (mid >= RAMP ? 1.0 : fl + (1 - fl) * mid / RAMP);
        double now_rate = sl_bucket_current_rate(sl_admission_bucket(q), t0);
        double formula = RATE * (t0 >= RAMP ? 1.0 : fl + (1 - fl) * (double)t0 / RAMP);
        assert_true(fabs(now_rate - formula) <= formula * 0.01);
        int got = 0;
        for (sl_msec_t t = t0 + 1; t <= t0 + 1000; t++) {
            size_t n = sl_admission_tick(q, t, evs, SL_ARRAY_SIZE(evs));
            for (size_t i = 0; i < n; i++) {
                assert_int_equal(evs[i].status, SL_ADM_ADMITTED);
                assert_true(ID(evs[i]) == last + 1);
                last = ID(evs[i]);
            }
            got += (int)n;
        }
        assert_true(fabs(got - want) <= want * 0.01 + 1);
    }
    sl_admission_free(q);
}

/* Live tuning keeps order and contents; a shorter queue rejects nobody already in it. */
static void test_live_tuning(void **state)
{
    (void)state;
    sl_admission_params_t p = params(0, 1, 10, 30000);
    sl_admission_t *q = mkq(&p, 0);
    sl_admission_event_t ev, evs[16];
    assert_int_equal(arrive(q, 0, 1, 100, NULL), SL_ADM_ADMITTED);
    for (uintptr_t id = 1; id <= 10; id++)
        assert_int_equal(arrive(q, 0, (uint32_t)id, id, NULL), SL_ADM_QUEUED);
    p.queue_length = 5;
    assert_int_equal(sl_admission_set_params(q, &p, 0), SL_OK);
    assert_int_equal(sl_admission_depth(q), 10);
    assert_int_equal(sl_admission_tick(q, 0, evs, 16), 0);
    assert_int_equal(arrive(q, 0, 50, 50, &ev), SL_ADM_REJECTED);
    assert_int_equal(ev.reason, SL_ADM_QUEUE_FULL);
    p.bucket.rate = 1000;
    p.bucket.burst = 6;
    assert_int_equal(sl_admission_set_params(q, &p, 0), SL_OK);
    assert_int_equal(sl_admission_next_wakeup(q, 0), 1);
    assert_int_equal(sl_admission_tick(q, 6, evs, 16), 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(ID(evs[i]), i + 1);
    assert_int_equal(sl_admission_depth(q), 4);
    assert_int_equal(arrive(q, 6, 11, 11, NULL), SL_ADM_QUEUED);   /* below 5 again */
    assert_int_equal(arrive(q, 6, 12, 12, NULL), SL_ADM_REJECTED);
    /* Shrinking max_wait applies to everyone, in FIFO order. */
    p.bucket.rate = 0;
    p.max_wait = 100;
    assert_int_equal(sl_admission_set_params(q, &p, 6), SL_OK);
    assert_int_equal(sl_admission_next_wakeup(q, 6), 100);
    assert_int_equal(sl_admission_tick(q, 100, evs, 16), 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(ID(evs[i]), i + 7);
        assert_int_equal(evs[i].reason, SL_ADM_WAIT_EXPIRED);
    }
    assert_int_equal(sl_admission_tick(q, 106, evs, 16), 1);
    assert_int_equal(ID(evs[0]), 11);
    sl_admission_free(q);
}

/* A clock that stands still, one that goes back, and one that jumps hours. */
static void test_clock_edges(void **state)
{
    (void)state;
    sl_admission_params_t p = params(10, 5, 95, 30000);
    sl_admission_t *q = mkq(&p, 1000);
    sl_admission_event_t evs[128];
    int admitted = 0;
    for (uintptr_t id = 1; id <= 100; id++)
        admitted += arrive(q, 1000, 1, id, NULL) == SL_ADM_ADMITTED;
    assert_int_equal(admitted, 5);
    for (int i = 0; i < 100; i++)
        assert_int_equal(sl_admission_tick(q, 1000, evs, 128), 0);
    assert_int_equal(sl_admission_next_wakeup(q, 1000), 1100);
    /* Backwards is "no time passed": the same answers as at 1000. */
    assert_int_equal(sl_admission_tick(q, 500, evs, 128), 0);
    assert_int_equal(sl_admission_next_wakeup(q, 500), 1100);
    assert_int_equal(arrive(q, 500, 2, 101, NULL), SL_ADM_REJECTED);   /* queue full */
    /* Hours later: 5 tokens at most (the burst), everyone else expired. */
    const sl_msec_t later = 1000 + 7ull * 3600 * 1000;
    size_t n = sl_admission_tick(q, later, evs, 128);
    assert_int_equal(n, 95);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ID(evs[i]), 6 + i);
        assert_int_equal(evs[i].status, i < 5 ? SL_ADM_ADMITTED : SL_ADM_REJECTED);
        assert_true(evs[i].waited_ms == later - 1000);
    }
    sl_admission_stats_t st;
    sl_admission_stats(q, later, &st);
    assert_true(st.tokens == 0.0);
    assert_int_equal(st.wait_le[10], 5);                 /* <= 30 s: the immediate ones */
    assert_int_equal(st.wait_le[11], 10);                /* +Inf */
    sl_admission_free(q);
}

static void test_rate_edges(void **state)
{
    (void)state;
    /* Huge rate: everyone in immediately. */
    sl_admission_params_t p = params(SL_BUCKET_RATE_MAX, 1000000, 10, 1000);
    sl_admission_t *q = mkq(&p, 0);
    for (uintptr_t id = 0; id < 100000; id++)
        assert_int_equal(arrive(q, id / 1000, (uint32_t)id, id, NULL), SL_ADM_ADMITTED);
    sl_admission_free(q);
    /* No queue: no token means 503 at once. */
    p = params(1, 1, 0, 1000);
    q = mkq(&p, 0);
    sl_admission_event_t ev;
    assert_int_equal(arrive(q, 0, 1, 1, NULL), SL_ADM_ADMITTED);
    assert_int_equal(arrive(q, 0, 1, 2, &ev), SL_ADM_REJECTED);
    assert_int_equal(ev.reason, SL_ADM_QUEUE_FULL);
    assert_true(ev.retry_after_ms >= 1000 && ev.retry_after_ms <= 1200);
    assert_int_equal(arrive(q, 1000, 1, 3, NULL), SL_ADM_ADMITTED);
    sl_admission_free(q);
    /* Burst 1 at a fast rate: one per ms at most, even with a crowd every ms. */
    p = params(1000, 1, 1000, 1000);
    q = mkq(&p, 0);
    sl_admission_event_t evs[16];
    for (sl_msec_t t = 0; t < 50; t++) {
        int got = 0;
        for (uintptr_t i = 0; i < 10; i++)
            got += arrive(q, t, 1, t * 10 + i, NULL) == SL_ADM_ADMITTED;
        got += (int)sl_admission_tick(q, t, evs, 16);
        assert_true(got <= 1);
        assert_int_equal(sl_admission_next_wakeup(q, t), t + 1);
    }
    sl_admission_free(q);
}

/* 50,000 waiters: fill, cancel half at random, refill the holes, drain in order. */
static void test_fifty_thousand(void **state)
{
    (void)state;
    enum { N = 50000 };
    sl_admission_params_t p = params(1000, 1, N, 3600000);
    p.per_client = 2;
    sl_admission_t *q = mkq(&p, 0);
    sl_admission_handle_t *h = calloc(2 * N + 2, sizeof(*h));
    uint8_t *gone = calloc(2 * N + 2, 1);
    sl_rng_t rng = { 99 };
    clock_t c0 = clock();
    sl_admission_event_t ev;
    for (uintptr_t id = 0; id <= N; id++) {
        sl_client_key_t k = key6(0x20010db8u, id);
        int rc = sl_admission_arrive(q, 0, &k, UD(id), &ev);
        assert_int_equal(rc, id == 0 ? SL_ADM_ADMITTED : SL_ADM_QUEUED);
        h[id] = ev.handle;
    }
    int cancelled = 0;
    while (cancelled < N / 2) {
        uintptr_t id = 1 + sl_rng_below(&rng, N);
        if (!gone[id]) {
            assert_int_equal(sl_admission_cancel(q, h[id]), SL_OK);
            gone[id] = 1;
            cancelled++;
        }
    }
    for (uintptr_t id = N + 1; id <= N + N / 2; id++) {
        sl_client_key_t k = key6(0x20010db9u, id);
        assert_int_equal(sl_admission_arrive(q, 0, &k, UD(id), &ev), SL_ADM_QUEUED);
    }
    assert_int_equal(sl_admission_arrive(q, 0, &(sl_client_key_t){ .family = 10 }, NULL, &ev),
                     SL_ADM_REJECTED);
    double fill_s = (double)(clock() - c0) / CLOCKS_PER_SEC;
    sl_admission_event_t evs[8];
    uintptr_t last = 0;
    size_t drained = 0;
    for (sl_msec_t t = 1; drained < N; t++) {
        size_t n = sl_admission_tick(q, t, evs, 8);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(evs[i].status, SL_ADM_ADMITTED);
            assert_true(ID(evs[i]) > last && !gone[ID(evs[i])]);
            last = ID(evs[i]);
        }
        drained += n;
    }
    double total_s = (double)(clock() - c0) / CLOCKS_PER_SEC;
    print_message("50k waiters: fill+cancel+refill %.3f s, with drain %.3f s (CPU)\n",
                  fill_s, total_s);
    assert_true(total_s < 5.0);   /* O(1) operations; quadratic would take minutes */
    sl_admission_stats_t st;
    sl_admission_stats(q, 0, &st);
    assert_int_equal(st.depth, 0);
    assert_int_equal(st.depth_peak, N);
    assert_int_equal(st.clients, 0);
    free(h);
    free(gone);
    sl_admission_free(q);
}

/* The histogram is cumulative and the counters add up. */
static void test_stats(void **state)
{
    (void)state;
    sl_admission_params_t p = params(10, 1, 10, 30000);
    sl_admission_t *q = mkq(&p, 0);
    sl_admission_event_t evs[4];
    assert_int_equal(arrive(q, 0, 1, 1, NULL), SL_ADM_ADMITTED);   /* waits 0 */
    for (uintptr_t id = 2; id <= 5; id++)
        assert_int_equal(arrive(q, 0, 1, id, NULL), SL_ADM_QUEUED);
    assert_int_equal(sl_admission_tick(q, 100, evs, 4), 1);        /* 100 */
    assert_int_equal(sl_admission_tick(q, 200, evs, 4), 1);        /* 200 */
    assert_int_equal(sl_admission_tick(q, 300, evs, 4), 1);        /* 300 */
    sl_admission_stats_t st;
    sl_admission_stats(q, 350, &st);
    static const uint64_t want[SL_ADMISSION_WAIT_BUCKETS] = { 1, 1, 1, 2, 3, 4, 4, 4, 4, 4, 4, 4 };
    for (size_t b = 0; b < SL_ADMISSION_WAIT_BUCKETS; b++)
        assert_int_equal(st.wait_le[b], want[b]);
    assert_int_equal(st.wait_sum_ms, 600);
    assert_int_equal(st.admitted, 4);
    assert_int_equal(st.admitted_immediately, 1);
    assert_int_equal(st.queued, 4);
    assert_int_equal(st.arrived, 5);
    assert_int_equal(st.depth, 1);
    assert_int_equal(st.depth_peak, 4);
    assert_true(fabs(st.tokens - 0.5) < 1e-9);
    assert_true(st.rate == 10.0);
    assert_true(sl_admission_wait_le[SL_ADMISSION_WAIT_BUCKETS - 1] == SL_MSEC_NEVER);
    assert_string_equal(sl_admission_reason_name(SL_ADM_QUEUE_FULL), "queue_full");
    assert_string_equal(sl_admission_reason_name(SL_ADM_WAIT_EXPIRED), "wait_expired");
    assert_string_equal(sl_admission_reason_name(SL_ADM_CLIENT_CAP), "client_cap");
    assert_string_equal(sl_admission_reason_name(SL_ADM_CLIENT_RATE), "client_rate");
    assert_string_equal(sl_admission_reason_name((sl_adm_reason_t)99), "unknown");
    sl_admission_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_check),
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_long_run),
        cmocka_unit_test(test_per_client_cap),
        cmocka_unit_test(test_per_client_rate),
        cmocka_unit_test(test_per_client_rate_refunds_unadmitted_waiters),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_hold),
        cmocka_unit_test(test_stall_forfeit),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_retry_after_spread),
        cmocka_unit_test(test_retry_after_follows_a_live_rate_change),
        cmocka_unit_test(test_slow_start),
        cmocka_unit_test(test_live_tuning),
        cmocka_unit_test(test_clock_edges),
        cmocka_unit_test(test_rate_edges),
        cmocka_unit_test(test_fifty_thousand),
        cmocka_unit_test(test_stats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
