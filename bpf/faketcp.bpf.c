// SPDX-License-Identifier: (GPL-2.0 OR MIT)
/*
 * `--tcp` for the UDP-socket backend (`kcpx client|server --tcp`): the tunnel's datagrams
 * leave as TCP segments of a flow the kernel's own stack opened with a real three-way
 * handshake, and come back in as UDP datagrams, so the daemon keeps using one UDP socket
 * and never sees TCP (include/kcpx_ftcp.h, docs/INTEROP.md "--tcp").
 *
 *   kcpx_tc_ftcp    TCX egress: a UDP datagram from a fake-TCP port becomes a PSH|ACK
 *                   segment of its flow (seq advancing by the payload, ack = the peer's
 *                   furthest data, our window), checksums made whole. With no
 *                   established flow it is dropped: --tcp never leaks UDP.
 *   kcpx_xdp_ftcp   XDP ingress: a data segment of a known flow to a fake-TCP port becomes
 *                   a UDP datagram (checksum derived from TCP's, so the kernel's UDP
 *                   checksum check still vouches for the payload); SYN, FIN, pure ACKs go
 *                   to the kernel's socket; an in-window RST marks the flow for a new
 *                   handshake, a blind one dies here.
 *   kcpx_tci_ftcp   the same on TCX ingress, where the interface's one XDP slot is taken.
 *
 * Several daemons may each attach their own copy: TCX programs run in a row, and every
 * TCX verdict here but a drop is TCX_NEXT, so each daemon's program sees every packet.
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
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kcpx_ftcp_portset);
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

/* Written by userspace only (include/kcpx_ftcp.h): here so that it is pinned with BTF. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kcpx_ftcp_counts);
} kcpx_ftcp_conns SEC(".maps");

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

/*
 * The stats when the transport header at hdr (len bytes) is inside the frame and its port
 * at port (inside that header) is one of ours; NULL when the frame is none of our business.
 */
static __always_inline struct kcpx_ftcp_stats *ours(void *hdr, __u32 len, void *data_end,
						    __be16 *port)
{
	struct kcpx_ftcp_portset *ps;
	__u32 zero = 0, p;

	if (hdr + len > data_end)
		return NULL;
	ps = bpf_map_lookup_elem(&kcpx_ftcp_ports, &zero);
	p = bpf_ntohs(*port);
	if (!ps || !(ps->w[(p >> 6) & 1023] & (1ull << (p & 63))))
		return NULL;
	return stats();
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
	__u32 l3len, l4off, plen, seq, iplen, sum = 0;
	__u16 ulen;
	int v4;
	__s64 r;

	if ((void *)(eth + 1) > data_end)
		return TCX_NEXT;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = (void *)(eth + 1);

		if ((void *)(iph + 1) > data_end || iph->protocol != IPPROTO_UDP || iph->ihl != 5)
			return TCX_NEXT;
		udp = (void *)(iph + 1);
		st = ours(udp, sizeof(*udp), data_end, &udp->source);
		if (!st)
			return TCX_NEXT;
		/* a fragment cannot be rewritten: its UDP header is not in every piece */
		if (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET))
			goto bad;
		key_v4(&key, iph->daddr);
		l3len = IPV4_HLEN;
		iplen = bpf_ntohs(iph->tot_len) - IPV4_HLEN;
		v4 = 1;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end || ip6->nexthdr != IPPROTO_UDP)
			return TCX_NEXT;
		udp = (void *)(ip6 + 1);
		st = ours(udp, sizeof(*udp), data_end, &udp->source);
		if (!st)
			return TCX_NEXT;
		__builtin_memcpy(key.raddr, &ip6->daddr, 16);
		l3len = IPV6_HLEN;
		iplen = bpf_ntohs(ip6->payload_len);
		v4 = 0;
	} else {
		return TCX_NEXT;
	}
	key.rport = udp->dest;
	key.lport = udp->source;
	l4off = ETH_HLEN + l3len;
	ulen = bpf_ntohs(udp->len);
	/* the IP length grows with the header: it must say exactly the datagram */
	if (ulen <= 8 || ulen != iplen || l4off + ulen > skb->len || skb->gso_segs > 1)
		goto bad;
	plen = ulen - 8;
	if (plen > KCPX_FTCP_PAYLOAD_MAX)
		goto bad;
	f = bpf_map_lookup_elem(&kcpx_ftcp_flows, &key);
	if (!f || f->state != KCPX_FTCP_EST) {
		st->tx_noflow++;
		return TCX_DROP;
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
	f->tx_ns = bpf_ktime_get_coarse_ns();

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
	return TCX_NEXT;
bad:
	st->tx_bad++;
	return TCX_DROP;
err:
	st->tx_err++;
	return TCX_DROP;
}

