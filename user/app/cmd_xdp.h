/* SPDX-License-Identifier: MIT */
#ifndef KCPX_APP_CMD_XDP_H
#define KCPX_APP_CMD_XDP_H

/* kcpx down IFACE: detach kcpx's XDP and TC programs from IFACE and remove its pins. */
int kcpx_cmd_down(int argc, char **argv);
/* kcpx stats IFACE [-i SECS] [-n COUNT]: the pinned counters, summed over CPUs. */
int kcpx_cmd_stats(int argc, char **argv);

#endif
