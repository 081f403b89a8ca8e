/*
 * http.c: HTTP/1.x message heads read with llhttp under limits, the extent
 * of a body, and the heads rewritten for the next hop.
 *
 * Why llhttp plus our own checks: llhttp is a well-tested state machine for
 * the grammar, but a gateway must also refuse what a backend could read
 * differently from us (request smuggling). llhttp 8.1 in its default mode
 * accepts obs-fold and whitespace before the colon, and only notices a
 * non-chunked final Transfer-Encoding once the body starts. So every head
 * byte also goes through a small raw scanner (NUL, bare CR, bare LF, obs-fold,
 * whitespace before the colon, a request's HTTP version), and the header list
 * is checked as a whole at headers-complete (Content-Length and
 * Transfer-Encoding, Host, the form of the request target). A chunked body's
 * framing goes through a scanner of its own the same way (scan_chunked): its
 * chunk-size lines, bounded, the CRLF after each chunk, the trailer section.
 *
 * Why the scanner runs first: the scanner stops at the first bad byte and
 * also finds the end of the head, and llhttp is then fed exactly up to that
 * point (and not into a request's version before the scanner has judged it
 * whole). llhttp therefore never sees a byte past the head (it cannot consume
 * body bytes or frames), and every result depends only on the bytes, never on
 * how they were split across calls: the tests check that for every split.
 *
 * Why offsets: the caller keeps the head in one growing buffer and passes all
 * of it each call; callbacks convert llhttp's pointers to offsets from that
 * call's base, and a span cut by a call boundary is extended, not restarted
 * (span_state remembers which span is open).
 */
#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "sluice/http.h"

enum {
    DEFAULT_MAX_HEAD = 16 * 1024,
    DEFAULT_MAX_HEADERS = 100,
    DEFAULT_MAX_REQUEST_LINE = 8 * 1024,
};

enum { SPAN_NONE, SPAN_METHOD, SPAN_URL, SPAN_STATUS, SPAN_FIELD, SPAN_VALUE };

/* Raw scanner states (p->scan_state). */
enum {
    SC_PRE, SC_START, SC_TARGET, SC_VERSION, SC_START_CR, SC_LINE0, SC_NAME, SC_VALUE, SC_END_CR,
    SC_DONE
};

static sl_http_parser_t *owner(llhttp_t *ll)
{
    return ll->data;
}

/* Record a refusal; returns -1 so a callback can hand it straight to llhttp. */
static int fail(sl_http_parser_t *p, int request_status, const char *reason)
{
    if (p->error_status == 0) {
        p->error_status = p->type == SL_HTTP_REQUEST ? request_status : 502;
        p->error_reason = reason;
    }
    return -1;
}

static void span_add(sl_http_parser_t *p, sl_http_span_t *s, uint8_t kind,
                     const char *at, size_t n)
{
    if (p->span_state != kind) {
        s->off = (uint32_t)(at - p->base);
        p->span_state = kind;
    }
    s->len = (uint32_t)(at + n - p->base) - s->off;
}

static bool head_phase(const sl_http_parser_t *p)
{
    return p->phase == SL_HTTP_PHASE_HEAD;
}

static int on_method(llhttp_t *ll, const char *at, size_t n)
{
    sl_http_parser_t *p = owner(ll);
    if (head_phase(p))
        span_add(p, &p->head.method_text, SPAN_METHOD, at, n);
    return 0;
}

static int on_url(llhttp_t *ll, const char *at, size_t n)
{
    sl_http_parser_t *p = owner(ll);
    if (!head_phase(p))
        return 0;
    span_add(p, &p->head.url, SPAN_URL, at, n);
    return 0;
}

static int on_status(llhttp_t *ll, const char *at, size_t n)
{
    sl_http_parser_t *p = owner(ll);
    if (head_phase(p))
        span_add(p, &p->head.reason, SPAN_STATUS, at, n);
    return 0;
}

static int on_span_complete(llhttp_t *ll)
{
    owner(ll)->span_state = SPAN_NONE;
    return 0;
}

static int on_field(llhttp_t *ll, const char *at, size_t n)
{
    sl_http_parser_t *p = owner(ll);
    if (!head_phase(p))
        return 0;   /* chunked trailers: forwarded raw, not modelled */
    if (p->span_state != SPAN_FIELD) {
        if (p->head.n_headers >= SL_HTTP_MAX_HEADERS)   /* the scanner counts first */
            return fail(p, 431, "too many header fields");
        p->head.n_headers++;
    }
    span_add(p, &p->head.headers[p->head.n_headers - 1].name, SPAN_FIELD, at, n);
    return 0;
}

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int on_field_complete(llhttp_t *ll)
{
    sl_http_parser_t *p = owner(ll);
    p->span_state = SPAN_NONE;
    if (!head_phase(p) || p->head.n_headers == 0)
        return 0;
    sl_http_header_t *h = &p->head.headers[p->head.n_headers - 1];
    if (h->name.len == 0)
        return fail(p, 400, "empty header name");
    for (uint32_t i = 0; i < h->name.len; i++)
        if (!is_tchar((unsigned char)p->base[h->name.off + i]))
            return fail(p, 400, "invalid header name");
    h->value.off = h->name.off + h->name.len;
    h->value.len = 0;
    return 0;
}

