/* SPDX-License-Identifier: MIT */
/* Small helpers shared by the engine: little-endian access, wrap-safe comparisons. */
#ifndef KCPX_CORE_UTIL_H
#define KCPX_CORE_UTIL_H

#include <stdint.h>
#include <string.h>

static inline uint16_t kcpx_get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t kcpx_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

static inline void kcpx_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void kcpx_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* Signed distance a - b of two 32-bit sequence numbers or timestamps (wrap-safe). */
static inline int32_t kcpx_diff32(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b);
}

#define KCPX_MIN(a, b)	   ((a) < (b) ? (a) : (b))
#define KCPX_MAX(a, b)	   ((a) > (b) ? (a) : (b))
#define KCPX_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
