// SPDX-License-Identifier: MIT
/*
 * kcpx up IFACE [--xdp-mode auto|native|skb] [--queues N] (client|server) [flags]
 * kcpx up IFACE [--xdp-mode ...] [--queues N] -c FILE [flags]
 *
 * The tunnel over the fast path: attach kcpx_xdp_steer and kcpx_tc_egress to IFACE, pin
 * the counters under /sys/fs/bpf/kcpx/IFACE, open one AF_XDP socket per RX queue, and run
 * the tunnel in the foreground with AF_XDP as its datagram backend. On SIGINT/SIGTERM
 * everything is detached and unpinned again; after a crash `kcpx down IFACE` (or the next
 * `kcpx up`) does it. While a live kcpx holds IFACE, `up` refuses.
 *
 * With --proto kcpx or auto the XDP program also runs the native protocol's checks
 * (docs/PROTOCOL.md §6): the tunnel hands over the handshake tag key at start and each
 * native session's receive tag key when its handshake completes (up_native_*), so forged,
 * replayed and stale datagrams are dropped before they reach the AF_XDP rings.
 *
 * When AF_XDP cannot work here (no XDP, not allowed to load BPF, no AF_XDP socket), `up`
 * says why and runs the same tunnel over plain UDP sockets instead.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>

#include "app/cmd.h"
#include "app/log.h"
#include "app/tcpmode.h"
#include "app/metrics.h"
#include "app/reload.h"
#include "app/tunnel.h"
#include "io/addr.h"
#include "io/ifaddr.h"
#include "io/log.h"
#include "io/seccomp.h"
#include "io/xdp.h"
#include "io/xsk.h"

#define KCPX_UP_MAX_THREADS 64 /* --threads' bound (app/config.c) */

/* Smallest datagram kcptun sends: a bare KCP segment header. XDP drops smaller ones. */
#define KCP_OVERHEAD 24

struct up {
	const char *ifname;
	enum kcpx_xdp_mode mode;
	enum kcpx_napi_mode napi;
	int queues;
	struct kcpx_xdp *xdp;
	struct kcpx_ifaddr *ifaddr; /* the host's addresses, XDP's martian sources */
	unsigned nxsk; /* engines: --threads (default: the cores), at most one per RX queue */
	struct kcpx_xsk
		*xsk[KCPX_UP_MAX_THREADS]; /* engine k's sockets: RX queues k, k + nxsk, .. */
};

/* every session of a kcpx up client has a port steered by XDP; sessions an --autoexpire
 * replaced keep theirs until their streams end */
_Static_assert(KCPX_LPORTS_MAX >= 2 * KCPX_CONN_MAX, "kcpx_lports too small for --conn");

static void log_to_app(int level, const char *msg)
{
	kcpx_log((enum kcpx_log_level)level, "%s", msg);
}

static int up_open(void *arg, unsigned thread, const struct kcpx_addr *bind,
		   const struct kcpx_addr *peer, struct kcpx_dgram **out)
{
	struct up *u = arg;

	if (thread >= u->nxsk)
		return -EINVAL;
	return kcpx_xsk_port(u->xsk[thread], bind, peer, out);
}

static int up_rx_fd(void *arg, unsigned thread)
{
	struct up *u = arg;

	return thread < u->nxsk ? kcpx_xsk_rx_fd(u->xsk[thread]) : -EINVAL;
}

static void up_rx_drain(void *arg, unsigned thread)
{
	struct up *u = arg;

	if (thread < u->nxsk)
		kcpx_xsk_rx_drain(u->xsk[thread]);
}

static int up_native_cfg(void *arg, const struct kcpx_native_cfg *cfg)
{
	struct up *u = arg;

	return kcpx_xdp_native_cfg(u->xdp, cfg);
}

static int up_native_up(void *arg, uint32_t sid, const struct kcpx_native_sess *v)
{
	struct up *u = arg;

	return kcpx_xdp_native_add(u->xdp, sid, v);
}

static void up_native_down(void *arg, uint32_t sid)
{
	struct up *u = arg;
	int err = kcpx_xdp_native_del(u->xdp, sid);

	if (err)
		pr_warn("session %08x: removing its XDP entry: %s", sid, strerror(-err));
}

