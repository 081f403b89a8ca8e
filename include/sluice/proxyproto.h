/*
 * sluice/proxyproto.h: the PROXY protocol header (v1 text and v2 binary) a
 * load balancer in front may prepend, so per-client limits key on the real
 * client. Parser in the picohttpparser shape: no allocation, zeroed output.
 */
#ifndef SLUICE_PROXYPROTO_H
#define SLUICE_PROXYPROTO_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "sluice/common.h"
#include "sluice/config.h"

typedef struct sl_proxy_header {
    int version;                     /* 1 or 2 */
    bool local;                      /* v2 LOCAL or v1 UNKNOWN: keep the peer address */
    struct sockaddr_storage src;     /* the real client */
    struct sockaddr_storage dst;
} sl_proxy_header_t;

/*
 * Parse a PROXY header at the start of `buf`. `allowed` says which versions
 * the listener takes. Returns the header length (> 0), SL_NEED_MORE, or
 * SL_EINVAL (wrong signature, malformed, or a version not allowed).
 * v1 headers are at most 107 bytes; v2 at most 16 + 65535.
 */
int sl_proxy_parse(const uint8_t *buf, size_t len, sl_proxy_protocol_t allowed,
                   sl_proxy_header_t *out);

#endif
