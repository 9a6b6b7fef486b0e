// SPDX-License-Identifier: MIT
/*
 * BPF_PROG_RUN tests of bpf/kcpx.bpf.c on crafted frames: which frames are steered to an
 * AF_XDP socket, which pass to the kernel untouched, which are dropped, every parse edge
 * (short frames, VLAN, IPv4 options, IPv6 extension headers, fragments), and after every
 * frame the exact counter that moved. Then the TC egress program's DSCP rewrite, and the
 * native protocol's checks as the live program runs them (--proto kcpx and auto), on
 * datagrams sealed by user/core/native.c.
 *
 * Runs in a private network namespace (unshare) so it can bind an AF_XDP socket to its
 * own loopback for the steering case. Needs root; exits 4 (skip) without it.
 */
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <linux/pkt_cls.h>

#include <bpf/bpf.h>
#include <sodium.h>
#include <xdp/xsk.h>

#include "unit.h"
#include "frames.h"
#include "core/native.h"
#include "core/util.h"
#include "io/addr.h"
#include "io/xdp.h"

#define PORT  4000
#define PEER4 "10.9.0.1"
#define PEER6 "fd00::1"
#define ME4   "10.9.0.2"
#define ME6   "fd00::2"

static struct kcpx_xdp *srv, *cli4, *cli6, *nat_only, *nat_auto, *srv_l4, *srv_l6, *srv_lo;
static struct kcpx_xdp *srv_range; /* listen PORT..PORT + 9 */
static __u32 verdict;
static struct kcpx_xdp_stats d; /* counter deltas of the last frame */
static uint8_t out[FR_MAX];
static __u32 out_len;

static void stats_now(struct kcpx_xdp *x, struct kcpx_xdp_stats *s)
{
	if (kcpx_xdp_sum_percpu(kcpx_xdp_fd(x, KCPX_FD_XDP_STATS), s, sizeof(*s)))
		memset(s, 0xff, sizeof(*s));
}

/* Run kcpx_xdp_steer once on f (length len) as if received on lo queue 0. With a ctx,
 * data_end is the linear length: the rest would become fragments. */
static int run_xdp(struct kcpx_xdp *x, const struct frame *f, size_t len)
{
	struct xdp_md ctx = { .data_end = (__u32)len, .ingress_ifindex = 1, .rx_queue_index = 0 };
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f->b, .data_size_in = (__u32)len,
		    .data_out = out, .data_size_out = sizeof(out), .ctx_in = &ctx,
		    .ctx_size_in = sizeof(ctx), .repeat = 1);
	struct kcpx_xdp_stats a, b;
	__u64 *pa = (__u64 *)&a, *pb = (__u64 *)&b, *pd = (__u64 *)&d;
	int err;

	stats_now(x, &a);
	err = bpf_prog_test_run_opts(kcpx_xdp_fd(x, KCPX_FD_PROG_XDP), &o);
	stats_now(x, &b);
	for (size_t i = 0; i < sizeof(d) / 8; i++)
		pd[i] = pb[i] - pa[i];
	verdict = o.retval;
	out_len = o.data_size_out;
	return err ? -errno : 0;
}

/* Exactly one outcome counter moved, and every frame counts in rx_packets. */
static int outcomes(void)
{
	return (int)(d.pass_short + d.pass_non_ip + d.pass_bad_ip + d.pass_non_udp + d.pass_other +
		     d.pass_frag + d.pass_no_xsk + d.steered + d.drop_trunc + d.drop_udp_len +
		     d.drop_csum0_v6 + d.drop_small + d.drop_big + d.drop_native + d.pass_addr +
		     d.drop_martian);
}

#define CHECK_PASS_UNTOUCHED(f, len)                                                               \
	do {                                                                                       \
		CHECK_EQ(verdict, XDP_PASS);                                                       \
		CHECK_EQ(out_len, (len));                                                          \
		CHECK_MEM(out, (f)->b, (len));                                                     \
		CHECK_EQ(d.rx_packets, 1);                                                         \
		CHECK_EQ(d.rx_bytes, (len));                                                       \
		CHECK_EQ(outcomes(), 1);                                                           \
	} while (0)

static struct frame_spec v4(uint16_t dport, size_t payload)
{
	return (struct frame_spec){ .family = 4,
				    .src = PEER4,
				    .dst = ME4,
				    .sport = 5555,
				    .dport = dport,
				    .payload = payload };
}

static struct frame_spec v6(uint16_t dport, size_t payload)
{
	return (struct frame_spec){ .family = 6,
				    .src = PEER6,
				    .dst = ME6,
				    .sport = 5555,
				    .dport = dport,
				    .payload = payload };
}

/* Server role, no AF_XDP socket: tunnel packets fall back to the kernel, counted. */
static void test_server_tunnel_no_socket(void)
{
	struct frame f;
	struct frame_spec s = v4(PORT, 100);

	CHECK_EQ(run_xdp(srv, &f, frame_build(&f, &s)), 0);
	CHECK_PASS_UNTOUCHED(&f, f.len);
	CHECK_EQ(d.pass_no_xsk, 1);
	s = v6(PORT, 100);
	CHECK_EQ(run_xdp(srv, &f, frame_build(&f, &s)), 0);
	CHECK_PASS_UNTOUCHED(&f, f.len);
	CHECK_EQ(d.pass_no_xsk, 1);
}

static void test_pass_non_tunnel(void)
{
	struct frame f;
	struct frame_spec s = v4(PORT + 1, 100);

	CHECK_EQ(run_xdp(srv, &f, frame_build(&f, &s)), 0);
	CHECK_PASS_UNTOUCHED(&f, f.len);
	CHECK_EQ(d.pass_other, 1);
	/* the tunnel port as the *source* is not the tunnel on a server */
	s.sport = PORT;
	CHECK_EQ(run_xdp(srv, &f, frame_build(&f, &s)), 0);
	CHECK_PASS_UNTOUCHED(&f, f.len);
	CHECK_EQ(d.pass_other, 1);
	/* TCP to the tunnel port */
	s = v4(PORT, 40);
	s.proto = 6;
	CHECK_EQ(run_xdp(srv, &f, frame_build(&f, &s)), 0);
	CHECK_PASS_UNTOUCHED(&f, f.len);
	CHECK_EQ(d.pass_non_udp, 1);
	/* ICMPv6 */
	s = v6(PORT, 40);
	s.proto = 58;
	CHECK_EQ(run_xdp(srv, &f, frame_build(&f, &s)), 0);
	CHECK_PASS_UNTOUCHED(&f, f.len);
	CHECK_EQ(d.pass_non_udp, 1);
	/* ARP */
	s = v4(PORT, 100);
	frame_build(&f, &s);
	f.b[12] = 0x08;
	f.b[13] = 0x06;
	CHECK_EQ(run_xdp(srv, &f, 60), 0);
	CHECK_PASS_UNTOUCHED(&f, 60);
	CHECK_EQ(d.pass_non_ip, 1);
}

static void test_short_frames(void)
{
	struct frame f;
	struct frame_spec s = v4(PORT, 100);

	frame_build(&f, &s);
	/* Ethernet header only, EtherType IPv4 */
	CHECK_EQ(run_xdp(srv, &f, 14), 0);
	CHECK_PASS_UNTOUCHED(&f, 14);
	CHECK_EQ(d.pass_short, 1);
	/* IPv4 header cut */
	CHECK_EQ(run_xdp(srv, &f, 14 + 19), 0);
	CHECK_PASS_UNTOUCHED(&f, 14 + 19);
	CHECK_EQ(d.pass_short, 1);
	/* IPv4 whole, UDP header cut: the ports cannot be read, so not provably tunnel */
	CHECK_EQ(run_xdp(srv, &f, 14 + 20 + 7), 0);
	CHECK_PASS_UNTOUCHED(&f, 14 + 20 + 7);
	CHECK_EQ(d.pass_short, 1);
	/* IPv6 header cut */
	s = v6(PORT, 100);
	frame_build(&f, &s);
	CHECK_EQ(run_xdp(srv, &f, 14 + 39), 0);
	CHECK_PASS_UNTOUCHED(&f, 14 + 39);
	CHECK_EQ(d.pass_short, 1);
	/* VLAN tag cut */
	s = v4(PORT, 100);
	s.vlans = 1;
	frame_build(&f, &s);
	CHECK_EQ(run_xdp(srv, &f, 16), 0);
	CHECK_PASS_UNTOUCHED(&f, 16);
	CHECK_EQ(d.pass_short, 1);
	CHECK_EQ(d.vlan, 0);
}

