// SPDX-License-Identifier: MIT
/*
 * The BPF loader: open the kcpx skeleton, write the configuration into .rodata, load,
 * attach with plain libbpf (no libxdp dispatcher: freplace is refused on these kernels),
 * pin the maps, and undo all of it again, also from the pins alone after a crash.
 *
 * What is attached lives in the kernel, not in this process: XDP through netlink and
 * cls_bpf through tc stay attached when the daemon dies, and the counters stay readable.
 * The kcpx_info map records enough (ifindex, program ids, whether we made clsact, the
 * daemon's pid) for `kcpx down` and for `kcpx up` to tell a live daemon from a dead one.
 */
#include "io/xdp.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ifaddrs.h>
#include <limits.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <linux/magic.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "io/ifaddr.h"
#include "io/log.h"
#include "kcpx.skel.h"

/* Our cls_bpf filter on clsact egress: fixed, so `down` finds it without state. */
#define KCPX_TC_HANDLE	 0x6b63
#define KCPX_TC_PRIORITY 0x6b63
#define KCPX_BPFFS	 "/sys/fs/bpf"

struct kcpx_xdp {
	struct kcpx *skel;
	char ifname[IF_NAMESIZE];
	char pin_dir[PATH_MAX];
	int ifindex;
	__u32 xdp_flags; /* 0: not attached */
	bool tc_attached;
	bool tc_own_hook;
	bool pinned;
	bool napi_threaded; /* we turned it on: turn it off before detaching */
	int napi_fd;	    /* .. through this (io/napi.h), or -1 */
	void *percpu_buf;   /* kcpx_xdp_publish's scratch: ncpus values */
	size_t percpu_cap;
};

/* Maps pinned, in the order `kcpx stats` shows them. */
static const char *const pinned_maps[] = {
	"kcpx_xdp_stats", "kcpx_tc_stats", "kcpx_xsk_stats", "kcpx_snmp",	"kcpx_xsks",
	"kcpx_lports",	  "kcpx_info",	   "kcpx_nat_stats", "kcpx_xsk_queues",
};
/* Pinned by the --tcp translation (io/ftcp_bpf.c) under `kcpx up IFACE --tcp`. */
static const char *const ftcp_maps[] = { "kcpx_ftcp_stats", "kcpx_ftcp_conns" };
static const char *const counter_maps[] = {
	"kcpx_xdp_stats", "kcpx_tc_stats",   "kcpx_xsk_stats",	"kcpx_snmp",
	"kcpx_nat_stats", "kcpx_ftcp_stats", "kcpx_ftcp_conns",
};

/*
 * The counter maps' BTF, by id, loaded once per process and kept: loading BTF by id
 * needs CAP_SYS_ADMIN, which the daemon gives up after setup (io/priv.h), so
 * kcpx_xdp_open loads it while it may and the daemon's later reads (metrics) reuse it.
 */
static struct btf *btf_cached;
static __u32 btf_cached_id;

static struct btf *btf_get(__u32 id)
{
	struct btf *b;

	if (btf_cached && btf_cached_id == id)
		return btf_cached;
	b = btf__load_from_kernel_by_id(id);
	if (!b)
		return NULL;
	btf__free(btf_cached);
	btf_cached = b;
	btf_cached_id = id;
	return b;
}

static void btf_prime(struct kcpx_xdp *x)
{
	struct bpf_map_info mi = {};
	__u32 len = sizeof(mi);

	if (bpf_obj_get_info_by_fd(bpf_map__fd(x->skel->maps.kcpx_snmp), &mi, &len) == 0 &&
	    mi.btf_id)
		btf_get(mi.btf_id);
}

/* libbpf's own messages one level down: its warnings are our info, its info our debug. */
static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char buf[512];
	size_t n;

	if (level == LIBBPF_DEBUG)
		return 0;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		buf[--n] = 0;
	kcpx_io_log(level == LIBBPF_WARN ? 1 : 2, buf);
	return 0;
}

static int pin_path(char *buf, size_t len, const char *ifname, const char *name)
{
	int n = name ? snprintf(buf, len, "%s/%s/%s", KCPX_BPF_PIN_ROOT, ifname, name)
		     : snprintf(buf, len, "%s/%s", KCPX_BPF_PIN_ROOT, ifname);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static bool valid_ifname(const char *ifname)
{
	return ifname && *ifname && strlen(ifname) < IF_NAMESIZE && !strchr(ifname, '/') &&
	       strcmp(ifname, ".") && strcmp(ifname, "..");
}

/* /sys/fs/bpf is not mounted at boot on these machines: mount it, once, loudly. */
static int bpffs_ensure(void)
{
	struct statfs st;

	if (statfs(KCPX_BPFFS, &st) == 0 && st.f_type == BPF_FS_MAGIC)
		return 0;
	/* mode=0700: without it the kernel makes the bpffs root 1777, and any user could
	 * then plant the directories kcpx pins into (see pin_tree_open) */
	if (mount("bpf", KCPX_BPFFS, "bpf", 0, "mode=0700") < 0) {
		int err = -errno;
		kcpx_io_logf(0, "bpffs is not mounted at %s and mounting it failed: %s", KCPX_BPFFS,
			     strerror(-err));
		return err;
	}
	kcpx_io_logf(1, "mounted bpffs at %s (mode 0700)", KCPX_BPFFS);
	return 0;
}

/*
 * The pin tree /sys/fs/bpf/kcpx/IFACE belongs to root. A bpffs mounted without mode= is
 * 1777, so any local user may have made /sys/fs/bpf/kcpx, or a symlink in it, before us;
 * following either would let that user steer root's unlink()s (and its pins) anywhere.
 * So every directory on the way is opened with O_NOFOLLOW and must be a directory owned
 * by us and writable by nobody else; the bpffs root itself must be ours and, if others
 * may write to it, sticky (so nobody else can rename our entry away). Once that holds,
 * only we can change anything below, and the path names stay safe to use afterwards.
 */
enum { PIN_ROOT, PIN_KCPX, PIN_IFACE, PIN_NFDS };

static int pin_dir_check(int fd, const char *path)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		kcpx_io_logf(0,
			     "%s is owned by uid %u, not by root: refusing to use it (another "
			     "user may have made it to trick kcpx; check and remove it)",
			     path, (unsigned)st.st_uid);
		return -EUCLEAN;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
		kcpx_io_logf(0,
			     "%s is writable by group or others (mode %04o): refusing to use "
			     "it (mount bpffs with mode=0700)",
			     path, (unsigned)(st.st_mode & 07777));
		return -EUCLEAN;
	}
	return 0;
}

