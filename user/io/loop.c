// SPDX-License-Identifier: MIT
#include "io/loop.h"
#include "io/clock.h"
#include "core/util.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define LOOP_EVENTS 256

struct kcpx_loop {
	int epfd;
	bool stop;
	bool fine; /* epoll_pwait2 works: sleep to the µs */
	uint32_t now;
	uint64_t now_us;
	struct kcpx_timer **heap;
	int nheap, capheap;
	void (*idle)(void *arg);
	void *idle_arg;
	pthread_mutex_t *lock; /* held except while waiting in epoll */
	atomic_uint want;      /* other threads waiting in kcpx_loop_lock */
};

/* epoll_pwait2 (Linux 5.11) takes a timespec timeout; older kernels say ENOSYS, a
 * seccomp filter that does not know it EPERM. A zero timeout asks without waiting. */
static bool pwait2_works(int epfd)
{
	struct timespec zero = { 0, 0 };
	struct epoll_event ev;

	return epoll_pwait2(epfd, &ev, 1, &zero, NULL) >= 0;
}

struct kcpx_loop *kcpx_loop_new(void)
{
	struct kcpx_loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		free(loop);
		return NULL;
	}
	loop->now_us = kcpx_clock_us();
	loop->now = (uint32_t)(loop->now_us / 1000);
	loop->fine = pwait2_works(loop->epfd);
	return loop;
}

void kcpx_loop_free(struct kcpx_loop *loop)
{
	if (!loop)
		return;
	close(loop->epfd);
	free(loop->heap);
	free(loop);
}

int kcpx_loop_add_fd(struct kcpx_loop *loop, struct kcpx_watch *w, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	return 0;
}

int kcpx_loop_add(struct kcpx_loop *loop, struct kcpx_watch *w, int fd, uint32_t events)
{
	w->fd = fd;
	w->events = events;
	return kcpx_loop_add_fd(loop, w, fd, events);
}

int kcpx_loop_mod(struct kcpx_loop *loop, struct kcpx_watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	if (w->events == events)
		return 0;
	w->events = events;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0)
		return -errno;
	return 0;
}

