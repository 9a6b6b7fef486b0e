/* SPDX-License-Identifier: MIT */
/*
 * kcptun's Reed-Solomon FEC layer (WIRE.md §4), as kcp-go v5.6.1 (kcptun 20210922) does
 * it, with ISA-L doing the GF(2^8) work. I/O-free: bytes and `now` (ms) in, callbacks out.
 *
 * Wire form of a FEC body (what sits after the crypt header; all little-endian):
 *   data shard:    seqid u32 | 0x00F1 u16 | size u16 = 2 + kcp_len | KCP bytes
 *   parity shard:  seqid u32 | 0x00F2 u16 | RS parity over the data shards' bytes [6..)
 * seqid = group * (ds + ps) + index; data shards are indices 0..ds-1, parity ds..ds+ps-1.
 * The RS payload of a data shard is body[6..) (size field included), zero-padded inside
 * the coder only; a parity body is as long as the longest data body of its group.
 *
 * Both objects belong to one session and are not thread-safe.
 */
#ifndef KCPX_CORE_FEC_H
#define KCPX_CORE_FEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kcpx_snmp.h"

#define KCPX_FEC_HDR	    8	  /* seqid u32 | flag u16 | size u16 (data shards) */
#define KCPX_FEC_HDR_PARITY 6	  /* parity shards: RS bytes start here */
#define KCPX_FEC_DATA	    0xf1  /* flag of a data shard */
#define KCPX_FEC_PARITY	    0xf2  /* flag of a parity shard */
#define KCPX_FEC_MAX_BODY   1500  /* kcp-go mtuLimit: no body (shard) is longer */
#define KCPX_FEC_MAX_SHARDS 256	  /* ds + ps limit of the RS code */
#define KCPX_FEC_EXPIRE	    60000 /* ms an incomplete group waits in the decoder */

/* ---------------------------------------------------------------- encoder */

struct kcpx_fec_enc;

/*
 * Receives every shard to send, in order: each data shard right away, then the ps parity
 * shards right after the data shard that completes a group. body points at the FEC header
 * inside an encoder buffer with `headroom` writable bytes before it and `tailroom` after
 * it (so the session can seal the crypt header/trailer in place: dgram = body - headroom).
 * The buffer is the encoder's and is reused after emit returns.
 */
typedef void (*kcpx_fec_emit_fn)(void *user, uint8_t *body, size_t len, bool parity);

/*
 * ds, ps: --datashard, --parityshard. Only create an encoder when ds > 0 && ps > 0 (kcp-go
 * sends plain KCP otherwise). headroom/tailroom: kcpx_crypt_header()/_trailer() of the
 * session's crypt (at most 4096 each). Returns NULL if ds <= 0, ps <= 0, ds + ps > 256,
 * a room is too large, or out of memory.
 */
struct kcpx_fec_enc *kcpx_fec_enc_new(int ds, int ps, size_t headroom, size_t tailroom);
void kcpx_fec_enc_free(struct kcpx_fec_enc *e);

/*
 * One KCP output datagram (kcp, kcp_len) becomes the next data shard; emits it, and the
 * parity shards when it completes a group. kcp_len <= KCPX_FEC_MAX_BODY - KCPX_FEC_HDR,
 * else -EMSGSIZE and nothing is emitted. now stamps the group's first shard carrying
 * stream data (see kcpx_fec_enc_open); snmp is unused by the 20210922 format (kept for the newer
 * parity-skip rule) and may be NULL. Returns 0.
 */
int kcpx_fec_encode(struct kcpx_fec_enc *e, const uint8_t *kcp, size_t kcp_len, uint32_t now,
		    kcpx_fec_emit_fn emit, void *user, struct kcpx_snmp *snmp);

/*
 * FEC on a timer. A group only gets parity once ds data shards went out, so the last
 * packets before an idle gap (a request, a reply) would have none.
 * kcpx_fec_enc_open: true while the open group (data shards sent, no parity yet) holds one
 * that carries stream data, a KCP PUSH segment; *since is the `now` the first such shard
 * was encoded with. A group of ACK-only shards waits: losing an ACK delays nobody, and the
 * next data shard joins it. kcpx_fec_enc_flush closes the open group early: its ps
 * parity shards go out at once, at their usual seqids (group start + ds ..), computed as
 * if the data shards not sent were empty (all zero), and the unused data seqids are
 * skipped. On the wire that is an ordinary group that lost its tail, which kcp-go accepts
 * (it rebuilds once it holds ds shards); kcpx's decoder with kcpx_fec_dec_set_partial
 * rebuilds it from fewer. Returns the number of parity shards emitted (0: none open, or
 * the group gets no parity: kcpx_fec_enc_set_parity).
 */
