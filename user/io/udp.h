/* SPDX-License-Identifier: MIT */
#ifndef KCPX_IO_UDP_H
#define KCPX_IO_UDP_H

#include "io/dgram.h"

struct kcpx_udp_config {
	const struct kcpx_addr *bind; /* NULL: an ephemeral port of peer's family */
	const struct kcpx_addr *peer; /* client: the server (the socket is connected) */
	int sockbuf;		      /* SO_RCVBUF/SO_SNDBUF bytes, 0 = kernel default */
	int dscp;		      /* 0..63, 0 = leave alone */
	/*
	 * Server with several threads: bind joins a SO_REUSEPORT group of `group` sockets
	 * (one per thread, opened in thread order), and the group's first socket steers each
	 * datagram to socket (UDP source port % group). 0 or 1: a socket of its own.
	 */
	unsigned group;
	/* Client, no bind: a local port p with p % 64 == (port_hint - 1) % 64 when one is free
	 * (so a server steering by source port spreads a client's sessions); 0: any port. */
	unsigned port_hint;
};

/* A non-blocking UDP socket backend (recvmmsg/sendmmsg). Returns 0 or -errno. */
int kcpx_udp_open(struct kcpx_dgram **out, const struct kcpx_udp_config *cfg);

#endif
