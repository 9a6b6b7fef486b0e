// SPDX-License-Identifier: MIT
/*
 * KCP ARQ engine with kcp-go's wire format and behaviour (see kcp.h).
 *
 * Data structures and their invariants:
 *
 *  - snd_queue: FIFO of segments without an sn yet (sq_head..sq_tail). In stream mode
 *    send() tops up sq_tail first.
 *  - send ring sring[sn & smask]: every sn in [snd_una, snd_nxt) that is neither
 *    cumulatively nor selectively acknowledged holds its segment; acknowledged slots
 *    are NULL and their segment is back in the pool. The ring is grown before
 *    snd_nxt - snd_una would reach its size.
 *  - unacked list (ua_head..ua_tail, via kseg->unext/uprev): the non-NULL ring entries
 *    in sn order. Appending happens at snd_nxt only, so it stays sorted for free. It
 *    lets fast-retransmit and RTO work visit only segments still owed, never the
 *    acknowledged ones.
 *  - fast_cand: number of unacked segments with 0 < fastack < FASTACK_DONE. A flush
 *    walks the unacked list for fast/early retransmits only while candidates remain.
 *  - RTO queue: (resendts, sn) entries, one added whenever a sent segment's resendts
 *    is set, into a FIFO ring fq (when not earlier than its tail: new data and most
 *    resends, since deadlines are now + an RTO) or else a binary min-heap rh. An entry
 *    is live while its sn is in [snd_una, snd_nxt), the ring holds it and its resendts
 *    is still the entry's; every sent, unacknowledged segment has a live entry. Stale
 *    entries (acknowledged, or deadline moved) are dropped when they reach the front
 *    (after each input's ACKs and in flush); when either part is full the queue is
 *    rebuilt from the unacked list (one entry each). Each part holds twice the send
 *    ring's size, so adding never allocates. A flush visits only the entries whose
 *    deadline passed, not the whole unacked list (kcp-go walks every segment in flight
 *    on every flush). Tried first: a list sorted by deadline walked back over the
 *    backed-off RTOs at its tail for every new segment (34 steps per segment sent at
 *    20 % loss); a heap alone cost a sift of log n per segment acknowledged, 15-20 %
 *    more CPU for the whole simulated engine on a clean 1 Gbit/s path.
 *  - receive ring rring[sn & rmask]: sn in [rcv_head, rcv_nxt) is the receive queue
 *    (in order, readable, at most rcv_wnd segments), sn in [rcv_nxt, rcv_nxt + rcv_wnd)
 *    is the out-of-order buffer (NULL = missing). Everything held lies in [rcv_head,
 *    rcv_head + rmask + 1): the ring starts at RRING_INIT entries and doubles when a
 *    segment to store would lie beyond it (at most 2 * rcv_wnd rounded up: the queue
 *    and the buffer), so a session pays for the span it uses, not for its window.
 *  - rcv_off: bytes already read from the queue's head segment (stream mode).
 *
 * So per incoming packet the work is O(segments in it) plus a walk over the holes
 * below the highest acknowledged sn when ACKs came in; per flush it is O(what is sent)
 * plus the segments whose RTO is due.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kcpx_snmp.h"
#include "core/cc.h"
#include "core/kcp.h"
#include "core/util.h"

#define ASK_SEND 1 /* send WASK on the next flush */
#define ASK_TELL 2 /* send WINS on the next flush */

#define PROBE_INIT  500	   /* first WASK this long after rmt_wnd hit 0 (kcp-go >= 2025) */
#define PROBE_LIMIT 120000 /* window-probe backoff cap */
/*
 * rto_hygiene, zero windows: kcp-go announces a reopened receive window once (WINS), and a
 * sender that saw wnd 0 asks (WASK) after 500 ms, then backing off x1.5 up to 120 s. When
 * that one WINS is lost, and the answers to the first asks too (losses come in bursts),
 * the transfer sits still for seconds. With rto_hygiene the receiver re-announces after
 * rto, 2 rto, ... (at most PERSIST_MAX_MS apart, for PERSIST_TRIES times) until a segment
 * newer than all before shows that the sender heard, and the sender asks after rto, then
 * backing off x1.5 up to PROBE_MAX_MS.
 */
#define PERSIST_TRIES  30
#define PERSIST_MAX_MS 1000
#define PROBE_MAX_MS   1000
#define THRESH_INIT    2
#define RRING_INIT     64 /* receive ring entries a session starts with */
#define THRESH_MIN     2
#define DEADLINK       20

/* Largest KCP segment payload a kcptun peer can send (1500-byte datagram, 20-byte
 * crypt header, no FEC, 24-byte KCP header): pool segments hold at least this much so
 * a peer with a larger --mtu never forces an allocation. */
#define RX_SEG_CAP 1456

/* fastack value of a segment that was fast/early retransmitted: no more fast
 * retransmits until its RTO fires (kcp-go). */
#define FASTACK_DONE 0xFFFFFFFFu

struct rh_ent {
	uint32_t when, sn;
};

/* Local drops remembered to be taken off the losses they cause (a dropped datagram may
 * have held no segment, a parity shard or ACKs: the credit is bounded). */
#define LD_CREDIT_MAX 1024u

/* ACKs of one input gathered before their fast-ack accounting runs. */
#define ACK_BATCH 64

struct kseg {
	struct kseg *next;	    /* snd_queue or free list */
	struct kseg *unext, *uprev; /* unacked list */
	uint32_t sn, ts, resendts, rto, xmit, fastack;
	uint32_t len, cap;
	uint32_t cost; /* cc bbr: wire bytes charged to cc_inflight when it got its sn */
	uint8_t frg;
	bool probed;	       /* TLP sent since its last regular (re)transmission */
	struct kcpx_cc_tx cct; /* rate-sample state of its last transmission (cc bbr) */
	uint32_t cc_lost_ts;   /* cc bbr: send time of the transmission before the last */
	bool cc_spur;	       /* cc bbr: an ACK echoed an older transmission than the last */
	bool cc_last;	       /* cc bbr: an ACK echoed the last transmission */
	bool cc_gone;	       /* cc bbr: deemed lost, its cost is out of cc_inflight */
	bool rto_sent;	       /* cc bbr: its last copy went out because its RTO was due */
	uint8_t par_last;      /* FEC parity per group when its last copy went out ... */
	uint8_t par_prev;      /* ... and when the copy before it did (kcp->fa_sent) */
	uint8_t data[];
};

struct ackitem {
	uint32_t sn, ts;
};

struct kcpx_kcp {
	uint32_t conv, mtu, mss;
	uint32_t snd_una, snd_nxt, rcv_nxt, rcv_head;
	uint32_t ssthresh, cwnd;
	uint64_t incr; /* ikcp's cwnd in bytes; 64-bit so mss * wnd cannot overflow */
	int32_t rx_srtt, rx_rttvar;
	uint32_t rx_rto, rx_minrto;
	uint32_t rto_pad; /* cc bbr: ms added to the RTO after spurious RTO resends */
	uint32_t snd_wnd, rcv_wnd, rmt_wnd;
	uint32_t wnd_grow_max;	   /* kcpx_kcp_set_wnd_grow; 0: snd_wnd is the window */
	uint32_t rcv_wnd_cfg;	   /* the configured receive window; rcv_wnd may grow past it */
	uint32_t rcv_grow_max;	   /* kcpx_kcp_set_rcv_grow; 0: rcv_wnd stays rcv_wnd_cfg */
	uint32_t hole_min;	   /* rcv_grow: shortest repair in the last batch, ms; 0: none */
	uint32_t hole_cur, hole_n; /* ... and in the batch being gathered, and its samples */
	bool arq_snd, arq_rcv;	   /* kcpx_kcp_set_arq */
	uint32_t probe, ts_probe, probe_wait;
	bool told_zero, persist; /* we advertised wnd 0; we re-announce its reopening */
	uint32_t persist_tries, persist_sn, ts_tell, tell_wait;
	uint32_t top_sn; /* highest PUSH sn stored (valid when have_top) */
	bool have_top;
	uint32_t interval, ts_flush, nodelay, fastresend, dead_link;
	bool updated, nocwnd, stream, ack_nodelay, dead;
	bool tlp, quickack, rto_hygiene; /* issue 7 timing options, off = kcp-go */
	/* silent peer (kcp.h): heard = last input, or when data began to wait if later */
	uint32_t give_up_ms, heard;
	bool silent, gave_up;

	/* send side */
	struct kseg *sq_head, *sq_tail;
	uint32_t sq_len;
	struct kseg **sring;
	uint32_t smask;
	struct kseg *ua_head, *ua_tail;
	uint32_t ua_count, fast_cand;
	struct rh_ent *rh, *fq; /* RTO queue: heap and FIFO, 2 x the ring's size each */
	uint32_t rh_n, fq_head, fq_n;
	uint64_t walk_steps; /* retransmission checks of single segments (tests) */

	/* receive side */
	struct kseg **rring;
	uint32_t rmask;
	uint32_t rcv_off;
	uint32_t rcv_buffered; /* segments held at or beyond rcv_nxt (out of order) */
	uint32_t quick_ooo;    /* quick ACKs for out-of-order data since rcv_nxt moved */
	size_t rcv_avail;      /* unread bytes in the receive queue */

	struct ackitem *acks;
	uint32_t ack_n, ack_cap;

	/* segment pool: free list of segments with cap == seg_cap */
	struct kseg *pool;
	uint32_t pool_n, seg_cap;
	uint64_t seg_mallocs; /* segments that did not come from the pool (tests) */

	uint8_t *obuf;
	uint32_t olen, obuf_cap;

	kcpx_kcp_output_fn output;
	void *user;
	struct kcpx_snmp *snmp;

	/* congestion control (cc.h): with KCPX_CC_BBR new data waits for the inflight cap
	 * and every PUSH transmission for the pacer. cc_inflight: wire cost of the
	 * segments in the send ring whose last copy may still be on the path: a segment
	 * deemed lost (fastresend reached, or its RTO due) leaves it until it is sent
	 * again, as TCP's packets_out - lost + retrans. Without that, at long RTT and
	 * heavy loss the segments waiting for their retransmission (and those whose ACK
	 * was lost) fill the cap and the path carries less than the estimate. Maintained
	 * only with KCPX_CC_BBR. */
	enum kcpx_cc_algo cc_algo;
	struct kcpx_cc cc;
	uint64_t cc_inflight;
	uint32_t wire_hdr, wire_num, wire_den;
	/* the pacer's µs clock: the owner's (kcpx_kcp_set_clock_us), or `now` x 1000 until
	 * it gives one; (uint32_t)(pace_us / 1000) is the ms `now` it belongs to */
	uint64_t pace_us;
	/* wire bytes of the new segments a flush took but has not sent yet (pace_empty) */
	int64_t pace_owed;
	bool pace_set;	/* pace_us holds a time (until then: `now` x 1000) */
	bool pace_fine; /* the owner gives it (and wakes at µs deadlines) */

	/* per-engine totals for status, and this call's SNMP deltas */
	uint64_t tot_retrans, tot_lost;
	uint64_t tot_lostseg; /* cc bbr: copies lost, counted when their segment is acked */
	/* cc bbr, adaptive FEC's counts: copies sent and lost, counted when their segment is
	 * acked and only if the copy went out at the parity in force then (snd_release) */
	uint64_t fa_sent, fa_lost;
	uint64_t new_segs, held_segs; /* kcpx_kcp_backlog_counts */
	uint32_t ld_credit;	      /* local drops not yet matched with the losses they cause */

	/* Receive drops (kcpx_kcp_rx_dropped): incoming datagrams of this engine the host
	 * dropped before reading them, counted here and, between kcpx ends, told to the
	 * peer in a drop report (a WINS segment with a payload: kcp.h); rxd_sent is the
	 * total last reported, rxd_repeat the copies still to send (a report may be lost,
	 * the next carries the same total). rd_peer: the peer's last total we took. */
	bool drop_report;
	uint8_t rxd_repeat;
	uint32_t rxd_total, rxd_sent, rd_peer;
	uint64_t peer_drops; /* datagrams the peer reported dropped before reading them */
	uint64_t c_out, c_fast, c_early, c_lost, c_tlp;
};

/* ---- small helpers ---- */

static inline bool before(uint32_t a, uint32_t b)
{
	return kcpx_diff32(a, b) < 0;
}

static inline void snmp_add(__u64 *ctr, uint64_t v)
{
	if (v)
		__atomic_fetch_add(ctr, v, __ATOMIC_RELAXED);
}

static inline bool paced(const struct kcpx_kcp *kcp)
{
	return kcp->cc_algo == KCPX_CC_BBR;
}

