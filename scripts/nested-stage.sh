#!/usr/bin/env bash
# The nested-KVM stage: the tests that need a real Linux guest (or a pure
# cgroup v2 host), run one level down where this machine's kvm_pvm cannot
# take them.
#
#   L0  this machine: qemu-system-x86_64 -accel tcg -cpu max (an emulated
#       AMD CPU with SVM and nested paging)
#   L1  Debian's cloud kernel (the guest image's own, build/guest/vmlinuz)
#       with an initramfs built here: busybox, kvm.ko/kvm-amd.ko from the
#       same kernel package, a pure cgroup v2 hierarchy, our statically
#       linked hcs-monitor and the test binaries (crt-static), the Linux
#       guest image and the busybox root filesystem at the paths the tests
#       expect (the repository's own path, recreated)
#   L2  the Linux guest under our VMM, or containers on cgroup v2
#
# Each test binary's libtest output is printed as it runs, and its result is
# the stage's: the stage fails if any test fails, if L1 does not come up, or
# if the hard timeout (NESTED_TIMEOUT, default 840 s) ends it. A binary that
# failed is run again (at most twice, and only while L1's uptime leaves 240 s
# of the budget) only when that run shows one of the two
# intermittent faults of this emulation: a vCPU's triple fault (a monitor
# log says so), or a guest CPU whose timer stopped (the guest kernel's RCU
# stall report in the output). QEMU as the L2 VMM, run on the same guest
# and workload by scripts/nested-faults.sh, shows both as well, so they are
# the emulation's (TCG's SVM, or L1's KVM under it), not our VMM's. The
# retry is reported. L1 itself is booted once more, with the time left of
# the budget, only when its own kernel panicked before the tests were done
# (seen twice in about ten runs: "corrupted stack end detected inside
# scheduler", an exception storm in error_entry of a vCPU thread during a
# save/restore test, under the TCG emulation of SVM; the first console is
# kept in build/nested and the retry is reported).
#
# Usage: scripts/nested-stage.sh [BINARY[:FILTER]...]
#   no argument: every binary of NESTED_TESTS below, all of their tests
#   BINARY      a test binary (target name) of NESTED_TESTS, e.g. vm_linux
#   FILTER      a libtest filter, e.g. vm_linux:virtio_blk
# Environment:
#   NESTED_TIMEOUT  hard limit on the whole L1 run, seconds (default 840)
#   NESTED_MEM      L1 memory, MiB (default 4096)
#   NESTED_RESULTS  write "BINARY::TEST ok|FAILED|ignored" lines here
#   NESTED_KEEP=1   keep the L1 initramfs and console log (build/nested)
#   NESTED_THREADS  libtest --test-threads inside L1 (default 1: each L2
#                   guest already has both of L1's vCPUs)
#   HCS_LOG         the monitors' log filter inside L1 (default info), e.g.
#                   hcs_virtio=debug; logs of a failed binary are printed
#   NESTED_BINARY_TIMEOUT  limit on one test binary inside L1, seconds
#                   (default 420); a binary that hangs is killed and fails,
#                   and the others still run
# Prerequisites: scripts/install-deps.sh (qemu-system-x86) and the root
# filesystem (scripts/build-rootfs.sh); the guest image is (re)built here.
set -euo pipefail
umask 022
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=lib/kernel-modules.sh
source "$repo/scripts/lib/kernel-modules.sh"
# shellcheck source=lib/l1.sh
source "$repo/scripts/lib/l1.sh"

# Which tests run here: "package:test-target". They call
# real_linux_guest_here / pure_cgroup_v2_here (tests/integration/src/lib.rs) and defer
# to this stage on a host that cannot run them (scripts/test.sh checks that
# every deferred test passed here).
# Every tests/integration/tests/vm_linux*.rs, and cgroup_v2.rs.
NESTED_TESTS=()
for f in tests/integration/tests/vm_linux*.rs tests/integration/tests/cgroup_v2.rs; do
    NESTED_TESTS+=("hcs-integration-tests:$(basename "$f" .rs)")
done
# L1_MODULES (what L1 loads) and L1_TOOLS (host tools the tests call inside
# L1) are in scripts/lib/l1.sh.

timeout_s="${NESTED_TIMEOUT:-840}"
mem="${NESTED_MEM:-4096}"
threads="${NESTED_THREADS:-1}"
binary_timeout="${NESTED_BINARY_TIMEOUT:-420}"
# What a Linux guest prints when one of its CPUs stopped getting timer
# interrupts or stopped running (RCU's stall detector, the lockup detector);
# the same list as GUEST_STALL_SIGNATURES in tests/integration/src/linux_guest.rs.
stall_signature="detected stalls on CPUs|kthread starved for|timer wakeup didn't happen|soft lockup - CPU"
work="$repo/build/nested"
host="$(rustc -vV | awk '$1 == "host:" { print $2 }')"
say() { echo "nested: $*" >&2; }
die() { echo "nested: $*" >&2; exit 1; }

