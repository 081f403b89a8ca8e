/*
 * tls.h: TLS termination on the client side of a session (OpenSSL).
 *
 * Two halves. tls_ctx.c owns the SSL_CTXs: one "set" per TLS listener
 * (certificates chosen by SNI, ECDSA and RSA side by side, ticket keys,
 * session cache), shared by every worker, rebuilt and swapped by
 * sl_tls_reload(). tls.c owns one connection's SSL object: ciphertext read
 * from the socket goes in, plaintext comes out in pool blocks that enter the
 * session exactly as a plain read would, and what the session writes to the
 * client is encrypted into pool blocks that io.c writes to the socket.
 *
 * The session paths (wsrelay.c, httpproxy.c) never see TLS: io.c routes
 * client reads and writes through here when s->tlsc is set.
 *
 * The backend side is the mirror image for pools with `tls: true`: a client
 * SSL_CTX per pool (tls_pool.c, kept in tls_ctx.c's registry) and an SSL
 * object per backend connection (tls.c), whose handshake upstream.c runs
 * after the TCP connect and before it calls sl_session_backend_ready(). io.c
 * routes backend reads and writes through here when SL_UP_TLS(up) is set.
 */
#ifndef SLUICE_NET_TLS_H
#define SLUICE_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "sluice/config.h"
#include "session.h"

typedef struct sl_tls_set sl_tls_set_t;
typedef struct sl_tls_conn sl_tls_conn_t;
typedef struct sl_tls_pool sl_tls_pool_t;
typedef struct sl_tls_up sl_tls_up_t;

/*
 * A backend connection's TLS state, NULL on a plain one. sl_upstream_t
 * (session.h) has no field for it, so the TCP handle's user data carries it;
 * upstream.c finds its upstream from the handles with container_of instead.
 */
#define SL_UP_TLS(up) ((sl_tls_up_t *)(up)->tcp.data)

/* ---- contexts (tls_ctx.c; pools' in tls_pool.c): control thread / start-up ---- */

/*
 * Load every TLS listener's certificates, keys and cipher settings, and
 * every TLS pool's CA file, the way a start would, then drop them. For
 * `sluice --check` and before a reload: a missing file, a key that does not
 * match its certificate, a CA file with no certificate, or a bad cipher
 * string is an error line in `diag` naming the key path and the file.
 * Returns 0, or SL_EINVAL with every error appended to `diag`.
 */
int sl_tls_check(const sl_config_t *cfg, sl_diag_t *diag);

/*
 * Build the contexts of every TLS listener of `cfg` if they are not built
 * yet (the first worker to start does it; later calls return 0 at once).
 * Thread-safe. Returns 0, or SL_EINVAL with the reasons in `diag`.
 */
int sl_tls_init(const sl_config_t *cfg, sl_diag_t *diag);

/*
 * Re-read every TLS listener's certificate, key and ticket key files of
 * `cfg` and swap the new contexts in for NEW connections; connections open
 * now keep the contexts they started with (reference counted), so none is
 * dropped. All or nothing: on any error nothing is swapped and the reasons
 * are in `diag` (SL_EINVAL). In-memory ticket keys survive a reload, so
 * clients resume across it. Thread-safe; call it from the control thread.
 */
int sl_tls_reload(const sl_config_t *cfg, sl_diag_t *diag);

/* Free every context, listeners' and pools' (after the workers ended). Optional. */
void sl_tls_cleanup(void);

/* The current set of listener `index` with a reference, or NULL when not TLS. */
sl_tls_set_t *sl_tls_set_get(size_t index);
void sl_tls_set_unref(sl_tls_set_t *set);
/* The SSL_CTX new connections start on (the first certificate's). */
struct ssl_ctx_st *sl_tls_set_ctx(const sl_tls_set_t *set);
sl_msec_t sl_tls_set_handshake_timeout(const sl_tls_set_t *set);

/* The client context of pool `name` with a reference, or NULL when it has no TLS. */
sl_tls_pool_t *sl_tls_pool_get(const char *name);
void sl_tls_pool_unref(sl_tls_pool_t *pool);
struct ssl_ctx_st *sl_tls_pool_ctx(const sl_tls_pool_t *pool);
/* The last session of `backend` ("host:port") to resume with (a reference the
   caller frees with SSL_SESSION_free), or NULL. */
struct ssl_session_st *sl_tls_pool_session(sl_tls_pool_t *pool, const char *backend);
/* OpenSSL's last error as text in buf (returned), and its error queue cleared. */
const char *sl_tls_error_text(char *buf, size_t len);
/* Forget the session of `backend` (its handshake failed). */
void sl_tls_pool_forget(sl_tls_pool_t *pool, const char *backend);
/*
 * A client SSL on the pool's context for a backend whose configured host is
 * `host`: in connect state, with SNI (pc's tls_sni, else the host, unless it
 * is an address) and, when pc verifies, the name or address checked. No BIO
 * yet. NULL when out of memory. Any thread.
 */
struct ssl_st *sl_tls_pool_new_ssl(sl_tls_pool_t *pool, const sl_cfg_pool_t *pc,
                                   const char *host);

