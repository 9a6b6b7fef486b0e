// SPDX-License-Identifier: MIT
/*
 * The rate-based congestion controller (see cc.h for the contract and
 * docs/CONGESTION.md for the model and why each state exists).
 *
 * Invariants kept after every call:
 *  - KCPX_CC_RATE_MIN <= pacing_rate <= KCPX_CC_RATE_MAX (and <= ratelimit when set);
 *  - CAP_MIN segments <= inflight_cap <= KCPX_CC_CAP_MAX;
 *  - loss <= LOSS_MAX; btl_bw <= KCPX_CC_RATE_MAX;
 *  - tokens lie in [-(one second of pacing_rate + largest send), depth()].
 * Every product below is taken on values already clamped by these bounds, so nothing
 * overflows 64 bits whatever the ACK stream says.
 */
#include <errno.h>
#include <string.h>

#include "core/cc.h"
#include "core/util.h"

#define GAIN_UNIT      256u
#define GAIN_STARTUP   709u /* 2/ln(2) = 2.77: doubles the rate every round */
#define GAIN_DRAIN     92u  /* 1/2.77 */
#define GAIN_CWND      512u /* inflight cap = 2 x BDP */
#define BW_ROUNDS      10u  /* max filter window, round trips */
#define MIN_RTT_WIN    10000u
#define PROBE_RTT_MS   200u
#define FULL_BW_GROW   320u /* 1.25 x 256: STARTUP goes on while the rate grows this much */
#define FULL_BW_ROUND  3u
#define INIT_SEGS      32u  /* inflight before the first sample (KCP's default window) */
#define TRAIN_MIN_SEGS 8u   /* ACKs of a train that tell a rate */
#define TRAIN_MIN_RTT  100u /* ms: below it the ramp from INIT_SEGS is short */
#define LOSS_ONE       65536u
#define LOSS_MAX       (LOSS_ONE * 3 / 10) /* compensate random loss up to 30 % */
#define LOSS_NOISY     (LOSS_ONE / 20)	   /* 5 %: STARTUP needs a sign of a full pipe */
#define LOSS_MIN_SENT  16u		   /* segments a round needs to give a loss sample */
#define DEPTH_MS       2u		   /* bucket depth, at least (cc.h) */
#define QLOST_MIN      8u    /* queue drops in a round (and > 2 %) that mean overflow */
#define GUARD_ROUNDS   6u    /* trims of the estimate before a standing RTT counts as the path's */
#define RTT_SLOT_MS    4u    /* RTT history: max RTT per slot of send time, at least 4 ms ... */
#define RTT_SLOT_MAX   1000u /* ... and min_rtt / 16, so that it spans 4 round trips */
#define DRAIN_PHASES   3u    /* longest PROBE_BW 0.75 phase, min RTTs */

static const uint32_t cycle_gain[8] = { 320, 192, 256, 256, 256, 256, 256, 256 };

