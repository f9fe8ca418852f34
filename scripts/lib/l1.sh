# shellcheck shell=bash
# The nested stage's L1 machine, shared by scripts/nested-stage.sh (the
# tests) and scripts/bench-nested.sh (the benchmarks). Needs $repo, and
# scripts/lib/kernel-modules.sh sourced.
#
#   l1_static_build_env         export what links our binaries statically
#                               (L1 has no libc) into target/nested
#   l1_root ROOT TMP            L1's root in ROOT (scratch space in TMP):
#                               busybox, the modules of L1_MODULES (list in
#                               ROOT/etc/modules-load), the host tools of
#                               L1_TOOLS with their libraries, users, the
#                               repository's guest image and root filesystem
#                               at their paths, and an /init that moves the
#                               root to a tmpfs and runs /nested/init (which
#                               the caller writes)
#   l1_copy_with_libs ROOT FILE...  copy host executables and their shared
#                               libraries (and the loader) to the same paths
#   l1_add_qemu ROOT QEMU       QEMU in L1: the binary with its libraries,
#                               its firmware and its modules
#   l1_init_head TAG            print the start of a /nested/init: mounts
#                               (proc, sys, dev, devpts, shm, tmp, run,
#                               debugfs), lo up, L1_MODULES loaded, checks
#                               printed as "TAG-ERROR ..." lines
#   l1_pack ROOT INITRD         the root as a newc cpio
#   l1_boot INITRD LOG          boot L1 under QEMU TCG with $l1_mem MiB, at
#                               most $l1_timeout s; its console to LOG and,
#                               prefixed "  L1| ", to stderr (lines matching
#                               $l1_hide left out); sets l1_qemu_rc
#
# Modules L1 loads, dependencies added from the package's modules.dep:
# KVM for our VMM; tun for virtio-net's tap; veth and overlay for the tests'
# networks and containers; loop for disk images.
L1_MODULES=(irqbypass kvm kvm_amd tun veth overlay loop)
# Host tools the tests call inside L1, copied with their shared libraries.
L1_TOOLS=(/usr/sbin/mkfs.ext4 /usr/sbin/debugfs /usr/sbin/e2fsck /usr/sbin/ip)

l1_static_build_env() {
    local seccomp_libdir
    seccomp_libdir="$(pkg-config --variable=libdir libseccomp)"
    if [[ ! -f $seccomp_libdir/libseccomp.a ]]; then
        echo "$seccomp_libdir/libseccomp.a is missing (install libseccomp-dev)" >&2
        return 1
    fi
    # libseccomp from its static archive, as in scripts/build-release.sh.
    export RUSTFLAGS="-C target-feature=+crt-static"
    export LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH="$seccomp_libdir"
    export CARGO_TARGET_DIR="$repo/target/nested"
}

l1_copy_with_libs() {
    local root="$1" t lib
    shift
    for t in "$@"; do
        if [[ ! -x $t ]]; then
            echo "$t is missing (run scripts/install-deps.sh)" >&2
            return 1
        fi
        install -D -m 0755 "$t" "$root$t"
        for lib in $(ldd "$t" | grep -Eo '/[^ ]+'); do
            [[ -e $root$lib ]] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
        done
    done
}

l1_root() {
    local root="$1" tmp="$2" pkg applet
    local kernel_deb busybox_deb
    pkg="$(cat "$repo/build/guest/vmlinuz.package")"
    kernel_deb=("$repo"/build/downloads/"$pkg"_*.deb)
    busybox_deb=("$repo"/build/downloads/busybox-static_*.deb)
    if [[ ! -f ${kernel_deb[0]} || ! -f ${busybox_deb[0]} ]]; then
        echo "the kernel or busybox package is not in build/downloads (run scripts/build-guest-image.sh)" >&2
        return 1
    fi
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,mnt,root,var/tmp,lib64}
    chmod 1777 "$root/tmp" "$root/var/tmp"
    kmod_extract "${kernel_deb[0]}" "$tmp/kernel"
    kmod_closure "${L1_MODULES[@]}"
    kmod_install "$root" > "$root/etc/modules-load"
    dpkg-deb -x "${busybox_deb[0]}" "$tmp/busybox"
    install -m 0755 "$tmp/busybox/bin/busybox" "$root/bin/busybox"
    for applet in $("$root/bin/busybox" --list); do
        [[ $applet == busybox ]] && continue
        [[ -e $root/bin/$applet ]] || ln -s busybox "$root/bin/$applet"
    done
    # Tools with their libraries (and the loader) at the host's paths.
    l1_copy_with_libs "$root" "${L1_TOOLS[@]}"
    cat > "$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat > "$root/etc/group" <<'EOF'