static int on_value(llhttp_t *ll, const char *at, size_t n)
{
    sl_http_parser_t *p = owner(ll);
    if (head_phase(p) && p->head.n_headers > 0)
        span_add(p, &p->head.headers[p->head.n_headers - 1].value, SPAN_VALUE, at, n);
    return 0;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static int on_value_complete(llhttp_t *ll)
{
    sl_http_parser_t *p = owner(ll);
    p->span_state = SPAN_NONE;
    if (!head_phase(p) || p->head.n_headers == 0)
        return 0;
    sl_http_span_t *v = &p->head.headers[p->head.n_headers - 1].value;
    while (v->len > 0 && is_ows(p->base[v->off])) {
        v->off++;
        v->len--;
    }
    while (v->len > 0 && is_ows(p->base[v->off + v->len - 1]))
        v->len--;
    return 0;
}

/* Does span s of base read `name`, case aside? */
static bool span_is(const char *base, sl_http_span_t s, const char *name)
{
    return s.len == strlen(name) && strncasecmp(base + s.off, name, s.len) == 0;
}

static bool name_is(const sl_http_parser_t *p, const sl_http_header_t *h, const char *name)
{
    return span_is(p->base, h->name, name);
}

bool sl_http_next_element(const char *v, size_t len, size_t *pos, const char **tok,
                          size_t *tlen)
{
    if (*pos > len)
        return false;
    size_t s = *pos, e = s;
    while (e < len && v[e] != ',')
        e++;
    *pos = e + 1;
    while (s < e && is_ows(v[s]))
        s++;
    while (e > s && is_ows(v[e - 1]))
        e--;
    *tok = v + s;
    *tlen = e - s;
    return true;
}

/* Does the list value[0..len) hold token[0..want), case aside? Compared in
   place, of any length: a copy into a fixed buffer once let a header name
   of 128 bytes or more that Connection listed through to the next hop. */
static bool has_token_n(const char *value, size_t len, const char *token, size_t want)
{
    size_t pos = 0, tlen;
    const char *tok;
    while (sl_http_next_element(value, len, &pos, &tok, &tlen))
        if (tlen == want && strncasecmp(tok, token, want) == 0)
            return true;
    return false;
}

bool sl_http_has_token(const char *value, size_t len, const char *token)
{
    return has_token_n(value, len, token, strlen(token));
}

/* 1*DIGIT without overflow; the value is already trimmed. */
static int64_t parse_length(const char *s, size_t n)
{
    if (n == 0 || n > 18)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/*
 * Transfer-Encoding across all its header lines: is the final coding chunked,
 * and is chunked anywhere but last (never valid)?
 */
static int transfer_coding(const sl_http_parser_t *p, bool *chunked)
{
    bool last_chunked = false, misplaced = false;
    for (uint32_t i = 0; i < p->head.n_headers; i++) {
        const sl_http_header_t *h = &p->head.headers[i];
        if (!name_is(p, h, "transfer-encoding"))
            continue;
        size_t pos = 0, tlen;
        const char *tok;
        while (sl_http_next_element(p->base + h->value.off, h->value.len, &pos, &tok, &tlen)) {
            if (tlen == 0)
                continue;
            if (last_chunked)
                misplaced = true;
            last_chunked = tlen == 7 && strncasecmp(tok, "chunked", 7) == 0;
        }
    }
    *chunked = last_chunked;
    return misplaced ? -1 : 0;
}

/* The framing headers, checked as a whole once the head is complete. */
static int check_framing(sl_http_parser_t *p)
{
    sl_http_head_t *hd = &p->head;
    uint32_t n_te = 0, n_host = 0;
    for (uint32_t i = 0; i < hd->n_headers; i++) {
        const sl_http_header_t *h = &hd->headers[i];
        if (name_is(p, h, "content-length")) {
            if (++p->n_content_length > 1)
                return fail(p, 400, "duplicate Content-Length");
            hd->content_length = parse_length(p->base + h->value.off, h->value.len);
            if (hd->content_length < 0)
                return fail(p, 400, "invalid Content-Length");
        } else if (name_is(p, h, "transfer-encoding")) {
            n_te++;
        } else if (name_is(p, h, "host")) {
            n_host++;
        }
    }
    p->saw_transfer_encoding = n_te > 0;
    if (n_te > 0 && p->n_content_length > 0)
        return fail(p, 400, "Content-Length with Transfer-Encoding");
    if (n_host > 1)
        return fail(p, 400, "duplicate Host");
    if (transfer_coding(p, &hd->chunked) < 0)
        return fail(p, 400, "chunked is not the final transfer coding");
    if (p->type == SL_HTTP_REQUEST && n_te > 0 && !hd->chunked)
        return fail(p, 400, "final transfer coding is not chunked");
    return 0;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hexdig(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 3986 2.3 unreserved and 2.2 sub-delims: the bytes of a reg-name besides pct-encoded. */
static bool is_unreserved_or_sub_delim(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c))
        return true;
    return c != '\0' && strchr("-._~!$&'()*+,;=", c) != NULL;
}

/* s[0..n) as an address of `family` (AF_INET or AF_INET6) into addr; false if it is none. */
static bool parse_ip(const char *s, size_t n, int family, unsigned char addr[16])
{
    char tmp[INET6_ADDRSTRLEN];
    if (n == 0 || n >= sizeof tmp)
        return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return inet_pton(family, tmp, addr) == 1;
}

/* RFC 3986 3.2.2 IP-literal without its brackets: IPv6address or IPvFuture. */
static bool valid_ip_literal(const char *s, size_t n)
{
    if (n > 0 && (s[0] == 'v' || s[0] == 'V')) {   /* "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) */
        size_t i = 1;
        while (i < n && is_hexdig(s[i]))
            i++;
        if (i == 1 || i + 1 >= n || s[i] != '.')
            return false;
        for (i++; i < n; i++)
            if (s[i] != ':' && !is_unreserved_or_sub_delim(s[i]))
                return false;
        return true;
    }
    unsigned char addr[sizeof(struct in6_addr)];
    return parse_ip(s, n, AF_INET6, addr);
}

/*
 * A Host field value or an http(s) target's authority: uri-host [ ":" port ]
 * (RFC 9110 7.2, 4.2.1; RFC 3986 3.2.2-3.2.3). No userinfo: RFC 9110 4.2.4
 * has a recipient treat it as an error, and "evil@good.test" reads as two
 * different hosts to two different parsers. The host may not be empty: RFC
 * 9110 4.2.1 has a recipient reject an http URI with an empty host, which is
 * what the target URI built from an empty Host would be (RFC 9112 3.3). The
 * grammar's port is *DIGIT; beyond 65535 it names no TCP port and a backend
 * storing it in 16 bits would read another one, so it is refused too.
 */
static bool valid_authority(const char *s, size_t n)
{
    size_t i = 0;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL || !valid_ip_literal(s + 1, (size_t)(close - s) - 1))
            return false;
        i = (size_t)(close - s) + 1;
    } else {
        for (; i < n && s[i] != ':'; i++) {   /* reg-name, IPv4address among them */
            if (s[i] == '%') {
                if (i + 2 >= n || !is_hexdig(s[i + 1]) || !is_hexdig(s[i + 2]))
                    return false;
                i += 2;
            } else if (!is_unreserved_or_sub_delim(s[i])) {
                return false;
            }
        }
        if (i == 0)
            return false;
    }
    if (i == n)
        return true;
    if (s[i] != ':')
        return false;
    unsigned long port = 0;
    for (i++; i < n; i++) {
        if (!is_digit(s[i]))
            return false;
        port = port * 10 + (unsigned long)(s[i] - '0');
        if (port > 65535)
            return false;
    }
    return true;
}

/*
 * An absolute-form target (RFC 9112 3.2.2), "scheme://authority[path-abempty][?query]"
 * (llhttp has checked that much): its authority becomes the host to route
 * by, the Host field being ignored, and its path the path, "/" when empty
 * (RFC 9112 3.2.1). Only http and https are served; another scheme is not a
 * resource of ours.
 */
static int absolute_target(sl_http_parser_t *p)
{
    sl_http_head_t *hd = &p->head;
    const char *u = p->base + hd->url.off;
    size_t n = hd->url.len, colon = 0;
    while (colon < n && u[colon] != ':')
        colon++;
    if (colon + 3 > n || u[colon + 1] != '/' || u[colon + 2] != '/')
        return fail(p, 400, "malformed absolute-form target");
    if (!((colon == 4 && strncasecmp(u, "http", 4) == 0) ||
          (colon == 5 && strncasecmp(u, "https", 5) == 0)))
        return fail(p, 400, "absolute-form target with a scheme other than http or https");
    size_t a = colon + 3, e = a;
    while (e < n && u[e] != '/' && u[e] != '?')
        e++;
    if (!valid_authority(u + a, e - a))
        return fail(p, 400, "invalid authority in the request target");
    hd->absolute_form = true;
    hd->host = (sl_http_span_t){hd->url.off + (uint32_t)a, (uint32_t)(e - a)};
    if (e < n && u[e] == '/')
        hd->path = (sl_http_span_t){hd->url.off + (uint32_t)e, (uint32_t)(n - e)};
    else    /* an empty path: the second slash of "://" stands for its "/" */
        hd->path = (sl_http_span_t){hd->url.off + (uint32_t)colon + 2, 1};
    return 0;
}

