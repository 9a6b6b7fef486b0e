// SPDX-License-Identifier: MIT
/*
 * The native protocol's core (user/core/native.c): SipHash-2-4 against the reference
 * vectors of the SipHash paper, the header tag, the handshake (both ciphers), AEAD round
 * trips, every reject reason with its counter, and the replay window (replays, counters
 * older than the window, sliding, far jumps, a long random walk against a plain model).
 * Then whole sessions over a lossy, duplicating simulated link: a pending native session
 * sends nothing until its handshake is done, then carries a stream with FEC, duplicates
 * refused as replays; and a pending session falls back to kcptun's format.
 * XDP's FEC shape learning (kcpx_fec_learn) over a lossy, reordering path and over garbage.
 * The same tag and window computed by BPF are checked in tests/bpf/test_native.c.
 */
#include <errno.h>
#include <stdint.h>

#include <sodium.h>

#include "unit.h"
#include "linksim.h"
#include "core/crypt.h"
#include "core/native.h"
#include "core/session.h"
#include "core/util.h"

#define SID 0x5eed1234u

/* SipHash-2-4, key 00..0f, message 00..len-1 (Aumasson & Bernstein, appendix vectors). */
static const struct {
	size_t len;
	uint64_t h;
} sip_vec[] = {
	{ 0, 0x726fdb47dd0e0e31ULL },  { 1, 0x74f839c593dc67fdULL },  { 7, 0xab0200f58b01d137ULL },
	{ 8, 0x93f5f5799a932462ULL },  { 15, 0xa129ca6149be45e5ULL }, { 16, 0x3f2acc7f57c29bdbULL },
	{ 22, 0x93536795e3a33e88ULL }, { 23, 0xa80c038ccd5ccec8ULL }, { 31, 0x32d892fad841c342ULL },
	{ 32, 0x7127512f72f27cceULL }, { 63, 0x958a324ceb064572ULL },
};

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)kcpx_get_le32(p) | (uint64_t)kcpx_get_le32(p + 4) << 32;
}

static void test_siphash_vectors(void)
{
	uint8_t key[16], msg[64], out[8];

	for (int i = 0; i < 16; i++)
		key[i] = (uint8_t)i;
	for (int i = 0; i < 64; i++)
		msg[i] = (uint8_t)i;
	for (size_t i = 0; i < KCPX_ARRAY_SIZE(sip_vec); i++) {
		crypto_shorthash_siphash24(out, msg, sip_vec[i].len, key);
		CHECK_EQ(le64(out), sip_vec[i].h);
	}
}

/* The tag covers bytes 0..15 (+ the FEC header) and is what the paper's function gives. */
static void test_tag(void)
{
	uint8_t key[16], d[64], msg[22], out[8];

	for (int i = 0; i < 16; i++)
		key[i] = (uint8_t)i;
	for (int i = 0; i < 64; i++)
		d[i] = (uint8_t)(0x40 + i);
	d[2] = 0;
	crypto_shorthash_siphash24(out, d, 16, key);
	CHECK_EQ(kcpx_native_tag(key, d), le64(out));
	d[20] ^= 1; /* inside the tag field: not covered */
	CHECK_EQ(kcpx_native_tag(key, d), le64(out));
	d[2] = KCPX_NF_FEC;
	memcpy(msg, d, 16);
	memcpy(msg + 16, d + 24, 6);
	crypto_shorthash_siphash24(out, msg, 22, key);
	CHECK_EQ(kcpx_native_tag(key, d), le64(out));
	d[29] ^= 0x80; /* last FEC byte is covered */
	CHECK(kcpx_native_tag(key, d) != le64(out));
	d[30] ^= 0x80; /* the byte after is not */
	d[29] ^= 0x80;
	CHECK_EQ(kcpx_native_tag(key, d), le64(out));
}

static struct kcpx_native *pair(struct kcpx_native **srv, enum kcpx_native_cipher c)
{
	static const uint8_t secret[32] = { 1, 2, 3 };
	struct kcpx_native *cli;

