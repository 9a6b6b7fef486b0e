// SPDX-License-Identifier: MIT
/*
 * The AF_XDP datagram backend. Per RX queue: one AF_XDP socket with its own UMEM whose
 * frames are split in two fixed pools. RX frames circulate fill -> RX -> (copied out)
 * -> fill and are never used for TX; TX frames circulate free list -> TX -> completion
 * -> free list. So the fill ring can always take back every RX frame we hold, and a full
 * TX pool never starves RX.
 *
 * Copy mode (all a veth offers) moves at most 32 TX descriptors per kick, so flush keeps
 * kicking while the TX ring holds descriptors the kernel has not taken yet.
 *
 * The event loop sees one fd: an epoll set of the AF_XDP sockets and the kernel UDP socket.
 */
#include "io/xsk.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/ethtool.h>
#include <linux/if_ether.h>
#include <linux/if_xdp.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>

#include <libmnl/libmnl.h>
#include <xdp/xsk.h>

#include "io/clock.h"

#define XSK_FRAME	   2048u
#define XSK_DEFAULT_FRAMES 2048u
#define XSK_KICKS_MAX	   64 /* per queue and flush: 64 * 32 = a full TX ring */
#define NH_MAX		   64
#define NH_REFRESH_MS	   1000
#define NH_RETRY_MS	   100
#define STATS_PUBLISH_MS   1000
#define KERNEL_BATCH	   16
#define ETH_HDR		   14
#define IP4_HDR		   20
#define IP6_HDR		   40
#define UDP_HDR		   8

struct xsk_q {
	struct xsk_socket *xsk;
	struct xsk_umem *umem;
	struct xsk_ring_prod fill, tx;
	struct xsk_ring_cons comp, rx;
	uint8_t *area;
	size_t area_len;
	unsigned queue;
	unsigned nrx, ntx; /* frames in the RX and TX pools (and the ring sizes) */
	uint64_t *spare;   /* RX frames waiting to go back to the fill ring */
	unsigned nspare;
	uint64_t *free_tx; /* TX frames not on a ring */
	unsigned nfree;
	unsigned pending; /* reserved on TX during this send, not submitted yet */
	bool in_map;
};

/* What we know about sending to one peer address. */
struct nexthop {
	bool used;
	bool usable;	  /* routed out of our interface and the next hop's MAC known */
	bool src_learned; /* src is the address the peer sent to (not the route's) */
	bool have_src;
	bool nudge; /* the kernel's entry is stale: send one through the kernel */
	int family;
	uint8_t addr[16];
	uint8_t src[16];
	uint8_t mac[ETH_ALEN];
	uint32_t checked_ms;
	uint32_t used_ms;
};

struct xsk_dgram {
	struct kcpx_dgram d;
	struct kcpx_xdp *xdp;
	char ifname[IF_NAMESIZE];
	int ifindex;
	bool noarp; /* loopback or NOARP: no link-layer addresses to resolve */
	uint8_t mac[ETH_ALEN];
	int nq;
	struct xsk_q *q;
	unsigned rr;
	int udp_fd;
	int family;	   /* of udp_fd: AF_INET6 sockets see IPv4 peers v4-mapped */
	uint16_t lport_be; /* our UDP port, network order */
	bool bound_any;	   /* source address chosen per peer */
	uint8_t bound_addr[16];
	bool lport_registered;
	uint8_t tos; /* DSCP << 2 */
	uint16_t ip_id;
	struct mnl_socket *nl;
	unsigned nl_portid, nl_seq;
	struct nexthop nh[NH_MAX];
	struct kcpx_xsk_stats st;
	uint32_t published_ms;
};

static inline uint64_t csum_add(uint64_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;

	/* one's-complement sums are byte-order independent: add native words, fold later */
	for (; len >= 4; p += 4, len -= 4) {
		uint32_t w;
		memcpy(&w, p, 4);
		sum += w;
	}
	if (len >= 2) {
		uint16_t w;
		memcpy(&w, p, 2);
		sum += w;
		p += 2;
		len -= 2;
	}
	if (len) {
		uint16_t w = 0;
		memcpy(&w, p, 1);
		sum += w;
	}
	return sum;
}

static inline uint16_t csum_fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* The UDP pseudo-header sum (addresses, protocol, length), unfolded. */
static uint64_t pseudo_sum(int family, const uint8_t *src, const uint8_t *dst, uint16_t ulen)
{
	size_t alen = family == AF_INET ? 4 : 16;
	uint64_t s = csum_add(0, src, alen);

	s = csum_add(s, dst, alen);
	return s + htons(IPPROTO_UDP) + htons(ulen);
}

/* ---- next hops: route and neighbour tables over rtnetlink ---- */

struct route_res {
	int oif;
	bool have_gw, have_src;
	uint8_t gw[16], src[16];
};

struct neigh_res {
	bool have_mac;
	uint16_t state;
	uint8_t mac[ETH_ALEN];
};

