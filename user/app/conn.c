// SPDX-License-Identifier: MIT
/*
 * TCP connections tied to smux streams, one each: bytes TCP -> stream (up) and stream ->
 * TCP (down), each with one buffer of slack; the server dials the target for every stream
 * the client opens, the client opens a stream for every TCP connection it accepts.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "app/log.h"
#include "app/tunnel_int.h"
#include "core/session.h"
#include "core/smux.h"
#include "io/clock.h"

#define CONN_BUF 65536

/* A TCP connection tied to one smux stream. */
struct conn {
	struct sess *s;
	uint32_t sid;
	struct kcpx_watch w;
	bool connecting; /* server: dial in progress */
	bool closing;
	bool ready;  /* on the tunnel's ready list */
	uint8_t *up; /* TCP -> stream bytes smux has not taken yet */
	size_t up_off, up_len;
	uint8_t *down; /* stream -> TCP bytes the socket has not taken yet */
	size_t down_off, down_len;
	bool stream_eof;
	bool tcp_eof;	    /* TCP peer finished: close once `up` is all in smux */
	struct conn *hnext; /* sid hash chain */
	struct conn *rnext; /* ready list */
	struct conn *gnext; /* garbage list */
};

static void conn_close(struct conn *c);

static struct conn **stream_slot(struct sess *s, uint32_t sid)
{
	struct conn **pp;

	if (!s->cap)
		return NULL;
	for (pp = &s->streams[sid % s->cap]; *pp; pp = &(*pp)->hnext)
		if ((*pp)->sid == sid)
			return pp;
	return pp;
}

static struct conn *stream_find(struct sess *s, uint32_t sid)
{
	struct conn **pp = stream_slot(s, sid);

	return pp ? *pp : NULL;
}

static int stream_add(struct sess *s, struct conn *c)
{
	if (!s->cap) {
		s->cap = 256;
		s->streams = calloc(s->cap, sizeof(*s->streams));
		if (!s->streams) {
			s->cap = 0;
			return -ENOMEM;
		}
	}
	c->hnext = s->streams[c->sid % s->cap];
	s->streams[c->sid % s->cap] = c;
	s->nstreams++;
	return 0;
}

static void stream_del(struct sess *s, struct conn *c)
{
	struct conn **pp = stream_slot(s, c->sid);

	if (pp && *pp == c) {
		*pp = c->hnext;
		s->nstreams--;
	}
}

static uint32_t conv_of(const struct sess *s)
{
	return kcpx_ep_sess_conv(s->es);
}

static void conn_ready(struct conn *c)
{
	struct tunnel *t = c->s->t;

	if (c->ready || c->closing)
		return;
	c->ready = true;
	c->rnext = t->ready;
	t->ready = c;
}

static void conn_events(struct conn *c)
{
	uint32_t ev = 0;

	if (c->closing)
		return;
	if (c->connecting || c->down_off < c->down_len)
		ev |= EPOLLOUT;
	if (!c->connecting && !c->tcp_eof && c->up_off >= c->up_len)
		ev |= EPOLLIN;
	kcpx_loop_mod(c->s->t->loop, &c->w, ev);
}

/* TCP -> stream: push what smux will take. Returns false once the conn closed. */
static bool conn_push_up(struct conn *c)
{
	struct kcpx_smux *mx = kcpx_session_smux(c->s->ks);

	while (c->up_off < c->up_len) {
		ssize_t n = kcpx_smux_write(mx, c->sid, c->up + c->up_off, c->up_len - c->up_off);
		if (n == -EAGAIN)
			break;
		if (n < 0) {
			conn_close(c);
			return false;
		}
		c->up_off += (size_t)n;
	}
	kcpx_tun_sess_mark(c->s);
	if (c->up_off >= c->up_len) {
		c->up_off = c->up_len = 0;
		if (c->tcp_eof) {
			conn_close(c);
			return false;
		}
	}
	return true;
}

