// SPDX-License-Identifier: MIT
#include "app/tunnel.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sodium.h>
#include <time.h>
#include <unistd.h>

#include "app/log.h"
#include "app/metrics.h"
#include "app/service.h"
#include "app/snmp.h"
#include "core/crypt.h"
#include "core/kcp.h"
#include "core/native.h"
#include "core/session.h"
#include "core/smux.h"
#include "core/util.h"
#include "io/addr.h"
#include "io/clock.h"
#include "io/ctl.h"
#include "io/loop.h"
#include "io/priv.h"
#include "io/tcp.h"
#include "io/udp.h"

#define CONN_BUF   65536
#define RX_BATCH   64
#define TX_BATCH   64
#define RX_BUDGET  1024 /* datagrams per readiness event before other work gets a turn */
#define SESS_HASH  1024
#define HSRL_SLOTS 4096 /* server --hsrate: token buckets, one per source address hash */

struct tunnel;
struct sess;

/*
 * One source address's handshake token bucket (--hsrate): tokens in thousandths of a
 * handshake, refilled at hsrate per second up to hsrate (the burst). The table is indexed
 * by a hash of the address and an address that finds its slot taken by another starts
 * over with a full bucket: an attacker with many addresses can only make the limit looser
 * for others, never stricter, and the table stays bounded.
 */
struct hs_bucket {
	uint8_t addr[16]; /* IPv6, or IPv4 in the first 4 bytes and zeros */
	uint32_t last;	  /* ms of the last refill */
	uint32_t tokens;
	bool used;
};

/* A datagram backend as the tunnel watches it, with its batched TX queue. */
struct dg {
	struct tunnel *t;
	struct kcpx_dgram *d;
	struct kcpx_watch w;
	int refs;
	struct sess *owner; /* client over UDP: the one session on this socket */
	struct kcpx_pkt tx[TX_BATCH];
	int ntx;
	uint8_t *txmem;
	struct dg *next;
};

/* A TCP connection tied to one smux stream. */
struct conn {
	struct sess *s;
	uint32_t sid;
	struct kcpx_watch w;
	bool connecting; /* server: dial in progress */
	bool closing;
	bool ready;  /* on the tunnel's ready list */
	uint8_t *up; /* TCP -> stream bytes smux has not taken yet */
	size_t up_off, up_len;
	uint8_t *down; /* stream -> TCP bytes the socket has not taken yet */
	size_t down_off, down_len;
	bool stream_eof;
	bool tcp_eof;	    /* TCP peer finished: close once `up` is all in smux */
	struct conn *hnext; /* sid hash chain */
	struct conn *rnext; /* ready list */
	struct conn *gnext; /* garbage list */
};

struct sess {
	struct tunnel *t;
	struct kcpx_session *ks;
	struct dg *dg;
	struct kcpx_addr peer;
	struct kcpx_timer timer;
	uint32_t conv;
	uint32_t created;
	bool dirty;
	bool closing;
	bool expired; /* client --autoexpire: takes no new streams */
	/* native protocol (docs/PROTOCOL.md): conv is the session id */
	bool native;
	/* client: handshake under way, or (fell_back) kept a while to check a late RESP */
	struct kcpx_native_hs *hs;
	uint8_t hs_pkt[KCPX_NATIVE_HS_LEN]; /* client: our INIT; server: our RESP */
	uint64_t hs_ctr;		    /* server: counter of the INIT it answered */
	int hs_tries;
	bool fell_back; /* client: no RESP in time, the session speaks kcptun's format */
	bool confirmed; /* native: an authenticated DATA packet came from the peer */
	bool be_native; /* the backend was told of this session (native_up): tell it the end */
	struct conn **streams;
	unsigned nstreams, cap;
	struct sess *hnext; /* server address hash */
	struct sess *dnext; /* dirty list */
	struct sess *next;  /* all sessions */
	struct sess *gnext; /* garbage list */
};

struct tunnel {
	const struct kcpx_config *cfg;
	const struct kcpx_tunnel_backend *be;
	struct kcpx_loop *loop;
	struct kcpx_crypt *crypt;
	struct kcpx_snmp snmp;
	struct kcpx_session_config scfg;
	struct kcpx_addr laddr; /* client: TCP listen; server: UDP listen */
	struct kcpx_addr remote;
	struct kcpx_target target;
	struct kcpx_watch lw; /* client TCP listener */
	struct kcpx_watch sigw;
	struct kcpx_watch ctlw; /* /run/kcpx/<pid>.sock for `kcpx status` */
	char ctlpath[108];
	struct kcpx_timer sectimer;
	uint32_t ticks;
	struct dg *dgs;
	struct sess *sessions;
	struct sess *hash[SESS_HASH];
	struct sess **slots; /* client: --conn slots */
	unsigned rr;
	struct sess *dirty;
	struct conn *ready;
	struct conn *garbage_c;
	struct sess *garbage_s;
	uint8_t *rxmem;
	struct kcpx_pkt rx[RX_BATCH];
	uint64_t tx_dropped, rx_truncated, unknown_peer;
	struct kcpx_native_psk *psk; /* NULL with --proto kcptun */
	bool client_native;	     /* client: new sessions may try the native handshake */
	bool native_only;	     /* --proto kcpx: kcptun-format datagrams are dropped */
	struct kcpx_native_stats hs_stats;
	/*
	 * client, --proto auto: a probe went unanswered at tick kcptun_since (seconds: no wrap
	 * in practice), so new sessions speak kcptun's format until --reprobe seconds later.
	 * hs_tries_auto: how many 100 ms polls a probe waits (longer once a late RESP showed
	 * the round trip).
	 */
	bool kcptun_mode;
	uint32_t kcptun_since;
	int hs_tries_auto;
	uint64_t late_native;	/* client: kcpx packets for a session that fell back, dropped */
	uint64_t replaced;	/* server: kcpx sessions replaced when their client fell back */
	struct hs_bucket *hsrl; /* server with --hsrate > 0 */
	uint64_t hs_limited;	/* server: INITs with a good tag refused by --hsrate */
	struct kcpx_metrics *metrics; /* --metrics */
	bool stopping;
};

static void sess_close(struct sess *s, const char *why);
static void conn_close(struct conn *c);
static void sess_mark(struct sess *s);
static struct sess *sess_new(struct tunnel *t, struct dg *g, const struct kcpx_addr *peer,
			     uint32_t conv, bool native);

/* ---- session table ---------------------------------------------------------------- */

static unsigned addr_hash(const struct kcpx_addr *a)
{
	uint32_t h = 2166136261u;
	const uint8_t *p;
	size_t n;

	if (a->sa.sa_family == AF_INET6) {
		p = (const uint8_t *)&a->in6.sin6_addr;
		n = 16;
	} else {
		p = (const uint8_t *)&a->in.sin_addr;
		n = 4;
	}
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	h = (h ^ kcpx_addr_port(a)) * 16777619u;
	return h % SESS_HASH;
}

static struct sess *sess_lookup(struct tunnel *t, const struct kcpx_addr *a)
{
	for (struct sess *s = t->hash[addr_hash(a)]; s; s = s->hnext)
		if (kcpx_addr_equal(&s->peer, a))
			return s;
	return NULL;
}

static struct conn **stream_slot(struct sess *s, uint32_t sid)
{
	struct conn **pp;

	if (!s->cap)
		return NULL;
	for (pp = &s->streams[sid % s->cap]; *pp; pp = &(*pp)->hnext)
		if ((*pp)->sid == sid)
			return pp;
	return pp;
}

