// SPDX-License-Identifier: MIT
#include "app/config.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/kcp.h"

enum opt_type { OPT_STR, OPT_INT, OPT_BOOL };

#define R_C  KCPX_ROLE_CLIENT
#define R_S  KCPX_ROLE_SERVER
#define R_CS (KCPX_ROLE_CLIENT | KCPX_ROLE_SERVER)

struct opt {
	const char *name;  /* long flag and JSON key */
	const char *alias; /* short or alternative flag name, or NULL */
	enum opt_type type;
	size_t off;
	size_t size; /* strings: buffer size */
	int roles;
	bool hidden;	     /* kcptun hides it from --help; so do we, but it works */
	const char *missing; /* not supported by kcpx: why (refused when set) */
	const char *help;
};

#define S(n, a, r, h)                                                                              \
	{                                                                                          \
#n, a, OPT_STR, offsetof(struct kcpx_config, n), KCPX_STR, r, false, NULL, h       \
	}
#define I(n, a, r, h)                                                                              \
	{                                                                                          \
#n, a, OPT_INT, offsetof(struct kcpx_config, n), 0, r, false, NULL, h              \
	}
#define B(n, a, r, h)                                                                              \
	{                                                                                          \
#n, a, OPT_BOOL, offsetof(struct kcpx_config, n), 0, r, false, NULL, h             \
	}

