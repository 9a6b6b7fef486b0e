// SPDX-License-Identifier: MIT
#include "core/session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypt.h"
#include "core/fec.h"
#include "core/fecadapt.h"
#include "core/kcp.h"
#include "core/native.h"
#include "core/pool.h"
#include "core/redund.h"
#include "core/snappy.h"
#include "core/util.h"

/* One pump moves at most this much per direction per step (a snappy chunk's limit). */
#define SESS_CHUNK     65536
#define DGRAM_ROOM     2048
#define SESS_MAX_DGRAM 1500 /* kcptun reads into 1500 bytes: never more on the wire */
#define SESS_CACHE     4    /* chunks a private pool keeps */
#define SESS_IP_UDP    28   /* IPv4 + UDP headers, for the wire cost of a datagram */

struct kcpx_session {
	struct kcpx_session_config cfg;
	const struct kcpx_session_ops *ops;
	void *user;
	struct kcpx_snmp *snmp;
	struct kcpx_kcp *kcp;
	struct kcpx_smux *smux;
	struct kcpx_fec_enc *fec_enc;
	struct kcpx_fec_dec *fec_dec;
	struct kcpx_fecadapt fa; /* parity that follows the loss (native, cc bbr) */
	/* the peer's parity, native only: shards counted toward the next look (sess_rx_arq) */
	uint32_t rx_shards, rx_parity;
	bool arq_snd, arq_rcv; /* kcpx_kcp_set_arq: we send no parity / the peer next to none */
	uint32_t wire_hdr;     /* datagram overhead of a segment, for the wire cost */
	struct kcpx_redund *redund; /* --dupsmall: NULL when off */
	bool dup_now;		    /* the KCP output being sent gets a second copy */
	struct kcpx_snappy_w *zw;
	struct kcpx_snappy_r *zr;
	struct kcpx_native *nat; /* cfg.native: owned; NULL until the handshake is done */
	size_t hdr, trailer;
	uint32_t now;
	const char *dead;
	bool parting; /* dead on the peer's bytes: one NOP goes out first (sess_parting) */

	struct kcpx_pool *chunks;
	bool own_chunks;
	/* receive: bytes from KCP (compressed if comp) not yet fed onward; NULL when none */
	uint8_t *raw;
	size_t raw_off, raw_len;
	/* receive: plain smux bytes not yet taken by smux (input returned short); NULL when
	   none */
	uint8_t *plain;
	size_t plain_off, plain_len;
	/* one datagram being sealed (no FEC: KCP bytes are copied in after the header) */
	uint8_t dgram[DGRAM_ROOM];

	struct kcpx_session_stats st;
};

static void sess_kill(struct kcpx_session *s, const char *why);

size_t kcpx_session_chunk_block(void)
{
	return KCPX_MAX((size_t)SESS_CHUNK, kcpx_snappy_w_bound(SESS_CHUNK));
}

static void sess_xmit(struct kcpx_session *s, uint8_t *dgram, size_t body_len)
{
	size_t len;

	if (s->cfg.native) {
		int n = s->nat ? kcpx_native_seal(s->nat, dgram, body_len, s->fec_enc != NULL)
			       : -ENOTCONN;

		if (n < 0) {
			if (n == -EOVERFLOW)
				sess_kill(s, "native packet counter exhausted");
			return;
		}
		len = (size_t)n;
	} else {
		len = kcpx_crypt_seal(s->cfg.crypt, dgram, body_len);
	}

	s->st.pkts_out++;
	if (s->snmp) {
		s->snmp->OutPkts++;
		s->snmp->OutBytes += len;
	}
	s->ops->xmit(s->user, dgram, len);
}

/* FEC hands us each shard with crypt headroom in front of it: seal it in place. */
static void fec_emit(void *user, uint8_t *body, size_t len, bool parity)
{
	struct kcpx_session *s = user;

	if (s->dup_now && !parity)
		kcpx_redund_add(s->redund, body, len, s->now); /* before sealing: it is in place */
	sess_xmit(s, body - s->hdr, len);
}

