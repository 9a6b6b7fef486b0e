// SPDX-License-Identifier: MIT
/*
 * Parity that follows the loss (user/core/fecadapt.c): the group model, the choice at
 * each loss level, the window rule (up at once, down one step), bounded outputs for any
 * count sequence; then whole native sessions with the rate-based controller on a
 * simulated 100 Mbit/s, 25 ms one-way bottleneck with a 50 ms tail-drop queue:
 *
 *   client --[loss][FIFO 12.5 MB/s, 625 kB][25 ms]--> server
 *          <--[loss][FIFO 12.5 MB/s, 625 kB][25 ms]--
 *
 * a loss sweep (the parity the sender ends at grows with the loss, none at 0 %) and the
 * goodput at 1 % and 10 % loss against the same sessions with fixed 10/3 parity.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "linksim.h"
#include "core/fecadapt.h"
#include "core/kcp.h"
#include "core/native.h"
#include "core/session.h"
#include "core/util.h"

#define SID 0x600dfecu

static void test_model(void)
{
	CHECK(kcpx_fecadapt_residual(0, 10, 0) == 0);
	CHECK(kcpx_fecadapt_residual(0.01, 10, 0) == 0.01);
	/* one loss among the other 10 shards: 1 - 0.99^10 */
	CHECK(kcpx_fecadapt_residual(0.01, 10, 1) > 0.01 * 0.0955);
	CHECK(kcpx_fecadapt_residual(0.01, 10, 1) < 0.01 * 0.0957);
	for (int p = 0; p < 8; p++)
		for (double r = 0.001; r < 0.5; r *= 1.5) {
			CHECK(kcpx_fecadapt_residual(r, 10, p + 1) <
			      kcpx_fecadapt_residual(r, 10, p));
			CHECK(kcpx_fecadapt_residual(r, 10, p) <
			      kcpx_fecadapt_residual(r * 1.5, 10, p));
		}
	CHECK_EQ(kcpx_fecadapt_choose(0, 10, 3), 0);
	CHECK_EQ(kcpx_fecadapt_choose(0.004, 10, 3), 0);
	CHECK_EQ(kcpx_fecadapt_choose(0.0125, 10, 3), 1);
	CHECK_EQ(kcpx_fecadapt_choose(0.04, 10, 3), 2);
	CHECK_EQ(kcpx_fecadapt_choose(0.0625, 10, 3), 3);
	CHECK_EQ(kcpx_fecadapt_choose(0.125, 10, 3), 3);
	CHECK_EQ(kcpx_fecadapt_choose(0.6, 10, 3), 3);
	CHECK_EQ(kcpx_fecadapt_choose(0.6, 200, 56), 56);
}

/* The window rule, on counts: up at once, down one step per clean window. */
static void test_window(void)
{
	struct kcpx_fecadapt a;
	uint64_t sent = 0, lost = 0;

	kcpx_fecadapt_init(&a, 10, 3);
	CHECK_EQ(a.parity, 3);
	CHECK_EQ(kcpx_fecadapt_update(&a, sent += 100, lost), 3); /* too few to judge */
	CHECK_EQ(kcpx_fecadapt_update(&a, sent += KCPX_FECA_WINDOW, lost), 2);
	CHECK_EQ(kcpx_fecadapt_update(&a, sent += KCPX_FECA_WINDOW, lost), 1);
	CHECK_EQ(kcpx_fecadapt_update(&a, sent += KCPX_FECA_WINDOW, lost), 0);
	CHECK_EQ(kcpx_fecadapt_update(&a, sent += KCPX_FECA_WINDOW, lost), 0);
	/* 10 % loss with no parity shows quickly and goes straight to the ceiling */
	CHECK_EQ(kcpx_fecadapt_update(&a, sent += KCPX_FECA_FAST_SENT, lost += 26), 3);
	CHECK(a.loss_ppm > 95000 && a.loss_ppm < 110000);
	/* a little residual at 3 parity means a lot of raw loss: stays */
	CHECK_EQ(kcpx_fecadapt_update(&a, sent += KCPX_FECA_WINDOW, lost += 40), 3);
	/* 1 % raw loss seen with no parity: one shard is enough */
	kcpx_fecadapt_init(&a, 10, 3);
	a.parity = 0;
	sent = lost = 0;
	CHECK_EQ(kcpx_fecadapt_update(&a, sent += KCPX_FECA_WINDOW, lost += 20), 1);
	CHECK_EQ(a.changes, 1);
	/* windows that span ARQ's repairs (kcpx ends): 1 % is left to ARQ, a window that
	 * reads 2.2 % takes one shard (not the model's two), 5 % the ceiling at once */
	kcpx_fecadapt_init(&a, 10, 3);
	kcpx_fecadapt_set_arq(&a, true);
	a.parity = 0;
	CHECK_EQ(kcpx_fecadapt_update(&a, sent += KCPX_FECA_WINDOW, lost += 20), 0);
	CHECK_EQ(kcpx_fecadapt_update(&a, sent += KCPX_FECA_WINDOW, lost += 45), 1);
	CHECK_EQ(kcpx_fecadapt_choose(0.022 * KCPX_FECA_MARGIN, 10, 3), 2);
	a.parity = 0;
	CHECK_EQ(kcpx_fecadapt_update(&a, sent += KCPX_FECA_WINDOW, lost += 102), 3);
	kcpx_fecadapt_set_arq(&a, false);
	a.parity = 0;
	CHECK_EQ(kcpx_fecadapt_update(&a, sent += KCPX_FECA_WINDOW, lost += 20), 1);
	/* counts that go back restart the window; nonsense never leaves [0, ps] */
	CHECK_EQ(kcpx_fecadapt_update(&a, 5, 0), 1);
	for (uint32_t seed = 1, i = 0; i < 100000; i++) {
		seed = unit_xorshift32(&seed);
		sent += seed % 5000;
		lost += (seed >> 13) % 3000;
		if (seed % 97 == 0)
			sent = seed % 7, lost = seed % 11;
		int p = kcpx_fecadapt_update(&a, sent, lost);
		CHECK(p >= 0 && p <= 3);
		CHECK(a.loss_ppm <= 500000);
	}
}

