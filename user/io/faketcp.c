// SPDX-License-Identifier: MIT
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "kcpx_bpf.h"
#include "core/ftcpflow.h"
#include "io/addr.h"
#include "io/faketcp.h"
#include "io/ftcp_bpf.h"
#include "io/nft.h"
#include "io/udp.h"
#include "io/log.h"

/* a connect that has not finished after this long is given up and retried */
#define CONNECT_TIMEOUT_S 10

enum conn_state {
	CONN_CONNECTING, /* client: connect() in flight */
	CONN_EST,	 /* established, the flow is in the map */
};

struct ftcp_conn {
	int fd;
	enum conn_state st;
	struct kcpx_addr peer;
	struct kcpx_ftcp_key key;
	uint64_t since;	 /* monotonic seconds: connect started / established */
	uint64_t est_ns; /* monotonic ns: the flow went into the map */
};

struct ftcp_dg {
	struct kcpx_dgram d; /* what the tunnel sees: fd = the UDP socket, cfd = ep */
	struct kcpx_dgram *udp;
	struct kcpx_ftcp *ft;
	int ep;	 /* epoll over the TCP sockets: the listener or the connection(s) */
	int lfd; /* server: the listener */
	uint16_t lport;
	struct kcpx_addr peer; /* client: the server */
	struct ftcp_conn *conns;
	int nconns;
	uint64_t retry_at;    /* client: no new handshake before this second */
	bool connect_failing; /* client: said so once (a warning), quiet until it works */
	struct ftcp_dg *next;
};

struct kcpx_ftcp {
	struct kcpx_ftcp_config cfg;
	struct kcpx_ftcp_bpf *bpf;
	bool nft;
	struct ftcp_dg *dgs;
	struct kcpx_ftcp_counts n; /* .flows is counted when asked */
	bool told_no_wscale;	   /* warn_no_wscale() spoke */
};

static const struct kcpx_dgram_ops ftcp_ops;

static uint64_t now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *astr(const struct kcpx_addr *a)
{
	static char buf[KCPX_ADDRSTRLEN];

	return kcpx_addr_str(a, buf, sizeof(buf));
}

static int set_ttl(int fd, int family, int ttl)
{
	if (family == AF_INET6) {
		/* a dual-stack socket may carry IPv4: set both */
		setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl));
		return setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof(ttl)) ? -errno
											  : 0;
	}
	return setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl)) ? -errno : 0;
}

/*
 * The socket's next sequence number and the one it expects next, read with TCP_REPAIR
 * (CAP_NET_ADMIN): where the translation takes over. The window we announce is the
 * largest the field holds: scaled by what the handshake negotiated, it keeps a stateful
 * middlebox (conntrack's window tracking) from finding KCP's data in flight beyond the
 * window, which the socket's own 64 KiB-ish window would (docs/INTEROP.md "--tcp").
 */
static int read_seqs(int fd, struct kcpx_ftcp_flow *f)
{
	int on = 1, off = -1 /* TCP_REPAIR_OFF_NO_WP: no window probe */, q, err = 0;
	socklen_t len;
	__u32 v;

	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &on, sizeof(on)))
		return -errno;
	q = TCP_SEND_QUEUE;
	len = sizeof(v);
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q)) ||
	    getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &v, &len)) {
		err = -errno;
		goto out;
	}
	f->snd_nxt = v;
	q = TCP_RECV_QUEUE;
	len = sizeof(v);
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q)) ||
	    getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &v, &len)) {
		err = -errno;
		goto out;
	}
	f->rcv_nxt = v;
	f->rcv_isn = v;
	f->window = 0xffff;
out:
	setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &off, sizeof(off));
	return err;
}

