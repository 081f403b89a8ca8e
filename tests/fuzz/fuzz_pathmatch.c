/*
 * fuzz_pathmatch.c: libFuzzer target for gateway/proto/pathmatch.c.
 *
 * Input: pattern, a NUL byte, then the path. On a match every parameter is
 * non-empty, holds no NUL, lies inside the scratch buffer, and the parameter
 * count is the number of {name} segments in the pattern; a pattern without
 * parameters matches only the identical path. The result never depends on
 * what was in the outputs before.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/pathmatch.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)
#define MAXP 4
#define CAP 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t count_params(const char *pattern)
{
    size_t n = 0;
    for (const char *p = pattern; *p == '/';) {
        p++;
        size_t len = strcspn(p, "/");
        if (len > 2 && p[0] == '{' && p[len - 1] == '}')
            n++;
        p += len;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    if (nul == NULL)
        return 0;
    char *pattern = strndup((const char *)data, (size_t)(nul - data));
    char *path = strndup((const char *)nul + 1, size - (size_t)(nul - data) - 1);
    CHECK(pattern != NULL && path != NULL);
    const char *params[MAXP], *again[MAXP];
    size_t n, n2;
    char *scratch = malloc(CAP), *scratch2 = malloc(CAP);
    CHECK(scratch != NULL && scratch2 != NULL);
    memset(scratch2, 0xff, CAP);
    bool ok = sl_path_match(pattern, path, params, MAXP, &n, scratch, CAP);
    CHECK(sl_path_match(pattern, path, again, MAXP, &n2, scratch2, CAP) == ok);
    if (ok) {
        CHECK(n == count_params(pattern) && n2 == n);
        for (size_t i = 0; i < n; i++) {
            CHECK(params[i] >= scratch && params[i] < scratch + CAP);
            size_t len = strnlen(params[i], (size_t)(scratch + CAP - params[i]));
            CHECK(len > 0 && params[i] + len < scratch + CAP);
            CHECK(strcmp(params[i], again[i]) == 0);
        }
        if (n == 0)
            CHECK(strcmp(pattern, path) == 0);
    }
    free(scratch);
    free(scratch2);
    free(pattern);
    free(path);
    return 0;
}
