// SPDX-License-Identifier: MIT
/*
 * kcptun FEC: the RS matrix (WIRE.md §4 rows, klauspost TestOneEncode), the encoder's
 * wire form (seqids, flags, size field, parity length, wrap), and the decoder against
 * loss, reordering, duplicates, expiry, garbage and a peer with another ratio.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/erasure_code.h>

#include "unit.h"
#include "core/fec.h"
#include "core/util.h"

#define HEAD 20
#define TAIL 16
#define MAXP 4096

/* ------------------------------------------------------------ helpers */

struct pkt {
	uint8_t b[1600];
	size_t len;
	bool parity;
};

struct sink {
	struct pkt p[MAXP];
	int n;
	bool scribble; /* act like an in-place sealer: overwrite head, body and tail */
};

static void sink_emit(void *user, uint8_t *body, size_t len, bool parity)
{
	struct sink *s = user;

	if (s->n < MAXP) {
		memcpy(s->p[s->n].b, body, len);
		s->p[s->n].len = len;
		s->p[s->n].parity = parity;
		s->n++;
	}
	if (s->scribble) {
		memset(body - HEAD, 0xa5, HEAD);
		memset(body, 0x5a, len);
		memset(body + len, 0xc3, TAIL);
	}
}

/* What the decoder hands to "KCP". */
struct got {
	uint8_t b[MAXP][1600];
	size_t len[MAXP];
	bool rec[MAXP];
	int n;
};

static void got_recv(void *user, const uint8_t *kcp, size_t len, bool recovered)
{
	struct got *g = user;

	if (g->n < MAXP) {
		memcpy(g->b[g->n], kcp, len);
		g->len[g->n] = len;
		g->rec[g->n] = recovered;
		g->n++;
	}
}

static uint32_t rnd_state = 12345;
static uint32_t rnd(void)
{
	return unit_xorshift32(&rnd_state);
}

/* A fake KCP packet: 24..1300 bytes, first 4 bytes = its number, rest derived from it. */
static size_t make_kcp(uint8_t *b, uint32_t id)
{
	size_t len = 24 + (id * 7919u) % 1277;

	kcpx_put_le32(b, id);
	for (size_t i = 4; i < len; i++)
		b[i] = (uint8_t)(id * 31 + i);
	return len;
}

static bool check_kcp(const uint8_t *b, size_t len, uint32_t *id)
{
	uint8_t want[1600];

	if (len < 4)
		return false;
	*id = kcpx_get_le32(b);
	return make_kcp(want, *id) == len && !memcmp(want, b, len);
}

static struct sink S;
static struct got G;

/* ------------------------------------------------------------ RS code */

static void test_matrix_10_3(void)
{
	uint8_t m[13 * 10], want[30];

	CHECK_EQ(unit_unhex("8196afb8d2c4fee80302"
			    "9681b8afc4d2e8fe0203"
			    "bfd6620a066fdfb70504",
			    want, 30),
		 30);
	CHECK_EQ(kcpx_fec_matrix(10, 3, m), 0);
	for (int r = 0; r < 10; r++)
		for (int c = 0; c < 10; c++)
			CHECK_EQ(m[r * 10 + c], r == c);
	CHECK_MEM(m + 100, want, 30);
	CHECK_EQ(kcpx_fec_matrix(200, 57, m), -EINVAL);
	CHECK_EQ(kcpx_fec_matrix(0, 3, m), -EINVAL);
}

/*
 * The whole matrix, V * inv(top(V)) one field multiplication at a time over every row, as
 * kcpx_fec_matrix computed it before it took the identity top for granted and left the
 * parity rows to ec_encode_data.
 */
static void matrix_ref(int ds, int ps, uint8_t *out)
{
	int n = ds + ps;
	uint8_t *v = malloc((size_t)n * ds), *top = malloc((size_t)ds * ds);
	uint8_t *inv = malloc((size_t)ds * ds);

	for (int r = 0; r < n; r++) {
		uint8_t x = 1;

		for (int c = 0; c < ds; c++) {
			v[r * ds + c] = x;
			x = gf_mul(x, (uint8_t)r);
		}
	}
	memcpy(top, v, (size_t)ds * ds);
	CHECK_EQ(gf_invert_matrix(top, inv, ds), 0);
	for (int r = 0; r < n; r++)
		for (int c = 0; c < ds; c++) {
			uint8_t acc = 0;

			for (int k = 0; k < ds; k++)
				acc ^= gf_mul(v[r * ds + k], inv[k * ds + c]);
			out[r * ds + c] = acc;
		}
	free(v);
	free(top);
	free(inv);
}

/* Small, odd, SIMD-width and the largest ratios against the plain computation. */
static void test_matrix_ref(void)
{
	static const int ratios[][2] = { { 1, 1 },     { 1, 0 },    { 2, 1 },	{ 3, 2 },
					 { 10, 3 },    { 15, 17 },  { 16, 16 }, { 31, 1 },
					 { 32, 32 },   { 33, 7 },   { 64, 64 }, { 100, 5 },
					 { 128, 128 }, { 200, 56 }, { 1, 255 }, { 255, 1 } };
	static uint8_t got[256 * 256], want[256 * 256];

	for (size_t i = 0; i < sizeof(ratios) / sizeof(ratios[0]); i++) {
		int ds = ratios[i][0], ps = ratios[i][1];

		memset(got, 0xAA, sizeof(got));
		CHECK_EQ(kcpx_fec_matrix(ds, ps, got), 0);
		matrix_ref(ds, ps, want);
		CHECK_MEM(got, want, (size_t)(ds + ps) * ds);
		CHECK_EQ(got[(ds + ps) * ds], 0xAA); /* nothing written past n x ds */
	}
}

