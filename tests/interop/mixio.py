#!/usr/bin/env python3
"""Mixed, partly compressible data for the interop tests, on top of tests/lib/tcpio.py.

tcpio's data is random, which snappy stores as uncompressed chunks only. This stream
mixes segments of 1 KiB..256 KiB of three kinds, so that both ends' snappy framing
sees compressed chunks, uncompressed chunks and frames that hold both:
random bytes, text from a small vocabulary, and runs of one byte.
Deterministic from (size, seed), so both ends know the SHA-256 without sharing files.

  mixio.py source PORT SIZE SEED     each connection: send SIZE bytes, then close
  mixio.py send HOST PORT SIZE SEED  send SIZE bytes, close, print sha256
  mixio.py data SIZE SEED            print the sha256 of SIZE bytes of SEED's data

Receive with tcpio.py sink / recv.
"""
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import tcpio  # noqa: E402

WORDS = (b"kcp smux snappy fec parity shard window segment stream session nonce "
         b"cipher tunnel packet datagram ack una rto conv mtu frame chunk crc "
         b"the of and to in is it for on with as at by from this that").split()


def mixed(size, seed):
    rng = random.Random(seed)
    left = size
    while left > 0:
        n = min(left, rng.randint(1 << 10, 256 << 10))
        kind = rng.randrange(3)
        if kind == 0:
            b = rng.randbytes(n)
        elif kind == 1:
            b = b" ".join(rng.choices(WORDS, k=n // 3 + 1))[:n]
        else:
            b = bytes([rng.randrange(256)]) * n
        yield b
        left -= n


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "source":
        tcpio.serve_source(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), mixed)
    elif cmd == "send":
        host, port, size, seed = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        print(tcpio.send_one(host, port, size, seed, mixed))
    elif cmd == "data":
        print(tcpio.digest(int(sys.argv[2]), int(sys.argv[3]), mixed))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