/* A copy falls due: seal it afresh (a native peer would refuse a replayed datagram). */
static void redund_send(void *user, const uint8_t *body, size_t len)
{
	struct kcpx_session *s = user;

	memcpy(s->dgram + s->hdr, body, len);
	sess_xmit(s, s->dgram, len);
}

/* FEC on a timer: when the open group is due for its parity (far future when none is). */
static uint32_t fec_flush_due(const struct kcpx_session *s, uint32_t now)
{
	uint32_t since;

	/* Only between kcpx ends (native protocol): stock kcptun rebuilds the data shards of
	 * an early-closed group that were never sent as zeros and counts them as FECErrs. */
	if (!s->cfg.native || !s->fec_enc || !s->cfg.fec_flush_ms ||
	    !kcpx_fec_enc_open(s->fec_enc, &since))
		return now + 0x7fffffffu;
	return since + s->cfg.fec_flush_ms;
}

static void kcp_output(const uint8_t *buf, size_t len, void *user)
{
	struct kcpx_session *s = user;

	s->dup_now = s->redund && kcpx_redund_wants(s->redund, buf, len);
	if (s->fec_enc) {
		kcpx_fec_encode(s->fec_enc, buf, len, s->now, fec_emit, s, s->snmp);
	} else if (s->hdr + len + s->trailer <= sizeof(s->dgram)) { /* mtu checked at creation */
		if (s->dup_now)
			kcpx_redund_add(s->redund, buf, len, s->now);
		memcpy(s->dgram + s->hdr, buf, len);
		sess_xmit(s, s->dgram, len);
	}
	s->dup_now = false;
}

static void smux_accept(void *user, uint32_t sid)
{
	struct kcpx_session *s = user;

	if (s->ops->accept)
		s->ops->accept(s->user, sid);
}

static void smux_readable(void *user, uint32_t sid)
{
	struct kcpx_session *s = user;

	if (s->ops->readable)
		s->ops->readable(s->user, sid);
}

static void smux_writable(void *user, uint32_t sid)
{
	struct kcpx_session *s = user;

	if (s->ops->writable)
		s->ops->writable(s->user, sid);
}

static void smux_refused(void *user, uint32_t sid, unsigned n)
{
	struct kcpx_session *s = user;

	if (s->ops->refused)
		s->ops->refused(s->user, sid, n);
}

static const struct kcpx_smux_ops sess_smux_ops = {
	.accept = smux_accept,
	.readable = smux_readable,
	.writable = smux_writable,
	.refused = smux_refused,
};

static uint32_t sess_give_up_ms(uint32_t keepalive_timeout_ms)
{
	return keepalive_timeout_ms > KCPX_SESSION_GIVE_UP_MS ? keepalive_timeout_ms
							      : KCPX_SESSION_GIVE_UP_MS;
}

struct kcpx_session *kcpx_session_new(const struct kcpx_session_config *cfg,
				      const struct kcpx_session_ops *ops, void *user,
				      struct kcpx_snmp *snmp, uint32_t now)
{
	struct kcpx_session *s;
	bool fec = cfg->datashard > 0 && cfg->parityshard > 0;
	size_t overhead;

	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->cfg = *cfg;
	s->chunks = cfg->chunks;
	if (!s->chunks) {
		s->chunks = kcpx_pool_new(kcpx_session_chunk_block(), SESS_CACHE);
		s->own_chunks = true;
	}
	if (!s->chunks || kcpx_pool_block(s->chunks) != kcpx_session_chunk_block())
		goto err;
	s->ops = ops;
	s->user = user;
	s->snmp = snmp;
	s->now = now;
	s->hdr = cfg->native ? kcpx_native_header() : kcpx_crypt_header(cfg->crypt);
	s->trailer = cfg->native ? kcpx_native_trailer() : kcpx_crypt_trailer(cfg->crypt);
	overhead = s->hdr + s->trailer + (fec ? KCPX_FEC_HDR : 0);
	if (cfg->mtu > SESS_MAX_DGRAM || cfg->mtu < overhead + 24 + 16)
		goto err;

