/*
 * api_policy.c: the admin resources that drive policy — admission limits
 * and deploys per service, reload — and their Prometheus families.
 *
 * Handlers run on the control thread, where the policy state lives (ctl),
 * so they read and change it directly. Values in bodies take the config's
 * notations ("300/s", "30s") or plain numbers (per second, milliseconds).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/config.h"
#include "../net/control.h"
#include "../net/ctl.h"
#include "admin.h"

/* ---- reading bodies ---- */

static long service_index(sl_admin_req_t *req, sl_admin_resp_t *resp)
{
    sl_ctl_t *ctl = req->gw->ctl;
    if (ctl == NULL) {
        sl_admin_error(resp, 503, "shutting down");
        return -1;
    }
    for (size_t i = 0; i < ctl->rt->cfg->n_services; i++)
        if (strcmp(ctl->rt->cfg->services[i].name, req->params[0]) == 0)
            return (long)i;
    sl_admin_error(resp, 404, "no service \"%s\"", req->params[0]);
    return -1;
}

/* A rate: "300/s" or a number per second. Returns 1 when present, 0 absent, -1 bad. */
static int get_rate(const sl_json_t *obj, const char *key, double *out)
{
    const sl_json_t *v = sl_json_get(obj, key);
    if (v == NULL)
        return 0;
    if (v->type == SL_JSON_NUMBER && v->num >= 0) {
        *out = v->num;
        return 1;
    }
    return v->type == SL_JSON_STRING && sl_parse_rate(v->str, out) == 0 ? 1 : -1;
}

/*
 * A duration: "30s" or a whole number of milliseconds. A fraction is
 * refused, as the config refuses "1.5ms": cut to whole milliseconds, 1.5
 * became 1 and 0.5 became 0 without a word, and 0 is "off" for slow_start
 * and "at once" for a ramp.
 */
static int get_duration(const sl_json_t *obj, const char *key, sl_msec_t *out)
{
    const sl_json_t *v = sl_json_get(obj, key);
    if (v == NULL)
        return 0;
    if (v->type == SL_JSON_NUMBER && v->num >= 0 && v->num < 1e12 && floor(v->num) == v->num) {
        *out = (sl_msec_t)v->num;
        return 1;
    }
    return v->type == SL_JSON_STRING && sl_parse_duration(v->str, out) == 0 ? 1 : -1;
}

static int get_uint(const sl_json_t *obj, const char *key, uint64_t max, uint64_t *out)
{
    const sl_json_t *v = sl_json_get(obj, key);
    if (v == NULL)
        return 0;
    if (v->type != SL_JSON_NUMBER || v->num < 0 || v->num > (double)max || floor(v->num) != v->num)
        return -1;
    *out = (uint64_t)v->num;
    return 1;
}

#define BAD_LEN 400

typedef void why_fn(const char *s, char *buf, size_t len);

/*
 * Note why a field is refused, unless one was already: the answer names the
 * first field refused, what it takes and what was sent (as JSON, up to 64
 * bytes), so "1e2" or 1.5 sent where the config's notation was due is seen;
 * for text in a notation (`why`: the config's own words for a duration or a
 * rate), what is wrong with it, as the config says it: "1.5ms" is "finer
 * than a millisecond", "30 s" has "a space inside the value".
 */
static void refuse_why(char *bad, const sl_json_t *obj, const char *key, const char *want,
                       why_fn *why)
{
    if (bad[0] != '\0')
        return;
    const sl_json_t *v = sl_json_get(obj, key);
    char words[128] = "";
    if (why != NULL && v != NULL && v->type == SL_JSON_STRING)
        why(v->str, words, sizeof words);
    sl_buf_t got = {0};
    sl_jw_t w;
    sl_jw_init(&w, &got, false);
    sl_jw_value(&w, sl_json_get(obj, key));
    size_t n = got.len;
    if (n > 64) {
        n = 64;
        while (n > 0 && ((unsigned char)got.data[n] & 0xC0) == 0x80)
            n--;   /* not in the middle of a UTF-8 sequence */
    }
    snprintf(bad, BAD_LEN, "%s: expected %s (got %.*s%s%s%s)", key, want, (int)n,
             got.data ? got.data : "", n < got.len ? "..." : "", words[0] ? ": " : "", words);
    sl_buf_free(&got);
}

static void refuse(char *bad, const sl_json_t *obj, const char *key, const char *want)
{
    refuse_why(bad, obj, key, want, NULL);
}

static void refuse_rate(char *bad, const sl_json_t *obj, const char *key)
{
    refuse_why(bad, obj, key, "a rate like 300/s or a number per second", sl_why_rate);
}

static void refuse_duration(char *bad, const sl_json_t *obj, const char *key)
{
    refuse_why(bad, obj, key, "a duration like 30s or a whole number of milliseconds",
               sl_why_duration);
}