/* The pacer's time at ms `now`: the owner's µs clock while it is in that ms, the start of
 * `now` once `now` moved past it, and never earlier than the clock was (a caller holding
 * an older `now` than the last kcpx_kcp_set_clock_us) unless `now` jumped back by more
 * than a second (a virtual clock restarted). */
static uint64_t pace_now(const struct kcpx_kcp *kcp, uint32_t now)
{
	uint64_t ms = kcp->pace_us / 1000;
	int32_t d = kcpx_diff32(now, (uint32_t)ms);

	if (!kcp->pace_set)
		return (uint64_t)now * 1000;
	if (d == 0 || (d < 0 && d >= -1000))
		return kcp->pace_us;
	if (d < 0 && (uint64_t) - (int64_t)d > ms)
		return 0;
	return (uint64_t)((int64_t)ms + d) * 1000;
}

/*
 * Paced and out of tokens for a retransmission. A flush takes its new segments first
 * (kcp-go's order) but sends them last, so retransmissions see tokens the new segments
 * will spend; they must not starve behind them, and each of them still goes into the
 * bucket's debt, which the next refills pay off before new data goes. Driven on ms
 * (a bucket of 2 ms or more) they may spend all of it again, as ever; driven on µs
 * (a bucket of two quanta, refilled per quantum) at most one quantum beyond what the
 * new segments left, so that a flush sends at most the bucket plus a quantum.
 */
static inline bool pace_empty(const struct kcpx_kcp *kcp)
{
	int64_t left = kcp->cc.tokens;

	if (!paced(kcp))
		return false;
	if (kcp->pace_fine)
		left -= kcp->pace_owed -
			KCPX_MIN(kcp->pace_owed, (int64_t)kcpx_cc_quantum(&kcp->cc));
	return left <= 0;
}

/* An ms deadline t on the pacer's timeline, seen from pacer time p. */
static uint64_t ms_us(uint64_t p, uint32_t t)
{
	int64_t ms = (int64_t)(p / 1000) + kcpx_diff32(t, (uint32_t)(p / 1000));

	return ms > 0 ? (uint64_t)ms * 1000 : 0;
}

/* Wire bytes a segment of len payload bytes costs: its KCP header, its datagram's
 * headers and its share of FEC parity (set by the owner with set_wire_cost). */
static inline uint32_t seg_cost(const struct kcpx_kcp *kcp, uint32_t len)
{
	return (uint32_t)((uint64_t)(len + KCPX_KCP_OVERHEAD + kcp->wire_hdr) * kcp->wire_num /
			  kcp->wire_den);
}

/*
 * The send window in effect: snd_wnd, or what the path needs (kcp.h). The window bounds
 * what the owner queues as well as what is in flight, so it costs memory: it follows
 * three of the controller's BDP estimates (bottleneck rate x min RTT) plus two ACK
 * batches, not its inflight cap. Two BDPs are what the cap lets be in flight; the third
 * is for loss: KCP's window spans snd_una to snd_nxt, and a lost segment holds snd_una
 * for a round trip more (its resend's) while what follows it is delivered. The cap also
 * adds the peer's flush interval to the RTT, which on a sub-millisecond path at Gbit/s
 * makes it 30 times the BDP; but a peer ACKs at once whenever a datagram's worth of ACKs
 * piled up (kcpx_kcp_input), so ACK delay holds back about a batch of segments, not an
 * interval's worth. Never more than the cap. Every input is bounded (the cap by
 * KCPX_CC_CAP_MAX, the result by wnd_grow_max), so a peer that inflates the estimate with
 * its ACKs moves it at most to that ceiling; as the estimate falls (its filters age out)
 * the window shrinks.
 *
 * On a long path (min RTT >= WND_HOLES_MIN_RTT) the window also spans the segments
 * already acknowledged past a hole (in [snd_una, snd_nxt) but off the unacked list):
 * delivered, neither in flight nor owed, they still hold the window until the hole's
 * repair lands, a round trip or more (a repair of a repair at 10 % loss: two). There a
 * window of three BDPs held what was in flight near one BDP, so the controller's samples
 * measured the window, not the path, and an estimate that STARTUP left low stayed low
 * for seconds: PROBE_BW gains a quarter per eight round trips, 1.2 s each at 150 ms
 * (100 Mbit/s, 75 ms, 10 %: from 52 Mbit/s after STARTUP it took 4 s to reach the link).
 * The inflight cap still bounds what is in flight, and wnd_grow_max the span. Not in
 * STARTUP: there the held window is what keeps the first flights from overrunning the
 * bottleneck's queue. Not on shorter paths while FEC parity repairs most losses: there
 * the same recovery takes a fraction of a second, and the window that binds keeps the
 * standing queue of a lossy 50 ms path lower (docs/CONGESTION.md, session 10). But with
 * no parity (kcpx_kcp_set_arq: at about 1 % loss ARQ alone carries it) every loss holds
 * the window a round trip, and on a 50 ms path the window bound often (session 11);
 * then it spans the holes on any path.
 */
#define WND_HOLES_MIN_RTT 100u /* ms */
static uint32_t snd_wnd_eff(const struct kcpx_kcp *kcp)
{
	uint64_t need, seg, path;
	const struct kcpx_cc *cc = &kcp->cc;

	if (!kcp->wnd_grow_max || !paced(kcp))
		return kcp->snd_wnd;
	seg = KCPX_MAX(seg_cost(kcp, kcp->mss), 1u);
	need = cc->inflight_cap;
	if (cc->btl_bw) {
		uint32_t rtt = cc->have_rtt && cc->min_rtt ? cc->min_rtt : 1;
		/* btl_bw <= KCPX_CC_RATE_MAX, min_rtt <= 60 s (cc.c): no overflow */
		path = 3 * (cc->btl_bw * rtt / 1000) + 2ull * (kcp->mtu / KCPX_KCP_OVERHEAD) * seg;
		need = KCPX_MIN(need, path);
	}
	need = (need + seg - 1) / seg;
	if (((cc->have_rtt && cc->min_rtt >= WND_HOLES_MIN_RTT) || kcp->arq_snd) &&
	    cc->state != KCPX_CC_STARTUP)
		need += kcp->snd_nxt - kcp->snd_una - kcp->ua_count;
	need = KCPX_MIN(need, (uint64_t)KCPX_MAX(kcp->wnd_grow_max, kcp->snd_wnd));
	return (uint32_t)KCPX_MAX(need, (uint64_t)kcp->snd_wnd);
}

static uint32_t roundup_pow2(uint32_t v)
{
	uint32_t r = 1;
	while (r < v)
		r <<= 1;
	return r;
}

/* ---- segment pool ---- */

static uint32_t pool_limit(const struct kcpx_kcp *kcp)
{
	return kcp->smask + 1 + kcp->rmask + 1 + 256;
}

static struct kseg *seg_get(struct kcpx_kcp *kcp, uint32_t need)
{
	struct kseg *s;
	if (need <= kcp->seg_cap && kcp->pool) {
		s = kcp->pool;
		kcp->pool = s->next;
		kcp->pool_n--;
	} else {
		uint32_t cap = need > kcp->seg_cap ? need : kcp->seg_cap;
		s = malloc(sizeof(*s) + cap);
		if (!s)
			return NULL;
		s->cap = cap;
		kcp->seg_mallocs++;
	}
	s->next = s->unext = s->uprev = NULL;
	s->len = 0;
	s->cost = 0;
	s->frg = 0;
	s->probed = false;
	s->cc_spur = s->cc_last = s->cc_gone = s->rto_sent = false;
	s->xmit = s->fastack = 0;
	s->par_last = s->par_prev = 0;
	return s;
}

static void seg_put(struct kcpx_kcp *kcp, struct kseg *s)
{
	if (s->cap == kcp->seg_cap && kcp->pool_n < pool_limit(kcp)) {
		s->next = kcp->pool;
		kcp->pool = s;
		kcp->pool_n++;
	} else {
		free(s);
	}
}

static void pool_drain(struct kcpx_kcp *kcp)
{
	while (kcp->pool) {
		struct kseg *s = kcp->pool;
		kcp->pool = s->next;
		free(s);
	}
	kcp->pool_n = 0;
}

/* ---- output buffer ---- */

static void out_flush(struct kcpx_kcp *kcp)
{
	if (kcp->olen) {
		kcp->output(kcp->obuf, kcp->olen, kcp->user);
		kcp->olen = 0;
	}
}

/* Make room for need more bytes: send the datagram being built if they would not fit. */
static inline uint8_t *out_reserve(struct kcpx_kcp *kcp, uint32_t need)
{
	if (kcp->olen && kcp->olen + need > kcp->mtu)
		out_flush(kcp);
	return kcp->obuf + kcp->olen;
}

static inline void put_hdr(uint8_t *p, uint32_t conv, uint8_t cmd, uint8_t frg, uint16_t wnd,
			   uint32_t ts, uint32_t sn, uint32_t una, uint32_t len)
{
	kcpx_put_le32(p, conv);
	p[4] = cmd;
	p[5] = frg;
	kcpx_put_le16(p + 6, wnd);
	kcpx_put_le32(p + 8, ts);
	kcpx_put_le32(p + 12, sn);
	kcpx_put_le32(p + 16, una);
	kcpx_put_le32(p + 20, len);
}

static void out_ctrl(struct kcpx_kcp *kcp, uint8_t cmd, uint16_t wnd, uint32_t ts, uint32_t sn)
{
	uint8_t *p = out_reserve(kcp, KCPX_KCP_OVERHEAD);
	put_hdr(p, kcp->conv, cmd, 0, wnd, ts, sn, kcp->rcv_nxt, 0);
	kcp->olen += KCPX_KCP_OVERHEAD;
	kcp->c_out++;
}

/*
 * The drop report: a WINS segment whose payload says how many of the datagrams sent to
 * us this host dropped before reading them (a running total, so a lost report costs
 * nothing but time). Any KCP receiver skips a WINS segment's payload (kcp-go, ikcp,
 * kcpx before it), so an older peer takes only the window and una, which are current.
 * Sent three times per new total, with whatever else the flush sends.
 */
static void out_drop_report(struct kcpx_kcp *kcp, uint16_t wnd)
{
	uint8_t *p = out_reserve(kcp, KCPX_KCP_OVERHEAD + KCPX_KCP_DROP_REPORT_LEN);

	if (kcp->rxd_total != kcp->rxd_sent) {
		kcp->rxd_sent = kcp->rxd_total;
		kcp->rxd_repeat = 3;
	}
	kcp->rxd_repeat--;
	put_hdr(p, kcp->conv, KCPX_KCP_CMD_WINS, 0, wnd, 0, 0, kcp->rcv_nxt,
		KCPX_KCP_DROP_REPORT_LEN);
	p += KCPX_KCP_OVERHEAD;
	memset(p, 0, KCPX_KCP_DROP_REPORT_LEN);
	p[0] = KCPX_KCP_DROP_REPORT_KIND;
	kcpx_put_le32(p + 4, kcp->rxd_sent);
	kcp->olen += KCPX_KCP_OVERHEAD + KCPX_KCP_DROP_REPORT_LEN;
	kcp->c_out++;
}

/* (Re)allocate obuf for the current mtu and seg_cap: a datagram under construction is
 * at most mtu bytes before one more segment of at most 24 + seg_cap is appended. */
static int obuf_fit(struct kcpx_kcp *kcp)
{
	uint32_t want = kcp->mtu + KCPX_KCP_OVERHEAD + kcp->seg_cap;
	uint8_t *nb;
	if (want <= kcp->obuf_cap)
		return 0;
	nb = realloc(kcp->obuf, want);
	if (!nb)
		return -ENOMEM;
	kcp->obuf = nb;
	kcp->obuf_cap = want;
	return 0;
}

/* ---- rings ---- */

/* Make the send ring hold at least want entries of [snd_una, snd_una + want). */
static inline struct rh_ent *fq_at(const struct kcpx_kcp *kcp, uint32_t i);

static int sring_fit(struct kcpx_kcp *kcp, uint32_t want)
{
	uint32_t size = kcp->smask + 1, nsize, sn;
	struct kseg **nr;
	struct rh_ent *rh, *fq;
	uint32_t i;
	if (want <= size)
		return 0;
	if (want > (1u << 30))
		return -ENOMEM;
	nsize = roundup_pow2(want);
	/* the RTO queue first: its capacity follows smask */
	rh = realloc(kcp->rh, 2 * (size_t)nsize * sizeof(*rh));
	if (!rh)
		return -ENOMEM;
	kcp->rh = rh;
	fq = malloc(2 * (size_t)nsize * sizeof(*fq));
	if (!fq)
		return -ENOMEM;
	for (i = 0; i < kcp->fq_n; i++)
		fq[i] = *fq_at(kcp, i);
	free(kcp->fq);
	kcp->fq = fq;
	kcp->fq_head = 0;
	nr = calloc(nsize, sizeof(*nr));
	if (!nr)
		return -ENOMEM;
	for (sn = kcp->snd_una; sn != kcp->snd_nxt; sn++)
		nr[sn & (nsize - 1)] = kcp->sring[sn & kcp->smask];
	free(kcp->sring);
	kcp->sring = nr;
	kcp->smask = nsize - 1;
	return 0;
}

