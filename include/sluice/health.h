/*
 * sluice/health.h: one backend's health, as a state machine on an injected
 * clock.
 *
 * Two sources of truth, kept apart and combined into one state:
 *
 * - Active checks: the shell runs an HTTP GET when sl_health_tick() says so
 *   and reports success, failure or timeout. `fall` consecutive failures
 *   take an UP backend DOWN; `rise` consecutive successes bring a DOWN one
 *   UP. A success resets the failure run and a failure the success run, so
 *   a flapping backend stays where it is.
 * - Passive ejection: `passive_failures` consecutive connect failures (or
 *   resets) of real traffic eject the backend for `eject_for` ms, after
 *   which it comes back by itself. A successful connect resets the count.
 *
 * Combined state: DOWN when the active checks say so (whatever the passive
 * side says), else EJECTED while an ejection lasts, else UP. Only UP is
 * usable. Active checks keep running during an ejection and their runs keep
 * counting; an ejection always lasts its full time.
 *
 * Initial state: a backend without active checks starts UP (nothing would
 * ever bring it up otherwise). One with active checks starts UP by default
 * (optimistic: restarting the gateway must not black-hole a pool for
 * rise * interval while it re-proves every backend; `fall` failures, or
 * passive ejection, take a dead one out) or DOWN with `start_down`, which
 * the shell sets for a backend added at run time (the admin API, a reload):
 * nothing is known of it yet, so it gets no traffic until a check passes.
 * Its first check decides: a pass brings it UP at once (HAProxy's
 * `init-state down`, nginx's `health_check mandatory`: one check, not a run
 * of `rise`, since there is no flapping to filter out yet); a failure makes
 * it an ordinary DOWN backend that needs `rise` passes. The first check is
 * due at once either way.
 *
 * Every change of the combined state is reported as an event (from, to,
 * why) so the shell logs it and, when a backend becomes UP again, starts the
 * pool's slow start. A zero-filled sl_health_cfg_t is "no active checks, no
 * passive ejection": always UP.
 */
#ifndef SLUICE_HEALTH_H
#define SLUICE_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "sluice/common.h"

typedef enum sl_health_state {
    SL_HEALTH_UP = 0,
    SL_HEALTH_DOWN,          /* failed its active checks */
    SL_HEALTH_EJECTED,       /* out for a while after consecutive connect failures */
} sl_health_state_t;

/* Why the state changed. */
typedef enum sl_health_why {
    SL_HEALTH_WHY_RISE = 0,  /* `rise` consecutive active checks passed */
    SL_HEALTH_WHY_FALL,      /* `fall` consecutive active checks failed */
    SL_HEALTH_WHY_EJECT,     /* `passive_failures` consecutive connect failures */
    SL_HEALTH_WHY_EJECT_END, /* the ejection time is over */
} sl_health_why_t;

typedef struct sl_health_event {
    sl_health_state_t from, to;
    sl_health_why_t why;
} sl_health_event_t;

typedef enum sl_health_result {
    SL_CHECK_OK = 0,         /* 2xx or 3xx within the timeout */
    SL_CHECK_FAIL,           /* connect refused, reset, other status */
    SL_CHECK_TIMEOUT,        /* no answer within the check timeout (counts as a failure) */
    SL_CHECK_SKIPPED,        /* the gateway could not run it (out of descriptors or memory):
                                no verdict either way; the next one runs at its interval */
} sl_health_result_t;

typedef struct sl_health_cfg {
    bool active;             /* run active checks */
    bool start_down;         /* with active checks: start DOWN until the first check passes */
    sl_msec_t interval;      /* between check starts; 0 is taken as 1 ms */
    uint32_t rise;           /* 0 is taken as 1 */
    uint32_t fall;           /* 0 is taken as 1 */
    uint32_t passive_failures; /* consecutive connect failures that eject; 0: off */
    sl_msec_t eject_for;     /* how long an ejection lasts */
} sl_health_cfg_t;

/* Plain struct: embed it in the backend; no allocation, nothing to free. */
typedef struct sl_health {
    sl_health_cfg_t cfg;
    sl_health_state_t state;     /* combined state, as last reported by an event */
    bool active_up;              /* the active checks' verdict */
    bool check_in_flight;
    bool unproven;               /* started DOWN, not judged yet: a first pass brings it UP */
    uint32_t ok_run, fail_run;   /* consecutive active results */
    uint32_t conn_fail_run;      /* consecutive passive failures */
    sl_msec_t next_check;        /* when the next active check is due */
    sl_msec_t ejected_until;     /* end of the ejection; 0: not ejected */
} sl_health_t;

/* Start a backend's machine at `now` with a copy of cfg. */
void sl_health_init(sl_health_t *h, const sl_health_cfg_t *cfg, sl_msec_t now);

/*
 * New settings (a reload's) over a machine carried from the last ones. A
 * verdict of active checks that the new settings no longer run is dropped:
 * nothing would ever change it again, and a DOWN one kept the backend out
 * for good. Without active checks the backend is UP, as it starts (an
 * ejection still runs its course). Returns true when the combined state
 * changed (no event: it is the settings', not an input's).
 */
bool sl_health_reconfigure(sl_health_t *h, const sl_health_cfg_t *cfg);

/* Flags returned by sl_health_tick(). */
#define SL_HEALTH_RUN_CHECK 1    /* start an active check now, report its result */
#define SL_HEALTH_EVENT     2    /* *ev was filled */

/*
 * Advance to `now`: ends an ejection that is over, and says when to start an
 * active check (once per interval, never while one is in flight; the check
 * counts as in flight from this call until its result is reported). Returns
 * a mask of SL_HEALTH_RUN_CHECK and SL_HEALTH_EVENT (then *ev is filled).
 */
int sl_health_tick(sl_health_t *h, sl_msec_t now, sl_health_event_t *ev);

/* Report an active check's result. Returns 1 and fills *ev on a state change, else 0. */
int sl_health_check_result(sl_health_t *h, sl_msec_t now, sl_health_result_t r,
                           sl_health_event_t *ev);

/*
 * Report a real connection attempt to the backend: ok (connected) or not
 * (refused, timed out, reset before the response). Failures while ejected
 * are ignored (they belong to connections made before the ejection).
 * Returns 1 and fills *ev on a state change, else 0.
 */
int sl_health_conn_result(sl_health_t *h, sl_msec_t now, bool ok, sl_health_event_t *ev);

/* When sl_health_tick() next has something to do; SL_MSEC_NEVER: nothing. */
sl_msec_t sl_health_next_due(const sl_health_t *h);

static inline sl_health_state_t sl_health_state(const sl_health_t *h)
{
    return h->state;
}

/* True when the balancer may pick the backend (state UP). */
static inline bool sl_health_usable(const sl_health_t *h)
{
    return h->state == SL_HEALTH_UP;
}

/* Names for logs and the API: "up", "down", "ejected"; "rise", "fall", "eject", "eject_end". */
const char *sl_health_state_name(sl_health_state_t s);
const char *sl_health_why_name(sl_health_why_t w);

#endif
