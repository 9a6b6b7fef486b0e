// SPDX-License-Identifier: (GPL-2.0 OR MIT)
/*
 * kcpx's fast path, one object with two entry points:
 *
 *   kcpx_xdp_steer   XDP on the tunnel interface. Tunnel packets go to the AF_XDP socket
 *                    of their RX queue; everything else goes to the kernel untouched.
 *   kcpx_tc_egress   cls_bpf on clsact egress: DSCP marking and counters for tunnel
 *                    packets the kernel's stack sends (the UDP fallback path; AF_XDP TX
 *                    bypasses the qdisc layer, so the backend marks those itself).
 *
 * A packet is the tunnel's when, on a server, its UDP destination port is the listen port
 * (or in the listen range);
 * on a client, when it goes to one of the local ports the daemon registered in kcpx_lports
 * and comes from the server address and port registered with that port. Anything the parser cannot prove to be a tunnel
 * packet is passed: the kernel validates and counts it as it always does.
 *
 * With KCPX_CFG_F_NATIVE (kcpx up --proto kcpx|auto), a well-formed tunnel packet then
 * meets the native protocol's checks (bpf/lib/native.h, docs/PROTOCOL.md §6) before it is
 * steered: forged, replayed and stale packets, unneeded FEC parity and duplicate shards
 * die here, counted by reason in kcpx_nat_stats (and in total in drop_native).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "kcpx_bpf.h"
#include "lib/parse.h"
#include "lib/native.h"
#include "lib/martian.h"

const volatile struct kcpx_bpf_cfg kcpx_cfg = {
	.min_payload = 1,
	.max_payload = 1500,
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, KCPX_XSK_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} kcpx_xsks SEC(".maps");

/* Client: the local UDP ports (network order) whose traffic from their server is the
 * tunnel's, each with that server's address and port. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KCPX_LPORTS_MAX);
	__type(key, __be16);
	__type(value, struct kcpx_lport);
} kcpx_lports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kcpx_xdp_stats);
} kcpx_xdp_stats SEC(".maps");

/* The host's own addresses and subnet broadcasts: martian sources (lib/martian.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kcpx_martians);
} kcpx_martians SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kcpx_tc_stats);
} kcpx_tc_stats SEC(".maps");

/* Written by userspace only; declared here so they are pinned with BTF beside the rest. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kcpx_xsk_stats);
} kcpx_xsk_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KCPX_XSK_MAX_QUEUES);
	__type(key, __u32);
	__type(value, struct kcpx_xsk_queue);
} kcpx_xsk_queues SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kcpx_snmp);
} kcpx_snmp SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kcpx_info);
} kcpx_info SEC(".maps");

/* Is the packet's source (src) or destination address the server of lport lp? */
static __always_inline bool kcpx_addr_is_peer(const struct kcpx_pinfo *pi,
					      const struct kcpx_lport *lp, bool src)
{
	if (pi->family != lp->family)
		return false;
	if (pi->family == 4) {
		struct iphdr *iph = pi->l3;
		__u32 want;

		__builtin_memcpy(&want, lp->peer_addr, 4); /* both in network order */
		return (src ? iph->saddr : iph->daddr) == want;
	} else {
		struct ipv6hdr *ip6 = pi->l3;
		const __u8 *a = src ? ip6->saddr.in6_u.u6_addr8 : ip6->daddr.in6_u.u6_addr8;

#pragma unroll
		for (int i = 0; i < 16; i++)
			if (a[i] != lp->peer_addr[i])
				return false;
		return true;
	}
}

/* Server with a specific --listen: is the packet addressed to it? */
static __always_inline bool kcpx_addr_is_local(const struct kcpx_pinfo *pi)
{
	if (pi->family != kcpx_cfg.local_family)
		return false;
	if (pi->family == 4) {
		struct iphdr *iph = pi->l3;
		__u32 want = kcpx_cfg.local_addr[0] | kcpx_cfg.local_addr[1] << 8 |
			     kcpx_cfg.local_addr[2] << 16 | (__u32)kcpx_cfg.local_addr[3] << 24;

		return iph->daddr == want;
	} else {
		struct ipv6hdr *ip6 = pi->l3;
		const __u8 *a = ip6->daddr.in6_u.u6_addr8;

#pragma unroll
		for (int i = 0; i < 16; i++)
			if (a[i] != kcpx_cfg.local_addr[i])
				return false;
		return true;
	}
}