/* The same for a refusal that is not about one value's form. */
static void refuse_msg(char *bad, const char *msg)
{
    if (bad[0] == '\0')
        snprintf(bad, BAD_LEN, "%s", msg);
}

#define WANT_WHOLE "a whole number"

/* A name, borrowed from the request (its strings hold no NUL: the server
   parses with no_nul): 0 absent, -1 not a string, 1 found. Names have no
   length of their own to fit: a config's pool may have a long one. */
static int get_name(const sl_json_t *obj, const char *key, const char **out)
{
    const sl_json_t *v = sl_json_get(obj, key);
    if (v == NULL)
        return 0;
    if (v->type != SL_JSON_STRING)
        return -1;
    *out = v->str;
    return 1;
}

static int get_str(const sl_json_t *obj, const char *key, char *out, size_t cap)
{
    const sl_json_t *v = sl_json_get(obj, key);
    if (v == NULL)
        return 0;
    if (v->type != SL_JSON_STRING || v->len >= cap)
        return -1;
    memcpy(out, v->str, v->len + 1);
    return 1;
}

/* Refuse members the handler does not know: a typo must not be ignored.
   Anything but an object is refused too (an array's members have no key). */
static bool only_keys(sl_admin_resp_t *resp, const sl_json_t *obj, const char *const *keys)
{
    if (obj == NULL || obj->type != SL_JSON_OBJECT) {
        sl_admin_error(resp, 400, "expected a JSON object");
        return false;
    }
    for (const sl_json_t *m = obj->child; m; m = m->next) {
        bool known = false;
        for (size_t i = 0; keys[i]; i++)
            known = known || strcmp(m->key, keys[i]) == 0;
        if (!known) {
            sl_admin_error(resp, 400, "unknown field \"%s\"", m->key);
            return false;
        }
    }
    return true;
}

/*
 * Keep what the API just changed in the state file. The change is live
 * either way (undoing it could fail as well), but an operator told "200"
 * would expect it to survive a restart: when the file cannot be written the
 * answer is 500 saying exactly that. Returns false when it answered so.
 */
static bool saved(sl_admin_resp_t *resp, sl_ctl_t *ctl)
{
    int rc = sl_state_save(ctl);
    if (rc == 0)
        return true;
    sl_admin_error(resp, 500, "applied, but not saved to the state file %s: %s (the change "
                   "is lost at the next restart)", ctl->rt->cfg->admin.state_file,
                   strerror(-rc));
    return false;
}

/* ---- admission ---- */

static void write_admission(sl_jw_t *w, const sl_admission_params_t *p,
                            const sl_admission_stats_t *st)
{
    sl_jw_obj(w);
    sl_state_write_limits(w, p);
    sl_jw_key(w, "state");
    sl_jw_obj(w);
    sl_jw_knum(w, "tokens", st->tokens);
    sl_jw_knum(w, "current_rate", st->rate);
    sl_jw_kuint(w, "queue_depth", st->depth);
    sl_jw_kuint(w, "queue_depth_peak", st->depth_peak);
    sl_jw_kuint(w, "admitted", st->admitted);
    sl_jw_kuint(w, "stalled_ms", st->forfeited_ms);
    sl_jw_key(w, "rejected");
    sl_jw_obj(w);
    for (int r = 1; r < SL_ADM_REASON_COUNT; r++)
        sl_jw_kuint(w, sl_admission_reason_name((sl_adm_reason_t)r), st->rejected[r]);
    sl_jw_end(w);
    sl_jw_end(w);
    sl_jw_end(w);
}

void sl__admin_get_admission(sl_admin_req_t *req, sl_admin_resp_t *resp)
{
    long svc = service_index(req, resp);
    if (svc < 0)
        return;
    sl_ctl_t *ctl = req->gw->ctl;
    sl_admission_params_t p;
    sl_admission_stats_t st;
    if (sl_ctl_admission_get(ctl, (size_t)svc, -1, &p, &st) != 0) {
        sl_jw_obj(&resp->jw);
        sl_jw_kstr(&resp->jw, "service", req->params[0]);
        sl_jw_kbool(&resp->jw, "enabled", false);
        sl_jw_end(&resp->jw);
        return;
    }
    sl_jw_t *w = &resp->jw;
    sl_jw_obj(w);
    sl_jw_kstr(w, "service", req->params[0]);
    sl_jw_kbool(w, "enabled", true);
    sl_jw_key(w, "limits");
    write_admission(w, &p, &st);
    sl_jw_key(w, "pools");
    sl_jw_obj(w);
    const sl_cfg_service_t *s = &ctl->rt->cfg->services[svc];
    for (size_t k = 0; k < s->n_pools; k++) {
        if (sl_ctl_admission_get(ctl, (size_t)svc, (long)s->pools[k], &p, &st) == 0) {
            sl_jw_key(w, ctl->rt->cfg->pools[s->pools[k]].name);
            write_admission(w, &p, &st);
        }
    }
    sl_jw_end(w);
    sl_jw_end(w);
}

