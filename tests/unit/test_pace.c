// SPDX-License-Identifier: MIT
/*
 * Pacing resolution (core/cc.c's bucket on the owner's µs clock, kcp.c's check_us): a
 * KCP bulk flow under the controller, on a virtual µs clock, through a bottleneck:
 *
 *   sender --[fwd: FIFO tail-drop queue of qms, drained at rate, then delay]--> receiver
 *   sender <--------------------[rev: delay, no limit]------------------------ receiver
 *
 * linksim.h's queue drains per whole ms, too coarse to see where in a ms a datagram
 * left; this link serializes each datagram at the rate on the µs clock. The owner acts
 * as the tunnel's loop does: it wakes at the earliest of the next arrival and each end's
 * deadline, and on an arrival feeds it in, tops up the sender's queue and flushes. As a
 * fine owner (the loop with epoll_pwait2) it gives the ends its µs clock and sleeps until
 * kcpx_kcp_check_us(); as a coarse one (the loop before: whole ms) it passes ms only and
 * sleeps until kcpx_kcp_check(), as the tunnel did. Departures are recorded: a burst is
 * the datagrams that leave at the same instant, a gap the time between two instants.
 */
#include <stdio.h>

#include "core/cc.h"
#include "core/kcp.h"
#include "core/util.h"

#include "unit.h"

struct pkt {
	uint64_t at;
	uint32_t len;
	uint8_t data[1500];
};

/* FIFO: on both links delivery times only grow (one queue, one fixed delay). */
struct link {
	uint64_t rate;	 /* bytes/s, 0: none */
	uint64_t qlimit; /* bytes that may wait for the rate */
	uint64_t delay;	 /* µs */
	uint64_t busy;	 /* µs: when what is queued has left */
	struct pkt *q;
	size_t head, n, cap;
	uint64_t sent, qdropped;
};

struct sim {
	uint64_t now; /* µs */
	bool fine;
	struct link fwd, rev;
	struct kcpx_kcp *snd, *rcv;
	uint64_t rx;
	/* departures from the sender, counted once measuring */
	bool measure;
	uint64_t last_dep, nburst, max_burst, ngaps, gap_sum, max_gap, inst;
	uint64_t wakeups; /* the sender's own deadlines that woke the owner */
	uint64_t under_ms_gaps;
};

static void link_send(struct link *l, uint64_t now, const uint8_t *buf, size_t len)
{
	struct pkt *p;
	uint64_t at = now;

	l->sent++;
	if (l->rate) {
		uint64_t queued = l->busy > now ? (l->busy - now) * l->rate / 1000000 : 0;
		if (queued + len > l->qlimit) {
			l->qdropped++;
			return;
		}
		l->busy = KCPX_MAX(l->busy, now) + (len * 1000000 + l->rate - 1) / l->rate;
		at = l->busy;
	}
	if (l->head + l->n == l->cap) {
		if (l->head) {
			memmove(l->q, l->q + l->head, l->n * sizeof(*l->q));
			l->head = 0;
		} else {
			l->cap = l->cap ? 2 * l->cap : 256;
			l->q = realloc(l->q, l->cap * sizeof(*l->q));
			if (!l->q)
				abort();
		}
	}
	p = &l->q[l->head + l->n++];
	p->at = at + l->delay;
	p->len = (uint32_t)KCPX_MIN(len, sizeof(p->data));
	memcpy(p->data, buf, p->len);
}

static void out_snd(const uint8_t *buf, size_t len, void *user)
{
	struct sim *s = user;

	if (s->measure) {
		if (s->inst && s->now == s->last_dep) {
			s->nburst++;
		} else {
			if (s->inst) {
				uint64_t g = s->now - s->last_dep;
				s->ngaps++;
				s->gap_sum += g;
				s->max_gap = KCPX_MAX(s->max_gap, g);
				s->under_ms_gaps += g < 1000;
			}
			s->inst++;
			s->nburst = 1;
		}
		s->max_burst = KCPX_MAX(s->max_burst, s->nburst);
		s->last_dep = s->now;
	}
	link_send(&s->fwd, s->now, buf, len);
}

static void out_rcv(const uint8_t *buf, size_t len, void *user)
{
	struct sim *s = user;

	link_send(&s->rev, s->now, buf, len);
}

static uint32_t ms(const struct sim *s)
{
	return (uint32_t)(s->now / 1000);
}

static uint64_t deadline(const struct sim *s, struct kcpx_kcp *k)
{
	if (s->fine)
		return kcpx_kcp_check_us(k, ms(s));
	return (uint64_t)kcpx_kcp_check(k, ms(s)) * 1000;
}

static void top_up(struct sim *s)
{
	static uint8_t chunk[8192];

	while (kcpx_kcp_waitsnd(s->snd) < kcpx_kcp_sndwnd(s->snd))
		kcpx_kcp_send(s->snd, chunk, sizeof(chunk));
}

/* Deliver what is due on l to k; true if anything came. */
static bool deliver(struct sim *s, struct link *l, struct kcpx_kcp *k)
{
	bool got = false;

	while (l->n && l->q[l->head].at <= s->now) {
		kcpx_kcp_input(k, l->q[l->head].data, l->q[l->head].len, ms(s), true);
		l->head++;
		l->n--;
		got = true;
	}
	return got;
}

