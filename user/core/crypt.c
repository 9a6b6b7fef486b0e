// SPDX-License-Identifier: MIT
/*
 * kcptun datagram crypto. Facts from kcp-go v5.6.1 (the library of kcptun 20210922):
 *  - every block cipher runs a "local CFB": keystream block = E(previous ciphertext block),
 *    starting from E(fixed IV); the whole datagram, nonce included, is encrypted, so the
 *    encrypted nonce block is the IV of the rest. That is textbook CFB with full-block
 *    feedback and IV = kcpIV, which libgcrypt's CFB mode does for us (final partial block:
 *    truncated keystream, also as libgcrypt does).
 *  - salsa20 leaves bytes 0..7 in clear as its nonce and XORs bytes 8.. from block 0.
 *  - xor XORs with a 1500-byte PBKDF2 table from byte 0.
 *  - none: nonce and CRC written, nothing encrypted.
 * The newer aes-128-gcm seals body with a 12-byte nonce and appends the tag; "null" has
 * no header at all (kcp-go's block == nil).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <gcrypt.h>
#include <sodium.h>

#include "core/crc.h"
#include "core/crypt.h"
#include "core/util.h"

#define XOR_TABLE_LEN 1500 /* kcp-go mtuLimit */
#define GCM_NONCE     12
#define GCM_TAG	      16
#define RNG_BUF	      512

enum crypt_kind {
	K_CFB,	   /* libgcrypt block cipher in CFB mode */
	K_TEA,	   /* our TEA (16 Go rounds) in CFB-64 */
	K_XTEA,	   /* our XTEA in CFB-64 */
	K_SALSA20, /* libsodium */
	K_XOR,
	K_NONE,
	K_GCM,
	K_NULL,
};

struct crypt_algo {
	const char *name;
	enum crypt_kind kind;
	int gcry_algo; /* K_CFB, K_GCM */
	size_t keylen; /* bytes of the derived key used */
};

/* kcptun 20210922 client/server main.go, plus the two names of newer releases. */
static const struct crypt_algo crypt_algos[] = {
	{ "aes", K_CFB, GCRY_CIPHER_AES256, 32 },
	{ "aes-128", K_CFB, GCRY_CIPHER_AES128, 16 },
	{ "aes-192", K_CFB, GCRY_CIPHER_AES192, 24 },
	{ "salsa20", K_SALSA20, 0, 32 },
	{ "blowfish", K_CFB, GCRY_CIPHER_BLOWFISH, 32 },
	{ "twofish", K_CFB, GCRY_CIPHER_TWOFISH, 32 },
	{ "cast5", K_CFB, GCRY_CIPHER_CAST5, 16 },
	{ "3des", K_CFB, GCRY_CIPHER_3DES, 24 },
	{ "tea", K_TEA, 0, 16 },
	{ "xtea", K_XTEA, 0, 16 },
	{ "sm4", K_CFB, GCRY_CIPHER_SM4, 16 },
	{ "xor", K_XOR, 0, 32 },
	{ "none", K_NONE, 0, 0 },
	{ "aes-128-gcm", K_GCM, GCRY_CIPHER_AES128, 16 },
	{ "null", K_NULL, 0, 0 },
};

/* kcp-go's initialVector. */
static const uint8_t kcp_iv[16] = { 0xa7, 0x73, 0x4f, 0x9c, 0x12, 0xac, 0x1b, 0x01,
				    0xa4, 0x15, 0xf2, 0xc1, 0xfc, 0x78, 0xe6, 0x6b };

struct kcpx_crypt {
	const struct crypt_algo *algo;
	size_t header, trailer;
	gcry_cipher_hd_t hd; /* K_CFB, K_GCM */
	size_t blklen;	     /* K_CFB */
	uint8_t key[KCPX_CRYPT_KEYLEN];
	uint32_t tea_k[4];     /* K_TEA: big-endian key words */
	uint32_t xtea_tab[64]; /* K_XTEA: per-round sum + key word, as Go precomputes */
	uint8_t *xor_tab;      /* K_XOR: XOR_TABLE_LEN bytes */

	/* nonce generator: ChaCha20 keystream under rng_key, block counter in rng_ctr */
	uint8_t rng_key[crypto_stream_chacha20_KEYBYTES];
	uint64_t rng_ctr;
	size_t rng_pos;
	uint8_t rng_buf[RNG_BUF];
};

