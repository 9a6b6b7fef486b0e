/* SPDX-License-Identifier: MIT */
#ifndef KCPX_IO_ADDR_H
#define KCPX_IO_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#include "io/dgram.h"

#define KCPX_ADDRSTRLEN 64

/*
 * Parse "host:port", "[v6]:port" or ":port" (any address) into *out, resolving names.
 * kcptun's port ranges ("host:3000-3010") are refused with -EOPNOTSUPP.
 * Returns 0 or a negative errno (-EINVAL: malformed, -ENOENT: name did not resolve).
 */
int kcpx_addr_parse(const char *s, struct kcpx_addr *out);
const char *kcpx_addr_str(const struct kcpx_addr *a, char *buf, size_t len);
bool kcpx_addr_equal(const struct kcpx_addr *a, const struct kcpx_addr *b);
unsigned kcpx_addr_port(const struct kcpx_addr *a);

#endif
