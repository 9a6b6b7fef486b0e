/* SPDX-License-Identifier: MIT */
/*
 * The service manager's notification socket (systemd's sd_notify protocol, written here
 * so that kcpx needs no libsystemd): one datagram of "KEY=value" lines to the AF_UNIX
 * socket named by $NOTIFY_SOCKET (a path, or '@' for the abstract namespace). Without
 * $NOTIFY_SOCKET every call does nothing and returns 0.
 */
#ifndef KCPX_IO_NOTIFY_H
#define KCPX_IO_NOTIFY_H

/* Send `state` ("READY=1\nSTATUS=..."). Returns 0, or -errno when the send failed. */
int kcpx_notify(const char *state);
/* Is a service manager listening (NOTIFY_SOCKET set)? */
int kcpx_notify_enabled(void);

#endif