/* klauspost/reedsolomon TestOneEncode, then every 5-of-10 erasure pattern rebuilds. */
static void test_klauspost_one_encode(void)
{
	static const uint8_t data[5][2] = { { 0, 1 }, { 4, 5 }, { 2, 3 }, { 6, 7 }, { 8, 9 } };
	static const uint8_t par[5][2] = {
		{ 12, 13 }, { 10, 11 }, { 14, 15 }, { 90, 91 }, { 94, 95 }
	};
	uint8_t buf[10][2], *sh[10];
	struct kcpx_rs *rs = kcpx_rs_new(5, 5);

	CHECK(rs);
	for (int i = 0; i < 10; i++)
		sh[i] = buf[i];
	memcpy(buf, data, sizeof(data));
	CHECK_EQ(kcpx_rs_encode(rs, sh, 2), 0);
	CHECK_MEM(buf[5], par, sizeof(par));

	for (int mask = 0; mask < 1024; mask++) {
		bool present[10];
		int cnt = 0;

		for (int i = 0; i < 10; i++) {
			present[i] = mask & (1 << i);
			cnt += present[i];
		}
		memcpy(buf, data, sizeof(data));
		memcpy(buf[5], par, sizeof(par));
		for (int i = 0; i < 5; i++)
			if (!present[i])
				memset(buf[i], 0xee, 2);
		if (cnt < 5) {
			CHECK_EQ(kcpx_rs_reconstruct(rs, sh, present, 2), -EBADMSG);
			continue;
		}
		CHECK_EQ(kcpx_rs_reconstruct(rs, sh, present, 2), 0);
		CHECK_MEM(buf, data, sizeof(data));
	}
	kcpx_rs_free(rs);
}

/* ------------------------------------------------------------ encoder */

/* Wire form: data shards unpadded with seqid/flag/size; parity after the group's last
 * data shard, as long as the longest data shard, and equal to RS over padded payloads.
 * The sink scribbles over everything it is handed, as an in-place sealer does. */
static void test_encoder_wire(void)
{
	struct kcpx_fec_enc *e = kcpx_fec_enc_new(10, 3, HEAD, TAIL);
	struct kcpx_rs *rs = kcpx_rs_new(10, 3);
	uint8_t kcp[1600];

	CHECK(e && rs);
	S.n = 0;
	S.scribble = true;
	for (uint32_t id = 0; id < 48; id++) {
		size_t len = make_kcp(kcp, id);

		CHECK_EQ(kcpx_fec_encode(e, kcp, len, 0, sink_emit, &S, NULL), 0);
	}
	CHECK_EQ(S.n, 48 + 4 * 3);
	for (int g = 0; g < 4; g++) {
		static uint8_t pad[13][1600];
		uint8_t *sh[13];
		size_t maxlen = 0;

		for (int i = 0; i < 13; i++) {
			struct pkt *p = &S.p[g * 13 + i];
			uint32_t id = (uint32_t)(g * 10 + i), got;

			CHECK_EQ(kcpx_get_le32(p->b), g * 13 + i);
			CHECK_EQ(p->parity, i >= 10);
			CHECK_EQ(kcpx_get_le16(p->b + 4), i < 10 ? 0xf1 : 0xf2);
			CHECK(kcpx_fec_is_fec(p->b, p->len));
			if (i < 10) {
				CHECK_EQ(kcpx_get_le16(p->b + 6), p->len - 6);
				CHECK(check_kcp(p->b + 8, p->len - 8, &got));
				CHECK_EQ(got, id);
				maxlen = KCPX_MAX(maxlen, p->len);
				memset(pad[i], 0, sizeof(pad[i]));
				memcpy(pad[i], p->b + 6, p->len - 6);
			} else {
				CHECK_EQ(p->len, maxlen);
			}
			sh[i] = pad[i];
		}
		CHECK_EQ(kcpx_rs_encode(rs, sh, maxlen - 6), 0);
		for (int k = 0; k < 3; k++)
			CHECK_MEM(S.p[g * 13 + 10 + k].b + 6, pad[10 + k], maxlen - 6);
	}
	/* the 8 data shards of the open group are out, their parity is not */
	CHECK_EQ(kcpx_fec_enc_next(e), 4 * 13 + 8);
	CHECK_EQ(kcpx_fec_encode(e, kcp, 1500 - 8 + 1, 0, sink_emit, &S, NULL), -EMSGSIZE);
	CHECK_EQ(S.n, 60);
	kcpx_fec_enc_free(e);
	kcpx_rs_free(rs);
	CHECK(!kcpx_fec_enc_new(0, 3, 0, 0));
	CHECK(!kcpx_fec_enc_new(3, 0, 0, 0));
	CHECK(!kcpx_fec_enc_new(200, 57, 0, 0));
}

/* KCP packets 0..count-1 through e at now, the shards into S (which starts empty) */
static void encode_ids(struct kcpx_fec_enc *e, int count, uint32_t now)
{
	uint8_t kcp[1600];

	S.n = 0;
	S.scribble = false;
	for (int id = 0; id < count; id++)
		kcpx_fec_encode(e, kcp, make_kcp(kcp, (uint32_t)id), now, sink_emit, &S, NULL);
}

