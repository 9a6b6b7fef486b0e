// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the FEC decoder (and, through it, the RS reconstruction).
 *
 * Input: mode u8 | ps-1 u8 | records of  len u16 LE | dt u8 | body[len]
 *   mode: bit7 partial decoding on; ds - 1 = the low 7 bits (ds 1..128, ps 1..128, so
 *   large ratios run; ds + ps <= 256 always).
 *   Part 1: every record is handed to a decoder as a received body (garbage welcome),
 *           time advancing by dt * 500 ms; it must never crash, leak or overrun, and
 *           its work stays within the bounds of fec.h (re-tunes, hypotheses).
 *   Part 2: the record bodies become KCP packets for an encoder; its shards go to a
 *           second decoder, each group losing up to ps shards (chosen by dt bits).
 *           Every KCP packet must come out intact, or the target aborts.
 *   Part 3 (partial on, ds <= 64, ps <= 16): groups closed early by
 *           kcpx_fec_enc_flush() after 1 + dt % ds packets, losing up to min(ps-1, 3)
 *           of their data shards; whatever the decoder hands on must be one of the
 *           packets, byte for byte (a wrong hypothesis must never get through).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/fec.h"
#include "core/util.h"
#include "fuzz_asan.h"

#define MAXREC 64

struct rec {
	const uint8_t *p;
	size_t len;
	uint8_t dt;
};

struct rt {
	struct rec *recs;
	int nrec;
	bool seen[MAXREC];
	/* shards of the current group, held back until the group is done */
	uint8_t grp[256][KCPX_FEC_MAX_BODY];
	size_t glen[256];
	int gn;
};

static void sink(void *user, const uint8_t *kcp, size_t len, bool recovered)
{
	volatile uint8_t x = 0;

	(void)user;
	(void)recovered;
	for (size_t i = 0; i < len; i++) /* touch every byte: ASan checks the bounds */
		x ^= kcp[i];
	(void)x;
}

static void check_recv(void *user, const uint8_t *kcp, size_t len, bool recovered)
{
	struct rt *t = user;
	uint32_t id;

	(void)recovered;
	/* part 2 packets are: id u32 | body of record id */
	if (len < 4)
		abort();
	id = kcpx_get_le32(kcp);
	if (id >= (uint32_t)t->nrec || len != 4 + t->recs[id].len ||
	    memcmp(kcp + 4, t->recs[id].p, t->recs[id].len))
		abort();
	t->seen[id] = true;
}

static void keep(void *user, uint8_t *body, size_t len, bool parity)
{
	struct rt *t = user;

	(void)parity;
	memcpy(t->grp[t->gn], body, len);
	t->glen[t->gn++] = len;
}

/* a fresh round trip over recs: t emptied (up to its shard buffers), a ds/ps pair */
static void rt_start(struct rt *t, struct rec *recs, int nrec, int ds, int ps,
		     struct kcpx_fec_enc **e, struct kcpx_fec_dec **d)
{
	memset(t, 0, offsetof(struct rt, grp));
	t->recs = recs;
	t->nrec = nrec;
	*e = kcpx_fec_enc_new(ds, ps, 0, 0);
	*d = kcpx_fec_dec_new(ds, ps);
	if (!*e || !*d)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rt t;
	struct rec recs[MAXREC];
	struct kcpx_snmp snmp = { 0 };
	struct kcpx_fec_dec *d;
	struct kcpx_fec_enc *e;
	int ds, ps, nrec = 0;
	uint32_t now = 0;
	size_t off = 2;

	bool partial;

	if (size < 2)
		return 0;
	partial = data[0] & 0x80;
	ds = 1 + (data[0] & 0x7f);
	ps = 1 + data[1] % 128;
	while (off + 3 <= size && nrec < MAXREC) {
		size_t len = KCPX_MIN((size_t)kcpx_get_le16(data + off), size - off - 3);

		len = KCPX_MIN(len, (size_t)KCPX_FEC_MAX_BODY - 4 - KCPX_FEC_HDR);
		recs[nrec].dt = data[off + 2];
		recs[nrec].p = data + off + 3;
		recs[nrec].len = len;
		nrec++;
		off += 3 + len;
	}

