// SPDX-License-Identifier: MIT
/*
 * The tunnel's wiring: setup, one event loop, timers and signals. The endpoint
 * (core/endpoint.h) reaches paths (path.c), streams (conn.c) and the log through the
 * callbacks in sess.c. Each loop turn ends in tunnel_idle(): serve ready streams and dirty sessions until
 * nothing moves, flush the batched sends, then free what closed during the turn.
 */
#include "app/tunnel.h"

#include <errno.h>
#include <pthread.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sodium.h>
#include <time.h>
#include <unistd.h>

#include "app/log.h"
#include "app/metrics.h"
#include "app/reload.h"
#include "app/service.h"
#include "app/snmp.h"
#include "app/tunnel_int.h"
#include "core/crypt.h"
#include "core/native.h"
#include "core/pool.h"
#include "core/session.h"
#include "io/clock.h"
#include "io/resolve.h"
#include "io/ctl.h"
#include "io/priv.h"
#include "io/seccomp.h"

/* Pool caches: full smux blocks (4 KiB) and session chunks (64 KiB) kept for reuse while
   traffic flows, trimmed to the low marks each second (then freed memory goes back). */
#define POOL_BLOCKS	256
#define POOL_BLOCKS_LOW 32
#define POOL_CHUNKS	8
#define POOL_CHUNKS_LOW 2
#define TRIM_BYTES	(1 << 20) /* malloc_trim once this much went back to malloc */

/* ---- loop glue -------------------------------------------------------------------- */

static void tunnel_idle(void *arg)
{
	struct tunnel *t = arg;
	uint64_t now_us = kcpx_clock_us();
	uint32_t now = (uint32_t)(now_us / 1000);
	bool fine = kcpx_loop_fine(t->loop);

	/* Readable streams and writable sockets, then sessions, until nothing moves;
	 * bounded so a busy tunnel still returns to epoll. */
	for (int round = 0; round < 8 && (t->ready || t->dirty); round++) {
		kcpx_conn_serve_ready(t);
		while (t->dirty) {
			struct sess *s = t->dirty;
			t->dirty = s->dnext;
			s->dirty = false;
			if (s->closing)
				continue;
			if (fine)
				kcpx_session_set_clock_us(s->ks, now_us);
			kcpx_session_pump(s->ks, now);
			if (kcpx_session_dead(s->ks)) {
				kcpx_ep_close(s->es, kcpx_session_dead_reason(s->ks));
				continue;
			}
			if (kcpx_timer_set_us(t->loop, &s->timer,
					      kcpx_session_deadline_us(s->ks, now)))
				kcpx_ep_close(s->es, "out of memory for its timer");
		}
	}
	kcpx_path_flush_all(t);
	kcpx_conn_reap(t);
	kcpx_ep_reap(t->ep);
}

/*
 * Once a second: the pools keep only their low marks, and once enough memory went back
 * to malloc, malloc hands the free pages back to the system (glibc keeps freed heap
 * memory otherwise), so that RSS falls again after a burst of traffic.
 */
static void tunnel_trim(struct tunnel *t)
{
	struct kcpx_pool_stats b, c;
	uint64_t frees;

	kcpx_pool_trim(t->blocks, POOL_BLOCKS_LOW);
	kcpx_pool_trim(t->chunks, POOL_CHUNKS_LOW);
	kcpx_pool_stats(t->blocks, &b);
	kcpx_pool_stats(t->chunks, &c);
	frees = b.frees * b.block + c.frees * c.block;
	if (frees - t->pool_frees >= TRIM_BYTES) {
		malloc_trim(0);
		t->pool_frees = frees;
	}
}

/* systemd's STATUS= line (app/service.c): sessions and streams, every thread's */
static void tunnel_service_tick(struct tunnel *t)
{
	unsigned streams = 0, sessions = 0;

	for (unsigned i = 0; i < kcpx_shard_count(t); i++) {
		struct tunnel *o = kcpx_shard_get(t, i);

		for (struct kcpx_ep_sess *e = kcpx_ep_first(o->ep); e; e = kcpx_ep_next(e))
			streams += kcpx_conn_count(kcpx_ep_sess_user(e));
		sessions += (unsigned)o->snmp.CurrEstab;
		kcpx_shard_put(t, o);
	}
	kcpx_service_tick(sessions, streams);
}

