/* SPDX-License-Identifier: MIT */
/*
 * kcptun's datagram encryption (WIRE.md §1, §2), I/O-free.
 *
 * A datagram on the wire is  header | body | trailer :
 *   CFB ciphers, salsa20, xor, none:  nonce(16) | CRC-32 IEEE of body (LE u32) | body
 *                                     the whole datagram, nonce included, is then encrypted
 *   aes-128-gcm (newer kcp-go):       nonce(12) | AES-128-GCM(body) | tag(16), no CRC
 *   null (newer kcptun):              body only, no header at all
 * The body is what FEC produced (FEC header + KCP bytes) or plain KCP bytes.
 *
 * Ownership: a kcpx_crypt is owned by one session (not thread-safe: it carries a cipher
 * context and the nonce generator state). Keys are wiped on free.
 *
 * Library init: kcpx_crypt_new() and kcpx_crypt_derive_key() call sodium_init() and
 * initialise libgcrypt (no secure memory) the first time. That first call should happen
 * in main() before any thread starts (libgcrypt's init is not thread-safe). Nothing on the
 * seal/open path makes a syscall: nonces come from a ChaCha20 keystream keyed with the
 * caller's 32-byte seed.
 */
#ifndef KCPX_CORE_CRYPT_H
#define KCPX_CORE_CRYPT_H

#include <stddef.h>
#include <stdint.h>

#define KCPX_CRYPT_NONCE   16 /* kcp-go nonceSize */
#define KCPX_CRYPT_CRC	   4  /* kcp-go crcSize */
#define KCPX_CRYPT_HDR	   20 /* kcp-go cryptHeaderSize */
#define KCPX_CRYPT_KEYLEN  32 /* PBKDF2 output length */
#define KCPX_CRYPT_HDR_MAX 20 /* largest header any cipher uses */
#define KCPX_CRYPT_TRL_MAX 16 /* largest trailer (GCM tag) */

struct kcpx_crypt;

/*
 * name: a kcptun --crypt value: aes aes-128 aes-192 salsa20 blowfish twofish cast5 3des tea
 * xtea sm4 xor none; also "aes-128-gcm" and "null". Unknown names (and NULL) give aes, as
 * kcptun does; kcpx_crypt_name() tells which one was picked.
 * pass: the --key passphrase (PBKDF2-HMAC-SHA1, salt "kcp-go", 4096 rounds, 32 bytes).
 * seed: 32 bytes of entropy from the caller (user/io reads getrandom); nonces are drawn
 * from a ChaCha20 stream keyed with it, so two sessions must get different seeds.
 * Returns 0, -ENOMEM, or -EIO if the crypto library refuses the key.
 */
int kcpx_crypt_new(struct kcpx_crypt **out, const char *name, const char *pass,
		   const uint8_t seed[32]);
/* Same, from an already derived 32-byte key (saves the 4096 PBKDF2 rounds per session). */
int kcpx_crypt_new_key(struct kcpx_crypt **out, const char *name,
		       const uint8_t key[KCPX_CRYPT_KEYLEN], const uint8_t seed[32]);
void kcpx_crypt_free(struct kcpx_crypt *c); /* wipes keys (sodium_memzero); NULL is fine */

/*
 * libsodium and libgcrypt set up for this process, libgcrypt once (native.c shares it for
 * AES-256-GCM). This module's constructors call it too; returns 0 or -EIO.
 */
int kcpx_crypt_lib_init(void);

/* kcptun's key derivation: PBKDF2-HMAC-SHA1(pass, "kcp-go", 4096, 32). Returns 0 or -EIO. */
int kcpx_crypt_derive_key(const char *pass, uint8_t key[KCPX_CRYPT_KEYLEN]);

/* The cipher actually in use ("aes" for an unknown name). */
const char *kcpx_crypt_name(const struct kcpx_crypt *c);
/* Bytes before the body: 20 (CFB ciphers, salsa20, xor, none), 12 (aes-128-gcm), 0 (null). */
size_t kcpx_crypt_header(const struct kcpx_crypt *c);
/* Bytes after the body: 16 for aes-128-gcm (the tag), else 0. */
size_t kcpx_crypt_trailer(const struct kcpx_crypt *c);

/*
 * dgram[header .. header+body_len) holds the body, and dgram has header + body_len +
 * trailer writable bytes: writes nonce (+ CRC) and encrypts in place. Returns the datagram
 * length (header + body_len + trailer).
 */
size_t kcpx_crypt_seal(struct kcpx_crypt *c, uint8_t *dgram, size_t body_len);
/*
 * As kcpx_crypt_seal with a caller-chosen nonce (header-sized: 16 bytes, 12 for GCM;
 * ignored by null). For test vectors and fuzzing; the data path uses kcpx_crypt_seal.
 */
size_t kcpx_crypt_seal_nonce(struct kcpx_crypt *c, uint8_t *dgram, size_t body_len,
			     const uint8_t *nonce);

/*
 * Decrypts dgram[0..len) in place and checks the CRC (or the GCM tag). Returns the body
 * length (the body starts at dgram + kcpx_crypt_header(c)), or
 *   -EMSGSIZE  shorter than header + trailer: kcp-go drops these silently (no counter);
 *   -EBADMSG   CRC or tag mismatch: the caller counts InCsumErrors and drops it.
 * On error the buffer content is unspecified.
 */
int kcpx_crypt_open(struct kcpx_crypt *c, uint8_t *dgram, size_t len);

#endif