static const char *const admission_keys[] = {
    "pool", "rate", "burst", "queue_length", "max_wait", "per_client", "per_client_rate",
    "retry_after_min", "retry_after_max", "slow_start", NULL};

void sl__admin_put_admission(sl_admin_req_t *req, sl_admin_resp_t *resp)
{
    long svc = service_index(req, resp);
    if (svc < 0)
        return;
    const sl_json_t *j = req->json;
    if (j == NULL || j->type != SL_JSON_OBJECT) {
        sl_admin_error(resp, 400, "expected a JSON object with the limits to change");
        return;
    }
    if (!only_keys(resp, j, admission_keys))
        return;
    /* A PUT stands over the YAML from then on (all its limits, kept in the
       state file): one that changes nothing must not pin them, or a later
       edit of the YAML is silently not applied at reload. */
    if (j->n == (sl_json_get(j, "pool") != NULL ? 1u : 0u)) {
        sl_admin_error(resp, 400, "no limit to change (expected rate, burst, queue_length, "
                       "max_wait, per_client, per_client_rate, retry_after_min, retry_after_max "
                       "or slow_start)");
        return;
    }
    sl_ctl_t *ctl = req->gw->ctl;
    long pool = -1;
    const char *pool_name = NULL;
    int r = get_name(j, "pool", &pool_name);
    if (r < 0) {
        char why[BAD_LEN] = "";
        refuse(why, j, "pool", "a pool name");
        sl_admin_error(resp, 400, "%s", why);
        return;
    }
    if (r > 0 && (pool = sl_config_pool_index(ctl->rt->cfg, pool_name)) < 0) {
        sl_admin_error(resp, 404, "no pool \"%s\"", pool_name);
        return;
    }
    if (pool >= 0 && !sl_config_service_uses(&ctl->rt->cfg->services[svc], (size_t)pool)) {
        sl_admin_error(resp, 404, "service \"%s\" has no pool \"%s\"", req->params[0],
                       pool_name);
        return;
    }
    sl_admission_params_t p;
    sl_admission_stats_t st;
    if (sl_ctl_admission_get(ctl, (size_t)svc, pool, &p, &st) != 0) {
        sl_admin_error(resp, 409, pool < 0 || ctl->services[svc].adm == NULL
                                      ? "admission is off for this service"
                                      : "this pool has no admission rate of its own");
        return;
    }
    uint64_t u;
    sl_msec_t d;
    char bad[BAD_LEN] = "";
    if (get_rate(j, "rate", &p.bucket.rate) < 0)
        refuse_rate(bad, j, "rate");
    if ((r = get_uint(j, "burst", 10000000, &u)) < 0)
        refuse(bad, j, "burst", WANT_WHOLE);
    else if (r > 0)
        p.bucket.burst = (uint32_t)u;
    if ((r = get_uint(j, "queue_length", 10000000, &u)) < 0)
        refuse(bad, j, "queue_length", WANT_WHOLE);
    else if (r > 0)
        p.queue_length = (uint32_t)u;
    if ((r = get_duration(j, "max_wait", &d)) < 0)
        refuse_duration(bad, j, "max_wait");
    else if (r > 0)
        p.max_wait = d;
    if ((r = get_uint(j, "per_client", 1000000, &u)) < 0)
        refuse(bad, j, "per_client", WANT_WHOLE);
    else if (r > 0)
        p.per_client = (uint32_t)u;
    if (get_rate(j, "per_client_rate", &p.per_client_rate) < 0)
        refuse_rate(bad, j, "per_client_rate");
    if (get_duration(j, "retry_after_min", &p.retry_after_min) < 0)
        refuse_duration(bad, j, "retry_after_min");
    if (get_duration(j, "retry_after_max", &p.retry_after_max) < 0)
        refuse_duration(bad, j, "retry_after_max");
    if (get_duration(j, "slow_start", &p.bucket.slow_start) < 0)
        refuse_duration(bad, j, "slow_start");
    if (bad[0] != '\0') {
        sl_admin_error(resp, 400, "%s", bad);
        return;
    }
    char err[160];
    if (sl_ctl_admission_set(ctl, (size_t)svc, pool, &p, err, sizeof err) != 0) {
        sl_admin_error(resp, 400, "%s", err);
        return;
    }
    if (pool < 0)
        ctl->services[svc].admission_overridden = true;
    else
        ctl->pools[pool].admission_overridden = true;
    if (saved(resp, ctl))
        sl__admin_get_admission(req, resp);
}

/* ---- deploys ---- */