static const struct opt opts[] = {
	S(localaddr, "l", R_C, "local listen address (TCP)"),
	S(remoteaddr, "r", R_C,
	  "kcp server address; host:lo-hi: each new session picks a port of the range"),
	S(listen, "l", R_S,
	  "kcp server listen address (UDP); :lo-hi serves every port of the range"),
	S(target, "t", R_S, "target server address: host:port, or a unix socket path"),
	S(key, NULL, R_CS, "pre-shared secret between client and server (env KCPTUN_KEY)"),
	S(user, NULL, R_CS,
	  "once set up, run as this user: no supplementary groups, only the capabilities "
	  "the backend needs, no_new_privs"),
	B(noseccomp, NULL, R_CS, "no syscall allow-list (seccomp) once set up"),
	S(keyfile, "key-file", R_CS,
	  "read the key from the first line of this file (not shown by ps; 0600)"),
	{ "crypt", NULL, OPT_STR, offsetof(struct kcpx_config, crypt), 32, R_CS, false, NULL,
	  "aes, aes-128, aes-192, salsa20, blowfish, twofish, cast5, 3des, tea, xtea, xor, sm4, "
	  "none, null, aes-128-gcm" },
	{ "mode", NULL, OPT_STR, offsetof(struct kcpx_config, mode), 16, R_CS, false, NULL,
	  "profiles: fast3, fast2, fast, normal, manual" },
	I(conn, NULL, R_C, "number of UDP sessions to the server"),
	I(autoexpire, NULL, R_C, "seconds before a session is replaced by a new one, 0: never"),
	I(scavengettl, NULL, R_CS, "seconds an expired session may live on, -1: close at once"),
	I(mtu, NULL, R_CS, "maximum UDP payload (bytes)"),
	I(sndwnd, NULL, R_CS,
	  "send window (packets; between kcpx ends with --cc bbr it grows with the path up to "
	  "--maxwnd)"),
	I(rcvwnd, NULL, R_CS, "receive window (packets)"),
	I(maxwnd, NULL, R_CS,
	  "between kcpx ends with --cc bbr, the send window grows past --sndwnd up to this "
	  "many packets when the path needs it; 0: no growth, --sndwnd is the limit"),
	I(datashard, "ds", R_CS, "Reed-Solomon data shards"),
	I(parityshard, "ps", R_CS, "Reed-Solomon parity shards"),
	I(dscp, NULL, R_CS, "DSCP (6 bits) for outgoing packets"),
	B(nocomp, NULL, R_CS, "disable compression"),
	{ "acknodelay", NULL, OPT_BOOL, offsetof(struct kcpx_config, acknodelay), 0, R_CS, true,
	  NULL, "flush ACKs immediately" },
	{ "nodelay", NULL, OPT_INT, offsetof(struct kcpx_config, nodelay), 0, R_CS, true, NULL,
	  "mode manual: nodelay" },
	{ "interval", NULL, OPT_INT, offsetof(struct kcpx_config, interval), 0, R_CS, true, NULL,
	  "mode manual: update interval (ms)" },
	{ "resend", NULL, OPT_INT, offsetof(struct kcpx_config, resend), 0, R_CS, true, NULL,
	  "mode manual: fast-retransmit threshold" },
	{ "nc", NULL, OPT_INT, offsetof(struct kcpx_config, nc), 0, R_CS, true, NULL,
	  "mode manual, without --cc: 0 selects --cc kcp (KCP's classic cwnd); 1 (every preset) "
	  "--cc bbr" },
	I(sockbuf, NULL, R_CS, "UDP socket buffer (bytes)"),
	I(smuxver, NULL, R_CS, "smux version, 1 or 2"),
	I(smuxbuf, NULL, R_CS, "session-wide smux receive buffer (bytes)"),
	I(streambuf, NULL, R_CS, "per-stream receive buffer (bytes, smux v2)"),
	I(keepalive, NULL, R_CS, "seconds between keepalive frames"),
	S(log, NULL, R_CS, "log to this file instead of stderr"),
	S(snmplog, NULL, R_CS, "collect SNMP counters to this file (Go date pattern allowed)"),
	I(snmpperiod, NULL, R_CS, "seconds between SNMP log rows"),
	B(quiet, NULL, R_CS, "do not log stream open/close"),
	{ "tcp", NULL, OPT_BOOL, offsetof(struct kcpx_config, tcp), 0, R_CS, false, NULL,
	  "emulate a TCP connection (fake TCP in TC/XDP, kcptun --tcp compatible; root)" },
	{ "pprof", NULL, OPT_BOOL, offsetof(struct kcpx_config, pprof), 0, R_S, true,
	  "pprof is a Go profiler; kcpx has `kcpx stats` and `kcpx status` instead",
	  "start a profiling server" },
	I(verbose, "v", R_CS, "log level: 0 warnings, 1 info, 2 debug"),
	B(tlp, NULL, R_CS, "tail-loss probe: resend the last unacked segment after ~1 srtt"),
	B(quickack, NULL, R_CS, "ACK at once when a segment opens or fills a gap"),
	B(rtohygiene, NULL, R_CS,
	  "bound RTO by 2*srtt+interval and backoff by 2*RTO; re-announce a reopened window"),
	I(fecflush, NULL, R_CS, "send a partial FEC group's parity after this many ms, 0: off"),
	I(dupsmall, NULL, R_CS, "send datagrams with data up to this many bytes twice, 0: off"),
	I(dupgap, NULL, R_CS, "ms between a --dupsmall datagram and its copy"),
	{ "proto", NULL, OPT_STR, offsetof(struct kcpx_config, proto), 16, R_CS, false, NULL,
	  "wire protocol: kcpx (native), kcptun, or auto (server: both; client: kcpx, falling "
	  "back to kcptun when no kcpx server answers)" },
	I(reprobe, NULL, R_C,
	  "--proto auto: seconds after a fallback to kcptun before new sessions try kcpx again, "
	  "0: never"),
	I(maxsessions, NULL, R_S, "sessions the server keeps at most, every format; 0: no limit"),
	I(persource, NULL, R_S,
	  "sessions from one source address (IPv6: one /64) at most; 0: no limit"),
	I(sessrate, NULL, R_S,
	  "new sessions taken per second per source address (burst as many), every format; "
	  "0: no limit"),
	I(maxstreams, NULL, R_CS,
	  "streams (TCP connections) in all sessions at most; the server answers a stream over "
	  "it with FIN, the client closes the connection; 0: no limit"),
	I(sessstreams, NULL, R_CS,
	  "streams one session holds at most (at most 65536); a peer's stream over it is "
	  "answered with FIN"),
	I(closewait, NULL, R_CS,
	  "seconds a stream's other direction stays open after one direction ended (EOF or "
	  "error), then both close, as kcptun does; 0 at both ends here, where kcptun "
	  "2024-2025's server had 30, holding the target's EOF back 30 s (set 30 for that)"),
	I(hsrate, NULL, R_S,
	  "kcpx handshakes taken per second per source address (burst as many), 0: no limit"),
	{ "cc", NULL, OPT_STR, offsetof(struct kcpx_config, cc), 8, R_CS, false, NULL,
	  "congestion control: bbr (paced, loss-tolerant; default), kcp (KCP's classic cwnd) "
	  "or off (windows only; kcptun's nc=1)" },
	{ "fecparity", NULL, OPT_STR, offsetof(struct kcpx_config, fecparity), 8, R_CS, false, NULL,
	  "FEC parity between kcpx ends with --cc bbr: auto (a bulk transfer its controller "
	  "holds back sends none up to about 30 % loss, ARQ resends what is lost; other "
	  "sessions follow the loss), loss (every session's parity follows the loss: a tunnel "
	  "that mixes interactive streams with downloads in one session) or fixed (always "
	  "--parityshard, as in kcptun's format)" },
	I(ratelimit, NULL, R_CS,
	  "cap each session's sending rate at this many wire bytes/s, 0: off"),
	{ "qpp", "QPP", OPT_BOOL, offsetof(struct kcpx_config, qpp), 0, R_CS, false,
	  "kcptun's Quantum Permutation Pad changes every stream's bytes and kcpx cannot "
	  "check its implementation against kcptun's, so it does not guess; turn qpp off at "
	  "both ends",
	  "kcptun's Quantum Permutation Pad over each stream" },
	{ "qpp-count", "QPPCount", OPT_INT, offsetof(struct kcpx_config, qppcount), 0, R_CS, false,
	  NULL, "kcptun's number of QPP pads (accepted; QPP itself is refused)" },
	I(threads, NULL, R_CS,
	  "engines, one thread each with its own socket (SO_REUSEPORT) and sessions; "
	  "kcpx client|server over UDP, and kcpx up (one per RX queue); 0 (the default): "
	  "kcpx up one per RX queue up to the online cores, otherwise 1"),
	S(metrics, NULL, R_CS,
	  "serve Prometheus metrics on this ADDR:PORT at /metrics, health at /healthz"),
};

