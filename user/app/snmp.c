// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/snmp.h"
#include "io/file.h"

/* kcp-go v5.6.1's Snmp struct field order (what %+v prints) is KCPX_SNMP_FIELDS. */

/* kcp-go v5.6.1 Header()/ToSlice() order (the CSV columns). */
#define SNMP_CSV_ORDER(X)                                                                          \
	KCPX_SNMP_FIELDS_BASE(X)                                                                   \
	X(FECParityShards)                                                                         \
	X(FECErrs)                                                                                 \
	X(FECRecovered)                                                                            \
	X(FECShortShards)

/* A bounded string builder: counts what would be written, like snprintf. */
struct sbuf {
	char *p;
	size_t size, len;
};

static void sb_putn(struct sbuf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++, b->len++)
		if (b->len + 1 < b->size)
			b->p[b->len] = s[i];
	if (b->size)
		b->p[b->len < b->size ? b->len : b->size - 1] = 0;
}

static void sb_puts(struct sbuf *b, const char *s)
{
	sb_putn(b, s, strlen(s));
}

/* Decimal, zero-padded to width (Go appendInt with width). */
static void sb_int(struct sbuf *b, long v, int width)
{
	char tmp[32];
	int n;

	if (v < 0) {
		sb_puts(b, "-");
		v = -v;
	}
	n = snprintf(tmp, sizeof(tmp), "%0*ld", width, v);
	sb_putn(b, tmp, (size_t)n);
}

