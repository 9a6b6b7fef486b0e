// SPDX-License-Identifier: MIT
/*
 * kcpx status [PID | -p PID]: ask every running tunnel (via its control socket) for its
 * session table, or only the one with that process id.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/cmd.h"
#include "io/ctl.h"

static void status_usage(void)
{
	fprintf(stderr, "usage: kcpx status [--json] [PID | -p PID]\n");
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

/*
 * One tunnel's answer, printed (JSON: an element of the array, `sep` before it). 0 on
 * success; 1 with the reason on stderr (text), or as an {"pid","error"} element (JSON).
 */
static int status_print(int pid, const char *path, bool json, const char *sep)
{
	char *text = NULL;
	int err;

	err = kcpx_ctl_query(path, json ? "json" : "text", &text);
	if (!err && json && (text[0] != '{' || !strstr(text, "}\n"))) {
		/* an older daemon (text), or an answer cut by the socket's buffer */
		err = text[0] == '{' ? -EMSGSIZE : -EPROTO;
		free(text);
	}
	if (err) {
		if (json)
			printf("%s{\"pid\":%d,\"error\":\"%s\"}\n", sep, pid,
			       err == -EPROTO	  ? "no JSON: the daemon predates status --json"
			       : err == -EMSGSIZE ? "answer cut: too many sessions for one answer"
						  : strerror(-err));
		else
			printf("pid %d: no answer (%s)\n", pid, strerror(-err));
		return 1;
	}
	printf("%s%s", json ? sep : "", text);
	free(text);
	return 0;
}

/* One tunnel's table. 0, or 1 with the reason on stderr. */
static int status_one(int pid, bool json)
{
	char path[512];
	int ret;

	snprintf(path, sizeof(path), "%s/%d.sock", KCPX_CTL_DIR, pid);
	if (access(path, F_OK) < 0) {
		/* the reap above removed the sockets of processes that are gone */
		fprintf(stderr, "kcpx status: no running kcpx tunnel has pid %d%s\n", pid,
			kill(pid, 0) == 0 || errno == EPERM ? " (that process is not a kcpx tunnel)"
							    : "");
		return 1;
	}
	if (json)
		printf("[");
	ret = status_print(pid, path, json, "");
	if (json)
		printf("]\n");
	if (ret && !json)
		fprintf(stderr, "kcpx status: pid %d did not answer\n", pid);
	return ret;
}

int kcpx_cmd_status(int argc, char **argv)
{
	struct dirent *de;
	bool json = false;
	int found = 0, pid = 0;
	DIR *d;

	/* argv[0] is "status" */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--json")) {
			json = true;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			printf("usage: kcpx status [--json] [PID | -p PID]\n"
			       "  the session tables of every running kcpx tunnel, or of the one "
			       "with PID;\n  --json: a JSON array, one object per tunnel\n");
			return 0;
		} else if (!pid && (a[0] != '-' || (!strcmp(a, "-p") && i + 1 < argc))) {
			if (a[0] == '-')
				a = argv[++i];
			if (parse_pid(a, &pid)) {
				fprintf(stderr, "kcpx status: '%s' is not a process id\n", a);
				status_usage();
				return 2;
			}
		} else {
			status_usage();
			return 2;
		}
	}
	kcpx_ctl_reap();
	if (pid)
		return status_one(pid, json);
	if (json)
		printf("[");
	d = opendir(KCPX_CTL_DIR);
	if (d) {
		while ((de = readdir(d))) {
			char path[512];

			if (sscanf(de->d_name, "%d.sock", &pid) != 1)
				continue;
			snprintf(path, sizeof(path), "%s/%s", KCPX_CTL_DIR, de->d_name);
			status_print(pid, path, json, found ? "," : "");
			found++;
		}
		closedir(d);
	}
	if (json)
		printf("]\n");
	else if (!found)
		printf("no kcpx tunnel is running\n");
	return 0;
}
