/*
 * sluice/http.h: HTTP/1.x heads, parsed with llhttp under limits, and
 * rewritten for the next hop.
 *
 * One parser reads one message: first its head, then (for plain HTTP
 * proxying) the extent of its body, which the shell forwards as raw bytes.
 * The caller keeps the head in one contiguous buffer that grows as bytes
 * arrive and passes the whole buffer on every call (same base, longer len);
 * spans in the result are offsets into that buffer, so they stay valid
 * wherever the caller keeps it.
 *
 * Requests a backend could read differently from us are refused before a
 * byte is forwarded: Content-Length with Transfer-Encoding, duplicate or
 * invalid Content-Length, bad chunk sizes, obs-fold (llhttp 8.1 accepts it,
 * so the parser checks itself), NUL or bare CR in the head, Transfer-Encoding
 * in an HTTP/1.0 request (RFC 9112 6.1), a missing (HTTP/1.1), repeated or
 * invalid Host, and an absolute-form target whose authority is not a valid
 * host[:port] of an http or https URI. A request parses only as HTTP/1.0 or
 * HTTP/1.1: a version "HTTP/" DIGIT "." DIGIT with another major is refused
 * with 505, any other version (HTTP/1.2, RTSP/1.0, HTTP/0.9's none) with 400.
 * The asterisk-form is "OPTIONS *" alone (any other target starting with "*"
 * is refused with 400), routed as "/". A chunked body's chunk-size lines are
 * held to RFC 9112 7.1.1 without BWS or quoted-pairs (llhttp refuses those),
 * and to SL_HTTP_MAX_CHUNK_LINE bytes; their extensions together, over the
 * whole body, to max_head bytes.
 */
#ifndef SLUICE_HTTP_H
#define SLUICE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <llhttp.h>

#include "sluice/common.h"

#define SL_HTTP_MAX_HEADERS 256   /* hard ceiling of limits.headers */

/*
 * The longest chunk-size line of a chunked body, extensions and CRLF
 * included. Extensions carry nothing a gateway uses, and a line needs a few
 * bytes; unbounded, it streamed megabytes to a backend whose parser may keep
 * the line whole (Go and Twisted bound it at 4 KiB as well). A body's
 * extensions together are bounded too, by the head's limit (max_head, 16 KiB
 * by default; Node bounds them at 16 KiB): under the line bound alone, a
 * body of one-byte chunks each with a 4 KiB extension made a backend read
 * four thousand bytes of framing for every byte of data.
 */
#define SL_HTTP_MAX_CHUNK_LINE 4096

typedef struct sl_http_span {
    uint32_t off;    /* offset from the head buffer's base */
    uint32_t len;
} sl_http_span_t;

typedef struct sl_http_header {
    sl_http_span_t name;
    sl_http_span_t value;   /* leading and trailing whitespace trimmed */
} sl_http_header_t;

typedef enum sl_http_type {
    SL_HTTP_REQUEST = 0,
    SL_HTTP_RESPONSE = 1,
} sl_http_type_t;

typedef struct sl_http_head {
    uint8_t method;                 /* llhttp_method_t, requests */
    uint8_t http_major;
    uint8_t http_minor;
    uint16_t status;                /* responses */
    sl_http_span_t method_text;     /* requests */
    sl_http_span_t url;             /* requests */
    sl_http_span_t reason;          /* responses */
    sl_http_span_t host;            /* requests: the authority to route by, port included:
                                       an absolute-form target's (RFC 9112 3.2.2: Host is
                                       then ignored), else the Host value; len 0 when
                                       there is neither (HTTP/1.0 without Host) */
    sl_http_span_t path;            /* requests: the target to route by: an absolute-form
                                       target's path and query, or "/" alone when its path
                                       is empty (RFC 9112 3.2.1); "/" for OPTIONS *; any
                                       other target as sent */
    bool absolute_form;             /* requests: the target is http(s)://authority... */
    bool asterisk_form;             /* requests: OPTIONS * (RFC 9112 3.2.4) */
    uint32_t head_len;              /* bytes of the head, final CRLF included */
    int64_t content_length;         /* -1 when absent */
    bool chunked;                   /* Transfer-Encoding ends in chunked */
    bool keep_alive;                /* per version and Connection */
    bool upgrade;                   /* Connection: upgrade with an Upgrade header */
    uint32_t n_headers;
    sl_http_header_t headers[SL_HTTP_MAX_HEADERS];
} sl_http_head_t;

typedef enum sl_http_phase {
    SL_HTTP_PHASE_HEAD = 0,
    SL_HTTP_PHASE_BODY,
    SL_HTTP_PHASE_DONE,
} sl_http_phase_t;

typedef struct sl_http_parser {
    /* Settings, before sl_http_parser_init(). 0 means the default (16KiB, 100, 8KiB). */
    uint32_t max_head;
    uint32_t max_headers;
    uint32_t max_request_line;

    /* Results. */
    sl_http_head_t head;
    sl_http_phase_t phase;
    int error_status;               /* 400, 414, 431, 505 (requests) or 502 (responses) */
    const char *error_reason;       /* short text for logs */

    /* Private. */
    llhttp_t ll;
    sl_http_type_t type;
    const char *base;
    size_t fed;                     /* bytes of the head buffer already given to llhttp */
    size_t scanned;                 /* bytes of the head buffer the scanner has seen */
    uint32_t version_at;            /* requests: where the request line's version starts */
    uint8_t span_state;
    uint32_t n_content_length;
    bool saw_transfer_encoding;
    bool body_until_eof;
    bool no_body;
    uint8_t scan_state;             /* raw byte checks llhttp does not make */
    uint32_t scan_target;           /* request target bytes seen by the scanner */
    uint32_t scan_headers;          /* header lines seen by the scanner */
    uint8_t request_method;         /* responses: the method of the request answered */
    uint8_t chunk_state;            /* raw checks of a chunked body's framing */
    uint16_t chunk_line;            /* bytes of the chunk-size line so far */
    uint32_t chunk_ext_bytes;       /* chunk extensions of the whole body, bounded like the head */
    uint64_t chunk_left;            /* the size being read, then its data bytes left */
    uint8_t trailer_state;          /* raw checks of a chunked body's trailer section */
    uint32_t trailer_bytes;         /* of the trailer section, bounded like the head */
    uint32_t trailer_fields;
} sl_http_parser_t;