/*
 * Parity by need: a bulk (its new data sent with more held back behind it) whose windows
 * span ARQ's repairs sends no parity up to KCPX_FECA_BULK_LOSS; a sender with nothing
 * held back keeps the parity the loss wants, and gets it back as soon as a bulk runs dry.
 */
static void test_bulk(void)
{
	struct kcpx_fecadapt a;
	uint64_t sent = 0, lost = 0, segs = 0, held = 0;

	/* 10 % loss, app-limited (nothing held back): the ceiling, as before */
	kcpx_fecadapt_init(&a, 10, 3);
	kcpx_fecadapt_set_arq(&a, true);
	kcpx_fecadapt_path(&a, 450, 4096); /* 100 Mbit/s x 50 ms, --maxwnd 4096 */
	a.parity = 0;
	kcpx_fecadapt_backlog(&a, segs += 1800, held);
	CHECK_EQ(kcpx_fecadapt_update(&a, sent += KCPX_FECA_WINDOW, lost += 205), 3);
	CHECK(!a.bulk);
	/* the same loss with most new data held back: none, at once */
	kcpx_fecadapt_backlog(&a, segs += 1800, held += 1700);
	CHECK_EQ(kcpx_fecadapt_update(&a, sent += KCPX_FECA_WINDOW, lost += 2), 0);
	CHECK(a.bulk);
	CHECK_EQ(a.model, 3);
	/* at no parity only whole windows are judged: a short one with many losses waits */
	kcpx_fecadapt_backlog(&a, segs += 200, held += 200);
	CHECK_EQ(kcpx_fecadapt_update(&a, sent += KCPX_FECA_FAST_SENT, lost += 60), 0);
	kcpx_fecadapt_backlog(&a, segs += 1800, held += 1800);
	CHECK_EQ(kcpx_fecadapt_update(&a, sent += KCPX_FECA_WINDOW, lost += 140), 0);
	/* 20 % still ARQ's on this path */
	kcpx_fecadapt_backlog(&a, segs += 1600, held += 1600);
	CHECK_EQ(kcpx_fecadapt_update(&a, sent += KCPX_FECA_WINDOW, lost += 410), 0);
	/* the owner runs dry: BULK_FREE new segments with nothing held back bring the
	 * parity the loss wants back before any window closes */
	kcpx_fecadapt_backlog(&a, segs += KCPX_FECA_BULK_FREE - 1, held);
	CHECK_EQ(a.parity, 0);
	kcpx_fecadapt_backlog(&a, segs += 1, held);
	CHECK(!a.bulk);
	CHECK_EQ(a.parity, 3);
	CHECK_EQ(kcpx_fecadapt_update(&a, sent += 10, lost), 3);
	/* beyond KCPX_FECA_BULK_LOSS parity repairs even a bulk */
	kcpx_fecadapt_backlog(&a, segs += 1800, held += 1800);
	a.parity = 0;
	CHECK_EQ(kcpx_fecadapt_update(&a, sent += KCPX_FECA_WINDOW, lost += 800), 3);
	/* a window that cannot span the repairs: 150 ms at 100 Mbit/s, 10 % loss */
	kcpx_fecadapt_path(&a, 1300, 4096);
	kcpx_fecadapt_backlog(&a, segs += 1800, held += 1800);
	CHECK_EQ(kcpx_fecadapt_update(&a, sent += KCPX_FECA_WINDOW, lost += 2), 3);
	CHECK(a.bulk);
	kcpx_fecadapt_path(&a, 0, 4096); /* no estimate yet: parity */
	kcpx_fecadapt_backlog(&a, segs += 1800, held += 1800);
	CHECK_EQ(kcpx_fecadapt_update(&a, sent += KCPX_FECA_WINDOW, lost += 2), 3);
	/* without windows that grow (kcptun's format, --maxwnd 0) never */
	kcpx_fecadapt_path(&a, 450, 4096);
	kcpx_fecadapt_set_arq(&a, false);
	kcpx_fecadapt_backlog(&a, segs += 1800, held += 1800);
	CHECK_EQ(kcpx_fecadapt_update(&a, sent += KCPX_FECA_WINDOW, lost += 2), 3);
	CHECK(!a.bulk);
	/* --fecparity loss: nothing counts as a bulk, the parity follows the loss */
	kcpx_fecadapt_init(&a, 10, 3);
	kcpx_fecadapt_set_arq(&a, true);
	kcpx_fecadapt_set_by_need(&a, false);
	kcpx_fecadapt_path(&a, 450, 4096);
	a.parity = 0;
	kcpx_fecadapt_backlog(&a, segs += 1800, held += 1800);
	CHECK_EQ(kcpx_fecadapt_update(&a, sent += KCPX_FECA_WINDOW, lost += 205), 3);
	CHECK(!a.bulk);
	/* counts that go back start over; nonsense never leaves [0, ps] */
	kcpx_fecadapt_set_by_need(&a, true);
	for (uint32_t seed = 7, i = 0; i < 100000; i++) {
		seed = unit_xorshift32(&seed);
		sent += seed % 5000;
		lost += (seed >> 13) % 3000;
		segs += seed % 300;
		held += (seed >> 7) % 300;
		if (seed % 89 == 0)
			segs = seed % 5, held = seed % 13;
		kcpx_fecadapt_path(&a, seed % 5000, (seed >> 3) % 8192);
		kcpx_fecadapt_backlog(&a, segs, held);
		int p = kcpx_fecadapt_update(&a, sent, lost);
		CHECK(p >= 0 && p <= 3);
		CHECK(a.held <= a.segs);
	}
}

/* ------------------------------------------------------------ sessions on a link */

struct end {
	struct kcpx_session *s;
	struct linksim *out;
	uint32_t hrate; /* the host's own link, bytes/ms (0: unlimited) ... */
	uint32_t hcap;	/* ... and its send buffer, bytes: beyond it, a local drop */
	uint64_t hq;	/* bytes in that buffer at hq_ts */
	uint32_t hq_ts;
	uint32_t ldrops;   /* local drops not yet reported to the session */
	uint64_t ldropped; /* all of them */
	struct kcpx_snmp snmp;
	uint32_t sid;
	bool have_sid;
};

