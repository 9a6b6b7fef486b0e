// SPDX-License-Identifier: MIT
/*
 * smux v1/v2 session: frame parser, per-stream buffers, round-robin framer.
 *
 * Ownership: the session owns every stream; a stream lives from open()/SYN until the app
 * closes it and its FIN has been handed to output(). Streams sit on up to four intrusive
 * lists besides the id hash: ctrl (SYN/UPD owed), data (PSH/FIN owed, round robin), ev
 * (callbacks owed) and wait (a writer queued for the session's send budget). Freeing a stream unlinks it from all of them, so a callback that
 * closes a stream never leaves a dangling pointer behind: the event flush pops one stream
 * at a time and looks the sid up again between callbacks.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/pool.h"
#include "core/smux.h"
#include "core/util.h"

/*
 * Byte queue of blocks. A new block is sized to the bytes queued so far (at least
 * BQ_MIN, at most BQ_BLK), so a peer that trickles 1-byte frames costs at most about
 * twice the bytes it has buffered, and a big stream uses full blocks, which come from
 * the pool.
 */
#define BQ_MIN	     64
#define BQ_BLK	     4064
#define BQ_CACHE_MAX 64 /* full-size blocks a private pool keeps for reuse */

struct bq_blk {
	struct bq_blk *next;
	uint32_t len, cap;
	uint8_t data[];
};

struct bq {
	struct bq_blk *head, *tail;
	uint32_t off; /* read offset in head */
	size_t len;
};

enum {
	EV_ACCEPT = 1,
	EV_READABLE = 2,
	EV_WRITABLE = 4,
};

struct link {
	struct stream *prev, *next;
};

struct stream {
	uint32_t sid;
	struct stream *hnext;
	struct link ctrl, data, ev, wait;
	bool in_ctrl, in_data, in_ev, in_wait;
	uint8_t ev_bits;

	bool syn_pending; /* our SYN not yet output */
	bool upd_pending; /* v2 UPD owed: consumed = num_read at output time */
	bool fin_pending; /* app closed: FIN after the send buffer drains */
	bool local_closed;
	bool peer_fin;
	bool broken;	 /* peer claimed to consume more than we wrote */
	bool want_write; /* a write came back short or -EAGAIN */

	struct bq rbuf, sbuf;

	/* v2 window, modulo 2^32 like smux */
	uint32_t num_read, incr;
	uint32_t num_written; /* bytes accepted by write() */
	uint32_t peer_consumed, peer_window;
};

struct list {
	struct stream *head, *tail;
};

enum { P_HDR, P_PSH, P_UPD };

#define ORPHAN_FINS 32

struct kcpx_smux {
	struct kcpx_smux_config cfg;
	struct kcpx_smux_ops ops;
	void *user;

	struct stream **buckets;
	uint32_t nbuckets; /* power of two */
	unsigned nstreams, nclosing;
	uint32_t next_sid;
	bool go_away;

	size_t recv_used; /* unread bytes of all streams */
	size_t send_used; /* bytes of all streams written, not yet output */

	/* parser */
	int pstate;
	uint8_t hdr[KCPX_SMUX_HDR + KCPX_SMUX_UPD_LEN];
	uint32_t have;
	uint32_t psh_left, psh_sid;
	bool psh_bad; /* current PSH already counted as bad */

	struct list ctrl, data, ev, wait;
	bool nop_pending;
	uint32_t orphan[ORPHAN_FINS]; /* FINs for refused SYNs */
	unsigned orphan_head, orphan_n;
	unsigned refused_n; /* SYNs refused since the last refused() callback */
	uint32_t refused_sid;
	bool flushing;

	uint32_t last_rx, next_nop;
	int dead; /* 0 or -errno */

	struct kcpx_pool *pool;
	bool own_pool;

	struct kcpx_smux_counters cnt;
};

/* ---- byte queue ---- */

size_t kcpx_smux_pool_block(void)
{
	return sizeof(struct bq_blk) + BQ_BLK;
}

static struct bq_blk *blk_get(struct kcpx_smux *s, size_t cap)
{
	struct bq_blk *b;

	if (cap == BQ_BLK)
		b = kcpx_pool_get(s->pool);
	else
		b = malloc(sizeof(*b) + cap);
	if (!b)
		return NULL;
	b->next = NULL;
	b->len = 0;
	b->cap = (uint32_t)cap;
	return b;
}

