// SPDX-License-Identifier: MIT
/*
 * The AF_XDP backend's frames (core/frame.c): the one-pass checksum against a plain
 * RFC 1071 sum of big-endian 16-bit words, frames built and taken apart again (IPv4, IPv6,
 * VLAN tags, IPv6 extension headers), bad checksums refused, offload-style and absent
 * IPv4 checksums accepted, and every malformed or truncated frame refused.
 */
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "unit.h"
#include "core/frame.h"

static uint32_t rnd_state = 4242;
static uint32_t rnd(void)
{
	return unit_xorshift32(&rnd_state);
}

static void fill(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rnd();
}

/* RFC 1071, the slow way: big-endian words, carries folded as they come. */
static uint16_t ref_sum(const uint8_t *p, size_t n, uint32_t sum)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* Our folded sum as the two bytes it would be stored as, read big-endian. */
static uint16_t as_be(uint16_t folded)
{
	uint8_t b[2];

	memcpy(b, &folded, 2);
	return (uint16_t)(b[0] << 8 | b[1]);
}

static void test_csum_matches_rfc1071(void)
{
	static uint8_t buf[2048], out[2048];

	for (int i = 0; i < 3000; i++) {
		size_t off = rnd() % 16, n = i < 64 ? (size_t)i : rnd() % 1600;
		uint64_t start = i % 3 ? rnd() : 0;
		uint16_t want;

		fill(buf, sizeof(buf));
		/* start folded the reference way too: as big-endian bytes of the folded value */
		want = ref_sum(buf + off, n, as_be(kcpx_csum_fold(start)));
		CHECK_EQ(as_be(kcpx_csum_fold(kcpx_csum_add(start, buf + off, n))), want);
		memset(out, 0, sizeof(out));
		CHECK_EQ(
			as_be(kcpx_csum_fold(kcpx_csum_copy(out + (off ^ 5), buf + off, n, start))),
			want);
		CHECK_MEM(out + (off ^ 5), buf + off, n);
		CHECK_EQ(out[(off ^ 5) + n], 0); /* not a byte more */
	}
	/* all ones: the sum that folds to 0xffff */
	memset(buf, 0xff, 64);
	CHECK_EQ(kcpx_csum_fold(kcpx_csum_add(0, buf, 64)), 0xffff);
}

static const uint8_t mac_a[6] = { 2, 0, 0, 0, 0, 1 }, mac_b[6] = { 2, 0, 0, 0, 0, 2 };
static const uint8_t ip4_a[4] = { 10, 1, 2, 3 }, ip4_b[4] = { 192, 168, 7, 9 };
static const uint8_t ip6_a[16] = { 0x20, 0x01, 0xd, 0xb8, [15] = 1 };
static const uint8_t ip6_b[16] = { 0x20, 0x01, 0xd, 0xb8, [14] = 0xab, [15] = 2 };

static size_t build(uint8_t *f, int family, const uint8_t *payload, uint32_t len)
{
	struct kcpx_frame_hdr h = {
		.family = family,
		.src_mac = mac_a,
		.dst_mac = mac_b,
		.src = family == AF_INET ? ip4_a : ip6_a,
		.dst = family == AF_INET ? ip4_b : ip6_b,
		.sport_be = htons(4000),
		.dport_be = htons(29900),
		.ip_id = 0x1234,
		.tos = 46 << 2,
	};

	return kcpx_frame_build(f, &h, payload, len);
}

/* The UDP checksum of a built frame, checked the slow way (no VLAN, no extensions). */
static bool udp_csum_ok(const uint8_t *f, int family)
{
	const uint8_t *ip = f + 14, *udp = ip + (family == AF_INET ? 20 : 40);
	size_t alen = family == AF_INET ? 4 : 16;
	uint16_t ulen = (uint16_t)(udp[4] << 8 | udp[5]);
	uint32_t s = ref_sum(ip + (family == AF_INET ? 12 : 8), 2 * alen, 0);

	s += IPPROTO_UDP + ulen;
	return ref_sum(udp, ulen, s) == 0xffff;
}

