// SPDX-License-Identifier: MIT
/*
 * `kcpx down` and `kcpx stats`: both work from what is pinned under /sys/fs/bpf/kcpx/IFACE
 * alone, so they answer when the daemon has hung or died.
 *
 * argv[0] is the subcommand ("down", "stats"), as main() passes it.
 */
#include "app/cmd_xdp.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/log.h"
#include "io/clock.h"
#include "io/nft.h"
#include "io/log.h"
#include "io/xdp.h"

static void log_to_app(int level, const char *msg)
{
	kcpx_log((enum kcpx_log_level)level, "%s", msg);
}

/* The nftables tables of --tcp daemons that died (kill -9) without removing them. */
static int down_tcp(void)
{
	int n = kcpx_nft_down_stale();

	if (n > 0)
		printf("removed the --tcp nftables rules of %d dead kcpx daemon%s\n", n,
		       n > 1 ? "s" : "");
	return n;
}

int kcpx_cmd_down(int argc, char **argv)
{
	int err;

	if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
		fprintf(stderr, "usage: kcpx down [IFACE]\n");
		return 2;
	}
	kcpx_io_set_log(log_to_app);
	if (argc == 1) {
		if (down_tcp() == 0)
			printf("no --tcp rules of dead kcpx daemons to remove\n");
		return 0;
	}
	down_tcp();
	err = kcpx_xdp_down(argv[1]);
	if (err == -ENOENT) {
		printf("kcpx is not up on %s: nothing to remove\n", argv[1]);
		return 0;
	}
	if (err) {
		pr_warn("kcpx down %s: %s", argv[1], strerror(-err));
		return 1;
	}
	printf("kcpx is down on %s\n", argv[1]);
	return 0;
}

/* One sample of every counter, in the order the maps give them. */
#define STATS_MAX 320 /* the maps' fields and 2 per RX queue (at most 64) */
struct stats_snap {
	int n;
	char map[STATS_MAX][16];
	char field[STATS_MAX][32];
	unsigned long long val[STATS_MAX];
};

static void snap_cb(void *ctx, const char *map, const char *field, uint64_t val)
{
	struct stats_snap *s = ctx;

	if (s->n >= STATS_MAX)
		return;
	snprintf(s->map[s->n], sizeof(s->map[0]), "%s", map);
	snprintf(s->field[s->n], sizeof(s->field[0]), "%s", field);
	s->val[s->n] = val;
	s->n++;
}

static void stats_print(const struct stats_snap *s, const struct stats_snap *prev, double secs)
{
	const char *map = "";

	for (int i = 0; i < s->n; i++) {
		if (strcmp(map, s->map[i])) {
			map = s->map[i];
			printf("%s%s\n", i ? "\n" : "", map);
		}
		if (prev && secs > 0 && i < prev->n && !strcmp(prev->field[i], s->field[i]))
			printf("  %-20s %20llu %14.0f/s\n", s->field[i], s->val[i],
			       (double)(s->val[i] - prev->val[i]) / secs);
		else
			printf("  %-20s %20llu\n", s->field[i], s->val[i]);
	}
	fflush(stdout);
}

/*
 * --json: one object per sample, one line each (JSON Lines under -i):
 * {"iface":..,"counters":{MAP:{FIELD:N,..},..},"per_second":{MAP:{FIELD:X,..},..}}
 * with "per_second" from the second sample on.
 */
static void stats_json_maps(const struct stats_snap *s, const struct stats_snap *prev, double secs)
{
	const char *map = NULL;

	printf("{");
	for (int i = 0; i < s->n; i++) {
		if (!map || strcmp(map, s->map[i])) {
			printf("%s\"%s\":{", map ? "}," : "", s->map[i]);
			map = s->map[i];
		} else {
			printf(",");
		}
		if (prev)
			printf("\"%s\":%.3f", s->field[i],
			       i < prev->n && !strcmp(prev->field[i], s->field[i])
				       ? (double)(s->val[i] - prev->val[i]) / secs
				       : 0.0);
		else
			printf("\"%s\":%llu", s->field[i], s->val[i]);
	}
	printf("%s}", map ? "}" : "");
}

static void stats_json(const char *ifname, const struct stats_snap *s,
		       const struct stats_snap *prev, double secs)
{
	printf("{\"iface\":\"");
	for (const char *p = ifname; *p; p++) /* IFNAMSIZ names: no control bytes */
		printf(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
	printf("\",\"counters\":");
	stats_json_maps(s, NULL, 0);
	if (prev && secs > 0) {
		printf(",\"per_second\":");
		stats_json_maps(s, prev, secs);
	}
	printf("}\n");
	fflush(stdout);
}

int kcpx_cmd_stats(int argc, char **argv)
{
	static const struct option longopts[] = { { "json", no_argument, NULL, 'j' },
						  { "help", no_argument, NULL, 'h' },
						  { NULL, 0, NULL, 0 } };
	bool json = false;
	static struct stats_snap snaps[2];
	double interval = 0;
	long count = -1;
	const char *ifname;
	uint64_t t_prev = 0;
	int c, cur = 0, err;

	optind = 1;
	while ((c = getopt_long(argc, argv, "i:n:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'i':
			interval = strtod(optarg, NULL);
			break;
		case 'n':
			count = strtol(optarg, NULL, 10);
			break;
		default:
			goto usage;
		}
	}
	if (optind != argc - 1 || interval < 0 || count == 0)
		goto usage;
	ifname = argv[optind];
	if (interval == 0)
		count = 1;
	kcpx_io_set_log(log_to_app);

	for (long k = 0; count < 0 || k < count; k++) {
		struct stats_snap *s = &snaps[cur], *prev = k ? &snaps[cur ^ 1] : NULL;
		uint64_t t;

		if (k) {
			struct timespec ts = { (time_t)interval,
					       (long)((interval - (time_t)interval) * 1e9) };
			nanosleep(&ts, NULL);
		}
		s->n = 0;
		t = kcpx_clock_us();
		err = kcpx_xdp_stats(ifname, snap_cb, s);
		if (err == -ENOENT) {
			fprintf(stderr, "kcpx is not up on %s (nothing pinned under %s/%s)\n",
				ifname, KCPX_BPF_PIN_ROOT, ifname);
			return 1;
		}
		if (err) {
			pr_warn("kcpx stats %s: %s", ifname, strerror(-err));
			return 1;
		}
		if (json) {
			stats_json(ifname, s, prev, prev ? (double)(t - t_prev) / 1e6 : 0);
		} else {
			if (k)
				printf("\n");
			stats_print(s, prev, prev ? (double)(t - t_prev) / 1e6 : 0);
		}
		t_prev = t;
		cur ^= 1;
	}
	return 0;
usage:
	fprintf(stderr, "usage: kcpx stats IFACE [-i SECS] [-n COUNT] [--json]\n");
	return 2;
}
