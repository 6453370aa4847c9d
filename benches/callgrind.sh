#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: repeatable on
# a machine whose other core is busy, where CPU time is not (docs/performance.md).
# Each target's server runs alone under callgrind; after a warm-up, counting
# is switched on for REQUESTS requests (2 connections, trellis-load) and the
# total is divided by them. valgrind cannot reserve the address space of a
# full instance pool, so every server runs with a pool of 4 instances.
# Under callgrind a server serves a few hundred requests a second, all
# within the span recording budget (`telemetry.recorded_per_second`); under
# real load almost none are, so Trellis runs with the budget at 0.
# TRELLIS_BIN picks another Trellis binary (an earlier build, for an A/B). Counted: the server process in user space (the
# kernel's share is not), every thread.
#   hello   our own-world `hello` plugin (GET /hello)
#   wasi    the `wasi-hello` component mounted at /wasi
#   proxy   the `proxy` example fetching a native upstream (pooled)
#   wasmtime  `wasmtime serve` running the same `wasi-hello` component
# Per target it prints Ir/request and keeps callgrind's output in $KEEP
# (default: a temporary directory), for `callgrind_annotate --inclusive=yes`.
#
# Usage: benches/callgrind.sh [REQUESTS=2000] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
requests=${1:-2000}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(hello wasi proxy wasmtime)
setup 2 1 1s 2
command -v valgrind >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
keep=${KEEP:-$work}
mkdir -p "$keep"
guests=$PWD/target/guests/wasm32-wasip2/release
upstream=http://127.0.0.1:18191
{
    hello_and_wasi_toml
    proxy_toml "$upstream"
} >"$work/trellis.toml"

start_native 18191 ""
wait_for "$upstream/hello"
# One plain start first fills the compile cache, so the start under
# callgrind loads compiled components instead of compiling them. (`exec`:
# the background job's pid is the server's.)
trellis() {
    exec env TRELLIS_CONFIG="$work/trellis.toml" TRELLIS_SERVER__LISTEN=127.0.0.1:18180 \
        TRELLIS_LOG__LEVEL=warn TRELLIS_DATA_DIR="$work/data" TRELLIS_ENGINE__MAX_INSTANCES=4 \
        TRELLIS_TELEMETRY__RECORDED_PER_SECOND=0 "$@" "${TRELLIS_BIN:-$bin/trellis}" serve
}
trellis &
plain=$!
wait_for http://127.0.0.1:18180/hello 120
kill "$plain"; wait "$plain" 2>/dev/null || true
wasmtime=""
for target in "${targets[@]}"; do
    [ "$target" = wasmtime ] && wasmtime=$(benches/install-wasmtime.sh)
done

count() {
    local target=$1 url=$2 out=$keep/callgrind.$1.out
    shift 2
    local grind=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out")
    case $target in
        wasmtime)
            "${grind[@]}" "$wasmtime" serve --addr 127.0.0.1:18182 -S cli=y \
                "${wasmtime_serve_options[@]}" -O pooling-total-component-instances=4 \
                -O pooling-total-core-instances=32 -O pooling-total-memories=8 \
                -O pooling-total-tables=16 -O pooling-total-stacks=4 \
                "$guests/wasi_hello.wasm" 2>/dev/null & ;;
        *) trellis "${grind[@]}" 2>/dev/null & ;;
    esac
    local pid=$!
    pids+=("$pid")
    wait_for "$url" 300
    "$bin/trellis-load" "$url" --connections 2 --duration 60s --warmup 0s \
        --max-requests 200 >/dev/null 2>&1
    callgrind_control --instr=on "$pid" >/dev/null 2>&1 || { echo "callgrind_control failed" >&2; exit 1; }
    callgrind_control --zero "$pid" >/dev/null 2>&1
    "$bin/trellis-load" "$url" --connections 2 --duration 300s --warmup 0s \
        --max-requests "$requests" >/dev/null 2>&1
    callgrind_control --dump "$pid" >/dev/null 2>&1
    kill "$pid"; wait "$pid" 2>/dev/null || true
    local total
    total=$(cat "$out"* | sed -n 's/^summary: \([0-9]*\).*/\1/p' | awk '{s += $1} END {print s}')
    printf '%-9s %12d Ir/request\n' "$target" "$((total / requests))"
}

for target in "${targets[@]}"; do
    case $target in
        hello) count hello http://127.0.0.1:18180/hello ;;
        wasi) count wasi http://127.0.0.1:18180/wasi ;;
        proxy) count proxy http://127.0.0.1:18180/proxy/hello ;;
        wasmtime) count wasmtime http://127.0.0.1:18182/ ;;
        *) echo "unknown target $target" >&2; exit 2 ;;
    esac
done
echo "callgrind's output: $keep" >&2
