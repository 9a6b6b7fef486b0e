// SPDX-License-Identifier: MIT
/*
 * kcptun FEC: kcp-go v5.6.1 fec.go/autotune.go behaviour over klauspost/reedsolomon's
 * code, computed with ISA-L (ec_init_tables + ec_encode_data[_update], SIMD).
 *
 * Encoder: instead of caching the ds data shards and encoding at the end of the group, each
 * data shard updates the parity accumulators as it goes out (ec_encode_data_update); a
 * shorter shard simply contributes nothing past its length, which is exactly the zero
 * padding kcp-go applies. So a data shard can be sealed in place right after it is emitted.
 *
 * Decoder: kcp-go's ordered queue, replayed step for step (insertion with duplicate check,
 * the search window around the new shard, the two completion cases, queue limit, expiry,
 * auto-tune), over a pool of fixed 1500-byte entries addressed by index.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/erasure_code.h>

#include "core/fec.h"
#include "core/util.h"

/* ---------------------------------------------------------------- RS code */

/*
 * The code of a ratio (its matrix and encoding tables) depends on (ds, ps) only and never
 * changes once built, so every encoder and decoder of that ratio shares one. Building it
 * costs O((ds + ps) * ds^2) field multiplications, milliseconds at large ratios: without
 * sharing, every new session, every ratio re-tune and every fuzzer execution pays it. The
 * cache holds the most recently used codes, at most RS_CACHE_MAX of them and
 * RS_CACHE_BYTES in all (codes still held by an rs stay alive outside it), so ratios an
 * attacker cycles through cost no more memory than that.
 */
struct rs_code {
	int ds, ps;
	unsigned refs;	   /* the cache's and every rs's, under rs_lock */
	size_t bytes;	   /* matrix + enc_tbls */
	uint8_t *matrix;   /* n x ds */
	uint8_t *enc_tbls; /* 32 * ds * ps, parity rows */
};

#define RS_CACHE_MAX   8
#define RS_CACHE_BYTES (2u << 20)

static pthread_mutex_t rs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rs_code *rs_cache[RS_CACHE_MAX]; /* most recently used first */
static int rs_ncache;

struct kcpx_rs {
	int ds, ps, n;
	struct rs_code *code; /* shared, read-only */
	uint8_t *matrix;      /* code->matrix */
	/* reconstruction scratch, allocated at the first reconstruction (encoders never
	 * need it), with the tables of the last erasure pattern kept */
	uint8_t *sub, *inv, *rows, *dec_tbls;
	int *valid;	   /* ds indices of the shards used as sources */
	int *last_valid;   /* pattern the tables were built for */
	int *missing;	   /* data indices rebuilt */
	int last_nmissing; /* -1: no tables yet */
	uint8_t **src, **dst;
};

/*
 * V * inv(top(V)): its top ds rows are the identity by construction, so only the ps
 * parity rows are computed, and as a matrix product done by ec_encode_data (SIMD, the
 * rows of the inverse as its sources). That was a field multiplication at a time over all
 * ds + ps rows (4.2 million at 128+128, most of fuzz_fec's time and of a new ratio's cost
 * in the daemon).
 */
int kcpx_fec_matrix(int ds, int ps, uint8_t *out)
{
	int n = ds + ps;
	uint8_t *v, *top, *inv, *tbls = NULL;
	uint8_t *rows[KCPX_FEC_MAX_SHARDS], *par[KCPX_FEC_MAX_SHARDS];
	int err = -EINVAL;

	if (ds <= 0 || ps < 0 || n > KCPX_FEC_MAX_SHARDS)
		return -EINVAL;
	v = malloc((size_t)n * ds);
	top = malloc((size_t)ds * ds);
	inv = malloc((size_t)ds * ds);
	if (ps)
		tbls = malloc(32 * (size_t)ds * ps);
	if (!v || !top || !inv || (ps && !tbls)) {
		err = -ENOMEM;
		goto out;
	}
	/* Vandermonde: V[r][c] = r^c, with 0^0 = 1 (klauspost's galExp) */
	for (int r = 0; r < n; r++) {
		uint8_t x = 1;

		for (int c = 0; c < ds; c++) {
			v[r * ds + c] = x;
			x = gf_mul(x, (uint8_t)r);
		}
	}
	memcpy(top, v, (size_t)ds * ds);
	if (gf_invert_matrix(top, inv, ds))
		goto out; /* cannot happen: distinct Vandermonde rows */
	memset(out, 0, (size_t)ds * ds);
	for (int r = 0; r < ds; r++)
		out[r * ds + r] = 1;
	if (ps) {
		/* parity row r, column c: sum over k of V[ds + r][k] * inv[k][c] */
		for (int k = 0; k < ds; k++)
			rows[k] = inv + (size_t)k * ds;
		for (int r = 0; r < ps; r++)
			par[r] = out + (size_t)(ds + r) * ds;
		ec_init_tables(ds, ps, v + (size_t)ds * ds, tbls);
		ec_encode_data(ds, ds, ps, tbls, rows, par);
	}
	err = 0;
out:
	free(v);
	free(top);
	free(inv);
	free(tbls);
	return err;
}

static void rs_code_free(struct rs_code *c)
{
	free(c->matrix);
	free(c->enc_tbls);
	free(c);
}

/* Drop one reference; the caller holds rs_lock. Returns the code if it is to be freed
 * (outside the lock). */
static struct rs_code *rs_code_unref_locked(struct rs_code *c)
{
	return --c->refs == 0 ? c : NULL;
}

