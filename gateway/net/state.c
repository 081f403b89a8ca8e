/*
 * state.c: what the API changed, kept across restarts.
 *
 * A finished cutover makes the new pool active, and PUT .../admission sets
 * limits; both are decisions an operator made at run time, and a restart
 * (or a crash) must not quietly undo them — the YAML still names the old
 * pool. So they are written to admin.state_file (a temporary file renamed
 * over the old one: a crash leaves the old state or the new, never half) and
 * applied over the YAML at start. The status resource shows which values
 * come from the state file rather than the YAML.
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

static void write_pools(sl_jw_t *w, sl_ctl_t *ctl);

/*
 * Service entries of the file read at start that this run could not apply
 * (a service the config no longer has, a pool no longer its own, limits
 * for a queue that is off), and pools' admission limits likewise (a pool
 * the config no longer has, or one with no queue of its own now). They are
 * written back as they were until the API sets that service's or pool's
 * state anew: a service taken out of the YAML for a while must find its
 * finished cutover again when it returns, as a pool's backends do.
 * Control thread only; freed at exit.
 */
static sl_json_doc_t kept_doc;
static const sl_json_t *kept_services;
static const sl_json_t *kept_pools;   /* the file's "pools"; only "admission" is read */

/* The kept admission limits of a pool the API has not set since the start. */
static const sl_json_t *kept_admission(sl_ctl_t *ctl, const char *pool)
{
    const sl_json_t *m = kept_pools ? sl_json_get(kept_pools, pool) : NULL;
    const sl_json_t *a = m ? sl_json_get(m, "admission") : NULL;
    if (a == NULL || a->type != SL_JSON_OBJECT)
        return NULL;
    long p = sl_config_pool_index(ctl->rt->cfg, pool);
    return p >= 0 && ctl->pools[p].admission_overridden ? NULL : a;
}

