/* SPDX-License-Identifier: MIT */
#ifndef KCPX_IO_UDP_H
#define KCPX_IO_UDP_H

#include "io/dgram.h"

struct kcpx_udp_config {
	const struct kcpx_addr *bind; /* NULL: an ephemeral port of peer's family */
	const struct kcpx_addr *peer; /* client: the server (the socket is connected) */
	int sockbuf;		      /* SO_RCVBUF/SO_SNDBUF bytes, 0 = kernel default */
	int dscp;		      /* 0..63, 0 = leave alone */
};

/* A non-blocking UDP socket backend (recvmmsg/sendmmsg). Returns 0 or -errno. */
int kcpx_udp_open(struct kcpx_dgram **out, const struct kcpx_udp_config *cfg);

#endif
