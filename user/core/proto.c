// SPDX-License-Identifier: MIT
/*
 * The --proto auto state machine of the endpoint (docs/PROTOCOL.md §7): a session's
 * protocol is one of enum ep_state (core/endpoint_int.h), and every change of it goes
 * through kcpx_ep_proto_event(), which also does what the change implies (keys, counters,
 * log lines). The client side decides here whether a new session probes, when a probe
 * gives up, and what a late RESP does; endpoint.c feeds it the events.
 */
#include "core/endpoint_int.h"

#include <sodium.h>

/* The one place a session's protocol state changes. */
void kcpx_ep_proto_event(struct kcpx_ep_sess *s, enum ep_event ev, uint32_t now)
{
	struct kcpx_ep *ep = s->ep;
	uint32_t late;
	int tries;

	switch (ev) {
	case EV_RESP: /* PROBE -> NATIVE: a kcpx server answers, later sessions use it too */
		kcpx_native_hs_free(s->hs);
		s->hs = NULL;
		s->state = EP_NATIVE;
		ep->kcptun_mode = false;
		ep->server_spoke_kcpx = true;
		break;
	case EV_DATA: /* ACCEPTED -> NATIVE: the client has the keys; no replacement now */
		if (s->state == EP_ACCEPTED)
			s->state = EP_NATIVE;
		break;
	case EV_PROBE_TIMEOUT: /* PROBE -> FALLBACK_WATCH */
		/*
		 * --proto auto: no kcpx server answered. This session and the next ones for
		 * --reprobe s speak kcptun; the handshake state stays for a while so that a
		 * late RESP can be recognised.
		 */
		kcpx_ep_log(
			ep, 0,
			"session %08x: no kcpx answer, falling back to the kcptun protocol%s "
			"(weaker: no forward secrecy, no replay window; --proto kcpx forbids it)",
			s->conv, ep->cfg.reprobe ? "" : " for good (--reprobe 0)");
		s->state = EP_FALLBACK_WATCH;
		kcpx_ep_sid_unlink(s); /* the sid is free for a native session again */
		s->snext = NULL;
		ep->kcptun_mode = true;
		ep->kcptun_since = ep->ticks;
		kcpx_session_fallback(s->ks, ep->cfg.crypt);
		break;
	case EV_LATE_RESP: /* FALLBACK_WATCH -> FALLBACK, retired; new sessions probe again */
		/*
		 * The session keeps kcptun's format, because the server replaces its kcpx
		 * session when our kcptun-format datagrams arrive, and switching back could race
		 * with that. But one slow answer must not make a session weaker and slower for
		 * its whole life: it takes no new streams (they go to a new kcpx session) and
		 * closes once its streams are done. The RESP proves a kcpx server and shows the
		 * round trip: later sessions probe again at once and wait longer for it.
		 */
		late = now - s->created;
		kcpx_native_hs_free(s->hs);
		s->hs = NULL;
		s->state = EP_FALLBACK;
		tries = (int)(2 * late / KCPX_SESSION_HS_POLL) + 1;
		if (tries > HS_TRIES_KCPX)
			tries = HS_TRIES_KCPX;
		if (tries > ep->hs_tries_auto)
			ep->hs_tries_auto = tries;
		ep->kcptun_mode = false;
		s->expired = true;
		s->retired = true;
		kcpx_ep_unslot(s);
		kcpx_ep_log(
			ep, 1,
			"session %08x: late kcpx answer from the server (%u ms after the first "
			"INIT): the session stays kcptun and takes no new streams; new sessions "
			"try kcpx for up to %d ms",
			s->conv, late, ep->hs_tries_auto * KCPX_SESSION_HS_POLL);
		break;
	case EV_KEEP_EXPIRED: /* FALLBACK_WATCH -> FALLBACK */
		kcpx_native_hs_free(s->hs);
		s->hs = NULL;
		s->state = EP_FALLBACK;
		break;
	}
}

