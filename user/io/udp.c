// SPDX-License-Identifier: MIT
/*
 * The plain UDP datagram backend: one non-blocking socket, batched with recvmmsg and
 * sendmmsg. Used where XDP is unavailable (`kcpx client|server`) and as the reference
 * the AF_XDP backend is measured against.
 */
#include "io/udp.h"
#include "io/addr.h"
#include "io/pktinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/ip.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct udp_dgram {
	struct kcpx_dgram d;
	bool connected;
	/* bound to any address: each datagram says which of ours it came to, and answers
	 * leave from the one the tunnel names (kcpx_pkt.local) */
	bool pktinfo;
	struct mmsghdr msgs[64];
	struct iovec iov[64];
	union kcpx_pktinfo_buf ctl[64];
	/* what recvmmsg may attach: the local address, the socket's drop count */
	union {
		char buf[KCPX_PKTINFO_SPACE + CMSG_SPACE(sizeof(uint32_t))];
		struct cmsghdr align;
	} rctl[64];
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
		u->msgs[i].msg_hdr.msg_control = u->rctl[i].buf;
		u->msgs[i].msg_hdr.msg_controllen = sizeof(u->rctl[i].buf);
	}
	got = recvmmsg(d->fd, u->msgs, n, MSG_DONTWAIT, NULL);
	if (got < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -errno;
	for (int i = 0; i < got; i++) {
		struct msghdr *mh = &u->msgs[i].msg_hdr;

		/* SO_RXQ_OVFL: the socket's drops when this datagram was queued (only once
		 * there were any); the last datagram's is the newest */
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm))
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_RXQ_OVFL &&
			    cm->cmsg_len >= CMSG_LEN(sizeof(uint32_t)))
				memcpy(&d->rx_drops, CMSG_DATA(cm), sizeof(uint32_t));
		pkts[i].len = u->msgs[i].msg_len;
		pkts[i].addr.len = u->msgs[i].msg_hdr.msg_namelen;
		if (u->pktinfo)
			kcpx_pktinfo_read(&u->msgs[i].msg_hdr, &pkts[i].local);
		else
			pkts[i].local.family = 0;
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
			if (u->pktinfo)
				kcpx_pktinfo_set(&u->msgs[i].msg_hdr, &u->ctl[i], &p->addr,
						 &p->local);
		}
		r = sendmmsg(d->fd, u->msgs, m, MSG_DONTWAIT);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if ((errno == EINVAL || errno == EADDRNOTAVAIL) &&
			    u->msgs[0].msg_hdr.msg_control) {
				/* the address it names is not ours any more: from the route's
				 * source then, as without pktinfo */
				u->msgs[0].msg_hdr.msg_control = NULL;
				u->msgs[0].msg_hdr.msg_controllen = 0;
				if (sendmsg(d->fd, &u->msgs[0].msg_hdr, MSG_DONTWAIT) < 0 &&
				    (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS))
					return sent;
				sent++;
				continue;
			}
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

/*
 * The reuseport group's steering (classic BPF, run on the UDP payload with the IP header
 * reachable at SKF_NET_OFF): socket index = UDP source port % n. IPv6 extension headers
 * are not walked: with them the index is some other number, still < n. An index the
 * group does not have yet (threads still starting) falls back to the kernel's hash.
 */
static int steer_attach(int fd, unsigned n)
{
	/* the IP version from the header itself: a dual-stack socket gets both */
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, (__u32)SKF_NET_OFF),
		BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 4),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 6, 0, 3),
		/* IPv6: the UDP header follows the fixed 40 bytes */
		BPF_STMT(BPF_LD | BPF_H | BPF_ABS, (__u32)SKF_NET_OFF + 40),
		BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, n),
		BPF_STMT(BPF_RET | BPF_A, 0),
		/* IPv4: after IHL x 4 bytes */
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, (__u32)SKF_NET_OFF),
		BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x0f),
		BPF_STMT(BPF_ALU | BPF_LSH | BPF_K, 2),
		BPF_STMT(BPF_MISC | BPF_TAX, 0),
		BPF_STMT(BPF_LD | BPF_H | BPF_IND, (__u32)SKF_NET_OFF),
		BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, n),
		BPF_STMT(BPF_RET | BPF_A, 0),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof(prog)) < 0)
		return -errno;
	return 0;
}

/* Client: a free local port p with p % 64 == (hint - 1) % 64 (a few random tries), else
 * any. */
static void bind_hint(int fd, int family, unsigned hint)
{
	struct kcpx_addr a;

	memset(&a, 0, sizeof(a));
	a.sa.sa_family = (sa_family_t)family;
	a.len = family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	for (int i = 0; i < 16; i++) {
		unsigned p = 32768 + (((unsigned)rand() % 448) * 64) + (hint - 1) % 64;

		kcpx_addr_set_port(&a, (uint16_t)p);
		if (!bind(fd, &a.sa, a.len))
			return;
	}
}

static bool udp_bound_any(const struct kcpx_addr *a)
{
	if (a->sa.sa_family == AF_INET)
		return a->in.sin_addr.s_addr == htonl(INADDR_ANY);
	return a->sa.sa_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&a->in6.sin6_addr);
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
	{
		int on = 1;

		/* the receive buffer's drops, for the peer's controller (path.c); without
		 * them (an old kernel) nothing is reported */
		setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &on, sizeof(on));
	}
	if (cfg->dscp > 0) {
		int tos = cfg->dscp << 2;
		if (family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof(tos));
		else
			setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
	}
	if (cfg->bind) {
		int on = 1;

		/* no SO_REUSEADDR: for UDP it lets any local user bind the same port on a
		 * more specific address and receive the tunnel's datagrams. SO_REUSEPORT
		 * only joins sockets of the same user, and we bind as root. */
		if (cfg->group > 1 &&
		    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) < 0) {
			err = -errno;
			goto err_close;
		}
		if (bind(fd, &cfg->bind->sa, cfg->bind->len) < 0) {
			err = -errno;
			goto err_close;
		}
		if (cfg->group > 1) {
			err = steer_attach(fd, cfg->group);
			if (err)
				goto err_close;
		}
	} else if (cfg->port_hint) {
		bind_hint(fd, family, cfg->port_hint);
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
	/* a server bound to any address answers each client from the address it wrote to
	 * (its connected socket drops anything else) */
	if (cfg->bind && !cfg->peer && udp_bound_any(&u->d.local))
		u->pktinfo = !kcpx_pktinfo_enable(fd, family);
	u->d.ops = &udp_ops;
	u->d.fd = fd;
	u->d.short_empty = true;
	u->d.name = "udp";
	*out = &u->d;
	return 0;

err_close:
	close(fd);
err_free:
	free(u);
	return err;
}
