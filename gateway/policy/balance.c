/*
 * balance.c: least connections, smooth weighted round robin, and weighted
 * rendezvous hashing over one pool of backends.
 *
 * Why these three. Least connections is the default because WebSocket
 * connections are long and uneven: counting open connections tracks the
 * real load better than counting picks. Its ties go by smooth weighted
 * round robin among the tied backends, because after a restart every
 * backend has 0 connections (a fixed "first minimum wins" would pile a
 * whole burst on backend 0 before the counts had time to move), and short
 * connections that never overlap tie at 0 on every pick (a plain rotation
 * there ignored the weights).
 *
 * Round robin is the smooth variant (each pick adds every eligible
 * backend's weight to its counter, takes the largest, subtracts the total
 * from the winner) because it spreads a heavy backend's turns out instead of
 * serving them back to back; skipping an ineligible backend simply leaves it
 * out of that round.
 *
 * Hashing is rendezvous (HRW) rather than a ring: the score of a key for a
 * backend is -weight / ln(u), u a uniform draw from hash(key, backend id).
 * The highest score wins, which gives each backend a share proportional to
 * its weight, needs no ring to build or virtual nodes to tune, and moves
 * only the keys of the backend added or removed. The eligible maximum is the
 * natural fallback when the first choice is down: the key's second choice,
 * the same for every gateway instance. Picks are O(n), fine for pools of a
 * few hundred backends.
 */
#include "sluice/balance.h"

#include <math.h>
#include <stdlib.h>

struct sl_balancer {
    sl_balance_t algo;
    size_t n;
    uint32_t *weight;
    uint64_t *id_hash;       /* hash: per-backend seed from its id */
    int64_t *current;        /* smooth WRR counters: round robin, least connections' ties */
};

/* Murmur3's 64-bit finalizer: a bijection that spreads every input bit. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* FNV-1a over the bytes, then mixed: FNV alone is weak in its high bits. */
static uint64_t hash_bytes(const uint8_t *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return mix64(h ^ len);
}

sl_balancer_t *sl_balancer_new(sl_balance_t algo, const sl_balancer_backend_t *backends,
                               size_t n)
{
    if (algo != SL_BALANCE_LEAST_CONN && algo != SL_BALANCE_ROUND_ROBIN &&
        algo != SL_BALANCE_HASH)
        return NULL;
    sl_balancer_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->algo = algo;
    b->n = n;
    size_t cells = n ? n : 1;
    b->weight = calloc(cells, sizeof(*b->weight));
    b->id_hash = calloc(cells, sizeof(*b->id_hash));
    b->current = calloc(cells, sizeof(*b->current));
    if (b->weight == NULL || b->id_hash == NULL || b->current == NULL) {
        sl_balancer_free(b);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const char *id = backends[i].id ? backends[i].id : "";
        size_t len = 0;
        while (id[len] != '\0')
            len++;
        b->weight[i] = backends[i].weight;
        b->id_hash[i] = hash_bytes((const uint8_t *)id, len);
    }
    return b;
}

void sl_balancer_free(sl_balancer_t *b)
{
    if (b == NULL)
        return;
    free(b->weight);
    free(b->id_hash);
    free(b->current);
    free(b);
}

size_t sl_balancer_size(const sl_balancer_t *b)
{
    return b->n;
}

sl_balance_t sl_balancer_algo(const sl_balancer_t *b)
{
    return b->algo;
}

static bool eligible(const sl_balancer_t *b, const sl_backend_state_t *st,
                     const uint64_t *excluded, size_t i)
{
    if (b->weight[i] == 0 || !st[i].up)
        return false;
    return excluded == NULL || !sl_bitmap_test(excluded, i);
}

/*
 * Minimum active/weight, compared by cross-multiplication (no division).
 * Ties go by smooth weighted round robin among the tied backends: with
 * connections that do not overlap every backend ties at 0 active, and a
 * plain rotation there gave weights 1 and 3 the same share.
 */
static int pick_least_conn(sl_balancer_t *b, const sl_backend_state_t *st,
                           const uint64_t *excluded)
{
    long best = -1;
    for (size_t i = 0; i < b->n; i++) {
        if (!eligible(b, st, excluded, i))
            continue;
        if (best < 0 ||
            (uint64_t)st[i].active * b->weight[best] <
                (uint64_t)st[best].active * b->weight[i])
            best = (long)i;
    }
    if (best < 0)
        return SL_ENOENT;
    long pick = -1;
    int64_t total = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (!eligible(b, st, excluded, i) ||
            (uint64_t)st[i].active * b->weight[best] != (uint64_t)st[best].active * b->weight[i])
            continue;
        b->current[i] += b->weight[i];
        total += b->weight[i];
        if (pick < 0 || b->current[i] > b->current[pick])
            pick = (long)i;
    }
    b->current[pick] -= total;
    return (int)pick;
}

static int pick_round_robin(sl_balancer_t *b, const sl_backend_state_t *st,
                            const uint64_t *excluded)
{
    long best = -1;
    int64_t total = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (!eligible(b, st, excluded, i))
            continue;
        b->current[i] += b->weight[i];
        total += b->weight[i];
        if (best < 0 || b->current[i] > b->current[best])
            best = (long)i;
    }
    if (best < 0)
        return SL_ENOENT;
    b->current[best] -= total;
    return (int)best;
}

/* A uniform draw in (0, 1) from 53 bits of h; never 0, never 1. */
static double unit_open(uint64_t h)
{
    return ((double)(h >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static int pick_hash(const sl_balancer_t *b, const sl_backend_state_t *st,
                     const uint64_t *excluded, const uint8_t *key, size_t key_len)
{
    uint64_t kh = hash_bytes(key, key_len);
    long best = -1;
    double best_score = 0.0;
    for (size_t i = 0; i < b->n; i++) {
        if (!eligible(b, st, excluded, i))
            continue;
        double u = unit_open(mix64(kh ^ b->id_hash[i]));
        double score = -(double)b->weight[i] / log(u);
        if (best < 0 || score > best_score) {
            best = (long)i;
            best_score = score;
        }
    }
    return best < 0 ? SL_ENOENT : (int)best;
}

int sl_balancer_pick(sl_balancer_t *b, const sl_backend_state_t *states, size_t n,
                     const uint8_t *key, size_t key_len, const uint64_t *excluded)
{
    if (n != b->n || (n > 0 && states == NULL))
        return SL_EINVAL;
    if (n == 0)
        return SL_ENOENT;
    switch (b->algo) {
    case SL_BALANCE_ROUND_ROBIN:
        return pick_round_robin(b, states, excluded);
    case SL_BALANCE_HASH:
        if (key != NULL && key_len > 0)
            return pick_hash(b, states, excluded, key, key_len);
        return pick_least_conn(b, states, excluded);
    case SL_BALANCE_LEAST_CONN:
    default:
        return pick_least_conn(b, states, excluded);
    }
}
