/* SPDX-License-Identifier: MIT */
/*
 * kcpx's native protocol (docs/PROTOCOL.md): the wire header and the BPF map values shared
 * by user/core/native.c and the XDP checks in bpf/lib/native.h. Every multi-byte field on
 * the wire is little-endian; the structs use fixed-width types with explicit padding and a
 * size check, so clang -target bpf and gcc agree on the layout.
 *
 * Datagram:
 *   0   hdr     struct kcpx_native_hdr (24 bytes, clear, covered by tag and AEAD)
 *   24  fec     seqid le32 | flag le16 (6 bytes, clear) when hdr.flags & KCPX_NF_FEC
 *   ..  sealed  AEAD ciphertext of the rest of the body
 *   end mac     16-byte AEAD tag (Poly1305 or GCM)
 * The 64-bit `tag` is SipHash-2-4 under the receiving direction's tag key over bytes
 * [0, 16) followed by the 6 FEC bytes when present: 16 or 22 bytes of message.
 */
#ifndef KCPX_NATIVE_H
#define KCPX_NATIVE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#include <linux/bpf.h> /* struct bpf_spin_lock */
#endif

#define KCPX_NATIVE_VERSION   1
#define KCPX_NATIVE_HDR	      24 /* outer header */
#define KCPX_NATIVE_FEC_HDR   6	 /* clear FEC header: seqid u32 | flag u16 */
#define KCPX_NATIVE_MAC	      16 /* AEAD tag */
#define KCPX_NATIVE_TAG_MSG   16 /* header bytes under the SipHash tag (+6 FEC bytes) */
#define KCPX_NATIVE_RESET_LEN (KCPX_NATIVE_HDR + 16) /* header, 16 random bytes */

/* hdr.type */
enum kcpx_native_type {
	KCPX_NT_DATA = 1,  /* session traffic: AEAD with the session key, replay window */
	KCPX_NT_INIT = 2,  /* handshake, client -> server: tag and AEAD under the PSK keys */
	KCPX_NT_RESP = 3,  /* handshake, server -> client */
	KCPX_NT_RESET = 4, /* server -> client: "no session with this sid here" (PROTOCOL.md §7b) */
};

/* hdr.flags */
#define KCPX_NF_FEC    0x01 /* the 6-byte FEC header follows the outer header in clear */
#define KCPX_NF_SERVER 0x02 /* sent by the server (the direction bit) */
#define KCPX_NF_AES    0x04 /* INIT: client offers AES-256-GCM; RESP: both use it */
#define KCPX_NF_KNOWN  0x07 /* any other bit set is a protocol error */

struct kcpx_native_hdr {
	__u8 version; /* KCPX_NATIVE_VERSION */
	__u8 type;    /* enum kcpx_native_type */
	__u8 flags;   /* KCPX_NF_* */
	__u8 rsvd;    /* 0 */
	__u32 sid;    /* session id, le32, chosen by the client; never 0 */
	__u64 ctr;    /* le64 packet counter of this direction (handshake: random) */
	__u64 tag;    /* le64 SipHash-2-4 of bytes [0, 16) (+ FEC header) */
};
_Static_assert(sizeof(struct kcpx_native_hdr) == KCPX_NATIVE_HDR, "kcpx_native_hdr layout");

/*
 * Anti-replay window (RFC 6479, as WireGuard does it): a ring of KCPX_REPLAY_WORDS 64-bit
 * words indexed by counter / 64. A counter is accepted when it is newer than `top`, or
 * within KCPX_REPLAY_WINDOW below it and its bit is still clear. The last word's worth of
 * bits is kept as slack so sliding never clears bits that are still inside the window.
 */
#define KCPX_REPLAY_WORDS  32
#define KCPX_REPLAY_BITS   (KCPX_REPLAY_WORDS * 64) /* 2048 */
#define KCPX_REPLAY_WINDOW (KCPX_REPLAY_BITS - 64)  /* 1984 packets */

