#!/usr/bin/env bash
# Head-to-head load run on loopback: the Trellis `hello` plugin against a
# native hyper hello-world server, alternating targets, several rounds,
# medians and ratios. Servers are pinned to CPU 0, the load tool to CPU 1.
#
# Usage: benches/compare.sh [ROUNDS=3] [DURATION=10s] [CONNECTIONS=64]
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
setup 64 "$@"

TRELLIS_SERVER__LISTEN=127.0.0.1:18080 TRELLIS_LOG__LEVEL=warn TRELLIS_DATA_DIR="$work" \
    taskset -c 0 "$bin/trellis" serve &
pids+=($!); trellis_pid=$!
taskset -c 0 "$bin/native-hello" 127.0.0.1:18081 2>/dev/null &
pids+=($!); native_pid=$!

wait_for http://127.0.0.1:18080/hello
wait_for http://127.0.0.1:18081/hello

results="$work/results.jsonl"
alternate "" /hello 18080 "$trellis_pid" 18081 "$native_pid"

python3 benches/summary.py "$results" trellis native -- trellis/native
