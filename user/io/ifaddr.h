/* SPDX-License-Identifier: MIT */
/*
 * The host's own addresses, as XDP's martian sources (kcpx_martians, include/kcpx_bpf.h):
 * every address of the network namespace's interfaces and the broadcast address of each
 * IPv4 subnet, read with an RTM_GETADDR dump; a watch reads them again whenever the kernel
 * announces that an address came or went (RTM_NEWADDR/RTM_DELADDR).
 *
 *   kcpx_ifaddr_watch() at setup (its sockets are made while the process may), then
 *   kcpx_ifaddr_poll() now and then: it never blocks, and reads the table only after a
 *   change (and at its first call, so nothing between a first read and the watch is lost).
 */
#ifndef KCPX_IO_IFADDR_H
#define KCPX_IO_IFADDR_H

#include "kcpx_bpf.h"

/* Fill *m once. Returns how many addresses did not fit (>= 0), or -errno. */
int kcpx_ifaddr_read(struct kcpx_martians *m);

struct kcpx_ifaddr;

int kcpx_ifaddr_watch(struct kcpx_ifaddr **out);
/*
 * 0: nothing changed since the last call. 1: *m read anew (*lost: addresses that did not
 * fit). -errno: the watch failed (then *m is untouched).
 */
int kcpx_ifaddr_poll(struct kcpx_ifaddr *w, struct kcpx_martians *m, int *lost);
void kcpx_ifaddr_close(struct kcpx_ifaddr *w);

#endif
