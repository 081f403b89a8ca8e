/*
 * Tests for gateway/proto/utf8.c: a golden table of sequences (each fed whole,
 * split at every byte and one byte at a time), then an exhaustive comparison
 * against a slow reference decoder over every sequence of up to three bytes
 * and every four-byte sequence whose lead byte could start one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/utf8.h"

typedef struct {
    const char *name;
    const char *bytes;
    size_t len;          /* 0: strlen(bytes) */
    bool valid;          /* complete and valid */
    bool rejected;       /* definitely invalid (not merely incomplete) */
} utf8_case_t;

#define VALID(n, s) {n, s, sizeof(s) - 1, true, false}
#define BAD(n, s) {n, s, sizeof(s) - 1, false, true}
#define PARTIAL(n, s) {n, s, sizeof(s) - 1, false, false}

static const utf8_case_t cases[] = {
    VALID("empty", ""),
    VALID("ascii", "Hello, world! 0123456789 abcdefghijklmnopqrstuvwxyz"),
    VALID("nul is valid", "a\0b"),
    VALID("two-byte min U+0080", "\xC2\x80"),
    VALID("two-byte max U+07FF", "\xDF\xBF"),
    VALID("three-byte min U+0800", "\xE0\xA0\x80"),
    VALID("before surrogates U+D7FF", "\xED\x9F\xBF"),
    VALID("after surrogates U+E000", "\xEE\x80\x80"),
    VALID("U+FFFF", "\xEF\xBF\xBF"),
    VALID("U+FEFF BOM", "\xEF\xBB\xBF"),
    VALID("four-byte min U+10000", "\xF0\x90\x80\x80"),
    VALID("max U+10FFFF", "\xF4\x8F\xBF\xBF"),
    VALID("mixed text", "caf\xC3\xA9 \xE2\x82\xAC 10 \xF0\x9F\x98\x80 ok"),
    VALID("long ascii then multibyte", "abcdefghijklmnopqrstuvwx\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"),
    BAD("stray continuation", "\x80"),
    BAD("stray continuation after ascii", "abcdefgh\xBF"),
    BAD("C0 overlong", "\xC0\xAF"),
    BAD("C1 overlong", "\xC1\xBF"),
    BAD("E0 overlong", "\xE0\x80\xAF"),
    BAD("E0 9F overlong", "\xE0\x9F\xBF"),
    BAD("F0 overlong", "\xF0\x80\x80\xAF"),
    BAD("F0 8F overlong", "\xF0\x8F\xBF\xBF"),
    BAD("surrogate U+D800", "\xED\xA0\x80"),
    BAD("surrogate U+DFFF", "\xED\xBF\xBF"),
    BAD("above U+10FFFF", "\xF4\x90\x80\x80"),
    BAD("F5 lead", "\xF5\x80\x80\x80"),
    BAD("FE", "\xFE"),
    BAD("FF", "\xFF"),
    BAD("lead then ascii", "\xC3("),
    BAD("three-byte cut by ascii", "\xE2\x82("),
    BAD("four-byte cut by lead", "\xF0\x9F\x98\xC3\xA9"),
    BAD("valid then invalid then valid", "ok\xC3\xA9\xFFok"),
    PARTIAL("ends after two-byte lead", "abc\xC3"),
    PARTIAL("ends inside three-byte", "\xE2\x82"),
    PARTIAL("ends inside four-byte", "\xF0\x9F\x98"),
    PARTIAL("E0 alone", "\xE0"),
};

/* Like assert_true, but names the table row that failed. */
#define CHECK(c, cond)                                          \
    do {                                                        \
        if (!(cond))                                            \
            fail_msg("case \"%s\": %s", (c)->name, #cond);       \
    } while (0)

static void check_case(const utf8_case_t *c)
{
    const uint8_t *s = (const uint8_t *)c->bytes;
    uint32_t whole = sl_utf8_feed(SL_UTF8_ACCEPT, s, c->len);
    CHECK(c, sl_utf8_valid(s, c->len) == c->valid);
    CHECK(c, (whole == SL_UTF8_ACCEPT) == c->valid);
    CHECK(c, (whole == SL_UTF8_REJECT) == c->rejected);

    /* Split at every byte: the state carried across must give the same answer. */
    for (size_t cut = 0; cut <= c->len; cut++) {
        uint32_t st = sl_utf8_feed(SL_UTF8_ACCEPT, s, cut);
        st = sl_utf8_feed(st, s + cut, c->len - cut);
        CHECK(c, st == whole);
    }
    /* One byte at a time. */
    uint32_t st = SL_UTF8_ACCEPT;
    for (size_t i = 0; i < c->len; i++)
        st = sl_utf8_feed(st, s + i, 1);
    CHECK(c, st == whole);
}

static void test_golden_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i]);
}

