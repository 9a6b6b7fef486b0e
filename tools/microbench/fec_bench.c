// SPDX-License-Identifier: MIT
/*
 * FEC throughput of user/core/fec.c, kcptun's default 10/3 with 1350-byte data shards.
 *
 *   encode: kcpx_fec_encode() on a stream of KCP packets (header write, copy, ISA-L parity
 *           update, parity emit), emit is a no-op.
 *   decode: kcpx_fec_decode() on the same stream with 3 data shards of every group lost,
 *           so every group is rebuilt from parity (the worst case the code accepts).
 * GB/s = KCP bytes in (encode) or KCP bytes handed out (decode) per second, 1e9 bytes.
 *
 * Output, one line each (machine-readable, key=value):
 *   fec_bench op=encode ds=10 ps=3 shard=1350 gbps=N.NN
 *   fec_bench op=decode ds=10 ps=3 shard=1350 gbps=N.NN
 * Usage: fec_bench [seconds per op, default 1]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/fec.h"
#include "core/util.h"

#define DS    10
#define PS    3
#define SHARD 1350
#define BATCH 13000 /* packets per timing check */

struct pkts {
	uint8_t (*b)[SHARD];
	size_t *len;
	int n, cap;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nop_emit(void *user, uint8_t *body, size_t len, bool parity)
{
	(void)user;
	(void)body;
	(void)len;
	(void)parity;
}

static void keep_emit(void *user, uint8_t *body, size_t len, bool parity)
{
	struct pkts *p = user;

	(void)parity;
	if (p->n < p->cap) {
		memcpy(p->b[p->n], body, len);
		p->len[p->n++] = len;
	}
}

static void count_recv(void *user, const uint8_t *kcp, size_t len, bool recovered)
{
	(void)kcp;
	(void)recovered;
	*(size_t *)user += len;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 1.0, t0, t;
	static uint8_t kcp[SHARD];
	size_t kcp_len = SHARD - KCPX_FEC_HDR, bytes = 0;
	struct kcpx_fec_enc *e = kcpx_fec_enc_new(DS, PS, 20, 0);
	struct kcpx_fec_dec *d;
	struct pkts p = { 0 };
	uint32_t clock_ms = 0, base = 0;

	if (!e)
		return 1;
	for (size_t i = 0; i < sizeof(kcp); i++)
		kcp[i] = (uint8_t)(i * 131 + 7);

	/* encode */
	t0 = now_s();
	do {
		for (int i = 0; i < BATCH; i++) {
			kcp[0] = (uint8_t)i;
			kcpx_fec_encode(e, kcp, kcp_len, 0, nop_emit, NULL, NULL);
		}
		bytes += (size_t)BATCH * kcp_len;
		t = now_s() - t0;
	} while (t < secs);
	printf("fec_bench op=encode ds=%d ps=%d shard=%d gbps=%.2f\n", DS, PS, SHARD,
	       (double)bytes / t / 1e9);
	fflush(stdout);

	/* decode: a recorded stream of 100 groups, replayed with fresh seqids */
	p.cap = 100 * (DS + PS);
	p.b = malloc((size_t)p.cap * SHARD);
	p.len = malloc((size_t)p.cap * sizeof(size_t));
	d = kcpx_fec_dec_new(DS, PS);
	if (!p.b || !p.len || !d)
		return 1;
	kcpx_fec_enc_free(e);
	e = kcpx_fec_enc_new(DS, PS, 0, 0);
	for (int i = 0; i < 100 * DS; i++)
		kcpx_fec_encode(e, kcp, kcp_len, 0, keep_emit, &p, NULL);
	bytes = 0;
	t0 = now_s();
	do {
		for (int i = 0; i < p.n; i++) {
			int idx = i % (DS + PS);
			uint32_t seq;

			if (idx == 1 || idx == 4 || idx == 7) /* lost */
				continue;
			/* replay with fresh seqids so the decoder sees new groups */
			seq = base + (uint32_t)i;
			kcpx_put_le32(p.b[i], seq);
			kcpx_fec_decode(d, p.b[i], p.len[i], clock_ms, count_recv, &bytes, NULL);
		}
		base += (uint32_t)p.n;
		clock_ms++;
		t = now_s() - t0;
	} while (t < secs);
	printf("fec_bench op=decode ds=%d ps=%d shard=%d gbps=%.2f\n", DS, PS, SHARD,
	       (double)bytes / t / 1e9);
	kcpx_fec_enc_free(e);
	kcpx_fec_dec_free(d);
	free(p.b);
	free(p.len);
	return 0;
}