/*
 * The asterisk-form (RFC 9112 3.2.4) is "*" alone, and only for OPTIONS: a
 * question about the server as a whole. It is routed as "/" would be (the
 * service its host routes to answers for the server) and goes on as "*".
 * The "/" of the request line's "HTTP/" stands for that path: spans index
 * the head. Other targets starting with "*" ("GET *", "OPTIONS *x") were
 * routed as paths and forwarded.
 */
static int asterisk_target(sl_http_parser_t *p)
{
    sl_http_head_t *hd = &p->head;
    if (hd->url.len != 1 || hd->method != HTTP_OPTIONS)
        return fail(p, 400, "asterisk-form target other than OPTIONS *");
    hd->asterisk_form = true;
    hd->path = (sl_http_span_t){p->version_at + 4, 1};
    return 0;
}

/*
 * What a request must have besides framing (the scanner has let through only
 * HTTP/1.0 and HTTP/1.1), and what to route it by.
 */
/*
 * A "%" in the path must start an escape, "%" HEXDIG HEXDIG (RFC 3986 2.1).
 * Routes match the path decoded; read one way by the gateway and another by
 * a lenient backend ("%5%61" is "%5a" to one, "%Z"? to another), a stray
 * "%" could steer a request past a route. The query is left to the
 * application ("?q=100%" is common and decoded by nobody on the way).
 */
static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

static bool path_escapes_valid(const char *u, size_t n)
{
    for (size_t i = 0; i < n && u[i] != '?' && u[i] != '#'; i++)
        if (u[i] == '%' && (i + 2 >= n || !is_hex(u[i + 1]) || !is_hex(u[i + 2])))
            return false;
    return true;
}

static int check_request(sl_http_parser_t *p)
{
    sl_http_head_t *hd = &p->head;
    /* RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing: an
       HTTP/1.0 backend would ignore it and read the chunks as requests. */
    if (hd->http_minor == 0 && p->saw_transfer_encoding)
        return fail(p, 400, "Transfer-Encoding in an HTTP/1.0 request");
    /* RFC 9112 3.2: 400 for an HTTP/1.1 request without Host and for any
       request with an invalid one (check_framing refused a second), also
       when an absolute-form target makes Host unused. One rule for every
       request, upgrades included. */
    const sl_http_header_t *host = sl_http_find(hd, p->base, "host");
    if (host == NULL && hd->http_minor >= 1)
        return fail(p, 400, "no Host in an HTTP/1.1 request");
    if (host != NULL && !valid_authority(p->base + host->value.off, host->value.len))
        return fail(p, 400, "invalid Host");
    if (host != NULL)
        hd->host = host->value;
    hd->path = hd->url;
    const char *u = p->base + hd->url.off;
    if (hd->url.len > 0 && u[0] == '*')
        return asterisk_target(p);
    bool origin = hd->url.len > 0 && u[0] == '/';
    if (hd->method != HTTP_CONNECT && !origin && absolute_target(p) < 0)   /* CONNECT's is
                                                                              authority-form */
        return -1;
    if (!path_escapes_valid(p->base + hd->path.off, hd->path.len))
        return fail(p, 400, "bad percent-encoding in the path (expected %XX, two hex digits)");
    return 0;
}

static bool connection_has(const sl_http_parser_t *p, const char *token)
{
    for (uint32_t i = 0; i < p->head.n_headers; i++) {
        const sl_http_header_t *h = &p->head.headers[i];
        if (name_is(p, h, "connection") &&
            sl_http_has_token(p->base + h->value.off, h->value.len, token))
            return true;
    }
    return false;
}

/*
 * A response's status code is three digits, 100 to 599 (RFC 9112 4, RFC
 * 9110 15). llhttp takes "2", "099" and "0200": passed on, a 99 was written
 * as an interim answer without its body's framing, and the client read that
 * body as the next response. The head is whole in base (it starts with the
 * status line) when this runs.
 */
static bool status_code_valid(const sl_http_parser_t *p)
{
    const char *l = p->base;
    size_t i = 0;
    while (i < 16 && l[i] != ' ')   /* llhttp read "HTTP/x.y" before it */
        i++;
    i++;
    size_t digits = 0;
    while (digits < 4 && l[i + digits] >= '0' && l[i + digits] <= '9')
        digits++;
    char after = l[i + digits];
    return digits == 3 && (after == ' ' || after == '\r' || after == '\n') &&
           p->head.status >= 100 && p->head.status <= 599;
}

static int on_headers_complete(llhttp_t *ll)
{
    sl_http_parser_t *p = owner(ll);
    sl_http_head_t *hd = &p->head;
    hd->method = ll->method;
    hd->http_major = ll->http_major;
    hd->http_minor = ll->http_minor;
    hd->status = ll->status_code;
    if (p->type == SL_HTTP_RESPONSE && !status_code_valid(p))
        return fail(p, 400, "status code not three digits from 100 to 599");
    if (check_framing(p) < 0)
        return -1;
    /* Our reading of Transfer-Encoding must be llhttp's, which frames the
       body: where they differ ("chunked," and friends), a peer could read the
       body a third way, so the message is refused. */
    if (hd->chunked != ((ll->flags & F_CHUNKED) != 0))
        return fail(p, 400, "ambiguous Transfer-Encoding");
    if (p->type == SL_HTTP_REQUEST && check_request(p) < 0)
        return -1;

    bool has_upgrade = false;
    for (uint32_t i = 0; i < hd->n_headers && !has_upgrade; i++)
        has_upgrade = name_is(p, &hd->headers[i], "upgrade");
    hd->upgrade = has_upgrade && connection_has(p, "upgrade");

    if (p->type == SL_HTTP_RESPONSE) {
        int s = hd->status;
        p->no_body = p->request_method == HTTP_HEAD || (s >= 100 && s < 200) ||
                     s == 204 || s == 304;
        p->body_until_eof = !p->no_body && !hd->chunked && hd->content_length < 0;
    }
    if (hd->http_major > 1 || (hd->http_major == 1 && hd->http_minor >= 1))
        hd->keep_alive = !connection_has(p, "close");
    else
        hd->keep_alive = connection_has(p, "keep-alive");
    if (p->body_until_eof)
        hd->keep_alive = false;
    return HPE_PAUSED;
}

static int on_message_complete(llhttp_t *ll)
{
    return HPE_PAUSED;
}

/* Trailer section scanner states (p->trailer_state); TR_NONE before it. */
enum { TR_NONE, TR_LINE0, TR_NAME, TR_VALUE, TR_CR, TR_END_CR, TR_DONE };

static const llhttp_settings_t settings = {
    .on_method = on_method,
    .on_url = on_url,
    .on_status = on_status,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
    .on_method_complete = on_span_complete,
    .on_url_complete = on_span_complete,
    .on_status_complete = on_span_complete,
    .on_header_field_complete = on_field_complete,
    .on_header_value_complete = on_value_complete,
};