/* Which interface holds this local address (0: none found). */
static int ifindex_of(const struct kcpx_addr *a)
{
	struct ifaddrs *ifa, *i;
	int idx = 0;

	if (getifaddrs(&ifa))
		return 0;
	for (i = ifa; i && !idx; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != a->sa.sa_family)
			continue;
		if (a->sa.sa_family == AF_INET &&
		    !memcmp(&((struct sockaddr_in *)i->ifa_addr)->sin_addr, &a->in.sin_addr, 4))
			idx = (int)if_nametoindex(i->ifa_name);
		if (a->sa.sa_family == AF_INET6 &&
		    !memcmp(&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, &a->in6.sin6_addr,
			    16))
			idx = (int)if_nametoindex(i->ifa_name);
	}
	freeifaddrs(ifa);
	return idx;
}

static bool addr_any(const struct kcpx_addr *a)
{
	if (a->sa.sa_family == AF_INET)
		return a->in.sin_addr.s_addr == htonl(INADDR_ANY);
	if (IN6_IS_ADDR_V4MAPPED(&a->in6.sin6_addr))
		return !memcmp(&a->in6.sin6_addr.s6_addr[12], "\0\0\0\0", 4);
	return IN6_IS_ADDR_UNSPECIFIED(&a->in6.sin6_addr);
}

/* Attach where this local address lives; a wildcard address: every interface that is up
 * and has an address. 0 when at least one interface has the translation. */
static int attach_local(struct kcpx_ftcp *ft, const struct kcpx_addr *local)
{
	struct ifaddrs *ifa, *i;
	int idx, err = -ENODEV, n = 0;

	if (!addr_any(local)) {
		idx = ifindex_of(local);
		if (!idx) {
			kcpx_io_logf(0, "--tcp: no interface has the address %s", astr(local));
			return -ENODEV;
		}
		return kcpx_ftcp_bpf_attach(ft->bpf, idx);
	}
	if (getifaddrs(&ifa))
		return -errno;
	for (i = ifa; i; i = i->ifa_next) {
		if (!i->ifa_addr || !(i->ifa_flags & IFF_UP) ||
		    (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
			continue;
		idx = (int)if_nametoindex(i->ifa_name);
		if (!idx)
			continue;
		/* attached for an earlier port (a port range): it serves this one too */
		err = kcpx_ftcp_bpf_attach(ft->bpf, idx);
		if (!err)
			n++;
	}
	freeifaddrs(ifa);
	return n ? 0 : err;
}

/*
 * Close a connection with a RST: no TIME_WAIT or FIN_WAIT socket is left holding the port
 * (we reuse it for the next handshake, a restarted daemon listens on it again). tell: at
 * full TTL, so the peer's socket and its translation (the flow's rcv_isn) learn the flow
 * ended; otherwise at TTL 1, dropped here (the peer is the one who ended it).
 */
static void conn_drop(struct ftcp_dg *g, int i, bool tell)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct ftcp_conn *c = &g->conns[i];

	if (c->st == CONN_EST)
		kcpx_ftcp_bpf_flow_del(g->ft->bpf, &c->key);
	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	if (tell)
		set_ttl(c->fd, c->peer.sa.sa_family, 64);
	epoll_ctl(g->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	g->conns[i] = g->conns[--g->nconns];
	/* the epoll data of the one moved into slot i */
	if (i < g->nconns) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = NULL };

		ev.data.u64 = (uint64_t)i + 1;
		if (g->conns[i].st == CONN_CONNECTING)
			ev.events = EPOLLOUT;
		epoll_ctl(g->ep, EPOLL_CTL_MOD, g->conns[i].fd, &ev);
	}
}

/*
 * The window we announce is 0xffff scaled by the handshake's window scale, and the peer's
 * (kcpx: the same; tcpraw: >= 0x8000 scaled) is as wide, so a middlebox that tracks
 * windows (conntrack) finds KCP's data in flight inside it: the peer's window is not
 * tracked, there is nothing to learn from it. Without window scaling (an end turned it
 * off, or a middlebox stripped the option) both windows are at most 64 KiB, and a
 * stateful firewall that drops "invalid" segments drops what KCP keeps in flight beyond
 * that: said once, with the way out.
 */
