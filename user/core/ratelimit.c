// SPDX-License-Identifier: MIT
#include "core/ratelimit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kcpx_native.h"

struct rl_slot {
	uint8_t key[16];
	bool used;
	struct kcpx_native_rl b;
};

struct kcpx_ratelimit {
	unsigned slots;
	uint32_t rate, seed;
	struct rl_slot s[];
};

int kcpx_ratelimit_new(struct kcpx_ratelimit **out, unsigned slots, uint32_t rate, uint32_t seed)
{
	struct kcpx_ratelimit *rl;

	*out = NULL;
	if (!slots || !rate)
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

bool kcpx_ratelimit_allow(struct kcpx_ratelimit *rl, const uint8_t key[16], uint64_t now_ns)
{
	uint32_t h = 2166136261u ^ rl->seed;
	struct rl_slot *s;

	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	s = &rl->s[h % rl->slots];
	if (!s->used || memcmp(s->key, key, 16)) {
		memcpy(s->key, key, 16);
		s->used = true;
		kcpx_rl_fresh(&s->b, now_ns, rl->rate);
		return true;
	}
	return kcpx_rl_spend(&s->b, now_ns, rl->rate);
}
