// SPDX-License-Identifier: MIT
/*
 * `kcpx down` and `kcpx stats IFACE`: both work from what is pinned under
 * /sys/fs/bpf/kcpx/IFACE alone, so they answer when the daemon has hung or died.
 * `kcpx stats -p PID` (or with no IFACE, the one running tunnel) asks the daemon itself over
 * its control socket instead, for tunnels that pin nothing (`kcpx client|server`, UDP or
 * --tcp): the same display, other maps.
 *
 * argv[0] is the subcommand ("down", "stats"), as main() passes it.
 */
#include "app/cmd_xdp.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/log.h"
#include "io/clock.h"
#include "io/ctl.h"
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

static void stats_json(const char *ifname, int pid, const struct stats_snap *s,
		       const struct stats_snap *prev, double secs)
{
	if (ifname) {
		printf("{\"iface\":\"");
		for (const char *p = ifname; *p; p++) /* IFNAMSIZ names: no control bytes */
			printf(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
		printf("\"");
	} else {
		printf("{\"pid\":%d", pid);
	}
	printf(",\"counters\":");
	stats_json_maps(s, NULL, 0);
	if (prev && secs > 0) {
		printf(",\"per_second\":");
		stats_json_maps(s, prev, secs);
	}
	printf("}\n");
	fflush(stdout);
}

/*
 * One sample from a daemon's control socket: "kcpx-stats 1", then "MAP FIELD VALUE" lines
 * (app/report.c). 0, -ENOENT (no such tunnel), -EPROTO (a daemon without the request), or
 * another -errno.
 */
static int stats_pid(int pid, kcpx_xdp_stat_cb cb, void *ctx)
{
	char path[64], *text = NULL, *line, *save = NULL;
	int err;

	snprintf(path, sizeof(path), "%s/%d.sock", KCPX_CTL_DIR, pid);
	err = kcpx_ctl_query(path, "stats", &text);
	if (err)
		return err == -ECONNREFUSED ? -ENOENT : err;
	if (strncmp(text, "kcpx-stats 1\n", 13)) {
		free(text);
		return -EPROTO;
	}
	for (line = strtok_r(text + 13, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char map[16], field[32];
		unsigned long long v;

		if (sscanf(line, "%15s %31s %llu", map, field, &v) == 3)
			cb(ctx, map, field, v);
	}
	free(text);
	return 0;
}

/* The process id of the one running kcpx tunnel; 0 (said why) if none or several. */
static int stats_only_pid(void)
{
	int pid = 0, n = 0, p;
	struct dirent *de;
	DIR *d;

	kcpx_ctl_reap();
	d = opendir(KCPX_CTL_DIR);
	if (d) {
		while ((de = readdir(d)))
			if (sscanf(de->d_name, "%d.sock", &p) == 1) {
				pid = p;
				n++;
			}
		closedir(d);
	}
	if (n == 1)
		return pid;
	if (n == 0)
		fprintf(stderr, "kcpx stats: no kcpx tunnel is running\n");
	else
		fprintf(stderr,
			"kcpx stats: %d kcpx tunnels are running: name one with -p PID (`kcpx "
			"status` lists them) or an interface of `kcpx up`\n",
			n);
	return 0;
}

int kcpx_cmd_stats(int argc, char **argv)
{
	static const struct option longopts[] = { { "json", no_argument, NULL, 'j' },
						  { "pid", required_argument, NULL, 'p' },
						  { "help", no_argument, NULL, 'h' },
						  { NULL, 0, NULL, 0 } };
	bool json = false;
	static struct stats_snap snaps[2];
	double interval = 0;
	long count = -1;
	const char *ifname = NULL;
	uint64_t t_prev = 0;
	int c, cur = 0, err, pid = 0;
	char *end;
	long v;

	optind = 1;
	while ((c = getopt_long(argc, argv, "i:n:p:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'p':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (!*optarg || *end || errno || v <= 0 || v > INT_MAX) {
				fprintf(stderr, "kcpx stats: '%s' is not a process id\n", optarg);
				goto usage;
			}
			pid = (int)v;
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
	if (interval < 0 || count == 0 || optind + !pid < argc)
		goto usage;
	if (optind < argc)
		ifname = argv[optind];
	else if (!pid && !(pid = stats_only_pid()))
		return 1;
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
		err = ifname ? kcpx_xdp_stats(ifname, snap_cb, s) : stats_pid(pid, snap_cb, s);
		if (err == -ENOENT && ifname) {
			fprintf(stderr, "kcpx is not up on %s (nothing pinned under %s/%s)\n",
				ifname, KCPX_BPF_PIN_ROOT, ifname);
			return 1;
		}
		if (err == -ENOENT) {
			fprintf(stderr, "kcpx stats: no running kcpx tunnel has pid %d\n", pid);
			return 1;
		}
		if (err == -EPROTO) {
			fprintf(stderr,
				"kcpx stats: pid %d predates `kcpx stats -p` (restart it with this "
				"kcpx)\n",
				pid);
			return 1;
		}
		if (err) {
			if (ifname)
				pr_warn("kcpx stats %s: %s", ifname, strerror(-err));
			else
				pr_warn("kcpx stats -p %d: %s", pid, strerror(-err));
			return 1;
		}
		if (json) {
			stats_json(ifname, pid, s, prev, prev ? (double)(t - t_prev) / 1e6 : 0);
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
	fprintf(stderr, "usage: kcpx stats [IFACE | -p PID] [-i SECS] [-n COUNT] [--json]\n");
	return 2;
}
