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

/*
 * The path of a request target as routes see it: "%XX" of an unreserved
 * character decoded (RFC 3986 2.3: "/%61dmin" is "/admin"), runs of "/" as
 * one, "." and ".." segments resolved (RFC 3986 5.2.4), the query and
 * fragment left out. A path with a "%" that starts no escape is not decoded. A path not starting with "/" is copied as it is, up
 * to its query. Writes at most n bytes into out; returns the length.
 */
size_t sl_route_path_normalize(const char *path, size_t n, char *out);

/* Returns 0 and fills *m, or SL_ENOENT (the gateway answers 404). The path
   is matched normalized (sl_route_path_normalize): spellings that a backend
   reads as the same path cannot pass another route's prefix. */
int sl_router_match(const sl_router_t *r, const char *host, size_t host_len,
                    const char *path, size_t path_len, sl_route_match_t *m);

#endif
