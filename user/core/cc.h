/* SPDX-License-Identifier: MIT */
/*
 * Rate-based, loss-tolerant congestion controller for the KCP sender (docs/CONGESTION.md).
 *
 * I/O-free and clock-free like kcp.c: every call takes `now`, a wrapping 32-bit ms clock.
 * All amounts are "wire bytes" as the owner counts them (kcp.c charges each segment its
 * share of headers and FEC parity), so the bottleneck estimate, the pacing rate and the
 * inflight cap speak the same unit as a link's rate.
 *
 * What it estimates, from per-segment ACKs (KCP acknowledges every segment and echoes
 * the send time of the transmission it saw):
 *  - btl_bw: a windowed max (10 round trips) of the delivery rate, each sample divided
 *    by (1 - random loss) so that loss on an idle path does not read as less bandwidth;
 *  - min_rtt: a windowed min (10 s) of the RTT;
 *  - loss: lost transmissions per transmission, counting only losses whose neighbours
 *    saw no queue (so drops at a full queue and spurious retransmits never raise it).
 * What it sets: pacing_rate = gain x btl_bw and inflight_cap = cwnd_gain x btl_bw x
 * min_rtt, moved through the states of enum kcpx_cc_state.
 *
 * Driving it (kcp.c does): kcpx_cc_on_send() for every PUSH transmission, with a
 * kcpx_cc_tx the owner keeps with the segment; kcpx_cc_on_ack() for every segment newly
 * acknowledged; kcpx_cc_on_rtt() per RTT sample; kcpx_cc_on_lost() per lost transmission;
 * kcpx_cc_ack_done() once per input batch; kcpx_cc_tokens()/kcpx_cc_next_send() to pace.
 * Every input is clamped, so no sequence of calls makes a rate or the cap leave
 * [KCPX_CC_RATE_MIN, KCPX_CC_RATE_MAX] / [KCPX_CC_CAP_MIN segments, KCPX_CC_CAP_MAX].
 */
#ifndef KCPX_CORE_CC_H
#define KCPX_CORE_CC_H

#include <stdbool.h>
#include <stdint.h>

enum kcpx_cc_algo {
	KCPX_CC_OFF, /* no controller: the windows are the only limit (kcptun's nc=1) */
	KCPX_CC_KCP, /* KCP's classic cwnd (kcptun's nc=0) */
	KCPX_CC_BBR, /* this controller */
};

enum kcpx_cc_state {
	KCPX_CC_STARTUP,   /* gain 2.77 per round until the delivery rate stops growing */
	KCPX_CC_DRAIN,	   /* gain 1/2.77 until inflight is back to one BDP */
	KCPX_CC_PROBE_BW,  /* cycle 1.25, 0.75, 1 x 6: probe for more, drain what it queued */
	KCPX_CC_PROBE_RTT, /* inflight to half a BDP for 200 ms to refresh min_rtt */
};

/* What ended STARTUP (kcpx status shows it with the estimate it left at). */
enum kcpx_cc_exit {
	KCPX_CC_EXIT_NONE,     /* still in STARTUP */
	KCPX_CC_EXIT_STALL,    /* 3 rounds without 25 % more delivery rate */
	KCPX_CC_EXIT_OVERFLOW, /* a round lost >= 8 segments (> 2 %) behind a standing queue */
	KCPX_CC_EXIT_HOST,     /* a local drop or the peer's drop report */
};

#define KCPX_CC_RATE_MIN 12500ull		/* bytes/s: 100 kbit/s */
#define KCPX_CC_RATE_MAX 12500000000ull		/* bytes/s: 100 Gbit/s */
#define KCPX_CC_CAP_MIN	 4u			/* segments */
#define KCPX_CC_CAP_MAX	 (256ull * 1024 * 1024) /* bytes */

/* What the owner keeps per transmission (kcp.c: in the segment). */
struct kcpx_cc_tx {
	uint64_t delivered; /* cc->delivered when it was sent */
	uint32_t delivered_ts, first_ts, sent_ts;
	bool app_limited;
};

struct kcpx_cc_bwslot {
	uint64_t bw;
	uint32_t round;
};

#define KCPX_CC_RTT_SLOTS 64
struct kcpx_cc_rttslot {
	uint32_t tag, max_rtt;
	bool valid;
};

struct kcpx_cc {
	enum kcpx_cc_state state;
	uint32_t seg; /* wire bytes of one full segment: floors and bursts */

