// SPDX-License-Identifier: MIT
/*
 * Issue 7, FEC on a timer: the encoder's flush (wire form: parity at its usual seqids,
 * unsent data seqids skipped, parity = RS over the sent shards and zeros), what kcp-go's
 * decoder makes of such a group, kcpx's decoder rebuilding it from fewer shards (and never
 * guessing wrong on an ordinary group), then two whole sessions (session.c: KCP, FEC,
 * native protocol, smux) over the virtual-clock link doing 64-byte request/response
 * exchanges (--fecflush only acts between kcpx ends, in the native protocol):
 *
 *   client session --linksim ab (25 ms, loss)--> server session
 *                 <--linksim ba (25 ms, loss)--
 *
 * A single lost request or reply must be recovered by the flushed parity, and at 5 % loss
 * each way the tail goal of issue 7 (p99 <= 75 ms, p99.9 <= 150 ms at 50 ms RTT) must hold.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "unit.h"
#include "linksim.h"
#include "core/fec.h"
#include "core/native.h"
#include "core/redund.h"
#include "core/session.h"
#include "core/smux.h"
#include "core/util.h"

/* ------------------------------------------------------------ FEC flush */

struct shard {
	uint8_t b[1500];
	size_t len;
	bool parity;
};

struct shards {
	struct shard p[64];
	int n;
};

static void keep_emit(void *user, uint8_t *body, size_t len, bool parity)
{
	struct shards *s = user;

	if (s->n < 64) {
		memcpy(s->p[s->n].b, body, len);
		s->p[s->n].len = len;
		s->p[s->n].parity = parity;
		s->n++;
	}
}

struct got {
	uint8_t b[64][1500];
	size_t len[64];
	bool rec[64];
	int n;
};

static void got_recv(void *user, const uint8_t *kcp, size_t len, bool recovered)
{
	struct got *g = user;

	if (g->n < 64) {
		memcpy(g->b[g->n], kcp, len);
		g->len[g->n] = len;
		g->rec[g->n] = recovered;
		g->n++;
	}
}

/* A KCP datagram of len >= 24 bytes: one segment, cmd (81 PUSH, 82 ACK), bytes from id. */
static void kcp_seg(uint8_t *b, size_t len, uint8_t id, uint8_t cmd)
{
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(id * 37 + i * 11 + 1);
	b[0] = id;
	b[4] = cmd;
	kcpx_put_le32(b + 20, (uint32_t)(len - 24));
}

static void fake_kcp(uint8_t *b, size_t len, uint8_t id)
{
	kcp_seg(b, len, id, 81);
}

/* Encode k fake datagrams of the given lengths into a 10/3 encoder, then flush. */
static int encode_flushed(struct kcpx_fec_enc *e, struct shards *out, int k, const size_t *lens)
{
	uint8_t b[1400];

	for (int i = 0; i < k; i++) {
		fake_kcp(b, lens[i], (uint8_t)(i + 1));
		if (kcpx_fec_encode(e, b, lens[i], 1000 + (uint32_t)i, keep_emit, out, NULL))
			return -1;
	}
	return kcpx_fec_enc_flush(e, keep_emit, out);
}

