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
#define KCPX_FECA_BULK_LOSS 0.40  /* ... and for a sender its limits hold back, up to this */
#define KCPX_FECA_BULK_FREE 8u	  /* new segments in a row with nothing behind: not a bulk */

struct kcpx_fecadapt {
	int ds, ps;	       /* the configured shape: ps is the ceiling */
	int parity;	       /* parity shards per group now */
	uint64_t sent0, lost0; /* counts at the start of this window */
	uint32_t loss_ppm;     /* raw loss estimate of the last window with a loss */
	uint64_t changes;      /* times parity moved */
	int applied;	       /* the owner's: parity last handed to the encoder */
	bool arq;	       /* kcpx_fecadapt_set_arq */
	/* kcpx_fecadapt_backlog: new segments sent, of them with more behind (cumulative,
	 * now and at the start of this window), the count when held last grew */
	uint64_t segs, held, segs0, held0, held_at;
	uint32_t bdp, wnd_max; /* kcpx_fecadapt_path */
	bool by_need;	       /* kcpx_fecadapt_set_by_need (on from init) */
	bool bulk;	       /* the last window's new data went out mostly held back */
	int model;	       /* the parity the loss wants when the sender is not held back */
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

/*
 * Parity by need (docs/CONGESTION.md, session 12). Cumulative counts from the sender
 * (kcpx_kcp_backlog_counts): new segments sent, and of them those sent with more held
 * back behind them by the pace, the inflight cap or a window. A window whose new data
 * went out mostly held back is a bulk transfer that fills what the controller allows:
 * every parity shard takes the place of data there, and with windows that span repairs
 * (set_arq) ARQ's resends of the raw loss cost less of the wire than the parity would,
 * up to KCPX_FECA_BULK_LOSS (the estimate with its margin), so it sends none. A sender
 * with nothing held back (small exchanges, an idle link's first bytes) has wire to
 * spare, and a shard rebuilt from parity saves it a round trip: it keeps the parity
 * the loss wants. KCPX_FECA_BULK_FREE new segments in a row with nothing behind them
 * end a bulk at once (its parity comes back without waiting for a window).
 */
void kcpx_fecadapt_backlog(struct kcpx_fecadapt *a, uint64_t segs, uint64_t held);

/* Off: no session counts as a bulk, every parity follows the loss (--fecparity loss:
 * one session that carries an interactive stream next to a download; see
 * docs/CONGESTION.md for what a loss costs that stream without parity). */
void kcpx_fecadapt_set_by_need(struct kcpx_fecadapt *a, bool on);

/*
 * The path in segments: the sender's BDP estimate (0: none yet) and the most its window
 * may span. A bulk leaves its loss to ARQ only while that span holds the repairs: at loss
 * r a round trip's segments hold a hole that needs k resends (the least k with
 * bdp x r^k < 1), and the window must span its first copy's round trip, the k repairs'
 * and one more for the ACKs that tell each loss and for RTOs: k + 2 BDPs. On a 150 ms,
 * 100 Mbit/s path (a BDP of about 1,100-1,400 segments) at 10 % that is more than
 * --maxwnd's 4,096, and the stalls cost more than the parity would.
 */
void kcpx_fecadapt_path(struct kcpx_fecadapt *a, uint32_t bdp, uint32_t wnd_max);

/* Restart the window at these counts without deciding (the controller's STARTUP and
 * DRAIN overfill the queue on purpose: the RTOs that follow are not the path's loss). */
void kcpx_fecadapt_hold(struct kcpx_fecadapt *a, uint64_t sent, uint64_t lost);

/* Fraction of data shards a group of ds data and p parity cannot rebuild at loss r. */
double kcpx_fecadapt_residual(double r, int ds, int p);

/* The least parity in [0, ps] whose residual at loss r is within KCPX_FECA_RESIDUAL. */
int kcpx_fecadapt_choose(double r, int ds, int ps);

#endif
