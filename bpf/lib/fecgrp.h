/* SPDX-License-Identifier: MIT */
/*
 * FEC group tracking for the native protocol's XDP checks: a packet whose tag and counter
 * were good carries its FEC header in clear (seqid, flag), so XDP can tell which shard of
 * which group it is. Parity of a group whose data shards all arrived is useless to the
 * receiver, and a shard seen twice (e.g. a --dupsmall copy whose original arrived) is too:
 * both are dropped before they cost a copy to userspace and an AEAD open.
 *
 * The shape (ds + ps per group) is the peer's, learnt per session from the shard headers
 * (kcpx_fec_learn in kcpx_native.h): never our own --datashard/--parityshard, which the
 * peer need not share; until it is learnt, and again once the peer re-tunes, nothing of
 * the session is tracked or dropped here.
 *
 * XDP marks a shard seen before the daemon holds it: a shard lost between XDP and the
 * daemon (AF_XDP RX ring full) would make a group look complete when it is not. So the
 * first parity shard of every group always passes (the daemon can rebuild one such loss
 * from it); only the later ones of a complete group are dropped as unneeded.
 *
 * Only tag-checked packets reach this (the FEC header is under the tag), so an off-path
 * attacker cannot mark shards as seen. The map value is updated without a lock (spin
 * locks are not allowed in LRU maps and fetch-atomics need -mcpu=v3): two CPUs racing on
 * one group can at worst let a duplicate or an unneeded parity shard through, which the
 * userspace FEC decoder handles as it always does. A session's packets normally arrive on
 * one RX queue, hence one CPU.
 */
#ifndef KCPX_BPF_LIB_FECGRP_H
#define KCPX_BPF_LIB_FECGRP_H

#include "kcpx_native.h"

#define KCPX_NAT_FEC_MAX 8192 /* groups tracked at once, all sessions (LRU) */
#define KCPX_FG_DATA	 0xf1 /* kcptun's FEC flags */
#define KCPX_FG_PARITY	 0xf2

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KCPX_NAT_FEC_MAX);
	__type(key, struct kcpx_native_fec_key);
	__type(value, struct kcpx_native_fec_grp);
} kcpx_nat_fec SEC(".maps");

enum kcpx_fg_res {
	KCPX_FG_PASS = 0,
	KCPX_FG_DUP,	  /* this shard of this group was seen already */
	KCPX_FG_UNNEEDED, /* parity, and every data shard of the group arrived */
};

/* seqid, flag: the 6 clear FEC bytes; ds, ps: the peer's shape as learnt (0: unknown). */
static __always_inline int kcpx_fg_track(__u32 sid, __u32 seqid, __u32 flag, __u32 ds, __u32 ps)
{
	struct kcpx_native_fec_key k = {};
	struct kcpx_native_fec_grp *g, fresh = {};
	__u32 n = ds + ps, idx;
	__u64 bit;
	int res = KCPX_FG_PASS;

	if (!ds || !ps || n > KCPX_FEC_TRACK_MAX)
		return KCPX_FG_PASS;
	k.sid = sid;
	k.group = seqid / n;
	k.ds = (__u8)ds;
	k.ps = (__u8)ps;
	idx = seqid - k.group * n;
	/* a flag that disagrees with the index: not ours to judge, userspace will */
	if ((flag == KCPX_FG_DATA) != (idx < ds) ||
	    (flag != KCPX_FG_DATA && flag != KCPX_FG_PARITY))
		return KCPX_FG_PASS;
	g = bpf_map_lookup_elem(&kcpx_nat_fec, &k);
	if (!g) {
		bpf_map_update_elem(&kcpx_nat_fec, &k, &fresh, BPF_NOEXIST);
		g = bpf_map_lookup_elem(&kcpx_nat_fec, &k);
		if (!g)
			return KCPX_FG_PASS;
	}
	bit = 1ULL << (idx & 63);
	if (g->seen[(idx / 64) & (KCPX_FEC_TRACK_MAX / 64 - 1)] & bit)
		return KCPX_FG_DUP;
	if (idx >= ds && g->data_seen >= ds && g->parity_seen)
		return KCPX_FG_UNNEEDED; /* not marked: it never reached the daemon */
	g->seen[(idx / 64) & (KCPX_FEC_TRACK_MAX / 64 - 1)] |= bit;
	if (idx < ds)
		g->data_seen++;
	else
		g->parity_seen++;
	return res;
}

#endif
