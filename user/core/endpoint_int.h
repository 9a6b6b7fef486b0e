/* SPDX-License-Identifier: MIT */
/*
 * What user/core/endpoint.c (tables, lifecycle, receive, admission) and user/core/proto.c
 * (the --proto auto state machine) share inside the endpoint; nothing outside them
 * includes it. The public contract is core/endpoint.h.
 */
#ifndef KCPX_CORE_ENDPOINT_INT_H
#define KCPX_CORE_ENDPOINT_INT_H

#include "core/endpoint.h"
#include "core/native.h"
#include "core/session.h"
#include "core/srccount.h"

/* Buckets of the address and sid tables: from EP_HASH_MIN, doubling while there are more
 * sessions than buckets, up to EP_HASH_MAX (--maxsessions bounds the count). */
#define EP_HASH_MIN 64
#define EP_HASH_MAX (1u << 20)
/* Client handshake resends: every KCPX_SESSION_HS_POLL ms; auto gives up sooner. */
#define HS_TRIES_AUTO 10
#define HS_TRIES_KCPX 50
/* After a fallback the handshake state is kept this long to recognise a late RESP. */
#define HS_LATE_KEEP_MS (HS_TRIES_KCPX * KCPX_SESSION_HS_POLL * 2)

/*
 * A session's protocol state.
 *   KCPTUN          kcptun's format from the start
 *   PROBE           client: INIT sent, no RESP yet (the session holds its output)
 *   ACCEPTED        server: INIT accepted, RESP sent, no authenticated DATA yet
 *   NATIVE          keys both ways, and the peer proved it has them
 *   FALLBACK_WATCH  client: no RESP in time, speaks kcptun; the handshake state is kept
 *                   to recognise a late RESP
 *   FALLBACK        client: as FALLBACK_WATCH, handshake state gone
 */
enum ep_state {
	EP_KCPTUN,
	EP_PROBE,
	EP_ACCEPTED,
	EP_NATIVE,
	EP_FALLBACK_WATCH,
	EP_FALLBACK,
};

enum ep_event {
	EV_RESP,	  /* client: the server's RESP opened under our handshake */
	EV_DATA,	  /* an authenticated DATA packet arrived */
	EV_PROBE_TIMEOUT, /* client: no RESP after the probe's tries */
	EV_LATE_RESP,	  /* client, fell back: the RESP came after all */
	EV_KEEP_EXPIRED,  /* client, fell back: no late RESP to wait for any more */
};

struct kcpx_ep_sess {
	struct kcpx_ep *ep;
	struct kcpx_session *ks;
	void *user; /* the owner's, from ops->opened */
	void *path;
	struct kcpx_addr peer;
	struct kcpx_ip local; /* answers leave from it: see kcpx_ep_input_at */
	uint32_t conv;	      /* the native protocol's sid */
	uint32_t created;
	enum ep_state state;
	bool closing;
	bool expired;	/* client --autoexpire: takes no new streams */
	bool retired;	/* client: a late RESP; closes when its streams are done */
	bool be_native; /* ops->native_up took it: tell ops->native_down at the end */
	bool proven;	/* see UNPROVEN_TX: the peer's address answers */
	bool replaced;	/* closing for a new session with its peer: kcpx_ep_sess_replaced */
	bool src_held;	/* holds src in ep->srccnt (--persource) */
	struct kcpx_srcref src;
	uint16_t tx_budget; /* unproven: datagrams it may still send */
	uint32_t last_rx;
	struct kcpx_native_hs *hs;	    /* client: PROBE and FALLBACK_WATCH */
	uint8_t hs_pkt[KCPX_NATIVE_HS_LEN]; /* client: our INIT; server: our RESP */
	uint64_t hs_ctr;		    /* server: counter of the INIT it answered */
	int hs_tries;
	struct kcpx_ep_sess *anext;	      /* address table (server) */
	struct kcpx_ep_sess *snext;	      /* sid table */
	struct kcpx_ep_sess *next, **pprev;   /* all sessions */
	struct kcpx_ep_sess *unext, **upprev; /* unproven ones (kcpx_ep.unproven) */
	struct kcpx_ep_sess *gnext;	      /* closed, to reap */
};

/* what ep->recent remembers, and for how many ticks (seconds) */
#define EP_RECENT	16
#define EP_RECENT_TICKS 30

