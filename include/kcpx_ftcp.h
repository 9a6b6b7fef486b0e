/* SPDX-License-Identifier: MIT */
/*
 * The contract between bpf/faketcp.bpf.c and userspace (user/io/faketcp.c) for `--tcp`:
 * the tunnel's UDP datagrams travel as the payload of TCP segments of a flow whose
 * three-way handshake the kernel's own TCP stack made (docs/INTEROP.md, "--tcp").
 *
 *   kcpx_ftcp_ports  local ports that carry fake TCP, one bit each (key 0, struct
 *                    kcpx_ftcp_portset). Egress: a UDP datagram from such a port becomes
 *                    a TCP segment of its flow. Ingress: a TCP segment to such a port, of
 *                    a known flow, becomes UDP again.
 *   kcpx_ftcp_flows  one entry per established flow, inserted by userspace once the
 *                    kernel's socket is connected (client) or accepted (server), with the
 *                    sequence numbers read from that socket. The programs advance them.
 *   kcpx_ftcp_stats  per-CPU counters (key 0).
 *   kcpx_ftcp_conns  what userspace saw of the flows (key 0, CPU 0's slot; written once a
 *                    second). Under `kcpx up IFACE --tcp` both counter maps are pinned
 *                    under /sys/fs/bpf/kcpx/IFACE for `kcpx stats IFACE`.
 *
 * Only fixed-width fields, explicit padding and a size check on every struct.
 */
#ifndef KCPX_FTCP_H
#define KCPX_FTCP_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/*
 * Every packet on the interface is checked against the set, ours or not: a bitmap in a
 * one-element array is one lookup the verifier inlines and a bit test, where a hash map
 * costs a hash and a bucket walk. Bit n of w[n / 64] (n = the port in host order).
 */
struct kcpx_ftcp_portset {
	__u64 w[65536 / 64];
};
_Static_assert(sizeof(struct kcpx_ftcp_portset) == 8192, "kcpx_ftcp_portset layout");
#define KCPX_FTCP_FLOWS_MAX 4096
/* Largest TCP payload the egress program converts (the tunnel never sends more). */
#define KCPX_FTCP_PAYLOAD_MAX 1500
/* A segment may move rcv_nxt (what we acknowledge) at most this far ahead at once: a
 * spoofed segment of a known flow cannot push our ACKs out of any plausible window. */
#define KCPX_FTCP_ACK_JUMP_MAX (1u << 24)
/* ... and only when its own ACK is at most this far behind our snd_nxt (not ahead). */
#define KCPX_FTCP_ACK_BEHIND_MAX (1u << 30)
/* A RST counts only with its sequence number this close to rcv_nxt (RFC 5961 in spirit:
 * the kernel's socket cannot judge it, its rcv_nxt stopped at the handshake). */
#define KCPX_FTCP_RST_WINDOW (1u << 20)

/* Flow key: the peer's address and port and our port, as seen on the wire. */
struct kcpx_ftcp_key {
	__u8 raddr[16]; /* IPv6, or IPv4 as ::ffff:a.b.c.d */
	__be16 rport;
	__be16 lport;
};
_Static_assert(sizeof(struct kcpx_ftcp_key) == 20, "kcpx_ftcp_key layout");

enum kcpx_ftcp_state {
	KCPX_FTCP_EST = 1,   /* established: both directions translate */
	KCPX_FTCP_RESET = 2, /* an in-window RST came in: userspace makes a new handshake */
	KCPX_FTCP_SYN = 3,   /* the peer sent a SYN on this 4-tuple: it made a new handshake */
};

struct kcpx_ftcp_flow {
	__u32 snd_nxt; /* host order: sequence number of our next segment */
	__u32 rcv_nxt; /* host order: the acknowledgement number we send */
	__u16 window;  /* host order: the window field we send */
	__u8 state;    /* enum kcpx_ftcp_state; only EST translates */
	__u8 pad;
	/* host order: rcv_nxt when the flow was handed over. The kernel's socket never sees
	 * the data, so its RST (the peer closing) carries this number: a RST with exactly
	 * this sequence number counts too, however far rcv_nxt has moved since. */
	__u32 rcv_isn;
	__u64 rx_ns; /* bpf_ktime_get_coarse_ns() of the last segment translated in */
	__u64 tx_ns; /* ... and out */
};
_Static_assert(sizeof(struct kcpx_ftcp_flow) == 32, "kcpx_ftcp_flow layout");

/*
 * What the two programs did. Egress sees only UDP from a fake-TCP port (everything else
 * leaves untouched, uncounted); ingress sees only TCP to a fake-TCP port.
 */
struct kcpx_ftcp_stats {
	__u64 tx_segs;	   /* UDP datagrams sent on as TCP segments */
	__u64 tx_bytes;	   /* their payload bytes */
	__u64 tx_noflow;   /* no established flow for the datagram: dropped */
	__u64 tx_bad;	   /* not convertible (IP options, GSO, too big): dropped */
	__u64 tx_err;	   /* a helper failed (room, store): dropped */
	__u64 rx_segs;	   /* TCP segments handed on as UDP datagrams */
	__u64 rx_bytes;	   /* their payload bytes */
	__u64 rx_ooo;	   /* ... of those, not at rcv_nxt (a gap or a reordering before) */
	__u64 rx_noflow;   /* to a fake-TCP port but no known flow: to the kernel */
	__u64 rx_ctl;	   /* SYN, FIN or no payload, of a known flow: to the kernel */
	__u64 rx_rst;	   /* in-window RST: flow marked for a new handshake, to the kernel */
	__u64 rx_rst_bad;  /* RST out of window (blind or stale): dropped */
	__u64 rx_syn;	   /* SYN on an established flow: marked, to the kernel */
	__u64 rx_trunc;	   /* IP or TCP lengths beyond the frame, data offset < 5: dropped */
	__u64 rx_unsup;	   /* IPv4 options, IPv6 extension headers, fragments: to the kernel */
	__u64 rx_ack_jump; /* data too far ahead, or an implausible ACK: translated, rcv_nxt kept */
};
_Static_assert(sizeof(struct kcpx_ftcp_stats) == 16 * 8, "kcpx_ftcp_stats layout");

/* What userspace saw of the flows, since the daemon started (all daemon-wide). */
struct kcpx_ftcp_counts {
	__u64 flows;	      /* established now */
	__u64 handshakes;     /* flows established, the first one included */
	__u64 connect_failed; /* client: handshakes that failed or timed out */
	__u64 refused;	      /* server: connections over the caps, closed with a RST */
	/* flows ended, by why (each one a new handshake for a client) */
	__u64 end_reset;  /* an in-window RST */
	__u64 end_syn;	  /* the peer sent a new SYN on the 4-tuple */
	__u64 end_silent; /* client: sending, nothing back for KCPX_FTCP_SILENT_S */
	__u64 end_idle;	  /* server: nothing in for KCPX_FTCP_IDLE_S */
	__u64 end_closed; /* the kernel's socket saw FIN, RST or an error */
	__u64 end_dup;	  /* server: the same 4-tuple connected again */
};
_Static_assert(sizeof(struct kcpx_ftcp_counts) == 10 * 8, "kcpx_ftcp_counts layout");

#endif
