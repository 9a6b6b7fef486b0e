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
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>

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

/* The child: its own sysfs, then one read or write. Reports an errno, then what it read. */
static void attr_child(int out, const char *path, const char *val)
{
	char buf[32] = "";
	int err = 0, fd;
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
	}
	if (write(out, &err, sizeof(err)) == sizeof(err) && !err)
		n = write(out, buf, strlen(buf));
	_exit(0);
}

/* Read (val NULL, into out) or write /sys/class/net/IFACE/ATTR of our namespace. */
static int sysfs_attr(const char *ifname, const char *attr, const char *val, char *out, size_t len)
{
	char path[96];
	int pfd[2], err = -EIO, status;
	ssize_t n;
	pid_t pid;

	if ((size_t)snprintf(path, sizeof(path), "/sys/class/net/%s/%s", ifname, attr) >=
	    sizeof(path))
		return -ENAMETOOLONG;
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		err = -errno;
		close(pfd[0]);
		close(pfd[1]);
		return err;
	}
	if (pid == 0) {
		close(pfd[0]);
		attr_child(pfd[1], path, val);
	}
	close(pfd[1]);
	if (read(pfd[0], &status, sizeof(status)) == sizeof(status)) {
		err = -status;
		if (!err && out) {
			n = read(pfd[0], out, len - 1);
			out[n > 0 ? n : 0] = '\0';
		}
	}
	close(pfd[0]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return err;
}

int kcpx_napi_setup(const char *ifname, enum kcpx_napi_mode mode)
{
	char cur[32];
	int err;

	if (mode == KCPX_NAPI_KEEP || (mode == KCPX_NAPI_AUTO && !kcpx_napi_is_veth(ifname)))
		return 0;
	err = sysfs_attr(ifname, "threaded", NULL, cur, sizeof(cur));
	if (err) {
		kcpx_io_logf(0, "%s: threaded NAPI: cannot read it: %s", ifname, strerror(-err));
		return err;
	}
	if (cur[0] != '0') {
		kcpx_io_logf(1, "%s: NAPI polls in threads already", ifname);
		return 0;
	}
	err = sysfs_attr(ifname, "threaded", "1", NULL, 0);
	if (err == -EOPNOTSUPP) {
		/* a veth with XDP in skb mode has no NAPI of its own */
		kcpx_io_logf(1, "%s: no NAPI to poll in threads (XDP in skb mode?)", ifname);
		return 0;
	}
	if (err) {
		kcpx_io_logf(0, "%s: threaded NAPI: %s", ifname, strerror(-err));
		return err;
	}
	kcpx_io_logf(1, "%s: NAPI polls in threads now (--napi %s); kcpx down turns it off", ifname,
		     kcpx_napi_name(mode));
	return 1;
}

int kcpx_napi_restore(const char *ifname)
{
	int err = sysfs_attr(ifname, "threaded", "0", NULL, 0);

	if (err && err != -ENOENT && err != -EOPNOTSUPP)
		kcpx_io_logf(0, "%s: turning threaded NAPI off: %s", ifname, strerror(-err));
	return err;
}