void kcpx_loop_del(struct kcpx_loop *loop, struct kcpx_watch *w)
{
	if (w->fd >= 0)
		epoll_ctl(loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
}

void kcpx_loop_del_fd(struct kcpx_loop *loop, int fd)
{
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
}

/* Timers: a binary min-heap ordered by `when_us` (64-bit µs: it does not wrap). */
static bool timer_before(const struct kcpx_timer *a, const struct kcpx_timer *b)
{
	return a->when_us < b->when_us;
}

static void heap_place(struct kcpx_loop *loop, int i, struct kcpx_timer *t)
{
	loop->heap[i] = t;
	t->idx = i;
}

static void heap_up(struct kcpx_loop *loop, int i)
{
	struct kcpx_timer *t = loop->heap[i];

	while (i > 0) {
		int p = (i - 1) / 2;
		if (!timer_before(t, loop->heap[p]))
			break;
		heap_place(loop, i, loop->heap[p]);
		i = p;
	}
	heap_place(loop, i, t);
}

static void heap_down(struct kcpx_loop *loop, int i)
{
	struct kcpx_timer *t = loop->heap[i];

	for (;;) {
		int c = 2 * i + 1;
		if (c >= loop->nheap)
			break;
		if (c + 1 < loop->nheap && timer_before(loop->heap[c + 1], loop->heap[c]))
			c++;
		if (!timer_before(loop->heap[c], t))
			break;
		heap_place(loop, i, loop->heap[c]);
		i = c;
	}
	heap_place(loop, i, t);
}

void kcpx_timer_init(struct kcpx_timer *t, void (*fn)(struct kcpx_timer *t, uint32_t now))
{
	t->idx = -1;
	t->when = 0;
	t->fn = fn;
}

int kcpx_timer_set_us(struct kcpx_loop *loop, struct kcpx_timer *t, uint64_t when_us)
{
	if (t->idx >= 0) {
		uint64_t old = t->when_us;
		t->when_us = when_us;
		t->when = (uint32_t)(when_us / 1000);
		if (when_us < old)
			heap_up(loop, t->idx);
		else
			heap_down(loop, t->idx);
		return 0;
	}
	if (loop->nheap == loop->capheap) {
		int cap = loop->capheap ? loop->capheap * 2 : 64;
		struct kcpx_timer **h = realloc(loop->heap, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		loop->heap = h;
		loop->capheap = cap;
	}
	t->when_us = when_us;
	t->when = (uint32_t)(when_us / 1000);
	loop->heap[loop->nheap] = t;
	t->idx = loop->nheap++;
	heap_up(loop, t->idx);
	return 0;
}

int kcpx_timer_set(struct kcpx_loop *loop, struct kcpx_timer *t, uint32_t when)
{
	/* the ms clock is the µs one / 1000, wrapped to 32 bits: place `when` next to now */
	int64_t ms = (int64_t)(kcpx_clock_us() / 1000);

	ms += (int32_t)(when - (uint32_t)ms);
	return kcpx_timer_set_us(loop, t, ms > 0 ? (uint64_t)ms * 1000 : 0);
}

void kcpx_timer_cancel(struct kcpx_loop *loop, struct kcpx_timer *t)
{
	struct kcpx_timer *moved;
	int i = t->idx;

	if (i < 0)
		return;
	t->idx = -1;
	loop->nheap--;
	if (i == loop->nheap)
		return;
	moved = loop->heap[loop->nheap];
	heap_place(loop, i, moved);
	heap_up(loop, i);
	heap_down(loop, moved->idx);
}

void kcpx_loop_set_idle(struct kcpx_loop *loop, void (*fn)(void *arg), void *arg)
{
	loop->idle = fn;
	loop->idle_arg = arg;
}

uint32_t kcpx_loop_now(const struct kcpx_loop *loop)
{
	return loop->now;
}

uint64_t kcpx_loop_now_us(const struct kcpx_loop *loop)
{
	return loop->now_us;
}

bool kcpx_loop_fine(const struct kcpx_loop *loop)
{
	return loop->fine;
}

static void loop_clock(struct kcpx_loop *loop)
{
	loop->now_us = kcpx_clock_us();
	loop->now = (uint32_t)(loop->now_us / 1000);
}

void kcpx_loop_stop(struct kcpx_loop *loop)
{
	loop->stop = true;
}

static void run_timers(struct kcpx_loop *loop)
{
	/* Bound the work per turn so a storm of timers cannot starve I/O. */
	for (int n = 0; n < 4096 && loop->nheap > 0; n++) {
		struct kcpx_timer *t = loop->heap[0];
		if (t->when_us > loop->now_us)
			break;
		kcpx_timer_cancel(loop, t);
		t->fn(t, loop->now);
	}
}

void kcpx_loop_set_lock(struct kcpx_loop *loop, pthread_mutex_t *lock)
{
	loop->lock = lock;
}

void kcpx_loop_lock(struct kcpx_loop *loop)
{
	atomic_fetch_add(&loop->want, 1);
	pthread_mutex_lock(loop->lock);
	atomic_fetch_sub(&loop->want, 1);
}

/* Wait for events at most wait_us (< 0: no limit). */
static int loop_wait(struct kcpx_loop *loop, struct epoll_event *evs, int64_t wait_us)
{
	if (loop->fine && wait_us >= 0) {
		struct timespec ts = { .tv_sec = wait_us / 1000000,
				       .tv_nsec = (long)(wait_us % 1000000) * 1000 };
		int n = epoll_pwait2(loop->epfd, evs, LOOP_EVENTS, &ts, NULL);

		if (n >= 0 || (errno != ENOSYS && errno != EPERM))
			return n;
		loop->fine = false; /* refused after all: whole ms from now on */
	}
	/* whole ms, rounded up: waking early would only spin */
	return epoll_wait(loop->epfd, evs, LOOP_EVENTS,
			  wait_us < 0 ? -1 : (int)((wait_us + 999) / 1000));
}

int kcpx_loop_run(struct kcpx_loop *loop)
{
	struct epoll_event evs[LOOP_EVENTS];

	loop->stop = false;
	while (!loop->stop) {
		int64_t wait_us = -1;
		int n;

		loop_clock(loop);
		run_timers(loop);
		if (loop->idle)
			loop->idle(loop->idle_arg);
		if (loop->stop)
			break;
		if (loop->nheap > 0) {
			uint64_t at = loop->heap[0]->when_us, now = kcpx_clock_us();
			wait_us = at > now ? (int64_t)KCPX_MIN(at - now, 3600000000ull) : 0;
		}
		if (loop->lock)
			pthread_mutex_unlock(loop->lock);
		n = loop_wait(loop, evs, wait_us);
		if (loop->lock) {
			/* a mutex is not fair: busy, the owner would take it back before a
			 * waiter wakes, for as long as traffic lasts */
			while (atomic_load(&loop->want))
				sched_yield();
			pthread_mutex_lock(loop->lock);
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		loop_clock(loop);
		for (int i = 0; i < n; i++) {
			struct kcpx_watch *w = evs[i].data.ptr;
			w->fn(w, evs[i].events);
		}
	}
	return 0;
}