/* Make the receive ring hold want entries from rcv_head (want <= 2 * KCPX_KCP_WND_MAX:
 * the queue and the buffer). At least doubles, so a span growing one segment at a time
 * costs O(1) amortised copies per segment. */
static int rring_fit(struct kcpx_kcp *kcp, uint32_t want)
{
	uint32_t size = kcp->rmask + 1, nsize, i;
	struct kseg **nr;
	if (want <= size)
		return 0;
	if (want > 2u * KCPX_KCP_WND_MAX)
		return -ENOMEM;
	nsize = KCPX_MAX(roundup_pow2(want), 2 * size);
	nr = calloc(nsize, sizeof(*nr));
	if (!nr)
		return -ENOMEM;
	/* everything held lies in [rcv_head, rcv_head + size) */
	for (i = 0; i < size; i++) {
		uint32_t sn = kcp->rcv_head + i;
		nr[sn & (nsize - 1)] = kcp->rring[sn & kcp->rmask];
	}
	free(kcp->rring);
	kcp->rring = nr;
	kcp->rmask = nsize - 1;
	return 0;
}

/* ---- unacked list ---- */

static void ua_append(struct kcpx_kcp *kcp, struct kseg *s, uint32_t now)
{
	if (!kcp->ua_head)
		kcp->heard = now; /* the wait for an answer starts now */
	s->unext = NULL;
	s->uprev = kcp->ua_tail;
	if (kcp->ua_tail)
		kcp->ua_tail->unext = s;
	else
		kcp->ua_head = s;
	kcp->ua_tail = s;
	kcp->ua_count++;
}

static inline bool is_cand(const struct kseg *s)
{
	return s->fastack != 0 && s->fastack != FASTACK_DONE;
}

static inline void set_fastack(struct kcpx_kcp *kcp, struct kseg *s, uint32_t v)
{
	kcp->fast_cand -= is_cand(s);
	s->fastack = v;
	kcp->fast_cand += is_cand(s);
}

/* ---- RTO queue ---- */

static inline bool rh_before(const struct rh_ent *a, const struct rh_ent *b)
{
	int32_t d = kcpx_diff32(a->when, b->when);
	return d < 0 || (d == 0 && kcpx_diff32(a->sn, b->sn) < 0);
}

/* Entries the FIFO and the heap hold each (their arrays may be larger). */
static inline uint32_t rh_cap(const struct kcpx_kcp *kcp)
{
	return 2 * (kcp->smask + 1);
}

static inline struct rh_ent *fq_at(const struct kcpx_kcp *kcp, uint32_t i)
{
	return &kcp->fq[(kcp->fq_head + i) & (rh_cap(kcp) - 1)];
}

static void rh_up(struct rh_ent *h, uint32_t i)
{
	struct rh_ent e = h[i];

	while (i > 0) {
		uint32_t p = (i - 1) / 2;
		if (!rh_before(&e, &h[p]))
			break;
		h[i] = h[p];
		i = p;
	}
	h[i] = e;
}

static void rh_pop(struct kcpx_kcp *kcp)
{
	struct rh_ent *h = kcp->rh, e = h[--kcp->rh_n];
	uint32_t i = 0, n = kcp->rh_n;

	if (!n)
		return;
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && rh_before(&h[c + 1], &h[c]))
			c++;
		if (!rh_before(&h[c], &e))
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = e;
}

/* The segment an entry stands for, or NULL if the entry is stale. */
static struct kseg *rh_seg(const struct kcpx_kcp *kcp, const struct rh_ent *e)
{
	struct kseg *s;

	if (kcpx_diff32(e->sn, kcp->snd_una) < 0 || kcpx_diff32(e->sn, kcp->snd_nxt) >= 0)
		return NULL;
	s = kcp->sring[e->sn & kcp->smask];
	return s && s->xmit && s->resendts == e->when ? s : NULL;
}

static void rh_push(struct kcpx_kcp *kcp, uint32_t when, uint32_t sn)
{
	struct rh_ent e = { .when = when, .sn = sn };

	if (!kcp->fq_n || !rh_before(&e, fq_at(kcp, kcp->fq_n - 1))) {
		*fq_at(kcp, kcp->fq_n++) = e;
		return;
	}
	kcp->rh[kcp->rh_n] = e;
	rh_up(kcp->rh, kcp->rh_n++);
}

/* Set s's RTO deadline. Full, the queue is rebuilt from the unacked list with one entry
 * per sent segment (at most the ring's size, half the capacity; s included). */
static void set_resend(struct kcpx_kcp *kcp, struct kseg *s, uint32_t when)
{
	s->resendts = when;
	if (kcp->rh_n == rh_cap(kcp) || kcp->fq_n == rh_cap(kcp)) {
		kcp->rh_n = kcp->fq_n = 0;
		for (struct kseg *u = kcp->ua_head; u; u = u->unext)
			if (u->xmit || u == s)
				rh_push(kcp, u->resendts, u->sn);
		return;
	}
	rh_push(kcp, when, s->sn);
}

/* The earliest entry, live or not. */
static const struct rh_ent *rh_top(const struct kcpx_kcp *kcp)
{
	const struct rh_ent *f = kcp->fq_n ? fq_at(kcp, 0) : NULL;

	if (!kcp->rh_n)
		return f;
	return f && rh_before(f, &kcp->rh[0]) ? f : &kcp->rh[0];
}

static void rh_pop_top(struct kcpx_kcp *kcp)
{
	if (kcp->fq_n && rh_top(kcp) == fq_at(kcp, 0)) {
		kcp->fq_head = (kcp->fq_head + 1) & (rh_cap(kcp) - 1);
		kcp->fq_n--;
	} else {
		rh_pop(kcp);
	}
}

/* Drop stale entries from the top, so that the earliest (if any) is a live deadline. */
static void rh_trim(struct kcpx_kcp *kcp)
{
	const struct rh_ent *e;

	while ((e = rh_top(kcp)) && !rh_seg(kcp, e))
		rh_pop_top(kcp);
}

/* The earliest RTO deadline, if any segment has one (the top may be stale between a
 * trim and the next: then the answer is early, which costs one wasted update). Silent
 * (kcp.h), only the oldest segment's probe counts: nothing else is resent then. */
static bool rto_deadline(const struct kcpx_kcp *kcp, uint32_t *when)
{
	const struct rh_ent *e;

	if (kcp->silent) {
		if (!kcp->ua_head || !kcp->ua_head->xmit)
			return false;
		*when = kcp->ua_head->resendts;
		return true;
	}
	e = rh_top(kcp);
	if (!e)
		return false;
	*when = e->when;
	return true;
}

/* cc bbr: s is deemed lost; its last copy no longer counts against the inflight cap. */
static void cc_gone(struct kcpx_kcp *kcp, struct kseg *s)
{
	if (!paced(kcp) || s->cc_gone)
		return;
	s->cc_gone = true;
	kcp->cc_inflight -= KCPX_MIN(kcp->cc_inflight, (uint64_t)s->cost);
}

/* Paced and out of tokens: the segments whose RTO is due are lost, though their copies
 * wait for the pacer (cc_gone). A walk of the queue's due part only. */
static void rh_gone_heap(struct kcpx_kcp *kcp, uint32_t i, uint32_t now)
{
	while (i < kcp->rh_n && kcpx_diff32(now, kcp->rh[i].when) >= 0) {
		struct kseg *s = rh_seg(kcp, &kcp->rh[i]);
		kcp->walk_steps++;
		if (s)
			cc_gone(kcp, s);
		rh_gone_heap(kcp, 2 * i + 2, now);
		i = 2 * i + 1;
	}
}

static void rh_gone_due(struct kcpx_kcp *kcp, uint32_t now)
{
	for (uint32_t i = 0; i < kcp->fq_n && kcpx_diff32(now, fq_at(kcp, i)->when) >= 0; i++) {
		struct kseg *s = rh_seg(kcp, fq_at(kcp, i));
		kcp->walk_steps++;
		if (s)
			cc_gone(kcp, s);
	}
	rh_gone_heap(kcp, 0, now);
}

/*
 * cc bbr, Eifel's idea (RFC 3522): an RTO resend whose earlier copy arrived after all
 * says the RTO is shorter than this path's RTTs swing. Behind a bottleneck they swing by
 * the controller's own probing (a quarter of an RTT of queue for one RTT) on top of the
 * peer's ACK delay, more than srtt + max(interval, 4 rttvar) allows when rttvar is small:
 * a bulk transfer on a clean 100 Mbit/s path resent about 5 % of its segments that way,
 * every copy wasted (test_cc's test_spurious_rto). So each spurious RTO resend pads the
 * RTO by 1/16 srtt (at most srtt / 2), and each RTO resend that was needed (its earlier
 * copies lost) takes an eighth of the pad off again: on a path that really loses the
 * resends, the RTO stays as tight as before.
 */
static void rto_adapt(struct kcpx_kcp *kcp, const struct kseg *s)
{
	uint32_t srtt = (uint32_t)KCPX_MAX(kcp->rx_srtt, 0);

	if (!s->rto_sent)
		return;
	if (s->cc_spur)
		kcp->rto_pad = KCPX_MIN(kcp->rto_pad + KCPX_MAX(srtt / 16, 1u), srtt / 2);
	else if (s->cc_last)
		kcp->rto_pad -= (kcp->rto_pad + 3) / 4;
}

/*
 * cc bbr: adaptive FEC's counts for an acknowledged segment that lost `lost` copies. The
 * loss of a copy is known a round trip or more after it went out, often two (its resend
 * must be acknowledged), so counts taken when copies are sent and when losses are known
 * mix parities whenever the parity moves: losses from a stretch at no parity, read
 * through the model of the one parity shard that followed, looked like 2-4 % raw loss on
 * a 1 % path, which chose two shards, whose window then read the same lag through the
 * two-shard model as more again (test_fecadapt's test_parity_lag). So a copy counts only
 * if it went out at the parity in force now, sent and lost alike, both when its segment
 * is acknowledged: the model then sees one parity's residual loss. A segment's copies
 * before the last are taken to share the parity of the one before the last.
 */
static void fa_count(struct kcpx_kcp *kcp, const struct kseg *s, uint32_t lost)
{
	uint32_t par = KCPX_MIN(kcp->wire_num - kcp->wire_den, 255u);

	if (s->par_last == par)
		kcp->fa_sent++;
	if (s->xmit > 1 && s->par_prev == par) {
		kcp->fa_sent += s->xmit - 1;
		kcp->fa_lost += lost;
	}
}

/* Drop an acknowledged segment from the ring and the unacked list. */
static void snd_release(struct kcpx_kcp *kcp, struct kseg *s, uint32_t now)
{
	if (paced(kcp)) {
		/* the charge it got its sn with: the FEC share may have changed since */
		uint32_t c = s->cost;
		uint32_t lost = 0, local;

		if (!s->cc_gone)
			kcp->cc_inflight -= KCPX_MIN(kcp->cc_inflight, (uint64_t)c);

		/* released by an una sooner after the last copy went out than any round trip
		 * of this path takes: an earlier copy arrived (the receiver acknowledges in-order
		 * segments through una alone, so no echo told us) */
		if (s->xmit > 1 && !s->cc_spur && !s->cc_last && kcp->cc.have_rtt &&
		    kcpx_diff32(now, s->ts) < (int32_t)(kcp->cc.min_rtt - kcp->cc.min_rtt / 8))
			s->cc_spur = true;
		/* the last copy's record describes what arrived only if an earlier one did not */
		kcpx_cc_on_ack(&kcp->cc, now, s->cc_spur ? NULL : &s->cct, c,
			       s->cc_spur && s->rto_sent);
		/* every copy but the last was lost, unless one of them arrived; losses this
		 * host made itself (kcpx_kcp_local_drop) are taken off first */
		if (s->xmit > 1 && !s->cc_spur)
			lost = s->xmit - 1;
		rto_adapt(kcp, s);
		local = KCPX_MIN(lost, kcp->ld_credit);
		kcp->ld_credit -= local;
		kcp->tot_lostseg += lost - local;
		fa_count(kcp, s, lost - local);
		/* resent and no ACK said an earlier copy arrived: each copy but the last was
		 * a transmission that delivered nothing (lost, or its ACK was and the resend
		 * was spurious: to the pace both are the same waste) */
		for (uint32_t i = local; s->cc_last && i < lost; i++)
			kcpx_cc_on_lost(&kcp->cc, s->cc_lost_ts);
	}
	kcp->sring[s->sn & kcp->smask] = NULL;
	kcp->fast_cand -= is_cand(s);
	if (s->uprev)
		s->uprev->unext = s->unext;
	else
		kcp->ua_head = s->unext;
	if (s->unext)
		s->unext->uprev = s->uprev;
	else
		kcp->ua_tail = s->uprev;
	kcp->ua_count--;
	seg_put(kcp, s);
}

