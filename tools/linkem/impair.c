// SPDX-License-Identifier: MIT
/* linkem's per-direction impairment model; see impair.h for the order of the stages. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impair.h"

#define NSEC_PER_MSEC 1000000ULL
#define NSEC_PER_SEC  1000000000ULL

/* splitmix64: small, fast, and good enough for coin flips; one stream per direction. */
uint64_t lk_rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 53 bits. */
double lk_rng_unit(uint64_t *s)
{
	return (double)(lk_rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

static int parse_double(const char *v, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(v, &end);
	if (errno || end == v || *end || !isfinite(*out) || *out < 0)
		return -EINVAL;
	return 0;
}

static int parse_pct(const char *v, double *out)
{
	if (parse_double(v, out) || *out > 100)
		return -EINVAL;
	*out /= 100.0;
	return 0;
}

static int parse_ms(const char *v, uint64_t *ns)
{
	double ms;

	if (parse_double(v, &ms) || ms > 3600e3)
		return -EINVAL;
	*ns = (uint64_t)llround(ms * NSEC_PER_MSEC);
	return 0;
}

/* "100m" -> 100e6 (SI, for bit rates); "256k" with bin=1 -> 262144 (sizes). */
static int parse_scaled(const char *v, int bin, uint64_t *out)
{
	char *end;
	double x, k = bin ? 1024 : 1000;

	errno = 0;
	x = strtod(v, &end);
	if (errno || end == v || !isfinite(x) || x < 0)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		x *= k;
		end++;
		break;
	case 'm':
	case 'M':
		x *= k * k;
		end++;
		break;
	case 'g':
	case 'G':
		x *= k * k * k;
		end++;
		break;
	default:
		break;
	}
	if (*end || x > 1e15)
		return -EINVAL;
	*out = (uint64_t)llround(x);
	return 0;
}

/* Split "a/b/c" into at most n doubles; returns how many were given. */
static int parse_list(char *v, double *out, int n)
{
	int i = 0;
	char *save = NULL, *tok;

	for (tok = strtok_r(v, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		if (i == n || parse_double(tok, &out[i]))
			return -EINVAL;
		i++;
	}
	return i;
}

static int apply_kv(struct lk_cfg *c, char *key, char *val)
{
	double l[4];
	int n;

	if (!strcmp(key, "delay"))
		return parse_ms(val, &c->delay_ns);
	if (!strcmp(key, "jitter"))
		return parse_ms(val, &c->jitter_ns);
	if (!strcmp(key, "loss"))
		return parse_pct(val, &c->loss);
	if (!strcmp(key, "dup"))
		return parse_pct(val, &c->dup);
	if (!strcmp(key, "rate"))
		return parse_scaled(val, 0, &c->rate_bps);
	if (!strcmp(key, "limit")) {
		size_t n = strlen(val);

		if (n > 1 && val[n - 1] == 'p') {
			uint64_t p;

			val[n - 1] = 0;
			if (parse_scaled(val, 0, &p) || !p || p > 1000000)
				return -EINVAL;
			c->limit_packets = (uint32_t)p;
			return 0;
		}
		return parse_scaled(val, 1, &c->limit_bytes);
	}
	if (!strcmp(key, "reorder")) {
		n = parse_list(val, l, 2);
		if (n < 1 || l[0] > 100 || (n == 2 && l[1] > 60e3))
			return -EINVAL;
		c->reorder = l[0] / 100.0;
		if (n == 2)
			c->reorder_gap_ns = (uint64_t)llround(l[1] * NSEC_PER_MSEC);
		return 0;
	}
	if (!strcmp(key, "ge")) {
		/* p/r[/loss in bad[/loss in good]], all in percent */
		n = parse_list(val, l, 4);
		if (n < 2)
			return -EINVAL;
		if (n < 3)
			l[2] = 100;
		if (n < 4)
			l[3] = 0;
		for (int i = 0; i < 4; i++)
			if (l[i] > 100)
				return -EINVAL;
		c->ge_on = 1;
		c->ge_p = l[0] / 100.0;
		c->ge_r = l[1] / 100.0;
		c->ge_loss_bad = l[2] / 100.0;
		c->ge_loss_good = l[3] / 100.0;
		return 0;
	}
	return -ENOENT;
}

int lk_cfg_parse(struct lk_cfg *cfg, const char *spec, char *err, int errlen)
{
	char *buf, *save = NULL, *tok;
	int ret = 0;

	buf = strdup(spec);
	if (!buf)
		return -ENOMEM;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');

		if (!eq) {
			snprintf(err, errlen, "'%s': expected key=value", tok);
			ret = -EINVAL;
			break;
		}
		*eq = 0;
		ret = apply_kv(cfg, tok, eq + 1);
		if (ret == -ENOENT) {
			snprintf(err, errlen, "unknown key '%s'", tok);
			break;
		}
		if (ret) {
			snprintf(err, errlen, "bad value for '%s': '%s'", tok, eq + 1);
			break;
		}
	}
	free(buf);
	return ret;
}

void lk_cfg_format(const struct lk_cfg *c, char *buf, int len)
{
	snprintf(buf, len,
		 "delay=%.3fms jitter=%.3fms loss=%g%% ge=%s%g/%g/%g/%g reorder=%g%%/%.3fms "
		 "dup=%g%% rate=%llubit/s limit=%lluB/%up",
		 c->delay_ns / 1e6, c->jitter_ns / 1e6, c->loss * 100,
		 c->ge_on ? "" : "off:", c->ge_p * 100, c->ge_r * 100, c->ge_loss_bad * 100,
		 c->ge_loss_good * 100, c->reorder * 100, c->reorder_gap_ns / 1e6, c->dup * 100,
		 (unsigned long long)c->rate_bps, (unsigned long long)c->limit_bytes,
		 c->limit_packets);
}

int lk_dir_init(struct lk_dir *d, const struct lk_cfg *cfg, uint64_t seed)
{
	memset(d, 0, sizeof(*d));
	d->cfg = *cfg;
	if (d->cfg.reorder > 0 && !d->cfg.reorder_gap_ns)
		d->cfg.reorder_gap_ns = 5 * NSEC_PER_MSEC;
	/* default queue: 50 ms at the configured rate, at least 64 full frames */
	if (d->cfg.rate_bps && !d->cfg.limit_bytes && !d->cfg.limit_packets) {
		d->cfg.limit_bytes = d->cfg.rate_bps / 8 / 20;
		if (d->cfg.limit_bytes < 64 * 1514)
			d->cfg.limit_bytes = 64 * 1514;
	}
	if (d->cfg.rate_bps && d->cfg.limit_packets) {
		d->depart = calloc(d->cfg.limit_packets, sizeof(*d->depart));
		if (!d->depart)
			return -ENOMEM;
	}
	d->rng = seed;
	/* Warm the generator so nearby seeds do not start on related values. */
	for (int i = 0; i < 4; i++)
		lk_rng_next(&d->rng);
	return 0;
}

void lk_dir_free(struct lk_dir *d)
{
	free(d->depart);
	d->depart = NULL;
}

static int lose(struct lk_dir *d)
{
	const struct lk_cfg *c = &d->cfg;

	if (c->loss > 0 && lk_rng_unit(&d->rng) < c->loss)
		return 1;
	if (!c->ge_on)
		return 0;
	/* transition first, then draw in the new state */
	if (d->ge_bad) {
		if (lk_rng_unit(&d->rng) < c->ge_r)
			d->ge_bad = 0;
	} else {
		if (lk_rng_unit(&d->rng) < c->ge_p)
			d->ge_bad = 1;
	}
	return lk_rng_unit(&d->rng) < (d->ge_bad ? c->ge_loss_bad : c->ge_loss_good);
}

/*
 * Rate limiter as a virtual clock: link_free_ns is when the link has sent everything
 * admitted so far, so the backlog in bytes is (link_free - now) * rate. No queue of frames
 * is needed for the byte bound; the frame bound keeps a ring of departure times.
 * Returns the time the frame has left the bottleneck, or 0 for a tail drop.
 */
static uint64_t rate_admit(struct lk_dir *d, uint64_t now, uint32_t len)
{
	const struct lk_cfg *c = &d->cfg;
	uint64_t start, backlog = 0, tx_ns;

	if (d->link_free_ns > now)
		backlog = (uint64_t)((double)(d->link_free_ns - now) * c->rate_bps / 8e9);
	if (c->limit_bytes && backlog + len > c->limit_bytes)
		return 0;
	if (c->limit_packets) {
		while (d->depart_len && d->depart[d->depart_head] <= now) {
			d->depart_head = (d->depart_head + 1) % c->limit_packets;
			d->depart_len--;
		}
		if (d->depart_len >= c->limit_packets)
			return 0;
	}
	start = d->link_free_ns > now ? d->link_free_ns : now;
	tx_ns = (uint64_t)((double)len * 8e9 / c->rate_bps);
	d->link_free_ns = start + (tx_ns ? tx_ns : 1);
	if (c->limit_packets) {
		d->depart[(d->depart_head + d->depart_len) % c->limit_packets] = d->link_free_ns;
		d->depart_len++;
	}
	return d->link_free_ns;
}

enum lk_verdict lk_dir_admit(struct lk_dir *d, uint64_t now, uint32_t len, uint64_t *release,
			     uint64_t *dup_release)
{
	const struct lk_cfg *c = &d->cfg;
	uint64_t t = now;
	int64_t j;

	*dup_release = 0;
	if (lose(d))
		return LK_DROP_LOSS;
	if (c->rate_bps) {
		t = rate_admit(d, now, len);
		if (!t)
			return LK_DROP_QUEUE;
	}
	t += c->delay_ns;
	if (c->jitter_ns) {
		j = (int64_t)(lk_rng_unit(&d->rng) * (2.0 * c->jitter_ns)) - (int64_t)c->jitter_ns;
		t = (j < 0 && (uint64_t)-j > t) ? 0 : t + j;
		if (t < now)
			t = now;
	}
	/* jitter alone never reorders: nothing leaves before an earlier frame did */
	if (t < d->last_release_ns)
		t = d->last_release_ns;
	d->last_release_ns = t;
	if (c->reorder > 0 && lk_rng_unit(&d->rng) < c->reorder) {
		/* held back, later frames overtake it; not part of the in-order chain */
		t += c->reorder_gap_ns;
		d->st.reorder++;
	}
	*release = t;
	if (c->dup > 0 && lk_rng_unit(&d->rng) < c->dup) {
		*dup_release = t + 1;
		d->st.dup++;
	}
	return LK_PASS;
}
