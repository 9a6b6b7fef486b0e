// SPDX-License-Identifier: MIT
#include "app/tcpmode.h"

#include <string.h>
#include <linux/capability.h>

#include "app/log.h"
#include "app/metrics.h"
#include "app/tunnel.h"
#include "io/faketcp.h"
#include "io/log.h"
#include "io/seccomp.h"

static void log_to_app(int level, const char *msg)
{
	kcpx_log((enum kcpx_log_level)level, "%s", msg);
}

static int be_open(void *arg, unsigned thread, const struct kcpx_addr *bind,
		   const struct kcpx_addr *peer, struct kcpx_dgram **out)
{
	(void)thread; /* one engine: --threads is refused with --tcp */
	return kcpx_ftcp_open(arg, bind, peer, out);
}

/* Called every second by the tunnel: the flows' housekeeping. */
static void be_tick(void *arg, const struct kcpx_snmp *snmp)
{
	(void)snmp;
	kcpx_ftcp_tick(arg);
}

#define U(x) ((unsigned long long)(x))

/*
 * `kcpx status` (and SIGUSR1, and the exit report): the flows, then the programs; with json,
 * the same as one "tcp" object of `kcpx status --json` (segments etc. null when the
 * programs' counters cannot be read). One list of values for both: each fprintf picks the
 * text or the JSON format of its line.
 */
static void be_report(void *arg, FILE *fp, int json)
{
	struct kcpx_ftcp_counts c;
	struct kcpx_ftcp_stats s;

	kcpx_ftcp_counts(arg, &c);
	fprintf(fp,
		json ? ",\"tcp\":{\"flows\":%llu,\"handshakes\":%llu,\"handshakes_failed\":%llu,"
		       "\"refused\":%llu,\"ended\":{\"rst\":%llu,\"syn\":%llu,\"silent\":%llu,"
		       "\"idle\":%llu,\"closed\":%llu,\"reconnected\":%llu}"
		     : "  --tcp flows: %llu established, %llu handshakes (%llu failed), %llu "
		       "refused over the caps; ended: %llu by RST, %llu by a new SYN, %llu "
		       "silent, %llu idle, %llu closed by the peer, %llu reconnected\n",
		U(c.flows), U(c.handshakes), U(c.connect_failed), U(c.refused), U(c.end_reset),
		U(c.end_syn), U(c.end_silent), U(c.end_idle), U(c.end_closed), U(c.end_dup));
	if (kcpx_ftcp_stats(arg, &s)) {
		fputs(json ? ",\"segments\":null,\"dropped\":null}"
			   : "  --tcp segments: counters unreadable\n",
		      fp);
		return;
	}
	fprintf(fp,
		json ? ",\"segments\":{\"out\":%llu,\"out_bytes\":%llu,\"in\":%llu,"
		       "\"in_bytes\":%llu,\"in_out_of_order\":%llu,\"in_implausible_ack\":%llu,"
		       "\"rst_in\":%llu,\"syn_in\":%llu,\"to_kernel_control\":%llu,"
		       "\"to_kernel_no_flow\":%llu,\"to_kernel_unsupported\":%llu}"
		     : "  --tcp segments: out %llu (%llu B), in %llu (%llu B, %llu out of order, "
		       "%llu with an implausible ACK: rcv_nxt kept); RST in %llu, SYN in %llu; to "
		       "the kernel: control %llu, without a flow %llu, unsupported headers %llu\n",
		U(s.tx_segs), U(s.tx_bytes), U(s.rx_segs), U(s.rx_bytes), U(s.rx_ooo),
		U(s.rx_ack_jump), U(s.rx_rst), U(s.rx_syn), U(s.rx_ctl), U(s.rx_noflow),
		U(s.rx_unsup));
	fprintf(fp,
		json ? ",\"dropped\":{\"out_no_flow\":%llu,\"out_malformed\":%llu,"
		       "\"out_error\":%llu,\"in_blind_rst\":%llu,\"in_truncated\":%llu}}"
		     : "  --tcp dropped: out without a flow %llu, out malformed %llu, out errors "
		       "%llu; in blind RST %llu, in truncated %llu\n",
		U(s.tx_noflow), U(s.tx_bad), U(s.tx_err), U(s.rx_rst_bad), U(s.rx_trunc));
}