/* An address came or went (io/ifaddr.h): XDP's list of martian sources follows. */
static void up_ifaddr(struct up *u)
{
	struct kcpx_martians m;
	int lost = 0, r = kcpx_ifaddr_poll(u->ifaddr, &m, &lost);

	if (!r)
		return;
	if (r < 0 || (r = kcpx_xdp_set_martians(u->xdp, &m)) < 0) {
		pr_warn("%s: following the host's addresses failed (%s): the martian source "
			"list stays as it is",
			u->ifname, strerror(-r));
		kcpx_ifaddr_close(u->ifaddr);
		u->ifaddr = NULL;
		return;
	}
	pr_info("%s: host addresses: %u IPv4 (with subnet broadcasts) and %u IPv6 now dropped "
		"as tunnel sources%s",
		u->ifname, m.n4, m.n6, lost ? "; more than fit are not" : "");
}

static void up_publish(void *arg, const struct kcpx_snmp *snmp)
{
	struct up *u = arg;

	kcpx_xdp_publish_snmp(u->xdp, snmp);
	kcpx_xsk_publish(u->xsk[0]); /* every engine's, each in its own slot */
	if (u->ifaddr)
		up_ifaddr(u);
}

/* With more than one engine: each RX queue's datagrams, in `kcpx status` ... */
static void up_status(void *arg, FILE *fp)
{
	struct up *u = arg;
	uint64_t rx, tx;
	unsigned q;

	if (u->nxsk < 2)
		return;
	for (unsigned k = 0; k < u->nxsk; k++) {
		for (int i = 0; !kcpx_xsk_queue_stats(u->xsk[k], i, &q, &rx, &tx); i++)
			fprintf(fp,
				"  %s queue %u (thread %u): af_xdp datagrams in %llu out %llu\n",
				u->ifname, q, k, (unsigned long long)rx, (unsigned long long)tx);
		/* a client's ports: answers the NIC put on another thread's queue */
		kcpx_xsk_handoffs(u->xsk[k], &rx, &tx);
		if (rx || tx)
			fprintf(fp,
				"  %s thread %u: af_xdp datagrams from other threads' queues %llu, "
				"to them %llu\n",
				u->ifname, k, (unsigned long long)rx, (unsigned long long)tx);
	}
}

/* ... and in /metrics */
static void up_metrics(void *arg, FILE *fp)
{
	struct up *u = arg;
	uint64_t rx, tx;
	unsigned q;

	kcpx_metrics_family(fp, "kcpx_queue_datagrams_total", "counter",
			    "AF_XDP datagrams per RX queue of the interface (and its engine).");
	for (unsigned k = 0; k < u->nxsk; k++) {
		for (int i = 0; !kcpx_xsk_queue_stats(u->xsk[k], i, &q, &rx, &tx); i++) {
			fprintf(fp,
				"kcpx_queue_datagrams_total{queue=\"%u\",thread=\"%u\",dir=\"in\"} "
				"%llu\n",
				q, k, (unsigned long long)rx);
			fprintf(fp,
				"kcpx_queue_datagrams_total{queue=\"%u\",thread=\"%u\",dir=\"out\"}"
				" "
				"%llu\n",
				q, k, (unsigned long long)tx);
		}
	}
}

/* The cores this process may run on (its affinity mask, so taskset and cpusets count),
 * at most KCPX_UP_MAX_THREADS: the default number of engines when there are as many RX
 * queues. */
static unsigned up_cores(void)
{
	cpu_set_t set;
	int n;

	if (sched_getaffinity(0, sizeof(set), &set))
		return 1;
	n = CPU_COUNT(&set);
	if (n < 1)
		return 1;
	return n > KCPX_UP_MAX_THREADS ? KCPX_UP_MAX_THREADS : (unsigned)n;
}

/* Attach and open the sockets. Returns 0, -EBUSY (kcpx already up), or another -errno
 * meaning "AF_XDP cannot work here" (the reason logged). */
