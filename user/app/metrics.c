// SPDX-License-Identifier: MIT
#include "app/metrics.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/cmd.h"
#include "app/log.h"
#include "io/addr.h"
#include "io/http.h"
#include "io/xdp.h"

struct kcpx_metrics {
	struct kcpx_http *http;
	struct kcpx_metrics_src src;
	double start_time;
};

static char metrics_iface[32];

void kcpx_metrics_set_iface(const char *ifname)
{
	snprintf(metrics_iface, sizeof(metrics_iface), "%s", ifname ? ifname : "");
}

void kcpx_metrics_family(FILE *fp, const char *name, const char *type, const char *help)
{
	fprintf(fp, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void kcpx_metrics_label(FILE *fp, const char *name, const char *value)
{
	fprintf(fp, "%s=\"", name);
	for (const char *p = value; *p; p++) {
		if (*p == '\\' || *p == '"')
			fprintf(fp, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", fp);
		else
			fputc(*p, fp);
	}
	fputc('"', fp);
}

/* kcp-go's CamelCase to snake_case: BytesSent -> bytes_sent, KCPInErrors -> kcp_in_errors */
static void snake(char *out, size_t size, const char *in)
{
	size_t n = 0;

	for (size_t i = 0; in[i] && n + 2 < size; i++) {
		bool up = isupper((unsigned char)in[i]);
		bool prev_low = i && islower((unsigned char)in[i - 1]);
		bool next_low = islower((unsigned char)in[i + 1]);

		if (i && up && (prev_low || (isupper((unsigned char)in[i - 1]) && next_low)))
			out[n++] = '_';
		out[n++] = (char)tolower((unsigned char)in[i]);
	}
	out[n] = 0;
}

static void snmp_one(FILE *fp, const char *field, uint64_t v)
{
	bool gauge = !strcmp(field, "MaxConn") || !strcmp(field, "CurrEstab");
	char sn[48], name[64], help[96];

	snake(sn, sizeof(sn), field);
	snprintf(name, sizeof(name), gauge ? "kcpx_%s" : "kcpx_%s_total", sn);
	snprintf(help, sizeof(help), "kcp-go SNMP %s", field);
	kcpx_metrics_family(fp, name, gauge ? "gauge" : "counter", help);
	fprintf(fp, "%s %" PRIu64 "\n", name, v);
}

void kcpx_metrics_snmp(FILE *fp, const struct kcpx_snmp *s)
{
#define METRIC_SNMP(f) snmp_one(fp, #f, (uint64_t)s->f);
	KCPX_SNMP_FIELDS(METRIC_SNMP)
#undef METRIC_SNMP
}

/* A pinned counter map's field as a metric name part: [a-z0-9_] only. */
static void sanitize(char *out, size_t size, const char *in)
{
	size_t n = 0;

	for (; *in && n + 1 < size; in++)
		out[n++] = isalnum((unsigned char)*in) ? (char)tolower((unsigned char)*in) : '_';
	out[n] = 0;
}

static void xdp_one(void *ctx, const char *map, const char *field, uint64_t val)
{
	FILE *fp = ctx;
	char m[32], f[48], name[96];

	/* the pinned copy of the SNMP counters is what kcpx_<snmp>_total already shows */
	if (strstr(map, "snmp"))
		return;
	sanitize(m, sizeof(m), strncmp(map, "kcpx_", 5) ? map : map + 5);
	sanitize(f, sizeof(f), field);
	snprintf(name, sizeof(name), "kcpx_xdp_%s_%s_total", m, f);
	fprintf(fp, "# HELP %s kcpx up: counter %s of map %s pinned for the interface\n", name,
		field, map);
	fprintf(fp, "# TYPE %s counter\n%s{", name, name);
	kcpx_metrics_label(fp, "iface", metrics_iface);
	fprintf(fp, "} %" PRIu64 "\n", val);
}

static int handle(void *arg, const char *path, FILE *fp, const char **ctype)
{
	struct kcpx_metrics *m = arg;
	char why[160] = "";

	if (!strcmp(path, "/healthz")) {
		bool ok = m->src.healthy ? m->src.healthy(m->src.arg, why, sizeof(why)) : true;
		fprintf(fp, "%s\n", ok ? "ok" : why);
		return ok ? 200 : 503;
	}
	if (!strcmp(path, "/")) {
		fprintf(fp, "kcpx %s: /metrics (Prometheus), /healthz\n", KCPX_VERSION);
		return 200;
	}
	if (strcmp(path, "/metrics"))
		return 404;
	*ctype = "text/plain; version=0.0.4; charset=utf-8";
	kcpx_metrics_family(fp, "process_start_time_seconds", "gauge",
			    "Start time of the process since unix epoch in seconds.");
	fprintf(fp, "process_start_time_seconds %.2f\n", m->start_time);
	kcpx_metrics_family(fp, "kcpx_build_info", "gauge", "kcpx version, always 1.");
	fprintf(fp, "kcpx_build_info{version=\"%s\"} 1\n", KCPX_VERSION);
	if (m->src.write)
		m->src.write(m->src.arg, fp);
	if (metrics_iface[0]) {
		int err = kcpx_xdp_stats(metrics_iface, xdp_one, fp);
		if (err)
			pr_warn_ratelimited("metrics: XDP counters of %s: %s", metrics_iface,
					    strerror(-err));
	}
	struct kcpx_http_stats hs;
	kcpx_http_stats(m->http, &hs);
	kcpx_metrics_family(fp, "kcpx_metrics_refused_total", "counter",
			    "Metrics connections closed at once: too many open.");
	fprintf(fp, "kcpx_metrics_refused_total %" PRIu64 "\n", hs.refused);
	kcpx_metrics_family(fp, "kcpx_metrics_timeouts_total", "counter",
			    "Metrics connections dropped at their deadline.");
	fprintf(fp, "kcpx_metrics_timeouts_total %" PRIu64 "\n", hs.timeouts);
	return 200;
}

/* When this process started, from /proc (boot time + start ticks); now if unreadable. */
static double start_time(void)
{
	unsigned long long ticks = 0, btime = 0;
	char buf[1024], line[256], *p;
	FILE *fp = fopen("/proc/self/stat", "r");
	int ok = 0;

	if (fp) {
		size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
		buf[n] = 0;
		fclose(fp);
		/* field 22; the command (field 2) may hold spaces, so count after its ')' */
		p = strrchr(buf, ')');
		for (int f = 2; p && f < 22; f++)
			p = strchr(p + 1, ' ');
		if (p && sscanf(p + 1, "%llu", &ticks) == 1)
			ok++;
	}
	fp = fopen("/proc/stat", "r");
	if (fp) {
		while (fgets(line, sizeof(line), fp))
			if (sscanf(line, "btime %llu", &btime) == 1) {
				ok++;
				break;
			}
		fclose(fp);
	}
	if (ok == 2 && sysconf(_SC_CLK_TCK) > 0)
		return (double)btime + (double)ticks / (double)sysconf(_SC_CLK_TCK);
	return (double)time(NULL);
}

int kcpx_metrics_start(struct kcpx_metrics **out, struct kcpx_loop *loop, const char *addr,
		       const struct kcpx_metrics_src *src)
{
	struct kcpx_metrics *m;
	struct kcpx_addr a;
	int err = kcpx_addr_parse(addr, &a);

	if (err) {
		pr_warn("metrics '%s': %s", addr, strerror(-err));
		return err;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->src = *src;
	m->start_time = start_time();
	err = kcpx_http_start(&m->http, loop, &a, handle, m);
	if (err) {
		pr_warn("metrics: listen on %s (tcp): %s", addr, strerror(-err));
		free(m);
		return err;
	}
	pr_info("metrics: http://%s/metrics and /healthz", addr);
	*out = m;
	return 0;
}

void kcpx_metrics_stop(struct kcpx_metrics *m)
{
	if (!m)
		return;
	kcpx_http_stop(m->http);
	free(m);
}
