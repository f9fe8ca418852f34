#!/usr/bin/env bash
# Benchmarks that need a real Linux guest, run one level down in the nested
# stage's L1 (scripts/lib/l1.sh; see scripts/nested-stage.sh): the Linux
# guest image under our VMM and under QEMU's microvm machine with KVM, one
# run each, printed as one table with the ratios hcs/QEMU
# (`hcs-bench linux-vms`). A benchmark, not a test: the test command does
# not run it, and it fails only when L1 or a VMM does.
#
# Usage: scripts/bench-nested.sh
# Environment:
#   NESTED_TIMEOUT  hard limit on the whole L1 run, seconds (default 600)
#   NESTED_MEM      L1 memory, MiB (default 4096)
#   NESTED_KEEP=1   keep the L1 initramfs and console log (build/nested-bench)
# Prerequisites: as scripts/nested-stage.sh.
set -euo pipefail
umask 022
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=lib/kernel-modules.sh
source "$repo/scripts/lib/kernel-modules.sh"
# shellcheck source=lib/l1.sh
source "$repo/scripts/lib/l1.sh"

work="$repo/build/nested-bench"
host="$(rustc -vV | awk '$1 == "host:" { print $2 }')"
qemu=/usr/bin/qemu-system-x86_64
say() { echo "bench-nested: $*" >&2; }
die() { echo "bench-nested: $*" >&2; exit 1; }

l1_require_qemu_inputs "$qemu"

# 1. hcs-bench and the monitor, static.
l1_static_build_env
say "building hcs-bench and hcs-monitor (static, $host)"
cargo build --quiet --release --target "$host" -p hcs-monitor --bin hcs-monitor -p hcs-bench --bin hcs-bench
mkdir -p "$work"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
root="$tmp/root"
l1_root "$root" "$tmp"
mkdir -p "$root/nested/bin"
for b in hcs-monitor hcs-bench; do
    f="$CARGO_TARGET_DIR/$host/release/$b"
    if ldd "$f" 2>&1 | grep -q "=>"; then die "$f is not linked statically"; fi
    strip --strip-debug -o "$root/nested/bin/$b" "$f"
done
# QEMU with its libraries, its firmware and its modules.
l1_add_qemu "$root" "$qemu"
{
    l1_init_head BENCH
    cat <<EOF
export HCS_MONITOR=/nested/bin/hcs-monitor
cd /tmp
echo "BENCH-START"
/nested/bin/hcs-bench linux-vms --kernel $repo/build/guest/vmlinuz --initrd $repo/build/guest/initramfs.cpio.gz --qemu $qemu 2>&1
echo "BENCH-RC \$?"
sync
poweroff -f
EOF
} > "$root/nested/init"
chmod 0755 "$root/nested/init"
initrd="$work/l1.cpio"
l1_pack "$root" "$initrd"
say "L1 initramfs $(( $(stat -c %s "$initrd") / 1048576 )) MiB"

# 2. Boot L1 and run the benchmark.
log="$work/console.log"
say "booting L1; console in $log"
l1_timeout="${NESTED_TIMEOUT:-600}" l1_mem="${NESTED_MEM:-4096}" l1_boot "$initrd" "$log"
[[ -z ${NESTED_KEEP:-} ]] && rm -f "$initrd"
grep -q "^BENCH-ERROR" "$log" && { grep "^BENCH-ERROR" "$log" >&2; exit 1; }
rc="$(sed -n 's/^BENCH-RC \([0-9]*\).*/\1/p' "$log")"
[[ -n $rc ]] || die "L1 stopped before the benchmark ended (qemu exit $l1_qemu_rc)"
echo
sed -n '/^BENCH-START/,/^BENCH-RC/p' "$log" | grep -v "^BENCH-" | tr -d '\r'
[[ $rc == 0 ]] || die "hcs-bench failed (exit $rc)"
