// SPDX-License-Identifier: MIT
/*
 * BPF_PROG_RUN tests of the native protocol's XDP checks (bpf/lib/native.h, siphash.h,
 * replay.h) through the test-only programs of bpf/kcpx_native_test.bpf.c:
 *   - SipHash-2-4 in BPF gives the paper's vectors and libsodium's answer for every
 *     length 0..64; the header tag in BPF equals kcpx_native_tag() in C
 *   - a sealed datagram from user/core/native.c passes; one flipped bit in the tag or the
 *     header drops; a replay drops; a counter older than the window drops; unknown
 *     session, wrong version, wrong direction, short packets drop; each counted
 *   - handshake packets are checked with the PSK tag key, by role (RESETs on a client)
 *   - the BPF window and the C window agree over a long random walk of counters
 *   - FEC: parity of a complete group and duplicate shards drop, needed parity passes;
 *     the peer's shape is learnt from its headers (not ours), unlearnt when it re-tunes;
 *     forged shards create no group entry, a key holder's at most the map's size
 *   - handshake packets beyond the per-source rate drop; forged ones spend no tokens
 * Needs root (BPF); exits 4 (skip) without it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_link.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sodium.h>

#include "unit.h"
#include "frames.h"
#include "core/native.h"
#include "core/ratelimit.h"
#include "core/util.h"
#include "kcpx_native_test.skel.h"

#define SID	0x0badcafeu
#define SIP_MAX 64 /* SIP_MAX of bpf/lib/siphash.h */

static struct kcpx_native_test *skel;
static struct kcpx_native *cli, *srv;
static struct kcpx_native_psk *psk;
static struct kcpx_native_xdp_stats d; /* counter deltas of the last run */
static int ncpu;
static const char *nat_src = "10.7.0.1"; /* source address of run_nat()'s frames */
static int nat_family = 4;		 /* ... and their IP version (6: fd07::1 -> ::2) */

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)kcpx_get_le32(p) | (uint64_t)kcpx_get_le32(p + 4) << 32;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	kcpx_put_le32(p, (uint32_t)v);
	kcpx_put_le32(p + 4, (uint32_t)(v >> 32));
}

static void stats_now(struct kcpx_native_xdp_stats *s)
{
	struct kcpx_native_xdp_stats per[ncpu];
	__u32 key = 0;

	memset(s, 0, sizeof(*s));
	if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.kcpx_nat_stats), &key, per)) {
		memset(s, 0xff, sizeof(*s));
		return;
	}
	for (int c = 0; c < ncpu; c++)
		for (size_t i = 0; i < sizeof(*s) / 8; i++)
			((__u64 *)s)[i] += ((__u64 *)&per[c])[i];
}

/* Run a program over raw bytes; out (may be NULL) receives the data after the run. */
static int run_raw(struct bpf_program *p, const void *in, size_t len, void *out, __u32 *retval)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in, .data_size_in = (__u32)len,
		    .data_out = out, .data_size_out = out ? (__u32)len : 0, .repeat = 1);

	if (bpf_prog_test_run_opts(bpf_program__fd(p), &o))
		return -errno;
	*retval = o.retval;
	return 0;
}

/* A UDP/IPv4 frame carrying dgram through kcpx_xdp_nat: the verdict, deltas in d. */
static __u32 run_nat(const uint8_t *dgram, size_t len)
{
	static struct frame f;
	struct frame_spec s = { .family = nat_family,
				.src = nat_family == 4 ? nat_src : "fd07::1",
				.dst = nat_family == 4 ? "10.7.0.2" : "fd07::2",
				.sport = 40000,
				.dport = 4000,
				.payload = len };
	struct kcpx_native_xdp_stats a, b;
	__u32 ret = 0xdead;

	frame_build(&f, &s);
	memcpy(f.b + f.l4 + 8, dgram, len);
	stats_now(&a);
	if (run_raw(skel->progs.kcpx_xdp_nat, f.b, f.len, NULL, &ret))
		return 0xdead;
	stats_now(&b);
	for (size_t i = 0; i < sizeof(d) / 8; i++)
		((__u64 *)&d)[i] = ((__u64 *)&b)[i] - ((__u64 *)&a)[i];
	return ret;
}

/* Exactly one outcome counter moved. */
static __u64 outcomes(void)
{
	return d.pass + d.pass_hs + d.pass_off + d.drop_short + d.drop_version + d.drop_proto +
	       d.drop_session + d.drop_tag + d.drop_replay + d.drop_old + d.drop_fec_dup +
	       d.drop_fec_parity + d.drop_hs_rate + d.pass_kcptun + d.pass_reset;
}

static void set_cfg_rates(bool server, bool enabled, __u16 hs_rate, __u16 rst_rate)
{
	struct kcpx_native_cfg c;
	__u32 key = 0;

	kcpx_native_psk_bpf_cfg(psk, server, &c);
	c.enabled = enabled;
	c.hs_rate = hs_rate;
	c.rst_rate = rst_rate;
	if (bpf_map_update_elem(bpf_map__fd(skel->maps.kcpx_nat_cfg), &key, &c, 0))
		abort();
}

static void set_cfg_rate(bool server, bool enabled, __u16 hs_rate)
{
	set_cfg_rates(server, enabled, hs_rate, 0);
}