	/* delivery accounting (rate samples as in draft-cheng-iccrg-delivery-rate-estimation) */
	uint64_t delivered;
	uint32_t delivered_ts, first_ts;
	uint64_t app_limited_until; /* samples sent before delivered passes this are app-limited */
	/* the rate sample being gathered in this input batch */
	bool rs_valid;
	bool rs_void; /* the batch acknowledged an earlier copy than a record tells */
	struct kcpx_cc_tx rs;
	uint32_t rs_acked_ts;

	/* round trips: a round ends when a segment sent after it began is acknowledged */
	uint64_t round_end;
	uint32_t round;
	bool round_start;

	/* windowed max of the delivery rate over KCPX_CC_BW_ROUNDS rounds (3 best slots) */
	struct kcpx_cc_bwslot bw[3];
	uint64_t btl_bw; /* bytes/s, loss-compensated */
	uint64_t rnd_bw; /* best sample of this round */

	/* windowed min RTT */
	uint32_t min_rtt, min_rtt_ts;
	bool have_rtt;
	uint32_t rnd_max_rtt, rnd_min_rtt; /* largest and smallest RTT sample of this round */
	bool rnd_min_valid;
	uint32_t guard_rounds; /* rounds in a row the overestimate guard fired ... */
	uint32_t guard_rtt;    /* ... without the round's min RTT falling below this */
	uint64_t guard_bw;     /* btl_bw before the first of those trims */
	uint32_t guard_ts;     /* when the guard last looked at a round */
	uint32_t now;	       /* of the last ack_done */

	/* random-loss estimate (parts per 65536) from rounds without a queue */
	/* this round: segments sent, lost at random, at a queue, lost without telling */
	uint64_t rnd_sent, rnd_lost, rnd_qlost, rnd_ulost;
	uint32_t loss;
	uint64_t tot_sent;    /* PUSH transmissions since init (adaptive FEC reads it) */
	uint64_t local_drops; /* datagrams this host failed to send (on_local_drop) */
	uint64_t peer_drops;  /* datagrams the peer dropped before reading (on_peer_drop) */
	uint32_t ld_round;    /* round + 1 of the last cut for them; 0: none yet */
	struct kcpx_cc_rttslot rtt_hist[KCPX_CC_RTT_SLOTS]; /* by send time: tells loss kinds */
	uint32_t slot_ms;				    /* send time per rtt_hist slot */

	/* a flight sent from an empty pipe (at the start, or when a bulk follows small
	 * exchanges) in STARTUP: its segments carry delivered == train_from, and the
	 * dispersion of their ACKs bounds the bottleneck's rate before any round could */
	uint64_t train_from, train_bytes;
	uint32_t train_t0, train_t1;
	uint32_t train_round; /* the round after the train's first ACK: the floor applies */
	bool train_armed, train_seen;

	/* STARTUP exit */
	uint64_t full_bw;
	uint32_t full_bw_cnt;
	bool full_bw_reached;
	enum kcpx_cc_exit exit_why; /* what set full_bw_reached first ... */
	uint64_t exit_bw;	    /* ... and btl_bw then */

	/* PROBE_BW gain cycle and PROBE_RTT */
	uint32_t cycle, cycle_ts;
	uint32_t probe_rtt_done;
	bool probe_rtt_armed; /* min_rtt expired: enter PROBE_RTT at the next batch */
	uint32_t ack_delay;   /* ms the peer may hold an ACK (its KCP interval) */
	bool unbound;	      /* the owner's windows span loss repairs (min_queued) */

	/* outputs */
	uint32_t pacing_gain, cwnd_gain; /* x 256 */
	uint64_t pacing_rate;		 /* bytes/s */
	uint64_t inflight_cap;		 /* bytes */
	uint64_t ratelimit;		 /* bytes/s ceiling of pacing_rate, 0: none */

	/* pacing token bucket, on the owner's µs clock */
	int64_t tokens;
	uint64_t tok_us;   /* when tokens were last refilled */
	uint64_t tok_frac; /* refill remainder: bytes x 10^6 not credited yet */
	bool tok_started;  /* tok_us holds a time */
	bool fine;	   /* the owner wakes at µs deadlines (kcpx_cc_set_fine) */
};

void kcpx_cc_init(struct kcpx_cc *cc, uint32_t seg, uint32_t now);
/* seg: wire bytes of a full segment (mss plus its overhead share). */
void kcpx_cc_set_seg(struct kcpx_cc *cc, uint32_t seg);
/* How long the peer may hold an ACK (its flush interval, ms): added to the RTT in the cap. */
void kcpx_cc_set_ack_delay(struct kcpx_cc *cc, uint32_t ms);
/* Per-session cap on wire bytes per second (kcptun's ratelimit); 0 removes it. */
void kcpx_cc_set_ratelimit(struct kcpx_cc *cc, uint64_t bytes_per_s);

