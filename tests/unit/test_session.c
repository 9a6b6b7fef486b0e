// SPDX-License-Identifier: MIT
/*
 * Session-level rules not covered by the KCP, smux and endpoint tests: the give-up time
 * toward a silent peer follows the keepalive settings a reload brings.
 */
#include <stdint.h>

#include "core/crypt.h"
#include "core/session.h"
#include "core/smux.h"
#include "unit.h"

static void drop_xmit(void *user, const uint8_t *dgram, size_t len)
{
	(void)dgram;
	(*(uint64_t *)user) += len; /* the peer never answers */
}

static const struct kcpx_session_ops ops = { .xmit = drop_xmit };

/* A client session with a stream holding unacknowledged data toward a silent peer; smux
 * keepalive off at start. Returns the virtual time (ms from start) it died at, or 0. */
static uint32_t silent_death(uint32_t ka_ms, uint32_t timeout_ms, uint32_t until_ms)
{
	static const uint8_t seed[32];
	uint8_t key[KCPX_CRYPT_KEYLEN] = { 1 };
	struct kcpx_crypt *crypt = NULL;
	struct kcpx_snmp snmp = { 0 };
	struct kcpx_session *s;
	uint64_t sent = 0;
	uint32_t now = 1000, died = 0, sid;

	if (kcpx_crypt_new_key(&crypt, "none", key, seed))
		return 0;
	struct kcpx_session_config cfg = {
		.conv = 0x01020304,
		.mtu = 1350,
		.sndwnd = 32,
		.rcvwnd = 32,
		.nodelay = 1,
		.interval = 10,
		.resend = 2,
		.nc = 1,
		.crypt = crypt,
		.smux = { .version = 2,
			  .client = true,
			  .max_recv_buffer = 65536,
			  .max_stream_buffer = 65536,
			  .max_streams = 8 },
	};
	s = kcpx_session_new(&cfg, &ops, &sent, &snmp, now);
	if (!s)
		goto out;
	if (ka_ms)
		kcpx_session_set_keepalive(s, ka_ms, timeout_ms, now);
	if (kcpx_smux_open(kcpx_session_smux(s), &sid) == 0)
		kcpx_smux_write(kcpx_session_smux(s), sid, (const uint8_t *)"hello", 5);
	kcpx_session_pump(s, now);
	for (; now - 1000 <= until_ms; now += 100) {
		kcpx_session_tick(s, now);
		if (kcpx_session_dead(s)) {
			died = now - 1000;
			break;
		}
	}
	kcpx_session_free(s);
out:
	kcpx_crypt_free(crypt);
	return died;
}

static void test_give_up_default(void)
{
	uint32_t died = silent_death(0, 0, 200000);

	/* KCPX_SESSION_GIVE_UP_MS of silence, counted from the start */
	CHECK(died >= KCPX_SESSION_GIVE_UP_MS);
	CHECK(died <= KCPX_SESSION_GIVE_UP_MS + 3000);
}

static void test_give_up_follows_reload(void)
{
	/* keepalive 40 s: smux's timeout is 120 s, and the silent peer gets as long */
	uint32_t died = silent_death(40000, 120000, 200000);

	CHECK(died >= 120000);
	CHECK(died <= 123000);
	/* a shorter timeout never cuts below the 60 s floor */
	died = silent_death(5000, 15000, 200000);
	CHECK(died >= 15000);
}

int main(void)
{
	RUN(test_give_up_default);
	RUN(test_give_up_follows_reload);
	UNIT_MAIN_END();
}