static void write_deploy(sl_jw_t *w, const char *service, const sl_deploy_status_t *d)
{
    const sl_cutover_progress_t *p = &d->progress;
    sl_jw_obj(w);
    sl_jw_kstr(w, "service", service);
    sl_jw_kstr(w, "from", d->from);
    sl_jw_kstr(w, "to", d->to);
    sl_jw_kstr(w, "active", d->active);
    sl_jw_kbool(w, "in_progress", d->in_progress);
    sl_jw_kstr(w, "phase", sl_cutover_phase_name(p->phase));
    sl_jw_kbool(w, "paused", p->paused);
    sl_jw_kstr(w, "paused_why", sl_cutover_why_name(p->why_paused));
    sl_jw_key(w, "weights");
    sl_jw_obj(w);
    sl_jw_knum(w, d->from, p->weight_from);
    sl_jw_knum(w, d->to, p->weight_to);
    sl_jw_end(w);
    sl_jw_kuint(w, "drained", p->drained);
    sl_jw_kuint(w, "remaining", p->remaining);
    sl_jw_key(w, "pace");
    if (p->pace < 0)
        sl_jw_null(w);
    else
        sl_jw_num(w, p->pace);
    sl_jw_kstr(w, "pace_limited_by", sl_cutover_limit_name(p->pace_limit));
    sl_jw_kuint(w, "ramp_left_ms", p->ramp_left);
    sl_jw_key(w, "eta_ms");
    if (p->eta == SL_MSEC_NEVER)
        sl_jw_null(w);
    else
        sl_jw_uint(w, p->eta);
    sl_jw_kuint(w, "close_code", d->close_code);
    sl_jw_kstr(w, "reason", d->reason);
    sl_jw_end(w);
}

void sl__admin_get_deploy(sl_admin_req_t *req, sl_admin_resp_t *resp)
{
    long svc = service_index(req, resp);
    if (svc < 0)
        return;
    sl_deploy_status_t d;
    if (sl_ctl_deploy_status(req->gw->ctl, (size_t)svc, &d) != 0) {
        if (req->gw->ctl->services[svc].deploy_dropped)
            sl_admin_error(resp, 404, "service \"%s\": its last deploy ended with a reload "
                           "that removed one of its pools", req->params[0]);
        else
            sl_admin_error(resp, 404, "service \"%s\" has had no deploy", req->params[0]);
        return;
    }
    write_deploy(&resp->jw, req->params[0], &d);
}

static const char *const deploy_keys[] = {"from", "to", "ramp", "drain_rate", "drain_window",
                                          "pause_after_failures", "close_code", "reason", NULL};

void sl__admin_post_deploy(sl_admin_req_t *req, sl_admin_resp_t *resp)
{
    long svc = service_index(req, resp);
    if (svc < 0)
        return;
    const sl_json_t *j = req->json;
    if (j == NULL || j->type != SL_JSON_OBJECT) {
        sl_admin_error(resp, 400, "expected a JSON object: {\"to\": \"green\", ...}");
        return;
    }
    if (!only_keys(resp, j, deploy_keys))
        return;
    /* Defaults: the service's drain settings in the config. */
    const sl_cfg_service_t *s = &req->gw->ctl->rt->cfg->services[svc];
    sl_deploy_params_t p = {.close_code = s->drain.close_code, .drain_rate = s->drain.rate};
    snprintf(p.reason, sizeof p.reason, "%s", s->drain.reason ? s->drain.reason : "");
    uint64_t u;
    char bad[BAD_LEN] = "";
    int r = get_name(j, "to", &p.to);
    if (r == 0)
        refuse_msg(bad, "to: the pool to move to is required");
    else if (r < 0)
        refuse(bad, j, "to", "a pool name");
    if (get_name(j, "from", &p.from) < 0)
        refuse(bad, j, "from", "a pool name");
    if (get_duration(j, "ramp", &p.ramp) < 0)
        refuse_duration(bad, j, "ramp");
    /* The YAML's drain.rate bounds: 0 once meant "no cap of its own", and
       with no admission rate on the new pool it closed every connection of
       the old one at once, the reconnect storm a cutover must not be. */
    char range[128], msg[160];
    int dr = get_rate(j, "drain_rate", &p.drain_rate);
    if (dr < 0) {
        refuse_rate(bad, j, "drain_rate");
    } else if (dr > 0 && !sl_config_check_bound("services.drain.rate", p.drain_rate, range,
                                                sizeof range)) {
        snprintf(msg, sizeof msg, "drain_rate: %s", range);
        refuse_msg(bad, msg);
    }
    if (get_duration(j, "drain_window", &p.drain_window) < 0)
        refuse_duration(bad, j, "drain_window");
    /* A window sets the rate itself (cutover.c's cap_rate): with both, the
       drain_rate the caller chose was silently not the one in force. */
    else if (dr > 0 && sl_json_get(j, "drain_window") != NULL)
        refuse_msg(bad, "drain_rate and drain_window: give one or the other (a window sets "
                        "the rate)");
    if (get_uint(j, "pause_after_failures", 1000000000, &p.pause_after_failures) < 0)
        refuse(bad, j, "pause_after_failures", WANT_WHOLE);
    r = get_uint(j, "close_code", 4999, &u);
    if (r < 0)
        refuse(bad, j, "close_code", "a close code like 1012");
    else if (r > 0)
        p.close_code = (uint16_t)u;
    if (get_str(j, "reason", p.reason, sizeof p.reason) < 0)
        refuse_msg(bad, "reason: expected a string of at most 123 bytes");
    if (bad[0] != '\0') {
        sl_admin_error(resp, 400, "%s", bad);
        return;
    }
    char err[160];
    int rc = sl_ctl_deploy_start(req->gw->ctl, (size_t)svc, &p, err, sizeof err);
    if (rc != 0) {
        sl_admin_error(resp, rc == SL_EEXIST || rc == SL_ESTATE ? 409 : rc == SL_ENOENT ? 404 : 400,
                       "%s", err);
        return;
    }
    resp->status = 201;
    sl_deploy_status_t d;
    sl_ctl_deploy_status(req->gw->ctl, (size_t)svc, &d);
    write_deploy(&resp->jw, req->params[0], &d);
}

