// SPDX-License-Identifier: MIT
#include <stdio.h>

#include "app/cmd.h"

int kcpx_cmd_up(int argc, char **argv)
{
	fprintf(stderr, "kcpx up: the XDP/AF_XDP backend is not part of this build yet; "
			"run `kcpx client` or `kcpx server` (UDP sockets) instead\n");
	return 1;
}