	s->kcp = kcpx_kcp_new(cfg->conv, kcp_output, s, snmp);
	if (!s->kcp)
		goto err;
	if (kcpx_kcp_set_mtu(s->kcp, cfg->mtu - overhead))
		goto err;
	kcpx_kcp_set_nodelay(s->kcp, cfg->nodelay, cfg->interval, cfg->resend, cfg->nc);
	kcpx_kcp_set_wndsize(s->kcp, cfg->sndwnd, cfg->rcvwnd);
	kcpx_kcp_set_stream(s->kcp, true);
	kcpx_kcp_set_ack_nodelay(s->kcp, cfg->acknodelay);
	kcpx_kcp_set_tlp(s->kcp, cfg->tlp);
	kcpx_kcp_set_quickack(s->kcp, cfg->quickack);
	kcpx_kcp_set_rto_hygiene(s->kcp, cfg->rto_hygiene);
	/* a peer silent with data owed: probe, then give up when smux would (at least 60 s) */
	kcpx_kcp_set_silent(s->kcp, sess_give_up_ms(cfg->smux.keepalive_timeout_ms));
	if (kcpx_kcp_set_cc(s->kcp, cfg->cc, now))
		goto err;
	/* the controller counts wire bytes: headers (IP and UDP too) and FEC parity */
	s->wire_hdr = (uint32_t)overhead + SESS_IP_UDP;
	kcpx_kcp_set_wire_cost(s->kcp, s->wire_hdr,
			       fec ? (uint32_t)(cfg->datashard + cfg->parityshard) : 1,
			       fec ? (uint32_t)cfg->datashard : 1);
	kcpx_kcp_set_ratelimit(s->kcp, cfg->ratelimit);
	/* between kcpx ends the send window follows the controller up to a ceiling (kcp.h;
	 * stock kcptun expects nothing of it, but a fallback turns it off to stay kcptun) */
	/* only a kcpx peer reads the drop report (stock kcptun would skip it: kcp.h) */
	kcpx_kcp_set_drop_report(s->kcp, cfg->native);
	if (cfg->native && cfg->cc == KCPX_CC_BBR && cfg->maxwnd >= 0)
		kcpx_kcp_set_wnd_grow(s->kcp,
				      cfg->maxwnd ? (unsigned)cfg->maxwnd : KCPX_KCP_WND_GROW_MAX);
	/* and the receive window grows past holes up to the same ceiling (whatever our own
	 * --cc: it is the peer's sender that uses it) */
	if (cfg->native && cfg->maxwnd >= 0)
		kcpx_kcp_set_rcv_grow(s->kcp,
				      cfg->maxwnd ? (unsigned)cfg->maxwnd : KCPX_KCP_WND_GROW_MAX);
	if (fec) {
		s->fec_enc = kcpx_fec_enc_new(cfg->datashard, cfg->parityshard, s->hdr, s->trailer);
		if (!s->fec_enc)
			goto err;
		kcpx_fecadapt_init(&s->fa, cfg->datashard, cfg->parityshard);
		/* both windows grow past holes between kcpx ends (above): low loss is ARQ's */
		kcpx_fecadapt_set_arq(&s->fa,
				      cfg->native && cfg->cc == KCPX_CC_BBR && cfg->maxwnd >= 0);
		/* --fecparity loss: a bulk's parity follows the loss too */
		kcpx_fecadapt_set_by_need(&s->fa, !cfg->fec_loss);
	}
	/* Always decode: kcptun accepts FEC from a peer whatever its own ratio (without our
	 * own, the decoder is made when the first shard comes: kcpx_session_input). */
	if (fec) {
		s->fec_dec = kcpx_fec_dec_new(cfg->datashard, cfg->parityshard);
		if (!s->fec_dec)
			goto err;
		/* rebuilding from groups a peer closed early only changes what we make of them */
		kcpx_fec_dec_set_partial(s->fec_dec, true);
	}
	if (cfg->dup_small) {
		s->redund = kcpx_redund_new(cfg->dup_small, cfg->dup_gap_ms ? cfg->dup_gap_ms : 5);
		if (!s->redund)
			goto err;
	}
	if (cfg->comp) {
		s->zw = kcpx_snappy_w_new();
		s->zr = kcpx_snappy_r_new();
		if (!s->zw || !s->zr || kcpx_snappy_r_set_pool(s->zr, s->chunks))
			goto err;
	}
	s->smux = kcpx_smux_new(&cfg->smux, &sess_smux_ops, s, now);
	if (!s->smux)
		goto err;
	s->st.last_rx = now;
	return s;
err:
	kcpx_session_free(s);
	return NULL;
}