static void blk_put(struct kcpx_smux *s, struct bq_blk *b)
{
	if (b->cap == BQ_BLK)
		kcpx_pool_put(s->pool, b);
	else
		free(b);
}

/* Appends buf; returns the bytes appended, fewer than len only when out of memory. */
static size_t bq_push(struct kcpx_smux *s, struct bq *q, const uint8_t *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		struct bq_blk *t = q->tail;
		size_t n;

		if (!t || t->len == t->cap) {
			size_t cap = KCPX_MAX(len - done, KCPX_MAX(q->len, (size_t)BQ_MIN));

			t = blk_get(s, KCPX_MIN(cap, (size_t)BQ_BLK));
			if (!t)
				break;
			if (q->tail)
				q->tail->next = t;
			else
				q->head = t;
			q->tail = t;
		}
		n = KCPX_MIN((size_t)(t->cap - t->len), len - done);
		memcpy(t->data + t->len, buf + done, n);
		t->len += n;
		done += n;
		q->len += n;
	}
	return done;
}

static size_t bq_pop(struct kcpx_smux *s, struct bq *q, uint8_t *out, size_t len)
{
	size_t done = 0;

	while (done < len && q->head) {
		struct bq_blk *b = q->head;
		size_t n = KCPX_MIN((size_t)(b->len - q->off), len - done);

		if (out)
			memcpy(out + done, b->data + q->off, n);
		done += n;
		q->off += n;
		if (q->off == b->len) {
			q->head = b->next;
			if (!q->head)
				q->tail = NULL;
			q->off = 0;
			blk_put(s, b);
		}
	}
	q->len -= done;
	return done;
}

static void bq_clear(struct kcpx_smux *s, struct bq *q)
{
	while (q->head) {
		struct bq_blk *b = q->head;
		q->head = b->next;
		blk_put(s, b);
	}
	q->tail = NULL;
	q->off = 0;
	q->len = 0;
}

/* ---- intrusive lists ---- */

