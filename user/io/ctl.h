/* SPDX-License-Identifier: MIT */
/*
 * The control socket: every running kcpx tunnel listens on /run/kcpx/<pid>.sock and answers
 * each connection's request with its status table (text or JSON), which `kcpx status` collects. Path sockets, not
 * abstract ones, so that `kcpx status` sees tunnels in every network namespace.
 */
#ifndef KCPX_IO_CTL_H
#define KCPX_IO_CTL_H

#include <stddef.h>

#define KCPX_CTL_DIR "/run/kcpx"

/* Listen on KCPX_CTL_DIR/<pid>.sock; path gets the name. Returns the fd or -errno. */
int kcpx_ctl_listen(char *path, size_t size);
/* Remove the sockets of kcpx processes that no longer exist (killed, crashed). */
void kcpx_ctl_reap(void);
/*
 * Connect to one socket, send the request line `req` ("text" or "json") and read the whole
 * answer into a malloc'd string.
 */
int kcpx_ctl_query(const char *path, const char *req, char **out);

#endif