static int pin_dir_at(int dirfd, const char *name, const char *path, bool create, bool strict)
{
	int fd, err;

	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create) {
		if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
			return -errno;
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0) {
		err = -errno;
		if (err == -ELOOP || err == -ENOTDIR)
			kcpx_io_logf(0,
				     "%s is a symlink or not a directory: refusing to use it "
				     "(another user may have made it to trick kcpx; check and "
				     "remove it)",
				     path);
		return err == -ELOOP || err == -ENOTDIR ? -EUCLEAN : err;
	}
	err = pin_dir_check(fd, path);
	if (!err && strict) {
		struct stat st;

		/* below the root, nothing but us may write, sticky or not */
		if (fstat(fd, &st) < 0)
			err = -errno;
		else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
			kcpx_io_logf(0,
				     "%s is writable by group or others (mode %04o): refusing "
				     "to use it",
				     path, (unsigned)(st.st_mode & 07777));
			err = -EUCLEAN;
		}
	}
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

static void pin_tree_close(int *fds)
{
	for (int i = 0; i < PIN_NFDS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/*
 * Open and check the bpffs root, kcpx's directory and IFACE's under it, making the
 * two directories if create. fds[] gets one fd per level (-1 where a level is absent).
 * Returns 0 when all three are there and safe, -ENOENT when a level is missing (and
 * !create), another negative errno (already logged) when something is not safe.
 */
static int pin_tree_open(const char *ifname, bool create, int *fds)
{
	char path[PATH_MAX];
	int fd;

	for (int i = 0; i < PIN_NFDS; i++)
		fds[i] = -1;
	fd = pin_dir_at(AT_FDCWD, KCPX_BPFFS, KCPX_BPFFS, false, false);
	if (fd < 0)
		return fd;
	fds[PIN_ROOT] = fd;
	fd = pin_dir_at(fds[PIN_ROOT], "kcpx", KCPX_BPF_PIN_ROOT, create, true);
	if (fd < 0)
		goto err;
	fds[PIN_KCPX] = fd;
	if (pin_path(path, sizeof(path), ifname, NULL)) {
		fd = -ENAMETOOLONG;
		goto err;
	}
	fd = pin_dir_at(fds[PIN_KCPX], ifname, path, create, true);
	if (fd < 0)
		goto err;
	fds[PIN_IFACE] = fd;
	return 0;
err:
	/* keep the levels that are there: unpin may still tidy an empty kcpx directory */
	return fd;
}

static int prog_name_by_id(__u32 id, char *name, size_t len)
{
	struct bpf_prog_info info = {};
	__u32 ilen = sizeof(info);
	int fd, err = 0;

	fd = bpf_prog_get_fd_by_id(id);
	if (fd < 0)
		return -errno;
	if (bpf_obj_get_info_by_fd(fd, &info, &ilen) < 0)
		err = -errno;
	else
		snprintf(name, len, "%s", info.name);
	close(fd);
	return err;
}

static bool prog_is_ours(__u32 id, const char *want)
{
	char name[BPF_OBJ_NAME_LEN];

	return id && prog_name_by_id(id, name, sizeof(name)) == 0 && !strcmp(name, want);
}

static __u64 boottime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* Is pid alive, and was it already running at boot-time t (so not a reused pid)? */
static bool daemon_alive(__u32 pid, __u64 t)
{
	char path[64], buf[1024], *p;
	unsigned long long start;
	FILE *f;
	int i;

	if (!pid || (kill((pid_t)pid, 0) < 0 && errno == ESRCH))
		return false;
	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return true; /* another pid namespace: trust kill() */
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	if (!p || !(p = strrchr(buf, ')')))
		return true;
	/* field 22 (starttime, in clock ticks since boot); p is at the end of field 2 */
	for (i = 2; i < 22 && p; i++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p, "%llu", &start) != 1)
		return true;
	return start * (1000000000ull / (unsigned long long)sysconf(_SC_CLK_TCK)) <= t;
}

static int read_info(const char *ifname, struct kcpx_info *info)
{
	char path[PATH_MAX];
	__u32 key = 0;
	int fd, err;

	err = pin_path(path, sizeof(path), ifname, "kcpx_info");
	if (err)
		return err;
	fd = bpf_obj_get(path); /* callers checked the tree with pin_tree_open */
	if (fd < 0)
		return -errno;
	err = bpf_map_lookup_elem(fd, &key, info) < 0 ? -errno : 0;
	close(fd);
	return err;
}

static __u32 prog_id_of(int fd)
{
	struct bpf_prog_info pi = {};
	__u32 len = sizeof(pi);

	return fd >= 0 && bpf_obj_get_info_by_fd(fd, &pi, &len) == 0 ? pi.id : 0;
}

/*
 * own_fd: the daemon's own program fd, or -1 (kcpx down). With it, ours is told by id
 * and replaced through that fd: no program is looked up by id, which needs
 * CAP_SYS_ADMIN, a capability the daemon gave up after setup (io/priv.h).
 */
static int detach_xdp(int ifindex, int own_fd)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	__u32 own_id = prog_id_of(own_fd);
	int removed = 0, err;
	struct {
		__u32 id;
		__u32 flag;
	} att[2];

	if (bpf_xdp_query(ifindex, 0, &q) < 0)
		return -errno;
	att[0].id = q.drv_prog_id;
	att[0].flag = XDP_FLAGS_DRV_MODE;
	att[1].id = q.skb_prog_id;
	att[1].flag = XDP_FLAGS_SKB_MODE;
	for (int i = 0; i < 2; i++) {
		LIBBPF_OPTS(bpf_xdp_attach_opts, o);
		int fd;

		if (own_id ? att[i].id != own_id : !prog_is_ours(att[i].id, "kcpx_xdp_steer"))
			continue;
		/* Replace only our own program, by id, so a racing attach is not removed. */
		fd = own_id ? own_fd : bpf_prog_get_fd_by_id(att[i].id);
		if (fd < 0)
			return -errno;
		o.old_prog_fd = fd;
		err = bpf_xdp_attach(ifindex, -1, att[i].flag | XDP_FLAGS_REPLACE, &o);
		if (fd != own_fd)
			close(fd);
		if (err)
			return err;
		removed++;
	}
	return removed;
}

