/*
 * state.c: what the API changed, kept across restarts and reloads.
 *
 * A finished cutover makes the new pool active, and PUT .../admission sets
 * limits; both are decisions an operator made at run time, and a restart
 * (or a crash) must not quietly undo them — the YAML still names the old
 * pool. So they are written to admin.state_file (a temporary file renamed
 * over the old one: a crash leaves the old state or the new, never half) and
 * applied over the YAML at start. The status resource shows which values
 * come from the state file rather than the YAML.
 *
 * A reload may take away what a value applies to (a service, a pool, an
 * admission queue) and a later one bring it back: the value is kept, not in
 * force, meanwhile, and is in force again when its queue is back (see "the
 * API's word" below).
 *
 * A file that cannot be read as version 1 (cut short, not JSON, another
 * version's) is ignored at start and renamed to <state_file>.bad, so the next
 * change through the API does not write over what an operator may want back.
 *
 * Format (JSON, version 1):
 *   {"version": 1, "services": {"app": {"active": "green",
 *     "admission": {"rate": 300, "burst": 50, "queue_length": 50000, ...}}},
 *    "pools": {"green": {"backends": [{"address": "10.0.0.5:9000", "weight": 1}],
 *     "admission": {"rate": 200, ...}}}}
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice/json.h"
#include "sluice/log.h"
#include "../admin/json_out.h"
#include "ctl.h"

static void write_pools(sl_jw_t *w);

/* ---- the API's word ---- */

/*
 * Every value the API set that stands over the YAML, by service or pool
 * name, whether it is in force now or not: a service's active pool (a
 * finished cutover) and admission limits, a pool's own admission limits.
 * The policy state (sl_ctl_t) is rebuilt at every reload and holds only what
 * its config can take; this list outlives it. A value whose service, pool or
 * queue is gone is kept here (and in the file), and applied again when a
 * reload or a start brings its queue back; only the API's next word for it
 * replaces it. (Kept in the policy state alone, a reload that took a queue
 * away lost its limits, and the next save dropped them from the file.)
 *
 * Filled from the file at start, brought up to date with the live state at
 * every save (every change through the API saves), applied over each new
 * policy state (at start, and at every reload for what the reload did not
 * carry over), and written to the file as it is. Control thread only; freed
 * at exit.
 */
typedef struct word {
    struct word *next;
    bool pool;                   /* a pool's word, else a service's */
    char *name;
    char *active;                /* services: the pool a finished cutover made active */
    sl_json_doc_t limits;        /* admission limits as the file has them (root NULL: none) */
    bool active_in_force, limits_in_force;   /* as last seen: reloads log the changes */
} word_t;

static word_t *words;

