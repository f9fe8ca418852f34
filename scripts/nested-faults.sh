#!/usr/bin/env bash
# A control experiment for the intermittent "vCPU N triple-faulted" of the
# nested stage (issue 13): is it our VMM or the emulation under it? One L1
# (scripts/lib/l1.sh; see scripts/nested-stage.sh) boots the same Linux
# guest (the guest image's kernel and initramfs, 512 MiB, 2 vCPUs) with the
# same fork-heavy workload N times under our VMM (hcs client + hcs-monitor)
# and N times under QEMU's microvm machine with KVM, alternating, and counts
# per VMM: completed, triple fault, stall (the guest's RCU stall or lockup
# detector fired), guest panic, timeout, other.
#
# The workload is scripts/lib/faults/guest-init.sh, appended to a copy of
# the initramfs and run as rdinit= instead of the agent, so that both VMMs
# run exactly the same guest code: storms of 32 concurrent shells, each
# forking short sleeps and a seq | sed pipeline (as vm_linux's
# many_processes_at_once), then a marker and a power-off. How a boot ended:
#   hcs   the console marker; else the monitor's "triple-faulted" (its log
#         and the SystemExitStatus); else a panic on the console; else the
#         wait's timeout
#   qemu  the console marker; else a panic on the console; else a
#         KVM_EXIT_SHUTDOWN (exit reason 8) in QEMU's trace of its KVM exits
#         (-no-reboot: a triple fault ends QEMU like a reset would); else
#         the timeout
# An experiment, not a test: the test command does not run it.
#
# Usage: scripts/nested-faults.sh [N]     (N rounds, default 10)
# Environment:
#   NESTED_TIMEOUT        hard limit on the whole L1 run, seconds (default 1500)
#   NESTED_MEM            L1 memory, MiB (default 4096)
#   FAULTS_ROUND_TIMEOUT  limit on one guest boot + workload, seconds (default 240)
#   FAULTS_STORMS         fork storms per boot (default 4)
#   FAULTS_KMSG           lines of 100 characters the guest prints through
#                         the kernel's console first (default 0): printk's
#                         polled 8250 writes, two port exits to the VMM per
#                         character, as a Linux boot with console=ttyS0 does
#   NESTED_KEEP=1         keep the L1 initramfs (build/nested-faults)
#   L1_TCG_THREAD         QEMU's TCG for L1: multi (default, a host thread
#                         per L1 vCPU) or single (one thread, round robin)
#   L1_THP                L1's transparent_hugepage= (default never; see
#                         scripts/lib/l1.sh)
# Prerequisites: as scripts/bench-nested.sh.
set -euo pipefail
umask 022
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=lib/kernel-modules.sh
source "$repo/scripts/lib/kernel-modules.sh"
# shellcheck source=lib/l1.sh
source "$repo/scripts/lib/l1.sh"

rounds="${1:-10}"
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [N]" >&2; exit 2; }
round_timeout="${FAULTS_ROUND_TIMEOUT:-240}"
storms="${FAULTS_STORMS:-4}"
kmsg="${FAULTS_KMSG:-0}"
work="$repo/build/nested-faults"
host="$(rustc -vV | awk '$1 == "host:" { print $2 }')"
qemu=/usr/bin/qemu-system-x86_64
say() { echo "nested-faults: $*" >&2; }
die() { echo "nested-faults: $*" >&2; exit 1; }
[[ $storms =~ ^[0-9]+$ && $kmsg =~ ^[0-9]+$ ]] || die "FAULTS_STORMS and FAULTS_KMSG are counts"

l1_require_qemu_inputs "$qemu"

# 1. The monitor and the hcs client, static.
l1_static_build_env
say "building hcs-monitor and hcs (static, $host)"
cargo build --quiet --release --target "$host" -p hcs-monitor --bin hcs-monitor -p hcs-cli --bin hcs
mkdir -p "$work"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
root="$tmp/root"
l1_root "$root" "$tmp"
mkdir -p "$root/nested/bin"
for b in hcs-monitor hcs; do
    f="$CARGO_TARGET_DIR/$host/release/$b"
    if ldd "$f" 2>&1 | grep -q "=>"; then die "$f is not linked statically"; fi
    strip --strip-debug -o "$root/nested/bin/$b" "$f"
done
l1_add_qemu "$root" "$qemu"
install -m 0755 scripts/lib/faults/rounds.sh "$root/nested/rounds.sh"
# The guest's initramfs with the workload appended as a second archive.
mkdir -p "$tmp/extra"
install -m 0755 scripts/lib/faults/guest-init.sh "$tmp/extra/faults-init"
guest_initrd="$repo/build/guest/initramfs-faults.cpio.gz"
{ cat build/guest/initramfs.cpio.gz; (cd "$tmp/extra" && echo faults-init | cpio --quiet -o -H newc -R 0:0 | gzip -9); } \
    > "$root$guest_initrd"
{
    l1_init_head FAULTS
    cat <<EOF
echo "FAULTS-UP \$(uname -r) cpus=\$(grep -c ^processor /proc/cpuinfo) nested=\$(cat /sys/module/kvm_amd/parameters/nested 2>/dev/null)"
cd /tmp
/nested/rounds.sh $rounds $repo/build/guest/vmlinuz $guest_initrd $qemu $round_timeout $storms $kmsg 2>&1
echo "FAULTS-DONE"
sync
poweroff -f
EOF
} > "$root/nested/init"
chmod 0755 "$root/nested/init"
initrd="$work/l1.cpio"
l1_pack "$root" "$initrd"
say "L1 initramfs $(( $(stat -c %s "$initrd") / 1048576 )) MiB"

# 2. Boot L1 and run the rounds.
log="$work/console.log"
timeout_s="${NESTED_TIMEOUT:-1500}"
say "booting L1 for $rounds rounds (hard timeout ${timeout_s}s); console in $log"
start=$SECONDS
l1_timeout="$timeout_s" l1_mem="${NESTED_MEM:-4096}" l1_boot "$initrd" "$log"
elapsed=$((SECONDS - start))
[[ -z ${NESTED_KEEP:-} ]] && rm -f "$initrd"

# 3. The table.
status=0
grep -q "^FAULTS-ERROR" "$log" && { grep "^FAULTS-ERROR" "$log" >&2; status=1; }
if ! grep -q "^FAULTS-DONE" "$log"; then
    say "L1 stopped before its rounds were done (qemu exit $l1_qemu_rc after ${elapsed}s): the counts below are partial"
    grep -qE "Kernel panic|corrupted stack" "$log" && say "L1's own kernel panicked: $(grep -m1 -E "Kernel panic|corrupted stack" "$log" | tr -d '\r')"
    status=1
fi
echo
python3 - "$log" <<'PY'
import re, sys
results = {"hcs": [], "qemu": []}
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"^FAULTS-ROUND (\d+) (hcs|qemu) (\S+) (\d+)", line.rstrip("\r\n"))
    if m:
        results[m.group(2)].append((m.group(3), int(m.group(4))))
kinds = ["completed", "triple-fault", "stall", "panic", "timeout", "other"]
print(f"{'VMM':<6} {'boots':>6} " + " ".join(f"{k:>12}" for k in kinds) + f" {'median s':>9}")
for vmm, rs in results.items():
    secs = sorted(s for r, s in rs if r == "completed")
    med = f"{secs[len(secs) // 2]}" if secs else "-"
    print(f"{vmm:<6} {len(rs):>6} " + " ".join(f"{sum(1 for r, _ in rs if r == k):>12}" for k in kinds) + f" {med:>9}")
PY
say "L1 run took ${elapsed}s"
exit "$status"
