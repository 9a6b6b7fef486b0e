// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the smux session. The first byte picks version, role and small
 * limits; the rest is a script of operations: feed the next bytes as peer input (in the
 * chunk size the script gives), read, write, close, open, output into a small buffer,
 * tick the clock. Whatever the script, the session must not crash, leak, overrun its
 * limits or emit anything but whole well-formed frames.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/smux.h"
#include "fuzz_asan.h"

#define MAX_SIDS 64

struct fz {
	struct kcpx_smux *s;
	uint32_t sids[MAX_SIDS];
	unsigned nsids;
	int version;
	uint32_t max_frame;
};

static void add_sid(struct fz *f, uint32_t sid)
{
	if (f->nsids < MAX_SIDS)
		f->sids[f->nsids++] = sid;
	else
		f->sids[sid % MAX_SIDS] = sid;
}

static void on_accept(void *user, uint32_t sid)
{
	add_sid(user, sid);
}

static void on_readable(void *user, uint32_t sid)
{
	struct fz *f = user;
	uint8_t tmp[64];

	/* read a little from inside the callback now and then */
	if (sid % 3 == 0)
		(void)kcpx_smux_read(f->s, sid, tmp, sizeof(tmp));
}

static void on_writable(void *user, uint32_t sid)
{
	struct fz *f = user;

	if (sid % 5 == 0)
		(void)kcpx_smux_close(f->s, sid);
}

static const struct kcpx_smux_ops ops = { on_accept, on_readable, on_writable };

/* Every output must split into whole frames of this session's version. */
static void check_frames(const struct fz *f, const uint8_t *b, size_t n)
{
	size_t off = 0;

	while (off < n) {
		uint16_t len;

		if (n - off < KCPX_SMUX_HDR)
			abort();
		len = (uint16_t)(b[off + 2] | b[off + 3] << 8);
		if (b[off] != f->version || b[off + 1] > KCPX_SMUX_CMD_UPD)
			abort();
		if (b[off + 1] == KCPX_SMUX_CMD_PSH && (len == 0 || len > f->max_frame))
			abort();
		if (b[off + 1] == KCPX_SMUX_CMD_UPD && (f->version != 2 || len != 8))
			abort();
		if (n - off - KCPX_SMUX_HDR < len)
			abort();
		off += KCPX_SMUX_HDR + len;
	}
}

/* ---- pair mode: two sessions back to back, every byte delivered checked ---- */

#define PK	 8
#define PIPE_CAP (1 << 18)

static uint8_t pbyte(unsigned k, int dir, uint64_t off)
{
	return (uint8_t)(off * 31 + k * 7 + (unsigned)dir * 101 + (off >> 9));
}

/*
 * The pattern is written and checked a byte at a time. Instrumented, each byte's loop test
 * called the fuzzer's comparison tracing, which took about a quarter of a run and told it
 * nothing about smux: these two loops are left out of the coverage instrumentation.
 */
#define FZ_NOCOV __attribute__((no_sanitize("coverage"), noinline))

static FZ_NOCOV void p_fill(uint8_t *b, size_t len, unsigned k, int dir, uint64_t off)
{
	for (size_t i = 0; i < len; i++)
		b[i] = pbyte(k, dir, off + i);
}

/* Does b hold the pattern? */
static FZ_NOCOV bool p_check(const uint8_t *b, size_t len, unsigned k, int dir, uint64_t off)
{
	for (size_t i = 0; i < len; i++)
		if (b[i] != pbyte(k, dir, off + i))
			return false;
	return true;
}

struct pside {
	struct kcpx_smux *s;
	uint32_t accepted[PK];
	unsigned naccepted;
};

struct pstream {
	uint32_t sid;
	bool open[2];	       /* side 0 = client, 1 = server (after accept) */
	bool seen;	       /* the server has accepted it */
	uint64_t tx[2], rx[2]; /* tx[d]: bytes side d's writes took; rx[d]: bytes side d read */
};

struct ppipe {
	uint8_t buf[PIPE_CAP];
	size_t len;
};

static void p_accept(void *user, uint32_t sid)
{
	struct pside *ps = user;

	if (ps->naccepted < PK)
		ps->accepted[ps->naccepted++] = sid;
	else
		(void)kcpx_smux_close(ps->s, sid);
}

static const struct kcpx_smux_ops pops = { p_accept, NULL, NULL };

