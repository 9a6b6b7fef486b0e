/* SPDX-License-Identifier: MIT */
/*
 * The datagram backend contract: how the tunnel moves UDP payloads, whatever carries them
 * (a plain UDP socket, or an AF_XDP socket fed by the XDP program). The event loop polls
 * d->fd, and each of d->xfd, for EPOLLIN and calls recv until it returns 0, or, where
 * d->short_empty says so, until a batch comes back short; it calls send with batches and
 * then flush once per loop turn. A backend with control traffic beside its datagrams
 * (--tcp's TCP sockets) has ops->ctl: the loop calls it when d->cfd is readable, so that
 * the data path never polls for it.
 */
#ifndef KCPX_IO_DGRAM_H
#define KCPX_IO_DGRAM_H

#include <stdbool.h>
#include <stdint.h>

#include "core/addr.h"
#include "core/endpoint.h"

/* kcptun reads into 1500 bytes; we never send more and accept no more than this. */
#define KCPX_PKT_MAX KCPX_EP_DGRAM_MAX

/* Extra fds a backend may ask the loop to watch beside d->fd: AF_XDP's sockets, one per
 * queue, watched directly rather than through an epoll set of their own, because every
 * level of nested epoll adds a wakeup callback to every packet the kernel delivers. */
#define KCPX_DGRAM_XFDS 8

/* One datagram. recv fills buf (KCPX_PKT_MAX bytes owned by the caller), len, addr (the
 * peer) and local (our address it was sent to; family 0: not known); send reads them
 * (addr = destination; local = the source address to send from, family 0: the backend's
 * choice). A backend bound to one address ignores local on send. */
struct kcpx_pkt {
	struct kcpx_addr addr;
	struct kcpx_ip local;
	uint32_t len;
	uint8_t *buf;
};

struct kcpx_dgram;

struct kcpx_dgram_ops {
	/* Up to n datagrams into pkts; returns the count, 0 when none is ready, or -errno. */
	int (*recv)(struct kcpx_dgram *d, struct kcpx_pkt *pkts, int n);
	/* Queue n datagrams; returns how many were taken (fewer when full) or -errno. */
	int (*send)(struct kcpx_dgram *d, const struct kcpx_pkt *pkts, int n);
	/* Push out what send queued (AF_XDP: kick TX, reap completions). May be NULL. */
	int (*flush)(struct kcpx_dgram *d);
	void (*close)(struct kcpx_dgram *d);
	/* May be NULL. Handle what made d->cfd readable. */
	void (*ctl)(struct kcpx_dgram *d);
};

struct kcpx_dgram {
	const struct kcpx_dgram_ops *ops;
	int fd;			  /* readable when recv has work */
	int xfd[KCPX_DGRAM_XFDS]; /* so is each of these (nxfd of them) */
	int nxfd;
	int cfd;	  /* watched for ops->ctl, when there is one */
	bool short_empty; /* a plain socket: a short recv batch emptied its queue */
	const char *name; /* "udp" or "af_xdp", for logs and stats */
	/* Datagrams the host dropped for this backend before recv could read them (a full
	 * socket receive buffer: SO_RXQ_OVFL; a full AF_XDP RX ring): a running total,
	 * brought up to date by recv; stays 0 where the backend cannot tell. */
	uint32_t rx_drops;
	struct kcpx_addr local;
};

#endif