static int detach_tc(int ifindex, bool own_hook, int own_fd)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_EGRESS);
	LIBBPF_OPTS(bpf_tc_opts, o, .handle = KCPX_TC_HANDLE, .priority = KCPX_TC_PRIORITY);
	__u32 own_id = prog_id_of(own_fd);
	int removed = 0, err, q;

	/* no clsact at all is the normal case here: keep libbpf from saying so */
	libbpf_set_print(NULL);
	q = bpf_tc_query(&hook, &o);
	libbpf_set_print(libbpf_log);
	if (q == 0 && (own_id ? o.prog_id == own_id : prog_is_ours(o.prog_id, "kcpx_tc_egress"))) {
		LIBBPF_OPTS(bpf_tc_opts, d, .handle = KCPX_TC_HANDLE, .priority = KCPX_TC_PRIORITY);
		err = bpf_tc_detach(&hook, &d);
		if (err)
			return err;
		removed++;
	}
	if (own_hook) {
		/* clsact holds ingress too: destroying it removes both, which is what we made. */
		hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
		err = bpf_tc_hook_destroy(&hook);
		if (err && err != -ENOENT && err != -EINVAL)
			return err;
	}
	return removed;
}

/*
 * Remove kcpx's own pins of IFACE, by name, and the directories if they are then empty.
 * Anything else found there stays (and is named): kcpx removes only what it made. ftcp:
 * also the --tcp translation's counters (`kcpx down`, not a daemon's own exit).
 */
static int unpin_all(const char *ifname, bool ftcp)
{
	int fds[PIN_NFDS], removed = 0, err;

	err = pin_tree_open(ifname, false, fds);
	if (err == -ENOENT) {
		/* no IFACE directory: tidy an empty kcpx directory, if it is ours */
		if (fds[PIN_KCPX] >= 0)
			unlinkat(fds[PIN_ROOT], "kcpx", AT_REMOVEDIR);
		pin_tree_close(fds);
		return 0;
	}
	if (err) {
		pin_tree_close(fds);
		return err;
	}
	for (size_t i = 0; i < sizeof(pinned_maps) / sizeof(pinned_maps[0]); i++)
		if (unlinkat(fds[PIN_IFACE], pinned_maps[i], 0) == 0)
			removed++;
	for (size_t i = 0; ftcp && i < sizeof(ftcp_maps) / sizeof(ftcp_maps[0]); i++)
		if (unlinkat(fds[PIN_IFACE], ftcp_maps[i], 0) == 0)
			removed++;
	if (unlinkat(fds[PIN_KCPX], ifname, AT_REMOVEDIR) < 0) {
		err = errno == ENOENT ? 0 : -errno;
		if (err == -ENOTEMPTY)
			kcpx_io_logf(1, "%s/%s holds files kcpx did not make: left in place",
				     KCPX_BPF_PIN_ROOT, ifname);
	}
	/* only when no other interface is left in it */
	unlinkat(fds[PIN_ROOT], "kcpx", AT_REMOVEDIR);
	pin_tree_close(fds);
	return err == -ENOTEMPTY ? removed : err ? err : removed + 1;
}

int kcpx_xdp_down(const char *ifname)
{
	struct kcpx_info info = {};
	bool have_info, own_hook = false;
	int ifindex, n, total = 0, err = 0;

	if (!valid_ifname(ifname))
		return -EINVAL;
	libbpf_set_print(libbpf_log);
	if (bpffs_ensure() < 0)
		return -ENOENT;
	{
		int fds[PIN_NFDS], e = pin_tree_open(ifname, false, fds);

		pin_tree_close(fds);
		if (e && e != -ENOENT)
			return e;
	}
	have_info = read_info(ifname, &info) == 0;
	ifindex = if_nametoindex(ifname);
	if (have_info) {
		own_hook = info.tc_own_hook;
		/* the interface may have been renamed; its index is what we attached to */
		if (ifindex && (int)info.ifindex != ifindex)
			kcpx_io_logf(1, "%s: pinned state names ifindex %u, %s is %d now", ifname,
				     info.ifindex, ifname, ifindex);
		if (!ifindex)
			ifindex = info.ifindex;
	}
	if (ifindex) {
		/* while XDP is on, so the veth still has the NAPI that sysfs must find */
		if (have_info && info.napi_threaded && ifindex == (int)info.ifindex)
			kcpx_napi_restore(ifname, -1);
		n = detach_xdp(ifindex, -1);
		if (n < 0 && n != -ENODEV) {
			kcpx_io_logf(0, "%s: XDP detach failed: %s", ifname, strerror(-n));
			err = n;
		} else if (n > 0) {
			total += n;
		}
		n = detach_tc(ifindex, own_hook, -1);
		if (n < 0 && n != -ENODEV) {
			kcpx_io_logf(0, "%s: TC detach failed: %s", ifname, strerror(-n));
			err = err ? err : n;
		} else if (n > 0) {
			total += n;
		}
	}
	n = unpin_all(ifname, true);
	if (n < 0) {
		kcpx_io_logf(0, "%s: unpin failed: %s", ifname, strerror(-n));
		err = err ? err : n;
	} else {
		total += n;
	}
	if (err)
		return err;
	return total ? 0 : -ENOENT;
}