static void test_bad_ip(void)
{
	struct frame f;
	struct frame_spec s = v4(PORT, 100);

	frame_build(&f, &s);
	f.b[f.l3] = 0x44; /* IHL 4 */
	CHECK_EQ(run_xdp(srv, &f, f.len), 0);
	CHECK_PASS_UNTOUCHED(&f, f.len);
	CHECK_EQ(d.pass_bad_ip, 1);
	frame_build(&f, &s);
	f.b[f.l3] = 0x65; /* version 6 behind an IPv4 EtherType */
	CHECK_EQ(run_xdp(srv, &f, f.len), 0);
	CHECK_PASS_UNTOUCHED(&f, f.len);
	CHECK_EQ(d.pass_bad_ip, 1);
	frame_build(&f, &s);
	fr_put16(f.b + f.l3 + 2, 19); /* total length shorter than the header */
	CHECK_EQ(run_xdp(srv, &f, f.len), 0);
	CHECK_PASS_UNTOUCHED(&f, f.len);
	CHECK_EQ(d.pass_bad_ip, 1);
}

static void test_ipv4_options_and_padding(void)
{
	struct frame f;
	struct frame_spec s = v4(PORT, 100);

	s.ip_opt_words = 3;
	CHECK_EQ(run_xdp(srv, &f, frame_build(&f, &s)), 0);
	CHECK_EQ(d.pass_no_xsk, 1);
	CHECK_EQ(outcomes(), 1);
	/* a small datagram in a padded minimum-size frame is fine */
	s = v4(PORT, 24);
	s.pad = 12;
	CHECK_EQ(run_xdp(srv, &f, frame_build(&f, &s)), 0);
	CHECK_EQ(d.pass_no_xsk, 1);
	CHECK_EQ(outcomes(), 1);
}

static void test_vlan(void)
{
	struct frame f;
	struct frame_spec s = v4(PORT, 100);

	for (int n = 1; n <= 2; n++) {
		s.vlans = n;
		CHECK_EQ(run_xdp(srv, &f, frame_build(&f, &s)), 0);
		CHECK_EQ(verdict, XDP_PASS);
		CHECK_EQ(d.pass_no_xsk, 1);
		CHECK_EQ(d.vlan, 1);
		CHECK_EQ(outcomes(), 1);
	}
	s = v6(PORT, 100);
	s.vlans = 1;
	CHECK_EQ(run_xdp(srv, &f, frame_build(&f, &s)), 0);
	CHECK_EQ(d.pass_no_xsk, 1);
	CHECK_EQ(d.vlan, 1);
	/* a third tag is more than we look through: not IP as far as we know */
	s = v4(PORT, 100);
	s.vlans = 3;
	CHECK_EQ(run_xdp(srv, &f, frame_build(&f, &s)), 0);
	CHECK_PASS_UNTOUCHED(&f, f.len);
	CHECK_EQ(d.pass_non_ip, 1);
	CHECK_EQ(d.vlan, 1);
}

static void test_fragments(void)
{
	struct frame f;
	struct frame_spec s = v4(PORT, 100);
	static const uint8_t frag[] = { 44 };

	frame_build(&f, &s);
	fr_put16(f.b + f.l3 + 6, 0x2000); /* MF, offset 0: the first fragment */
	CHECK_EQ(run_xdp(srv, &f, f.len), 0);
	CHECK_PASS_UNTOUCHED(&f, f.len);
	CHECK_EQ(d.pass_frag, 1);
	fr_put16(f.b + f.l3 + 6, 0x0010); /* a later fragment */
	CHECK_EQ(run_xdp(srv, &f, f.len), 0);
	CHECK_PASS_UNTOUCHED(&f, f.len);
	CHECK_EQ(d.pass_frag, 1);
	fr_put16(f.b + f.l3 + 6, 0x4000); /* DF alone is not a fragment */
	CHECK_EQ(run_xdp(srv, &f, f.len), 0);
	CHECK_EQ(d.pass_no_xsk, 1);

	s = v6(PORT, 100);
	s.v6_ext = frag;
	s.v6_next = 1;
	frame_build(&f, &s);
	/* atomic fragment (offset 0, no M): a whole datagram */
	CHECK_EQ(run_xdp(srv, &f, f.len), 0);
	CHECK_EQ(d.pass_no_xsk, 1);
	CHECK_EQ(outcomes(), 1);
	f.b[f.l3 + 40 + 3] = 0x01; /* M set */
	CHECK_EQ(run_xdp(srv, &f, f.len), 0);
	CHECK_PASS_UNTOUCHED(&f, f.len);
	CHECK_EQ(d.pass_frag, 1);
	f.b[f.l3 + 40 + 3] = 0x08; /* offset 1 */
	CHECK_EQ(run_xdp(srv, &f, f.len), 0);
	CHECK_PASS_UNTOUCHED(&f, f.len);
	CHECK_EQ(d.pass_frag, 1);
}

static void test_ipv6_ext_headers(void)
{
	static const uint8_t ok[] = { 0, 60, 43, 51, 44, 60 };
	static const uint8_t too_many[] = { 0, 60, 43, 60, 60, 60, 60 };
	struct frame f;
	struct frame_spec s = v6(PORT, 100);

	/* six extension headers of every kind we walk, then UDP */
	s.v6_ext = ok;
	s.v6_next = 6;
	CHECK_EQ(run_xdp(srv, &f, frame_build(&f, &s)), 0);
	CHECK_EQ(verdict, XDP_PASS);
	CHECK_EQ(d.pass_no_xsk, 1);
	CHECK_EQ(outcomes(), 1);
	/* seven: more than the walk allows */
	s.v6_ext = too_many;
	s.v6_next = 7;
	CHECK_EQ(run_xdp(srv, &f, frame_build(&f, &s)), 0);
	CHECK_PASS_UNTOUCHED(&f, f.len);
	CHECK_EQ(d.pass_bad_ip, 1);
	/* hop-by-hop options, then No Next Header */
	s.v6_ext = ok;
	s.v6_next = 1;
	s.proto = 59;
	CHECK_EQ(run_xdp(srv, &f, frame_build(&f, &s)), 0);
	CHECK_PASS_UNTOUCHED(&f, f.len);
	CHECK_EQ(d.pass_non_udp, 1);
	/* an extension header cut by the end of the frame */
	s.proto = 0;
	s.v6_ext = ok;
	s.v6_next = 2;
	frame_build(&f, &s);
	CHECK_EQ(run_xdp(srv, &f, f.l3 + 40 + 8 + 1), 0);
	CHECK_PASS_UNTOUCHED(&f, f.l3 + 40 + 8 + 1);
	CHECK_EQ(d.pass_short, 1);
	/* extension header lengths that run past the frame */
	frame_build(&f, &s);
	f.b[f.l3 + 40 + 1] = 200;
	CHECK_EQ(run_xdp(srv, &f, f.len), 0);
	CHECK_PASS_UNTOUCHED(&f, f.len);
	CHECK_EQ(d.pass_short, 1);
}

/* One malformed (or borderline) frame to the server: built from a spec, one 16-bit field
 * set, cut short, run; the verdict and the one counter that moves. */
struct malformed {
	const char *what;
	int family;
	uint16_t dport;
	size_t payload, pad;
	int layer; /* 3 or 4: set the 16 bits at off in the IP or UDP header to val; 0: none */
	size_t off;
	uint16_t val;
	size_t cut;	/* bytes left out at the frame's end */
	__u32 verdict;	/* XDP_DROP, or XDP_PASS (the frame then goes on untouched) */
	size_t counter; /* offsetof(struct kcpx_xdp_stats, the counter) */
};

#define STAT(field) offsetof(struct kcpx_xdp_stats, field)