static int route_attr_cb(const struct nlattr *a, void *data)
{
	struct route_res *r = data;
	uint16_t len = mnl_attr_get_payload_len(a);

	switch (mnl_attr_get_type(a)) {
	case RTA_OIF:
		if (len == 4)
			r->oif = (int)mnl_attr_get_u32(a);
		break;
	case RTA_GATEWAY:
		if (len == 4 || len == 16) {
			memcpy(r->gw, mnl_attr_get_payload(a), len);
			r->have_gw = true;
		}
		break;
	case RTA_PREFSRC:
		if (len == 4 || len == 16) {
			memcpy(r->src, mnl_attr_get_payload(a), len);
			r->have_src = true;
		}
		break;
	}
	return MNL_CB_OK;
}

static int route_cb(const struct nlmsghdr *nlh, void *data)
{
	if (nlh->nlmsg_type != RTM_NEWROUTE)
		return MNL_CB_OK;
	mnl_attr_parse(nlh, sizeof(struct rtmsg), route_attr_cb, data);
	return MNL_CB_OK;
}

static int neigh_attr_cb(const struct nlattr *a, void *data)
{
	struct neigh_res *n = data;

	if (mnl_attr_get_type(a) == NDA_LLADDR && mnl_attr_get_payload_len(a) == ETH_ALEN) {
		memcpy(n->mac, mnl_attr_get_payload(a), ETH_ALEN);
		n->have_mac = true;
	}
	return MNL_CB_OK;
}

static int neigh_cb(const struct nlmsghdr *nlh, void *data)
{
	struct neigh_res *n = data;
	const struct ndmsg *ndm = mnl_nlmsg_get_payload(nlh);

	if (nlh->nlmsg_type != RTM_NEWNEIGH)
		return MNL_CB_OK;
	n->state = ndm->ndm_state;
	mnl_attr_parse(nlh, sizeof(*ndm), neigh_attr_cb, data);
	return MNL_CB_OK;
}

/* One request, its answer and the ACK. Returns 0 or -errno (the kernel's, e.g. -ENOENT). */
static int nl_query(struct xsk_dgram *x, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	char buf[8192];
	ssize_t n;
	int r;

	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = ++x->nl_seq;
	if (mnl_socket_sendto(x->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		n = mnl_socket_recvfrom(x->nl, buf, sizeof(buf));
		if (n < 0)
			return -errno; /* SO_RCVTIMEO: never wait long on the data path */
		r = mnl_cb_run(buf, (size_t)n, x->nl_seq, x->nl_portid, cb, data);
		if (r == MNL_CB_STOP)
			return 0;
		if (r < 0 && errno != ESRCH) /* ESRCH: a late answer to an earlier query */
			return -errno;
	}
}

static int nl_route(struct xsk_dgram *x, int family, const uint8_t *dst, struct route_res *r)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rtm;

	nlh->nlmsg_type = RTM_GETROUTE;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = (uint8_t)family;
	rtm->rtm_dst_len = family == AF_INET ? 32 : 128;
	mnl_attr_put(nlh, RTA_DST, family == AF_INET ? 4 : 16, dst);
	memset(r, 0, sizeof(*r));
	return nl_query(x, nlh, route_cb, r);
}

static int nl_neigh(struct xsk_dgram *x, int family, const uint8_t *ip, struct neigh_res *n)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ndmsg *ndm;

	nlh->nlmsg_type = RTM_GETNEIGH;
	ndm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ndm));
	ndm->ndm_family = (uint8_t)family;
	ndm->ndm_ifindex = x->ifindex;
	mnl_attr_put(nlh, NDA_DST, family == AF_INET ? 4 : 16, ip);
	memset(n, 0, sizeof(*n));
	return nl_query(x, nlh, neigh_cb, n);
}

/* Ask the kernel how to reach nh->addr; sets nh->usable. */
static void nexthop_resolve(struct xsk_dgram *x, struct nexthop *nh, uint32_t now)
{
	const uint16_t ok =
		NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP;
	struct route_res r;
	struct neigh_res n;
	size_t alen = nh->family == AF_INET ? 4 : 16;

	nh->checked_ms = now;
	nh->usable = false;
	x->st.neigh_lookups++;
	if (nl_route(x, nh->family, nh->addr, &r) < 0 || r.oif != x->ifindex)
		goto miss; /* no route, or out of another interface: the kernel sends it */
	if (!x->bound_any) {
		memcpy(nh->src, x->bound_addr, alen);
		nh->have_src = true;
	} else if (!nh->src_learned && r.have_src) {
		memcpy(nh->src, r.src, alen);
		nh->have_src = true;
	}
	if (!nh->have_src)
		goto miss;
	if (x->noarp) {
		memset(nh->mac, 0, ETH_ALEN);
		nh->usable = true;
		return;
	}
	if (nl_neigh(x, nh->family, r.have_gw ? r.gw : nh->addr, &n) < 0 || !n.have_mac ||
	    !(n.state & ok))
		goto miss;
	memcpy(nh->mac, n.mac, ETH_ALEN);
	nh->usable = true;
	/* Our traffic bypasses the neighbour layer, so nothing confirms a stale entry: let
	 * one datagram go through the kernel, which re-validates it. */
	nh->nudge = n.state & NUD_STALE;
	return;
miss:
	x->st.neigh_miss++;
}