static void test_reject_is_sticky(void **state)
{
    (void)state;
    uint32_t st = sl_utf8_feed(SL_UTF8_ACCEPT, (const uint8_t *)"\xFF", 1);
    assert_int_equal(st, SL_UTF8_REJECT);
    assert_int_equal(sl_utf8_feed(st, (const uint8_t *)"abc", 3), SL_UTF8_REJECT);
    assert_int_equal(sl_utf8_feed(st, NULL, 0), SL_UTF8_REJECT);
    /* A state value the module never produces is treated as invalid. */
    assert_int_equal(sl_utf8_feed(12345, (const uint8_t *)"a", 1), SL_UTF8_REJECT);
}

static void test_incomplete_state_survives_empty_feed(void **state)
{
    (void)state;
    uint32_t st = sl_utf8_feed(SL_UTF8_ACCEPT, (const uint8_t *)"\xE2", 1);
    assert_true(st != SL_UTF8_ACCEPT && st != SL_UTF8_REJECT);
    assert_int_equal(sl_utf8_feed(st, NULL, 0), st);
    assert_int_equal(sl_utf8_feed(st, (const uint8_t *)"\x82\xAC", 2), SL_UTF8_ACCEPT);
}

/*
 * Reference: decode the one character `s` must be exactly, the slow way.
 * Returns true when s[0..len) is exactly one valid character.
 */
static bool ref_one_char(const uint8_t *s, size_t len)
{
    uint32_t cp;
    size_t need;
    if (s[0] < 0x80) {
        cp = s[0];
        need = 1;
    } else if ((s[0] & 0xE0) == 0xC0) {
        cp = s[0] & 0x1F;
        need = 2;
    } else if ((s[0] & 0xF0) == 0xE0) {
        cp = s[0] & 0x0F;
        need = 3;
    } else if ((s[0] & 0xF8) == 0xF0) {
        cp = s[0] & 0x07;
        need = 4;
    } else {
        return false;
    }
    if (len != need)
        return false;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return false;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[need] || cp > 0x10FFFF)
        return false;
    return !(cp >= 0xD800 && cp <= 0xDFFF);
}

static void test_exhaustive_against_reference(void **state)
{
    (void)state;
    uint8_t b[4];
    size_t valid_count[5] = {0};
    for (uint32_t x = 0; x < 0x100; x++) {
        b[0] = (uint8_t)x;
        assert_int_equal(sl_utf8_valid(b, 1), ref_one_char(b, 1));
        valid_count[1] += ref_one_char(b, 1);
    }
    for (uint32_t x = 0; x < 0x10000; x++) {
        b[0] = (uint8_t)(x >> 8);
        b[1] = (uint8_t)x;
        bool ref = ref_one_char(b, 2);
        valid_count[2] += ref;
        if (b[0] < 0x80) /* two ASCII characters */
            ref = b[1] < 0x80;
        assert_int_equal(sl_utf8_valid(b, 2), ref);
    }
    /* Three bytes with a three-byte lead; four bytes with a four-byte lead. */
    for (uint32_t x = 0xE00000; x < 0xF00000; x++) {
        b[0] = (uint8_t)(x >> 16);
        b[1] = (uint8_t)(x >> 8);
        b[2] = (uint8_t)x;
        bool ref = ref_one_char(b, 3);
        valid_count[3] += ref;
        assert_int_equal(sl_utf8_valid(b, 3), ref);
    }
    for (uint32_t l = 0xF0; l <= 0xF7; l++) {
        for (uint32_t x = 0; x < 0x10000; x++) {
            static const uint8_t last[] = {0x7F, 0x80, 0xBF, 0xC0};
            for (size_t k = 0; k < sizeof last; k++) {
                b[0] = (uint8_t)l;
                b[1] = (uint8_t)(x >> 8);
                b[2] = (uint8_t)x;
                b[3] = last[k];
                bool ref = ref_one_char(b, 4);
                valid_count[4] += ref;
                assert_int_equal(sl_utf8_valid(b, 4), ref);
            }
        }
    }
    /* The counts of valid characters per length are known exactly. */
    assert_int_equal(valid_count[1], 128);
    assert_int_equal(valid_count[2], 0x800 - 0x80);
    assert_int_equal(valid_count[3], 0x10000 - 0x800 - 0x800);
    /* Last byte sampled at 0x7F, 0x80, 0xBF, 0xC0: two of the 64 valid values. */
    assert_int_equal(valid_count[4], (0x110000 - 0x10000) / 64 * 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_table),
        cmocka_unit_test(test_reject_is_sticky),
        cmocka_unit_test(test_incomplete_state_survives_empty_feed),
        cmocka_unit_test(test_exhaustive_against_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
