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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { 0 };
	struct kcpx_smux_config cfg = { 0 };
	static uint8_t out[70000], tmp[70000];
	uint32_t now = 0;
	size_t pos = 1, n;

	if (size < 1)
		return 0;
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
		return 0;

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
	return 0;
}