/*
 * An action that takes no parameters (reload, pause, resume, abort) takes no
 * body, or an empty object: a field sent with it is refused like a typo
 * elsewhere, rather than a 200 that leaves the caller believing it counted
 * ("POST /reload {\"file\": ...}" reloaded the old file).
 */
static bool no_fields(const sl_admin_req_t *req, sl_admin_resp_t *resp)
{
    static const char *const none[] = {NULL};
    return req->json == NULL || only_keys(resp, req->json, none);
}

static void deploy_op(sl_admin_req_t *req, sl_admin_resp_t *resp,
                      int (*op)(sl_ctl_t *, size_t))
{
    long svc = service_index(req, resp);
    if (svc < 0 || !no_fields(req, resp))
        return;
    int rc = op(req->gw->ctl, (size_t)svc);
    if (rc == SL_ENOENT) {
        sl_admin_error(resp, 409, "no deploy of \"%s\" is in progress", req->params[0]);
        return;
    }
    if (rc != 0) {
        sl_admin_error(resp, 409, "not possible in the deploy's current state");
        return;
    }
    sl__admin_get_deploy(req, resp);
}

void sl__admin_post_pause(sl_admin_req_t *req, sl_admin_resp_t *resp)
{
    deploy_op(req, resp, sl_ctl_deploy_pause);
}

void sl__admin_post_resume(sl_admin_req_t *req, sl_admin_resp_t *resp)
{
    deploy_op(req, resp, sl_ctl_deploy_resume);
}

void sl__admin_post_abort(sl_admin_req_t *req, sl_admin_resp_t *resp)
{
    deploy_op(req, resp, sl_ctl_deploy_abort);
}

/* ---- metrics ---- */

static void fam(sl_buf_t *b, const char *name, const char *type, const char *help)
{
    sl_buf_printf(b, "# HELP sluice_%s %s\n# TYPE sluice_%s %s\n", name, help, name, type);
}

/* "sluice_NAME{" and the labels in `lab` (written by sl__admin_label); the
   caller adds any more labels, then "} value". */
static void sample(sl_buf_t *b, const char *name, const char *suffix, const sl_buf_t *lab)
{
    sl_buf_printf(b, "sluice_%s%s{%s", name, suffix, lab->data ? lab->data : "");
}

/* Labels of one series, escaped, for sample(); a failed allocation fails the answer. */
static void labels(sl_buf_t *lab, sl_buf_t *b, const char *k1, const char *v1, const char *k2,
                   const char *v2)
{
    lab->len = 0;
    if (lab->data)
        lab->data[0] = '\0';
    sl__admin_label(lab, k1, v1);
    if (k2 != NULL) {
        sl_buf_puts(lab, ",");
        sl__admin_label(lab, k2, v2);
    }
    b->oom = b->oom || lab->oom;
}