static uint32_t now;

static void e_xmit(void *user, const uint8_t *dgram, size_t len)
{
	struct end *e = user;

	if (e->hrate) {
		uint64_t out = (uint64_t)(now - e->hq_ts) * e->hrate;

		e->hq = e->hq > out ? e->hq - out : 0;
		e->hq_ts = now;
		if (e->hq + len > e->hcap) {
			e->ldrops++; /* ENOBUFS: reported after the flush, as path.c does */
			e->ldropped++;
			return;
		}
		e->hq += len;
	}
	linksim_send(e->out, now, dgram, len);
}

/* The server's receive side (test_rx_drops): the rate its engine reads at out of a
 * socket buffer of 64 datagrams (0: it reads all), and whether the buffer's drops are
 * passed to the session (SO_RXQ_OVFL's count, as path.c does). */
static uint32_t srv_rrate;
static bool srv_rx_report = true;

/* What path.c does after a flush that could not send everything. */
static void report_drops(struct end *e)
{
	if (e->ldrops)
		kcpx_session_local_drop(e->s, e->ldrops, now);
	e->ldrops = 0;
}

static void e_accept(void *user, uint32_t sid)
{
	struct end *e = user;

	e->sid = sid;
	e->have_sid = true;
}

static const struct kcpx_session_ops e_ops = { .xmit = e_xmit, .accept = e_accept };

/* both receive windows stay the configured ones (kcpx before they could grow) */
static bool rcv_fixed;

static struct kcpx_session_config cfg(bool client, bool fixed)
{
	return (struct kcpx_session_config){
		.conv = SID,
		.mtu = 1350,
		.sndwnd = 1024,
		.rcvwnd = 1024,
		.nodelay = 1,
		.interval = 10,
		.resend = 2,
		.nc = 1,
		.cc = KCPX_CC_BBR,
		.datashard = 10,
		.parityshard = 3,
		.fec_fixed = fixed,
		.native = true,
		.smux = { .version = 1,
			  .client = client,
			  .max_frame = 32768,
			  .max_recv_buffer = 4194304,
			  .max_stream_buffer = 2097152 },
	};
}

/* The daemon's defaults on top (what `kcpx client|server` runs with): tail-loss probe,
 * quick ACKs, RTO bound, FEC on a 10 ms timer, compression. */
static struct kcpx_session_config cfg_daemon(bool client)
{
	struct kcpx_session_config c = cfg(client, false);

	c.tlp = c.quickack = c.rto_hygiene = true;
	c.fec_flush_ms = 10;
	c.comp = true;
	return c;
}

struct run {
	double mbit;	     /* goodput over the second half */
	double mbit_all;     /* over the whole run, startup included (as the bench's iperf3) */
	unsigned srv_rcvwnd; /* the server's receive window at the end */
	int parity;	     /* the client's parity at the end */
	uint32_t loss_ppm;
	double qdrop;		     /* tail drops per datagram sent, client -> server */
	uint64_t ldropped, lost;     /* local drops; the client's loss count at the end */
	uint64_t cc_local;	     /* local drops its controller was told of */
	uint64_t segs, rto_segs;     /* second half: PUSH segments sent, of them RTO resends */
	uint64_t rdropped, rarrived; /* second half: at the server's socket, dropped, all */
	uint64_t peer_drops;	     /* drops the client's engine was told of */
	uint32_t rounds;	     /* round trips the client's controller counted */
	double loss_avg;	     /* second half: adaptive FEC's raw-loss estimate, mean */
	int par_min, par_max;	     /* second half: the parity sent, lowest and highest */
};

/* The bottleneck's queue limit (test_parity_lag: none, so no tail drops). */
static uint32_t path_qlimit = 625000;
/* Its one-way delay, ms (test_long_path: 75). */
static uint32_t path_delay = 25;
/* bulk(): the daemon's defaults (cfg_daemon) and incompressible data. */
static bool bulk_daemon;

/* The header's path, both ways: 25 ms, a 12.5 MB/s FIFO of 625 kB, random loss. */
static void bottleneck_link(struct linksim *ab, struct linksim *ba, uint64_t seed, double loss)
{
	linksim_init(ab, seed);
	linksim_init(ba, seed + 1);
	ab->delay = ba->delay = path_delay;
	ab->rate = ba->rate = 12500;
	ab->qlimit = ba->qlimit = path_qlimit;
	ab->loss = ba->loss = loss;
}

/* A bulk upload for `ms` of simulated time; goodput counted over the second half. */
static void bulk(double loss, uint32_t hrate, bool fixed, uint32_t ms, uint64_t seed,
		 struct run *out)
{
	static const uint8_t secret[32] = { 7, 7, 7 };
	static uint8_t buf[65536];
	struct kcpx_session_config cc = bulk_daemon ? cfg_daemon(true) : cfg(true, fixed);
	struct kcpx_session_config sc = bulk_daemon ? cfg_daemon(false) : cfg(false, fixed);
	struct kcpx_native *nc, *ns;
	struct linksim ab, ba, sock;
	struct end c = { 0 }, srv = { 0 };
	uint64_t got = 0, got_half = 0;
	uint32_t sid, t0 = now;
	uint64_t segs_half = 0, rto_half = 0;
	struct run r = { .par_min = 256, .par_max = -1 };
	uint64_t loss_sum = 0, loss_n = 0;
	int ps;

	*out = r;
	{
		uint32_t x = 0x2545f491u;

		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = bulk_daemon ? (uint8_t)unit_xorshift32(&x) : 0;
	}

