/* SPDX-License-Identifier: MIT */
/*
 * The tunnel's parts inside user/app (not for other modules):
 *   tunnel.c  setup, the event loop's turn (pump sessions, flush, reap), timers, signals
 *   sess.c    the app's half of a session: the endpoint's callbacks, the client's choice
 *             of a session for a new stream
 *   path.c    datagram backends as the loop watches them: open/refcount, receive into
 *             the endpoint, batched send
 *   conn.c    TCP connections <-> smux streams, the client's TCP listener
 *   report.c  the status table (SIGUSR1, `kcpx status` over the control socket)
 *   shard.c   --threads: one struct tunnel per thread, the sid directory and the hand-over
 *             of a datagram that reached the wrong thread, sums of the threads' counters
 * The protocol rules (which datagram may do what to which session) are in core/endpoint.
 */
#ifndef KCPX_APP_TUNNEL_INT_H
#define KCPX_APP_TUNNEL_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "app/tunnel.h"
#include "core/endpoint.h"
#include "io/addr.h"
#include "io/loop.h"
#include "io/tcp.h"

#define RX_BATCH       64
#define TX_BATCH       64
#define KCPX_CONN_READ 65536 /* most one TCP read takes (into the tunnel's scratch) */

struct tunnel;
struct sess;
struct conn;

/* A datagram backend as the tunnel watches it, with its batched TX queue. */
struct dg {
	struct tunnel *t;
	struct kcpx_dgram *d;
	struct kcpx_watch w;
	struct kcpx_watch cw; /* d->cfd, when d->ops->ctl */
	int refs;
	struct sess *owner; /* client over UDP: the one session on this socket */
	struct kcpx_pkt tx[TX_BATCH];
	int ntx;
	bool txq;	/* on the tunnel's list of backends with datagrams to flush */
	bool ld_walked; /* path_local_drop walked the sessions ... */
	uint32_t ld_ts; /* ... at this ms */
	/* receive drops (path_rx_drops): d->rx_drops already shared out, datagrams read
	 * since, and when the sessions were last walked for them */
	uint32_t rxd_seen, rxd_ts;
	uint64_t rxd_read;
	uint8_t *txmem;
	struct dg *next;
	struct dg *txnext;
};

/* The app's half of a session (the endpoint holds the protocol half). */
struct sess {
	struct tunnel *t;
	struct kcpx_ep_sess *es;
	struct kcpx_session *ks;
	struct dg *dg;
	struct kcpx_timer timer;
	bool dirty;
	bool closing;
	struct conn **streams; /* hash by stream id */
	unsigned nstreams, cap;
	struct sess *dnext;	  /* dirty list */
	uint32_t opened;	  /* ms: kcpx_clock_ms() when the session was opened */
	bool no_answer_told;	  /* client: the "no answer" hint was logged */
	bool fec_told;		  /* the --datashard/--parityshard mismatch hint was logged */
	bool in_peer_dir;	  /* server, --threads: peer_at is in the peer directory */
	struct kcpx_addr peer_at; /* the peer's address when the session opened */
	uint64_t rxd_pkts;	  /* its datagrams in at the last share-out of drops ... */
	uint32_t rxd_rest;	  /* ... and what it was owed of them below one, x 65536 */
};

struct kcpx_resolver;

/* A `kcpx status` connection waiting for its request line (report.c). */
#define CTL_PENDING 4
struct ctl_req {
	struct kcpx_watch w;
	struct tunnel *t;
	unsigned long seq; /* 0: slot free; else the order it came in (oldest goes first) */
};