static word_t *word_find(bool pool, const char *name)
{
    for (word_t *e = words; e; e = e->next)
        if (e->pool == pool && strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

/* The word for name, added at the end (the file keeps its order); NULL: no memory. */
static word_t *word_get(bool pool, const char *name)
{
    word_t **end = &words;
    for (; *end; end = &(*end)->next)
        if ((*end)->pool == pool && strcmp((*end)->name, name) == 0)
            return *end;
    word_t *e = calloc(1, sizeof *e);
    if (e == NULL || (e->name = strdup(name)) == NULL) {
        free(e);
        sl_log_error("state: out of memory: %s %s: what the API set is not kept",
                     pool ? "pool" : "service", name);
        return NULL;
    }
    e->pool = pool;
    *end = e;
    return e;
}

static void word_free(word_t *e)
{
    free(e->name);
    free(e->active);
    sl_json_doc_free(&e->limits);
    free(e);
}

/* Words left with nothing in them go. */
static void words_tidy(void)
{
    for (word_t **p = &words; *p;) {
        word_t *e = *p;
        if (e->active == NULL && e->limits.root == NULL) {
            *p = e->next;
            word_free(e);
        } else {
            p = &e->next;
        }
    }
}

static void word_set_active(word_t *e, const char *pool)
{
    if (e->active && pool && strcmp(e->active, pool) == 0)
        return;
    char *copy = pool ? strdup(pool) : NULL;
    if (pool && copy == NULL) {
        sl_log_error("state: out of memory: service %s: its active pool is not kept", e->name);
        return;
    }
    free(e->active);
    e->active = copy;
}

/* The limits become what w wrote into b (b is freed); false when out of memory. */
static bool word_take_limits(word_t *e, sl_buf_t *b)
{
    sl_json_doc_t d = {0};
    bool ok = !b->oom && sl_json_parse(&d, b->data, b->len, NULL, NULL) == 0;
    sl_buf_free(b);
    if (!ok) {
        sl_log_error("state: out of memory: %s %s: its admission limits are not kept",
                     e->pool ? "pool" : "service", e->name);
        return false;
    }
    sl_json_doc_free(&e->limits);
    e->limits = d;
    return true;
}

/* A copy of the file's value (as it is: it may hold only some limits). */
static void word_copy_limits(word_t *e, const sl_json_t *v)
{
    sl_buf_t b = {0};
    sl_jw_t w;
    sl_jw_init(&w, &b, false);
    sl_jw_value(&w, v);
    word_take_limits(e, &b);
}

/* The limits as object members: the state file and the admin API write the same names. */
void sl_state_write_limits(sl_jw_t *w, const sl_admission_params_t *p)
{
    sl_jw_knum(w, "rate", p->bucket.rate);
    sl_jw_kuint(w, "burst", p->bucket.burst);
    sl_jw_kuint(w, "queue_length", p->queue_length);
    sl_jw_kuint(w, "max_wait_ms", p->max_wait);
    sl_jw_kuint(w, "per_client", p->per_client);
    sl_jw_knum(w, "per_client_rate", p->per_client_rate);
    sl_jw_kuint(w, "retry_after_min_ms", p->retry_after_min);
    sl_jw_kuint(w, "retry_after_max_ms", p->retry_after_max);
    sl_jw_kuint(w, "slow_start_ms", p->bucket.slow_start);
}

static void word_set_params(word_t *e, const sl_admission_params_t *p)
{
    sl_buf_t b = {0};
    sl_jw_t w;
    sl_jw_init(&w, &b, false);
    sl_jw_obj(&w);
    sl_state_write_limits(&w, p);
    sl_jw_end(&w);
    word_take_limits(e, &b);
}

/*
 * The live state into the words: what the API set is in force there, and
 * newer than anything kept. A finished cutover's pool that could not be
 * applied (not one of the service's pools now) goes once the service has
 * anything else from the API in force: the API spoke for the service since,
 * and that entry is the service's state now, as at start.
 */
static void take_live_state(sl_ctl_t *ctl)
{
    const sl_config_t *cfg = ctl->rt->cfg;
    for (word_t *e = words; e; e = e->next)
        e->active_in_force = e->limits_in_force = false;
    for (size_t i = 0; i < cfg->n_services; i++) {
        const sl_ctl_service_t *cs = &ctl->services[i];
        sl_admission_params_t p;
        sl_admission_stats_t st;
        bool limits = cs->admission_overridden && sl_ctl_admission_get(ctl, i, -1, &p, &st) == 0;
        word_t *e = cs->active_overridden || limits ? word_get(false, cfg->services[i].name)
                                                    : NULL;
        if (e == NULL)
            continue;
        word_set_active(e, cs->active_overridden ? cfg->pools[cs->active].name : NULL);
        e->active_in_force = cs->active_overridden;
        if (limits)
            word_set_params(e, &p);
        e->limits_in_force = limits;
    }
    for (size_t p = 0; p < cfg->n_pools; p++) {
        long svc = sl_ctl_pool_service(ctl, p);
        sl_admission_params_t lim;
        sl_admission_stats_t st;
        word_t *e;
        if (ctl->pools[p].admission_overridden && svc >= 0 &&
            sl_ctl_admission_get(ctl, (size_t)svc, (long)p, &lim, &st) == 0 &&
            (e = word_get(true, cfg->pools[p].name)) != NULL) {
            word_set_params(e, &lim);
            e->limits_in_force = true;
        }
    }
    words_tidy();
}

/* -errno of the call that just failed; never 0, which would read as saved. */
static int failure(void)
{
    return errno ? -errno : -EIO;
}

/*
 * The rename is durable only once the directory is on disk too: without
 * this a power loss could bring back the file before the save. Best effort:
 * the new state is in place whatever happens here, so a failure is logged,
 * not reported as a failed save.
 */
static void sync_directory_of(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
        sl_log_warn("state file %s: its directory %s is not synced: %s", path, dir,
                    strerror(errno));
    if (fd >= 0)
        close(fd);
}

/*
 * Write what the API changed to admin.state_file. Returns 0 (also when no
 * state file is configured) or -errno; callers tell whoever asked for the
 * change that it will not survive a restart. Every change through the API
 * comes here, so the words learn it here too, with or without a file: a
 * reload keeps it either way.
 */
int sl_state_save(sl_ctl_t *ctl)
{
    take_live_state(ctl);
    const char *path = ctl->rt->cfg->admin.state_file;
    if (path == NULL)
        return 0;
    sl_buf_t buf = {0};
    sl_jw_t w;
    sl_jw_init(&w, &buf, true);
    sl_jw_obj(&w);
    sl_jw_kuint(&w, "version", 1);
    sl_jw_key(&w, "services");
    sl_jw_obj(&w);
    for (const word_t *e = words; e; e = e->next) {
        if (e->pool)
            continue;
        sl_jw_key(&w, e->name);
        sl_jw_obj(&w);
        if (e->active)
            sl_jw_kstr(&w, "active", e->active);
        if (e->limits.root) {
            sl_jw_key(&w, "admission");
            sl_jw_value(&w, e->limits.root);
        }
        sl_jw_end(&w);
    }
    sl_jw_end(&w);
    write_pools(&w);
    sl_jw_end(&w);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    errno = buf.oom ? ENOMEM : 0;
    FILE *f = buf.oom ? NULL : fopen(tmp, "w");
    int rc = 0;
    if (f == NULL || fwrite(buf.data, 1, buf.len, f) != buf.len || fputc('\n', f) == EOF ||
        fflush(f) != 0 || fsync(fileno(f)) != 0)
        rc = failure();
    if (f && fclose(f) != 0 && rc == 0)
        rc = failure();
    if (rc == 0 && rename(tmp, path) != 0)
        rc = failure();
    if (rc == 0)
        sync_directory_of(path);
    if (rc != 0)
        sl_log_error("state file %s: cannot write: %s", path, strerror(-rc));
    sl_buf_free(&buf);
    return rc;
}

/*
 * A limit from the file: absent keeps *out; present, it must be a number in
 * [0, max] (and whole when asked), or the whole admission entry is refused.
 * The file is ours, but it may have been edited by hand: a negative or huge
 * value must not reach a cast. Returns false, with the reason, when refused.
 */
static bool read_limit(const sl_json_t *o, const char *k, double max, bool whole, double *out,
                       char *err, size_t errlen)
{
    const sl_json_t *v = sl_json_get(o, k);
    if (v == NULL)
        return true;
    if (v->type != SL_JSON_NUMBER || !(v->num >= 0 && v->num <= max) ||
        (whole && v->num != (double)(uint64_t)v->num)) {
        snprintf(err, errlen, "%s: expected a %s from 0 to %.0f", k,
                 whole ? "whole number" : "number", max);
        return false;
    }
    *out = v->num;
    return true;
}

/* The limits in an "admission" object over *p. */
static bool read_limits(const sl_json_t *a, sl_admission_params_t *p, char *err, size_t errlen)
{
    double rate = p->bucket.rate, burst = p->bucket.burst, qlen = p->queue_length;
    double wait = (double)p->max_wait, per = p->per_client, per_rate = p->per_client_rate;
    double ra_min = (double)p->retry_after_min, ra_max = (double)p->retry_after_max;
    double slow = (double)p->bucket.slow_start;
    const double u32 = 4294967295.0, ms = 1e12;
    if (!read_limit(a, "rate", 1e9, false, &rate, err, errlen) ||
        !read_limit(a, "burst", u32, true, &burst, err, errlen) ||
        !read_limit(a, "queue_length", u32, true, &qlen, err, errlen) ||
        !read_limit(a, "max_wait_ms", ms, true, &wait, err, errlen) ||
        !read_limit(a, "per_client", u32, true, &per, err, errlen) ||
        !read_limit(a, "per_client_rate", 1e9, false, &per_rate, err, errlen) ||
        !read_limit(a, "retry_after_min_ms", ms, true, &ra_min, err, errlen) ||
        !read_limit(a, "retry_after_max_ms", ms, true, &ra_max, err, errlen) ||
        !read_limit(a, "slow_start_ms", ms, true, &slow, err, errlen))
        return false;
    p->bucket.rate = rate;
    p->bucket.burst = (uint32_t)burst;
    p->queue_length = (uint32_t)qlen;
    p->max_wait = (sl_msec_t)wait;
    p->per_client = (uint32_t)per;
    p->per_client_rate = per_rate;
    p->retry_after_min = (sl_msec_t)ra_min;
    p->retry_after_max = (sl_msec_t)ra_max;
    p->bucket.slow_start = (sl_msec_t)slow;
    return true;
}

/*
 * How applying the words speaks: at start, of the file (as it always has);
 * at a reload, of what changed since the last config (a value that goes out
 * of force or comes back), once, not at every reload.
 */
typedef struct applying {
    bool at_start;
    const char *path;
} applying_t;

/* Kept limits over a live queue's (the schema's bounds apply, as to the API's). */
static void apply_limits(sl_ctl_t *ctl, long svc, long pool, word_t *e, bool *overridden,
                         const char *what, const applying_t *how)
{
    sl_admission_params_t p;
    sl_admission_stats_t st;
    char err[200];
    bool was = e->limits_in_force;
    e->limits_in_force = false;
    if (svc < 0 || sl_ctl_admission_get(ctl, (size_t)svc, pool, &p, &st) != 0) {
        if (how->at_start)
            sl_log_warn("state file %s: %s: no admission queue%s now; its limits are not "
                        "applied (kept in the file)", how->path, what,
                        pool < 0 ? "" : " of its own");
        else if (was && pool < 0)
            sl_log_warn("reload: %s: admission is off now; the limits set through the API are "
                        "kept until it is on again", what);
        else if (was)
            sl_log_warn("reload: %s: no admission queue of its own now; the limits set through "
                        "the API are kept until it has one again", what);
        return;
    }
    if (!read_limits(e->limits.root, &p, err, sizeof err) ||
        sl_ctl_admission_set(ctl, (size_t)svc, pool, &p, err, sizeof err) != 0) {
        if (how->at_start)
            sl_log_warn("state file %s: %s: admission not applied: %s", how->path, what, err);
        else
            sl_log_warn("reload: %s: the admission limits set through the API are not "
                        "applied: %s (kept)", what, err);
        return;
    }
    *overridden = e->limits_in_force = true;
    if (how->at_start)
        sl_log_info("state file: %s: admission limits set through the API", what);
    else
        sl_log_info("reload: %s: the admission limits set through the API are in force again",
                    what);
}

static void apply_active(sl_ctl_t *ctl, size_t i, word_t *e, const applying_t *how)
{
    const sl_config_t *cfg = ctl->rt->cfg;
    const sl_cfg_service_t *s = &cfg->services[i];
    bool was = e->active_in_force;
    long p = -1;
    for (size_t k = 0; k < s->n_pools; k++)
        if (strcmp(cfg->pools[s->pools[k]].name, e->active) == 0)
            p = (long)s->pools[k];
    e->active_in_force = p >= 0;
    if (p < 0) {
        if (how->at_start || was)
            sl_log_warn("%s%s: service %s: pool \"%s\" is not one of its pools now; keeping the "
                        "config's", how->at_start ? "state file " : "reload",
                        how->at_start ? how->path : "", s->name, e->active);
        return;
    }
    ctl->services[i].active = (size_t)p;
    ctl->services[i].active_overridden = true;
    if (how->at_start || !was)
        sl_log_info("%s: service %s: active pool %s (set through the API)",
                    how->at_start ? "state file" : "reload", s->name, e->active);
}

/* A word for a service or pool the config does not have now: kept as it is. */
static void word_absent(word_t *e, const applying_t *how)
{
    bool was = e->active_in_force || e->limits_in_force;
    e->active_in_force = e->limits_in_force = false;
    if (how->at_start && !e->pool)
        sl_log_warn("state file %s: no service \"%s\" in the config now; its entry is kept",
                    how->path, e->name);
    else if (how->at_start && e->limits.root)
        sl_log_warn("state file %s: no pool \"%s\" in the config now; its admission limits "
                    "are kept", how->path, e->name);
    else if (was)
        sl_log_warn("reload: no %s \"%s\" in the config now; what the API set for it is kept "
                    "until it is back", e->pool ? "pool" : "service", e->name);
}

/*
 * The words over a new policy state, each value not in force there yet
 * (a reload has carried over the queues it could, with their limits).
 * Services first: a service's queue bounds reach its pools' own queues,
 * and then a pool's own limits stand over them, as they did when set.
 */
static void apply_words(sl_ctl_t *ctl, const applying_t *how)
{
    const sl_config_t *cfg = ctl->rt->cfg;
    char what[200];
    for (word_t *e = words; e; e = e->next) {
        if (e->pool)
            continue;
        const sl_cfg_service_t *s = sl_config_service(cfg, e->name);
        if (s == NULL) {
            word_absent(e, how);
            continue;
        }
        size_t i = (size_t)(s - cfg->services);
        sl_ctl_service_t *cs = &ctl->services[i];
        if (e->active && cs->active_overridden)
            e->active_in_force = true;
        else if (e->active)
            apply_active(ctl, i, e, how);
        snprintf(what, sizeof what, "service %s", s->name);
        if (e->limits.root && cs->admission_overridden)
            e->limits_in_force = true;
        else if (e->limits.root)
            apply_limits(ctl, (long)i, -1, e, &cs->admission_overridden, what, how);
    }
    for (word_t *e = words; e; e = e->next) {
        if (!e->pool)
            continue;
        long p = sl_config_pool_index(cfg, e->name);
        if (p < 0) {
            word_absent(e, how);
            continue;
        }
        sl_ctl_pool_t *cp = &ctl->pools[p];
        snprintf(what, sizeof what, "pool %s", e->name);
        if (cp->admission_overridden)
            e->limits_in_force = true;
        else
            apply_limits(ctl, sl_ctl_pool_service(ctl, (size_t)p), p, e,
                         &cp->admission_overridden, what, how);
    }
}

#define STATE_MAX (1 << 20)

/* key when root has it as anything but an object, else NULL. */
static const char *not_an_object(const sl_json_t *root, const char *key)
{
    const sl_json_t *v = sl_json_get(root, key);
    return v != NULL && v->type != SL_JSON_OBJECT ? key : NULL;
}

/*
 * Read and check the state file: a JSON object with "version": 1. Returns
 * 0 with *doc filled, 1 when there is no file, or -1 with the reason in why
 * (a file cut short, not JSON, bigger than we read, another version's, or
 * one whose "services" or "pools" is not an object: applying part of it, or
 * reading a newer format as ours, would be wrong).
 */
static int read_state(const char *path, sl_json_doc_t *doc, char *why, size_t whylen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT)
            return 1;
        snprintf(why, whylen, "cannot read: %s", strerror(errno));
        return -1;
    }
    char *text = malloc(STATE_MAX + 1);
    size_t n = text ? fread(text, 1, STATE_MAX + 1, f) : 0;
    bool failed = text != NULL && ferror(f);
    fclose(f);
    sl_json_error_t err = {0};
    /* As many values as a file under the cap can hold (the parser's default,
       sized for request bodies, refused what six pools of 256 backends make). */
    const sl_json_limits_t lim = {.max_nodes = STATE_MAX / 2 + 1, .no_nul = true};
    const sl_json_t *v = NULL;
    const char *part = NULL;
    int rc = -1;
    if (text == NULL)
        snprintf(why, whylen, "out of memory");
    else if (failed)
        snprintf(why, whylen, "cannot read: %s", strerror(EIO));
    else if (n > STATE_MAX)
        snprintf(why, whylen, "larger than %d bytes (expected a file sluice wrote)", STATE_MAX);
    else if (sl_json_parse(doc, text, n, &lim, &err) != 0)
        snprintf(why, whylen, "not valid JSON at byte %zu (%s)", err.offset,
                 err.msg ? err.msg : "no memory");
    else if (doc->root == NULL || doc->root->type != SL_JSON_OBJECT)
        snprintf(why, whylen, "expected a JSON object at the top");
    else if ((v = sl_json_get(doc->root, "version")) == NULL || v->type != SL_JSON_NUMBER ||
             v->num != 1)
        snprintf(why, whylen, "expected \"version\": 1 (this sluice reads version 1 only)");
    else if ((part = not_an_object(doc->root, "services")) != NULL ||
             (part = not_an_object(doc->root, "pools")) != NULL)
        snprintf(why, whylen, "expected \"%s\" to be an object of %s by name", part, part);
    else
        rc = 0;
    if (rc != 0)
        sl_json_doc_free(doc);   /* safe on a document never filled */
    free(text);
    return rc;
}