void sl_http_parser_init(sl_http_parser_t *p, sl_http_type_t type, uint8_t request_method)
{
    uint32_t max_head = p->max_head ? p->max_head : DEFAULT_MAX_HEAD;
    uint32_t max_headers = p->max_headers ? p->max_headers : DEFAULT_MAX_HEADERS;
    uint32_t max_line = p->max_request_line ? p->max_request_line : DEFAULT_MAX_REQUEST_LINE;
    memset(p, 0, sizeof *p);
    p->max_head = max_head;
    p->max_headers = SL_MIN(max_headers, (uint32_t)SL_HTTP_MAX_HEADERS);
    p->max_request_line = max_line;
    p->head.content_length = -1;
    p->type = type;
    p->request_method = request_method;
    llhttp_init(&p->ll, type == SL_HTTP_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE, &settings);
    p->ll.data = p;
}

/* A refusal found by the scanner, at a byte position, not yet recorded. */
typedef struct bad {
    size_t at;
    int status;
    const char *why;
} bad_t;

static long scan_bad(bad_t *b, size_t at, int status, const char *why)
{
    b->at = at;
    b->status = status;
    b->why = why;
    return -1;
}

/*
 * One byte of a request line's HTTP-version, which must be exactly "HTTP/"
 * DIGIT "." DIGIT CR (RFC 9112 2.3; the name is case-sensitive). llhttp
 * accepts 0.9, 2.0 and RTSP/1.0 and refuses 3.0 with a 400 of its own, so
 * the version is judged here, whole: a refusal is placed at the version's
 * first byte, which llhttp has not been given (sl_http_parse_head holds the
 * version back until this judgement), so the status never depends on how
 * far llhttp got. A well-formed version of another major is 505 (RFC 9110
 * 15.6.6). HTTP/1.2 to 1.9 get 400 like any other version but 1.0 and 1.1:
 * RFC 9110 6.2 would have them read as 1.1, but llhttp cannot parse them.
 */
static long scan_version(sl_http_parser_t *p, const char *buf, char c, size_t i, bad_t *b)
{
    static const char pattern[] = "HTTP/D.D";
    size_t k = i - p->version_at;
    if (k < sizeof pattern - 1) {
        bool ok = pattern[k] == 'D' ? c >= '0' && c <= '9' : c == pattern[k];
        return ok ? 0 : scan_bad(b, p->version_at, 400, "malformed HTTP version");
    }
    if (c != '\r')
        return scan_bad(b, p->version_at, 400, "malformed HTTP version");
    const char *v = buf + p->version_at;
    if (v[5] != '1')
        return scan_bad(b, p->version_at, 505, "HTTP major version other than 1");
    if (v[7] != '0' && v[7] != '1')
        return scan_bad(b, p->version_at, 400, "HTTP/1 minor version other than 0 or 1");
    p->scan_state = SC_START_CR;
    return 0;
}

/* The start line: counts request-target bytes, so 414 comes at the limit. */
static long scan_start_line(sl_http_parser_t *p, const char *buf, char c, size_t i, bad_t *b)
{
    if (p->type == SL_HTTP_REQUEST) {
        if (p->scan_state == SC_VERSION)
            return scan_version(p, buf, c, i, b);
        /* HTTP/0.9's "GET /" CRLF, no version; judged at the LF, so that a
           CR that is not followed by one is reported as a bare CR. */
        if (p->scan_state == SC_TARGET && c == '\n')
            return scan_bad(b, i, 400, "request line without an HTTP version");
    }
    if (c == '\n') {
        p->scan_state = SC_LINE0;
    } else if (p->type == SL_HTTP_REQUEST && c == ' ') {
        if (p->scan_state == SC_START) {
            p->scan_state = SC_TARGET;
        } else if (p->scan_target == 0) {
            /* Two spaces after the method: no target (RFC 9112 3: one SP
               each). llhttp skips them and takes what follows as the target,
               where this scan takes it as the version: "CONNECT  HTTP/1.1"
               passed both, as an HTTP/0.9 CONNECT to "HTTP/1.1". */
            return scan_bad(b, i, 400, "no request target (two spaces after the method)");
        } else {
            p->scan_state = SC_VERSION;
            p->version_at = (uint32_t)(i + 1);
        }
    } else if (p->scan_state == SC_TARGET && c != '\r') {
        if (++p->scan_target > p->max_request_line)
            return scan_bad(b, i, 414, "request target too long");
        /* No request-target form has a fragment (RFC 9112 3.2). llhttp takes
           one into the URL, so we would route "/a#/b" by a path the backend,
           dropping the fragment, does not serve ("/img.png" rules and the
           like; HAProxy's CVE-2023-45539). */
        if (c == '#' && p->type == SL_HTTP_REQUEST)
            return scan_bad(b, i, 400, "fragment in the request target");
    }
    return 0;
}

/*
 * The raw checks over head bytes [from, to). Returns the offset just after
 * the LF that ends the head, 0 when the head goes on past `to`, or -1 with
 * the first bad byte in *b (not yet recorded: an error llhttp finds before
 * that byte wins). Limits are counted here too, by byte position, so where a
 * limit trips never depends on where llhttp happened to flush a span. `buf`
 * is the whole head buffer, so the byte before `from` is there to look at.
 */
static long scan(sl_http_parser_t *p, const char *buf, size_t from, size_t to, bad_t *b)
{
    for (size_t i = from; i < to; i++) {
        char c = buf[i];
        char prev = i > 0 ? buf[i - 1] : 0;
        if (c == '\0')
            return scan_bad(b, i, 400, "NUL in head");
        if (prev == '\r' && c != '\n')
            return scan_bad(b, i, 400, "bare CR in head");
        if (c == '\n' && prev != '\r')
            return scan_bad(b, i, 400, "bare LF in head");
        switch (p->scan_state) {
        case SC_PRE:        /* empty lines before the start line are skipped */
            if (c != '\r' && c != '\n')
                p->scan_state = SC_START;
            break;
        case SC_START:
        case SC_TARGET:
        case SC_VERSION:
            if (scan_start_line(p, buf, c, i, b) < 0)
                return -1;
            break;
        case SC_START_CR:   /* only '\n' gets here, bare CR is refused above */
            p->scan_state = SC_LINE0;
            break;
        case SC_LINE0:
            if (is_ows(c))
                return scan_bad(b, i, 400, "obs-fold (header line starting with whitespace)");
            if (c == '\r') {
                p->scan_state = SC_END_CR;
                break;
            }
            if (++p->scan_headers > p->max_headers)
                return scan_bad(b, i, 431, "too many header fields");
            p->scan_state = c == ':' ? SC_VALUE : SC_NAME;
            break;
        case SC_NAME:
            if (is_ows(c))
                return scan_bad(b, i, 400, "whitespace in header name or before colon");
            if (c == ':')
                p->scan_state = SC_VALUE;
            else if (c == '\n')
                p->scan_state = SC_LINE0;
            break;
        case SC_VALUE:
            if (c == '\n')
                p->scan_state = SC_LINE0;
            break;
        default:            /* SC_END_CR: only '\n' gets here, bare CR is refused above */
            p->scan_state = SC_DONE;
            return (long)(i + 1);
        }
    }
    return 0;
}