/* Keys newer kcptun releases write into JSON files; kcpx does not implement them. */
static const char *const newer_keys[] = { "framesize", "rate" };

void kcpx_config_defaults(struct kcpx_config *cfg, enum kcpx_role role)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->role = role;
	strcpy(cfg->localaddr, ":12948");
	strcpy(cfg->remoteaddr, "vps:29900");
	strcpy(cfg->listen, ":29900");
	strcpy(cfg->target, "127.0.0.1:12948");
	strcpy(cfg->key, KCPX_DEFAULT_KEY);
	strcpy(cfg->crypt, "aes");
	strcpy(cfg->mode, "fast");
	cfg->conn = 1;
	cfg->scavengettl = 600;
	cfg->mtu = 1350;
	cfg->sndwnd = role == KCPX_ROLE_SERVER ? 1024 : 128;
	cfg->rcvwnd = role == KCPX_ROLE_SERVER ? 1024 : 512;
	cfg->maxwnd = KCPX_KCP_WND_GROW_MAX;
	cfg->datashard = 10;
	cfg->parityshard = 3;
	/* issue 7: tail latency under loss (README "Tail latency"); --x=false / --fecflush 0 */
	cfg->tlp = true;
	cfg->quickack = true;
	cfg->rtohygiene = true;
	cfg->fecflush = 10;
	cfg->dupgap = 5;
	cfg->nodelay = 0;
	cfg->interval = 50;
	cfg->resend = 0;
	cfg->nc = 0;
	cfg->sockbuf = 4194304;
	cfg->smuxver = 1;
	cfg->smuxbuf = 4194304;
	cfg->streambuf = 2097152;
	cfg->keepalive = 10;
	cfg->snmpperiod = 60;
	cfg->verbose = 1;
	/* Native between kcpx ends by default (issue 6). A server takes either protocol; a
	 * client tries the native handshake for 1 s, then falls back to kcptun's format, and
	 * its new sessions try again after --reprobe s (a stock kcptun server counts those few
	 * probes as InCsumErrors). --proto kcptun skips the probe. */
	strcpy(cfg->proto, "auto");
	cfg->reprobe = 60;
	strcpy(cfg->fecparity, "auto");
	/* A client sends one INIT per session it opens (--conn of them at most at once) and
	 * resends it every 100 ms while unanswered: 10/s for the default --conn 1. 100 leaves
	 * that tenfold headroom and caps what one address can make the server spend on
	 * handshakes (about 0.1 ms of CPU each) near 1 % of a core. docs/PROTOCOL.md §6. */
	cfg->hsrate = 100;
	/* Admission (docs/SECURITY.md): a server's memory and CPU per forged or replayed
	 * datagram are bounded by these and the unproven-session rules of core/endpoint.c. */
	cfg->maxsessions = 4096;
	/* 0: chosen at start (kcpx up: one per RX queue up to the cores, else 1). Kept as 0
	 * in the running config, so a SIGHUP with the same config compares equal. */
	cfg->threads = 0;
	cfg->persource = 128;
	cfg->sessrate = 20;
	/* Each stream is a TCP socket and a few hundred bytes: far above what a browser or a
	 * proxy behind one client opens, low enough to bound fds and memory. */
	cfg->maxstreams = 65536;
	cfg->sessstreams = 16384;
	/* 0 at both ends, where kcptun 2024-2025 has 30 on the server: with 30, every target
	 * that closes first (a download, HTTP with Connection: close) leaves the client
	 * waiting 30 s for its EOF (a later kcptun fork moved to 0 for this). "closewait": 30
	 * in server.json gives kcptun 2024-2025's behaviour. */
	cfg->closewait = 0;
	cfg->qppcount = 61;
}

