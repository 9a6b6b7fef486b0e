// SPDX-License-Identifier: MIT
/*
 * The AF_XDP backend and the loader end to end.
 *
 * Without arguments (make check): in a private network and mount namespace (its own
 * loopback and bpffs), attach kcpx to lo (no native XDP there: the skb fallback), echo
 * UDP datagrams through the AF_XDP backend over IPv4 and IPv6, check payloads,
 * addresses, checksums (the kernel drops bad ones), counters and pins, then
 * kcpx_xdp_down and check nothing is left.
 *
 * With arguments it is the tool the namespace selftests drive:
 *   test_xsk attach IFACE --port P [--role server|client --peer ADDR] [--mode M]
 *                         [--dscp N] [--hold]
 *   test_xsk down IFACE
 *   test_xsk echo IFACE --bind ADDR:PORT [--udp] [--mode M] [--secs S]
 *   test_xsk blast ADDR:PORT [--secs S] [--size N] [--window W]
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <net/if.h>
#include <unistd.h>
#include <linux/if_link.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "unit.h"
#include "io/addr.h"
#include "io/clock.h"
#include "io/udp.h"
#include "io/xdp.h"
#include "io/xsk.h"

#define PORT 4100
#define NPKT 200

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* ---- the self-test on lo ---- */

static struct kcpx_xdp *lo_xdp;

static uint64_t stat_field(const char *map, const char *field);

struct stat_find {
	const char *map, *field;
	uint64_t val;
	int found;
};

static void find_cb(void *ctx, const char *map, const char *field, uint64_t val)
{
	struct stat_find *f = ctx;

	if (!strcmp(map, f->map) && !strcmp(field, f->field)) {
		f->val = val;
		f->found++;
	}
}

static uint64_t stat_field(const char *map, const char *field)
{
	struct stat_find f = { map, field, 0, 0 };

	if (kcpx_xdp_stats("lo", find_cb, &f) || f.found != 1)
		return UINT64_MAX;
	return f.val;
}

static void test_attach_lo(void)
{
	struct kcpx_xdp_config c = {
		.ifname = "lo", .role = KCPX_BPF_ROLE_SERVER, .port = PORT, .dscp = 10
	};
	struct kcpx_xdp *again = NULL;
	struct stat st;

	CHECK_EQ(kcpx_xdp_open(&lo_xdp, &c), 0);
	/* lo has no driver XDP: the fallback must have happened, and said so */
	CHECK(kcpx_xdp_mode_name(lo_xdp) != NULL);
	CHECK(!strcmp(kcpx_xdp_mode_name(lo_xdp), "skb"));
	CHECK_EQ(stat("/sys/fs/bpf/kcpx/lo/kcpx_xdp_stats", &st), 0);
	CHECK_EQ(stat("/sys/fs/bpf/kcpx/lo/kcpx_snmp", &st), 0);
	CHECK_EQ(stat("/sys/fs/bpf/kcpx/lo/kcpx_info", &st), 0);
	/* a second attach while this (live) process owns lo is refused */
	CHECK_EQ(kcpx_xdp_open(&again, &c), -EBUSY);
	CHECK(again == NULL);
	/* counters are readable by name from the pins */
	CHECK(stat_field("kcpx_xdp_stats", "steered") != UINT64_MAX);
	CHECK(stat_field("kcpx_snmp", "BytesSent") != UINT64_MAX);
	CHECK_EQ(stat_field("kcpx_xdp_stats", "pad"), UINT64_MAX);
}