static void set_cfg(bool server, bool enabled)
{
	set_cfg_rate(server, enabled, 0);
}

/* Install n's receive state as the kcpx_nat_sess entry of its sid (a fresh window). */
static void add_sess(const struct kcpx_native *n)
{
	struct kcpx_native_sess v;
	__u32 sid = kcpx_native_sid(n);

	kcpx_native_bpf_sess(n, &v);
	if (bpf_map_update_elem(bpf_map__fd(skel->maps.kcpx_nat_sess), &sid, &v, 0))
		abort();
}

static size_t seal(struct kcpx_native *n, uint8_t *dg, size_t body, bool fec)
{
	for (size_t i = 0; i < body; i++)
		dg[KCPX_NATIVE_HDR + i] = (uint8_t)(i * 3);
	return (size_t)kcpx_native_seal(n, dg, body, fec);
}

/*
 * A 100-byte data datagram toward the server with any counter (and FEC header when fec is
 * given: seqid le32 | flag le16), tagged with the server's rx key.
 */
static size_t craft_fec(uint8_t *dg, uint64_t ctr, const uint8_t *fec)
{
	struct kcpx_native_sess v;

	kcpx_native_bpf_sess(srv, &v);
	memset(dg, 0x5a, 100);
	dg[0] = KCPX_NATIVE_VERSION;
	dg[1] = KCPX_NT_DATA;
	dg[2] = fec ? KCPX_NF_FEC : 0;
	dg[3] = 0;
	kcpx_put_le32(dg + 4, SID);
	put_le64(dg + 8, ctr);
	if (fec)
		memcpy(dg + KCPX_NATIVE_HDR, fec, KCPX_NATIVE_FEC_HDR);
	put_le64(dg + 16, kcpx_native_tag((const uint8_t *)v.tag_key, dg));
	return 100;
}

static size_t craft(uint8_t *dg, uint64_t ctr, bool fec)
{
	static const uint8_t junk[KCPX_NATIVE_FEC_HDR] = { 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a };

	return craft_fec(dg, ctr, fec ? junk : NULL);
}

static void test_sip_vectors(void)
{
	uint8_t in[16 + SIP_MAX], out[sizeof(in)], h[8];
	__u32 ret;

	for (int i = 0; i < 16; i++)
		in[i] = (uint8_t)i;
	for (int i = 0; i < SIP_MAX; i++)
		in[16 + i] = (uint8_t)i;
	/* the paper's vectors at a few lengths */
	CHECK_EQ(run_raw(skel->progs.kcpx_xdp_sip, in, 16, out, &ret), 0);
	CHECK_EQ(le64(out), 0x726fdb47dd0e0e31ULL);
	CHECK_EQ(run_raw(skel->progs.kcpx_xdp_sip, in, 16 + 15, out, &ret), 0);
	CHECK_EQ(le64(out), 0xa129ca6149be45e5ULL);
	CHECK_EQ(run_raw(skel->progs.kcpx_xdp_sip, in, 16 + 63, out, &ret), 0);
	CHECK_EQ(le64(out), 0x958a324ceb064572ULL);
	/* every length, several keys and messages: BPF == libsodium */
	for (int k = 0; k < 8; k++) {
		randombytes_buf(in, sizeof(in));
		for (size_t n = 0; n <= SIP_MAX; n++) {
			CHECK_EQ(run_raw(skel->progs.kcpx_xdp_sip, in, 16 + n, out, &ret), 0);
			CHECK_EQ(ret, XDP_PASS);
			crypto_shorthash_siphash24(h, in + 16, n, in);
			CHECK_MEM(out, h, 8);
		}
	}
}

static void test_hdr_tag_c_equals_bpf(void)
{
	uint8_t in[16 + 32], out[sizeof(in)];
	__u32 ret;

	for (int i = 0; i < 200; i++) {
		randombytes_buf(in, sizeof(in));
		in[16 + 2] = (uint8_t)(i & 1); /* FEC bit on every other round */
		CHECK_EQ(run_raw(skel->progs.kcpx_xdp_siphdr, in, sizeof(in), out, &ret), 0);
		CHECK_EQ(ret, XDP_PASS);
		CHECK_EQ(le64(out), kcpx_native_tag(in, in + 16));
	}
}

static void test_disabled_passes(void)
{
	uint8_t dg[64] = { 0 };

	set_cfg(true, false);
	CHECK_EQ(run_nat(dg, sizeof(dg)), XDP_PASS);
	CHECK_EQ(d.pass_off, 1);
	CHECK_EQ(outcomes(), 1);
	set_cfg(true, true);
}

