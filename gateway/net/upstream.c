/*
 * upstream.c: connections to backends — pick, connect with a timeout, retry
 * another backend on failure, and keep HTTP connections alive for reuse.
 *
 * A failed connect counts against the backend (the health machinery reads
 * consecutive_failures) and the session tries another backend of the same
 * pool, at most connect_retries more times, before answering 502 (or 503
 * when no backend of the pool is up at all).
 *
 * Kept-alive connections wait in a per-worker list, read while idle so that
 * a backend closing one is noticed at once, and are reused by the next HTTP
 * request to the same backend. WebSocket sessions always get a fresh one.
 *
 * A pool with `tls: true` adds one step: after the TCP connect, the TLS
 * handshake (tls.c), still under the connect timeout, and only then is the
 * backend "connected" and the session told it is ready. A failed handshake or
 * a certificate that does not verify is a connect failure like a refused
 * connection: counted, reported for passive ejection, and the next backend is
 * tried. A kept-alive connection keeps its TLS session with it.
 *
 * A WebSocket upgrade to a plain pool does not wait a loop iteration for its
 * connect to complete: the socket is connected by hand and the request
 * written at once (HAProxy does the same). To a backend on the same host the
 * connect is done by the time connect() returns, so the request leaves in the
 * iteration that dispatched the client; elsewhere the kernel holds the write
 * until the connect completes. The connection is "unconfirmed" until the
 * kernel takes the request (a socket still connecting refuses writes) or the
 * backend answers; an error or the connect timeout before that is a connect
 * failure, counted and retried as any other, and the session goes back to
 * CONNECTING (its request is rebuilt from the head for the next backend).
 * Plain HTTP waits for the connect: its body streams from the client as it
 * comes and could not be sent to a second backend.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice/balance.h"
#include "sluice/log.h"
#include "session.h"
#include "tls.h"

/* The most kept-alive connections a worker holds, and how long one may idle. */
#define MAX_IDLE_UPSTREAMS 256
#define IDLE_UPSTREAM_MS 30000


static void upstream_closed(sl_upstream_t *up)
{
    if (--up->pending_closes > 0)
        return;
    sl_tls_up_free(up);
    if (up->counted_active)
        atomic_fetch_sub(&up->backend->state->active, 1);
    sl_runtime_unref(up->rt);
    sl_slab_free(&up->worker->upstream_slab, up);
}

/* The TCP handle's data is the TLS state (tls.h), so both find up by position. */
static void tcp_closed(uv_handle_t *h)
{
    upstream_closed(sl_container_of((uv_tcp_t *)h, sl_upstream_t, tcp));
}

static void timer_closed(uv_handle_t *h)
{
    upstream_closed(sl_container_of((uv_timer_t *)h, sl_upstream_t, timer));
}

static void upstream_close(sl_upstream_t *up)
{
    if (up->closing)
        return;
    up->closing = true;
    up->session = NULL;
    uv_timer_stop(&up->timer);
    uv_close((uv_handle_t *)&up->timer, timer_closed);
    uv_close((uv_handle_t *)&up->tcp, tcp_closed);
}

static void unlink_idle(sl_worker_t *w, sl_upstream_t *up)
{
    for (sl_upstream_t **p = &w->idle_upstreams; *p; p = &(*p)->next_idle) {
        if (*p == up) {
            *p = up->next_idle;
            up->next_idle = NULL;
            w->n_idle_upstreams--;
            return;
        }
    }
}

void sl_upstream_drop_idle(sl_upstream_t *up)
{
    unlink_idle(up->worker, up);
    if (SL_UP_TLS(up) && !up->write_failed)
        sl_tls_up_close_notify(up);   /* an idle one is between exchanges: a clean end */
    upstream_close(up);
}

void sl_upstream_close_idle_to(sl_worker_t *w, const sl_backend_shared_t *backend)
{
    for (sl_upstream_t *up = w->idle_upstreams, *next; up; up = next) {
        next = up->next_idle;
        if (up->backend->state == backend)
            sl_upstream_drop_idle(up);
    }
}

void sl_upstream_close_idle(sl_worker_t *w)
{
    while (w->idle_upstreams)
        sl_upstream_drop_idle(w->idle_upstreams);
}

/* The key a hash balancer sticks on, made when the request was routed. */
static size_t hash_key(sl_session_t *s, const uint8_t **key)
{
    *key = NULL;
    if (s->hash_pool < 0)
        return 0;
    *key = (const uint8_t *)&s->hash_key;
    return sizeof s->hash_key;
}

