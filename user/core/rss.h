/* SPDX-License-Identifier: MIT */
/*
 * Which RX queue a NIC's receive-side scaling (RSS) puts a UDP datagram on, I/O-free:
 * the Toeplitz hash of the datagram's addresses (and ports, when the NIC hashes them for
 * UDP of that family) under the NIC's key, then the NIC's indirection table. io/xsk.c
 * reads the key, table and hash fields (ethtool ETHTOOL_GRSSH, ETHTOOL_GRXFH) and fills
 * struct kcpx_rss; a `kcpx up` client with several engines then binds each session's
 * local port where the server's answers land on a queue of the engine that opened it.
 *
 * Toeplitz (Microsoft's RSS specification): for each input bit, most significant bit
 * of the first byte first, that is set, the hash is XORed with the 32 key bits that
 * start at that bit's position. The input is source address, destination address, then
 * (4-tuple) source port and destination port, all in network byte order.
 */
#ifndef KCPX_CORE_RSS_H
#define KCPX_CORE_RSS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KCPX_RSS_KEY_MAX   128	/* bytes; NICs have 40 or 52 */
#define KCPX_RSS_INDIR_MAX 4096 /* indirection table entries */

struct kcpx_rss {
	uint8_t key[KCPX_RSS_KEY_MAX];
	unsigned key_len;
	uint32_t indir[KCPX_RSS_INDIR_MAX]; /* hash % indir_len -> RX queue */
	unsigned indir_len;
	/* UDP over IPv4 / IPv6: the hash covers both ports (else the addresses only) */
	bool l4_v4, l4_v6;
};

/* The Toeplitz hash of in[0..len) under key; key_len must be >= len + 4. */
uint32_t kcpx_rss_toeplitz(const uint8_t *key, size_t key_len, const uint8_t *in, size_t len);

/*
 * The RX queue of a datagram src:sport -> dst:dport (addresses in network byte order,
 * 4 bytes for AF_INET, 16 for AF_INET6; ports in host order). -EINVAL for another
 * family or a key too short for the input.
 */
int kcpx_rss_queue(const struct kcpx_rss *r, int family, const uint8_t *src, uint16_t sport,
		   const uint8_t *dst, uint16_t dport);

/* Do the ports of a family's UDP datagrams change their queue (the hash covers them)? */
bool kcpx_rss_ports_count(const struct kcpx_rss *r, int family);

/*
 * Engine k of n holds RX queues k, k + n, ... below nq (io/xsk.c). Is the queue a server's
 * answer from peer:pport to local:lport reaches one of engine k's?
 */
bool kcpx_rss_port_fits(const struct kcpx_rss *r, int family, const uint8_t *peer, uint16_t pport,
			const uint8_t *local, uint16_t lport, unsigned k, unsigned n, unsigned nq);

#endif
