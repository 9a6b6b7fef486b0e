// SPDX-License-Identifier: MIT
/*
 * Why a tunnel between two ends does not work, said once in the log instead of left to
 * guesswork (kcptun's most common support question: "streams open and close, nothing
 * else"). What each side can see of a mismatch:
 *
 *   wrong --key / --crypt   the receiver: datagrams that fail their check (kcptun's format:
 *                           CRC after decryption, InCsumErrors; kcpx's: the handshake
 *                           tag); the sender: no answer at all on a new session
 *   --nocomp, --smuxver     the session dies on its first stream with "corrupt compressed
 *                           stream" or "smux protocol error": the close line itself names
 *                           the likely cause (core/session.c, kcpx_session_hint), on both
 *                           ends: the first sends a NOP that fails the other's parser too
 *
 * Rate-limited: the failed-check line at most once a minute (with the count since the
 * last one), the no-answer line once per session and at most once a minute.
 */
#include <string.h>

#include "app/log.h"
#include "app/tunnel_int.h"
#include "core/session.h"

#define DIAG_EVERY_MS 60000
#define NO_ANSWER_MS  5000

/*
 * --datashard/--parityshard: the FEC decoder learns the ratio the peer sends (kcp-go's
 * auto-tune), so a mismatch still carries data; said once per session, at most once a
 * minute, as both ends should set the same (FEC recovers less meanwhile).
 */
static void diag_fec(struct tunnel *t, uint32_t now)
{
	static uint32_t last_ms;
	static bool told;
	char buf[KCPX_ADDRSTRLEN];

	for (struct kcpx_ep_sess *e = kcpx_ep_first(t->ep); e; e = kcpx_ep_next(e)) {
		struct sess *s = kcpx_ep_sess_user(e);
		int ds, ps;

		/* kcptun's format only: kcpx's own sends less parity on a clean path */
		if (!s || s->fec_told || strcmp(kcpx_ep_sess_proto(e), "kcptun") ||
		    !kcpx_session_fec_peer_ratio(s->ks, &ds, &ps) || !ds ||
		    (ds == t->cfg->datashard && ps == t->cfg->parityshard))
			continue;
		s->fec_told = true;
		if (told && now - last_ms < DIAG_EVERY_MS)
			continue;
		pr_warn("session %08x with %s: its FEC is --datashard %d --parityshard %d, ours "
			"%d/%d: likely cause: the ends disagree on --datashard/--parityshard (each "
			"decodes the other's ratio, as kcp-go does; set them alike at both ends)",
			kcpx_ep_sess_conv(e), kcpx_addr_str(kcpx_ep_sess_peer(e), buf, sizeof(buf)),
			ds, ps, t->cfg->datashard, t->cfg->parityshard);
		last_ms = now;
		told = true;
	}
}

void kcpx_diag_second(struct tunnel *t, uint32_t now)
{
	static uint32_t last_bad_ms, last_quiet_ms;
	static bool told_bad, told_quiet;
	struct kcpx_ep_stats es;
	char buf[KCPX_ADDRSTRLEN];
	uint64_t bad;

	kcpx_ep_stats(t->ep, &es);
	/* late packets of sessions closed here are no sign of a key mismatch */
	bad = t->snmp.InCsumErrors + es.hs_bad_tag - es.late_closed;
	if (bad > t->diag_bad && (!told_bad || now - last_bad_ms >= DIAG_EVERY_MS)) {
		pr_warn("%llu datagrams failed decryption or their tag since %s, the last from %s: "
			"likely cause: the other end's --key or --crypt differs from ours (else: "
			"forged ones, or packets of a session closed here over 30 s ago)",
			(unsigned long long)(bad - t->diag_told),
			told_bad ? "the last report" : "start",
			es.bad_from.len ? kcpx_addr_str(&es.bad_from, buf, sizeof(buf)) : "-");
		t->diag_told = bad;
		last_bad_ms = now;
		told_bad = true;
	}
	t->diag_bad = bad;
	diag_fec(t, now);
	if (t->cfg->role != KCPX_ROLE_CLIENT)
		return;
	for (struct kcpx_ep_sess *e = kcpx_ep_first(t->ep); e; e = kcpx_ep_next(e)) {
		struct sess *s = kcpx_ep_sess_user(e);
		struct kcpx_session_stats st;

		if (!s || s->no_answer_told || kcpx_ep_sess_closing(e) ||
		    now - s->opened < NO_ANSWER_MS)
			continue;
		kcpx_session_stats(s->ks, &st);
		if (st.pkts_in)
			continue;
		s->no_answer_told = true;
		if (told_quiet && now - last_quiet_ms < DIAG_EVERY_MS)
			continue;
		pr_warn("session %08x: no answer from %s in %u s: likely cause: the server is not "
			"running or not reachable there, or its --key or --crypt differs (servers "
			"drop what they cannot decrypt without a word), or it closed the session "
			"(its log says why)",
			kcpx_ep_sess_conv(e), kcpx_addr_str(kcpx_ep_sess_peer(e), buf, sizeof(buf)),
			NO_ANSWER_MS / 1000);
		last_quiet_ms = now;
		told_quiet = true;
	}
}