static const struct opt *find_opt(const char *name, enum kcpx_role role, bool json)
{
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		const struct opt *o = &opts[i];
		if (!(o->roles & role))
			continue;
		if (!strcmp(o->name, name) || (!json && o->alias && !strcmp(o->alias, name)))
			return o;
	}
	return NULL;
}

static int set_str(struct kcpx_config *cfg, const struct opt *o, const char *v)
{
	char *dst = (char *)cfg + o->off;

	if (strlen(v) >= o->size) {
		fprintf(stderr, "kcpx: value of '%s' is too long (at most %zu bytes)\n", o->name,
			o->size - 1);
		return -EINVAL;
	}
	strcpy(dst, v);
	return 0;
}

static int set_int(struct kcpx_config *cfg, const struct opt *o, const char *v)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 0);
	if (!*v || *end || errno || n < INT_MIN || n > INT_MAX) {
		fprintf(stderr, "kcpx: '%s' wants a whole number, not '%s'\n", o->name, v);
		return -EINVAL;
	}
	*(int *)((char *)cfg + o->off) = (int)n;
	return 0;
}

static int parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "t") || !strcmp(v, "TRUE"))
		*out = true;
	else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "f") || !strcmp(v, "FALSE"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

static int refuse_missing(const struct opt *o, bool set)
{
	if (o->missing && set) {
		fprintf(stderr, "kcpx: '%s' is not supported: %s\n", o->name, o->missing);
		return -EOPNOTSUPP;
	}
	return 0;
}

int kcpx_config_parse(struct kcpx_config *cfg, int argc, char **argv, int *rest)
{
	const char *json = NULL;
	int i, err;

	for (i = 0; i < argc; i++) {
		char *arg = argv[i], name[64], *eq;
		const char *val = NULL;
		const struct opt *o;
		size_t nl;

		if (arg[0] != '-' || !arg[1])
			break;
		if (!strcmp(arg, "--")) {
			i++;
			break;
		}
		arg += (arg[1] == '-') ? 2 : 1;
		eq = strchr(arg, '=');
		nl = eq ? (size_t)(eq - arg) : strlen(arg);
		if (nl >= sizeof(name)) {
			fprintf(stderr, "kcpx: unknown flag '%s'\n", argv[i]);
			return -EINVAL;
		}
		memcpy(name, arg, nl);
		name[nl] = 0;
		if (eq)
			val = eq + 1;
		if (!strcmp(name, "h") || !strcmp(name, "help")) {
			kcpx_config_usage(stdout, cfg->role);
			return 1;
		}
		if (!strcmp(name, "c")) {
			if (!val && i + 1 >= argc) {
				fprintf(stderr, "kcpx: flag '-c' wants a JSON file\n");
				return -EINVAL;
			}
			json = val ? val : argv[++i];
			continue;
		}
		o = find_opt(name, cfg->role, false);
		if (!o) {
			fprintf(stderr, "kcpx: unknown flag '%s' (see --help)\n", argv[i]);
			return -EINVAL;
		}
		if (o->type == OPT_BOOL) {
			bool b = true;
			if (val && parse_bool(val, &b)) {
				fprintf(stderr, "kcpx: flag '%s' wants true or false, not '%s'\n",
					o->name, val);
				return -EINVAL;
			}
			err = refuse_missing(o, b);
			if (err)
				return err;
			*(bool *)((char *)cfg + o->off) = b;
			continue;
		}
		if (!val) {
			if (i + 1 >= argc) {
				fprintf(stderr, "kcpx: flag '%s' wants a value\n", argv[i]);
				return -EINVAL;
			}
			val = argv[++i];
		}
		err = refuse_missing(o, true);
		if (!err)
			err = o->type == OPT_STR ? set_str(cfg, o, val) : set_int(cfg, o, val);
		if (err)
			return err;
		if (o->off == offsetof(struct kcpx_config, key)) {
			/* out of /proc/PID/cmdline, so `ps` shows no secret (--keyfile is better:
			 * the key was visible until here) */
			memset((char *)val, 'x', strlen(val));
			cfg->key_given = true;
		}
	}
	if (rest)
		*rest = i;
	if (json) {
		err = kcpx_config_load_json(cfg, json);
		if (err)
			return err;
	}
	return 0;
}

int kcpx_config_load_json(struct kcpx_config *cfg, const char *path)
{
	json_error_t jerr;
	json_t *root, *v;
	const char *key;
	int err = 0;

	root = json_load_file(path, 0, &jerr);
	if (!root) {
		fprintf(stderr, "kcpx: %s:%d:%d: %s\n", path, jerr.line, jerr.column, jerr.text);
		return -EINVAL;
	}
	if (!json_is_object(root)) {
		fprintf(stderr, "kcpx: %s: the top level must be a JSON object\n", path);
		json_decref(root);
		return -EINVAL;
	}
	json_object_foreach(root, key, v)
	{
		const struct opt *o = find_opt(key, cfg->role, true);
		bool newer = false;

		for (size_t k = 0; k < sizeof(newer_keys) / sizeof(newer_keys[0]); k++)
			newer |= !strcmp(key, newer_keys[k]);
		if (!o && newer) {
			fprintf(stderr,
				"kcpx: %s: key '%s' (from a newer kcptun) is not supported; "
				"ignored\n",
				path, key);
			continue;
		}
		if (!o) {
			fprintf(stderr, "kcpx: %s: unknown key '%s'\n", path, key);
			err = -EINVAL;
			break;
		}
		switch (o->type) {
		case OPT_STR:
			if (!json_is_string(v)) {
				fprintf(stderr, "kcpx: %s: key '%s' wants a string\n", path, key);
				err = -EINVAL;
			} else {
				err = refuse_missing(o, true);
				if (!err)
					err = set_str(cfg, o, json_string_value(v));
				if (!err && o->off == offsetof(struct kcpx_config, key))
					cfg->key_given = true;
			}
			break;
		case OPT_INT:
			if (!json_is_integer(v) || json_integer_value(v) < INT_MIN ||
			    json_integer_value(v) > INT_MAX) {
				fprintf(stderr, "kcpx: %s: key '%s' wants a whole number\n", path,
					key);
				err = -EINVAL;
			} else {
				err = refuse_missing(o, true);
				*(int *)((char *)cfg + o->off) = (int)json_integer_value(v);
			}
			break;
		case OPT_BOOL:
			if (!json_is_boolean(v)) {
				fprintf(stderr, "kcpx: %s: key '%s' wants true or false\n", path,
					key);
				err = -EINVAL;
			} else {
				err = refuse_missing(o, json_is_true(v));
				*(bool *)((char *)cfg + o->off) = json_is_true(v);
			}
			break;
		}
		if (err)
			break;
	}
	json_decref(root);
	return err;
}

enum kcpx_role kcpx_config_role_of_json(const char *path)
{
	enum kcpx_role role = KCPX_ROLE_NONE;
	json_error_t jerr;
	json_t *root;

	root = json_load_file(path, 0, &jerr);
	if (!root)
		return KCPX_ROLE_NONE;
	if (json_object_get(root, "listen") || json_object_get(root, "target"))
		role = KCPX_ROLE_SERVER;
	else if (json_object_get(root, "localaddr") || json_object_get(root, "remoteaddr"))
		role = KCPX_ROLE_CLIENT;
	json_decref(root);
	return role;
}

static int range(const char *name, int v, int lo, int hi)
{
	if (v < lo || v > hi) {
		fprintf(stderr, "kcpx: '%s' must be within %d..%d, not %d\n", name, lo, hi, v);
		return -EINVAL;
	}
	return 0;
}

/*
 * --keyfile: the key is the file's first line (without its line end), so that it is not
 * in argv or the environment. Using it with --key or KCPTUN_KEY is an error: which one
 * wins would be a guess.
 */
static int read_keyfile(struct kcpx_config *cfg)
{
	char buf[KCPX_STR + 2];
	struct stat st;
	size_t n;
	FILE *f;

	if (cfg->key_given) {
		fprintf(stderr, "kcpx: give the key one way: --keyfile, or --key/\"key\", or "
				"KCPTUN_KEY\n");
		return -EINVAL;
	}
	f = fopen(cfg->keyfile, "re");
	if (!f) {
		fprintf(stderr, "kcpx: keyfile '%s': %s\n", cfg->keyfile, strerror(errno));
		return -EINVAL;
	}
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 0077))
		fprintf(stderr,
			"kcpx: warning: keyfile '%s' is readable by others (mode %04o): chmod "
			"600 it\n",
			cfg->keyfile, (unsigned)(st.st_mode & 07777));
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	n = strcspn(buf, "\r\n");
	if (n >= sizeof(cfg->key)) {
		explicit_bzero(buf, sizeof(buf));
		fprintf(stderr, "kcpx: keyfile '%s': the key is too long (at most %zu bytes)\n",
			cfg->keyfile, sizeof(cfg->key) - 1);
		return -EINVAL;
	}
	buf[n] = 0;
	if (!n) {
		fprintf(stderr, "kcpx: keyfile '%s': the first line is empty\n", cfg->keyfile);
		return -EINVAL;
	}
	memcpy(cfg->key, buf, n + 1);
	explicit_bzero(buf, sizeof(buf));
	cfg->key_given = true;
	return 0;
}

