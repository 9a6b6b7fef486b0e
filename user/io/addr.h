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
/* The host (brackets removed) and the (lowest) port of what kcpx_addr_parse_range takes;
 * 0 or -EINVAL. */
int kcpx_addr_split(const char *s, char *host, size_t hlen, char *port, size_t plen);
/* Is host an IPv4 or IPv6 address (no lookup needed)? */
bool kcpx_addr_is_numeric(const char *host);

#endif
