/*
 * session.c: a client connection from accept to teardown — the PROXY
 * header, the request head under its limits, routing, and the one way out.
 *
 * The head is collected in one contiguous buffer, at most limits.head_bytes
 * long, that exists only while a head is being read: an established
 * WebSocket holds no head buffer and no HTTP parser. Bytes that arrive after
 * the head (a body, pipelined requests, early WebSocket frames) stay in that
 * buffer and are handed on by the path that takes over.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/admission.h"
#include "sluice/log.h"
#include "sluice/proxyproto.h"
#include "sluice/route.h"
#include "sluice/wshandshake.h"
#include "accesslog.h"
#include "session.h"
#include "tcpinfo.h"
#include "tls.h"

/* How long a finished connection keeps reading what the client still sends,
   and how long its last bytes may go without progress on their way out. */
#define LINGER_MS 2000

static void on_timer(uv_timer_t *t);
static void on_handle_closed(uv_handle_t *h);

static void addr_to_text(const struct sockaddr *sa, char out[46])
{
    out[0] = '\0';
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, 46);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, 46);
}

static bool ip_trusted(const sl_config_t *cfg, const char *ip)
{
    uint8_t addr[16];
    int family = strchr(ip, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(family, ip, addr) != 1)
        return false;
    for (size_t i = 0; i < cfg->n_trusted_proxies; i++)
        if (sl_cidr_contains(&cfg->trusted_proxies[i], family, addr))
            return true;
    return false;
}

static bool ip_trusted_cb(const char *ip, void *arg)
{
    return ip_trusted(arg, ip);
}

/* The position of listener config l among the worker's listeners (TLS contexts are per index). */
static size_t listener_index(const sl_worker_t *w, const sl_cfg_listener_t *l)
{
    for (size_t i = 0; i < w->n_listeners; i++)
        if (w->listeners[i].cfg == l)
            return i;
    return (size_t)-1;
}

void sl_session_accept(sl_worker_t *w, const sl_cfg_listener_t *l, uv_os_sock_t fd,
                       const struct sockaddr *peer)
{
    sl_session_t *s = sl_slab_alloc(&w->session_slab);
    if (s == NULL) {
        close(fd);
        return;
    }
    s->w = w;
    s->rt = sl_runtime_ref(w->rt);
    s->listener = l;
    s->service = -1;
    s->pool = -1;
    s->index = (size_t)-1;
    s->started = uv_now(&w->loop);
    s->state = SL_SS_HEAD;
    atomic_fetch_add(&w->gw->clients, 1);
    sl_count(&w->counters, SL_CTR_CONN_ACCEPTED, 1);
    sl_count(&w->counters, SL_CTR_CONN_OPEN, 1);
    uv_tcp_init(&w->loop, &s->client);
    uv_timer_init(&w->loop, &s->timer);
    s->pending_closes = 2;
    if (uv_tcp_open(&s->client, fd) != 0) {
        close(fd);
        sl_session_close(s);
        return;
    }
    /* TCP_NODELAY comes from the listening socket (listener.c). */
    if (sl_worker_add_session(w, s) != 0) {
        sl_session_close(s);
        return;
    }
    addr_to_text(peer, s->peer_ip);
    if (l->tls.enabled) {
        /* The handshake comes first, under its own timer; the head's clock
           starts when it is done (tls.c). */
        s->tls = true;
        s->proxy_before_tls = l->proxy_protocol != SL_PROXY_PROTOCOL_OFF;
        if (sl_tls_conn_start(s, listener_index(w, l)) != 0) {
            sl_session_close(s);
            return;
        }
        sl_client_resume(s, 0);
        sl_client_read_now(s);   /* the ClientHello is usually there (defer_accept) */
        return;
    }
    s->state = l->proxy_protocol != SL_PROXY_PROTOCOL_OFF ? SL_SS_PROXY_HEADER : SL_SS_HEAD;
    s->head_deadline = s->started + s->rt->cfg->timeouts.head;
    sl_session_arm_timer(s);
    sl_client_resume(s, 0);
    sl_client_read_now(s);
}

/* ---- the head ---- */

/*
 * Head buffers grow with what arrives, up to head_bytes plus one read block
 * (the parser refuses a head longer than head_bytes, so a read always fits
 * under that cap). Sized to fit rather than to the limit: a reconnect storm
 * has thousands of heads in flight at once, each a few hundred bytes, and
 * memory the allocator hands out in a burst is memory the process keeps.
 */
int sl_fit(char **buf, uint32_t *cap, uint32_t need, uint32_t max)
{
    if (need <= *cap)
        return 0;
    if (need > max)
        return SL_EFULL;
    uint32_t n = *cap ? *cap : 1024;
    while (n < need)
        n *= 2;
    if (n > max)
        n = max;
    char *p = realloc(*buf, n);
    if (p == NULL)
        return SL_ENOMEM;
    *buf = p;
    *cap = n;
    return 0;
}

uint32_t sl_head_max(const sl_session_t *s)
{
    return (uint32_t)s->rt->cfg->limits.head_bytes + SL_BLOCK_SIZE;
}

