// SPDX-License-Identifier: MIT
#include "app/tcpmode.h"

#include <string.h>
#include <linux/capability.h>

#include "app/log.h"
#include "app/tunnel.h"
#include "io/faketcp.h"
#include "io/log.h"

static void log_to_app(int level, const char *msg)
{
	kcpx_log((enum kcpx_log_level)level, "%s", msg);
}

static int be_open(void *arg, const struct kcpx_addr *bind, const struct kcpx_addr *peer,
		   struct kcpx_dgram **out)
{
	return kcpx_ftcp_open(arg, bind, peer, out);
}

/* Called every second by the tunnel: the flows' housekeeping. */
static void be_tick(void *arg, const struct kcpx_snmp *snmp)
{
	(void)snmp;
	kcpx_ftcp_tick(arg);
}

int kcpx_tunnel_run_tcp(const struct kcpx_config *cfg)
{
	struct kcpx_ftcp_config fc = { .server = cfg->role == KCPX_ROLE_SERVER,
				       .sockbuf = cfg->sockbuf,
				       .dscp = cfg->dscp };
	struct kcpx_tunnel_backend be = { .open = be_open, .publish = be_tick };
	struct kcpx_ftcp_stats s;
	struct kcpx_ftcp *ft;
	int err;

	kcpx_io_set_log(log_to_app);
	err = kcpx_ftcp_new(&ft, &fc);
	if (err) {
		pr_warn("--tcp: cannot start: %s", strerror(-err));
		return err;
	}
	be.arg = ft;
	/* --tcp attaches its TC/XDP translation to interfaces as routes need them, and sets
	 * TCP_REPAIR on its sockets, for the daemon's whole life: it keeps what that takes */
	be.keep_caps = 1ull << CAP_NET_ADMIN | 1ull << CAP_NET_RAW | 1ull << CAP_BPF |
		       1ull << CAP_PERFMON | 1ull << CAP_SYS_ADMIN;
	if (cfg->user[0]) {
		pr_warn("--tcp: --user is not supported (the translation is attached as routes "
			"need it, which takes root's capabilities)");
		kcpx_ftcp_free(ft);
		return -EINVAL;
	}
	err = kcpx_tunnel_run(cfg, &be);
	if (!kcpx_ftcp_stats(ft, &s))
		pr_info("--tcp: %llu segments out (%llu dropped without a flow), %llu in (%llu "
			"out of order), %llu RST, %llu blind RST dropped, %llu malformed",
			(unsigned long long)s.tx_segs, (unsigned long long)s.tx_noflow,
			(unsigned long long)s.rx_segs, (unsigned long long)s.rx_ooo,
			(unsigned long long)s.rx_rst, (unsigned long long)s.rx_rst_bad,
			(unsigned long long)s.rx_trunc);
	kcpx_ftcp_free(ft);
	return err;
}
