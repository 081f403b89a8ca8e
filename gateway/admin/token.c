/*
 * token.c: the admin API's bearer token.
 *
 * Only the token's SHA-256 digest is kept; the file's bytes are wiped after
 * hashing. A request's token is hashed too and the digests are compared with
 * CRYPTO_memcmp, so neither the token's content nor its length leaks through
 * the time a refusal takes.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "admin.h"

#define MAX_TOKEN 4096

_Static_assert(SL_ADMIN_TOKEN_DIGEST == SHA256_DIGEST_LENGTH, "digest size");

int sl_admin_token_load(const char *file, unsigned char digest[SL_ADMIN_TOKEN_DIGEST],
                        char *err, size_t errlen)
{
    FILE *f = fopen(file, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "admin.token_file %s: cannot read it: %s", file, strerror(errno));
        return SL_EINVAL;
    }
    char tok[MAX_TOKEN + 2];
    size_t n = fread(tok, 1, sizeof tok, f);
    fclose(f);
    int rc = 0;
    while (n > 0 && n <= MAX_TOKEN && (tok[n - 1] == '\n' || tok[n - 1] == '\r'))
        n--;
    if (n > MAX_TOKEN) {
        snprintf(err, errlen, "admin.token_file %s: longer than %d bytes", file, MAX_TOKEN);
        rc = SL_EINVAL;
    } else if (n == 0) {
        snprintf(err, errlen, "admin.token_file %s: the file is empty", file);
        rc = SL_EINVAL;
    } else {
        SHA256((const unsigned char *)tok, n, digest);
    }
    OPENSSL_cleanse(tok, sizeof tok);
    return rc;
}

bool sl_admin_token_ok(const unsigned char digest[SL_ADMIN_TOKEN_DIGEST],
                       const char *authorization, size_t len)
{
    if (authorization == NULL || len < 7 || strncasecmp(authorization, "bearer ", 7) != 0)
        return false;
    const char *tok = authorization + 7;
    len -= 7;
    while (len > 0 && *tok == ' ') {
        tok++;
        len--;
    }
    unsigned char sha[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)tok, len, sha);
    return CRYPTO_memcmp(sha, digest, sizeof sha) == 0;
}