static struct nexthop *nexthop_find(struct xsk_dgram *x, int family, const uint8_t *addr,
				    bool create, uint32_t now)
{
	size_t alen = family == AF_INET ? 4 : 16;
	struct nexthop *victim = NULL;

	for (int i = 0; i < NH_MAX; i++) {
		struct nexthop *nh = &x->nh[i];

		if (nh->used && nh->family == family && !memcmp(nh->addr, addr, alen)) {
			nh->used_ms = now;
			return nh;
		}
		/* a free slot, else the least recently used */
		if (!nh->used) {
			if (!victim || victim->used)
				victim = nh;
		} else if (!victim ||
			   (victim->used && (int32_t)(nh->used_ms - victim->used_ms) < 0)) {
			victim = nh;
		}
	}
	if (!create)
		return NULL;
	memset(victim, 0, sizeof(*victim));
	victim->used = true;
	victim->family = family;
	memcpy(victim->addr, addr, alen);
	victim->used_ms = now;
	victim->checked_ms = now - NH_REFRESH_MS - 1; /* resolve on first use */
	return victim;
}

/* Peer address in the form the wire uses: family and raw bytes (v4-mapped -> IPv4). */
static int addr_raw(const struct kcpx_addr *a, uint8_t *raw, uint16_t *port_be)
{
	if (a->sa.sa_family == AF_INET) {
		memcpy(raw, &a->in.sin_addr, 4);
		*port_be = a->in.sin_port;
		return AF_INET;
	}
	if (a->sa.sa_family == AF_INET6) {
		*port_be = a->in6.sin6_port;
		if (IN6_IS_ADDR_V4MAPPED(&a->in6.sin6_addr)) {
			memcpy(raw, &a->in6.sin6_addr.s6_addr[12], 4);
			return AF_INET;
		}
		memcpy(raw, &a->in6.sin6_addr, 16);
		return AF_INET6;
	}
	return -EAFNOSUPPORT;
}

/* ---- RX ---- */

static void rx_refill(struct xsk_q *q)
{
	uint32_t idx;
	unsigned n = q->nspare;

	if (!n)
		return;
	n = xsk_ring_prod__reserve(&q->fill, n, &idx);
	for (unsigned i = 0; i < n; i++)
		*xsk_ring_prod__fill_addr(&q->fill, idx + i) = q->spare[--q->nspare];
	xsk_ring_prod__submit(&q->fill, n);
}

/*
 * Take one received frame apart into pkt. Returns false for anything that is not a well
 * formed UDP datagram to our port (XDP checked most of it; this is defence in depth, and
 * the UDP checksum).
 */
static bool rx_parse(struct xsk_dgram *x, const uint8_t *f, uint32_t len, struct kcpx_pkt *pkt)
{
	const uint8_t *ip, *udp, *src, *dst;
	uint32_t off = 12, iplen, ulen;
	uint16_t proto, csum, port_be;
	int family;
	uint64_t sum;

	if (len < ETH_HDR)
		return false;
	proto = (uint16_t)(f[off] << 8 | f[off + 1]);
	for (int i = 0; i < 2 && (proto == ETH_P_8021Q || proto == ETH_P_8021AD); i++) {
		off += 4;
		if (off + 2 > len)
			return false;
		proto = (uint16_t)(f[off] << 8 | f[off + 1]);
	}
	off += 2;
	ip = f + off;
	if (proto == ETH_P_IP) {
		uint32_t hl;

		if (off + IP4_HDR > len || (ip[0] >> 4) != 4 || (ip[0] & 0xf) < 5)
			return false;
		hl = (ip[0] & 0xfu) * 4;
		iplen = (uint32_t)(ip[2] << 8 | ip[3]);
		if (ip[9] != IPPROTO_UDP || iplen < hl + UDP_HDR || off + iplen > len ||
		    (ip[6] & 0x3f) || ip[7])
			return false;
		family = AF_INET;
		src = ip + 12;
		dst = ip + 16;
		udp = ip + hl;
		iplen -= hl;
	} else if (proto == ETH_P_IPV6) {
		uint8_t nh;
		const uint8_t *p = ip + IP6_HDR;

		if (off + IP6_HDR > len || (ip[0] >> 4) != 6)
			return false;
		iplen = (uint32_t)(ip[4] << 8 | ip[5]);
		if (off + IP6_HDR + iplen > len)
			return false;
		nh = ip[6];
		for (int i = 0; i < 8 && nh != IPPROTO_UDP; i++) {
			uint32_t el;

			if (p + 8 > ip + IP6_HDR + iplen)
				return false;
			if (nh == 0 || nh == 43 || nh == 60)
				el = (p[1] + 1u) * 8;
			else if (nh == 51)
				el = (p[1] + 2u) * 4;
			else if (nh == 44 && !(p[2] << 8 | (p[3] & 0xf9)))
				el = 8;
			else
				return false;
			nh = p[0];
			p += el;
		}
		if (nh != IPPROTO_UDP || p > ip + IP6_HDR + iplen)
			return false;
		family = AF_INET6;
		src = ip + 8;
		dst = ip + 24;
		udp = p;
		iplen -= (uint32_t)(p - (ip + IP6_HDR));
	} else {
		return false;
	}
	if (iplen < UDP_HDR)
		return false;
	ulen = (uint32_t)(udp[4] << 8 | udp[5]);
	if (ulen < UDP_HDR || ulen > iplen || ulen - UDP_HDR > KCPX_PKT_MAX)
		return false;
	memcpy(&port_be, udp + 2, 2);
	if (port_be != x->lport_be)
		return false;
	memcpy(&csum, udp + 6, 2);
	if (csum || family == AF_INET6) {
		sum = pseudo_sum(family, src, dst, (uint16_t)ulen);
		/* A peer in this host (veth) may hand us a checksum left to offload: only
		 * the pseudo-header sum is in the field then. */
		if (csum_fold(csum_add(sum, udp, ulen)) != 0xffff && csum != csum_fold(sum))
			return false;
	}

	pkt->len = ulen - UDP_HDR;
	memcpy(pkt->buf, udp + UDP_HDR, pkt->len);
	memset(&pkt->addr, 0, sizeof(pkt->addr));
	memcpy(&port_be, udp, 2);
	if (family == AF_INET && x->family == AF_INET6) {
		pkt->addr.in6.sin6_family = AF_INET6;
		pkt->addr.in6.sin6_port = port_be;
		pkt->addr.in6.sin6_addr.s6_addr[10] = 0xff;
		pkt->addr.in6.sin6_addr.s6_addr[11] = 0xff;
		memcpy(&pkt->addr.in6.sin6_addr.s6_addr[12], src, 4);
		pkt->addr.len = sizeof(pkt->addr.in6);
	} else if (family == AF_INET) {
		pkt->addr.in.sin_family = AF_INET;
		pkt->addr.in.sin_port = port_be;
		memcpy(&pkt->addr.in.sin_addr, src, 4);
		pkt->addr.len = sizeof(pkt->addr.in);
	} else {
		pkt->addr.in6.sin6_family = AF_INET6;
		pkt->addr.in6.sin6_port = port_be;
		memcpy(&pkt->addr.in6.sin6_addr, src, 16);
		pkt->addr.len = sizeof(pkt->addr.in6);
	}
	/* Answer from the address the peer wrote to. */
	if (x->bound_any) {
		struct nexthop *n = nexthop_find(x, family, src, true, kcpx_clock_ms());
		size_t alen = family == AF_INET ? 4 : 16;

		if (!n->src_learned || memcmp(n->src, dst, alen)) {
			memcpy(n->src, dst, alen);
			n->src_learned = n->have_src = true;
		}
	}
	return true;
}

