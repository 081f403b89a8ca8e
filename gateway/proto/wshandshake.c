/*
 * wshandshake.c: the WebSocket opening handshake (RFC 6455 4.1, 4.2), checked
 * on both hops, and the accept-key arithmetic.
 *
 * Why check at all, when the backend will check too: the gateway spends an
 * admission token and a backend connection on every upgrade it lets through,
 * so a request that can never succeed is refused here, before that cost. And
 * the backend's 101 is checked before the gateway tells the client "switched",
 * because after that the relay believes both sides speak RFC 6455 frames; a
 * backend that answers with the wrong accept key, or not with a WebSocket at
 * all, gets the client a 502 instead of a stream of garbage.
 *
 * The 101 is checked as RFC 6455 4.1 tells the client to check it, against
 * the request it answers: a subprotocol or an extension the client did not
 * offer makes the client fail the connection (steps 5 and 6), so the gateway
 * answers 502 rather than switch a client that must then hang up.
 *
 * The response check also decides what the relay's frame parsers must expect
 * of the RSV bits (sl_ws_extensions_t). permessage-deflate (RFC 7692) uses
 * RSV1, and only on a message's first frame; a message without it is plain
 * and its text is still checked. An extension we do not know may use any of
 * the bits, and the relay cannot know what its payload means, so every bit
 * passes and no text is checked: the text on the wire is not the text of the
 * message. That lenient mode is also used when an unknown extension comes
 * beside permessage-deflate, since it may use RSV1 as well.
 *
 * Heads come from http.c as spans into the caller's buffer; nothing here
 * allocates or keeps a pointer.
 */
#include "sluice/wshandshake.h"

#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "sluice/wsframe.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define KEY_STACK_MAX 128   /* valid keys are 24 bytes; longer ones hash the slow way */

void sl_ws_accept_key(const char *key, size_t key_len, char out[29])
{
    unsigned char md[SHA_DIGEST_LENGTH];
    char buf[KEY_STACK_MAX + sizeof WS_GUID];

    if (key_len <= KEY_STACK_MAX) {
        memcpy(buf, key, key_len);
        memcpy(buf + key_len, WS_GUID, sizeof WS_GUID - 1);
        SHA1((const unsigned char *)buf, key_len + sizeof WS_GUID - 1, md);
    } else {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (ctx == NULL || !EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) ||
            !EVP_DigestUpdate(ctx, key, key_len) ||
            !EVP_DigestUpdate(ctx, WS_GUID, sizeof WS_GUID - 1) ||
            !EVP_DigestFinal_ex(ctx, md, NULL))
            memset(md, 0, sizeof md);   /* out of memory: a value no peer will match */
        EVP_MD_CTX_free(ctx);
    }
    /* 20 bytes make 28 base64 characters; EVP_EncodeBlock adds the NUL. */
    EVP_EncodeBlock((unsigned char *)out, md, sizeof md);
}

static bool is_base64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

bool sl_ws_key_valid(const char *key, size_t key_len)
{
    /* 16 bytes are 5 full groups of 3 plus one byte: 22 characters and "==". */
    if (key_len != 24 || key[22] != '=' || key[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (!is_base64_char(key[i]))
            return false;
    return true;
}

/* Name the broken rule and return the status (or error) that goes with it. */
static int refuse(const char **why, const char *rule, int status)
{
    *why = rule;
    return status;
}

static bool name_is(const char *base, const sl_http_header_t *hd, const char *name)
{
    size_t n = strlen(name);
    return hd->name.len == n && strncasecmp(base + hd->name.off, name, n) == 0;
}

static bool value_is(const char *base, const sl_http_header_t *hd, const char *text)
{
    size_t n = strlen(text);
    return hd->value.len == n && memcmp(base + hd->value.off, text, n) == 0;
}

/* How many header lines carry this name. */
static uint32_t count(const sl_http_head_t *h, const char *base, const char *name)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < h->n_headers; i++)
        n += name_is(base, &h->headers[i], name);
    return n;
}

/* Does any line of this header (a list may be split over lines) hold the token? */
static bool any_has_token(const sl_http_head_t *h, const char *base, const char *name,
                          const char *token)
{
    for (uint32_t i = 0; i < h->n_headers; i++) {
        const sl_http_header_t *hd = &h->headers[i];
        if (name_is(base, hd, name) &&
            sl_http_has_token(base + hd->value.off, hd->value.len, token))
            return true;
    }
    return false;
}

bool sl_ws_is_upgrade(const sl_http_head_t *h, const char *base)
{
    return any_has_token(h, base, "upgrade", "websocket");
}

