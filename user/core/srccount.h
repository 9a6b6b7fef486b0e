/* SPDX-License-Identifier: MIT */
/*
 * Sessions per source (--persource) counted for a whole process: the engines of one
 * process share one table, without a lock. It is a count-min sketch: two rows of atomic
 * counters, each indexed by its own seeded hash of the source key; a source's count is
 * the smaller of its two counters. So it never reads less than the source holds (the
 * limit is never exceeded), and more only when both of its counters are shared with other
 * busy sources (then it refuses early; with ROWS x slots well above the sessions held,
 * rarely).
 *
 * take() adds one to both counters and keeps it only if the count stays within the limit:
 * two engines taking at once may both refuse near the limit, never both pass beyond it.
 * The caller keeps the returned ref and gives it back with put() when the session ends.
 */
#ifndef KCPX_CORE_SRCCOUNT_H
#define KCPX_CORE_SRCCOUNT_H

#include <stdbool.h>
#include <stdint.h>

struct kcpx_srccount;

struct kcpx_srcref {
	uint32_t i[2]; /* the counters taken, one per row */
};

/* slots per row (> 0); seed: random. 0, -EINVAL or -ENOMEM. */
int kcpx_srccount_new(struct kcpx_srccount **out, unsigned slots, uint32_t seed);
void kcpx_srccount_free(struct kcpx_srccount *sc); /* NULL is fine */
/* One more session for key (kcpx_addr_key, IPv6 cut to /64 by the caller) unless it has
 * limit (> 0) already. Thread-safe. */
bool kcpx_srccount_take(struct kcpx_srccount *sc, const uint8_t key[16], uint32_t limit,
			struct kcpx_srcref *ref);
/* The session of a successful take() ended. Thread-safe. */
void kcpx_srccount_put(struct kcpx_srccount *sc, const struct kcpx_srcref *ref);
/* What the sketch says key holds now (tests, status). */
uint32_t kcpx_srccount_get(const struct kcpx_srccount *sc, const uint8_t key[16]);

#endif
