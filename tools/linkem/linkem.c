// SPDX-License-Identifier: MIT
/*
 * linkem: a WAN emulator in userspace, for kernels without netem.
 *
 *   [ host A ] a0 ==veth== ma [ linkem ] mb ==veth== b0 [ host B ]
 *
 * It runs in the middle namespace and bridges its two veth ends with AF_PACKET sockets:
 * every frame read on ma goes through the A->B impairments (impair.c) and is written to mb
 * when its release time comes, and the other way round. One thread per direction; each
 * holds its frames in a min-heap keyed on release time and sleeps in ppoll() until the
 * next release or the next arrival, so an idle link costs nothing.
 *
 * PACKET_VNET_HDR keeps the checksum-offload metadata (and GSO super-frames) intact across
 * the bridge; PACKET_IGNORE_OUTGOING keeps a socket from reading back what it wrote.
 * Turn TSO/GSO off on the endpoints when per-packet loss must be per wire packet.
 *
 * Signals: SIGUSR1 prints the counters, SIGTERM/SIGINT stop it (counters printed again).
 */
#include <errno.h>
#include <getopt.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "impair.h"

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

#define BATCH	   64
#define FRAME_MAX  (65536 + sizeof(struct virtio_net_hdr))
#define SOCK_BUF   (64 << 20)
#define HEAP_LIMIT (1u << 20) /* frames held per direction, at most */

struct pkt {
	struct pkt *next; /* on the free list */
	uint32_t len;	  /* vnet header + frame */
	uint8_t data[];
};

/* Frames up to a full Ethernet frame come from a per-thread free list of this size. */
#define PKT_SMALL (2048 - sizeof(struct pkt))

struct slot {
	uint64_t t;
	uint64_t seq; /* ties broken by arrival order */
	struct pkt *p;
};

struct heap {
	struct slot *v;
	uint32_t n, cap;
};

struct dir {
	const char *name;
	int in_fd, out_fd;
	int stop_fd;
	struct lk_dir m;
	struct heap h;
	uint64_t seq;
	pthread_t th;
	/* rx buffers for recvmmsg */
	uint8_t *rxbuf;
	struct mmsghdr rxm[BATCH];
	struct iovec rxv[BATCH];
	/* kernel receive timestamps (SO_TIMESTAMPNS), one cmsg buffer per frame */
	uint8_t rxc[BATCH][CMSG_SPACE(sizeof(struct timespec))];
	/* tx batch for sendmmsg */
	struct mmsghdr txm[BATCH];
	struct iovec txv[BATCH];
	struct pkt *txp[BATCH];
	int txn;
	struct pkt *free_small;
	uint32_t n_free;
	uint64_t last_at; /* arrival time of the last frame admitted */
};

static struct dir dirs[2];

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/*
 * When the frame reached linkem's socket, on the monotonic clock. The kernel stamps it at
 * receive time (CLOCK_REALTIME); linkem may read it much later when the machine is busy.
 * Admitting it at the read time would leave the emulated link idle for that spell and
 * lose its capacity, so the virtual clock runs on arrival times, never later than now.
 */
static uint64_t arrival_ns(struct msghdr *mh, uint64_t now, int64_t real_minus_mono)
{
	struct cmsghdr *c;

	for (c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		struct timespec ts;
		int64_t t;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPNS)
			continue;
		memcpy(&ts, CMSG_DATA(c), sizeof(ts));
		t = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec - real_minus_mono;
		if (t <= 0 || (uint64_t)t > now)
			return now;
		return (uint64_t)t;
	}
	return now;
}

static int64_t real_minus_mono_ns(void)
{
	struct timespec r, m;

	clock_gettime(CLOCK_MONOTONIC, &m);
	clock_gettime(CLOCK_REALTIME, &r);
	return ((int64_t)r.tv_sec - m.tv_sec) * 1000000000LL + ((int64_t)r.tv_nsec - m.tv_nsec);
}

