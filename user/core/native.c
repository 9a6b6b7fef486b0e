// SPDX-License-Identifier: MIT
/*
 * kcpx native protocol: key schedule, handshake, seal/open, replay window. The byte
 * layout and the reasons behind it are in docs/PROTOCOL.md; this file follows it.
 *
 * Everything is libsodium except the data path's AES-256-GCM, which is libgcrypt's: the
 * same standard GCM (12-byte nonce, 16-byte tag) at twice the speed of libsodium 1.0.18's
 * on CPUs with VAES/VPCLMULQDQ, and correct (if slower) without AES instructions at all.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gcrypt.h>
#include <sodium.h>

#include "core/crypt.h"
#include "core/native.h"
#include "core/util.h"

#define PSK_CTX	 "kcpxpsk1" /* crypto_kdf contexts: exactly 8 bytes */
#define SESS_CTX "kcpxses1"
/* Argon2id cost: 16 MiB and 3 passes, once per process. INTERACTIVE's 64 MiB doubled
 * the daemon's peak memory for a one-off; 3 passes over 16 MiB keep a guess costly. */
#define KCPX_NATIVE_PSK_OPS 3
#define KCPX_NATIVE_PSK_MEM (16u << 20)
#define PSK_SALT	    "kcpx-native-psk1" /* crypto_pwhash_SALTBYTES = 16 */
#define HS_LABEL	    "kcpx native v1 session"

/* Subkey ids under PSK_CTX and SESS_CTX. */
enum { KID_HS_TAG = 1, KID_HS_AEAD = 2 };
enum { KID_TAG_C2S = 1, KID_TAG_S2C = 2, KID_AEAD_C2S = 3, KID_AEAD_S2C = 4 };

_Static_assert(sizeof(PSK_SALT) - 1 == crypto_pwhash_SALTBYTES, "salt size");
_Static_assert(sizeof(PSK_CTX) - 1 == crypto_kdf_CONTEXTBYTES, "kdf context size");

struct kcpx_native_psk {
	uint8_t master[32];
	uint8_t hs_tag[16];
	uint8_t hs_aead[32];
	uint8_t pad[16]; /* size a multiple of 16: sodium_malloc then returns it aligned */
};

struct kcpx_native_hs {
	const struct kcpx_native_psk *psk;
	uint8_t esk[32], epk[32];
	uint32_t sid;
	uint8_t flags;
	uint8_t pad[11];
};

#define GCM_NONCE 12
#define GCM_TAG	  16
_Static_assert(GCM_TAG == KCPX_NATIVE_MAC, "GCM tag is the datagram's MAC");

/*
 * A session's raw keys, in one sodium_malloc block (64-byte multiple). With AES-GCM the
 * expanded key schedule and GHASH tables live in the two libgcrypt handles instead:
 * libgcrypt's heap (secure memory is off process-wide, see crypt.c), wiped by
 * gcry_cipher_close().
 */
struct native_keys {
	uint8_t aead_tx[32], aead_rx[32];
	uint8_t tag_tx[16], tag_rx[16];
} __attribute__((aligned(64)));

struct kcpx_native {
	struct native_keys *k;		 /* sodium_malloc */
	gcry_cipher_hd_t gcm_tx, gcm_rx; /* AES-256-GCM only, else NULL; key set once */
	uint32_t sid;
	bool server;
	enum kcpx_native_cipher cipher;
	uint64_t tx_ctr;
	struct kcpx_replay win;
	struct kcpx_native_stats st;
};

/* libsodium, and libgcrypt once per process: crypt.c owns that initialisation. */
static int native_lib_init(void)
{
	return kcpx_crypt_lib_init();
}

static void kdf(uint8_t *out, size_t len, uint64_t id, const char *ctx, const uint8_t key[32])
{
	crypto_kdf_derive_from_key(out, len, id, ctx, key);
}

