// SPDX-License-Identifier: MIT
/*
 * Threaded NAPI through /sys/class/net/IFACE/threaded. sysfs shows the network namespace
 * of whoever mounted it, not ours (a daemon started with nsenter --net sees the host's
 * devices there), so the file is read and written by a child that mounts a sysfs of its
 * own in a private mount namespace, as `ip netns exec` does for every command it runs.
 */
#include "io/napi.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>

#include "io/child.h"
#include "io/log.h"

int kcpx_napi_parse(const char *s, enum kcpx_napi_mode *out)
{
	static const char *const names[] = { "keep", "auto", "threaded" };

	for (int i = 0; i < 3; i++) {
		if (!strcmp(s, names[i])) {
			*out = (enum kcpx_napi_mode)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *kcpx_napi_name(enum kcpx_napi_mode mode)
{
	return mode == KCPX_NAPI_THREADED ? "threaded" : mode == KCPX_NAPI_AUTO ? "auto" : "keep";
}

bool kcpx_napi_is_veth(const char *ifname)
{
	struct ethtool_drvinfo info = { .cmd = ETHTOOL_GDRVINFO };
	struct ifreq ifr = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	bool veth = false;

	if (fd < 0)
		return false;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_data = (void *)&info;
	if (ioctl(fd, SIOCETHTOOL, &ifr) == 0)
		veth = !strcmp(info.driver, "veth");
	close(fd);
	return veth;
}

/* The child: its own sysfs, then one read or write; with keep, also the attribute opened
 * for writing, handed back. Reports an errno (with the fd, if any), then what it read. */
static void attr_child(int out, const char *path, const char *val, bool keep)
{
	char buf[32] = "", cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int err = 0, fd, wfd = -1;
	ssize_t n;

	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_SLAVE | MS_REC, NULL) < 0)
		err = errno;
	else if (umount2("/sys", MNT_DETACH) < 0 && errno != EINVAL)
		err = errno;
	else if (mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		err = errno;
	else if ((fd = open(path, val ? O_WRONLY : O_RDONLY)) < 0)
		err = errno;
	else {
		n = val ? write(fd, val, strlen(val)) : read(fd, buf, sizeof(buf) - 1);
		if (n < 0)
			err = errno;
		else if (!val)
			buf[n] = '\0';
		close(fd);
		if (!err && keep)
			wfd = open(path, O_WRONLY | O_CLOEXEC);
	}
	iov.iov_base = &err;
	iov.iov_len = sizeof(err);
	if (wfd >= 0) {
		struct cmsghdr *c;

		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &wfd, sizeof(int));
	}
	if (sendmsg(out, &mh, MSG_NOSIGNAL) == sizeof(err) && !err)
		n = write(out, buf, strlen(buf));
	_exit(0);
}

/* Read (val NULL, into out) or write /sys/class/net/IFACE/ATTR of our namespace; with
 * keep, *keep is then that attribute open for writing, or -1. */
static int sysfs_attr(const char *ifname, const char *attr, const char *val, char *out, size_t len,
		      int *keep)
{
	char path[96], cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov;
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	int fd, err = -EIO, status;
	ssize_t n;
	pid_t pid;

	if (keep)
		*keep = -1;
	if ((size_t)snprintf(path, sizeof(path), "/sys/class/net/%s/%s", ifname, attr) >=
	    sizeof(path))
		return -ENAMETOOLONG;
	pid = kcpx_child_fork(&fd);
	if (pid < 0)
		return pid;
	if (pid == 0)
		attr_child(fd, path, val, keep != NULL);
	iov.iov_base = &status;
	iov.iov_len = sizeof(status);
	if (recvmsg(fd, &mh, MSG_CMSG_CLOEXEC) == sizeof(status)) {
		err = -status;
		c = CMSG_FIRSTHDR(&mh);
		if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int))) {
			int got;

			memcpy(&got, CMSG_DATA(c), sizeof(int));
			if (keep && !err)
				*keep = got;
			else
				close(got);
		}
		if (!err && out) {
			n = read(fd, out, len - 1);
			out[n > 0 ? n : 0] = '\0';
		}
	}
	close(fd);
	kcpx_child_reap(pid);
	return err;
}

int kcpx_napi_setup(const char *ifname, enum kcpx_napi_mode mode, int *restore_fd)
{
	char cur[32];
	int err;

	*restore_fd = -1;
	if (mode == KCPX_NAPI_KEEP || (mode == KCPX_NAPI_AUTO && !kcpx_napi_is_veth(ifname)))
		return 0;
	err = sysfs_attr(ifname, "threaded", NULL, cur, sizeof(cur), NULL);
	if (err) {
		kcpx_io_logf(0, "%s: threaded NAPI: cannot read it: %s", ifname, strerror(-err));
		return err;
	}
	if (cur[0] != '0') {
		kcpx_io_logf(1, "%s: NAPI polls in threads already", ifname);
		return 0;
	}
	err = sysfs_attr(ifname, "threaded", "1", NULL, 0, restore_fd);
	if (err == -EOPNOTSUPP) {
		/* a veth with XDP in skb mode has no NAPI of its own */
		kcpx_io_logf(1, "%s: no NAPI to poll in threads (XDP in skb mode?)", ifname);
		return 0;
	}
	if (err) {
		kcpx_io_logf(0, "%s: threaded NAPI: %s", ifname, strerror(-err));
		return err;
	}
	if (*restore_fd < 0) {
		/* what the daemon cannot switch off again it does not switch on */
		sysfs_attr(ifname, "threaded", "0", NULL, 0, NULL);
		kcpx_io_logf(0, "%s: threaded NAPI: cannot keep the attribute open; left off",
			     ifname);
		return -EIO;
	}
	kcpx_io_logf(1, "%s: NAPI polls in threads now (--napi %s); kcpx down turns it off", ifname,
		     kcpx_napi_name(mode));
	return 1;
}

int kcpx_napi_restore(const char *ifname, int fd)
{
	int err;

	if (fd >= 0) {
		/* no fork, no mount: the attribute's store asks for CAP_NET_ADMIN only */
		err = pwrite(fd, "0", 1, 0) == 1 ? 0 : -errno;
		close(fd);
	} else {
		err = sysfs_attr(ifname, "threaded", "0", NULL, 0, NULL);
	}

	if (err && err != -ENOENT && err != -EOPNOTSUPP)
		kcpx_io_logf(0, "%s: turning threaded NAPI off: %s", ifname, strerror(-err));
	return err;
}