/*
 * Ingress, shared by the XDP program and its TCX fallback: what to do with a frame, and
 * for a data segment of a known flow everything the rewrite needs.
 */
enum rx_verdict {
	RX_PASS,    /* not ours to change: the kernel (or the next program) has it */
	RX_DROP,    /* malformed or blind: dropped, counted */
	RX_CONVERT, /* a data segment of a flow: becomes the datagram in job */
};

struct rx_job {
	struct ethhdr eth;
	union {
		struct iphdr v4;
		struct ipv6hdr v6;
	} ip;		   /* the new IP header, checksum made */
	struct udphdr udp; /* the new UDP header, checksum made */
	__u32 shrink;	   /* TCP header length - 8: bytes to remove after the IP header */
	__u32 plen;
	int v4;
};

/* What to do with a TCP segment of a known flow (a verdict), RX_CONVERT for data. */
static __always_inline int judge(struct kcpx_ftcp_flow *f, const struct tcphdr *th, __u32 plen,
				 struct kcpx_ftcp_stats *st)
{
	__u32 seq = bpf_ntohl(th->seq);

	if (th->rst) {
		/* |seq - rcv_nxt| < KCPX_FTCP_RST_WINDOW, in sequence-space arithmetic, or the
		 * peer's kernel socket's own number */
		if (seq - f->rcv_nxt + KCPX_FTCP_RST_WINDOW - 1 < 2 * KCPX_FTCP_RST_WINDOW - 1 ||
		    seq == f->rcv_isn) {
			f->state = KCPX_FTCP_RESET;
			st->rx_rst++;
			return RX_PASS;
		}
		st->rx_rst_bad++;
		return RX_DROP;
	}
	if (th->syn) {
		if (!th->ack && f->state == KCPX_FTCP_EST) {
			f->state = KCPX_FTCP_SYN;
			st->rx_syn++;
		} else {
			st->rx_ctl++;
		}
		return RX_PASS;
	}
	if (th->fin || !th->ack || plen == 0) {
		st->rx_ctl++;
		return RX_PASS;
	}
	return RX_CONVERT;
}

/*
 * Advance what we acknowledge: to the end of the furthest data seen, within reason. Only a
 * segment that acknowledges something we could have sent (not beyond snd_nxt, not more
 * than KCPX_FTCP_ACK_BEHIND_MAX before it: RFC 5961's check, widened for tcpraw, whose
 * ACK stops at the first loss) may move it, so a blind spoofer must guess both numbers.
 */
static __always_inline void track_rx(struct kcpx_ftcp_flow *f, __u32 seq, __u32 ack, __u32 plen,
				     struct kcpx_ftcp_stats *st)
{
	__u32 nxt = f->rcv_nxt, end = seq + plen, ahead = end - nxt;

	if (seq != nxt)
		st->rx_ooo++;
	if ((__s32)ahead > 0) {
		if (ahead > KCPX_FTCP_ACK_JUMP_MAX || f->snd_nxt - ack > KCPX_FTCP_ACK_BEHIND_MAX)
			st->rx_ack_jump++;
		else
			f->rcv_nxt = end;
	}
	f->rx_ns = bpf_ktime_get_coarse_ns();
}

static __always_inline int rx_prepare(void *data, void *data_end, struct rx_job *j)
{
	struct ethhdr *eth = data;
	struct kcpx_ftcp_key key = {};
	struct kcpx_ftcp_stats *st;
	struct kcpx_ftcp_flow *f;
	struct tcphdr *th;
	__u32 hdr[15];
	__u32 hl, iplen;
	int act;

	if ((void *)(eth + 1) > data_end)
		return RX_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = (void *)(eth + 1);

		if ((void *)(iph + 1) > data_end || iph->protocol != IPPROTO_TCP || iph->ihl < 5)
			return RX_PASS;
		th = (void *)iph + iph->ihl * 4;
		st = ours(th, sizeof(*th), data_end, &th->dest);
		if (!st)
			return RX_PASS;
		if (iph->ihl != 5 || (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET))) {
			st->rx_unsup++;
			return RX_PASS;
		}
		iplen = bpf_ntohs(iph->tot_len);
		if (iplen < IPV4_HLEN || ETH_HLEN + iplen > data_end - data) {
			st->rx_trunc++;
			return RX_DROP;
		}
		iplen -= IPV4_HLEN;
		key_v4(&key, iph->saddr);
		j->ip.v4 = *iph;
		j->v4 = 1;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end || ip6->nexthdr != IPPROTO_TCP)
			return RX_PASS;
		th = (void *)(ip6 + 1);
		st = ours(th, sizeof(*th), data_end, &th->dest);
		if (!st)
			return RX_PASS;
		iplen = bpf_ntohs(ip6->payload_len);
		if (ETH_HLEN + IPV6_HLEN + iplen > data_end - data) {
			st->rx_trunc++;
			return RX_DROP;
		}
		__builtin_memcpy(key.raddr, &ip6->saddr, 16);
		j->ip.v6 = *ip6;
		j->v4 = 0;
	} else {
		return RX_PASS;
	}
	/* iplen: bytes after the IP header by the IP length field, all inside the frame */
	hl = th->doff * 4;
	if (hl < KCPX_TCP_HLEN || hl > iplen) {
		st->rx_trunc++;
		return RX_DROP;
	}
	j->plen = iplen - hl;
	key.rport = th->source;
	key.lport = th->dest;
	f = bpf_map_lookup_elem(&kcpx_ftcp_flows, &key);
	if (!f) {
		st->rx_noflow++;
		return RX_PASS;
	}
	act = judge(f, th, j->plen, st);
	if (act != RX_CONVERT)
		return act;
	if (j->plen > KCPX_FTCP_PAYLOAD_MAX) {
		st->rx_trunc++;
		return RX_DROP;
	}
	track_rx(f, bpf_ntohl(th->seq), bpf_ntohl(th->ack_seq), j->plen, st);

	/* The TCP header as received, word by word (hl <= iplen: inside the frame). */
