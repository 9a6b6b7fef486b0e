// SPDX-License-Identifier: MIT
/*
 * The host's own addresses over rtnetlink (io/ifaddr.h). The kernel drops a datagram
 * whose source is one of the host's addresses or subnet broadcasts in its routing input
 * (fib_validate_source, without accept_local); AF_XDP bypasses that, so the XDP program
 * checks the same list, which this file keeps.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>

#include "io/ifaddr.h"

struct kcpx_ifaddr {
	struct mnl_socket *ev; /* subscribed to address changes */
	bool changed;
};

struct collect {
	struct kcpx_martians *m;
	int lost;
};

static void add4(struct collect *c, const void *p)
{
	struct kcpx_martians *m = c->m;
	__be32 a;

	memcpy(&a, p, 4);
	/* already martian by rule (lib/martian.h): no entry spent on them */
	if (!a || a == htonl(INADDR_BROADCAST) || (ntohl(a) >> 24) == 127)
		return;
	for (__u32 i = 0; i < m->n4; i++)
		if (m->v4[i] == a)
			return;
	if (m->n4 == KCPX_MARTIAN4_MAX) {
		c->lost++;
		return;
	}
	m->v4[m->n4++] = a;
}

static void add6(struct collect *c, const void *p)
{
	static const __be32 loop[4] = { 0, 0, 0, __builtin_bswap32(1) };
	struct kcpx_martians *m = c->m;
	__be32 a[4];

	memcpy(a, p, 16);
	if (!memcmp(a, loop, 16) || (ntohl(a[0]) >> 24) == 0xff)
		return;
	for (__u32 i = 0; i < m->n6; i++)
		if (!memcmp(m->v6[i], a, 16))
			return;
	if (m->n6 == KCPX_MARTIAN6_MAX) {
		c->lost++;
		return;
	}
	memcpy(m->v6[m->n6++], a, 16);
}

static int addr_attr_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(a);

	if (mnl_attr_type_valid(a, IFA_MAX) < 0)
		return MNL_CB_OK;
	if ((type == IFA_ADDRESS || type == IFA_LOCAL || type == IFA_BROADCAST) &&
	    mnl_attr_validate(a, MNL_TYPE_BINARY) >= 0)
		tb[type] = a;
	return MNL_CB_OK;
}

static int addr_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct nlattr *tb[IFA_MAX + 1] = { 0 };
	struct collect *c = data;
	const struct ifaddrmsg *ifa;
	const struct nlattr *local;
	size_t alen;

	if (nlh->nlmsg_type != RTM_NEWADDR ||
	    mnl_nlmsg_get_payload_len(nlh) < sizeof(struct ifaddrmsg))
		return MNL_CB_OK;
	ifa = mnl_nlmsg_get_payload(nlh);
	if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6)
		return MNL_CB_OK;
	alen = ifa->ifa_family == AF_INET ? 4 : 16;
	mnl_attr_parse(nlh, sizeof(*ifa), addr_attr_cb, tb);
	/* On a point-to-point link IFA_ADDRESS is the peer's: IFA_LOCAL is ours. */
	local = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
	if (local && mnl_attr_get_payload_len(local) == alen)
		(alen == 4 ? add4 : add6)(c, mnl_attr_get_payload(local));
	if (tb[IFA_BROADCAST] && alen == 4 && mnl_attr_get_payload_len(tb[IFA_BROADCAST]) == 4)
		add4(c, mnl_attr_get_payload(tb[IFA_BROADCAST]));
	return MNL_CB_OK;
}

int kcpx_ifaddr_read(struct kcpx_martians *m)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct collect c = { .m = m };
	struct mnl_socket *nl;
	struct ifaddrmsg *ifa;
	unsigned portid, seq = (unsigned)time(NULL);
	ssize_t n;
	int r, err = 0;

	memset(m, 0, sizeof(*m));
	nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		err = -errno;
		goto out;
	}
	portid = mnl_socket_get_portid(nl);
	nlh->nlmsg_type = RTM_GETADDR;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = seq;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = AF_UNSPEC;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		err = -errno;
		goto out;
	}
	do {
		n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (n < 0) {
			err = -errno;
			goto out;
		}
		r = mnl_cb_run(buf, (size_t)n, seq, portid, addr_cb, &c);
	} while (r > MNL_CB_STOP);
	if (r < 0)
		err = -errno;
out:
	mnl_socket_close(nl);
	if (err) {
		memset(m, 0, sizeof(*m));
		return err;
	}
	return c.lost;
}

int kcpx_ifaddr_watch(struct kcpx_ifaddr **out)
{
	struct kcpx_ifaddr *w = calloc(1, sizeof(*w));
	int err;

	if (!w)
		return -ENOMEM;
	w->ev = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (!w->ev || mnl_socket_bind(w->ev, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR,
				      MNL_SOCKET_AUTOPID) < 0) {
		err = -errno;
		if (w->ev)
			mnl_socket_close(w->ev);
		free(w);
		return err;
	}
	w->changed = true; /* whatever changed before the subscription */
	*out = w;
	return 0;
}

int kcpx_ifaddr_poll(struct kcpx_ifaddr *w, struct kcpx_martians *m, int *lost)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct kcpx_martians fresh;
	int r;

	/* What the messages say does not matter, only that the kernel sent them (a user
	 * process cannot send to these groups, and nl_pid 0 is the kernel's). */
	for (;;) {
		struct sockaddr_nl from;
		socklen_t flen = sizeof(from);
		ssize_t n = recvfrom(mnl_socket_get_fd(w->ev), buf, sizeof(buf), 0,
				     (struct sockaddr *)&from, &flen);

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == ENOBUFS) { /* overrun: changes were lost, read anew */
				w->changed = true;
				continue;
			}
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (flen == sizeof(from) && from.nl_pid == 0)
			w->changed = true;
	}
	if (!w->changed)
		return 0;
	r = kcpx_ifaddr_read(&fresh);
	if (r < 0)
		return r;
	w->changed = false;
	*m = fresh;
	*lost = r;
	return 1;
}

void kcpx_ifaddr_close(struct kcpx_ifaddr *w)
{
	if (!w)
		return;
	mnl_socket_close(w->ev);
	free(w);
}
