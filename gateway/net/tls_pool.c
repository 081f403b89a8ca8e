/*
 * tls_pool.c: the client contexts sluice uses towards backends, one per pool
 * with `tls: true`.
 *
 * They are built, checked and swapped with the listener sets, all or
 * nothing, in tls_ctx.c's registry. Connections look their pool's context up
 * by name, so a reload that changes a pool's CA or verification applies to
 * its next connection. Each context keeps the last session per backend (an
 * external cache fed by the new-session callback), so reconnecting to a
 * backend resumes instead of paying for a full handshake again.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "sluice/log.h"
#include "tls_internal.h"

#define MAX_CACHED_SESSIONS 256

typedef struct cached_session {
    char *backend;                       /* "host:port" as the runtime names it */
    SSL_SESSION *sess;
} cached_session_t;

struct sl_tls_pool {
    _Atomic long refs;
    char *name;
    SSL_CTX *ctx;
    pthread_mutex_t lock;                /* guards cache */
    cached_session_t *cache;
    size_t n_cache;
};

static void pool_free(sl_tls_pool_t *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n_cache; i++) {
        free(p->cache[i].backend);
        SSL_SESSION_free(p->cache[i].sess);
    }
    free(p->cache);
    SSL_CTX_free(p->ctx);
    pthread_mutex_destroy(&p->lock);
    free(p->name);
    free(p);
}

/* OpenSSL has a new session for a backend (after a handshake, or a TLS 1.3
   ticket later): keep it as that backend's. 1: we took the reference. */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    sl_tls_pool_t *p = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    const char *backend = SSL_get_app_data(ssl);
    if (p == NULL || backend == NULL)
        return 0;
    int kept = 0;
    pthread_mutex_lock(&p->lock);
    size_t i = 0;
    while (i < p->n_cache && strcmp(p->cache[i].backend, backend) != 0)
        i++;
    if (i < p->n_cache) {
        SSL_SESSION_free(p->cache[i].sess);
        p->cache[i].sess = sess;
        kept = 1;
    } else if (p->n_cache < MAX_CACHED_SESSIONS) {
        cached_session_t *c = realloc(p->cache, (p->n_cache + 1) * sizeof *c);
        char *name = strdup(backend);
        if (c)
            p->cache = c;
        if (c && name) {
            p->cache[p->n_cache++] = (cached_session_t){name, sess};
            kept = 1;
        } else {
            free(name);
        }
    }
    pthread_mutex_unlock(&p->lock);
    return kept;
}

