// SPDX-License-Identifier: MIT
/*
 * The congestion controller (core/cc.c) driving KCP bulk flows through a bottleneck on the
 * virtual clock:
 *
 *   sender 1 --\                                                  /--> receiver 1
 *               [fwd: random loss, FIFO tail-drop queue, rate, delay]
 *   sender 2 --/                                                  \--> receiver 2
 *   senders  <------------------ [rev: delay, no limit] ------------- receivers
 *
 * Flows are told apart by conv. Each sender's app keeps its send queue full, as a bulk
 * transfer through kcpx does; receivers read everything at once.
 */
#include <stdio.h>

#include "core/cc.h"
#include "core/kcp.h"
#include "core/util.h"

#include "linksim.h"
#include "unit.h"

#define MAXF 2

struct net;

struct end {
	struct net *net;
	struct kcpx_kcp *kcp;
	bool rev; /* receiver: its output goes on the reverse link */
};

struct flow {
	struct end snd, rcv;
	bool on;
	uint64_t rx; /* app bytes received */
};

struct net {
	uint32_t now;
	struct linksim fwd, rev;
	struct flow f[MAXF];
	int nf;
	enum kcpx_cc_algo algo;
	unsigned wnd;
	uint64_t qsum, qsamples, qpeak; /* queue samples while measuring */
	uint32_t bulk_from;		/* before it the app writes one small message */
};

static void out_fn(const uint8_t *buf, size_t len, void *user)
{
	struct end *e = user;
	linksim_send(e->rev ? &e->net->rev : &e->net->fwd, e->net->now, buf, len);
}

static void net_init(struct net *n, uint64_t seed, enum kcpx_cc_algo algo, int nf)
{
	memset(n, 0, sizeof(*n));
	linksim_init(&n->fwd, seed);
	linksim_init(&n->rev, seed * 7 + 1);
	n->fwd.rate = 12500; /* 100 Mbit/s */
	n->fwd.delay = n->rev.delay = 25;
	n->fwd.qlimit = 12500 * 50; /* linkem's default: 50 ms of queue */
	n->algo = algo;
	n->nf = nf;
	n->wnd = 1024;
	n->now = 1000;
}

static void flow_start(struct net *n, int i)
{
	struct flow *f = &n->f[i];
	struct end *ends[2] = { &f->snd, &f->rcv };

	for (int k = 0; k < 2; k++) {
		struct end *e = ends[k];
		e->net = n;
		e->rev = k == 1;
		e->kcp = kcpx_kcp_new((uint32_t)i + 1, out_fn, e, NULL);
		/* --mode fast3 --sndwnd 1024 --rcvwnd 1024 */
		kcpx_kcp_set_nodelay(e->kcp, 1, 10, 2, 1);
		kcpx_kcp_set_wndsize(e->kcp, n->wnd, n->wnd);
		kcpx_kcp_set_cc(e->kcp, n->algo, n->now);
	}
	f->on = true;
}

static void net_free(struct net *n)
{
	for (int i = 0; i < n->nf; i++) {
		kcpx_kcp_free(n->f[i].snd.kcp);
		kcpx_kcp_free(n->f[i].rcv.kcp);
	}
	linksim_free(&n->fwd);
	linksim_free(&n->rev);
}

static void deliver(struct net *n, struct linksim *ls, bool to_rcv)
{
	static uint8_t buf[2048];
	long len;

	while ((len = linksim_recv(ls, n->now, buf, sizeof(buf))) >= 0) {
		uint32_t conv = len >= 4 ? kcpx_get_le32(buf) : 0;
		if (conv < 1 || conv > (uint32_t)n->nf || !n->f[conv - 1].on)
			continue;
		struct end *e = to_rcv ? &n->f[conv - 1].rcv : &n->f[conv - 1].snd;
		kcpx_kcp_input(e->kcp, buf, (size_t)len, n->now, true);
	}
}

