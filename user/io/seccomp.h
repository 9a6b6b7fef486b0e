/* SPDX-License-Identifier: MIT */
/*
 * A syscall allow-list (seccomp, classic BPF) for `kcpx client|server` over UDP sockets,
 * installed once the tunnel is set up (sockets bound, keys loaded, privileges dropped):
 * from then on the daemon parses datagrams from the network, and code that takes it over
 * can only do what a relay does (sockets, epoll, files for logs and reloads, memory,
 * threads). Refused, among others: execve, fork, ptrace, bpf, mount, module loading,
 * setuid, capset, namespaces, io_uring, keyctl.
 *
 * A syscall outside the list is not executed: it fails with EPERM, and
 * kcpx_seccomp_denied() counts it and remembers the last number, so the daemon can say so
 * in its log (a syscall missing from the list is a kcpx bug, better reported than fatal).
 * A foreign ABI (x32, or a 32-bit syscall on a 64-bit kernel) kills the process.
 *
 * Architectures: x86_64 and aarch64; elsewhere kcpx_seccomp_install returns -ENOTSUP.
 */
#ifndef KCPX_IO_SECCOMP_H
#define KCPX_IO_SECCOMP_H

#include <stdint.h>

/* Install the filter on every thread of the process (threads started later inherit it).
 * no_new_privs must be set (io/priv.h) or the caller must hold CAP_SYS_ADMIN. Returns 0 or
 * -errno; *what then names the step that failed. */
int kcpx_seccomp_install(const char **what);

/* Syscalls refused so far, and the number of the last one. */
uint64_t kcpx_seccomp_denied(int *last_nr);

#endif
