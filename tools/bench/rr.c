// SPDX-License-Identifier: MIT
/*
 * rr: small TCP request/response exchanges, one after another on one connection, and
 * their round-trip times. This is the latency half of `make bench`.
 *
 *   rr -s -l [ADDR:]PORT                      serve (one thread per connection)
 *   rr -c HOST:PORT [-n N] [-t SEC] [-q B] [-p B] [-w N]
 *
 * Each request starts with an 8-byte header (request length, response length; both
 * big-endian u32), then padding up to the request length; the server answers with that
 * many bytes. The client prints one machine-readable line:
 *   rr n=1000 p50_ms=50.412 p90_ms=... p99_ms=... p999_ms=... max_ms=... mean_ms=...
 *      elapsed_s=... complete=1
 * complete=0 means the time bound (-t) or an error ended the run early; the
 * percentiles then cover the exchanges that finished.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_MSG (1 << 20)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int split_hostport(const char *s, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon = strrchr(s, ':');

	if (!colon) {
		snprintf(host, hlen, "%s", "");
		snprintf(port, plen, "%s", s);
		return 0;
	}
	if ((size_t)(colon - s) >= hlen)
		return -EINVAL;
	memcpy(host, s, colon - s);
	host[colon - s] = 0;
	snprintf(port, plen, "%s", colon + 1);
	return 0;
}

static int read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n ? -errno : -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n ? -errno : -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void *serve_conn(void *arg)
{
	int fd = (int)(intptr_t)arg, one = 1;
	uint8_t *buf = malloc(MAX_MSG);

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	while (buf) {
		uint32_t hdr[2], req, resp;

		if (read_full(fd, hdr, sizeof(hdr)))
			break;
		req = ntohl(hdr[0]);
		resp = ntohl(hdr[1]);
		if (req < sizeof(hdr) || req > MAX_MSG || resp > MAX_MSG)
			break;
		if (read_full(fd, buf, req - sizeof(hdr)))
			break;
		memset(buf, 0x5a, resp);
		if (write_full(fd, buf, resp))
			break;
	}
	free(buf);
	close(fd);
	return NULL;
}

static int serve(const char *addr)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE },
			*ai;
	char host[256], port[32];
	int fd, one = 1;

	if (split_hostport(addr, host, sizeof(host), port, sizeof(port)) ||
	    getaddrinfo(host[0] ? host : NULL, port, &hints, &ai)) {
		fprintf(stderr, "rr: bad listen address %s\n", addr);
		return 2;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 64)) {
		fprintf(stderr, "rr: listen %s: %s\n", addr, strerror(errno));
		freeaddrinfo(ai);
		return 1;
	}
	freeaddrinfo(ai);
	for (;;) {
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		pthread_t th;

		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fprintf(stderr, "rr: accept: %s\n", strerror(errno));
			return 1;
		}
		if (pthread_create(&th, NULL, serve_conn, (void *)(intptr_t)c)) {
			close(c);
			continue;
		}
		pthread_detach(th);
	}
}

static int dial(const char *addr, double deadline)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai;
	char host[256], port[32];
	int fd = -1, one = 1;

	if (split_hostport(addr, host, sizeof(host), port, sizeof(port)) ||
	    getaddrinfo(host[0] ? host : "127.0.0.1", port, &hints, &ai)) {
		fprintf(stderr, "rr: bad address %s\n", addr);
		return -1;
	}
	/* the listener (often a tunnel's local end) may still be starting */
	while (now_s() < deadline) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && !connect(fd, ai->ai_addr, ai->ai_addrlen))
			break;
		if (fd >= 0)
			close(fd);
		fd = -1;
		usleep(50000);
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		fprintf(stderr, "rr: connect %s: %s\n", addr, strerror(errno));
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* nearest-rank percentile of a sorted array */
static double pct(const double *v, int n, double q)
{
	int k = (int)(q * n + 0.999999);

	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

static int exchange(int fd, uint8_t *buf, uint32_t req, uint32_t resp, double deadline)
{
	uint32_t hdr[2] = { htonl(req), htonl(resp) };
	double left = deadline - now_s();
	struct timeval tv;

	if (left <= 0)
		return -ETIMEDOUT;
	tv.tv_sec = (time_t)left;
	tv.tv_usec = (suseconds_t)((left - (double)tv.tv_sec) * 1e6) + 1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	memcpy(buf, hdr, sizeof(hdr));
	if (write_full(fd, buf, req))
		return -EPIPE;
	return read_full(fd, buf, resp);
}

static int client(const char *addr, int n, double tmax, uint32_t req, uint32_t resp, int warm)
{
	double t0 = now_s(), deadline = t0 + tmax, sum = 0, *rtt;
	uint8_t *buf;
	int fd, done = 0, err = 0;

	if (req < 8)
		req = 8;
	if (req > MAX_MSG || resp > MAX_MSG || n < 1) {
		fprintf(stderr, "rr: bad sizes\n");
		return 2;
	}
	rtt = calloc((size_t)n, sizeof(*rtt));
	buf = calloc(1, req > resp ? req : resp);
	if (!rtt || !buf)
		return 1;
	fd = dial(addr, deadline);
	if (fd < 0) {
		printf("rr n=0 complete=0 error=connect\n");
		return 1;
	}
	/* warm-up exchanges (a tunnel's stream open, slow start) are not counted */
	for (int i = 0; i < warm && !err; i++)
		err = exchange(fd, buf, req, resp, deadline);
	t0 = now_s();
	while (!err && done < n) {
		double t = now_s();

		err = exchange(fd, buf, req, resp, deadline);
		if (!err) {
			rtt[done] = (now_s() - t) * 1e3;
			sum += rtt[done];
			done++;
		}
	}
	close(fd);
	qsort(rtt, (size_t)done, sizeof(*rtt), cmp_double);
	if (done)
		printf("rr n=%d p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f "
		       "mean_ms=%.3f elapsed_s=%.3f complete=%d",
		       done, pct(rtt, done, 0.5), pct(rtt, done, 0.9), pct(rtt, done, 0.99),
		       pct(rtt, done, 0.999), rtt[done - 1], sum / done, now_s() - t0, done == n);
	else
		printf("rr n=0 complete=0");
	if (err)
		printf(" error=%s", err == -EAGAIN || err == -ETIMEDOUT ? "timeout" : "io");
	printf("\n");
	free(rtt);
	free(buf);
	return done ? 0 : 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: rr -s -l [ADDR:]PORT\n"
		   "       rr -c HOST:PORT [-n COUNT] [-t MAX_SECONDS] [-q REQ_BYTES] "
		   "[-p RESP_BYTES] [-w WARMUP]\n");
}

int main(int argc, char **argv)
{
	const char *listen_addr = NULL, *conn = NULL;
	int c, n = 1000, warm = 3, srv = 0;
	double tmax = 60;
	uint32_t req = 64, resp = 64;

	signal(SIGPIPE, SIG_IGN);
	while ((c = getopt(argc, argv, "sl:c:n:t:q:p:w:h")) != -1) {
		switch (c) {
		case 's':
			srv = 1;
			break;
		case 'l':
			listen_addr = optarg;
			break;
		case 'c':
			conn = optarg;
			break;
		case 'n':
			n = atoi(optarg);
			break;
		case 't':
			tmax = atof(optarg);
			break;
		case 'q':
			req = (uint32_t)atoi(optarg);
			break;
		case 'p':
			resp = (uint32_t)atoi(optarg);
			break;
		case 'w':
			warm = atoi(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (srv && listen_addr)
		return serve(listen_addr);
	if (conn)
		return client(conn, n, tmax, req, resp, warm);
	usage(stderr);
	return 2;
}