static int slot_before(const struct slot *a, const struct slot *b)
{
	return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static int heap_push(struct heap *h, uint64_t t, uint64_t seq, struct pkt *p)
{
	uint32_t i;

	if (h->n == h->cap) {
		uint32_t cap = h->cap ? h->cap * 2 : 1024;
		struct slot *v;

		if (cap > HEAP_LIMIT)
			return -ENOBUFS;
		v = realloc(h->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		h->v = v;
		h->cap = cap;
	}
	i = h->n++;
	h->v[i] = (struct slot){ t, seq, p };
	while (i) {
		uint32_t up = (i - 1) / 2;
		struct slot tmp;

		if (!slot_before(&h->v[i], &h->v[up]))
			break;
		tmp = h->v[i];
		h->v[i] = h->v[up];
		h->v[up] = tmp;
		i = up;
	}
	return 0;
}

static struct slot heap_pop(struct heap *h)
{
	struct slot top = h->v[0];
	uint32_t i = 0;

	h->v[0] = h->v[--h->n];
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		struct slot tmp;

		if (l < h->n && slot_before(&h->v[l], &h->v[m]))
			m = l;
		if (r < h->n && slot_before(&h->v[r], &h->v[m]))
			m = r;
		if (m == i)
			break;
		tmp = h->v[i];
		h->v[i] = h->v[m];
		h->v[m] = tmp;
		i = m;
	}
	return top;
}

static void stat_add(uint64_t *c, uint64_t v)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

static struct pkt *pkt_alloc(struct dir *d, uint32_t len)
{
	struct pkt *p;

	if (len > PKT_SMALL)
		return malloc(sizeof(*p) + len);
	p = d->free_small;
	if (p) {
		d->free_small = p->next;
		d->n_free--;
		return p;
	}
	return malloc(sizeof(*p) + PKT_SMALL);
}

static void pkt_free(struct dir *d, struct pkt *p)
{
	/* keep a bounded pool: enough for a burst, not a whole drained queue */
	if (p->len > PKT_SMALL || d->n_free >= 65536) {
		free(p);
		return;
	}
	p->next = d->free_small;
	d->free_small = p;
	d->n_free++;
}

static void tx_flush(struct dir *d)
{
	int done = 0;

	while (done < d->txn) {
		int n = sendmmsg(d->out_fd, d->txm + done, d->txn - done, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* a frame the peer would not take: count it, move on */
			stat_add(&d->m.st.drop_tx, 1);
			done++;
			continue;
		}
		for (int i = done; i < done + n; i++)
			stat_add(&d->m.st.fwd_bytes,
				 d->txv[i].iov_len - sizeof(struct virtio_net_hdr));
		stat_add(&d->m.st.fwd, n);
		done += n;
	}
	for (int i = 0; i < d->txn; i++)
		pkt_free(d, d->txp[i]);
	d->txn = 0;
}

static void tx_add(struct dir *d, struct pkt *p)
{
	int i = d->txn++;

	d->txp[i] = p;
	d->txv[i].iov_base = p->data;
	d->txv[i].iov_len = p->len;
	memset(&d->txm[i].msg_hdr, 0, sizeof(d->txm[i].msg_hdr));
	d->txm[i].msg_hdr.msg_iov = &d->txv[i];
	d->txm[i].msg_hdr.msg_iovlen = 1;
	if (d->txn == BATCH)
		tx_flush(d);
}

/* Send everything due by `now`; returns the next release time (0: nothing held). */
static uint64_t release_due(struct dir *d, uint64_t now)
{
	while (d->h.n && d->h.v[0].t <= now)
		tx_add(d, heap_pop(&d->h).p);
	if (d->txn)
		tx_flush(d);
	__atomic_store_n(&d->m.st.queued, d->h.n, __ATOMIC_RELAXED);
	if (d->h.n > d->m.st.queued_max)
		__atomic_store_n(&d->m.st.queued_max, d->h.n, __ATOMIC_RELAXED);
	return d->h.n ? d->h.v[0].t : 0;
}

static int hold(struct dir *d, const uint8_t *data, uint32_t len, uint64_t t)
{
	struct pkt *p = pkt_alloc(d, len);

	if (!p)
		return -ENOMEM;
	p->len = len;
	memcpy(p->data, data, len);
	if (heap_push(&d->h, t, d->seq++, p)) {
		pkt_free(d, p);
		return -ENOBUFS;
	}
	return 0;
}

/* Read one batch; returns frames read, 0 when the socket is empty. */
static int rx_batch(struct dir *d)
{
	uint64_t now, at, rel, dup;
	int64_t off;
	int n;

	for (int i = 0; i < BATCH; i++) {
		d->rxv[i].iov_base = d->rxbuf + (size_t)i * FRAME_MAX;
		d->rxv[i].iov_len = FRAME_MAX;
		memset(&d->rxm[i].msg_hdr, 0, sizeof(d->rxm[i].msg_hdr));
		d->rxm[i].msg_hdr.msg_iov = &d->rxv[i];
		d->rxm[i].msg_hdr.msg_iovlen = 1;
		d->rxm[i].msg_hdr.msg_control = d->rxc[i];
		d->rxm[i].msg_hdr.msg_controllen = sizeof(d->rxc[i]);
	}
	n = recvmmsg(d->in_fd, d->rxm, BATCH, MSG_DONTWAIT, NULL);
	if (n <= 0)
		return 0;
	now = now_ns();
	off = real_minus_mono_ns();
	for (int i = 0; i < n; i++) {
		const uint8_t *buf = d->rxv[i].iov_base;
		uint32_t len = d->rxm[i].msg_len;
		uint32_t flen;

		if (len <= sizeof(struct virtio_net_hdr) ||
		    (d->rxm[i].msg_hdr.msg_flags & MSG_TRUNC))
			continue;
		flen = len - sizeof(struct virtio_net_hdr);
		stat_add(&d->m.st.rx, 1);
		stat_add(&d->m.st.rx_bytes, flen);
		/* arrival order is read order, so the clock handed to lk_dir_admit never goes back */
		at = arrival_ns(&d->rxm[i].msg_hdr, now, off);
		if (at < d->last_at)
			at = d->last_at;
		d->last_at = at;
		switch (lk_dir_admit(&d->m, at, flen, &rel, &dup)) {
		case LK_DROP_LOSS:
			stat_add(&d->m.st.drop_loss, 1);
			continue;
		case LK_DROP_QUEUE:
			stat_add(&d->m.st.drop_queue, 1);
			continue;
		case LK_PASS:
			break;
		}
		if (hold(d, buf, len, rel))
			stat_add(&d->m.st.drop_queue, 1);
		if (dup && hold(d, buf, len, dup))
			stat_add(&d->m.st.drop_queue, 1);
	}
	return n;
}

static void *dir_run(void *arg)
{
	struct dir *d = arg;
	struct pollfd pfd[2] = { { .fd = d->in_fd, .events = POLLIN },
				 { .fd = d->stop_fd, .events = POLLIN } };

	/* ppoll wakes within a few microseconds of a release, not the default 50 us */
	prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
	for (;;) {
		uint64_t next = release_due(d, now_ns());
		struct timespec ts, *tsp = NULL;
		int r;

		if (next) {
			uint64_t now = now_ns();
			uint64_t wait = next > now ? next - now : 0;

			ts.tv_sec = wait / 1000000000ULL;
			ts.tv_nsec = wait % 1000000000ULL;
			tsp = &ts;
		}
		r = ppoll(pfd, 2, tsp, NULL);
		if (r < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
		if (r > 0 && pfd[0].revents) {
			/* drain a few batches, releasing between them to keep latency low */
			for (int k = 0; k < 8; k++) {
				if (rx_batch(d) < BATCH)
					break;
				release_due(d, now_ns());
			}
		}
	}
	return NULL;
}

static int open_sock(const char *ifname, int *ifindex)
{
	struct sockaddr_ll sll = { 0 };
	int fd, one = 1, buf = SOCK_BUF;

	*ifindex = (int)if_nametoindex(ifname);
	if (!*ifindex) {
		fprintf(stderr, "linkem: no interface %s: %s\n", ifname, strerror(errno));
		return -1;
	}
	fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	if (fd < 0) {
		fprintf(stderr, "linkem: AF_PACKET socket: %s\n", strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one))) {
		fprintf(stderr, "linkem: %s: PACKET_VNET_HDR/IGNORE_OUTGOING: %s\n", ifname,
			strerror(errno));
		close(fd);
		return -1;
	}
	/* veths have no qdisc worth going through; best effort */
	setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
	/* root can exceed rmem_max; fall back quietly if not */
	if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)))
		fprintf(stderr, "linkem: no receive timestamps (%s): busy spells cost link time\n",
			strerror(errno));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)))
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof(buf)))
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = *ifindex;
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll))) {
		fprintf(stderr, "linkem: bind %s: %s\n", ifname, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void sock_drops(struct dir *d)
{
	struct tpacket_stats st;
	socklen_t len = sizeof(st);

	/* the kernel resets these counters on every read */
	if (!getsockopt(d->in_fd, SOL_PACKET, PACKET_STATISTICS, &st, &len))
		stat_add(&d->m.st.drop_rx, st.tp_drops);
}

static void report(const char *why)
{
	for (int i = 0; i < 2; i++) {
		struct dir *d = &dirs[i];
		struct lk_stats *s = &d->m.st;

		sock_drops(d);
#define L(x) (unsigned long long)__atomic_load_n(&s->x, __ATOMIC_RELAXED)
		fprintf(stderr,
			"linkem: %s %s rx=%llu rx_bytes=%llu fwd=%llu fwd_bytes=%llu "
			"drop_loss=%llu drop_queue=%llu drop_rx=%llu drop_tx=%llu dup=%llu "
			"reorder=%llu queued=%llu queued_max=%llu\n",
			why, d->name, L(rx), L(rx_bytes), L(fwd), L(fwd_bytes), L(drop_loss),
			L(drop_queue), L(drop_rx), L(drop_tx), L(dup), L(reorder), L(queued),
			L(queued_max));
#undef L
	}
	fflush(stderr);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: linkem [options] IFACE_A IFACE_B\n"
		   "  bridges two interfaces, impairing each direction separately\n"
		   "  --ab SPEC      impairments from A to B\n"
		   "  --ba SPEC      impairments from B to A\n"
		   "  --both SPEC    both directions (then --ab/--ba add to it)\n"
		   "  -s, --seed N   random seed (default 1); same seed, same verdicts\n"
		   "  -h, --help\n"
		   "SPEC: comma-separated key=value:\n"
		   "  delay=MS jitter=MS loss=PCT dup=PCT reorder=PCT[/GAP_MS]\n"
		   "  ge=P/R[/LOSS_BAD[/LOSS_GOOD]]  Gilbert-Elliott, percent per frame\n"
		   "  rate=BITS[k|m|g]  limit=BYTES[k|m] or limit=Np  (tail-drop queue behind the\n"
		   "    rate limiter; default 50 ms at the rate, at least 64 full frames)\n"
		   "  reorder: that share of frames is held GAP_MS (default 5) longer, so later\n"
		   "    frames overtake it; jitter alone never reorders\n"
		   "signals: USR1 prints counters, TERM/INT stop (counters printed at exit)\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ab", required_argument, NULL, 'A' },	  { "ba", required_argument, NULL, 'B' },
		{ "both", required_argument, NULL, 'C' }, { "seed", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },	  { NULL, 0, NULL, 0 }
	};
	const char *spec_ab = NULL, *spec_ba = NULL, *spec_both = NULL;
	struct lk_cfg cfg[2] = { 0 };
	uint64_t seed = 1;
	char err[128], desc[256];
	int c, ifidx[2], ret = 1, started = 0;
	sigset_t sigs;

	while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
		switch (c) {
		case 'A':
			spec_ab = optarg;
			break;
		case 'B':
			spec_ba = optarg;
			break;
		case 'C':
			spec_both = optarg;
			break;
		case 's':
			seed = strtoull(optarg, NULL, 0);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 2) {
		usage(stderr);
		return 2;
	}
	for (int i = 0; i < 2; i++) {
		const char *own = i ? spec_ba : spec_ab;

		if (spec_both && lk_cfg_parse(&cfg[i], spec_both, err, sizeof(err))) {
			fprintf(stderr, "linkem: --both: %s\n", err);
			return 2;
		}
		if (own && lk_cfg_parse(&cfg[i], own, err, sizeof(err))) {
			fprintf(stderr, "linkem: --%s: %s\n", i ? "ba" : "ab", err);
			return 2;
		}
	}

	/* signals go to the main thread only, which waits for them */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	int fa = open_sock(argv[optind], &ifidx[0]);
	int fb = fa < 0 ? -1 : open_sock(argv[optind + 1], &ifidx[1]);

	if (fa < 0 || fb < 0)
		goto out_sock;
	for (int i = 0; i < 2; i++) {
		struct dir *d = &dirs[i];

		d->name = i ? "ba" : "ab";
		d->in_fd = i ? fb : fa;
		d->out_fd = i ? fa : fb;
		d->stop_fd = eventfd(0, EFD_CLOEXEC);
		d->rxbuf = malloc(BATCH * FRAME_MAX);
		if (d->stop_fd < 0 || !d->rxbuf ||
		    lk_dir_init(&d->m, &cfg[i], seed * 2 + (uint64_t)i)) {
			fprintf(stderr, "linkem: out of memory\n");
			goto out_dirs;
		}
		lk_cfg_format(&d->m.cfg, desc, sizeof(desc));
		fprintf(stderr, "linkem: %s %s -> %s %s\n", d->name, argv[optind + i],
			argv[optind + 1 - i], desc);
	}
	for (int i = 0; i < 2; i++) {
		if (pthread_create(&dirs[i].th, NULL, dir_run, &dirs[i])) {
			fprintf(stderr, "linkem: pthread_create failed\n");
			goto out_threads;
		}
		started++;
	}
	fprintf(stderr, "linkem: ready seed=%llu\n", (unsigned long long)seed);
	for (;;) {
		int sig;

		if (sigwait(&sigs, &sig))
			break;
		if (sig == SIGUSR1) {
			report("stats");
			continue;
		}
		break;
	}
	ret = 0;
out_threads:
	for (int i = 0; i < started; i++) {
		uint64_t one = 1;

		if (write(dirs[i].stop_fd, &one, sizeof(one)) != sizeof(one))
			ret = 1;
		pthread_join(dirs[i].th, NULL);
	}
	if (started == 2)
		report("exit");
out_dirs:
	for (int i = 0; i < 2; i++) {
		struct dir *d = &dirs[i];

		while (d->h.n)
			free(heap_pop(&d->h).p);
		while (d->free_small) {
			struct pkt *p = d->free_small;

			d->free_small = p->next;
			free(p);
		}
		free(d->h.v);
		free(d->rxbuf);
		lk_dir_free(&d->m);
		if (d->stop_fd > 0)
			close(d->stop_fd);
	}
out_sock:
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	return ret;
}