static struct conn *stream_find(struct sess *s, uint32_t sid)
{
	struct conn **pp = stream_slot(s, sid);

	return pp ? *pp : NULL;
}

static int stream_add(struct sess *s, struct conn *c)
{
	if (!s->cap) {
		s->cap = 256;
		s->streams = calloc(s->cap, sizeof(*s->streams));
		if (!s->streams) {
			s->cap = 0;
			return -ENOMEM;
		}
	}
	c->hnext = s->streams[c->sid % s->cap];
	s->streams[c->sid % s->cap] = c;
	s->nstreams++;
	return 0;
}

static void stream_del(struct sess *s, struct conn *c)
{
	struct conn **pp = stream_slot(s, c->sid);

	if (pp && *pp == c) {
		*pp = c->hnext;
		s->nstreams--;
	}
}

/* ---- datagrams ------------------------------------------------------------------- */

static void dg_flush(struct dg *g)
{
	int done = 0;

	while (done < g->ntx) {
		int n = g->d->ops->send(g->d, g->tx + done, g->ntx - done);
		if (n <= 0) {
			/* Full socket or ring: the datagrams are lost as on a congested link,
			 * and KCP retransmits them. Counted, rate-limited in the log. */
			g->t->tx_dropped += (uint64_t)(g->ntx - done);
			pr_warn_ratelimited("%s: dropped %d outgoing datagrams (%s)", g->d->name,
					    g->ntx - done, n < 0 ? strerror(-n) : "backend full");
			break;
		}
		done += n;
	}
	g->ntx = 0;
	if (g->d->ops->flush)
		g->d->ops->flush(g->d);
}

static void sess_xmit(void *user, const uint8_t *dgram, size_t len)
{
	struct sess *s = user;
	struct dg *g = s->dg;
	struct kcpx_pkt *p;

	if (len > KCPX_PKT_MAX)
		return;
	if (g->ntx == TX_BATCH)
		dg_flush(g);
	p = &g->tx[g->ntx++];
	memcpy(p->buf, dgram, len);
	p->len = (uint32_t)len;
	p->addr = s->peer;
}

/*
 * A native session's keys exist: hand its XDP map entry (receive tag key, FEC shape) to
 * the backend. Returns 0, or -errno when the backend could not take it.
 */
static int sess_native_up(struct sess *s, struct kcpx_native *n)
{
	const struct kcpx_tunnel_backend *be = s->t->be;
	const struct kcpx_config *cfg = s->t->cfg;
	struct kcpx_native_sess v;
	int err;

	if (!be || !be->native_up)
		return 0;
	kcpx_native_bpf_sess(n, &v);
	if (cfg->datashard > 0 && cfg->parityshard > 0 &&
	    cfg->datashard + cfg->parityshard <= KCPX_FEC_TRACK_MAX) {
		v.fec_ds = (uint8_t)cfg->datashard;
		v.fec_ps = (uint8_t)cfg->parityshard;
	}
	err = be->native_up(be->arg, s->conv, &v);
	sodium_memzero(&v, sizeof(v));
	if (err) {
		pr_warn("session %08x: XDP session entry: %s", s->conv, strerror(-err));
		return err;
	}
	s->be_native = true;
	return 0;
}

/* Client handshake resends: every KCPX_SESSION_HS_POLL ms; auto gives up sooner. */
#define HS_TRIES_AUTO 10
#define HS_TRIES_KCPX 50
/* After a fallback the handshake state is kept this long to recognise a late RESP. */
#define HS_LATE_KEEP_MS (HS_TRIES_KCPX * KCPX_SESSION_HS_POLL * 2)

static void hs_client_finish(struct sess *s, struct kcpx_pkt *p)
{
	struct kcpx_native *n;
	int err = kcpx_native_hs_finish(s->hs, p->buf, p->len, &n);

	if (err) {
		s->t->snmp.InErrs++;
		return;
	}
	kcpx_session_set_native(s->ks, n);
	kcpx_native_hs_free(s->hs);
	s->hs = NULL;
	s->t->kcptun_mode = false; /* a kcpx server answers: later sessions use it too */
	pr_info("session %08x: kcpx protocol, %s", s->conv,
		kcpx_native_cipher(n) == KCPX_NATIVE_AESGCM ? "aes-256-gcm" : "xchacha20-poly1305");
	if (sess_native_up(s, n)) {
		sess_close(s, "the XDP program cannot take the session");
		return;
	}
	sess_mark(s);
}

/* The INIT's SipHash tag under the PSK's handshake tag key (no AEAD, no X25519). */
static bool hs_tag_ok(struct tunnel *t, const uint8_t *pkt)
{
	struct kcpx_native_cfg nc;
	uint8_t want[8];
	uint64_t tag;

	kcpx_native_psk_bpf_cfg(t->psk, true, &nc); /* the one way out for hs_tag */
	tag = kcpx_native_tag((const uint8_t *)nc.hs_tag_key, pkt);
	sodium_memzero(&nc, sizeof(nc));
	kcpx_put_le32(want, (uint32_t)tag);
	kcpx_put_le32(want + 4, (uint32_t)(tag >> 32));
	return sodium_memcmp(want, pkt + 16, 8) == 0;
}

/* --hsrate: may this source start another handshake now? Spends a token if so. */
static bool hs_rate_ok(struct tunnel *t, const struct kcpx_addr *a, uint32_t now)
{
	const uint32_t cost = 1000, full = (uint32_t)t->cfg->hsrate * cost;
	uint8_t key[16] = { 0 };
	struct hs_bucket *b;
	uint32_t h = 2166136261u, dt;

	if (a->sa.sa_family == AF_INET6)
		memcpy(key, &a->in6.sin6_addr, 16);
	else
		memcpy(key, &a->in.sin_addr, 4);
	for (size_t i = 0; i < sizeof(key); i++)
		h = (h ^ key[i]) * 16777619u;
	b = &t->hsrl[h % HSRL_SLOTS];
	if (!b->used || memcmp(b->addr, key, sizeof(key))) {
		memcpy(b->addr, key, sizeof(key));
		b->used = true;
		b->last = now;
		b->tokens = full - cost; /* this handshake spends one */
		return true;
	}
	dt = now - b->last;
	if (dt > 1000) /* a bucket is full after a second: no overflow below */
		dt = 1000;
	b->last = now;
	b->tokens += dt * (uint32_t)t->cfg->hsrate;
	if (b->tokens > full)
		b->tokens = full;
	if (b->tokens < cost)
		return false;
	b->tokens -= cost;
	return true;
}

/*
 * 0, or -errno when the INIT is refused (then nothing was created): -EBUSY when its tag
 * was good but its source is over --hsrate (the datagram is certainly native: dropped).
 */