root:x:0:
tty:x:5:
nogroup:x:65534:
EOF
    # The repository's paths the tests find through CARGO_MANIFEST_DIR.
    mkdir -p "$root$repo/tests/integration" "$root$repo/crates/hcs-vmm" "$root$repo/build/guest" "$root$repo/build/rootfs"
    cp "$repo"/build/guest/{vmlinuz,initramfs.cpio.gz,initramfs.modules} "$root$repo/build/guest/"
    cp -a "$repo/build/rootfs/busybox" "$root$repo/build/rootfs/"
    mkdir -p "$root/nested"
    # /init moves the root to a tmpfs: containers pivot_root, which the
    # initramfs's rootfs cannot be (runc refuses it the same way), and an
    # overlayfs layer cannot live on it.
    cat > "$root/init" <<'EOF'
#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mkdir /newroot
mount -t tmpfs -o mode=0755 tmpfs /newroot
for f in /*; do
    case "$f" in /proc | /newroot) ;; *) cp -a "$f" /newroot/ ;; esac
done
mkdir -p /newroot/proc
umount /proc
exec switch_root /newroot /nested/init
EOF
    chmod 0755 "$root/init"
}

l1_add_qemu() {
    local root="$1" qemu="$2"
    l1_copy_with_libs "$root" "$qemu"
    # microvm boots through qboot (bios-microvm.bin), in /usr/share/qemu.
    mkdir -p "$root/usr/share" "$root/usr/lib/x86_64-linux-gnu"
    cp -a /usr/share/qemu "$root/usr/share/"
    if [[ -d /usr/lib/x86_64-linux-gnu/qemu ]]; then
        cp -a /usr/lib/x86_64-linux-gnu/qemu "$root/usr/lib/x86_64-linux-gnu/"
    fi
}

l1_init_head() {
    local tag="$1"
    cat <<EOF
#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
dmesg -n 1
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs tmpfs /run
# KVM's per-VM exit counters.
mount -t debugfs debugfs /sys/kernel/debug || echo "$tag-NOTE no debugfs"
ip link set lo up
while read -r m; do insmod "\$m" || echo "$tag-ERROR insmod \$m failed"; done < /etc/modules-load
[ -c /dev/kvm ] || echo "$tag-ERROR /dev/kvm did not appear"
EOF
}

l1_pack() {
    local root="$1" initrd="$2"
    (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) > "$initrd"
}

# Boot L1 under QEMU's TCG. Transparent huge pages are off in L1 unless
# L1_THP says otherwise (always, madvise): with them, L1's khugepaged
# livelocked on a vCPU for over ten minutes ("soft lockup - CPU#1 stuck for
# 678s! [khugepaged]") during a nested-faults run, in which L2 guests under
# both QEMU and our VMM also stalled and triple-faulted; collapsing pages
# means TLB-shootdown IPIs to L1 vCPUs that are running L2, and MMU-notifier
# invalidations of L2's memory, which this emulation mishandles.
l1_boot() {
    local initrd="$1" log="$2"
    set +e
    timeout --kill-after=10 "${l1_timeout:-840}" qemu-system-x86_64 -accel "tcg,thread=${L1_TCG_THREAD:-multi}" -M pc -nodefaults -no-reboot \
        -cpu max -smp 2 -m "${l1_mem:-4096}" -display none -serial stdio \
        -kernel "$repo/build/guest/vmlinuz" -initrd "$initrd" \
        -append "console=ttyS0 panic=-1 reboot=k quiet loglevel=4 transparent_hugepage=${L1_THP:-never}" </dev/null 2>&1 |
        tee "$log" | { if [[ -n ${l1_hide:-} ]]; then grep --line-buffered -v "$l1_hide"; else cat; fi; } |
        sed -u 's/^/  L1| /' >&2
    l1_qemu_rc=${PIPESTATUS[0]}
    set -e
}

# Die (through the caller's `die`) unless what an L1 running QEMU needs is
# here: the guest kernel and image, the busybox root, QEMU ($1) and its
# microvm firmware.
l1_require_qemu_inputs() {
    local f
    for f in build/guest/vmlinuz build/guest/initramfs.cpio.gz build/guest/vmlinuz.package \
        build/rootfs/busybox/bin/busybox "$1" /usr/share/qemu/bios-microvm.bin; do
        [[ -e $f ]] || die "$f is missing (run scripts/install-deps.sh, scripts/build-guest-image.sh, scripts/build-rootfs.sh)"
    done
}
