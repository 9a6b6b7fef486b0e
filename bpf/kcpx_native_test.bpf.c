// SPDX-License-Identifier: (GPL-2.0 OR MIT)
/*
 * Test-only XDP programs for the native protocol's BPF helpers (bpf/lib/native.h,
 * siphash.h, replay.h), run by tests/bpf/test_native.c and tests/unit/test_native.c with
 * BPF_PROG_RUN. Never attached to an interface: the real checks live in kcpx.bpf.c.
 *
 *   kcpx_xdp_nat      every UDP frame through kcpx_native_verify(), with its source
 *                     address for the handshake rate limit: XDP_PASS or XDP_DROP
 *   kcpx_xdp_sip      data = key(16) | message(0..64): overwrites the first 8 bytes with
 *                     SipHash-2-4(key, message), little-endian, and returns XDP_PASS
 *   kcpx_xdp_siphdr   data = key(16) | header(24) [| FEC(6)]: the first 8 bytes become
 *                     the header tag as the XDP check computes it
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/parse.h"
#include "lib/native.h"

SEC("xdp")
int kcpx_xdp_nat(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct kcpx_native_rl_key src = {};
	struct kcpx_pinfo pi = {};
	__u32 ulen;

	if (kcpx_parse(data, data_end, &pi) != KCPX_P_UDP)
		return XDP_PASS;
	if (pi.family == 4)
		__builtin_memcpy(src.addr, &((struct iphdr *)pi.l3)->saddr, 4);
	else
		__builtin_memcpy(src.addr, &((struct ipv6hdr *)pi.l3)->saddr, 16);
	ulen = bpf_ntohs(pi.udp->len);
	if (ulen < sizeof(struct udphdr))
		return XDP_DROP;
	if (kcpx_native_verify(pi.udp + 1, data_end, ulen - sizeof(struct udphdr), &src) !=
	    KCPX_NV_PASS)
		return XDP_DROP;
	return XDP_PASS;
}

static __always_inline void put_le64(__u8 *p, __u64 v)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	__builtin_memcpy(p, &v, 8);
}

SEC("xdp")
int kcpx_xdp_sip(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	__u8 buf[KCPX_SIP_MAX] = {};
	__u8 *p = data;
	__u64 k0, k1, out;
	__u32 len = 0;

	if (data + 16 > data_end)
		return XDP_ABORTED;
	k0 = kcpx_sip_le64(p);
	k1 = kcpx_sip_le64(p + 8);
	for (int i = 0; i < KCPX_SIP_MAX; i++) {
		if (data + 16 + i + 1 > data_end)
			break;
		buf[i] = p[16 + i];
		len++;
	}
	out = kcpx_sip_buf(k0, k1, buf, len);
	put_le64(p, out);
	return XDP_PASS;
}

SEC("xdp")
int kcpx_xdp_siphdr(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	__u8 h[KCPX_NATIVE_HDR + KCPX_NATIVE_FEC_HDR];
	__u8 *p = data;
	bool fec;

	if (data + 16 + KCPX_NATIVE_HDR > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(h, p + 16, KCPX_NATIVE_HDR);
	fec = h[2] & KCPX_NF_FEC;
	if (fec) {
		if (data + 16 + KCPX_NATIVE_HDR + KCPX_NATIVE_FEC_HDR > data_end)
			return XDP_ABORTED;
		__builtin_memcpy(h + KCPX_NATIVE_HDR, p + 16 + KCPX_NATIVE_HDR,
				 KCPX_NATIVE_FEC_HDR);
	}
	put_le64(p, kcpx_sip_hdr(kcpx_sip_le64(p), kcpx_sip_le64(p + 8), h,
				 fec ? h + KCPX_NATIVE_HDR : NULL));
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