static const struct malformed malformed[] = {
	{ "IPv4 total length beyond the frame", 4, PORT, 100, 0, 0, 0, 0, 1, XDP_DROP,
	  STAT(drop_trunc) },
	{ "IPv6 payload length beyond the frame", 6, PORT, 100, 0, 3, 4, 109, 0, XDP_DROP,
	  STAT(drop_trunc) },
	{ "UDP length < 8", 4, PORT, 100, 0, 4, 4, 7, 0, XDP_DROP, STAT(drop_udp_len) },
	{ "UDP length beyond the IP payload (though inside the frame: padding)", 4, PORT, 100, 20,
	  4, 4, 109, 0, XDP_DROP, STAT(drop_udp_len) },
	{ "IPv6 UDP with checksum 0", 6, PORT, 100, 0, 4, 6, 0, 0, XDP_DROP, STAT(drop_csum0_v6) },
	{ "IPv4 UDP checksum 0 is legal", 4, PORT, 100, 0, 4, 6, 0, 0, XDP_PASS,
	  STAT(pass_no_xsk) },
	/* payload below the configured minimum (24) and above the maximum (1500) */
	{ "payload 23", 4, PORT, 23, 0, 0, 0, 0, 0, XDP_DROP, STAT(drop_small) },
	{ "payload 24", 4, PORT, 24, 0, 0, 0, 0, 0, XDP_PASS, STAT(pass_no_xsk) },
	{ "payload 1501", 6, PORT, 1501, 0, 0, 0, 0, 0, XDP_DROP, STAT(drop_big) },
	{ "payload 1500", 6, PORT, 1500, 0, 0, 0, 0, 0, XDP_PASS, STAT(pass_no_xsk) },
	{ "the same broken frame to another port is none of our business", 4, PORT + 1, 100, 0, 4,
	  4, 7, 0, XDP_PASS, STAT(pass_other) },
};

static void check_malformed(const struct malformed *m)
{
	struct frame f;
	struct frame_spec s = m->family == 4 ? v4(m->dport, m->payload) : v6(m->dport, m->payload);
	size_t len;

	s.pad = m->pad;
	frame_build(&f, &s);
	if (m->layer)
		fr_put16(f.b + (m->layer == 3 ? f.l3 : f.l4) + m->off, m->val);
	len = f.len - m->cut;
	CHECK_EQ(run_xdp(srv, &f, len), 0);
	if (m->verdict == XDP_PASS) {
		CHECK_PASS_UNTOUCHED(&f, len);
	} else {
		CHECK_EQ(verdict, m->verdict);
		CHECK_EQ(outcomes(), 1);
	}
	CHECK_EQ(*(__u64 *)((char *)&d + m->counter), 1);
}

static void test_drop_malformed(void)
{
	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
		int failed = unit_failed;

		check_malformed(&malformed[i]);
		if (unit_failed != failed)
			fprintf(stderr, "  in case: %s\n", malformed[i].what);
	}
}

static void test_client_role(void)
{
	struct frame f;
	struct frame_spec s = v4(7000, 100);
	struct kcpx_addr peer4, peer6, other4;

	CHECK_EQ(kcpx_addr_parse(PEER4 ":4000", &peer4), 0);
	CHECK_EQ(kcpx_addr_parse("[" PEER6 "]:4000", &peer6), 0);
	CHECK_EQ(kcpx_addr_parse("10.9.0.7:4000", &other4), 0);
	s.sport = PORT;
	/* from the server to a port we did not register */
	CHECK_EQ(run_xdp(cli4, &f, frame_build(&f, &s)), 0);
	CHECK_PASS_UNTOUCHED(&f, f.len);
	CHECK_EQ(d.pass_other, 1);
	CHECK_EQ(kcpx_xdp_add_lport(cli4, 7000, &peer4), 0);
	CHECK_EQ(run_xdp(cli4, &f, frame_build(&f, &s)), 0);
	CHECK_EQ(d.pass_no_xsk, 1);
	CHECK_EQ(outcomes(), 1);
	/* each port has its own server (--remoteaddr resolved anew for a session): a port
	 * registered for another server does not take this one's packets, its own does */
	CHECK_EQ(kcpx_xdp_add_lport(cli4, 7002, &other4), 0);
	s.dport = 7002;
	CHECK_EQ(run_xdp(cli4, &f, frame_build(&f, &s)), 0);
	CHECK_EQ(d.pass_other, 1);
	s.src = "10.9.0.7";
	CHECK_EQ(run_xdp(cli4, &f, frame_build(&f, &s)), 0);
	CHECK_EQ(d.pass_no_xsk, 1);
	s.dport = 7000;
	CHECK_EQ(run_xdp(cli4, &f, frame_build(&f, &s)), 0);
	CHECK_EQ(d.pass_other, 1);
	CHECK_EQ(kcpx_xdp_del_lport(cli4, 7002), 0);
	s.src = PEER4;
	/* from another address, or another source port */
	s.src = "10.9.0.3";
	CHECK_EQ(run_xdp(cli4, &f, frame_build(&f, &s)), 0);
	CHECK_EQ(d.pass_other, 1);
	s.src = PEER4;
	s.sport = PORT + 1;
	CHECK_EQ(run_xdp(cli4, &f, frame_build(&f, &s)), 0);
	CHECK_EQ(d.pass_other, 1);
	/* an IPv6 packet to a v4 client */
	s = v6(7000, 100);
	s.sport = PORT;
	CHECK_EQ(run_xdp(cli4, &f, frame_build(&f, &s)), 0);
	CHECK_EQ(d.pass_other, 1);
	/* the registration is undone */
	CHECK_EQ(kcpx_xdp_del_lport(cli4, 7000), 0);
	s = v4(7000, 100);
	s.sport = PORT;
	CHECK_EQ(run_xdp(cli4, &f, frame_build(&f, &s)), 0);
	CHECK_EQ(d.pass_other, 1);

	/* IPv6 client: every byte of the address matters */
	CHECK_EQ(kcpx_xdp_add_lport(cli6, 7001, &peer6), 0);
	s = v6(7001, 100);
	s.sport = PORT;
	CHECK_EQ(run_xdp(cli6, &f, frame_build(&f, &s)), 0);
	CHECK_EQ(d.pass_no_xsk, 1);
	s.src = "fd00::1:0:0:0:1";
	CHECK_EQ(run_xdp(cli6, &f, frame_build(&f, &s)), 0);
	CHECK_EQ(d.pass_other, 1);
	s.src = "fe00::1";
	CHECK_EQ(run_xdp(cli6, &f, frame_build(&f, &s)), 0);
	CHECK_EQ(d.pass_other, 1);
	/* malformed from the peer to a registered port is dropped like on a server */
	s = v6(7001, 100);
	s.sport = PORT;
	frame_build(&f, &s);
	fr_put16(f.b + f.l4 + 6, 0);
	CHECK_EQ(run_xdp(cli6, &f, f.len), 0);
	CHECK_EQ(verdict, XDP_DROP);
	CHECK_EQ(d.drop_csum0_v6, 1);
}

/* A client with --conn at its maximum, and as many sessions again that --autoexpire
 * replaced and that still carry streams: every port is steered; past the map's size the
 * registration fails with E2BIG (and the daemon says so), never silently. */
static void test_client_many_ports(void)
{
	struct kcpx_addr peer4;
	struct frame f;
	struct frame_spec s = v4(0, 100);
	int added = 0;

	CHECK_EQ(kcpx_addr_parse(PEER4 ":4000", &peer4), 0);
	for (int i = 0; i < 2 * 1024; i++)
		added += !kcpx_xdp_add_lport(cli4, (uint16_t)(20000 + i), &peer4);
	CHECK_EQ(added, 2 * 1024);
	for (int i = 2 * 1024; i < KCPX_LPORTS_MAX; i++)
		CHECK_EQ(kcpx_xdp_add_lport(cli4, (uint16_t)(20000 + i), &peer4), 0);
	CHECK_EQ(kcpx_xdp_add_lport(cli4, (uint16_t)(20000 + KCPX_LPORTS_MAX), &peer4), -E2BIG);
	/* the last one registered is steered like the first */
	s.sport = PORT;
	s.dport = (uint16_t)(20000 + KCPX_LPORTS_MAX - 1);
	CHECK_EQ(run_xdp(cli4, &f, frame_build(&f, &s)), 0);
	CHECK_EQ(d.pass_no_xsk, 1);
	CHECK_EQ(outcomes(), 1);
	for (int i = 0; i < KCPX_LPORTS_MAX; i++)
		CHECK_EQ(kcpx_xdp_del_lport(cli4, (uint16_t)(20000 + i)), 0);
}

