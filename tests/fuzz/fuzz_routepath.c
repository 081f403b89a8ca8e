/*
 * fuzz_routepath.c: libFuzzer target for the router's path normalization
 * (sl_route_path_normalize in gateway/policy/route.c).
 *
 * Input: a request target. The result is never longer than the input and
 * stops at its query; a path stays a path (it starts with "/"), has no
 * "//", no "." or ".." segment and, when every "%" starts an escape, no
 * "%XX" of an unreserved character;
 * and normalizing it again changes nothing (spellings of one path meet in
 * one form, so no spelling can reach past another route's prefix).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/route.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Written here, not taken from route.c: the oracle does not share the code it checks. */
static int hexv(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool unreserved(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    char *out = malloc(size ? size : 1), *again = malloc(size ? size : 1);
    CHECK(out != NULL && again != NULL);
    size_t n = sl_route_path_normalize(in, size, out);
    size_t query = 0;
    while (query < size && in[query] != '?' && in[query] != '#')
        query++;
    CHECK(n <= query);
    CHECK(memchr(out, '?', n) == NULL && memchr(out, '#', n) == NULL);
    bool escapes_valid = true;   /* else nothing is decoded */
    for (size_t i = 0; i < query; i++)
        if (in[i] == '%' && (i + 2 >= query || hexv(in[i + 1]) < 0 || hexv(in[i + 2]) < 0))
            escapes_valid = false;
    if (query > 0 && in[0] == '/') {
        CHECK(n >= 1 && out[0] == '/');
        for (size_t i = 0; i < n; i++) {
            if (out[i] == '/') {
                CHECK(i + 1 >= n || out[i + 1] != '/');
                size_t j = i + 1;
                while (j < n && out[j] != '/')
                    j++;
                size_t len = j - i - 1;
                CHECK(!(len == 1 && out[i + 1] == '.'));
                CHECK(!(len == 2 && out[i + 1] == '.' && out[i + 2] == '.'));
            }
            if (escapes_valid && out[i] == '%' && i + 2 < n && hexv(out[i + 1]) >= 0 &&
                hexv(out[i + 2]) >= 0)
                CHECK(!unreserved(hexv(out[i + 1]) * 16 + hexv(out[i + 2])));
        }
    } else {
        CHECK(n == query && memcmp(out, in, n) == 0);
    }
    size_t n2 = sl_route_path_normalize(out, n, again);
    CHECK(n2 == n && memcmp(again, out, n) == 0);
    free(out);
    free(again);
    return 0;
}