static int rx_queue(struct xsk_dgram *x, struct xsk_q *q, struct kcpx_pkt *pkts, int n)
{
	uint32_t idx;
	unsigned m;
	int got = 0;

	m = xsk_ring_cons__peek(&q->rx, (uint32_t)n, &idx);
	for (unsigned i = 0; i < m; i++) {
		const struct xdp_desc *desc = xsk_ring_cons__rx_desc(&q->rx, idx + i);
		uint64_t addr = xsk_umem__add_offset_to_addr(desc->addr);

		if (rx_parse(x, q->area + addr, desc->len, &pkts[got])) {
			x->st.rx_packets++;
			x->st.rx_bytes += pkts[got].len;
			got++;
		} else {
			x->st.rx_bad++;
		}
		q->spare[q->nspare++] =
			xsk_umem__extract_addr(desc->addr) & ~(uint64_t)(XSK_FRAME - 1);
	}
	if (m)
		xsk_ring_cons__release(&q->rx, m);
	rx_refill(q);
	if (xsk_ring_prod__needs_wakeup(&q->fill)) {
		x->st.fill_wakeups++;
		recvfrom(xsk_socket__fd(q->xsk), NULL, 0, MSG_DONTWAIT, NULL, NULL);
	}
	return got;
}

/* Datagrams the XDP program left to the kernel. */
static int rx_kernel(struct xsk_dgram *x, struct kcpx_pkt *pkts, int n)
{
	struct mmsghdr msgs[KERNEL_BATCH];
	struct iovec iov[KERNEL_BATCH];
	int got;

	if (n > KERNEL_BATCH)
		n = KERNEL_BATCH;
	memset(msgs, 0, sizeof(msgs[0]) * (size_t)n);
	for (int i = 0; i < n; i++) {
		iov[i].iov_base = pkts[i].buf;
		iov[i].iov_len = KCPX_PKT_MAX;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
		msgs[i].msg_hdr.msg_name = &pkts[i].addr.ss;
		msgs[i].msg_hdr.msg_namelen = sizeof(pkts[i].addr.ss);
	}
	got = recvmmsg(x->udp_fd, msgs, (unsigned)n, MSG_DONTWAIT, NULL);
	if (got < 0)
		return (errno == EAGAIN || errno == EINTR) ? 0 : -errno;
	for (int i = 0; i < got; i++) {
		pkts[i].len = msgs[i].msg_len;
		pkts[i].addr.len = msgs[i].msg_hdr.msg_namelen;
		if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC)
			pkts[i].len = KCPX_PKT_MAX + 1; /* too big: the caller drops it */
	}
	x->st.rx_kernel += (uint64_t)got;
	return got;
}