static struct rs_code *rs_code_build(int ds, int ps)
{
	struct rs_code *c = calloc(1, sizeof(*c));
	size_t n = (size_t)(ds + ps);

	if (!c)
		return NULL;
	c->ds = ds;
	c->ps = ps;
	c->refs = 1;
	c->bytes = n * (size_t)ds + 32 * (size_t)ds * (size_t)ps;
	c->matrix = malloc(n * (size_t)ds);
	c->enc_tbls = malloc(32 * (size_t)ds * (size_t)ps);
	if (!c->matrix || !c->enc_tbls || kcpx_fec_matrix(ds, ps, c->matrix)) {
		rs_code_free(c);
		return NULL;
	}
	ec_init_tables(ds, ps, c->matrix + (size_t)ds * ds, c->enc_tbls);
	return c;
}

/* The code for (ds, ps), with a reference for the caller. */
static struct rs_code *rs_code_get(int ds, int ps)
{
	struct rs_code *c = NULL, *drop[RS_CACHE_MAX + 1], *built;
	int ndrop = 0;
	size_t total = 0;

	pthread_mutex_lock(&rs_lock);
	for (int i = 0; i < rs_ncache; i++) {
		if (rs_cache[i]->ds == ds && rs_cache[i]->ps == ps) {
			c = rs_cache[i];
			memmove(rs_cache + 1, rs_cache, (size_t)i * sizeof(*rs_cache));
			rs_cache[0] = c;
			c->refs++;
			break;
		}
	}
	pthread_mutex_unlock(&rs_lock);
	if (c)
		return c;

	/* built outside the lock: two threads may build the same code, one is dropped */
	built = rs_code_build(ds, ps);
	if (!built)
		return NULL;
	pthread_mutex_lock(&rs_lock);
	if (rs_ncache == RS_CACHE_MAX)
		drop[ndrop++] = rs_code_unref_locked(rs_cache[--rs_ncache]);
	memmove(rs_cache + 1, rs_cache, (size_t)rs_ncache * sizeof(*rs_cache));
	rs_cache[0] = built;
	rs_ncache++;
	built->refs++; /* the cache's and the caller's */
	for (int i = 0; i < rs_ncache; i++) {
		total += rs_cache[i]->bytes;
		if (i > 0 && total > RS_CACHE_BYTES) {
			/* evict this one and every older one */
			for (int j = rs_ncache - 1; j >= i; j--)
				drop[ndrop++] = rs_code_unref_locked(rs_cache[j]);
			rs_ncache = i;
			break;
		}
	}
	pthread_mutex_unlock(&rs_lock);
	for (int i = 0; i < ndrop; i++)
		if (drop[i])
			rs_code_free(drop[i]);
	return built;
}

static void rs_code_put(struct rs_code *c)
{
	pthread_mutex_lock(&rs_lock);
	c = rs_code_unref_locked(c);
	pthread_mutex_unlock(&rs_lock);
	if (c)
		rs_code_free(c);
}

void kcpx_rs_free(struct kcpx_rs *rs)
{
	if (!rs)
		return;
	if (rs->code)
		rs_code_put(rs->code);
	free(rs->sub);
	free(rs->inv);
	free(rs->rows);
	free(rs->dec_tbls);
	free(rs->valid);
	free(rs->last_valid);
	free(rs->missing);
	free(rs->src);
	free(rs->dst);
	free(rs);
}

struct kcpx_rs *kcpx_rs_new(int ds, int ps)
{
	struct kcpx_rs *rs;

	if (ds <= 0 || ps <= 0 || ds + ps > KCPX_FEC_MAX_SHARDS)
		return NULL;
	rs = calloc(1, sizeof(*rs));
	if (!rs)
		return NULL;
	rs->ds = ds;
	rs->ps = ps;
	rs->n = ds + ps;
	rs->last_nmissing = -1;
	rs->code = rs_code_get(ds, ps);
	if (!rs->code) {
		kcpx_rs_free(rs);
		return NULL;
	}
	rs->matrix = rs->code->matrix;
	return rs;
}

/* The reconstruction scratch, at the first reconstruction. */
static int rs_scratch(struct kcpx_rs *rs)
{
	size_t ds = (size_t)rs->ds, dd = ds * ds;

	if (rs->src)
		return 0;
	rs->sub = malloc(dd);
	rs->inv = malloc(dd);
	rs->rows = malloc(dd);
	rs->dec_tbls = malloc(32 * dd);
	rs->valid = calloc(ds, sizeof(int));
	rs->last_valid = calloc(ds, sizeof(int));
	rs->missing = calloc(ds, sizeof(int));
	rs->dst = calloc((size_t)rs->n, sizeof(uint8_t *));
	rs->src = calloc((size_t)rs->n, sizeof(uint8_t *));
	if (!rs->sub || !rs->inv || !rs->rows || !rs->dec_tbls || !rs->valid || !rs->last_valid ||
	    !rs->missing || !rs->dst || !rs->src) {
		void **all[] = { (void **)&rs->sub,	(void **)&rs->inv,
				 (void **)&rs->rows,	(void **)&rs->dec_tbls,
				 (void **)&rs->valid,	(void **)&rs->last_valid,
				 (void **)&rs->missing, (void **)&rs->dst,
				 (void **)&rs->src };

		for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
			free(*all[i]); /* all or nothing: tried again next time */
			*all[i] = NULL;
		}
		return -ENOMEM;
	}
	return 0;
}

