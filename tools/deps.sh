#!/usr/bin/env bash
# Install (Debian 12, as root) whatever kcpx needs to build and test that is missing.
# Quiet and quick when everything is already there.
set -eu
PKGS="build-essential clang llvm lld bpftool libbpf-dev libxdp-dev xdp-tools libelf-dev zlib1g-dev
pkg-config libsodium-dev libgcrypt20-dev libisal-dev libsnappy-dev libjansson-dev libmnl-dev
libclang-rt-14-dev clang-format iproute2 iputils-ping ethtool nftables tcpdump iperf3 kcptun
gnuplot-nox python3 procps psmisc coreutils util-linux
scdoc man-db groff-base bsdextrautils dpkg-dev lintian systemd prometheus logrotate"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages:$missing" >&2
	echo "deps: run 'make deps' as root (apt-get install), or install them yourself" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# Packages such as prometheus start their daemon on install where PID 1 is not systemd
# (invoke-rc.d): a policy-rc.d that says 101 keeps every service stopped meanwhile.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 0755 /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
