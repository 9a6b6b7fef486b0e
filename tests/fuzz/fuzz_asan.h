/* SPDX-License-Identifier: MIT */
/*
 * Allocator settings for the targets that allocate on every execution (a KCP engine, smux
 * streams, sessions, FEC groups).
 *
 * ASan's quarantine: ASan holds freed blocks back, 256 MB by default, before it reuses
 * their memory: every execution's allocations then land on memory not touched for a long
 * time (a cache miss per line, a page fault per fresh page, the allocator refilling its
 * free lists): a third to a half of these targets' cost per execution.
 *
 * 16 MB is still several times what one execution frees (the most seen, over the seed
 * corpora and a short campaign of each: fuzz_kcp 4.6 MB with its bounded send backlog,
 * fuzz_fec 3.3 MB, fuzz_endpoint 1.9 MB, fuzz_session 0.5 MB, fuzz_smux 0.4 MB), so a
 * block freed and then used again within one execution is still caught. ASAN_OPTIONS
 * overrides it.
 *
 * glibc's heap trimming, for builds without ASan (the long campaigns): an execution frees
 * everything it allocated, so the top of the heap is free at its end, and glibc gives
 * anything above M_TRIM_THRESHOLD (128 KB) back to the kernel; the next execution faulted
 * the same pages in again (fuzz_kcp: two thirds of its CPU time in page faults and
 * malloc's refill). Keeping up to 256 MB at the top changes no allocation's size or
 * contents. Setting it stops glibc's own raising of M_MMAP_THRESHOLD, so that is set too
 * (to its 32 MB limit): blocks of 128 KB and more (fuzz_fec's reconstruction buffers)
 * would otherwise be an mmap and a munmap each. ASan intercepts mallopt() and ignores it.
 */
#ifndef KCPX_FUZZ_ASAN_H
#define KCPX_FUZZ_ASAN_H

#include <malloc.h>

const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "quarantine_size_mb=16";
}

__attribute__((constructor)) static void fuzz_keep_heap(void)
{
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
}

#endif