static void test_flush_wire(void)
{
	struct kcpx_fec_enc *e = kcpx_fec_enc_new(10, 3, 20, 16);
	struct kcpx_rs *rs = kcpx_rs_new(10, 3);
	static struct shards out;
	static uint8_t buf[13][1500];
	uint8_t *sh[13];
	size_t lens[2] = { 40, 90 };
	uint32_t since = 0;

	CHECK(e && rs);
	memset(&out, 0, sizeof(out));
	CHECK(!kcpx_fec_enc_open(e, &since));
	CHECK_EQ(kcpx_fec_enc_flush(e, keep_emit, &out), 0); /* nothing open: nothing sent */
	CHECK_EQ(out.n, 0);
	CHECK_EQ(encode_flushed(e, &out, 2, lens) + 0, 3);
	CHECK(!kcpx_fec_enc_open(e, &since));
	CHECK_EQ(out.n, 5);
	/* data 0, 1; parity at 10, 11, 12, each as long as the longest data body */
	CHECK_EQ(kcpx_get_le32(out.p[0].b), 0);
	CHECK_EQ(kcpx_get_le32(out.p[1].b), 1);
	for (int j = 0; j < 3; j++) {
		CHECK(out.p[2 + j].parity);
		CHECK_EQ(kcpx_get_le32(out.p[2 + j].b), 10 + j);
		CHECK_EQ(kcpx_get_le16(out.p[2 + j].b + 4), KCPX_FEC_PARITY);
		CHECK_EQ(out.p[2 + j].len, KCPX_FEC_HDR_PARITY + 2 + 90);
	}
	/* the parity is plain RS over [d0, d1, zeros...] */
	memset(buf, 0, sizeof(buf));
	for (int i = 0; i < 13; i++)
		sh[i] = buf[i];
	memcpy(buf[0], out.p[0].b + 6, out.p[0].len - 6);
	memcpy(buf[1], out.p[1].b + 6, out.p[1].len - 6);
	CHECK_EQ(kcpx_rs_encode(rs, sh, 92), 0);
	for (int j = 0; j < 3; j++)
		CHECK_MEM(out.p[2 + j].b + 6, buf[10 + j], 92);
	/* the next group starts at 13; ACK-only shards do not ask for a flush, the first one
	 * with stream data stamps the group */
	kcp_seg(buf[0], 24, 8, 82);
	CHECK_EQ(kcpx_fec_encode(e, buf[0], 24, 4000, keep_emit, &out, NULL), 0);
	CHECK_EQ(kcpx_get_le32(out.p[5].b), 13);
	CHECK(!kcpx_fec_enc_open(e, &since));
	/* ACK + PUSH in one datagram, as KCP packs them */
	kcp_seg(buf[0], 24, 8, 82);
	kcp_seg(buf[0] + 24, 30, 9, 81);
	CHECK_EQ(kcpx_fec_encode(e, buf[0], 54, 5000, keep_emit, &out, NULL), 0);
	CHECK(kcpx_fec_enc_open(e, &since));
	CHECK_EQ(since, 5000);
	kcp_seg(buf[0], 40, 10, 81);
	CHECK_EQ(kcpx_fec_encode(e, buf[0], 40, 5007, keep_emit, &out, NULL), 0);
	CHECK(kcpx_fec_enc_open(e, &since));
	CHECK_EQ(since, 5000);
	CHECK_EQ(kcpx_fec_enc_flush(e, keep_emit, &out), 3);
	CHECK_EQ(kcpx_get_le32(out.p[8].b), 23); /* parity of group 1: 13 + 10 */
	CHECK(!kcpx_fec_enc_open(e, &since));
	kcpx_fec_enc_free(e);
	kcpx_rs_free(rs);
}

/* Feed the shards whose bit in `lost` is clear; return what the decoder handed on. */
static int feed(struct kcpx_fec_dec *d, struct shards *s, uint64_t lost, struct got *g,
		struct kcpx_snmp *snmp)
{
	memset(g, 0, sizeof(*g));
	for (int i = 0; i < s->n; i++)
		if (!(lost >> i & 1) &&
		    kcpx_fec_decode(d, s->p[i].b, s->p[i].len, 2000, got_recv, g, snmp) < 0)
			return -1;
	return g->n;
}

/* A rebuilt datagram equals data shard `idx` of s. */
static bool same_as(const struct got *g, int at, const struct shards *s, int idx)
{
	return g->len[at] == s->p[idx].len - KCPX_FEC_HDR &&
	       !memcmp(g->b[at], s->p[idx].b + KCPX_FEC_HDR, g->len[at]);
}

