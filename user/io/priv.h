/* SPDX-License-Identifier: MIT */
/*
 * Giving up privileges once the tunnel is set up. Everything kcpx needs root for (binding
 * a low port, loading and attaching BPF, AF_XDP sockets, bpffs pins) happens before the
 * first datagram is parsed; afterwards the daemon holds fds. kcpx_priv_drop then:
 *   - with a user: clears the supplementary groups, takes that user's gid and uid;
 *   - keeps only the capabilities in keep (a mask of 1 << CAP_*), in the permitted,
 *     effective and bounding sets; none inherited or ambient;
 *   - sets no_new_privs (no exec can gain privileges again) and makes the process not
 *     dumpable (no core file with the key in it).
 * Not root and no user: nothing to drop but no_new_privs and dumpable.
 */
#ifndef KCPX_IO_PRIV_H
#define KCPX_IO_PRIV_H

#include <stdint.h>

/* Returns 0 or -errno (-ESRCH: no such user); *what then names the step that failed. */
int kcpx_priv_drop(const char *user, uint64_t keep, const char **what);

#endif