static int llhttp_failed(sl_http_parser_t *p, llhttp_errno_t e)
{
    if (p->error_status == 0) {
        const char *r = llhttp_get_error_reason(&p->ll);
        fail(p, 400, r ? r : llhttp_errno_name(e));
    }
    return SL_EINVAL;
}

static int refuse(sl_http_parser_t *p, int request_status, const char *reason)
{
    fail(p, request_status, reason);
    return SL_EINVAL;
}

/*
 * The raw scan ran first and llhttp after it, up to the scan's verdict (see
 * the top of the file): do they agree? `end` is the scan's verdict (> 0:
 * the part ends there; 0: it goes on; < 0: refused, why in *bad). Returns
 * where the part ends when llhttp paused there too, 0 when neither saw an
 * end, or a refusal: an error llhttp found first wins, and an end only one
 * of the two saw is malformed.
 */
static long agreed_end(sl_http_parser_t *p, llhttp_errno_t e, const char *buf, long end,
                       const bad_t *bad, const char *malformed)
{
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
        long at = (long)(llhttp_get_error_pos(&p->ll) - buf);
        return end > 0 && at == end ? at : refuse(p, 400, malformed);
    }
    if (e != HPE_OK)
        return llhttp_failed(p, e);
    if (end < 0)
        return refuse(p, bad->status, bad->why);
    return end > 0 ? refuse(p, 400, malformed) : 0;
}

/* llhttp paused at headers complete: the head ends at `at`. */
static int head_done(sl_http_parser_t *p, size_t at)
{
    p->fed = at;
    p->head.head_len = (uint32_t)at;
    p->phase = SL_HTTP_PHASE_BODY;
    llhttp_resume(&p->ll);
    return (int)at;
}

int sl_http_parse_head(sl_http_parser_t *p, const char *buf, size_t len)
{
    if (p->error_status != 0)
        return SL_EINVAL;
    if (p->phase != SL_HTTP_PHASE_HEAD)
        return (int)p->head.head_len;
    if (len < p->scanned)
        return SL_ESTATE;   /* the caller's buffer shrank: misuse */
    size_t end = SL_MIN(len, (size_t)p->max_head);
    bad_t bad = {0};
    long head_end = scan(p, buf, p->scanned, end, &bad);
    size_t feed_to = head_end > 0 ? (size_t)head_end : head_end < 0 ? bad.at : end;
    /* A request's version is judged whole by the scanner (scan_version):
       until then llhttp gets none of it. */
    if (head_end == 0 && p->scan_state == SC_VERSION)
        feed_to = p->version_at;

    p->base = buf;
    p->ll.data = p;
    llhttp_errno_t e = HPE_OK;
    if (feed_to > p->fed)
        e = llhttp_execute(&p->ll, buf + p->fed, feed_to - p->fed);
    long at = agreed_end(p, e, buf, head_end, &bad, "malformed head");
    if (at != 0)
        return at < 0 ? (int)at : head_done(p, (size_t)at);
    p->fed = feed_to;
    p->scanned = end;
    if (len > p->max_head)
        return refuse(p, 431, "head too large");
    return SL_NEED_MORE;
}

/*
 * The raw checks and limits of the head, over a chunked body's trailer
 * section buf[from, len): llhttp 8.1 in its default mode accepts obs-fold and
 * whitespace before the colon there, and a bare LF ending a line or the
 * section, and forwarded as they are, a backend could read the section's
 * end (and so where the next request starts) elsewhere. The state goes on
 * across calls; the scan stops at the section's end. Returns the offset just
 * after that end, 0 when the section goes on past len, or -1 with the first
 * bad byte in *b.
 */
static long scan_trailers(sl_http_parser_t *p, const char *buf, size_t from, size_t len,
                          bad_t *b)
{
    for (size_t i = from; i < len; i++) {
        char c = buf[i];
        if (c == '\0')
            return scan_bad(b, i, 400, "NUL in trailer section");
        /* The head's limits: fields are fields, wherever they come. */
        if (++p->trailer_bytes > p->max_head)
            return scan_bad(b, i, 431, "trailer section too large");
        switch (p->trailer_state) {
        case TR_LINE0:
            if (c != '\r' && ++p->trailer_fields > p->max_headers)
                return scan_bad(b, i, 431, "too many trailer fields");
            if (c == '\r')
                p->trailer_state = TR_END_CR;
            else if (is_ows(c))
                return scan_bad(b, i, 400, "obs-fold in trailer section");
            else if (c == '\n')
                return scan_bad(b, i, 400, "bare LF in trailer section");
            else if (!is_tchar((unsigned char)c))
                return scan_bad(b, i, 400, "invalid trailer field name");
            else
                p->trailer_state = TR_NAME;
            break;
        case TR_NAME:
            if (c == ':')
                p->trailer_state = TR_VALUE;
            else if (is_ows(c))
                return scan_bad(b, i, 400, "whitespace in trailer field name or before colon");
            else if (!is_tchar((unsigned char)c))
                return scan_bad(b, i, 400, "invalid trailer field name");
            break;
        case TR_VALUE:
            if (c == '\r')
                p->trailer_state = TR_CR;
            else if (c == '\n')
                return scan_bad(b, i, 400, "bare LF in trailer section");
            break;
        default:            /* TR_CR, TR_END_CR: only LF may follow a CR */
            if (c != '\n')
                return scan_bad(b, i, 400, "bare CR in trailer section");
            if (p->trailer_state == TR_END_CR) {
                p->trailer_state = TR_DONE;
                return (long)(i + 1);
            }
            p->trailer_state = TR_LINE0;
            break;
        }
    }
    return 0;
}

/* Chunked framing scanner states (p->chunk_state): a chunk-size line, from
   its size through its extensions to its LF, the chunk's data and the CRLF
   after it, and after the last chunk the trailer section (scan_trailers). */
enum {
    CK_SIZE0, CK_SIZE, CK_NAME0, CK_NAME, CK_VALUE0, CK_TOKEN, CK_QUOTED, CK_QUOTED_END, CK_LF,
    CK_DATA, CK_DATA_CR, CK_DATA_LF, CK_TRAILERS
};

/* RFC 9110 5.6.4 qdtext: llhttp's quoted chunk extension values take DEL too. */
static bool is_qdtext(unsigned char c)
{
    return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5B) ||
           (c >= 0x5D && c <= 0x7E) || c >= 0x80;
}

