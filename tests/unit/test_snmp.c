// SPDX-License-Identifier: MIT
/*
 * SNMP output against what Debian's kcptun 20210922 writes: the SIGUSR1 line, the CSV
 * header/rows, and Go time layouts in the --snmplog file name (expected names captured
 * from kcptun-client with TZ=Asia/Kolkata and TZ=UTC). snmp.c lives in user/app, which
 * the unit-test link does not include, so it is compiled in here.
 */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "unit.h"
#include "app/snmp.c"

static void test_format_zero(void)
{
	struct kcpx_snmp s = { 0 };
	char line[1024];
	static const char want[] =
		"KCP SNMP:&{BytesSent:0 BytesReceived:0 MaxConn:0 ActiveOpens:0 PassiveOpens:0 "
		"CurrEstab:0 InErrs:0 InCsumErrors:0 KCPInErrors:0 InPkts:0 OutPkts:0 InSegs:0 "
		"OutSegs:0 InBytes:0 OutBytes:0 RetransSegs:0 FastRetransSegs:0 "
		"EarlyRetransSegs:0 LostSegs:0 RepeatSegs:0 FECRecovered:0 FECErrs:0 "
		"FECParityShards:0 FECShortShards:0}";

	CHECK_EQ(kcpx_snmp_format(line, sizeof(line), &s), strlen(want));
	CHECK(!strcmp(line, want));
	/* truncation is safe and still reports the full length */
	CHECK_EQ(kcpx_snmp_format(line, 10, &s), strlen(want));
	CHECK(!strcmp(line, "KCP SNMP:"));
}

static void test_format_values(void)
{
	struct kcpx_snmp s = { 0 };
	char line[1024];

	s.BytesSent = 18446744073709551615ull;
	s.FECRecovered = 7;
	s.FECParityShards = 3;
	kcpx_snmp_format(line, sizeof(line), &s);
	CHECK(!strncmp(line, "KCP SNMP:&{BytesSent:18446744073709551615 BytesReceived:0 ", 57));
	CHECK(strstr(line, " FECRecovered:7 FECErrs:0 FECParityShards:3 FECShortShards:0}"));
}

static void test_path(void)
{
	char p[512];
	static const char *pat =
		"/tmp/d-2006/a-2006-06-01-1-Jan-January-02-2-_2-15-03-3-04-4-05-5-Mon-Monday-PM-"
		"pm-MST-.000-.999-,000-Z07:00-Z0700-Z07-x";
	/* kcptun printed .316 for the fractions; whole seconds here give .000 and nothing */
	static const char *want =
		"/tmp/d-2006/a-2026-26-11-11-Nov-November-23-23-23-16-04-4-42-42-31-31-Mon-Monday-"
		"PM-pm-IST-.000--,000-+05:30-+0530-+05-x";

	setenv("TZ", "Asia/Kolkata", 1);
	tzset();
	CHECK_EQ(kcpx_snmp_path(p, sizeof(p), pat, 1795432351), strlen(want));
	CHECK(!strcmp(p, want));
	CHECK_EQ(kcpx_snmp_path(p, sizeof(p), "snmp-20060102.log", 1795432351), 17);
	CHECK(!strcmp(p, "snmp-20261123.log"));

	setenv("TZ", "UTC", 1);
	tzset();
	kcpx_snmp_path(p, sizeof(p), "b-Z07:00-Z0700-Z07-Z070000-Z07:00:00-_2006-Janx-Jan1-Monx",
		       1795432351);
	CHECK(!strcmp(p, "b-Z-Z-Z-Z-Z-_2026-Janx-Nov11-Monx"));
	kcpx_snmp_path(p, sizeof(p), "c--0700-3PM", 1795432351 - 12 * 3600);
	CHECK(!strcmp(p, "c-+0000-11PM"));
	kcpx_snmp_path(p, sizeof(p), "plain.log", 0);
	CHECK(!strcmp(p, "plain.log"));
	CHECK_EQ(kcpx_snmp_path(p, 4, "snmp.log", 0), 8);
	CHECK(!strcmp(p, "snm"));
}

/* Header only into an empty file, one row per call, kcp-go's Header() column order. */
static void test_log(void)
{
	char dir[] = "/tmp/kcpx-snmp-test.XXXXXX", pat[128], path[160], buf[4096];
	struct kcpx_snmp s = { 0 };
	FILE *f;
	size_t n;
	static const char hdr[] =
		"Unix,BytesSent,BytesReceived,MaxConn,ActiveOpens,PassiveOpens,CurrEstab,InErrs,"
		"InCsumErrors,KCPInErrors,InPkts,OutPkts,InSegs,OutSegs,InBytes,OutBytes,"
		"RetransSegs,FastRetransSegs,EarlyRetransSegs,LostSegs,RepeatSegs,FECParityShards,"
		"FECErrs,FECRecovered,FECShortShards\n";

	setenv("TZ", "UTC", 1);
	tzset();
	CHECK(mkdtemp(dir));
	snprintf(pat, sizeof(pat), "%s/snmp-20060102.log", dir);
	snprintf(path, sizeof(path), "%s/snmp-20261123.log", dir);
	s.InPkts = 5;
	s.FECParityShards = 1;
	s.FECRecovered = 3;
	CHECK_EQ(kcpx_snmp_log(pat, &s, 1795432351), 0);
	s.InPkts = 6;
	CHECK_EQ(kcpx_snmp_log(pat, &s, 1795432352), 0);
	f = fopen(path, "r");
	CHECK(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	unlink(path);
	rmdir(dir);
	CHECK(!strncmp(buf, hdr, strlen(hdr)));
	CHECK(!strcmp(buf + strlen(hdr),
		      "1795432351,0,0,0,0,0,0,0,0,0,5,0,0,0,0,0,0,0,0,0,0,1,0,3,0\n"
		      "1795432352,0,0,0,0,0,0,0,0,0,6,0,0,0,0,0,0,0,0,0,0,1,0,3,0\n"));
	CHECK_EQ(kcpx_snmp_log("/nonexistent-kcpx-dir/snmp.log", &s, 0), -ENOENT);
}

int main(void)
{
	RUN(test_format_zero);
	RUN(test_format_values);
	RUN(test_path);
	RUN(test_log);
	UNIT_MAIN_END();
}