/* A PUSH transmission of bytes; inflight: wire bytes unacknowledged before it. */
void kcpx_cc_on_send(struct kcpx_cc *cc, uint32_t now, uint32_t bytes, uint64_t inflight,
		     struct kcpx_cc_tx *tx);
/* A segment acknowledged for the first time (selectively or by una). tx: the record of
 * the copy that was delivered; NULL when an earlier copy than the one tx describes was
 * (its ACK echoed an older ts): the bytes count as delivered, but the record of a
 * resend sent a moment ago is no rate sample and closes no round. */
void kcpx_cc_on_ack(struct kcpx_cc *cc, uint32_t now, const struct kcpx_cc_tx *tx, uint32_t bytes,
		    bool spurious_rto);
void kcpx_cc_on_rtt(struct kcpx_cc *cc, uint32_t now, uint32_t rtt);
/* A transmission that was lost: its segment was resent and acknowledged without any
 * ACK echoing an earlier copy (so spurious retransmits are not losses). sent_ts: when
 * the lost copy went out. */
void kcpx_cc_on_lost(struct kcpx_cc *cc, uint32_t sent_ts);
/*
 * n datagrams this host could not send (socket buffer full: ENOBUFS/EAGAIN on sendmmsg,
 * or the AF_XDP TX ring full): the first queue on the path is our own and it is full.
 * Not path loss (the random-loss estimate never sees them: kcp.c takes the losses they
 * cause off its counts); a congestion signal: at most once per round, STARTUP ends and
 * a PROBE_BW probe above the estimate turns into its draining phase, so the pace stops
 * overrunning the host's buffers (the estimate itself is the delivery rate, which the
 * host's own link bounds like any other).
 */
void kcpx_cc_on_local_drop(struct kcpx_cc *cc, uint32_t now, uint32_t n);
/* n of our datagrams the peer's host dropped before reading them (its socket receive
 * buffer or AF_XDP RX ring full), as its drop report told: the last queue of the path
 * is full, the same congestion signal as a local drop. */
void kcpx_cc_on_peer_drop(struct kcpx_cc *cc, uint32_t now, uint32_t n);
/* End of an input batch: fold the rate sample into the model and move the state. */
void kcpx_cc_ack_done(struct kcpx_cc *cc, uint32_t now, uint64_t inflight);
/* The sender ran out of data (or of window) below the cap: samples until what is in
 * flight now is delivered do not describe the path. */
void kcpx_cc_app_limited(struct kcpx_cc *cc, uint64_t inflight);

/*
 * Pacing, on a monotonic µs clock of the owner's (any origin; not KCP's ms `now`).
 * The bucket releases a quantum per wakeup: about 1 ms of the pacing rate, at least 2
 * and at most KCPX_CC_QUANTUM_SEGS full segments (as Linux sizes a paced TSO burst: 1 ms
 * of rate, 2 segments at low rates, a 64 KB ceiling), to an owner that wakes at µs
 * deadlines (kcpx_cc_set_fine(true)); one that can only wake on whole ms is told to
 * come back as soon as the debt is paid. The bucket holds two quanta or 2 ms of the
 * rate, whichever is more: an owner late by that much (a busy host, a long loop turn)
 * loses no rate, while one on time sends a quantum per wakeup.
 * kcpx_cc_tokens: bytes that may be sent now (<= 0: wait); kcpx_cc_next_send: the µs
 * time a whole quantum is back (a ms-driven owner: what is owed), now_us if tokens
 * are there now.
 */
#define KCPX_CC_QUANTUM_SEGS 32u
void kcpx_cc_set_fine(struct kcpx_cc *cc, bool fine);
uint64_t kcpx_cc_quantum(const struct kcpx_cc *cc);
int64_t kcpx_cc_tokens(struct kcpx_cc *cc, uint64_t now_us);
uint64_t kcpx_cc_next_send(const struct kcpx_cc *cc, uint64_t now_us);

const char *kcpx_cc_state_name(enum kcpx_cc_state st);
const char *kcpx_cc_exit_name(enum kcpx_cc_exit why);
const char *kcpx_cc_algo_name(enum kcpx_cc_algo algo);
/* "bbr", "kcp" or "off"; -EINVAL for anything else. */
int kcpx_cc_algo_parse(const char *name, enum kcpx_cc_algo *algo);

#endif