/* ---- create / configure ---- */

struct kcpx_kcp *kcpx_kcp_new(uint32_t conv, kcpx_kcp_output_fn output, void *user,
			      struct kcpx_snmp *snmp)
{
	struct kcpx_kcp *kcp = calloc(1, sizeof(*kcp));
	if (!kcp)
		return NULL;
	kcp->conv = conv;
	kcp->output = output;
	kcp->user = user;
	kcp->snmp = snmp;
	kcp->mtu = KCPX_KCP_MTU_DEF;
	kcp->mss = kcp->mtu - KCPX_KCP_OVERHEAD;
	kcp->seg_cap = KCPX_MAX(kcp->mss, RX_SEG_CAP);
	kcp->snd_wnd = KCPX_KCP_WND_DEF;
	kcp->rcv_wnd = kcp->rcv_wnd_cfg = KCPX_KCP_WND_DEF;
	kcp->rmt_wnd = KCPX_KCP_WND_DEF;
	kcp->rx_rto = KCPX_KCP_RTO_DEF;
	kcp->rx_minrto = KCPX_KCP_RTO_MIN;
	kcp->interval = KCPX_KCP_INTERVAL_DEF;
	kcp->ts_flush = KCPX_KCP_INTERVAL_DEF;
	kcp->ssthresh = THRESH_INIT;
	/* ikcp starts at cwnd 0 and lets the first flush lift it to 1 without sending;
	 * starting at 1 only saves that idle round. */
	kcp->cwnd = 1;
	kcp->incr = kcp->mss;
	kcp->dead_link = DEADLINK;
	kcp->stream = true;
	kcp->cc_algo = KCPX_CC_OFF;
	kcp->wire_num = kcp->wire_den = 1;
	kcpx_cc_init(&kcp->cc, seg_cost(kcp, kcp->mss), 0);
	kcp->smask = 63;
	kcp->sring = calloc(kcp->smask + 1, sizeof(*kcp->sring));
	kcp->rh = malloc(2 * (kcp->smask + 1) * sizeof(*kcp->rh));
	kcp->fq = malloc(2 * (kcp->smask + 1) * sizeof(*kcp->fq));
	kcp->rmask = RRING_INIT - 1;
	kcp->rring = calloc(kcp->rmask + 1, sizeof(*kcp->rring));
	kcp->ack_cap = 64;
	kcp->acks = malloc(kcp->ack_cap * sizeof(*kcp->acks));
	if (!kcp->sring || !kcp->rh || !kcp->fq || !kcp->rring || !kcp->acks || obuf_fit(kcp)) {
		kcpx_kcp_free(kcp);
		return NULL;
	}
	return kcp;
}

void kcpx_kcp_free(struct kcpx_kcp *kcp)
{
	struct kseg *s;
	uint32_t i;
	if (!kcp)
		return;
	while ((s = kcp->sq_head)) {
		kcp->sq_head = s->next;
		free(s);
	}
	for (s = kcp->ua_head; s;) {
		struct kseg *n = s->unext;
		free(s);
		s = n;
	}
	if (kcp->rring)
		for (i = 0; i <= kcp->rmask; i++)
			free(kcp->rring[i]);
	pool_drain(kcp);
	free(kcp->sring);
	free(kcp->rh);
	free(kcp->fq);
	free(kcp->rring);
	free(kcp->acks);
	free(kcp->obuf);
	free(kcp);
}

uint32_t kcpx_kcp_conv(const struct kcpx_kcp *kcp)
{
	return kcp->conv;
}

int kcpx_kcp_set_mtu(struct kcpx_kcp *kcp, unsigned mtu)
{
	uint32_t old_cap = kcp->seg_cap, old_mtu = kcp->mtu;
	if (mtu <= KCPX_KCP_OVERHEAD || mtu > 65535)
		return -EINVAL;
	kcp->mtu = mtu;
	kcp->seg_cap = KCPX_MAX(old_cap, mtu - KCPX_KCP_OVERHEAD);
	if (obuf_fit(kcp)) {
		kcp->mtu = old_mtu;
		kcp->seg_cap = old_cap;
		return -ENOMEM;
	}
	/* pooled segments must all have cap == seg_cap; older, smaller ones get freed as
	 * they come back */
	if (kcp->seg_cap != old_cap)
		pool_drain(kcp);
	kcp->mss = mtu - KCPX_KCP_OVERHEAD;
	kcpx_cc_set_seg(&kcp->cc, seg_cost(kcp, kcp->mss));
	return 0;
}

unsigned kcpx_kcp_mss(const struct kcpx_kcp *kcp)
{
	return kcp->mss;
}

void kcpx_kcp_set_nodelay(struct kcpx_kcp *kcp, int nodelay, int interval, int resend, int nc)
{
	if (nodelay >= 0) {
		kcp->nodelay = (uint32_t)nodelay;
		kcp->rx_minrto = nodelay ? KCPX_KCP_RTO_NDL : KCPX_KCP_RTO_MIN;
	}
	if (interval >= 0) {
		if (interval > 5000)
			interval = 5000;
		else if (interval < 10)
			interval = 10;
		kcp->interval = (uint32_t)interval;
		kcpx_cc_set_ack_delay(&kcp->cc, kcp->interval);
	}
	if (resend >= 0)
		kcp->fastresend = (uint32_t)resend;
	if (nc >= 0)
		kcp->nocwnd = nc != 0;
}

void kcpx_kcp_set_wndsize(struct kcpx_kcp *kcp, unsigned sndwnd, unsigned rcvwnd)
{
	if (sndwnd > 0)
		kcp->snd_wnd = KCPX_MIN(sndwnd, KCPX_KCP_WND_MAX);
	if (rcvwnd > 0) {
		kcp->rcv_wnd_cfg = KCPX_MIN(rcvwnd, KCPX_KCP_WND_MAX);
		kcp->rcv_wnd = kcp->rcv_wnd_cfg;
	}
	/* both rings grow on demand: the send ring in flush, the receive ring in rcv_store */
}

int kcpx_kcp_set_cc(struct kcpx_kcp *kcp, enum kcpx_cc_algo algo, uint32_t now)
{
	if (kcp->snd_nxt != kcp->snd_una || kcp->sq_head)
		return -EBUSY;
	kcp->cc_algo = algo;
	kcp->nocwnd = algo != KCPX_CC_KCP;
	kcp->cc_inflight = 0;
	kcpx_cc_init(&kcp->cc, seg_cost(kcp, kcp->mss), now);
	kcpx_cc_set_ack_delay(&kcp->cc, kcp->interval);
	kcpx_cc_set_fine(&kcp->cc, kcp->pace_fine);
	kcp->cc.unbound = kcp->arq_snd;
	if (!kcp->pace_fine) {
		kcp->pace_us = (uint64_t)now * 1000;
		kcp->pace_set = true;
	}
	return 0;
}

void kcpx_kcp_set_clock_us(struct kcpx_kcp *kcp, uint64_t now_us)
{
	if (!kcp->pace_fine || now_us > kcp->pace_us ||
	    kcp->pace_us - now_us > 1000000) /* went back a second: restarted */
		kcp->pace_us = now_us;
	kcp->pace_set = true;
	if (!kcp->pace_fine) {
		kcp->pace_fine = true;
		kcpx_cc_set_fine(&kcp->cc, true);
	}
}

uint64_t kcpx_kcp_ms_us(const struct kcpx_kcp *kcp, uint32_t now, uint32_t t)
{
	return ms_us(pace_now(kcp, now), t);
}

void kcpx_kcp_set_wire_cost(struct kcpx_kcp *kcp, uint32_t hdr, uint32_t num, uint32_t den)
{
	if (!num || !den || num < den || num > 256 * den)
		num = den = 1;
	kcp->wire_hdr = KCPX_MIN(hdr, 4096u);
	kcp->wire_num = num;
	kcp->wire_den = den;
	kcpx_cc_set_seg(&kcp->cc, seg_cost(kcp, kcp->mss));
}

/*
 * The peer's running total of our datagrams it dropped before reading them. Untrusted
 * beyond the AEAD (any authenticated peer may send anything): a total that went back
 * (a reordered or repeated report) counts nothing, and one report adds at most
 * LD_CREDIT_MAX, which is also all the loss credit it can give; the controller reacts
 * at most once per round whatever the count.
 */
static void take_drop_report(struct kcpx_kcp *kcp, uint32_t total, uint32_t now)
{
	int32_t d = kcpx_diff32(total, kcp->rd_peer);
	uint32_t n;

	if (d <= 0)
		return;
	kcp->rd_peer = total;
	n = KCPX_MIN((uint32_t)d, LD_CREDIT_MAX);
	kcp->peer_drops += n;
	if (!paced(kcp))
		return;
	kcp->ld_credit = KCPX_MIN(kcp->ld_credit + n, LD_CREDIT_MAX);
	kcpx_cc_on_peer_drop(&kcp->cc, now, n);
}

void kcpx_kcp_rx_dropped(struct kcpx_kcp *kcp, uint32_t n)
{
	kcp->rxd_total += n;
}

void kcpx_kcp_set_drop_report(struct kcpx_kcp *kcp, bool on)
{
	kcp->drop_report = on;
}

void kcpx_kcp_local_drop(struct kcpx_kcp *kcp, uint32_t now, uint32_t n)
{
	if (!paced(kcp))
		return;
	kcp->ld_credit = (uint32_t)KCPX_MIN((uint64_t)kcp->ld_credit + n, LD_CREDIT_MAX);
	kcpx_cc_on_local_drop(&kcp->cc, now, n);
}

enum kcpx_cc_state kcpx_kcp_cc_state(const struct kcpx_kcp *kcp)
{
	return kcp->cc.state;
}

void kcpx_kcp_loss_counts(const struct kcpx_kcp *kcp, uint64_t *sent, uint64_t *lost)
{
	*sent = kcp->fa_sent;
	*lost = kcp->fa_lost;
}

void kcpx_kcp_backlog_counts(const struct kcpx_kcp *kcp, uint64_t *segs, uint64_t *held)
{
	*segs = kcp->new_segs;
	*held = kcp->held_segs;
}

void kcpx_kcp_path_segs(const struct kcpx_kcp *kcp, uint32_t *bdp, uint32_t *wnd_max)
{
	const struct kcpx_cc *cc = &kcp->cc;
	uint64_t seg = KCPX_MAX(seg_cost(kcp, kcp->mss), 1u);

	*bdp = 0;
	/* btl_bw <= KCPX_CC_RATE_MAX, min_rtt <= 60 s (cc.c): no overflow */
	if (paced(kcp) && cc->btl_bw && cc->have_rtt)
		*bdp = (uint32_t)KCPX_MIN(cc->btl_bw * cc->min_rtt / 1000 / seg,
					  (uint64_t)KCPX_KCP_WND_MAX);
	*wnd_max = kcp->wnd_grow_max ? KCPX_MAX(kcp->wnd_grow_max, kcp->snd_wnd) : kcp->snd_wnd;
}

void kcpx_kcp_set_wnd_grow(struct kcpx_kcp *kcp, unsigned max)
{
	kcp->wnd_grow_max = KCPX_MIN(max, (unsigned)KCPX_KCP_WND_MAX);
}

void kcpx_kcp_set_rcv_grow(struct kcpx_kcp *kcp, unsigned max)
{
	kcp->rcv_grow_max = KCPX_MIN(max, (unsigned)KCPX_KCP_WND_MAX);
	/* back to the configured window; segments already held past it stay held (they were
	 * acknowledged) and are delivered in order as before */
	if (!kcp->rcv_grow_max)
		kcp->rcv_wnd = kcp->rcv_wnd_cfg;
}

void kcpx_kcp_set_arq(struct kcpx_kcp *kcp, bool snd, bool rcv)
{
	kcp->arq_snd = snd;
	kcp->arq_rcv = rcv;
	kcp->cc.unbound = snd;
}