static void publish_stats(struct xsk_dgram *x, bool force)
{
	uint32_t now = kcpx_clock_ms();
	struct xdp_statistics xs;
	socklen_t len;

	if (!force && now - x->published_ms < STATS_PUBLISH_MS)
		return;
	x->published_ms = now;
	x->st.rx_dropped = x->st.rx_invalid = x->st.tx_invalid = 0;
	x->st.rx_ring_full = x->st.rx_fill_empty = x->st.tx_ring_empty = 0;
	for (int i = 0; i < x->nq; i++) {
		len = sizeof(xs);
		if (getsockopt(xsk_socket__fd(x->q[i].xsk), SOL_XDP, XDP_STATISTICS, &xs, &len))
			continue;
		x->st.rx_dropped += xs.rx_dropped;
		x->st.rx_invalid += xs.rx_invalid_descs;
		x->st.tx_invalid += xs.tx_invalid_descs;
		x->st.rx_ring_full += xs.rx_ring_full;
		x->st.rx_fill_empty += xs.rx_fill_ring_empty_descs;
		x->st.tx_ring_empty += xs.tx_ring_empty_descs;
	}
	if (x->xdp)
		kcpx_xdp_publish(x->xdp, KCPX_FD_XSK_STATS, &x->st, sizeof(x->st));
}

static int xsk_recv(struct kcpx_dgram *d, struct kcpx_pkt *pkts, int n)
{
	struct xsk_dgram *x = (struct xsk_dgram *)d;
	int got = 0, r;

	for (int k = 0; k < x->nq && got < n; k++)
		got += rx_queue(x, &x->q[(x->rr + (unsigned)k) % (unsigned)x->nq], pkts + got,
				n - got);
	x->rr++;
	if (got < n) {
		r = rx_kernel(x, pkts + got, n - got);
		if (r < 0 && !got)
			return r;
		if (r > 0)
			got += r;
	}
	publish_stats(x, false);
	return got;
}

/* ---- TX ---- */

static void tx_reap(struct xsk_q *q)
{
	uint32_t idx;
	unsigned m = xsk_ring_cons__peek(&q->comp, q->ntx, &idx);

	for (unsigned i = 0; i < m; i++)
		q->free_tx[q->nfree++] = *xsk_ring_cons__comp_addr(&q->comp, idx + i);
	if (m)
		xsk_ring_cons__release(&q->comp, m);
}

/* Descriptors on the TX ring the kernel has not consumed yet. */
static unsigned tx_queued(struct xsk_q *q)
{
	return q->ntx - xsk_prod_nb_free(&q->tx, q->ntx);
}

static void tx_kick(struct xsk_dgram *x, struct xsk_q *q)
{
	if (!xsk_ring_prod__needs_wakeup(&q->tx))
		return;
	x->st.tx_kicks++;
	/* EAGAIN/EBUSY (completion ring full, another kick running), ENOBUFS, ENETDOWN:
	 * nothing to do but try again later */
	sendto(xsk_socket__fd(q->xsk), NULL, 0, MSG_DONTWAIT, NULL, 0);
}

static int tx_kernel(struct xsk_dgram *x, const struct kcpx_pkt *p)
{
	if (sendto(x->udp_fd, p->buf, p->len, MSG_DONTWAIT, &p->addr.sa, p->addr.len) < 0) {
		if (errno == EAGAIN || errno == ENOBUFS)
			return -EAGAIN;
		return -errno; /* unreachable and the like: the datagram is lost, as with UDP */
	}
	x->st.tx_kernel++;
	return 0;
}

static size_t tx_build(struct xsk_dgram *x, uint8_t *f, int family, const uint8_t *dst,
		       uint16_t dport_be, const struct nexthop *nh, const struct kcpx_pkt *p)
{
	uint16_t ulen = (uint16_t)(UDP_HDR + p->len), csum;
	uint8_t *ip = f + ETH_HDR, *udp;
	uint64_t sum;

	memcpy(f, nh->mac, ETH_ALEN);
	memcpy(f + ETH_ALEN, x->mac, ETH_ALEN);
	if (family == AF_INET) {
		uint16_t tot = (uint16_t)(IP4_HDR + ulen), id = x->ip_id++;

		f[12] = 0x08;
		f[13] = 0x00;
		ip[0] = 0x45;
		ip[1] = x->tos;
		ip[2] = (uint8_t)(tot >> 8);
		ip[3] = (uint8_t)tot;
		ip[4] = (uint8_t)(id >> 8);
		ip[5] = (uint8_t)id;
		ip[6] = 0x40; /* DF, as the kernel sets it for UDP with path MTU discovery */
		ip[7] = 0;
		ip[8] = 64;
		ip[9] = IPPROTO_UDP;
		ip[10] = ip[11] = 0;
		memcpy(ip + 12, nh->src, 4);
		memcpy(ip + 16, dst, 4);
		csum = (uint16_t)~csum_fold(csum_add(0, ip, IP4_HDR));
		memcpy(ip + 10, &csum, 2);
		udp = ip + IP4_HDR;
	} else {
		f[12] = 0x86;
		f[13] = 0xdd;
		ip[0] = (uint8_t)(0x60 | x->tos >> 4);
		ip[1] = (uint8_t)(x->tos << 4);
		ip[2] = ip[3] = 0;
		ip[4] = (uint8_t)(ulen >> 8);
		ip[5] = (uint8_t)ulen;
		ip[6] = IPPROTO_UDP;
		ip[7] = 64;
		memcpy(ip + 8, nh->src, 16);
		memcpy(ip + 24, dst, 16);
		udp = ip + IP6_HDR;
	}
	memcpy(udp, &x->lport_be, 2);
	memcpy(udp + 2, &dport_be, 2);
	udp[4] = (uint8_t)(ulen >> 8);
	udp[5] = (uint8_t)ulen;
	udp[6] = udp[7] = 0;
	memcpy(udp + UDP_HDR, p->buf, p->len);
	sum = pseudo_sum(family, nh->src, dst, ulen);
	csum = (uint16_t)~csum_fold(csum_add(sum, udp, ulen));
	if (!csum)
		csum = 0xffff; /* 0 means "no checksum" */
	memcpy(udp + 6, &csum, 2);
	return (size_t)(udp - f) + ulen;
}

