#!/usr/bin/env python3
"""TCP endpoints for kcpx's shell tests: a sink, a source, an echo server and their clients.

Every transfer is bounded in size and time. Data is deterministic from a seed so both
ends can compute the same SHA-256 without sharing files.

  tcpio.py sink PORT OUTDIR          each connection: read to EOF, write OUTDIR/N.sha
  tcpio.py source PORT SIZE SEED     each connection: send SIZE bytes, then close
  tcpio.py echo PORT                 each connection: echo until EOF
  tcpio.py send HOST PORT SIZE SEED  send SIZE bytes, close, print sha256
  tcpio.py sendmany HOST PORT N SIZE SEED  `send` on N connections at once (seeds SEED..
                                     SEED+N-1), one process; their sha256s, one a line
  tcpio.py recv HOST PORT            read to EOF, print "sha256 bytes"
  tcpio.py multi HOST PORT N SIZE    N concurrent echo round trips, fail on any mismatch
  tcpio.py data SIZE SEED            print the sha256 of SIZE bytes of SEED's data
"""
import hashlib
import os
import random
import socket
import sys
import threading
import time

CHUNK = 1 << 20
TIMEOUT = 300


def stream(size, seed):
    rng = random.Random(seed)
    left = size
    while left > 0:
        n = min(CHUNK, left)
        yield rng.randbytes(n)
        left -= n


def digest(size, seed, data=stream):
    h = hashlib.sha256()
    for b in data(size, seed):
        h.update(b)
    return h.hexdigest()


def listener(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(256)
    return s


def serve(port, handler):
    s = listener(port)
    n = 0
    while True:
        c, _ = s.accept()
        c.settimeout(TIMEOUT)
        threading.Thread(target=handler, args=(c, n), daemon=True).start()
        n += 1


def read_all(c):
    h = hashlib.sha256()
    total = 0
    while True:
        b = c.recv(CHUNK)
        if not b:
            return h.hexdigest(), total
        h.update(b)
        total += len(b)


def send_one(host, port, size, seed, data=stream):
    c = socket.create_connection((host, port), timeout=TIMEOUT)
    h = hashlib.sha256()
    for b in data(size, seed):
        c.sendall(b)
        h.update(b)
    c.shutdown(socket.SHUT_WR)
    # kcptun closes both directions when one ends: wait for that, bounded
    c.settimeout(TIMEOUT)
    try:
        while c.recv(CHUNK):
            pass
    except OSError:
        pass
    c.close()
    return h.hexdigest()


def serve_source(port, size, seed, data=stream):
    """Each connection: SIZE bytes of data(size, seed), then close."""

    def h(c, n):
        try:
            for b in data(size, seed):
                c.sendall(b)
        except OSError:
            pass
        c.close()

    serve(port, h)


def main():
    cmd = sys.argv[1]
    if cmd == "sink":
        port, outdir = int(sys.argv[2]), sys.argv[3]

        def h(c, n):
            try:
                d, total = read_all(c)
            except OSError as e:
                d, total = "error:%s" % e, -1
            tmp = os.path.join(outdir, "%d.tmp" % n)
            with open(tmp, "w") as f:
                f.write("%s %d\n" % (d, total))
            os.rename(tmp, os.path.join(outdir, "%d.sha" % n))
            c.close()

        serve(port, h)
    elif cmd == "source":
        serve_source(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "echo":
        port = int(sys.argv[2])

        def h(c, n):
            try:
                while True:
                    b = c.recv(CHUNK)
                    if not b:
                        break
                    c.sendall(b)
            except OSError:
                pass
            c.close()

        serve(port, h)
    elif cmd == "send":
        host, port, size, seed = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        print(send_one(host, port, size, seed))
    elif cmd == "sendmany":
        host, port, n, size, seed = (sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
                                     int(sys.argv[5]), int(sys.argv[6]))
        shas = [None] * n

        def one(i):
            try:
                shas[i] = send_one(host, port, size, seed + i)
            except OSError as e:
                print("connection %d: %s" % (i, e), file=sys.stderr)

        ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for d in shas:
            if d:
                print(d)
        sys.exit(0 if all(shas) else 1)
    elif cmd == "recv":
        host, port = sys.argv[2], int(sys.argv[3])
        c = socket.create_connection((host, port), timeout=TIMEOUT)
        d, total = read_all(c)
        c.close()
        print(d, total)
    elif cmd == "multi":
        host, port, n, size = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        errors = []

        def one(i):
            try:
                c = socket.create_connection((host, port), timeout=TIMEOUT)
                want = b"".join(stream(size, 1000 + i))
                got = bytearray()

                def reader():
                    while len(got) < size:
                        b = c.recv(CHUNK)
                        if not b:
                            break
                        got.extend(b)

                t = threading.Thread(target=reader)
                t.start()
                c.sendall(want)
                t.join(TIMEOUT)
                c.close()
                if bytes(got) != want:
                    errors.append("stream %d: got %d of %d bytes, equal=%s" %
                                  (i, len(got), size, bytes(got) == want[:len(got)]))
            except OSError as e:
                errors.append("stream %d: %s" % (i, e))

        t0 = time.time()
        ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for e in errors:
            print(e, file=sys.stderr)
        print("%d streams x %d bytes echoed in %.2fs, %d errors" % (n, size, time.time() - t0, len(errors)))
        sys.exit(1 if errors else 0)
    elif cmd == "data":
        print(digest(int(sys.argv[2]), int(sys.argv[3])))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