static void p_output(struct kcpx_smux *s, struct ppipe *pp, size_t cap, int version,
		     uint32_t max_frame)
{
	struct fz chk = { .version = version, .max_frame = max_frame };
	size_t n;

	if (cap > PIPE_CAP - pp->len)
		cap = PIPE_CAP - pp->len;
	n = kcpx_smux_output(s, pp->buf + pp->len, cap);
	if (n > cap)
		abort();
	check_frames(&chk, pp->buf + pp->len, n);
	pp->len += n;
}

static void p_input(struct kcpx_smux *s, struct ppipe *pp, size_t chunk)
{
	size_t off = 0;

	while (off < pp->len) {
		size_t c = chunk < pp->len - off ? chunk : pp->len - off;
		ssize_t r = kcpx_smux_input(s, pp->buf + off, c, 0);

		if (r < 0 || (size_t)r > c)
			abort(); /* a well-behaved peer never breaks the protocol */
		off += (size_t)r;
		if ((size_t)r < c)
			break;
	}
	memmove(pp->buf, pp->buf + off, pp->len - off);
	pp->len -= off;
}

/* Has the server accepted sid? */
static bool p_known(const struct pside *ps, uint32_t sid)
{
	for (unsigned i = 0; i < ps->naccepted; i++)
		if (ps->accepted[i] == sid)
			return true;
	return false;
}

static void pair_mode(const uint8_t *data, size_t size)
{
	static struct ppipe pipes[2]; /* [0]: client -> server */
	static uint8_t tmp[40000];
	struct kcpx_smux_config cfg = { 0 };
	struct pside side[2] = { { 0 } };
	struct pstream st[PK] = { { 0 } };
	unsigned nst = 0;
	size_t pos = 1;

	cfg.version = (data[0] & 1) ? 2 : 1;
	cfg.max_frame = (data[0] & 4) ? 100 : 32768;
	cfg.max_recv_buffer = (data[0] & 8) ? 3000 : 300000;
	cfg.max_stream_buffer = (data[0] & 16) ? 1000 : 65536;
	cfg.keepalive_ms = (data[0] & 32) ? 1000 : 0;
	cfg.client = true;
	side[0].s = kcpx_smux_new(&cfg, &pops, &side[0], 0);
	cfg.client = false;
	side[1].s = kcpx_smux_new(&cfg, &pops, &side[1], 0);
	pipes[0].len = pipes[1].len = 0;

	while (pos + 1 < size) {
		uint8_t op = data[pos], arg = data[pos + 1];
		int d = op & 1;
		struct pside *me = &side[d];
		struct pstream *x = nst ? &st[arg % nst] : NULL;
		ssize_t r;

		pos += 2;
		switch ((op >> 1) % 7) {
		case 0: /* client opens */
			if (nst < PK) {
				uint32_t sid;

				if (kcpx_smux_open(side[0].s, &sid))
					abort();
				st[nst].sid = sid;
				st[nst].open[0] = true;
				nst++;
			}
			break;
		case 1: { /* write */
			size_t len = (size_t)(op >> 4) * 2500 + arg;

			if (!x || !x->open[d])
				break;
			p_fill(tmp, len, (unsigned)(x - st), d, x->tx[d]);
			r = kcpx_smux_write(me->s, x->sid, tmp, len);
			if (r > 0)
				x->tx[d] += (uint64_t)r;
			else if (r != -EAGAIN && r != -EPIPE && !(r == 0 && len == 0))
				abort();
			break;
		}
		case 2: /* read and check */
			if (!x || !x->open[d])
				break;
			r = kcpx_smux_read(me->s, x->sid, tmp, (size_t)arg * 150 + 1);
			if (r > 0) {
				if (!p_check(tmp, (size_t)r, (unsigned)(x - st), !d, x->rx[d]))
					abort();
				x->rx[d] += (uint64_t)r;
				if (x->rx[d] > x->tx[!d])
					abort();
			} else if (r == 0) {
				/* EOF: everything the other side's writes took has arrived */
				if (x->rx[d] != x->tx[!d])
					abort();
			} else if (r != -EAGAIN) {
				abort();
			}
			break;
		case 3: /* close */
			if (!x || !x->open[d])
				break;
			if (kcpx_smux_close(me->s, x->sid))
				abort();
			x->open[d] = false;
			break;
		case 4: /* output into the pipe */
			p_output(me->s, &pipes[d], (size_t)arg * ((op & 16) ? 300 : 1), cfg.version,
				 cfg.max_frame);
			break;
		case 5: /* pipe into the other side */
			p_input(side[!d].s, &pipes[d], (size_t)arg * ((op & 16) ? 200 : 1) + 1);
			break;
		case 6:
			kcpx_smux_tick(me->s, (uint32_t)pos * 100);
			break;
		}
		/* the server learns streams through accept */
		for (unsigned i = 0; i < nst; i++) {
			if (!st[i].seen && p_known(&side[1], st[i].sid)) {
				st[i].seen = true;
				st[i].open[1] = true;
			}
		}
	}
	kcpx_smux_free(side[0].s);
	kcpx_smux_free(side[1].s);
}

