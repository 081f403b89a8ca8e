/*
 * sluice/utf8.h: incremental UTF-8 validation (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), one byte or a buffer at a time, so a
 * text message split over many frames and reads is checked without copying.
 */
#ifndef SLUICE_UTF8_H
#define SLUICE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_UTF8_ACCEPT 0u   /* at a character boundary: the text so far is valid */
#define SL_UTF8_REJECT 1u   /* invalid: sticky */

/* Feed bytes; returns the new state. A state other than ACCEPT or REJECT
   means a character is incomplete. Start from SL_UTF8_ACCEPT. */
uint32_t sl_utf8_feed(uint32_t state, const uint8_t *s, size_t len);

/* True when `s` is complete, valid UTF-8. */
bool sl_utf8_valid(const uint8_t *s, size_t len);

#endif