static void be_status(void *arg, FILE *fp)
{
	be_report(arg, fp, 0);
}

static void be_status_json(void *arg, FILE *fp)
{
	be_report(arg, fp, 1);
}

static void metric(FILE *fp, const char *name, const char *type, const char *help)
{
	kcpx_metrics_family(fp, name, type, help);
}

/* /metrics: the same counters, one family per kind, reasons as labels. */
static void be_metrics(void *arg, FILE *fp)
{
	struct kcpx_ftcp_counts c;
	struct kcpx_ftcp_stats s;

	kcpx_ftcp_counts(arg, &c);
	metric(fp, "kcpx_ftcp_flows", "gauge", "--tcp flows established.");
	fprintf(fp, "kcpx_ftcp_flows %llu\n", U(c.flows));
	metric(fp, "kcpx_ftcp_handshakes_total", "counter",
	       "--tcp handshakes: established, failed (client), refused over the caps (server).");
	fprintf(fp, "kcpx_ftcp_handshakes_total{result=\"established\"} %llu\n", U(c.handshakes));
	fprintf(fp, "kcpx_ftcp_handshakes_total{result=\"failed\"} %llu\n", U(c.connect_failed));
	fprintf(fp, "kcpx_ftcp_handshakes_total{result=\"refused\"} %llu\n", U(c.refused));
	metric(fp, "kcpx_ftcp_flows_ended_total", "counter", "--tcp flows ended, by why.");
	fprintf(fp, "kcpx_ftcp_flows_ended_total{reason=\"rst\"} %llu\n", U(c.end_reset));
	fprintf(fp, "kcpx_ftcp_flows_ended_total{reason=\"syn\"} %llu\n", U(c.end_syn));
	fprintf(fp, "kcpx_ftcp_flows_ended_total{reason=\"silent\"} %llu\n", U(c.end_silent));
	fprintf(fp, "kcpx_ftcp_flows_ended_total{reason=\"idle\"} %llu\n", U(c.end_idle));
	fprintf(fp, "kcpx_ftcp_flows_ended_total{reason=\"closed\"} %llu\n", U(c.end_closed));
	fprintf(fp, "kcpx_ftcp_flows_ended_total{reason=\"reconnected\"} %llu\n", U(c.end_dup));
	if (kcpx_ftcp_stats(arg, &s))
		return;
	metric(fp, "kcpx_ftcp_segments_total", "counter",
	       "--tcp datagrams translated: out (UDP to TCP), in (TCP to UDP).");
	fprintf(fp, "kcpx_ftcp_segments_total{dir=\"out\"} %llu\n", U(s.tx_segs));
	fprintf(fp, "kcpx_ftcp_segments_total{dir=\"in\"} %llu\n", U(s.rx_segs));
	metric(fp, "kcpx_ftcp_rst_total", "counter",
	       "--tcp RSTs in: in window (the flow ends), blind (dropped).");
	fprintf(fp, "kcpx_ftcp_rst_total{kind=\"in_window\"} %llu\n", U(s.rx_rst));
	fprintf(fp, "kcpx_ftcp_rst_total{kind=\"blind\"} %llu\n", U(s.rx_rst_bad));
	metric(fp, "kcpx_ftcp_dropped_total", "counter", "--tcp packets dropped, by why.");
	fprintf(fp, "kcpx_ftcp_dropped_total{dir=\"out\",reason=\"no_flow\"} %llu\n",
		U(s.tx_noflow));
	fprintf(fp, "kcpx_ftcp_dropped_total{dir=\"out\",reason=\"malformed\"} %llu\n",
		U(s.tx_bad));
	fprintf(fp, "kcpx_ftcp_dropped_total{dir=\"out\",reason=\"error\"} %llu\n", U(s.tx_err));
	fprintf(fp, "kcpx_ftcp_dropped_total{dir=\"in\",reason=\"blind_rst\"} %llu\n",
		U(s.rx_rst_bad));
	fprintf(fp, "kcpx_ftcp_dropped_total{dir=\"in\",reason=\"truncated\"} %llu\n",
		U(s.rx_trunc));
}

