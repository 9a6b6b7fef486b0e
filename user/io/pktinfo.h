/* SPDX-License-Identifier: MIT */
/*
 * A UDP socket bound to any address: which of our addresses a datagram was sent to
 * (IP_PKTINFO, IPV6_RECVPKTINFO), and which one to send a datagram from (the same cmsgs
 * on send), so that a server answers each client from the address the client wrote to,
 * not from the route's source: a client's connected socket drops anything else.
 */
#ifndef KCPX_IO_PKTINFO_H
#define KCPX_IO_PKTINFO_H

#include <netinet/in.h>
#include <sys/socket.h>

#include "core/addr.h"

/* Control data for one message: either cmsg (a dual-stack socket may get both). */
#define KCPX_PKTINFO_SPACE                                                                         \
	(CMSG_SPACE(sizeof(struct in_pktinfo)) + CMSG_SPACE(sizeof(struct in6_pktinfo)))

union kcpx_pktinfo_buf {
	char buf[KCPX_PKTINFO_SPACE];
	struct cmsghdr align;
};

/* Ask for the destination address of what fd (of family) receives: 0 or -errno. */
int kcpx_pktinfo_enable(int fd, int family);
/* The local address from a received message's control data; family 0: none there. */
void kcpx_pktinfo_read(struct msghdr *mh, struct kcpx_ip *l);
/* Send mh (to `to`) from local: sets mh's control data in cb. Nothing when local is not
 * known or not of to's family (v4-mapped counts as IPv4). */
void kcpx_pktinfo_set(struct msghdr *mh, union kcpx_pktinfo_buf *cb, const struct kcpx_addr *to,
		      const struct kcpx_ip *local);

#endif
