/* SPDX-License-Identifier: MIT */
/*
 * When a `--tcp` flow ends, I/O-free: the once-a-second verdict on one established flow
 * (include/kcpx_ftcp.h) from what the BPF programs left in its map entry and the time.
 *
 * The programs stamp rx_ns/tx_ns with bpf_ktime_get_coarse_ns() (CLOCK_MONOTONIC at tick
 * resolution: a clock read per packet costs more, and the verdicts count whole seconds)
 * whenever they translate a segment, so a stamp may lag the `now` of CLOCK_MONOTONIC by a
 * tick, or be later than the `now` the caller read before it
 * looked the flow up: such a stamp means "just now", never "long ago". Ages are therefore
 * taken with kcpx_ftcp_age(), which saturates at 0, not by an unsigned subtraction (that
 * turned a flow busy at the very moment of the check into one idle for 584 years and
 * closed it: the lost kcptun-client --tcp flows under load).
 */
#ifndef KCPX_CORE_FTCPFLOW_H
#define KCPX_CORE_FTCPFLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "kcpx_ftcp.h"

/* server: no segment in for this long: the flow is closed (with a RST at full TTL) */
#define KCPX_FTCP_IDLE_S 120
/* client: sending, and no segment back for this long: a new handshake */
#define KCPX_FTCP_SILENT_S 30
/* client: "sending" means a segment out within this long */
#define KCPX_FTCP_SENDING_NS 2000000000ull

enum kcpx_ftcp_verdict {
	KCPX_FTCP_KEEP,
	KCPX_FTCP_GONE_RESET,  /* an in-window RST came in */
	KCPX_FTCP_GONE_SYN,    /* the peer sent a new SYN on the 4-tuple */
	KCPX_FTCP_GONE_SILENT, /* client: sending, nothing back (a NAT forgot the flow) */
	KCPX_FTCP_GONE_IDLE,   /* server: nothing in for KCPX_FTCP_IDLE_S */
};

/* now - t, or 0 when t is later than now (stamped after the caller read its clock). */
static inline uint64_t kcpx_ftcp_age(uint64_t now, uint64_t t)
{
	return t >= now ? 0 : now - t;
}

/*
 * f: the flow's map entry; now_ns: CLOCK_MONOTONIC, read at any time before or after the
 * lookup; est_ns: when userspace put the flow in the map; server: our role.
 */
enum kcpx_ftcp_verdict kcpx_ftcp_judge(const struct kcpx_ftcp_flow *f, uint64_t now_ns,
				       uint64_t est_ns, bool server);
const char *kcpx_ftcp_verdict_str(enum kcpx_ftcp_verdict v);

#endif