void kcpx_session_free(struct kcpx_session *s)
{
	if (!s)
		return;
	kcpx_smux_free(s->smux);
	kcpx_kcp_free(s->kcp);
	kcpx_fec_enc_free(s->fec_enc);
	kcpx_fec_dec_free(s->fec_dec);
	kcpx_redund_free(s->redund);
	kcpx_snappy_w_free(s->zw);
	kcpx_snappy_r_free(s->zr);
	if (s->chunks) {
		kcpx_pool_put(s->chunks, s->raw);
		kcpx_pool_put(s->chunks, s->plain);
		if (s->own_chunks)
			kcpx_pool_free(s->chunks);
	}
	kcpx_native_free(s->nat);
	free(s);
}

_Static_assert(KCPX_NATIVE_HDR >= KCPX_CRYPT_HDR_MAX && KCPX_NATIVE_MAC >= KCPX_CRYPT_TRL_MAX,
	       "a pending native session has room for any kcptun cipher");

void kcpx_session_set_native(struct kcpx_session *s, struct kcpx_native *n)
{
	kcpx_native_free(s->nat);
	s->nat = n;
}

void kcpx_session_fallback(struct kcpx_session *s, struct kcpx_crypt *crypt)
{
	/* The FEC encoder keeps its larger native headroom: sealing needs no more. */
	s->cfg.native = false;
	kcpx_kcp_set_wnd_grow(s->kcp, 0);
	kcpx_kcp_set_rcv_grow(s->kcp, 0);
	kcpx_fecadapt_set_arq(&s->fa, false);
	s->arq_snd = s->arq_rcv = false;
	kcpx_kcp_set_arq(s->kcp, false, false);
	kcpx_kcp_set_drop_report(s->kcp, false);
	s->cfg.crypt = crypt;
	s->hdr = kcpx_crypt_header(crypt);
	s->trailer = kcpx_crypt_trailer(crypt);
}

bool kcpx_session_pending(const struct kcpx_session *s)
{
	return s->cfg.native && !s->nat;
}

struct kcpx_native *kcpx_session_native(struct kcpx_session *s)
{
	return s->nat;
}

int kcpx_session_open_native(struct kcpx_session *s, uint8_t *dgram, size_t len, uint8_t **body,
			     size_t *blen)
{
	int n = s->nat ? kcpx_native_open(s->nat, dgram, len) : -ENOTCONN;

	if (n < 0) {
		if (s->snmp) {
			s->snmp->InErrs++;
			if (n == -EBADMSG)
				s->snmp->InCsumErrors++;
		}
		return n;
	}
	*body = dgram + KCPX_NATIVE_HDR;
	*blen = (size_t)n;
	return 0;
}

int kcpx_session_open(struct kcpx_crypt *crypt, struct kcpx_snmp *snmp, uint8_t *dgram, size_t len,
		      uint8_t **body, size_t *blen, uint32_t *conv)
{
	size_t hdr = kcpx_crypt_header(crypt);
	int n;

	if (len > SESS_MAX_DGRAM || len < hdr + kcpx_crypt_trailer(crypt) + 8) {
		if (snmp)
			snmp->InErrs++;
		return -EMSGSIZE;
	}
	n = kcpx_crypt_open(crypt, dgram, len);
	if (n < 0) {
		if (snmp)
			snmp->InCsumErrors++; /* as kcp-go: a CRC failure is not also an InErr */
		return -EBADMSG;
	}
	*body = dgram + hdr;
	*blen = (size_t)n;
	*conv = 0;
	if (kcpx_fec_is_fec(*body, *blen)) {
		/* data shard: seqid u32 | flag u16 | size u16 | KCP...; parity names none */
		if (kcpx_get_le16(*body + 4) == KCPX_FEC_DATA && *blen >= KCPX_FEC_HDR + 4)
			*conv = kcpx_get_le32(*body + KCPX_FEC_HDR);
	} else if (*blen >= 4) {
		*conv = kcpx_get_le32(*body);
	}
	return 0;
}