	/* part 1: raw bodies into a decoder */
	d = kcpx_fec_dec_new(ds, ps);
	if (!d)
		abort();
	kcpx_fec_dec_set_partial(d, partial);
	for (int i = 0; i < nrec; i++) {
		now += recs[i].dt * 500u;
		if (kcpx_fec_is_fec(recs[i].p, recs[i].len))
			kcpx_fec_decode(d, recs[i].p, recs[i].len, now, sink, NULL, &snmp);
	}
	{
		struct kcpx_fec_dec_stats st;

		kcpx_fec_dec_stats(d, &st);
		/* one re-tune may happen at once, then one per KCPX_FEC_RETUNE_MS */
		if (st.retunes > 1 + (uint64_t)now / KCPX_FEC_RETUNE_MS + 1)
			abort();
		if (st.hypotheses > (uint64_t)nrec + KCPX_FEC_PARTIAL_BURST)
			abort();
	}
	kcpx_fec_dec_free(d);

	/* part 2: encode, lose up to ps per group, decode, everything must arrive */
	rt_start(&t, recs, nrec, ds, ps, &e, &d);
	for (int i = 0; i < nrec; i++) {
		uint8_t kcp[KCPX_FEC_MAX_BODY];

		kcpx_put_le32(kcp, (uint32_t)i);
		memcpy(kcp + 4, recs[i].p, recs[i].len);
		kcpx_fec_encode(e, kcp, 4 + recs[i].len, 0, keep, &t, NULL);
		if (t.gn == ds + ps || i == nrec - 1) {
			/* drop the shards whose bit is set in the group's first dt, at most ps */
			unsigned mask = recs[i].dt, lost = 0;

			for (int k = 0; k < t.gn; k++) {
				if (k < 8 && (mask >> k & 1) && lost < (unsigned)ps &&
				    t.gn == ds + ps) {
					lost++;
					continue;
				}
				kcpx_fec_decode(d, t.grp[k], t.glen[k], 0, check_recv, &t, &snmp);
			}
			t.gn = 0;
		}
	}
	for (int i = 0; i < nrec; i++)
		if (!t.seen[i])
			abort();
	kcpx_fec_enc_free(e);
	kcpx_fec_dec_free(d);

	/* part 3: groups closed early, partial decoding; never a wrong packet */
	if (!partial || ds > 64 || ps > 16)
		return 0;
	rt_start(&t, recs, nrec, ds, ps, &e, &d);
	kcpx_fec_dec_set_partial(d, true);
	for (int i = 0, k = 0; i < nrec; i++) {
		uint8_t kcp[KCPX_FEC_MAX_BODY];
		int want = 1 + recs[i].dt % ds; /* this group closes after `want` packets */

		kcpx_put_le32(kcp, (uint32_t)i);
		memcpy(kcp + 4, recs[i].p, recs[i].len);
		kcpx_fec_encode(e, kcp, 4 + recs[i].len, 0, keep, &t, NULL);
		k++;
		if (k >= want || i == nrec - 1) {
			unsigned mask = recs[i].dt, lost = 0;
			unsigned maxlost = KCPX_MIN((unsigned)ps - 1, 3u);

			kcpx_fec_enc_flush(e, keep, &t);
			for (int j = 0; j < t.gn; j++) {
				bool data_shard = kcpx_get_le16(t.grp[j] + 4) == KCPX_FEC_DATA;

				if (data_shard && j < 8 && (mask >> j & 1) && lost < maxlost) {
					lost++;
					continue;
				}
				kcpx_fec_decode(d, t.grp[j], t.glen[j], 0, check_recv, &t, &snmp);
			}
			t.gn = 0;
			k = 0;
		}
	}
	kcpx_fec_enc_free(e);
	kcpx_fec_dec_free(d);
	return 0;
}
