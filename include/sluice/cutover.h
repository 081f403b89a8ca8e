/*
 * sluice/cutover.h: a blue-green cutover of one service, from pool `from`
 * to pool `to`, as a pure state machine stepped by the control thread.
 *
 * Phases (docs/deploys.md tells the whole story):
 *
 *   RAMP   new connections shift by weight: weight_to(t) = min(1, t / ramp),
 *          t the unpaused time since the start; the shell picks the pool of
 *          each new arrival with sl_cutover_pick_pool().
 *   DRAIN  once weight_from is 0, the old pool's connections are drained in
 *          a random order (the shell chooses which), paced: the pace is the
 *          lower of the configured drain rate and the NEW pool's admission
 *          rate reported at each step (slow start moves it), and a token
 *          accumulator holding at most one token between steps guarantees
 *          drains emitted over any interval <= integral of pace + 1.
 *   DONE   the old pool reported 0 connections: `to` becomes the active pool.
 *   ABORTED rolled back: weight_from 1, weight_to 0, no more drains.
 *
 * Paused is a flag on RAMP or DRAIN: time paused does not count toward the
 * ramp, tokens do not accumulate, no action is emitted. The machine pauses
 * itself (and records why) when the new pool is reported unhealthy or its
 * handshake failures since the start reach a threshold; it never resumes by
 * itself.
 *
 * "The core decides, the shell acts": sl_cutover_step() takes what the shell
 * observed and returns actions; the shell fires them after the step. A
 * zero-filled sl_cutover_t is IDLE (no cutover). No allocation, no clock.
 */
#ifndef SLUICE_CUTOVER_H
#define SLUICE_CUTOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/common.h"

/* A rate (connections per second) with no limit. */
#define SL_RATE_UNLIMITED (-1.0)

typedef enum sl_cutover_phase {
    SL_CUTOVER_IDLE = 0,
    SL_CUTOVER_RAMP,
    SL_CUTOVER_DRAIN,
    SL_CUTOVER_DONE,
    SL_CUTOVER_ABORTED,
} sl_cutover_phase_t;

typedef enum sl_cutover_why {
    SL_CUTOVER_WHY_NONE = 0,
    SL_CUTOVER_WHY_OPERATOR,           /* paused through the API */
    SL_CUTOVER_WHY_UNHEALTHY,          /* the new pool was reported unhealthy */
    SL_CUTOVER_WHY_HANDSHAKE_FAILURES, /* the new pool's failures reached the threshold */
} sl_cutover_why_t;

/* What sets the drain pace right now. */
typedef enum sl_cutover_limit {
    SL_CUTOVER_LIMIT_NONE = 0,         /* both unlimited: drain at once */
    SL_CUTOVER_LIMIT_DRAIN_RATE,       /* the configured drain rate (or window) */
    SL_CUTOVER_LIMIT_POOL_RATE,        /* the new pool's current admission rate */
} sl_cutover_limit_t;

typedef struct sl_cutover_cfg {
    sl_msec_t ramp;                /* 0: all new connections to `to` at once */
    double drain_rate;             /* per second; SL_RATE_UNLIMITED (< 0): no cap */
    sl_msec_t drain_window;        /* > 0: rate = connections at drain start / window,
                                      instead of drain_rate */
    uint64_t pause_after_failures; /* new pool handshake failures that pause; 0: off */
} sl_cutover_cfg_t;

/* What the shell observed, reported at every step. */
typedef struct sl_cutover_input {
    uint64_t from_open;            /* connections still open on the old pool */
    uint64_t from_draining;        /* of those, already told to drain, not closed yet */
    double to_rate;                /* new pool's admission rate now, per second;
                                      SL_RATE_UNLIMITED when it has none */
    bool to_healthy;               /* the new pool has a usable backend */
    uint64_t to_failures;          /* new pool's handshake failures, a monotonic counter */
} sl_cutover_input_t;

typedef enum sl_cutover_action_kind {
    SL_CUTOVER_ACT_DRAIN = 1,      /* drain `count` random connections of pool `from` */
    SL_CUTOVER_ACT_DRAIN_START,    /* weight_from reached 0: publish weights, log */
    SL_CUTOVER_ACT_PAUSED,         /* the machine paused itself; `why` says why */
    SL_CUTOVER_ACT_DONE,           /* make `to` the service's active pool, persist it */
} sl_cutover_action_kind_t;

typedef struct sl_cutover_action {
    sl_cutover_action_kind_t kind;
    uint64_t count;                /* DRAIN only */
    sl_cutover_why_t why;          /* PAUSED only */
} sl_cutover_action_t;

