// SPDX-License-Identifier: MIT
/* The status table: one line per session, as `kcpx status` and SIGUSR1 show it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
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
	unsigned nconns;
};

static void pool_add(struct kcpx_pool_stats *sum, const struct kcpx_pool *p)
{
	struct kcpx_pool_stats st;

	kcpx_pool_stats(p, &st);
	sum->block = st.block;
	sum->in_use += st.in_use;
	sum->peak_in_use += st.peak_in_use;
	sum->cached += st.cached;
}

/* Every thread's (--threads): each one's pools and sessions, summed. */
static void memory(struct tunnel *self, struct memory *m)
{
	memset(m, 0, sizeof(*m));
	for (unsigned i = 0; i < kcpx_shard_count(self); i++) {
		struct tunnel *t = kcpx_shard_get(self, i);

		for (struct kcpx_ep_sess *e = kcpx_ep_first(t->ep); e; e = kcpx_ep_next(e)) {
			size_t r, w;

			kcpx_smux_buffered(kcpx_session_smux(kcpx_ep_session(e)), &r, &w);
			m->rx += r;
			m->tx += w;
		}
		pool_add(&m->blocks, t->blocks);
		pool_add(&m->chunks, t->chunks);
		m->nconns += t->nconns;
		kcpx_shard_put(self, t);
	}
}

/* What `kcpx status` and /metrics sum over the threads besides memory. */
struct totals {
	struct kcpx_ep_stats es;
	uint64_t tx_dropped, rx_dropped, streams_refused;
	unsigned sessions;
};

static void totals(struct tunnel *self, struct totals *a)
{
	memset(a, 0, sizeof(*a));
	for (unsigned i = 0; i < kcpx_shard_count(self); i++) {
		struct tunnel *t = kcpx_shard_get(self, i);
		struct kcpx_ep_stats es;

		kcpx_ep_stats(t->ep, &es);
		if (!i)
			a->es = es;
		else {
			a->es.rx_truncated += es.rx_truncated;
			a->es.unknown_peer += es.unknown_peer;
			a->es.late_native += es.late_native;
			a->es.replaced += es.replaced;
			a->es.hs_limited += es.hs_limited;
			a->es.hs_bad_tag += es.hs_bad_tag;
			a->es.init_raced += es.init_raced;
			a->es.admit_refused += es.admit_refused;
			a->es.unproven_drop += es.unproven_drop;
			a->es.pending += es.pending;
			a->es.roamed += es.roamed;
			a->es.resets_sent += es.resets_sent;
			a->es.reset_limited += es.reset_limited;
			a->es.resets_taken += es.resets_taken;
		}
		a->tx_dropped += t->tx_dropped;
		a->rx_dropped += t->rx_dropped;
		a->streams_refused += t->streams_refused;
		a->sessions += kcpx_ep_count(t->ep);
		kcpx_shard_put(self, t);
	}
}

void kcpx_report_memory(struct tunnel *t, FILE *fp)
{
	struct memory m;

	memory(t, &m);
	fprintf(fp,
		"  memory: %u connections, stream bytes buffered %zu in %zu out; pool blocks "
		"%zu KiB in use (peak %zu) %zu KiB cached, chunks %zu KiB in use (peak %zu) "
		"%zu KiB cached\n",
		m.nconns, m.rx, m.tx, m.blocks.in_use * m.blocks.block / 1024,
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
		fprintf(fp, "    cc %s, inflight %llu B, rx drops %u, peer drops %llu\n",
			kcpx_cc_algo_name(ci.algo), (unsigned long long)ci.inflight, ci.rx_drops,
			(unsigned long long)ci.peer_drops);
		return;
	}
	fprintf(fp,
		"    cc bbr %-9s pacing %.1f Mbit/s, bottleneck %.1f Mbit/s, min rtt %u ms, "
		"inflight %llu of %llu B, random loss %.2f%%, fec parity %d/%d, local drops %llu, "
		"rx drops %u, peer drops %llu\n",
		kcpx_cc_state_name(ci.state), (double)ci.pacing_rate * 8 / 1e6,
		(double)ci.btl_bw * 8 / 1e6, ci.min_rtt, (unsigned long long)ci.inflight,
		(unsigned long long)ci.inflight_cap, (double)ci.loss_ppm / 1e4, parity, ps,
		(unsigned long long)ci.local_drops, ci.rx_drops, (unsigned long long)ci.peer_drops);
}