/*
 * Ask this worker's balancer of the pool for a backend that is up and not
 * yet tried by this session. Sessions of an older runtime (before a reload)
 * pick in their own runtime with no balancer state: least connections.
 */
/* Up, not drained through the API, with a weight: what a worker may pick
   (the control thread's twin, on its health machines: sl_ctl_backend_takes_connections). */
static bool takes_connections(const sl_backend_rt_t *b)
{
    return atomic_load_explicit(&b->state->up, memory_order_relaxed) &&
           !atomic_load_explicit(&b->state->admin_drain, memory_order_relaxed) &&
           b->cfg->weight > 0;
}

static long pick_backend(sl_session_t *s)
{
    sl_pool_rt_t *pool = &s->rt->pools[s->pool];
    size_t n = pool->n_backends;
    if (n == 0 || n > SL_MAX_POOL_BACKENDS)
        return -1;
    sl_backend_state_t states[SL_MAX_POOL_BACKENDS];
    uint64_t excluded[SL_BALANCER_BITMAP_WORDS(SL_MAX_POOL_BACKENDS)] = {0};
    for (size_t i = 0; i < n; i++) {
        states[i].active = atomic_load_explicit(&pool->backends[i].state->active,
                                                memory_order_relaxed);
        states[i].up = takes_connections(&pool->backends[i]);
    }
    for (size_t k = 0; k < s->tries && k < SL_ARRAY_SIZE(s->tried); k++)
        sl_bitmap_set(excluded, s->tried[k]);
    const uint8_t *key;
    size_t key_len = hash_key(s, &key);
    sl_balancer_t *b = s->rt == s->w->rt ? s->w->balancers[s->pool] : NULL;
    if (s->hash_pool != s->pool)
        key_len = 0;   /* the key was made for another pool's hash_by */
    if (b == NULL) {
        long best = -1;
        for (size_t i = 0; i < n; i++)
            if (states[i].up && !sl_bitmap_test(excluded, i) &&
                (best < 0 || states[i].active < states[best].active))
                best = (long)i;
        return best;
    }
    int i = sl_balancer_pick(b, states, n, key, key_len, excluded);
    return i < 0 ? -1 : i;
}

/* Some backend of the pool could take a connection. None: the pool is
   down, a 503 with Retry-After, not a 502 (no backend answered). */
static bool pool_has_up_backend(sl_session_t *s)
{
    sl_pool_rt_t *pool = &s->rt->pools[s->pool];
    for (size_t i = 0; i < pool->n_backends; i++)
        if (takes_connections(&pool->backends[i]))
            return true;
    return false;
}

static void try_connect(sl_session_t *s);

/* A backend socket: non-blocking, with TCP_NODELAY. */
static int backend_socket(int family)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0)
        return -1;
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* An upgrade's request is written right after connect(), so its socket
   leaves quick-ack mode first: the kernel then holds back the handshake's
   last ACK and the request carries it. The backend's kernel completes the
   handshake and has the request in one segment: one packet and, without
   defer-accept on the backend, one wake-up less per upgrade. */
static void delay_acks(sl_upstream_t *up, int fd)
{
    int zero = 0;
    up->acks_delayed = setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof zero) == 0;
}

/* Once the request has gone, back to quick ACKs, as a fresh connection has
   them: data sent this soon after the handshake otherwise leaves the socket
   delaying its ACKs (the kernel takes it for a request-response exchange),
   and a backend that writes its 101 and its first message apart, with
   Nagle's algorithm on, would wait 40 ms for the ACK of the 101. */
static void quick_acks_again(sl_upstream_t *up)
{
    int fd, one = 1;
    if (up->acks_delayed && uv_fileno((const uv_handle_t *)&up->tcp, &fd) == 0)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    up->acks_delayed = false;
}

/* Tell the control thread how a real connect went, for passive ejection. */
static void report(sl_session_t *s, sl_upstream_t *up, bool ok)
{
    if (s->rt->cfg->pools[s->pool].health.passive_failures == 0)
        return;
    sl_cmsg_t *m = calloc(1, sizeof *m);
    if (m == NULL)
        return;
    m->type = SL_CMSG_CONN_RESULT;
    m->worker = s->w->id;
    m->generation = s->rt->generation;
    m->pool = s->pool;
    m->backend = up->backend - s->rt->pools[s->pool].backends;
    m->ok = ok;
    sl_control_post(s->w->gw, m);
}