static int crypt_lib_init(void)
{
	if (sodium_init() < 0)
		return -EIO;
	if (!gcry_control(GCRYCTL_INITIALIZATION_FINISHED_P)) {
		if (!gcry_check_version(GCRYPT_VERSION))
			return -EIO;
		gcry_control(GCRYCTL_DISABLE_SECMEM, 0);
		gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
	}
	return 0;
}

int kcpx_crypt_lib_init(void)
{
	return crypt_lib_init();
}

int kcpx_crypt_derive_key(const char *pass, uint8_t key[KCPX_CRYPT_KEYLEN])
{
	if (crypt_lib_init())
		return -EIO;
	if (!pass)
		pass = "";
	if (gcry_kdf_derive(pass, strlen(pass), GCRY_KDF_PBKDF2, GCRY_MD_SHA1, "kcp-go", 6, 4096,
			    KCPX_CRYPT_KEYLEN, key))
		return -EIO;
	return 0;
}

static const struct crypt_algo *crypt_lookup(const char *name)
{
	for (size_t i = 0; name && i < KCPX_ARRAY_SIZE(crypt_algos); i++)
		if (!strcmp(name, crypt_algos[i].name))
			return &crypt_algos[i];
	return &crypt_algos[0]; /* kcptun: anything else is aes */
}

/* --- TEA / XTEA, big-endian 64-bit blocks as golang.org/x/crypto --- */

#define TEA_DELTA 0x9e3779b9u

static inline uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* kcp-go asks for 16 "rounds", which Go's tea counts in half-cycles: 8 full cycles. */
static void tea_encrypt(const struct kcpx_crypt *c, uint8_t blk[8])
{
	uint32_t v0 = get_be32(blk), v1 = get_be32(blk + 4), sum = 0;
	const uint32_t *k = c->tea_k;

	for (int i = 0; i < 8; i++) {
		sum += TEA_DELTA;
		v0 += ((v1 << 4) + k[0]) ^ (v1 + sum) ^ ((v1 >> 5) + k[1]);
		v1 += ((v0 << 4) + k[2]) ^ (v0 + sum) ^ ((v0 >> 5) + k[3]);
	}
	put_be32(blk, v0);
	put_be32(blk + 4, v1);
}

/* XTEA, 64 rounds (32 cycles); the round table folds the key schedule in. */
static void xtea_setup(struct kcpx_crypt *c, const uint8_t key[16])
{
	uint32_t k[4], sum = 0;

	for (int i = 0; i < 4; i++)
		k[i] = get_be32(key + 4 * i);
	for (int i = 0; i < 64; i += 2) {
		c->xtea_tab[i] = sum + k[sum & 3];
		sum += TEA_DELTA;
		c->xtea_tab[i + 1] = sum + k[(sum >> 11) & 3];
	}
}

static void xtea_encrypt(const struct kcpx_crypt *c, uint8_t blk[8])
{
	uint32_t v0 = get_be32(blk), v1 = get_be32(blk + 4);

	for (int i = 0; i < 64; i += 2) {
		v0 += (((v1 << 4) ^ (v1 >> 5)) + v1) ^ c->xtea_tab[i];
		v1 += (((v0 << 4) ^ (v0 >> 5)) + v0) ^ c->xtea_tab[i + 1];
	}
	put_be32(blk, v0);
	put_be32(blk + 4, v1);
}

/* CFB-64 over an 8-byte block function: keystream = E(previous ciphertext block). */
static void cfb8_crypt(const struct kcpx_crypt *c,
		       void (*enc)(const struct kcpx_crypt *, uint8_t *), uint8_t *p, size_t n,
		       bool decrypt)
{
	uint8_t ks[8];

	memcpy(ks, kcp_iv, 8);
	enc(c, ks);
	for (; n >= 8; p += 8, n -= 8) {
		uint64_t in, k, out;

		memcpy(&in, p, 8);
		memcpy(&k, ks, 8);
		out = in ^ k;
		memcpy(p, &out, 8);
		memcpy(ks, decrypt ? &in : &out, 8); /* the ciphertext block feeds back */
		enc(c, ks);
	}
	for (size_t i = 0; i < n; i++) /* final partial block: truncated keystream */
		p[i] ^= ks[i];
	sodium_memzero(ks, sizeof(ks));
}

/* --- setup --- */