	if (kcpx_native_new_secret(&cli, secret, SID, false, c) ||
	    kcpx_native_new_secret(srv, secret, SID, true, c))
		abort();
	return cli;
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

static void roundtrip(enum kcpx_native_cipher cipher)
{
	struct kcpx_native *srv, *cli = pair(&srv, cipher);
	uint8_t d[2048], body[1400];
	int len;

	for (size_t n = 0; n <= sizeof(body); n += 233) {
		for (int fec = 0; fec < 2; fec++) {
			size_t bl = n < 6 && fec ? 6 : n;

			fill(body, bl, (uint8_t)n);
			memcpy(d + KCPX_NATIVE_HDR, body, bl);
			len = kcpx_native_seal(cli, d, bl, fec);
			CHECK_EQ(len, KCPX_NATIVE_HDR + bl + KCPX_NATIVE_MAC);
			CHECK_EQ(d[0], KCPX_NATIVE_VERSION);
			CHECK_EQ(d[2], fec ? KCPX_NF_FEC : 0);
			CHECK_EQ(kcpx_get_le32(d + 4), SID);
			if (fec) /* FEC header in clear, the rest not */
				CHECK_MEM(d + KCPX_NATIVE_HDR, body, 6);
			if (bl > 32)
				CHECK(memcmp(d + KCPX_NATIVE_HDR + 6 * fec, body + 6 * fec, 16));
			CHECK_EQ(kcpx_native_open(srv, d, (size_t)len), bl);
			CHECK_MEM(d + KCPX_NATIVE_HDR, body, bl);
			/* and back */
			memcpy(d + KCPX_NATIVE_HDR, body, bl);
			len = kcpx_native_seal(srv, d, bl, fec);
			CHECK_EQ(d[2] & KCPX_NF_SERVER, KCPX_NF_SERVER);
			CHECK_EQ(kcpx_native_open(cli, d, (size_t)len), bl);
			CHECK_MEM(d + KCPX_NATIVE_HDR, body, bl);
		}
	}
	CHECK_EQ(kcpx_native_stats(srv)->rx_ok, kcpx_native_stats(cli)->tx_ok);
	CHECK_EQ(kcpx_native_stats(srv)->rx_ok, 14);
	kcpx_native_free(cli);
	kcpx_native_free(srv);
}

static void test_roundtrip_xchacha(void)
{
	roundtrip(KCPX_NATIVE_XCHACHA);
}

static void test_roundtrip_aesgcm(void)
{
	if (!kcpx_native_aes_available()) {
		printf("skip: no AES-NI\n");
		return;
	}
	roundtrip(KCPX_NATIVE_AESGCM);
}

/* Seal one 100-byte datagram (FEC header on) into d; returns its length. */
static size_t seal100(struct kcpx_native *n, uint8_t *d)
{
	fill(d + KCPX_NATIVE_HDR, 100, 9);
	return (size_t)kcpx_native_seal(n, d, 100, true);
}

/* Every bit of every byte flipped, one at a time: each is rejected and counted. */
static void test_every_bit_flip_rejected(void)
{
	struct kcpx_native *srv, *cli = pair(&srv, KCPX_NATIVE_XCHACHA);
	const struct kcpx_native_stats *st = kcpx_native_stats(srv);
	uint8_t good[256], d[256];
	size_t len = seal100(cli, good);
	uint64_t rejects = 0;

	for (size_t i = 0; i < len; i++) {
		for (int b = 0; b < 8; b++) {
			int rc;

			memcpy(d, good, len);
			d[i] ^= (uint8_t)(1 << b);
			rc = kcpx_native_open(srv, d, len);
			CHECK(rc == -EPROTO || rc == -EBADMSG);
			rejects++;
		}
	}
	CHECK_EQ(st->rx_ok, 0);
	CHECK_EQ(st->rx_version + st->rx_proto + st->rx_session + st->rx_tag + st->rx_aead +
			 st->rx_short,
		 rejects);
	/* header bits 16..23 (the tag) and the FEC header: tag; ciphertext and MAC: AEAD */
	CHECK(st->rx_tag >= 8 * (8 + 8 + 6));
	CHECK_EQ(st->rx_aead, 8 * (len - 30));
	CHECK_EQ(st->rx_session, 32);
	CHECK_EQ(st->rx_version, 8);
	memcpy(d, good, len);
	CHECK_EQ(kcpx_native_open(srv, d, len), 100); /* the window did not move on rejects */
	kcpx_native_free(cli);
	kcpx_native_free(srv);
}

static void test_rejects_counted(void)
{
	struct kcpx_native *srv, *cli = pair(&srv, KCPX_NATIVE_XCHACHA), *srv2;
	const struct kcpx_native_stats *st = kcpx_native_stats(srv);
	static const uint8_t other[32] = { 9 };
	uint8_t d[256], keep[256];
	size_t len = seal100(cli, d);

	memcpy(keep, d, len);
	CHECK_EQ(kcpx_native_open(srv, d, 39), -EPROTO); /* < header + MAC */
	CHECK_EQ(st->rx_short, 1);
	memcpy(d, keep, len);
	CHECK_EQ(kcpx_native_open(srv, d, 41), -EPROTO); /* FEC header + MAC do not fit */
	CHECK_EQ(st->rx_short, 2);
	memcpy(d, keep, len);
	d[2] |= KCPX_NF_SERVER; /* a server's own packet reflected back */
	CHECK_EQ(kcpx_native_open(srv, d, len), -EPROTO);
	CHECK_EQ(st->rx_proto, 1);
	memcpy(d, keep, len);
	d[1] = KCPX_NT_INIT;
	CHECK_EQ(kcpx_native_open(srv, d, len), -EPROTO);
	CHECK_EQ(st->rx_proto, 2);
	memcpy(d, keep, len);
	d[3] = 1;
	CHECK_EQ(kcpx_native_open(srv, d, len), -EPROTO);
	CHECK_EQ(st->rx_proto, 3);
	memcpy(d, keep, len);
	d[2] |= 0x40;
	CHECK_EQ(kcpx_native_open(srv, d, len), -EPROTO);
	CHECK_EQ(st->rx_proto, 4);
	memcpy(d, keep, len);
	CHECK_EQ(kcpx_native_open(srv, d, len - 1), -EBADMSG); /* truncated: MAC fails */
	CHECK_EQ(st->rx_aead, 1);
	/* same sid, other keys: the tag fails before any AEAD work */
	CHECK_EQ(kcpx_native_new_secret(&srv2, other, SID, true, KCPX_NATIVE_XCHACHA), 0);
	memcpy(d, keep, len);
	CHECK_EQ(kcpx_native_open(srv2, d, len), -EBADMSG);
	CHECK_EQ(kcpx_native_stats(srv2)->rx_tag, 1);
	CHECK_EQ(kcpx_native_stats(srv2)->rx_aead, 0);
	memcpy(d, keep, len);
	CHECK_EQ(kcpx_native_open(srv, d, len), 100);
	memcpy(d, keep, len);
	CHECK_EQ(kcpx_native_open(srv, d, len), -ESTALE);
	CHECK_EQ(st->rx_replay, 1);
	CHECK_EQ(st->rx_ok, 1);
	CHECK_EQ(kcpx_native_seal(cli, d, 3, true), -EMSGSIZE);
	kcpx_native_free(srv2);
	kcpx_native_free(cli);
	kcpx_native_free(srv);
}

/* Out-of-order delivery inside the window is fine; past it, old; twice, replay. */
static void test_replay_session(void)
{
	struct kcpx_native *srv, *cli = pair(&srv, KCPX_NATIVE_XCHACHA);
	const struct kcpx_native_stats *st = kcpx_native_stats(srv);
	static uint8_t pk[KCPX_REPLAY_WINDOW + 200][160];
	static size_t pl[KCPX_REPLAY_WINDOW + 200];
	size_t n = KCPX_ARRAY_SIZE(pk);
	uint8_t d[160];

	for (size_t i = 0; i < n; i++)
		pl[i] = seal100(cli, pk[i]);
	/* deliver 10 first, then 0..9 in reverse: all accepted */
	memcpy(d, pk[10], pl[10]);
	CHECK_EQ(kcpx_native_open(srv, d, pl[10]), 100);
	for (int i = 9; i >= 0; i--) {
		memcpy(d, pk[i], pl[i]);
		CHECK_EQ(kcpx_native_open(srv, d, pl[i]), 100);
	}
	memcpy(d, pk[5], pl[5]);
	CHECK_EQ(kcpx_native_open(srv, d, pl[5]), -ESTALE);
	CHECK_EQ(st->rx_replay, 1);
	/* jump to the newest: counter 11 is now exactly 'window' behind and too old */
	memcpy(d, pk[n - 1], pl[n - 1]);
	CHECK_EQ(kcpx_native_open(srv, d, pl[n - 1]), 100);
	memcpy(d, pk[n - 1 - KCPX_REPLAY_WINDOW], 160);
	CHECK_EQ(kcpx_native_open(srv, d, pl[0]), -ESTALE);
	CHECK_EQ(st->rx_old, 1);
	/* one newer than that is still inside */
	memcpy(d, pk[n - KCPX_REPLAY_WINDOW], 160);
	CHECK_EQ(kcpx_native_open(srv, d, pl[0]), 100);
	CHECK_EQ(st->rx_ok, 13);
	kcpx_native_free(cli);
	kcpx_native_free(srv);
}

/* The window against a plain model (a set of seen counters), over a long random walk. */
static void test_replay_window_model(void)
{
	static struct kcpx_replay w;
	static uint8_t seen[1 << 20];
	uint64_t top = 0, x = 88172645463325252ULL;
	bool any = false;

	memset(&w, 0, sizeof(w));
	memset(seen, 0, sizeof(seen));
	for (int i = 0; i < 400000; i++) {
		uint64_t c;
		int want, got;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		/* mostly near the top, some far behind, some jumps ahead */
		switch (x % 16) {
		case 0:
			c = top + 1 + (x >> 8) % 300;
			break;
		case 1:
			c = top > 3000 ? top - 1900 - (x >> 8) % 200 : (x >> 8) % 100;
			break;
		default:
			c = top + 4 - (x >> 8) % 64;
			if (c > top + 4)
				c = 0; /* wrapped below zero */
		}
		if (c >= sizeof(seen))
			break;
		if (any && c <= top && top - c >= KCPX_REPLAY_WINDOW)
			want = -ETIMEDOUT;
		else if (seen[c])
			want = -ESTALE;
		else
			want = 0;
		CHECK_EQ(kcpx_replay_check(&w, c), want);
		got = kcpx_replay_update(&w, c);
		CHECK_EQ(got, want);
		if (!got) {
			seen[c] = 1;
			if (c > top)
				top = c;
			any = true;
		}
		CHECK_EQ(w.top, top);
	}
	CHECK(top > 100000); /* the walk went far enough to wrap the ring many times */
}

static void test_replay_edges(void)
{
	struct kcpx_replay w;

	memset(&w, 0, sizeof(w));
	CHECK_EQ(kcpx_replay_update(&w, 0), 0); /* counter 0 is legal, once */
	CHECK_EQ(kcpx_replay_update(&w, 0), -ESTALE);
	/* a jump of exactly one ring keeps nothing of the old bits */
	CHECK_EQ(kcpx_replay_update(&w, KCPX_REPLAY_BITS), 0);
	CHECK_EQ(kcpx_replay_check(&w, 0), -ETIMEDOUT);
	CHECK_EQ(kcpx_replay_check(&w, KCPX_REPLAY_BITS - KCPX_REPLAY_WINDOW + 1), 0);
	CHECK_EQ(kcpx_replay_check(&w, KCPX_REPLAY_BITS - KCPX_REPLAY_WINDOW), -ETIMEDOUT);
	/* near the top of the counter space */
	memset(&w, 0, sizeof(w));
	CHECK_EQ(kcpx_replay_update(&w, KCPX_NATIVE_CTR_LIMIT - 1), 0);
	CHECK_EQ(kcpx_replay_update(&w, KCPX_NATIVE_CTR_LIMIT - 2), 0);
	CHECK_EQ(kcpx_replay_update(&w, KCPX_NATIVE_CTR_LIMIT - 1), -ESTALE);
	CHECK_EQ(kcpx_replay_check(&w, 5), -ETIMEDOUT);
	/* every counter of a full window, newest first: all accepted, then all replays */
	memset(&w, 0, sizeof(w));
	for (uint64_t c = 5000 + KCPX_REPLAY_WINDOW - 1; c >= 5000; c--)
		CHECK_EQ(kcpx_replay_update(&w, c), 0);
	for (uint64_t c = 5000; c < 5000 + KCPX_REPLAY_WINDOW; c++)
		CHECK_EQ(kcpx_replay_update(&w, c), -ESTALE);
	CHECK_EQ(kcpx_replay_update(&w, 4999), -ETIMEDOUT);
}

static void handshake(bool offer, bool allow, enum kcpx_native_cipher want)
{
	static const uint8_t master[32] = { 7, 7, 7 };
	struct kcpx_native_psk *psk;
	struct kcpx_native_hs *hs;
	struct kcpx_native *cli, *srv, *srv2;
	struct kcpx_native_stats st = {};
	uint8_t init[KCPX_NATIVE_HS_LEN], resp[KCPX_NATIVE_HS_LEN], bad[KCPX_NATIVE_HS_LEN];
	uint8_t rc[KCPX_NATIVE_HS_RAND], rs[KCPX_NATIVE_HS_RAND], d[256];
	struct kcpx_native_sess v;
	size_t len;

	fill(rc, sizeof(rc), 1);
	fill(rs, sizeof(rs), 2);
	CHECK_EQ(kcpx_native_psk_new_key(&psk, master), 0);
	CHECK_EQ(kcpx_native_hs_init(&hs, psk, SID, rc, offer, init), 0);
	CHECK_EQ(init[1], KCPX_NT_INIT);
	/* the ephemeral key does not travel in clear */
	CHECK_EQ(kcpx_native_accept(psk, init, sizeof(init), rs, allow, resp, &srv, &st), 0);
	CHECK_EQ(resp[1], KCPX_NT_RESP);
	CHECK_EQ(kcpx_native_cipher(srv), want);
	/* a flipped bit in the RESP: refused, the handshake stays usable */
	memcpy(bad, resp, sizeof(bad));
	bad[KCPX_NATIVE_HDR + 3] ^= 4;
	CHECK_EQ(kcpx_native_hs_finish(hs, bad, sizeof(bad), &cli), -EBADMSG);
	memcpy(bad, resp, sizeof(bad));
	bad[9] ^= 4;
	CHECK_EQ(kcpx_native_hs_finish(hs, bad, sizeof(bad), &cli), -EBADMSG);
	CHECK_EQ(kcpx_native_hs_finish(hs, init, sizeof(init), &cli), -EPROTO);
	CHECK_EQ(kcpx_native_hs_finish(hs, resp, sizeof(resp), &cli), 0);
	CHECK_EQ(kcpx_native_cipher(cli), want);
	CHECK_EQ(kcpx_native_sid(cli), SID);
	kcpx_native_hs_free(hs);
	len = seal100(cli, d);
	CHECK_EQ(kcpx_native_open(srv, d, len), 100);
	len = seal100(srv, d);
	CHECK_EQ(kcpx_native_open(cli, d, len), 100);
	/* the server's map value holds the client->server tag key */
	kcpx_native_bpf_sess(srv, &v);
	len = seal100(cli, d);
	CHECK_EQ(le64(d + 16), kcpx_native_tag((const uint8_t *)v.tag_key, d));
	CHECK_EQ(v.dir_flags, 0);
	/* the same INIT replayed gives a session with other keys (fresh server ephemeral) */
	fill(rs, sizeof(rs), 3);
	CHECK_EQ(kcpx_native_accept(psk, init, sizeof(init), rs, allow, resp, &srv2, &st), 0);
	CHECK_EQ(kcpx_native_open(srv2, d, len), -EBADMSG);
	CHECK_EQ(st.hs_ok, 2);
	kcpx_native_free(srv2);
	/* a flipped bit in the INIT: tag (header) or AEAD (key) */
	memcpy(bad, init, sizeof(bad));
	bad[5] ^= 1;
	CHECK_EQ(kcpx_native_accept(psk, bad, sizeof(bad), rs, allow, resp, &srv2, &st), -EBADMSG);
	CHECK_EQ(st.rx_tag, 1);
	memcpy(bad, init, sizeof(bad));
	bad[40] ^= 1;
	CHECK_EQ(kcpx_native_accept(psk, bad, sizeof(bad), rs, allow, resp, &srv2, &st), -EBADMSG);
	CHECK_EQ(st.hs_bad, 1);
	CHECK_EQ(kcpx_native_accept(psk, init, 71, rs, allow, resp, &srv2, &st), -EPROTO);
	CHECK_EQ(st.rx_proto, 1);
	kcpx_native_free(cli);
	kcpx_native_free(srv);
	kcpx_native_psk_free(psk);
}

static void test_handshake_xchacha(void)
{
	handshake(false, true, KCPX_NATIVE_XCHACHA);
	handshake(true, false, KCPX_NATIVE_XCHACHA);
}

static void test_handshake_aes(void)
{
	if (!kcpx_native_aes_available()) {
		printf("skip: no AES-NI\n");
		return;
	}
	handshake(true, true, KCPX_NATIVE_AESGCM);
}

/* Two PSKs from passphrases: same pass, same keys; other pass, INIT refused by tag. */
static void test_psk_passphrase(void)
{
	struct kcpx_native_psk *a, *b, *c;
	struct kcpx_native_hs *hs;
	struct kcpx_native *srv;
	struct kcpx_native_cfg ca, cb;
	struct kcpx_native_stats st = {};
	uint8_t init[KCPX_NATIVE_HS_LEN], resp[KCPX_NATIVE_HS_LEN], r[KCPX_NATIVE_HS_RAND] = { 5 };

	CHECK_EQ(kcpx_native_psk_new(&a, "it's a secret"), 0);
	CHECK_EQ(kcpx_native_psk_new(&b, "it's a secret"), 0);
	CHECK_EQ(kcpx_native_psk_new(&c, "it's a secreT"), 0);
	kcpx_native_psk_bpf_cfg(a, true, &ca);
	kcpx_native_psk_bpf_cfg(b, true, &cb);
	CHECK_MEM(&ca, &cb, sizeof(ca));
	CHECK_EQ(ca.enabled, 1);
	kcpx_native_psk_bpf_cfg(c, true, &cb);
	CHECK(memcmp(ca.hs_tag_key, cb.hs_tag_key, 16));
	CHECK_EQ(kcpx_native_hs_init(&hs, a, 77, r, false, init), 0);
	CHECK_EQ(kcpx_native_accept(b, init, sizeof(init), r, false, resp, &srv, &st), 0);
	kcpx_native_free(srv);
	CHECK_EQ(kcpx_native_accept(c, init, sizeof(init), r, false, resp, &srv, &st), -EBADMSG);
	CHECK_EQ(st.rx_tag, 1);
	kcpx_native_hs_free(hs);
	CHECK_EQ(kcpx_native_hs_init(&hs, a, 0, r, false, init), -EINVAL);
	CHECK(hs == NULL);
	kcpx_native_psk_free(a);
	kcpx_native_psk_free(b);
	kcpx_native_psk_free(c);
}

/* ---------------------------------------------------- sessions on a simulated link */

struct nend {
	struct kcpx_session *s;
	struct kcpx_crypt *crypt; /* kcptun format; NULL for native */
	struct linksim *out;
	struct kcpx_snmp snmp;
	uint32_t sid;
	bool have_sid;
	uint64_t sent, native_sent;
};

static uint32_t sim_now;

static void n_xmit(void *user, const uint8_t *dgram, size_t len)
{
	struct nend *e = user;

	e->sent++;
	if (len >= KCPX_NATIVE_HDR && dgram[0] == KCPX_NATIVE_VERSION && dgram[1] == KCPX_NT_DATA)
		e->native_sent++;
	linksim_send(e->out, sim_now, dgram, len);
}

static void n_accept(void *user, uint32_t sid)
{
	struct nend *e = user;

	e->sid = sid;
	e->have_sid = true;
}

static const struct kcpx_session_ops n_ops = { .xmit = n_xmit, .accept = n_accept };

static struct kcpx_session_config sim_cfg(bool client)
{
	return (struct kcpx_session_config){
		.conv = SID,
		.mtu = 1350,
		.sndwnd = 256,
		.rcvwnd = 1024,
		.nodelay = 1,
		.interval = 10,
		.resend = 2,
		.nc = 1,
		.datashard = 10,
		.parityshard = 3,
		.comp = false,
		.native = true,
		.smux = { .version = 1,
			  .client = client,
			  .max_frame = 32768,
			  .max_recv_buffer = 4194304,
			  .max_stream_buffer = 2097152 },
	};
}

/* One ms: deliver what is due to each end, read what the server got, run due ticks. */
static void sim_step(struct nend *c, struct nend *srv, struct linksim *ab, struct linksim *ba,
		     uint8_t *got, size_t *got_len, size_t cap)
{
	struct {
		struct linksim *in;
		struct nend *to;
	} dir[2] = { { ab, srv }, { ba, c } };
	uint8_t buf[1600], *body;
	size_t blen;
	uint32_t conv;
	long n;

	for (int k = 0; k < 2; k++) {
		bool any = false;

		while ((n = linksim_recv(dir[k].in, sim_now, buf, sizeof(buf))) >= 0) {
			struct nend *e = dir[k].to;
			int rc = e->crypt ? kcpx_session_open(e->crypt, &e->snmp, buf, (size_t)n,
							      &body, &blen, &conv)
					  : kcpx_session_open_native(e->s, buf, (size_t)n, &body,
								     &blen);

			if (!rc)
				kcpx_session_input(e->s, body, blen, sim_now);
			any = true;
		}
		if (any)
			kcpx_session_pump(dir[k].to->s, sim_now);
	}
	if (srv->have_sid) {
		ssize_t r = kcpx_smux_read(kcpx_session_smux(srv->s), srv->sid, got + *got_len,
					   cap - *got_len);
		if (r > 0) {
			*got_len += (size_t)r;
			kcpx_session_pump(srv->s, sim_now);
		}
	}
	for (int k = 0; k < 2; k++) {
		struct kcpx_session *s = k ? srv->s : c->s;

		if ((int32_t)(kcpx_session_deadline(s, sim_now) - sim_now) <= 0)
			kcpx_session_tick(s, sim_now);
	}
	sim_now++;
}

/*
 * Write data[off..len) on client stream sid (data[0..off) was written before); run until
 * the server read all len bytes of its one stream (<= 60 s of simulated time).
 */
static int sim_transfer(struct nend *c, struct nend *srv, struct linksim *ab, struct linksim *ba,
			uint32_t sid, const uint8_t *data, uint8_t *got, size_t len, size_t off)
{
	struct kcpx_smux *m = kcpx_session_smux(c->s);
	size_t got_len = 0;
	uint32_t t0 = sim_now;

	while (got_len < len) {
		if (off < len) {
			ssize_t w = kcpx_smux_write(m, sid, data + off, len - off);

			if (w > 0) {
				off += (size_t)w;
				kcpx_session_pump(c->s, sim_now);
			}
		}
		sim_step(c, srv, ab, ba, got, &got_len, len);
		if (sim_now - t0 > 60000)
			return -1;
	}
	return 0;
}

static void test_session_native_link(void)
{
	static const uint8_t master[32] = { 4, 4 };
	static uint8_t data[1 << 20], got[1 << 20];
	struct kcpx_session_config cc = sim_cfg(true), sc = sim_cfg(false);
	uint8_t init[KCPX_NATIVE_HS_LEN], resp[KCPX_NATIVE_HS_LEN], r[KCPX_NATIVE_HS_RAND] = { 8 };
	struct kcpx_native_psk *psk;
	struct kcpx_native_hs *hs;
	struct kcpx_native *nc, *ns;
	struct linksim ab, ba;
	struct nend c = { 0 }, srv = { 0 };
	uint32_t sid;

	linksim_init(&ab, 11);
	linksim_init(&ba, 12);
	ab.delay = ba.delay = 20;
	ab.loss = ba.loss = 0.02;
	ab.dup = ba.dup = 0.01;
	c.out = &ab;
	srv.out = &ba;
	fill(data, sizeof(data), 3);
	CHECK_EQ(kcpx_native_psk_new_key(&psk, master), 0);
	c.s = kcpx_session_new(&cc, &n_ops, &c, &c.snmp, sim_now);
	CHECK(c.s);
	CHECK(kcpx_session_pending(c.s));
	/* pending: data waits, nothing goes out, the session polls its handshake */
	CHECK_EQ(kcpx_smux_open(kcpx_session_smux(c.s), &sid), 0);
	CHECK_EQ(kcpx_smux_write(kcpx_session_smux(c.s), sid, data, 1000), 1000);
	kcpx_session_pump(c.s, sim_now);
	kcpx_session_tick(c.s, sim_now + 500);
	CHECK_EQ(c.sent, 0);
	CHECK_EQ(kcpx_session_deadline(c.s, sim_now), sim_now + KCPX_SESSION_HS_POLL);
	/* the handshake, carried by hand */
	CHECK_EQ(kcpx_native_hs_init(&hs, psk, SID, r, true, init), 0);
	r[0] = 9;
	CHECK_EQ(kcpx_native_accept(psk, init, sizeof(init), r, true, resp, &ns, NULL), 0);
	srv.s = kcpx_session_new(&sc, &n_ops, &srv, &srv.snmp, sim_now);
	CHECK(srv.s);
	kcpx_session_set_native(srv.s, ns);
	CHECK_EQ(kcpx_native_hs_finish(hs, resp, sizeof(resp), &nc), 0);
	kcpx_native_hs_free(hs);
	kcpx_session_set_native(c.s, nc);
	CHECK(!kcpx_session_pending(c.s));
	CHECK(kcpx_session_native(c.s) == nc);
	/* the 1000 bytes written while pending leave now; the rest of 1 MiB follows */
	kcpx_session_pump(c.s, sim_now);
	CHECK(c.sent > 0);
	CHECK_EQ(sim_transfer(&c, &srv, &ab, &ba, sid, data, got, sizeof(data), 1000), 0);
	CHECK_MEM(got, data, sizeof(data));
	CHECK_EQ(c.sent, c.native_sent);
	CHECK(srv.snmp.FECRecovered > 0);
	/* linksim duplicates were refused by the replay window, and counted */
	CHECK(ab.duplicated > 0);
	CHECK(kcpx_native_stats(ns)->rx_replay > 0);
	CHECK_EQ(kcpx_native_stats(ns)->rx_tag + kcpx_native_stats(ns)->rx_aead, 0);
	CHECK_EQ(srv.snmp.InCsumErrors, 0);
	printf("      1 MiB over 2%% loss, 1%% dup: %u ms, %llu datagrams, "
	       "%llu FEC recovered, %llu replays refused\n",
	       sim_now, (unsigned long long)c.sent, (unsigned long long)srv.snmp.FECRecovered,
	       (unsigned long long)kcpx_native_stats(ns)->rx_replay);
	kcpx_session_free(c.s);
	kcpx_session_free(srv.s);
	kcpx_native_psk_free(psk);
	linksim_free(&ab);
	linksim_free(&ba);
}

/* --proto auto without a kcpx server: the pending session falls back to kcptun format. */
static void test_session_fallback(void)
{
	static uint8_t data[256 << 10], got[256 << 10];
	static const uint8_t seed_c[32] = { 1 }, seed_s[32] = { 2 };
	struct kcpx_session_config cc = sim_cfg(true), sc = sim_cfg(false);
	struct linksim ab, ba;
	struct nend c = { 0 }, srv = { 0 };
	uint32_t sid;

	linksim_init(&ab, 21);
	linksim_init(&ba, 22);
	ab.delay = ba.delay = 10;
	ab.loss = ba.loss = 0.01;
	c.out = &ab;
	srv.out = &ba;
	fill(data, sizeof(data), 5);
	CHECK_EQ(kcpx_crypt_new(&c.crypt, "aes", "k3y", seed_c), 0);
	CHECK_EQ(kcpx_crypt_new(&srv.crypt, "aes", "k3y", seed_s), 0);
	c.s = kcpx_session_new(&cc, &n_ops, &c, &c.snmp, sim_now);
	sc.native = false;
	sc.crypt = srv.crypt;
	srv.s = kcpx_session_new(&sc, &n_ops, &srv, &srv.snmp, sim_now);
	CHECK(c.s && srv.s);
	CHECK(kcpx_session_pending(c.s));
	kcpx_session_fallback(c.s, c.crypt);
	CHECK(!kcpx_session_pending(c.s));
	CHECK_EQ(kcpx_smux_open(kcpx_session_smux(c.s), &sid), 0);
	CHECK_EQ(sim_transfer(&c, &srv, &ab, &ba, sid, data, got, sizeof(data), 0), 0);
	CHECK_MEM(got, data, sizeof(data));
	CHECK(c.sent > 100);
	CHECK_EQ(c.native_sent, 0);
	CHECK_EQ(srv.snmp.InCsumErrors, 0);
	kcpx_session_free(c.s);
	kcpx_session_free(srv.s);
	kcpx_crypt_free(c.crypt);
	kcpx_crypt_free(srv.crypt);
	linksim_free(&ab);
	linksim_free(&ba);
}

static uint64_t fl_rng = 0x9e3779b97f4a7c15ULL;
static uint32_t fl_rand(void) /* xorshift64: the same walk on every run */
{
	fl_rng ^= fl_rng << 13;
	fl_rng ^= fl_rng >> 7;
	fl_rng ^= fl_rng << 17;
	return (uint32_t)(fl_rng >> 32);
}

/*
 * kcpx_fec_learn (include/kcpx_native.h, XDP's shape learning) over a peer's shards as a
 * lossy, slightly reordering path delivers them, groups sometimes closed early (data
 * seqids skipped) or with fewer parity shards: the shape it uses is the peer's by the
 * end, and a wrong one is in use for almost none of the shards.
 */
static void test_fec_learn_lossy(void)
{
	static const uint8_t shapes[][2] = { { 10, 3 },	 { 5, 2 },    { 3, 1 },	   { 1, 1 },
					     { 20, 20 }, { 200, 56 }, { 128, 128 } };
	static const unsigned loss[] = { 0, 5, 20 }; /* percent of shards lost */

	for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
		for (size_t li = 0; li < sizeof(loss) / sizeof(loss[0]); li++) {
			uint32_t ds = shapes[si][0], ps = shapes[si][1], n = ds + ps;
			uint32_t groups = 300000 / n + 50, held_seq = 0, first_ok = 0;
			struct kcpx_fec_shape f = { 0 };
			uint64_t total = 0, wrong = 0;
			bool held = false;
			int held_data = 0;

			for (uint32_t g = 0; g < groups; g++) {
				/* 1 in 10 groups closed early, 1 in 10 with fewer parity */
				uint32_t sent_d = fl_rand() % 10 ? ds : 1 + fl_rand() % ds;
				uint32_t sent_p = fl_rand() % 10 ? ps : 1 + fl_rand() % ps;

				for (uint32_t i = 0; i < n; i++) {
					bool data = i < ds;

					if ((data && i >= sent_d) || (!data && i - ds >= sent_p))
						continue;
					if (fl_rand() % 100 < loss[li])
						continue;
					/* 1 in 100 swapped with the next shard delivered */
					if (!held && fl_rand() % 100 == 0) {
						held = true;
						held_seq = g * n + i;
						held_data = data;
						continue;
					}
					kcpx_fec_learn(&f, g * n + i, data);
					total++;
					if (held) {
						kcpx_fec_learn(&f, held_seq, held_data);
						total++;
						held = false;
					}
					if (f.ds && (f.ds != ds || f.ps != ps))
						wrong++;
					if (f.ds == ds && f.ps == ps && !first_ok)
						first_ok = g + 1;
				}
			}
			if (wrong || loss[li] == 20)
				printf("      %u/%u at %u%% loss: learnt in group %u, wrong shape "
				       "for "
				       "%llu of %llu shards\n",
				       ds, ps, loss[li], first_ok, (unsigned long long)wrong,
				       (unsigned long long)total);
			if (loss[li] == 0)
				CHECK(first_ok > 0 && first_ok <= 30);
			CHECK_EQ(f.ds, ds);
			CHECK_EQ(f.ps, ps);
			CHECK(wrong * 1000 <= total);
		}
	}
}

