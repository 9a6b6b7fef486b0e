/* SPDX-License-Identifier: MIT */
/*
 * Fake-TCP framing shared by the BPF programs (docs/INTEROP.md, "--tcp"): the wire
 * header kcpx writes on a tunnel datagram, and the checksum arithmetic of the two
 * translations. Nothing here touches a map.
 *
 * A data segment is what kcptun's tcpraw sends: a 20-byte TCP header without options,
 * flags PSH|ACK, sequence numbers that advance by the payload, the peer's last sequence
 * number acknowledged, and exactly one tunnel datagram as payload.
 */
#ifndef KCPX_BPF_LIB_FTCP_H
#define KCPX_BPF_LIB_FTCP_H

#include "lib/proto.h"

#define KCPX_TCP_HLEN 20
/* Bytes a UDP header (8) grows by when it becomes an option-less TCP header (20). */
#define KCPX_FTCP_GROW (KCPX_TCP_HLEN - 8)

/* TCP flag bits in the 13th and 14th header bytes, as one network-order 16-bit word. */
#define KCPX_TCPF_FIN 0x0001
#define KCPX_TCPF_SYN 0x0002
#define KCPX_TCPF_RST 0x0004
#define KCPX_TCPF_PSH 0x0008
#define KCPX_TCPF_ACK 0x0010

/* Fold a 32-bit one's-complement partial sum (as bpf_csum_diff returns it) and invert. */
static __always_inline __u16 kcpx_csum_fold(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* The IPv4 header checksum of a 20-byte header (its check field is ignored). */
static __always_inline __u16 kcpx_ipv4_csum(const struct iphdr *iph)
{
	struct iphdr h = *iph;

	h.check = 0;
	return kcpx_csum_fold((__u32)bpf_csum_diff(NULL, 0, (__be32 *)&h, sizeof(h), 0));
}

/*
 * The UDP checksum of a datagram made from a TCP segment by replacing its header (tcp,
 * tcp_hlen bytes as received, checksum field included) with udp (its check field 0),
 * derived from the TCP checksum alone (RFC 1624): the payload and the addresses are the
 * same, so the sum changes by the headers and by the pseudo-header's protocol and length
 * words, which sit at the same place in IPv4's and IPv6's pseudo-headers. A segment with a
 * bad TCP checksum gives a datagram with a bad UDP checksum, and the kernel drops that.
 * Returns the check field to store (0 becomes 0xffff: 0 means "none" in IPv4).
 */
static __always_inline __u16 kcpx_ftcp_udp_csum(const void *tcp, __u32 tcp_hlen,
						const struct udphdr *udp, __u16 tcp_len,
						__u16 udp_len)
{
	__be16 from[2] = { bpf_htons(IPPROTO_TCP), bpf_htons(tcp_len) };
	__be16 to[2] = { bpf_htons(IPPROTO_UDP), bpf_htons(udp_len) };
	__s64 s;
	__u16 c;

	s = bpf_csum_diff((__be32 *)tcp, tcp_hlen, (__be32 *)udp, sizeof(*udp), 0);
	s = bpf_csum_diff((__be32 *)from, sizeof(from), (__be32 *)to, sizeof(to), (__u32)s);
	c = kcpx_csum_fold((__u32)s);
	return c ? c : 0xffff;
}

#endif
