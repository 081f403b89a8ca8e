/*
 * listener.c: listening sockets, one per listener per worker, and accepting.
 *
 * Each worker has its own socket bound with SO_REUSEPORT, so the kernel
 * spreads new connections over the workers with no shared accept lock.
 * libuv 1.44 has no flag for SO_REUSEPORT, and its uv_listen offers no way
 * to pause accepting, so we create the sockets ourselves and watch them with
 * uv_poll_t: accepting can then stop and resume at will. That is how the
 * gateway behaves when file descriptors run out or the connection cap is
 * reached: it stops accepting (new clients wait in the kernel's backlog),
 * keeps serving the connections it has, and tries again shortly.
 *
 * TLS listeners pause the same way when the worker has max_handshakes TLS
 * handshakes in progress, and resume when enough of them end. We pause
 * rather than accept-and-close: a closed connection costs an accept and a
 * reset, and the client retries at once, feeding the storm; a connection
 * left in the backlog costs nothing and gets its handshake in order. Plain
 * listeners of the worker keep accepting meanwhile.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice/log.h"
#include "session.h"
#include "tls.h"

/*
 * Accepts per loop turn. Each accept runs a connection's whole first step at
 * once (read the head, route, connect, write the request), about 35 us per
 * upgrade, while the backends' answers that arrived meanwhile wait for the
 * next turn: 64 in a row keep them waiting about 2 ms (64 x 35 us). 4 keep a
 * turn short, for an epoll_wait more that returns at once (the listener stays
 * readable).
 * Measured in bench/RESULTS.md (notes): with 50 handshakes in flight, 11,800
 * -> 14,200 upgrades/s (medians of 4), the same CPU per upgrade.
 */
#define ACCEPT_BATCH 4
/* How soon to try again after a pause. */
#define ACCEPT_RETRY_MS 100
/* Idle kept-alive clients one pause may close for those waiting (nginx
   frees 32 reusable connections the same way). */
#define RECLAIM_BATCH 32

/* A shortage of descriptors (or kernel memory) is logged at its start and
   its end, not at every retry (ten lines a second for as long as it lasted):
   one (is_short) began at short_since and was last met at short_last; it is
   over after SHORT_QUIET_MS without one. Per thread: a worker's listeners
   and sessions run on its own thread only. */
#define SHORT_QUIET_MS 1000
static _Thread_local bool is_short;
static _Thread_local sl_msec_t short_since, short_last;

/* The listener's address as a socket address: numeric, or resolved once. */
static int listener_addr(const sl_cfg_listener_t *l, struct sockaddr_storage *out,
                         socklen_t *outlen, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    const char *host = l->address.host;
    if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(l->address.port);
        len = sizeof *a;
    } else if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(l->address.port);
        len = sizeof *a;
    } else {
        char rerr[256];
        if (sl_resolve(host, l->address.port, &ss, &len, rerr, sizeof rerr) != 0) {
            snprintf(err, errlen, "listener %s: %s", l->address.text, rerr);
            return -1;
        }
    }
    *out = ss;
    *outlen = len;
    return 0;
}

/*
 * Is anyone listening on the address already? Our own sockets set
 * SO_REUSEPORT so the workers can share a port, and the kernel lets any
 * socket of the same user that sets it join: a second sluice started by
 * mistake, or a config whose "localhost:8080" and "127.0.0.1:8080" name one
 * address, would bind without an error and take a share of the clients.
 * A socket without SO_REUSEPORT cannot bind beside a listening one (with
 * SO_REUSEADDR, connections in TIME_WAIT do not count), so one such bind
 * before ours tells: EADDRINUSE means the port is taken. Returns 0 or the
 * errno, with err written.
 */
static int probe_free(const sl_cfg_listener_t *l, const struct sockaddr_storage *ss,
                      socklen_t len, char *err, size_t errlen)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "listener %s: socket: %s", l->address.text, strerror(e));
        return e;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss->ss_family == AF_INET6)   /* as ours: [::] must not clash with 0.0.0.0 */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    int rc = bind(fd, (const struct sockaddr *)ss, len);
    int e = errno;
    close(fd);
    if (rc == 0)
        return 0;
    snprintf(err, errlen, "listener %s: %s", l->address.text, strerror(e));
    return e;
}