/* `kcpx stats -p PID`: both maps, named and ordered as the pinned ones (their BTF). */
static void be_stats(void *arg, FILE *fp)
{
	struct kcpx_ftcp_counts c;
	struct kcpx_ftcp_stats s;

	if (!kcpx_ftcp_stats(arg, &s)) {
#define F(name) fprintf(fp, "kcpx_ftcp_stats %s %llu\n", #name, U(s.name))
		F(tx_segs);
		F(tx_bytes);
		F(tx_noflow);
		F(tx_bad);
		F(tx_err);
		F(rx_segs);
		F(rx_bytes);
		F(rx_ooo);
		F(rx_noflow);
		F(rx_ctl);
		F(rx_rst);
		F(rx_rst_bad);
		F(rx_syn);
		F(rx_trunc);
		F(rx_unsup);
		F(rx_ack_jump);
#undef F
	}
	kcpx_ftcp_counts(arg, &c);
#define F(name) fprintf(fp, "kcpx_ftcp_conns %s %llu\n", #name, U(c.name))
	F(flows);
	F(handshakes);
	F(connect_failed);
	F(refused);
	F(end_reset);
	F(end_syn);
	F(end_silent);
	F(end_idle);
	F(end_closed);
	F(end_dup);
#undef F
}

int kcpx_tunnel_run_tcp(const struct kcpx_config *cfg, const char *pin_ifname)
{
	struct kcpx_ftcp_config fc = { .server = cfg->role == KCPX_ROLE_SERVER,
				       .sockbuf = cfg->sockbuf,
				       .dscp = cfg->dscp,
				       .pin_ifname = pin_ifname };
	struct kcpx_tunnel_backend be = {
		.open = be_open,
		.publish = be_tick,
		.status = be_status,
		.status_json = be_status_json,
		.metrics = be_metrics,
		.stats = be_stats,
	};
	struct kcpx_ftcp *ft;
	int err;

	kcpx_io_set_log(log_to_app);
	err = kcpx_ftcp_new(&ft, &fc);
	if (err) {
		pr_warn("--tcp: cannot start: %s", strerror(-err));
		return err;
	}
	be.arg = ft;
	/*
	 * --tcp attaches its TC/XDP translation to interfaces as routes need them, and sets
	 * TCP_REPAIR on its sockets, for the daemon's whole life: it keeps what that takes,
	 * CAP_NET_ADMIN alone. TCP_REPAIR asks for CAP_NET_ADMIN in the socket's namespace
	 * (tcp_can_repair_sock); BPF_LINK_CREATE checks no capability beyond holding the
	 * (already loaded) program's fd, and the kernel's own XDP/TCX attach code asks none
	 * either; maps are used through fds held since setup. CAP_BPF, CAP_PERFMON and
	 * CAP_SYS_ADMIN were kept until the selftests showed they are not needed.
	 */
	be.keep_caps = 1ull << CAP_NET_ADMIN;
	/* its maps, the links it makes as routes need them, and its nft helper (io/nft.h),
	 * reaped at exit (io/seccomp.h) */
	be.seccomp = KCPX_SECCOMP_BPF_MAPS | KCPX_SECCOMP_BPF_LINK | KCPX_SECCOMP_WAIT;
	if (cfg->user[0]) {
		pr_warn("--tcp: --user is not supported (the translation is attached as routes "
			"need it, which takes root's capabilities)");
		kcpx_ftcp_free(ft);
		return -EINVAL;
	}
	err = kcpx_tunnel_run(cfg, &be);
	pr_info("--tcp counters at exit:");
	be_status(ft, kcpx_log_file());
	fflush(kcpx_log_file());
	kcpx_ftcp_free(ft);
	return err;
}