int kcpx_crypt_new_key(struct kcpx_crypt **out, const char *name,
		       const uint8_t key[KCPX_CRYPT_KEYLEN], const uint8_t seed[32])
{
	struct kcpx_crypt *c;
	const struct crypt_algo *a = crypt_lookup(name);
	int err;

	*out = NULL;
	err = crypt_lib_init();
	if (err)
		return err;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->algo = a;
	memcpy(c->key, key, KCPX_CRYPT_KEYLEN);
	memcpy(c->rng_key, seed, sizeof(c->rng_key));
	c->rng_pos = RNG_BUF; /* empty: first nonce refills */
	c->header = KCPX_CRYPT_HDR;

	switch (a->kind) {
	case K_CFB:
		c->blklen = gcry_cipher_get_algo_blklen(a->gcry_algo);
		if (gcry_cipher_open(&c->hd, a->gcry_algo, GCRY_CIPHER_MODE_CFB, 0))
			goto fail;
		/* 3DES: libgcrypt rejects weak DES subkeys; Go does not, so neither do we. */
		if (a->gcry_algo == GCRY_CIPHER_3DES)
			gcry_cipher_ctl(c->hd, GCRYCTL_SET_ALLOW_WEAK_KEY, NULL, 1);
		if (gcry_cipher_setkey(c->hd, key, a->keylen))
			goto fail;
		break;
	case K_GCM:
		c->header = GCM_NONCE;
		c->trailer = GCM_TAG;
		if (gcry_cipher_open(&c->hd, a->gcry_algo, GCRY_CIPHER_MODE_GCM, 0))
			goto fail;
		if (gcry_cipher_setkey(c->hd, key, a->keylen))
			goto fail;
		break;
	case K_TEA:
		for (int i = 0; i < 4; i++)
			c->tea_k[i] = get_be32(key + 4 * i);
		break;
	case K_XTEA:
		xtea_setup(c, key);
		break;
	case K_XOR:
		c->xor_tab = malloc(XOR_TABLE_LEN);
		if (!c->xor_tab)
			goto fail_nomem;
		/* kcp-go: pbkdf2.Key(key, "sH3CIVoF#rWLtJo6", 32 rounds, mtuLimit bytes, sha1) */
		if (gcry_kdf_derive(key, KCPX_CRYPT_KEYLEN, GCRY_KDF_PBKDF2, GCRY_MD_SHA1,
				    "sH3CIVoF#rWLtJo6", 16, 32, XOR_TABLE_LEN, c->xor_tab))
			goto fail;
		break;
	case K_NULL:
		c->header = 0;
		break;
	case K_SALSA20:
	case K_NONE:
		break;
	}
	*out = c;
	return 0;

fail_nomem:
	kcpx_crypt_free(c);
	return -ENOMEM;
fail:
	kcpx_crypt_free(c);
	return -EIO;
}

int kcpx_crypt_new(struct kcpx_crypt **out, const char *name, const char *pass,
		   const uint8_t seed[32])
{
	uint8_t key[KCPX_CRYPT_KEYLEN];
	int err;

	*out = NULL;
	err = kcpx_crypt_derive_key(pass, key);
	if (!err)
		err = kcpx_crypt_new_key(out, name, key, seed);
	sodium_memzero(key, sizeof(key));
	return err;
}

void kcpx_crypt_free(struct kcpx_crypt *c)
{
	if (!c)
		return;
	if (c->hd)
		gcry_cipher_close(c->hd); /* libgcrypt wipes its context */
	if (c->xor_tab) {
		sodium_memzero(c->xor_tab, XOR_TABLE_LEN);
		free(c->xor_tab);
	}
	sodium_memzero(c, sizeof(*c));
	free(c);
}

const char *kcpx_crypt_name(const struct kcpx_crypt *c)
{
	return c->algo->name;
}

size_t kcpx_crypt_header(const struct kcpx_crypt *c)
{
	return c->header;
}

size_t kcpx_crypt_trailer(const struct kcpx_crypt *c)
{
	return c->trailer;
}

/* --- nonce generator --- */

static void crypt_nonce(struct kcpx_crypt *c, uint8_t *out, size_t n)
{
	while (n > 0) {
		size_t k;

		if (c->rng_pos == RNG_BUF) {
			uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];

			/* one 64-bit counter as the nonce: each refill is a fresh stream */
			for (size_t i = 0; i < sizeof(nonce); i++)
				nonce[i] = (uint8_t)(c->rng_ctr >> (8 * i));
			c->rng_ctr++;
			crypto_stream_chacha20(c->rng_buf, RNG_BUF, nonce, c->rng_key);
			c->rng_pos = 0;
		}
		k = KCPX_MIN(n, RNG_BUF - c->rng_pos);
		memcpy(out, c->rng_buf + c->rng_pos, k);
		sodium_memzero(c->rng_buf + c->rng_pos, k); /* used bytes are not kept */
		c->rng_pos += k;
		out += k;
		n -= k;
	}
}