for tool in qemu-system-x86_64 cpio dpkg-deb depmod python3 timeout; do
    command -v "$tool" >/dev/null || PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null ||
        die "$tool is missing (run scripts/install-deps.sh)"
done
[[ -e build/rootfs/busybox/bin/busybox ]] || die "build/rootfs/busybox is missing (run scripts/build-rootfs.sh)"

# Which binaries, with which filters.
declare -A filter_of=()
selected=()
if [[ $# -eq 0 ]]; then
    for t in "${NESTED_TESTS[@]}"; do selected+=("$t"); done
else
    for arg in "$@"; do
        name="${arg%%:*}"
        found=""
        for t in "${NESTED_TESTS[@]}"; do
            [[ ${t#*:} == "$name" ]] && found="$t"
        done
        [[ -n $found ]] || die "no nested test binary $name (have: ${NESTED_TESTS[*]#*:})"
        selected+=("$found")
        [[ $arg == *:* ]] && filter_of[$name]="${arg#*:}"
    done
fi

# 0. The Linux guest image, rebuilt when the agent changed (cached otherwise).
"$repo/scripts/build-guest-image.sh" >&2

# 1. The test binaries and the monitor, linked statically into their own
#    target directory (L1 has no libc). libseccomp from its static archive,
#    as in scripts/build-release.sh.
l1_static_build_env
cargo_args=()
for t in "${selected[@]}"; do cargo_args+=(-p "${t%%:*}" --test "${t#*:}"); done
say "building ${#selected[@]} test binaries and hcs-monitor (static, $host)"
cargo build --quiet --target "$host" -p hcs-monitor --bin hcs-monitor
cargo test --no-run --quiet --target "$host" "${cargo_args[@]}" --message-format=json-render-diagnostics \
    > "$work.cargo.json" 2>/dev/null || { mkdir -p "$work"; die "building the test binaries failed (run: cargo test --no-run ${cargo_args[*]})"; }
mkdir -p "$work"
mv "$work.cargo.json" "$work/cargo.json"
# "name path" per test binary.
python3 - "$work/cargo.json" > "$work/binaries" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["target"]["name"], m["executable"])
PY
monitor="$CARGO_TARGET_DIR/$host/debug/hcs-monitor"
for f in "$monitor" $(awk '{ print $2 }' "$work/binaries"); do
    if ldd "$f" 2>&1 | grep -q "=>"; then die "$f is not linked statically"; fi
done

# 2. L1's root.
tmp="$(mktemp -d)"
qemu_pid=""
cleanup() {
    if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then kill "$qemu_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
root="$tmp/root"
l1_root "$root" "$tmp"
say "L1 modules: $(for f in "${kmod_order[@]}"; do basename "$f" .ko; done | paste -s -d " ")"
# The test guest (built by hcs-test-guest's build script; the tests name
# its files by their build paths).
for out in "$CARGO_TARGET_DIR"/"$host"/debug/build/hcs-test-guest-*/out; do
    [[ -d $out ]] || continue
    mkdir -p "$root$out"
    find "$out" -maxdepth 1 -type f \( -name '*.elf' -o -name '*.bin' -o -iname '*bzimage*' \) \
        -exec cp {} "$root$out/" \;
done
bindir="$root/nested/bin"
mkdir -p "$bindir"
strip --strip-debug -o "$bindir/hcs-monitor" "$monitor"
: > "$root/nested/plan"
while read -r name path; do
    strip --strip-debug -o "$bindir/$name" "$path"
    echo "$name ${filter_of[$name]:-}" >> "$root/nested/plan"
done < "$work/binaries"
cat > "$root/nested/init" <<EOF
#!/bin/sh
# L1's init on its tmpfs root: mount what the tests need, load KVM, run each
# test binary of /nested/plan, print its result, power off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
# Kernel messages (KVM's notes on unhandled MSRs, say) would cut into the
# tests' lines on this console: keep them in dmesg, printed on failure.
dmesg -n 1
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm /sys/fs/cgroup
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs tmpfs /run
# A pure cgroup v2 hierarchy: no v1 controller is mounted anywhere.
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "+cpu +memory +pids +io +cpuset" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
ip link set lo up
while read -r m; do insmod "\$m" || echo "NESTED-ERROR insmod \$m failed"; done < /etc/modules-load
[ -c /dev/kvm ] || echo "NESTED-ERROR /dev/kvm did not appear"
echo "NESTED-UP \$(uname -r) cpus=\$(grep -c ^processor /proc/cpuinfo) kvm=\$(cat /sys/module/kvm_amd/parameters/nested 2>/dev/null)"
export HCS_MONITOR=/nested/bin/hcs-monitor
export HCS_LOG="${HCS_LOG:-info}"
export HCS_TEST_SKIP_LOG=/tmp/skipped
# KVM's own trace of every L2 entry, exit, interrupt and wakeup, in a ring
# of 4 MiB per CPU: a failing test stops it (tests/integration's failure
# snapshot) and its tail is printed, the record of what the guest's vCPUs
# did last (intermittent stalls and triple faults, issue 13).
trace=/sys/kernel/tracing
if mount -t tracefs tracefs \$trace 2>/dev/null && [ -d \$trace/events/kvm ]; then
    echo 4096 > \$trace/buffer_size_kb
    echo 1 > \$trace/events/kvm/enable
    export HCS_TEST_KVM_TRACE=\$trace
else
    echo "NESTED-NOTE no KVM trace in L1 (tracefs or its kvm events missing)"
fi
export RUST_BACKTRACE=1
cd /tmp
while read -r name filter; do
    attempt=1
    while :; do
        export HCS_MONITOR_LOG_DIR=/tmp/logs-\$name-\$attempt
        mkdir -p \$HCS_MONITOR_LOG_DIR
        if [ -n "\${HCS_TEST_KVM_TRACE:-}" ]; then
            echo 0 > \$trace/tracing_on; echo > \$trace/trace; echo 1 > \$trace/tracing_on
        fi
        echo "NESTED-BIN \$name attempt \$attempt"
        out=/tmp/out-\$name-\$attempt
        { timeout -s KILL $binary_timeout /nested/bin/\$name --test-threads=$threads \$filter 2>&1; echo \$? > /tmp/rc; } | tee \$out
        rc=\$(cat /tmp/rc)
        [ \$rc -eq 137 ] && echo "NESTED-TIMEOUT \$name: killed after ${binary_timeout}s"
        echo "NESTED-RC \$name \$rc"
        if [ \$rc -ne 0 ] && [ -n "\${HCS_TEST_KVM_TRACE:-}" ]; then
            echo 0 > \$trace/tracing_on
            echo "--- L1 KVM trace (last 150 events)"; grep -v "^#" \$trace/trace | tail -n 150
            # Host-side changes to guest memory (L1's MMU notifiers): what
            # would leave a stale nested translation behind.
            echo "--- L1 KVM trace: the last MMU-notifier events and the events per kind"
            grep -E "unmap_hva|age_hva|set_spte_hva|test_age_hva" \$trace/trace | tail -n 20
            grep -v "^#" \$trace/trace | sed -n 's/.*: \\(kvm[a-z_]*\\):.*/\\1/p' | sort | uniq -c | sort -rn | head -n 25
        fi
        # The two faults of this emulation that QEMU as the L2 VMM shows
        # too (scripts/nested-faults.sh): a vCPU's triple fault, and a
        # guest CPU whose timer stopped (the guest's RCU stall report).
        cause=""
        if grep -rqs "triple-faulted" \$HCS_MONITOR_LOG_DIR; then
            cause="a monitor log shows a vCPU triple fault"
            evidence=\$(grep -rhs "triple-faulted" \$HCS_MONITOR_LOG_DIR | head -n 3)
        elif grep -qE "$stall_signature" \$out; then
            cause="a guest kernel reported a stalled CPU"
            evidence=\$(grep -E "$stall_signature" \$out | head -n 3)
        fi
        # Up to two more attempts, while the budget leaves room for one
        # (the faults came in runs: one Debian boot triple-faulted twice).
        up=\$(cut -d. -f1 /proc/uptime)
        if [ \$rc -ne 0 ] && [ \$attempt -lt 3 ] && [ -n "\$cause" ] && [ \$up -lt $((timeout_s - 240)) ]; then
            echo "NESTED-RETRY \$name: \$cause; running it once more"
            echo "\$evidence"
            attempt=\$((attempt + 1))
            continue
        fi
        if [ \$rc -ne 0 ]; then
            echo "--- L1 kernel messages (last 20 lines)"; dmesg | tail -n 20
            for f in \$HCS_MONITOR_LOG_DIR/*; do [ -f "\$f" ] && { echo "--- monitor log \$f (last 30 lines)"; tail -n 30 "\$f"; }; done
        fi
        break
    done
done < /nested/plan
[ -f /tmp/skipped ] && sed 's/^/NESTED-SKIP /' /tmp/skipped
echo "NESTED-DONE"
sync
poweroff -f
EOF
chmod 0755 "$root/nested/init"
initrd="$work/l1.cpio"
l1_pack "$root" "$initrd"
say "L1 initramfs $(( $(stat -c %s "$initrd") / 1048576 )) MiB: $(wc -l < "$root/nested/plan") test binaries, monitor, guest image, rootfs"

# 3. Boot L1 under TCG with an emulated AMD CPU that has SVM and NPT.
log="$work/console.log"
say "booting L1 (qemu TCG, -cpu max, ${mem} MiB; hard timeout ${timeout_s}s); console in $log"
start=$SECONDS
l1_retry=""
for l1_attempt in 1 2; do
    left=$((timeout_s - (SECONDS - start)))
    l1_timeout="$left" l1_mem="$mem" l1_hide="^NESTED-UP" l1_boot "$initrd" "$log"
    qemu_rc=$l1_qemu_rc
    left=$((timeout_s - (SECONDS - start)))
    if grep -q "^NESTED-DONE" "$log" || [[ $l1_attempt -eq 2 ]] \
        || ! grep -q "Kernel panic - not syncing" "$log"; then
        break
    fi
    mkdir -p "$repo/build/nested"
    cp "$log" "$repo/build/nested/console-l1-panic.log"
    l1_retry="$(grep -m1 "Kernel panic - not syncing" "$log" | sed 's/^.*Kernel panic/Kernel panic/')"
    if ((left < 300)); then
        say "L1's own kernel panicked ($l1_retry); ${left}s of the budget left: no second boot"
        break
    fi
    say "L1's own kernel panicked ($l1_retry; console kept in build/nested/console-l1-panic.log); booting L1 once more with ${left}s left"
done
elapsed=$((SECONDS - start))

# 4. Results.
status=0
grep -q "^NESTED-UP" "$log" || { say "L1 never reached its init"; status=1; }
grep "^NESTED-UP" "$log" | sed 's/^/nested: L1 /' >&2 || true
if grep -q "^NESTED-ERROR" "$log"; then grep "^NESTED-ERROR" "$log" >&2; status=1; fi
grep -q "^NESTED-DONE" "$log" || {
    if [[ $qemu_rc -eq 124 || $qemu_rc -eq 137 ]]; then
        say "the hard timeout (${timeout_s}s) ended L1 before its tests were done"
    else
        say "L1 stopped before its tests were done (qemu exit $qemu_rc)"
    fi
    status=1
}
results="${NESTED_RESULTS:-$work/results}"
python3 - "$log" "$results" <<'PY' || status=1
import re, sys
log, out = sys.argv[1], sys.argv[2]
current, rcs, results, retries = None, {}, {}, []
for line in open(log, errors="replace"):
    line = line.rstrip("\r\n")
    m = re.match(r"^NESTED-BIN (\S+) attempt (\d+)", line)
    if m:
        current = m.group(1)
        if m.group(2) != "1":
            retries.append(current)
        continue
    m = re.match(r"^NESTED-RC (\S+) (\d+)", line)
    if m:
        rcs[m.group(1)] = int(m.group(2))
        continue
    m = re.match(r"^test (\S+) \.\.\. (ok|FAILED|ignored)", line)
    if m and current:
        results[f"{current}::{m.group(1)}"] = m.group(2)
with open(out, "w") as f:
    for name, r in sorted(results.items()):
        f.write(f"{name} {r}\n")
failed = [n for n, r in results.items() if r == "FAILED"] + [f"{b} (exit {rc})" for b, rc in rcs.items() if rc != 0 and not any(n.startswith(b + "::") and r == "FAILED" for n, r in results.items())]
ok = sum(1 for r in results.values() if r == "ok")
print(f"nested: {ok} passed, {len(failed)} failed, {len(rcs)} binaries" + (f"; retried after an emulation fault (triple fault or stalled guest CPU): {', '.join(b if retries.count(b) == 1 else f'{b} ({retries.count(b)} times)' for b in dict.fromkeys(retries))}" if retries else ""), file=sys.stderr)
for n in failed:
    print(f"nested: FAILED {n}", file=sys.stderr)
sys.exit(1 if failed or not rcs else 0)
PY
if grep -q "^NESTED-SKIP" "$log"; then
    say "tests that skipped inside L1:"
    grep "^NESTED-SKIP" "$log" | sed 's/^NESTED-SKIP /  /' >&2
    if [[ -n ${HCS_TEST_SKIP_LOG:-} ]]; then
        grep "^NESTED-SKIP" "$log" | sed 's/^NESTED-SKIP //; s/$/ (inside L1)/' >> "$HCS_TEST_SKIP_LOG"
    fi
fi
[[ -n $l1_retry ]] && say "L1 was booted twice: its first kernel panicked ($l1_retry)"
say "stage took ${elapsed}s; $( [[ $status -eq 0 ]] && echo passed || echo FAILED )"
if [[ -z ${NESTED_KEEP:-} ]]; then rm -f "$initrd"; fi
exit "$status"