/* Another try, on the next backend, while the pool's connect_retries allow. */
static bool try_again(sl_session_t *s)
{
    if (s->tries > s->rt->cfg->pools[s->pool].connect_retries)
        return false;
    try_connect(s);
    return true;
}

static void connect_failed(sl_session_t *s, int status)
{
    sl_upstream_t *up = s->up;
    if (up->unconfirmed) {
        up->unconfirmed = false;
        sl_ws_backend_unready(s);
    }
    sl_backend_shared_t *st = up->backend->state;
    atomic_fetch_add(&st->connect_failures, 1);
    atomic_fetch_add(&st->handshake_failures, 1);
    atomic_fetch_add(&st->consecutive_failures, 1);
    sl_count(&s->w->counters, SL_CTR_BACKEND_CONNECT_FAILURES, 1);
    if (SL_UP_TLS(up) == NULL || status == UV_ETIMEDOUT)   /* else tls.c said why */
        sl_log_warn("backend %s: connect failed: %s", up->backend->name, uv_strerror(status));
    report(s, up, false);
    s->up = NULL;
    upstream_close(up);
    if (!try_again(s))
        sl_session_backend_failed(s, 502);
}

static void on_connect_timeout(uv_timer_t *t)
{
    sl_upstream_t *up = sl_container_of(t, sl_upstream_t, timer);
    sl_session_t *s = up->session;
    if (s)
        connect_failed(s, UV_ETIMEDOUT);
}

/* The connect is known to have succeeded: count it, tell passive health.
   A request written at once has been taken by the kernel by now. */
static void connect_succeeded(sl_session_t *s, sl_upstream_t *up)
{
    uv_timer_stop(&up->timer);
    quick_acks_again(up);
    up->unconfirmed = false;
    sl_backend_shared_t *st = up->backend->state;
    atomic_store(&st->consecutive_failures, 0);
    atomic_fetch_add(&st->connects, 1);
    report(s, up, true);
}

/* TCP (and TLS, if the pool wants it) is up: the backend is ready. */
static void backend_connected(sl_session_t *s, sl_upstream_t *up)
{
    up->connected = true;
    connect_succeeded(s, up);
    sl_session_backend_ready(s);
}

void sl__upstream_confirm(sl_upstream_t *up)
{
    if (up->unconfirmed && up->session && !up->closing)
        connect_succeeded(up->session, up);
}

void sl__upstream_unconfirmed_failed(sl_upstream_t *up, int status)
{
    if (up->unconfirmed && up->session && !up->closing)
        connect_failed(up->session, status);
}

/* connect(2) by hand, so the request can be written before the connect completes. */
static int connect_now(sl_upstream_t *up, const struct sockaddr *addr)
{
    int fd = backend_socket(addr->sa_family);
    if (fd < 0)
        return uv_translate_sys_error(errno);
    delay_acks(up, fd);
    socklen_t len = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                : sizeof(struct sockaddr_in);
    int r;
    do
        r = connect(fd, addr, len);
    while (r < 0 && errno == EINTR);
    int rc = r < 0 && errno != EINPROGRESS ? uv_translate_sys_error(errno)
                                           : uv_tcp_open(&up->tcp, fd);
    if (rc != 0)
        close(fd);
    return rc;
}

/* tls.c: the backend handshake ended (0), or failed (the reason is logged). */
static void tls_done(sl_upstream_t *up, int status)
{
    sl_session_t *s = up->session;
    if (up->closing || s == NULL)
        return;
    if (status < 0)
        connect_failed(s, status);
    else
        backend_connected(s, up);
}

static void on_connect(uv_connect_t *req, int status)
{
    sl_upstream_t *up = req->data;
    free(req);
    sl_session_t *s = up->session;
    if (up->closing || s == NULL)
        return;   /* timed out or abandoned; the close is under way */
    if (status < 0) {
        uv_timer_stop(&up->timer);
        connect_failed(s, status);
        return;
    }
    const sl_cfg_pool_t *pc = &s->rt->cfg->pools[s->pool];
    if (!pc->tls) {
        backend_connected(s, up);
        return;
    }
    /* The handshake runs under what is left of the connect timeout. */
    int rc = sl_tls_up_start(up, pc, tls_done);
    if (rc < 0) {
        uv_timer_stop(&up->timer);
        sl_log_warn("backend %s: cannot start TLS: %s", up->backend->name,
                    rc == SL_ENOENT ? "the pool has no TLS context (reloaded?)" : "error");
        connect_failed(s, UV_EPROTO);
        return;
    }
    sl__upstream_read_start(up);
}

