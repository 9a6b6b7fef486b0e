// SPDX-License-Identifier: MIT
#include "io/notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int kcpx_notify_enabled(void)
{
	const char *p = getenv("NOTIFY_SOCKET");

	return p && (p[0] == '/' || p[0] == '@');
}

int kcpx_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t n, len;
	socklen_t alen;
	ssize_t sent;
	int fd, err = 0;

	if (!path || (path[0] != '/' && path[0] != '@'))
		return 0;
	n = strlen(path);
	if (n >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	memcpy(sun.sun_path, path, n);
	if (path[0] == '@')
		sun.sun_path[0] = 0; /* abstract: no terminating NUL counted */
	alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '/'));
	/* a fresh socket per message: they are rare (start, reload, stop, status changes) */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	len = strlen(state);
	sent = sendto(fd, state, len, MSG_NOSIGNAL, (struct sockaddr *)&sun, alen);
	if (sent < 0)
		err = -errno;
	else if ((size_t)sent != len)
		err = -EMSGSIZE;
	close(fd);
	return err;
}