/* One sample of an admission family for the queue whose labels are `lab`. */
static void admission_sample(sl_buf_t *b, const char *name, size_t k, const sl_buf_t *lab,
                             const sl_admission_stats_t *st)
{
    switch (k) {
    case 0: sample(b, name, "", lab); sl_buf_printf(b, "} %u\n", st->depth); break;
    case 1: sample(b, name, "", lab); sl_buf_printf(b, "} %u\n", st->depth_peak); break;
    case 2: sample(b, name, "", lab); sl_buf_printf(b, "} %.3f\n", st->tokens); break;
    case 3: sample(b, name, "", lab); sl_buf_printf(b, "} %.3f\n", st->rate); break;
    case 4:
        sample(b, name, "", lab);
        sl_buf_printf(b, "} %llu\n", (unsigned long long)st->admitted);
        break;
    case 5:
        for (int r = 1; r < SL_ADM_REASON_COUNT; r++) {
            sample(b, name, "", lab);
            sl_buf_puts(b, ",");
            sl__admin_label(b, "reason", sl_admission_reason_name((sl_adm_reason_t)r));
            sl_buf_printf(b, "} %llu\n", (unsigned long long)st->rejected[r]);
        }
        break;
    case 6:
        sample(b, name, "", lab);
        sl_buf_printf(b, "} %.3f\n", (double)st->forfeited_ms / 1000.0);
        break;
    default:
        for (int i = 0; i < SL_ADMISSION_WAIT_BUCKETS; i++) {
            char le[32] = "+Inf";
            if (sl_admission_wait_le[i] != SL_MSEC_NEVER)
                snprintf(le, sizeof le, "%g", (double)sl_admission_wait_le[i] / 1000.0);
            sample(b, name, "_bucket", lab);
            sl_buf_puts(b, ",");
            sl__admin_label(b, "le", le);
            sl_buf_printf(b, "} %llu\n", (unsigned long long)st->wait_le[i]);
        }
        sample(b, name, "_sum", lab);
        sl_buf_printf(b, "} %.3f\n", (double)st->wait_sum_ms / 1000.0);
        sample(b, name, "_count", lab);
        sl_buf_printf(b, "} %llu\n", (unsigned long long)st->admitted);
        break;
    }
}

void sl__admin_policy_metrics(sl_gateway_t *gw, sl_buf_t *b)
{
    sl_ctl_t *ctl = gw->ctl;
    sl_buf_t lab = {0};
    fam(b, "worker_connections_open", "gauge", "Client connections open on each worker");
    for (size_t i = 0; i < gw->n_workers; i++) {
        char id[24];
        snprintf(id, sizeof id, "%zu", i);
        labels(&lab, b, "worker", id, NULL, NULL);
        sample(b, "worker_connections_open", "", &lab);
        sl_buf_printf(b, "} %zu\n",
                      atomic_load_explicit(&gw->workers[i].open_sessions, memory_order_relaxed));
    }
    if (ctl == NULL) {
        sl_buf_free(&lab);
        return;
    }
    const sl_config_t *cfg = ctl->rt->cfg;
    static const struct {
        const char *name, *type, *help;
    } f[] = {
        {"admission_queue_depth", "gauge", "Clients waiting for admission"},
        {"admission_queue_depth_peak", "gauge", "Most clients ever waiting at once"},
        {"admission_tokens", "gauge", "Tokens in the bucket"},
        {"admission_rate", "gauge", "Current admission rate per second (slow start included)"},
        {"admission_admitted_total", "counter", "Clients admitted"},
        {"admission_rejected_total", "counter", "Clients turned away, by reason"},
        {"admission_stalled_seconds_total", "counter",
         "Waiting time that earned no tokens because the control thread ran late"},
        {"admission_wait_seconds", "histogram", "Time admitted clients waited"},
    };
    for (size_t k = 0; k < SL_ARRAY_SIZE(f); k++) {
        fam(b, f[k].name, f[k].type, f[k].help);
        for (size_t svc = 0; svc < cfg->n_services; svc++) {
            for (long pool = -1; pool < (long)cfg->n_pools; pool++) {
                sl_admission_params_t p;
                sl_admission_stats_t st;
                /* A pool's own queue once, under the service it belongs to
                   (sums over a family counted a shared pool's twice). */
                if ((pool >= 0 && sl_ctl_pool_service(ctl, (size_t)pool) != (long)svc) ||
                    sl_ctl_admission_get(ctl, svc, pool, &p, &st) != 0)
                    continue;
                labels(&lab, b, "service", cfg->services[svc].name, "queue",
                       pool < 0 ? "service" : cfg->pools[pool].name);
                admission_sample(b, f[k].name, k, &lab, &st);
            }
        }
    }
    fam(b, "websockets_open", "gauge", "Proxied WebSockets open, by service and pool");
    for (size_t svc = 0; svc < cfg->n_services; svc++) {
        for (size_t pool = 0; pool < cfg->n_pools; pool++) {
            labels(&lab, b, "service", cfg->services[svc].name, "pool", cfg->pools[pool].name);
            sample(b, "websockets_open", "", &lab);
            sl_buf_printf(b, "} %u\n",
                          atomic_load(&sl_runtime_ws(ctl->rt, (long)svc, (long)pool)->open));
        }
    }
    /* Family by family: each one's samples right after its HELP and TYPE. */
    static const struct {
        const char *name, *type, *help;
    } df[] = {
        {"deploy_in_progress", "gauge", "1 while a cutover of the service runs"},
        {"deploy_drained_total", "counter",
         "Connections asked to drain by the service's cutovers since start"},
        {"deploy_remaining", "gauge", "Connections left on the old pool"},
        {"deploy_weight_to", "gauge", "Share of new connections going to the new pool"},
    };
    for (size_t k = 0; k < SL_ARRAY_SIZE(df); k++) {
        fam(b, df[k].name, df[k].type, df[k].help);
        for (size_t svc = 0; svc < cfg->n_services; svc++) {
            sl_deploy_status_t d;
            if (sl_ctl_deploy_status(ctl, svc, &d) != 0)
                continue;
            labels(&lab, b, "service", cfg->services[svc].name, NULL, NULL);
            sample(b, df[k].name, "", &lab);
            if (k == 0)
                sl_buf_printf(b, "} %d\n", d.in_progress);
            else if (k == 1)
                sl_buf_printf(b, "} %llu\n", (unsigned long long)d.drained_total);
            else if (k == 2)
                sl_buf_printf(b, "} %llu\n", (unsigned long long)d.progress.remaining);
            else
                sl_buf_printf(b, "} %.4f\n", d.progress.weight_to);
        }
    }
    sl_buf_free(&lab);
}