static int xsk_send(struct kcpx_dgram *d, const struct kcpx_pkt *pkts, int n)
{
	struct xsk_dgram *x = (struct xsk_dgram *)d;
	uint32_t now = kcpx_clock_ms();
	int i, err = 0;

	for (i = 0; i < n; i++) {
		const struct kcpx_pkt *p = &pkts[i];
		uint8_t dst[16];
		uint16_t dport_be;
		struct nexthop *nh;
		struct xsk_q *q;
		uint32_t idx;
		uint64_t addr;
		int family;

		if (p->len > KCPX_PKT_MAX)
			continue; /* never sent: kcptun peers would not accept it either */
		family = addr_raw(&p->addr, dst, &dport_be);
		if (family < 0)
			continue;
		nh = nexthop_find(x, family, dst, true, now);
		if (now - nh->checked_ms >= (nh->usable ? NH_REFRESH_MS : NH_RETRY_MS))
			nexthop_resolve(x, nh, now);
		if (!nh->usable || nh->nudge) {
			nh->nudge = false;
			err = tx_kernel(x, p);
			if (err == -EAGAIN)
				break;
			continue;
		}
		/* a flow sticks to one queue, so its datagrams leave in order */
		q = &x->q[(dport_be ^ dst[family == AF_INET ? 3 : 15]) % (unsigned)x->nq];
		if (!q->nfree)
			tx_reap(q);
		if (!q->nfree || xsk_ring_prod__reserve(&q->tx, 1, &idx) != 1) {
			x->st.tx_ring_full++;
			break;
		}
		addr = q->free_tx[--q->nfree];
		xsk_ring_prod__tx_desc(&q->tx, idx)->addr = addr;
		xsk_ring_prod__tx_desc(&q->tx, idx)->len =
			(uint32_t)tx_build(x, q->area + addr, family, dst, dport_be, nh, p);
		q->pending++;
		x->st.tx_packets++;
		x->st.tx_bytes += p->len;
	}
	for (int k = 0; k < x->nq; k++) {
		struct xsk_q *q = &x->q[k];

		if (!q->pending)
			continue;
		xsk_ring_prod__submit(&q->tx, q->pending);
		q->pending = 0;
		tx_kick(x, q);
	}
	if (i == 0 && err && err != -EAGAIN)
		return err;
	return i;
}

static int xsk_flush(struct kcpx_dgram *d)
{
	struct xsk_dgram *x = (struct xsk_dgram *)d;

	for (int k = 0; k < x->nq; k++) {
		struct xsk_q *q = &x->q[k];

		tx_reap(q);
		for (int kick = 0; kick < XSK_KICKS_MAX && tx_queued(q); kick++) {
			tx_kick(x, q);
			tx_reap(q);
		}
	}
	publish_stats(x, false);
	return 0;
}

/* ---- setup ---- */

static void q_close(struct xsk_dgram *x, struct xsk_q *q)
{
	if (q->in_map && x->xdp)
		kcpx_xdp_set_xsk(x->xdp, q->queue, -1);
	if (q->xsk)
		xsk_socket__delete(q->xsk);
	if (q->umem)
		xsk_umem__delete(q->umem);
	if (q->area)
		munmap(q->area, q->area_len);
	free(q->spare);
	free(q->free_tx);
}

static void xsk_close(struct kcpx_dgram *d)
{
	struct xsk_dgram *x = (struct xsk_dgram *)d;

	if (!x)
		return;
	if (x->q) {
		publish_stats(x, true);
		for (int i = 0; i < x->nq; i++)
			q_close(x, &x->q[i]);
	}
	free(x->q);
	if (x->lport_registered)
		kcpx_xdp_del_lport(x->xdp, ntohs(x->lport_be));
	if (x->nl)
		mnl_socket_close(x->nl);
	if (x->udp_fd >= 0)
		close(x->udp_fd);
	if (x->d.fd >= 0)
		close(x->d.fd);
	free(x);
}

static const struct kcpx_dgram_ops xsk_ops = {
	.recv = xsk_recv,
	.send = xsk_send,
	.flush = xsk_flush,
	.close = xsk_close,
};

