#!/usr/bin/env bash
# Install the Debian packages the project needs (idempotent; skips what is
# already there). Must run as root on a Debian bookworm machine.
#
#   iproute2      network namespaces in the tests (ip netns)
#   runc, crun    the peers the container benchmark measures against
#   hyperfine     timing of whole commands in benchmarks
#   acpica-tools  iasl, to decompile and check the VMM's ACPI tables
#   cpio          the guest image's initramfs archive (scripts/build-guest-image.sh)
#   kmod          depmod, for the guest kernel's modules.dep (its package ships none)
#   qemu-system-x86  boots the Linux guest image under pure emulation (TCG) in
#                 a test, since /dev/kvm here cannot run Linux; QEMU's microvm
#                 is also the peer of the `vms` benchmark
#   valgrind      runs the C API's test programs (crates/hcs-capi/tests/c) with leak checking
#   libseccomp-dev  compiles OCI seccomp profiles to BPF (linked statically into the monitor)
#   pkg-config    finds libseccomp's static archive for the release build
#   containerd    the engine of runhcs's end-to-end test (ctr run through the runc shim)
#   docker.io     dockerd and its client: runhcs's Docker test (crates/runhcs/tests/docker.rs)
#   podman        the engine of runhcs's Podman checks (issue 14)
#   g++           compiles libFuzzer (libfuzzer-sys) for the fuzz targets (scripts/fuzz.sh)
set -euo pipefail

packages=(iproute2 runc crun hyperfine acpica-tools cpio kmod qemu-system-x86 valgrind libseccomp-dev pkg-config containerd g++ docker.io podman)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # No package may start a service (docker.io would start a dockerd with
    # its bridge and iptables rules): a policy-rc.d that refuses, unless the
    # machine has its own, removed again afterwards.
    policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "deps: all installed"
fi
