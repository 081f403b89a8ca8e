/*
 * Admission queue: a bounded FIFO of clients waiting for one bucket's tokens.
 *
 * Why a slot array with index links: waiters live in one array that grows by
 * doubling up to the queue length (a queue of 50,000 that never fills costs
 * nothing), linked by 32-bit indexes into a doubly linked FIFO, with a free
 * list threaded through the same links. Cancel is O(1) and the freed slot is
 * the next one used. A handle is (generation << 32 | slot + 1): a slot's
 * generation changes each time it is freed, so a stale handle (the waiter was
 * admitted while its cancel was in flight) is recognised, never mistaken for
 * the slot's next waiter.
 *
 * Why deadlines are computed, not stored: a waiter's deadline is its arrival
 * time plus the CURRENT max_wait. Arrival times grow along the FIFO, so the
 * head always expires first, even after max_wait is tuned live; tick and
 * next_wakeup only ever look at the head.
 *
 * Why a second list per address: the per-address cap needs a count, and the
 * 429 Retry-After needs to know when that address's oldest waiter will leave
 * (its place in line). Each address entry in a small open-addressing table
 * (linear probing, backward-shift deletion, no tombstones) keeps the count,
 * the ends of its waiters' list and a tiny token bucket for the per-address
 * rate. The hash is salted from the seed, so clients choosing IPv6 addresses
 * cannot easily aim at one probe chain. An entry goes away when its count is
 * 0 and its tiny bucket is full again (then it is indistinguishable from a
 * fresh one); entries still refilling are swept when the table would grow.
 *
 * Why Retry-After chains "promised slots": rejected clients are told to come
 * back when the rate will have room for them. The first rejection at an
 * instant gets the time the queue ahead drains plus one token (its would-be
 * place in line); each further rejection gets a slot 1/rate later than the
 * previous promise, so 1,000 clients rejected together are told 1,000
 * different times spread at the rate. Jitter of up to a fifth of the value
 * (kept inside [min, max]) breaks the ties that remain, e.g. between gateways.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/admission.h"

#define NIL UINT32_MAX
#define MIN_WAITERS 64u
#define MIN_CLIENTS 64u

const sl_msec_t sl_admission_wait_le[SL_ADMISSION_WAIT_BUCKETS] = {
    1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, SL_MSEC_NEVER,
};

typedef struct waiter {
    void *user_data;
    sl_msec_t arrived;
    uint64_t seq;                /* arrival number, for places in line */
    uint32_t gen;
    uint32_t prev, next;         /* FIFO; next also links the free list */
    uint32_t aprev, anext;       /* this address's waiters, oldest first */
    bool live;
    bool pc_token;               /* took its address's token when it queued */
    sl_client_key_t key;
} waiter_t;

typedef struct client {
    sl_client_key_t key;
    bool used;
    uint32_t hash;
    uint32_t queued;
    uint32_t first, last;        /* this address's waiters */
    uint64_t rem;                /* per-address refill remainder */
    int64_t tokens;              /* per-address micro-tokens */
    sl_msec_t refilled;
} client_t;

struct sl_admission {
    sl_admission_params_t p;
    bool held;                   /* admit nobody (the pool behind is down); expiry goes on */
    sl_bucket_t bucket;
    sl_rng_t rng;
    uint64_t salt;
    uint64_t pc_rate_u;          /* per-address rate, micro-tokens per second */
    int64_t pc_cap;              /* per-address burst, micro-tokens */
    sl_msec_t now;               /* latest time seen: the clock never goes back here */
    double promise;              /* last Retry-After slot promised (absolute ms) */

    waiter_t *w;
    uint32_t wcap, free_head, head, tail, depth;
    uint64_t next_seq;

    client_t *ct;
    uint32_t ct_cap, ct_count;

    sl_admission_stats_t st;     /* counters; gauges are filled in on read */
    uint64_t wait_hist[SL_ADMISSION_WAIT_BUCKETS];
};

/* ---- params ------------------------------------------------------------ */