static void test_good_and_flipped(void)
{
	uint8_t dg[512], bad[512];
	size_t len;

	for (int fec = 0; fec < 2; fec++) {
		len = seal(cli, dg, 200, fec);
		for (size_t i = 0; i < 30; i++) {
			if (i == 1 || i == 2 || i == 3 || (i >= 24 && !fec))
				continue; /* type, flags, reserved: drop_proto, below */
			memcpy(bad, dg, len);
			bad[i] ^= (uint8_t)(1 << (i % 8));
			CHECK_EQ(run_nat(bad, len), XDP_DROP);
			CHECK_EQ(outcomes(), 1);
			if (i == 0)
				CHECK_EQ(d.drop_version, 1);
			else if (i < 8)
				CHECK_EQ(d.drop_session, 1);
			else
				CHECK_EQ(d.drop_tag, 1); /* counter, tag, FEC header */
		}
		CHECK_EQ(run_nat(dg, len), XDP_PASS);
		CHECK_EQ(d.pass, 1);
		CHECK_EQ(outcomes(), 1);
		/* what passed XDP opens in userspace */
		memcpy(bad, dg, len);
		CHECK_EQ(kcpx_native_open(srv, bad, len), 200);
		CHECK_EQ(run_nat(dg, len), XDP_DROP);
		CHECK_EQ(d.drop_replay, 1);
		CHECK_EQ(outcomes(), 1);
	}
	/* the FEC flag cleared: the tag no longer covers the same bytes */
	len = seal(cli, dg, 200, true);
	dg[2] &= (uint8_t)~KCPX_NF_FEC;
	CHECK_EQ(run_nat(dg, len), XDP_DROP);
	CHECK_EQ(d.drop_tag, 1);
}

static void test_proto_drops(void)
{
	uint8_t dg[512], bad[512];
	size_t len = seal(cli, dg, 100, false);
	struct kcpx_native *srv_other;
	static const uint8_t secret[32] = { 42 };

	memcpy(bad, dg, len);
	bad[2] |= KCPX_NF_SERVER; /* reflected to the server */
	CHECK_EQ(run_nat(bad, len), XDP_DROP);
	CHECK_EQ(d.drop_proto, 1);
	memcpy(bad, dg, len);
	bad[2] |= 0x80;
	CHECK_EQ(run_nat(bad, len), XDP_DROP);
	CHECK_EQ(d.drop_proto, 1);
	memcpy(bad, dg, len);
	bad[3] = 1;
	CHECK_EQ(run_nat(bad, len), XDP_DROP);
	CHECK_EQ(d.drop_proto, 1);
	memcpy(bad, dg, len);
	bad[1] = 9;
	CHECK_EQ(run_nat(bad, len), XDP_DROP);
	CHECK_EQ(d.drop_proto, 1);
	memcpy(bad, dg, len);
	bad[0] = 2;
	CHECK_EQ(run_nat(bad, len), XDP_DROP);
	CHECK_EQ(d.drop_version, 1);
	/* too short: below header + MAC, and FEC flagged without room for its header */
	CHECK_EQ(run_nat(dg, KCPX_NATIVE_HDR + KCPX_NATIVE_MAC - 1), XDP_DROP);
	CHECK_EQ(d.drop_short, 1);
	CHECK_EQ(run_nat(dg, 3), XDP_DROP);
	CHECK_EQ(d.drop_short, 1);
	len = seal(cli, dg, 6, true);
	CHECK_EQ(run_nat(dg, len - 1), XDP_DROP);
	CHECK_EQ(d.drop_short, 1);
	/* a session the map does not know */
	CHECK_EQ(kcpx_native_new_secret(&srv_other, secret, SID + 1, false, KCPX_NATIVE_XCHACHA),
		 0);
	len = seal(srv_other, dg, 100, false);
	dg[2] = 0;
	CHECK_EQ(run_nat(dg, len), XDP_DROP);
	CHECK_EQ(d.drop_session, 1);
	CHECK_EQ(outcomes(), 1);
	kcpx_native_free(srv_other);
}

static void test_too_old(void)
{
	uint8_t dg[128];
	uint64_t top = 1000000;

	craft(dg, top, false);
	CHECK_EQ(run_nat(dg, 100), XDP_PASS);
	CHECK_EQ(d.pass, 1);
	craft(dg, top - KCPX_REPLAY_WINDOW, false);
	CHECK_EQ(run_nat(dg, 100), XDP_DROP);
	CHECK_EQ(d.drop_old, 1);
	CHECK_EQ(outcomes(), 1);
	craft(dg, top - KCPX_REPLAY_WINDOW + 1, true);
	CHECK_EQ(run_nat(dg, 100), XDP_PASS);
	CHECK_EQ(run_nat(dg, 100), XDP_DROP);
	CHECK_EQ(d.drop_replay, 1);
	craft(dg, 3, false);
	CHECK_EQ(run_nat(dg, 100), XDP_DROP);
	CHECK_EQ(d.drop_old, 1);
}

/* The BPF window and kcpx_replay_update() agree on a long random walk. */
static void test_window_matches_c(void)
{
	static struct kcpx_replay w;
	uint8_t dg[128];
	uint64_t top = 0, x = 0x9e3779b97f4a7c15ULL;
	struct kcpx_native_xdp_stats tot = {};

	/* a fresh session entry: the earlier cases moved the window */
	add_sess(srv);
	memset(&w, 0, sizeof(w));
	for (int i = 0; i < 6000; i++) {
		uint64_t c;
		int want;
		__u32 v;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		switch (x % 8) {
		case 0:
			c = top + 1 + (x >> 8) % 2500; /* sometimes more than a ring ahead */
			break;
		case 1:
			c = top - 1900 - (x >> 8) % 200; /* around the window's edge */
			break;
		default:
			c = top + 3 - (x >> 8) % 80;
		}
		if (c > top + 2600)
			c = (x >> 20) % 64; /* wrapped below zero: a small counter */
		want = kcpx_replay_update(&w, c);
		if (w.top > top)
			top = w.top;
		craft(dg, c, i & 1);
		v = run_nat(dg, 100);
		CHECK_EQ(v, want ? XDP_DROP : XDP_PASS);
		CHECK_EQ(outcomes(), 1);
		CHECK_EQ(d.drop_replay, want == -ESTALE);
		CHECK_EQ(d.drop_old, want == -ETIMEDOUT);
		tot.pass += d.pass;
		tot.drop_replay += d.drop_replay;
		tot.drop_old += d.drop_old;
	}
	/* the walk exercised every outcome */
	CHECK(tot.pass > 1000);
	CHECK(tot.drop_replay > 100);
	CHECK(tot.drop_old > 100);
	printf("      walk: %llu pass, %llu replay, %llu old, top %llu\n",
	       (unsigned long long)tot.pass, (unsigned long long)tot.drop_replay,
	       (unsigned long long)tot.drop_old, (unsigned long long)top);
}