/*
 * libsodium's AES-NI + PCLMULQDQ test still decides whether we offer and take AES, as it did
 * when libsodium did the AES: libgcrypt's GCM also runs without those instructions, but
 * its table-driven AES is then slower than XChaCha20, so such a CPU keeps XChaCha20.
 */
bool kcpx_native_aes_available(void)
{
	return native_lib_init() == 0 && crypto_aead_aes256gcm_is_available();
}

/* ------------------------------------------------------------------ keys */

int kcpx_native_psk_new_key(struct kcpx_native_psk **out, const uint8_t master[32])
{
	struct kcpx_native_psk *p;

	*out = NULL;
	if (native_lib_init())
		return -EIO;
	p = sodium_malloc(sizeof(*p));
	if (!p)
		return -ENOMEM;
	memset(p, 0, sizeof(*p));
	memcpy(p->master, master, 32);
	kdf(p->hs_tag, sizeof(p->hs_tag), KID_HS_TAG, PSK_CTX, p->master);
	kdf(p->hs_aead, sizeof(p->hs_aead), KID_HS_AEAD, PSK_CTX, p->master);
	*out = p;
	return 0;
}

int kcpx_native_psk_new(struct kcpx_native_psk **out, const char *pass)
{
	uint8_t master[32];
	int err;

	*out = NULL;
	if (native_lib_init())
		return -EIO;
	if (crypto_pwhash(master, sizeof(master), pass, strlen(pass), (const uint8_t *)PSK_SALT,
			  KCPX_NATIVE_PSK_OPS, KCPX_NATIVE_PSK_MEM, crypto_pwhash_ALG_ARGON2ID13))
		return -EIO;
	err = kcpx_native_psk_new_key(out, master);
	sodium_memzero(master, sizeof(master));
	return err;
}

void kcpx_native_psk_free(struct kcpx_native_psk *p)
{
	sodium_free(p); /* fills with zeros before unmapping; NULL is a no-op */
}

void kcpx_native_psk_bpf_cfg(const struct kcpx_native_psk *p, bool server,
			     struct kcpx_native_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	memcpy(cfg->hs_tag_key, p->hs_tag, 16);
	cfg->enabled = 1;
	cfg->server = server;
}

/* ------------------------------------------------------------ wire bits */

static size_t clear_len(uint8_t flags)
{
	return KCPX_NATIVE_HDR + ((flags & KCPX_NF_FEC) ? KCPX_NATIVE_FEC_HDR : 0);
}

uint64_t kcpx_native_tag(const uint8_t key[16], const uint8_t *dgram)
{
	uint8_t msg[KCPX_NATIVE_TAG_MSG + KCPX_NATIVE_FEC_HDR], out[8];
	size_t n = KCPX_NATIVE_TAG_MSG;

	memcpy(msg, dgram, KCPX_NATIVE_TAG_MSG);
	if (dgram[2] & KCPX_NF_FEC) {
		memcpy(msg + n, dgram + KCPX_NATIVE_HDR, KCPX_NATIVE_FEC_HDR);
		n += KCPX_NATIVE_FEC_HDR;
	}
	crypto_shorthash_siphash24(out, msg, n, key);
	return (uint64_t)kcpx_get_le32(out) | (uint64_t)kcpx_get_le32(out + 4) << 32;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	kcpx_put_le32(p, (uint32_t)v);
	kcpx_put_le32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)kcpx_get_le32(p) | (uint64_t)kcpx_get_le32(p + 4) << 32;
}

static void hdr_write(uint8_t *d, uint8_t type, uint8_t flags, uint32_t sid, uint64_t ctr)
{
	d[0] = KCPX_NATIVE_VERSION;
	d[1] = type;
	d[2] = flags;
	d[3] = 0;
	kcpx_put_le32(d + 4, sid);
	put_le64(d + 8, ctr);
}

