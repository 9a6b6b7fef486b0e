// SPDX-License-Identifier: MIT
/* The status table: one line per session, as `kcpx status` and SIGUSR1 show it. */
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "app/log.h"
#include "app/snmp.h"
#include "app/tunnel_int.h"
#include "core/kcp.h"
#include "core/session.h"

static void write_status(struct tunnel *t, FILE *fp)
{
	const struct kcpx_config *cfg = t->cfg;
	char buf[KCPX_ADDRSTRLEN];
	struct kcpx_ep_stats es;

	kcpx_ep_stats(t->ep, &es);
	fprintf(fp, "kcpx %s pid %d on %s (%s): %u sessions\n",
		cfg->role == KCPX_ROLE_SERVER ? "server" : "client", (int)getpid(),
		cfg->role == KCPX_ROLE_SERVER ? cfg->listen : cfg->localaddr,
		t->dgs ? t->dgs->d->name : "-", (unsigned)t->snmp.CurrEstab);
	fprintf(fp, "  %-24s %-8s %-6s %-7s %7s %6s %6s %7s %6s %6s %6s %6s %6s %12s %12s\n",
		"peer", "conv", "proto", "state", "streams", "rtt", "rto", "cwnd", "loss%", "sndq",
		"rwnd", "rcvq", "ooo", "bytes-in", "bytes-out");
	for (struct kcpx_ep_sess *e = kcpx_ep_first(t->ep); e; e = kcpx_ep_next(e)) {
		struct kcpx_session *ks = kcpx_ep_session(e);
		struct sess *s = kcpx_ep_sess_user(e);
		struct kcpx_session_stats st;
		struct kcpx_kcp_info ki;
		double loss;

		kcpx_kcp_info(kcpx_session_kcp(ks), &ki);
		kcpx_session_stats(ks, &st);
		loss = st.pkts_out ? 100.0 * (double)ki.retrans / (double)st.pkts_out : 0.0;
		fprintf(fp,
			"  %-24s %08x %-6s %-7s %7u %6u %6u %7u %6.2f %6u %6u %6u %6u %12llu "
			"%12llu\n",
			kcpx_addr_str(kcpx_ep_sess_peer(e), buf, sizeof(buf)), kcpx_ep_sess_conv(e),
			kcpx_ep_sess_proto(e), kcpx_ep_sess_expired(e) ? "expired" : "up",
			kcpx_conn_count(s), ki.srtt, ki.rto, ki.cwnd, loss, ki.waitsnd, ki.rmt_wnd,
			ki.rcv_queued, ki.rcv_ooo, (unsigned long long)st.bytes_in,
			(unsigned long long)st.bytes_out);
	}
	fprintf(fp, "  tx dropped %llu, rx truncated %llu, from unknown peers %llu\n",
		(unsigned long long)t->tx_dropped, (unsigned long long)es.rx_truncated,
		(unsigned long long)es.unknown_peer);
	if (!t->psk)
		return;
	if (cfg->role == KCPX_ROLE_SERVER) {
		fprintf(fp,
			"  kcpx protocol: sessions replaced after a client fell back %llu, "
			"handshakes over --hsrate %llu\n",
			(unsigned long long)es.replaced, (unsigned long long)es.hs_limited);
		return;
	}
	fprintf(fp, "  kcpx protocol: ");
	if (!es.kcptun_mode)
		fprintf(fp, "new sessions use it");
	else if (!cfg->reprobe)
		fprintf(fp, "no answer, kcptun for good (--reprobe 0)");
	else
		fprintf(fp, "no answer %u s ago, new sessions try again after %d s", es.kcptun_for,
			cfg->reprobe);
	fprintf(fp, "; late kcpx packets %llu\n", (unsigned long long)es.late_native);
}

void kcpx_report_print(struct tunnel *t)
{
	kcpx_snmp_print(kcpx_log_file(), &t->snmp);
	write_status(t, kcpx_log_file());
	fflush(kcpx_log_file());
}

/* A `kcpx status` connection: answer with the table and hang up. */
void kcpx_report_ctl_accept(struct kcpx_watch *w, uint32_t events)
{
	struct tunnel *t = (struct tunnel *)((char *)w - offsetof(struct tunnel, ctlw));
	char *text = NULL;
	size_t len = 0;
	FILE *fp;
	int fd;

	fd = accept4(w->fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	fp = open_memstream(&text, &len);
	if (fp) {
		write_status(t, fp);
		fclose(fp);
		/* small and local: a blocking write with a timeout is fine here */
		struct timeval tv = { .tv_sec = 1 };
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		for (size_t off = 0; off < len;) {
			ssize_t n = write(fd, text + off, len - off);
			if (n <= 0)
				break;
			off += (size_t)n;
		}
		free(text);
	}
	close(fd);
}