static uv_os_sock_t open_one(const sl_cfg_listener_t *l, const struct sockaddr_storage *addr,
                             socklen_t len, char *err, size_t errlen)
{
    struct sockaddr_storage ss = *addr;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "listener %s: socket: %s", l->address.text, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    /* Accepted sockets inherit TCP_NODELAY: one setsockopt per listener
       instead of one per connection. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
        snprintf(err, errlen, "listener %s: TCP_NODELAY: %s", l->address.text, strerror(errno));
        close(fd);
        return -1;
    }
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    /* Every protocol we serve has the client speak first (HTTP, a TLS
       ClientHello, a PROXY header), so the kernel can hold a new connection
       until its first bytes arrive: one wake-up per connection instead of
       two, no read that finds nothing, and a silent connection costs no
       descriptor. The kernel counts whole seconds. */
    int defer = (int)((l->defer_accept + 999) / 1000);
    if (defer > 0 && setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof defer) != 0) {
        snprintf(err, errlen, "listener %s: TCP_DEFER_ACCEPT: %s", l->address.text, strerror(errno));
        close(fd);
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, (int)l->backlog) != 0) {
        snprintf(err, errlen, "listener %s: %s", l->address.text, strerror(errno));
        close(fd);
        return -1;
    }
    /* The client's first bytes are answered at once (a 101, a response, the
       server's TLS flight), so the kernel need not acknowledge them on its
       own: out of quick-ack mode, the ACK rides on the answer, one packet
       less per connection for both ends. Set after listen(), which resets
       the flag; accepted sockets inherit it, and the kernel leaves it by
       itself once a delayed ACK has to go out alone. */
    int zero = 0;
    if (l->delayed_ack && setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof zero) != 0) {
        snprintf(err, errlen, "listener %s: TCP_QUICKACK: %s", l->address.text, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Would a connection to one of the addresses reach the other's socket: the
   same family and port, and the same address or a wildcard on either side. */
static bool addrs_overlap(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;   /* IPv6 listeners are IPv6-only */
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port &&
               (x->sin_addr.s_addr == y->sin_addr.s_addr || x->sin_addr.s_addr == INADDR_ANY ||
                y->sin_addr.s_addr == INADDR_ANY);
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port &&
           (IN6_ARE_ADDR_EQUAL(&x->sin6_addr, &y->sin6_addr) ||
            IN6_IS_ADDR_UNSPECIFIED(&x->sin6_addr) || IN6_IS_ADDR_UNSPECIFIED(&y->sin6_addr));
}

/* The probe of listener li found its address taken: by an earlier listener
   of this config (the same address under another name, or a wildcard that
   covers it), or by someone else. */
static void explain_in_use(const sl_config_t *cfg, const struct sockaddr_storage *addrs,
                           size_t li, char *err, size_t errlen)
{
    const sl_cfg_listener_t *l = &cfg->listeners[li];
    for (size_t j = 0; j < li; j++) {
        if (addrs_overlap(&addrs[j], &addrs[li])) {
            snprintf(err, errlen, "listener %s: the same address as listeners[%zu] (%s, at "
                     "%u:%u); expected an address of its own", l->address.text, j,
                     cfg->listeners[j].address.text, cfg->listeners[j].address.pos.line,
                     cfg->listeners[j].address.pos.col);
            return;
        }
    }
    snprintf(err, errlen, "listener %s: address already in use: another process listens "
             "there (another sluice, or another server on the port)", l->address.text);
}

int sl_listeners_open(sl_gateway_t *gw, const sl_config_t *cfg, char *err, size_t errlen)
{
    size_t n = gw->n_workers * cfg->n_listeners;
    gw->listen_fds = calloc(n ? n : 1, sizeof *gw->listen_fds);
    if (gw->listen_fds == NULL)
        return SL_ENOMEM;
    struct sockaddr_storage *addrs = calloc(cfg->n_listeners ? cfg->n_listeners : 1, sizeof *addrs);
    socklen_t *lens = calloc(cfg->n_listeners ? cfg->n_listeners : 1, sizeof *lens);
    int rc = addrs && lens ? 0 : SL_ENOMEM;
    /* Worker 0's sockets first, one listener after the other, each after a
       probe: a listener whose address an earlier one already holds fails
       its probe, and is told which one. */
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t li = i % cfg->n_listeners;
        const sl_cfg_listener_t *l = &cfg->listeners[li];
        if (i < cfg->n_listeners) {
            if (listener_addr(l, &addrs[li], &lens[li], err, errlen) != 0) {
                rc = SL_EINVAL;
                break;
            }
            int e = probe_free(l, &addrs[li], lens[li], err, errlen);
            if (e != 0) {
                if (e == EADDRINUSE)
                    explain_in_use(cfg, addrs, li, err, errlen);
                rc = SL_EINVAL;
                break;
            }
        }
        gw->listen_fds[i] = open_one(l, &addrs[li], lens[li], err, errlen);
        if (gw->listen_fds[i] < 0) {
            rc = SL_EINVAL;
            break;
        }
        gw->n_listen_fds = i + 1;
    }
    if (rc != 0) {
        for (size_t j = 0; j < gw->n_listen_fds; j++)
            close(gw->listen_fds[j]);
        gw->n_listen_fds = 0;
    }
    free(addrs);
    free(lens);
    return rc;
}

static void on_acceptable(uv_poll_t *p, int status, int events);

static void poll_start(sl_listener_t *l)
{
    if (!l->polling && !l->closed && !l->tls_paused && uv_poll_start(&l->poll, UV_READABLE, on_acceptable) == 0)
        l->polling = true;
}

static void poll_stop(sl_listener_t *l)
{
    if (l->polling) {
        uv_poll_stop(&l->poll);
        l->polling = false;
    }
}

static void on_accept_retry(uv_timer_t *t)
{
    sl_worker_t *w = t->data;
    if (w->stopping)
        return;
    w->accept_paused = false;
    for (size_t i = 0; i < w->n_listeners; i++)
        poll_start(&w->listeners[i]);
}

void sl_listeners_pause(sl_worker_t *w, sl_msec_t retry_after)
{
    if (!w->accept_paused) {
        w->accept_paused = true;
        for (size_t i = 0; i < w->n_listeners; i++)
            poll_stop(&w->listeners[i]);
    }
    uv_timer_start(&w->accept_timer, on_accept_retry, retry_after, 0);
}

/* The cap in force: from the worker's current config (a reload may change
   it; the listeners themselves, their order included, cannot change). */
static uint32_t max_handshakes(const sl_listener_t *l)
{
    const sl_config_t *cfg = l->worker->rt->cfg;
    size_t i = (size_t)(l - l->worker->listeners);
    return i < cfg->n_listeners ? cfg->listeners[i].tls.max_handshakes
                                : l->cfg->tls.max_handshakes;
}

/*
 * The cap is reached or descriptors ran out, and clients wait in the
 * backlog: what is held by nobody's work gives way to them. Kept-alive
 * clients idle between requests are closed, the longest idle first (a
 * server may close an idle connection at any time; clients open a new one):
 * otherwise idle keep-alives held every place for the keepalive timeout
 * (60 s by default) while clients with requests waited.
 */
size_t sl_listeners_free_idle(sl_worker_t *w, bool fds)
{
    if (fds)
        sl_upstream_close_idle(w);   /* kept-alive backend connections are a cache */
    size_t n = sl_session_reclaim_idle(w, RECLAIM_BATCH);
    if (n > 0)
        sl_log_debug("worker %d: closed %zu idle kept-alive clients for waiting ones", w->id, n);
    return n;
}

/* The cap and the descriptors are the process's, and the kernel hands a
   waiting client to one worker's listener only: with nothing idle here, the
   other workers' idle clients give way (the control thread passes the
   word on). Asked again at every retry while clients still wait here. */
static void make_room(sl_worker_t *w, bool fds)
{
    if (sl_listeners_free_idle(w, fds) > 0 || w->gw->n_workers < 2)
        return;
    sl_cmsg_t *m = calloc(1, sizeof *m);
    if (m == NULL)
        return;
    m->type = SL_CMSG_MAKE_ROOM;
    m->worker = w->id;
    m->fds = fds;
    sl_control_post(w->gw, m);
}

void sl_listeners_short(sl_worker_t *w, const char *what, int err)
{
    sl_msec_t now = uv_now(&w->loop);
    sl_count(&w->counters, SL_CTR_CONN_EMFILE_PAUSES, 1);
    if (!is_short || now - short_last >= SHORT_QUIET_MS) {
        is_short = true;
        short_since = now;
        sl_log_warn("worker %d: %s: %s; accepting paused until descriptors free up", w->id,
                    what, uv_strerror(err));
    }
    short_last = now;
    make_room(w, true);
    sl_listeners_pause(w, ACCEPT_RETRY_MS);
}

/* An accept went through: the end of a shortage, once it has not come back
   for a while (in a lasting one, each freed descriptor lets one in). */
static void maybe_short_over(sl_worker_t *w)
{
    sl_msec_t now = uv_now(&w->loop);
    if (now - short_last < SHORT_QUIET_MS)
        return;
    sl_log_info("worker %d: descriptors available again after %llu ms short", w->id,
                (unsigned long long)(short_last - short_since));
    is_short = false;
}

/*
 * How many connections wait in the listener's accept queue: for a listening
 * socket TCP_INFO's tcpi_unacked is the queue's length (sk_ack_backlog; with
 * TCP_DEFER_ACCEPT, only connections whose data came). Asked once per
 * wake-up, so the batch stops when the queue is empty instead of at an
 * accept4 that fails with EAGAIN: on Linux that failure allocates and frees
 * a socket, a file and an inode, 3.3 us here against 0.2 us for this call,
 * and it came once per connection whenever connections arrive one at a
 * time. -1 when the kernel does not say (then the batch runs to EAGAIN).
 */
static int accept_queue_length(int fd)
{
    struct tcp_info ti;
    const socklen_t want =
        (socklen_t)(offsetof(struct tcp_info, tcpi_unacked) + sizeof ti.tcpi_unacked);
    socklen_t len = want;   /* only as far as the field: less for the kernel to copy */
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 || len < want ||
        ti.tcpi_state != TCP_LISTEN)
        return -1;
    return ti.tcpi_unacked > INT32_MAX ? INT32_MAX : (int)ti.tcpi_unacked;
}

