/*
 * Tests for gateway/proto/json.c (the parser) and, through a direct include,
 * gateway/admin/json_out.c (the writer: pure code that lives with the admin
 * server but links nothing of the shell, so it is tested here).
 *
 * Golden tables: valid texts with the exact compact text they write back
 * as; invalid texts with the exact error code, byte offset and message.
 * Every input is fed from an exact-size heap copy so ASan sees an overread,
 * and every proper prefix of a valid container or string must be refused.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/json.h"
#include "../../../gateway/admin/json_out.c"

static int parse_copy(sl_json_doc_t *doc, const char *in, size_t len,
                      const sl_json_limits_t *lim, sl_json_error_t *err)
{
    char *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    memcpy(buf, in, len);
    int rc = sl_json_parse(doc, buf, len, lim, err);
    free(buf);      /* the document must not point into the input */
    return rc;
}

/* Compact text of a parsed value; the caller frees it. */
static char *write_back(const sl_json_t *v, bool pretty)
{
    sl_buf_t b = {0};
    sl_jw_t w;
    sl_jw_init(&w, &b, pretty);
    sl_jw_value(&w, v);
    assert_false(b.oom);
    return b.data;
}

/* ---- valid texts -------------------------------------------------------------- */

static const struct {
    const char *in;
    size_t len;      /* 0: strlen */
    const char *out;
} good[] = {
    {"{\"a\":1}", 0, "{\"a\":1}"},
    {" \t\r\n[1, -2.5e3, 0, -0, 1E+2, 0.5e-1] \n", 0, "[1,-2.5e3,0,-0,1E+2,0.5e-1]"},
    {"true", 0, "true"},
    {"false", 0, "false"},
    {"null", 0, "null"},
    {"42", 0, "42"},
    {"\"\"", 0, "\"\""},
    {"{}", 0, "{}"},
    {"[]", 0, "[]"},
    {"[[],{},[[]]]", 0, "[[],{},[[]]]"},
    {"{ \"a\" : { \"b\" : [ 1 , { \"c\" : null } ] } , \"d\" : \"e\" }", 0,
     "{\"a\":{\"b\":[1,{\"c\":null}]},\"d\":\"e\"}"},
    {"\"\\u00e9\\ud83d\\ude00\\n\\\"\\\\\\/\\b\\f\\r\\t\"", 0,
     "\"\xc3\xa9\xf0\x9f\x98\x80\\n\\\"\\\\/\\b\\f\\r\\t\""},
    {"\"\\u0000x\"", 0, "\"\\u0000x\""},
    {"\"\\u001F\\u007f\"", 0, "\"\\u001f\x7f\""},
    {"\"\xe2\x80\xa8 \xf4\x8f\xbf\xbf\"", 0, "\"\xe2\x80\xa8 \xf4\x8f\xbf\xbf\""},
    {"{\"\":0,\"a\\u0000\":1,\"a\":2}", 0, "{\"\":0,\"a\\u0000\":1,\"a\":2}"},
    {"{\"rate\":\"300/s\",\"burst\":50}", 0, "{\"rate\":\"300/s\",\"burst\":50}"},
};

static void valid_texts_write_back_exactly(void **state)
{
    (void)state;
    for (size_t i = 0; i < SL_ARRAY_SIZE(good); i++) {
        size_t len = good[i].len ? good[i].len : strlen(good[i].in);
        sl_json_doc_t doc = {0};
        sl_json_error_t err = {0};
        int rc = parse_copy(&doc, good[i].in, len, NULL, &err);
        if (rc != 0)
            fail_msg("case %zu: rc %d at %zu: %s", i, rc, err.offset, err.msg);
        char *out = write_back(doc.root, false);
        if (strcmp(out, good[i].out) != 0)
            fail_msg("case %zu: wrote %s, want %s", i, out, good[i].out);
        /* and what it wrote parses to the same text again */
        sl_json_doc_t again = {0};
        assert_int_equal(parse_copy(&again, out, strlen(out), NULL, NULL), 0);
        char *out2 = write_back(again.root, false);
        assert_string_equal(out2, out);
        free(out2);
        free(out);
        sl_json_doc_free(&again);
        sl_json_doc_free(&doc);
        assert_null(doc.root);
    }
}

