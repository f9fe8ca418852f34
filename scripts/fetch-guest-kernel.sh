#!/usr/bin/env bash
# Fetch Debian's cloud kernel (an LZ4-compressed bzImage) into
# build/guest/vmlinuz with `apt-get download`, for the tests of the VMM's
# bzImage loader and, where the hypervisor can run Linux, real Linux boots.
# Cached: does nothing when the kernel is already there.
# Usage: ./scripts/fetch-guest-kernel.sh   (root only for `apt-get update`)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$repo/build/guest"
mkdir -p "$out"
if [[ -s "$out/vmlinuz" ]]; then
    echo "guest kernel: $out/vmlinuz ($(cat "$out/vmlinuz.package" 2>/dev/null || echo unknown package), cached)"
    exit 0
fi

# The versioned package the cloud kernel metapackage depends on now.
package() {
    apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}
pkg="$(package)"
if [[ -z "$pkg" ]]; then
    echo "guest kernel: updating the package lists"
    apt-get update -qq
    pkg="$(package)"
fi
if [[ -z "$pkg" ]]; then
    echo "guest kernel: linux-image-cloud-amd64 is not known to apt" >&2
    exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "guest kernel: downloading $pkg"
(cd "$tmp" && apt-get download -qq "$pkg" 2>&1 | grep -v "unsandboxed" || true)
deb=("$tmp"/*.deb)
[[ -f "${deb[0]}" ]] || { echo "guest kernel: apt-get download $pkg failed" >&2; exit 1; }
echo "guest kernel: extracting /boot/vmlinuz-*"
dpkg-deb --fsys-tarfile "${deb[0]}" | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*'
kernel=("$tmp"/boot/vmlinuz-*)
cp "${kernel[0]}" "$out/vmlinuz.tmp"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
echo "$pkg" > "$out/vmlinuz.package"
echo "guest kernel: $out/vmlinuz ($(stat -c %s "$out/vmlinuz") bytes, $pkg)"
