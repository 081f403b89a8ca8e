/*
 * sluice/route.h: from a request's host and path to a service.
 *
 * Built once per config snapshot, read by every worker without locks.
 * Matching: an exact host beats a "*.suffix" wildcard, which beats "*";
 * within a host, the longest path prefix wins; ties go to the first route
 * written. The Host header's port is ignored; comparison is case-insensitive.
 */
#ifndef SLUICE_ROUTE_H
#define SLUICE_ROUTE_H

#include <stddef.h>

#include "sluice/config.h"

typedef struct sl_router sl_router_t;

/* Returns NULL only on allocation failure. The router does not keep cfg. */
sl_router_t *sl_router_new(const sl_config_t *cfg);
void sl_router_free(sl_router_t *r);

typedef struct sl_route_match {
    long service;                /* index into cfg->services */
    long route;                  /* index into that service's routes */
} sl_route_match_t;

/* Returns 0 and fills *m, or SL_ENOENT (the gateway answers 404). */
int sl_router_match(const sl_router_t *r, const char *host, size_t host_len,
                    const char *path, size_t path_len, sl_route_match_t *m);

#endif
