/* SPDX-License-Identifier: MIT */
/*
 * The nftables rules `--tcp` needs, through the nft(8) command.
 *
 * After the handshake the kernel's socket of a fake-TCP flow is turned to TTL 1 (IPv6 hop
 * limit 1): whatever it still sends (ACKs of data it never saw, window updates, the RST of
 * an abortive close) must not reach the peer or a middlebox, where it would contradict
 * the sequence numbers the translation sends. One table per daemon drops those:
 *
 *   table inet kcpx_tcp_PID {
 *     set ports { type inet_service; }
 *     chain out { type filter hook output priority 0;
 *                 tcp sport @ports ip ttl 1 drop; tcp sport @ports ip6 hoplimit 1 drop } }
 *
 * The table's name carries the daemon's PID: `kcpx down` (and the next `--tcp` daemon at
 * start) removes the tables of daemons that are gone, e.g. after a kill -9.
 *
 * nft(8) is a program to run, and the daemon's syscall filter (io/seccomp.h) refuses fork
 * and execve: kcpx_nft_open forks a helper before the filter goes on, which creates the
 * table and then runs nft for the daemon, one fixed request at a time (add or delete a
 * port, delete the table and exit). It holds none of the daemon's other fds, ignores the
 * signals a terminal sends to the process group, and exits when the daemon's end closes.
 */
#ifndef KCPX_IO_NFT_H
#define KCPX_IO_NFT_H

#include <stdint.h>

#define KCPX_NFT_PREFIX "kcpx_tcp_"

/* Start the helper and create this process's table. 0 or -errno (-ENOENT: no nft
 * command). */
int kcpx_nft_open(void);
/* Add / remove a local TCP port (host order) to the drop set. */
int kcpx_nft_port_add(uint16_t port);
int kcpx_nft_port_del(uint16_t port);
/* Delete this process's table; the helper exits and is reaped (wait4). */
void kcpx_nft_close(void);
/* Delete the tables of kcpx daemons that no longer run. Returns how many, or -errno. */
int kcpx_nft_down_stale(void);

#endif
