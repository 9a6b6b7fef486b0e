// SPDX-License-Identifier: (GPL-2.0 OR MIT)
/*
 * `--tcp` for the UDP-socket backend (`kcpx client|server --tcp`): the tunnel's datagrams
 * leave as TCP segments of a flow the kernel's own stack opened with a real three-way
 * handshake, and come back in as UDP datagrams, so the daemon keeps using one UDP socket
 * and never sees TCP (include/kcpx_ftcp.h, docs/INTEROP.md "--tcp").
 *
 *   kcpx_tc_ftcp    cls_bpf on clsact egress: a UDP datagram from a fake-TCP port becomes
 *                   a PSH|ACK segment of its flow (seq advancing by the payload, ack =
 *                   the peer's last sequence number, our window), checksums made whole.
 *                   With no established flow it is dropped: --tcp never leaks UDP.
 *   kcpx_xdp_ftcp   XDP ingress: a data segment of a known flow to a fake-TCP port becomes
 *                   a UDP datagram (checksum derived from TCP's, so the kernel's UDP
 *                   checksum check still vouches for the payload); SYN, FIN, pure ACKs go
 *                   to the kernel's socket; an in-window RST marks the flow for a new
 *                   handshake, a blind one dies here.
 *
 * IPv4 without options and IPv6 without extension headers, untagged Ethernet. Everything
 * else leaves and arrives untouched.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "kcpx_ftcp.h"
#include "lib/ftcp.h"

#define ETH_HLEN  14
#define IPV4_HLEN 20
#define IPV6_HLEN 40

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KCPX_FTCP_PORTS_MAX);
	__type(key, __be16);
	__type(value, __u8);
} kcpx_ftcp_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KCPX_FTCP_FLOWS_MAX);
	__type(key, struct kcpx_ftcp_key);
	__type(value, struct kcpx_ftcp_flow);
} kcpx_ftcp_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kcpx_ftcp_stats);
} kcpx_ftcp_stats SEC(".maps");

/* The payload of the segment being checksummed, padded with zeros to a 4-byte multiple. */
#define SCRATCH_LEN 1536
struct scratch {
	__u8 b[SCRATCH_LEN];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} kcpx_ftcp_buf SEC(".maps");

_Static_assert(KCPX_FTCP_PAYLOAD_MAX + 4 <= SCRATCH_LEN, "scratch holds a padded payload");

static __always_inline void key_v4(struct kcpx_ftcp_key *k, __be32 addr)
{
	__builtin_memset(k->raddr, 0, 10);
	k->raddr[10] = 0xff;
	k->raddr[11] = 0xff;
	__builtin_memcpy(&k->raddr[12], &addr, 4);
}

static __always_inline struct kcpx_ftcp_stats *stats(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&kcpx_ftcp_stats, &zero);
}

/* Sum of the segment's payload, plen bytes at off, for the TCP checksum. */
static __always_inline int payload_sum(struct __sk_buff *skb, __u32 off, __u32 plen, __u32 *sum)
{
	__u32 zero = 0, done;
	struct scratch *s;
	__s64 r;

	s = bpf_map_lookup_elem(&kcpx_ftcp_buf, &zero);
	if (!s || plen == 0 || plen > KCPX_FTCP_PAYLOAD_MAX)
		return -1;
	if (bpf_skb_load_bytes(skb, off, s->b, plen))
		return -1;
	/* zero the up to three bytes that pad the payload to a whole 32-bit word */
	s->b[plen] = 0;
	s->b[plen + 1] = 0;
	s->b[plen + 2] = 0;
#pragma unroll
	for (int i = 0; i < 3; i++) {
		__u32 n;

		done = i * 512;
		if (done >= plen)
			break;
		n = plen - done + 3;
		/* keep the clamp where the verifier sees it: the compiler would drop it */
		asm volatile("" : "+r"(n));
		n &= 0x7fc;
		if (n > 512)
			n = 512;
		r = bpf_csum_diff(NULL, 0, (__be32 *)&s->b[i * 512], n, *sum);
		if (r < 0)
			return -1;
		*sum = (__u32)r;
	}
	return 0;
}