/* A syscall the filter refused: logged when the count grows, at most once a second. */
static void tunnel_seccomp_second(struct tunnel *t)
{
	int nr;
	uint64_t n = kcpx_seccomp_denied(&nr);

	if (n == t->seccomp_told)
		return;
	pr_warn("seccomp: %llu syscalls refused with EPERM (the last: number %d): a kcpx bug, "
		"please report it; --noseccomp works around it",
		(unsigned long long)(n - t->seccomp_told), nr);
	t->seccomp_told = n;
}

static void tunnel_second(struct kcpx_timer *tm, uint32_t now)
{
	struct tunnel *t = (struct tunnel *)((char *)tm - offsetof(struct tunnel, sectimer));
	t->ticks++;
	if (!t->shard && t->cfg->snmplog[0] && t->ticks % (unsigned)t->cfg->snmpperiod == 0) {
		struct kcpx_snmp sum;
		int err;

		kcpx_shard_snmp(t, &sum);
		err = kcpx_snmp_log(t->cfg->snmplog, &sum, time(NULL));
		if (err)
			pr_warn_ratelimited("snmplog %s: %s", t->cfg->snmplog, strerror(-err));
	}
	kcpx_ep_second(t->ep, now);
	if (t->lw_paused && !kcpx_loop_mod(t->loop, &t->lw, EPOLLIN))
		t->lw_paused = false;
	if (t->ctlw_paused && !kcpx_loop_mod(t->loop, &t->ctlw, EPOLLIN))
		t->ctlw_paused = false;
	if (!t->shard && t->be && t->be->publish) {
		struct kcpx_snmp sum;

		kcpx_shard_snmp(t, &sum);
		t->be->publish(t->be->arg, &sum);
	}
	if (!t->shard) {
		tunnel_service_tick(t);
		tunnel_seccomp_second(t);
	}
	kcpx_diag_second(t, now);
	tunnel_trim(t);
	kcpx_timer_set(t->loop, tm, now + 1000);
}

static void tunnel_signal(struct kcpx_watch *w, uint32_t events)
{
	struct tunnel *t = (struct tunnel *)((char *)w - offsetof(struct tunnel, sigw));
	struct signalfd_siginfo si;

	while (read(w->fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGUSR1) {
			kcpx_report_print(t);
		} else if (si.ssi_signo == SIGHUP) {
			kcpx_tun_reload(t); /* every thread's, app/tunnel_reload.c */
		} else {
			pr_info("signal %u: shutting down", si.ssi_signo);
			kcpx_service_stopping();
			t->stopping = true;
			kcpx_loop_stop(t->loop);
		}
	}
}

/* ---- setup ------------------------------------------------------------------------ */

/*
 * A whole-tunnel number thread t's engine takes part of (--maxsessions, a client's --conn):
 * split evenly, at least 1 each (0, no limit, stays 0). So a client has at least one
 * session per thread, since each thread serves the connections its listener accepts.
 */
static int shard_share(int v, const struct tunnel *t)
{
	unsigned n = kcpx_shard_count(t);
	int part = (int)(((unsigned)v + n - 1 - t->shard) / n);

	return v <= 0 ? v : part > 0 ? part : 1;
}

