// SPDX-License-Identifier: MIT
/*
 * The buckets of ratelimit.h as GCRA: a bucket of `rate` tokens refilled at `rate` per
 * second is, in units of 1/rate ms (one token = COST units, time t = ms x rate), "full
 * again at tat": it has rate x COST - max(tat - t, 0) units of tokens. An event passes when
 * that is at least COST, i.e. tat - t <= (rate - 1) x COST, and moves tat on by COST. A
 * fresh bucket after one event is tat = t + COST, kcpx_rl_fresh's rate - 1 tokens.
 *
 * Slot word: bit 63 in use, bits 48..62 a tag of the key, bits 0..47 tat modulo 2^48.
 * Differences are read as signed 48-bit values: a tat more than a full bucket ahead of
 * now cannot be a live one (a slot idle for a day and more at high rates, or the engines'
 * 32-bit ms clock wrapping), so it starts over full. Such a stale slot can at worst refuse
 * its source for one second.
 */
#include "core/ratelimit.h"

#include <errno.h>
#include <stdlib.h>

#define COST	  1000u
#define TAT_BITS  48
#define TAT_MASK  ((1ull << TAT_BITS) - 1)
#define USED	  (1ull << 63)
#define TAG_SHIFT TAT_BITS
#define TAG_MASK  0x7fffull

struct kcpx_ratelimit {
	unsigned slots;
	uint32_t rate, seed;
	uint64_t s[]; /* slot words, __atomic only */
};

int kcpx_ratelimit_new(struct kcpx_ratelimit **out, unsigned slots, uint32_t rate, uint32_t seed)
{
	struct kcpx_ratelimit *rl;

	*out = NULL;
	if (!slots || !rate || rate >= 1u << 24)
		return -EINVAL;
	rl = calloc(1, sizeof(*rl) + (size_t)slots * sizeof(rl->s[0]));
	if (!rl)
		return -ENOMEM;
	rl->slots = slots;
	rl->rate = rate;
	rl->seed = seed;
	*out = rl;
	return 0;
}

void kcpx_ratelimit_free(struct kcpx_ratelimit *rl)
{
	free(rl);
}

/* tat - t as a signed 48-bit value */
static int64_t ahead(uint64_t tat, uint64_t t)
{
	uint64_t d = (tat - t) & TAT_MASK;

	return d & (1ull << (TAT_BITS - 1)) ? (int64_t)d - (int64_t)(1ull << TAT_BITS) : (int64_t)d;
}

bool kcpx_ratelimit_allow(struct kcpx_ratelimit *rl, const uint8_t key[16], uint64_t now_ns)
{
	uint32_t h = 2166136261u ^ rl->seed;
	uint64_t *slot, tag, t, w, nw;
	int64_t tau = (int64_t)(rl->rate - 1) * COST, d;

	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	slot = &rl->s[h % rl->slots];
	/* the slot index takes h modulo slots; the tag mixes h again so keys that share a
	 * slot rarely share a tag */
	tag = ((uint64_t)((h ^ (h >> 15)) * 2246822519u) >> 17) & TAG_MASK;
	t = (now_ns / 1000000u) * rl->rate & TAT_MASK;
	w = __atomic_load_n(slot, __ATOMIC_RELAXED);
	do {
		d = 0;
		if ((w & USED) && ((w >> TAG_SHIFT) & TAG_MASK) == tag) {
			d = ahead(w & TAT_MASK, t);
			if (d > tau + COST)
				d = 0; /* stale: full again */
			else if (d < 0)
				d = 0; /* full */
			else if (d > tau)
				return false;
		}
		nw = USED | tag << TAG_SHIFT | ((t + (uint64_t)d + COST) & TAT_MASK);
	} while (!__atomic_compare_exchange_n(slot, &w, nw, true, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	return true;
}
