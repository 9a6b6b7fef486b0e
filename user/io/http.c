// SPDX-License-Identifier: MIT
#include "io/http.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/httpreq.h"
#include "io/clock.h"
#include "io/tcp.h"

/*
 * A connection slot. Slots are never freed while the server runs: an event for a slot
 * closed earlier in the same epoll batch finds fd < 0 (or a fresh connection that simply
 * reads EAGAIN), never freed memory.
 */
struct hconn {
	struct kcpx_http *h;
	struct kcpx_watch w;
	struct kcpx_timer deadline;
	char req[KCPX_HTTP_REQ]; /* untrusted: only core/httpreq.c reads it */
	size_t req_len;
	char *resp; /* header + body, malloc'd once the request is complete */
	size_t resp_len, resp_off;
};

struct kcpx_http {
	struct kcpx_loop *loop;
	struct kcpx_watch lw;
	kcpx_http_handler fn;
	void *arg;
	struct kcpx_http_stats st;
	struct hconn conns[KCPX_HTTP_CONNS];
};

static void hconn_close(struct hconn *c)
{
	if (c->w.fd < 0)
		return;
	kcpx_loop_del(c->h->loop, &c->w);
	close(c->w.fd);
	c->w.fd = -1;
	kcpx_timer_cancel(c->h->loop, &c->deadline);
	free(c->resp);
	c->resp = NULL;
}

static const char *reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 431:
		return "Request Header Fields Too Large";
	case 503:
		return "Service Unavailable";
	default:
		return "Internal Server Error";
	}
}

/* Build the whole response (header and body) in c->resp. */
static void respond(struct hconn *c, int status, bool head, const char *path)
{
	const char *ctype = "text/plain; charset=utf-8";
	char *body = NULL, *p;
	size_t blen = 0;
	FILE *fp = open_memstream(&body, &blen);

	if (!fp) {
		hconn_close(c);
		return;
	}
	if (status == 200)
		status = c->h->fn(c->h->arg, path, fp, &ctype);
	else
		fprintf(fp, "%d %s\n", status, reason(status));
	if (fclose(fp)) {
		free(body);
		hconn_close(c);
		return;
	}
	p = malloc(blen + 256);
	if (!p) {
		free(body);
		hconn_close(c);
		return;
	}
	c->resp_len = (size_t)snprintf(p, 256,
				       "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
				       "Content-Length: %zu\r\nConnection: close\r\n\r\n",
				       status, reason(status), ctype, blen);
	if (!head) {
		memcpy(p + c->resp_len, body, blen);
		c->resp_len += blen;
	}
	free(body);
	c->resp = p;
	c->resp_off = 0;
	if (status >= 400 && status != 404 && status != 503)
		c->h->st.bad++;
	else
		c->h->st.requests++;
}

/* Once the header is complete: the answer (core/httpreq.c decides what it is). */
static void parse_request(struct hconn *c, bool *done)
{
	struct kcpx_httpreq r;
	int v = kcpx_httpreq_parse(c->req, c->req_len, sizeof(c->req), &r);

	*done = v != -EAGAIN;
	if (v == 0)
		respond(c, 200, r.head, r.path);
	else if (v > 0)
		respond(c, v, false, NULL);
}

static void hconn_write(struct hconn *c)
{
	while (c->resp_off < c->resp_len) {
		ssize_t n = send(c->w.fd, c->resp + c->resp_off, c->resp_len - c->resp_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			kcpx_loop_mod(c->h->loop, &c->w, EPOLLOUT);
			return;
		}
		if (n <= 0) {
			hconn_close(c);
			return;
		}
		c->resp_off += (size_t)n;
	}
	shutdown(c->w.fd, SHUT_WR);
	hconn_close(c);
}

static void hconn_io(struct kcpx_watch *w, uint32_t events)
{
	struct hconn *c = (struct hconn *)((char *)w - offsetof(struct hconn, w));
	bool done;

	if (w->fd < 0)
		return;
	if (c->resp) {
		hconn_write(c);
		return;
	}
	for (;;) {
		ssize_t n =
			recv(w->fd, c->req + c->req_len, sizeof(c->req) - c->req_len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			hconn_close(c);
			return;
		}
		c->req_len += (size_t)n;
		parse_request(c, &done);
		if (done)
			break;
	}
	if (c->resp)
		hconn_write(c);
}

static void hconn_timeout(struct kcpx_timer *t, uint32_t now)
{
	struct hconn *c = (struct hconn *)((char *)t - offsetof(struct hconn, deadline));

	c->h->st.timeouts++;
	hconn_close(c);
}

static void http_accept(struct kcpx_watch *w, uint32_t events)
{
	struct kcpx_http *h = (struct kcpx_http *)((char *)w - offsetof(struct kcpx_http, lw));

	for (int budget = 0; budget < 64; budget++) {
		struct hconn *c = NULL;
		int fd = kcpx_tcp_accept(w->fd);

		if (fd < 0)
			return;
		for (int i = 0; i < KCPX_HTTP_CONNS && !c; i++)
			if (h->conns[i].w.fd < 0)
				c = &h->conns[i];
		if (!c) {
			h->st.refused++;
			close(fd);
			continue;
		}
		c->req_len = 0;
		c->w.fn = hconn_io;
		if (kcpx_loop_add(h->loop, &c->w, fd, EPOLLIN) < 0) {
			close(fd);
			c->w.fd = -1;
			continue;
		}
		kcpx_timer_set(h->loop, &c->deadline, kcpx_clock_ms() + KCPX_HTTP_TIMEOUT_MS);
	}
}

int kcpx_http_start(struct kcpx_http **out, struct kcpx_loop *loop, const struct kcpx_addr *addr,
		    kcpx_http_handler fn, void *arg)
{
	struct kcpx_http *h = calloc(1, sizeof(*h));
	int fd, err;

	if (!h)
		return -ENOMEM;
	h->loop = loop;
	h->fn = fn;
	h->arg = arg;
	for (int i = 0; i < KCPX_HTTP_CONNS; i++) {
		h->conns[i].h = h;
		h->conns[i].w.fd = -1;
		kcpx_timer_init(&h->conns[i].deadline, hconn_timeout);
	}
	fd = kcpx_tcp_listen(addr);
	if (fd < 0) {
		free(h);
		return fd;
	}
	h->lw.fn = http_accept;
	err = kcpx_loop_add(loop, &h->lw, fd, EPOLLIN);
	if (err) {
		close(fd);
		free(h);
		return err;
	}
	*out = h;
	return 0;
}

void kcpx_http_stop(struct kcpx_http *h)
{
	if (!h)
		return;
	for (int i = 0; i < KCPX_HTTP_CONNS; i++)
		hconn_close(&h->conns[i]);
	kcpx_loop_del(h->loop, &h->lw);
	close(h->lw.fd);
	free(h);
}

void kcpx_http_stats(const struct kcpx_http *h, struct kcpx_http_stats *st)
{
	*st = h->st;
}