int sl_session_resp_begin(sl_session_t *s, uint8_t request_method)
{
    s->resp = calloc(1, sizeof *s->resp);
    if (s->resp == NULL)
        return SL_ENOMEM;
    s->resp->max_head = (uint32_t)s->rt->cfg->limits.head_bytes;
    s->resp->max_headers = SL_HTTP_MAX_HEADERS;
    sl_http_parser_init(s->resp, SL_HTTP_RESPONSE, request_method);
    s->resp_len = 0;
    s->head_deadline = sl_now(s) + s->rt->cfg->timeouts.backend_response;
    sl_session_arm_timer(s);
    sl_backend_start_reading(s);
    return 0;
}

int sl_session_resp_feed(sl_session_t *s, const sl_block_t *b, size_t off)
{
    size_t len = b->len - off;
    if (sl_fit(&s->resp_head, &s->resp_cap, s->resp_len + (uint32_t)len, sl_head_max(s)) != 0)
        return SL_EFULL;
    memcpy(s->resp_head + s->resp_len, b->data + off, len);
    s->resp_len += (uint32_t)len;
    return sl_http_parse_head(s->resp, s->resp_head, s->resp_len);
}

int sl_session_resp_next(sl_session_t *s, uint32_t head_len)
{
    s->resp_len -= head_len;
    memmove(s->resp_head, s->resp_head + head_len, s->resp_len);
    sl_http_parser_init(s->resp, SL_HTTP_RESPONSE, s->req ? s->req->head.method : 0);
    return s->resp_len ? sl_http_parse_head(s->resp, s->resp_head, s->resp_len) : SL_NEED_MORE;
}

void sl_session_resp_free(sl_session_t *s)
{
    free(s->resp);
    s->resp = NULL;
    free(s->resp_head);
    s->resp_head = NULL;
    s->resp_len = s->resp_cap = 0;
}

static int head_reserve(sl_session_t *s)
{
    if (s->req)
        return 0;
    uint32_t limit = (uint32_t)s->rt->cfg->limits.head_bytes;
    s->req = malloc(sizeof *s->req);
    if (s->req == NULL)
        return SL_ENOMEM;
    memset(s->req, 0, sizeof *s->req);
    s->req->max_head = limit;
    s->req->max_headers = s->rt->cfg->limits.headers;
    s->req->max_request_line = s->rt->cfg->limits.request_line;
    sl_http_parser_init(s->req, SL_HTTP_REQUEST, 0);
    return 0;
}

/* Drop the head buffer's first n bytes (a consumed PROXY header or request). */
void sl_session_head_consume(sl_session_t *s, uint32_t n)
{
    memmove(s->head, s->head + n, s->head_len - n);
    s->head_len -= n;
}

void sl_session_head_free(sl_session_t *s)
{
    if (s->req)
        s->w->transient_freed += s->head_cap + sizeof *s->req;
    free(s->head);
    s->head = NULL;
    s->head_len = s->head_cap = 0;
    free(s->req);
    s->req = NULL;
}

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* The value of cookie `name` in the Cookie headers, or NULL. */
static const char *find_cookie(const sl_http_head_t *h, const char *base, const char *name,
                               size_t *len)
{
    size_t nl = strlen(name);
    for (uint32_t i = 0; i < h->n_headers; i++) {
        const sl_http_header_t *hd = &h->headers[i];
        if (hd->name.len != 6 || strncasecmp(base + hd->name.off, "cookie", 6) != 0)
            continue;
        const char *p = base + hd->value.off, *end = p + hd->value.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';'))
                p++;
            const char *eq = memchr(p, '=', (size_t)(end - p));
            if (eq == NULL)
                break;
            const char *semi = memchr(eq, ';', (size_t)(end - eq));
            const char *vend = semi ? semi : end;
            if ((size_t)(eq - p) == nl && memcmp(p, name, nl) == 0) {
                *len = (size_t)(vend - eq - 1);
                return eq + 1;
            }
            p = vend;
        }
    }
    return NULL;
}

/* Sticky balancing: hash the pool's key now, while the head is at hand. */
static void make_hash_key(sl_session_t *s)
{
    const sl_cfg_pool_t *pc = &s->rt->cfg->pools[s->pool];
    s->hash_pool = -1;
    if (pc->balance != SL_BALANCE_HASH)
        return;
    const char *v = NULL;
    size_t len = 0;
    if (pc->hash_by == SL_HASH_BY_HEADER) {
        const sl_http_header_t *hd = sl_http_find(&s->req->head, s->head, pc->hash_key);
        if (hd) {
            v = s->head + hd->value.off;
            len = hd->value.len;
        }
    } else if (pc->hash_by == SL_HASH_BY_COOKIE) {
        v = find_cookie(&s->req->head, s->head, pc->hash_key, &len);
    }
    if (v == NULL) {   /* no key in the request: the client address stands in */
        v = s->client_ip;
        len = strlen(s->client_ip);
    }
    s->hash_key = fnv1a(v, len);
    s->hash_pool = s->pool;
}

