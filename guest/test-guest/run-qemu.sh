#!/bin/sh
# Builds the test guest with the `pvh` feature and boots it under QEMU microvm
# (serial on stdio; Ctrl-A x quits). Extra arguments go to QEMU, e.g.
#   ./run-qemu.sh -smp 2 -device pvpanic -device virtio-rng-device
set -eu
cd "$(dirname "$0")"
cargo build --release --offline --features pvh --target-dir target-pvh
exec qemu-system-x86_64 -M microvm,acpi=on -enable-kvm -cpu host,-arch-capabilities -m 256 \
    -nographic -no-reboot \
    -kernel target-pvh/x86_64-unknown-linux-gnu/release/test-guest \
    -append "${APPEND:-console=ttyS0}" "$@"
