/* SPDX-License-Identifier: MIT */
/*
 * A syscall allow-list (seccomp, classic BPF), installed once the tunnel is set up
 * (sockets bound, keys loaded, BPF loaded and attached, privileges dropped): from then on
 * the daemon parses datagrams from the network, and code that takes it over can only do
 * what a relay does (sockets, epoll, files for logs and reloads, memory, threads).
 * Refused, among others: execve, fork, ptrace, mount, module loading, setuid, capset,
 * namespaces, io_uring, keyctl, and bpf().
 *
 * `kcpx up` and --tcp hold BPF maps and links; they ask for narrow additions (extra):
 * bpf() with the commands that read and write maps they hold, read an object's info and
 * open a pin (the teardown checks that a pin is still its own), and for --tcp, which
 * attaches its programs to interfaces as routes need them, BPF_LINK_CREATE. Loading a
 * program, creating a map or BTF, and getting an fd by id stay refused. What they undo at
 * exit (XDP, TC, pins, threaded NAPI) goes through netlink, unlink and an fd opened
 * before the filter (io/napi.h); --tcp's nft(8) runs in a helper forked before it
 * (io/nft.h).
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

/* extra: what a backend needs beyond a relay's list */
#define KCPX_SECCOMP_BPF_MAPS (1u << 0) /* bpf(): maps it holds, object info, open a pin */
#define KCPX_SECCOMP_BPF_LINK (1u << 1) /* bpf(BPF_LINK_CREATE) */
#define KCPX_SECCOMP_WAIT     (1u << 2) /* wait4: reap a helper forked before the filter */

/* Install the filter on every thread of the process (threads started later inherit it).
 * no_new_privs must be set (io/priv.h) or the caller must hold CAP_SYS_ADMIN. Returns 0 or
 * -errno; *what then names the step that failed. */
int kcpx_seccomp_install(unsigned extra, const char **what);

/* Syscalls refused so far, and the number of the last one. */
uint64_t kcpx_seccomp_denied(int *last_nr);

#endif
