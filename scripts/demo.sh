#!/usr/bin/env bash
# The main job: create a container compute system from
# examples/busybox-container.json, start it, run a process in it with its
# output streamed here, show the process's exit status, the system's
# statistics, and its exit status once terminated.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
hcs="$repo/target/release/hcs"
[[ -x "$hcs" ]] || hcs="$repo/target/debug/hcs"
[[ -x "$hcs" ]] || { echo "demo: build first (cargo build --release)" >&2; exit 1; }

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
