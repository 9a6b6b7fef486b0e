/* SPDX-License-Identifier: MIT */
#ifndef KCPX_IO_ADDR_H
#define KCPX_IO_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#include "core/addr.h"
#include "io/dgram.h"

/*
 * Parse "host:port", "[v6]:port" or ":port" (any address) into *out, resolving names.
 * kcptun's port ranges ("host:3000-3010") are refused with -EOPNOTSUPP.
 * Returns 0 or a negative errno (-EINVAL: malformed, -ENOENT: name did not resolve).
 */
int kcpx_addr_parse(const char *s, struct kcpx_addr *out);
/*
 * kcptun's port ranges too: "host:lo-hi" (1 <= lo <= hi <= 65535) gives *out with port lo
 * and *hi = hi; a single port gives *hi = that port. Returns as kcpx_addr_parse.
 */
int kcpx_addr_parse_range(const char *s, struct kcpx_addr *out, unsigned *hi);
void kcpx_addr_set_port(struct kcpx_addr *a, unsigned port);

#endif
