/*
 * tls_internal.h: what tls_ctx.c (listener contexts, ticket keys, the
 * registry) and tls_pool.c (backend client contexts) share. The rest of the
 * gateway uses tls.h.
 */
#ifndef SLUICE_NET_TLS_INTERNAL_H
#define SLUICE_NET_TLS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "tls.h"

/* Mozilla "intermediate" (TLS 1.2 part; TLS 1.3 suites are OpenSSL's defaults). */
#define SL_TLS_INTERMEDIATE_CIPHERS \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
#define SL_TLS_INTERMEDIATE_GROUPS "X25519:prime256v1:secp384r1"

extern const unsigned char sl__tls_alpn_http11[10];   /* ALPN wire format */

/* Append one formatted line to d (dropped when out of memory). */
void sl__tls_diag_add(sl_diag_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool sl__tls_readable(const char *path);

/* tls_pool.c: a context for every pool with tls: true ([i] for cfg->pools[i],
   NULL when plain); SL_EINVAL when any failed (the reasons in d). */
int sl__tls_pools_build(const sl_config_t *cfg, sl_tls_pool_t **pools, sl_diag_t *d);
/* Drop the references of a pools array and free it. */
void sl__tls_pools_drop(size_t n, sl_tls_pool_t **pools);
/* Log what an operator should hear once per start or reload (unverified TLS). */
void sl__tls_pools_warn(const sl_config_t *cfg);
/* The pool named `name` in pools, with a reference taken, or NULL. */
sl_tls_pool_t *sl__tls_pool_find(sl_tls_pool_t *const *pools, size_t n, const char *name);

#endif