static void values_and_lookups(void **state)
{
    (void)state;
    static const char text[] =
        "{\"n\": -12.5e1, \"s\": \"a\\u0000b\", \"arr\": [10, true, null], \"o\": {\"k\": false}}";
    sl_json_doc_t doc = {0};
    assert_int_equal(parse_copy(&doc, text, sizeof text - 1, NULL, NULL), 0);
    const sl_json_t *r = doc.root;
    assert_int_equal(r->type, SL_JSON_OBJECT);
    assert_int_equal(r->n, 4);
    const sl_json_t *n = sl_json_get(r, "n");
    assert_int_equal(n->type, SL_JSON_NUMBER);
    assert_true(n->num == -125.0);
    assert_string_equal(n->raw, "-12.5e1");
    const sl_json_t *s = sl_json_get(r, "s");
    assert_int_equal(s->len, 3);
    assert_memory_equal(s->str, "a\0b", 4);
    const sl_json_t *arr = sl_json_get(r, "arr");
    assert_int_equal(arr->n, 3);
    assert_true(sl_json_at(arr, 0)->num == 10.0);
    assert_int_equal(sl_json_at(arr, 1)->type, SL_JSON_TRUE);
    assert_int_equal(sl_json_at(arr, 2)->type, SL_JSON_NULL);
    assert_null(sl_json_at(arr, 3));
    assert_null(sl_json_at(r, 0));           /* not an array */
    assert_int_equal(sl_json_get(sl_json_get(r, "o"), "k")->type, SL_JSON_FALSE);
    assert_null(sl_json_get(r, "missing"));
    assert_null(sl_json_get(arr, "n"));      /* not an object */
    assert_null(sl_json_get(NULL, "n"));
    assert_string_equal(sl_json_type_name(SL_JSON_TRUE), "boolean");
    assert_string_equal(sl_json_type_name(SL_JSON_OBJECT), "object");
    assert_string_equal(sl_json_type_name(SL_JSON_NULL), "null");
    sl_json_doc_free(&doc);
    sl_json_doc_free(&doc);                  /* idempotent */
}

/* ---- invalid texts ----------------------------------------------------------------- */

