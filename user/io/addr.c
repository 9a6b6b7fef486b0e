// SPDX-License-Identifier: MIT
#include "io/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kcpx_addr_parse(const char *s, struct kcpx_addr *out)
{
	struct addrinfo hints = { .ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	char host[256], *end;
	const char *colon, *port;
	unsigned long p;
	size_t hl;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!s || !*s)
		return -EINVAL;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return -EINVAL;
		hl = (size_t)(rb - s - 1);
		if (hl >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, hl);
		port = rb + 2;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - s);
		if (hl >= sizeof(host) || memchr(s, ':', hl))
			return -EINVAL; /* a bare IPv6 address needs brackets */
		memcpy(host, s, hl);
		port = colon + 1;
	}
	host[hl] = 0;
	if (strchr(port, '-'))
		return -EOPNOTSUPP;
	errno = 0;
	p = strtoul(port, &end, 10);
	if (!*port || *end || errno || p > 65535)
		return -EINVAL;

	if (!host[0]) {
		/* ":port": every address. An IPv6 socket with v6only off takes IPv4 too, but
		 * keep IPv4 so kcptun-style configs work where IPv6 is disabled. */
		out->in.sin_family = AF_INET;
		out->in.sin_addr.s_addr = htonl(INADDR_ANY);
		out->in.sin_port = htons((uint16_t)p);
		out->len = sizeof(out->in);
		return 0;
	}
	hints.ai_family = AF_UNSPEC;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc || !res)
		return -ENOENT;
	if (res->ai_addrlen > sizeof(out->ss)) {
		freeaddrinfo(res);
		return -EINVAL;
	}
	memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
	out->len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int kcpx_addr_parse_range(const char *s, struct kcpx_addr *out, unsigned *hi)
{
	const char *colon = s ? strrchr(s, ':') : NULL, *dash;
	unsigned long lo, h;
	char buf[300], *end;
	int err;

	if (!colon || !(dash = strchr(colon, '-'))) {
		err = kcpx_addr_parse(s, out);
		if (!err)
			*hi = kcpx_addr_port(out);
		return err;
	}
	errno = 0;
	lo = strtoul(colon + 1, &end, 10);
	if (end != dash || colon + 1 == dash || errno)
		return -EINVAL;
	h = strtoul(dash + 1, &end, 10);
	if (!dash[1] || *end || errno || lo < 1 || h > 65535 || lo > h)
		return -EINVAL;
	if ((size_t)(dash - s) >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, (size_t)(dash - s));
	buf[dash - s] = 0;
	err = kcpx_addr_parse(buf, out);
	if (!err)
		*hi = (unsigned)h;
	return err;
}

int kcpx_addr_split(const char *s, char *host, size_t hlen, char *port, size_t plen)
{
	const char *h = s, *p, *end;
	size_t hl, pl;

	if (!s)
		return -EINVAL;
	if (s[0] == '[') {
		end = strchr(s, ']');
		if (!end || end[1] != ':')
			return -EINVAL;
		h = s + 1;
		p = end + 2;
	} else {
		end = strrchr(s, ':');
		if (!end)
			return -EINVAL;
		p = end + 1;
	}
	hl = (size_t)(end - h);
	pl = strcspn(p, "-");
	if (hl >= hlen || !pl || pl >= plen)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = 0;
	memcpy(port, p, pl);
	port[pl] = 0;
	return 0;
}

bool kcpx_addr_is_numeric(const char *host)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

void kcpx_addr_set_port(struct kcpx_addr *a, unsigned port)
{
	if (a->sa.sa_family == AF_INET6)
		a->in6.sin6_port = htons((uint16_t)port);
	else
		a->in.sin_port = htons((uint16_t)port);
}
