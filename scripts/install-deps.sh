#!/usr/bin/env bash
# Install the Debian packages the project needs (idempotent; skips what is
# already there). Must run as root on a Debian bookworm machine.
#
#   iproute2      network namespaces in the tests (ip netns)
#   runc, crun    the peers the container benchmark measures against
#   hyperfine     timing of whole commands in benchmarks
#   acpica-tools  iasl, to decompile and check the VMM's ACPI tables
#
# With the argument `bench`, also what only the benchmarks need:
#   qemu-system-x86  QEMU's microvm, the peer of the `vms` benchmark
set -euo pipefail

packages=(iproute2 runc crun hyperfine acpica-tools)
for arg in "$@"; do
    case "$arg" in
        bench) packages+=(qemu-system-x86) ;;
        *) echo "usage: $0 [bench]" >&2; exit 2 ;;
    esac
done
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "deps: all installed"
fi
