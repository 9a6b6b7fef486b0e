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
 * One core (the sockets, the next-hop cache, the counters) serves one or more local UDP
 * ports, each a kcpx_dgram of its own: a server has one, a client one per session, as
 * kcptun's sessions each have their own port. Whichever port's recv finds a datagram for
 * another port on a ring queues it for that port and wakes it through an eventfd. The
 * event loop watches, per port, an epoll set of the port's kernel UDP socket and its
 * eventfd, and beside it (d->xfd) the AF_XDP sockets themselves, each port through dups
 * of its own: a packet's wakeup then runs one epoll callback, not one per nesting level
 * (three before; on a veth those wakeups took 11 % of the sending side's CPU). With more
 * queues than d->xfd holds, the sockets go in the core's epoll set, nested in the port's.
 *
 * `kcpx up` with --threads N has N cores (struct xsk_group), core k with RX queues k,
 * k + N, ... and used by engine thread k only; a core's rings, frame pools, next hops and
 * ports are never touched by another thread. A client's session port lives on the core
 * of the engine that opened it, but the NIC (RSS, or on a veth the sender's TX queue)
 * puts the server's answers on any queue: a datagram for a port of another core is copied
 * into that core's inbox (the one structure two threads share, under its lock, bounded),
 * and the owner takes it from there on its own thread (xsk_inbox_take).
 */
#include "io/xsk.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/ethtool.h>
#include <linux/if_ether.h>
#include <linux/if_xdp.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>

#include <libmnl/libmnl.h>
#include <sodium.h>
#include <xdp/xsk.h>

#include "core/frame.h"
#include "io/clock.h"
#include "io/log.h"
#include "io/nicrss.h"
#include "io/pktinfo.h"

#define XSK_FRAME	      2048u
#define XSK_DEFAULT_FRAMES    2048u
#define XSK_KICKS_MAX	      64  /* per queue and flush: 64 * 32 = a full TX ring */
#define XSK_MAX_TX_SKB_BUDGET 9	  /* SOL_XDP option of Linux 6.17: descriptors per kick */
#define NH_BUCKETS	      256 /* next hops: a set-associative cache of 256 x 4 */
#define NH_WAYS		      4
#define NH_REFRESH_MS	      1000
#define NH_RETRY_MS	      10
#define NH_PRIME_MS	      50 /* a client port waits this long for its next hop */
#define STATS_PUBLISH_MS      1000
#define KERNEL_BATCH	      16
#define PORT_QUEUE	      256  /* datagrams held for a port that another port read */
#define INBOX_MAX	      1024 /* datagrams held for one core that another core read */

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
	uint64_t rx_packets, tx_packets; /* this queue's share of the core's counters */
};

/* What we know about sending to one peer address. The local address to answer it from is
 * not kept here: each datagram carries it (kcpx_pkt.local, chosen per session by the
 * endpoint), so a datagram that proves nothing cannot move another's answers. */
struct nexthop {
	bool used;
	bool usable; /* routed out of our interface and the next hop's MAC known */
	bool have_src;
	bool nudge; /* the kernel's entry is stale: send one through the kernel */
	int family;
	uint8_t addr[16];
	uint8_t src[16]; /* the route's source: for datagrams that name none */
	uint8_t mac[ETH_ALEN];
	uint32_t checked_ms;
	uint32_t used_ms;
};

struct xsk_port;

/*
 * The cores of one interface, one per engine thread (kcpx_xsk_new_group; a lone core is
 * a group of one). Core k owns RX queues k, k + n, k + 2n, ... and is used by its own
 * thread only; what crosses threads is the publishing of counters (by one thread, under
 * mu, reading the others' counters as they are: each is a monotonic 64-bit word) and,
 * at setup, a server port's kernel socket (core 0's, shared by the others for sending).
 */
struct xsk_group {
	pthread_mutex_t mu;
	unsigned n, live;
	struct kcpx_xsk **c;	     /* NULL once closed; its counters stay in last[] */
	struct kcpx_xsk_stats *last; /* each core's counters when it closed */
	/* client ports (host order) -> owning core + 1, 0: none; n > 1 only. Written by the
	 * owner when the port opens and closes, read by any core; relaxed atomics: a stale
	 * answer sends a datagram to a core that no longer has the port, which drops it. */
	uint8_t *owner;
	/* a client's group whose NIC's RSS can be predicted (core/rss.h): its ports are
	 * picked so that the server's answers reach the opening core's queues; NULL: the
	 * kernel's ports. nq: the RX queues opened; ports from port_lo..port_hi. */
	struct kcpx_rss *rss;
	unsigned nq, port_lo, port_hi;
};

/* A datagram one core took off its ring for a port of another core. */
struct xsk_in {
	struct xsk_in *next;
	uint16_t dport_be, sport_be;
	int family;
	uint8_t src[16], dst[16];
	uint32_t len;
	uint8_t buf[];
};

/* The AF_XDP sockets of one interface and what every port shares. */
struct kcpx_xsk {
	int refs; /* ports */
	struct xsk_group *grp;
	unsigned slot; /* index in grp */
	struct kcpx_xdp *xdp;
	char ifname[IF_NAMESIZE];
	int ifindex;
	bool noarp; /* loopback or NOARP: no link-layer addresses to resolve */
	/* Loopback: IPv4 datagrams leave through the port's kernel socket unless the
	 * namespace takes them (lo_v4_ok). A frame sent by AF_XDP on lo comes back without
	 * the route that the kernel's own loopback traffic carries, and the input route
	 * lookup drops it as martian: a 127/8 destination needs route_localnet, a local
	 * source accept_local. IPv6 takes ::1 on lo; receiving always goes through XDP. */
	bool lo_v4_kernel;
	uint8_t mac[ETH_ALEN];
	int nq;
	struct xsk_q *q;
	unsigned rr;
	int epfd;    /* the AF_XDP sockets; nested in each port's own set */
	uint8_t tos; /* DSCP << 2 */
	uint16_t ip_id;
	struct mnl_socket *nl;
	unsigned nl_portid, nl_seq;
	struct nexthop nh[NH_BUCKETS][NH_WAYS];
	struct kcpx_xsk_stats st;
	uint32_t published_ms;
	/* the RX rings' drops (ring full, no frame to fill) as this core's thread last read
	 * them, what of that its ports were given (ring_drops), and when */
	uint32_t rxd_total, rxd_given, rxd_ms;
	struct xsk_port *ports;
	/* in a group of several: datagrams other cores took for our ports, newest first,
	 * under inmu; inevfd (in every port's epoll set) says there are some */
	pthread_mutex_t inmu;
	struct xsk_in *inbox;
	unsigned ninbox;
	int inevfd;
	uint64_t handed_in, handed_out; /* datagrams moved between cores (atomics) */
};

/* One local UDP port: the kcpx_dgram the tunnel sees. */
struct xsk_port {
	struct kcpx_dgram d;
	struct kcpx_xsk *c;
	struct xsk_port *next;
	int udp_fd;
	int evfd;
	int family;	   /* of udp_fd: AF_INET6 sockets see IPv4 peers v4-mapped */
	uint16_t lport_be; /* network order */
	bool bound_any;	   /* source address chosen per peer */
	bool lport_registered;
	bool watches;	     /* its dgram watches the AF_XDP sockets (xfd or the nested epfd) */
	bool udp_shared;     /* udp_fd is a dup of core 0's server port's: send only */
	bool evfd_set;	     /* evfd was written and not read since */
	uint8_t kernel_skip; /* recv calls since the kernel socket was last read */
	uint8_t bound_addr[16];
	/* datagrams for this port that another port's recv took off a ring */
	uint8_t *qbuf;
	uint32_t qlen[PORT_QUEUE];
	struct kcpx_addr qaddr[PORT_QUEUE];
	struct kcpx_ip qto[PORT_QUEUE]; /* the local address each was sent to */
	unsigned qhead, qcount;
};

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
static int nl_query(struct kcpx_xsk *x, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	char buf[8192];
	ssize_t n;
	int r;

	nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK; /* and what the caller set */
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

static int nl_route(struct kcpx_xsk *x, int family, const uint8_t *dst, struct route_res *r)
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

static int nl_neigh(struct kcpx_xsk *x, int family, const uint8_t *ip, struct neigh_res *n)
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

/* Ask the kernel to resolve ip on our interface, as a datagram waiting for it would
 * (RTM_NEWNEIGH with NTF_USE: an entry that exists is left as it is). */
static int nl_neigh_use(struct kcpx_xsk *x, int family, const uint8_t *ip)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ndmsg *ndm;

	nlh->nlmsg_type = RTM_NEWNEIGH;
	nlh->nlmsg_flags = NLM_F_CREATE;
	ndm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ndm));
	ndm->ndm_family = (uint8_t)family;
	ndm->ndm_ifindex = x->ifindex;
	ndm->ndm_flags = NTF_USE;
	mnl_attr_put(nlh, NDA_DST, family == AF_INET ? 4 : 16, ip);
	return nl_query(x, nlh, NULL, NULL);
}

