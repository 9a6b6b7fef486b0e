// SPDX-License-Identifier: MIT
#include "io/resolve.h"

#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct kcpx_resolver {
	char host[256];
	char port[8];
	struct addrinfo hints;
	struct gaicb cb; /* the helper thread writes cb.ar_result while running */
	bool running;
};

int kcpx_resolver_new(struct kcpx_resolver **out, const char *host, const char *port, int family)
{
	struct kcpx_resolver *r;

	*out = NULL;
	if (!host || !*host || strlen(host) >= sizeof(r->host) || !port ||
	    strlen(port) >= sizeof(r->port))
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	strcpy(r->host, host);
	strcpy(r->port, port);
	r->hints.ai_family = family;
	r->hints.ai_socktype = SOCK_DGRAM;
	r->hints.ai_flags = AI_NUMERICSERV;
	*out = r;
	return 0;
}

/* The running lookup's outcome: 1 (with *out), 0 still running, -ENOENT failed. */
static int collect(struct kcpx_resolver *r, struct kcpx_addr *out)
{
	struct addrinfo *res;
	int rc = gai_error(&r->cb);

	if (rc == EAI_INPROGRESS)
		return 0;
	r->running = false;
	res = r->cb.ar_result;
	r->cb.ar_result = NULL;
	if (rc || !res || res->ai_addrlen > sizeof(out->ss)) {
		if (res)
			freeaddrinfo(res);
		return -ENOENT;
	}
	memset(out, 0, sizeof(*out));
	memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
	out->len = res->ai_addrlen;
	freeaddrinfo(res);
	return 1;
}

static void wait_ms(struct kcpx_resolver *r, unsigned ms)
{
	const struct gaicb *list[1] = { &r->cb };
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	/* returns early when the lookup ends; EAI_AGAIN (timeout) or EAI_INTR: collect says */
	gai_suspend(list, 1, &ts);
}

int kcpx_resolver_get(struct kcpx_resolver *r, unsigned ms, struct kcpx_addr *out)
{
	struct gaicb *list[1] = { &r->cb };

	if (r->running)
		return collect(r, out);
	memset(&r->cb, 0, sizeof(r->cb));
	r->cb.ar_name = r->host;
	r->cb.ar_service = r->port;
	r->cb.ar_request = &r->hints;
	if (getaddrinfo_a(GAI_NOWAIT, list, 1, NULL))
		return -ENOENT; /* could not even start one (no memory, no thread) */
	r->running = true;
	if (ms)
		wait_ms(r, ms);
	return collect(r, out);
}

void kcpx_resolver_free(struct kcpx_resolver *r)
{
	struct kcpx_addr a;

	if (!r)
		return;
	if (r->running && gai_cancel(&r->cb) == EAI_NOTCANCELED) {
		wait_ms(r, 1000);
		if (!collect(r, &a))
			return; /* still in the helper thread's hands: leave it there */
	} else if (r->running) {
		collect(r, &a);
	}
	free(r);
}
