// SPDX-License-Identifier: MIT
/*
 * --threads N: one engine per thread. Each thread owns a whole struct tunnel (loop,
 * sockets, endpoint, sessions, pools, counters); the kernel decides which thread a
 * datagram reaches (the server's SO_REUSEPORT group steers by source port, udp.c; a
 * client's sessions each have their own socket), and the session lives there.
 *
 * What crosses threads, and how:
 *   - thread 0 (signals, control socket, --metrics, service status) reads and reloads the
 *     others under their turn lock (tunnel.mu, io/loop.h), never on their packet path;
 *   - the sid directory: which thread holds a native session. Written when a good INIT
 *     for a sid no thread holds arrives (the receiving thread claims it: copies of that
 *     INIT on other threads go to it, kcpx_shard_sid_claim) and when a native session
 *     opens or closes; read for a DATA packet whose sid the receiving thread does not
 *     know (a client whose NAT moved it to another source port, which the steering
 *     sends to another thread);
 *   - the peer directory: which thread holds the session opened with a peer address.
 *     Written when a kcptun-format datagram is about to open a session (the receiving
 *     thread claims the address: copies of the peer's first datagrams on other threads
 *     go to it, kcpx_shard_peer_claim) and when a server session opens or closes (but
 *     for one the endpoint replaces with a new kcptun-format session for the same
 *     address: the claim passes to the new one, kcpx_ep_sess_replaced), read
 *     for a datagram from an address the receiving thread has no session with. kcptun's
 *     format names no sid: its sessions are known by address, and when the NIC moves a
 *     peer's datagrams to another RX queue (an RSS change under `kcpx up`) they go on to
 *     the owner instead of opening a second session there. (A native session that
 *     roamed keeps its first address here; a datagram from that address is handed
 *     over, the owner does not know it either and takes it as new, as the receiver
 *     would have.)
 *   - such a packet is copied into the owner's inbox (bounded, under its own small lock)
 *     and the owner wakes through an eventfd; the owner's endpoint then checks it as any
 *     packet (tag, replay window) and, when it is fresh, moves the session to the new
 *     address (issue 12's roaming). Replies leave from the owner's socket, bound to the
 *     same address and port.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <sodium.h>

#include "app/log.h"
#include "app/tunnel_int.h"
#include "io/clock.h"

#define INBOX_MAX 1024 /* datagrams waiting for one thread; more are dropped (counted) */

/* from: the peer; bound: the address of the receiving backend (the owner answers on its
 * own backend bound to it); local: our address the datagram was sent to, so that the
 * owner answers from it as the receiver would have (family 0: not known). */
struct handoff {
	struct handoff *next;
	struct kcpx_addr from, bound;
	struct kcpx_ip local;
	uint32_t len;
	uint8_t buf[];
};

struct dir_ent {
	struct dir_ent *next;
	uint32_t sid;
	unsigned shard;
};

struct peer_ent {
	struct peer_ent *next;
	struct kcpx_addr a;
	unsigned shard;
};

struct kcpx_shards {
	unsigned n;
	struct tunnel **t;
	pthread_t *th;
	pthread_rwlock_t dirlock; /* both directories */
	struct dir_ent **dir;
	unsigned dircap, ndir; /* dircap: a power of 2; doubles past one entry per bucket */
	struct peer_ent **peers;
	unsigned peercap, npeers; /* as dircap, ndir */
	uint32_t seed;		  /* of the peer directory's hash */
};

int kcpx_shards_new(struct kcpx_shards **out, unsigned n)
{
	struct kcpx_shards *g = calloc(1, sizeof(*g));

	if (!g)
		return -ENOMEM;
	g->n = n;
	g->dircap = 256;
	g->peercap = 256;
	g->t = calloc(n, sizeof(*g->t));
	g->th = calloc(n, sizeof(*g->th));
	g->dir = calloc(g->dircap, sizeof(*g->dir));
	g->peers = calloc(g->peercap, sizeof(*g->peers));
	randombytes_buf(&g->seed, sizeof(g->seed)); /* chains a sender cannot aim at */
	if (!g->t || !g->th || !g->dir || !g->peers) {
		kcpx_shards_free(g);
		return -ENOMEM;
	}
	pthread_rwlock_init(&g->dirlock, NULL);
	*out = g;
	return 0;
}