static int up_start(struct up *u, const struct kcpx_config *cfg)
{
	struct kcpx_xdp_config xc = {
		.ifname = u->ifname,
		.dscp = cfg->dscp ? cfg->dscp : -1,
		.min_payload = KCP_OVERHEAD,
		.max_payload = KCPX_PKT_MAX,
		.mode = u->mode,
		.napi = u->napi,
	};
	struct kcpx_xsk_config sc = {
		.ifname = u->ifname,
		.queues = u->queues,
		.dscp = cfg->dscp,
		.rss_ports = cfg->role == KCPX_ROLE_CLIENT,
	};
	struct kcpx_addr a;
	unsigned last;
	int err;

	if (cfg->protocol == KCPX_PROTO_KCPX)
		xc.native = KCPX_XDP_NATIVE_ONLY;
	else if (cfg->protocol == KCPX_PROTO_AUTO)
		xc.native = KCPX_XDP_NATIVE_AUTO;
	/* A range (kcptun's "host:4000-4009"): a server's XDP program steers every port of
	 * it; a client's steers each session's own port, registered with the server port
	 * that session picked (io/xsk.c), so only the address matters here. */
	if (cfg->role == KCPX_ROLE_SERVER) {
		err = kcpx_addr_parse_range(cfg->listen, &a, &last);
		xc.role = KCPX_BPF_ROLE_SERVER;
		xc.local = a;
		xc.port_last = (uint16_t)last;
	} else {
		err = kcpx_addr_parse_range(cfg->remoteaddr, &a, &last);
		xc.role = KCPX_BPF_ROLE_CLIENT;
		xc.peer = a;
	}
	if (err) {
		pr_warn("%s '%s': %s", cfg->role == KCPX_ROLE_SERVER ? "listen" : "remoteaddr",
			cfg->role == KCPX_ROLE_SERVER ? cfg->listen : cfg->remoteaddr,
			strerror(-err));
		return -EINVAL;
	}
	xc.port = (uint16_t)kcpx_addr_port(&a);
	err = kcpx_xdp_open(&u->xdp, &xc);
	if (err)
		return err;
	err = kcpx_ifaddr_watch(&u->ifaddr);
	if (err)
		pr_warn("%s: cannot follow the host's addresses (%s): those added later are not "
			"dropped as tunnel sources",
			u->ifname, strerror(-err));
	sc.xdp = u->xdp;
	u->nxsk = cfg->threads ? (unsigned)cfg->threads : up_cores();
	err = kcpx_xsk_new_group(u->xsk, &u->nxsk, &sc);
	if (err) {
		kcpx_ifaddr_close(u->ifaddr);
		u->ifaddr = NULL;
		kcpx_xdp_close(u->xdp, true);
		u->xdp = NULL;
		return err;
	}
	pr_info("%s: XDP in %s mode, AF_XDP sockets open, counters in %s/%s", u->ifname,
		kcpx_xdp_mode_name(u->xdp), KCPX_BPF_PIN_ROOT, u->ifname);
	if (!cfg->threads)
		pr_info("%s: %u engine%s: one per RX queue, up to the %u core%s this process may "
			"run on (--threads N to choose)",
			u->ifname, u->nxsk, u->nxsk > 1 ? "s" : "", up_cores(),
			up_cores() > 1 ? "s" : "");
	else if (u->nxsk < (unsigned)cfg->threads)
		pr_info("%s: --threads %d: %u RX queue%s to serve, so %u engine%s", u->ifname,
			cfg->threads, u->nxsk, u->nxsk > 1 ? "s" : "", u->nxsk,
			u->nxsk > 1 ? "s" : "");
	if (xc.native != KCPX_XDP_NATIVE_OFF)
		pr_info("%s: XDP checks the kcpx protocol (%s)", u->ifname,
			xc.native == KCPX_XDP_NATIVE_ONLY ? "drops everything else"
							  : "passes kcptun's format");
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: kcpx up IFACE [--xdp-mode auto|native|skb] [--queues N] "
			"[--napi auto|threaded|keep] (client|server) [flags]\n"
			"       kcpx up IFACE [--xdp-mode ...] [--queues N] [--napi ...] -c FILE "
			"[flags]\n"
			"Attach XDP/TC to IFACE and run the tunnel over AF_XDP in the foreground.\n"
			"--napi: poll IFACE's receive queues in kernel threads (auto: on a veth)\n"
			"`kcpx client --help` and `kcpx server --help` list the flags.\n");
}