/* The first rule of RFC 6455 4.2.1 the request breaks: its status, and *why. */
static int request_rule(const sl_http_head_t *h, const char *base, const char **why)
{
    const sl_http_header_t *key, *version;

    if (h->method != HTTP_GET)
        return refuse(why, "method is not GET", 400);
    if (h->http_major < 1 || (h->http_major == 1 && h->http_minor < 1))
        return refuse(why, "HTTP version below 1.1", 400);
    if (count(h, base, "host") != 1)
        return refuse(why, "no single Host header", 400);
    if (!any_has_token(h, base, "upgrade", "websocket"))
        return refuse(why, "Upgrade does not name websocket", 400);
    if (!any_has_token(h, base, "connection", "upgrade"))
        return refuse(why, "Connection does not name upgrade", 400);
    key = sl_http_find(h, base, "sec-websocket-key");
    if (key == NULL || count(h, base, "sec-websocket-key") != 1 ||
        !sl_ws_key_valid(base + key->value.off, key->value.len))
        return refuse(why, "missing or invalid Sec-WebSocket-Key", 400);
    version = sl_http_find(h, base, "sec-websocket-version");
    if (version == NULL || count(h, base, "sec-websocket-version") != 1 ||
        !value_is(base, version, "13"))
        return refuse(why, "Sec-WebSocket-Version is not 13", 426);
    return 0;
}

int sl_ws_check_request(const sl_http_head_t *h, const char *base,
                        sl_ws_request_info_t *info, const char **why)
{
    const char *dummy;
    const sl_http_header_t *ext;

    if (why == NULL)
        why = &dummy;
    *why = NULL;
    memset(info, 0, sizeof *info);
    int status = request_rule(h, base, why);
    if (status != 0)
        return status;
    info->key = sl_http_find(h, base, "sec-websocket-key")->value;
    ext = sl_http_find(h, base, "sec-websocket-extensions");
    info->has_extensions = ext != NULL && ext->value.len > 0;
    return 0;
}

/*
 * The next element of a comma-separated header value (sl_http_next_element;
 * empty for "a,,b", which counts for nothing). With `params`, the element is
 * an extension ("name; param=value") and only its name is given: the
 * gateway relays the payload as it is and leaves the parameters to the
 * endpoints.
 */
static bool next_item(const char *v, size_t vlen, size_t *pos, bool params, const char **tok,
                      size_t *len)
{
    if (!sl_http_next_element(v, vlen, pos, tok, len))
        return false;
    if (params) {
        const char *semi = memchr(*tok, ';', *len);
        if (semi != NULL) {
            *len = (size_t)(semi - *tok);
            while (*len > 0 && ((*tok)[*len - 1] == ' ' || (*tok)[*len - 1] == '\t'))
                (*len)--;
        }
    }
    return true;
}

/*
 * Did the request offer this extension or subprotocol, on any line of the
 * header (a list may be split over lines, RFC 6455 11.3.2 and 11.3.4)?
 * Subprotocols compare byte for byte: RFC 6455 says where a value is
 * case-insensitive (Upgrade, Connection) and says nothing of the kind for
 * them, and the client compares the server's choice with the exact strings it
 * offered. Extension names compare without case, as sluice has always
 * recognised permessage-deflate, so that this check and that recognition read
 * a name the same way.
 */
static bool offered(const sl_http_head_t *req, const char *req_base, const char *header,
                    bool extension, const char *name, size_t len)
{
    for (uint32_t i = 0; i < req->n_headers; i++) {
        const sl_http_header_t *hd = &req->headers[i];
        if (!name_is(req_base, hd, header))
            continue;
        const char *tok;
        size_t tlen, pos = 0;
        while (next_item(req_base + hd->value.off, hd->value.len, &pos, extension, &tok, &tlen))
            if (tlen > 0 && tlen == len &&
                (extension ? strncasecmp(tok, name, len) : memcmp(tok, name, len)) == 0)
                return true;
    }
    return false;
}

/*
 * Every extension the 101 names (the list may be split over lines): each must
 * be one the request offered (RFC 6455 4.1 step 5; not checked when `req` is
 * NULL), and together they say what the frame parsers must expect.
 */
static int check_extensions(const sl_http_head_t *h, const char *base, const sl_http_head_t *req,
                            const char *req_base, sl_ws_response_info_t *info, const char **why)
{
    static const char pmd[] = "permessage-deflate";

    for (uint32_t i = 0; i < h->n_headers; i++) {
        const sl_http_header_t *hd = &h->headers[i];
        if (!name_is(base, hd, "sec-websocket-extensions"))
            continue;
        const char *name;
        size_t len, pos = 0;
        while (next_item(base + hd->value.off, hd->value.len, &pos, true, &name, &len)) {
            if (len == 0)
                continue;
            if (req && !offered(req, req_base, "sec-websocket-extensions", true, name, len))
                return refuse(why, "Sec-WebSocket-Extensions names an extension the client "
                                   "did not offer", SL_EINVAL);
            if (len == sizeof pmd - 1 && strncasecmp(name, pmd, len) == 0) {
                /* Twice would be two users of RSV1, which RFC 7692 5 tells
                   the client to fail (websockets does). */
                if (info->permessage_deflate)
                    return refuse(why, "Sec-WebSocket-Extensions names permessage-deflate "
                                       "twice", SL_EINVAL);
                info->permessage_deflate = true;
            } else
                info->other_extension = true;
        }
    }
    info->extension_negotiated = info->permessage_deflate || info->other_extension;
    if (info->other_extension) {
        info->extensions = SL_WS_EXT_UNKNOWN;
        info->allowed_rsv = 0x7;
    } else if (info->permessage_deflate) {
        info->extensions = SL_WS_EXT_DEFLATE;
        info->allowed_rsv = 0x4;
    }
    return 0;
}