/* ---- reload ---- */

/* A refused change: the error, and every reason the loader gave (frees diag). */
static void write_refusal(sl_admin_resp_t *resp, int status, const char *what, sl_diag_t *diag)
{
    resp->status = status;
    sl_jw_obj(&resp->jw);
    sl_jw_kstr(&resp->jw, "error", what);
    sl_jw_key(&resp->jw, "errors");
    sl_jw_arr(&resp->jw);
    for (size_t i = 0; i < diag->n; i++)
        sl_jw_str(&resp->jw, diag->lines[i]);
    sl_jw_end(&resp->jw);
    sl_jw_end(&resp->jw);
    sl_diag_free(diag);
}

void sl__admin_post_reload(sl_admin_req_t *req, sl_admin_resp_t *resp)
{
    if (!no_fields(req, resp))
        return;
    sl_diag_t diag = {0};
    int rc = sl_control_reload(req->gw, &diag);
    if (rc != 0) {
        /* The old config keeps running; say every reason. */
        write_refusal(resp, rc == SL_ESTATE ? 409 : 400,
                      "reload refused; the running config is unchanged", &diag);
        return;
    }
    sl_diag_free(&diag);
    sl_runtime_t *rt = sl_gateway_runtime(req->gw);
    sl_jw_obj(&resp->jw);
    sl_jw_kstr(&resp->jw, "status", "reloaded");
    sl_jw_kuint(&resp->jw, "config_generation", rt->generation);
    sl_jw_end(&resp->jw);
    sl_runtime_unref(rt);
}

/* ---- pools: backends set live, one backend drained ---- */

static long backend_index(sl_ctl_t *ctl, size_t pool, const char *addr)
{
    const sl_pool_rt_t *p = &ctl->rt->pools[pool];
    for (size_t i = 0; i < p->n_backends; i++)
        if (strcmp(p->backends[i].cfg->address.text, addr) == 0)
            return (long)i;
    return -1;
}

/*
 * Every name of a new backend list resolves, or the list is refused naming
 * the entry ("pools.blue.backends[1]: cannot resolve ..."). The reload that
 * applies the list resolves them again, but its errors point into the YAML
 * file, where a list set through the API has no position. An address that
 * does not parse is left to the reload's checks, which say what is wrong.
 */
static bool backends_resolve(sl_admin_resp_t *resp, const char *pool,
                             const sl_cfg_backend_spec_t *specs, size_t n)
{
    sl_diag_t diag = {0};
    for (size_t i = 0; i < n; i++) {
        char *host = NULL, why[256], line[512];
        uint16_t port = 0;
        struct sockaddr_storage ss;
        socklen_t len;
        if (sl_parse_hostport(specs[i].address, &host, &port) == 0 && port != 0 &&
            sl_resolve(host, port, &ss, &len, why, sizeof why) != 0) {
            snprintf(line, sizeof line, "pools.%s.backends[%zu]: %s", pool, i, why);
            sl_diag_add(&diag, line);
        }
        free(host);
    }
    if (diag.n == 0)
        return true;
    write_refusal(resp, 400, "backends refused; nothing changed", &diag);
    return false;
}