/* Ask the kernel how to reach nh->addr; sets nh->usable. */
static void nexthop_resolve(struct kcpx_xsk *x, struct nexthop *nh, uint32_t now)
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
	/* the route's source, for datagrams that do not say which of ours to send from */
	if (r.have_src) {
		memcpy(nh->src, r.src, alen);
		nh->have_src = true;
	}
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

static unsigned nexthop_bucket(int family, const uint8_t *addr)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (int i = 0; i < (family == AF_INET ? 4 : 16); i++)
		h = (h ^ addr[i]) * 16777619u;
	return h % NH_BUCKETS;
}

static struct nexthop *nexthop_find(struct kcpx_xsk *x, int family, const uint8_t *addr,
				    bool create, uint32_t now)
{
	struct nexthop *set = x->nh[nexthop_bucket(family, addr)], *victim = NULL;
	size_t alen = family == AF_INET ? 4 : 16;

	for (int i = 0; i < NH_WAYS; i++) {
		struct nexthop *nh = &set[i];

		if (nh->used && nh->family == family && !memcmp(nh->addr, addr, alen)) {
			nh->used_ms = now;
			return nh;
		}
		/* a free way, else the least recently used */
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

/*
 * A client port's server: its next hop resolved before the first datagram. With no
 * neighbour entry that datagram (the INIT) would leave through the kernel socket, and the
 * resends and DATA through an AF_XDP queue; on a veth, whose peer's RX queue is the
 * sender's TX queue, the server's engines then get one session's datagrams on two queues
 * (the session opens where the INIT landed, the other engine hands it every DATA). So the
 * kernel is asked to resolve it and the entry is waited for, NH_PRIME_MS at most: about a
 * round trip to the next hop, which the kernel's own send waits for too. Once per port
 * open, only when the entry is missing; a next hop that does not answer in time is sent
 * to through the kernel, as before.
 */
static void nexthop_prime(struct kcpx_xsk *c, const struct kcpx_addr *peer)
{
	const struct timespec ms = { .tv_nsec = 1000000 };
	uint32_t t0 = kcpx_clock_ms();
	struct route_res r;
	struct neigh_res n;
	struct nexthop *nh;
	uint8_t dst[16];
	uint16_t port;
	int family;

	family = peer ? addr_raw(peer, dst, &port) : -1;
	if (family < 0 || c->noarp || (c->lo_v4_kernel && family == AF_INET))
		return;
	nh = nexthop_find(c, family, dst, true, t0);
	nexthop_resolve(c, nh, t0);
	if (nh->usable || nl_route(c, family, dst, &r) < 0 || r.oif != c->ifindex ||
	    nl_neigh_use(c, family, r.have_gw ? r.gw : dst) < 0)
		return;
	do {
		nanosleep(&ms, NULL);
		if (nl_neigh(c, family, r.have_gw ? r.gw : dst, &n) == 0 && n.have_mac &&
		    (n.state & NUD_REACHABLE))
			break;
	} while (kcpx_clock_ms() - t0 < NH_PRIME_MS);
	nexthop_resolve(c, nh, kcpx_clock_ms());
	kcpx_io_logf(2, "af_xdp: %s: next hop %s after %u ms", c->ifname,
		     nh->usable ? "resolved" : "not resolved", kcpx_clock_ms() - t0);
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

/* The local address a frame was sent to. */
static void view_local(const struct kcpx_frame_view *v, struct kcpx_ip *l)
{
	l->family = v->family;
	memcpy(l->a, v->dst, v->family == AF_INET ? 4 : 16);
}

/* The peer's address as port p's socket family would report it. */
static void view_addr(const struct xsk_port *p, const struct kcpx_frame_view *v,
		      struct kcpx_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (v->family == AF_INET && p->family == AF_INET6) {
		a->in6.sin6_family = AF_INET6;
		a->in6.sin6_port = v->sport_be;
		a->in6.sin6_addr.s6_addr[10] = 0xff;
		a->in6.sin6_addr.s6_addr[11] = 0xff;
		memcpy(&a->in6.sin6_addr.s6_addr[12], v->src, 4);
		a->len = sizeof(a->in6);
	} else if (v->family == AF_INET) {
		a->in.sin_family = AF_INET;
		a->in.sin_port = v->sport_be;
		memcpy(&a->in.sin_addr, v->src, 4);
		a->len = sizeof(a->in);
	} else {
		a->in6.sin6_family = AF_INET6;
		a->in6.sin6_port = v->sport_be;
		memcpy(&a->in6.sin6_addr, v->src, 16);
		a->len = sizeof(a->in6);
	}
}

static struct xsk_port *port_find(struct kcpx_xsk *c, struct xsk_port *me, uint16_t port_be)
{
	if (me && me->lport_be == port_be)
		return me;
	for (struct xsk_port *p = c->ports; p; p = p->next)
		if (p->lport_be == port_be)
			return p;
	return NULL;
}

/* Where the next datagram held for port p goes, or NULL when its queue is full. */
static uint8_t *port_slot(struct kcpx_xsk *c, struct xsk_port *p)
{
	if (!p->qbuf && !(p->qbuf = malloc((size_t)PORT_QUEUE * KCPX_PKT_MAX))) {
		c->st.rx_port_full++;
		return NULL;
	}
	if (p->qcount == PORT_QUEUE) {
		c->st.rx_port_full++;
		return NULL;
	}
	return p->qbuf + (size_t)((p->qhead + p->qcount) % PORT_QUEUE) * KCPX_PKT_MAX;
}

/* Hold the datagram copied to port_slot for port p, and wake it. */
static void port_push(struct kcpx_xsk *c, struct xsk_port *p, const struct kcpx_frame_view *v)
{
	unsigned slot = (p->qhead + p->qcount++) % PORT_QUEUE;

	p->qlen[slot] = v->len;
	view_addr(p, v, &p->qaddr[slot]);
	view_local(v, &p->qto[slot]);
	c->st.rx_handed++;
	if (!p->evfd_set) {
		eventfd_write(p->evfd, 1);
		p->evfd_set = true;
	}
}

static int port_pop(struct xsk_port *p, struct kcpx_pkt *pkts, int n)
{
	int got = 0;

	for (; got < n && p->qcount; got++, p->qcount--) {
		unsigned slot = p->qhead;

		p->qhead = (p->qhead + 1) % PORT_QUEUE;
		pkts[got].len = p->qlen[slot];
		pkts[got].addr = p->qaddr[slot];
		pkts[got].local = p->qto[slot];
		memcpy(pkts[got].buf, p->qbuf + (size_t)slot * KCPX_PKT_MAX, p->qlen[slot]);
	}
	return got;
}

/*
 * A datagram for a client port that core c does not have: copy it to the owning core's
 * inbox and wake it. false: no other core owns the port (counted as bad by the caller).
 * The XDP program steers to client ports only what comes from the server's address, so
 * this is bounded by what that address sends: INBOX_MAX waiting per core, more dropped.
 */
static bool xsk_hand_over(struct kcpx_xsk *c, const struct kcpx_frame_view *v)
{
	struct xsk_group *g = c->grp;
	struct kcpx_xsk *o;
	struct xsk_in *in;
	unsigned k;

	if (!g->owner)
		return false;
	k = __atomic_load_n(&g->owner[ntohs(v->dport_be)], __ATOMIC_RELAXED);
	if (!k-- || k == c->slot || k >= g->n || !(o = g->c[k]))
		return false;
	in = malloc(sizeof(*in) + v->len);
	if (!in) {
		c->st.rx_port_full++;
		return true;
	}
	if (!kcpx_frame_take(v, in->buf)) {
		free(in);
		c->st.rx_bad++;
		return true;
	}
	in->dport_be = v->dport_be;
	in->sport_be = v->sport_be;
	in->family = v->family;
	in->len = v->len;
	memcpy(in->src, v->src, v->family == AF_INET ? 4 : 16);
	memcpy(in->dst, v->dst, v->family == AF_INET ? 4 : 16);
	pthread_mutex_lock(&o->inmu);
	if (o->ninbox >= INBOX_MAX) {
		pthread_mutex_unlock(&o->inmu);
		free(in);
		c->st.rx_port_full++;
		return true;
	}
	in->next = o->inbox;
	o->inbox = in;
	o->ninbox++;
	pthread_mutex_unlock(&o->inmu);
	c->st.rx_packets++;
	c->st.rx_bytes += v->len;
	__atomic_fetch_add(&c->handed_out, 1, __ATOMIC_RELAXED);
	eventfd_write(o->inevfd, 1);
	return true;
}

/* What other cores handed to core c: into its ports' queues, oldest first. */
static void xsk_inbox_take(struct kcpx_xsk *c)
{
	struct xsk_in *in, *rev = NULL;
	eventfd_t ev;

	if (c->inevfd < 0 || eventfd_read(c->inevfd, &ev) < 0)
		return;
	pthread_mutex_lock(&c->inmu);
	in = c->inbox;
	c->inbox = NULL;
	c->ninbox = 0;
	pthread_mutex_unlock(&c->inmu);
	while (in) {
		struct xsk_in *next = in->next;

		in->next = rev;
		rev = in;
		in = next;
	}
	for (in = rev; in; in = rev) {
		struct xsk_port *p = port_find(c, NULL, in->dport_be);
		struct kcpx_frame_view v = {
			.payload = in->buf,
			.src = in->src,
			.dst = in->dst,
			.len = in->len,
			.family = in->family,
			.sport_be = in->sport_be,
			.dport_be = in->dport_be,
		};
		uint8_t *dst;

		rev = in->next;
		/* the port closed since the other core looked it up */
		if (!p)
			c->st.rx_bad++;
		else if ((dst = port_slot(c, p))) {
			memcpy(dst, in->buf, in->len);
			__atomic_store_n(&c->handed_in, c->handed_in + 1, __ATOMIC_RELAXED);
			port_push(c, p, &v);
		}
		free(in);
	}
}

/* Up to n datagrams from queue q's RX ring for port me; others' are handed to them. */
static int rx_queue(struct kcpx_xsk *c, struct xsk_q *q, struct xsk_port *me, struct kcpx_pkt *pkts,
		    int n)
{
	uint32_t idx;
	unsigned m;
	int got = 0;

	m = xsk_ring_cons__peek(&q->rx, (uint32_t)n, &idx);
	for (unsigned i = 0; i < m; i++) {
		const struct xdp_desc *desc = xsk_ring_cons__rx_desc(&q->rx, idx + i);
		uint64_t addr = xsk_umem__add_offset_to_addr(desc->addr);
		struct kcpx_frame_view v;
		struct xsk_port *p;
		uint8_t *dst;

		q->spare[q->nspare++] =
			xsk_umem__extract_addr(desc->addr) & ~(uint64_t)(XSK_FRAME - 1);
		/* XDP checked most of this; here it is defence in depth, and the checksum */
		if (!kcpx_frame_parse(q->area + addr, desc->len, &v) || v.len > KCPX_PKT_MAX) {
			c->st.rx_bad++;
			continue;
		}
		p = port_find(c, me, v.dport_be);
		if (!p) {
			if (!xsk_hand_over(c, &v))
				c->st.rx_bad++;
			else
				__atomic_store_n(&q->rx_packets, q->rx_packets + 1,
						 __ATOMIC_RELAXED);
			continue;
		}
		dst = p == me ? pkts[got].buf : port_slot(c, p);
		if (!dst)
			continue;
		if (!kcpx_frame_take(&v, dst)) {
			c->st.rx_bad++;
			continue;
		}
		c->st.rx_packets++;
		__atomic_store_n(&q->rx_packets, q->rx_packets + 1, __ATOMIC_RELAXED);
		c->st.rx_bytes += v.len;
		if (p != me) {
			port_push(c, p, &v);
			continue;
		}
		pkts[got].len = v.len;
		view_addr(me, &v, &pkts[got].addr);
		view_local(&v, &pkts[got].local);
		got++;
	}
	if (m)
		xsk_ring_cons__release(&q->rx, m);
	rx_refill(q);
	if (xsk_ring_prod__needs_wakeup(&q->fill)) {
		c->st.fill_wakeups++;
		recvfrom(xsk_socket__fd(q->xsk), NULL, 0, MSG_DONTWAIT, NULL, NULL);
	}
	return got;
}

/* Datagrams the XDP program left to the kernel. */
static int rx_kernel(struct xsk_port *p, struct kcpx_pkt *pkts, int n)
{
	union kcpx_pktinfo_buf ctl[KERNEL_BATCH];
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
		if (p->bound_any) {
			msgs[i].msg_hdr.msg_control = ctl[i].buf;
			msgs[i].msg_hdr.msg_controllen = sizeof(ctl[i].buf);
		}
	}
	got = recvmmsg(p->udp_fd, msgs, (unsigned)n, MSG_DONTWAIT, NULL);
	if (got < 0)
		return (errno == EAGAIN || errno == EINTR) ? 0 : -errno;
	for (int i = 0; i < got; i++) {
		pkts[i].len = msgs[i].msg_len;
		pkts[i].addr.len = msgs[i].msg_hdr.msg_namelen;
		kcpx_pktinfo_read(&msgs[i].msg_hdr, &pkts[i].local);
		if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC)
			pkts[i].len = KCPX_PKT_MAX + 1; /* too big: the caller drops it */
	}
	p->c->st.rx_kernel += (uint64_t)got;
	return got;
}

/* The kernel's counters of core c's sockets into c->st. */
static void sock_stats(struct kcpx_xsk *c)
{
	struct xdp_statistics xs;
	socklen_t len;

	c->st.rx_dropped = c->st.rx_invalid = c->st.tx_invalid = 0;
	c->st.rx_ring_full = c->st.rx_fill_empty = c->st.tx_ring_empty = 0;
	for (int i = 0; i < c->nq; i++) {
		if (!c->q[i].xsk)
			continue;
		len = sizeof(xs);
		if (getsockopt(xsk_socket__fd(c->q[i].xsk), SOL_XDP, XDP_STATISTICS, &xs, &len))
			continue;
		c->st.rx_dropped += xs.rx_dropped;
		c->st.rx_invalid += xs.rx_invalid_descs;
		c->st.tx_invalid += xs.tx_invalid_descs;
		c->st.rx_ring_full += xs.rx_ring_full;
		c->st.rx_fill_empty += xs.rx_fill_ring_empty_descs;
		c->st.tx_ring_empty += xs.tx_ring_empty_descs;
	}
}

/*
 * Every core's counters into the pinned kcpx_xsk_stats map, core k in CPU slot k, and each
 * queue's into kcpx_xsk_queues. A lone core does it from its own data path once a second;
 * a group's cores only when asked (kcpx_xsk_publish, from the thread that publishes the
 * tunnel's other counters, and at setup and close), so that one thread writes the maps.
 */
static void publish_stats(struct kcpx_xsk *c, bool force)
{
	struct xsk_group *g = c->grp;
	uint32_t now = kcpx_clock_ms();

	if (!force && (g->n > 1 || now - c->published_ms < STATS_PUBLISH_MS))
		return;
	c->published_ms = now;
	pthread_mutex_lock(&g->mu);
	for (unsigned i = 0; i < g->n; i++) {
		struct kcpx_xsk *o = g->c[i];

		if (!o)
			continue;
		sock_stats(o);
		g->last[i] = o->st;
		for (int k = 0; k < o->nq; k++) {
			struct kcpx_xsk_queue qv = {
				.rx_packets =
					__atomic_load_n(&o->q[k].rx_packets, __ATOMIC_RELAXED),
				.tx_packets =
					__atomic_load_n(&o->q[k].tx_packets, __ATOMIC_RELAXED),
				.thread = i,
				.open = !!o->q[k].xsk,
			};

			kcpx_xdp_publish_queue(c->xdp, o->q[k].queue, &qv);
		}
	}
	kcpx_xdp_publish_n(c->xdp, KCPX_FD_XSK_STATS, g->last, g->n, sizeof(*g->last));
	pthread_mutex_unlock(&g->mu);
}

/*
 * The frames this core's AF_XDP sockets dropped because their RX ring was full or the
 * fill ring empty (XDP_STATISTICS rx_ring_full and rx_dropped; a redirect that failed for
 * either lands there too): datagrams the host dropped before we read them, for the
 * peers' controllers (dgram.h rx_drops). Read at most once per ms; the growth goes to
 * the port reading now, which on a core with one port (a server's) is exact; with
 * several the sessions of another port may be charged.
 */
static void ring_drops(struct kcpx_xsk *c, struct xsk_port *p)
{
	uint32_t now = kcpx_clock_ms(), total = 0;
	struct xdp_statistics xs;
	socklen_t len;

	if (now != c->rxd_ms) {
		c->rxd_ms = now;
		for (int i = 0; i < c->nq; i++) {
			len = sizeof(xs);
			if (c->q[i].xsk && !getsockopt(xsk_socket__fd(c->q[i].xsk), SOL_XDP,
						       XDP_STATISTICS, &xs, &len))
				total += (uint32_t)(xs.rx_dropped + xs.rx_ring_full);
		}
		c->rxd_total = total;
	}
	/* a queue closed since takes its count away: never a negative growth */
	if ((int32_t)(c->rxd_total - c->rxd_given) > 0)
		p->d.rx_drops += c->rxd_total - c->rxd_given;
	c->rxd_given = c->rxd_total;
}

static int xsk_recv(struct kcpx_dgram *d, struct kcpx_pkt *pkts, int n)
{
	struct xsk_port *p = (struct xsk_port *)d;
	struct kcpx_xsk *c = p->c;
	eventfd_t ev;
	int got, r;

	if (p->evfd_set) {
		eventfd_read(p->evfd, &ev); /* non-blocking: reset before draining */
		p->evfd_set = false;
	}
	xsk_inbox_take(c);
	got = port_pop(p, pkts, n);
	for (int k = 0; k < c->nq && got < n; k++)
		got += rx_queue(c, &c->q[(c->rr + (unsigned)k) % (unsigned)c->nq], p, pkts + got,
				n - got);
	c->rr++;
	/* The kernel socket carries little (what XDP passes): look at it when the rings
	 * are dry, which ends every drain, and now and then while they are not. */
	if (got < n && !p->udp_shared && (!got || ++p->kernel_skip >= 16)) {
		p->kernel_skip = 0;
		r = rx_kernel(p, pkts + got, n - got);
		if (r < 0 && !got)
			return r;
		if (r > 0)
			got += r;
	}
	ring_drops(c, p);
	publish_stats(c, false);
	return got;
}

int kcpx_xsk_rx_fd(struct kcpx_xsk *c)
{
	return c->epfd;
}

void kcpx_xsk_rx_drain(struct kcpx_xsk *c)
{
	/* a port that watches the rings drains them in its own recv (xsk_recv) */
	for (const struct xsk_port *p = c->ports; p; p = p->next)
		if (p->watches)
			return;
	for (int k = 0; k < c->nq; k++)
		rx_queue(c, &c->q[k], NULL, NULL, 64);
	publish_stats(c, false);
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

static void tx_kick(struct kcpx_xsk *c, struct xsk_q *q)
{
	if (!xsk_ring_prod__needs_wakeup(&q->tx))
		return;
	c->st.tx_kicks++;
	/* EAGAIN/EBUSY (completion ring full, another kick running), ENOBUFS, ENETDOWN:
	 * nothing to do but try again on the next flush */
	sendto(xsk_socket__fd(q->xsk), NULL, 0, MSG_DONTWAIT, NULL, 0);
}

static int tx_kernel(struct xsk_port *p, const struct kcpx_pkt *pkt)
{
	union kcpx_pktinfo_buf ctl;
	struct iovec iov = { .iov_base = pkt->buf, .iov_len = pkt->len };
	struct msghdr mh = {
		.msg_name = (void *)&pkt->addr.sa,
		.msg_namelen = pkt->addr.len,
		.msg_iov = &iov,
		.msg_iovlen = 1,
	};
	ssize_t r;

	/* from the address the endpoint chose, as what leaves by AF_XDP does */
	if (p->bound_any)
		kcpx_pktinfo_set(&mh, &ctl, &pkt->addr, &pkt->local);
	r = sendmsg(p->udp_fd, &mh, MSG_DONTWAIT);
	if (r < 0 && mh.msg_control && (errno == EINVAL || errno == EADDRNOTAVAIL)) {
		/* that address is not ours any more: the route's source, as before */
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
		r = sendmsg(p->udp_fd, &mh, MSG_DONTWAIT);
	}
	if (r < 0) {
		if (errno == EAGAIN || errno == ENOBUFS)
			return -EAGAIN;
		return -errno; /* unreachable and the like: lost, as over a UDP socket */
	}
	p->c->st.tx_kernel++;
	return 0;
}

static size_t tx_build(struct kcpx_xsk *c, struct xsk_port *p, uint8_t *f, int family,
		       const uint8_t *src, const uint8_t *dst, uint16_t dport_be,
		       const uint8_t *mac, const struct kcpx_pkt *pkt)
{
	struct kcpx_frame_hdr h = {
		.family = family,
		.src_mac = c->mac,
		.dst_mac = mac,
		.src = src,
		.dst = dst,
		.sport_be = p->lport_be,
		.dport_be = dport_be,
		.ip_id = family == AF_INET ? c->ip_id++ : 0,
		.tos = c->tos,
	};

	return kcpx_frame_build(f, &h, pkt->buf, pkt->len);
}

static int xsk_send(struct kcpx_dgram *d, const struct kcpx_pkt *pkts, int n)
{
	struct xsk_port *p = (struct xsk_port *)d;
	struct kcpx_xsk *c = p->c;
	uint32_t now = kcpx_clock_ms();
	int i;

	for (i = 0; i < n; i++) {
		const struct kcpx_pkt *pkt = &pkts[i];
		const uint8_t *src;
		uint8_t dst[16];
		uint16_t dport_be;
		struct nexthop *nh;
		struct xsk_q *q;
		uint32_t idx;
		uint64_t addr;
		int family;

		if (pkt->len > KCPX_PKT_MAX)
			continue; /* never sent: kcptun peers would not accept it either */
		family = addr_raw(&pkt->addr, dst, &dport_be);
		if (family < 0)
			continue;
		if (c->lo_v4_kernel && family == AF_INET) {
			if (tx_kernel(p, pkt) == -EAGAIN)
				break;
			continue;
		}
		nh = nexthop_find(c, family, dst, true, now);
		if (now - nh->checked_ms >= (nh->usable ? NH_REFRESH_MS : NH_RETRY_MS))
			nexthop_resolve(c, nh, now);
		if (p->bound_any && pkt->local.family == family)
			src = pkt->local.a; /* the endpoint's choice: see kcpx_ep_input_at */
		else if (p->bound_any)
			src = nh->have_src ? nh->src : NULL;
		else
			src = (family == AF_INET) ==
					      (p->family == AF_INET ||
					       IN6_IS_ADDR_V4MAPPED(&p->d.local.in6.sin6_addr))
				      ? p->bound_addr
				      : NULL;
		if (!nh->usable || nh->nudge || !src) {
			nh->nudge = false;
			if (tx_kernel(p, pkt) == -EAGAIN)
				break;
			continue;
		}
		/* a flow sticks to one queue, so its datagrams leave in order */
		q = &c->q[(dport_be ^ dst[family == AF_INET ? 3 : 15]) % (unsigned)c->nq];
		if (!q->nfree)
			tx_reap(q);
		if (!q->nfree || xsk_ring_prod__reserve(&q->tx, 1, &idx) != 1) {
			c->st.tx_ring_full++;
			break;
		}
		addr = q->free_tx[--q->nfree];
		xsk_ring_prod__tx_desc(&q->tx, idx)->addr = addr;
		xsk_ring_prod__tx_desc(&q->tx, idx)->len = (uint32_t)tx_build(
			c, p, q->area + addr, family, src, dst, dport_be, nh->mac, pkt);
		q->pending++;
		__atomic_store_n(&q->tx_packets, q->tx_packets + 1, __ATOMIC_RELAXED);
		c->st.tx_packets++;
		c->st.tx_bytes += pkt->len;
	}
	for (int k = 0; k < c->nq; k++) {
		struct xsk_q *q = &c->q[k];

		if (!q->pending)
			continue;
		xsk_ring_prod__submit(&q->tx, q->pending);
		q->pending = 0;
		tx_kick(c, q);
	}
	/* a datagram the kernel refused (unreachable, ...) is lost like any other; only a
	 * full socket or ring stops the batch */
	return i;
}

static int xsk_flush(struct kcpx_dgram *d)
{
	struct kcpx_xsk *c = ((struct xsk_port *)d)->c;

	for (int k = 0; k < c->nq; k++) {
		struct xsk_q *q = &c->q[k];

		tx_reap(q);
		/* copy mode sends at most 32 per kick: keep kicking while some wait */
		for (int kick = 0; kick < XSK_KICKS_MAX && tx_queued(q); kick++) {
			tx_kick(c, q);
			tx_reap(q);
		}
	}
	publish_stats(c, false);
	return 0;
}

/* ---- setup ---- */

static void q_close(struct kcpx_xsk *c, struct xsk_q *q)
{
	if (q->in_map)
		kcpx_xdp_set_xsk(c->xdp, q->queue, -1);
	if (q->xsk)
		xsk_socket__delete(q->xsk);
	if (q->umem)
		xsk_umem__delete(q->umem);
	if (q->area)
		munmap(q->area, q->area_len);
	free(q->spare);
	free(q->free_tx);
}

static void group_free(struct xsk_group *g)
{
	pthread_mutex_destroy(&g->mu);
	free(g->rss);
	free(g->owner);
	free(g->c);
	free(g->last);
	free(g);
}

static void core_put(struct kcpx_xsk *c)
{
	struct xsk_group *g = c->grp;
	bool last;

	if (--c->refs > 0)
		return;
	if (c->q) {
		publish_stats(c, true);
		for (int i = 0; i < c->nq; i++)
			q_close(c, &c->q[i]);
	}
	free(c->q);
	if (c->nl)
		mnl_socket_close(c->nl);
	if (c->epfd >= 0)
		close(c->epfd);
	if (c->inevfd >= 0)
		close(c->inevfd);
	while (c->inbox) {
		struct xsk_in *in = c->inbox;

		c->inbox = in->next;
		free(in);
	}
	pthread_mutex_destroy(&c->inmu);
	pthread_mutex_lock(&g->mu);
	g->c[c->slot] = NULL;
	last = !--g->live;
	pthread_mutex_unlock(&g->mu);
	if (last)
		group_free(g);
	free(c);
}

static void xsk_close(struct kcpx_dgram *d)
{
	struct xsk_port *p = (struct xsk_port *)d, **pp;
	struct kcpx_xsk *c = p->c;

	for (pp = &c->ports; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	if (p->lport_registered) {
		uint8_t mine = (uint8_t)(c->slot + 1);

		kcpx_xdp_del_lport(c->xdp, ntohs(p->lport_be));
		if (c->grp->owner)
			__atomic_compare_exchange_n(&c->grp->owner[ntohs(p->lport_be)], &mine, 0,
						    false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	}
	if (p->udp_fd >= 0)
		close(p->udp_fd);
	if (p->evfd >= 0)
		close(p->evfd);
	if (p->d.fd >= 0)
		close(p->d.fd);
	for (int i = 0; i < p->d.nxfd; i++)
		close(p->d.xfd[i]);
	free(p->qbuf);
	free(p);
	core_put(c);
}

static const struct kcpx_dgram_ops xsk_ops = {
	.recv = xsk_recv,
	.send = xsk_send,
	.flush = xsk_flush,
	.close = xsk_close,
};

static int q_open(struct kcpx_xsk *c, struct xsk_q *q, unsigned queue, unsigned frames, bool copy)
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
		kcpx_io_logf(0, "af_xdp: %s queue %u: UMEM of %zu KiB: %s", c->ifname, queue,
			     q->area_len >> 10, strerror(-err));
		return err;
	}
	/* A socket closed a moment ago releases its queue from a workqueue: EBUSY for a
	 * little while after a restart. */
	for (int tries = 0; tries < 100; tries++) {
		err = xsk_socket__create(&q->xsk, c->ifname, queue, q->umem, &q->rx, &q->tx, &scfg);
		if (err != -EBUSY)
			break;
		usleep(10000);
	}
	if (err) {
		q->xsk = NULL;
		kcpx_io_logf(0, "af_xdp: %s queue %u: socket: %s", c->ifname, queue,
			     strerror(-err));
		return err;
	}
	for (unsigned i = 0; i < q->nrx; i++)
		q->spare[q->nspare++] = (uint64_t)i * XSK_FRAME;
	rx_refill(q);
	for (unsigned i = 0; i < q->ntx; i++)
		q->free_tx[q->nfree++] = (uint64_t)(q->nrx + i) * XSK_FRAME;
	err = kcpx_xdp_set_xsk(c->xdp, queue, xsk_socket__fd(q->xsk));
	if (err)
		return err;
	q->in_map = true;
	/* Copy mode sends 32 descriptors per kick unless told otherwise (Linux 6.17+): let one
	 * kick take the whole TX ring. Older kernels refuse; flush then kicks more often. */
	if (setsockopt(xsk_socket__fd(q->xsk), SOL_XDP, XSK_MAX_TX_SKB_BUDGET, &q->ntx,
		       sizeof(q->ntx)) < 0)
		kcpx_io_logf(2, "af_xdp: %s queue %u: 32 descriptors per kick (%s)", c->ifname,
			     queue, strerror(errno));
	if (getsockopt(xsk_socket__fd(q->xsk), SOL_XDP, XDP_OPTIONS, &opts, &olen) == 0)
		kcpx_io_logf(1, "af_xdp: %s queue %u: %s mode, %u+%u frames", c->ifname, queue,
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

/* A sysctl of net.ipv4.conf.IFACE (or "all") is on in this network namespace. */
static bool conf_on(const char *iface, const char *key)
{
	char path[96];
	int v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/%s", iface, key);
	f = fopen(path, "re");
	if (!f)
		return false;
	if (fscanf(f, "%d", &v) != 1)
		v = 0;
	fclose(f);
	return v != 0;
}

/* IPv4 frames that AF_XDP sends on loopback device IFACE are taken by the kernel. */
static bool lo_v4_ok(const char *iface)
{
	return (conf_on("all", "route_localnet") || conf_on(iface, "route_localnet")) &&
	       (conf_on("all", "accept_local") || conf_on(iface, "accept_local"));
}

static int link_info(struct kcpx_xsk *c)
{
	struct ifreq ifr = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), err = 0;

	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", c->ifname);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
		err = -errno;
		goto out;
	}
	c->noarp = ifr.ifr_flags & (IFF_LOOPBACK | IFF_NOARP);
	c->lo_v4_kernel = (ifr.ifr_flags & IFF_LOOPBACK) && !lo_v4_ok(c->ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
		err = -errno;
		goto out;
	}
	memcpy(c->mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
out:
	close(fd);
	return err;
}

/* The RX queues the cores share out: all of the interface's, or the first cfg->queues. */
static int queue_total(const struct kcpx_xsk_config *cfg)
{
	int nq = rx_queue_count(cfg->ifname);

	if (cfg->queues > 0 && cfg->queues < nq)
		nq = cfg->queues;
	return nq > KCPX_XSK_MAX_QUEUES ? KCPX_XSK_MAX_QUEUES : nq;
}

/* Core `slot` of group g: the sockets of RX queues slot, slot + g->n, ... < total. */
static int core_open(struct kcpx_xsk **out, const struct kcpx_xsk_config *cfg, struct xsk_group *g,
		     unsigned slot, int total)
{
	unsigned frames = cfg->frames ? cfg->frames : XSK_DEFAULT_FRAMES;
	struct epoll_event ev = { .events = EPOLLIN };
	struct kcpx_xsk *c;
	int err, nq;

	if (frames < 64 || (frames & (frames - 1)))
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->refs = 1;
	c->epfd = -1;
	c->inevfd = -1;
	pthread_mutex_init(&c->inmu, NULL);
	c->grp = g;
	c->slot = slot;
	g->c[slot] = c;
	g->live++;
	c->xdp = cfg->xdp;
	c->tos = cfg->dscp > 0 ? (uint8_t)((cfg->dscp & 0x3f) << 2) : 0;
	snprintf(c->ifname, sizeof(c->ifname), "%s", cfg->ifname);
	c->ifindex = (int)if_nametoindex(cfg->ifname);
	if (!c->ifindex) {
		err = -ENODEV;
		goto err;
	}
	err = link_info(c);
	if (err)
		goto err;
	c->nl = mnl_socket_open(NETLINK_ROUTE);
	if (!c->nl || mnl_socket_bind(c->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		err = -errno;
		goto err;
	}
	c->nl_portid = mnl_socket_get_portid(c->nl);
	setsockopt(mnl_socket_get_fd(c->nl), SOL_SOCKET, SO_RCVTIMEO,
		   &(struct timeval){ .tv_usec = 200000 }, sizeof(struct timeval));

	if (g->n > 1) {
		c->inevfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (c->inevfd < 0) {
			err = -errno;
			goto err;
		}
	}
	nq = (total - (int)slot + (int)g->n - 1) / (int)g->n;
	c->q = calloc((size_t)nq, sizeof(*c->q));
	c->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!c->q || c->epfd < 0) {
		err = c->q ? -errno : -ENOMEM;
		goto err;
	}
	for (int i = 0; i < nq; i++) {
		unsigned queue = slot + (unsigned)i * g->n;

		c->nq = i + 1;
		err = q_open(c, &c->q[i], queue, frames, cfg->copy);
		if (err)
			goto err;
		ev.data.u32 = (uint32_t)i;
		if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, xsk_socket__fd(c->q[i].xsk), &ev) < 0) {
			err = -errno;
			goto err;
		}
	}
	*out = c;
	return 0;
err:
	core_put(c);
	return err;
}

/* The kernel's socket on our port: stops ICMP port-unreachable, carries what XDP passes. */
/*
 * A client port of core c whose answers from peer the NIC's RSS puts on one of c's queues:
 * bind p's socket (any address, as a: family and address set, port 0) to such a port of
 * the ephemeral range, starting at a random one. The hash covers the address this host
 * sends from to peer, which a connected probe socket tells. 0, or -errno (none bound: the
 * caller lets the kernel pick, and the answers are handed over as without RSS).
 */
static int rss_bind(struct xsk_port *p, struct kcpx_addr *a, const struct kcpx_addr *peer)
{
	const struct xsk_group *g = p->c->grp;
	unsigned span, start, tries = 0;
	struct kcpx_addr src = { .len = sizeof(src.ss) };
	const uint8_t *pa, *la;
	uint16_t pport;
	int fd, family = peer->sa.sa_family;

	if (!g->rss || !kcpx_rss_ports_count(g->rss, family))
		return -EOPNOTSUPP;
	if (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&peer->in6.sin6_addr))
		return -EOPNOTSUPP; /* hashed as IPv4 by the NIC: not worth a path of its own */
	fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, &peer->sa, peer->len) < 0 || getsockname(fd, &src.sa, &src.len) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	close(fd);
	if (family == AF_INET) {
		pa = (const uint8_t *)&peer->in.sin_addr;
		la = (const uint8_t *)&src.in.sin_addr;
		pport = ntohs(peer->in.sin_port);
	} else {
		pa = peer->in6.sin6_addr.s6_addr;
		la = src.in6.sin6_addr.s6_addr;
		pport = ntohs(peer->in6.sin6_port);
	}
	span = g->port_hi - g->port_lo + 1;
	start = randombytes_uniform(span);
	/* about 1 port in g->n fits; 64 binds refused (ports in use) is a full range */
	for (unsigned i = 0; i < span && tries < 64; i++) {
		uint16_t port = (uint16_t)(g->port_lo + (start + i) % span);

		if (!kcpx_rss_port_fits(g->rss, family, pa, pport, la, port, p->c->slot, g->n,
					g->nq))
			continue;
		tries++;
		if (family == AF_INET)
			a->in.sin_port = htons(port);
		else
			a->in6.sin6_port = htons(port);
		if (!bind(p->udp_fd, &a->sa, a->len))
			return 0;
		if (errno != EADDRINUSE)
			break;
	}
	if (family == AF_INET)
		a->in.sin_port = 0;
	else
		a->in6.sin6_port = 0;
	return -EADDRNOTAVAIL;
}

