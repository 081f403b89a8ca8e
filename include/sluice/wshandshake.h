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
    uint8_t allowed_rsv;         /* RSV bits the extension may use (RSV1 for permessage-deflate) */
} sl_ws_response_info_t;

/*
 * Check the backend's 101 against the client's key: Upgrade: websocket,
 * Connection: upgrade, Sec-WebSocket-Accept correct. Returns 0 or SL_EINVAL
 * with *why set (the gateway then answers the client 502).
 */
int sl_ws_check_response(const sl_http_head_t *h, const char *base,
                         const char *client_key, size_t client_key_len,
                         sl_ws_response_info_t *info, const char **why);

#endif
