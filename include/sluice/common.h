/*
 * sluice/common.h: the few types every module shares.
 *
 * Time is a number passed in, never read by the core: the shell reads
 * uv_now() once per callback and hands it down. Randomness is a seeded
 * generator passed in, so every policy decision replays exactly in a test.
 * Errors are negative numbers, like libuv's; 0 or a positive count is success.
 */
#ifndef SLUICE_COMMON_H
#define SLUICE_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic milliseconds. Only differences mean anything. */
typedef uint64_t sl_msec_t;

#define SL_MSEC_NEVER UINT64_MAX

/* Shared error codes. Modules may define their own below -1000. */
enum {
    SL_OK = 0,
    SL_NEED_MORE = -1,   /* a parser needs more bytes before it can decide */
    SL_EINVAL = -2,      /* malformed input */
    SL_ENOMEM = -3,      /* allocation failed */
    SL_ELIMIT = -4,      /* a configured limit was exceeded */
    SL_ENOENT = -5,      /* no such thing (route, pool, backend) */
    SL_EEXIST = -6,      /* already there */
    SL_ESTATE = -7,      /* not allowed in the current state */
    SL_EFULL = -8,       /* a bounded container is full */
};

#define SL_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define sl_container_of(ptr, type, member) \
    ((type *)((char *)(ptr) - offsetof(type, member)))

#define SL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SL_MAX(a, b) ((a) > (b) ? (a) : (b))

/*
 * A small, fast, seedable generator (splitmix64). Not for secrets: the
 * WebSocket masking keys the gateway writes come from OpenSSL's RAND_bytes.
 */
typedef struct sl_rng {
    uint64_t state;
} sl_rng_t;

static inline uint64_t sl_rng_next(sl_rng_t *r)
{
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static inline double sl_rng_unit(sl_rng_t *r)
{
    return (double)(sl_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform in [0, n); n > 0. */
static inline uint64_t sl_rng_below(sl_rng_t *r, uint64_t n)
{
    return sl_rng_next(r) % n;
}

#endif
