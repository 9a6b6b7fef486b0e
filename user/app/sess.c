// SPDX-License-Identifier: MIT
/*
 * The app's half of a session: the endpoint's callbacks (core/endpoint.h) into paths,
 * streams, timers and the log, and the client's choice of a session for a new stream
 * (with the lookup of --remoteaddr for each new session).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "app/log.h"
#include "app/tunnel_int.h"
#include "core/session.h"
#include "io/clock.h"
#include "io/resolve.h"

void kcpx_tun_sess_mark(struct sess *s)
{
	if (s->dirty || s->closing)
		return;
	s->dirty = true;
	s->dnext = s->t->dirty;
	s->t->dirty = s;
}

static void sess_timer(struct kcpx_timer *tm, uint32_t now)
{
	struct sess *s = (struct sess *)((char *)tm - offsetof(struct sess, timer));

	if (kcpx_loop_fine(s->t->loop))
		kcpx_session_set_clock_us(s->ks, kcpx_loop_now_us(s->t->loop));
	kcpx_ep_tick(s->es, now);
}

static void ep_xmit(void *user, void *path, const struct kcpx_addr *to, const struct kcpx_ip *from,
		    const uint8_t *d, size_t n)
{
	kcpx_path_xmit(path, to, from, d, n);
}

/* A session on path g: the app's half, holding a reference to g. */
static void *ep_opened(void *user, struct kcpx_ep_sess *es, void *path)
{
	struct tunnel *t = user;
	struct sess *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->t = t;
	s->es = es;
	s->opened = kcpx_clock_ms();
	s->ks = kcpx_ep_session(es);
	s->dg = path;
	s->dg->refs++;
	kcpx_timer_init(&s->timer, sess_timer);
	if (t->cfg->role == KCPX_ROLE_SERVER) {
		s->peer_at = *kcpx_ep_sess_peer(es);
		s->in_peer_dir = kcpx_shard_peer_set(t, &s->peer_at);
	}
	return s;
}

static void ep_closed(void *user, void *sess_user)
{
	struct sess *s = sess_user;

	/* Flush what the engine owes the peer before the streams go. */
	kcpx_conn_close_all(s);
	s->closing = true;
	/* a replaced session's address stays claimed for its successor, which opens next
	 * (or the endpoint gives the claim back: kcpx_shard_peer_release) */
	if (s->in_peer_dir && !(kcpx_ep_sess_replaced(s->es) &&
				kcpx_addr_equal(&s->peer_at, kcpx_ep_sess_peer(s->es))))
		kcpx_shard_peer_del(s->t, &s->peer_at);
	s->in_peer_dir = false;
	kcpx_timer_cancel(s->t->loop, &s->timer);
}

static void ep_release(void *user, void *sess_user)
{
	struct tunnel *t = user;
	struct sess *s = sess_user;

	kcpx_path_flush(s->dg);
	if (s->dg->owner == s)
		s->dg->owner = NULL;
	kcpx_path_put(t, s->dg);
	free(s->streams);
	free(s);
}

static void ep_wake(void *user, void *sess_user)
{
	kcpx_tun_sess_mark(sess_user);
}

static int ep_native_up(void *user, uint32_t sid, const struct kcpx_native_sess *v)
{
	struct tunnel *t = user;
	int err = t->be && t->be->native_up ? t->be->native_up(t->be->arg, sid, v) : 0;

	if (!err && t->cfg->role == KCPX_ROLE_SERVER)
		kcpx_shard_dir_set(t, sid);
	return err;
}

static void ep_native_down(void *user, uint32_t sid)
{
	struct tunnel *t = user;

	if (t->cfg->role == KCPX_ROLE_SERVER)
		kcpx_shard_dir_del(t, sid);
	if (t->be && t->be->native_down)
		t->be->native_down(t->be->arg, sid);
}

static void ep_random(void *user, void *buf, size_t n)
{
	randombytes_buf(buf, n);
}

static void ep_log(void *user, int level, const char *msg)
{
	kcpx_log((enum kcpx_log_level)level, "%s", msg);
}

const struct kcpx_ep_ops kcpx_tun_ep_ops = {
	.xmit = ep_xmit,
	.opened = ep_opened,
	.closed = ep_closed,
	.release = ep_release,
	.wake = ep_wake,
	.native_up = ep_native_up,
	.native_down = ep_native_down,
	.accept = kcpx_conn_accept,
	.readable = kcpx_conn_readable,
	.writable = kcpx_conn_writable,
	.refused = kcpx_conn_refused,
	.random = ep_random,
	.log = ep_log,
	.foreign = kcpx_shard_foreign,
	.foreign_peer = kcpx_shard_foreign_peer,
	.sid_claim = kcpx_shard_sid_claim,
	.sid_release = kcpx_shard_sid_release,
	.peer_claim = kcpx_shard_peer_claim,
	.peer_release = kcpx_shard_peer_release,
};

/* After a failed lookup of --remoteaddr, new sessions use the last address this long. */
#define RESOLVE_RETRY_MS 5000
/* How long opening a session waits for the lookup it starts (io/resolve.h): a lookup
 * that takes longer goes on in the background, the last address serves meanwhile. */
#define RESOLVE_WAIT_MS 100

