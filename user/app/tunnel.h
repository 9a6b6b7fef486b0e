/* SPDX-License-Identifier: MIT */
/*
 * The tunnel: kcptun's client and server, driven by one event loop.
 *
 *   client: TCP accept on localaddr -> one smux stream per connection -> --conn sessions
 *           (round-robin) -> datagram backend -> remoteaddr
 *   server: datagram backend on listen -> a session per peer address -> each stream
 *           dials target (TCP or unix socket) -> bytes both ways
 */
#ifndef KCPX_APP_TUNNEL_H
#define KCPX_APP_TUNNEL_H

#include <stdio.h>

#include "app/config.h"
#include "io/dgram.h"
#include "kcpx_native.h"
#include "kcpx_snmp.h"

/*
 * Where datagrams come from. NULL means plain UDP sockets (`kcpx client|server`).
 * open() is called once per port of the server's listen address or range (bind = that
 * port, peer = NULL) and once per client session (bind = NULL, peer = remote, its port
 * picked from remoteaddr's range): every backend serves kcptun's port ranges. A backend that serves every session from one
 * object (AF_XDP) may return the same dgram each time; the tunnel then watches it once and
 * tells sessions apart by peer address and conv. close() is called once per distinct dgram.
 */
struct kcpx_tunnel_backend {
	/* thread: the --threads engine asking (0 .. shards - 1), each with sockets of its own */
	int (*open)(void *arg, unsigned thread, const struct kcpx_addr *bind,
		    const struct kcpx_addr *peer, struct kcpx_dgram **out);
	/*
	 * Optional, for a client's engines: an fd readable while thread's share of the
	 * backend (its RX queues) holds datagrams, and what takes them off then. A thread
	 * with no session of its own must still do it: what it takes belongs to other
	 * threads' sessions, which the NIC put on its queues.
	 */
	int (*rx_fd)(void *arg, unsigned thread);
	void (*rx_drain)(void *arg, unsigned thread);
	/* Engines the backend can serve (--threads up to this; 0 and 1: one). */
	unsigned shards;
	/* Called every second with the counters, every thread's summed, from thread 0 (e.g.
	 * to copy them into a pinned map). */
	void (*publish)(void *arg, const struct kcpx_snmp *snmp);
	/*
	 * Native protocol (docs/PROTOCOL.md §6), each optional. native_cfg: once at start when
	 * the PSK keys exist (the kcpx_nat_cfg value: handshake tag key, role). native_up: a
	 * native session's keys exist (server: before its RESP leaves; client: when the RESP is
	 * taken): its sid and kcpx_nat_sess value (receive tag key, empty window, FEC shape).
	 * A non-zero return closes the session (XDP would drop its traffic). native_down: that
	 * session closed. The values hold keys: the tunnel wipes them after the call, and
	 * nobody logs them.
	 */
	int (*native_cfg)(void *arg, const struct kcpx_native_cfg *cfg);
	int (*native_up)(void *arg, uint32_t sid, const struct kcpx_native_sess *v);
	void (*native_down)(void *arg, uint32_t sid);
	/* Optional: the backend's own lines of `kcpx status` (two-space indent) and its
	 * families of /metrics. */
	void (*status)(void *arg, FILE *fp);
	/* Optional: the same facts for `kcpx status --json`, as members (",\"key\":...")
	 * of the tunnel's object. */
	void (*status_json)(void *arg, FILE *fp);
	void (*metrics)(void *arg, FILE *fp);
	/* Optional: the backend's counters for `kcpx stats -p PID`, "MAP FIELD VALUE" lines
	 * (names as `kcpx stats IFACE` shows its pinned maps). */
	void (*stats)(void *arg, FILE *fp);
	/* Capabilities (1 << CAP_*) the backend still needs once set up; the rest go. */
	uint64_t keep_caps;
	/* What its syscall filter allows beyond a relay's list (KCPX_SECCOMP_*, io/seccomp.h). */
	unsigned seccomp;
	void *arg;
};

/* Runs until SIGINT/SIGTERM. Returns 0, or -errno after logging why it could not start. */
int kcpx_tunnel_run(const struct kcpx_config *cfg, const struct kcpx_tunnel_backend *be);

#endif