unsigned kcpx_kcp_rcvwnd(const struct kcpx_kcp *kcp)
{
	return kcp->rcv_wnd;
}

void kcpx_kcp_set_ratelimit(struct kcpx_kcp *kcp, uint64_t bytes_per_s)
{
	kcpx_cc_set_ratelimit(&kcp->cc, bytes_per_s);
}

void kcpx_kcp_cc_info(const struct kcpx_kcp *kcp, struct kcpx_kcp_cc_info *info)
{
	const struct kcpx_cc *cc = &kcp->cc;

	memset(info, 0, sizeof(*info));
	info->algo = kcp->cc_algo;
	info->state = cc->state;
	info->rx_drops = kcp->rxd_total;
	info->peer_drops = kcp->peer_drops;
	if (!paced(kcp)) {
		info->inflight = (uint64_t)(kcp->snd_nxt - kcp->snd_una) * seg_cost(kcp, kcp->mss);
		return;
	}
	info->pacing_rate = cc->pacing_rate;
	info->btl_bw = cc->btl_bw;
	info->min_rtt = cc->have_rtt ? cc->min_rtt : 0;
	info->inflight = kcp->cc_inflight;
	info->inflight_cap = cc->inflight_cap;
	info->loss_ppm = (uint32_t)((uint64_t)cc->loss * 1000000 / 65536);
	info->local_drops = cc->local_drops;
	info->rounds = cc->round;
	info->startup_exit = cc->exit_why;
	info->startup_exit_bw = cc->exit_bw;
}

void kcpx_kcp_set_stream(struct kcpx_kcp *kcp, bool stream)
{
	kcp->stream = stream;
}

void kcpx_kcp_set_ack_nodelay(struct kcpx_kcp *kcp, bool on)
{
	kcp->ack_nodelay = on;
}

void kcpx_kcp_set_tlp(struct kcpx_kcp *kcp, bool on)
{
	kcp->tlp = on;
}

void kcpx_kcp_set_quickack(struct kcpx_kcp *kcp, bool on)
{
	kcp->quickack = on;
}

void kcpx_kcp_set_rto_hygiene(struct kcpx_kcp *kcp, bool on)
{
	kcp->rto_hygiene = on;
}

void kcpx_kcp_set_silent(struct kcpx_kcp *kcp, uint32_t give_up_ms)
{
	kcp->give_up_ms = give_up_ms;
	if (!give_up_ms)
		kcp->silent = false;
}

bool kcpx_kcp_silent(const struct kcpx_kcp *kcp)
{
	return kcp->silent;
}

bool kcpx_kcp_gave_up(const struct kcpx_kcp *kcp)
{
	return kcp->gave_up;
}

/* ---- send ---- */

int kcpx_kcp_send(struct kcpx_kcp *kcp, const uint8_t *buf, size_t len)
{
	struct kseg *first = NULL, *last = NULL, *s;
	size_t fill = 0, rest, count, i;
	uint32_t mss = kcp->mss;

	if (len == 0)
		return -EINVAL;

	/* stream mode: top up the last queued segment (not yet sent, so still mutable) */
	if (kcp->stream && kcp->sq_tail) {
		struct kseg *t = kcp->sq_tail;
		uint32_t room = KCPX_MIN(mss, t->cap);
		if (t->len < room)
			fill = KCPX_MIN(len, (size_t)(room - t->len));
	}
	rest = len - fill;
	count = (rest + mss - 1) / mss;
	if (!kcp->stream) {
		count = count ? count : 1;
		if (count > 255)
			return -EMSGSIZE;
	}

	/* allocate everything first, so that failure leaves the queue as it was */
	for (i = 0; i < count; i++) {
		s = seg_get(kcp, mss);
		if (!s)
			goto nomem;
		if (last)
			last->next = s;
		else
			first = s;
		last = s;
	}

	if (fill) {
		struct kseg *t = kcp->sq_tail;
		memcpy(t->data + t->len, buf, fill);
		t->len += (uint32_t)fill;
		buf += fill;
	}
	for (s = first, i = 0; s; s = s->next, i++) {
		uint32_t n = (uint32_t)KCPX_MIN(rest, (size_t)mss);
		memcpy(s->data, buf, n);
		s->len = n;
		s->frg = kcp->stream ? 0 : (uint8_t)(count - i - 1);
		buf += n;
		rest -= n;
	}
	if (first) {
		if (kcp->sq_tail)
			kcp->sq_tail->next = first;
		else
			kcp->sq_head = first;
		kcp->sq_tail = last;
		kcp->sq_len += (uint32_t)count;
	}
	return 0;

nomem:
	while (first) {
		s = first->next;
		seg_put(kcp, first);
		first = s;
	}
	return -ENOMEM;
}

unsigned kcpx_kcp_waitsnd(const struct kcpx_kcp *kcp)
{
	return kcp->sq_len + (kcp->snd_nxt - kcp->snd_una);
}

unsigned kcpx_kcp_sndwnd(const struct kcpx_kcp *kcp)
{
	return snd_wnd_eff(kcp);
}

/* ---- receive ---- */

static inline struct kseg *rslot(const struct kcpx_kcp *kcp, uint32_t sn)
{
	struct kseg *s = kcp->rring[sn & kcp->rmask];
	return s && s->sn == sn ? s : NULL;
}

/* Pop the queue's head segment. */
static void rcv_pop(struct kcpx_kcp *kcp)
{
	struct kseg *s = kcp->rring[kcp->rcv_head & kcp->rmask];
	kcp->rring[kcp->rcv_head & kcp->rmask] = NULL;
	kcp->rcv_head++;
	kcp->rcv_off = 0;
	seg_put(kcp, s);
}

/* Stream mode: an empty segment at the queue's head carries nothing; let it go so it
 * does not hold a window slot. */
static void rcv_drop_empty(struct kcpx_kcp *kcp)
{
	while (kcp->stream && kcp->rcv_head != kcp->rcv_nxt &&
	       kcp->rring[kcp->rcv_head & kcp->rmask]->len == 0)
		rcv_pop(kcp);
}

/* Move in-order segments from the buffer to the queue while the queue has room. */
static void rcv_advance(struct kcpx_kcp *kcp)
{
	struct kseg *s;
	while (kcp->rcv_nxt - kcp->rcv_head < kcp->rcv_wnd && (s = rslot(kcp, kcp->rcv_nxt))) {
		kcp->rcv_avail += s->len;
		kcp->rcv_nxt++;
		kcp->rcv_buffered--;
	}
	rcv_drop_empty(kcp);
}

/* Message mode: size and segment count of the next whole message, or -1. */
static long peek_msg(const struct kcpx_kcp *kcp, uint32_t *nseg)
{
	long size = 0;
	uint32_t sn;
	for (sn = kcp->rcv_head; sn != kcp->rcv_nxt; sn++) {
		const struct kseg *s = kcp->rring[sn & kcp->rmask];
		size += s->len;
		if (s->frg == 0) {
			*nseg = sn - kcp->rcv_head + 1;
			return size;
		}
	}
	return -1;
}

ssize_t kcpx_kcp_recv(struct kcpx_kcp *kcp, uint8_t *buf, size_t len)
{
	bool was_full = kcp->rcv_nxt - kcp->rcv_head >= kcp->rcv_wnd;
	size_t copied = 0;

	if (kcp->stream) {
		if (kcp->rcv_avail == 0)
			return -EAGAIN;
		while (copied < len && kcp->rcv_head != kcp->rcv_nxt) {
			struct kseg *s = kcp->rring[kcp->rcv_head & kcp->rmask];
			size_t n = KCPX_MIN((size_t)(s->len - kcp->rcv_off), len - copied);
			memcpy(buf + copied, s->data + kcp->rcv_off, n);
			copied += n;
			kcp->rcv_off += (uint32_t)n;
			if (kcp->rcv_off == s->len)
				rcv_pop(kcp);
		}
		kcp->rcv_avail -= copied;
	} else {
		uint32_t nseg = 0, i;
		long size = peek_msg(kcp, &nseg);
		if (size < 0)
			return -EAGAIN;
		if ((size_t)size > len)
			return -ENOBUFS;
		for (i = 0; i < nseg; i++) {
			struct kseg *s = kcp->rring[kcp->rcv_head & kcp->rmask];
			memcpy(buf + copied, s->data, s->len);
			copied += s->len;
			rcv_pop(kcp);
		}
		kcp->rcv_avail -= copied;
	}
	rcv_advance(kcp);
	/* the queue was full, so the peer saw wnd 0: tell it at once that it may go on */
	if (was_full && kcp->rcv_nxt - kcp->rcv_head < kcp->rcv_wnd) {
		kcp->probe |= ASK_TELL;
		if (kcp->rto_hygiene && kcp->told_zero) {
			/* and again until a segment newer than all before shows it heard */
			kcp->persist = true;
			kcp->persist_tries = 0;
			kcp->persist_sn = kcp->top_sn;
			kcp->ts_tell = 0;
		}
		kcp->told_zero = false;
	}
	return (ssize_t)copied;
}

size_t kcpx_kcp_readable(const struct kcpx_kcp *kcp)
{
	uint32_t nseg;
	long size;
	if (kcp->stream)
		return kcp->rcv_avail;
	size = peek_msg(kcp, &nseg);
	return size < 0 ? 0 : (size_t)size;
}

/*
 * Between kcpx ends (rcv_grow_max): the receive window doubles, up to rcv_grow_max, when
 * the out-of-order span behind a hole reaches half of it. A hole holds rcv_nxt for as long
 * as its repair takes (the RTT, the ACK's hold, the resend's pacing, a lost resend's
 * RTO) while the sender goes on up to rcv_head + rcv_wnd; a span of half the window means
 * that a repair taking twice as long would stall the sender at our edge. So the window
 * ends at least twice what arrives while a hole waits for its repair (at least 2 x rate
 * x (RTT + ACK delay), 2 x BDP and more, whenever the window was what bound). It never
 * shrinks while the session lives: a shrinking edge drops what the sender already sent.
 * A slow reader does not grow it (its queue takes the window, no span behind a hole),
 * and the sender's own window (snd_wnd_eff) still follows its controller.
 *
 * Only on a long path: while the holes' repairs take RCV_GROW_REPAIR_MIN or more at the
 * shortest (hole_min, rcv_repair), the receiver's view of the round trip (it has no RTT of its own
 * while it only receives). On a 50 ms path the window that binds kept the sender's
 * standing queue lower (test_fecadapt test_rpc_tail over its bound at 5 %), and the
 * sender's window there binds about where ours did anyway (docs/CONGESTION.md). Or on
 * any path while the peer leaves the loss to ARQ (kcpx_kcp_set_arq: it sends next to no
 * parity), when every loss holds rcv_nxt a round trip and the sender's window spans
 * the holes too (session 11).
 */
#define RCV_GROW_REPAIR_MIN 100u /* ms, as snd_wnd_eff's WND_HOLES_MIN_RTT */
static void rcv_grow(struct kcpx_kcp *kcp, uint32_t sn)
{
	uint32_t span = sn - kcp->rcv_nxt + 1;

	if (kcp->rcv_wnd < kcp->rcv_grow_max && span >= kcp->rcv_wnd / 2 &&
	    (kcp->hole_min >= RCV_GROW_REPAIR_MIN || kcp->arq_rcv))
		kcp->rcv_wnd = KCPX_MIN(2 * kcp->rcv_wnd, kcp->rcv_grow_max);
}

/*
 * sn fills the hole at rcv_nxt with segments held past it. If sn + 1 is held, the hole
 * was known from that segment's arrival on, and its repair took from then to now: a
 * round trip at least (the sender learns of the loss from the ACKs of what follows, and
 * its resend crosses the path), more when the repair was lost or queued. The shortest
 * of a batch of HOLE_BATCH repairs reads the round trip; batches rather than one
 * all-time minimum, since a session's first flights can fill a hole sooner than a round
 * trip (seen once at 51 ms on a 150 ms path: what was sent before the peer's window was
 * known) and the path may change. Only copies that came as sent: a shard FEC rebuilt
 * from parity fills a hole within its group, not a round trip later.
 */
#define HOLE_BATCH 16u
static void rcv_repair(struct kcpx_kcp *kcp, uint32_t sn, uint32_t now)
{
	const struct kseg *next = rslot(kcp, sn + 1);
	int32_t took;

	if (!next)
		return;
	took = kcpx_diff32(now, next->resendts);
	if (took <= 0)
		return;
	if (!kcp->hole_n || (uint32_t)took < kcp->hole_cur)
		kcp->hole_cur = (uint32_t)took;
	if (++kcp->hole_n == HOLE_BATCH) {
		kcp->hole_min = kcp->hole_cur;
		kcp->hole_n = 0;
	}
}

