/* SPDX-License-Identifier: MIT */
/*
 * The native protocol's XDP checks (docs/PROTOCOL.md), for the one XDP program attached to
 * the tunnel interface to include (bpf/kcpx.bpf.c does): it declares the maps below and
 * kcpx_native_check(), which judges one UDP payload already known to be the tunnel's,
 * strictly (--proto kcpx) or letting what may be kcptun's format pass (--proto auto);
 * kcpx_native_verify() is the strict form.
 *
 *   kcpx_nat_cfg    array[1] of struct kcpx_native_cfg: handshake tag key, role, on/off
 *   kcpx_nat_sess   hash sid -> struct kcpx_native_sess: receive tag key + replay window
 *   kcpx_nat_stats  per-CPU array[1] of struct kcpx_native_xdp_stats
 *   kcpx_nat_fec    LRU hash of FEC groups seen (bpf/lib/fecgrp.h)
 *   kcpx_nat_hsrl   LRU hash source address -> token bucket for handshake packets
 *   kcpx_nat_rst    array[1]: one token bucket for unknown-sid DATA a strict server
 *                   passes on so the daemon can answer with a RESET (cfg.rst_rate)
 *
 * The daemon fills kcpx_nat_cfg and kcpx_nat_sess (user/core/native.c builds the values,
 * user/core/endpoint.c hands them to `kcpx up` through the tunnel's backend hooks);
 * until cfg.enabled is set every payload passes untouched (pass_off). Order of checks,
 * cheapest first: length, version, type/flags/direction, session lookup, SipHash tag,
 * replay window, then FEC group tracking when the session has FEC. Only a packet with a
 * good tag may move the window or mark a FEC shard seen.
 */
#ifndef KCPX_BPF_LIB_NATIVE_H
#define KCPX_BPF_LIB_NATIVE_H

#include "kcpx_native.h"
#include "lib/fecgrp.h"
#include "lib/replay.h"
#include "lib/siphash.h"

#define KCPX_NAT_SESS_MAX 4096

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kcpx_native_cfg);
} kcpx_nat_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KCPX_NAT_SESS_MAX);
	__type(key, __u32);
	__type(value, struct kcpx_native_sess);
} kcpx_nat_sess SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kcpx_native_xdp_stats);
} kcpx_nat_stats SEC(".maps");

#define KCPX_NAT_RL_MAX 16384

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KCPX_NAT_RL_MAX);
	__type(key, struct kcpx_native_rl_key);
	__type(value, struct kcpx_native_rl);
} kcpx_nat_hsrl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kcpx_native_rl);
} kcpx_nat_rst SEC(".maps");

enum kcpx_nv_res {
	KCPX_NV_PASS = 0, /* hand it on (to AF_XDP or the kernel) */
	KCPX_NV_DROP = 1, /* XDP_DROP: counted by reason */
};

static __always_inline int kcpx_nv_drop(__u64 *ctr)
{
	if (ctr)
		__sync_fetch_and_add(ctr, 1);
	return KCPX_NV_DROP;
}

static __always_inline int kcpx_nv_pass(__u64 *ctr)
{
	if (ctr)
		__sync_fetch_and_add(ctr, 1);
	return KCPX_NV_PASS;
}

/*
 * Not a native packet that we know of. strict (--proto kcpx): drop it, counted by reason.
 * Otherwise (--proto auto) it may be a kcptun datagram, which looks random: pass it on.
 */
static __always_inline int kcpx_nv_reject(struct kcpx_native_xdp_stats *st, __u64 *ctr, bool strict)
{
	if (strict)
		return kcpx_nv_drop(ctr);
	return kcpx_nv_pass(st ? &st->pass_kcptun : NULL);
}

/*
 * Token bucket per source: rate packets per second, burst as many. No lock (LRU maps take
 * none): CPUs racing on one source may let a few extra packets through.
 */
static __always_inline bool kcpx_nv_rate_ok(const struct kcpx_native_rl_key *k, __u32 rate)
{
	struct kcpx_native_rl *b, fresh;
	__u64 now = bpf_ktime_get_ns();

	b = bpf_map_lookup_elem(&kcpx_nat_hsrl, k);
	if (!b) {
		kcpx_rl_fresh(&fresh, now, rate);
		bpf_map_update_elem(&kcpx_nat_hsrl, k, &fresh, BPF_ANY);
		return true;
	}
	return kcpx_rl_spend(b, now, rate);
}