static int hs_server_accept(struct tunnel *t, struct dg *g, struct kcpx_pkt *p,
			    const struct kcpx_native_info *ni, uint32_t now)
{
	uint8_t rnd[KCPX_NATIVE_HS_RAND], resp[KCPX_NATIVE_HS_LEN];
	char buf[KCPX_ADDRSTRLEN];
	struct kcpx_native *n;
	struct sess *s;
	int err;

	/*
	 * As the XDP checks do it (docs/PROTOCOL.md §6): only an INIT with a good tag spends
	 * its source's tokens, so forged INITs with a client's address cannot lock it out;
	 * replays of real INITs can only spend their own source's. Before the sid check and
	 * the X25519 work, which is what the limit saves.
	 */
	if (t->hsrl) {
		if (p->len != KCPX_NATIVE_HS_LEN || !hs_tag_ok(t, p->buf))
			return -EBADMSG;
		if (!hs_rate_ok(t, &p->addr, now)) {
			t->hs_limited++;
			pr_warn_ratelimited("kcpx handshakes from %s over --hsrate %d/s: dropped",
					    kcpx_addr_str(&p->addr, buf, sizeof(buf)),
					    t->cfg->hsrate);
			return -EBUSY;
		}
	}
	/* sids key the XDP session map: one live session per sid (a 2^-32 clash per pair) */
	for (s = t->sessions; s; s = s->next)
		if (s->native && s->conv == ni->sid)
			return -EEXIST;
	randombytes_buf(rnd, sizeof(rnd));
	err = kcpx_native_accept(t->psk, p->buf, p->len, rnd, kcpx_native_aes_available(), resp, &n,
				 &t->hs_stats);
	sodium_memzero(rnd, sizeof(rnd));
	if (err)
		return err;
	s = sess_new(t, g, &p->addr, ni->sid, true);
	if (!s) {
		kcpx_native_free(n);
		return 0; /* taken, and lost as if out of memory */
	}
	kcpx_session_set_native(s->ks, n);
	if (sess_native_up(s, n)) {
		sess_close(s, "the XDP program cannot take the session");
		return 0; /* no RESP: the client tries again with a new sid */
	}
	s->hs_ctr = ni->ctr;
	memcpy(s->hs_pkt, resp, sizeof(resp));
	sess_xmit(s, s->hs_pkt, sizeof(s->hs_pkt));
	return 0;
}

/*
 * Client, --proto auto: a native packet for a session that gave up on its handshake and
 * speaks kcptun's format now. The server answered after all (its RESP, or its session's
 * first DATA): the session stays kcptun, because the server replaces its kcpx session
 * when our kcptun-format datagrams arrive (dg_input), and switching back here could race
 * with that. A RESP that opens under our kept handshake state proves a kcpx server and
 * shows the round trip, so later sessions probe again at once and wait longer for it.
 */
static void late_native(struct tunnel *t, struct sess *s, struct kcpx_pkt *p,
			const struct kcpx_native_info *ni, uint32_t now)
{
	struct kcpx_native *n;
	uint32_t late = now - s->created;
	int tries;

	t->late_native++;
	if (ni->type != KCPX_NT_RESP || !s->hs || kcpx_native_hs_finish(s->hs, p->buf, p->len, &n))
		return;
	kcpx_native_free(n); /* the keys are not used: the session keeps kcptun's format */
	kcpx_native_hs_free(s->hs);
	s->hs = NULL;
	tries = (int)(2 * late / KCPX_SESSION_HS_POLL) + 1;
	if (tries > HS_TRIES_KCPX)
		tries = HS_TRIES_KCPX;
	if (tries > t->hs_tries_auto)
		t->hs_tries_auto = tries;
	t->kcptun_mode = false;
	pr_info("session %08x: late kcpx answer from the server (%u ms after the first INIT): "
		"the session stays kcptun; new sessions try kcpx for up to %d ms",
		s->conv, late, t->hs_tries_auto * KCPX_SESSION_HS_POLL);
}

/*
 * A datagram with a native header. Returns false to let the kcptun path try it: it came to
 * or for a kcptun-format session, or (server, --proto auto) it was no valid INIT and may be
 * a kcptun datagram whose first byte happens to look like our version.
 */
static bool native_input(struct tunnel *t, struct dg *g, struct kcpx_pkt *p,
			 const struct kcpx_native_info *ni, uint32_t now)
{
	struct sess *s = g->owner ? g->owner : sess_lookup(t, &p->addr);
	uint8_t *body;
	size_t blen;

	if (s && !s->native) {
		/* a kcptun datagram naming our conv here: 2^-40, and KCP resends it */
		if (s->fell_back && ni->sid == s->conv) {
			late_native(t, s, p, ni, now);
			return true;
		}
		return false;
	}
	if (!s) {
		if (t->cfg->role == KCPX_ROLE_SERVER && ni->type == KCPX_NT_INIT) {
			int err = hs_server_accept(t, g, p, ni, now);

			if (!err || err == -EBUSY)
				return true;
		}
		return false; /* kcptun's format, or dropped below with --proto kcpx */
	}
	if (s->closing)
		return true;
	if (ni->type == KCPX_NT_RESP && s->hs) {
		hs_client_finish(s, p);
		return true;
	}
	if (ni->type == KCPX_NT_INIT && t->cfg->role == KCPX_ROLE_SERVER) {
		/* our RESP was lost: answer the same INIT again; any other INIT is ignored */
		if (ni->sid == s->conv && ni->ctr == s->hs_ctr && p->len == KCPX_NATIVE_HS_LEN)
			sess_xmit(s, s->hs_pkt, sizeof(s->hs_pkt));
		return true;
	}
	if (ni->type != KCPX_NT_DATA || ni->sid != s->conv) {
		t->snmp.InErrs++;
		return true;
	}
	if (kcpx_session_open_native(s->ks, p->buf, p->len, &body, &blen))
		return true;
	s->confirmed = true;
	kcpx_session_input(s->ks, body, blen, now);
	sess_mark(s);
	return true;
}

static void dg_input(struct tunnel *t, struct dg *g, struct kcpx_pkt *p, uint32_t now)
{
	char abuf[KCPX_ADDRSTRLEN];
	struct kcpx_native_info ni;
	uint8_t *body;
	size_t blen;
	uint32_t conv;
	struct sess *s;

	if (p->len > KCPX_PKT_MAX) {
		t->rx_truncated++;
		t->snmp.InErrs++;
		return;
	}
	if (t->psk && !kcpx_native_peek(p->buf, p->len, &ni) && native_input(t, g, p, &ni, now))
		return;
	if (t->native_only) {
		t->snmp.InErrs++; /* not the kcpx protocol */
		return;
	}
	if (kcpx_session_open(t->crypt, &t->snmp, p->buf, p->len, &body, &blen, &conv))
		return;
	if (g->owner) {
		s = g->owner;
	} else {
		s = sess_lookup(t, &p->addr);
		if (s && s->native && !s->confirmed && conv == s->conv) {
			/*
			 * Our RESP did not reach the client in time: it gave up on the handshake
			 * and speaks kcptun's format under the same conv (its sid). Nothing came
			 * through the kcpx session yet, so nothing is lost by replacing it. Once
			 * an authenticated DATA packet arrived this never happens: kcptun's format
			 * (--crypt none above all) can be forged, a kcpx session cannot.
			 */
			t->replaced++;
			pr_info("session %08x (%s): client fell back, replacing the kcpx session",
				s->conv, kcpx_addr_str(&p->addr, abuf, sizeof(abuf)));
			sess_close(s, "replaced by a kcptun-format session");
			s = NULL;
		} else if (s && !s->native && conv && s->conv != conv) {
			/* the peer restarted on the same address with a new conversation */
			sess_close(s, "peer began a new conversation");
			s = NULL;
		}
	}
	if (s && s->native)
		return; /* a native session takes native datagrams only */
	if (!s) {
		if (t->cfg->role != KCPX_ROLE_SERVER || !conv) {
			t->unknown_peer++;
			return;
		}
		s = sess_new(t, g, &p->addr, conv, false);
		if (!s)
			return;
	}
	if (s->closing)
		return;
	kcpx_session_input(s->ks, body, blen, now);
	sess_mark(s);
}