/* Echo NPKT datagrams from a client socket through the backend d and back. */
static void echo_body(struct kcpx_dgram *d, int family, const struct kcpx_addr *srv)
{
	struct kcpx_addr cli = { 0 };
	static uint8_t bufs[64][KCPX_PKT_MAX];
	struct kcpx_pkt pkts[64];
	uint8_t msg[KCPX_PKT_MAX], reply[KCPX_PKT_MAX + 1];
	struct kcpx_xsk_stats xs;
	uint64_t steered0 = stat_field("kcpx_xdp_stats", "steered");
	int cfd, got = 0, replies = 0;

	CHECK(!strcmp(d->name, "af_xdp"));
	CHECK_EQ(kcpx_addr_port(&d->local), PORT);
	cfd = socket(family, SOCK_DGRAM, 0);
	CHECK(cfd >= 0);
	CHECK_EQ(connect(cfd, &srv->sa, srv->len), 0);
	cli.len = sizeof(cli.ss);
	getsockname(cfd, &cli.sa, &cli.len);
	for (int i = 0; i < 64; i++)
		pkts[i].buf = bufs[i];

	for (int i = 0; i < NPKT; i++) {
		size_t len = 24 + (size_t)(i * 37) % (KCPX_PKT_MAX - 24 + 1);

		for (size_t k = 0; k < len; k++)
			msg[k] = (uint8_t)(i + k * 3);
		CHECK_EQ(send(cfd, msg, len, 0), (ssize_t)len);
		/* the datagram shows up in the backend, from the client's address */
		got = 0;
		for (int t = 0; t < 1000 && !got; t++) {
			struct pollfd p = { .fd = d->fd, .events = POLLIN };

			poll(&p, 1, 10);
			got = d->ops->recv(d, pkts, 64);
			CHECK(got >= 0);
		}
		CHECK_EQ(got, 1);
		CHECK_EQ(pkts[0].len, len);
		CHECK_MEM(pkts[0].buf, msg, len);
		CHECK(kcpx_addr_equal(&pkts[0].addr, &cli));
		/* and back, changed, so an echo by the kernel could not pass */
		pkts[0].buf[0] ^= 0xff;
		CHECK_EQ(d->ops->send(d, pkts, 1), 1);
		CHECK_EQ(d->ops->flush(d), 0);
		struct pollfd p = { .fd = cfd, .events = POLLIN };
		CHECK_EQ(poll(&p, 1, 10000), 1);
		CHECK_EQ(recv(cfd, reply, sizeof(reply), 0), (ssize_t)len);
		msg[0] ^= 0xff;
		CHECK_MEM(reply, msg, len);
		replies++;
	}
	CHECK_EQ(replies, NPKT);
	kcpx_xsk_get_stats(d, &xs);
	CHECK_EQ(xs.rx_packets, NPKT);
	CHECK_EQ(xs.tx_packets, NPKT);
	CHECK_EQ(xs.rx_kernel, 0);
	CHECK_EQ(xs.tx_kernel, 0);
	CHECK_EQ(xs.rx_bad, 0);
	CHECK_EQ(stat_field("kcpx_xdp_stats", "steered") - steered0, NPKT);
	/* the pinned map shows what the backend published */
	CHECK_EQ(stat_field("kcpx_xsk_stats", "tx_packets"), NPKT);

	/* a burst larger than one kick moves (copy mode: 32 per kick) goes out whole */
	for (int i = 0; i < 64; i++) {
		pkts[i].addr = cli;
		pkts[i].len = 100;
		memset(pkts[i].buf, i, 100);
	}
	CHECK_EQ(d->ops->send(d, pkts, 64), 64);
	CHECK_EQ(d->ops->send(d, pkts, 64), 64);
	CHECK_EQ(d->ops->flush(d), 0);
	for (int i = 0; i < 128; i++) {
		struct pollfd p = { .fd = cfd, .events = POLLIN };

		CHECK_EQ(poll(&p, 1, 10000), 1);
		CHECK_EQ(recv(cfd, reply, sizeof(reply), 0), 100);
		CHECK_EQ(reply[0], i % 64);
	}
	close(cfd);
}

static void echo_round(int family, const char *srv_ip)
{
	struct kcpx_addr bind = { 0 };
	struct kcpx_xsk_config xc = { .xdp = lo_xdp, .ifname = "lo", .bind = &bind, .dscp = -1 };
	struct kcpx_dgram *d = NULL;
	int before = unit_failed;
	char spec[64];

	snprintf(spec, sizeof(spec), family == AF_INET ? "%s:%d" : "[%s]:%d", srv_ip, PORT);
	CHECK_EQ(kcpx_addr_parse(spec, &bind), 0);
	CHECK_EQ(kcpx_xsk_open(&d, &xc), 0);
	echo_body(d, family, &bind);
	d->ops->close(d);
	CHECK_EQ(unit_failed, before);
}

static void test_echo_ipv4(void)
{
	echo_round(AF_INET, "127.0.0.1");
}

static void test_echo_ipv6(void)
{
	echo_round(AF_INET6, "::1");
}