static void fec_recv(void *user, const uint8_t *kcp, size_t len, bool recovered)
{
	struct kcpx_session *s = user;

	kcpx_kcp_input(s->kcp, kcp, len, s->now, !recovered);
}

/*
 * Does the peer leave the loss to ARQ? Between kcpx ends its parity follows the loss
 * (fecadapt.h) and at about 1 % it sends none; every loss then holds our rcv_nxt for a
 * resend's round trip, and the receive window must span that on any path (kcp.h
 * kcpx_kcp_set_arq). Judged per RX_ARQ_SHARDS shards received: fewer than one parity
 * shard per 64 of them (one shard per group of 10 would be one in 11). Shards are
 * counted only once authenticated (the native seal's tag and AEAD), so a forged
 * datagram changes nothing; the peer itself can at most let our window grow to
 * --maxwnd, as its holes could anyway.
 */
#define RX_ARQ_SHARDS 2048u
static void sess_rx_arq(struct kcpx_session *s, bool parity)
{
	bool arq;

	s->rx_parity += parity;
	if (++s->rx_shards < RX_ARQ_SHARDS)
		return;
	arq = s->rx_parity * 64u < s->rx_shards;
	s->rx_shards = s->rx_parity = 0;
	if (arq != s->arq_rcv) {
		s->arq_rcv = arq;
		kcpx_kcp_set_arq(s->kcp, s->arq_snd, s->arq_rcv);
	}
}

int kcpx_session_input(struct kcpx_session *s, const uint8_t *body, size_t blen, uint32_t now)
{
	int err = 0;

	s->now = now;
	s->st.pkts_in++;
	s->st.last_rx = now;
	if (s->snmp) {
		s->snmp->InPkts++;
		s->snmp->InBytes += blen;
	}
	if (kcpx_fec_is_fec(body, blen)) {
		int n;

		if (!s->fec_dec) {
			/* FEC from a peer we did not ask for it (kcptun decodes it whatever its
			 * own ratio): the decoder, (0, 0) to learn the peer's ratio as kcp-go does,
			 * is made only now, so that sessions without FEC do not carry one */
			s->fec_dec = kcpx_fec_dec_new(0, 0);
			if (!s->fec_dec)
				return -ENOMEM;
			kcpx_fec_dec_set_partial(s->fec_dec, true);
		}
		if (s->cfg.native)
			sess_rx_arq(s, kcpx_get_le16(body + 4) == KCPX_FEC_PARITY);
		n = kcpx_fec_decode(s->fec_dec, body, blen, now, fec_recv, s, s->snmp);
		return n < 0 ? n : 0;
	}
	err = kcpx_kcp_input(s->kcp, body, blen, now, true);
	return err;
}

static void sess_kill(struct kcpx_session *s, const char *why)
{
	if (!s->dead)
		s->dead = why;
}

/* Makes *buf a chunk if it is none. 0, or -ENOMEM (the session is then dead). */
static int chunk_get(struct kcpx_session *s, uint8_t **buf)
{
	if (!*buf) {
		*buf = kcpx_pool_get(s->chunks);
		if (!*buf) {
			sess_kill(s, "out of memory");
			return -ENOMEM;
		}
	}
	return 0;
}

static void chunk_put(struct kcpx_session *s, uint8_t **buf)
{
	kcpx_pool_put(s->chunks, *buf);
	*buf = NULL;
}

