/* SPDX-License-Identifier: MIT */
/*
 * Loading and attaching kcpx's BPF programs (bpf/kcpx.bpf.c), and everything that works
 * from the pins alone: `kcpx down` and `kcpx stats` need no running daemon.
 *
 *   kcpx_xdp_open     load; with an interface also attach XDP (native, else skb — said so
 *                     in the log), attach TC egress on clsact, pin the maps under
 *                     /sys/fs/bpf/kcpx/IFACE/ and record what was done in kcpx_info
 *   kcpx_xdp_close    release the daemon's handles; detach only when asked to
 *   kcpx_xdp_down     detach and unpin by interface name, even after a crash
 *   kcpx_xdp_stats    read every pinned counter map, summed over CPUs, with BTF names
 */
#ifndef KCPX_IO_XDP_H
#define KCPX_IO_XDP_H

#include <stdbool.h>
#include <stdint.h>

#include "kcpx_bpf.h"
#include "kcpx_native.h"
#include "io/dgram.h"
#include "io/napi.h"

/* What the XDP program does with the native protocol (docs/PROTOCOL.md §6). */
enum kcpx_xdp_native {
	KCPX_XDP_NATIVE_OFF = 0, /* --proto kcptun: no native checks */
	KCPX_XDP_NATIVE_AUTO,	 /* --proto auto: drop only bad packets of live sessions */
	KCPX_XDP_NATIVE_ONLY,	 /* --proto kcpx: drop everything that is not good native */
};

enum kcpx_xdp_mode {
	KCPX_XDP_AUTO = 0, /* native (driver) mode, falling back to skb mode */
	KCPX_XDP_NATIVE,
	KCPX_XDP_SKB,
};

struct kcpx_xdp_config {
	const char *ifname;	 /* NULL: load only, attach and pin nothing (tests) */
	enum kcpx_bpf_role role; /* server: steer by local port; client: by peer */
	uint16_t port;		 /* host order; server: listen port, client: server's port */
	uint16_t port_last;	 /* server: the listen range is port..port_last (0: port) */
	struct kcpx_addr peer;	 /* client: the server's address (port ignored) */
	struct kcpx_addr local;	 /* server: --listen's address; AF_UNSPEC or any: every one */
	bool loopback; /* 127/8, ::1 sources are no martians (set anyway when ifname is one) */
	int dscp;      /* 0..63 to mark tunnel packets on TC egress, -1: leave alone */
	uint16_t min_payload; /* 0: 1 */
	uint16_t max_payload; /* 0: KCPX_PKT_MAX */
	enum kcpx_xdp_mode mode;
	bool no_tc;		     /* skip the TC egress program */
	enum kcpx_napi_mode napi;    /* threaded NAPI (io/napi.h) */
	enum kcpx_xdp_native native; /* the checks stay open (pass_off) until the cfg is set */
};

struct kcpx_xdp;

/* Returns 0 or -errno: -EBUSY when kcpx (a live daemon) or another XDP program is already
 * on the interface; -EPERM when not allowed to load BPF; -EUCLEAN when the pin tree under
 * /sys/fs/bpf is not safe to use (another user's, a symlink, writable by others: logged,
 * and nothing in it touched). Stale state of a crashed daemon is cleaned up first (and
 * logged). */
int kcpx_xdp_open(struct kcpx_xdp **out, const struct kcpx_xdp_config *cfg);
/* Release handles. detach: also remove the programs and pins (what `kcpx down` does). */
void kcpx_xdp_close(struct kcpx_xdp *x, bool detach);

/* The interface's state as attached: "native" or "skb" (NULL when not attached). */
const char *kcpx_xdp_mode_name(const struct kcpx_xdp *x);
int kcpx_xdp_ifindex(const struct kcpx_xdp *x);

enum kcpx_xdp_fd {
	KCPX_FD_PROG_XDP,
	KCPX_FD_PROG_TC,
	KCPX_FD_XSKS,
	KCPX_FD_LPORTS,
	KCPX_FD_XDP_STATS,
	KCPX_FD_TC_STATS,
	KCPX_FD_XSK_STATS,
	KCPX_FD_SNMP,
	KCPX_FD_INFO,
	KCPX_FD_NAT_CFG,
	KCPX_FD_NAT_SESS,
	KCPX_FD_NAT_STATS,
	KCPX_FD_NAT_FEC,
	KCPX_FD_XSK_QUEUES,
};
int kcpx_xdp_fd(const struct kcpx_xdp *x, enum kcpx_xdp_fd which);

