/* SPDX-License-Identifier: MIT */
/*
 * For fuzz targets whose code under test makes native handshakes (core/native.c): each
 * INIT a server accepts costs it two X25519 operations (its ephemeral key, the shared
 * secret), about 0.2 M cycles each in libsodium, most of such a target's CPU time. They are
 * libsodium's, not ours, and pure functions of their arguments; and the inputs repeat from
 * execution to execution (the target's random source starts each execution from the same
 * state, so the n-th key a server makes is the same key; the INITs come from the input).
 *
 * Defined in the fuzz target, these take precedence over the shared library's for calls
 * from the target's own code (the core is compiled into it), as fuzz_keys.h does. Each
 * keeps the last results in a direct-mapped table: on a miss it asks libsodium
 * (crypto_scalarmult_curve25519*, what the generic names call) and remembers the answer
 * and the return code (-1 for a low-order peer key); on a hit it gives the same bytes and
 * code. The caller sees exactly what libsodium would give; every check of the code under
 * test runs as before, and ASan still checks the 32-byte reads and writes (this code is
 * instrumented for it). Left out of the coverage instrumentation, and comparing without
 * memcmp, so that the fuzzer sees no branches and no comparisons of its own.
 * Include once, in the target.
 */
#ifndef KCPX_FUZZ_X25519_H
#define KCPX_FUZZ_X25519_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sodium.h>

/* slots per table: a campaign corpus's handshakes (tens of thousands) stay in it */
#define FZ_X_BITS  16
#define FZ_X_NOCOV __attribute__((no_sanitize("coverage")))

struct fz_x_slot {
	uint64_t in[8]; /* scalar, then the point (0 for the base point) */
	uint8_t out[32];
	int rc;
	bool used;
};

static struct fz_x_slot fz_x_base[1 << FZ_X_BITS], fz_x_var[1 << FZ_X_BITS];

static FZ_X_NOCOV struct fz_x_slot *fz_x_find(struct fz_x_slot *tab, const unsigned char *n,
					      const unsigned char *p, bool *hit)
{
	uint64_t in[8] = { 0 }, h = 0;
	struct fz_x_slot *s;
	uint64_t diff = 0;

	memcpy(in, n, 32);
	if (p)
		memcpy(in + 4, p, 32);
	for (int i = 0; i < 8; i++)
		h = (h ^ in[i]) * 0x9e3779b97f4a7c15u;
	s = &tab[h >> (64 - FZ_X_BITS)];
	for (int i = 0; i < 8; i++)
		diff |= s->in[i] ^ in[i];
	*hit = s->used && !diff;
	if (!*hit)
		memcpy(s->in, in, sizeof(in));
	return s;
}

FZ_X_NOCOV int crypto_scalarmult_base(unsigned char *q, const unsigned char *n)
{
	bool hit;
	struct fz_x_slot *s = fz_x_find(fz_x_base, n, NULL, &hit);

	if (!hit) {
		s->rc = crypto_scalarmult_curve25519_base(s->out, n);
		s->used = true;
	}
	memcpy(q, s->out, 32);
	return s->rc;
}

FZ_X_NOCOV int crypto_scalarmult(unsigned char *q, const unsigned char *n, const unsigned char *p)
{
	bool hit;
	struct fz_x_slot *s = fz_x_find(fz_x_var, n, p, &hit);

	if (!hit) {
		s->rc = crypto_scalarmult_curve25519(s->out, n, p);
		s->used = true;
	}
	memcpy(q, s->out, 32);
	return s->rc;
}

#endif
