/*
 * Tests for gateway/policy/balance.c: golden pick sequences for least
 * connections and smooth round robin, the eligibility rules (down, weight 0,
 * excluded, bitmaps past 64 backends), and the hash balancer's promises:
 * same key same backend, shares proportional to weight, and only ~1/N of
 * keys moving when one backend of N is removed, added, or goes down.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/balance.h"

#define MAXB 128

static sl_balancer_t *make(sl_balance_t algo, const uint32_t *weights, size_t n)
{
    static char names[MAXB][32];
    sl_balancer_backend_t bk[MAXB];
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "10.0.0.%zu:9000", i + 1);
        bk[i].id = names[i];
        bk[i].weight = weights[i];
    }
    sl_balancer_t *b = sl_balancer_new(algo, bk, n);
    assert_non_null(b);
    return b;
}

static void all_up(sl_backend_state_t *st, size_t n)
{
    for (size_t i = 0; i < n; i++)
        st[i] = (sl_backend_state_t){.active = 0, .up = true};
}

/* Pick `count` times, incrementing `active` like the shell does at connect. */
static void pick_seq(sl_balancer_t *b, sl_backend_state_t *st, size_t n, int *out, size_t count)
{
    for (size_t k = 0; k < count; k++) {
        out[k] = sl_balancer_pick(b, st, n, NULL, 0, NULL);
        assert_true(out[k] >= 0);
        st[out[k]].active++;
    }
}

static void test_least_conn_equal_backends_rotate(void **state)
{
    (void)state;
    uint32_t w[] = {1, 1, 1};
    sl_balancer_t *b = make(SL_BALANCE_LEAST_CONN, w, 3);
    sl_backend_state_t st[3];
    all_up(st, 3);
    int got[9];
    pick_seq(b, st, 3, got, 9);
    /* Each round of three picks gives each backend one (ties by smooth round robin). */
    const int want[] = {0, 1, 2, 2, 1, 0, 0, 1, 2};
    assert_memory_equal(got, want, sizeof(want));

    /* Even without the caller counting (a burst before any connect, as after
       a restart), ties rotate. */
    sl_balancer_free(b);
    b = make(SL_BALANCE_LEAST_CONN, w, 3);
    all_up(st, 3);
    int a = sl_balancer_pick(b, st, 3, NULL, 0, NULL);
    int c = sl_balancer_pick(b, st, 3, NULL, 0, NULL);
    int d = sl_balancer_pick(b, st, 3, NULL, 0, NULL);
    assert_true(a != c && c != d && a != d);
    sl_balancer_free(b);
}

static void test_least_conn_fills_the_emptiest(void **state)
{
    (void)state;
    uint32_t w[] = {1, 1, 1};
    sl_balancer_t *b = make(SL_BALANCE_LEAST_CONN, w, 3);
    sl_backend_state_t st[3] = {{5, true}, {2, true}, {3, true}};
    int got[5];
    pick_seq(b, st, 3, got, 5);
    /* 1 (2->3); then 1 and 2 take turns up to 5; the busiest is left alone. */
    const int want[] = {1, 1, 2, 2, 1};
    assert_memory_equal(got, want, sizeof(want));
    assert_int_equal(st[0].active, 5);
    assert_int_equal(st[1].active, 5);
    assert_int_equal(st[2].active, 5);
    sl_balancer_free(b);
}

static void test_least_conn_weighted(void **state)
{
    (void)state;
    uint32_t w[] = {1, 3};
    sl_balancer_t *b = make(SL_BALANCE_LEAST_CONN, w, 2);
    sl_backend_state_t st[2];
    all_up(st, 2);
    int got[400];
    pick_seq(b, st, 2, got, 400);
    /* active/weight stays level: 100 and 300 exactly. */
    assert_int_equal(st[0].active, 100);
    assert_int_equal(st[1].active, 300);

    /* Connections that do not overlap (each ends before the next): every
       pick is a tie at 0, and the weights still give the shares. The ties
       rotated by position, and 1 and 3 got half each. */
    all_up(st, 2);
    int count[2] = {0, 0};
    for (int k = 0; k < 400; k++) {
        int i = sl_balancer_pick(b, st, 2, NULL, 0, NULL);
        assert_true(i >= 0);
        count[i]++;
    }
    assert_int_equal(count[0], 100);
    assert_int_equal(count[1], 300);
    sl_balancer_free(b);
}

static void test_round_robin_smooth_golden(void **state)
{
    (void)state;
    uint32_t w[] = {5, 1, 1};
    sl_balancer_t *b = make(SL_BALANCE_ROUND_ROBIN, w, 3);
    sl_backend_state_t st[3];
    all_up(st, 3);
    int got[14];
    for (size_t k = 0; k < 14; k++)
        got[k] = sl_balancer_pick(b, st, 3, NULL, 0, NULL);
    const int want[] = {0, 0, 1, 0, 2, 0, 0, /* again: */ 0, 0, 1, 0, 2, 0, 0};
    assert_memory_equal(got, want, sizeof(want));
    sl_balancer_free(b);
}