static void test_handshake_by_role(void)
{
	struct kcpx_native_hs *hs;
	struct kcpx_native *s2, *c2;
	uint8_t init[KCPX_NATIVE_HS_LEN], resp[KCPX_NATIVE_HS_LEN], bad[KCPX_NATIVE_HS_LEN];
	uint8_t r[KCPX_NATIVE_HS_RAND];

	randombytes_buf(r, sizeof(r));
	CHECK_EQ(kcpx_native_hs_init(&hs, psk, SID + 7, r, false, init), 0);
	randombytes_buf(r, sizeof(r));
	CHECK_EQ(kcpx_native_accept(psk, init, sizeof(init), r, false, resp, &s2, NULL), 0);
	/* server role: INIT passes with a good tag, not with a flipped bit; RESP is wrong */
	CHECK_EQ(run_nat(init, sizeof(init)), XDP_PASS);
	CHECK_EQ(d.pass_hs, 1);
	memcpy(bad, init, sizeof(bad));
	bad[12] ^= 0x10;
	CHECK_EQ(run_nat(bad, sizeof(bad)), XDP_DROP);
	CHECK_EQ(d.drop_tag, 1);
	CHECK_EQ(run_nat(init, sizeof(init) - 1), XDP_DROP);
	CHECK_EQ(d.drop_proto, 1);
	CHECK_EQ(run_nat(resp, sizeof(resp)), XDP_DROP);
	CHECK_EQ(d.drop_proto, 1);
	/* client role: the reverse, and data from the server passes */
	set_cfg(false, true);
	CHECK_EQ(run_nat(resp, sizeof(resp)), XDP_PASS);
	CHECK_EQ(d.pass_hs, 1);
	CHECK_EQ(run_nat(init, sizeof(init)), XDP_DROP);
	CHECK_EQ(d.drop_proto, 1);
	/* a RESET passes a client's XDP with a good tag only (userspace checks it the same) */
	{
		uint8_t rst[KCPX_NATIVE_RESET_LEN], rnd[16] = { 0 };

		kcpx_native_reset(psk, SID + 7, 3, rnd, rst);
		CHECK(kcpx_native_reset_ok(psk, rst, sizeof(rst)));
		CHECK_EQ(run_nat(rst, sizeof(rst)), XDP_PASS);
		CHECK_EQ(d.pass_hs, 1);
		CHECK_EQ(run_nat(rst, sizeof(rst) - 1), XDP_DROP);
		CHECK_EQ(d.drop_short, 1);
		rst[5] ^= 1; /* another sid under the old tag */
		CHECK(!kcpx_native_reset_ok(psk, rst, sizeof(rst)));
		CHECK_EQ(run_nat(rst, sizeof(rst)), XDP_DROP);
		CHECK_EQ(d.drop_tag, 1);
		rst[5] ^= 1;
		set_cfg(true, true); /* a server takes no RESET */
		CHECK_EQ(run_nat(rst, sizeof(rst)), XDP_DROP);
		CHECK_EQ(d.drop_proto, 1);
		set_cfg(false, true);
	}
	CHECK_EQ(kcpx_native_hs_finish(hs, resp, sizeof(resp), &c2), 0);
	add_sess(c2);
	{
		uint8_t dg[256];
		size_t len = seal(s2, dg, 64, true);

		CHECK_EQ(run_nat(dg, len), XDP_PASS);
		CHECK_EQ(d.pass, 1);
		CHECK_EQ(kcpx_native_open(c2, dg, len), 64);
	}
	set_cfg(true, true);
	kcpx_native_hs_free(hs);
	kcpx_native_free(s2);
	kcpx_native_free(c2);
}

/* The userspace bucket (core/ratelimit.c, the server's --hsrate) at one instant: a pass? */
static bool rl_pass(struct kcpx_ratelimit *rl, const char *src)
{
	uint8_t key[16] = { 0 };

	inet_pton(AF_INET, src, key);
	return kcpx_ratelimit_allow(rl, key, 1000000000ULL);
}

/*
 * At most hs_rate good handshakes per second per source; forgeries spend no tokens. The
 * userspace limiter gives the same answers for the same sequence (every run here is well
 * inside one refill step, so both see no time pass).
 */
