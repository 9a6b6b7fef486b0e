// SPDX-License-Identifier: MIT
/* The Toeplitz hash and the RSS queue of a datagram (core/rss.h). */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "core/rss.h"

uint32_t kcpx_rss_toeplitz(const uint8_t *key, size_t key_len, const uint8_t *in, size_t len)
{
	/* win: the 32 key bits starting at the current input bit, refilled a byte at a time */
	uint32_t hash = 0, win;
	size_t next = 4;

	if (key_len < len + 4)
		return 0;
	win = (uint32_t)key[0] << 24 | (uint32_t)key[1] << 16 | (uint32_t)key[2] << 8 | key[3];
	for (size_t i = 0; i < len; i++) {
		uint8_t nextkey = key[next++];

		for (int b = 7; b >= 0; b--) {
			if (in[i] & (1u << b))
				hash ^= win;
			win = win << 1 | ((nextkey >> b) & 1);
		}
	}
	return hash;
}

int kcpx_rss_queue(const struct kcpx_rss *r, int family, const uint8_t *src, uint16_t sport,
		   const uint8_t *dst, uint16_t dport)
{
	uint8_t in[36];
	size_t alen, len;
	bool l4;

	if (family == AF_INET) {
		alen = 4;
		l4 = r->l4_v4;
	} else if (family == AF_INET6) {
		alen = 16;
		l4 = r->l4_v6;
	} else {
		return -EINVAL;
	}
	if (!r->indir_len || r->indir_len > KCPX_RSS_INDIR_MAX)
		return -EINVAL;
	memcpy(in, src, alen);
	memcpy(in + alen, dst, alen);
	len = 2 * alen;
	if (l4) {
		in[len++] = (uint8_t)(sport >> 8);
		in[len++] = (uint8_t)sport;
		in[len++] = (uint8_t)(dport >> 8);
		in[len++] = (uint8_t)dport;
	}
	if (r->key_len > KCPX_RSS_KEY_MAX || r->key_len < len + 4)
		return -EINVAL;
	return (int)r->indir[kcpx_rss_toeplitz(r->key, r->key_len, in, len) % r->indir_len];
}

bool kcpx_rss_ports_count(const struct kcpx_rss *r, int family)
{
	return family == AF_INET ? r->l4_v4 : family == AF_INET6 ? r->l4_v6 : false;
}

bool kcpx_rss_port_fits(const struct kcpx_rss *r, int family, const uint8_t *peer, uint16_t pport,
			const uint8_t *local, uint16_t lport, unsigned k, unsigned n, unsigned nq)
{
	int q = kcpx_rss_queue(r, family, peer, pport, local, lport);

	return q >= 0 && n && (unsigned)q < nq && (unsigned)q % n == k;
}
