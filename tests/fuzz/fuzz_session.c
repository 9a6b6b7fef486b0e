// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for a whole server-side session: the path every datagram from the
 * network takes (crypt open -> FEC -> KCP -> snappy -> smux). Crypt is "none" so the
 * fuzzer reaches past the CRC; the CRC is fixed up on request so both the reject and the
 * accept paths are explored.
 *
 *   byte 0   flags: bit0 FEC 3/2, bit1 compression, bit2 smux v2, bit3 fix CRCs
 *   then records: u16 LE length + that many bytes = one datagram (the 20-byte crypt
 *   header included), or a length of 0xFFFF = advance the clock 100 ms and tick.
 * Every accepted stream is read and written back, so smux output and KCP sending run too.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/crc.h"
#include "core/crypt.h"
#include "core/session.h"
#include "core/smux.h"
#include "core/util.h"

struct fz {
	struct kcpx_session *s;
	uint32_t sids[16];
	int nsids;
	uint64_t out_bytes;
};

static void fz_xmit(void *user, const uint8_t *dgram, size_t len)
{
	struct fz *f = user;

	f->out_bytes += len;
}

static void fz_accept(void *user, uint32_t sid)
{
	struct fz *f = user;

	if (f->nsids < 16)
		f->sids[f->nsids++] = sid;
}

static const struct kcpx_session_ops fz_ops = {
	.xmit = fz_xmit,
	.accept = fz_accept,
};

static void fz_streams(struct fz *f)
{
	struct kcpx_smux *mx = kcpx_session_smux(f->s);
	uint8_t buf[4096];

	for (int i = 0; i < f->nsids; i++) {
		ssize_t n = kcpx_smux_read(mx, f->sids[i], buf, sizeof(buf));
		if (n > 0)
			kcpx_smux_write(mx, f->sids[i], buf, (size_t)n);
		if (n == 0 || n == -EPIPE) {
			kcpx_smux_close(mx, f->sids[i]);
			f->sids[i--] = f->sids[--f->nsids];
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t seed[32];
	struct kcpx_crypt *crypt = NULL;
	struct kcpx_snmp snmp = { 0 };
	struct fz f = { 0 };
	uint32_t now = 1000;
	uint8_t flags, dgram[1600];

	if (size < 1)
		return 0;
	flags = data[0];
	data++;
	size--;
	if (kcpx_crypt_new(&crypt, "none", "k", seed))
		return 0;
	struct kcpx_session_config cfg = {
		.conv = 0x01020304,
		.mtu = 1350,
		.sndwnd = 64,
		.rcvwnd = 64,
		.nodelay = 1,
		.interval = 10,
		.resend = 2,
		.nc = 1,
		.datashard = (flags & 1) ? 3 : 0,
		.parityshard = (flags & 1) ? 2 : 0,
		.comp = flags & 2,
		.crypt = crypt,
		.smux = { .version = (flags & 4) ? 2 : 1,
			  .client = false,
			  .max_recv_buffer = 65536,
			  .max_stream_buffer = 65536,
			  .keepalive_ms = 1000,
			  .keepalive_timeout_ms = 3000 },
	};
	f.s = kcpx_session_new(&cfg, &fz_ops, &f, &snmp, now);
	if (!f.s)
		goto out;
	while (size >= 2 && !kcpx_session_dead(f.s)) {
		size_t len = kcpx_get_le16(data);
		uint8_t *body;
		size_t blen;
		uint32_t conv;

		data += 2;
		size -= 2;
		if (len == 0xFFFF) {
			now += 100;
			kcpx_session_tick(f.s, now);
			continue;
		}
		if (len > size)
			len = size;
		if (len > sizeof(dgram))
			len = sizeof(dgram);
		memcpy(dgram, data, len);
		data += len;
		size -= len;
		if ((flags & 8) && len >= 20)
			kcpx_put_le32(dgram + 16, kcpx_crc32(dgram + 20, len - 20));
		if (kcpx_session_open(crypt, &snmp, dgram, len, &body, &blen, &conv) == 0)
			kcpx_session_input(f.s, body, blen, now);
		kcpx_session_pump(f.s, now);
		fz_streams(&f);
		kcpx_session_pump(f.s, now);
	}
	kcpx_session_free(f.s);
out:
	kcpx_crypt_free(crypt);
	return 0;
}
