#!/usr/bin/env python3
"""Many concurrent TCP connections from one thread (epoll), for kcpx's scale tests.

  manyconn.py echo PORT
      echo server: every connection gets back what it sent, closed after the peer's EOF.
  manyconn.py run HOST PORT N SIZE [--timeout S] [--batch B]
      open N connections (B connects in flight at a time), and only once all N are open
      send SIZE bytes on each while reading the echo back, and check every byte. No
      connection is closed before every one got its whole echo, so N streams are open
      at once. Exits 1 on a short, corrupt or timed-out transfer and prints one line:
        ok N/N bytes B open_s O xfer_s X slowest_s S

Each connection's data is its own deterministic pseudo-random bytes (seeded by its
index), so a stream delivered to the wrong connection is caught as well as a corrupt one.
"""
import errno
import random
import selectors
import socket
import sys
import time


def echo(port):
    lsn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsn.bind(("0.0.0.0", port))
    lsn.listen(4096)
    lsn.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsn, selectors.EVENT_READ, None)
    pend = {}  # sock -> bytearray not yet echoed
    eof = set()

    def close(c):
        sel.unregister(c)
        pend.pop(c, None)
        eof.discard(c)
        c.close()

    while True:
        for key, ev in sel.select():
            c = key.fileobj
            if c is lsn:
                for _ in range(256):
                    try:
                        n, _ = lsn.accept()
                    except BlockingIOError:
                        break
                    n.setblocking(False)
                    pend[n] = bytearray()
                    sel.register(n, selectors.EVENT_READ, None)
                continue
            buf = pend[c]
            if ev & selectors.EVENT_READ and c not in eof:
                try:
                    d = c.recv(65536)
                except (BlockingIOError, InterruptedError):
                    d = None
                except OSError:
                    close(c)
                    continue
                if d == b"":
                    eof.add(c)
                elif d:
                    buf += d
            if buf:
                try:
                    k = c.send(buf)
                    del buf[:k]
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    close(c)
                    continue
            if not buf and c in eof:
                close(c)
                continue
            want = selectors.EVENT_WRITE if buf else 0
            if c not in eof and len(buf) < (1 << 20):
                want |= selectors.EVENT_READ
            if want == 0:
                want = selectors.EVENT_WRITE
            if sel.get_key(c).events != want:
                sel.modify(c, want, None)


class Conn:
    __slots__ = ("i", "sock", "data", "sent", "got", "done_at", "connected")

    def __init__(self, i, size):
        self.i = i
        self.data = random.Random(i).randbytes(size)
        self.sent = 0
        self.got = 0
        self.done_at = None
        self.connected = False


def run(host, port, n, size, timeout, batch):
    sel = selectors.DefaultSelector()
    conns = [Conn(i, size) for i in range(n)]
    deadline = time.monotonic() + timeout
    t0 = time.monotonic()
    bad = 0

    def fail(msg):
        print("FAIL: " + msg, file=sys.stderr)
        sys.exit(1)

    # phase 1: all N open, at most `batch` connects in flight
    nxt = 0
    inflight = 0
    opened = 0
    while opened < n:
        while nxt < n and inflight < batch:
            c = conns[nxt]
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex((host, port))
            if err not in (0, errno.EINPROGRESS):
                fail("connect %d: %s" % (nxt, errno.errorcode.get(err, err)))
            c.sock = s
            sel.register(s, selectors.EVENT_WRITE, c)
            inflight += 1
            nxt += 1
        for key, _ in sel.select(max(0.0, deadline - time.monotonic())):
            c = key.data
            err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                fail("connect %d: %s" % (c.i, errno.errorcode.get(err, err)))
            c.connected = True
            sel.unregister(c.sock)
            inflight -= 1
            opened += 1
        if time.monotonic() > deadline:
            fail("timeout with %d of %d connections open" % (opened, n))
    t1 = time.monotonic()

    # phase 2: send and read back on all of them
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
    left = n
    while left:
        if time.monotonic() > deadline:
            fail("timeout: %d of %d streams incomplete (e.g. #%d at %d/%d bytes back)"
                 % (left, n, next(c.i for c in conns if c.done_at is None),
                    next(c.got for c in conns if c.done_at is None), size))
        for key, ev in sel.select(1.0):
            c = key.data
            if ev & selectors.EVENT_WRITE and c.sent < size:
                try:
                    c.sent += c.sock.send(c.data[c.sent:c.sent + 65536])
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as e:
                    fail("send %d: %s" % (c.i, e))
                if c.sent == size:
                    sel.modify(c.sock, selectors.EVENT_READ, c)
            if ev & selectors.EVENT_READ:
                try:
                    d = c.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:
                    fail("recv %d: %s" % (c.i, e))
                if not d:
                    fail("stream %d closed after %d of %d bytes back" % (c.i, c.got, size))
                if d != c.data[c.got:c.got + len(d)]:
                    bad += 1
                    fail("stream %d: corrupt bytes at %d" % (c.i, c.got))
                c.got += len(d)
                if c.got == size:
                    c.done_at = time.monotonic()
                    sel.unregister(c.sock)
                    left -= 1
    t2 = time.monotonic()
    for c in conns:
        c.sock.close()
    slowest = max(c.done_at for c in conns) - t1 if conns else 0.0
    print("ok %d/%d bytes %d open_s %.2f xfer_s %.2f slowest_s %.2f"
          % (n - bad, n, size, t1 - t0, t2 - t1, slowest))


def main(argv):
    if len(argv) >= 2 and argv[0] == "echo":
        echo(int(argv[1]))
        return
    if len(argv) >= 5 and argv[0] == "run":
        timeout, batch = 120.0, 256
        rest = argv[5:]
        while rest:
            if rest[0] == "--timeout" and len(rest) > 1:
                timeout = float(rest[1])
            elif rest[0] == "--batch" and len(rest) > 1:
                batch = int(rest[1])
            else:
                sys.exit("unknown option " + rest[0])
            rest = rest[2:]
        run(argv[1], int(argv[2]), int(argv[3]), int(argv[4]), timeout, batch)
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
