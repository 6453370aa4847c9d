#!/usr/bin/env bash
# Outbound HTTP, in one run on this machine, alternating targets over
# several rounds (medians and ratios). Every target answers the same
# "Hello, world!" of a native upstream (benches/src/bin/native_hello.rs):
#   upstream          the upstream itself, straight
#   trellis-hello     our own-world `hello` (the cost of a plain request)
#   trellis-proxy     the `proxy` example: GET /proxy/hello fetches the
#                     upstream through trellis_sdk::http (pooled)
#   trellis-fetch     the `wasi-hello` component mounted in Trellis:
#                     /wasi/fetch?url=<upstream> through
#                     wasi:http/outgoing-handler (pooled)
#   trellis-fresh     the same, mounted again with pooling off
#                     (`outbound.pool_idle_timeout = "0s"`): a fresh
#                     connection per request, as wasmtime serve opens
#   wasmtime-fetch    the same component file under `wasmtime serve -S http`
#                     (a fresh connection per request)
# Two layouts (LAYOUT=pinned|unpinned|both, default both): servers on CPU 0
# (the upstream too) and the load tool on CPU 1, and nothing pinned.
#
# Usage: benches/compare-outbound.sh [ROUNDS=3] [DURATION=10s] [CONNECTIONS=32]
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
wasmtime=$(benches/install-wasmtime.sh)
setup 32 "${1:-3}" "${2:-10s}" "${3:-32}"
guests=$PWD/target/guests/wasm32-wasip2/release
upstream=http://127.0.0.1:18091
encoded=http%3A%2F%2F127.0.0.1%3A18091%2Fhello
results="$work/results.jsonl"

{
    proxy_toml "$upstream"
    cat <<TOML
[plugins.hello]
builtin = "hello"
grants = ["log", "config"]

[plugins.wasi]
path = "$guests/wasi_hello.wasm"
grants = ["outbound-http"]
mount = "/wasi"
allowed_outbound_hosts = ["$upstream"]

[plugins.fresh]
path = "$guests/wasi_hello.wasm"
grants = ["outbound-http"]
mount = "/fresh"
allowed_outbound_hosts = ["$upstream"]
[plugins.fresh.outbound]
pool_idle_timeout = "0s"
TOML
} >"$work/trellis.toml"

# start_servers CPUS: the upstream, Trellis and `wasmtime serve`, pinned to
# CPUS unless it is empty (each sizes its thread pool from the CPUs it may
# use, so a layout starts its own processes).
start_servers() {
    stop_servers
    pids=()
    start_native 18091 "$1"
    upstream_pid=$native_pid
    start_trellis 18090 "$1"
    start_wasmtime 18092 "$1" "$guests/wasi_hello.wasm" -S http=y

    wait_for "$upstream/hello"
    wait_for http://127.0.0.1:18090/hello 60
    wait_for http://127.0.0.1:18090/proxy/hello
    wait_for "http://127.0.0.1:18090/wasi/fetch?url=$encoded"
    wait_for "http://127.0.0.1:18090/fresh/fetch?url=$encoded"
    wait_for "http://127.0.0.1:18092/fetch?url=$encoded"
}

# run NAME SERVER_CPUS LOAD_CPUS: every target, $rounds rotated rounds,
# into $work/NAME.jsonl, and the table.
run() {
    start_servers "$2"
    results="$work/$1.jsonl"
    LOAD_CPUS=$3 alternate_paths "upstream:18091:$upstream_pid:/hello" \
        "trellis-hello:18090:$trellis_pid:/hello" \
        "trellis-proxy:18090:$trellis_pid:/proxy/hello" \
        "trellis-fetch:18090:$trellis_pid:/wasi/fetch?url=$encoded" \
        "trellis-fresh:18090:$trellis_pid:/fresh/fetch?url=$encoded" \
        "wasmtime-fetch:18092:$wasmtime_pid:/fetch?url=$encoded"
    echo "== $1: closed loop, $connections connections, $duration, medians of $rounds"
    echo "   (CPU per request is the serving process's: the upstream's own work is not in Trellis' or wasmtime's figure)"
    python3 benches/summary.py ${MARKDOWN:+--markdown} "$results" \
        upstream trellis-hello trellis-proxy trellis-fetch trellis-fresh wasmtime-fetch -- \
        trellis-proxy/trellis-hello trellis-fetch/trellis-hello trellis-fetch/trellis-fresh \
        trellis-fresh/wasmtime-fetch trellis-fetch/wasmtime-fetch trellis-proxy/wasmtime-fetch
}

by_layout run
