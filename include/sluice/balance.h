/*
 * sluice/balance.h: picking one backend of a pool.
 *
 * Three balancers over a pool of weighted backends:
 *
 * - least connections (the default): the backend with the smallest
 *   active / weight; equal candidates take turns (a rotating start), so
 *   identical idle backends share evenly instead of all traffic going to
 *   the first one.
 * - round robin: smooth weighted round robin; weights 5,1,1 give
 *   a a b a c a a, never five in a row.
 * - hash: weighted rendezvous (highest random weight) hashing on a key the
 *   shell chooses (a header value, a cookie, the client address). Each
 *   backend is identified by a stable id string (its address), not by its
 *   index, so adding or removing one backend of N moves only the keys that
 *   land on (or leave) that backend, about 1/N of them; a backend that is
 *   down or excluded sends its keys to their second choice and gets them
 *   back when it returns. A request with no key (an absent header) is
 *   balanced by least connections.
 *
 * A pick skips backends whose state says not up, backends of weight 0, and
 * those set in the caller's exclusion bitmap (backends a retry already
 * tried). The balancer never counts connections: the caller owns the state
 * array and increments `active` when it connects, decrements when it closes.
 *
 * A balancer holds small mutable state (the round-robin counters) and is not
 * thread-safe: one owner thread. Membership changes: build a new balancer
 * from the new list and free the old one (cheap: one array per backend).
 */
#ifndef SLUICE_BALANCE_H
#define SLUICE_BALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/common.h"
#include "sluice/config.h"   /* sl_balance_t: LEAST_CONN, ROUND_ROBIN, HASH */

/* One backend as the balancer is built from it. */
typedef struct sl_balancer_backend {
    const char *id;          /* stable identity, e.g. "10.0.0.7:9001"; copied as a hash */
    uint32_t weight;         /* 0: never picked (e.g. a backend being drained) */
} sl_balancer_backend_t;

/* What the balancer reads about each backend at pick time; owned by the caller. */
typedef struct sl_backend_state {
    uint32_t active;         /* connections open or being opened to it */
    bool up;                 /* usable: sl_health_usable() of its health machine */
} sl_backend_state_t;

typedef struct sl_balancer sl_balancer_t;

/* Words of a uint64_t exclusion bitmap covering n backends. */
#define SL_BALANCER_BITMAP_WORDS(n) (((n) + 63) / 64)

static inline void sl_bitmap_set(uint64_t *bm, size_t i)
{
    bm[i / 64] |= (uint64_t)1 << (i % 64);
}

static inline bool sl_bitmap_test(const uint64_t *bm, size_t i)
{
    return (bm[i / 64] >> (i % 64)) & 1;
}

/*
 * Build a balancer for n backends (n may be 0: every pick is SL_ENOENT).
 * Returns NULL on allocation failure or an unknown algorithm. The balancer
 * keeps no pointer into `backends` (ids are hashed at build time).
 */
sl_balancer_t *sl_balancer_new(sl_balance_t algo, const sl_balancer_backend_t *backends,
                               size_t n);

/* Free a balancer; NULL is fine. */
void sl_balancer_free(sl_balancer_t *b);

/* Number of backends it was built with. */
size_t sl_balancer_size(const sl_balancer_t *b);

sl_balance_t sl_balancer_algo(const sl_balancer_t *b);

/*
 * Pick a backend. `states` has one entry per backend, in build order, and n
 * must equal sl_balancer_size(). `key`/`key_len` are used by the hash
 * balancer only (NULL/0: least connections). `excluded` is NULL or a bitmap
 * of SL_BALANCER_BITMAP_WORDS(n) words, bit i set for backends to skip.
 * Returns the index picked (>= 0), SL_ENOENT when no backend is eligible, or
 * SL_EINVAL when n does not match. Only the round-robin counters change.
 */
int sl_balancer_pick(sl_balancer_t *b, const sl_backend_state_t *states, size_t n,
                     const uint8_t *key, size_t key_len, const uint64_t *excluded);

#endif