int kcpx_rs_encode(struct kcpx_rs *rs, uint8_t **shards, size_t len)
{
	if (len > INT32_MAX)
		return -EINVAL;
	if (len)
		ec_encode_data((int)len, rs->ds, rs->ps, rs->code->enc_tbls, shards,
			       shards + rs->ds);
	return 0;
}

/* klauspost ReconstructData: the first ds present shards in index order are the sources;
 * rebuild every missing data shard from inv(sub-matrix). */
int kcpx_rs_reconstruct(struct kcpx_rs *rs, uint8_t **shards, const bool *present, size_t len)
{
	int ds = rs->ds, nvalid = 0, nmissing = 0;
	bool same;

	if (len > INT32_MAX)
		return -EINVAL;
	if (rs_scratch(rs))
		return -ENOMEM;
	for (int i = 0; i < rs->n && nvalid < ds; i++)
		if (present[i])
			rs->valid[nvalid++] = i;
	if (nvalid < ds)
		return -EBADMSG;
	for (int i = 0; i < ds; i++)
		if (!present[i])
			rs->missing[nmissing++] = i;
	if (nmissing == 0 || len == 0)
		return 0;

	same = nmissing == rs->last_nmissing &&
	       !memcmp(rs->valid, rs->last_valid, (size_t)ds * sizeof(int));
	if (!same) {
		for (int r = 0; r < ds; r++)
			memcpy(rs->sub + r * ds, rs->matrix + rs->valid[r] * ds, (size_t)ds);
		if (gf_invert_matrix(rs->sub, rs->inv, ds)) {
			rs->last_nmissing = -1;
			return -EBADMSG; /* any ds rows of this code are independent */
		}
		for (int m = 0; m < nmissing; m++)
			memcpy(rs->rows + m * ds, rs->inv + rs->missing[m] * ds, (size_t)ds);
		ec_init_tables(ds, nmissing, rs->rows, rs->dec_tbls);
		memcpy(rs->last_valid, rs->valid, (size_t)ds * sizeof(int));
		rs->last_nmissing = nmissing;
	}
	for (int r = 0; r < ds; r++)
		rs->src[r] = shards[rs->valid[r]];
	for (int m = 0; m < nmissing; m++)
		rs->dst[m] = shards[rs->missing[m]];
	ec_encode_data((int)len, ds, nmissing, rs->dec_tbls, rs->src, rs->dst);
	return 0;
}

bool kcpx_fec_is_fec(const uint8_t *body, size_t len)
{
	uint16_t flag;

	if (len < KCPX_FEC_HDR_PARITY)
		return false;
	flag = kcpx_get_le16(body + 4);
	return flag == KCPX_FEC_DATA || flag == KCPX_FEC_PARITY;
}

/* ---------------------------------------------------------------- encoder */

struct kcpx_fec_enc {
	int ds, ps, n;
	uint32_t paws; /* seqids wrap to 0 here: largest multiple of n <= 0xffffffff */
	uint32_t next;
	int count;	  /* data shards of the current group sent */
	int parity;	  /* parity shards this group gets (<= ps; fixed once it opened) */
	int want;	  /* ... and the next groups (kcpx_fec_enc_set_parity) */
	bool open_push;	  /* one of them carries a KCP PUSH segment ... */
	uint32_t open_ts; /* ... first at this `now` */
	size_t max_rs;	  /* longest RS payload (size field + KCP bytes) in the group */
	size_t headroom, tailroom, stride;
	struct kcpx_rs *rs;
	uint8_t *mem;	     /* 1 + ps buffers of stride bytes */
	uint8_t **parity_rs; /* ps accumulators: parity body + 6 */
};

#define RS_MAX (KCPX_FEC_MAX_BODY - KCPX_FEC_HDR_PARITY)

struct kcpx_fec_enc *kcpx_fec_enc_new(int ds, int ps, size_t headroom, size_t tailroom)
{
	struct kcpx_fec_enc *e;

	if (ds <= 0 || ps <= 0 || ds + ps > KCPX_FEC_MAX_SHARDS || headroom > 4096 ||
	    tailroom > 4096)
		return NULL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->ds = ds;
	e->ps = ps;
	e->parity = e->want = ps;
	e->n = ds + ps;
	e->paws = 0xffffffffu / (uint32_t)e->n * (uint32_t)e->n;
	e->headroom = headroom;
	e->tailroom = tailroom;
	/* round to 64 so each buffer starts cache-aligned */
	e->stride = (headroom + KCPX_FEC_MAX_BODY + tailroom + 63) & ~(size_t)63;
	e->rs = kcpx_rs_new(ds, ps);
	e->parity_rs = calloc((size_t)ps, sizeof(uint8_t *));
	if (!e->rs || !e->parity_rs ||
	    posix_memalign((void **)&e->mem, 64, e->stride * (1 + (size_t)ps))) {
		e->mem = NULL;
		kcpx_fec_enc_free(e);
		return NULL;
	}
	memset(e->mem, 0, e->stride * (1 + (size_t)ps));
	for (int k = 0; k < ps; k++)
		e->parity_rs[k] =
			e->mem + e->stride * (1 + (size_t)k) + headroom + KCPX_FEC_HDR_PARITY;
	return e;
}

void kcpx_fec_enc_free(struct kcpx_fec_enc *e)
{
	if (!e)
		return;
	kcpx_rs_free(e->rs);
	free(e->parity_rs);
	free(e->mem);
	free(e);
}