/* The tag must be written after the FEC header is in place (it covers it). */
static void hdr_tag(uint8_t *d, const uint8_t key[16])
{
	put_le64(d + 16, kcpx_native_tag(key, d));
}

static bool tag_ok(const uint8_t *d, const uint8_t key[16])
{
	uint8_t want[8];

	put_le64(want, kcpx_native_tag(key, d));
	return sodium_memcmp(want, d + 16, 8) == 0;
}

int kcpx_native_peek(const uint8_t *d, size_t len, struct kcpx_native_info *info)
{
	if (len < KCPX_NATIVE_HDR || d[0] != KCPX_NATIVE_VERSION)
		return -EPROTO;
	info->type = d[1];
	info->flags = d[2];
	info->sid = kcpx_get_le32(d + 4);
	info->ctr = get_le64(d + 8);
	return 0;
}

/* Nonces: the counter, then zeros (XChaCha: 24 bytes, GCM: 12). Handshake packets add
 * sid and type, so INIT and RESP under the one PSK key never share a nonce by design. */
static void nonce_of(uint8_t nonce[24], const uint8_t *d, bool hs)
{
	memset(nonce, 0, 24);
	memcpy(nonce, d + 8, 8);
	if (hs) {
		memcpy(nonce + 8, d + 4, 4);
		nonce[12] = d[1];
	}
}

/* ------------------------------------------------------------ AES-GCM */

static int gcm_new(gcry_cipher_hd_t *hd, const uint8_t key[32])
{
	*hd = NULL;
	if (gcry_cipher_open(hd, GCRY_CIPHER_AES256, GCRY_CIPHER_MODE_GCM, 0))
		return -ENOMEM;
	if (gcry_cipher_setkey(*hd, key, 32)) {
		gcry_cipher_close(*hd);
		*hd = NULL;
		return -EIO;
	}
	return 0;
}

/* In place: p[0..len) is encrypted, the tag written to tag. 0 or -EIO (bad handle state). */
static int gcm_seal(gcry_cipher_hd_t hd, const uint8_t nonce[GCM_NONCE], const uint8_t *ad,
		    size_t ad_len, uint8_t *p, size_t len, uint8_t tag[GCM_TAG])
{
	gcry_error_t e;

	e = gcry_cipher_setiv(hd, nonce, GCM_NONCE);
	e |= gcry_cipher_authenticate(hd, ad, ad_len);
	e |= gcry_cipher_final(hd);
	e |= gcry_cipher_encrypt(hd, p, len, NULL, 0);
	e |= gcry_cipher_gettag(hd, tag, GCM_TAG);
	return e ? -EIO : 0;
}

/*
 * In place: p[0..len) is decrypted and kept only when tag matches (checktag compares in
 * constant time); otherwise it is wiped, so no unauthenticated plaintext ever leaves here.
 */
static int gcm_open(gcry_cipher_hd_t hd, const uint8_t nonce[GCM_NONCE], const uint8_t *ad,
		    size_t ad_len, uint8_t *p, size_t len, const uint8_t tag[GCM_TAG])
{
	gcry_error_t e;

	e = gcry_cipher_setiv(hd, nonce, GCM_NONCE);
	e |= gcry_cipher_authenticate(hd, ad, ad_len);
	e |= gcry_cipher_final(hd);
	e |= gcry_cipher_decrypt(hd, p, len, NULL, 0);
	if (e || gcry_cipher_checktag(hd, tag, GCM_TAG)) {
		sodium_memzero(p, len);
		return -EBADMSG;
	}
	return 0;
}

/* The test helpers: one packet with a handle of its own, through the data path's code. */
static int gcm_once(const uint8_t key[32], const uint8_t nonce[GCM_NONCE], const uint8_t *ad,
		    size_t ad_len, uint8_t *p, size_t len, uint8_t *seal_tag,
		    const uint8_t *open_tag)
{
	gcry_cipher_hd_t hd;
	int err;

	err = native_lib_init();
	if (!err)
		err = gcm_new(&hd, key);
	if (err)
		return err;
	err = seal_tag ? gcm_seal(hd, nonce, ad, ad_len, p, len, seal_tag)
		       : gcm_open(hd, nonce, ad, ad_len, p, len, open_tag);
	gcry_cipher_close(hd);
	return err;
}

