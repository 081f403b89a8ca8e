/*
 * token.c: the admin API's bearer token.
 *
 * Only the token's SHA-256 digest is kept; the file's bytes are wiped after
 * hashing. A request's token is hashed too and the digests are compared with
 * CRYPTO_memcmp, so neither the token's content nor its length leaks through
 * the time a refusal takes.
 *
 * The server and `sluice ctl` read a token file with the same function, so
 * a token one accepts is a token the other sends whole.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "admin.h"

_Static_assert(SL_ADMIN_TOKEN_DIGEST == SHA256_DIGEST_LENGTH, "digest size");

/* After the first SL_ADMIN_MAX_TOKEN bytes, is the rest of the file line ends only? */
static bool only_line_ends_left(FILE *f)
{
    int ch;
    while ((ch = getc(f)) != EOF)
        if (ch != '\n' && ch != '\r')
            return false;
    return true;
}

/*
 * Can an Authorization header carry tok[0..n) whole? A field value loses
 * its leading and trailing white space to the parser (RFC 9110, 5.5) and
 * the server skips the spaces after "Bearer", so a token that begins or
 * ends with one would be refused to every client, `sluice ctl` included;
 * and a field value holds no control character but HTAB.
 */
static bool sendable(const char *tok, size_t n)
{
    if (tok[0] == ' ' || tok[0] == '\t' || tok[n - 1] == ' ' || tok[n - 1] == '\t')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)tok[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

long sl_admin_token_read(const char *file, char *tok, size_t cap, char *err, size_t errlen)
{
    if (cap < SL_ADMIN_MAX_TOKEN + 1) {
        snprintf(err, errlen, "%s: no room for a token (a bug)", file);
        return -1;
    }
    FILE *f = fopen(file, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read %s: %s", file, strerror(errno));
        return -1;
    }
    size_t n = fread(tok, 1, SL_ADMIN_MAX_TOKEN, f);
    bool failed = ferror(f) != 0;
    int read_errno = errno;
    /* Line ends after the token are not part of it, however many there are;
       anything else beyond SL_ADMIN_MAX_TOKEN bytes makes the token too long. */
    bool longer = !failed && n == SL_ADMIN_MAX_TOKEN && !only_line_ends_left(f);
    fclose(f);
    while (n > 0 && (tok[n - 1] == '\n' || tok[n - 1] == '\r'))
        n--;
    tok[n] = '\0';
    if (failed) {
        snprintf(err, errlen, "cannot read %s: %s", file, strerror(read_errno));
    } else if (longer) {
        snprintf(err, errlen, "%s: the token is longer than %d bytes (expected 1 to %d bytes "
                 "and a final line end)", file, SL_ADMIN_MAX_TOKEN, SL_ADMIN_MAX_TOKEN);
    } else if (n == 0) {
        snprintf(err, errlen, "%s: the file is empty (expected a token of 1 to %d bytes)", file,
                 SL_ADMIN_MAX_TOKEN);
    } else if (memchr(tok, '\n', n) != NULL || memchr(tok, '\r', n) != NULL) {
        /* A header value cannot hold a line end: no client could send such a token. */
        snprintf(err, errlen, "%s: the token spans more than one line (expected one line)", file);
    } else if (!sendable(tok, n)) {
        snprintf(err, errlen, "%s: the token begins or ends with white space or holds a control "
                 "character (no Authorization header can carry it whole)", file);
    } else {
        return (long)n;
    }
    OPENSSL_cleanse(tok, cap);
    return -1;
}

int sl_admin_token_load(const char *file, unsigned char digest[SL_ADMIN_TOKEN_DIGEST],
                        char *err, size_t errlen)
{
    char tok[SL_ADMIN_MAX_TOKEN + 1];
    long n = sl_admin_token_read(file, tok, sizeof tok, err, errlen);
    if (n < 0)
        return SL_EINVAL;
    SHA256((const unsigned char *)tok, (size_t)n, digest);
    OPENSSL_cleanse(tok, sizeof tok);
    return 0;
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
