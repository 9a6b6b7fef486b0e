// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for a server endpoint (core/endpoint.c): the first code every datagram
 * from the network reaches. Datagrams come from 64 addresses; crypt is "none" so kcptun
 * datagrams get past the CRC when asked, and genuine INITs can be made, so both formats'
 * session rules are reached.
 *
 *   byte 0   flags: bit0 --hsrate 5, bit1 fix CRCs, bit2 --proto kcpx
 *   records: op byte, then
 *     op 0xC0..0xFF  advance the clock (op & 63) * 50 ms; ticks sessions, second timer
 *     op 0x80..0xBF  a genuine INIT from address (op & 63), sid = next 4 bytes (bit 31:
 *                    sent to our second address)
 *     op 0x00..0x7F  a datagram from address (op & 63): u16 LE length (bit 15: sent to
 *                    our second address), then the bytes
 * (a server bound to any address: datagrams come to 10.1.0.1 or 10.1.0.2)
 * Asserts: never more sessions than addresses (kcptun's format: one per address) plus
 * genuine INITs (a session per sid; admission caps are the endpoint's), every session opened is
 * released by the end, late packets of closed sessions (late_closed) never outnumber the
 * datagrams that failed their check; a datagram that no kcptun-format session takes is
 * answered from within input with one datagram at most (a RESP or a RESET), of no more
 * bytes than it had (no amplification); an address that no proven session has had as its
 * peer gets at most 4 datagrams per datagram it sent (a RESP or RESET each, and the
 * unproven sessions' 3, core/endpoint.c UNPROVEN_TX), however they were spread over the
 * inputs and ticks (a kcptun-format session answers a datagram with its ACKs, at once
 * when a datagram's worth piled up: two datagrams for 56 or more segments); nothing is
 * sent to an address no datagram came from, nor from an address we were not written to,
 * and where a session answers from moves only with an authentic datagram. With a sid
 * directory (--threads): a native session opens only for a sid claimed here, claims are
 * given back exactly when no session took them (fz_sid_claim). With a peer directory: a
 * kcptun-format session opens only for an address claimed here, by peer_claim or kept
 * from the session it replaces (a client's fallback, a new conversation: the address is
 * never nobody's in between), an address is claimed only while it has no session here,
 * and every claim is taken by a session or given back before input returns
 * (fz_peer_claim).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "core/crc.h"
#include "core/crypt.h"
#include "core/endpoint.h"
#include "core/endpoint_int.h" /* s->proven: the budget rule below */
#include "core/native.h"
#include "core/smux.h"
#include "core/util.h"
#include "fuzz_asan.h"
#include "fuzz_keys.h"
#include "fuzz_x25519.h"

#define NADDR 64

struct fz {
	struct kcpx_ep *ep;
	long live; /* opened - released */
	size_t xmit_bytes, xmit_count;
	unsigned inits; /* genuine INITs fed */
	uint32_t rng;
	/* per source address (addr_of): datagrams from it, datagrams to it, and whether a
	 * proven session (its peer answered, or native keys) ever had it as its peer */
	unsigned rx_n[NADDR], tx_n[NADDR];
	bool proven[NADDR];
};

/* Which of addr_of's addresses a is (its port), or abort: nobody else sent us anything. */
static unsigned addr_index(const struct kcpx_addr *a)
{
	unsigned i = ntohs(a->in.sin_port) - 5000u;

	if (a->in.sin_family != AF_INET || i >= NADDR)
		abort();
	return i;
}

static void fz_xmit(void *user, void *path, const struct kcpx_addr *to, const struct kcpx_ip *from,
		    const uint8_t *d, size_t n)
{
	struct fz *f = user;

	f->xmit_bytes += n;
	f->xmit_count++;
	f->tx_n[addr_index(to)]++;
	/* sent from no address we do not have: one of the two the datagrams came to */
	if (from && (from->family != AF_INET || (memcmp(from->a, "\x0a\x01\x00\x01", 4) &&
						 memcmp(from->a, "\x0a\x01\x00\x02", 4))))
		abort();
}

/* --threads: the peer directory as app/shard.c keeps it. Addresses whose index has bit
 * 3 set are held by another thread (a kcptun-format datagram that would open a session
 * with one is handed over); any other is claimed here. pclaimed: claimed here for a
 * session about to open, by peer_claim or by the closing of a session it replaces. */
static bool pclaimed[NADDR];

static bool peer_live(struct fz *f, const struct kcpx_addr *a)
{
	for (struct kcpx_ep_sess *s = kcpx_ep_first(f->ep); s; s = kcpx_ep_next(s))
		if (kcpx_addr_equal(kcpx_ep_sess_peer(s), a))
			return true;
	return false;
}

static bool fz_peer_claim(void *user, void *path, const struct kcpx_addr *from,
			  const struct kcpx_ip *local, const uint8_t *d, size_t n)
{
	struct fz *f = user;
	unsigned i = addr_index(from);

	if (n > KCPX_EP_DGRAM_MAX || !d || peer_live(f, from))
		abort();
	if (i & 8)
		return true;
	pclaimed[i] = true;
	return false;
}

static void fz_peer_release(void *user, const struct kcpx_addr *from)
{
	struct fz *f = user;
	unsigned i = addr_index(from);

	if (!pclaimed[i] || peer_live(f, from))
		abort();
	pclaimed[i] = false;
}

static void *fz_opened(void *user, struct kcpx_ep_sess *es, void *path)
{
	struct fz *f = user;
	unsigned i = addr_index(kcpx_ep_sess_peer(es));

	if (!strcmp(kcpx_ep_sess_proto(es), "kcptun")) {
		if (!pclaimed[i])
			abort();
		pclaimed[i] = false; /* the session holds the address now */
	}
	f->live++;
	return es;
}

/* A session replaced by a kcptun-format one with its address passes its claim on (the
 * owner keeps the address for it, app/sess.c ep_closed). */
static void fz_closed(void *user, void *su)
{
	unsigned i = addr_index(kcpx_ep_sess_peer(su));

	if (kcpx_ep_sess_replaced(su)) {
		if (pclaimed[i])
			abort();
		pclaimed[i] = true;
	}
}

static void fz_release(void *user, void *su)
{
	struct fz *f = user;

	f->live--;
}

static void fz_wake(void *user, void *su)
{
}

static void fz_stream(void *su, uint32_t sid)
{
}

/* A new stream's target answers at once with more than a datagram (a banner, a web page):
 * what a session whose peer never answered would send toward a spoofed source. */
static void fz_accept(void *su, uint32_t sid)
{
	static const uint8_t banner[4000];

	kcpx_smux_write(kcpx_session_smux(kcpx_ep_session(su)), sid, banner, sizeof(banner));
}

static void fz_random(void *user, void *buf, size_t n)
{
	struct fz *f = user;
	uint8_t *p = buf;

	for (size_t i = 0; i < n; i++) {
		f->rng = f->rng * 1103515245u + 12345u;
		p[i] = (uint8_t)(f->rng >> 16);
	}
}

/* --threads: another thread "has" every odd sid; what it is handed must be a whole,
 * bounded datagram */
static bool fz_foreign(void *user, void *path, const struct kcpx_addr *from,
		       const struct kcpx_ip *local, const uint8_t *d, size_t n, uint32_t sid)
{
	if (n > KCPX_EP_DGRAM_MAX || !d)
		abort();
	return sid & 1;
}

/*
 * --threads: the sid directory as app/shard.c keeps it. Sids with bit 1 set are held by
 * another thread (a good INIT for one is handed over); any other is claimed here. A
 * native session may open only for a sid claimed here, a claim is given back only when
 * no session has the sid, and by the end (every session closed) none is left.
 */
#define CLAIMS_MAX 4096
static uint32_t claims[CLAIMS_MAX];
static unsigned nclaims;

static int claim_find(uint32_t sid)
{
	for (unsigned i = 0; i < nclaims; i++)
		if (claims[i] == sid)
			return (int)i;
	return -1;
}

static void claim_drop(uint32_t sid)
{
	int i = claim_find(sid);

	if (i >= 0)
		claims[i] = claims[--nclaims];
}

static bool fz_sid_claim(void *user, void *path, const struct kcpx_addr *from,
			 const struct kcpx_ip *local, const uint8_t *d, size_t n, uint32_t sid)
{
	if (n != KCPX_NATIVE_HS_LEN || !d)
		abort();
	if (sid & 2)
		return true;
	if (claim_find(sid) < 0 && nclaims < CLAIMS_MAX)
		claims[nclaims++] = sid;
	return false;
}

static void fz_sid_release(void *user, uint32_t sid)
{
	struct fz *f = user;

	if (claim_find(sid) < 0)
		abort();
	for (struct kcpx_ep_sess *s = kcpx_ep_first(f->ep); s; s = kcpx_ep_next(s))
		if (kcpx_ep_sess_conv(s) == sid && strcmp(kcpx_ep_sess_proto(s), "kcptun"))
			abort();
	claim_drop(sid);
}

static int fz_native_up(void *user, uint32_t sid, const struct kcpx_native_sess *v)
{
	if (claim_find(sid) < 0)
		abort();
	return 0;
}

static void fz_native_down(void *user, uint32_t sid)
{
	claim_drop(sid);
}

static const struct kcpx_ep_ops fz_ops = {
	.foreign = fz_foreign,
	.sid_claim = fz_sid_claim,
	.sid_release = fz_sid_release,
	.peer_claim = fz_peer_claim,
	.peer_release = fz_peer_release,
	.native_up = fz_native_up,
	.native_down = fz_native_down,
	.xmit = fz_xmit,
	.opened = fz_opened,
	.closed = fz_closed,
	.release = fz_release,
	.wake = fz_wake,
	.accept = fz_accept,
	.readable = fz_stream,
	.writable = fz_stream,
	.random = fz_random,
};

static void addr_of(struct kcpx_addr *a, unsigned i)
{
	memset(a, 0, sizeof(*a));
	a->in.sin_family = AF_INET;
	a->in.sin_addr.s_addr = htonl(0x0a000000u | (i & 7));
	a->in.sin_port = htons((uint16_t)(5000 + i));
	a->len = sizeof(a->in);
}

/* Our address a datagram came to: 10.1.0.1 or 10.1.0.2 (a server bound to any). */
static void local_of(struct kcpx_ip *l, unsigned i)
{
	memset(l, 0, sizeof(*l));
	l->family = AF_INET;
	memcpy(l->a, i ? "\x0a\x01\x00\x02" : "\x0a\x01\x00\x01", 4);
}

/*
 * Genuine INITs, by the input's sid. An INIT is a function of the sid alone (the PSK is
 * fixed, the client's random part is the sid), and making one is an X25519 key generation
 * and a seal: two thirds of the CPU time of an input made of INITs went into making the
 * same INITs again, execution after execution. Each sid's INIT is made once per process,
 * on a miss of this direct-mapped table, by kcpx_native_hs_init as before, and copied
 * after; the endpoint's own work on it (its X25519 and the rest) is done every time.
 */
#define INIT_CACHE 4096

static struct {
	uint32_t key; /* sid + 1, 0: empty */
	uint8_t pkt[KCPX_NATIVE_HS_LEN];
} init_cache[INIT_CACHE];

/* The INIT of the input's sid (31 bits; sid 0 is sent as 1 with the random part 0) into
 * pkt: 0, or -errno from kcpx_native_hs_init. */
static int init_make(const struct kcpx_native_psk *psk, uint32_t sid,
		     uint8_t pkt[KCPX_NATIVE_HS_LEN])
{
	unsigned i = (sid * 2654435761u) >> 20;
	uint8_t rnd[KCPX_NATIVE_HS_RAND] = { 0 };
	struct kcpx_native_hs *hs;
	int err;

	if (init_cache[i].key == sid + 1) {
		memcpy(pkt, init_cache[i].pkt, KCPX_NATIVE_HS_LEN);
		return 0;
	}
	memcpy(rnd, &sid, 4);
	err = kcpx_native_hs_init(&hs, psk, sid ? sid : 1, rnd, false, pkt);
	if (err)
		return err;
	kcpx_native_hs_free(hs);
	init_cache[i].key = sid + 1;
	memcpy(init_cache[i].pkt, pkt, KCPX_NATIVE_HS_LEN);
	return 0;
}

#define SNAP_MAX 256

/* Where each session answers from, before a datagram. */
struct snap {
	struct kcpx_ep_sess *s;
	struct kcpx_ip local;
};

static unsigned snap_take(struct fz *f, struct snap *sn)
{
	unsigned n = 0;

	for (struct kcpx_ep_sess *s = kcpx_ep_first(f->ep); s && n < SNAP_MAX; s = kcpx_ep_next(s))
		sn[n++] = (struct snap){ s, *kcpx_ep_sess_local(s) };
	return n;
}

/*
 * No amplification toward an address that never answered: while no proven session had it
 * as its peer, it gets at most one answer of the endpoint's own (RESP, RESET) and
 * UNPROVEN_TX (3) session datagrams per datagram it sent, however a session's budget was
 * spent (ACKs at once, on a timer, retransmissions, keepalives).
 *
 * It runs after every datagram and tick, over all 64 addresses: instrumented, its loop
 * tests called the fuzzer's comparison tracing, a tenth of an execution's CPU time that
 * told the fuzzer nothing about the endpoint. It is left out of the coverage
 * instrumentation (what it calls, the endpoint's session list, is not).
 */
static __attribute__((no_sanitize("coverage"), noinline)) void budget_check(struct fz *f)
{
	for (unsigned i = 0; i < NADDR; i++)
		if (!f->proven[i] && f->tx_n[i] > 4 * f->rx_n[i])
			abort();
	/* after the check: what a session sent before its peer proved itself counts */
	for (struct kcpx_ep_sess *s = kcpx_ep_first(f->ep); s; s = kcpx_ep_next(s))
		if (s->proven)
			f->proven[addr_index(kcpx_ep_sess_peer(s))] = true;
}

static void tick_all(struct fz *f, uint32_t now)
{
	for (struct kcpx_ep_sess *s = kcpx_ep_first(f->ep); s; s = kcpx_ep_next(s)) {
		struct kcpx_session *ks = kcpx_ep_session(s);

		kcpx_ep_tick(s, now);
		kcpx_session_pump(ks, now);
	}
	/* close the dead after the walk: closing unlinks from the list */
	for (struct kcpx_ep_sess *s = kcpx_ep_first(f->ep), *n; s; s = n) {
		n = kcpx_ep_next(s);
		if (kcpx_session_dead(kcpx_ep_session(s)))
			kcpx_ep_close(s, "dead");
	}
	budget_check(f);
	kcpx_ep_reap(f->ep);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t seed[32], master[32] = { 1 }, key[KCPX_CRYPT_KEYLEN];
	static struct kcpx_native_psk *psk;
	static struct kcpx_crypt *crypt;
	struct kcpx_snmp snmp = { 0 };
	struct fz f = { .rng = 1 };
	uint32_t now = 1000, last_second = 1000;
	uint8_t flags, dgram[1600];
	struct snap sn[SNAP_MAX];
	struct kcpx_addr a;
	struct kcpx_ip l;

	if (size < 1)
		return 0;
	if (!psk && (sodium_init() < 0 || kcpx_native_psk_new_key(&psk, master) ||
		     kcpx_crypt_new_key(&crypt, "none", key, seed)))
		abort();
	flags = data[0];
	data++;
	size--;
	struct kcpx_ep_config cfg = {
		.server = true,
		.proto = (flags & 4) ? KCPX_PROTO_KCPX : KCPX_PROTO_AUTO,
		.hsrate = (flags & 1) ? 5 : 0,
		.crypt = crypt,
		.psk = psk,
		.datashard = 3,
		.parityshard = 2,
		.session = {
			.mtu = 1350,
			.sndwnd = 64,
			.rcvwnd = 64,
			.nodelay = 1,
			.interval = 10,
			.resend = 2,
			.nc = 1,
			.crypt = crypt,
			.smux = { .version = 1,
				  .max_recv_buffer = 65536,
				  .max_stream_buffer = 65536,
				  .keepalive_ms = 1000,
				  .keepalive_timeout_ms = 3000 },
		},
	};
	nclaims = 0;
	memset(pclaimed, 0, sizeof(pclaimed));
	if (kcpx_ep_new(&f.ep, &cfg, &fz_ops, &f, &snmp))
		return 0;
	while (size >= 1) {
		uint8_t op = data[0];
		size_t len, before_bytes, before_count;
		unsigned nsn;
		bool authentic, takes;

		data++;
		size--;
		if (op >= 0xC0) {
			now += (uint32_t)(op & 63) * 50;
			tick_all(&f, now);
			while ((int32_t)(now - last_second) >= 1000) {
				last_second += 1000;
				kcpx_ep_second(f.ep, now);
			}
			continue;
		}
		addr_of(&a, op & 63);
		if (op >= 0x80) {
			uint32_t sid;

			if (size < 4)
				break;
			sid = kcpx_get_le32(data);
			data += 4;
			size -= 4;
			local_of(&l, sid >> 31); /* the same INIT may go to either address */
			if (init_make(psk, sid & 0x7fffffff, dgram))
				continue;
			len = KCPX_NATIVE_HS_LEN;
			f.inits++;
		} else {
			if (size < 2)
				break;
			len = kcpx_get_le16(data);
			data += 2;
			size -= 2;
			local_of(&l, len >> 15);
			len &= 0x7fff;
			if (len > size)
				len = size;
			if (len > sizeof(dgram))
				len = sizeof(dgram);
			memcpy(dgram, data, len);
			data += len;
			size -= len;
			if ((flags & 2) && len >= 20)
				kcpx_put_le32(dgram + 16, kcpx_crc32(dgram + 20, len - 20));
		}
		before_bytes = f.xmit_bytes;
		before_count = f.xmit_count;
		nsn = snap_take(&f, sn);
		/* a kcptun-format session of this peer answers what it takes with its own
		 * output: its ACKs, and on a window slide data (budget_check bounds it) */
		takes = false;
		for (struct kcpx_ep_sess *s = kcpx_ep_first(f.ep); s; s = kcpx_ep_next(s))
			takes |= !strcmp(kcpx_ep_sess_proto(s), "kcptun") &&
				 kcpx_addr_equal(kcpx_ep_sess_peer(s), &a);
		f.rx_n[addr_index(&a)]++;
		authentic = kcpx_ep_input_at(f.ep, NULL, &f, &a, &l, dgram, len, now);
		/* no claim outlives the input that made it: taken by a session or given back */
		for (unsigned i = 0; i < NADDR; i++)
			if (pclaimed[i])
				abort();
		/* where a session answers from moves only with an authentic datagram */
		for (unsigned i = 0; i < nsn && !authentic; i++)
			if (memcmp(&sn[i].local, kcpx_ep_sess_local(sn[i].s), sizeof(l)))
				abort();
		/* an answer from input itself: one handshake packet at most */
		if (!takes && (f.xmit_count - before_count > 1 ||
			       f.xmit_bytes - before_bytes > KCPX_NATIVE_HS_LEN ||
			       f.xmit_bytes - before_bytes > len))
			abort();
		budget_check(&f);
		if (kcpx_ep_count(f.ep) > NADDR + f.inits)
			abort();
		{
			struct kcpx_ep_stats st;

			/* the late packets of closed sessions are a part of the failures */
			kcpx_ep_stats(f.ep, &st);
			if (st.late_closed > snmp.InCsumErrors + st.hs_bad_tag)
				abort();
		}
		for (struct kcpx_ep_sess *s = kcpx_ep_first(f.ep); s; s = kcpx_ep_next(s))
			kcpx_session_pump(kcpx_ep_session(s), now);
		kcpx_ep_reap(f.ep);
	}
	budget_check(&f);
	kcpx_ep_free(f.ep);
	if (f.live != 0 || nclaims != 0)
		abort();
	for (int i = 0; i < NADDR; i++)
		if (pclaimed[i])
			abort();
	return 0;
}