int sl_admission_params_check(const sl_admission_params_t *p)
{
    if (sl_bucket_params_check(&p->bucket) != SL_OK)
        return SL_EINVAL;
    if (p->queue_length > SL_ADMISSION_QUEUE_MAX)
        return SL_EINVAL;
    if (!(p->per_client_rate >= 0.0 && p->per_client_rate <= SL_BUCKET_RATE_MAX))
        return SL_EINVAL;
    if (p->per_client_rate > 0.0 &&
        (p->per_client_burst < 1 || p->per_client_burst > SL_BUCKET_BURST_MAX))
        return SL_EINVAL;
    if (p->retry_after_min > p->retry_after_max)
        return SL_EINVAL;
    return SL_OK;
}

static void apply_params(sl_admission_t *q, const sl_admission_params_t *p)
{
    q->p = *p;
    q->pc_rate_u = (uint64_t)llround(p->per_client_rate * SL_BUCKET_UNIT);
    q->pc_cap = (int64_t)SL_MAX(p->per_client_burst, 1u) * SL_BUCKET_UNIT;
}

/* ---- per-address table --------------------------------------------------- */

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint32_t key_hash(const sl_admission_t *q, const sl_client_key_t *k)
{
    uint64_t a, b;
    memcpy(&a, k->addr, 8);
    memcpy(&b, k->addr + 8, 8);
    uint64_t h = mix64(q->salt ^ k->family);
    h = mix64(h ^ a);
    h = mix64(h ^ b);
    return (uint32_t)(h >> 32);
}

