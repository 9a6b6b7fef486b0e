/* SPDX-License-Identifier: MIT */
/*
 * Redundancy for small messages (issue 7, optional, --dupsmall): a small datagram that
 * carries stream data goes out a second time a few ms later, so one loss costs those few
 * ms instead of a retransmission. The copy is the same body (KCP bytes, or the FEC shard
 * with its seqid), sealed again: KCP drops the segment it already has (kcp-go counts
 * RepeatSegs) and a FEC decoder the seqid it already holds, so any kcptun peer takes it.
 * I/O-free: the session hands each body in before sealing it and takes copies out when due.
 *
 * One per session, not thread-safe.
 */
#ifndef KCPX_CORE_REDUND_H
#define KCPX_CORE_REDUND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KCPX_REDUND_SLOTS 16   /* copies waiting at once; past that, no copy is made */
#define KCPX_REDUND_MAX	  1500 /* no body is longer */

struct kcpx_redund;

/* max_len: bodies with data up to this long are copied; delay_ms: the spacing.
 * NULL if max_len is 0 or above KCPX_REDUND_MAX, or out of memory. */
struct kcpx_redund *kcpx_redund_new(size_t max_len, uint32_t delay_ms);
void kcpx_redund_free(struct kcpx_redund *r);

/*
 * True if the KCP output datagram kcp[0..len) deserves a copy: it is at most max_len
 * bytes and holds a PUSH segment (ACK-only and window probes do not). Anything that does
 * not parse as whole KCP segments: false.
 */
bool kcpx_redund_wants(const struct kcpx_redund *r, const uint8_t *kcp, size_t len);

/* Keep a copy of body to send at now + delay: 0, -EMSGSIZE, or -ENOBUFS when all slots
 * wait (the datagram then goes once, as without the option). */
int kcpx_redund_add(struct kcpx_redund *r, const uint8_t *body, size_t len, uint32_t now);

/* When the next copy is due; false when none waits. */
bool kcpx_redund_next(const struct kcpx_redund *r, uint32_t *at);

/* Hand each copy due by now to send (oldest first), then forget it; returns how many. */
int kcpx_redund_flush(struct kcpx_redund *r, uint32_t now,
		      void (*send)(void *user, const uint8_t *body, size_t len), void *user);

#endif
