/* SPDX-License-Identifier: MIT */
/*
 * A NIC's receive-side scaling as ethtool reports it: the Toeplitz key and indirection
 * table (ETHTOOL_GRSSH) and which header fields UDP over IPv4 and IPv6 hash
 * (ETHTOOL_GRXFH), into a core/rss.h struct that predicts the RX queue of a datagram.
 * Read once at setup, as root, before the seccomp filter.
 */
#ifndef KCPX_IO_NICRSS_H
#define KCPX_IO_NICRSS_H

#include <stddef.h>

#include "core/rss.h"

/*
 * 0, or -errno with why[] saying in a few words why the queue cannot be predicted:
 * -EOPNOTSUPP (no RSS key or table to read: a veth, a single-queue NIC), -EPROTONOSUPPORT
 * (a hash function other than Toeplitz, or a symmetric input transform), -E2BIG (a key or
 * table larger than core/rss.h holds), another errno from the ioctl.
 */
int kcpx_nicrss_read(const char *ifname, struct kcpx_rss *r, char *why, size_t whylen);

/* The kernel's ephemeral port range (ip_local_port_range); 32768..60999 if unreadable. */
void kcpx_nicrss_port_range(unsigned *lo, unsigned *hi);

#endif