/* seqids wrap at floor(0xffffffff / n) * n, after a parity shard. */
static void test_encoder_wrap(void)
{
	struct kcpx_fec_enc *e = kcpx_fec_enc_new(10, 3, 0, 0);
	uint32_t paws = 0xffffffffu / 13 * 13;

	CHECK(e);
	kcpx_fec_enc_set_next(e, paws - 13);
	CHECK_EQ(kcpx_fec_enc_next(e), paws - 13);
	encode_ids(e, 20, 0);
	CHECK_EQ(S.n, 26);
	CHECK_EQ(kcpx_get_le32(S.p[0].b), paws - 13);
	CHECK_EQ(kcpx_get_le32(S.p[12].b), paws - 1);
	CHECK_EQ(kcpx_get_le32(S.p[13].b), 0);
	CHECK_EQ(kcpx_get_le32(S.p[25].b), 12);
	CHECK_EQ(kcpx_fec_enc_next(e), 13);
	kcpx_fec_enc_free(e);
}

/* A 3/2 group (seqids 5..9) sent by Debian kcptun-client 20210922 (--crypt aes --key k3y
 * --nocomp), decrypted: data shards of 57, 160 and 73 bytes, parity padded to 160. */
static const char *const real_group[5] = {
	"05000000f100330012413ae5510000029b0500000300000000000000190000000102110003000000"
	"0e0f101112131415161718191a1b1c1d1e",
	"06000000f1009a0012413ae551000002cd0500000400000000000000800000000102780003000000"
	"15161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c"
	"3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f6061626364"
	"65666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c",
	"07000000f100430012413ae551000002000600000500000000000000290000000102210003000000"
	"1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c",
	"08000000f200ea0012413ae551000002560600000200000000000000b00000000102480003000000"
	"070419162b282d2a2f2c211e13101512170b0907191b191f191b1907090b090f09363738393a3b3c"
	"3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f6061626364"
	"65666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c",
	"09000000f2002f0012413ae5510000026c0f00002f00000000000000050000000102de0003000000"
	"baab0c7de6f7d8e9e2f3a44873624d7c77c3c1bff5ebe9d7cdd3d12f051b19273dada5ddd5cdc5fd"
	"f5ede53a322a221a120a027a726a625a524a42bab2aaa29a928a82faf2eae2dad2cac2272f373f07"
	"0f171f676f777f474f575fa7afb7bf878f979fe7eff7ffc7cfd7df747c646c545c444c343c242c14",
};

/* The encoder reproduces kcptun's own shards byte for byte (data headers, size fields,
 * padding, parity), and the decoder rebuilds any 2 lost data shards of that group. */
static void test_real_kcptun_group(void)
{
	static uint8_t b[5][200];
	size_t len[5];
	struct kcpx_fec_enc *e = kcpx_fec_enc_new(3, 2, HEAD, TAIL);

	for (int i = 0; i < 5; i++)
		len[i] = unit_unhex(real_group[i], b[i], sizeof(b[i]));
	CHECK_EQ(len[0], 57);
	CHECK_EQ(len[1], 160);
	CHECK_EQ(len[2], 73);
	CHECK_EQ(len[3], 160);
	CHECK_EQ(len[4], 160);
	kcpx_fec_enc_set_next(e, 5);
	S.n = 0;
	S.scribble = true;
	for (int i = 0; i < 3; i++)
		kcpx_fec_encode(e, b[i] + 8, len[i] - 8, 0, sink_emit, &S, NULL);
	CHECK_EQ(S.n, 5);
	for (int i = 0; i < 5; i++) {
		CHECK_EQ(S.p[i].len, len[i]);
		CHECK_MEM(S.p[i].b, b[i], len[i]);
	}
	kcpx_fec_enc_free(e);

	for (int lost = 0; lost < 3; lost++) { /* lose data shards {0,1}, {1,2}, {2,0} */
		struct kcpx_fec_dec *d = kcpx_fec_dec_new(3, 2);
		int l1 = lost, l2 = (lost + 1) % 3, r1 = KCPX_MIN(l1, l2), r2 = KCPX_MAX(l1, l2);

		G.n = 0;
		for (int i = 0; i < 5; i++)
			if (i != l1 && i != l2)
				kcpx_fec_decode(d, b[i], len[i], 0, got_recv, &G, NULL);
		CHECK_EQ(G.n, 3);
		CHECK(G.rec[1] && G.rec[2]);
		CHECK_EQ(G.len[1], len[r1] - 8);
		CHECK_MEM(G.b[1], b[r1] + 8, len[r1] - 8);
		CHECK_EQ(G.len[2], len[r2] - 8);
		CHECK_MEM(G.b[2], b[r2] + 8, len[r2] - 8);
		kcpx_fec_dec_free(d);
	}
}

/* ------------------------------------------------------------ decoder */

/* Feed packets in a given order; check every KCP packet arrives exactly as sent
 * (duplicates allowed, since KCP dedups), and count them. */
static int deliver(struct kcpx_fec_dec *d, struct pkt *p, const int *order, int n, uint32_t now,
		   struct kcpx_snmp *snmp, bool *seen, uint32_t nseen)
{
	int bad = 0;

	G.n = 0;
	for (int i = 0; i < n; i++) {
		struct pkt *x = &p[order[i]];

		if (kcpx_fec_decode(d, x->b, x->len, now, got_recv, &G, snmp) < 0)
			bad++;
	}
	for (int i = 0; i < G.n; i++) {
		uint32_t id;

		if (!check_kcp(G.b[i], G.len[i], &id) || id >= nseen)
			return -1;
		seen[id] = true;
	}
	return bad;
}

/* Random loss of up to ps shards per group, groups shuffled locally, with duplicates:
 * every KCP packet comes out, rebuilt ones flagged, counters as expected. */