	bottleneck_link(&ab, &ba, seed, loss);
	c.out = &ab;
	srv.out = &ba;
	c.hrate = hrate;
	c.hcap = 64 * 1400;
	c.hq_ts = now;
	/* the server's socket buffer: a FIFO its engine drains at srv_rrate */
	linksim_init(&sock, seed + 2);
	sock.rate = srv_rrate;
	sock.qlimit = 64 * 1400;
	c.s = kcpx_session_new(&cc, &e_ops, &c, &c.snmp, now);
	srv.s = kcpx_session_new(&sc, &e_ops, &srv, &srv.snmp, now);
	CHECK(c.s && srv.s);
	if (rcv_fixed) {
		kcpx_kcp_set_rcv_grow(kcpx_session_kcp(c.s), 0);
		kcpx_kcp_set_rcv_grow(kcpx_session_kcp(srv.s), 0);
	}
	CHECK_EQ(kcpx_native_new_secret(&nc, secret, SID, false, KCPX_NATIVE_XCHACHA), 0);
	CHECK_EQ(kcpx_native_new_secret(&ns, secret, SID, true, KCPX_NATIVE_XCHACHA), 0);
	kcpx_session_set_native(c.s, nc);
	kcpx_session_set_native(srv.s, ns);
	CHECK_EQ(kcpx_smux_open(kcpx_session_smux(c.s), &sid), 0);
	while (now - t0 < ms) {
		struct {
			struct linksim *in;
			struct end *to;
		} dir[2] = { { srv_rrate ? &sock : &ab, &srv }, { &ba, &c } };
		uint8_t pkt[1600], *body;
		size_t blen;
		long n;
		ssize_t w, rd;

		while ((w = kcpx_smux_write(kcpx_session_smux(c.s), sid, buf, sizeof(buf))) > 0)
			kcpx_session_pump(c.s, now);
		report_drops(&c);
		for (int k = 0; k < 2; k++) {
			uint64_t rd = sock.qdropped;
			bool any = false;

			while (!k && srv_rrate &&
			       (n = linksim_recv(&ab, now, pkt, sizeof(pkt))) >= 0)
				linksim_send(&sock, now, pkt, (size_t)n);
			while ((n = linksim_recv(dir[k].in, now, pkt, sizeof(pkt))) >= 0) {
				if (!kcpx_session_open_native(dir[k].to->s, pkt, (size_t)n, &body,
							      &blen))
					kcpx_session_input(dir[k].to->s, body, blen, now);
				any = true;
			}
			if (!k && srv_rx_report && sock.qdropped > rd)
				kcpx_session_rx_dropped(srv.s, (uint32_t)(sock.qdropped - rd));
			if (any)
				kcpx_session_pump(dir[k].to->s, now);
			report_drops(dir[k].to);
		}
		if (srv.have_sid) {
			bool any = false;

			while ((rd = kcpx_smux_read(kcpx_session_smux(srv.s), srv.sid, buf,
						    sizeof(buf))) > 0) {
				got += (uint64_t)rd;
				any = true;
			}
			if (any)
				kcpx_session_pump(srv.s, now);
		}
		if (now - t0 >= ms / 2 && (now - t0) % 100 == 0) {
			uint32_t ppm;
			int p;

			kcpx_session_fec_parity(c.s, &p, &ps, &ppm);
			loss_sum += ppm;
			loss_n++;
			r.par_min = KCPX_MIN(r.par_min, p);
			r.par_max = KCPX_MAX(r.par_max, p);
		}
		if (now - t0 == ms / 2) {
			got_half = got;
			segs_half = c.snmp.OutSegs;
			rto_half = c.snmp.LostSegs;
			r.rdropped = sock.qdropped;
			r.rarrived = sock.sent;
		}
		for (int k = 0; k < 2; k++) {
			struct kcpx_session *s = k ? srv.s : c.s;

			if ((int32_t)(kcpx_session_deadline(s, now) - now) <= 0)
				kcpx_session_tick(s, now);
		}
		report_drops(&c);
		now++;
	}
	CHECK(!kcpx_session_dead(c.s) && !kcpx_session_dead(srv.s));
	r.mbit = (double)(got - got_half) * 8 / ((double)(ms / 2) * 1000);
	r.segs = c.snmp.OutSegs - segs_half;
	r.rto_segs = c.snmp.LostSegs - rto_half;
	kcpx_session_fec_parity(c.s, &r.parity, &ps, &r.loss_ppm);
	r.loss_avg = loss_n ? (double)loss_sum / (double)loss_n / 1e6 : 0;
	CHECK_EQ(ps, 3);
	CHECK(r.parity >= 0 && r.parity <= 3);
	r.qdrop = ab.sent ? (double)ab.qdropped / (double)ab.sent : 0;
	r.ldropped = c.ldropped;
	{
		struct kcpx_kcp_cc_info ci;
		uint64_t sent;

		kcpx_kcp_cc_info(kcpx_session_kcp(c.s), &ci);
		kcpx_kcp_loss_counts(kcpx_session_kcp(c.s), &sent, &r.lost);
		r.cc_local = ci.local_drops;
		r.peer_drops = ci.peer_drops;
		r.rounds = ci.rounds;
	}
	r.rdropped = sock.qdropped - r.rdropped;
	r.rarrived = sock.sent - r.rarrived;
	CHECK_EQ(srv.snmp.InCsumErrors, 0);
	r.mbit_all = (double)got * 8 / ((double)ms * 1000);
	r.srv_rcvwnd = kcpx_kcp_rcvwnd(kcpx_session_kcp(srv.s));
	kcpx_session_free(c.s);
	kcpx_session_free(srv.s);
	linksim_free(&ab);
	linksim_free(&ba);
	linksim_free(&sock);
	*out = r;
}

/*
 * A clean path behind the bottleneck: every RTO resend is spurious (nothing is lost
 * but the few tail drops), and each one takes a datagram's worth of the link from new
 * data. The controller's own probing swings the RTT by a quarter of it, which KCP's RTO
 * (srtt + max(interval, 4 rttvar)) did not allow for: 5.2 % of the segments sent went
 * out again on RTO and goodput was 88.7 Mbit/s. kcp.c's rto_adapt pads the RTO after
 * spurious RTO resends.
 */
static void test_spurious_rto(void)
{
	struct run r;

	bulk(0, 0, false, 6000, 400, &r);
	printf("      no loss: %llu RTO resends of %llu segments (%.2f %%), goodput %.1f Mbit/s, "
	       "queue drops %.2f %%\n",
	       (unsigned long long)r.rto_segs, (unsigned long long)r.segs,
	       r.segs ? 100.0 * (double)r.rto_segs / (double)r.segs : 0, r.mbit, r.qdrop * 100);
	CHECK(r.segs > 0);
	CHECK(r.rto_segs * 100 <= r.segs); /* at most 1 % */
	CHECK(r.mbit >= 91);
	CHECK(r.qdrop <= 0.005);
}

