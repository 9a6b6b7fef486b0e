// SPDX-License-Identifier: MIT
/*
 * The endpoint's rules (docs/PROTOCOL.md §6-7). Every datagram enters at kcpx_ep_input();
 * nothing here trusts a datagram before it authenticated, except where the kcptun format
 * leaves no choice (it has no authenticated session id: see PROTOCOL.md §7).
 *
 * A session's protocol is one of enum ep_state; every change of it goes through
 * kcpx_ep_proto_event(), which also does what the change implies (keys, counters, log lines).
 */
#include "core/endpoint.h"
#include "core/endpoint_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "core/fec.h"
#include "core/kcp.h"
#include "core/native.h"
#include "core/ratelimit.h"
#include "core/srccount.h"
#include "core/util.h"

/*
 * A kcptun-format session is unproven until its peer acknowledged a segment we sent (its
 * address answers; no cryptographic proof: the format has none). Until then it may send
 * UNPROVEN_TX datagrams per datagram it received (at most UNPROVEN_TX_MAX banked), so
 * one forged datagram from a spoofed source gets the victim at most UNPROVEN_TX; there
 * may be UNPROVEN_PER_SRC of them per source and UNPROVEN_MAX in all; one silent for
 * UNPROVEN_IDLE_MS is closed.
 */
#define UNPROVEN_TX	   3
#define UNPROVEN_TX_MAX	   64
#define UNPROVEN_PER_SRC   8
#define UNPROVEN_MAX	   64
#define UNPROVEN_IDLE_MS   10000
#define SESSRL_SLOTS	   4096
#define SRCCNT_SLOTS	   8192 /* --persource: counters per row (ratelimit.h's sketch) */
#define HSRL_SLOTS	   4096 /* --hsrate: token buckets, one per source address hash */
#define KCPX_EP_RESET_RATE 10	/* RESETs a second to one address (burst as many) */

void kcpx_ep_log(struct kcpx_ep *ep, int level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (!ep->ops.log)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ep->ops.log(ep->user, level, buf);
}

/* Data-path lines: at most 10 a second from one endpoint. */
static bool ep_log_ok(struct kcpx_ep *ep, uint32_t now)
{
	if (now / 1000 != ep->log_stamp) {
		ep->log_stamp = now / 1000;
		ep->log_count = 0;
	}
	return ep->log_count++ < 10;
}

/* ---- tables ---------------------------------------------------------------------- */

static struct kcpx_ep_sess **addr_head(struct kcpx_ep *ep, const struct kcpx_addr *a)
{
	return &ep->by_addr[kcpx_addr_hash(a, ep->seed) & (ep->hcap - 1)];
}

static struct kcpx_ep_sess *addr_lookup(struct kcpx_ep *ep, const struct kcpx_addr *a)
{
	for (struct kcpx_ep_sess *s = *addr_head(ep, a); s; s = s->anext)
		if (kcpx_addr_equal(&s->peer, a))
			return s;
	return NULL;
}

static void addr_unlink(struct kcpx_ep_sess *s)
{
	for (struct kcpx_ep_sess **pp = addr_head(s->ep, &s->peer); *pp; pp = &(*pp)->anext) {
		if (*pp == s) {
			*pp = s->anext;
			return;
		}
	}
}

static struct kcpx_ep_sess **sid_head(struct kcpx_ep *ep, uint32_t sid)
{
	return &ep->by_sid[(sid ^ ep->seed) & (ep->hcap - 1)];
}

/*
 * Double both tables (count > hcap): every chain is moved bucket by bucket, so exactly
 * the sessions that were in a table are in it again (a session that fell back is in
 * the address table and not the sid table). Out of memory: the tables stay as they are,
 * chains get longer, lookups stay right.
 */
static void ep_hash_grow(struct kcpx_ep *ep)
{
	unsigned old = ep->hcap, cap = old * 2;
	struct kcpx_ep_sess **na, **ns, **oa = ep->by_addr, **os = ep->by_sid;

	if (cap > EP_HASH_MAX)
		return;
	na = calloc(cap, sizeof(*na));
	ns = calloc(cap, sizeof(*ns));
	if (!na || !ns) {
		free(na);
		free(ns);
		return;
	}
	ep->by_addr = na;
	ep->by_sid = ns;
	ep->hcap = cap;
	for (unsigned i = 0; i < old; i++) {
		while (oa[i]) {
			struct kcpx_ep_sess *s = oa[i], **h = addr_head(ep, &s->peer);

			oa[i] = s->anext;
			s->anext = *h;
			*h = s;
		}
		while (os[i]) {
			struct kcpx_ep_sess *s = os[i], **h = sid_head(ep, s->conv);

			os[i] = s->snext;
			s->snext = *h;
			*h = s;
		}
	}
	free(oa);
	free(os);
}

/* The live native session with this sid (sids key the XDP session map: one per sid). */
static struct kcpx_ep_sess *sid_lookup(struct kcpx_ep *ep, uint32_t sid)
{
	for (struct kcpx_ep_sess *s = *sid_head(ep, sid); s; s = s->snext)
		if (s->conv == sid && is_native(s))
			return s;
	return NULL;
}

void kcpx_ep_sid_unlink(struct kcpx_ep_sess *s)
{
	for (struct kcpx_ep_sess **pp = sid_head(s->ep, s->conv); *pp; pp = &(*pp)->snext) {
		if (*pp == s) {
			*pp = s->snext;
			return;
		}
	}
}

/* ---- session callbacks ------------------------------------------------------------ */

void kcpx_ep_wake(struct kcpx_ep_sess *s)
{
	if (!s->closing)
		s->ep->ops.wake(s->ep->user, s->user);
}

void kcpx_ep_sess_xmit(void *user, const uint8_t *d, size_t n)
{
	struct kcpx_ep_sess *s = user;

	if (!s->proven) {
		if (!s->tx_budget) {
			s->ep->st.unproven_drop++;
			return;
		}
		s->tx_budget--;
	}
	s->ep->ops.xmit(s->ep->user, s->path, &s->peer, s->local.family ? &s->local : NULL, d, n);
}

