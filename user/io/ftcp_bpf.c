// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include "faketcp.skel.h"
#include "io/ftcp_bpf.h"
#include "io/log.h"
#include "io/xdp.h"

/* The kernel has TCX links; libbpf 1.1's headers do not name them. */
#define KCPX_BPF_TCX_INGRESS 46
#define KCPX_BPF_TCX_EGRESS  47
#define FTCP_IFACES_MAX	     16

struct ftcp_iface {
	int ifindex;
	int xdp_link_fd; /* native-mode XDP ingress */
	int tc_link_fd;
	int tci_link_fd; /* TCX ingress, when XDP was taken */
};

struct kcpx_ftcp_bpf {
	struct faketcp *skel;
	struct ftcp_iface ifs[FTCP_IFACES_MAX];
	int nifs;
	char pin_ifname[IF_NAMESIZE]; /* "": nothing pinned */
	void *percpu_buf;	      /* kcpx_ftcp_bpf_publish's scratch: ncpus values */
};

/* libbpf's own messages one level down: the callers say what failed and what happens. */
static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char buf[512];

	if (level == LIBBPF_DEBUG)
		return 0;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = 0;
	kcpx_io_logf(level == LIBBPF_WARN ? 1 : 2, "libbpf: %s", buf);
	return 0;
}

int kcpx_ftcp_bpf_open(struct kcpx_ftcp_bpf **out)
{
	struct kcpx_ftcp_bpf *b;
	int err;

	*out = NULL;
	libbpf_set_print(libbpf_log);
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->skel = faketcp__open_and_load();
	if (!b->skel) {
		err = -errno;
		kcpx_io_logf(0, "loading the --tcp BPF programs failed: %s%s", strerror(-err),
			     err == -EPERM ? " (needs root: CAP_BPF and CAP_NET_ADMIN)" : "");
		free(b);
		return err;
	}
	*out = b;
	return 0;
}

void kcpx_ftcp_bpf_close(struct kcpx_ftcp_bpf *b)
{
	if (!b)
		return;
	for (int i = 0; i < b->nifs; i++) {
		if (b->ifs[i].xdp_link_fd >= 0)
			close(b->ifs[i].xdp_link_fd);
		if (b->ifs[i].tc_link_fd >= 0)
			close(b->ifs[i].tc_link_fd);
		if (b->ifs[i].tci_link_fd >= 0)
			close(b->ifs[i].tci_link_fd);
	}
	if (b->pin_ifname[0]) {
		kcpx_xdp_unpin_map(b->pin_ifname, "kcpx_ftcp_stats",
				   bpf_map__fd(b->skel->maps.kcpx_ftcp_stats));
		kcpx_xdp_unpin_map(b->pin_ifname, "kcpx_ftcp_conns",
				   bpf_map__fd(b->skel->maps.kcpx_ftcp_conns));
	}
	faketcp__destroy(b->skel);
	free(b->percpu_buf);
	free(b);
}

int kcpx_ftcp_bpf_attached(const struct kcpx_ftcp_bpf *b, int ifindex)
{
	for (int i = 0; i < b->nifs; i++)
		if (b->ifs[i].ifindex == ifindex)
			return 1;
	return 0;
}

static int kind_cb(const struct nlattr *a, void *data)
{
	bool *veth = data;

	if (mnl_attr_get_type(a) == IFLA_INFO_KIND && !mnl_attr_validate(a, MNL_TYPE_STRING))
		*veth = !strcmp(mnl_attr_get_str(a), "veth");
	return MNL_CB_OK;
}

static int link_attr_cb(const struct nlattr *a, void *data)
{
	if (mnl_attr_get_type(a) == IFLA_LINKINFO && !mnl_attr_validate(a, MNL_TYPE_NESTED))
		mnl_attr_parse_nested(a, kind_cb, data);
	return MNL_CB_OK;
}

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
	if (nlh->nlmsg_type == RTM_NEWLINK)
		mnl_attr_parse(nlh, sizeof(struct ifinfomsg), link_attr_cb, data);
	return MNL_CB_OK;
}

/*
 * Whether the interface is a veth (the kernel's IFLA_INFO_KIND, asked over rtnetlink: it
 * answers for the daemon's own network namespace, and the seccomp filter allows it). On
 * false for any failure, the caller keeps to its default.
 */