/* Someone's XDP program is on the interface already: say whose, and what to do. */
static void busy_msg(const struct kcpx_xdp *x)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	__u32 id = 0;

	if (bpf_xdp_query(x->ifindex, 0, &q) == 0)
		id = q.drv_prog_id ? q.drv_prog_id : q.skb_prog_id;
	if (prog_is_ours(id, "kcpx_xdp_steer"))
		kcpx_io_logf(0,
			     "%s: a kcpx XDP program (id %u) is attached that no running kcpx "
			     "owns: 'kcpx down %s' removes it",
			     x->ifname, id, x->ifname);
	else
		kcpx_io_logf(0, "%s: another XDP program (id %u) is attached: not replacing it",
			     x->ifname, id);
}

static int attach_xdp(struct kcpx_xdp *x, enum kcpx_xdp_mode mode)
{
	int fd = bpf_program__fd(x->skel->progs.kcpx_xdp_steer), err = -EOPNOTSUPP;
	__u32 noexist = XDP_FLAGS_UPDATE_IF_NOEXIST;

	if (mode != KCPX_XDP_SKB) {
		err = bpf_xdp_attach(x->ifindex, fd, XDP_FLAGS_DRV_MODE | noexist, NULL);
		if (!err) {
			x->xdp_flags = XDP_FLAGS_DRV_MODE;
			kcpx_io_logf(1, "%s: XDP attached in native mode", x->ifname);
			return 0;
		}
		if (err == -EBUSY || err == -EEXIST) {
			busy_msg(x);
			return -EBUSY;
		}
		if (mode == KCPX_XDP_NATIVE) {
			kcpx_io_logf(0, "%s: native XDP attach failed: %s", x->ifname,
				     strerror(-err));
			return err;
		}
		kcpx_io_logf(0, "%s: native XDP attach failed (%s): falling back to skb mode",
			     x->ifname, strerror(-err));
	}
	err = bpf_xdp_attach(x->ifindex, fd, XDP_FLAGS_SKB_MODE | noexist, NULL);
	if (err == -EBUSY || err == -EEXIST) {
		busy_msg(x);
		return -EBUSY;
	}
	if (err) {
		kcpx_io_logf(0, "%s: skb-mode XDP attach failed: %s", x->ifname, strerror(-err));
		return err;
	}
	x->xdp_flags = XDP_FLAGS_SKB_MODE;
	kcpx_io_logf(1, "%s: XDP attached in skb (generic) mode", x->ifname);
	return 0;
}

static int attach_tc(struct kcpx_xdp *x)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = x->ifindex, .attach_point = BPF_TC_EGRESS);
	LIBBPF_OPTS(bpf_tc_opts, o, .handle = KCPX_TC_HANDLE, .priority = KCPX_TC_PRIORITY,
		    .prog_fd = bpf_program__fd(x->skel->progs.kcpx_tc_egress));
	int err;

	err = bpf_tc_hook_create(&hook);
	if (err && err != -EEXIST) {
		kcpx_io_logf(0, "%s: clsact create failed: %s", x->ifname, strerror(-err));
		return err;
	}
	x->tc_own_hook = !err;
	err = bpf_tc_attach(&hook, &o);
	if (err) {
		kcpx_io_logf(0, "%s: TC egress attach failed: %s", x->ifname, strerror(-err));
		if (x->tc_own_hook) {
			hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
			bpf_tc_hook_destroy(&hook);
			x->tc_own_hook = false;
		}
		return err;
	}
	x->tc_attached = true;
	return 0;
}

static int pin_maps(struct kcpx_xdp *x)
{
	char path[PATH_MAX];
	int err;

	int fds[PIN_NFDS];

	err = pin_tree_open(x->ifname, true, fds);
	pin_tree_close(fds);
	if (err)
		return err;
	x->pinned = true;
	for (size_t i = 0; i < sizeof(pinned_maps) / sizeof(pinned_maps[0]); i++) {
		struct bpf_map *m = bpf_object__find_map_by_name(x->skel->obj, pinned_maps[i]);

		if (!m)
			return -ENOENT;
		err = pin_path(path, sizeof(path), x->ifname, pinned_maps[i]);
		if (err)
			return err;
		err = bpf_map__pin(m, path);
		if (err)
			return err;
	}
	return 0;
}

static int write_info(struct kcpx_xdp *x, enum kcpx_bpf_role role)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = x->ifindex, .attach_point = BPF_TC_EGRESS);
	LIBBPF_OPTS(bpf_tc_opts, o, .handle = KCPX_TC_HANDLE, .priority = KCPX_TC_PRIORITY);
	struct bpf_prog_info pi = {};
	__u32 len = sizeof(pi), key = 0;
	struct kcpx_info info = {
		.ifindex = x->ifindex,
		.xdp_flags = x->xdp_flags,
		.tc_handle = KCPX_TC_HANDLE,
		.tc_priority = KCPX_TC_PRIORITY,
		.pid = getpid(),
		.tc_own_hook = x->tc_own_hook,
		.napi_threaded = x->napi_threaded,
		.role = role,
		.start_time_ns = boottime_ns(),
	};

	if (bpf_obj_get_info_by_fd(bpf_program__fd(x->skel->progs.kcpx_xdp_steer), &pi, &len) == 0)
		info.xdp_prog_id = pi.id;
	if (x->tc_attached && bpf_tc_query(&hook, &o) == 0)
		info.tc_prog_id = o.prog_id;
	if (bpf_map_update_elem(bpf_map__fd(x->skel->maps.kcpx_info), &key, &info, 0) < 0)
		return -errno;
	return 0;
}

