/*
 * server.c: the admin API's HTTP/1.1 server, on the control thread's loop.
 *
 * Why on the control loop: everything the API reads or changes (runtime,
 * admission, deploys, health) is owned by the control thread, so handlers
 * run there and touch that state without locks. The cost is that a handler
 * must never block; all of them answer from memory.
 *
 * Why this shape: requests are read with the project's own HTTP parser
 * (the same limits and smuggling checks as the data path), bodies only with
 * Content-Length and at most SL_ADMIN_MAX_BODY (413 decided from the head,
 * before a byte of body is read), one request at a time per connection with
 * pipelined ones answered in order. Responses are written with one uv_write
 * each; a client that does not read stops being read from (write queue
 * bound), and every connection has an idle timer. The bearer token is
 * compared as SHA-256 digests with CRYPTO_memcmp, so neither its content
 * nor its length leaks through timing (token.c).
 *
 * One admin server per process: its state is the static `srv` below.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "sluice/http.h"
#include "sluice/log.h"
#include "sluice/pathmatch.h"
#include "admin.h"

#define MAX_HEAD (16 * 1024)
#define MAX_CONNS 64
#define IDLE_MS 60000
#define REQUEST_MS 10000   /* from a request's first byte to its last: see on_read */
#define WRITE_QUEUE_MAX (4 * 1024 * 1024)
#define SILENT_MS 1000     /* a new connection silent this long may give its slot up */
#define SLOW_MS 2000       /* ... and so may a request still incomplete this long */

typedef struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    int pending_closes;
    bool closing;
    bool close_after_write;    /* Connection: close, or an error that ends it */
    bool reading;
    bool continue_sent;
    bool lingering;            /* answered and shut down: discard input until EOF */
    bool head_only;            /* the request being answered is a HEAD: no body is sent */
    bool answered;             /* a request was answered: kept alive, it may be idle */
    bool http10_keep_alive;    /* an HTTP/1.0 request asked to be kept alive: say we do */
    bool token_checked;        /* this request's head is whole and its token was looked at */
    bool vouched;              /* ... and it is the right token */
    uv_shutdown_t shutdown;
    size_t body_got;           /* body bytes of the current request counted so far */
    uint64_t accepted_at;      /* uv_now() at accept */
    uint64_t request_at;       /* uv_now() at the first byte of the request being read */
    sl_http_parser_t parser;
    char *buf;                 /* bytes received, not yet consumed */
    size_t len;
    size_t cap;
    struct conn *prev, *next;
} conn_t;

static struct {
    sl_gateway_t *gw;
    uv_tcp_t listener;
    bool listening;
    bool accept_waiting;       /* a connection waits in the backlog for a free slot */
    bool have_token;
    unsigned char token_digest[SL_ADMIN_TOKEN_DIGEST];
    uv_timer_t evict_timer;    /* a client waits and no slot is free yet: look again */
    conn_t *conns;
    size_t n_conns;
} srv;

static void process(conn_t *c);
static void accept_one(void);

/* ---- connection lifetime ------------------------------------------------------ */

static void on_conn_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    if (--c->pending_closes > 0)
        return;
    free(c->buf);
    free(c);
}

static void conn_close(conn_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv.conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv.n_conns--;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_stop(&c->timer);
    c->pending_closes = 2;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
    /* A slot is free: take the client waiting in the backlog (see on_connection). */
    if (srv.accept_waiting && srv.listening && srv.n_conns < MAX_CONNS) {
        srv.accept_waiting = false;
        accept_one();
    }
}

static void on_idle(uv_timer_t *t)
{
    conn_close(t->data);
}

static void send_error(conn_t *c, int status, bool close, const char *extra, const char *msg);

/* A request still incomplete REQUEST_MS after its first byte: 408, and the connection ends. */
static void on_request_timeout(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (c->closing || c->lingering || c->close_after_write)
        return;
    send_error(c, 408, true, NULL, "request not received in time");
    if (!c->closing)
        uv_timer_start(&c->timer, on_idle, IDLE_MS, 0);   /* bounds the write, as before */
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn_t *c = req->data;
    if (status < 0)
        conn_close(c);
}

