/* SPDX-License-Identifier: MIT */
/* A tiny unit-test harness: each test binary prints one line per case and exits 1 on failure. */
#ifndef KCPX_TESTS_UNIT_H
#define KCPX_TESTS_UNIT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unit_failed;
static int unit_cases;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
			unit_failed++;                                                             \
			return;                                                                    \
		}                                                                                  \
	} while (0)

#define CHECK_EQ(a, b)                                                                             \
	do {                                                                                       \
		long long _a = (long long)(a), _b = (long long)(b);                                \
		if (_a != _b) {                                                                    \
			fprintf(stderr, "%s:%d: CHECK_EQ failed: %s = %lld, %s = %lld\n",          \
				__FILE__, __LINE__, #a, _a, #b, _b);                               \
			unit_failed++;                                                             \
			return;                                                                    \
		}                                                                                  \
	} while (0)

#define CHECK_MEM(a, b, n)                                                                         \
	do {                                                                                       \
		if (memcmp((a), (b), (n)) != 0) {                                                  \
			fprintf(stderr, "%s:%d: CHECK_MEM failed: %s != %s (%zu bytes)\n",         \
				__FILE__, __LINE__, #a, #b, (size_t)(n));                          \
			unit_failed++;                                                             \
			return;                                                                    \
		}                                                                                  \
	} while (0)

/* Run one case; a case returns early on its first failed CHECK. */
#define RUN(fn)                                                                                    \
	do {                                                                                       \
		int _before = unit_failed;                                                         \
		unit_cases++;                                                                      \
		fn();                                                                              \
		printf("%s %s\n", unit_failed == _before ? "ok  " : "FAIL", #fn);                  \
		fflush(stdout);                                                                    \
	} while (0)

#define UNIT_MAIN_END()                                                                            \
	do {                                                                                       \
		printf("%d cases, %d failed\n", unit_cases, unit_failed);                          \
		return unit_failed ? 1 : 0;                                                        \
	} while (0)

/* xorshift32: the tests' deterministic random numbers (state must not be 0). */
static inline uint32_t unit_xorshift32(uint32_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 17;
	*state ^= *state << 5;
	return *state;
}

/* Hex helper for vectors. Returns the number of bytes written. */
static inline size_t unit_unhex(const char *hex, unsigned char *out, size_t cap)
{
	size_t n = 0;
	while (hex[0] && hex[1] && n < cap) {
		unsigned v;
		if (sscanf(hex, "%2x", &v) != 1)
			break;
		out[n++] = (unsigned char)v;
		hex += 2;
	}
	return n;
}

#endif