/* One thread's session rows. */
static void write_sessions(struct tunnel *t, FILE *fp)
{
	char buf[KCPX_ADDRSTRLEN];

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
}

static void write_status(struct tunnel *self, FILE *fp)
{
	const struct kcpx_config *cfg = self->cfg;
	unsigned nthreads = kcpx_shard_count(self);
	struct kcpx_snmp snmp;
	struct kcpx_ep_stats es;
	struct totals a;

	kcpx_shard_snmp(self, &snmp);
	totals(self, &a);
	es = a.es;
	fprintf(fp, "kcpx %s pid %d on %s (%s): %u sessions\n",
		cfg->role == KCPX_ROLE_SERVER ? "server" : "client", (int)getpid(),
		cfg->role == KCPX_ROLE_SERVER ? cfg->listen : cfg->localaddr,
		self->dgs ? self->dgs->d->name : "-", (unsigned)snmp.CurrEstab);
	fprintf(fp, "  %-24s %-8s %-6s %-7s %7s %6s %6s %7s %6s %6s %6s %6s %6s %12s %12s\n",
		"peer", "conv", "proto", "state", "streams", "rtt", "rto", "cwnd", "loss%", "sndq",
		"rwnd", "rcvq", "ooo", "bytes-in", "bytes-out");
	for (unsigned i = 0; i < nthreads; i++) {
		struct tunnel *t = kcpx_shard_get(self, i);

		/* --threads: which thread holds which sessions, and what it received */
		if (nthreads > 1)
			fprintf(fp,
				"  thread %u: %u sessions, datagrams in %llu out %llu, handed to "
				"another thread %llu, from another %llu, hand-overs dropped %llu\n",
				i, kcpx_ep_count(t->ep), (unsigned long long)t->snmp.InPkts,
				(unsigned long long)t->snmp.OutPkts,
				(unsigned long long)t->handed_out, (unsigned long long)t->handed_in,
				(unsigned long long)t->handoff_drop);
		write_sessions(t, fp);
		kcpx_shard_put(self, t);
	}
	fprintf(fp,
		"  tx dropped %llu, rx dropped %llu, rx truncated %llu, from unknown peers %llu, "
		"streams refused %llu\n",
		(unsigned long long)a.tx_dropped, (unsigned long long)a.rx_dropped,
		(unsigned long long)es.rx_truncated, (unsigned long long)es.unknown_peer,
		(unsigned long long)a.streams_refused);
	if (cfg->role == KCPX_ROLE_SERVER)
		fprintf(fp,
			"  admission: new sessions refused %llu, unanswered sessions %u, "
			"datagrams held back from them %llu\n",
			(unsigned long long)es.admit_refused, es.pending,
			(unsigned long long)es.unproven_drop);
	kcpx_report_memory(self, fp);
	if (self->be && self->be->status)
		self->be->status(self->be->arg, fp);
	if (!self->psk)
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
	struct kcpx_snmp snmp;

	kcpx_shard_snmp(t, &snmp);
	kcpx_snmp_print(kcpx_log_file(), &snmp);
	write_status(t, kcpx_log_file());
	fflush(kcpx_log_file());
}

/* A JSON string: quotes, backslashes and control bytes escaped. */
static void json_str(FILE *fp, const char *v)
{
	fputc('"', fp);
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(fp, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(fp, "\\u%04x", *p);
		else
			fputc(*p, fp);
	}
	fputc('"', fp);
}