static void test_kcpgo_decoder_and_flushed_group(void)
{
	struct kcpx_fec_enc *e = kcpx_fec_enc_new(10, 3, 0, 0);
	struct kcpx_fec_dec *d = kcpx_fec_dec_new(10, 3);
	static struct shards s;
	static struct got g;
	struct kcpx_snmp snmp = { 0 };
	size_t lens[8] = { 100, 30, 500, 64, 64, 80, 1200, 24 };

	CHECK(e && d);
	memset(&s, 0, sizeof(s));
	/* 8 of 10 sent, shard 3 lost: 7 + 3 >= 10, kcp-go rebuilds it (and the two unsent,
	 * all-zero shards, which it counts as FECErrs and drops) */
	CHECK_EQ(encode_flushed(e, &s, 8, lens), 3);
	CHECK_EQ(feed(d, &s, 1u << 3, &g, &snmp), 8);
	CHECK(g.rec[7]);
	CHECK(same_as(&g, 7, &s, 3));
	CHECK_EQ(snmp.FECRecovered, 1);
	CHECK_EQ(snmp.FECErrs, 2);
	/* one shard sent and lost: kcp-go cannot rebuild it, and hands nothing on */
	memset(&s, 0, sizeof(s));
	CHECK_EQ(encode_flushed(e, &s, 1, lens), 3);
	CHECK_EQ(feed(d, &s, 1u << 0, &g, &snmp), 0);
	kcpx_fec_enc_free(e);
	kcpx_fec_dec_free(d);
}

static void test_partial_rebuild(void)
{
	static const struct {
		int k;
		uint64_t lost; /* bits over [data 0..k), then parity */
		int want_rec;  /* rebuilt datagrams handed on (-1: none and group left queued) */
	} cases[] = {
		{ 1, 1u << 0, 1 },		 /* the lone request lost: 2 of 3 parity */
		{ 1, (1u << 0) | (1u << 1), 1 }, /* ... and one parity: 2 left */
		{ 1, (1u << 0) | (1u << 1) | (1u << 2), -1 }, /* 1 parity: no spare to check */
		{ 3, 1u << 2, 1 },			      /* the last one sent */
		{ 3, (1u << 0) | (1u << 2), 2 },	      /* first and last */
		{ 5, 0, 0 }, /* nothing lost: settled, nothing rebuilt */
		{ 4, (1u << 1) | (1u << 2) | (1u << 3), -1 }, /* 3 lost, 3 parity: no spare */
	};
	size_t lens[5] = { 64, 24, 700, 64, 1300 };

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct kcpx_fec_enc *e = kcpx_fec_enc_new(10, 3, 0, 0);
		struct kcpx_fec_dec *d = kcpx_fec_dec_new(10, 3);
		static struct shards s;
		static struct got g;
		struct kcpx_snmp snmp = { 0 };
		int k = cases[c].k, want = cases[c].want_rec, nrec = 0, ndata = 0;

		CHECK(e && d);
		kcpx_fec_dec_set_partial(d, true);
		memset(&s, 0, sizeof(s));
		CHECK_EQ(encode_flushed(e, &s, k, lens), 3);
		CHECK(feed(d, &s, cases[c].lost, &g, &snmp) >= 0);
		for (int i = 0; i < g.n; i++) {
			if (!g.rec[i]) {
				ndata++;
				continue;
			}
			/* a rebuilt one is one of the lost data shards, byte for byte */
			bool match = false;

			for (int j = 0; j < k; j++)
				match |= (cases[c].lost >> j & 1) && same_as(&g, i, &s, j);
			CHECK(match);
			nrec++;
		}
		CHECK_EQ(ndata, k - __builtin_popcountll(cases[c].lost & ((1ull << k) - 1)));
		CHECK_EQ(nrec, want < 0 ? 0 : want);
		CHECK_EQ(snmp.FECRecovered, nrec);
		CHECK_EQ(snmp.FECErrs, 0); /* unsent shards are never counted as errors */
		/* a settled group leaves the queue (parity arriving after it stays, as in
		 * kcp-go, until pushed out); an unsolvable one waits whole */
		if (want < 0)
			CHECK_EQ(kcpx_fec_dec_queued(d), s.n - __builtin_popcountll(cases[c].lost));
		else
			CHECK(kcpx_fec_dec_queued(d) < 3);
		kcpx_fec_enc_free(e);
		kcpx_fec_dec_free(d);
	}
}

