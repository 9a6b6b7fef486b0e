// SPDX-License-Identifier: MIT
#include "core/srccount.h"

#include <errno.h>
#include <stdlib.h>

#include "core/util.h"

struct kcpx_srccount {
	unsigned slots;
	uint32_t seed[2];
	uint32_t *c; /* 2 x slots counters, __atomic only */
};

int kcpx_srccount_new(struct kcpx_srccount **out, unsigned slots, uint32_t seed)
{
	struct kcpx_srccount *sc;

	*out = NULL;
	if (!slots)
		return -EINVAL;
	sc = calloc(1, sizeof(*sc));
	if (!sc)
		return -ENOMEM;
	sc->c = calloc(2 * (size_t)slots, sizeof(sc->c[0]));
	if (!sc->c) {
		free(sc);
		return -ENOMEM;
	}
	sc->slots = slots;
	sc->seed[0] = seed;
	sc->seed[1] = seed * 2654435761u ^ 0x9e3779b9u;
	*out = sc;
	return 0;
}

void kcpx_srccount_free(struct kcpx_srccount *sc)
{
	if (!sc)
		return;
	free(sc->c);
	free(sc);
}

static void slots_of(const struct kcpx_srccount *sc, const uint8_t key[16], struct kcpx_srcref *r)
{
	for (int row = 0; row < 2; row++) {
		uint32_t h = 2166136261u ^ sc->seed[row];

		for (int i = 0; i < 16; i++)
			h = (h ^ key[i]) * 16777619u;
		h ^= h >> 16;
		r->i[row] = (uint32_t)row * sc->slots + h % sc->slots;
	}
}

bool kcpx_srccount_take(struct kcpx_srccount *sc, const uint8_t key[16], uint32_t limit,
			struct kcpx_srcref *ref)
{
	uint32_t a, b;

	slots_of(sc, key, ref);
	a = __atomic_add_fetch(&sc->c[ref->i[0]], 1, __ATOMIC_RELAXED);
	b = __atomic_add_fetch(&sc->c[ref->i[1]], 1, __ATOMIC_RELAXED);
	if (KCPX_MIN(a, b) <= limit)
		return true;
	kcpx_srccount_put(sc, ref);
	return false;
}

void kcpx_srccount_put(struct kcpx_srccount *sc, const struct kcpx_srcref *ref)
{
	__atomic_sub_fetch(&sc->c[ref->i[0]], 1, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&sc->c[ref->i[1]], 1, __ATOMIC_RELAXED);
}

uint32_t kcpx_srccount_get(const struct kcpx_srccount *sc, const uint8_t key[16])
{
	struct kcpx_srcref r;

	slots_of(sc, key, &r);
	return KCPX_MIN(__atomic_load_n(&sc->c[r.i[0]], __ATOMIC_RELAXED),
			__atomic_load_n(&sc->c[r.i[1]], __ATOMIC_RELAXED));
}