static void sim_run(struct sim *s, uint64_t until)
{
	static uint8_t rbuf[65536];

	while (s->now < until) {
		uint64_t ds = deadline(s, s->snd), dr = deadline(s, s->rcv), next = until;
		bool arrival;

		next = KCPX_MIN(next, ds);
		next = KCPX_MIN(next, dr);
		if (s->fwd.n)
			next = KCPX_MIN(next, s->fwd.q[s->fwd.head].at);
		if (s->rev.n)
			next = KCPX_MIN(next, s->rev.q[s->rev.head].at);
		s->now = KCPX_MAX(next, s->now);
		if (s->fine) {
			kcpx_kcp_set_clock_us(s->snd, s->now);
			kcpx_kcp_set_clock_us(s->rcv, s->now);
		}
		ssize_t n;

		deliver(s, &s->fwd, s->rcv);
		arrival = deliver(s, &s->rev, s->snd);
		if (arrival || s->now >= ds) {
			top_up(s);
			if (s->now >= ds) {
				s->wakeups += s->measure && !arrival;
				kcpx_kcp_update(s->snd, ms(s));
			} else {
				kcpx_kcp_flush(s->snd, ms(s));
			}
		}
		if (s->now >= dr)
			kcpx_kcp_update(s->rcv, ms(s));
		while ((n = kcpx_kcp_recv(s->rcv, rbuf, sizeof(rbuf))) > 0)
			s->rx += (uint64_t)n;
	}
}

struct pace_res {
	double mbit;	      /* goodput while measuring */
	double qdrop;	      /* tail drops per datagram sent */
	uint64_t max_burst;   /* datagrams leaving at one instant */
	double mean_gap_us;   /* between departure instants */
	double sub_ms;	      /* share of those gaps under 1 ms */
	double wakeups_per_s; /* the sender's own deadlines (not arrivals) */
};

/* One bulk flow: warm ms to settle, then len ms measured. */
static struct pace_res pace_run(bool fine, uint64_t rate_mbit, uint64_t delay_ms, uint64_t qms,
				unsigned wnd, uint32_t warm, uint32_t len)
{
	struct sim s = { .now = 1000000, .fine = fine };
	struct pace_res r;
	uint64_t rx0, sent0, drop0;

	s.fwd.rate = rate_mbit * 125000;
	s.fwd.qlimit = s.fwd.rate * qms / 1000;
	s.fwd.delay = s.rev.delay = delay_ms * 1000;
	s.snd = kcpx_kcp_new(1, out_snd, &s, NULL);
	s.rcv = kcpx_kcp_new(1, out_rcv, &s, NULL);
	/* --mode fast3 */
	kcpx_kcp_set_nodelay(s.snd, 1, 10, 2, 1);
	kcpx_kcp_set_nodelay(s.rcv, 1, 10, 2, 1);
	kcpx_kcp_set_wndsize(s.snd, wnd, wnd);
	kcpx_kcp_set_wndsize(s.rcv, wnd, wnd);
	if (fine) {
		kcpx_kcp_set_clock_us(s.snd, s.now);
		kcpx_kcp_set_clock_us(s.rcv, s.now);
	}
	kcpx_kcp_set_cc(s.snd, KCPX_CC_BBR, ms(&s));
	kcpx_kcp_set_cc(s.rcv, KCPX_CC_BBR, ms(&s));
	top_up(&s);
	kcpx_kcp_flush(s.snd, ms(&s));
	sim_run(&s, s.now + (uint64_t)warm * 1000);
	rx0 = s.rx;
	sent0 = s.fwd.sent;
	drop0 = s.fwd.qdropped;
	s.measure = true;
	sim_run(&s, s.now + (uint64_t)len * 1000);
	r.mbit = (double)(s.rx - rx0) * 8 / 1000.0 / len;
	r.qdrop = (double)(s.fwd.qdropped - drop0) / (double)KCPX_MAX(s.fwd.sent - sent0, 1ull);
	r.max_burst = s.max_burst;
	r.mean_gap_us = s.ngaps ? (double)s.gap_sum / (double)s.ngaps : 0;
	r.sub_ms = s.ngaps ? (double)s.under_ms_gaps / (double)s.ngaps : 0;
	r.wakeups_per_s = (double)s.wakeups * 1000.0 / len;
	kcpx_kcp_free(s.snd);
	kcpx_kcp_free(s.rcv);
	free(s.fwd.q);
	free(s.rev.q);
	return r;
}

static void print_res(const char *what, const struct pace_res *r)
{
	printf("     %-26s %6.1f Mbit/s, max burst %3llu, mean gap %6.1f us (%3.0f %% under "
	       "1 ms), %5.0f wakeups/s, tail drops %.3f %%\n",
	       what, r->mbit, (unsigned long long)r->max_burst, r->mean_gap_us, 100 * r->sub_ms,
	       r->wakeups_per_s, 100 * r->qdrop);
}

