#!/usr/bin/env bash
# Host integrity around a test run: what the tests may not change on the host.
#
#   scripts/host-integrity.sh snapshot FILE       record the host's state in FILE
#   scripts/host-integrity.sh compare BEFORE AFTER
#       exit 0 if they match (after the allow-list), else print the difference
#       and exit 1
#
# Recorded, one line per entry (`<section> <path> <attributes>`):
#   dev      every entry under /dev: raw mode (type and permissions), owner,
#            rdev, inode and ctime (any change of its metadata, even undone)
#   tmp      top-level entries of /tmp: raw mode, owner, inode
#   run      top-level entries of /run, and of /run/hcs (the runtime root):
#            raw mode, owner, inode
#   cgroup   every directory of the /sys/fs/cgroup tree
#   mount    /proc/self/mountinfo without the mount and parent ids (which
#            change on every mount), sorted
#
# Allowed differences (the tests' own expected artefacts; keep this short):
#   - /dev/pts/<n>: pseudo-terminals that come and go with consoles
#   - a cgroup directory named `hcs` appearing: the cgroup parent of every
#     compute system, created on first use and kept (hcs_rundir::CGROUP_PARENT)
#   - /run/hcs appearing: the runtime root, created on first use and kept
# $HOST_INTEGRITY_ALLOW may add extended regular expressions (one per line)
# matched against whole lines, for noise of the machine itself (another
# workload creating entries in /tmp during the run, say).
#
# $HOST_INTEGRITY_ROOT (default empty, i.e. /) takes the paths from another
# root, for testing this script; the mount table is then read from
# $HOST_INTEGRITY_ROOT/proc/self/mountinfo.
set -euo pipefail

root="${HOST_INTEGRITY_ROOT:-}"

builtin_allow=(
    '^dev /dev/pts/[0-9]+ '
    '^cgroup (/[^ ]+)?/hcs$'
    '^run /run/hcs '
)

# `<section> <path> <raw mode>|<uid>:<gid>|<rdev>|<inode>[|<ctime>]` for each
# path given on stdin (NUL-separated), with the root prefix taken off. The
# ctime (of /dev entries) catches a chmod undone, or a node deleted and made
# again on the same inode.
stat_lines() {
    local section="$1" format='%n %f|%u:%g|%t:%T|%i'
    [[ "$section" == dev ]] && format+='|%.9Z'
    # A directory's ctime moves with every entry made in it (ptys in
    # /dev/pts): directories keep only the other attributes.
    xargs -0 -r stat -c "$format" -- 2>/dev/null |
        sed -E "s#^${root}/#/#; s#^#${section} #; s#^(.* 4[0-9a-f]{3}\|[^|]*\|[^|]*\|[0-9]+)\|[0-9.]+\$#\1#" || true
}

snapshot() {
    local out="$1"
    {
        if [[ -d "$root/dev" ]]; then
            find "$root/dev" -xdev -mindepth 1 -print0 2>/dev/null | stat_lines dev
            # Mounted under /dev (pts, shm, mqueue): their entries too.
            for sub in pts shm mqueue hugepages; do
                [[ -d "$root/dev/$sub" ]] || continue
                find "$root/dev/$sub" -mindepth 1 -print0 2>/dev/null | stat_lines dev
            done
        fi
        for d in tmp run run/hcs; do
            [[ -d "$root/$d" && ! -L "$root/$d" ]] || continue
            find "$root/$d" -mindepth 1 -maxdepth 1 -print0 2>/dev/null |
                stat_lines "${d%%/*}"
        done
        if [[ -d "$root/sys/fs/cgroup" ]]; then
            find "$root/sys/fs/cgroup" -mindepth 1 -type d 2>/dev/null |
                sed "s#^${root}/sys/fs/cgroup#cgroup #"
        fi
        # Fields 1 and 2 are the mount id and the parent's id.
        if [[ -r "$root/proc/self/mountinfo" ]]; then
            cut -d' ' -f3- "$root/proc/self/mountinfo" | sed 's/^/mount /'
        fi
    } | LC_ALL=C sort -u >"$out"
}

filter() {
    local file="$1" pattern
    local patterns=("${builtin_allow[@]}")
    if [[ -n "${HOST_INTEGRITY_ALLOW:-}" ]]; then
        while IFS= read -r pattern; do
            [[ -n "$pattern" ]] && patterns+=("$pattern")
        done <<<"$HOST_INTEGRITY_ALLOW"
    fi
    local args=()
    for pattern in "${patterns[@]}"; do
        args+=(-e "$pattern")
    done
    grep -Ev "${args[@]}" "$file" || true
}

compare() {
    local before="$1" after="$2"
    local diffs
    diffs="$(diff <(filter "$before") <(filter "$after") || true)"
    if [[ -n "$diffs" ]]; then
        echo "host-integrity: the host changed during the run (< before, > after):" >&2
        echo "$diffs" >&2
        return 1
    fi
}

case "${1:-}" in
snapshot)
    [[ $# -eq 2 ]] || { echo "usage: $0 snapshot FILE" >&2; exit 2; }
    snapshot "$2"
    ;;
compare)
    [[ $# -eq 3 ]] || { echo "usage: $0 compare BEFORE AFTER" >&2; exit 2; }
    compare "$2" "$3"
    ;;
*)
    echo "usage: $0 snapshot FILE | compare BEFORE AFTER" >&2
    exit 2
    ;;
esac
