/* SPDX-License-Identifier: MIT */
/*
 * One tunnel end, I/O-free: the rules that decide what a datagram from the network may do.
 *
 *   datagram (from, path) -> kcpx_ep_input() -> demux: native header or kcptun format
 *        -> session by owner / address / sid -> handshake, fallback, replacement, input
 *        -> ops->wake(session): the owner pumps it (kcpx_session_pump) and re-arms its
 *           timer at kcpx_session_deadline(); at the deadline it calls kcpx_ep_tick()
 *   session output -> ops->xmit(path, peer address, bytes)
 *
 * The endpoint owns the session table (by peer address and by sid/conv), each session's
 * kcpx_session and handshake state, the --proto auto state of a client, the --hsrate
 * buckets and the client's --conn slots. The owner (user/app) owns the paths (sockets),
 * the TCP side of streams and the clock; it gets its per-session state in through
 * ops->opened and back through ops->closed and ops->release. Randomness and log lines
 * come and go through ops too, so unit tests and fuzzers drive an endpoint with a virtual
 * clock and no root. docs/PROTOCOL.md §6-7 describes the rules kept here.
 *
 * Sessions closed during a call stay allocated until kcpx_ep_reap(): call it at the end
 * of a loop turn, when no pointer to a session is held any more.
 */
#ifndef KCPX_CORE_ENDPOINT_H
#define KCPX_CORE_ENDPOINT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/addr.h"
#include "core/session.h"
#include "kcpx_native.h"
#include "kcpx_snmp.h"

#define KCPX_EP_DGRAM_MAX 1500 /* longer datagrams are counted (rx_truncated) and dropped */

enum kcpx_proto {
	KCPX_PROTO_AUTO = 0, /* server: both formats; client: kcpx, falling back to kcptun */
	KCPX_PROTO_KCPX,     /* native only */
	KCPX_PROTO_KCPTUN,   /* kcptun's format only */
};
/* "auto", "kcpx", "kcptun"; parse returns 0 or -EINVAL. */
static inline const char *kcpx_proto_name(enum kcpx_proto p)
{
	return p == KCPX_PROTO_KCPX ? "kcpx" : p == KCPX_PROTO_KCPTUN ? "kcptun" : "auto";
}

static inline int kcpx_proto_parse(const char *s, enum kcpx_proto *out)
{
	if (!strcmp(s, "auto"))
		*out = KCPX_PROTO_AUTO;
	else if (!strcmp(s, "kcpx"))
		*out = KCPX_PROTO_KCPX;
	else if (!strcmp(s, "kcptun"))
		*out = KCPX_PROTO_KCPTUN;
	else
		return -EINVAL;
	return 0;
}

struct kcpx_crypt;
struct kcpx_native_psk;
struct kcpx_ep;
struct kcpx_ep_sess;

/*
 * The per-source admission limits (--hsrate, --sessrate, --persource) that a process's
 * endpoints (one per engine thread) share, so that each limit holds for the process and
 * not once per engine. Lock-free (ratelimit.h, srccount.h): every engine may call in at
 * once. Made by the owner once, freed after the last endpoint that uses it; a NULL
 * member is no limit.
 */
struct kcpx_ep_limits {
	struct kcpx_ratelimit *hs;   /* --hsrate: good kcpx INITs per second per address */
	struct kcpx_ratelimit *sess; /* --sessrate: new sessions per second per source */
	struct kcpx_srccount *src;   /* --persource: sessions held per source */
};
/* 0 (a rate or count of 0 leaves its member NULL) or -ENOMEM; seed: random. */
int kcpx_ep_limits_new(struct kcpx_ep_limits *l, int hsrate, int sessrate, int persource,
		       uint32_t seed);
void kcpx_ep_limits_free(struct kcpx_ep_limits *l);