/* Other traffic on the interface, also to other ports, is left to the kernel. */
static void test_non_tunnel_passes(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(PORT + 1),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	uint64_t other0 = stat_field("kcpx_xdp_stats", "pass_other");
	int s = socket(AF_INET, SOCK_DGRAM, 0), c = socket(AF_INET, SOCK_DGRAM, 0);
	char buf[16];

	CHECK(s >= 0 && c >= 0);
	CHECK_EQ(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	CHECK_EQ(sendto(c, "hello", 5, 0, (struct sockaddr *)&a, sizeof(a)), 5);
	struct pollfd p = { .fd = s, .events = POLLIN };
	CHECK_EQ(poll(&p, 1, 10000), 1);
	CHECK_EQ(recv(s, buf, sizeof(buf), 0), 5);
	CHECK(stat_field("kcpx_xdp_stats", "pass_other") > other0);
	close(s);
	close(c);
}

/* One datagram from fd (unconnected) to to:PORT through d, answered from `answer` (host
 * order; 0: not named, the backend's choice); *from: the answer's source address (host
 * order), 0 when none came. */
static void answer_round(struct kcpx_dgram *d, int fd, uint32_t to, uint32_t answer, uint32_t *from)
{
	static uint8_t buf[KCPX_PKT_MAX];
	struct kcpx_pkt pkt = { .buf = buf };
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(PORT),
				 .sin_addr.s_addr = htonl(to) };
	socklen_t alen = sizeof(a);
	uint32_t answer_be = htonl(answer);
	int got = 0;

	*from = 0;
	CHECK_EQ(sendto(fd, "local-0123456789012345678", 25, 0, (struct sockaddr *)&a, alen), 25);
	for (int t = 0; t < 1000 && !got; t++) {
		struct pollfd p = { .fd = d->fd, .events = POLLIN };

		poll(&p, 1, 10);
		got = d->ops->recv(d, &pkt, 1);
	}
	CHECK_EQ(got, 1);
	/* recv says where it was sent to */
	CHECK_EQ(pkt.local.family, AF_INET);
	CHECK_EQ(memcmp(pkt.local.a, &a.sin_addr, 4), 0);
	pkt.local.family = answer ? AF_INET : 0;
	memcpy(pkt.local.a, &answer_be, 4);
	CHECK_EQ(d->ops->send(d, &pkt, 1), 1);
	CHECK_EQ(d->ops->flush(d), 0);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 10000) != 1)
		return;
	CHECK_EQ(recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&a, &alen), 25);
	*from = ntohl(a.sin_addr.s_addr);
}

/*
 * A server bound to any address sends each datagram from the address the tunnel names
 * with it (kcpx_pkt.local: the endpoint's choice for the session, or the address the
 * datagram it answers went to), whatever came before from the peer's address: no state
 * per peer that a forged datagram could move. Unnamed: the route's source.
 */
static void answer_body(struct kcpx_dgram *d, int peer, int spoof)
{
	const uint32_t one = 0x7f000001, two = 0x7f000002, three = 0x7f000003;
	uint32_t from;

	/* a handshake opener to 127.0.0.2 answered from there */
	answer_round(d, peer, two, two, &from);
	CHECK_EQ(from, two);
	/* a forgery from the peer's address to 127.0.0.3, then an answer the tunnel sends
	 * from 127.0.0.2 (the session's address) still leaves from 127.0.0.2 */
	answer_round(d, spoof, three, three, &from);
	CHECK_EQ(from, three);
	answer_round(d, peer, three, two, &from);
	CHECK_EQ(from, two);
	answer_round(d, peer, two, two, &from);
	CHECK_EQ(from, two);
	/* nothing named: the route's source towards 127.0.0.1 */
	answer_round(d, peer, two, 0, &from);
	CHECK_EQ(from, one);
}

/* lo with route_localnet and accept_local val: on (AF_XDP sends IPv4) or off (the kernel
 * socket sends it, lo_v4_kernel in xsk.c) */
static int lo_local_sysctls(const char *val)
{
	for (int i = 0; i < 4; i++) {
		char path[96];
		FILE *f;

		snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/%s", i & 1 ? "lo" : "all",
			 i & 2 ? "accept_local" : "route_localnet");
		f = fopen(path, "w");
		if (!f || fputs(val, f) < 0 || fclose(f)) {
			perror(path);
			return -1;
		}
	}
	return 0;
}

static void answer_case(bool kernel)
{
	struct kcpx_addr any = { 0 };
	struct kcpx_xsk_config xc = { .xdp = lo_xdp, .ifname = "lo", .bind = &any, .dscp = -1 };
	struct sockaddr_in me = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct kcpx_dgram *d = NULL;
	int before = unit_failed;
	/* the forger: another port of the peer's address (a spoofed source, as XDP sees it) */
	int peer = socket(AF_INET, SOCK_DGRAM, 0), spoof = socket(AF_INET, SOCK_DGRAM, 0);

	CHECK(peer >= 0 && spoof >= 0);
	CHECK_EQ(bind(peer, (struct sockaddr *)&me, sizeof(me)), 0);
	CHECK_EQ(bind(spoof, (struct sockaddr *)&me, sizeof(me)), 0);
	CHECK_EQ(kcpx_addr_parse("0.0.0.0:4100", &any), 0);
	if (kernel)
		CHECK_EQ(lo_local_sysctls("0"), 0);
	CHECK_EQ(kcpx_xsk_open(&d, &xc), 0);
	if (d) {
		struct kcpx_xsk_stats xs;

		answer_body(d, peer, spoof);
		/* the path under test carried the answers */
		kcpx_xsk_get_stats(d, &xs);
		CHECK_EQ(xs.tx_kernel, kernel ? 5 : 0);
		d->ops->close(d);
	}
	if (kernel)
		CHECK_EQ(lo_local_sysctls("1"), 0);
	close(peer);
	close(spoof);
	CHECK_EQ(unit_failed, before);
}

