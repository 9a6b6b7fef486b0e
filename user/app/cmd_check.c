// SPDX-License-Identifier: MIT
/*
 * kcpx check [client|server] -c FILE [flags]: read the flags and FILE exactly as `kcpx
 * client|server` would, then everything a start would check before it binds a socket
 * (addresses, target, cipher), and print the effective settings. Never the key: only
 * its length, and a warning when it is kcptun's well-known default.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "app/cmd.h"
#include "app/config.h"
#include "core/crypt.h"
#include "io/addr.h"
#include "io/tcp.h"

static int check_addr(const char *key, const char *val)
{
	struct kcpx_addr a;
	unsigned hi;
	int err = strcmp(key, "localaddr") ? kcpx_addr_parse_range(val, &a, &hi)
					   : kcpx_addr_parse(val, &a);

	if (err)
		fprintf(stderr, "kcpx check: %s '%s': %s\n", key, val,
			err == -EOPNOTSUPP ? "a port range is not allowed here" : strerror(-err));
	else if (strcmp(key, "localaddr") && hi > kcpx_addr_port(&a))
		printf("note: %s is a port range (%u ports): kcpx client|server only, not kcpx "
		       "up\n",
		       key, hi - kcpx_addr_port(&a) + 1);
	return err;
}

int kcpx_cmd_check(int argc, char **argv)
{
	enum kcpx_role role = KCPX_ROLE_NONE;
	static const uint8_t seed[32];
	struct kcpx_crypt *c = NULL;
	struct kcpx_config cfg;
	struct kcpx_target tg;
	int i = 1, rest = 0, bad = 0, err;

	/* argv[0] is "check" */
	role = kcpx_cmd_role(argc, argv, &i);
	if (role == KCPX_ROLE_NONE) {
		fprintf(stderr, "usage: kcpx check [client|server] -c FILE [flags]\n"
				"  (say client or server when FILE sets neither listen/target "
				"nor localaddr/remoteaddr, or does not parse)\n");
		if (i < argc && (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")))
			return 0;
		/* let the parser name what is wrong with the file */
		for (int k = i; k + 1 < argc; k++)
			if (!strcmp(argv[k], "-c") || !strcmp(argv[k], "--c")) {
				kcpx_config_defaults(&cfg, KCPX_ROLE_SERVER);
				kcpx_config_load_json(&cfg, argv[k + 1]);
			}
		return 2;
	}
	kcpx_config_defaults(&cfg, role);
	err = kcpx_config_parse(&cfg, argc - i, argv + i, &rest);
	if (err)
		return err > 0 ? 0 : 1;
	if (i + rest < argc) {
		fprintf(stderr, "kcpx check: unexpected argument '%s'\n", argv[i + rest]);
		return 1;
	}
	if (kcpx_config_finish(&cfg))
		return 1;
	if (role == KCPX_ROLE_CLIENT) {
		bad |= check_addr("localaddr", cfg.localaddr) != 0;
		bad |= check_addr("remoteaddr", cfg.remoteaddr) != 0;
	} else {
		bad |= check_addr("listen", cfg.listen) != 0;
		err = kcpx_target_parse(cfg.target, &tg);
		if (err) {
			fprintf(stderr, "kcpx check: target '%s': %s\n", cfg.target,
				strerror(-err));
			bad = 1;
		}
	}
	err = kcpx_crypt_new(&c, cfg.crypt, cfg.key, seed);
	if (err) {
		fprintf(stderr, "kcpx check: crypt '%s': %s\n", cfg.crypt, strerror(-err));
		bad = 1;
	} else if (strcmp(kcpx_crypt_name(c), cfg.crypt)) {
		printf("note: crypt '%s' is not a cipher name: '%s' is used, as kcptun does\n",
		       cfg.crypt, kcpx_crypt_name(c));
	}
	kcpx_crypt_free(c);
	if (!strcmp(cfg.key, "it's a secrect"))
		printf("warning: key is kcptun's default, which everybody knows: set your own\n");
	if (bad)
		return 1;
	printf("# kcpx %s: effective settings\n", role == KCPX_ROLE_SERVER ? "server" : "client");
	printf("key: (%zu bytes, not shown)\n", strlen(cfg.key));
	kcpx_config_print(stdout, &cfg);
	return 0;
}
