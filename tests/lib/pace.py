#!/usr/bin/env python3
"""Paced TCP streams for the survival selftests (test-survive.sh, test-xdp-survive-up.sh).

  pace.py source PORT SIZE RATE   each connection: SIZE bytes at RATE bytes/s, 16 KiB pieces
  pace.py recv HOST PORT OUT [HOLD]
                                  read to EOF; OUT.n has progress, then OUT gets
                                  "sha256 bytes longest_gap_ms"; with HOLD, stop reading
                                  after HOLD bytes, make OUT.held, go on once OUT.go exists
  pace.py try HOST PORT LIMIT     a connection every 100 ms until one carries data: its ms
  pace.py sha SIZE                the sha256 a source's SIZE bytes have
"""
import hashlib, os, socket, sys, time
def data(size):
    h, out, i = hashlib.sha256(), bytearray(), 0
    while len(out) < size:
        out += hashlib.sha256(i.to_bytes(8, "little")).digest() * 64
        i += 1
    return bytes(out[:size])
cmd = sys.argv[1]
if cmd == "source":  # each connection: SIZE bytes at RATE, in 16 KiB pieces
    port, size, rate = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    buf = data(size)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(64)
    while True:
        c, _ = ls.accept()
        try:
            t0, off = time.monotonic(), 0
            while off < size:
                n = c.send(buf[off:off + 16384])
                off += n
                wait = t0 + off / rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
        except OSError:
            pass
        c.close()
elif cmd == "recv":  # read to EOF; OUT gets progress, then "sha256 bytes max_gap_ms"
    host, port, out = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    hold = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    s = socket.create_connection((host, port), timeout=60)
    h, n, gap, last = hashlib.sha256(), 0, 0.0, None
    while True:
        b = s.recv(65536)
        if not b:
            break
        now = time.monotonic()
        if last is not None:
            gap = max(gap, now - last)
        last = now
        h.update(b)
        n += len(b)
        with open(out + ".n", "w") as f:
            f.write(str(n))
        if hold and n >= hold:
            # stop reading (flow control stops the stream mid-way) until OUT.go exists;
            # the pause is not a stall: gaps count from the go
            hold = 0
            open(out + ".held", "w").close()
            t0 = time.monotonic()
            while not os.path.exists(out + ".go") and time.monotonic() - t0 < 60:
                time.sleep(0.01)
            last = time.monotonic()
    with open(out, "w") as f:
        f.write("%s %d %d\n" % (h.hexdigest(), n, gap * 1000))
elif cmd == "try":  # connections every 100 ms until one carries data: print its ms
    host, port, limit = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            s = socket.create_connection((host, port), timeout=1)
            s.settimeout(1)
            if s.recv(1024):
                print(int((time.monotonic() - t0) * 1000))
                sys.exit(0)
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(1)
elif cmd == "sha":
    print(hashlib.sha256(data(int(sys.argv[2]))).hexdigest())
