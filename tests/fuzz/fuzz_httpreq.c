// SPDX-License-Identifier: MIT
/*
 * The metrics endpoint's request parser on arbitrary bytes: never reads past len, always
 * one of its verdicts, and a parsed path is absolute, terminated and free of '?', ' '.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/httpreq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kcpx_httpreq r;
	/* a private copy of exactly size bytes, so ASan sees any overread */
	char *buf = malloc(size ? size : 1);
	int v;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	v = kcpx_httpreq_parse(buf, size, 4096, &r);
	if (v == 0) {
		size_t n = strnlen(r.path, sizeof(r.path));
		if (n == sizeof(r.path) || r.path[0] != '/' || strpbrk(r.path, "? \r\n"))
			abort();
	} else if (v != -EAGAIN && v != 400 && v != 405 && v != 431) {
		abort();
	}
	if (v == -EAGAIN && size >= 4096)
		abort();
	free(buf);
	return 0;
}