uint32_t kcpx_fec_enc_next(const struct kcpx_fec_enc *e)
{
	return e->next;
}

void kcpx_fec_enc_set_next(struct kcpx_fec_enc *e, uint32_t id)
{
	/* only between groups: restart the current group at a group boundary */
	e->next = (id % e->paws) / (uint32_t)e->n * (uint32_t)e->n;
	e->count = 0;
	e->open_push = false;
	e->max_rs = 0;
	for (int k = 0; k < e->ps; k++)
		memset(e->parity_rs[k], 0, RS_MAX);
	e->parity = e->want;
}

void kcpx_fec_enc_set_parity(struct kcpx_fec_enc *e, int parity)
{
	e->want = KCPX_MAX(0, KCPX_MIN(parity, e->ps));
	if (e->count == 0)
		e->parity = e->want;
}

int kcpx_fec_enc_parity(const struct kcpx_fec_enc *e)
{
	return e->parity;
}

static void fec_enc_close(struct kcpx_fec_enc *e, kcpx_fec_emit_fn emit, void *user);

/* KCP segments: conv u32 | cmd u8 | frg u8 | wnd u16 | ts | sn | una | len u32 | data */
static bool kcp_has_push(const uint8_t *p, size_t len)
{
	while (len >= 24) {
		uint32_t seglen = kcpx_get_le32(p + 20);

		if (p[4] == 81)
			return true;
		if (seglen > len - 24)
			return false;
		p += 24 + seglen;
		len -= 24 + seglen;
	}
	return false;
}

int kcpx_fec_encode(struct kcpx_fec_enc *e, const uint8_t *kcp, size_t kcp_len, uint32_t now,
		    kcpx_fec_emit_fn emit, void *user, struct kcpx_snmp *snmp)
{
	uint8_t *body = e->mem + e->headroom;
	size_t rs_len = 2 + kcp_len;

	if (kcp_len > KCPX_FEC_MAX_BODY - KCPX_FEC_HDR)
		return -EMSGSIZE;
	kcpx_put_le32(body, e->next++); /* data seqids never wrap (kcp-go markData) */
	kcpx_put_le16(body + 4, KCPX_FEC_DATA);
	kcpx_put_le16(body + 6, (uint16_t)rs_len);
	memcpy(body + KCPX_FEC_HDR, kcp, kcp_len);

	/* the first `parity` rows of the tables are those rows' own: fewer rows, less work */
	if (e->parity > 0)
		ec_encode_data_update((int)rs_len, e->ds, e->parity, e->count,
				      e->rs->code->enc_tbls, body + KCPX_FEC_HDR_PARITY,
				      e->parity_rs);
	if (rs_len > e->max_rs)
		e->max_rs = rs_len;
	if (!e->open_push && kcp_has_push(kcp, kcp_len)) {
		e->open_push = true;
		e->open_ts = now;
	}
	e->count++;
	emit(user, body, KCPX_FEC_HDR + kcp_len, false);

	if (e->count == e->ds)
		fec_enc_close(e, emit, user);
	return 0;
}

bool kcpx_fec_enc_open(const struct kcpx_fec_enc *e, uint32_t *since)
{
	if (!e->open_push)
		return false;
	*since = e->open_ts;
	return true;
}

int kcpx_fec_enc_flush(struct kcpx_fec_enc *e, kcpx_fec_emit_fn emit, void *user)
{
	/* the data seqids left unused are skipped: parity keeps its positions ds..ds+ps-1 */
	int parity = e->parity;

	if (e->count == 0)
		return 0;
	/* the data seqids left unused are skipped: parity keeps its positions ds..ds+ps-1 */
	e->next += (uint32_t)(e->ds - e->count);
	fec_enc_close(e, emit, user);
	return parity;
}

/*
 * Emit the open group's parity at seqids next..next+parity-1 (next is the group start +
 * ds) and skip the seqids of the ps - parity not sent. Data shards never sent contributed
 * nothing to the accumulators: for the code they are all-zero shards, so a group closed
 * early is an ordinary RS group.
 */
static void fec_enc_close(struct kcpx_fec_enc *e, kcpx_fec_emit_fn emit, void *user)
{
	for (int k = 0; k < e->parity; k++) {
		uint8_t *pb = e->parity_rs[k] - KCPX_FEC_HDR_PARITY;
		/* what emit may have written over (sealing in place): RS bytes + trailer */
		size_t dirty = KCPX_MIN(e->max_rs + e->tailroom, (size_t)RS_MAX);

		kcpx_put_le32(pb, e->next);
		kcpx_put_le16(pb + 4, KCPX_FEC_PARITY);
		e->next = (e->next + 1) % e->paws; /* kcp-go markParity: the only wrap point */
		emit(user, pb, KCPX_FEC_HDR_PARITY + e->max_rs, true);
		memset(e->parity_rs[k], 0, dirty);
	}
	for (int k = e->parity; k < e->ps; k++)
		e->next = (e->next + 1) % e->paws;
	e->count = 0;
	e->open_push = false;
	e->max_rs = 0;
	e->parity = e->want;
}

/* ---------------------------------------------------------------- decoder */

#define AUTOTUNE_SAMPLES 258 /* kcp-go maxAutoTuneSamples */

struct fec_pulse {
	bool bit;
	uint32_t seq;
};