static void run_loss(int ds, int ps, uint32_t start, int groups)
{
	struct kcpx_fec_enc *e = kcpx_fec_enc_new(ds, ps, HEAD, TAIL);
	struct kcpx_fec_dec *d = kcpx_fec_dec_new(ds, ps);
	struct kcpx_snmp snmp = { 0 };
	static int order[MAXP];
	static bool seen[MAXP];
	uint8_t kcp[1600];
	int n = ds + ps, no = 0, lost_data = 0, parity_in = 0;

	CHECK(e && d);
	CHECK_EQ(groups * ds, (groups * ds < MAXP) ? groups * ds : -1);
	kcpx_fec_enc_set_next(e, start);
	S.n = 0;
	S.scribble = true;
	for (int id = 0; id < groups * ds; id++)
		kcpx_fec_encode(e, kcp, make_kcp(kcp, (uint32_t)id), 0, sink_emit, &S, NULL);
	CHECK_EQ(S.n, groups * n);

	for (int g = 0; g < groups; g++) {
		int idx[256], lose = (int)(rnd() % (uint32_t)(ps + 1));

		for (int i = 0; i < n; i++)
			idx[i] = g * n + i;
		for (int i = n - 1; i > 0; i--) { /* shuffle inside the group */
			int j = (int)(rnd() % (uint32_t)(i + 1)), t = idx[i];

			idx[i] = idx[j];
			idx[j] = t;
		}
		for (int i = lose; i < n; i++) {
			order[no++] = idx[i];
			if (S.p[idx[i]].parity)
				parity_in++;
			if (rnd() % 8 == 0) { /* a duplicate, now or a bit later */
				order[no++] = idx[i];
				if (S.p[idx[i]].parity)
					parity_in++;
			}
		}
		for (int i = 0; i < lose; i++)
			lost_data += !S.p[idx[i]].parity;
	}
	for (int i = 0; i + 6 < no; i++) { /* and some reordering across group borders */
		if (rnd() % 4 == 0) {
			int j = i + 1 + (int)(rnd() % 5), t = order[i];

			order[i] = order[j];
			order[j] = t;
		}
	}
	memset(seen, 0, sizeof(seen));
	CHECK_EQ(deliver(d, S.p, order, no, 1000, &snmp, seen, (uint32_t)(groups * ds)), 0);
	for (int id = 0; id < groups * ds; id++)
		CHECK(seen[id]);
	CHECK(snmp.FECRecovered >= (uint64_t)lost_data);
	CHECK_EQ(snmp.FECParityShards, parity_in);
	CHECK_EQ(snmp.FECErrs, 0);
	CHECK_EQ(snmp.InErrs, 0);
	/* FECShortShards may count: a shard arriving after its group was done waits in the
	 * queue (kcp-go does the same) and is pushed out later. */
	CHECK(kcpx_fec_dec_queued(d) <= (size_t)(3 * n));
	kcpx_fec_enc_free(e);
	kcpx_fec_dec_free(d);
}

/*
 * Adaptive parity: a group sends only its first `parity` shards (the same bytes a full
 * 10/3 encoder sends at those seqids) and skips the others' seqids; a change waits for
 * the next group; the receiver's 10/3 decoder rebuilds from them and never re-tunes.
 */
static void test_encoder_adaptive(void)
{
	struct kcpx_fec_enc *e = kcpx_fec_enc_new(10, 3, HEAD, TAIL);
	struct kcpx_fec_enc *full = kcpx_fec_enc_new(10, 3, HEAD, TAIL);
	struct kcpx_fec_dec *d = kcpx_fec_dec_new(10, 3);
	uint32_t paws = 0xffffffffu / 13 * 13;
	struct kcpx_snmp snmp = { 0 };
	static struct sink F;
	static int order[MAXP];
	static bool seen[MAXP];
	uint8_t kcp[1600];
	int no = 0, ds, ps;

	CHECK(e && full && d);
	CHECK_EQ(kcpx_fec_enc_parity(e), 3);
	S.n = F.n = 0;
	S.scribble = F.scribble = false;
	kcpx_fec_enc_set_parity(e, 1);
	CHECK_EQ(kcpx_fec_enc_parity(e), 1);
	for (uint32_t id = 0; id < 15; id++) {
		if (id == 15 - 1)
			kcpx_fec_enc_set_parity(e, 0); /* mid-group: group 1 keeps its 1 */
		kcpx_fec_encode(e, kcp, make_kcp(kcp, id), 0, sink_emit, &S, NULL);
		kcpx_fec_encode(full, kcp, make_kcp(kcp, id), 0, sink_emit, &F, NULL);
	}
	CHECK_EQ(kcpx_fec_enc_parity(e), 1);
	for (uint32_t id = 15; id < 30; id++) {
		kcpx_fec_encode(e, kcp, make_kcp(kcp, id), 0, sink_emit, &S, NULL);
		kcpx_fec_encode(full, kcp, make_kcp(kcp, id), 0, sink_emit, &F, NULL);
	}
	/* group 0: 10 + 1, group 1: 10 + 1, group 2: 10 + 0 */
	CHECK_EQ(S.n, 32);
	CHECK_EQ(F.n, 39);
	CHECK_EQ(kcpx_fec_enc_parity(e), 0);
	CHECK_EQ(kcpx_fec_enc_next(e), 39);
	for (int g = 0; g < 2; g++) {
		struct pkt *p = &S.p[g * 11 + 10], *q = &F.p[g * 13 + 10];

		CHECK(p->parity);
		CHECK_EQ(kcpx_get_le32(p->b), g * 13 + 10);
		CHECK_EQ(p->len, q->len);
		CHECK_MEM(p->b, q->b, q->len);
		for (int i = 0; i < 10; i++)
			CHECK_EQ(kcpx_get_le32(S.p[g * 11 + i].b), g * 13 + i);
	}
	for (int i = 0; i < 10; i++)
		CHECK_EQ(kcpx_get_le32(S.p[22 + i].b), 26 + i);
	/* more than ps is the ceiling; a flush of a short group sends what it has */
	kcpx_fec_enc_set_parity(e, 7);
	CHECK_EQ(kcpx_fec_enc_parity(e), 3);
	kcpx_fec_enc_set_parity(e, 2);
	for (uint32_t id = 30; id < 34; id++)
		kcpx_fec_encode(e, kcp, make_kcp(kcp, id), 0, sink_emit, &S, NULL);
	CHECK_EQ(kcpx_fec_enc_flush(e, sink_emit, &S), 2);
	CHECK_EQ(S.n, 32 + 4 + 2);
	CHECK_EQ(kcpx_get_le32(S.p[36].b), 39 + 10);
	CHECK_EQ(kcpx_get_le32(S.p[37].b), 39 + 11);
	CHECK_EQ(kcpx_fec_enc_next(e), 52);

	/* lose one data shard of each group with parity, a data shard of the last short
	 * group too: all but the one in the group without parity come back */
	for (int i = 0; i < S.n; i++)
		if (i != 3 && i != 11 + 9 && i != 25 && i != 33)
			order[no++] = i;
	memset(seen, 0, sizeof(seen));
	kcpx_fec_dec_set_partial(d, true);
	CHECK_EQ(deliver(d, S.p, order, no, 1000, &snmp, seen, 34), 0);
	for (uint32_t id = 0; id < 34; id++)
		CHECK_EQ(seen[id], id != 23); /* S.p[25]: the group without parity */
	CHECK_EQ(snmp.FECRecovered, 3);
	kcpx_fec_dec_ratio(d, &ds, &ps);
	CHECK_EQ(ds, 10);
	CHECK_EQ(ps, 3);

	/* without parity the seqids still wrap where kcp-go's do */
	kcpx_fec_enc_set_parity(e, 0);
	kcpx_fec_enc_set_next(e, paws - 13);
	S.n = 0;
	for (uint32_t id = 0; id < 20; id++)
		kcpx_fec_encode(e, kcp, make_kcp(kcp, id), 0, sink_emit, &S, NULL);
	CHECK_EQ(S.n, 20);
	CHECK_EQ(kcpx_get_le32(S.p[9].b), paws - 4);
	CHECK_EQ(kcpx_get_le32(S.p[10].b), 0);
	CHECK_EQ(kcpx_fec_enc_next(e), 13);
	kcpx_fec_enc_free(e);
	kcpx_fec_enc_free(full);
	kcpx_fec_dec_free(d);
}