static void dg_readable(struct kcpx_watch *w, uint32_t events)
{
	struct dg *g = (struct dg *)((char *)w - offsetof(struct dg, w));
	struct tunnel *t = g->t;
	uint32_t now = kcpx_clock_ms();
	int total = 0;

	while (total < RX_BUDGET) {
		int n = g->d->ops->recv(g->d, t->rx, RX_BATCH);
		if (n <= 0) {
			if (n < 0)
				pr_warn_ratelimited("%s: receive failed: %s", g->d->name,
						    strerror(-n));
			break;
		}
		for (int i = 0; i < n; i++)
			dg_input(t, g, &t->rx[i], now);
		total += n;
	}
}

static struct dg *dg_get(struct tunnel *t, const struct kcpx_addr *bind,
			 const struct kcpx_addr *peer)
{
	struct kcpx_dgram *d = NULL;
	struct dg *g;
	int err;

	if (t->be && t->be->open) {
		err = t->be->open(t->be->arg, bind, peer, &d);
	} else {
		struct kcpx_udp_config uc = {
			.bind = bind,
			.peer = peer,
			.sockbuf = t->cfg->sockbuf,
			.dscp = t->cfg->dscp,
		};
		err = kcpx_udp_open(&d, &uc);
	}
	if (err) {
		char buf[KCPX_ADDRSTRLEN];
		pr_warn("cannot open a datagram socket %s %s: %s", bind ? "on" : "to",
			kcpx_addr_str(bind ? bind : peer, buf, sizeof(buf)), strerror(-err));
		return NULL;
	}
	for (g = t->dgs; g; g = g->next) {
		if (g->d == d) {
			g->refs++;
			return g;
		}
	}
	g = calloc(1, sizeof(*g));
	if (!g)
		goto err_close;
	g->txmem = malloc((size_t)TX_BATCH * KCPX_PKT_MAX);
	if (!g->txmem)
		goto err_free;
	for (int i = 0; i < TX_BATCH; i++)
		g->tx[i].buf = g->txmem + (size_t)i * KCPX_PKT_MAX;
	g->t = t;
	g->d = d;
	g->refs = 1;
	g->w.fn = dg_readable;
	if (kcpx_loop_add(t->loop, &g->w, d->fd, EPOLLIN) < 0)
		goto err_free;
	for (int i = 0; i < d->nxfd; i++) {
		if (kcpx_loop_add_fd(t->loop, &g->w, d->xfd[i], EPOLLIN) < 0) {
			while (i-- > 0)
				kcpx_loop_del_fd(t->loop, d->xfd[i]);
			kcpx_loop_del(t->loop, &g->w);
			goto err_free;
		}
	}
	g->next = t->dgs;
	t->dgs = g;
	return g;
err_free:
	free(g->txmem);
	free(g);
err_close:
	d->ops->close(d);
	return NULL;
}

static void dg_put(struct tunnel *t, struct dg *g)
{
	struct dg **pp;

	if (--g->refs > 0)
		return;
	dg_flush(g);
	for (pp = &t->dgs; *pp; pp = &(*pp)->next) {
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	}
	kcpx_loop_del(t->loop, &g->w);
	for (int i = 0; i < g->d->nxfd; i++)
		kcpx_loop_del_fd(t->loop, g->d->xfd[i]);
	g->d->ops->close(g->d);
	free(g->txmem);
	free(g);
}

/* ---- connections ------------------------------------------------------------------ */

static void conn_ready(struct conn *c)
{
	struct tunnel *t = c->s->t;

	if (c->ready || c->closing)
		return;
	c->ready = true;
	c->rnext = t->ready;
	t->ready = c;
}

static void conn_events(struct conn *c)
{
	uint32_t ev = 0;

	if (c->closing)
		return;
	if (c->connecting || c->down_off < c->down_len)
		ev |= EPOLLOUT;
	if (!c->connecting && !c->tcp_eof && c->up_off >= c->up_len)
		ev |= EPOLLIN;
	kcpx_loop_mod(c->s->t->loop, &c->w, ev);
}

/* TCP -> stream: push what smux will take. Returns false once the conn closed. */
static bool conn_push_up(struct conn *c)
{
	struct kcpx_smux *mx = kcpx_session_smux(c->s->ks);

	while (c->up_off < c->up_len) {
		ssize_t n = kcpx_smux_write(mx, c->sid, c->up + c->up_off, c->up_len - c->up_off);
		if (n == -EAGAIN)
			break;
		if (n < 0) {
			conn_close(c);
			return false;
		}
		c->up_off += (size_t)n;
	}
	sess_mark(c->s);
	if (c->up_off >= c->up_len) {
		c->up_off = c->up_len = 0;
		if (c->tcp_eof) {
			conn_close(c);
			return false;
		}
	}
	return true;
}

/* stream -> TCP: write pending bytes, then read more from the stream while TCP takes it. */
static void conn_pull_down(struct conn *c)
{
	struct kcpx_smux *mx = kcpx_session_smux(c->s->ks);

	for (;;) {
		ssize_t n;

		while (c->down_off < c->down_len) {
			n = write(c->w.fd, c->down + c->down_off, c->down_len - c->down_off);
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				conn_events(c);
				return;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				conn_close(c);
				return;
			}
			c->down_off += (size_t)n;
		}
		c->down_off = c->down_len = 0;
		if (c->stream_eof) {
			conn_close(c);
			return;
		}
		n = kcpx_smux_read(mx, c->sid, c->down, CONN_BUF);
		if (n == -EAGAIN)
			break;
		if (n <= 0) {
			/* EOF from the peer: kcptun closes both directions */
			c->stream_eof = true;
			continue;
		}
		c->down_len = (size_t)n;
		sess_mark(c->s); /* a read made room in smux: let KCP deliver more */
	}
	conn_events(c);
}

static void conn_io(struct kcpx_watch *w, uint32_t events)
{
	struct conn *c = (struct conn *)((char *)w - offsetof(struct conn, w));

	if (c->closing)
		return;
	if (c->connecting) {
		int err;
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		err = kcpx_tcp_dial_result(c->w.fd);
		if (err) {
			if (!c->s->t->cfg->quiet)
				pr_info("stream %u: dial %s failed: %s", c->sid,
					c->s->t->cfg->target, strerror(-err));
			conn_close(c);
			return;
		}
		c->connecting = false;
		conn_events(c);
		conn_ready(c);
		return;
	}
	if (events & EPOLLOUT)
		conn_ready(c);
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		ssize_t n;

		if (c->up_off < c->up_len)
			return; /* smux has not taken the last read yet */
		if (c->tcp_eof)
			return;
		n = read(c->w.fd, c->up, CONN_BUF);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		if (n == 0) {
			/* the TCP peer is done sending; kcptun then closes both ways */
			c->tcp_eof = true;
			conn_close(c);
			return;
		}
		if (n < 0) {
			conn_close(c);
			return;
		}
		c->up_off = 0;
		c->up_len = (size_t)n;
		if (conn_push_up(c))
			conn_events(c);
	}
}

static struct conn *conn_new(struct sess *s, uint32_t sid, int fd, bool connecting)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->up = malloc(CONN_BUF);
	c->down = malloc(CONN_BUF);
	if (!c->up || !c->down)
		goto err;
	c->s = s;
	c->sid = sid;
	c->connecting = connecting;
	c->w.fn = conn_io;
	if (kcpx_loop_add(s->t->loop, &c->w, fd, connecting ? EPOLLOUT : EPOLLIN) < 0)
		goto err;
	if (stream_add(s, c) < 0) {
		kcpx_loop_del(s->t->loop, &c->w);
		goto err;
	}
	return c;
err:
	free(c->up);
	free(c->down);
	free(c);
	return NULL;
}

