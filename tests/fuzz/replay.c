/*
 * replay.c: runs a libFuzzer target without libFuzzer, so every build (and
 * the sanitizer build in CI) keeps the corpus passing. It feeds each corpus
 * file whole, then every prefix of it (the parsers must cope with input that
 * stops anywhere), then a bounded number of seeded mutations.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sluice/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MUTATIONS_PER_FILE = 2000, MAX_INPUT_BYTES = 1 << 20 };

static void run(const uint8_t *data, size_t size)
{
    /* A fresh heap copy of exactly `size` bytes, so ASan sees any overread. */
    uint8_t *copy = malloc(size ? size : 1);
    if (copy == NULL)
        abort();
    memcpy(copy, data, size);
    LLVMFuzzerTestOneInput(copy, size);
    free(copy);
}

static void mutate_and_run(const uint8_t *data, size_t size, sl_rng_t *rng)
{
    uint8_t *buf = malloc(size + 64);
    if (buf == NULL)
        abort();
    for (int i = 0; i < MUTATIONS_PER_FILE; i++) {
        size_t n = size;
        memcpy(buf, data, size);
        int edits = 1 + (int)sl_rng_below(rng, 4);
        for (int e = 0; e < edits; e++) {
            switch (sl_rng_below(rng, 4)) {
            case 0: /* flip a byte */
                if (n)
                    buf[sl_rng_below(rng, n)] ^= (uint8_t)(1u << sl_rng_below(rng, 8));
                break;
            case 1: /* set an interesting byte */
                if (n) {
                    static const uint8_t interesting[] = {0, 0x7e, 0x7f, 0x80, 0xff, '\r', '\n', ' ', ':'};
                    buf[sl_rng_below(rng, n)] = interesting[sl_rng_below(rng, sizeof interesting)];
                }
                break;
            case 2: /* truncate */
                if (n)
                    n = sl_rng_below(rng, n);
                break;
            default: /* insert a random byte */
                if (n < size + 64) {
                    size_t at = n ? sl_rng_below(rng, n + 1) : 0;
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = (uint8_t)sl_rng_next(rng);
                    n++;
                }
                break;
            }
        }
        run(buf, n);
    }
    free(buf);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    DIR *d = opendir(argv[1]);
    if (d == NULL) {
        perror(argv[1]);
        return 1;
    }
    sl_rng_t rng = {.state = 0x5eed};
    size_t files = 0;
    struct dirent *de;
    static uint8_t data[MAX_INPUT_BYTES];
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], de->d_name);
        FILE *f = fopen(path, "rb");
        if (f == NULL)
            continue;
        size_t size = fread(data, 1, sizeof data, f);
        fclose(f);
        for (size_t cut = 0; cut <= size; cut++)
            run(data, cut);
        mutate_and_run(data, size, &rng);
        files++;
    }
    closedir(d);
    run((const uint8_t *)"", 0);
    printf("replayed %zu corpus files with prefixes and %d mutations each\n", files,
           MUTATIONS_PER_FILE);
    return files > 0 ? 0 : 1;
}