static int lo_up(void)
{
	struct ifreq ifr = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM, 0), err = 0;

	if (fd < 0)
		return -errno;
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		err = -errno;
	ifr.ifr_flags |= IFF_UP;
	if (!err && ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		err = -errno;
	close(fd);
	return err;
}

/* With an AF_XDP socket in the XSKMAP for the queue, tunnel packets are redirected. */
static void test_steer_to_socket(void)
{
	struct xsk_socket_config xcfg = {
		.rx_size = 64,
		.tx_size = 64,
		.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
		.bind_flags = XDP_COPY,
	};
	struct xsk_ring_prod fill;
	struct xsk_ring_cons comp, rx;
	struct xsk_umem *umem = NULL;
	struct xsk_socket *xsk = NULL;
	size_t area_len = 64 * 4096;
	void *area;
	struct frame f;
	struct frame_spec s = v4(PORT, 100);
	int err;

	area = mmap(NULL, area_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(area != MAP_FAILED);
	err = xsk_umem__create(&umem, area, area_len, &fill, &comp, NULL);
	if (!err)
		err = xsk_socket__create(&xsk, "lo", 0, umem, &rx, NULL, &xcfg);
	if (err)
		fprintf(stderr, "AF_XDP socket on lo: %s\n", strerror(-err));
	CHECK_EQ(err, 0);
	CHECK_EQ(kcpx_xdp_set_xsk(srv, 0, xsk_socket__fd(xsk)), 0);

	CHECK_EQ(run_xdp(srv, &f, frame_build(&f, &s)), 0);
	CHECK_EQ(verdict, XDP_REDIRECT);
	CHECK_EQ(d.steered, 1);
	CHECK_EQ(d.steered_bytes, 100);
	CHECK_EQ(outcomes(), 1);
	s = v6(PORT, 1000);
	s.vlans = 2;
	CHECK_EQ(run_xdp(srv, &f, frame_build(&f, &s)), 0);
	CHECK_EQ(verdict, XDP_REDIRECT);
	CHECK_EQ(d.steered, 1);
	CHECK_EQ(d.steered_bytes, 1000);
	/* non-tunnel traffic still passes with a socket present */
	s = v4(PORT + 1, 100);
	CHECK_EQ(run_xdp(srv, &f, frame_build(&f, &s)), 0);
	CHECK_PASS_UNTOUCHED(&f, f.len);
	CHECK_EQ(d.pass_other, 1);
	/* socket removed: back to the kernel */
	CHECK_EQ(kcpx_xdp_set_xsk(srv, 0, -1), 0);
	s = v4(PORT, 100);
	CHECK_EQ(run_xdp(srv, &f, frame_build(&f, &s)), 0);
	CHECK_EQ(verdict, XDP_PASS);
	CHECK_EQ(d.pass_no_xsk, 1);

	xsk_socket__delete(xsk);
	xsk_umem__delete(umem);
	munmap(area, area_len);
}

/* Run kcpx_tc_egress on f; the rewritten frame lands in out. */
static int run_tc(struct kcpx_xdp *x, const struct frame *f, struct kcpx_tc_stats *delta)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f->b, .data_size_in = (__u32)f->len,
		    .data_out = out, .data_size_out = sizeof(out), .repeat = 1);
	struct kcpx_tc_stats a, b;
	__u64 *pa = (__u64 *)&a, *pb = (__u64 *)&b, *pd = (__u64 *)delta;
	int fd = kcpx_xdp_fd(x, KCPX_FD_TC_STATS), err;

	kcpx_xdp_sum_percpu(fd, &a, sizeof(a));
	err = bpf_prog_test_run_opts(kcpx_xdp_fd(x, KCPX_FD_PROG_TC), &o);
	kcpx_xdp_sum_percpu(fd, &b, sizeof(b));
	for (size_t i = 0; i < sizeof(a) / 8; i++)
		pd[i] = pb[i] - pa[i];
	verdict = o.retval;
	out_len = o.data_size_out;
	return err ? -errno : 0;
}

static void test_tc_dscp(void)
{
	struct kcpx_tc_stats t;
	struct kcpx_addr peer;
	struct frame f;
	/* server role: tunnel packets leave from the listen port */
	struct frame_spec s = {
		.family = 4, .src = ME4, .dst = PEER4, .sport = PORT, .dport = 5555, .payload = 200
	};

	frame_build(&f, &s);
	f.b[f.l3 + 1] = 0x03; /* ECN CE: kept */
	fr_put16(f.b + f.l3 + 10, 0);
	fr_put16(f.b + f.l3 + 10, fr_csum_fold(fr_csum_add(0, f.b + f.l3, 20)));
	CHECK_EQ(run_tc(srv, &f, &t), 0);
	CHECK_EQ(verdict, TC_ACT_OK);
	CHECK_EQ(out_len, f.len);
	CHECK_EQ(out[f.l3 + 1], (46 << 2) | 0x03);
	CHECK(frame_ip4_csum_ok(out + f.l3));
	CHECK_MEM(out + f.l4, f.b + f.l4, f.len - f.l4);
	CHECK_EQ(t.tx_packets, 1);
	CHECK_EQ(t.tunnel_packets, 1);
	CHECK_EQ(t.dscp_marked, 1);
	CHECK_EQ(t.dscp_err, 0);
	/* already marked: nothing to do */
	memcpy(f.b, out, f.len);
	CHECK_EQ(run_tc(srv, &f, &t), 0);
	CHECK_MEM(out, f.b, f.len);
	CHECK_EQ(t.tunnel_packets, 1);
	CHECK_EQ(t.dscp_marked, 0);

	/* IPv6: traffic class spans two bytes, flow label untouched */
	s = (struct frame_spec){
		.family = 6, .src = ME6, .dst = PEER6, .sport = PORT, .dport = 5555, .payload = 200
	};
	frame_build(&f, &s);
	f.b[f.l3 + 1] = 0x1a;
	f.b[f.l3 + 2] = 0xbc;
	f.b[f.l3 + 3] = 0xde;
	CHECK_EQ(run_tc(srv, &f, &t), 0);
	CHECK_EQ(out[f.l3], 0x60 | (46 >> 2));
	CHECK_EQ(out[f.l3 + 1], ((46 & 3) << 6) | 0x1a);
	CHECK_EQ(out[f.l3 + 2], 0xbc);
	CHECK_EQ(out[f.l3 + 3], 0xde);
	CHECK_MEM(out + f.l3 + 4, f.b + f.l3 + 4, f.len - f.l3 - 4);
	CHECK_EQ(t.dscp_marked, 1);

	/* other traffic leaves untouched, counted only as traffic */
	s = (struct frame_spec){ .family = 4,
				 .src = ME4,
				 .dst = PEER4,
				 .sport = PORT + 1,
				 .dport = PORT,
				 .payload = 200 };
	frame_build(&f, &s);
	CHECK_EQ(run_tc(srv, &f, &t), 0);
	CHECK_MEM(out, f.b, f.len);
	CHECK_EQ(t.tx_packets, 1);
	CHECK_EQ(t.tx_bytes, f.len);
	CHECK_EQ(t.tunnel_packets, 0);

	/* a client without --dscp counts its tunnel packets (from a registered port to that
	 * port's server) but leaves them alone */
	CHECK_EQ(kcpx_addr_parse(PEER4 ":4000", &peer), 0);
	CHECK_EQ(kcpx_xdp_add_lport(cli4, 7000, &peer), 0);
	s = (struct frame_spec){
		.family = 4, .src = ME4, .dst = PEER4, .sport = 7000, .dport = PORT, .payload = 200
	};
	frame_build(&f, &s);
	CHECK_EQ(run_tc(cli4, &f, &t), 0);
	CHECK_MEM(out, f.b, f.len);
	CHECK_EQ(t.tunnel_packets, 1);
	CHECK_EQ(t.dscp_marked, 0);
	s.dst = "10.9.0.7"; /* not that port's server */
	frame_build(&f, &s);
	CHECK_EQ(run_tc(cli4, &f, &t), 0);
	CHECK_EQ(t.tunnel_packets, 0);
	s.dst = PEER4;
	s.sport = 7003; /* not a registered port */
	frame_build(&f, &s);
	CHECK_EQ(run_tc(cli4, &f, &t), 0);
	CHECK_EQ(t.tunnel_packets, 0);
	CHECK_EQ(kcpx_xdp_del_lport(cli4, 7000), 0);
}

