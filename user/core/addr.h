/* SPDX-License-Identifier: MIT */
/*
 * A peer's UDP address as core sees it: a sockaddr by value, compared and hashed without
 * a syscall. Parsing and name resolution (which do I/O) are in io/addr.h.
 */
#ifndef KCPX_CORE_ADDR_H
#define KCPX_CORE_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define KCPX_ADDRSTRLEN 64

struct kcpx_addr {
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
		struct sockaddr_storage ss;
	};
	socklen_t len;
};

/*
 * One of our own IP addresses, without a port: where a datagram was sent to, and where
 * its answers leave from (a server bound to any address has several). family AF_INET
 * (a[0..3]) or AF_INET6; 0: not known, the backend chooses (the route's source).
 */
struct kcpx_ip {
	int family;
	uint8_t a[16];
};

const char *kcpx_addr_str(const struct kcpx_addr *a, char *buf, size_t len);
bool kcpx_addr_equal(const struct kcpx_addr *a, const struct kcpx_addr *b);
unsigned kcpx_addr_port(const struct kcpx_addr *a);
/* The IP alone (IPv4 in the first 4 bytes, then zeros): a rate limit's key. */
void kcpx_addr_key(const struct kcpx_addr *a, uint8_t key[16]);
/* FNV-1a over IP and port from a per-table random seed: a table index. */
uint32_t kcpx_addr_hash(const struct kcpx_addr *a, uint32_t seed);

#endif