static const struct {
    const char *in;
    size_t len;
    int rc;
    size_t offset;
    const char *msg;
} bad[] = {
    {"", 0, SL_EINVAL, 0, "expected a value"},
    {"   ", 0, SL_EINVAL, 3, "expected a value"},
    {"{", 0, SL_EINVAL, 1, "expected a string key in the object"},
    {"{\"a\" 1}", 0, SL_EINVAL, 5, "expected ':' after an object key"},
    {"{\"a\":1,}", 0, SL_EINVAL, 7, "expected a string key in the object"},
    {"{a:1}", 0, SL_EINVAL, 1, "expected a string key in the object"},
    {"[1,]", 0, SL_EINVAL, 3, "expected a value"},
    {"[1 2]", 0, SL_EINVAL, 3, "expected ',' or ']' in the array"},
    {"[1", 0, SL_EINVAL, 2, "expected ',' or ']' in the array"},
    {"{\"a\":1 \"b\":2}", 0, SL_EINVAL, 7, "expected ',' or '}' in the object"},
    {"01", 0, SL_EINVAL, 0, "invalid number (leading zero)"},
    {"-01", 0, SL_EINVAL, 1, "invalid number (leading zero)"},
    {"-", 0, SL_EINVAL, 1, "invalid number (expected a digit)"},
    {"-a", 0, SL_EINVAL, 1, "invalid number (expected a digit)"},
    {"+1", 0, SL_EINVAL, 0, "expected a value"},
    {".5", 0, SL_EINVAL, 0, "expected a value"},
    {"1.", 0, SL_EINVAL, 2, "invalid number (expected a digit after '.')"},
    {"1e", 0, SL_EINVAL, 2, "invalid number (expected a digit in the exponent)"},
    {"1e+", 0, SL_EINVAL, 3, "invalid number (expected a digit in the exponent)"},
    {"1e999", 0, SL_EINVAL, 0, "number out of range"},
    {"[0x10]", 0, SL_EINVAL, 2, "expected ',' or ']' in the array"},
    {"\"abc", 0, SL_EINVAL, 0, "unterminated string"},
    {"\"abc\\\"", 0, SL_EINVAL, 0, "unterminated string"},
    {"\"a\x01\"", 0, SL_EINVAL, 2, "control character in string (escape it)"},
    {"\"a\nb\"", 0, SL_EINVAL, 2, "control character in string (escape it)"},
    {"\"\\q\"", 0, SL_EINVAL, 1, "invalid escape in string"},
    {"\"\\u12G4\"", 0, SL_EINVAL, 1, "invalid \\u escape (expected 4 hex digits)"},
    {"\"\\u12\"", 0, SL_EINVAL, 1, "invalid \\u escape (expected 4 hex digits)"},
    {"\"ab\\ud800\"", 0, SL_EINVAL, 3, "unpaired high surrogate in \\u escape"},
    {"\"\\ud800\\u0041\"", 0, SL_EINVAL, 1, "unpaired high surrogate in \\u escape"},
    {"\"\\udc00\"", 0, SL_EINVAL, 1, "unpaired low surrogate in \\u escape"},
    {"\"\xff\"", 0, SL_EINVAL, 1, "invalid UTF-8 in string"},
    {"\"\xc3\"", 0, SL_EINVAL, 2, "invalid UTF-8 in string"},
    {"\"\xc3\\n\"", 0, SL_EINVAL, 2, "invalid UTF-8 in string"},
    {"\"\xed\xa0\x80\"", 0, SL_EINVAL, 2, "invalid UTF-8 in string"},
    {"\"\xc0\xaf\"", 0, SL_EINVAL, 1, "invalid UTF-8 in string"},
    {"tru", 0, SL_EINVAL, 0, "expected a value"},
    {"nul", 0, SL_EINVAL, 0, "expected a value"},
    {"NaN", 0, SL_EINVAL, 0, "expected a value"},
    {"'a'", 0, SL_EINVAL, 0, "expected a value"},
    {"true false", 0, SL_EINVAL, 5, "unexpected data after the JSON value"},
    {"{\"a\":1}}", 0, SL_EINVAL, 7, "unexpected data after the JSON value"},
    {"[1,2]x", 0, SL_EINVAL, 5, "unexpected data after the JSON value"},
    {"{\"a\":1,\"b\":2,\"a\":3}", 0, SL_EINVAL, 13, "duplicate key in object"},
    {"{\"a\\u0062\":1,\"ab\":2}", 0, SL_EINVAL, 13, "duplicate key in object"},
    {"\xef\xbb\xbf{}", 0, SL_EINVAL, 0, "expected a value"},
    {"[1]\0", 4, SL_EINVAL, 3, "unexpected data after the JSON value"},
    {"\"a\0\"", 4, SL_EINVAL, 2, "control character in string (escape it)"},
    {"/* c */ 1", 0, SL_EINVAL, 0, "expected a value"},
};

static void invalid_texts_give_exact_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < SL_ARRAY_SIZE(bad); i++) {
        size_t len = bad[i].len ? bad[i].len : strlen(bad[i].in);
        sl_json_doc_t doc = {0};
        sl_json_error_t err = {0};
        int rc = parse_copy(&doc, bad[i].in, len, NULL, &err);
        if (rc != bad[i].rc || err.offset != bad[i].offset || err.msg == NULL ||
            strcmp(err.msg, bad[i].msg) != 0)
            fail_msg("case %zu: got rc %d at %zu \"%s\", want rc %d at %zu \"%s\"", i, rc,
                     err.offset, err.msg ? err.msg : "(null)", bad[i].rc, bad[i].offset,
                     bad[i].msg);
        assert_null(doc.root);
        assert_null(doc.blocks);
    }
}

