// SPDX-License-Identifier: MIT
#include <stdio.h>
#include <string.h>

#include "app/log.h"

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		printf("usage: kcpx client|server|up|down|stats|status ...\n");
		return argc < 2 ? 2 : 0;
	}
	pr_warn("unknown command '%s'", argv[1]);
	return 2;
}