struct kcpx_ep_config {
	bool server;
	enum kcpx_proto proto;
	int hsrate; /* server: good INITs per second per source address; 0: no limit */
	/* server admission, every format (docs/SECURITY.md): sessions in all, from one source
	 * (an IPv4 address, an IPv6 /64), new ones per second per source; 0: no limit */
	int maxsessions, persource, sessrate;
	int reprobe;	 /* client, auto: s after a fallback before new sessions probe; 0: never */
	int conn;	 /* client: --conn slots */
	int autoexpire;	 /* client: s before a slot's session takes no new streams; 0: never */
	int scavengettl; /* client: s an expired session lives on; < 0: close at once */
	int datashard, parityshard;	    /* the FEC shape XDP tracks for native sessions */
	struct kcpx_session_config session; /* template: conv and native set per session */
	struct kcpx_crypt *crypt;	    /* kcptun format; not owned */
	const struct kcpx_native_psk *psk;  /* NULL: kcptun only; not owned */
	bool aes;			    /* this CPU has AES: offer/accept AES-256-GCM */
	/* server: the process's shared limits (not owned); NULL: the endpoint makes its own
	 * from hsrate, sessrate and persource */
	const struct kcpx_ep_limits *limits;
};

struct kcpx_ep_ops {
	/* A datagram for `to` on `path` (the path the session was opened on), sent from our
	 * address `from` (NULL: not known, the backend's choice). A server bound to any
	 * address answers each peer from the address it wrote to, or its connected socket
	 * drops the answer: from is the session's local address (kcpx_ep_input_at), or, for
	 * an answer to one datagram that proves nothing (a handshake RESP, a RESET), the
	 * address that datagram was sent to. */
	void (*xmit)(void *user, void *path, const struct kcpx_addr *to, const struct kcpx_ip *from,
		     const uint8_t *d, size_t n);
	/* A session was created on path. Return the owner's per-session state (never NULL
	 * for a live session), or NULL to refuse it (then it is freed at once). */
	void *(*opened)(void *user, struct kcpx_ep_sess *s, void *path);
	/* The session is closing: drop its streams and timer (the session still works).
	 * When kcpx_ep_sess_replaced() says so, a new kcptun-format session with the same
	 * peer is about to open here: keep the address claimed (peer_claim) for it. */
	void (*closed)(void *user, void *sess_user);
	/* The session is being freed (from kcpx_ep_reap): release sess_user and its path. */
	void (*release)(void *user, void *sess_user);
	/* The session has work: pump it and re-arm its timer once this turn is over. */
	void (*wake)(void *user, void *sess_user);
	/* Native session keys exist / are gone: the XDP map entry (optional, may be NULL).
	 * native_up's value holds keys: the endpoint wipes it after the call. Non-zero
	 * return closes the session. */
	int (*native_up)(void *user, uint32_t sid, const struct kcpx_native_sess *v);
	void (*native_down)(void *user, uint32_t sid);
	/* Streams of a session (sess_user), as kcpx_session_ops gives them. */
	void (*accept)(void *sess_user, uint32_t sid);
	void (*readable)(void *sess_user, uint32_t sid);
	void (*writable)(void *sess_user, uint32_t sid);
	void (*refused)(void *sess_user, uint32_t sid, unsigned n); /* may be NULL */
	void (*random)(void *user, void *buf, size_t n);
	/* Server, optional: a native DATA packet for a sid this endpoint has no session for.
	 * An owner that runs several endpoints (one per thread) may know another that has it:
	 * return true when the datagram (n bytes, unchanged) went there; false lets this
	 * endpoint answer it as unknown (a RESET). */
	bool (*foreign)(void *user, void *path, const struct kcpx_addr *from,
			const struct kcpx_ip *local, const uint8_t *d, size_t n, uint32_t sid);
	/* Server, optional: a datagram (as received, before it is decrypted) from an address
	 * this endpoint has no session with. Another endpoint of the same owner may hold a
	 * kcptun-format session with that address (its datagrams reached another thread: an
	 * RSS change moved them to another RX queue): return true when it went there; false
	 * lets this endpoint take it (a new session, or dropped). local (both ops): the
	 * address the datagram was sent to (NULL: not known), for kcpx_ep_input_at. */
	bool (*foreign_peer)(void *user, void *path, const struct kcpx_addr *from,
			     const struct kcpx_ip *local, const uint8_t *d, size_t n);
	/* Server, optional (with sid_release): a native INIT with a good tag for a sid this
	 * endpoint has no session for. Copies of one INIT (a resend, a copy the NIC put on
	 * another RX queue) may reach several endpoints of one owner at once: the first to
	 * claim the sid opens the session, the others hand their copy to it, as foreign
	 * does DATA, so that one sid never has two sessions (two sets of keys, of which XDP
	 * holds one). Atomic: return true when another endpoint holds or claimed the sid and
	 * the datagram went there; false when the sid is this endpoint's (claimed, or the
	 * owner cannot tell), which then opens the session or calls sid_release. */
	bool (*sid_claim)(void *user, void *path, const struct kcpx_addr *from,
			  const struct kcpx_ip *local, const uint8_t *d, size_t n, uint32_t sid);
	/* A sid this endpoint claimed opened no session here (refused, out of memory). */
	void (*sid_release)(void *user, uint32_t sid);
	/* Server, optional (with peer_release): a kcptun-format datagram (d, n as received,
	 * before decryption) about to open a session with from, which foreign_peer found
	 * nobody's. Copies of a peer's first datagrams may reach several endpoints at once
	 * (two RX queues): the first to claim the address opens the session, the others
	 * hand their copies to it, so that one address never has two kcptun-format
	 * sessions (each taking the datagrams of its own queue: half a conversation each).
	 * Atomic, as sid_claim: true when another endpoint holds or claimed the address and
	 * the datagram went there; false when it is this endpoint's, which then opens the
	 * session or calls peer_release. */
	bool (*peer_claim)(void *user, void *path, const struct kcpx_addr *from,
			   const struct kcpx_ip *local, const uint8_t *d, size_t n);
	/* An address this endpoint claimed, or kept from a replaced session (below), opened
	 * no session here. */
	void (*peer_release)(void *user, const struct kcpx_addr *from);
	/* level: 0 warn, 1 info (the app's levels). ratelimited lines are already limited. */
	void (*log)(void *user, int level, const char *msg);
};