/* A container or string cut anywhere before its end is refused, never accepted. */
static void every_prefix_of_a_container_is_refused(void **state)
{
    (void)state;
    static const char *texts[] = {
        "{\"a\":[1,2,{\"b\":\"c\\u00e9\"}],\"d\":true}",
        "[\"\\ud83d\\ude00\",null,-1.5e-3]",
        "\"\xf0\x9f\x98\x80 x\"",
    };
    for (size_t t = 0; t < SL_ARRAY_SIZE(texts); t++) {
        size_t len = strlen(texts[t]);
        for (size_t k = 0; k < len; k++) {
            sl_json_doc_t doc = {0};
            sl_json_error_t err = {0};
            int rc = parse_copy(&doc, texts[t], k, NULL, &err);
            if (rc != SL_EINVAL)
                fail_msg("text %zu cut at %zu: rc %d", t, k, rc);
            assert_true(err.offset <= k);
        }
        sl_json_doc_t doc = {0};
        assert_int_equal(parse_copy(&doc, texts[t], len, NULL, NULL), 0);
        sl_json_doc_free(&doc);
    }
}

/* ---- limits ------------------------------------------------------------------------ */

static char *nest(size_t depth)
{
    char *s = malloc(2 * depth + 1);
    assert_non_null(s);
    memset(s, '[', depth);
    memset(s + depth, ']', depth);
    s[2 * depth] = '\0';
    return s;
}

static void depth_limit(void **state)
{
    (void)state;
    sl_json_doc_t doc = {0};
    sl_json_error_t err = {0};
    char *ok = nest(32), *deep = nest(33);
    assert_int_equal(parse_copy(&doc, ok, strlen(ok), NULL, &err), 0);     /* default 32 */
    sl_json_doc_free(&doc);
    assert_int_equal(parse_copy(&doc, deep, strlen(deep), NULL, &err), SL_ELIMIT);
    assert_int_equal(err.offset, 32);
    assert_string_equal(err.msg, "nested too deeply");
    free(ok);
    free(deep);

    sl_json_limits_t lim = {.max_depth = 2};
    assert_int_equal(parse_copy(&doc, "[[1]]", 5, &lim, &err), 0);
    sl_json_doc_free(&doc);
    assert_int_equal(parse_copy(&doc, "{\"a\":{\"b\":{}}}", 14, &lim, &err), SL_ELIMIT);
    assert_int_equal(err.offset, 10);
    /* scalars do not count as depth */
    assert_int_equal(parse_copy(&doc, "{\"a\":[\"x\",2]}", 13, &lim, &err), 0);
    sl_json_doc_free(&doc);
}

static void node_limit(void **state)
{
    (void)state;
    sl_json_limits_t lim = {.max_nodes = 3};
    sl_json_doc_t doc = {0};
    sl_json_error_t err = {0};
    assert_int_equal(parse_copy(&doc, "[1,2]", 5, &lim, &err), 0);
    sl_json_doc_free(&doc);
    assert_int_equal(parse_copy(&doc, "[1,2,3]", 7, &lim, &err), SL_ELIMIT);
    assert_int_equal(err.offset, 5);
    assert_string_equal(err.msg, "too many values");
    assert_int_equal(parse_copy(&doc, "{\"a\":1,\"b\":2,\"c\":3}", 19, &lim, &err), SL_ELIMIT);
    assert_int_equal(err.offset, 17);
    /* default: 4096 values; a big flat array of them parses, one more does not */
    sl_buf_t b = {0};
    sl_buf_puts(&b, "[0");
    for (int i = 1; i < 4095; i++)
        sl_buf_puts(&b, ",0");
    sl_buf_puts(&b, "]");
    assert_int_equal(parse_copy(&doc, b.data, b.len, NULL, &err), 0);
    assert_int_equal(doc.root->n, 4095);
    sl_json_doc_free(&doc);
    b.len--;
    sl_buf_puts(&b, ",0]");
    assert_int_equal(parse_copy(&doc, b.data, b.len, NULL, &err), SL_ELIMIT);
    sl_buf_free(&b);
}