/* libuv's connect: on_connect runs when it completes. */
static int connect_uv(sl_upstream_t *up, const struct sockaddr *addr)
{
    uv_connect_t *req = malloc(sizeof *req);
    if (req == NULL)
        return UV_ENOMEM;
    req->data = up;
    int fd = backend_socket(addr->sa_family);
    int rc = fd < 0 ? uv_translate_sys_error(errno) : uv_tcp_open(&up->tcp, fd);
    if (rc == 0)
        rc = uv_tcp_connect(req, &up->tcp, addr, on_connect);
    else if (fd >= 0)
        close(fd);
    if (rc < 0)
        free(req);
    return rc;
}

/*
 * A backend socket could not even be made. That is not the backend's
 * failure: counting it as one (consecutive failures, passive health) ejected
 * healthy backends, so every client got 503 for passive_eject after the
 * shortage was over, and the log blamed the backend. Trying the next backend
 * would meet the same shortage. The client gets 503 with a Retry-After (the
 * shortage is ours and passing), and the listeners pause and free what idles
 * (listener.c), so the backlog waits instead of meeting the same.
 */
/* A shortage of ours passes: the client may come back in a second. */
#define SHORT_RETRY_AFTER "Retry-After: 1\r\n"

static void gateway_short(sl_session_t *s, int status)
{
    sl_upstream_t *up = s->up;
    s->up = NULL;
    upstream_close(up);
    sl_listeners_short(s->w, "backend socket", status);
    sl_session_http_error(s, 503, SHORT_RETRY_AFTER);
}

/*
 * No local port is left toward this backend: connect(2) says EADDRNOTAVAIL
 * when every ephemeral port is taken (or in TIME_WAIT) for this destination.
 * That is ours too, not the backend's, so it is not counted against it
 * (counted, it could get the backend ejected). Accepting goes on, since an
 * accept takes no port; another backend of the pool is another destination
 * with ports of its own, so the next try goes on as after a failed connect,
 * and when the tries are spent the client gets 503 with a Retry-After. The
 * log says so once a second at most: in such a shortage every upgrade meets it.
 */
static void ports_short(sl_session_t *s, int status)
{
    static _Thread_local sl_msec_t logged_at;
    static _Thread_local bool logged;
    sl_upstream_t *up = s->up;
    sl_msec_t now = uv_now(&s->w->loop);
    sl_count(&s->w->counters, SL_CTR_BACKEND_PORT_SHORTAGES, 1);
    if (!logged || now - logged_at >= 1000) {
        logged = true;
        logged_at = now;
        sl_log_warn("backend %s: no local port left to connect from (%s); "
                    "widen net.ipv4.ip_local_port_range or add backend addresses",
                    up->backend->name, uv_strerror(status));
    }
    s->up = NULL;
    upstream_close(up);
    s->port_short = true;
    if (!try_again(s))
        sl_session_http_error(s, 503, SHORT_RETRY_AFTER);
}

/*
 * A kept-alive connection to b for a new exchange. A TLS one is reused only
 * under the pool's TLS settings in force: made before a reload that turned
 * verification on, or changed the CA or SNI, it is closed instead (it was
 * reused, unverified, for as long as it stayed busy).
 */
static sl_upstream_t *take_idle(sl_worker_t *w, sl_backend_rt_t *b, bool tls, const char *pool)
{
    for (sl_upstream_t *up = w->idle_upstreams, *next; up; up = next) {
        next = up->next_idle;
        if (up->backend->state != b->state || (SL_UP_TLS(up) != NULL) != tls)
            continue;
        if (tls && !sl_tls_up_current(up, pool)) {
            sl_upstream_drop_idle(up);
            continue;
        }
        unlink_idle(w, up);
        return up;
    }
    return NULL;
}

void sl_upstream_follow(sl_upstream_t *up, sl_runtime_t *rt, sl_backend_rt_t *b)
{
    sl_runtime_t *old = up->rt;
    up->rt = sl_runtime_ref(rt);
    up->backend = b;
    sl_tls_up_renamed(up);
    sl_runtime_unref(old);
}