void kcpx_shards_free(struct kcpx_shards *g)
{
	if (!g)
		return;
	for (unsigned i = 0; g->dir && i < g->dircap; i++) {
		while (g->dir[i]) {
			struct dir_ent *e = g->dir[i];

			g->dir[i] = e->next;
			free(e);
		}
	}
	for (unsigned i = 0; g->peers && i < g->peercap; i++) {
		while (g->peers[i]) {
			struct peer_ent *e = g->peers[i];

			g->peers[i] = e->next;
			free(e);
		}
	}
	free(g->peers);
	free(g->dir);
	free(g->t);
	free(g->th);
	free(g);
}

static void inbox_drain(struct kcpx_watch *w, uint32_t events)
{
	struct tunnel *t = (struct tunnel *)((char *)w - offsetof(struct tunnel, inw));
	uint32_t now = kcpx_clock_ms();
	struct handoff *h;
	uint64_t v;

	(void)events;
	(void)!read(w->fd, &v, sizeof(v));
	pthread_mutex_lock(&t->inmu);
	h = t->inbox;
	t->inbox = NULL;
	t->ninbox = 0;
	pthread_mutex_unlock(&t->inmu);
	/* the list is newest first: feed it oldest first, as it arrived */
	for (struct handoff *rev = NULL, *next;; h = next) {
		if (!h) {
			h = rev;
			break;
		}
		next = h->next;
		h->next = rev;
		rev = h;
	}
	t->in_handoff = true;
	while (h) {
		struct handoff *next = h->next;
		struct dg *g = t->dgs;

		for (struct dg *x = t->dgs; x; x = x->next) {
			if (kcpx_addr_equal(&x->d->local, &h->bound)) {
				g = x;
				break;
			}
		}
		if (g && !t->stopping) {
			t->handed_in++;
			kcpx_ep_input_at(t->ep, NULL, g, &h->from, &h->local, h->buf, h->len, now);
		}
		free(h);
		h = next;
	}
	t->in_handoff = false;
}

int kcpx_shard_join(struct kcpx_shards *g, struct tunnel *t)
{
	int fd, err;

	t->group = g;
	g->t[t->shard] = t;
	pthread_mutex_init(&t->inmu, NULL);
	fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	t->inw.fn = inbox_drain;
	err = kcpx_loop_add(t->loop, &t->inw, fd, EPOLLIN);
	if (err) {
		close(fd);
		t->inw.fd = -1;
	}
	return err;
}

void kcpx_shard_leave(struct tunnel *t)
{
	if (!t->group)
		return;
	if (t->inw.fd >= 0) {
		kcpx_loop_del(t->loop, &t->inw);
		close(t->inw.fd);
		t->inw.fd = -1;
	}
	while (t->inbox) {
		struct handoff *h = t->inbox;

		t->inbox = h->next;
		free(h);
	}
	t->group->t[t->shard] = NULL;
	pthread_mutex_destroy(&t->inmu);
}

void kcpx_shard_poke(struct tunnel *t)
{
	uint64_t one = 1;

	if (t->inw.fd >= 0)
		(void)!write(t->inw.fd, &one, sizeof(one));
}

int kcpx_shards_start(struct kcpx_shards *g, void *(*run)(void *), unsigned *started)
{
	*started = 1;
	for (unsigned i = 1; i < g->n; i++) {
		int err = pthread_create(&g->th[i], NULL, run, g->t[i]);

		if (err)
			return -err;
		*started = i + 1;
	}
	return 0;
}

void kcpx_shards_stop(struct kcpx_shards *g, unsigned started)
{
	for (unsigned i = 1; i < started; i++) {
		struct tunnel *t = g->t[i];

		kcpx_loop_lock(t->loop);
		t->stopping = true;
		kcpx_loop_stop(t->loop);
		pthread_mutex_unlock(&t->mu);
		kcpx_shard_poke(t);
	}
	for (unsigned i = 1; i < started; i++)
		pthread_join(g->th[i], NULL);
}

unsigned kcpx_shard_count(const struct tunnel *t)
{
	return t->group ? t->group->n : 1;
}

