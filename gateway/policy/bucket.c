/*
 * Token bucket with slow start, in fixed point.
 *
 * Why fixed point: the control thread refills a bucket every time anything
 * happens, possibly every millisecond for weeks. With a double, each refill
 * rounds and the errors add up; here tokens are int64 micro-tokens and the
 * steady-state refill is (rate_u * elapsed_ms + rem) / 1000 with the
 * remainder carried to the next refill, so the total refilled over any run is
 * exactly rate * time, however the run is cut into refills.
 *
 * Why the ramp is computed as a difference of a cumulative function: during
 * slow start the rate changes every millisecond, so the refill of [a, b] is
 * the integral of the rate over it. We evaluate the cumulative credit G(s)
 * (s = ms since the ramp started), floor it, and refill floor(G(b)) -
 * floor(G(a)). The floors telescope, so refills in many small steps add up
 * to exactly one big step: no drift during the ramp either.
 *
 * Why "ignoring the cap" in sl_bucket_eta(): a queue takes tokens as they
 * arrive, so the cap never binds while anyone waits; the time n waiters need
 * is when tokens-now plus credit reaches n. It is found by an exponential
 * then binary search on the same credit function the refill uses, so the
 * answer agrees with what a refill at that time will find, to the micro-token.
 *
 * Overflow: credits are saturated at 2^62 micro-tokens (far above any burst),
 * so a clock jump of hours at the highest rate just fills the bucket.
 */
#include <math.h>

#include "sluice/bucket.h"

#define SAT ((int64_t)1 << 62)
#define MS_PER_S 1000
#define HORIZON_MS (366ull * 24 * 3600 * 1000)

int sl_bucket_params_check(const sl_bucket_params_t *p)
{
    if (!(p->rate >= 0.0 && p->rate <= SL_BUCKET_RATE_MAX))   /* also refuses NaN */
        return SL_EINVAL;
    if (p->burst < 1 || p->burst > SL_BUCKET_BURST_MAX)
        return SL_EINVAL;
    if (p->slow_start > SL_BUCKET_SLOW_START_MAX)
        return SL_EINVAL;
    if (!(p->slow_start_floor >= 0.0 && p->slow_start_floor <= 1.0))
        return SL_EINVAL;
    return SL_OK;
}

static void apply(sl_bucket_t *b, const sl_bucket_params_t *p)
{
    b->rate = p->rate;
    b->rate_u = (uint64_t)llround(p->rate * SL_BUCKET_UNIT);
    b->cap = (int64_t)p->burst * SL_BUCKET_UNIT;
    b->ramp_len = p->slow_start;
    b->floor = p->slow_start_floor;
    if (b->ramp_len == 0)
        b->ramping = false;
    if (b->tokens > b->cap)
        b->tokens = b->cap;
}

int sl_bucket_init(sl_bucket_t *b, const sl_bucket_params_t *p, sl_msec_t now)
{
    if (sl_bucket_params_check(p) != SL_OK)
        return SL_EINVAL;
    *b = (sl_bucket_t){ .last = now };
    apply(b, p);
    b->tokens = b->cap;
    return SL_OK;
}

static sl_msec_t ramp_end(const sl_bucket_t *b)
{
    sl_msec_t e = b->ramp_start + b->ramp_len;
    return e < b->ramp_start ? SL_MSEC_NEVER : e;
}

/* Cumulative ramp credit at s ms into the ramp, floored, in micro-tokens. */
static double ramp_cum(const sl_bucket_t *b, sl_msec_t s)
{
    double per_ms = (double)b->rate_u / MS_PER_S;
    double x = (double)s;
    double g = per_ms * (b->floor * x + (1.0 - b->floor) * x * x / (2.0 * (double)b->ramp_len));
    return floor(g);
}

/* Steady refill of ms at rate_u, carrying the remainder in *rem. */
static int64_t steady(uint64_t rate_u, sl_msec_t ms, uint64_t *rem)
{
    if (rate_u == 0 || ms == 0)
        return 0;
    if (ms > ((uint64_t)SAT - *rem) / rate_u) {
        *rem = 0;
        return SAT;
    }
    uint64_t x = rate_u * ms + *rem;
    *rem = x % MS_PER_S;
    return (int64_t)(x / MS_PER_S);
}

static int64_t sat_add(int64_t a, int64_t b)
{
    return a >= SAT - b ? SAT : a + b;
}

/*
 * Micro-tokens credited over [from, to), uncapped but saturated at SAT.
 * Requires from >= ramp_start when ramping (refills keep that true).
 */