static void on_acceptable(uv_poll_t *p, int status, int events)
{
    sl_listener_t *l = p->data;
    sl_worker_t *w = l->worker;
    if (status < 0 || w->stopping)
        return;
    uint32_t cap = w->rt->cfg->limits.max_connections;
    /* Readable with an empty queue (a connection that died in it): one try. */
    int waiting = accept_queue_length(l->fd);
    int batch = waiting < 0 ? ACCEPT_BATCH : SL_MAX(SL_MIN(waiting, ACCEPT_BATCH), 1);
    for (int i = 0; i < batch; i++) {
        if (l->cfg->tls.enabled && w->tls_handshakes >= max_handshakes(l)) {
            sl_log_debug("worker %d: %u TLS handshakes in progress; pausing %s", w->id,
                         w->tls_handshakes, l->cfg->address.text);
            l->tls_paused = true;
            poll_stop(l);
            return;
        }
        if (atomic_load_explicit(&w->gw->clients, memory_order_relaxed) >= cap) {
            sl_count(&w->counters, SL_CTR_CONN_CAP_PAUSES, 1);
            make_room(w, false);
            sl_listeners_pause(w, ACCEPT_RETRY_MS);
            return;
        }
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof peer;
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                sl_listeners_short(w, "accept", uv_translate_sys_error(errno));
            return;   /* EAGAIN, or a connection that died in the backlog */
        }
        if (is_short)
            maybe_short_over(w);
        sl_session_accept(w, l->cfg, fd, (struct sockaddr *)&peer);
    }
}

