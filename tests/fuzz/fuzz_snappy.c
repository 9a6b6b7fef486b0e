// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the snappy framing reader and writer.
 *   1. The input as a framed stream, fed in pieces whose sizes come from the input
 *      itself: must never crash or overrun; errors are fine.
 *   2. The input as plain data, written in writes cut by its own bytes, then read back
 *      at other cuts: must give the input back exactly, or the target aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/snappy.h"
#include "core/util.h"

static uint8_t out[1 << 17];

static int feed_all(struct kcpx_snappy_r *r, const uint8_t *in, size_t n, size_t step, uint8_t *dst,
		    size_t cap, size_t *got)
{
	*got = 0;
	while (n > 0) {
		size_t piece = KCPX_MIN(n, step);
		ssize_t c = kcpx_snappy_r_feed(r, in, piece), m;

		if (c < 0)
			return -1;
		in += c;
		n -= (size_t)c;
		while ((m = kcpx_snappy_r_read(r, out, sizeof(out))) > 0) {
			if (dst) {
				if (*got + (size_t)m > cap)
					abort();
				memcpy(dst + *got, out, (size_t)m);
			}
			*got += (size_t)m;
		}
		if (c == 0 && kcpx_snappy_r_pending(r) == 0)
			abort(); /* no progress and nothing to read */
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kcpx_snappy_r *r = kcpx_snappy_r_new();
	struct kcpx_snappy_w *w = kcpx_snappy_w_new();
	size_t step = size ? 1 + data[0] : 1, got, nw = 0, off = 0;
	uint8_t *wire, *back;

	if (!r || !w)
		abort();
	feed_all(r, data, size, step, NULL, 0, &got);
	kcpx_snappy_r_free(r);

	wire = malloc(kcpx_snappy_w_bound(size) + 16 * (size + 1));
	back = malloc(size + 1);
	r = kcpx_snappy_r_new();
	if (!wire || !back || !r)
		abort();
	while (off < size) {
		size_t k = KCPX_MIN(size - off, (size_t)1 + data[off] * 64);

		nw += kcpx_snappy_w_chunk(w, data + off, k, wire + nw);
		off += k;
	}
	if (feed_all(r, wire, nw, 1 + (size % 97), back, size, &got) || got != size ||
	    (size && memcmp(back, data, size)))
		abort();
	free(wire);
	free(back);
	kcpx_snappy_r_free(r);
	kcpx_snappy_w_free(w);
	return 0;
}
