/* SPDX-License-Identifier: MIT */
/* The subcommands of the kcpx binary (main.c dispatches to these). */
#ifndef KCPX_APP_CMD_H
#define KCPX_APP_CMD_H

#include "app/cmd_xdp.h"
#include "app/config.h"

#define KCPX_VERSION "0.1.0"

/* client/server/up: flags (and -c FILE) into cfg, then the mode preset and the checks.
 * Returns 0, 1 after --help, or -errno with the reason printed. */
int kcpx_cmd_parse_tunnel(struct kcpx_config *cfg, enum kcpx_role role, int argc, char **argv);
/* The role of `kcpx up|check [client|server] ... [-c FILE]`: the word at argv[*i] (then
 * skipped), else what FILE's keys say; KCPX_ROLE_NONE when neither tells. */
enum kcpx_role kcpx_cmd_role(int argc, char **argv, int *i);
/* kcpx client|server over UDP sockets: the process exit code. */
int kcpx_cmd_tunnel(enum kcpx_role role, int argc, char **argv);
int kcpx_cmd_up(int argc, char **argv);
int kcpx_cmd_status(int argc, char **argv);
int kcpx_cmd_check(int argc, char **argv);

#endif