static void test_build_parse_roundtrip(void)
{
	static uint8_t payload[1500], f[1600], got[1500];

	for (int i = 0; i < 400; i++) {
		int family = i & 1 ? AF_INET6 : AF_INET;
		uint32_t len = i < 40 ? (uint32_t)i : rnd() % 1473;
		struct kcpx_frame_view v;
		size_t n;

		fill(payload, len);
		n = build(f, family, payload, len);
		CHECK_EQ(n, 14 + (family == AF_INET ? 20 : 40) + 8 + len);
		CHECK(udp_csum_ok(f, family));
		if (family == AF_INET) {
			CHECK_EQ(ref_sum(f + 14, 20, 0), 0xffff); /* IPv4 header checksum */
			CHECK_EQ(f[14 + 1], 46 << 2);
		}
		CHECK(kcpx_frame_parse(f, (uint32_t)n, &v));
		CHECK_EQ(v.family, family);
		CHECK_EQ(v.len, len);
		CHECK_EQ(ntohs(v.sport_be), 4000);
		CHECK_EQ(ntohs(v.dport_be), 29900);
		CHECK_MEM(v.src, family == AF_INET ? ip4_a : ip6_a, family == AF_INET ? 4 : 16);
		CHECK_MEM(v.dst, family == AF_INET ? ip4_b : ip6_b, family == AF_INET ? 4 : 16);
		CHECK(kcpx_frame_take(&v, got));
		CHECK_MEM(got, payload, len);
		/* trailing padding after the datagram (short frames are padded) is ignored */
		memset(f + n, 0, 20);
		CHECK(kcpx_frame_parse(f, (uint32_t)n + 20, &v));
		CHECK_EQ(v.len, len);
	}
}

static void test_bad_checksum_refused(void)
{
	static uint8_t payload[1400], f[1600], got[1500];

	for (int i = 0; i < 200; i++) {
		int family = i & 1 ? AF_INET6 : AF_INET;
		uint32_t len = 1 + rnd() % 1400;
		struct kcpx_frame_view v;
		size_t n, at;

		fill(payload, len);
		n = build(f, family, payload, len);
		at = n - 1 - rnd() % len; /* a payload byte */
		f[at] ^= (uint8_t)(1 + rnd() % 255);
		CHECK(kcpx_frame_parse(f, (uint32_t)n, &v));
		CHECK(!kcpx_frame_take(&v, got));
	}
}

static void test_offload_and_zero_checksums(void)
{
	static uint8_t payload[600], f[800], got[700];
	struct kcpx_frame_view v;
	size_t n;

	fill(payload, sizeof(payload));
	/* IPv4 checksum 0: none; a wrong payload is accepted, as the kernel would */
	n = build(f, AF_INET, payload, sizeof(payload));
	f[14 + 20 + 6] = f[14 + 20 + 7] = 0;
	f[n - 1] ^= 1;
	CHECK(kcpx_frame_parse(f, (uint32_t)n, &v));
	CHECK(kcpx_frame_take(&v, got));
	/* IPv6 checksum 0 is not "none": refused */
	n = build(f, AF_INET6, payload, sizeof(payload));
	f[14 + 40 + 6] = f[14 + 40 + 7] = 0;
	CHECK(kcpx_frame_parse(f, (uint32_t)n, &v));
	CHECK(!kcpx_frame_take(&v, got));
	/* left to offload: the field holds the folded pseudo-header sum, not complemented */
	for (int family = AF_INET; family <= AF_INET6; family += AF_INET6 - AF_INET) {
		const uint8_t *src = family == AF_INET ? ip4_a : ip6_a;
		const uint8_t *dst = family == AF_INET ? ip4_b : ip6_b;
		size_t alen = family == AF_INET ? 4 : 16, uoff = 14 + (family == AF_INET ? 20 : 40);
		uint32_t s = ref_sum(src, alen, 0);
		uint16_t partial;

		s = ref_sum(dst, alen, s) + IPPROTO_UDP + 8 + sizeof(payload);
		while (s >> 16)
			s = (s & 0xffff) + (s >> 16);
		partial = (uint16_t)s;
		n = build(f, family, payload, sizeof(payload));
		f[uoff + 6] = (uint8_t)(partial >> 8);
		f[uoff + 7] = (uint8_t)partial;
		CHECK(kcpx_frame_parse(f, (uint32_t)n, &v));
		CHECK(kcpx_frame_take(&v, got));
		CHECK_MEM(got, payload, sizeof(payload));
	}
}

/* Insert n bytes at off in a frame of *len bytes. */
static void insert(uint8_t *f, size_t *len, size_t off, const uint8_t *b, size_t n)
{
	memmove(f + off + n, f + off, *len - off);
	memcpy(f + off, b, n);
	*len += n;
}