struct fec_entry {
	uint32_t seqid;
	uint32_t ts;
	uint16_t len;
	uint16_t flag;
	uint8_t data[KCPX_FEC_MAX_BODY]; /* body; zero-padded in place for reconstruction */
};

struct kcpx_fec_dec {
	int ds, ps, n;
	size_t rxlimit;
	struct kcpx_rs *rs;

	struct fec_entry *ent; /* cap entries */
	uint32_t *free_idx;    /* stack of unused entry indices */
	size_t nfree;
	uint32_t *rx; /* ordered queue of entry indices, by seqid */
	size_t rx_len, cap;

	/* reconstruction: n shard pointers, lengths, presence, ds rebuilt buffers */
	uint8_t **shards;
	size_t *slen;
	bool *present;
	uint8_t *scratch;
	int *recovered; /* data indices rebuilt by the last decode, rec_len bytes each */
	int nrecovered;
	size_t rec_len;
	/* groups closed early (kcpx_fec_dec_set_partial): parity re-encoded for the check */
	bool partial;
	uint8_t *pcheck; /* ps buffers of KCPX_FEC_MAX_BODY */
	uint8_t **enc;	 /* n shard pointers for kcpx_rs_encode */

	struct fec_pulse pulses[AUTOTUNE_SAMPLES];

	/* bounds on the work crafted shards can cause (fec.h) */
	uint32_t credit; /* partial hypotheses banked: a full bank, then one per shard */
	uint32_t last_tune;
	bool tuned;
	uint32_t agree; /* shards in a row whose flag agreed with their index */
	struct kcpx_fec_dec_stats st;
};

static inline int32_t itimediff(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b);
}

/* The re-tunes of every decoder of the process in the current second (fec.h
 * KCPX_FEC_RETUNE_BUDGET), under rs_lock: decoders of different threads share it. */
static uint32_t retune_window;
static unsigned retune_used;

static bool fec_retune_budget(uint32_t now)
{
	bool ok;

	pthread_mutex_lock(&rs_lock);
	/* a new second; or a clock far from the window's (a test's, or wrapped) */
	if (!retune_used || itimediff(now, retune_window) >= 1000 ||
	    itimediff(now, retune_window) < -1000) {
		retune_window = now;
		retune_used = 0;
	}
	ok = retune_used < KCPX_FEC_RETUNE_BUDGET;
	if (ok)
		retune_used++;
	pthread_mutex_unlock(&rs_lock);
	return ok;
}

/* Set ds/ps and everything sized by them; the queue and its entries are kept. */
/*
 * The entry pool grows on demand, doubling up to rxlimit + 1 entries (kcp-go's 3 * n
 * shards in flight, about 1.1 MB at 128+128): a session whose FEC traffic never fills
 * the queue, or a forged datagram announcing a wide ratio, does not pay for all of it.
 */
#define FEC_DEC_CAP0 16

static int fec_dec_grow(struct kcpx_fec_dec *d, size_t cap)
{
	struct fec_entry *ent;
	uint32_t *fr, *rx;

	if (cap <= d->cap)
		return 0;
	ent = realloc(d->ent, cap * sizeof(*ent));
	if (!ent)
		return -ENOMEM;
	d->ent = ent;
	fr = realloc(d->free_idx, cap * sizeof(*fr));
	if (!fr)
		return -ENOMEM;
	d->free_idx = fr;
	rx = realloc(d->rx, cap * sizeof(*rx));
	if (!rx)
		return -ENOMEM;
	d->rx = rx;
	for (size_t i = cap; i > d->cap; i--)
		d->free_idx[d->nfree++] = (uint32_t)(i - 1);
	d->cap = cap;
	return 0;
}

static int fec_dec_config(struct kcpx_fec_dec *d, int ds, int ps)
{
	int n = ds + ps;
	size_t rxlimit = 3 * (size_t)n; /* kcp-go rxFECMulti */
	struct kcpx_rs *rs;
	uint8_t **shards;
	size_t *slen;
	bool *present;
	uint8_t *scratch, *pcheck, **enc;
	int *recovered;

	rs = kcpx_rs_new(ds, ps);
	shards = calloc((size_t)n, sizeof(*shards));
	slen = calloc((size_t)n, sizeof(*slen));
	present = calloc((size_t)n, sizeof(*present));
	scratch = malloc((size_t)ds * KCPX_FEC_MAX_BODY);
	recovered = calloc((size_t)ds, sizeof(int));
	pcheck = malloc((size_t)ps * KCPX_FEC_MAX_BODY);
	enc = calloc((size_t)n, sizeof(*enc));
	if (!rs || !shards || !slen || !present || !scratch || !recovered || !pcheck || !enc)
		goto nomem;
	if (fec_dec_grow(d, KCPX_MIN((size_t)FEC_DEC_CAP0, rxlimit + 1)))
		goto nomem;
	kcpx_rs_free(d->rs);
	free(d->shards);
	free(d->slen);
	free(d->present);
	free(d->scratch);
	free(d->recovered);
	free(d->pcheck);
	free(d->enc);
	d->rs = rs;
	d->shards = shards;
	d->slen = slen;
	d->present = present;
	d->scratch = scratch;
	d->recovered = recovered;
	d->pcheck = pcheck;
	d->enc = enc;
	d->ds = ds;
	d->ps = ps;
	d->n = n;
	d->rxlimit = rxlimit;
	return 0;
nomem:
	kcpx_rs_free(rs);
	free(shards);
	free(slen);
	free(present);
	free(scratch);
	free(recovered);
	free(pcheck);
	free(enc);
	return -ENOMEM;
}

