/* SPDX-License-Identifier: MIT */
/*
 * The contract between bpf/kcpx.bpf.c and userspace (user/io/xdp.c, user/io/xsk.c): the
 * configuration the XDP and TC programs read, and the counter structs kept in per-CPU maps
 * pinned at /sys/fs/bpf/kcpx/IFACE/. Only fixed-width fields, explicit padding, and a size
 * check on every struct, so both compilers agree on the layout.
 *
 * Counter maps are per-CPU arrays with a single entry (key 0). The BPF programs write the
 * kcpx_xdp_stats and kcpx_tc_stats maps; the daemon writes kcpx_xsk_stats and kcpx_snmp
 * into its CPU-0 slot. `kcpx stats IFACE` and `bpftool map dump pinned` read them all,
 * and they stay readable when the daemon hangs or dies.
 */
#ifndef KCPX_BPF_H
#define KCPX_BPF_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#include "kcpx_snmp.h"

#define KCPX_BPF_PIN_ROOT "/sys/fs/bpf/kcpx"
/* Sockets in the XSKMAP, indexed by RX queue. */
#define KCPX_XSK_MAX_QUEUES 64
/* Local ports a client may register in kcpx_lports: one per session, and a client holds
 * --conn sessions (at most 1024) and, for a while, the ones --autoexpire replaced until
 * their streams end. About 150 KiB of kernel memory (a preallocated hash). */
#define KCPX_LPORTS_MAX 2048

/*
 * Value of kcpx_lports (key: a client's local UDP port, network order): the server that
 * port talks to. Each session's port has its own, so a session opened after --remoteaddr
 * resolved to a new address is steered while older ones keep theirs (dynamic DNS).
 */
struct kcpx_lport {
	__u8 peer_addr[16]; /* IPv4 in the first 4 bytes, network order */
	__be16 peer_port;
	__u8 family; /* 4 or 6 */
	__u8 pad;
};
_Static_assert(sizeof(struct kcpx_lport) == 20, "kcpx_lport layout");

enum kcpx_bpf_role {
	KCPX_BPF_ROLE_NONE = 0,	  /* steer nothing: every packet goes to the kernel */
	KCPX_BPF_ROLE_SERVER = 2, /* tunnel packets: UDP dst port in cfg.port..port_last */
	KCPX_BPF_ROLE_CLIENT = 1, /* dst port in kcpx_lports, src == that entry's server */
};

/* kcpx_bpf_cfg.flags */
#define KCPX_CFG_F_DSCP 0x01 /* TC egress sets the DSCP of tunnel packets to cfg.dscp */
/* XDP runs the native protocol's checks on tunnel packets (docs/PROTOCOL.md §6) */
#define KCPX_CFG_F_NATIVE 0x02
/* ... and the port speaks nothing else (--proto kcpx): what is not native is dropped.
 * Without it (--proto auto) only packets that claim a live native session (its sid) or
 * carry a good handshake tag can be dropped; the rest may be kcptun's and pass. */
#define KCPX_CFG_F_NATIVE_STRICT 0x04
/* server: tunnel packets must be addressed to cfg.local_addr (a specific --listen) */
#define KCPX_CFG_F_LOCAL 0x08
/* the interface is a loopback: 127/8 and ::1 sources are not martians there */
#define KCPX_CFG_F_LOOPBACK 0x10

/*
 * Read-only configuration, set in the skeleton's .rodata before load (so the verifier
 * prunes the role that is not used). Ports and addresses are in network byte order.
 */
struct kcpx_bpf_cfg {
	__u8 peer_addr[16]; /* client: the server found at start (steering: kcpx_lports) */
	__be16 port;	    /* server: the listen port; client: the server's port at start */
	__u8 role;	    /* enum kcpx_bpf_role */
	__u8 family;	    /* client: 4 or 6, the family of peer_addr */
	__u8 dscp;	    /* 0..63 */
	__u8 flags;	    /* KCPX_CFG_F_* */
	__u16 min_payload;  /* smaller UDP payloads to the tunnel are malformed */
	__u16 max_payload;  /* larger ones too (kcptun never sends more than 1500) */
	__u8 local_family;  /* server with KCPX_CFG_F_LOCAL: 4 or 6 */
	__u8 pad;
	__u16 port_first;    /* server, host order: the listen range, kcptun's ":4000-4009" */
	__u16 port_last;     /* (0: the range is cfg.port alone) */
	__u8 local_addr[16]; /* server with KCPX_CFG_F_LOCAL: --listen's address */
};
_Static_assert(sizeof(struct kcpx_bpf_cfg) == 48, "kcpx_bpf_cfg layout");

