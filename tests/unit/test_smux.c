// SPDX-License-Identifier: MIT
/*
 * smux v1/v2 unit tests: two sessions wired back to back with a virtual clock.
 *
 *   client (odd sids) --output--> [pipe c2s] --input, random chunks--> server (even sids)
 *          <--input, random chunks-- [pipe s2c] <--output--
 *
 * A pipe holds bytes the receiver refused (back-pressure) until it reads.
 */
#include <errno.h>
#include <stdint.h>
#include <stdbool.h>

#include "unit.h"
#include "core/pool.h"
#include "core/smux.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 11);
}

/* The byte at offset off of the pattern sent on stream sid in one direction. */
static uint8_t pat(uint32_t sid, int dir, uint64_t off)
{
	uint64_t x = off * 0x9e3779b1u + sid * 7919u + (uint64_t)dir * 104729u;
	return (uint8_t)(x ^ (x >> 13) ^ (off >> 8));
}

#define MAXACC		    1024
#define BQ_TEST_BLK	    4064 /* a full smux buffer block's payload */
#define KCPX_TEST_MIN(a, b) ((a) < (b) ? (a) : (b))

struct side {
	struct kcpx_smux *s;
	uint32_t accepted[MAXACC];
	int naccepted;
	int nreadable, nwritable;
	uint32_t last_readable, last_writable;
	/* optional behaviour inside callbacks */
	bool close_on_accept;
	bool read_in_cb;
	uint64_t cb_read_bytes;
	unsigned refused_calls, refused_n;
	uint32_t refused_sid;
};

static void on_accept(void *user, uint32_t sid)
{
	struct side *d = user;

	if (!d)
		return;
	if (d->naccepted < MAXACC)
		d->accepted[d->naccepted++] = sid;
	if (d->close_on_accept)
		kcpx_smux_close(d->s, sid);
}

static void on_readable(void *user, uint32_t sid)
{
	struct side *d = user;
	uint8_t tmp[512];
	ssize_t n;

	if (!d)
		return;
	d->nreadable++;
	d->last_readable = sid;
	if (d->read_in_cb) {
		while ((n = kcpx_smux_read(d->s, sid, tmp, sizeof(tmp))) > 0)
			d->cb_read_bytes += (uint64_t)n;
		if (n == 0)
			kcpx_smux_close(d->s, sid);
	}
}

static void on_writable(void *user, uint32_t sid)
{
	struct side *d = user;

	if (!d)
		return;
	d->nwritable++;
	d->last_writable = sid;
}

static void on_refused(void *user, uint32_t sid, unsigned n)
{
	struct side *d = user;

	if (!d)
		return;
	d->refused_calls++;
	d->refused_n += n;
	d->refused_sid = sid;
}

static const struct kcpx_smux_ops ops = {
	.accept = on_accept,
	.readable = on_readable,
	.writable = on_writable,
	.refused = on_refused,
};

static struct kcpx_smux_config cfg_default(int version, bool client)
{
	struct kcpx_smux_config c = {
		.version = version,
		.client = client,
		.max_frame = 32768,
		.max_recv_buffer = 4194304,
		.max_stream_buffer = 65536,
		.keepalive_ms = 10000,
		.keepalive_timeout_ms = 30000,
	};
	return c;
}

#define PIPE_MAX (256 * 1024)

struct pipe {
	uint8_t buf[PIPE_MAX + 65536];
	size_t len;
	uint64_t short_inputs; /* input() took less than offered */
};

struct pair {
	struct side c, sv;
	struct pipe c2s, s2c;
	uint32_t now;
};

static struct pair *pair_new(int version, uint32_t recvbuf, uint32_t streambuf, uint32_t frame)
{
	struct pair *p = calloc(1, sizeof(*p));
	struct kcpx_smux_config cc = cfg_default(version, true);
	struct kcpx_smux_config sc = cfg_default(version, false);

	cc.max_recv_buffer = sc.max_recv_buffer = recvbuf;
	cc.max_stream_buffer = sc.max_stream_buffer = streambuf;
	cc.max_frame = sc.max_frame = frame;
	p->c.s = kcpx_smux_new(&cc, &ops, &p->c, 0);
	p->sv.s = kcpx_smux_new(&sc, &ops, &p->sv, 0);
	return p;
}

static void pair_free(struct pair *p)
{
	kcpx_smux_free(p->c.s);
	kcpx_smux_free(p->sv.s);
	free(p);
}

/* Moves a's output into the pipe and the pipe into b. Returns bytes moved, -1 on error. */
static long pump_dir(struct kcpx_smux *a, struct pipe *pp, struct kcpx_smux *b, uint32_t now)
{
	long moved = 0;
	size_t off = 0;

	while (pp->len < PIPE_MAX && kcpx_smux_output_pending(a)) {
		size_t cap = 16 + rnd() % 40000;
		size_t n;

		if (cap > sizeof(pp->buf) - pp->len)
			cap = sizeof(pp->buf) - pp->len;
		n = kcpx_smux_output(a, pp->buf + pp->len, cap);
		if (!n)
			break;
		pp->len += n;
		moved += (long)n;
	}
	while (off < pp->len) {
		size_t c = 1 + rnd() % 3000;
		ssize_t r;

		if (c > pp->len - off)
			c = pp->len - off;
		r = kcpx_smux_input(b, pp->buf + off, c, now);
		if (r < 0)
			return -1;
		off += (size_t)r;
		moved += r;
		if ((size_t)r < c) {
			pp->short_inputs++;
			break;
		}
	}
	memmove(pp->buf, pp->buf + off, pp->len - off);
	pp->len -= off;
	return moved;
}

static long pump(struct pair *p)
{
	long a = pump_dir(p->c.s, &p->c2s, p->sv.s, p->now);
	long b = pump_dir(p->sv.s, &p->s2c, p->c.s, p->now);

	if (a < 0 || b < 0)
		return -1;
	return a + b;
}

/* Pumps until nothing moves. */
static int pump_all(struct pair *p)
{
	for (int i = 0; i < 100000; i++) {
		long m = pump(p);
		if (m < 0)
			return -1;
		if (m == 0)
			return 0;
	}
	return -1;
}

struct frame {
	uint8_t ver, cmd;
	uint16_t len;
	uint32_t sid;
	const uint8_t *data;
};

/* Splits buf into frames; returns the count, or -1 if buf does not end on a frame. */
static int parse_frames(const uint8_t *buf, size_t n, struct frame *f, int max)
{
	size_t off = 0;
	int k = 0;

	while (off < n && k < max) {
		if (n - off < 8)
			return -1;
		f[k].ver = buf[off];
		f[k].cmd = buf[off + 1];
		f[k].len = (uint16_t)(buf[off + 2] | buf[off + 3] << 8);
		f[k].sid = (uint32_t)buf[off + 4] | (uint32_t)buf[off + 5] << 8 |
			   (uint32_t)buf[off + 6] << 16 | (uint32_t)buf[off + 7] << 24;
		f[k].data = buf + off + 8;
		if (n - off - 8 < f[k].len)
			return -1;
		off += 8 + f[k].len;
		k++;
	}
	return off == n ? k : -1;
}