static void json_cc(FILE *fp, struct kcpx_session *ks)
{
	const struct kcpx_kcp *kcp = kcpx_session_kcp(ks);
	struct kcpx_kcp_cc_info ci;
	uint64_t sent, lost;
	uint32_t fec_loss;
	int parity, ps;

	kcpx_kcp_cc_info(kcp, &ci);
	kcpx_session_fec_parity(ks, &parity, &ps, &fec_loss);
	kcpx_kcp_loss_counts(kcp, &sent, &lost);
	fprintf(fp, "\"cc\":{\"algo\":");
	json_str(fp, kcpx_cc_algo_name(ci.algo));
	fprintf(fp, ",\"inflight_bytes\":%llu", (unsigned long long)ci.inflight);
	if (ci.algo == KCPX_CC_BBR) {
		fprintf(fp, ",\"state\":");
		json_str(fp, kcpx_cc_state_name(ci.state));
		fprintf(fp,
			",\"pacing_bps\":%llu,\"bottleneck_bps\":%llu,\"min_rtt_ms\":%u,"
			"\"inflight_cap_bytes\":%llu,\"random_loss_ppm\":%u",
			(unsigned long long)ci.pacing_rate * 8, (unsigned long long)ci.btl_bw * 8,
			ci.min_rtt, (unsigned long long)ci.inflight_cap, (unsigned)ci.loss_ppm);
		fprintf(fp, ",\"fec_parity\":%d,\"fec_parity_max\":%d,\"local_drops\":%llu", parity,
			ps, (unsigned long long)ci.local_drops);
		/* what adaptive FEC decides on: transmissions, copies lost, its raw-loss guess */
		fprintf(fp, ",\"sent_segs\":%llu,\"lost_segs\":%llu,\"fec_loss_ppm\":%u",
			(unsigned long long)sent, (unsigned long long)lost, (unsigned)fec_loss);
		/* parity by need: new segments sent, of them with more held back behind them */
		kcpx_kcp_backlog_counts(kcp, &sent, &lost);
		fprintf(fp, ",\"new_segs\":%llu,\"held_segs\":%llu", (unsigned long long)sent,
			(unsigned long long)lost);
		/* what ended STARTUP and the estimate it left at: a slow session's first clue */
		fprintf(fp, ",\"rounds\":%u,\"startup_exit\":", ci.rounds);
		json_str(fp, kcpx_cc_exit_name(ci.startup_exit));
		fprintf(fp, ",\"startup_exit_bps\":%llu",
			(unsigned long long)ci.startup_exit_bw * 8);
	}
	/* receive drops: ours for this session, and what the peer reported of ours */
	fprintf(fp, ",\"rx_drops\":%u,\"peer_drops\":%llu", ci.rx_drops,
		(unsigned long long)ci.peer_drops);
	fputc('}', fp);
}