/*
 * Client: the server's address for a new session. A name is looked up again for each
 * session (dynamic DNS), without blocking the loop for more than RESOLVE_WAIT_MS: while a
 * lookup runs, or after one failed (retried RESOLVE_RETRY_MS later), the last address
 * serves. Under `kcpx up` too: each session's port is registered in XDP with its own
 * server (kcpx_lports), so sessions to an old and a new address coexist.
 */
static int client_remote(struct tunnel *t, uint32_t now)
{
	char abuf[KCPX_ADDRSTRLEN], bbuf[KCPX_ADDRSTRLEN];
	bool have = t->remote.sa.sa_family != AF_UNSPEC;
	struct kcpx_addr a;
	int r;

	if (!t->resolver)
		return have ? 0 : -ENOENT;
	if (t->resolve_failed && now - t->resolve_at < RESOLVE_RETRY_MS)
		return have ? 0 : -ENOENT;
	r = kcpx_resolver_get(t->resolver, RESOLVE_WAIT_MS, &a);
	if (r == 0) /* still running: its answer serves a later session */
		return have ? 0 : -EAGAIN;
	t->resolve_at = now;
	t->resolve_failed = r < 0;
	if (r < 0) {
		pr_warn_ratelimited("remoteaddr '%s': %s%s", t->cfg->remoteaddr, strerror(-r),
				    have ? ": the last address serves" : ": no session");
		return have ? 0 : r;
	}
	if (have && !kcpx_addr_equal(&a, &t->remote))
		pr_info("remoteaddr '%s' is %s now (was %s)", t->cfg->remoteaddr,
			kcpx_addr_str(&a, abuf, sizeof(abuf)),
			kcpx_addr_str(&t->remote, bbuf, sizeof(bbuf)));
	t->remote = a; /* its port is the range's lowest, as --remoteaddr's lookup at start */
	return 0;
}

/* Client: the session a new stream goes on; opens one (and its socket) when needed. */
struct sess *kcpx_tun_client_session(struct tunnel *t)
{
	uint32_t now = kcpx_clock_ms();
	struct kcpx_ep_sess *es;
	struct sess *s;
	unsigned slot;
	struct kcpx_addr to;
	struct dg *g;
	unsigned lo;

	es = kcpx_ep_pick(t->ep, now, &slot);
	if (es)
		return kcpx_ep_sess_user(es);
	if (client_remote(t, now))
		return NULL;
	to = t->remote;
	lo = kcpx_addr_port(&t->remote);
	/* kcptun's port range: each new session picks one port at random, keeps it */
	if (t->remote_hi > lo)
		kcpx_addr_set_port(&to, lo + randombytes_uniform(t->remote_hi - lo + 1));
	/* the session's place among all threads' (slot-major): its local port spreads a
	 * client's sessions over the threads of a server that steers by source port */
	t->port_hint = 1 + slot * kcpx_shard_count(t) + t->shard;
	g = kcpx_path_get(t, NULL, &to);
	if (!g)
		return NULL;
	es = kcpx_ep_connect(t->ep, slot, g, &to, now);
	kcpx_path_put(t, g); /* the session holds its own reference */
	if (!es)
		return NULL;
	s = kcpx_ep_sess_user(es);
	if (g->refs == 1)
		g->owner = s;
	return s;
}

/* A new session's settings: the config's KCP, FEC, cc and smux flags, this engine's
 * crypt, chunk and block pools. */
void kcpx_tun_session_config(const struct tunnel *t, struct kcpx_session_config *sc)
{
	const struct kcpx_config *cfg = t->cfg;

	*sc = (struct kcpx_session_config){
		.mtu = (unsigned)cfg->mtu,
		.sndwnd = (unsigned)cfg->sndwnd,
		.rcvwnd = (unsigned)cfg->rcvwnd,
		.maxwnd = cfg->maxwnd ? cfg->maxwnd : -1,
		.nodelay = cfg->nodelay,
		.interval = cfg->interval,
		.resend = cfg->resend,
		.nc = cfg->nc,
		.ratelimit = (uint64_t)cfg->ratelimit,
		.acknodelay = cfg->acknodelay,
		.tlp = cfg->tlp,
		.quickack = cfg->quickack,
		.rto_hygiene = cfg->rtohygiene,
		.fec_flush_ms = (unsigned)cfg->fecflush,
		.dup_small = (unsigned)cfg->dupsmall,
		.dup_gap_ms = (unsigned)cfg->dupgap,
		.datashard = cfg->datashard,
		.parityshard = cfg->parityshard,
		.comp = !cfg->nocomp,
		.fec_fixed = !strcmp(cfg->fecparity, "fixed"),
		.fec_loss = !strcmp(cfg->fecparity, "loss"),
		.crypt = t->crypt,
		.chunks = t->chunks,
		.smux = {
			.version = cfg->smuxver,
			.client = cfg->role == KCPX_ROLE_CLIENT,
			.max_frame = 32768,
			.max_recv_buffer = (uint32_t)cfg->smuxbuf,
			.max_stream_buffer = (uint32_t)cfg->streambuf,
			.pool = t->blocks,
			.max_streams = (uint32_t)cfg->sessstreams,
		},
	};
	/* config_finish checked the name */
	kcpx_cc_algo_parse(cfg->cc, &sc->cc);
	kcpx_tun_keepalive(cfg, &sc->smux);
}