/* KCP -> (snappy) -> smux, as far as smux's receive buffer allows. */
static void pump_rx_chunks(struct kcpx_session *s, uint32_t now)
{
	for (;;) {
		ssize_t n;

		if (s->plain_off < s->plain_len) {
			n = kcpx_smux_input(s->smux, s->plain + s->plain_off,
					    s->plain_len - s->plain_off, now);
			if (n < 0) {
				sess_kill(s, "smux protocol error from peer");
				s->parting = true;
				return;
			}
			s->plain_off += (size_t)n;
			if (s->plain_off < s->plain_len)
				return; /* smux is full: the app must read first */
			continue;
		}
		if (s->zr) {
			if (kcpx_snappy_r_pending(s->zr) && chunk_get(s, &s->plain))
				return;
			n = kcpx_snappy_r_read(s->zr, s->plain, SESS_CHUNK);
			if (n > 0) {
				s->plain_off = 0;
				s->plain_len = (size_t)n;
				continue;
			}
			if (s->raw_off < s->raw_len) {
				n = kcpx_snappy_r_feed(s->zr, s->raw + s->raw_off,
						       s->raw_len - s->raw_off);
				if (n < 0) {
					sess_kill(s, "corrupt compressed stream from peer");
					s->parting = true;
					return;
				}
				s->raw_off += (size_t)n;
				if (n == 0)
					return; /* the reader holds a whole chunk it cannot decode yet */
				continue;
			}
			if (chunk_get(s, &s->raw))
				return;
			n = kcpx_kcp_recv(s->kcp, s->raw, SESS_CHUNK);
			if (n <= 0)
				return;
			s->st.bytes_in += (size_t)n;
			if (s->snmp)
				s->snmp->BytesReceived += (size_t)n;
			s->raw_off = 0;
			s->raw_len = (size_t)n;
			continue;
		}
		if (chunk_get(s, &s->plain))
			return;
		n = kcpx_kcp_recv(s->kcp, s->plain, SESS_CHUNK);
		if (n <= 0)
			return;
		s->st.bytes_in += (size_t)n;
		if (s->snmp)
			s->snmp->BytesReceived += (size_t)n;
		s->plain_off = 0;
		s->plain_len = (size_t)n;
	}
}

static void pump_rx(struct kcpx_session *s, uint32_t now)
{
	pump_rx_chunks(s, now);
	/* the chunks go back to the pool as soon as they hold nothing, the snappy reader's
	   as well */
	if (s->zr)
		kcpx_snappy_r_trim(s->zr);
	if (s->plain && s->plain_off >= s->plain_len) {
		s->plain_off = s->plain_len = 0;
		chunk_put(s, &s->plain);
	}
	if (s->raw && s->raw_off >= s->raw_len) {
		s->raw_off = s->raw_len = 0;
		chunk_put(s, &s->raw);
	}
}

/*
 * Bytes from the peer that do not parse (corrupt compressed stream, smux protocol error)
 * most likely mean the ends disagree on --nocomp or --smuxver. Neither kcptun's format nor
 * smux can carry a reason, so the peer would learn of the close only at its keepalive
 * timeout. One NOP frame written as we write (our smux version, compressed or not) fails
 * the peer's parser the same way within a round trip, and its close line names the cause
 * too. Once, flushed at once: the session is dead, nothing retransmits it.
 */
static void sess_parting(struct kcpx_session *s, uint32_t now)
{
	uint8_t nop[KCPX_SMUX_HDR] = { (uint8_t)s->cfg.smux.version, KCPX_SMUX_CMD_NOP };
	uint8_t *z = NULL;
	const uint8_t *p = nop;
	size_t n = sizeof(nop);

	s->parting = false;
	if (s->zw) {
		if (chunk_get(s, &z))
			return;
		n = kcpx_snappy_w_chunk(s->zw, nop, n, z);
		p = z;
	}
	if (kcpx_kcp_send(s->kcp, p, n) == 0)
		kcpx_kcp_flush(s->kcp, now);
	chunk_put(s, &z);
}