static void route_and_dispatch(sl_session_t *s)
{
    const sl_http_head_t *h = &s->req->head;
    const sl_config_t *cfg = s->rt->cfg;
    /* The parser gives what to route by: an absolute-form target's authority
       and path (RFC 9112 3.2.2: Host is then ignored), else Host and the target. */
    const char *path = s->head + h->path.off;
    size_t path_len = h->path.len;
    if (sl_access_log_on()) {   /* before routing, so the gateway's own refusals say it too */
        sl_http_span_t t = h->asterisk_form ? h->url : h->path;
        s->log_method = h->method;
        free(s->log_target);
        s->log_target = strndup(s->head + t.off, t.len);
    }
    /* A gateway in front of its services makes no tunnels (RFC 9110 9.3.6).
       CONNECT is a method it knows and will not apply to any target: 405,
       with the Allow field 405 requires (15.5.6), empty, as no method
       applies to an authority-form target here (10.2.1). nginx answers 405
       too; 501 is for methods a server does not recognize, and would count
       a client's probe among the gateway's own failures. */
    if (h->method == HTTP_CONNECT) {
        sl_session_http_error(s, 405, "Allow: \r\n");
        return;
    }
    sl_route_match_t m;
    if (sl_router_match(s->rt->router, s->head + h->host.off, h->host.len, path, path_len,
                        &m) != 0) {
        sl_session_http_error(s, 404, NULL);
        return;
    }
    s->service = m.service;
    s->route = m.route;
    /* Where new connections go now (the control thread publishes it). With
       admission on, the control thread may pick again when it admits. */
    sl_service_rt_t *sr = &s->rt->services[m.service];
    long from = atomic_load_explicit(&sr->from, memory_order_relaxed);
    if (from >= 0) {
        uint32_t w = atomic_load_explicit(&sr->weight_to_ppm, memory_order_relaxed);
        s->pool = sl_rng_below(&s->w->rng, 1000000) < w
                      ? atomic_load_explicit(&sr->to, memory_order_relaxed)
                      : from;
    } else {
        s->pool = atomic_load_explicit(&sr->active, memory_order_relaxed);
    }

    /* The real client: a trusted proxy's X-Forwarded-For is believed. */
    memcpy(s->client_ip, s->peer_ip, sizeof s->client_ip);
    s->peer_trusted = ip_trusted(cfg, s->peer_ip);
    if (s->peer_trusted) {
        char real[46];
        if (sl_http_real_client(h, s->head, ip_trusted_cb, (void *)cfg, real) == 0)
            memcpy(s->client_ip, real, sizeof real);
    }
    make_hash_key(s);
    s->exchange_started = sl_now(s);
    s->log_backend = -1;
    sl_session_dispatch(s);
}

void sl_session_dispatch(sl_session_t *s)
{
    if (sl_ws_is_upgrade(&s->req->head, s->head))
        sl_ws_begin(s);
    else
        sl_http_begin(s);
}

/* Parse what we have of the head; act when it is complete or wrong. */
void sl_session_parse_head(sl_session_t *s)
{
    int rc = sl_http_parse_head(s->req, s->head, s->head_len);
    if (rc == SL_NEED_MORE) {
        if (s->head_len > s->req->max_head)
            sl_session_http_error(s, 431, NULL);
        return;
    }
    if (rc < 0) {
        sl_log_debug("client %s: bad request head: %s", s->peer_ip,
                     s->req->error_reason ? s->req->error_reason : "?");
        sl_session_http_error(s, s->req->error_status ? s->req->error_status : 400, NULL);
        return;
    }
    s->head_deadline = 0;
    /* Reading goes on: a WebSocket client sends nothing before the 101, and
       stopping and restarting the socket's reading would cost epoll_ctl calls
       on every upgrade. Bytes that do come early wait with the head (and
       reading stops then); plain HTTP pauses in sl_http_begin. */
    route_and_dispatch(s);
}

/*
 * The PROXY header at the start of s->head: its length once whole and taken
 * (the peer address replaced), 0 while incomplete, -1 when bad (the session
 * is closed).
 */
static int take_proxy_header(sl_session_t *s)
{
    sl_proxy_header_t ph;
    int rc = sl_proxy_parse((const uint8_t *)s->head, s->head_len,
                            s->listener->proxy_protocol, &ph);
    if (rc == SL_NEED_MORE)
        return 0;
    if (rc < 0) {
        sl_count(&s->w->counters, SL_CTR_PROXY_HEADER_ERRORS, 1);
        sl_log_debug("client %s: bad PROXY protocol header", s->peer_ip);
        sl_session_close(s);
        return -1;
    }
    if (!ph.local)
        addr_to_text((struct sockaddr *)&ph.src, s->peer_ip);
    return rc;
}

static void on_proxy_header(sl_session_t *s)
{
    int n = take_proxy_header(s);
    if (n <= 0)
        return;
    sl_session_head_consume(s, (uint32_t)n);
    s->state = SL_SS_HEAD;
    if (s->head_len > 0)
        sl_session_parse_head(s);
}

int sl_session_proxy_before_tls(sl_session_t *s, sl_block_t *b)
{
    if (sl_fit(&s->head, &s->head_cap, s->head_len + b->len, sl_head_max(s)) != 0) {
        sl_count(&s->w->counters, SL_CTR_PROXY_HEADER_ERRORS, 1);
        sl_session_close(s);
        return -1;
    }
    memcpy(s->head + s->head_len, b->data, b->len);
    s->head_len += b->len;
    int n = take_proxy_header(s);
    if (n <= 0) {
        b->len = 0;
        return n;
    }
    /* The header ends inside this block (the bytes before it did not finish
       it), so what follows it is shorter than the block. */
    uint32_t rest = s->head_len - (uint32_t)n;
    memcpy(b->data, s->head + n, rest);
    b->len = rest;
    s->head_len = 0;
    s->proxy_before_tls = false;
    return 1;
}