/* no_nul: \u0000 refused in values and keys, at the escape; other escapes are fine. */
static void nul_refused_when_asked(void **state)
{
    (void)state;
    static const struct { const char *in; size_t off; } nul[] = {
        {"\"50/s\\u0000junk\"", 5},
        {"{\"burst\\u0000\": 5}", 7},
        {"[\"ok\", {\"k\": \"\\u0000\"}]", 14},
    };
    sl_json_limits_t lim = {.no_nul = true};
    sl_json_doc_t doc = {0};
    sl_json_error_t err = {0};
    for (size_t i = 0; i < SL_ARRAY_SIZE(nul); i++) {
        const char *in = nul[i].in;
        assert_int_equal(parse_copy(&doc, in, strlen(in), &lim, &err), SL_EINVAL);
        assert_int_equal(err.offset, nul[i].off);
        assert_string_equal(err.msg, "\\u0000 in a string (not accepted here)");
        assert_null(doc.root);
        /* without the flag the same text parses, the NUL inside the string */
        assert_int_equal(parse_copy(&doc, in, strlen(in), NULL, &err), 0);
        sl_json_doc_free(&doc);
    }
    const char *ok = "{\"a\": \"\\u0001\\u00e9\\ud83d\\ude00\"}";
    assert_int_equal(parse_copy(&doc, ok, strlen(ok), &lim, &err), 0);
    assert_int_equal(sl_json_get(doc.root, "a")->len, 7);
    sl_json_doc_free(&doc);
}

/* Long strings cross arena blocks and still decode whole. */
static void long_strings(void **state)
{
    (void)state;
    sl_buf_t b = {0};
    sl_buf_puts(&b, "[");
    for (int i = 0; i < 3; i++) {
        sl_buf_puts(&b, i ? ",\"" : "\"");
        for (int k = 0; k < 5000; k++)
            sl_buf_puts(&b, "\\u00e9");
        sl_buf_puts(&b, "\"");
    }
    sl_buf_puts(&b, "]");
    sl_json_doc_t doc = {0};
    assert_int_equal(parse_copy(&doc, b.data, b.len, NULL, NULL), 0);
    for (int i = 0; i < 3; i++) {
        const sl_json_t *s = sl_json_at(doc.root, (size_t)i);
        assert_int_equal(s->len, 10000);
        assert_memory_equal(s->str + 9998, "\xc3\xa9", 3);
    }
    sl_json_doc_free(&doc);
    sl_buf_free(&b);
}

/* ---- the writer ------------------------------------------------------------------------ */

static void writer_compact_and_pretty(void **state)
{
    (void)state;
    for (int pretty = 0; pretty <= 1; pretty++) {
        sl_buf_t b = {0};
        sl_jw_t w;
        sl_jw_init(&w, &b, pretty);
        sl_jw_obj(&w);
        sl_jw_kuint(&w, "a", 18446744073709551615ULL);
        sl_jw_key(&w, "b");
        sl_jw_arr(&w);
        sl_jw_bool(&w, true);
        sl_jw_int(&w, -5);
        sl_jw_null(&w);
        sl_jw_end(&w);
        sl_jw_key(&w, "c");
        sl_jw_obj(&w);
        sl_jw_end(&w);
        sl_jw_key(&w, "d");
        sl_jw_arr(&w);
        sl_jw_end(&w);
        sl_jw_kstr(&w, "e", "x\"y");
        sl_jw_kbool(&w, "f", false);
        sl_jw_knum(&w, "g", 0.1);
        sl_jw_end(&w);
        assert_false(b.oom);
        assert_int_equal(w.depth, 0);
        if (!pretty)
            assert_string_equal(b.data, "{\"a\":18446744073709551615,\"b\":[true,-5,null],"
                                        "\"c\":{},\"d\":[],\"e\":\"x\\\"y\",\"f\":false,\"g\":0.1}");
        else
            assert_string_equal(b.data, "{\n  \"a\": 18446744073709551615,\n  \"b\": [\n"
                                        "    true,\n    -5,\n    null\n  ],\n  \"c\": {},\n"
                                        "  \"d\": [],\n  \"e\": \"x\\\"y\",\n  \"f\": false,\n"
                                        "  \"g\": 0.1\n}");
        sl_buf_free(&b);
    }
}

