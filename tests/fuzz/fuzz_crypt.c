// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the crypt layer. Input: cipher u8 | datagram bytes.
 *   1. open() on the bytes as received: any result, never a crash or overrun.
 *   2. seal() of the bytes as a body, then open(): must give them back, or abort.
 * Keys are derived once per cipher (PBKDF2 is slow) and kept for the run.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypt.h"
#include "core/util.h"

static const char *const names[] = { "aes",	"aes-128", "aes-192", "salsa20",     "blowfish",
				     "twofish", "cast5",   "3des",    "tea",	     "xtea",
				     "sm4",	"xor",	   "none",    "aes-128-gcm", "null" };
static struct kcpx_crypt *cr[KCPX_ARRAY_SIZE(names)];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[4096];
	static const uint8_t seed[32] = { 42 };
	struct kcpx_crypt *c;
	size_t h, t, n, len;
	int rc;

	if (size < 1 || size > 2000)
		return 0;
	n = data[0] % KCPX_ARRAY_SIZE(names);
	if (!cr[n]) {
		uint8_t key[KCPX_CRYPT_KEYLEN];

		if (kcpx_crypt_derive_key("fuzz", key) ||
		    kcpx_crypt_new_key(&cr[n], names[n], key, seed))
			abort();
	}
	c = cr[n];
	data++;
	size--;

	memcpy(buf, data, size);
	rc = kcpx_crypt_open(c, buf, size);
	if (rc >= 0 && (size_t)rc + kcpx_crypt_header(c) + kcpx_crypt_trailer(c) != size)
		abort();

	h = kcpx_crypt_header(c);
	t = kcpx_crypt_trailer(c);
	memcpy(buf + h, data, size);
	len = kcpx_crypt_seal(c, buf, size);
	if (len != h + size + t)
		abort();
	if (kcpx_crypt_open(c, buf, len) != (int)size || memcmp(buf + h, data, size))
		abort();
	return 0;
}