SEC("tc")
int kcpx_tc_ftcp(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct kcpx_ftcp_key key = {};
	struct kcpx_ftcp_stats *st;
	struct kcpx_ftcp_flow *f;
	struct udphdr *udp;
	struct tcphdr th = {};
	__u32 l3len, l4off, plen, seq, sum = 0;
	__u16 ulen;
	int v4;
	__s64 r;

	if ((void *)(eth + 1) > data_end)
		return TC_ACT_OK;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = (void *)(eth + 1);

		if ((void *)(iph + 1) > data_end || iph->protocol != IPPROTO_UDP || iph->ihl != 5)
			return TC_ACT_OK;
		udp = (void *)(iph + 1);
		if ((void *)(udp + 1) > data_end)
			return TC_ACT_OK;
		if (!bpf_map_lookup_elem(&kcpx_ftcp_ports, &udp->source))
			return TC_ACT_OK;
		st = stats();
		if (!st)
			return TC_ACT_OK;
		/* a fragment cannot be rewritten: its UDP header is not in every piece */
		if (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET))
			goto bad;
		key_v4(&key, iph->daddr);
		l3len = IPV4_HLEN;
		v4 = 1;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end || ip6->nexthdr != IPPROTO_UDP)
			return TC_ACT_OK;
		udp = (void *)(ip6 + 1);
		if ((void *)(udp + 1) > data_end)
			return TC_ACT_OK;
		if (!bpf_map_lookup_elem(&kcpx_ftcp_ports, &udp->source))
			return TC_ACT_OK;
		st = stats();
		if (!st)
			return TC_ACT_OK;
		__builtin_memcpy(key.raddr, &ip6->daddr, 16);
		l3len = IPV6_HLEN;
		v4 = 0;
	} else {
		return TC_ACT_OK;
	}
	key.rport = udp->dest;
	key.lport = udp->source;
	l4off = ETH_HLEN + l3len;
	ulen = bpf_ntohs(udp->len);
	if (ulen <= 8 || l4off + ulen > skb->len || skb->gso_segs > 1)
		goto bad;
	plen = ulen - 8;
	if (plen > KCPX_FTCP_PAYLOAD_MAX)
		goto bad;
	f = bpf_map_lookup_elem(&kcpx_ftcp_flows, &key);
	if (!f || f->state != KCPX_FTCP_EST) {
		st->tx_noflow++;
		return TC_ACT_SHOT;
	}
	/* Not atomic (that needs BPF ISA v3): a socket's datagrams come from the daemon's one
	 * sender thread, so one flow's segments pass here one at a time. */
	seq = f->snd_nxt;
	f->snd_nxt = seq + plen;
	th.source = key.lport;
	th.dest = key.rport;
	th.seq = bpf_htonl(seq);
	th.ack_seq = bpf_htonl(f->rcv_nxt);
	th.doff = KCPX_TCP_HLEN / 4;
	th.psh = 1;
	th.ack = 1;
	th.window = bpf_htons(f->window);
	f->tx_ns = bpf_ktime_get_ns();

	/* Room for the longer header between IP and UDP; this also leaves the skb with no
	 * checksum offload (CHECKSUM_NONE), so every checksum below must be whole. */
	if (bpf_skb_adjust_room(skb, KCPX_FTCP_GROW, BPF_ADJ_ROOM_NET, 0))
		goto err;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	if (v4) {
		struct iphdr *iph = data + ETH_HLEN;

		if ((void *)(iph + 1) > data_end)
			goto err;
		iph->protocol = IPPROTO_TCP;
		iph->tot_len = bpf_htons(bpf_ntohs(iph->tot_len) + KCPX_FTCP_GROW);
		iph->check = kcpx_ipv4_csum(iph);
		r = bpf_csum_diff(NULL, 0, (__be32 *)&iph->saddr, 8, 0);
	} else {
		struct ipv6hdr *ip6 = data + ETH_HLEN;

		if ((void *)(ip6 + 1) > data_end)
			goto err;
		ip6->nexthdr = IPPROTO_TCP;
		ip6->payload_len = bpf_htons(bpf_ntohs(ip6->payload_len) + KCPX_FTCP_GROW);
		r = bpf_csum_diff(NULL, 0, (__be32 *)&ip6->saddr, 32, 0);
	}
	if (r < 0)
		goto err;
	/* pseudo-header: addresses (above), then protocol and TCP length */
	{
		__be16 pl[2] = { bpf_htons(IPPROTO_TCP), bpf_htons(KCPX_TCP_HLEN + plen) };

		r = bpf_csum_diff(NULL, 0, (__be32 *)pl, sizeof(pl), (__u32)r);
		if (r < 0)
			goto err;
		r = bpf_csum_diff(NULL, 0, (__be32 *)&th, sizeof(th), (__u32)r);
		if (r < 0)
			goto err;
		sum = (__u32)r;
	}
	if (payload_sum(skb, l4off + KCPX_TCP_HLEN, plen, &sum))
		goto err;
	th.check = kcpx_csum_fold(sum);
	if (bpf_skb_store_bytes(skb, l4off, &th, sizeof(th), 0))
		goto err;
	st->tx_segs++;
	st->tx_bytes += plen;
	return TC_ACT_OK;