static void test_answer_from_local(void)
{
	answer_case(false);
}

/* the same where the port's kernel socket sends (IP_PKTINFO names the source) */
static void test_answer_from_local_kernel(void)
{
	answer_case(true);
}

/*
 * The plain UDP backend of a server bound to any address: a client connected to
 * 127.0.0.2 (another of our addresses than the route's source towards it, 127.0.0.1)
 * gets the answer, which leaves from the address recv reported (IP_PKTINFO); its connected
 * socket drops one from 127.0.0.1. IPv4 on an AF_INET socket, and v4-mapped on a dual-
 * stack one.
 */
static void udp_answer_case(const char *bind_spec, uint16_t port)
{
	static uint8_t buf[KCPX_PKT_MAX];
	struct kcpx_addr any = { 0 };
	struct kcpx_udp_config uc = { .bind = &any, .dscp = -1 };
	struct sockaddr_in to = { .sin_family = AF_INET,
				  .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(0x7f000002) };
	struct kcpx_pkt pkt = { .buf = buf };
	struct kcpx_dgram *d = NULL;
	int cfd = socket(AF_INET, SOCK_DGRAM, 0), got = 0;
	char reply[64];

	CHECK(cfd >= 0);
	CHECK_EQ(kcpx_addr_parse(bind_spec, &any), 0);
	CHECK_EQ(kcpx_udp_open(&d, &uc), 0);
	if (!d)
		return;
	CHECK_EQ(connect(cfd, (struct sockaddr *)&to, sizeof(to)), 0);
	CHECK_EQ(send(cfd, "pktinfo", 7, 0), 7);
	for (int t = 0; t < 1000 && !got; t++) {
		struct pollfd p = { .fd = d->fd, .events = POLLIN };

		poll(&p, 1, 10);
		got = d->ops->recv(d, &pkt, 1);
	}
	CHECK_EQ(got, 1);
	CHECK_EQ(pkt.local.family, AF_INET);
	CHECK_EQ(memcmp(pkt.local.a, &to.sin_addr, 4), 0);
	CHECK_EQ(d->ops->send(d, &pkt, 1), 1);
	struct pollfd p = { .fd = cfd, .events = POLLIN };
	CHECK_EQ(poll(&p, 1, 5000), 1);
	CHECK_EQ(recv(cfd, reply, sizeof(reply), MSG_DONTWAIT), 7);
	d->ops->close(d);
	close(cfd);
}

static void test_udp_answer_from_local(void)
{
	udp_answer_case("0.0.0.0:4102", 4102);
	udp_answer_case("[::]:4103", 4103);
}

/* Without an AF_XDP socket the tunnel port is served by the kernel socket: no ICMP. */
static void test_down_leaves_nothing(void)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = 1, .attach_point = BPF_TC_EGRESS);
	LIBBPF_OPTS(bpf_tc_opts, o, .handle = 0x6b63, .priority = 0x6b63);
	struct stat st;

	/* the daemon "crashes": its handles go, the kernel keeps programs and pins */
	kcpx_xdp_close(lo_xdp, false);
	lo_xdp = NULL;
	CHECK_EQ(bpf_xdp_query(1, 0, &q), 0);
	CHECK(q.skb_prog_id != 0);
	CHECK_EQ(bpf_tc_query(&hook, &o), 0);
	CHECK(stat_field("kcpx_xdp_stats", "rx_packets") > 0);

	CHECK_EQ(kcpx_xdp_down("lo"), 0);
	memset(&q, 0, sizeof(q));
	q.sz = sizeof(q);
	CHECK_EQ(bpf_xdp_query(1, 0, &q), 0);
	CHECK_EQ(q.prog_id + q.skb_prog_id + q.drv_prog_id, 0);
	o.prog_id = 0;
	CHECK(bpf_tc_query(&hook, &o) < 0);
	CHECK(stat("/sys/fs/bpf/kcpx/lo", &st) < 0 && errno == ENOENT);
	CHECK(stat("/sys/fs/bpf/kcpx", &st) < 0 && errno == ENOENT);
	/* and again: nothing to do */
	CHECK_EQ(kcpx_xdp_down("lo"), -ENOENT);
}

/* A client: one AF_XDP core, a local port per session; each port gets its own datagrams,
 * whichever port's recv takes them off the ring. */