static void warn_no_wscale(struct ftcp_dg *g, const struct ftcp_conn *c)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ||
	    (ti.tcpi_options & TCPI_OPT_WSCALE))
		return;
	if (g->ft->told_no_wscale)
		return;
	g->ft->told_no_wscale = true;
	kcpx_io_logf(0,
		     "--tcp: flow %u <-> %s has no TCP window scaling (an end turned it off, or "
		     "a middlebox stripped the option): a firewall that tracks TCP windows may "
		     "drop what is in flight beyond 64 KiB; keep --sndwnd x --mtu under 64 KiB, "
		     "or turn net.ipv4.tcp_window_scaling on at both ends (said once)",
		     g->lport, astr(&c->peer));
}

/* The handshake is done: hand the flow to the translation. */
static int conn_established(struct ftcp_dg *g, struct ftcp_conn *c)
{
	struct kcpx_ftcp_flow f = { .state = KCPX_FTCP_EST };
	int err;

	err = read_seqs(c->fd, &f);
	if (err) {
		kcpx_io_logf(0,
			     "--tcp: reading the sequence numbers of %s: %s (needs "
			     "CAP_NET_ADMIN)",
			     astr(&c->peer), strerror(-err));
		return err;
	}
	warn_no_wscale(g, c);
	set_ttl(c->fd, c->peer.sa.sa_family, 1);
	kcpx_ftcp_key_make(&c->key, &c->peer, g->lport);
	f.rx_ns = f.tx_ns = c->est_ns = now_ns();
	err = kcpx_ftcp_bpf_flow_set(g->ft->bpf, &c->key, &f);
	if (err) {
		kcpx_io_logf(0, "--tcp: flow table: %s", strerror(-err));
		return err;
	}
	c->st = CONN_EST;
	c->since = now_s();
	g->ft->n.handshakes++;
	kcpx_io_logf(1, "--tcp: flow %u <-> %s established", g->lport, astr(&c->peer));
	return 0;
}

static int conn_add(struct ftcp_dg *g, int fd, const struct kcpx_addr *peer, enum conn_state st)
{
	struct epoll_event ev = { .events =
					  st == CONN_CONNECTING ? EPOLLOUT : EPOLLIN | EPOLLRDHUP };
	struct ftcp_conn *c;

	c = &g->conns[g->nconns];
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->st = st;
	c->peer = *peer;
	c->since = now_s();
	ev.data.u64 = (uint64_t)g->nconns + 1;
	if (epoll_ctl(g->ep, EPOLL_CTL_ADD, fd, &ev))
		return -errno;
	g->nconns++;
	return 0;
}

static void client_connect(struct ftcp_dg *g)
{
	int fd, on = 1, err;

	g->retry_at = now_s() + 1;
	fd = socket(g->peer.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (bind(fd, &g->d.local.sa, g->d.local.len) < 0 ||
	    (connect(fd, &g->peer.sa, g->peer.len) < 0 && errno != EINPROGRESS)) {
		err = -errno;
		kcpx_io_logf(0, "--tcp: connect %u -> %s: %s", g->lport, astr(&g->peer),
			     strerror(-err));
		close(fd);
		return;
	}
	if (conn_add(g, fd, &g->peer, CONN_CONNECTING))
		close(fd);
}

static bool peer_ip_equal(const struct kcpx_addr *a, const struct kcpx_addr *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (a->sa.sa_family == AF_INET)
		return a->in.sin_addr.s_addr == b->in.sin_addr.s_addr;
	return !memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, 16);
}