/* The file's services and pools' admission limits as words (backends: sl_state_read_overrides). */
static void read_words(const sl_json_t *root)
{
    const sl_json_t *svcs = sl_json_get(root, "services");
    for (const sl_json_t *m = svcs && svcs->type == SL_JSON_OBJECT ? svcs->child : NULL; m;
         m = m->next) {
        const sl_json_t *active = sl_json_get(m, "active");
        const sl_json_t *a = sl_json_get(m, "admission");
        bool has_active = active && active->type == SL_JSON_STRING;
        bool has_limits = a && a->type == SL_JSON_OBJECT;
        word_t *e = has_active || has_limits ? word_get(false, m->key) : NULL;
        if (e && has_active)
            word_set_active(e, active->str);
        if (e && has_limits)
            word_copy_limits(e, a);
    }
    const sl_json_t *pools = sl_json_get(root, "pools");
    for (const sl_json_t *m = pools && pools->type == SL_JSON_OBJECT ? pools->child : NULL; m;
         m = m->next) {
        const sl_json_t *a = sl_json_get(m, "admission");
        word_t *e = a && a->type == SL_JSON_OBJECT ? word_get(true, m->key) : NULL;
        if (e)
            word_copy_limits(e, a);
    }
    words_tidy();
}

/* The file, read once, at start: a bad one is set aside, never applied in part. */
static void read_file(const char *path)
{
    sl_json_doc_t doc = {0};
    char why[300];
    int rc = read_state(path, &doc, why, sizeof why);
    if (rc > 0)
        return;
    if (rc < 0) {
        /* The next change through the API rewrites the file: keep what was
           there aside, so an operator can still see (and mend) it. */
        char aside[4096];
        snprintf(aside, sizeof aside, "%s.bad", path);
        if (rename(path, aside) == 0)
            sl_log_error("state file %s: %s; ignoring it (kept as %s)", path, why, aside);
        else
            sl_log_error("state file %s: %s; ignoring it", path, why);
        return;
    }
    read_words(doc.root);
    sl_json_doc_free(&doc);
}

