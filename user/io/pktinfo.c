// SPDX-License-Identifier: MIT
#include "io/pktinfo.h"

#include <errno.h>
#include <string.h>

int kcpx_pktinfo_enable(int fd, int family)
{
	int on = 1;

	/* IPv4 datagrams on an AF_INET6 socket come with IP_PKTINFO too */
	if (family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof(on)) < 0)
		return -errno;
	if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof(on)) < 0)
		return -errno;
	return 0;
}

void kcpx_pktinfo_read(struct msghdr *mh, struct kcpx_ip *l)
{
	l->family = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO &&
		    cm->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo))) {
			struct in_pktinfo pi;

			memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
			/* the address an answer leaves from (the interface's for a broadcast) */
			memcpy(l->a, &pi.ipi_spec_dst, 4);
			l->family = AF_INET;
			return;
		}
		if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO &&
		    cm->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
			struct in6_pktinfo pi;

			memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
			if (IN6_IS_ADDR_V4MAPPED(&pi.ipi6_addr)) {
				memcpy(l->a, &pi.ipi6_addr.s6_addr[12], 4);
				l->family = AF_INET;
			} else {
				memcpy(l->a, &pi.ipi6_addr, 16);
				l->family = AF_INET6;
			}
		}
	}
}

void kcpx_pktinfo_set(struct msghdr *mh, union kcpx_pktinfo_buf *cb, const struct kcpx_addr *to,
		      const struct kcpx_ip *local)
{
	struct cmsghdr *cm = &cb->align;
	int family = to->sa.sa_family;

	if (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&to->in6.sin6_addr))
		family = AF_INET;
	if (!local || !local->family || local->family != family)
		return;
	memset(cb, 0, sizeof(*cb));
	mh->msg_control = cb->buf;
	if (family == AF_INET) {
		struct in_pktinfo pi = { 0 };

		/* also on an AF_INET6 socket sending to a v4-mapped peer */
		memcpy(&pi.ipi_spec_dst, local->a, 4);
		cm->cmsg_level = IPPROTO_IP;
		cm->cmsg_type = IP_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
		mh->msg_controllen = CMSG_SPACE(sizeof(pi));
	} else {
		struct in6_pktinfo pi = { 0 };

		memcpy(&pi.ipi6_addr, local->a, 16);
		cm->cmsg_level = IPPROTO_IPV6;
		cm->cmsg_type = IPV6_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
		mh->msg_controllen = CMSG_SPACE(sizeof(pi));
	}
}
