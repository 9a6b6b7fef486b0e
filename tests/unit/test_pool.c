// SPDX-License-Identifier: MIT
/* Block pool: reuse, the cache bound, trim and the counters. */
#include "unit.h"
#include "core/pool.h"

static void test_reuse_and_bound(void)
{
	struct kcpx_pool *p = kcpx_pool_new(4096, 3);
	struct kcpx_pool_stats st;
	void *b[8];

	CHECK(p);
	CHECK_EQ(kcpx_pool_block(p), 4096);
	for (int i = 0; i < 8; i++) {
		b[i] = kcpx_pool_get(p);
		CHECK(b[i]);
		memset(b[i], i, 4096); /* the whole block is ours */
	}
	kcpx_pool_stats(p, &st);
	CHECK_EQ(st.in_use, 8);
	CHECK_EQ(st.peak_in_use, 8);
	CHECK_EQ(st.fresh, 8);
	CHECK_EQ(st.cached, 0);
	for (int i = 0; i < 8; i++)
		kcpx_pool_put(p, b[i]);
	kcpx_pool_stats(p, &st);
	CHECK_EQ(st.in_use, 0);
	CHECK_EQ(st.cached, 3); /* the rest went back to malloc at once */
	CHECK_EQ(st.frees, 5);
	/* cached blocks are handed out again, most recent first, before any fresh one */
	void *x = kcpx_pool_get(p);
	CHECK(x == b[2]); /* b[0..2] were cached, b[3..7] freed */
	void *z1 = kcpx_pool_get(p), *z2 = kcpx_pool_get(p);
	void *y = kcpx_pool_get(p);
	kcpx_pool_stats(p, &st);
	CHECK_EQ(st.fresh, 9);
	CHECK_EQ(st.gets, 12);
	CHECK_EQ(st.cached, 0);
	kcpx_pool_put(p, x);
	kcpx_pool_put(p, y);
	kcpx_pool_put(p, NULL); /* no-op */
	kcpx_pool_stats(p, &st);
	CHECK_EQ(st.in_use, 2); /* two of the four are still out */
	CHECK_EQ(st.cached, 2);
	kcpx_pool_put(p, z1);
	kcpx_pool_put(p, z2);
	kcpx_pool_stats(p, &st);
	CHECK_EQ(st.in_use, 0);
	CHECK_EQ(st.cached, 3);
	kcpx_pool_free(p);
}

static void test_trim(void)
{
	struct kcpx_pool *p = kcpx_pool_new(100, 64);
	struct kcpx_pool_stats st;
	void *b[40];

	CHECK(p);
	for (int i = 0; i < 40; i++)
		b[i] = kcpx_pool_get(p);
	for (int i = 0; i < 40; i++)
		kcpx_pool_put(p, b[i]);
	kcpx_pool_stats(p, &st);
	CHECK_EQ(st.cached, 40);
	CHECK_EQ(kcpx_pool_trim(p, 50), 0);
	CHECK_EQ(kcpx_pool_trim(p, 8), 32);
	kcpx_pool_stats(p, &st);
	CHECK_EQ(st.cached, 8);
	CHECK_EQ(st.frees, 32);
	CHECK_EQ(st.peak_in_use, 40);
	CHECK_EQ(kcpx_pool_trim(p, 0), 8);
	kcpx_pool_free(p);
}

static void test_edges(void)
{
	struct kcpx_pool *p;

	CHECK(!kcpx_pool_new(0, 4));
	/* a block always has room for the free-list link */
	p = kcpx_pool_new(1, 4);
	CHECK(p);
	CHECK(kcpx_pool_block(p) >= sizeof(void *));
	kcpx_pool_put(p, kcpx_pool_get(p));
	kcpx_pool_free(p);
	kcpx_pool_free(NULL);
}

int main(void)
{
	RUN(test_reuse_and_bound);
	RUN(test_trim);
	RUN(test_edges);
	UNIT_MAIN_END();
}
