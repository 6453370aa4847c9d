#!/usr/bin/env bash
# Operator benchmarks on loopback: start times (cold and warm, 1 and 10
# plugins), reload swap time (upload → serving), and `hello` under load
# alone and beside `misbehave` looping at its concurrency cap (server on
# CPU 0, load tools on CPU 1), alternating, medians.
#
# Usage: benches/ops.sh [ROUNDS=3] [DURATION=10s] [CONNECTIONS=16]
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
setup 16 "$@"
guests="$PWD/target/guests/wasm32-wasip2/release"

python3 benches/ops.py "$bin/trellis" "$work" "$guests" "$rounds"

cat >"$work/noisy.toml" <<TOML
[plugins.hello]
builtin = "hello"

[plugins.misbehave]
path = "$guests/misbehave.wasm"
grants = ["config", "sql"]

[plugins.misbehave.limits]
deadline = "1s"
max_concurrency = 2
max_queued = 0
TOML
TRELLIS_SERVER__LISTEN=127.0.0.1:18090 TRELLIS_LOG__LEVEL=error TRELLIS_DATA_DIR="$work/noisy" \
    taskset -c 0 "$bin/trellis" serve --config "$work/noisy.toml" &
pids+=($!); pid=$!
wait_for http://127.0.0.1:18090/hello

results="$work/noisy.jsonl"
hello() {
    taskset -c 1 "$bin/trellis-load" http://127.0.0.1:18090/hello --connections "$connections" \
        --duration "$duration" --warmup 1s --server-pid "$pid" --label "$1" >>"$results"
}
for round in $(seq 1 "$rounds"); do
    hello solo
    # Two connections keep both of misbehave's instances in endless loops
    # (each ends at its 1 s deadline and the next starts at once).
    taskset -c 1 "$bin/trellis-load" http://127.0.0.1:18090/misbehave/loop --connections 2 \
        --duration 120s --warmup 0s --label loop >/dev/null 2>&1 &
    neighbour=$!
    sleep 1
    hello beside
    kill "$neighbour" 2>/dev/null || true
    wait "$neighbour" 2>/dev/null || true
    echo "noisy round $round done" >&2
done
python3 benches/summary.py "$results" solo beside -- beside/solo
