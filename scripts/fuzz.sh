#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers that take hostile input (fuzz/).
#
#   scripts/fuzz.sh TARGET SECONDS   fuzz TARGET for SECONDS of wall time
#   scripts/fuzz.sh all SECONDS      each target in turn, SECONDS each
#   scripts/fuzz.sh TARGET 0         build only
#   scripts/fuzz.sh list             the targets
#
# Runs on the stable toolchain: libFuzzer (libfuzzer-sys) with the
# SanitizerCoverage instrumentation that stable rustc's -C flags give
# (`-Cpasses=sancov-module` and LLVM's sanitizer-coverage options), the
# same coverage cargo-fuzz uses, without a sanitizer (that needs nightly's
# -Zsanitizer): panics, overflows (checks are on) and aborts are crashes.
#
# The repo corpus fuzz/corpus/TARGET is copied to build/fuzz/work/TARGET and
# grown there, so the repo corpus only changes when someone copies inputs
# back deliberately. Crashes land in build/fuzz/crashes/TARGET; the run
# exits non-zero and names the crash file. Environment: FUZZ_JOBS (default
# 1) parallel fuzzing processes; FUZZ_RUNS=N to stop after N inputs per
# target instead of SECONDS; FUZZ_FRESH=1 to start from the repo corpus
# only (the test command); FUZZ_PROFILE=fuzz-quick for a quicker build of
# slower fuzzers (the test command); FUZZ_ARGS extra libFuzzer flags.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

TARGETS=(schema monitor_wire agent_protocol virtio snapshot oci_spec)

usage() {
    echo "usage: $0 TARGET|all SECONDS   (targets: ${TARGETS[*]})" >&2
    exit 2
}

[[ $# -ge 1 ]] || usage
if [[ $1 == list ]]; then
    printf '%s\n' "${TARGETS[@]}"
    exit 0
fi
[[ $# -eq 2 && $2 =~ ^[0-9]+$ ]] || usage
which_targets=("$1")
if [[ $1 == all ]]; then
    which_targets=("${TARGETS[@]}")
elif [[ ! " ${TARGETS[*]} " == *" $1 "* ]]; then
    echo "fuzz: no target $1 (targets: ${TARGETS[*]})" >&2
    exit 2
fi
seconds=$2

host="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="$repo/build/fuzz/target"
# What cargo-fuzz passes, minus -Zsanitizer (nightly only). An explicit
# --target keeps build scripts and proc macros uninstrumented.
export RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cllvm-args=-sanitizer-coverage-stack-depth \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks -Cforce-frame-pointers"
bins=()
for t in "${which_targets[@]}"; do bins+=(--bin "$t"); done
echo "fuzz: building ${which_targets[*]}" >&2
profile="${FUZZ_PROFILE:-release}"
cargo build --manifest-path fuzz/Cargo.toml --profile "$profile" --target "$host" "${bins[@]}"
bindir="$CARGO_TARGET_DIR/$host/$profile"
# 0 seconds (and no FUZZ_RUNS): build only. libFuzzer would take 0 as "forever".
if [[ $seconds -eq 0 && -z ${FUZZ_RUNS:-} ]]; then
    exit 0
fi

status=0
summary=()
for t in "${which_targets[@]}"; do
    work="$repo/build/fuzz/work/$t"
    crashes="$repo/build/fuzz/crashes/$t"
    tmp="$work/tmp"
    # FUZZ_FRESH=1: start from the repo corpus alone (the test command).
    if [[ -n ${FUZZ_FRESH:-} ]]; then rm -rf "$work/corpus"; fi
    mkdir -p "$work/corpus" "$crashes" "$tmp"
    # The repo corpus seeds the work corpus; what the fuzzer found before
    # stays there for the next run.
    if [[ -d fuzz/corpus/$t ]]; then
        cp -n fuzz/corpus/"$t"/* "$work/corpus/" 2>/dev/null || true
    fi
    log="$work/fuzz.log"
    args=(-artifact_prefix="$crashes/" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048)
    if [[ -f fuzz/dict/$t.dict ]]; then args+=(-dict="fuzz/dict/$t.dict"); fi
    if [[ -n ${FUZZ_RUNS:-} ]]; then
        args+=(-runs="$FUZZ_RUNS")
    else
        args+=(-max_total_time="$seconds")
    fi
    jobs=${FUZZ_JOBS:-1}
    if [[ $jobs -gt 1 ]]; then args+=(-fork="$jobs" -ignore_crashes=0); fi
    # shellcheck disable=SC2086
    args+=(${FUZZ_ARGS:-})
    echo "fuzz: $t for ${FUZZ_RUNS:+$FUZZ_RUNS runs}${FUZZ_RUNS:-${seconds}s}; log $log" >&2
    rc=0
    TIMEFORMAT='%U %S'
    { time HCS_FUZZ_TMP="$tmp" "$bindir/$t" "${args[@]}" "$work/corpus" >"$log" 2>&1 || rc=$?; } 2>"$work/time"
    read -r user sys <"$work/time" || { user=?; sys=?; }
    rm -rf "$tmp"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
    corpus_n=$(find "$work/corpus" -type f | wc -l)
    crash_files=$(grep -Eo "Test unit written to [^ ]+" "$log" | awk '{print $5}' || true)
    line="$t: ${execs:-?} executions, cpu ${user}s user ${sys}s sys, ${cov:-no coverage line}, corpus $corpus_n"
    if [[ $rc -ne 0 ]]; then
        status=1
        line+=", CRASH (exit $rc): ${crash_files:-see $log}"
        tail -n 40 "$log" >&2
    else
        line+=", no crash"
    fi
    summary+=("$line")
done
echo
printf 'fuzz: %s\n' "${summary[@]}"
exit "$status"