static void try_connect(sl_session_t *s)
{
    long i = pick_backend(s);
    if (i < 0 && s->port_short) {   /* every backend left was out of ports */
        sl_session_http_error(s, 503, SHORT_RETRY_AFTER);
        return;
    }
    if (i < 0) {
        sl_session_backend_failed(s, pool_has_up_backend(s) ? 502 : 503);
        return;
    }
    sl_backend_rt_t *b = &s->rt->pools[s->pool].backends[i];
    if (s->tries < SL_ARRAY_SIZE(s->tried))
        s->tried[s->tries] = (uint16_t)i;
    s->tries++;

    if (s->state == SL_SS_HTTP || s->state == SL_SS_CONNECTING) {
        bool tls = s->rt->cfg->pools[s->pool].tls;
        sl_upstream_t *idle =
            s->state == SL_SS_HTTP && !s->fresh_only
                ? take_idle(s->w, b, tls, s->rt->cfg->pools[s->pool].name) : NULL;
        s->up_reused = idle != NULL;
        if (idle) {
            /* Opened under another config, it follows its new exchange's (b
               shares its state), or a connection kept busy would hold the
               config it was opened under for as long, and the access log
               could not name its backend (sl_session_backend_ready). */
            if (idle->rt != s->rt)
                sl_upstream_follow(idle, s->rt, b);
            atomic_fetch_add(&idle->backend->state->active, 1);
            idle->counted_active = true;
            idle->session = s;
            s->up = idle;
            uv_timer_stop(&idle->timer);
            sl_count(&s->w->counters, SL_CTR_BACKEND_REUSED, 1);
            sl_session_backend_ready(s);
            return;
        }
    }

    sl_upstream_t *up = sl_slab_alloc(&s->w->upstream_slab);
    if (up == NULL) {
        sl_session_backend_failed(s, 502);
        return;
    }
    up->worker = s->w;
    up->session = s;
    up->rt = sl_runtime_ref(s->rt);
    up->backend = b;
    uv_tcp_init(&s->w->loop, &up->tcp);
    uv_timer_init(&s->w->loop, &up->timer);
    up->tcp.data = NULL;   /* the TLS state, once there is one (tls.h) */
    up->timer.data = up;
    up->pending_closes = 2;
    atomic_fetch_add(&b->state->active, 1);
    up->counted_active = true;
    s->up = up;
    /* An upgrade to a plain pool writes its request at once (see the top). */
    bool write_at_once = s->ws_key_len && !s->rt->cfg->pools[s->pool].tls;
    int rc = write_at_once ? connect_now(up, (struct sockaddr *)&b->addr)
                           : connect_uv(up, (struct sockaddr *)&b->addr);
    if (rc < 0 && sl_out_of_resources(rc)) {
        gateway_short(s, rc);
        return;
    }
    if (rc == UV_EADDRNOTAVAIL) {
        ports_short(s, rc);
        return;
    }
    if (rc < 0) {
        connect_failed(s, rc);
        return;
    }
    /* Reading starts with the connect, so the socket is registered once for
       both interests: a read started after libuv's connect completes (libuv
       drops the write interest then) re-registers it with two more epoll_ctl
       calls, on every upgrade. Nothing arrives before the request has gone
       out: libuv hands the first event to the connect, and the request is
       written in its callback, or here, below, when written at once. */
    sl__upstream_read_start(up);
    uv_timer_start(&up->timer, on_connect_timeout, s->rt->cfg->timeouts.connect, 0);
    if (!write_at_once)
        return;
    up->connected = true;
    up->unconfirmed = true;
    sl_session_backend_ready(s);
    /* All of it taken at once: the connection is established. */
    if (s->up == up && up->unconfirmed && s->state != SL_SS_CLOSING && sl_queued(s, false) == 0)
        connect_succeeded(s, up);
}

void sl_upstream_connect(sl_session_t *s)
{
    s->tries = 0;
    s->port_short = false;
    try_connect(s);
}

static void on_idle_timeout(uv_timer_t *t)
{
    sl_upstream_t *up = sl_container_of(t, sl_upstream_t, timer);
    sl_upstream_drop_idle(up);
}

/*
 * Lingering close. close(2) on a socket with unread input makes Linux send a
 * reset at once, and a reset throws away what the socket still had to send:
 * the last frames a client sent and the close that follows them, when the
 * backend was busy writing (its bytes unread here) and slow to read (ours
 * unsent). So a released connection with bytes still on their way is shut
 * down for writing instead (after libuv's queue, with a FIN behind it), read
 * and its input dropped until the backend closes too, and closed then, or
 * after LINGER_MS at the latest.
 */