static bool link_is_veth(int ifindex)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct mnl_socket *nl;
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifm;
	bool veth = false;
	unsigned portid;
	ssize_t n;

	nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!nl)
		return false;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
		goto out;
	portid = mnl_socket_get_portid(nl);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_GETLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	nlh->nlmsg_seq = 1;
	ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	ifm->ifi_index = ifindex;
	mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		goto out;
	n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
	if (n > 0)
		mnl_cb_run(buf, (size_t)n, 1, portid, link_cb, &veth);
out:
	mnl_socket_close(nl);
	return veth;
}

int kcpx_ftcp_bpf_attach(struct kcpx_ftcp_bpf *b, int ifindex)
{
	struct ftcp_iface *fi;
	char name[IF_NAMESIZE] = "?";
	int err;

	if (kcpx_ftcp_bpf_attached(b, ifindex))
		return 0;
	if (b->nifs == FTCP_IFACES_MAX)
		return -ENOSPC;
	if_indextoname((unsigned)ifindex, name);
	fi = &b->ifs[b->nifs];
	fi->ifindex = ifindex;
	fi->tc_link_fd = -1;
	fi->tci_link_fd = -1;
	/*
	 * Ingress in native XDP, or else on TCX: never generic XDP, which runs later than
	 * TCX anyway and linearises every skb (on lo, every 64 KiB loopback TCP packet of
	 * the tunnel's own target connections). TCX also when the one XDP slot is taken
	 * (another --tcp daemon, kcpx up), and first on a veth: its "native" XDP runs on
	 * the skb it was handed, copied whole into a new page whenever its headroom is
	 * short of XDP_PACKET_HEADROOM (every segment a local socket sends), where TCX
	 * rewrites the skb in place (docs/INTEROP.md "--tcp").
	 */
	fi->xdp_link_fd = -EOPNOTSUPP;
	if (!link_is_veth(ifindex)) {
		LIBBPF_OPTS(bpf_link_create_opts, xo, .flags = XDP_FLAGS_DRV_MODE);

		fi->xdp_link_fd = bpf_link_create(bpf_program__fd(b->skel->progs.kcpx_xdp_ftcp),
						  ifindex, BPF_XDP, &xo);
	}
	if (fi->xdp_link_fd < 0) {
		fi->tci_link_fd = bpf_link_create(bpf_program__fd(b->skel->progs.kcpx_tci_ftcp),
						  ifindex, KCPX_BPF_TCX_INGRESS, NULL);
		if (fi->tci_link_fd < 0) {
			err = fi->tci_link_fd;
			kcpx_io_logf(0, "%s: --tcp ingress: no native XDP (%s), TCX failed: %s",
				     name, strerror(-fi->xdp_link_fd), strerror(-err));
			return err;
		}
	}
	fi->tc_link_fd = bpf_link_create(bpf_program__fd(b->skel->progs.kcpx_tc_ftcp), ifindex,
					 KCPX_BPF_TCX_EGRESS, NULL);
	if (fi->tc_link_fd < 0) {
		err = fi->tc_link_fd;
		kcpx_io_logf(0, "%s: --tcp TC egress (TCX) attach failed: %s", name,
			     strerror(-err));
		if (fi->xdp_link_fd >= 0)
			close(fi->xdp_link_fd);
		if (fi->tci_link_fd >= 0)
			close(fi->tci_link_fd);
		return err;
	}
	b->nifs++;
	kcpx_io_logf(1, "%s: --tcp translation attached (%s ingress, TCX egress)", name,
		     fi->xdp_link_fd >= 0 ? "XDP" : "TCX");
	return 0;
}

int kcpx_ftcp_bpf_fd(const struct kcpx_ftcp_bpf *b, enum kcpx_ftcp_fd which)
{
	switch (which) {
	case KCPX_FTCP_FD_PROG_XDP:
		return bpf_program__fd(b->skel->progs.kcpx_xdp_ftcp);
	case KCPX_FTCP_FD_PROG_TC:
		return bpf_program__fd(b->skel->progs.kcpx_tc_ftcp);
	case KCPX_FTCP_FD_PROG_TCI:
		return bpf_program__fd(b->skel->progs.kcpx_tci_ftcp);
	case KCPX_FTCP_FD_PORTS:
		return bpf_map__fd(b->skel->maps.kcpx_ftcp_ports);
	case KCPX_FTCP_FD_FLOWS:
		return bpf_map__fd(b->skel->maps.kcpx_ftcp_flows);
	case KCPX_FTCP_FD_STATS:
		return bpf_map__fd(b->skel->maps.kcpx_ftcp_stats);
	}
	return -EINVAL;
}