static void client_ports_body(struct kcpx_xdp *x, int srv)
{
	struct kcpx_addr server = { 0 };
	struct kcpx_xsk_config xc = { .xdp = x, .ifname = "lo", .dscp = -1 };
	struct kcpx_dgram *d1 = NULL, *d2 = NULL;
	static uint8_t bufs[8][KCPX_PKT_MAX];
	struct kcpx_pkt pkts[8];
	struct sockaddr_in to = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct kcpx_xsk_stats xs;
	uint8_t buf[64];
	__be16 key, next;
	int n, lports = 0;

	for (int i = 0; i < 8; i++)
		pkts[i].buf = bufs[i];
	struct kcpx_xsk *core = NULL;

	CHECK_EQ(kcpx_addr_parse("127.0.0.1:5000", &server), 0);
	CHECK_EQ(kcpx_xsk_new(&core, &xc), 0);
	n = kcpx_xsk_port(core, NULL, &server, &d1);
	if (!n)
		n = kcpx_xsk_port(core, NULL, &server, &d2);
	kcpx_xsk_put(core); /* the ports keep the sockets */
	CHECK_EQ(n, 0);
	CHECK(kcpx_addr_port(&d1->local) != kcpx_addr_port(&d2->local));
	/* both ports registered for steering */
	for (int r = bpf_map_get_next_key(kcpx_xdp_fd(x, KCPX_FD_LPORTS), NULL, &key); !r;
	     r = bpf_map_get_next_key(kcpx_xdp_fd(x, KCPX_FD_LPORTS), &key, &next), key = next)
		lports++;
	CHECK_EQ(lports, 2);

	/* the server writes to port 2, then port 1; port 1 reads first */
	to.sin_port = htons(kcpx_addr_port(&d2->local));
	CHECK_EQ(sendto(srv, "for-two-0123456789012345", 24, 0, (struct sockaddr *)&to, sizeof(to)),
		 24);
	to.sin_port = htons(kcpx_addr_port(&d1->local));
	CHECK_EQ(sendto(srv, "for-one-0123456789012345", 24, 0, (struct sockaddr *)&to, sizeof(to)),
		 24);
	n = 0;
	for (int t = 0; t < 1000 && !n; t++) {
		struct pollfd p = { .fd = d1->fd, .events = POLLIN };

		poll(&p, 1, 10);
		n = d1->ops->recv(d1, pkts, 8);
	}
	CHECK_EQ(n, 1);
	CHECK_MEM(pkts[0].buf, "for-one-", 8);
	CHECK(kcpx_addr_equal(&pkts[0].addr, &server));
	/* port 2's datagram waits for it, and its fd says so */
	struct pollfd p2 = { .fd = d2->fd, .events = POLLIN };
	CHECK_EQ(poll(&p2, 1, 10000), 1);
	CHECK_EQ(d2->ops->recv(d2, pkts, 8), 1);
	CHECK_MEM(pkts[0].buf, "for-two-", 8);
	CHECK_EQ(d2->ops->recv(d2, pkts, 8), 0);
	kcpx_xsk_get_stats(d1, &xs);
	CHECK_EQ(xs.rx_handed, 1);
	CHECK_EQ(xs.rx_port_full, 0);

	/* a third party writes to port 1: XDP steers only the server's datagrams, so this
	 * one goes to the port's kernel socket, which is connected to the server and so has
	 * no place for it. The kernel answers port unreachable (never rate-limited on lo):
	 * the stranger's socket sees ECONNREFUSED, and port 1 reads nothing. An unconnected
	 * socket would take it in and hand it on as the server's peer would. */
	int stranger = socket(AF_INET, SOCK_DGRAM, 0);

	CHECK(stranger >= 0);
	to.sin_port = htons(kcpx_addr_port(&d1->local));
	CHECK_EQ(connect(stranger, (struct sockaddr *)&to, sizeof(to)), 0);
	CHECK_EQ(send(stranger, "stranger-0123456789012345", 24, 0), 24);
	struct pollfd pe = { .fd = stranger, .events = POLLIN };
	CHECK_EQ(poll(&pe, 1, 10000), 1);
	CHECK(recv(stranger, buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno == ECONNREFUSED);
	close(stranger);
	CHECK_EQ(d1->ops->recv(d1, pkts, 8), 0);
	kcpx_xsk_get_stats(d1, &xs);
	CHECK_EQ(xs.rx_kernel, 0);

	/* each port sends from its own port */
	for (int k = 0; k < 2; k++) {
		struct kcpx_dgram *d = k ? d2 : d1;
		struct sockaddr_in from;
		socklen_t flen = sizeof(from);

		pkts[0].addr = server;
		pkts[0].len = 30;
		memset(pkts[0].buf, 'a' + k, 30);
		CHECK_EQ(d->ops->send(d, pkts, 1), 1);
		d->ops->flush(d);
		struct pollfd ps = { .fd = srv, .events = POLLIN };
		CHECK_EQ(poll(&ps, 1, 10000), 1);
		CHECK_EQ(recvfrom(srv, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen), 30);
		CHECK_EQ(buf[0], 'a' + k);
		CHECK_EQ(ntohs(from.sin_port), kcpx_addr_port(&d->local));
	}
	d1->ops->close(d1);
	d1 = NULL;
	/* port 2 still works on the shared sockets */
	to.sin_port = htons(kcpx_addr_port(&d2->local));
	CHECK_EQ(sendto(srv, "again-for-two-0123456789", 24, 0, (struct sockaddr *)&to, sizeof(to)),
		 24);
	n = 0;
	for (int t = 0; t < 1000 && !n; t++) {
		poll(&p2, 1, 10);
		n = d2->ops->recv(d2, pkts, 8);
	}
	CHECK_EQ(n, 1);
	CHECK_MEM(pkts[0].buf, "again-", 6);
	d2->ops->close(d2);
	d2 = NULL;
	CHECK(bpf_map_get_next_key(kcpx_xdp_fd(x, KCPX_FD_LPORTS), NULL, &key) < 0);
	if (d1)
		d1->ops->close(d1);
}

static void test_client_ports(void)
{
	struct kcpx_addr server;
	struct kcpx_xdp_config c = { .ifname = "lo",
				     .role = KCPX_BPF_ROLE_CLIENT,
				     .port = 5000,
				     .dscp = -1,
				     .min_payload = 24 };
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(5000),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct kcpx_xdp *x = NULL;
	int before = unit_failed, srv;

	CHECK_EQ(kcpx_addr_parse("127.0.0.1:5000", &server), 0);
	c.peer = server;
	CHECK_EQ(kcpx_xdp_open(&x, &c), 0);
	srv = socket(AF_INET, SOCK_DGRAM, 0);
	CHECK(srv >= 0);
	CHECK_EQ(bind(srv, (struct sockaddr *)&a, sizeof(a)), 0);
	client_ports_body(x, srv);
	close(srv);
	kcpx_xdp_close(x, true);
	CHECK_EQ(unit_failed, before);
}

static int lo_up(void)
{
	struct ifreq ifr = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM, 0), err = 0;

	if (fd < 0)
		return -errno;
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0 ||
	    (ifr.ifr_flags |= IFF_UP, ioctl(fd, SIOCSIFFLAGS, &ifr) < 0))
		err = -errno;
	close(fd);
	return err;
}