static void write_kept_services(sl_jw_t *w, sl_ctl_t *ctl)
{
    const sl_config_t *cfg = ctl->rt->cfg;
    for (const sl_json_t *m = kept_services ? kept_services->child : NULL; m; m = m->next) {
        const sl_cfg_service_t *s = sl_config_service(cfg, m->key);
        if (s != NULL) {
            const sl_ctl_service_t *cs = &ctl->services[s - cfg->services];
            if (cs->active_overridden || cs->admission_overridden)
                continue;   /* written from the live state: the API's newer word */
        }
        sl_jw_key(w, m->key);
        sl_jw_value(w, m);
    }
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

static void write_params(sl_jw_t *w, const sl_admission_params_t *p)
{
    sl_jw_obj(w);
    sl_state_write_limits(w, p);
    sl_jw_end(w);
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
 * change that it will not survive a restart.
 */
int sl_state_save(sl_ctl_t *ctl)
{
    const sl_config_t *cfg = ctl->rt->cfg;
    const char *path = cfg->admin.state_file;
    if (path == NULL)
        return 0;
    sl_buf_t buf = {0};
    sl_jw_t w;
    sl_jw_init(&w, &buf, true);
    sl_jw_obj(&w);
    sl_jw_kuint(&w, "version", 1);
    sl_jw_key(&w, "services");
    sl_jw_obj(&w);
    for (size_t i = 0; i < cfg->n_services; i++) {
        sl_ctl_service_t *cs = &ctl->services[i];
        if (!cs->active_overridden && !cs->admission_overridden)
            continue;
        sl_jw_key(&w, cfg->services[i].name);
        sl_jw_obj(&w);
        if (cs->active_overridden)
            sl_jw_kstr(&w, "active", cfg->pools[cs->active].name);
        sl_admission_params_t p;
        sl_admission_stats_t st;
        if (cs->admission_overridden && sl_ctl_admission_get(ctl, i, -1, &p, &st) == 0) {
            sl_jw_key(&w, "admission");
            write_params(&w, &p);
        }
        sl_jw_end(&w);
    }
    write_kept_services(&w, ctl);
    sl_jw_end(&w);
    write_pools(&w, ctl);
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

/* The file's limits over a live queue's (the schema's bounds apply, as to the API's). */
static bool apply_limits(sl_ctl_t *ctl, size_t svc, long pool, const sl_json_t *a,
                         const char *path, const char *what)
{
    sl_admission_params_t p;
    sl_admission_stats_t st;
    char err[200];
    if (sl_ctl_admission_get(ctl, svc, pool, &p, &st) != 0) {
        sl_log_warn("state file %s: %s: no admission queue now; its limits are not applied",
                    path, what);
        return false;
    }
    if (!read_limits(a, &p, err, sizeof err) ||
        sl_ctl_admission_set(ctl, svc, pool, &p, err, sizeof err) != 0) {
        sl_log_warn("state file %s: %s: admission not applied: %s", path, what, err);
        return false;
    }
    sl_log_info("state file: %s: admission limits set through the API", what);
    return true;
}

static void apply_service(sl_ctl_t *ctl, size_t i, const sl_json_t *o, const char *path)
{
    const sl_config_t *cfg = ctl->rt->cfg;
    const sl_cfg_service_t *s = &cfg->services[i];
    const sl_json_t *active = sl_json_get(o, "active");
    if (active && active->type == SL_JSON_STRING) {
        long p = -1;
        for (size_t k = 0; k < s->n_pools; k++)
            if (strcmp(cfg->pools[s->pools[k]].name, active->str) == 0)
                p = (long)s->pools[k];
        if (p < 0) {
            sl_log_warn("state file %s: service %s: pool \"%s\" is not one of its pools now; "
                        "keeping the config's", path, s->name, active->str);
        } else {
            ctl->services[i].active = (size_t)p;
            ctl->services[i].active_overridden = true;
            sl_log_info("state file: service %s: active pool %s (set through the API)", s->name,
                        active->str);
        }
    }
    const sl_json_t *a = sl_json_get(o, "admission");
    char what[200];
    snprintf(what, sizeof what, "service %s", s->name);
    if (a && a->type == SL_JSON_OBJECT && apply_limits(ctl, i, -1, a, path, what))
        ctl->services[i].admission_overridden = true;
}

static void apply_pool(sl_ctl_t *ctl, size_t p, const sl_json_t *o, const char *path)
{
    const sl_json_t *a = sl_json_get(o, "admission");
    if (a == NULL || a->type != SL_JSON_OBJECT)
        return;
    char what[200];
    snprintf(what, sizeof what, "pool %s", ctl->rt->cfg->pools[p].name);
    long svc = sl_ctl_pool_service(ctl, p);
    sl_admission_params_t cur;
    sl_admission_stats_t st;
    if (svc < 0 || sl_ctl_admission_get(ctl, (size_t)svc, (long)p, &cur, &st) != 0) {
        sl_log_warn("state file %s: %s: no admission queue of its own now; its limits are "
                    "not applied (kept in the file)", path, what);
        return;
    }
    if (apply_limits(ctl, (size_t)svc, (long)p, a, path, what))
        ctl->pools[p].admission_overridden = true;
}

#define STATE_MAX (1 << 20)

/*
 * Read and check the state file: a JSON object with "version": 1. Returns
 * 0 with *doc filled, 1 when there is no file, or -1 with the reason in why
 * (a file cut short, not JSON, bigger than we read, or another version's:
 * applying part of it, or reading a newer format as ours, would be wrong).
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
    const sl_json_t *v = NULL;
    int rc = -1;
    if (text == NULL)
        snprintf(why, whylen, "out of memory");
    else if (failed)
        snprintf(why, whylen, "cannot read: %s", strerror(EIO));
    else if (n > STATE_MAX)
        snprintf(why, whylen, "larger than %d bytes (expected a file sluice wrote)", STATE_MAX);
    else if (sl_json_parse(doc, text, n, NULL, &err) != 0)
        snprintf(why, whylen, "not valid JSON at byte %zu (%s)", err.offset,
                 err.msg ? err.msg : "no memory");
    else if (doc->root == NULL || doc->root->type != SL_JSON_OBJECT)
        snprintf(why, whylen, "expected a JSON object at the top");
    else if ((v = sl_json_get(doc->root, "version")) == NULL || v->type != SL_JSON_NUMBER ||
             v->num != 1)
        snprintf(why, whylen, "expected \"version\": 1 (this sluice reads version 1 only)");
    else
        rc = 0;
    if (rc != 0)
        sl_json_doc_free(doc);   /* safe on a document never filled */
    free(text);
    return rc;
}

void sl_state_apply(sl_ctl_t *ctl)
{
    const char *path = ctl->rt->cfg->admin.state_file;
    if (path == NULL)
        return;
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
    const sl_json_t *svcs = sl_json_get(doc.root, "services");
    bool keep = false;
    for (const sl_json_t *m = svcs ? svcs->child : NULL; m; m = m->next) {
        const sl_cfg_service_t *s = sl_config_service(ctl->rt->cfg, m->key);
        if (s == NULL) {
            sl_log_warn("state file %s: no service \"%s\" in the config now; its entry is "
                        "kept", path, m->key);
            keep = true;
            continue;
        }
        size_t i = (size_t)(s - ctl->rt->cfg->services);
        if (m->type == SL_JSON_OBJECT)
            apply_service(ctl, i, m, path);
        keep = keep || (!ctl->services[i].active_overridden &&
                        !ctl->services[i].admission_overridden);
    }
    /* Pools: their backends were applied to the config before it was built. */
    const sl_json_t *pools = sl_json_get(doc.root, "pools");
    bool keep_pools = false;
    for (const sl_json_t *m = pools ? pools->child : NULL; m; m = m->next) {
        long p = sl_config_pool_index(ctl->rt->cfg, m->key);
        bool limits = sl_json_get(m, "admission") != NULL;
        if (p >= 0)
            apply_pool(ctl, (size_t)p, m, path);
        else if (limits)
            sl_log_warn("state file %s: no pool \"%s\" in the config now; its admission "
                        "limits are kept", path, m->key);
        keep_pools = keep_pools || (limits && (p < 0 || !ctl->pools[p].admission_overridden));
    }
    keep = keep && svcs != NULL && svcs->type == SL_JSON_OBJECT;
    keep_pools = keep_pools && pools->type == SL_JSON_OBJECT;
    if (keep || keep_pools) {
        sl_json_doc_free(&kept_doc);
        kept_doc = doc;
        kept_services = keep ? svcs : NULL;
        kept_pools = keep_pools ? pools : NULL;
    } else {
        sl_json_doc_free(&doc);
    }
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
    kept_services = kept_pools = NULL;
    sl_json_doc_free(&kept_doc);
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

/* One pool's entry: its backends set through the API, and its admission
   limits, live (adm) or kept from the file read at start. */
static void write_pool(sl_jw_t *w, const char *name, const override_t *o,
                       const sl_admission_params_t *adm, const sl_json_t *kept)
{
    if (o == NULL && adm == NULL && kept == NULL)
        return;
    sl_jw_key(w, name);
    sl_jw_obj(w);
    if (o)
        write_backends(w, o);
    if (adm || kept)
        sl_jw_key(w, "admission");
    if (adm)
        write_params(w, adm);
    else if (kept)
        sl_jw_value(w, kept);
    sl_jw_end(w);
}

/* The pools section of the state file: backends and a pool's own limits set through the API. */
static void write_pools(sl_jw_t *w, sl_ctl_t *ctl)
{
    const sl_config_t *cfg = ctl->rt->cfg;
    bool any = overrides != NULL || kept_pools != NULL;
    for (size_t p = 0; p < cfg->n_pools && !any; p++)
        any = ctl->pools[p].admission_overridden;
    if (!any)
        return;
    sl_jw_key(w, "pools");
    sl_jw_obj(w);
    /* A pool the config no longer has keeps what it had, as it was. */
    for (override_t *o = overrides; o; o = o->next)
        if (sl_config_pool_index(cfg, o->pool) < 0)
            write_pool(w, o->pool, o, NULL, kept_admission(ctl, o->pool));
    for (const sl_json_t *m = kept_pools ? kept_pools->child : NULL; m; m = m->next)
        if (sl_config_pool_index(cfg, m->key) < 0 && override_of(m->key) == NULL)
            write_pool(w, m->key, NULL, NULL, kept_admission(ctl, m->key));
    for (size_t p = 0; p < cfg->n_pools; p++) {
        const char *name = cfg->pools[p].name;
        sl_admission_params_t lim;
        sl_admission_stats_t st;
        long svc = sl_ctl_pool_service(ctl, p);
        bool adm = ctl->pools[p].admission_overridden && svc >= 0 &&
                   sl_ctl_admission_get(ctl, (size_t)svc, (long)p, &lim, &st) == 0;
        write_pool(w, name, override_of(name), adm ? &lim : NULL, kept_admission(ctl, name));
    }
    sl_jw_end(w);
}

bool sl_state_pool_overridden(const char *pool)
{
    return override_of(pool) != NULL;
}
