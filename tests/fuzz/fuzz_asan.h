/* SPDX-License-Identifier: MIT */
/*
 * ASan's quarantine for the targets that allocate on every execution (a KCP engine, smux
 * streams, sessions, FEC groups). ASan holds freed blocks back, 256 MB by default, before
 * it reuses their memory: every execution's allocations then land on memory not touched
 * for a long time (a cache miss per line, a page fault per fresh page, the allocator
 * refilling its free lists): a third to a half of these targets' cost per execution.
 *
 * 16 MB is still several times what one execution frees (the most seen, over the seed
 * corpora and a short campaign of each: fuzz_kcp 4.6 MB with its bounded send backlog,
 * fuzz_fec 3.3 MB, fuzz_endpoint 1.9 MB, fuzz_session 0.5 MB, fuzz_smux 0.4 MB), so a
 * block freed and then used again within one execution is still caught. ASAN_OPTIONS
 * overrides it.
 */
#ifndef KCPX_FUZZ_ASAN_H
#define KCPX_FUZZ_ASAN_H

const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "quarantine_size_mb=16";
}

#endif