static void test_decode_loss_10_3(void)
{
	run_loss(10, 3, 0, 200);
}

static void test_decode_loss_odd_ratios(void)
{
	run_loss(1, 1, 0, 300);
	run_loss(3, 2, 0, 300);
	run_loss(7, 5, 0, 200);
	run_loss(20, 10, 0, 100);
}

static void test_decode_loss_across_wrap(void)
{
	run_loss(10, 3, 0xffffffffu / 13 * 13 - 13 * 50, 150);
	run_loss(3, 2, 0xffffffffu / 5 * 5 - 5 * 100, 300);
}

/* Exactly which shards come out, for one group with data shards 2 and 5 lost. */
static void test_decode_exact(void)
{
	struct kcpx_fec_enc *e = kcpx_fec_enc_new(10, 3, 0, 0);
	struct kcpx_fec_dec *d = kcpx_fec_dec_new(10, 3);
	struct kcpx_snmp snmp = { 0 };
	int rc, total = 0;

	encode_ids(e, 10, 0);
	CHECK_EQ(S.n, 13);
	G.n = 0;
	for (int i = 0; i < 13; i++) {
		if (i == 2 || i == 5)
			continue;
		rc = kcpx_fec_decode(d, S.p[i].b, S.p[i].len, 5, got_recv, &G, &snmp);
		CHECK(rc >= 0);
		total += rc;
		/* data shard i arrives itself; the rebuild happens with the 10th shard in */
		if (i == 11) {
			CHECK_EQ(rc, 2);
			CHECK_EQ(G.rec[G.n - 2], true);
			CHECK_EQ(kcpx_get_le32(G.b[G.n - 2]), 2);
			CHECK_EQ(kcpx_get_le32(G.b[G.n - 1]), 5);
			CHECK_EQ(kcpx_fec_dec_queued(d), 0);
		} else if (i < 10) {
			CHECK_EQ(rc, 1);
			CHECK_EQ(G.rec[G.n - 1], false);
		} else {
			CHECK_EQ(rc, 0); /* parity 10 waits; the late parity 12 waits */
		}
	}
	CHECK_EQ(total, 10);
	CHECK_EQ(snmp.FECRecovered, 2);
	CHECK_EQ(snmp.FECParityShards, 3);
	CHECK_EQ(kcpx_fec_dec_queued(d), 1);
	kcpx_fec_enc_free(e);
	kcpx_fec_dec_free(d);
}

/* One more lost shard than parity: nothing rebuilt; the queue limit later pushes the
 * stranded data shards out and counts them as FECShortShards. */
static void test_decode_unrecoverable_and_limit(void)
{
	struct kcpx_fec_enc *e = kcpx_fec_enc_new(10, 3, 0, 0);
	struct kcpx_fec_dec *d = kcpx_fec_dec_new(10, 3);
	struct kcpx_snmp snmp = { 0 };

	encode_ids(e, 200, 0);
	G.n = 0;
	for (int i = 0; i < 13; i++) /* group 0 loses 4 data shards */
		if (i > 3)
			kcpx_fec_decode(d, S.p[i].b, S.p[i].len, 0, got_recv, &G, &snmp);
	CHECK_EQ(snmp.FECRecovered, 0);
	CHECK_EQ(kcpx_fec_dec_queued(d), 9);
	/* groups 1..: parity only, never completing, to fill the queue */
	for (int i = 13; i < S.n; i++)
		if (S.p[i].parity)
			kcpx_fec_decode(d, S.p[i].b, S.p[i].len, 0, got_recv, &G, &snmp);
	CHECK_EQ(kcpx_fec_dec_queued(d), 39);
	CHECK_EQ(snmp.FECShortShards, 6); /* data shards 4..9 of group 0 */
	CHECK_EQ(snmp.FECRecovered, 0);
	kcpx_fec_enc_free(e);
	kcpx_fec_dec_free(d);
}

