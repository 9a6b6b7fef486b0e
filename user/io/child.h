/* SPDX-License-Identifier: MIT */
/*
 * A helper process at the other end of a socket pair, for the work the daemon hands to a
 * child (a sysfs write from inside another namespace, nft runs while the daemon itself
 * may no longer exec). The two talk over an AF_UNIX stream pair, close-on-exec.
 */
#ifndef KCPX_IO_CHILD_H
#define KCPX_IO_CHILD_H

#include <sys/types.h>

/*
 * Fork with a socket pair between parent and child. Returns the child's pid in the
 * parent and 0 in the child, *fd then being the caller's end (the other end is closed
 * on each side); or -errno, nothing left open.
 */
pid_t kcpx_child_fork(int *fd);

/* Wait for the child pid to end (retried on EINTR). */
void kcpx_child_reap(pid_t pid);

#endif