/*
 * The datagram being input is authentic for session s (the return of kcpx_ep_input): s
 * answers from the address it was sent to from now on. Only here and when a session
 * opens, so that a datagram that proves nothing cannot move where a peer's answers go.
 */
static void ep_authentic(struct kcpx_ep_sess *s)
{
	struct kcpx_ep *ep = s->ep;

	ep->rx_authentic = true;
	if (ep->rx_local)
		s->local = *ep->rx_local;
}

/* A source for the per-source caps: an IPv4 address, or an IPv6 /64. */
static void src_key(const struct kcpx_addr *a, uint8_t key[16])
{
	kcpx_addr_key(a, key);
	if (a->sa.sa_family == AF_INET6 && !IN6_IS_ADDR_V4MAPPED(&a->in6.sin6_addr))
		memset(key + 8, 0, 8);
}

static void unproven_link(struct kcpx_ep *ep, struct kcpx_ep_sess *s)
{
	s->unext = ep->unproven;
	if (ep->unproven)
		ep->unproven->upprev = &s->unext;
	s->upprev = &ep->unproven;
	ep->unproven = s;
	ep->st.pending++;
}

static void unproven_unlink(struct kcpx_ep_sess *s)
{
	if (!s->upprev)
		return; /* not linked: closing already took it off */
	*s->upprev = s->unext;
	if (s->unext)
		s->unext->upprev = s->upprev;
	s->unext = NULL;
	s->upprev = NULL;
	s->ep->st.pending--;
}

/* A kcptun-format session's peer acknowledged something we sent: it answers. */
static void ep_prove(struct kcpx_ep_sess *s)
{
	struct kcpx_kcp_info ki;

	if (s->proven)
		return;
	kcpx_kcp_info(kcpx_session_kcp(s->ks), &ki);
	if (ki.srtt) {
		s->proven = true;
		unproven_unlink(s);
		return;
	}
	s->tx_budget = s->tx_budget + UNPROVEN_TX > UNPROVEN_TX_MAX ? UNPROVEN_TX_MAX
								    : s->tx_budget + UNPROVEN_TX;
}

static void ep_sess_accept(void *user, uint32_t sid)
{
	struct kcpx_ep_sess *s = user;

	s->ep->ops.accept(s->user, sid);
}

static void ep_sess_readable(void *user, uint32_t sid)
{
	struct kcpx_ep_sess *s = user;

	s->ep->ops.readable(s->user, sid);
}

static void ep_sess_writable(void *user, uint32_t sid)
{
	struct kcpx_ep_sess *s = user;

	s->ep->ops.writable(s->user, sid);
}

static void ep_sess_refused(void *user, uint32_t sid, unsigned n)
{
	struct kcpx_ep_sess *s = user;

	if (s->ep->ops.refused)
		s->ep->ops.refused(s->user, sid, n);
}

/*
 * A native session's keys exist: hand its XDP map entry (receive tag key, FEC shape) to
 * the owner. Returns 0, or -errno when it could not take it.
 */
int kcpx_ep_native_up(struct kcpx_ep_sess *s, struct kcpx_native *n)
{
	struct kcpx_ep *ep = s->ep;
	struct kcpx_native_sess v;
	int err;

	if (!ep->ops.native_up)
		return 0;
	kcpx_native_bpf_sess(n, &v);
	/* the peer's shape, not ours: XDP learns it (a receiver takes FEC whatever its own
	 * --datashard/--parityshard, as kcp-go does) */
	v.fec_track = 1;
	err = ep->ops.native_up(ep->user, s->conv, &v);
	sodium_memzero(&v, sizeof(v));
	if (err) {
		kcpx_ep_log(ep, 0, "session %08x: XDP session entry: %s", s->conv, strerror(-err));
		return err;
	}
	s->be_native = true;
	return 0;
}

/* ---- lifecycle -------------------------------------------------------------------- */

/* Client: new streams no longer go to s. */
void kcpx_ep_unslot(struct kcpx_ep_sess *s)
{
	struct kcpx_ep *ep = s->ep;

	if (!ep->slots)
		return;
	for (int i = 0; i < ep->cfg.conn; i++)
		if (ep->slots[i] == s)
			ep->slots[i] = NULL;
}

/* --persource: the count a session (or ep_admit, for one that did not open) holds, back. */
static void src_put(struct kcpx_ep *ep, struct kcpx_ep_sess *s)
{
	if (s->src_held)
		kcpx_srccount_put(ep->srccnt, &s->src);
	s->src_held = false;
}

static void adm_drop(struct kcpx_ep *ep)
{
	if (ep->adm_held)
		kcpx_srccount_put(ep->srccnt, &ep->adm_ref);
	ep->adm_held = false;
}

static struct kcpx_ep_sess *ep_open(struct kcpx_ep *ep, void *path, const struct kcpx_addr *peer,
				    uint32_t conv, bool native, uint32_t now)
{
	struct kcpx_session_config sc = ep->cfg.session;
	char buf[KCPX_ADDRSTRLEN];
	struct kcpx_ep_sess *s;

	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	sc.conv = conv;
	sc.native = native;
	s->ep = ep;
	s->conv = conv;
	s->state = native ? EP_PROBE : EP_KCPTUN;
	s->peer = *peer;
	if (ep->rx_local)
		s->local = *ep->rx_local;
	s->path = path;
	s->created = now;
	s->last_rx = now;
	/* from here the session holds ep_admit's --persource count until kcpx_ep_close */
	s->src = ep->adm_ref;
	s->src_held = ep->adm_held;
	ep->adm_held = false;
	/* a client picked its server; a native session proves itself by its keys */
	s->proven = !ep->cfg.server || native;
	s->ks = kcpx_session_new(&sc, &ep->sops, s, ep->snmp, now);
	if (!s->ks) {
		kcpx_ep_log(ep, 0, "cannot create a session (out of memory?)");
		src_put(ep, s);
		free(s);
		return NULL;
	}
	s->user = ep->ops.opened(ep->user, s, path);
	if (!s->user) {
		kcpx_session_free(s->ks);
		src_put(ep, s);
		free(s);
		return NULL;
	}
	if (ep->count >= ep->hcap)
		ep_hash_grow(ep);
	if (ep->cfg.server) {
		struct kcpx_ep_sess **h = addr_head(ep, peer);

		s->anext = *h;
		*h = s;
		ep->snmp->PassiveOpens++;
	} else {
		ep->snmp->ActiveOpens++;
	}
	s->snext = *sid_head(ep, conv);
	*sid_head(ep, conv) = s;
	s->next = ep->all;
	if (ep->all)
		ep->all->pprev = &s->next;
	s->pprev = &ep->all;
	ep->all = s;
	if (!s->proven)
		unproven_link(ep, s);
	ep->count++;
	ep->snmp->CurrEstab++;
	if (ep->snmp->CurrEstab > ep->snmp->MaxConn)
		ep->snmp->MaxConn = ep->snmp->CurrEstab;
	/* an unproven session may be a forgery: its lines are rate-limited */
	if (s->proven || ep_log_ok(ep, now))
		kcpx_ep_log(ep, 1, "session %08x with %s opened", conv,
			    kcpx_addr_str(peer, buf, sizeof(buf)));
	kcpx_ep_wake(s);
	return s;
}

