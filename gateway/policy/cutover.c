/*
 * cutover.c: the blue-green cutover state machine (RAMP -> DRAIN -> DONE,
 * with pause, resume and abort), pure and stepped by the control thread.
 *
 * Why this shape. A redeploy must not become the reconnect storm sluice
 * exists to absorb: every connection drained from the old pool reconnects
 * and lands on the new one, so the drain is paced by the lower of the
 * operator's drain rate and the rate the new pool admits *now* (during slow
 * start that rate climbs; the shell reports it at every step). Pacing is a
 * token accumulator rather than a timer per connection: each step adds
 * pace * elapsed tokens and emits whole ones, and at most one token is
 * carried between steps, so however irregular the steps, the drains over
 * any interval never exceed the paced amount plus one. Over an interval the
 * pace is the lower of the rates reported at its two ends, so a rate that
 * moved in between is never exceeded.
 *
 * Time is counted, not read: the ramp progresses by the unpaused time added
 * at each step, which makes pause a matter of not adding, and resume of
 * restarting the count from `now`. The machine decides how many to drain;
 * which ones is the workers' choice (random), since only they see sessions.
 *
 * Self-pause (new pool unhealthy, too many handshake failures) never
 * resumes by itself: a deploy that went wrong waits for a human, who can
 * resume or abort.
 */
#include "sluice/cutover.h"

#include <math.h>
#include <string.h>

static bool running(const sl_cutover_t *c)
{
    return c->phase == SL_CUTOVER_RAMP || c->phase == SL_CUTOVER_DRAIN;
}

/* The lower of two rates, where < 0 means unlimited. */
static double min_rate(double a, double b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return SL_MIN(a, b);
}

/* The drain cap: the window's rate (estimated from the last report before
 * the drain starts) or the configured rate. */
static double cap_rate(const sl_cutover_t *c)
{
    if (c->cfg.drain_window == 0)
        return c->cfg.drain_rate;
    if (c->phase == SL_CUTOVER_DRAIN)
        return c->window_rate;
    return (double)c->seen.from_open * 1000.0 / (double)c->cfg.drain_window;
}

static double pace_for(const sl_cutover_t *c, double pool_rate, sl_cutover_limit_t *why)
{
    double cap = cap_rate(c);
    sl_cutover_limit_t limit;
    if (cap < 0 && pool_rate < 0)
        limit = SL_CUTOVER_LIMIT_NONE;
    else if (cap < 0 || (pool_rate >= 0 && pool_rate < cap))
        limit = SL_CUTOVER_LIMIT_POOL_RATE;
    else
        limit = SL_CUTOVER_LIMIT_DRAIN_RATE;
    if (why != NULL)
        *why = limit;
    return min_rate(cap, pool_rate);
}

static sl_msec_t ramp_elapsed(const sl_cutover_t *c, sl_msec_t now)
{
    sl_msec_t el = c->ramp_done;
    if (c->phase == SL_CUTOVER_RAMP && !c->paused && now > c->last)
        el += now - c->last;
    return el;
}

static void emit(sl_cutover_actions_t *out, sl_cutover_action_kind_t kind, uint64_t count,
                 sl_cutover_why_t why)
{
    if (out->n < SL_ARRAY_SIZE(out->a))
        out->a[out->n++] = (sl_cutover_action_t){.kind = kind, .count = count, .why = why};
}

int sl_cutover_start(sl_cutover_t *c, const sl_cutover_cfg_t *cfg, size_t from, size_t to,
                     sl_msec_t now, uint64_t failures_now)
{
    if (running(c))
        return SL_ESTATE;
    if (from == to || (cfg->drain_window == 0 && cfg->drain_rate == 0) ||
        isnan(cfg->drain_rate))
        return SL_EINVAL;
    memset(c, 0, sizeof(*c));
    c->phase = SL_CUTOVER_RAMP;
    c->cfg = *cfg;
    c->from = from;
    c->to = to;
    c->started = now;
    c->last = now;
    c->failures_base = failures_now;
    c->seen.to_failures = failures_now;
    c->seen.to_rate = SL_RATE_UNLIMITED;
    c->seen.to_healthy = true;
    return 0;
}

/* Add the time since the last step: ramp progress, or drain tokens. */
static void advance(sl_cutover_t *c, sl_msec_t dt, const sl_cutover_input_t *prev,
                    const sl_cutover_input_t *in)
{
    if (c->phase == SL_CUTOVER_RAMP) {
        c->ramp_done += dt;
        return;
    }
    c->last_pace = pace_for(c, min_rate(prev->to_rate, in->to_rate), NULL);
    if (c->last_pace >= 0)
        c->tokens += c->last_pace * (double)dt / 1000.0;
}

