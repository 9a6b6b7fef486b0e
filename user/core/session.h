/* SPDX-License-Identifier: MIT */
/*
 * One tunnel session, I/O-free: the kcptun stack glued together.
 *
 *   send:    smux frames -> snappy framing (unless nocomp) -> KCP -> FEC -> crypt -> xmit()
 *   receive: datagram -> crypt open -> FEC decode -> KCP -> snappy -> smux -> streams
 *
 * The owner hands datagrams to kcpx_session_input(), calls kcpx_session_pump() after its
 * streams were read or written (and after a batch of input), and kcpx_session_tick() once
 * kcpx_session_deadline() has passed. Sealed datagrams leave through ops->xmit.
 *
 * Memory follows the traffic: the session's 64 KiB staging buffers (smux output and its
 * compressed form while a pump runs, KCP output and the snappy reader's buffers while
 * smux has not taken their bytes yet) are blocks of cfg.chunks, held only while they hold
 * bytes; smux's stream buffers come from cfg.smux.pool. An owner with many sessions shares
 * both pools among them (a session without them makes private ones).
 */
#ifndef KCPX_CORE_SESSION_H
#define KCPX_CORE_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cc.h"
#include "core/smux.h"
#include "kcpx_snmp.h"

struct kcpx_crypt;
struct kcpx_pool;
struct kcpx_kcp;
struct kcpx_native;
struct kcpx_session;

struct kcpx_session_config {
	uint32_t conv;
	unsigned mtu; /* whole UDP payload, --mtu */
	unsigned sndwnd, rcvwnd;
	/* native with cc bbr: the send window may grow past sndwnd up to this many packets
	 * (kcp.h kcpx_kcp_set_wnd_grow); native: the receive window past rcvwnd, as much
	 * (kcpx_kcp_set_rcv_grow); 0: KCPX_KCP_WND_GROW_MAX, -1: neither grows */
	int maxwnd;
	int nodelay, interval, resend, nc;
	enum kcpx_cc_algo cc; /* congestion control (core/cc.h) */
	uint64_t ratelimit;   /* wire bytes/s per session, 0: none (cc bbr) */
	bool acknodelay;
	bool tlp, quickack, rto_hygiene; /* timing only: see kcp.h */
	int datashard, parityshard;
	bool fec_loss;	       /* native: parity follows the loss for a bulk too (not by need) */
	bool fec_fixed;	       /* native: always all parityshard parity (no adaptive parity) */
	unsigned fec_flush_ms; /* close a partial FEC group this long after it opened; 0: off */
	unsigned dup_small;    /* send KCP datagrams with data up to this long twice; 0: off */
	unsigned dup_gap_ms;   /* ... this far apart (0: 5 ms) */
	bool comp;
	struct kcpx_crypt *crypt; /* shared by the owner's sessions; not owned */
	bool native; /* kcpx's native protocol (crypt unused): see kcpx_session_set_native() */
	struct kcpx_smux_config smux;
	struct kcpx_pool *chunks; /* kcpx_session_chunk_block() blocks, not owned; NULL: own */
};

/* The block size a pool shared through kcpx_session_config.chunks must have. */
size_t kcpx_session_chunk_block(void);

/* A peer silent this long (or the smux keepalive timeout, if longer) while data waits
   for its ACK: the session is dead (kcp.h, kcpx_kcp_set_silent). */
#define KCPX_SESSION_GIVE_UP_MS 60000

struct kcpx_session_ops {
	void (*xmit)(void *user, const uint8_t *dgram, size_t len);
	void (*accept)(void *user, uint32_t sid);
	void (*readable)(void *user, uint32_t sid);
	void (*writable)(void *user, uint32_t sid);
	void (*refused)(void *user, uint32_t sid, unsigned n); /* smux SYNs over max_streams */
};

/* NULL when out of memory or the config is impossible (mtu too small for the headers, a
   pool of another block size). */
struct kcpx_session *kcpx_session_new(const struct kcpx_session_config *cfg,
				      const struct kcpx_session_ops *ops, void *user,
				      struct kcpx_snmp *snmp, uint32_t now);
void kcpx_session_free(struct kcpx_session *s);

/*
 * Decrypt a datagram in place and check it. On success body and blen give the FEC-or-KCP
 * body inside dgram and conv the KCP conversation id it names (0 when it names none, e.g.
 * a parity shard). Returns 0, or -EMSGSIZE/-EBADMSG (counted in snmp and dropped).
 */
int kcpx_session_open(struct kcpx_crypt *crypt, struct kcpx_snmp *snmp, uint8_t *dgram, size_t len,
		      uint8_t **body, size_t *blen, uint32_t *conv);
/* Feed an opened body (from kcpx_session_open); 0 or -errno (counted, dropped). */
int kcpx_session_input(struct kcpx_session *s, const uint8_t *body, size_t blen, uint32_t now);