static void test_hs_rate(void)
{
	struct kcpx_native_hs *hs;
	struct kcpx_ratelimit *rl;
	uint8_t init[KCPX_NATIVE_HS_LEN], bad[KCPX_NATIVE_HS_LEN], r[KCPX_NATIVE_HS_RAND];

	randombytes_buf(r, sizeof(r));
	CHECK_EQ(kcpx_native_hs_init(&hs, psk, SID + 9, r, false, init), 0);
	kcpx_native_hs_free(hs);
	CHECK_EQ(kcpx_ratelimit_new(&rl, 64, 3, 7), 0);
	set_cfg_rate(true, true, 3);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(run_nat(init, sizeof(init)), XDP_PASS);
		CHECK_EQ(d.pass_hs, 1);
		CHECK(rl_pass(rl, nat_src));
	}
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(run_nat(init, sizeof(init)), XDP_DROP);
		CHECK_EQ(d.drop_hs_rate, 1);
		CHECK_EQ(outcomes(), 1);
		CHECK(!rl_pass(rl, nat_src));
	}
	nat_src = "10.7.0.9"; /* another source has its own bucket */
	CHECK_EQ(run_nat(init, sizeof(init)), XDP_PASS);
	CHECK(rl_pass(rl, nat_src));
	kcpx_ratelimit_free(rl);
	nat_src = "10.7.0.5";
	memcpy(bad, init, sizeof(bad));
	bad[17] ^= 2;
	for (int i = 0; i < 5; i++) {
		CHECK_EQ(run_nat(bad, sizeof(bad)), XDP_DROP);
		CHECK_EQ(d.drop_tag, 1);
	}
	CHECK_EQ(run_nat(init, sizeof(init)), XDP_PASS);
	CHECK_EQ(d.pass_hs, 1);
	nat_src = "10.7.0.1";
	set_cfg(true, true);
	CHECK_EQ(run_nat(init, sizeof(init)), XDP_PASS); /* no limit */
}

/* The same checks behind IPv6, and the rate limit keyed by the IPv6 source. */
static void test_ipv6(void)
{
	struct kcpx_native_hs *hs;
	uint8_t dg[512], init[KCPX_NATIVE_HS_LEN], r[KCPX_NATIVE_HS_RAND];
	size_t len;

	nat_family = 6;
	len = seal(cli, dg, 300, true);
	CHECK_EQ(run_nat(dg, len), XDP_PASS);
	CHECK_EQ(d.pass, 1);
	CHECK_EQ(run_nat(dg, len), XDP_DROP);
	CHECK_EQ(d.drop_replay, 1);
	dg[20] ^= 1;
	CHECK_EQ(run_nat(dg, len), XDP_DROP);
	CHECK_EQ(d.drop_tag, 1);
	randombytes_buf(r, sizeof(r));
	CHECK_EQ(kcpx_native_hs_init(&hs, psk, SID + 11, r, false, init), 0);
	kcpx_native_hs_free(hs);
	set_cfg_rate(true, true, 1);
	CHECK_EQ(run_nat(init, sizeof(init)), XDP_PASS);
	CHECK_EQ(run_nat(init, sizeof(init)), XDP_DROP);
	CHECK_EQ(d.drop_hs_rate, 1);
	set_cfg(true, true);
	nat_family = 4;
	CHECK_EQ(run_nat(init, sizeof(init)), XDP_PASS);
}

static double mono_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A well-formed DATA header (any tag) with a random sid other than the live one. */
static void stranger_data(uint8_t *dg, size_t len, uint8_t flags)
{
	randombytes_buf(dg, len);
	dg[0] = KCPX_NATIVE_VERSION;
	dg[1] = KCPX_NT_DATA;
	dg[2] = flags;
	dg[3] = 0;
	if (kcpx_get_le32(dg + 4) == SID)
		kcpx_put_le32(dg + 4, SID + 1);
}

/*
 * A strict server passes DATA naming no session on, for its daemon to answer with a
 * RESET, at most rst_rate a second for all sources together (burst as many); the rest
 * drops, as does every such packet on a client or with rst_rate 0. Thousands of random
 * well-formed ones from thousands of sources: the passes stay inside the one bucket.
 */
static void test_unknown_sid_rate(void)
{
	const unsigned rate = 20, n = 3000;
	struct kcpx_native_rl empty = { 0 };
	const char *keep = nat_src;
	unsigned passed = 0, dropped = 0;
	uint8_t dg[120];
	char src[32];
	double t0, t1;
	__u32 key = 0;

	CHECK_EQ(bpf_map_update_elem(bpf_map__fd(skel->maps.kcpx_nat_rst), &key, &empty, 0), 0);
	set_cfg_rates(true, true, 0, rate);
	t0 = mono_s();
	for (unsigned i = 0; i < n; i++) {
		snprintf(src, sizeof(src), "10.8.%u.%u", (i >> 8) & 255, i & 255);
		nat_src = src;
		stranger_data(dg, sizeof(dg), 0);
		__u32 v = run_nat(dg, sizeof(dg));

		CHECK_EQ(outcomes(), 1);
		if (v == XDP_PASS) {
			CHECK_EQ(d.pass_reset, 1);
			passed++;
		} else {
			CHECK_EQ(v, XDP_DROP);
			CHECK_EQ(d.drop_session, 1);
			dropped++;
		}
		if (i == 0)
			CHECK_EQ(passed, 1); /* a fresh bucket is full */
	}
	t1 = mono_s();
	nat_src = keep;
	printf("      %u of %u unknown-sid DATA passed in %.2f s at rst_rate %u\n", passed, n,
	       t1 - t0, rate);
	CHECK(passed >= 1);
	CHECK(passed <= rate + (unsigned)((t1 - t0) * rate) + 1);
	CHECK_EQ(passed + dropped, n);
	/* no bucket: all drop; a client drops DATA from the server naming no session */
	set_cfg_rates(true, true, 0, 0);
	stranger_data(dg, sizeof(dg), 0);
	CHECK_EQ(run_nat(dg, sizeof(dg)), XDP_DROP);
	CHECK_EQ(d.drop_session, 1);
	CHECK_EQ(bpf_map_update_elem(bpf_map__fd(skel->maps.kcpx_nat_rst), &key, &empty, 0), 0);
	set_cfg_rates(false, true, 0, rate);
	stranger_data(dg, sizeof(dg), KCPX_NF_SERVER);
	CHECK_EQ(run_nat(dg, sizeof(dg)), XDP_DROP);
	CHECK_EQ(d.drop_session, 1);
	CHECK_EQ(outcomes(), 1);
	set_cfg(true, true);
}