#define HINT_EVERY_MS 60000 /* close lines that name a likely cause */

void kcpx_ep_close(struct kcpx_ep_sess *s, const char *why)
{
	struct kcpx_ep *ep = s->ep;
	char buf[KCPX_ADDRSTRLEN];

	if (s->closing)
		return;
	/* The owner's streams go first, while the engine can still flush what it owes. */
	ep->ops.closed(ep->user, s->user);
	s->closing = true;
	if (ep->cfg.server)
		addr_unlink(s);
	kcpx_ep_sid_unlink(s);
	*s->pprev = s->next;
	if (s->next)
		s->next->pprev = s->pprev;
	kcpx_ep_unslot(s);
	src_put(ep, s);
	ep->count--;
	ep->snmp->CurrEstab--;
	if (s->be_native && ep->ops.native_down)
		ep->ops.native_down(ep->user, s->conv);
	s->be_native = false;
	if (!s->proven)
		unproven_unlink(s);
	/* a close that a configuration mismatch explains is a warning, and says so, at most
	 * once a minute (a client's every new connection meets the same mismatch) */
	if (s->proven || ep_log_ok(ep, s->last_rx)) {
		const char *hint = kcpx_session_hint(why);

		if (hint[0] && ep->hinted && (int32_t)(s->last_rx - ep->hint_ms) < HINT_EVERY_MS) {
			hint = "";
		} else if (hint[0]) {
			ep->hint_ms = s->last_rx;
			ep->hinted = true;
		}
		kcpx_ep_log(ep, hint[0] ? 0 : 1, "session %08x with %s closed: %s%s", s->conv,
			    kcpx_addr_str(&s->peer, buf, sizeof(buf)), why, hint);
	}
	/* Unproven ones too (a kcptun-format session that met a --nocomp mismatch dies
	 * before its peer acknowledged anything). A forger can fill the ring with spoofed
	 * sources: that mutes the hint for those, and costs nothing else. */
	ep->recent[ep->recent_next].peer = s->peer;
	ep->recent[ep->recent_next].tick = ep->ticks;
	ep->recent_next = (ep->recent_next + 1) % EP_RECENT;
	if (ep->nrecent < EP_RECENT)
		ep->nrecent++;
	s->gnext = ep->garbage;
	ep->garbage = s;
}

/* Did a session with this peer close here in the last EP_RECENT_TICKS seconds? */
static bool closed_recently(const struct kcpx_ep *ep, const struct kcpx_addr *from)
{
	for (unsigned i = 0; i < ep->nrecent; i++)
		if (ep->ticks - ep->recent[i].tick <= EP_RECENT_TICKS &&
		    kcpx_addr_equal(&ep->recent[i].peer, from))
			return true;
	return false;
}

void kcpx_ep_reap(struct kcpx_ep *ep)
{
	while (ep->garbage) {
		struct kcpx_ep_sess *s = ep->garbage;

		ep->garbage = s->gnext;
		ep->ops.release(ep->user, s->user);
		kcpx_session_free(s->ks);
		kcpx_native_hs_free(s->hs);
		free(s);
	}
}

/* ---- handshake -------------------------------------------------------------------- */

/*
 * May a datagram from `from` open a session? The single gate for sessions made by the
 * network (server side). native_init: an INIT (d, n) that asks for a native session.
 * Returns 0, -EBADMSG (not a good INIT: let the kcptun path try it), -EBUSY (refused:
 * drop it; certainly native).
 *
 * --hsrate, as the XDP checks do it (docs/PROTOCOL.md §6): only an INIT with a good tag
 * spends its source's tokens, so forged INITs with a client's address cannot lock it out;
 * replays of real INITs can only spend their own source's. Before the sid check and the
 * X25519 work, which is what the limit saves.
 */
static void admit_refuse(struct kcpx_ep *ep, const struct kcpx_addr *from, const char *why,
			 uint32_t now)
{
	char buf[KCPX_ADDRSTRLEN];

	ep->st.admit_refused++;
	/* one line a second at most, however many are refused */
	if (now / 1000 != ep->adm_stamp) {
		if (ep->adm_count > 1)
			kcpx_ep_log(ep, 0, "%u more new sessions refused in that second",
				    ep->adm_count - 1);
		ep->adm_stamp = now / 1000;
		ep->adm_count = 0;
	}
	if (!ep->adm_count++)
		kcpx_ep_log(ep, 0, "new session from %s refused: %s",
			    kcpx_addr_str(from, buf, sizeof(buf)), why);
}

