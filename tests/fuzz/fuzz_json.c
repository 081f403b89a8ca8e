/*
 * fuzz_json.c: libFuzzer target for gateway/proto/json.c.
 *
 * Input: byte 0 picks small limits or the defaults; the rest is the text.
 * A parse returns 0, SL_EINVAL or SL_ELIMIT with an offset inside the input
 * and a message; a failed parse leaves the document empty. An accepted text
 * is walked whole (types valid, counts match, decoded strings NUL-ended and
 * valid UTF-8 unless they hold escaped surrogates, which the parser
 * refuses), and the same text with a junk byte appended is refused. With
 * no_nul set, an accepted text is accepted again exactly when none of its
 * strings or keys holds a NUL.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/json.h"
#include "sluice/utf8.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool has_nul;   /* walk saw a NUL in a decoded string or key */

static size_t walk(const sl_json_t *v, uint32_t depth, uint32_t max_depth)
{
    CHECK(v->type <= SL_JSON_OBJECT);
    size_t nodes = 1;
    if (v->key != NULL && memchr(v->key, '\0', v->key_len) != NULL)
        has_nul = true;
    if (v->type == SL_JSON_STRING && memchr(v->str, '\0', v->len) != NULL)
        has_nul = true;
    if (v->type == SL_JSON_STRING) {
        CHECK(v->str[v->len] == '\0');
        CHECK(sl_utf8_valid((const uint8_t *)v->str, v->len));
    }
    if (v->type == SL_JSON_NUMBER)
        CHECK(v->raw != NULL && v->raw[0] != '\0');
    if (v->type == SL_JSON_ARRAY || v->type == SL_JSON_OBJECT) {
        CHECK(depth < max_depth);
        uint32_t n = 0;
        for (const sl_json_t *c = v->child; c != NULL; c = c->next) {
            CHECK((c->key != NULL) == (v->type == SL_JSON_OBJECT));
            nodes += walk(c, depth + 1, max_depth);
            n++;
        }
        CHECK(n == v->n);
    }
    return nodes;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    sl_json_limits_t lim = {0};
    if (data[0] & 1)
        lim = (sl_json_limits_t){.max_depth = 1 + (data[0] >> 5), .max_nodes = 1 + (data[0] >> 1)};
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    sl_json_doc_t doc = {0};
    sl_json_error_t err = {0};
    int rc = sl_json_parse(&doc, text, len, &lim, &err);
    CHECK(rc == 0 || rc == SL_EINVAL || rc == SL_ELIMIT);
    if (rc != 0) {
        CHECK(doc.root == NULL && doc.blocks == NULL);
        CHECK(err.msg != NULL && err.offset <= len);
        return 0;
    }
    has_nul = false;
    size_t nodes = walk(doc.root, 0, lim.max_depth ? lim.max_depth : 32);
    CHECK(nodes <= (lim.max_nodes ? lim.max_nodes : 4096));
    sl_json_doc_free(&doc);
    sl_json_limits_t strict = lim;
    strict.no_nul = true;
    rc = sl_json_parse(&doc, text, len, &strict, &err);
    CHECK(rc == (has_nul ? SL_EINVAL : 0));
    sl_json_doc_free(&doc);

    char *more = malloc(len + 1);
    CHECK(more != NULL);
    memcpy(more, text, len);
    more[len] = 'x';
    CHECK(sl_json_parse(&doc, more, len + 1, &lim, &err) != 0);
    free(more);
    return 0;
}
