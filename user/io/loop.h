/* SPDX-License-Identifier: MIT */
/*
 * The event loop: one epoll set for every fd (UDP/AF_XDP sockets, TCP connections,
 * listeners, signalfd) and a min-heap of timers, so that thousands of sessions are
 * driven by their own deadlines instead of being polled.
 */
#ifndef KCPX_IO_LOOP_H
#define KCPX_IO_LOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct kcpx_loop;

/* A watched fd. The owner embeds it; fn gets the epoll event bits. */
struct kcpx_watch {
	int fd;
	uint32_t events; /* EPOLLIN / EPOLLOUT currently asked for */
	void (*fn)(struct kcpx_watch *w, uint32_t events);
};

/* A timer. The owner embeds it; `idx` is its heap slot, or -1 when not armed. */
struct kcpx_timer {
	uint32_t when;	  /* absolute kcpx_clock_ms() */
	uint64_t when_us; /* absolute kcpx_clock_us(): what the heap orders by */
	int idx;
	void (*fn)(struct kcpx_timer *t, uint32_t now);
};

struct kcpx_loop *kcpx_loop_new(void);
void kcpx_loop_free(struct kcpx_loop *loop);

int kcpx_loop_add(struct kcpx_loop *loop, struct kcpx_watch *w, int fd, uint32_t events);
int kcpx_loop_mod(struct kcpx_loop *loop, struct kcpx_watch *w, uint32_t events);
void kcpx_loop_del(struct kcpx_loop *loop, struct kcpx_watch *w);
/* Watch one more fd for w (w->fn is called for it too); remove it with kcpx_loop_del_fd. */
int kcpx_loop_add_fd(struct kcpx_loop *loop, struct kcpx_watch *w, int fd, uint32_t events);
void kcpx_loop_del_fd(struct kcpx_loop *loop, int fd);

void kcpx_timer_init(struct kcpx_timer *t, void (*fn)(struct kcpx_timer *t, uint32_t now));
/* Arm (or move) a timer to fire at `when` (ms: at the start of that ms). */
int kcpx_timer_set(struct kcpx_loop *loop, struct kcpx_timer *t, uint32_t when);
/* The same at a µs deadline of kcpx_clock_us(). The loop sleeps to it with epoll_pwait2's
 * ns timeout where the kernel has one (kcpx_loop_fine), else rounds up to whole ms. */
int kcpx_timer_set_us(struct kcpx_loop *loop, struct kcpx_timer *t, uint64_t when_us);
void kcpx_timer_cancel(struct kcpx_loop *loop, struct kcpx_timer *t);
static inline bool kcpx_timer_armed(const struct kcpx_timer *t)
{
	return t->idx >= 0;
}

/* Called once at the end of every loop turn (flush batched sends, pump dirty sessions). */
void kcpx_loop_set_idle(struct kcpx_loop *loop, void (*fn)(void *arg), void *arg);

/*
 * A lock the loop's owner holds while it runs (kcpx_loop_run is entered with it held): the
 * loop lets it go only while it waits in epoll_wait, so another thread that takes it sees
 * the owner's state between two turns. Without one (the default) nothing is locked.
 */
void kcpx_loop_set_lock(struct kcpx_loop *loop, pthread_mutex_t *lock);
/* Another thread takes that lock: the owner lets it in at the end of its current turn
 * however busy it is, instead of taking the lock back first. */
void kcpx_loop_lock(struct kcpx_loop *loop);

/* Run until kcpx_loop_stop(). Returns 0, or -errno if epoll itself failed. */
int kcpx_loop_run(struct kcpx_loop *loop);
void kcpx_loop_stop(struct kcpx_loop *loop);
uint32_t kcpx_loop_now(const struct kcpx_loop *loop);
/* kcpx_clock_us() at the start of this turn; kcpx_loop_now() is it in ms. */
uint64_t kcpx_loop_now_us(const struct kcpx_loop *loop);
/* The loop wakes at µs deadlines (epoll_pwait2 works here); false: whole ms only. */
bool kcpx_loop_fine(const struct kcpx_loop *loop);

#endif
