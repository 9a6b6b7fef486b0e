// SPDX-License-Identifier: MIT
#include "io/clock.h"

#include <time.h>

uint64_t kcpx_clock_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint32_t kcpx_clock_ms(void)
{
	return (uint32_t)(kcpx_clock_us() / 1000u);
}