int kcpx_native_gcm_seal(const uint8_t key[32], const uint8_t nonce[GCM_NONCE], const uint8_t *ad,
			 size_t ad_len, uint8_t *p, size_t len, uint8_t tag[GCM_TAG])
{
	return gcm_once(key, nonce, ad, ad_len, p, len, tag, NULL);
}

int kcpx_native_gcm_open(const uint8_t key[32], const uint8_t nonce[GCM_NONCE], const uint8_t *ad,
			 size_t ad_len, uint8_t *p, size_t len, const uint8_t tag[GCM_TAG])
{
	return gcm_once(key, nonce, ad, ad_len, p, len, NULL, tag);
}

/* ------------------------------------------------------------ replay */

int kcpx_replay_check(const struct kcpx_replay *w, uint64_t ctr)
{
	if (ctr > w->top)
		return 0;
	if (w->top - ctr >= KCPX_REPLAY_WINDOW)
		return -ETIMEDOUT;
	if (w->bits[(ctr / 64) % KCPX_REPLAY_WORDS] & (1ULL << (ctr % 64)))
		return -ESTALE;
	return 0;
}

int kcpx_replay_update(struct kcpx_replay *w, uint64_t ctr)
{
	int err = kcpx_replay_check(w, ctr);

	if (err)
		return err;
	if (ctr > w->top) {
		uint64_t cur = w->top / 64, want = ctr / 64, diff = want - cur;

		/* Words between the old top and the new one hold counters nobody sent yet. */
		if (diff > KCPX_REPLAY_WORDS)
			diff = KCPX_REPLAY_WORDS;
		for (uint64_t i = 1; i <= diff; i++)
			w->bits[(cur + i) % KCPX_REPLAY_WORDS] = 0;
		w->top = ctr;
	}
	w->bits[(ctr / 64) % KCPX_REPLAY_WORDS] |= 1ULL << (ctr % 64);
	return 0;
}

/* ------------------------------------------------------------ sessions */

static int sess_alloc(struct kcpx_native **out, const uint8_t prk[32], uint32_t sid, bool server,
		      enum kcpx_native_cipher cipher)
{
	struct kcpx_native *n;
	uint8_t tag_c2s[16], tag_s2c[16], aead_c2s[32], aead_s2c[32];
	int err = 0;

	*out = NULL;
	if (native_lib_init())
		return -EIO;
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->k = sodium_malloc(sizeof(*n->k));
	if (!n->k) {
		free(n);
		return -ENOMEM;
	}
	memset(n->k, 0, sizeof(*n->k));
	n->sid = sid;
	n->server = server;
	n->cipher = cipher;
	kdf(tag_c2s, 16, KID_TAG_C2S, SESS_CTX, prk);
	kdf(tag_s2c, 16, KID_TAG_S2C, SESS_CTX, prk);
	kdf(aead_c2s, 32, KID_AEAD_C2S, SESS_CTX, prk);
	kdf(aead_s2c, 32, KID_AEAD_S2C, SESS_CTX, prk);
	memcpy(n->k->tag_tx, server ? tag_s2c : tag_c2s, 16);
	memcpy(n->k->tag_rx, server ? tag_c2s : tag_s2c, 16);
	memcpy(n->k->aead_tx, server ? aead_s2c : aead_c2s, 32);
	memcpy(n->k->aead_rx, server ? aead_c2s : aead_s2c, 32);
	if (cipher == KCPX_NATIVE_AESGCM) {
		err = gcm_new(&n->gcm_tx, n->k->aead_tx);
		if (!err)
			err = gcm_new(&n->gcm_rx, n->k->aead_rx);
	}
	sodium_memzero(tag_c2s, sizeof(tag_c2s));
	sodium_memzero(tag_s2c, sizeof(tag_s2c));
	sodium_memzero(aead_c2s, sizeof(aead_c2s));
	sodium_memzero(aead_s2c, sizeof(aead_s2c));
	if (err) {
		kcpx_native_free(n);
		return err;
	}
	*out = n;
	return 0;
}

