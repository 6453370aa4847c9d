#!/usr/bin/env bash
# Installs the `wasmtime` CLI that the head-to-head compares against, into
# target/tools (not on PATH, not committed): the version of the wasmtime
# crates the runtime embeds, with only what `wasmtime serve` needs, and
# wasi:config and wasi:keyvalue (`-S config`, `-S keyvalue`) for
# tests/scripts/conformance.sh's `wasmtime serve` mode.
# Prints the binary's path. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^wasmtime = { version = "\([0-9.]*\)".*/\1/p' Cargo.toml)
root=target/tools
bin=$root/bin/wasmtime
# `serve` needs `component-model-async` to compile.
features=serve,run,cranelift,pooling-allocator,parallel-compilation,component-model,component-model-async,cache,wasi-config,wasi-keyvalue
stamp=$root/features
if ! { [ -x "$bin" ] && "$bin" --version | grep -qw "$version" && [ "$(cat "$stamp" 2>/dev/null)" = "$features" ]; }; then
    echo "installing wasmtime-cli $version into $root (several minutes)" >&2
    CARGO_BUILD_BUILD_DIR=${CARGO_BUILD_BUILD_DIR:-$PWD/target/tools-build} cargo install wasmtime-cli --version "$version" --locked --quiet --root "$root" \
        --no-default-features --features "$features" --force >&2
    echo "$features" >"$stamp"
fi
echo "$bin"
