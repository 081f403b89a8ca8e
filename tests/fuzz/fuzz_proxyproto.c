/*
 * fuzz_proxyproto.c: libFuzzer target for gateway/proto/proxyproto.c.
 *
 * Input: byte 0 picks the versions allowed; the rest is the stream. A parsed
 * header must fit in the input, every shorter prefix of it must be
 * SL_NEED_MORE, and its addresses must be IPv4 or IPv6 unless it is local.
 * A refused input must stay refused when more bytes follow.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/proxyproto.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    sl_proxy_protocol_t allowed = (sl_proxy_protocol_t)(data[0] & 3);
    const uint8_t *buf = data + 1;
    size_t len = size - 1;
    sl_proxy_header_t h;
    int rc = sl_proxy_parse(buf, len, allowed, &h);
    CHECK(rc == SL_NEED_MORE || rc == SL_EINVAL || (rc > 0 && (size_t)rc <= len));
    if (rc > 0) {
        CHECK(h.version == 1 || h.version == 2);
        if (!h.local) {
            CHECK(h.src.ss_family == AF_INET || h.src.ss_family == AF_INET6);
            CHECK(h.dst.ss_family == h.src.ss_family);
        }
        for (size_t k = 0; k < (size_t)rc && k < 256; k++) {
            sl_proxy_header_t tmp;
            CHECK(sl_proxy_parse(buf, k, allowed, &tmp) == SL_NEED_MORE);
        }
    } else if (rc == SL_EINVAL) {
        for (size_t k = len + 1; k-- > 0 && k + 64 > len;) {
            sl_proxy_header_t tmp;
            int r = sl_proxy_parse(buf, k, allowed, &tmp);
            CHECK(r == SL_EINVAL || r == SL_NEED_MORE);
        }
    } else {
        CHECK(h.version == 0);
    }
    return 0;
}