int kcpx_config_finish(struct kcpx_config *cfg)
{
	static const struct {
		const char *name;
		int nodelay, interval, resend, nc;
	} modes[] = {
		{ "normal", 0, 40, 2, 1 },
		{ "fast", 0, 30, 2, 1 },
		{ "fast2", 1, 20, 2, 1 },
		{ "fast3", 1, 10, 2, 1 },
	};
	const char *env = getenv("KCPTUN_KEY");
	bool known = !strcmp(cfg->mode, "manual");
	int err = 0;

	/* kcptun: the environment variable supplies the key when set */
	if (env && *env) {
		if (strlen(env) >= sizeof(cfg->key)) {
			fprintf(stderr, "kcpx: KCPTUN_KEY is too long (at most %zu bytes)\n",
				sizeof(cfg->key) - 1);
			return -EINVAL;
		}
		strcpy(cfg->key, env);
		cfg->key_given = true;
	}
	if (cfg->keyfile[0]) {
		err = read_keyfile(cfg);
		if (err)
			return err;
	}
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (strcmp(cfg->mode, modes[i].name))
			continue;
		cfg->nodelay = modes[i].nodelay;
		cfg->interval = modes[i].interval;
		cfg->resend = modes[i].resend;
		cfg->nc = modes[i].nc;
		known = true;
	}
	if (!known) {
		fprintf(stderr, "kcpx: unknown mode '%s' (fast3, fast2, fast, normal or manual)\n",
			cfg->mode);
		return -EINVAL;
	}
	err = err ?: range("mtu", cfg->mtu, 64, 1500);
	err = err ?: range("sndwnd", cfg->sndwnd, 1, 65535);
	err = err ?: range("rcvwnd", cfg->rcvwnd, 1, 65535);
	err = err ?: range("maxwnd", cfg->maxwnd, 0, 65535);
	err = err ?: range("datashard", cfg->datashard, 0, 255);
	err = err ?: range("parityshard", cfg->parityshard, 0, 255);
	err = err ?: range("dscp", cfg->dscp, 0, 63);
	err = err ?: range("interval", cfg->interval, 1, 5000);
	err = err ?: range("resend", cfg->resend, 0, 1000);
	err = err ?: range("smuxver", cfg->smuxver, 1, 2);
	err = err ?: range("conn", cfg->conn, 1, KCPX_CONN_MAX);
	err = err ?: range("keepalive", cfg->keepalive, 0, 3600);
	err = err ?: range("smuxbuf", cfg->smuxbuf, 65536, 1 << 30);
	err = err ?: range("streambuf", cfg->streambuf, 65536, 1 << 30);
	err = err ?: range("sockbuf", cfg->sockbuf, 0, 1 << 30);
	err = err ?: range("snmpperiod", cfg->snmpperiod, 1, 86400);
	err = err ?: range("verbose", cfg->verbose, 0, 2);
	err = err ?: range("fecflush", cfg->fecflush, 0, 60000);
	err = err ?: range("dupsmall", cfg->dupsmall, 0, 1500);
	err = err ?: range("dupgap", cfg->dupgap, 1, 1000);
	err = err ?: range("reprobe", cfg->reprobe, 0, 86400);
	err = err ?: range("hsrate", cfg->hsrate, 0, 65535); /* the XDP bucket holds a u16 */
	err = err ?: range("maxsessions", cfg->maxsessions, 0, 1 << 20);
	err = err ?: range("threads", cfg->threads, 0, 64);
	err = err ?: range("persource", cfg->persource, 0, 1 << 20);
	err = err ?: range("sessrate", cfg->sessrate, 0, 1 << 20);
	err = err ?: range("maxstreams", cfg->maxstreams, 0, 1 << 24);
	err = err ?: range("sessstreams", cfg->sessstreams, 1, 65536);
	err = err ?: range("closewait", cfg->closewait, 0, 86400);
	err = err ?: range("ratelimit", cfg->ratelimit, 0, 2147483647);
	if (err)
		return err;
	if (!cfg->cc[0]) {
		/* kcptun's nc: every preset sets nc=1 ("no congestion window"), which now
		 * means the paced controller; only a manual nc=0 asks for KCP's own cwnd */
		strcpy(cfg->cc, !strcmp(cfg->mode, "manual") && cfg->nc == 0 ? "kcp" : "bbr");
	}
	if (strcmp(cfg->cc, "bbr") && strcmp(cfg->cc, "kcp") && strcmp(cfg->cc, "off")) {
		fprintf(stderr, "kcpx: unknown cc '%s' (bbr, kcp or off)\n", cfg->cc);
		return -EINVAL;
	}
	if (strcmp(cfg->fecparity, "auto") && strcmp(cfg->fecparity, "loss") &&
	    strcmp(cfg->fecparity, "fixed")) {
		fprintf(stderr, "kcpx: unknown fecparity '%s' (auto, loss or fixed)\n",
			cfg->fecparity);
		return -EINVAL;
	}
	if (cfg->ratelimit && strcmp(cfg->cc, "bbr")) {
		fprintf(stderr, "kcpx: ratelimit paces the sender and needs --cc bbr (not %s)\n",
			cfg->cc);
		return -EINVAL;
	}
	if (kcpx_proto_parse(cfg->proto, &cfg->protocol)) {
		fprintf(stderr, "kcpx: unknown proto '%s' (auto, kcpx or kcptun)\n", cfg->proto);
		return -EINVAL;
	}
	if (cfg->datashard + cfg->parityshard > 256) {
		fprintf(stderr, "kcpx: datashard + parityshard must be at most 256\n");
		return -EINVAL;
	}
	if (cfg->datashard > 0 && cfg->parityshard == 0) {
		/* kcptun turns FEC off unless both are set; say so instead of guessing */
		cfg->datashard = 0;
	}
	if (cfg->parityshard > 0 && cfg->datashard == 0)
		cfg->parityshard = 0;
	return 0;
}