/*
 * Martian sources only the host knows, in kcpx_martians (an array of one): the addresses
 * of the namespace's interfaces and the broadcast addresses of its IPv4 subnets. The
 * daemon rewrites it whenever an address comes or goes (io/ifaddr.c); v4[0..n4) and
 * v6[0..n6) are used, in network order; addresses beyond the maximum are not checked.
 */
#define KCPX_MARTIAN4_MAX 32
#define KCPX_MARTIAN6_MAX 16

struct kcpx_martians {
	__u32 n4;
	__u32 n6;
	__be32 v4[KCPX_MARTIAN4_MAX];
	__be32 v6[KCPX_MARTIAN6_MAX][4];
};
_Static_assert(sizeof(struct kcpx_martians) == 8 + 4 * KCPX_MARTIAN4_MAX + 16 * KCPX_MARTIAN6_MAX,
	       "kcpx_martians layout");

/*
 * What the XDP program did with each frame. Everything it cannot prove to be a tunnel
 * packet goes to the kernel untouched (pass_*); tunnel packets go to the AF_XDP socket of
 * their RX queue, or to the kernel's UDP socket when that queue has none (pass_no_xsk);
 * tunnel packets that are malformed are dropped, counted by reason (drop_*).
 */
struct kcpx_xdp_stats {
	__u64 rx_packets;    /* every frame the program saw */
	__u64 rx_bytes;	     /* their length, Ethernet header included */
	__u64 pass_short;    /* too short for the headers it claims (kernel drops it) */
	__u64 pass_non_ip;   /* ARP, LLDP, ... */
	__u64 pass_bad_ip;   /* unparseable IP header (IHL < 5, too many IPv6 ext headers) */
	__u64 pass_non_udp;  /* IP but not UDP (ICMP, TCP, ...) */
	__u64 pass_other;    /* UDP, not the tunnel's addresses/ports */
	__u64 pass_frag;     /* fragments: the kernel reassembles them for the UDP socket */
	__u64 pass_no_xsk;   /* tunnel packet, no AF_XDP socket on this RX queue */
	__u64 steered;	     /* tunnel packets redirected into the XSKMAP */
	__u64 steered_bytes; /* their UDP payload bytes */
	__u64 vlan;	     /* frames that carried one or two VLAN tags */
	__u64 drop_trunc;    /* IP total length or UDP length beyond the frame */
	__u64 drop_udp_len;  /* UDP length < 8 or beyond the IP payload */
	__u64 drop_csum0_v6; /* IPv6 UDP with a zero checksum (RFC 8200 forbids it) */
	__u64 drop_small;    /* payload < cfg.min_payload */
	__u64 drop_big;	     /* payload > cfg.max_payload */
	__u64 drop_native;   /* failed the native checks (reason: kcpx_nat_stats) */
	__u64 pass_addr;     /* server: to the listen port, not to --listen's address */
	__u64 drop_martian;  /* to the tunnel's port from a martian source or to a group
				address (bpf/lib/martian.h) */
};
_Static_assert(sizeof(struct kcpx_xdp_stats) == 20 * 8, "kcpx_xdp_stats layout");

/* What the TC egress program saw leave through the kernel's stack. */
struct kcpx_tc_stats {
	__u64 tx_packets;     /* every packet the program saw */
	__u64 tx_bytes;	      /* their length */
	__u64 tunnel_packets; /* tunnel packets (by the same rule as XDP, reversed) */
	__u64 tunnel_bytes;
	__u64 dscp_marked; /* tunnel packets whose DSCP was rewritten */
	__u64 dscp_err;	   /* the rewrite (store or checksum fix) failed */
	__u64 pad[2];
};
_Static_assert(sizeof(struct kcpx_tc_stats) == 8 * 8, "kcpx_tc_stats layout");

