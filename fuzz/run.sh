#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 8: the seven
# targets together fuzz for under a minute, CI's smoke run), starting from
# the seeds in corpus/<target>/. Fails when any target crashes, panics on a
# broken invariant, times out or runs out of memory; the input is left in
# artifacts/<target>/ and the log's tail is printed.
#
#   fuzz/run.sh [SECONDS] [TARGET...]   # `just fuzz` runs all for 600 s each
#
# CARGO_TARGET_DIR picks the build directory (default fuzz/target). New
# inputs go to a scratch directory, never to corpus/: only hand-made seeds
# and the inputs of fixed crashes are committed.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-8}
shift || true
# The targets to run: those named, else every one.
only=("$@")
# cargo-fuzz passes nightly-only flags; the pinned stable toolchain takes
# them with RUSTC_BOOTSTRAP (no nightly toolchain on CI's machines).
export RUSTC_BOOTSTRAP=1
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
# No sanitizer: every fuzzed path is safe Rust (the crate forbids
# `unsafe`), so AddressSanitizer would halve the executions for nothing.
# Release with debug assertions and overflow checks; 16 codegen units keep
# the build of wasmtime and cranelift (linked, never fuzzed) short.
build_flags=(-s none -O -a --codegen-units 16 --target-dir "$target_dir")

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

echo "building the fuzz targets in $target_dir"
(cd .. && cargo fuzz build "${build_flags[@]}")
bin="$target_dir/x86_64-unknown-linux-gnu/release"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
targets=("${only[@]}")
((${#targets[@]})) || mapfile -t targets < <(cd .. && cargo fuzz list)
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target" "artifacts/$target"
    dict=()
    [[ -f dict/$target.dict ]] && dict=("-dict=dict/$target.dict")
    log="artifacts/$target.log"
    # The scratch directory first: libFuzzer writes new inputs to the
    # first corpus directory and only reads the others.
    if "$bin/$target" "$scratch/$target" "corpus/$target" "${dict[@]}" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="artifacts/$target/" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
        echo "$target: ok, ${runs:-?} runs in ${seconds}s, ${cov:-cov: ?}"
    else
        echo "$target: FAILED (log: fuzz/$log)"
        tail -n 40 "$log"
        failed+=("$target")
    fi
done

if ((${#failed[@]})); then
    echo "fuzz targets that failed: ${failed[*]}; inputs in fuzz/artifacts/"
    exit 1
fi