struct kcpx_fec_dec *kcpx_fec_dec_new(int ds, int ps)
{
	struct kcpx_fec_dec *d;

	bool asked = ds > 0 && ps > 0;

	if (!asked)
		ds = ps = 1; /* kcp-go: newFECDecoder(1, 1) when FEC arrives unasked */
	if (ds + ps > KCPX_FEC_MAX_SHARDS)
		return NULL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	if (fec_dec_config(d, ds, ps)) {
		kcpx_fec_dec_free(d);
		return NULL;
	}
	d->credit = KCPX_FEC_PARTIAL_BURST;
	/* our own ratio is trusted until a flag disagrees with it; 1/1 must prove itself */
	d->agree = asked ? UINT32_MAX : 0;
	return d;
}

void kcpx_fec_dec_free(struct kcpx_fec_dec *d)
{
	if (!d)
		return;
	kcpx_rs_free(d->rs);
	free(d->ent);
	free(d->free_idx);
	free(d->rx);
	free(d->shards);
	free(d->slen);
	free(d->present);
	free(d->scratch);
	free(d->recovered);
	free(d->pcheck);
	free(d->enc);
	free(d);
}

void kcpx_fec_dec_ratio(const struct kcpx_fec_dec *d, int *ds, int *ps)
{
	*ds = d->ds;
	*ps = d->ps;
}

void kcpx_fec_dec_stats(const struct kcpx_fec_dec *d, struct kcpx_fec_dec_stats *st)
{
	*st = d->st;
}

void kcpx_fec_dec_set_partial(struct kcpx_fec_dec *d, bool on)
{
	d->partial = on;
}

size_t kcpx_fec_dec_queued(const struct kcpx_fec_dec *d)
{
	return d->rx_len;
}

/* kcp-go autoTune.FindPeriod: distance between the first clean edge into `bit` and the
 * next edge out of it, over the sample ring; -1 when the run is not continuous. */
static int fec_find_period(const struct kcpx_fec_dec *d, bool bit)
{
	struct fec_pulse last = d->pulses[0];
	int idx, left = 0, right = 0;

	for (idx = 1; idx < AUTOTUNE_SAMPLES; idx++) {
		if (last.bit != bit && d->pulses[idx].bit == bit &&
		    last.seq + 1 == d->pulses[idx].seq) {
			left = idx;
			break;
		}
		last = d->pulses[idx];
	}
	last = d->pulses[left];
	for (idx = left + 1; idx < AUTOTUNE_SAMPLES; idx++) {
		if (last.seq + 1 != d->pulses[idx].seq)
			return -1;
		if (last.bit == bit && d->pulses[idx].bit != bit) {
			right = idx;
			break;
		}
		last = d->pulses[idx];
	}
	return right - left;
}

/* Remove rx[first .. first+cnt) and return their entries to the pool. */
static void fec_free_range(struct kcpx_fec_dec *d, size_t first, size_t cnt)
{
	for (size_t i = first; i < first + cnt; i++)
		d->free_idx[d->nfree++] = d->rx[i];
	memmove(d->rx + first, d->rx + first + cnt, (d->rx_len - first - cnt) * sizeof(*d->rx));
	d->rx_len -= cnt;
}

/* Bounds on kcpx_fec_dec_set_partial's work (see fec_dec_group) */
#define PARTIAL_MAX_DS 64
#define PARTIAL_MAX_PS 16
#define PARTIAL_MAX_H  3 /* lost shards a group closed early may have */

/*
 * A group holding parity but fewer than ds shards, read by fec_dec_group into shards[],
 * slen[], present[]: test the hypotheses of kcpx_fec_dec_set_partial, fewest unknowns
 * first. Lost shards precede the unsent ones, so any missing index below the highest data
 * shard present is lost for sure. True when one hypothesis matched all parity: the group
 * is settled and d->recovered names what was rebuilt (possibly nothing).
 */
static bool fec_dec_partial(struct kcpx_fec_dec *d, size_t maxlen)
{
	int ds = d->ds, n = d->n, nmiss = 0, npar = 0, hmin = 0, top = -1;
	int miss[KCPX_FEC_MAX_SHARDS];
	bool pres[KCPX_FEC_MAX_SHARDS];

	if (maxlen == 0)
		return false;
	for (int k = 0; k < ds; k++)
		if (d->present[k])
			top = k;
	for (int k = 0; k < n; k++) {
		if (k >= ds) {
			npar += d->present[k];
			continue;
		}
		if (d->present[k])
			continue;
		miss[nmiss++] = k;
		hmin += k < top;
	}
	/* pad what we have; missing data shards live in scratch, zero until solved */
	for (int k = 0; k < n; k++) {
		if (d->present[k]) {
			memset(d->shards[k] + d->slen[k], 0, maxlen - d->slen[k]);
		} else if (k < ds) {
			d->shards[k] = d->scratch + (size_t)k * KCPX_FEC_MAX_BODY;
			memset(d->shards[k], 0, maxlen);
		}
	}
	for (int h = hmin; h < npar && h <= PARTIAL_MAX_H; h++) {
		bool ok = true;

		if (!d->credit) {
			d->st.partial_skipped++;
			break;
		}
		d->credit--;
		d->st.hypotheses++;

		/* unknowns miss[0..h) get solved; the zero ones count as present */
		memcpy(pres, d->present, (size_t)n * sizeof(bool));
		for (int i = h; i < nmiss; i++)
			pres[miss[i]] = true;
		for (int i = 0; i < h; i++)
			memset(d->shards[miss[i]], 0, maxlen);
		if (h > 0 && kcpx_rs_reconstruct(d->rs, d->shards, pres, maxlen))
			continue;
		for (int k = 0; k < ds; k++)
			d->enc[k] = d->shards[k];
		for (int k = 0; k < d->ps; k++)
			d->enc[ds + k] = d->pcheck + (size_t)k * KCPX_FEC_MAX_BODY;
		kcpx_rs_encode(d->rs, d->enc, maxlen);
		for (int k = ds; k < n && ok; k++)
			ok = !d->present[k] || !memcmp(d->enc[k], d->shards[k], maxlen);
		if (!ok)
			continue;
		for (int i = 0; i < h; i++)
			d->recovered[d->nrecovered++] = miss[i];
		d->rec_len = maxlen;
		return true;
	}
	/* leave the unknowns as zeros: a later call starts over */
	return false;
}

