/*
 * bufpool.c: fixed-size read blocks with a bounded free list.
 *
 * The free list is capped so a burst of traffic does not leave the process
 * holding its peak memory forever: idle RSS is what the operator sees at
 * 9,000 connections, and it should be the sessions, not cached buffers.
 */
#include <stdlib.h>

#include "bufpool.h"

void sl_bufpool_init(sl_bufpool_t *p, size_t max_free)
{
    p->free = NULL;
    p->n_free = 0;
    p->max_free = max_free;
    p->in_use = 0;
}

void sl_bufpool_destroy(sl_bufpool_t *p)
{
    while (p->free) {
        sl_block_t *b = p->free;
        p->free = b->next_free;
        free(b);
    }
    p->n_free = 0;
}

sl_block_t *sl_block_get(sl_bufpool_t *p)
{
    sl_block_t *b = p->free;
    if (b) {
        p->free = b->next_free;
        p->n_free--;
    } else {
        b = malloc(sizeof *b);
        if (b == NULL)
            return NULL;
    }
    b->next_free = NULL;
    b->refs = 1;
    b->len = 0;
    p->in_use++;
    return b;
}

void sl_block_unref(sl_bufpool_t *p, sl_block_t *b)
{
    if (--b->refs > 0)
        return;
    p->in_use--;
    if (p->n_free < p->max_free) {
        b->next_free = p->free;
        p->free = b;
        p->n_free++;
    } else {
        free(b);
    }
}