static void test_round_robin_skips_down(void **state)
{
    (void)state;
    uint32_t w[] = {1, 1, 1};
    sl_balancer_t *b = make(SL_BALANCE_ROUND_ROBIN, w, 3);
    sl_backend_state_t st[3];
    all_up(st, 3);
    st[1].up = false;
    int count[3] = {0};
    for (int k = 0; k < 100; k++)
        count[sl_balancer_pick(b, st, 3, NULL, 0, NULL)]++;
    assert_int_equal(count[0], 50);
    assert_int_equal(count[1], 0);
    assert_int_equal(count[2], 50);
    sl_balancer_free(b);
}

static void test_eligibility_and_errors(void **state)
{
    (void)state;
    const sl_balance_t algos[] = {SL_BALANCE_LEAST_CONN, SL_BALANCE_ROUND_ROBIN, SL_BALANCE_HASH};
    const uint8_t key[] = "user-42";
    for (size_t a = 0; a < SL_ARRAY_SIZE(algos); a++) {
        uint32_t w[] = {1, 0, 1};
        sl_balancer_t *b = make(algos[a], w, 3);
        sl_backend_state_t st[3];
        all_up(st, 3);
        st[0].up = false;
        /* Only backend 2: 0 is down, 1 has weight 0. */
        for (int k = 0; k < 5; k++)
            assert_int_equal(sl_balancer_pick(b, st, 3, key, sizeof(key) - 1, NULL), 2);
        uint64_t ex[1] = {0};
        sl_bitmap_set(ex, 2);
        assert_int_equal(sl_balancer_pick(b, st, 3, key, sizeof(key) - 1, ex), SL_ENOENT);
        assert_int_equal(sl_balancer_pick(b, st, 2, key, sizeof(key) - 1, NULL), SL_EINVAL);
        sl_balancer_free(b);

        sl_balancer_t *empty = sl_balancer_new(algos[a], NULL, 0);
        assert_non_null(empty);
        assert_int_equal(sl_balancer_pick(empty, st, 0, NULL, 0, NULL), SL_ENOENT);
        sl_balancer_free(empty);
    }
    assert_null(sl_balancer_new((sl_balance_t)99, NULL, 0));
    sl_balancer_free(NULL);
}

/* The shell's retry loop: each failure excludes the backend just tried. */
static void test_retry_loop_with_exclusions_past_64(void **state)
{
    (void)state;
    enum { N = 100 };
    uint32_t w[N];
    for (size_t i = 0; i < N; i++)
        w[i] = 1;
    const sl_balance_t algos[] = {SL_BALANCE_LEAST_CONN, SL_BALANCE_ROUND_ROBIN, SL_BALANCE_HASH};
    for (size_t a = 0; a < SL_ARRAY_SIZE(algos); a++) {
        sl_balancer_t *b = make(algos[a], w, N);
        sl_backend_state_t st[N];
        all_up(st, N);
        uint64_t ex[SL_BALANCER_BITMAP_WORDS(N)] = {0};
        int seen[N] = {0};
        for (int k = 0; k < N; k++) {
            int i = sl_balancer_pick(b, st, N, (const uint8_t *)"k", 1, ex);
            assert_true(i >= 0 && i < N);
            assert_int_equal(seen[i], 0);   /* never an excluded one */
            seen[i] = 1;
            sl_bitmap_set(ex, (size_t)i);
        }
        assert_int_equal(sl_balancer_pick(b, st, N, (const uint8_t *)"k", 1, ex), SL_ENOENT);
        sl_balancer_free(b);
    }
}

enum { NKEYS = 20000 };

static int hash_pick(sl_balancer_t *b, const sl_backend_state_t *st, size_t n, unsigned k)
{
    char key[32];
    int len = snprintf(key, sizeof(key), "client-%u", k);
    return sl_balancer_pick(b, st, n, (const uint8_t *)key, (size_t)len, NULL);
}

static void test_hash_sticky_and_weighted(void **state)
{
    (void)state;
    uint32_t w[] = {1, 2, 3, 2};
    sl_balancer_t *b = make(SL_BALANCE_HASH, w, 4);
    sl_backend_state_t st[4];
    all_up(st, 4);
    int count[4] = {0};
    for (unsigned k = 0; k < NKEYS; k++) {
        int i = hash_pick(b, st, 4, k);
        assert_int_equal(hash_pick(b, st, 4, k), i);   /* sticky */
        count[i]++;
    }
    /* Shares 1/8, 2/8, 3/8, 2/8 within 1.5 percentage points. */
    for (size_t i = 0; i < 4; i++) {
        double share = (double)count[i] / NKEYS;
        double want = w[i] / 8.0;
        assert_true(share > want - 0.015 && share < want + 0.015);
    }
    sl_balancer_free(b);
}

