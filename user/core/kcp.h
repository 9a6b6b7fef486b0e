/* SPDX-License-Identifier: MIT */
/*
 * KCP ARQ engine, wire-compatible with kcp-go (kcptun's library).
 *
 * I/O-free: datagram bodies come in through kcpx_kcp_input(), bytes go out through the
 * output callback, time is passed in as a 32-bit millisecond clock that may wrap. One
 * output() call carries at most mtu bytes of whole KCP segments (24-byte header + data),
 * packed in the order ACKs, WASK, WINS, PUSH.
 *
 * Driving it (as kcp-go's session does): after each write call send() then flush();
 * hand every datagram to input(); call update() when check()'s deadline has passed.
 *
 * Internals are sized for large windows: the send and receive buffers are rings indexed
 * by sn that grow on demand (an engine pays for the span it holds, not for its windows),
 * segments come from a per-engine pool, and no per-packet work scans the window (see
 * kcp.c for the invariants).
 */
#ifndef KCPX_CORE_KCP_H
#define KCPX_CORE_KCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/cc.h"

#define KCPX_KCP_OVERHEAD 24
#define KCPX_KCP_CMD_PUSH 81
#define KCPX_KCP_CMD_ACK  82
#define KCPX_KCP_CMD_WASK 83
#define KCPX_KCP_CMD_WINS 84

#define KCPX_KCP_RTO_NDL 30    /* minimum RTO with nodelay */
#define KCPX_KCP_RTO_MIN 100   /* minimum RTO without nodelay */
#define KCPX_KCP_RTO_DEF 200   /* RTO before the first RTT sample */
#define KCPX_KCP_RTO_MAX 60000 /* upper bound of the computed RTO */

#define KCPX_KCP_MTU_DEF      1400
#define KCPX_KCP_WND_DEF      32
#define KCPX_KCP_WND_MAX      65535 /* the wire's wnd field is 16 bits */
#define KCPX_KCP_INTERVAL_DEF 100

struct kcpx_snmp;
struct kcpx_kcp;

typedef void (*kcpx_kcp_output_fn)(const uint8_t *buf, size_t len, void *user);

/*
 * snmp may be NULL; the engine adds (relaxed atomics, once per call) to InSegs OutSegs
 * RetransSegs FastRetransSegs EarlyRetransSegs LostSegs RepeatSegs KCPInErrors, as kcp-go.
 * Defaults as ikcp/kcp-go: mtu 1400, windows 32/32, interval 100, nodelay 0, resend 0,
 * nc 0, and (kcptun) stream mode on. Returns NULL when out of memory.
 */
struct kcpx_kcp *kcpx_kcp_new(uint32_t conv, kcpx_kcp_output_fn output, void *user,
			      struct kcpx_snmp *snmp);
void kcpx_kcp_free(struct kcpx_kcp *kcp);
uint32_t kcpx_kcp_conv(const struct kcpx_kcp *kcp);

/* Bytes one output() may carry, 24-byte headers included; mss = mtu - 24.
 * 0, -EINVAL (mtu < 25 or > 65535) or -ENOMEM. */
int kcpx_kcp_set_mtu(struct kcpx_kcp *kcp, unsigned mtu);
unsigned kcpx_kcp_mss(const struct kcpx_kcp *kcp);

/* As ikcp_nodelay(): a negative argument leaves that setting alone; interval is clamped
 * to [10, 5000]; nodelay != 0 sets the minimum RTO to 30 ms (else 100). */
void kcpx_kcp_set_nodelay(struct kcpx_kcp *kcp, int nodelay, int interval, int resend, int nc);
/* 0 leaves a window alone; values are clamped to KCPX_KCP_WND_MAX. */
void kcpx_kcp_set_wndsize(struct kcpx_kcp *kcp, unsigned sndwnd, unsigned rcvwnd);
void kcpx_kcp_set_stream(struct kcpx_kcp *kcp, bool stream);  /* default true */
void kcpx_kcp_set_ack_nodelay(struct kcpx_kcp *kcp, bool on); /* flush ACKs at once on input */

/*
 * Timing options of issue 7 (tail latency). All off by default, which is kcp-go's
 * behaviour; none changes the wire format, so they work against stock kcptun too.
 *  - tlp: tail-loss probe. When the newest unacknowledged segment has nothing sent
 *    after it and has waited srtt + max(rttvar, interval / 2), send it once more
 *    instead of waiting for the RTO (RACK-TLP's idea). Counted in RetransSegs only.
 *  - quickack: ACK at once (ACK-only flush from input) when a PUSH opens a gap, fills
 *    one, repeats data already held, or is one of the first two out-of-order arrivals
 *    behind a gap, instead of at the next interval.
 *  - rto_hygiene: RTO = srtt + max(interval, min(4 * rttvar, srtt)), so at most
 *    2 * srtt + interval (bounded by [minrto, 60000]); a segment's backoff stops at
 *    2 * RTO instead of growing by one RTO per retransmit.
 */