/* ---- byte-exact encodings ---- */

/* vectors.txt synthetic plaintext: nonce, crc, FEC header, KCP PUSH, smux v1 SYN sid 3. */
static const char synthetic_plaintext[] =
	"000102030405060708090a0b0c0d0e0fa80ab1a500000000f10022000403020151000002e8030000"
	"0000000000000000080000000100000003000000";

static void test_encoding_v1(void)
{
	struct kcpx_smux_config cc = cfg_default(1, true);
	struct kcpx_smux *s = kcpx_smux_new(&cc, &ops, NULL, 0);
	uint8_t out[256], vec[128];
	size_t vn = unit_unhex(synthetic_plaintext, vec, sizeof(vec));
	uint32_t sid = 0;
	static const uint8_t syn3[] = { 1, 0, 0, 0, 3, 0, 0, 0 };
	static const uint8_t psh3[] = { 1, 2, 5, 0, 3, 0, 0, 0, 'h', 'e', 'l', 'l', 'o' };
	static const uint8_t fin3[] = { 1, 1, 0, 0, 3, 0, 0, 0 };
	static const uint8_t nop[] = { 1, 3, 0, 0, 0, 0, 0, 0 };

	CHECK(s);
	CHECK(!kcpx_smux_output_pending(s));
	CHECK_EQ(kcpx_smux_output(s, out, sizeof(out)), 0);
	CHECK_EQ(kcpx_smux_open(s, &sid), 0);
	CHECK_EQ(sid, 3);
	CHECK(kcpx_smux_output_pending(s));
	CHECK_EQ(kcpx_smux_output(s, out, 7), 0); /* whole frames only */
	CHECK_EQ(kcpx_smux_output(s, out, sizeof(out)), 8);
	CHECK_MEM(out, syn3, 8);
	CHECK_EQ(vn, 60);
	CHECK_MEM(vec + vn - 8, out, 8); /* the smux bytes inside the captured vector */

	CHECK_EQ(kcpx_smux_write(s, 3, (const uint8_t *)"hello", 5), 5);
	CHECK_EQ(kcpx_smux_output(s, out, sizeof(out)), sizeof(psh3));
	CHECK_MEM(out, psh3, sizeof(psh3));
	CHECK_EQ(kcpx_smux_close(s, 3), 0);
	CHECK_EQ(kcpx_smux_num_streams(s), 0);
	CHECK_EQ(kcpx_smux_output(s, out, sizeof(out)), 8);
	CHECK_MEM(out, fin3, 8);
	CHECK_EQ(kcpx_smux_write(s, 3, out, 1), -EPIPE);
	CHECK_EQ(kcpx_smux_close(s, 3), -ENOENT);

	/* second stream gets 5, then the keepalive NOP */
	CHECK_EQ(kcpx_smux_open(s, &sid), 0);
	CHECK_EQ(sid, 5);
	kcpx_smux_tick(s, 10000);
	CHECK_EQ(kcpx_smux_output(s, out, sizeof(out)), 16);
	CHECK_MEM(out, nop, 8);
	CHECK_EQ(out[8], 1);
	CHECK_EQ(out[9], 0);
	CHECK_EQ(out[12], 5);

	struct kcpx_smux_counters c;
	kcpx_smux_counters(s, &c);
	CHECK_EQ(c.frames_out, 5);
	CHECK_EQ(c.streams_opened, 2);
	kcpx_smux_free(s);
}

static void test_encoding_v2_server(void)
{
	struct kcpx_smux_config sc = cfg_default(2, false);
	struct side d = { 0 };
	struct kcpx_smux *s = kcpx_smux_new(&sc, &ops, &d, 0);
	uint8_t out[256], tmp[16];
	uint32_t sid = 0;
	/* peer (client) opens 3 and pushes "abc" */
	static const uint8_t in[] = {
		2, 0, 0, 0, 3, 0, 0, 0, 2, 2, 3, 0, 3, 0, 0, 0, 'a', 'b', 'c'
	};
	static const uint8_t upd[] = { 2, 4, 8, 0, 3, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0 };

	d.s = s;
	CHECK_EQ(kcpx_smux_open(s, &sid), 0);
	CHECK_EQ(sid, 2); /* server ids are even */
	CHECK_EQ(kcpx_smux_output(s, out, sizeof(out)), 8);
	CHECK_EQ(out[0], 2);
	CHECK_EQ(out[4], 2);

	CHECK_EQ(kcpx_smux_input(s, in, sizeof(in), 0), sizeof(in));
	CHECK_EQ(d.naccepted, 1);
	CHECK_EQ(d.accepted[0], 3);
	CHECK_EQ(d.nreadable, 1);
	CHECK_EQ(kcpx_smux_readable(s, 3), 3);
	/* first read announces consumed=2, window=streambuf */
	CHECK_EQ(kcpx_smux_read(s, 3, tmp, 2), 2);
	CHECK_EQ(kcpx_smux_output(s, out, 15), 0);
	CHECK_EQ(kcpx_smux_output(s, out, sizeof(out)), 16);
	CHECK_MEM(out, upd, 16);
	/* later small reads do not send UPD until half the window is read */
	CHECK_EQ(kcpx_smux_read(s, 3, tmp, 16), 1);
	CHECK(!kcpx_smux_output_pending(s));
	CHECK_EQ(kcpx_smux_read(s, 3, tmp, 16), -EAGAIN);
	kcpx_smux_free(s);
}

/* ---- data both ways, many streams, FIN/EOF ---- */

struct sstate {
	uint32_t sid;
	uint64_t tx_total, rx_total; /* this side's plan */
	uint64_t tx, rx;
	bool known, eof, closed;
};

struct sidemap {
	struct sstate st[64];
	int n;
};

/* Writes and reads as much as possible on one side. Returns -1 on data mismatch. */
static int drive(struct kcpx_smux *s, struct sidemap *m, int dir)
{
	uint8_t buf[9000];

	for (int i = 0; i < m->n; i++) {
		struct sstate *x = &m->st[i];
		ssize_t r;

		if (x->closed || !x->known)
			continue;
		while (x->tx < x->tx_total) {
			size_t want = 1 + rnd() % sizeof(buf);
			if (want > x->tx_total - x->tx)
				want = x->tx_total - x->tx;
			for (size_t k = 0; k < want; k++)
				buf[k] = pat(x->sid, dir, x->tx + k);
			r = kcpx_smux_write(s, x->sid, buf, want);
			if (r == -EAGAIN)
				break;
			if (r <= 0)
				return -1;
			x->tx += (uint64_t)r;
		}
		for (;;) {
			size_t want = 1 + rnd() % sizeof(buf);
			r = kcpx_smux_read(s, x->sid, buf, want);
			if (r == -EAGAIN)
				break;
			if (r == 0) {
				x->eof = true;
				break;
			}
			if (r < 0)
				return -1;
			for (ssize_t k = 0; k < r; k++)
				if (buf[k] != pat(x->sid, !dir, x->rx + (uint64_t)k))
					return -1;
			x->rx += (uint64_t)r;
		}
		if (x->rx > x->rx_total)
			return -1;
	}
	return 0;
}