void kcpx_config_usage(FILE *fp, enum kcpx_role role)
{
	struct kcpx_config d;

	kcpx_config_defaults(&d, role);
	fprintf(fp, "usage: kcpx %s [flags]   (kcptun's flags and JSON keys)\n\n",
		role == KCPX_ROLE_SERVER ? "server" : "client");
	fprintf(fp, "  -c FILE                 JSON config with the flags' long names as keys\n");
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		const struct opt *o = &opts[i];
		char flag[64], def[KCPX_STR + 16] = "";

		if (!(o->roles & role))
			continue;
		snprintf(flag, sizeof(flag), "--%s%s%s%s", o->name, o->alias ? ", -" : "",
			 o->alias ? o->alias : "",
			 o->type == OPT_STR   ? " S"
			 : o->type == OPT_INT ? " N"
					      : "");
		if (o->type == OPT_STR && *((char *)&d + o->off))
			snprintf(def, sizeof(def), " (default \"%s\")", (char *)&d + o->off);
		else if (o->type == OPT_INT)
			snprintf(def, sizeof(def), " (default %d)", *(int *)((char *)&d + o->off));
		fprintf(fp, "  %-23s %s%s%s%s\n", flag, o->help, def, o->hidden ? " [hidden]" : "",
			o->missing ? " [not supported]" : "");
	}
}