/* Store a PUSH whose sn is in [rcv_nxt, rcv_nxt + rcv_wnd). 1 if it was a repeat, 0 if
 * stored, -ENOMEM (not stored, not acknowledged: the sender resends it; the session goes
 * on with what the ring and the pool can hold). */
static int rcv_store(struct kcpx_kcp *kcp, uint32_t sn, uint8_t frg, const uint8_t *data,
		     uint32_t len, uint32_t now, bool regular)
{
	struct kseg *s;
	/* before rslot: a ring too small for sn would alias it to another segment's slot */
	if (rring_fit(kcp, sn - kcp->rcv_head + 1))
		return -ENOMEM;
	if (rslot(kcp, sn))
		return 1;
	s = seg_get(kcp, len);
	if (!s)
		return -ENOMEM;
	s->sn = sn;
	s->frg = frg;
	s->len = len;
	s->resendts = now; /* a received segment's arrival (rcv_repair) */
	memcpy(s->data, data, len);
	kcp->rring[sn & kcp->rmask] = s;
	kcp->rcv_buffered++;
	if (sn == kcp->rcv_nxt) {
		if (kcp->rcv_grow_max && regular && kcp->rcv_buffered > 1)
			rcv_repair(kcp, sn, now);
		rcv_advance(kcp);
		kcp->quick_ooo = 0;
	} else if (kcp->rcv_grow_max) {
		rcv_grow(kcp, sn);
	}
	return 0;
}

static uint16_t wnd_unused(const struct kcpx_kcp *kcp)
{
	uint32_t q = kcp->rcv_nxt - kcp->rcv_head;
	return q < kcp->rcv_wnd ? (uint16_t)(kcp->rcv_wnd - q) : 0;
}

/* ---- RTT ---- */

/* RFC 6298 with kcp-go's integer arithmetic and its reduced weight for samples below
 * srtt - rttvar. */
static void update_ack(struct kcpx_kcp *kcp, int32_t rtt)
{
	uint32_t rto, var4;
	if (kcp->rx_srtt == 0) {
		kcp->rx_srtt = rtt;
		kcp->rx_rttvar = rtt >> 1;
	} else {
		int32_t delta = rtt - kcp->rx_srtt;
		kcp->rx_srtt += delta >> 3;
		if (delta < 0)
			delta = -delta;
		if (rtt < kcp->rx_srtt - kcp->rx_rttvar)
			kcp->rx_rttvar += (delta - kcp->rx_rttvar) >> 5;
		else
			kcp->rx_rttvar += (delta - kcp->rx_rttvar) >> 2;
	}
	var4 = (uint32_t)kcp->rx_rttvar << 2;
	/* hygiene: a burst of jitter must not push the RTO past 2 * srtt + interval */
	if (kcp->rto_hygiene && var4 > (uint32_t)kcp->rx_srtt)
		var4 = (uint32_t)kcp->rx_srtt;
	rto = (uint32_t)kcp->rx_srtt + KCPX_MAX(kcp->interval, var4);
	if (paced(kcp))
		rto += kcp->rto_pad; /* rto_adapt */
	if (rto < kcp->rx_minrto)
		rto = kcp->rx_minrto;
	if (rto > KCPX_KCP_RTO_MAX)
		rto = KCPX_KCP_RTO_MAX;
	kcp->rx_rto = rto;
}

/* ---- input ---- */

/* Cumulative ack: everything before una is delivered. Returns segments released. */
static uint32_t parse_una(struct kcpx_kcp *kcp, uint32_t una, uint32_t now)
{
	uint32_t end, sn, n;
	if (kcpx_diff32(una, kcp->snd_una) <= 0)
		return 0;
	end = kcpx_diff32(una, kcp->snd_nxt) > 0 ? kcp->snd_nxt : una;
	for (sn = kcp->snd_una; sn != end; sn++) {
		struct kseg *s = kcp->sring[sn & kcp->smask];
		if (s)
			snd_release(kcp, s, now);
	}
	n = end - kcp->snd_una;
	kcp->snd_una = end;
	return n;
}

static void parse_ack(struct kcpx_kcp *kcp, uint32_t sn, uint32_t now)
{
	struct kseg *s = kcp->sring[sn & kcp->smask];
	if (s && s->sn == sn)
		snd_release(kcp, s, now);
}

/*
 * kcp-go's fast-ack accounting for a batch of ACKs (each already checked to lie in
 * [snd_una, snd_nxt) when it arrived): every unacked segment below an ACKed sn and sent
 * no later than that ACK's echoed ts gains one fastack per such ACK. Counting stops at
 * the threshold, the only thing that matters beyond "> 0". Returns true when some
 * segment reached fastresend (kcp-go's shouldFastAck).
 */
static bool parse_fastack(struct kcpx_kcp *kcp, const struct ackitem *a, uint32_t n)
{
	uint32_t max_sn = a[0].sn, max_ts = a[0].ts, i;
	uint32_t cap = kcp->fastresend ? kcp->fastresend : 1;
	bool trigger = false;
	struct kseg *s;

	for (i = 1; i < n; i++) {
		if (kcpx_diff32(a[i].sn, max_sn) > 0)
			max_sn = a[i].sn;
		if (kcpx_diff32(a[i].ts, max_ts) > 0)
			max_ts = a[i].ts;
	}
	for (s = kcp->ua_head; s && before(s->sn, max_sn); s = s->unext) {
		uint32_t f = s->fastack, add = 0;
		if (f == FASTACK_DONE || f >= cap || kcpx_diff32(s->ts, max_ts) > 0)
			continue;
		for (i = n; i-- > 0;) {
			if (before(s->sn, a[i].sn) && kcpx_diff32(s->ts, a[i].ts) <= 0) {
				if (f + ++add >= cap)
					break;
			}
		}
		if (add) {
			set_fastack(kcp, s, f + add);
			if (f + add >= kcp->fastresend)
				trigger = true;
			if (kcp->fastresend && f + add >= kcp->fastresend)
				cc_gone(kcp, s);
		}
	}
	return trigger;
}

static int ack_push(struct kcpx_kcp *kcp, uint32_t sn, uint32_t ts)
{
	if (kcp->ack_n == kcp->ack_cap) {
		struct ackitem *na = realloc(kcp->acks, 2 * kcp->ack_cap * sizeof(*na));
		if (!na)
			return -ENOMEM;
		kcp->acks = na;
		kcp->ack_cap *= 2;
	}
	kcp->acks[kcp->ack_n].sn = sn;
	kcp->acks[kcp->ack_n].ts = ts;
	kcp->ack_n++;
	return 0;
}

/*
 * quickack: is the PUSH with this sn (inside the receive window) worth an immediate
 * ACK? Yes when it fills a gap, repeats data we hold (our ACK got lost), opens a new
 * gap, or is among the first two out-of-order arrivals since rcv_nxt last moved (two
 * is kcptun's fast-resend threshold). Not for in-order data without a gap, nor for the
 * rest of a run behind a known gap: those wait for the next flush as in kcp-go.
 */
static bool want_quick(struct kcpx_kcp *kcp, uint32_t sn)
{
	int32_t d = kcpx_diff32(sn, kcp->rcv_nxt);
	if (d < 0 || rslot(kcp, sn))
		return true;
	if (d == 0)
		return kcp->rcv_buffered != 0;
	if (kcp->quick_ooo < 2 || !rslot(kcp, sn - 1)) {
		kcp->quick_ooo++;
		return true;
	}
	return false;
}

/* An ACK echoing the ts of an earlier transmission than the segment's last one: that
 * copy arrived, so the retransmission was not needed and counts as no loss. */
static void cc_check_echo(struct kcpx_kcp *kcp, uint32_t sn, uint32_t ts)
{
	struct kseg *s;

	if (kcpx_diff32(sn, kcp->snd_una) < 0 || !before(sn, kcp->snd_nxt))
		return;
	s = kcp->sring[sn & kcp->smask];
	if (s && s->sn == sn && s->xmit > 1) {
		if (ts == s->ts) {
			s->cc_last = true;
		} else {
			s->cc_spur = true;
		}
	}
}

/* Any header's una may release a segment before its own ACK comes up in the datagram,
 * so the echoes are looked at first, in one pass over the (bounds-checked) headers. */
static void cc_scan_echoes(struct kcpx_kcp *kcp, const uint8_t *data, size_t len)
{
	while (len >= KCPX_KCP_OVERHEAD) {
		uint32_t dlen = kcpx_get_le32(data + 20);
		if (kcpx_get_le32(data) != kcp->conv || dlen > len - KCPX_KCP_OVERHEAD)
			return;
		if (data[4] == KCPX_KCP_CMD_ACK)
			cc_check_echo(kcp, kcpx_get_le32(data + 12), kcpx_get_le32(data + 8));
		data += KCPX_KCP_OVERHEAD + dlen;
		len -= KCPX_KCP_OVERHEAD + dlen;
	}
}

enum flush_kind { FLUSH_ACKONLY, FLUSH_FULL };
static void flush(struct kcpx_kcp *kcp, uint32_t now, enum flush_kind kind);
static void silence_end(struct kcpx_kcp *kcp, uint32_t now);

int kcpx_kcp_input(struct kcpx_kcp *kcp, const uint8_t *data, size_t len, uint32_t now,
		   bool regular)
{
	struct ackitem batch[ACK_BATCH];
	uint32_t nbatch = 0, prev_una = kcp->snd_una, latest = 0;
	uint64_t in_segs = 0, repeats = 0;
	bool got_ack = false, slide = false, fast = false, quick = false, heard = false;
	int err = 0;

	if (len < KCPX_KCP_OVERHEAD)
		err = -EINVAL;
	if (paced(kcp) && regular)
		cc_scan_echoes(kcp, data, len);

	while (!err && len >= KCPX_KCP_OVERHEAD) {
		uint32_t conv = kcpx_get_le32(data);
		uint8_t cmd = data[4], frg = data[5];
		uint16_t wnd = kcpx_get_le16(data + 6);
		uint32_t ts = kcpx_get_le32(data + 8);
		uint32_t sn = kcpx_get_le32(data + 12);
		uint32_t una = kcpx_get_le32(data + 16);
		uint32_t dlen = kcpx_get_le32(data + 20);
		const uint8_t *payload = data + KCPX_KCP_OVERHEAD;

		if (conv != kcp->conv || dlen > len - KCPX_KCP_OVERHEAD ||
		    cmd < KCPX_KCP_CMD_PUSH || cmd > KCPX_KCP_CMD_WINS) {
			err = -EINVAL;
			break;
		}
		data += KCPX_KCP_OVERHEAD + dlen;
		len -= KCPX_KCP_OVERHEAD + dlen;
		kcp->heard = now;
		heard = true;

		/* only real packets carry a current window; FEC rebuilds may be stale */
		if (regular)
			kcp->rmt_wnd = wnd;
		if (parse_una(kcp, una, now))
			slide = true;

		switch (cmd) {
		case KCPX_KCP_CMD_ACK:
			if (kcpx_diff32(sn, kcp->snd_una) >= 0 && before(sn, kcp->snd_nxt)) {
				parse_ack(kcp, sn, now);
				batch[nbatch].sn = sn;
				batch[nbatch].ts = ts;
				if (++nbatch == ACK_BATCH) {
					fast |= parse_fastack(kcp, batch, nbatch);
					nbatch = 0;
				}
			}
			/* every ACK echoes the ts of the transmission it saw, also one whose sn
			 * the una in its header already covered */
			if (paced(kcp) && regular && kcpx_diff32(now, ts) >= 0)
				kcpx_cc_on_rtt(&kcp->cc, now, (uint32_t)kcpx_diff32(now, ts));
			got_ack = true;
			latest = ts;
			break;
		case KCPX_KCP_CMD_PUSH: {
			int r = 1;
			if (before(sn, kcp->rcv_nxt + kcp->rcv_wnd)) {
				if (kcp->quickack)
					quick |= want_quick(kcp, sn);
				if (kcpx_diff32(sn, kcp->rcv_nxt) >= 0)
					r = rcv_store(kcp, sn, frg, payload, dlen, now, regular);
				if (r == 0 &&
				    (!kcp->have_top || kcpx_diff32(sn, kcp->top_sn) > 0)) {
					kcp->top_sn = sn;
					kcp->have_top = true;
				}
				if (r == 0 && kcp->persist && kcpx_diff32(sn, kcp->persist_sn) > 0)
					kcp->persist = false; /* new data: the sender heard */
				/* acknowledge what we hold (again, if it was a repeat) */
				if (r >= 0)
					ack_push(kcp, sn, ts);
			}
			if (regular && r == 1)
				repeats++;
			break;
		}
		case KCPX_KCP_CMD_WASK:
			kcp->probe |= ASK_TELL;
			break;
		default: /* WINS: the window was taken from the header above */
			if (dlen == KCPX_KCP_DROP_REPORT_LEN &&
			    payload[0] == KCPX_KCP_DROP_REPORT_KIND)
				take_drop_report(kcp, kcpx_get_le32(payload + 4), now);
			break;
		}
		in_segs++;
	}
	if (nbatch)
		fast |= parse_fastack(kcp, batch, nbatch);
	rh_trim(kcp); /* acknowledged segments' deadlines must not wake the owner */

	if (kcp->snmp) {
		snmp_add(&kcp->snmp->InSegs, in_segs);
		snmp_add(&kcp->snmp->RepeatSegs, repeats);
		snmp_add(&kcp->snmp->KCPInErrors, err ? 1 : 0);
	}

	if (got_ack && regular && kcpx_diff32(now, latest) >= 0)
		update_ack(kcp, kcpx_diff32(now, latest));
	if (paced(kcp) && (got_ack || slide))
		kcpx_cc_ack_done(&kcp->cc, now, kcp->cc_inflight);

	/* ikcp's congestion window growth: slow start below ssthresh, then ~1 mss per RTT */
	if (!kcp->nocwnd && kcpx_diff32(kcp->snd_una, prev_una) > 0 && kcp->cwnd < kcp->rmt_wnd) {
		uint32_t mss = kcp->mss;
		if (kcp->cwnd < kcp->ssthresh) {
			kcp->cwnd++;
			kcp->incr += mss;
		} else {
			if (kcp->incr < mss)
				kcp->incr = mss;
			kcp->incr += (uint64_t)mss * mss / kcp->incr + mss / 16;
			if ((uint64_t)(kcp->cwnd + 1) * mss <= kcp->incr)
				kcp->cwnd = (uint32_t)((kcp->incr + mss - 1) / mss);
		}
		if (kcp->cwnd > kcp->rmt_wnd) {
			kcp->cwnd = kcp->rmt_wnd;
			kcp->incr = (uint64_t)kcp->rmt_wnd * mss;
		}
	}

	if (kcp->silent && heard && !kcp->gave_up) {
		silence_end(kcp, now);
		fast = true; /* resend what is still owed now */
	}

	/* kcp-go: send at once when the window slid or a fast retransmit is due; otherwise
	 * send ACKs alone once a datagram's worth piled up (ack clocking on fast links) or
	 * when asked to ack without delay */
	if (slide || fast)
		flush(kcp, now, FLUSH_FULL);
	else if (kcp->ack_n >= kcp->mtu / KCPX_KCP_OVERHEAD)
		flush(kcp, now, FLUSH_ACKONLY);
	else if ((kcp->ack_nodelay || (kcp->quickack && quick)) && kcp->ack_n)
		flush(kcp, now, FLUSH_ACKONLY);
	return err;
}