static void run_bidir(int version, int nstreams, uint64_t maxbytes, uint32_t frame)
{
	struct pair *p = pair_new(version, 1 << 20, 65536, frame);
	struct sidemap *cm = calloc(1, sizeof(*cm)), *sm = calloc(1, sizeof(*sm));
	int rounds = 0;

	CHECK(p && p->c.s && p->sv.s);
	for (int i = 0; i < nstreams; i++) {
		uint32_t sid;
		CHECK_EQ(kcpx_smux_open(p->c.s, &sid), 0);
		CHECK_EQ(sid, 3 + 2 * (uint32_t)i);
		cm->st[i].sid = sid;
		cm->st[i].tx_total = rnd() % (maxbytes + 1);
		cm->st[i].rx_total = rnd() % (maxbytes + 1);
		cm->st[i].known = true;
		sm->st[i].sid = sid;
		sm->st[i].tx_total = cm->st[i].rx_total;
		sm->st[i].rx_total = cm->st[i].tx_total;
	}
	cm->n = sm->n = nstreams;
	CHECK_EQ(kcpx_smux_num_streams(p->c.s), nstreams);

	for (;;) {
		bool done = true;

		CHECK(rounds++ < 200000);
		CHECK_EQ(drive(p->c.s, cm, 0), 0);
		for (int i = 0; i < p->sv.naccepted; i++)
			sm->st[(p->sv.accepted[i] - 3) / 2].known = true;
		CHECK_EQ(drive(p->sv.s, sm, 1), 0);
		/* the client closes once it sent and got everything; the server on EOF */
		for (int i = 0; i < nstreams; i++) {
			struct sstate *x = &cm->st[i], *y = &sm->st[i];

			if (!x->closed && x->tx == x->tx_total && x->rx == x->rx_total) {
				CHECK(!x->eof);
				CHECK_EQ(kcpx_smux_close(p->c.s, x->sid), 0);
				x->closed = true;
			}
			if (!y->closed && y->eof) {
				CHECK_EQ(y->rx, y->rx_total);
				CHECK_EQ(y->tx, y->tx_total);
				CHECK_EQ(kcpx_smux_close(p->sv.s, y->sid), 0);
				y->closed = true;
			}
			done = done && x->closed && y->closed;
		}
		CHECK(pump(p) >= 0);
		if (done)
			break;
	}
	CHECK_EQ(pump_all(p), 0);
	CHECK_EQ(p->sv.naccepted, nstreams);
	for (int i = 0; i < nstreams; i++)
		CHECK_EQ(p->sv.accepted[i], 3 + 2 * (uint32_t)i);
	CHECK_EQ(kcpx_smux_num_streams(p->c.s), 0);
	CHECK_EQ(kcpx_smux_num_streams(p->sv.s), 0);
	CHECK(!kcpx_smux_output_pending(p->c.s));
	CHECK(!kcpx_smux_output_pending(p->sv.s));

	struct kcpx_smux_counters cc, sc;
	kcpx_smux_counters(p->c.s, &cc);
	kcpx_smux_counters(p->sv.s, &sc);
	CHECK_EQ(cc.streams_opened, nstreams);
	CHECK_EQ(sc.streams_accepted, nstreams);
	CHECK_EQ(cc.frames_out, sc.frames_in);
	CHECK_EQ(sc.frames_out, cc.frames_in);
	CHECK_EQ(sc.bad_frames, 0);
	free(cm);
	free(sm);
	pair_free(p);
}

static void test_data_v1(void)
{
	run_bidir(1, 1, 3000000, 32768);
	run_bidir(1, 24, 200000, 32768);
}

static void test_data_v2(void)
{
	run_bidir(2, 1, 3000000, 32768);
	run_bidir(2, 24, 200000, 4096);
}

static void test_data_small_frames(void)
{
	run_bidir(1, 5, 50000, 100);
	run_bidir(2, 5, 50000, 1);
}

/* EOF, write after close, PSH to a closed stream counted, callbacks that read and close. */
static void test_fin_eof(void)
{
	struct pair *p = pair_new(1, 1 << 20, 65536, 32768);
	uint8_t buf[64];
	uint32_t sid;
	struct kcpx_smux_counters c;

	CHECK_EQ(kcpx_smux_open(p->c.s, &sid), 0);
	CHECK_EQ(kcpx_smux_write(p->c.s, sid, (const uint8_t *)"abc", 3), 3);
	CHECK_EQ(kcpx_smux_close(p->c.s, sid), 0);
	CHECK_EQ(kcpx_smux_read(p->c.s, sid, buf, 1), -EPIPE);
	CHECK_EQ(pump_all(p), 0);
	CHECK_EQ(p->sv.naccepted, 1);
	CHECK(p->sv.nreadable >= 1);
	CHECK_EQ(kcpx_smux_readable(p->sv.s, sid), 3);
	CHECK_EQ(kcpx_smux_read(p->sv.s, sid, buf, sizeof(buf)), 3);
	CHECK_MEM(buf, "abc", 3);
	CHECK_EQ(kcpx_smux_read(p->sv.s, sid, buf, sizeof(buf)), 0); /* EOF */
	CHECK_EQ(kcpx_smux_read(p->sv.s, sid, buf, sizeof(buf)), 0);
	/* v1 lets the server still write after the peer's FIN; the client dropped the stream */
	CHECK_EQ(kcpx_smux_write(p->sv.s, sid, (const uint8_t *)"late", 4), 4);
	CHECK_EQ(kcpx_smux_close(p->sv.s, sid), 0);
	CHECK_EQ(pump_all(p), 0);
	kcpx_smux_counters(p->c.s, &c);
	CHECK_EQ(c.bad_frames, 1); /* the PSH; its FIN for an unknown sid is not bad */
	CHECK_EQ(c.frames_in, 2);
	CHECK_EQ(kcpx_smux_num_streams(p->sv.s), 0);

	/* callbacks that read and close from inside input() */
	p->sv.read_in_cb = true;
	CHECK_EQ(kcpx_smux_open(p->c.s, &sid), 0);
	for (int i = 0; i < 100; i++)
		CHECK_EQ(kcpx_smux_write(p->c.s, sid, buf, sizeof(buf)), sizeof(buf));
	CHECK_EQ(kcpx_smux_close(p->c.s, sid), 0);
	CHECK_EQ(pump_all(p), 0);
	CHECK_EQ(p->sv.cb_read_bytes, 100 * sizeof(buf));
	CHECK_EQ(kcpx_smux_num_streams(p->sv.s), 0);
	CHECK_EQ(kcpx_smux_read(p->sv.s, sid, buf, 1), -EPIPE);

	/* a server that closes right in accept(): the client's writes then meet FIN */
	p->sv.close_on_accept = true;
	p->sv.read_in_cb = false;
	CHECK_EQ(kcpx_smux_open(p->c.s, &sid), 0);
	CHECK_EQ(kcpx_smux_write(p->c.s, sid, buf, 10), 10);
	CHECK_EQ(pump_all(p), 0);
	CHECK_EQ(kcpx_smux_read(p->c.s, sid, buf, 1), 0);
	CHECK_EQ(kcpx_smux_close(p->c.s, sid), 0);
	CHECK_EQ(pump_all(p), 0);
	CHECK_EQ(kcpx_smux_num_streams(p->c.s), 0);
	pair_free(p);
}

