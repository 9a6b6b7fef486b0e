/* SPDX-License-Identifier: MIT */
/*
 * kcpx's settings: kcptun's flags and JSON keys (same names, same defaults per role),
 * plus kcpx's own. One table drives the command line, `-c file.json` and --help.
 */
#ifndef KCPX_APP_CONFIG_H
#define KCPX_APP_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "core/endpoint.h"

enum kcpx_role { KCPX_ROLE_NONE = 0, KCPX_ROLE_CLIENT = 1, KCPX_ROLE_SERVER = 2 };

#define KCPX_STR      256
#define KCPX_CONN_MAX 1024 /* --conn */

struct kcpx_config {
	enum kcpx_role role;
	/* client */
	char localaddr[KCPX_STR];
	char remoteaddr[KCPX_STR];
	int conn;
	int autoexpire;
	/* server */
	char listen[KCPX_STR];
	char target[KCPX_STR];
	/* both */
	char key[KCPX_STR];
	char keyfile[KCPX_STR]; /* the key's first line comes from this file (not in ps) */
	bool key_given;		/* --key, "key", --keyfile or KCPTUN_KEY: not the default */
	char crypt[32];
	char mode[16];
	int scavengettl;
	int mtu;
	int sndwnd;
	int rcvwnd;
	int datashard;
	int parityshard;
	int dscp;
	bool nocomp;
	bool acknodelay;
	int nodelay;
	int interval;
	int resend;
	int nc;
	int sockbuf;
	int smuxver;
	int smuxbuf;
	int streambuf;
	int keepalive;
	char log[KCPX_STR];
	char snmplog[KCPX_STR];
	int snmpperiod;
	bool quiet;
	bool tcp;
	bool pprof;
	/* kcpx's own */
	int verbose;
	bool tlp;
	bool quickack;
	bool rtohygiene;
	int dupsmall;	/* bytes; 0: off */
	int dupgap;	/* ms */
	int fecflush;	/* ms; 0: off */
	char proto[16]; /* auto, kcpx (native only), kcptun (compatible only): docs/PROTOCOL.md */
	enum kcpx_proto protocol; /* proto, parsed by kcpx_config_finish() */
	int reprobe;	 /* client, auto: s after a fallback before new sessions probe; 0: never */
	int hsrate;	 /* server: kcpx handshakes per second per source address; 0: no limit */
	int maxsessions; /* server: sessions in all; 0: no limit */
	int threads;	 /* engines, one per thread (app/shard.c) */
	int persource;	 /* server: sessions from one address (IPv6: /64); 0: no limit */
	int sessrate;	 /* server: new sessions per second per source address; 0: no limit */
	int maxstreams;	 /* streams (TCP connections) in all sessions; 0: no limit */
	int sessstreams; /* streams in one session (smux max_streams) */
	int closewait;	 /* s a stream stays open after its first direction ended (kcptun) */
	char cc[8];	 /* bbr, kcp, off; "" = bbr, or kcp for --mode manual with nc 0 */
	char fecparity[8]; /* auto, loss, fixed: FEC parity between kcpx ends */
	int ratelimit;	   /* wire bytes per second per session; 0: no limit */
	int maxwnd;	   /* ceiling of the grown send window (kcpx ends, bbr); 0: no growth */
	bool qpp;	   /* kcptun's QPP: refused */
	int qppcount;
	bool noseccomp;		/* no syscall filter once set up (io/seccomp.h) */
	char user[KCPX_STR];	/* run as this user once set up (io/priv.h), or empty */
	char metrics[KCPX_STR]; /* ADDR:PORT for /metrics and /healthz, or empty */
};

/* kcptun's default key: everyone knows it, so kcpx warns when it is in use */
#define KCPX_DEFAULT_KEY "it's a secrect"

/* Defaults for a role (kcptun 20210922's, WIRE.md §6). */
void kcpx_config_defaults(struct kcpx_config *cfg, enum kcpx_role role);

/*
 * Parse argv (kcptun's flag syntax: -flag v, --flag v, --flag=v, bool flags bare) into cfg.
 * `-c FILE` loads JSON after the flags, overriding them, as kcptun does. Unknown flags and
 * keys are errors naming them. `*rest` gets the index of the first positional argument.
 * Returns 0, 1 when --help was printed, or -EINVAL with the reason printed to stderr.
 */
int kcpx_config_parse(struct kcpx_config *cfg, int argc, char **argv, int *rest);
int kcpx_config_load_json(struct kcpx_config *cfg, const char *path);
/* Apply --mode's preset (overrides nodelay/interval/resend/nc unless mode is manual) and
 * check ranges. Returns 0 or -EINVAL with the reason printed. */
int kcpx_config_finish(struct kcpx_config *cfg);
/* Role from which of listen/target vs localaddr/remoteaddr a JSON file sets. */
enum kcpx_role kcpx_config_role_of_json(const char *path);
void kcpx_config_usage(FILE *fp, enum kcpx_role role);
void kcpx_config_print(FILE *fp, const struct kcpx_config *cfg);
/*
 * What differs between a and b (same role), as lists of quoted key names: keys a running
 * tunnel can take (live: log, verbose, quiet, keepalive, snmplog, snmpperiod, autoexpire,
 * scavengettl, reprobe) and keys that need a restart (all others; the key's value is
 * never written, only its name).
 */
void kcpx_config_diff(const struct kcpx_config *a, const struct kcpx_config *b, char *restart,
		      size_t rsize, char *live, size_t lsize);
/* Every flag of client and server as scdoc text, for the man page (tools/mkman.c). */
void kcpx_config_man(FILE *fp);

#endif
