// SPDX-License-Identifier: MIT
#include "app/log.h"

#include "io/file.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static FILE *log_fp;
static enum kcpx_log_level log_level = KCPX_LOG_INFO;

int kcpx_log_open(const char *path)
{
	FILE *fp;
	int fd;

	if (!path || !*path) {
		if (log_fp)
			fclose(log_fp);
		log_fp = NULL;
		return 0;
	}
	fd = kcpx_file_append(path);
	if (fd < 0)
		return fd;
	fp = fdopen(fd, "a");
	if (!fp) {
		int err = -errno;

		close(fd);
		return err;
	}
	setvbuf(fp, NULL, _IOLBF, 0);
	if (log_fp) /* SIGHUP reopens the file (logrotate) */
		fclose(log_fp);
	log_fp = fp;
	return 0;
}

void kcpx_log_set_level(enum kcpx_log_level level)
{
	log_level = level;
}

FILE *kcpx_log_file(void)
{
	return log_fp ? log_fp : stderr;
}

enum kcpx_log_level kcpx_log_get_level(void)
{
	return log_level;
}

void kcpx_log(enum kcpx_log_level level, const char *fmt, ...)
{
	static const char *const tag[] = { "warn", "info", "debug" };
	FILE *fp = log_fp ? log_fp : stderr;
	char stamp[32];
	struct tm tm;
	time_t t;
	va_list ap;

	if (level > log_level)
		return;
	t = time(NULL);
	localtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y/%m/%d %H:%M:%S", &tm);
	fprintf(fp, "%s kcpx %s: ", stamp, tag[level]);
	va_start(ap, fmt);
	vfprintf(fp, fmt, ap);
	va_end(ap);
	fputc('\n', fp);
}

bool kcpx_log_ratelimit(unsigned *stamp, unsigned *count)
{
	unsigned now = (unsigned)time(NULL);

	if (*stamp != now) {
		*stamp = now;
		*count = 0;
	}
	return ++*count <= 5;
}