static unsigned hex_value(unsigned char c)
{
    return is_digit((char)c) ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* After a size, a name or a value: another extension, or the line's CR. */
static long chunk_ext_next(sl_http_parser_t *p, unsigned char c, size_t i, bad_t *b)
{
    if (c == ';')
        p->chunk_state = CK_NAME0;
    else if (c == '\r')
        p->chunk_state = CK_LF;
    else
        return scan_bad(b, i, 400, "invalid chunk extension");
    return 0;
}

/* The size, a hex number that must fit in 64 bits (llhttp's bound too). */
static long chunk_size_digit(sl_http_parser_t *p, unsigned char c, size_t i, bad_t *b)
{
    if (!is_hexdig((char)c)) {
        if (p->chunk_state == CK_SIZE0)
            return scan_bad(b, i, 400, "invalid chunk size");
        return chunk_ext_next(p, c, i, b);
    }
    if (p->chunk_left >> 60 != 0)
        return scan_bad(b, i, 400, "chunk size overflow");
    p->chunk_left = p->chunk_left << 4 | hex_value(c);
    p->chunk_state = CK_SIZE;
    return 0;
}

/*
 * One byte of a chunk-size line (RFC 9112 7.1, 7.1.1):
 *     chunk-size *( ";" token [ "=" ( token / quoted-string ) ] ) CRLF
 * bounded at SL_HTTP_MAX_CHUNK_LINE bytes however it arrives, and the
 * extensions of all the body's lines at max_head bytes together. BWS around ";"
 * and "=" and a quoted-pair in a value are refused, as llhttp refuses them: a
 * line we both read alike keeps the chunk boundaries ours. llhttp 8.1 in its
 * default mode lets through what is refused here: any byte after the CR
 * taken for the LF, an empty name or value, a token running into a quote,
 * DEL in a quoted value. At the LF the size is the chunk's data to skip, or
 * for the last chunk (size 0) the trailer section begins.
 */
static long scan_size_line(sl_http_parser_t *p, unsigned char c, size_t i, bad_t *b)
{
    if (++p->chunk_line > SL_HTTP_MAX_CHUNK_LINE)
        return scan_bad(b, i, 400, "chunk-size line too long");
    /* An extension's bytes, from its ";" to the line's CR: the body's all
       together are bounded like the head's fields. */
    bool in_ext = p->chunk_state >= CK_NAME0 && p->chunk_state <= CK_QUOTED_END;
    if (((in_ext && c != '\r') || (p->chunk_state == CK_SIZE && c == ';')) &&
        ++p->chunk_ext_bytes > p->max_head)
        return scan_bad(b, i, 400, "chunk extensions too large");
    switch (p->chunk_state) {
    case CK_SIZE0:
    case CK_SIZE:
        return chunk_size_digit(p, c, i, b);
    case CK_NAME0:
        if (!is_tchar(c))
            return scan_bad(b, i, 400, "invalid chunk extension");
        p->chunk_state = CK_NAME;
        return 0;
    case CK_NAME:
        if (c == '=') {
            p->chunk_state = CK_VALUE0;
            return 0;
        }
        return is_tchar(c) ? 0 : chunk_ext_next(p, c, i, b);
    case CK_VALUE0:
        if (c != '"' && !is_tchar(c))
            return scan_bad(b, i, 400, "invalid chunk extension");
        p->chunk_state = c == '"' ? CK_QUOTED : CK_TOKEN;
        return 0;
    case CK_TOKEN:
        return is_tchar(c) ? 0 : chunk_ext_next(p, c, i, b);
    case CK_QUOTED:
        if (c == '"')
            p->chunk_state = CK_QUOTED_END;
        else if (!is_qdtext(c))
            return scan_bad(b, i, 400, "invalid chunk extension");
        return 0;
    case CK_QUOTED_END:
        return chunk_ext_next(p, c, i, b);
    default:            /* CK_LF */
        if (c != '\n')
            return scan_bad(b, i, 400, "bare CR in chunk-size line");
        p->chunk_line = 0;
        p->chunk_state = p->chunk_left > 0 ? CK_DATA : CK_TRAILERS;
        if (p->chunk_state == CK_TRAILERS)
            p->trailer_state = TR_LINE0;
        return 0;
    }
}

/*
 * The raw checks of a chunked body over buf[0, len), ahead of llhttp as the
 * head's are (scan): the chunk-size lines, the CRLF after each chunk's data
 * (llhttp 8.1 skips those two bytes unread: "5\r\nhelloXX0\r\n\r\n" passed),
 * and the trailer section. Data bytes are skipped, not looked at. Returns the
 * offset just after the body's end, 0 when it goes on past len, or -1 with
 * the first bad byte in *b. The state goes on across calls, so where a check
 * or the line bound trips never depends on how the bytes were split.
 */
static long scan_chunked(sl_http_parser_t *p, const char *buf, size_t len, bad_t *b)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        switch (p->chunk_state) {
        case CK_DATA: {
            uint64_t n = SL_MIN(p->chunk_left, (uint64_t)(len - i));
            p->chunk_left -= n;
            i += (size_t)n - 1;
            if (p->chunk_left == 0)
                p->chunk_state = CK_DATA_CR;
            break;
        }
        case CK_DATA_CR:
        case CK_DATA_LF:
            if (c != (p->chunk_state == CK_DATA_CR ? '\r' : '\n'))
                return scan_bad(b, i, 400, "chunk data not followed by CRLF");
            p->chunk_state = p->chunk_state == CK_DATA_CR ? CK_DATA_LF : CK_SIZE0;
            break;
        case CK_TRAILERS:
            return scan_trailers(p, buf, i, len, b);
        default:
            if (scan_size_line(p, c, i, b) < 0)
                return -1;
        }
    }
    return 0;
}

/* llhttp paused at the message's end: the body ends at `at`. */
static ssize_t body_done(sl_http_parser_t *p, size_t at, bool *done)
{
    p->phase = SL_HTTP_PHASE_DONE;
    *done = true;
    return (ssize_t)at;
}

/*
 * A chunked body, scanned first, then given to llhttp up to the scanner's
 * verdict, as the head is (sl_http_parse_head): an error llhttp finds before
 * the scanner's wins, and the two must agree on where the body ends.
 */
static ssize_t parse_chunked(sl_http_parser_t *p, const char *buf, size_t len, bool *done)
{
    bad_t bad = {0};
    long end = scan_chunked(p, buf, len, &bad);
    size_t feed_to = end > 0 ? (size_t)end : end < 0 ? bad.at : len;
    llhttp_errno_t e = feed_to > 0 ? llhttp_execute(&p->ll, buf, feed_to) : HPE_OK;
    long at = agreed_end(p, e, buf, end, &bad, "malformed chunked body");
    if (at != 0)
        return at < 0 ? at : body_done(p, (size_t)at, done);
    return (ssize_t)len;
}

ssize_t sl_http_parse_body(sl_http_parser_t *p, const char *buf, size_t len, bool *done)
{
    *done = false;
    if (p->error_status != 0)
        return SL_EINVAL;
    if (p->phase == SL_HTTP_PHASE_DONE) {
        *done = true;
        return 0;
    }
    if (p->phase != SL_HTTP_PHASE_BODY)
        return SL_ESTATE;
    if (p->no_body || (!p->head.chunked && !p->body_until_eof && p->head.content_length <= 0)) {
        p->phase = SL_HTTP_PHASE_DONE;
        *done = true;
        return 0;
    }
    if (p->body_until_eof || len == 0)
        return (ssize_t)len;
    p->base = buf;
    p->ll.data = p;
    if (p->head.chunked)
        return parse_chunked(p, buf, len, done);
    llhttp_errno_t e = llhttp_execute(&p->ll, buf, len);
    if (e == HPE_OK)
        return (ssize_t)len;
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE)
        return body_done(p, (size_t)(llhttp_get_error_pos(&p->ll) - buf), done);
    return llhttp_failed(p, e);
}

