/* SPDX-License-Identifier: MIT */
/*
 * linksim: a one-way lossy datagram link on a virtual millisecond clock, for unit tests.
 * Header-only (each unit test is one .c file).
 *
 *   sender --linksim_send(now)--> [loss] [dup] [FIFO queue, drained at rate]
 *          [delay + jitter + reorder]
 *          --linksim_recv(now)--> receiver
 *
 * Deterministic: all randomness comes from the seed. Time is a wrapping uint32 in ms;
 * packets are ordered by delivery time with signed 32-bit differences, so a run may
 * cross 2^32. Two links make a path; drive them with linksim_next() to find the next
 * delivery time.
 *
 *	struct linksim ab;
 *	linksim_init(&ab, 42);
 *	ab.delay = 25; ab.loss = 0.05;
 *	linksim_send(&ab, now, buf, len);
 *	while ((n = linksim_recv(&ab, now, buf, sizeof(buf))) >= 0) ...
 *	linksim_free(&ab);
 */
#ifndef KCPX_TESTS_LINKSIM_H
#define KCPX_TESTS_LINKSIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct linksim_pkt {
	uint32_t at;  /* delivery time */
	uint64_t seq; /* tie-break: FIFO among packets due at the same ms */
	uint32_t len;
	uint8_t *data;
};

struct linksim {
	/* settings: change them any time */
	uint32_t delay;	 /* fixed one-way delay, ms */
	uint32_t jitter; /* plus uniform 0..jitter ms per packet (reorders) */
	double loss;	 /* drop probability */
	double dup;	 /* probability a packet is delivered twice */
	double reorder;	 /* probability a packet is held back reorder_ms more */
	uint32_t reorder_ms;
	uint32_t rate;	 /* bytes per ms the link drains (0 = unlimited); change it any time */
	uint32_t qlimit; /* with rate: tail-drop while more than this many bytes queue (0 = none) */
	/* Test hook: return true to drop this packet (idx counts linksim_send calls). */
	bool (*drop_fn)(void *ctx, uint64_t idx, const uint8_t *buf, size_t len);
	void *drop_ctx;

	/* counters */
	uint64_t sent, dropped, duplicated, delivered, bytes;
	uint64_t qdropped; /* of dropped: tail drops at the full queue */
	uint64_t qmax;	   /* most bytes ever queued */

	/* state */
	uint64_t rng, seq;
	uint64_t backlog; /* bytes queued (not serialized yet) at bl_ts */
	uint32_t bl_ts;
	struct linksim_pkt *heap;
	size_t n, cap;
};

