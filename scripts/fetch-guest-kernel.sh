#!/usr/bin/env bash
# Fetch Debian's cloud kernel (an LZ4-compressed bzImage) into
# build/guest/vmlinuz with `apt-get download`, for the tests of the VMM's
# bzImage loader and, where the hypervisor can run Linux, real Linux boots.
# The package itself is kept in build/downloads, so that the guest image
# (scripts/build-guest-image.sh) takes the kernel's modules from the very
# download the kernel came from.
# Cached: does nothing when the kernel is already there.
# Usage: ./scripts/fetch-guest-kernel.sh [--with-package]
#   --with-package  also require the package of build/guest/vmlinuz in
#                   build/downloads; when it is missing, download the kernel
#                   package again and take build/guest/vmlinuz from it
# (root only for `apt-get update`)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$repo/build/guest"
downloads="$repo/build/downloads"
with_package=0
for arg in "$@"; do
    case "$arg" in
        --with-package) with_package=1 ;;
        *) echo "usage: $0 [--with-package]" >&2; exit 2 ;;
    esac
done
mkdir -p "$out" "$downloads"

# The kept package of a kernel package name, if any.
kept_deb() {
    local d
    for d in "$downloads/$1"_*.deb; do
        [[ -f "$d" ]] && { echo "$d"; return 0; }
    done
    return 1
}

if [[ -s "$out/vmlinuz" ]]; then
    cached_pkg="$(cat "$out/vmlinuz.package" 2>/dev/null || true)"
    if ((!with_package)) || { [[ -n "$cached_pkg" ]] && kept_deb "$cached_pkg" >/dev/null; }; then
        echo "guest kernel: $out/vmlinuz (${cached_pkg:-unknown package}, cached)"
        exit 0
    fi
    echo "guest kernel: the package of $out/vmlinuz is not in build/downloads; fetching the kernel again"
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
if deb="$(kept_deb "$pkg")"; then
    echo "guest kernel: $pkg is already in build/downloads"
else
    echo "guest kernel: downloading $pkg"
    mkdir "$tmp/dl"
    # -qq: apt's Get: lines name the mirror; error lines have their URLs cut.
    (cd "$tmp/dl" && apt-get download -qq "$pkg" 2>&1 |
        grep -v "unsandboxed" | sed -E 's#[a-z]+://[^ ]*#<mirror>#g' || true)
    dl=("$tmp"/dl/*.deb)
    [[ -f "${dl[0]}" ]] || { echo "guest kernel: apt-get download $pkg failed" >&2; exit 1; }
    # Drop older kernel packages: only the one vmlinuz came from is kept.
    rm -f "$downloads"/linux-image-*.deb
    deb="$downloads/$(basename "${dl[0]}")"
    mv "${dl[0]}" "$deb.partial"
    mv "$deb.partial" "$deb"
fi
echo "guest kernel: extracting /boot/vmlinuz-*"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*'
kernel=("$tmp"/boot/vmlinuz-*)
cp "${kernel[0]}" "$out/vmlinuz.tmp"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
echo "$pkg" > "$out/vmlinuz.package"
echo "guest kernel: $out/vmlinuz ($(stat -c %s "$out/vmlinuz") bytes, $pkg)"