/* What `kcpx status` prints besides the sessions. */
struct kcpx_ep_stats {
	uint64_t rx_truncated;	   /* longer than KCPX_EP_DGRAM_MAX */
	uint64_t unknown_peer;	   /* kcptun format from no session we know, not opening one */
	uint64_t late_native;	   /* client: kcpx packets for a session that fell back */
	uint64_t replaced;	   /* server: kcpx sessions replaced when their client fell back */
	uint64_t hs_limited;	   /* server: INITs with a good tag refused by --hsrate */
	uint64_t hs_bad_tag;	   /* kcpx handshakes whose tag failed: another key (or forged) */
	uint64_t late_closed;	   /* ... of those and InCsumErrors, from the peer of a session
				    * closed here in the last 30 s: its late packets */
	struct kcpx_addr bad_from; /* source of the last datagram that failed decryption or
				    * its tag (InCsumErrors, hs_bad_tag) not counted in
				    * late_closed; len 0: none */
	uint64_t init_raced;	   /* server: an INIT came again from another address */
	uint64_t admit_refused;	   /* server: new sessions refused by the caps or --sessrate */
	uint64_t unproven_drop;	   /* server: datagrams not sent to a peer that never answered */
	unsigned pending;	   /* server: kcptun-format sessions whose peer never answered */
	uint64_t roamed;	   /* server: sessions moved to a new peer address */
	uint64_t resets_sent;	   /* server: RESETs for DATA with an unknown sid */
	uint64_t reset_limited;	   /* server: ... not sent, over the per-address rate */
	uint64_t resets_taken;	   /* client: sessions closed by the server's RESET */
	bool kcptun_mode;	   /* client, auto: new sessions speak kcptun for now */
	uint32_t kcptun_for;	   /* ... since this many seconds */
};

/* 0, -EINVAL (impossible config), -ENOMEM. snmp: counters the sessions count into. */
int kcpx_ep_new(struct kcpx_ep **out, const struct kcpx_ep_config *cfg,
		const struct kcpx_ep_ops *ops, void *user, struct kcpx_snmp *snmp);
/* Closes every session ("shutdown"), reaps them and frees the endpoint. NULL is fine. */
void kcpx_ep_free(struct kcpx_ep *ep);

/*
 * One received datagram (d is changed in place). path: where it came from (the owner's
 * handle, given back in xmit). owner: on a client, the session that owns this path (each
 * client session has its own socket), else NULL. Returns true when the datagram is as
 * authentic as its format allows (what the endpoint learns a session's local address
 * from, below): a native DATA whose tag and replay window passed, or a kcptun-format one that went into
 * a session whose peer has answered (proven; kcptun's format has no cryptographic
 * proof). A handshake, a forgery, a replay, or a new unproven session: false.
 */