void sl_listeners_tls_resume(sl_worker_t *w)
{
    for (size_t i = 0; i < w->n_listeners; i++) {
        sl_listener_t *l = &w->listeners[i];
        uint32_t max = max_handshakes(l);
        /* A little below the cap, so a busy listener does not flap per handshake. */
        if (!l->tls_paused || w->tls_handshakes + max / 8 >= max)
            continue;
        l->tls_paused = false;
        if (!w->accept_paused && !w->stopping)
            poll_start(l);
    }
}

int sl_listeners_start(sl_worker_t *w)
{
    const sl_config_t *cfg = w->rt->cfg;
    sl_diag_t diag = {0};
    int trc = sl_tls_init(cfg, &diag);   /* the first worker builds the TLS contexts */
    for (size_t i = 0; i < diag.n; i++)
        sl_log_error("%s", diag.lines[i]);
    sl_diag_free(&diag);
    if (trc != 0)
        return UV_EINVAL;
    w->n_listeners = cfg->n_listeners;
    w->listeners = calloc(w->n_listeners ? w->n_listeners : 1, sizeof *w->listeners);
    if (w->listeners == NULL)
        return SL_ENOMEM;
    for (size_t i = 0; i < w->n_listeners; i++) {
        sl_listener_t *l = &w->listeners[i];
        l->worker = w;
        l->cfg = &cfg->listeners[i];
        l->fd = w->gw->listen_fds[(size_t)w->id * cfg->n_listeners + i];
        int rc = uv_poll_init_socket(&w->loop, &l->poll, l->fd);
        if (rc != 0)
            return rc;
        l->poll.data = l;
        poll_start(l);
    }
    return 0;
}

static void on_poll_closed(uv_handle_t *h)
{
    sl_listener_t *l = h->data;
    close(l->fd);
}

void sl_listeners_close(sl_worker_t *w)
{
    for (size_t i = 0; i < w->n_listeners; i++) {
        sl_listener_t *l = &w->listeners[i];
        if (l->closed)
            continue;
        l->closed = true;
        poll_stop(l);
        uv_close((uv_handle_t *)&l->poll, on_poll_closed);
    }
    uv_timer_stop(&w->accept_timer);
}