/* Entries older than 60 s are dropped: a group split across the expiry is not rebuilt. */
static void test_decode_expiry(void)
{
	struct kcpx_fec_enc *e = kcpx_fec_enc_new(10, 3, 0, 0);
	struct kcpx_fec_dec *d = kcpx_fec_dec_new(10, 3);
	struct kcpx_snmp snmp = { 0 };
	uint32_t t0 = 0xfffff000u; /* the ms clock wraps too */

	encode_ids(e, 20, 0);
	G.n = 0;
	for (int i = 0; i < 6; i++)
		kcpx_fec_decode(d, S.p[i].b, S.p[i].len, t0, got_recv, &G, &snmp);
	CHECK_EQ(kcpx_fec_dec_queued(d), 6);
	/* 60 s later: still there (expiry is "> 60000") */
	kcpx_fec_decode(d, S.p[6].b, S.p[6].len, t0 + 60000, got_recv, &G, &snmp);
	CHECK_EQ(kcpx_fec_dec_queued(d), 7);
	/* one ms more: the six old ones go, the 7th stays */
	kcpx_fec_decode(d, S.p[7].b, S.p[7].len, t0 + 60001, got_recv, &G, &snmp);
	CHECK_EQ(kcpx_fec_dec_queued(d), 2);
	for (int i = 10; i < 13; i++)
		kcpx_fec_decode(d, S.p[i].b, S.p[i].len, t0 + 60002, got_recv, &G, &snmp);
	CHECK_EQ(snmp.FECRecovered, 0); /* 5 shards of 13: data 8, 9 stay lost */
	CHECK_EQ(G.n, 8);
	kcpx_fec_enc_free(e);
	kcpx_fec_dec_free(d);
}

/* Short, long, wrong-flag and garbage bodies are counted and dropped, never crash; a
 * parity shard whose rebuilt size field is absurd counts FECErrs. */
static void test_decode_garbage(void)
{
	struct kcpx_fec_dec *d = kcpx_fec_dec_new(10, 3);
	struct kcpx_snmp snmp = { 0 };
	uint8_t b[1600] = { 0 };

	G.n = 0;
	CHECK_EQ(kcpx_fec_decode(d, b, 7, 0, got_recv, &G, &snmp), -EBADMSG);
	CHECK_EQ(kcpx_fec_decode(d, b, 1501, 0, got_recv, &G, &snmp), -EBADMSG);
	CHECK_EQ(snmp.InErrs, 2);
	kcpx_put_le16(b + 4, 0x51);
	CHECK(!kcpx_fec_is_fec(b, 24));
	CHECK_EQ(kcpx_fec_decode(d, b, 24, 0, got_recv, &G, &snmp), -EINVAL);
	kcpx_put_le16(b + 4, 0xf1);
	CHECK(kcpx_fec_is_fec(b, 6));
	CHECK(!kcpx_fec_is_fec(b, 5));
	/* a data shard of 8 bytes: empty KCP payload handed over, as kcp-go does */
	CHECK_EQ(kcpx_fec_decode(d, b, 8, 0, got_recv, &G, &snmp), 1);
	CHECK_EQ(G.len[0], 0);

	/* group 1 (seqids 13..25): 10 parity-flagged garbage bodies with random bytes */
	for (int i = 0; i < 13; i++) {
		for (int j = 0; j < 100; j++)
			b[j] = (uint8_t)rnd();
		kcpx_put_le32(b, 13 + (uint32_t)i);
		kcpx_put_le16(b + 4, i < 10 ? 0xf1 : 0xf2);
		if (i == 0 || i == 1 || i == 2)
			continue;
		kcpx_put_le16(b + 6, 0xffff); /* bad size, never checked on data shards */
		CHECK(kcpx_fec_decode(d, b, 100, 0, got_recv, &G, &snmp) >= 0);
	}
	CHECK_EQ(snmp.FECRecovered + snmp.FECErrs, 3);
	CHECK_EQ(snmp.FECParityShards, 3);

	/* absurd seqids in every direction */
	for (int i = 0; i < 2000; i++) {
		size_t len = 8 + rnd() % 1400;

		for (size_t j = 0; j < len; j++)
			b[j] = (uint8_t)rnd();
		kcpx_put_le16(b + 4, rnd() & 1 ? 0xf1 : 0xf2);
		CHECK(kcpx_fec_decode(d, b, len, rnd(), got_recv, &G, &snmp) >= 0);
		G.n = 0;
		CHECK(kcpx_fec_dec_queued(d) <= 3 * 13 + 1);
	}
	kcpx_fec_dec_free(d);
}

/*
 * A ds/ps sender's first `groups` groups, every shard i for which lost(i, ds + ps, ds) is
 * false delivered in order to a local_ds/local_ps decoder (partial decoding as asked).
 * Afterwards lossy_seen[id] says whether KCP packet id came out, snmp holds the decoder's
 * counters and rds/rps the ratio it settled on; every packet that came out was one sent.
 */
struct lossy {
	int local_ds, local_ps, ds, ps, groups;
	bool partial;
	bool (*lost)(int i, int n, int ds);
	struct kcpx_snmp snmp;
	int rds, rps;
};

