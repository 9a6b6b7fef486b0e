/* SPDX-License-Identifier: MIT */
/*
 * kcp-go's SNMP counter set, under kcp-go's own names so that kcpx's SIGUSR1 dump,
 * --snmplog CSV and the pinned BPF map read exactly like kcptun's. Shared by BPF and
 * userspace: only fixed-width fields, no padding.
 */
#ifndef KCPX_SNMP_H
#define KCPX_SNMP_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* The counters kcp-go lists in the same place in its struct and its CSV header. */
#define KCPX_SNMP_FIELDS_BASE(X)                                                                   \
	X(BytesSent)                                                                               \
	X(BytesReceived)                                                                           \
	X(MaxConn)                                                                                 \
	X(ActiveOpens)                                                                             \
	X(PassiveOpens)                                                                            \
	X(CurrEstab)                                                                               \
	X(InErrs)                                                                                  \
	X(InCsumErrors)                                                                            \
	X(KCPInErrors)                                                                             \
	X(InPkts)                                                                                  \
	X(OutPkts)                                                                                 \
	X(InSegs)                                                                                  \
	X(OutSegs)                                                                                 \
	X(InBytes)                                                                                 \
	X(OutBytes)                                                                                \
	X(RetransSegs)                                                                             \
	X(FastRetransSegs)                                                                         \
	X(EarlyRetransSegs)                                                                        \
	X(LostSegs)                                                                                \
	X(RepeatSegs)

/* X(name): every counter in the order of kcp-go's Snmp struct (what its SIGUSR1 line
 * prints); the CSV columns order the FEC counters differently (app/snmp.c). */
#define KCPX_SNMP_FIELDS(X)                                                                        \
	KCPX_SNMP_FIELDS_BASE(X)                                                                   \
	X(FECRecovered)                                                                            \
	X(FECErrs)                                                                                 \
	X(FECParityShards)                                                                         \
	X(FECShortShards)

struct kcpx_snmp {
#define KCPX_SNMP_DECLARE(name) __u64 name;
	KCPX_SNMP_FIELDS(KCPX_SNMP_DECLARE)
#undef KCPX_SNMP_DECLARE
};

#define KCPX_SNMP_COUNT (sizeof(struct kcpx_snmp) / sizeof(__u64))
_Static_assert(sizeof(struct kcpx_snmp) == 24 * 8, "kcp-go has 24 SNMP counters");

#endif