struct kcpx_replay {
	__u64 top; /* highest counter accepted so far; all zero = none yet (0 is legal once) */
	__u64 bits[KCPX_REPLAY_WORDS];
};
_Static_assert(sizeof(struct kcpx_replay) == 8 + KCPX_REPLAY_WORDS * 8, "kcpx_replay layout");

/*
 * Value of the kcpx_nat_sess hash map (key: sid as the host-order __u32 read from the
 * wire on a little-endian machine). The daemon inserts it when a session's keys exist and
 * deletes it when the session dies; XDP only updates `win`. The tag key is the receive
 * direction's: a server holds the client->server key.
 */
/*
 * The peer's FEC shape as XDP learns it from the clear FEC headers of one session's
 * tag-checked shards (kcpx_fec_learn), kept in its kcpx_nat_sess entry under the lock.
 * kcptun numbers shards so that group g holds seqids g*n .. g*n+n-1, data first: a data
 * shard right after a parity shard (consecutive seqids) starts a group, a parity shard
 * right after a data shard is its first parity. Two adjacent groups measured alike, with
 * both starts on a multiple of n, make the shape used when none is; a shard whose flag
 * disagrees with its index under that shape (the peer re-tuned) unlearns it. Until then
 * ds = ps = 0 and XDP tracks no group of the session: it never judges a shard by our own
 * --datashard/--parityshard, which the peer need not share. Lost or reordered shards
 * only hide edges: a measurement across a missed edge spans whole groups (ds' = ds + k*n),
 * whose data count no real group reaches, so it can make no parity look unneeded, and
 * its first shard of the other kind unlearns it.
 */
#define KCPX_FEC_TRACK_MAX    256  /* ds + ps above this: not tracked */
#define KCPX_FEC_LEARN_GROUPS 2	   /* adjacent groups measured alike before use */
#define KCPX_FL_LAST	      0x01 /* `last` holds a shard */
#define KCPX_FL_LAST_DATA     0x02 /* ... and it was a data shard */
#define KCPX_FL_GSTART	      0x04 /* `gstart` holds a group start */
#define KCPX_FL_PSTART	      0x08 /* `pstart` holds that group's first parity */

struct kcpx_fec_shape {
	__u32 last;    /* seqid of the shard taken last */
	__u32 gstart;  /* seqid of the last group start seen */
	__u32 pstart;  /* seqid of the first parity of the group that starts at gstart */
	__u32 cend;    /* where the group measured last ended (its successor's start) */
	__u8 ds, ps;   /* the shape in use; 0: not learnt, no tracking */
	__u8 cds, cps; /* the shape measured last, and how many adjacent groups agreed */
	__u8 hits;
	__u8 st; /* KCPX_FL_* */
	__u8 pad[2];
};
_Static_assert(sizeof(struct kcpx_fec_shape) == 24, "kcpx_fec_shape layout");

/*
 * Take one tag-checked shard (data: flag 0xF1, else 0xF2) into the shape. One body for
 * XDP (bpf/lib/native.h, under the session's lock) and the unit test; constant work, no
 * memory beyond the session entry, so a key holder's crafted headers cost nothing more
 * than a shape that is never learnt (and XDP then drops none of that session's shards).
 */
