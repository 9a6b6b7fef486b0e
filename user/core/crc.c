// SPDX-License-Identifier: MIT
#include <limits.h>
#include <isa-l/crc.h>

#include "core/crc.h"

/* crc32_gzip_refl already does the inversions; seed 0 is zlib's crc32(0, p, n). */
uint32_t kcpx_crc32(const uint8_t *p, size_t n)
{
	return crc32_gzip_refl(0, p, n);
}

/*
 * crc32_iscsi takes an int length and a non-const pointer (it never writes) and does no
 * inversion itself. Chunks are far below INT_MAX; loop anyway so the helper is total.
 */
uint32_t kcpx_crc32c(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	while (n > 0) {
		int k = n > INT_MAX ? INT_MAX : (int)n;

		c = crc32_iscsi((unsigned char *)p, k, c);
		p += k;
		n -= (size_t)k;
	}
	return ~c;
}