/* The same facts as write_status, as one JSON object (`kcpx status --json`). */
static void write_status_json(struct tunnel *t, FILE *fp)
{
	const struct kcpx_config *cfg = t->cfg;
	char buf[KCPX_ADDRSTRLEN];
	struct kcpx_ep_stats es;
	struct memory m;
	bool first = true;

	kcpx_ep_stats(t->ep, &es);
	fprintf(fp, "{\"role\":\"%s\",\"pid\":%d,\"addr\":",
		cfg->role == KCPX_ROLE_SERVER ? "server" : "client", (int)getpid());
	json_str(fp, (cfg->role == KCPX_ROLE_SERVER ? cfg->listen : cfg->localaddr));
	fprintf(fp, ",\"backend\":");
	json_str(fp, t->dgs ? t->dgs->d->name : "-");
	fprintf(fp, ",\"sessions_established\":%u,\"sessions\":[", (unsigned)t->snmp.CurrEstab);
	for (struct kcpx_ep_sess *e = kcpx_ep_first(t->ep); e; e = kcpx_ep_next(e)) {
		struct kcpx_session *ks = kcpx_ep_session(e);
		struct sess *s = kcpx_ep_sess_user(e);
		struct kcpx_session_stats st;
		struct kcpx_kcp_info ki;

		kcpx_kcp_info(kcpx_session_kcp(ks), &ki);
		kcpx_session_stats(ks, &st);
		fprintf(fp, "%s{\"peer\":", first ? "" : ",");
		first = false;
		json_str(fp, kcpx_addr_str(kcpx_ep_sess_peer(e), buf, sizeof(buf)));
		fprintf(fp, ",\"conv\":\"%08x\",\"proto\":", kcpx_ep_sess_conv(e));
		json_str(fp, kcpx_ep_sess_proto(e));
		fprintf(fp,
			",\"state\":\"%s\",\"streams\":%u,\"rtt_ms\":%u,\"rto_ms\":%u,\"cwnd\":%u,"
			"\"loss_pct\":%.2f,\"retrans\":%llu,\"datagrams_out\":%llu,\"datagrams_"
			"in\":%llu,\"sndq\":%u,"
			"\"rwnd\":%u,\"rcvq\":%u,\"ooo\":%u,\"bytes_in\":%llu,\"bytes_out\":%llu,"
			"\"snd_wnd\":%u,\"rcv_wnd\":%u,\"inflight_segs\":%u,",
			kcpx_ep_sess_expired(e) ? "expired" : "up", kcpx_conn_count(s), ki.srtt,
			ki.rto, ki.cwnd,
			st.pkts_out ? 100.0 * (double)ki.retrans / (double)st.pkts_out : 0.0,
			(unsigned long long)ki.retrans, (unsigned long long)st.pkts_out,
			(unsigned long long)st.pkts_in, ki.waitsnd, ki.rmt_wnd, ki.rcv_queued,
			ki.rcv_ooo, (unsigned long long)st.bytes_in,
			(unsigned long long)st.bytes_out, ki.snd_wnd, ki.rcv_wnd, ki.inflight);
		json_cc(fp, ks);
		fputc('}', fp);
	}
	fprintf(fp,
		"],\"tx_dropped\":%llu,\"rx_dropped\":%llu,\"rx_truncated\":%llu,"
		"\"unknown_peer\":%llu,\"streams_refused\":%llu",
		(unsigned long long)t->tx_dropped, (unsigned long long)t->rx_dropped,
		(unsigned long long)es.rx_truncated, (unsigned long long)es.unknown_peer,
		(unsigned long long)t->streams_refused);
	if (cfg->role == KCPX_ROLE_SERVER)
		fprintf(fp,
			",\"admission\":{\"refused\":%llu,\"unanswered_sessions\":%u,"
			"\"held_back\":%llu}",
			(unsigned long long)es.admit_refused, es.pending,
			(unsigned long long)es.unproven_drop);
	memory(t, &m);
	fprintf(fp,
		",\"memory\":{\"connections\":%u,\"stream_buffered_in\":%zu,"
		"\"stream_buffered_out\":%zu,\"blocks_in_use_bytes\":%zu,"
		"\"blocks_peak_bytes\":%zu,\"blocks_cached_bytes\":%zu,"
		"\"chunks_in_use_bytes\":%zu,\"chunks_peak_bytes\":%zu,"
		"\"chunks_cached_bytes\":%zu}",
		t->nconns, m.rx, m.tx, m.blocks.in_use * m.blocks.block,
		m.blocks.peak_in_use * m.blocks.block, m.blocks.cached * m.blocks.block,
		m.chunks.in_use * m.chunks.block, m.chunks.peak_in_use * m.chunks.block,
		m.chunks.cached * m.chunks.block);
	if (t->be && t->be->status_json)
		t->be->status_json(t->be->arg, fp);
	if (!t->psk)
		fprintf(fp, ",\"kcpx_protocol\":null");
	else if (cfg->role == KCPX_ROLE_SERVER)
		fprintf(fp,
			",\"kcpx_protocol\":{\"replaced\":%llu,\"handshakes_over_rate\":%llu,"
			"\"roamed\":%llu,\"resets_sent\":%llu,\"resets_over_rate\":%llu}",
			(unsigned long long)es.replaced, (unsigned long long)es.hs_limited,
			(unsigned long long)es.roamed, (unsigned long long)es.resets_sent,
			(unsigned long long)es.reset_limited);
	else
		fprintf(fp,
			",\"kcpx_protocol\":{\"kcptun_mode\":%s,\"no_answer_for_s\":%u,"
			"\"reprobe_s\":%d,\"late_native\":%llu,\"resets_taken\":%llu}",
			es.kcptun_mode ? "true" : "false", es.kcptun_mode ? es.kcptun_for : 0,
			cfg->reprobe, (unsigned long long)es.late_native,
			(unsigned long long)es.resets_taken);
	fprintf(fp, "}\n");
}

