/*
 * pathmatch.c: route patterns for the admin API (see sluice/pathmatch.h).
 *
 * Segment by segment, never backtracking: a pattern has no wildcards beyond
 * "one whole segment", so the first difference decides.
 */
#include <string.h>

#include "sluice/pathmatch.h"

static int unhex(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0'
         : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
         : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

/* Percent-decode seg[0..len) into out (room for len + 1); -1 on a bad or NUL escape. */
static long decode_segment(const char *seg, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (seg[i] != '%') {
            out[o++] = seg[i];
            continue;
        }
        int hi, lo;
        if (i + 2 >= len || (hi = unhex(seg[i + 1])) < 0 || (lo = unhex(seg[i + 2])) < 0 ||
            (hi | lo) == 0)
            return -1;
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[o] = '\0';
    return (long)o;
}

static bool is_param(const char *seg, size_t len)
{
    return len > 2 && seg[0] == '{' && seg[len - 1] == '}';
}

bool sl_path_match(const char *pattern, const char *path, const char **params,
                   size_t max_params, size_t *n_params, char *scratch, size_t cap)
{
    size_t used = 0;
    *n_params = 0;
    while (*pattern == '/' && *path == '/') {
        pattern++;
        path++;
        size_t pl = strcspn(pattern, "/"), sl = strcspn(path, "/");
        if (is_param(pattern, pl)) {
            if (sl == 0 || *n_params == max_params || used + sl + 1 > cap)
                return false;
            long n = decode_segment(path, sl, scratch + used);
            if (n < 0)
                return false;
            params[(*n_params)++] = scratch + used;
            used += (size_t)n + 1;
        } else if (pl != sl || memcmp(pattern, path, pl) != 0) {
            return false;
        }
        pattern += pl;
        path += sl;
    }
    return *pattern == '\0' && *path == '\0';
}
