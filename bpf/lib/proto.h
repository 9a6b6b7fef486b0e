/* SPDX-License-Identifier: MIT */
/*
 * Protocol constants the BPF programs need: vmlinux.h has the types but no macros.
 */
#ifndef KCPX_BPF_LIB_PROTO_H
#define KCPX_BPF_LIB_PROTO_H

#define ETH_P_IP     0x0800
#define ETH_P_IPV6   0x86DD
#define ETH_P_8021Q  0x8100
#define ETH_P_8021AD 0x88A8

#define IP_MF	  0x2000
#define IP_OFFSET 0x1fff

#define IP6_MF	   0x0001
#define IP6_OFFSET 0xfff8

#define NEXTHDR_HOP	 0
#define NEXTHDR_ROUTING	 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH	 51
#define NEXTHDR_DEST	 60

#define TC_ACT_OK   0
#define TC_ACT_SHOT 2

#endif
