/*
 * tls_ctx.c: the SSL_CTXs of the TLS listeners, their ticket keys, and
 * reloading them without dropping a connection.
 *
 * One "set" per TLS listener, shared by every worker: SSL_CTX is safe to
 * share between threads, and sharing it means one session cache and one
 * ticket keyring, so a client that reconnects to another worker (the kernel
 * spreads SO_REUSEPORT accepts) still resumes. A reconnect storm is a
 * handshake storm; resumption is what makes it cheap.
 *
 * A set holds one SSL_CTX per distinct certificate name set: SNI picks the
 * context (client_hello_cb, SSL_set_SSL_CTX, before the session lookup).
 * An ECDSA and an RSA certificate with the same names share one context, and OpenSSL picks
 * between them by what the client supports.
 *
 * Reload builds complete new sets first and swaps them in under the
 * registry lock only when every listener built: connections keep the set
 * they started with by reference (and their SSL keeps its SSL_CTX by
 * OpenSSL's own refcount), so old contexts go away with their last user.
 *
 * Ticket keys live in a keyring per listener that outlives sets, so tickets
 * stay valid across a reload. Keys come from ticket_key_file (80 bytes per
 * key: 16 name, 32 HMAC-SHA256, 32 AES-256; the first encrypts, all
 * decrypt) or are made in memory and rotated every ticket_rotate, the
 * previous key still decrypting for one more period.
 *
 * The backend side's client contexts are in tls_pool.c; the registry here
 * holds them beside the listener sets, so both are built, checked and
 * swapped together (all or nothing).
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "sluice/log.h"
#include "tls_internal.h"


#define TICKET_KEY_LEN 80
#define MAX_TICKET_KEYS 8

typedef struct ticket_key {
    uint8_t name[16];
    uint8_t hmac[32];
    uint8_t aes[32];
} ticket_key_t;

typedef struct keyring {
    pthread_mutex_t lock;
    ticket_key_t keys[MAX_TICKET_KEYS];  /* [0] encrypts */
    size_t n;
    bool from_file;
    sl_msec_t rotate;
    sl_msec_t rotated_at;
} keyring_t;

typedef struct cert_ctx {
    SSL_CTX *ctx;
    char **names;                        /* lower case DNS names (SAN, else CN) */
    size_t n_names;
    int key_types[2];                    /* EVP_PKEY ids loaded into ctx */
} cert_ctx_t;

struct sl_tls_set {
    _Atomic long refs;
    cert_ctx_t *certs;                   /* [0] is the default */
    size_t n_certs;
    keyring_t *keys;
    sl_msec_t handshake_timeout;
};

/* The registry: per listener index, the current set and the keyring. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static sl_tls_set_t **reg_sets;
static keyring_t **reg_keys;
static size_t reg_n;
static bool reg_built;
static sl_tls_pool_t **reg_pools;        /* [i] for cfg->pools[i], NULL when plain */
static size_t reg_n_pools;

const unsigned char sl__tls_alpn_http11[10] = "\x08http/1.1";

void sl__tls_diag_add(sl_diag_t *d, const char *fmt, ...)
{
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        char **l = realloc(d->lines, cap * sizeof *l);
        if (l == NULL)
            return;
        d->lines = l;
        d->cap = cap;
    }
    if ((d->lines[d->n] = strdup(line)) != NULL)
        d->n++;
}

const char *sl_tls_error_text(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    if (e == 0)
        snprintf(buf, len, "unknown error");
    else
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return buf;
}

static sl_msec_t mono_ms(void)
{
    return uv_hrtime() / 1000000u;
}

/* ---- ticket keys ---- */

static int keyring_fill_random(keyring_t *kr, size_t at)
{
    return RAND_bytes((unsigned char *)&kr->keys[at], sizeof kr->keys[at]) == 1 ? 0 : SL_ENOMEM;
}

