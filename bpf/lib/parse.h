/* SPDX-License-Identifier: MIT */
/*
 * Bounds-checked header parsing shared by the XDP and TC programs: Ethernet with up to
 * two VLAN tags, IPv4 (with options) or IPv6 (with extension headers), then UDP.
 *
 * The parser only finds headers; it judges nothing about the tunnel. Every pointer it
 * returns has been checked against data_end, so callers may read the header it points
 * to (and only that header) without another check.
 */
#ifndef KCPX_BPF_LIB_PARSE_H
#define KCPX_BPF_LIB_PARSE_H

#include "lib/proto.h"

/* IPv6 extension headers walked before giving up on finding UDP. */
#define KCPX_IPV6_EXT_MAX 6

enum kcpx_parse_res {
	KCPX_P_UDP = 0, /* pi->udp points at a UDP header inside the frame */
	KCPX_P_SHORT,	/* the frame ends inside a header */
	KCPX_P_NON_IP,	/* neither IPv4 nor IPv6 */
	KCPX_P_BAD_IP,	/* invalid IP header, or too many IPv6 extension headers */
	KCPX_P_NON_UDP, /* IP, but the transport is not UDP */
	KCPX_P_FRAG,	/* an IP fragment (first or not) */
};

struct kcpx_pinfo {
	void *l3; /* struct iphdr or struct ipv6hdr */
	struct udphdr *udp;
	__u32 l3_off;	 /* from the frame start */
	__u32 ip_end;	 /* offset just past the IP packet, by its own length fields */
	__u32 frame_len; /* data_end - data */
	__u8 family;	 /* 4 or 6 */
	__u8 vlans;	 /* VLAN tags skipped */
};

static __always_inline int kcpx_parse_eth(void *data, void *data_end, struct kcpx_pinfo *pi,
					  __u16 *proto)
{
	struct ethhdr *eth = data;
	struct vlan_hdr *vh;
	__u32 off = sizeof(*eth);
	__u16 p;

	if ((void *)(eth + 1) > data_end)
		return KCPX_P_SHORT;
	p = bpf_ntohs(eth->h_proto);
	/* Two tags at most: 802.1ad outer (or a second 802.1Q) and 802.1Q inner. */
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (p != ETH_P_8021Q && p != ETH_P_8021AD)
			break;
		vh = data + off;
		if ((void *)(vh + 1) > data_end)
			return KCPX_P_SHORT;
		p = bpf_ntohs(vh->h_vlan_encapsulated_proto);
		off += sizeof(*vh);
		pi->vlans++;
	}
	pi->l3_off = off;
	*proto = p;
	return 0;
}

static __always_inline int kcpx_parse_ipv4(void *data, void *data_end, struct kcpx_pinfo *pi)
{
	struct iphdr *iph = data + pi->l3_off;
	__u32 hlen, tot;

	if ((void *)(iph + 1) > data_end)
		return KCPX_P_SHORT;
	if (iph->version != 4 || iph->ihl < 5)
		return KCPX_P_BAD_IP;
	hlen = iph->ihl * 4;
	tot = bpf_ntohs(iph->tot_len);
	if (tot < hlen)
		return KCPX_P_BAD_IP;
	if (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return KCPX_P_FRAG;
	if (iph->protocol != IPPROTO_UDP)
		return KCPX_P_NON_UDP;
	pi->l3 = iph;
	pi->family = 4;
	pi->ip_end = pi->l3_off + tot;
	pi->udp = (void *)iph + hlen;
	if ((void *)(pi->udp + 1) > data_end)
		return KCPX_P_SHORT;
	return KCPX_P_UDP;
}

static __always_inline int kcpx_parse_ipv6(void *data, void *data_end, struct kcpx_pinfo *pi)
{
	struct ipv6hdr *ip6 = data + pi->l3_off;
	struct ipv6_opt_hdr *oh;
	struct frag_hdr *fh;
	void *pos;
	__u8 nexthdr;

	if ((void *)(ip6 + 1) > data_end)
		return KCPX_P_SHORT;
	if (ip6->version != 6)
		return KCPX_P_BAD_IP;
	pi->l3 = ip6;
	pi->family = 6;
	pi->ip_end = pi->l3_off + sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	nexthdr = ip6->nexthdr;
	pos = ip6 + 1;

#pragma unroll
	for (int i = 0; i < KCPX_IPV6_EXT_MAX; i++) {
		switch (nexthdr) {
		case IPPROTO_UDP:
			pi->udp = pos;
			if ((void *)(pi->udp + 1) > data_end)
				return KCPX_P_SHORT;
			return KCPX_P_UDP;
		case NEXTHDR_HOP:
		case NEXTHDR_ROUTING:
		case NEXTHDR_DEST:
			oh = pos;
			if ((void *)(oh + 1) > data_end)
				return KCPX_P_SHORT;
			nexthdr = oh->nexthdr;
			pos += (oh->hdrlen + 1) * 8;
			break;
		case NEXTHDR_AUTH:
			oh = pos;
			if ((void *)(oh + 1) > data_end)
				return KCPX_P_SHORT;
			nexthdr = oh->nexthdr;
			pos += (oh->hdrlen + 2) * 4;
			break;
		case NEXTHDR_FRAGMENT:
			fh = pos;
			if ((void *)(fh + 1) > data_end)
				return KCPX_P_SHORT;
			/* An atomic fragment (offset 0, no M flag) is a whole packet. */
			if (fh->frag_off & bpf_htons(IP6_OFFSET | IP6_MF))
				return KCPX_P_FRAG;
			nexthdr = fh->nexthdr;
			pos += sizeof(*fh);
			break;
		default:
			return KCPX_P_NON_UDP;
		}
	}
	if (nexthdr == IPPROTO_UDP) {
		pi->udp = pos;
		if ((void *)(pi->udp + 1) > data_end)
			return KCPX_P_SHORT;
		return KCPX_P_UDP;
	}
	return KCPX_P_BAD_IP;
}

/* Find the UDP header of the frame [data, data_end). */
static __always_inline int kcpx_parse(void *data, void *data_end, struct kcpx_pinfo *pi)
{
	__u16 proto = 0;
	int res;

	pi->frame_len = data_end - data;
	res = kcpx_parse_eth(data, data_end, pi, &proto);
	if (res)
		return res;
	if (proto == ETH_P_IP)
		return kcpx_parse_ipv4(data, data_end, pi);
	if (proto == ETH_P_IPV6)
		return kcpx_parse_ipv6(data, data_end, pi);
	return KCPX_P_NON_IP;
}

#endif
