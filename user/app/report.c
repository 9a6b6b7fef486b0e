// SPDX-License-Identifier: MIT
/* The status table: one line per session, as `kcpx status` and SIGUSR1 show it. */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "app/log.h"
#include "app/metrics.h"
#include "app/snmp.h"
#include "app/tunnel_int.h"
#include "core/kcp.h"
#include "core/pool.h"
#include "core/session.h"
#include "core/smux.h"
#include "io/clock.h"

struct memory {
	size_t rx, tx; /* stream bytes buffered, all sessions */
	struct kcpx_pool_stats blocks, chunks;
};

static void memory(struct tunnel *t, struct memory *m)
{
	m->rx = m->tx = 0;
	for (struct kcpx_ep_sess *e = kcpx_ep_first(t->ep); e; e = kcpx_ep_next(e)) {
		size_t r, w;

		kcpx_smux_buffered(kcpx_session_smux(kcpx_ep_session(e)), &r, &w);
		m->rx += r;
		m->tx += w;
	}
	kcpx_pool_stats(t->blocks, &m->blocks);
	kcpx_pool_stats(t->chunks, &m->chunks);
}

void kcpx_report_memory(struct tunnel *t, FILE *fp)
{
	struct memory m;

	memory(t, &m);
	fprintf(fp,
		"  memory: %u connections, stream bytes buffered %zu in %zu out; pool blocks "
		"%zu KiB in use (peak %zu) %zu KiB cached, chunks %zu KiB in use (peak %zu) "
		"%zu KiB cached\n",
		t->nconns, m.rx, m.tx, m.blocks.in_use * m.blocks.block / 1024,
		m.blocks.peak_in_use * m.blocks.block / 1024,
		m.blocks.cached * m.blocks.block / 1024, m.chunks.in_use * m.chunks.block / 1024,
		m.chunks.peak_in_use * m.chunks.block / 1024,
		m.chunks.cached * m.chunks.block / 1024);
}

/* One line under each session: what its congestion controller believes (docs/CONGESTION.md). */
static void write_cc(FILE *fp, struct kcpx_session *ks)
{
	const struct kcpx_kcp *kcp = kcpx_session_kcp(ks);
	struct kcpx_kcp_cc_info ci;
	int parity, ps;

	kcpx_kcp_cc_info(kcp, &ci);
	kcpx_session_fec_parity(ks, &parity, &ps, NULL);
	if (ci.algo != KCPX_CC_BBR) {
		fprintf(fp, "    cc %s, inflight %llu B\n", kcpx_cc_algo_name(ci.algo),
			(unsigned long long)ci.inflight);
		return;
	}
	fprintf(fp,
		"    cc bbr %-9s pacing %.1f Mbit/s, bottleneck %.1f Mbit/s, min rtt %u ms, "
		"inflight %llu of %llu B, random loss %.2f%%, fec parity %d/%d, local drops %llu\n",
		kcpx_cc_state_name(ci.state), (double)ci.pacing_rate * 8 / 1e6,
		(double)ci.btl_bw * 8 / 1e6, ci.min_rtt, (unsigned long long)ci.inflight,
		(unsigned long long)ci.inflight_cap, (double)ci.loss_ppm / 1e4, parity, ps,
		(unsigned long long)ci.local_drops);
}

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
		write_cc(fp, ks);
	}
	fprintf(fp,
		"  tx dropped %llu, rx truncated %llu, from unknown peers %llu, streams refused "
		"%llu\n",
		(unsigned long long)t->tx_dropped, (unsigned long long)es.rx_truncated,
		(unsigned long long)es.unknown_peer, (unsigned long long)t->streams_refused);
	if (cfg->role == KCPX_ROLE_SERVER)
		fprintf(fp,
			"  admission: new sessions refused %llu, unanswered sessions %u, "
			"datagrams held back from them %llu\n",
			(unsigned long long)es.admit_refused, es.pending,
			(unsigned long long)es.unproven_drop);
	kcpx_report_memory(t, fp);
	if (t->be && t->be->status)
		t->be->status(t->be->arg, fp);
	if (!t->psk)
		return;
	if (cfg->role == KCPX_ROLE_SERVER) {
		fprintf(fp,
			"  kcpx protocol: sessions replaced after a client fell back %llu, "
			"handshakes over --hsrate %llu, sessions moved to a new address %llu, "
			"resets sent %llu (%llu over the rate)\n",
			(unsigned long long)es.replaced, (unsigned long long)es.hs_limited,
			(unsigned long long)es.roamed, (unsigned long long)es.resets_sent,
			(unsigned long long)es.reset_limited);
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
	fprintf(fp, "; late kcpx packets %llu; sessions reset by the server %llu\n",
		(unsigned long long)es.late_native, (unsigned long long)es.resets_taken);
}

