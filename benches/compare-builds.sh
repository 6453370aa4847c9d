#!/usr/bin/env bash
# Two builds of the trellis binary head to head, in one run on this
# machine: our own-world `hello` and the mounted wasi:http `wasi-hello`
# component, served by each build with the same config, alternating over
# several rounds (medians, ratios, server CPU per request). For a change
# that must not move the figures (a restructuring), build the binary before
# and after it and compare them here.
#
#   pinned    every server on CPU 0, the load tool on CPU 1
#   unpinned  nothing pinned, as a server usually runs
#
# Usage: benches/compare-builds.sh BEFORE_BIN AFTER_BIN [ROUNDS=5] [DURATION=10s] [CONNECTIONS=64]
#   LAYOUT=pinned|unpinned|both (default both)
set -euo pipefail
cd "$(dirname "$0")/.."
before=$(realpath "$1")
after=$(realpath "$2")
shift 2
source benches/lib.sh
setup 64 "${1:-5}" "${2:-10s}" "${3:-64}"
hello_and_wasi_toml >"$work/trellis.toml"

# serve NAME BIN PORT CPUS: starts BIN on PORT (pinned to CPUS unless
# empty) and sets ${NAME}_pid.
serve() {
    local pin=()
    [ -n "$4" ] && pin=(taskset -c "$4")
    TRELLIS_CONFIG="$work/trellis.toml" TRELLIS_SERVER__LISTEN="127.0.0.1:$3" \
        TRELLIS_LOG__LEVEL=warn TRELLIS_DATA_DIR="$work/data-$1" "${pin[@]}" "$2" serve &
    pids+=($!)
    printf -v "${1}_pid" '%s' "$!"
    wait_for "http://127.0.0.1:$3/hello" 60
    wait_for "http://127.0.0.1:$3/wasi" 60
}

# run LAYOUT SERVER_CPUS LOAD_CPUS: both builds, both paths, $rounds rounds.
run() {
    # (not `label`: alternate_many reads its targets into that name)
    local layout_name=$1 server_cpus=$2 load_cpus=$3
    stop_servers
    pids=()
    serve before "$before" 18090 "$server_cpus"
    serve after "$after" 18091 "$server_cpus"
    results="$work/$layout_name.jsonl"
    LOAD_CPUS=$load_cpus alternate_many hello- /hello \
        "before:18090:$before_pid" "after:18091:$after_pid"
    LOAD_CPUS=$load_cpus alternate_many wasi- /wasi \
        "before:18090:$before_pid" "after:18091:$after_pid"
    echo "== $layout_name: closed loop, $connections connections, $duration, medians of $rounds"
    python3 benches/summary.py ${MARKDOWN:+--markdown} "$results" \
        hello-before hello-after wasi-before wasi-after -- \
        hello-after/hello-before wasi-after/wasi-before
}

by_layout run