/* Filled by sl_cutover_step(); a step emits at most this many actions. */
typedef struct sl_cutover_actions {
    sl_cutover_action_t a[4];
    size_t n;
} sl_cutover_actions_t;

typedef struct sl_cutover {
    sl_cutover_phase_t phase;
    sl_cutover_cfg_t cfg;
    size_t from, to;               /* pool indexes, opaque to the machine */
    bool paused;
    sl_cutover_why_t why_paused;
    sl_msec_t started;
    sl_msec_t last;                /* time of the last step, pause or resume */
    sl_msec_t ramp_done;           /* unpaused time spent ramping */
    double window_rate;            /* drain_window's rate, fixed at drain start */
    double tokens;                 /* drain credit; <= 1 between steps */
    double last_pace;              /* pace over the last interval; < 0: unlimited */
    uint64_t drained;              /* connections asked to drain so far */
    uint64_t failures_base;        /* to_failures forgiven (at start or resume) */
    sl_cutover_input_t seen;       /* the last input */
} sl_cutover_t;

/*
 * Start a cutover at `now`; c is zero-filled (IDLE) or holds a finished
 * (DONE or ABORTED) cutover, which is overwritten. `failures_now` is the new pool's handshake
 * failure counter at this moment (failures count from here). Returns 0,
 * SL_ESTATE when a cutover is in RAMP or DRAIN, SL_EINVAL when from == to or
 * the drain rate is 0 with no window. The shell should step at once after.
 */
int sl_cutover_start(sl_cutover_t *c, const sl_cutover_cfg_t *cfg, size_t from, size_t to,
                     sl_msec_t now, uint64_t failures_now);

/*
 * Advance to `now` with what the shell observed. Fills *out (n may be 0)
 * and returns the phase after the step. In IDLE, DONE or ABORTED it does
 * nothing. A `now` earlier than the last step counts as no time passing.
 */
sl_cutover_phase_t sl_cutover_step(sl_cutover_t *c, sl_msec_t now, const sl_cutover_input_t *in,
                                   sl_cutover_actions_t *out);

/* Operator pause: 0, or SL_ESTATE unless RAMP or DRAIN and not paused. */
int sl_cutover_pause(sl_cutover_t *c, sl_msec_t now);

/*
 * Resume after any pause: 0, or SL_ESTATE when not paused. Forgives the
 * handshake failures seen so far (else the threshold would re-pause at
 * once); an unhealthy new pool still re-pauses at the next step.
 */
int sl_cutover_resume(sl_cutover_t *c, sl_msec_t now);

/* Roll back: weights to from=1, to=0 at once; 0, or SL_ESTATE unless RAMP or DRAIN. */
int sl_cutover_abort(sl_cutover_t *c, sl_msec_t now);

/* The new pool's weight in [0, 1] at `now` (pure; pauses accounted). */
double sl_cutover_weight_to(const sl_cutover_t *c, sl_msec_t now);

/* Which pool a new arrival goes to: c->from or c->to, drawn by weight. */
size_t sl_cutover_pick_pool(const sl_cutover_t *c, sl_msec_t now, sl_rng_t *rng);

typedef struct sl_cutover_progress {
    sl_cutover_phase_t phase;
    bool paused;
    sl_cutover_why_t why_paused;
    double weight_from, weight_to;
    uint64_t drained;              /* connections asked to drain */
    uint64_t remaining;            /* old pool connections still open (last report) */
    double pace;                   /* per second; SL_RATE_UNLIMITED: no limit */
    sl_cutover_limit_t pace_limit; /* what sets the pace */
    sl_msec_t ramp_left;           /* unpaused ramp time still to go */
    sl_msec_t eta;                 /* ramp_left + not-yet-drained / pace;
                                      SL_MSEC_NEVER when the pace is 0; 0 when over */
} sl_cutover_progress_t;

/* Progress at `now` for the API, from the state and the last input (pure). */
void sl_cutover_progress(const sl_cutover_t *c, sl_msec_t now, sl_cutover_progress_t *p);

/* "idle", "ramp", "drain", "done", "aborted" */
const char *sl_cutover_phase_name(sl_cutover_phase_t p);
/* "", "operator", "new_pool_unhealthy", "new_pool_handshake_failures" */
const char *sl_cutover_why_name(sl_cutover_why_t w);
/* "none", "drain_rate", "new_pool_admission_rate" */
const char *sl_cutover_limit_name(sl_cutover_limit_t l);

#endif
