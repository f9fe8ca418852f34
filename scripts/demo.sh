#!/usr/bin/env bash
# The main job: create a container compute system from
# examples/busybox-container.json, start it, run a process in it with its
# output streamed here, show the process's exit status, the system's
# statistics, and its exit status once terminated. Then run an OCI bundle
# with runhcs (the runc command line over the same compute systems). Then boot a virtual
# machine from examples/test-guest-vm.json (the test guest), show its serial
# output, run processes in it through its agent, pause and resume it, and
# shut it down.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
hcs="$repo/build/dist/bin/hcs"
[[ -x "$hcs" ]] || hcs="$repo/target/release/hcs"
[[ -x "$hcs" ]] || hcs="$repo/target/debug/hcs"
[[ -x "$hcs" ]] || { echo "demo: build first (./scripts/build-release.sh)" >&2; exit 1; }

id="demo-$$"
mkdir -p build/examples
doc="build/examples/busybox-container.json"
sed "s|@ROOTFS@|$repo/build/rootfs/busybox|" examples/busybox-container.json > "$doc"
cleanup() { "$hcs" terminate "$id" >/dev/null 2>&1 || true; }
trap cleanup EXIT

echo "\$ hcs create $id $doc"
"$hcs" create "$id" "$doc"
echo "\$ hcs start $id"
"$hcs" start "$id"
echo "\$ hcs list"
"$hcs" list
echo "\$ hcs exec $id -- sh -c '...'"
set +e
"$hcs" exec "$id" -- sh -c 'for i in 1 2 3; do echo "line $i from $(hostname), pid $$"; sleep 0.3; done; echo "to stderr" >&2; exit 3'
code=$?
set -e
echo "process exit status: $code"
echo "\$ hcs properties $id -t Statistics"
"$hcs" properties "$id" -t Statistics
echo "\$ hcs terminate $id"
"$hcs" terminate "$id"
trap - EXIT

echo
echo "== An OCI container through runhcs (the runc command line over HCS)"
runhcs="$(dirname "$hcs")/runhcs"
if [[ -x "$runhcs" ]]; then
    bundle="$(mktemp -d)"
    oci="oci-demo-$$"
    cleanup_oci() { "$runhcs" --root "$bundle/state" delete --force "$oci" >/dev/null 2>&1 || true; rm -rf "$bundle"; }
    trap cleanup_oci EXIT
    ln -s "$repo/build/rootfs/busybox" "$bundle/rootfs"
    "$runhcs" spec --bundle "$bundle"
    # runc spec's config, with a command and no terminal.
    sed -i -e 's|"terminal": true|"terminal": false|' \
        -e 's|"sh"$|"sh", "-c", "echo hello from an OCI container: $(id); grep Cap /proc/self/status"|' \
        "$bundle/config.json"
    echo "\$ runhcs run --bundle $bundle $oci"
    "$runhcs" --root "$bundle/state" run --bundle "$bundle" "$oci"
    echo "\$ runhcs run -d ... && runhcs state $oci && hcs -n runhcs list"
    sed -i -e 's|"sh", "-c", .*$|"sleep", "30"|' "$bundle/config.json"
    "$runhcs" --root "$bundle/state" run -d --bundle "$bundle" "$oci" </dev/null >/dev/null 2>&1
    "$runhcs" --root "$bundle/state" state "$oci"
    "$hcs" -n runhcs list
    echo "\$ runhcs delete --force $oci"
    cleanup_oci
    trap - EXIT
else
    echo "runhcs is not built (./scripts/build-release.sh)"
fi

echo
echo "== A virtual machine compute system"
if [[ -e /sys/module/kvm_pvm ]]; then
    echo "/dev/kvm here is kvm_pvm, a software hypervisor that cannot boot Linux, so the VM"
    echo "runs the test guest (guest/test-guest): a small no_std kernel built from this repo"
    echo "that boots through the same Linux 64-bit boot path and finds its devices in ACPI."
else
    echo "The VM runs the test guest (guest/test-guest): a small no_std kernel built from this"
    echo "repo that boots through the same Linux 64-bit boot path and finds its devices in ACPI."
fi
kernel="$repo/build/dist/guest/hcs-test-guest.elf"
[[ -f "$kernel" ]] || kernel="$(ls -t "$repo"/target/*/build/hcs-test-guest-*/out/hcs-test-guest.elf 2>/dev/null | head -n 1)"
[[ -f "$kernel" ]] || { echo "demo: the test guest is not built (./scripts/build-release.sh)" >&2; exit 1; }
vm="demo-vm-$$"
serial="$repo/build/examples/$vm.serial.log"
vmdoc="build/examples/test-guest-vm.json"
sed -e "s|@KERNEL@|$kernel|" -e "s|@SERIAL@|$serial|" examples/test-guest-vm.json > "$vmdoc"
cleanup_vm() { "$hcs" terminate "$vm" >/dev/null 2>&1 || true; rm -f "$serial"; }
trap cleanup_vm EXIT

echo "\$ hcs run $vm $vmdoc"
"$hcs" run "$vm" "$vmdoc"
# The guest prints READY once it has parsed ACPI and started its timer.
for _ in $(seq 1 200); do
    grep -q "READY" "$serial" 2>/dev/null && break
    sleep 0.05
done
# Its agent (a vsock driver and the agent protocol, with built-in programs)
# connects to the host; processes then run through HcsCreateProcess.
for _ in $(seq 1 200); do
    grep -q "AGENT CONNECTED" "$serial" 2>/dev/null && break
    sleep 0.05
done
echo "serial port COM1 ($serial):"
sed 's/^/  | /' "$serial"
echo "\$ hcs exec $vm -- echo hello from the test guest"
"$hcs" exec "$vm" -- echo hello from the test guest
echo "\$ hcs exec $vm -- exit 3"
set +e
"$hcs" exec "$vm" -- exit 3
code=$?
set -e
echo "process exit status: $code"
echo "\$ hcs properties $vm -t Statistics"
"$hcs" properties "$vm" -t Statistics
echo "\$ hcs pause $vm && hcs resume $vm"
"$hcs" pause "$vm"
"$hcs" resume "$vm"
echo "\$ hcs shutdown $vm   (through the guest agent; the guest powers off)"
"$hcs" shutdown "$vm"
echo "serial port COM1, the end:"
tail -n 2 "$serial" | sed 's/^/  | /'
rm -f "$serial"
trap - EXIT