/* Keys and the endpoint: crypt for kcptun's format, the PSK for kcpx's. */
static int setup_protocol(struct tunnel *t)
{
	const struct kcpx_config *cfg = t->cfg;
	struct kcpx_ep_config ec = {
		.server = cfg->role == KCPX_ROLE_SERVER,
		.proto = cfg->protocol,
		.hsrate = cfg->hsrate,
		.maxsessions = shard_share(cfg->maxsessions, t),
		.persource = cfg->persource,
		.sessrate = cfg->sessrate,
		.reprobe = cfg->reprobe,
		.conn = shard_share(cfg->conn, t),
		.autoexpire = cfg->autoexpire,
		.scavengettl = cfg->scavengettl,
		.datashard = cfg->datashard,
		.parityshard = cfg->parityshard,
		.aes = kcpx_native_aes_available(),
	};
	uint8_t seed[32];
	int err;

	randombytes_buf(seed, sizeof(seed));
	err = kcpx_crypt_new(&t->crypt, cfg->crypt, cfg->key, seed);
	sodium_memzero(seed, sizeof(seed));
	if (err) {
		pr_warn("crypt '%s': %s", cfg->crypt, strerror(-err));
		return err;
	}
	if (cfg->protocol != KCPX_PROTO_KCPTUN && !t->psk_borrowed) {
		/* Argon2id wants 64 MiB for a moment: with auto, do without rather than die */
		err = kcpx_native_psk_new(&t->psk, cfg->key);
		if (err && cfg->protocol == KCPX_PROTO_KCPX) {
			pr_warn("kcpx protocol keys: %s", strerror(-err));
			return err;
		}
		if (err)
			pr_warn("kcpx protocol keys: %s: speaking kcptun only", strerror(-err));
		if (t->psk && t->be && t->be->native_cfg) {
			struct kcpx_native_cfg nc;

			kcpx_native_psk_bpf_cfg(t->psk, cfg->role == KCPX_ROLE_SERVER, &nc);
			if (cfg->role == KCPX_ROLE_SERVER) {
				nc.hs_rate = (__u16)cfg->hsrate; /* XDP's own bucket, same rate */
				nc.rst_rate = KCPX_NATIVE_RST_RATE;
			}
			err = t->be->native_cfg(t->be->arg, &nc);
			sodium_memzero(&nc, sizeof(nc));
			if (err) {
				pr_warn("XDP native checks: %s", strerror(-err));
				return err;
			}
		}
	}
	/* --hsrate, --sessrate, --persource hold for the process: thread 0 makes the one
	 * state every thread's endpoint shares */
	if (ec.server && !t->lim) {
		uint32_t rs;

		randombytes_buf(&rs, sizeof(rs));
		err = kcpx_ep_limits_new(&t->limits, cfg->hsrate, cfg->sessrate, cfg->persource,
					 rs);
		if (err) {
			pr_warn("admission limits: %s", strerror(-err));
			return err;
		}
		t->lim = &t->limits;
	}
	ec.limits = t->lim;
	kcpx_tun_session_config(t, &ec.session);
	t->keepalive_timeout_ms = ec.session.smux.keepalive_timeout_ms;
	ec.crypt = t->crypt;
	ec.psk = t->psk;
	if (!t->psk && ec.proto == KCPX_PROTO_AUTO)
		ec.proto = KCPX_PROTO_KCPTUN;
	return kcpx_ep_new(&t->ep, &ec, &kcpx_tun_ep_ops, t, &t->snmp);
}

/*
 * Client: a --remoteaddr name is looked up again for each new session (dynamic DNS), by
 * io/resolve.c so that a slow resolver does not stall the loop. Under `kcpx up` only
 * addresses of the family found at start: the XDP program was built for it.
 */
static int client_resolver(struct tunnel *t)
{
	char host[256], port[8];
	int err;

	err = kcpx_addr_split(t->cfg->remoteaddr, host, sizeof(host), port, sizeof(port));
	if (err || kcpx_addr_is_numeric(host))
		return 0; /* an address (or nothing parseable, refused already): fixed */
	err = kcpx_resolver_new(&t->resolver, host, port,
				t->be ? t->remote.sa.sa_family : AF_UNSPEC);
	if (err)
		pr_warn("remoteaddr '%s': %s", t->cfg->remoteaddr, strerror(-err));
	return err;
}

/* kcptun has no limit; 1024 sockets (and their buffers) is already far past its examples */
#define KCPX_PORT_RANGE_MAX 1024

static void tunnel_rx_drain(struct kcpx_watch *w, uint32_t events)
{
	struct tunnel *t = (struct tunnel *)((char *)w - offsetof(struct tunnel, rxw));

	(void)events;
	t->be->rx_drain(t->be->arg, t->shard);
}