static void conn_close(struct conn *c)
{
	struct sess *s = c->s;
	struct tunnel *t = s->t;

	if (c->closing)
		return;
	c->closing = true;
	kcpx_loop_del(t->loop, &c->w);
	close(c->w.fd);
	c->w.fd = -1;
	stream_del(s, c);
	if (s->ks)
		kcpx_smux_close(kcpx_session_smux(s->ks), c->sid);
	if (!t->cfg->quiet)
		pr_info("stream %u closed (conv %08x)", c->sid, s->conv);
	sess_mark(s);
	c->gnext = t->garbage_c;
	t->garbage_c = c;
}

/* ---- sessions --------------------------------------------------------------------- */

static void sess_timer(struct kcpx_timer *tm, uint32_t now)
{
	struct sess *s = (struct sess *)((char *)tm - offsetof(struct sess, timer));

	if (s->closing)
		return;
	if (s->fell_back && s->hs && (int32_t)(now - s->created) >= HS_LATE_KEEP_MS) {
		kcpx_native_hs_free(s->hs); /* no late RESP to wait for any more */
		s->hs = NULL;
	}
	if (s->hs && !s->fell_back &&
	    ++s->hs_tries >= (s->t->native_only ? HS_TRIES_KCPX : s->t->hs_tries_auto)) {
		struct tunnel *t = s->t;

		if (t->native_only) {
			sess_close(s, "no kcpx handshake answer from the server");
			return;
		}
		/*
		 * --proto auto: no kcpx server answered. This session and the next ones for
		 * --reprobe s speak kcptun; the handshake state stays for a while so that a
		 * late RESP can be recognised (late_native).
		 */
		pr_info("session %08x: no kcpx answer, falling back to the kcptun protocol%s",
			s->conv, t->cfg->reprobe ? "" : " for good (--reprobe 0)");
		s->fell_back = true;
		s->native = false;
		t->kcptun_mode = true;
		t->kcptun_since = t->ticks;
		kcpx_session_fallback(s->ks, t->crypt);
	} else if (s->hs && !s->fell_back) {
		sess_xmit(s, s->hs_pkt, sizeof(s->hs_pkt));
	}
	kcpx_session_tick(s->ks, now);
	sess_mark(s);
}

static void sess_mark(struct sess *s)
{
	if (s->dirty || s->closing)
		return;
	s->dirty = true;
	s->dnext = s->t->dirty;
	s->t->dirty = s;
}

static void sess_on_accept(void *user, uint32_t sid)
{
	struct sess *s = user;
	struct tunnel *t = s->t;
	struct kcpx_smux *mx = kcpx_session_smux(s->ks);
	struct conn *c;
	bool pending;
	int fd;

	if (t->cfg->role != KCPX_ROLE_SERVER) {
		kcpx_smux_close(mx, sid); /* a client accepts no streams */
		return;
	}
	fd = kcpx_tcp_dial(&t->target, &pending);
	if (fd < 0) {
		if (!t->cfg->quiet)
			pr_info("stream %u: dial %s failed: %s", sid, t->cfg->target,
				strerror(-fd));
		kcpx_smux_close(mx, sid);
		return;
	}
	c = conn_new(s, sid, fd, pending);
	if (!c) {
		close(fd);
		kcpx_smux_close(mx, sid);
		return;
	}
	if (!t->cfg->quiet)
		pr_info("stream %u opened (conv %08x) -> %s", sid, s->conv, t->cfg->target);
	if (!pending)
		conn_ready(c);
}

static void sess_on_readable(void *user, uint32_t sid)
{
	struct sess *s = user;
	struct conn *c = stream_find(s, sid);

	if (c && !c->connecting)
		conn_ready(c);
}

static void sess_on_writable(void *user, uint32_t sid)
{
	struct sess *s = user;
	struct conn *c = stream_find(s, sid);

	if (c && !c->closing && c->up_off < c->up_len) {
		if (conn_push_up(c))
			conn_events(c);
	}
}

static const struct kcpx_session_ops sess_ops = {
	.xmit = sess_xmit,
	.accept = sess_on_accept,
	.readable = sess_on_readable,
	.writable = sess_on_writable,
};

/* A session on datagram backend g (it takes a reference to g). */
static struct sess *sess_new(struct tunnel *t, struct dg *g, const struct kcpx_addr *peer,
			     uint32_t conv, bool native)
{
	struct kcpx_session_config sc = t->scfg;
	uint32_t now = kcpx_clock_ms();
	char buf[KCPX_ADDRSTRLEN];
	struct sess *s;

	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	sc.conv = conv;
	sc.native = native;
	s->t = t;
	s->conv = conv;
	s->native = native;
	s->peer = *peer;
	s->created = now;
	kcpx_timer_init(&s->timer, sess_timer);
	s->ks = kcpx_session_new(&sc, &sess_ops, s, &t->snmp, now);
	if (!s->ks) {
		pr_warn("cannot create a session (out of memory?)");
		free(s);
		return NULL;
	}
	s->dg = g;
	g->refs++;
	if (t->cfg->role == KCPX_ROLE_SERVER) {
		unsigned h = addr_hash(peer);
		s->hnext = t->hash[h];
		t->hash[h] = s;
		t->snmp.PassiveOpens++;
	} else {
		t->snmp.ActiveOpens++;
	}
	s->next = t->sessions;
	t->sessions = s;
	t->snmp.CurrEstab++;
	if (t->snmp.CurrEstab > t->snmp.MaxConn)
		t->snmp.MaxConn = t->snmp.CurrEstab;
	pr_info("session %08x with %s opened", conv, kcpx_addr_str(peer, buf, sizeof(buf)));
	sess_mark(s);
	return s;
}