/* ---- round robin ---- */

static void test_round_robin(void)
{
	struct kcpx_smux_config cc = cfg_default(1, true);
	struct kcpx_smux *s;
	uint8_t data[KCPX_SMUX_SNDBUF], out[5000];
	struct frame f[64];
	uint32_t sids[3], expect = 0;
	int seen = 0;

	cc.max_frame = 1024;
	s = kcpx_smux_new(&cc, &ops, NULL, 0);
	CHECK(s);
	memset(data, 0x5a, sizeof(data));
	for (int i = 0; i < 3; i++)
		CHECK_EQ(kcpx_smux_open(s, &sids[i]), 0);
	/* stream 0 fills its whole buffer before the others write anything */
	CHECK_EQ(kcpx_smux_write(s, sids[0], data, sizeof(data)), sizeof(data));
	CHECK_EQ(kcpx_smux_write(s, sids[0], data, 1), -EAGAIN);
	CHECK_EQ(kcpx_smux_write(s, sids[1], data, 20000), 20000);
	CHECK_EQ(kcpx_smux_write(s, sids[2], data, 20000), 20000);
	size_t n = kcpx_smux_output(s, out, sizeof(out));
	int k = parse_frames(out, n, f, 64);
	CHECK(k >= 3);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(f[i].cmd, KCPX_SMUX_CMD_SYN);
		CHECK_EQ(f[i].sid, sids[i]);
	}
	/* then PSH frames strictly rotate while all three have data */
	for (;;) {
		for (int i = (seen == 0 ? 3 : 0); i < k; i++) {
			CHECK_EQ(f[i].cmd, KCPX_SMUX_CMD_PSH);
			CHECK(f[i].len <= 1024);
			CHECK_EQ(f[i].sid, sids[expect % 3]);
			expect++;
		}
		seen++;
		if (expect >= 3 * 19)
			break; /* streams 1 and 2 have 20000 = 19.5 frames */
		n = kcpx_smux_output(s, out, 1000 + rnd() % 4000);
		k = parse_frames(out, n, f, 64);
		CHECK(k >= 0);
	}
	kcpx_smux_free(s);
}

/* ---- v2 per-stream window ---- */

static void test_v2_window(void)
{
	struct pair *p = pair_new(2, 4 << 20, 65536, 32768);
	uint8_t buf[16384];
	uint32_t a, b;
	uint64_t a_tx = 0, b_tx = 0, b_rx = 0, a_rx = 0;
	int writable_before;

	CHECK_EQ(kcpx_smux_open(p->c.s, &a), 0);
	CHECK_EQ(kcpx_smux_open(p->c.s, &b), 0);
	/* a's reader never reads; b keeps flowing */
	for (int i = 0; i < 2000 && b_rx < 2000000; i++) {
		ssize_t r;
		for (;;) {
			for (size_t k = 0; k < sizeof(buf); k++)
				buf[k] = pat(a, 0, a_tx + k);
			r = kcpx_smux_write(p->c.s, a, buf, sizeof(buf));
			if (r < 0)
				break;
			a_tx += (uint64_t)r;
		}
		CHECK_EQ(r, -EAGAIN);
		while ((r = kcpx_smux_write(p->c.s, b, buf, sizeof(buf))) > 0)
			b_tx += (uint64_t)r;
		CHECK(pump(p) >= 0);
		while ((r = kcpx_smux_read(p->sv.s, b, buf, sizeof(buf))) > 0)
			b_rx += (uint64_t)r;
	}
	CHECK(b_rx >= 2000000);
	CHECK_EQ(a_tx, KCPX_SMUX_INITIAL_WINDOW); /* stalled at the assumed window */
	CHECK_EQ(kcpx_smux_readable(p->sv.s, a), KCPX_SMUX_INITIAL_WINDOW);
	CHECK_EQ(p->c2s.short_inputs, 0); /* the session never stalled */

	/* the reader starts: UPD(consumed, 65536) reopens a once enough is read */
	writable_before = p->c.nwritable;
	for (int i = 0; i < 5000 && a_rx < 1000000; i++) {
		ssize_t r;
		while ((r = kcpx_smux_read(p->sv.s, a, buf, 1 + rnd() % sizeof(buf))) > 0) {
			for (ssize_t k = 0; k < r; k++)
				CHECK_EQ(buf[k], pat(a, 0, a_rx + (uint64_t)k));
			a_rx += (uint64_t)r;
		}
		/* in flight never exceeds the larger of the initial and advertised window */
		CHECK(a_tx - a_rx <= KCPX_SMUX_INITIAL_WINDOW);
		for (;;) {
			for (size_t k = 0; k < sizeof(buf); k++)
				buf[k] = pat(a, 0, a_tx + k);
			r = kcpx_smux_write(p->c.s, a, buf, sizeof(buf));
			if (r < 0)
				break;
			a_tx += (uint64_t)r;
		}
		CHECK(pump(p) >= 0);
	}
	CHECK(a_rx >= 1000000);
	CHECK(p->c.nwritable > writable_before);
	/* after the first UPD the advertised 64 KiB window bounds what is in flight */
	CHECK(a_tx - a_rx <= 65536);
	pair_free(p);
}

/* v2: a peer that claims to have consumed more than was sent resets the stream. */
static void test_v2_bad_upd(void)
{
	struct kcpx_smux_config cc = cfg_default(2, true);
	struct kcpx_smux *s = kcpx_smux_new(&cc, &ops, NULL, 0);
	uint8_t out[64];
	uint32_t sid;
	uint8_t upd[] = { 2, 4, 8, 0, 3, 0, 0, 0, 100, 0, 0, 0, 0, 0, 1, 0 };
	struct kcpx_smux_counters c;

	CHECK_EQ(kcpx_smux_open(s, &sid), 0);
	CHECK_EQ(kcpx_smux_write(s, sid, out, 10), 10);
	CHECK_EQ(kcpx_smux_input(s, upd, sizeof(upd), 0), sizeof(upd));
	CHECK_EQ(kcpx_smux_write(s, sid, out, 10), -EPIPE);
	kcpx_smux_counters(s, &c);
	CHECK_EQ(c.bad_frames, 1);
	CHECK(!kcpx_smux_dead(s));
	/* a window of 0 blocks; FIN from the peer then makes the write fail, not hang */
	CHECK_EQ(kcpx_smux_open(s, &sid), 0);
	CHECK_EQ(sid, 5);
	upd[4] = 5;
	upd[8] = 0;
	upd[14] = 0;
	CHECK_EQ(kcpx_smux_input(s, upd, sizeof(upd), 0), sizeof(upd));
	CHECK_EQ(kcpx_smux_write(s, sid, out, 10), -EAGAIN);
	uint8_t fin[] = { 2, 1, 0, 0, 5, 0, 0, 0 };
	CHECK_EQ(kcpx_smux_input(s, fin, sizeof(fin), 0), sizeof(fin));
	CHECK_EQ(kcpx_smux_write(s, sid, out, 10), -EPIPE);
	kcpx_smux_free(s);
}