static inline __attribute__((always_inline)) void kcpx_fec_learn(struct kcpx_fec_shape *f,
								 __u32 seqid, int data)
{
	__u32 ds, ps;

	if (f->ds && ((seqid % ((__u32)f->ds + f->ps) < f->ds) != !!data)) {
		f->ds = 0;
		f->ps = 0;
		f->hits = 0;
	}
	if ((f->st & KCPX_FL_LAST) && seqid == f->last + 1) {
		if (data && !(f->st & KCPX_FL_LAST_DATA)) {
			/* a group starts at seqid: measure the one that started at gstart */
			if ((f->st & (KCPX_FL_GSTART | KCPX_FL_PSTART)) ==
			    (KCPX_FL_GSTART | KCPX_FL_PSTART)) {
				ds = f->pstart - f->gstart;
				ps = seqid - f->pstart;
				if (ds && ps && ds < KCPX_FEC_TRACK_MAX &&
				    ps < KCPX_FEC_TRACK_MAX && ds + ps <= KCPX_FEC_TRACK_MAX &&
				    seqid % (ds + ps) == 0) {
					if (f->hits && f->cds == ds && f->cps == ps &&
					    f->gstart == f->cend) {
						if (f->hits < 255)
							f->hits++;
					} else {
						f->cds = (__u8)ds;
						f->cps = (__u8)ps;
						f->hits = 1;
					}
					f->cend = seqid;
					if (f->hits >= KCPX_FEC_LEARN_GROUPS && !f->ds) {
						f->ds = (__u8)ds;
						f->ps = (__u8)ps;
					}
				} else {
					f->hits = 0;
				}
			}
			f->gstart = seqid;
			f->st = (f->st | KCPX_FL_GSTART) & ~KCPX_FL_PSTART;
		} else if (!data && (f->st & KCPX_FL_LAST_DATA) && (f->st & KCPX_FL_GSTART)) {
			f->pstart = seqid;
			f->st |= KCPX_FL_PSTART;
		}
	}
	f->last = seqid;
	f->st = (f->st & ~KCPX_FL_LAST_DATA) | KCPX_FL_LAST | (data ? KCPX_FL_LAST_DATA : 0);
}

struct kcpx_native_sess {
	struct bpf_spin_lock lock; /* guards win and fec against XDP on other CPUs */
	__u8 dir_flags;		   /* KCPX_NF_SERVER when we are the client, else 0 */
	__u8 fec_track;		   /* 1: XDP learns the peer's FEC shape and tracks groups */
	__u8 pad[2];
	__u64 tag_key[2];	   /* SipHash key k0, k1 (little-endian halves of 16 bytes) */
	struct kcpx_fec_shape fec; /* XDP only (the daemon inserts it zeroed) */
	struct kcpx_replay win;
};
_Static_assert(sizeof(struct kcpx_native_sess) ==
		       8 + 16 + sizeof(struct kcpx_fec_shape) + sizeof(struct kcpx_replay),
	       "kcpx_native_sess layout");

/*
 * The kcpx_nat_cfg array map, key 0: the PSK-derived handshake tag key (checks INIT and
 * RESP packets, which no session exists for yet). `enabled` 0 makes the checks pass
 * everything through, so a loaded program with no keys yet changes nothing.
 */
struct kcpx_native_cfg {
	__u64 hs_tag_key[2];
	__u8 enabled;
	__u8 server;	/* 1: accept INIT, reject RESP; 0: the reverse */
	__u16 hs_rate;	/* handshake packets per second per source address (burst as many);
			 * 0: no limit */
	__u16 rst_rate; /* server, strict checks: DATA packets with an unknown sid passed on
			 * per second (all sources together, burst as many) so the daemon can
			 * answer with a RESET; the rest drop. 0: all drop */
	__u8 pad[2];
};
_Static_assert(sizeof(struct kcpx_native_cfg) == 24, "kcpx_native_cfg layout");

/* What the XDP checks did, one per-CPU array entry (kcpx_nat_stats, key 0). */
struct kcpx_native_xdp_stats {
	__u64 pass;	       /* data packets with a good tag and a fresh counter */
	__u64 pass_hs;	       /* handshake packets with a good tag */
	__u64 pass_off;	       /* checks disabled (no keys yet) */
	__u64 drop_short;      /* shorter than header (+ FEC header) + AEAD tag */
	__u64 drop_version;    /* version != KCPX_NATIVE_VERSION */
	__u64 drop_proto;      /* unknown type, unknown flags, reserved byte set, wrong direction */
	__u64 drop_session;    /* no kcpx_nat_sess entry for the sid */
	__u64 drop_tag;	       /* SipHash tag mismatch */
	__u64 drop_replay;     /* counter already seen inside the window */
	__u64 drop_old;	       /* counter older than the window */
	__u64 drop_fec_dup;    /* FEC shard already seen in its group */
	__u64 drop_fec_parity; /* parity shard of a group whose data shards all arrived */
	__u64 drop_hs_rate;    /* good handshake tag, but over cfg.hs_rate for its source */
	__u64 pass_kcptun;     /* not native (no live sid, no good handshake tag), passed on
				* because the port also speaks kcptun (--proto auto) */
	__u64 pass_reset;      /* strict server: DATA for no session, passed on under
				* cfg.rst_rate for the daemon to answer with a RESET */
};
_Static_assert(sizeof(struct kcpx_native_xdp_stats) == 15 * 8, "kcpx_native_xdp_stats layout");