int kcpx_native_new_secret(struct kcpx_native **out, const uint8_t secret[32], uint32_t sid,
			   bool server, enum kcpx_native_cipher cipher)
{
	if (!sid)
		return -EINVAL;
	return sess_alloc(out, secret, sid, server, cipher);
}

void kcpx_native_free(struct kcpx_native *n)
{
	if (!n)
		return;
	if (n->gcm_tx)
		gcry_cipher_close(n->gcm_tx); /* wipes the key schedule */
	if (n->gcm_rx)
		gcry_cipher_close(n->gcm_rx);
	sodium_free(n->k);
	sodium_memzero(n, sizeof(*n));
	free(n);
}

uint32_t kcpx_native_sid(const struct kcpx_native *n)
{
	return n->sid;
}

enum kcpx_native_cipher kcpx_native_cipher(const struct kcpx_native *n)
{
	return n->cipher;
}

const struct kcpx_native_stats *kcpx_native_stats(const struct kcpx_native *n)
{
	return &n->st;
}

void kcpx_native_bpf_sess(const struct kcpx_native *n, struct kcpx_native_sess *v)
{
	memset(v, 0, sizeof(*v));
	v->dir_flags = n->server ? 0 : KCPX_NF_SERVER;
	memcpy(v->tag_key, n->k->tag_rx, 16);
}

/* ------------------------------------------------------------ handshake */

/*
 * prk = BLAKE2b-256 keyed with the PSK master over
 *   label | sid le32 | client ephemeral | server ephemeral | X25519 shared secret.
 * Returns -EBADMSG when the peer's key is a low-order point (shared secret all zero).
 */
static int hs_prk(uint8_t prk[32], const struct kcpx_native_psk *psk, uint32_t sid,
		  const uint8_t esk[32], const uint8_t peer[32], const uint8_t cpk[32],
		  const uint8_t spk[32])
{
	crypto_generichash_state h;
	uint8_t shared[32], sidb[4];

	if (crypto_scalarmult(shared, esk, peer))
		return -EBADMSG;
	kcpx_put_le32(sidb, sid);
	crypto_generichash_init(&h, psk->master, 32, 32);
	crypto_generichash_update(&h, (const uint8_t *)HS_LABEL, sizeof(HS_LABEL) - 1);
	crypto_generichash_update(&h, sidb, 4);
	crypto_generichash_update(&h, cpk, 32);
	crypto_generichash_update(&h, spk, 32);
	crypto_generichash_update(&h, shared, 32);
	crypto_generichash_final(&h, prk, 32);
	sodium_memzero(shared, sizeof(shared));
	sodium_memzero(&h, sizeof(h));
	return 0;
}

/* Seal the 32-byte public key at pkt+24 under the PSK handshake key, AD = header (+ad2). */
static void hs_seal(const struct kcpx_native_psk *psk, uint8_t *pkt, const uint8_t *ad2)
{
	uint8_t ad[KCPX_NATIVE_HDR + 32], nonce[24];

	nonce_of(nonce, pkt, true);
	memcpy(ad, pkt, KCPX_NATIVE_HDR);
	if (ad2)
		memcpy(ad + KCPX_NATIVE_HDR, ad2, 32);
	crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
		pkt + KCPX_NATIVE_HDR, pkt + KCPX_NATIVE_HDR + 32, NULL, pkt + KCPX_NATIVE_HDR, 32,
		ad, ad2 ? sizeof(ad) : KCPX_NATIVE_HDR, NULL, nonce, psk->hs_aead);
}