static int tunnel_setup(struct tunnel *t)
{
	const struct kcpx_config *cfg = t->cfg;
	char buf[KCPX_ADDRSTRLEN];
	unsigned hi = 0;
	int err;

	err = setup_protocol(t);
	if (err)
		return err;
	if (cfg->role == KCPX_ROLE_CLIENT) {
		err = kcpx_addr_parse(cfg->localaddr, &t->laddr);
		if (err) {
			pr_warn("localaddr '%s': %s", cfg->localaddr, strerror(-err));
			return err;
		}
		err = kcpx_addr_parse_range(cfg->remoteaddr, &t->remote, &t->remote_hi);
		if (err == -ENOENT && !t->be) {
			/* the network (or its DNS) may be down now: not a reason to exit */
			pr_warn("remoteaddr '%s': the name does not resolve now; trying again for "
				"each new connection",
				cfg->remoteaddr);
			t->resolve_failed = true;
			t->resolve_at = kcpx_clock_ms();
			err = 0;
		} else if (err) {
			pr_warn("remoteaddr '%s': %s", cfg->remoteaddr, strerror(-err));
			return err;
		}
		err = client_resolver(t);
		if (err)
			return err;
		err = t->group ? kcpx_tcp_listen_shared(&t->laddr) : kcpx_tcp_listen(&t->laddr);
		if (err < 0) {
			pr_warn("listen on %s (tcp): %s", cfg->localaddr, strerror(-err));
			return err;
		}
		t->lw.fn = kcpx_conn_listen_ready;
		err = kcpx_loop_add(t->loop, &t->lw, err, EPOLLIN);
		if (err)
			return err;
		if (t->be && t->be->rx_fd && t->be->rx_drain) {
			t->rxw.fn = tunnel_rx_drain;
			err = kcpx_loop_add(t->loop, &t->rxw, t->be->rx_fd(t->be->arg, t->shard),
					    EPOLLIN);
			if (err)
				return err;
		}
		if (!t->shard)
			pr_info("client: listening on %s (tcp), remote %s (udp), crypt %s, mode "
				"%s, proto "
				"%s",
				kcpx_addr_str(&t->laddr, buf, sizeof(buf)), cfg->remoteaddr,
				cfg->crypt, cfg->mode, cfg->proto);
	} else {
		struct dg *g;

		err = kcpx_addr_parse_range(cfg->listen, &t->laddr, &hi);
		if (!err && hi - kcpx_addr_port(&t->laddr) >= KCPX_PORT_RANGE_MAX)
			err = -E2BIG;
		if (err) {
			pr_warn("listen '%s': %s", cfg->listen,
				err == -E2BIG ? "a port range may hold at most 1024 ports"
					      : strerror(-err));
			return err;
		}
		err = kcpx_target_parse(cfg->target, &t->target);
		if (err) {
			pr_warn("target '%s': %s", cfg->target, strerror(-err));
			return err;
		}
		/* kcptun's port range: one socket per port, each session answers on its own */
		for (unsigned p = kcpx_addr_port(&t->laddr) + 1; p <= hi; p++) {
			struct kcpx_addr a = t->laddr;

			kcpx_addr_set_port(&a, p);
			if (!kcpx_path_get(t, &a, NULL))
				return -EADDRNOTAVAIL;
		}
		g = kcpx_path_get(t, &t->laddr, NULL);
		if (!g)
			return -EADDRNOTAVAIL;
		if (!t->shard)
			pr_info("server: listening on %s (%s)%s, target %s, crypt %s, mode %s, "
				"proto %s",
				kcpx_addr_str(&g->d->local, buf, sizeof(buf)), g->d->name,
				hi > kcpx_addr_port(&t->laddr) ? " and the rest of the range" : "",
				cfg->target, cfg->crypt, cfg->mode, cfg->proto);
	}
	return 0;
}

/* Every stream holds a TCP socket: take all the fds the hard limit allows. */
static void tunnel_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		pr_warn("raising the open-file limit to %llu: %s", (unsigned long long)rl.rlim_max,
			strerror(errno));
}

/* Every socket is open: from here on the daemon parses datagrams, so with as little as
 * it needs (io/priv.h). */
static int tunnel_drop_privileges(struct tunnel *t)
{
	const char *what;
	int err = kcpx_priv_drop(t->cfg->user, t->be ? t->be->keep_caps : 0, &what);

	if (err)
		pr_warn("--user '%s': %s: %s", t->cfg->user, what,
			err == -ESRCH ? "no such user" : strerror(-err));
	else if (t->cfg->user[0])
		pr_info("running as user %s (uid %u)", t->cfg->user, (unsigned)getuid());
	return err;
}

/* Privileges dropped: from here on the daemon only needs what a relay does, and what its
 * backend asked for (io/seccomp.h). */
