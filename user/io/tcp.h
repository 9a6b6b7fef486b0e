/* SPDX-License-Identifier: MIT */
#ifndef KCPX_IO_TCP_H
#define KCPX_IO_TCP_H

#include <stdbool.h>
#include <sys/un.h>

#include "io/addr.h"

/* Where the server forwards a stream: a TCP address, or a unix socket path. */
struct kcpx_target {
	bool is_unix;
	struct kcpx_addr addr;
	struct sockaddr_un un;
};

/* "host:port" or a path (anything containing '/'). Returns 0 or -errno. */
int kcpx_target_parse(const char *s, struct kcpx_target *t);

/* A non-blocking listening TCP socket. Returns the fd or -errno. */
int kcpx_tcp_listen(const struct kcpx_addr *addr);
/* The same in a SO_REUSEPORT group (one listener per thread; the kernel spreads the
 * connections among them by their addresses). */
int kcpx_tcp_listen_shared(const struct kcpx_addr *addr);
/* Accept one connection (non-blocking, TCP_NODELAY). Returns the fd, -EAGAIN, or -errno. */
int kcpx_tcp_accept(int lfd);
/* Start a non-blocking connect; *pending is true until the fd turns writable.
 * Returns the fd or -errno. */
int kcpx_tcp_dial(const struct kcpx_target *t, bool *pending);
/* After a pending connect turned writable: 0 if it succeeded, else -errno. */
int kcpx_tcp_dial_result(int fd);

#endif