/* Read 80-byte keys from `path` into kr. */
static int keyring_load(keyring_t *kr, const char *path, const char *where, sl_diag_t *d)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        sl__tls_diag_add(d, "%s: cannot read ticket key file %s: %s", where, path, strerror(errno));
        return SL_EINVAL;
    }
    uint8_t buf[TICKET_KEY_LEN * MAX_TICKET_KEYS + 1];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (n == 0 || n % TICKET_KEY_LEN != 0 || n > TICKET_KEY_LEN * MAX_TICKET_KEYS) {
        /* Only one byte past the most is read: say "more than", not a size. */
        char size[48];
        if (n > TICKET_KEY_LEN * MAX_TICKET_KEYS)
            snprintf(size, sizeof size, "more than %d bytes", TICKET_KEY_LEN * MAX_TICKET_KEYS);
        else
            snprintf(size, sizeof size, "%zu bytes", n);
        sl__tls_diag_add(d, "%s: ticket key file %s holds %s (expected 80 per key, 1 to %d keys)",
                 where, path, size, MAX_TICKET_KEYS);
        return SL_EINVAL;
    }
    pthread_mutex_lock(&kr->lock);
    memcpy(kr->keys, buf, n);
    kr->n = n / TICKET_KEY_LEN;
    kr->from_file = true;
    pthread_mutex_unlock(&kr->lock);
    OPENSSL_cleanse(buf, sizeof buf);
    return 0;
}

static keyring_t *keyring_new(sl_msec_t rotate)
{
    keyring_t *kr = calloc(1, sizeof *kr);
    if (kr == NULL)
        return NULL;
    pthread_mutex_init(&kr->lock, NULL);
    kr->rotate = rotate;
    kr->rotated_at = mono_ms();
    kr->n = 1;
    if (keyring_fill_random(kr, 0) != 0) {
        pthread_mutex_destroy(&kr->lock);
        free(kr);
        return NULL;
    }
    return kr;
}

static void keyring_free(keyring_t *kr)
{
    if (kr == NULL)
        return;
    OPENSSL_cleanse(kr->keys, sizeof kr->keys);
    pthread_mutex_destroy(&kr->lock);
    free(kr);
}

/* In-memory keys: a new current key every `rotate`; the previous one still decrypts. */
static void keyring_maybe_rotate(keyring_t *kr)
{
    if (kr->from_file || kr->rotate == 0)
        return;
    sl_msec_t now = mono_ms();
    if (now - kr->rotated_at < kr->rotate)
        return;
    kr->keys[1] = kr->keys[0];
    if (keyring_fill_random(kr, 0) != 0) {
        kr->keys[0] = kr->keys[1];
        return;
    }
    kr->n = 2;
    kr->rotated_at = now;
}

static int set_mac_key(EVP_MAC_CTX *hctx, uint8_t key[32])
{
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key, 32);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    return EVP_MAC_CTX_set_params(hctx, params) == 1 ? 0 : -1;
}

/*
 * OpenSSL's ticket callback: 1 ok, 2 ok but renew the ticket, 0 unknown key,
 * -1 error. A ticket under an older key is renewed. So is every TLS 1.3
 * ticket: a TLS 1.3 client uses a ticket once (RFC 8446, C.4), and OpenSSL
 * sends a new one after a resumption only when asked to renew; without it
 * such a client could resume only every other connection.
 */
static int ticket_cb(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc)
{
    keyring_t *kr = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    int rc = -1;
    pthread_mutex_lock(&kr->lock);
    keyring_maybe_rotate(kr);
    if (enc) {
        ticket_key_t *k = &kr->keys[0];
        memcpy(name, k->name, 16);
        if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) == 1 &&
            EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) == 1 &&
            set_mac_key(hctx, k->hmac) == 0)
            rc = 1;
    } else {
        rc = 0;
        for (size_t i = 0; i < kr->n; i++) {
            ticket_key_t *k = &kr->keys[i];
            if (memcmp(name, k->name, 16) != 0)
                continue;
            if (set_mac_key(hctx, k->hmac) != 0 ||
                EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) != 1)
                rc = -1;
            else
                rc = i == 0 && SSL_version(ssl) != TLS1_3_VERSION ? 1 : 2;
            break;
        }
    }
    pthread_mutex_unlock(&kr->lock);
    return rc;
}