/*
 * At start: read the file and apply it. At each reload (sl_ctl_carry_over):
 * apply what the reload could not carry over from the last policy state (a
 * queue, a service or a pool that was not there), and say what went out of
 * force.
 */
void sl_state_apply(sl_ctl_t *ctl)
{
    static bool started;
    applying_t how = {.at_start = !started, .path = ctl->rt->cfg->admin.state_file};
    if (!started && how.path)
        read_file(how.path);
    started = true;
    apply_words(ctl, &how);
    sl_ctl_publish_all(ctl);
}

/* ---- backends set through the API ---- */

/*
 * PUT /api/v1/pools/{pool}/backends replaces a pool's backends. The new list
 * is kept here (control thread only), in the state file, and applied over
 * the YAML whenever a config is loaded — at start and at every reload — so
 * the change survives both.
 */
typedef struct override {
    struct override *next;
    char *pool;
    size_t n;
    char **addresses;
    uint32_t *weights;
} override_t;

static override_t *overrides;

static void override_free(override_t *o)
{
    for (size_t i = 0; i < o->n; i++)
        free(o->addresses[i]);
    free(o->addresses);
    free(o->weights);
    free(o->pool);
    free(o);
}

static override_t *override_new(const char *pool, const sl_cfg_backend_spec_t *b, size_t n)
{
    override_t *o = calloc(1, sizeof *o);
    if (o == NULL)
        return NULL;
    o->pool = strdup(pool);
    o->addresses = calloc(n ? n : 1, sizeof *o->addresses);
    o->weights = calloc(n ? n : 1, sizeof *o->weights);
    if (o->pool == NULL || o->addresses == NULL || o->weights == NULL) {
        override_free(o);
        return NULL;
    }
    for (; o->n < n; o->n++) {
        o->addresses[o->n] = strdup(b[o->n].address);
        o->weights[o->n] = b[o->n].weight;
        if (o->addresses[o->n] == NULL) {
            override_free(o);
            return NULL;
        }
    }
    return o;
}