/*
 * May a new session from `from` be made? Every format: --maxsessions in all,
 * --persource from one source, UNPROVEN_PER_SRC / UNPROVEN_MAX kcptun-format sessions
 * that never answered, --sessrate new sessions per second per source. Native INITs
 * also pass --hsrate (with a good tag first: forged INITs spend no tokens, replays of
 * real INITs can only spend their own source's). Before the sid check and the X25519
 * work, which is what the limits save. The scan over sessions is bounded by
 * --maxsessions. --hsrate, --sessrate and --persource count for the whole process when
 * the owner shares them between its endpoints (cfg.limits); the unproven caps and
 * --maxsessions (the owner splits it) are this endpoint's. On success the --persource
 * count is taken (ep->adm_held) for the session the caller opens next: ep_open keeps it,
 * and the caller calls adm_drop() after, which gives it back if none opened.
 */
static int ep_admit(struct kcpx_ep *ep, const struct kcpx_addr *from, bool native_init,
		    const uint8_t *d, size_t n, uint32_t now)
{
	const struct kcpx_ep_config *c = &ep->cfg;
	char buf[KCPX_ADDRSTRLEN];
	uint8_t key[16], k2[16];
	unsigned same_pending = 0;

	adm_drop(ep);
	if (native_init && ep->hsrl) {
		if (!kcpx_native_init_tag_ok(c->psk, d, n))
			return -EBADMSG;
		kcpx_addr_key(from, key);
		if (!kcpx_ratelimit_allow(ep->hsrl, key, (uint64_t)now * 1000000u)) {
			ep->st.hs_limited++;
			if (ep_log_ok(ep, now))
				kcpx_ep_log(ep, 0,
					    "kcpx handshakes from %s over --hsrate %d/s: dropped",
					    kcpx_addr_str(from, buf, sizeof(buf)), c->hsrate);
			return -EBUSY;
		}
	}
	if (c->maxsessions > 0 && ep->count >= (unsigned)c->maxsessions) {
		admit_refuse(ep, from, "--maxsessions reached", now);
		return -EBUSY;
	}
	if (!native_init && ep->st.pending >= UNPROVEN_MAX) {
		admit_refuse(ep, from, "too many sessions whose peer never answered", now);
		return -EBUSY;
	}
	src_key(from, key);
	if (!native_init) {
		for (struct kcpx_ep_sess *s = ep->unproven; s; s = s->unext) {
			ep->adm_walked++;
			src_key(&s->peer, k2);
			same_pending += !memcmp(key, k2, 16);
		}
		if (same_pending >= UNPROVEN_PER_SRC) {
			admit_refuse(ep, from, "too many sessions from it never answered", now);
			return -EBUSY;
		}
	}
	if (ep->srccnt && c->persource > 0 &&
	    !kcpx_srccount_take(ep->srccnt, key, (uint32_t)c->persource, &ep->adm_ref)) {
		admit_refuse(ep, from, "--persource reached", now);
		return -EBUSY;
	}
	ep->adm_held = ep->srccnt && c->persource > 0;
	if (ep->sessrl && !kcpx_ratelimit_allow(ep->sessrl, key, (uint64_t)now * 1000000u)) {
		adm_drop(ep);
		admit_refuse(ep, from, "over --sessrate", now);
		return -EBUSY;
	}
	return 0;
}

/* An INIT ep_admit() let through, for a new sid: 0, or -errno when it is refused. */
static int hs_server_accept(struct kcpx_ep *ep, void *path, const struct kcpx_addr *from,
			    const uint8_t *d, size_t n, const struct kcpx_native_info *ni,
			    uint32_t now)
{
	uint8_t rnd[KCPX_NATIVE_HS_RAND], resp[KCPX_NATIVE_HS_LEN];
	struct kcpx_native *nat;
	struct kcpx_ep_sess *s;
	int err;

	ep->ops.random(ep->user, rnd, sizeof(rnd));
	err = kcpx_native_accept(ep->cfg.psk, d, n, rnd, ep->cfg.aes, resp, &nat, &ep->hs_stats);
	sodium_memzero(rnd, sizeof(rnd));
	if (err)
		return err;
	s = ep_open(ep, path, from, ni->sid, true, now);
	if (!s) {
		kcpx_native_free(nat);
		return 0; /* taken, and lost as if out of memory */
	}
	s->state = EP_ACCEPTED;
	kcpx_session_set_native(s->ks, nat);
	if (kcpx_ep_native_up(s, nat)) {
		kcpx_ep_close(s, "the XDP program cannot take the session");
		return 0; /* no RESP: the client tries again with a new sid */
	}
	s->hs_ctr = ni->ctr;
	memcpy(s->hs_pkt, resp, sizeof(resp));
	kcpx_ep_sess_xmit(s, s->hs_pkt, sizeof(s->hs_pkt));
	return 0;
}

/* ---- receive ---------------------------------------------------------------------- */

/*
 * Server: a native DATA packet for a sid it has no session for (the server restarted, or
 * closed the session) and which is no kcptun datagram either: answer with a RESET, so
 * that the client opens a new session now rather than after its keepalive timeout. The
 * RESET is no longer than the packet it answers, and at most KCPX_EP_RESET_RATE go to one
 * address a second: a forged DATA with a victim's source address reflects one datagram
 * of the same size, no more.
 */
static void ep_reset(struct kcpx_ep *ep, void *path, const struct kcpx_addr *from, size_t n,
		     const struct kcpx_native_info *ni, uint32_t now)
{
	uint8_t pkt[KCPX_NATIVE_RESET_LEN], rnd[16], key[16];

	if (!ep->rstrl || n < KCPX_NATIVE_RESET_LEN)
		return;
	kcpx_addr_key(from, key);
	if (!kcpx_ratelimit_allow(ep->rstrl, key, (uint64_t)now * 1000000u)) {
		ep->st.reset_limited++;
		return;
	}
	ep->ops.random(ep->user, rnd, sizeof(rnd));
	kcpx_native_reset(ep->cfg.psk, ni->sid, ni->ctr, rnd, pkt);
	ep->ops.xmit(ep->user, path, from, ep->rx_local, pkt, sizeof(pkt));
	ep->st.resets_sent++;
}

/*
 * Server: an authenticated packet of session s came from another address than s->peer.
 * Only a packet newer than any before (its counter above the window's top) moves the
 * session, so a late or reordered packet from the old address cannot move it back, and a
 * replay is refused by the window before it gets here. A copy of a fresh packet raced
 * ahead from another address (an on-path attacker) moves it until the peer's next packet,
 * as in WireGuard.
 */