/*
 * What a restarted strict (--proto kcpx) server lets through to userspace of the DATA
 * packets naming no session it has, a second, for all sources together: the daemon answers
 * each with a RESET (at most KCPX_EP_RESET_RATE a second to one address), so a client of
 * the old server learns of the restart at once. Well-formed forgeries cost the daemon no
 * more than this many lookups and SipHash RESETs a second (docs/SECURITY.md).
 */
#define KCPX_NATIVE_RST_RATE 1000

/* Handshake rate limit per source (kcpx_nat_hsrl, LRU hash): a token bucket. */
struct kcpx_native_rl_key {
	__u8 addr[16]; /* IPv6, or IPv4 in the first 4 bytes and zeros */
};

struct kcpx_native_rl {
	__u64 last_ns; /* bpf_ktime_get_ns() of the last refill */
	__u64 tokens;  /* in packet-nanoseconds: one packet costs 1e9 */
};

/*
 * The handshake token bucket, one body for XDP (bpf/lib/native.h) and userspace
 * (user/core/ratelimit.c): rate packets per second, burst as many. A source seen for the
 * first time starts full and spends one (kcpx_rl_fresh); kcpx_rl_spend refills by the time
 * passed, capped at one second so nothing overflows, then spends one if it can.
 */
#define KCPX_RL_COST 1000000000ULL
static inline __attribute__((always_inline)) void kcpx_rl_fresh(struct kcpx_native_rl *b,
								__u64 now_ns, __u32 rate)
{
	b->last_ns = now_ns;
	b->tokens = (__u64)(rate - 1) * KCPX_RL_COST;
}

static inline __attribute__((always_inline)) int kcpx_rl_spend(struct kcpx_native_rl *b,
							       __u64 now_ns, __u32 rate)
{
	__u64 dt = now_ns - b->last_ns;

	if (dt > KCPX_RL_COST)
		dt = KCPX_RL_COST;
	b->last_ns = now_ns;
	b->tokens += dt * rate;
	if (b->tokens > (__u64)rate * KCPX_RL_COST)
		b->tokens = (__u64)rate * KCPX_RL_COST;
	if (b->tokens < KCPX_RL_COST)
		return 0;
	b->tokens -= KCPX_RL_COST;
	return 1;
}

/*
 * FEC groups seen by XDP (kcpx_nat_fec, LRU hash): which shards of a group arrived and how
 * many of them were data shards, so parity nobody needs and duplicates die in XDP.
 * Updated without a lock: see bpf/lib/fecgrp.h for why a race is harmless. The key holds
 * the shape the group was cut by, so a peer that re-tunes never meets a group of the old
 * shape under the new numbering.
 */
struct kcpx_native_fec_key {
	__u32 sid;
	__u32 group; /* FEC seqid / (ds + ps) */
	__u8 ds, ps; /* the peer's shape (struct kcpx_fec_shape) */
	__u8 pad[2];
};
_Static_assert(sizeof(struct kcpx_native_fec_key) == 12, "kcpx_native_fec_key layout");

struct kcpx_native_fec_grp {
	__u64 seen[KCPX_FEC_TRACK_MAX / 64]; /* bit per shard index */
	__u32 data_seen;
	__u32 parity_seen; /* parity shards that passed (the first always does) */
};
_Static_assert(sizeof(struct kcpx_native_fec_grp) == 40, "kcpx_native_fec_grp layout");

#endif