#define LIST_FNS(name)                                                                             \
	static void name##_add(struct kcpx_smux *s, struct stream *st)                             \
	{                                                                                          \
		if (st->in_##name)                                                                 \
			return;                                                                    \
		st->in_##name = true;                                                              \
		st->name.next = NULL;                                                              \
		st->name.prev = s->name.tail;                                                      \
		if (s->name.tail)                                                                  \
			s->name.tail->name.next = st;                                              \
		else                                                                               \
			s->name.head = st;                                                         \
		s->name.tail = st;                                                                 \
	}                                                                                          \
	static void name##_del(struct kcpx_smux *s, struct stream *st)                             \
	{                                                                                          \
		if (!st->in_##name)                                                                \
			return;                                                                    \
		st->in_##name = false;                                                             \
		if (st->name.prev)                                                                 \
			st->name.prev->name.next = st->name.next;                                  \
		else                                                                               \
			s->name.head = st->name.next;                                              \
		if (st->name.next)                                                                 \
			st->name.next->name.prev = st->name.prev;                                  \
		else                                                                               \
			s->name.tail = st->name.prev;                                              \
		st->name.prev = st->name.next = NULL;                                              \
	}

LIST_FNS(ctrl)
LIST_FNS(data)
LIST_FNS(ev)
LIST_FNS(wait)

/* ---- stream table ---- */

static uint32_t hash_sid(const struct kcpx_smux *s, uint32_t sid)
{
	return (sid * 2654435761u) & (s->nbuckets - 1);
}

static struct stream *find(const struct kcpx_smux *s, uint32_t sid)
{
	struct stream *st = s->buckets[hash_sid(s, sid)];

	while (st && st->sid != sid)
		st = st->hnext;
	return st;
}

static void rehash(struct kcpx_smux *s)
{
	uint32_t n = s->nbuckets * 2, old = s->nbuckets;
	struct stream **nb = calloc(n, sizeof(*nb));
	struct stream **ob = s->buckets;

	if (!nb)
		return; /* keep the longer chains */
	s->buckets = nb;
	s->nbuckets = n;
	for (uint32_t i = 0; i < old; i++) {
		while (ob[i]) {
			struct stream *st = ob[i];
			uint32_t h = hash_sid(s, st->sid);

			ob[i] = st->hnext;
			st->hnext = nb[h];
			nb[h] = st;
		}
	}
	free(ob);
}

static struct stream *stream_new(struct kcpx_smux *s, uint32_t sid)
{
	struct stream *st = calloc(1, sizeof(*st));
	uint32_t h;

	if (!st)
		return NULL;
	st->sid = sid;
	st->peer_window = KCPX_SMUX_INITIAL_WINDOW;
	if (s->nstreams >= s->nbuckets)
		rehash(s);
	h = hash_sid(s, sid);
	st->hnext = s->buckets[h];
	s->buckets[h] = st;
	s->nstreams++;
	return st;
}

static void stream_free(struct kcpx_smux *s, struct stream *st)
{
	struct stream **pp = &s->buckets[hash_sid(s, st->sid)];

	while (*pp != st)
		pp = &(*pp)->hnext;
	*pp = st->hnext;
	ctrl_del(s, st);
	data_del(s, st);
	ev_del(s, st);
	wait_del(s, st);
	s->recv_used -= st->rbuf.len;
	s->send_used -= st->sbuf.len;
	bq_clear(s, &st->rbuf);
	bq_clear(s, &st->sbuf);
	if (st->local_closed)
		s->nclosing--;
	s->nstreams--;
	free(st);
}

static void post(struct kcpx_smux *s, struct stream *st, uint8_t bits)
{
	st->ev_bits |= bits;
	ev_add(s, st);
}

/* The stream's own limits (send buffer, v2 peer window); negative when the v2 peer
   consumed more than we wrote. */
static int64_t stream_room(const struct kcpx_smux *s, const struct stream *st)
{
	int64_t room = KCPX_SMUX_SNDBUF - (int64_t)st->sbuf.len;

	if (s->cfg.version == 2) {
		int32_t inflight = (int32_t)(st->num_written - st->peer_consumed);
		int64_t win = (int64_t)(int32_t)st->peer_window - inflight;

		room = KCPX_MIN(room, win);
	}
	return room;
}

static int64_t sess_room(const struct kcpx_smux *s)
{
	return (int64_t)s->cfg.max_send_buffer - (int64_t)s->send_used;
}

/* Bytes write() could take now. */
static int64_t write_room(const struct kcpx_smux *s, const struct stream *st)
{
	return KCPX_MIN(stream_room(s, st), sess_room(s));
}

/* Queued writers are woken once this much of the send budget is free. */
static int64_t wake_room(const struct kcpx_smux *s)
{
	return KCPX_MIN((int64_t)s->cfg.max_send_buffer / 4, (int64_t)16384);
}

/* A writer was refused: it waits for its own room (maybe_writable on output and UPD)
   or, when only the session's budget is short, in the queue. */
static void want_write(struct kcpx_smux *s, struct stream *st)
{
	st->want_write = true;
	if (!st->in_wait && stream_room(s, st) > 0) {
		s->cnt.send_waits++;
		wait_add(s, st);
	}
}

static void maybe_writable(struct kcpx_smux *s, struct stream *st)
{
	if (!st->want_write || st->local_closed)
		return;
	if (write_room(s, st) > 0 && !st->in_wait) {
		st->want_write = false;
		post(s, st, EV_WRITABLE);
	} else if (!st->in_wait && stream_room(s, st) > 0) {
		wait_add(s, st); /* its own room opened, the session's is short */
	}
}

/*
 * Deliver queued callbacks; safe against callbacks that open, close, read or write.
 * Writers queued for the send budget are woken one at a time, once the callbacks owed
 * are done, while the budget has room: each may use the room before the next is woken.
 */
static void flush_events(struct kcpx_smux *s)
{
	if (s->flushing)
		return;
	s->flushing = true;
	if (s->refused_n) {
		unsigned n = s->refused_n;

		s->refused_n = 0;
		if (s->ops.refused)
			s->ops.refused(s->user, s->refused_sid, n);
	}
	for (;;) {
		struct stream *st = s->ev.head;
		uint32_t sid;
		uint8_t bits;

		if (!st) {
			st = s->wait.head;
			if (!st || sess_room(s) < wake_room(s))
				break;
			wait_del(s, st);
			if (st->want_write && write_room(s, st) > 0) {
				st->want_write = false;
				post(s, st, EV_WRITABLE);
			}
			continue;
		}
		sid = st->sid;
		bits = st->ev_bits;

		st->ev_bits = 0;
		ev_del(s, st);
		if ((bits & EV_ACCEPT) && s->ops.accept)
			s->ops.accept(s->user, sid);
		if ((bits & EV_READABLE) && s->ops.readable) {
			st = find(s, sid);
			if (st && !st->local_closed)
				s->ops.readable(s->user, sid);
		}
		if ((bits & EV_WRITABLE) && s->ops.writable) {
			st = find(s, sid);
			if (st && !st->local_closed)
				s->ops.writable(s->user, sid);
		}
	}
	s->flushing = false;
}

/* ---- session ---- */

struct kcpx_smux *kcpx_smux_new(const struct kcpx_smux_config *cfg, const struct kcpx_smux_ops *ops,
				void *user, uint32_t now)
{
	struct kcpx_smux *s;

	if (!cfg || (cfg->version != 1 && cfg->version != 2) || cfg->max_frame > 65535)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->cfg = *cfg;
	if (!s->cfg.max_frame)
		s->cfg.max_frame = KCPX_SMUX_DEFAULT_FRAME;
	if (!s->cfg.max_recv_buffer)
		s->cfg.max_recv_buffer = KCPX_SMUX_DEFAULT_RECVBUF;
	if (!s->cfg.max_stream_buffer)
		s->cfg.max_stream_buffer = KCPX_SMUX_DEFAULT_STRMBUF;
	if (!s->cfg.max_send_buffer)
		s->cfg.max_send_buffer = KCPX_SMUX_DEFAULT_SENDBUF;
	if (!s->cfg.max_streams || s->cfg.max_streams > KCPX_SMUX_MAX_STREAMS)
		s->cfg.max_streams = KCPX_SMUX_MAX_STREAMS;
	s->pool = cfg->pool;
	if (!s->pool) {
		s->pool = kcpx_pool_new(kcpx_smux_pool_block(), BQ_CACHE_MAX);
		s->own_pool = true;
	}
	if (!s->pool || kcpx_pool_block(s->pool) != kcpx_smux_pool_block()) {
		if (s->own_pool)
			kcpx_pool_free(s->pool);
		free(s);
		return NULL;
	}
	if (ops)
		s->ops = *ops;
	s->user = user;
	s->nbuckets = 64;
	s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
	if (!s->buckets) {
		if (s->own_pool)
			kcpx_pool_free(s->pool);
		free(s);
		return NULL;
	}
	s->next_sid = cfg->client ? 1 : 0;
	s->last_rx = now;
	s->next_nop = now + s->cfg.keepalive_ms;
	return s;
}

void kcpx_smux_free(struct kcpx_smux *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; i < s->nbuckets; i++)
		while (s->buckets[i])
			stream_free(s, s->buckets[i]);
	free(s->buckets);
	if (s->own_pool)
		kcpx_pool_free(s->pool);
	free(s);
}

static void smux_kill(struct kcpx_smux *s, int err)
{
	if (!s->dead)
		s->dead = err;
}

static int proto_error(struct kcpx_smux *s)
{
	s->cnt.bad_frames++;
	smux_kill(s, -EPROTO);
	return -EPROTO;
}

static void orphan_fin(struct kcpx_smux *s, uint32_t sid)
{
	if (s->orphan_n < ORPHAN_FINS) {
		s->orphan[(s->orphan_head + s->orphan_n) % ORPHAN_FINS] = sid;
		s->orphan_n++;
	}
}

/* A whole header is in s->hdr. Returns 0 or -EPROTO / -ENOMEM. */
static int on_header(struct kcpx_smux *s)
{
	uint8_t ver = s->hdr[0], cmd = s->hdr[1];
	uint16_t len = kcpx_get_le16(s->hdr + 2);
	uint32_t sid = kcpx_get_le32(s->hdr + 4);
	struct stream *st;

	if (ver != s->cfg.version)
		return proto_error(s);
	switch (cmd) {
	case KCPX_SMUX_CMD_NOP:
		if (len)
			return proto_error(s);
		break;
	case KCPX_SMUX_CMD_SYN:
		if (len)
			return proto_error(s);
		if (find(s, sid)) {
			s->cnt.bad_frames++; /* duplicate SYN: ignored */
			break;
		}
		if (s->nstreams >= s->cfg.max_streams) {
			s->cnt.streams_refused++;
			s->refused_n++;
			s->refused_sid = sid;
			orphan_fin(s, sid);
			break;
		}
		st = stream_new(s, sid);
		if (!st) {
			smux_kill(s, -ENOMEM);
			return -ENOMEM;
		}
		s->cnt.streams_accepted++;
		post(s, st, EV_ACCEPT);
		break;
	case KCPX_SMUX_CMD_FIN:
		if (len)
			return proto_error(s);
		st = find(s, sid);
		if (st && !st->peer_fin) {
			st->peer_fin = true;
			if (!st->local_closed) {
				post(s, st, EV_READABLE);
				/* v2: no window update can follow, a blocked writer must learn it */
				if (st->want_write) {
					st->want_write = false;
					post(s, st, EV_WRITABLE);
				}
			}
		}
		break;
	case KCPX_SMUX_CMD_PSH:
		if (len) {
			s->pstate = P_PSH;
			s->psh_left = len;
			s->psh_sid = sid;
			s->psh_bad = false;
			return 0;
		}
		break;
	case KCPX_SMUX_CMD_UPD:
		if (s->cfg.version != 2 || len != KCPX_SMUX_UPD_LEN)
			return proto_error(s);
		s->pstate = P_UPD;
		return 0;
	default:
		return proto_error(s);
	}
	s->cnt.frames_in++;
	s->have = 0;
	return 0;
}

static void on_upd(struct kcpx_smux *s)
{
	uint32_t sid = kcpx_get_le32(s->hdr + 4);
	uint32_t consumed = kcpx_get_le32(s->hdr + KCPX_SMUX_HDR);
	uint32_t window = kcpx_get_le32(s->hdr + KCPX_SMUX_HDR + 4);
	struct stream *st = find(s, sid);

	s->cnt.frames_in++;
	if (!st || st->local_closed)
		return;
	if ((int32_t)(st->num_written - consumed) < 0) {
		/* smux fails the writer with ErrConsumed; we reset the stream's send side */
		s->cnt.bad_frames++;
		if (!st->broken) {
			st->broken = true;
			if (st->want_write) {
				st->want_write = false;
				post(s, st, EV_WRITABLE);
			}
		}
		return;
	}
	st->peer_consumed = consumed;
	st->peer_window = window;
	maybe_writable(s, st);
}

static int on_psh_bytes(struct kcpx_smux *s, const uint8_t *buf, uint32_t n)
{
	struct stream *st = find(s, s->psh_sid);
	size_t pushed;

	if (!st || st->local_closed) {
		if (!s->psh_bad) {
			s->psh_bad = true;
			s->cnt.bad_frames++;
		}
		return 0;
	}
	pushed = bq_push(s, &st->rbuf, buf, n);
	s->recv_used += pushed;
	if (pushed < n) {
		smux_kill(s, -ENOMEM);
		return -ENOMEM;
	}
	post(s, st, EV_READABLE);
	return 0;
}

ssize_t kcpx_smux_input(struct kcpx_smux *s, const uint8_t *buf, size_t len, uint32_t now)
{
	size_t pos = 0;
	int err = 0;

	if (s->dead)
		return s->dead;
	while (pos < len) {
		if (s->pstate == P_HDR) {
			uint32_t n;

			/* back-pressure between frames, as smux's token bucket does */
			if (s->have == 0 && s->recv_used >= s->cfg.max_recv_buffer)
				break;
			n = KCPX_MIN((size_t)(KCPX_SMUX_HDR - s->have), len - pos);
			memcpy(s->hdr + s->have, buf + pos, n);
			s->have += n;
			pos += n;
			if (s->have < KCPX_SMUX_HDR)
				break;
			s->last_rx = now;
			err = on_header(s);
			if (err)
				break;
		} else if (s->pstate == P_PSH) {
			uint32_t n = KCPX_MIN((size_t)s->psh_left, len - pos);

			err = on_psh_bytes(s, buf + pos, n);
			if (err)
				break;
			pos += n;
			s->psh_left -= n;
			if (!s->psh_left) {
				s->cnt.frames_in++;
				s->pstate = P_HDR;
				s->have = 0;
			}
		} else {
			uint32_t want = KCPX_SMUX_HDR + KCPX_SMUX_UPD_LEN;
			uint32_t n = KCPX_MIN((size_t)(want - s->have), len - pos);

			memcpy(s->hdr + s->have, buf + pos, n);
			s->have += n;
			pos += n;
			if (s->have < want)
				break;
			on_upd(s);
			s->pstate = P_HDR;
			s->have = 0;
		}
	}
	flush_events(s);
	return err ? err : (ssize_t)pos;
}

static void put_hdr(uint8_t *p, const struct kcpx_smux *s, uint8_t cmd, uint16_t len, uint32_t sid)
{
	p[0] = (uint8_t)s->cfg.version;
	p[1] = cmd;
	kcpx_put_le16(p + 2, len);
	kcpx_put_le32(p + 4, sid);
}

/* Smallest PSH payload worth cutting to fit the caller's room. */
#define MIN_CUT 256

size_t kcpx_smux_output(struct kcpx_smux *s, uint8_t *buf, size_t cap)
{
	size_t n = 0;

	if (s->dead)
		return 0;
	/* control frames, in order; stop rather than reorder when one does not fit */
	if (s->nop_pending) {
		if (cap - n < KCPX_SMUX_HDR)
			goto out;
		put_hdr(buf + n, s, KCPX_SMUX_CMD_NOP, 0, 0);
		n += KCPX_SMUX_HDR;
		s->cnt.frames_out++;
		s->nop_pending = false;
	}
	while (s->orphan_n) {
		if (cap - n < KCPX_SMUX_HDR)
			goto out;
		put_hdr(buf + n, s, KCPX_SMUX_CMD_FIN, 0, s->orphan[s->orphan_head]);
		n += KCPX_SMUX_HDR;
		s->cnt.frames_out++;
		s->orphan_head = (s->orphan_head + 1) % ORPHAN_FINS;
		s->orphan_n--;
	}
	while (s->ctrl.head) {
		struct stream *st = s->ctrl.head;

		if (st->syn_pending) {
			if (cap - n < KCPX_SMUX_HDR)
				goto out;
			put_hdr(buf + n, s, KCPX_SMUX_CMD_SYN, 0, st->sid);
			n += KCPX_SMUX_HDR;
			s->cnt.frames_out++;
			st->syn_pending = false;
		}
		if (st->upd_pending) {
			if (cap - n < KCPX_SMUX_HDR + KCPX_SMUX_UPD_LEN)
				goto out;
			put_hdr(buf + n, s, KCPX_SMUX_CMD_UPD, KCPX_SMUX_UPD_LEN, st->sid);
			kcpx_put_le32(buf + n + KCPX_SMUX_HDR, st->num_read);
			kcpx_put_le32(buf + n + KCPX_SMUX_HDR + 4, s->cfg.max_stream_buffer);
			n += KCPX_SMUX_HDR + KCPX_SMUX_UPD_LEN;
			s->cnt.frames_out++;
			st->upd_pending = false;
		}
		ctrl_del(s, st);
	}
	/* data: one frame per stream per turn */
	while (s->data.head) {
		struct stream *st = s->data.head;

		if (st->sbuf.len) {
			size_t full = KCPX_MIN(st->sbuf.len, (size_t)s->cfg.max_frame);
			size_t take;

			if (cap - n < KCPX_SMUX_HDR + 1)
				goto out;
			take = KCPX_MIN(full, cap - n - KCPX_SMUX_HDR);
			if (take < full && take < MIN_CUT)
				goto out;
			put_hdr(buf + n, s, KCPX_SMUX_CMD_PSH, (uint16_t)take, st->sid);
			bq_pop(s, &st->sbuf, buf + n + KCPX_SMUX_HDR, take);
			s->send_used -= take;
			n += KCPX_SMUX_HDR + take;
			s->cnt.frames_out++;
			maybe_writable(s, st);
			data_del(s, st);
			if (st->sbuf.len || st->fin_pending)
				data_add(s, st); /* back of the line */
			continue;
		}
		if (st->fin_pending) {
			if (cap - n < KCPX_SMUX_HDR)
				goto out;
			put_hdr(buf + n, s, KCPX_SMUX_CMD_FIN, 0, st->sid);
			n += KCPX_SMUX_HDR;
			s->cnt.frames_out++;
			st->fin_pending = false;
			stream_free(s, st); /* only closed streams owe a FIN */
			continue;
		}
		data_del(s, st);
	}
out:
	flush_events(s);
	return n;
}

bool kcpx_smux_output_pending(const struct kcpx_smux *s)
{
	if (s->dead)
		return false;
	return s->nop_pending || s->orphan_n || s->ctrl.head || s->data.head;
}

int kcpx_smux_open(struct kcpx_smux *s, uint32_t *sid)
{
	struct stream *st;
	uint32_t id;

	if (s->dead)
		return -EPIPE;
	if (s->go_away)
		return -EOVERFLOW;
	if (s->nstreams >= s->cfg.max_streams)
		return -EMFILE;
	do {
		s->next_sid += 2;
		id = s->next_sid;
		if (id < 2) { /* wrapped: like smux, this session opens no more */
			s->go_away = true;
			return -EOVERFLOW;
		}
	} while (find(s, id)); /* the peer already uses it */
	st = stream_new(s, id);
	if (!st)
		return -ENOMEM;
	st->syn_pending = true;
	ctrl_add(s, st);
	s->cnt.streams_opened++;
	*sid = id;
	return 0;
}

ssize_t kcpx_smux_write(struct kcpx_smux *s, uint32_t sid, const uint8_t *buf, size_t len)
{
	struct stream *st = find(s, sid);
	int64_t room;
	size_t take;

	if (s->dead || !st || st->local_closed || st->broken)
		return -EPIPE;
	if (!len)
		return 0;
	room = kcpx_smux_write_room(s, sid);
	if (room <= 0)
		return room ? room : -EAGAIN;
	take = bq_push(s, &st->sbuf, buf, KCPX_MIN(len, (size_t)room));
	if (!take)
		return -ENOMEM;
	st->num_written += (uint32_t)take;
	s->send_used += take;
	data_add(s, st);
	if (take < len)
		want_write(s, st);
	return (ssize_t)take;
}

ssize_t kcpx_smux_write_room(struct kcpx_smux *s, uint32_t sid)
{
	struct stream *st = find(s, sid);
	int64_t room;

	if (s->dead || !st || st->local_closed || st->broken)
		return -EPIPE;
	room = write_room(s, st);
	if (st->in_wait)
		room = 0; /* queued writers go first */
	if (room <= 0) {
		if (st->peer_fin && s->cfg.version == 2 && stream_room(s, st) <= 0 &&
		    st->sbuf.len < KCPX_SMUX_SNDBUF) /* the window can never reopen */
			return -EPIPE;
		want_write(s, st);
		return 0;
	}
	return (ssize_t)room;
}

/* n bytes left the stream's receive buffer: session room, and the v2 window update. */
static void consumed(struct kcpx_smux *s, struct stream *st, size_t n)
{
	s->recv_used -= n;
	if (s->cfg.version == 2) {
		/* UPD on the first read and whenever half the window has been read */
		st->num_read += (uint32_t)n;
		st->incr += (uint32_t)n;
		if (st->incr >= s->cfg.max_stream_buffer / 2 || st->num_read == (uint32_t)n) {
			st->incr = 0;
			st->upd_pending = true;
			ctrl_add(s, st);
		}
	}
}

ssize_t kcpx_smux_read(struct kcpx_smux *s, uint32_t sid, uint8_t *buf, size_t len)
{
	struct stream *st = find(s, sid);
	size_t n;

	if (!st || st->local_closed)
		return -EPIPE;
	if (!len)
		return 0;
	if (!st->rbuf.len)
		return st->peer_fin || s->dead ? 0 : -EAGAIN;
	n = bq_pop(s, &st->rbuf, buf, len);
	consumed(s, st, n);
	return (ssize_t)n;
}

ssize_t kcpx_smux_peek(struct kcpx_smux *s, uint32_t sid, struct iovec *iov, int *niov)
{
	struct stream *st = find(s, sid);
	struct bq_blk *b;
	uint32_t off;
	size_t total = 0;
	int i = 0;

	if (!st || st->local_closed) {
		*niov = 0;
		return -EPIPE;
	}
	if (!st->rbuf.len) {
		*niov = 0;
		return st->peer_fin || s->dead ? 0 : -EAGAIN;
	}
	off = st->rbuf.off;
	for (b = st->rbuf.head; b && i < *niov; b = b->next, off = 0) {
		iov[i].iov_base = b->data + off;
		iov[i].iov_len = b->len - off;
		total += iov[i].iov_len;
		i++;
	}
	*niov = i;
	return (ssize_t)total;
}

void kcpx_smux_consume(struct kcpx_smux *s, uint32_t sid, size_t n)
{
	struct stream *st = find(s, sid);

	if (!st || st->local_closed || !n)
		return;
	consumed(s, st, bq_pop(s, &st->rbuf, NULL, n));
}

size_t kcpx_smux_readable(const struct kcpx_smux *s, uint32_t sid)
{
	const struct stream *st = find(s, sid);

	return st && !st->local_closed ? st->rbuf.len : 0;
}

int kcpx_smux_close(struct kcpx_smux *s, uint32_t sid)
{
	struct stream *st = find(s, sid);

	if (!st || st->local_closed)
		return -ENOENT;
	st->local_closed = true;
	s->nclosing++;
	s->recv_used -= st->rbuf.len;
	bq_clear(s, &st->rbuf);
	st->upd_pending = false; /* nothing more will be read */
	if (!st->syn_pending)
		ctrl_del(s, st);
	ev_del(s, st);
	wait_del(s, st);
	st->ev_bits = 0;
	st->want_write = false;
	if (s->dead) {
		stream_free(s, st);
		return 0;
	}
	st->fin_pending = true;
	data_add(s, st);
	return 0;
}

void kcpx_smux_set_keepalive(struct kcpx_smux *s, uint32_t keepalive_ms, uint32_t timeout_ms,
			     uint32_t now)
{
	s->cfg.keepalive_ms = keepalive_ms;
	s->cfg.keepalive_timeout_ms = timeout_ms;
	s->next_nop = now + keepalive_ms;
	/* a shorter timeout must not kill a session that was fine under the old one */
	if (timeout_ms && kcpx_diff32(now, s->last_rx) > 0)
		s->last_rx = now;
}

void kcpx_smux_tick(struct kcpx_smux *s, uint32_t now)
{
	if (s->dead)
		return;
	if (s->cfg.keepalive_ms && kcpx_diff32(now, s->next_nop) >= 0) {
		s->nop_pending = true;
		s->next_nop += s->cfg.keepalive_ms;
		if (kcpx_diff32(s->next_nop, now) <= 0)
			s->next_nop = now + s->cfg.keepalive_ms;
	}
	if (s->cfg.keepalive_timeout_ms) {
		/* a session we stopped reading (buffer full) is not a dead peer */
		if (s->recv_used >= s->cfg.max_recv_buffer)
			s->last_rx = now;
		else if (kcpx_diff32(now, s->last_rx) >= (int32_t)s->cfg.keepalive_timeout_ms)
			smux_kill(s, -ETIMEDOUT);
	}
	flush_events(s);
}

uint32_t kcpx_smux_deadline(const struct kcpx_smux *s, uint32_t now)
{
	uint32_t d = now + 3600000;

	if (s->dead)
		return d;
	if (s->cfg.keepalive_ms && kcpx_diff32(s->next_nop, d) < 0)
		d = s->next_nop;
	if (s->cfg.keepalive_timeout_ms) {
		uint32_t t = s->last_rx + s->cfg.keepalive_timeout_ms;

		if (kcpx_diff32(t, d) < 0)
			d = t;
	}
	if (kcpx_diff32(d, now) < 0)
		d = now;
	return d;
}

bool kcpx_smux_dead(const struct kcpx_smux *s)
{
	return s->dead != 0;
}

unsigned kcpx_smux_num_streams(const struct kcpx_smux *s)
{
	return s->nstreams - s->nclosing;
}

void kcpx_smux_buffered(const struct kcpx_smux *s, size_t *recv, size_t *send)
{
	*recv = s->recv_used;
	*send = s->send_used;
}

void kcpx_smux_counters(const struct kcpx_smux *s, struct kcpx_smux_counters *c)
{
	*c = s->cnt;
}