/* Self-pause checks; true when the machine paused itself in this step. */
static bool self_pause(sl_cutover_t *c, const sl_cutover_input_t *in, sl_cutover_actions_t *out)
{
    sl_cutover_why_t why = SL_CUTOVER_WHY_NONE;
    if (!in->to_healthy)
        why = SL_CUTOVER_WHY_UNHEALTHY;
    else if (c->cfg.pause_after_failures > 0 && in->to_failures >= c->failures_base &&
             in->to_failures - c->failures_base >= c->cfg.pause_after_failures)
        why = SL_CUTOVER_WHY_HANDSHAKE_FAILURES;
    if (why == SL_CUTOVER_WHY_NONE)
        return false;
    c->paused = true;
    c->why_paused = why;
    c->tokens = SL_MIN(c->tokens, 1.0);
    emit(out, SL_CUTOVER_ACT_PAUSED, 0, why);
    return true;
}

static void enter_drain(sl_cutover_t *c, const sl_cutover_input_t *in, sl_cutover_actions_t *out)
{
    c->phase = SL_CUTOVER_DRAIN;
    c->ramp_done = c->cfg.ramp;
    if (c->cfg.drain_window > 0)
        c->window_rate = (double)in->from_open * 1000.0 / (double)c->cfg.drain_window;
    c->tokens = 1.0;   /* the first drain goes at once */
    c->last_pace = pace_for(c, in->to_rate, NULL);
    emit(out, SL_CUTOVER_ACT_DRAIN_START, 0, SL_CUTOVER_WHY_NONE);
}

static void drain(sl_cutover_t *c, const sl_cutover_input_t *in, sl_cutover_actions_t *out)
{
    uint64_t candidates = in->from_open > in->from_draining ? in->from_open - in->from_draining
                                                            : 0;
    uint64_t k = candidates;
    if (c->last_pace >= 0 && (double)k > floor(c->tokens))
        k = (uint64_t)floor(c->tokens);
    if (k > 0) {
        emit(out, SL_CUTOVER_ACT_DRAIN, k, SL_CUTOVER_WHY_NONE);
        c->drained += k;
        if (c->last_pace >= 0)
            c->tokens -= (double)k;
    }
    /* Credit unused for want of candidates is not banked beyond one token. */
    c->tokens = SL_MIN(c->tokens, 1.0);
}

sl_cutover_phase_t sl_cutover_step(sl_cutover_t *c, sl_msec_t now, const sl_cutover_input_t *in,
                                   sl_cutover_actions_t *out)
{
    out->n = 0;
    if (!running(c))
        return c->phase;
    sl_msec_t dt = now > c->last ? now - c->last : 0;
    c->last = SL_MAX(c->last, now);
    sl_cutover_input_t prev = c->seen;
    c->seen = *in;
    if (c->paused)
        return c->phase;
    advance(c, dt, &prev, in);
    if (self_pause(c, in, out))
        return c->phase;
    if (c->phase == SL_CUTOVER_RAMP && c->ramp_done >= c->cfg.ramp)
        enter_drain(c, in, out);
    if (c->phase == SL_CUTOVER_DRAIN) {
        if (in->from_open == 0) {
            c->phase = SL_CUTOVER_DONE;
            c->tokens = 0;
            emit(out, SL_CUTOVER_ACT_DONE, 0, SL_CUTOVER_WHY_NONE);
        } else {
            drain(c, in, out);
        }
    }
    return c->phase;
}

int sl_cutover_pause(sl_cutover_t *c, sl_msec_t now)
{
    if (!running(c) || c->paused)
        return SL_ESTATE;
    /* Ramp time up to now counts; drain credit does not grow past a token. */
    if (c->phase == SL_CUTOVER_RAMP && now > c->last)
        c->ramp_done = SL_MIN(c->ramp_done + (now - c->last), c->cfg.ramp);
    c->last = SL_MAX(c->last, now);
    c->tokens = SL_MIN(c->tokens, 1.0);
    c->paused = true;
    c->why_paused = SL_CUTOVER_WHY_OPERATOR;
    return 0;
}

int sl_cutover_resume(sl_cutover_t *c, sl_msec_t now)
{
    if (!running(c) || !c->paused)
        return SL_ESTATE;
    c->paused = false;
    c->why_paused = SL_CUTOVER_WHY_NONE;
    c->last = SL_MAX(c->last, now);
    c->failures_base = c->seen.to_failures;
    return 0;
}

