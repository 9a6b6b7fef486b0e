// SPDX-License-Identifier: MIT
/*
 * kcpx: a KCP tunnel that speaks kcptun's wire format.
 *
 *   kcpx client [kcptun client flags | -c conf.json]   UDP sockets
 *   kcpx server [kcptun server flags | -c conf.json]   UDP sockets
 *   kcpx up IFACE [-c conf.json | client/server flags]  XDP + AF_XDP
 *   kcpx down [IFACE] | kcpx stats [IFACE | -p PID] | kcpx status | kcpx check -c conf.json
 */
#include <stdio.h>
#include <string.h>

#include "app/cmd.h"

static void usage(FILE *fp)
{
	fprintf(fp,
		"usage: kcpx COMMAND [ARGS]\n"
		"\n"
		"  client [flags]         run a tunnel client over UDP sockets (kcptun's flags)\n"
		"  server [flags]         run a tunnel server over UDP sockets (kcptun's flags)\n"
		"  up IFACE [-c FILE | client|server flags]\n"
		"                         attach XDP/TC to IFACE and run the tunnel over AF_XDP\n"
		"  down [IFACE]           detach kcpx from IFACE and remove its pinned maps;\n"
		"                         remove the --tcp nftables rules of dead daemons\n"
		"  stats [IFACE | -p PID] [-i SECS] [-n COUNT] [--json]\n"
		"                         show the counters pinned under /sys/fs/bpf/kcpx/IFACE,\n"
		"                         or those of the tunnel PID (alone: the one running)\n"
		"  status [--json] [PID | -p PID]\n"
		"                         show the running tunnels' sessions and streams, or\n"
		"                         only those of the tunnel with process id PID\n"
		"  check [client|server] -c FILE [flags]\n"
		"                         validate a config and print the effective settings\n"
		"  version                print the version\n"
		"\n"
		"`kcpx client --help` and `kcpx server --help` list every flag.\n");
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	if (!cmd || !strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		usage(cmd ? stdout : stderr);
		return cmd ? 0 : 2;
	}
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version") || !strcmp(cmd, "-v")) {
		printf("kcpx %s (kcptun wire format 20210922)\n", KCPX_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "client"))
		return kcpx_cmd_tunnel(KCPX_ROLE_CLIENT, argc - 2, argv + 2);
	if (!strcmp(cmd, "server"))
		return kcpx_cmd_tunnel(KCPX_ROLE_SERVER, argc - 2, argv + 2);
	if (!strcmp(cmd, "up"))
		return kcpx_cmd_up(argc - 1, argv + 1);
	if (!strcmp(cmd, "down"))
		return kcpx_cmd_down(argc - 1, argv + 1);
	if (!strcmp(cmd, "stats"))
		return kcpx_cmd_stats(argc - 1, argv + 1);
	if (!strcmp(cmd, "check"))
		return kcpx_cmd_check(argc - 1, argv + 1);
	if (!strcmp(cmd, "status"))
		return kcpx_cmd_status(argc - 1, argv + 1);
	fprintf(stderr, "kcpx: unknown command '%s'\n\n", cmd);
	usage(stderr);
	return 2;
}