/* Run until `until` (virtual ms). measure: sample the queue every ms. */
static void net_run(struct net *n, uint32_t until, bool measure)
{
	static uint8_t chunk[8192], rbuf[65536];

	for (; kcpx_diff32(until, n->now) > 0; n->now++) {
		deliver(n, &n->fwd, true);
		deliver(n, &n->rev, false);
		for (int i = 0; i < n->nf; i++) {
			struct flow *f = &n->f[i];
			bool wrote = false;
			ssize_t r;
			if (!f->on)
				continue;
			if (kcpx_diff32(n->bulk_from, n->now) > 0) {
				if (!kcpx_kcp_waitsnd(f->snd.kcp) && !f->rx) {
					kcpx_kcp_send(f->snd.kcp, chunk, 100);
					kcpx_kcp_flush(f->snd.kcp, n->now);
				}
			} else
				while (kcpx_kcp_waitsnd(f->snd.kcp) < kcpx_kcp_sndwnd(f->snd.kcp)) {
					kcpx_kcp_send(f->snd.kcp, chunk, sizeof(chunk));
					wrote = true;
				}
			if (wrote)
				kcpx_kcp_flush(f->snd.kcp, n->now);
			while ((r = kcpx_kcp_recv(f->rcv.kcp, rbuf, sizeof(rbuf))) > 0)
				f->rx += (uint64_t)r;
			if (kcpx_diff32(n->now, kcpx_kcp_check(f->snd.kcp, n->now)) >= 0)
				kcpx_kcp_update(f->snd.kcp, n->now);
			if (kcpx_diff32(n->now, kcpx_kcp_check(f->rcv.kcp, n->now)) >= 0)
				kcpx_kcp_update(f->rcv.kcp, n->now);
		}
		if (measure) {
			uint64_t q = linksim_queued(&n->fwd, n->now);
			n->qsum += q;
			n->qsamples++;
			if (q > n->qpeak)
				n->qpeak = q;
		}
	}
}

/* Payload bytes per ms a link of rate bytes/ms carries in full-size KCP datagrams. */
static double payload_rate(uint32_t rate)
{
	return rate * (1400.0 - 24) / 1400.0;
}

struct bulk {
	double util;	/* goodput / what the link can carry */
	double qavg_ms; /* average queue while measuring */
	double qpeak_ms;
	double qdrop; /* tail drops per datagram sent */
};

/* One flow: settle for warm ms, then measure for len ms. */
static struct bulk one_flow(enum kcpx_cc_algo algo, double loss, unsigned wnd, uint32_t warm,
			    uint32_t len, uint64_t seed)
{
	struct net n;
	struct bulk b;
	uint64_t rx0;

	net_init(&n, seed, algo, 1);
	n.fwd.loss = loss;
	n.wnd = wnd;
	flow_start(&n, 0);
	net_run(&n, n.now + warm, false);
	rx0 = n.f[0].rx;
	net_run(&n, n.now + len, true);
	b.util = (double)(n.f[0].rx - rx0) / len / payload_rate(n.fwd.rate);
	b.qavg_ms = (double)n.qsum / n.qsamples / n.fwd.rate;
	b.qpeak_ms = (double)n.qpeak / n.fwd.rate;
	b.qdrop = (double)n.fwd.qdropped / (double)n.fwd.sent;
	net_free(&n);
	return b;
}

static void print_bulk(const char *what, const struct bulk *b)
{
	printf("     %-26s goodput %5.1f %% of the link, queue avg %5.1f ms peak %5.1f ms, "
	       "tail drops %.2f %%\n",
	       what, 100 * b->util, b->qavg_ms, b->qpeak_ms, 100 * b->qdrop);
}

/* 100 Mbit/s, 50 ms RTT, 50 ms queue: within 40 RTTs the flow runs at >= 90 % of the
 * link, the queue stays well under one BDP, nearly nothing is dropped at it. Without a
 * controller the same flow fills the queue and loses a share of what it sends there. */
static void test_converge(void)
{
	struct bulk b = one_flow(KCPX_CC_BBR, 0, 1024, 2000, 4000, 1);
	struct bulk off = one_flow(KCPX_CC_OFF, 0, 1024, 2000, 4000, 1);

	print_bulk("bbr, no loss", &b);
	print_bulk("off, no loss", &off);
	CHECK(b.util >= 0.90);
	CHECK(b.qavg_ms <= 20);
	CHECK(b.qpeak_ms <= 45);
	CHECK(b.qdrop <= 0.005);
	/* the test can tell: without control the queue floods */
	CHECK(off.qdrop > 10 * b.qdrop + 0.01 || off.qavg_ms > 2 * b.qavg_ms + 10);
}