static int self_test(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "SKIP: needs root\n");
		return 4;
	}
	/* our own loopback, and our own bpffs so the pins of "lo" are nobody else's */
	if (unshare(CLONE_NEWNET | CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("bpf", "/sys/fs/bpf", "bpf", 0, NULL) < 0 || lo_up() < 0) {
		perror("namespace setup");
		return 1;
	}
	/* Frames we transmit on lo carry no route (kernel loopback traffic does), so IPv4
	 * would call 127.0.0.1 -> 127.0.0.1 martian: allow it, in this namespace only. */
	if (lo_local_sysctls("1") < 0)
		return 1;
	RUN(test_attach_lo);
	if (!lo_xdp) {
		fprintf(stderr, "attach failed: the rest cannot run\n");
		return 1;
	}
	RUN(test_echo_ipv4);
	RUN(test_echo_ipv6);
	RUN(test_non_tunnel_passes);
	RUN(test_answer_from_local);
	RUN(test_answer_from_local_kernel);
	RUN(test_udp_answer_from_local);
	RUN(test_down_leaves_nothing);
	RUN(test_client_ports);
	UNIT_MAIN_END();
}

/* ---- the tool ---- */

static const struct option long_opts[] = {
	{ "port", required_argument, NULL, 'p' },   { "role", required_argument, NULL, 'r' },
	{ "peer", required_argument, NULL, 'P' },   { "mode", required_argument, NULL, 'm' },
	{ "dscp", required_argument, NULL, 'd' },   { "hold", no_argument, NULL, 'H' },
	{ "bind", required_argument, NULL, 'b' },   { "udp", no_argument, NULL, 'u' },
	{ "secs", required_argument, NULL, 's' },   { "size", required_argument, NULL, 'S' },
	{ "window", required_argument, NULL, 'w' }, { NULL, 0, NULL, 0 },
};

struct opts {
	int port, dscp, size, window;
	double secs;
	enum kcpx_bpf_role role;
	enum kcpx_xdp_mode mode;
	bool hold, udp, have_peer, have_bind;
	struct kcpx_addr peer, bind;
};