static void one_session(const uint8_t *data, size_t size)
{
	struct fz f = { 0 };
	struct kcpx_smux_config cfg = { 0 };
	static uint8_t out[70000], tmp[70000];
	uint32_t now = 0;
	size_t pos = 1, n;

	cfg.version = (data[0] & 1) ? 2 : 1;
	cfg.client = data[0] & 2;
	cfg.max_frame = (data[0] & 4) ? 100 : 32768;
	cfg.max_recv_buffer = (data[0] & 8) ? 1000 : 200000;
	cfg.max_stream_buffer = (data[0] & 16) ? 500 : 65536;
	cfg.keepalive_ms = (data[0] & 32) ? 1000 : 0;
	cfg.keepalive_timeout_ms = (data[0] & 64) ? 3000 : 0;
	f.version = cfg.version;
	f.max_frame = cfg.max_frame;
	f.s = kcpx_smux_new(&cfg, &ops, &f, now);
	if (!f.s)
		return;

	while (pos < size) {
		uint8_t op = data[pos++];
		uint8_t arg = pos < size ? data[pos] : 0;
		uint32_t sid = f.nsids ? f.sids[arg % f.nsids] : arg;
		ssize_t r;

		switch (op & 7) {
		case 0:
		case 1: { /* peer bytes: length arg, then that many bytes */
			size_t len = arg;

			pos++;
			if (op & 8)
				len = len * 64;
			if (len > size - pos)
				len = size - pos;
			r = kcpx_smux_input(f.s, data + pos, len, now);
			if (r > (ssize_t)len)
				abort();
			if (kcpx_smux_num_streams(f.s) > KCPX_SMUX_MAX_STREAMS)
				abort();
			if (r >= 0 && (size_t)r < len && !(op & 16))
				pos += (size_t)r; /* keep the rest for after a read */
			else
				pos += len;
			break;
		}
		case 2: /* read */
			pos++;
			r = kcpx_smux_read(f.s, sid, tmp, (op >> 3) ? (size_t)(op >> 3) * 997 : 1);
			if (r > 0 && kcpx_smux_readable(f.s, sid) > cfg.max_recv_buffer + 65535)
				abort(); /* one frame over the bucket at most */
			break;
		case 3: { /* write */
			size_t len = (size_t)(op >> 3) * 2111;

			pos++;
			memset(tmp, op, len);
			r = kcpx_smux_write(f.s, sid, tmp, len);
			if (r > (ssize_t)len)
				abort();
			break;
		}
		case 4:
			pos++;
			(void)kcpx_smux_close(f.s, sid);
			break;
		case 5:
			if (kcpx_smux_open(f.s, &sid) == 0)
				add_sid(&f, sid);
			break;
		case 6: /* output into a buffer of a scripted size */
			n = kcpx_smux_output(f.s, out, (size_t)arg * (op & 8 ? 256 : 1));
			pos++;
			if (n > (size_t)arg * (op & 8 ? 256 : 1))
				abort();
			check_frames(&f, out, n);
			break;
		case 7:
			now += (uint32_t)(op >> 3) * 250;
			kcpx_smux_tick(f.s, now);
			(void)kcpx_smux_deadline(f.s, now);
			break;
		}
	}
	/* drain: whatever is owed must come out as whole frames */
	for (int i = 0; i < 10000 && kcpx_smux_output_pending(f.s); i++) {
		n = kcpx_smux_output(f.s, out, sizeof(out));
		if (!n)
			abort();
		check_frames(&f, out, n);
	}
	kcpx_smux_free(f.s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 0x80)
		pair_mode(data, size);
	else
		one_session(data, size);
	return 0;
}
