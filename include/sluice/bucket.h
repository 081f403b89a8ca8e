/*
 * sluice/bucket.h: a token bucket with slow start, driven by an injected clock.
 *
 * One bucket per admission queue (per service, per pool with its own
 * capacity, or per protected HTTP route). It is a plain struct owned by one
 * thread (the control thread): no locks, no clock, no allocation.
 *
 * Tokens are kept in fixed point (micro-tokens, int64) and refilled by
 * elapsed milliseconds with the division remainder carried, so a run of any
 * length neither gains nor loses a token. Tokens never exceed the burst.
 *
 * Slow start: after sl_bucket_slow_start(b, t0) the refill rate ramps
 * linearly from floor * rate at t0 to rate at t0 + slow_start, i.e.
 * rate(t) = rate * (floor + (1 - floor) * (t - t0) / slow_start).
 *
 * The clock is monotonic milliseconds; a call with a time earlier than the
 * last one is treated as "no time passed" (never an underflow), and a jump
 * of hours just fills the bucket (no overflow).
 */
#ifndef SLUICE_BUCKET_H
#define SLUICE_BUCKET_H

#include <stdbool.h>
#include <stdint.h>

#include "sluice/common.h"

/* Bounds the fixed-point math is proven for; sl_bucket_init/set refuse more. */
#define SL_BUCKET_RATE_MAX 1e9             /* tokens per second */
#define SL_BUCKET_BURST_MAX 1000000000u    /* tokens */
#define SL_BUCKET_SLOW_START_MAX (24ull * 3600 * 1000)  /* one day, in ms */

/* One token, in the bucket's fixed-point unit. */
#define SL_BUCKET_UNIT 1000000

typedef struct sl_bucket_params {
    double rate;                 /* tokens per second, 0..SL_BUCKET_RATE_MAX; 0: none refill */
    uint32_t burst;              /* capacity in tokens, 1..SL_BUCKET_BURST_MAX */
    sl_msec_t slow_start;        /* ramp length; 0: sl_bucket_slow_start() is a no-op */
    double slow_start_floor;     /* fraction of rate the ramp starts at, 0..1 */
} sl_bucket_params_t;

/* Plain struct, embeddable; fields are private to bucket.c (read them via the functions). */
typedef struct sl_bucket {
    double rate;                 /* tokens per second, as configured */
    int64_t tokens;              /* micro-tokens, 0..cap */
    int64_t cap;                 /* burst in micro-tokens */
    uint64_t rate_u;             /* micro-tokens per second */
    uint64_t rem;                /* refill remainder, in micro-tokens * ms / 1000 units (< 1000) */
    sl_msec_t last;              /* time of the last refill */
    sl_msec_t ramp_start;        /* valid when ramping */
    sl_msec_t ramp_len;          /* configured slow start */
    double floor;                /* slow_start_floor */
    bool ramping;                /* a slow start is (or was until ramp_start+len) running */
} sl_bucket_t;

/*
 * Checks params (finite, within the bounds above). Returns 0 or SL_EINVAL.
 */
int sl_bucket_params_check(const sl_bucket_params_t *p);

/*
 * Initialises *b at time now, full (tokens = burst), not ramping.
 * Returns 0, or SL_EINVAL (b untouched) when params are out of bounds.
 */
int sl_bucket_init(sl_bucket_t *b, const sl_bucket_params_t *p, sl_msec_t now);

/*
 * Live tuning: refills at the old rate up to now, then applies the new
 * params. Tokens are clamped to the new burst; a running ramp keeps its
 * start time and follows the new length and floor.
 * Returns 0, or SL_EINVAL (b untouched).
 */
int sl_bucket_set(sl_bucket_t *b, const sl_bucket_params_t *p, sl_msec_t now);

/*
 * Starts (or restarts) the slow-start ramp at now: call it when a pool has
 * just become healthy or becomes a cutover target. Refills first, then caps
 * the tokens at floor * burst, so a full bucket cannot send a burst to a
 * backend that is still warming up. No-op when slow_start is 0.
 */
void sl_bucket_slow_start(sl_bucket_t *b, sl_msec_t now);

/* Brings the tokens up to date at now (idempotent for one now). */
void sl_bucket_refill(sl_bucket_t *b, sl_msec_t now);

/*
 * Credits nothing for [from, to): refills up to from, then moves the refill
 * clock to to. For time in which the owner could not hand tokens out (its
 * thread was stalled): that refill would otherwise come out as one clump of
 * admissions the moment it runs again. Returns the ms skipped (0 when to is
 * not past the last refill).
 */
sl_msec_t sl_bucket_skip(sl_bucket_t *b, sl_msec_t from, sl_msec_t to);

/* Refills, then takes one whole token if there is one. Returns true if taken. */
bool sl_bucket_take(sl_bucket_t *b, sl_msec_t now);

/* Tokens after a refill at now, as a number (e.g. 3.25). */
double sl_bucket_tokens(sl_bucket_t *b, sl_msec_t now);

/*
 * The refill rate at now in tokens per second, slow start included. This is
 * what a cutover paces its drain by. Pure: does not refill.
 */
double sl_bucket_current_rate(const sl_bucket_t *b, sl_msec_t now);

/*
 * The earliest time >= now at which n whole tokens will have been available
 * to a consumer that takes them as they come: the tokens held now plus the
 * refill from now, ignoring the burst cap (a queue of n waiters drains by
 * then). n = 1 is "when can the head of a queue go". Pure: does not refill.
 * Returns SL_MSEC_NEVER when the rate is 0 and the tokens are not there, or
 * when the time is beyond any sensible horizon (over a year).
 */
sl_msec_t sl_bucket_eta(const sl_bucket_t *b, sl_msec_t now, uint64_t n);

#endif
