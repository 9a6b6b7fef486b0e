// SPDX-License-Identifier: MIT
/*
 * The plain UDP datagram backend: one non-blocking socket, batched with recvmmsg and
 * sendmmsg. Used where XDP is unavailable (`kcpx client|server`) and as the reference
 * the AF_XDP backend is measured against.
 */
#include "io/udp.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/ip.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct udp_dgram {
	struct kcpx_dgram d;
	bool connected;
	struct mmsghdr msgs[64];
	struct iovec iov[64];
};

#define UDP_BATCH 64

static int udp_recv(struct kcpx_dgram *d, struct kcpx_pkt *pkts, int n)
{
	struct udp_dgram *u = (struct udp_dgram *)d;
	int got;

	if (n > UDP_BATCH)
		n = UDP_BATCH;
	for (int i = 0; i < n; i++) {
		u->iov[i].iov_base = pkts[i].buf;
		u->iov[i].iov_len = KCPX_PKT_MAX;
		memset(&u->msgs[i].msg_hdr, 0, sizeof(u->msgs[i].msg_hdr));
		u->msgs[i].msg_hdr.msg_iov = &u->iov[i];
		u->msgs[i].msg_hdr.msg_iovlen = 1;
		u->msgs[i].msg_hdr.msg_name = &pkts[i].addr.ss;
		u->msgs[i].msg_hdr.msg_namelen = sizeof(pkts[i].addr.ss);
	}
	got = recvmmsg(d->fd, u->msgs, n, MSG_DONTWAIT, NULL);
	if (got < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -errno;
	for (int i = 0; i < got; i++) {
		pkts[i].len = u->msgs[i].msg_len;
		pkts[i].addr.len = u->msgs[i].msg_hdr.msg_namelen;
		/* A datagram larger than our buffer is truncated: mark it so it is dropped. */
		if (u->msgs[i].msg_hdr.msg_flags & MSG_TRUNC)
			pkts[i].len = KCPX_PKT_MAX + 1;
	}
	return got;
}

static int udp_send(struct kcpx_dgram *d, const struct kcpx_pkt *pkts, int n)
{
	struct udp_dgram *u = (struct udp_dgram *)d;
	int sent = 0;

	while (sent < n) {
		int m = n - sent, r;
		if (m > UDP_BATCH)
			m = UDP_BATCH;
		for (int i = 0; i < m; i++) {
			const struct kcpx_pkt *p = &pkts[sent + i];
			u->iov[i].iov_base = p->buf;
			u->iov[i].iov_len = p->len;
			memset(&u->msgs[i].msg_hdr, 0, sizeof(u->msgs[i].msg_hdr));
			u->msgs[i].msg_hdr.msg_iov = &u->iov[i];
			u->msgs[i].msg_hdr.msg_iovlen = 1;
			if (!u->connected) {
				u->msgs[i].msg_hdr.msg_name = (void *)&p->addr.ss;
				u->msgs[i].msg_hdr.msg_namelen = p->addr.len;
			}
		}
		r = sendmmsg(d->fd, u->msgs, m, MSG_DONTWAIT);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
				return sent;
			/* ECONNREFUSED (an ICMP from a peer not yet up) and the like: the
			 * datagram is gone, as it would be on the wire; KCP retransmits. */
			if (errno == ECONNREFUSED || errno == EHOSTUNREACH ||
			    errno == ENETUNREACH) {
				sent++;
				continue;
			}
			return sent ? sent : -errno;
		}
		sent += r;
	}
	return sent;
}

static void udp_close(struct kcpx_dgram *d)
{
	if (!d)
		return;
	close(d->fd);
	free(d);
}

static const struct kcpx_dgram_ops udp_ops = {
	.recv = udp_recv,
	.send = udp_send,
	.flush = NULL,
	.close = udp_close,
};

static void set_bufs(int fd, int bytes)
{
	if (bytes <= 0)
		return;
	/* FORCE variants pass the rmem_max/wmem_max caps when we have CAP_NET_ADMIN;
	 * fall back to the capped ones otherwise. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof(bytes)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes));
}

int kcpx_udp_open(struct kcpx_dgram **out, const struct kcpx_udp_config *cfg)
{
	int family = cfg->bind ? cfg->bind->sa.sa_family : cfg->peer->sa.sa_family;
	struct udp_dgram *u;
	int fd, err;

	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = -errno;
		goto err_free;
	}
	set_bufs(fd, cfg->sockbuf);
	if (cfg->dscp > 0) {
		int tos = cfg->dscp << 2;
		if (family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof(tos));
		else
			setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
	}
	if (cfg->bind) {
		/* no SO_REUSEADDR: for UDP it lets any local user bind the same port on a
		 * more specific address and receive the tunnel's datagrams */
		if (bind(fd, &cfg->bind->sa, cfg->bind->len) < 0) {
			err = -errno;
			goto err_close;
		}
	}
	if (cfg->peer) {
		if (connect(fd, &cfg->peer->sa, cfg->peer->len) < 0) {
			err = -errno;
			goto err_close;
		}
		u->connected = true;
	}
	u->d.local.len = sizeof(u->d.local.ss);
	getsockname(fd, &u->d.local.sa, &u->d.local.len);
	u->d.ops = &udp_ops;
	u->d.fd = fd;
	u->d.name = "udp";
	*out = &u->d;
	return 0;

err_close:
	close(fd);
err_free:
	free(u);
	return err;
}
