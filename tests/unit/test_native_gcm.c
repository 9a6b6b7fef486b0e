// SPDX-License-Identifier: MIT
/*
 * The native protocol's AES-256-GCM, done by libgcrypt (user/core/native.c), against
 * libsodium's, the implementation the wire format was first written with:
 *
 *   - datagrams recorded from the libsodium-based code (fixed key, sid, bodies) come out
 *     byte for byte the same from kcpx_native_seal() (runs on any CPU);
 *   - raw GCM, a few hundred random keys, nonces, AAD and lengths (0, 1, 15, 16, 17, 1350,
 *     1400, random): kcpx_native_gcm_seal() gives libsodium's ciphertext and tag, and each
 *     side opens what the other sealed; a flipped bit in ciphertext, tag or AAD is refused
 *     and leaves no plaintext behind;
 *   - whole sessions: what kcpx_native_seal() sends, libsodium opens with the key and nonce
 *     docs/PROTOCOL.md gives; datagrams built by hand with libsodium at random counters,
 *     kcpx_native_open() takes; flipped ciphertext or MAC bits are counted as rx_aead.
 * libsodium's AES-GCM needs AES-NI + PCLMUL: without them the cross-checks say "skip".
 * Randomness is libsodium's deterministic generator, so a failure repeats.
 */
#include <errno.h>
#include <stdint.h>

#include <sodium.h>

#include "unit.h"
#include "core/native.h"
#include "core/util.h"

#define ROUNDS 400
#define MAXP   2048

static const size_t fixed_lens[] = { 0, 1, 15, 16, 17, 1350, 1400 };

/* A deterministic byte stream: ChaCha20 under a fixed seed, block by block. */
static uint8_t rng_seed[randombytes_SEEDBYTES];
static uint64_t rng_blk;

static void rnd(void *p, size_t n)
{
	memcpy(rng_seed, &rng_blk, sizeof(rng_blk));
	rng_blk++;
	randombytes_buf_deterministic(p, n, rng_seed);
}

