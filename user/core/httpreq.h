/* SPDX-License-Identifier: MIT */
/*
 * The request line of an HTTP/1.x request, for the metrics endpoint (io/http.c), without
 * I/O: bytes in, a verdict out. Only what /metrics and /healthz need: the method (GET or
 * HEAD) and the path without its query; headers are skipped. The input comes from the
 * network and is never trusted: any byte sequence gives one of the verdicts below.
 */
#ifndef KCPX_CORE_HTTPREQ_H
#define KCPX_CORE_HTTPREQ_H

#include <stdbool.h>
#include <stddef.h>

#define KCPX_HTTPREQ_PATH_MAX 256

struct kcpx_httpreq {
	bool head;			  /* HEAD: answer without the body */
	char path[KCPX_HTTPREQ_PATH_MAX]; /* "/metrics", NUL-terminated, no query */
};

/*
 * buf[0..len): what has arrived so far. Returns 0 when the header is complete and parsed
 * (out filled), -EAGAIN when more bytes are needed (len < max), or an HTTP status to
 * answer with: 400 (malformed request line, path not absolute or too long), 405 (method
 * other than GET/HEAD), 431 (no end of header within max bytes).
 */
int kcpx_httpreq_parse(const char *buf, size_t len, size_t max, struct kcpx_httpreq *out);

#endif
