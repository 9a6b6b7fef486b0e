// SPDX-License-Identifier: MIT
/*
 * Snappy framing: golang/snappy's TestWriterGoldenOutput stream (decoded by our reader,
 * and our writer's identifier, raw "abcd" chunk and chunk CRCs), round trips across
 * random feed boundaries, and corrupt streams rejected.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "unit.h"
#include "core/crc.h"
#include "core/pool.h"
#include "core/snappy.h"
#include "core/util.h"

/* golang/snappy TestWriterGoldenOutput: three flushes of a buffered writer. */
static const char golden_hex[] = "ff060000734e6150705901080000"
				 "6810e6b661626364"
				 "001100005febf210960100"
				 "41fe0100fe0100520100"
				 "001800003085"
				 "69eb700042ee01000d0108656643"
				 "4e01004e5a000067";

static uint32_t rnd_state = 777;
static uint32_t rnd(void)
{
	return unit_xorshift32(&rnd_state);
}

/* Feed all of in (cut at random points if cut) and collect the decoded bytes. */
static ssize_t drain(struct kcpx_snappy_r *r, const uint8_t *in, size_t n, uint8_t *out, size_t cap,
		     bool cut)
{
	size_t o = 0;

	while (n > 0) {
		size_t piece = cut ? 1 + rnd() % KCPX_MIN(n, (size_t)3000) : n;
		ssize_t c;

		while (piece > 0) {
			ssize_t m;

			c = kcpx_snappy_r_feed(r, in, piece);
			if (c < 0)
				return c;
			in += c;
			n -= (size_t)c;
			piece -= (size_t)c;
			/* read in odd sizes, too */
			while ((m = kcpx_snappy_r_read(r, out + o,
						       KCPX_MIN(cap - o, (size_t)777))) > 0)
				o += (size_t)m;
			if (c == 0 && kcpx_snappy_r_pending(r) > 0)
				return -ENOSPC; /* caller's buffer is full */
		}
	}
	return (ssize_t)o;
}

static void test_golden_decode(void)
{
	uint8_t in[256], out[512], want[512];
	size_t n = unit_unhex(golden_hex, in, sizeof(in)), w = 0;
	struct kcpx_snappy_r *r = kcpx_snappy_r_new();

	CHECK_EQ(n, 71);
	memcpy(want, "abcd", 4);
	w = 4;
	memset(want + w, 'A', 150);
	w += 150;
	memset(want + w, 'B', 68);
	w += 68;
	memcpy(want + w, "efC", 3);
	w += 3;
	memset(want + w, 'C', 20);
	w += 20;
	memset(want + w, 'B', 20);
	w += 20;
	want[w++] = 'g';
	CHECK_EQ(drain(r, in, n, out, sizeof(out), false), w);
	CHECK_MEM(out, want, w);
	kcpx_snappy_r_free(r);

	for (int i = 0; i < 50; i++) { /* and byte by byte, and at random cuts */
		r = kcpx_snappy_r_new();
		CHECK_EQ(drain(r, in, n, out, sizeof(out), true), w);
		CHECK_MEM(out, want, w);
		kcpx_snappy_r_free(r);
	}
}

static void test_golden_encode(void)
{
	struct kcpx_snappy_w *w = kcpx_snappy_w_new();
	uint8_t out[1024], a[150], golden[128];
	size_t n;

	CHECK_EQ(unit_unhex(golden_hex, golden, sizeof(golden)), 71);
	CHECK(kcpx_snappy_w_bound(4) >= 10 + 8 + 4);
	CHECK_EQ(kcpx_snappy_w_chunk(w, (const uint8_t *)"", 0, out), 0); /* nothing at all */
	n = kcpx_snappy_w_chunk(w, (const uint8_t *)"abcd", 4, out);
	CHECK_EQ(n, 10 + 12);
	CHECK_MEM(out, golden, 22); /* ff 06 00 00 sNaPpY, 01 08 00 00, 68 10 e6 b6, abcd */
	CHECK_MEM(out + 14, "\x68\x10\xe6\xb6", 4);

	/* the identifier only once; 150 x 'A' compresses; CRC as golang's chunk */
	memset(a, 'A', sizeof(a));
	n = kcpx_snappy_w_chunk(w, a, sizeof(a), out);
	CHECK(n < 30);
	CHECK_EQ(out[0], 0x00);
	CHECK_EQ(out[1] | out[2] << 8 | out[3] << 16, n - 4);
	CHECK_MEM(out + 4, golden + 26, 4); /* 5f eb f2 10 */
	kcpx_snappy_w_free(w);
}

