/* SPDX-License-Identifier: MIT */
/*
 * Crafting Ethernet frames for the BPF tests: VLAN tags, IPv4 (with options), IPv6 (with
 * extension headers), UDP with a correct checksum. Tests then break the frames by hand at
 * the offsets recorded in struct frame.
 */
#ifndef KCPX_TESTS_FRAMES_H
#define KCPX_TESTS_FRAMES_H

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#define FR_MAX 4096

struct frame_spec {
	int family;	       /* 4 or 6 */
	int vlans;	       /* 0..3 tags, the outer one 802.1ad when two or more */
	const char *src, *dst; /* addresses */
	uint16_t sport, dport; /* host order */
	size_t payload;	       /* bytes of pattern payload */
	uint8_t proto;	       /* 0: UDP (17) */
	int ip_opt_words;      /* IPv4 options, 4-byte words of NOP */
	const uint8_t *v6_ext; /* IPv6 extension header types, in order */
	int v6_next;	       /* how many */
	size_t pad;	       /* Ethernet padding after the IP packet */
};

struct frame {
	uint8_t b[FR_MAX];
	size_t len;
	size_t l3, l4; /* offsets of the IP and UDP headers */
};

static inline uint32_t fr_csum_add(uint32_t sum, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	return sum;
}

static inline uint16_t fr_csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static inline void fr_put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = (uint8_t)v;
}

/* Build the frame; returns its length. */
static inline size_t frame_build(struct frame *f, const struct frame_spec *s)
{
	static const uint8_t dmac[6] = { 0x02, 0, 0, 0, 0, 2 }, smac[6] = { 0x02, 0, 0, 0, 0, 1 };
	uint8_t proto = s->proto ? s->proto : 17, *ip, *u;
	size_t off = 12, l4len = 8 + s->payload, iphl;
	uint32_t sum;

	memset(f, 0, sizeof(*f));
	memcpy(f->b, dmac, 6);
	memcpy(f->b + 6, smac, 6);
	for (int i = 0; i < s->vlans; i++) {
		fr_put16(f->b + off, i == 0 && s->vlans > 1 ? 0x88a8 : 0x8100);
		fr_put16(f->b + off + 2, (uint16_t)(100 + i));
		off += 4;
	}
	fr_put16(f->b + off, s->family == 4 ? 0x0800 : 0x86dd);
	off += 2;
	f->l3 = off;
	ip = f->b + off;
	if (s->family == 4) {
		iphl = 20 + 4 * (size_t)s->ip_opt_words;
		ip[0] = (uint8_t)(0x40 | iphl / 4);
		fr_put16(ip + 2, (uint16_t)(iphl + l4len));
		fr_put16(ip + 4, 0x1234);
		ip[8] = 64;
		ip[9] = proto;
		inet_pton(AF_INET, s->src, ip + 12);
		inet_pton(AF_INET, s->dst, ip + 16);
		memset(ip + 20, 1, iphl - 20); /* NOP options */
		fr_put16(ip + 10, fr_csum_fold(fr_csum_add(0, ip, iphl)));
	} else {
		size_t e = 40;
		uint8_t *nh = ip + 6;

		ip[0] = 0x60;
		ip[7] = 64;
		inet_pton(AF_INET6, s->src, ip + 8);
		inet_pton(AF_INET6, s->dst, ip + 24);
		for (int i = 0; i < s->v6_next; i++) {
			*nh = s->v6_ext[i];
			nh = ip + e;
			if (s->v6_ext[i] == 44) { /* fragment header: 8 bytes, offset 0, no M */
				e += 8;
			} else if (s->v6_ext[i] == 51) { /* AH: (len + 2) * 4 = 16 bytes */
				ip[e + 1] = 2;
				e += 16;
			} else { /* hop-by-hop, routing, destination options: 8 bytes of PadN */
				ip[e + 2] = 1;
				ip[e + 3] = 4;
				e += 8;
			}
		}
		*nh = proto;
		iphl = e;
		fr_put16(ip + 4, (uint16_t)(iphl - 40 + l4len));
	}
	f->l4 = f->l3 + iphl;
	u = f->b + f->l4;
	fr_put16(u, s->sport);
	fr_put16(u + 2, s->dport);
	fr_put16(u + 4, (uint16_t)l4len);
	for (size_t i = 0; i < s->payload; i++)
		u[8 + i] = (uint8_t)(i * 7 + 1);
	/* pseudo-header checksum over addresses, protocol and length */
	if (s->family == 4)
		sum = fr_csum_add(0, ip + 12, 8);
	else
		sum = fr_csum_add(0, ip + 8, 32);
	sum += proto + (uint32_t)l4len;
	sum = fr_csum_add(sum, u, l4len);
	fr_put16(u + 6, fr_csum_fold(sum) ? fr_csum_fold(sum) : 0xffff);
	f->len = f->l4 + l4len + s->pad;
	return f->len;
}

/* The IPv4 header checksum of the frame's IP header is right. */
static inline int frame_ip4_csum_ok(const uint8_t *ip)
{
	return fr_csum_fold(fr_csum_add(0, ip, (size_t)(ip[0] & 0x0f) * 4)) == 0;
}

#endif