/*
 * The 101's subprotocol, if it names one: one header line (RFC 6455 11.3.4: not
 * more than once in a response) whose value is exactly one subprotocol the
 * request offered (4.1 step 6). An empty value or a list names none offered.
 */
static int check_protocol(const sl_http_head_t *h, const char *base, const sl_http_head_t *req,
                          const char *req_base, const char **why)
{
    uint32_t n = count(h, base, "sec-websocket-protocol");
    if (n == 0)
        return 0;
    if (n > 1)
        return refuse(why, "Sec-WebSocket-Protocol more than once", SL_EINVAL);
    const sl_http_header_t *p = sl_http_find(h, base, "sec-websocket-protocol");
    if (!offered(req, req_base, "sec-websocket-protocol", false, base + p->value.off,
                 p->value.len))
        return refuse(why, "Sec-WebSocket-Protocol names a subprotocol the client did not offer",
                      SL_EINVAL);
    return 0;
}

/*
 * Does the 101's Upgrade name websocket, and nothing else? RFC 6455 4.1
 * step 2 has the client fail a response whose Upgrade is not "websocket"
 * (in any case): unlike a request's, which need only contain the token, the
 * answer names the one protocol the connection now speaks, so "websocket,
 * h2c" fails the client as surely as no Upgrade at all. The list may be
 * split over lines; empty elements count for nothing.
 */
static bool upgrade_is_websocket_alone(const sl_http_head_t *h, const char *base)
{
    uint32_t named = 0;
    bool websocket = false;
    for (uint32_t i = 0; i < h->n_headers; i++) {
        const sl_http_header_t *hd = &h->headers[i];
        if (!name_is(base, hd, "upgrade"))
            continue;
        const char *tok;
        size_t tlen, pos = 0;
        while (sl_http_next_element(base + hd->value.off, hd->value.len, &pos, &tok, &tlen)) {
            if (tlen == 0)
                continue;
            named++;
            websocket = tlen == 9 && strncasecmp(tok, "websocket", 9) == 0;
        }
    }
    return named == 1 && websocket;
}

/* Both checks of the 101; `req` NULL: what the client offered is not known, so not checked. */
static int check_101(const sl_http_head_t *h, const char *base, const char *client_key,
                     size_t client_key_len, const sl_http_head_t *req, const char *req_base,
                     sl_ws_response_info_t *info, const char **why)
{
    const char *dummy;
    const sl_http_header_t *accept;
    char want[29];

    if (why == NULL)
        why = &dummy;
    *why = NULL;
    memset(info, 0, sizeof *info);
    if (h->status != 101)
        return refuse(why, "status is not 101", SL_EINVAL);
    if (!any_has_token(h, base, "upgrade", "websocket"))
        return refuse(why, "Upgrade does not name websocket", SL_EINVAL);
    if (!upgrade_is_websocket_alone(h, base))
        return refuse(why, "Upgrade names another protocol beside websocket", SL_EINVAL);
    if (!any_has_token(h, base, "connection", "upgrade"))
        return refuse(why, "Connection does not name upgrade", SL_EINVAL);
    accept = sl_http_find(h, base, "sec-websocket-accept");
    sl_ws_accept_key(client_key, client_key_len, want);
    if (accept == NULL || count(h, base, "sec-websocket-accept") != 1 ||
        !value_is(base, accept, want))
        return refuse(why, "wrong or missing Sec-WebSocket-Accept", SL_EINVAL);

    int rc = check_extensions(h, base, req, req_base, info, why);
    if (rc == 0 && req)
        rc = check_protocol(h, base, req, req_base, why);
    if (rc != 0)
        memset(info, 0, sizeof *info);
    return rc;
}

int sl_ws_check_response_to(const sl_http_head_t *h, const char *base,
                            const sl_http_head_t *req, const char *req_base,
                            sl_ws_response_info_t *info, const char **why)
{
    const sl_http_header_t *key = sl_http_find(req, req_base, "sec-websocket-key");
    if (key == NULL) {
        memset(info, 0, sizeof *info);
        if (why)
            *why = "the request has no Sec-WebSocket-Key";
        return SL_EINVAL;
    }
    return check_101(h, base, req_base + key->value.off, key->value.len, req, req_base, info,
                     why);
}

int sl_ws_check_response(const sl_http_head_t *h, const char *base,
                         const char *client_key, size_t client_key_len,
                         sl_ws_response_info_t *info, const char **why)
{
    return check_101(h, base, client_key, client_key_len, NULL, NULL, info, why);
}