static int64_t credit(const sl_bucket_t *b, sl_msec_t from, sl_msec_t to, uint64_t *rem)
{
    if (to <= from)
        return 0;
    int64_t total = 0;
    if (b->ramping && from < ramp_end(b)) {
        sl_msec_t e = SL_MIN(to, ramp_end(b));
        double d = ramp_cum(b, e - b->ramp_start) - ramp_cum(b, from - b->ramp_start);
        total = d >= (double)SAT ? SAT : (int64_t)d;
        from = e;
    }
    if (to > from)
        total = sat_add(total, steady(b->rate_u, to - from, rem));
    return total;
}

void sl_bucket_refill(sl_bucket_t *b, sl_msec_t now)
{
    if (now <= b->last)
        return;
    int64_t c = credit(b, b->last, now, &b->rem);
    b->tokens = c >= b->cap - b->tokens ? b->cap : b->tokens + c;
    b->last = now;
    if (b->ramping && now >= ramp_end(b))
        b->ramping = false;
}

sl_msec_t sl_bucket_skip(sl_bucket_t *b, sl_msec_t from, sl_msec_t to)
{
    sl_bucket_refill(b, from);
    if (to <= b->last)
        return 0;
    sl_msec_t skipped = to - b->last;
    b->last = to;
    if (b->ramping && to >= ramp_end(b))
        b->ramping = false;
    return skipped;
}

int sl_bucket_set(sl_bucket_t *b, const sl_bucket_params_t *p, sl_msec_t now)
{
    if (sl_bucket_params_check(p) != SL_OK)
        return SL_EINVAL;
    sl_bucket_refill(b, now);
    apply(b, p);
    if (b->ramping && b->last >= ramp_end(b))
        b->ramping = false;
    return SL_OK;
}

void sl_bucket_slow_start(sl_bucket_t *b, sl_msec_t now)
{
    sl_bucket_refill(b, now);
    if (b->ramp_len == 0)
        return;
    b->ramping = true;
    b->ramp_start = b->last;
    int64_t limit = (int64_t)floor(b->floor * (double)b->cap);
    if (b->tokens > limit)
        b->tokens = limit;
}

bool sl_bucket_take(sl_bucket_t *b, sl_msec_t now)
{
    sl_bucket_refill(b, now);
    if (b->tokens < SL_BUCKET_UNIT)
        return false;
    b->tokens -= SL_BUCKET_UNIT;
    return true;
}

double sl_bucket_tokens(sl_bucket_t *b, sl_msec_t now)
{
    sl_bucket_refill(b, now);
    return (double)b->tokens / SL_BUCKET_UNIT;
}

double sl_bucket_current_rate(const sl_bucket_t *b, sl_msec_t now)
{
    if (!b->ramping || now >= ramp_end(b))
        return b->rate;
    double frac = now <= b->ramp_start
                      ? 0.0 : (double)(now - b->ramp_start) / (double)b->ramp_len;
    return b->rate * (b->floor + (1.0 - b->floor) * frac);
}

/* Credit from 'from' to from + dt, starting from remainder rem (not modified). */
static int64_t credit_after(const sl_bucket_t *b, sl_msec_t from, sl_msec_t dt, uint64_t rem)
{
    return credit(b, from, from + dt, &rem);
}

sl_msec_t sl_bucket_eta(const sl_bucket_t *b, sl_msec_t now, uint64_t n)
{
    uint64_t rem = b->rem;
    sl_msec_t from = SL_MAX(now, b->last);
    int64_t c = credit(b, b->last, from, &rem);
    int64_t have = c >= b->cap - b->tokens ? b->cap : b->tokens + c;
    if (n > (uint64_t)(SAT / 4 / SL_BUCKET_UNIT))
        return SL_MSEC_NEVER;
    int64_t need = (int64_t)n * SL_BUCKET_UNIT - have;
    if (need <= 0)
        return from;
    if (b->rate_u == 0)
        return SL_MSEC_NEVER;
    sl_msec_t hi = 1;
    while (credit_after(b, from, hi, rem) < need) {
        if (hi > HORIZON_MS)
            return SL_MSEC_NEVER;
        hi *= 2;
    }
    sl_msec_t lo = hi / 2;   /* credit(lo) < need, or lo == 0 */
    while (hi - lo > 1) {
        sl_msec_t mid = lo + (hi - lo) / 2;
        if (credit_after(b, from, mid, rem) >= need)
            hi = mid;
        else
            lo = mid;
    }
    return from + hi;
}
