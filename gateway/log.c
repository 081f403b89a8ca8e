/*
 * log.c: one line per event, to standard error.
 *
 * Every line is built in a stack buffer and written with a single write(2):
 * POSIX makes writes to a pipe of up to PIPE_BUF bytes atomic, and for a
 * terminal or file a single write keeps lines whole in practice, so workers
 * need no lock to log. Timestamps are wall-clock UTC with milliseconds,
 * because operators correlate them with other systems' logs.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sluice/log.h"

/* Set at start and again by every reload (control thread), read by every
   thread for every line: atomics, so a reload changes them under the workers. */
static _Atomic int log_level = SL_LOG_INFO;
static _Atomic int log_format = SL_LOG_TEXT;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void sl_log_setup(sl_log_level_t level, sl_log_format_t format)
{
    atomic_store(&log_level, (int)level);
    atomic_store(&log_format, (int)format);
}

sl_log_level_t sl_log_level(void)
{
    return (sl_log_level_t)atomic_load(&log_level);
}

/* Append `s` to out as the inside of a JSON string. Returns the new length. */
static size_t json_escape(char *out, size_t at, size_t cap, const char *s)
{
    for (; *s && at + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[at++] = '\\';
            out[at++] = (char)c;
        } else if (c < 0x20) {
            at += (size_t)snprintf(out + at, cap - at, "\\u%04x", c);
        } else {
            out[at++] = (char)c;
        }
    }
    return at;
}

void sl_log_timestamp(char out[40])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

void sl_log(sl_log_level_t level, const char *fmt, ...)
{
    if ((int)level > atomic_load(&log_level))
        return;

    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    char when[40];
    sl_log_timestamp(when);

    char line[2048];
    size_t n;
    if (atomic_load(&log_format) == SL_LOG_JSON) {
        n = (size_t)snprintf(line, sizeof line, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"",
                             when, level_names[level]);
        n = json_escape(line, n, sizeof line - 3, msg);
        line[n++] = '"';
        line[n++] = '}';
        line[n++] = '\n';
    } else {
        n = (size_t)snprintf(line, sizeof line, "%s %-5s %s\n", when, level_names[level], msg);
        if (n >= sizeof line) {
            n = sizeof line;
            line[n - 1] = '\n';
        }
    }
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}