static void start_reading(conn_t *c);

/*
 * The last response is written: send FIN but keep reading (and discarding)
 * for a moment, so that a request body we refused to read does not turn the
 * close into a reset that destroys the response before the client reads it.
 */
static void linger(conn_t *c)
{
    if (c->lingering || c->closing)
        return;
    c->lingering = true;
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_idle, 2000, 0);
    start_reading(c);
}

/* ---- responses --------------------------------------------------------------- */

typedef struct wreq {
    uv_write_t req;
    conn_t *conn;
    char data[];
} wreq_t;

static void on_write(uv_write_t *req, int status)
{
    wreq_t *w = sl_container_of(req, wreq_t, req);
    conn_t *c = w->conn;
    free(w);
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->close_after_write && c->tcp.write_queue_size == 0) {
        linger(c);
        return;
    }
    if (!c->reading && !c->close_after_write && c->tcp.write_queue_size < WRITE_QUEUE_MAX / 2)
        process(c);   /* resumes reading once the buffered requests are answered */
}

static void send_raw(conn_t *c, const char *head, size_t hlen, const char *body, size_t blen)
{
    wreq_t *w = malloc(sizeof *w + hlen + blen);
    if (w == NULL) {
        conn_close(c);
        return;
    }
    w->conn = c;
    memcpy(w->data, head, hlen);
    if (blen)
        memcpy(w->data + hlen, body, blen);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)(hlen + blen));
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        free(w);
        conn_close(c);
    }
}

static void send_response(conn_t *c, sl_admin_resp_t *r)
{
    if (r->body.oom) {
        sl_buf_free(&r->body);
        sl_admin_error(r, 500, "out of memory");
    }
    if (r->content_type == NULL)
        sl_buf_append(&r->body, "\n", 1);    /* JSON: end with a newline for terminals */
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n%s%s\r\n",
                     r->status, sl_http_status_text(r->status),
                     r->content_type ? r->content_type : "application/json",
                     r->body.len, r->extra_headers ? r->extra_headers : "",
                     c->close_after_write ? "Connection: close\r\n"
                     : c->http10_keep_alive ? "Connection: keep-alive\r\n" : "");
    /* HEAD: the head a GET would get, Content-Length included, and no body. */
    send_raw(c, head, (size_t)SL_MIN((size_t)n, sizeof head - 1), r->body.data,
             c->head_only ? 0 : r->body.len);
}

void sl_admin_error(sl_admin_resp_t *resp, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    resp->status = status;
    resp->content_type = NULL;
    resp->body.len = 0;
    sl_jw_init(&resp->jw, &resp->body, false);
    sl_jw_obj(&resp->jw);
    sl_jw_kstr(&resp->jw, "error", msg);
    sl_jw_end(&resp->jw);
}

/* An error answered without a handler; closes the connection when asked. */
static void send_error(conn_t *c, int status, bool close, const char *extra, const char *msg)
{
    sl_admin_resp_t r = {0};
    sl_admin_error(&r, status, "%s", msg);
    r.extra_headers = extra;
    if (close)
        c->close_after_write = true;
    send_response(c, &r);
    sl_buf_free(&r.body);
}

/* ---- routing and authorisation ---------------------------------------------------- */

/* Does the request's head carry the token? Asked once per request, when its
   head is whole (request_ready); dispatch and the slow-body check read the
   answer kept in c->vouched, so a request's token is hashed once. */
static bool token_shown(const conn_t *c)
{
    const sl_http_header_t *a = sl_http_find(&c->parser.head, c->buf, "authorization");
    return a != NULL && sl_admin_token_ok(srv.token_digest, c->buf + a->value.off, a->value.len);
}

/* What the route table says about one method and path. */
typedef struct lookup {
    const sl_admin_route_t *found;   /* method and path match; params filled */
    bool path_known;                 /* some route has this path */
    bool public_path;                /* ... and it needs no token */
    char allow[128];                 /* "Allow: GET, PUT" for a 405 */
} lookup_t;

