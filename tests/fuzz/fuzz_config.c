/*
 * tests/fuzz/fuzz_config.c: the config loader on arbitrary bytes.
 *
 * sl_config_parse() must never crash, leak or read out of bounds, whatever
 * the input; and its result contract must hold: success gives a config and
 * no diagnostics, failure gives no config and at least one one-line error.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_config_t *cfg = NULL;
    sl_diag_t d = {0};
    int rc = sl_config_parse((const char *)data, size, "fuzz.yaml", &cfg, &d);
    if (rc == SL_OK) {
        if (cfg == NULL || d.n != 0)
            abort();
        char buf[2048];
        sl_config_summary(cfg, buf, sizeof buf);
    } else if (cfg != NULL || d.n == 0) {
        abort();
    }
    for (size_t i = 0; i < d.n; i++) {
        if (strchr(d.lines[i], '\n') != NULL)
            abort();
    }
    sl_config_free(cfg);
    sl_diag_free(&d);
    return 0;
}