/* ---- one certificate context ---- */

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned char *o;
    if (SSL_select_next_proto(&o, outlen, sl__tls_alpn_http11, sizeof sl__tls_alpn_http11 - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;   /* no ALPN then; HTTP/1.1 is all we speak anyway */
    *out = o;
    return SSL_TLSEXT_ERR_OK;
}

static bool name_matches(const char *pattern, const char *host)
{
    if (strcmp(pattern, host) == 0)
        return true;
    if (pattern[0] != '*' || pattern[1] != '.')
        return false;
    const char *dot = strchr(host, '.');   /* a wildcard stands for exactly one label */
    return dot != NULL && dot != host && strcmp(dot, pattern + 1) == 0;
}

/* The context whose certificate names `sni` (n bytes), or NULL: the default. */
static SSL_CTX *ctx_for_name(const sl_tls_set_t *set, const char *sni, size_t n)
{
    char host[256];
    /* "b.test." is b.test written absolute: RFC 6066 wants it sent without
       the dot, but some clients keep the one their user typed. */
    if (n > 1 && sni[n - 1] == '.')
        n--;
    if (n == 0 || n >= sizeof host || memchr(sni, '\0', n) != NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        host[i] = (char)tolower((unsigned char)sni[i]);
    host[n] = '\0';
    for (int pass = 0; pass < 2; pass++)   /* exact names first, then wildcards */
        for (size_t c = 0; c < set->n_certs; c++)
            for (size_t k = 0; k < set->certs[c].n_names; k++) {
                const char *p = set->certs[c].names[k];
                if ((pass == 0 && strcmp(p, host) == 0) ||
                    (pass == 1 && p[0] == '*' && name_matches(p, host)))
                    return set->certs[c].ctx;
            }
    return NULL;
}

/* The name is acknowledged (ServerHello's server_name, and kept in a TLS 1.2
   session): without a callback OpenSSL answers as if it ignored it. */
static int servername_ack(SSL *ssl, int *alert, void *arg)
{
    return SSL_TLSEXT_ERR_OK;
}

/*
 * The certificate is chosen from the ClientHello's server_name before
 * OpenSSL looks the offered session up, not in the servername callback,
 * which runs after: a TLS 1.2 session made for a.test was resumed under
 * b.test's name, with a.test's certificate (RFC 6066 3 forbids it). Each
 * context has an id context of its own, so a session resumes only under
 * the certificate it was made with; a name without a certificate of its
 * own takes the default's.
 */
static int client_hello_cb(SSL *ssl, int *alert, void *arg)
{
    const sl_tls_set_t *set = arg;
    const unsigned char *p;
    size_t len;
    if (set->n_certs < 2 || !SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len))
        return SSL_CLIENT_HELLO_SUCCESS;
    /* ServerNameList: a 2-byte length, then entries: a type (0: host_name),
       a 2-byte length, the name. A malformed one is OpenSSL's to refuse. */
    if (len < 5 || (size_t)(p[0] << 8 | p[1]) + 2 != len || p[2] != TLSEXT_NAMETYPE_host_name)
        return SSL_CLIENT_HELLO_SUCCESS;
    size_t n = (size_t)(p[3] << 8 | p[4]);
    if (n + 5 > len)
        return SSL_CLIENT_HELLO_SUCCESS;
    SSL_CTX *ctx = ctx_for_name(set, (const char *)p + 5, n);
    if (ctx != NULL && SSL_get_SSL_CTX(ssl) != ctx)
        SSL_set_SSL_CTX(ssl, ctx);
    return SSL_CLIENT_HELLO_SUCCESS;
}

static int add_name(cert_ctx_t *cc, const char *s, size_t len)
{
    char **names = realloc(cc->names, (cc->n_names + 1) * sizeof *names);
    if (names == NULL)
        return SL_ENOMEM;
    cc->names = names;
    char *n = malloc(len + 1);
    if (n == NULL)
        return SL_ENOMEM;
    for (size_t i = 0; i < len; i++)
        n[i] = (char)tolower((unsigned char)s[i]);
    n[len] = '\0';
    cc->names[cc->n_names++] = n;
    return 0;
}

/* The DNS names of x: its subjectAltName DNS entries, else its CN. */
static int read_names(cert_ctx_t *cc, X509 *x)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int rc = 0;
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens) && rc == 0; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type == GEN_DNS)
            rc = add_name(cc, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
                          (size_t)ASN1_STRING_length(g->d.dNSName));
    }
    GENERAL_NAMES_free(gens);
    if (rc == 0 && cc->n_names == 0) {
        X509_NAME *subj = X509_get_subject_name(x);
        int at = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
        if (at >= 0) {
            ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, at));
            rc = add_name(cc, (const char *)ASN1_STRING_get0_data(cn),
                          (size_t)ASN1_STRING_length(cn));
        }
    }
    return rc;
}