static void test_vlan_and_extension_headers(void)
{
	static const uint8_t vlan[4] = { 0x81, 0x00, 0x00, 0x07 }, qinq[4] = { 0x88, 0xa8, 0, 9 };
	/* hop-by-hop, 8 bytes: next header UDP, length 0, PadN */
	static const uint8_t hbh[8] = { IPPROTO_UDP, 0, 1, 4, 0, 0, 0, 0 };
	static uint8_t payload[300], f[600], got[400];
	struct kcpx_frame_view v;
	size_t n;

	fill(payload, sizeof(payload));
	n = build(f, AF_INET, payload, sizeof(payload));
	insert(f, &n, 12, vlan, 4);
	CHECK(kcpx_frame_parse(f, (uint32_t)n, &v) && kcpx_frame_take(&v, got));
	insert(f, &n, 12, qinq, 4);
	CHECK(kcpx_frame_parse(f, (uint32_t)n, &v) && kcpx_frame_take(&v, got));
	CHECK_MEM(got, payload, sizeof(payload));
	insert(f, &n, 12, vlan, 4); /* a third tag is one too many */
	CHECK(!kcpx_frame_parse(f, (uint32_t)n, &v));

	n = build(f, AF_INET6, payload, sizeof(payload));
	f[14 + 6] = 0; /* next header: hop-by-hop */
	insert(f, &n, 14 + 40, hbh, 8);
	f[14 + 5] = (uint8_t)(f[14 + 5] + 8); /* payload length grows by the header */
	if (f[14 + 5] < 8)
		f[14 + 4]++;
	CHECK(kcpx_frame_parse(f, (uint32_t)n, &v));
	CHECK(kcpx_frame_take(&v, got));
	CHECK_MEM(got, payload, sizeof(payload));
	f[14 + 40] = 59; /* the extension says "no next header": not UDP */
	CHECK(!kcpx_frame_parse(f, (uint32_t)n, &v));
}

static void test_malformed_refused(void)
{
	static uint8_t payload[200], f[400], g[400];
	struct kcpx_frame_view v;
	size_t n;

	fill(payload, sizeof(payload));
	for (int family = AF_INET; family <= AF_INET6; family += AF_INET6 - AF_INET) {
		n = build(f, family, payload, sizeof(payload));
		for (size_t cut = 0; cut < n; cut++)
			CHECK(!kcpx_frame_parse(f, (uint32_t)cut, &v));
	}
	n = build(f, AF_INET, payload, sizeof(payload));
	memcpy(g, f, n);
	g[14 + 6] |= 0x20; /* more fragments */
	CHECK(!kcpx_frame_parse(g, (uint32_t)n, &v));
	memcpy(g, f, n);
	g[14 + 7] = 1; /* a fragment offset */
	CHECK(!kcpx_frame_parse(g, (uint32_t)n, &v));
	memcpy(g, f, n);
	g[14 + 9] = IPPROTO_TCP;
	CHECK(!kcpx_frame_parse(g, (uint32_t)n, &v));
	memcpy(g, f, n);
	g[14] = 0x44; /* IHL 4 */
	CHECK(!kcpx_frame_parse(g, (uint32_t)n, &v));
	memcpy(g, f, n);
	g[12] = 0x08, g[13] = 0x06; /* ARP */
	CHECK(!kcpx_frame_parse(g, (uint32_t)n, &v));
	memcpy(g, f, n);
	g[14 + 20 + 4] = 0xff; /* UDP length beyond the IP packet */
	CHECK(!kcpx_frame_parse(g, (uint32_t)n, &v));
	memcpy(g, f, n);
	g[14 + 20 + 4] = 0, g[14 + 20 + 5] = 7; /* UDP length below its header */
	CHECK(!kcpx_frame_parse(g, (uint32_t)n, &v));
	n = build(f, AF_INET6, payload, sizeof(payload));
	memcpy(g, f, n);
	g[14 + 4] = 0xff; /* IPv6 payload length beyond the frame */
	CHECK(!kcpx_frame_parse(g, (uint32_t)n, &v));
	memcpy(g, f, n);
	g[14] = 0x40; /* version 4 in an IPv6 ethertype */
	CHECK(!kcpx_frame_parse(g, (uint32_t)n, &v));
}

int main(void)
{
	RUN(test_csum_matches_rfc1071);
	RUN(test_build_parse_roundtrip);
	RUN(test_bad_checksum_refused);
	RUN(test_offload_and_zero_checksums);
	RUN(test_vlan_and_extension_headers);
	RUN(test_malformed_refused);
	UNIT_MAIN_END();
}
