#!/usr/bin/env bash
# Installs the `wasmtime` CLI that the head-to-head compares against, into
# target/tools (not on PATH, not committed): the version of the wasmtime
# crates the runtime embeds, with only what `wasmtime serve` needs.
# Prints the binary's path. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^wasmtime = { version = "\([0-9.]*\)".*/\1/p' Cargo.toml)
root=target/tools
bin=$root/bin/wasmtime
if ! { [ -x "$bin" ] && "$bin" --version | grep -qw "$version"; }; then
    echo "installing wasmtime-cli $version into $root (several minutes)" >&2
    # `serve` needs `component-model-async` to compile.
    CARGO_BUILD_BUILD_DIR=${CARGO_BUILD_BUILD_DIR:-$PWD/target/tools-build} cargo install wasmtime-cli --version "$version" --locked --quiet --root "$root" \
        --no-default-features \
        --features serve,run,cranelift,pooling-allocator,parallel-compilation,component-model,component-model-async,cache >&2
fi
echo "$bin"