static bool has_name(const cert_ctx_t *cc, const char *name)
{
    for (size_t i = 0; i < cc->n_names; i++)
        if (strcmp(cc->names[i], name) == 0)
            return true;
    return false;
}

/* The same set of names, in any order: a CA keeps no order between the
   SANs of two certificates (an ECDSA and an RSA one issued for a site). */
static bool same_names(const cert_ctx_t *a, const cert_ctx_t *b)
{
    for (size_t i = 0; i < a->n_names; i++)
        if (!has_name(b, a->names[i]))
            return false;
    for (size_t i = 0; i < b->n_names; i++)
        if (!has_name(a, b->names[i]))
            return false;
    return true;
}

static void cert_ctx_clear(cert_ctx_t *cc)
{
    SSL_CTX_free(cc->ctx);
    for (size_t i = 0; i < cc->n_names; i++)
        free(cc->names[i]);
    free(cc->names);
    memset(cc, 0, sizeof *cc);
}

/* "FILE:LINE:COL: listeners[li].tls.KEY" at field's own place (the listener's when defaulted). */
static const char *key_where(char *buf, size_t len, const sl_config_t *cfg, size_t li,
                             const void *field, const char *key)
{
    sl_cfg_pos_t p = sl_config_where(cfg, field, cfg->listeners[li].pos);
    snprintf(buf, len, "%s:%u:%u: listeners[%zu].tls.%s", cfg->file ? cfg->file : "config",
             p.line, p.col, li, key);
    return buf;
}