int kcpx_snmp_format(char *buf, size_t size, const struct kcpx_snmp *s)
{
	struct sbuf b = { buf, size, 0 };
	char tmp[48];
	bool first = true;

	if (size)
		buf[0] = 0;
	sb_puts(&b, "KCP SNMP:&{");
#define SNMP_FMT(name)                                                                             \
	snprintf(tmp, sizeof(tmp), "%s" #name ":%" PRIu64, first ? "" : " ", (uint64_t)s->name);   \
	sb_puts(&b, tmp);                                                                          \
	first = false;
	KCPX_SNMP_FIELDS(SNMP_FMT)
#undef SNMP_FMT
	sb_puts(&b, "}");
	return (int)b.len;
}

void kcpx_snmp_print(FILE *fp, const struct kcpx_snmp *s)
{
	char line[1024];

	kcpx_snmp_format(line, sizeof(line), s);
	fprintf(fp, "%s\n", line);
	fflush(fp);
}

/* --- Go time.Format over the base name --- */

static const char *const long_months[] = { "January",	"February", "March",	"April",
					   "May",	"June",	    "July",	"August",
					   "September", "October",  "November", "December" };
static const char *const long_days[] = { "Sunday",   "Monday", "Tuesday", "Wednesday",
					 "Thursday", "Friday", "Saturday" };

static bool starts(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

/* Go's "startsWithLowerCase": Jan/Mon followed by a lowercase letter are not tokens. */
static bool lower_next(const char *s)
{
	return *s >= 'a' && *s <= 'z';
}

/* Numeric zone: sign, hours, then optionally minutes/seconds with or without colons. */
static void sb_zone(struct sbuf *b, long off, bool z, bool colon, int parts)
{
	long a = off < 0 ? -off : off;

	if (z && off == 0) {
		sb_puts(b, "Z");
		return;
	}
	sb_puts(b, off < 0 ? "-" : "+");
	sb_int(b, a / 3600, 2);
	if (parts >= 2) {
		if (colon)
			sb_puts(b, ":");
		sb_int(b, a / 60 % 60, 2);
	}
	if (parts >= 3) {
		if (colon)
			sb_puts(b, ":");
		sb_int(b, a % 60, 2);
	}
}

static void go_format(struct sbuf *b, const char *l, const struct tm *tm)
{
	static const struct {
		const char *tok;
		bool colon;
		int parts;
	} zones[] = {
		{ "070000", false, 3 }, { "07:00:00", true, 3 }, { "0700", false, 2 },
		{ "07:00", true, 2 },	{ "07", false, 1 },
	};
	int hour12 = tm->tm_hour % 12 ? tm->tm_hour % 12 : 12;

	while (*l) {
		const char *c = l;

		if (starts(c, "January")) {
			sb_puts(b, long_months[tm->tm_mon]);
			l += 7;
		} else if (starts(c, "Jan") && !lower_next(c + 3)) {
			sb_putn(b, long_months[tm->tm_mon], 3);
			l += 3;
		} else if (starts(c, "Monday")) {
			sb_puts(b, long_days[tm->tm_wday]);
			l += 6;
		} else if (starts(c, "Mon") && !lower_next(c + 3)) {
			sb_putn(b, long_days[tm->tm_wday], 3);
			l += 3;
		} else if (starts(c, "MST")) {
			sb_puts(b, tm->tm_zone ? tm->tm_zone : "UTC");
			l += 3;
		} else if (c[0] == '0' && c[1] >= '1' && c[1] <= '6') {
			static const int w = 2;

			switch (c[1]) {
			case '1':
				sb_int(b, tm->tm_mon + 1, w);
				break;
			case '2':
				sb_int(b, tm->tm_mday, w);
				break;
			case '3':
				sb_int(b, hour12, w);
				break;
			case '4':
				sb_int(b, tm->tm_min, w);
				break;
			case '5':
				sb_int(b, tm->tm_sec, w);
				break;
			default:
				sb_int(b, (tm->tm_year + 1900) % 100, w);
				break;
			}
			l += 2;
		} else if (starts(c, "15")) {
			sb_int(b, tm->tm_hour, 2);
			l += 2;
		} else if (c[0] == '1') {
			sb_int(b, tm->tm_mon + 1, 0);
			l += 1;
		} else if (starts(c, "2006")) {
			sb_int(b, tm->tm_year + 1900, 4);
			l += 4;
		} else if (c[0] == '2') {
			sb_int(b, tm->tm_mday, 0);
			l += 1;
		} else if (starts(c, "_2") && !starts(c, "_2006")) {
			if (tm->tm_mday < 10)
				sb_puts(b, " ");
			sb_int(b, tm->tm_mday, 0);
			l += 2;
		} else if (c[0] == '3') {
			sb_int(b, hour12, 0);
			l += 1;
		} else if (c[0] == '4') {
			sb_int(b, tm->tm_min, 0);
			l += 1;
		} else if (c[0] == '5') {
			sb_int(b, tm->tm_sec, 0);
			l += 1;
		} else if (starts(c, "PM")) {
			sb_puts(b, tm->tm_hour >= 12 ? "PM" : "AM");
			l += 2;
		} else if (starts(c, "pm")) {
			sb_puts(b, tm->tm_hour >= 12 ? "pm" : "am");
			l += 2;
		} else if ((c[0] == '-' || c[0] == 'Z') && c[1] == '0') {
			size_t i;

			for (i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
				if (starts(c + 1, zones[i].tok))
					break;
			if (i < sizeof(zones) / sizeof(zones[0])) {
				sb_zone(b, tm->tm_gmtoff, c[0] == 'Z', zones[i].colon,
					zones[i].parts);
				l += 1 + strlen(zones[i].tok);
			} else {
				sb_putn(b, c, 1);
				l += 1;
			}
		} else if ((c[0] == '.' || c[0] == ',') && (c[1] == '0' || c[1] == '9')) {
			/* fractional seconds: a run of 0s or 9s not followed by a digit; whole
			 * seconds here, so .000 prints zeros and .999 prints nothing */
			size_t j = 1;

			while (c[j] == c[1])
				j++;
			if (c[j] >= '0' && c[j] <= '9') {
				sb_putn(b, c, 1);
				l += 1;
			} else {
				if (c[1] == '0') {
					sb_putn(b, c, 1);
					for (size_t k = 1; k < j; k++)
						sb_puts(b, "0");
				}
				l += j;
			}
		} else {
			sb_putn(b, c, 1);
			l += 1;
		}
	}
}

size_t kcpx_snmp_path(char *out, size_t size, const char *path_pattern, time_t now)
{
	struct sbuf b = { out, size, 0 };
	const char *slash = strrchr(path_pattern, '/');
	const char *base = slash ? slash + 1 : path_pattern;
	struct tm tm;

	if (size)
		out[0] = 0;
	localtime_r(&now, &tm);
	sb_putn(&b, path_pattern, (size_t)(base - path_pattern));
	go_format(&b, base, &tm);
	return b.len;
}

int kcpx_snmp_log(const char *path_pattern, const struct kcpx_snmp *s, time_t now)
{
	char path[4096], line[2048];
	struct sbuf b = { line, sizeof(line), 0 };
	struct stat st;
	int fd, err = 0;
	size_t off = 0;

	if (kcpx_snmp_path(path, sizeof(path), path_pattern, now) >= sizeof(path))
		return -ENAMETOOLONG;
	fd = kcpx_file_append(path);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) == 0 && st.st_size == 0) {
		sb_puts(&b, "Unix");
#define SNMP_HDR(name) sb_puts(&b, "," #name);
		SNMP_CSV_ORDER(SNMP_HDR)
#undef SNMP_HDR
		sb_puts(&b, "\n");
	}
	sb_int(&b, (long)now, 0);
#define SNMP_ROW(name)                                                                             \
	{                                                                                          \
		char v[32];                                                                        \
		snprintf(v, sizeof(v), ",%" PRIu64, (uint64_t)s->name);                            \
		sb_puts(&b, v);                                                                    \
	}
	SNMP_CSV_ORDER(SNMP_ROW)
#undef SNMP_ROW
	sb_puts(&b, "\n");
	while (off < b.len) {
		ssize_t w = write(fd, line + off, b.len - off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		off += (size_t)w;
	}
	if (close(fd) && !err)
		err = -errno;
	return err;
}
