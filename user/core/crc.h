/* SPDX-License-Identifier: MIT */
/*
 * The two CRCs of the kcptun wire: CRC-32 (IEEE 802.3, as zlib's crc32()) in the crypt
 * header, CRC-32C (Castagnoli) in snappy framing chunks. Both use the usual initial
 * all-ones value and final inversion; ISA-L does the work (PCLMUL/CRC32 instructions).
 */
#ifndef KCPX_CORE_CRC_H
#define KCPX_CORE_CRC_H

#include <stddef.h>
#include <stdint.h>

uint32_t kcpx_crc32(const uint8_t *p, size_t n);
uint32_t kcpx_crc32c(const uint8_t *p, size_t n);

#endif