/* A context with the listener's protocol settings, no certificate yet. */
static SSL_CTX *new_ctx(const sl_config_t *cfg, size_t li, size_t ci, keyring_t *kr,
                        const char *where, sl_diag_t *d)
{
    const sl_cfg_listener_tls_t *t = &cfg->listeners[li].tls;
    char kw[400];
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        sl__tls_diag_add(d, "%s: %s", where, sl_tls_error_text(why, sizeof why));
        return NULL;
    }
    int minv = t->min_version && strcmp(t->min_version, "TLSv1.3") == 0 ? TLS1_3_VERSION
                                                                          : TLS1_2_VERSION;
    SSL_CTX_set_min_proto_version(ctx, minv);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_dh_auto(ctx, 1);
    if (SSL_CTX_set_cipher_list(ctx, t->ciphers ? t->ciphers : SL_TLS_INTERMEDIATE_CIPHERS) != 1) {
        sl__tls_diag_add(d, "%s: no usable cipher in \"%s\" (%s)",
                         key_where(kw, sizeof kw, cfg, li, &t->ciphers, "ciphers"),
                         t->ciphers ? t->ciphers : "", sl_tls_error_text(why, sizeof why));
        goto fail;
    }
    /* OpenSSL takes an empty list: with TLS 1.2 refused, no client could connect. */
    if (t->ciphersuites && t->ciphersuites[0] == '\0' && minv == TLS1_3_VERSION) {
        sl__tls_diag_add(d, "%s: no suite, and min_version TLSv1.3 leaves nothing else "
                         "(expected a TLS 1.3 suite list, or null for OpenSSL's)",
                         key_where(kw, sizeof kw, cfg, li, &t->ciphersuites, "ciphersuites"));
        goto fail;
    }
    if (t->ciphersuites && SSL_CTX_set_ciphersuites(ctx, t->ciphersuites) != 1) {
        sl__tls_diag_add(d, "%s: no usable suite in \"%s\" (%s)",
                         key_where(kw, sizeof kw, cfg, li, &t->ciphersuites, "ciphersuites"),
                         t->ciphersuites, sl_tls_error_text(why, sizeof why));
        goto fail;
    }
    SSL_CTX_set1_groups_list(ctx, SL_TLS_INTERMEDIATE_GROUPS);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
    /* Resumption: an id context per certificate context (client_hello_cb),
       the same across reloads of the same certificates; a server cache, and
       tickets from our keys. */
    char sid[32];
    int sl = snprintf(sid, sizeof sid, "sluice-%zu-%zu", li, ci);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)sid, (unsigned)sl);
    if (t->session_cache > 0) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_cache_size(ctx, t->session_cache);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    long life = (long)(t->ticket_rotate / 1000);
    SSL_CTX_set_timeout(ctx, life > 0 ? life : 300);
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_app_data(ctx, kr);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* Learn the names and key type of a certificate file (before loading it). */
static int peek_cert(const char *path, cert_ctx_t *names, int *key_type)
{
    BIO *bio = BIO_new_file(path, "r");
    if (bio == NULL)
        return SL_ENOENT;
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (x == NULL)
        return SL_EINVAL;
    int rc = read_names(names, x);
    EVP_PKEY *pk = X509_get0_pubkey(x);
    *key_type = pk ? EVP_PKEY_get_base_id(pk) : 0;
    X509_free(x);
    return rc;
}

bool sl__tls_readable(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f)
        fclose(f);
    return f != NULL;
}

/* Load certificate `ci` into the set: into a context with the same names and
   another key type (ECDSA beside RSA), else into a new context. */
