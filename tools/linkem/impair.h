/* SPDX-License-Identifier: MIT */
/*
 * linkem's impairment model for one direction of the link. Pure logic: a frame's arrival
 * time and length in, a verdict and release time(s) out. No I/O, no clock reads, so the
 * same seed and the same arrivals give the same verdicts.
 *
 * Order of the stages a frame goes through:
 *   loss (random, then Gilbert-Elliott) -> rate limiter with a bounded tail-drop queue
 *   -> one-way delay + jitter (kept in order unless reordering was asked for)
 *   -> reorder (a few frames held back by an extra gap) -> duplicate.
 */
#ifndef LINKEM_IMPAIR_H
#define LINKEM_IMPAIR_H

#include <stdint.h>

struct lk_cfg {
	uint64_t delay_ns;
	uint64_t jitter_ns; /* uniform in [-jitter, +jitter], clamped to >= 0 */
	double loss;	    /* probability, 0..1 */
	int ge_on;	    /* Gilbert-Elliott on */
	double ge_p;	    /* P(good -> bad) per frame */
	double ge_r;	    /* P(bad -> good) per frame */
	double ge_loss_bad;
	double ge_loss_good;
	double reorder; /* probability a frame is held back by reorder_gap_ns */
	uint64_t reorder_gap_ns;
	double dup;		/* probability a frame is sent twice */
	uint64_t rate_bps;	/* 0: unlimited */
	uint64_t limit_bytes;	/* queue bound behind the rate limiter */
	uint32_t limit_packets; /* the same bound in frames (0: none) */
};

struct lk_stats {
	uint64_t rx;
	uint64_t rx_bytes;
	uint64_t fwd;
	uint64_t fwd_bytes;
	uint64_t drop_loss;
	uint64_t drop_queue;
	uint64_t drop_rx; /* the socket's own drops (PACKET_STATISTICS) */
	uint64_t drop_tx;
	uint64_t dup;
	uint64_t reorder;
	uint64_t queued; /* frames held right now */
	uint64_t queued_max;
};

struct lk_dir {
	struct lk_cfg cfg;
	uint64_t rng;
	int ge_bad;
	uint64_t link_free_ns;	  /* when the rate limiter finishes what it holds */
	uint64_t last_release_ns; /* latest in-order release so far */
	uint64_t *depart;	  /* ring: departure times of frames behind the limiter */
	uint32_t depart_head;
	uint32_t depart_len;
	struct lk_stats st;
};

enum lk_verdict { LK_PASS = 0, LK_DROP_LOSS, LK_DROP_QUEUE };

/* Parse "delay=25,jitter=2,loss=1,ge=1/25/100/0,reorder=1/5,dup=0.5,rate=100m,limit=256k". */
int lk_cfg_parse(struct lk_cfg *cfg, const char *spec, char *err, int errlen);
void lk_cfg_format(const struct lk_cfg *cfg, char *buf, int len);

int lk_dir_init(struct lk_dir *d, const struct lk_cfg *cfg, uint64_t seed);

/*
 * Decide the fate of a frame of `len` bytes arriving at `now`. On LK_PASS, *release is when
 * it leaves linkem, and *dup_release is when its copy leaves (0: no copy).
 */
enum lk_verdict lk_dir_admit(struct lk_dir *d, uint64_t now, uint32_t len, uint64_t *release,
			     uint64_t *dup_release);

void lk_dir_free(struct lk_dir *d);

uint64_t lk_rng_next(uint64_t *s);
double lk_rng_unit(uint64_t *s);

#endif
