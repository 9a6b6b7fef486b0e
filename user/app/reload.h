/* SPDX-License-Identifier: MIT */
/*
 * SIGHUP: read the configuration again (the same command line and -c file) and apply
 * what can change while sessions run. The running configuration is one struct that the
 * tunnel reads at use; a reload overwrites it only when every changed key is live:
 *
 *   live:    log (the file is reopened on every reload, for logrotate), verbose, quiet,
 *            keepalive (every session's smux too), snmplog, snmpperiod, autoexpire,
 *            scavengettl, reprobe
 *   restart: everything else (addresses, key, crypt, FEC, compression, smux, windows,
 *            mode, proto, metrics, ...): the reload is refused with one log line naming
 *            the changed keys, and the old configuration keeps running.
 */
#ifndef KCPX_APP_RELOAD_H
#define KCPX_APP_RELOAD_H

#include "app/config.h"

/*
 * Remember what to read again: call before parsing (kcpx scrubs --key out of argv while
 * parsing, so this keeps its own copy). cfg is the running configuration, written by
 * kcpx_reload().
 */
int kcpx_reload_init(struct kcpx_config *cfg, int argc, char **argv);

/* Returns 1 when applied, 0 when refused (the reason logged). */
int kcpx_reload(void);

#endif
