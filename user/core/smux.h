/* SPDX-License-Identifier: MIT */
/*
 * smux stream multiplexing (xtaci/smux protocol versions 1 and 2), I/O-free.
 *
 * Wire (WIRE.md §5): every frame is `ver u8 | cmd u8 | len u16 LE | sid u32 LE | data`.
 * SYN opens a stream, FIN ends one direction (EOF), PSH carries data, NOP keeps the
 * session alive (sid 0), UPD (v2 only) carries `consumed u32 | window u32` for the
 * per-stream sliding window. The client opens odd ids 3, 5, 7..., the server even ids
 * 2, 4, 6...
 *
 * Bytes from the peer go in through kcpx_smux_input() in any chunking; frames for the
 * peer come out of kcpx_smux_output(). Events reach the owner through kcpx_smux_ops; they
 * are delivered at the end of input(), output() and tick(), never from read/write/open/
 * close, so the callbacks may call any function here except kcpx_smux_free().
 *
 * Memory is bounded whatever the peer sends: unread data of all streams counts against
 * max_recv_buffer (input() stops at a frame boundary once it is used up, so at most one
 * frame over), buffers cost at most about twice the bytes they hold, every stream's send
 * buffer holds at most KCPX_SMUX_SNDBUF bytes and all of them together at most
 * max_send_buffer, at most cfg.max_streams streams exist (a few hundred bytes each; a
 * peer's SYN beyond that is answered with FIN, counted in streams_refused and reported
 * through the refused() callback), and control frames owed to the peer are coalesced per
 * stream.
 *
 * Memory follows the traffic: a stream owns no buffer until bytes arrive for it or are
 * written to it, buffers grow in blocks as bytes queue up and every block goes back the
 * moment its bytes are read or output. Full-size blocks come from cfg.pool, which the
 * owner shares among its sessions (a session without one makes a private pool).
 *
 * Fair send budget: a write that finds max_send_buffer used up queues its stream; as
 * output() frees room, the queued streams get their writable() callback one at a time in
 * the order they queued (each callback may write before the next is woken), so with
 * thousands of streams every one makes progress and a wake-up costs O(1).
 *
 * Stream life: open() or a peer SYN (accept callback) creates it; a peer FIN makes read()
 * return 0 once drained (v1 still allows writes); close() drops unread data, queues FIN
 * behind pending data and frees the stream once FIN is out. A PSH for an unknown or
 * closed sid is dropped and counted in bad_frames, as is a duplicate SYN; FIN or UPD for
 * an unknown sid is ignored.
 */
#ifndef KCPX_CORE_SMUX_H
#define KCPX_CORE_SMUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define KCPX_SMUX_HDR		  8
#define KCPX_SMUX_CMD_SYN	  0
#define KCPX_SMUX_CMD_FIN	  1
#define KCPX_SMUX_CMD_PSH	  2
#define KCPX_SMUX_CMD_NOP	  3
#define KCPX_SMUX_CMD_UPD	  4
#define KCPX_SMUX_UPD_LEN	  8
#define KCPX_SMUX_INITIAL_WINDOW  262144 /* v2: peer window assumed before its first UPD */
#define KCPX_SMUX_SNDBUF	  65536	 /* per-stream bytes accepted by write, not yet output */
#define KCPX_SMUX_MAX_STREAMS	  65536	 /* hard cap on cfg.max_streams */
#define KCPX_SMUX_DEFAULT_FRAME	  32768
#define KCPX_SMUX_DEFAULT_RECVBUF 4194304
#define KCPX_SMUX_DEFAULT_STRMBUF 2097152
#define KCPX_SMUX_DEFAULT_SENDBUF 1048576

struct kcpx_smux;
struct kcpx_pool;

/* The block size a pool shared through kcpx_smux_config.pool must have. */
size_t kcpx_smux_pool_block(void);

/* Zero max_frame / max_recv_buffer / max_stream_buffer / max_send_buffer / max_streams
   mean the defaults above. */
struct kcpx_smux_config {
	int version;		    /* 1 or 2 */
	bool client;		    /* client opens odd ids 3,5,7...; server even ids 2,4,6... */
	uint32_t max_frame;	    /* largest PSH payload sent (<= 65535); any u16 is accepted */
	uint32_t max_recv_buffer;   /* --smuxbuf: session-wide bytes buffered unread */
	uint32_t max_stream_buffer; /* --streambuf: v2 per-stream window advertised in UPD */
	uint32_t keepalive_ms;	    /* send NOP this often (--keepalive s * 1000); 0 = off */
	uint32_t keepalive_timeout_ms; /* no frame received for this long -> dead; 0 = off */
	uint32_t max_send_buffer;      /* session-wide bytes accepted by write, not yet output */
	struct kcpx_pool *pool;	       /* kcpx_smux_pool_block() blocks, not owned; NULL: own */
	uint32_t max_streams; /* streams at once, both ways; 0 or > KCPX_SMUX_MAX_STREAMS: that */
};