static int parse_opts(int argc, char **argv, struct opts *o)
{
	int c;

	*o = (struct opts){
		.dscp = -1, .secs = 5, .size = 64, .window = 256, .role = KCPX_BPF_ROLE_SERVER
	};
	optind = 3; /* argv[1] command, argv[2] its operand */
	while ((c = getopt_long(argc, argv, "+", long_opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			o->port = atoi(optarg);
			break;
		case 'r':
			o->role = !strcmp(optarg, "client") ? KCPX_BPF_ROLE_CLIENT
							    : KCPX_BPF_ROLE_SERVER;
			break;
		case 'P':
			if (kcpx_addr_parse(optarg, &o->peer))
				return -1;
			o->have_peer = true;
			break;
		case 'm':
			o->mode = !strcmp(optarg, "native") ? KCPX_XDP_NATIVE
				  : !strcmp(optarg, "skb")  ? KCPX_XDP_SKB
							    : KCPX_XDP_AUTO;
			break;
		case 'd':
			o->dscp = atoi(optarg);
			break;
		case 'H':
			o->hold = true;
			break;
		case 'b':
			if (kcpx_addr_parse(optarg, &o->bind))
				return -1;
			o->have_bind = true;
			break;
		case 'u':
			o->udp = true;
			break;
		case 's':
			o->secs = atof(optarg);
			break;
		case 'S':
			o->size = atoi(optarg);
			break;
		case 'w':
			o->window = atoi(optarg);
			break;
		default:
			return -1;
		}
	}
	return 0;
}

static int tool_attach(const char *ifname, struct opts *o)
{
	struct kcpx_xdp_config c = { .ifname = ifname,
				     .role = o->role,
				     .port = (uint16_t)o->port,
				     .dscp = o->dscp,
				     .mode = o->mode };
	struct kcpx_xdp *x;
	int err;

	if (o->have_peer)
		c.peer = o->peer;
	err = kcpx_xdp_open(&x, &c);
	if (err) {
		fprintf(stderr, "attach %s: %s\n", ifname, strerror(-err));
		return 1;
	}
	printf("attached %s mode=%s\n", ifname, kcpx_xdp_mode_name(x));
	fflush(stdout);
	while (o->hold && !stop)
		pause();
	kcpx_xdp_close(x, false);
	return 0;
}

static double tv_secs(const struct timeval *tv)
{
	return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

/* Echo every datagram back to its sender until told to stop or secs pass. */
static int tool_echo(const char *ifname, struct opts *o)
{
	static uint8_t bufs[64][KCPX_PKT_MAX];
	struct kcpx_pkt pkts[64];
	struct kcpx_xdp *x = NULL;
	struct kcpx_dgram *d = NULL;
	uint64_t n = 0, t0 = 0, t_last = 0;
	struct rusage ru0, ru1;
	double cpu;
	int err, ep;

	if (!o->have_bind)
		return 2;
	if (o->udp) {
		struct kcpx_udp_config uc = { .bind = &o->bind, .dscp = 0 };

		err = kcpx_udp_open(&d, &uc);
	} else {
		struct kcpx_xdp_config c = { .ifname = ifname,
					     .role = KCPX_BPF_ROLE_SERVER,
					     .port = (uint16_t)kcpx_addr_port(&o->bind),
					     .dscp = -1,
					     .mode = o->mode };
		struct kcpx_xsk_config xc = { .ifname = ifname, .bind = &o->bind, .dscp = o->dscp };

		err = kcpx_xdp_open(&x, &c);
		if (!err) {
			xc.xdp = x;
			err = kcpx_xsk_open(&d, &xc);
		}
	}
	if (err) {
		fprintf(stderr, "echo: %s\n", strerror(-err));
		kcpx_xdp_close(x, true);
		return 1;
	}
	for (int i = 0; i < 64; i++)
		pkts[i].buf = bufs[i];
	ep = epoll_create1(0);
	epoll_ctl(ep, EPOLL_CTL_ADD, d->fd, &(struct epoll_event){ .events = EPOLLIN });
	printf("echo on %s via %s%s%s\n", ifname, d->name, x ? " xdp=" : "",
	       x ? kcpx_xdp_mode_name(x) : "");
	getrusage(RUSAGE_SELF, &ru0);
	fflush(stdout);
	for (uint64_t start = kcpx_clock_us(); !stop;) {
		struct epoll_event ev;
		int got, sent = 0;

		if (o->secs > 0 && kcpx_clock_us() - start > (uint64_t)(o->secs * 1e6))
			break;
		got = d->ops->recv(d, pkts, 64);
		if (got < 0)
			break;
		if (!got) {
			if (d->ops->flush)
				d->ops->flush(d);
			epoll_wait(ep, &ev, 1, 20);
			continue;
		}
		if (!n)
			t0 = kcpx_clock_us();
		while (sent < got) {
			int r = d->ops->send(d, pkts + sent, got - sent);

			if (r < 0)
				break;
			sent += r;
			if (d->ops->flush)
				d->ops->flush(d);
		}
		n += (uint64_t)got;
		t_last = kcpx_clock_us();
	}
	getrusage(RUSAGE_SELF, &ru1);
	cpu = tv_secs(&ru1.ru_utime) - tv_secs(&ru0.ru_utime) + tv_secs(&ru1.ru_stime) -
	      tv_secs(&ru0.ru_stime);
	if (n && t_last > t0)
		printf("echoed %llu datagrams in %.2f s: %.0f pps via %s\n", (unsigned long long)n,
		       (double)(t_last - t0) / 1e6, (double)n * 1e6 / (double)(t_last - t0),
		       d->name);
	else
		printf("echoed %llu datagrams via %s\n", (unsigned long long)n, d->name);
	/* the echo process's own CPU time (user + system) per datagram echoed */
	if (n)
		printf("cpu %.2f s (user %.2f, sys %.2f): %.2f us/datagram via %s\n", cpu,
		       tv_secs(&ru1.ru_utime) - tv_secs(&ru0.ru_utime),
		       tv_secs(&ru1.ru_stime) - tv_secs(&ru0.ru_stime), cpu * 1e6 / (double)n,
		       d->name);
	if (x) {
		struct kcpx_xsk_stats xs;

		kcpx_xsk_get_stats(d, &xs);
		printf("af_xdp: rx %llu tx %llu rx_kernel %llu tx_kernel %llu rx_bad %llu "
		       "tx_full %llu kicks %llu rx_dropped %llu\n",
		       (unsigned long long)xs.rx_packets, (unsigned long long)xs.tx_packets,
		       (unsigned long long)xs.rx_kernel, (unsigned long long)xs.tx_kernel,
		       (unsigned long long)xs.rx_bad, (unsigned long long)xs.tx_ring_full,
		       (unsigned long long)xs.tx_kicks, (unsigned long long)xs.rx_dropped);
	}
	fflush(stdout);
	d->ops->close(d);
	kcpx_xdp_close(x, true);
	close(ep);
	return 0;
}

/* Keep `window` datagrams in flight to an echo server and count what comes back. */
static int tool_blast(const char *target, struct opts *o)
{
	struct kcpx_addr a;
	struct mmsghdr msgs[32];
	struct iovec iov[32];
	static uint8_t buf[32][2048];
	uint64_t sent = 0, recvd = 0, start, last_rx;
	int fd, inflight = 0;

	if (kcpx_addr_parse(target, &a) || o->size < 1 || o->size > KCPX_PKT_MAX)
		return 2;
	fd = socket(a.sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	if (fd < 0 || connect(fd, &a.sa, a.len) < 0) {
		perror("blast");
		return 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &(int){ 4 << 20 }, sizeof(int));
	for (int i = 0; i < 32; i++) {
		memset(buf[i], 0x5a, sizeof(buf[i]));
		iov[i].iov_base = buf[i];
		memset(&msgs[i], 0, sizeof(msgs[i]));
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	start = last_rx = kcpx_clock_us();
	while (!stop && kcpx_clock_us() - start < (uint64_t)(o->secs * 1e6)) {
		int room = o->window - inflight, r;

		if (room > 32)
			room = 32;
		if (room > 0) {
			for (int i = 0; i < room; i++)
				iov[i].iov_len = (size_t)o->size;
			r = sendmmsg(fd, msgs, (unsigned)room, 0);
			if (r > 0) {
				sent += (uint64_t)r;
				inflight += r;
			}
		}
		for (int i = 0; i < 32; i++)
			iov[i].iov_len = sizeof(buf[i]);
		r = recvmmsg(fd, msgs, 32, MSG_DONTWAIT, NULL);
		if (r > 0) {
			recvd += (uint64_t)r;
			inflight -= r;
			if (inflight < 0)
				inflight = 0;
			last_rx = kcpx_clock_us();
		} else if (kcpx_clock_us() - last_rx > 20000) {
			inflight = 0; /* lost in flight: open the window again */
			last_rx = kcpx_clock_us();
		} else if (room <= 0) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			poll(&p, 1, 5);
		}
	}
	double secs = (double)(kcpx_clock_us() - start) / 1e6;
	printf("blast %s: sent %llu received %llu in %.2f s: %.0f pps echoed (size %d)\n", target,
	       (unsigned long long)sent, (unsigned long long)recvd, secs, (double)recvd / secs,
	       o->size);
	close(fd);
	return recvd ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct opts o;

	setenv("LIBXDP_SKIP_DISPATCHER", "1", 1);
	if (argc < 2)
		return self_test();
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (argc < 3 || parse_opts(argc, argv, &o)) {
		fprintf(stderr, "usage: see the top of tests/bpf/test_xsk.c\n");
		return 2;
	}
	if (!strcmp(argv[1], "attach"))
		return tool_attach(argv[2], &o);
	if (!strcmp(argv[1], "down")) {
		int err = kcpx_xdp_down(argv[2]);

		if (err)
			fprintf(stderr, "down %s: %s\n", argv[2], strerror(-err));
		return err && err != -ENOENT;
	}
	if (!strcmp(argv[1], "echo"))
		return tool_echo(argv[2], &o);
	if (!strcmp(argv[1], "blast"))
		return tool_blast(argv[2], &o);
	fprintf(stderr, "unknown command %s\n", argv[1]);
	return 2;
}
