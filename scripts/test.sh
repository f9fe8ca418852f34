#!/usr/bin/env bash
# Run every test: unit tests, and end-to-end tests with real containers
# (as root). Installs what the tests need first, so it works on a fresh
# machine. Usage: sudo ./scripts/test.sh [extra cargo test arguments]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

if [[ $(id -u) -ne 0 ]]; then
    echo "test: the end-to-end tests create namespaces, mounts and cgroups; run as root" >&2
    exit 1
fi
./scripts/install-deps.sh
./scripts/build-rootfs.sh
# The tests start the hcs-monitor and hcs binaries: build them first.
cargo build --workspace --all-targets
# Keep monitor logs of failed runs for diagnosis.
export HCS_MONITOR_LOG_DIR="${HCS_MONITOR_LOG_DIR:-$repo/build/test-logs}"
rm -rf "$HCS_MONITOR_LOG_DIR"
cargo test --workspace "$@"
