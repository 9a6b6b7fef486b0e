/* SPDX-License-Identifier: MIT */
/*
 * Pools of fixed-size blocks, shared by every session of one engine (one thread; no
 * locks), so that buffer memory follows the bytes in flight rather than the number of
 * streams or sessions.
 *
 * A block comes from kcpx_pool_get() and goes back through kcpx_pool_put(). Returned
 * blocks are cached for reuse up to max_cached; beyond that they go back to malloc at
 * once. kcpx_pool_trim() shrinks the cache further (the owner calls it when traffic
 * stops, then may hand the freed memory back to the system). The pool never refuses a
 * block while malloc has memory: how many are in use is bounded by the windows and
 * buffers of whoever holds them (smux's --smuxbuf and send budget, KCP's windows), and
 * counted here so that it can be reported.
 *
 * Every block must be back before kcpx_pool_free(); a NULL pool is valid for put (no-op
 * on NULL blocks) and free.
 */
#ifndef KCPX_CORE_POOL_H
#define KCPX_CORE_POOL_H

#include <stddef.h>
#include <stdint.h>

struct kcpx_pool;

struct kcpx_pool_stats {
	size_t block;	      /* bytes per block */
	size_t in_use;	      /* blocks handed out */
	size_t cached;	      /* blocks kept for reuse */
	size_t peak_in_use;   /* highest in_use so far */
	uint64_t gets, fresh; /* blocks handed out; of them, fresh from malloc */
	uint64_t frees;	      /* blocks given back to malloc */
};

/* NULL when out of memory or block is 0. */
struct kcpx_pool *kcpx_pool_new(size_t block, size_t max_cached);
void kcpx_pool_free(struct kcpx_pool *p);

/* A block of the pool's size (contents undefined), or NULL when out of memory. */
void *kcpx_pool_get(struct kcpx_pool *p);
void kcpx_pool_put(struct kcpx_pool *p, void *blk);

/* Free cached blocks until at most keep remain; returns how many were freed. */
size_t kcpx_pool_trim(struct kcpx_pool *p, size_t keep);

size_t kcpx_pool_block(const struct kcpx_pool *p);
void kcpx_pool_stats(const struct kcpx_pool *p, struct kcpx_pool_stats *st);

#endif