/*
 * After inserting seqid at rx[ins]: look for its group in the window of the queue where
 * its members can be; free the group once all data shards are in (case 1) or once enough
 * shards are in to rebuild the missing data (case 2).
 */
static void fec_dec_group(struct kcpx_fec_dec *d, uint32_t seqid, size_t ins)
{
	uint32_t n = (uint32_t)d->n, off = seqid % n;
	uint32_t shard_begin = seqid - off, shard_end = shard_begin + n - 1;
	size_t search_begin = ins >= off ? ins - off : 0;
	size_t search_end = KCPX_MIN(search_begin + n - 1, d->rx_len - 1);
	size_t numshard = 0, numdata = 0, first = 0, maxlen = 0;
	/* kcpx only: perhaps a group closed early. Tried when parity arrives (it follows the
	 * group's data), for codes small enough that a peer cannot make a shard cost much
	 * more than kcp-go's one rebuild per group. */
	bool partial = d->partial && d->ds <= PARTIAL_MAX_DS && d->ps <= PARTIAL_MAX_PS &&
		       d->ent[d->rx[ins]].flag == KCPX_FEC_PARITY;

	if (!partial && search_end - search_begin + 1 < (size_t)d->ds)
		return;
	/* kcpx only: once a flag has disagreed with our ratio (or with 1/1, taken when FEC
	 * came unasked), rebuild nothing until the flags have agreed with the ratio in use
	 * for two whole groups in a row. Before that it may not be the peer's (a group cut
	 * wrong can even have every flag where ours puts it), and a rebuild would hand KCP
	 * bytes nobody sent; kcp-go rebuilds them all the same. */
	if (d->agree < 2 * n) {
		d->st.miscut++;
		return;
	}
	memset(d->present, 0, n * sizeof(bool));
	for (size_t i = search_begin; i <= search_end; i++) {
		struct fec_entry *e = &d->ent[d->rx[i]];
		uint32_t k;

		if (itimediff(e->seqid, shard_end) > 0)
			break;
		if (itimediff(e->seqid, shard_begin) < 0)
			continue;
		k = e->seqid % n;
		/* a shard whose flag disagrees with its index: the group is cut by a ratio the
		 * peer does not use (not tuned yet, or a re-tune held back); rebuilding it would
		 * hand KCP bytes nobody sent (kcpx only: kcp-go rebuilds it all the same) */
		if ((e->flag == KCPX_FEC_DATA) != (k < (uint32_t)d->ds)) {
			d->st.miscut++;
			return;
		}
		d->shards[k] = e->data + KCPX_FEC_HDR_PARITY;
		d->slen[k] = e->len - KCPX_FEC_HDR_PARITY;
		d->present[k] = true;
		if (numshard++ == 0)
			first = i;
		if (e->flag == KCPX_FEC_DATA)
			numdata++;
		maxlen = KCPX_MAX(maxlen, d->slen[k]);
	}

	if (numdata == (size_t)d->ds) {
		fec_free_range(d, first, numshard); /* case 1: no data shard lost */
		return;
	}
	if (numshard < (size_t)d->ds) {
		if (partial && fec_dec_partial(d, maxlen))
			fec_free_range(d, first, numshard);
		return;
	}
	/* case 2: pad what we have to the longest shard, rebuild missing data shards */
	for (uint32_t k = 0; k < n; k++) {
		if (d->present[k])
			memset(d->shards[k] + d->slen[k], 0, maxlen - d->slen[k]);
		else if (k < (uint32_t)d->ds)
			d->shards[k] = d->scratch + (size_t)k * KCPX_FEC_MAX_BODY;
	}
	d->st.rebuilds++;
	if (maxlen > 0 && !kcpx_rs_reconstruct(d->rs, d->shards, d->present, maxlen)) {
		for (int k = 0; k < d->ds; k++)
			if (!d->present[k])
				d->recovered[d->nrecovered++] = k;
	}
	d->rec_len = maxlen;
	fec_free_range(d, first, numshard);
}

/*
 * kcp-go fecDecoder.decode: returns 0 with d->recovered[0..nrecovered) naming the data
 * indices rebuilt into d->shards[], or -ENOMEM if a re-tune could not allocate (the shard
 * is then not queued, as kcp-go returns early when reedsolomon.New fails).
 */
static int fec_dec_insert(struct kcpx_fec_dec *d, const uint8_t *body, size_t len, uint32_t now,
			  struct kcpx_snmp *snmp)
{
	uint32_t seqid = kcpx_get_le32(body);
	uint16_t flag = kcpx_get_le16(body + 4);
	bool should_tune;
	size_t ins = 0, slot, numexp;
	struct fec_entry *ent;

