/* SPDX-License-Identifier: MIT */
/*
 * kcpx's native protocol, I/O-free (docs/PROTOCOL.md; wire structs in kcpx_native.h).
 *
 * A datagram is  header(24) | [FEC header(6), clear] | AEAD ciphertext | MAC(16) . The
 * header carries the session id and this direction's 64-bit packet counter under a
 * SipHash-2-4 tag (the part XDP checks), and the whole clear prefix is the AEAD's
 * associated data. The counter is the AEAD nonce: it only grows, and every session has
 * fresh keys from an X25519 handshake, so no (key, nonce) pair is ever used twice.
 *
 *   client                                   server
 *   kcpx_native_hs_init()    -- INIT -->     kcpx_native_accept()  (session ready)
 *   kcpx_native_hs_finish()  <-- RESP --     (session ready)
 *
 * Objects and ownership:
 *   kcpx_native_psk  the long-term keys derived from the passphrase (one per process,
 *                    read-only after creation: may be shared by sessions and threads).
 *   kcpx_native_hs   a client's pending handshake (ephemeral secret key).
 *   kcpx_native      one session's keys, counters and replay window; one owner, not
 *                    thread-safe.
 * All key material lives in sodium_malloc memory (guard pages, locked where the memlock
 * limit allows) and is wiped by the *_free functions; stack copies are wiped too. The one
 * exception: an AES-GCM session's expanded keys are in its libgcrypt handles (plain heap,
 * wiped when kcpx_native_free() closes them).
 * Randomness comes from the caller (user/io reads getrandom), so nothing here makes a
 * syscall on the packet path; sodium_malloc itself maps memory, once per object.
 */
#ifndef KCPX_CORE_NATIVE_H
#define KCPX_CORE_NATIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kcpx_native.h"

#define KCPX_NATIVE_HS_LEN  (KCPX_NATIVE_HDR + 32 + KCPX_NATIVE_MAC) /* INIT and RESP: 72 */
#define KCPX_NATIVE_HS_RAND 40 /* random bytes a handshake step needs: secret(32) + ctr(8) */
/* Counters stop here (the session must be replaced); far beyond any real session. */
#define KCPX_NATIVE_CTR_LIMIT (UINT64_MAX - KCPX_REPLAY_BITS)

enum kcpx_native_cipher {
	KCPX_NATIVE_XCHACHA = 0, /* XChaCha20-Poly1305 (IETF), 24-byte nonce */
	KCPX_NATIVE_AESGCM = 1,	 /* AES-256-GCM, 12-byte nonce; offered only with CPU support */
};

/*
 * Why datagrams were rejected, one counter per reason, plus what went well. A session
 * counts its own; kcpx_native_accept() counts into the stats it is given.
 */
struct kcpx_native_stats {
	uint64_t rx_ok;	     /* opened and accepted */
	uint64_t rx_short;   /* shorter than header (+ FEC header) + MAC, or too long */
	uint64_t rx_version; /* version byte not KCPX_NATIVE_VERSION */
	uint64_t rx_proto;   /* wrong type, unknown flag, reserved byte, wrong direction */
	uint64_t rx_session; /* sid is not this session's */
	uint64_t rx_tag;     /* SipHash tag mismatch */
	uint64_t rx_aead;    /* tag good, AEAD open failed */
	uint64_t rx_replay;  /* counter already accepted */
	uint64_t rx_old;     /* counter older than the replay window */
	uint64_t tx_ok;	     /* sealed */
	uint64_t tx_limit;   /* refused: counter exhausted */
	uint64_t hs_ok;	     /* handshakes completed (INIT accepted or RESP taken) */
	uint64_t hs_bad;     /* handshake packets refused after the tag (AEAD, weak key) */
};

struct kcpx_native_psk;
struct kcpx_native_hs;
struct kcpx_native;

/* ------------------------------------------------------------------ keys */

/*
 * From the --key passphrase: master = Argon2id(pass, salt "kcpx-native-psk1", interactive
 * limits: about 64 MiB and a tenth of a second, once per process). Returns 0, -ENOMEM, or
 * -EIO if libsodium fails (init or out of memory for Argon2).
 */
