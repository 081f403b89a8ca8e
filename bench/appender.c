/*
 * bench/appender.c: see appender.h.
 *
 * Two buffers: the loop appends to `pending` under `lock`; the writer swaps
 * it for its own empty one and writes outside that lock, so the loop waits
 * at most for a swap, never for the disk. `write_lock` keeps the writer
 * thread and be_appender_sync() from interleaving their writes, so lines
 * reach the file in the order they were appended.
 */
#include "appender.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

/* Past this much unwritten text the loop writes itself rather than grow further. */
#define PENDING_MAX (64u << 20)

typedef struct buf {
    char *data;
    size_t len, cap;
} buf_t;

struct be_appender {
    int fd;
    unsigned period_ms;
    uv_thread_t thread;
    uv_mutex_t lock;         /* pending, stopping */
    uv_mutex_t write_lock;   /* the file, spare */
    uv_cond_t cond;
    buf_t pending;
    buf_t spare;
    bool stopping;
};

static bool buf_append(buf_t *b, const void *data, size_t len)
{
    if (b->cap - b->len < len) {
        size_t cap = b->cap ? b->cap : 64 * 1024;
        while (cap - b->len < len)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (d == NULL)
            return false;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return true;
}

static void write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "sluice-backend: writing a record file: %s\n",
                    n < 0 ? strerror(errno) : "short write");
            return;
        }
        p += n;
        len -= (size_t)n;
    }
}

/* Swap the pending text out and write it; the caller holds write_lock. */
static void flush_locked(be_appender_t *a)
{
    uv_mutex_lock(&a->lock);
    buf_t out = a->pending;
    a->pending = a->spare;
    a->pending.len = 0;
    uv_mutex_unlock(&a->lock);
    write_all(a->fd, out.data, out.len);
    out.len = 0;
    a->spare = out;
}

static void writer(void *arg)
{
    be_appender_t *a = arg;
    uint64_t period_ns = (uint64_t)a->period_ms * 1000000u;
    for (;;) {
        uv_mutex_lock(&a->lock);
        if (!a->stopping)
            (void)uv_cond_timedwait(&a->cond, &a->lock, period_ns);
        bool stop = a->stopping;
        uv_mutex_unlock(&a->lock);
        uv_mutex_lock(&a->write_lock);
        flush_locked(a);
        uv_mutex_unlock(&a->write_lock);
        if (stop)
            return;
    }
}

be_appender_t *be_appender_open(const char *path, unsigned period_ms, int *err)
{
    be_appender_t *a = calloc(1, sizeof *a);
    if (a == NULL) {
        *err = -ENOMEM;
        return NULL;
    }
    a->period_ms = period_ms ? period_ms : 100;
    a->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (a->fd < 0) {
        *err = -errno;
        free(a);
        return NULL;
    }
    uv_mutex_init(&a->lock);
    uv_mutex_init(&a->write_lock);
    uv_cond_init(&a->cond);
    int rc = uv_thread_create(&a->thread, writer, a);
    if (rc != 0) {
        *err = rc;
        uv_cond_destroy(&a->cond);
        uv_mutex_destroy(&a->write_lock);
        uv_mutex_destroy(&a->lock);
        close(a->fd);
        free(a);
        return NULL;
    }
    return a;
}

void be_appender_write(be_appender_t *a, const void *data, size_t len)
{
    uv_mutex_lock(&a->lock);
    bool ok = a->pending.len + len <= PENDING_MAX && buf_append(&a->pending, data, len);
    uv_mutex_unlock(&a->lock);
    if (ok)
        return;
    /* The disk cannot keep up (or memory ran out): write it here, in order. */
    uv_mutex_lock(&a->write_lock);
    flush_locked(a);
    write_all(a->fd, data, len);
    uv_mutex_unlock(&a->write_lock);
}

void be_appender_sync(be_appender_t *a)
{
    uv_mutex_lock(&a->write_lock);
    flush_locked(a);
    uv_mutex_unlock(&a->write_lock);
}

void be_appender_close(be_appender_t *a)
{
    if (a == NULL)
        return;
    uv_mutex_lock(&a->lock);
    a->stopping = true;
    uv_cond_signal(&a->cond);
    uv_mutex_unlock(&a->lock);
    uv_thread_join(&a->thread);
    close(a->fd);
    free(a->pending.data);
    free(a->spare.data);
    uv_cond_destroy(&a->cond);
    uv_mutex_destroy(&a->write_lock);
    uv_mutex_destroy(&a->lock);
    free(a);
}
