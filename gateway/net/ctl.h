/*
 * ctl.h: the policy state the control thread owns — backend health and
 * admission queues — built for one runtime.
 *
 * Everything here is touched by the control thread only, so the pure policy
 * modules (health, admission, cutover) run without locks. What workers need
 * to see is published through the runtime's atomics (a backend's `up` flag).
 */
#ifndef SLUICE_NET_CTL_H
#define SLUICE_NET_CTL_H

#include <uv.h>

#include "sluice/admission.h"
#include "sluice/cutover.h"
#include "sluice/health.h"
#include "gateway.h"

typedef struct sl_ctl sl_ctl_t;

typedef struct sl_ctl_backend {
    sl_ctl_t *ctl;
    size_t pool, index;
    sl_backend_rt_t *rt;
    sl_health_t health;
    uv_timer_t timer;                /* the health machine's next tick */
    struct sl_probe *probe;          /* the active check in flight, if any */
} sl_ctl_backend_t;

typedef struct sl_ctl_pool {
    sl_ctl_backend_t *backends;
    size_t n_backends;
    sl_admission_t *adm;             /* the pool's own queue, when it has a rate */
    bool admission_overridden;       /* the API set its limits */
} sl_ctl_pool_t;

typedef struct sl_ctl_service {
    sl_admission_t *adm;             /* NULL when admission is off */
    size_t active;                   /* the pool new connections go to outside a cutover */
    sl_cutover_t cut;                /* the current or last cutover */
    bool deploying;
    bool active_overridden;          /* a cutover (the API) set `active`, not the YAML */
    bool admission_overridden;       /* the API set the limits */
    uint16_t close_code;
    char reason[SL_WS_MAX_CLOSE_REASON + 1];   /* whole: a cut one may end mid-character */
    uint64_t drained_base;           /* the old pool's cutover drains when the cutover began */
    uint64_t drained;                /* its connections told to close since (each step) */
    uint64_t drained_earlier;        /* by the service's cutovers before this one (the
                                        counter /metrics shows goes on across them) */
    bool drain_open;                 /* drain credit is being posted (DRAIN, not paused) */
    bool deploy_dropped;             /* the last deploy's pools left with a reload (status: 404) */
    size_t drain_rotor;              /* which worker gets the odd drain first */
} sl_ctl_service_t;

/* What POST /api/v1/services/{service}/deploys asks for. */
typedef struct sl_deploy_params {
    const char *from;                /* NULL: the active pool (names: the caller's, any length) */
    const char *to;
    sl_msec_t ramp;
    double drain_rate;               /* per second; 0: only the new pool's admission rate */
    sl_msec_t drain_window;          /* instead of a rate: spread the drain over this */
    uint64_t pause_after_failures;   /* new pool handshake failures that pause; 0: off */
    uint16_t close_code;             /* default 1012 */
    char reason[SL_WS_MAX_CLOSE_REASON + 1];   /* whole: a cut one may end mid-character */
} sl_deploy_params_t;

typedef struct sl_deploy_status {
    bool in_progress;
    const char *from, *to, *active;
    uint16_t close_code;
    const char *reason;
    sl_cutover_progress_t progress;
    uint64_t drained_total;          /* by every cutover of the service since start */
} sl_deploy_status_t;

/* One queued admission request. */
typedef struct sl_waiter {
    uint64_t id;
    int worker;
    sl_session_t *session;
    sl_admission_t *queue;
    sl_admission_handle_t handle;
    long pool;                       /* in the terms of the session's runtime */
    struct sl_waiter *next_in_bucket;
} sl_waiter_t;

/* A backend drained through the API: its WebSockets closed at a pace. */
typedef struct sl_backend_drain {
    sl_backend_shared_t *state;
    size_t pool;
    double rate;                     /* per second */
    double credit;
    sl_msec_t last;
    uint16_t close_code;
    const char *reason;              /* the service's drain reason (config-owned) */
    size_t rotor;                    /* which worker gets the odd drain first */
    bool active;
} sl_backend_drain_t;

#define SL_MAX_BACKEND_DRAINS 16

struct sl_ctl {
    sl_gateway_t *gw;
    sl_runtime_t *rt;                /* a reference */
    sl_ctl_pool_t *pools;
    sl_ctl_service_t *services;
    uv_timer_t adm_timer;
    sl_msec_t adm_due;               /* when adm_timer was meant to fire */
    uv_timer_t deploy_timer;         /* also paces backend drains */
    sl_backend_drain_t drains[SL_MAX_BACKEND_DRAINS];
    sl_rng_t rng;
    /* Waiters by id: open hashing, for cancel. */
    sl_waiter_t **waiters;
    size_t waiters_cap;
    size_t n_waiters;
    size_t pending_closes;
    bool closing;
    bool admit_on_close;             /* closing for a reload: let waiters through */
    bool turning_away;               /* shutting down: nobody is admitted any more */
};

/* Build the policy state for rt and start health checks. */
sl_ctl_t *sl_ctl_new(sl_gateway_t *gw, sl_runtime_t *rt);
/* Stop checks and timers; the struct is freed once its handles are closed. */
void sl_ctl_close(sl_ctl_t *ctl);
/* Called by the last close callback. */
void sl_ctl_free(sl_ctl_t *ctl);

/* ctl_health.c */
void sl_ctl_health_start(sl_ctl_t *ctl);
void sl_ctl_health_conn_result(sl_ctl_t *ctl, const sl_cmsg_t *m);
void sl_ctl_health_close(sl_ctl_t *ctl);