/*
 * Native protocol (cfg.native): the session starts without keys and holds all output (pump
 * and tick do nothing, the deadline is KCPX_SESSION_HS_POLL ms away) until the handshake
 * hands it its kcpx_native, which the session then owns and frees. Header and trailer room
 * are sized for the native format, which is at least as large as any kcptun cipher's, so
 * a session still waiting may instead fall back to kcptun's format with a crypt.
 */
#define KCPX_SESSION_HS_POLL 100
void kcpx_session_set_native(struct kcpx_session *s, struct kcpx_native *n);
void kcpx_session_fallback(struct kcpx_session *s, struct kcpx_crypt *crypt);
/* True while a native session waits for its keys. */
bool kcpx_session_pending(const struct kcpx_session *s);
/*
 * Open a native datagram addressed to this session's sid in place (kcpx_native_open). On
 * success body/blen give the body; -EPROTO/-EBADMSG/-ESTALE are counted (InErrs, and
 * InCsumErrors for -EBADMSG) and the datagram is dropped; -ENOTCONN while pending.
 */
int kcpx_session_open_native(struct kcpx_session *s, uint8_t *dgram, size_t len, uint8_t **body,
			     size_t *blen);
/* The session's native state, NULL for kcptun format or while pending. */
struct kcpx_native *kcpx_session_native(struct kcpx_session *s);

/* Move data both ways as far as windows and buffers allow, then flush. */
void kcpx_session_pump(struct kcpx_session *s, uint32_t now);
void kcpx_session_tick(struct kcpx_session *s, uint32_t now);
uint32_t kcpx_session_deadline(const struct kcpx_session *s, uint32_t now);
/*
 * The pacer's µs clock (kcpx_kcp_set_clock_us): an owner that wakes at µs deadlines
 * gives it before pump/tick/input at the same instant as their `now`, and sleeps until
 * kcpx_session_deadline_us(): the same deadline, with the pacer's to the µs.
 */
void kcpx_session_set_clock_us(struct kcpx_session *s, uint64_t now_us);
uint64_t kcpx_session_deadline_us(const struct kcpx_session *s, uint32_t now);

/* Dead: smux keepalive timed out, or the peer broke smux or snappy framing. */
bool kcpx_session_dead(const struct kcpx_session *s);
const char *kcpx_session_dead_reason(const struct kcpx_session *s);
/*
 * For a dead reason that two ends configured differently cause, the likely cause as a
 * phrase to append to the log line (" (likely cause: ...)"), else "". The most common
 * kcptun support question is a tunnel that opens streams and closes them at once.
 */
const char *kcpx_session_hint(const char *why);
uint32_t kcpx_session_conv(const struct kcpx_session *s);
struct kcpx_smux *kcpx_session_smux(struct kcpx_session *s);

/* New smux keepalive settings (a reload): smux's interval and timeout, and the time a
 * silent peer with data owed is given (KCPX_SESSION_GIVE_UP_MS, or the timeout if longer). */
void kcpx_session_set_keepalive(struct kcpx_session *s, uint32_t keepalive_ms, uint32_t timeout_ms,
				uint32_t now);
struct kcpx_kcp *kcpx_session_kcp(struct kcpx_session *s);

/* n of this session's datagrams the host failed to send (full socket buffer or AF_XDP
 * TX ring): congestion for its controller, not path loss (kcpx_kcp_local_drop). */
void kcpx_session_local_drop(struct kcpx_session *s, uint32_t n, uint32_t now);
/* n datagrams meant for this session that the host dropped before reading them (a full
 * socket receive buffer or AF_XDP RX ring; the caller's share of them): between kcpx
 * ends told to the peer, whose controller takes them as congestion (kcpx_kcp_rx_dropped). */
void kcpx_session_rx_dropped(struct kcpx_session *s, uint32_t n);

/* FEC parity shards per group sent now and the configured ceiling (0, 0 without FEC):
 * below the ceiling when the native protocol's adaptive parity found little loss;
 * loss_ppm (may be NULL): its raw loss estimate. */
void kcpx_session_fec_parity(const struct kcpx_session *s, int *parity, int *ps,
			     uint32_t *loss_ppm);

/* The ratio the FEC decoder reads the peer's datagrams with: as configured until it
 * auto-tunes to what the peer sends (kcp-go). false: no decoder (no FEC either way). */
bool kcpx_session_fec_peer_ratio(const struct kcpx_session *s, int *ds, int *ps);

struct kcpx_session_stats {
	uint64_t bytes_in, bytes_out; /* stream payload through smux, both ways */
	uint64_t pkts_in, pkts_out;
	uint32_t last_rx; /* `now` of the last good datagram */
};
void kcpx_session_stats(const struct kcpx_session *s, struct kcpx_session_stats *st);

#endif
