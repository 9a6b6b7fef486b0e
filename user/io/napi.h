/* SPDX-License-Identifier: MIT */
/*
 * Threaded NAPI for the interface kcpx is up on.
 *
 * A veth has no interrupts: a packet sent into one end is received, XDP program, AF_XDP
 * copy and socket wakeup included, by a NAPI poll that runs in the sender's softirq on
 * the sender's CPU, one packet per poll. Threaded NAPI moves that poll into a kernel
 * thread of the receiving device, which then takes the packets in batches on whichever
 * CPU is free. `kcpx up --napi auto` switches it on for a veth, --napi threaded on any
 * device; the default (keep) leaves the device alone. What kcpx switched on it switches
 * off again at `kcpx down`, also after a crash (the pinned kcpx_info says so).
 *
 * Measured (docs/BENCH.md): between two namespaces joined by one veth pair, threaded NAPI
 * raised the XDP backend's goodput by about 40 % at lower total CPU per GB; across the
 * bench's emulator (linkem forwards between two veth pairs in a third namespace) it
 * halved it, because the poll threads took the CPU linkem needed and it dropped frames.
 * So it is not the default.
 */
#ifndef KCPX_IO_NAPI_H
#define KCPX_IO_NAPI_H

#include <stdbool.h>

enum kcpx_napi_mode {
	KCPX_NAPI_KEEP = 0, /* never touched (the default) */
	KCPX_NAPI_AUTO,	    /* threaded on a veth, left alone elsewhere */
	KCPX_NAPI_THREADED, /* threaded on any device */
};

/* Parse "auto", "threaded" or "keep"; -EINVAL for anything else. */
int kcpx_napi_parse(const char *s, enum kcpx_napi_mode *out);
const char *kcpx_napi_name(enum kcpx_napi_mode mode);

/* After XDP is attached (a veth has NAPI only then). Returns 1 when it switched threaded
 * polling on (kcpx_napi_restore must switch it off again), 0 when it left the device
 * alone, or -errno (logged; the tunnel works either way). With 1, *restore_fd is the
 * attribute open for writing (or -1): the daemon switches it off through that fd at exit,
 * without the fork, mount namespace and CAP_SYS_ADMIN it took to open it, so that it can
 * give those up (io/priv.h) and run under its syscall filter (io/seccomp.h). */
int kcpx_napi_setup(const char *ifname, enum kcpx_napi_mode mode, int *restore_fd);
/* Threaded polling off again; before XDP is detached, while the device still has NAPI.
 * fd: kcpx_napi_setup's *restore_fd (closed here), or -1 (`kcpx down`: the way it was
 * opened, with a child of its own). */
int kcpx_napi_restore(const char *ifname, int fd);

/* The device's driver is veth. */
bool kcpx_napi_is_veth(const char *ifname);

#endif