/* ---- the native checks in kcpx_xdp_steer ----------------------------------------- */

static struct kcpx_native_xdp_stats nd; /* native counter deltas of the last frame */

/* One frame through x's XDP program, with the native counters' deltas in nd. */
static int run_nat(struct kcpx_xdp *x, const struct frame *f)
{
	struct kcpx_native_xdp_stats a, b;
	__u64 *pa = (__u64 *)&a, *pb = (__u64 *)&b, *pd = (__u64 *)&nd;
	int fd = kcpx_xdp_fd(x, KCPX_FD_NAT_STATS), err;

	if (kcpx_xdp_sum_percpu(fd, &a, sizeof(a)))
		return -EIO;
	err = run_xdp(x, f, f->len);
	if (kcpx_xdp_sum_percpu(fd, &b, sizeof(b)))
		return -EIO;
	for (size_t i = 0; i < sizeof(nd) / 8; i++)
		pd[i] = pb[i] - pa[i];
	return err;
}

/* A frame from the peer to the tunnel port carrying dgram[0..len). */
static void nat_frame(struct frame *f, const uint8_t *dgram, size_t len)
{
	struct frame_spec s = v4(PORT, len);

	frame_build(f, &s);
	memcpy(f->b + f->l4 + 8, dgram, len);
}

/* Seal a body of len bytes (FEC header first when fec) into a frame. */
static void nat_seal(struct kcpx_native *n, struct frame *f, size_t len, bool fec, uint32_t seqid,
		     uint16_t flag)
{
	uint8_t dg[KCPX_NATIVE_HDR + 1400 + KCPX_NATIVE_MAC];
	int r;

	memset(dg + KCPX_NATIVE_HDR, 0x5a, len);
	if (fec) {
		kcpx_put_le32(dg + KCPX_NATIVE_HDR, seqid);
		dg[KCPX_NATIVE_HDR + 4] = (uint8_t)flag;
		dg[KCPX_NATIVE_HDR + 5] = (uint8_t)(flag >> 8);
	}
	r = kcpx_native_seal(n, dg, len, fec);
	CHECK(r > 0);
	nat_frame(f, dg, r > 0 ? (size_t)r : 0);
}

#define NAT_SID 0x1234abcdu

/* outcome: XDP_DROP counted in drop_native and in exactly the given native counter */
#define CHECK_NAT_DROP(field)                                                                      \
	do {                                                                                       \
		CHECK_EQ(verdict, XDP_DROP);                                                       \
		CHECK_EQ(d.drop_native, 1);                                                        \
		CHECK_EQ(outcomes(), 1);                                                           \
		CHECK_EQ(nd.field, 1);                                                             \
	} while (0)
/* outcome: handed on (no AF_XDP socket here: to the kernel) and counted in field */
#define CHECK_NAT_PASS(field)                                                                      \
	do {                                                                                       \
		CHECK_EQ(verdict, XDP_PASS);                                                       \
		CHECK_EQ(d.pass_no_xsk, 1);                                                        \
		CHECK_EQ(outcomes(), 1);                                                           \
		CHECK_EQ(nd.field, 1);                                                             \
	} while (0)