bad:
	st->tx_bad++;
	return TC_ACT_SHOT;
err:
	st->tx_err++;
	return TC_ACT_SHOT;
}

/* What to do with a TCP segment of a known flow: an XDP verdict, or -1: translate it. */
static __always_inline int judge(struct kcpx_ftcp_flow *f, const struct tcphdr *th, __u32 plen,
				 struct kcpx_ftcp_stats *st)
{
	__u32 seq = bpf_ntohl(th->seq);

	if (th->rst) {
		/* |seq - rcv_nxt| < KCPX_FTCP_RST_WINDOW, in sequence-space arithmetic */
		if (seq - f->rcv_nxt + KCPX_FTCP_RST_WINDOW - 1 < 2 * KCPX_FTCP_RST_WINDOW - 1) {
			f->state = KCPX_FTCP_RESET;
			st->rx_rst++;
			return XDP_PASS;
		}
		st->rx_rst_bad++;
		return XDP_DROP;
	}
	if (th->syn) {
		if (!th->ack && f->state == KCPX_FTCP_EST) {
			f->state = KCPX_FTCP_SYN;
			st->rx_syn++;
		} else {
			st->rx_ctl++;
		}
		return XDP_PASS;
	}
	if (th->fin || !th->ack || plen == 0) {
		st->rx_ctl++;
		return XDP_PASS;
	}
	return -1;
}

/* Advance what we acknowledge: to the end of the furthest data seen, within reason. */
static __always_inline void track_rx(struct kcpx_ftcp_flow *f, __u32 seq, __u32 plen,
				     struct kcpx_ftcp_stats *st)
{
	__u32 nxt = f->rcv_nxt, end = seq + plen, ahead = end - nxt;

	if (seq != nxt)
		st->rx_ooo++;
	if ((__s32)ahead > 0) {
		if (ahead <= KCPX_FTCP_ACK_JUMP_MAX)
			f->rcv_nxt = end;
		else
			st->rx_ack_jump++;
	}
	f->rx_ns = bpf_ktime_get_ns();
}