struct kcpx_smux_ops {
	void (*accept)(void *user, uint32_t sid);   /* peer opened a stream (SYN) */
	void (*readable)(void *user, uint32_t sid); /* data or EOF became readable */
	void (*writable)(void *user, uint32_t sid); /* a write that got -EAGAIN may now proceed */
	/* n peer SYNs were refused over max_streams since the last call, the last for sid
	   (may be NULL) */
	void (*refused)(void *user, uint32_t sid, unsigned n);
};

/* Returns NULL on a bad config (version not 1 or 2, max_frame > 65535, a pool of another
   block size) or no memory. */
struct kcpx_smux *kcpx_smux_new(const struct kcpx_smux_config *cfg, const struct kcpx_smux_ops *ops,
				void *user, uint32_t now);
void kcpx_smux_free(struct kcpx_smux *s);

/*
 * Bytes from the peer, any boundaries. Returns bytes consumed (< len when the session-wide
 * receive buffer is full: feed the rest after the app reads), or -EPROTO when the peer
 * broke the protocol (bad version, unknown cmd, a control frame with a wrong length, UPD
 * in v1): the session is then dead. A dead session returns its error again (-EPROTO,
 * -ETIMEDOUT, -ENOMEM).
 */
ssize_t kcpx_smux_input(struct kcpx_smux *s, const uint8_t *buf, size_t len, uint32_t now);

/*
 * Frames waiting to go to the peer, whole frames only, at most cap bytes; 0 if none.
 * Control frames (NOP, SYN, UPD) first, then one data frame per stream in turn, so one
 * busy stream cannot starve the others. A PSH may be cut short to fit cap.
 */
size_t kcpx_smux_output(struct kcpx_smux *s, uint8_t *buf, size_t cap);
bool kcpx_smux_output_pending(const struct kcpx_smux *s);

/* Queues SYN. 0, or -EPIPE (session dead), -EMFILE (too many streams), -EOVERFLOW (ids
   exhausted: start a new session), -ENOMEM. */
int kcpx_smux_open(struct kcpx_smux *s, uint32_t *sid);

/* Bytes taken (bounded per-stream send buffer, and v2 peer window); -EAGAIN when none
   (writable() follows); -EPIPE if the stream is unknown, closed or reset, or (v2) the
   peer sent FIN and its window is shut. */
ssize_t kcpx_smux_write(struct kcpx_smux *s, uint32_t sid, const uint8_t *buf, size_t len);

/* Bytes write() would take now (> 0); 0 when none, and then writable() follows as for a
   write that got -EAGAIN; -EPIPE as write. Lets the owner read its source only as far
   as smux takes it, so that it needs no buffer of its own. */
ssize_t kcpx_smux_write_room(struct kcpx_smux *s, uint32_t sid);

/* Bytes; 0 = EOF (peer FIN or dead session, and buffer drained); -EAGAIN when nothing
   yet; -EPIPE if the stream is unknown or closed. A read makes room in the session
   buffer: input refused earlier may be fed again. */
ssize_t kcpx_smux_read(struct kcpx_smux *s, uint32_t sid, uint8_t *buf, size_t len);

/*
 * Zero-copy read: up to *niov pieces of the stream's unread bytes, in order, as iovecs
 * pointing into smux's buffers (valid until the next call into this session). Returns
 * their total and sets *niov to the pieces used; 0, -EAGAIN and -EPIPE as read(). Then
 * kcpx_smux_consume() the bytes actually used (at most the total): that is the read.
 */
ssize_t kcpx_smux_peek(struct kcpx_smux *s, uint32_t sid, struct iovec *iov, int *niov);
void kcpx_smux_consume(struct kcpx_smux *s, uint32_t sid, size_t n);
size_t kcpx_smux_readable(const struct kcpx_smux *s, uint32_t sid);

/* Queues FIN after pending data, drops unread data, frees the stream once FIN is out.
   The sid is invalid for the caller afterwards. 0 or -ENOENT. */
int kcpx_smux_close(struct kcpx_smux *s, uint32_t sid);

/* New keepalive settings (a config reload): the next NOP goes keepalive_ms after now, and
   the peer has timeout_ms from now (0/0: off). */
void kcpx_smux_set_keepalive(struct kcpx_smux *s, uint32_t keepalive_ms, uint32_t timeout_ms,
			     uint32_t now);
void kcpx_smux_tick(struct kcpx_smux *s, uint32_t now);		      /* keepalive, dead peer */
uint32_t kcpx_smux_deadline(const struct kcpx_smux *s, uint32_t now); /* next tick (abs ms) */
bool kcpx_smux_dead(const struct kcpx_smux *s);
unsigned kcpx_smux_num_streams(const struct kcpx_smux *s); /* streams not closed locally */

/* Bytes buffered now: unread from the peer, and written but not yet output. */
void kcpx_smux_buffered(const struct kcpx_smux *s, size_t *recv, size_t *send);

struct kcpx_smux_counters {
	uint64_t frames_in, frames_out, bad_frames, streams_opened, streams_accepted;
	uint64_t send_waits;	  /* writes that queued for the session's send budget */
	uint64_t streams_refused; /* peer SYNs over max_streams, answered with FIN */
};
void kcpx_smux_counters(const struct kcpx_smux *s, struct kcpx_smux_counters *c);

#endif