static void find_route(const char *method, const char *path, sl_admin_req_t *req,
                       char *scratch, size_t cap, lookup_t *lk)
{
    memset(lk, 0, sizeof *lk);
    strcpy(lk->allow, "Allow: ");
    for (size_t i = 0; i < sl_admin_n_routes; i++) {
        const sl_admin_route_t *rt = &sl_admin_routes[i];
        if (!sl_path_match(rt->pattern, path, req->params, SL_ADMIN_MAX_PARAMS, &req->n_params,
                           scratch, cap))
            continue;
        size_t n = strlen(lk->allow);
        /* Wherever GET is, HEAD is too (dispatch answers it as a GET without the body). */
        if (!lk->path_known || strstr(lk->allow, rt->method) == NULL)
            snprintf(lk->allow + n, sizeof lk->allow - n, "%s%s%s", lk->path_known ? ", " : "",
                     rt->method, strcmp(rt->method, "GET") == 0 ? ", HEAD" : "");
        lk->path_known = true;
        lk->public_path |= (rt->flags & SL_ADMIN_PUBLIC) != 0;
        if (strcmp(rt->method, method) == 0) {
            lk->found = rt;   /* the last match was this route's: params are its own */
            return;
        }
    }
}

/* Parse the body (when there is one), run the handler, send its answer. */
static void run_handler(conn_t *c, const sl_admin_route_t *route, sl_admin_req_t *req)
{
    sl_json_doc_t doc = {0};
    if (req->body_len > 0) {
        sl_json_error_t jerr = {0};
        /* Handlers read names and values as C strings (and keys with strcmp):
           a \u0000 would cut them short and the rest be silently ignored. */
        const sl_json_limits_t lim = {.no_nul = true};
        if (sl_json_parse(&doc, req->body, req->body_len, &lim, &jerr) != 0) {
            char msg[160];
            snprintf(msg, sizeof msg, "bad JSON at byte %zu: %s", jerr.offset, jerr.msg);
            send_error(c, 400, false, NULL, msg);
            return;
        }
        req->json = doc.root;
    }
    sl_admin_resp_t resp = {.status = 200};
    sl_jw_init(&resp.jw, &resp.body, false);
    route->handler(req, &resp);
    sl_json_doc_free(&doc);
    send_response(c, &resp);
    sl_buf_free(&resp.body);
}

/*
 * Route one complete request (head and body in c->buf) and answer it. The
 * token is checked before 404 and 405, so an anonymous client learns
 * nothing about which resources exist — a path too long for any route
 * included. HEAD is answered as GET without the body (RFC 9110, 9.3.2):
 * load balancers probe with it, and only GET routes, which change nothing,
 * are reached this way.
 */
static void dispatch(conn_t *c, const char *body, size_t body_len)
{
    const sl_http_head_t *h = &c->parser.head;
    char method[16], path[2048] = "", scratch[2048];
    snprintf(method, sizeof method, "%.*s", (int)h->method_text.len, c->buf + h->method_text.off);
    c->head_only = strcmp(method, "HEAD") == 0;
    sl_admin_req_t req = {.gw = srv.gw, .method = c->head_only ? "GET" : method, .path = path,
                          .query = "", .body = body, .body_len = body_len,
                          .now = uv_now(srv.gw->loop)};
    lookup_t lk = {0};
    /* Routed by the path, not the target as sent: an absolute-form target
       ("GET http://admin/healthz", RFC 9112 3.2.2: a server must accept it)
       was looked up whole and answered 404. */
    if (h->path.len < sizeof path) {
        memcpy(path, c->buf + h->path.off, h->path.len);
        path[h->path.len] = '\0';
        char *q = strchr(path, '?');
        if (q != NULL) {
            *q = '\0';
            req.query = q + 1;
        }
        find_route(req.method, path, &req, scratch, sizeof scratch, &lk);
    }
    if (!lk.public_path && srv.have_token && !c->vouched) {
        send_error(c, 401, false, "WWW-Authenticate: Bearer realm=\"sluice\"\r\n",
                   "missing or wrong bearer token");
    } else if (lk.found != NULL && req.query[0] != '\0' && strcmp(req.method, "GET") != 0) {
        /* No resource takes a query string. On a GET one changes nothing (a
           cache-buster); on an action it would be a parameter silently
           ignored: "POST /api/v1/reload?dry_run=1" reloaded for real. */
        send_error(c, 400, false, NULL, "a query string is not taken here: send the fields in "
                   "the JSON body");
    } else if (lk.found != NULL) {
        run_handler(c, lk.found, &req);
    } else if (!lk.path_known) {
        send_error(c, 404, false, NULL, "unknown resource");
    } else {
        strcat(lk.allow, "\r\n");
        send_error(c, 405, false, lk.allow, "method not allowed");
    }
    c->head_only = false;
}

