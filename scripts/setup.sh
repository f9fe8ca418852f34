#!/usr/bin/env bash
# Set everything up on a fresh Debian machine and run the main job:
# install the Debian packages, build the workspace (release), build the
# busybox root filesystem and the Linux guest image (build/guest), then
# create a container compute system, run a process in it with streamed
# output and show its exit status, and boot a virtual machine (the test
# guest) and show its serial output and exit status.
# Usage: sudo ./scripts/setup.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

if [[ $(id -u) -ne 0 ]]; then
    echo "setup: containers need root; run: sudo ./scripts/setup.sh" >&2
    exit 1
fi
if ! command -v cargo >/dev/null; then
    echo "setup: cargo (Rust) is needed; install a Rust toolchain first" >&2
    exit 1
fi
echo "== 1/4 Debian packages"
./scripts/install-deps.sh
echo "== 2/4 busybox root filesystem, Linux guest image"
./scripts/build-rootfs.sh
./scripts/build-guest-image.sh
echo "== 3/4 build (release, into build/dist)"
./scripts/build-release.sh
echo "== 4/4 the main job"
exec ./scripts/demo.sh
