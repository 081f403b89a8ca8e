/*
 * bench/loadgen_stats.c: latency histograms, counters, and what is written
 * at the end (JSON summary or text, the per-second CSV timeline, the deploy
 * sent log).
 *
 * The histogram is log-linear like HdrHistogram: exact below 32 us, then 32
 * buckets per power of two, so any quantile is within ~3% of the true value
 * over a range of microseconds to hours, in 3.5 KB, with an O(1) add that
 * never allocates. Each thread keeps its own (and one per second for the
 * timeline); the main thread merges them after the threads have joined, so
 * no counter is shared or locked while the load runs. The exception is the
 * connected gauge in lg_shared: storm recovery time is a property of all
 * connections together, so it is kept with atomics.
 */
#include "loadgen.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static uint32_t bucket_of(uint64_t v)
{
    if (v < LG_HIST_SUB)
        return (uint32_t)v;
    uint32_t e = 63u - (uint32_t)__builtin_clzll(v);          /* >= SUB_BITS */
    if (e >= 36)
        return LG_HIST_BUCKETS - 1;
    uint32_t sub = (uint32_t)(v >> (e - LG_HIST_SUB_BITS)) & (LG_HIST_SUB - 1);
    return LG_HIST_SUB + (e - LG_HIST_SUB_BITS) * LG_HIST_SUB + sub;
}

/* The middle of bucket b's value range. */
static uint64_t bucket_mid(uint32_t b)
{
    if (b < LG_HIST_SUB)
        return b;
    uint32_t e = (b - LG_HIST_SUB) / LG_HIST_SUB + LG_HIST_SUB_BITS;
    uint32_t sub = (b - LG_HIST_SUB) % LG_HIST_SUB;
    uint64_t width = 1ull << (e - LG_HIST_SUB_BITS);
    uint64_t lo = (1ull << e) + (uint64_t)sub * width;
    return lo + width / 2;
}

void lg_hist_add(lg_hist_t *h, uint64_t us)
{
    uint32_t b = bucket_of(us);
    if (h->counts[b] != UINT32_MAX)
        h->counts[b]++;
    h->count++;
    if (us > h->max)
        h->max = us;
}

void lg_hist_merge(lg_hist_t *dst, const lg_hist_t *src)
{
    for (uint32_t i = 0; i < LG_HIST_BUCKETS; i++) {
        uint64_t s = (uint64_t)dst->counts[i] + src->counts[i];
        dst->counts[i] = s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
    }
    dst->count += src->count;
    dst->max = SL_MAX(dst->max, src->max);
}

uint64_t lg_hist_quantile(const lg_hist_t *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t total = 0;
    for (uint32_t i = 0; i < LG_HIST_BUCKETS; i++)
        total += h->counts[i];
    uint64_t rank = (uint64_t)(q * (double)total + 0.5);
    rank = SL_MAX(rank, (uint64_t)1);
    uint64_t seen = 0;
    for (uint32_t i = 0; i < LG_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank)
            return SL_MIN(bucket_mid(i), h->max);
    }
    return h->max;
}

lg_tl_t *lg_tl_at(lg_worker_t *w, uint64_t now_ns)
{
    if (!w->tl || now_ns < lg_shared.t0_ns)
        return NULL;
    uint64_t sec = (now_ns - lg_shared.t0_ns) / 1000000000u;
    return sec < w->n_tl ? &w->tl[sec] : NULL;
}

void lg_count_code(lg_stats_t *st, uint16_t code)
{
    for (uint32_t i = 0; i < st->n_codes; i++) {
        if (st->codes[i].code == code) {
            st->codes[i].n++;
            return;
        }
    }
    if (st->n_codes < LG_MAX_CODES)
        st->codes[st->n_codes++] = (lg_count_t){ .code = code, .n = 1 };
}

int32_t lg_count_name(lg_stats_t *st, const char *name, size_t len)
{
    len = SL_MIN(len, (size_t)LG_NAME_MAX - 1);
    for (uint32_t i = 0; i < st->n_names; i++) {
        if (strlen(st->names[i].name) == len && memcmp(st->names[i].name, name, len) == 0) {
            st->names[i].n++;
            return (int32_t)i;
        }
    }
    if (st->n_names >= LG_MAX_NAMES)
        return -1;
    lg_count_t *e = &st->names[st->n_names];
    memcpy(e->name, name, len);
    e->name[len] = '\0';
    for (size_t i = 0; i < len; i++) {
        if (e->name[i] < 0x21 || e->name[i] > 0x7e || e->name[i] == '"' || e->name[i] == '\\')
            e->name[i] = '_';   /* it goes into JSON and a space-separated log */
    }
    e->n = 1;
    return (int32_t)st->n_names++;
}

static void atomic_max(_Atomic uint64_t *a, uint64_t v)
{
    uint64_t cur = atomic_load(a);
    while (v > cur && !atomic_compare_exchange_weak(a, &cur, v))
        ;
}

void lg_gauge(lg_worker_t *w, int delta, uint64_t now_ns)
{
    uint64_t n = lg_opt.conns;
    w->connected = (uint32_t)((int64_t)w->connected + delta);
    if (delta > 0) {
        uint64_t v = atomic_fetch_add(&lg_shared.connected, 1) + 1;
        atomic_max(&lg_shared.peak, v);
        if (v == n) {
            uint64_t zero = 0;
            atomic_compare_exchange_strong(&lg_shared.full_ns, &zero, now_ns);
            uint64_t d = atomic_exchange(&lg_shared.drop_ns, 0);
            if (d != 0 && !w->stopping) {
                uint64_t us = (now_ns - d) / 1000;
                atomic_fetch_add(&lg_shared.episodes, 1);
                atomic_store(&lg_shared.recovery_last_us, us);
                atomic_max(&lg_shared.recovery_max_us, us);
            }
        }
    } else {
        uint64_t prev = atomic_fetch_sub(&lg_shared.connected, 1);
        if (prev == n && !w->stopping) {
            uint64_t zero = 0;
            atomic_compare_exchange_strong(&lg_shared.drop_ns, &zero, now_ns);
        }
    }
    lg_tl_t *t = lg_tl_at(w, now_ns);
    if (t)
        t->connected = w->connected;
}

int lg_add_gen(lg_worker_t *w, const lg_conn_t *c, int32_t how)
{
    if (w->n_gens == w->cap_gens) {
        size_t cap = SL_MAX(w->cap_gens * 2, (size_t)1024);
        lg_gen_rec_t *g = realloc(w->gens, cap * sizeof(*g));
        if (!g)
            return SL_ENOMEM;
        w->gens = g;
        w->cap_gens = cap;
    }
    w->gens[w->n_gens++] = (lg_gen_rec_t){
        .id = c->id, .gen = c->gen, .last_seq = c->last_seq, .how = how, .name = c->name,
    };
    return 0;
}
