// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for a whole session: the path every datagram from the network takes
 * (crypt open -> FEC -> KCP -> snappy -> smux), in kcptun's format or kcpx's native one,
 * on the server's side or the client's.
 *
 *   byte 0   flags: bit0 FEC 3/2, bit1 compression, bit2 smux v2, bit3 fix CRCs (kcptun)
 *            or seal the record (native), bit4 native protocol, bit5 client role,
 *            bit6 FEC partial decoding on a wide ratio (40/12; with bit0)
 *   then records: u16 LE length + that many bytes = one datagram, or a length of 0xFFFF
 *   = advance the clock 100 ms and tick.
 * kcptun format: crypt "none", so the fuzzer reaches past the CRC (fixed up on request,
 * so both the reject and the accept paths run); a record is the whole datagram, 20-byte
 * crypt header included. Native: the session's keys come from a fixed secret; with bit3
 * a record is a body that a peer holding the same secret seals first (FEC header in
 * clear when FEC is on), so the fuzzer reaches KCP and smux behind the AEAD; without it
 * the record is a raw datagram for kcpx_session_open_native. Client role: the session
 * opens a stream at start and writes to it. Every accepted stream is read and written
 * back, so smux output and KCP sending run too. Invariant checked: nothing sent is
 * longer than the MTU allows.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/crc.h"
#include "core/crypt.h"
#include "core/native.h"
#include "core/session.h"
#include "core/smux.h"
#include "core/util.h"
#include "fuzz_asan.h"
#include "fuzz_keys.h"

#define SID 0x00c0ffeeu

static const uint8_t secret[32] = { 'k', 'c', 'p', 'x', '-', 's', 'e', 's', 's' };

/* kcptun's key derivation (PBKDF2) is the same for every execution and costs more than
 * the rest of one: done once. Each execution still gets a fresh crypt from this key. */
static uint8_t crypt_key[KCPX_CRYPT_KEYLEN];

__attribute__((constructor)) static void fz_init(void)
{
	if (kcpx_crypt_derive_key("k", crypt_key))
		abort();
}

struct fz {
	struct kcpx_session *s;
	uint32_t sids[16];
	int nsids;
	uint64_t out_bytes;
};

static void fz_xmit(void *user, const uint8_t *dgram, size_t len)
{
	struct fz *f = user;

	if (len > 1500)
		abort(); /* mtu 1350 plus the largest header */
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
	struct kcpx_native *mine = NULL, *peer = NULL;
	struct kcpx_snmp snmp = { 0 };
	struct fz f = { 0 };
	uint32_t now = 1000;
	uint8_t flags, dgram[1600];
	bool native, client, wide;
	int fec_ds, fec_ps;

	if (size < 1)
		return 0;
	flags = data[0];
	data++;
	size--;
	native = flags & 16;
	client = flags & 32;
	wide = flags & 64;
	fec_ds = (flags & 1) ? (wide ? 40 : 3) : 0;
	fec_ps = (flags & 1) ? (wide ? 12 : 2) : 0;
	if (kcpx_crypt_new_key(&crypt, "none", crypt_key, seed))
		return 0;
	struct kcpx_session_config cfg = {
		.conv = native ? SID : 0x01020304,
		.mtu = 1350,
		.sndwnd = 64,
		.rcvwnd = 64,
		.nodelay = 1,
		.interval = 10,
		.resend = 2,
		.nc = 1,
		.datashard = fec_ds,
		.parityshard = fec_ps,
		.fec_flush_ms = wide ? 20 : 0,
		.comp = flags & 2,
		.crypt = crypt,
		.native = native,
		.smux = { .version = (flags & 4) ? 2 : 1,
			  .client = client,
			  .max_recv_buffer = 65536,
			  .max_stream_buffer = 65536,
			  .keepalive_ms = 1000,
			  .keepalive_timeout_ms = 3000,
			  .max_streams = 8 },
	};
	f.s = kcpx_session_new(&cfg, &fz_ops, &f, &snmp, now);
	if (!f.s)
		goto out;
	if (native) {
		/* our end and the peer's share a secret: the peer seals what we open */
		if (kcpx_native_new_secret(&mine, secret, SID, !client, KCPX_NATIVE_XCHACHA) ||
		    kcpx_native_new_secret(&peer, secret, SID, client, KCPX_NATIVE_XCHACHA))
			abort();
		kcpx_session_set_native(f.s, mine); /* the session owns it now */
	}
	if (client) {
		uint32_t sid;

		if (kcpx_smux_open(kcpx_session_smux(f.s), &sid) == 0) {
			f.sids[f.nsids++] = sid;
			kcpx_smux_write(kcpx_session_smux(f.s), sid, (const uint8_t *)"hello", 5);
		}
		kcpx_session_pump(f.s, now);
	}
	while (size >= 2 && !kcpx_session_dead(f.s)) {
		size_t len = kcpx_get_le16(data);
		uint8_t *body;
		size_t blen;
		uint32_t conv;
		int rc;

		data += 2;
		size -= 2;
		if (len == 0xFFFF) {
			now += 100;
			kcpx_session_tick(f.s, now);
			continue;
		}
		if (len > size)
			len = size;
		if (len > sizeof(dgram) - KCPX_NATIVE_HDR - KCPX_NATIVE_MAC)
			len = sizeof(dgram) - KCPX_NATIVE_HDR - KCPX_NATIVE_MAC;
		if (native && (flags & 8)) {
			bool fec = fec_ds && len >= KCPX_NATIVE_FEC_HDR;

			memcpy(dgram + KCPX_NATIVE_HDR, data, len);
			rc = kcpx_native_seal(peer, dgram, len, fec);
			data += len;
			size -= len;
			if (rc < 0)
				continue;
			len = (size_t)rc;
		} else {
			memcpy(dgram, data, len);
			data += len;
			size -= len;
		}
		if (native) {
			if (kcpx_session_open_native(f.s, dgram, len, &body, &blen) == 0)
				kcpx_session_input(f.s, body, blen, now);
		} else {
			if ((flags & 8) && len >= 20)
				kcpx_put_le32(dgram + 16, kcpx_crc32(dgram + 20, len - 20));
			if (kcpx_session_open(crypt, &snmp, dgram, len, &body, &blen, &conv) == 0)
				kcpx_session_input(f.s, body, blen, now);
		}
		kcpx_session_pump(f.s, now);
		fz_streams(&f);
		kcpx_session_pump(f.s, now);
	}
	kcpx_session_free(f.s);
out:
	kcpx_native_free(peer);
	kcpx_crypt_free(crypt);
	return 0;
}