static int udp_open(struct xsk_port *p, const struct kcpx_addr *local, const struct kcpx_addr *peer)
{
	struct kcpx_addr a = { 0 };
	int tos = p->c->tos;

	if (local) {
		a = *local;
	} else if (peer) {
		a.sa.sa_family = peer->sa.sa_family;
	} else {
		return -EINVAL;
	}
	if (a.sa.sa_family != AF_INET && a.sa.sa_family != AF_INET6)
		return -EAFNOSUPPORT;
	if (!a.len)
		a.len = a.sa.sa_family == AF_INET ? sizeof(a.in) : sizeof(a.in6);
	p->family = a.sa.sa_family;
	p->udp_fd = socket(p->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->udp_fd < 0)
		return -errno;
	if (p->family == AF_INET6)
		setsockopt(p->udp_fd, IPPROTO_IPV6, IPV6_V6ONLY, &(int){ 0 }, sizeof(int));
	/* no SO_REUSEADDR: with it any local user could bind the same port on a more
	 * specific address and take the tunnel's datagrams */
	if (tos) {
		if (p->family == AF_INET)
			setsockopt(p->udp_fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
		else
			setsockopt(p->udp_fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof(tos));
	}
	if ((local || !peer || rss_bind(p, &a, peer)) && bind(p->udp_fd, &a.sa, a.len) < 0)
		return -errno;
	p->d.local.len = sizeof(p->d.local.ss);
	if (getsockname(p->udp_fd, &p->d.local.sa, &p->d.local.len) < 0)
		return -errno;
	if (p->family == AF_INET) {
		p->lport_be = p->d.local.in.sin_port;
		memcpy(p->bound_addr, &p->d.local.in.sin_addr, 4);
		p->bound_any = p->d.local.in.sin_addr.s_addr == htonl(INADDR_ANY);
	} else {
		p->lport_be = p->d.local.in6.sin6_port;
		p->bound_any = IN6_IS_ADDR_UNSPECIFIED(&p->d.local.in6.sin6_addr);
		/* a v4-mapped bind is an IPv4 address in the frames we build */
		if (IN6_IS_ADDR_V4MAPPED(&p->d.local.in6.sin6_addr))
			memcpy(p->bound_addr, &p->d.local.in6.sin6_addr.s6_addr[12], 4);
		else
			memcpy(p->bound_addr, &p->d.local.in6.sin6_addr, 16);
	}
	/* bound to any: what XDP leaves to this socket says which of our addresses it was
	 * sent to, so that it is answered from there (rx_kernel_local) */
	if (p->bound_any)
		kcpx_pktinfo_enable(p->udp_fd, p->family);
	/* a client's port talks to its server only: what XDP passes from anyone else
	 * (it steers only the server's packets) stops here, in the kernel */
	if (peer && connect(p->udp_fd, &peer->sa, peer->len) < 0)
		return -errno;
	return 0;
}

/*
 * A server's port on core k > 0 of a group: the same address and port as core 0's, whose
 * kernel socket it shares (a second one could not bind). Only core 0 reads that socket:
 * what XDP leaves to the kernel reaches the engine of core 0. Returns the port or NULL.
 */
static struct xsk_port *group_port(struct kcpx_xsk *c, const struct kcpx_addr *bind)
{
	uint8_t raw[16];
	uint16_t port_be;

	if (!bind || c->grp->n < 2 || addr_raw(bind, raw, &port_be) < 0)
		return NULL;
	for (unsigned i = 0; i < c->slot; i++) {
		struct kcpx_xsk *o = c->grp->c[i];

		for (struct xsk_port *p = o ? o->ports : NULL; p; p = p->next)
			if (p->lport_be == port_be && !p->udp_shared)
				return p;
	}
	return NULL;
}

static int udp_share(struct xsk_port *p, const struct xsk_port *sib)
{
	p->udp_fd = fcntl(sib->udp_fd, F_DUPFD_CLOEXEC, 0);
	if (p->udp_fd < 0)
		return -errno;
	p->udp_shared = true;
	p->family = sib->family;
	p->lport_be = sib->lport_be;
	p->bound_any = sib->bound_any;
	memcpy(p->bound_addr, sib->bound_addr, sizeof(p->bound_addr));
	p->d.local = sib->d.local;
	return 0;
}

/* A client's engines: read the NIC's RSS (io/nicrss.h) and say once what ports it gets. */
static void group_rss(struct xsk_group *g, const char *ifname)
{
	char why[160] = "";
	int err;

	g->rss = malloc(sizeof(*g->rss));
	err = g->rss ? kcpx_nicrss_read(ifname, g->rss, why, sizeof(why)) : -ENOMEM;
	if (!err && !g->rss->l4_v4 && !g->rss->l4_v6) {
		err = -EOPNOTSUPP;
		snprintf(why, sizeof(why), "its RSS hash of UDP covers the addresses only");
	}
	if (err) {
		free(g->rss);
		g->rss = NULL;
		kcpx_io_logf(1,
			     "af_xdp: %s: %s: client ports are the kernel's, and answers that "
			     "reach another engine's queue are handed over to it",
			     ifname, why[0] ? why : strerror(-err));
		return;
	}
	kcpx_nicrss_port_range(&g->port_lo, &g->port_hi);
	kcpx_io_logf(1,
		     "af_xdp: %s: client ports picked by the NIC's RSS (Toeplitz, %u-byte key, "
		     "%u-entry table; UDP/IPv4 %s, UDP/IPv6 %s) so that answers reach the engine "
		     "that opened each",
		     ifname, g->rss->key_len, g->rss->indir_len,
		     g->rss->l4_v4 ? "by ports" : "by addresses only",
		     g->rss->l4_v6 ? "by ports" : "by addresses only");
}

int kcpx_xsk_new_group(struct kcpx_xsk **out, unsigned *n, const struct kcpx_xsk_config *cfg)
{
	struct xsk_group *g;
	int total, err = 0;
	unsigned made = 0;

	if (!cfg->xdp || !cfg->ifname || strlen(cfg->ifname) >= IF_NAMESIZE || !*n)
		return -EINVAL;
	total = queue_total(cfg);
	if (*n > (unsigned)total)
		*n = (unsigned)total;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	pthread_mutex_init(&g->mu, NULL);
	g->n = *n;
	g->c = calloc(g->n, sizeof(*g->c));
	g->last = calloc(g->n, sizeof(*g->last));
	if (g->n > 1)
		g->owner = calloc(65536, 1);
	if (!g->c || !g->last || (g->n > 1 && !g->owner)) {
		group_free(g);
		return -ENOMEM;
	}
	g->nq = (unsigned)total;
	if (cfg->rss_ports && g->n > 1)
		group_rss(g, cfg->ifname);
	g->live = 1; /* ours while the cores are made: the last core's close frees g */
	for (; made < g->n; made++) {
		err = core_open(&out[made], cfg, g, made, total);
		if (err)
			break;
	}
	if (err) {
		kcpx_io_logf(0, "af_xdp on %s unavailable: %s", cfg->ifname, strerror(-err));
		while (made)
			core_put(out[--made]);
	}
	if (!--g->live)
		group_free(g);
	return err;
}

int kcpx_xsk_new(struct kcpx_xsk **out, const struct kcpx_xsk_config *cfg)
{
	unsigned n = 1;

	*out = NULL;
	return kcpx_xsk_new_group(out, &n, cfg);
}

void kcpx_xsk_put(struct kcpx_xsk *x)
{
	if (x)
		core_put(x);
}

/* A server port (bound, not a client session's) that already watches the AF_XDP sockets. */
static bool server_watcher(const struct kcpx_xsk *c)
{
	for (const struct xsk_port *p = c->ports; p; p = p->next)
		if (p->watches && !p->lport_registered)
			return true;
	return false;
}

int kcpx_xsk_port(struct kcpx_xsk *c, const struct kcpx_addr *bind, const struct kcpx_addr *peer,
		  struct kcpx_dgram **out)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct xsk_port *p, *sib;
	int err;

	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	c->refs++;
	p->d.ops = &xsk_ops;
	p->d.name = "af_xdp";
	p->c = c;
	p->udp_fd = -1;
	p->d.fd = epoll_create1(EPOLL_CLOEXEC);
	p->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->d.fd < 0 || p->evfd < 0) {
		err = -errno;
		goto err;
	}
	sib = group_port(c, bind);
	err = sib ? udp_share(p, sib) : udp_open(p, bind, peer);
	if (err) {
		kcpx_io_logf(0, "af_xdp: the UDP socket beside it: %s", strerror(-err));
		goto err;
	}
	if (port_find(c, p, p->lport_be) != p) {
		err = -EADDRINUSE;
		goto err;
	}
	/* A server's listen range: only its first port watches the AF_XDP sockets and hands
	 * the others their datagrams (port_push wakes them through evfd). Were every port
	 * watching, each ready ring would wake all of them, a range's worth of empty reads. */
	p->watches = !bind || !server_watcher(c);
	if (p->watches && c->nq <= KCPX_DGRAM_XFDS) {
		for (int i = 0; i < c->nq; i++) {
			p->d.xfd[i] = fcntl(xsk_socket__fd(c->q[i].xsk), F_DUPFD_CLOEXEC, 0);
			if (p->d.xfd[i] < 0) {
				err = -errno;
				goto err;
			}
			p->d.nxfd = i + 1;
		}
	} else if (p->watches && epoll_ctl(p->d.fd, EPOLL_CTL_ADD, c->epfd, &ev) < 0) {
		err = -errno;
		goto err;
	}
	if ((!p->udp_shared && epoll_ctl(p->d.fd, EPOLL_CTL_ADD, p->udp_fd, &ev) < 0) ||
	    epoll_ctl(p->d.fd, EPOLL_CTL_ADD, p->evfd, &ev) < 0 ||
	    (c->inevfd >= 0 && epoll_ctl(p->d.fd, EPOLL_CTL_ADD, c->inevfd, &ev) < 0)) {
		err = -errno;
		goto err;
	}
	/* a client's port: XDP steers what the server sends to it */
	if (!bind) {
		err = kcpx_xdp_add_lport(c->xdp, ntohs(p->lport_be), peer);
		if (err == -E2BIG)
			kcpx_io_logf(0, "af_xdp: %s: all %d client ports XDP can steer are in use",
				     c->ifname, KCPX_LPORTS_MAX);
		if (err)
			goto err;
		p->lport_registered = true;
		if (c->grp->owner)
			__atomic_store_n(&c->grp->owner[ntohs(p->lport_be)], (uint8_t)(c->slot + 1),
					 __ATOMIC_RELAXED);
		nexthop_prime(c, peer);
	}
	p->next = c->ports;
	c->ports = p;
	kcpx_io_logf(c->ports->next ? 2 : 1, "af_xdp: %s: %d queue%s, UDP port %u", c->ifname,
		     c->nq, c->nq > 1 ? "s" : "", ntohs(p->lport_be));
	publish_stats(c, true);
	*out = &p->d;
	return 0;