/* Replace the pool's override; the previous one is returned (NULL: none), for undo. */
void *sl_state_swap_backends(const char *pool, const sl_cfg_backend_spec_t *b, size_t n)
{
    override_t *o = b ? override_new(pool, b, n) : NULL;
    override_t *old = NULL;
    for (override_t **p = &overrides; *p; p = &(*p)->next) {
        if (strcmp((*p)->pool, pool) == 0) {
            old = *p;
            *p = old->next;
            old->next = NULL;
            break;
        }
    }
    if (o) {
        o->next = overrides;
        overrides = o;
    }
    return old;
}

/* Put back what sl_state_swap_backends returned (after a refused change). */
void sl_state_restore_backends(const char *pool, void *old)
{
    override_t *cur = sl_state_swap_backends(pool, NULL, 0);
    if (cur)
        override_free(cur);
    if (old) {
        override_t *o = old;
        o->next = overrides;
        overrides = o;
    }
}

void sl_state_forget_backends(void *old)
{
    if (old)
        override_free(old);
}

int sl_state_apply_overrides(sl_config_t *cfg, sl_diag_t *diag)
{
    for (override_t *o = overrides; o; o = o->next) {
        long p = sl_config_pool_index(cfg, o->pool);
        if (p < 0) {
            sl_log_warn("state: backends set for pool %s, which the config no longer has", o->pool);
            continue;
        }
        sl_cfg_backend_spec_t specs[256];
        size_t n = SL_MIN(o->n, SL_ARRAY_SIZE(specs));
        for (size_t i = 0; i < n; i++) {
            specs[i].address = o->addresses[i];
            specs[i].weight = o->weights[i];
        }
        char err[256];
        if (sl_config_set_backends(cfg, (size_t)p, specs, n, err, sizeof err) != 0) {
            /* Name where the list comes from: the YAML has no such line to fix. */
            char line[4400];
            snprintf(line, sizeof line, "%s: pools.%s.backends: %s (set through the API)",
                     cfg->admin.state_file ? cfg->admin.state_file : "state", o->pool, err);
            sl_diag_add(diag, line);
            return SL_EINVAL;
        }
    }
    return 0;
}