/* ---- flush ---- */

static void send_seg(struct kcpx_kcp *kcp, struct kseg *s, uint32_t now, uint16_t wnd)
{
	uint8_t *p = out_reserve(kcp, KCPX_KCP_OVERHEAD + s->len);
	if (paced(kcp)) {
		uint32_t c = s->cost;
		uint64_t before = kcp->cc_inflight;
		/* a first transmission was charged to cc_inflight when it got its sn; a
		 * segment deemed lost is charged again now that a copy is on the path */
		if (s->xmit == 0)
			before -= KCPX_MIN(before, (uint64_t)c);
		if (s->cc_gone) {
			s->cc_gone = false;
			kcp->cc_inflight += c;
		}
		kcpx_cc_on_send(&kcp->cc, now, c, before, &s->cct);
	}
	s->xmit++;
	s->ts = now;
	s->par_prev = s->par_last;
	s->par_last = (uint8_t)KCPX_MIN(kcp->wire_num - kcp->wire_den, 255u);
	put_hdr(p, kcp->conv, KCPX_KCP_CMD_PUSH, s->frg, wnd, now, s->sn, kcp->rcv_nxt, s->len);
	memcpy(p + KCPX_KCP_OVERHEAD, s->data, s->len);
	kcp->olen += KCPX_KCP_OVERHEAD + s->len;
	kcp->c_out++;
	if (s->xmit >= kcp->dead_link)
		kcp->dead = true;
}

/*
 * Tail-loss probe (RACK-TLP's idea): the newest unacknowledged segment, with nothing
 * sent after it, is sent once more when it has waited one srtt plus a margin for
 * jitter and the peer's ACK delay, instead of waiting out the RTO. After the probe
 * only an RTO retransmit of that segment re-arms it, so a tail costs at most one probe
 * per RTO round.
 */
static uint32_t tlp_pto(const struct kcpx_kcp *kcp)
{
	/* srtt already holds the peer's average ACK delay; half an interval more covers
	 * its worst case when both ends run the same preset */
	uint32_t margin = KCPX_MAX((uint32_t)kcp->rx_rttvar, kcp->interval / 2);
	return (uint32_t)kcp->rx_srtt + KCPX_MAX(margin, 2u);
}

static inline bool tlp_armed(const struct kcpx_kcp *kcp)
{
	return kcp->tlp && !kcp->silent && kcp->ua_tail && !kcp->ua_tail->probed &&
	       kcp->rx_srtt > 0;
}

/* Paced and new data waits only for the pacer (not for a window or the cap). */
static bool pace_waiting(const struct kcpx_kcp *kcp)
{
	return paced(kcp) && kcp->sq_head && !kcp->silent &&
	       before(kcp->snd_nxt, kcp->snd_una + KCPX_MIN(snd_wnd_eff(kcp), kcp->rmt_wnd)) &&
	       kcp->cc_inflight < kcp->cc.inflight_cap;
}

static bool timer_due(const struct kcpx_kcp *kcp, uint32_t now)
{
	uint32_t rto;

	uint64_t p = pace_now(kcp, now);

	if (pace_waiting(kcp) && p >= kcpx_cc_next_send(&kcp->cc, p))
		return true;
	if (rto_deadline(kcp, &rto) && kcpx_diff32(now, rto) >= 0)
		return true;
	return tlp_armed(kcp) && kcpx_diff32(now, kcp->ua_tail->ts + tlp_pto(kcp)) >= 0;
}

/* One segment of the retransmission walk, kcp-go's four cases in its order.
 * Returns 1 for a fast/early retransmit (kcp-go's "change"). */
static int retrans_one(struct kcpx_kcp *kcp, struct kseg *s, uint32_t now, uint16_t wnd,
		       uint32_t resent, uint32_t newsegs, bool rto_walk)
{
	kcp->walk_steps++;
	/* an RTO due means lost, whether or not the pacer lets the copy go now */
	if (rto_walk && kcpx_diff32(now, s->resendts) >= 0)
		cc_gone(kcp, s);
	/* paced: a retransmission waits for its turn like new data (it stays due) */
	if (pace_empty(kcp))
		return 0;
	if (s->fastack != FASTACK_DONE && s->fastack >= resent) {
		kcp->c_fast++;
	} else if (is_cand(s) && newsegs == 0) {
		kcp->c_early++;
	} else if (rto_walk && kcpx_diff32(now, s->resendts) >= 0) {
		s->rto += kcp->nodelay ? kcp->rx_rto / 2 : kcp->rx_rto;
		/* hygiene: kcp-go's backoff grows without bound; stop it at 2 * rto */
		if (kcp->rto_hygiene && s->rto > 2 * kcp->rx_rto)
			s->rto = KCPX_MIN(2 * kcp->rx_rto, KCPX_KCP_RTO_MAX);
		s->probed = false;
		set_fastack(kcp, s, 0);
		set_resend(kcp, s, now + s->rto);
		kcp->c_lost++;
		s->cc_lost_ts = s->ts;
		s->rto_sent = true;
		send_seg(kcp, s, now, wnd);
		return 0;
	} else {
		return 0;
	}
	s->cc_lost_ts = s->ts;
	s->rto_sent = false;
	set_fastack(kcp, s, FASTACK_DONE);
	s->rto = kcp->rx_rto;
	set_resend(kcp, s, now + s->rto);
	send_seg(kcp, s, now, wnd);
	return 1;
}

/* Is the peer silent (kcp.h)? Enters the state, and gives up after give_up_ms. */
static bool silence_check(struct kcpx_kcp *kcp, uint32_t now)
{
	uint32_t quiet;

	if (!kcp->give_up_ms || !kcp->ua_head || kcpx_diff32(now, kcp->heard) < 0)
		return false;
	quiet = (uint32_t)kcpx_diff32(now, kcp->heard);
	if (!kcp->silent) {
		if (kcp->ua_head->xmit < KCPX_KCP_SILENT_XMIT ||
		    quiet < KCPX_MAX((uint32_t)KCPX_KCP_SILENT_MS, 4 * kcp->rx_rto))
			return false;
		kcp->silent = true;
		kcp->ua_head->rto = KCPX_MIN(2 * kcp->rx_rto, (uint32_t)KCPX_KCP_SILENT_PROBE_MAX);
		set_resend(kcp, kcp->ua_head, now); /* the first probe goes now */
	}
	if (quiet >= kcp->give_up_ms)
		kcp->gave_up = true;
	return true;
}

/* Silent: only the oldest segment, when due, its gap doubling up to the cap. */
static void silent_probe(struct kcpx_kcp *kcp, uint32_t now, uint16_t wnd)
{
	struct kseg *s = kcp->ua_head;

	if (kcpx_diff32(now, s->resendts) >= 0 && !pace_empty(kcp)) {
		set_fastack(kcp, s, 0);
		s->cc_lost_ts = s->ts;
		set_resend(kcp, s, now + s->rto);
		s->rto = KCPX_MIN(2 * s->rto, (uint32_t)KCPX_KCP_SILENT_PROBE_MAX);
		kcp->c_lost++;
		send_seg(kcp, s, now, wnd);
	}
}

/* Input after silence: every segment still owed is due at once. */
static void silence_end(struct kcpx_kcp *kcp, uint32_t now)
{
	kcp->silent = false;
	/* all due at once: the RTO queue becomes the unacked list's sn order */
	for (struct kseg *s = kcp->ua_head; s; s = s->unext) {
		s->rto = kcp->rx_rto;
		if (s->xmit)
			set_resend(kcp, s, now);
	}
}

