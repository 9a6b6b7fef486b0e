/* SPDX-License-Identifier: MIT */
#ifndef KCPX_APP_LOG_H
#define KCPX_APP_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

enum kcpx_log_level { KCPX_LOG_WARN = 0, KCPX_LOG_INFO = 1, KCPX_LOG_DEBUG = 2 };

/* Where log lines go (NULL path: stderr) and how much is said. */
int kcpx_log_open(const char *path);
void kcpx_log_set_level(enum kcpx_log_level level);
/* The stream log lines go to (the --log file, else stderr), for multi-line reports. */
FILE *kcpx_log_file(void);
enum kcpx_log_level kcpx_log_get_level(void);
void kcpx_log(enum kcpx_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define pr_warn(...)  kcpx_log(KCPX_LOG_WARN, __VA_ARGS__)
#define pr_info(...)  kcpx_log(KCPX_LOG_INFO, __VA_ARGS__)
#define pr_debug(...) kcpx_log(KCPX_LOG_DEBUG, __VA_ARGS__)

/*
 * Data-path logging is rate-limited: at most `burst` lines per second per call site.
 * Usage: pr_warn_ratelimited("bad packet from %s", peer);
 */
bool kcpx_log_ratelimit(unsigned *stamp, unsigned *count);
#define pr_warn_ratelimited(...)                                                                   \
	do {                                                                                       \
		static __thread unsigned _rl_stamp, _rl_count;                                     \
		if (kcpx_log_ratelimit(&_rl_stamp, &_rl_count))                                    \
			kcpx_log(KCPX_LOG_WARN, __VA_ARGS__);                                      \
	} while (0)

#endif