/* ---- v1 session-wide back-pressure ---- */

/* Writes the direction-0 pattern of sid until *tx reaches total or the stream refuses. */
static ssize_t write_pat(struct kcpx_smux *s, uint32_t sid, uint64_t *tx, uint64_t total)
{
	uint8_t buf[16384];
	ssize_t r = 0;

	while (*tx < total) {
		size_t n = sizeof(buf);

		if (n > total - *tx)
			n = total - *tx;
		for (size_t k = 0; k < n; k++)
			buf[k] = pat(sid, 0, *tx + k);
		r = kcpx_smux_write(s, sid, buf, n);
		if (r < 0)
			return r;
		*tx += (uint64_t)r;
	}
	return r;
}

static void test_v1_backpressure(void)
{
	struct pair *p = pair_new(1, 65536, 65536, 32768);
	uint8_t buf[16384];
	uint32_t a, b;
	uint64_t a_tx = 0, a_rx = 0, b_rx = 0;
	ssize_t r;

	CHECK_EQ(kcpx_smux_open(p->c.s, &a), 0);
	CHECK_EQ(kcpx_smux_open(p->c.s, &b), 0);
	for (int i = 0; i < 200; i++) {
		CHECK(write_pat(p->c.s, a, &a_tx, 400000) != -EPIPE);
		CHECK(pump(p) >= 0);
	}
	CHECK(p->c2s.short_inputs > 0);
	/* stops at a frame boundary once the bucket is used up: at most one frame over */
	CHECK(kcpx_smux_readable(p->sv.s, a) >= 65536);
	CHECK(kcpx_smux_readable(p->sv.s, a) < 65536 + 32768);
	CHECK(p->c2s.len > 0);

	/* the whole session is stalled: b's data does not get through */
	for (size_t k = 0; k < 10000; k++)
		buf[k] = pat(b, 0, k);
	CHECK_EQ(kcpx_smux_write(p->c.s, b, buf, 10000), 10000);
	for (int i = 0; i < 50; i++)
		CHECK(pump(p) >= 0);
	CHECK_EQ(kcpx_smux_readable(p->sv.s, b), 0);
	/* and a stalled session is not a dead peer */
	p->now = 100000;
	kcpx_smux_tick(p->sv.s, p->now);
	CHECK(!kcpx_smux_dead(p->sv.s));

	/* reading a resumes everything */
	for (int i = 0; i < 1000 && (a_rx < 400000 || b_rx < 10000); i++) {
		while ((r = kcpx_smux_read(p->sv.s, a, buf, sizeof(buf))) > 0) {
			for (ssize_t k = 0; k < r; k++)
				CHECK_EQ(buf[k], pat(a, 0, a_rx + (uint64_t)k));
			a_rx += (uint64_t)r;
		}
		while ((r = kcpx_smux_read(p->sv.s, b, buf, sizeof(buf))) > 0) {
			for (ssize_t k = 0; k < r; k++)
				CHECK_EQ(buf[k], pat(b, 0, b_rx + (uint64_t)k));
			b_rx += (uint64_t)r;
		}
		CHECK(write_pat(p->c.s, a, &a_tx, 400000) != -EPIPE);
		CHECK(pump(p) >= 0);
	}
	CHECK_EQ(a_rx, 400000);
	CHECK_EQ(b_rx, 10000);
	pair_free(p);
}

/* ---- keepalive and dead peer ---- */

static void test_keepalive(void)
{
	struct kcpx_smux_config cc = cfg_default(1, true);
	struct kcpx_smux *s = kcpx_smux_new(&cc, &ops, NULL, 1000);
	uint8_t out[64];
	static const uint8_t nop[] = { 1, 3, 0, 0, 0, 0, 0, 0 };
	int nops = 0;

	CHECK(s);
	CHECK_EQ(kcpx_smux_deadline(s, 1000), 11000);
	for (uint32_t t = 1000; t < 31000; t += 100) {
		kcpx_smux_tick(s, t);
		size_t n = kcpx_smux_output(s, out, sizeof(out));
		if (n) {
			CHECK_EQ(n, 8);
			CHECK_MEM(out, nop, 8);
			CHECK(t == 11000 || t == 21000);
			nops++;
		}
		CHECK(!kcpx_smux_dead(s));
	}
	CHECK_EQ(nops, 2);
	CHECK_EQ(kcpx_smux_deadline(s, 30900), 31000);
	kcpx_smux_tick(s, 31000); /* 30 s without a frame */
	CHECK(kcpx_smux_dead(s));
	CHECK(!kcpx_smux_output_pending(s));
	CHECK_EQ(kcpx_smux_input(s, nop, 8, 31000), -ETIMEDOUT);
	uint32_t sid;
	CHECK_EQ(kcpx_smux_open(s, &sid), -EPIPE);
	kcpx_smux_free(s);

	/* a NOP from the peer keeps the session alive; a late tick catches up */
	s = kcpx_smux_new(&cc, &ops, NULL, 0);
	CHECK_EQ(kcpx_smux_input(s, nop, 8, 25000), 8);
	kcpx_smux_tick(s, 54999);
	CHECK(!kcpx_smux_dead(s));
	CHECK_EQ(kcpx_smux_output(s, out, sizeof(out)), 8); /* one NOP, not three */
	CHECK_EQ(kcpx_smux_deadline(s, 54999), 55000);
	kcpx_smux_tick(s, 55000);
	CHECK(kcpx_smux_dead(s));
	kcpx_smux_free(s);

	/* both off */
	cc.keepalive_ms = 0;
	cc.keepalive_timeout_ms = 0;
	s = kcpx_smux_new(&cc, &ops, NULL, 0);
	kcpx_smux_tick(s, 1000000);
	CHECK(!kcpx_smux_dead(s));
	CHECK(!kcpx_smux_output_pending(s));
	kcpx_smux_free(s);
}

/* A reload changes keepalive on a live session: the new period counts from the reload, and
 * a shorter timeout does not kill a session that was in time under the old one. */
static void test_keepalive_reload(void)
{
	struct kcpx_smux_config cc = cfg_default(1, true);
	struct kcpx_smux *s = kcpx_smux_new(&cc, &ops, NULL, 0);
	uint8_t out[64];

	CHECK(s);
	kcpx_smux_set_keepalive(s, 5000, 15000, 20000); /* silent 20 s: fine under 30 s */
	kcpx_smux_tick(s, 20000);
	CHECK(!kcpx_smux_dead(s));
	CHECK_EQ(kcpx_smux_output(s, out, sizeof(out)), 0); /* the next NOP counts from now */
	CHECK_EQ(kcpx_smux_deadline(s, 20000), 25000);
	kcpx_smux_tick(s, 25000);
	CHECK_EQ(kcpx_smux_output(s, out, sizeof(out)), 8); /* 5 s after the reload */
	kcpx_smux_tick(s, 34999);
	CHECK(!kcpx_smux_dead(s));
	kcpx_smux_tick(s, 35000); /* 15 s after the reload without a frame */
	CHECK(kcpx_smux_dead(s));
	kcpx_smux_free(s);

	/* off by reload */
	s = kcpx_smux_new(&cc, &ops, NULL, 0);
	kcpx_smux_set_keepalive(s, 0, 0, 1000);
	kcpx_smux_tick(s, 1000000);
	CHECK(!kcpx_smux_dead(s));
	CHECK(!kcpx_smux_output_pending(s));
	kcpx_smux_free(s);
}

