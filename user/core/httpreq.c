// SPDX-License-Identifier: MIT
#include "core/httpreq.h"

#include <errno.h>
#include <string.h>

/* The end of the header ("\r\n\r\n", or "\n\n" from lax clients), or NULL. */
static const char *header_end(const char *buf, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i + 1] == '\n')
			return buf + i + 2;
		if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return buf + i + 3;
	}
	return NULL;
}

int kcpx_httpreq_parse(const char *buf, size_t len, size_t max, struct kcpx_httpreq *out)
{
	const char *end = header_end(buf, len), *p, *path, *stop;
	size_t n;

	if (!end)
		return len >= max ? 431 : -EAGAIN;
	memset(out, 0, sizeof(*out));
	if (len >= 4 && !memcmp(buf, "GET ", 4)) {
		p = buf + 4;
	} else if (len >= 5 && !memcmp(buf, "HEAD ", 5)) {
		p = buf + 5;
		out->head = true;
	} else {
		return 405;
	}
	path = p;
	/* the path runs to the next space, which must come before the line ends */
	while (p < end && *p != ' ' && *p != '\r' && *p != '\n' && *p != '\0')
		p++;
	if (p == end || *p != ' ' || path == p || *path != '/')
		return 400;
	if (end - p < 6 || memcmp(p + 1, "HTTP/", 5))
		return 400;
	stop = path;
	while (stop < p && *stop != '?' && *stop != '#')
		stop++;
	n = (size_t)(stop - path);
	if (n >= sizeof(out->path))
		return 400;
	memcpy(out->path, path, n);
	out->path[n] = 0;
	return 0;
}