int kcpx_native_psk_new(struct kcpx_native_psk **out, const char *pass);
/* From an already derived 32-byte master key (tests, fuzzing). */
int kcpx_native_psk_new_key(struct kcpx_native_psk **out, const uint8_t master[32]);
void kcpx_native_psk_free(struct kcpx_native_psk *p); /* wipes; NULL is fine */
/* The value of the kcpx_nat_cfg map for the XDP checks (handshake tag key). */
void kcpx_native_psk_bpf_cfg(const struct kcpx_native_psk *p, bool server,
			     struct kcpx_native_cfg *cfg);

/* Whether this CPU does AES-256-GCM in hardware (libsodium's own test). */
bool kcpx_native_aes_available(void);

/* ------------------------------------------------------------- handshake */

/*
 * RESET (docs/PROTOCOL.md §7b): a server's answer to a DATA packet for a sid it has no
 * session for (it restarted, or dropped the session), so that the client opens a new one
 * at once. Header only, under the handshake tag key (only a PSK holder makes one; the
 * tag covers type, direction, sid and the counter of the DATA it answers), then 16
 * random bytes: 40 bytes, no longer than any DATA packet. reset_ok checks all of that.
 */
void kcpx_native_reset(const struct kcpx_native_psk *psk, uint32_t sid, uint64_t ctr,
		       const uint8_t rnd[16], uint8_t pkt[KCPX_NATIVE_RESET_LEN]);
bool kcpx_native_reset_ok(const struct kcpx_native_psk *psk, const uint8_t *pkt, size_t len);
/* The highest counter the session accepted (0 before the first). */
uint64_t kcpx_native_rx_top(const struct kcpx_native *n);

/*
 * A handshake packet of the right length whose SipHash tag is good under the PSK's
 * handshake tag key: what XDP checks, and what --hsrate charges a source for. No AEAD,
 * no X25519: cheap enough for every datagram.
 */
bool kcpx_native_init_tag_ok(const struct kcpx_native_psk *psk, const uint8_t *pkt, size_t len);

/*
 * Client: start a handshake for session `sid` (non-zero, random: the caller picks it).
 * rnd: KCPX_NATIVE_HS_RAND fresh random bytes. offer_aes: ask for AES-256-GCM (the server
 * takes it only if it has AES too). Writes the INIT datagram (KCPX_NATIVE_HS_LEN bytes)
 * to pkt. Returns 0, -EINVAL (sid 0), -ENOMEM.
 */
int kcpx_native_hs_init(struct kcpx_native_hs **out, const struct kcpx_native_psk *psk,
			uint32_t sid, const uint8_t rnd[KCPX_NATIVE_HS_RAND], bool offer_aes,
			uint8_t pkt[KCPX_NATIVE_HS_LEN]);
void kcpx_native_hs_free(struct kcpx_native_hs *hs); /* wipes; NULL is fine */
uint32_t kcpx_native_hs_sid(const struct kcpx_native_hs *hs);

/*
 * Client: take the server's RESP. On success *out is the ready session and hs may be freed.
 * Returns 0, -EPROTO (not a RESP for this sid), -EBADMSG (tag or AEAD), -ENOMEM.
 */
int kcpx_native_hs_finish(struct kcpx_native_hs *hs, const uint8_t *pkt, size_t len,
			  struct kcpx_native **out);

/*
 * Server: take an INIT, create the session and write the RESP (KCPX_NATIVE_HS_LEN bytes).
 * allow_aes: this server has AES (then it takes the client's offer). rnd: fresh random
 * bytes. st (may be NULL) counts rejects by reason. Returns 0, -EPROTO, -EBADMSG, -ENOMEM.
 * The caller decides what an INIT for a live sid means (see PROTOCOL.md: it is ignored).
 */
int kcpx_native_accept(const struct kcpx_native_psk *psk, const uint8_t *pkt, size_t len,
		       const uint8_t rnd[KCPX_NATIVE_HS_RAND], bool allow_aes,
		       uint8_t resp[KCPX_NATIVE_HS_LEN], struct kcpx_native **out,
		       struct kcpx_native_stats *st);