/* Random loss up to 10 % must not cut the rate: goodput stays >= 90 % of what the
 * link delivers after the loss. Windows of 4096: with 1024 a lost segment holds una
 * for an RTT and the window, not the controller, limits at 5 % loss. */
static void test_random_loss(void)
{
	static const double losses[] = { 0.01, 0.05, 0.10 };

	for (unsigned i = 0; i < KCPX_ARRAY_SIZE(losses); i++) {
		char what[40];
		struct bulk b = one_flow(KCPX_CC_BBR, losses[i], 4096, 2000, 4000, 10 + i);
		snprintf(what, sizeof(what), "bbr, %.0f %% loss", 100 * losses[i]);
		print_bulk(what, &b);
		CHECK(b.util >= 0.90 * (1 - losses[i]));
		CHECK(b.qavg_ms <= 25);
		CHECK(b.qdrop <= 0.01);
	}
}

/*
 * Windows that fit the path: kcptun's default client window (sndwnd 128) against a
 * server's rcvwnd 1024 caps a 50 ms RTT near 28 Mbit/s. With the window following the
 * controller (between kcpx ends) the same flow fills >= 80 % of a 100 Mbit/s link at 1 %
 * loss; without, it stays under 35 %, so the test can tell. A lower ceiling (--maxwnd)
 * holds the window there.
 */
static void test_wnd_grow(void)
{
	static const unsigned ceil[3] = { 0, 256, KCPX_KCP_WND_GROW_MAX };
	double u[3];

	for (int i = 0; i < 3; i++) {
		struct net n;
		uint64_t rx0;
		unsigned wnd;

		net_init(&n, 31, KCPX_CC_BBR, 1);
		n.fwd.loss = 0.01;
		flow_start(&n, 0);
		kcpx_kcp_set_wndsize(n.f[0].snd.kcp, 128, 0);
		kcpx_kcp_set_wnd_grow(n.f[0].snd.kcp, ceil[i]);
		net_run(&n, n.now + 3000, false);
		rx0 = n.f[0].rx;
		net_run(&n, n.now + 4000, true);
		u[i] = (double)(n.f[0].rx - rx0) / 4000 / payload_rate(n.fwd.rate);
		wnd = kcpx_kcp_sndwnd(n.f[0].snd.kcp);
		printf("     sndwnd 128, ceiling %u: goodput %.1f %% of the link, window %u, queue "
		       "avg %.1f ms, tail drops %.2f %%\n",
		       ceil[i], 100 * u[i], wnd, (double)n.qsum / n.qsamples / n.fwd.rate,
		       100.0 * (double)n.fwd.qdropped / (double)n.fwd.sent);
		CHECK(wnd <= (ceil[i] ? ceil[i] : 128));
		net_free(&n);
	}
	CHECK(u[0] < 0.35);
	CHECK(u[1] > u[0] && u[1] < u[2]);
	CHECK(u[2] >= 0.80);
}

/*
 * The grown window follows the path's BDP, not the controller's queue allowance: kcptun's
 * default mode (fast: a 30 ms flush interval) at 1 Gbit/s over 2 ms (the simulator's 1 ms
 * ticks make the min RTT 3 ms). The inflight cap adds the peer's interval to the RTT (22
 * BDPs here), but the peer ACKs each datagram's worth of segments at once, so a BDP and an
 * ACK batch in flight fill the link. The window (what the sender may queue) stays within
 * three BDPs and two ACK batches (about 920 segments; STARTUP's overestimate of the rate
 * makes the peak about 1090, not the 4096 ceiling) with the link full, and when the link
 * slows to 100 Mbit/s it shrinks back to about 200 (the samples a full window takes
 * count, so the estimate can fall) with the link still full.
 */