static int hs_open(const struct kcpx_native_psk *psk, const uint8_t *pkt, const uint8_t *ad2,
		   uint8_t pk[32])
{
	uint8_t ad[KCPX_NATIVE_HDR + 32], nonce[24];

	nonce_of(nonce, pkt, true);
	memcpy(ad, pkt, KCPX_NATIVE_HDR);
	if (ad2)
		memcpy(ad + KCPX_NATIVE_HDR, ad2, 32);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
		    pk, NULL, pkt + KCPX_NATIVE_HDR, 32, pkt + KCPX_NATIVE_HDR + 32, ad,
		    ad2 ? sizeof(ad) : KCPX_NATIVE_HDR, nonce, psk->hs_aead))
		return -EBADMSG;
	return 0;
}

/* Checks a handshake packet up to (not including) the AEAD; counts rejects. */
static int hs_check(const struct kcpx_native_psk *psk, const uint8_t *pkt, size_t len, uint8_t type,
		    uint8_t want_dir, struct kcpx_native_stats *st)
{
	struct kcpx_native_stats dummy;

	if (!st)
		st = &dummy;
	if (len < KCPX_NATIVE_HDR) {
		st->rx_short++;
		return -EPROTO;
	}
	if (pkt[0] != KCPX_NATIVE_VERSION) {
		st->rx_version++;
		return -EPROTO;
	}
	if (len != KCPX_NATIVE_HS_LEN || pkt[1] != type || pkt[3] ||
	    (pkt[2] & ~(KCPX_NF_SERVER | KCPX_NF_AES)) || (pkt[2] & KCPX_NF_SERVER) != want_dir ||
	    !kcpx_get_le32(pkt + 4)) {
		st->rx_proto++;
		return -EPROTO;
	}
	if (!tag_ok(pkt, psk->hs_tag)) {
		st->rx_tag++;
		return -EBADMSG;
	}
	return 0;
}

void kcpx_native_reset(const struct kcpx_native_psk *psk, uint32_t sid, uint64_t ctr,
		       const uint8_t rnd[16], uint8_t pkt[KCPX_NATIVE_RESET_LEN])
{
	hdr_write(pkt, KCPX_NT_RESET, KCPX_NF_SERVER, sid, ctr);
	hdr_tag(pkt, psk->hs_tag);
	memcpy(pkt + KCPX_NATIVE_HDR, rnd, 16);
}

bool kcpx_native_reset_ok(const struct kcpx_native_psk *psk, const uint8_t *pkt, size_t len)
{
	return len == KCPX_NATIVE_RESET_LEN && pkt[0] == KCPX_NATIVE_VERSION &&
	       pkt[1] == KCPX_NT_RESET && pkt[2] == KCPX_NF_SERVER && !pkt[3] &&
	       tag_ok(pkt, psk->hs_tag);
}

uint64_t kcpx_native_rx_top(const struct kcpx_native *n)
{
	return n->win.top;
}

bool kcpx_native_init_tag_ok(const struct kcpx_native_psk *psk, const uint8_t *pkt, size_t len)
{
	return len == KCPX_NATIVE_HS_LEN && tag_ok(pkt, psk->hs_tag);
}

int kcpx_native_hs_init(struct kcpx_native_hs **out, const struct kcpx_native_psk *psk,
			uint32_t sid, const uint8_t rnd[KCPX_NATIVE_HS_RAND], bool offer_aes,
			uint8_t pkt[KCPX_NATIVE_HS_LEN])
{
	struct kcpx_native_hs *hs;

	*out = NULL;
	if (!sid)
		return -EINVAL;
	hs = sodium_malloc(sizeof(*hs));
	if (!hs)
		return -ENOMEM;
	memset(hs, 0, sizeof(*hs));
	hs->psk = psk;
	hs->sid = sid;
	hs->flags = offer_aes ? KCPX_NF_AES : 0;
	memcpy(hs->esk, rnd, 32);
	crypto_scalarmult_base(hs->epk, hs->esk);

	hdr_write(pkt, KCPX_NT_INIT, hs->flags, sid, get_le64(rnd + 32));
	memcpy(pkt + KCPX_NATIVE_HDR, hs->epk, 32);
	hdr_tag(pkt, psk->hs_tag);
	hs_seal(psk, pkt, NULL);
	*out = hs;
	return 0;
}