/* An ordinary full group (a kcptun sender) that lost too much: no guess may pass. */
static void test_partial_never_guesses_wrong(void)
{
	struct kcpx_fec_enc *e = kcpx_fec_enc_new(10, 3, 0, 0);
	struct kcpx_fec_dec *d = kcpx_fec_dec_new(10, 3);
	static struct shards s;
	static struct got g;
	uint8_t b[1400];
	uint32_t r = 99;

	CHECK(e && d);
	kcpx_fec_dec_set_partial(d, true);
	for (int grp = 0; grp < 300; grp++) {
		uint64_t lost = 0;
		int nlost = 0;

		memset(&s, 0, sizeof(s));
		for (int i = 0; i < 10; i++) {
			r = r * 1103515245u + 12345u;
			fake_kcp(b, 24 + (r >> 8) % 200, (uint8_t)r);
			CHECK_EQ(kcpx_fec_encode(e, b, 24 + (r >> 8) % 200, 0, keep_emit, &s, NULL),
				 0);
		}
		CHECK_EQ(s.n, 13);
		/* lose 4..6 data shards anywhere (parity all delivered): fewer than 10 remain */
		while (nlost < 4 + grp % 3) {
			r = r * 1103515245u + 12345u;
			if (!(lost >> ((r >> 16) % 10) & 1)) {
				lost |= 1ull << ((r >> 16) % 10);
				nlost++;
			}
		}
		CHECK(feed(d, &s, lost, &g, NULL) >= 0);
		for (int i = 0; i < g.n; i++)
			CHECK(!g.rec[i]);
	}
	kcpx_fec_enc_free(e);
	kcpx_fec_dec_free(d);
}

/* ------------------------------------------------------------ sessions on the sim link */

struct end {
	struct kcpx_session *s;
	struct linksim *out;
	uint32_t sid;
	bool have_sid;
};

struct world {
	struct end c, srv;
	struct linksim ab, ba;
	uint32_t now;
	int drop_ab, drop_ba; /* drop the next datagram sent that way */
	bool drop_reply;      /* drop the datagram carrying the server's next reply */
};

static uint32_t g_now;

static void w_xmit(void *user, const uint8_t *dgram, size_t len)
{
	struct end *e = user;

	linksim_send(e->out, g_now, dgram, len);
}

static void w_accept(void *user, uint32_t sid)
{
	struct end *e = user;

	e->sid = sid;
	e->have_sid = true;
}

static const struct kcpx_session_ops w_ops = { .xmit = w_xmit, .accept = w_accept };

static bool drop_next(void *ctx, uint64_t idx, const uint8_t *buf, size_t len)
{
	int *flag = ctx;

	(void)idx;
	(void)buf;
	(void)len;
	if (!*flag)
		return false;
	*flag = 0;
	return true;
}

struct opts {
	bool timing;	/* --tlp --quickack --rtohygiene */
	unsigned flush; /* --fecflush */
	unsigned dup;	/* --dupsmall (--dupgap 5) */
	bool nofec;	/* --ds 0 --ps 0 */
};

