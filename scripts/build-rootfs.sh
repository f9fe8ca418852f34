#!/usr/bin/env bash
# Build a minimal busybox root filesystem from Debian's busybox-static, for
# the example container and the tests: build/rootfs/busybox.
#
# The package is fetched with `apt-get download` and unpacked here; nothing is
# installed on the host.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo/build/rootfs/busybox}"
work="$repo/build/downloads"

if [[ -x "$out/bin/busybox" && -f "$out/etc/passwd" ]]; then
    echo "rootfs: $out is already built"
    exit 0
fi

mkdir -p "$work"
if ! ls "$work"/busybox-static_*.deb >/dev/null 2>&1; then
    echo "rootfs: downloading busybox-static"
    (cd "$work" && apt-get download -qq busybox-static)
fi
deb="$(ls "$work"/busybox-static_*.deb | head -n1)"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp"

rm -rf "$out.partial"
mkdir -p "$out.partial"/{bin,sbin,etc,proc,sys,dev,tmp,root,home,usr/bin,usr/sbin,var/tmp}
install -m 0755 "$tmp/bin/busybox" "$out.partial/bin/busybox"
chmod 1777 "$out.partial/tmp" "$out.partial/var/tmp"
count=0
for applet in $("$out.partial/bin/busybox" --list); do
    [[ "$applet" == busybox ]] && continue
    ln -sf busybox "$out.partial/bin/$applet"
    count=$((count + 1))
done
cat > "$out.partial/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
tester:x:1000:1000:tester:/home/tester:/bin/sh
PASSWD
cat > "$out.partial/etc/group" <<'GROUP'
root:x:0:
daemon:x:1:
tty:x:5:
users:x:100:tester
tester:x:1000:
nogroup:x:65534:
GROUP
mkdir -p "$out.partial/home/tester"
chown 1000:1000 "$out.partial/home/tester"
echo "hcs-busybox" > "$out.partial/etc/hostname"
rm -rf "$out"
mv "$out.partial" "$out"
echo "rootfs: built $out ($count busybox applets)"
