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
 */
#ifndef SLUICE_NET_TLS_H
#define SLUICE_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "sluice/config.h"
#include "session.h"

typedef struct sl_tls_set sl_tls_set_t;
typedef struct sl_tls_conn sl_tls_conn_t;

/* ---- contexts (tls_ctx.c): control thread / start-up ---- */

/*
 * Load every TLS listener's certificates, keys and cipher settings the way a
 * start would, then drop them. For `sluice --check` and before a reload: a
 * missing file, a key that does not match its certificate, or a bad cipher
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

/* Free every context (after the workers ended). Optional: for leak checkers. */
void sl_tls_cleanup(void);

/* The current set of listener `index` with a reference, or NULL when not TLS. */
sl_tls_set_t *sl_tls_set_get(size_t index);
void sl_tls_set_unref(sl_tls_set_t *set);
/* The SSL_CTX new connections start on (the first certificate's). */
struct ssl_ctx_st *sl_tls_set_ctx(const sl_tls_set_t *set);
sl_msec_t sl_tls_set_handshake_timeout(const sl_tls_set_t *set);

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

/* ---- hooks into io.c and listener.c ---- */

/* io.c: write a ciphertext block to the client's socket as it is (takes a reference). */
int sl__client_write_raw(sl_session_t *s, sl_block_t *b);
/* io.c: whether reading the client is wanted now (not paused, not closing, no EOF). */
bool sl__client_wants_data(const sl_session_t *s);
/* listener.c: a handshake ended; resume TLS listeners paused by the handshake cap. */
void sl_listeners_tls_resume(sl_worker_t *w);

#endif
