/*
 * accesslog.c: see accesslog.h. Text lines are space-separated fields with
 * "-" for an empty one, in a fixed order an operator can cut(1); JSON lines
 * carry the same fields by name.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sluice/common.h"
#include "sluice/log.h"
#include "sluice/utf8.h"
#include "accesslog.h"
#include "files.h"

int sl_access_log_check(const sl_config_t *cfg, sl_diag_t *diag)
{
    const char *path = cfg->access_log.path;
    if (!cfg->access_log.enabled || path == NULL || path[0] == '\0')
        return 0;
    char why[700];
    if (sl_file_writable(path, true, why, sizeof why))
        return 0;
    sl_cfg_pos_t p = sl_config_where(cfg, &cfg->access_log.path, cfg->access_log.pos);
    char line[1024];
    snprintf(line, sizeof line, "%s:%u:%u: access_log.path: %s", cfg->file ? cfg->file : "config",
             p.line, p.col, why);
    sl_diag_add(diag, line);
    return SL_EINVAL;
}

static int log_fd = -1;
static int log_json;
static int log_owned;

int sl_access_log_open(const sl_config_t *cfg, char *err, size_t errlen)
{
    if (!cfg->access_log.enabled)
        return 0;
    log_json = cfg->access_log.format == SL_LOG_JSON;
    if (cfg->access_log.path == NULL) {
        log_fd = STDOUT_FILENO;
        return 0;
    }
    log_fd = open(cfg->access_log.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (log_fd < 0) {
        snprintf(err, errlen, "access_log %s: %s", cfg->access_log.path, strerror(errno));
        return -errno;
    }
    log_owned = 1;
    return 0;
}

void sl_access_log_close(void)
{
    if (log_owned && log_fd >= 0)
        close(log_fd);
    log_fd = -1;
    log_owned = 0;
}

int sl_access_log_on(void)
{
    return log_fd >= 0;
}

/*
 * A line is built in a fixed buffer, each string field cut to a budget of
 * its own (a cut one ends in "..."), so every field has its place however
 * long a request target or a name is. snprintf's return value is what it
 * would have written: added as it was, a long target carried the position
 * past the end, and the next field was written beyond the buffer.
 */
#define LINE_MAX_BYTES 4096
#define FIELD_BUDGET 256          /* a client, service, pool, backend or method */
#define TARGET_BUDGET 1536

typedef struct {
    char buf[LINE_MAX_BYTES];
    size_t at;
} line_t;

static const size_t line_cap = LINE_MAX_BYTES - 2;   /* room for "}" and "\n" */

static void addf(line_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void addf(line_t *l, const char *fmt, ...)
{
    if (l->at >= line_cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(l->buf + l->at, line_cap - l->at, fmt, ap);
    va_end(ap);
    if (k > 0)
        l->at += SL_MIN((size_t)k, line_cap - l->at - 1);
}

/* A valid UTF-8 character's length at s (n bytes left), or 0. */
static size_t utf8_char(const unsigned char *s, size_t n)
{
    for (size_t k = 1; k <= 4 && k <= n; k++) {
        uint32_t st = sl_utf8_feed(SL_UTF8_ACCEPT, s, k);
        if (st == SL_UTF8_ACCEPT)
            return k;
        if (st == SL_UTF8_REJECT)
            return 0;
    }
    return 0;
}

/*
 * s (n bytes) as a JSON string's body or a text field, at most `budget`
 * bytes. Control bytes, and in text the space, are escaped; bytes that are
 * not UTF-8 are written %XX (JSON text is UTF-8, RFC 8259 8.1: a log
 * shipper refused the line), as a target's own escapes are.
 */
static void put(line_t *l, const char *s, size_t n, int json, size_t budget)
{
    if (s == NULL || n == 0) {
        if (!json)
            addf(l, "-");
        return;
    }
    size_t end = SL_MIN(l->at + budget, line_cap) - 3;   /* room for "..." */
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n && l->at + 6 <= end) {
        unsigned char c = u[i];
        size_t k = c < 0x80 ? 1 : utf8_char(u + i, n - i);
        if (json && (c == '"' || c == '\\')) {
            l->buf[l->at++] = '\\';
            l->buf[l->at++] = (char)c;
        } else if (c < 0x20 || c == 0x7f || (!json && c == ' ')) {
            addf(l, json ? "\\u%04x" : "%%%02X", c);
        } else if (k == 0) {
            addf(l, "%%%02X", c);
        } else {
            if (l->at + k > end)
                break;
            memcpy(l->buf + l->at, u + i, k);
            l->at += k;
            i += k;
            continue;
        }
        i++;
    }
    if (i < n)
        addf(l, "...");
}

static void field(line_t *l, const char *name, const char *v, size_t n, size_t budget)
{
    if (log_json) {
        addf(l, "%s\"%s\":\"", l->at > 1 ? "," : "", name);
        put(l, v, n, 1, budget);
        addf(l, "\"");
    } else {
        if (l->at > 0)
            addf(l, " ");
        put(l, v, n, 0, budget);
    }
}

static void number(line_t *l, const char *name, uint64_t v)
{
    if (log_json)
        addf(l, ",\"%s\":%llu", name, (unsigned long long)v);
    else
        addf(l, " %llu", (unsigned long long)v);
}

static size_t len_of(const char *s)
{
    return s ? strlen(s) : 0;
}

void sl_access_log(const sl_access_entry_t *e)
{
    if (log_fd < 0)
        return;
    line_t l = {.at = 0};
    char when[40];
    sl_log_timestamp(when);
    if (log_json)
        l.buf[l.at++] = '{';
    field(&l, "time", when, strlen(when), FIELD_BUDGET);
    field(&l, "kind", e->kind, len_of(e->kind), FIELD_BUDGET);
    field(&l, "client", e->client, len_of(e->client), FIELD_BUDGET);
    field(&l, "service", e->service, len_of(e->service), FIELD_BUDGET);
    field(&l, "pool", e->pool, len_of(e->pool), FIELD_BUDGET);
    field(&l, "backend", e->backend, len_of(e->backend), FIELD_BUDGET);
    field(&l, "method", e->method, len_of(e->method), FIELD_BUDGET);
    field(&l, "target", e->target, e->target_len, TARGET_BUDGET);
    number(&l, "status", (uint64_t)e->status);
    number(&l, "close_code", (uint64_t)e->close_code);
    number(&l, "queue_ms", e->queue_ms);
    number(&l, "bytes_in", e->bytes_in);
    number(&l, "bytes_out", e->bytes_out);
    number(&l, "duration_ms", e->duration_ms);
    if (log_json)
        l.buf[l.at++] = '}';
    l.buf[l.at++] = '\n';
    ssize_t w = write(log_fd, l.buf, l.at);
    (void)w;
}
