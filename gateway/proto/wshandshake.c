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
 * The response check also decides which RSV bits the relay's frame parser
 * must allow. permessage-deflate (RFC 7692) uses RSV1 only. An extension we do
 * not know may use any of them, and the relay cannot know what its payload
 * means, so all three are allowed (the shell then also turns off UTF-8
 * validation: the text on the wire is not the text of the message).
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
 * Walk every Sec-WebSocket-Extensions element ("name; params, name2"): was any
 * extension negotiated, and was any of them not permessage-deflate?
 */
static void scan_extensions(const sl_http_head_t *h, const char *base, bool *any, bool *unknown)
{
    *any = *unknown = false;
    for (uint32_t i = 0; i < h->n_headers; i++) {
        const sl_http_header_t *hd = &h->headers[i];
        if (!name_is(base, hd, "sec-websocket-extensions"))
            continue;
        const char *v = base + hd->value.off, *end = v + hd->value.len;
        while (v < end) {
            const char *e = v;
            while (e < end && *e != ',')
                e++;
            const char *ne = v;   /* the name ends at ';' or the element's end */
            while (ne < e && *ne != ';')
                ne++;
            while (v < ne && (*v == ' ' || *v == '\t'))
                v++;
            while (ne > v && (ne[-1] == ' ' || ne[-1] == '\t'))
                ne--;
            if (ne > v) {
                static const char pmd[] = "permessage-deflate";
                *any = true;
                if ((size_t)(ne - v) != sizeof pmd - 1 || strncasecmp(v, pmd, sizeof pmd - 1))
                    *unknown = true;
            }
            v = e + 1;
        }
    }
}

int sl_ws_check_response(const sl_http_head_t *h, const char *base,
                         const char *client_key, size_t client_key_len,
                         sl_ws_response_info_t *info, const char **why)
{
    const char *dummy;
    const sl_http_header_t *accept;
    char want[29];
    bool any, unknown;

    if (why == NULL)
        why = &dummy;
    *why = NULL;
    memset(info, 0, sizeof *info);
    if (h->status != 101)
        return refuse(why, "status is not 101", SL_EINVAL);
    if (!any_has_token(h, base, "upgrade", "websocket"))
        return refuse(why, "Upgrade does not name websocket", SL_EINVAL);
    if (!any_has_token(h, base, "connection", "upgrade"))
        return refuse(why, "Connection does not name upgrade", SL_EINVAL);
    accept = sl_http_find(h, base, "sec-websocket-accept");
    sl_ws_accept_key(client_key, client_key_len, want);
    if (accept == NULL || count(h, base, "sec-websocket-accept") != 1 ||
        !value_is(base, accept, want))
        return refuse(why, "wrong or missing Sec-WebSocket-Accept", SL_EINVAL);

    scan_extensions(h, base, &any, &unknown);
    info->extension_negotiated = any;
    info->allowed_rsv = !any ? 0 : unknown ? 0x7 : 0x4;
    return 0;
}