/* The 12.5% rule: random data goes raw, anything compressible enough goes compressed. */
static void test_raw_vs_compressed(void)
{
	struct kcpx_snappy_w *w = kcpx_snappy_w_new();
	static uint8_t in[70000], out[90000];
	size_t n;

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)rnd();
	n = kcpx_snappy_w_chunk(w, in, 1000, out);
	CHECK_EQ(n, 10 + 8 + 1000);
	CHECK_EQ(out[10], 0x01);
	/* more than 64 KiB splits into chunks of at most 65536 */
	n = kcpx_snappy_w_chunk(w, in, sizeof(in), out);
	CHECK(n <= kcpx_snappy_w_bound(sizeof(in)));
	CHECK_EQ(n, 8 + 65536 + 8 + (sizeof(in) - 65536));
	CHECK_EQ(out[0], 0x01);
	CHECK_EQ(out[1] | out[2] << 8 | out[3] << 16, 4 + 65536);
	memset(in, 'x', 4000);
	n = kcpx_snappy_w_chunk(w, in, 4000, out);
	CHECK_EQ(out[0], 0x00);
	CHECK(n < 4000 - 4000 / 8);
	kcpx_snappy_w_free(w);
}

/* Many writes of mixed content through writer and reader, cut at random boundaries. */
static void test_roundtrip(void)
{
	struct kcpx_snappy_w *w = kcpx_snappy_w_new();
	struct kcpx_snappy_r *r = kcpx_snappy_r_new();
	static uint8_t plain[1 << 20], wire[(1 << 20) + (1 << 16)], out[1 << 20];
	size_t np = 0, nw = 0;
	ssize_t got;

	while (np < sizeof(plain) - 70000) {
		size_t len = rnd() % 3 == 0 ? rnd() % 70000 : rnd() % 1400;
		uint32_t kind = rnd() % 3;

		for (size_t i = 0; i < len; i++)
			plain[np + i] = kind == 0   ? (uint8_t)rnd()
					: kind == 1 ? (uint8_t)(i / 50)
						    : (uint8_t) "smux frame "[i % 11];
		CHECK(nw + kcpx_snappy_w_bound(len) <= sizeof(wire));
		nw += kcpx_snappy_w_chunk(w, plain + np, len, wire + nw);
		np += len;
	}
	got = drain(r, wire, nw, out, sizeof(out), true);
	CHECK_EQ(got, np);
	CHECK_MEM(out, plain, np);
	CHECK(nw < np); /* it did compress something */
	kcpx_snappy_w_free(w);
	kcpx_snappy_r_free(r);
}

/* Each mutation of a valid stream must be rejected with -EBADMSG (and stay rejected). */
static void expect_bad(const uint8_t *in, size_t n)
{
	struct kcpx_snappy_r *r = kcpx_snappy_r_new();
	uint8_t out[70000];

	CHECK_EQ(drain(r, in, n, out, sizeof(out), false), -EBADMSG);
	CHECK_EQ(kcpx_snappy_r_feed(r, in, 1), -EBADMSG);
	kcpx_snappy_r_free(r);
}

static void test_corrupt(void)
{
	uint8_t g[128], b[160], out[512];
	size_t n = unit_unhex(golden_hex, g, sizeof(g));
	struct kcpx_snappy_r *r;

	/* bad CRC of the raw chunk, of a compressed chunk */
	memcpy(b, g, n);
	b[14] ^= 1;
	expect_bad(b, n);
	memcpy(b, g, n);
	b[26] ^= 0x80;
	expect_bad(b, n);
	/* a flipped byte in the raw payload, in a compressed payload */
	memcpy(b, g, n);
	b[19] ^= 4;
	expect_bad(b, n);
	memcpy(b, g, n);
	b[33] ^= 0x40;
	expect_bad(b, n);
	/* no stream identifier first */
	expect_bad(g + 10, n - 10);
	/* bad magic, bad identifier length */
	memcpy(b, g, n);
	b[5] = 'n';
	expect_bad(b, n);
	memcpy(b, g, n);
	b[1] = 7;
	expect_bad(b, n);
	/* reserved unskippable chunk type */
	memcpy(b, g, n);
	b[10] = 0x02;
	expect_bad(b, n);
	/* chunk lengths: shorter than a CRC, longer than any valid chunk, raw over 64 KiB */
	memcpy(b, g, 14);
	b[10] = 0x01, b[11] = 3, b[12] = 0, b[13] = 0;
	expect_bad(b, 14);
	b[10] = 0x80, b[11] = 0xff, b[12] = 0xff, b[13] = 0x01;
	expect_bad(b, 14);
	b[10] = 0x01, b[11] = 0x05, b[12] = 0x00, b[13] = 0x01;
	expect_bad(b, 14);

	/* skippable and padding chunks are skipped; an empty raw chunk (CRC of nothing =
	 * mask(0)) gives nothing; a repeated identifier is fine */
	memcpy(b, g, 10);
	memcpy(b + 10, "\xfe\x03\x00\x00\x00\x00\x00", 7);
	memcpy(b + 17, "\x80\x00\x00\x00", 4);
	memcpy(b + 21, "\x01\x04\x00\x00\xd8\xea\x82\xa2", 8);
	memcpy(b + 29, g, n);
	r = kcpx_snappy_r_new();
	CHECK_EQ(drain(r, b, 29 + n, out, sizeof(out), true), 4 + 150 + 68 + 3 + 20 + 20 + 1);
	kcpx_snappy_r_free(r);
}

