// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the native protocol's parsers and open paths. Input: mode u8 |
 * datagram bytes. Every input goes through all of:
 *   1. kcpx_native_peek() and kcpx_native_open() of a fresh server session: any result,
 *      never a crash or overrun; on success the body length must match the datagram.
 *   2. the same bytes as an INIT (kcpx_native_accept) and as a RESP (hs_finish).
 *   3. the bytes as a body: the server seals them (FEC header or not by mode bit 0,
 *      cipher by bit 1), the client (whose window is fresh) opens them and they must
 *      come back; opening the same datagram again must be refused as a replay.
 * Sessions share one fixed secret, so seeds made with it (tests/fuzz/corpus/native) are
 * valid datagrams the fuzzer mutates from.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/native.h"
#include "fuzz_keys.h"

#define SID 0x00c0ffeeu

static const uint8_t secret[32] = { 'k', 'c', 'p', 'x', '-', 'f', 'u', 'z', 'z' };
static const uint8_t master[32] = { 'p', 's', 'k' };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[4096], again[4096];
	static struct kcpx_native_psk *psk;
	static struct kcpx_native_hs *hs;
	static uint8_t init[KCPX_NATIVE_HS_LEN];
	const uint8_t rnd[KCPX_NATIVE_HS_RAND] = { 1 };
	enum kcpx_native_cipher c;
	struct kcpx_native *cli, *srv, *tmp;
	struct kcpx_native_info info;
	struct kcpx_native_stats st = { 0 };
	uint8_t resp[KCPX_NATIVE_HS_LEN], mode;
	int rc;

	if (size < 1 || size > 2000)
		return 0;
	if (!psk && (kcpx_native_psk_new_key(&psk, master) ||
		     kcpx_native_hs_init(&hs, psk, SID, rnd, true, init)))
		abort();
	mode = data[0];
	data++;
	size--;
	c = (mode & 2) && kcpx_native_aes_available() ? KCPX_NATIVE_AESGCM : KCPX_NATIVE_XCHACHA;
	if (kcpx_native_new_secret(&cli, secret, SID, false, c) ||
	    kcpx_native_new_secret(&srv, secret, SID, true, c))
		abort();

	/* 1. as received */
	memcpy(buf, data, size);
	rc = kcpx_native_peek(buf, size, &info);
	if (rc && rc != -EPROTO)
		abort();
	rc = kcpx_native_open(srv, buf, size);
	if (rc >= 0 && (size_t)rc + KCPX_NATIVE_HDR + KCPX_NATIVE_MAC != size)
		abort();
	if (rc < 0 && rc != -EPROTO && rc != -EBADMSG && rc != -ESTALE)
		abort();

	/* 2. as a handshake packet */
	rc = kcpx_native_accept(psk, data, size, rnd, mode & 4, resp, &tmp, &st);
	if (rc == 0)
		kcpx_native_free(tmp);
	rc = kcpx_native_hs_finish(hs, data, size, &tmp);
	if (rc == 0)
		kcpx_native_free(tmp);

	/* 3. as a body */
	if (size + KCPX_NATIVE_HDR + KCPX_NATIVE_MAC <= sizeof(buf) &&
	    (!(mode & 1) || size >= KCPX_NATIVE_FEC_HDR)) {
		size_t len;

		memcpy(buf + KCPX_NATIVE_HDR, data, size);
		rc = kcpx_native_seal(srv, buf, size, mode & 1);
		if (rc != (int)(size + KCPX_NATIVE_HDR + KCPX_NATIVE_MAC))
			abort();
		len = (size_t)rc;
		memcpy(again, buf, len);
		if (kcpx_native_open(cli, buf, len) != (int)size ||
		    memcmp(buf + KCPX_NATIVE_HDR, data, size))
			abort();
		if (kcpx_native_open(cli, again, len) != -ESTALE)
			abort();
	}
	kcpx_native_free(cli);
	kcpx_native_free(srv);
	return 0;
}