/* Set or clear one port's bit. Only this thread writes the set; the programs read it. */
static int port_set(struct kcpx_ftcp_bpf *b, uint16_t port, bool on)
{
	int fd = bpf_map__fd(b->skel->maps.kcpx_ftcp_ports);
	struct kcpx_ftcp_portset ps;
	__u32 zero = 0;

	if (bpf_map_lookup_elem(fd, &zero, &ps))
		return -errno;
	if (on)
		ps.w[port / 64] |= 1ull << (port % 64);
	else
		ps.w[port / 64] &= ~(1ull << (port % 64));
	return bpf_map_update_elem(fd, &zero, &ps, BPF_ANY) ? -errno : 0;
}

int kcpx_ftcp_bpf_port_add(struct kcpx_ftcp_bpf *b, uint16_t port)
{
	return port_set(b, port, true);
}

int kcpx_ftcp_bpf_port_del(struct kcpx_ftcp_bpf *b, uint16_t port)
{
	return port_set(b, port, false);
}

void kcpx_ftcp_key_make(struct kcpx_ftcp_key *k, const struct kcpx_addr *peer, uint16_t lport)
{
	memset(k, 0, sizeof(*k));
	if (peer->sa.sa_family == AF_INET) {
		k->raddr[10] = 0xff;
		k->raddr[11] = 0xff;
		memcpy(&k->raddr[12], &peer->in.sin_addr, 4);
		k->rport = peer->in.sin_port;
	} else {
		memcpy(k->raddr, &peer->in6.sin6_addr, 16);
		k->rport = peer->in6.sin6_port;
	}
	k->lport = htons(lport);
}

int kcpx_ftcp_bpf_flow_set(struct kcpx_ftcp_bpf *b, const struct kcpx_ftcp_key *k,
			   const struct kcpx_ftcp_flow *f)
{
	return bpf_map_update_elem(bpf_map__fd(b->skel->maps.kcpx_ftcp_flows), k, f, BPF_ANY)
		       ? -errno
		       : 0;
}

int kcpx_ftcp_bpf_flow_get(struct kcpx_ftcp_bpf *b, const struct kcpx_ftcp_key *k,
			   struct kcpx_ftcp_flow *f)
{
	return bpf_map_lookup_elem(bpf_map__fd(b->skel->maps.kcpx_ftcp_flows), k, f) ? -errno : 0;
}

int kcpx_ftcp_bpf_flow_del(struct kcpx_ftcp_bpf *b, const struct kcpx_ftcp_key *k)
{
	return bpf_map_delete_elem(bpf_map__fd(b->skel->maps.kcpx_ftcp_flows), k) ? -errno : 0;
}

int kcpx_ftcp_bpf_stats(struct kcpx_ftcp_bpf *b, struct kcpx_ftcp_stats *s)
{
	return kcpx_xdp_sum_percpu(bpf_map__fd(b->skel->maps.kcpx_ftcp_stats), s, sizeof(*s));
}

int kcpx_ftcp_bpf_publish(struct kcpx_ftcp_bpf *b, const struct kcpx_ftcp_counts *c)
{
	int ncpu = libbpf_num_possible_cpus();
	__u32 key = 0;

	if (ncpu < 0)
		return ncpu;
	if (!b->percpu_buf) {
		b->percpu_buf = calloc((size_t)ncpu, sizeof(*c));
		if (!b->percpu_buf)
			return -ENOMEM;
	}
	memcpy(b->percpu_buf, c, sizeof(*c));
	return bpf_map_update_elem(bpf_map__fd(b->skel->maps.kcpx_ftcp_conns), &key, b->percpu_buf,
				   0)
		       ? -errno
		       : 0;
}

int kcpx_ftcp_bpf_pin(struct kcpx_ftcp_bpf *b, const char *ifname)
{
	int err;

	if (b->pin_ifname[0] || strlen(ifname) >= sizeof(b->pin_ifname))
		return -EINVAL;
	err = kcpx_xdp_pin_map(ifname, "kcpx_ftcp_stats",
			       bpf_map__fd(b->skel->maps.kcpx_ftcp_stats));
	if (err)
		return err;
	/* from here on close() unpins: record the name before the second pin */
	snprintf(b->pin_ifname, sizeof(b->pin_ifname), "%s", ifname);
	return kcpx_xdp_pin_map(ifname, "kcpx_ftcp_conns",
				bpf_map__fd(b->skel->maps.kcpx_ftcp_conns));
}