static void sess_close(struct sess *s, const char *why)
{
	struct tunnel *t = s->t;
	char buf[KCPX_ADDRSTRLEN];
	struct sess **pp;

	if (s->closing)
		return;
	/* Flush what the engine owes the peer before the streams go. */
	for (unsigned i = 0; i < s->cap; i++)
		while (s->streams[i])
			conn_close(s->streams[i]);
	s->closing = true;
	kcpx_timer_cancel(t->loop, &s->timer);
	if (t->cfg->role == KCPX_ROLE_SERVER) {
		for (pp = &t->hash[addr_hash(&s->peer)]; *pp; pp = &(*pp)->hnext) {
			if (*pp == s) {
				*pp = s->hnext;
				break;
			}
		}
	}
	for (pp = &t->sessions; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	if (t->slots) {
		for (int i = 0; i < t->cfg->conn; i++)
			if (t->slots[i] == s)
				t->slots[i] = NULL;
	}
	t->snmp.CurrEstab--;
	if (s->be_native && t->be->native_down)
		t->be->native_down(t->be->arg, s->conv);
	s->be_native = false;
	pr_info("session %08x with %s closed: %s", s->conv,
		kcpx_addr_str(&s->peer, buf, sizeof(buf)), why);
	s->gnext = t->garbage_s;
	t->garbage_s = s;
}

static void sess_free(struct sess *s)
{
	struct tunnel *t = s->t;

	if (s->dg) {
		dg_flush(s->dg);
		if (s->dg->owner == s)
			s->dg->owner = NULL;
		dg_put(t, s->dg);
	}
	kcpx_session_free(s->ks);
	kcpx_native_hs_free(s->hs);
	free(s->streams);
	free(s);
}

/* ---- client ----------------------------------------------------------------------- */

static struct sess *client_session(struct tunnel *t)
{
	unsigned i = t->rr++ % (unsigned)t->cfg->conn;
	uint32_t now = kcpx_clock_ms();
	struct sess *s = t->slots[i];
	struct dg *g;
	uint32_t conv;
	bool native;

	if (s && t->cfg->autoexpire > 0 &&
	    (int32_t)(now - s->created) >= t->cfg->autoexpire * 1000) {
		/* kcptun: an expired session takes no new streams and is scavenged later */
		s->expired = true;
		t->slots[i] = NULL;
		s = NULL;
	}
	if (s && !s->closing && !kcpx_session_dead(s->ks))
		return s;
	g = dg_get(t, NULL, &t->remote);
	if (!g)
		return NULL;
	do
		randombytes_buf(&conv, sizeof(conv));
	while (!conv);
	native = t->client_native;
	if (native && t->kcptun_mode) {
		/* after a fallback: kcptun until --reprobe s have passed, then probe again */
		uint32_t since = t->ticks - t->kcptun_since;

		native = t->cfg->reprobe > 0 && since >= (uint32_t)t->cfg->reprobe;
		if (native)
			pr_info("session %08x: trying the kcpx protocol again (kcptun for %u s)",
				conv, since);
	}
	s = sess_new(t, g, &t->remote, conv, native);
	dg_put(t, g); /* the session holds its own reference */
	if (!s)
		return NULL;
	if (s->native) {
		uint8_t rnd[KCPX_NATIVE_HS_RAND];

		randombytes_buf(rnd, sizeof(rnd));
		if (kcpx_native_hs_init(&s->hs, t->psk, conv, rnd, kcpx_native_aes_available(),
					s->hs_pkt)) {
			sodium_memzero(rnd, sizeof(rnd));
			sess_close(s, "out of memory");
			return NULL;
		}
		sodium_memzero(rnd, sizeof(rnd));
		sess_xmit(s, s->hs_pkt, sizeof(s->hs_pkt));
	}
	if (g->refs == 1)
		g->owner = s;
	t->slots[i] = s;
	return s;
}

static void client_accept(struct kcpx_watch *w, uint32_t events)
{
	struct tunnel *t = (struct tunnel *)((char *)w - offsetof(struct tunnel, lw));

	for (int k = 0; k < 64; k++) {
		struct sess *s;
		struct conn *c;
		uint32_t sid;
		int fd, err;

		fd = kcpx_tcp_accept(w->fd);
		if (fd < 0) {
			if (fd != -EAGAIN && fd != -EWOULDBLOCK)
				pr_warn_ratelimited("accept: %s", strerror(-fd));
			return;
		}
		s = client_session(t);
		if (!s) {
			close(fd);
			continue;
		}
		err = kcpx_smux_open(kcpx_session_smux(s->ks), &sid);
		if (err) {
			pr_warn("cannot open a stream: %s", strerror(-err));
			close(fd);
			if (err == -EOVERFLOW || err == -EPIPE)
				sess_close(s, "stream ids exhausted or session dead");
			continue;
		}
		c = conn_new(s, sid, fd, false);
		if (!c) {
			close(fd);
			kcpx_smux_close(kcpx_session_smux(s->ks), sid);
			continue;
		}
		if (!t->cfg->quiet)
			pr_info("stream %u opened (conv %08x)", sid, s->conv);
		sess_mark(s);
	}
}

/* ---- loop glue -------------------------------------------------------------------- */

static void tunnel_idle(void *arg)
{
	struct tunnel *t = arg;
	uint32_t now = kcpx_clock_ms();

	/* Readable streams and writable sockets, then sessions, until nothing moves;
	 * bounded so a busy tunnel still returns to epoll. */
	for (int round = 0; round < 8 && (t->ready || t->dirty); round++) {
		while (t->ready) {
			struct conn *c = t->ready;
			t->ready = c->rnext;
			c->ready = false;
			if (!c->closing && !c->connecting)
				conn_pull_down(c);
		}
		while (t->dirty) {
			struct sess *s = t->dirty;
			t->dirty = s->dnext;
			s->dirty = false;
			if (s->closing)
				continue;
			kcpx_session_pump(s->ks, now);
			if (kcpx_session_dead(s->ks)) {
				sess_close(s, kcpx_session_dead_reason(s->ks));
				continue;
			}
			kcpx_timer_set(t->loop, &s->timer, kcpx_session_deadline(s->ks, now));
		}
	}
	for (struct dg *g = t->dgs; g; g = g->next)
		if (g->ntx)
			dg_flush(g);
	while (t->garbage_c) {
		struct conn *c = t->garbage_c;
		t->garbage_c = c->gnext;
		free(c->up);
		free(c->down);
		free(c);
	}
	while (t->garbage_s) {
		struct sess *s = t->garbage_s;
		t->garbage_s = s->gnext;
		sess_free(s);
	}
}

/* systemd's STATUS= line (app/service.c): sessions and streams */
static void tunnel_service_tick(struct tunnel *t)
{
	unsigned streams = 0;

	for (struct sess *s = t->sessions; s; s = s->next)
		streams += s->nstreams;
	kcpx_service_tick((unsigned)t->snmp.CurrEstab, streams);
}

static void tunnel_second(struct kcpx_timer *tm, uint32_t now)
{
	struct tunnel *t = (struct tunnel *)((char *)tm - offsetof(struct tunnel, sectimer));

	t->ticks++;
	if (t->cfg->snmplog[0] && t->ticks % (unsigned)t->cfg->snmpperiod == 0) {
		int err = kcpx_snmp_log(t->cfg->snmplog, &t->snmp, time(NULL));
		if (err)
			pr_warn_ratelimited("snmplog %s: %s", t->cfg->snmplog, strerror(-err));
	}
	/* client: expired sessions live on for scavengettl, then close */
	for (struct sess *s = t->sessions, *n; s; s = n) {
		n = s->next;
		if (s->expired && (t->cfg->scavengettl < 0 ||
				   (int32_t)(now - s->created) >=
					   (t->cfg->autoexpire + t->cfg->scavengettl) * 1000))
			sess_close(s, "expired (autoexpire + scavengettl)");
	}
	if (t->be && t->be->publish)
		t->be->publish(t->be->arg, &t->snmp);
	tunnel_service_tick(t);
	kcpx_timer_set(t->loop, tm, now + 1000);
}

static const char *role_name(const struct tunnel *t)
{
	return t->cfg->role == KCPX_ROLE_SERVER ? "server" : "client";
}

/* kcpx: the native protocol; probe: a client's handshake under way; kcptun: its format */
static const char *sess_proto(const struct sess *s)
{
	if (!s->native)
		return "kcptun";
	return s->hs ? "probe" : "kcpx";
}

/* The status table: one line per session, as `kcpx status` and SIGUSR1 show it. */
static void write_status(struct tunnel *t, FILE *fp)
{
	char buf[KCPX_ADDRSTRLEN];

	fprintf(fp, "kcpx %s pid %d on %s (%s): %u sessions\n", role_name(t), (int)getpid(),
		t->cfg->role == KCPX_ROLE_SERVER ? t->cfg->listen : t->cfg->localaddr,
		t->dgs ? t->dgs->d->name : "-", (unsigned)t->snmp.CurrEstab);
	fprintf(fp, "  %-24s %-8s %-6s %-7s %7s %6s %6s %7s %6s %6s %6s %6s %6s %12s %12s\n",
		"peer", "conv", "proto", "state", "streams", "rtt", "rto", "cwnd", "loss%", "sndq",
		"rwnd", "rcvq", "ooo", "bytes-in", "bytes-out");
	for (struct sess *s = t->sessions; s; s = s->next) {
		struct kcpx_kcp_info ki;
		struct kcpx_session_stats st;
		double loss;

		kcpx_kcp_info(kcpx_session_kcp(s->ks), &ki);
		kcpx_session_stats(s->ks, &st);
		loss = st.pkts_out ? 100.0 * (double)ki.retrans / (double)st.pkts_out : 0.0;
		fprintf(fp,
			"  %-24s %08x %-6s %-7s %7u %6u %6u %7u %6.2f %6u %6u %6u %6u %12llu "
			"%12llu\n",
			kcpx_addr_str(&s->peer, buf, sizeof(buf)), s->conv, sess_proto(s),
			s->expired ? "expired" : "up", s->nstreams, ki.srtt, ki.rto, ki.cwnd, loss,
			ki.waitsnd, ki.rmt_wnd, ki.rcv_queued, ki.rcv_ooo,
			(unsigned long long)st.bytes_in, (unsigned long long)st.bytes_out);
	}
	fprintf(fp, "  tx dropped %llu, rx truncated %llu, from unknown peers %llu\n",
		(unsigned long long)t->tx_dropped, (unsigned long long)t->rx_truncated,
		(unsigned long long)t->unknown_peer);
	if (!t->psk)
		return;
	if (t->cfg->role == KCPX_ROLE_SERVER) {
		fprintf(fp,
			"  kcpx protocol: sessions replaced after a client fell back %llu, "
			"handshakes over --hsrate %llu\n",
			(unsigned long long)t->replaced, (unsigned long long)t->hs_limited);
		return;
	}
	fprintf(fp, "  kcpx protocol: ");
	if (t->native_only || !t->kcptun_mode)
		fprintf(fp, "new sessions use it");
	else if (!t->cfg->reprobe)
		fprintf(fp, "no answer, kcptun for good (--reprobe 0)");
	else
		fprintf(fp, "no answer %u s ago, new sessions try again after %d s",
			t->ticks - t->kcptun_since, t->cfg->reprobe);
	fprintf(fp, "; late kcpx packets %llu\n", (unsigned long long)t->late_native);
}

static void print_status(struct tunnel *t)
{
	kcpx_snmp_print(kcpx_log_file(), &t->snmp);
	write_status(t, kcpx_log_file());
	fflush(kcpx_log_file());
}

/* A `kcpx status` connection: answer with the table and hang up. */
static void ctl_accept(struct kcpx_watch *w, uint32_t events)
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

static void tunnel_signal(struct kcpx_watch *w, uint32_t events)
{
	struct tunnel *t = (struct tunnel *)((char *)w - offsetof(struct tunnel, sigw));
	struct signalfd_siginfo si;

	while (read(w->fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGUSR1) {
			print_status(t);
		} else {
			pr_info("signal %u: shutting down", si.ssi_signo);
			kcpx_service_stopping();
			t->stopping = true;
			kcpx_loop_stop(t->loop);
		}
	}
}

static int tunnel_setup(struct tunnel *t)
{
	const struct kcpx_config *cfg = t->cfg;
	uint8_t seed[32];
	char buf[KCPX_ADDRSTRLEN];
	int err;

	randombytes_buf(seed, sizeof(seed));
	err = kcpx_crypt_new(&t->crypt, cfg->crypt, cfg->key, seed);
	sodium_memzero(seed, sizeof(seed));
	if (err) {
		pr_warn("crypt '%s': %s", cfg->crypt, strerror(-err));
		return err;
	}
	if (strcmp(cfg->proto, "kcptun")) {
		/* Argon2id wants 64 MiB for a moment: with auto, do without rather than die */
		err = kcpx_native_psk_new(&t->psk, cfg->key);
		if (err && !strcmp(cfg->proto, "kcpx")) {
			pr_warn("kcpx protocol keys: %s", strerror(-err));
			return err;
		}
		if (err)
			pr_warn("kcpx protocol keys: %s: speaking kcptun only", strerror(-err));
		err = 0;
		t->native_only = !strcmp(cfg->proto, "kcpx");
		t->client_native = t->psk && cfg->role == KCPX_ROLE_CLIENT;
		t->hs_tries_auto = HS_TRIES_AUTO;
		if (t->psk && cfg->role == KCPX_ROLE_SERVER && cfg->hsrate > 0) {
			t->hsrl = calloc(HSRL_SLOTS, sizeof(*t->hsrl));
			if (!t->hsrl)
				return -ENOMEM;
		}
		if (t->psk && t->be && t->be->native_cfg) {
			struct kcpx_native_cfg nc;

			kcpx_native_psk_bpf_cfg(t->psk, cfg->role == KCPX_ROLE_SERVER, &nc);
			if (cfg->role == KCPX_ROLE_SERVER)
				nc.hs_rate = (__u16)cfg->hsrate; /* XDP's own bucket, same rate */
			err = t->be->native_cfg(t->be->arg, &nc);
			sodium_memzero(&nc, sizeof(nc));
			if (err) {
				pr_warn("XDP native checks: %s", strerror(-err));
				return err;
			}
		}
	}
	t->scfg = (struct kcpx_session_config){
		.mtu = (unsigned)cfg->mtu,
		.sndwnd = (unsigned)cfg->sndwnd,
		.rcvwnd = (unsigned)cfg->rcvwnd,
		.nodelay = cfg->nodelay,
		.interval = cfg->interval,
		.resend = cfg->resend,
		.nc = cfg->nc,
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
		.crypt = t->crypt,
		.smux = {
			.version = cfg->smuxver,
			.client = cfg->role == KCPX_ROLE_CLIENT,
			.max_frame = 32768,
			.max_recv_buffer = (uint32_t)cfg->smuxbuf,
			.max_stream_buffer = (uint32_t)cfg->streambuf,
			.keepalive_ms = (uint32_t)cfg->keepalive * 1000u,
			.keepalive_timeout_ms = cfg->keepalive ? 30000u : 0,
		},
	};
	if (cfg->keepalive * 3000 > 30000)
		t->scfg.smux.keepalive_timeout_ms = (uint32_t)cfg->keepalive * 3000u;

	if (cfg->role == KCPX_ROLE_CLIENT) {
		err = kcpx_addr_parse(cfg->localaddr, &t->laddr);
		if (err) {
			pr_warn("localaddr '%s': %s", cfg->localaddr, strerror(-err));
			return err;
		}
		err = kcpx_addr_parse(cfg->remoteaddr, &t->remote);
		if (err) {
			pr_warn("remoteaddr '%s': %s", cfg->remoteaddr,
				err == -EOPNOTSUPP ? "port ranges are not supported"
						   : strerror(-err));
			return err;
		}
		t->slots = calloc((size_t)cfg->conn, sizeof(*t->slots));
		if (!t->slots)
			return -ENOMEM;
		err = kcpx_tcp_listen(&t->laddr);
		if (err < 0) {
			pr_warn("listen on %s (tcp): %s", cfg->localaddr, strerror(-err));
			return err;
		}
		t->lw.fn = client_accept;
		err = kcpx_loop_add(t->loop, &t->lw, err, EPOLLIN);
		if (err)
			return err;
		pr_info("client: listening on %s (tcp), remote %s (udp), crypt %s, mode %s, proto "
			"%s",
			kcpx_addr_str(&t->laddr, buf, sizeof(buf)), cfg->remoteaddr, cfg->crypt,
			cfg->mode, cfg->proto);
	} else {
		struct dg *g;

		err = kcpx_addr_parse(cfg->listen, &t->laddr);
		if (err) {
			pr_warn("listen '%s': %s", cfg->listen,
				err == -EOPNOTSUPP ? "port ranges are not supported"
						   : strerror(-err));
			return err;
		}
		err = kcpx_target_parse(cfg->target, &t->target);
		if (err) {
			pr_warn("target '%s': %s", cfg->target, strerror(-err));
			return err;
		}
		g = dg_get(t, &t->laddr, NULL);
		if (!g)
			return -EADDRNOTAVAIL;
		pr_info("server: listening on %s (%s), target %s, crypt %s, mode %s, proto %s",
			kcpx_addr_str(&g->d->local, buf, sizeof(buf)), g->d->name, cfg->target,
			cfg->crypt, cfg->mode, cfg->proto);
	}
	return 0;
}

/* --metrics: at most this many sessions get their own series (the rest are counted) */
#define METRICS_SESSIONS 64

static void metrics_sess_labels(FILE *fp, const char *name, const struct sess *s)
{
	char peer[KCPX_ADDRSTRLEN], conv[16];

	snprintf(conv, sizeof(conv), "%08x", s->conv);
	fprintf(fp, "%s{", name);
	kcpx_metrics_label(fp, "peer", kcpx_addr_str(&s->peer, peer, sizeof(peer)));
	fputc(',', fp);
	kcpx_metrics_label(fp, "conv", conv);
	fputc(',', fp);
	kcpx_metrics_label(fp, "proto", sess_proto(s));
	fputs("} ", fp);
}

/* The tunnel's part of /metrics: totals, then per-session series (bounded). */
static void tunnel_metrics(void *arg, FILE *fp)
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

	kcpx_metrics_snmp(fp, &t->snmp);
	for (struct sess *s = t->sessions; s; s = s->next, n++)
		streams += s->nstreams;
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
	fprintf(fp, "kcpx_unknown_peer_total %llu\n", (unsigned long long)t->unknown_peer);
	/* one family at a time, as the format wants: every session's sample of it */
	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		unsigned k = 0;

		kcpx_metrics_family(fp, fam[f].name, fam[f].type, fam[f].help);
		for (struct sess *s = t->sessions; s && k < METRICS_SESSIONS; s = s->next, k++) {
			struct kcpx_kcp_info ki;
			struct kcpx_session_stats st;
			uint64_t v[] = { 0, 0, 0, 0, 0 };

			kcpx_kcp_info(kcpx_session_kcp(s->ks), &ki);
			kcpx_session_stats(s->ks, &st);
			metrics_sess_labels(fp, fam[f].name, s);
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
				fprintf(fp, "%u\n", s->nstreams);
		}
	}
}