void kcpx_kcp_set_tlp(struct kcpx_kcp *kcp, bool on);
void kcpx_kcp_set_quickack(struct kcpx_kcp *kcp, bool on);
void kcpx_kcp_set_rto_hygiene(struct kcpx_kcp *kcp, bool on);

/*
 * A peer that answered and then went silent (issue 13; off by default = kcp-go, which
 * resends every segment on its RTO for ever). With give_up_ms > 0: once the oldest
 * unacknowledged segment was sent KCPX_KCP_SILENT_XMIT times and nothing at all came
 * from the peer for max(KCPX_KCP_SILENT_MS, 4 * RTO) (counted from the later of the
 * last input and the moment data began to wait), the engine is *silent*: it sends no
 * new data, no TLP, no other retransmission, only that oldest segment as a probe,
 * doubling the gap from 2 * RTO up to KCPX_KCP_SILENT_PROBE_MAX ms. Any input from the
 * peer ends it and every unacknowledged segment is due again at once. Silent for
 * give_up_ms: kcpx_kcp_gave_up() turns true (the owner closes the session). So a dead
 * path gets about four windows and then one segment per probe gap, not a window per
 * 2 * RTO for as long as the owner keeps the session.
 */
#define KCPX_KCP_SILENT_XMIT	  3
#define KCPX_KCP_SILENT_MS	  300
#define KCPX_KCP_SILENT_PROBE_MAX 2000
void kcpx_kcp_set_silent(struct kcpx_kcp *kcp, uint32_t give_up_ms);
bool kcpx_kcp_silent(const struct kcpx_kcp *kcp);
bool kcpx_kcp_gave_up(const struct kcpx_kcp *kcp);

/*
 * Congestion control (cc.h, docs/CONGESTION.md). The engine starts with KCPX_CC_OFF, which
 * with nc behaves as kcp-go; KCPX_CC_KCP is ikcp's cwnd; KCPX_CC_BBR paces every PUSH and
 * holds new data to the controller's inflight cap (the windows stay limits too). Sender
 * side only: the wire format does not change. -EBUSY once data was queued or sent.
 */
int kcpx_kcp_set_cc(struct kcpx_kcp *kcp, enum kcpx_cc_algo algo, uint32_t now);
/* What one segment costs on the wire beyond its KCP bytes: hdr bytes of datagram headers,
 * then times num/den (FEC: (data + parity) / data). Defaults 0, 1/1. May change while
 * segments are in flight (adaptive FEC): each keeps the charge it got its sn with. */
void kcpx_kcp_set_wire_cost(struct kcpx_kcp *kcp, uint32_t hdr, uint32_t num, uint32_t den);
/* Cap on the pacing rate in wire bytes per second (KCPX_CC_BBR); 0 removes it. */
void kcpx_kcp_set_ratelimit(struct kcpx_kcp *kcp, uint64_t bytes_per_s);
/*
 * Let the send window follow the controller (KCPX_CC_BBR only; max 0: off, the default):
 * the effective window is the larger of the configured one and the controller's
 * inflight cap (2 x its BDP estimate) in full segments, at most max segments (or the
 * configured window, if larger). The peer's advertised window still limits what
 * is sent. Only the sender's own buffering grows: nothing on the wire changes.
 */
#define KCPX_KCP_WND_GROW_MAX 4096
void kcpx_kcp_set_wnd_grow(struct kcpx_kcp *kcp, unsigned max);
/*
 * Let the receive window grow past the configured one (max 0: off, the default, and back
 * to the configured window): on a long path (holes take 100 ms or more to repair), or
 * while ARQ carries the loss (kcpx_kcp_set_arq), it doubles, up to max segments,
 * whenever what arrived past a hole spans half of it (kcp.c rcv_grow), and never
 * shrinks. Only for a peer that is kcpx: the wire does not change (a larger wnd field), but stock kcptun never sees a
 * window larger than the one it was configured to expect. The receive ring behind it
 * grows on demand in any case (16 bytes per segment of span held).
 */
void kcpx_kcp_set_rcv_grow(struct kcpx_kcp *kcp, unsigned max);
/*
 * ARQ carries the loss (the owner's choice, between kcpx ends; session.c): for the sender,
 * it sends no FEC parity now (fecadapt.h); for the receiver, its peer sends next to none.
 * A loss then holds the window a round trip until its resend lands, on any path, so the
 * sender's grown window spans what was acknowledged past holes and the receive window
 * grows past holes as on a long path (kcp.c snd_wnd_eff, rcv_grow). Off by default.
 */