/* smux -> (snappy) -> KCP while KCP's send window has room. */
static bool pump_tx(struct kcpx_session *s)
{
	uint8_t *tx = NULL, *ztx = NULL;
	bool wrote = false;

	while (kcpx_kcp_waitsnd(s->kcp) < kcpx_kcp_sndwnd(s->kcp) &&
	       kcpx_smux_output_pending(s->smux)) {
		const uint8_t *p;
		size_t n;

		if (chunk_get(s, &tx) || (s->zw && chunk_get(s, &ztx)))
			break;
		n = kcpx_smux_output(s->smux, tx, s->zw ? SESS_CHUNK : 16384);
		p = tx;
		if (!n)
			break;
		if (s->zw) {
			n = kcpx_snappy_w_chunk(s->zw, tx, n, ztx);
			p = ztx;
		}
		if (kcpx_kcp_send(s->kcp, p, n) < 0) {
			sess_kill(s, "out of memory");
			break;
		}
		s->st.bytes_out += n;
		if (s->snmp)
			s->snmp->BytesSent += n;
		wrote = true;
	}
	chunk_put(s, &tx);
	chunk_put(s, &ztx);
	return wrote;
}

/*
 * Parity that follows the loss: between kcpx ends only (a kcptun peer's decoder re-tunes
 * on a short parity run) and with the controller that tells random loss from queue drops.
 * The controller's charge per segment follows the parity actually sent.
 */
static void sess_fec_adapt(struct kcpx_session *s)
{
	uint64_t sent, lost, segs, held;
	uint32_t bdp, wmax;
	int p, ps = s->cfg.parityshard;

	if (!s->fec_enc)
		return;
	if (s->cfg.native && s->cfg.cc == KCPX_CC_BBR && !s->cfg.fec_fixed) {
		enum kcpx_cc_state st = kcpx_kcp_cc_state(s->kcp);

		/* parity by need: is the sender held back, and do its windows span ARQ? */
		kcpx_kcp_backlog_counts(s->kcp, &segs, &held);
		kcpx_fecadapt_backlog(&s->fa, segs, held);
		kcpx_kcp_path_segs(s->kcp, &bdp, &wmax);
		kcpx_fecadapt_path(&s->fa, bdp, wmax);
		kcpx_kcp_loss_counts(s->kcp, &sent, &lost);
		if (st == KCPX_CC_STARTUP || st == KCPX_CC_DRAIN)
			kcpx_fecadapt_hold(&s->fa, sent, lost);
		p = kcpx_fecadapt_update(&s->fa, sent, lost);
	} else {
		p = ps;
	}
	/* no parity between kcpx ends: ARQ carries the loss, the window spans its repairs */
	if ((s->fa.arq && p == 0) != s->arq_snd) {
		s->arq_snd = s->fa.arq && p == 0;
		kcpx_kcp_set_arq(s->kcp, s->arq_snd, s->arq_rcv);
	}
	if (p == s->fa.applied)
		return;
	s->fa.applied = p;
	kcpx_fec_enc_set_parity(s->fec_enc, p);
	kcpx_kcp_set_wire_cost(s->kcp, s->wire_hdr, (uint32_t)(s->cfg.datashard + p),
			       (uint32_t)s->cfg.datashard);
}

void kcpx_session_local_drop(struct kcpx_session *s, uint32_t n, uint32_t now)
{
	kcpx_kcp_local_drop(s->kcp, now, n);
}

void kcpx_session_rx_dropped(struct kcpx_session *s, uint32_t n)
{
	kcpx_kcp_rx_dropped(s->kcp, n);
}

bool kcpx_session_fec_peer_ratio(const struct kcpx_session *s, int *ds, int *ps)
{
	if (!s->fec_dec)
		return false;
	kcpx_fec_dec_ratio(s->fec_dec, ds, ps);
	return true;
}

void kcpx_session_fec_parity(const struct kcpx_session *s, int *parity, int *ps, uint32_t *loss_ppm)
{
	if (loss_ppm)
		*loss_ppm = s->fa.loss_ppm;
	*parity = s->fec_enc ? kcpx_fec_enc_parity(s->fec_enc) : 0;
	*ps = s->fec_enc ? s->cfg.parityshard : 0;
}

void kcpx_session_pump(struct kcpx_session *s, uint32_t now)
{
	s->now = now;
	if (s->dead || kcpx_session_pending(s))
		return;
	pump_rx(s, now);
	if (s->parting)
		sess_parting(s, now);
	if (kcpx_smux_dead(s->smux))
		sess_kill(s, "smux session closed (keepalive timeout or protocol error)");
	/* kcp-go flushes on every write; input alone waits for the interval (or acknodelay) */
	if (pump_tx(s))
		kcpx_kcp_flush(s->kcp, now);
	sess_fec_adapt(s);
}

