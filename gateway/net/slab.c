/*
 * slab.c: see slab.h. Chunks of 256 KiB come straight from mmap (through
 * malloc, whose mmap threshold they pass), so they never share pages with
 * the general heap.
 */
#include <stdlib.h>
#include <string.h>

#include "slab.h"

#define CHUNK_BYTES (256 * 1024)

typedef struct chunk {
    struct chunk *next;
    char pad[8];
} chunk_t;

void sl_slab_init(sl_slab_t *s, size_t obj_size)
{
    memset(s, 0, sizeof *s);
    s->obj_size = (obj_size + 15) & ~(size_t)15;
}

void sl_slab_destroy(sl_slab_t *s)
{
    while (s->chunks) {
        chunk_t *c = s->chunks;
        s->chunks = c->next;
        free(c);
    }
    s->free_list = NULL;
}

static int grow(sl_slab_t *s)
{
    chunk_t *c = malloc(CHUNK_BYTES);
    if (c == NULL)
        return -1;
    c->next = s->chunks;
    s->chunks = c;
    char *p = (char *)(c + 1);
    char *end = (char *)c + CHUNK_BYTES;
    for (; p + s->obj_size <= end; p += s->obj_size) {
        *(void **)p = s->free_list;
        s->free_list = p;
    }
    return 0;
}

void *sl_slab_alloc(sl_slab_t *s)
{
    if (s->free_list == NULL && grow(s) != 0)
        return NULL;
    void *p = s->free_list;
    s->free_list = *(void **)p;
    memset(p, 0, s->obj_size);
    s->in_use++;
    return p;
}

void sl_slab_free(sl_slab_t *s, void *p)
{
    *(void **)p = s->free_list;
    s->free_list = p;
    s->in_use--;
}