static void test_native_checks(void)
{
	static const uint8_t master[32] = { 7, 7, 7 }, secret[32] = { 9, 9, 9 };
	struct kcpx_native_psk *psk = NULL;
	struct kcpx_native *cli = NULL, *srvn = NULL, *stranger = NULL;
	struct kcpx_native_hs *hs = NULL;
	struct kcpx_native_cfg cfg;
	struct kcpx_native_sess v;
	struct frame f, old, fe;
	uint8_t init[KCPX_NATIVE_HS_LEN], rnd[KCPX_NATIVE_HS_RAND] = { 1 };

	CHECK_EQ(kcpx_native_psk_new_key(&psk, master), 0);
	CHECK_EQ(kcpx_native_new_secret(&cli, secret, NAT_SID, false, KCPX_NATIVE_XCHACHA), 0);
	CHECK_EQ(kcpx_native_new_secret(&srvn, secret, NAT_SID, true, KCPX_NATIVE_XCHACHA), 0);
	CHECK_EQ(kcpx_native_new_secret(&stranger, secret, NAT_SID + 1, false, KCPX_NATIVE_XCHACHA),
		 0);
	if (!psk || !cli || !srvn || !stranger)
		goto out;

	/* no cfg yet: the checks are open, everything passes (pass_off) */
	nat_seal(cli, &old, 100, false, 0, 0); /* counter 0, kept for the "too old" case */
	CHECK_EQ(run_nat(nat_only, &old), 0);
	CHECK_NAT_PASS(pass_off);

	kcpx_native_psk_bpf_cfg(psk, true, &cfg);
	CHECK_EQ(kcpx_xdp_native_cfg(nat_only, &cfg), 0);
	CHECK_EQ(kcpx_xdp_native_cfg(nat_auto, &cfg), 0);
	kcpx_native_bpf_sess(srvn, &v);
	v.fec_track = 1;
	v.fec.ds = 2; /* as if learnt from the peer's headers (test_native.c learns it) */
	v.fec.ps = 1;
	CHECK_EQ(kcpx_xdp_native_add(nat_only, NAT_SID, &v), 0);
	CHECK_EQ(kcpx_xdp_native_add(nat_auto, NAT_SID, &v), 0);
	sodium_memzero(&v, sizeof(v));
	sodium_memzero(&cfg, sizeof(cfg));

	/* a good datagram passes, the same one again is a replay */
	nat_seal(cli, &f, 300, false, 0, 0);
	CHECK_EQ(run_nat(nat_only, &f), 0);
	CHECK_NAT_PASS(pass);
	CHECK_EQ(run_nat(nat_only, &f), 0);
	CHECK_NAT_DROP(drop_replay);

	/* one flipped bit in the tag, or in the header under it: bad tag */
	nat_seal(cli, &f, 300, false, 0, 0);
	f.b[f.l4 + 8 + 16] ^= 0x01;
	CHECK_EQ(run_nat(nat_only, &f), 0);
	CHECK_NAT_DROP(drop_tag);
	f.b[f.l4 + 8 + 16] ^= 0x01;
	f.b[f.l4 + 8 + 9] ^= 0x80; /* counter */
	CHECK_EQ(run_nat(nat_only, &f), 0);
	CHECK_NAT_DROP(drop_tag);
	f.b[f.l4 + 8 + 9] ^= 0x80; /* intact again: the forgeries did not burn its counter */
	CHECK_EQ(run_nat(nat_only, &f), 0);
	CHECK_NAT_PASS(pass);

	/* unknown session, wrong version, random bytes (a kcptun datagram) */
	nat_seal(stranger, &f, 200, false, 0, 0);
	CHECK_EQ(run_nat(nat_only, &f), 0);
	CHECK_NAT_DROP(drop_session);
	f.b[f.l4 + 8] = 2;
	CHECK_EQ(run_nat(nat_only, &f), 0);
	CHECK_NAT_DROP(drop_version);
	randombytes_buf(f.b + f.l4 + 8, 200);
	f.b[f.l4 + 8] = 0xc3;
	CHECK_EQ(run_nat(nat_only, &f), 0);
	CHECK_NAT_DROP(drop_version);
	/* ... which --proto auto passes on, as it may be kcptun's */
	CHECK_EQ(run_nat(nat_auto, &f), 0);
	CHECK_NAT_PASS(pass_kcptun);
	nat_seal(stranger, &f, 200, false, 0, 0);
	CHECK_EQ(run_nat(nat_auto, &f), 0);
	CHECK_NAT_PASS(pass_kcptun);
	/* but auto drops a forgery that names a live session */
	nat_seal(cli, &f, 300, false, 0, 0);
	f.b[f.l4 + 8 + 20] ^= 0x10;
	CHECK_EQ(run_nat(nat_auto, &f), 0);
	CHECK_NAT_DROP(drop_tag);

	/* a client INIT: good handshake tag passes; a bad one is dropped, or passed by auto */
	CHECK_EQ(kcpx_native_hs_init(&hs, psk, 77, rnd, false, init), 0);
	nat_frame(&f, init, sizeof(init));
	CHECK_EQ(run_nat(nat_only, &f), 0);
	CHECK_NAT_PASS(pass_hs);
	f.b[f.l4 + 8 + 5] ^= 1;
	CHECK_EQ(run_nat(nat_only, &f), 0);
	CHECK_NAT_DROP(drop_tag);
	CHECK_EQ(run_nat(nat_auto, &f), 0);
	CHECK_NAT_PASS(pass_kcptun);

	/* 2000 counters later, counter 0 is older than the window */
	for (int i = 0; i < 2000; i++)
		nat_seal(cli, &f, 40, false, 0, 0);
	CHECK_EQ(run_nat(nat_only, &f), 0);
	CHECK_NAT_PASS(pass);
	CHECK_EQ(run_nat(nat_only, &old), 0);
	CHECK_NAT_DROP(drop_old);

	/* FEC 2+1: both data shards; the group's one parity shard still passes (the daemon
	 * may have lost a shard after XDP); a shard sent again (new counter, same seqid: a
	 * --dupsmall copy) is a duplicate */
	nat_seal(cli, &fe, 200, true, 30, 0xf1); /* group 10, index 0 */
	CHECK_EQ(run_nat(nat_only, &fe), 0);
	CHECK_NAT_PASS(pass);
	nat_seal(cli, &f, 200, true, 31, 0xf1);
	CHECK_EQ(run_nat(nat_only, &f), 0);
	CHECK_NAT_PASS(pass);
	nat_seal(cli, &f, 200, true, 32, 0xf2); /* the first parity passes all the same */
	CHECK_EQ(run_nat(nat_only, &f), 0);
	CHECK_NAT_PASS(pass);
	nat_seal(cli, &f, 200, true, 32, 0xf2);
	CHECK_EQ(run_nat(nat_only, &f), 0);
	CHECK_NAT_DROP(drop_fec_dup);
	nat_seal(cli, &f, 200, true, 30, 0xf1);
	CHECK_EQ(run_nat(nat_only, &f), 0);
	CHECK_NAT_DROP(drop_fec_dup);
	/* a group missing a data shard still gets its parity */
	nat_seal(cli, &f, 200, true, 33, 0xf1);
	CHECK_EQ(run_nat(nat_only, &f), 0);
	CHECK_NAT_PASS(pass);
	nat_seal(cli, &f, 200, true, 35, 0xf2);
	CHECK_EQ(run_nat(nat_only, &f), 0);
	CHECK_NAT_PASS(pass);

	/* the session closed: its datagrams are strangers now */
	CHECK_EQ(kcpx_xdp_native_del(nat_only, NAT_SID), 0);
	CHECK_EQ(kcpx_xdp_native_del(nat_only, NAT_SID), 0); /* twice is fine */
	nat_seal(cli, &f, 300, false, 0, 0);
	CHECK_EQ(run_nat(nat_only, &f), 0);
	CHECK_NAT_DROP(drop_session);
	/* ... which a server with a RESET budget hands to its daemon to answer (the bucket's
	 * limits: tests/bpf/test_native.c); --proto auto passes it as before */
	kcpx_native_psk_bpf_cfg(psk, true, &cfg);
	cfg.rst_rate = KCPX_NATIVE_RST_RATE;
	CHECK_EQ(kcpx_xdp_native_cfg(nat_only, &cfg), 0);
	CHECK_EQ(kcpx_xdp_native_cfg(nat_auto, &cfg), 0);
	sodium_memzero(&cfg, sizeof(cfg));
	CHECK_EQ(run_nat(nat_only, &f), 0);
	CHECK_NAT_PASS(pass_reset);
	nat_seal(stranger, &f, 200, false, 0, 0);
	CHECK_EQ(run_nat(nat_auto, &f), 0);
	CHECK_NAT_PASS(pass_kcptun);
out:
	kcpx_native_hs_free(hs);
	kcpx_native_free(cli);
	kcpx_native_free(srvn);
	kcpx_native_free(stranger);
	kcpx_native_psk_free(psk);
}

static int load_native(struct kcpx_xdp **x, enum kcpx_xdp_native native)
{
	struct kcpx_xdp_config c = { .role = KCPX_BPF_ROLE_SERVER,
				     .port = PORT,
				     .dscp = -1,
				     .min_payload = 24,
				     .max_payload = 1500,
				     .native = native };

	return kcpx_xdp_open(x, &c);
}

/*
 * The host's addresses as the daemon would list them (io/ifaddr.h): ME4 and ME6, one more
 * of each (10.9.0.17, fd00::17), the broadcasts of 10.9.0.0/24 and 10.10.0.0/16, and more
 * (extra: 10.9.0.18 and fd00::18, as if added after start).
 */
static void host_addrs(struct kcpx_martians *m, bool extra)
{
	memset(m, 0, sizeof(*m));
	inet_pton(AF_INET, ME4, &m->v4[m->n4++]);
	inet_pton(AF_INET, "10.9.0.17", &m->v4[m->n4++]);
	m->v4[m->n4++] = htonl(0x0a0900ff);
	m->v4[m->n4++] = htonl(0x0a0affff);
	inet_pton(AF_INET6, ME6, m->v6[m->n6++]);
	inet_pton(AF_INET6, "fd00::17", m->v6[m->n6++]);
	if (extra) {
		inet_pton(AF_INET, "10.9.0.18", &m->v4[m->n4++]);
		inet_pton(AF_INET6, "fd00::18", m->v6[m->n6++]);
	}
}

static int load(struct kcpx_xdp **x, enum kcpx_bpf_role role, const char *peer, int dscp)
{
	struct kcpx_xdp_config c = {
		.role = role, .port = PORT, .dscp = dscp, .min_payload = 24, .max_payload = 1500
	};
	struct kcpx_martians m;
	int err;

	if (peer && strchr(peer, ':')) {
		c.peer.in6.sin6_family = AF_INET6;
		inet_pton(AF_INET6, peer, &c.peer.in6.sin6_addr);
	} else if (peer) {
		c.peer.in.sin_family = AF_INET;
		inet_pton(AF_INET, peer, &c.peer.in.sin_addr);
	}
	err = kcpx_xdp_open(x, &c);
	if (err)
		return err;
	host_addrs(&m, false);
	return kcpx_xdp_set_martians(*x, &m);
}

/* One frame from src to dst (port PORT) through x: its verdict and the counter. */
static int run_addr(struct kcpx_xdp *x, const char *src, const char *dst, uint16_t dport)
{
	struct frame f;
	struct frame_spec s = { .family = strchr(src, ':') ? 6 : 4,
				.src = src,
				.dst = dst,
				.sport = 5555,
				.dport = dport,
				.payload = 100 };

	return run_xdp(x, &f, frame_build(&f, &s));
}

/*
 * Martian sources and group destinations to the tunnel's port are dropped and counted
 * (drop_martian); the same addresses to another port pass untouched (the kernel's
 * business); a loopback interface takes 127/8 and ::1.
 */
