/*
 * pathmatch.h: match a request path against a route pattern such as
 * "/api/v1/pools/{pool}/backends/{backend}". Pure: no allocation, no I/O.
 *
 * A literal segment matches itself byte for byte. A {name} segment matches
 * one non-empty path segment, which is percent-decoded into the caller's
 * scratch buffer and returned as a parameter, in pattern order. A path whose
 * parameter holds a bad escape ("%4", "%zz") or an encoded NUL ("%00") does
 * not match, so a handler never sees a truncated name.
 */
#ifndef SLUICE_PATHMATCH_H
#define SLUICE_PATHMATCH_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Returns true when `path` matches `pattern` (both NUL-terminated, without a
 * query). On a match params[0..*n_params) point into scratch (NUL-separated,
 * at most cap bytes); false also when more than max_params parameters or
 * more than cap bytes would be needed. params and *n_params are undefined
 * after false.
 */
bool sl_path_match(const char *pattern, const char *path, const char **params,
                   size_t max_params, size_t *n_params, char *scratch, size_t cap);

#endif