/*
 * Early bytes wait in the head buffer, one read block at a time: reading
 * stops after each, and resumes for an admission wait (to see a client that
 * gives up) only while another block fits. The buffer may already hold most
 * of a block of body that came with the head, so it may hold one block more
 * than a head: a POST queued for admission had its next block refused and
 * the client was closed without an answer.
 */
static uint32_t early_max(const sl_session_t *s)
{
    return sl_head_max(s) + SL_BLOCK_SIZE;
}

void sl_session_client_read(sl_session_t *s, sl_block_t *b)
{
    switch (s->state) {
    case SL_SS_PROXY_HEADER:
    case SL_SS_HEAD: {
        if (head_reserve(s) != 0) {
            sl_session_close(s);
            return;
        }
        if (s->awaiting_next) {
            s->awaiting_next = false;
            s->exchange_started = sl_now(s);   /* the access log's clock, as the head's */
            s->head_deadline = sl_now(s) + s->rt->cfg->timeouts.head;
            sl_session_arm_timer(s);
        }
        if (sl_fit(&s->head, &s->head_cap, s->head_len + b->len, sl_head_max(s)) != 0) {
            sl_session_http_error(s, 431, NULL);
            return;
        }
        memcpy(s->head + s->head_len, b->data, b->len);
        s->head_len += b->len;
        if (s->state == SL_SS_PROXY_HEADER)
            on_proxy_header(s);
        else
            sl_session_parse_head(s);
        break;
    }
    case SL_SS_WS_RELAY:
        sl_ws_on_client_data(s, b, 0);
        break;
    case SL_SS_HTTP:
        sl_http_on_client_data(s, b, 0);
        break;
    case SL_SS_ADMISSION:
    case SL_SS_CONNECTING:
    case SL_SS_WS_HANDSHAKE:
        /* Early bytes (a body, or frames sent before the 101) wait with the head. */
        if (sl_fit(&s->head, &s->head_cap, s->head_len + b->len, early_max(s)) != 0) {
            sl_session_close(s);
            return;
        }
        memcpy(s->head + s->head_len, b->data, b->len);
        s->head_len += b->len;
        sl_client_pause(s, SL_PAUSE_WAITING);
        break;
    default:
        /* Lingering, or not reading in the other states: late bytes are dropped. */
        break;
    }
}

void sl_session_client_eof(sl_session_t *s, int status)
{
    s->client_eof = true;
    if (s->client_reading)
        uv_read_stop((uv_stream_t *)&s->client);
    s->client_reading = false;
    switch (s->state) {
    case SL_SS_WS_RELAY:
        sl_ws_on_client_eof(s);
        break;
    case SL_SS_HTTP:
        sl_http_on_client_eof(s, status);
        break;
    case SL_SS_LINGER:
        /* A half-close while the answer is still going out: let it go out
           (on_shutdown closes); a reset: nothing more can be delivered. */
        if (status != UV_EOF || !s->shutdown_pending)
            sl_session_close(s);
        break;
    default:
        /* Between requests, a kept-alive client that ends its side may still
           be reading the last answer: what is queued goes out first. Over
           TLS its close_notify is answered with ours (RFC 8446 6.1). */
        if (status == UV_EOF && s->state == SL_SS_HEAD && (sl_queued(s, true) > 0 || s->tlsc))
            sl_session_finish(s);
        else
            sl_session_close(s);
        break;
    }
}

void sl_session_backend_read(sl_session_t *s, sl_block_t *b)
{
    if (s->state == SL_SS_WS_RELAY || s->state == SL_SS_WS_HANDSHAKE)
        sl_ws_on_backend_data(s, b, 0);
    else if (s->state == SL_SS_HTTP)
        sl_http_on_backend_data(s, b, 0);
}

void sl_session_backend_eof(sl_session_t *s, int status)
{
    if (s->up) {
        s->up->reading = false;
        s->up->read_eof = true;
    }
    if (s->state == SL_SS_WS_RELAY || s->state == SL_SS_WS_HANDSHAKE)
        sl_ws_on_backend_eof(s);
    else if (s->state == SL_SS_HTTP)
        sl_http_on_backend_eof(s, status);
}


void sl_session_backend_ready(sl_session_t *s)
{
    if (s->up->rt == s->rt)
        s->log_backend = (int16_t)(s->up->backend - s->rt->pools[s->pool].backends);
    if (s->ws_key_len)
        sl_ws_backend_ready(s);
    else
        sl_http_backend_ready(s);
}

/*
 * Admission gave this client a token, and then no backend could be reached:
 * the backend died in the moment between (a restart: the first burst after
 * the kill meets refused connects before health checks or passive ejection
 * mark the pool down). The queue holds while a pool has no backend up, so
 * the client goes back in line instead of failing:
 *
 * - 503, no backend of the pool is up: back in line (the hold keeps it
 *   there), while its time since arrival is under the queue's max_wait
 *   (then it is turned away with Retry-After, as every waiter is), and at
 *   most MAX_REQUEUES times, so views of the pool that disagree for a
 *   moment cannot spin;
 * - 502, its backends refused or failed: once, which gives passive ejection
 *   or a health check the time to mark the pool down; a backend that keeps
 *   failing while counted up answers 502, as without admission;
 * - the backend answered the upgrade 503 (it is over its own capacity, for a
 *   moment most often: admitted handshakes that reached it bunched, a
 *   dispatch delay on top of a burst that spent its own): once, like a 502,
 *   unless admission.requeue_backend_503 is off; then, or on a second 503,
 *   the client gets the backend's answer.
 *
 * WebSocket upgrades only: a plain HTTP exchange has begun forwarding by then.
 * A requeued client queues again at the tail.
 */