/* The parity a bulk settles at: none on a clean path, and none either where the loss is
 * ARQ's (its windows span the repairs, session 12's parity by need): it goes past what
 * three parity shards let through (10/13 of the link) at 5 and 10 %. At 20 % the
 * estimate with its margin sits near where the window stops spanning the repairs, so
 * the parity may come back for a window; most of the run goes without. */
static void test_sweep(void)
{
	static const double loss[] = { 0, 0.01, 0.05, 0.10, 0.20 };

	for (size_t i = 0; i < sizeof(loss) / sizeof(loss[0]); i++) {
		struct run r;

		bulk(loss[i], 0, false, 6000, 100 + i, &r);

		printf("      loss %4.1f %%: parity %d of 3 (%d-%d in the second half, loss seen "
		       "%.2f %%), goodput %.1f Mbit/s, queue drops %.2f %%\n",
		       loss[i] * 100, r.parity, r.par_min, r.par_max, r.loss_ppm / 1e4, r.mbit,
		       r.qdrop * 100);
		if (loss[i] == 0)
			CHECK_EQ(r.parity, 0);
		/* at 1 % the parity a run ends at moves between 0 and 3 with the seed (a
		 * window that saw a burst of losses raises it at once, and the loss read
		 * through one parity shard's model is noisy): what must hold is that it ran
		 * below the ceiling, past what fixed 10/3 can carry */
		if (loss[i] > 0 && loss[i] <= 0.10)
			CHECK(r.mbit > 100.0 * 10 / 13);
		if (loss[i] >= 0.05 && loss[i] <= 0.10)
			CHECK_EQ(r.par_max, 0);
		if (loss[i] >= 0.20) {
			CHECK_EQ(r.par_min, 0);
			CHECK(r.mbit > 52); /* with the ceiling's three shards: 45-48 */
		}
		CHECK(r.qdrop < 0.01);
	}
}

/* Goodput of the engine at the bottleneck, adaptive against fixed 10/3 parity. Fixed
 * parity cannot pass 10/13 of the wire; at 1 % the adaptive sender does. */
static void test_goodput(void)
{
	struct run a1, f1, a10, f10;

	bulk(0.01, 0, false, 8000, 200, &a1);
	bulk(0.01, 0, true, 8000, 200, &f1);
	bulk(0.10, 0, false, 8000, 300, &a10);
	bulk(0.10, 0, true, 8000, 300, &f10);

	printf("      1 %%: adaptive %.1f Mbit/s (parity %d), fixed 10/3 %.1f\n", a1.mbit,
	       a1.parity, f1.mbit);
	printf("      10 %%: adaptive %.1f Mbit/s (parity %d), fixed 10/3 %.1f\n", a10.mbit,
	       a10.parity, f10.mbit);
	CHECK_EQ(f1.parity, 3);
	CHECK(f1.mbit < 100.0 * 10 / 13);
	CHECK(a1.mbit > 100.0 * 10 / 13);
	CHECK(a1.mbit > f1.mbit * 1.1);
	CHECK(a1.qdrop < 0.02);
	/* a bulk leaves 10 % to ARQ too (parity by need): past the three shards' ceiling */
	CHECK(a10.mbit > f10.mbit * 1.1);
	CHECK(a10.mbit > 100.0 * 10 / 13);
	/* with (next to) no parity from the client the server's receive window grows past
	 * ARQ's holes on this 50 ms path; with fixed 10/3 parity repairs and it stays */
	printf("      server's receive window: %u at 1 %%, %u at 10 %%, %u with fixed 10/3\n",
	       a1.srv_rcvwnd, a10.srv_rcvwnd, f10.srv_rcvwnd);
	CHECK(a1.srv_rcvwnd > 1024);
	CHECK(a10.srv_rcvwnd > 1024);
	CHECK_EQ(f10.srv_rcvwnd, 1024);
}

/*
 * The host is the bottleneck: its own link runs at 80 Mbit/s behind a 64-datagram send
 * buffer (a full socket buffer or AF_XDP ring drops), the path at 100. The controller is
 * told of every local drop, they do not read as path loss (the sender's loss count stays
 * far below them, the parity goes to none), and the pace settles under the host's rate
 * instead of overrunning its buffer: few drops, goodput near what 80 Mbit/s can carry.
 */
static void test_local_drops(void)
{
	struct run r;

	bulk(0, 10000, false, 8000, 400, &r);
	printf("      host link 80 Mbit/s: %llu local drops, controller told of %llu, loss count "
	       "%llu, "
	       "parity %d, goodput %.1f Mbit/s\n",
	       (unsigned long long)r.ldropped, (unsigned long long)r.cc_local,
	       (unsigned long long)r.lost, r.parity, r.mbit);
	CHECK(r.ldropped > 0);
	CHECK_EQ(r.cc_local, r.ldropped);
	CHECK(r.lost * 4 <= r.ldropped);
	CHECK_EQ(r.parity, 0);
	CHECK(r.mbit > 80 * 0.8);
}

/*
 * The receiver is the bottleneck: its engine reads 50 Mbit/s out of a 64-datagram
 * socket buffer, the path carries 100. Its drops there are congestion at the last queue
 * of the path, but to the sender they look like random loss (the buffer's delay is
 * short against the path's 50 ms): the loss compensation and adaptive FEC raise the
 * pace and the parity, and the sender keeps overrunning the buffer (without the report:
 * 8 % of what reached it dropped, parity 3 of 3, 38 Mbit/s). With the receiver's drop
 * report (kcp.h) the controller takes them as a full queue and keeps them out of its
 * loss counts: the pace settles near what the receiver reads, with few drops, and the
 * parity stays low. Three seeds.
 */
