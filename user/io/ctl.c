// SPDX-License-Identifier: MIT
#include "io/ctl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <poll.h>
#include <unistd.h>

void kcpx_ctl_reap(void)
{
	struct dirent *de;
	DIR *d = opendir(KCPX_CTL_DIR);

	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[300];
		int pid;

		if (sscanf(de->d_name, "%d.sock", &pid) != 1)
			continue;
		if (kill(pid, 0) < 0 && errno == ESRCH) {
			snprintf(path, sizeof(path), "%s/%s", KCPX_CTL_DIR, de->d_name);
			unlink(path);
		}
	}
	closedir(d);
}

/*
 * /run/kcpx must be root's directory, not a link, and closed to others: the sockets
 * in it tell peer addresses and counters. Returns 0 or -errno (logged by the caller).
 */
static int ctl_dir_ensure(void)
{
	struct stat st;
	int fd, err = 0;

	if (mkdir(KCPX_CTL_DIR, 0700) < 0 && errno != EEXIST)
		return -errno;
	fd = open(KCPX_CTL_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOTDIR ? -ELOOP : -errno;
	if (fstat(fd, &st) < 0)
		err = -errno;
	else if (st.st_uid != geteuid())
		err = -EPERM;
	else if ((st.st_mode & 0077) && fchmod(fd, 0700) < 0) /* made 0755 by older kcpx */
		err = -errno;
	close(fd);
	return err;
}

int kcpx_ctl_listen(char *path, size_t size)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	mode_t old_mask;
	int fd, err;

	err = ctl_dir_ensure();
	if (err)
		return err;
	kcpx_ctl_reap();
	snprintf(path, size, "%s/%d.sock", KCPX_CTL_DIR, (int)getpid());
	if (strlen(path) >= sizeof(un.sun_path))
		return -ENAMETOOLONG;
	strcpy(un.sun_path, path);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* the socket is born 0600: no window in which others may connect */
	old_mask = umask(0177);
	err = bind(fd, (struct sockaddr *)&un, sizeof(un));
	umask(old_mask);
	if (err < 0 || listen(fd, 16) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int kcpx_ctl_query(const char *path, const char *req, char **out)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	size_t len = 0, cap = 4096;
	char *buf, line[16];
	int fd, err = 0;

	if (strlen(path) >= sizeof(un.sun_path))
		return -ENAMETOOLONG;
	strcpy(un.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	/*
	 * One short line into an empty socket buffer: it goes whole or not at all. EPIPE: a
	 * daemon older than the request line answered and hung up already; read its answer.
	 */
	snprintf(line, sizeof(line), "%s\n", req);
	if (send(fd, line, strlen(line), MSG_NOSIGNAL) < 0 && errno != EPIPE) {
		err = -errno;
		close(fd);
		return err;
	}
	shutdown(fd, SHUT_WR);
	buf = malloc(cap);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		/* a hung daemon must not hang `kcpx status` */
		if (poll(&p, 1, 2000) <= 0) {
			err = -ETIMEDOUT;
			break;
		}
		if (len + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				err = -ENOMEM;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		/* a daemon older than the request line answers without reading it: its close
		 * with the line unread resets the socket after the answer */
		if (n < 0 && errno == ECONNRESET && len)
			break;
		if (n < 0) {
			err = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (err) {
		free(buf);
		return err;
	}
	buf[len] = 0;
	*out = buf;
	return 0;
}
