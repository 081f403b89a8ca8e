/*
 * sluice/wshandshake.h: the WebSocket opening handshake (RFC 6455 4.1, 4.2),
 * checked on both hops. The gateway validates the client's request before it
 * spends a backend connection on it, and checks the backend's 101 before it
 * tells the client the upgrade succeeded.
 */
#ifndef SLUICE_WSHANDSHAKE_H
#define SLUICE_WSHANDSHAKE_H

#include <stdbool.h>

#include "sluice/http.h"
#include "sluice/wsframe.h"

typedef struct sl_ws_request_info {
    sl_http_span_t key;          /* Sec-WebSocket-Key */
    bool has_extensions;         /* Sec-WebSocket-Extensions offered */
} sl_ws_request_info_t;

/*
 * Is this request a WebSocket upgrade attempt at all? (Upgrade: websocket
 * present, any method or version.) Such requests are then checked strictly.
 */
bool sl_ws_is_upgrade(const sl_http_head_t *h, const char *base);

/*
 * Check a client's upgrade request per RFC 6455 4.2.1. Returns 0 and fills
 * info; or the status to answer with: 400 (bad method, HTTP/1.0, missing
 * Host, missing or invalid key, Connection without Upgrade), 426 (version not
 * 13; answer with Sec-WebSocket-Version: 13). *why names the failed rule.
 */
int sl_ws_check_request(const sl_http_head_t *h, const char *base,
                        sl_ws_request_info_t *info, const char **why);

typedef struct sl_ws_response_info {
    bool extension_negotiated;   /* Sec-WebSocket-Extensions in the 101 */
    uint8_t allowed_rsv;         /* RSV bits the extensions may use on any frame (0x4 for
                                    permessage-deflate alone, 0x7 with an unknown one): the
                                    relay's old setting; `extensions` says more */
    bool permessage_deflate;     /* permessage-deflate was negotiated (RFC 7692) */
    bool other_extension;        /* an extension other than permessage-deflate was negotiated */
    sl_ws_extensions_t extensions;   /* for both frame parsers' `extensions` setting */
} sl_ws_response_info_t;

/*
 * Check the backend's 101 against the client's request (`req`, the head that
 * passed sl_ws_check_request, in its buffer `req_base`), as RFC 6455 4.1 tells
 * the client to, so that a 101 the client would have to fail gets it a 502
 * instead: status 101, Upgrade: websocket and no other protocol (step 2),
 * Connection: upgrade, one Sec-WebSocket-Accept matching the request's key
 * (step 4); every extension in Sec-WebSocket-Extensions one the request
 * offered (step 5), permessage-deflate at most once (RFC 7692 5); at most one
 * Sec-WebSocket-Protocol line, naming one subprotocol the request offered
 * (step 6). Returns 0 and fills info, or SL_EINVAL with *why set.
 */
int sl_ws_check_response_to(const sl_http_head_t *h, const char *base,
                            const sl_http_head_t *req, const char *req_base,
                            sl_ws_response_info_t *info, const char **why);

/*
 * The same check with only the client's key: what was offered cannot be
 * checked, so subprotocols and extensions pass unchecked (RFC 6455 4.1 steps
 * 5 and 6 are not enforced). Kept only until the relay (wsrelay.c) calls
 * sl_ws_check_response_to; use that.
 */
int sl_ws_check_response(const sl_http_head_t *h, const char *base,
                         const char *client_key, size_t client_key_len,
                         sl_ws_response_info_t *info, const char **why);

#endif