/* AF_XDP socket fd for an RX queue into the XSKMAP; fd < 0 removes the entry. */
int kcpx_xdp_set_xsk(struct kcpx_xdp *x, unsigned queue, int fd);
/* Client: a local UDP port (host order) whose packets from peer (the server this port
 * talks to) are the tunnel's. */
int kcpx_xdp_add_lport(struct kcpx_xdp *x, uint16_t port, const struct kcpx_addr *peer);
int kcpx_xdp_del_lport(struct kcpx_xdp *x, uint16_t port);

/*
 * Native protocol: the kcpx_nat_cfg value (handshake tag key, role: turns the checks on),
 * and a session's kcpx_nat_sess entry by sid, inserted when its keys exist and deleted when
 * it closes (deleting also forgets its FEC groups lazily: they age out of the LRU map).
 * The values hold keys: callers wipe their copies; nothing here logs them.
 */
int kcpx_xdp_native_cfg(struct kcpx_xdp *x, const struct kcpx_native_cfg *cfg);
int kcpx_xdp_native_add(struct kcpx_xdp *x, uint32_t sid, const struct kcpx_native_sess *v);
int kcpx_xdp_native_del(struct kcpx_xdp *x, uint32_t sid);

/* Publish userspace counters (structs of __u64) into a per-CPU counter map so the pinned
 * maps show them: value i in CPU slot i (folded into slot i % CPUs when there are fewer),
 * the other slots zero. A reader's sum over the CPUs is the sum of the n values; `kcpx
 * up`'s engines (one per RX queue) each publish into their own slot. Not thread-safe: one
 * publisher per kcpx_xdp. */
int kcpx_xdp_publish_n(struct kcpx_xdp *x, enum kcpx_xdp_fd which, const void *vals, unsigned n,
		       size_t size);
static inline int kcpx_xdp_publish(struct kcpx_xdp *x, enum kcpx_xdp_fd which, const void *val,
				   size_t size)
{
	return kcpx_xdp_publish_n(x, which, val, 1, size);
}
static inline int kcpx_xdp_publish_snmp(struct kcpx_xdp *x, const struct kcpx_snmp *s)
{
	return kcpx_xdp_publish(x, KCPX_FD_SNMP, s, sizeof(*s));
}

/* RX queue q's figures into kcpx_xsk_queues (the same one publisher). 0 or -errno. */
int kcpx_xdp_publish_queue(struct kcpx_xdp *x, unsigned q, const struct kcpx_xsk_queue *v);
/* The host's own addresses and subnet broadcasts, martian sources (io/ifaddr.h): set at
 * open from the addresses then; the daemon sets it again when they change. 0 or -errno. */
int kcpx_xdp_set_martians(struct kcpx_xdp *x, const struct kcpx_martians *m);

/* Read key 0 of a per-CPU array of __u64 counters and sum each field over all CPUs.
 * size is the value size (a multiple of 8). Returns 0 or -errno. */
int kcpx_xdp_sum_percpu(int map_fd, void *sum, size_t size);

/* Detach kcpx's programs from IFACE and remove its pins. Works from the pins, and when
 * they are gone from the programs' names alone; only kcpx's own pin names are removed.
 * Returns 0 when something was removed, -ENOENT when kcpx was not there, -EUCLEAN when
 * the pin tree is not safe (as for kcpx_xdp_open), other -errno on failure. */
int kcpx_xdp_down(const char *ifname);

/*
 * Pin one map of another BPF object (the --tcp translation's counters) under
 * /sys/fs/bpf/kcpx/IFACE/name, with the checks of kcpx_xdp_open on the pin tree; a pin of
 * that name left by a dead daemon is replaced. Unpin removes the pin only while it is still
 * map_fd's map, and the directories once empty. 0 or -errno.
 */
int kcpx_xdp_pin_map(const char *ifname, const char *name, int map_fd);
void kcpx_xdp_unpin_map(const char *ifname, const char *name, int map_fd);

/* Every field of every pinned counter map of IFACE, summed over CPUs, in map order:
 * cb(map name, field name, value). Field names come from the maps' BTF. Then each open
 * RX queue's kcpx_xsk_queues figures as fields "qN_rx_packets", "qN_tx_packets". */
typedef void (*kcpx_xdp_stat_cb)(void *ctx, const char *map, const char *field, uint64_t val);
int kcpx_xdp_stats(const char *ifname, kcpx_xdp_stat_cb cb, void *ctx);

#endif
