#!/usr/bin/env bash
# Line and branch coverage of the runtime (from the whole suite: unit and
# integration tests, child-process nodes included) and of the guest SDK
# (from its native tests), with cargo-llvm-cov. Installs what it needs.
#
# Usage: tests/scripts/coverage.sh [--html]
# Writes target/coverage/{runtime,sdk}-summary.txt (per-file tables) and,
# with --html, target/coverage/html/. Prints the totals.
#
# Branch coverage needs rustc's unstable -Zcoverage-options=branch; the
# pinned stable toolchain is allowed it with RUSTC_BOOTSTRAP=1, here only.
set -euo pipefail
cd "$(dirname "$0")/../.."
html=${1:-}

toolchain=$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)
rustup component list --installed --toolchain "$toolchain" | grep -q '^llvm-tools' \
    || rustup component add llvm-tools-preview --toolchain "$toolchain"
command -v cargo-llvm-cov >/dev/null 2>&1 || cargo install cargo-llvm-cov --locked

export RUSTC_BOOTSTRAP=1
out=target/coverage
mkdir -p "$out"
# Generated code and the test harness itself are not what is measured.
ignore='(tests/|benches/|/cargo/registry/|plugins/)'

echo "== runtime: the whole suite, instrumented"
cargo llvm-cov clean --workspace
# A failing test still leaves its coverage; say so and report what ran.
cargo llvm-cov --workspace --branch --no-report --no-fail-fast \
    || echo "coverage: some tests failed (above); the figures are from what ran" >&2
cargo llvm-cov report --branch --ignore-filename-regex "$ignore" >"$out/runtime-summary.txt"
if [ "$html" = "--html" ]; then
    cargo llvm-cov report --branch --ignore-filename-regex "$ignore" --html --output-dir "$out/html"
fi

echo "== SDK: its native tests"
host=$(rustc -vV | sed -n 's/^host: //p')
(cd plugins && CARGO_TARGET_DIR=../target/coverage/sdk-target \
    cargo llvm-cov -p trellis-sdk --branch --target "$host" \
    --ignore-filename-regex '(/cargo/registry/|/tests/)' >"../$out/sdk-summary.txt")

echo "== totals (lines, branches)"
for part in runtime sdk; do
    printf '%s: ' "$part"
    awk '/^TOTAL/ { print "regions " $4 ", functions " $7 ", lines " $10 ", branches " $13 }' \
        "$out/$part-summary.txt"
done