/* stream -> TCP: write pending bytes, then read more from the stream while TCP takes it. */
static void conn_pull_down(struct conn *c)
{
	struct kcpx_smux *mx = kcpx_session_smux(c->s->ks);

	for (;;) {
		ssize_t n;

		while (c->down_off < c->down_len) {
			n = write(c->w.fd, c->down + c->down_off, c->down_len - c->down_off);
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				conn_events(c);
				return;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				conn_close(c);
				return;
			}
			c->down_off += (size_t)n;
		}
		c->down_off = c->down_len = 0;
		if (c->stream_eof) {
			conn_close(c);
			return;
		}
		n = kcpx_smux_read(mx, c->sid, c->down, CONN_BUF);
		if (n == -EAGAIN)
			break;
		if (n <= 0) {
			/* EOF from the peer: kcptun closes both directions */
			c->stream_eof = true;
			continue;
		}
		c->down_len = (size_t)n;
		kcpx_tun_sess_mark(c->s); /* a read made room in smux: let KCP deliver more */
	}
	conn_events(c);
}

static void conn_io(struct kcpx_watch *w, uint32_t events)
{
	struct conn *c = (struct conn *)((char *)w - offsetof(struct conn, w));

	if (c->closing)
		return;
	if (c->connecting) {
		int err;
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		err = kcpx_tcp_dial_result(c->w.fd);
		if (err) {
			if (!c->s->t->cfg->quiet)
				pr_info("stream %u: dial %s failed: %s", c->sid,
					c->s->t->cfg->target, strerror(-err));
			conn_close(c);
			return;
		}
		c->connecting = false;
		conn_events(c);
		conn_ready(c);
		return;
	}
	if (events & EPOLLOUT)
		conn_ready(c);
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		ssize_t n;

		if (c->up_off < c->up_len)
			return; /* smux has not taken the last read yet */
		if (c->tcp_eof)
			return;
		n = read(c->w.fd, c->up, CONN_BUF);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		if (n == 0) {
			/* the TCP peer is done sending; kcptun then closes both ways */
			c->tcp_eof = true;
			conn_close(c);
			return;
		}
		if (n < 0) {
			conn_close(c);
			return;
		}
		c->up_off = 0;
		c->up_len = (size_t)n;
		if (conn_push_up(c))
			conn_events(c);
	}
}

static struct conn *conn_new(struct sess *s, uint32_t sid, int fd, bool connecting)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->up = malloc(CONN_BUF);
	c->down = malloc(CONN_BUF);
	if (!c->up || !c->down)
		goto err;
	c->s = s;
	c->sid = sid;
	c->connecting = connecting;
	c->w.fn = conn_io;
	if (kcpx_loop_add(s->t->loop, &c->w, fd, connecting ? EPOLLOUT : EPOLLIN) < 0)
		goto err;
	if (stream_add(s, c) < 0) {
		kcpx_loop_del(s->t->loop, &c->w);
		goto err;
	}
	return c;
err:
	free(c->up);
	free(c->down);
	free(c);
	return NULL;
}

static void conn_close(struct conn *c)
{
	struct sess *s = c->s;
	struct tunnel *t = s->t;

	if (c->closing)
		return;
	c->closing = true;
	kcpx_loop_del(t->loop, &c->w);
	close(c->w.fd);
	c->w.fd = -1;
	stream_del(s, c);
	if (s->ks)
		kcpx_smux_close(kcpx_session_smux(s->ks), c->sid);
	if (!t->cfg->quiet)
		pr_info("stream %u closed (conv %08x)", c->sid, conv_of(s));
	kcpx_tun_sess_mark(s);
	c->gnext = t->garbage_c;
	t->garbage_c = c;
}

bool kcpx_conn_serve_ready(struct tunnel *t)
{
	bool any = false;

	while (t->ready) {
		struct conn *c = t->ready;

		t->ready = c->rnext;
		c->ready = false;
		if (!c->closing && !c->connecting)
			conn_pull_down(c);
		any = true;
	}
	return any;
}