enum ctl_what {
	CTL_TEXT,  /* `kcpx status` */
	CTL_JSON,  /* `kcpx status --json` */
	CTL_STATS, /* `kcpx stats -p PID` */
};

/*
 * `kcpx stats -p PID`: every counter of the tunnel as "MAP FIELD VALUE" lines under a
 * "kcpx-stats 1" line (which tells the reader the daemon knew the request): kcp-go's SNMP
 * set (map "snmp", summed over the threads), the tunnel's own drops and refusals (map
 * "tunnel"), then the backend's (--tcp: the maps `kcpx stats IFACE` reads under `kcpx up`,
 * same names), so a tunnel that pins nothing can be watched the same way.
 */
static void write_stats(struct tunnel *self, FILE *fp)
{
	struct kcpx_snmp snmp;
	struct memory m;
	struct totals a;

	kcpx_shard_snmp(self, &snmp);
	totals(self, &a);
	memory(self, &m);
	fprintf(fp, "kcpx-stats 1\n");
#define STAT_SNMP(name) fprintf(fp, "snmp %s %llu\n", #name, (unsigned long long)snmp.name);
	KCPX_SNMP_FIELDS(STAT_SNMP)
#undef STAT_SNMP
#define STAT(name, v) fprintf(fp, "tunnel %s %llu\n", name, (unsigned long long)(v))
	STAT("sessions", a.sessions);
	STAT("connections", m.nconns);
	STAT("tx_dropped", a.tx_dropped);
	STAT("rx_dropped", a.rx_dropped);
	STAT("rx_truncated", a.es.rx_truncated);
	STAT("unknown_peer", a.es.unknown_peer);
	STAT("streams_refused", a.streams_refused);
	if (self->cfg->role == KCPX_ROLE_SERVER) {
		STAT("admit_refused", a.es.admit_refused);
		STAT("unproven_drop", a.es.unproven_drop);
	}
#undef STAT
	if (self->be && self->be->stats)
		self->be->stats(self->be->arg, fp);
}

/*
 * One `kcpx status` answer: the table is written without blocking the loop. The socket's
 * buffer is sized to the answer (bounded); what does not fit at once is cut, and said so,
 * rather than waited for.
 */