void kcpx_native_hs_free(struct kcpx_native_hs *hs)
{
	sodium_free(hs);
}

uint32_t kcpx_native_hs_sid(const struct kcpx_native_hs *hs)
{
	return hs->sid;
}

int kcpx_native_hs_finish(struct kcpx_native_hs *hs, const uint8_t *pkt, size_t len,
			  struct kcpx_native **out)
{
	uint8_t spk[32], prk[32];
	enum kcpx_native_cipher cipher;
	int err;

	*out = NULL;
	err = hs_check(hs->psk, pkt, len, KCPX_NT_RESP, KCPX_NF_SERVER, NULL);
	if (err)
		return err;
	if (kcpx_get_le32(pkt + 4) != hs->sid)
		return -EPROTO;
	/* the server may only pick AES when it was offered */
	if ((pkt[2] & KCPX_NF_AES) && !(hs->flags & KCPX_NF_AES))
		return -EPROTO;
	if (hs_open(hs->psk, pkt, hs->epk, spk))
		return -EBADMSG;
	err = hs_prk(prk, hs->psk, hs->sid, hs->esk, spk, hs->epk, spk);
	if (err)
		return err;
	cipher = (pkt[2] & KCPX_NF_AES) ? KCPX_NATIVE_AESGCM : KCPX_NATIVE_XCHACHA;
	err = sess_alloc(out, prk, hs->sid, false, cipher);
	sodium_memzero(prk, sizeof(prk));
	if (!err)
		(*out)->st.hs_ok++;
	return err;
}

int kcpx_native_accept(const struct kcpx_native_psk *psk, const uint8_t *pkt, size_t len,
		       const uint8_t rnd[KCPX_NATIVE_HS_RAND], bool allow_aes,
		       uint8_t resp[KCPX_NATIVE_HS_LEN], struct kcpx_native **out,
		       struct kcpx_native_stats *st)
{
	uint8_t cpk[32], esk[32], spk[32], prk[32];
	uint32_t sid;
	uint8_t flags;
	int err;

	*out = NULL;
	err = hs_check(psk, pkt, len, KCPX_NT_INIT, 0, st);
	if (err)
		return err;
	if (hs_open(psk, pkt, NULL, cpk)) {
		if (st)
			st->hs_bad++;
		return -EBADMSG;
	}
	sid = kcpx_get_le32(pkt + 4);
	memcpy(esk, rnd, 32);
	crypto_scalarmult_base(spk, esk);
	err = hs_prk(prk, psk, sid, esk, cpk, cpk, spk);
	sodium_memzero(esk, sizeof(esk));
	if (err) {
		if (st)
			st->hs_bad++;
		return err;
	}
	flags = KCPX_NF_SERVER;
	if (allow_aes && (pkt[2] & KCPX_NF_AES) && crypto_aead_aes256gcm_is_available())
		flags |= KCPX_NF_AES;
	err = sess_alloc(out, prk, sid, true,
			 (flags & KCPX_NF_AES) ? KCPX_NATIVE_AESGCM : KCPX_NATIVE_XCHACHA);
	sodium_memzero(prk, sizeof(prk));
	if (err)
		return err;
	hdr_write(resp, KCPX_NT_RESP, flags, sid, get_le64(rnd + 32));
	memcpy(resp + KCPX_NATIVE_HDR, spk, 32);
	hdr_tag(resp, psk->hs_tag);
	hs_seal(psk, resp, cpk);
	(*out)->st.hs_ok++;
	if (st)
		st->hs_ok++;
	return 0;
}

