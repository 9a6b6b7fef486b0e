/* SPDX-License-Identifier: MIT */
/*
 * kcp-go's SNMP output, as kcptun 20210922 prints it (WIRE.md §7, checked against the
 * Debian binaries):
 *  - SIGUSR1:   "KCP SNMP:&{BytesSent:0 BytesReceived:0 ... FECShortShards:0}" (Go's %+v
 *               of kcp-go's Snmp struct, in the struct's field order);
 *  - --snmplog: CSV, header "Unix,BytesSent,...,FECShortShards" written only into an
 *               empty file, then one row per --snmpperiod; the column order is kcp-go's
 *               Header() order, which differs from the struct order at the end
 *               (FECParityShards,FECErrs,FECRecovered,FECShortShards). The file's base
 *               name is a Go time layout ("snmp-20060102.log" -> "snmp-20261123.log").
 */
#ifndef KCPX_APP_SNMP_H
#define KCPX_APP_SNMP_H

#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "kcpx_snmp.h"

/* Writes "KCP SNMP:&{...}" (no newline) into buf like snprintf; returns the full length. */
int kcpx_snmp_format(char *buf, size_t size, const struct kcpx_snmp *s);

/* The SIGUSR1 dump: kcpx_snmp_format's line plus a newline. */
void kcpx_snmp_print(FILE *fp, const struct kcpx_snmp *s);

/*
 * Appends one CSV row (header first if the file is empty) to the file named by
 * path_pattern, whose base name (after the last '/') is formatted as a Go time layout for
 * `now` in local time, as kcptun does. Creates the file (0666 & ~umask). Returns 0 or
 * -errno.
 */
int kcpx_snmp_log(const char *path_pattern, const struct kcpx_snmp *s, time_t now);

/*
 * The path kcpx_snmp_log would use: the directory part verbatim, the base name through
 * Go's time.Format (tokens 2006 06 01 1 Jan January 02 2 _2 15 03 3 04 4 05 5 Mon Monday
 * PM pm MST -0700 -07:00 -07 -070000 -07:00:00 Z0700 Z07:00 Z07 .000 .999 ,000).
 * Returns the length (like snprintf); out is always terminated when size > 0.
 */
size_t kcpx_snmp_path(char *out, size_t size, const char *path_pattern, time_t now);

#endif