void sl_state_read_overrides(const sl_config_t *cfg)
{
    const char *path = cfg->admin.state_file;
    if (path == NULL)
        return;
    sl_json_doc_t doc = {0};
    char why[300];
    if (read_state(path, &doc, why, sizeof why) != 0)
        return;   /* sl_state_apply reports a bad file */
    const sl_json_t *pools = sl_json_get(doc.root, "pools");
    for (const sl_json_t *m = pools ? pools->child : NULL; m; m = m->next) {
        const sl_json_t *list = sl_json_get(m, "backends");
        if (list == NULL || list->type != SL_JSON_ARRAY)
            continue;
        sl_cfg_backend_spec_t specs[256];
        size_t k = 0;
        char err[200] = "";
        for (const sl_json_t *b = list->child; b && k < SL_ARRAY_SIZE(specs); b = b->next) {
            const sl_json_t *a = sl_json_get(b, "address");
            double weight = 1;
            if (a == NULL || a->type != SL_JSON_STRING) {
                snprintf(err, sizeof err, "backends[%zu]: expected an address", k);
                break;
            }
            if (!read_limit(b, "weight", 1000, true, &weight, err, sizeof err))
                break;
            specs[k].address = a->str;
            specs[k].weight = (uint32_t)weight;
            k++;
        }
        if (err[0]) {
            sl_log_error("state file %s: pool %s: %s; its backends are not applied", path,
                         m->key, err);
            continue;
        }
        void *old = sl_state_swap_backends(m->key, specs, k);
        sl_state_forget_backends(old);
        sl_log_info("state file: pool %s: %zu backends (set through the API)", m->key, k);
    }
    sl_json_doc_free(&doc);
}

