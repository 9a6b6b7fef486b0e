/* SPDX-License-Identifier: MIT */
/*
 * A small HTTP/1.1 server on the tunnel's event loop for /metrics and /healthz: GET and
 * HEAD, one request per connection (Connection: close), everything non-blocking.
 *
 * Its cost is bounded whatever the client does: at most KCPX_HTTP_CONNS connections
 * (more are accepted and closed at once), a request of at most KCPX_HTTP_REQ bytes, and
 * KCPX_HTTP_TIMEOUT_MS from accept to the last byte written, after which the connection
 * is dropped. A scraper that reads slowly only waits for epoll; it never blocks the loop.
 * The handler runs in the loop and writes the whole body at once (into memory).
 */
#ifndef KCPX_IO_HTTP_H
#define KCPX_IO_HTTP_H

#include <stdint.h>
#include <stdio.h>

#include "io/addr.h"
#include "io/loop.h"

#define KCPX_HTTP_CONNS	     8
#define KCPX_HTTP_REQ	     4096
#define KCPX_HTTP_TIMEOUT_MS 5000

struct kcpx_http;

/*
 * Answer a GET for `path` (query string removed): write the body into fp, set *ctype
 * (a static string), return the status code (200, 404, 503, ...).
 */
typedef int (*kcpx_http_handler)(void *arg, const char *path, FILE *fp, const char **ctype);

struct kcpx_http_stats {
	uint64_t requests; /* answered */
	uint64_t refused;  /* over KCPX_HTTP_CONNS, closed at accept */
	uint64_t timeouts; /* dropped at the deadline */
	uint64_t bad;	   /* malformed or oversized requests (answered 400/405/431) */
};

/* Listen on addr (TCP). Returns 0 or -errno (nothing is left open on error). */
int kcpx_http_start(struct kcpx_http **out, struct kcpx_loop *loop, const struct kcpx_addr *addr,
		    kcpx_http_handler fn, void *arg);
void kcpx_http_stop(struct kcpx_http *h); /* closes the listener and every connection */
void kcpx_http_stats(const struct kcpx_http *h, struct kcpx_http_stats *st);

#endif