/* A client context for pool `i`, or NULL with the reasons in d. */
static sl_tls_pool_t *build_pool(const sl_config_t *cfg, size_t i, sl_diag_t *d)
{
    const sl_cfg_pool_t *pc = &cfg->pools[i];
    char where[320], why[256];
    snprintf(where, sizeof where, "%s:%u:%u: pools.%s", cfg->file ? cfg->file : "config",
             pc->pos.line, pc->pos.col, pc->name);
    sl_tls_pool_t *p = calloc(1, sizeof *p);
    if (p == NULL || (p->name = strdup(pc->name)) == NULL ||
        (p->ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
        sl__tls_diag_add(d, "%s: %s", where, p ? sl_tls_error_text(why, sizeof why) : "out of memory");
        if (p)
            free(p->name);
        free(p);
        return NULL;
    }
    atomic_init(&p->refs, 1);
    pthread_mutex_init(&p->lock, NULL);
    SSL_CTX *ctx = p->ctx;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_cipher_list(ctx, SL_TLS_INTERMEDIATE_CIPHERS);
    SSL_CTX_set1_groups_list(ctx, SL_TLS_INTERMEDIATE_GROUPS);
    SSL_CTX_set_alpn_protos(ctx, sl__tls_alpn_http11, sizeof sl__tls_alpn_http11 - 1);
    SSL_CTX_set_verify(ctx, pc->tls_verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    int bad = 0;
    char kw[400];
    /* A file's error at its own key (the pool's line when defaulted). */
    sl_cfg_pos_t kp = sl_config_where(cfg, pc->tls_ca_file ? (const void *)&pc->tls_ca_file
                                                         : (const void *)&pc->tls_verify, pc->pos);
    snprintf(kw, sizeof kw, "%s:%u:%u: pools.%s.%s", cfg->file ? cfg->file : "config", kp.line,
             kp.col, pc->name, pc->tls_ca_file ? "tls_ca_file" : "tls_verify");
    if (pc->tls_ca_file) {
        if (!sl__tls_readable(pc->tls_ca_file)) {
            sl__tls_diag_add(d, "%s: cannot read CA file %s: %s", kw, pc->tls_ca_file,
                     strerror(errno));
            bad = 1;
        } else if (SSL_CTX_load_verify_locations(ctx, pc->tls_ca_file, NULL) != 1) {
            sl__tls_diag_add(d, "%s: no PEM certificate in CA file %s (%s)", kw,
                     pc->tls_ca_file, sl_tls_error_text(why, sizeof why));
            bad = 1;
        }
    } else if (pc->tls_verify && SSL_CTX_set_default_verify_paths(ctx) != 1) {
        sl__tls_diag_add(d, "%s: cannot load the system CA bundle (%s)", kw,
                 sl_tls_error_text(why, sizeof why));
        bad = 1;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
    SSL_CTX_set_app_data(ctx, p);
    ERR_clear_error();
    if (bad) {
        pool_free(p);
        return NULL;
    }
    return p;
}

/* Contexts for every pool with tls: true; rc SL_EINVAL when any failed. */
int sl__tls_pools_build(const sl_config_t *cfg, sl_tls_pool_t **pools, sl_diag_t *d)
{
    int rc = 0;
    for (size_t i = 0; i < cfg->n_pools; i++)
        if (cfg->pools[i].tls && (pools[i] = build_pool(cfg, i, d)) == NULL)
            rc = SL_EINVAL;
    return rc;
}

void sl__tls_pools_drop(size_t n, sl_tls_pool_t **pools)
{
    for (size_t i = 0; pools && i < n; i++)
        sl_tls_pool_unref(pools[i]);
    free(pools);
}

/* What an operator should hear once per start or reload. */
void sl__tls_pools_warn(const sl_config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_pools; i++) {
        const sl_cfg_pool_t *pc = &cfg->pools[i];
        if (!pc->tls)
            continue;
        if (!pc->tls_verify)
            sl_log_warn("pool %s: TLS to its backends is NOT verified (tls_verify: false): "
                        "anyone on the path can pose as a backend", pc->name);
    }
}

void sl_tls_pool_unref(sl_tls_pool_t *p)
{
    if (p && atomic_fetch_sub(&p->refs, 1) == 1)
        pool_free(p);
}

sl_tls_pool_t *sl__tls_pool_find(sl_tls_pool_t *const *pools, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (pools[i] && strcmp(pools[i]->name, name) == 0) {
            atomic_fetch_add(&pools[i]->refs, 1);
            return pools[i];
        }
    return NULL;
}

struct ssl_ctx_st *sl_tls_pool_ctx(const sl_tls_pool_t *p)
{
    return p->ctx;
}

struct ssl_session_st *sl_tls_pool_session(sl_tls_pool_t *p, const char *backend)
{
    SSL_SESSION *sess = NULL;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n_cache; i++)
        if (strcmp(p->cache[i].backend, backend) == 0) {
            if (SSL_SESSION_is_resumable(p->cache[i].sess) && SSL_SESSION_up_ref(p->cache[i].sess))
                sess = p->cache[i].sess;
            break;
        }
    pthread_mutex_unlock(&p->lock);
    return sess;
}

/* SNI and the name (or address) the certificate must carry. */
static void set_peer_name(SSL *ssl, const char *name, bool verify)
{
    unsigned char addr[16];
    bool ip = inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
    if (!ip)
        SSL_set_tlsext_host_name(ssl, name);   /* RFC 6066: no SNI for addresses */
    if (!verify)
        return;
    if (ip)
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
    else
        SSL_set1_host(ssl, name);
}

SSL *sl_tls_pool_new_ssl(sl_tls_pool_t *pool, const sl_cfg_pool_t *pc, const char *host)
{
    SSL *ssl = SSL_new(sl_tls_pool_ctx(pool));
    if (ssl == NULL)
        return NULL;
    SSL_set_connect_state(ssl);
    SSL_set_verify(ssl, pc->tls_verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    const char *name = pc->tls_sni ? pc->tls_sni : host;
    if (name && name[0])
        set_peer_name(ssl, name, pc->tls_verify);
    return ssl;
}

void sl_tls_pool_forget(sl_tls_pool_t *p, const char *backend)
{
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n_cache; i++)
        if (strcmp(p->cache[i].backend, backend) == 0) {
            free(p->cache[i].backend);
            SSL_SESSION_free(p->cache[i].sess);
            p->cache[i] = p->cache[--p->n_cache];
            break;
        }
    pthread_mutex_unlock(&p->lock);
}

