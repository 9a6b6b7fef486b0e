/* SPDX-License-Identifier: MIT */
/*
 * The native protocol's anti-replay window for BPF programs (RFC 6479, the scheme
 * WireGuard uses): struct kcpx_replay from kcpx_native.h, a ring of 64-bit words indexed
 * by counter / 64. user/core/native.c runs the same algorithm after AEAD; the unit tests
 * hold the two to the same answers.
 *
 * The caller serialises updates (bpf_spin_lock in the map value): two CPUs updating one
 * window at once could each accept the same counter.
 */
#ifndef KCPX_BPF_LIB_REPLAY_H
#define KCPX_BPF_LIB_REPLAY_H

#include "kcpx_native.h"

enum kcpx_rp_res {
	KCPX_RP_OK = 0,
	KCPX_RP_REPLAY, /* inside the window and already seen */
	KCPX_RP_OLD,	/* more than KCPX_REPLAY_WINDOW below the newest counter */
};

_Static_assert((KCPX_REPLAY_WORDS & (KCPX_REPLAY_WORDS - 1)) == 0, "ring size power of 2");

static __always_inline int kcpx_rp_check(const struct kcpx_replay *w, __u64 ctr)
{
	if (ctr > w->top)
		return KCPX_RP_OK;
	if (w->top - ctr >= KCPX_REPLAY_WINDOW)
		return KCPX_RP_OLD;
	if (w->bits[(ctr / 64) & (KCPX_REPLAY_WORDS - 1)] & (1ULL << (ctr % 64)))
		return KCPX_RP_REPLAY;
	return KCPX_RP_OK;
}

/* Check ctr and, when it is acceptable, mark it seen (sliding the window forward). */
static __always_inline int kcpx_rp_update(struct kcpx_replay *w, __u64 ctr)
{
	int res = kcpx_rp_check(w, ctr);

	if (res != KCPX_RP_OK)
		return res;
	if (ctr > w->top) {
		__u64 cur = w->top / 64, diff = ctr / 64 - cur;

		/* Clear the words the window slides over: at most the whole ring. */
		for (__u32 i = 1; i <= KCPX_REPLAY_WORDS; i++) {
			if (i > diff)
				break;
			w->bits[(cur + i) & (KCPX_REPLAY_WORDS - 1)] = 0;
		}
		w->top = ctr;
	}
	w->bits[(ctr / 64) & (KCPX_REPLAY_WORDS - 1)] |= 1ULL << (ctr % 64);
	return KCPX_RP_OK;
}

#endif