/* ---- reading requests ---------------------------------------------------------- */

static void stop_reading(conn_t *c)
{
    if (c->reading)
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    /* One control thread: a static buffer, copied out in on_read at once. */
    static char chunk[64 * 1024];
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(chunk, sizeof chunk);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void start_reading(conn_t *c)
{
    if (!c->reading && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = true;
}

/* Drop the request just answered from the buffer; ready the parser for the next. */
static void consume(conn_t *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
    c->body_got = 0;
    c->continue_sent = false;
    c->token_checked = false;
    c->vouched = false;
    sl_http_parser_init(&c->parser, SL_HTTP_REQUEST, 0);
}

/* Is the head complete and is the body whole? Answers errors itself. */
static bool request_ready(conn_t *c, size_t *head_len)
{
    sl_http_parser_t *p = &c->parser;
    int hl = sl_http_parse_head(p, c->buf, c->len);
    if (hl == SL_NEED_MORE)
        return false;
    if (hl < 0) {
        send_error(c, p->error_status ? p->error_status : 400, true, NULL,
                   p->error_reason ? p->error_reason : "bad request");
        return false;
    }
    const sl_http_head_t *h = &p->head;
    /* A token shown spares a slow body from being shed (an_idle_conn). */
    if (srv.have_token && !c->token_checked) {
        c->vouched = token_shown(c);
        c->token_checked = true;
    }
    if (h->chunked) {
        send_error(c, 411, true, NULL, "chunked bodies are not accepted: send Content-Length");
        return false;
    }
    if (h->content_length > SL_ADMIN_MAX_BODY) {
        send_error(c, 413, true, NULL, "request body too large (limit 1 MiB)");
        return false;
    }
    bool done = false;
    size_t off = (size_t)hl + c->body_got;
    ssize_t n = sl_http_parse_body(p, c->buf + off, c->len - off, &done);
    if (n < 0) {
        send_error(c, 400, true, NULL, "malformed body");
        return false;
    }
    c->body_got += (size_t)n;
    if (!done) {
        const sl_http_header_t *e = sl_http_find(h, c->buf, "expect");
        if (e != NULL && !c->continue_sent && e->value.len == 12 &&
            strncasecmp(c->buf + e->value.off, "100-continue", 12) == 0) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            send_raw(c, cont, sizeof cont - 1, NULL, 0);
            c->continue_sent = true;
        }
        return false;
    }
    *head_len = (size_t)hl;
    return true;
}

/*
 * Between requests a connection may idle for IDLE_MS; once a request has
 * begun, it must be whole within REQUEST_MS of its first byte. Resetting
 * one timer on every read let a client sending a byte a minute hold one of
 * the MAX_CONNS slots for ever, and 64 such clients shut the API out.
 */
static void request_clock(conn_t *c)
{
    if (c->len == 0) {
        uv_timer_start(&c->timer, on_idle, IDLE_MS, IDLE_MS);
    } else {
        c->request_at = uv_now(srv.gw->loop);
        uv_timer_start(&c->timer, on_request_timeout, REQUEST_MS, 0);
    }
}

/* Answer every complete request in the buffer, in order; then read on. */
static void process(conn_t *c)
{
    while (!c->closing && !c->close_after_write) {
        if (c->tcp.write_queue_size >= WRITE_QUEUE_MAX) {
            stop_reading(c);    /* the client is not reading: on_write resumes */
            return;
        }
        size_t hl = 0;
        if (!request_ready(c, &hl))
            break;
        const sl_http_head_t *h = &c->parser.head;
        if (!h->keep_alive)
            c->close_after_write = true;
        /* An HTTP/1.0 client takes the connection as closed after the answer
           unless it says "keep-alive" (RFC 9112, C.2.2): without it, the
           client left and the connection held a slot until the idle timer. */
        c->http10_keep_alive = h->keep_alive && h->http_major == 1 && h->http_minor == 0;
        /* NUL-terminate the body for handlers, restoring the byte after it. */
        size_t end = hl + c->body_got;
        char saved = c->buf[end];
        c->buf[end] = '\0';
        dispatch(c, c->buf + hl, c->body_got);
        c->http10_keep_alive = false;
        c->answered = true;
        c->buf[end] = saved;
        consume(c, end);
        /* The next request's clock starts with its first byte (here, if pipelined). */
        if (!c->closing && !c->lingering)
            request_clock(c);
    }
    if (c->closing || c->close_after_write)
        stop_reading(c);
    else
        start_reading(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0 || c->lingering)
        return;
    bool first_bytes = c->len == 0;
    /* The buffer is bounded by one head and one body, and one byte for a NUL. */
    size_t need = c->len + (size_t)nread + 1;
    if (need > MAX_HEAD + SL_ADMIN_MAX_BODY + 1) {
        send_error(c, 413, true, NULL, "request too large");
        stop_reading(c);
        return;
    }
    if (need > c->cap) {
        size_t cap = SL_MAX(need, c->cap * 2);
        char *nb = realloc(c->buf, cap);
        if (nb == NULL) {
            conn_close(c);
            return;
        }
        c->buf = nb;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, buf->base, (size_t)nread);
    c->len += (size_t)nread;
    if (first_bytes)
        request_clock(c);
    process(c);
}

/* ---- accepting ------------------------------------------------------------------ */

static void accept_one(void)
{
    conn_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    uv_tcp_init(srv.gw->loop, &c->tcp);
    uv_timer_init(srv.gw->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->next = srv.conns;
    if (srv.conns)
        srv.conns->prev = c;
    srv.conns = c;
    srv.n_conns++;
    if (uv_accept((uv_stream_t *)&srv.listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->accepted_at = uv_now(srv.gw->loop);
    c->parser.max_head = MAX_HEAD;
    sl_http_parser_init(&c->parser, SL_HTTP_REQUEST, 0);
    uv_timer_start(&c->timer, on_idle, IDLE_MS, IDLE_MS);
    start_reading(c);
}

/*
 * A connection that may give its slot up, asked only when every slot is
 * taken and a client waits: one kept alive between requests (nothing read,
 * nothing being written); else the oldest that has sent nothing at all for
 * SILENT_MS since it was accepted; else the one whose request began
 * longest ago, once that is SLOW_MS, unless its head showed the right
 * token. Without the second, 64 connections that never sent a byte, no
 * token needed, kept every client out, /healthz probes included, for the
 * 60 s idle timeout, and again after each reconnect; without the third, 64
 * that sent a byte every few seconds did the same for the 10 s request
 * deadline, over and over, the operator's `sluice ctl` included. A request
 * from a real client arrives in one packet or a few, in milliseconds; the
 * 10 s deadline stays for when nobody waits. This is nginx's reuse of idle
 * connections when worker_connections run out, carried to the half-sent
 * requests that slowloris leaves. SILENT_MS spares a client whose request
 * is on its way but not read yet; a request that has begun gets twice as
 * long, and a silent connection goes before it.
 */
static conn_t *an_idle_conn(void)
{
    conn_t *silent = NULL, *slow = NULL;
    uint64_t now = uv_now(srv.gw->loop);
    for (conn_t *c = srv.conns; c; c = c->next) {
        if (c->closing || c->lingering || c->close_after_write || c->tcp.write_queue_size != 0)
            continue;
        if (c->len == 0 && c->answered)
            return c;
        /* The list is newest first: the last one found is the oldest. */
        if (c->len == 0 && now - c->accepted_at >= SILENT_MS)
            silent = c;
        else if (c->len != 0 && !c->vouched && now - c->request_at >= SLOW_MS &&
                 (slow == NULL || c->request_at <= slow->request_at))
            slow = c;
    }
    return silent != NULL ? silent : slow;
}

/* Give the waiting client a slot when one may be given up; else look again
   soon: libuv does not report the listener again until we accept. */
static void evict_for_waiting(uv_timer_t *t)
{
    (void)t;
    if (!srv.accept_waiting || !srv.listening)
        return;
    conn_t *idle = an_idle_conn();
    if (idle != NULL)
        conn_close(idle);   /* accepts the waiting one */
    else
        uv_timer_start(&srv.evict_timer, evict_for_waiting, SILENT_MS / 2, 0);
}

/*
 * At MAX_CONNS a new connection is not accepted and closed (a reset: 100
 * threads calling at once saw half their calls fail so): it is left
 * unaccepted — libuv holds it and stops watching the listener, the rest
 * wait in the kernel's backlog — and the next connection to close takes
 * its slot. A kept-alive connection idle between requests gives its slot up
 * at once, so idle clients cannot keep a busy one out; so does one that has
 * sent nothing since it was accepted SILENT_MS ago, or one whose request is
 * still incomplete SLOW_MS after it began (an_idle_conn).
 */
static void on_connection(uv_stream_t *server, int status)
{
    (void)server;
    if (status < 0)
        return;
    if (srv.n_conns >= MAX_CONNS) {
        srv.accept_waiting = true;
        evict_for_waiting(NULL);
        return;
    }
    accept_one();
}

/* ---- start and stop ----------------------------------------------------------------- */

int sl_admin_start(sl_gateway_t *gw, char *err, size_t errlen)
{
    sl_runtime_t *rt = sl_gateway_runtime(gw);
    const sl_cfg_admin_t *a = &rt->cfg->admin;
    int rc = 0;
    if (!a->enabled || srv.listening)
        goto out;
    /* main.c ran sl_admin_check already; these are repeated because the
       name may resolve elsewhere now and the file may have changed since,
       and what is bound and required must be what is checked right here. */
    struct sockaddr_storage ss;
    socklen_t sslen;
    char why[768];
    if ((rc = sl__admin_address(a, &ss, &sslen, why, sizeof why)) != 0) {
        snprintf(err, errlen, "admin.address: %s", why);
        goto out;
    }
    srv.have_token = false;
    if (a->token_file != NULL) {
        if ((rc = sl_admin_token_load(a->token_file, srv.token_digest, why, sizeof why)) != 0) {
            snprintf(err, errlen, "admin.token_file: %s", why);
            goto out;
        }
        srv.have_token = true;
    }
    srv.gw = gw;
    uv_tcp_init(gw->loop, &srv.listener);
    int e = uv_tcp_bind(&srv.listener, (const struct sockaddr *)&ss, 0);
    if (e == 0)
        e = uv_listen((uv_stream_t *)&srv.listener, 128, on_connection);
    if (e != 0) {
        snprintf(err, errlen, "admin.address %s: cannot listen: %s", a->address.text,
                 uv_strerror(e));
        uv_close((uv_handle_t *)&srv.listener, NULL);
        rc = SL_ADMIN_ELISTEN;
        goto out;
    }
    srv.listening = true;
    uv_timer_init(gw->loop, &srv.evict_timer);
    sl_log_info("admin API on %s%s", a->address.text,
                srv.have_token ? " (bearer token required)" : "");
out:
    sl_runtime_unref(rt);
    return rc;
}

int sl_admin_token_changed(const char *file, char *why, size_t len)
{
    unsigned char digest[SL_ADMIN_TOKEN_DIGEST];
    if (!srv.have_token)
        return 0;
    if (sl_admin_token_load(file, digest, why, len) != 0)
        return -1;
    int changed = CRYPTO_memcmp(digest, srv.token_digest, sizeof digest) != 0;
    OPENSSL_cleanse(digest, sizeof digest);
    return changed;
}

void sl_admin_stop(sl_gateway_t *gw)
{
    (void)gw;
    if (srv.listening) {
        uv_close((uv_handle_t *)&srv.listener, NULL);
        uv_close((uv_handle_t *)&srv.evict_timer, NULL);
        srv.listening = false;
    }
    while (srv.conns != NULL)
        conn_close(srv.conns);
}