/* Refuse while a live daemon owns IFACE; clean up after a dead one. */
static int check_not_up(const char *ifname)
{
	int fds[PIN_NFDS], err;
	struct kcpx_info info;

	bool own = false;

	err = pin_tree_open(ifname, false, fds);
	for (size_t i = 0; !err && i < sizeof(pinned_maps) / sizeof(pinned_maps[0]); i++)
		own |= faccessat(fds[PIN_IFACE], pinned_maps[i], F_OK, AT_SYMLINK_NOFOLLOW) == 0;
	pin_tree_close(fds);
	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	/* only the counters of a `kcpx up IFACE --tcp` (io/ftcp_bpf.c), which runs over UDP
	 * sockets: not state of ours; its daemon, or `kcpx down IFACE`, removes them */
	if (!own)
		return 0;
	if (read_info(ifname, &info) == 0 && daemon_alive(info.pid, info.start_time_ns)) {
		kcpx_io_logf(0, "kcpx is already up on %s (pid %u): run 'kcpx down %s' first",
			     ifname, info.pid, ifname);
		return -EBUSY;
	}
	kcpx_io_logf(0, "%s: state of a kcpx that is gone found: cleaning it up", ifname);
	err = kcpx_xdp_down(ifname);
	if (err && err != -ENOENT)
		return err;
	return 0;
}

static bool if_is_loopback(const char *ifname)
{
	struct ifreq ifr = {};
	bool lo = false;
	int fd;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	strncpy(ifr.ifr_name, ifname, sizeof(ifr.ifr_name) - 1);
	if (!ioctl(fd, SIOCGIFFLAGS, &ifr))
		lo = ifr.ifr_flags & IFF_LOOPBACK;
	close(fd);
	return lo;
}

int kcpx_xdp_set_martians(struct kcpx_xdp *x, const struct kcpx_martians *m)
{
	__u32 key = 0;

	/* Not atomic against the program reading it: for the moment of the copy a packet
	 * may be judged by a mix of the old and the new list. */
	return bpf_map_update_elem(bpf_map__fd(x->skel->maps.kcpx_martians), &key, m, BPF_ANY) < 0
		       ? -errno
		       : 0;
}

/* The host's addresses as they are now: martian sources until the daemon says more. */
static void martians_init(struct kcpx_xdp *x)
{
	struct kcpx_martians m;
	int lost = kcpx_ifaddr_read(&m), err;

	if (lost < 0) {
		kcpx_io_logf(0,
			     "%s: reading the host's addresses: %s; packets from them are not "
			     "dropped as martians",
			     x->ifname, strerror(-lost));
		return;
	}
	if (lost)
		kcpx_io_logf(0,
			     "%s: more than %d IPv4 or %d IPv6 host addresses: %d not checked "
			     "as martian sources",
			     x->ifname, KCPX_MARTIAN4_MAX, KCPX_MARTIAN6_MAX, lost);
	err = kcpx_xdp_set_martians(x, &m);
	if (err)
		kcpx_io_logf(0, "%s: writing kcpx_martians: %s", x->ifname, strerror(-err));
}

static int set_rodata(struct kcpx_xdp *x, const struct kcpx_xdp_config *cfg)
{
	struct kcpx_bpf_cfg *c = &x->skel->rodata->kcpx_cfg;

	memset(c, 0, sizeof(*c));
	c->role = cfg->role;
	c->port = htons(cfg->port);
	if (cfg->role == KCPX_BPF_ROLE_SERVER && cfg->port_last > cfg->port) {
		c->port_first = cfg->port;
		c->port_last = cfg->port_last;
	}
	c->min_payload = cfg->min_payload ? cfg->min_payload : 1;
	c->max_payload = cfg->max_payload ? cfg->max_payload : KCPX_PKT_MAX;
	if (cfg->native != KCPX_XDP_NATIVE_OFF)
		c->flags |= KCPX_CFG_F_NATIVE;
	if (cfg->native == KCPX_XDP_NATIVE_ONLY)
		c->flags |= KCPX_CFG_F_NATIVE_STRICT;
	if (cfg->dscp >= 0) {
		if (cfg->dscp > 63)
			return -EINVAL;
		c->dscp = cfg->dscp;
		c->flags |= KCPX_CFG_F_DSCP;
	}
	if (cfg->loopback || (cfg->ifname && if_is_loopback(cfg->ifname)))
		c->flags |= KCPX_CFG_F_LOOPBACK;
	if (cfg->role == KCPX_BPF_ROLE_SERVER && cfg->local.sa.sa_family == AF_INET &&
	    cfg->local.in.sin_addr.s_addr != htonl(INADDR_ANY)) {
		c->flags |= KCPX_CFG_F_LOCAL;
		c->local_family = 4;
		memcpy(c->local_addr, &cfg->local.in.sin_addr, 4);
	} else if (cfg->role == KCPX_BPF_ROLE_SERVER && cfg->local.sa.sa_family == AF_INET6 &&
		   !IN6_IS_ADDR_UNSPECIFIED(&cfg->local.in6.sin6_addr)) {
		c->flags |= KCPX_CFG_F_LOCAL;
		c->local_family = 6;
		memcpy(c->local_addr, &cfg->local.in6.sin6_addr, 16);
	}
	if (cfg->role == KCPX_BPF_ROLE_CLIENT) {
		if (cfg->peer.sa.sa_family == AF_INET) {
			c->family = 4;
			memcpy(c->peer_addr, &cfg->peer.in.sin_addr, 4);
		} else if (cfg->peer.sa.sa_family == AF_INET6) {
			c->family = 6;
			memcpy(c->peer_addr, &cfg->peer.in6.sin6_addr, 16);
		} else {
			return -EINVAL;
		}
	}
	return 0;
}