static void test_rx_drops(void)
{
	/* the engine's read rate (Mbit/s) and the path's random loss */
	static const struct {
		uint32_t mbit;
		double loss;
	} cs[3] = { { 50, 0 }, { 50, 0.01 }, { 25, 0 } };
	struct run told[3], blind;

	for (int i = 0; i < 3; i++) {
		srv_rrate = cs[i].mbit * 125;
		bulk(cs[i].loss, 0, false, 8000, 500 + i, &told[i]);
	}
	srv_rrate = 6250;
	srv_rx_report = false;
	bulk(0, 0, false, 8000, 500, &blind);
	srv_rx_report = true;
	srv_rrate = 0;
	for (int i = 0; i < 4; i++) {
		const struct run *r = i == 3 ? &blind : &told[i];

		printf("      receiver reads %u Mbit/s, loss %.0f %%, drops %s: second half %llu "
		       "of %llu datagrams dropped (%.1f %%), peer drops told %llu, loss count "
		       "%llu, parity %d, goodput %.1f Mbit/s\n",
		       i == 3 ? 50 : cs[i].mbit, i == 3 ? 0 : cs[i].loss * 100,
		       i == 3 ? "not reported" : "reported", (unsigned long long)r->rdropped,
		       (unsigned long long)r->rarrived,
		       r->rarrived ? 100.0 * (double)r->rdropped / (double)r->rarrived : 0,
		       (unsigned long long)r->peer_drops, (unsigned long long)r->lost, r->parity,
		       r->mbit);
	}
	CHECK_EQ(blind.peer_drops, 0);
	for (int i = 0; i < 3; i++) {
		CHECK(told[i].rarrived > 0);
		CHECK(told[i].peer_drops > 0);
		/* bounded drops: under 2 % of what reaches the socket in the second half */
		CHECK(told[i].rdropped * 100 <= told[i].rarrived * 2);
		CHECK(told[i].parity <= 1);
		/* near what the receiver takes (its wire bytes carry about 92 % payload) */
		CHECK(told[i].mbit > cs[i].mbit * 0.8);
	}
}

/*
 * The loss the parity is chosen on must be the path's. A copy's loss is known a round
 * trip or two after it went out; counting it against the parity in force when it became
 * known read a stretch at no parity through the one-shard model as 2-4 % raw loss on a
 * 1 % path, so parity ratcheted up (on the bottleneck path the sweep ended at parity 2
 * with 3.8 % "loss seen" at 1 %, 7.6 % at 5 %). With a queue that never overflows (only
 * the random loss, both ways) the estimate must read that loss, and the parity must
 * stay at what the model gives for it.
 */
static void test_parity_lag(void)
{
	static const double loss[] = { 0.01, 0.05 };
	struct run r[2][3];

	path_qlimit = 0;
	for (size_t i = 0; i < 2; i++)
		for (size_t k = 0; k < 3; k++)
			bulk(loss[i], 0, false, 6000, 700 + 10 * i + k, &r[i][k]);
	path_qlimit = 625000;
	for (size_t i = 0; i < 2; i++)
		for (size_t k = 0; k < 3; k++) {
			printf("      loss %.0f %%, seed %zu: loss seen %.2f %% (mean), parity "
			       "%d-%d, "
			       "goodput %.1f Mbit/s\n",
			       loss[i] * 100, k, r[i][k].loss_avg * 100, r[i][k].par_min,
			       r[i][k].par_max, r[i][k].mbit);
			CHECK(r[i][k].loss_avg > loss[i] * 0.6);
			CHECK(r[i][k].loss_avg < loss[i] * 1.4);
			/* the model's choice at 1.25 x the loss: 1 % -> 1 (0 between kcpx
			 * ends, whose windows span ARQ's repairs: fecadapt.h), 5 % -> 3 */
			if (loss[i] < 0.02)
				CHECK(r[i][k].par_max <= 1);
		}
}

/* ---------------------------------------- small exchanges next to a bulk transfer */

/*
 * Two tunnels on the same bottleneck, as tools/bench/bottleneck.sh runs them: a bulk
 * upload on one, 64-byte request/response exchanges one after another on the other
 * (the bench's RPC latency), every setting the daemon's default (tail-loss probe, quick
 * ACKs, RTO bound, FEC on a 10 ms timer, compression). The datagrams carry a one-byte
 * tag naming their tunnel so that one link carries both.
 */
struct tagged {
	struct end e;
	uint8_t tag;
};

static void t_xmit(void *user, const uint8_t *dgram, size_t len)
{
	struct tagged *t = user;
	uint8_t b[1600];

	if (len + 1 > sizeof(b))
		return;
	b[0] = t->tag;
	memcpy(b + 1, dgram, len);
	e_xmit(&t->e, b, len + 1);
}

static void t_accept(void *user, uint32_t sid)
{
	e_accept(&((struct tagged *)user)->e, sid);
}

static const struct kcpx_session_ops t_ops = { .xmit = t_xmit, .accept = t_accept };

struct rpcrun {
	double mbit;		 /* bulk goodput from the first exchange on */
	uint32_t n;		 /* exchanges done */
	uint32_t lat[4096];	 /* their round trips, ms */
	uint64_t qms_sum, qms_n; /* queue delay at the bottleneck (client -> server), ms */
	uint32_t qms_max;
	double qdrop;
	int bulk_par, rpc_par; /* the parity each client sends at the end */
};

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static uint32_t pct(const struct rpcrun *r, unsigned p)
{
	/* nearest rank, as tools/bench/rr.c */
	uint32_t k = (r->n * p + 99) / 100;

	return r->n ? r->lat[k ? k - 1 : 0] : 0;
}

