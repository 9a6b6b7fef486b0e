// SPDX-License-Identifier: MIT
#include "app/reload.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/file.h"
#include "app/log.h"

static struct kcpx_config *running;
static int saved_argc;
static char **saved_argv;

int kcpx_reload_init(struct kcpx_config *cfg, int argc, char **argv)
{
	running = cfg;
	saved_argv = calloc((size_t)argc + 1, sizeof(char *));
	if (!saved_argv)
		return -ENOMEM;
	for (int i = 0; i < argc; i++) {
		saved_argv[i] = strdup(argv[i]);
		if (!saved_argv[i])
			return -ENOMEM;
	}
	saved_argc = argc;
	return 0;
}

/* The -c FILE among the saved flags (-c F, --c F, -c=F, --c=F), or NULL. */
static const char *config_path(void)
{
	const char *path = NULL;

	for (int i = 0; i < saved_argc; i++) {
		const char *a = saved_argv[i];

		if (a[0] != '-')
			continue;
		a += a[1] == '-' ? 2 : 1;
		if (!strcmp(a, "c") && i + 1 < saved_argc)
			path = saved_argv[++i];
		else if (!strncmp(a, "c=", 2))
			path = a + 2;
	}
	return path;
}

/*
 * Under "user" kcpx reads its files again as that user, not as root: a config or key file
 * only root may read (0600 root, as shipped) cannot be read any more. Said plainly, with
 * the way out, instead of the parser's bare "Permission denied" on stderr. true: refused.
 */
static bool unreadable(const char *what, const char *path)
{
	int fd;

	if (!path || !path[0] || !running->user[0])
		return false;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		return false;
	}
	if (errno != EACCES)
		return false;
	pr_warn("reload refused: %s %s cannot be read by user %s (uid %u, gid %u), which kcpx "
		"runs as since it started (\"user\"); let it read the file (e.g. `chgrp %u %s && "
		"chmod 640 %s`) or restart kcpx to apply the change; the running configuration "
		"stays",
		what, path, running->user, (unsigned)geteuid(), (unsigned)getegid(),
		(unsigned)getegid(), path, path);
	return true;
}

int kcpx_reload(void)
{
	char restart[512] = "", live[512] = "";
	struct kcpx_config *n;
	char **argv;
	int rest = 0, err;

	if (!running || !saved_argv) {
		pr_warn("reload: nothing to read again");
		return 0;
	}
	if (unreadable("the config file", config_path()) ||
	    unreadable("--keyfile", running->keyfile))
		return 0;
	n = malloc(sizeof(*n));
	/* the parser scrubs --key in what it is given: hand it a copy of the copy */
	argv = calloc((size_t)saved_argc + 1, sizeof(char *));
	if (!n || !argv) {
		free(n);
		free(argv);
		pr_warn("reload: out of memory; the running configuration stays");
		return 0;
	}
	for (int i = 0; i < saved_argc; i++)
		argv[i] = strdup(saved_argv[i]);
	kcpx_config_defaults(n, running->role);
	err = kcpx_config_parse(n, saved_argc, argv, &rest);
	if (!err)
		err = kcpx_config_finish(n);
	for (int i = 0; i < saved_argc; i++) {
		if (argv[i])
			explicit_bzero(argv[i], strlen(argv[i]));
		free(argv[i]);
	}
	free(argv);
	if (err) {
		pr_warn("reload refused: the configuration does not parse (the reason went to "
			"stderr); the running configuration stays");
		goto out;
	}
	kcpx_config_diff(running, n, restart, sizeof(restart), live, sizeof(live));
	if (restart[0]) {
		pr_warn("reload refused: %s changed, which needs a restart; the running "
			"configuration stays",
			restart);
		err = -EINVAL;
		goto out;
	}
	*running = *n;
	/* reopened even when unchanged: logrotate moves the file, SIGHUP takes the new one */
	if (running->log[0]) {
		err = kcpx_log_open(running->log);
		if (err)
			pr_warn("reload: --log '%s': %s; logging where it did", running->log,
				kcpx_file_why(err));
	} else {
		kcpx_log_open(NULL);
	}
	kcpx_log_set_level((enum kcpx_log_level)running->verbose);
	pr_info("reload: %s%s", live[0] ? "applied " : "nothing changed", live[0] ? live : "");
	err = 0;
out:
	explicit_bzero(n, sizeof(*n));
	free(n);
	return err ? 0 : 1;
}