void kcpx_ep_proto_resp(struct kcpx_ep_sess *s, const uint8_t *d, size_t n, uint32_t now)
{
	struct kcpx_ep *ep = s->ep;
	struct kcpx_native *nat;

	if (kcpx_native_hs_finish(s->hs, d, n, &nat)) {
		ep->snmp->InErrs++;
		return;
	}
	kcpx_session_set_native(s->ks, nat);
	kcpx_ep_proto_event(s, EV_RESP, now);
	kcpx_ep_log(ep, 1, "session %08x: kcpx protocol, %s", s->conv,
		    kcpx_native_cipher(nat) == KCPX_NATIVE_AESGCM ? "aes-256-gcm"
								  : "xchacha20-poly1305");
	if (kcpx_ep_native_up(s, nat)) {
		kcpx_ep_close(s, "the XDP program cannot take the session");
		return;
	}
	kcpx_ep_wake(s);
}

/*
 * Client, --proto auto: a native packet for a session that fell back. Counted; a RESP
 * that opens under the kept handshake state is the late answer.
 */
void kcpx_ep_proto_late(struct kcpx_ep_sess *s, const uint8_t *d, size_t n,
			const struct kcpx_native_info *ni, uint32_t now)
{
	struct kcpx_native *nat;

	s->ep->st.late_native++;
	if (ni->type != KCPX_NT_RESP || s->state != EP_FALLBACK_WATCH ||
	    kcpx_native_hs_finish(s->hs, d, n, &nat))
		return;
	kcpx_native_free(nat); /* the keys are not used: the session keeps kcptun's format */
	kcpx_ep_proto_event(s, EV_LATE_RESP, now);
}

/*
 * Client: does a new session probe for the native protocol? With --proto auto, after a
 * fallback new sessions speak kcptun's format until --reprobe seconds have passed.
 */
bool kcpx_ep_proto_probe(struct kcpx_ep *ep, uint32_t conv)
{
	bool native = ep->client_native;

	if (native && ep->kcptun_mode) {
		/* after a fallback: kcptun until --reprobe s have passed, then probe again */
		uint32_t since = ep->ticks - ep->kcptun_since;

		native = ep->cfg.reprobe > 0 && since >= (uint32_t)ep->cfg.reprobe;
		if (native)
			kcpx_ep_log(
				ep, 1,
				"session %08x: trying the kcpx protocol again (kcptun for %u s)",
				conv, since);
	}
	return native;
}

/*
 * A session's handshake timers: a fallen-back session forgets its handshake state after
 * HS_LATE_KEEP_MS; a probe resends its INIT each tick until it gives up, then falls back
 * (--proto auto) or closes (--proto kcpx, or a server that spoke kcpx before).
 */
bool kcpx_ep_proto_tick(struct kcpx_ep_sess *s, uint32_t now)
{
	struct kcpx_ep *ep = s->ep;

	if (s->state == EP_FALLBACK_WATCH && (int32_t)(now - s->created) >= HS_LATE_KEEP_MS)
		kcpx_ep_proto_event(s, EV_KEEP_EXPIRED, now);
	if (s->state == EP_PROBE) {
		/* once a kcpx server answered, no fallback: lost or blocked RESPs must not
		 * downgrade a tunnel between two kcpx ends */
		bool strict = ep->cfg.proto == KCPX_PROTO_KCPX || ep->server_spoke_kcpx;

		if (++s->hs_tries >= (strict ? HS_TRIES_KCPX : ep->hs_tries_auto)) {
			if (strict) {
				if (ep->cfg.proto != KCPX_PROTO_KCPX)
					kcpx_ep_log(
						ep, 0,
						"session %08x: no kcpx answer from a server that "
						"spoke kcpx before: no fallback to kcptun (restart "
						"the client, or --proto kcptun, if it changed)",
						s->conv);
				kcpx_ep_close(s, "no kcpx handshake answer from the server");
				return false;
			}
			kcpx_ep_proto_event(s, EV_PROBE_TIMEOUT, now);
		} else {
			kcpx_ep_sess_xmit(s, s->hs_pkt, sizeof(s->hs_pkt));
		}
	}
	return true;
}