static void server_accept(struct ftcp_dg *g)
{
	for (;;) {
		struct kcpx_addr peer = { .len = sizeof(peer.ss) };
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		int fd, same = 0;

		fd = accept4(g->lfd, &peer.sa, &peer.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		for (int i = 0; i < g->nconns; i++) {
			if (kcpx_addr_equal(&g->conns[i].peer, &peer)) {
				/* the same 4-tuple again: the old flow is over */
				g->ft->n.end_dup++;
				conn_drop(g, i, false);
				break;
			}
		}
		for (int i = 0; i < g->nconns; i++)
			same += peer_ip_equal(&g->conns[i].peer, &peer);
		if (g->nconns >= KCPX_FTCP_CONNS || same >= KCPX_FTCP_CONNS_PER_IP) {
			/* refused with a RST at full TTL: the peer learns at once */
			g->ft->n.refused++;
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			close(fd);
			continue;
		}
		if (conn_add(g, fd, &peer, CONN_EST)) {
			close(fd);
			continue;
		}
		g->conns[g->nconns - 1].st = CONN_CONNECTING; /* not in the map yet */
		if (conn_established(g, &g->conns[g->nconns - 1]))
			conn_drop(g, g->nconns - 1, false);
	}
}

/* Events of the TCP sockets: connects finishing, accepts, FIN/RST/errors. */
static void ctl_events(struct ftcp_dg *g)
{
	struct epoll_event ev[16];
	char sink[2048];
	int n;

	n = epoll_wait(g->ep, ev, 16, 0);
	for (int k = 0; k < n; k++) {
		int i = (int)ev[k].data.u64 - 1, soerr = 0;
		socklen_t len = sizeof(soerr);
		struct ftcp_conn *c;
		ssize_t r;

		if (i < 0) {
			server_accept(g);
			continue;
		}
		if (i >= g->nconns)
			continue; /* dropped by an earlier event of this batch */
		c = &g->conns[i];
		if (c->st == CONN_CONNECTING) {
			struct epoll_event mod = { .events = EPOLLIN | EPOLLRDHUP,
						   .data.u64 = (uint64_t)i + 1 };

			getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
			if (soerr || conn_established(g, c)) {
				if (soerr)
					kcpx_io_logf(g->connect_failing ? 2 : 0,
						     "--tcp: connect %u -> %s: %s (retrying every "
						     "second)",
						     g->lport, astr(&c->peer), strerror(soerr));
				g->connect_failing = true;
				g->ft->n.connect_failed++;
				conn_drop(g, i, false);
				continue;
			}
			epoll_ctl(g->ep, EPOLL_CTL_MOD, c->fd, &mod);
			g->connect_failing = false;
			continue;
		}
		/* Data reaches the socket only before its flow was in the map: discard. */
		do
			r = read(c->fd, sink, sizeof(sink));
		while (r > 0);
		if (r == 0 || (r < 0 && errno != EAGAIN) ||
		    (ev[k].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
			kcpx_io_logf(1, "--tcp: flow %u <-> %s closed by the peer (%s)", g->lport,
				     astr(&c->peer), r < 0 ? strerror(errno) : "FIN");
			g->ft->n.end_closed++;
			conn_drop(g, i, false);
		}
	}
}

static int ftcp_recv(struct kcpx_dgram *d, struct kcpx_pkt *pkts, int n)
{
	struct ftcp_dg *g = (struct ftcp_dg *)d;

	return g->udp->ops->recv(g->udp, pkts, n);
}

static void ftcp_ctl(struct kcpx_dgram *d)
{
	ctl_events((struct ftcp_dg *)d);
}

static int ftcp_send(struct kcpx_dgram *d, const struct kcpx_pkt *pkts, int n)
{
	struct ftcp_dg *g = (struct ftcp_dg *)d;

	return g->udp->ops->send(g->udp, pkts, n);
}

static int ftcp_flush(struct kcpx_dgram *d)
{
	struct ftcp_dg *g = (struct ftcp_dg *)d;

	return g->udp->ops->flush ? g->udp->ops->flush(g->udp) : 0;
}

static void ftcp_close(struct kcpx_dgram *d)
{
	struct ftcp_dg *g = (struct ftcp_dg *)d, **pp;

	if (!g)
		return;
	while (g->nconns)
		conn_drop(g, g->nconns - 1, true);
	for (pp = &g->ft->dgs; *pp; pp = &(*pp)->next) {
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	}
	kcpx_ftcp_bpf_port_del(g->ft->bpf, g->lport);
	if (g->ft->nft)
		kcpx_nft_port_del(g->lport);
	if (g->lfd >= 0)
		close(g->lfd);
	close(g->ep);
	g->udp->ops->close(g->udp);
	free(g->conns);
	free(g);
}

static const struct kcpx_dgram_ops ftcp_ops = {
	.recv = ftcp_recv,
	.send = ftcp_send,
	.ctl = ftcp_ctl,
	.flush = ftcp_flush,
	.close = ftcp_close,
};

static int server_listen(struct ftcp_dg *g, const struct kcpx_addr *bind_)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0 };
	int on = 1;

	g->lfd = socket(bind_->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (g->lfd < 0)
		return -errno;
	setsockopt(g->lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (bind(g->lfd, &g->d.local.sa, g->d.local.len) < 0 || listen(g->lfd, 128) < 0 ||
	    epoll_ctl(g->ep, EPOLL_CTL_ADD, g->lfd, &ev))
		return -errno;
	return 0;
}

int kcpx_ftcp_open(struct kcpx_ftcp *ft, const struct kcpx_addr *bind_,
		   const struct kcpx_addr *peer, struct kcpx_dgram **out)
{
	struct kcpx_udp_config uc = {
		.bind = bind_, .peer = peer, .sockbuf = ft->cfg.sockbuf, .dscp = ft->cfg.dscp
	};
	struct ftcp_dg *g;
	int err;

	*out = NULL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->lfd = -1;
	g->ft = ft;
	g->conns = calloc(ft->cfg.server ? KCPX_FTCP_CONNS : 1, sizeof(*g->conns));
	g->ep = epoll_create1(EPOLL_CLOEXEC);
	if (!g->conns || g->ep < 0) {
		err = g->ep < 0 ? -errno : -ENOMEM;
		goto err_free;
	}
	err = kcpx_udp_open(&g->udp, &uc);
	if (err)
		goto err_free;
	g->d.ops = &ftcp_ops;
	g->d.fd = g->udp->fd;
	g->d.cfd = g->ep;
	g->d.short_empty = true;
	g->d.name = "udp+tcp";
	g->d.local = g->udp->local;
	g->lport = (uint16_t)kcpx_addr_port(&g->d.local);
	if (peer)
		g->peer = *peer;
	err = attach_local(ft, &g->d.local);
	if (err)
		goto err_udp;
	err = kcpx_ftcp_bpf_port_add(ft->bpf, g->lport);
	if (err)
		goto err_udp;
	if (ft->nft)
		kcpx_nft_port_add(g->lport);
	if (ft->cfg.server) {
		err = server_listen(g, bind_);
		if (err) {
			kcpx_io_logf(0, "--tcp: TCP listen on %s: %s", astr(&g->d.local),
				     strerror(-err));
			goto err_port;
		}
	} else {
		client_connect(g);
	}
	g->next = ft->dgs;
	ft->dgs = g;
	*out = &g->d;
	return 0;

err_port:
	kcpx_ftcp_bpf_port_del(ft->bpf, g->lport);
	if (ft->nft)
		kcpx_nft_port_del(g->lport);
err_udp:
	if (g->lfd >= 0)
		close(g->lfd);
	g->udp->ops->close(g->udp);
err_free:
	if (g->ep >= 0)
		close(g->ep);
	free(g->conns);
	free(g);
	return err;
}

void kcpx_ftcp_tick(struct kcpx_ftcp *ft)
{
	uint64_t now = now_s(), nns = now_ns();

	for (struct ftcp_dg *g = ft->dgs; g; g = g->next) {
		ctl_events(g);
		for (int i = g->nconns - 1; i >= 0; i--) {
			struct ftcp_conn *c = &g->conns[i];
			enum kcpx_ftcp_verdict v;
			struct kcpx_ftcp_flow f;

			if (c->st == CONN_CONNECTING) {
				if (now - c->since >= CONNECT_TIMEOUT_S) {
					kcpx_io_logf(g->connect_failing ? 2 : 0,
						     "--tcp: connect %u -> %s timed out (retrying)",
						     g->lport, astr(&c->peer));
					g->connect_failing = true;
					ft->n.connect_failed++;
					conn_drop(g, i, false);
				}
				continue;
			}
			if (kcpx_ftcp_bpf_flow_get(ft->bpf, &c->key, &f)) {
				conn_drop(g, i, false);
				continue;
			}
			/* the programs may have stamped the flow after nns was read: judge()
			 * takes that as "just now" (core/ftcpflow.h) */
			v = kcpx_ftcp_judge(&f, nns, c->est_ns, ft->cfg.server);
			switch (v) {
			case KCPX_FTCP_KEEP:
				continue;
			case KCPX_FTCP_GONE_RESET:
				ft->n.end_reset++;
				break;
			case KCPX_FTCP_GONE_SYN:
				ft->n.end_syn++;
				break;
			case KCPX_FTCP_GONE_SILENT:
				ft->n.end_silent++;
				break;
			case KCPX_FTCP_GONE_IDLE:
				ft->n.end_idle++;
				break;
			}
			if (v == KCPX_FTCP_GONE_SILENT)
				kcpx_io_logf(1,
					     "--tcp: flow %u <-> %s: nothing back for %d s, new "
					     "handshake",
					     g->lport, astr(&c->peer), KCPX_FTCP_SILENT_S);
			else if (v == KCPX_FTCP_GONE_IDLE)
				kcpx_io_logf(1, "--tcp: flow %u <-> %s idle, closed", g->lport,
					     astr(&c->peer));
			else
				kcpx_io_logf(1, "--tcp: flow %u <-> %s: %s, new handshake",
					     g->lport, astr(&c->peer), kcpx_ftcp_verdict_str(v));
			/* an idle flow's peer may still be there: tell it */
			conn_drop(g, i, v == KCPX_FTCP_GONE_IDLE);
		}
		if (!ft->cfg.server && g->nconns == 0 && now >= g->retry_at)
			client_connect(g);
	}
	{
		struct kcpx_ftcp_counts c;

		/* for `kcpx stats IFACE` (pinned) and anyone reading the map */
		kcpx_ftcp_counts(ft, &c);
		kcpx_ftcp_bpf_publish(ft->bpf, &c);
	}
}

int kcpx_ftcp_stats(struct kcpx_ftcp *ft, struct kcpx_ftcp_stats *s)
{
	return kcpx_ftcp_bpf_stats(ft->bpf, s);
}

void kcpx_ftcp_counts(const struct kcpx_ftcp *ft, struct kcpx_ftcp_counts *c)
{
	*c = ft->n;
	c->flows = 0;
	for (const struct ftcp_dg *g = ft->dgs; g; g = g->next)
		for (int i = 0; i < g->nconns; i++)
			c->flows += g->conns[i].st == CONN_EST;
}

int kcpx_ftcp_new(struct kcpx_ftcp **out, const struct kcpx_ftcp_config *cfg)
{
	struct kcpx_ftcp *ft;
	int err;

	*out = NULL;
	ft = calloc(1, sizeof(*ft));
	if (!ft)
		return -ENOMEM;
	ft->cfg = *cfg;
	err = kcpx_ftcp_bpf_open(&ft->bpf);
	if (err) {
		free(ft);
		return err;
	}
	if (cfg->pin_ifname) {
		err = kcpx_ftcp_bpf_pin(ft->bpf, cfg->pin_ifname);
		if (err)
			kcpx_io_logf(0,
				     "--tcp: pinning the counters under %s/%s failed (%s): `kcpx "
				     "stats %s` will not show them",
				     KCPX_BPF_PIN_ROOT, cfg->pin_ifname, strerror(-err),
				     cfg->pin_ifname);
		else
			kcpx_io_logf(1, "--tcp: counters pinned under %s/%s", KCPX_BPF_PIN_ROOT,
				     cfg->pin_ifname);
	}
	kcpx_nft_down_stale();
	/* Without the table the kernel's TTL-1 packets still die at the first router; go on. */
	ft->nft = !kcpx_nft_open();
	*out = ft;
	return 0;
}

void kcpx_ftcp_free(struct kcpx_ftcp *ft)
{
	if (!ft)
		return;
	while (ft->dgs)
		ftcp_close(&ft->dgs->d);
	kcpx_ftcp_bpf_close(ft->bpf);
	if (ft->nft)
		kcpx_nft_close();
	free(ft);
}
