/*
 * sluice/admission.h: the admission queue in front of one token bucket.
 *
 * One queue per bucket: per service, per pool that has its own capacity, or
 * per protected HTTP route. A waiter waits for the tokens of the bucket its
 * queue owns, so the shell picks the queue (after choosing the pool) and this
 * module never needs to know about pools.
 *
 * Owned by the control thread: no locks. Time is an argument; randomness
 * (Retry-After jitter) comes from a generator seeded at creation, so every
 * decision replays exactly in a test.
 *
 * How the shell drives it ("the core decides, the shell acts"):
 *   arrive    sl_admission_arrive() -> ADMITTED now, QUEUED (keep the handle
 *             in the session), or REJECTED (503 or 429 + Retry-After).
 *   timer     after ANY call, re-arm one timer at sl_admission_next_wakeup();
 *             when it fires, call sl_admission_tick() into an array and then
 *             act on each event (admitted: connect; rejected: answer). When
 *             it fires late by more than the owner's scheduling slack, call
 *             sl_admission_forfeit() for the late part first.
 *   gone      a queued client that disconnects: sl_admission_cancel(handle).
 *   tune      sl_admission_set_params() from the admin API or a reload.
 * Nothing here calls back into the shell.
 */
#ifndef SLUICE_ADMISSION_H
#define SLUICE_ADMISSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/bucket.h"
#include "sluice/common.h"

/* Queue lengths above this are refused (handles keep a 32-bit slot index). */
#define SL_ADMISSION_QUEUE_MAX (1u << 24)

/*
 * A client address: family (AF_INET or AF_INET6 as the shell's value, any
 * small number works) and the address bytes in network order, IPv4 in the
 * first 4 bytes. Unused bytes MUST be zero: the key is compared as bytes.
 */
typedef struct sl_client_key {
    uint8_t family;
    uint8_t addr[16];
} sl_client_key_t;

typedef struct sl_admission_params {
    sl_bucket_params_t bucket;   /* rate, burst, slow_start, slow_start_floor */
    uint32_t queue_length;       /* waiters at most; 0: no queue (no token: 503) */
    sl_msec_t max_wait;          /* a waiter older than this is rejected as expired */
    uint32_t per_client;         /* queued entries per address; 0: no cap */
    double per_client_rate;      /* admissions (immediate or queued) per second per
                                    address; 0: off */
    uint32_t per_client_burst;   /* the per-address bucket's size; >= 1 when rate on */
    sl_msec_t retry_after_min;   /* every Retry-After is within [min, max] */
    sl_msec_t retry_after_max;
} sl_admission_params_t;

typedef enum sl_adm_status {
    SL_ADM_ADMITTED = 0,         /* go ahead: pick a backend */
    SL_ADM_QUEUED,               /* wait for an event with this handle */
    SL_ADM_REJECTED,             /* answer with http_status and retry_after_ms */
} sl_adm_status_t;

typedef enum sl_adm_reason {
    SL_ADM_NONE = 0,
    SL_ADM_QUEUE_FULL,           /* 503 */
    SL_ADM_WAIT_EXPIRED,         /* 503 */
    SL_ADM_CLIENT_CAP,           /* 429: the address has per_client entries queued */
    SL_ADM_CLIENT_RATE,          /* 429: the address exceeded per_client_rate */
    SL_ADM_REASON_COUNT,
} sl_adm_reason_t;

/*
 * Identifies one queued waiter. 0 is never a valid handle. A handle goes
 * stale once its waiter leaves the queue (admitted, expired or cancelled);
 * stale handles are detected, never confused with the slot's next waiter.
 */
typedef uint64_t sl_admission_handle_t;

/* What sl_admission_arrive() decided, or what a tick reports for one waiter. */
typedef struct sl_admission_event {
    sl_adm_status_t status;
    sl_adm_reason_t reason;      /* SL_ADM_NONE unless REJECTED */
    int http_status;             /* 503 or 429 when REJECTED, else 0 */
    sl_msec_t retry_after_ms;    /* when REJECTED: within [retry_after_min, max] */
    sl_msec_t waited_ms;         /* time spent queued (0 for an immediate decision) */
    sl_admission_handle_t handle;/* QUEUED (arrive) or the waiter's handle (tick) */
    void *user_data;             /* as given to arrive */
} sl_admission_event_t;

/* Upper bounds (ms, inclusive) of the wait-time histogram; the last is +Inf. */
#define SL_ADMISSION_WAIT_BUCKETS 12
extern const sl_msec_t sl_admission_wait_le[SL_ADMISSION_WAIT_BUCKETS];

typedef struct sl_admission_stats {
    double tokens;               /* in the bucket now */
    double rate;                 /* current refill rate, slow start included */
    uint32_t depth;              /* waiters now */
    uint32_t depth_peak;         /* most waiters ever at once */
    uint32_t clients;            /* addresses tracked now */
    uint64_t arrived;
    uint64_t admitted;           /* immediately or after waiting */
    uint64_t admitted_immediately;
    uint64_t queued;             /* arrivals that had to wait */
    uint64_t cancelled;
    uint64_t rejected[SL_ADM_REASON_COUNT];   /* indexed by sl_adm_reason_t */
    /* Admitted waits (immediate ones count as 0 ms), cumulative like a
       Prometheus histogram: wait_le[i] = admissions that waited <= bound i. */
    uint64_t wait_le[SL_ADMISSION_WAIT_BUCKETS];
    uint64_t wait_sum_ms;
    uint64_t forfeited_ms;       /* waiting time credited no tokens (sl_admission_forfeit) */
} sl_admission_stats_t;