static void test_wnd_bdp(void)
{
	struct net n;
	struct flow *f;
	uint64_t rx0;
	unsigned wnd, peak = 0;
	double u;

	net_init(&n, 17, KCPX_CC_BBR, 1);
	n.fwd.rate = 125000; /* 1 Gbit/s */
	n.fwd.qlimit = 125000 * 50;
	n.fwd.delay = n.rev.delay = 1;
	flow_start(&n, 0);
	f = &n.f[0];
	kcpx_kcp_set_nodelay(f->snd.kcp, 0, 30, 2, 1);
	kcpx_kcp_set_nodelay(f->rcv.kcp, 0, 30, 2, 1);
	kcpx_kcp_set_wndsize(f->snd.kcp, 128, 0);
	kcpx_kcp_set_wnd_grow(f->snd.kcp, KCPX_KCP_WND_GROW_MAX);
	net_run(&n, n.now + 1000, false);
	rx0 = f->rx;
	for (int i = 0; i < 20; i++) {
		net_run(&n, n.now + 100, true);
		peak = KCPX_MAX(peak, kcpx_kcp_sndwnd(f->snd.kcp));
	}
	u = (double)(f->rx - rx0) / 2000 / payload_rate(n.fwd.rate);
	printf("     1 Gbit/s, 2 ms RTT, interval 30 ms: goodput %.1f %% of the link, window "
	       "peak %u (BDP %u segments)\n",
	       100 * u, peak, 125000 * 2 / 1400);
	CHECK(peak < 1300);
	CHECK(u >= 0.90);

	n.fwd.rate = 12500;
	n.fwd.qlimit = 12500 * 50;
	net_run(&n, n.now + 2000, false);
	rx0 = f->rx;
	net_run(&n, n.now + 1000, false);
	u = (double)(f->rx - rx0) / 1000 / payload_rate(n.fwd.rate);
	wnd = kcpx_kcp_sndwnd(f->snd.kcp);
	printf("     then 100 Mbit/s: goodput %.1f %% of the link, window %u\n", 100 * u, wnd);
	/* three BDPs of 3 ms at 100 Mbit/s and two ACK batches: about 200 */
	CHECK(wnd < 260);
	CHECK(u >= 0.90);
	net_free(&n);
}

/* Two flows, the second starting 1 s later: neither starves and together they fill the
 * link. (The 60/40 target is not met yet: docs/CONGESTION.md, open points.) */
static void test_two_flows(void)
{
	struct net n;
	uint64_t a0, b0;
	double a, b, share;

	net_init(&n, 5, KCPX_CC_BBR, 2);
	flow_start(&n, 0);
	net_run(&n, n.now + 1000, false);
	flow_start(&n, 1);
	net_run(&n, n.now + 6000, false);
	a0 = n.f[0].rx;
	b0 = n.f[1].rx;
	net_run(&n, n.now + 8000, true);
	a = (double)(n.f[0].rx - a0);
	b = (double)(n.f[1].rx - b0);
	share = a / (a + b);
	printf("     two flows: shares %.1f / %.1f %%, together %.1f %% of the link, "
	       "queue avg %.1f ms, tail drops %.2f %%\n",
	       100 * share, 100 * (1 - share), 100 * (a + b) / 8000 / payload_rate(n.fwd.rate),
	       (double)n.qsum / n.qsamples / n.fwd.rate,
	       100.0 * (double)n.fwd.qdropped / (double)n.fwd.sent);
	CHECK(share >= 0.10 && share <= 0.90);
	CHECK((a + b) / 8000 >= 0.85 * payload_rate(n.fwd.rate));
	net_free(&n);
}

/* The path changes under a running flow: rate 100 -> 20 -> 100 Mbit/s, then the RTT
 * 50 -> 150 ms. Within 8 s (20 Mbit/s: tens of RTTs with the old queue) of the rate drop
 * and 3-6 s of the others the flow is back at >= 90 % and the queue after the rate drop
 * has drained instead of standing. */
