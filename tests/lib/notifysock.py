#!/usr/bin/env python3
"""A stand-in for systemd's notification socket: bind a unix datagram socket at PATH and
append every message it receives to OUT, one line per message with its lines joined by
'|' (e.g. "READY=1|STATUS=server ..."). Runs until killed."""
import os
import socket
import sys

path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
with open(out, "a", buffering=1) as f:
    f.write("LISTENING\n")
    while True:
        msg = s.recv(4096).decode(errors="replace")
        f.write(msg.replace("\n", "|") + "\n")