#define MAX_REQUEUES 16

/* no_backend: the pool has no backend up (503 made here); else its backend
   failed or refused (502, or the backend's own 503). */
static bool may_requeue(const sl_session_t *s, bool no_backend)
{
    const sl_cfg_service_t *svc = &s->rt->cfg->services[s->service];
    return s->ws_key_len && svc->admission.enabled && !s->resp_started &&
           uv_now(&s->w->loop) - s->started < svc->admission.queue_max_wait &&
           s->requeues < (no_backend ? MAX_REQUEUES : 1);
}

static void requeue_now(sl_session_t *s)
{
    s->requeues++;
    sl_count(&s->w->counters, SL_CTR_ADMISSION_REQUEUED, 1);
    sl_session_admit_or_go(s);
}

static bool requeue(sl_session_t *s, int status)
{
    if (s->state != SL_SS_CONNECTING || !may_requeue(s, status == 503))
        return false;
    requeue_now(s);
    return true;
}

bool sl_session_requeue_backend_busy(sl_session_t *s)
{
    if (!s->rt->cfg->services[s->service].admission.requeue_backend_503 ||
        s->state != SL_SS_WS_HANDSHAKE || !may_requeue(s, false))
        return false;
    sl_count(&s->w->counters, SL_CTR_ADMISSION_REQUEUED_BUSY, 1);
    sl_upstream_release(s, false);   /* the answer is dropped with its connection */
    sl_ws_backend_unready(s);
    requeue_now(s);
    return true;
}

void sl_session_backend_failed(sl_session_t *s, int status)
{
    if (requeue(s, status))
        return;
    if (status != 503) {
        sl_session_http_error(s, status, NULL);
        return;
    }
    /* No backend of the pool is up (a restart, most often): tell the client
       when to come back, spread over a few seconds so the herd does not
       return at once. */
    char hdr[40];
    snprintf(hdr, sizeof hdr, "Retry-After: %u\r\n", 1 + (unsigned)sl_rng_below(&s->w->rng, 3));
    sl_session_http_error(s, 503, hdr);
}

/*
 * Is the client reading a backlog? Asked when a deadline for its silence
 * comes (idle, the pong's wait): bytes wait for it, in its write queue or
 * its socket, and it acknowledged some since the last time asked. A slow
 * reader of a long answer completes no write for long (the kernel wakes a
 * writer only when a third of the socket's buffer is free), and a ping sits
 * behind the backlog: such a client was closed as gone while it read. With
 * nothing waiting it is simply quiet. The first time asked there is nothing
 * to compare with, so a client that stopped reading its backlog is closed at
 * the second deadline, not the first.
 */
bool sl_session_client_reading(sl_session_t *s)
{
    uv_os_fd_t fd;
    uint64_t acked, waiting;
    if (uv_fileno((const uv_handle_t *)&s->client, &fd) != 0 ||
        !sl_tcp_send_progress(fd, &acked, &waiting))
        return false;
    bool moved = (waiting > 0 || sl_queued(s, true) > 0) &&
                 (uint32_t)acked != s->client_acked_seen;
    s->client_acked_seen = (uint32_t)acked;
    return moved;
}

/*
 * A kept-alive connection's deadline between requests. Its keepalive clock
 * starts once the last answer has all gone to the client: until then the
 * connection is not idle (the clock started when the backend's response
 * ended, and a slow reader's tail, still queued then, was cut at the
 * keepalive timeout). Meanwhile the bound is the idle timeout's, as for an
 * exchange that stalls, counted from the last write that completed.
 */
sl_msec_t sl_session_keepalive_deadline(sl_session_t *s)
{
    const sl_cfg_timeouts_t *t = &s->rt->cfg->timeouts;
    return sl_now(s) + (sl_queued(s, true) > 0 ? t->idle : t->keepalive);
}

void sl_session_write_done(sl_session_t *s, bool to_client)
{
    if (s->state == SL_SS_WS_RELAY) {
        sl_ws_write_done(s, to_client);
    } else if (s->state == SL_SS_LINGER && to_client && s->shutdown_pending) {
        s->linger_deadline = sl_now(s) + LINGER_MS;   /* a slow reader, still reading */
    } else if (to_client && s->state == SL_SS_HEAD && s->awaiting_next && s->head_deadline) {
        s->head_deadline = sl_session_keepalive_deadline(s);   /* it moved */
        sl_session_arm_timer(s);
    }
}

/* ---- gateway-made answers ---- */

void sl_session_http_error(sl_session_t *s, int status, const char *extra_headers)
{
    if (s->resp_started || s->state == SL_SS_CLOSING) {
        sl_session_close(s);
        return;
    }
    char buf[1024];
    ssize_t n = sl_http_write_simple(buf, sizeof buf, status, extra_headers, true);
    if (status >= 500)
        sl_count(&s->w->counters, SL_CTR_HTTP_ERRORS_5XX, 1);
    else
        sl_count(&s->w->counters, SL_CTR_HTTP_ERRORS_4XX, 1);
    if (n > 0)
        sl_write_copy(s, true, buf, (size_t)n);
    s->resp_started = true;
    s->keep_alive = false;
    s->log_status = (uint16_t)status;
    if (!s->ws_key_len)
        sl_session_log(s);
    sl_session_finish(s);
}