bool kcpx_fec_enc_open(const struct kcpx_fec_enc *e, uint32_t *since);
int kcpx_fec_enc_flush(struct kcpx_fec_enc *e, kcpx_fec_emit_fn emit, void *user);

/*
 * Adaptive parity (core/fecadapt.h; kcpx native protocol only): from the next group on,
 * send only the first `parity` (clamped to [0, ps]) of its ps parity shards and skip the
 * seqids of the others, so the group layout stays that of ds/ps and a receiver sees a
 * group that lost its last parity shards. Takes effect at once between groups. With 0,
 * no RS work is done and groups are data shards only. kcpx_fec_enc_parity: this group's.
 */
void kcpx_fec_enc_set_parity(struct kcpx_fec_enc *e, int parity);
int kcpx_fec_enc_parity(const struct kcpx_fec_enc *e);

/* seqid the next shard will carry (tests, diagnostics); kcpx_fec_enc_set_next for tests of
 * the wrap: id is rounded down to a group start. */
uint32_t kcpx_fec_enc_next(const struct kcpx_fec_enc *e);
void kcpx_fec_enc_set_next(struct kcpx_fec_enc *e, uint32_t id);

/* ---------------------------------------------------------------- decoder */

struct kcpx_fec_dec;

/*
 * Receives KCP bytes to feed into ikcp input: first the data shard's own bytes
 * (recovered = false; body[8..len), the size field is not consulted, as kcp-go), then any
 * data shards rebuilt from parity (recovered = true; bytes r[2..size)). Rebuilt ones
 * should be input without RTT/window update (kcp-go's regular = false). kcp points into
 * the caller's body or decoder memory and is valid only during the call.
 */
typedef void (*kcpx_fec_recv_fn)(void *user, const uint8_t *kcp, size_t len, bool recovered);

/*
 * ds, ps: the local --datashard/--parityshard. A receiver accepts FEC whatever its own
 * settings: with ds <= 0 or ps <= 0 the decoder starts at 1/1 as kcp-go does, and in all
 * cases it re-tunes to the peer's ratio from the flag pattern (kcp-go's autoTune).
 * Returns NULL if ds + ps > 256 or out of memory.
 */
struct kcpx_fec_dec *kcpx_fec_dec_new(int ds, int ps);
void kcpx_fec_dec_free(struct kcpx_fec_dec *d);

/*
 * body: a decrypted datagram body starting at the FEC header (check kcpx_fec_is_fec()
 * first); now: ms clock. Counts into snmp (may be NULL), as kcp-go:
 *   InErrs          body shorter than 8 bytes (or longer than KCPX_FEC_MAX_BODY): dropped
 *   FECParityShards every parity shard received
 *   FECRecovered    every rebuilt shard handed to fn (kcp-go counts it when ikcp accepts
 *                   it; the session counts KCPInErrors for what ikcp rejects)
 *   FECErrs         a rebuilt shard whose size field is out of range (dropped)
 *   FECShortShards  a data shard pushed out of the full queue before its group completed
 * Returns the number of calls made to fn (>= 0), or -EBADMSG for a dropped body,
 * -EINVAL if the flag is neither 0xF1 nor 0xF2.
 */
int kcpx_fec_decode(struct kcpx_fec_dec *d, const uint8_t *body, size_t len, uint32_t now,
		    kcpx_fec_recv_fn fn, void *user, struct kcpx_snmp *snmp);