static void ep_roam(struct kcpx_ep_sess *s, void *path, const struct kcpx_addr *from, uint32_t now)
{
	struct kcpx_ep *ep = s->ep;
	char a[KCPX_ADDRSTRLEN], b[KCPX_ADDRSTRLEN];
	struct kcpx_ep_sess **h;

	if (ep_log_ok(ep, now))
		kcpx_ep_log(ep, 1, "session %08x: peer moved from %s to %s", s->conv,
			    kcpx_addr_str(&s->peer, a, sizeof(a)),
			    kcpx_addr_str(from, b, sizeof(b)));
	addr_unlink(s);
	s->peer = *from;
	s->path = path;
	h = addr_head(ep, from);
	s->anext = *h;
	*h = s;
	ep->st.roamed++;
}

/*
 * Server: a datagram with a native header. Sessions are found by sid (the address only
 * for kcptun's format), so a client's new address or a second session from one address
 * (a client that restarted on the same port) is no special case. Returns false to let
 * the kcptun path try it; *reset: no session has its sid, send a RESET if the kcptun path
 * cannot take it either.
 */
static bool server_native_input(struct kcpx_ep *ep, void *path, const struct kcpx_addr *from,
				uint8_t *d, size_t n, const struct kcpx_native_info *ni,
				uint32_t now, bool *reset)
{
	struct kcpx_ep_sess *s = sid_lookup(ep, ni->sid);
	uint8_t *body;
	uint64_t top;
	size_t blen;

	if (ni->type == KCPX_NT_INIT) {
		bool claimed = false;
		int err;

		if (s && kcpx_addr_equal(from, &s->peer)) {
			/* our RESP was lost: answer the same INIT again; others are ignored.
			 * From the address this copy was sent to: a replay of the INIT that got
			 * here first to another of our addresses must not send the real
			 * client's RESP from there (its connected socket would drop it). */
			if (!s->closing && ni->ctr == s->hs_ctr && n == KCPX_NATIVE_HS_LEN)
				ep->ops.xmit(ep->user, s->path, &s->peer, ep->rx_local, s->hs_pkt,
					     sizeof(s->hs_pkt));
			return true;
		}
		/* no session here: another endpoint of the owner may hold or be opening it
		 * (ops.sid_claim); a forged INIT (its tag) claims nothing */
		if (!s && ep->ops.sid_claim && kcpx_native_init_tag_ok(ep->cfg.psk, d, n)) {
			if (ep->ops.sid_claim(ep->user, path, from, ep->rx_local, d, n, ni->sid))
				return true;
			claimed = true;
		}
		err = ep_admit(ep, from, true, d, n, now);
		if (err) {
			if (claimed && ep->ops.sid_release)
				ep->ops.sid_release(ep->user, ni->sid);
			return err == -EBUSY;
		}
		if (s) {
			/*
			 * The same INIT from another address while our session has carried
			 * nothing: a replay from a spoofed source got here first, or the client
			 * moved. Ignoring it would leave the real client unanswered until it
			 * falls back to kcptun's format (a downgrade anyone with one captured
			 * INIT could force). So the RESP goes here too, and the address whose
			 * authenticated DATA comes first keeps the session (ep_roam). Tag
			 * checked: a forged INIT gets nothing; other copies are ignored.
			 */
			if (s->state == EP_ACCEPTED && !s->closing && ni->ctr == s->hs_ctr &&
			    n == KCPX_NATIVE_HS_LEN && kcpx_native_init_tag_ok(ep->cfg.psk, d, n)) {
				ep->st.init_raced++;
				ep->ops.xmit(ep->user, path, from, ep->rx_local, s->hs_pkt,
					     sizeof(s->hs_pkt));
			}
			adm_drop(ep);
			return true;
		}
		err = hs_server_accept(ep, path, from, d, n, ni, now);
		adm_drop(ep);
		if (claimed && !sid_lookup(ep, ni->sid) && ep->ops.sid_release)
			ep->ops.sid_release(ep->user, ni->sid);
		return !err;
	}
	if (ni->type != KCPX_NT_DATA)
		return false;
	if (!s) {
		if (ep->ops.foreign &&
		    ep->ops.foreign(ep->user, path, from, ep->rx_local, d, n, ni->sid))
			return true;
		*reset = true;
		return false;
	}
	if (s->closing)
		return true;
	top = kcpx_native_rx_top(kcpx_session_native(s->ks));
	if (kcpx_session_open_native(s->ks, d, n, &body, &blen))
		return true;
	ep_authentic(s);
	if (!kcpx_addr_equal(from, &s->peer) && ni->ctr >= top)
		ep_roam(s, path, from, now);
	kcpx_ep_proto_event(s, EV_DATA, now);
	kcpx_session_input(s->ks, body, blen, now);
	kcpx_ep_wake(s);
	return true;
}

/*
 * Client: a datagram with a native header, for the session that owns the path (or, on a
 * shared path, the one with its sid). Returns false to let the kcptun path try it.
 */
static bool client_native_input(struct kcpx_ep *ep, struct kcpx_ep_sess *owner, uint8_t *d,
				size_t n, const struct kcpx_native_info *ni, uint32_t now)
{
	struct kcpx_ep_sess *s = owner ? owner : sid_lookup(ep, ni->sid);
	uint8_t *body;
	size_t blen;

	if (!s)
		return false;
	if (!is_native(s)) {
		/* a kcptun datagram naming our conv here: 2^-40, and KCP resends it */
		if (fell_back(s) && ni->sid == s->conv) {
			kcpx_ep_proto_late(s, d, n, ni, now);
			return true;
		}
		return false;
	}
	if (s->closing)
		return true;
	if (ni->type == KCPX_NT_RESP && s->state == EP_PROBE) {
		kcpx_ep_proto_resp(s, d, n, now);
		return true;
	}
	if (ni->type == KCPX_NT_RESET) {
		/* the server has no such session: its streams are gone, a new session starts */
		if (s->state == EP_NATIVE && ni->sid == s->conv &&
		    kcpx_native_reset_ok(ep->cfg.psk, d, n)) {
			ep->st.resets_taken++;
			kcpx_ep_close(s, "the server has no such session (it restarted?)");
		} else {
			ep->snmp->InErrs++;
		}
		return true;
	}
	if (ni->type != KCPX_NT_DATA || ni->sid != s->conv) {
		ep->snmp->InErrs++;
		return true;
	}
	if (kcpx_session_open_native(s->ks, d, n, &body, &blen))
		return true;
	ep_authentic(s);
	kcpx_ep_proto_event(s, EV_DATA, now);
	kcpx_session_input(s->ks, body, blen, now);
	kcpx_ep_wake(s);
	return true;
}