/* Is port (network order) one a server listens on? */
static __always_inline bool kcpx_is_listen_port(__be16 port)
{
	__u16 p;

	if (!kcpx_cfg.port_last)
		return port == kcpx_cfg.port;
	p = bpf_ntohs(port);
	return p >= kcpx_cfg.port_first && p <= kcpx_cfg.port_last;
}

/* Is this received packet addressed to the tunnel's port(s)? */
static __always_inline bool kcpx_is_tunnel_rx(const struct kcpx_pinfo *pi)
{
	struct udphdr *udp = pi->udp;
	__be16 dport = udp->dest;
	struct kcpx_lport *lp;

	if (kcpx_cfg.role == KCPX_BPF_ROLE_SERVER)
		return kcpx_is_listen_port(dport);
	if (kcpx_cfg.role != KCPX_BPF_ROLE_CLIENT)
		return false;
	lp = bpf_map_lookup_elem(&kcpx_lports, &dport);
	return lp && udp->source == lp->peer_port && kcpx_addr_is_peer(pi, lp, true);
}

/* Is this packet, about to leave, the tunnel's? The receive rule with the ends swapped. */
static __always_inline bool kcpx_is_tunnel_tx(const struct kcpx_pinfo *pi)
{
	struct udphdr *udp = pi->udp;
	__be16 sport = udp->source;
	struct kcpx_lport *lp;

	if (kcpx_cfg.role == KCPX_BPF_ROLE_SERVER)
		return kcpx_is_listen_port(sport);
	if (kcpx_cfg.role != KCPX_BPF_ROLE_CLIENT)
		return false;
	lp = bpf_map_lookup_elem(&kcpx_lports, &sport);
	return lp && udp->dest == lp->peer_port && kcpx_addr_is_peer(pi, lp, false);
}

/* The native checks on a tunnel packet's payload: true when it is to be dropped. */
static __always_inline bool kcpx_xdp_native(const struct kcpx_pinfo *pi, void *data_end, __u32 plen)
{
	struct kcpx_native_rl_key src = {};
	bool strict = kcpx_cfg.flags & KCPX_CFG_F_NATIVE_STRICT;

	/* the source address, for the handshake rate limit (IPv4 in the first 4 bytes) */
	if (pi->family == 4) {
		struct iphdr *iph = pi->l3;

		__builtin_memcpy(src.addr, &iph->saddr, 4);
	} else {
		struct ipv6hdr *ip6 = pi->l3;

		__builtin_memcpy(src.addr, &ip6->saddr, 16);
	}
	return kcpx_native_check((void *)(pi->udp + 1), data_end, plen, &src, strict) ==
	       KCPX_NV_DROP;
}