static void test_reconverge(void)
{
	struct net n;
	uint64_t rx0;
	double u;

	net_init(&n, 9, KCPX_CC_BBR, 1);
	n.wnd = 4096; /* 150 ms at 100 Mbit/s needs more than 1024 */
	flow_start(&n, 0);
	net_run(&n, n.now + 3000, false);

	n.fwd.rate = 2500; /* 20 Mbit/s; the queue limit stays 625 kB = 250 ms now */
	net_run(&n, n.now + 8000, false);
	rx0 = n.f[0].rx;
	n.qsum = n.qsamples = n.qpeak = 0;
	net_run(&n, n.now + 3000, true);
	u = (double)(n.f[0].rx - rx0) / 3000 / payload_rate(n.fwd.rate);
	printf("     100 -> 20 Mbit/s: goodput %.1f %%, queue avg %.1f ms\n", 100 * u,
	       (double)n.qsum / n.qsamples / n.fwd.rate);
	CHECK(u >= 0.90);
	CHECK((double)n.qsum / n.qsamples / n.fwd.rate <= 25); /* of 250 ms it could fill */

	n.fwd.rate = 12500;
	net_run(&n, n.now + 3000, false);
	rx0 = n.f[0].rx;
	n.qsum = n.qsamples = n.qpeak = 0;
	net_run(&n, n.now + 3000, true);
	u = (double)(n.f[0].rx - rx0) / 3000 / payload_rate(n.fwd.rate);
	printf("     20 -> 100 Mbit/s: goodput %.1f %%, queue avg %.1f ms\n", 100 * u,
	       (double)n.qsum / n.qsamples / n.fwd.rate);
	CHECK(u >= 0.90);

	n.fwd.delay = n.rev.delay = 75;
	net_run(&n, n.now + 6000, false);
	rx0 = n.f[0].rx;
	n.qsum = n.qsamples = n.qpeak = 0;
	net_run(&n, n.now + 4000, true);
	u = (double)(n.f[0].rx - rx0) / 4000 / payload_rate(n.fwd.rate);
	printf("     RTT 50 -> 150 ms: goodput %.1f %%, queue avg %.1f ms\n", 100 * u,
	       (double)n.qsum / n.qsamples / n.fwd.rate);
	CHECK(u >= 0.90);
	net_free(&n);
}

/* ratelimit caps the pacing rate: a 40 Mbit/s cap on a 100 Mbit/s link. */
static void test_ratelimit(void)
{
	struct net n;
	uint64_t rx0, sent0;
	double wire;

	net_init(&n, 3, KCPX_CC_BBR, 1);
	flow_start(&n, 0);
	kcpx_kcp_set_ratelimit(n.f[0].snd.kcp, 5000000);
	net_run(&n, n.now + 2000, false);
	rx0 = n.f[0].rx;
	sent0 = n.fwd.bytes + n.fwd.backlog;
	net_run(&n, n.now + 4000, false);
	wire = (double)(n.fwd.bytes + n.fwd.backlog - sent0) / 4000;
	printf("     ratelimit 5000000 B/s: %.0f wire bytes/ms, goodput %.0f bytes/ms\n", wire,
	       (double)(n.f[0].rx - rx0) / 4000);
	CHECK(wire <= 5000 * 1.02);
	CHECK(wire >= 5000 * 0.90);
	net_free(&n);
}