static int q_open(struct xsk_dgram *x, struct xsk_q *q, unsigned queue, unsigned frames, bool copy)
{
	struct xsk_umem_config ucfg = {
		.fill_size = frames / 2,
		.comp_size = frames / 2,
		.frame_size = XSK_FRAME,
		.frame_headroom = 0,
	};
	struct xsk_socket_config scfg = {
		.rx_size = frames / 2,
		.tx_size = frames / 2,
		.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
		.bind_flags = (uint16_t)(XDP_USE_NEED_WAKEUP | (copy ? XDP_COPY : 0)),
	};
	struct xdp_options opts;
	socklen_t olen = sizeof(opts);
	int err;

	q->queue = queue;
	q->nrx = q->ntx = frames / 2;
	q->area_len = (size_t)frames * XSK_FRAME;
	q->area = mmap(NULL, q->area_len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (q->area == MAP_FAILED) {
		q->area = NULL;
		return -errno;
	}
	q->spare = calloc(q->nrx, sizeof(*q->spare));
	q->free_tx = calloc(q->ntx, sizeof(*q->free_tx));
	if (!q->spare || !q->free_tx)
		return -ENOMEM;
	err = xsk_umem__create(&q->umem, q->area, q->area_len, &q->fill, &q->comp, &ucfg);
	if (err) {
		q->umem = NULL;
		kcpx_io_logf(0, "af_xdp: %s queue %u: UMEM of %zu KiB: %s", x->ifname, queue,
			     q->area_len >> 10, strerror(-err));
		return err;
	}
	/* A socket closed a moment ago releases its queue from a workqueue: EBUSY for a
	 * little while after a restart. */
	for (int tries = 0; tries < 100; tries++) {
		err = xsk_socket__create(&q->xsk, x->ifname, queue, q->umem, &q->rx, &q->tx, &scfg);
		if (err != -EBUSY)
			break;
		usleep(10000);
	}
	if (err) {
		q->xsk = NULL;
		kcpx_io_logf(0, "af_xdp: %s queue %u: socket: %s", x->ifname, queue,
			     strerror(-err));
		return err;
	}
	for (unsigned i = 0; i < q->nrx; i++)
		q->spare[q->nspare++] = (uint64_t)i * XSK_FRAME;
	rx_refill(q);
	for (unsigned i = 0; i < q->ntx; i++)
		q->free_tx[q->nfree++] = (uint64_t)(q->nrx + i) * XSK_FRAME;
	err = kcpx_xdp_set_xsk(x->xdp, queue, xsk_socket__fd(q->xsk));
	if (err)
		return err;
	q->in_map = true;
	if (getsockopt(xsk_socket__fd(q->xsk), SOL_XDP, XDP_OPTIONS, &opts, &olen) == 0)
		kcpx_io_logf(1, "af_xdp: %s queue %u: %s mode, %u+%u frames", x->ifname, queue,
			     opts.flags & XDP_OPTIONS_ZEROCOPY ? "zero-copy" : "copy", q->nrx,
			     q->ntx);
	return 0;
}

static int rx_queue_count(const char *ifname)
{
	struct ethtool_channels ch = { .cmd = ETHTOOL_GCHANNELS };
	struct ifreq ifr = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), n = 1;

	if (fd < 0)
		return 1;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_data = (void *)&ch;
	if (ioctl(fd, SIOCETHTOOL, &ifr) == 0) {
		n = (int)(ch.rx_count > ch.combined_count ? ch.rx_count : ch.combined_count);
		if (n < 1)
			n = 1;
	}
	close(fd);
	return n;
}

static int link_info(struct xsk_dgram *x)
{
	struct ifreq ifr = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), err = 0;

	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", x->ifname);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
		err = -errno;
		goto out;
	}
	x->noarp = ifr.ifr_flags & (IFF_LOOPBACK | IFF_NOARP);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
		err = -errno;
		goto out;
	}
	memcpy(x->mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
out:
	close(fd);
	return err;
}