/* Any header sequence whatever: a shape in use is whole (ds, ps >= 1, <= 256 shards). */
static void test_fec_learn_garbage(void)
{
	struct kcpx_fec_shape f = { 0 };
	uint32_t s = 0;

	for (int i = 0; i < 2000000; i++) {
		uint32_t r = fl_rand();

		s = (r & 3) ? s + 1 : fl_rand() % 4096; /* mostly consecutive, like a peer */
		kcpx_fec_learn(&f, s, (r >> 2) & 1);
		CHECK_EQ(!f.ds, !f.ps);
		CHECK((uint32_t)f.ds + f.ps <= KCPX_FEC_TRACK_MAX);
	}
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	RUN(test_siphash_vectors);
	RUN(test_tag);
	RUN(test_roundtrip_xchacha);
	RUN(test_roundtrip_aesgcm);
	RUN(test_every_bit_flip_rejected);
	RUN(test_rejects_counted);
	RUN(test_replay_session);
	RUN(test_replay_window_model);
	RUN(test_replay_edges);
	RUN(test_handshake_xchacha);
	RUN(test_handshake_aes);
	RUN(test_psk_passphrase);
	RUN(test_session_native_link);
	RUN(test_session_fallback);
	RUN(test_fec_learn_lossy);
	RUN(test_fec_learn_garbage);
	UNIT_MAIN_END();
}