int kcpx_xdp_open(struct kcpx_xdp **out, const struct kcpx_xdp_config *cfg)
{
	struct kcpx_xdp *x;
	int err;

	*out = NULL;
	if (cfg->ifname && !valid_ifname(cfg->ifname))
		return -EINVAL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->napi_fd = -1;
	libbpf_set_print(libbpf_log);

	if (cfg->ifname) {
		snprintf(x->ifname, sizeof(x->ifname), "%s", cfg->ifname);
		x->ifindex = if_nametoindex(cfg->ifname);
		if (!x->ifindex) {
			err = -ENODEV;
			kcpx_io_logf(0, "%s: no such interface", cfg->ifname);
			goto err_free;
		}
		err = pin_path(x->pin_dir, sizeof(x->pin_dir), x->ifname, NULL);
		if (err)
			goto err_free;
		err = bpffs_ensure();
		if (err)
			goto err_free;
		err = check_not_up(cfg->ifname);
		if (err)
			goto err_free;
	}

	x->skel = kcpx__open();
	if (!x->skel) {
		err = -errno;
		goto err_free;
	}
	err = set_rodata(x, cfg);
	if (err)
		goto err_destroy;
	err = kcpx__load(x->skel);
	if (err) {
		kcpx_io_logf(0, "loading the BPF programs failed: %s%s", strerror(-err),
			     err == -EPERM ? " (needs root: CAP_BPF and CAP_NET_ADMIN)" : "");
		goto err_destroy;
	}
	if (!cfg->ifname) {
		*out = x;
		return 0;
	}
	/* before the program sees a packet; the daemon keeps it current (io/ifaddr.h) */
	martians_init(x);

	err = pin_maps(x);
	if (err) {
		kcpx_io_logf(0, "%s: pinning maps under %s failed: %s", x->ifname, x->pin_dir,
			     strerror(-err));
		goto err_undo;
	}
	/* Name the owner (pid, start time) as soon as the pins exist: a second kcpx up
	 * that sees them in the meantime must find us alive (check_not_up), not take the
	 * half-made state for a dead daemon's and tear it down. Written again, complete,
	 * once everything is attached. */
	err = write_info(x, cfg->role);
	if (err)
		goto err_undo;
	err = attach_xdp(x, cfg->mode);
	if (err)
		goto err_undo;
	if (!cfg->no_tc) {
		err = attach_tc(x);
		if (err)
			goto err_undo;
	}
	/* a failure here costs speed, not function: go on without */
	x->napi_threaded = kcpx_napi_setup(x->ifname, cfg->napi, &x->napi_fd) > 0;
	err = write_info(x, cfg->role);
	if (err)
		goto err_undo;
	btf_prime(x);
	*out = x;
	return 0;

err_undo:
	kcpx_xdp_close(x, true);
	return err;
err_destroy:
	kcpx__destroy(x->skel);
err_free:
	free(x);
	return err;
}

void kcpx_xdp_close(struct kcpx_xdp *x, bool detach)
{
	if (!x)
		return;
	if (detach && x->ifindex) {
		int n;

		if (x->napi_threaded)
			kcpx_napi_restore(x->ifname, x->napi_fd);
		x->napi_fd = -1;
		if (x->xdp_flags &&
		    (n = detach_xdp(x->ifindex, bpf_program__fd(x->skel->progs.kcpx_xdp_steer))) <
			    0)
			kcpx_io_logf(0, "%s: XDP detach failed: %s", x->ifname, strerror(-n));
		if ((x->tc_attached || x->tc_own_hook) &&
		    (n = detach_tc(x->ifindex, x->tc_own_hook,
				   bpf_program__fd(x->skel->progs.kcpx_tc_egress))) < 0)
			kcpx_io_logf(0, "%s: TC detach failed: %s", x->ifname, strerror(-n));
		if (x->pinned)
			unpin_all(x->ifname, false); /* a --tcp daemon's stay its own */
	}
	if (x->napi_fd >= 0)
		close(x->napi_fd);
	kcpx__destroy(x->skel);
	free(x->percpu_buf);
	free(x);
}

const char *kcpx_xdp_mode_name(const struct kcpx_xdp *x)
{
	if (x->xdp_flags == XDP_FLAGS_DRV_MODE)
		return "native";
	if (x->xdp_flags == XDP_FLAGS_SKB_MODE)
		return "skb";
	return NULL;
}

int kcpx_xdp_ifindex(const struct kcpx_xdp *x)
{
	return x->ifindex;
}

int kcpx_xdp_fd(const struct kcpx_xdp *x, enum kcpx_xdp_fd which)
{
	struct kcpx *s = x->skel;

	switch (which) {
	case KCPX_FD_PROG_XDP:
		return bpf_program__fd(s->progs.kcpx_xdp_steer);
	case KCPX_FD_PROG_TC:
		return bpf_program__fd(s->progs.kcpx_tc_egress);
	case KCPX_FD_XSKS:
		return bpf_map__fd(s->maps.kcpx_xsks);
	case KCPX_FD_LPORTS:
		return bpf_map__fd(s->maps.kcpx_lports);
	case KCPX_FD_XDP_STATS:
		return bpf_map__fd(s->maps.kcpx_xdp_stats);
	case KCPX_FD_TC_STATS:
		return bpf_map__fd(s->maps.kcpx_tc_stats);
	case KCPX_FD_XSK_STATS:
		return bpf_map__fd(s->maps.kcpx_xsk_stats);
	case KCPX_FD_SNMP:
		return bpf_map__fd(s->maps.kcpx_snmp);
	case KCPX_FD_INFO:
		return bpf_map__fd(s->maps.kcpx_info);
	case KCPX_FD_NAT_CFG:
		return bpf_map__fd(s->maps.kcpx_nat_cfg);
	case KCPX_FD_NAT_SESS:
		return bpf_map__fd(s->maps.kcpx_nat_sess);
	case KCPX_FD_NAT_STATS:
		return bpf_map__fd(s->maps.kcpx_nat_stats);
	case KCPX_FD_NAT_FEC:
		return bpf_map__fd(s->maps.kcpx_nat_fec);
	case KCPX_FD_XSK_QUEUES:
		return bpf_map__fd(s->maps.kcpx_xsk_queues);
	}
	return -EINVAL;
}