static uint32_t rnd32(uint32_t bound)
{
	uint32_t v;

	rnd(&v, sizeof(v));
	return bound ? v % bound : v;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

static bool have_sodium_aes(void)
{
	if (sodium_init() < 0 || !crypto_aead_aes256gcm_is_available()) {
		printf("skip: libsodium has no AES-GCM on this CPU\n");
		return false;
	}
	return true;
}

/* ------------------------------------------------------ recorded datagrams */

/*
 * Sealed by the libsodium (crypto_aead_aes256gcm_*_afternm) version of native.c: secret
 * a0..bf, sid 0x5eed1234. Client: 17-byte body (i * 13 + 1), then FEC on with a 40-byte
 * body (i * 29 + 5), then FEC on with a 1400-byte body (i * 7 + 3, SHA-256 of the
 * datagram kept); server: an empty body.
 */
static const char vec_c0[] = "010100003412ed5e00000000000000003df2c9757547f87bc5df81d89e656605"
			     "673a84f328feb5c2012fac3085bd415e479791af3be50b93ad";
static const char vec_c1[] = "010101003412ed5e010000000000000052a4ee198178be3005223f5c79963ec2"
			     "c968300823dd2366231293c14692c36c8b5fc6d58fb3c057c4866d543ba4a3b2"
			     "97f02c15e87acd7f7cf459debfc223b0";
static const char vec_c2_sha[] = "4f76cfcf0faa81d3db8cfe7d49974a46b3dec61cd814f221c513d0183cd3d8be";
static const char vec_s0[] = "010102003412ed5e0000000000000000f6916df95271c5db1de8dedb48bed706"
			     "044959586910902d";

static void test_recorded_datagrams(void)
{
	uint8_t secret[32], d[KCPX_NATIVE_HDR + 1400 + KCPX_NATIVE_MAC], want[128], h[32];
	struct kcpx_native *cli = NULL, *srv = NULL;
	size_t n;
	int len;

	for (int i = 0; i < 32; i++)
		secret[i] = (uint8_t)(0xa0 + i);
	CHECK_EQ(kcpx_native_new_secret(&cli, secret, 0x5eed1234u, false, KCPX_NATIVE_AESGCM), 0);
	CHECK_EQ(kcpx_native_new_secret(&srv, secret, 0x5eed1234u, true, KCPX_NATIVE_AESGCM), 0);

	for (int i = 0; i < 17; i++)
		d[KCPX_NATIVE_HDR + i] = (uint8_t)(i * 13 + 1);
	len = kcpx_native_seal(cli, d, 17, false);
	n = unit_unhex(vec_c0, want, sizeof(want));
	CHECK_EQ(len, n);
	CHECK_MEM(d, want, n);

	for (int i = 0; i < 40; i++)
		d[KCPX_NATIVE_HDR + i] = (uint8_t)(i * 29 + 5);
	len = kcpx_native_seal(cli, d, 40, true);
	n = unit_unhex(vec_c1, want, sizeof(want));
	CHECK_EQ(len, n);
	CHECK_MEM(d, want, n);

	len = kcpx_native_seal(srv, d, 0, false);
	n = unit_unhex(vec_s0, want, sizeof(want));
	CHECK_EQ(len, n);
	CHECK_MEM(d, want, n);

	for (int i = 0; i < 1400; i++)
		d[KCPX_NATIVE_HDR + i] = (uint8_t)(i * 7 + 3);
	len = kcpx_native_seal(cli, d, 1400, true);
	CHECK_EQ(len, KCPX_NATIVE_HDR + 1400 + KCPX_NATIVE_MAC);
	crypto_hash_sha256(h, d, (size_t)len);
	n = unit_unhex(vec_c2_sha, want, sizeof(want));
	CHECK_MEM(h, want, n);

	/* and the server opens the client's last one */
	CHECK_EQ(kcpx_native_open(srv, d, (size_t)len), 1400);
	for (int i = 0; i < 1400; i++)
		CHECK_EQ(d[KCPX_NATIVE_HDR + i], (uint8_t)(i * 7 + 3));
	kcpx_native_free(cli);
	kcpx_native_free(srv);
}

/* ------------------------------------------------------------ raw GCM */

struct gcm_case {
	uint8_t key[32], nonce[12], ad[64];
	size_t ad_len, len;
	uint8_t plain[MAXP];
};

static void gen_case(struct gcm_case *c, int i)
{
	rnd(c->key, sizeof(c->key));
	rnd(c->nonce, sizeof(c->nonce));
	/* the native path's AAD is 24 or 30 bytes; cover those, none, and anything up to 64 */
	switch (i % 4) {
	case 0:
		c->ad_len = KCPX_NATIVE_HDR;
		break;
	case 1:
		c->ad_len = KCPX_NATIVE_HDR + KCPX_NATIVE_FEC_HDR;
		break;
	case 2:
		c->ad_len = 0;
		break;
	default:
		c->ad_len = rnd32(sizeof(c->ad) + 1);
	}
	rnd(c->ad, sizeof(c->ad));
	if ((size_t)i < 2 * KCPX_ARRAY_SIZE(fixed_lens))
		c->len = fixed_lens[(size_t)i % KCPX_ARRAY_SIZE(fixed_lens)];
	else if (i % 2)
		c->len = fixed_lens[rnd32(KCPX_ARRAY_SIZE(fixed_lens))];
	else
		c->len = rnd32(MAXP + 1);
	rnd(c->plain, c->len);
}

static void test_raw_vs_libsodium(void)
{
	static struct gcm_case c;
	static uint8_t ours[MAXP], theirs[MAXP];
	uint8_t tag[16], stag[16];
	unsigned long long maclen;

	if (!have_sodium_aes())
		return;
	for (int i = 0; i < ROUNDS; i++) {
		gen_case(&c, i);

		/* ours seals: the same bytes as libsodium's, and libsodium opens it */
		memcpy(ours, c.plain, c.len);
		CHECK_EQ(kcpx_native_gcm_seal(c.key, c.nonce, c.ad, c.ad_len, ours, c.len, tag), 0);
		CHECK_EQ(crypto_aead_aes256gcm_encrypt_detached(theirs, stag, &maclen, c.plain,
								c.len, c.ad, c.ad_len, NULL,
								c.nonce, c.key),
			 0);
		CHECK_EQ(maclen, 16);
		CHECK_MEM(ours, theirs, c.len);
		CHECK_MEM(tag, stag, 16);
		CHECK_EQ(crypto_aead_aes256gcm_decrypt_detached(theirs, NULL, ours, c.len, tag,
								c.ad, c.ad_len, c.nonce, c.key),
			 0);
		CHECK_MEM(theirs, c.plain, c.len);

		/* libsodium seals, ours opens */
		CHECK_EQ(crypto_aead_aes256gcm_encrypt_detached(theirs, stag, NULL, c.plain, c.len,
								c.ad, c.ad_len, NULL, c.nonce,
								c.key),
			 0);
		memcpy(ours, theirs, c.len);
		CHECK_EQ(kcpx_native_gcm_open(c.key, c.nonce, c.ad, c.ad_len, ours, c.len, stag),
			 0);
		CHECK_MEM(ours, c.plain, c.len);

		/* one flipped bit anywhere: refused, and the buffer holds no plaintext */
		if (c.len) {
			size_t bit = rnd32((uint32_t)c.len * 8);

			memcpy(ours, theirs, c.len);
			ours[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			CHECK_EQ(kcpx_native_gcm_open(c.key, c.nonce, c.ad, c.ad_len, ours, c.len,
						      stag),
				 -EBADMSG);
			CHECK(all_zero(ours, c.len));
		}
		{
			size_t bit = rnd32(16 * 8);

			memcpy(ours, theirs, c.len);
			stag[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			CHECK_EQ(kcpx_native_gcm_open(c.key, c.nonce, c.ad, c.ad_len, ours, c.len,
						      stag),
				 -EBADMSG);
			CHECK(all_zero(ours, c.len));
			stag[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		}
		if (c.ad_len) {
			size_t bit = rnd32((uint32_t)c.ad_len * 8);

			memcpy(ours, theirs, c.len);
			c.ad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			CHECK_EQ(kcpx_native_gcm_open(c.key, c.nonce, c.ad, c.ad_len, ours, c.len,
						      stag),
				 -EBADMSG);
			CHECK(all_zero(ours, c.len));
			c.ad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		}
		/* the wrong nonce too */
		memcpy(ours, theirs, c.len);
		c.nonce[rnd32(12)] ^= 0x80;
		CHECK_EQ(kcpx_native_gcm_open(c.key, c.nonce, c.ad, c.ad_len, ours, c.len, stag),
			 -EBADMSG);
	}
}

/* ------------------------------------------------------------ sessions */

#define KDF_CTX "kcpxses1" /* docs/PROTOCOL.md, section 3 */
enum { KID_TAG_C2S = 1, KID_TAG_S2C = 2, KID_AEAD_C2S = 3, KID_AEAD_S2C = 4 };

struct dir_keys {
	uint8_t aead[32], tag[16];
};

static void keys_of(struct dir_keys *k, const uint8_t secret[32], bool from_server)
{
	crypto_kdf_derive_from_key(k->aead, 32, from_server ? KID_AEAD_S2C : KID_AEAD_C2S, KDF_CTX,
				   secret);
	crypto_kdf_derive_from_key(k->tag, 16, from_server ? KID_TAG_S2C : KID_TAG_C2S, KDF_CTX,
				   secret);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	kcpx_put_le32(p, (uint32_t)v);
	kcpx_put_le32(p + 4, (uint32_t)(v >> 32));
}

static void nonce_of(uint8_t nonce[12], const uint8_t *d)
{
	memset(nonce, 0, 12);
	memcpy(nonce, d + 8, 8);
}

/*
 * A DATA datagram sealed with libsodium alone: header, SipHash tag (kcpx_native_tag,
 * checked against the paper's vectors in test_native.c), AEAD over the clear prefix.
 * Returns its length.
 */
static size_t sodium_datagram(uint8_t *d, const struct dir_keys *k, bool from_server, uint32_t sid,
			      uint64_t ctr, bool fec, const uint8_t *body, size_t blen)
{
	size_t clear = KCPX_NATIVE_HDR + (fec ? KCPX_NATIVE_FEC_HDR : 0), plain;
	uint8_t nonce[12];

	d[0] = KCPX_NATIVE_VERSION;
	d[1] = KCPX_NT_DATA;
	d[2] = (uint8_t)((fec ? KCPX_NF_FEC : 0) | (from_server ? KCPX_NF_SERVER : 0));
	d[3] = 0;
	kcpx_put_le32(d + 4, sid);
	put_le64(d + 8, ctr);
	memcpy(d + KCPX_NATIVE_HDR, body, blen);
	put_le64(d + 16, kcpx_native_tag(k->tag, d));
	nonce_of(nonce, d);
	plain = KCPX_NATIVE_HDR + blen - clear;
	crypto_aead_aes256gcm_encrypt_detached(d + clear, d + clear + plain, NULL, d + clear, plain,
					       d, clear, NULL, nonce, k->aead);
	return KCPX_NATIVE_HDR + blen + KCPX_NATIVE_MAC;
}

static void test_sessions_vs_libsodium(void)
{
	static uint8_t d[KCPX_NATIVE_HDR + MAXP + KCPX_NATIVE_MAC], body[MAXP], out[MAXP];
	uint8_t secret[32], nonce[12];
	struct dir_keys c2s, s2c;
	struct kcpx_native *cli = NULL, *srv = NULL;
	uint64_t ctr, aead_fail;

	if (!have_sodium_aes())
		return;
	for (int s = 0; s < 40; s++) {
		uint32_t sid = rnd32(0) | 1;

		rnd(secret, sizeof(secret));
		keys_of(&c2s, secret, false);
		keys_of(&s2c, secret, true);
		CHECK_EQ(kcpx_native_new_secret(&cli, secret, sid, false, KCPX_NATIVE_AESGCM), 0);
		CHECK_EQ(kcpx_native_new_secret(&srv, secret, sid, true, KCPX_NATIVE_AESGCM), 0);
		/* anywhere in the counter's 64 bits, all 8 nonce bytes in play */
		rnd(&ctr, sizeof(ctr));
		ctr >>= 2;
		for (int i = 0; i < 10; i++) {
			bool fec = rnd32(2), from_server = i % 2;
			struct kcpx_native *tx = from_server ? srv : cli,
					   *rx = from_server ? cli : srv;
			const struct dir_keys *k = from_server ? &s2c : &c2s;
			size_t blen = i < 7 ? fixed_lens[i] : rnd32(1401), clear, plain;
			int len;

			if (fec && blen < KCPX_NATIVE_FEC_HDR)
				blen = KCPX_NATIVE_FEC_HDR;
			rnd(body, blen);

			/* kcpx seals, libsodium opens with the documented key and nonce */
			memcpy(d + KCPX_NATIVE_HDR, body, blen);
			len = kcpx_native_seal(tx, d, blen, fec);
			CHECK_EQ(len, KCPX_NATIVE_HDR + blen + KCPX_NATIVE_MAC);
			clear = KCPX_NATIVE_HDR + (fec ? KCPX_NATIVE_FEC_HDR : 0);
			plain = (size_t)len - clear - KCPX_NATIVE_MAC;
			nonce_of(nonce, d);
			CHECK_EQ(crypto_aead_aes256gcm_decrypt_detached(out, NULL, d + clear, plain,
									d + clear + plain, d, clear,
									nonce, k->aead),
				 0);
			CHECK_MEM(out, body + (clear - KCPX_NATIVE_HDR), plain);

			/* libsodium seals at a random, growing counter; kcpx opens */
			ctr += 1 + rnd32(1u << 30);
			len = (int)sodium_datagram(d, k, from_server, sid, ctr, fec, body, blen);
			CHECK_EQ(kcpx_native_open(rx, d, (size_t)len), blen);
			CHECK_MEM(d + KCPX_NATIVE_HDR, body, blen);

			/* a flipped ciphertext or MAC bit: counted as rx_aead, no plaintext left */
			ctr++;
			len = (int)sodium_datagram(d, k, from_server, sid, ctr, fec, body, blen);
			{
				size_t bit = clear * 8 + rnd32((uint32_t)(plain + 16) * 8);

				d[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			}
			aead_fail = kcpx_native_stats(rx)->rx_aead;
			CHECK_EQ(kcpx_native_open(rx, d, (size_t)len), -EBADMSG);
			CHECK_EQ(kcpx_native_stats(rx)->rx_aead, aead_fail + 1);
			CHECK(all_zero(d + clear, plain));
		}
		kcpx_native_free(cli);
		kcpx_native_free(srv);
		cli = srv = NULL;
	}
}

int main(void)
{
	RUN(test_recorded_datagrams);
	RUN(test_raw_vs_libsodium);
	RUN(test_sessions_vs_libsodium);
	UNIT_MAIN_END();
}
