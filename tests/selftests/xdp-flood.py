#!/usr/bin/env python3
"""The flooder of test-xdp-flood.sh: capture a tunnel's datagrams, then flood its port.

  xdp-flood.py capture IFACE DPORT N OUT SECONDS
      Save the UDP payloads of the last N IPv4 frames to DPORT seen on IFACE (any
      direction: run it on a bridge port, which sees the client's frames on their way)
      when OUT.stop appears or after SECONDS. Prints how many were saved. The newest ones
      are still inside the receiver's replay window for a while.
  xdp-flood.py flood HOST PORT FILE SECONDS PPS
      Send to HOST:PORT from an ordinary UDP socket for SECONDS (PPS packets per second at
      most; 0: as fast as it goes), cycling through three kinds of datagram:
        random  random bytes, 40..1400 of them
        badtag  a captured datagram with its bytes [16, 24) randomised: for the native
                protocol a well-formed header (live session id) with a wrong tag
        replay  one of the newest 1000 captured datagrams, unchanged
      Prints "sent random badtag replay" counts.
"""
import collections
import os
import random
import socket
import sys
import time

from floodlib import load, packet_socket, save, udp_payload

SO_RCVBUFFORCE = 33
REPLAY_NEWEST = 1000


def capture(iface, dport, n, out, secs):
    s = packet_socket(iface)
    # a large queue, and what it holds read at the stop: the newest frames must be the
    # newest the client sent, however far a busy machine let this reader fall behind
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
    except OSError:
        pass
    s.settimeout(0.2)
    got, end = collections.deque(maxlen=n), time.time() + secs
    stop = False
    while time.time() < end:
        stop = stop or os.path.exists(out + ".stop")
        try:
            f = s.recv(65535, socket.MSG_DONTWAIT) if stop else s.recv(65535)
        except (BlockingIOError, socket.timeout):
            if stop:
                break
            continue
        p = udp_payload(f, dport)
        if p and len(p) >= 40:
            got.append(p)
    save(out, got)
    print(len(got))


def flood(host, port, path, secs, pps):
    caps = load(path)
    if not caps:
        sys.exit("nothing captured")
    rng = random.Random(6)
    # Precomputed, so the send loop is only sendto: three kinds in turn.
    pool = []
    for i in range(3000):
        kind = i % 3
        if kind == 0:
            pool.append((0, os.urandom(rng.randint(40, 1400))))
        elif kind == 1:
            b = bytearray(caps[rng.randrange(len(caps))])
            b[16:24] = os.urandom(8)
            pool.append((1, bytes(b)))
        else:  # the newest: the ones inside the replay window (1984 packets) until
            # the session sends again
            pool.append((2, caps[len(caps) - 1 - rng.randrange(min(len(caps), REPLAY_NEWEST))]))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, port))
    sent = [0, 0, 0]
    total, start = 0, time.time()
    end = start + secs
    started = False
    while True:
        now = time.time()
        if now >= end:
            break
        if pps and total > (now - start) * pps:
            time.sleep(0.0005)
            continue
        for _ in range(64):
            kind, p = pool[total % len(pool)]
            try:
                s.send(p)
            except OSError:  # ENOBUFS, or ECONNREFUSED from an ICMP error: go on
                continue
            sent[kind] += 1
            total += 1
        if not started and total >= len(pool):
            # the first pass of the pool (1000 replays) is out while the session is
            # still idle: inside its replay window; the test starts the flooded upload
            # only after this
            open(path + ".started", "w").close()
            started = True
    print(sum(sent), *sent)


def main(a):
    if len(a) == 6 and a[0] == "capture":
        capture(a[1], int(a[2]), int(a[3]), a[4], float(a[5]))
    elif len(a) == 6 and a[0] == "flood":
        flood(a[1], int(a[2]), a[3], float(a[4]), int(a[5]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