/* A kcptun-format body whose KCP (after a FEC data header) begins with PUSH sn 0. */
static bool kcptun_first_segment(const uint8_t *body, size_t blen)
{
	size_t off = kcpx_fec_is_fec(body, blen) ? KCPX_FEC_HDR : 0;

	if (off && (blen < KCPX_FEC_HDR || kcpx_get_le16(body + 4) != KCPX_FEC_DATA))
		return false;
	return blen >= off + 24 && body[off + 4] == 81 && kcpx_get_le32(body + off + 12) == 0;
}

/*
 * Server: close s (whose peer is the datagram's source) for a kcptun-format session with
 * the same peer, about to be opened by the caller (a client's fallback, a new
 * conversation). The owner keeps s's claim on the address for the new session
 * (kcpx_ep_sess_replaced), so that a copy of the datagram on another endpoint in the
 * meantime is handed here rather than opening a second session. Returns true when the
 * caller holds that claim now (the owner keeps a peer directory): it must call
 * ops.peer_release if no session opens.
 */
static bool ep_replace(struct kcpx_ep_sess *s, const char *why)
{
	struct kcpx_ep *ep = s->ep;

	s->replaced = ep->ops.peer_release != NULL;
	kcpx_ep_close(s, why);
	return s->replaced;
}

static void ep_input(struct kcpx_ep *ep, struct kcpx_ep_sess *owner, void *path,
		     const struct kcpx_addr *from, uint8_t *d, size_t n, uint32_t now)
{
	char abuf[KCPX_ADDRSTRLEN];
	uint8_t raw[KCPX_EP_DGRAM_MAX]; /* the datagram as received, for ops.peer_claim */
	struct kcpx_native_info ni;
	struct kcpx_ep_sess *s;
	/* claim: ask ops.peer_claim for the address before a session opens with it; held:
	 * the address is this endpoint's already, kept from the session replaced below */
	bool reset = false, claim = false, held = false;
	uint8_t *body;
	size_t blen;
	uint32_t conv;

	if (n > KCPX_EP_DGRAM_MAX) {
		ep->st.rx_truncated++;
		ep->snmp->InErrs++;
		return;
	}
	if (ep->cfg.psk && !kcpx_native_peek(d, n, &ni) &&
	    (ep->cfg.server ? server_native_input(ep, path, from, d, n, &ni, now, &reset)
			    : client_native_input(ep, owner, d, n, &ni, now)))
		return;
	if (ep->cfg.proto == KCPX_PROTO_KCPX) {
		ep->snmp->InErrs++; /* not the kcpx protocol */
		if (reset)
			ep_reset(ep, path, from, n, &ni, now);
		return;
	}
	/* before the in-place decryption: the owner decrypts what it is handed, and a claim
	 * (below) hands on the datagram as received */
	if (ep->cfg.server && !owner && !addr_lookup(ep, from)) {
		if (ep->ops.foreign_peer &&
		    ep->ops.foreign_peer(ep->user, path, from, ep->rx_local, d, n))
			return;
		if (ep->ops.peer_claim) {
			memcpy(raw, d, n);
			claim = true;
		}
	}
	if (kcpx_session_open(ep->cfg.crypt, ep->snmp, d, n, &body, &blen, &conv)) {
		if (reset)
			ep_reset(ep, path, from, n, &ni, now);
		return;
	}
	if (owner) {
		s = owner;
	} else {
		s = addr_lookup(ep, from);
		if (s && s->state == EP_ACCEPTED && conv == s->conv) {
			/*
			 * Our RESP did not reach the client in time: it gave up on the handshake
			 * and speaks kcptun's format under the same conv (its sid). Nothing came
			 * through the kcpx session yet, so nothing is lost by replacing it. Once
			 * an authenticated DATA packet arrived this never happens: kcptun's format
			 * (--crypt none above all) can be forged, a kcpx session cannot.
			 */
			ep->st.replaced++;
			kcpx_ep_log(
				ep, 1,
				"session %08x (%s): client fell back, replacing the kcpx session",
				s->conv, kcpx_addr_str(from, abuf, sizeof(abuf)));
			held = ep_replace(s, "replaced by a kcptun-format session");
			s = NULL;
		} else if (s && !is_native(s) && conv && s->conv != conv) {
			/* the peer restarted on the same address with a new conversation: only
			 * the first segment of one (as kcp-go), not a replayed old datagram */
			if (!kcptun_first_segment(body, blen)) {
				ep->st.unknown_peer++;
				return;
			}
			held = ep_replace(s, "peer began a new conversation");
			s = NULL;
		}
	}
	if (s && is_native(s))
		return; /* a native session takes native datagrams only */
	if (!s) {
		if (!ep->cfg.server || !conv || ep_admit(ep, from, false, d, n, now)) {
			ep->st.unknown_peer++;
			if (held)
				ep->ops.peer_release(ep->user, from);
			return;
		}
		/*
		 * Admitted: claim the address for this endpoint before the session opens
		 * (after the caps, so a refused flood takes no lock). A copy of the same
		 * first datagrams that reached another endpoint meanwhile went to the
		 * claimant, or comes here through foreign_peer: one session per address.
		 * A replacement holds the claim of the session it replaced.
		 */
		if (claim && ep->ops.peer_claim(ep->user, path, from, ep->rx_local, raw, n)) {
			adm_drop(ep);
			return;
		}
		s = ep_open(ep, path, from, conv, false, now);
		adm_drop(ep);
		if (!s) {
			if ((claim || held) && ep->ops.peer_release)
				ep->ops.peer_release(ep->user, from);
			return;
		}
	}
	if (s->closing)
		return;
	s->last_rx = now;
	kcpx_session_input(s->ks, body, blen, now);
	if (!s->proven)
		ep_prove(s);
	if (s->proven)
		ep_authentic(s);
	kcpx_ep_wake(s);
}