/*
 * 500 Mbit/s, 10 ms RTT, 5 ms of queue (a third of what a 2 ms burst at STARTUP's pace
 * pours in at once), windows big enough that the controller's cap rules. Driven on µs,
 * on time, the flow leaves about a quantum per wakeup (never 3 here), most instants
 * less than 1 ms apart, waking about once per quantum; driven on whole ms (the tunnel's
 * loop before epoll_pwait2) the same flow left in bursts of up to 2 ms of its pace (and
 * retransmissions on top), all on ms edges.
 */
static void test_pace_fast(void)
{
	struct pace_res c = pace_run(false, 500, 5, 5, 2048, 2000, 2000);
	struct pace_res f = pace_run(true, 500, 5, 5, 2048, 2000, 2000);
	/* a quantum of 32 full segments is 0.72 ms at 500 Mbit/s */
	double quanta = 500e6 / 8 / (KCPX_CC_QUANTUM_SEGS * 1400.0);

	print_res("ms-driven", &c);
	print_res("us-driven", &f);
	CHECK(f.max_burst <= 3 * KCPX_CC_QUANTUM_SEGS + 2);
	CHECK(f.sub_ms >= 0.9);
	CHECK(f.mean_gap_us < 1000);
	CHECK(f.wakeups_per_s <= 2 * quanta);
	CHECK(f.mbit >= 0.9 * 500 * 1376 / 1400);
	CHECK(f.qdrop <= 0.05);
}

/*
 * 20 Mbit/s, 10 ms RTT, 5 ms of queue: a quantum is 2 segments (1 ms of the rate is
 * less), so bursts stay at the bucket of 2 quanta and a wakeup comes about every 1.1 ms
 * (one per quantum, not one per datagram).
 */
static void test_pace_slow(void)
{
	struct pace_res c = pace_run(false, 20, 5, 5, 1024, 2000, 2000);
	struct pace_res f = pace_run(true, 20, 5, 5, 1024, 2000, 2000);
	double quanta = 20e6 / 8 / (2 * 1400.0);

	print_res("ms-driven", &c);
	print_res("us-driven", &f);
	CHECK(f.max_burst <= 2 * 2 + 1);
	CHECK(f.wakeups_per_s <= 1.25 * quanta);
	CHECK(f.mbit >= 0.9 * 20 * 1376 / 1400);
	CHECK(f.qdrop <= 0.03);
}

/* The bucket's arithmetic (cc.c): quantum sizes, the wakeup a fine owner is given. */
static void test_quantum(void)
{
	struct kcpx_cc cc;
	uint64_t t0 = 5000000, at;

	kcpx_cc_init(&cc, 1400, 5);
	kcpx_cc_set_fine(&cc, true);
	cc.pacing_rate = 2500000; /* 20 Mbit/s: 1 ms is 2500 bytes, under 2 segments */
	CHECK_EQ(kcpx_cc_quantum(&cc), 2 * 1400);
	cc.pacing_rate = 6250000; /* 50 Mbit/s: 1 ms */
	CHECK_EQ(kcpx_cc_quantum(&cc), 6250);
	cc.pacing_rate = 62500000; /* 500 Mbit/s: the cap */
	CHECK_EQ(kcpx_cc_quantum(&cc), KCPX_CC_QUANTUM_SEGS * 1400);

	/* spent down to -1000 bytes: back at a whole quantum, 32 x 1400 + 1000 bytes later */
	kcpx_cc_tokens(&cc, t0);
	cc.tokens = -1000;
	at = kcpx_cc_next_send(&cc, t0);
	CHECK_EQ(at, t0 + (32 * 1400 + 1000) * 1000000ull / 62500000 + 1);
	CHECK(kcpx_cc_tokens(&cc, at) >= (int64_t)kcpx_cc_quantum(&cc));
	/* late by a whole second: the bucket holds 2 ms of the rate (more than 2 quanta) */
	CHECK_EQ(kcpx_cc_tokens(&cc, at + 1000000), 125000);
	cc.pacing_rate = 2500000;
	CHECK_EQ(kcpx_cc_tokens(&cc, at + 2000000), 2 * 2 * 1400);
	cc.pacing_rate = 62500000;
	/* a ms-driven owner: wakes as soon as the debt is paid */
	kcpx_cc_set_fine(&cc, false);
	cc.tokens = -1000;
	CHECK_EQ(kcpx_cc_next_send(&cc, cc.tok_us), cc.tok_us + 17);
	CHECK_EQ(kcpx_cc_tokens(&cc, cc.tok_us + 1000000), 125000);
	/* sub-ms refills add up: 1000 calls 1 us apart at 100 kbit/s credit 12 bytes */
	cc.pacing_rate = 12500;
	cc.tokens = -100;
	cc.tok_frac = 0;
	at = cc.tok_us;
	for (int i = 1; i <= 1000; i++)
		kcpx_cc_tokens(&cc, at + (uint64_t)i);
	CHECK_EQ(cc.tokens, -100 + 12);
}

int main(void)
{
	RUN(test_quantum);
	RUN(test_pace_fast);
	RUN(test_pace_slow);
	UNIT_MAIN_END();
}