static int world_init(struct world *w, const struct opts *o, double loss, uint64_t seed)
{
	static const uint8_t secret[32] = { 7, 1, 2 };
	struct kcpx_native *nc = NULL, *ns = NULL;
	/* kcptun's defaults, mode fast (what `kcpx client|server` runs with no flags) */
	struct kcpx_session_config cfg = {
		.conv = 0x1234567,
		.mtu = 1350,
		.nodelay = 0,
		.interval = 30,
		.resend = 2,
		.nc = 1,
		.tlp = o->timing,
		.quickack = o->timing,
		.rto_hygiene = o->timing,
		.datashard = o->nofec ? 0 : 10,
		.parityshard = o->nofec ? 0 : 3,
		.fec_flush_ms = o->flush,
		.dup_small = o->dup,
		.dup_gap_ms = 5,
		.comp = true,
		.native = true,
		.smux = { .version = 1,
			  .max_frame = 32768,
			  .max_recv_buffer = 4194304,
			  .max_stream_buffer = 2097152 },
	};

	memset(w, 0, sizeof(*w));
	linksim_init(&w->ab, seed);
	linksim_init(&w->ba, seed * 7 + 1);
	w->ab.delay = w->ba.delay = 25;
	w->ab.loss = w->ba.loss = loss;
	w->ab.drop_fn = w->ba.drop_fn = drop_next;
	w->ab.drop_ctx = &w->drop_ab;
	w->ba.drop_ctx = &w->drop_ba;
	w->c.out = &w->ab;
	w->srv.out = &w->ba;
	cfg.sndwnd = 128;
	cfg.rcvwnd = 512;
	cfg.smux.client = true;
	w->c.s = kcpx_session_new(&cfg, &w_ops, &w->c, NULL, 0);
	cfg.sndwnd = 1024;
	cfg.rcvwnd = 1024;
	cfg.smux.client = false;
	w->srv.s = kcpx_session_new(&cfg, &w_ops, &w->srv, NULL, 0);
	if (!w->c.s || !w->srv.s ||
	    kcpx_native_new_secret(&nc, secret, cfg.conv, false, KCPX_NATIVE_XCHACHA) ||
	    kcpx_native_new_secret(&ns, secret, cfg.conv, true, KCPX_NATIVE_XCHACHA)) {
		kcpx_native_free(nc);
		return -1;
	}
	/* the handshake's outcome, as the tunnel hands it over; the sessions own them */
	kcpx_session_set_native(w->c.s, nc);
	kcpx_session_set_native(w->srv.s, ns);
	return 0;
}

static void world_free(struct world *w)
{
	kcpx_session_free(w->c.s);
	kcpx_session_free(w->srv.s);
	linksim_free(&w->ab);
	linksim_free(&w->ba);
}

/* One millisecond: deliver what is due, let the server answer, run due ticks. */
static void world_step(struct world *w)
{
	struct {
		struct linksim *in;
		struct end *to;
	} dir[2] = { { &w->ab, &w->srv }, { &w->ba, &w->c } };
	uint8_t buf[1600], *body;
	size_t blen;
	long n;

	g_now = w->now;
	for (int k = 0; k < 2; k++) {
		bool any = false;

		while ((n = linksim_recv(dir[k].in, w->now, buf, sizeof(buf))) >= 0) {
			if (!kcpx_session_open_native(dir[k].to->s, buf, (size_t)n, &body, &blen))
				kcpx_session_input(dir[k].to->s, body, blen, w->now);
			any = true;
		}
		if (any)
			kcpx_session_pump(dir[k].to->s, w->now);
	}
	/* the server echoes each 64-byte request with a 64-byte reply */
	if (w->srv.have_sid && kcpx_smux_readable(kcpx_session_smux(w->srv.s), w->srv.sid) >= 64) {
		uint8_t req[64];

		kcpx_smux_read(kcpx_session_smux(w->srv.s), w->srv.sid, req, 64);
		w->drop_ba = w->drop_reply;
		w->drop_reply = false;
		kcpx_smux_write(kcpx_session_smux(w->srv.s), w->srv.sid, req, 64);
		kcpx_session_pump(w->srv.s, w->now);
	}
	for (int k = 0; k < 2; k++) {
		struct kcpx_session *s = k ? w->srv.s : w->c.s;

		if ((int32_t)(kcpx_session_deadline(s, w->now) - w->now) <= 0)
			kcpx_session_tick(s, w->now);
	}
	w->now++;
}

/*
 * `count` sequential exchanges; lat[i] gets exchange i's latency in ms (the client's
 * write to its read of the whole reply). drop[i] & 1: lose the request's first datagram,
 * & 2: the reply's. Returns 0, or -1 if an exchange took more than 10 s.
 */
