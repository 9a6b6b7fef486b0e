/* SPDX-License-Identifier: MIT */
/*
 * kcpx under a service manager (systemd Type=notify): READY=1 once the tunnel listens
 * (and XDP is attached under `kcpx up`), STATUS= a one-line summary kept current,
 * RELOADING=1 around a SIGHUP reload, STOPPING=1 on shutdown. Harmless without one.
 */
#ifndef KCPX_APP_SERVICE_H
#define KCPX_APP_SERVICE_H

#include <stdint.h>

/* The tunnel is up: `what` is its one-line description ("server :4000 -> 127.0.0.1:22"). */
void kcpx_service_ready(const char *what);
/* Called every second: refreshes STATUS= when the counts changed. */
void kcpx_service_tick(unsigned sessions, unsigned streams);
void kcpx_service_reloading(void);
void kcpx_service_reloaded(void);
void kcpx_service_stopping(void);

#endif
