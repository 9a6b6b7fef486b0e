// SPDX-License-Identifier: MIT
/*
 * TCP connections tied to smux streams, one each: bytes TCP -> stream (up) and stream ->
 * TCP (down); the server dials the target for every stream the client opens, the client
 * opens a stream for every TCP connection it accepts.
 *
 * A connection holds no buffer: TCP is read only as far as smux takes the bytes at once
 * (through the tunnel's one scratch buffer), and the socket is written straight from
 * smux's buffers (peek, writev, consume). An idle connection costs its struct and smux's
 * stream; a busy one the bytes it has in flight, from the pools the sessions share.
 *
 * Closing follows kcptun (std.Pipe): when either direction ends (EOF or an error on its
 * read or write), nothing is half-closed; the other direction goes on for --closewait
 * seconds, then the socket and the stream close both ways. With 0 (a client's default)
 * the first end closes both at once. One exception: a socket that reports an error
 * (EPOLLERR: reset) closes at once, as no byte can move through it either way.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include "app/log.h"
#include "app/tunnel_int.h"
#include "core/session.h"
#include "core/smux.h"
#include "core/util.h"
#include "io/clock.h"

#define CONN_IOV   16 /* smux buffer pieces per writev */
#define CONN_READS 4  /* TCP reads per readiness event before others get a turn */

/* A TCP connection tied to one smux stream. */
struct conn {
	struct sess *s;
	uint32_t sid;
	struct kcpx_watch w;
	bool connecting; /* server: dial in progress */
	bool closing;
	bool ready;		  /* on the tunnel's ready list */
	bool up_blocked;	  /* smux takes no more now: TCP reads wait for writable() */
	bool down_blocked;	  /* the socket took less than offered: wait for EPOLLOUT */
	bool up_done;		  /* TCP -> stream ended (EOF, error): no more reads */
	bool down_done;		  /* stream -> TCP ended: what still comes is dropped */
	struct kcpx_timer linger; /* --closewait: armed when the first direction ends */
	struct conn *hnext;	  /* sid hash chain */
	struct conn *rnext;	  /* ready list */
	struct conn *gnext;	  /* garbage list */
};

static void conn_close(struct conn *c);

static void conn_linger_end(struct kcpx_timer *tm, uint32_t now)
{
	(void)now;
	conn_close((struct conn *)((char *)tm - offsetof(struct conn, linger)));
}

/*
 * One direction ended. The first one arms --closewait (read when it happens, so a reload
 * applies to later ends); with 0, or when the timer cannot be armed, both close now.
 * Returns false once the conn closed.
 */
static bool conn_dir_end(struct conn *c, bool up)
{
	struct tunnel *t = c->s->t;
	int wait = t->cfg->closewait;

	if (up)
		c->up_done = true;
	else
		c->down_done = true;
	if (kcpx_timer_armed(&c->linger))
		return true;
	if (wait <= 0 || kcpx_timer_set(t->loop, &c->linger,
					kcpx_loop_now(t->loop) + (uint32_t)wait * 1000) < 0) {
		conn_close(c);
		return false;
	}
	if (!t->cfg->quiet)
		pr_info("stream %u (conv %08x): %s ended; both close in %d s (--closewait)", c->sid,
			kcpx_ep_sess_conv(c->s->es), up ? "TCP -> stream" : "stream -> TCP", wait);
	return true;
}

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

/* Doubles the sid hash once it holds as many streams as buckets (chains stay short). */
static void stream_rehash(struct sess *s)
{
	unsigned ncap = s->cap * 2;
	struct conn **nb = calloc(ncap, sizeof(*nb));

	if (!nb)
		return; /* keep the longer chains */
	for (unsigned i = 0; i < s->cap; i++) {
		while (s->streams[i]) {
			struct conn *c = s->streams[i];

			s->streams[i] = c->hnext;
			c->hnext = nb[c->sid % ncap];
			nb[c->sid % ncap] = c;
		}
	}
	free(s->streams);
	s->streams = nb;
	s->cap = ncap;
}

