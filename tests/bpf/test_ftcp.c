// SPDX-License-Identifier: MIT
/*
 * BPF_PROG_RUN tests of bpf/faketcp.bpf.c (`--tcp`): the TC egress translation UDP -> TCP
 * and the XDP ingress translation TCP -> UDP on crafted frames. Every checksum the programs
 * write is checked here with a plain RFC 1071 sum (tests/bpf/frames.h), independent of
 * the programs' incremental arithmetic; sequence and acknowledgement tracking with
 * wrap-around; RST, SYN, FIN and pure ACKs of a flow; truncated and malformed segments;
 * segments and datagrams of other flows and ports untouched; and a round trip of every
 * payload length 1..1500 through both programs back to the datagram it started as.
 *
 * Needs root; exits 4 (skip) without it.
 */
#include <errno.h>
#include <sched.h>
#include <time.h>
#include <stdbool.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <linux/pkt_cls.h>

#include <bpf/bpf.h>

#include "unit.h"
#include "frames.h"
#include "core/ftcpflow.h"
#include "io/ftcp_bpf.h"

#define LPORT 4000
#define RPORT 29900
#define PEER4 "10.9.0.1"
#define PEER6 "fd00::1"
#define ME4   "10.9.0.2"
#define ME6   "fd00::2"

/* TCX verdicts (newer than this system's UAPI headers) */
#define V_TCX_NEXT 0xffffffffu
#define V_TCX_DROP 2u

static struct kcpx_ftcp_bpf *b;
/* The ingress cases run twice: through XDP, then through the TCX ingress fallback. */
static int tci_mode;
#define V_PASS (tci_mode ? V_TCX_NEXT : (__u32)XDP_PASS)
#define V_DROP (tci_mode ? V_TCX_DROP : (__u32)XDP_DROP)
static __u32 verdict;
static struct kcpx_ftcp_stats d; /* counter deltas of the last run */
static uint8_t out[FR_MAX];
static __u32 out_len;

static int run(enum kcpx_ftcp_fd prog, const uint8_t *in, size_t len)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in, .data_size_in = (__u32)len,
		    .data_out = out, .data_size_out = sizeof(out), .repeat = 1);
	struct kcpx_ftcp_stats a, z;
	__u64 *pa = (__u64 *)&a, *pz = (__u64 *)&z, *pd = (__u64 *)&d;
	int err;

	if (kcpx_ftcp_bpf_stats(b, &a))
		memset(&a, 0xff, sizeof(a));
	err = bpf_prog_test_run_opts(kcpx_ftcp_bpf_fd(b, prog), &o);
	if (kcpx_ftcp_bpf_stats(b, &z))
		memset(&z, 0, sizeof(z));
	for (size_t i = 0; i < sizeof(d) / 8; i++)
		pd[i] = pz[i] - pa[i];
	verdict = o.retval;
	out_len = o.data_size_out;
	return err ? -errno : 0;
}

static int run_tc(const struct frame *f)
{
	return run(KCPX_FTCP_FD_PROG_TC, f->b, f->len);
}

static int run_xdp(const struct frame *f)
{
	return run(tci_mode ? KCPX_FTCP_FD_PROG_TCI : KCPX_FTCP_FD_PROG_XDP, f->b, f->len);
}

/* Events counted by the last run (byte counters left out). */
static uint64_t counted(void)
{
	__u64 *p = (__u64 *)&d, n = 0;

	for (size_t i = 0; i < sizeof(d) / 8; i++)
		n += p[i];
	return n - d.tx_bytes - d.rx_bytes;
}

/* The datagram our daemon sends: from LPORT to the peer's RPORT. */
static size_t udp_out(struct frame *f, int family, size_t payload)
{
	struct frame_spec s = { .family = family,
				.src = family == 4 ? ME4 : ME6,
				.dst = family == 4 ? PEER4 : PEER6,
				.sport = LPORT,
				.dport = RPORT,
				.payload = payload };

	return frame_build(f, &s);
}

