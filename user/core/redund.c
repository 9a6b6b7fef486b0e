// SPDX-License-Identifier: MIT
#include "core/redund.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define KCP_HDR	     24
#define KCP_CMD_PUSH 81

struct redund_slot {
	uint32_t due;
	uint16_t len;
	uint8_t data[KCPX_REDUND_MAX];
};

/* A FIFO: copies are added in time order with one delay, so they fall due in order. */
struct kcpx_redund {
	size_t max_len;
	uint32_t delay;
	unsigned head, count;
	struct redund_slot slot[KCPX_REDUND_SLOTS];
};

struct kcpx_redund *kcpx_redund_new(size_t max_len, uint32_t delay_ms)
{
	struct kcpx_redund *r;

	if (max_len == 0 || max_len > KCPX_REDUND_MAX)
		return NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->max_len = max_len;
	r->delay = delay_ms;
	return r;
}

void kcpx_redund_free(struct kcpx_redund *r)
{
	free(r);
}

bool kcpx_redund_wants(const struct kcpx_redund *r, const uint8_t *kcp, size_t len)
{
	bool push = false;

	if (len > r->max_len)
		return false;
	/* conv u32 | cmd u8 | frg u8 | wnd u16 | ts u32 | sn u32 | una u32 | len u32 | data */
	while (len >= KCP_HDR) {
		uint32_t seglen = kcpx_get_le32(kcp + 20);

		if (seglen > len - KCP_HDR)
			return false;
		push |= kcp[4] == KCP_CMD_PUSH;
		kcp += KCP_HDR + seglen;
		len -= KCP_HDR + seglen;
	}
	return push && len == 0;
}

int kcpx_redund_add(struct kcpx_redund *r, const uint8_t *body, size_t len, uint32_t now)
{
	struct redund_slot *s;

	if (len > KCPX_REDUND_MAX)
		return -EMSGSIZE;
	if (r->count == KCPX_REDUND_SLOTS)
		return -ENOBUFS;
	s = &r->slot[(r->head + r->count) % KCPX_REDUND_SLOTS];
	s->due = now + r->delay;
	s->len = (uint16_t)len;
	memcpy(s->data, body, len);
	r->count++;
	return 0;
}

bool kcpx_redund_next(const struct kcpx_redund *r, uint32_t *at)
{
	if (!r->count)
		return false;
	*at = r->slot[r->head].due;
	return true;
}

int kcpx_redund_flush(struct kcpx_redund *r, uint32_t now,
		      void (*send)(void *user, const uint8_t *body, size_t len), void *user)
{
	int n = 0;

	while (r->count && kcpx_diff32(now, r->slot[r->head].due) >= 0) {
		struct redund_slot *s = &r->slot[r->head];

		/* the slot stays taken while send runs: send may seal in a buffer of its own */
		send(user, s->data, s->len);
		r->head = (r->head + 1) % KCPX_REDUND_SLOTS;
		r->count--;
		n++;
	}
	return n;
}