void sl_session_log(sl_session_t *s)
{
    if (s->logged || !sl_access_log_on() || s->log_status == 0)
        return;
    s->logged = true;
    const sl_config_t *cfg = s->rt->cfg;
    bool routed = s->service >= 0 && (size_t)s->service < cfg->n_services;
    bool pooled = s->pool >= 0 && (size_t)s->pool < cfg->n_pools;
    sl_access_entry_t e = {
        .kind = s->ws_key_len ? "ws" : "http",
        .client = s->client_ip[0] ? s->client_ip : s->peer_ip,
        .service = routed ? cfg->services[s->service].name : NULL,
        .pool = routed && pooled ? cfg->pools[s->pool].name : NULL,
        .backend = pooled && s->log_backend >= 0 &&
                           (size_t)s->log_backend < s->rt->pools[s->pool].n_backends
                       ? s->rt->pools[s->pool].backends[s->log_backend].name
                       : NULL,
        /* Set with the target, once the head parsed: before that the method
           field is llhttp's 0, DELETE, which no request here asked for. */
        .method = s->log_target ? llhttp_method_name((llhttp_method_t)s->log_method) : NULL,
        .target = s->log_target,
        .target_len = s->log_target ? (uint32_t)strlen(s->log_target) : 0,
        .status = s->log_status,
        .close_code = s->log_close,
        .queue_ms = s->admit_waited,
        .bytes_in = s->bytes_c2b,
        .bytes_out = s->bytes_b2c,
        .duration_ms = sl_now(s) - (s->exchange_started ? s->exchange_started : s->started),
    };
    sl_access_log(&e);
}

/* Requests for rare moments are allocated then, not carried by every idle session. */
static void on_shutdown(uv_shutdown_t *req, int status)
{
    sl_session_t *s = req->data;
    free(req);
    if (s->state == SL_SS_CLOSING)
        return;
    s->shutdown_pending = false;
    /* Every byte has gone (a FIN behind them). A client that has closed its
       side already is done; another gets its lingering read. */
    if (status < 0 || s->client_eof) {
        sl_session_close(s);
        return;
    }
    s->linger_deadline = sl_now(s) + LINGER_MS;
    sl_session_arm_timer(s);
}

void sl_session_finish(sl_session_t *s)
{
    if (s->state == SL_SS_LINGER || s->state == SL_SS_CLOSING)
        return;
    sl_client_release(s);   /* a held 101 goes before the shutdown */
    if (s->up)
        sl_upstream_release(s, false);
    s->state = SL_SS_LINGER;
    s->head_deadline = 0;
    s->drain_deadline = 0;
    s->linger_deadline = sl_now(s) + LINGER_MS;
    if (s->tlsc)
        sl_tls_close_notify(s);   /* a client's close_notify is answered with ours too */
    /* Even after the client's EOF: the shutdown completes once the queued
       answer has gone (closing now would cancel it: a half-closed client's
       response cut short). */
    uv_shutdown_t *req = malloc(sizeof *req);
    if (req)
        req->data = s;
    if (req == NULL || uv_shutdown(req, (uv_stream_t *)&s->client, on_shutdown) != 0) {
        free(req);
        sl_session_close(s);
        return;
    }
    s->shutdown_pending = true;
    sl_client_resume(s, SL_PAUSE_WAITING | SL_PAUSE_BACKPRESSURE);
    sl_session_arm_timer(s);
}

/* ---- timers ---- */

void sl_session_arm_timer(sl_session_t *s)
{
    if (s->state == SL_SS_CLOSING)
        return;
    sl_msec_t now = sl_now(s);
    sl_msec_t next = SL_MSEC_NEVER;
    if (s->head_deadline)
        next = SL_MIN(next, s->head_deadline);
    if (s->drain_deadline)
        next = SL_MIN(next, s->drain_deadline);
    if (s->state == SL_SS_LINGER)
        next = SL_MIN(next, s->linger_deadline);
    if (s->state == SL_SS_WS_RELAY)
        next = SL_MIN(next, sl_ws_next_deadline(s));
    else if (s->state == SL_SS_HTTP && s->rt->cfg->timeouts.idle)
        next = SL_MIN(next, s->last_rx + s->rt->cfg->timeouts.idle);
    if (next == SL_MSEC_NEVER) {
        uv_timer_stop(&s->timer);
        return;
    }
    /* A deadline already due runs on the next turn of the loop, never within
       this one: libuv 1.44 runs a timer restarted at 0 ms from its own
       callback again in the same pass, so a deadline that its handler left
       due would spin the worker without ever polling for I/O. */
    uv_timer_start(&s->timer, on_timer, next > now ? next - now : 1, 0);
}