void kcpx_kcp_set_arq(struct kcpx_kcp *kcp, bool snd, bool rcv);
/* The receive window in effect (the configured one, or more: kcpx_kcp_set_rcv_grow). */
unsigned kcpx_kcp_rcvwnd(const struct kcpx_kcp *kcp);
struct kcpx_kcp_cc_info {
	enum kcpx_cc_algo algo;
	enum kcpx_cc_state state;
	uint64_t pacing_rate, btl_bw;	 /* wire bytes/s */
	uint32_t min_rtt;		 /* ms */
	uint64_t inflight, inflight_cap; /* wire bytes */
	uint32_t loss_ppm;		 /* random-loss estimate */
	uint64_t local_drops;		 /* datagrams the host failed to send */
	uint32_t rx_drops;   /* incoming datagrams the host dropped (kcpx_kcp_rx_dropped) */
	uint64_t peer_drops; /* datagrams the peer reported it dropped before reading them */
	uint32_t rounds;     /* round trips the controller counted */
	enum kcpx_cc_exit startup_exit; /* what ended STARTUP, at which estimate */
	uint64_t startup_exit_bw;	/* wire bytes/s */
};
void kcpx_kcp_cc_info(const struct kcpx_kcp *kcp, struct kcpx_kcp_cc_info *info);
/* n datagrams of this engine that the host failed to send (socket buffer or AF_XDP ring
 * full): fed to the controller as congestion (kcpx_cc_on_local_drop), and the losses they
 * cause are kept out of the loss counts (cc bbr; no-op otherwise). */
void kcpx_kcp_local_drop(struct kcpx_kcp *kcp, uint32_t now, uint32_t n);
/*
 * Receive drops. n incoming datagrams of this engine that the host dropped before the
 * engine read them (a full socket receive buffer, a full AF_XDP RX ring): they are the
 * sender's congestion, and only the peer can tell it. With the drop report on (between
 * kcpx ends: kcpx_kcp_set_drop_report) the running total goes to the peer in a WINS
 * segment with a payload, which any KCP receiver skips:
 *
 *   KCP header: cmd WINS (84), frg 0, wnd and una current, ts 0, sn 0, len 8
 *   payload:    u8 kind 1 (receive drops), 3 bytes 0, le32 running total
 *
 * A receiver takes only len 8 with kind 1 (any other WINS payload is skipped as
 * before). The sender's controller takes the count like a local drop (congestion of
 * the path's last queue, kcpx_cc_on_peer_drop), and the losses it explains are kept out
 * of the loss counts. Sent with the next flush, three copies per new total.
 */
#define KCPX_KCP_DROP_REPORT_LEN  8
#define KCPX_KCP_DROP_REPORT_KIND 1
void kcpx_kcp_rx_dropped(struct kcpx_kcp *kcp, uint32_t n);
void kcpx_kcp_set_drop_report(struct kcpx_kcp *kcp, bool on);
enum kcpx_cc_state kcpx_kcp_cc_state(const struct kcpx_kcp *kcp);
/* cc bbr, what adaptive FEC decides on: PUSH copies sent and copies lost (the loss FEC
 * left), both counted when their segment is acknowledged and only for copies that went out
 * at the FEC parity in force at that moment (set_wire_cost's num - den). A copy is lost
 * when neither an ACK echoing an earlier copy nor an una sooner than a round trip after
 * the last one showed that it arrived. 0, 0 under another algorithm. */
void kcpx_kcp_loss_counts(const struct kcpx_kcp *kcp, uint64_t *sent, uint64_t *lost);
/* New segments sent (first copies), and of them those sent by a flush that left more
 * behind (segments queued, or the window full): a sender whose pace, inflight cap or
 * window holds it back sends nearly all its data that way, one whose owner has little
 * to send (small exchanges) none. Cumulative, under any algorithm. */
void kcpx_kcp_backlog_counts(const struct kcpx_kcp *kcp, uint64_t *segs, uint64_t *held);
/* cc bbr: the controller's BDP (bottleneck estimate x min RTT) in full segments, 0 while
 * it has none; and the most the send window may span (kcpx_kcp_set_wnd_grow's ceiling,
 * or the configured window). */
void kcpx_kcp_path_segs(const struct kcpx_kcp *kcp, uint32_t *bdp, uint32_t *wnd_max);

/*
 * Queue len bytes (copied). Stream mode first tops up the last queued, unsent segment,
 * then cuts the rest into mss-sized segments; there is no size limit. Message mode keeps
 * the boundary (at most 255 fragments: -EMSGSIZE). Nothing is queued on error.
 * 0, -EINVAL (len 0), -EMSGSIZE or -ENOMEM.
 */