/* Text for scdoc: '*', '_' and '\\' are markup there. */
static void man_text(FILE *fp, const char *s)
{
	for (; *s; s++) {
		if (*s == '*' || *s == '_' || *s == '\\')
			fputc('\\', fp);
		fputc(*s, fp);
	}
}

static void man_default(FILE *fp, const struct opt *o, const struct kcpx_config *d)
{
	const char *p = (const char *)d + o->off;

	if (o->type == OPT_STR)
		fprintf(fp, "\"");
	if (o->type == OPT_STR)
		man_text(fp, p);
	else if (o->type == OPT_INT)
		fprintf(fp, "%d", *(const int *)p);
	else
		fprintf(fp, "%s", *(const bool *)p ? "on" : "off");
	if (o->type == OPT_STR)
		fprintf(fp, "\"");
}

void kcpx_config_man(FILE *fp)
{
	struct kcpx_config dc, ds;

	kcpx_config_defaults(&dc, KCPX_ROLE_CLIENT);
	kcpx_config_defaults(&ds, KCPX_ROLE_SERVER);
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		const struct opt *o = &opts[i];
		const char *pc = (const char *)&dc + o->off, *ps = (const char *)&ds + o->off;
		size_t sz = o->type == OPT_STR	 ? strlen(pc) + 1
			    : o->type == OPT_INT ? sizeof(int)
						 : sizeof(bool);
		bool same = !memcmp(pc, ps, sz);

		fprintf(fp, "*--");
		man_text(fp, o->name);
		fprintf(fp, "*");
		if (o->alias) {
			fprintf(fp, ", *-");
			man_text(fp, o->alias);
			fprintf(fp, "*");
		}
		fprintf(fp, "%s\n\t",
			o->type == OPT_STR   ? " _S_"
			: o->type == OPT_INT ? " _N_"
					     : "");
		if (o->help[0] == '-')
			fputc('\\', fp); /* not a list entry */
		man_text(fp, o->help);
		fprintf(fp, ".");
		if (o->roles == R_C)
			fprintf(fp, " Client only.");
		else if (o->roles == R_S)
			fprintf(fp, " Server only.");
		if (o->missing) {
			fprintf(fp, " Not supported: ");
			man_text(fp, o->missing);
			fprintf(fp, ".\n\n");
			continue;
		}
		fprintf(fp, " Default: ");
		if (o->roles != R_CS || same) {
			man_default(fp, o, o->roles == R_S ? &ds : &dc);
		} else {
			fprintf(fp, "client ");
			man_default(fp, o, &dc);
			fprintf(fp, ", server ");
			man_default(fp, o, &ds);
		}
		fprintf(fp, ".%s\n\n", o->hidden ? " Hidden from --help, as in kcptun." : "");
	}
}