/* The kernel's socket on our port: stops ICMP port-unreachable, carries what XDP passes. */
static int udp_open(struct xsk_dgram *x, const struct kcpx_xsk_config *cfg)
{
	struct kcpx_addr a = { 0 };
	int one = 1, tos = x->tos;

	if (cfg->bind) {
		a = *cfg->bind;
	} else if (cfg->peer) {
		a.sa.sa_family = cfg->peer->sa.sa_family;
		a.len = cfg->peer->len;
	} else {
		return -EINVAL;
	}
	if (a.sa.sa_family != AF_INET && a.sa.sa_family != AF_INET6)
		return -EAFNOSUPPORT;
	if (!a.len)
		a.len = a.sa.sa_family == AF_INET ? sizeof(a.in) : sizeof(a.in6);
	x->family = a.sa.sa_family;
	x->udp_fd = socket(x->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (x->udp_fd < 0)
		return -errno;
	if (x->family == AF_INET6)
		setsockopt(x->udp_fd, IPPROTO_IPV6, IPV6_V6ONLY, &(int){ 0 }, sizeof(int));
	setsockopt(x->udp_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (tos) {
		if (x->family == AF_INET)
			setsockopt(x->udp_fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
		else
			setsockopt(x->udp_fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof(tos));
	}
	if (bind(x->udp_fd, &a.sa, a.len) < 0)
		return -errno;
	x->d.local.len = sizeof(x->d.local.ss);
	if (getsockname(x->udp_fd, &x->d.local.sa, &x->d.local.len) < 0)
		return -errno;
	if (x->family == AF_INET) {
		x->lport_be = x->d.local.in.sin_port;
		memcpy(x->bound_addr, &x->d.local.in.sin_addr, 4);
		x->bound_any = x->d.local.in.sin_addr.s_addr == htonl(INADDR_ANY);
	} else {
		x->lport_be = x->d.local.in6.sin6_port;
		x->bound_any = IN6_IS_ADDR_UNSPECIFIED(&x->d.local.in6.sin6_addr);
		/* a v4-mapped bind is an IPv4 address for the frames we build */
		if (IN6_IS_ADDR_V4MAPPED(&x->d.local.in6.sin6_addr))
			memcpy(x->bound_addr, &x->d.local.in6.sin6_addr.s6_addr[12], 4);
		else
			memcpy(x->bound_addr, &x->d.local.in6.sin6_addr, 16);
	}
	return 0;
}

int kcpx_xsk_open(struct kcpx_dgram **out, const struct kcpx_xsk_config *cfg)
{
	unsigned frames = cfg->frames ? cfg->frames : XSK_DEFAULT_FRAMES;
	struct epoll_event ev = { .events = EPOLLIN };
	struct xsk_dgram *x;
	int err, nq;

	*out = NULL;
	if (!cfg->xdp || !cfg->ifname || strlen(cfg->ifname) >= IF_NAMESIZE)
		return -EINVAL;
	if (frames < 64 || (frames & (frames - 1)))
		return -EINVAL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->d.ops = &xsk_ops;
	x->d.name = "af_xdp";
	x->d.fd = -1;
	x->udp_fd = -1;
	x->xdp = cfg->xdp;
	x->tos = cfg->dscp > 0 ? (uint8_t)((cfg->dscp & 0x3f) << 2) : 0;
	snprintf(x->ifname, sizeof(x->ifname), "%s", cfg->ifname);
	x->ifindex = (int)if_nametoindex(cfg->ifname);
	if (!x->ifindex) {
		err = -ENODEV;
		goto err;
	}
	err = link_info(x);
	if (err)
		goto err;
	err = udp_open(x, cfg);
	if (err) {
		kcpx_io_logf(0, "af_xdp: the UDP socket beside it: %s", strerror(-err));
		goto err;
	}

	x->nl = mnl_socket_open(NETLINK_ROUTE);
	if (!x->nl || mnl_socket_bind(x->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		err = -errno;
		goto err;
	}
	x->nl_portid = mnl_socket_get_portid(x->nl);
	setsockopt(mnl_socket_get_fd(x->nl), SOL_SOCKET, SO_RCVTIMEO,
		   &(struct timeval){ .tv_usec = 200000 }, sizeof(struct timeval));

	nq = rx_queue_count(cfg->ifname);
	if (cfg->queues > 0 && cfg->queues < nq)
		nq = cfg->queues;
	if (nq > KCPX_XSK_MAX_QUEUES)
		nq = KCPX_XSK_MAX_QUEUES;
	x->q = calloc((size_t)nq, sizeof(*x->q));
	if (!x->q) {
		err = -ENOMEM;
		goto err;
	}
	x->d.fd = epoll_create1(EPOLL_CLOEXEC);
	if (x->d.fd < 0) {
		err = -errno;
		goto err;
	}
	for (int i = 0; i < nq; i++) {
		x->nq = i + 1;
		err = q_open(x, &x->q[i], (unsigned)i, frames, cfg->copy);
		if (err)
			goto err;
		ev.data.u32 = (uint32_t)i;
		if (epoll_ctl(x->d.fd, EPOLL_CTL_ADD, xsk_socket__fd(x->q[i].xsk), &ev) < 0) {
			err = -errno;
			goto err;
		}
	}
	ev.data.u32 = UINT32_MAX;
	if (epoll_ctl(x->d.fd, EPOLL_CTL_ADD, x->udp_fd, &ev) < 0) {
		err = -errno;
		goto err;
	}
	if (!cfg->bind) {
		err = kcpx_xdp_add_lport(x->xdp, ntohs(x->lport_be));
		if (err)
			goto err;
		x->lport_registered = true;
	}
	kcpx_io_logf(1, "af_xdp: %s: %d queue%s, UDP port %u", x->ifname, nq, nq > 1 ? "s" : "",
		     ntohs(x->lport_be));
	publish_stats(x, true);
	*out = &x->d;
	return 0;
err:
	kcpx_io_logf(0, "af_xdp on %s unavailable: %s", cfg->ifname, strerror(-err));
	xsk_close(&x->d);
	return err;
}

void kcpx_xsk_get_stats(struct kcpx_dgram *d, struct kcpx_xsk_stats *st)
{
	struct xsk_dgram *x = (struct xsk_dgram *)d;

	publish_stats(x, true);
	*st = x->st;
}