/*
 * A well-formed DATA packet naming no session. strict: a strict server passes it on under
 * one bucket of cfg.rst_rate a second for all sources (the daemon answers with a RESET,
 * under its own per-address limit; PROTOCOL.md §7b), and drops the rest: a forger can
 * make the daemon do at most rst_rate lookups and RESETs a second. An all-zero bucket
 * (never used) refills to full on first use. Unlocked, as kcpx_nv_rate_ok: CPUs racing
 * may let one extra packet each through.
 */
static __always_inline int kcpx_nv_nosess(const struct kcpx_native_cfg *cfg,
					  struct kcpx_native_xdp_stats *st, bool strict)
{
	struct kcpx_native_rl *b;
	__u32 zero = 0;

	if (!strict || !cfg->server || !cfg->rst_rate)
		return kcpx_nv_reject(st, st ? &st->drop_session : NULL, strict);
	b = bpf_map_lookup_elem(&kcpx_nat_rst, &zero);
	if (!b || !kcpx_rl_spend(b, bpf_ktime_get_ns(), cfg->rst_rate))
		return kcpx_nv_drop(st ? &st->drop_session : NULL);
	return kcpx_nv_pass(st ? &st->pass_reset : NULL);
}

/*
 * Check a handshake packet (INIT on a server, RESP or RESET on a client) with the PSK tag key, then
 * the per-source rate (only packets with a good tag spend a source's tokens, so forged
 * ones cannot starve a real client; replayed real INITs can only spend their own).
 */
static __always_inline int kcpx_nv_hs(const struct kcpx_native_cfg *cfg,
				      struct kcpx_native_xdp_stats *st, const __u8 *h, __u32 len,
				      const struct kcpx_native_rl_key *src, bool strict)
{
	__u8 want_type = cfg->server ? KCPX_NT_INIT : KCPX_NT_RESP;
	__u8 want_dir = cfg->server ? 0 : KCPX_NF_SERVER;
	__u32 want_len = KCPX_NATIVE_HDR + 32 + KCPX_NATIVE_MAC;

	if (!cfg->server && h[1] == KCPX_NT_RESET) { /* same tag key, header only */
		want_type = KCPX_NT_RESET;
		want_len = KCPX_NATIVE_RESET_LEN;
	}
	if (h[1] != want_type || len != want_len || (h[2] & ~(KCPX_NF_SERVER | KCPX_NF_AES)) ||
	    (h[2] & KCPX_NF_SERVER) != want_dir)
		return kcpx_nv_reject(st, st ? &st->drop_proto : NULL, strict);
	if (kcpx_sip_hdr(cfg->hs_tag_key[0], cfg->hs_tag_key[1], h, NULL) != kcpx_sip_le64(h + 16))
		return kcpx_nv_reject(st, st ? &st->drop_tag : NULL, strict);
	if (src && cfg->hs_rate && !kcpx_nv_rate_ok(src, cfg->hs_rate))
		return kcpx_nv_drop(st ? &st->drop_hs_rate : NULL);
	return kcpx_nv_pass(st ? &st->pass_hs : NULL);
}

/*
 * payload: the first byte of the UDP payload, already checked to be the tunnel's; data_end
 * of the frame. len: the UDP payload length from the UDP header (the frame may carry
 * Ethernet padding beyond it). src: the packet's source address for the handshake rate
 * limit (on the stack), or NULL for none. strict: the port speaks only the native protocol
 * (--proto kcpx); when false (--proto auto) a packet is dropped only when it names a live
 * session (DATA with a known sid) or carries a good handshake tag, and everything else
 * passes (counted in pass_kcptun): it may be a kcptun datagram. A strict server passes
 * DATA for an unknown sid under cfg.rst_rate (pass_reset). Returns KCPX_NV_PASS or
 * KCPX_NV_DROP.
 */