/* ---- client ----------------------------------------------------------------------- */

struct kcpx_ep_sess *kcpx_ep_pick(struct kcpx_ep *ep, uint32_t now, unsigned *slot)
{
	unsigned i = ep->rr++ % (unsigned)ep->cfg.conn;
	struct kcpx_ep_sess *s = ep->slots[i];

	*slot = i;
	if (s && ep->cfg.autoexpire > 0 &&
	    (int32_t)(now - s->created) >= ep->cfg.autoexpire * 1000) {
		/* kcptun: an expired session takes no new streams and is scavenged later */
		s->expired = true;
		ep->slots[i] = NULL;
		s = NULL;
	}
	if (s && !s->closing && !kcpx_session_dead(s->ks))
		return s;
	return NULL;
}

struct kcpx_ep_sess *kcpx_ep_connect(struct kcpx_ep *ep, unsigned slot, void *path,
				     const struct kcpx_addr *to, uint32_t now)
{
	struct kcpx_ep_sess *s;
	uint32_t conv;
	bool native;

	if (ep->cfg.server || slot >= (unsigned)ep->cfg.conn)
		return NULL;
	do
		ep->ops.random(ep->user, &conv, sizeof(conv));
	while (!conv);
	native = kcpx_ep_proto_probe(ep, conv);
	s = ep_open(ep, path, to, conv, native, now);
	if (!s)
		return NULL;
	if (native) {
		uint8_t rnd[KCPX_NATIVE_HS_RAND];
		int err;

		ep->ops.random(ep->user, rnd, sizeof(rnd));
		err = kcpx_native_hs_init(&s->hs, ep->cfg.psk, conv, rnd, ep->cfg.aes, s->hs_pkt);
		sodium_memzero(rnd, sizeof(rnd));
		if (err) {
			kcpx_ep_close(s, "out of memory");
			return NULL;
		}
		kcpx_ep_sess_xmit(s, s->hs_pkt, sizeof(s->hs_pkt));
	}
	ep->slots[slot] = s;
	return s;
}

/* ---- time ------------------------------------------------------------------------- */

void kcpx_ep_tick(struct kcpx_ep_sess *s, uint32_t now)
{
	if (s->closing || !kcpx_ep_proto_tick(s, now))
		return;
	kcpx_session_tick(s->ks, now);
	kcpx_ep_wake(s);
}

void kcpx_ep_second(struct kcpx_ep *ep, uint32_t now)
{
	const struct kcpx_ep_config *c = &ep->cfg;

	ep->ticks++;
	/* client: expired sessions live on for scavengettl, then close */
	for (struct kcpx_ep_sess *s = ep->all, *n; s; s = n) {
		n = s->next;
		if (!s->proven && (int32_t)(now - s->last_rx) >= UNPROVEN_IDLE_MS) {
			kcpx_ep_close(s, "its peer never answered");
			continue;
		}
		if (s->expired &&
		    (c->scavengettl < 0 ||
		     (int32_t)(now - s->created) >= (c->autoexpire + c->scavengettl) * 1000))
			kcpx_ep_close(s, "expired (autoexpire + scavengettl)");
		else if (s->retired && !kcpx_smux_num_streams(kcpx_session_smux(s->ks)))
			kcpx_ep_close(s, "retired: the server speaks kcpx");
	}
}

/* ---- setup and queries ------------------------------------------------------------ */

int kcpx_ep_limits_new(struct kcpx_ep_limits *l, int hsrate, int sessrate, int persource,
		       uint32_t seed)
{
	int err = 0;

	memset(l, 0, sizeof(*l));
	if (hsrate > 0)
		err = kcpx_ratelimit_new(&l->hs, HSRL_SLOTS, (uint32_t)hsrate, seed);
	if (!err && sessrate > 0)
		err = kcpx_ratelimit_new(&l->sess, SESSRL_SLOTS, (uint32_t)sessrate,
					 seed ^ 0x5e55u);
	if (!err && persource > 0)
		err = kcpx_srccount_new(&l->src, SRCCNT_SLOTS, seed ^ 0x50c7u);
	if (err)
		kcpx_ep_limits_free(l);
	return err;
}

void kcpx_ep_limits_free(struct kcpx_ep_limits *l)
{
	kcpx_ratelimit_free(l->hs);
	kcpx_ratelimit_free(l->sess);
	kcpx_srccount_free(l->src);
	memset(l, 0, sizeof(*l));
}