/* ------------------------------------------------------------ data path */

int kcpx_native_seal(struct kcpx_native *n, uint8_t *d, size_t body_len, bool fec)
{
	uint8_t flags = (fec ? KCPX_NF_FEC : 0) | (n->server ? KCPX_NF_SERVER : 0);
	size_t clear = clear_len(flags), plain;
	uint8_t nonce[24];

	if (fec && body_len < KCPX_NATIVE_FEC_HDR)
		return -EMSGSIZE;
	if (n->tx_ctr >= KCPX_NATIVE_CTR_LIMIT) {
		n->st.tx_limit++;
		return -EOVERFLOW;
	}
	hdr_write(d, KCPX_NT_DATA, flags, n->sid, n->tx_ctr++);
	hdr_tag(d, n->k->tag_tx);
	nonce_of(nonce, d, false);
	plain = KCPX_NATIVE_HDR + body_len - clear;
	if (n->cipher != KCPX_NATIVE_AESGCM)
		crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
			d + clear, d + clear + plain, NULL, d + clear, plain, d, clear, NULL, nonce,
			n->k->aead_tx);
	else if (gcm_seal(n->gcm_tx, nonce, d, clear, d + clear, plain, d + clear + plain))
		return -EIO;
	n->st.tx_ok++;
	return (int)(KCPX_NATIVE_HDR + body_len + KCPX_NATIVE_MAC);
}

int kcpx_native_open(struct kcpx_native *n, uint8_t *d, size_t len)
{
	uint8_t want_dir = n->server ? 0 : KCPX_NF_SERVER, nonce[24];
	size_t clear, plain;
	uint64_t ctr;
	int rc;

	if (len < KCPX_NATIVE_HDR + KCPX_NATIVE_MAC || len > 65535) {
		n->st.rx_short++;
		return -EPROTO;
	}
	if (d[0] != KCPX_NATIVE_VERSION) {
		n->st.rx_version++;
		return -EPROTO;
	}
	if (d[1] != KCPX_NT_DATA || d[3] || (d[2] & ~(KCPX_NF_FEC | KCPX_NF_SERVER)) ||
	    (d[2] & KCPX_NF_SERVER) != want_dir) {
		n->st.rx_proto++;
		return -EPROTO;
	}
	clear = clear_len(d[2]);
	if (len < clear + KCPX_NATIVE_MAC) {
		n->st.rx_short++;
		return -EPROTO;
	}
	if (kcpx_get_le32(d + 4) != n->sid) {
		n->st.rx_session++;
		return -EPROTO;
	}
	if (!tag_ok(d, n->k->tag_rx)) {
		n->st.rx_tag++;
		return -EBADMSG;
	}
	ctr = get_le64(d + 8);
	rc = kcpx_replay_check(&n->win, ctr);
	if (rc) {
		if (rc == -ESTALE)
			n->st.rx_replay++;
		else
			n->st.rx_old++;
		return -ESTALE;
	}
	nonce_of(nonce, d, false);
	plain = len - clear - KCPX_NATIVE_MAC;
	if (n->cipher == KCPX_NATIVE_AESGCM)
		rc = gcm_open(n->gcm_rx, nonce, d, clear, d + clear, plain, d + clear + plain);
	else
		rc = crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
			d + clear, NULL, d + clear, plain, d + clear + plain, d, clear, nonce,
			n->k->aead_rx);
	if (rc) {
		n->st.rx_aead++;
		return -EBADMSG;
	}
	kcpx_replay_update(&n->win, ctr);
	n->st.rx_ok++;
	return (int)(len - KCPX_NATIVE_HDR - KCPX_NATIVE_MAC);
}