int kcpx_xdp_publish_queue(struct kcpx_xdp *x, unsigned q, const struct kcpx_xsk_queue *v)
{
	int fd = bpf_map__fd(x->skel->maps.kcpx_xsk_queues);
	__u32 key = q;

	if (q >= KCPX_XSK_MAX_QUEUES)
		return -ERANGE;
	return bpf_map_update_elem(fd, &key, v, BPF_ANY) < 0 ? -errno : 0;
}

int kcpx_xdp_set_xsk(struct kcpx_xdp *x, unsigned queue, int fd)
{
	int mfd = bpf_map__fd(x->skel->maps.kcpx_xsks);
	__u32 key = queue, val = fd;

	if (queue >= KCPX_XSK_MAX_QUEUES)
		return -ERANGE;
	if (fd < 0)
		return bpf_map_delete_elem(mfd, &key) < 0 && errno != ENOENT ? -errno : 0;
	return bpf_map_update_elem(mfd, &key, &val, 0) < 0 ? -errno : 0;
}

int kcpx_xdp_add_lport(struct kcpx_xdp *x, uint16_t port, const struct kcpx_addr *peer)
{
	struct kcpx_lport v = { 0 };
	__be16 key = htons(port);

	if (peer->sa.sa_family == AF_INET) {
		v.family = 4;
		memcpy(v.peer_addr, &peer->in.sin_addr, 4);
		v.peer_port = peer->in.sin_port;
	} else if (peer->sa.sa_family == AF_INET6) {
		v.family = 6;
		memcpy(v.peer_addr, &peer->in6.sin6_addr, 16);
		v.peer_port = peer->in6.sin6_port;
	} else {
		return -EAFNOSUPPORT;
	}
	return bpf_map_update_elem(bpf_map__fd(x->skel->maps.kcpx_lports), &key, &v, 0) < 0 ? -errno
											    : 0;
}

int kcpx_xdp_del_lport(struct kcpx_xdp *x, uint16_t port)
{
	__be16 key = htons(port);

	return bpf_map_delete_elem(bpf_map__fd(x->skel->maps.kcpx_lports), &key) < 0 &&
			       errno != ENOENT
		       ? -errno
		       : 0;
}

int kcpx_xdp_native_cfg(struct kcpx_xdp *x, const struct kcpx_native_cfg *cfg)
{
	__u32 key = 0;

	return bpf_map_update_elem(bpf_map__fd(x->skel->maps.kcpx_nat_cfg), &key, cfg, 0) < 0
		       ? -errno
		       : 0;
}

int kcpx_xdp_native_add(struct kcpx_xdp *x, uint32_t sid, const struct kcpx_native_sess *v)
{
	__u32 key = sid;

	/* BPF_ANY: a sid the daemon reuses after a close starts with this fresh window */
	return bpf_map_update_elem(bpf_map__fd(x->skel->maps.kcpx_nat_sess), &key, v, BPF_ANY) < 0
		       ? -errno
		       : 0;
}

int kcpx_xdp_native_del(struct kcpx_xdp *x, uint32_t sid)
{
	__u32 key = sid;

	return bpf_map_delete_elem(bpf_map__fd(x->skel->maps.kcpx_nat_sess), &key) < 0 &&
			       errno != ENOENT
		       ? -errno
		       : 0;
}

int kcpx_xdp_publish_n(struct kcpx_xdp *x, enum kcpx_xdp_fd which, const void *vals, unsigned n,
		       size_t size)
{
	int ncpu = libbpf_num_possible_cpus(), fd = kcpx_xdp_fd(x, which);
	size_t stride = (size + 7) & ~(size_t)7;
	__u32 key = 0;

	if (ncpu < 0)
		return ncpu;
	if (fd < 0)
		return fd;
	if (n > 1 && size % 8)
		return -EINVAL;
	if (x->percpu_cap < stride * ncpu) {
		void *p = calloc(ncpu, stride);

		if (!p)
			return -ENOMEM;
		free(x->percpu_buf);
		x->percpu_buf = p;
		x->percpu_cap = stride * ncpu;
	}
	memset(x->percpu_buf, 0, stride * ncpu);
	for (unsigned i = 0; i < n; i++) {
		__u64 *dst = (__u64 *)((char *)x->percpu_buf + stride * (i % (unsigned)ncpu));
		const char *src = (const char *)vals + size * i;

		if (n == 1) {
			memcpy(dst, src, size);
			break;
		}
		for (size_t k = 0; k < size / 8; k++) {
			__u64 v;

			memcpy(&v, src + k * 8, 8);
			dst[k] += v;
		}
	}
	return bpf_map_update_elem(fd, &key, x->percpu_buf, 0) < 0 ? -errno : 0;
}

int kcpx_xdp_sum_percpu(int map_fd, void *sum, size_t size)
{
	int ncpu = libbpf_num_possible_cpus();
	size_t stride = (size + 7) & ~(size_t)7;
	__u64 *out = sum;
	__u32 key = 0;
	char *buf;
	int err = 0;

	if (ncpu < 0)
		return ncpu;
	if (size % 8)
		return -EINVAL;
	buf = calloc(ncpu, stride);
	if (!buf)
		return -ENOMEM;
	if (bpf_map_lookup_elem(map_fd, &key, buf) < 0) {
		err = -errno;
		goto out;
	}
	memset(sum, 0, size);
	for (int c = 0; c < ncpu; c++) {
		const __u64 *v = (const __u64 *)(buf + c * stride);

		for (size_t i = 0; i < size / 8; i++)
			out[i] += v[i];
	}
out:
	free(buf);
	return err;
}

static __u32 map_id_of(int fd)
{
	struct bpf_map_info mi = {};
	__u32 len = sizeof(mi);

	return fd >= 0 && bpf_obj_get_info_by_fd(fd, &mi, &len) == 0 ? mi.id : 0;
}

