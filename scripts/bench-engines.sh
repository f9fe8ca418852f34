#!/usr/bin/env bash
# `docker run --rm IMAGE true` and `podman run --rm IMAGE true` with runhcs
# and with runc as the container runtime, interleaved by hyperfine in one
# run: medians and the runhcs/runc ratios (issue 14's measure).
#
#   sudo ./scripts/bench-engines.sh [RUNS]      (default 20 runs per command)
#
# Uses build/dist/bin/runhcs (scripts/build-release.sh) and the busybox
# root filesystem (scripts/build-rootfs.sh). dockerd is private (its data
# root, exec root, socket and cgroup parent in a temporary directory; no
# bridge, no iptables) and stopped by its pid at the end; Podman keeps its
# storage in the same directory. Everything the engines make outside it
# is removed afterwards if it did not exist before.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${1:-20}"
runhcs="$repo/build/dist/bin/runhcs"
rootfs="$repo/build/rootfs/busybox"
for need in "$runhcs" "$rootfs/bin/busybox" /usr/sbin/dockerd /usr/bin/podman /usr/sbin/runc; do
    [[ -e "$need" ]] || { echo "bench-engines: $need is missing (scripts/build-release.sh, scripts/build-rootfs.sh, scripts/install-deps.sh)" >&2; exit 1; }
done
command -v hyperfine >/dev/null || { echo "bench-engines: hyperfine is missing (scripts/install-deps.sh)" >&2; exit 1; }

work="$(mktemp -d)"
parent="hcs-bench-engines-$$"
shared=(/run/docker/plugins /run/docker /run/containerd/s /run/containerd/fifo /run/containerd
        /run/runc /run/runhcs /var/lib/containers/cache /var/lib/containers)
made=()
for d in "${shared[@]}"; do [[ -e "$d" ]] || made+=("$d"); done
dockerd_pid=""

cleanup() {
    set +e
    if [[ -n "$dockerd_pid" ]]; then
        docker_cmd ps -aq | xargs -r docker_cmd rm -f >/dev/null 2>&1
        kill -TERM "$dockerd_pid" 2>/dev/null
        for _ in $(seq 1 300); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
    fi
    podman_cmd rm -af -t 0 >/dev/null 2>&1
    podman_cmd system reset -f >/dev/null 2>&1
    for d in "${made[@]}"; do
        [[ "$d" == /var/lib/containers/cache ]] && rm -f "$d/blob-info-cache-v1.boltdb"
        rmdir "$d" 2>/dev/null
    done
    # The containers' cgroup parent, at each hierarchy's root and under our
    # own cgroup of each, deepest first.
    own="$(cut -d: -f3- /proc/self/cgroup)"
    for m in /sys/fs/cgroup /sys/fs/cgroup/*; do
        for o in "" $own; do
            [[ -d "$m$o/$parent" ]] && find "$m$o/$parent" -depth -type d -exec rmdir {} \; 2>/dev/null
        done
    done
    rm -rf "$work"
}
docker_cmd() { /usr/bin/docker -H "unix://$work/docker.sock" "$@"; }
podman_cmd() {
    /usr/bin/podman --root "$work/podman/root" --runroot "$work/podman/run" --tmpdir "$work/podman/tmp" \
        --cgroup-manager cgroupfs --events-backend file "$@"
}
trap cleanup EXIT

printf '{"runtimes":{"runhcs":{"path":"%s"}}}\n' "$runhcs" >"$work/daemon.json"
/usr/sbin/dockerd --data-root "$work/data" --exec-root "$work/exec" --pidfile "$work/dockerd.pid" \
    -H "unix://$work/docker.sock" --bridge=none --iptables=false --ip6tables=false \
    --cgroup-parent "$parent" --config-file "$work/daemon.json" >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 1 600); do docker_cmd version >/dev/null 2>&1 && break; sleep 0.1; done
docker_cmd version >/dev/null || { echo "bench-engines: dockerd did not start; $work/dockerd.log:" >&2; cat "$work/dockerd.log" >&2; exit 1; }
tar -C "$rootfs" -cf "$work/busybox.tar" .
docker_cmd import "$work/busybox.tar" hcs-bench:1 >/dev/null
podman_cmd import "$work/busybox.tar" hcs-bench:1 >/dev/null

d="/usr/bin/docker -H unix://$work/docker.sock run --rm --network none"
p="/usr/bin/podman --root $work/podman/root --runroot $work/podman/run --tmpdir $work/podman/tmp --cgroup-manager cgroupfs --events-backend file"
# Podman asks for RLIMIT_NOFILE/NPROC above this machine's hard limits;
# both runtimes get limits they can set.
prun="run --rm --network none --cgroup-parent /$parent --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 hcs-bench:1 true"
hyperfine --runs "$runs" --warmup 3 --style basic --export-json "$work/result.json" \
    -n docker-runc "$d --runtime runc hcs-bench:1 true" \
    -n docker-runhcs "$d --runtime runhcs hcs-bench:1 true" \
    -n podman-runc "$p --runtime /usr/sbin/runc $prun" \
    -n podman-runhcs "$p --runtime $runhcs $prun"
python3 - "$work/result.json" <<'EOF'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
print()
for engine in ("docker", "podman"):
    a, b = r[f"{engine}-runhcs"]["median"], r[f"{engine}-runc"]["median"]
    print(f"{engine} run --rm true: runhcs {a*1000:.0f} ms, runc {b*1000:.0f} ms median; runhcs/runc {a/b:.2f}")
EOF