/* The controller alone under arbitrary events: outputs stay inside their bounds. */
static void test_bounds(void)
{
	struct kcpx_cc cc;
	struct kcpx_cc_tx tx[64] = { 0 };
	uint32_t st = 12345, now = 0xfffff000u;

	kcpx_cc_init(&cc, 1400, now);
	for (int i = 0; i < 200000; i++) {
		uint32_t r = unit_xorshift32(&st);
		struct kcpx_cc_tx *t = &tx[r % 64];
		now += (r >> 8) % 3 == 0 ? (r >> 12) % 50 : 0;
		switch ((r >> 16) % 6) {
		case 0:
			kcpx_cc_on_send(&cc, now, 1 + (r >> 20) % 2000, (r >> 4) % 3000000, t);
			break;
		case 1:
			kcpx_cc_on_ack(&cc, now, (r >> 27) & 1 ? NULL : t, 1 + (r >> 20) % 2000,
				       (r >> 28) & 1);
			break;
		case 2:
			kcpx_cc_on_rtt(&cc, now, (r >> 20) % 70000);
			break;
		case 3:
			kcpx_cc_on_lost(&cc, now - (r >> 20) % 300);
			break;
		case 4:
			kcpx_cc_ack_done(&cc, now, (r >> 3) % 5000000);
			break;
		default:
			kcpx_cc_set_fine(&cc, r & 1);
			kcpx_cc_tokens(&cc, (uint64_t)now * 1000);
			/* the bucket's depth, or the first flight's 32 segments */
			CHECK(cc.tokens <= (int64_t)(2 * cc.pacing_rate / 1000 +
						     2 * kcpx_cc_quantum(&cc) + 32 * 1400));
			if ((r >> 25) == 0)
				kcpx_cc_app_limited(&cc, r);
			break;
		}
		CHECK(cc.pacing_rate >= KCPX_CC_RATE_MIN && cc.pacing_rate <= KCPX_CC_RATE_MAX);
		CHECK(cc.inflight_cap >= KCPX_CC_CAP_MIN * 1400ull &&
		      cc.inflight_cap <= KCPX_CC_CAP_MAX);
		CHECK(cc.btl_bw <= KCPX_CC_RATE_MAX);
		CHECK(cc.state <= KCPX_CC_PROBE_RTT);
		CHECK(kcpx_cc_next_send(&cc, (uint64_t)now * 1000) >= (uint64_t)now * 1000 &&
		      kcpx_cc_next_send(&cc, (uint64_t)now * 1000) <=
			      (uint64_t)now * 1000 + 1001000);
	}
}

static void test_names(void)
{
	enum kcpx_cc_algo a;

	CHECK(kcpx_cc_algo_parse("bbr", &a) == 0 && a == KCPX_CC_BBR);
	CHECK(kcpx_cc_algo_parse("kcp", &a) == 0 && a == KCPX_CC_KCP);
	CHECK(kcpx_cc_algo_parse("off", &a) == 0 && a == KCPX_CC_OFF);
	CHECK(kcpx_cc_algo_parse("cubic", &a) < 0);
	CHECK(!strcmp(kcpx_cc_state_name(KCPX_CC_PROBE_BW), "probe_bw"));
}

/* Goodput in Mbit/s of one flow on a path without a bottleneck (the link drains at rate
 * bytes/ms, no queue limit): delay ms one way, loss both ways, windows wnd; measured over
 * len ms after warm ms from the flow's start. */
static double flow_mbit(enum kcpx_cc_algo algo, uint32_t delay, double loss, unsigned wnd,
			uint32_t rate, uint64_t seed, uint32_t idle, uint32_t warm, uint32_t len,
			struct kcpx_kcp_cc_info *info)
{
	struct net n;
	uint64_t rx0;
	double mbit;

	net_init(&n, seed, algo, 1);
	n.fwd.rate = rate;
	n.fwd.qlimit = 0;
	n.fwd.delay = n.rev.delay = delay;
	n.fwd.loss = n.rev.loss = loss;
	n.wnd = wnd;
	n.bulk_from = n.now + idle;
	flow_start(&n, 0);
	net_run(&n, n.now + idle + warm, false);
	rx0 = n.f[0].rx;
	net_run(&n, n.now + len, false);
	mbit = (double)(n.f[0].rx - rx0) * 8 / len / 1000;
	if (info)
		kcpx_kcp_cc_info(n.f[0].snd.kcp, info);
	net_free(&n);
	return mbit;
}

/* After the ramp: 6 s once 3 s have passed. */
static double lossy_mbit(enum kcpx_cc_algo algo, uint32_t delay, double loss, unsigned wnd,
			 uint32_t rate, uint64_t seed, struct kcpx_kcp_cc_info *info)
{
	return flow_mbit(algo, delay, loss, wnd, rate, seed, 0, 3000, 6000, info);
}

/*
 * No bottleneck, long RTT, heavy random loss both ways (make bench's 75 ms / 20 % lane
 * with its tuned windows): the controller must not send less than the windows alone
 * would. Segments waiting for their retransmission (and those whose ACK was lost) must
 * not fill the inflight cap, losses found two round trips late must still be told
 * apart, and STARTUP must not end on a noisy stall: each of those alone held the flow
 * at 0.4x of cc off here.
 */
