/* SPDX-License-Identifier: MIT */
/*
 * `--tcp` on the UDP-socket backend: the tunnel keeps its UDP sockets; each one also owns
 * a kernel TCP socket on the same local port whose real three-way handshake opens the
 * flow, and bpf/faketcp.bpf.c translates the datagrams to and from segments of that flow
 * on the interface (docs/INTEROP.md "--tcp").
 *
 *   client  open(peer): UDP socket connected to the server, TCP connect() from the same
 *           port; when it is established, the flow (sequence numbers read from the socket
 *           with TCP_REPAIR) goes into the map. A RST in window, the peer's FIN, a failed
 *           connect, KCPX_FTCP_SILENT_S of sending with nothing back (a NAT that forgot
 *           the flow): a new handshake from the same port, at most once a second.
 *   server  open(bind): UDP socket and TCP listener on the listen address; every accepted
 *           connection is a flow (at most KCPX_FTCP_CONNS, KCPX_FTCP_CONNS_PER_IP per
 *           source address); a flow goes when its socket sees FIN or RST, when its peer
 *           sends a new SYN on the same 4-tuple, or after KCPX_FTCP_IDLE_S without data.
 *
 * When a flow ends (KCPX_FTCP_SILENT_S, KCPX_FTCP_IDLE_S): core/ftcpflow.h.
 * After the handshake each socket goes to TTL 1 and the nftables table of io/nft.h drops
 * what it would still send. The BPF links die with the process; the table is removed at
 * exit, or by `kcpx down` after a crash.
 */
#ifndef KCPX_IO_FAKETCP_H
#define KCPX_IO_FAKETCP_H

#include <stdbool.h>
#include <stdint.h>

#include "kcpx_ftcp.h"
#include "io/dgram.h"

#define KCPX_FTCP_CONNS	       1024
#define KCPX_FTCP_CONNS_PER_IP 16

struct kcpx_ftcp_config {
	bool server;
	int sockbuf; /* UDP socket buffers, as kcpx_udp_config */
	int dscp;
	/* `kcpx up IFACE --tcp`: pin the counter maps under /sys/fs/bpf/kcpx/IFACE for
	 * `kcpx stats IFACE` while the daemon runs (NULL: pin nothing) */
	const char *pin_ifname;
};

struct kcpx_ftcp;

/* Load and prepare (BPF programs, nftables table, stale tables of dead daemons removed).
 * Returns 0 or -errno after logging why. */
int kcpx_ftcp_new(struct kcpx_ftcp **out, const struct kcpx_ftcp_config *cfg);
/* The tunnel backend's open(): server bind != NULL, client peer != NULL. */
int kcpx_ftcp_open(struct kcpx_ftcp *ft, const struct kcpx_addr *bind, const struct kcpx_addr *peer,
		   struct kcpx_dgram **out);
/* Once a second: new handshakes, expiry. */
void kcpx_ftcp_tick(struct kcpx_ftcp *ft);
/* The programs' counters (summed over CPUs). 0 or -errno. */
int kcpx_ftcp_stats(struct kcpx_ftcp *ft, struct kcpx_ftcp_stats *s);
void kcpx_ftcp_counts(const struct kcpx_ftcp *ft, struct kcpx_ftcp_counts *c);
/* After every dgram is closed: detach, remove the table. */
void kcpx_ftcp_free(struct kcpx_ftcp *ft);

#endif
