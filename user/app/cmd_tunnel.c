// SPDX-License-Identifier: MIT
/* kcpx client|server, and the flag parsing `kcpx up` shares with them. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "app/cmd.h"
#include "app/config.h"
#include "app/log.h"
#include "app/reload.h"
#include "app/tcpmode.h"
#include "app/tunnel.h"
#include "io/file.h"

/* Shared by client, server and up: flags (and -c) into cfg, then the mode preset. */
enum kcpx_role kcpx_cmd_role(int argc, char **argv, int *i)
{
	enum kcpx_role role = KCPX_ROLE_NONE;

	if (*i < argc && !strcmp(argv[*i], "client")) {
		(*i)++;
		return KCPX_ROLE_CLIENT;
	}
	if (*i < argc && !strcmp(argv[*i], "server")) {
		(*i)++;
		return KCPX_ROLE_SERVER;
	}
	for (int k = *i; k + 1 < argc; k++)
		if (!strcmp(argv[k], "-c") || !strcmp(argv[k], "--c"))
			role = kcpx_config_role_of_json(argv[k + 1]);
	return role;
}

int kcpx_cmd_parse_tunnel(struct kcpx_config *cfg, enum kcpx_role role, int argc, char **argv)
{
	int rest = 0, err;

	kcpx_config_defaults(cfg, role);
	err = kcpx_config_parse(cfg, argc, argv, &rest);
	if (err)
		return err;
	if (rest < argc) {
		fprintf(stderr, "kcpx: unexpected argument '%s'\n", argv[rest]);
		return -EINVAL;
	}
	err = kcpx_config_finish(cfg);
	if (err)
		return err;
	if (cfg->log[0]) {
		err = kcpx_log_open(cfg->log);
		if (err) {
			fprintf(stderr, "kcpx: --log '%s': %s\n", cfg->log, kcpx_file_why(err));
			return -EINVAL;
		}
	}
	kcpx_log_set_level((enum kcpx_log_level)cfg->verbose);
	if (!cfg->key_given || !strcmp(cfg->key, KCPX_DEFAULT_KEY))
		pr_warn("the key is kcptun's default, which everyone knows: anyone can use this "
			"tunnel%s. Set --keyfile FILE (or --key, KCPTUN_KEY) at both ends",
			role == KCPX_ROLE_SERVER ? " to reach --target" : " or read it");
	return 0;
}

int kcpx_cmd_tunnel(enum kcpx_role role, int argc, char **argv)
{
	struct kcpx_config cfg;
	int err = kcpx_reload_init(&cfg, argc, argv);

	if (!err)
		err = kcpx_cmd_parse_tunnel(&cfg, role, argc, argv);
	if (err)
		return err > 0 ? 0 : 2;
	if (cfg.tcp)
		return kcpx_tunnel_run_tcp(&cfg, NULL) ? 1 : 0;
	return kcpx_tunnel_run(&cfg, NULL) ? 1 : 0;
}