static int load_cert(sl_tls_set_t *set, const sl_config_t *cfg, size_t li, size_t ci,
                     const char *lwhere, sl_diag_t *d)
{
    const sl_cfg_cert_t *c = &cfg->listeners[li].tls.certificates[ci];
    char cw[512], kw[512], why[256];
    /* At the cert and key keys themselves. */
    sl_cfg_pos_t entry = c->pos.line ? c->pos : cfg->listeners[li].pos;
    sl_cfg_pos_t cp = sl_config_where(cfg, &c->cert, entry), kp = sl_config_where(cfg, &c->key, entry);
    const char *file = cfg->file ? cfg->file : "config";
    snprintf(cw, sizeof cw, "%s:%u:%u: listeners[%zu].tls.certificates[%zu].cert", file, cp.line,
             cp.col, li, ci);
    snprintf(kw, sizeof kw, "%s:%u:%u: listeners[%zu].tls.certificates[%zu].key", file, kp.line,
             kp.col, li, ci);
    cert_ctx_t peek = {0};
    int kt = 0;
    int rc = peek_cert(c->cert, &peek, &kt);
    if (rc != 0) {
        if (rc == SL_ENOENT)
            sl__tls_diag_add(d, "%s: cannot read certificate file %s: %s", cw, c->cert,
                     strerror(errno));
        else
            sl__tls_diag_add(d, "%s: no PEM certificate in %s", cw, c->cert);
        cert_ctx_clear(&peek);
        ERR_clear_error();
        return SL_EINVAL;
    }
    cert_ctx_t *cc = NULL;
    for (size_t g = 0; g < set->n_certs && cc == NULL; g++) {
        cert_ctx_t *o = &set->certs[g];
        if (same_names(o, &peek) && o->key_types[1] == 0 && o->key_types[0] != kt)
            cc = o;
    }
    if (cc) {
        cert_ctx_clear(&peek);
        cc->key_types[1] = kt;
    } else {
        cc = &set->certs[set->n_certs];
        *cc = peek;
        cc->key_types[0] = kt;
        cc->ctx = new_ctx(cfg, li, set->n_certs, set->keys, lwhere, d);
        set->n_certs++;
        if (cc->ctx == NULL)
            return SL_EINVAL;
    }
    if (SSL_CTX_use_certificate_chain_file(cc->ctx, c->cert) != 1) {
        sl__tls_diag_add(d, "%s: cannot use certificate %s: %s", cw, c->cert,
                 sl_tls_error_text(why, sizeof why));
        return SL_EINVAL;
    }
    if (!sl__tls_readable(c->key)) {
        sl__tls_diag_add(d, "%s: cannot read key file %s: %s", kw, c->key, strerror(errno));
        return SL_EINVAL;
    }
    if (SSL_CTX_use_PrivateKey_file(cc->ctx, c->key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(cc->ctx) != 1) {
        sl__tls_diag_add(d, "%s: key %s does not match certificate %s (%s)", kw, c->key, c->cert,
                 sl_tls_error_text(why, sizeof why));
        return SL_EINVAL;
    }
    return 0;
}

static void set_free(sl_tls_set_t *set)
{
    for (size_t i = 0; i < set->n_certs; i++)
        cert_ctx_clear(&set->certs[i]);
    free(set->certs);
    free(set);
}

/* A complete set for listener li, or NULL with the reasons in d. */
static sl_tls_set_t *build_set(const sl_config_t *cfg, size_t li, keyring_t *kr, sl_diag_t *d)
{
    const sl_cfg_listener_t *l = &cfg->listeners[li];
    const sl_cfg_listener_tls_t *t = &l->tls;
    char where[320];
    snprintf(where, sizeof where, "%s:%u:%u: listeners[%zu].tls", cfg->file ? cfg->file : "config",
             l->pos.line, l->pos.col, li);
    sl_tls_set_t *set = calloc(1, sizeof *set);
    if (set == NULL || (set->certs = calloc(t->n_certificates + 1, sizeof *set->certs)) == NULL) {
        free(set);
        sl__tls_diag_add(d, "%s: out of memory", where);
        return NULL;
    }
    atomic_init(&set->refs, 1);
    set->keys = kr;
    set->handshake_timeout = t->handshake_timeout;
    int bad = 0;
    for (size_t ci = 0; ci < t->n_certificates; ci++)
        if (load_cert(set, cfg, li, ci, where, d) != 0)
            bad++;
    if (bad || set->n_certs == 0) {
        set_free(set);
        return NULL;
    }
    SSL_CTX_set_client_hello_cb(set->certs[0].ctx, client_hello_cb, set);
    SSL_CTX_set_tlsext_servername_callback(set->certs[0].ctx, servername_ack);
    return set;
}

/* ---- the registry ---- */

/* Build a set for every TLS listener (with staging keyrings for key files). */
static int build_all(const sl_config_t *cfg, keyring_t **live, sl_tls_set_t **sets,
                     keyring_t **staged, sl_diag_t *d)
{
    int rc = 0;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const sl_cfg_listener_tls_t *t = &cfg->listeners[i].tls;
        if (!t->enabled)
            continue;
        staged[i] = keyring_new(t->ticket_rotate);
        if (staged[i] == NULL) {
            rc = SL_ENOMEM;
            continue;
        }
        char where[400];
        key_where(where, sizeof where, cfg, i, &t->ticket_key_file, "ticket_key_file");
        if (t->ticket_key_file && keyring_load(staged[i], t->ticket_key_file, where, d) != 0)
            rc = SL_EINVAL;
        sets[i] = build_set(cfg, i, live && live[i] ? live[i] : staged[i], d);
        if (sets[i] == NULL)
            rc = SL_EINVAL;
    }
    return rc;
}

static void drop_all(size_t n, sl_tls_set_t **sets, keyring_t **keys)
{
    for (size_t i = 0; i < n; i++) {
        if (sets && sets[i])
            sl_tls_set_unref(sets[i]);
        if (keys)
            keyring_free(keys[i]);
    }
    free(sets);
    free(keys);
}

