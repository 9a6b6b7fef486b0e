/* SPDX-License-Identifier: MIT */
/*
 * kcptun's compression (WIRE.md §5): the snappy *framing format* over the KCP byte stream,
 * one stream per direction, as golang/snappy's Writer/Reader (kcptun's CompStream).
 *
 *   stream identifier  ff 06 00 00 's' 'N' 'a' 'P' 'p' 'Y'   (first chunk, once)
 *   chunk              type u8 | len u24 LE (= 4 + data) | masked CRC-32C u32 LE | data
 *                      type 0x00: snappy block, 0x01: raw; CRC of the uncompressed bytes;
 *                      mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8
 * Blocks are compressed with libsnappy; a chunk is compressed only if that saves at
 * least n/8 bytes (golang/snappy's rule). Uncompressed chunk data is at most 65536 bytes.
 */
#ifndef KCPX_CORE_SNAPPY_H
#define KCPX_CORE_SNAPPY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KCPX_SNAPPY_BLOCK 65536 /* max uncompressed bytes per chunk */

/* ---------------------------------------------------------------- writer */

struct kcpx_snappy_w;

struct kcpx_snappy_w *kcpx_snappy_w_new(void);
void kcpx_snappy_w_free(struct kcpx_snappy_w *w);

/* Bytes kcpx_snappy_w_chunk() may write for n input bytes (stream identifier included). */
size_t kcpx_snappy_w_bound(size_t n);

/*
 * Frames n bytes (one write of the layer above, e.g. one smux frame) into out, which has
 * kcpx_snappy_w_bound(n) bytes: the stream identifier before the first chunk of the
 * stream, then one chunk (type 0x00 if compressing saves >= n/8, else 0x01), or several
 * of <= 65536 bytes each if n is larger, as golang's Writer splits. n == 0 writes nothing.
 * Returns the bytes written.
 */
size_t kcpx_snappy_w_chunk(struct kcpx_snappy_w *w, const uint8_t *in, size_t n, uint8_t *out);

/* ---------------------------------------------------------------- reader */

struct kcpx_snappy_r;

struct kcpx_snappy_r *kcpx_snappy_r_new(void);
void kcpx_snappy_r_free(struct kcpx_snappy_r *r);

/*
 * Feeds stream bytes, cut anywhere. Consumes input until one chunk's data is decoded
 * and waiting, then stops (so memory stays bounded): the caller alternates
 *     while (n) { c = feed(r, in, n); if (c < 0) fail; in += c; n -= c;
 *                 while ((m = read(r, buf, sizeof(buf))) > 0) deliver(buf, m); }
 * Returns the bytes consumed (0 only while decoded data waits to be read), or -EBADMSG
 * on a corrupt stream (as golang's ErrCorrupt/ErrUnsupported: no stream identifier
 * first, bad CRC, bad block, oversized or reserved unskippable chunk), or -ENOMEM (the
 * reader's buffers grow with the chunks seen, up to ~140 KiB). Errors are sticky.
 * Padding (0xfe) and skippable (0x80..0xfd) chunks are skipped.
 */
ssize_t kcpx_snappy_r_feed(struct kcpx_snappy_r *r, const uint8_t *in, size_t n);

/* Copies up to cap decoded bytes out; returns the count (0: nothing waiting). */
ssize_t kcpx_snappy_r_read(struct kcpx_snappy_r *r, uint8_t *out, size_t cap);

/* Decoded bytes waiting to be read. */
size_t kcpx_snappy_r_pending(const struct kcpx_snappy_r *r);

/* Frees the reader's buffers that hold nothing now (they grow again on demand). Returns
   the bytes freed. */
size_t kcpx_snappy_r_trim(struct kcpx_snappy_r *r);

/* Take both buffers from pool (blocks of at least the longest chunk, ~75 KiB) rather than
   malloc, so that trimming after every read costs no malloc. Only on a new reader; 0 or
   -EINVAL (buffers held already, or blocks too small). */
struct kcpx_pool;
int kcpx_snappy_r_set_pool(struct kcpx_snappy_r *r, struct kcpx_pool *pool);

#endif
