// SPDX-License-Identifier: MIT
#include "app/service.h"

#include <stdio.h>
#include <string.h>

#include "app/log.h"
#include "io/notify.h"

static char what_[3 * 256];
static unsigned last_sessions = ~0u, last_streams = ~0u;

static void send_state(const char *state)
{
	int err = kcpx_notify(state);

	if (err)
		pr_warn_ratelimited("service manager notification failed: %s", strerror(-err));
}

static void status(const char *prefix, unsigned sessions, unsigned streams)
{
	char buf[3 * 256 + 128];

	snprintf(buf, sizeof(buf), "%sSTATUS=%s; %u session%s, %u stream%s", prefix, what_,
		 sessions, sessions == 1 ? "" : "s", streams, streams == 1 ? "" : "s");
	send_state(buf);
}

void kcpx_service_ready(const char *what)
{
	snprintf(what_, sizeof(what_), "%s", what);
	last_sessions = last_streams = 0;
	status("READY=1\n", 0, 0);
}

void kcpx_service_tick(unsigned sessions, unsigned streams)
{
	if (!kcpx_notify_enabled() || (sessions == last_sessions && streams == last_streams))
		return;
	last_sessions = sessions;
	last_streams = streams;
	status("", sessions, streams);
}

void kcpx_service_reloading(void)
{
	send_state("RELOADING=1");
}

void kcpx_service_reloaded(void)
{
	send_state("READY=1");
}

void kcpx_service_stopping(void)
{
	send_state("STOPPING=1\nSTATUS=stopping");
}
