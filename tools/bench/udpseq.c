// SPDX-License-Identifier: MIT
/*
 * udpseq: numbered UDP datagrams, to check what a link did to them (linkem's selftests).
 *
 *   udpseq -r [ADDR:]PORT [-i IDLE_MS] [-T MAX_S]   receive; print stats when the sender's
 *                                                  end marker arrives or after IDLE_MS
 *                                                  of silence
 *   udpseq -s HOST:PORT -n COUNT [-l LEN] [-b BITS_PER_S]
 *
 * The receiver prints one machine-readable line:
 *   udpseq sent=N recv=N lost=N dup=N reorder=N loss_bursts=N max_burst=N mean_burst=X
 *          mbps=X
 * reorder counts datagrams that arrived after a higher-numbered one; a loss burst is a
 * run of consecutive missing numbers. mbps is the payload rate between first and last.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define END_MARK 0xffffffffu
#define MAX_LEN	 9000

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int resolve(const char *s, int passive, struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_DGRAM }, *ai;
	char host[256] = "";
	const char *port = s, *colon = strrchr(s, ':');
	int err;

	if (colon) {
		if ((size_t)(colon - s) >= sizeof(host))
			return -1;
		memcpy(host, s, colon - s);
		host[colon - s] = 0;
		port = colon + 1;
	}
	if (passive)
		hints.ai_flags = AI_PASSIVE;
	err = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
	if (err)
		return -1;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static int do_send(const char *dst, uint32_t n, int len, double bps)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	uint8_t buf[MAX_LEN] = { 0 };
	double t0 = now_s(), gap = bps > 0 ? len * 8.0 / bps : 0;
	int fd;

	if (resolve(dst, 0, &ss, &sl)) {
		fprintf(stderr, "udpseq: bad address %s\n", dst);
		return 2;
	}
	fd = socket(ss.ss_family, SOCK_DGRAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, sl)) {
		perror("udpseq: connect");
		return 1;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint32_t be = htonl(i);

		/* pace against the schedule, not the previous send, so bursts stay short */
		while (gap > 0 && now_s() < t0 + i * gap)
			;
		memcpy(buf, &be, 4);
		if (send(fd, buf, len, 0) < 0 && errno != ENOBUFS && errno != ECONNREFUSED) {
			perror("udpseq: send");
			return 1;
		}
	}
	/* the end marker, a few times: the link may lose some */
	for (int k = 0; k < 20; k++) {
		uint32_t be[2] = { htonl(END_MARK), htonl(n) };

		memcpy(buf, be, sizeof(be));
		send(fd, buf, 8, 0);
		usleep(2000);
	}
	close(fd);
	return 0;
}

static int do_recv(const char *addr, int idle_ms, double tmax)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	uint8_t buf[MAX_LEN], *seen = NULL;
	uint32_t cap = 0, maxseq = 0, sent = 0;
	uint64_t recv_n = 0, dup = 0, reorder = 0, bytes = 0;
	double t_first = 0, t_last = 0, deadline = now_s() + tmax;
	int fd, any = 0, rb = 8 << 20;
	struct pollfd pfd;

	if (resolve(addr, 1, &ss, &sl)) {
		fprintf(stderr, "udpseq: bad address %s\n", addr);
		return 2;
	}
	fd = socket(ss.ss_family, SOCK_DGRAM, 0);
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rb, sizeof(rb)))
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rb, sizeof(rb));
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, sl)) {
		perror("udpseq: bind");
		return 1;
	}
	pfd.fd = fd;
	pfd.events = POLLIN;
	for (;;) {
		int left = (int)((deadline - now_s()) * 1000);
		ssize_t r;
		uint32_t seq;

		if (left <= 0)
			break;
		if (poll(&pfd, 1, any && idle_ms < left ? idle_ms : left) <= 0)
			break;
		r = recv(fd, buf, sizeof(buf), 0);
		if (r < 4)
			continue;
		memcpy(&seq, buf, 4);
		seq = ntohl(seq);
		if (seq == END_MARK && r >= 8) {
			memcpy(&sent, buf + 4, 4);
			sent = ntohl(sent);
			break;
		}
		if (seq >= 100000000)
			continue;
		if (seq >= cap) {
			uint32_t ncap = cap ? cap : 4096;
			uint8_t *p;

			while (ncap <= seq)
				ncap *= 2;
			p = realloc(seen, ncap);
			if (!p)
				return 1;
			memset(p + cap, 0, ncap - cap);
			seen = p;
			cap = ncap;
		}
		t_last = now_s();
		if (!any)
			t_first = t_last;
		if (seen[seq]) {
			dup++;
			continue;
		}
		seen[seq] = 1;
		recv_n++;
		bytes += (uint64_t)r;
		if (any && seq < maxseq)
			reorder++;
		if (!any || seq > maxseq)
			maxseq = seq;
		any = 1;
	}
	if (!sent)
		sent = any ? maxseq + 1 : 0;
	{
		uint64_t bursts = 0, max_burst = 0, run = 0, lost = 0;

		for (uint32_t i = 0; i < sent; i++) {
			if (i < cap && seen[i]) {
				run = 0;
				continue;
			}
			lost++;
			if (!run++)
				bursts++;
			if (run > max_burst)
				max_burst = run;
		}
		printf("udpseq sent=%u recv=%llu lost=%llu dup=%llu reorder=%llu loss_bursts=%llu "
		       "max_burst=%llu mean_burst=%.3f mbps=%.3f\n",
		       sent, (unsigned long long)recv_n, (unsigned long long)lost,
		       (unsigned long long)dup, (unsigned long long)reorder,
		       (unsigned long long)bursts, (unsigned long long)max_burst,
		       bursts ? (double)lost / bursts : 0.0,
		       t_last > t_first ? bytes * 8 / (t_last - t_first) / 1e6 : 0.0);
	}
	free(seen);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	const char *rx = NULL, *tx = NULL;
	int c, len = 100, idle = 1000;
	uint32_t n = 1000;
	double bps = 0, tmax = 60;

	while ((c = getopt(argc, argv, "r:s:n:l:b:i:T:")) != -1) {
		switch (c) {
		case 'r':
			rx = optarg;
			break;
		case 's':
			tx = optarg;
			break;
		case 'n':
			n = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case 'l':
			len = atoi(optarg);
			break;
		case 'b':
			bps = atof(optarg);
			break;
		case 'i':
			idle = atoi(optarg);
			break;
		case 'T':
			tmax = atof(optarg);
			break;
		default:
			fprintf(stderr, "usage: udpseq -r [ADDR:]PORT [-i IDLE_MS] [-T MAX_S]\n"
					"       udpseq -s HOST:PORT -n COUNT [-l LEN] [-b BPS]\n");
			return 2;
		}
	}
	if (len < 8 || len > MAX_LEN)
		len = len < 8 ? 8 : MAX_LEN;
	if (rx)
		return do_recv(rx, idle, tmax);
	if (tx)
		return do_send(tx, n, len, bps);
	fprintf(stderr, "udpseq: -r or -s\n");
	return 2;
}