struct tunnel *kcpx_shard_get(struct tunnel *self, unsigned i)
{
	struct tunnel *o = self->group ? self->group->t[i] : self;

	if (o && o != self)
		kcpx_loop_lock(o->loop);
	return o;
}

void kcpx_shard_put(struct tunnel *self, struct tunnel *other)
{
	if (other && other != self)
		pthread_mutex_unlock(&other->mu);
}

void kcpx_shard_snmp(struct tunnel *self, struct kcpx_snmp *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < kcpx_shard_count(self); i++) {
		struct tunnel *o = kcpx_shard_get(self, i);
		const __u64 *src = (const __u64 *)&o->snmp;
		__u64 *dst = (__u64 *)out;

		for (size_t k = 0; k < KCPX_SNMP_COUNT; k++)
			dst[k] += src[k];
		kcpx_shard_put(self, o);
	}
}

/* ---- the sid directory ------------------------------------------------------------ */

static unsigned dir_bucket(const struct kcpx_shards *g, uint32_t sid)
{
	return (sid * 2654435761u) >> 8 & (g->dircap - 1);
}

static void dir_grow(struct kcpx_shards *g)
{
	unsigned cap = g->dircap * 2;
	struct dir_ent **nd = calloc(cap, sizeof(*nd));

	if (!nd)
		return; /* chains get longer; lookups stay right */
	for (unsigned i = 0; i < g->dircap; i++) {
		while (g->dir[i]) {
			struct dir_ent *e = g->dir[i];
			unsigned b;

			g->dir[i] = e->next;
			b = (e->sid * 2654435761u) >> 8 & (cap - 1);
			e->next = nd[b];
			nd[b] = e;
		}
	}
	free(g->dir);
	g->dir = nd;
	g->dircap = cap;
}

/* Under the write lock: sid is thread shard's (out of memory: not recorded, and a DATA
 * packet for it reaching another thread gets a RESET, the client opens a new session). */
static void dir_insert(struct kcpx_shards *g, uint32_t sid, unsigned shard)
{
	struct dir_ent *e = malloc(sizeof(*e));
	unsigned b;

	if (!e)
		return;
	if (g->ndir >= g->dircap)
		dir_grow(g);
	b = dir_bucket(g, sid);
	e->sid = sid;
	e->shard = shard;
	e->next = g->dir[b];
	g->dir[b] = e;
	g->ndir++;
}

void kcpx_shard_dir_set(struct tunnel *t, uint32_t sid)
{
	struct kcpx_shards *g = t->group;
	struct dir_ent *e;

	if (!g)
		return;
	pthread_rwlock_wrlock(&g->dirlock);
	for (e = g->dir[dir_bucket(g, sid)]; e; e = e->next)
		if (e->sid == sid)
			break;
	/* claimed by t already (kcpx_shard_sid_claim), or nobody's (no claim was asked);
	 * held by another thread all the same: the newest session is its client's */
	if (e)
		e->shard = t->shard;
	else
		dir_insert(g, sid, t->shard);
	pthread_rwlock_unlock(&g->dirlock);
}

void kcpx_shard_dir_del(struct tunnel *t, uint32_t sid)
{
	struct kcpx_shards *g = t->group;

	if (!g)
		return;
	pthread_rwlock_wrlock(&g->dirlock);
	for (struct dir_ent **pp = &g->dir[dir_bucket(g, sid)]; *pp; pp = &(*pp)->next) {
		struct dir_ent *e = *pp;

		if (e->sid != sid)
			continue;
		if (e->shard == t->shard) {
			*pp = e->next;
			free(e);
			g->ndir--;
		}
		break;
	}
	pthread_rwlock_unlock(&g->dirlock);
}