int kcpx_cmd_up(int argc, char **argv)
{
	struct kcpx_tunnel_backend be = { .open = up_open,
					  .publish = up_publish,
					  .native_cfg = up_native_cfg,
					  .native_up = up_native_up,
					  .native_down = up_native_down,
					  .status = up_status,
					  .metrics = up_metrics };
	struct up u = { 0 };
	enum kcpx_role role = KCPX_ROLE_NONE;
	struct kcpx_config cfg;
	int i = 1, err;

	be.arg = &u;
	/* After setup the daemon holds fds for everything (programs, maps, AF_XDP sockets);
	 * it still detaches XDP and TC, and undoes threaded NAPI (through an fd it kept,
	 * io/napi.h), when it stops: that is CAP_NET_ADMIN. It stays uid 0 so that it may remove its pins (root's 0700
	 * directory) without CAP_DAC_OVERRIDE. */
	be.keep_caps = 1ull << CAP_NET_ADMIN;
	/* its maps (counters, ports, native sessions) and, at exit, its pins (io/seccomp.h) */
	be.seccomp = KCPX_SECCOMP_BPF_MAPS;

	/* argv[0] is "up" */
	if (argc < 2 || argv[1][0] == '-') {
		usage();
		return argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) ? 0 : 2;
	}
	u.ifname = argv[i++];
	while (i < argc) {
		if (!strcmp(argv[i], "--xdp-mode") && i + 1 < argc) {
			const char *m = argv[i + 1];

			if (!strcmp(m, "native"))
				u.mode = KCPX_XDP_NATIVE;
			else if (!strcmp(m, "skb"))
				u.mode = KCPX_XDP_SKB;
			else if (!strcmp(m, "auto"))
				u.mode = KCPX_XDP_AUTO;
			else {
				fprintf(stderr, "kcpx up: --xdp-mode is auto, native or skb\n");
				return 2;
			}
			i += 2;
		} else if (!strcmp(argv[i], "--napi") && i + 1 < argc) {
			if (kcpx_napi_parse(argv[i + 1], &u.napi)) {
				fprintf(stderr,
					"kcpx up: --napi is auto, threaded or keep, not '%s'\n",
					argv[i + 1]);
				return 2;
			}
			i += 2;
		} else if (!strcmp(argv[i], "--queues") && i + 1 < argc) {
			u.queues = atoi(argv[i + 1]);
			i += 2;
		} else {
			break;
		}
	}
	role = kcpx_cmd_role(argc, argv, &i);
	if (role == KCPX_ROLE_NONE) {
		fprintf(stderr, "kcpx up: say `client` or `server`, or give -c FILE that "
				"sets listen/target or localaddr/remoteaddr\n");
		usage();
		return 2;
	}
	err = kcpx_reload_init(&cfg, argc - i, argv + i);
	if (!err)
		err = kcpx_cmd_parse_tunnel(&cfg, role, argc - i, argv + i);
	if (err)
		return err > 0 ? 0 : 2;

	if (cfg.user[0]) {
		fprintf(stderr, "kcpx up: --user is for `kcpx client|server`: kcpx up stays uid 0 "
				"(to remove its pins) and keeps only CAP_NET_ADMIN once set up\n");
		return 2;
	}
	kcpx_io_set_log(log_to_app);
	if (cfg.tcp) {
		/* AF_XDP TX passes no TC hook: the fake-TCP header would have to be built
		 * where kcpx builds frames. Until then --tcp runs on UDP sockets, with the
		 * translation in TC/XDP on the interface the route takes. */
		pr_warn("kcpx up --tcp: AF_XDP does not carry fake TCP; running over UDP sockets "
			"with the TC/XDP translation instead");
		return kcpx_tunnel_run_tcp(&cfg, u.ifname) ? 1 : 0;
	}
	setenv("LIBXDP_SKIP_DISPATCHER", "1", 0);
	err = up_start(&u, &cfg);
	if (err == -EBUSY) {
		/* kcpx (alive) or another XDP program owns IFACE: the reason is logged */
		fprintf(stderr, "kcpx up: %s is busy, not starting\n", u.ifname);
		return 1;
	}
	if (err == -EINVAL || err == -ENODEV || err == -EUCLEAN)
		return 1; /* said why; an unsafe pin tree must be looked at, not worked around */
	if (err) {
		pr_warn("AF_XDP cannot work on %s (%s): running over UDP sockets instead", u.ifname,
			strerror(-err));
		return kcpx_tunnel_run(&cfg, NULL) ? 1 : 0;
	}
	kcpx_metrics_set_iface(u.ifname);
	if (cfg.role == KCPX_ROLE_CLIENT && u.nxsk > 1) {
		/* a client engine with no session yet still takes its queues' datagrams */
		be.rx_fd = up_rx_fd;
		be.rx_drain = up_rx_drain;
	}
	/* fewer RX queues than --threads: one engine per queue */
	be.shards = u.nxsk;
	err = kcpx_tunnel_run(&cfg, &be);
	/* the tunnel closed every port; this drops the last reference to the sockets */
	for (unsigned k = 0; k < u.nxsk; k++)
		kcpx_xsk_put(u.xsk[k]);
	kcpx_ifaddr_close(u.ifaddr);
	kcpx_xdp_close(u.xdp, true);
	pr_info("%s: detached, pins removed", u.ifname);
	return err ? 1 : 0;
}
