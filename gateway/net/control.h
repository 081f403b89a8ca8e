/*
 * control.h: the control thread's entry points (see control.c).
 */
#ifndef SLUICE_NET_CONTROL_H
#define SLUICE_NET_CONTROL_H

#include "gateway.h"
#include "sluice/admission.h"

/* Install signal handlers and timers on gw->loop. */
int sl_control_start(sl_gateway_t *gw);
/* Block (true) or unblock SIGHUP in the calling thread: held pending from the
   start of main until sl_control_start handles it (it unblocks). */
void sl_control_hold_sighup(bool hold);

/* Hand count drain credits to the workers as copies of *what, split without
   rounding up; *rotor says which worker gets the odd credit first, and moves on.
   Shutdown, cutovers and backend drains all pace their drains through this. */
void sl_control_post_drain(sl_gateway_t *gw, const sl_wmsg_t *what, uint64_t count,
                           size_t *rotor);

/* Answer a worker's SL_CMSG_ADMIT: ev's status, HTTP status, Retry-After
   and wait (NULL: turned away with 503 and no Retry-After); pool is where an
   admitted session goes. Every ADMIT gets exactly one answer: the session
   waits for it. */
void sl_control_admit_answer(sl_gateway_t *gw, int worker, sl_session_t *s, long pool,
                             const sl_admission_event_t *ev);

/* Free what workers posted after the control loop stopped reading (call
   once the workers are joined). */
void sl_control_discard_inbox(sl_gateway_t *gw);

/* Begin a graceful shutdown: stop accepting, drain paced, exit. Idempotent. */
void sl_control_shutdown(sl_gateway_t *gw);

/* Reload the config file (SIGHUP, POST /api/v1/reload), in reload.c. Returns 0, or
   SL_EINVAL / SL_ESTATE / SL_ENOMEM with every reason in diag; the old config keeps running. */
int sl_control_reload(sl_gateway_t *gw, sl_diag_t *diag);

#endif
