// SPDX-License-Identifier: MIT
/*
 * Data-path cost of the native protocol (user/core/native.c), both ciphers, one session
 * pair made from a fixed secret, 1400-byte bodies (FEC header off):
 *
 *   seal: kcpx_native_seal() of the same body again and again (header, SipHash tag, AEAD).
 *   open: kcpx_native_open() of a batch sealed beforehand (untimed), every counter fresh,
 *         so each datagram passes the tag, the replay window and the AEAD.
 *   both: seal on the client then open on the server, per datagram: what one packet of a
 *         tunnel costs the two ends together.
 * GB/s = body bytes per second, 1e9 bytes.
 *
 * Output, one line each (machine-readable, key=value):
 *   native_bench cipher=aes256gcm op=seal body=1400 gbps=N.NN
 * Usage: native_bench [seconds per op, default 1] [body bytes, default 1400]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/native.h"

#define BATCH 4096 /* datagrams per timing check */
#define MAXB  1500

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(const char *cipher, const char *op, size_t body, size_t bytes, double t)
{
	printf("native_bench cipher=%s op=%s body=%zu gbps=%.2f\n", cipher, op, body,
	       (double)bytes / t / 1e9);
	fflush(stdout);
}

static int bench(enum kcpx_native_cipher c, const char *name, double secs, size_t body)
{
	static const uint8_t secret[32] = { 7, 7, 7 };
	static uint8_t batch[BATCH][KCPX_NATIVE_HDR + MAXB + KCPX_NATIVE_MAC];
	uint8_t d[KCPX_NATIVE_HDR + MAXB + KCPX_NATIVE_MAC];
	struct kcpx_native *cli, *srv;
	size_t bytes = 0;
	double t0, t = 0;
	int len = 0;

	if (kcpx_native_new_secret(&cli, secret, 1, false, c) ||
	    kcpx_native_new_secret(&srv, secret, 1, true, c))
		return 1;
	for (size_t i = 0; i < sizeof(d); i++)
		d[i] = (uint8_t)(i * 131 + 7);

	t0 = now_s();
	do {
		for (int i = 0; i < BATCH; i++)
			kcpx_native_seal(cli, d, body, false);
		bytes += (size_t)BATCH * body;
		t = now_s() - t0;
	} while (t < secs);
	report(name, "seal", body, bytes, t);

	bytes = 0;
	t = 0;
	do {
		for (int i = 0; i < BATCH; i++) {
			memcpy(batch[i] + KCPX_NATIVE_HDR, d + KCPX_NATIVE_HDR, body);
			len = kcpx_native_seal(cli, batch[i], body, false);
		}
		t0 = now_s();
		for (int i = 0; i < BATCH; i++)
			if (kcpx_native_open(srv, batch[i], (size_t)len) != (int)body)
				return 1;
		t += now_s() - t0;
		bytes += (size_t)BATCH * body;
	} while (t < secs);
	report(name, "open", body, bytes, t);

	bytes = 0;
	t0 = now_s();
	do {
		for (int i = 0; i < BATCH; i++) {
			len = kcpx_native_seal(cli, d, body, false);
			if (kcpx_native_open(srv, d, (size_t)len) != (int)body)
				return 1;
		}
		bytes += (size_t)BATCH * body;
		t = now_s() - t0;
	} while (t < secs);
	report(name, "both", body, bytes, t);

	kcpx_native_free(cli);
	kcpx_native_free(srv);
	return 0;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 1.0;
	size_t body = argc > 2 ? strtoul(argv[2], NULL, 10) : 1400;

	if (body > MAXB) {
		fprintf(stderr, "native_bench: body at most %d bytes\n", MAXB);
		return 2;
	}
	if (kcpx_native_aes_available() && bench(KCPX_NATIVE_AESGCM, "aes256gcm", secs, body))
		return 1;
	if (bench(KCPX_NATIVE_XCHACHA, "xchacha20poly1305", secs, body))
		return 1;
	return 0;
}