/*
 * The AF_XDP backend's own counters, summed over its sockets. rx_dropped..tx_empty come
 * from the kernel (getsockopt XDP_STATISTICS); the rest the backend counts itself.
 */
struct kcpx_xsk_stats {
	__u64 rx_packets;    /* datagrams handed to the engine from the RX rings */
	__u64 rx_bytes;	     /* their payload bytes */
	__u64 rx_kernel;     /* datagrams read from the fallback UDP socket */
	__u64 rx_bad;	     /* frames the backend rejected (parse, bad UDP checksum) */
	__u64 tx_packets;    /* datagrams put on the TX rings */
	__u64 tx_bytes;	     /* their payload bytes */
	__u64 tx_kernel;     /* sent through the UDP socket (no neighbour, other iface) */
	__u64 tx_ring_full;  /* send found no TX descriptor or frame */
	__u64 tx_kicks;	     /* sendto() wakeups of the TX ring */
	__u64 fill_wakeups;  /* wakeups of the fill ring (need_wakeup) */
	__u64 neigh_lookups; /* route + neighbour netlink queries */
	__u64 neigh_miss;    /* queries that found no usable MAC */
	__u64 rx_dropped;    /* kernel: RX ring full or no frame */
	__u64 rx_invalid;    /* kernel: invalid RX descriptors */
	__u64 tx_invalid;    /* kernel: invalid TX descriptors */
	__u64 rx_ring_full;  /* kernel: RX ring was full */
	__u64 rx_fill_empty; /* kernel: fill ring was empty */
	__u64 tx_ring_empty; /* kernel: TX ring was empty on a kick */
	__u64 rx_handed;     /* taken off a ring for another local port, queued for it */
	__u64 rx_port_full;  /* ... and dropped because that port's queue was full */
};
_Static_assert(sizeof(struct kcpx_xsk_stats) == 20 * 8, "kcpx_xsk_stats layout");

/*
 * Value of kcpx_xsk_queues (key: RX queue number, < KCPX_XSK_MAX_QUEUES): one queue's
 * AF_XDP datagrams, written by the daemon with its other counters (`kcpx stats` shows
 * the queues whose open is 1).
 */
struct kcpx_xsk_queue {
	__u64 rx_packets; /* datagrams taken off the queue's RX ring */
	__u64 tx_packets; /* datagrams put on its TX ring */
	__u32 thread;	  /* the engine (`kcpx up --threads`) that owns the queue */
	__u32 open;	  /* 1: the daemon has an AF_XDP socket on the queue */
};
_Static_assert(sizeof(struct kcpx_xsk_queue) == 3 * 8, "kcpx_xsk_queue layout");

/*
 * What `kcpx down` needs to undo an attach, even after a crash: kept in the pinned
 * kcpx_info map (array, key 0) by the loader.
 */
struct kcpx_info {
	__u32 ifindex;	   /* where the programs are attached */
	__u32 xdp_flags;   /* XDP_FLAGS_DRV_MODE or XDP_FLAGS_SKB_MODE as attached */
	__u32 xdp_prog_id; /* detach only if the attached program is still ours */
	__u32 tc_prog_id;
	__u32 tc_handle; /* the cls_bpf filter's handle and priority on clsact egress */
	__u32 tc_priority;
	__u32 pid;	    /* the daemon that attached them: `up` refuses while it lives */
	__u8 tc_own_hook;   /* we created clsact, so `down` removes it again */
	__u8 role;	    /* enum kcpx_bpf_role */
	__u8 napi_threaded; /* we turned threaded NAPI on, so `down` turns it off */
	__u8 pad;
	__u64 start_time_ns; /* CLOCK_BOOTTIME at attach: tells a live pid from a reused one */
};
_Static_assert(sizeof(struct kcpx_info) == 40, "kcpx_info layout");

#endif