static void on_timer(uv_timer_t *t)
{
    sl_session_t *s = sl_container_of(t, sl_session_t, timer);
    sl_msec_t now = sl_now(s);
    if (s->state == SL_SS_LINGER) {
        if (now >= s->linger_deadline) {
            sl_session_close(s);
            return;
        }
    } else if (s->head_deadline && now >= s->head_deadline) {
        s->head_deadline = 0;
        if (s->awaiting_next && s->head_len == 0) {
            /* A kept-alive connection that sent no further request: close it
               (over TLS with a close_notify first, RFC 8446 6.1). */
            if (s->tlsc)
                sl_session_finish(s);
            else
                sl_session_close(s);
        } else if (s->state == SL_SS_HTTP || s->state == SL_SS_WS_HANDSHAKE) {
            sl_count(&s->w->counters, SL_CTR_BACKEND_RESPONSE_TIMEOUTS, 1);
            sl_session_http_error(s, 504, NULL);
        } else {
            sl_count(&s->w->counters, SL_CTR_HTTP_HEAD_TIMEOUTS, 1);
            sl_session_http_error(s, 408, NULL);
        }
        return;
    }
    if (s->state == SL_SS_WS_RELAY) {
        sl_ws_on_timer(s, now);
        return;
    }
    if (s->state == SL_SS_HTTP && s->rt->cfg->timeouts.idle &&
        now >= s->last_rx + s->rt->cfg->timeouts.idle && sl_session_client_reading(s)) {
        s->last_rx = now;   /* a slow reader of the answer: it moves */
        sl_session_arm_timer(s);
        return;
    }
    if (s->state == SL_SS_HTTP && s->rt->cfg->timeouts.idle &&
        now >= s->last_rx + s->rt->cfg->timeouts.idle) {
        /* An exchange that stalled either way (an upload, a response body):
           nothing moved for the idle time, so nothing will. */
        sl_count(&s->w->counters, SL_CTR_IDLE_TIMEOUTS, 1);
        /* Before the response: 504 when the backend was what it waited on
           (the request was all sent, or the backend stopped reading it),
           408 when the client stopped sending its body. */
        bool backend_stalled = s->req_done || (s->client_paused & SL_PAUSE_BACKPRESSURE);
        if (!s->resp_started)
            sl_session_http_error(s, backend_stalled ? 504 : 408, NULL);
        else
            sl_session_close(s);
        return;
    }
    if (s->drain_deadline && now >= s->drain_deadline) {
        sl_session_close(s);
        return;
    }
    sl_session_arm_timer(s);
}

/* ---- making room ---- */

/* Kept-alive, between requests, nothing sent or still going out: its close
   loses nothing (the keepalive timeout would close it the same way). */
static bool idle_kept_alive(sl_session_t *s)
{
    return s->state == SL_SS_HEAD && s->awaiting_next && s->head_len == 0 &&
           sl_queued(s, true) == 0;
}

static void close_idle(sl_session_t *s)
{
    if (s->tlsc)
        sl_session_finish(s);   /* with a close_notify, as the keepalive timeout does */
    else
        sl_session_close(s);
}

size_t sl_session_reclaim_idle(sl_worker_t *w, size_t max)
{
    /* The max longest idle: their keepalive deadlines are the nearest. */
    sl_session_t *pick[64];
    size_t n = 0;
    if (max > SL_ARRAY_SIZE(pick))
        max = SL_ARRAY_SIZE(pick);
    for (size_t i = 0; i < w->n_sessions && max > 0; i++) {
        sl_session_t *s = w->sessions[i];
        if (!idle_kept_alive(s))
            continue;
        if (n == max && s->head_deadline >= pick[n - 1]->head_deadline)
            continue;
        size_t j = n < max ? n++ : n - 1;
        for (; j > 0 && pick[j - 1]->head_deadline > s->head_deadline; j--)
            pick[j] = pick[j - 1];
        pick[j] = s;
    }
    /* Closing changes w->sessions: chosen first, closed after. */
    for (size_t i = 0; i < n; i++)
        close_idle(pick[i]);
    return n;
}

/* ---- teardown ---- */

void sl_session_close(sl_session_t *s)
{
    if (s->state == SL_SS_CLOSING)
        return;
    s->state = SL_SS_CLOSING;
    if (s->w->held_for == s)
        s->w->held_for = NULL;
    sl_worker_remove_session(s->w, s);
    if (s->admit_pending && !s->w->control_gone) {
        sl_cmsg_t *m = calloc(1, sizeof *m);
        if (m) {
            m->type = SL_CMSG_CANCEL;
            m->worker = s->w->id;
            m->id = s->admit_id;
            sl_control_post(s->w->gw, m);
        }
    }
    if (s->up)
        sl_upstream_release(s, false);
    s->client.data = s;
    s->timer.data = s;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
    if (s->client_reading)
        uv_read_stop((uv_stream_t *)&s->client);
    uv_close((uv_handle_t *)&s->client, on_handle_closed);
    if (s->tlsc)
        sl_tls_conn_close(s, on_handle_closed);
}