/* The datagram to thread owner's inbox (true), or false when that is t itself or gone. */
static bool handoff(struct tunnel *t, unsigned owner, void *path, const struct kcpx_addr *from,
		    const struct kcpx_ip *local, const uint8_t *d, size_t n)
{
	struct kcpx_shards *g = t->group;
	struct handoff *h;
	struct dg *p = path;
	struct tunnel *o;

	if (owner >= g->n || owner == t->shard)
		return false;
	o = g->t[owner];
	if (!o)
		return false;
	h = malloc(sizeof(*h) + n);
	if (!h) {
		t->handoff_drop++;
		return true;
	}
	h->from = *from;
	h->bound = p->d->local;
	if (local)
		h->local = *local;
	else
		h->local.family = 0;
	h->len = (uint32_t)n;
	memcpy(h->buf, d, n);
	pthread_mutex_lock(&o->inmu);
	if (o->ninbox >= INBOX_MAX) {
		pthread_mutex_unlock(&o->inmu);
		free(h);
		t->handoff_drop++;
		return true;
	}
	h->next = o->inbox;
	o->inbox = h;
	o->ninbox++;
	pthread_mutex_unlock(&o->inmu);
	t->handed_out++;
	kcpx_shard_poke(o);
	return true;
}

bool kcpx_shard_foreign(void *user, void *path, const struct kcpx_addr *from,
			const struct kcpx_ip *local, const uint8_t *d, size_t n, uint32_t sid)
{
	struct tunnel *t = user;
	struct kcpx_shards *g = t->group;
	unsigned owner = ~0u;

	if (!g || t->in_handoff)
		return false; /* handed over once: the owner decides, no ping-pong */
	pthread_rwlock_rdlock(&g->dirlock);
	for (struct dir_ent *e = g->dir[dir_bucket(g, sid)]; e; e = e->next) {
		if (e->sid == sid) {
			owner = e->shard;
			break;
		}
	}
	pthread_rwlock_unlock(&g->dirlock);
	return handoff(t, owner, path, from, local, d, n);
}

/*
 * A good INIT for a sid t has no session for. Copies of one INIT reach several threads
 * when the NIC puts them on different RX queues (under `kcpx up` a client's first
 * datagram may leave through its kernel socket and the resend through its AF_XDP queue;
 * a NAT rebinding between the two): whichever thread claims the sid first opens the
 * session, under the directory's write lock, and the others hand their copies to it.
 * Two sessions with one sid would each write their own keys into XDP's session map,
 * and the client's DATA would fail XDP's tag check with the keys it does not hold.
 */
bool kcpx_shard_sid_claim(void *user, void *path, const struct kcpx_addr *from,
			  const struct kcpx_ip *local, const uint8_t *d, size_t n, uint32_t sid)
{
	struct tunnel *t = user;
	struct kcpx_shards *g = t->group;
	unsigned owner = ~0u;
	struct dir_ent *e;

	if (!g)
		return false;
	pthread_rwlock_wrlock(&g->dirlock);
	for (e = g->dir[dir_bucket(g, sid)]; e; e = e->next)
		if (e->sid == sid)
			break;
	if (e && e->shard != t->shard)
		owner = e->shard;
	else if (!e)
		dir_insert(g, sid, t->shard);
	pthread_rwlock_unlock(&g->dirlock);
	if (owner != ~0u && t->in_handoff) {
		/* handed here, and claimed by a third thread since: the client resends */
		t->handoff_drop++;
		return true;
	}
	return handoff(t, owner, path, from, local, d, n);
}

void kcpx_shard_sid_release(void *user, uint32_t sid)
{
	kcpx_shard_dir_del(user, sid);
}

/* ---- the peer directory ----------------------------------------------------------- */

static unsigned peer_bucket(const struct kcpx_shards *g, unsigned cap, const struct kcpx_addr *a)
{
	return kcpx_addr_hash(a, g->seed) & (cap - 1);
}

static void peer_grow(struct kcpx_shards *g)
{
	unsigned cap = g->peercap * 2;
	struct peer_ent **nd = calloc(cap, sizeof(*nd));

	if (!nd)
		return; /* chains get longer; lookups stay right */
	for (unsigned i = 0; i < g->peercap; i++) {
		while (g->peers[i]) {
			struct peer_ent *e = g->peers[i];
			unsigned b = peer_bucket(g, cap, &e->a);

			g->peers[i] = e->next;
			e->next = nd[b];
			nd[b] = e;
		}
	}
	free(g->peers);
	g->peers = nd;
	g->peercap = cap;
}