/* L4 checksum over the pseudo-header and l4len bytes at f->l4 is right. */
static int l4_csum_ok(const uint8_t *b, size_t l3, size_t l4, size_t l4len, int family,
		      uint8_t proto)
{
	uint32_t sum;

	if (family == 4)
		sum = fr_csum_add(0, b + l3 + 12, 8);
	else
		sum = fr_csum_add(0, b + l3 + 8, 32);
	sum += proto + (uint32_t)l4len;
	sum = fr_csum_add(sum, b + l4, l4len);
	return fr_csum_fold(sum) == 0;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

struct seg {
	int family;
	uint16_t sport, dport; /* default: RPORT -> LPORT (from the peer) */
	uint32_t seq, ack;
	uint16_t flags; /* default PSH|ACK */
	int opt_words;	/* TCP options, 4-byte words of NOP */
	size_t payload;
	const char *src; /* default: the peer */
};

/* A TCP segment from the peer to us, with correct checksums. */
static size_t tcp_in(struct frame *f, const struct seg *sg)
{
	struct frame_spec s = { .family = sg->family,
				.src = sg->src		 ? sg->src
				       : sg->family == 4 ? PEER4
							 : PEER6,
				.dst = sg->family == 4 ? ME4 : ME6,
				.sport = sg->sport ? sg->sport : RPORT,
				.dport = sg->dport ? sg->dport : LPORT,
				.payload = 12 + 4 * (size_t)sg->opt_words + sg->payload,
				.proto = 6 };
	size_t hl = 20 + 4 * (size_t)sg->opt_words, l4len;
	uint8_t *t;
	uint32_t sum;

	frame_build(f, &s); /* a "UDP" frame of the right total size; the header follows */
	t = f->b + f->l4;
	l4len = hl + sg->payload;
	fr_put16(t, s.sport);
	fr_put16(t + 2, s.dport);
	put32(t + 4, sg->seq);
	put32(t + 8, sg->ack);
	t[12] = (uint8_t)(hl / 4 << 4);
	t[13] = (uint8_t)(sg->flags ? sg->flags : 0x18);
	fr_put16(t + 14, 0xfaf0);
	fr_put16(t + 16, 0);
	fr_put16(t + 18, 0);
	memset(t + 20, 1, hl - 20);
	for (size_t i = 0; i < sg->payload; i++)
		t[hl + i] = (uint8_t)(i * 13 + 5);
	if (sg->family == 4)
		sum = fr_csum_add(0, f->b + f->l3 + 12, 8);
	else
		sum = fr_csum_add(0, f->b + f->l3 + 8, 32);
	sum += 6 + (uint32_t)l4len;
	sum = fr_csum_add(sum, t, l4len);
	fr_put16(t + 16, fr_csum_fold(sum));
	return f->len;
}

/* The segment sg from the peer, built into f and run through ingress: verdict v. */
#define CHECK_IN(f, sg, v)                                                                         \
	do {                                                                                       \
		tcp_in((f), (sg));                                                                 \
		CHECK_EQ(run_xdp(f), 0);                                                           \
		CHECK_EQ(verdict, (v));                                                            \
	} while (0)

/* The IP header at ip that a rewrite wrote: protocol proto before l4len bytes, checksum
 * right, the addresses of the frame f it came from. */
static void check_ip_out(const uint8_t *ip, const struct frame *f, int family, int proto,
			 size_t l4len)
{
	if (family == 4) {
		CHECK_EQ(ip[9], proto);
		CHECK_EQ(ip[2] << 8 | ip[3], 20 + l4len);
		CHECK(frame_ip4_csum_ok(ip));
		CHECK_MEM(ip + 12, f->b + f->l3 + 12, 8);
	} else {
		CHECK_EQ(ip[6], proto);
		CHECK_EQ(ip[4] << 8 | ip[5], l4len);
		CHECK_MEM(ip + 8, f->b + f->l3 + 8, 32);
	}
}

static struct kcpx_ftcp_key flow_key(int family, uint16_t rport, uint16_t lport)
{
	struct kcpx_addr a = {};
	struct kcpx_ftcp_key k;

	if (family == 4) {
		a.in.sin_family = AF_INET;
		inet_pton(AF_INET, PEER4, &a.in.sin_addr);
		a.in.sin_port = htons(rport);
	} else {
		a.in6.sin6_family = AF_INET6;
		inet_pton(AF_INET6, PEER6, &a.in6.sin6_addr);
		a.in6.sin6_port = htons(rport);
	}
	kcpx_ftcp_key_make(&k, &a, lport);
	return k;
}

/* the peer's kernel socket's sequence number, where the flow was handed over */
#define RCV_ISN 0x80000000u

static int set_flow(int family, uint32_t snd, uint32_t rcv, uint8_t state)
{
	struct kcpx_ftcp_key k = flow_key(family, RPORT, LPORT);
	struct kcpx_ftcp_flow f = {
		.snd_nxt = snd, .rcv_nxt = rcv, .window = 502, .state = state, .rcv_isn = RCV_ISN
	};

	return kcpx_ftcp_bpf_flow_set(b, &k, &f);
}

static struct kcpx_ftcp_flow get_flow(int family)
{
	struct kcpx_ftcp_key k = flow_key(family, RPORT, LPORT);
	struct kcpx_ftcp_flow f;

	if (kcpx_ftcp_bpf_flow_get(b, &k, &f))
		memset(&f, 0xee, sizeof(f));
	return f;
}

static void del_flow(int family)
{
	struct kcpx_ftcp_key k = flow_key(family, RPORT, LPORT);

	kcpx_ftcp_bpf_flow_del(b, &k);
}

/* One datagram out through TC: a TCP segment with every field and checksum right. */
static void check_egress(int family, size_t payload, uint32_t snd, uint32_t rcv)
{
	struct frame f;
	size_t l3len = family == 4 ? 20 : 40, l4 = 14 + l3len;
	const uint8_t *t = out + l4, *ip = out + 14;
	struct kcpx_ftcp_flow fl;

	udp_out(&f, family, payload);
	CHECK_EQ(set_flow(family, snd, rcv, KCPX_FTCP_EST), 0);
	CHECK_EQ(run_tc(&f), 0);
	CHECK_EQ(verdict, V_TCX_NEXT);
	CHECK_EQ(d.tx_segs, 1);
	CHECK_EQ(d.tx_bytes, payload);
	CHECK_EQ(counted(), 1);
	CHECK_EQ(out_len, f.len + 12);
	CHECK_MEM(out, f.b, 14); /* Ethernet untouched */
	check_ip_out(ip, &f, family, 6, 20 + payload);
	CHECK_EQ(t[0] << 8 | t[1], LPORT);
	CHECK_EQ(t[2] << 8 | t[3], RPORT);
	CHECK_EQ(get32(t + 4), snd);
	CHECK_EQ(get32(t + 8), rcv);
	CHECK_EQ(t[12], 5 << 4);
	CHECK_EQ(t[13], 0x18); /* PSH|ACK */
	CHECK_EQ(t[14] << 8 | t[15], 502);
	CHECK_EQ(t[18] << 8 | t[19], 0);
	CHECK_MEM(t + 20, f.b + f.l4 + 8, payload);
	CHECK(l4_csum_ok(out, 14, l4, 20 + payload, family, 6));
	fl = get_flow(family);
	CHECK_EQ(fl.snd_nxt, (uint32_t)(snd + payload));
	CHECK_EQ(fl.rcv_nxt, rcv);
	CHECK(fl.tx_ns != 0);
}

static void test_egress_v4(void)
{
	check_egress(4, 100, 1000, 77777);
	check_egress(4, 1, 5, 6);
	check_egress(4, 3, 5, 6);
	check_egress(4, 1500, 0x12345678, 0x9abcdef0);
	/* wrap: the next sequence number passes 2^32 */
	check_egress(4, 0x200, 0xffffff00, 1);
}

static void test_egress_v6(void)
{
	check_egress(6, 100, 1000, 77777);
	check_egress(6, 1231, 0xfffffffe, 0xffffffff);
	check_egress(6, 2, 0, 0);
}

/* Two datagrams in a row: the second segment starts where the first ended. */
static void test_egress_seq_advances(void)
{
	struct frame f;

	CHECK_EQ(set_flow(4, 4000000000u, 9, KCPX_FTCP_EST), 0);
	udp_out(&f, 4, 700);
	for (uint32_t i = 0; i < 10; i++) {
		CHECK_EQ(run_tc(&f), 0);
		CHECK_EQ(d.tx_segs, 1);
		CHECK_EQ(get32(out + 34 + 4), 4000000000u + 700 * i);
	}
	CHECK_EQ(get_flow(4).snd_nxt, 4000000000u + 7000);
}

static void test_egress_no_flow(void)
{
	struct frame f;

	/* no flow: dropped, never leaves as UDP */
	del_flow(4);
	udp_out(&f, 4, 100);
	CHECK_EQ(run_tc(&f), 0);
	CHECK_EQ(verdict, V_TCX_DROP);
	CHECK_EQ(d.tx_noflow, 1);
	CHECK_EQ(counted(), 1);
	/* a flow waiting for a new handshake does not send either */
	CHECK_EQ(set_flow(4, 1, 1, KCPX_FTCP_RESET), 0);
	CHECK_EQ(run_tc(&f), 0);
	CHECK_EQ(verdict, V_TCX_DROP);
	CHECK_EQ(d.tx_noflow, 1);
	CHECK_EQ(set_flow(4, 1, 1, KCPX_FTCP_SYN), 0);
	CHECK_EQ(run_tc(&f), 0);
	CHECK_EQ(verdict, V_TCX_DROP);
	CHECK_EQ(get_flow(4).snd_nxt, 1);
}

/* Datagrams from other ports, TCP from our port, other protocols: untouched, uncounted. */
static void test_egress_others_untouched(void)
{
	struct frame f;
	struct frame_spec s = { .family = 4,
				.src = ME4,
				.dst = PEER4,
				.sport = LPORT + 1,
				.dport = RPORT,
				.payload = 100 };

	CHECK_EQ(set_flow(4, 1, 1, KCPX_FTCP_EST), 0);
	frame_build(&f, &s);
	CHECK_EQ(run_tc(&f), 0);
	CHECK_EQ(verdict, V_TCX_NEXT);
	CHECK_EQ(out_len, f.len);
	CHECK_MEM(out, f.b, f.len);
	CHECK_EQ(counted(), 0);
	s.sport = LPORT;
	s.proto = 6;
	frame_build(&f, &s);
	CHECK_EQ(run_tc(&f), 0);
	CHECK_EQ(verdict, V_TCX_NEXT);
	CHECK_MEM(out, f.b, f.len);
	CHECK_EQ(counted(), 0);
	s.family = 6;
	s.src = ME6;
	s.dst = PEER6;
	s.proto = 58;
	frame_build(&f, &s);
	CHECK_EQ(run_tc(&f), 0);
	CHECK_EQ(verdict, V_TCX_NEXT);
	CHECK_MEM(out, f.b, f.len);
	CHECK_EQ(counted(), 0);
	CHECK_EQ(get_flow(4).snd_nxt, 1);
}

static void test_egress_bad(void)
{
	struct frame f;

	CHECK_EQ(set_flow(4, 1, 1, KCPX_FTCP_EST), 0);
	/* an IPv4 fragment of our port */
	udp_out(&f, 4, 100);
	f.b[f.l3 + 6] = 0x20;
	CHECK_EQ(run_tc(&f), 0);
	CHECK_EQ(verdict, V_TCX_DROP);
	CHECK_EQ(d.tx_bad, 1);
	/* UDP length beyond the packet, and an empty datagram */
	udp_out(&f, 4, 100);
	fr_put16(f.b + f.l4 + 4, 200);
	CHECK_EQ(run_tc(&f), 0);
	CHECK_EQ(verdict, V_TCX_DROP);
	CHECK_EQ(d.tx_bad, 1);
	fr_put16(f.b + f.l4 + 4, 8);
	CHECK_EQ(run_tc(&f), 0);
	CHECK_EQ(verdict, V_TCX_DROP);
	CHECK_EQ(d.tx_bad, 1);
	/* a payload larger than the tunnel ever sends */
	udp_out(&f, 4, KCPX_FTCP_PAYLOAD_MAX + 1);
	CHECK_EQ(run_tc(&f), 0);
	CHECK_EQ(verdict, V_TCX_DROP);
	CHECK_EQ(d.tx_bad, 1);
	CHECK_EQ(get_flow(4).snd_nxt, 1);
}

/* One data segment in through XDP: a UDP datagram with the kernel's checks satisfied. */
/* The ACK field of check_ingress's segments; its flow's snd_nxt is 1. */
static uint32_t seg_ack = 1;

static void check_ingress(int family, size_t payload, int opt_words, uint32_t seq,
			  uint32_t rcv_before, uint32_t rcv_after)
{
	struct seg sg = { .family = family,
			  .seq = seq,
			  .ack = seg_ack,
			  .payload = payload,
			  .opt_words = opt_words };
	size_t l3len = family == 4 ? 20 : 40, l4 = 14 + l3len, hl = 20 + 4 * (size_t)opt_words;
	const uint8_t *u = out + l4, *ip = out + 14;
	struct frame f;

	tcp_in(&f, &sg);
	CHECK_EQ(set_flow(family, 1, rcv_before, KCPX_FTCP_EST), 0);
	CHECK_EQ(run_xdp(&f), 0);
	CHECK_EQ(verdict, V_PASS);
	CHECK_EQ(d.rx_segs, 1);
	CHECK_EQ(d.rx_bytes, payload);
	CHECK_EQ(out_len, f.len - (hl - 8));
	CHECK_MEM(out, f.b, 14);
	check_ip_out(ip, &f, family, 17, 8 + payload);
	CHECK_EQ(u[0] << 8 | u[1], RPORT);
	CHECK_EQ(u[2] << 8 | u[3], LPORT);
	CHECK_EQ(u[4] << 8 | u[5], 8 + payload);
	CHECK(u[6] << 8 | u[7]); /* never "no checksum" */
	CHECK(l4_csum_ok(out, 14, l4, 8 + payload, family, 17));
	CHECK_MEM(u + 8, f.b + f.l4 + hl, payload);
	CHECK_EQ(get_flow(family).rcv_nxt, rcv_after);
	CHECK(get_flow(family).rx_ns != 0);
}

static void test_ingress_v4(void)
{
	check_ingress(4, 100, 0, 5000, 5000, 5100);
	CHECK_EQ(d.rx_ooo, 0);
	check_ingress(4, 1, 0, 7, 7, 8);
	check_ingress(4, 1500, 0, 7, 7, 1507);
	/* options (timestamps from another stack) are dropped with the header */
	check_ingress(4, 333, 3, 9, 9, 342);
	check_ingress(4, 64, 10, 9, 9, 73);
	/* wrap */
	check_ingress(4, 100, 0, 0xfffffff0, 0xfffffff0, 0x54);
}

static void test_ingress_v6(void)
{
	check_ingress(6, 100, 0, 5000, 5000, 5100);
	check_ingress(6, 1299, 3, 0xffffff00, 0xffffff00, 0x413);
}

/* What we acknowledge follows the furthest data, not a gap, not a blind jump. */
static void test_ingress_ack_tracking(void)
{
	/* a gap (an earlier segment lost): jump to the end of this one, counted */
	check_ingress(4, 100, 0, 6000, 5000, 6100);
	CHECK_EQ(d.rx_ooo, 1);
	/* an old segment (reordered, or tcpraw restarting at our ack): rcv_nxt stays */
	check_ingress(4, 100, 0, 4000, 5000, 5000);
	CHECK_EQ(d.rx_ooo, 1);
	/* overlapping the edge: moves to its end */
	check_ingress(4, 100, 0, 4950, 5000, 5050);
	/* further ahead than any real gap: translated, but our ack stays */
	check_ingress(4, 100, 0, 5000 + KCPX_FTCP_ACK_JUMP_MAX + 1, 5000, 5000);
	CHECK_EQ(d.rx_ack_jump, 1);
	/* across the wrap, ahead */
	check_ingress(4, 10, 0, 0x10, 0xfffffff0, 0x1a);
	CHECK_EQ(d.rx_ooo, 1);
	/* acknowledging what we never sent (snd_nxt is 1): translated, our ack stays */
	seg_ack = 2;
	check_ingress(4, 100, 0, 5000, 5000, 5000);
	CHECK_EQ(d.rx_ack_jump, 1);
	/* ... or what we sent over a GiB ago */
	seg_ack = 1 - KCPX_FTCP_ACK_BEHIND_MAX - 1;
	check_ingress(4, 100, 0, 5000, 5000, 5000);
	CHECK_EQ(d.rx_ack_jump, 1);
	seg_ack = 1 - KCPX_FTCP_ACK_BEHIND_MAX;
	check_ingress(4, 100, 0, 5000, 5000, 5100);
	CHECK_EQ(d.rx_ack_jump, 0);
	seg_ack = 1;
}

/* Segments of a flow that are not data go to the kernel's socket, untouched. */
static void test_ingress_control(void)
{
	struct seg sg = { .family = 4, .seq = 5000, .ack = 1 };
	struct frame f;

	CHECK_EQ(set_flow(4, 1, 5000, KCPX_FTCP_EST), 0);
	/* pure ACK */
	sg.flags = 0x10;
	CHECK_IN(&f, &sg, V_PASS);
	CHECK_EQ(out_len, f.len);
	CHECK_MEM(out, f.b, f.len);
	CHECK_EQ(d.rx_ctl, 1);
	CHECK_EQ(counted(), 1);
	/* FIN with data */
	sg.flags = 0x19;
	sg.payload = 10;
	CHECK_IN(&f, &sg, V_PASS);
	CHECK_MEM(out, f.b, f.len);
	CHECK_EQ(d.rx_ctl, 1);
	/* data without ACK */
	sg.flags = 0x08;
	CHECK_IN(&f, &sg, V_PASS);
	CHECK_EQ(d.rx_ctl, 1);
	CHECK_EQ(get_flow(4).state, KCPX_FTCP_EST);
	CHECK_EQ(get_flow(4).rcv_nxt, 5000);
	/* a SYN-ACK on a flow is no restart */
	sg.flags = 0x12;
	sg.payload = 0;
	tcp_in(&f, &sg);
	CHECK_EQ(run_xdp(&f), 0);
	CHECK_EQ(d.rx_ctl, 1);
	CHECK_EQ(get_flow(4).state, KCPX_FTCP_EST);
	/* a SYN: the peer made a new handshake on this 4-tuple */
	sg.flags = 0x02;
	CHECK_IN(&f, &sg, V_PASS);
	CHECK_MEM(out, f.b, f.len);
	CHECK_EQ(d.rx_syn, 1);
	CHECK_EQ(get_flow(4).state, KCPX_FTCP_SYN);
}

static void test_ingress_rst(void)
{
	struct seg sg = { .family = 4, .flags = 0x04 };
	struct frame f;

	/* blind: far from what we acknowledge. Dropped, the flow lives on */
	CHECK_EQ(set_flow(4, 1, 5000, KCPX_FTCP_EST), 0);
	sg.seq = 5000 + KCPX_FTCP_RST_WINDOW;
	CHECK_IN(&f, &sg, V_DROP);
	CHECK_EQ(d.rx_rst_bad, 1);
	sg.seq = 5000 - KCPX_FTCP_RST_WINDOW;
	CHECK_IN(&f, &sg, V_DROP);
	CHECK_EQ(get_flow(4).state, KCPX_FTCP_EST);
	sg.seq = RCV_ISN + 1;
	CHECK_IN(&f, &sg, V_DROP);
	CHECK_EQ(get_flow(4).state, KCPX_FTCP_EST);
	/* the peer's kernel socket closing: its sequence number stopped at the handshake */
	sg.seq = RCV_ISN;
	CHECK_IN(&f, &sg, V_PASS);
	CHECK_EQ(d.rx_rst, 1);
	CHECK_EQ(get_flow(4).state, KCPX_FTCP_RESET);
	CHECK_EQ(set_flow(4, 1, 5000, KCPX_FTCP_EST), 0);
	/* in window (a middlebox or the peer's kernel): marked, passed on */
	sg.seq = 5000 - KCPX_FTCP_RST_WINDOW + 1;
	CHECK_IN(&f, &sg, V_PASS);
	CHECK_EQ(d.rx_rst, 1);
	CHECK_EQ(get_flow(4).state, KCPX_FTCP_RESET);
	CHECK_EQ(set_flow(4, 1, 0xffffff00, KCPX_FTCP_EST), 0);
	sg.seq = 0x100; /* across the wrap */
	sg.flags = 0x14;
	CHECK_IN(&f, &sg, V_PASS);
	CHECK_EQ(get_flow(4).state, KCPX_FTCP_RESET);
	/* data after a RST still gets through: the peer is alive */
	check_ingress(4, 10, 0, 0xffffff00, 0xffffff00, 0xffffff0a);
}

/* Segments to our port from unknown flows go to the kernel; other ports are not looked at. */
static void test_ingress_others(void)
{
	struct seg sg = { .family = 4, .seq = 1, .payload = 100 };
	struct frame f;

	CHECK_EQ(set_flow(4, 1, 1, KCPX_FTCP_EST), 0);
	sg.sport = RPORT + 1;
	CHECK_IN(&f, &sg, V_PASS);
	CHECK_MEM(out, f.b, f.len);
	CHECK_EQ(d.rx_noflow, 1);
	CHECK_EQ(counted(), 1);
	sg.sport = 0;
	sg.src = "10.9.0.3";
	tcp_in(&f, &sg);
	CHECK_EQ(run_xdp(&f), 0);
	CHECK_EQ(d.rx_noflow, 1);
	sg.src = NULL;
	sg.dport = LPORT + 1;
	CHECK_IN(&f, &sg, V_PASS);
	CHECK_MEM(out, f.b, f.len);
	CHECK_EQ(counted(), 0);
	/* UDP to our port (the backend's own datagrams if UDP gets through) */
	{
		struct frame_spec s = { .family = 4,
					.src = PEER4,
					.dst = ME4,
					.sport = RPORT,
					.dport = LPORT,
					.payload = 100 };

		frame_build(&f, &s);
		CHECK_EQ(run_xdp(&f), 0);
		CHECK_EQ(verdict, V_PASS);
		CHECK_MEM(out, f.b, f.len);
		CHECK_EQ(counted(), 0);
	}
	CHECK_EQ(get_flow(4).rcv_nxt, 1);
}

static void test_ingress_truncated(void)
{
	struct seg sg = { .family = 4, .seq = 1, .payload = 100 };
	struct frame f;

	CHECK_EQ(set_flow(4, 1, 1, KCPX_FTCP_EST), 0);
	/* IP length beyond the frame */
	tcp_in(&f, &sg);
	fr_put16(f.b + f.l3 + 2, (uint16_t)(f.len - 14 + 1));
	CHECK_EQ(run_xdp(&f), 0);
	CHECK_EQ(verdict, V_DROP);
	CHECK_EQ(d.rx_trunc, 1);
	/* frame cut inside the payload */
	tcp_in(&f, &sg);
	f.len -= 10;
	CHECK_EQ(run_xdp(&f), 0);
	CHECK_EQ(verdict, V_DROP);
	CHECK_EQ(d.rx_trunc, 1);
	/* data offset below 5 */
	tcp_in(&f, &sg);
	f.b[f.l4 + 12] = 4 << 4;
	CHECK_EQ(run_xdp(&f), 0);
	CHECK_EQ(verdict, V_DROP);
	CHECK_EQ(d.rx_trunc, 1);
	/* data offset past the IP payload */
	sg.payload = 10;
	tcp_in(&f, &sg);
	f.b[f.l4 + 12] = 15 << 4;
	CHECK_EQ(run_xdp(&f), 0);
	CHECK_EQ(verdict, V_DROP);
	CHECK_EQ(d.rx_trunc, 1);
	/* IPv6 payload length beyond the frame */
	CHECK_EQ(set_flow(6, 1, 1, KCPX_FTCP_EST), 0);
	sg.family = 6;
	tcp_in(&f, &sg);
	fr_put16(f.b + f.l3 + 4, 200);
	CHECK_EQ(run_xdp(&f), 0);
	CHECK_EQ(verdict, V_DROP);
	CHECK_EQ(d.rx_trunc, 1);
	/* TCP header cut: not even the ports are there, so not ours to judge */
	sg.family = 4;
	tcp_in(&f, &sg);
	f.len = f.l4 + 19;
	CHECK_EQ(run_xdp(&f), 0);
	CHECK_EQ(verdict, V_PASS);
	CHECK_EQ(counted(), 0);
	CHECK_EQ(get_flow(4).rcv_nxt, 1);
	CHECK_EQ(get_flow(6).rcv_nxt, 1);
}

static void test_ingress_unsupported(void)
{
	struct seg sg = { .family = 4, .seq = 1, .payload = 100 };
	struct frame f;

	CHECK_EQ(set_flow(4, 1, 1, KCPX_FTCP_EST), 0);
	/* a fragment */
	tcp_in(&f, &sg);
	f.b[f.l3 + 6] = 0x20;
	f.b[f.l3 + 10] = f.b[f.l3 + 11] = 0;
	fr_put16(f.b + f.l3 + 10, fr_csum_fold(fr_csum_add(0, f.b + f.l3, 20)));
	CHECK_EQ(run_xdp(&f), 0);
	CHECK_EQ(verdict, V_PASS);
	CHECK_MEM(out, f.b, f.len);
	CHECK_EQ(d.rx_unsup, 1);
	CHECK_EQ(counted(), 1);
}

/* A bad TCP checksum becomes a bad UDP checksum: the kernel's UDP check drops it. */
static void test_ingress_bad_csum(void)
{
	struct seg sg = { .family = 4, .seq = 1, .payload = 100 };
	struct frame f;

	CHECK_EQ(set_flow(4, 1, 1, KCPX_FTCP_EST), 0);
	tcp_in(&f, &sg);
	f.b[f.l4 + 20 + 50] ^= 0x40;
	CHECK_EQ(run_xdp(&f), 0);
	CHECK_EQ(verdict, V_PASS);
	CHECK_EQ(d.rx_segs, 1);
	CHECK(!l4_csum_ok(out, 14, 34, 108, 4, 17));
	sg.family = 6;
	CHECK_EQ(set_flow(6, 1, 1, KCPX_FTCP_EST), 0);
	tcp_in(&f, &sg);
	f.b[f.l4 + 17] ^= 0x01;
	CHECK_EQ(run_xdp(&f), 0);
	CHECK(!l4_csum_ok(out, 14, 54, 108, 6, 17));
}

/* the clock the programs stamp with (bpf_ktime_get_coarse_ns) */
static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#define SEC_NS 1000000000ull

/*
 * The once-a-second expiry (core/ftcpflow.h) against stamps the programs wrote: the daemon
 * reads its clock, then looks at its flows, and a segment translated in between stamps the
 * flow later than that clock. Such a flow is busy, not idle: an unsigned now - rx_ns made
 * it 584 years idle, and the server closed a kcptun client's flow under load.
 */
static void test_expiry(void)
{
	struct kcpx_ftcp_flow fl;
	struct frame f;
	uint64_t now;

	for (int family = 4; family <= 6; family += 2) {
		CHECK_EQ(set_flow(family, 1000, 5000, KCPX_FTCP_EST), 0);
		now = mono_ns();
		/* a segment in and a datagram out after the clock was read */
		tcp_in(&f,
		       &(struct seg){ .family = family, .seq = 5000, .ack = 1000, .payload = 64 });
		CHECK_EQ(run_xdp(&f), 0);
		CHECK_EQ(d.rx_segs, 1);
		udp_out(&f, family, 64);
		CHECK_EQ(run_tc(&f), 0);
		CHECK_EQ(d.tx_segs, 1);
		fl = get_flow(family);
		CHECK(fl.rx_ns >= now);
		CHECK(fl.tx_ns >= now);
		CHECK_EQ(kcpx_ftcp_age(now, fl.rx_ns), 0);
		CHECK_EQ(kcpx_ftcp_judge(&fl, now, now - 600 * SEC_NS, true), KCPX_FTCP_KEEP);
		CHECK_EQ(kcpx_ftcp_judge(&fl, now, now - 600 * SEC_NS, false), KCPX_FTCP_KEEP);
		CHECK_EQ(kcpx_ftcp_judge(&fl, now, now, false), KCPX_FTCP_KEEP);

		/* the same flow, judged long after: idle (server), silent while sending
		 * (client) */
		now = fl.rx_ns + (KCPX_FTCP_IDLE_S + 1) * SEC_NS;
		CHECK_EQ(kcpx_ftcp_judge(&fl, now, fl.rx_ns, true), KCPX_FTCP_GONE_IDLE);
		CHECK_EQ(kcpx_ftcp_judge(&fl, fl.rx_ns + KCPX_FTCP_IDLE_S * SEC_NS, fl.rx_ns, true),
			 KCPX_FTCP_KEEP);
		/* client: not sending lately: nothing to judge silence by */
		CHECK_EQ(kcpx_ftcp_judge(&fl, now, fl.rx_ns, false), KCPX_FTCP_KEEP);
		fl.tx_ns = now - SEC_NS;
		now = fl.rx_ns + (KCPX_FTCP_SILENT_S + 1) * SEC_NS;
		fl.tx_ns = now - SEC_NS;
		CHECK_EQ(kcpx_ftcp_judge(&fl, now, fl.rx_ns - SEC_NS, false),
			 KCPX_FTCP_GONE_SILENT);
		/* ... unless the flow itself is younger than the silence span */
		CHECK_EQ(kcpx_ftcp_judge(&fl, now, now - SEC_NS, false), KCPX_FTCP_KEEP);

		/* an in-window RST through the program: gone, whatever the times */
		tcp_in(&f, &(struct seg){ .family = family, .seq = 5064, .flags = 0x04 });
		CHECK_EQ(run_xdp(&f), 0);
		CHECK_EQ(d.rx_rst, 1);
		fl = get_flow(family);
		CHECK_EQ(kcpx_ftcp_judge(&fl, mono_ns(), mono_ns(), true), KCPX_FTCP_GONE_RESET);
		CHECK_EQ(kcpx_ftcp_judge(&fl, mono_ns(), mono_ns(), false), KCPX_FTCP_GONE_RESET);
		/* a new SYN on the 4-tuple */
		CHECK_EQ(set_flow(family, 1000, 5000, KCPX_FTCP_EST), 0);
		tcp_in(&f, &(struct seg){ .family = family, .seq = 77, .flags = 0x02 });
		CHECK_EQ(run_xdp(&f), 0);
		CHECK_EQ(d.rx_syn, 1);
		fl = get_flow(family);
		CHECK_EQ(kcpx_ftcp_judge(&fl, mono_ns(), mono_ns(), true), KCPX_FTCP_GONE_SYN);
		del_flow(family);
	}
}

/* Every payload length out through TC and back in through XDP (as the peer's would): the
 * datagram that comes out is the one that went in, bit for bit but the UDP checksum, which
 * is whole and right (the sender's socket leaves a partial one to the NIC). */
static void test_round_trip(void)
{
	for (int family = 4; family <= 6; family += 2) {
		size_t l4 = 14 + (family == 4 ? 20 : 40);

		for (size_t n = 1; n <= KCPX_FTCP_PAYLOAD_MAX; n++) {
			struct frame f, back;
			struct kcpx_ftcp_key k;
			struct kcpx_ftcp_flow fl = { .snd_nxt = (uint32_t)(0xfffff000u + n * 3),
						     .rcv_nxt = 5,
						     .window = 65535,
						     .state = KCPX_FTCP_EST };

			udp_out(&f, family, n);
			for (size_t i = 0; i < n; i++)
				f.b[f.l4 + 8 + i] = (uint8_t)(n * 31 + i * 7);
			CHECK_EQ(set_flow(family, fl.snd_nxt, 5, KCPX_FTCP_EST), 0);
			CHECK_EQ(run_tc(&f), 0);
			CHECK_EQ(d.tx_segs, 1);
			CHECK(l4_csum_ok(out, 14, l4, 20 + n, family, 6));
			/* the peer sees it from our address: make that the flow there */
			memcpy(back.b, out, out_len);
			back.len = out_len;
			memset(&k, 0, sizeof(k));
			if (family == 4) {
				k.raddr[10] = k.raddr[11] = 0xff;
				memcpy(&k.raddr[12], back.b + 14 + 12, 4);
			} else {
				memcpy(k.raddr, back.b + 14 + 8, 16);
			}
			k.rport = htons(LPORT);
			k.lport = htons(RPORT);
			fl.rcv_nxt = fl.snd_nxt;
			CHECK_EQ(kcpx_ftcp_bpf_flow_set(b, &k, &fl), 0);
			CHECK_EQ(kcpx_ftcp_bpf_port_add(b, RPORT), 0);
			CHECK_EQ(run(tci_mode ? KCPX_FTCP_FD_PROG_TCI : KCPX_FTCP_FD_PROG_XDP,
				     back.b, back.len),
				 0);
			CHECK_EQ(kcpx_ftcp_bpf_port_del(b, RPORT), 0);
			CHECK_EQ(kcpx_ftcp_bpf_flow_del(b, &k), 0);
			CHECK_EQ(verdict, V_PASS);
			CHECK_EQ(d.rx_segs, 1);
			CHECK_EQ(out_len, f.len);
			CHECK_MEM(out, f.b, f.l4 + 6);
			CHECK_MEM(out + f.l4 + 8, f.b + f.l4 + 8, n);
			CHECK(l4_csum_ok(out, 14, l4, 8 + n, family, 17));
		}
	}
}

/* The TCP checksum of a frame built by tcp_in (and maybe mutated since) is right. */
static int tcp_csum_ok(const struct frame *f, int family, size_t l4len)
{
	return l4_csum_ok(f->b, f->l3, f->l4, l4len, family, 6);
}

/*
 * Mutated segments of a known flow, through whichever ingress program: nothing but a
 * pass or a drop; whatever comes out changed is a well-formed UDP datagram whose checksum
 * is right exactly when the segment's TCP checksum was. The rule decides on
 * unauthenticated bytes: this is its fuzz test, run on the live programs.
 */
static void test_ingress_mutations(void)
{
	uint32_t rng = 0x5eed1234u + (uint32_t)tci_mode;

	for (int it = 0; it < 20000; it++) {
		static const uint16_t flags[] = { 0x18, 0x10, 0x18, 0x04, 0x02, 0x11, 0x18 };
		int family = unit_xorshift32(&rng) & 1 ? 4 : 6;
		struct seg sg = { .family = family,
				  .seq = unit_xorshift32(&rng),
				  .ack = unit_xorshift32(&rng),
				  .flags = flags[unit_xorshift32(&rng) % 7],
				  .opt_words = (int)(unit_xorshift32(&rng) % 4),
				  .payload = unit_xorshift32(&rng) % 300 };
		size_t l3len = family == 4 ? 20 : 40, l4len, hl;
		int flips = (int)(unit_xorshift32(&rng) % 4), ok;
		struct frame f;

		CHECK_EQ(set_flow(family, 1, sg.seq - unit_xorshift32(&rng) % 3000, KCPX_FTCP_EST),
			 0);
		tcp_in(&f, &sg);
		for (int k = 0; k < flips; k++)
			f.b[14 + unit_xorshift32(&rng) % (l3len + 40)] ^=
				(uint8_t)(1 + unit_xorshift32(&rng) % 255);
		/* cut (BPF_PROG_RUN refuses an skb without a whole IP header: TCX keeps it) */
		if (unit_xorshift32(&rng) % 8 == 0) {
			size_t keep = tci_mode ? 14 + l3len : 14;

			f.len = keep + unit_xorshift32(&rng) % (f.len - keep);
		}
		hl = (size_t)(f.b[f.l4 + 12] >> 4) * 4;
		/* the segment by its IP length (what the frame has beyond it is padding) */
		if (family == 4)
			l4len = (size_t)(f.b[f.l3 + 2] << 8 | f.b[f.l3 + 3]);
		else
			l4len = (size_t)(f.b[f.l3 + 4] << 8 | f.b[f.l3 + 5]) + 20;
		l4len = l4len >= 20 ? l4len - 20 : 0;
		ok = f.l4 + l4len <= f.len && l4len >= 20 && tcp_csum_ok(&f, family, l4len);
		CHECK_EQ(run_xdp(&f), 0);
		CHECK(verdict == V_PASS || verdict == V_DROP);
		if (verdict == V_DROP || (out_len == f.len && !memcmp(out, f.b, f.len)))
			continue;
		/* changed: a datagram */
		CHECK_EQ(d.rx_segs, 1);
		CHECK_EQ(out_len, f.len - (hl - 8));
		if (family == 4) {
			CHECK_EQ(out[14 + 9], 17);
			CHECK(frame_ip4_csum_ok(out + 14));
			CHECK_EQ(out[14 + 2] << 8 | out[14 + 3], 20 + l4len - (hl - 8));
		} else {
			CHECK_EQ(out[14 + 6], 17);
			CHECK_EQ(out[14 + 4] << 8 | out[14 + 5], l4len - (hl - 8));
		}
		CHECK_EQ(out[14 + l3len + 4] << 8 | out[14 + l3len + 5], l4len - (hl - 8));
		CHECK_EQ(l4_csum_ok(out, 14, 14 + l3len, l4len - (hl - 8), family, 17), ok);
	}
}

/* Mutated datagrams from our port through TC egress: a pass or a drop; what comes out
 * changed is a TCP segment with whole, right checksums. */
static void test_egress_mutations(void)
{
	uint32_t rng = 0xfeedbeefu;

	for (int it = 0; it < 20000; it++) {
		int family = unit_xorshift32(&rng) & 1 ? 4 : 6;
		size_t l3len = family == 4 ? 20 : 40, n = 1 + unit_xorshift32(&rng) % 1600;
		int flips = (int)(unit_xorshift32(&rng) % 4);
		struct frame f;

		CHECK_EQ(set_flow(family, unit_xorshift32(&rng), unit_xorshift32(&rng),
				  KCPX_FTCP_EST),
			 0);
		udp_out(&f, family, n);
		for (int k = 0; k < flips; k++)
			f.b[14 + unit_xorshift32(&rng) % (l3len + 8)] ^=
				(uint8_t)(1 + unit_xorshift32(&rng) % 255);
		/* cut, but keep the IP header: BPF_PROG_RUN refuses an skb without one */
		if (unit_xorshift32(&rng) % 8 == 0)
			f.len = 14 + l3len + unit_xorshift32(&rng) % (f.len - 14 - l3len);
		CHECK_EQ(run_tc(&f), 0);
		CHECK(verdict == V_TCX_NEXT || verdict == V_TCX_DROP);
		if (verdict == V_TCX_DROP || (out_len == f.len && !memcmp(out, f.b, f.len)))
			continue;
		CHECK_EQ(d.tx_segs, 1);
		CHECK_EQ(out_len, f.len + 12);
		if (family == 4)
			CHECK(frame_ip4_csum_ok(out + 14));
		CHECK(l4_csum_ok(out, 14, 14 + l3len, out_len - 14 - l3len, family, 6));
	}
}

int main(void)
{
	int err;

	if (geteuid() != 0) {
		fprintf(stderr, "SKIP: needs root (BPF)\n");
		return 4;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		perror("unshare");
		return 1;
	}
	err = kcpx_ftcp_bpf_open(&b);
	if (!err)
		err = kcpx_ftcp_bpf_port_add(b, LPORT);
	if (err) {
		fprintf(stderr, "loading the --tcp BPF programs: %s\n", strerror(-err));
		return 1;
	}
	RUN(test_egress_v4);
	RUN(test_egress_v6);
	RUN(test_egress_seq_advances);
	RUN(test_egress_no_flow);
	RUN(test_egress_others_untouched);
	RUN(test_egress_bad);
	RUN(test_egress_mutations);
	for (tci_mode = 0; tci_mode < 2; tci_mode++) {
		printf("ingress through %s:\n", tci_mode ? "TCX" : "XDP");
		RUN(test_ingress_v4);
		RUN(test_ingress_v6);
		RUN(test_ingress_ack_tracking);
		RUN(test_ingress_control);
		RUN(test_ingress_rst);
		RUN(test_ingress_others);
		RUN(test_ingress_truncated);
		RUN(test_ingress_unsupported);
		RUN(test_ingress_bad_csum);
		RUN(test_round_trip);
		RUN(test_expiry);
		RUN(test_ingress_mutations);
	}
	kcpx_ftcp_bpf_close(b);
	UNIT_MAIN_END();
}