static void tunnel_seccomp(struct tunnel *t)
{
	const char *what;
	int err;

	if (t->cfg->noseccomp)
		return;
	err = kcpx_seccomp_install(t->be ? t->be->seccomp : 0, &what);
	if (err)
		pr_warn("seccomp: %s: %s; running without a syscall filter (--noseccomp says so "
			"and silences this)",
			what, strerror(-err));
	else
		pr_debug("seccomp: syscall allow-list installed");
}

/* Listening (and, under `kcpx up`, attached): tell the service manager, in one line. */
static void tunnel_ready(struct tunnel *t)
{
	const struct kcpx_config *cfg = t->cfg;
	char what[3 * KCPX_STR];

	if (cfg->role == KCPX_ROLE_SERVER)
		snprintf(what, sizeof(what), "server %s (%s) -> %s", cfg->listen,
			 t->dgs ? t->dgs->d->name : "-", cfg->target);
	else
		snprintf(what, sizeof(what), "client %s -> %s (%s)", cfg->localaddr,
			 cfg->remoteaddr, t->be ? "AF_XDP" : "UDP");
	kcpx_service_ready(what);
}

/* Free one thread's tunnel: its sessions closed ("shutdown") and flushed first. */
static void tunnel_free(struct tunnel *t)
{
	if (!t)
		return;
	if (t->ep) {
		while (kcpx_ep_first(t->ep))
			kcpx_ep_close(kcpx_ep_first(t->ep), "shutdown");
		tunnel_idle(t);
		kcpx_ep_free(t->ep);
	}
	/* thread 0 goes last: no endpoint uses the limits now */
	kcpx_ep_limits_free(&t->limits);
	kcpx_shard_leave(t);
	if (t->lw.fd >= 0)
		close(t->lw.fd);
	if (t->sigw.fd >= 0)
		close(t->sigw.fd);
	kcpx_metrics_stop(t->metrics);
	kcpx_report_ctl_close(t);
	if (t->ctlw.fd >= 0) {
		close(t->ctlw.fd);
		unlink(t->ctlpath);
	}
	while (t->dgs) {
		t->dgs->refs = 1;
		kcpx_path_put(t, t->dgs);
	}
	kcpx_resolver_free(t->resolver);
	kcpx_crypt_free(t->crypt);
	if (!t->psk_borrowed)
		kcpx_native_psk_free(t->psk);
	kcpx_loop_free(t->loop);
	free(t->rxmem);
	free(t->scratch);
	kcpx_pool_free(t->blocks);
	kcpx_pool_free(t->chunks);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

/* One thread's tunnel, set up (sockets open): t0 is thread 0's (NULL for thread 0). */
static int tunnel_new(struct tunnel **out, const struct kcpx_config *cfg,
		      const struct kcpx_tunnel_backend *be, struct kcpx_shards *g, unsigned shard,
		      const struct tunnel *t0)
{
	struct tunnel *t = calloc(1, sizeof(*t));
	int err;

	*out = t;
	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->mu, NULL);
	t->cfg = cfg;
	t->be = be;
	t->shard = shard;
	t->lw.fd = -1;
	t->sigw.fd = -1;
	t->ctlw.fd = -1;
	t->inw.fd = -1;
	t->loop = kcpx_loop_new();
	t->rxmem = malloc((size_t)RX_BATCH * KCPX_PKT_MAX);
	t->scratch = malloc(KCPX_CONN_READ);
	t->blocks = kcpx_pool_new(kcpx_smux_pool_block(), POOL_BLOCKS);
	t->chunks = kcpx_pool_new(kcpx_session_chunk_block(), POOL_CHUNKS);
	if (!t->loop || !t->rxmem || !t->scratch || !t->blocks || !t->chunks)
		return -ENOMEM;
	for (int i = 0; i < RX_BATCH; i++)
		t->rx[i].buf = t->rxmem + (size_t)i * KCPX_PKT_MAX;
	kcpx_loop_set_lock(t->loop, &t->mu);
	if (g) {
		err = kcpx_shard_join(g, t);
		if (err)
			return err;
	}
	if (t0) {
		/* Argon2id once: the PSK's keys are read-only after it is made */
		t->psk = t0->psk;
		t->psk_borrowed = true;
		t->lim = t0->lim;
	}
	t->maxstreams = (unsigned)shard_share(cfg->maxstreams, t);
	err = tunnel_setup(t);
	if (err)
		return err;
	kcpx_timer_init(&t->sectimer, tunnel_second);
	kcpx_timer_set(t->loop, &t->sectimer, kcpx_clock_ms() + 1000);
	kcpx_loop_set_idle(t->loop, tunnel_idle, t);
	return 0;
}

