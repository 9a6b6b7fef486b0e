/* SPDX-License-Identifier: MIT */
/*
 * Loading and attaching bpf/faketcp.bpf.c, the fake-TCP translation of `--tcp` on the
 * UDP-socket backend (include/kcpx_ftcp.h has the contract).
 *
 * The programs are attached through BPF links (XDP or, where the interface's XDP slot is
 * taken, TCX ingress; TCX egress) held by the daemon's file descriptors: when the daemon exits, however it exits (kill -9 included),
 * the kernel detaches them. Nothing is pinned.
 */
#ifndef KCPX_IO_FTCP_BPF_H
#define KCPX_IO_FTCP_BPF_H

#include <stdint.h>

#include "kcpx_ftcp.h"
#include "io/dgram.h"

struct kcpx_ftcp_bpf;

/* Load (not attached anywhere yet). Returns 0 or -errno (-EPERM without root). */
int kcpx_ftcp_bpf_open(struct kcpx_ftcp_bpf **out);
/* Detach from every interface and free. */
void kcpx_ftcp_bpf_close(struct kcpx_ftcp_bpf *b);

/* Attach native XDP ingress (TCX ingress where the driver has no native XDP or another
 * XDP program holds the interface) and TCX egress to ifindex; twice is a no-op. */
int kcpx_ftcp_bpf_attach(struct kcpx_ftcp_bpf *b, int ifindex);
/* Is ifindex one we attached to? */
int kcpx_ftcp_bpf_attached(const struct kcpx_ftcp_bpf *b, int ifindex);

enum kcpx_ftcp_fd {
	KCPX_FTCP_FD_PROG_XDP,
	KCPX_FTCP_FD_PROG_TC,  /* egress */
	KCPX_FTCP_FD_PROG_TCI, /* ingress on TCX, where XDP is taken */
	KCPX_FTCP_FD_PORTS,
	KCPX_FTCP_FD_FLOWS,
	KCPX_FTCP_FD_STATS,
};
int kcpx_ftcp_bpf_fd(const struct kcpx_ftcp_bpf *b, enum kcpx_ftcp_fd which);

/* A local port (host order) carries fake TCP / no longer does. */
int kcpx_ftcp_bpf_port_add(struct kcpx_ftcp_bpf *b, uint16_t port);
int kcpx_ftcp_bpf_port_del(struct kcpx_ftcp_bpf *b, uint16_t port);

/* The flow key of peer (its address and port) and our local port (host order). */
void kcpx_ftcp_key_make(struct kcpx_ftcp_key *k, const struct kcpx_addr *peer, uint16_t lport);
int kcpx_ftcp_bpf_flow_set(struct kcpx_ftcp_bpf *b, const struct kcpx_ftcp_key *k,
			   const struct kcpx_ftcp_flow *f);
int kcpx_ftcp_bpf_flow_get(struct kcpx_ftcp_bpf *b, const struct kcpx_ftcp_key *k,
			   struct kcpx_ftcp_flow *f);
int kcpx_ftcp_bpf_flow_del(struct kcpx_ftcp_bpf *b, const struct kcpx_ftcp_key *k);

/* The counters summed over CPUs. */
int kcpx_ftcp_bpf_stats(struct kcpx_ftcp_bpf *b, struct kcpx_ftcp_stats *s);
/* Userspace's flow counts into kcpx_ftcp_conns (CPU 0's slot, the others zero). */
int kcpx_ftcp_bpf_publish(struct kcpx_ftcp_bpf *b, const struct kcpx_ftcp_counts *c);
/* Pin kcpx_ftcp_stats and kcpx_ftcp_conns under /sys/fs/bpf/kcpx/IFACE (replacing pins of
 * a daemon that died); unpinned again by kcpx_ftcp_bpf_close, or by `kcpx down IFACE`. */
int kcpx_ftcp_bpf_pin(struct kcpx_ftcp_bpf *b, const char *ifname);

#endif
