/*
 * slab.h: fixed-size objects for one worker, carved from large chunks.
 *
 * Sessions and backend connections live as long as their connections —
 * minutes or days — while request heads and parsers live for milliseconds.
 * From one heap, the long-lived objects end up scattered between the short
 * ones, and after a reconnect storm the allocator cannot give back the pages
 * that held the storm's heads: the idle footprint is the peak. Carving the
 * long-lived objects from their own chunks keeps the general heap for the
 * short-lived ones, which malloc_trim can then return.
 *
 * One worker, one thread: no locks. Chunks are kept for reuse and freed with
 * the slab; a free object goes on an intrusive free list.
 */
#ifndef SLUICE_NET_SLAB_H
#define SLUICE_NET_SLAB_H

#include <stddef.h>

typedef struct sl_slab {
    size_t obj_size;            /* rounded up to 16 bytes */
    void *free_list;
    void *chunks;               /* list of chunks, for destroy */
    size_t in_use;
} sl_slab_t;

void sl_slab_init(sl_slab_t *s, size_t obj_size);
void sl_slab_destroy(sl_slab_t *s);

/* A zero-filled object, or NULL when memory is exhausted. */
void *sl_slab_alloc(sl_slab_t *s);
void sl_slab_free(sl_slab_t *s, void *p);

#endif
