/* SPDX-License-Identifier: MIT */
/*
 * For fuzz targets whose code under test keeps keys in sodium_malloc memory (core/native.c:
 * the PSK, each handshake, each native session). libsodium maps every such block on its own,
 * with guard pages, mprotect and mlock, and unmaps it on sodium_free: four or five syscalls
 * and, on a multi-CPU machine, a TLB shootdown per key, which cost most of a fuzz run's time.
 *
 * Defined in the fuzz target, these take precedence over the shared library's for calls from
 * the target's own code (the core is compiled into it). Plain malloc under ASan still traps
 * an access one byte past the block, which is what the guard page would catch; what is lost
 * is mlock and the canary, which no fuzzer input can reach. Include once, in the target.
 *
 * libsodium places a block against its trailing guard page, so a size that is a multiple of
 * 64 (struct native_keys, aligned(64)) starts 64-byte aligned; the stand-in keeps that, or
 * a build without ASan (whose malloc gives 16) trips UBSan's alignment check.
 */
#ifndef KCPX_FUZZ_KEYS_H
#define KCPX_FUZZ_KEYS_H

#include <stdlib.h>
#include <sodium.h>

void *sodium_malloc(size_t size)
{
	return aligned_alloc(64, (size + 63) / 64 * 64 ?: 64);
}

void sodium_free(void *p)
{
	free(p);
}

#endif