/* Threads 1..n-1: their loop until thread 0 stops them. */
static void *tunnel_thread(void *arg)
{
	struct tunnel *t = arg;
	int err;

	pthread_mutex_lock(&t->mu);
	/* a stop that came before this thread got here (SIGTERM at once after the start):
	 * kcpx_loop_run would clear it and wait for a wake-up that already happened */
	err = t->stopping ? 0 : kcpx_loop_run(t->loop);
	pthread_mutex_unlock(&t->mu);
	if (err)
		pr_warn("thread %u: event loop: %s", t->shard, strerror(-err));
	return NULL;
}

int kcpx_tunnel_run(const struct kcpx_config *cfg, const struct kcpx_tunnel_backend *be)
{
	struct kcpx_shards *g = NULL;
	unsigned n = (unsigned)cfg->threads, started = 0;
	struct tunnel *t = NULL, *more[64] = { 0 };
	sigset_t mask;
	int err, sfd;

	if (sodium_init() < 0) {
		pr_warn("libsodium failed to initialise");
		return -EIO;
	}
	if (!n) /* --threads 0, the default: what the backend can serve (kcpx up), else 1 */
		n = be && be->shards ? be->shards : 1;
	if (be && be->shards && n > be->shards)
		n = be->shards; /* kcpx up: at most one engine per RX queue (it said so) */
	if (n > 1 && be && n > be->shards) {
		pr_warn("--threads %u: works with kcpx client|server over UDP and with kcpx up "
			"(one engine per RX queue); not with --tcp (use --threads 1)",
			n);
		return -EOPNOTSUPP;
	}
	tunnel_raise_nofile();
	/* every thread inherits the mask: the signals reach thread 0's signalfd only */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	if (n > 1) {
		err = kcpx_shards_new(&g, n);
		if (err)
			return err;
	}
	err = tunnel_new(&t, cfg, be, g, 0, NULL);
	for (unsigned i = 1; !err && i < n; i++)
		err = tunnel_new(&more[i], cfg, be, g, i, t);
	if (err)
		goto out;
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0) {
		err = -errno;
		goto out;
	}
	t->sigw.fn = tunnel_signal;
	err = kcpx_loop_add(t->loop, &t->sigw, sfd, EPOLLIN);
	if (err) {
		close(sfd);
		goto out;
	}
	sfd = kcpx_ctl_listen(t->ctlpath, sizeof(t->ctlpath));
	if (sfd >= 0) {
		t->ctlw.fn = kcpx_report_ctl_accept;
		if (kcpx_loop_add(t->loop, &t->ctlw, sfd, EPOLLIN) < 0)
			close(sfd);
	} else {
		pr_warn("no control socket (kcpx status will not list this tunnel): %s",
			strerror(-sfd));
	}
	if (cfg->metrics[0]) {
		struct kcpx_metrics_src ms = { kcpx_report_metrics, kcpx_report_healthy, t };

		err = kcpx_metrics_start(&t->metrics, t->loop, cfg->metrics, &ms);
		if (err)
			goto out;
	}
	err = tunnel_drop_privileges(t);
	if (err)
		goto out;
	tunnel_seccomp(t);
	pthread_mutex_lock(&t->mu);
	if (g) {
		err = kcpx_shards_start(g, tunnel_thread, &started);
		if (err) {
			pthread_mutex_unlock(&t->mu);
			pr_warn("starting %u threads: %s", n, strerror(-err));
			goto out;
		}
		pr_info("%u threads, each with its own socket and sessions", n);
	}
	tunnel_ready(t);
	err = kcpx_loop_run(t->loop);
	pthread_mutex_unlock(&t->mu);
	if (err)
		pr_warn("event loop: %s", strerror(-err));
out:
	if (g)
		kcpx_shards_stop(g, started);
	for (unsigned i = n; i-- > 1;)
		tunnel_free(more[i]);
	tunnel_free(t);
	kcpx_shards_free(g);
	return err;
}
