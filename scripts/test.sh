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
# The guest kernel (build/guest/vmlinuz) and the Linux guest image.
./scripts/build-guest-image.sh
# The tests start the hcs-monitor and hcs binaries: build them first.
cargo build --workspace --all-targets
# The workspace's lints ([workspace.lints] in Cargo.toml): any warning fails.
cargo clippy --workspace --all-targets -- -D warnings
# Keep monitor logs of failed runs for diagnosis.
export HCS_MONITOR_LOG_DIR="${HCS_MONITOR_LOG_DIR:-$repo/build/test-logs}"
rm -rf "$HCS_MONITOR_LOG_DIR"
# Tests that cannot run here (a real Linux guest on kvm_pvm) say so in this
# file; cargo counts them as passed, so they are listed again at the end.
export HCS_TEST_SKIP_LOG="$repo/build/test-skipped.txt"
rm -f "$HCS_TEST_SKIP_LOG"
# Tests that need a real Linux guest or a cgroup v2-only host, on a host
# that has neither (kvm_pvm, v1 controllers), write their names here and
# return; the nested-KVM stage below runs them inside an L1 that has both,
# and every one of them must pass there.
export HCS_TEST_DEFER_LOG="$repo/build/test-deferred.txt"
rm -f "$HCS_TEST_DEFER_LOG"
# Nothing on the host may change during the tests but their own expected
# artefacts (scripts/host-integrity.sh lists them): /dev, /tmp, /run, the
# cgroup tree and the mount table are compared before and after.
integrity_before="$repo/build/host-integrity.before"
integrity_after="$repo/build/host-integrity.after"
mkdir -p "$repo/build"
./scripts/host-integrity.sh snapshot "$integrity_before"
status=0
cargo test --workspace --no-fail-fast "$@" || status=$?
# The nested-KVM stage (scripts/nested-stage.sh), when any test deferred to it.
if [[ -s "$HCS_TEST_DEFER_LOG" ]]; then
    nested_results="$repo/build/nested-results.txt"
    NESTED_RESULTS="$nested_results" ./scripts/nested-stage.sh || status=$?
    # Every deferred test must have passed inside L1.
    while IFS= read -r deferred; do
        if ! grep -qxF "$deferred ok" "$nested_results" 2>/dev/null; then
            echo "test: $deferred was deferred to the nested stage and did not pass there" >&2
            [[ "$status" -ne 0 ]] || status=1
        fi
    done < <(sort -u "$HCS_TEST_DEFER_LOG")
    echo "test: $(sort -u "$HCS_TEST_DEFER_LOG" | wc -l) deferred test(s) checked against the nested stage's results"
fi
# Each fuzz target briefly on its seed corpus (scripts/fuzz.sh for long
# runs): a crash fails the run. FUZZ_SECONDS=0 leaves them out.
fuzz_seconds="${FUZZ_SECONDS:-10}"
if [[ $fuzz_seconds -gt 0 ]]; then
    FUZZ_FRESH=1 FUZZ_PROFILE=fuzz-quick ./scripts/fuzz.sh all "$fuzz_seconds" || status=$?
fi
if [[ -s "$HCS_TEST_SKIP_LOG" ]]; then
    echo
    echo "test: $(wc -l < "$HCS_TEST_SKIP_LOG") test(s) did not run their checks on this machine:"
    sed 's/^/  /' "$HCS_TEST_SKIP_LOG"
fi
./scripts/host-integrity.sh snapshot "$integrity_after"
if ! ./scripts/host-integrity.sh compare "$integrity_before" "$integrity_after"; then
    echo "test: the host was changed by the run (see above); failing it" >&2
    [[ "$status" -ne 0 ]] || status=1
fi
exit "$status"