SEC("xdp")
int kcpx_xdp_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct kcpx_pinfo pi = {};
	struct kcpx_xdp_stats *st;
	__u32 key = 0, ulen, plen;
	int res, act;

	st = bpf_map_lookup_elem(&kcpx_xdp_stats, &key);
	if (!st)
		return XDP_PASS;
	st->rx_packets++;
	st->rx_bytes += data_end - data;

	res = kcpx_parse(data, data_end, &pi);
	if (pi.vlans)
		st->vlan++;
	switch (res) {
	case KCPX_P_UDP:
		break;
	case KCPX_P_SHORT:
		st->pass_short++;
		return XDP_PASS;
	case KCPX_P_NON_IP:
		st->pass_non_ip++;
		return XDP_PASS;
	case KCPX_P_BAD_IP:
		st->pass_bad_ip++;
		return XDP_PASS;
	case KCPX_P_NON_UDP:
		st->pass_non_udp++;
		return XDP_PASS;
	default:
		st->pass_frag++;
		return XDP_PASS;
	}
	if (!kcpx_is_tunnel_rx(&pi)) {
		st->pass_other++;
		return XDP_PASS;
	}
	/* the port, but another local address (or forwarded traffic): not the tunnel's */
	if ((kcpx_cfg.flags & KCPX_CFG_F_LOCAL) && !kcpx_addr_is_local(&pi)) {
		st->pass_addr++;
		return XDP_PASS;
	}
	if (kcpx_martian(&pi, kcpx_cfg.flags & KCPX_CFG_F_LOOPBACK,
			 bpf_map_lookup_elem(&kcpx_martians, &key))) {
		st->drop_martian++;
		return XDP_DROP;
	}

	/* A tunnel packet from here on: whatever is wrong with it is dropped. */
	if (pi.ip_end > pi.frame_len) {
		st->drop_trunc++;
		return XDP_DROP;
	}
	ulen = bpf_ntohs(pi.udp->len);
	if (ulen < sizeof(struct udphdr) || (void *)pi.udp - data + ulen > pi.ip_end) {
		st->drop_udp_len++;
		return XDP_DROP;
	}
	if (pi.family == 6 && pi.udp->check == 0) {
		st->drop_csum0_v6++;
		return XDP_DROP;
	}
	plen = ulen - sizeof(struct udphdr);
	if (plen < kcpx_cfg.min_payload) {
		st->drop_small++;
		return XDP_DROP;
	}
	if (plen > kcpx_cfg.max_payload) {
		st->drop_big++;
		return XDP_DROP;
	}
	if ((kcpx_cfg.flags & KCPX_CFG_F_NATIVE) && kcpx_xdp_native(&pi, data_end, plen)) {
		st->drop_native++;
		return XDP_DROP;
	}

	/* No socket on this queue (daemon gone, queue not opened): the kernel's UDP socket
	 * on the same port receives it instead, so the tunnel degrades rather than stops. */
	act = bpf_redirect_map(&kcpx_xsks, ctx->rx_queue_index, XDP_PASS);
	if (act == XDP_REDIRECT) {
		st->steered++;
		st->steered_bytes += plen;
	} else {
		st->pass_no_xsk++;
	}
	return act;
}

/* Rewrite the DSCP (upper six bits of TOS / traffic class), keeping ECN. */
static __always_inline int kcpx_set_dscp(struct __sk_buff *skb, struct kcpx_pinfo *pi)
{
	__u8 dscp = kcpx_cfg.dscp & 0x3f;

	if (pi->family == 4) {
		struct iphdr *iph = pi->l3;
		__u32 off = pi->l3_off;
		__u8 old = iph->tos, new = (dscp << 2) | (old & 0x03);
		/* the checksummed 16-bit word holding TOS: version/IHL byte, then TOS */
		__be16 oldw = bpf_htons(((__u16)(*(__u8 *)iph) << 8) | old);
		__be16 neww = bpf_htons(((__u16)(*(__u8 *)iph) << 8) | new);

		if (old == new)
			return 0;
		if (bpf_l3_csum_replace(skb, off + offsetof(struct iphdr, check), oldw, neww, 2))
			return -1;
		if (bpf_skb_store_bytes(skb, off + offsetof(struct iphdr, tos), &new, 1, 0))
			return -1;
		return 1;
	} else {
		__u8 *b = pi->l3;
		__u8 b0 = b[0], b1 = b[1];
		__u8 tc = (b0 & 0x0f) << 4 | b1 >> 4;
		__u8 ntc = (dscp << 2) | (tc & 0x03);
		__u8 nb[2];

		if (tc == ntc)
			return 0;
		/* IPv6 has no header checksum, and UDP's does not cover the traffic class. */
		nb[0] = (b0 & 0xf0) | ntc >> 4;
		nb[1] = (ntc & 0x0f) << 4 | (b1 & 0x0f);
		if (bpf_skb_store_bytes(skb, pi->l3_off, nb, 2, 0))
			return -1;
		return 1;
	}
}

SEC("tc")
int kcpx_tc_egress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct kcpx_pinfo pi = {};
	struct kcpx_tc_stats *st;
	__u32 key = 0;
	int r;

	st = bpf_map_lookup_elem(&kcpx_tc_stats, &key);
	if (!st)
		return TC_ACT_OK;
	st->tx_packets++;
	st->tx_bytes += skb->len;
	if (kcpx_parse(data, data_end, &pi) != KCPX_P_UDP || !kcpx_is_tunnel_tx(&pi))
		return TC_ACT_OK;
	st->tunnel_packets++;
	st->tunnel_bytes += skb->len;
	if (!(kcpx_cfg.flags & KCPX_CFG_F_DSCP))
		return TC_ACT_OK;
	r = kcpx_set_dscp(skb, &pi);
	if (r < 0)
		st->dscp_err++;
	else if (r > 0)
		st->dscp_marked++;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
