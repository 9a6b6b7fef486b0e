// SPDX-License-Identifier: MIT
/*
 * The Toeplitz hash against the published RSS verification vectors (Microsoft's "Verifying
 * the RSS hash calculation", also in Intel's 82599 datasheet), the queue from the
 * indirection table, and the rule that picks a client port for an engine.
 */
#include <arpa/inet.h>
#include <sys/socket.h>

#include "unit.h"
#include "core/rss.h"

static const uint8_t ms_key[40] = {
	0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
	0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
	0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
};

struct vec {
	const char *src, *dst;
	uint16_t sport, dport;
	uint32_t hash2, hash4; /* addresses only; addresses and ports */
};

static const struct vec v4[] = {
	{ "66.9.149.187", "161.142.100.80", 2794, 1766, 0x323e8fc2, 0x51ccc178 },
	{ "199.92.111.2", "65.69.140.83", 14230, 4739, 0xd718262a, 0xc626b0ea },
	{ "24.19.198.95", "12.22.207.184", 12898, 38024, 0xd2d0a5de, 0x5c2b394a },
	{ "38.27.205.30", "209.142.163.6", 48228, 2217, 0x82989176, 0xafc7327f },
	{ "153.39.163.191", "202.188.127.2", 44251, 1303, 0x5d1809c5, 0x10e828a2 },
};

static const struct vec v6[] = {
	{ "3ffe:2501:200:1fff::7", "3ffe:2501:200:3::1", 2794, 1766, 0x2cc18cd5, 0x40207d3d },
	{ "3ffe:501:8::260:97ff:fe40:efab", "ff02::1", 14230, 4739, 0x0f0c461c, 0xdde51bbf },
	{ "3ffe:1900:4545:3:200:f8ff:fe21:67cf", "fe80::200:f8ff:fe21:67cf", 44251, 38024,
	  0x4b61e985, 0x02d1feef },
};

static uint32_t hash_of(int family, const struct vec *v, bool l4)
{
	uint8_t in[36];
	size_t alen = family == AF_INET ? 4 : 16, n = 2 * alen;

	inet_pton(family, v->src, in);
	inet_pton(family, v->dst, in + alen);
	if (l4) {
		in[n++] = (uint8_t)(v->sport >> 8);
		in[n++] = (uint8_t)v->sport;
		in[n++] = (uint8_t)(v->dport >> 8);
		in[n++] = (uint8_t)v->dport;
	}
	return kcpx_rss_toeplitz(ms_key, sizeof(ms_key), in, n);
}

static void test_vectors_v4(void)
{
	for (size_t i = 0; i < sizeof(v4) / sizeof(v4[0]); i++) {
		CHECK_EQ(hash_of(AF_INET, &v4[i], false), v4[i].hash2);
		CHECK_EQ(hash_of(AF_INET, &v4[i], true), v4[i].hash4);
	}
}

static void test_vectors_v6(void)
{
	for (size_t i = 0; i < sizeof(v6) / sizeof(v6[0]); i++) {
		CHECK_EQ(hash_of(AF_INET6, &v6[i], false), v6[i].hash2);
		CHECK_EQ(hash_of(AF_INET6, &v6[i], true), v6[i].hash4);
	}
}

/* Microsoft's key, a 128-entry table over 4 queues, IPv4 hashed with its ports */
static void ms_table(struct kcpx_rss *r)
{
	memcpy(r->key, ms_key, sizeof(ms_key));
	r->key_len = sizeof(ms_key);
	r->indir_len = 128;
	for (unsigned i = 0; i < r->indir_len; i++)
		r->indir[i] = i % 4;
	r->l4_v4 = true;
}

/* a key shorter than input + 4 bytes gives no hash (0, and -EINVAL from _queue) */
static void test_short_key(void)
{
	static struct kcpx_rss r;
	uint8_t a[16] = { 1 }, b[16] = { 2 };

	CHECK_EQ(kcpx_rss_toeplitz(ms_key, 15, a, 12), 0);
	memcpy(r.key, ms_key, sizeof(ms_key));
	r.key_len = 24; /* enough for IPv4's 12 bytes, not IPv6's 36 */
	r.indir_len = 1;
	r.l4_v4 = r.l4_v6 = true;
	CHECK_EQ(kcpx_rss_queue(&r, AF_INET, a, 1, b, 2), 0);
	CHECK(kcpx_rss_queue(&r, AF_INET6, a, 1, b, 2) < 0);
	CHECK(kcpx_rss_queue(&r, AF_UNIX, a, 1, b, 2) < 0);
	r.indir_len = 0;
	CHECK(kcpx_rss_queue(&r, AF_INET, a, 1, b, 2) < 0);
}

/* the queue is indir[hash % size], with the ports only when the NIC hashes them */
static void test_queue(void)
{
	static struct kcpx_rss r;
	uint8_t src[4], dst[4];

	ms_table(&r);
	for (size_t i = 0; i < sizeof(v4) / sizeof(v4[0]); i++) {
		inet_pton(AF_INET, v4[i].src, src);
		inet_pton(AF_INET, v4[i].dst, dst);
		CHECK_EQ(kcpx_rss_queue(&r, AF_INET, src, v4[i].sport, dst, v4[i].dport),
			 (v4[i].hash4 % 128) % 4);
	}
	CHECK(kcpx_rss_ports_count(&r, AF_INET));
	CHECK(!kcpx_rss_ports_count(&r, AF_INET6));
	r.l4_v4 = false;
	CHECK_EQ(kcpx_rss_queue(&r, AF_INET, src, 1, dst, 2),
		 kcpx_rss_queue(&r, AF_INET, src, 3, dst, 4));
	CHECK_EQ(kcpx_rss_queue(&r, AF_INET, src, 1, dst, 2), (v4[4].hash2 % 128) % 4);
}

/*
 * The client's rule: engine k of 2 over 4 queues holds queues k and k + 2. Over a range
 * of local ports each engine finds fitting ones, about half of them, and every port
 * fits exactly one engine; a queue at or above nq (not opened) fits none.
 */
static void test_port_fits(void)
{
	static struct kcpx_rss r;
	uint8_t peer[4] = { 192, 0, 2, 1 }, local[4] = { 198, 51, 100, 7 };
	unsigned fits[2] = { 0, 0 }, none = 0;

	ms_table(&r);
	for (unsigned p = 40000; p < 42000; p++) {
		bool a = kcpx_rss_port_fits(&r, AF_INET, peer, 4000, local, (uint16_t)p, 0, 2, 4);
		bool b = kcpx_rss_port_fits(&r, AF_INET, peer, 4000, local, (uint16_t)p, 1, 2, 4);
		int q = kcpx_rss_queue(&r, AF_INET, peer, 4000, local, (uint16_t)p);

		CHECK(a != b);
		CHECK_EQ(a ? 0 : 1, q % 2);
		fits[a ? 0 : 1]++;
		/* only queues 0 and 1 opened (--queues 2): queues 2 and 3 fit no engine */
		if (!kcpx_rss_port_fits(&r, AF_INET, peer, 4000, local, (uint16_t)p, 0, 2, 2) &&
		    !kcpx_rss_port_fits(&r, AF_INET, peer, 4000, local, (uint16_t)p, 1, 2, 2))
			none++;
	}
	CHECK(fits[0] > 800 && fits[1] > 800);
	CHECK(none > 800 && none < 1200);
}

int main(void)
{
	RUN(test_vectors_v4);
	RUN(test_vectors_v6);
	RUN(test_short_key);
	RUN(test_queue);
	RUN(test_port_fits);
	UNIT_MAIN_END();
}