static void writer_strings_and_numbers(void **state)
{
    (void)state;
    static const struct { const char *in; size_t len; const char *out; } strs[] = {
        {"plain", 5, "\"plain\""},
        {"\x01\x1f\x7f", 3, "\"\\u0001\\u001f\x7f\""},
        {"\"\\\n\r\t\b\f", 7, "\"\\\"\\\\\\n\\r\\t\\b\\f\""},
        {"a\0b", 3, "\"a\\u0000b\""},
        {"caf\xc3\xa9", 5, "\"caf\xc3\xa9\""},
        {"bad\xff\xc3\xa9", 6, "\"bad\\ufffd\\ufffd\\ufffd\""},
        {"", 0, "\"\""},
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(strs); i++) {
        sl_buf_t b = {0};
        sl_jw_t w;
        sl_jw_init(&w, &b, false);
        sl_jw_strn(&w, strs[i].in, strs[i].len);
        assert_string_equal(b.data, strs[i].out);
        sl_buf_free(&b);
    }
    static const struct { double v; const char *out; } nums[] = {
        {0.1, "0.1"}, {1e300, "1e+300"}, {-2.5, "-2.5"}, {1.0 / 3.0, "0.3333333333333333"},
        {123456789012.0, "123456789012"}, {NAN, "null"}, {INFINITY, "null"}, {0, "0"},
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(nums); i++) {
        sl_buf_t b = {0};
        sl_jw_t w;
        sl_jw_init(&w, &b, false);
        sl_jw_num(&w, nums[i].v);
        assert_string_equal(b.data, nums[i].out);
        sl_buf_free(&b);
    }
    sl_jw_t w;
    sl_buf_t b = {0};
    sl_jw_init(&w, &b, false);
    sl_jw_str(&w, NULL);
    assert_string_equal(b.data, "null");
    sl_buf_free(&b);
}

static void writer_misuse_marks_oom(void **state)
{
    (void)state;
    sl_buf_t b = {0};
    sl_jw_t w;
    sl_jw_init(&w, &b, false);
    sl_jw_end(&w);                    /* nothing open */
    assert_true(b.oom);
    sl_buf_free(&b);
    sl_jw_init(&w, &b, false);
    for (int i = 0; i < SL_JW_MAX_DEPTH + 2; i++)
        sl_jw_arr(&w);
    assert_true(b.oom);
    sl_buf_free(&b);
    sl_buf_printf(&b, "%s-%0300d", "long", 7);   /* beyond the small stack buffer */
    assert_int_equal(b.len, 305);
    assert_string_equal(b.data + 300, "00007");
    sl_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_texts_write_back_exactly),
        cmocka_unit_test(values_and_lookups),
        cmocka_unit_test(invalid_texts_give_exact_errors),
        cmocka_unit_test(every_prefix_of_a_container_is_refused),
        cmocka_unit_test(depth_limit),
        cmocka_unit_test(node_limit),
        cmocka_unit_test(nul_refused_when_asked),
        cmocka_unit_test(long_strings),
        cmocka_unit_test(writer_compact_and_pretty),
        cmocka_unit_test(writer_strings_and_numbers),
        cmocka_unit_test(writer_misuse_marks_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
