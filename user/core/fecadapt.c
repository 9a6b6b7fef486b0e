// SPDX-License-Identifier: MIT
/*
 * Adaptive FEC parity (see fecadapt.h for the contract, docs/CONGESTION.md for why).
 * Every input is a count; every output lies in [0, ps]; the model's loops are bounded by
 * ds + ps <= 256 and a fixed number of bisection steps.
 */
#include <stddef.h>

#include "core/fecadapt.h"
#include "core/util.h"

#define LOSS_CAP 0.5 /* no estimate above this */

void kcpx_fecadapt_init(struct kcpx_fecadapt *a, int ds, int ps)
{
	*a = (struct kcpx_fecadapt){
		.ds = ds, .ps = ps, .parity = ps, .applied = ps, .model = ps, .by_need = true
	};
}

/* P(X >= k) for X ~ Binomial(n, r), summed over the tail itself (exact when small). */
static double binom_tail(int n, double r, int k)
{
	double term = 1.0, tail = 0.0, q = 1.0 - r;

	if (k <= 0)
		return 1.0;
	if (k > n || r <= 0.0)
		return 0.0;
	if (q <= 0.0)
		return 1.0;
	for (int i = 0; i < n; i++)
		term *= q; /* P(X = 0) */
	for (int i = 0; i < n; i++) {
		if (i >= k)
			tail += term;
		term *= (double)(n - i) / (double)(i + 1) * r / q; /* P(X = i + 1) */
	}
	return KCPX_MIN(tail + term, 1.0);
}

double kcpx_fecadapt_residual(double r, int ds, int p)
{
	if (r <= 0.0)
		return 0.0;
	if (r > 1.0)
		r = 1.0;
	return r * binom_tail(ds + p - 1, r, p);
}

int kcpx_fecadapt_choose(double r, int ds, int ps)
{
	for (int p = 0; p < ps; p++)
		if (kcpx_fecadapt_residual(r, ds, p) <= KCPX_FECA_RESIDUAL)
			return p;
	return ps;
}

/* The raw loss r whose residual with p parity is q (the residual grows with r). */
static double invert(double q, int ds, int p)
{
	double lo = 0.0, hi = LOSS_CAP;

	if (p == 0)
		return KCPX_MIN(q, LOSS_CAP);
	if (kcpx_fecadapt_residual(hi, ds, p) <= q)
		return hi;
	for (int i = 0; i < 40; i++) {
		double mid = (lo + hi) / 2;

		if (kcpx_fecadapt_residual(mid, ds, p) < q)
			lo = mid;
		else
			hi = mid;
	}
	return hi;
}

void kcpx_fecadapt_set_arq(struct kcpx_fecadapt *a, bool on)
{
	a->arq = on;
	if (!on)
		a->bulk = false;
}

static void set_parity(struct kcpx_fecadapt *a, int p)
{
	if (p != a->parity) {
		a->parity = p;
		a->changes++;
	}
}

void kcpx_fecadapt_backlog(struct kcpx_fecadapt *a, uint64_t segs, uint64_t held)
{
	if (segs < a->segs || held < a->held || held > segs) {
		/* counts that went back (or make no sense): start over from here */
		a->segs0 = a->held_at = segs;
		a->held0 = KCPX_MIN(held, segs);
	}
	if (held != a->held)
		a->held_at = segs;
	a->segs = segs;
	a->held = KCPX_MIN(held, segs);
	if (a->bulk && segs - a->held_at >= KCPX_FECA_BULK_FREE) {
		/* the owner ran out of data: what it sends now waits for nothing */
		a->bulk = false;
		if (a->model > a->parity)
			set_parity(a, a->model);
	}
}

void kcpx_fecadapt_set_by_need(struct kcpx_fecadapt *a, bool on)
{
	a->by_need = on;
	if (!on)
		a->bulk = false;
}

void kcpx_fecadapt_path(struct kcpx_fecadapt *a, uint32_t bdp, uint32_t wnd_max)
{
	a->bdp = bdp;
	a->wnd_max = wnd_max;
}

/* Does the window span ARQ's repairs at loss q (fecadapt.h kcpx_fecadapt_path)? */
static bool arq_spans(const struct kcpx_fecadapt *a, double q, uint64_t more)
{
	double left = a->bdp;
	uint64_t k = 1;

	if (!a->bdp || q >= 1.0)
		return false;
	for (left *= q; left >= 1.0 && k < 64; left *= q)
		k++;
	return (k + more) * a->bdp <= a->wnd_max;
}

void kcpx_fecadapt_hold(struct kcpx_fecadapt *a, uint64_t sent, uint64_t lost)
{
	a->sent0 = sent;
	a->lost0 = lost;
	a->segs0 = a->segs;
	a->held0 = a->held;
}

int kcpx_fecadapt_update(struct kcpx_fecadapt *a, uint64_t sent, uint64_t lost)
{
	uint64_t n, l;
	int want;

	if (sent < a->sent0 || lost < a->lost0) {
		a->sent0 = sent;
		a->lost0 = lost;
	}
	n = sent - a->sent0;
	l = KCPX_MIN(lost - a->lost0, n);
	/* a bulk at no parity judges whole windows only: ARQ carries its loss anyway, and
	 * at 20 % a short window's count ranges from 7 to 45 % */
	if (n < KCPX_FECA_WINDOW &&
	    (!(n >= KCPX_FECA_FAST_SENT && l >= KCPX_FECA_FAST_LOST) || (a->bulk && !a->parity)))
		return a->parity;
	a->sent0 = sent;
	a->lost0 = lost;
	/* a bulk: most of this window's new data went out held back (no new data at all,
	 * only resends: as it was) */
	if (a->segs > a->segs0)
		a->bulk = a->arq && a->by_need && 2 * (a->held - a->held0) >= a->segs - a->segs0;
	a->segs0 = a->segs;
	a->held0 = a->held;

	if (l == 0) {
		/* nothing left for ARQ: try one parity shard less */
		a->model = a->model > 0 ? a->model - 1 : 0;
		want = a->bulk ? 0 : a->model;
	} else {
		double r = invert((double)l / (double)n, a->ds, a->parity);

		a->loss_ppm = (uint32_t)(r * 1e6);
		if (a->arq && r * KCPX_FECA_MARGIN <= KCPX_FECA_ARQ_LOSS)
			want = 0;
		else
			want = kcpx_fecadapt_choose(r * KCPX_FECA_MARGIN, a->ds, a->ps);
		/* with no parity every loss is seen, and a window's count spreads: at 1 %
		 * a window may read 2 % and more, which the model would meet with two
		 * shards; from ARQ's range a loss up to twice its bound takes one step */
		if (a->arq && a->parity == 0 && want > 1 &&
		    r * KCPX_FECA_MARGIN <= 2 * KCPX_FECA_ARQ_LOSS)
			want = 1;
		if (want < a->parity)
			want = a->parity - 1; /* down one step at a time, up at once */
		a->model = want;
		/* a bulk leaves the loss to ARQ at once, up to what ARQ still carries */
		if (a->bulk && r * KCPX_FECA_MARGIN <= KCPX_FECA_BULK_LOSS &&
		    arq_spans(a, r * KCPX_FECA_MARGIN, a->parity ? 2 : 1))
			want = 0;
	}
	set_parity(a, want);
	return a->parity;
}
