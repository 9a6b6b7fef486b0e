// SPDX-License-Identifier: MIT
/*
 * Datagram backends as the tunnel's loop sees them: open or share one (a backend that
 * serves every session from one object, AF_XDP, returns the same dgram each time and is
 * watched once), read batches into the endpoint, queue sends and flush them per turn.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "app/log.h"
#include "app/tunnel_int.h"
#include "core/util.h"
#include "io/clock.h"
#include "io/udp.h"

#define RX_BUDGET 1024 /* datagrams per readiness event before other work gets a turn */

/*
 * Datagrams from..ntx could not be sent: tell the sessions they came from, whose
 * controllers take it as congestion, not path loss (core/cc.h kcpx_cc_on_local_drop).
 * A client's socket has one session; a shared backend's are found by peer address, at
 * most once per ms per backend (the controller cuts at most once per round anyway), so a
 * full ring under many sessions costs one walk of the session table per ms.
 */
static void path_local_drop(struct dg *g, int from)
{
	uint32_t now = kcpx_clock_ms();

	if (g->owner) {
		kcpx_session_local_drop(g->owner->ks, (uint32_t)(g->ntx - from), now);
		return;
	}
	if (g->ld_walked && g->ld_ts == now)
		return;
	g->ld_walked = true;
	g->ld_ts = now;
	for (struct kcpx_ep_sess *e = kcpx_ep_first(g->t->ep); e; e = kcpx_ep_next(e)) {
		struct sess *s = kcpx_ep_sess_user(e);
		uint32_t n = 0;

		if (!s || s->dg != g)
			continue;
		for (int i = from; i < g->ntx; i++)
			n += kcpx_addr_equal(&g->tx[i].addr, kcpx_ep_sess_peer(e));
		if (n)
			kcpx_session_local_drop(s->ks, n, now);
	}
}

