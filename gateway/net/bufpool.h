/*
 * bufpool.h: a worker's read buffers.
 *
 * The relay is zero-copy: a block filled by uv_read is written, as it is, to
 * the other side, and comes back to the pool when the last write that carries
 * it completes. A block is reference counted because one read may be written
 * in several slices (when the gateway injects a ping or close between frames).
 * An idle connection holds no block: alloc_cb takes one, and a read that
 * returns nothing gives it back at once.
 *
 * Owned by one worker thread; no locks.
 */
#ifndef SLUICE_NET_BUFPOOL_H
#define SLUICE_NET_BUFPOOL_H

#include <stddef.h>
#include <stdint.h>

#define SL_BLOCK_SIZE (32 * 1024)

typedef struct sl_block {
    struct sl_block *next_free;
    uint32_t refs;
    uint32_t len;               /* bytes of data in the block */
    char data[SL_BLOCK_SIZE];
} sl_block_t;

typedef struct sl_bufpool {
    sl_block_t *free;
    size_t n_free;
    size_t max_free;            /* blocks kept for reuse; the rest go back to malloc */
    size_t in_use;
} sl_bufpool_t;

void sl_bufpool_init(sl_bufpool_t *p, size_t max_free);
void sl_bufpool_destroy(sl_bufpool_t *p);

/* A block with one reference, or NULL when memory is exhausted. */
sl_block_t *sl_block_get(sl_bufpool_t *p);

static inline void sl_block_ref(sl_block_t *b)
{
    b->refs++;
}

/* Drop a reference; the block returns to the pool at zero. */
void sl_block_unref(sl_bufpool_t *p, sl_block_t *b);

/* The block that holds a uv_buf_t base handed out by sl_block_get. */
static inline sl_block_t *sl_block_of(char *data)
{
    return (sl_block_t *)(data - offsetof(sl_block_t, data));
}

#endif