/* seqid, flag -> the verdict and the counter that moved */
static __u32 run_shard(uint64_t ctr, uint32_t seqid, uint16_t flag)
{
	uint8_t dg[128], fec[KCPX_NATIVE_FEC_HDR];

	kcpx_put_le32(fec, seqid);
	kcpx_put_le16(fec + 4, flag);
	craft_fec(dg, ctr, fec);
	return run_nat(dg, 100);
}

/* FEC 3/2: parity of a complete group and duplicate shards die in XDP. */
static void test_fec_groups(void)
{
	struct kcpx_native_sess v;
	__u32 sid = SID;
	uint64_t c = 100;

	kcpx_native_bpf_sess(srv, &v);
	v.fec_track = 1;
	v.fec.ds = 3; /* as if learnt (test_fec_learn learns one) */
	v.fec.ps = 2;
	CHECK_EQ(bpf_map_update_elem(bpf_map__fd(skel->maps.kcpx_nat_sess), &sid, &v, 0), 0);
	/* group 0: three data shards pass; the first parity shard passes all the same (a
	 * shard may be lost between XDP and the daemon), the second is not needed */
	for (uint32_t i = 0; i < 3; i++) {
		CHECK_EQ(run_shard(c++, i, 0xf1), XDP_PASS);
		CHECK_EQ(d.pass, 1);
	}
	CHECK_EQ(run_shard(c++, 3, 0xf2), XDP_PASS);
	CHECK_EQ(d.pass, 1);
	CHECK_EQ(run_shard(c++, 4, 0xf2), XDP_DROP);
	CHECK_EQ(d.drop_fec_parity, 1);
	/* a dropped unneeded shard was not marked: the same seqid again is judged again */
	CHECK_EQ(run_shard(c++, 4, 0xf2), XDP_DROP);
	CHECK_EQ(d.drop_fec_parity, 1);
	/* the same shard again under a fresh counter (a --dupsmall copy): duplicate */
	CHECK_EQ(run_shard(c++, 1, 0xf1), XDP_DROP);
	CHECK_EQ(d.drop_fec_dup, 1);
	CHECK_EQ(outcomes(), 1);
	/* group 1: parity before the group completes is needed and passes, once */
	CHECK_EQ(run_shard(c++, 5, 0xf1), XDP_PASS);
	CHECK_EQ(run_shard(c++, 8, 0xf2), XDP_PASS);
	CHECK_EQ(d.pass, 1);
	CHECK_EQ(run_shard(c++, 8, 0xf2), XDP_DROP);
	CHECK_EQ(d.drop_fec_dup, 1);
	CHECK_EQ(run_shard(c++, 7, 0xf1), XDP_PASS);
	CHECK_EQ(run_shard(c++, 6, 0xf1), XDP_PASS);
	CHECK_EQ(run_shard(c++, 9, 0xf2), XDP_DROP); /* parity 8 passed already */
	CHECK_EQ(d.drop_fec_parity, 1);
	/* no FEC flag: left to userspace, the shape stays */
	CHECK_EQ(run_shard(c++, 10, 0x1234), XDP_PASS);
	CHECK_EQ(run_shard(c++, 11, 0xf1), XDP_PASS);
	CHECK_EQ(run_shard(c++, 11, 0xf1), XDP_DROP);
	CHECK_EQ(d.drop_fec_dup, 1);
	/* a shard that failed the replay window marks nothing: its retry under a new
	 * counter passes (group 3, shard 0) */
	CHECK_EQ(run_shard(c - 1, 15, 0xf1), XDP_DROP);
	CHECK_EQ(d.drop_replay, 1);
	CHECK_EQ(run_shard(c++, 15, 0xf1), XDP_PASS);
	/* a flag that disagrees with its index: the peer re-tuned, the shape is unlearnt and
	 * nothing of the session is judged any more (a duplicate passes) */
	CHECK_EQ(run_shard(c++, 16, 0xf2), XDP_PASS);
	CHECK_EQ(run_shard(c++, 17, 0xf1), XDP_PASS);
	CHECK_EQ(run_shard(c++, 17, 0xf1), XDP_PASS);
	CHECK_EQ(d.pass, 1);
	/* without FEC tracking for the session every shard passes */
	add_sess(srv);
	for (uint32_t i = 0; i < 5; i++)
		CHECK_EQ(run_shard(c++, 20 + i, i < 3 ? 0xf1 : 0xf2), XDP_PASS);
	CHECK_EQ(run_shard(c++, 20, 0xf1), XDP_PASS);
}