err:
	kcpx_io_logf(0, "af_xdp: %s: a UDP port: %s", c->ifname, strerror(-err));
	xsk_close(&p->d);
	return err;
}

int kcpx_xsk_open(struct kcpx_dgram **out, const struct kcpx_xsk_config *cfg)
{
	struct kcpx_xsk *x;
	int err;

	*out = NULL;
	err = kcpx_xsk_new(&x, cfg);
	if (err)
		return err;
	err = kcpx_xsk_port(x, cfg->bind, cfg->peer, out);
	kcpx_xsk_put(x);
	return err;
}

int kcpx_xsk_queue_stats(struct kcpx_xsk *x, int i, unsigned *queue, uint64_t *rx, uint64_t *tx)
{
	if (i < 0 || i >= x->nq)
		return -ENOENT;
	*queue = x->q[i].queue;
	*rx = __atomic_load_n(&x->q[i].rx_packets, __ATOMIC_RELAXED);
	*tx = __atomic_load_n(&x->q[i].tx_packets, __ATOMIC_RELAXED);
	return 0;
}

void kcpx_xsk_handoffs(struct kcpx_xsk *x, uint64_t *in, uint64_t *out)
{
	*in = __atomic_load_n(&x->handed_in, __ATOMIC_RELAXED);
	*out = __atomic_load_n(&x->handed_out, __ATOMIC_RELAXED);
}

void kcpx_xsk_publish(struct kcpx_xsk *x)
{
	publish_stats(x, true);
}

void kcpx_xsk_get_stats(struct kcpx_dgram *d, struct kcpx_xsk_stats *st)
{
	struct kcpx_xsk *c = ((struct xsk_port *)d)->c;

	publish_stats(c, true);
	*st = c->st;
}