static uint64_t clamp64(uint64_t v, uint64_t lo, uint64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static uint32_t rtt_floor(const struct kcpx_cc *cc)
{
	return cc->have_rtt && cc->min_rtt ? cc->min_rtt : 1;
}

/* Bytes of one bandwidth-delay product (plus the peer's ACK delay, which KCP adds to
 * every round: a receiver holds its ACKs up to one interval). */
static uint64_t bdp(const struct kcpx_cc *cc, uint32_t extra_ms)
{
	return cc->btl_bw * (uint64_t)(rtt_floor(cc) + extra_ms) / 1000;
}

/* A train long enough to tell a rate (small exchanges before a bulk are not). */
static bool train_full(const struct kcpx_cc *cc)
{
	return cc->train_seen && cc->train_bytes >= (uint64_t)TRAIN_MIN_SEGS * cc->seg;
}

/*
 * The flight after a train (below): until it is acknowledged no round has measured the
 * path, and growing the cap from the initial window would take log2(window / INIT_SEGS)
 * round trips, a second at 150 ms RTT (where the windows alone, `--cc off`, send
 * everything at once). So it may carry one min RTT at the rate the train's ACKs came
 * back at (a bottleneck spaces them out), at most at the startup floor rate0: no more
 * than one BDP lands at a bottleneck the train revealed.
 */
static uint64_t first_flight(const struct kcpx_cc *cc, uint64_t rate0)
{
	uint64_t train;

	if (!cc->have_rtt || cc->min_rtt < TRAIN_MIN_RTT || !train_full(cc) ||
	    cc->round != cc->train_round)
		return 0;
	train = KCPX_MIN(cc->train_bytes, (uint64_t)KCPX_CC_CAP_MAX) * 1000 /
		((uint32_t)kcpx_diff32(cc->train_t1, cc->train_t0) + 1);
	return KCPX_MIN(train, rate0) * rtt_floor(cc) / 1000;
}

/* The pipe was found full: STARTUP ends at the next advance (the first reason counts). */
static void pipe_full(struct kcpx_cc *cc, enum kcpx_cc_exit why)
{
	if (cc->full_bw_reached)
		return;
	cc->full_bw_reached = true;
	cc->exit_why = why;
	cc->exit_bw = cc->btl_bw;
}

/* STARTUP's look at the growth (a round's end, or what stands for one): an estimate 25 %
 * above the last one starts the count over; otherwise a look that counts (counts) is one
 * more without growth, and FULL_BW_ROUND of them end STARTUP. */
static void full_bw_look(struct kcpx_cc *cc, bool counts)
{
	if (cc->btl_bw * GAIN_UNIT >= cc->full_bw * FULL_BW_GROW) {
		cc->full_bw = cc->btl_bw;
		cc->full_bw_cnt = 0;
	} else if (counts && ++cc->full_bw_cnt >= FULL_BW_ROUND) {
		pipe_full(cc, KCPX_CC_EXIT_STALL);
	}
}

static void set_outputs(struct kcpx_cc *cc)
{
	uint64_t rate, cap, floor = (uint64_t)KCPX_CC_CAP_MIN * cc->seg;
	/* before the first sample: INIT_SEGS per 10 ms at the startup gain */
	uint64_t rate0 = (uint64_t)INIT_SEGS * cc->seg * 100 * GAIN_STARTUP / GAIN_UNIT;
	uint64_t cap0 = (uint64_t)INIT_SEGS * cc->seg;

	if (cc->btl_bw) {
		rate = cc->btl_bw * cc->pacing_gain / GAIN_UNIT;
		cap = bdp(cc, cc->ack_delay) * cc->cwnd_gain / GAIN_UNIT;
		if (cc->state == KCPX_CC_PROBE_RTT)
			cap = bdp(cc, 0) / 2;
		/* until the pipe was found full, the start values are floors: a session
		 * that began with small exchanges (app-limited samples) must not crawl
		 * when the bulk comes */
		if (!cc->full_bw_reached) {
			rate = KCPX_MAX(rate, rate0);
			cap = KCPX_MAX(cap, cap0);
			cap = KCPX_MAX(cap, first_flight(cc, rate0));
		}
	} else {
		rate = rate0;
		cap = cap0;
	}
	rate = clamp64(rate, KCPX_CC_RATE_MIN, KCPX_CC_RATE_MAX);
	if (cc->ratelimit && rate > cc->ratelimit)
		rate = cc->ratelimit;
	cc->pacing_rate = rate;
	cc->inflight_cap = clamp64(cap, floor, KCPX_CC_CAP_MAX);
}

static void enter(struct kcpx_cc *cc, enum kcpx_cc_state st, uint32_t now)
{
	cc->state = st;
	switch (st) {
	case KCPX_CC_STARTUP:
		cc->pacing_gain = GAIN_STARTUP;
		cc->cwnd_gain = GAIN_CWND;
		break;
	case KCPX_CC_DRAIN:
		cc->pacing_gain = GAIN_DRAIN;
		cc->cwnd_gain = GAIN_CWND;
		break;
	case KCPX_CC_PROBE_BW:
		/* start in one of the steady phases, picked by the round so that flows that
		 * entered together do not probe in lock step */
		cc->cycle = 2 + cc->round % 6;
		cc->cycle_ts = now;
		cc->pacing_gain = cycle_gain[cc->cycle];
		cc->cwnd_gain = GAIN_CWND;
		break;
	case KCPX_CC_PROBE_RTT:
		cc->pacing_gain = GAIN_UNIT;
		cc->cwnd_gain = GAIN_CWND;
		cc->probe_rtt_done = 0;
		cc->probe_rtt_armed = false;
		break;
	}
}

void kcpx_cc_init(struct kcpx_cc *cc, uint32_t seg, uint32_t now)
{
	memset(cc, 0, sizeof(*cc));
	cc->seg = seg ? seg : 1;
	cc->slot_ms = RTT_SLOT_MS;
	cc->delivered_ts = cc->first_ts = now;
	enter(cc, KCPX_CC_STARTUP, now);
	cc->train_armed = true;
	set_outputs(cc);
	cc->tokens = (int64_t)INIT_SEGS * cc->seg;
}

void kcpx_cc_set_seg(struct kcpx_cc *cc, uint32_t seg)
{
	cc->seg = seg ? seg : 1;
	set_outputs(cc);
}

void kcpx_cc_set_ack_delay(struct kcpx_cc *cc, uint32_t ms)
{
	cc->ack_delay = KCPX_MIN(ms, 5000u);
	set_outputs(cc);
}

void kcpx_cc_set_ratelimit(struct kcpx_cc *cc, uint64_t bytes_per_s)
{
	cc->ratelimit = bytes_per_s ? clamp64(bytes_per_s, KCPX_CC_RATE_MIN, KCPX_CC_RATE_MAX) : 0;
	set_outputs(cc);
}

void kcpx_cc_on_send(struct kcpx_cc *cc, uint32_t now, uint32_t bytes, uint64_t inflight,
		     struct kcpx_cc_tx *tx)
{
	int64_t low = -(int64_t)cc->pacing_rate - (int64_t)bytes;

	if (inflight == 0)
		cc->first_ts = cc->delivered_ts = now;
	tx->delivered = cc->delivered;
	tx->delivered_ts = cc->delivered_ts;
	tx->first_ts = cc->first_ts;
	tx->sent_ts = now;
	tx->app_limited = cc->app_limited_until != 0;
	cc->tokens -= bytes;
	if (cc->tokens < low)
		cc->tokens = low;
	cc->rnd_sent++;
	cc->tot_sent++;
}

static bool rtt_queued(const struct kcpx_cc *cc, uint32_t rtt);

void kcpx_cc_on_ack(struct kcpx_cc *cc, uint32_t now, const struct kcpx_cc_tx *tx, uint32_t bytes,
		    bool spurious_rto)
{
	if (!tx && spurious_rto && cc->state == KCPX_CC_STARTUP && !cc->full_bw_reached &&
	    (cc->loss < LOSS_NOISY || rtt_queued(cc, cc->rnd_max_rtt) || cc->rnd_qlost)) {
		/*
		 * An RTO resend whose earlier copy arrived: the RTT outgrew the RTO (srtt plus
		 * a few ms) within a round, the queue STARTUP builds once its pace passed the
		 * bottleneck. Each one is a look at whether the estimate still grows, as a
		 * round's end is; three without 25 % growth end STARTUP before the round that
		 * overfills a queue shorter than the path's BDP is over.
		 */
		full_bw_look(cc, true);
	}
	if (!tx) {
		/*
		 * An earlier copy arrived, not the one the record describes. Fast retransmit
		 * racing FEC does this all the time under random loss (the receiver's quick
		 * ACKs resend a shard that parity rebuilds a few ms later): taken as a
		 * sample, the resend's record closed a round each time, several per RTT,
		 * and STARTUP's three rounds without growth passed in a fraction of one, at
		 * 5-20 Mbit/s on a 100 Mbit/s path (test_fecadapt's test_long_path_daemon).
		 * The bytes were delivered when that earlier copy arrived, before most of
		 * what this batch acknowledges was sent: counted in this batch's sample they
		 * would inflate it, so the batch gives none (and closes no round).
		 */
		cc->delivered += bytes;
		cc->delivered_ts = now;
		if (cc->app_limited_until && cc->delivered > cc->app_limited_until)
			cc->app_limited_until = 0;
		cc->rs_void = true;
		return;
	}
	/* the train: ACKs of the segments sent from an empty pipe before any came back */
	if (cc->train_armed && tx->delivered == cc->train_from) {
		if (!cc->train_seen) {
			cc->train_seen = true;
			cc->train_round = 0;
			cc->train_bytes = 0;
			cc->train_t0 = now;
		}
		if (kcpx_diff32(now, cc->train_t0) >= 0 &&
		    kcpx_diff32(now, cc->train_t0) <= 60000) {
			cc->train_t1 = now;
			cc->train_bytes += bytes;
		}
	}
	cc->delivered += bytes;
	cc->delivered_ts = now;
	if (cc->app_limited_until && cc->delivered > cc->app_limited_until)
		cc->app_limited_until = 0;
	/* the sample is taken from the most recently sent of the segments acked now */
	if (!cc->rs_valid || tx->delivered > cc->rs.delivered ||
	    (tx->delivered == cc->rs.delivered && kcpx_diff32(tx->sent_ts, cc->rs.sent_ts) > 0)) {
		cc->rs = *tx;
		cc->rs_valid = true;
		cc->first_ts = tx->sent_ts;
	}
}

void kcpx_cc_on_rtt(struct kcpx_cc *cc, uint32_t now, uint32_t rtt)
{
	if (rtt > 60000)
		return; /* not a sample of this path (a wrapped or forged echo) */
	{
		uint32_t tag = (now - rtt) / cc->slot_ms;
		struct kcpx_cc_rttslot *b = &cc->rtt_hist[tag % KCPX_CC_RTT_SLOTS];
		if (!b->valid || b->tag != tag) {
			b->tag = tag;
			b->max_rtt = 0;
			b->valid = true;
		}
		b->max_rtt = KCPX_MAX(b->max_rtt, rtt);
	}
	if (rtt > cc->rnd_max_rtt)
		cc->rnd_max_rtt = rtt;
	if (!cc->rnd_min_valid || rtt < cc->rnd_min_rtt) {
		cc->rnd_min_rtt = rtt;
		cc->rnd_min_valid = true;
	}
	if (!cc->have_rtt || rtt <= cc->min_rtt) {
		cc->min_rtt = rtt;
		cc->min_rtt_ts = now;
		cc->have_rtt = true;
	} else if ((uint32_t)kcpx_diff32(now, cc->min_rtt_ts) > MIN_RTT_WIN) {
		/* the path's minimum was not seen for a whole window: take this sample and
		 * drain the queue once so that the next ones can show the real floor */
		cc->min_rtt = rtt;
		cc->min_rtt_ts = now;
		cc->probe_rtt_armed = true;
	}
}

/* RTT above the floor by more than jitter and the peer's ACK delay explain: a queue. */
static bool rtt_queued(const struct kcpx_cc *cc, uint32_t rtt)
{
	uint32_t slack = KCPX_MAX(rtt_floor(cc) / 4, 2u) + cc->ack_delay;
	return !cc->have_rtt || rtt > rtt_floor(cc) + slack;
}

/*
 * The smallest RTT of a round above the floor: a queue stood all round. A round holds
 * many samples and the one whose ACK the peer sent at once has none of its ACK delay,
 * so only path jitter needs a margin here, as long as the round lasts an ACK interval. (With the ACK delay in the margin as well, a
 * 10 ms interval let a 23 ms queue stand at 50 ms RTT: the max filter's samples run a
 * few % above a lossy bottleneck, and cruising at 1.0 on them grew the queue between
 * probes until tail drops; the RPC exchanges of the bottleneck bench saw it as p99.)
 * While the owner's windows span the repairs of losses ARQ carries (unbound: kcp.c
 * kcpx_kcp_set_arq) the margin is a twelfth of the floor: the window that bound now and
 * then had drained what the guard let stand, and without it an eighth let a standing
 * queue grow next to the bulk (docs/CONGESTION.md, session 11).
 */
static bool min_queued(const struct kcpx_cc *cc, uint32_t rtt)
{
	uint32_t floor = rtt_floor(cc);
	/* a round shorter than the peer's ACK interval may hold no ACK sent at once */
	uint32_t hold = cc->ack_delay > floor ? cc->ack_delay - floor : 0;

	return !cc->have_rtt || rtt > floor + KCPX_MAX(floor / (cc->unbound ? 12 : 8), 2u) + hold;
}

/*
 * A loss is told apart by the RTT of the segments sent in the same few ms: a drop at a
 * full queue comes with a standing queue (its neighbours saw an inflated RTT), random
 * loss does not. A loss whose neighbours are unknown (all lost too, or too long ago)
 * keeps its round out of the random-loss estimate but does not end STARTUP.
 */
void kcpx_cc_on_lost(struct kcpx_cc *cc, uint32_t sent_ts)
{
	const struct kcpx_cc_rttslot *b =
		&cc->rtt_hist[(sent_ts / cc->slot_ms) % KCPX_CC_RTT_SLOTS];

	if (!b->valid || b->tag != sent_ts / cc->slot_ms)
		cc->rnd_ulost++; /* nothing else sent then was acknowledged: no telling */
	else if (rtt_queued(cc, b->max_rtt))
		cc->rnd_qlost++;
	else
		cc->rnd_lost++;
}

static void host_queue_full(struct kcpx_cc *cc, uint32_t now, uint32_t n);

void kcpx_cc_on_local_drop(struct kcpx_cc *cc, uint32_t now, uint32_t n)
{
	cc->local_drops += n;
	host_queue_full(cc, now, n);
}

void kcpx_cc_on_peer_drop(struct kcpx_cc *cc, uint32_t now, uint32_t n)
{
	cc->peer_drops += n;
	host_queue_full(cc, now, n);
}

/* A queue at either host (ours when sending, the peer's when receiving) overflowed. */
static void host_queue_full(struct kcpx_cc *cc, uint32_t now, uint32_t n)
{
	if (!n || !cc->btl_bw || cc->ld_round == cc->round + 1)
		return;
	cc->ld_round = cc->round + 1;
	/* The delivery rate already measures the host's own link like any other: the drops
	 * come from pacing above it, which only STARTUP and the 1.25 probe do. End those
	 * (no cut below the estimate: a host that drops because it was descheduled would
	 * otherwise ratchet the rate down round after round). */
	if (cc->state == KCPX_CC_STARTUP) {
		pipe_full(cc, KCPX_CC_EXIT_HOST);
		enter(cc, KCPX_CC_DRAIN, now);
	} else if (cc->state == KCPX_CC_PROBE_BW && cycle_gain[cc->cycle] > GAIN_UNIT) {
		cc->cycle = 1; /* the 0.75 phase: drain what the probe queued */
		cc->cycle_ts = now;
		cc->pacing_gain = cycle_gain[cc->cycle];
	}
	set_outputs(cc);
}

void kcpx_cc_app_limited(struct kcpx_cc *cc, uint64_t inflight)
{
	cc->app_limited_until = KCPX_MAX(cc->delivered + inflight, 1);
}

/* Windowed max over BW_ROUNDS rounds, keeping the best, 2nd and 3rd best of
 * successively later sub-windows (Kathleen Nichols' running max). */
static void bw_filter(struct kcpx_cc *cc, uint64_t bw)
{
	struct kcpx_cc_bwslot s = { bw, cc->round };
	struct kcpx_cc_bwslot *m = cc->bw;
	uint32_t dt;

	if (bw >= m[0].bw || cc->round - m[2].round > BW_ROUNDS) {
		m[0] = m[1] = m[2] = s;
		return;
	}
	if (bw >= m[1].bw)
		m[1] = m[2] = s;
	else if (bw >= m[2].bw)
		m[2] = s;
	dt = cc->round - m[0].round;
	if (dt > BW_ROUNDS) {
		m[0] = m[1];
		m[1] = m[2];
		m[2] = s;
		if (cc->round - m[0].round > BW_ROUNDS) {
			m[0] = m[1];
			m[1] = m[2];
		}
	} else if (m[1].round == m[0].round && dt > BW_ROUNDS / 4) {
		m[1] = m[2] = s;
	} else if (m[2].round == m[1].round && dt > BW_ROUNDS / 2) {
		m[2] = s;
	}
}

/* Close a round: take its loss sample if its RTT showed no queue, and check whether
 * STARTUP still finds more bandwidth. */
static void round_end(struct kcpx_cc *cc, bool app_limited)
{
	/*
	 * Does this round show a full pipe? Under heavy random loss (the estimate above
	 * LOSS_NOISY) the delivery rate of a round is noisy enough to stall for three
	 * rounds while the path has room to spare: then only a stall with a sign of a
	 * full pipe ends STARTUP, a queue (RTT above the floor, or drops behind one) or
	 * losses beyond anything compensated.
	 */
	bool full_sign = cc->loss < LOSS_NOISY || !cc->rnd_min_valid ||
			 rtt_queued(cc, cc->rnd_max_rtt) || cc->rnd_qlost ||
			 (cc->rnd_sent >= LOSS_MIN_SENT &&
			  (cc->rnd_lost + cc->rnd_ulost) * LOSS_ONE >= cc->rnd_sent * LOSS_MAX);

	if (cc->rnd_sent >= LOSS_MIN_SENT) {
		uint64_t sent = cc->rnd_sent;
		/* losses nobody sent near was acknowledged for: under heavy random loss
		 * (ACKs lost too) a share of the random ones; at an overflowing queue the
		 * bulk of a burst. Counted as random while the round shows no queue and
		 * they stay a minority of its losses. */
		bool uknown = cc->rnd_ulost * 100 <= sent || cc->rnd_ulost <= cc->rnd_lost;
		uint64_t nl = cc->rnd_lost + (uknown ? cc->rnd_ulost : 0);
		uint32_t lost = (uint32_t)KCPX_MIN(nl, sent);
		uint32_t sample = (uint32_t)((uint64_t)lost * LOSS_ONE / sent);
		/* a round that overflowed a queue says nothing about random loss */
		if (cc->rnd_qlost * 100 <= sent && uknown) {
			int64_t d = (int64_t)sample - (int64_t)cc->loss;
			/* STARTUP follows the loss within a round or two: while the cap (2 x
			 * BDP) binds, a round delivers 2 x (1 - loss) of the last one, and with
			 * the estimate still near 0 at heavy random loss that is too little
			 * growth to go on, so it would end far below the path's rate */
			cc->loss = (uint32_t)((int64_t)cc->loss +
					      d / (cc->state == KCPX_CC_STARTUP ? 2 : 8));
			cc->loss = KCPX_MIN(cc->loss, LOSS_MAX);
		} else if (cc->rnd_qlost >= QLOST_MIN && cc->rnd_qlost * 50 > sent) {
			/* drops behind a standing queue: we overflowed the bottleneck. What
			 * this round delivered through the full queue is its rate, but at
			 * most halve per round: a round can be short (a retransmission's ACK
			 * closes one) and fall in a stall (the window held by a lost resend),
			 * and one such sample once cut 108 Mbit/s to 12 for seconds. */
			pipe_full(cc, KCPX_CC_EXIT_OVERFLOW);
			if (cc->state == KCPX_CC_PROBE_BW && cc->rnd_bw &&
			    cc->rnd_bw < cc->btl_bw) {
				struct kcpx_cc_bwslot s = { KCPX_MAX(cc->rnd_bw, cc->btl_bw / 2),
							    cc->round };
				cc->bw[0] = cc->bw[1] = cc->bw[2] = s;
				cc->btl_bw = s.bw;
			}
		}
		cc->rnd_bw = 0;
		cc->rnd_sent = cc->rnd_lost = cc->rnd_qlost = cc->rnd_ulost = 0;
	}
	/*
	 * Overestimate guard: a queue that stood for a whole round (even its smallest RTT
	 * sample was inflated) while the pacing gain was not probing means the estimate is
	 * above the bottleneck; likeliest cause is loss compensation fed by drops or
	 * spurious retransmits. Halve the compensation and trim the estimate. At most once
	 * per min RTT: a retransmission's ACK closes a round too (its rate sample starts
	 * at the resend), so while a full queue drops, rounds come many times per RTT, and
	 * GUARD_ROUNDS of them would take a queue that never had the time to drain for a
	 * longer path (after a 100 -> 20 Mbit/s drop: a min RTT of 250 ms, test_reconverge).
	 */
	if (cc->rnd_min_valid && ((uint32_t)kcpx_diff32(cc->now, cc->guard_ts) < rtt_floor(cc) ||
				  (cc->state == KCPX_CC_PROBE_BW && cc->pacing_gain > GAIN_UNIT))) {
		/* too soon after the last look, or a probe (it queues on purpose): neither
		 * counts for the guard nor breaks its count */
	} else if (cc->state == KCPX_CC_PROBE_BW && cc->rnd_min_valid &&
		   cc->pacing_gain <= GAIN_UNIT && min_queued(cc, cc->rnd_min_rtt)) {
		cc->guard_ts = cc->now;
		if (!cc->guard_rounds || cc->rnd_min_rtt + 2 + cc->ack_delay < cc->guard_rtt) {
			/* first trim, or the last ones made the RTT fall (by more than the
			 * peer's ACK delay moves a round's smallest sample): a queue of ours */
			if (!cc->guard_rounds)
				cc->guard_bw = cc->btl_bw;
			cc->guard_rtt = cc->rnd_min_rtt;
			cc->guard_rounds = 0;
		}
		if (++cc->guard_rounds > GUARD_ROUNDS) {
			/* trims in a row did not move the RTT: not our queue but a longer
			 * path. Take the new floor. */
			struct kcpx_cc_bwslot s = { cc->guard_bw, cc->round };

			cc->min_rtt = cc->rnd_min_rtt;
			cc->min_rtt_ts = cc->now;
			cc->guard_rounds = 0;
			/* and the rate was right all along: undo the trims */
			if (s.bw > cc->btl_bw) {
				cc->bw[0] = cc->bw[1] = cc->bw[2] = s;
				cc->btl_bw = s.bw;
			}
		} else {
			cc->loss /= 2;
			for (unsigned i = 0; i < 3; i++)
				cc->bw[i].bw -= cc->bw[i].bw / 8;
			cc->btl_bw = cc->bw[0].bw;
		}
	} else if (cc->rnd_min_valid) {
		cc->guard_ts = cc->now;
		cc->guard_rounds = 0;
	}
	cc->rnd_max_rtt = 0;
	cc->rnd_min_valid = false;
	/* a loss is known only when its retransmission is acknowledged, two round trips or
	 * more after it was sent: the history must reach that far back */
	{
		uint32_t w = (uint32_t)clamp64(rtt_floor(cc) / 16, RTT_SLOT_MS, RTT_SLOT_MAX);
		if (w != cc->slot_ms) {
			cc->slot_ms = w;
			memset(cc->rtt_hist, 0, sizeof(cc->rtt_hist));
		}
	}

	if (cc->full_bw_reached || app_limited)
		return;
	full_bw_look(cc, full_sign);
}

static void advance(struct kcpx_cc *cc, uint32_t now, uint64_t inflight)
{
	if (cc->state == KCPX_CC_STARTUP && cc->full_bw_reached)
		enter(cc, KCPX_CC_DRAIN, now);
	if (cc->state == KCPX_CC_DRAIN && inflight <= bdp(cc, 0))
		enter(cc, KCPX_CC_PROBE_BW, now);

	if (cc->state == KCPX_CC_PROBE_BW) {
		uint32_t phase = KCPX_MAX(rtt_floor(cc), 2u);
		bool next = (uint32_t)kcpx_diff32(now, cc->cycle_ts) >= phase;
		/* the 0.75 phase ends as soon as the queue it drains is gone, and lasts until
		 * then (up to DRAIN_PHASES min RTTs): a queue that stood before the probe would
		 * otherwise stand through every cycle, the 1.25 phase adding what it drains */
		if (cycle_gain[cc->cycle] < GAIN_UNIT)
			next = inflight <= bdp(cc, 0) ||
			       (uint32_t)kcpx_diff32(now, cc->cycle_ts) >= DRAIN_PHASES * phase;
		if (next) {
			cc->cycle = (cc->cycle + 1) % 8;
			cc->cycle_ts = now;
			cc->pacing_gain = cycle_gain[cc->cycle];
		}
	}

	if (cc->probe_rtt_armed && cc->state != KCPX_CC_PROBE_RTT && cc->btl_bw)
		enter(cc, KCPX_CC_PROBE_RTT, now);
	cc->probe_rtt_armed = cc->probe_rtt_armed && cc->state != KCPX_CC_PROBE_RTT;
	if (cc->state == KCPX_CC_PROBE_RTT) {
		set_outputs(cc);
		if (!cc->probe_rtt_done && inflight <= cc->inflight_cap) {
			cc->probe_rtt_done = now + KCPX_MAX(PROBE_RTT_MS, rtt_floor(cc));
			if (!cc->probe_rtt_done)
				cc->probe_rtt_done = 1;
		} else if (cc->probe_rtt_done && kcpx_diff32(now, cc->probe_rtt_done) >= 0) {
			cc->min_rtt_ts = now;
			enter(cc, cc->full_bw_reached ? KCPX_CC_PROBE_BW : KCPX_CC_STARTUP, now);
		}
	}
}

void kcpx_cc_ack_done(struct kcpx_cc *cc, uint32_t now, uint64_t inflight)
{
	bool app_limited = false;

	cc->now = now;
	if (cc->rs_void)
		cc->rs_valid = false;
	cc->rs_void = false;
	if (cc->rs_valid) {
		const struct kcpx_cc_tx *rs = &cc->rs;
		int32_t snd = kcpx_diff32(rs->sent_ts, rs->first_ts);
		int32_t ack = kcpx_diff32(now, rs->delivered_ts);
		int32_t iv = KCPX_MAX(snd, ack);
		uint64_t delta = cc->delivered - rs->delivered;

		app_limited = rs->app_limited;
		if (rs->delivered >= cc->round_end) {
			cc->round_end = cc->delivered;
			cc->round++;
			round_end(cc, app_limited);
		}
		/* an interval shorter than the path's RTT (ACK compression) or than one clock
		 * tick says nothing about the bottleneck */
		if (iv >= 1 && (uint32_t)iv >= rtt_floor(cc) && iv <= 60000) {
			uint64_t bw =
				KCPX_MIN(delta, (uint64_t)KCPX_CC_CAP_MAX) * 1000 / (uint32_t)iv;
			bw = bw * LOSS_ONE / (LOSS_ONE - cc->loss);
			bw = KCPX_MIN(bw, KCPX_CC_RATE_MAX);
			if (!app_limited || bw >= cc->bw[0].bw)
				bw_filter(cc, bw);
			cc->rnd_bw = KCPX_MAX(cc->rnd_bw, bw);
			cc->btl_bw = cc->bw[0].bw;
		}
		cc->rs_valid = false;
	}
	if (cc->train_seen && !cc->train_round)
		cc->train_round = cc->round;
	/* the pipe is empty: the next flight is a train (only STARTUP uses it), unless
	 * this is the round that follows one (a train of a fast path comes back at once) */
	if (inflight == 0 && !cc->full_bw_reached &&
	    !(train_full(cc) && cc->round == cc->train_round)) {
		cc->train_armed = true;
		cc->train_seen = false;
		cc->train_from = cc->delivered;
	}
	advance(cc, now, inflight);
	set_outputs(cc);
}

void kcpx_cc_set_fine(struct kcpx_cc *cc, bool fine)
{
	cc->fine = fine;
}

uint64_t kcpx_cc_quantum(const struct kcpx_cc *cc)
{
	/* pacing_rate <= KCPX_CC_RATE_MAX and seg < 2^32: no overflow */
	uint64_t q = cc->pacing_rate / 1000;

	q = KCPX_MIN(q, (uint64_t)KCPX_CC_QUANTUM_SEGS * cc->seg);
	return KCPX_MAX(q, 2ull * cc->seg);
}

static int64_t depth(const struct kcpx_cc *cc)
{
	uint64_t d = 2 * kcpx_cc_quantum(cc);

	d = KCPX_MAX(d, cc->pacing_rate * DEPTH_MS / 1000);
	return (int64_t)d;
}

int64_t kcpx_cc_tokens(struct kcpx_cc *cc, uint64_t now_us)
{
	int64_t top = depth(cc);

	if (!cc->tok_started) {
		cc->tok_started = true;
		cc->tok_us = now_us;
	} else if (now_us > cc->tok_us) {
		/* at most a second's worth: rate x 10^6 < 2^63 */
		uint64_t dt = KCPX_MIN(now_us - cc->tok_us, 1000000ull);
		uint64_t add = cc->pacing_rate * dt + cc->tok_frac;

		cc->tokens += (int64_t)(add / 1000000);
		cc->tok_frac = add % 1000000;
		cc->tok_us = now_us;
		/* (the first flight's tokens stay until the first refill) */
		if (cc->tokens >= top) {
			cc->tokens = top;
			cc->tok_frac = 0;
		}
	} else if (cc->tok_us - now_us > 1000000) {
		cc->tok_us = now_us; /* the clock went back: start over */
	}
	return cc->tokens;
}

uint64_t kcpx_cc_next_send(const struct kcpx_cc *cc, uint64_t now_us)
{
	uint64_t need, us, at;

	/* tokens there, or the clock went back (kcpx_cc_tokens starts over then) */
	if (cc->tokens > 0 || !cc->tok_started ||
	    (cc->tok_us > now_us && cc->tok_us - now_us > 1000000))
		return now_us;
	/* a fine owner wakes when a whole quantum is back (one burst per wakeup, not one
	 * datagram); a ms-driven one as soon as the debt is paid, at its next ms */
	need = (uint64_t)(-cc->tokens) + (cc->fine ? kcpx_cc_quantum(cc) : 1);
	need = need * 1000000 - KCPX_MIN(cc->tok_frac, need * 1000000);
	us = (need + cc->pacing_rate - 1) / cc->pacing_rate;
	us = KCPX_MAX(KCPX_MIN(us, 1000000ull), 1ull);
	at = cc->tok_us + us;
	return at > now_us ? at : now_us;
}

const char *kcpx_cc_state_name(enum kcpx_cc_state st)
{
	switch (st) {
	case KCPX_CC_STARTUP:
		return "startup";
	case KCPX_CC_DRAIN:
		return "drain";
	case KCPX_CC_PROBE_BW:
		return "probe_bw";
	case KCPX_CC_PROBE_RTT:
		return "probe_rtt";
	}
	return "?";
}

const char *kcpx_cc_exit_name(enum kcpx_cc_exit why)
{
	switch (why) {
	case KCPX_CC_EXIT_NONE:
		return "-";
	case KCPX_CC_EXIT_STALL:
		return "stall";
	case KCPX_CC_EXIT_OVERFLOW:
		return "overflow";
	case KCPX_CC_EXIT_HOST:
		return "host_drop";
	}
	return "?";
}

const char *kcpx_cc_algo_name(enum kcpx_cc_algo algo)
{
	switch (algo) {
	case KCPX_CC_OFF:
		return "off";
	case KCPX_CC_KCP:
		return "kcp";
	case KCPX_CC_BBR:
		return "bbr";
	}
	return "?";
}

int kcpx_cc_algo_parse(const char *name, enum kcpx_cc_algo *algo)
{
	static const enum kcpx_cc_algo all[] = { KCPX_CC_OFF, KCPX_CC_KCP, KCPX_CC_BBR };
	unsigned i;

	for (i = 0; i < KCPX_ARRAY_SIZE(all); i++) {
		if (!strcmp(name, kcpx_cc_algo_name(all[i]))) {
			*algo = all[i];
			return 0;
		}
	}
	return -EINVAL;
}
