/* SPDX-License-Identifier: MIT */
/*
 * Parity that follows the loss (adaptive FEC between kcpx ends; docs/CONGESTION.md).
 * I/O-free and clock-free: it reads the sender's cumulative transmission and random-loss
 * counts (kcpx_kcp_loss_counts) and answers how many of the ps configured parity shards
 * each FEC group should carry from the next group on.
 *
 * The group layout never changes: seqid = group * (ds + ps) + index with the configured
 * ds/ps, data shards at 0..ds-1, parity at ds..ds+ps-1. A sender with p < ps parity sends
 * indices ds..ds+p-1 and skips the rest, so to a receiver (kcpx's decoder, the XDP group
 * tracker) a group simply lost its last ps - p parity shards. No field on the wire
 * changes and the receiver learns nothing new: the shape it decodes with is the one it
 * already used. Only the kcpx native protocol uses it (stock kcptun re-tunes its decoder
 * from the flag pattern and would take a short parity run for a new ratio).
 *
 * What the sender sees is the loss that FEC left (a data shard rebuilt by the receiver is
 * acknowledged like one that arrived), so the raw loss rate is inferred from it through
 * the group model: with p parity, a data shard stays lost when it and at least p of the
 * other ds + p - 1 shards of its group are lost. The parity chosen is the least that
 * keeps that residual below KCPX_FECA_RESIDUAL at the estimated loss with a margin.
 * It rises at once when a window shows more loss and falls one step per window without
 * loss, so a clean path ends at no parity and a lossy one never waits for its parity.
 */
#ifndef KCPX_CORE_FECADAPT_H
#define KCPX_CORE_FECADAPT_H

#include <stdbool.h>
#include <stdint.h>

#define KCPX_FECA_WINDOW    2048u /* transmissions per decision */
#define KCPX_FECA_FAST_SENT 256u  /* ... or this many, when they showed FAST_LOST losses */
#define KCPX_FECA_FAST_LOST 16u
#define KCPX_FECA_RESIDUAL  0.005 /* data shards ARQ may have to resend, at most */
#define KCPX_FECA_MARGIN    1.25  /* the loss estimate is taken this much higher */
#define KCPX_FECA_ARQ_LOSS  0.015 /* with windows that span repairs: ARQ's alone up to this */

struct kcpx_fecadapt {
	int ds, ps;	       /* the configured shape: ps is the ceiling */
	int parity;	       /* parity shards per group now */
	uint64_t sent0, lost0; /* counts at the start of this window */
	uint32_t loss_ppm;     /* raw loss estimate of the last window with a loss */
	uint64_t changes;      /* times parity moved */
	int applied;	       /* the owner's: parity last handed to the encoder */
	bool arq;	       /* kcpx_fecadapt_set_arq */
};

/* Starts at the full ps (no evidence yet). ds, ps > 0, ds + ps <= 256. */
void kcpx_fecadapt_init(struct kcpx_fecadapt *a, int ds, int ps);

/*
 * Cumulative counts from the sender (they only grow; a smaller value restarts the
 * window). Returns the parity to use from the next group on, in [0, ps].
 */
int kcpx_fecadapt_update(struct kcpx_fecadapt *a, uint64_t sent, uint64_t lost);

/*
 * The owner's windows span a repair's round trip (between kcpx ends both grow past holes:
 * kcp.h): a loss ARQ repairs then costs a resend, not a stall at the window's edge, so
 * up to KCPX_FECA_ARQ_LOSS (the estimate with its margin) no parity is sent at all. At
 * such loss one shard per group costs about ten times the wire that ARQ's resends do.
 */
void kcpx_fecadapt_set_arq(struct kcpx_fecadapt *a, bool on);

/* Restart the window at these counts without deciding (the controller's STARTUP and
 * DRAIN overfill the queue on purpose: the RTOs that follow are not the path's loss). */
void kcpx_fecadapt_hold(struct kcpx_fecadapt *a, uint64_t sent, uint64_t lost);

/* Fraction of data shards a group of ds data and p parity cannot rebuild at loss r. */
double kcpx_fecadapt_residual(double r, int ds, int p);

/* The least parity in [0, ps] whose residual at loss r is within KCPX_FECA_RESIDUAL. */
int kcpx_fecadapt_choose(double r, int ds, int ps);

#endif