static bool key_eq(const sl_client_key_t *a, const sl_client_key_t *b)
{
    return a->family == b->family && memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

static uint32_t client_find(const sl_admission_t *q, const sl_client_key_t *k, uint32_t h)
{
    uint32_t mask = q->ct_cap - 1;
    for (uint32_t i = h & mask;; i = (i + 1) & mask) {
        if (!q->ct[i].used)
            return NIL;
        if (q->ct[i].hash == h && key_eq(&q->ct[i].key, k))
            return i;
    }
}

/* Brings an address's tiny bucket up to now; tokens capped at the current burst. */
static void client_refill(const sl_admission_t *q, client_t *c, sl_msec_t now)
{
    if (now > c->refilled) {
        sl_msec_t ms = now - c->refilled;
        c->refilled = now;
        if (q->pc_rate_u == 0 || ms > (uint64_t)q->pc_cap * 1000 / q->pc_rate_u) {
            c->tokens = q->pc_cap;
            c->rem = 0;
        } else {
            uint64_t x = q->pc_rate_u * ms + c->rem;
            c->rem = x % 1000;
            c->tokens += (int64_t)(x / 1000);
        }
    }
    if (c->tokens > q->pc_cap)
        c->tokens = q->pc_cap;
}

/* An entry with nobody queued and a full tiny bucket carries no state. */
static bool client_idle(const sl_admission_t *q, client_t *c, sl_msec_t now)
{
    if (c->queued > 0)
        return false;
    if (q->p.per_client_rate <= 0.0)
        return true;
    client_refill(q, c, now);
    return c->tokens >= q->pc_cap;
}

static void client_delete(sl_admission_t *q, uint32_t i)
{
    uint32_t mask = q->ct_cap - 1;
    for (uint32_t j = (i + 1) & mask; q->ct[j].used; j = (j + 1) & mask) {
        uint32_t home = q->ct[j].hash & mask;
        /* Entry j may move to the hole at i unless its home lies in (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            q->ct[i] = q->ct[j];
            i = j;
        }
    }
    q->ct[i].used = false;
    q->ct_count--;
}

static void client_place(client_t *t, uint32_t cap, const client_t *c)
{
    uint32_t i = c->hash & (cap - 1);
    while (t[i].used)
        i = (i + 1) & (cap - 1);
    t[i] = *c;
}

/* Rebuilds the table without idle entries, sized for 4x the survivors. */
static int client_rebuild(sl_admission_t *q, sl_msec_t now)
{
    uint32_t live = 0;
    for (uint32_t i = 0; i < q->ct_cap; i++)
        if (q->ct[i].used && !client_idle(q, &q->ct[i], now))
            live++;
    uint32_t cap = MIN_CLIENTS;
    while (cap < 4u * (live + 1))
        cap *= 2;
    client_t *t = calloc(cap, sizeof(*t));
    if (t == NULL)
        return SL_ENOMEM;
    for (uint32_t i = 0; i < q->ct_cap; i++)
        if (q->ct[i].used && !client_idle(q, &q->ct[i], now))
            client_place(t, cap, &q->ct[i]);
    free(q->ct);
    q->ct = t;
    q->ct_cap = cap;
    q->ct_count = live;
    return SL_OK;
}

/* Finds or creates the entry for k. Returns its index, or NIL when out of memory. */
static uint32_t client_get(sl_admission_t *q, const sl_client_key_t *k, sl_msec_t now)
{
    uint32_t h = key_hash(q, k);
    uint32_t i = client_find(q, k, h);
    if (i != NIL)
        return i;
    if (2 * (q->ct_count + 1) > q->ct_cap && client_rebuild(q, now) != SL_OK)
        return NIL;
    client_t c = { .key = *k, .used = true, .hash = h, .first = NIL, .last = NIL,
                   .tokens = q->pc_cap, .refilled = now };
    client_place(q->ct, q->ct_cap, &c);
    q->ct_count++;
    return client_find(q, k, h);
}

/* ---- waiters ------------------------------------------------------------- */

static sl_admission_handle_t handle_of(const sl_admission_t *q, uint32_t i)
{
    return ((uint64_t)q->w[i].gen << 32) | (uint64_t)(i + 1);
}

/* Makes sure a free slot exists. 0 or SL_ENOMEM. */
static int waiter_reserve(sl_admission_t *q)
{
    if (q->free_head != NIL)
        return SL_OK;
    uint32_t cap = q->wcap ? q->wcap * 2 : MIN_WAITERS;
    cap = SL_MAX(SL_MIN(cap, q->p.queue_length), q->wcap + 1);
    waiter_t *w = realloc(q->w, (size_t)cap * sizeof(*w));
    if (w == NULL)
        return SL_ENOMEM;
    q->w = w;
    for (uint32_t i = cap; i-- > q->wcap;) {
        w[i] = (waiter_t){ .gen = 1, .prev = NIL, .next = q->free_head };
        q->free_head = i;
    }
    q->wcap = cap;
    return SL_OK;
}

static uint32_t waiter_push(sl_admission_t *q, uint32_t ci, sl_msec_t now,
                            const sl_client_key_t *k, void *user_data)
{
    uint32_t i = q->free_head;
    waiter_t *w = &q->w[i];
    client_t *c = &q->ct[ci];
    q->free_head = w->next;
    *w = (waiter_t){ .user_data = user_data, .arrived = now, .seq = q->next_seq++,
                     .gen = w->gen, .prev = q->tail, .next = NIL,
                     .aprev = c->last, .anext = NIL, .live = true, .key = *k };
    if (q->tail != NIL)
        q->w[q->tail].next = i;
    else
        q->head = i;
    q->tail = i;
    if (c->last != NIL)
        q->w[c->last].anext = i;
    else
        c->first = i;
    c->last = i;
    c->queued++;
    q->depth++;
    if (q->depth > q->st.depth_peak)
        q->st.depth_peak = q->depth;
    return i;
}

/* Unlinks waiter i from both lists and frees its slot (its handle goes stale). */
static void waiter_remove(sl_admission_t *q, uint32_t i)
{
    waiter_t *w = &q->w[i];
    if (w->prev != NIL)
        q->w[w->prev].next = w->next;
    else
        q->head = w->next;
    if (w->next != NIL)
        q->w[w->next].prev = w->prev;
    else
        q->tail = w->prev;

    uint32_t ci = client_find(q, &w->key, key_hash(q, &w->key));
    client_t *c = &q->ct[ci];
    if (w->aprev != NIL)
        q->w[w->aprev].anext = w->anext;
    else
        c->first = w->anext;
    if (w->anext != NIL)
        q->w[w->anext].aprev = w->aprev;
    else
        c->last = w->aprev;
    if (--c->queued == 0 && client_idle(q, c, q->now))
        client_delete(q, ci);

    w->live = false;
    w->user_data = NULL;
    w->gen++;
    w->next = q->free_head;
    q->free_head = i;
    q->depth--;
}

/*
 * A waiter that leaves without being admitted (cancelled, expired) gives its
 * address's token back: per_client_rate counts admissions, and a client that
 * gave up in line, or was turned away at the end of it, was never admitted.
 */
static void refund_client_token(sl_admission_t *q, uint32_t i)
{
    waiter_t *w = &q->w[i];
    if (!w->pc_token)
        return;
    uint32_t ci = client_find(q, &w->key, key_hash(q, &w->key));
    if (ci == NIL)
        return;
    client_t *c = &q->ct[ci];
    client_refill(q, c, q->now);
    c->tokens = SL_MIN(c->tokens + SL_BUCKET_UNIT, q->pc_cap);
    w->pc_token = false;
}

static sl_msec_t deadline(const sl_admission_t *q, const waiter_t *w)
{
    sl_msec_t d = w->arrived + q->p.max_wait;
    return d < w->arrived ? SL_MSEC_NEVER : d;
}

/* ---- decisions ------------------------------------------------------------ */

/* Clamps base into [min, max], then draws from a window of a fifth of it, inside the bounds. */
static sl_msec_t jitter(sl_admission_t *q, sl_msec_t base)
{
    sl_msec_t lo = q->p.retry_after_min, hi = q->p.retry_after_max;
    sl_msec_t r = SL_MIN(SL_MAX(base, lo), hi);
    sl_msec_t w = SL_MIN(r / 5, hi - lo);
    if (r > hi - w)
        r = hi - w;
    return r + sl_rng_below(&q->rng, w + 1);
}

/* Retry-After for a client whose would-be place in line is 'place' (1 = next token). */
static sl_msec_t retry_for_place(sl_admission_t *q, sl_msec_t now, uint64_t place, bool chain)
{
    sl_msec_t t = sl_bucket_eta(&q->bucket, now, place);
    if (t == SL_MSEC_NEVER)
        return jitter(q, q->p.retry_after_max);
    double slot = (double)t;
    if (chain) {
        double rate = sl_bucket_current_rate(&q->bucket, now);
        double step = rate > 0.0 ? 1000.0 / rate : 0.0;
        slot = fmax(slot, q->promise + step);
        slot = fmin(slot, (double)now + (double)q->p.retry_after_max);
        q->promise = slot;
    }
    return jitter(q, (sl_msec_t)ceil(slot - (double)now));
}

static int reject(sl_admission_t *q, sl_admission_event_t *out, sl_adm_reason_t reason,
                  sl_msec_t retry_after)
{
    q->st.rejected[reason]++;
    out->status = SL_ADM_REJECTED;
    out->reason = reason;
    out->http_status = reason == SL_ADM_CLIENT_CAP || reason == SL_ADM_CLIENT_RATE ? 429 : 503;
    out->retry_after_ms = retry_after;
    return SL_ADM_REJECTED;
}

static void record_wait(sl_admission_t *q, sl_msec_t waited)
{
    size_t b = 0;
    while (waited > sl_admission_wait_le[b])
        b++;
    q->wait_hist[b]++;
    q->st.wait_sum_ms += waited;
    q->st.admitted++;
}

static sl_msec_t advance(sl_admission_t *q, sl_msec_t now)
{
    if (now > q->now)
        q->now = now;
    return q->now;
}

/* 429 for an address at its cap: it has room once its oldest waiter leaves. */
static sl_msec_t cap_retry(sl_admission_t *q, sl_msec_t now, const client_t *c)
{
    uint64_t place = q->w[c->first].seq - q->w[q->head].seq + 1;
    return retry_for_place(q, now, place, false);
}

static sl_msec_t rate_retry(sl_admission_t *q, const client_t *c)
{
    uint64_t need = (uint64_t)(SL_BUCKET_UNIT - c->tokens) * 1000 - c->rem;
    uint64_t ms = (need + q->pc_rate_u - 1) / q->pc_rate_u;
    return jitter(q, ms);
}

/* ---- public API ------------------------------------------------------------ */

const char *sl_admission_reason_name(sl_adm_reason_t reason)
{
    static const char *const names[SL_ADM_REASON_COUNT] = {
        [SL_ADM_NONE] = "none",
        [SL_ADM_QUEUE_FULL] = "queue_full",
        [SL_ADM_WAIT_EXPIRED] = "wait_expired",
        [SL_ADM_CLIENT_CAP] = "client_cap",
        [SL_ADM_CLIENT_RATE] = "client_rate",
    };
    return (unsigned)reason < SL_ADM_REASON_COUNT ? names[reason] : "unknown";
}

sl_admission_t *sl_admission_new(const sl_admission_params_t *p, uint64_t seed, sl_msec_t now)
{
    if (sl_admission_params_check(p) != SL_OK)
        return NULL;
    sl_admission_t *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    q->ct = calloc(MIN_CLIENTS, sizeof(*q->ct));
    if (q->ct == NULL) {
        free(q);
        return NULL;
    }
    q->ct_cap = MIN_CLIENTS;
    apply_params(q, p);
    sl_bucket_init(&q->bucket, &p->bucket, now);
    q->rng.state = seed;
    q->salt = sl_rng_next(&q->rng);
    q->now = now;
    q->free_head = q->head = q->tail = NIL;
    return q;
}

void sl_admission_free(sl_admission_t *q)
{
    if (q == NULL)
        return;
    free(q->w);
    free(q->ct);
    free(q);
}

/* The queueing half of arrive: the client could not go at once. */
static int enqueue(sl_admission_t *q, sl_msec_t now, const sl_client_key_t *k,
                   void *user_data, sl_admission_event_t *out)
{
    uint32_t ci = client_find(q, k, key_hash(q, k));
    if (q->p.per_client > 0 && ci != NIL && q->ct[ci].queued >= q->p.per_client)
        return reject(q, out, SL_ADM_CLIENT_CAP, cap_retry(q, now, &q->ct[ci]));
    if (q->depth >= q->p.queue_length)
        return reject(q, out, SL_ADM_QUEUE_FULL, retry_for_place(q, now, q->depth + 1ull, true));
    if (waiter_reserve(q) != SL_OK || (ci = client_get(q, k, now)) == NIL)
        return SL_ENOMEM;
    if (q->pc_rate_u > 0)
        q->ct[ci].tokens -= SL_BUCKET_UNIT;
    uint32_t i = waiter_push(q, ci, now, k, user_data);
    q->w[i].pc_token = q->pc_rate_u > 0;
    q->st.queued++;
    out->status = SL_ADM_QUEUED;
    out->handle = handle_of(q, i);
    return SL_ADM_QUEUED;
}

int sl_admission_arrive(sl_admission_t *q, sl_msec_t now, const sl_client_key_t *k,
                        void *user_data, sl_admission_event_t *out)
{
    now = advance(q, now);
    sl_admission_event_t ev = { .user_data = user_data };
    uint32_t ci = NIL;
    if (q->pc_rate_u > 0) {
        if ((ci = client_get(q, k, now)) == NIL)
            return SL_ENOMEM;
        client_refill(q, &q->ct[ci], now);
        if (q->ct[ci].tokens < SL_BUCKET_UNIT) {
            q->st.arrived++;
            *out = ev;
            return reject(q, out, SL_ADM_CLIENT_RATE, rate_retry(q, &q->ct[ci]));
        }
    }
    int rc;
    if (!q->held && q->depth == 0 && sl_bucket_take(&q->bucket, now)) {
        if (ci != NIL)
            q->ct[ci].tokens -= SL_BUCKET_UNIT;
        record_wait(q, 0);
        q->st.admitted_immediately++;
        ev.status = SL_ADM_ADMITTED;
        rc = SL_ADM_ADMITTED;
    } else {
        rc = enqueue(q, now, k, user_data, &ev);
        if (rc < 0)
            return rc;
    }
    q->st.arrived++;
    *out = ev;
    return rc;
}

int sl_admission_cancel(sl_admission_t *q, sl_admission_handle_t h)
{
    uint64_t slot = h & 0xffffffffu;
    if (slot == 0 || slot > q->wcap)
        return SL_ENOENT;
    uint32_t i = (uint32_t)(slot - 1);
    if (!q->w[i].live || q->w[i].gen != (uint32_t)(h >> 32))
        return SL_ENOENT;
    refund_client_token(q, i);
    waiter_remove(q, i);
    q->st.cancelled++;
    return SL_OK;
}

size_t sl_admission_tick(sl_admission_t *q, sl_msec_t now, sl_admission_event_t *out, size_t max)
{
    now = advance(q, now);
    size_t n = 0;
    while (n < max && q->head != NIL) {
        uint32_t i = q->head;
        waiter_t *w = &q->w[i];
        sl_admission_event_t ev = { .handle = handle_of(q, i), .user_data = w->user_data,
                                    .waited_ms = now - w->arrived };
        if (!q->held && sl_bucket_take(&q->bucket, now)) {
            ev.status = SL_ADM_ADMITTED;
            record_wait(q, ev.waited_ms);
            waiter_remove(q, i);
        } else if (now >= deadline(q, w)) {
            refund_client_token(q, i);
            waiter_remove(q, i);
            reject(q, &ev, SL_ADM_WAIT_EXPIRED, retry_for_place(q, now, q->depth + 1ull, true));
        } else {
            break;
        }
        out[n++] = ev;
    }
    return n;
}

sl_msec_t sl_admission_next_wakeup(const sl_admission_t *q, sl_msec_t now)
{
    if (q->head == NIL)
        return SL_MSEC_NEVER;
    now = SL_MAX(now, q->now);
    sl_msec_t t = deadline(q, &q->w[q->head]);
    if (!q->held)
        t = SL_MIN(sl_bucket_eta(&q->bucket, now, 1), t);
    return SL_MAX(t, now);
}

sl_msec_t sl_admission_forfeit(sl_admission_t *q, sl_msec_t from, sl_msec_t now)
{
    now = advance(q, now);
    if (q->head == NIL || q->held || from >= now)
        return 0;
    sl_msec_t ms = sl_bucket_skip(&q->bucket, from, now);
    q->st.forfeited_ms += ms;
    return ms;
}

void sl_admission_hold(sl_admission_t *q, bool held)
{
    q->held = held;
}

bool sl_admission_held(const sl_admission_t *q)
{
    return q->held;
}

int sl_admission_set_params(sl_admission_t *q, const sl_admission_params_t *p, sl_msec_t now)
{
    if (sl_admission_params_check(p) != SL_OK)
        return SL_EINVAL;
    now = advance(q, now);
    /* Settle per-address buckets at the old rate before the rate changes. */
    for (uint32_t i = 0; i < q->ct_cap; i++)
        if (q->ct[i].used)
            client_refill(q, &q->ct[i], now);
    double was = sl_bucket_current_rate(&q->bucket, now);
    sl_bucket_set(&q->bucket, &p->bucket, now);
    apply_params(q, p);
    /* The slots promised so far were spread at the old rate: the clients
       holding them come back over (promise - now) and take that much of the
       new rate's time. The chain goes on from there, so a rate raised in a
       storm tells the next rejected clients sooner times (they were told the
       old rate's, up to retry_after_max), and a rate lowered, later ones. */
    double rate = sl_bucket_current_rate(&q->bucket, now);
    if (q->promise > (double)now && was > 0.0 && rate > 0.0)
        q->promise = (double)now + (q->promise - (double)now) * was / rate;
    return SL_OK;
}

void sl_admission_get_params(const sl_admission_t *q, sl_admission_params_t *out)
{
    *out = q->p;
}

sl_bucket_t *sl_admission_bucket(sl_admission_t *q)
{
    return &q->bucket;
}

uint32_t sl_admission_depth(const sl_admission_t *q)
{
    return q->depth;
}

void sl_admission_stats(sl_admission_t *q, sl_msec_t now, sl_admission_stats_t *out)
{
    now = advance(q, now);
    *out = q->st;
    out->tokens = sl_bucket_tokens(&q->bucket, now);
    out->rate = sl_bucket_current_rate(&q->bucket, now);
    out->depth = q->depth;
    out->clients = q->ct_count;
    uint64_t sum = 0;
    for (size_t b = 0; b < SL_ADMISSION_WAIT_BUCKETS; b++) {
        sum += q->wait_hist[b];
        out->wait_le[b] = sum;
    }
}
