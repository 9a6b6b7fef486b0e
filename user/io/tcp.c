// SPDX-License-Identifier: MIT
#include "io/tcp.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int kcpx_target_parse(const char *s, struct kcpx_target *t)
{
	memset(t, 0, sizeof(*t));
	if (strchr(s, '/')) {
		if (strlen(s) >= sizeof(t->un.sun_path))
			return -ENAMETOOLONG;
		t->is_unix = true;
		t->un.sun_family = AF_UNIX;
		strcpy(t->un.sun_path, s);
		return 0;
	}
	return kcpx_addr_parse(s, &t->addr);
}

static void tcp_tune(int fd)
{
	int on = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

static int tcp_listen(const struct kcpx_addr *addr, bool shared)
{
	int fd, on = 1, err;

	fd = socket(addr->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (shared && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	if (bind(fd, &addr->sa, addr->len) < 0 || listen(fd, 1024) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int kcpx_tcp_listen(const struct kcpx_addr *addr)
{
	return tcp_listen(addr, false);
}

int kcpx_tcp_listen_shared(const struct kcpx_addr *addr)
{
	return tcp_listen(addr, true);
}

int kcpx_tcp_accept(int lfd)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return -errno;
	tcp_tune(fd);
	return fd;
}

int kcpx_tcp_dial(const struct kcpx_target *t, bool *pending)
{
	int fd, err;

	fd = socket(t->is_unix ? AF_UNIX : t->addr.sa.sa_family,
		    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (!t->is_unix)
		tcp_tune(fd);
	*pending = false;
	if (t->is_unix)
		err = connect(fd, (const struct sockaddr *)&t->un, sizeof(t->un));
	else
		err = connect(fd, &t->addr.sa, t->addr.len);
	if (err < 0) {
		if (errno == EINPROGRESS || errno == EAGAIN) {
			*pending = true;
			return fd;
		}
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int kcpx_tcp_dial_result(int fd)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		return -errno;
	return -soerr;
}