SEC("xdp")
int kcpx_xdp_ftcp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data, e;
	struct kcpx_ftcp_key key = {};
	struct kcpx_ftcp_stats *st;
	struct kcpx_ftcp_flow *f;
	struct tcphdr *th;
	struct udphdr u;
	__u8 hdr[60];
	__u32 hl, plen, l3len, iplen, shrink;
	union {
		struct iphdr v4;
		struct ipv6hdr v6;
	} ip;
	int v4, act;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = (void *)(eth + 1);

		if ((void *)(iph + 1) > data_end || iph->protocol != IPPROTO_TCP || iph->ihl < 5)
			return XDP_PASS;
		th = (void *)iph + iph->ihl * 4;
		if ((void *)(th + 1) > data_end)
			return XDP_PASS;
		if (!bpf_map_lookup_elem(&kcpx_ftcp_ports, &th->dest))
			return XDP_PASS;
		st = stats();
		if (!st)
			return XDP_PASS;
		if (iph->ihl != 5 || (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET))) {
			st->rx_unsup++;
			return XDP_PASS;
		}
		iplen = bpf_ntohs(iph->tot_len);
		if (iplen < IPV4_HLEN || ETH_HLEN + iplen > data_end - data) {
			st->rx_trunc++;
			return XDP_DROP;
		}
		iplen -= IPV4_HLEN;
		key_v4(&key, iph->saddr);
		ip.v4 = *iph;
		l3len = IPV4_HLEN;
		v4 = 1;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end || ip6->nexthdr != IPPROTO_TCP)
			return XDP_PASS;
		th = (void *)(ip6 + 1);
		if ((void *)(th + 1) > data_end)
			return XDP_PASS;
		if (!bpf_map_lookup_elem(&kcpx_ftcp_ports, &th->dest))
			return XDP_PASS;
		st = stats();
		if (!st)
			return XDP_PASS;
		iplen = bpf_ntohs(ip6->payload_len);
		if (ETH_HLEN + IPV6_HLEN + iplen > data_end - data) {
			st->rx_trunc++;
			return XDP_DROP;
		}
		__builtin_memcpy(key.raddr, &ip6->saddr, 16);
		ip.v6 = *ip6;
		l3len = IPV6_HLEN;
		v4 = 0;
	} else {
		return XDP_PASS;
	}
	/* iplen: bytes after the IP header by the IP length field, all inside the frame */
	hl = th->doff * 4;
	if (hl < KCPX_TCP_HLEN || hl > iplen) {
		st->rx_trunc++;
		return XDP_DROP;
	}
	plen = iplen - hl;
	key.rport = th->source;
	key.lport = th->dest;
	f = bpf_map_lookup_elem(&kcpx_ftcp_flows, &key);
	if (!f) {
		st->rx_noflow++;
		return XDP_PASS;
	}
	act = judge(f, th, plen, st);
	if (act >= 0)
		return act;
	if (plen > KCPX_FTCP_PAYLOAD_MAX) {
		st->rx_trunc++;
		return XDP_DROP;
	}
	track_rx(f, bpf_ntohl(th->seq), plen, st);

	/* The UDP header, its checksum derived from the TCP one. */
	if (hl > sizeof(hdr) || bpf_xdp_load_bytes(ctx, ETH_HLEN + l3len, hdr, hl)) {
		st->rx_trunc++;
		return XDP_DROP;
	}
	u.source = th->source;
	u.dest = th->dest;
	u.len = bpf_htons(plen + 8);
	u.check = 0;
	u.check = kcpx_ftcp_udp_csum(hdr, hl, &u, hl + plen, plen + 8);

	/* Drop the difference in header length in front, then write the headers back. */
	shrink = hl - 8;
	e = *eth;
	if (bpf_xdp_adjust_head(ctx, shrink)) {
		st->rx_trunc++;
		return XDP_DROP;
	}
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (v4) {
		struct iphdr *iph = data + ETH_HLEN;
		struct udphdr *up = (void *)(iph + 1);

		if ((void *)(up + 1) > data_end)
			return XDP_DROP;
		__builtin_memcpy(data, &e, ETH_HLEN);
		ip.v4.protocol = IPPROTO_UDP;
		ip.v4.tot_len = bpf_htons(IPV4_HLEN + 8 + plen);
		ip.v4.check = kcpx_ipv4_csum(&ip.v4);
		*iph = ip.v4;
		*up = u;
	} else {
		struct ipv6hdr *ip6 = data + ETH_HLEN;
		struct udphdr *up = (void *)(ip6 + 1);

		if ((void *)(up + 1) > data_end)
			return XDP_DROP;
		__builtin_memcpy(data, &e, ETH_HLEN);
		ip.v6.nexthdr = IPPROTO_UDP;
		ip.v6.payload_len = bpf_htons(8 + plen);
		*ip6 = ip.v6;
		*up = u;
	}
	st->rx_segs++;
	st->rx_bytes += plen;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