int sl_cutover_abort(sl_cutover_t *c, sl_msec_t now)
{
    if (!running(c))
        return SL_ESTATE;
    c->phase = SL_CUTOVER_ABORTED;
    c->paused = false;
    c->why_paused = SL_CUTOVER_WHY_NONE;
    c->tokens = 0;
    c->last = SL_MAX(c->last, now);
    return 0;
}

double sl_cutover_weight_to(const sl_cutover_t *c, sl_msec_t now)
{
    switch (c->phase) {
    case SL_CUTOVER_RAMP:
        /* A ramp of 0 moves everything at once, at the first unpaused step,
           which enters DRAIN. Still in RAMP and paused means the machine
           paused itself at that first step (the new pool was unhealthy):
           nothing has moved yet, and new connections stay on the old pool
           rather than all going to a pool that cannot take them. */
        if (c->cfg.ramp == 0)
            return c->paused ? 0.0 : 1.0;
        return SL_MIN(1.0, (double)ramp_elapsed(c, now) / (double)c->cfg.ramp);
    case SL_CUTOVER_DRAIN:
    case SL_CUTOVER_DONE:
        return 1.0;
    case SL_CUTOVER_IDLE:
    case SL_CUTOVER_ABORTED:
    default:
        return 0.0;
    }
}

size_t sl_cutover_pick_pool(const sl_cutover_t *c, sl_msec_t now, sl_rng_t *rng)
{
    double w = sl_cutover_weight_to(c, now);
    if (w >= 1.0)
        return c->to;
    if (w <= 0.0)
        return c->from;
    return sl_rng_unit(rng) < w ? c->to : c->from;
}

static sl_msec_t eta_for(const sl_cutover_progress_t *p, const sl_cutover_input_t *seen)
{
    uint64_t undrained = seen->from_open > seen->from_draining
                             ? seen->from_open - seen->from_draining : 0;
    if (undrained == 0 || p->pace < 0)
        return p->ramp_left;
    if (p->pace == 0)
        return SL_MSEC_NEVER;
    double ms = ceil((double)undrained * 1000.0 / p->pace);
    if (ms >= 1e18)   /* a vanishing pace: no meaningful ETA, and no overflow */
        return SL_MSEC_NEVER;
    return p->ramp_left + (sl_msec_t)ms;
}

void sl_cutover_progress(const sl_cutover_t *c, sl_msec_t now, sl_cutover_progress_t *p)
{
    memset(p, 0, sizeof(*p));
    p->phase = c->phase;
    p->paused = c->paused;
    p->why_paused = c->why_paused;
    p->weight_to = sl_cutover_weight_to(c, now);
    p->weight_from = 1.0 - p->weight_to;
    p->drained = c->drained;
    p->remaining = c->seen.from_open;
    if (!running(c))
        return;
    p->pace = pace_for(c, c->seen.to_rate, &p->pace_limit);
    if (c->phase == SL_CUTOVER_RAMP) {
        sl_msec_t el = ramp_elapsed(c, now);
        p->ramp_left = el < c->cfg.ramp ? c->cfg.ramp - el : 0;
    }
    p->eta = eta_for(p, &c->seen);
}

const char *sl_cutover_phase_name(sl_cutover_phase_t p)
{
    switch (p) {
    case SL_CUTOVER_IDLE: return "idle";
    case SL_CUTOVER_RAMP: return "ramp";
    case SL_CUTOVER_DRAIN: return "drain";
    case SL_CUTOVER_DONE: return "done";
    case SL_CUTOVER_ABORTED: return "aborted";
    }
    return "unknown";
}

const char *sl_cutover_why_name(sl_cutover_why_t w)
{
    switch (w) {
    case SL_CUTOVER_WHY_NONE: return "";
    case SL_CUTOVER_WHY_OPERATOR: return "operator";
    case SL_CUTOVER_WHY_UNHEALTHY: return "new_pool_unhealthy";
    case SL_CUTOVER_WHY_HANDSHAKE_FAILURES: return "new_pool_handshake_failures";
    }
    return "unknown";
}

const char *sl_cutover_limit_name(sl_cutover_limit_t l)
{
    switch (l) {
    case SL_CUTOVER_LIMIT_NONE: return "none";
    case SL_CUTOVER_LIMIT_DRAIN_RATE: return "drain_rate";
    case SL_CUTOVER_LIMIT_POOL_RATE: return "new_pool_admission_rate";
    }
    return "unknown";
}