int sl_tls_check(const sl_config_t *cfg, sl_diag_t *diag)
{
    size_t n = cfg->n_listeners ? cfg->n_listeners : 1;
    sl_tls_set_t **sets = calloc(n, sizeof *sets);
    keyring_t **keys = calloc(n, sizeof *keys);
    size_t np = cfg->n_pools ? cfg->n_pools : 1;
    sl_tls_pool_t **pools = calloc(np, sizeof *pools);
    if (sets == NULL || keys == NULL || pools == NULL) {
        free(sets);
        free(keys);
        free(pools);
        return SL_ENOMEM;
    }
    int rc = build_all(cfg, NULL, sets, keys, diag);
    if (sl__tls_pools_build(cfg, pools, diag) != 0)
        rc = SL_EINVAL;
    drop_all(n, sets, keys);
    sl__tls_pools_drop(np, pools);
    return rc == 0 ? 0 : SL_EINVAL;
}

int sl_tls_init(const sl_config_t *cfg, sl_diag_t *diag)
{
    pthread_mutex_lock(&reg_lock);
    if (reg_built) {
        pthread_mutex_unlock(&reg_lock);
        return 0;
    }
    size_t n = cfg->n_listeners ? cfg->n_listeners : 1;
    size_t np = cfg->n_pools ? cfg->n_pools : 1;
    sl_tls_set_t **sets = calloc(n, sizeof *sets);
    keyring_t **keys = calloc(n, sizeof *keys);
    sl_tls_pool_t **pools = calloc(np, sizeof *pools);
    int rc = sets && keys && pools ? build_all(cfg, NULL, sets, keys, diag) : SL_ENOMEM;
    if (pools && sl__tls_pools_build(cfg, pools, diag) != 0)
        rc = SL_EINVAL;
    if (rc != 0) {
        drop_all(n, sets, keys);
        sl__tls_pools_drop(np, pools);
        pthread_mutex_unlock(&reg_lock);
        return SL_EINVAL;
    }
    reg_sets = sets;
    reg_keys = keys;
    reg_n = cfg->n_listeners;
    reg_pools = pools;
    reg_n_pools = cfg->n_pools;
    reg_built = true;
    pthread_mutex_unlock(&reg_lock);
    sl__tls_pools_warn(cfg);
    return 0;
}

/* Check that a reload may swap: the same listeners, TLS on the same ones. */
static int reload_allowed(const sl_config_t *cfg, sl_diag_t *diag)
{
    if (cfg->n_listeners != reg_n) {
        sl__tls_diag_add(diag, "%s: TLS: the listeners changed (a restart is needed)", cfg->file);
        return SL_EINVAL;
    }
    for (size_t i = 0; i < reg_n; i++)
        if (cfg->listeners[i].tls.enabled != (reg_sets[i] != NULL)) {
            sl__tls_diag_add(diag, "%s: listeners[%zu].tls: turning TLS on or off needs a restart",
                     cfg->file, i);
            return SL_EINVAL;
        }
    return 0;
}

/* Swap the staged keys and sets in; the old sets go back into `sets`. */
static void swap_sets(const sl_config_t *cfg, sl_tls_set_t **sets, keyring_t **staged)
{
    for (size_t i = 0; i < reg_n; i++) {
        if (sets[i] == NULL)
            continue;
        keyring_t *kr = reg_keys[i];
        pthread_mutex_lock(&kr->lock);
        if (cfg->listeners[i].tls.ticket_key_file) {   /* new keys from the file */
            memcpy(kr->keys, staged[i]->keys, sizeof kr->keys);
            kr->n = staged[i]->n;
            kr->from_file = true;
        } else if (kr->from_file) {                     /* back to keys made in memory */
            /* The file's encrypting key still decrypts, as a rotated-out
               one does, for one rotation: tickets issued under it resume
               across this reload (they stopped at once). */
            kr->from_file = false;
            kr->keys[1] = kr->keys[0];
            kr->keys[0] = staged[i]->keys[0];
            kr->n = 2;
            kr->rotated_at = mono_ms();
        }
        kr->rotate = cfg->listeners[i].tls.ticket_rotate;
        pthread_mutex_unlock(&kr->lock);
        sl_tls_set_t *old = reg_sets[i];
        reg_sets[i] = sets[i];
        sets[i] = old;   /* dropped by the caller: connections hold their own references */
    }
}

