// SPDX-License-Identifier: MIT
#include "core/ftcpflow.h"

#define NS 1000000000ull

enum kcpx_ftcp_verdict kcpx_ftcp_judge(const struct kcpx_ftcp_flow *f, uint64_t now_ns,
				       uint64_t est_ns, bool server)
{
	if (f->state == KCPX_FTCP_RESET)
		return KCPX_FTCP_GONE_RESET;
	if (f->state == KCPX_FTCP_SYN)
		return KCPX_FTCP_GONE_SYN;
	if (server)
		return kcpx_ftcp_age(now_ns, f->rx_ns) > KCPX_FTCP_IDLE_S * NS ? KCPX_FTCP_GONE_IDLE
									       : KCPX_FTCP_KEEP;
	/* A NAT or firewall that forgot the flow drops it silently: we send, nothing comes
	 * back (a live peer answers KCP at least every keepalive). A young flow gets the
	 * whole span before it is judged silent. */
	if (kcpx_ftcp_age(now_ns, f->tx_ns) < KCPX_FTCP_SENDING_NS &&
	    kcpx_ftcp_age(now_ns, f->rx_ns) > KCPX_FTCP_SILENT_S * NS &&
	    kcpx_ftcp_age(now_ns, est_ns) > KCPX_FTCP_SILENT_S * NS)
		return KCPX_FTCP_GONE_SILENT;
	return KCPX_FTCP_KEEP;
}

const char *kcpx_ftcp_verdict_str(enum kcpx_ftcp_verdict v)
{
	switch (v) {
	case KCPX_FTCP_KEEP:
		return "kept";
	case KCPX_FTCP_GONE_RESET:
		return "reset";
	case KCPX_FTCP_GONE_SYN:
		return "peer sent SYN";
	case KCPX_FTCP_GONE_SILENT:
		return "nothing back";
	case KCPX_FTCP_GONE_IDLE:
		return "idle";
	}
	return "?";
}