static void test_lossy_long(void)
{
	static const uint32_t delays[] = { 25, 75 };
	static const double losses[] = { 0.10, 0.20 };
	double sum_off = 0, sum_bbr = 0;

	for (unsigned d = 0; d < KCPX_ARRAY_SIZE(delays); d++) {
		for (unsigned i = 0; i < KCPX_ARRAY_SIZE(losses); i++) {
			for (uint64_t seed = 1; seed <= 3; seed++) {
				struct kcpx_kcp_cc_info inf;
				double off = lossy_mbit(KCPX_CC_OFF, delays[d], losses[i], 2048,
							125000, seed, NULL);
				double bbr = lossy_mbit(KCPX_CC_BBR, delays[d], losses[i], 2048,
							125000, seed, &inf);
				printf("     %2u ms, %2.0f %% loss, seed %llu: off %5.1f bbr %5.1f "
				       "Mbit/s (%.2fx), %s\n",
				       delays[d], 100 * losses[i], (unsigned long long)seed, off,
				       bbr, bbr / off, kcpx_cc_state_name(inf.state));
				CHECK(bbr >= 0.85 * off);
				sum_off += off;
				sum_bbr += bbr;
			}
		}
	}
	printf("     all: %.2fx of cc off\n", sum_bbr / sum_off);
	CHECK(sum_bbr >= 0.95 * sum_off);
}

/*
 * Short transfers at long RTT (make bench's tuned lanes: 3 s, windows 2048, no
 * bottleneck): the ramp must not cost more than a few percent against `--cc off`, which
 * sends its whole window as soon as the peer's window is known. Once from the flow's
 * start, once after a small exchange (a tunnel's session begins with smux's SYN and the
 * application's handshake, so the bulk starts from an empty pipe). Growing the cap from
 * 32 segments at about 1.5x per 150 ms round held these flows at 0.59-0.74x of cc off;
 * now, at 100 ms RTT or more, the flight after the first ACK train carries one min RTT
 * at the train's rate (at 50 ms RTT the ramp is as before: 0.88-0.92x).
 */
static void test_short_start(void)
{
	static const struct {
		uint32_t delay;
		double loss;
	} cases[] = { { 25, 0 }, { 75, 0 }, { 75, 0.01 }, { 75, 0.05 }, { 75, 0.20 } };
	static const uint32_t idle[] = { 0, 1000 };
	double all_off = 0, all_bbr = 0;

	for (unsigned k = 0; k < KCPX_ARRAY_SIZE(idle); k++) {
		for (unsigned i = 0; i < KCPX_ARRAY_SIZE(cases); i++) {
			double off = 0, bbr = 0;
			for (uint64_t seed = 1; seed <= 3; seed++) {
				off += flow_mbit(KCPX_CC_OFF, cases[i].delay, cases[i].loss, 2048,
						 125000, seed, idle[k], 0, 3000, NULL);
				bbr += flow_mbit(KCPX_CC_BBR, cases[i].delay, cases[i].loss, 2048,
						 125000, seed, idle[k], 0, 3000, NULL);
			}
			printf("     %s, %2u ms, %2.0f %% loss, 3 s: off %5.1f bbr %5.1f Mbit/s "
			       "(%.2fx)\n",
			       idle[k] ? "after a small exchange" : "from the start",
			       cases[i].delay, 100 * cases[i].loss, off / 3, bbr / 3, bbr / off);
			CHECK(bbr >= 0.78 * off);
			all_off += off;
			all_bbr += bbr;
		}
	}
	printf("     all: %.2fx of cc off\n", all_bbr / all_off);
	CHECK(all_bbr >= 0.88 * all_off);
}

/*
 * The faster second flight must not flood a narrow bottleneck: the first flight's ACK
 * train reveals its rate, so no more than about one BDP lands there. 20 Mbit/s with a
 * 50 ms queue, 25 and 75 ms one way, 1 % loss, windows 1024, 8 s from the start.
 */