typedef struct sl_admission sl_admission_t;

/* A stable lower-case name for a reason ("queue_full", ...), e.g. a metrics label. */
const char *sl_admission_reason_name(sl_adm_reason_t reason);

/* Checks params (bucket bounds, queue bounds, min <= max). 0 or SL_EINVAL. */
int sl_admission_params_check(const sl_admission_params_t *p);

/*
 * Creates a queue with a full bucket at now; seed drives the Retry-After
 * jitter and salts the address hash (in production take it from a random
 * source, e.g. RAND_bytes, so clients cannot aim at one probe chain). Returns NULL on SL_EINVAL params or
 * allocation failure. The caller owns the queue; free with sl_admission_free().
 */
sl_admission_t *sl_admission_new(const sl_admission_params_t *p, uint64_t seed, sl_msec_t now);

/* Frees the queue and every waiter; user_data pointers are not touched. NULL ok. */
void sl_admission_free(sl_admission_t *q);

/*
 * A client arrives. Fills *out and returns its status (>= 0):
 *   SL_ADM_ADMITTED  a token was taken and nobody was waiting ahead;
 *   SL_ADM_QUEUED    out->handle identifies the waiter until its event;
 *   SL_ADM_REJECTED  out->reason, out->http_status, out->retry_after_ms.
 * Returns SL_ENOMEM (out untouched, nothing changed) when storage for the
 * waiter or the address could not grow: the shell answers 503.
 * key is copied; user_data is kept as given and handed back in the event.
 */
int sl_admission_arrive(sl_admission_t *q, sl_msec_t now, const sl_client_key_t *key,
                        void *user_data, sl_admission_event_t *out);

/*
 * A queued client left (disconnected). O(1); its place is reused at once.
 * Returns 0, or SL_ENOENT for a stale or unknown handle (its event was
 * already produced). The shell must call this before freeing user_data.
 */
int sl_admission_cancel(sl_admission_t *q, sl_admission_handle_t handle);

/*
 * Pops waiters whose turn came (ADMITTED, a token is taken for each, in FIFO
 * order) and waiters past max_wait (REJECTED, SL_ADM_WAIT_EXPIRED) into out,
 * up to max events. Returns the number written; when it equals max there may
 * be more: call again. The handles in the events are stale on return.
 */
size_t sl_admission_tick(sl_admission_t *q, sl_msec_t now,
                         sl_admission_event_t *out, size_t max);

/*
 * When sl_admission_tick() next has something to do: now if it has events
 * pending, else the earlier of the head's token time and the head's expiry;
 * SL_MSEC_NEVER when nobody waits. Pure: changes nothing.
 */
sl_msec_t sl_admission_next_wakeup(const sl_admission_t *q, sl_msec_t now);

/*
 * The owner could not act from `from` until now (its timer fired that late:
 * the thread was descheduled, or the machine paused). While clients waited,
 * none of that time becomes tokens. Without this, the refill banked during a
 * stall of d ms comes out as rate * d admissions the moment the owner runs
 * again, on top of what was already on its way to the backend, and the
 * backend sees more than rate + burst in a second. Admitting a little less
 * after a stall is the cheaper mistake. Returns the ms forfeited: 0 when
 * nobody waits, the queue is held, or from >= now.
 */
sl_msec_t sl_admission_forfeit(sl_admission_t *q, sl_msec_t from, sl_msec_t now);

/*
 * Live tuning: rate, burst, slow start, queue bounds, per-client limits and
 * Retry-After bounds. Queued waiters keep their order and place; a queue
 * length below the current depth rejects nobody, it only refuses new
 * entries until the queue drains below it. max_wait applies to everyone at
 * once (a waiter's deadline is its arrival + the current max_wait).
 * Returns 0 or SL_EINVAL (nothing changed).
 */
/*
 * Hold the queue: while held, nobody is admitted — arrivals queue even when a
 * token is there, and tick() only turns away waiters whose wait expired. The
 * shell holds a queue while the pool behind it has no backend up, so clients
 * wait for a restarting backend instead of being sent to a dead one. Tokens
 * keep accruing (up to burst); releasing admits in FIFO order at the rate.
 */
void sl_admission_hold(sl_admission_t *q, bool held);
bool sl_admission_held(const sl_admission_t *q);

int sl_admission_set_params(sl_admission_t *q, const sl_admission_params_t *p, sl_msec_t now);

/* The current params (a copy). */
void sl_admission_get_params(const sl_admission_t *q, sl_admission_params_t *out);

/*
 * The queue's bucket, e.g. for sl_bucket_slow_start() when the pool turns
 * healthy or sl_bucket_current_rate() for a cutover's drain pace. Do not take
 * tokens from it directly: that would let someone pass the queue.
 */
sl_bucket_t *sl_admission_bucket(sl_admission_t *q);

/* Waiters queued now. */
uint32_t sl_admission_depth(const sl_admission_t *q);

/* Fills *out (refills the bucket at now to report its tokens). */
void sl_admission_stats(sl_admission_t *q, sl_msec_t now, sl_admission_stats_t *out);

#endif
