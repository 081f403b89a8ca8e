/*
 * health.c: a backend's UP / DOWN / EJECTED state from active checks and
 * passive connect failures, on an injected clock.
 *
 * Why two verdicts kept apart. Active checks answer "is the application
 * healthy?" slowly and deliberately (rise/fall runs filter out one-off
 * blips). Passive ejection answers "is it reachable right now?" from real
 * traffic, fast, and forgets by itself after `eject_for`, because real
 * traffic stops flowing to an ejected backend and so could never prove it
 * came back. Mixing them into one counter would let a burst of connect
 * errors fake a fall, or one good check cut an ejection short; keeping them
 * apart and combining them (DOWN beats EJECTED beats UP) keeps each rule
 * simple and testable.
 *
 * Events are emitted only when the combined state changes, each tagged with
 * the input that caused it, so the shell's log reads as a history of what
 * the balancer could see, and "became UP" is exactly the moment to start
 * the pool's slow start.
 */
#include "sluice/health.h"

#include <string.h>

static sl_health_state_t combined(const sl_health_t *h)
{
    if (!h->active_up)
        return SL_HEALTH_DOWN;
    if (h->ejected_until != 0)
        return SL_HEALTH_EJECTED;
    return SL_HEALTH_UP;
}

/* Publish the combined state; 1 and *ev filled when it changed. */
static int settle(sl_health_t *h, sl_health_why_t why, sl_health_event_t *ev)
{
    sl_health_state_t now_state = combined(h);
    if (now_state == h->state)
        return 0;
    if (ev != NULL)
        *ev = (sl_health_event_t){.from = h->state, .to = now_state, .why = why};
    h->state = now_state;
    return 1;
}

static void set_cfg(sl_health_t *h, const sl_health_cfg_t *cfg)
{
    h->cfg = *cfg;
    if (h->cfg.interval == 0)
        h->cfg.interval = 1;
    if (h->cfg.rise == 0)
        h->cfg.rise = 1;
    if (h->cfg.fall == 0)
        h->cfg.fall = 1;
}

void sl_health_init(sl_health_t *h, const sl_health_cfg_t *cfg, sl_msec_t now)
{
    memset(h, 0, sizeof(*h));
    set_cfg(h, cfg);
    h->unproven = h->cfg.active && h->cfg.start_down;
    h->active_up = !h->unproven;
    h->next_check = now;
    h->state = combined(h);
}

bool sl_health_reconfigure(sl_health_t *h, const sl_health_cfg_t *cfg)
{
    set_cfg(h, cfg);
    if (!h->cfg.active) {
        h->active_up = true;
        h->unproven = false;
        h->ok_run = h->fail_run = 0;
    }
    return settle(h, SL_HEALTH_WHY_RISE, NULL) != 0;
}

int sl_health_tick(sl_health_t *h, sl_msec_t now, sl_health_event_t *ev)
{
    int flags = 0;
    if (h->ejected_until != 0 && now >= h->ejected_until) {
        h->ejected_until = 0;
        h->conn_fail_run = 0;
        if (settle(h, SL_HEALTH_WHY_EJECT_END, ev))
            flags |= SL_HEALTH_EVENT;
    }
    if (h->cfg.active && !h->check_in_flight && now >= h->next_check) {
        h->check_in_flight = true;
        h->next_check = now + h->cfg.interval;
        flags |= SL_HEALTH_RUN_CHECK;
    }
    return flags;
}

int sl_health_check_result(sl_health_t *h, sl_msec_t now, sl_health_result_t r,
                           sl_health_event_t *ev)
{
    (void)now;
    h->check_in_flight = false;
    if (!h->cfg.active || r == SL_CHECK_SKIPPED)
        return 0;
    /* A backend that started DOWN has no history for `rise` to weigh: its
       first verdict stands. After a failure it is DOWN like any other. */
    bool first = h->unproven;
    h->unproven = false;
    if (r == SL_CHECK_OK) {
        h->fail_run = 0;
        if (h->ok_run < UINT32_MAX)
            h->ok_run++;
        if (!h->active_up && (first || h->ok_run >= h->cfg.rise))
            h->active_up = true;
        return settle(h, SL_HEALTH_WHY_RISE, ev);
    }
    h->ok_run = 0;
    if (h->fail_run < UINT32_MAX)
        h->fail_run++;
    if (h->active_up && h->fail_run >= h->cfg.fall)
        h->active_up = false;
    return settle(h, SL_HEALTH_WHY_FALL, ev);
}

int sl_health_conn_result(sl_health_t *h, sl_msec_t now, bool ok, sl_health_event_t *ev)
{
    if (h->cfg.passive_failures == 0 || h->ejected_until != 0)
        return 0;
    if (ok) {
        h->conn_fail_run = 0;
        return 0;
    }
    if (++h->conn_fail_run < h->cfg.passive_failures)
        return 0;
    h->conn_fail_run = 0;
    /* Never 0: that value means "not ejected". */
    h->ejected_until = SL_MAX(now + h->cfg.eject_for, (sl_msec_t)1);
    return settle(h, SL_HEALTH_WHY_EJECT, ev);
}

sl_msec_t sl_health_next_due(const sl_health_t *h)
{
    sl_msec_t due = SL_MSEC_NEVER;
    if (h->cfg.active && !h->check_in_flight)
        due = h->next_check;
    if (h->ejected_until != 0)
        due = SL_MIN(due, h->ejected_until);
    return due;
}

const char *sl_health_state_name(sl_health_state_t s)
{
    switch (s) {
    case SL_HEALTH_UP:
        return "up";
    case SL_HEALTH_DOWN:
        return "down";
    case SL_HEALTH_EJECTED:
        return "ejected";
    }
    return "unknown";
}

const char *sl_health_why_name(sl_health_why_t w)
{
    switch (w) {
    case SL_HEALTH_WHY_RISE:
        return "rise";
    case SL_HEALTH_WHY_FALL:
        return "fall";
    case SL_HEALTH_WHY_EJECT:
        return "eject";
    case SL_HEALTH_WHY_EJECT_END:
        return "eject_end";
    }
    return "unknown";
}