static void test_first_flight(void)
{
	static const uint32_t delays[] = { 25, 75 };

	for (unsigned d = 0; d < KCPX_ARRAY_SIZE(delays); d++) {
		struct net n;
		double util, drops;

		net_init(&n, 1, KCPX_CC_BBR, 1);
		n.fwd.rate = 2500;
		n.fwd.qlimit = 2500 * 50;
		n.fwd.delay = n.rev.delay = delays[d];
		n.fwd.loss = 0.01;
		flow_start(&n, 0);
		net_run(&n, n.now + 8000, false);
		util = (double)n.f[0].rx / 8000 / payload_rate(n.fwd.rate);
		drops = (double)n.fwd.qdropped / (double)n.fwd.sent;
		printf("     20 Mbit/s, %u ms: goodput %.1f %% of the link, tail drops %.2f %%\n",
		       delays[d], 100 * util, 100 * drops);
		CHECK(drops <= 0.02);
		CHECK(util >= 0.70);
		net_free(&n);
	}
}

/*
 * What a retransmission costs to find (CPU per GB on lossy lanes): a flush may look only
 * at the fast-retransmit candidates and at the segments whose RTO is due, not walk the
 * whole send buffer (up to 2048 segments here) each time an RTO comes due, which the
 * pacer's frequent flushes made about 30 looks per segment sent. 9 s of the tuned 75 ms /
 * 20 % lane without a bottleneck, of a 20 Mbit/s bottleneck at 1 % loss and of a clean
 * 1 Gbit/s path: segments looked at per PUSH transmission, under bbr and off. Goodput alongside, as a check that
 * the walk still finds what is due.
 */
static void walk_run(enum kcpx_cc_algo algo, uint32_t rate, uint32_t qms, uint32_t delay,
		     double loss, const char *what)
{
	struct net n;
	uint64_t sent, lost, steps;
	double mbit;

	net_init(&n, 3, algo, 1);
	n.fwd.rate = rate;
	n.fwd.qlimit = rate * qms;
	n.fwd.delay = n.rev.delay = delay;
	n.fwd.loss = n.rev.loss = loss;
	n.wnd = 2048;
	flow_start(&n, 0);
	net_run(&n, n.now + 9000, false);
	steps = kcpx_kcp_test_walk_steps(n.f[0].snd.kcp);
	kcpx_kcp_loss_counts(n.f[0].snd.kcp, &sent, &lost);
	if (algo != KCPX_CC_BBR) /* counted only under bbr: the wire carried about as many */
		sent = (uint64_t)(n.fwd.sent);
	mbit = (double)n.f[0].rx * 8 / 9000 / 1000;
	printf("     %-28s %s: %6.1f Mbit/s, %8llu segments looked at, %6llu sent (%.2f "
	       "each)\n",
	       what, kcpx_cc_algo_name(algo), mbit, (unsigned long long)steps,
	       (unsigned long long)sent, (double)steps / (double)sent);
	CHECK(sent > 0);
	CHECK(steps <= 2 * sent);
	net_free(&n);
}

static void test_walk_cost(void)
{
	walk_run(KCPX_CC_BBR, 125000, 0, 75, 0.20, "75 ms, 20 % loss");
	walk_run(KCPX_CC_OFF, 125000, 0, 75, 0.20, "75 ms, 20 % loss");
	walk_run(KCPX_CC_BBR, 2500, 50, 25, 0.01, "20 Mbit/s, 25 ms, 1 % loss");
	walk_run(KCPX_CC_OFF, 2500, 50, 25, 0.01, "20 Mbit/s, 25 ms, 1 % loss");
	walk_run(KCPX_CC_BBR, 125000, 0, 1, 0, "1 Gbit/s, 1 ms, no loss");
	walk_run(KCPX_CC_OFF, 125000, 0, 1, 0, "1 Gbit/s, 1 ms, no loss");
}

int main(void)
{
	RUN(test_names);
	RUN(test_bounds);
	RUN(test_converge);
	RUN(test_random_loss);
	RUN(test_lossy_long);
	RUN(test_short_start);
	RUN(test_first_flight);
	RUN(test_wnd_grow);
	RUN(test_wnd_bdp);
	RUN(test_two_flows);
	RUN(test_reconverge);
	RUN(test_ratelimit);
	RUN(test_walk_cost);
	UNIT_MAIN_END();
}