struct tunnel {
	const struct kcpx_config *cfg;
	const struct kcpx_tunnel_backend *be;
	struct kcpx_loop *loop;
	struct kcpx_crypt *crypt;
	struct kcpx_native_psk *psk; /* NULL with --proto kcptun */
	struct kcpx_ep *ep;
	struct kcpx_snmp snmp;
	struct kcpx_addr laddr;	 /* client: TCP listen; server: UDP listen */
	struct kcpx_addr remote; /* client: port is the lowest of remoteaddr's range;
				  * AF_UNSPEC until --remoteaddr resolves */
	unsigned remote_hi;	 /* client: highest port (kcptun's "host:lo-hi") */
	uint32_t resolve_at;	 /* client: when --remoteaddr was last looked up */
	bool resolve_failed;
	struct kcpx_resolver *resolver; /* client: --remoteaddr is a name (else NULL) */
	struct kcpx_target target;
	struct kcpx_watch lw;  /* client TCP listener */
	struct kcpx_watch rxw; /* client: the backend's rx_fd (not ours to close) */
	struct kcpx_watch sigw;
	struct kcpx_watch ctlw; /* /run/kcpx/<pid>.sock for `kcpx status` */
	/* out of fds (EMFILE/ENFILE): a listener is unwatched until the next second, so a
	 * readable listener that accept() cannot empty does not spin the loop */
	bool lw_paused, ctlw_paused;
	char ctlpath[108];
	struct ctl_req ctlreq[CTL_PENDING];
	unsigned long ctlreq_seq;
	struct kcpx_timer sectimer;
	unsigned ticks;
	struct dg *dgs;
	struct dg *txq; /* backends with datagrams batched */
	struct sess *dirty;
	struct conn *ready;
	struct conn *garbage_c;
	uint8_t *rxmem;
	struct kcpx_pkt rx[RX_BATCH];
	uint8_t *scratch; /* KCPX_CONN_READ bytes: one TCP read on its way into smux */
	struct kcpx_pool *blocks, *chunks; /* shared by all sessions (core/pool.h) */
	uint64_t pool_frees;		   /* pool bytes back to malloc at the last malloc_trim */
	unsigned nconns;		   /* TCP connections open */
	uint64_t streams_refused;	   /* over --maxstreams or --sessstreams */
	uint64_t tx_dropped;
	uint64_t rx_dropped;	       /* datagrams the host dropped before a backend read them */
	uint64_t diag_bad, diag_told;  /* diag.c: failed checks seen, and at the last report */
	uint64_t seccomp_told;	       /* syscalls the filter refused, at the last report */
	uint32_t keepalive_timeout_ms; /* smux gives a silent session up after this; 0: never */
	struct kcpx_metrics *metrics;  /* --metrics */
	bool stopping;
	/*
	 * --threads (shard.c). Each thread runs one struct tunnel with its own loop, sockets,
	 * endpoint and sessions; its loop holds mu except while waiting in epoll, so thread 0
	 * (signals, control socket, metrics) reads or reloads another thread's state under
	 * mu between two of its turns. Nothing else is shared on the packet path but the
	 * server's per-source admission limits (lim, lock-free: endpoint.h).
	 */
	unsigned shard;			  /* this thread's index, 0: the main thread */
	struct kcpx_shards *group;	  /* NULL: one thread */
	bool psk_borrowed;		  /* psk belongs to thread 0 */
	struct kcpx_ep_limits limits;	  /* thread 0 of a server: the process's */
	const struct kcpx_ep_limits *lim; /* server: thread 0's limits */
	pthread_mutex_t mu;
	unsigned maxstreams; /* this thread's share of --maxstreams (0: no limit) */
	unsigned port_hint;  /* client: the next session's place among all (udp.h port_hint) */
	/* datagrams other threads handed over (a native session's peer moved and its
	 * packets now reach another thread): taken under inmu, woken through evfd */
	struct kcpx_watch inw;
	pthread_mutex_t inmu;
	struct handoff *inbox;
	unsigned ninbox;
	bool in_handoff;			      /* feeding one of those to the endpoint */
	uint64_t handed_out, handed_in, handoff_drop; /* counted by the thread that did it */
};

/* shard.c */
struct kcpx_shards;
int kcpx_shards_new(struct kcpx_shards **out, unsigned n);
void kcpx_shards_free(struct kcpx_shards *g);
/* t joins g as thread t->shard: its inbox, its wake-up fd in its loop. */
int kcpx_shard_join(struct kcpx_shards *g, struct tunnel *t);
void kcpx_shard_leave(struct tunnel *t);
/* Start threads 1..n-1 (each runs its loop); stop and join them. */
int kcpx_shards_start(struct kcpx_shards *g, void *(*run)(void *), unsigned *started);
void kcpx_shards_stop(struct kcpx_shards *g, unsigned started);
unsigned kcpx_shard_count(const struct tunnel *t);
/* Thread i's tunnel, locked unless it is self's own; give it back with kcpx_shard_put. */
struct tunnel *kcpx_shard_get(struct tunnel *self, unsigned i);
void kcpx_shard_put(struct tunnel *self, struct tunnel *other);
/* Server: native sid -> thread directory (sess.c's native_up/down). */
void kcpx_shard_dir_set(struct tunnel *t, uint32_t sid);
void kcpx_shard_dir_del(struct tunnel *t, uint32_t sid);
/* The peer directory: which thread holds the session opened with an address (server). */
bool kcpx_shard_peer_set(struct tunnel *t, const struct kcpx_addr *a);
void kcpx_shard_peer_del(struct tunnel *t, const struct kcpx_addr *a);
bool kcpx_shard_foreign_peer(void *user, void *path, const struct kcpx_addr *from,
			     const struct kcpx_ip *local, const uint8_t *d, size_t n);
