/*
 * bench/backend_stats.c: the capacity model, the handshake record and the
 * files that tests read.
 *
 * Why exact peaks: the gateway's promise is "the backend never sees more than
 * its rate", and tests check it against peak_100ms and peak_1s. A sampled
 * counter would under-report a burst that straddles two sample slots, so the
 * peaks are computed over every recorded accept time with two sliding heads:
 * the times arrive in order, so each head only moves forward and the work is
 * O(1) amortized per handshake. The arrays are compacted (never below the
 * last second) so a long benchmark run stays bounded.
 *
 * Files are written by a thread of their own (appender.h) every 100 ms and
 * at exit: one write(2) per period, not per handshake or message, never from
 * the event loop, while a test that waits a little more than 100 ms always
 * sees every line.
 */
#include "backend.h"

#include <errno.h>
#include <stdio.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void be_bucket_init(be_bucket_t *b, double rate, double burst, uint64_t now_us)
{
    b->rate = rate;
    b->burst = burst > 0 ? burst : SL_MAX(1.0, rate / 10.0);
    b->tokens = b->burst;
    b->last_us = now_us;
}

bool be_bucket_take(be_bucket_t *b, uint64_t now_us)
{
    if (b->rate <= 0)
        return true;
    if (now_us > b->last_us) {
        b->tokens += (double)(now_us - b->last_us) * b->rate / 1e6;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
        b->last_us = now_us;
    }
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    return true;
}

void be_record_init(be_record_t *r, size_t max_keep)
{
    memset(r, 0, sizeof(*r));
    r->max_keep = max_keep ? max_keep : 1u << 20;
}

void be_record_free(be_record_t *r)
{
    free(r->mono_ms);
    free(r->wall_ms);
    r->mono_ms = NULL;
    r->wall_ms = NULL;
    r->n = r->cap = 0;
}

/* Drop the entries no window needs any more; true when that made room. */
static bool record_compact(be_record_t *r)
{
    size_t drop = r->head_1s;   /* head_1s <= head_100ms always */
    if (drop == 0)
        return false;
    memmove(r->mono_ms, r->mono_ms + drop, (r->n - drop) * sizeof(uint64_t));
    memmove(r->wall_ms, r->wall_ms + drop, (r->n - drop) * sizeof(uint64_t));
    r->n -= drop;
    r->head_1s -= drop;
    r->head_100ms -= drop;
    return true;
}

static int record_grow(be_record_t *r)
{
    size_t cap = r->cap ? r->cap * 2 : 1024;
    uint64_t *m = realloc(r->mono_ms, cap * sizeof(uint64_t));
    if (!m)
        return SL_ENOMEM;
    r->mono_ms = m;
    uint64_t *w = realloc(r->wall_ms, cap * sizeof(uint64_t));
    if (!w)
        return SL_ENOMEM;
    r->wall_ms = w;
    r->cap = cap;
    return 0;
}

int be_record_add(be_record_t *r, uint64_t mono_ms, uint64_t wall_ms)
{
    if (r->n == r->cap) {
        bool room = r->cap >= r->max_keep && record_compact(r);
        if (!room && record_grow(r) < 0)
            return SL_ENOMEM;
    }
    r->mono_ms[r->n] = mono_ms;
    r->wall_ms[r->n] = wall_ms;
    r->n++;
    /* A window of W ms ending at t holds the times in (t - W, t]. */
    while (mono_ms - r->mono_ms[r->head_100ms] >= 100)
        r->head_100ms++;
    while (mono_ms - r->mono_ms[r->head_1s] >= 1000)
        r->head_1s++;
    r->peak_100ms = SL_MAX(r->peak_100ms, (uint64_t)(r->n - r->head_100ms));
    r->peak_1s = SL_MAX(r->peak_1s, (uint64_t)(r->n - r->head_1s));
    return 0;
}

int be_files_open(be_server_t *s)
{
    int err = 0;
    if (s->opt.record_path &&
        !(s->record_file = be_appender_open(s->opt.record_path, BE_TICK_MS, &err)))
        return err;
    if (s->opt.log_messages_path &&
        !(s->log_file = be_appender_open(s->opt.log_messages_path, BE_TICK_MS, &err)))
        return err;
    return 0;
}

void be_files_flush(be_server_t *s)
{
    if (s->record_file)
        be_appender_sync(s->record_file);
    if (s->log_file)
        be_appender_sync(s->log_file);
}

void be_files_close(be_server_t *s)
{
    be_appender_close(s->record_file);
    be_appender_close(s->log_file);
    s->record_file = NULL;
    s->log_file = NULL;
}

void be_log_message(be_server_t *s, const uint8_t *data, size_t len)
{
    if (!s->log_file)
        return;
    be_appender_write(s->log_file, data, len);
    be_appender_write(s->log_file, "\n", 1);
}

static uint64_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void be_handshake_accepted(be_server_t *s)
{
    uint64_t mono = uv_hrtime() / 1000000u;
    uint64_t wall = wall_now_ms();
    s->stats.handshakes++;
    if (be_record_add(&s->record, mono, wall) < 0)
        fprintf(stderr, "sluice-backend: out of memory for the handshake record\n");
    if (s->record_file) {
        char line[24];
        int n = snprintf(line, sizeof line, "%" PRIu64 "\n", wall);
        be_appender_write(s->record_file, line, (size_t)n);
    }
}

/* Write the name as a JSON string body (quotes and controls escaped). */
static size_t json_str(char *out, size_t cap, const char *str)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)str; *p && n + 7 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            out[n++] = '\\';
            out[n++] = (char)*p;
        } else if (*p < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", *p);
        } else {
            out[n++] = (char)*p;
        }
    }
    return n;
}

size_t be_stats_json(const be_server_t *s, char *out, size_t cap)
{
    char name[256];
    size_t nl = json_str(name, sizeof(name), s->opt.name);
    int n = snprintf(out, cap,
                     "{\"name\":\"%.*s\",\"handshakes\":%" PRIu64 ",\"rejected\":%" PRIu64
                     ",\"open\":%" PRIu64 ",\"messages\":%" PRIu64 ",\"peak_100ms\":%" PRIu64
                     ",\"peak_1s\":%" PRIu64 ",\"http_requests\":%" PRIu64
                     ",\"bad_requests\":%" PRIu64 "}\n",
                     (int)nl, name, s->stats.handshakes, s->stats.rejected, s->stats.open,
                     s->stats.messages, s->record.peak_100ms, s->record.peak_1s,
                     s->stats.http_requests, s->stats.bad_requests);
    if (n < 0)
        return 0;
    return SL_MIN((size_t)n, cap - 1);
}