/* Keys a SIGHUP may change while sessions run (app/reload.h says how each applies). */
static const char *const live_keys[] = { "log",	    "verbose",	  "quiet",	"keepalive",
					 "snmplog", "snmpperiod", "autoexpire", "scavengettl",
					 "reprobe", "closewait" };

static void list_add(char *list, size_t size, const char *name)
{
	size_t n = strlen(list);

	snprintf(list + n, size - n, "%s'%s'", n ? ", " : "", name);
}

void kcpx_config_diff(const struct kcpx_config *a, const struct kcpx_config *b, char *restart,
		      size_t rsize, char *live, size_t lsize)
{
	restart[0] = live[0] = 0;
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		const struct opt *o = &opts[i];
		const char *pa = (const char *)a + o->off, *pb = (const char *)b + o->off;
		bool is_live = false, same;

		if (!(o->roles & a->role))
			continue;
		if (o->type == OPT_STR)
			same = !strcmp(pa, pb);
		else if (o->type == OPT_INT)
			same = *(const int *)pa == *(const int *)pb;
		else
			same = *(const bool *)pa == *(const bool *)pb;
		if (same)
			continue;
		for (size_t k = 0; k < sizeof(live_keys) / sizeof(live_keys[0]); k++)
			is_live |= !strcmp(o->name, live_keys[k]);
		if (is_live)
			list_add(live, lsize, o->name);
		else
			list_add(restart, rsize, o->name);
	}
}

void kcpx_config_print(FILE *fp, const struct kcpx_config *cfg)
{
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		const struct opt *o = &opts[i];
		const char *p = (const char *)cfg + o->off;

		if (!(o->roles & cfg->role) || !strcmp(o->name, "key"))
			continue; /* never print the key */
		if (o->type == OPT_STR)
			fprintf(fp, "%s: %s\n", o->name, p);
		else if (o->type == OPT_INT)
			fprintf(fp, "%s: %d\n", o->name, *(const int *)p);
		else
			fprintf(fp, "%s: %s\n", o->name, *(const bool *)p ? "true" : "false");
	}
}