/* kcptun's first bytes on a new stream (vectors.txt, real datagrams): the identifier and a
 * raw chunk 01 0c 00 00 44 39 ac 2f carrying the 8-byte smux v1 SYN of stream 3. */
static void test_kcptun_syn_chunk(void)
{
	static const uint8_t syn[8] = { 1, 0, 0, 0, 3, 0, 0, 0 };
	uint8_t out[64], want[32];
	struct kcpx_snappy_w *w = kcpx_snappy_w_new();

	CHECK_EQ(unit_unhex("ff060000734e61507059010c00004439ac2f0100000003000000", want, 32), 26);
	CHECK_EQ(kcpx_snappy_w_chunk(w, syn, 8, out), 26);
	CHECK_MEM(out, want, 26);
	kcpx_snappy_w_free(w);
}

/* Buffers from a pool: the same bytes come out, trimming after every feed gives the
   blocks back, and a pool of too small blocks is refused. */
static void test_pool_trim(void)
{
	struct kcpx_pool *pool = kcpx_pool_new(80000, 4), *small = kcpx_pool_new(65536, 4);
	struct kcpx_snappy_w *w = kcpx_snappy_w_new();
	struct kcpx_snappy_r *r = kcpx_snappy_r_new();
	static uint8_t plain[300000], wire[400000], out[300000];
	struct kcpx_pool_stats st;
	size_t np = 0, nw = 0, o = 0, off = 0;

	CHECK(pool && small && w && r);
	CHECK_EQ(kcpx_snappy_r_set_pool(r, small), -EINVAL);
	CHECK_EQ(kcpx_snappy_r_set_pool(r, pool), 0);
	while (np < sizeof(plain) - 70000) {
		size_t len = 1 + rnd() % 66000;

		for (size_t i = 0; i < len; i++)
			plain[np + i] = rnd() % 2 ? (uint8_t)rnd() : (uint8_t)(i / 64);
		nw += kcpx_snappy_w_chunk(w, plain + np, len, wire + nw);
		np += len;
	}
	while (off < nw) {
		size_t piece = KCPX_MIN(nw - off, 1 + (size_t)(rnd() % 5000));
		ssize_t c = kcpx_snappy_r_feed(r, wire + off, piece), m;

		CHECK(c >= 0);
		off += (size_t)c;
		while ((m = kcpx_snappy_r_read(r, out + o, sizeof(out) - o)) > 0)
			o += (size_t)m;
		kcpx_snappy_r_trim(r);
		kcpx_pool_stats(pool, &st);
		/* at most a chunk split across feeds stays held */
		CHECK(st.in_use <= 1);
	}
	CHECK_EQ(o, np);
	CHECK_MEM(out, plain, np);
	kcpx_pool_stats(pool, &st);
	CHECK_EQ(st.in_use, 0);
	CHECK(st.gets > 0);
	kcpx_snappy_r_free(r);
	kcpx_snappy_w_free(w);
	kcpx_pool_free(pool);
	kcpx_pool_free(small);
}

int main(void)
{
	RUN(test_golden_decode);
	RUN(test_golden_encode);
	RUN(test_kcptun_syn_chunk);
	RUN(test_raw_vs_compressed);
	RUN(test_roundtrip);
	RUN(test_corrupt);
	RUN(test_pool_trim);
	UNIT_MAIN_END();
}