static bool lossy_seen[MAXP];

static void run_lossy(struct lossy *l)
{
	struct kcpx_fec_enc *e = kcpx_fec_enc_new(l->ds, l->ps, 0, 0);
	struct kcpx_fec_dec *d = kcpx_fec_dec_new(l->local_ds, l->local_ps);
	static int order[MAXP];
	int n = l->ds + l->ps, no = 0;

	encode_ids(e, l->groups * l->ds, 0);
	for (int i = 0; i < S.n; i++)
		if (!l->lost(i, n, l->ds))
			order[no++] = i;
	kcpx_fec_dec_set_partial(d, l->partial);
	memset(lossy_seen, 0, sizeof(lossy_seen));
	CHECK_EQ(deliver(d, S.p, order, no, 0, &l->snmp, lossy_seen, (uint32_t)(l->groups * l->ds)),
		 0);
	kcpx_fec_dec_ratio(d, &l->rds, &l->rps);
	kcpx_fec_enc_free(e);
	kcpx_fec_dec_free(d);
}

/* the first 30 groups arrive whole; later ones lose data shard 1 */
static bool lost_after_30(int i, int n, int ds)
{
	(void)ds;
	return i >= 30 * n && i % n == 1;
}

/* A receiver with no FEC configured (or another ratio) learns the peer's from the flags
 * (kcp-go autoTune) and then rebuilds lost shards. */
static void run_autotune(int local_ds, int local_ps, int ds, int ps)
{
	struct lossy l = { .local_ds = local_ds,
			   .local_ps = local_ps,
			   .ds = ds,
			   .ps = ps,
			   .groups = 60,
			   .lost = lost_after_30 };

	run_lossy(&l);
	CHECK_EQ(l.rds, ds);
	CHECK_EQ(l.rps, ps);
	for (int id = 0; id < l.groups * ds; id++)
		CHECK(lossy_seen[id]);
	CHECK_EQ(l.snmp.FECRecovered, 30);
}

static void test_decode_autotune(void)
{
	run_autotune(0, 0, 10, 3);
	run_autotune(10, 3, 3, 2);
	run_autotune(4, 1, 20, 6);
}

/* data shard 1 of every other group, the last data shard of every third from the third */
static bool lost_from_first(int i, int n, int ds)
{
	return i % (2 * n) == 1 || i % (3 * n) == 2 * n + ds - 1;
}

/*
 * A peer whose ratio differs, losing data shards from its first group on: until the
 * decoder is tuned to it, groups are cut wrong (a parity shard at a data index or the
 * reverse), and rebuilding one would hand KCP bytes no one sent. No such group is rebuilt;
 * every shard that comes out is one that was sent, and once tuned most losses come back.
 */
static void run_mismatch_lossy(int local_ds, int local_ps, int ds, int ps, bool partial)
{
	struct lossy l = { .local_ds = local_ds,
			   .local_ps = local_ps,
			   .ds = ds,
			   .ps = ps,
			   .groups = 80,
			   .partial = partial,
			   .lost = lost_from_first };
	int n = ds + ps, lost = 0, back = 0;

	run_lossy(&l);
	for (int id = 0; id < l.groups * ds; id++) {
		if (l.lost(id / ds * n + id % ds, n, ds)) { /* its shard */
			lost++;
			back += lossy_seen[id];
		} else {
			CHECK(lossy_seen[id]);
		}
	}
	printf("     peer %d/%d, ours %d/%d: %d of %d lost data shards rebuilt\n", ds, ps, local_ds,
	       local_ps, back, lost);
	CHECK(back * 2 >= lost);
}

static void test_decode_mismatch_lossy(void)
{
	for (int p = 0; p < 2; p++) {
		run_mismatch_lossy(10, 3, 5, 2, p);
		run_mismatch_lossy(5, 2, 10, 3, p);
		run_mismatch_lossy(3, 1, 20, 6, p);
		run_mismatch_lossy(20, 6, 3, 1, p);
	}
}

/* Feeds `groups` whole groups of a ds/ps sender, seqids from *next on, at now. */
static void feed_ratio(struct kcpx_fec_dec *d, int ds, int ps, int groups, uint32_t *next,
		       uint32_t now)
{
	struct kcpx_fec_enc *e = kcpx_fec_enc_new(ds, ps, 0, 0);

	kcpx_fec_enc_set_next(e, *next);
	encode_ids(e, groups * ds, now);
	G.n = 0;
	for (int i = 0; i < S.n; i++)
		kcpx_fec_decode(d, S.p[i].b, S.p[i].len, now, got_recv, &G, NULL);
	*next = kcpx_fec_enc_next(e);
	kcpx_fec_enc_free(e);
}

/*
 * Crafted shards cannot make every packet pay for a new RS code: after the first re-tune
 * a decoder re-tunes at most once per KCPX_FEC_RETUNE_MS. A sender flipping between two
 * ratios every 50 ms for 5 s gets at most 6 re-tunes (kcp-go: one per flip, 100).
 */