static __always_inline int kcpx_native_check(void *payload, void *data_end, __u32 len,
					     const struct kcpx_native_rl_key *src, bool strict)
{
	__u32 zero = 0;
	struct kcpx_native_xdp_stats *st = bpf_map_lookup_elem(&kcpx_nat_stats, &zero);
	struct kcpx_native_cfg *cfg = bpf_map_lookup_elem(&kcpx_nat_cfg, &zero);
	struct kcpx_native_sess *s;
	/* zeroed: the FEC bytes are defined even where the verifier walks a path the compiler
	 * knows to be impossible (the flag tested twice), so no stale stack slot is read */
	__u8 h[KCPX_NATIVE_HDR + KCPX_NATIVE_FEC_HDR] = {};
	__u8 want_dir;
	__u32 sid, seqid = 0, flag = 0, ds, ps;
	__u64 ctr, tag;
	int res;

	if (!cfg || !cfg->enabled)
		return kcpx_nv_pass(st ? &st->pass_off : NULL);
	if (len < KCPX_NATIVE_HDR + KCPX_NATIVE_MAC || payload + KCPX_NATIVE_HDR > data_end)
		return kcpx_nv_reject(st, st ? &st->drop_short : NULL, strict);
	__builtin_memcpy(h, payload, KCPX_NATIVE_HDR);
	if (h[0] != KCPX_NATIVE_VERSION)
		return kcpx_nv_reject(st, st ? &st->drop_version : NULL, strict);
	if (h[3])
		return kcpx_nv_reject(st, st ? &st->drop_proto : NULL, strict);
	if (h[1] != KCPX_NT_DATA)
		return kcpx_nv_hs(cfg, st, h, len, src, strict);

	want_dir = cfg->server ? 0 : KCPX_NF_SERVER;
	if ((h[2] & ~(KCPX_NF_FEC | KCPX_NF_SERVER)) || (h[2] & KCPX_NF_SERVER) != want_dir)
		return kcpx_nv_reject(st, st ? &st->drop_proto : NULL, strict);
	if (h[2] & KCPX_NF_FEC) {
		if (len < KCPX_NATIVE_HDR + KCPX_NATIVE_FEC_HDR + KCPX_NATIVE_MAC ||
		    payload + KCPX_NATIVE_HDR + KCPX_NATIVE_FEC_HDR > data_end)
			return kcpx_nv_reject(st, st ? &st->drop_short : NULL, strict);
		__builtin_memcpy(h + KCPX_NATIVE_HDR, payload + KCPX_NATIVE_HDR,
				 KCPX_NATIVE_FEC_HDR);
	}
	sid = (__u32)h[4] | (__u32)h[5] << 8 | (__u32)h[6] << 16 | (__u32)h[7] << 24;
	s = bpf_map_lookup_elem(&kcpx_nat_sess, &sid);
	if (!s)
		return kcpx_nv_nosess(cfg, st, strict);
	tag = kcpx_sip_hdr(s->tag_key[0], s->tag_key[1], h,
			   (h[2] & KCPX_NF_FEC) ? h + KCPX_NATIVE_HDR : NULL);
	if (tag != kcpx_sip_le64(h + 16))
		return kcpx_nv_drop(st ? &st->drop_tag : NULL);
	ctr = kcpx_sip_le64(h + 8);
	if (h[2] & KCPX_NF_FEC) {
		seqid = (__u32)h[24] | (__u32)h[25] << 8 | (__u32)h[26] << 16 | (__u32)h[27] << 24;
		flag = (__u32)h[28] | (__u32)h[29] << 8;
	}
	bpf_spin_lock(&s->lock);
	res = kcpx_rp_update(&s->win, ctr);
	/* only a shard with a fresh counter teaches the shape, and only a 0xF1/0xF2 one */
	if (res != KCPX_RP_REPLAY && res != KCPX_RP_OLD && s->fec_track && (h[2] & KCPX_NF_FEC) &&
	    (flag == KCPX_FG_DATA || flag == KCPX_FG_PARITY))
		kcpx_fec_learn(&s->fec, seqid, flag == KCPX_FG_DATA);
	ds = s->fec.ds;
	ps = s->fec.ps;
	bpf_spin_unlock(&s->lock);
	if (res == KCPX_RP_REPLAY)
		return kcpx_nv_drop(st ? &st->drop_replay : NULL);
	if (res == KCPX_RP_OLD)
		return kcpx_nv_drop(st ? &st->drop_old : NULL);
	if ((h[2] & KCPX_NF_FEC) && s->fec_track) {
		res = kcpx_fg_track(sid, seqid, flag, ds, ps);
		if (res == KCPX_FG_DUP)
			return kcpx_nv_drop(st ? &st->drop_fec_dup : NULL);
		if (res == KCPX_FG_UNNEEDED)
			return kcpx_nv_drop(st ? &st->drop_fec_parity : NULL);
	}
	return kcpx_nv_pass(st ? &st->pass : NULL);
}

/* The strict checks (--proto kcpx): every packet that is not good native traffic drops. */
static __always_inline int kcpx_native_verify(void *payload, void *data_end, __u32 len,
					      const struct kcpx_native_rl_key *src)
{
	return kcpx_native_check(payload, data_end, len, src, true);
}

#endif
