/*
 * accesslog.h: one line per WebSocket connection or plain HTTP request.
 *
 * Opened once at start (its path is fixed for the process's life, like the
 * listeners), written from any worker with one write(2) per line to a file
 * opened O_APPEND, so lines never interleave and no lock is needed.
 */
#ifndef SLUICE_NET_ACCESSLOG_H
#define SLUICE_NET_ACCESSLOG_H

#include <stdint.h>

#include "sluice/config.h"

typedef struct sl_access_entry {
    const char *kind;            /* "ws" or "http" */
    const char *client;          /* the real client address */
    const char *service;         /* NULL when no route matched */
    const char *pool;
    const char *backend;
    const char *method;          /* http: the request method */
    const char *target;          /* http: the request target (may be NULL) */
    uint32_t target_len;
    int status;                  /* HTTP status sent to the client (101 for an upgrade) */
    int close_code;              /* ws: the close code the client got (0: none) */
    uint64_t queue_ms;           /* time waiting for admission */
    uint64_t bytes_in;           /* client to backend */
    uint64_t bytes_out;          /* backend to client */
    uint64_t duration_ms;
} sl_access_entry_t;

/* Can the configured access log be opened for appending, as the start will?
   An existing writable file, or a writable directory to create it in: else
   one line "FILE:LINE:COL: access_log.path: why" in diag and SL_EINVAL (run
   by --check and by the start, before anything else is set up). */
int sl_access_log_check(const sl_config_t *cfg, sl_diag_t *diag);
/* Open the configured access log (stdout when no path). 0 or -errno. */
int sl_access_log_open(const sl_config_t *cfg, char *err, size_t errlen);
void sl_access_log_close(void);
/* True when an access log is configured (callers skip building entries otherwise). */
int sl_access_log_on(void);
void sl_access_log(const sl_access_entry_t *e);

#endif