/* The endpoint's peer_claim and peer_release ops: an address about to open a
 * kcptun-format session, this thread's or handed to the thread that claimed it first;
 * given back when no session opened (also the claim a replaced session kept). */
bool kcpx_shard_peer_claim(void *user, void *path, const struct kcpx_addr *from,
			   const struct kcpx_ip *local, const uint8_t *d, size_t n);
void kcpx_shard_peer_release(void *user, const struct kcpx_addr *from);
/* The endpoint's foreign op: hand a DATA packet to the thread whose session has sid. */
bool kcpx_shard_foreign(void *user, void *path, const struct kcpx_addr *from,
			const struct kcpx_ip *local, const uint8_t *d, size_t n, uint32_t sid);
/* The endpoint's sid_claim and sid_release ops: a good INIT's sid, this thread's or
 * handed to the thread that claimed it first. */
bool kcpx_shard_sid_claim(void *user, void *path, const struct kcpx_addr *from,
			  const struct kcpx_ip *local, const uint8_t *d, size_t n, uint32_t sid);
void kcpx_shard_sid_release(void *user, uint32_t sid);
/* Wake thread t's loop (a turn runs its idle work: dirty sessions). */
void kcpx_shard_poke(struct tunnel *t);
/* Every thread's SNMP counters summed (the one thread's own without --threads). */
void kcpx_shard_snmp(struct tunnel *self, struct kcpx_snmp *out);

/* sess.c */
extern const struct kcpx_ep_ops kcpx_tun_ep_ops; /* the endpoint's callbacks */
void kcpx_tun_sess_mark(struct sess *s);
struct sess *kcpx_tun_client_session(struct tunnel *t); /* for a new stream, or NULL */

/* path.c */
struct dg *kcpx_path_get(struct tunnel *t, const struct kcpx_addr *bind,
			 const struct kcpx_addr *peer);
void kcpx_path_put(struct tunnel *t, struct dg *g);
void kcpx_path_xmit(struct dg *g, const struct kcpx_addr *to, const struct kcpx_ip *from,
		    const uint8_t *d, size_t n);
void kcpx_path_flush(struct dg *g);
void kcpx_path_flush_all(struct tunnel *t); /* those with datagrams batched */

/* conn.c */
bool kcpx_conn_serve_ready(struct tunnel *t); /* streams with work; false: there were none */
void kcpx_conn_close_all(struct sess *s);     /* the session's streams */
unsigned kcpx_conn_count(const struct sess *s);
void kcpx_conn_reap(struct tunnel *t);
void kcpx_conn_accept(void *sess_user, uint32_t sid);
void kcpx_conn_readable(void *sess_user, uint32_t sid);
void kcpx_conn_writable(void *sess_user, uint32_t sid);
void kcpx_conn_refused(void *sess_user, uint32_t sid, unsigned n);
void kcpx_conn_listen_ready(struct kcpx_watch *w, uint32_t events);

/* sess.c: a new session's settings from the config and this engine's pools */
void kcpx_tun_session_config(const struct tunnel *t, struct kcpx_session_config *sc);

/* reload.c (with app/reload.c's config half) */
void kcpx_tun_keepalive(const struct kcpx_config *cfg, struct kcpx_smux_config *smux);
void kcpx_tun_reload(struct tunnel *t); /* SIGHUP */

/* diag.c: once a second, hints for ends that do not match (wrong key, crypt, ...) */
void kcpx_diag_second(struct tunnel *t, uint32_t now);

/* report.c */
void kcpx_report_print(struct tunnel *t);
void kcpx_report_memory(struct tunnel *t, FILE *fp); /* the status table's memory line */
void kcpx_report_ctl_accept(struct kcpx_watch *w, uint32_t events);
void kcpx_report_ctl_close(struct tunnel *t); /* connections still waiting */
/* --metrics: the tunnel's /metrics text and /healthz answer (app/metrics.h's source). */
void kcpx_report_metrics(void *arg, FILE *fp);
bool kcpx_report_healthy(void *arg, char *why, size_t size);

#endif