static int exchanges(struct world *w, int count, const uint8_t *drop, uint32_t *lat)
{
	struct kcpx_smux *m = kcpx_session_smux(w->c.s);
	uint8_t msg[64];

	if (kcpx_smux_open(m, &w->c.sid))
		return -1;
	for (int i = 0; i < count; i++) {
		uint32_t t0 = w->now;
		size_t got = 0;

		memset(msg, i, sizeof(msg));
		w->drop_ab = drop && (drop[i] & 1);
		if (kcpx_smux_write(m, w->c.sid, msg, 64) != 64)
			return -1;
		g_now = w->now;
		kcpx_session_pump(w->c.s, w->now);
		w->drop_ab = 0;
		w->drop_reply = drop && (drop[i] & 2);
		while (got < 64) {
			world_step(w);
			while (got < 64 && kcpx_smux_readable(m, w->c.sid)) {
				ssize_t n = kcpx_smux_read(m, w->c.sid, msg, 64 - got);

				if (n <= 0)
					return -1;
				got += (size_t)n;
			}
			if (w->now - t0 > 10000)
				return -1;
		}
		lat[i] = w->now - t0;
		/* think time: the next request goes out a few ms later, as rr's would */
		for (int k = 0; k < 3; k++)
			world_step(w);
	}
	return 0;
}

