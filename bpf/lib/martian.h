/* SPDX-License-Identifier: MIT */
/*
 * Martian addresses on tunnel packets. The kernel's routing input drops these before a
 * UDP socket sees them (a martian source, or ::1 and multicast sources in IPv6); AF_XDP
 * bypasses that check, so the XDP program applies it to what it would steer:
 *
 *   source: 0.0.0.0/8, 127.0.0.0/8 (unless the interface is a loopback), 224.0.0.0/4
 *           (multicast), 240.0.0.0/4 (reserved, and 255.255.255.255);
 *           ::, ::1 (unless loopback), ff00::/8, ::ffff:0:0/96 (IPv4-mapped: never on
 *           the wire, RFC 4291 2.5.5.2);
 *           and, unless the interface is a loopback, what kcpx_martians lists: the
 *           namespace's own addresses and IPv4 subnet broadcasts, kept current by the
 *           daemon (an address added after start counts once the daemon saw it)
 *   destination: 224.0.0.0/4, 255.255.255.255, ff00::/8 (a tunnel datagram is unicast)
 *
 * The list costs one comparison per entry in use, for tunnel packets only.
 */
#ifndef KCPX_BPF_LIB_MARTIAN_H
#define KCPX_BPF_LIB_MARTIAN_H

#include "lib/parse.h"

static __always_inline bool kcpx_martian_v4(__u32 saddr, __u32 daddr, bool loopback,
					    const struct kcpx_martians *m)
{
	__u8 s = bpf_ntohl(saddr) >> 24, d = bpf_ntohl(daddr) >> 24;

	if (s == 0 || (s == 127 && !loopback) || s >= 224)
		return true;
	if ((d >= 224 && d < 240) || daddr == 0xffffffff)
		return true;
	if (!m || loopback)
		return false;
	for (__u32 i = 0; i < KCPX_MARTIAN4_MAX && i < m->n4; i++)
		if (m->v4[i] == saddr)
			return true;
	return false;
}

/* s is one of the listed addresses (the caller read all 16 bytes of it) */
static __always_inline bool kcpx_martian_own6(const __u32 *s, const struct kcpx_martians *m)
{
	for (__u32 i = 0; i < KCPX_MARTIAN6_MAX && i < m->n6; i++)
		if (m->v6[i][0] == s[0] && m->v6[i][1] == s[1] && m->v6[i][2] == s[2] &&
		    m->v6[i][3] == s[3])
			return true;
	return false;
}

static __always_inline bool kcpx_martian_v6(const struct ipv6hdr *ip6, bool loopback,
					    const struct kcpx_martians *m)
{
	const __u32 *s = ip6->saddr.in6_u.u6_addr32;

	if (ip6->saddr.in6_u.u6_addr8[0] == 0xff || ip6->daddr.in6_u.u6_addr8[0] == 0xff)
		return true;
	if (!s[0] && !s[1]) {
		if (s[2] == bpf_htonl(0xffff))
			return true; /* IPv4-mapped */
		if (!s[2] && (s[3] == 0 || (s[3] == bpf_htonl(1) && !loopback)))
			return true;
	}
	return m && !loopback && kcpx_martian_own6(s, m);
}

/* m: kcpx_martians' entry, NULL when there is none */
static __always_inline bool kcpx_martian(const struct kcpx_pinfo *pi, bool loopback,
					 const struct kcpx_martians *m)
{
	if (pi->family == 4) {
		const struct iphdr *iph = pi->l3;

		return kcpx_martian_v4(iph->saddr, iph->daddr, loopback, m);
	}
	return kcpx_martian_v6(pi->l3, loopback, m);
}

#endif
