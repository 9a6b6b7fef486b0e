#!/usr/bin/env bash
# make deb: a Debian package of the tree's build, with Debian's own tools.
#   stage `make install PREFIX=/usr` -> strip, gzip the docs -> Depends from dpkg-shlibdeps
#   -> md5sums, conffiles, maintainer scripts -> dpkg-deb -> $OUT/deb/kcpx_VERSION_ARCH.deb
# Run from the top of the tree after `make` (the Makefile's deb target does both).
set -eu
cd "$(dirname "$0")/../.."
OUT=${OUT:-build}
ver=$(sed -n 's/^#define KCPX_VERSION "\(.*\)"/\1/p' user/app/cmd.h)
debver=$ver-1
arch=$(dpkg --print-architecture)
stage=$OUT/deb/stage
rm -rf "$stage" "$OUT/deb/shlibs"
mkdir -p "$stage/DEBIAN"

make --no-print-directory -s install PREFIX=/usr DESTDIR="$PWD/$stage" OUT="$OUT" >/dev/null
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$stage/usr/bin/kcpx"
gzip -9n "$stage/usr/share/man/man1/kcpx.1"
doc=$stage/usr/share/doc/kcpx
install -m 0644 dist/debian/copyright "$doc/copyright"
stamp=$(git log -1 --format=%cD 2>/dev/null || date -R)
printf 'kcpx (%s) unstable; urgency=medium\n\n  * Built from the kcpx tree (%s).\n\n -- kcpx developers <kcpx@example.org>  %s\n' \
	"$debver" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$stamp" |
	gzip -9n >"$doc/changelog.Debian.gz"
chmod 0644 "$doc/changelog.Debian.gz"

# dpkg-shlibdeps reads debian/control from its working directory
mkdir -p "$OUT/deb/shlibs/debian"
printf 'Source: kcpx\n\nPackage: kcpx\nArchitecture: any\n' >"$OUT/deb/shlibs/debian/control"
depends=$(cd "$OUT/deb/shlibs" && dpkg-shlibdeps -O -e"$PWD/../../../$stage/usr/bin/kcpx" 2>/dev/null |
	sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CTL
Package: kcpx
Version: $debver
Architecture: $arch
Maintainer: kcpx developers <kcpx@example.org>
Installed-Size: $size
Depends: $depends
Recommends: systemd
Suggests: bpftool, logrotate
Section: net
Priority: optional
Homepage: https://github.com/kcpx/kcpx
Description: KCP tunnel compatible with kcptun, with an XDP fast path
 kcpx forwards TCP connections across lossy, long network paths over KCP,
 speaking kcptun's wire format so that either end may be a stock kcptun.
 Between two kcpx ends it uses its own authenticated protocol. "kcpx up"
 moves the datagram path into XDP and AF_XDP sockets.
 .
 The package ships systemd units kcpx-server@, kcpx-client@ and kcpx-up@
 (configured by /etc/kcpx/NAME.json) and example configurations.
CTL
(cd "$stage" && find etc -type f -printf '/%p\n' | sort) >"$stage/DEBIAN/conffiles"
(cd "$stage" && find usr lib -type f -print0 | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
for s in postinst prerm postrm; do
	install -m 0755 "dist/debian/$s" "$stage/DEBIAN/$s"
done
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums"
deb=$OUT/deb/kcpx_${debver}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "  DEB      $deb (Depends: $depends)"