static void bulk_rpc(double loss, uint32_t ms, uint64_t seed, bool bulk_on, struct rpcrun *out)
{
	static const uint8_t secret[32] = { 7, 7, 7 };
	static uint8_t buf[65536];
	struct kcpx_session_config bc = cfg_daemon(true), bs = cfg_daemon(false);
	struct kcpx_session_config rc = cfg_daemon(true), rs = cfg_daemon(false);
	struct kcpx_native *n[4];
	struct linksim ab, ba;
	struct tagged t[4] = { 0 }; /* bulk client, bulk server, rpc client, rpc server */
	uint64_t got = 0, got0 = 0;
	uint32_t bsid, rsid, t0 = now, start = 0, sent_at = 0;
	bool waiting = false;
	size_t have = 0;

	memset(out, 0, sizeof(*out));
	{
		uint32_t x = 0x2545f491u;

		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = (uint8_t)unit_xorshift32(&x); /* compression must not help */
	}
	rc.conv = rs.conv = SID + 1;
	bottleneck_link(&ab, &ba, seed, loss);
	for (int i = 0; i < 4; i++) {
		const struct kcpx_session_config *c = i == 0   ? &bc
						      : i == 1 ? &bs
						      : i == 2 ? &rc
							       : &rs;

		t[i].tag = (uint8_t)i;
		t[i].e.out = i % 2 ? &ba : &ab;
		t[i].e.s = kcpx_session_new(c, &t_ops, &t[i], &t[i].e.snmp, now);
		CHECK(t[i].e.s);
		CHECK_EQ(kcpx_native_new_secret(&n[i], secret, c->conv, i % 2, KCPX_NATIVE_XCHACHA),
			 0);
		kcpx_session_set_native(t[i].e.s, n[i]);
		if (rcv_fixed)
			kcpx_kcp_set_rcv_grow(kcpx_session_kcp(t[i].e.s), 0);
	}
	CHECK_EQ(kcpx_smux_open(kcpx_session_smux(t[0].e.s), &bsid), 0);
	CHECK_EQ(kcpx_smux_open(kcpx_session_smux(t[2].e.s), &rsid), 0);
	while (now - t0 < ms) {
		struct linksim *in[2] = { &ab, &ba };
		uint8_t pkt[1600], *body;
		size_t blen;
		long len;
		bool any[4] = { false };
		ssize_t rd;

		while (bulk_on &&
		       kcpx_smux_write(kcpx_session_smux(t[0].e.s), bsid, buf, sizeof(buf)) > 0)
			kcpx_session_pump(t[0].e.s, now);
		for (int k = 0; k < 2; k++) {
			while ((len = linksim_recv(in[k], now, pkt, sizeof(pkt))) >= 1) {
				struct tagged *to = &t[(pkt[0] & 3) ^ 1];

				if (!kcpx_session_open_native(to->e.s, pkt + 1, (size_t)len - 1,
							      &body, &blen))
					kcpx_session_input(to->e.s, body, blen, now);
				any[(pkt[0] & 3) ^ 1] = true;
			}
		}
		for (int i = 0; i < 4; i++)
			if (any[i])
				kcpx_session_pump(t[i].e.s, now);
		/* bulk server: take everything */
		if (t[1].e.have_sid) {
			bool more = false;

			while ((rd = kcpx_smux_read(kcpx_session_smux(t[1].e.s), t[1].e.sid, buf,
						    sizeof(buf))) > 0) {
				got += (uint64_t)rd;
				more = true;
			}
			if (more)
				kcpx_session_pump(t[1].e.s, now);
		}
		/* rpc server: answer each 64-byte request with 64 bytes */
		if (t[3].e.have_sid) {
			uint8_t q[64];

			while ((rd = kcpx_smux_read(kcpx_session_smux(t[3].e.s), t[3].e.sid, q,
						    sizeof(q))) > 0) {
				have += (size_t)rd;
				while (have >= 64) {
					have -= 64;
					CHECK_EQ(kcpx_smux_write(kcpx_session_smux(t[3].e.s),
								 t[3].e.sid, q, 64),
						 64);
				}
				kcpx_session_pump(t[3].e.s, now);
			}
		}
		/* rpc client: after the bulk's first second, one exchange at a time */
		if (waiting) {
			uint8_t a[64];

			rd = kcpx_smux_read(kcpx_session_smux(t[2].e.s), rsid, a, sizeof(a));
			if (rd > 0) {
				CHECK_EQ(rd, 64);
				if (out->n < sizeof(out->lat) / sizeof(out->lat[0]))
					out->lat[out->n++] = now - sent_at;
				waiting = false;
				kcpx_session_pump(t[2].e.s, now);
			}
		}
		if (!waiting && now - t0 >= 1000) {
			uint8_t q[64] = { 1 };

			if (!start) {
				start = now;
				got0 = got;
			}
			CHECK_EQ(kcpx_smux_write(kcpx_session_smux(t[2].e.s), rsid, q, 64), 64);
			kcpx_session_pump(t[2].e.s, now);
			sent_at = now;
			waiting = true;
		}
		if (start) {
			uint32_t q = (uint32_t)(linksim_queued(&ab, now) / ab.rate);

			out->qms_sum += q;
			out->qms_n++;
			out->qms_max = KCPX_MAX(out->qms_max, q);
		}
		for (int i = 0; i < 4; i++)
			if ((int32_t)(kcpx_session_deadline(t[i].e.s, now) - now) <= 0)
				kcpx_session_tick(t[i].e.s, now);
		now++;
	}
	{
		int ps;

		kcpx_session_fec_parity(t[0].e.s, &out->bulk_par, &ps, NULL);
		kcpx_session_fec_parity(t[2].e.s, &out->rpc_par, &ps, NULL);
	}
	for (int i = 0; i < 4; i++) {
		CHECK(!kcpx_session_dead(t[i].e.s));
		kcpx_session_free(t[i].e.s);
	}
	out->mbit = start ? (double)(got - got0) * 8 / ((double)(now - start) * 1000) : 0;
	out->qdrop = ab.sent ? (double)ab.qdropped / (double)ab.sent : 0;
	qsort(out->lat, out->n, sizeof(out->lat[0]), cmp_u32);
	linksim_free(&ab);
	linksim_free(&ba);
}

/*
 * The bench's RPC p99 at 1 % loss was 94 ms (target 80) on a 50 ms path. On the
 * virtual clock the exchanges alone lose 10 ms at most to a loss (FEC on a timer); what
 * spreads them is the bulk's queue at the bottleneck. Its max filter reads a few % above
 * a lossy link, and cruising on that grew a queue between probes that the guard let
 * stand (its margin held the peer's 10 ms ACK delay): 6.8 ms average, 45 ms at worst,
 * p99 81 ms. The guard now looks at the round's smallest RTT with path jitter's margin
 * only.
 */