bool kcpx_ep_input(struct kcpx_ep *ep, struct kcpx_ep_sess *owner, void *path,
		   const struct kcpx_addr *from, uint8_t *d, size_t n, uint32_t now);
/*
 * The same, with local: our address the datagram was sent to (NULL or family 0: not
 * known). A session answers from the local address of the datagram that opened it, and
 * from then on of its authentic datagrams only (the return above), so that a forged
 * datagram from a peer's address to another of our addresses cannot move where that
 * peer's answers go, proven or not. An answer to one datagram that proves nothing (a
 * RESP, a RESET) leaves from that datagram's local address.
 */
bool kcpx_ep_input_at(struct kcpx_ep *ep, struct kcpx_ep_sess *owner, void *path,
		      const struct kcpx_addr *from, const struct kcpx_ip *local, uint8_t *d,
		      size_t n, uint32_t now);
/* The local address s answers from (family 0: not known). */
const struct kcpx_ip *kcpx_ep_sess_local(const struct kcpx_ep_sess *s);

/*
 * Client: the session for a new stream. pick gives a live --conn slot's session (round
 * robin; a session past --autoexpire leaves its slot), or NULL and in *slot the slot to
 * fill: then open a path to the server and connect (a new conv, the protocol --proto and
 * the fallback state choose, the INIT sent). connect returns NULL when it failed.
 */
struct kcpx_ep_sess *kcpx_ep_pick(struct kcpx_ep *ep, uint32_t now, unsigned *slot);
struct kcpx_ep_sess *kcpx_ep_connect(struct kcpx_ep *ep, unsigned slot, void *path,
				     const struct kcpx_addr *to, uint32_t now);

/* The session's deadline passed: handshake resends and timeouts, then kcpx_session_tick. */
void kcpx_ep_tick(struct kcpx_ep_sess *s, uint32_t now);
/* Once a second: reprobe clock, --autoexpire + --scavengettl closes. */
void kcpx_ep_second(struct kcpx_ep *ep, uint32_t now);
void kcpx_ep_close(struct kcpx_ep_sess *s, const char *why);
void kcpx_ep_reap(struct kcpx_ep *ep);

/*
 * A configuration reload: the timers and the smux keepalive of sessions opened from now
 * on (the caller updates open sessions' smux itself). Everything else is fixed for the
 * endpoint's life.
 */
void kcpx_ep_set_live(struct kcpx_ep *ep, int reprobe, int autoexpire, int scavengettl,
		      uint32_t keepalive_ms, uint32_t keepalive_timeout_ms);
struct kcpx_ep_sess *kcpx_ep_first(struct kcpx_ep *ep);
struct kcpx_ep_sess *kcpx_ep_next(struct kcpx_ep_sess *s);
struct kcpx_session *kcpx_ep_session(struct kcpx_ep_sess *s);
void *kcpx_ep_sess_user(const struct kcpx_ep_sess *s);
uint32_t kcpx_ep_sess_conv(const struct kcpx_ep_sess *s);
const struct kcpx_addr *kcpx_ep_sess_peer(const struct kcpx_ep_sess *s);
bool kcpx_ep_sess_closing(const struct kcpx_ep_sess *s);
/*
 * Server, with peer_release: s closes to be replaced by a kcptun-format session with the
 * same peer address on this endpoint (a client that fell back from an unanswered kcpx
 * session, a peer that began a new conversation). Its claim on the address passes to the
 * new session, with no moment in which the address is nobody's: a copy of the datagram
 * on another endpoint is handed here meanwhile, as for a first datagram. If the new
 * session does not open (refused, out of memory), the endpoint calls peer_release.
 */
bool kcpx_ep_sess_replaced(const struct kcpx_ep_sess *s);
bool kcpx_ep_sess_expired(const struct kcpx_ep_sess *s);
/* "kcpx" (native), "probe" (a client's handshake under way), "kcptun" (its format) */
const char *kcpx_ep_sess_proto(const struct kcpx_ep_sess *s);
unsigned kcpx_ep_count(const struct kcpx_ep *ep);
void kcpx_ep_stats(const struct kcpx_ep *ep, struct kcpx_ep_stats *st);

#endif