/* Under the write lock: a's entry, made for thread shard if there is none (NULL: out of
 * memory, not recorded). */
static struct peer_ent *peer_get(struct kcpx_shards *g, const struct kcpx_addr *a, unsigned shard)
{
	struct peer_ent *e;
	unsigned b;

	for (e = g->peers[peer_bucket(g, g->peercap, a)]; e; e = e->next)
		if (kcpx_addr_equal(&e->a, a))
			return e;
	e = malloc(sizeof(*e));
	if (!e)
		return NULL;
	if (g->npeers >= g->peercap)
		peer_grow(g);
	b = peer_bucket(g, g->peercap, a);
	e->a = *a;
	e->shard = shard;
	e->next = g->peers[b];
	g->peers[b] = e;
	g->npeers++;
	return e;
}

bool kcpx_shard_peer_set(struct tunnel *t, const struct kcpx_addr *a)
{
	struct kcpx_shards *g = t->group;
	struct peer_ent *e;

	if (!g)
		return false;
	pthread_rwlock_wrlock(&g->dirlock);
	e = peer_get(g, a, t->shard);
	/* claimed by t already (kcpx_shard_peer_claim), or one address with a session on
	 * two threads (the first one closing): the newest */
	if (e)
		e->shard = t->shard;
	pthread_rwlock_unlock(&g->dirlock);
	return e != NULL;
}

void kcpx_shard_peer_del(struct tunnel *t, const struct kcpx_addr *a)
{
	struct kcpx_shards *g = t->group;

	if (!g)
		return;
	pthread_rwlock_wrlock(&g->dirlock);
	for (struct peer_ent **pp = &g->peers[peer_bucket(g, g->peercap, a)]; *pp;
	     pp = &(*pp)->next) {
		struct peer_ent *e = *pp;

		if (!kcpx_addr_equal(&e->a, a))
			continue;
		if (e->shard == t->shard) {
			*pp = e->next;
			free(e);
			g->npeers--;
		}
		break;
	}
	pthread_rwlock_unlock(&g->dirlock);
}

bool kcpx_shard_foreign_peer(void *user, void *path, const struct kcpx_addr *from,
			     const struct kcpx_ip *local, const uint8_t *d, size_t n)
{
	struct tunnel *t = user;
	struct kcpx_shards *g = t->group;
	unsigned owner = ~0u;

	if (!g || t->in_handoff)
		return false;
	pthread_rwlock_rdlock(&g->dirlock);
	for (struct peer_ent *e = g->peers[peer_bucket(g, g->peercap, from)]; e; e = e->next) {
		if (kcpx_addr_equal(&e->a, from)) {
			owner = e->shard;
			break;
		}
	}
	pthread_rwlock_unlock(&g->dirlock);
	return handoff(t, owner, path, from, local, d, n);
}

/*
 * A kcptun-format datagram about to open a session with from on t, which no thread held
 * when foreign_peer looked. Copies of a peer's first datagrams reach several threads at
 * once when the NIC puts them on different RX queues (or a client's datagrams move
 * between them): the first thread to claim the address opens the session, the others
 * hand their copies to it (foreign_peer finds the claim). Two sessions with one address
 * would each take the datagrams of their own queue, half a conversation each. Out of
 * memory: not recorded, the session opens as before.
 */
bool kcpx_shard_peer_claim(void *user, void *path, const struct kcpx_addr *from,
			   const struct kcpx_ip *local, const uint8_t *d, size_t n)
{
	struct tunnel *t = user;
	struct kcpx_shards *g = t->group;
	unsigned owner = ~0u;
	struct peer_ent *e;

	if (!g)
		return false;
	pthread_rwlock_wrlock(&g->dirlock);
	e = peer_get(g, from, t->shard);
	if (e && e->shard != t->shard)
		owner = e->shard;
	pthread_rwlock_unlock(&g->dirlock);
	if (owner != ~0u && t->in_handoff) {
		/* handed here, and claimed by a third thread since: the peer resends */
		t->handoff_drop++;
		return true;
	}
	return handoff(t, owner, path, from, local, d, n);
}

void kcpx_shard_peer_release(void *user, const struct kcpx_addr *from)
{
	kcpx_shard_peer_del(user, from);
}