void sl_state_free_overrides(void)
{
    while (words) {
        word_t *e = words;
        words = e->next;
        word_free(e);
    }
    while (overrides) {
        override_t *o = overrides;
        overrides = o->next;
        override_free(o);
    }
}

static override_t *override_of(const char *pool)
{
    for (override_t *o = overrides; o; o = o->next)
        if (strcmp(o->pool, pool) == 0)
            return o;
    return NULL;
}

static void write_backends(sl_jw_t *w, const override_t *o)
{
    sl_jw_key(w, "backends");
    sl_jw_arr(w);
    for (size_t i = 0; i < o->n; i++) {
        sl_jw_obj(w);
        sl_jw_kstr(w, "address", o->addresses[i]);
        sl_jw_kuint(w, "weight", o->weights[i]);
        sl_jw_end(w);
    }
    sl_jw_end(w);
}

/* One pool's entry: its backends set through the API, and its own admission limits. */
static void write_pool(sl_jw_t *w, const char *name, const override_t *o, const word_t *e)
{
    sl_jw_key(w, name);
    sl_jw_obj(w);
    if (o)
        write_backends(w, o);
    if (e && e->limits.root) {
        sl_jw_key(w, "admission");
        sl_jw_value(w, e->limits.root);
    }
    sl_jw_end(w);
}

/* The pools section of the state file: what the API set for a pool, in force or not. */
static void write_pools(sl_jw_t *w)
{
    bool any = overrides != NULL;
    for (const word_t *e = words; e && !any; e = e->next)
        any = e->pool;
    if (!any)
        return;
    sl_jw_key(w, "pools");
    sl_jw_obj(w);
    for (const override_t *o = overrides; o; o = o->next)
        write_pool(w, o->pool, o, word_find(true, o->pool));
    for (const word_t *e = words; e; e = e->next)
        if (e->pool && override_of(e->name) == NULL)
            write_pool(w, e->name, NULL, e);
    sl_jw_end(w);
}

bool sl_state_pool_overridden(const char *pool)
{
    return override_of(pool) != NULL;
}
