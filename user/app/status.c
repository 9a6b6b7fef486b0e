// SPDX-License-Identifier: MIT
/*
 * kcpx status [PID | -p PID]: ask every running tunnel (via its control socket) for its
 * session table, or only the one with that process id.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/cmd.h"
#include "io/ctl.h"

static void status_usage(void)
{
	fprintf(stderr, "usage: kcpx status [PID | -p PID]\n");
}

/* A process id as typed: decimal, positive, nothing after it. 0 or -EINVAL. */
static int parse_pid(const char *s, int *pid)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!*s || *end || errno || v <= 0 || v > INT_MAX)
		return -EINVAL;
	*pid = (int)v;
	return 0;
}

/* One tunnel's table. 0, or 1 with the reason on stderr. */
static int status_one(int pid)
{
	char path[512], *text = NULL;
	int err;

	snprintf(path, sizeof(path), "%s/%d.sock", KCPX_CTL_DIR, pid);
	if (access(path, F_OK) < 0) {
		/* the reap above removed the sockets of processes that are gone */
		fprintf(stderr, "kcpx status: no running kcpx tunnel has pid %d%s\n", pid,
			kill(pid, 0) == 0 || errno == EPERM ? " (that process is not a kcpx tunnel)"
							    : "");
		return 1;
	}
	err = kcpx_ctl_query(path, &text);
	if (err) {
		fprintf(stderr, "kcpx status: pid %d: no answer (%s)\n", pid, strerror(-err));
		return 1;
	}
	printf("%s", text);
	free(text);
	return 0;
}

int kcpx_cmd_status(int argc, char **argv)
{
	struct dirent *de;
	int found = 0, pid = 0;
	DIR *d;

	/* argv[0] is "status" */
	if (argc == 2 && strcmp(argv[1], "-p") && argv[1][0] != '-') {
		if (parse_pid(argv[1], &pid)) {
			fprintf(stderr, "kcpx status: '%s' is not a process id\n", argv[1]);
			status_usage();
			return 2;
		}
	} else if (argc == 3 && !strcmp(argv[1], "-p")) {
		if (parse_pid(argv[2], &pid)) {
			fprintf(stderr, "kcpx status: '%s' is not a process id\n", argv[2]);
			status_usage();
			return 2;
		}
	} else if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		printf("usage: kcpx status [PID | -p PID]\n"
		       "  the session tables of every running kcpx tunnel, or of the one with "
		       "PID\n");
		return 0;
	} else if (argc > 1) {
		status_usage();
		return 2;
	}
	kcpx_ctl_reap();
	if (pid)
		return status_one(pid);
	d = opendir(KCPX_CTL_DIR);
	if (d) {
		while ((de = readdir(d))) {
			char path[512], *text = NULL;
			int err;

			if (sscanf(de->d_name, "%d.sock", &pid) != 1)
				continue;
			snprintf(path, sizeof(path), "%s/%s", KCPX_CTL_DIR, de->d_name);
			err = kcpx_ctl_query(path, &text);
			if (err) {
				printf("pid %d: no answer (%s)\n", pid, strerror(-err));
				continue;
			}
			printf("%s", text);
			free(text);
			found++;
		}
		closedir(d);
	}
	if (!found)
		printf("no kcpx tunnel is running\n");
	return 0;
}
