// SPDX-License-Identifier: MIT
/*
 * The tunnel's half of a SIGHUP reload: app/reload.c decides (and writes the running
 * config); this carries the live keys the endpoint and open sessions hold copies of.
 */
#include "app/log.h"
#include "app/reload.h"
#include "app/service.h"
#include "app/tunnel_int.h"
#include "core/session.h"
#include "core/smux.h"
#include "io/clock.h"

/* --keepalive: a NOP every keepalive s; a peer silent for max(30, 3 x keepalive) s is dead */
void kcpx_tun_keepalive(const struct kcpx_config *cfg, struct kcpx_smux_config *smux)
{
	uint32_t ka = cfg->keepalive > 0 ? (uint32_t)cfg->keepalive : 0;

	smux->keepalive_ms = ka * 1000u;
	smux->keepalive_timeout_ms = !ka ? 0 : ka * 3000u > 30000u ? ka * 3000u : 30000u;
}

/* One thread's live settings from the reloaded config. */
static void reload_one(struct tunnel *t)
{
	const struct kcpx_config *cfg = t->cfg;
	uint32_t now = kcpx_clock_ms();
	struct kcpx_smux_config ka;

	kcpx_tun_keepalive(cfg, &ka);
	t->keepalive_timeout_ms = ka.keepalive_timeout_ms;
	kcpx_ep_set_live(t->ep, cfg->reprobe, cfg->autoexpire, cfg->scavengettl, ka.keepalive_ms,
			 ka.keepalive_timeout_ms);
	for (struct kcpx_ep_sess *e = kcpx_ep_first(t->ep); e; e = kcpx_ep_next(e)) {
		if (kcpx_ep_sess_closing(e) || !kcpx_ep_sess_user(e))
			continue;
		kcpx_session_set_keepalive(kcpx_ep_session(e), ka.keepalive_ms,
					   ka.keepalive_timeout_ms, now);
		kcpx_tun_sess_mark(kcpx_ep_sess_user(e));
	}
}

/*
 * SIGHUP, on thread 0: the config every thread reads is rewritten in place, so every
 * thread is held between two turns (its lock) until each has its new live settings.
 */
void kcpx_tun_reload(struct tunnel *t)
{
	unsigned n = kcpx_shard_count(t);
	struct tunnel *o[64];

	kcpx_service_reloading();
	for (unsigned i = 0; i < n; i++)
		o[i] = kcpx_shard_get(t, i);
	if (kcpx_reload()) {
		for (unsigned i = 0; i < n; i++) {
			reload_one(o[i]);
			if (o[i] != t && o[i]->dirty) /* its loop pumps them on its next turn */
				kcpx_shard_poke(o[i]);
		}
	}
	for (unsigned i = 0; i < n; i++)
		kcpx_shard_put(t, o[i]);
	kcpx_service_reloaded();
}
