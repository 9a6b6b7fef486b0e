#!/usr/bin/env python3
"""Spoofed floods against a kcpx server speaking the native protocol (test-native-flood.sh).

Every packet is a real client frame captured on the client's interface, so it reaches the
server from the client's own address and port and meets the session's checks, not the
"unknown peer" filter. Bounded in time and rate.

  native-flood.py capture IFACE DPORT N OUT SECONDS   save up to N frames to DPORT
  native-flood.py flood IFACE FILE MODE SECONDS PPS MARK
                                                      resend them; prints packets sent
      MODE random  payload replaced by random bytes (same length)
           badtag  well-formed header, tag bytes randomised
           old     replayed unchanged (their counters are far behind the window by now)
  native-flood.py live IFACE DPORT SECONDS MARK       each new frame to DPORT is sent again
                                                      at once: replays inside the window
The flood creates the file MARK once it runs (its first frames out, or live's socket
open): the test starts the flooded upload then, not after a guessed delay.
"""
import random
import socket
import struct
import sys
import time

from floodlib import load, packet_socket, save, udp_payload_off


def capture(iface, dport, n, out, secs):
    s = packet_socket(iface)
    s.settimeout(0.2)
    frames, end = [], time.time() + secs
    while len(frames) < n and time.time() < end:
        try:
            f, addr = s.recvfrom(65535)
        except socket.timeout:
            continue
        if addr[2] == socket.PACKET_OUTGOING and udp_payload_off(f, dport):
            frames.append(f)
    save(out, frames)
    print(len(frames))


def mutate(f, mode, rng):
    off = udp_payload_off(f, struct.unpack_from("!H", f, 14 + (f[14] & 15) * 4 + 2)[0])
    b = bytearray(f)
    if mode == "random":
        b[off:] = rng.randbytes(len(b) - off)
    elif mode == "badtag":
        b[off + 16 : off + 24] = rng.randbytes(8)
    # IPv4: no UDP checksum. Captured frames may carry only the partial checksum of
    # checksum offload, which the receiver would reject before kcpx sees them.
    b[off - 2 : off] = b"\0\0"
    return bytes(b)


def mark(path):
    open(path, "w").close()


def flood(iface, path, mode, secs, pps, started):
    frames = load(path)
    if not frames:
        mark(started)
        print(0)
        return
    rng = random.Random(1)
    s = packet_socket(iface)
    sent, start = 0, time.time()
    end = start + secs
    while True:
        now = time.time()
        if now >= end:
            break
        if sent > (now - start) * pps:
            time.sleep(0.001)
            continue
        for _ in range(64):
            s.send(mutate(frames[sent % len(frames)], mode, rng))
            sent += 1
        if sent == 64:
            mark(started)
    print(sent)


def live(iface, dport, secs, started):
    # A packet socket does not receive its own transmissions: no feedback loop.
    s = packet_socket(iface)
    s.settimeout(0.2)
    mark(started)
    sent, end = 0, time.time() + secs
    while time.time() < end:
        try:
            f, addr = s.recvfrom(65535)
        except socket.timeout:
            continue
        if addr[2] == socket.PACKET_OUTGOING and udp_payload_off(f, dport):
            s.send(mutate(f, "live", None))
            sent += 1
    print(sent)


def main(a):
    if a[0] == "capture":
        capture(a[1], int(a[2]), int(a[3]), a[4], float(a[5]))
    elif a[0] == "flood":
        flood(a[1], a[2], a[3], float(a[4]), int(a[5]), a[6])
    elif a[0] == "live":
        live(a[1], int(a[2]), float(a[3]), a[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
