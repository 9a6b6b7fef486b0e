/* SPDX-License-Identifier: MIT */
/*
 * The AF_XDP datagram backend (io/dgram.h): one AF_XDP socket per RX queue of the
 * interface, fed by kcpx_xdp_steer through the XSKMAP, each with its own UMEM, fill,
 * completion, RX and TX rings. TX builds Ethernet/IP/UDP itself, with the next hop's MAC
 * from the kernel's route and neighbour tables (netlink), refreshed every second.
 *
 * Beside the AF_XDP sockets it keeps a plain UDP socket bound to the same address and
 * port: the kernel then answers no ICMP port-unreachable, and whatever XDP leaves to the
 * kernel (fragments, packets on a queue without a socket) still reaches the tunnel
 * through it. Datagrams to a destination whose MAC is not known yet, or that is routed
 * out of another interface, go out through it too (which also makes the kernel resolve
 * the neighbour).
 */
#ifndef KCPX_IO_XSK_H
#define KCPX_IO_XSK_H

#include <stdbool.h>
#include <stdint.h>

#include "io/dgram.h"
#include "io/xdp.h"

struct kcpx_xsk_config {
	struct kcpx_xdp *xdp; /* opened with this interface (kcpx_xdp_open) */
	const char *ifname;
	/* Server: the listen address and port. Client: NULL (any address, a free port of the
	 * peer's family), registered in kcpx_lports so XDP steers the server's replies. */
	const struct kcpx_addr *bind;
	const struct kcpx_addr *peer; /* client: the server */
	int queues;		      /* sockets for RX queues 0..queues-1; 0: all of them */
	unsigned frames;	      /* UMEM frames per socket (power of 2), 0: 2048 */
	int dscp;		      /* 0..63 in the IP header of what we send, -1: 0 */
	bool copy;		      /* force copy mode (default: let the kernel choose) */
	/* a client's group of several cores: pick each port by the NIC's RSS (io/nicrss.h) */
	bool rss_ports;
};

/*
 * The AF_XDP sockets of cfg->ifname, registered in cfg->xdp's XSKMAP. Returns 0 or
 * -errno, logging why AF_XDP cannot be used (the caller then falls back to the UDP
 * backend). cfg->bind and cfg->peer are not used here.
 */
struct kcpx_xsk;
int kcpx_xsk_new(struct kcpx_xsk **out, const struct kcpx_xsk_config *cfg);
/*
 * A local UDP port on those sockets: one kcpx_dgram. A server opens one (bind = listen
 * address); a client one per session (bind NULL, peer = the server), as kcptun gives every
 * session its own port. Each dgram holds a reference on the sockets.
 */
int kcpx_xsk_port(struct kcpx_xsk *x, const struct kcpx_addr *bind, const struct kcpx_addr *peer,
		  struct kcpx_dgram **out);
/*
 * A client core's RX queues while none of its ports watches them (it opened no session
 * yet, or closed them all): the fd is readable when they hold datagrams (level-
 * triggered; the sockets' own epoll set), and _drain takes them off, handing each to the
 * core whose port it is for. Its thread watches the fd from the start.
 */
int kcpx_xsk_rx_fd(struct kcpx_xsk *x);
void kcpx_xsk_rx_drain(struct kcpx_xsk *x);
/*
 * One engine per RX queue (`kcpx up --threads N`): *n cores (fewer when the interface has
 * fewer queues: *n says how many), core k with the sockets of RX queues k, k + n, ...,
 * for thread k only. A client port belongs to the core it was opened on; what another
 * core receives for it is handed over (in its thread: kcpx_xsk_handoffs counts it).
 * A server port opened on core k > 0 shares core 0's kernel UDP
 * socket (to send what cannot go over AF_XDP; only core 0 receives from it). The cores'
 * counters go into the pinned kcpx_xsk_stats map together, core k in CPU slot k, when
 * kcpx_xsk_publish is called on any of them (from one thread); a lone core publishes
 * them itself too. Each core is dropped with kcpx_xsk_put.
 */
int kcpx_xsk_new_group(struct kcpx_xsk **out, unsigned *n, const struct kcpx_xsk_config *cfg);
/* Queue i of core x (0 <= i, -ENOENT past the last): its RX queue number and the
 * datagrams received from and sent on it so far. Callable from any thread. */
int kcpx_xsk_queue_stats(struct kcpx_xsk *x, int i, unsigned *queue, uint64_t *rx, uint64_t *tx);
/* Datagrams of core x's client ports that another core took off its ring (in), and that
 * x took for another core's (out), so far. Callable from any thread. */
void kcpx_xsk_handoffs(struct kcpx_xsk *x, uint64_t *in, uint64_t *out);
/* Drop the reference kcpx_xsk_new returned; the sockets go when the last dgram closes. */
void kcpx_xsk_put(struct kcpx_xsk *x);

/* kcpx_xsk_new + kcpx_xsk_port(cfg->bind, cfg->peer) + kcpx_xsk_put. */
int kcpx_xsk_open(struct kcpx_dgram **out, const struct kcpx_xsk_config *cfg);

/* Copy the counters into the pinned kcpx_xsk_stats map now (the backend also does it
 * every second while it has traffic; call this from a timer to cover idle times). */
void kcpx_xsk_publish(struct kcpx_xsk *x);

/* The backend's counters so far (also published to the pinned kcpx_xsk_stats map). */
void kcpx_xsk_get_stats(struct kcpx_dgram *d, struct kcpx_xsk_stats *st);

#endif