void sl__admin_put_backends(sl_admin_req_t *req, sl_admin_resp_t *resp)
{
    sl_ctl_t *ctl = req->gw->ctl;
    if (ctl == NULL) {
        sl_admin_error(resp, 503, "shutting down");
        return;
    }
    const char *pool = req->params[0];
    if (sl_config_pool_index(ctl->rt->cfg, pool) < 0) {
        sl_admin_error(resp, 404, "no pool \"%s\"", pool);
        return;
    }
    const sl_json_t *j = req->json;
    const sl_json_t *list = j && j->type == SL_JSON_OBJECT ? sl_json_get(j, "backends") : NULL;
    static const char *const keys[] = {"backends", NULL};
    if (list == NULL || list->type != SL_JSON_ARRAY) {
        sl_admin_error(resp, 400, "expected {\"backends\": [{\"address\": \"host:port\", "
                                  "\"weight\": 1}, ...]}");
        return;
    }
    if (!only_keys(resp, j, keys))
        return;
    sl_cfg_backend_spec_t specs[256];
    size_t n = 0;
    for (const sl_json_t *b = list->child; b; b = b->next) {
        static const char *const bkeys[] = {"address", "weight", NULL};
        if (n == SL_ARRAY_SIZE(specs)) {
            sl_admin_error(resp, 400, "at most 256 backends per pool");
            return;
        }
        const sl_json_t *a = sl_json_get(b, "address");
        uint64_t w = 1;
        if (b->type != SL_JSON_OBJECT || a == NULL || a->type != SL_JSON_STRING ||
            get_uint(b, "weight", 1000, &w) < 0) {
            sl_admin_error(resp, 400, "backends[%zu]: expected {\"address\": \"host:port\", "
                                      "\"weight\": 0..1000}", n);
            return;
        }
        if (!only_keys(resp, b, bkeys))
            return;
        specs[n].address = a->str;
        specs[n].weight = (uint32_t)w;
        n++;
    }
    if (!backends_resolve(resp, pool, specs, n))
        return;
    /* Applied over the YAML by a reload: the same path, the same checks, and
       connections to backends that stay are not touched. */
    void *old = sl_state_swap_backends(pool, specs, n);
    sl_diag_t diag = {0};
    if (sl_control_reload(req->gw, &diag) != 0) {
        sl_state_restore_backends(pool, old);
        write_refusal(resp, 400, "backends refused; nothing changed", &diag);
        return;
    }
    sl_diag_free(&diag);
    sl_state_forget_backends(old);
    if (!saved(resp, req->gw->ctl))
        return;
    sl_runtime_t *rt = sl_gateway_runtime(req->gw);
    long p = sl_config_pool_index(rt->cfg, pool);
    sl_jw_obj(&resp->jw);
    sl_jw_kstr(&resp->jw, "pool", pool);
    sl_jw_key(&resp->jw, "backends");
    sl_jw_arr(&resp->jw);
    for (size_t i = 0; p >= 0 && i < rt->pools[p].n_backends; i++) {
        sl_jw_obj(&resp->jw);
        sl_jw_kstr(&resp->jw, "address", rt->pools[p].backends[i].cfg->address.text);
        sl_jw_kuint(&resp->jw, "weight", rt->pools[p].backends[i].cfg->weight);
        sl_jw_end(&resp->jw);
    }
    sl_jw_end(&resp->jw);
    sl_jw_kuint(&resp->jw, "config_generation", rt->generation);
    sl_jw_end(&resp->jw);
    sl_runtime_unref(rt);
}

void sl__admin_post_backend_drain(sl_admin_req_t *req, sl_admin_resp_t *resp)
{
    sl_ctl_t *ctl = req->gw->ctl;
    if (ctl == NULL) {
        sl_admin_error(resp, 503, "shutting down");
        return;
    }
    long pool = sl_config_pool_index(ctl->rt->cfg, req->params[0]);
    if (pool < 0) {
        sl_admin_error(resp, 404, "no pool \"%s\"", req->params[0]);
        return;
    }
    long b = backend_index(ctl, (size_t)pool, req->params[1]);
    if (b < 0) {
        sl_admin_error(resp, 404, "pool %s has no backend \"%s\"", req->params[0], req->params[1]);
        return;
    }
    bool drain = true;
    const sl_json_t *d = req->json ? sl_json_get(req->json, "drain") : NULL;
    static const char *const keys[] = {"drain", NULL};
    if (req->json && !only_keys(resp, req->json, keys))
        return;
    if (d) {
        if (d->type != SL_JSON_TRUE && d->type != SL_JSON_FALSE) {
            sl_admin_error(resp, 400, "drain: expected true or false");
            return;
        }
        drain = d->type == SL_JSON_TRUE;
    }
    if (sl_ctl_backend_drain(ctl, (size_t)pool, (size_t)b, drain) != 0) {
        sl_admin_error(resp, 409, "too many backend drains at once");
        return;
    }
    const sl_backend_rt_t *br = &ctl->rt->pools[pool].backends[b];
    resp->status = drain ? 202 : 200;
    sl_jw_obj(&resp->jw);
    sl_jw_kstr(&resp->jw, "pool", req->params[0]);
    sl_jw_kstr(&resp->jw, "backend", br->name);
    sl_jw_kbool(&resp->jw, "draining", drain);
    sl_jw_kuint(&resp->jw, "active", atomic_load(&br->state->active));
    sl_jw_end(&resp->jw);
}