/* ---- malformed input ---- */

static void expect_proto(int version, const uint8_t *in, size_t n)
{
	struct kcpx_smux_config cc = cfg_default(version, false);
	struct kcpx_smux *s = kcpx_smux_new(&cc, &ops, NULL, 0);
	struct kcpx_smux_counters c;
	uint32_t sid;

	CHECK_EQ(kcpx_smux_input(s, in, n, 0), -EPROTO);
	CHECK(kcpx_smux_dead(s));
	CHECK_EQ(kcpx_smux_input(s, in, n, 0), -EPROTO);
	CHECK_EQ(kcpx_smux_open(s, &sid), -EPIPE);
	kcpx_smux_counters(s, &c);
	CHECK_EQ(c.bad_frames, 1);
	kcpx_smux_free(s);
}

static void test_malformed(void)
{
	static const uint8_t badver[] = { 2, 0, 0, 0, 3, 0, 0, 0 };
	static const uint8_t badcmd[] = { 1, 5, 0, 0, 3, 0, 0, 0 };
	static const uint8_t upd_v1[] = { 1, 4, 8, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
	static const uint8_t syn_len[] = { 1, 0, 4, 0, 3, 0, 0, 0, 1, 2, 3, 4 };
	static const uint8_t fin_len[] = { 1, 1, 1, 0, 3, 0, 0, 0, 1 };
	static const uint8_t nop_len[] = { 2, 3, 1, 0, 0, 0, 0, 0, 1 };
	static const uint8_t upd_len[] = { 2, 4, 4, 0, 3, 0, 0, 0, 0, 0, 0, 0 };
	static const uint8_t ver0[] = { 0, 3, 0, 0, 0, 0, 0, 0 };

	expect_proto(1, badver, sizeof(badver));
	expect_proto(1, ver0, sizeof(ver0));
	expect_proto(2, syn_len, 8); /* a v1 header to a v2 session */
	expect_proto(1, badcmd, sizeof(badcmd));
	expect_proto(1, upd_v1, sizeof(upd_v1));
	expect_proto(1, syn_len, sizeof(syn_len));
	expect_proto(1, fin_len, sizeof(fin_len));
	expect_proto(2, nop_len, sizeof(nop_len));
	expect_proto(2, upd_len, sizeof(upd_len));
}

static void test_v2_syn_is_valid(void)
{
	static const uint8_t syn[] = { 2, 0, 0, 0, 3, 0, 0, 0 };
	struct kcpx_smux_config cc = cfg_default(2, false);
	struct side d = { 0 };
	struct kcpx_smux *s = kcpx_smux_new(&cc, &ops, &d, 0);

	CHECK_EQ(kcpx_smux_input(s, syn, sizeof(syn), 0), 8);
	CHECK_EQ(d.naccepted, 1);
	kcpx_smux_free(s);
}

static void test_truncated_and_tolerated(void)
{
	struct kcpx_smux_config cc = cfg_default(1, false);
	struct side d = { 0 };
	struct kcpx_smux *s = kcpx_smux_new(&cc, &ops, &d, 0);
	uint8_t in[200000], out[70000];
	size_t n = 0;
	struct kcpx_smux_counters c;

	d.s = s;
	/* SYN 3, PSH 3 "hello world", duplicate SYN 3, PSH to unknown 9, FIN 11 (unknown),
	   NOP, PSH 3 of 65535 bytes (over max_frame, under the u16 limit), FIN 3 */
	uint8_t hdr[][8] = {
		{ 1, 0, 0, 0, 3, 0, 0, 0 },	  { 1, 2, 11, 0, 3, 0, 0, 0 },
		{ 1, 0, 0, 0, 3, 0, 0, 0 },	  { 1, 2, 4, 0, 9, 0, 0, 0 },
		{ 1, 1, 0, 0, 11, 0, 0, 0 },	  { 1, 3, 0, 0, 0, 0, 0, 0 },
		{ 1, 2, 0xff, 0xff, 3, 0, 0, 0 }, { 1, 1, 0, 0, 3, 0, 0, 0 },
	};
	memcpy(in + n, hdr[0], 8), n += 8;
	memcpy(in + n, hdr[1], 8), n += 8;
	memcpy(in + n, "hello world", 11), n += 11;
	memcpy(in + n, hdr[2], 8), n += 8;
	memcpy(in + n, hdr[3], 8), n += 8;
	memcpy(in + n, "junk", 4), n += 4;
	memcpy(in + n, hdr[4], 8), n += 8;
	memcpy(in + n, hdr[5], 8), n += 8;
	memcpy(in + n, hdr[6], 8), n += 8;
	for (int i = 0; i < 65535; i++)
		in[n++] = (uint8_t)(i * 7);
	memcpy(in + n, hdr[7], 8), n += 8;

	/* a byte at a time through the first frames, then random chunks */
	size_t off = 0;
	for (; off < 100; off++)
		CHECK_EQ(kcpx_smux_input(s, in + off, 1, 0), 1);
	while (off < n) {
		size_t ch = 1 + rnd() % 5000;
		if (ch > n - off)
			ch = n - off;
		CHECK_EQ(kcpx_smux_input(s, in + off, ch, 0), ch);
		off += ch;
	}
	CHECK(!kcpx_smux_dead(s));
	CHECK_EQ(d.naccepted, 1);
	CHECK_EQ(kcpx_smux_readable(s, 3), 11 + 65535);
	CHECK_EQ(kcpx_smux_read(s, 3, out, 11), 11);
	CHECK_MEM(out, "hello world", 11);
	CHECK_EQ(kcpx_smux_read(s, 3, out, sizeof(out)), 65535);
	for (int i = 0; i < 65535; i++)
		CHECK_EQ(out[i], (uint8_t)(i * 7));
	CHECK_EQ(kcpx_smux_read(s, 3, out, sizeof(out)), 0);
	kcpx_smux_counters(s, &c);
	CHECK_EQ(c.frames_in, 8);
	CHECK_EQ(c.bad_frames, 2); /* duplicate SYN and PSH to an unknown stream */
	CHECK_EQ(c.streams_accepted, 1);
	CHECK(!kcpx_smux_output_pending(s)); /* v1 reads send nothing */
	kcpx_smux_free(s);
}

/* A SYN flood is bounded: streams beyond the limit are refused with FIN. */
static void test_syn_flood(void)
{
	struct kcpx_smux_config cc = cfg_default(1, false);
	struct side d = { 0 };
	struct kcpx_smux *s = kcpx_smux_new(&cc, &ops, &d, 0);
	uint8_t syn[8] = { 1, 0, 0, 0, 0, 0, 0, 0 }, out[64];
	struct frame f[4];

	for (uint32_t i = 0; i <= KCPX_SMUX_MAX_STREAMS; i++) {
		uint32_t sid = 1 + 2 * i;
		syn[4] = (uint8_t)sid;
		syn[5] = (uint8_t)(sid >> 8);
		syn[6] = (uint8_t)(sid >> 16);
		CHECK_EQ(kcpx_smux_input(s, syn, 8, 0), 8);
	}
	CHECK_EQ(kcpx_smux_num_streams(s), KCPX_SMUX_MAX_STREAMS);
	size_t n = kcpx_smux_output(s, out, sizeof(out));
	CHECK_EQ(parse_frames(out, n, f, 4), 1);
	CHECK_EQ(f[0].cmd, KCPX_SMUX_CMD_FIN);
	CHECK_EQ(f[0].sid, 1 + 2 * KCPX_SMUX_MAX_STREAMS);
	uint32_t sid;
	CHECK_EQ(kcpx_smux_open(s, &sid), -EMFILE);
	struct kcpx_smux_counters c;
	kcpx_smux_counters(s, &c);
	CHECK_EQ(c.streams_refused, 1);
	CHECK_EQ(d.refused_n, 1);
	kcpx_smux_free(s);
}

/*
 * cfg.max_streams (--sessstreams): the server takes that many of the client's streams;
 * SYNs beyond are answered with FIN (the client's stream reads EOF), counted, reported
 * once per input() through refused(); a stream closed and gone frees its place; the
 * client's own open() stops at its cap with -EMFILE.
 */
static void test_max_streams(void)
{
	struct kcpx_smux_config cc = cfg_default(2, true), sc = cfg_default(2, false);
	struct pair *p = calloc(1, sizeof(*p));
	struct kcpx_smux_counters c;
	uint32_t sid[8], extra;
	uint8_t buf[16];

	sc.max_streams = 4;
	cc.max_streams = 6;
	p->c.s = kcpx_smux_new(&cc, &ops, &p->c, 0);
	p->sv.s = kcpx_smux_new(&sc, &ops, &p->sv, 0);
	for (int i = 0; i < 6; i++)
		CHECK_EQ(kcpx_smux_open(p->c.s, &sid[i]), 0);
	CHECK_EQ(kcpx_smux_open(p->c.s, &extra), -EMFILE);
	CHECK_EQ(pump_all(p), 0);
	CHECK_EQ(p->sv.naccepted, 4);
	CHECK_EQ(kcpx_smux_num_streams(p->sv.s), 4);
	kcpx_smux_counters(p->sv.s, &c);
	CHECK_EQ(c.streams_refused, 2);
	CHECK_EQ(c.streams_accepted, 4);
	CHECK_EQ(p->sv.refused_n, 2);
	CHECK(p->sv.refused_calls >= 1 && p->sv.refused_calls <= 2);
	CHECK_EQ(p->sv.refused_sid, sid[5]);
	/* the refused streams got FIN: EOF at the client; the accepted ones did not */
	CHECK_EQ(kcpx_smux_read(p->c.s, sid[4], buf, sizeof(buf)), 0);
	CHECK_EQ(kcpx_smux_read(p->c.s, sid[5], buf, sizeof(buf)), 0);
	CHECK_EQ(kcpx_smux_read(p->c.s, sid[0], buf, sizeof(buf)), -EAGAIN);
	CHECK_EQ(kcpx_smux_write(p->c.s, sid[0], (const uint8_t *)"hi", 2), 2);
	CHECK_EQ(pump_all(p), 0);
	CHECK_EQ(kcpx_smux_read(p->sv.s, sid[0], buf, sizeof(buf)), 2);
	/* one place freed on each side: the next SYN is taken */
	CHECK_EQ(kcpx_smux_close(p->c.s, sid[4]), 0);
	CHECK_EQ(kcpx_smux_close(p->c.s, sid[1]), 0);
	CHECK_EQ(kcpx_smux_close(p->sv.s, sid[1]), 0);
	CHECK_EQ(pump_all(p), 0);
	CHECK_EQ(kcpx_smux_num_streams(p->sv.s), 3);
	CHECK_EQ(kcpx_smux_open(p->c.s, &extra), 0);
	CHECK_EQ(pump_all(p), 0);
	CHECK_EQ(p->sv.naccepted, 5);
	CHECK_EQ(p->sv.accepted[4], extra);
	kcpx_smux_counters(p->sv.s, &c);
	CHECK_EQ(c.streams_refused, 2);
	pair_free(p);
}

static void test_bad_config(void)
{
	struct kcpx_smux_config cc = cfg_default(3, true);

	CHECK(!kcpx_smux_new(&cc, &ops, NULL, 0));
	cc = cfg_default(1, true);
	cc.max_frame = 65536;
	CHECK(!kcpx_smux_new(&cc, &ops, NULL, 0));
}

/* ---- memory that follows the traffic ---- */

/* Reads everything stream sid has with peek/consume, checking the pattern. */
static int drain_peek(struct kcpx_smux *s, uint32_t sid, uint64_t *rx)
{
	for (;;) {
		struct iovec iov[4];
		int niov = 4;
		ssize_t n = kcpx_smux_peek(s, sid, iov, &niov);
		size_t take = 0;

		if (n == -EAGAIN)
			return 0;
		if (n <= 0 || niov < 1)
			return -1;
		/* consume a part, sometimes less than the first piece */
		for (int i = 0; i < niov; i++) {
			const uint8_t *b = iov[i].iov_base;

			for (size_t k = 0; k < iov[i].iov_len; k++)
				if (b[k] != pat(sid, 0, *rx + take + k))
					return -1;
			take += iov[i].iov_len;
		}
		if (rnd() % 3 == 0)
			take = 1 + rnd() % take;
		kcpx_smux_consume(s, sid, take);
		*rx += take;
	}
}

static void test_memory_follows_traffic(void)
{
	struct kcpx_pool *pool = kcpx_pool_new(kcpx_smux_pool_block(), 16);
	struct kcpx_smux_config cc = cfg_default(2, true), sc = cfg_default(2, false);
	struct pair *p = calloc(1, sizeof(*p));
	struct kcpx_pool_stats st;
	static uint32_t sids[1000];
	static uint64_t tx[40], rx[40];
	size_t r, w;

	CHECK(pool && p);
	/* one pool for both sessions, as a tunnel shares one among all of its sessions */
	cc.pool = sc.pool = pool;
	p->c.s = kcpx_smux_new(&cc, &ops, &p->c, 0);
	p->sv.s = kcpx_smux_new(&sc, &ops, &p->sv, 0);
	CHECK(p->c.s && p->sv.s);
	for (int i = 0; i < 1000; i++)
		CHECK_EQ(kcpx_smux_open(p->c.s, &sids[i]), 0);
	CHECK_EQ(pump_all(p), 0);
	CHECK_EQ(p->sv.naccepted, 1000);
	/* a thousand open, idle streams own no buffer */
	kcpx_pool_stats(pool, &st);
	CHECK_EQ(st.in_use, 0);

	/* buffers grow with the bytes queued... */
	for (int i = 0; i < 40; i++) {
		CHECK(write_pat(p->c.s, sids[i], &tx[i], 20000) > 0);
		CHECK_EQ(tx[i], 20000);
	}
	kcpx_smux_buffered(p->c.s, &r, &w);
	CHECK_EQ(w, 40 * 20000);
	kcpx_pool_stats(pool, &st);
	CHECK(st.in_use * BQ_TEST_BLK >= 40 * 20000);
	CHECK(st.in_use * BQ_TEST_BLK <= 2 * 40 * 20000);
	/* ...move from the sender's buffers to the receiver's... */
	CHECK_EQ(pump_all(p), 0);
	kcpx_smux_buffered(p->c.s, &r, &w);
	CHECK_EQ(w, 0);
	kcpx_smux_buffered(p->sv.s, &r, &w);
	CHECK_EQ(r, 40 * 20000);
	/* ...and go back to the pool as they are read */
	for (int i = 0; i < 40; i++) {
		CHECK_EQ(drain_peek(p->sv.s, sids[i], &rx[i]), 0);
		CHECK_EQ(rx[i], 20000);
	}
	kcpx_smux_buffered(p->sv.s, &r, &w);
	CHECK_EQ(r, 0);
	kcpx_pool_stats(pool, &st);
	CHECK_EQ(st.in_use, 0);
	CHECK(st.cached <= 16); /* the rest went back to malloc */
	CHECK(st.peak_in_use >= 40 * 20000 / BQ_TEST_BLK);
	CHECK_EQ(kcpx_smux_num_streams(p->sv.s), 1000);
	pair_free(p);
	kcpx_pool_free(pool);

	/* a pool of the wrong block size is a bad config */
	pool = kcpx_pool_new(kcpx_smux_pool_block() + 1, 1);
	cc.pool = pool;
	CHECK(!kcpx_smux_new(&cc, &ops, NULL, 0));
	kcpx_pool_free(pool);
}

#define FAIR_N	   200
#define FAIR_BYTES 30000
#define FAIR_SEND  65536

struct fair {
	struct kcpx_smux *s;
	uint32_t sid[FAIR_N];
	uint64_t tx[FAIR_N];
	int queued[FAIR_N], nqueued; /* in the order writes were refused */
	int woken[FAIR_N], nwoken;   /* in the order of each stream's first writable() */
	bool was_woken[FAIR_N];
	bool over; /* the send budget was exceeded */
	bool failed;
};

/* Writes the stream's pattern until done or refused; true when refused. */
static bool fair_write(struct fair *f, int i)
{
	uint8_t buf[4096];

	while (f->tx[i] < FAIR_BYTES) {
		size_t n = KCPX_TEST_MIN(sizeof(buf), FAIR_BYTES - f->tx[i]), rb, wb;
		ssize_t r;

		for (size_t k = 0; k < n; k++)
			buf[k] = pat(f->sid[i], 0, f->tx[i] + k);
		r = kcpx_smux_write(f->s, f->sid[i], buf, n);
		if (r == -EAGAIN)
			return true;
		if (r <= 0) {
			f->failed = true;
			return false;
		}
		f->tx[i] += (uint64_t)r;
		kcpx_smux_buffered(f->s, &rb, &wb);
		if (wb > FAIR_SEND)
			f->over = true;
	}
	return false;
}

static void fair_writable(void *user, uint32_t sid)
{
	struct fair *f = user;
	int i = (int)(sid - 3) / 2;

	if (!f->was_woken[i]) {
		f->was_woken[i] = true;
		f->woken[f->nwoken++] = i;
	}
	fair_write(f, i);
}

static const struct kcpx_smux_ops fair_ops = { .writable = fair_writable };

static void test_send_budget_fair(void)
{
	struct kcpx_smux_config cc = cfg_default(2, true), sc = cfg_default(2, false);
	struct pair *p = calloc(1, sizeof(*p));
	struct fair *f = calloc(1, sizeof(*f));
	static uint64_t rx[FAIR_N];
	struct kcpx_smux_counters cnt;
	int rounds = 0;
	bool done = false;

	CHECK(p && f);
	cc.max_send_buffer = FAIR_SEND;
	f->s = p->c.s = kcpx_smux_new(&cc, &fair_ops, f, 0);
	p->sv.s = kcpx_smux_new(&sc, &ops, &p->sv, 0);
	CHECK(p->c.s && p->sv.s);
	for (int i = 0; i < FAIR_N; i++)
		CHECK_EQ(kcpx_smux_open(p->c.s, &f->sid[i]), 0);
	/* everyone writes at once: the first two fill the budget, the rest queue */
	for (int i = 0; i < FAIR_N; i++)
		if (fair_write(f, i))
			f->queued[f->nqueued++] = i;
	CHECK_EQ(f->tx[0], FAIR_BYTES);
	CHECK_EQ(f->tx[1], FAIR_BYTES);
	CHECK_EQ(f->nqueued, FAIR_N - 2);
	CHECK_EQ(kcpx_smux_write_room(p->c.s, f->sid[FAIR_N - 1]), 0);
	CHECK(!f->over);
	memset(rx, 0, sizeof(rx));
	while (!done) {
		CHECK(rounds++ < 100000);
		CHECK(pump(p) >= 0);
		CHECK(!f->over);
		CHECK(!f->failed);
		done = true;
		for (int i = 0; i < FAIR_N; i++) {
			CHECK_EQ(drain_peek(p->sv.s, f->sid[i], &rx[i]), 0);
			done = done && rx[i] == FAIR_BYTES;
		}
	}
	/* every queued stream was woken, first come first served */
	CHECK_EQ(f->nwoken, f->nqueued);
	for (int i = 0; i < f->nqueued; i++)
		CHECK_EQ(f->woken[i], f->queued[i]);
	kcpx_smux_counters(p->c.s, &cnt);
	CHECK(cnt.send_waits >= (uint64_t)f->nqueued);
	free(f);
	pair_free(p);
}

int main(void)
{
	RUN(test_encoding_v1);
	RUN(test_encoding_v2_server);
	RUN(test_data_v1);
	RUN(test_data_v2);
	RUN(test_data_small_frames);
	RUN(test_fin_eof);
	RUN(test_round_robin);
	RUN(test_v2_window);
	RUN(test_v2_bad_upd);
	RUN(test_v1_backpressure);
	RUN(test_keepalive);
	RUN(test_keepalive_reload);
	RUN(test_malformed);
	RUN(test_v2_syn_is_valid);
	RUN(test_truncated_and_tolerated);
	RUN(test_syn_flood);
	RUN(test_max_streams);
	RUN(test_bad_config);
	RUN(test_memory_follows_traffic);
	RUN(test_send_budget_fair);
	UNIT_MAIN_END();
}
