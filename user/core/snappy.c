// SPDX-License-Identifier: MIT
/*
 * Snappy framing format (https://github.com/google/snappy/blob/main/framing_format.txt)
 * with golang/snappy's Writer/Reader limits and choices; blocks via libsnappy's C API.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <snappy-c.h>

#include "core/crc.h"
#include "core/pool.h"
#include "core/snappy.h"
#include "core/util.h"

#define CHUNK_HDR    4
#define CHUNK_CRC    4
#define T_COMPRESSED 0x00
#define T_RAW	     0x01
#define T_PADDING    0xfe
#define T_STREAM_ID  0xff
/* golang: maxEncodedLen(65536) + checksumSize: no chunk may be longer, any type */
#define MAX_CHUNK_LEN (32 + KCPX_SNAPPY_BLOCK + KCPX_SNAPPY_BLOCK / 6 + CHUNK_CRC)

static const uint8_t stream_id[10] = { 0xff, 0x06, 0x00, 0x00, 's', 'N', 'a', 'P', 'p', 'Y' };

static uint32_t masked_crc(const uint8_t *p, size_t n)
{
	uint32_t c = kcpx_crc32c(p, n);

	return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

/* ---------------------------------------------------------------- writer */

struct kcpx_snappy_w {
	bool wrote_header;
};

struct kcpx_snappy_w *kcpx_snappy_w_new(void)
{
	return calloc(1, sizeof(struct kcpx_snappy_w));
}

void kcpx_snappy_w_free(struct kcpx_snappy_w *w)
{
	free(w);
}

size_t kcpx_snappy_w_bound(size_t n)
{
	size_t full = n / KCPX_SNAPPY_BLOCK, rem = n % KCPX_SNAPPY_BLOCK;
	size_t b = sizeof(stream_id) +
		   full * (CHUNK_HDR + CHUNK_CRC + snappy_max_compressed_length(KCPX_SNAPPY_BLOCK));

	if (rem)
		b += CHUNK_HDR + CHUNK_CRC + snappy_max_compressed_length(rem);
	return b;
}

/* One chunk of n <= 65536 bytes. */
static size_t snappy_w_one(const uint8_t *in, size_t n, uint8_t *out)
{
	size_t clen = snappy_max_compressed_length(n), dlen;
	uint8_t type = T_COMPRESSED;

	if (snappy_compress((const char *)in, n, (char *)out + CHUNK_HDR + CHUNK_CRC, &clen) !=
		    SNAPPY_OK ||
	    clen >= n - n / 8) {
		/* not worth it (golang: must save at least 12.5%) */
		type = T_RAW;
		memcpy(out + CHUNK_HDR + CHUNK_CRC, in, n);
		dlen = n;
	} else {
		dlen = clen;
	}
	out[0] = type;
	out[1] = (uint8_t)(CHUNK_CRC + dlen);
	out[2] = (uint8_t)((CHUNK_CRC + dlen) >> 8);
	out[3] = (uint8_t)((CHUNK_CRC + dlen) >> 16);
	kcpx_put_le32(out + CHUNK_HDR, masked_crc(in, n));
	return CHUNK_HDR + CHUNK_CRC + dlen;
}

size_t kcpx_snappy_w_chunk(struct kcpx_snappy_w *w, const uint8_t *in, size_t n, uint8_t *out)
{
	size_t o = 0;

	if (n == 0)
		return 0;
	if (!w->wrote_header) {
		memcpy(out, stream_id, sizeof(stream_id));
		o = sizeof(stream_id);
		w->wrote_header = true;
	}
	while (n > 0) {
		size_t k = KCPX_MIN(n, (size_t)KCPX_SNAPPY_BLOCK);

		o += snappy_w_one(in, k, out + o);
		in += k;
		n -= k;
	}
	return o;
}

/* ---------------------------------------------------------------- reader */

struct kcpx_snappy_r {
	int err;	  /* sticky */
	bool read_header; /* the stream identifier has been seen */
	uint8_t hdr[CHUNK_HDR];
	size_t hdr_have;
	bool in_chunk; /* header parsed, collecting chunk_len bytes */
	uint8_t type;
	size_t chunk_len, chunk_have;
	/* both buffers grow on demand (an idle stream holds none): chunk for a chunk split
	 * across feeds (<= MAX_CHUNK_LEN), out for decoded bytes (<= KCPX_SNAPPY_BLOCK) */
	uint8_t *chunk;
	size_t chunk_cap;
	uint8_t *out; /* [out_i, out_j) unread */
	size_t out_cap, out_i, out_j;
	struct kcpx_pool *pool; /* where both buffers come from, if set; else malloc */
};

struct kcpx_snappy_r *kcpx_snappy_r_new(void)
{
	return calloc(1, sizeof(struct kcpx_snappy_r));
}

void kcpx_snappy_r_free(struct kcpx_snappy_r *r)
{
	if (!r)
		return;
	if (r->pool) {
		kcpx_pool_put(r->pool, r->chunk);
		kcpx_pool_put(r->pool, r->out);
	} else {
		free(r->chunk);
		free(r->out);
	}
	free(r);
}

int kcpx_snappy_r_set_pool(struct kcpx_snappy_r *r, struct kcpx_pool *pool)
{
	if (r->out || r->chunk || kcpx_pool_block(pool) < MAX_CHUNK_LEN)
		return -EINVAL;
	r->pool = pool;
	return 0;
}

/* Makes *buf hold at least need bytes (a pool block, or power-of-two steps from 4 KiB).
   0 or -ENOMEM. */
static int snappy_grow(struct kcpx_snappy_r *r, uint8_t **buf, size_t *cap, size_t need)
{
	size_t c = *cap ? *cap : 4096;
	uint8_t *p;

	if (*buf && need <= *cap)
		return 0;
	if (r->pool) { /* a block holds any chunk (checked in set_pool) */
		*buf = kcpx_pool_get(r->pool);
		if (!*buf)
			return -ENOMEM;
		*cap = kcpx_pool_block(r->pool);
		return 0;
	}
	while (c < need)
		c *= 2;
	p = realloc(*buf, c);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*cap = c;
	return 0;
}

/* Checks a parsed header before its data arrives. 0 or -EBADMSG. */
static int snappy_r_header(struct kcpx_snappy_r *r)
{
	r->type = r->hdr[0];
	r->chunk_len = r->hdr[1] | (size_t)r->hdr[2] << 8 | (size_t)r->hdr[3] << 16;
	if (!r->read_header && r->type != T_STREAM_ID)
		return -EBADMSG;
	r->read_header = true;
	if (r->chunk_len > MAX_CHUNK_LEN)
		return -EBADMSG;
	switch (r->type) {
	case T_COMPRESSED:
		return r->chunk_len < CHUNK_CRC ? -EBADMSG : 0;
	case T_RAW:
		if (r->chunk_len < CHUNK_CRC || r->chunk_len - CHUNK_CRC > KCPX_SNAPPY_BLOCK)
			return -EBADMSG;
		return 0;
	case T_STREAM_ID:
		return r->chunk_len != sizeof(stream_id) - CHUNK_HDR ? -EBADMSG : 0;
	default:
		/* 0x02..0x7f reserved unskippable; 0x80..0xfe skippable (padding included) */
		return r->type <= 0x7f ? -EBADMSG : 0;
	}
}

/* A whole chunk body is at p (chunk_len bytes): decode it into out. */
static int snappy_r_body(struct kcpx_snappy_r *r, const uint8_t *p)
{
	size_t len = r->chunk_len, ulen;
	uint32_t crc;

	switch (r->type) {
	case T_COMPRESSED:
		crc = kcpx_get_le32(p);
		if (snappy_uncompressed_length((const char *)p + CHUNK_CRC, len - CHUNK_CRC,
					       &ulen) != SNAPPY_OK ||
		    ulen > KCPX_SNAPPY_BLOCK)
			return -EBADMSG;
		if (snappy_grow(r, &r->out, &r->out_cap, ulen))
			return -ENOMEM;
		if (snappy_uncompress((const char *)p + CHUNK_CRC, len - CHUNK_CRC, (char *)r->out,
				      &ulen) != SNAPPY_OK)
			return -EBADMSG;
		if (masked_crc(r->out, ulen) != crc)
			return -EBADMSG;
		r->out_i = 0;
		r->out_j = ulen;
		return 0;
	case T_RAW:
		crc = kcpx_get_le32(p);
		ulen = len - CHUNK_CRC;
		if (masked_crc(p + CHUNK_CRC, ulen) != crc)
			return -EBADMSG;
		if (snappy_grow(r, &r->out, &r->out_cap, ulen))
			return -ENOMEM;
		memcpy(r->out, p + CHUNK_CRC, ulen);
		r->out_i = 0;
		r->out_j = ulen;
		return 0;
	case T_STREAM_ID:
		return memcmp(p, stream_id + CHUNK_HDR, len) ? -EBADMSG : 0;
	default:
		return 0; /* skippable */
	}
}

ssize_t kcpx_snappy_r_feed(struct kcpx_snappy_r *r, const uint8_t *in, size_t n)
{
	size_t used = 0;

	if (r->err)
		return r->err;
	while (used < n && r->out_i == r->out_j) {
		size_t k;

		if (!r->in_chunk) {
			k = KCPX_MIN(n - used, CHUNK_HDR - r->hdr_have);
			memcpy(r->hdr + r->hdr_have, in + used, k);
			r->hdr_have += k;
			used += k;
			if (r->hdr_have < CHUNK_HDR)
				break;
			r->err = snappy_r_header(r);
			if (r->err)
				return r->err;
			r->in_chunk = true;
			r->chunk_have = 0;
		}
		if (r->chunk_have == 0 && n - used >= r->chunk_len) {
			/* the whole body is in this feed: decode straight from the input */
			r->err = snappy_r_body(r, in + used);
			used += r->chunk_len;
		} else {
			r->err = snappy_grow(r, &r->chunk, &r->chunk_cap, r->chunk_len);
			if (r->err)
				return r->err;
			k = KCPX_MIN(n - used, r->chunk_len - r->chunk_have);
			memcpy(r->chunk + r->chunk_have, in + used, k);
			r->chunk_have += k;
			used += k;
			if (r->chunk_have < r->chunk_len)
				break;
			r->err = snappy_r_body(r, r->chunk);
		}
		if (r->err)
			return r->err;
		r->in_chunk = false;
		r->hdr_have = 0;
	}
	return (ssize_t)used;
}

ssize_t kcpx_snappy_r_read(struct kcpx_snappy_r *r, uint8_t *out, size_t cap)
{
	size_t k = KCPX_MIN(cap, r->out_j - r->out_i);

	if (k == 0)
		return 0;
	memcpy(out, r->out + r->out_i, k);
	r->out_i += k;
	if (r->out_i == r->out_j)
		r->out_i = r->out_j = 0;
	return (ssize_t)k;
}

size_t kcpx_snappy_r_pending(const struct kcpx_snappy_r *r)
{
	return r->out_j - r->out_i;
}

size_t kcpx_snappy_r_trim(struct kcpx_snappy_r *r)
{
	size_t n = 0;

	if (r->out && r->out_i == r->out_j) {
		n += r->out_cap;
		if (r->pool)
			kcpx_pool_put(r->pool, r->out);
		else
			free(r->out);
		r->out = NULL;
		r->out_cap = 0;
		r->out_i = r->out_j = 0;
	}
	if (r->chunk && !(r->in_chunk && r->chunk_have)) {
		n += r->chunk_cap;
		if (r->pool)
			kcpx_pool_put(r->pool, r->chunk);
		else
			free(r->chunk);
		r->chunk = NULL;
		r->chunk_cap = 0;
	}
	return n;
}