void kcpx_report_print(struct tunnel *t)
{
	kcpx_snmp_print(kcpx_log_file(), &t->snmp);
	write_status(t, kcpx_log_file());
	fflush(kcpx_log_file());
}

/* A `kcpx status` connection: answer with the table and hang up. */
/*
 * One `kcpx status` connection: the table is written without blocking the loop. The
 * socket's buffer is sized to the answer (bounded); what does not fit at once is cut,
 * and said so, rather than waited for.
 */
void kcpx_report_ctl_accept(struct kcpx_watch *w, uint32_t events)
{
	struct tunnel *t = (struct tunnel *)((char *)w - offsetof(struct tunnel, ctlw));
	static const char cut[] = "... (cut: the table did not fit the socket)\n";
	char *text = NULL;
	size_t len = 0, off = 0;
	FILE *fp;
	int fd;

	fd = accept4(w->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if ((errno == EMFILE || errno == ENFILE) && !kcpx_loop_mod(t->loop, w, 0))
			t->ctlw_paused = true;
		return;
	}
	fp = open_memstream(&text, &len);
	if (fp) {
		int sz;

		write_status(t, fp);
		fclose(fp);
		sz = len + sizeof(cut) < (4u << 20) ? (int)(len + sizeof(cut)) : 4 << 20;
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		while (off < len) {
			ssize_t n = send(fd, text + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);

			if (n <= 0)
				break;
			off += (size_t)n;
		}
		if (off < len)
			(void)!send(fd, cut, sizeof(cut) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		free(text);
	}
	close(fd);
}

/* --metrics: at most this many sessions get their own series (the rest are counted) */
#define METRICS_SESSIONS 64

static void metrics_sess_labels(FILE *fp, const char *name, struct kcpx_ep_sess *e)
{
	char peer[KCPX_ADDRSTRLEN], conv[16];

	snprintf(conv, sizeof(conv), "%08x", kcpx_ep_sess_conv(e));
	fprintf(fp, "%s{", name);
	kcpx_metrics_label(fp, "peer", kcpx_addr_str(kcpx_ep_sess_peer(e), peer, sizeof(peer)));
	fputc(',', fp);
	kcpx_metrics_label(fp, "conv", conv);
	fputc(',', fp);
	kcpx_metrics_label(fp, "proto", kcpx_ep_sess_proto(e));
	fputs("} ", fp);
}

/* The tunnel's part of /metrics: totals, then per-session series (bounded). */
void kcpx_report_metrics(void *arg, FILE *fp)
{
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
		{ "kcpx_session_bytes_in_total", "counter", "Stream bytes received." },
		{ "kcpx_session_bytes_out_total", "counter", "Stream bytes sent." },
		{ "kcpx_session_datagrams_in_total", "counter", "Datagrams received." },
		{ "kcpx_session_datagrams_out_total", "counter", "Datagrams sent." },
		{ "kcpx_session_retrans_total", "counter", "KCP segments sent again." },
		{ "kcpx_session_srtt_seconds", "gauge", "Smoothed round-trip time." },
		{ "kcpx_session_rto_seconds", "gauge", "Retransmission timeout." },
		{ "kcpx_session_cwnd", "gauge", "Congestion window, segments." },
		{ "kcpx_session_streams", "gauge", "Open streams." },
	};
	struct tunnel *t = arg;
	unsigned streams = 0, n = 0;
	struct kcpx_ep_stats es;
	struct memory m;

	kcpx_ep_stats(t->ep, &es);
	kcpx_metrics_snmp(fp, &t->snmp);
	for (struct kcpx_ep_sess *e = kcpx_ep_first(t->ep); e; e = kcpx_ep_next(e), n++)
		streams += kcpx_conn_count(kcpx_ep_sess_user(e));
	kcpx_metrics_family(fp, "kcpx_sessions", "gauge", "Sessions open.");
	fprintf(fp, "kcpx_sessions %u\n", n);
	kcpx_metrics_family(fp, "kcpx_streams", "gauge", "Streams open, all sessions.");
	fprintf(fp, "kcpx_streams %u\n", streams);
	kcpx_metrics_family(fp, "kcpx_session_series_omitted", "gauge",
			    "Sessions beyond the first 64, without their own series.");
	fprintf(fp, "kcpx_session_series_omitted %u\n",
		n > METRICS_SESSIONS ? n - METRICS_SESSIONS : 0);
	kcpx_metrics_family(fp, "kcpx_tx_dropped_total", "counter",
			    "Datagrams the backend could not send.");
	fprintf(fp, "kcpx_tx_dropped_total %llu\n", (unsigned long long)t->tx_dropped);
	kcpx_metrics_family(fp, "kcpx_unknown_peer_total", "counter",
			    "Datagrams from peers without a session, dropped.");
	fprintf(fp, "kcpx_unknown_peer_total %llu\n", (unsigned long long)es.unknown_peer);
	if (t->be && t->be->metrics)
		t->be->metrics(t->be->arg, fp);
	memory(t, &m);
	kcpx_metrics_family(fp, "kcpx_stream_buffered_bytes", "gauge",
			    "Stream bytes buffered, all sessions (in: from the peer, unread).");
	fprintf(fp, "kcpx_stream_buffered_bytes{dir=\"in\"} %zu\n", m.rx);
	fprintf(fp, "kcpx_stream_buffered_bytes{dir=\"out\"} %zu\n", m.tx);
	kcpx_metrics_family(fp, "kcpx_buffer_pool_bytes", "gauge",
			    "Buffer pools shared by the sessions: bytes in use and cached.");
	fprintf(fp, "kcpx_buffer_pool_bytes{pool=\"blocks\",state=\"in_use\"} %zu\n",
		m.blocks.in_use * m.blocks.block);
	fprintf(fp, "kcpx_buffer_pool_bytes{pool=\"blocks\",state=\"cached\"} %zu\n",
		m.blocks.cached * m.blocks.block);
	fprintf(fp, "kcpx_buffer_pool_bytes{pool=\"chunks\",state=\"in_use\"} %zu\n",
		m.chunks.in_use * m.chunks.block);
	fprintf(fp, "kcpx_buffer_pool_bytes{pool=\"chunks\",state=\"cached\"} %zu\n",
		m.chunks.cached * m.chunks.block);
	/* one family at a time, as the format wants: every session's sample of it */
	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		unsigned k = 0;

		kcpx_metrics_family(fp, fam[f].name, fam[f].type, fam[f].help);
		for (struct kcpx_ep_sess *e = kcpx_ep_first(t->ep); e && k < METRICS_SESSIONS;
		     e = kcpx_ep_next(e), k++) {
			struct kcpx_session *ks = kcpx_ep_session(e);
			struct kcpx_session_stats st;
			struct kcpx_kcp_info ki;
			uint64_t v[] = { 0, 0, 0, 0, 0 };

			kcpx_kcp_info(kcpx_session_kcp(ks), &ki);
			kcpx_session_stats(ks, &st);
			metrics_sess_labels(fp, fam[f].name, e);
			v[0] = st.bytes_in;
			v[1] = st.bytes_out;
			v[2] = st.pkts_in;
			v[3] = st.pkts_out;
			v[4] = ki.retrans;
			if (f < 5)
				fprintf(fp, "%llu\n", (unsigned long long)v[f]);
			else if (f == 5)
				fprintf(fp, "%.3f\n", ki.srtt / 1000.0);
			else if (f == 6)
				fprintf(fp, "%.3f\n", ki.rto / 1000.0);
			else if (f == 7)
				fprintf(fp, "%u\n", ki.cwnd);
			else
				fprintf(fp, "%u\n", kcpx_conn_count(kcpx_ep_sess_user(e)));
		}
	}
}

/*
 * /healthz: healthy while the tunnel runs and, when it has sessions, at least one of them
 * heard from its peer within the keepalive timeout (the window after which smux gives a
 * silent session up). A client with no session yet is healthy: it opens them on demand.
 */
bool kcpx_report_healthy(void *arg, char *why, size_t size)
{
	struct tunnel *t = arg;
	uint32_t now = kcpx_clock_ms(), window = t->keepalive_timeout_ms;
	unsigned n = 0, alive = 0;

	if (!window)
		window = 30000;
	if (t->stopping) {
		snprintf(why, size, "stopping");
		return false;
	}
	for (struct kcpx_ep_sess *e = kcpx_ep_first(t->ep); e; e = kcpx_ep_next(e), n++) {
		struct kcpx_session_stats st;

		kcpx_session_stats(kcpx_ep_session(e), &st);
		if (st.pkts_in && now - st.last_rx < window)
			alive++;
	}
	if (n && !alive) {
		snprintf(why, size, "no session heard from its peer in %u s (%u sessions)",
			 window / 1000, n);
		return false;
	}
	return true;
}