/* --- transforms over the whole datagram (CFB family) --- */

static void crypt_xor(const struct kcpx_crypt *c, uint8_t *p, size_t n)
{
	/* kcp-go XORs min(len, 1500) bytes; longer datagrams never occur (we send <= 1500) */
	const uint8_t *t = c->xor_tab;
	size_t i = 0;

	n = KCPX_MIN(n, (size_t)XOR_TABLE_LEN);
	for (; i + 8 <= n; i += 8) {
		uint64_t a, b;

		memcpy(&a, p + i, 8);
		memcpy(&b, t + i, 8);
		a ^= b;
		memcpy(p + i, &a, 8);
	}
	for (; i < n; i++)
		p[i] ^= t[i];
}

static void crypt_apply(struct kcpx_crypt *c, uint8_t *p, size_t n, bool decrypt)
{
	switch (c->algo->kind) {
	case K_CFB:
		/* setiv restarts the stream; in-place with in == NULL */
		gcry_cipher_setiv(c->hd, kcp_iv, c->blklen);
		if (decrypt)
			gcry_cipher_decrypt(c->hd, p, n, NULL, 0);
		else
			gcry_cipher_encrypt(c->hd, p, n, NULL, 0);
		break;
	case K_TEA:
		cfb8_crypt(c, tea_encrypt, p, n, decrypt);
		break;
	case K_XTEA:
		cfb8_crypt(c, xtea_encrypt, p, n, decrypt);
		break;
	case K_SALSA20:
		if (n > 8)
			crypto_stream_salsa20_xor(p + 8, p + 8, n - 8, p, c->key);
		break;
	case K_XOR:
		crypt_xor(c, p, n);
		break;
	case K_NONE:
	case K_GCM:
	case K_NULL:
		break;
	}
}

size_t kcpx_crypt_seal_nonce(struct kcpx_crypt *c, uint8_t *dgram, size_t body_len,
			     const uint8_t *nonce)
{
	switch (c->algo->kind) {
	case K_NULL:
		return body_len;
	case K_GCM:
		memcpy(dgram, nonce, GCM_NONCE);
		gcry_cipher_setiv(c->hd, dgram, GCM_NONCE);
		gcry_cipher_final(c->hd);
		gcry_cipher_encrypt(c->hd, dgram + GCM_NONCE, body_len, NULL, 0);
		gcry_cipher_gettag(c->hd, dgram + GCM_NONCE + body_len, GCM_TAG);
		return GCM_NONCE + body_len + GCM_TAG;
	default:
		memcpy(dgram, nonce, KCPX_CRYPT_NONCE);
		kcpx_put_le32(dgram + KCPX_CRYPT_NONCE,
			      kcpx_crc32(dgram + KCPX_CRYPT_HDR, body_len));
		crypt_apply(c, dgram, KCPX_CRYPT_HDR + body_len, false);
		return KCPX_CRYPT_HDR + body_len;
	}
}

size_t kcpx_crypt_seal(struct kcpx_crypt *c, uint8_t *dgram, size_t body_len)
{
	uint8_t nonce[KCPX_CRYPT_NONCE];

	if (c->header)
		crypt_nonce(c, nonce, c->header < sizeof(nonce) ? c->header : sizeof(nonce));
	return kcpx_crypt_seal_nonce(c, dgram, body_len, nonce);
}

int kcpx_crypt_open(struct kcpx_crypt *c, uint8_t *dgram, size_t len)
{
	size_t body;

	if (len < c->header + c->trailer || len > (size_t)INT32_MAX)
		return -EMSGSIZE;
	body = len - c->header - c->trailer;

	switch (c->algo->kind) {
	case K_NULL:
		return (int)body;
	case K_GCM:
		gcry_cipher_setiv(c->hd, dgram, GCM_NONCE);
		gcry_cipher_final(c->hd);
		gcry_cipher_decrypt(c->hd, dgram + GCM_NONCE, body, NULL, 0);
		if (gcry_cipher_checktag(c->hd, dgram + GCM_NONCE + body, GCM_TAG))
			return -EBADMSG;
		return (int)body;
	default:
		crypt_apply(c, dgram, len, true);
		if (kcpx_crc32(dgram + KCPX_CRYPT_HDR, body) !=
		    kcpx_get_le32(dgram + KCPX_CRYPT_NONCE))
			return -EBADMSG;
		return (int)body;
	}
}