static void flush(struct kcpx_kcp *kcp, uint32_t now, enum flush_kind kind)
{
	uint16_t wnd = wnd_unused(kcp);
	uint32_t last_sn = 0, last_ts = 0, i, cwnd, grown, resent, newsegs = 0, change = 0;
	struct kseg *s, *first_new = NULL;
	uint64_t lost_before = kcp->c_lost;
	int64_t tokens = 0;
	bool cc_limited = false;

	kcp->pace_us = pace_now(kcp, now);
	kcp->pace_set = true;
	if (wnd == 0)
		kcp->told_zero = true; /* whatever this flush sends says so */
	/* ACKs; one below rcv_nxt is already covered by una and only the newest of those
	 * is kept (kcp-go filters bufferbloat duplicates this way) */
	for (i = 0; i < kcp->ack_n; i++) {
		const struct ackitem *a = &kcp->acks[i];
		if (kcpx_diff32(a->sn, kcp->rcv_nxt) >= 0 || i == kcp->ack_n - 1) {
			out_ctrl(kcp, KCPX_KCP_CMD_ACK, wnd, a->ts, a->sn);
			last_sn = a->sn;
			last_ts = a->ts;
		}
	}
	kcp->ack_n = 0;
	if (kcp->drop_report && (kcp->rxd_total != kcp->rxd_sent || kcp->rxd_repeat) &&
	    kcp->mtu >= KCPX_KCP_OVERHEAD + KCPX_KCP_DROP_REPORT_LEN)
		out_drop_report(kcp, wnd);
	if (kind == FLUSH_ACKONLY)
		goto out;
	if (silence_check(kcp, now)) {
		silent_probe(kcp, now, wnd);
		goto out;
	}

	/* remote window closed: probe it, first after PROBE_INIT (rto_hygiene: rto), then
	 * backing off x1.5 */
	if (kcp->rmt_wnd == 0) {
		uint32_t first = kcp->rto_hygiene ? KCPX_MAX(kcp->rx_rto, 10u) : PROBE_INIT;

		if (kcp->probe_wait == 0) {
			kcp->probe_wait = first;
			kcp->ts_probe = now + kcp->probe_wait;
		} else if (kcpx_diff32(now, kcp->ts_probe) >= 0) {
			if (kcp->probe_wait < first)
				kcp->probe_wait = first;
			kcp->probe_wait += kcp->probe_wait / 2;
			if (kcp->probe_wait > (kcp->rto_hygiene ? PROBE_MAX_MS : PROBE_LIMIT))
				kcp->probe_wait = kcp->rto_hygiene ? PROBE_MAX_MS : PROBE_LIMIT;
			kcp->ts_probe = now + kcp->probe_wait;
			kcp->probe |= ASK_SEND;
		}
	} else {
		kcp->ts_probe = 0;
		kcp->probe_wait = 0;
	}
	if (kcp->persist && wnd > 0) {
		if (!kcp->ts_tell) {
			kcp->tell_wait = KCPX_MAX(kcp->rx_rto, 10u);
			kcp->ts_tell = now + kcp->tell_wait;
		} else if (kcpx_diff32(now, kcp->ts_tell) >= 0) {
			kcp->probe |= ASK_TELL;
			if (++kcp->persist_tries >= PERSIST_TRIES)
				kcp->persist = false;
			kcp->tell_wait = KCPX_MIN(kcp->tell_wait * 2, PERSIST_MAX_MS);
			kcp->ts_tell = now + kcp->tell_wait;
		}
	}
	/* kcp-go reuses the last ACK's sn/ts for these; copy that for byte-exactness */
	if (kcp->probe & ASK_SEND)
		out_ctrl(kcp, KCPX_KCP_CMD_WASK, wnd, last_ts, last_sn);
	if (kcp->probe & ASK_TELL)
		out_ctrl(kcp, KCPX_KCP_CMD_WINS, wnd, last_ts, last_sn);
	kcp->probe = 0;

	/* new segments: snd_nxt may run up to snd_una + min(snd_wnd, rmt_wnd[, cwnd]) */
	grown = snd_wnd_eff(kcp);
	cwnd = KCPX_MIN(grown, kcp->rmt_wnd);
	if (!kcp->nocwnd)
		cwnd = KCPX_MIN(kcp->cwnd, cwnd);
	if (paced(kcp))
		tokens = kcpx_cc_tokens(&kcp->cc, kcp->pace_us);
	while (kcp->sq_head && before(kcp->snd_nxt, kcp->snd_una + cwnd)) {
		uint32_t c = 0;

		if (paced(kcp)) {
			c = seg_cost(kcp, kcp->sq_head->len);
			if (tokens <= 0 || kcp->cc_inflight >= kcp->cc.inflight_cap) {
				cc_limited = true;
				break;
			}
			tokens -= c;
			kcp->pace_owed += c;
			kcp->cc_inflight += c;
		}
		if (sring_fit(kcp, kcp->snd_nxt - kcp->snd_una + 1)) {
			if (paced(kcp)) {
				kcp->cc_inflight -= c;
				kcp->pace_owed -= c;
			}
			break;
		}
		s = kcp->sq_head;
		kcp->sq_head = s->next;
		if (!kcp->sq_head)
			kcp->sq_tail = NULL;
		kcp->sq_len--;
		s->next = NULL;
		s->sn = kcp->snd_nxt++;
		s->cost = c;
		kcp->sring[s->sn & kcp->smask] = s;
		ua_append(kcp, s, now);
		if (!first_new)
			first_new = s;
		newsegs++;
	}
	/* new data sent with more behind it (queued, or the window full): what the sender's
	 * limits held back, not what the owner had (kcpx_kcp_backlog_counts) */
	kcp->new_segs += newsegs;
	if (kcp->sq_head || !before(kcp->snd_nxt, kcp->snd_una + cwnd))
		kcp->held_segs += newsegs;
	/*
	 * Out of data or of window below the cap: the next samples are not the path's. But
	 * a window grown to the path's need (snd_wnd_eff: three BDPs and two ACK batches)
	 * gates the owner's queue too, so "out of data" is mostly that window, seen between
	 * an ACK and the owner's refill. While it holds at least half of it in flight (a
	 * BDP of the estimate or more) the pipe is full and the samples are the path's; they
	 * must count, or the estimate (and the window made from it) could never fall. Not
	 * at the ceiling (--maxwnd): that window may be less than the path needs.
	 */
	if (paced(kcp) && grown > kcp->snd_wnd && grown < kcp->wnd_grow_max && cwnd == grown &&
	    2 * (kcp->snd_nxt - kcp->snd_una) >= grown)
		cc_limited = true;
	if (paced(kcp) && !cc_limited)
		kcpx_cc_app_limited(&kcp->cc, kcp->cc_inflight);

	/* retransmissions: fast and early ones in sn order, as far as the candidates go
	 * (kcp-go's walk visits them in that order), then the segments whose RTO is due,
	 * earliest deadline first; a segment resent is requeued behind them */
	resent = kcp->fastresend ? kcp->fastresend : UINT32_MAX;
	if (kcp->fast_cand) {
		uint32_t left = kcp->fast_cand;
		for (s = kcp->ua_head; s && left && s != first_new; s = s->unext) {
			if (!is_cand(s))
				continue;
			left--;
			change += retrans_one(kcp, s, now, wnd, resent, newsegs, false);
		}
	}
	for (;;) {
		const struct rh_ent *e;

		rh_trim(kcp);
		e = rh_top(kcp);
		if (!e || kcpx_diff32(now, e->when) < 0)
			break;
		if (pace_empty(kcp)) {
			rh_gone_due(kcp, now);
			break;
		}
		/* with tokens, a due segment is always resent and its deadline moves on
		 * (a new entry); this one is stale then */
		s = rh_seg(kcp, e);
		rh_pop_top(kcp);
		change += retrans_one(kcp, s, now, wnd, resent, newsegs, true);
		if (kcpx_diff32(now, s->resendts) >= 0) {
			set_resend(kcp, s, s->resendts);
			break;
		}
	}

	kcp->pace_owed = 0;
	for (s = first_new; s; s = s->unext) {
		s->rto = kcp->rx_rto;
		set_resend(kcp, s, now + s->rto);
		send_seg(kcp, s, now, wnd);
	}

	if (newsegs == 0 && tlp_armed(kcp)) {
		s = kcp->ua_tail;
		if (kcpx_diff32(now, s->ts + tlp_pto(kcp)) >= 0) {
			s->probed = true;
			send_seg(kcp, s, now, wnd);
			/* restart its RTO from the probe, without backing off */
			if (before(s->resendts, now + s->rto))
				set_resend(kcp, s, now + s->rto);
			kcp->c_tlp++;
		}
	}

	/* ikcp's congestion response: halve on fast retransmit, collapse on RTO */
	if (!kcp->nocwnd) {
		if (change) {
			uint32_t inflight = kcp->snd_nxt - kcp->snd_una;
			kcp->ssthresh = KCPX_MAX(inflight / 2, THRESH_MIN);
			/* wraps to ssthresh - 1 when fast resend is off (resent = ~0), as ikcp */
			kcp->cwnd = kcp->ssthresh + resent;
			kcp->incr = (uint64_t)kcp->cwnd * kcp->mss;
		}
		if (kcp->c_lost != lost_before) {
			kcp->ssthresh = KCPX_MAX(cwnd / 2, THRESH_MIN);
			kcp->cwnd = 1;
			kcp->incr = kcp->mss;
		}
		if (kcp->cwnd < 1) {
			kcp->cwnd = 1;
			kcp->incr = kcp->mss;
		}
	}

out:
	out_flush(kcp);
	{
		uint64_t retrans = kcp->c_fast + kcp->c_early + kcp->c_lost + kcp->c_tlp;
		kcp->tot_retrans += retrans;
		kcp->tot_lost += kcp->c_lost;
		if (kcp->snmp) {
			snmp_add(&kcp->snmp->OutSegs, kcp->c_out);
			snmp_add(&kcp->snmp->RetransSegs, retrans);
			snmp_add(&kcp->snmp->FastRetransSegs, kcp->c_fast);
			snmp_add(&kcp->snmp->EarlyRetransSegs, kcp->c_early);
			snmp_add(&kcp->snmp->LostSegs, kcp->c_lost);
		}
		kcp->c_out = kcp->c_fast = kcp->c_early = kcp->c_lost = kcp->c_tlp = 0;
	}
}

void kcpx_kcp_flush(struct kcpx_kcp *kcp, uint32_t now)
{
	flush(kcp, now, FLUSH_FULL);
}

void kcpx_kcp_update(struct kcpx_kcp *kcp, uint32_t now)
{
	int32_t slap;
	if (!kcp->updated) {
		kcp->updated = true;
		kcp->ts_flush = now;
	}
	slap = kcpx_diff32(now, kcp->ts_flush);
	if (slap >= 10000 || slap < -10000) {
		kcp->ts_flush = now;
		slap = 0;
	}
	if (slap >= 0) {
		kcp->ts_flush += kcp->interval;
		if (kcpx_diff32(now, kcp->ts_flush) >= 0)
			kcp->ts_flush = now + kcp->interval;
		flush(kcp, now, FLUSH_FULL);
	} else if (timer_due(kcp, now)) {
		flush(kcp, now, FLUSH_FULL);
	}
}

uint64_t kcpx_kcp_check_us(const struct kcpx_kcp *kcp, uint32_t now)
{
	uint64_t p = pace_now(kcp, now), at, tu = 0;
	uint32_t timer = 0;
	bool armed = false;
	int32_t d;

	if (!kcp->updated)
		return p;
	d = kcpx_diff32(now, kcp->ts_flush);
	if (d >= 10000 || d < -10000 || d >= 0)
		return p;
	at = ms_us(p, kcp->ts_flush);
	armed = rto_deadline(kcp, &timer);
	if (tlp_armed(kcp)) {
		uint32_t t = kcp->ua_tail->ts + tlp_pto(kcp);
		if (!armed || before(t, timer))
			timer = t, armed = true;
	}
	if (armed)
		tu = ms_us(p, timer);
	if (paced(kcp)) {
		uint64_t ns = kcpx_cc_next_send(&kcp->cc, p);
		/* retransmissions wait for the pacer too; the interval flush (ACKs) does not */
		if (armed && kcp->cc.tokens <= 0 && tu < ns)
			tu = ns;
		if (pace_waiting(kcp) && (!armed || ns < tu))
			tu = ns, armed = true;
	}
	if (armed && tu < at)
		at = tu;
	return at > p ? at : p;
}

uint32_t kcpx_kcp_check(const struct kcpx_kcp *kcp, uint32_t now)
{
	uint64_t at = kcpx_kcp_check_us(kcp, now);
	uint32_t ms;

	if (at <= pace_now(kcp, now))
		return now;
	/* the first ms that reaches at */
	ms = (uint32_t)((at + 999) / 1000);
	return kcpx_diff32(ms, now) > 0 ? ms : now;
}

void kcpx_kcp_info(const struct kcpx_kcp *kcp, struct kcpx_kcp_info *info)
{
	info->srtt = (uint32_t)kcp->rx_srtt;
	info->rttvar = (uint32_t)kcp->rx_rttvar;
	info->rto = kcp->rx_rto;
	info->cwnd = kcp->cwnd;
	info->snd_wnd = snd_wnd_eff(kcp);
	info->rcv_wnd = kcp->rcv_wnd;
	info->rmt_wnd = kcp->rmt_wnd;
	info->waitsnd = kcpx_kcp_waitsnd(kcp);
	info->inflight = kcp->snd_nxt - kcp->snd_una;
	info->rcv_queued = kcp->rcv_nxt - kcp->rcv_head;
	info->rcv_ooo = kcp->rcv_buffered;
	info->retrans = kcp->tot_retrans;
	info->lost = kcp->tot_lost;
}

bool kcpx_kcp_is_dead(const struct kcpx_kcp *kcp)
{
	return kcp->dead;
}

uint64_t kcpx_kcp_test_seg_allocs(const struct kcpx_kcp *kcp)
{
	return kcp->seg_mallocs;
}

uint64_t kcpx_kcp_test_walk_steps(const struct kcpx_kcp *kcp)
{
	return kcp->walk_steps;
}

unsigned kcpx_kcp_test_rring_size(const struct kcpx_kcp *kcp)
{
	return kcp->rmask + 1;
}

int kcpx_kcp_test_set_sn(struct kcpx_kcp *kcp, uint32_t snd_nxt, uint32_t rcv_nxt)
{
	if (kcp->sq_head || kcp->snd_una != kcp->snd_nxt || kcp->rcv_head != kcp->rcv_nxt)
		return -EBUSY;
	for (uint32_t i = 0; i <= kcp->rmask; i++)
		if (kcp->rring[i])
			return -EBUSY;
	kcp->snd_una = kcp->snd_nxt = snd_nxt;
	kcp->rcv_head = kcp->rcv_nxt = rcv_nxt;
	return 0;
}