/* ctl_admit.c */
int sl_ctl_admit_setup(sl_ctl_t *ctl);
void sl_ctl_admit(sl_ctl_t *ctl, const sl_cmsg_t *m);
void sl_ctl_admit_cancel(sl_ctl_t *ctl, const sl_cmsg_t *m);
void sl_ctl_admit_close(sl_ctl_t *ctl);
/* Shutdown: every client waiting is turned away now (503 or 1013, with a
   Retry-After spread over the queue's bounds), and so is every later ask. */
void sl_ctl_admit_turn_away(sl_ctl_t *ctl);
/* state.c: keep what the API changed in admin.state_file. sl_state_apply reads
   the file at its first call (start) and, at every call (start and each reload,
   from sl_ctl_carry_over), applies what the API set that is not in force yet. */
int sl_state_save(sl_ctl_t *ctl);
struct sl_jw;
/* Admission limits as JSON object members (the state file's and the API's names). */
void sl_state_write_limits(struct sl_jw *w, const sl_admission_params_t *p);
void sl_state_apply(sl_ctl_t *ctl);
/* Backends set through the API: read from the state file at start, applied over
   every loaded config, swapped (and restored when a change is refused). */
void sl_state_read_overrides(const sl_config_t *cfg);
int sl_state_apply_overrides(sl_config_t *cfg, sl_diag_t *diag);
void *sl_state_swap_backends(const char *pool, const sl_cfg_backend_spec_t *b, size_t n);
void sl_state_restore_backends(const char *pool, void *old);
void sl_state_forget_backends(void *old);
bool sl_state_pool_overridden(const char *pool);
void sl_state_free_overrides(void);

/* Publish where each service's new connections go, for the workers. */
void sl_ctl_publish_all(sl_ctl_t *ctl);
/* reload.c: carry health, queues (with their waiters), deploys and API overrides from old. */
void sl_ctl_carry_over(sl_ctl_t *ctl, sl_ctl_t *old);

/* ctl_deploy.c: 0, or SL_EEXIST (one at a time), SL_ENOENT, SL_EINVAL with err filled. */
void sl_ctl_deploy_setup(sl_ctl_t *ctl);
int sl_ctl_deploy_start(sl_ctl_t *ctl, size_t svc, const sl_deploy_params_t *p, char *err,
                        size_t errlen);
/* 0, SL_ENOENT (no deploy in progress) or SL_ESTATE (not allowed now). */
int sl_ctl_deploy_pause(sl_ctl_t *ctl, size_t svc);
int sl_ctl_deploy_resume(sl_ctl_t *ctl, size_t svc);
int sl_ctl_deploy_abort(sl_ctl_t *ctl, size_t svc);
/* 0, or SL_ENOENT when the service never had a deploy. */
int sl_ctl_deploy_status(sl_ctl_t *ctl, size_t svc, sl_deploy_status_t *out);
/* Drain one backend (no new connections; its WebSockets closed paced), or undo
   that with drain false: 0, SL_ENOENT (no such backend) or SL_EFULL. */
int sl_ctl_backend_drain(sl_ctl_t *ctl, size_t pool, size_t backend, bool drain);

/* The pool a new client of the service goes to now (weights during a cutover). */
size_t sl_ctl_pick_pool(sl_ctl_t *ctl, size_t svc);
/* The queue a client of the pool waits in: the pool's own, else the service's; may be NULL. */
sl_admission_t *sl_ctl_queue_for(sl_ctl_t *ctl, size_t svc, size_t pool);

/* A pool that has just become usable, or a cutover's target, ramps the
   admission rate its clients get (slow start): its own queue's, or that of
   each service sending its new connections there. */
void sl_ctl_ramp_pool(sl_ctl_t *ctl, size_t pool, sl_msec_t now);
/* Backend i of the pool is up, not drained through the API, and weighted. */
bool sl_ctl_backend_takes_connections(const sl_ctl_t *ctl, size_t pool, size_t i);
/* How many of the pool's backends take connections. */
size_t sl_ctl_backends_taking(const sl_ctl_t *ctl, size_t pool);
/* Some backend of the pool takes connections. */
bool sl_ctl_pool_takes_connections(const sl_ctl_t *ctl, size_t pool);
/* A pool's own queue belongs to the first service with admission that uses the
   pool (sl_ctl_admit_setup makes it so): that service's index, or -1. */
long sl_ctl_pool_service(const sl_ctl_t *ctl, size_t pool);
/* Live limits of a service's queue (pool -1) or a pool's own: 0, or SL_ENOENT (none,
   or the service's admission is off). */
int sl_ctl_admission_get(sl_ctl_t *ctl, size_t svc, long pool, sl_admission_params_t *p,
                         sl_admission_stats_t *st);
/* Change them without losing or reordering queued clients: 0, SL_ENOENT or SL_EINVAL. */
int sl_ctl_admission_set(sl_ctl_t *ctl, size_t svc, long pool, const sl_admission_params_t *p,
                         char *err, size_t errlen);

/* Move the queue in *from_slot (and its waiters) into *to_slot with new limits. */
void sl_ctl_admit_take_queue(sl_ctl_t *to, sl_admission_t **to_slot, sl_ctl_t *from,
                             sl_admission_t **from_slot);

/* Hold the queues whose pools have no backend up (clients wait for a restarting
   backend instead of being sent to a dead one); release them when one is back. */
void sl_ctl_update_holds(sl_ctl_t *ctl);

/* The params for a service's queue (and a pool's own, with the pool's rate and burst). */
void sl_admission_params_from_config(const sl_cfg_admission_t *a, const sl_cfg_pool_t *pool,
                                     sl_admission_params_t *out);

#endif
