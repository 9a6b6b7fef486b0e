// SPDX-License-Identifier: MIT
/*
 * kcpx up IFACE: NOT DONE YET. Whoever lands the AF_XDP backend (user/io/xsk.c, issue 5)
 * owns this file and replaces it: parse flags with kcpx_cmd_parse_tunnel() (role from
 * -c FILE via kcpx_config_role_of_json(), or a `client`/`server` word), attach with
 * user/io/xdp.c, then kcpx_tunnel_run(cfg, &backend) with a struct kcpx_tunnel_backend
 * (app/tunnel.h) whose open() hands out the AF_XDP dgram and whose publish() copies the
 * counters into the pinned map.
 */
#include <stdio.h>

#include "app/cmd.h"

int kcpx_cmd_up(int argc, char **argv)
{
	fprintf(stderr, "kcpx up: the XDP/AF_XDP backend is not part of this build yet; "
			"run `kcpx client` or `kcpx server` (UDP sockets) instead\n");
	return 1;
}