/*
 * Also rebuild groups closed early by a kcpx_fec_enc_flush() sender (off by default, which
 * is kcp-go's decoder exactly). When a group holds parity but fewer than ds shards, its
 * missing data shards are taken as lost ones followed by unsent (all-zero) ones: for
 * h = 0, 1, ... the lowest h missing are solved from h parity shards, the rest set to zero,
 * and the answer is kept only if the re-encoded parity matches every parity shard received
 * (so at least h + 1 are needed; a wrong guess is rejected, never fed to KCP). Bounded
 * work: tried as each parity shard arrives, for ds <= 64 and ps <= 16, h <= 3, and each
 * hypothesis spends a credit that only received shards earn (one each, at most
 * KCPX_FEC_PARTIAL_BURST banked): however shards are forged, partial decoding costs at
 * most one hypothesis (an RS rebuild and re-encode) per shard received. Rebuilt
 * all-zero shards (the unsent ones, size field 0) are then dropped without counting
 * FECErrs. Wire-neutral: it only changes what this receiver makes of what it got.
 */
void kcpx_fec_dec_set_partial(struct kcpx_fec_dec *d, bool on);

#define KCPX_FEC_PARTIAL_BURST 16

/*
 * Re-tuning to a new ratio builds a new RS code (about ds^3 work, tens of ms at 128+128):
 * after the first, at most one per KCPX_FEC_RETUNE_MS, so a peer (or a forger) flipping
 * flag patterns cannot make every packet pay for one. Counted in kcpx_fec_dec_stats.
 */
#define KCPX_FEC_RETUNE_MS 1000
/*
 * ... and all decoders of the process together (every session, every thread) make at
 * most KCPX_FEC_RETUNE_BUDGET re-tunes per second, so the cost of forged flag patterns
 * does not grow with the number of sessions (4,096 could otherwise ask for as many RS
 * codes a second). A decoder's first tuning is not counted (new sessions are bounded by
 * admission); one held back by the budget takes its shards at its current ratio, as one
 * held back by its own interval does, and tries again with a later shard.
 */
#define KCPX_FEC_RETUNE_BUDGET 8
struct kcpx_fec_dec_stats {
	uint64_t retunes, retunes_held;	      /* ratio changes made / put off by the rate */
	uint64_t retunes_budget;	      /* ... of those, by the process-wide budget */
	uint64_t hypotheses, partial_skipped; /* partial hypotheses tried / not, no credit */
	uint64_t rebuilds;		      /* kcp-go's case-2 reconstructions */
	uint64_t miscut; /* groups not rebuilt: a shard's flag disagrees with its index */
};
void kcpx_fec_dec_stats(const struct kcpx_fec_dec *d, struct kcpx_fec_dec_stats *st);

/* The current (possibly auto-tuned) ratio and queue length, for stats and tests. */
void kcpx_fec_dec_ratio(const struct kcpx_fec_dec *d, int *ds, int *ps);
size_t kcpx_fec_dec_queued(const struct kcpx_fec_dec *d);

/*
 * True if body carries a FEC header: u16 0x00F1 or 0x00F2 at body[4] (a plain KCP packet
 * has cmd 81..84 and frg there, which never collide). Note kcp-go drops any decrypted
 * body shorter than 24 bytes (IKCP_OVERHEAD) before looking at it, without counting;
 * the session should do the same before calling this or kcpx_fec_decode().
 */
bool kcpx_fec_is_fec(const uint8_t *body, size_t len);

/* ---------------------------------------------------------------- RS code */

/*
 * kcptun's systematic code matrix: rows (ds + ps) x ds, row-major, top ds rows identity,
 * parity rows from V * inv(top(V)) with V[r][c] = r^c over GF(2^8)/0x11D. out holds
 * (ds + ps) * ds bytes. Returns 0 or -EINVAL.
 */
int kcpx_fec_matrix(int ds, int ps, uint8_t *out);

/*
 * Plain RS over equal-length shards (klauspost's Encode / ReconstructData semantics, for
 * tests and benchmarks): shards[0..ds) data, shards[ds..ds+ps) parity, each len bytes.
 * reconstruct: present[i] tells which shards hold data; missing data shards are rebuilt
 * into their buffers (parity is not rebuilt). Returns 0, -EINVAL, or -EBADMSG when fewer
 * than ds shards are present.
 */
struct kcpx_rs;
struct kcpx_rs *kcpx_rs_new(int ds, int ps);
void kcpx_rs_free(struct kcpx_rs *rs);
int kcpx_rs_encode(struct kcpx_rs *rs, uint8_t **shards, size_t len);
int kcpx_rs_reconstruct(struct kcpx_rs *rs, uint8_t **shards, const bool *present, size_t len);

#endif
