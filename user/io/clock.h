/* SPDX-License-Identifier: MIT */
#ifndef KCPX_IO_CLOCK_H
#define KCPX_IO_CLOCK_H

#include <stdint.h>

/* Monotonic milliseconds: the `now` the engine is driven with (wraps at 2^32 like KCP's). */
uint32_t kcpx_clock_ms(void);
/* Monotonic microseconds, for measurements. */
uint64_t kcpx_clock_us(void);

#endif
