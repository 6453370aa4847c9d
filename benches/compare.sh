#!/usr/bin/env bash
# The head-to-head, in one run on this machine, alternating targets over
# several rounds (medians and ratios):
#   native          a native hyper hello server (benches/src/bin/native_hello.rs)
#   wasmtime-serve  `wasmtime serve` running plugins/wasi-hello (a standard
#                   wasi:http component) at its best per-request-isolated
#                   settings: pooling allocator with the slot reset tuned
#                   (docs/performance.md), no epoch interruption, -S cli
#   trellis-wasi    the same component file, mounted in Trellis at /wasi
#   trellis-hello   our own-world `hello` plugin in the same Trellis process
# Same load tool (trellis-load, closed loop), same connection count, in
# two layouts (LAYOUT=pinned|unpinned|both, default both):
#   pinned    every server on CPU 0, the load tool on CPU 1
#   unpinned  nothing pinned, as a server usually runs; here the servers
#             are loaded a second time by wrk (Debian's package), so a
#             result does not rest on our own load generator alone
# Then, pinned, at a constant 1,000 req/s (open loop, latency from when
# each request was due): Trellis `hello` and `notes-read` (SQLite, Zipf
# ids) — p95 goals 2 ms and 10 ms.
# `wasmtime` is installed into target/tools by benches/install-wasmtime.sh.
#
# Usage: benches/compare.sh [ROUNDS=5] [DURATION=10s] [CONNECTIONS=64]
#   MARKDOWN=1 also prints the tables as Markdown (for benches/RESULTS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
wasmtime=$(benches/install-wasmtime.sh)
setup 64 "${1:-5}" "${2:-10s}" "${3:-64}"
component=target/guests/wasm32-wasip2/release/wasi_hello.wasm
results="$work/results.jsonl"

{
    hello_and_wasi_toml
    printf '[plugins.notes]\nbuiltin = "notes"\ngrants = ["sql", "cache", "jobs"]\n'
} >"$work/trellis.toml"

# start_servers CPUS: Trellis, native hyper and `wasmtime serve`, pinned to
# CPUS unless it is empty (each sizes its thread pool from the CPUs it may
# use, so a layout starts its own processes).
start_servers() {
    stop_servers
    pids=()
    start_trellis 18080 "$1"
    start_native 18081 "$1"
    start_wasmtime 18082 "$1" "$component"
    wait_for http://127.0.0.1:18080/hello 60
    wait_for http://127.0.0.1:18080/wasi 60
    wait_for http://127.0.0.1:18081/hello
    wait_for http://127.0.0.1:18082/
}

# head_to_head NAME: the four targets, $rounds rotated rounds, into
# $work/NAME.jsonl, and their table. Each target on its own path, where it
# answers "Hello, world!" (the component answers every path; native and
# Trellis serve /hello).
head_to_head() {
    results="$work/$1.jsonl"
    alternate_paths "native:18081:$native_pid:/hello" "wasmtime-serve:18082:$wasmtime_pid:/" \
        "trellis-wasi:18080:$trellis_pid:/wasi" "trellis-hello:18080:$trellis_pid:/hello"
    echo "== $1: closed loop, $connections connections, $duration, medians of $rounds"
    python3 benches/summary.py ${MARKDOWN:+--markdown} "$results" \
        native wasmtime-serve trellis-wasi trellis-hello -- \
        trellis-wasi/wasmtime-serve trellis-hello/wasmtime-serve trellis-hello/native
}

unpinned() {
    start_servers ""
    LOAD_CPUS="" head_to_head unpinned
    LOAD_CPUS="" LOAD_TOOL=wrk head_to_head unpinned-wrk
}

pinned() {
    start_servers 0
    head_to_head pinned
    rate="$work/rate.jsonl"
    for round in $(seq 1 "$rounds"); do
        taskset -c 1 "$bin/trellis-load" http://127.0.0.1:18080/hello --rate 1000 \
            --connections 16 --duration "$duration" --warmup 2s \
            --server-pid "$trellis_pid" --label hello >>"$rate"
        taskset -c 1 "$bin/trellis-load" http://127.0.0.1:18080 \
            --scenario benches/scenarios/notes-read.toml --rate 1000 \
            --connections 16 --duration "$duration" --warmup 2s \
            --server-pid "$trellis_pid" --label notes-read >>"$rate"
    done
    echo "== open loop at 1,000 req/s, medians of $rounds (goals: p95 < 2 ms hello, < 10 ms notes-read)"
    python3 benches/summary.py ${MARKDOWN:+--markdown} "$rate" hello notes-read
}

# run NAME SERVER_CPUS LOAD_CPUS (see by_layout): each layout's own runs.
run() { "$1"; }
by_layout run
