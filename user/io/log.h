/* SPDX-License-Identifier: MIT */
/*
 * The io layer's logger: io code cannot call app/log.h (arrows point down), so it formats
 * its lines here and hands them to the function the app installs. level as in app/log.h:
 * 0 warn, 1 info, 2 debug. Until the app installs one, warnings and info go to stderr.
 */
#ifndef KCPX_IO_LOG_H
#define KCPX_IO_LOG_H

typedef void (*kcpx_io_log_fn)(int level, const char *msg);

/* NULL restores the stderr default. */
void kcpx_io_set_log(kcpx_io_log_fn fn);
void kcpx_io_logf(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The line as given, for messages that arrive formatted (libbpf's). */
void kcpx_io_log(int level, const char *msg);

#endif