int kcpx_kcp_send(struct kcpx_kcp *kcp, const uint8_t *buf, size_t len);
unsigned kcpx_kcp_waitsnd(const struct kcpx_kcp *kcp); /* segments queued + in flight */
/* The send window in effect (the configured one, or more: kcpx_kcp_set_wnd_grow). */
unsigned kcpx_kcp_sndwnd(const struct kcpx_kcp *kcp);

/* Stream mode: up to len bytes. Message mode: one whole message (-ENOBUFS if it does not
 * fit in len). -EAGAIN when nothing is ready. */
ssize_t kcpx_kcp_recv(struct kcpx_kcp *kcp, uint8_t *buf, size_t len);
/* Bytes recv() would return now (message mode: the size of the next whole message). */
size_t kcpx_kcp_readable(const struct kcpx_kcp *kcp);

/*
 * One datagram's KCP bytes. regular=false for FEC-recovered packets: no RTT sample and
 * no remote-window update (as kcp-go). Segments are applied in order; a malformed one
 * (short, wrong conv, bad cmd, length past the end) stops the parse, counts KCPInErrors
 * and returns -EINVAL, keeping what the segments before it did.
 */
int kcpx_kcp_input(struct kcpx_kcp *kcp, const uint8_t *data, size_t len, uint32_t now,
		   bool regular);
/* Send what is due now: pending ACKs, window probes, new data the windows allow, fast and
 * early retransmits, and RTO retransmits whose time has come. */
void kcpx_kcp_flush(struct kcpx_kcp *kcp, uint32_t now);
/* Timer tick: call at or after check()'s deadline (calling earlier is harmless). */
void kcpx_kcp_update(struct kcpx_kcp *kcp, uint32_t now);
/* Absolute ms of the next needed update() (now if one is due). */
uint32_t kcpx_kcp_check(const struct kcpx_kcp *kcp, uint32_t now);
/*
 * The pacer's clock. KCP's timers and its wire ts stay in ms (`now`); the pacer runs on
 * a monotonic µs clock. An owner that can wake at µs deadlines gives it here before
 * update()/flush() (any origin, but (uint32_t)(now_us / 1000) must be the ms `now` it
 * passes: kcpx_clock_us() and kcpx_clock_ms() agree so) and sleeps until
 * kcpx_kcp_check_us(); from the first call on the pacer sends a quantum of about 1 ms of
 * its rate, at most KCPX_CC_QUANTUM_SEGS segments, per wakeup (cc.h). An owner that never
 * calls it is paced on `now` x 1000, woken at the ms its debt is paid.
 */
void kcpx_kcp_set_clock_us(struct kcpx_kcp *kcp, uint64_t now_us);
/* check() on the pacer's clock: the µs time of the next needed update(). */
uint64_t kcpx_kcp_check_us(const struct kcpx_kcp *kcp, uint32_t now);
/* The ms deadline t on the pacer's clock (the µs at which ms t begins). */
uint64_t kcpx_kcp_ms_us(const struct kcpx_kcp *kcp, uint32_t now, uint32_t t);

/* For status output. inflight = snd_nxt - snd_una (segments charged to the window);
 * rcv_queued: in order, not read yet; rcv_ooo: held out of order. */
struct kcpx_kcp_info {
	uint32_t srtt, rttvar, rto, cwnd, snd_wnd, rcv_wnd, rmt_wnd, waitsnd, inflight;
	uint32_t rcv_queued, rcv_ooo;
	uint64_t retrans, lost;
};
void kcpx_kcp_info(const struct kcpx_kcp *kcp, struct kcpx_kcp_info *info);

/* True once a segment was sent dead_link (20) times without being acknowledged (kcp-go's
 * state 0xFFFFFFFF). Informational: kcptun itself never acts on it. */
bool kcpx_kcp_is_dead(const struct kcpx_kcp *kcp);

/* Tests only: start the send sequence at snd_nxt and expect rcv_nxt next. -EBUSY unless
 * the engine is idle (nothing queued, in flight or received). */
int kcpx_kcp_test_set_sn(struct kcpx_kcp *kcp, uint32_t snd_nxt, uint32_t rcv_nxt);
/* Tests only: how many segments were malloc'ed rather than taken from the pool. */
uint64_t kcpx_kcp_test_seg_allocs(const struct kcpx_kcp *kcp);
/* Tests only: segments looked at for a retransmission (fast, early, RTO) so far; the
 * RTO queue's own upkeep is not counted. */
uint64_t kcpx_kcp_test_walk_steps(const struct kcpx_kcp *kcp);
/* Tests only: entries in the receive ring (grown on demand). */
unsigned kcpx_kcp_test_rring_size(const struct kcpx_kcp *kcp);

#endif