void kcpx_session_tick(struct kcpx_session *s, uint32_t now)
{
	s->now = now;
	if (kcpx_session_pending(s))
		return;
	kcpx_smux_tick(s->smux, now);
	if (kcpx_smux_dead(s->smux))
		sess_kill(s, "peer silent past the keepalive timeout");
	pump_tx(s);
	if ((int32_t)(kcpx_kcp_check(s->kcp, now) - now) <= 0)
		kcpx_kcp_update(s->kcp, now);
	sess_fec_adapt(s);
	if (kcpx_kcp_gave_up(s->kcp))
		sess_kill(s, "peer silent with data unacknowledged (gave up)");
	if ((int32_t)(fec_flush_due(s, now) - now) <= 0)
		kcpx_fec_enc_flush(s->fec_enc, fec_emit, s);
	if (s->redund)
		kcpx_redund_flush(s->redund, now, redund_send, s);
}

uint32_t kcpx_session_deadline(const struct kcpx_session *s, uint32_t now)
{
	uint32_t a = kcpx_kcp_check(s->kcp, now);
	uint32_t b = kcpx_smux_deadline(s->smux, now);
	uint32_t c = fec_flush_due(s, now);

	if (kcpx_session_pending(s))
		return now + KCPX_SESSION_HS_POLL;
	if ((int32_t)(a - b) > 0)
		a = b;
	if ((int32_t)(a - c) > 0)
		a = c;
	if (s->redund && kcpx_redund_next(s->redund, &c) && (int32_t)(a - c) > 0)
		a = c;
	return a;
}

void kcpx_session_set_clock_us(struct kcpx_session *s, uint64_t now_us)
{
	kcpx_kcp_set_clock_us(s->kcp, now_us);
}

uint64_t kcpx_session_deadline_us(const struct kcpx_session *s, uint32_t now)
{
	uint32_t a = kcpx_session_deadline(s, now);
	uint64_t au = kcpx_kcp_ms_us(s->kcp, now, a), k;

	/* a pending session's tick does not run KCP: its deadline is the handshake poll */
	if (kcpx_session_pending(s))
		return au;
	/* KCP's own deadline, to the µs, when it is the earliest (a is that one rounded up) */
	k = kcpx_kcp_check_us(s->kcp, now);
	return k < au ? k : au;
}

void kcpx_session_set_keepalive(struct kcpx_session *s, uint32_t keepalive_ms, uint32_t timeout_ms,
				uint32_t now)
{
	s->cfg.smux.keepalive_ms = keepalive_ms;
	s->cfg.smux.keepalive_timeout_ms = timeout_ms;
	kcpx_smux_set_keepalive(s->smux, keepalive_ms, timeout_ms, now);
	kcpx_kcp_set_silent(s->kcp, sess_give_up_ms(timeout_ms));
}

bool kcpx_session_dead(const struct kcpx_session *s)
{
	return s->dead != NULL;
}

const char *kcpx_session_dead_reason(const struct kcpx_session *s)
{
	return s->dead ? s->dead : "alive";
}

uint32_t kcpx_session_conv(const struct kcpx_session *s)
{
	return s->cfg.conv;
}

struct kcpx_smux *kcpx_session_smux(struct kcpx_session *s)
{
	return s->smux;
}

struct kcpx_kcp *kcpx_session_kcp(struct kcpx_session *s)
{
	return s->kcp;
}

void kcpx_session_stats(const struct kcpx_session *s, struct kcpx_session_stats *st)
{
	*st = s->st;
}

const char *kcpx_session_hint(const char *why)
{
	if (!why)
		return "";
	if (strstr(why, "corrupt compressed stream"))
		return " (likely cause: the ends disagree on --nocomp: set it at both or neither)";
	if (strstr(why, "smux protocol error"))
		return " (likely cause: the ends disagree on --smuxver, or on --nocomp)";
	if (strstr(why, "peer silent past the keepalive timeout"))
		return " (likely cause: the peer closed the session, its log says why, or the "
		       "path is down)";
	return "";
}