#pragma unroll
	for (int i = 0; i < 15; i++) {
		__u32 *w = (__u32 *)th + i;

		if (i * 4 >= hl)
			break;
		if ((void *)(w + 1) > data_end)
			return RX_DROP;
		hdr[i] = *w;
	}
	j->udp.source = th->source;
	j->udp.dest = th->dest;
	j->udp.len = bpf_htons(j->plen + 8);
	j->udp.check = 0;
	j->udp.check = kcpx_ftcp_udp_csum(hdr, hl, &j->udp, hl + j->plen, j->plen + 8);
	if (j->v4) {
		j->ip.v4.protocol = IPPROTO_UDP;
		j->ip.v4.tot_len = bpf_htons(IPV4_HLEN + 8 + j->plen);
		j->ip.v4.check = kcpx_ipv4_csum(&j->ip.v4);
	} else {
		j->ip.v6.nexthdr = IPPROTO_UDP;
		j->ip.v6.payload_len = bpf_htons(8 + j->plen);
	}
	j->eth = *eth;
	j->shrink = hl - 8;
	st->rx_segs++;
	st->rx_bytes += j->plen;
	return RX_CONVERT;
}

/* Write the job's headers at the (new) start of the packet. 0, or -1 if it is too short. */
static __always_inline int rx_write(void *data, void *data_end, const struct rx_job *j)
{
	if (j->v4) {
		struct iphdr *iph = data + ETH_HLEN;
		struct udphdr *up = (void *)(iph + 1);

		if ((void *)(up + 1) > data_end)
			return -1;
		*iph = j->ip.v4;
		*up = j->udp;
	} else {
		struct ipv6hdr *ip6 = data + ETH_HLEN;
		struct udphdr *up = (void *)(ip6 + 1);

		if ((void *)(up + 1) > data_end)
			return -1;
		*ip6 = j->ip.v6;
		*up = j->udp;
	}
	__builtin_memcpy(data, &j->eth, ETH_HLEN);
	return 0;
}

SEC("xdp")
int kcpx_xdp_ftcp(struct xdp_md *ctx)
{
	struct rx_job j;
	int v;

	v = rx_prepare((void *)(long)ctx->data, (void *)(long)ctx->data_end, &j);
	if (v == RX_PASS)
		return XDP_PASS;
	if (v == RX_DROP)
		return XDP_DROP;
	/* drop the difference in header length in front, then write the headers back */
	if (bpf_xdp_adjust_head(ctx, j.shrink))
		return XDP_DROP;
	if (rx_write((void *)(long)ctx->data, (void *)(long)ctx->data_end, &j))
		return XDP_DROP;
	return XDP_PASS;
}

/*
 * The same on TCX ingress, for when the interface's one XDP slot is taken (another --tcp
 * daemon, `kcpx up`): TCX runs any number of programs in a row, so what is not ours goes
 * on to the next one (TCX_NEXT), and so does what we rewrote.
 */
SEC("tc")
int kcpx_tci_ftcp(struct __sk_buff *skb)
{
	struct rx_job j;
	int v;

	v = rx_prepare((void *)(long)skb->data, (void *)(long)skb->data_end, &j);
	if (v == RX_PASS)
		return TCX_NEXT;
	if (v == RX_DROP)
		return TCX_DROP;
	if (bpf_skb_adjust_room(skb, -(__s32)j.shrink, BPF_ADJ_ROOM_NET, 0))
		return TCX_DROP;
	if (rx_write((void *)(long)skb->data, (void *)(long)skb->data_end, &j))
		return TCX_DROP;
	return TCX_NEXT;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