/* A session entry that tracks FEC with no shape learnt yet (what the daemon inserts). */
static void add_fec_sess(void)
{
	struct kcpx_native_sess v;
	__u32 sid = SID;

	kcpx_native_bpf_sess(srv, &v);
	v.fec_track = 1;
	CHECK_EQ(bpf_map_update_elem(bpf_map__fd(skel->maps.kcpx_nat_sess), &sid, &v, 0), 0);
}

static struct kcpx_fec_shape sess_shape(void)
{
	struct kcpx_native_sess v;
	__u32 sid = SID;

	memset(&v, 0, sizeof(v));
	if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.kcpx_nat_sess), &sid, &v))
		memset(&v.fec, 0xee, sizeof(v.fec)); /* fails every check on it */
	return v.fec;
}

/* One whole group of a ds/ps peer (group g): verdicts counted into *pass / *drop. */
static void send_group(uint64_t *c, uint32_t g, uint32_t ds, uint32_t ps, unsigned *pass,
		       unsigned *drop)
{
	for (uint32_t i = 0; i < ds + ps; i++) {
		__u32 v = run_shard((*c)++, g * (ds + ps) + i, i < ds ? 0xf1 : 0xf2);

		CHECK_EQ(outcomes(), 1);
		*(v == XDP_PASS ? pass : drop) += 1;
	}
}

/*
 * The peer's shape, whatever ours is: XDP learns it from the shard headers (two adjacent
 * groups alike), tracks nothing before, unlearns it when the peer re-tunes and learns the
 * new one. Forged and replayed shards teach nothing.
 */
static void test_fec_learn(void)
{
	uint64_t c = 1000;
	unsigned pass = 0, drop = 0;
	struct kcpx_fec_shape f;
	uint8_t dg[128], fec[KCPX_NATIVE_FEC_HDR];

	add_fec_sess();
	/* a peer at 5/2: groups 0-2 whole; nothing known, so nothing drops (the second parity
	 * of each complete group passes); the shape is measured at the starts of groups 2
	 * and 3 */
	for (uint32_t g = 0; g < 3; g++)
		send_group(&c, g, 5, 2, &pass, &drop);
	CHECK_EQ(pass, 21);
	CHECK_EQ(drop, 0);
	f = sess_shape();
	CHECK_EQ(f.ds, 0);
	CHECK_EQ(f.hits, 1);
	/* forged headers (bad tag) and replays that would complete the lesson teach nothing */
	kcpx_put_le32(fec, 21);
	kcpx_put_le16(fec + 4, 0xf1);
	craft_fec(dg, c++, fec);
	dg[16] ^= 1;
	CHECK_EQ(run_nat(dg, 100), XDP_DROP);
	CHECK_EQ(d.drop_tag, 1);
	CHECK_EQ(run_shard(c - 3, 21, 0xf1), XDP_DROP);
	CHECK_EQ(d.drop_replay, 1);
	f = sess_shape();
	CHECK_EQ(f.ds, 0);
	/* group 3's first shard: two adjacent groups measured 5/2, the shape is in use */
	pass = drop = 0;
	send_group(&c, 3, 5, 2, &pass, &drop);
	f = sess_shape();
	CHECK_EQ(f.ds, 5);
	CHECK_EQ(f.ps, 2);
	CHECK_EQ(pass, 6); /* in use from group 3's first shard on */
	CHECK_EQ(drop, 1);
	pass = drop = 0;
	send_group(&c, 4, 5, 2, &pass, &drop);
	CHECK_EQ(pass, 6);
	CHECK_EQ(drop, 1);
	CHECK_EQ(d.drop_fec_parity, 1); /* the group's second parity, not needed */
	/* a group missing a data shard keeps both parity shards */
	for (uint32_t i = 0; i < 7; i++)
		if (i != 2)
			CHECK_EQ(run_shard(c++, 35 + i, i < 5 ? 0xf1 : 0xf2), XDP_PASS);
	/* the peer re-tunes to 10/3 from group 4 of that shape (seqid 52): the first shard
	 * whose flag disagrees unlearns 5/2; groups 5 and 6 measured alike teach 10/3, in
	 * use from group 7's first shard on */
	pass = drop = 0;
	for (uint32_t g = 4; g < 7; g++)
		send_group(&c, g, 10, 3, &pass, &drop);
	CHECK_EQ(drop, 0);
	f = sess_shape();
	CHECK_EQ(f.ds, 0);
	pass = drop = 0;
	send_group(&c, 7, 10, 3, &pass, &drop);
	f = sess_shape();
	CHECK_EQ(f.ds, 10);
	CHECK_EQ(f.ps, 3);
	CHECK_EQ(pass, 11);
	CHECK_EQ(drop, 2);
	/* a session the daemon does not let track: no shape, nothing judged */
	add_sess(srv);
	pass = drop = 0;
	for (uint32_t g = 0; g < 4; g++)
		send_group(&c, 100 + g, 5, 2, &pass, &drop);
	send_group(&c, 100, 5, 2, &pass, &drop); /* every shard again */
	CHECK_EQ(drop, 0);
	f = sess_shape();
	CHECK_EQ(f.ds, 0);
	CHECK_EQ(f.st, 0);
}

