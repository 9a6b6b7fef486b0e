#!/usr/bin/env bash
# test-survive.sh's NAT rebinding and server restart with the server under `kcpx up`
# (XDP + AF_XDP on $IF_B; the client over a UDP socket, where nft rewrites its port):
#
#   [ A ] pace recv -> kcpx client ==udp== [XDP] kcpx up $IF_B server [ B ] -> pace source
#
# The server is killed (SIGKILL) with its programs attached and pins left, and `kcpx up`
# takes over; the client's packets for the lost session reach it (--proto auto: XDP passes
# DATA with an unknown sid) and draw a RESET.
SURVIVE_UP=1 SURVIVE_STEPS="rebind restart" exec "$(dirname "$0")/test-survive.sh"