int kcpx_ep_new(struct kcpx_ep **out, const struct kcpx_ep_config *cfg,
		const struct kcpx_ep_ops *ops, void *user, struct kcpx_snmp *snmp)
{
	struct kcpx_ep *ep;
	int err;

	*out = NULL;
	if ((!cfg->server && cfg->conn < 1) || (cfg->proto == KCPX_PROTO_KCPX && !cfg->psk))
		return -EINVAL;
	ep = calloc(1, sizeof(*ep));
	if (!ep)
		return -ENOMEM;
	ep->cfg = *cfg;
	if (cfg->proto == KCPX_PROTO_KCPTUN)
		ep->cfg.psk = NULL;
	ep->ops = *ops;
	ep->user = user;
	ep->snmp = snmp;
	ep->sops = (struct kcpx_session_ops){
		.xmit = kcpx_ep_sess_xmit,
		.accept = ep_sess_accept,
		.readable = ep_sess_readable,
		.writable = ep_sess_writable,
		.refused = ep_sess_refused,
	};
	ops->random(user, &ep->seed, sizeof(ep->seed));
	ep->hcap = EP_HASH_MIN;
	ep->by_addr = calloc(ep->hcap, sizeof(*ep->by_addr));
	ep->by_sid = calloc(ep->hcap, sizeof(*ep->by_sid));
	if (!ep->by_addr || !ep->by_sid) {
		err = -ENOMEM;
		goto err;
	}
	ep->client_native = ep->cfg.psk && !cfg->server;
	ep->hs_tries_auto = HS_TRIES_AUTO;
	if (!cfg->server) {
		ep->slots = calloc((size_t)cfg->conn, sizeof(*ep->slots));
		if (!ep->slots) {
			err = -ENOMEM;
			goto err;
		}
	}
	if (ep->cfg.psk && cfg->server) {
		err = kcpx_ratelimit_new(&ep->rstrl, HSRL_SLOTS, KCPX_EP_RESET_RATE, ~ep->seed);
		if (err)
			goto err;
	}
	if (cfg->server && !cfg->limits) {
		err = kcpx_ep_limits_new(&ep->own, ep->cfg.psk ? cfg->hsrate : 0, cfg->sessrate,
					 cfg->persource, ep->seed);
		if (err)
			goto err;
	}
	if (cfg->server) {
		const struct kcpx_ep_limits *l = cfg->limits ? cfg->limits : &ep->own;

		ep->hsrl = ep->cfg.psk ? l->hs : NULL;
		ep->sessrl = l->sess;
		ep->srccnt = l->src;
	}
	*out = ep;
	return 0;
err:
	kcpx_ep_limits_free(&ep->own);
	kcpx_ratelimit_free(ep->rstrl);
	free(ep->slots);
	free(ep->by_addr);
	free(ep->by_sid);
	free(ep);
	return err;
}

void kcpx_ep_free(struct kcpx_ep *ep)
{
	if (!ep)
		return;
	while (ep->all)
		kcpx_ep_close(ep->all, "shutdown");
	kcpx_ep_reap(ep);
	adm_drop(ep);
	kcpx_ep_limits_free(&ep->own);
	kcpx_ratelimit_free(ep->rstrl);
	free(ep->slots);
	free(ep->by_addr);
	free(ep->by_sid);
	free(ep);
}

void kcpx_ep_set_live(struct kcpx_ep *ep, int reprobe, int autoexpire, int scavengettl,
		      uint32_t keepalive_ms, uint32_t keepalive_timeout_ms)
{
	ep->cfg.reprobe = reprobe;
	ep->cfg.autoexpire = autoexpire;
	ep->cfg.scavengettl = scavengettl;
	ep->cfg.session.smux.keepalive_ms = keepalive_ms;
	ep->cfg.session.smux.keepalive_timeout_ms = keepalive_timeout_ms;
}

struct kcpx_ep_sess *kcpx_ep_first(struct kcpx_ep *ep)
{
	return ep->all;
}

struct kcpx_ep_sess *kcpx_ep_next(struct kcpx_ep_sess *s)
{
	return s->next;
}

struct kcpx_session *kcpx_ep_session(struct kcpx_ep_sess *s)
{
	return s->ks;
}

void *kcpx_ep_sess_user(const struct kcpx_ep_sess *s)
{
	return s->user;
}

uint32_t kcpx_ep_sess_conv(const struct kcpx_ep_sess *s)
{
	return s->conv;
}

const struct kcpx_addr *kcpx_ep_sess_peer(const struct kcpx_ep_sess *s)
{
	return &s->peer;
}

bool kcpx_ep_sess_replaced(const struct kcpx_ep_sess *s)
{
	return s->replaced;
}

bool kcpx_ep_sess_closing(const struct kcpx_ep_sess *s)
{
	return s->closing;
}

bool kcpx_ep_sess_expired(const struct kcpx_ep_sess *s)
{
	return s->expired;
}

const char *kcpx_ep_sess_proto(const struct kcpx_ep_sess *s)
{
	if (!is_native(s))
		return "kcptun";
	return s->state == EP_PROBE ? "probe" : "kcpx";
}

unsigned kcpx_ep_count(const struct kcpx_ep *ep)
{
	return ep->count;
}

/* Every datagram: ep_input's rules; the source of one that failed its check is kept for
 * the mismatch hint (app/diag.c), which names the peer, unless it is the late traffic of a
 * session closed here (a --nocomp mismatch closes one at its first stream). */
bool kcpx_ep_input_at(struct kcpx_ep *ep, struct kcpx_ep_sess *owner, void *path,
		      const struct kcpx_addr *from, const struct kcpx_ip *local, uint8_t *d,
		      size_t n, uint32_t now)
{
	uint64_t bad = ep->snmp->InCsumErrors + ep->hs_stats.rx_tag, now_bad;

	ep->rx_authentic = false;
	ep->rx_local =
		local && (local->family == AF_INET || local->family == AF_INET6) ? local : NULL;
	ep_input(ep, owner, path, from, d, n, now);
	ep->rx_local = NULL;
	now_bad = ep->snmp->InCsumErrors + ep->hs_stats.rx_tag;
	if (now_bad == bad)
		return ep->rx_authentic;
	if (closed_recently(ep, from))
		ep->st.late_closed += now_bad - bad;
	else
		ep->st.bad_from = *from;
	return ep->rx_authentic;
}

bool kcpx_ep_input(struct kcpx_ep *ep, struct kcpx_ep_sess *owner, void *path,
		   const struct kcpx_addr *from, uint8_t *d, size_t n, uint32_t now)
{
	return kcpx_ep_input_at(ep, owner, path, from, NULL, d, n, now);
}

const struct kcpx_ip *kcpx_ep_sess_local(const struct kcpx_ep_sess *s)
{
	return &s->local;
}

void kcpx_ep_stats(const struct kcpx_ep *ep, struct kcpx_ep_stats *st)
{
	*st = ep->st;
	st->hs_bad_tag = ep->hs_stats.rx_tag;
	st->kcptun_mode = ep->cfg.proto != KCPX_PROTO_KCPX && ep->kcptun_mode;
	st->kcptun_for = ep->ticks - ep->kcptun_since;
}