static void session_free(sl_session_t *s)
{
    sl_worker_t *w = s->w;
    if (s->counted_ws) {
        sl_gauge_dec(&w->counters, SL_CTR_WS_OPEN);
        sl_ws_count_t *c = sl_runtime_ws(s->rt, s->service, s->pool);
        atomic_fetch_sub(&c->open, 1);
        if (s->draining)
            atomic_fetch_sub(&c->draining, 1);
        else
            atomic_fetch_sub(&w->drainable, 1);
    }
    sl_gauge_dec(&w->counters, SL_CTR_CONN_OPEN);
    atomic_fetch_sub(&w->gw->clients, 1);
    /* A request that got no answer (its client gave up waiting in the
       admission queue, or left before a backend answered) is logged 499,
       nginx's "client closed request": such a line was missing, in a storm
       the lines an operator most wants. */
    if (s->log_status == 0 && s->log_target != NULL && !s->logged)
        s->log_status = 499;
    if (s->ws_key_len || s->log_status == 499)
        sl_session_log(s);
    free(s->log_target);
    if (s->tlsc)
        sl_tls_conn_free(s);
    sl_session_head_free(s);
    free(s->resp);
    free(s->resp_head);
    free(s->fwd);
    sl_runtime_unref(s->rt);
    sl_slab_free(&w->session_slab, s);
}

static void on_handle_closed(uv_handle_t *h)
{
    sl_session_t *s = h->data;
    if (--s->pending_closes == 0)
        session_free(s);
}

/* ---- admission ---- */

void sl_session_go(sl_session_t *s)
{
    if (s->ws_key_len) {
        s->state = SL_SS_CONNECTING;
        sl_upstream_connect(s);
    } else {
        s->state = SL_SS_HTTP;
        sl_upstream_connect(s);
    }
}

void sl_session_admit_or_go(sl_session_t *s)
{
    const sl_config_t *cfg = s->rt->cfg;
    const sl_cfg_service_t *svc = &cfg->services[s->service];
    bool wanted = s->ws_key_len ? svc->admission.enabled
                                : svc->admission.enabled && svc->routes[s->route].admission;
    if (!wanted) {
        sl_session_go(s);
        return;
    }
    sl_cmsg_t *m = calloc(1, sizeof *m);
    if (m == NULL) {
        sl_session_http_error(s, 503, NULL);
        return;
    }
    m->type = SL_CMSG_ADMIT;
    m->worker = s->w->id;
    m->generation = s->rt->generation;
    m->rt = s->rt;
    m->service = s->service;
    m->id = ((uint64_t)s->w->id << 48) | ++s->w->next_admit_id;
    m->session = s;
    m->family = strchr(s->client_ip, ':') ? AF_INET6 : AF_INET;
    inet_pton(m->family, s->client_ip, m->addr);
    s->admit_id = m->id;
    s->admit_pending = true;
    s->admit_waited = sl_now(s);   /* when it asked, until the answer (sl_session_admit_result) */
    s->pending_closes++;   /* the answer will come, and finds this memory */
    s->state = SL_SS_ADMISSION;
    /* Keep reading: a client that gives up while queued leaves the queue at
       once (unless its early bytes leave no room for another block). */
    if (s->head_len + SL_BLOCK_SIZE <= early_max(s))
        sl_client_resume(s, SL_PAUSE_WAITING);
    sl_control_post(s->w->gw, m);
}

static void reject_ws_1013(sl_session_t *s, sl_msec_t retry_after_ms)
{
    char accept[29];
    sl_ws_accept_key(s->ws_key, s->ws_key_len, accept);
    char out[256 + SL_WS_MAX_CONTROL_FRAME];
    int n = snprintf(out, 256,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept);
    char reason[48];
    snprintf(reason, sizeof reason, "retry-after=%.1f", (double)retry_after_ms / 1000.0);
    size_t f = sl_ws_write_close((uint8_t *)out + n, SL_WS_CLOSE_TRY_AGAIN, reason, NULL);
    sl_write_copy(s, true, out, (size_t)n + f);
    s->resp_started = true;
    s->log_status = 101;
    s->log_close = SL_WS_CLOSE_TRY_AGAIN;
    sl_count(&s->w->counters, SL_CTR_ADMISSION_REJECTED_1013, 1);
    sl_session_finish(s);
}

void sl_session_admit_result(sl_session_t *s, const sl_wmsg_t *m)
{
    s->admit_pending = false;
    /* While pending, admit_waited held when the session asked; a cancelled
       wait (its client gave up) is answered without the queue's count. */
    s->admit_waited = m->waited_ms > 0 ? m->waited_ms : sl_now(s) - s->admit_waited;
    if (--s->pending_closes == 0) {
        session_free(s);
        return;
    }
    if (s->state != SL_SS_ADMISSION)
        return;   /* closing: the close callbacks free it */
    if (m->admit_status == SL_ADM_ADMITTED) {
        sl_count(&s->w->counters, SL_CTR_ADMISSION_ADMITTED, 1);
        if (m->pool >= 0)
            s->pool = m->pool;
        if (!s->ws_key_len)
            sl_client_pause(s, SL_PAUSE_WAITING);
        sl_session_go(s);
        return;
    }
    const sl_cfg_service_t *svc = &s->rt->cfg->services[s->service];
    if (s->ws_key_len && svc->admission.reject_with == SL_REJECT_WS_1013) {
        reject_ws_1013(s, m->retry_after_ms);
        return;
    }
    char hdr[64];
    snprintf(hdr, sizeof hdr, "Retry-After: %llu\r\n",
             (unsigned long long)((m->retry_after_ms + 999) / 1000));
    sl_count(&s->w->counters, m->http_status == 429 ? SL_CTR_ADMISSION_REJECTED_429
                                                     : SL_CTR_ADMISSION_REJECTED_503, 1);
    sl_session_http_error(s, m->http_status ? m->http_status : 503,
                          m->retry_after_ms ? hdr : NULL);
}