static void test_martians(void)
{
	static const char *const martian[][2] = {
		{ "0.0.0.0", ME4 },	{ "0.1.2.3", ME4 },
		{ "127.0.0.1", ME4 },	{ "127.9.9.9", ME4 },
		{ "224.0.0.1", ME4 },	{ "239.255.0.1", ME4 },
		{ "240.0.0.1", ME4 },	{ "255.255.255.255", ME4 },
		{ PEER4, "224.0.0.5" }, { PEER4, "255.255.255.255" },
		{ "10.9.0.255", ME4 },	{ "10.10.255.255", ME4 },
		{ ME4, ME4 },		{ "10.9.0.17", ME4 }, /* the host's own */
		{ ME6, ME6 },		{ "fd00::17", ME6 },
		{ "::", ME6 },		{ "::1", ME6 },
		{ "ff02::1", ME6 },	{ "::ffff:10.9.0.1", ME6 },
		{ PEER6, "ff02::1" },	{ PEER6, "ff05::2" },
	};
	static const char *const fine[][2] = {
		{ PEER4, ME4 },
		{ "1.0.0.1", ME4 },
		{ "126.255.255.255", ME4 },
		{ "223.255.255.255", ME4 },
		{ "10.9.1.255", ME4 }, /* another subnet's broadcast: not ours to know */
		{ "10.10.0.255", ME4 },
		{ PEER6, ME6 },
		{ "::2", ME6 },
		{ "::1:0:0:1", ME6 },
		{ "fe80::1", ME6 },
		{ "2001:db8::1", ME6 },
		{ "10.9.0.18", ME4 }, /* not the host's (yet) */
		{ "fd00::18", ME6 },
	};
	struct kcpx_martians m;

	for (size_t i = 0; i < sizeof(martian) / sizeof(martian[0]); i++) {
		CHECK_EQ(run_addr(srv, martian[i][0], martian[i][1], PORT), 0);
		if (verdict != XDP_DROP || d.drop_martian != 1)
			printf("     martian %s -> %s: verdict %u\n", martian[i][0], martian[i][1],
			       verdict);
		CHECK_EQ(verdict, XDP_DROP);
		CHECK_EQ(d.drop_martian, 1);
		CHECK_EQ(outcomes(), 1);
		/* not the tunnel's port: the kernel's business, untouched */
		CHECK_EQ(run_addr(srv, martian[i][0], martian[i][1], PORT + 1), 0);
		CHECK_EQ(verdict, XDP_PASS);
		CHECK_EQ(d.pass_other, 1);
	}
	for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
		CHECK_EQ(run_addr(srv, fine[i][0], fine[i][1], PORT), 0);
		if (d.pass_no_xsk != 1)
			printf("     fine %s -> %s: verdict %u\n", fine[i][0], fine[i][1], verdict);
		CHECK_EQ(d.pass_no_xsk, 1); /* a tunnel packet, no socket in this test */
		CHECK_EQ(outcomes(), 1);
	}
	/* addresses added after start count once the daemon rewrote the list, and no
	 * longer once they are gone */
	host_addrs(&m, true);
	CHECK_EQ(kcpx_xdp_set_martians(srv, &m), 0);
	CHECK_EQ(run_addr(srv, "10.9.0.18", ME4, PORT), 0);
	CHECK_EQ(d.drop_martian, 1);
	CHECK_EQ(run_addr(srv, "fd00::18", ME6, PORT), 0);
	CHECK_EQ(d.drop_martian, 1);
	host_addrs(&m, false);
	CHECK_EQ(kcpx_xdp_set_martians(srv, &m), 0);
	CHECK_EQ(run_addr(srv, "10.9.0.18", ME4, PORT), 0);
	CHECK_EQ(d.pass_no_xsk, 1);
	CHECK_EQ(run_addr(srv, "fd00::18", ME6, PORT), 0);
	CHECK_EQ(d.pass_no_xsk, 1);
	/* a full list: the last entries count too */
	for (m.n4 = 0; m.n4 < KCPX_MARTIAN4_MAX; m.n4++)
		m.v4[m.n4] = htonl(0x0a630000 + m.n4);
	for (m.n6 = 0; m.n6 < KCPX_MARTIAN6_MAX; m.n6++) {
		inet_pton(AF_INET6, "fd63::", m.v6[m.n6]);
		m.v6[m.n6][3] = htonl(m.n6);
	}
	CHECK_EQ(kcpx_xdp_set_martians(srv, &m), 0);
	CHECK_EQ(run_addr(srv, "10.99.0.31", ME4, PORT), 0);
	CHECK_EQ(d.drop_martian, 1);
	CHECK_EQ(run_addr(srv, "fd63::f", ME6, PORT), 0);
	CHECK_EQ(d.drop_martian, 1);
	CHECK_EQ(run_addr(srv, "10.99.0.32", ME4, PORT), 0);
	CHECK_EQ(d.pass_no_xsk, 1);
	host_addrs(&m, false);
	CHECK_EQ(kcpx_xdp_set_martians(srv, &m), 0);
	/* on a loopback interface 127/8 and ::1 are ordinary; the rest stays martian */
	CHECK_EQ(run_addr(srv_lo, "127.0.0.1", "127.0.0.1", PORT), 0);
	CHECK_EQ(d.pass_no_xsk, 1);
	CHECK_EQ(run_addr(srv_lo, "::1", "::1", PORT), 0);
	CHECK_EQ(d.pass_no_xsk, 1);
	CHECK_EQ(run_addr(srv_lo, "0.0.0.1", "127.0.0.1", PORT), 0);
	CHECK_EQ(d.drop_martian, 1);
	CHECK_EQ(run_addr(srv_lo, "::1", "ff02::1", PORT), 0);
	CHECK_EQ(d.drop_martian, 1);
	/* and the host's own addresses come and go there all the time */
	host_addrs(&m, false);
	CHECK_EQ(kcpx_xdp_set_martians(srv_lo, &m), 0);
	CHECK_EQ(run_addr(srv_lo, ME4, ME4, PORT), 0);
	CHECK_EQ(d.pass_no_xsk, 1);
	CHECK_EQ(run_addr(srv_lo, ME6, ME6, PORT), 0);
	CHECK_EQ(d.pass_no_xsk, 1);
}

/* A server with a specific --listen steers only what is addressed to it; the port on
 * another address (or family) passes untouched, counted in pass_addr. */
static void test_listen_address(void)
{
	struct frame f;
	struct frame_spec s = v4(PORT, 100);
	size_t len;

	CHECK_EQ(run_addr(srv_l4, PEER4, ME4, PORT), 0);
	CHECK_EQ(d.pass_no_xsk, 1);
	s.dst = "10.9.0.3";
	len = frame_build(&f, &s);
	CHECK_EQ(run_xdp(srv_l4, &f, len), 0);
	CHECK_PASS_UNTOUCHED(&f, len);
	CHECK_EQ(d.pass_addr, 1);
	CHECK_EQ(run_addr(srv_l4, PEER6, ME6, PORT), 0);
	CHECK_EQ(verdict, XDP_PASS);
	CHECK_EQ(d.pass_addr, 1);
	/* the address is checked before the martian rule: a martian to another address
	 * is the kernel's */
	CHECK_EQ(run_addr(srv_l4, "127.0.0.1", "10.9.0.3", PORT), 0);
	CHECK_EQ(d.pass_addr, 1);
	CHECK_EQ(run_addr(srv_l4, "127.0.0.1", ME4, PORT), 0);
	CHECK_EQ(d.drop_martian, 1);

	CHECK_EQ(run_addr(srv_l6, PEER6, ME6, PORT), 0);
	CHECK_EQ(d.pass_no_xsk, 1);
	CHECK_EQ(run_addr(srv_l6, PEER6, "fd00::3", PORT), 0);
	CHECK_EQ(d.pass_addr, 1);
	CHECK_EQ(run_addr(srv_l6, PEER4, ME4, PORT), 0);
	CHECK_EQ(d.pass_addr, 1);
	/* an any-address server (srv) takes every local address */
	CHECK_EQ(run_addr(srv, PEER4, "10.9.0.3", PORT), 0);
	CHECK_EQ(d.pass_no_xsk, 1);
}

