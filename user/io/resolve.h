/* SPDX-License-Identifier: MIT */
/*
 * Name lookups that do not stall the loop, for a client's --remoteaddr (dynamic DNS).
 *
 * getaddrinfo_a() runs each lookup on glibc's helper thread; kcpx_resolver_get() waits for
 * the lookup it starts at most wait_ms (gai_suspend), then returns and lets it finish in
 * the background: the next call collects its answer without waiting. So a resolver that
 * hangs (an unreachable DNS server: seconds per try) costs the loop at most wait_ms per
 * lookup, never the resolver's own timeouts. One lookup at a time.
 *
 * Owned by the caller; results are copied out, nothing is shared with the helper thread
 * but the request struct inside the resolver.
 */
#ifndef KCPX_IO_RESOLVE_H
#define KCPX_IO_RESOLVE_H

#include "core/addr.h"

struct kcpx_resolver;

/* host: a name (no brackets); port: the service, numeric; family: AF_UNSPEC, AF_INET or
 * AF_INET6 (only addresses of that family). 0 or -errno. */
int kcpx_resolver_new(struct kcpx_resolver **out, const char *host, const char *port, int family);

/*
 * Start a lookup unless one is running, then wait for it at most wait_ms when this call
 * started it (0 when an earlier call did: it is only collected). Returns 1 with *out set
 * when a lookup finished, 0 while it still runs, -ENOENT when it failed.
 */
int kcpx_resolver_get(struct kcpx_resolver *r, unsigned wait_ms, struct kcpx_addr *out);

/* Cancels a running lookup; one that cannot be cancelled is waited for at most 1 s, and
 * after that the resolver is left to it (the process is exiting). */
void kcpx_resolver_free(struct kcpx_resolver *r);

#endif