static void test_rpc_tail(void)
{
	static const double loss[] = { 0.01, 0.05 };
	/* three seeds each: one run's average queue moves by about a ms from seed to seed,
	 * its p99 (the third largest of about 260 exchanges) by several */
	static const uint64_t seeds[] = { 500, 600, 610 };

	for (size_t i = 0; i < sizeof(loss) / sizeof(loss[0]); i++) {
		uint64_t qsum = 0, qn = 0;
		uint32_t p99[3];

		for (size_t k = 0; k < sizeof(seeds) / sizeof(seeds[0]); k++) {
			static struct rpcrun r;

			bulk_rpc(loss[i], 16000, seeds[k] + i, true, &r);
			printf("      loss %.0f %%, seed %zu: bulk %.1f Mbit/s, queue avg %.1f max "
			       "%u ms, "
			       "drops %.2f %%; %u exchanges p50 %u p90 %u p99 %u max %u ms; "
			       "parity bulk %d, rpc %d\n",
			       loss[i] * 100, k, r.mbit,
			       r.qms_n ? (double)r.qms_sum / (double)r.qms_n : 0, r.qms_max,
			       r.qdrop * 100, r.n, pct(&r, 50), pct(&r, 90), pct(&r, 99),
			       r.n ? r.lat[r.n - 1] : 0, r.bulk_par, r.rpc_par);
			CHECK(r.n >= 200);
			CHECK(r.mbit >= 70);
			/* parity by need: the bulk, held back by its controller, leaves the
			 * loss to ARQ; the exchanges (nothing ever held back) keep theirs */
			CHECK_EQ(r.bulk_par, 0);
			CHECK(r.rpc_par > 0);
			p99[k] = pct(&r, 99);
			qsum += r.qms_sum;
			qn += r.qms_n;
		}
		CHECK(qsum <= qn * 11 / 2); /* average queue over the seeds <= 5.5 ms */
		qsort(p99, 3, sizeof(p99[0]), cmp_u32);
		CHECK(p99[1] <= (loss[i] < 0.02 ? 78u : 100u)); /* the median seed's p99 */
	}
}

/*
 * The grid's long lossy cell (100 Mbit/s, 75 ms one way, 10 % loss, the flags:
 * windows 1024): a round trip carries about 1,050 data segments besides their parity, so
 * a receive window of 1024 held the sender to less than one round trip's worth while a
 * loss FEC left waited for its repair (another round trip or more): 32-34 Mbit/s over
 * the whole run, where TCP BBR made 54 on the bench. Between kcpx ends on such a long
 * path the receive window now grows past holes (kcp.c rcv_grow): 54 Mbit/s alone, but
 * the sender's own window (three BDPs of the estimate) still held what was in flight
 * near one BDP behind the repairs' shadow, so the estimate that STARTUP left at 52-60
 * Mbit/s took 4 s to reach the link. On a long path it also spans what was acknowledged
 * past holes (kcp.c snd_wnd_eff): 59. The runs with the receive window held at 1024
 * must stay below 45.
 */
static void test_long_path(void)
{
	double grown = 0, fixed = 0;
	unsigned w = ~0u, wf = 0;

	path_delay = 75;
	for (int i = 0; i < 3; i++) {
		struct run r;

		bulk(0.10, 0, false, 8000, 1100 + (uint64_t)i, &r);
		grown += r.mbit_all / 3;
		w = KCPX_MIN(w, r.srv_rcvwnd);
		CHECK(r.qdrop < 0.02);
		rcv_fixed = true;
		bulk(0.10, 0, false, 8000, 1100 + (uint64_t)i, &r);
		rcv_fixed = false;
		fixed += r.mbit_all / 3;
		wf = KCPX_MAX(wf, r.srv_rcvwnd);
	}
	path_delay = 25;
	printf("      75 ms, 10 %%: %.1f Mbit/s (server rcvwnd >= %u), window fixed at 1024 "
	       "%.1f\n",
	       grown, w, fixed);
	CHECK_EQ(wf, 1024);
	CHECK(w > 1024);
	CHECK(fixed < 45);
	CHECK(grown >= 55);
}

/*
 * The same cell with the daemon's defaults, as the bench's tunnels run it. Quick ACKs
 * make fast retransmit race FEC: a data shard lost at random is resent after two quick
 * ACKs, a few ms before the group's parity rebuilds it, and the rebuilt shard's ACK
 * (echoing the first copy's ts) then acknowledged the segment. When that ACK was taken
 * with the resend's rate record, a round of the controller ended each time, several per
 * round trip: STARTUP's three rounds without growth passed within one, at 5-20 Mbit/s,
 * and the max filter's ten rounds shrank to two round trips (several hundred rounds in
 * 8 s of a 150 ms path, and a third to a fifth of the goodput; docs/CONGESTION.md,
 * session 11). Now an ACK of an earlier copy gives no sample: about one round per
 * round trip, and the goodput test_long_path gets without quick ACKs.
 */
static void test_long_path_daemon(void)
{
	double sum = 0;

	path_delay = 75;
	bulk_daemon = true;
	for (int i = 0; i < 3; i++) {
		struct run r;

		bulk(0.10, 0, false, 8000, 1100 + (uint64_t)i, &r);
		printf("      75 ms, 10 %%, the daemon's defaults, seed %d: %.1f Mbit/s, %u "
		       "rounds, "
		       "queue drops %.2f %%\n",
		       i, r.mbit_all, r.rounds, r.qdrop * 100);
		sum += r.mbit_all;
		CHECK(r.rounds <= 8000 / 150 + 10);
		CHECK(r.mbit_all >= 45);
		CHECK(r.qdrop < 0.02);
	}
	bulk_daemon = false;
	path_delay = 25;
	CHECK(sum / 3 >= 50);
}

int main(void)
{
	RUN(test_model);
	RUN(test_window);
	RUN(test_bulk);
	RUN(test_sweep);
	RUN(test_goodput);
	RUN(test_spurious_rto);
	RUN(test_local_drops);
	RUN(test_rx_drops);
	RUN(test_parity_lag);
	RUN(test_rpc_tail);
	RUN(test_long_path);
	RUN(test_long_path_daemon);
	UNIT_MAIN_END();
}