	d->nrecovered = 0;
	d->pulses[seqid % AUTOTUNE_SAMPLES] = (struct fec_pulse){ flag == KCPX_FEC_DATA, seqid };

	/* a flag at the "wrong" position means the peer's ratio differs: re-tune */
	if ((int)(seqid % (uint32_t)d->n) < d->ds)
		should_tune = flag != KCPX_FEC_DATA;
	else
		should_tune = flag != KCPX_FEC_PARITY;
	d->agree = should_tune ? 0 : d->agree + (d->agree < UINT32_MAX);
	if (should_tune) {
		int ads = fec_find_period(d, true), aps = fec_find_period(d, false);

		if (ads > 0 && aps > 0 && ads < 256 && aps < 256 &&
		    (ads != d->ds || aps != d->ps)) {
			if (ads + aps > KCPX_FEC_MAX_SHARDS)
				return 0; /* klauspost refuses > 256 shards: kcp-go returns */
			if (d->tuned && itimediff(now, d->last_tune) < KCPX_FEC_RETUNE_MS &&
			    itimediff(now, d->last_tune) >= 0) {
				d->st.retunes_held++; /* kcpx: the shard is taken as it is */
			} else if (d->tuned && !fec_retune_budget(now)) {
				d->st.retunes_held++; /* all decoders together: the same */
				d->st.retunes_budget++;
			} else {
				if (fec_dec_config(d, ads, aps))
					return -ENOMEM;
				d->tuned = true;
				d->last_tune = now;
				d->st.retunes++;
			}
		}
	}

	/* ordered insertion, newest first; duplicates dropped */
	for (size_t i = d->rx_len; i-- > 0;) {
		uint32_t s = d->ent[d->rx[i]].seqid;

		if (s == seqid)
			return 0;
		if (itimediff(seqid, s) > 0) {
			ins = i + 1;
			break;
		}
	}
	if (d->nfree == 0 && d->cap <= d->rxlimit)
		(void)fec_dec_grow(d, KCPX_MIN(2 * d->cap, d->rxlimit + 1));
	if (d->nfree == 0) { /* only when growing failed; never index past the pool */
		fec_free_range(d, 0, 1);
		ins = ins ? ins - 1 : 0;
	}
	slot = d->free_idx[--d->nfree];
	ent = &d->ent[slot];
	ent->seqid = seqid;
	ent->flag = flag;
	ent->ts = now;
	ent->len = (uint16_t)len;
	memcpy(ent->data, body, len);
	memmove(d->rx + ins + 1, d->rx + ins, (d->rx_len - ins) * sizeof(*d->rx));
	d->rx[ins] = (uint32_t)slot;
	d->rx_len++;
	if (d->credit < KCPX_FEC_PARTIAL_BURST)
		d->credit++;

	fec_dec_group(d, seqid, ins);

	/* keep the queue bounded: the oldest goes; an unrecovered data shard is counted */
	if (d->rx_len > d->rxlimit) {
		if (d->ent[d->rx[0]].flag == KCPX_FEC_DATA && snmp)
			snmp->FECShortShards++;
		fec_free_range(d, 0, 1);
	}

	/* expiry: leading entries older than 60 s */
	for (numexp = 0; numexp < d->rx_len; numexp++)
		if (itimediff(now, d->ent[d->rx[numexp]].ts) <= KCPX_FEC_EXPIRE)
			break;
	if (numexp)
		fec_free_range(d, 0, numexp);
	return 0;
}

int kcpx_fec_decode(struct kcpx_fec_dec *d, const uint8_t *body, size_t len, uint32_t now,
		    kcpx_fec_recv_fn fn, void *user, struct kcpx_snmp *snmp)
{
	uint16_t flag;
	int calls = 0, err;

	if (len < KCPX_FEC_HDR || len > KCPX_FEC_MAX_BODY) {
		if (snmp)
			snmp->InErrs++;
		return -EBADMSG;
	}
	flag = kcpx_get_le16(body + 4);
	if (flag != KCPX_FEC_DATA && flag != KCPX_FEC_PARITY)
		return -EINVAL;
	if (flag == KCPX_FEC_PARITY && snmp)
		snmp->FECParityShards++;

	err = fec_dec_insert(d, body, len, now, snmp);

	/* kcp-go inputs the data shard whatever the decoder did with it */
	if (flag == KCPX_FEC_DATA) {
		fn(user, body + KCPX_FEC_HDR, len - KCPX_FEC_HDR, false);
		calls++;
	}
	if (err)
		return calls;
	for (int i = 0; i < d->nrecovered; i++) {
		const uint8_t *r = d->shards[d->recovered[i]];
		size_t sz;

		/* a rebuilt shard is [size u16 | KCP bytes | zero padding] */
		if (d->rec_len < 2) {
			if (snmp)
				snmp->FECErrs++;
			continue;
		}
		sz = kcpx_get_le16(r);
		if (sz == 0 && d->partial)
			continue; /* an unsent shard of a group closed early */
		if (sz < 2 || sz > d->rec_len) {
			if (snmp)
				snmp->FECErrs++;
			continue;
		}
		if (snmp)
			snmp->FECRecovered++;
		fn(user, r + 2, sz - 2, true);
		calls++;
	}
	d->nrecovered = 0;
	return calls;
}