void kcpx_path_flush(struct dg *g)
{
	int done = 0;

	while (done < g->ntx) {
		int n = g->d->ops->send(g->d, g->tx + done, g->ntx - done);
		if (n <= 0) {
			/* Full socket or ring: the datagrams are lost as on a congested link,
			 * and KCP retransmits them. Counted, rate-limited in the log. */
			g->t->tx_dropped += (uint64_t)(g->ntx - done);
			path_local_drop(g, done);
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

void kcpx_path_xmit(struct dg *g, const struct kcpx_addr *to, const struct kcpx_ip *from,
		    const uint8_t *d, size_t n)
{
	struct kcpx_pkt *p;

	if (n > KCPX_PKT_MAX) {
		g->t->tx_dropped++;
		return;
	}
	if (g->ntx == TX_BATCH)
		kcpx_path_flush(g);
	if (!g->txq) {
		g->txq = true;
		g->txnext = g->t->txq;
		g->t->txq = g;
	}
	p = &g->tx[g->ntx++];
	memcpy(p->buf, d, n);
	p->len = (uint32_t)n;
	p->addr = *to;
	if (from)
		p->local = *from;
	else
		p->local.family = 0;
}

/* The end of a loop turn: only backends that batched something, however many exist. */
void kcpx_path_flush_all(struct tunnel *t)
{
	while (t->txq) {
		struct dg *g = t->txq;

		t->txq = g->txnext;
		g->txq = false;
		if (g->ntx)
			kcpx_path_flush(g);
	}
}

/*
 * Datagrams the host dropped before this backend read them (a full socket receive
 * buffer, a full AF_XDP ring) go to the sessions they were for, whose peers' controllers
 * take them as congestion (core/kcp.h, the drop report). A dropped datagram was never
 * read, so on a shared backend nobody knows whose it was: each session gets the share
 * its datagrams are of all those read from the backend since the last share-out (drops
 * hit arrivals alike). Datagrams that fail the tag or the AEAD are read too and belong
 * to nobody, so a flood that fills the buffer is charged mostly to itself. At most one
 * walk of the sessions per ms and backend.
 */
static void path_rx_drops(struct dg *g, uint32_t now)
{
	uint32_t n = g->d->rx_drops - g->rxd_seen;
	uint64_t read = g->rxd_read;

	if (!n)
		return;
	if (g->owner) {
		g->t->rx_dropped += n;
		g->rxd_seen += n;
		g->rxd_read = 0;
		kcpx_session_rx_dropped(g->owner->ks, n);
		return;
	}
	if (g->rxd_ts == now)
		return;
	g->t->rx_dropped += n;
	g->rxd_seen += n;
	g->rxd_ts = now;
	g->rxd_read = 0;
	for (struct kcpx_ep_sess *e = kcpx_ep_first(g->t->ep); e; e = kcpx_ep_next(e)) {
		struct sess *s = kcpx_ep_sess_user(e);
		struct kcpx_session_stats st;
		uint64_t mine, owed;

		if (!s || s->dg != g)
			continue;
		kcpx_session_stats(s->ks, &st);
		mine = st.pkts_in - s->rxd_pkts;
		s->rxd_pkts = st.pkts_in;
		if (!mine || !read)
			continue;
		/* n x mine / read in 1/65536ths (mine <= read: both count datagrams read
		 * here, and the session's only from this backend) */
		owed = (uint64_t)n * KCPX_MIN(mine, read) * 65536 / read + s->rxd_rest;
		s->rxd_rest = (uint32_t)(owed % 65536);
		if (owed / 65536)
			kcpx_session_rx_dropped(s->ks, (uint32_t)KCPX_MIN(owed / 65536, n));
	}
}

static void path_readable(struct kcpx_watch *w, uint32_t events)
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
		for (int i = 0; i < n; i++) {
			struct kcpx_pkt *p = &t->rx[i];

			kcpx_ep_input_at(t->ep, g->owner ? g->owner->es : NULL, g, &p->addr,
					 &p->local, p->buf, p->len, now);
		}
		total += n;
		/* A plain UDP socket (also under --tcp): a short batch emptied its queue, one
		 * more call would only say EAGAIN (a datagram arriving meanwhile wakes the loop
		 * again). AF_XDP's receive drains until it returns nothing. */
		if (n < RX_BATCH && g->d->short_empty)
			break;
	}
	g->rxd_read += (uint64_t)total;
	path_rx_drops(g, now);
}

static void path_ctl(struct kcpx_watch *w, uint32_t events)
{
	struct dg *g = (struct dg *)((char *)w - offsetof(struct dg, cw));

	(void)events;
	g->d->ops->ctl(g->d);
}

struct dg *kcpx_path_get(struct tunnel *t, const struct kcpx_addr *bind,
			 const struct kcpx_addr *peer)
{
	struct kcpx_dgram *d = NULL;
	struct dg *g;
	int err;

	if (t->be && t->be->open) {
		err = t->be->open(t->be->arg, t->shard, bind, peer, &d);
	} else {
		struct kcpx_udp_config uc = {
			.bind = bind,
			.peer = peer,
			.sockbuf = t->cfg->sockbuf,
			.dscp = t->cfg->dscp,
			.group = bind ? kcpx_shard_count(t) : 0,
			.port_hint = bind ? 0 : t->port_hint,
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
	g->w.fn = path_readable;
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
	g->cw.fd = -1;
	g->cw.fn = path_ctl;
	if (d->ops->ctl && kcpx_loop_add(t->loop, &g->cw, d->cfd, EPOLLIN) < 0) {
		for (int i = 0; i < d->nxfd; i++)
			kcpx_loop_del_fd(t->loop, d->xfd[i]);
		kcpx_loop_del(t->loop, &g->w);
		goto err_free;
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

void kcpx_path_put(struct tunnel *t, struct dg *g)
{
	struct dg **pp;

	if (--g->refs > 0)
		return;
	kcpx_path_flush(g);
	for (pp = &t->dgs; *pp; pp = &(*pp)->next) {
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	}
	for (pp = &t->txq; g->txq && *pp; pp = &(*pp)->txnext) {
		if (*pp == g) {
			*pp = g->txnext;
			break;
		}
	}
	kcpx_loop_del(t->loop, &g->w);
	for (int i = 0; i < g->d->nxfd; i++)
		kcpx_loop_del_fd(t->loop, g->d->xfd[i]);
	kcpx_loop_del(t->loop, &g->cw);
	g->d->ops->close(g->d);
	free(g->txmem);
	free(g);
}