static inline uint64_t linksim_rand(struct linksim *ls)
{
	/* splitmix64 */
	uint64_t z = (ls->rng += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* uniform in [0, 1) */
static inline double linksim_unit(struct linksim *ls)
{
	return (double)(linksim_rand(ls) >> 11) * (1.0 / 9007199254740992.0);
}

static inline void linksim_init(struct linksim *ls, uint64_t seed)
{
	memset(ls, 0, sizeof(*ls));
	ls->rng = seed;
}

static inline void linksim_free(struct linksim *ls)
{
	for (size_t i = 0; i < ls->n; i++)
		free(ls->heap[i].data);
	free(ls->heap);
	ls->heap = NULL;
	ls->n = ls->cap = 0;
}

static inline bool linksim_less(const struct linksim_pkt *a, const struct linksim_pkt *b)
{
	int32_t d = (int32_t)(a->at - b->at);
	return d < 0 || (d == 0 && a->seq < b->seq);
}

static inline void linksim_push(struct linksim *ls, uint32_t at, const uint8_t *buf, size_t len)
{
	size_t i;
	if (ls->n == ls->cap) {
		ls->cap = ls->cap ? 2 * ls->cap : 64;
		ls->heap = realloc(ls->heap, ls->cap * sizeof(*ls->heap));
		if (!ls->heap)
			abort();
	}
	struct linksim_pkt p = { .at = at, .seq = ls->seq++, .len = (uint32_t)len };
	p.data = malloc(len ? len : 1);
	if (!p.data)
		abort();
	memcpy(p.data, buf, len);
	for (i = ls->n++; i > 0; i = (i - 1) / 2) {
		size_t parent = (i - 1) / 2;
		if (!linksim_less(&p, &ls->heap[parent]))
			break;
		ls->heap[i] = ls->heap[parent];
	}
	ls->heap[i] = p;
}

/* Bytes queued at now: the backlog drains rate bytes per ms (sub-ms exact in bytes, so
 * a 100 Mbit/s link carries ~9 full datagrams per ms). */
static inline uint64_t linksim_queued(struct linksim *ls, uint32_t now)
{
	int32_t dt = (int32_t)(now - ls->bl_ts);
	if (!ls->backlog) {
		ls->bl_ts = now;
		return 0;
	}
	if (dt > 0) {
		uint64_t out = (uint64_t)dt * ls->rate;
		ls->backlog = ls->backlog > out ? ls->backlog - out : 0;
		ls->bl_ts = now;
	}
	return ls->backlog;
}

static inline uint32_t linksim_when(struct linksim *ls, uint32_t now, size_t len)
{
	uint32_t at = now;
	if (ls->rate) {
		ls->backlog = linksim_queued(ls, now) + len;
		if (ls->backlog > ls->qmax)
			ls->qmax = ls->backlog;
		at += (uint32_t)((ls->backlog + ls->rate - 1) / ls->rate);
	}
	at += ls->delay;
	if (ls->jitter)
		at += (uint32_t)(linksim_rand(ls) % (ls->jitter + 1));
	if (ls->reorder > 0 && linksim_unit(ls) < ls->reorder)
		at += ls->reorder_ms;
	return at;
}

static inline void linksim_send(struct linksim *ls, uint32_t now, const uint8_t *buf, size_t len)
{
	uint64_t idx = ls->sent++;
	if (ls->drop_fn && ls->drop_fn(ls->drop_ctx, idx, buf, len)) {
		ls->dropped++;
		return;
	}
	if (ls->loss > 0 && linksim_unit(ls) < ls->loss) {
		ls->dropped++;
		return;
	}
	if (ls->rate && ls->qlimit && linksim_queued(ls, now) > ls->qlimit) {
		ls->dropped++;
		ls->qdropped++;
		return;
	}
	linksim_push(ls, linksim_when(ls, now, len), buf, len);
	if (ls->dup > 0 && linksim_unit(ls) < ls->dup) {
		ls->duplicated++;
		linksim_push(ls, linksim_when(ls, now, len), buf, len);
	}
}

/* Earliest delivery time; false when nothing is in flight. */
static inline bool linksim_next(const struct linksim *ls, uint32_t *at)
{
	if (!ls->n)
		return false;
	*at = ls->heap[0].at;
	return true;
}

/* Pop one packet due at or before now into buf (truncated to cap). Its length, or -1. */
static inline long linksim_recv(struct linksim *ls, uint32_t now, uint8_t *buf, size_t cap)
{
	struct linksim_pkt top, last;
	size_t i, n;
	if (!ls->n || (int32_t)(ls->heap[0].at - now) > 0)
		return -1;
	top = ls->heap[0];
	last = ls->heap[--ls->n];
	n = ls->n;
	for (i = 0;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && linksim_less(&ls->heap[c + 1], &ls->heap[c]))
			c++;
		if (!linksim_less(&ls->heap[c], &last))
			break;
		ls->heap[i] = ls->heap[c];
		i = c;
	}
	if (n)
		ls->heap[i] = last;
	if (top.len < cap)
		cap = top.len;
	memcpy(buf, top.data, cap);
	free(top.data);
	ls->delivered++;
	ls->bytes += top.len;
	return (long)cap;
}

#endif