void kcpx_conn_close_all(struct sess *s)
{
	for (unsigned i = 0; i < s->cap; i++)
		while (s->streams[i])
			conn_close(s->streams[i]);
}

unsigned kcpx_conn_count(const struct sess *s)
{
	return s->nstreams;
}

void kcpx_conn_reap(struct tunnel *t)
{
	while (t->garbage_c) {
		struct conn *c = t->garbage_c;

		t->garbage_c = c->gnext;
		free(c->up);
		free(c->down);
		free(c);
	}
}

void kcpx_conn_accept(void *sess_user, uint32_t sid)
{
	struct sess *s = sess_user;
	struct tunnel *t = s->t;
	struct kcpx_smux *mx = kcpx_session_smux(s->ks);
	struct conn *c;
	bool pending;
	int fd;

	if (t->cfg->role != KCPX_ROLE_SERVER) {
		kcpx_smux_close(mx, sid); /* a client accepts no streams */
		return;
	}
	fd = kcpx_tcp_dial(&t->target, &pending);
	if (fd < 0) {
		if (!t->cfg->quiet)
			pr_info("stream %u: dial %s failed: %s", sid, t->cfg->target,
				strerror(-fd));
		kcpx_smux_close(mx, sid);
		return;
	}
	c = conn_new(s, sid, fd, pending);
	if (!c) {
		close(fd);
		kcpx_smux_close(mx, sid);
		return;
	}
	if (!t->cfg->quiet)
		pr_info("stream %u opened (conv %08x) -> %s", sid, conv_of(s), t->cfg->target);
	if (!pending)
		conn_ready(c);
}

void kcpx_conn_readable(void *sess_user, uint32_t sid)
{
	struct sess *s = sess_user;
	struct conn *c = stream_find(s, sid);

	if (c && !c->connecting)
		conn_ready(c);
}

void kcpx_conn_writable(void *sess_user, uint32_t sid)
{
	struct sess *s = sess_user;
	struct conn *c = stream_find(s, sid);

	if (c && !c->closing && c->up_off < c->up_len) {
		if (conn_push_up(c))
			conn_events(c);
	}
}

/* Client: each accepted TCP connection gets a stream on a --conn session. */
void kcpx_conn_listen_ready(struct kcpx_watch *w, uint32_t events)
{
	struct tunnel *t = (struct tunnel *)((char *)w - offsetof(struct tunnel, lw));

	for (int k = 0; k < 64; k++) {
		struct sess *s;
		struct conn *c;
		uint32_t sid;
		int fd, err;

		fd = kcpx_tcp_accept(w->fd);
		if (fd < 0) {
			if (fd == -EMFILE || fd == -ENFILE) {
				pr_warn_ratelimited("accept: %s: new connections wait a second",
						    strerror(-fd));
				if (!kcpx_loop_mod(t->loop, w, 0))
					t->lw_paused = true;
			} else if (fd != -EAGAIN && fd != -EWOULDBLOCK) {
				pr_warn_ratelimited("accept: %s", strerror(-fd));
			}
			return;
		}
		s = kcpx_tun_client_session(t);
		if (!s) {
			close(fd);
			continue;
		}
		err = kcpx_smux_open(kcpx_session_smux(s->ks), &sid);
		if (err) {
			pr_warn("cannot open a stream: %s", strerror(-err));
			close(fd);
			if (err == -EOVERFLOW || err == -EPIPE)
				kcpx_ep_close(s->es, "stream ids exhausted or session dead");
			continue;
		}
		c = conn_new(s, sid, fd, false);
		if (!c) {
			close(fd);
			kcpx_smux_close(kcpx_session_smux(s->ks), sid);
			continue;
		}
		if (!t->cfg->quiet)
			pr_info("stream %u opened (conv %08x)", sid, conv_of(s));
		kcpx_tun_sess_mark(s);
	}
}