#define LINGER_MS 5000

/* Bytes libuv still holds, or the kernel has not sent yet (the peer's window
   is full); sent ones, acknowledged or not, are the peer's already. */
static bool bytes_unsent(sl_upstream_t *up)
{
    if (uv_stream_get_write_queue_size((uv_stream_t *)&up->tcp) > 0)
        return true;
    uv_os_fd_t fd;
    int queued = 0;
    return uv_fileno((uv_handle_t *)&up->tcp, &fd) == 0 && ioctl(fd, SIOCOUTQNSD, &queued) == 0 &&
           queued > 0;
}

static void on_linger_timeout(uv_timer_t *t)
{
    upstream_close(sl_container_of(t, sl_upstream_t, timer));
}

static void on_linger_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;   /* an error ends it like the timeout; the close follows either way */
    free(req);
}

void sl__upstream_linger_read(sl_upstream_t *up, ssize_t nread)
{
    if (nread < 0)
        upstream_close(up);
}

/* Detached from its session: read and drop what comes, close at the
   backend's end or after ms (backend_read_cb, sl__upstream_linger_read). */
static void linger_read(sl_upstream_t *up, sl_msec_t ms)
{
    up->lingering = true;
    up->session = NULL;
    sl__upstream_read_start(up);
    uv_timer_start(&up->timer, on_linger_timeout, ms, 0);
}

static void upstream_linger(sl_upstream_t *up)
{
    uv_shutdown_t *req = malloc(sizeof *req);
    if (req == NULL || uv_shutdown(req, (uv_stream_t *)&up->tcp, on_linger_shutdown) != 0) {
        free(req);
        upstream_close(up);
        return;
    }
    linger_read(up, LINGER_MS);
}

/*
 * RFC 6455 7.1.1: after the close handshake the server closes the TCP
 * connection first, so that it, not the client, holds TIME_WAIT. To the
 * backend the gateway is the client: closing at once when the backend's
 * close frame arrived left about one connection in five in TIME_WAIT on our
 * side (its FIN not read yet), each holding a local port toward that backend
 * for a minute, and ports toward one backend address are what a busy
 * gateway runs out of. So the connection waits, read and its input dropped,
 * for the backend's end (then our close is the passive one), for
 * CLOSE_WAIT_MS at most.
 */
#define CLOSE_WAIT_MS 2000

void sl_upstream_release_after_close(sl_session_t *s)
{
    sl_upstream_t *up = s->up;
    if (up == NULL)
        return;
    /* Shutting down, the worker does not wait on backends that are slow to close. */
    if (!up->connected || up->closing || up->read_eof || up->write_failed || s->w->stopping ||
        uv_stream_get_write_queue_size((uv_stream_t *)&up->tcp) > 0) {
        sl_upstream_release(s, false);
        return;
    }
    s->up = NULL;
    if (SL_UP_TLS(up))
        sl_tls_up_close_notify(up);
    linger_read(up, CLOSE_WAIT_MS);
}

void sl_upstream_release(sl_session_t *s, bool reusable)
{
    sl_upstream_t *up = s->up;
    if (up == NULL)
        return;
    s->up = NULL;
    sl_worker_t *w = s->w;
    if (!reusable || !up->connected || up->closing || up->write_failed || w->stopping ||
        uv_stream_get_write_queue_size((uv_stream_t *)&up->tcp) > 0 ||
        (SL_UP_TLS(up) && sl_tls_up_holds_input(up)) ||
        w->n_idle_upstreams >= MAX_IDLE_UPSTREAMS) {
        /* A TLS connection says it is done first (its close_notify goes
           out behind what is queued), so the backend reads a clean end. */
        if (up->connected && !up->closing && SL_UP_TLS(up))
            sl_tls_up_close_notify(up);
        if (up->connected && !up->closing && bytes_unsent(up))
            upstream_linger(up);
        else
            upstream_close(up);
        return;
    }
    up->session = NULL;
    /* An idle connection is no load: least_conn counted kept-alive ones as
       active, and sent fewer exchanges to the backend that kept more. */
    if (up->counted_active) {
        atomic_fetch_sub(&up->backend->state->active, 1);
        up->counted_active = false;
    }
    up->next_idle = w->idle_upstreams;
    w->idle_upstreams = up;
    w->n_idle_upstreams++;
    uv_timer_start(&up->timer, on_idle_timeout, IDLE_UPSTREAM_MS, 0);
    sl_upstream_watch_idle(up);
}
