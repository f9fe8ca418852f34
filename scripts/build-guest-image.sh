#!/usr/bin/env bash
# Build the real Linux guest image into build/guest:
#
#   vmlinuz              Debian's cloud kernel (scripts/fetch-guest-kernel.sh)
#   initramfs.cpio.gz    /init = the guest agent (crates/hcs-agent, linked
#                        statically), busybox from Debian's busybox-static with
#                        its applet links, and the kernel modules for
#                        virtio-mmio, virtio-blk, virtio-net and vsock, listed
#                        in load order in /etc/hcs-agent/modules
#   initramfs.modules    that list, for the host side (tests)
#
# The kernel and its modules come from the same package download (kept in
# build/downloads). The package ships no modules.dep (its postinst runs
# depmod), so depmod computes it here, and the load order is the dependency
# order it gives. The archive is reproducible (sorted entries, mtime 0, owner
# 0:0, no gzip name or time), and it is rebuilt only when an input changed:
# the kernel package, busybox-static, the agent binary or this script.
# Usage: ./scripts/build-guest-image.sh   (root only for `apt-get update`)
set -euo pipefail
umask 022
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$repo/build/guest"
downloads="$repo/build/downloads"
image="$out/initramfs.cpio.gz"
target=x86_64-unknown-linux-gnu
static_dir="$repo/target/static"
# The modules the agent needs; their dependencies are added from modules.dep.
# button and evdev: the ACPI power button as an input device the agent
# watches; pvpanic_mmio: the ACPI pvpanic device (QEMU0001) that reports a
# panic to the VMM.
root_modules=(virtio_mmio virtio_blk virtio_net vsock
    vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport
    button evdev pvpanic_mmio)

export PATH="$PATH:/usr/sbin:/sbin" # depmod, for users without sbin in PATH
# shellcheck source=lib/kernel-modules.sh
source "$repo/scripts/lib/kernel-modules.sh"
say() { echo "guest image: $*"; }
die() { echo "guest image: $*" >&2; exit 1; }
for tool in dpkg-deb cpio gzip depmod cargo; do
    command -v "$tool" >/dev/null || die "$tool is missing (run scripts/install-deps.sh)"
done

# 1. The kernel, and the package it came from.
"$repo/scripts/fetch-guest-kernel.sh" --with-package
pkg="$(cat "$out/vmlinuz.package")"
kernel_deb=("$downloads/$pkg"_*.deb)
[[ -f "${kernel_deb[0]}" ]] || die "the package of build/guest/vmlinuz ($pkg) is not in build/downloads"
kernel_deb="${kernel_deb[0]}"

# 2. busybox-static (shared with scripts/build-rootfs.sh).
mkdir -p "$downloads"
if ! ls "$downloads"/busybox-static_*.deb >/dev/null 2>&1; then
    say "downloading busybox-static"
    # -qq: apt's Get: lines name the mirror; error lines have their URLs cut.
    (cd "$downloads" && apt-get download -qq busybox-static 2>&1 |
        grep -v "unsandboxed" | sed -E 's#[a-z]+://[^ ]*#<mirror>#g' || true)
fi
busybox_deb="$(ls "$downloads"/busybox-static_*.deb 2>/dev/null | head -n 1)"
[[ -f "$busybox_deb" ]] || die "apt-get download busybox-static failed"

# 3. The agent, linked statically (glibc, crt-static).
say "building hcs-agent (static, $target)"
(cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$static_dir" \
    cargo build --release --quiet --target "$target" -p hcs-agent)
agent="$static_dir/$target/release/hcs-agent"
[[ -x "$agent" ]] || die "cargo did not produce $agent"
# The initramfs has no dynamic loader: /init must be static.
if ldd "$agent" 2>&1 | grep -q "=>"; then
    die "$agent is not linked statically"
fi

# 4. Cached when nothing changed.
inputs="$(sha256sum "$kernel_deb" "$busybox_deb" "$agent" "${BASH_SOURCE[0]}" "$repo/scripts/lib/kernel-modules.sh" | awk '{ print $1 }')"
if [[ -s "$image" && -s "$out/initramfs.modules" ]] && [[ "$(cat "$out/initramfs.inputs" 2>/dev/null)" == "$inputs" ]]; then
    say "$image ($(stat -c %s "$image") bytes, $(wc -l < "$out/initramfs.modules") modules, cached)"
    exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
root="$tmp/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc/hcs-agent,lib/modules,proc,sys,dev,tmp,run,mnt,root,var/tmp}
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 0700 "$root/root"

# 5. The modules, from the kernel package's own tree (scripts/lib/kernel-modules.sh).
say "extracting the modules of $pkg"
kmod_extract "$kernel_deb" "$tmp/kernel"
kernel_file=("$tmp"/kernel/boot/vmlinuz-*)
cmp -s "${kernel_file[0]}" "$out/vmlinuz" || die "build/guest/vmlinuz is not the kernel of $(basename "$kernel_deb")"
version="$kmod_version"
kmod_closure "${root_modules[@]}"
kmod_install "$root" > "$root/etc/hcs-agent/modules"
order=("${kmod_order[@]}")
say "${#order[@]} modules in load order: $(for f in "${order[@]}"; do basename "$f" .ko; done | paste -s -d " ")"

# 6. busybox and its applet links.
dpkg-deb -x "$busybox_deb" "$tmp/busybox"
install -m 0755 "$tmp/busybox/bin/busybox" "$root/bin/busybox"
applets=0
while IFS= read -r applet; do
    case "$applet" in linuxrc | bin/busybox | init | "") continue ;; esac
    dir="$(dirname "$applet")"
    mkdir -p "$root/$dir"
    up="$(echo "$dir" | sed -E 's#[^/]+#..#g')"
    [[ -e "$root/$applet" || -L "$root/$applet" ]] && continue
    ln -s "$up/bin/busybox" "$root/$applet"
    applets=$((applets + 1))
done < <("$root/bin/busybox" --list-full | LC_ALL=C sort)
say "busybox $("$root/bin/busybox" | head -n 1 | awk '{ print $2 }') with $applets applet links"

# 7. The agent as /init, without its debug information (symbols stay, for
#    backtraces).
if command -v strip >/dev/null; then
    strip --strip-debug -o "$root/init" "$agent"
else
    cp "$agent" "$root/init"
fi
chmod 0755 "$root/init"

# 8. The rest of a small root.
cat > "$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$root/etc/group" <<'GROUP'
root:x:0:
daemon:x:1:
tty:x:5:
users:x:100:
nogroup:x:65534:
GROUP
echo "hcs-guest" > "$root/etc/hostname"
echo "$version" > "$root/etc/hcs-agent/kernel"
# The kernel's built-in initramfs already has /dev/console; as root, add it
# and /dev/null here too, so that /init has them before it mounts devtmpfs.
if [[ $(id -u) -eq 0 ]]; then
    mknod -m 0600 "$root/dev/console" c 5 1
    mknod -m 0666 "$root/dev/null" c 1 3
fi

# 9. The archive: sorted, owned by root, every mtime 0, gzip without a name
#    or time stamp.
find "$root" -exec touch -h -d @0 {} +
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
    cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -9 -n > "$image.partial"
mv "$image.partial" "$image"
cp "$root/etc/hcs-agent/modules" "$out/initramfs.modules.partial"
mv "$out/initramfs.modules.partial" "$out/initramfs.modules"
echo "$inputs" > "$out/initramfs.inputs"
say "$image ($(stat -c %s "$image") bytes: agent $(stat -c %s "$root/init"), busybox, ${#order[@]} modules; kernel $version)"