/* A server listening on local (NULL: any address), on a loopback interface or not. */
static int load_srv(struct kcpx_xdp **x, const char *local, bool loopback)
{
	struct kcpx_xdp_config c = { .role = KCPX_BPF_ROLE_SERVER,
				     .port = PORT,
				     .dscp = -1,
				     .min_payload = 24,
				     .max_payload = 1500,
				     .loopback = loopback };

	if (local && strchr(local, ':')) {
		c.local.in6.sin6_family = AF_INET6;
		inet_pton(AF_INET6, local, &c.local.in6.sin6_addr);
	} else if (local) {
		c.local.in.sin_family = AF_INET;
		inet_pton(AF_INET, local, &c.local.in.sin_addr);
	}
	return kcpx_xdp_open(x, &c);
}

/*
 * kcptun's listen range (":4000-4009"): every port of it is the tunnel's, on IPv4 and IPv6,
 * and the ports either side of it are not; the TC program sees the range's replies too.
 */
static void test_listen_range(void)
{
	static const uint16_t in[] = { PORT, PORT + 1, PORT + 5, PORT + 9 };
	static const uint16_t out_of[] = { PORT - 1, PORT + 10, 0, 65535 };
	struct kcpx_xdp *x = srv_range;
	struct kcpx_tc_stats t;
	struct frame f;
	struct frame_spec s = {
		.family = 4, .src = ME4, .dst = PEER4, .dport = 5555, .payload = 200
	};

	for (size_t i = 0; i < 4; i++) {
		CHECK_EQ(run_addr(x, PEER4, ME4, in[i]), 0);
		CHECK_EQ(d.pass_no_xsk, 1);
		CHECK_EQ(run_addr(x, PEER6, ME6, in[i]), 0);
		CHECK_EQ(d.pass_no_xsk, 1);
		CHECK_EQ(run_addr(x, PEER4, ME4, out_of[i]), 0);
		CHECK_EQ(verdict, XDP_PASS);
		CHECK_EQ(d.pass_other, 1);
		CHECK_EQ(run_addr(x, PEER6, ME6, out_of[i]), 0);
		CHECK_EQ(d.pass_other, 1);
		/* leaving from a port of the range: a tunnel packet, marked */
		s.sport = in[i];
		frame_build(&f, &s);
		CHECK_EQ(run_tc(x, &f, &t), 0);
		CHECK_EQ(t.tunnel_packets, 1);
		CHECK_EQ(out[f.l3 + 1] >> 2, 46);
		s.sport = out_of[i];
		frame_build(&f, &s);
		CHECK_EQ(run_tc(x, &f, &t), 0);
		CHECK_EQ(t.tunnel_packets, 0);
	}
	/* one port (srv): its neighbours are not the tunnel's */
	CHECK_EQ(run_addr(srv, PEER4, ME4, PORT + 1), 0);
	CHECK_EQ(d.pass_other, 1);
}

/*
 * Random frames: 20,000 tunnel-shaped frames (IPv4/IPv6, the tunnel's port or another,
 * random sizes), each with 1-8 random bytes overwritten and sometimes cut short, through
 * the server (one port and a listen range), client and native (kcpx and auto) programs.
 * Every frame: no error, exactly one outcome counter, a verdict of PASS or DROP (no socket
 * is bound here), and a passed frame leaves byte for byte as it came.
 */
static void test_random_frames(void)
{
	struct kcpx_xdp *progs[] = { srv, cli4, cli6, nat_only, nat_auto, srv_l4, srv_range };
	uint32_t rs = 0x1357u;
	unsigned passed = 0, dropped = 0;

	for (int i = 0; i < 20000; i++) {
		struct frame f;
		bool six = unit_xorshift32(&rs) & 1;
		struct frame_spec sp = six ? v6(PORT, 0) : v4(PORT, 0);
		struct kcpx_xdp *x = progs[unit_xorshift32(&rs) % 7];
		size_t len;
		int nmut = 1 + unit_xorshift32(&rs) % 8;

		if (unit_xorshift32(&rs) % 4 == 0)
			sp.dport = (uint16_t)unit_xorshift32(&rs);
		else if (x == srv_range) /* a port of the range or just outside it */
			sp.dport = (uint16_t)(PORT - 1 + unit_xorshift32(&rs) % 12);
		if (x == cli4 || x == cli6) { /* from the server's port, to some local port */
			sp.sport = PORT;
			sp.dport = (uint16_t)unit_xorshift32(&rs);
		}
		sp.payload = unit_xorshift32(&rs) % 1600;
		len = frame_build(&f, &sp);
		for (size_t k = f.l4 + 8; k < len; k++)
			f.b[k] = (uint8_t)unit_xorshift32(&rs);
		for (int m = 0; m < nmut; m++)
			f.b[unit_xorshift32(&rs) % len] = (uint8_t)unit_xorshift32(&rs);
		if (unit_xorshift32(&rs) % 8 == 0)
			len = 1 + unit_xorshift32(&rs) % len;
		if (len < 14)
			len = 14; /* BPF_PROG_RUN wants an Ethernet header's worth */
		CHECK_EQ(run_xdp(x, &f, len), 0);
		CHECK_EQ(d.rx_packets, 1);
		CHECK_EQ(outcomes(), 1);
		CHECK(verdict == XDP_PASS || verdict == XDP_DROP);
		if (verdict == XDP_PASS) {
			CHECK_EQ(out_len, len);
			CHECK_MEM(out, f.b, len);
			passed++;
		} else {
			dropped++;
		}
	}
	printf("     20000 random frames: %u passed untouched, %u dropped\n", passed, dropped);
	CHECK(passed > 0 && dropped > 0);
}

int main(void)
{
	int err;

	if (geteuid() != 0) {
		fprintf(stderr, "SKIP: needs root (BPF, network namespace)\n");
		return 4;
	}
	if (unshare(CLONE_NEWNET) < 0 || lo_up() < 0) {
		perror("unshare/lo up");
		return 1;
	}
	setenv("LIBXDP_SKIP_DISPATCHER", "1", 1);
	err = load(&srv, KCPX_BPF_ROLE_SERVER, NULL, 46);
	if (!err)
		err = load(&cli4, KCPX_BPF_ROLE_CLIENT, PEER4, -1);
	if (!err)
		err = load(&cli6, KCPX_BPF_ROLE_CLIENT, PEER6, -1);
	if (!err)
		err = load_srv(&srv_l4, ME4, false);
	if (!err)
		err = load_srv(&srv_l6, ME6, false);
	if (!err)
		err = load_srv(&srv_lo, NULL, true);
	if (!err) {
		struct kcpx_xdp_config c = { .role = KCPX_BPF_ROLE_SERVER,
					     .port = PORT,
					     .port_last = PORT + 9,
					     .dscp = 46,
					     .min_payload = 24,
					     .max_payload = 1500 };

		err = kcpx_xdp_open(&srv_range, &c);
	}
	if (!err)
		err = load_native(&nat_only, KCPX_XDP_NATIVE_ONLY);
	if (!err)
		err = load_native(&nat_auto, KCPX_XDP_NATIVE_AUTO);
	if (!err && sodium_init() < 0)
		err = -EIO;
	if (err) {
		fprintf(stderr, "loading kcpx BPF: %s\n", strerror(-err));
		return 1;
	}

	RUN(test_server_tunnel_no_socket);
	RUN(test_pass_non_tunnel);
	RUN(test_short_frames);
	RUN(test_bad_ip);
	RUN(test_ipv4_options_and_padding);
	RUN(test_vlan);
	RUN(test_fragments);
	RUN(test_ipv6_ext_headers);
	RUN(test_drop_malformed);
	RUN(test_client_role);
	RUN(test_client_many_ports);
	RUN(test_steer_to_socket);
	RUN(test_tc_dscp);
	RUN(test_native_checks);
	RUN(test_martians);
	RUN(test_listen_address);
	RUN(test_listen_range);
	RUN(test_random_frames);

	kcpx_xdp_close(srv, false);
	kcpx_xdp_close(cli4, false);
	kcpx_xdp_close(cli6, false);
	kcpx_xdp_close(nat_only, false);
	kcpx_xdp_close(nat_auto, false);
	kcpx_xdp_close(srv_l4, false);
	kcpx_xdp_close(srv_l6, false);
	kcpx_xdp_close(srv_lo, false);
	kcpx_xdp_close(srv_range, false);
	UNIT_MAIN_END();
}
