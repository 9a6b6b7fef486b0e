/* SPDX-License-Identifier: MIT */
/* `--tcp`: the tunnel over UDP sockets whose datagrams travel as fake TCP (io/faketcp.h). */
#ifndef KCPX_APP_TCPMODE_H
#define KCPX_APP_TCPMODE_H

#include "app/config.h"

/* Like kcpx_tunnel_run(cfg, NULL), with the translation attached for the run.
 * pin_ifname (`kcpx up IFACE --tcp`): the counters are pinned there for `kcpx stats`. */
int kcpx_tunnel_run_tcp(const struct kcpx_config *cfg, const char *pin_ifname);

#endif
