/* SPDX-License-Identifier: MIT */
/*
 * Martian addresses on tunnel packets. The kernel's routing input drops these before a
 * UDP socket sees them (a martian source, or ::1 and multicast sources in IPv6); AF_XDP
 * bypasses that check, so the XDP program applies it to what it would steer:
 *
 *   source: 0.0.0.0/8, 127.0.0.0/8 (unless the interface is a loopback), 224.0.0.0/4
 *           (multicast), 240.0.0.0/4 (reserved, and 255.255.255.255), the broadcast
 *           address of any of the interface's IPv4 subnets as `kcpx up` found them
 *           (bcast4: up to KCPX_BCAST4_MAX, read at start);
 *           ::, ::1 (unless loopback), ff00::/8, ::ffff:0:0/96 (IPv4-mapped: never on
 *           the wire, RFC 4291 2.5.5.2)
 *   destination: 224.0.0.0/4, 255.255.255.255, ff00::/8 (a tunnel datagram is unicast)
 */
#ifndef KCPX_BPF_LIB_MARTIAN_H
#define KCPX_BPF_LIB_MARTIAN_H

#include "lib/parse.h"

static __always_inline bool kcpx_martian_v4(__u32 saddr, __u32 daddr, bool loopback,
					    const volatile __be32 *bcast)
{
	__u8 s = bpf_ntohl(saddr) >> 24, d = bpf_ntohl(daddr) >> 24;

	if (s == 0 || (s == 127 && !loopback) || s >= 224)
		return true;
#pragma unroll
	for (int i = 0; i < KCPX_BCAST4_MAX; i++)
		if (bcast[i] && saddr == bcast[i])
			return true;
	return (d >= 224 && d < 240) || daddr == 0xffffffff;
}

static __always_inline bool kcpx_martian_v6(const struct ipv6hdr *ip6, bool loopback)
{
	const __u32 *s = ip6->saddr.in6_u.u6_addr32;

	if (ip6->saddr.in6_u.u6_addr8[0] == 0xff || ip6->daddr.in6_u.u6_addr8[0] == 0xff)
		return true;
	if (s[0] || s[1])
		return false;
	if (s[2] == bpf_htonl(0xffff))
		return true; /* IPv4-mapped */
	if (s[2])
		return false;
	return s[3] == 0 || (s[3] == bpf_htonl(1) && !loopback);
}

static __always_inline bool kcpx_martian(const struct kcpx_pinfo *pi, bool loopback,
					 const volatile __be32 *bcast)
{
	if (pi->family == 4) {
		const struct iphdr *iph = pi->l3;

		return kcpx_martian_v4(iph->saddr, iph->daddr, loopback, bcast);
	}
	return kcpx_martian_v6(pi->l3, loopback);
}

#endif
