/*
 * utf8.c: incremental UTF-8 validation (RFC 3629).
 *
 * Why a state machine and not "decode a code point, then range-check it":
 * a text message reaches the relay in arbitrary pieces (frames, reads, mask
 * chunks), so a character may be split anywhere. The whole of the decoder's
 * memory must fit in the one uint32_t the caller carries between calls.
 *
 * The states say which bytes may come next. The trick that removes every
 * separate range check is that overlong forms, surrogates and code points
 * above U+10FFFF are all decided by the SECOND byte alone:
 *   E0 must be followed by A0..BF (else overlong),
 *   ED by 80..9F (else a surrogate D800..DFFF),
 *   F0 by 90..BF (else overlong),
 *   F4 by 80..8F (else above U+10FFFF);
 * C0, C1 and F5..FF can never start a character. After that second byte every
 * continuation is plain 80..BF. So each state is (allowed range, next state).
 *
 * Text is mostly ASCII, so at a character boundary the loop skips eight bytes
 * at a time while none has its top bit set.
 */
#include "sluice/utf8.h"

#include <string.h>

/* Incomplete states, after SL_UTF8_ACCEPT (0) and SL_UTF8_REJECT (1). */
enum {
    NEED1 = 2,   /* one more 80..BF */
    NEED2 = 3,   /* two more 80..BF */
    NEED3 = 4,   /* three more 80..BF */
    AFTER_E0 = 5,
    AFTER_ED = 6,
    AFTER_F0 = 7,
    AFTER_F4 = 8,
};

/* For each incomplete state: the range the next byte must be in, and where it leads. */
static const struct {
    uint8_t lo, hi, next;
} cont[] = {
    [NEED1] = {0x80, 0xBF, SL_UTF8_ACCEPT},
    [NEED2] = {0x80, 0xBF, NEED1},
    [NEED3] = {0x80, 0xBF, NEED2},
    [AFTER_E0] = {0xA0, 0xBF, NEED1},
    [AFTER_ED] = {0x80, 0x9F, NEED1},
    [AFTER_F0] = {0x90, 0xBF, NEED2},
    [AFTER_F4] = {0x80, 0x8F, NEED2},
};

/* The state after a byte seen at a character boundary. */
static uint32_t lead(uint8_t c)
{
    if (c < 0x80)
        return SL_UTF8_ACCEPT;
    if (c < 0xC2)
        return SL_UTF8_REJECT;   /* a stray continuation, or C0/C1 (always overlong) */
    if (c < 0xE0)
        return NEED1;
    if (c == 0xE0)
        return AFTER_E0;
    if (c == 0xED)
        return AFTER_ED;
    if (c < 0xF0)
        return NEED2;
    if (c == 0xF0)
        return AFTER_F0;
    if (c < 0xF4)
        return NEED3;
    if (c == 0xF4)
        return AFTER_F4;
    return SL_UTF8_REJECT;
}

uint32_t sl_utf8_feed(uint32_t state, const uint8_t *s, size_t len)
{
    size_t i = 0;

    if (state > AFTER_F4)   /* not a state this module made */
        return SL_UTF8_REJECT;
    while (i < len) {
        if (state == SL_UTF8_REJECT)
            return SL_UTF8_REJECT;
        if (state == SL_UTF8_ACCEPT) {
            /* ASCII run: eight bytes at a time. */
            while (len - i >= 8) {
                uint64_t w;
                memcpy(&w, s + i, 8);
                if (w & 0x8080808080808080ULL)
                    break;
                i += 8;
            }
            if (i == len)
                break;
            state = lead(s[i++]);
            continue;
        }
        uint8_t c = s[i++];
        if (c < cont[state].lo || c > cont[state].hi)
            return SL_UTF8_REJECT;
        state = cont[state].next;
    }
    return state;
}

bool sl_utf8_valid(const uint8_t *s, size_t len)
{
    return sl_utf8_feed(SL_UTF8_ACCEPT, s, len) == SL_UTF8_ACCEPT;
}
