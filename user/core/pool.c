// SPDX-License-Identifier: MIT
/*
 * Block pool: a LIFO free list threaded through the cached blocks themselves (the most
 * recently used block is the one still in cache), and counters.
 */
#include "core/pool.h"

#include <stdlib.h>

struct free_blk {
	struct free_blk *next;
};

struct kcpx_pool {
	size_t block, max_cached;
	struct free_blk *cache;
	struct kcpx_pool_stats st;
};

struct kcpx_pool *kcpx_pool_new(size_t block, size_t max_cached)
{
	struct kcpx_pool *p;

	if (!block)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	/* a cached block holds the free-list link */
	p->block = block < sizeof(struct free_blk) ? sizeof(struct free_blk) : block;
	p->max_cached = max_cached;
	p->st.block = p->block;
	return p;
}

void kcpx_pool_free(struct kcpx_pool *p)
{
	if (!p)
		return;
	kcpx_pool_trim(p, 0);
	free(p);
}

void *kcpx_pool_get(struct kcpx_pool *p)
{
	void *b;

	if (p->cache) {
		b = p->cache;
		p->cache = p->cache->next;
		p->st.cached--;
	} else {
		b = malloc(p->block);
		if (!b)
			return NULL;
		p->st.fresh++;
	}
	p->st.gets++;
	if (++p->st.in_use > p->st.peak_in_use)
		p->st.peak_in_use = p->st.in_use;
	return b;
}

void kcpx_pool_put(struct kcpx_pool *p, void *blk)
{
	struct free_blk *f = blk;

	if (!blk)
		return;
	p->st.in_use--;
	if (p->st.cached >= p->max_cached) {
		free(blk);
		p->st.frees++;
		return;
	}
	f->next = p->cache;
	p->cache = f;
	p->st.cached++;
}

size_t kcpx_pool_trim(struct kcpx_pool *p, size_t keep)
{
	size_t n = 0;

	while (p->cache && p->st.cached > keep) {
		struct free_blk *f = p->cache;

		p->cache = f->next;
		p->st.cached--;
		p->st.frees++;
		free(f);
		n++;
	}
	return n;
}

size_t kcpx_pool_block(const struct kcpx_pool *p)
{
	return p->block;
}

void kcpx_pool_stats(const struct kcpx_pool *p, struct kcpx_pool_stats *st)
{
	*st = p->st;
}
