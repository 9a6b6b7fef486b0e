/* SPDX-License-Identifier: MIT */
/*
 * Per-source token buckets, I/O-free: `rate` events per second per source key, burst as
 * many. The answers are those of kcpx_rl_spend() of kcpx_native.h, the bucket the XDP
 * handshake check runs, at millisecond resolution (the engines' clock): test_native holds
 * them to the same answers.
 *
 * One table may serve several threads at once (a process's engines share their admission
 * limits, so the limits hold per process): each slot is one 64-bit word changed by
 * compare-and-swap, no lock. The word holds the bucket as GCRA does, the time at which it
 * will be full again, and a tag of the key.
 *
 * The table is a fixed array indexed by a seeded hash of the key. A key that finds its
 * slot held by another key starts over with a full bucket: many sources can only make
 * the limit looser for others, never stricter, and memory stays what _new allocated.
 */
#ifndef KCPX_CORE_RATELIMIT_H
#define KCPX_CORE_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct kcpx_ratelimit;

/* slots: table size (> 0); rate: per second (> 0, < 2^24); seed: random. 0 or
 * -EINVAL/-ENOMEM. */
int kcpx_ratelimit_new(struct kcpx_ratelimit **out, unsigned slots, uint32_t rate, uint32_t seed);
void kcpx_ratelimit_free(struct kcpx_ratelimit *rl); /* NULL is fine */
/* May key (an address, kcpx_addr_key) have one more event at now_ns? Spends a token if so.
 * Safe to call from several threads at once. */
bool kcpx_ratelimit_allow(struct kcpx_ratelimit *rl, const uint8_t key[16], uint64_t now_ns);

#endif
