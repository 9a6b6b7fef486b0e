// SPDX-License-Identifier: MIT
#include "io/log.h"

#include <stdarg.h>
#include <stdio.h>

static void log_stderr(int level, const char *msg)
{
	static const char *const tag[] = { "warn", "info", "debug" };

	if (level <= 1)
		fprintf(stderr, "kcpx: %s: %s\n", tag[level], msg);
}

static kcpx_io_log_fn log_fn = log_stderr;

void kcpx_io_set_log(kcpx_io_log_fn fn)
{
	log_fn = fn ? fn : log_stderr;
}

void kcpx_io_log(int level, const char *msg)
{
	log_fn(level, msg);
}

void kcpx_io_logf(int level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_fn(level, buf);
}