static unsigned fec_entries(void)
{
	int fd = bpf_map__fd(skel->maps.kcpx_nat_fec);
	struct kcpx_native_fec_key k, next, *prev = NULL;
	unsigned n = 0;

	while (!bpf_map_get_next_key(fd, prev, &next) && n < 1000000) {
		k = next;
		prev = &k;
		n++;
	}
	return n;
}

/*
 * What forged shards cost in memory: a bad tag creates no group entry and teaches no
 * shape; a key holder's shards over three times as many groups as the map holds leave at
 * most KCPX_NAT_FEC_MAX entries (an LRU: the oldest are forgotten, which only lets their
 * parity through).
 */
static void test_fec_bounded(void)
{
	const unsigned max = bpf_map__max_entries(skel->maps.kcpx_nat_fec);
	uint8_t dg[128], fec[KCPX_NATIVE_FEC_HDR];
	unsigned before, pass = 0, drop = 0;
	uint64_t c = 1ULL << 30;

	add_fec_sess();
	for (uint32_t g = 0; g < 4; g++) /* learn 3/1 */
		send_group(&c, g, 3, 1, &pass, &drop);
	CHECK_EQ(sess_shape().ds, 3);
	before = fec_entries();
	for (uint32_t i = 0; i < 3 * max; i++) {
		kcpx_put_le32(fec, 1000 + 4 * i);
		kcpx_put_le16(fec + 4, 0xf1);
		craft_fec(dg, c++, fec);
		dg[17] ^= 0x40; /* bad tag */
		CHECK_EQ(run_nat(dg, 100), XDP_DROP);
	}
	CHECK_EQ(fec_entries(), before);
	CHECK_EQ(sess_shape().ds, 3);
	for (uint32_t i = 0; i < 3 * max; i++)
		CHECK_EQ(run_shard(c++, 1000 + 4 * i, 0xf1), XDP_PASS);
	printf("      %u groups of one session: %u entries in kcpx_nat_fec (max %u)\n", 3 * max,
	       fec_entries(), max);
	CHECK(fec_entries() <= max);
	CHECK(fec_entries() > 0);
	add_sess(srv); /* a fresh window for the next tests */
}

/* Not a check: what the XDP checks cost per packet (tag + window; repeats are replays). */
static void test_cost(void)
{
	static struct frame f;
	struct frame_spec sp = { .family = 4,
				 .src = "10.7.0.1",
				 .dst = "10.7.0.2",
				 .sport = 40000,
				 .dport = 4000,
				 .payload = 1300 };
	uint8_t dg[1400];
	LIBBPF_OPTS(bpf_test_run_opts, o, .repeat = 100000);

	frame_build(&f, &sp);
	craft(dg, 1ULL << 40, true);
	memcpy(f.b + f.l4 + 8, dg, 100);
	o.data_in = f.b;
	o.data_size_in = (__u32)f.len;
	CHECK_EQ(bpf_prog_test_run_opts(bpf_program__fd(skel->progs.kcpx_xdp_nat), &o), 0);
	printf("      kcpx_xdp_nat: %u ns per 1342-byte frame (parse + tag + window)\n",
	       o.duration);
	CHECK_EQ(o.retval, XDP_DROP); /* all but the first run were replays */
}

int main(void)
{
	static const uint8_t secret[32] = { 3, 1, 4, 1, 5 };
	static const uint8_t master[32] = { 2, 7, 1, 8 };
	int err;

	if (geteuid() != 0) {
		printf("skip: needs root\n");
		return 4;
	}
	if (sodium_init() < 0)
		return 1;
	ncpu = libbpf_num_possible_cpus();
	skel = kcpx_native_test__open_and_load();
	if (!skel) {
		err = -errno;
		fprintf(stderr, "load kcpx_native_test: %s\n", strerror(-err));
		return 1;
	}
	if (kcpx_native_psk_new_key(&psk, master) ||
	    kcpx_native_new_secret(&cli, secret, SID, false, KCPX_NATIVE_XCHACHA) ||
	    kcpx_native_new_secret(&srv, secret, SID, true, KCPX_NATIVE_XCHACHA))
		return 1;
	set_cfg(true, true);
	add_sess(srv);

	RUN(test_sip_vectors);
	RUN(test_hdr_tag_c_equals_bpf);
	RUN(test_disabled_passes);
	RUN(test_good_and_flipped);
	RUN(test_proto_drops);
	RUN(test_too_old);
	RUN(test_window_matches_c);
	RUN(test_handshake_by_role);
	RUN(test_fec_groups);
	RUN(test_fec_learn);
	RUN(test_fec_bounded);
	RUN(test_hs_rate);
	RUN(test_ipv6);
	RUN(test_unknown_sid_rate);
	RUN(test_cost);

	kcpx_native_free(cli);
	kcpx_native_free(srv);
	kcpx_native_psk_free(psk);
	kcpx_native_test__destroy(skel);
	UNIT_MAIN_END();
}
