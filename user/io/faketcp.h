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
};

struct kcpx_ftcp;

/* What userspace saw of the flows, since kcpx_ftcp_new (all daemon-wide). */
struct kcpx_ftcp_counts {
	uint64_t flows;		 /* established now */
	uint64_t handshakes;	 /* flows established, the first one included */
	uint64_t connect_failed; /* client: handshakes that failed or timed out */
	uint64_t refused;	 /* server: connections over the caps, closed with a RST */
	/* flows ended, by why (each one a new handshake for a client) */
	uint64_t end_reset;  /* an in-window RST */
	uint64_t end_syn;    /* the peer sent a new SYN on the 4-tuple */
	uint64_t end_silent; /* client: sending, nothing back for KCPX_FTCP_SILENT_S */
	uint64_t end_idle;   /* server: nothing in for KCPX_FTCP_IDLE_S */
	uint64_t end_closed; /* the kernel's socket saw FIN, RST or an error */
	uint64_t end_dup;    /* server: the same 4-tuple connected again */
};

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