static int stream_add(struct sess *s, struct conn *c)
{
	if (!s->cap) {
		s->cap = 64;
		s->streams = calloc(s->cap, sizeof(*s->streams));
		if (!s->streams) {
			s->cap = 0;
			return -ENOMEM;
		}
	} else if (s->nstreams >= s->cap) {
		stream_rehash(s);
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
	if (c->connecting || (c->down_blocked && !c->down_done))
		ev |= EPOLLOUT;
	if (!c->connecting && !c->up_blocked && !c->up_done)
		ev |= EPOLLIN;
	kcpx_loop_mod(c->s->t->loop, &c->w, ev);
}

/*
 * TCP -> stream: read as much as smux takes now and hand it over. When smux takes
 * nothing, reading stops until its writable() callback. TCP EOF or error, or a stream
 * that takes no more, ends this direction (conn_dir_end). Returns false once the conn
 * closed.
 */
static bool conn_push_up(struct conn *c)
{
	struct kcpx_smux *mx = kcpx_session_smux(c->s->ks);
	uint8_t *buf = c->s->t->scratch;

	for (int k = 0; k < CONN_READS && !c->up_done; k++) {
		ssize_t room = kcpx_smux_write_room(mx, c->sid), n;
		size_t want;

		if (room < 0)
			return conn_dir_end(c, true);
		if (room == 0) {
			c->up_blocked = true;
			return true;
		}
		want = KCPX_MIN((size_t)room, (size_t)KCPX_CONN_READ);
		n = read(c->w.fd, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		if (n <= 0)
			return conn_dir_end(c, true);
		kcpx_tun_sess_mark(c->s);
		if (kcpx_smux_write(mx, c->sid, buf, (size_t)n) != n)
			return conn_dir_end(c, true); /* room was there: only out of memory */
		if ((size_t)n < want)
			return true; /* the socket is drained */
	}
	return true;
}

/*
 * stream -> TCP: write smux's buffered bytes straight to the socket while it takes them.
 * Once this direction ended on a write error, what the stream still brings is dropped
 * (kcptun stops reading it; dropping keeps smux's shared buffer from filling).
 */
static void conn_pull_down(struct conn *c)
{
	struct kcpx_smux *mx = kcpx_session_smux(c->s->ks);

	c->down_blocked = false;
	for (;;) {
		struct iovec iov[CONN_IOV];
		int niov = CONN_IOV;
		ssize_t n = kcpx_smux_peek(mx, c->sid, iov, &niov), w;

		if (n == -EAGAIN)
			break;
		if (n <= 0) {
			/* EOF from the peer (its FIN), or the stream is gone */
			if (!c->down_done && !conn_dir_end(c, false))
				return;
			break;
		}
		if (c->down_done) {
			kcpx_smux_consume(mx, c->sid, (size_t)n);
			kcpx_tun_sess_mark(c->s);
			continue;
		}
		w = writev(c->w.fd, iov, niov);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			c->down_blocked = true;
			break;
		}
		if (w <= 0) {
			if (!conn_dir_end(c, false))
				return;
			continue; /* drop the rest */
		}
		kcpx_smux_consume(mx, c->sid, (size_t)w);
		kcpx_tun_sess_mark(c->s); /* a read made room in smux: let KCP deliver more */
		if (w < n) {
			c->down_blocked = true; /* the socket is full */
			break;
		}
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
	/* reset, or closed both ways once its reads ended: no byte moves through it any more
	 * (and a level-triggered HUP would otherwise wake the loop until --closewait ends) */
	if ((events & EPOLLERR) || ((events & EPOLLHUP) && c->up_done)) {
		conn_close(c);
		return;
	}
	if ((events & (EPOLLIN | EPOLLHUP)) && !c->up_blocked && !c->up_done) {
		if (conn_push_up(c))
			conn_events(c);
	}
}

static struct conn *conn_new(struct sess *s, uint32_t sid, int fd, bool connecting)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->s = s;
	c->sid = sid;
	c->connecting = connecting;
	c->w.fn = conn_io;
	kcpx_timer_init(&c->linger, conn_linger_end);
	if (kcpx_loop_add(s->t->loop, &c->w, fd, connecting ? EPOLLOUT : EPOLLIN) < 0)
		goto err;
	if (stream_add(s, c) < 0) {
		kcpx_loop_del(s->t->loop, &c->w);
		goto err;
	}
	s->t->nconns++;
	return c;
err:
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
	kcpx_timer_cancel(t->loop, &c->linger);
	kcpx_loop_del(t->loop, &c->w);
	close(c->w.fd);
	c->w.fd = -1;
	t->nconns--;
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
	if (t->maxstreams > 0 && t->nconns >= t->maxstreams) {
		t->streams_refused++;
		pr_warn_ratelimited("stream %u refused: --maxstreams %d reached (%llu refused)",
				    sid, t->cfg->maxstreams,
				    (unsigned long long)t->streams_refused);
		kcpx_smux_close(mx, sid); /* FIN: the peer's stream sees EOF at once */
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

/* smux answered n SYNs of this session with FIN: --sessstreams. */
void kcpx_conn_refused(void *sess_user, uint32_t sid, unsigned n)
{
	struct sess *s = sess_user;
	struct tunnel *t = s->t;

	t->streams_refused += n;
	pr_warn_ratelimited("stream %u (conv %08x) refused: --sessstreams %d reached (%llu "
			    "refused)",
			    sid, conv_of(s), t->cfg->sessstreams,
			    (unsigned long long)t->streams_refused);
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

	if (c && !c->closing && !c->connecting && c->up_blocked) {
		c->up_blocked = false;
		if (conn_push_up(c)) /* now: the next queued stream waits for what is left */
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
		if (t->maxstreams > 0 && t->nconns >= t->maxstreams) {
			t->streams_refused++;
			pr_warn_ratelimited("connection refused: --maxstreams %d reached (%llu "
					    "refused)",
					    t->cfg->maxstreams,
					    (unsigned long long)t->streams_refused);
			close(fd);
			continue;
		}
		s = kcpx_tun_client_session(t);
		if (!s) {
			close(fd);
			continue;
		}
		err = kcpx_smux_open(kcpx_session_smux(s->ks), &sid);
		if (err) {
			if (err == -EMFILE)
				t->streams_refused++;
			pr_warn_ratelimited("cannot open a stream: %s%s", strerror(-err),
					    err == -EMFILE ? " (--sessstreams reached)" : "");
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
