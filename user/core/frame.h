/* SPDX-License-Identifier: MIT */
/*
 * Ethernet/IPv4/IPv6/UDP frames as the AF_XDP backend reads and writes them: taking a
 * received frame apart (untrusted bytes: bounds-checked, fuzzed), and building one to send.
 *
 * The UDP checksum is summed over the payload's copy, right after copying, while it is in
 * the cache: the receive side copies the payload out of the UMEM frame anyway, the send
 * side into it. One's-complement sums do not care about byte order or word size, so the
 * sum runs over native 64-bit words and is folded to 16 bits at the end.
 */
#ifndef KCPX_CORE_FRAME_H
#define KCPX_CORE_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KCPX_FRAME_ETH	   14
#define KCPX_FRAME_IP4	   20
#define KCPX_FRAME_IP6	   40
#define KCPX_FRAME_UDP	   8
#define KCPX_FRAME_HDR_MAX (KCPX_FRAME_ETH + KCPX_FRAME_IP6 + KCPX_FRAME_UDP)

/* Unfolded one's-complement sum of len bytes, added to sum (the tail zero-padded). */
uint64_t kcpx_csum_add(uint64_t sum, const void *data, size_t len);
/* Copy the bytes to dst and sum them. */
uint64_t kcpx_csum_copy(void *dst, const void *src, size_t len, uint64_t sum);
uint16_t kcpx_csum_fold(uint64_t sum);

/* A received frame, taken apart; the pointers point into it. */
struct kcpx_frame_view {
	const uint8_t *payload, *src, *dst; /* UDP payload; IP source and destination */
	uint32_t len;			    /* payload bytes */
	int family;			    /* AF_INET or AF_INET6 */
	uint16_t sport_be, dport_be;
	uint16_t csum;	       /* the UDP checksum field as received */
	uint16_t csum_partial; /* what the field holds when left to offload */
	uint64_t csum_sum;     /* pseudo-header + UDP header, unfolded */
	bool csum_check;       /* the payload must be summed: IPv6, or IPv4 with a checksum */
};

/* Take apart a frame of len bytes: Ethernet (up to two VLAN tags), IPv4 without options
 * or fragments or IPv6 with the usual extension headers, UDP. false for anything else or
 * anything malformed. The payload's checksum is not checked yet: see kcpx_frame_take. */
bool kcpx_frame_parse(const uint8_t *f, uint32_t len, struct kcpx_frame_view *v);
/* Copy the payload to dst (v->len bytes) and check the UDP checksum on the way. A checksum
 * left to offload by a sender in this host (veth, lo: only the pseudo-header sum in the
 * field) is accepted too. false: a bad checksum (dst holds the copy all the same). */
bool kcpx_frame_take(const struct kcpx_frame_view *v, uint8_t *dst);

/* What a frame to send carries besides its payload. */
struct kcpx_frame_hdr {
	int family; /* AF_INET or AF_INET6 */
	const uint8_t *src_mac, *dst_mac;
	const uint8_t *src, *dst; /* 4 or 16 bytes */
	uint16_t sport_be, dport_be;
	uint16_t ip_id; /* IPv4 only */
	uint8_t tos;	/* DSCP and ECN bits */
};

/* Write Ethernet, IP and UDP headers and the payload to f (room for KCPX_FRAME_HDR_MAX +
 * len bytes), checksums included. Returns the frame's length. */
size_t kcpx_frame_build(uint8_t *f, const struct kcpx_frame_hdr *h, const uint8_t *payload,
			uint32_t len);

#endif