int sl_tls_reload(const sl_config_t *cfg, sl_diag_t *diag)
{
    pthread_mutex_lock(&reg_lock);
    if (!reg_built) {
        pthread_mutex_unlock(&reg_lock);
        return 0;   /* nothing started yet: the first worker builds from its config */
    }
    size_t n = reg_n ? reg_n : 1;
    size_t np = cfg->n_pools ? cfg->n_pools : 1;
    sl_tls_set_t **sets = calloc(n, sizeof *sets);
    keyring_t **staged = calloc(n, sizeof *staged);
    sl_tls_pool_t **pools = calloc(np, sizeof *pools);
    int rc = sets && staged && pools ? reload_allowed(cfg, diag) : SL_ENOMEM;
    if (rc == 0)
        rc = build_all(cfg, reg_keys, sets, staged, diag);
    if (rc == 0)
        rc = sl__tls_pools_build(cfg, pools, diag);
    if (rc != 0) {
        drop_all(n, sets, staged);
        sl__tls_pools_drop(np, pools);
        pthread_mutex_unlock(&reg_lock);
        return SL_EINVAL;
    }
    swap_sets(cfg, sets, staged);
    sl_tls_pool_t **old_pools = reg_pools;
    size_t old_n_pools = reg_n_pools;
    reg_pools = pools;
    reg_n_pools = cfg->n_pools;
    drop_all(n, sets, staged);
    pthread_mutex_unlock(&reg_lock);
    sl__tls_pools_drop(old_n_pools, old_pools);   /* connections hold their own references */
    sl__tls_pools_warn(cfg);
    size_t n_tls = 0;
    for (size_t i = 0; i < cfg->n_listeners; i++)
        n_tls += cfg->listeners[i].tls.enabled;
    if (n_tls > 0)   /* not said by a gateway with no TLS listener */
        sl_log_info("TLS: certificates reloaded (%zu listener%s)", n_tls, n_tls == 1 ? "" : "s");
    return 0;
}

void sl_tls_cleanup(void)
{
    pthread_mutex_lock(&reg_lock);
    if (reg_built) {
        drop_all(reg_n ? reg_n : 1, reg_sets, reg_keys);
        sl__tls_pools_drop(reg_n_pools, reg_pools);
    }
    reg_sets = NULL;
    reg_keys = NULL;
    reg_n = 0;
    reg_pools = NULL;
    reg_n_pools = 0;
    reg_built = false;
    pthread_mutex_unlock(&reg_lock);
}

sl_tls_pool_t *sl_tls_pool_get(const char *name)
{
    pthread_mutex_lock(&reg_lock);
    sl_tls_pool_t *p = sl__tls_pool_find(reg_pools, reg_n_pools, name);
    pthread_mutex_unlock(&reg_lock);
    return p;
}

sl_tls_set_t *sl_tls_set_get(size_t index)
{
    sl_tls_set_t *set = NULL;
    pthread_mutex_lock(&reg_lock);
    if (index < reg_n && reg_sets[index]) {
        set = reg_sets[index];
        atomic_fetch_add(&set->refs, 1);
    }
    pthread_mutex_unlock(&reg_lock);
    return set;
}

void sl_tls_set_unref(sl_tls_set_t *set)
{
    if (set && atomic_fetch_sub(&set->refs, 1) == 1)
        set_free(set);
}

struct ssl_ctx_st *sl_tls_set_ctx(const sl_tls_set_t *set)
{
    return set->certs[0].ctx;
}

sl_msec_t sl_tls_set_handshake_timeout(const sl_tls_set_t *set)
{
    return set->handshake_timeout;
}