static void ctl_answer(struct tunnel *t, int fd, enum ctl_what what)
{
	static const char cut[] = "... (cut: the table did not fit the socket)\n";
	char *text = NULL;
	size_t len = 0, off = 0;
	FILE *fp;
	int sz, cur;

	fp = open_memstream(&text, &len);
	if (!fp)
		return;
	if (what == CTL_JSON)
		write_status_json(t, fp);
	else if (what == CTL_STATS)
		write_stats(t, fp);
	else
		write_status(t, fp);
	fclose(fp);
	/* the buffer counts skb overhead as well as bytes: room for twice the answer (the
	 * kernel caps it at wmem_max; a longer answer is cut) */
	sz = len < (2u << 20) ? (int)(2 * len + 65536) : 4 << 20;
	if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cur, &(socklen_t){ sizeof(cur) }) < 0 ||
	    cur < sz)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	while (off < len) {
		ssize_t n = send(fd, text + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	/* a cut JSON text would not parse: the reader sees it end early instead */
	if (off < len && what == CTL_TEXT)
		(void)!send(fd, cut, sizeof(cut) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	free(text);
}

/*
 * The request ("json\n" asks for JSON, "stats\n" for the counters; anything else, or none
 * before the peer's shutdown, the text table). 1: answered, 0: not here yet.
 */
static int ctl_serve(struct tunnel *t, int fd)
{
	char req[16];
	ssize_t n = recv(fd, req, sizeof(req), MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n >= 0)
		ctl_answer(t, fd,
			   n >= 4 && !memcmp(req, "json", 4)	? CTL_JSON
			   : n >= 5 && !memcmp(req, "stats", 5) ? CTL_STATS
								: CTL_TEXT);
	return 1;
}

static void ctl_req_free(struct ctl_req *r)
{
	kcpx_loop_del(r->t->loop, &r->w);
	close(r->w.fd);
	r->w.fd = -1;
	r->seq = 0;
}

static void ctl_req_ready(struct kcpx_watch *w, uint32_t events)
{
	struct ctl_req *r = (struct ctl_req *)w;

	(void)events;
	if (ctl_serve(r->t, w->fd))
		ctl_req_free(r);
}

/*
 * A `kcpx status` connection. Its request is usually there already; if not, it waits in
 * one of CTL_PENDING slots (a newcomer takes the oldest one's), so that no client, however
 * slow, holds the loop or more than a few fds.
 */
void kcpx_report_ctl_accept(struct kcpx_watch *w, uint32_t events)
{
	struct tunnel *t = (struct tunnel *)((char *)w - offsetof(struct tunnel, ctlw));
	struct ctl_req *r = &t->ctlreq[0];
	int fd;

	(void)events;
	fd = accept4(w->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if ((errno == EMFILE || errno == ENFILE) && !kcpx_loop_mod(t->loop, w, 0))
			t->ctlw_paused = true;
		return;
	}
	if (ctl_serve(t, fd)) {
		close(fd);
		return;
	}
	for (int i = 0; i < CTL_PENDING; i++) {
		if (!t->ctlreq[i].seq) {
			r = &t->ctlreq[i];
			break;
		}
		if (t->ctlreq[i].seq < r->seq)
			r = &t->ctlreq[i];
	}
	if (r->seq)
		ctl_req_free(r);
	r->t = t;
	r->w.fn = ctl_req_ready;
	if (kcpx_loop_add(t->loop, &r->w, fd, EPOLLIN) < 0) {
		close(fd);
		return;
	}
	r->seq = ++t->ctlreq_seq;
}

void kcpx_report_ctl_close(struct tunnel *t)
{
	for (int i = 0; i < CTL_PENDING; i++)
		if (t->ctlreq[i].seq)
			ctl_req_free(&t->ctlreq[i]);
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

static void metrics_sessions(FILE *fp, struct tunnel *t, size_t f, const char *name, unsigned *k);

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
	struct tunnel *self = arg;
	unsigned streams = 0, n = 0, nthreads = kcpx_shard_count(self), k = 0;
	struct kcpx_snmp snmp;
	struct kcpx_ep_stats es;
	struct totals a;
	struct memory m;

	kcpx_shard_snmp(self, &snmp);
	totals(self, &a);
	es = a.es;
	kcpx_metrics_snmp(fp, &snmp);
	for (unsigned i = 0; i < nthreads; i++) {
		struct tunnel *t = kcpx_shard_get(self, i);

		for (struct kcpx_ep_sess *e = kcpx_ep_first(t->ep); e; e = kcpx_ep_next(e), n++)
			streams += kcpx_conn_count(kcpx_ep_sess_user(e));
		kcpx_shard_put(self, t);
	}
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
	fprintf(fp, "kcpx_tx_dropped_total %llu\n", (unsigned long long)a.tx_dropped);
	kcpx_metrics_family(fp, "kcpx_rx_dropped_total", "counter",
			    "Datagrams the host dropped before the backend read them.");
	fprintf(fp, "kcpx_rx_dropped_total %llu\n", (unsigned long long)a.rx_dropped);
	kcpx_metrics_family(fp, "kcpx_unknown_peer_total", "counter",
			    "Datagrams from peers without a session, dropped.");
	fprintf(fp, "kcpx_unknown_peer_total %llu\n", (unsigned long long)es.unknown_peer);
	/* --threads: each thread's share */
	kcpx_metrics_family(fp, "kcpx_thread_sessions", "gauge", "Sessions open, per thread.");
	for (unsigned i = 0; i < nthreads; i++) {
		struct tunnel *t = kcpx_shard_get(self, i);

		fprintf(fp, "kcpx_thread_sessions{thread=\"%u\"} %u\n", i, kcpx_ep_count(t->ep));
		kcpx_shard_put(self, t);
	}
	kcpx_metrics_family(fp, "kcpx_thread_datagrams_in_total", "counter",
			    "Datagrams received, per thread.");
	for (unsigned i = 0; i < nthreads; i++) {
		struct tunnel *t = kcpx_shard_get(self, i);

		fprintf(fp, "kcpx_thread_datagrams_in_total{thread=\"%u\"} %llu\n", i,
			(unsigned long long)t->snmp.InPkts);
		kcpx_shard_put(self, t);
	}
	kcpx_metrics_family(fp, "kcpx_thread_handoffs_total", "counter",
			    "Datagrams handed to the thread that holds their session.");
	for (unsigned i = 0; i < nthreads; i++) {
		struct tunnel *t = kcpx_shard_get(self, i);

		fprintf(fp, "kcpx_thread_handoffs_total{thread=\"%u\"} %llu\n", i,
			(unsigned long long)t->handed_out);
		kcpx_shard_put(self, t);
	}
	if (self->be && self->be->metrics)
		self->be->metrics(self->be->arg, fp);
	memory(self, &m);
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
		kcpx_metrics_family(fp, fam[f].name, fam[f].type, fam[f].help);
		k = 0;
		for (unsigned i = 0; i < nthreads; i++) {
			struct tunnel *t = kcpx_shard_get(self, i);

			metrics_sessions(fp, t, f, fam[f].name, &k);
			kcpx_shard_put(self, t);
		}
	}
}

/* One family's samples for thread t's sessions, while *k < METRICS_SESSIONS. */
static void metrics_sessions(FILE *fp, struct tunnel *t, size_t f, const char *name, unsigned *k)
{
	for (struct kcpx_ep_sess *e = kcpx_ep_first(t->ep); e && *k < METRICS_SESSIONS;
	     e = kcpx_ep_next(e), (*k)++) {
		struct kcpx_session *ks = kcpx_ep_session(e);
		struct kcpx_session_stats st;
		struct kcpx_kcp_info ki;
		uint64_t v[] = { 0, 0, 0, 0, 0 };

		kcpx_kcp_info(kcpx_session_kcp(ks), &ki);
		kcpx_session_stats(ks, &st);
		metrics_sess_labels(fp, name, e);
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

/*
 * /healthz: healthy while the tunnel runs and, when it has sessions, at least one of them
 * heard from its peer within the keepalive timeout (the window after which smux gives a
 * silent session up). A client with no session yet is healthy: it opens them on demand.
 */
bool kcpx_report_healthy(void *arg, char *why, size_t size)
{
	struct tunnel *self = arg;
	uint32_t now = kcpx_clock_ms(), window = self->keepalive_timeout_ms;
	unsigned n = 0, alive = 0;

	if (!window)
		window = 30000;
	if (self->stopping) {
		snprintf(why, size, "stopping");
		return false;
	}
	for (unsigned i = 0; i < kcpx_shard_count(self); i++) {
		struct tunnel *t = kcpx_shard_get(self, i);

		for (struct kcpx_ep_sess *e = kcpx_ep_first(t->ep); e; e = kcpx_ep_next(e), n++) {
			struct kcpx_session_stats st;

			kcpx_session_stats(kcpx_ep_session(e), &st);
			if (st.pkts_in && now - st.last_rx < window)
				alive++;
		}
		kcpx_shard_put(self, t);
	}
	if (n && !alive) {
		snprintf(why, size, "no session heard from its peer in %u s (%u sessions)",
			 window / 1000, n);
		return false;
	}
	return true;
}