int kcpx_xdp_pin_map(const char *ifname, const char *name, int map_fd)
{
	char path[PATH_MAX];
	int fds[PIN_NFDS], err;

	if (!valid_ifname(ifname))
		return -EINVAL;
	err = bpffs_ensure();
	if (err)
		return err;
	err = pin_tree_open(ifname, true, fds);
	if (!err) {
		/* a pin of this name that is here already was left by a daemon that died */
		if (unlinkat(fds[PIN_IFACE], name, 0) < 0 && errno != ENOENT)
			err = -errno;
	}
	pin_tree_close(fds);
	if (!err)
		err = pin_path(path, sizeof(path), ifname, name);
	if (!err && bpf_obj_pin(map_fd, path) < 0)
		err = -errno;
	return err;
}

void kcpx_xdp_unpin_map(const char *ifname, const char *name, int map_fd)
{
	char path[PATH_MAX];
	int fds[PIN_NFDS], fd;

	if (!valid_ifname(ifname) || pin_tree_open(ifname, false, fds)) {
		pin_tree_close(fds);
		return;
	}
	/* `kcpx down` and a new daemon may have replaced it meanwhile: only our own map */
	if (!pin_path(path, sizeof(path), ifname, name) && (fd = bpf_obj_get(path)) >= 0) {
		if (map_id_of(fd) == map_id_of(map_fd))
			unlinkat(fds[PIN_IFACE], name, 0);
		close(fd);
	}
	/* both only once empty */
	unlinkat(fds[PIN_KCPX], ifname, AT_REMOVEDIR);
	unlinkat(fds[PIN_ROOT], "kcpx", AT_REMOVEDIR);
	pin_tree_close(fds);
}

/* Opens the pinned map NAME of IFNAME and reads its info: the fd, or -errno. */
static int stats_map_open(const char *ifname, const char *name, struct bpf_map_info *mi)
{
	__u32 mlen = sizeof(*mi);
	char path[PATH_MAX];
	int fd, err;

	err = pin_path(path, sizeof(path), ifname, name);
	if (err)
		return err;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	memset(mi, 0, sizeof(*mi));
	if (bpf_obj_get_info_by_fd(fd, mi, &mlen) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* One pinned per-CPU counter map: its value struct's members by BTF, summed over CPUs. */
static int stats_one(const char *ifname, const char *name, kcpx_xdp_stat_cb cb, void *ctx)
{
	struct bpf_map_info mi;
	const struct btf_member *m;
	const struct btf_type *t;
	struct btf *btf = NULL;
	__u64 *sum = NULL;
	int fd, err = 0;

	fd = stats_map_open(ifname, name, &mi);
	if (fd < 0)
		return fd;
	if (!mi.btf_id || !mi.btf_value_type_id || mi.value_size % 8) {
		err = -EPROTO;
		goto out;
	}
	btf = btf_get(mi.btf_id);
	if (!btf) {
		err = -errno;
		goto out;
	}
	t = btf__type_by_id(btf, mi.btf_value_type_id);
	if (!t || !btf_is_struct(t)) {
		err = -EPROTO;
		goto out;
	}
	sum = calloc(1, mi.value_size);
	if (!sum) {
		err = -ENOMEM;
		goto out;
	}
	err = kcpx_xdp_sum_percpu(fd, sum, mi.value_size);
	if (err)
		goto out;
	m = btf_members(t);
	for (int i = 0; i < btf_vlen(t); i++, m++) {
		const char *fname = btf__name_by_offset(btf, m->name_off);
		__u32 off = btf_member_bit_offset(t, i) / 8;

		if (!fname || !strncmp(fname, "pad", 3) || off + 8 > mi.value_size)
			continue;
		cb(ctx, name, fname, sum[off / 8]);
	}
out:
	free(sum);
	close(fd);
	return err;
}

/* kcpx_xsk_queues: an array by queue, not per-CPU counters; its open queues only. */
static int stats_queues(const char *ifname, kcpx_xdp_stat_cb cb, void *ctx)
{
	const char *name = "kcpx_xsk_queues";
	struct bpf_map_info mi;
	char field[32];
	int fd, err = 0;

	fd = stats_map_open(ifname, name, &mi);
	if (fd < 0)
		return fd;
	if (mi.value_size != sizeof(struct kcpx_xsk_queue)) {
		err = -EPROTO; /* another kcpx's layout: say nothing rather than garbage */
		goto out;
	}
	for (__u32 q = 0; q < mi.max_entries && q < KCPX_XSK_MAX_QUEUES; q++) {
		struct kcpx_xsk_queue v;

		if (bpf_map_lookup_elem(fd, &q, &v) || !v.open)
			continue;
		snprintf(field, sizeof(field), "q%u_rx_packets", q);
		cb(ctx, name, field, v.rx_packets);
		snprintf(field, sizeof(field), "q%u_tx_packets", q);
		cb(ctx, name, field, v.tx_packets);
	}
out:
	close(fd);
	return err;
}

int kcpx_xdp_stats(const char *ifname, kcpx_xdp_stat_cb cb, void *ctx)
{
	int fds[PIN_NFDS], err, found = 0;

	if (!valid_ifname(ifname))
		return -EINVAL;
	libbpf_set_print(libbpf_log);
	err = pin_tree_open(ifname, false, fds);
	pin_tree_close(fds);
	if (err)
		return err;
	for (size_t i = 0; i < sizeof(counter_maps) / sizeof(counter_maps[0]); i++) {
		err = stats_one(ifname, counter_maps[i], cb, ctx);
		if (err == -ENOENT)
			continue;
		if (err)
			return err;
		found++;
	}
	if (found) {
		err = stats_queues(ifname, cb, ctx);
		if (err && err != -ENOENT && err != -EPROTO)
			return err;
	}
	return found ? 0 : -ENOENT;
}
