// SPDX-License-Identifier: MIT
/*
 * mkman: the flag list of kcpx(1), printed from the same table that drives the command
 * line, JSON files and --help (user/app/config.c), so the man page cannot miss a flag.
 * The Makefile puts its output where docs/kcpx.1.scd says @FLAGS@.
 */
#include <stdio.h>

#include "app/config.h"

int main(void)
{
	kcpx_config_man(stdout);
	return ferror(stdout) ? 1 : 0;
}