static void test_decode_retune_bound(void)
{
	struct kcpx_fec_dec *d = kcpx_fec_dec_new(0, 0);
	struct kcpx_fec_dec_stats st;
	uint32_t next = 0, now = 0;
	int ds, ps;

	kcpx_fec_dec_set_partial(d, true);
	feed_ratio(d, 10, 3, 30, &next, now);
	kcpx_fec_dec_ratio(d, &ds, &ps);
	CHECK(ds == 10 && ps == 3);
	kcpx_fec_dec_stats(d, &st);
	CHECK(st.retunes >= 1);
	/* a new ratio right away is held back ... */
	now += 10;
	feed_ratio(d, 3, 2, 30, &next, now);
	kcpx_fec_dec_ratio(d, &ds, &ps);
	CHECK(ds == 10 && ps == 3);
	kcpx_fec_dec_stats(d, &st);
	CHECK(st.retunes_held > 0);
	/* ... and taken once the interval is over */
	now += KCPX_FEC_RETUNE_MS;
	feed_ratio(d, 3, 2, 30, &next, now);
	kcpx_fec_dec_ratio(d, &ds, &ps);
	CHECK(ds == 3 && ps == 2);
	/* flipping every 50 ms for 5 s */
	uint64_t before;

	kcpx_fec_dec_stats(d, &st);
	before = st.retunes;
	for (int i = 0; i < 100; i++) {
		now += 50;
		feed_ratio(d, i % 2 ? 3 : 12, i % 2 ? 2 : 4, 3, &next, now);
	}
	kcpx_fec_dec_stats(d, &st);
	printf("     ratio flipped 100 times in 5 s: %llu re-tunes, %llu held back\n",
	       (unsigned long long)(st.retunes - before), (unsigned long long)st.retunes_held);
	CHECK(st.retunes - before <= 6);
	kcpx_fec_dec_free(d);
}

/*
 * Many sessions of forged flag patterns: 40 decoders, each tuned to its own ratio, all
 * asked to re-tune in the same second get KCPX_FEC_RETUNE_BUDGET re-tunes between them,
 * the rest held back; a second later as many more.
 */
static void test_retune_budget(void)
{
	enum { N = 40 };
	struct kcpx_fec_dec *d[N];
	struct kcpx_fec_dec_stats st;
	uint32_t next[N] = { 0 }, now = 5000000;
	int moved = 0, held = 0, ds, ps;

	for (int i = 0; i < N; i++) {
		d[i] = kcpx_fec_dec_new(0, 0);
		feed_ratio(d[i], 10, 3, 30, &next[i], now); /* first tuning: not counted */
		kcpx_fec_dec_ratio(d[i], &ds, &ps);
		CHECK(ds == 10 && ps == 3);
	}
	now += 2 * KCPX_FEC_RETUNE_MS; /* each decoder's own interval is over */
	for (int i = 0; i < N; i++)
		feed_ratio(d[i], 4, 2, 30, &next[i], now);
	for (int i = 0; i < N; i++) {
		kcpx_fec_dec_ratio(d[i], &ds, &ps);
		moved += ds == 4 && ps == 2;
		kcpx_fec_dec_stats(d[i], &st);
		held += st.retunes_budget > 0;
	}
	printf("     40 decoders asked to re-tune in one second: %d did, %d held back\n", moved,
	       held);
	CHECK_EQ(moved, KCPX_FEC_RETUNE_BUDGET);
	CHECK_EQ(held, N - KCPX_FEC_RETUNE_BUDGET);
	now += 1000;
	for (int i = 0; i < N; i++)
		feed_ratio(d[i], 4, 2, 30, &next[i], now);
	moved = 0;
	for (int i = 0; i < N; i++) {
		kcpx_fec_dec_ratio(d[i], &ds, &ps);
		moved += ds == 4 && ps == 2;
		kcpx_fec_dec_free(d[i]);
	}
	CHECK_EQ(moved, 2 * KCPX_FEC_RETUNE_BUDGET);
}

/*
 * Partial decoding under forged parity: groups of three random parity shards and no data
 * would cost 1 + 2 + 3 hypotheses each; the credit (one per shard received) holds it to
 * at most one per shard plus the initial bank, and a real flushed group after the flood
 * still needs only what its own shards earn.
 */
static void test_partial_budget(void)
{
	struct kcpx_fec_dec *d = kcpx_fec_dec_new(10, 3);
	struct kcpx_fec_dec_stats st;
	uint8_t b[1000];
	uint64_t shards = 0;

	kcpx_fec_dec_set_partial(d, true);
	G.n = 0;
	for (uint32_t g = 0; g < 1000; g++) {
		for (uint32_t k = 10; k < 13; k++) {
			kcpx_put_le32(b, g * 13 + k);
			kcpx_put_le16(b + 4, KCPX_FEC_PARITY);
			for (size_t i = 6; i < sizeof(b); i++)
				b[i] = (uint8_t)rnd();
			CHECK(kcpx_fec_decode(d, b, sizeof(b), g, got_recv, &G, NULL) >= 0);
			shards++;
		}
	}
	kcpx_fec_dec_stats(d, &st);
	printf("     3000 forged parity shards: %llu hypotheses, %llu skipped, %d rebuilt\n",
	       (unsigned long long)st.hypotheses, (unsigned long long)st.partial_skipped, G.n);
	CHECK(st.hypotheses <= shards + KCPX_FEC_PARTIAL_BURST);
	CHECK(st.partial_skipped > 0);
	CHECK_EQ(G.n, 0);
	kcpx_fec_dec_free(d);
}

int main(void)
{
	RUN(test_matrix_10_3);
	RUN(test_matrix_ref);
	RUN(test_klauspost_one_encode);
	RUN(test_encoder_wire);
	RUN(test_encoder_wrap);
	RUN(test_encoder_adaptive);
	RUN(test_real_kcptun_group);
	RUN(test_decode_exact);
	RUN(test_decode_loss_10_3);
	RUN(test_decode_loss_odd_ratios);
	RUN(test_decode_loss_across_wrap);
	RUN(test_decode_unrecoverable_and_limit);
	RUN(test_decode_expiry);
	RUN(test_decode_garbage);
	RUN(test_decode_autotune);
	RUN(test_decode_mismatch_lossy);
	RUN(test_decode_retune_bound);
	RUN(test_retune_budget);
	RUN(test_partial_budget);
	UNIT_MAIN_END();
}
