// SPDX-License-Identifier: MIT
/* kcpx status: ask every running tunnel (via its control socket) for its session table. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/cmd.h"
#include "io/ctl.h"

int kcpx_cmd_status(int argc, char **argv)
{
	struct dirent *de;
	int found = 0;
	DIR *d;

	if (argc > 1) {
		fprintf(stderr, "usage: kcpx status\n");
		return 2;
	}
	kcpx_ctl_reap();
	d = opendir(KCPX_CTL_DIR);
	if (d) {
		while ((de = readdir(d))) {
			char path[512], *text = NULL;
			int pid, err;

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
