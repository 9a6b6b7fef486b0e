/* SPDX-License-Identifier: MIT */
/*
 * SipHash-2-4 (Aumasson, Bernstein 2012) for BPF programs: the keyed 64-bit tag of kcpx's
 * native header (docs/PROTOCOL.md). Straight-line code for the two message sizes the
 * header uses (16 and 22 bytes), and a generic form over a stack buffer of at most
 * KCPX_SIP_MAX bytes with bounded loops, used by the tests against the reference vectors.
 *
 * The key is two little-endian 64-bit words, k0 = bytes 0..7, k1 = bytes 8..15, and the
 * message is read as little-endian words, as the paper specifies.
 */
#ifndef KCPX_BPF_LIB_SIPHASH_H
#define KCPX_BPF_LIB_SIPHASH_H

#define KCPX_SIP_MAX 64

struct kcpx_sip {
	__u64 v0, v1, v2, v3;
};

static __always_inline __u64 kcpx_sip_rotl(__u64 x, int b)
{
	return (x << b) | (x >> (64 - b));
}

/* A little-endian word from 8 bytes anywhere (stack or checked packet memory). */
static __always_inline __u64 kcpx_sip_le64(const void *p)
{
	__u64 w;

	__builtin_memcpy(&w, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	w = __builtin_bswap64(w);
#endif
	return w;
}

static __always_inline void kcpx_sip_round(struct kcpx_sip *s)
{
	s->v0 += s->v1;
	s->v1 = kcpx_sip_rotl(s->v1, 13);
	s->v1 ^= s->v0;
	s->v0 = kcpx_sip_rotl(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = kcpx_sip_rotl(s->v3, 16);
	s->v3 ^= s->v2;
	s->v0 += s->v3;
	s->v3 = kcpx_sip_rotl(s->v3, 21);
	s->v3 ^= s->v0;
	s->v2 += s->v1;
	s->v1 = kcpx_sip_rotl(s->v1, 17);
	s->v1 ^= s->v2;
	s->v2 = kcpx_sip_rotl(s->v2, 32);
}

static __always_inline void kcpx_sip_init(struct kcpx_sip *s, __u64 k0, __u64 k1)
{
	/* "somepseudorandomlygeneratedbytes" */
	s->v0 = k0 ^ 0x736f6d6570736575ULL;
	s->v1 = k1 ^ 0x646f72616e646f6dULL;
	s->v2 = k0 ^ 0x6c7967656e657261ULL;
	s->v3 = k1 ^ 0x7465646279746573ULL;
}

/* One compression step (c = 2 rounds) over a message word. */
static __always_inline void kcpx_sip_block(struct kcpx_sip *s, __u64 m)
{
	s->v3 ^= m;
	kcpx_sip_round(s);
	kcpx_sip_round(s);
	s->v0 ^= m;
}

/* last: the final word, message length << 56 | the 0..7 trailing bytes (d = 4 rounds). */
static __always_inline __u64 kcpx_sip_final(struct kcpx_sip *s, __u64 last)
{
	kcpx_sip_block(s, last);
	s->v2 ^= 0xff;
	kcpx_sip_round(s);
	kcpx_sip_round(s);
	kcpx_sip_round(s);
	kcpx_sip_round(s);
	return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

/*
 * The native header tag. hdr: the first 16 header bytes (copied to the stack or checked
 * packet memory); fec: the 6 FEC header bytes or NULL when the header carries none.
 */
static __always_inline __u64 kcpx_sip_hdr(__u64 k0, __u64 k1, const __u8 *hdr, const __u8 *fec)
{
	struct kcpx_sip s;
	__u64 last;

	kcpx_sip_init(&s, k0, k1);
	kcpx_sip_block(&s, kcpx_sip_le64(hdr));
	kcpx_sip_block(&s, kcpx_sip_le64(hdr + 8));
	if (!fec)
		return kcpx_sip_final(&s, 16ULL << 56);
	last = 22ULL << 56;
	last |= (__u64)fec[0] | (__u64)fec[1] << 8 | (__u64)fec[2] << 16 | (__u64)fec[3] << 24 |
		(__u64)fec[4] << 32 | (__u64)fec[5] << 40;
	return kcpx_sip_final(&s, last);
}

/* Any length up to KCPX_SIP_MAX; buf must have KCPX_SIP_MAX readable bytes. */
static __always_inline __u64 kcpx_sip_buf(__u64 k0, __u64 k1, const __u8 *buf, __u32 len)
{
	struct kcpx_sip s;
	__u64 last;
	__u32 off = 0;

	if (len > KCPX_SIP_MAX)
		len = KCPX_SIP_MAX;
	kcpx_sip_init(&s, k0, k1);
	for (int i = 0; i < KCPX_SIP_MAX / 8; i++) {
		if (off + 8 > len)
			break;
		kcpx_sip_block(&s, kcpx_sip_le64(buf + off));
		off += 8;
	}
	last = (__u64)(len & 0xff) << 56;
	for (int i = 0; i < 7; i++) {
		if (off + i >= len || off + i >= KCPX_SIP_MAX)
			break;
		last |= (__u64)buf[off + i] << (8 * i);
	}
	return kcpx_sip_final(&s, last);
}

#endif