bool sl_http_body_until_eof(const sl_http_parser_t *p)
{
    return p->body_until_eof;
}

const sl_http_header_t *sl_http_find(const sl_http_head_t *h, const char *base, const char *name)
{
    for (uint32_t i = 0; i < h->n_headers; i++)
        if (span_is(base, h->headers[i].name, name))
            return &h->headers[i];
    return NULL;
}

/* ---- writing heads ------------------------------------------------------- */

/* An output buffer that remembers overflow, so writers check once at the end. */
typedef struct out {
    char *p;
    size_t cap, len;
    bool full;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
    if (o->full || n > o->cap - o->len) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void puts_(out_t *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_uint(out_t *o, unsigned long v)
{
    char tmp[24];
    size_t n = sizeof tmp;
    do {
        tmp[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    put(o, tmp + n, sizeof tmp - n);
}

static void put_span(out_t *o, const char *base, sl_http_span_t s)
{
    put(o, base + s.off, s.len);
}

static void put_header(out_t *o, const char *base, const sl_http_header_t *h)
{
    put_span(o, base, h->name);
    put(o, ": ", 2);
    put_span(o, base, h->value);
    put(o, "\r\n", 2);
}

static ssize_t finish(out_t *o)
{
    return o->full ? SL_EFULL : (ssize_t)o->len;
}

/*
 * Hop-by-hop by definition (RFC 9110 7.6.1), plus the legacy
 * Proxy-Connection. Transfer-Encoding is too, but the body goes on as it
 * came, so it stays. Trailer is not: it is end-to-end (RFC 9110 6.6.2; RFC
 * 2616 13.5.1 listed "Trailers", read by many as Trailer) and announces the
 * trailer section, which goes on with the body.
 */
static bool is_hop_by_hop(const char *base, sl_http_span_t name)
{
    static const char *const hop[] = {
        "connection", "keep-alive", "proxy-connection", "te", "upgrade",
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(hop); i++)
        if (span_is(base, name, hop[i]))
            return true;
    return false;
}

/*
 * True when a Connection header names this header. Framing and routing
 * headers are never dropped that way: "Connection: Content-Length" would
 * otherwise make the backend read the raw body we forward as a new request.
 */
static bool named_by_connection(const sl_http_head_t *h, const char *base, sl_http_span_t name)
{
    static const char *const keep[] = { "host", "content-length", "transfer-encoding" };
    for (size_t i = 0; i < SL_ARRAY_SIZE(keep); i++)
        if (span_is(base, name, keep[i]))
            return false;
    for (uint32_t i = 0; i < h->n_headers; i++) {
        const sl_http_header_t *c = &h->headers[i];
        if (span_is(base, c->name, "connection") &&
            has_token_n(base + c->value.off, c->value.len, base + name.off, name.len))
            return true;
    }
    return false;
}

/* Every value of a repeated header, joined with ", "; returns how many. */
static int put_joined(out_t *o, const sl_http_head_t *h, const char *base, const char *name)
{
    int n = 0;
    for (uint32_t i = 0; i < h->n_headers; i++) {
        const sl_http_header_t *x = &h->headers[i];
        if (!span_is(base, x->name, name) || x->value.len == 0)
            continue;
        if (n++ > 0)
            put(o, ", ", 2);
        put_span(o, base, x->value);
    }
    return n;
}

static bool has_nonempty(const sl_http_head_t *h, const char *base, const char *name)
{
    for (uint32_t i = 0; i < h->n_headers; i++)
        if (span_is(base, h->headers[i].name, name) && h->headers[i].value.len > 0)
            return true;
    return false;
}

/*
 * The scheme a trusted proxy says the client used with it: the first
 * element of its X-Forwarded-Proto, when that is http or https. NULL
 * otherwise (absent, empty, anything else: then ours is sent).
 */
static const char *trusted_proto(const sl_http_head_t *h, const char *base)
{
    for (uint32_t i = 0; i < h->n_headers; i++) {
        const sl_http_header_t *x = &h->headers[i];
        if (!span_is(base, x->name, "x-forwarded-proto"))
            continue;
        size_t pos = 0, tlen;
        const char *tok;
        if (!sl_http_next_element(base + x->value.off, x->value.len, &pos, &tok, &tlen))
            return NULL;
        if (tlen == 5 && strncasecmp(tok, "https", 5) == 0)
            return "https";
        if (tlen == 4 && strncasecmp(tok, "http", 4) == 0)
            return "http";
        return NULL;
    }
    return NULL;
}

/* RFC 7239 node: IPv6 quoted and bracketed, "unknown" when there is none. */
static void put_forwarded_node(out_t *o, const char *ip)
{
    if (ip == NULL || *ip == '\0') {
        puts_(o, "unknown");
    } else if (strchr(ip, ':') != NULL) {
        puts_(o, "\"[");
        puts_(o, ip);
        puts_(o, "]\"");
    } else {
        puts_(o, ip);
    }
}

static void put_forwarding(out_t *o, const sl_http_head_t *h, const char *base,
                           const sl_http_forward_t *fw)
{
    const char *ip = fw->client_ip && *fw->client_ip ? fw->client_ip : NULL;
    const char *proto = fw->tls ? "https" : "http";
    bool xff_in = fw->client_trusted && has_nonempty(h, base, "x-forwarded-for");
    if (ip != NULL || xff_in) {
        puts_(o, "X-Forwarded-For: ");
        if (xff_in)
            put_joined(o, h, base, "x-forwarded-for");
        if (xff_in && ip != NULL)
            puts_(o, ", ");
        if (ip != NULL)
            puts_(o, ip);
        puts_(o, "\r\n");
    }
    /* From a trusted proxy (a load balancer that terminated TLS, say), the
       scheme the client used with it, which backends build links and
       redirects from: ours names only the hop from that proxy, and made a
       backend behind an https balancer redirect to https for ever. The
       Forwarded header keeps every hop's proto, ours appended. */
    const char *xfp = fw->client_trusted ? trusted_proto(h, base) : NULL;
    puts_(o, "X-Forwarded-Proto: ");
    puts_(o, xfp ? xfp : proto);
    puts_(o, "\r\nForwarded: ");
    if (fw->client_trusted && put_joined(o, h, base, "forwarded") > 0)
        puts_(o, ", ");
    puts_(o, "for=");
    put_forwarded_node(o, ip);
    puts_(o, ";proto=");
    puts_(o, proto);
    puts_(o, "\r\n");
}

ssize_t sl_http_write_request(const sl_http_head_t *h, const char *base,
                              const sl_http_forward_t *fw, char *out, size_t cap)
{
    out_t o = { .p = out, .cap = cap };
    put_span(&o, base, h->method_text);
    put(&o, " ", 1);
    if (h->absolute_form) {
        /* To an origin server, origin-form (RFC 9112 3.2.1): what follows the
           authority, with "/" for an empty path ("?q" becomes "/?q"). And the
           authority as Host, the received one dropped (RFC 9112 3.2.2), so the
           backend cannot pick a host other than the one we routed by. */
        uint32_t rest = h->host.off + h->host.len;
        uint32_t rest_len = h->url.off + h->url.len - rest;
        if (rest_len == 0 && h->method == HTTP_OPTIONS) {
            /* "OPTIONS http://host" asks about the server as a whole: the
               last proxy MUST send it as "OPTIONS *" (RFC 9112 3.2.4). */
            put(&o, "*", 1);
        } else {
            if (rest_len == 0 || base[rest] != '/')
                put(&o, "/", 1);
            put(&o, base + rest, rest_len);
        }
    } else {
        put_span(&o, base, h->url);
    }
    puts_(&o, " HTTP/");
    put_uint(&o, h->http_major);
    put(&o, ".", 1);
    put_uint(&o, h->http_minor);
    puts_(&o, "\r\n");
    if (h->absolute_form) {
        puts_(&o, "Host: ");
        put_span(&o, base, h->host);
        puts_(&o, "\r\n");
    }
    for (uint32_t i = 0; i < h->n_headers; i++) {
        const sl_http_header_t *x = &h->headers[i];
        if (h->absolute_form && span_is(base, x->name, "host"))
            continue;
        if (is_hop_by_hop(base, x->name) || named_by_connection(h, base, x->name) ||
            span_is(base, x->name, "x-forwarded-for") ||
            span_is(base, x->name, "x-forwarded-proto") || span_is(base, x->name, "forwarded"))
            continue;
        put_header(&o, base, x);
    }
    if (fw->websocket)
        puts_(&o, "Upgrade: websocket\r\nConnection: Upgrade\r\n");
    put_forwarding(&o, h, base, fw);
    puts_(&o, "\r\n");
    return finish(&o);
}

ssize_t sl_http_write_response(const sl_http_head_t *h, const char *base,
                               bool keep_alive, char *out, size_t cap)
{
    out_t o = { .p = out, .cap = cap };
    bool switching = h->status == 101;
    puts_(&o, "HTTP/1.1 ");
    put_uint(&o, h->status);
    put(&o, " ", 1);
    if (h->reason.len > 0)
        put_span(&o, base, h->reason);
    else
        puts_(&o, sl_http_status_text(h->status));
    puts_(&o, "\r\n");
    /* A 1xx has no body, and RFC 9110 8.6 / RFC 9112 6.1 forbid it body
       framing: passed on, a client could read bytes after a 101 (frames) or
       after a 100 (the final answer) as that body. */
    bool interim = h->status >= 100 && h->status < 200;
    for (uint32_t i = 0; i < h->n_headers; i++) {
        const sl_http_header_t *x = &h->headers[i];
        bool keep_upgrade = switching && span_is(base, x->name, "upgrade");
        if (!keep_upgrade && (is_hop_by_hop(base, x->name) || named_by_connection(h, base, x->name)))
            continue;
        if (interim && (span_is(base, x->name, "content-length") ||
                        span_is(base, x->name, "transfer-encoding")))
            continue;
        put_header(&o, base, x);
    }
    if (switching)
        puts_(&o, "Connection: Upgrade\r\n");
    else if (!keep_alive)
        puts_(&o, "Connection: close\r\n");
    puts_(&o, "\r\n");
    return finish(&o);
}

int sl_http_status_code(const char *buf, size_t len)
{
    /* One pattern character per byte: literal, or V (0/1), D (digit), E (end). */
    static const char pattern[] = "HTTP/1.V DDDE";
    int status = 0;
    for (size_t i = 0; i < sizeof pattern - 1; i++) {
        if (i == len)
            return SL_NEED_MORE;
        char c = buf[i];
        switch (pattern[i]) {
        case 'V':
            if (c != '0' && c != '1')
                return SL_EINVAL;
            break;
        case 'D':
            if (c < '0' || c > '9')
                return SL_EINVAL;
            status = status * 10 + (c - '0');
            break;
        case 'E':
            if (c != ' ' && c != '\r' && c != '\n')
                return SL_EINVAL;
            break;
        default:
            if (c != pattern[i])
                return SL_EINVAL;
        }
    }
    return status >= 100 && status <= 599 ? status : SL_EINVAL;
}

/*
 * Every status RFC 9110 15 defines, and RFC 6585's 428, 429 and 431: the
 * gateway, the admin API and the backend simulator answer with many of them,
 * and a backend's response without a reason phrase may carry any of them.
 */
const char *sl_http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

ssize_t sl_http_write_simple(char *out, size_t cap, int status,
                             const char *extra_headers, bool close)
{
    out_t o = { .p = out, .cap = cap };
    const char *text = sl_http_status_text(status);
    unsigned long body_len = 3 + 1 + strlen(text) + 1;   /* "503 Service Unavailable\n" */
    if (status < 100 || status > 999)
        return SL_EINVAL;
    puts_(&o, "HTTP/1.1 ");
    put_uint(&o, (unsigned long)status);
    put(&o, " ", 1);
    puts_(&o, text);
    puts_(&o, "\r\nContent-Type: text/plain\r\nContent-Length: ");
    put_uint(&o, body_len);
    puts_(&o, "\r\n");
    if (extra_headers != NULL)
        puts_(&o, extra_headers);
    if (close)
        puts_(&o, "Connection: close\r\n");
    puts_(&o, "\r\n");
    put_uint(&o, (unsigned long)status);
    put(&o, " ", 1);
    puts_(&o, text);
    put(&o, "\n", 1);
    return finish(&o);
}

/* One X-Forwarded-For entry as a canonical address text; false if it is none. */
static bool canonical_ip(const char *s, size_t n, char out[46])
{
    unsigned char addr[sizeof(struct in6_addr)];
    if (parse_ip(s, n, AF_INET, addr))
        return inet_ntop(AF_INET, addr, out, 46) != NULL;
    if (parse_ip(s, n, AF_INET6, addr))
        return inet_ntop(AF_INET6, addr, out, 46) != NULL;
    return false;
}

/*
 * Entries are read right to left across all X-Forwarded-For lines (the
 * rightmost was written by the proxy nearest to us). The first one that is
 * not trusted is the client. A malformed entry gives SL_ENOENT: nothing
 * left of it can be believed, and the trusted proxies right of it are not the
 * client. When every entry is trusted, the leftmost is the client.
 */
int sl_http_real_client(const sl_http_head_t *h, const char *base,
                        bool (*is_trusted)(const char *ip, void *arg), void *arg,
                        char out[46])
{
    bool found = false;
    for (uint32_t i = h->n_headers; i-- > 0;) {
        const sl_http_header_t *x = &h->headers[i];
        if (!span_is(base, x->name, "x-forwarded-for"))
            continue;
        const char *v = base + x->value.off;
        size_t end = x->value.len;
        for (;;) {
            size_t start = end;
            while (start > 0 && v[start - 1] != ',')
                start--;
            size_t s = start, e = end;
            while (s < e && is_ows(v[s]))
                s++;
            while (e > s && is_ows(v[e - 1]))
                e--;
            if (e > s) {
                char ip[46];
                if (!canonical_ip(v + s, e - s, ip))
                    return SL_ENOENT;   /* written by a trusted proxy, yet unusable */
                memcpy(out, ip, sizeof ip);
                found = true;
                if (is_trusted == NULL || !is_trusted(ip, arg))
                    return 0;
            }
            if (start == 0)
                break;
            end = start - 1;
        }
    }
    return found ? 0 : SL_ENOENT;
}
