// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the AF_XDP backend's frame parser (core/frame.c), which reads
 * whatever arrives on the interface's rings.
 *   1. The input as a received frame: parse and take must never read outside it, and a
 *      frame they accept must have its payload inside it.
 *   2. The input as a payload: a frame built around it must parse back to it exactly, with
 *      a checksum that checks, or the target aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "core/frame.h"

static uint8_t out[1 << 16], frame[(1 << 16) + KCPX_FRAME_HDR_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t mac[6] = { 2, 0, 0, 0, 0, 1 }, a6[16] = { 0xfe, 0x80, [15] = 7 };
	struct kcpx_frame_view v;
	struct kcpx_frame_hdr h = {
		.src_mac = mac,
		.dst_mac = mac,
		.sport_be = htons(1),
		.dport_be = htons(2),
	};
	uint8_t *copy;
	size_t n;

	/* an exact-size heap copy, so that ASan sees any read past the end */
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (kcpx_frame_parse(copy, (uint32_t)size, &v)) {
		if (v.payload < copy || v.payload + v.len > copy + size)
			abort();
		kcpx_frame_take(&v, out);
	}
	free(copy);

	if (size > 65535 - KCPX_FRAME_UDP - KCPX_FRAME_IP6)
		return 0;
	h.family = size & 1 ? AF_INET6 : AF_INET;
	h.src = h.dst = size & 1 ? a6 : (const uint8_t *)"\x0a\x00\x00\x01";
	n = kcpx_frame_build(frame, &h, data, (uint32_t)size);
	if (!kcpx_frame_parse(frame, (uint32_t)n, &v) || v.len != size ||
	    !kcpx_frame_take(&v, out) || memcmp(out, data, size))
		abort();
	return 0;
}
