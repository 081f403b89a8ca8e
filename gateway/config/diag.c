/*
 * gateway/config/diag.c: collecting error lines.
 *
 * The loader reports every error it finds rather than the first, so the
 * user fixes a file in one round. Lines are kept as separate strings so a
 * caller (and a test) can compare them one by one. User text that goes into
 * a line (values, names) is quoted and stripped of control bytes here, so a
 * hostile file can never break the one-error-per-line rule.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void sl_diag_free(sl_diag_t *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->lines[i]);
    free(d->lines);
    d->lines = NULL;
    d->n = 0;
    d->cap = 0;
}

static void push(sl_diag_t *d, char *line)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        char **l = realloc(d->lines, cap * sizeof *l);
        if (l == NULL) {
            free(line);
            return;
        }
        d->lines = l;
        d->cap = cap;
    }
    d->lines[d->n++] = line;
}

void sl__diag_add(sl_diag_t *d, const char *fmt, ...)
{
    if (d == NULL || d->n > SL__DIAG_MAX)
        return;
    if (d->n == SL__DIAG_MAX) {
        char *stop = strdup("too many errors; stopped reporting");
        if (stop != NULL)
            push(d, stop);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    char *line = NULL;
    int r = vasprintf(&line, fmt, ap);
    va_end(ap);
    if (r < 0)
        return;
    push(d, line);
}

void sl__quote(char *buf, size_t len, const char *s, size_t n, size_t max)
{
    size_t o = 0;
    if (len < 8) {
        if (len)
            buf[0] = '\0';
        return;
    }
    buf[o++] = '"';
    for (size_t i = 0; i < n && o + 5 < len; i++) {
        if (i == max) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char ch = (unsigned char)s[i];
        buf[o++] = (ch < 0x20 || ch == 0x7f || ch == '"') ? '?' : (char)ch;
    }
    buf[o++] = '"';
    buf[o] = '\0';
}

unsigned sl__edit_distance(const char *a, const char *b)
{
    /* Optimal string alignment on short keys; anything long is "far". */
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40)
        return 3;
    unsigned d[41][41];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (unsigned)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            unsigned cost = a[i - 1] != b[j - 1];
            unsigned v = SL_MIN(d[i - 1][j] + 1, d[i][j - 1] + 1);
            v = SL_MIN(v, d[i - 1][j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                v = SL_MIN(v, d[i - 2][j - 2] + 1);
            d[i][j] = v;
        }
    }
    return SL_MIN(d[la][lb], 3u);
}

void sl_diag_add(sl_diag_t *d, const char *line)
{
    sl__diag_add(d, "%s", line);
}
