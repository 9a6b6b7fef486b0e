/* SPDX-License-Identifier: MIT */
/*
 * --metrics ADDR:PORT: Prometheus' text exposition format at /metrics and a health check
 * at /healthz, served by io/http.c on the tunnel's loop (bounded, never blocking).
 *
 * /metrics: process_start_time_seconds, kcpx_build_info, kcp-go's SNMP counters as
 * kcpx_<name>_total (MaxConn and CurrEstab as gauges), what the tunnel adds through
 * src->write (sessions, streams, per-session series), the XDP/AF_XDP counters pinned
 * under /sys/fs/bpf/kcpx/IFACE when kcpx_metrics_set_iface() named one, and the
 * endpoint's own request counters.
 * /healthz: 200 "ok" when src->healthy says so, else 503 with its reason.
 */
#ifndef KCPX_APP_METRICS_H
#define KCPX_APP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "io/loop.h"
#include "kcpx_snmp.h"

struct kcpx_metrics;

struct kcpx_metrics_src {
	void (*write)(void *arg, FILE *fp);
	bool (*healthy)(void *arg, char *why, size_t size);
	void *arg;
};

/* Listen on addr ("host:port", ":port"). Returns 0 or -errno, the reason logged. */
int kcpx_metrics_start(struct kcpx_metrics **out, struct kcpx_loop *loop, const char *addr,
		       const struct kcpx_metrics_src *src);
void kcpx_metrics_stop(struct kcpx_metrics *m); /* NULL is fine */
/* kcpx up: export the counters pinned for this interface too. */
void kcpx_metrics_set_iface(const char *ifname);

/* For src->write: one metric family's HELP and TYPE lines. */
void kcpx_metrics_family(FILE *fp, const char *name, const char *type, const char *help);
/* kcp-go's SNMP counters, every family. */
void kcpx_metrics_snmp(FILE *fp, const struct kcpx_snmp *s);
/* A label value, escaped (\\, \", \n) and quoted. */
void kcpx_metrics_label(FILE *fp, const char *name, const char *value);

#endif
