/*
 * accesslog.c: see accesslog.h. Text lines are space-separated fields with
 * "-" for an empty one, in a fixed order an operator can cut(1); JSON lines
 * carry the same fields by name.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sluice/log.h"
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

/* Append s (n bytes) as a JSON string body or a text field. */
static size_t put(char *out, size_t at, size_t cap, const char *s, size_t n, int json)
{
    if (s == NULL || n == 0) {
        if (!json && at + 1 < cap)
            out[at++] = '-';
        return at;
    }
    for (size_t i = 0; i < n && at + 7 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (json && (c == '"' || c == '\\')) {
            out[at++] = '\\';
            out[at++] = (char)c;
        } else if (c < 0x20 || c == 0x7f || (!json && c == ' ')) {
            at += (size_t)snprintf(out + at, cap - at, json ? "\\u%04x" : "%%%02X", c);
        } else {
            out[at++] = (char)c;
        }
    }
    return at;
}

static size_t field(char *out, size_t at, size_t cap, const char *name, const char *v,
                    size_t n)
{
    if (log_json) {
        at += (size_t)snprintf(out + at, cap - at, "%s\"%s\":\"", at > 1 ? "," : "", name);
        at = put(out, at, cap, v, n, 1);
        if (at < cap)
            out[at++] = '"';
    } else {
        if (at > 0 && at < cap)
            out[at++] = ' ';
        at = put(out, at, cap, v, n, 0);
    }
    return at;
}

static size_t number(char *out, size_t at, size_t cap, const char *name, uint64_t v)
{
    if (log_json)
        return at + (size_t)snprintf(out + at, cap - at, ",\"%s\":%llu", name,
                                     (unsigned long long)v);
    return at + (size_t)snprintf(out + at, cap - at, " %llu", (unsigned long long)v);
}

void sl_access_log(const sl_access_entry_t *e)
{
    if (log_fd < 0)
        return;
    char line[2048];
    size_t cap = sizeof line - 2, at = 0;
    char when[40];
    sl_log_timestamp(when);
    if (log_json)
        line[at++] = '{';
    at = field(line, at, cap, "time", when, strlen(when));
    at = field(line, at, cap, "kind", e->kind, strlen(e->kind));
    at = field(line, at, cap, "client", e->client, e->client ? strlen(e->client) : 0);
    at = field(line, at, cap, "service", e->service, e->service ? strlen(e->service) : 0);
    at = field(line, at, cap, "pool", e->pool, e->pool ? strlen(e->pool) : 0);
    at = field(line, at, cap, "backend", e->backend, e->backend ? strlen(e->backend) : 0);
    at = field(line, at, cap, "method", e->method, e->method ? strlen(e->method) : 0);
    at = field(line, at, cap, "target", e->target, e->target_len);
    at = number(line, at, cap, "status", (uint64_t)e->status);
    at = number(line, at, cap, "close_code", (uint64_t)e->close_code);
    at = number(line, at, cap, "queue_ms", e->queue_ms);
    at = number(line, at, cap, "bytes_in", e->bytes_in);
    at = number(line, at, cap, "bytes_out", e->bytes_out);
    at = number(line, at, cap, "duration_ms", e->duration_ms);
    if (at > cap)
        at = cap;
    if (log_json)
        line[at++] = '}';
    line[at++] = '\n';
    ssize_t w = write(log_fd, line, at);
    (void)w;
}