static void count_send(void *user, const uint8_t *body, size_t len)
{
	(*(int *)user)++;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* One lost request, then one lost reply, after a warm-up: how long did each take? */
static void single_loss(const struct opts *o, uint32_t *req_ms, uint32_t *rep_ms)
{
	static struct world w;
	uint8_t drop[12] = { 0 };
	uint32_t lat[12];

	*req_ms = *rep_ms = 0;
	drop[8] = 1;
	drop[10] = 2;
	CHECK_EQ(world_init(&w, o, 0, 5), 0);
	CHECK_EQ(exchanges(&w, 12, drop, lat), 0);
	CHECK(lat[7] <= 52); /* a clean exchange: one RTT (+ the 1 ms steps) */
	*req_ms = lat[8];
	*rep_ms = lat[10];
	world_free(&w);
}

static void test_session_single_loss(void)
{
	struct opts none = { 0 }, timing = { .timing = true },
		    all = { .timing = true, .flush = 10 };
	uint32_t req, rep;

	/* without parity on a timer, a lone lost request waits for a retransmission */
	single_loss(&none, &req, &rep);
	printf("     single loss, no options: request %u ms, reply %u ms\n", req, rep);
	CHECK(req > 100 && rep > 100);
	single_loss(&timing, &req, &rep);
	printf("     single loss, tlp+quickack+rtohygiene: request %u ms, reply %u ms\n", req, rep);
	CHECK(req > 75 && rep > 75);
	/* with it, the parity 10 ms behind rebuilds it: one RTT + 10 ms (+ steps) */
	single_loss(&all, &req, &rep);
	printf("     single loss, all + fecflush 10: request %u ms, reply %u ms\n", req, rep);
	CHECK(req >= 55 && req <= 64);
	CHECK(rep >= 55 && rep <= 64);
}

#define NX 1000

static void lossy_run(const struct opts *o, uint32_t *p50, uint32_t *p99, uint32_t *p999)
{
	static struct world w;
	static uint32_t lat[NX];

	*p50 = *p99 = *p999 = 0;
	CHECK_EQ(world_init(&w, o, 0.05, 42), 0);
	CHECK_EQ(exchanges(&w, NX, NULL, lat), 0);
	qsort(lat, NX, sizeof(lat[0]), cmp_u32);
	*p50 = lat[NX / 2];
	*p99 = lat[NX * 99 / 100];
	*p999 = lat[NX * 999 / 1000];
	world_free(&w);
}

static void test_session_5pct_tail(void)
{
	struct opts none = { 0 }, all = { .timing = true, .flush = 10 };
	uint32_t p50, p99, p999;

	lossy_run(&none, &p50, &p99, &p999);
	printf("     5%% loss, no options:        p50 %u p99 %u p99.9 %u ms\n", p50, p99, p999);
	CHECK(p99 > 75); /* the goal is not met by default KCP: this test can tell */
	lossy_run(&all, &p50, &p99, &p999);
	printf("     5%% loss, all + fecflush 10: p50 %u p99 %u p99.9 %u ms\n", p50, p99, p999);
	CHECK(p50 <= 52);
	CHECK(p99 <= 75);
	CHECK(p999 <= 150);
}

static void test_redund_wants(void)
{
	struct kcpx_redund *r = kcpx_redund_new(200, 5);
	uint8_t b[400];
	uint32_t at;
	int sent = 0;

	CHECK(r);
	CHECK(!kcpx_redund_new(0, 5));
	kcp_seg(b, 88, 1, 81);
	CHECK(kcpx_redund_wants(r, b, 88)); /* one small PUSH */
	kcp_seg(b, 24, 1, 82);
	CHECK(!kcpx_redund_wants(r, b, 24)); /* ACK only */
	kcp_seg(b + 24, 64, 2, 81);
	CHECK(kcpx_redund_wants(r, b, 88));  /* ACK + PUSH */
	CHECK(!kcpx_redund_wants(r, b, 87)); /* cut short: does not parse */
	kcp_seg(b, 300, 1, 81);
	CHECK(!kcpx_redund_wants(r, b, 300)); /* too long */
	kcpx_put_le32(b + 20, 0xffffffffu);
	CHECK(!kcpx_redund_wants(r, b, 100)); /* absurd segment length */
	/* copies come out once, in order, when due; a full queue refuses more */
	CHECK(!kcpx_redund_next(r, &at));
	for (int i = 0; i < KCPX_REDUND_SLOTS; i++)
		CHECK_EQ(kcpx_redund_add(r, b, 10, 100 + (uint32_t)i), 0);
	CHECK_EQ(kcpx_redund_add(r, b, 10, 200), -ENOBUFS);
	CHECK_EQ(kcpx_redund_add(r, b, 1501, 200), -EMSGSIZE);
	CHECK(kcpx_redund_next(r, &at));
	CHECK_EQ(at, 105);
	CHECK_EQ(kcpx_redund_flush(r, 104, count_send, &sent), 0);
	CHECK_EQ(kcpx_redund_flush(r, 107, count_send, &sent), 3);
	CHECK_EQ(kcpx_redund_flush(r, 1000, count_send, &sent), KCPX_REDUND_SLOTS - 3);
	CHECK_EQ(sent, KCPX_REDUND_SLOTS);
	CHECK(!kcpx_redund_next(r, &at));
	kcpx_redund_free(r);
}

static void test_session_dupsmall(void)
{
	struct opts timing = { .timing = true, .nofec = true },
		    dup = { .timing = true, .dup = 200, .nofec = true };
	uint32_t req, rep, p50, p99, p999;

	/* no FEC: a lost request waits for the probe; with its copy 5 ms behind, 5 ms */
	single_loss(&timing, &req, &rep);
	printf("     single loss, no FEC, timing only: request %u ms, reply %u ms\n", req, rep);
	CHECK(req > 75 && rep > 75);
	single_loss(&dup, &req, &rep);
	printf("     single loss, no FEC, dupsmall 200: request %u ms, reply %u ms\n", req, rep);
	CHECK(req >= 55 && req <= 58);
	CHECK(rep >= 55 && rep <= 58);
	lossy_run(&dup, &p50, &p99, &p999);
	printf("     5%% loss, no FEC, timing + dupsmall 200: p50 %u p99 %u p99.9 %u ms\n", p50,
	       p99, p999);
	CHECK(p99 <= 75);
	CHECK(p999 <= 150);
}

int main(void)
{
	RUN(test_flush_wire);
	RUN(test_kcpgo_decoder_and_flushed_group);
	RUN(test_partial_rebuild);
	RUN(test_partial_never_guesses_wrong);
	RUN(test_session_single_loss);
	RUN(test_session_5pct_tail);
	RUN(test_redund_wants);
	RUN(test_session_dupsmall);
	UNIT_MAIN_END();
}