static void test_hash_remove_one_of_n_moves_its_keys_only(void **state)
{
    (void)state;
    enum { N = 10 };
    uint32_t w[N];
    for (size_t i = 0; i < N; i++)
        w[i] = 1;
    sl_balancer_t *before = make(SL_BALANCE_HASH, w, N);
    /* Same ids minus "10.0.0.4:9000" (index 3): rebuild from the shorter list. */
    static char names[N][32];
    sl_balancer_backend_t bk[N - 1];
    for (size_t i = 0, j = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "10.0.0.%zu:9000", i + 1);
        if (i != 3)
            bk[j++] = (sl_balancer_backend_t){names[i], 1};
    }
    sl_balancer_t *after = sl_balancer_new(SL_BALANCE_HASH, bk, N - 1);
    assert_non_null(after);
    sl_backend_state_t st[N];
    all_up(st, N);
    unsigned moved = 0, on_removed = 0;
    for (unsigned k = 0; k < NKEYS; k++) {
        int i = hash_pick(before, st, N, k);
        int j = hash_pick(after, st, N - 1, k);
        int j_old = j >= 3 ? j + 1 : j;   /* index in the old list */
        if (i == 3)
            on_removed++;
        if (j_old != i) {
            moved++;
            assert_int_equal(i, 3);   /* only keys of the removed backend move */
        }
    }
    assert_int_equal(moved, on_removed);
    double frac = (double)moved / NKEYS;
    assert_true(frac > 0.085 && frac < 0.115);   /* ~1/10 */
    sl_balancer_free(before);
    sl_balancer_free(after);
}

static void test_hash_add_one_moves_keys_to_it_only(void **state)
{
    (void)state;
    enum { N = 8 };
    uint32_t w[N + 1];
    for (size_t i = 0; i <= N; i++)
        w[i] = 1;
    sl_balancer_t *before = make(SL_BALANCE_HASH, w, N);
    sl_balancer_t *after = make(SL_BALANCE_HASH, w, N + 1);
    sl_backend_state_t st[N + 1];
    all_up(st, N + 1);
    unsigned moved = 0;
    for (unsigned k = 0; k < NKEYS; k++) {
        int i = hash_pick(before, st, N, k);
        int j = hash_pick(after, st, N + 1, k);
        if (i != j) {
            moved++;
            assert_int_equal(j, N);
        }
    }
    double frac = (double)moved / NKEYS;
    assert_true(frac > 1.0 / 9 - 0.015 && frac < 1.0 / 9 + 0.015);
    sl_balancer_free(before);
    sl_balancer_free(after);
}

static void test_hash_down_backend_keys_fail_over_and_return(void **state)
{
    (void)state;
    enum { N = 5 };
    uint32_t w[N] = {1, 1, 1, 1, 1};
    sl_balancer_t *b = make(SL_BALANCE_HASH, w, N);
    sl_backend_state_t st[N];
    all_up(st, N);
    static int first[NKEYS];
    for (unsigned k = 0; k < NKEYS; k++)
        first[k] = hash_pick(b, st, N, k);
    st[2].up = false;
    unsigned moved = 0;
    for (unsigned k = 0; k < NKEYS; k++) {
        int j = hash_pick(b, st, N, k);
        assert_int_not_equal(j, 2);
        if (j != first[k]) {
            moved++;
            assert_int_equal(first[k], 2);
        }
    }
    assert_true(moved > NKEYS / 5 - NKEYS / 50 && moved < NKEYS / 5 + NKEYS / 50);
    st[2].up = true;
    for (unsigned k = 0; k < NKEYS; k++)
        assert_int_equal(hash_pick(b, st, N, k), first[k]);
    sl_balancer_free(b);
}

static void test_hash_without_key_is_least_conn(void **state)
{
    (void)state;
    uint32_t w[] = {1, 1, 1};
    sl_balancer_t *b = make(SL_BALANCE_HASH, w, 3);
    sl_backend_state_t st[3] = {{4, true}, {1, true}, {4, true}};
    assert_int_equal(sl_balancer_pick(b, st, 3, NULL, 0, NULL), 1);
    assert_int_equal(sl_balancer_algo(b), SL_BALANCE_HASH);
    assert_int_equal(sl_balancer_size(b), 3);
    sl_balancer_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_least_conn_equal_backends_rotate),
        cmocka_unit_test(test_least_conn_fills_the_emptiest),
        cmocka_unit_test(test_least_conn_weighted),
        cmocka_unit_test(test_round_robin_smooth_golden),
        cmocka_unit_test(test_round_robin_skips_down),
        cmocka_unit_test(test_eligibility_and_errors),
        cmocka_unit_test(test_retry_loop_with_exclusions_past_64),
        cmocka_unit_test(test_hash_sticky_and_weighted),
        cmocka_unit_test(test_hash_remove_one_of_n_moves_its_keys_only),
        cmocka_unit_test(test_hash_add_one_moves_keys_to_it_only),
        cmocka_unit_test(test_hash_down_backend_keys_fail_over_and_return),
        cmocka_unit_test(test_hash_without_key_is_least_conn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