/* ---- one connection (tls.c): worker thread ---- */

/*
 * Begin TLS on a freshly accepted session of listener `index`: the SSL
 * object, its BIOs, the handshake timer (one more pending close on `s`),
 * and one handshake counted against the worker's cap. Returns 0, or a
 * negative code with s->tlsc possibly set: the caller closes the session.
 */
int sl_tls_conn_start(sl_session_t *s, size_t index);

/* Ciphertext read from the client; borrows `b` (takes a reference if it keeps unread bytes). */
void sl_tls_on_read(sl_session_t *s, sl_block_t *b);
/* The client's socket reached EOF or failed. */
void sl_tls_on_eof(sl_session_t *s, int status);

/* Encrypt `len` bytes for the client and queue the ciphertext. 0 or a UV error. */
int sl_tls_write(sl_session_t *s, const void *data, size_t len);

/* Whether ciphertext or plaintext is held that the session has not seen yet. */
bool sl_tls_holds_input(const sl_session_t *s);
/* Reading was resumed: deliver plaintext already decrypted (deferred, never re-entrant). */
void sl_tls_kick(sl_session_t *s);

/* Queue a close_notify alert (before the session half-closes its socket). Idempotent. */
void sl_tls_close_notify(sl_session_t *s);

/* Teardown: close the TLS timer handle with `cb` (h->data = s), count the handshake off. */
void sl_tls_conn_close(sl_session_t *s, void (*cb)(uv_handle_t *));
/* Free the SSL and drop the set (from the session's last close callback). */
void sl_tls_conn_free(sl_session_t *s);

/* ---- one backend connection (tls.c): worker thread ---- */

/*
 * Begin TLS on `up`, just connected to a backend of pool `pc` (which names
 * the SNI and the host to verify): the SSL object, a cached session to
 * resume, and the ClientHello queued. Reading the socket is the caller's
 * (sl__upstream_read_start). `done(up, status)` is called once, later, from
 * a read callback: 0 when the handshake completed (and verified), or a
 * negative UV error when it failed (the reason is logged). Returns 0, or a
 * negative code (then `done` is never called; SL_UP_TLS(up) may be set and
 * sl_tls_up_free() frees it).
 */
int sl_tls_up_start(sl_upstream_t *up, const sl_cfg_pool_t *pc,
                    void (*done)(sl_upstream_t *up, int status));
/* Ciphertext read from the backend; borrows `b` (takes a reference if it keeps unread bytes). */
void sl_tls_up_on_read(sl_upstream_t *up, sl_block_t *b);
/* The backend's socket reached EOF or failed. */
void sl_tls_up_on_eof(sl_upstream_t *up, int status);
/* Encrypt `len` bytes for the backend and queue the ciphertext. 0 or a UV error. */
int sl_tls_up_write(sl_upstream_t *up, const void *data, size_t len);
/* Whether the handshake is still running. */
bool sl_tls_up_handshaking(const sl_upstream_t *up);
/* Whether input is held that the session has not seen yet (plaintext, ciphertext, EOF). */
bool sl_tls_up_holds_input(const sl_upstream_t *up);
/* Queue a close_notify alert before the connection is released for good
   (not after a failure, nor twice). */
void sl_tls_up_close_notify(sl_upstream_t *up);
/* Reading was resumed: deliver held input from a zero timer on up->timer. */
void sl_tls_up_kick(sl_upstream_t *up);
/* Free the SSL and the pool reference (from the upstream's last close callback). */
void sl_tls_up_free(sl_upstream_t *up);
/* up->backend moved to another runtime (migrate.c): the session cache's key,
   which points at the backend's name in its runtime's config, follows. */
void sl_tls_up_renamed(sl_upstream_t *up);
/* Made under the pool's TLS context in force (every reload builds new ones):
   only then may an idle connection carry a new exchange. True when plain. */
bool sl_tls_up_current(const sl_upstream_t *up, const char *pool);

/* ---- hooks into io.c and listener.c ---- */

/* io.c: write a ciphertext block to the client's socket as it is (takes a reference). */
int sl__client_write_raw(sl_session_t *s, sl_block_t *b);
/* io.c: write a ciphertext block to the backend as it is (takes a reference); works idle. */
int sl__backend_write_raw(sl_upstream_t *up, sl_block_t *b);
/* io.c: start reading the backend socket (the handshake, or an idle connection). */
void sl__upstream_read_start(sl_upstream_t *up);
/* upstream.c, for io.c: an unconfirmed connection took a write or gave bytes: it is up. */
void sl__upstream_confirm(sl_upstream_t *up);
/* upstream.c, for io.c: an unconfirmed connection failed before that: a connect failure. */
void sl__upstream_unconfirmed_failed(sl_upstream_t *up, int status);
/* io.c: whether reading the client is wanted now (not paused, not closing, no EOF). */
bool sl__client_wants_data(const sl_session_t *s);
/* listener.c: a handshake ended; resume TLS listeners paused by the handshake cap. */
void sl_listeners_tls_resume(sl_worker_t *w);

#endif