/*
 * Start reading one message of the given type. For a response, pass the
 * request's method (llhttp_method_t: a response to HEAD has no body);
 * for a request the method argument is ignored (pass 0). Keeps the three
 * settings above (max_head, max_headers, max_request_line) and resets the
 * rest, so a parser can be re-initialised for the next pipelined message.
 */
void sl_http_parser_init(sl_http_parser_t *p, sl_http_type_t type,
                         uint8_t request_method);

/*
 * Parse the head. `buf` is the whole head buffer so far (same base each call).
 * Returns the head length (> 0) when the head is complete (the bytes after it
 * are body, pipelined data or WebSocket frames, not consumed); SL_NEED_MORE;
 * or SL_EINVAL with p->error_status and p->error_reason set.
 */
int sl_http_parse_head(sl_http_parser_t *p, const char *buf, size_t len);

/*
 * After a complete head: how many of these body bytes belong to this message.
 * Returns that count (<= len) and sets *done when the message ended within
 * them; SL_EINVAL on a malformed body (a bad or too long chunk-size line,
 * chunk data without its CRLF, a trailer section that fails the head's
 * checks or limits: p->error_status says which). A message with no body is
 * done at once (call with len 0).
 */
ssize_t sl_http_parse_body(sl_http_parser_t *p, const char *buf, size_t len, bool *done);

/* True when the body is delimited by the connection closing (responses only). */
bool sl_http_body_until_eof(const sl_http_parser_t *p);

/* Header look-up, case-insensitive. Returns the first match or NULL. */
const sl_http_header_t *sl_http_find(const sl_http_head_t *h, const char *base,
                                     const char *name);

/* Walk a comma-separated header value from *pos (0 at first): false at its
   end, else the next element, OWS-trimmed, in *tok / *tlen (empty for the
   empty element of "a,,b"). */
bool sl_http_next_element(const char *v, size_t len, size_t *pos, const char **tok,
                          size_t *tlen);

/* True when a comma-separated header value holds `token` (case-insensitive). */
bool sl_http_has_token(const char *value, size_t len, const char *token);

/* How the request is to be forwarded. */
typedef struct sl_http_forward {
    const char *client_ip;          /* the peer (or PROXY protocol) address, as text */
    bool client_trusted;            /* the peer is a trusted proxy: append to its XFF */
    bool tls;                       /* client came over TLS: proto https / wss */
    bool websocket;                 /* keep Upgrade: websocket and Connection: Upgrade */
} sl_http_forward_t;

/*
 * Write the request head for the backend: hop-by-hop headers dropped
 * (Connection, Keep-Alive, Proxy-Connection, TE, Upgrade unless websocket,
 * and every header named in Connection), Transfer-Encoding kept because the
 * body is forwarded as it came (and Trailer, which is end-to-end: RFC 9110
 * 6.6.2), X-Forwarded-For, -Proto and
 * Forwarded added. An absolute-form target goes out in origin-form (its path
 * and query, "/" for an empty path) with its authority as the only Host,
 * first after the request line (RFC 9112 3.2.1, 3.2.2). Returns the length,
 * or SL_EFULL when `cap` is too small.
 */
ssize_t sl_http_write_request(const sl_http_head_t *h, const char *base,
                              const sl_http_forward_t *fw, char *out, size_t cap);

/*
 * Write the response head for the client: hop-by-hop headers dropped (kept
 * for a 101), and `Connection: close` when the client connection will not be
 * kept alive. Returns the length, or SL_EFULL.
 */
ssize_t sl_http_write_response(const sl_http_head_t *h, const char *base,
                               bool keep_alive, char *out, size_t cap);

/*
 * A complete response the gateway makes itself (errors, admission rejects):
 * status line, Content-Type text/plain, Content-Length, the extra header lines
 * (each ending in CRLF, may be NULL), Connection: close when `close`, and a
 * short body naming the status. Returns the length, or SL_EFULL.
 */
ssize_t sl_http_write_simple(char *out, size_t cap, int status,
                             const char *extra_headers, bool close);

/*
 * The status code of a response, judged from the first bytes of its status
 * line (a health check needs nothing more): "HTTP/1.0" or "HTTP/1.1", SP,
 * exactly three digits, then SP, CR or LF (RFC 9112 4). Returns the status
 * (100-599); SL_NEED_MORE while `buf` is a prefix of such a line; else
 * SL_EINVAL.
 */
int sl_http_status_code(const char *buf, size_t len);

/* The reason phrase for a status ("Service Unavailable"). */
const char *sl_http_status_text(int status);

/*
 * The client address to key per-client limits on: when the peer is a trusted
 * proxy, the rightmost X-Forwarded-For entry that is not itself trusted.
 * `is_trusted` decides trust for one textual address. Writes a NUL-terminated
 * address into out (at most 46 bytes with the NUL) and returns 0, or returns
 * SL_ENOENT when the header gives nothing usable (keep the peer address).
 */
int sl_http_real_client(const sl_http_head_t *h, const char *base,
                        bool (*is_trusted)(const char *ip, void *arg), void *arg,
                        char out[46]);

#endif
