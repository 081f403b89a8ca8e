/*
 * bench/appender.h: an append-only file written by a thread of its own.
 *
 * The backend simulator's one event loop produces the --record and
 * --log-messages lines; a write(2) to a busy disk can block for tens of
 * milliseconds, and a blocked loop reads its sockets late, which makes the
 * handshakes it then records look bunched together. So the loop only copies
 * lines into memory, and this thread writes them out every period_ms.
 */
#ifndef SLUICE_BENCH_APPENDER_H
#define SLUICE_BENCH_APPENDER_H

#include <stddef.h>

typedef struct be_appender be_appender_t;

/* Opens (creates, appends to) path and starts the writer; NULL with *err = -errno. */
be_appender_t *be_appender_open(const char *path, unsigned period_ms, int *err);
/* Copies len bytes for the writer; never touches the disk unless memory runs out. */
void be_appender_write(be_appender_t *a, const void *data, size_t len);
/* Writes everything appended so far before returning (from the calling thread). */
void be_appender_sync(be_appender_t *a);
/* Writes the rest, stops the writer and closes the file. NULL is fine. */
void be_appender_close(be_appender_t *a);

#endif