/*
 * /healthz: healthy while the tunnel runs and, when it has sessions, at least one of them
 * heard from its peer within the keepalive timeout (the window after which smux gives a
 * silent session up). A client with no session yet is healthy: it opens them on demand.
 */
static bool tunnel_healthy(void *arg, char *why, size_t size)
{
	struct tunnel *t = arg;
	uint32_t now = kcpx_clock_ms(), window = t->scfg.smux.keepalive_timeout_ms;
	unsigned n = 0, alive = 0;

	if (!window)
		window = 30000;
	if (t->stopping) {
		snprintf(why, size, "stopping");
		return false;
	}
	for (struct sess *s = t->sessions; s; s = s->next, n++) {
		struct kcpx_session_stats st;

		kcpx_session_stats(s->ks, &st);
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

/* Listening (and, under `kcpx up`, attached): tell the service manager, in one line. */
/* Every socket is open: from here on the daemon parses datagrams, so with as little as
 * it needs (io/priv.h). */
static int tunnel_drop_privileges(struct tunnel *t)
{
	const char *what;
	int err = kcpx_priv_drop(t->cfg->user, t->be ? t->be->keep_caps : 0, &what);

	if (err)
		pr_warn("--user '%s': %s: %s", t->cfg->user, what,
			err == -ESRCH ? "no such user" : strerror(-err));
	else if (t->cfg->user[0])
		pr_info("running as user %s (uid %u)", t->cfg->user, (unsigned)getuid());
	return err;
}

static void tunnel_ready(struct tunnel *t)
{
	const struct kcpx_config *cfg = t->cfg;
	char what[3 * KCPX_STR];

	if (cfg->role == KCPX_ROLE_SERVER)
		snprintf(what, sizeof(what), "server %s (%s) -> %s", cfg->listen,
			 t->dgs ? t->dgs->d->name : "-", cfg->target);
	else
		snprintf(what, sizeof(what), "client %s -> %s (%s)", cfg->localaddr,
			 cfg->remoteaddr, t->be ? "AF_XDP" : "UDP");
	kcpx_service_ready(what);
}

int kcpx_tunnel_run(const struct kcpx_config *cfg, const struct kcpx_tunnel_backend *be)
{
	struct tunnel *t;
	sigset_t mask;
	int err, sfd;

	if (sodium_init() < 0) {
		pr_warn("libsodium failed to initialise");
		return -EIO;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->cfg = cfg;
	t->be = be;
	t->lw.fd = -1;
	t->sigw.fd = -1;
	t->ctlw.fd = -1;
	t->loop = kcpx_loop_new();
	t->rxmem = malloc((size_t)RX_BATCH * KCPX_PKT_MAX);
	if (!t->loop || !t->rxmem) {
		err = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < RX_BATCH; i++)
		t->rx[i].buf = t->rxmem + (size_t)i * KCPX_PKT_MAX;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGUSR1);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0) {
		err = -errno;
		goto out;
	}
	t->sigw.fn = tunnel_signal;
	err = kcpx_loop_add(t->loop, &t->sigw, sfd, EPOLLIN);
	if (err) {
		close(sfd);
		goto out;
	}
	err = tunnel_setup(t);
	if (err)
		goto out;
	sfd = kcpx_ctl_listen(t->ctlpath, sizeof(t->ctlpath));
	if (sfd >= 0) {
		t->ctlw.fn = ctl_accept;
		if (kcpx_loop_add(t->loop, &t->ctlw, sfd, EPOLLIN) < 0)
			close(sfd);
	} else {
		pr_warn("no control socket (kcpx status will not list this tunnel): %s",
			strerror(-sfd));
	}
	err = tunnel_drop_privileges(t);
	if (err)
		goto out;
	kcpx_timer_init(&t->sectimer, tunnel_second);
	kcpx_timer_set(t->loop, &t->sectimer, kcpx_clock_ms() + 1000);
	kcpx_loop_set_idle(t->loop, tunnel_idle, t);
	if (cfg->metrics[0]) {
		struct kcpx_metrics_src ms = { tunnel_metrics, tunnel_healthy, t };

		err = kcpx_metrics_start(&t->metrics, t->loop, cfg->metrics, &ms);
		if (err)
			goto out;
	}
	tunnel_ready(t);
	err = kcpx_loop_run(t->loop);
	if (err)
		pr_warn("event loop: %s", strerror(-err));
out:
	while (t->sessions)
		sess_close(t->sessions, "shutdown");
	if (t->loop)
		tunnel_idle(t);
	if (t->lw.fd >= 0)
		close(t->lw.fd);
	if (t->sigw.fd >= 0)
		close(t->sigw.fd);
	kcpx_metrics_stop(t->metrics);
	if (t->ctlw.fd >= 0) {
		close(t->ctlw.fd);
		unlink(t->ctlpath);
	}
	while (t->dgs) {
		t->dgs->refs = 1;
		dg_put(t, t->dgs);
	}
	kcpx_crypt_free(t->crypt);
	kcpx_native_psk_free(t->psk);
	kcpx_loop_free(t->loop);
	free(t->slots);
	free(t->hsrl);
	free(t->rxmem);
	free(t);
	return err;
}