struct kcpx_ep {
	struct kcpx_ep_config cfg;
	struct kcpx_ep_ops ops;
	void *user;
	struct kcpx_snmp *snmp;
	struct kcpx_session_ops sops;
	bool rx_authentic; /* the datagram in kcpx_ep_input is authentic (its return) */
	/* ... and the address it was sent to; NULL: not known */
	const struct kcpx_ip *rx_local;
	uint32_t seed; /* of the address hash */
	struct kcpx_ep_sess **by_addr, **by_sid;
	unsigned hcap; /* buckets in each, a power of 2 */
	struct kcpx_ep_sess *all;
	/* the sessions not proven yet (at most UNPROVEN_MAX): what ep_admit's per-source
	 * count walks, so a new peer costs that much, not a walk over every session */
	struct kcpx_ep_sess *unproven;
	uint64_t adm_walked; /* sessions that walk looked at (test_endpoint test_admit_walk) */
	struct kcpx_ep_sess *garbage;
	unsigned count;
	struct kcpx_ep_sess **slots; /* client: --conn */
	unsigned rr;
	struct kcpx_ratelimit *hsrl;   /* server with --hsrate > 0 */
	struct kcpx_ratelimit *sessrl; /* server with --sessrate > 0 */
	struct kcpx_srccount *srccnt;  /* server with --persource > 0 */
	struct kcpx_ep_limits own;     /* what hsrl, sessrl, srccnt are without cfg.limits */
	/* --persource: the count ep_admit took for the session about to open (ep_open keeps
	 * it; adm_drop gives it back if none opened) */
	struct kcpx_srcref adm_ref;
	bool adm_held;
	struct kcpx_ratelimit *rstrl;  /* server with the kcpx protocol: RESETs per address */
	uint32_t adm_stamp, adm_count; /* refusals in this second, logged once a second */
	struct kcpx_native_stats hs_stats;
	/*
	 * client, --proto auto: a probe went unanswered at tick kcptun_since (seconds), so
	 * new sessions speak kcptun's format until --reprobe seconds later. hs_tries_auto:
	 * how many polls a probe waits (longer once a late RESP showed the round trip).
	 */
	bool client_native;
	bool kcptun_mode;
	bool server_spoke_kcpx; /* client: a RESP came in time once: never fall back now */
	uint32_t ticks, kcptun_since;
	int hs_tries_auto;
	uint32_t log_stamp, log_count; /* rate limit of data-path log lines */
	uint32_t hint_ms;	       /* the last close line that named a likely cause */
	bool hinted;
	/*
	 * The peers of the last EP_RECENT sessions closed here, and the tick of each
	 * close: what such a peer sends for a while after it (retransmissions, a session
	 * the peer has not given up yet) fails its check, and is not a key mismatch
	 * (st.late_closed, which app/diag.c leaves out of its --key/--crypt hint).
	 */
	struct {
		struct kcpx_addr peer;
		uint32_t tick;
	} recent[EP_RECENT];
	unsigned nrecent, recent_next;
	struct kcpx_ep_stats st;
};

static inline bool is_native(const struct kcpx_ep_sess *s)
{
	return s->state == EP_PROBE || s->state == EP_ACCEPTED || s->state == EP_NATIVE;
}

static inline bool fell_back(const struct kcpx_ep_sess *s)
{
	return s->state == EP_FALLBACK_WATCH || s->state == EP_FALLBACK;
}

/* endpoint.c: helpers proto.c uses */
void kcpx_ep_log(struct kcpx_ep *ep, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void kcpx_ep_wake(struct kcpx_ep_sess *s);
void kcpx_ep_sess_xmit(void *user, const uint8_t *d, size_t n);
void kcpx_ep_sid_unlink(struct kcpx_ep_sess *s);
void kcpx_ep_unslot(struct kcpx_ep_sess *s);
int kcpx_ep_native_up(struct kcpx_ep_sess *s, struct kcpx_native *n);

/* proto.c: the protocol state machine */
void kcpx_ep_proto_event(struct kcpx_ep_sess *s, enum ep_event ev, uint32_t now);
/* client: a RESP for a session in PROBE (d, n: the datagram) */
void kcpx_ep_proto_resp(struct kcpx_ep_sess *s, const uint8_t *d, size_t n, uint32_t now);
/* client: a native datagram for a session that fell back */
void kcpx_ep_proto_late(struct kcpx_ep_sess *s, const uint8_t *d, size_t n,
			const struct kcpx_native_info *ni, uint32_t now);
/* client: does the new session conv probe for the native protocol? */
bool kcpx_ep_proto_probe(struct kcpx_ep *ep, uint32_t conv);
/* a session's handshake timers, each tick; false when it closed the session */
bool kcpx_ep_proto_tick(struct kcpx_ep_sess *s, uint32_t now);

#endif
