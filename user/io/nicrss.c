// SPDX-License-Identifier: MIT
/* A NIC's RSS key, indirection table and UDP hash fields, from ethtool (io/nicrss.h). */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>

#include "io/nicrss.h"

/* ethtool's hash function bits (the kernel's ETH_RSS_HASH_*, not in the uapi header) */
#define NICRSS_HASH_TOP (1u << 0)

static int nicrss_ioctl(int fd, const char *ifname, void *data)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_data = data;
	return ioctl(fd, SIOCETHTOOL, &ifr) < 0 ? -errno : 0;
}

/* Does UDP over this flow type hash both addresses and both ports? -errno if unknown. */
static int nicrss_udp_ports(int fd, const char *ifname, unsigned flow, bool *l4)
{
	struct ethtool_rxnfc nfc = { .cmd = ETHTOOL_GRXFH, .flow_type = flow };
	int err = nicrss_ioctl(fd, ifname, &nfc);

	if (err)
		return err;
	/* the Toeplitz input starts with the addresses: without them it is another input */
	if ((nfc.data & (RXH_IP_SRC | RXH_IP_DST)) != (RXH_IP_SRC | RXH_IP_DST))
		return -EPROTONOSUPPORT;
	*l4 = (nfc.data & (RXH_L4_B_0_1 | RXH_L4_B_2_3)) == (RXH_L4_B_0_1 | RXH_L4_B_2_3);
	return 0;
}

int kcpx_nicrss_read(const char *ifname, struct kcpx_rss *r, char *why, size_t whylen)
{
	struct ethtool_rxfh head = { .cmd = ETHTOOL_GRSSH };
	struct ethtool_rxfh *rf = NULL;
	int fd, err;

	memset(r, 0, sizeof(*r));
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = -errno;
		snprintf(why, whylen, "a socket for ethtool: %s", strerror(-err));
		return err;
	}
	err = nicrss_ioctl(fd, ifname, &head);
	if (err) {
		snprintf(why, whylen, "no RSS key to read (%s)", strerror(-err));
		goto out;
	}
	if (!head.key_size || !head.indir_size) {
		err = -EOPNOTSUPP;
		snprintf(why, whylen, "no RSS key to read (key %u bytes, table %u entries)",
			 head.key_size, head.indir_size);
		goto out;
	}
	if (head.key_size > KCPX_RSS_KEY_MAX || head.indir_size > KCPX_RSS_INDIR_MAX) {
		err = -E2BIG;
		snprintf(why, whylen,
			 "an RSS key of %u bytes or a table of %u entries is too large",
			 head.key_size, head.indir_size);
		goto out;
	}
	rf = calloc(1, sizeof(*rf) + head.indir_size * sizeof(uint32_t) + head.key_size);
	if (!rf) {
		err = -ENOMEM;
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	rf->cmd = ETHTOOL_GRSSH;
	rf->indir_size = head.indir_size;
	rf->key_size = head.key_size;
	err = nicrss_ioctl(fd, ifname, rf);
	if (err) {
		snprintf(why, whylen, "reading the RSS key: %s", strerror(-err));
		goto out;
	}
	/* rsvd8[0] is input_xfrm in newer headers: a symmetric transform changes the input */
	if (rf->hfunc != NICRSS_HASH_TOP || rf->rsvd8[0]) {
		err = -EPROTONOSUPPORT;
		snprintf(why, whylen,
			 "the RSS hash is not plain Toeplitz (function %#x, input "
			 "transform %#x)",
			 rf->hfunc, rf->rsvd8[0]);
		goto out;
	}
	r->indir_len = rf->indir_size;
	memcpy(r->indir, rf->rss_config, rf->indir_size * sizeof(uint32_t));
	r->key_len = rf->key_size;
	memcpy(r->key, (const uint8_t *)(rf->rss_config + rf->indir_size), rf->key_size);
	err = nicrss_udp_ports(fd, ifname, UDP_V4_FLOW, &r->l4_v4);
	if (!err)
		err = nicrss_udp_ports(fd, ifname, UDP_V6_FLOW, &r->l4_v6);
	if (err)
		snprintf(why, whylen, "which fields the RSS hash of UDP covers: %s",
			 strerror(-err));
out:
	free(rf);
	close(fd);
	return err;
}

void kcpx_nicrss_port_range(unsigned *lo, unsigned *hi)
{
	FILE *fp = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
	unsigned a, b;

	*lo = 32768;
	*hi = 60999;
	if (!fp)
		return;
	if (fscanf(fp, "%u %u", &a, &b) == 2 && a >= 1 && a <= b && b <= 65535) {
		*lo = a;
		*hi = b;
	}
	fclose(fp);
}