/*
 * A session straight from a 32-byte session secret, for tests and fuzzing only (both ends
 * given the same secret and sid talk to each other).
 */
int kcpx_native_new_secret(struct kcpx_native **out, const uint8_t secret[32], uint32_t sid,
			   bool server, enum kcpx_native_cipher cipher);
void kcpx_native_free(struct kcpx_native *n); /* wipes; NULL is fine */

/* ------------------------------------------------------------- data path */

/* Bytes before the body (the outer header) and after it (the MAC). */
static inline size_t kcpx_native_header(void)
{
	return KCPX_NATIVE_HDR;
}
static inline size_t kcpx_native_trailer(void)
{
	return KCPX_NATIVE_MAC;
}

/*
 * dgram[24 .. 24+body_len) holds the body and dgram has 24 + body_len + 16 writable bytes.
 * fec: the body starts with a FEC header, whose first 6 bytes stay in clear (and under the
 * tag). Writes the header, seals in place, and returns the datagram length, or -EMSGSIZE
 * (fec and body_len < 6), -EOVERFLOW (counter exhausted: replace the session), -EIO
 * (libgcrypt refused: not seen with a live session; send nothing).
 */
int kcpx_native_seal(struct kcpx_native *n, uint8_t *dgram, size_t body_len, bool fec);

/*
 * Checks and opens dgram[0..len) in place. Returns the body length (the body, FEC header
 * included and in clear, starts at dgram + 24), or, each counted:
 *   -EPROTO   too short, wrong version, type, flags, direction or sid
 *   -EBADMSG  SipHash tag or AEAD mismatch
 *   -ESTALE   replayed counter, or older than the window
 * The replay window only moves for datagrams that passed the AEAD. On error the buffer
 * content is unspecified.
 */
int kcpx_native_open(struct kcpx_native *n, uint8_t *dgram, size_t len);

/* Header facts of a datagram, before any session is known (the caller demuxes on sid). */
struct kcpx_native_info {
	uint8_t type, flags;
	uint32_t sid;
	uint64_t ctr;
};
/* 0, or -EPROTO when it is too short or not this version. Checks no tag. */
int kcpx_native_peek(const uint8_t *dgram, size_t len, struct kcpx_native_info *info);

uint32_t kcpx_native_sid(const struct kcpx_native *n);
enum kcpx_native_cipher kcpx_native_cipher(const struct kcpx_native *n);
const struct kcpx_native_stats *kcpx_native_stats(const struct kcpx_native *n);
/*
 * The kcpx_nat_sess map value for this session: receive tag key, empty window, no FEC
 * shape. The caller sets fec_track to let XDP learn the peer's FEC shape and track its
 * groups (left 0: no tracking).
 */
void kcpx_native_bpf_sess(const struct kcpx_native *n, struct kcpx_native_sess *v);

/* ------------------------------------------------ building blocks (tests) */

/* SipHash-2-4 tag of a header (+ the 6 FEC bytes when hdr flags say so) under key. */
uint64_t kcpx_native_tag(const uint8_t key[16], const uint8_t *dgram);

/*
 * The data path's AES-256-GCM (libgcrypt) with a raw key, in place, tag detached: the
 * same calls seal/open make, for cross-checks against other implementations. seal: 0 or
 * -EIO; open: 0, or -EBADMSG with p wiped.
 */
int kcpx_native_gcm_seal(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *ad,
			 size_t ad_len, uint8_t *p, size_t len, uint8_t tag[16]);
int kcpx_native_gcm_open(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *ad,
			 size_t ad_len, uint8_t *p, size_t len, const uint8_t tag[16]);

/*
 * The replay window, as XDP runs it. check: 0 when ctr may be accepted, -ESTALE (replay)
 * or -ETIMEDOUT (older than the window); update: check, then mark ctr seen.
 */
int kcpx_replay_check(const struct kcpx_replay *w, uint64_t ctr);
int kcpx_replay_update(struct kcpx_replay *w, uint64_t ctr);

#endif
